/* http_util.c - the panel's HTTP server: response helpers, query
 * decoding and metrics.
 *
 * What handlers call to build a response (http_json, http_error,
 * http_header) and to read a request (http_body_json, http_query), the
 * percent-encoding both directions of a query need, and the request
 * counters and latency histogram behind http_metrics(). The server itself
 * is in http.c; http_int.h is what the two share.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-panel/http.h"
#include "svc-panel/http_int.h"

/* The latency histogram's upper bounds (Prometheus' default buckets). */
static const struct bucket {
    const char *le;
    int64_t ns;
} buckets[] = {
    {"0.0005", 500000},    {"0.001", 1000000},     {"0.0025", 2500000},
    {"0.005", 5000000},    {"0.01", 10000000},     {"0.025", 25000000},
    {"0.05", 50000000},    {"0.1", 100000000},     {"0.25", 250000000},
    {"0.5", 500000000},    {"1", 1000000000},      {"2.5", 2500000000},
    {"5", 5000000000},
};

_Static_assert(sizeof(buckets) / sizeof(buckets[0]) == HTTP_NBUCKETS,
               "HTTP_NBUCKETS is the length of buckets[]");

/* Copies s into dst (size bytes) replacing every byte that does not start a
 * well-formed UTF-8 sequence with U+FFFD; truncates on a character
 * boundary. */
static void utf8_clean(char *dst, size_t size, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;

    while (*p) {
        unsigned char c = *p;
        size_t n = 0, i;
        unsigned cp = 0;
        int ok = 1;

        if (c < 0x80)
            n = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            n = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4, cp = c & 0x07;
        else
            ok = 0;
        for (i = 1; ok && i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                ok = 0;
            else
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (ok && n > 1 &&
            ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
             (n == 4 && (cp < 0x10000 || cp > 0x10ffff))))
            ok = 0;
        if (!ok) {
            if (o + 3 >= size)
                break;
            memcpy(dst + o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
            continue;
        }
        if (o + n >= size)
            break;
        memcpy(dst + o, p, n);
        o += n;
        p += n;
    }
    if (size > 0)
        dst[o] = '\0';
}

int http_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) (percent escapes, '+' as space) into out (outlen > 0).
 * Returns the length or -1 when it does not fit. A malformed escape is kept
 * as is. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i];

        /* "%00" stays literal: a value never holds a NUL. */
        if (c == '%' && i + 2 < n && http_hexval(s[i + 1]) >= 0 &&
            http_hexval(s[i + 2]) >= 0 &&
            (http_hexval(s[i + 1]) | http_hexval(s[i + 2]))) {
            c = http_hexval(s[i + 1]) << 4 | http_hexval(s[i + 2]);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
}

/* Appends s percent-encoded (everything but unreserved characters). */
int http_pct_encode(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    char *w = buf_reserve(b, n * 3);
    size_t o = 0;

    if (w == NULL)
        return BERTH_ETOOBIG;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            w[o++] = (char)c;
        } else {
            w[o++] = '%';
            w[o++] = hex[c >> 4];
            w[o++] = hex[c & 15];
        }
    }
    buf_commit(b, o);
    return 0;
}


/* ------------------------------------------------------------------ metrics */

void http_metrics_count(http_server *s, int label, int method_ix, int status,
                        int64_t t0)
{
    int64_t ns = clock_mono_ns() - t0;
    size_t h, i;
    int b;

    if (ns < 0)
        ns = 0;
    h = ((size_t)label * 131u + (size_t)(method_ix + 1)) * 1031u +
        (size_t)status;
    pthread_mutex_lock(&s->mlock);
    for (i = 0; i < s->nslots; i++) {
        struct mslot *m = &s->slots[(h + i) & (s->nslots - 1)];

        if (!m->used) {
            m->used = 1;
            m->label = label;
            m->method_ix = method_ix;
            m->status = status;
        }
        if (m->label == label && m->method_ix == method_ix &&
            m->status == status) {
            m->n++;
            break;
        }
    }
    for (b = 0; b < HTTP_NBUCKETS && ns > buckets[b].ns; b++)
        ;
    s->hist[b]++;
    s->sum_ns += ns;
    s->count++;
    pthread_mutex_unlock(&s->mlock);
}

