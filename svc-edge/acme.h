/* acme.h - an ACME client (RFC 8555) for one certificate per domain, HTTP-01.
 *
 *   edge_acme *a;
 *   edge_acme_cert cert = {0};
 *   edge_acme_err err;
 *
 *   rc = edge_acme_new(&(edge_acme_cfg){.directory_url = url,
 *                                       .account_key_path = path}, &a);
 *   rc = edge_acme_obtain(a, "example.com", &http01, &cert, &err);
 *   ... cert.chain_pem, cert.key_pem, cert.not_after_ms ...
 *   edge_acme_cert_free(&cert);
 *   edge_acme_free(a);
 *
 * The account key is ECDSA P-256, created on first use and kept 0600 as a
 * PEM file; a key file readable by others is refused. The account is
 * registered (or found again: newAccount is idempotent per key) before the
 * first order and its URL is then used as the JWS "kid".
 *
 * One edge_acme_obtain() call runs a whole order: newOrder for one DNS
 * identifier, each pending authorization's HTTP-01 challenge provisioned
 * through the caller's callbacks (and withdrawn afterwards, whatever
 * happens), polling with Retry-After honoured, finalize with a CSR for a
 * new P-256 key (CN and SAN = the domain), and the PEM chain downloaded.
 *
 * Errors. 0 or a berth code, with a sentence and the ACME problem type in
 * err. Problem documents map onto codes: rateLimited -> BERTH_ETHROTTLE
 * (err->retry_after_ms says how long to back off), a failed validation
 * (unauthorized, incorrectResponse, connection, dns, tls, caa) ->
 * BERTH_EPERM, bad input -> BERTH_EINVAL, serverInternal and 5xx ->
 * BERTH_EUNAVAIL. A CA that cannot be reached is BERTH_EUNAVAIL, a call
 * that outlives its timeout BERTH_ETIMEDOUT, an order that is still not
 * done after poll_max_ms BERTH_ETIMEDOUT. badNonce is retried with the
 * fresh nonce a few times and never reaches the caller unless it persists.
 *
 * Threads. An edge_acme is used by one thread at a time (it keeps one
 * libcurl handle, the nonce and the account URL); edge_acme_cancel() is the
 * exception and may be called from any thread.
 */
#ifndef BERTH_EDGE_ACME_H
#define BERTH_EDGE_ACME_H

#include <stddef.h>
#include <stdint.h>

#define EDGE_ACME_DOMAIN_MAX 253
#define EDGE_ACME_MESSAGE_MAX 512

typedef struct edge_acme edge_acme;

typedef struct edge_acme_cfg {
    const char *directory_url;    /* https://acme-v02.api.letsencrypt.org/directory */
    const char *ca_bundle;        /* trust for the ACME server; NULL: system */
    const char *account_key_path; /* PEM, created 0600 when missing */
    const char *email;            /* contact; NULL or "": none */
    long connect_timeout_ms;      /* per HTTP call; 0: 10000 */
    long timeout_ms;              /* per HTTP call; 0: 30000 */
    long poll_max_ms;             /* bound on waiting for one authorization
                                     or order state; 0: 120000 */
} edge_acme_cfg;

/* Publishes and withdraws an HTTP-01 answer: GET
 * /.well-known/acme-challenge/<token> must return key_authorization. Both
 * return 0 or a berth code. */
typedef struct edge_acme_http01 {
    int (*set)(void *ud, const char *token, const char *key_authorization);
    int (*del)(void *ud, const char *token);
    void *ud;
} edge_acme_http01;

/* An issued certificate. The strings belong to the struct; free them with
 * edge_acme_cert_free(). */
typedef struct edge_acme_cert {
    char *chain_pem;      /* leaf first, then the intermediates */
    char *key_pem;        /* the certificate's private key, PKCS#8 */
    int64_t not_before_ms; /* wall time, ms since the epoch */
    int64_t not_after_ms;
} edge_acme_cert;

/* Why a call failed. */
typedef struct edge_acme_err {
    int http_status;        /* 0: no HTTP answer */
    char type[64];          /* problem type without "urn:ietf:params:acme:error:" */
    int64_t retry_after_ms; /* > 0 when the server asked to wait that long */
    char message[EDGE_ACME_MESSAGE_MAX]; /* a sentence */
} edge_acme_err;

/* Loads or creates the account key and prepares the HTTP client; nothing
 * is sent yet. Returns 0 and *out (free with edge_acme_free()),
 * BERTH_EINVAL for a missing directory URL or key path, BERTH_EPERM for a
 * key file with permissions wider than 0600, BERTH_EPROTO for a key file
 * that is not a P-256 key, or another berth code. */
int edge_acme_new(const edge_acme_cfg *cfg, edge_acme **out);

void edge_acme_free(edge_acme *a);

/* Obtains a certificate for domain (see the top of this file). h->set and
 * h->del are called on this thread. On success *cert is filled (the caller
 * frees it with edge_acme_cert_free()); on failure it is left empty and
 * err (which may be NULL) says why. */
int edge_acme_obtain(edge_acme *a, const char *domain,
                     const edge_acme_http01 *h, edge_acme_cert *cert,
                     edge_acme_err *err);

/* Makes the call in progress, and every later one, fail quickly with
 * BERTH_ECANCELED. Thread-safe. */
void edge_acme_cancel(edge_acme *a);

void edge_acme_cert_free(edge_acme_cert *c);

/* Returns the account's key authorization thumbprint (base64url of the
 * SHA-256 JWK thumbprint, RFC 7638). Valid for the life of a. */
const char *edge_acme_thumbprint(const edge_acme *a);

/* Returns 1 when d is a DNS name this client asks certificates for:
 * lower-case letters, digits and '-' in labels of 1 to 63 bytes, no label
 * starting or ending with '-', at least two labels, at most 253 bytes, a
 * last label that is not all digits (no IP addresses), no wildcard. */
int edge_acme_domain_valid(const char *d);

/* Checks a stored PEM (certificates, leaf first, and the private key in
 * any order): the leaf's public key matches the private key and the leaf
 * names domain. Fills the leaf's validity (either pointer may be NULL).
 * Returns 0, BERTH_EPROTO for a PEM that does not hold both or does not
 * parse, BERTH_ECONFLICT when the key or the name does not match. */
int edge_acme_pem_check(const char *pem, const char *domain,
                        int64_t *not_before_ms, int64_t *not_after_ms);

#endif
