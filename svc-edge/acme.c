/* acme.c - an ACME client (RFC 8555): account key, JWS ES256, nonces,
 * orders with HTTP-01, finalize with a CSR, certificate download.
 *
 * Layout: errors and problem documents, transport (one libcurl handle),
 * JWS and signed POSTs, the protocol steps, then the public functions.
 * Keys, signatures, the CSR and names are in acme_crypto.c. See acme.h for
 * the contract and docs/internals/acme.md for the design.
 */
#include "svc-edge/acme_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/token.h"
#include "common/version.h"

#define ACME_BODY_MAX (1u << 20)  /* cap on any reply: chains are a few KB */
#define ACME_NONCE_TRIES 5        /* signed POSTs sent for one badNonce run */
#define ACME_NONCE_MAX 256
#define ACME_URL_MAX 2048
#define ACME_POLL_FIRST_MS 200    /* first poll delay without Retry-After */
#define ACME_POLL_CAP_MS 5000     /* longest poll delay without Retry-After */
#define ACME_POLL_MIN_MS 100      /* shortest delay, even if asked for less */
#define ACME_SLEEP_STEP_MS 50     /* cancellation is noticed this often */
#define ACME_PROBLEM_PREFIX "urn:ietf:params:acme:error:"
#define ACME_CT_JOSE "Content-Type: application/jose+json"
#define ACME_ACCEPT_PEM "Accept: application/pem-certificate-chain"

struct edge_acme {
    char *directory_url;
    char *ca_bundle;
    char *key_path;
    char *email;
    long connect_timeout_ms;
    long timeout_ms;
    long poll_max_ms;
    EVP_PKEY *key;
    char jwk_x[48]; /* base64url of the 32-byte coordinates: 43 characters */
    char jwk_y[48];
    char thumbprint[48];
    CURL *curl;
    atomic_int canceled;
    /* Learnt from the server. */
    char *url_new_nonce;
    char *url_new_account;
    char *url_new_order;
    char *kid; /* the account URL; NULL until registered */
    char nonce[ACME_NONCE_MAX];
    /* Counters for logs and tests. */
    unsigned long posts;
    unsigned long nonce_retries;
};

/* One HTTP exchange's outcome. */
typedef struct acme_resp {
    long status;
    buf body;
    char location[ACME_URL_MAX];
    char nonce[ACME_NONCE_MAX];
    int64_t retry_after_ms; /* -1: no Retry-After */
} acme_resp;

/* ------------------------------------------------------------ errors */