static int mslot_cmp(const void *a, const void *b)
{
    const struct mslot *x = a, *y = b;

    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    if (x->method_ix != y->method_ix)
        return x->method_ix < y->method_ix ? -1 : 1;
    return (x->status > y->status) - (x->status < y->status);
}

/* Appends a label value with Prometheus escaping. */
static int prom_label(buf *out, const char *v)
{
    int rc = 0;

    for (; *v && rc == 0; v++) {
        if (*v == '\\' || *v == '"')
            rc = buf_putc(out, '\\');
        if (rc == 0)
            rc = *v == '\n' ? buf_puts(out, "\\n") : buf_putc(out, *v);
    }
    return rc;
}

int http_metrics(http_server *s, buf *out)
{
    struct mslot *snap = NULL;
    uint64_t hist[HTTP_NBUCKETS + 1], count, cum = 0;
    int64_t sum_ns;
    size_t n = 0, i;
    int qlen, b, rc;

    if (s == NULL || out == NULL)
        return BERTH_EINVAL;
    snap = malloc(s->nslots * sizeof(*snap));
    if (snap == NULL)
        return BERTH_ENOMEM;
    pthread_mutex_lock(&s->mlock);
    for (i = 0; i < s->nslots; i++) {
        if (s->slots[i].used)
            snap[n++] = s->slots[i];
    }
    memcpy(hist, s->hist, sizeof(hist));
    sum_ns = s->sum_ns;
    count = s->count;
    pthread_mutex_unlock(&s->mlock);
    pthread_mutex_lock(&s->qlock);
    qlen = s->qlen;
    pthread_mutex_unlock(&s->qlock);
    qsort(snap, n, sizeof(*snap), mslot_cmp);

    rc = buf_puts(out, "# HELP berth_http_requests_total HTTP requests by "
                       "route, method and status.\n"
                       "# TYPE berth_http_requests_total counter\n");
    for (i = 0; i < n && rc == 0; i++) {
        const struct mslot *m = &snap[i];
        const char *route = m->label < s->nroutes ? s->routes[m->label].pattern
                            : m->label == LABEL_WS(s) ? "/ws"
                                                      : "unmatched";

        rc = buf_puts(out, "berth_http_requests_total{route=\"");
        if (rc == 0)
            rc = prom_label(out, route);
        if (rc == 0)
            rc = buf_printf(out, "\",method=\"%s\",status=\"%d\"} %llu\n",
                            http_method_name(m->method_ix), m->status,
                            (unsigned long long)m->n);
    }
    if (rc == 0)
        rc = buf_puts(out, "# HELP berth_http_request_duration_seconds Time "
                           "from request headers to the last response "
                           "byte.\n"
                           "# TYPE berth_http_request_duration_seconds "
                           "histogram\n");
    for (b = 0; b <= HTTP_NBUCKETS && rc == 0; b++) {
        cum += hist[b];
        rc = buf_printf(out,
                        "berth_http_request_duration_seconds_bucket{le=\"%s\"}"
                        " %llu\n",
                        b < HTTP_NBUCKETS ? buckets[b].le : "+Inf",
                        (unsigned long long)cum);
    }
    if (rc == 0)
        rc = buf_printf(out,
                        "berth_http_request_duration_seconds_sum %.6f\n"
                        "berth_http_request_duration_seconds_count %llu\n"
                        "# TYPE berth_http_queued_jobs gauge\n"
                        "berth_http_queued_jobs %d\n"
                        "# TYPE berth_http_ws_clients gauge\n"
                        "berth_http_ws_clients %d\n",
                        (double)sum_ns / 1e9, (unsigned long long)count, qlen,
                        atomic_load(&s->nws));
    free(snap);
    return rc;
}

