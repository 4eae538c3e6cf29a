/* certs.c - the edge's certificate manager: domains wanted by routes,
 * certificates stored under <data dir>/certs, a worker thread that orders
 * and renews them over ACME, a publisher thread for CertStatus events.
 *
 * Ownership. The manager owns its entries (one per domain, in a hash
 * table), guarded by mu. Callbacks into the proxy are serialised by cb_mu,
 * which is always taken before mu, never while mu is held. The worker
 * owns the edge_acme client. An entry is freed only under both locks'
 * rules: a dropped entry that still has statuses to publish stays in the
 * publish queue and is freed by the publisher once they are out.
 */
#include "svc-edge/certs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "route.pb-c.h"

#define CERTS_BUCKETS 1024
#define CERTS_SITE_MAX 128
#define CERTS_PEM_MAX (1u << 20)        /* cap on a stored certificate file */
#define CERTS_IDLE_MS 60000             /* the worker looks around this often */
#define CERTS_PUBLISH_WAIT_MS 3000      /* JetStream ack wait per status */
#define CERTS_PUBLISH_RETRY_MS 1000     /* after a failed publish */
#define CERTS_INSTALL_RETRY_MS 1000     /* first retry of a failed install */
#define CERTS_INSTALL_RETRY_MAX_MS 60000
#define CERTS_DAY_MS (24LL * 3600 * 1000)

#define STATE_PENDING BERTH__V1__CERT_STATE__CERT_STATE_PENDING
#define STATE_VALID BERTH__V1__CERT_STATE__CERT_STATE_VALID
#define STATE_FAILED BERTH__V1__CERT_STATE__CERT_STATE_FAILED
#define STATE_NONE BERTH__V1__CERT_STATE__CERT_STATE_UNSPECIFIED

/* One status waiting to be published. */
typedef struct cert_pub {
    int state;
    int64_t not_after_ms;
    int64_t next_attempt_ms;
    char reason[EDGE_CERTS_REASON_MAX];
} cert_pub;

typedef struct cert_entry {
    char domain[EDGE_ACME_DOMAIN_MAX + 1];
    char site_id[CERTS_SITE_MAX];
    bool wanted;    /* a route names it */
    bool have;      /* a certificate is stored */
    bool installed; /* install() took the stored certificate */
    bool gone;      /* dropped; freed once its statuses are out */
    int64_t not_before_ms, not_after_ms;
    int64_t renew_at_ms;
    int64_t next_attempt_ms; /* next order after a failure; 0: none */
    int64_t next_install_ms; /* next install after a failure */
    int64_t last_order_ms;   /* when the latest order started */
    int failures;
    int install_failures;
    unsigned orders;
    int state;
    char reason[EDGE_CERTS_REASON_MAX];
    /* At most two statuses wait: the oldest unpublished one and the
     * latest; a newer one replaces the latest. */
    cert_pub pub[2];
    int npub;
    bool in_pubq;
    struct cert_entry *pub_next;
    struct cert_entry *next; /* hash chain */
} cert_entry;

struct edge_certs {
    /* Set at start, read-only afterwards. */
    char certs_dir[PATH_MAX];
    bus *bus;
    int64_t renew_margin_ms;
    int64_t retry_min_ms;
    int64_t retry_max_ms;
    int (*challenge_set)(void *ud, const char *token, const char *ka);
    int (*challenge_del)(void *ud, const char *token);
    int (*install)(void *ud, const char *domain, const char *pem);
    int (*remove)(void *ud, const char *domain);
    void *ud;
    edge_acme *acme; /* the worker's */

    pthread_mutex_t cb_mu; /* one callback at a time; taken before mu */
    pthread_mutex_t mu;    /* everything below */
    pthread_cond_t work_cond;
    pthread_cond_t pub_cond;
    bool stopping;
    bool pub_failing;
    int64_t orders_paused_until; /* wall ms: the CA said rateLimited */
    cert_entry *buckets[CERTS_BUCKETS];
    cert_entry *pubq_head, *pubq_tail;
    pthread_t worker, publisher;
    bool worker_started, publisher_started;
};

enum work_kind { WORK_NONE, WORK_INSTALL, WORK_ORDER };

/* ------------------------------------------------------------ entries */

static unsigned domain_hash(const char *s)
{
    unsigned h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % CERTS_BUCKETS;
}