static void err_set(edge_acme_err *err, int status, const char *type,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void err_set(edge_acme_err *err, int status, const char *type,
                    const char *fmt, ...)
{
    va_list ap;

    err->http_status = status;
    snprintf(err->type, sizeof(err->type), "%s", type != NULL ? type : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static void err_clear(edge_acme_err *err)
{
    memset(err, 0, sizeof(*err));
}

/* ACME problem types and the berth code each means (RFC 8555 §6.7). */
static const struct {
    const char *type;
    int code;
} problem_codes[] = {
    {"rateLimited", BERTH_ETHROTTLE},
    {"badNonce", BERTH_EUNAVAIL},
    {"serverInternal", BERTH_EUNAVAIL},
    {"unauthorized", BERTH_EPERM},
    {"incorrectResponse", BERTH_EPERM},
    {"connection", BERTH_EPERM},
    {"dns", BERTH_EPERM},
    {"tls", BERTH_EPERM},
    {"caa", BERTH_EPERM},
    {"userActionRequired", BERTH_EPERM},
    {"accountDoesNotExist", BERTH_EAUTH},
    {"externalAccountRequired", BERTH_ECONFIG},
    {"malformed", BERTH_EINVAL},
    {"badCSR", BERTH_EINVAL},
    {"badPublicKey", BERTH_EINVAL},
    {"badSignatureAlgorithm", BERTH_EINVAL},
    {"rejectedIdentifier", BERTH_EINVAL},
    {"unsupportedIdentifier", BERTH_EINVAL},
    {"invalidContact", BERTH_EINVAL},
    {"unsupportedContact", BERTH_EINVAL},
    {"orderNotReady", BERTH_ECONFLICT},
    {"alreadyRevoked", BERTH_ECONFLICT},
    {NULL, 0},
};

/* Returns the berth code for a problem type (without the URN prefix) and
 * HTTP status; the status decides for unknown types. */
static int problem_code(const char *type, long status)
{
    size_t i;

    for (i = 0; type != NULL && problem_codes[i].type != NULL; i++) {
        if (strcmp(problem_codes[i].type, type) == 0)
            return problem_codes[i].code;
    }
    if (status == 429)
        return BERTH_ETHROTTLE;
    if (status >= 500)
        return BERTH_EUNAVAIL;
    if (status == 401 || status == 403)
        return BERTH_EPERM;
    if (status == 404)
        return BERTH_ENOENT;
    if (status == 400)
        return BERTH_EINVAL;
    return BERTH_EPROTO;
}

/* Reads a problem document (a JSON object, possibly NULL) into err and
 * returns its berth code. A "compound" problem is described by its first
 * subproblem. what says which step failed ("new order for a.example"). */
static int problem_parse(const json_t *pb, long status, int64_t retry_after_ms,
                         const char *what, edge_acme_err *err)
{
    const char *type = json_string_value(json_object_get(pb, "type"));
    const char *detail = json_string_value(json_object_get(pb, "detail"));
    const json_t *sub = json_array_get(json_object_get(pb, "subproblems"), 0);
    const char *short_type = "";
    char wait[64] = "";
    int code;

    if (type != NULL && strncmp(type, ACME_PROBLEM_PREFIX,
                                strlen(ACME_PROBLEM_PREFIX)) == 0)
        short_type = type + strlen(ACME_PROBLEM_PREFIX);
    else if (type != NULL)
        short_type = type;
    if (strcmp(short_type, "compound") == 0 && json_is_object(sub))
        return problem_parse(sub, status, retry_after_ms, what, err);
    code = problem_code(short_type, status);
    if (code == BERTH_ETHROTTLE && retry_after_ms > 0)
        snprintf(wait, sizeof(wait), "; retry after %lld s",
                 (long long)((retry_after_ms + 999) / 1000));
    if (short_type[0] != '\0')
        err_set(err, (int)status, short_type, "acme: %s failed: %s (%s)%s",
                what, detail != NULL ? detail : "no detail given", short_type,
                wait);
    else
        err_set(err, (int)status, "", "acme: %s failed: %s (HTTP %ld)%s", what,
                detail != NULL ? detail : "no detail given", status, wait);
    err->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
    return code;
}

/* Parses a Retry-After value: delay-seconds or an HTTP date, relative to
 * now_ms. Returns the delay in ms (0 for a date in the past) or -1 when the
 * value is neither. */
static int64_t retry_after_parse(const char *v, int64_t now_ms)
{
    char *end;
    long long secs;
    time_t t;

    while (*v == ' ' || *v == '\t')
        v++;
    if (*v == '\0')
        return -1;
    if (isdigit((unsigned char)*v)) {
        errno = 0;
        secs = strtoll(v, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (errno == 0 && *end == '\0' && secs >= 0 && secs <= 31536000)
            return (int64_t)secs * 1000;
    }
    t = curl_getdate(v, NULL);
    if (t < 0)
        return -1;
    return (int64_t)t * 1000 > now_ms ? (int64_t)t * 1000 - now_ms : 0;
}

/* ------------------------------------------------------------ transport */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    buf *b = arg;

    if (buf_append(b, p, size * n) != 0)
        return 0; /* past the cap: curl aborts with CURLE_WRITE_ERROR */
    return size * n;
}

/* Copies a header's value into dst when line is "name: value". */
static int header_value(const char *line, size_t len, const char *name,
                        char *dst, size_t size)
{
    size_t n = strlen(name);
    size_t end;

    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return 0;
    line += n + 1;
    len -= n + 1;
    while (len > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    end = len;
    while (end > 0 && (line[end - 1] == '\r' || line[end - 1] == '\n' ||
                       line[end - 1] == ' '))
        end--;
    if (end >= size)
        end = size - 1; /* too long to be useful; kept truncated */
    memcpy(dst, line, end);
    dst[end] = '\0';
    return 1;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    acme_resp *r = arg;
    size_t len = size * n;
    char retry[128];

    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue): forget earlier headers. */
        r->location[0] = '\0';
        r->nonce[0] = '\0';
        r->retry_after_ms = -1;
        return len;
    }
    if (header_value(p, len, "Location", r->location, sizeof(r->location)) ||
        header_value(p, len, "Replay-Nonce", r->nonce, sizeof(r->nonce)))
        return len;
    if (header_value(p, len, "Retry-After", retry, sizeof(retry)))
        r->retry_after_ms = retry_after_parse(retry, clock_wall_ms());
    return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    edge_acme *a = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&a->canceled) ? 1 : 0;
}

static void resp_init(acme_resp *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, ACME_BODY_MAX);
    r->retry_after_ms = -1;
}

static void resp_reset(acme_resp *r)
{
    buf_reset(&r->body);
    r->status = 0;
    r->location[0] = '\0';
    r->nonce[0] = '\0';
    r->retry_after_ms = -1;
}

/* Maps a transport failure onto a berth code and a sentence. */
static int curl_failure(CURLcode cc, const char *method, const char *url,
                        const char *errbuf, edge_acme_err *err)
{
    const char *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);

    switch (cc) {
    case CURLE_ABORTED_BY_CALLBACK:
        err_set(err, 0, NULL, "acme: %s %s: canceled", method, url);
        return BERTH_ECANCELED;
    case CURLE_OPERATION_TIMEDOUT:
        err_set(err, 0, NULL, "acme: %s %s: timed out: %s", method, url,
                detail);
        return BERTH_ETIMEDOUT;
    case CURLE_WRITE_ERROR:
        err_set(err, 0, NULL, "acme: %s %s: reply larger than %u bytes", method,
                url, ACME_BODY_MAX);
        return BERTH_ETOOBIG;
    case CURLE_OUT_OF_MEMORY:
        return BERTH_ENOMEM;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        err_set(err, 0, NULL,
                "acme: %s %s: the server's certificate is not trusted: %s",
                method, url, detail);
        return BERTH_EPERM;
    default:
        err_set(err, 0, NULL, "acme: %s %s: the ACME server is unreachable: %s",
                method, url, detail);
        return BERTH_EUNAVAIL;
    }
}