/* ------------------------------------------------------------------ helpers */

static int dump_cb(const char *p, size_t n, void *ud)
{
    return buf_append(ud, p, n) == 0 ? 0 : -1;
}

void http_resp_drop_file(http_resp *r)
{
    free(r->file_path);
    r->file_path = NULL;
}

void http_json(http_resp *r, int status, json_t *j)
{
    http_resp_drop_file(r);
    buf_reset(&r->body);
    if (j == NULL) { /* json_pack() failed: a NULL or non-UTF-8 string */
        http_error(r, 500, BERTH_EINTERNAL, "could not build the response");
        return;
    }
    if (json_dump_callback(j, dump_cb, &r->body,
                           JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        json_decref(j);
        http_error(r, 500, BERTH_ETOOBIG, "the response is too large");
        return;
    }
    json_decref(j);
    r->status = status;
    r->content_type = "application/json";
}

void http_error(http_resp *r, int status, int code, const char *fmt, ...)
{
    static const char fallback[] =
        "{\"error\":{\"code\":\"ENOMEM\",\"message\":\"out of memory\"},"
        "\"message\":\"out of memory\"}";
    char raw[1024], msg[1024];
    json_t *j;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    utf8_clean(msg, sizeof(msg), raw);
    http_resp_drop_file(r);
    buf_reset(&r->body);
    r->status = status != 0 ? status : berth_err_http_status(code);
    r->content_type = "application/json";
    j = json_pack("{s:{s:s,s:s},s:s}", "error", "code", berth_errname(code),
                  "message", msg, "message", msg);
    if (j == NULL ||
        json_dump_callback(j, dump_cb, &r->body, JSON_COMPACT) != 0) {
        buf_reset(&r->body);
        buf_puts(&r->body, fallback);
    }
    json_decref(j);
}

void http_header(http_resp *r, const char *name, const char *value)
{
    size_t n;
    char *line;

    if (r->nheaders >= HTTP_MAX_HEADERS || name[0] == '\0' ||
        strpbrk(name, ":\r\n ") != NULL || strpbrk(value, "\r\n") != NULL) {
        log_warn("http header dropped", "name=%s", name);
        return;
    }
    n = strlen(name) + strlen(value) + 3;
    line = malloc(n);
    if (line == NULL)
        return;
    snprintf(line, n, "%s: %s", name, value);
    r->headers[r->nheaders++] = line;
}

json_t *http_body_json(http_req *req, http_resp *r)
{
    json_error_t err;
    json_t *j;

    if (req->body_len == 0) {
        http_error(r, 400, BERTH_EINVAL, "a JSON object body is required");
        return NULL;
    }
    j = json_loadb(req->body, req->body_len,
                   JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (j == NULL) {
        http_error(r, 400, BERTH_EPROTO,
                   "invalid JSON (line %d, column %d): %s", err.line,
                   err.column, err.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_error(r, 400, BERTH_EINVAL, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

int http_query(const http_req *req, const char *name, char *out,
               size_t outlen)
{
    const char *q = req->query;
    size_t nlen = strlen(name);

    if (outlen > 0)
        out[0] = '\0';
    while (q != NULL && *q) {
        size_t flen = strcspn(q, "&;");
        size_t klen = strcspn(q, "=&;");
        char key[256];
        int k = klen < sizeof(key) ? pct_decode(q, klen, key, sizeof(key))
                                   : -1;

        if (k >= 0 && (size_t)k == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = klen < flen ? q + klen + 1 : q + flen;
            size_t vlen = (size_t)(q + flen - v);

            if (outlen == 0 || pct_decode(v, vlen, out, outlen) < 0) {
                if (outlen > 0)
                    out[0] = '\0';
                return BERTH_ETOOBIG;
            }
            return 1;
        }
        q += flen;
        if (*q)
            q++;
    }
    return 0;
}