static cert_entry *entry_find(edge_certs *c, const char *domain)
{
    cert_entry *e;

    for (e = c->buckets[domain_hash(domain)]; e != NULL; e = e->next) {
        if (strcmp(e->domain, domain) == 0)
            return e;
    }
    return NULL;
}

/* Returns the entry for domain, creating it; NULL only without memory. */
static cert_entry *entry_get(edge_certs *c, const char *domain)
{
    cert_entry *e = entry_find(c, domain);
    unsigned h;

    if (e != NULL)
        return e;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->domain, sizeof(e->domain), "%s", domain);
    h = domain_hash(domain);
    e->next = c->buckets[h];
    c->buckets[h] = e;
    return e;
}

static void entry_free(edge_certs *c, cert_entry *e)
{
    cert_entry **pp = &c->buckets[domain_hash(e->domain)];

    while (*pp != NULL && *pp != e)
        pp = &(*pp)->next;
    if (*pp == e)
        *pp = e->next;
    free(e);
}

static int cert_path(const edge_certs *c, const char *domain, char *dst,
                     size_t size)
{
    if (snprintf(dst, size, "%s/%s.pem", c->certs_dir, domain) >= (int)size)
        return BERTH_EINVAL;
    return 0;
}

/* ------------------------------------------------------------ timing */

/* A random number in [0, n]. */
static int64_t rand_upto(int64_t n)
{
    uint64_t r = 0;

    if (n <= 0)
        return 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint64_t)clock_mono_ns();
    return (int64_t)(r % (uint64_t)(n + 1));
}

/* When to renew a certificate valid from nb to na: the margin before na,
 * or a third of the lifetime when that is shorter, minus up to a tenth of
 * that margin at random. */
static int64_t renew_time(const edge_certs *c, int64_t nb, int64_t na)
{
    int64_t margin = c->renew_margin_ms;
    int64_t life = na - nb;

    if (life > 0 && margin > life / 3)
        margin = life / 3;
    return na - margin - rand_upto(margin / 10);
}

/* The delay before retry number failures (1 for the first), doubling
 * from retry_min up to retry_max, plus up to a tenth at random. */
static int64_t retry_delay(const edge_certs *c, int failures)
{
    int64_t d = c->retry_min_ms;
    int i;

    for (i = 1; i < failures && d < c->retry_max_ms; i++)
        d *= 2;
    if (d > c->retry_max_ms)
        d = c->retry_max_ms;
    return d + rand_upto(d / 10);
}

/* Waits on cond for at most ms (monotonic clock). */
static void cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cond, mu, &ts);
}

static bool cert_valid(const cert_entry *e, int64_t now)
{
    return e->have && e->not_after_ms > now;
}

/* ------------------------------------------------------------ statuses */

static const char *state_name(int state)
{
    switch (state) {
    case STATE_PENDING:
        return "pending";
    case STATE_VALID:
        return "valid";
    case STATE_FAILED:
        return "failed";
    default:
        return "none";
    }
}

/* Sets e's state and reason and queues the status for the publisher.
 * Called with mu held. */
static void status_set(edge_certs *c, cert_entry *e, int state,
                       const char *reason)
{
    cert_pub *p;

    e->state = state;
    snprintf(e->reason, sizeof(e->reason), "%s", reason != NULL ? reason : "");
    if (c->bus == NULL)
        return;
    p = e->npub < 2 ? &e->pub[e->npub++] : &e->pub[1];
    p->state = state;
    p->not_after_ms = state == STATE_VALID ? e->not_after_ms : 0;
    p->next_attempt_ms = state == STATE_NONE ? 0 : e->next_attempt_ms;
    memcpy(p->reason, e->reason, sizeof(p->reason));
    if (!e->in_pubq) {
        e->in_pubq = true;
        e->pub_next = NULL;
        if (c->pubq_tail != NULL)
            c->pubq_tail->pub_next = e;
        else
            c->pubq_head = e;
        c->pubq_tail = e;
    }
    pthread_cond_signal(&c->pub_cond);
}

static int publish(edge_certs *c, const char *domain, const char *site,
                   const cert_pub *p)
{
    Berth__V1__CertStatus m = BERTH__V1__CERT_STATUS__INIT;
    char subject[EDGE_ACME_DOMAIN_MAX + 16];

    snprintf(subject, sizeof(subject), "cert.status.%s", domain);
    m.domain = (char *)domain;
    m.state = (Berth__V1__CertState)p->state;
    m.not_after_ms = p->not_after_ms;
    m.reason = (char *)p->reason;
    m.next_attempt_ms = p->next_attempt_ms;
    m.site_id = (char *)site;
    return bus_js_publish(c->bus, subject, &m.base, NULL,
                          CERTS_PUBLISH_WAIT_MS);
}

