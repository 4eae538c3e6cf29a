/* pebble.c - Pebble and pebble-challtestsrv for tests: TLS files made with
 * OpenSSL, a JSON configuration on free ports, start, stop, management
 * GETs. See pebble.h.
 */
#include "tests/harness/pebble.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/fs.h"

#define H_PEBBLE_READY_MS 15000
#define H_PEBBLE_STOP_MS 5000
#define H_PEBBLE_ATTEMPTS 3
#define H_PEBBLE_TAIL 4096
#define H_PEBBLE_READY "ACME directory available at"
#define H_PEBBLE_DNS_READY "Starting management server"

/* ------------------------------------------------------------ TLS files */

/* Adds extension nid with an openssl.cnf-style value to x, issued by ca. */
static int add_ext(X509 *x, X509 *ca, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *e;
    int ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL)
        return 0;
    ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

/* A certificate for key named cn, signed by ca_key (self-signed when ca is
 * NULL), valid for a day. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *ca,
                       EVP_PKEY *ca_key, long serial)
{
    X509 *x = X509_new();
    int ok;

    if (x == NULL)
        return NULL;
    ok = X509_set_version(x, 2) &&
         ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL &&
         X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
                                    MBSTRING_ASC, (const unsigned char *)cn,
                                    -1, -1, 0) &&
         X509_set_issuer_name(x, X509_get_subject_name(ca != NULL ? ca : x)) &&
         X509_set_pubkey(x, key);
    if (ok && ca == NULL)
        ok = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") &&
             add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             add_ext(x, x, NID_subject_key_identifier, "hash");
    else if (ok)
        ok = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(x, ca, NID_key_usage, "critical,digitalSignature") &&
             add_ext(x, ca, NID_ext_key_usage, "serverAuth") &&
             add_ext(x, ca, NID_subject_alt_name,
                     "DNS:localhost,IP:127.0.0.1") &&
             add_ext(x, ca, NID_authority_key_identifier, "keyid");
    if (ok)
        ok = X509_sign(x, ca_key != NULL ? ca_key : key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes a PEM object to path (0600) through write(bio, obj). */
static int write_pem(const char *path, int (*write)(BIO *, void *), void *obj)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int rc;

    if (bio == NULL)
        return BERTH_ENOMEM;
    if (!write(bio, obj)) {
        BIO_free(bio);
        return BERTH_EINTERNAL;
    }
    len = BIO_get_mem_data(bio, &data);
    rc = fs_write_atomic(path, data, (size_t)len, 0600);
    BIO_free(bio);
    return rc;
}

static int pem_cert(BIO *b, void *x)
{
    return PEM_write_bio_X509(b, x);
}

static int pem_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

