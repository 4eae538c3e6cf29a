/* certs.h - the edge's certificate manager: one certificate per routed
 * domain, obtained over ACME (acme.h), stored on disk, installed into the
 * proxy, renewed before it expires, its state published on the bus.
 *
 *   edge_certs *c;
 *
 *   rc = edge_certs_start(&(edge_certs_cfg){
 *            .directory_url = url, .ca_bundle = bundle, .email = email,
 *            .data_dir = dir, .bus = b,
 *            .challenge_set = set, .challenge_del = del,
 *            .install = install, .remove = remove, .ud = haproxy}, &c);
 *   edge_certs_want(c, "example.com", site_id);  a route names the domain
 *   edge_certs_drop(c, "example.com");           it no longer does
 *   edge_certs_prune(c);        after the full route list: forget the rest
 *   edge_certs_reinstall(c);    after the proxy restarted
 *   edge_certs_stop(c);
 *
 * Storage. <data_dir>/certs/<domain>.pem holds the chain (leaf first) and
 * then the private key, mode 0600, written atomically; that text is what
 * install() receives. The ACME account key is <data_dir>/acme/account.key.
 * At start every stored certificate that has not expired is installed
 * straight away, without asking the CA, so HTTPS works before the routes
 * are known; stored files that do not parse or whose key does not match
 * are ignored (and logged).
 *
 * Obtaining. A worker thread orders missing certificates one at a time for
 * wanted domains. A certificate is renewed renew_margin before notAfter
 * (default 30 days), or a third of its lifetime before when that is
 * shorter (short-lived certificates), minus a random tenth of that margin
 * so renewals spread out. A failure is retried after retry_min, doubling
 * up to retry_max, and never sooner than a rate limit's Retry-After; a
 * rate limit (rateLimited with Retry-After) holds every order, since CAs
 * count most limits per account. Two orders for one domain are at least
 * retry_min apart, whatever happens. The domain keeps its previous
 * certificate (still installed) while a renewal fails.
 *
 * Status. CertStatus is published on cert.status.<domain> (JetStream
 * stream CERTS) by a publisher thread, in order per domain, retried until
 * NATS takes it: PENDING when a wanted domain has no certificate yet (with
 * a reason and next_attempt_ms when the CA could not be reached), VALID
 * with not_after_ms (with a reason and next_attempt_ms while a renewal
 * fails), FAILED with the CA's reason and next_attempt_ms, and
 * UNSPECIFIED with reason "removed" once a domain was dropped. A status is
 * published when a domain becomes wanted and whenever its state changes.
 *
 * Threads and callbacks. edge_certs_want(), _drop(), _prune(),
 * _reinstall() and _status() may be called from any thread. The four
 * callbacks are called one at a time (never concurrently), from the worker
 * thread or from the thread calling edge_certs_start(), _drop(), _prune()
 * or _reinstall(); challenge_set()/challenge_del() only while an order is
 * under way. They return 0 or a berth code.
 */
#ifndef BERTH_EDGE_CERTS_H
#define BERTH_EDGE_CERTS_H

#include <stdint.h>

#include "bus/bus.h"
#include "svc-edge/acme.h"

#define EDGE_CERTS_REASON_MAX (EDGE_ACME_MESSAGE_MAX + 64)

typedef struct edge_certs edge_certs;

typedef struct edge_certs_cfg {
    const char *directory_url; /* the ACME directory; required */
    const char *ca_bundle;     /* trust for the ACME server; NULL: system */
    const char *email;         /* ACME account contact; NULL: none */
    const char *data_dir;      /* required; certs/ and acme/ go under it */
    bus *bus;                  /* NULL: no status events */
    int64_t renew_margin_ms;   /* 0: 30 days */
    int64_t retry_min_ms;      /* first retry after a failure; 0: 60 s */
    int64_t retry_max_ms;      /* longest retry delay; 0: 6 h */
    long http_timeout_ms;      /* per ACME HTTP call; 0: 30 s */
    long poll_max_ms;          /* per authorization or order wait; 0: 120 s */

    /* Serves GET /.well-known/acme-challenge/<token>. Required. */
    int (*challenge_set)(void *ud, const char *token,
                         const char *key_authorization);
    int (*challenge_del)(void *ud, const char *token);
    /* Installs (or replaces) the certificate for domain: pem is the chain
     * followed by the private key. Required. */
    int (*install)(void *ud, const char *domain, const char *pem);
    /* Uninstalls the certificate for domain. Required. */
    int (*remove)(void *ud, const char *domain);
    void *ud;
} edge_certs_cfg;

/* What the manager knows about one domain. */
typedef struct edge_certs_info {
    int state;             /* a BERTH__V1__CERT_STATE__* value */
    int wanted;            /* edge_certs_want() asked for it */
    int installed;         /* install() succeeded for the stored cert */
    int64_t not_after_ms;  /* of the stored certificate; 0: none */
    int64_t renew_at_ms;   /* when the worker renews it; 0: none */
    int64_t next_attempt_ms; /* after a failure; 0: none */
    int failures;          /* consecutive failed orders */
    unsigned orders;       /* orders started since edge_certs_start() */
    char reason[EDGE_CERTS_REASON_MAX];
} edge_certs_info;

/* Creates <data_dir>/certs and <data_dir>/acme (0700), loads the account
 * key (creating it), loads and installs the stored certificates, then
 * starts the worker and publisher threads. Copies what it needs from cfg.
 * Returns 0 and *out (stop with edge_certs_stop()), BERTH_EINVAL for a
 * missing field, or another berth code (logged). */
int edge_certs_start(const edge_certs_cfg *cfg, edge_certs **out);

/* Cancels an order under way, stops the threads, frees everything.
 * Installed certificates stay installed. NULL is allowed. */
void edge_certs_stop(edge_certs *c);

/* A route names domain (lower-case, see edge_acme_domain_valid()) for
 * site_id (may be NULL). A domain without a valid certificate gets one
 * ordered; asking again is harmless (a new site_id is recorded). Returns
 * 0 or BERTH_EINVAL for a name no certificate can carry. */
int edge_certs_want(edge_certs *c, const char *domain, const char *site_id);

/* No route names domain any more: its certificate is uninstalled (when
 * installed) and deleted from disk, an order for it is abandoned. Returns
 * 0 (also for an unknown domain) or the remove() callback's error (the
 * files are deleted anyway). */
int edge_certs_drop(edge_certs *c, const char *domain);

/* Drops every domain no edge_certs_want() has named since start: call it
 * once the full route list has been applied, so certificates of domains
 * removed while the edge was down go away. Returns 0 or the first remove()
 * error. */
int edge_certs_prune(edge_certs *c);

/* Installs every stored, unexpired certificate again (the proxy
 * restarted and lost its runtime state). Returns 0 or the first install()
 * error (the others are still attempted and retried by the worker). */
int edge_certs_reinstall(edge_certs *c);

/* Copies what the manager knows about domain into *out. Returns 0 or
 * BERTH_ENOENT. */
int edge_certs_status(edge_certs *c, const char *domain, edge_certs_info *out);

#endif