/* Publishes queued statuses in order, one domain's oldest at a time,
 * retrying while NATS does not take them. */
static void *publisher_main(void *arg)
{
    edge_certs *c = arg;
    char domain[EDGE_ACME_DOMAIN_MAX + 1], site[CERTS_SITE_MAX];
    cert_pub p;
    cert_entry *e;
    int rc;

    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        e = c->pubq_head;
        if (e == NULL) {
            pthread_cond_wait(&c->pub_cond, &c->mu);
            continue;
        }
        /* pub[0] stays put while it is published: a newer status only
         * appends or replaces pub[1]. */
        p = e->pub[0];
        memcpy(domain, e->domain, sizeof(domain));
        memcpy(site, e->site_id, sizeof(site));
        pthread_mutex_unlock(&c->mu);
        rc = publish(c, domain, site, &p);
        pthread_mutex_lock(&c->mu);
        if (rc != 0) {
            if (!c->pub_failing)
                log_warn("cert status not published, retrying",
                         "domain=%s error=%s", domain, berth_strerror(rc));
            c->pub_failing = true;
            if (!c->stopping)
                cond_wait_ms(&c->pub_cond, &c->mu, CERTS_PUBLISH_RETRY_MS);
            continue;
        }
        c->pub_failing = false;
        e->npub--;
        if (e->npub > 0)
            e->pub[0] = e->pub[1];
        c->pubq_head = e->pub_next;
        if (c->pubq_head == NULL)
            c->pubq_tail = NULL;
        e->in_pubq = false;
        e->pub_next = NULL;
        if (e->npub > 0) {
            e->in_pubq = true;
            if (c->pubq_tail != NULL)
                c->pubq_tail->pub_next = e;
            else
                c->pubq_head = e;
            c->pubq_tail = e;
        } else if (e->gone) {
            entry_free(c, e);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ------------------------------------------------------------ callbacks */

static int h01_set(void *ud, const char *token, const char *ka)
{
    edge_certs *c = ud;
    int rc;

    pthread_mutex_lock(&c->cb_mu);
    rc = c->challenge_set(c->ud, token, ka);
    pthread_mutex_unlock(&c->cb_mu);
    return rc;
}

static int h01_del(void *ud, const char *token)
{
    edge_certs *c = ud;
    int rc;

    pthread_mutex_lock(&c->cb_mu);
    rc = c->challenge_del(c->ud, token);
    pthread_mutex_unlock(&c->cb_mu);
    return rc;
}

/* Installs the stored certificate of domain. Called with cb_mu held and
 * mu not held; updates the entry. */
static int install_stored(edge_certs *c, const char *domain)
{
    char path[PATH_MAX];
    char *pem = NULL;
    size_t len = 0;
    cert_entry *e;
    int rc;

    rc = cert_path(c, domain, path, sizeof(path));
    if (rc == 0)
        rc = fs_read_file(path, CERTS_PEM_MAX, &pem, &len);
    if (rc == 0)
        rc = c->install(c->ud, domain, pem);
    pthread_mutex_lock(&c->mu);
    e = entry_find(c, domain);
    if (e != NULL && rc == 0) {
        e->installed = true;
        e->install_failures = 0;
        log_info("certificate installed", "domain=%s", domain);
    } else if (e != NULL && rc == BERTH_ENOENT && pem == NULL) {
        /* The file went away: order again when wanted. */
        e->have = false;
        e->installed = false;
        log_warn("stored certificate vanished", "domain=%s", domain);
        pthread_cond_signal(&c->work_cond);
    } else if (e != NULL) {
        int64_t d = CERTS_INSTALL_RETRY_MS;
        int i;

        for (i = 0; i < e->install_failures && d < CERTS_INSTALL_RETRY_MAX_MS;
             i++)
            d *= 2;
        /* The proxy may have lost it (a restart): the worker retries. */
        e->installed = false;
        e->install_failures++;
        e->next_install_ms = clock_wall_ms() + d;
        log_warn("certificate install failed", "domain=%s error=%s retry_ms=%lld",
                 domain, berth_strerror(rc), (long long)d);
    }
    pthread_mutex_unlock(&c->mu);
    if (pem != NULL)
        memset(pem, 0, len);
    free(pem);
    return rc;
}

/* Forgets domain: uninstalls, deletes the file, publishes "removed".
 * Called with cb_mu held and mu not held. */
static int drop_one(edge_certs *c, const char *domain)
{
    char path[PATH_MAX];
    cert_entry *e;
    bool installed;
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    e = entry_find(c, domain);
    if (e == NULL || e->gone) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    installed = e->installed;
    e->wanted = false;
    e->have = false;
    e->installed = false;
    e->not_before_ms = e->not_after_ms = e->renew_at_ms = 0;
    e->next_attempt_ms = 0;
    e->failures = 0;
    e->gone = true;
    status_set(c, e, STATE_NONE, "removed");
    if (!e->in_pubq)
        entry_free(c, e);
    pthread_mutex_unlock(&c->mu);

    if (installed) {
        rc = c->remove(c->ud, domain);
        if (rc != 0)
            log_warn("certificate remove failed", "domain=%s error=%s", domain,
                     berth_strerror(rc));
    }
    if (cert_path(c, domain, path, sizeof(path)) == 0 && unlink(path) != 0 &&
        errno != ENOENT)
        log_warn("certificate file not deleted", "path=%s error=%s", path,
                 strerror(errno));
    log_info("certificate dropped", "domain=%s was_installed=%s", domain,
             installed ? "yes" : "no");
    return rc;
}

/* ------------------------------------------------------------ worker */

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* When the worker should act on e next (wall ms; INT64_MAX: never) and
 * what it should do then. Two orders for one domain are always at least
 * retry_min apart, whatever the CA returned, and no order starts while a
 * rate limit holds. Called with mu held. */
static int64_t entry_due(const edge_certs *c, const cert_entry *e, int64_t now,
                         enum work_kind *kind)
{
    bool valid = cert_valid(e, now);
    int64_t due;

    *kind = WORK_NONE;
    if (valid && !e->installed) {
        *kind = WORK_INSTALL;
        return e->next_install_ms;
    }
    if (!e->wanted)
        return INT64_MAX;
    *kind = WORK_ORDER;
    due = valid ? max64(e->renew_at_ms, e->next_attempt_ms)
                : e->next_attempt_ms;
    if (e->last_order_ms > 0)
        due = max64(due, e->last_order_ms + c->retry_min_ms);
    return max64(due, c->orders_paused_until);
}

/* Records a failed order. Called with mu held. */
static void order_failed(edge_certs *c, cert_entry *e, int rc,
                         const edge_acme_err *err, int64_t now)
{
    char reason[EDGE_CERTS_REASON_MAX];
    int64_t delay;
    int state;

    e->failures++;
    delay = retry_delay(c, e->failures);
    if (err->retry_after_ms > delay)
        delay = err->retry_after_ms;
    e->next_attempt_ms = now + delay;
    /* Rate limits are mostly per account: other domains wait too. */
    if (rc == BERTH_ETHROTTLE && err->retry_after_ms > 0)
        c->orders_paused_until =
            max64(c->orders_paused_until, now + err->retry_after_ms);
    if (cert_valid(e, now)) {
        state = STATE_VALID;
        snprintf(reason, sizeof(reason), "renewal failed: %s",
                 err->message[0] != '\0' ? err->message : berth_strerror(rc));
    } else {
        /* A CA that cannot be reached leaves the domain pending; a CA that
         * said no makes it failed. */
        state = rc == BERTH_EUNAVAIL || rc == BERTH_ETIMEDOUT ? STATE_PENDING
                                                              : STATE_FAILED;
        snprintf(reason, sizeof(reason), "%s",
                 err->message[0] != '\0' ? err->message : berth_strerror(rc));
    }
    status_set(c, e, state, reason);
    log_warn("certificate order failed",
             "domain=%s state=%s code=%s failures=%d retry_in_ms=%lld "
             "reason=%s",
             e->domain, state_name(state), berth_errname(rc), e->failures,
             (long long)delay, reason);
}

/* Stores and installs a new certificate for domain unless the domain was
 * dropped meanwhile. Takes cb_mu, then mu. */
static void order_done(edge_certs *c, const char *domain,
                       const edge_acme_cert *cert)
{
    char path[PATH_MAX];
    char *pem = NULL;
    size_t n;
    cert_entry *e;
    edge_acme_err err = {0};
    int64_t now;
    int rc, irc = BERTH_EINVAL;

    pthread_mutex_lock(&c->cb_mu);
    pthread_mutex_lock(&c->mu);
    e = entry_find(c, domain);
    if (e == NULL || !e->wanted) {
        pthread_mutex_unlock(&c->mu);
        log_info("certificate discarded: domain dropped during the order",
                 "domain=%s", domain);
        goto out;
    }
    pthread_mutex_unlock(&c->mu);

    n = strlen(cert->chain_pem) + strlen(cert->key_pem) + 2;
    pem = malloc(n);
    rc = pem != NULL ? cert_path(c, domain, path, sizeof(path)) : BERTH_ENOMEM;
    if (rc == 0) {
        size_t cl = strlen(cert->chain_pem);
        snprintf(pem, n, "%s%s%s", cert->chain_pem,
                 cl > 0 && cert->chain_pem[cl - 1] != '\n' ? "\n" : "",
                 cert->key_pem);
        rc = fs_write_atomic(path, pem, strlen(pem), 0600);
    }
    if (rc == 0)
        irc = c->install(c->ud, domain, pem);

    pthread_mutex_lock(&c->mu);
    now = clock_wall_ms();
    e = entry_find(c, domain);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        goto out;
    }
    if (rc != 0) {
        snprintf(err.message, sizeof(err.message),
                 "storing the certificate failed: %s", berth_strerror(rc));
        order_failed(c, e, rc, &err, now);
        pthread_mutex_unlock(&c->mu);
        goto out;
    }
    e->have = true;
    e->installed = irc == 0;
    e->install_failures = irc == 0 ? 0 : 1;
    e->next_install_ms = irc == 0 ? 0 : now + CERTS_INSTALL_RETRY_MS;
    e->not_before_ms = cert->not_before_ms;
    e->not_after_ms = cert->not_after_ms;
    e->renew_at_ms = renew_time(c, cert->not_before_ms, cert->not_after_ms);
    e->failures = 0;
    e->next_attempt_ms = 0;
    status_set(c, e, STATE_VALID, "");
    log_info("certificate obtained", "domain=%s not_after_ms=%lld "
             "renew_in_s=%lld installed=%s",
             domain, (long long)e->not_after_ms,
             (long long)((e->renew_at_ms - now) / 1000),
             irc == 0 ? "yes" : "no");
    if (irc != 0)
        log_warn("certificate install failed", "domain=%s error=%s", domain,
                 berth_strerror(irc));
    pthread_mutex_unlock(&c->mu);
out:
    pthread_mutex_unlock(&c->cb_mu);
    if (pem != NULL)
        memset(pem, 0, strlen(pem));
    free(pem);
}

/* Runs one order for domain (mu not held). */
static void order_run(edge_certs *c, const char *domain)
{
    edge_acme_http01 h = {.set = h01_set, .del = h01_del, .ud = c};
    edge_acme_cert cert = {0};
    edge_acme_err err = {0};
    cert_entry *e;
    int rc;

    log_info("certificate order started", "domain=%s", domain);
    rc = edge_acme_obtain(c->acme, domain, &h, &cert, &err);
    if (rc == 0) {
        order_done(c, domain, &cert);
        edge_acme_cert_free(&cert);
        return;
    }
    if (rc == BERTH_ECANCELED)
        return;
    pthread_mutex_lock(&c->mu);
    e = entry_find(c, domain);
    if (e != NULL && e->wanted)
        order_failed(c, e, rc, &err, clock_wall_ms());
    pthread_mutex_unlock(&c->mu);
}

/* Orders, renews and installs, one thing at a time, the most overdue
 * first; sleeps until the next thing is due or someone signals. */
static void *worker_main(void *arg)
{
    edge_certs *c = arg;
    char domain[EDGE_ACME_DOMAIN_MAX + 1];
    cert_entry *e, *pick;
    enum work_kind kind, pick_kind;
    int64_t now, due, pick_due, wait;
    size_t i;

    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        now = clock_wall_ms();
        pick = NULL;
        pick_due = INT64_MAX;
        pick_kind = WORK_NONE;
        for (i = 0; i < CERTS_BUCKETS; i++) {
            for (e = c->buckets[i]; e != NULL; e = e->next) {
                due = entry_due(c, e, now, &kind);
                if (kind != WORK_NONE && due < pick_due) {
                    pick = e;
                    pick_due = due;
                    pick_kind = kind;
                }
            }
        }
        if (pick == NULL || pick_due > now) {
            wait = pick == NULL ? CERTS_IDLE_MS : pick_due - now;
            cond_wait_ms(&c->work_cond, &c->mu,
                         wait < CERTS_IDLE_MS ? wait : CERTS_IDLE_MS);
            continue;
        }
        memcpy(domain, pick->domain, sizeof(domain));
        if (pick_kind == WORK_ORDER) {
            pick->orders++;
            pick->last_order_ms = now;
        }
        pthread_mutex_unlock(&c->mu);
        if (pick_kind == WORK_INSTALL) {
            pthread_mutex_lock(&c->cb_mu);
            install_stored(c, domain);
            pthread_mutex_unlock(&c->cb_mu);
        } else {
            order_run(c, domain);
        }
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ------------------------------------------------------------ start-up */

/* Loads one stored file and installs it when it has not expired. Called
 * before the threads start. */
static void load_one(edge_certs *c, const char *name)
{
    char domain[EDGE_ACME_DOMAIN_MAX + 1], path[PATH_MAX];
    size_t n = strlen(name), len = 0;
    int64_t nb = 0, na = 0, now = clock_wall_ms();
    struct stat st;
    char *pem = NULL;
    cert_entry *e;
    int rc;

    if (n <= 4 || n - 4 > EDGE_ACME_DOMAIN_MAX ||
        strcmp(name + n - 4, ".pem") != 0)
        return;
    memcpy(domain, name, n - 4);
    domain[n - 4] = '\0';
    if (!edge_acme_domain_valid(domain) ||
        cert_path(c, domain, path, sizeof(path)) != 0)
        return;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    if ((st.st_mode & 077) != 0) {
        log_warn("stored certificate readable by others, fixed", "path=%s",
                 path);
        chmod(path, 0600);
    }
    rc = fs_read_file(path, CERTS_PEM_MAX, &pem, &len);
    if (rc == 0)
        rc = edge_acme_pem_check(pem, domain, &nb, &na);
    if (rc != 0) {
        log_warn("stored certificate ignored", "path=%s error=%s", path,
                 berth_strerror(rc));
        goto out;
    }
    e = entry_get(c, domain);
    if (e == NULL)
        goto out;
    e->have = true;
    e->not_before_ms = nb;
    e->not_after_ms = na;
    e->renew_at_ms = renew_time(c, nb, na);
    if (na <= now) {
        log_info("stored certificate expired", "domain=%s", domain);
        goto out;
    }
    e->state = STATE_VALID;
    rc = c->install(c->ud, domain, pem);
    e->installed = rc == 0;
    if (rc != 0) {
        e->install_failures = 1;
        e->next_install_ms = now + CERTS_INSTALL_RETRY_MS;
        log_warn("certificate install failed", "domain=%s error=%s", domain,
                 berth_strerror(rc));
    }
    log_info("stored certificate loaded", "domain=%s installed=%s "
             "renew_in_s=%lld",
             domain, rc == 0 ? "yes" : "no",
             (long long)((e->renew_at_ms - now) / 1000));
out:
    if (pem != NULL)
        memset(pem, 0, len);
    free(pem);
}

static int load_stored(edge_certs *c)
{
    DIR *d = opendir(c->certs_dir);
    struct dirent *de;

    if (d == NULL)
        return berth_err_from_errno(errno);
    pthread_mutex_lock(&c->cb_mu);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.')
            load_one(c, de->d_name);
    }
    pthread_mutex_unlock(&c->cb_mu);
    closedir(d);
    return 0;
}

int edge_certs_start(const edge_certs_cfg *cfg, edge_certs **out)
{
    edge_certs *c = NULL;
    pthread_condattr_t ca;
    char acme_dir[PATH_MAX], key_path[PATH_MAX];
    int rc;

    *out = NULL;
    if (cfg == NULL || cfg->directory_url == NULL || cfg->data_dir == NULL ||
        cfg->data_dir[0] == '\0' || cfg->challenge_set == NULL ||
        cfg->challenge_del == NULL || cfg->install == NULL ||
        cfg->remove == NULL)
        return BERTH_EINVAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BERTH_ENOMEM;
    pthread_mutex_init(&c->cb_mu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->work_cond, &ca);
    pthread_cond_init(&c->pub_cond, &ca);
    pthread_condattr_destroy(&ca);
    c->bus = cfg->bus;
    c->renew_margin_ms =
        cfg->renew_margin_ms > 0 ? cfg->renew_margin_ms : 30 * CERTS_DAY_MS;
    c->retry_min_ms = cfg->retry_min_ms > 0 ? cfg->retry_min_ms : 60000;
    c->retry_max_ms =
        cfg->retry_max_ms > 0 ? cfg->retry_max_ms : 6 * 3600 * 1000LL;
    if (c->retry_max_ms < c->retry_min_ms)
        c->retry_max_ms = c->retry_min_ms;
    c->challenge_set = cfg->challenge_set;
    c->challenge_del = cfg->challenge_del;
    c->install = cfg->install;
    c->remove = cfg->remove;
    c->ud = cfg->ud;

    if (snprintf(c->certs_dir, sizeof(c->certs_dir), "%s/certs",
                 cfg->data_dir) >= (int)sizeof(c->certs_dir) ||
        snprintf(acme_dir, sizeof(acme_dir), "%s/acme", cfg->data_dir) >=
            (int)sizeof(acme_dir) ||
        snprintf(key_path, sizeof(key_path), "%s/account.key", acme_dir) >=
            (int)sizeof(key_path)) {
        rc = BERTH_EINVAL;
        goto out;
    }
    rc = fs_mkdirs(c->certs_dir, 0700);
    if (rc == 0)
        rc = fs_mkdirs(acme_dir, 0700);
    if (rc != 0) {
        log_error("cannot create the certificate directories", "dir=%s error=%s",
                  cfg->data_dir, berth_strerror(rc));
        goto out;
    }
    rc = edge_acme_new(&(edge_acme_cfg){.directory_url = cfg->directory_url,
                                        .ca_bundle = cfg->ca_bundle,
                                        .account_key_path = key_path,
                                        .email = cfg->email,
                                        .timeout_ms = cfg->http_timeout_ms,
                                        .poll_max_ms = cfg->poll_max_ms},
                       &c->acme);
    if (rc != 0) {
        log_error("acme client not created", "directory=%s error=%s",
                  cfg->directory_url, berth_strerror(rc));
        goto out;
    }
    rc = load_stored(c);
    if (rc != 0) {
        log_error("stored certificates not read", "dir=%s error=%s",
                  c->certs_dir, berth_strerror(rc));
        goto out;
    }
    if (pthread_create(&c->worker, NULL, worker_main, c) != 0) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    c->worker_started = true;
    if (pthread_create(&c->publisher, NULL, publisher_main, c) != 0) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    c->publisher_started = true;
    log_info("certificate manager started", "directory=%s dir=%s",
             cfg->directory_url, c->certs_dir);
    *out = c;
    c = NULL;
out:
    edge_certs_stop(c);
    return rc;
}

void edge_certs_stop(edge_certs *c)
{
    cert_entry *e, *next;
    size_t i;

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->work_cond);
    pthread_cond_broadcast(&c->pub_cond);
    pthread_mutex_unlock(&c->mu);
    if (c->acme != NULL)
        edge_acme_cancel(c->acme);
    if (c->worker_started)
        pthread_join(c->worker, NULL);
    if (c->publisher_started)
        pthread_join(c->publisher, NULL);
    for (i = 0; i < CERTS_BUCKETS; i++) {
        for (e = c->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    edge_acme_free(c->acme);
    pthread_cond_destroy(&c->work_cond);
    pthread_cond_destroy(&c->pub_cond);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->cb_mu);
    free(c);
}

/* ------------------------------------------------------------ public */

int edge_certs_want(edge_certs *c, const char *domain, const char *site_id)
{
    cert_entry *e;
    bool changed;
    int64_t now = clock_wall_ms();

    if (!edge_acme_domain_valid(domain))
        return BERTH_EINVAL;
    if (site_id == NULL)
        site_id = "";
    pthread_mutex_lock(&c->mu);
    e = entry_get(c, domain);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        return BERTH_ENOMEM;
    }
    changed = !e->wanted || strcmp(e->site_id, site_id) != 0;
    if (e->gone) {
        e->gone = false;
        e->failures = 0;
        e->next_attempt_ms = 0;
    }
    e->wanted = true;
    snprintf(e->site_id, sizeof(e->site_id), "%s", site_id);
    if (changed) {
        if (cert_valid(e, now))
            status_set(c, e, STATE_VALID, "");
        else if (e->state != STATE_FAILED || e->failures == 0)
            status_set(c, e, STATE_PENDING, "");
        else
            status_set(c, e, e->state, e->reason);
        pthread_cond_signal(&c->work_cond);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int edge_certs_drop(edge_certs *c, const char *domain)
{
    int rc;

    if (domain == NULL)
        return BERTH_EINVAL;
    pthread_mutex_lock(&c->cb_mu);
    rc = drop_one(c, domain);
    pthread_mutex_unlock(&c->cb_mu);
    return rc;
}

/* Copies the domains of the entries keep() selects into a new array
 * (caller frees). Called with mu held. */
static int collect(edge_certs *c, bool (*keep)(const cert_entry *, int64_t),
                   char (**out)[EDGE_ACME_DOMAIN_MAX + 1], size_t *n)
{
    char(*list)[EDGE_ACME_DOMAIN_MAX + 1] = NULL, (*tmp)[EDGE_ACME_DOMAIN_MAX + 1];
    size_t cap = 0, i;
    int64_t now = clock_wall_ms();
    cert_entry *e;

    *out = NULL;
    *n = 0;
    for (i = 0; i < CERTS_BUCKETS; i++) {
        for (e = c->buckets[i]; e != NULL; e = e->next) {
            if (!keep(e, now))
                continue;
            if (*n == cap) {
                cap = cap == 0 ? 16 : cap * 2;
                tmp = realloc(list, cap * sizeof(*list));
                if (tmp == NULL) {
                    free(list);
                    return BERTH_ENOMEM;
                }
                list = tmp;
            }
            memcpy(list[(*n)++], e->domain, sizeof(list[0]));
        }
    }
    *out = list;
    return 0;
}

static bool unwanted(const cert_entry *e, int64_t now)
{
    (void)now;
    return !e->wanted && !e->gone;
}

static bool installable(const cert_entry *e, int64_t now)
{
    return cert_valid(e, now);
}

int edge_certs_prune(edge_certs *c)
{
    char(*list)[EDGE_ACME_DOMAIN_MAX + 1] = NULL;
    size_t n = 0, i;
    int rc, first = 0;

    pthread_mutex_lock(&c->cb_mu);
    pthread_mutex_lock(&c->mu);
    rc = collect(c, unwanted, &list, &n);
    pthread_mutex_unlock(&c->mu);
    for (i = 0; rc == 0 && i < n; i++) {
        int r = drop_one(c, list[i]);
        if (r != 0 && first == 0)
            first = r;
    }
    pthread_mutex_unlock(&c->cb_mu);
    free(list);
    if (n > 0)
        log_info("certificates pruned", "count=%zu", n);
    return rc != 0 ? rc : first;
}

int edge_certs_reinstall(edge_certs *c)
{
    char(*list)[EDGE_ACME_DOMAIN_MAX + 1] = NULL;
    size_t n = 0, i;
    int rc, first = 0;

    pthread_mutex_lock(&c->cb_mu);
    pthread_mutex_lock(&c->mu);
    rc = collect(c, installable, &list, &n);
    pthread_mutex_unlock(&c->mu);
    for (i = 0; rc == 0 && i < n; i++) {
        int r = install_stored(c, list[i]);
        if (r != 0 && first == 0)
            first = r;
    }
    pthread_mutex_unlock(&c->cb_mu);
    free(list);
    log_info("certificates reinstalled", "count=%zu error=%s", n,
             berth_strerror(rc != 0 ? rc : first));
    /* Failed installs are retried by the worker. */
    pthread_mutex_lock(&c->mu);
    pthread_cond_signal(&c->work_cond);
    pthread_mutex_unlock(&c->mu);
    return rc != 0 ? rc : first;
}

int edge_certs_status(edge_certs *c, const char *domain, edge_certs_info *out)
{
    cert_entry *e;
    int rc = BERTH_ENOENT;

    memset(out, 0, sizeof(*out));
    if (domain == NULL)
        return BERTH_EINVAL;
    pthread_mutex_lock(&c->mu);
    e = entry_find(c, domain);
    if (e != NULL && !e->gone) {
        out->state = e->state;
        out->wanted = e->wanted;
        out->installed = e->installed;
        out->not_after_ms = e->have ? e->not_after_ms : 0;
        out->renew_at_ms = e->have ? e->renew_at_ms : 0;
        out->next_attempt_ms = e->next_attempt_ms;
        out->failures = e->failures;
        out->orders = e->orders;
        memcpy(out->reason, e->reason, sizeof(out->reason));
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}