/* Makes dir/ca.pem, dir/tls.pem and dir/tls.key. */
static int make_tls(const char *dir)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *leaf = NULL;
    char path[PATH_MAX];
    int rc = BERTH_EINTERNAL;

    if (ca_key == NULL || key == NULL)
        goto out;
    ca = make_cert(ca_key, "berth test CA for Pebble", NULL, NULL, 1);
    leaf = ca != NULL ? make_cert(key, "localhost", ca, ca_key, 2) : NULL;
    if (leaf == NULL)
        goto out;
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    rc = write_pem(path, pem_cert, ca);
    if (rc != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/tls.pem", dir);
    rc = write_pem(path, pem_cert, leaf);
    if (rc != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/tls.key", dir);
    rc = write_pem(path, pem_key, key);
out:
    if (rc != 0)
        h_say("pebble: cannot make the TLS files in %s", dir);
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    return rc;
}

/* ------------------------------------------------------------ processes */

static void stop_both(h_pebble *p)
{
    if (p->proc.pid > 0)
        h_proc_stop(&p->proc, SIGTERM, H_PEBBLE_STOP_MS);
    h_proc_free(&p->proc);
    if (p->dns.pid > 0)
        h_proc_stop(&p->dns, SIGTERM, H_PEBBLE_STOP_MS);
    h_proc_free(&p->dns);
}

/* One try on fresh ports. BERTH_EUNAVAIL when a process exited early
 * (most likely a port race), which the caller retries. */
static int spawn(h_pebble *p, const h_pebble_opts *o)
{
    char cfg[PATH_MAX], json[4096], dns_addr[64], mgmt_addr[64], dns_log[PATH_MAX];
    char validity[64] = "";
    char *env[16];
    int ports[4], i, n = 0, rc;

    for (i = 0; i < 4; i++) {
        ports[i] = h_free_port();
        if (ports[i] < 0)
            return ports[i];
    }
    p->port = ports[0];
    p->mgmt_port = ports[1];
    p->dns_port = ports[2];
    if (o->validity_s > 0)
        snprintf(validity, sizeof(validity),
                 ",\n    \"certificateValidityPeriod\": %ld", o->validity_s);
    snprintf(json, sizeof(json),
             "{\n  \"pebble\": {\n"
             "    \"listenAddress\": \"127.0.0.1:%d\",\n"
             "    \"managementListenAddress\": \"127.0.0.1:%d\",\n"
             "    \"certificate\": \"%s/tls.pem\",\n"
             "    \"privateKey\": \"%s/tls.key\",\n"
             "    \"httpPort\": %d,\n"
             "    \"tlsPort\": %d,\n"
             "    \"ocspResponderURL\": \"\",\n"
             "    \"externalAccountBindingRequired\": false%s\n"
             "  }\n}\n",
             p->port, p->mgmt_port, p->dir, p->dir, o->http_port, ports[3],
             validity);
    snprintf(cfg, sizeof(cfg), "%s/pebble.json", p->dir);
    rc = fs_write_atomic(cfg, json, strlen(json), 0644);
    if (rc != 0)
        return rc;

    /* The DNS companion first: Pebble asks it for every name. */
    snprintf(dns_addr, sizeof(dns_addr), "127.0.0.1:%d", p->dns_port);
    i = h_free_port();
    if (i < 0)
        return i;
    snprintf(mgmt_addr, sizeof(mgmt_addr), "127.0.0.1:%d", i);
    snprintf(dns_log, sizeof(dns_log), "%s/challtestsrv.log", p->dir);
    {
        char *argv[] = {"pebble-challtestsrv", "-dns01", dns_addr,
                        "-http01", "", "-https01", "", "-tlsalpn01", "",
                        "-management", mgmt_addr, "-defaultIPv4",
                        "127.0.0.1", "-defaultIPv6", "", NULL};
        rc = h_proc_start(&p->dns, "challtestsrv", argv, NULL, dns_log);
        if (rc != 0)
            return rc;
    }
    rc = h_proc_wait_log(&p->dns, H_PEBBLE_DNS_READY, H_PEBBLE_READY_MS);
    if (rc == 0)
        rc = h_wait_port(p->dns_port, H_PEBBLE_READY_MS);
    if (rc != 0)
        return BERTH_EUNAVAIL;

    env[n++] = "PEBBLE_VA_NOSLEEP=1";
    for (i = 0; o->env != NULL && o->env[i] != NULL && n < 15; i++)
        env[n++] = (char *)o->env[i];
    env[n] = NULL;
    {
        char *argv[] = {"pebble", "-config", cfg, "-dnsserver", dns_addr, NULL};
        rc = h_proc_start(&p->proc, "pebble", argv, env, p->log);
        if (rc != 0)
            return rc;
    }
    rc = h_proc_wait_log(&p->proc, H_PEBBLE_READY, H_PEBBLE_READY_MS);
    if (rc == 0)
        rc = h_wait_port(p->port, H_PEBBLE_READY_MS);
    if (rc == 0)
        rc = h_wait_port(p->mgmt_port, H_PEBBLE_READY_MS);
    return rc != 0 ? BERTH_EUNAVAIL : 0;
}

int h_pebble_start(h_pebble *p, const h_pebble_opts *o)
{
    int attempt;
    int rc = BERTH_EINVAL;

    memset(p, 0, sizeof(*p));
    if (o == NULL || o->http_port <= 0) {
        h_say("pebble: an HTTP-01 port is required");
        return BERTH_EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return BERTH_EINTERNAL;
    p->dir = h_tempdir("pebble");
    if (p->dir == NULL)
        return BERTH_EIO;
    snprintf(p->ca_bundle, sizeof(p->ca_bundle), "%s/ca.pem", p->dir);
    snprintf(p->log, sizeof(p->log), "%s/pebble.log", p->dir);
    rc = make_tls(p->dir);
    if (rc != 0)
        goto out;
    for (attempt = 0; attempt < H_PEBBLE_ATTEMPTS; attempt++) {
        rc = spawn(p, o);
        if (rc != BERTH_EUNAVAIL)
            break;
        h_say("pebble did not start (attempt %d); retrying", attempt + 1);
        stop_both(p);
    }
    if (rc == 0)
        snprintf(p->directory_url, sizeof(p->directory_url),
                 "https://127.0.0.1:%d/dir", p->port);
out:
    if (rc != 0) {
        char dns_log[PATH_MAX];

        h_say("pebble failed to start: %s", berth_strerror(rc));
        h_log_tail(p->log, H_PEBBLE_TAIL);
        snprintf(dns_log, sizeof(dns_log), "%s/challtestsrv.log", p->dir);
        h_log_tail(dns_log, H_PEBBLE_TAIL);
        h_pebble_stop(p);
    }
    return rc;
}

void h_pebble_stop(h_pebble *p)
{
    if (p == NULL)
        return;
    stop_both(p);
    h_tempdir_drop(p->dir, "pebble");
    memset(p, 0, sizeof(*p));
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    buf *b = arg;

    if (buf_append(b, data, size * n) != 0)
        return 0;
    return size * n;
}

int h_pebble_get(h_pebble *p, const char *path, buf *out)
{
    CURL *c = curl_easy_init();
    char url[512];
    long status = 0;
    CURLcode cc;

    if (c == NULL)
        return BERTH_ENOMEM;
    snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", p->mgmt_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, p->ca_bundle);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        h_say("pebble: GET %s: %s", url, curl_easy_strerror(cc));
        return cc == CURLE_OPERATION_TIMEDOUT ? BERTH_ETIMEDOUT
                                              : BERTH_EUNAVAIL;
    }
    return (int)status;
}