/* Sends one request. method is "GET", "HEAD" or "POST" (body is the JWS);
 * accept is an extra "Accept: ..." header or NULL. Any status is a success
 * here; callers look at r->status. The Replay-Nonce of every answer becomes
 * the next nonce. */
static int http_do(edge_acme *a, const char *method, const char *url,
                   const char *body, const char *accept, acme_resp *r,
                   edge_acme_err *err)
{
    struct curl_slist *hdrs = NULL, *tmp;
    char errbuf[CURL_ERROR_SIZE];
    CURL *c = a->curl;
    CURLcode cc;
    int rc;

    if (atomic_load(&a->canceled)) {
        err_set(err, 0, NULL, "acme: canceled");
        return BERTH_ECANCELED;
    }
    resp_reset(r);
    errbuf[0] = '\0';
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, a->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, a->timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "berth-edge/" BERTH_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
    if (a->ca_bundle != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_bundle);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        tmp = curl_slist_append(hdrs, ACME_CT_JOSE);
        if (tmp == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        hdrs = tmp;
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (accept != NULL) {
        tmp = curl_slist_append(hdrs, accept);
        if (tmp == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        hdrs = tmp;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = curl_failure(cc, method, url, errbuf, err);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->nonce[0] != '\0')
        memcpy(a->nonce, r->nonce, sizeof(a->nonce));
    log_debug("acme http", "method=%s url=%s status=%ld", method, url,
              r->status);
    rc = 0;
out:
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    return rc;
}

/* Parses r's body as a JSON object into *out (caller frees). */
static int resp_json(const acme_resp *r, const char *what, json_t **out,
                     edge_acme_err *err)
{
    json_error_t jerr;

    *out = json_loadb(r->body.data != NULL ? r->body.data : "", r->body.len,
                      0, &jerr);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        err_set(err, (int)r->status, NULL,
                "acme: %s: the reply is not a JSON object", what);
        return BERTH_EPROTO;
    }
    return 0;
}

/* Turns an error answer into a code: the problem document when there is
 * one, the HTTP status otherwise. */
static int resp_problem(const acme_resp *r, const char *what,
                        edge_acme_err *err)
{
    json_t *pb = NULL;
    int rc;

    if (r->body.len > 0)
        pb = json_loadb(r->body.data, r->body.len, 0, NULL);
    rc = problem_parse(pb, r->status, r->retry_after_ms, what, err);
    json_decref(pb);
    return rc;
}

/* ------------------------------------------------------------ JWS */

/* Builds the flattened JWS JSON for a POST to url: payload (NULL for
 * POST-as-GET, an empty payload) signed with ES256, the protected header
 * carrying the account's jwk (use_jwk) or its kid, the nonce and the url.
 * Returns 0 and *out (caller frees). */
static int jws_build(edge_acme *a, const char *url, const char *payload,
                     int use_jwk, char **out)
{
    json_t *prot = NULL, *jws = NULL;
    char *prot_json = NULL, *prot_b64 = NULL, *pay_b64 = NULL;
    char *input = NULL, *sig = NULL;
    size_t n;
    int rc;

    *out = NULL;
    if (use_jwk)
        prot = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}}", "alg",
                         "ES256", "nonce", a->nonce, "url", url, "jwk", "kty",
                         "EC", "crv", "P-256", "x", a->jwk_x, "y", a->jwk_y);
    else
        prot = json_pack("{s:s, s:s, s:s, s:s}", "alg", "ES256", "nonce",
                         a->nonce, "url", url, "kid", a->kid);
    if (prot == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    prot_json = json_dumps(prot, JSON_COMPACT);
    if (prot_json == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    prot_b64 = token_b64url_encode(prot_json, strlen(prot_json));
    pay_b64 = payload != NULL ? token_b64url_encode(payload, strlen(payload))
                              : strdup("");
    if (prot_b64 == NULL || pay_b64 == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    n = strlen(prot_b64) + strlen(pay_b64) + 2;
    input = malloc(n);
    if (input == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    snprintf(input, n, "%s.%s", prot_b64, pay_b64);
    rc = acme_es256_sign(a->key, input, strlen(input), &sig);
    if (rc != 0)
        goto out;
    jws = json_pack("{s:s, s:s, s:s}", "protected", prot_b64, "payload",
                    pay_b64, "signature", sig);
    if (jws == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    *out = json_dumps(jws, JSON_COMPACT);
    rc = *out != NULL ? 0 : BERTH_ENOMEM;
out:
    json_decref(prot);
    json_decref(jws);
    free(prot_json);
    free(prot_b64);
    free(pay_b64);
    free(input);
    free(sig);
    return rc;
}

/* Fetches a fresh nonce with HEAD newNonce. */
static int nonce_fetch(edge_acme *a, edge_acme_err *err)
{
    acme_resp r;
    int rc;

    resp_init(&r);
    rc = http_do(a, "HEAD", a->url_new_nonce, NULL, NULL, &r, err);
    if (rc != 0)
        goto out;
    if (r.status >= 400) {
        rc = resp_problem(&r, "fetching a nonce", err);
        goto out;
    }
    if (a->nonce[0] == '\0') {
        err_set(err, (int)r.status, NULL,
                "acme: fetching a nonce: the reply has no Replay-Nonce");
        rc = BERTH_EPROTO;
        goto out;
    }
    rc = 0;
out:
    buf_free(&r.body);
    return rc;
}

/* POSTs a signed request (payload NULL: POST-as-GET) and leaves the answer
 * in r. An error status becomes a berth code with the problem in err;
 * badNonce is retried with the nonce that came with it. */
static int acme_post(edge_acme *a, const char *url, const char *payload,
                     int use_jwk, const char *accept, const char *what,
                     acme_resp *r, edge_acme_err *err)
{
    char *jws = NULL;
    int attempt;
    int rc;

    for (attempt = 1;; attempt++) {
        if (a->nonce[0] == '\0') {
            rc = nonce_fetch(a, err);
            if (rc != 0)
                goto out;
        }
        rc = jws_build(a, url, payload, use_jwk, &jws);
        a->nonce[0] = '\0'; /* a nonce is good for one request */
        if (rc != 0)
            goto out;
        a->posts++;
        rc = http_do(a, "POST", url, jws, accept, r, err);
        free(jws);
        jws = NULL;
        if (rc != 0)
            goto out;
        if (r->status < 400) {
            rc = 0;
            goto out;
        }
        rc = resp_problem(r, what, err);
        if (strcmp(err->type, "badNonce") != 0 || attempt >= ACME_NONCE_TRIES)
            goto out;
        a->nonce_retries++;
        log_debug("acme bad nonce, retrying", "url=%s attempt=%d", url,
                  attempt);
    }
out:
    free(jws);
    return rc;
}

/* Sleeps ms in short steps so a cancellation is noticed. */
static int sleep_ms(edge_acme *a, int64_t ms, edge_acme_err *err)
{
    int64_t end = clock_mono_ms() + ms;
    int64_t left;

    while ((left = end - clock_mono_ms()) > 0) {
        if (atomic_load(&a->canceled)) {
            err_set(err, 0, NULL, "acme: canceled");
            return BERTH_ECANCELED;
        }
        clock_sleep_ms(left < ACME_SLEEP_STEP_MS ? left : ACME_SLEEP_STEP_MS);
    }
    return 0;
}

/* Waits before polling again: the server's Retry-After when it gave one,
 * else *delay (doubled for next time up to ACME_POLL_CAP_MS). Fails with
 * BERTH_ETIMEDOUT (and the wait in err->retry_after_ms) when the wait
 * would end past deadline (monotonic ms). */
static int poll_wait(edge_acme *a, const acme_resp *r, int64_t *delay,
                     int64_t deadline, const char *what, edge_acme_err *err)
{
    int64_t wait = r->retry_after_ms >= 0 ? r->retry_after_ms : *delay;

    if (wait < ACME_POLL_MIN_MS)
        wait = ACME_POLL_MIN_MS;
    if (clock_mono_ms() + wait > deadline) {
        err_set(err, 0, NULL, "acme: %s: still not done after %ld ms", what,
                a->poll_max_ms);
        err->retry_after_ms = wait;
        return BERTH_ETIMEDOUT;
    }
    *delay = *delay * 2 > ACME_POLL_CAP_MS ? ACME_POLL_CAP_MS : *delay * 2;
    return sleep_ms(a, wait, err);
}

/* ------------------------------------------------------------ protocol */

static int dup_url(json_t *obj, const char *key, char **dst)
{
    const char *v = json_string_value(json_object_get(obj, key));

    if (v == NULL || v[0] == '\0')
        return BERTH_EPROTO;
    *dst = strdup(v);
    return *dst != NULL ? 0 : BERTH_ENOMEM;
}

/* Reads the directory once: the newNonce, newAccount and newOrder URLs. */
static int directory_load(edge_acme *a, edge_acme_err *err)
{
    acme_resp r;
    json_t *dir = NULL;
    int rc;

    if (a->url_new_order != NULL)
        return 0;
    resp_init(&r);
    rc = http_do(a, "GET", a->directory_url, NULL, NULL, &r, err);
    if (rc != 0)
        goto out;
    if (r.status != 200) {
        rc = resp_problem(&r, "reading the directory", err);
        goto out;
    }
    rc = resp_json(&r, "reading the directory", &dir, err);
    if (rc != 0)
        goto out;
    if (dup_url(dir, "newNonce", &a->url_new_nonce) != 0 ||
        dup_url(dir, "newAccount", &a->url_new_account) != 0 ||
        dup_url(dir, "newOrder", &a->url_new_order) != 0) {
        free(a->url_new_nonce);
        free(a->url_new_account);
        free(a->url_new_order);
        a->url_new_nonce = a->url_new_account = a->url_new_order = NULL;
        err_set(err, (int)r.status, NULL,
                "acme: the directory at %s lacks newNonce, newAccount or "
                "newOrder",
                a->directory_url);
        rc = BERTH_EPROTO;
        goto out;
    }
out:
    json_decref(dir);
    buf_free(&r.body);
    return rc;
}

/* Registers the account (or finds it again: the same key gives the same
 * account) and keeps its URL as the kid. */
static int account_ensure(edge_acme *a, edge_acme_err *err)
{
    acme_resp r;
    json_t *req = NULL, *acct = NULL;
    char *payload = NULL;
    char contact[320];
    const char *status;
    int rc;

    if (a->kid != NULL)
        return 0;
    resp_init(&r);
    req = json_pack("{s:b}", "termsOfServiceAgreed", 1);
    if (req == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (a->email != NULL) {
        snprintf(contact, sizeof(contact), "mailto:%s", a->email);
        if (json_object_set_new(req, "contact",
                                json_pack("[s]", contact)) != 0) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    payload = json_dumps(req, JSON_COMPACT);
    if (payload == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = acme_post(a, a->url_new_account, payload, 1, NULL,
                   "registering the account", &r, err);
    if (rc != 0)
        goto out;
    rc = resp_json(&r, "registering the account", &acct, err);
    if (rc != 0)
        goto out;
    status = json_string_value(json_object_get(acct, "status"));
    if (r.location[0] == '\0' || (status != NULL && strcmp(status, "valid"))) {
        err_set(err, (int)r.status, NULL,
                "acme: the account is %s (no usable account URL)",
                status != NULL ? status : "without a status");
        rc = status != NULL && strcmp(status, "valid") ? BERTH_EPERM
                                                       : BERTH_EPROTO;
        goto out;
    }
    a->kid = strdup(r.location);
    if (a->kid == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    log_info("acme account ready", "kid=%s created=%s", a->kid,
             r.status == 201 ? "yes" : "no");
out:
    json_decref(req);
    json_decref(acct);
    free(payload);
    buf_free(&r.body);
    return rc;
}

/* POSTs newOrder for domain. Returns 0 with the order URL in *url and the
 * order in *order (caller frees both). An account the server forgot (a
 * test CA restarted) is registered again once. */
static int order_new(edge_acme *a, const char *domain, char **url,
                     json_t **order, edge_acme_err *err)
{
    acme_resp r;
    json_t *req = NULL;
    char *payload = NULL;
    char what[300];
    int tries;
    int rc;

    *url = NULL;
    *order = NULL;
    resp_init(&r);
    snprintf(what, sizeof(what), "new order for %s", domain);
    req = json_pack("{s:[{s:s, s:s}]}", "identifiers", "type", "dns", "value",
                    domain);
    payload = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    if (payload == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (tries = 0;; tries++) {
        rc = account_ensure(a, err);
        if (rc != 0)
            goto out;
        rc = acme_post(a, a->url_new_order, payload, 0, NULL, what, &r, err);
        if (rc == BERTH_EAUTH && tries == 0) {
            log_warn("acme account unknown to the server, registering again",
                     "kid=%s", a->kid);
            free(a->kid);
            a->kid = NULL;
            continue;
        }
        break;
    }
    if (rc != 0)
        goto out;
    if (r.location[0] == '\0') {
        err_set(err, (int)r.status, NULL, "acme: %s: no order URL", what);
        rc = BERTH_EPROTO;
        goto out;
    }
    rc = resp_json(&r, what, order, err);
    if (rc != 0)
        goto out;
    *url = strdup(r.location);
    if (*url == NULL)
        rc = BERTH_ENOMEM;
out:
    if (rc != 0) {
        json_decref(*order);
        *order = NULL;
    }
    json_decref(req);
    free(payload);
    buf_free(&r.body);
    return rc;
}

/* POST-as-GETs url and parses the object. */
static int fetch_json(edge_acme *a, const char *url, const char *what,
                      acme_resp *r, json_t **out, edge_acme_err *err)
{
    int rc = acme_post(a, url, NULL, 0, NULL, what, r, err);

    *out = NULL;
    if (rc != 0)
        return rc;
    return resp_json(r, what, out, err);
}

/* Tokens go into a URL path and a HAProxy map: base64url characters only. */
static int token_valid(const char *t)
{
    size_t i;

    if (t == NULL || t[0] == '\0' || strlen(t) > 256)
        return 0;
    for (i = 0; t[i] != '\0'; i++) {
        if (!isalnum((unsigned char)t[i]) && t[i] != '-' && t[i] != '_')
            return 0;
    }
    return 1;
}

/* Returns the http-01 challenge of an authorization, or NULL. */
static json_t *http01_of(json_t *authz)
{
    json_t *ch;
    size_t i;

    json_array_foreach(json_object_get(authz, "challenges"), i, ch)
    {
        const char *type = json_string_value(json_object_get(ch, "type"));
        if (type != NULL && strcmp(type, "http-01") == 0)
            return ch;
    }
    return NULL;
}

/* Explains why an authorization ended other than valid: the challenge's
 * error when it carries one. */
static int authz_failed(json_t *authz, const char *domain, const char *status,
                        edge_acme_err *err)
{
    json_t *ch = http01_of(authz);
    json_t *pb = json_object_get(ch, "error");
    char what[300];

    snprintf(what, sizeof(what), "validating %s over HTTP-01", domain);
    if (json_is_object(pb))
        return problem_parse(pb, 0, -1, what, err);
    err_set(err, 0, NULL, "acme: the authorization for %s is %s", domain,
            status);
    return BERTH_EPERM;
}

/* Completes one authorization with HTTP-01: publishes the key
 * authorization, tells the server to check, polls until the authorization
 * is no longer pending, withdraws the answer. */
static int authz_complete(edge_acme *a, const char *authz_url,
                          const char *domain, const edge_acme_http01 *h,
                          edge_acme_err *err)
{
    acme_resp r;
    json_t *authz = NULL, *ch;
    const char *status, *token, *ch_url, *ch_status;
    char *token_copy = NULL, *keyauth = NULL;
    char what[300];
    int64_t delay = ACME_POLL_FIRST_MS, deadline;
    size_t n;
    int rc;

    resp_init(&r);
    snprintf(what, sizeof(what), "authorization for %s", domain);
    rc = fetch_json(a, authz_url, what, &r, &authz, err);
    if (rc != 0)
        goto out;
    status = json_string_value(json_object_get(authz, "status"));
    if (status != NULL && strcmp(status, "valid") == 0) {
        log_debug("acme authorization already valid", "domain=%s", domain);
        goto out;
    }
    if (status == NULL || strcmp(status, "pending") != 0) {
        rc = authz_failed(authz, domain, status != NULL ? status : "unknown",
                          err);
        goto out;
    }
    ch = http01_of(authz);
    token = json_string_value(json_object_get(ch, "token"));
    ch_url = json_string_value(json_object_get(ch, "url"));
    ch_status = json_string_value(json_object_get(ch, "status"));
    if (ch == NULL || ch_url == NULL || !token_valid(token)) {
        err_set(err, 0, NULL,
                "acme: the CA offers no usable http-01 challenge for %s",
                domain);
        rc = BERTH_ENOTSUP;
        goto out;
    }
    token_copy = strdup(token);
    n = strlen(token) + strlen(a->thumbprint) + 2;
    keyauth = malloc(n);
    if (token_copy == NULL || keyauth == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    snprintf(keyauth, n, "%s.%s", token, a->thumbprint);
    rc = h->set(h->ud, token_copy, keyauth);
    if (rc != 0) {
        err_set(err, 0, NULL,
                "acme: publishing the HTTP-01 answer for %s failed: %s", domain,
                berth_strerror(rc));
        free(token_copy);
        token_copy = NULL; /* nothing to withdraw */
        goto out;
    }
    if (ch_status == NULL || strcmp(ch_status, "pending") == 0) {
        snprintf(what, sizeof(what), "answering the challenge for %s", domain);
        rc = acme_post(a, ch_url, "{}", 0, NULL, what, &r, err);
        if (rc != 0)
            goto out;
    }
    deadline = clock_mono_ms() + a->poll_max_ms;
    snprintf(what, sizeof(what), "authorization for %s", domain);
    for (;;) {
        rc = poll_wait(a, &r, &delay, deadline, what, err);
        if (rc != 0)
            goto out;
        json_decref(authz);
        rc = fetch_json(a, authz_url, what, &r, &authz, err);
        if (rc != 0)
            goto out;
        status = json_string_value(json_object_get(authz, "status"));
        if (status == NULL || strcmp(status, "pending") != 0)
            break;
    }
    if (strcmp(status, "valid") != 0) {
        rc = authz_failed(authz, domain, status, err);
        goto out;
    }
    log_debug("acme authorization valid", "domain=%s", domain);
out:
    if (token_copy != NULL && h->del(h->ud, token_copy) != 0)
        log_warn("acme withdrawing the HTTP-01 answer failed", "domain=%s",
                 domain);
    json_decref(authz);
    free(token_copy);
    free(keyauth);
    buf_free(&r.body);
    return rc;
}

/* Polls the order until its status is until ("ready" or "valid"); a valid
 * order also satisfies "ready". *order is the latest copy known; when it
 * is stale (refresh) it is fetched again before anything else, otherwise
 * the first poll waits retry_after_ms (the server's hint that came with
 * it; -1: none). Returns 0 with the order in *order (caller frees); an
 * invalid order is BERTH_EPERM with its error. */
static int order_wait(edge_acme *a, const char *url, const char *domain,
                      const char *until, int refresh, int64_t retry_after_ms,
                      json_t **order, edge_acme_err *err)
{
    acme_resp r;
    const char *status;
    char what[300];
    int64_t delay = ACME_POLL_FIRST_MS;
    int64_t deadline = clock_mono_ms() + a->poll_max_ms;
    int rc;

    resp_init(&r);
    r.retry_after_ms = retry_after_ms;
    snprintf(what, sizeof(what), "order for %s", domain);
    if (refresh) {
        json_decref(*order);
        rc = fetch_json(a, url, what, &r, order, err);
        if (rc != 0)
            goto out;
    }
    for (;;) {
        status = json_string_value(json_object_get(*order, "status"));
        if (status == NULL) {
            err_set(err, 0, NULL, "acme: the %s has no status", what);
            rc = BERTH_EPROTO;
            goto out;
        }
        if (strcmp(status, until) == 0 || strcmp(status, "valid") == 0) {
            rc = 0;
            goto out;
        }
        if (strcmp(status, "pending") != 0 &&
            strcmp(status, "processing") != 0 && strcmp(status, "ready") != 0) {
            json_t *pb = json_object_get(*order, "error");
            if (json_is_object(pb)) {
                rc = problem_parse(pb, 0, -1, what, err);
            } else {
                err_set(err, 0, NULL, "acme: the %s is %s", what, status);
                rc = BERTH_EPERM;
            }
            goto out;
        }
        rc = poll_wait(a, &r, &delay, deadline, what, err);
        if (rc != 0)
            goto out;
        json_decref(*order);
        rc = fetch_json(a, url, what, &r, order, err);
        if (rc != 0)
            goto out;
    }
out:
    buf_free(&r.body);
    return rc;
}

/* Sends the CSR for a new key; returns the key in *key (caller frees),
 * the updated order in *order and the answer's Retry-After (-1: none) in
 * *retry_after_ms. */
static int order_finalize(edge_acme *a, const char *domain, json_t **order,
                          EVP_PKEY **key, int64_t *retry_after_ms,
                          edge_acme_err *err)
{
    acme_resp r;
    const char *url = json_string_value(json_object_get(*order, "finalize"));
    unsigned char *der = NULL;
    char *csr = NULL, *payload = NULL;
    json_t *req = NULL;
    char what[300];
    int len = 0;
    int rc;

    resp_init(&r);
    *key = NULL;
    snprintf(what, sizeof(what), "finalizing the order for %s", domain);
    if (url == NULL) {
        err_set(err, 0, NULL, "acme: the order for %s has no finalize URL",
                domain);
        rc = BERTH_EPROTO;
        goto out;
    }
    rc = acme_key_generate(key);
    if (rc != 0)
        goto out;
    rc = acme_csr_build(domain, *key, &der, &len);
    if (rc != 0)
        goto out;
    csr = token_b64url_encode(der, (size_t)len);
    req = csr != NULL ? json_pack("{s:s}", "csr", csr) : NULL;
    payload = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    if (payload == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = acme_post(a, url, payload, 0, NULL, what, &r, err);
    if (rc != 0)
        goto out;
    json_decref(*order);
    *order = NULL;
    *retry_after_ms = r.retry_after_ms;
    rc = resp_json(&r, what, order, err);
out:
    if (rc != 0) {
        EVP_PKEY_free(*key);
        *key = NULL;
    }
    OPENSSL_free(der);
    free(csr);
    free(payload);
    json_decref(req);
    buf_free(&r.body);
    return rc;
}

/* Downloads the chain of a valid order and checks it belongs to key and
 * names domain. */
static int cert_download(edge_acme *a, const char *domain, json_t *order,
                         EVP_PKEY *key, edge_acme_cert *cert,
                         edge_acme_err *err)
{
    acme_resp r;
    const char *url = json_string_value(json_object_get(order, "certificate"));
    char *key_pem = NULL, *both = NULL;
    char what[300];
    size_t n;
    int rc;

    resp_init(&r);
    snprintf(what, sizeof(what), "downloading the certificate for %s", domain);
    if (url == NULL) {
        err_set(err, 0, NULL, "acme: the valid order for %s has no certificate",
                domain);
        rc = BERTH_EPROTO;
        goto out;
    }
    rc = acme_post(a, url, NULL, 0, ACME_ACCEPT_PEM, what, &r, err);
    if (rc != 0)
        goto out;
    rc = acme_key_to_pem(key, &key_pem);
    if (rc != 0)
        goto out;
    n = r.body.len + strlen(key_pem) + 2;
    both = malloc(n);
    if (both == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    snprintf(both, n, "%s%s%s", r.body.data != NULL ? r.body.data : "",
             r.body.len > 0 && r.body.data[r.body.len - 1] != '\n' ? "\n" : "",
             key_pem);
    rc = edge_acme_pem_check(both, domain, &cert->not_before_ms,
                             &cert->not_after_ms);
    if (rc != 0) {
        err_set(err, (int)r.status, NULL,
                "acme: %s: the chain does not parse or does not match the key "
                "and the name",
                what);
        goto out;
    }
    cert->chain_pem = buf_detach(&r.body, NULL);
    cert->key_pem = key_pem;
    key_pem = NULL;
    if (cert->chain_pem == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
out:
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    if (both != NULL)
        OPENSSL_cleanse(both, strlen(both));
    free(key_pem);
    free(both);
    buf_free(&r.body);
    return rc;
}

/* ------------------------------------------------------------ public */

static int contact_valid(const char *email)
{
    size_t i;

    if (strlen(email) > 254 || strchr(email, '@') == NULL)
        return 0;
    for (i = 0; email[i] != '\0'; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= ' ' || c >= 0x7f || c == ',' || c == '"' || c == '<' ||
            c == '>' || c == '\\')
            return 0;
    }
    return 1;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

int edge_acme_new(const edge_acme_cfg *cfg, edge_acme **out)
{
    edge_acme *a = NULL;
    int rc;

    *out = NULL;
    if (cfg == NULL || cfg->directory_url == NULL ||
        cfg->directory_url[0] == '\0' || cfg->account_key_path == NULL ||
        cfg->account_key_path[0] == '\0')
        return BERTH_EINVAL;
    if (cfg->email != NULL && cfg->email[0] != '\0' &&
        !contact_valid(cfg->email))
        return BERTH_EINVAL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return BERTH_EINTERNAL;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return BERTH_ENOMEM;
    atomic_init(&a->canceled, 0);
    a->directory_url = strdup(cfg->directory_url);
    a->key_path = strdup(cfg->account_key_path);
    a->ca_bundle = dup_or_null(cfg->ca_bundle);
    a->email = dup_or_null(cfg->email);
    if (a->directory_url == NULL || a->key_path == NULL ||
        (cfg->ca_bundle != NULL && cfg->ca_bundle[0] != '\0' &&
         a->ca_bundle == NULL) ||
        (cfg->email != NULL && cfg->email[0] != '\0' && a->email == NULL)) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    a->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    a->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    a->poll_max_ms = cfg->poll_max_ms > 0 ? cfg->poll_max_ms : 120000;
    rc = acme_key_load(a->key_path, &a->key);
    if (rc != 0)
        goto out;
    rc = acme_jwk_coords(a->key, a->jwk_x, a->jwk_y, sizeof(a->jwk_x));
    if (rc != 0)
        goto out;
    rc = acme_jwk_thumbprint(a->jwk_x, a->jwk_y, a->thumbprint,
                        sizeof(a->thumbprint));
    if (rc != 0)
        goto out;
    a->curl = curl_easy_init();
    if (a->curl == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    *out = a;
    a = NULL;
    rc = 0;
out:
    edge_acme_free(a);
    return rc;
}

void edge_acme_free(edge_acme *a)
{
    if (a == NULL)
        return;
    if (a->curl != NULL)
        curl_easy_cleanup(a->curl);
    EVP_PKEY_free(a->key);
    free(a->directory_url);
    free(a->ca_bundle);
    free(a->key_path);
    free(a->email);
    free(a->url_new_nonce);
    free(a->url_new_account);
    free(a->url_new_order);
    free(a->kid);
    free(a);
}

void edge_acme_cancel(edge_acme *a)
{
    atomic_store(&a->canceled, 1);
}

const char *edge_acme_thumbprint(const edge_acme *a)
{
    return a->thumbprint;
}

void edge_acme_cert_free(edge_acme_cert *c)
{
    if (c == NULL)
        return;
    if (c->key_pem != NULL)
        OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
    free(c->chain_pem);
    free(c->key_pem);
    memset(c, 0, sizeof(*c));
}

int edge_acme_obtain(edge_acme *a, const char *domain,
                     const edge_acme_http01 *h, edge_acme_cert *cert,
                     edge_acme_err *err)
{
    edge_acme_err local;
    json_t *order = NULL, *authzs;
    char *order_url = NULL;
    EVP_PKEY *key = NULL;
    int64_t t0 = clock_mono_ms(), retry_after = -1;
    size_t i;
    int rc;

    if (err == NULL)
        err = &local;
    err_clear(err);
    memset(cert, 0, sizeof(*cert));
    if (!edge_acme_domain_valid(domain) || h == NULL || h->set == NULL ||
        h->del == NULL) {
        err_set(err, 0, NULL, "acme: %s is not a domain a certificate can name",
                domain != NULL ? domain : "(null)");
        return BERTH_EINVAL;
    }
    rc = directory_load(a, err);
    if (rc != 0)
        goto out;
    rc = order_new(a, domain, &order_url, &order, err);
    if (rc != 0)
        goto out;
    authzs = json_object_get(order, "authorizations");
    if (!json_is_array(authzs) || json_array_size(authzs) == 0) {
        err_set(err, 0, NULL, "acme: the order for %s has no authorizations",
                domain);
        rc = BERTH_EPROTO;
        goto out;
    }
    for (i = 0; i < json_array_size(authzs); i++) {
        const char *u = json_string_value(json_array_get(authzs, i));
        if (u == NULL) {
            err_set(err, 0, NULL, "acme: the order for %s lists a bad "
                                  "authorization", domain);
            rc = BERTH_EPROTO;
            goto out;
        }
        rc = authz_complete(a, u, domain, h, err);
        if (rc != 0)
            goto out;
    }
    /* The order was read before its authorizations were done. */
    rc = order_wait(a, order_url, domain, "ready", 1, -1, &order, err);
    if (rc != 0)
        goto out;
    rc = order_finalize(a, domain, &order, &key, &retry_after, err);
    if (rc != 0)
        goto out;
    rc = order_wait(a, order_url, domain, "valid", 0, retry_after, &order,
                    err);
    if (rc != 0)
        goto out;
    rc = cert_download(a, domain, order, key, cert, err);
    if (rc != 0)
        goto out;
    log_info("acme certificate issued", "domain=%s ms=%lld posts=%lu "
             "nonce_retries=%lu",
             domain, (long long)(clock_mono_ms() - t0), a->posts,
             a->nonce_retries);
out:
    if (rc != 0) {
        edge_acme_cert_free(cert);
        log_warn("acme order failed", "domain=%s error=%s code=%s", domain,
                 err->message, berth_errname(rc));
    }
    EVP_PKEY_free(key);
    json_decref(order);
    free(order_url);
    return rc;
}
