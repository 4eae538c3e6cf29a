/* routes.c - the edge's route table (see routes.h).
 *
 *   edge-routes  route.set.<site> RouteSet, route.del.<site> RouteDel
 *                (durable consumer on stream ROUTES)
 *   route.list   RouteListRequest -> RouteList (asked of the panel)
 */
#include "svc-edge/routes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "route.pb-c.h"

#define RT_UPSTREAM_MAX     64         /* "[ipv6]:port" */
#define RT_HOST_OPS_MAX     64         /* more changed hosts: one commit */
#define RT_WRITE_DELAY_MS   20         /* map file writes are coalesced */
#define RT_LIST_TIMEOUT_MS  5000
#define RT_RETRY_MS         1000
#define RT_HEAL_RETRY_MS    5000       /* route.list failed: ask again */
#define RT_TICK_MS          500        /* the keeper looks at NATS */
#define RT_FILE_MAX         (256u << 20)
#define RT_HT_MIN           64

/* ------------------------------------------------------------ types */

/* An intrusive entry of a string-keyed hash table. */
typedef struct hent {
    struct hent *next;
    char *key; /* owned */
} hent;

typedef struct htab {
    hent **b;
    size_t nb, n;
} htab;

/* A site's route, or a tombstone (gone) remembering the revision it was
 * deleted at. */
typedef struct route {
    hent h; /* key: the site id */
    uint64_t revision;
    int gone;
    int running;
    char upstream[RT_UPSTREAM_MAX + 1]; /* "" when unknown */
    int ndomains;
    char **domains; /* sorted, owned */
    unsigned seen;  /* heal generation that listed it */
} route;

/* A served host and the route it goes to. */
typedef struct host {
    hent h; /* key: the domain */
    route *owner;
    int claims; /* routes that list it (more than one: crossed events) */
} host;

/* What one change does: runtime map operations and hook calls. */
typedef struct rt_op {
    char name[EDGE_ROUTES_DOMAIN_MAX + 1];
    char value[RT_UPSTREAM_MAX + 1]; /* "" to delete */
} rt_op;

typedef struct rt_ev {
    char domain[EDGE_ROUTES_DOMAIN_MAX + 1];
    char site[EDGE_ROUTES_SITE_MAX + 1]; /* "" when removed */
} rt_ev;

typedef struct batch {
    rt_op *ops;
    int nops, opcap;
    int full; /* too many ops: replace the whole map */
    rt_ev *evs;
    int nevs, evcap;
    int changed; /* the table changed: the file is to be written */
} batch;

struct edge_routes {
    bus *bus;
    edge_haproxy *hx;
    int heal_ms;
    void (*domain_added)(void *ud, const char *domain, const char *site_id);
    void (*domain_removed)(void *ud, const char *domain);
    void (*list_applied)(void *ud);
    void *domain_ud;

    pthread_mutex_t mu; /* the table and the flags below; cv wakes the keeper */
    pthread_cond_t cv;
    htab sites; /* route by site id */
    htab hosts; /* host by domain */
    uint64_t floor; /* the newest route.list applied */
    unsigned heal_gen;
    int heal_failing; /* the keeper's: the last route.list failed */
    int dirty;        /* the map file is behind the table */
    int64_t dirty_at; /* monotonic ms */
    int resync;       /* HAProxy is behind the table */
    int stopping;

    pthread_mutex_t hook_mu; /* keeps hook calls in the table's order */
    pthread_t keeper;
    int keeper_started;
    bus_js_worker *worker;
};

/* ------------------------------------------------------------ hash table */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    while (*s != '\0')
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int ht_init(htab *t)
{
    t->b = calloc(RT_HT_MIN, sizeof(*t->b));
    t->nb = RT_HT_MIN;
    t->n = 0;
    return t->b == NULL ? BERTH_ENOMEM : 0;
}

static hent *ht_get(const htab *t, const char *key)
{
    hent *e;

    for (e = t->b[hash(key) & (t->nb - 1)]; e != NULL; e = e->next) {
        if (strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

/* Adds e (its key not in t yet), doubling the buckets past one entry per
 * bucket. A failed growth keeps the table as it was, only slower. */
static void ht_put(htab *t, hent *e)
{
    hent **slot;

    if (t->n >= t->nb) {
        size_t nb = t->nb * 2, i;
        hent **b = calloc(nb, sizeof(*b));

        if (b != NULL) {
            for (i = 0; i < t->nb; i++) {
                while (t->b[i] != NULL) {
                    hent *x = t->b[i];

                    t->b[i] = x->next;
                    x->next = b[hash(x->key) & (nb - 1)];
                    b[hash(x->key) & (nb - 1)] = x;
                }
            }
            free(t->b);
            t->b = b;
            t->nb = nb;
        }
    }
    slot = &t->b[hash(e->key) & (t->nb - 1)];
    e->next = *slot;
    *slot = e;
    t->n++;
}

/* Unlinks and returns the entry of key, or NULL. */
static hent *ht_take(htab *t, const char *key)
{
    hent **p;

    for (p = &t->b[hash(key) & (t->nb - 1)]; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            hent *e = *p;

            *p = e->next;
            t->n--;
            return e;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ validation */

static int is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int edge_routes_domain_valid(const char *d)
{
    size_t n = strlen(d), i, start = 0, labels = 0;
    int numeric = 1;

    if (n == 0 || n > EDGE_ROUTES_DOMAIN_MAX)
        return 0;
    for (i = 0; i <= n; i++) {
        size_t len;

        if (i < n && d[i] != '.') {
            if (!is_ldh(d[i]))
                return 0;
            numeric &= d[i] >= '0' && d[i] <= '9';
            continue;
        }
        len = i - start;
        if (len == 0 || len > 63 || d[start] == '-' || d[i - 1] == '-')
            return 0;
        /* Reserved LDH labels: "??--" is only allowed as an A-label. */
        if (len >= 4 && d[start + 2] == '-' && d[start + 3] == '-' &&
            !(d[start] == 'x' && d[start + 1] == 'n' && len > 4))
            return 0;
        labels++;
        if (i < n) {
            numeric = 1;
            start = i + 1;
        }
    }
    return labels >= 2 && !numeric;
}

static int site_id_valid(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > EDGE_ROUTES_SITE_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* "a.b.c.d:port" or "[v6]:port" with port 1..65535: what set-dst and
 * set-dst-port take from the map (haproxy.c). */
static int upstream_valid(const char *u)
{
    const char *colon = strrchr(u, ':');
    char host[RT_UPSTREAM_MAX + 1];
    unsigned char tmp[16];
    size_t hl;
    char *end;
    long port;

    if (colon == NULL || strlen(u) > RT_UPSTREAM_MAX)
        return 0;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port < 1 ||
        port > 65535)
        return 0;
    hl = (size_t)(colon - u);
    if (hl >= 2 && u[0] == '[' && u[hl - 1] == ']') {
        memcpy(host, u + 1, hl - 2);
        host[hl - 2] = '\0';
        return inet_pton(AF_INET6, host, tmp) == 1;
    }
    memcpy(host, u, hl);
    host[hl] = '\0';
    return inet_pton(AF_INET, host, tmp) == 1;
}

/* ------------------------------------------------------------ routes */

static const char *route_value(const route *r)
{
    return r->running && r->upstream[0] != '\0' ? r->upstream
                                                 : EDGE_HAPROXY_STOPPED;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_route(const void *a, const void *b)
{
    return strcmp((*(route *const *)a)->h.key, (*(route *const *)b)->h.key);
}

static int route_claims(const route *r, const char *name)
{
    return r->ndomains > 0 &&
           bsearch(&name, r->domains, (size_t)r->ndomains, sizeof(char *),
                   cmp_str) != NULL;
}

static void domains_free(char **d, int n)
{
    int i;

    for (i = 0; i < n; i++)
        free(d[i]);
    free(d);
}

static void route_free(route *r)
{
    if (r == NULL)
        return;
    domains_free(r->domains, r->ndomains);
    free(r->h.key);
    free(r);
}

static route *route_get(edge_routes *R, const char *id)
{
    return (route *)ht_get(&R->sites, id);
}

static route *route_add(edge_routes *R, const char *id)
{
    route *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->h.key = strdup(id);
    if (r->h.key == NULL) {
        free(r);
        return NULL;
    }
    ht_put(&R->sites, &r->h);
    return r;
}

/* The revision a new message about site id must beat. */
static uint64_t route_floor(const edge_routes *R, const route *r)
{
    if (r == NULL)
        return R->floor;
    if (r->gone && r->revision < R->floor)
        return R->floor;
    return r->revision;
}

/* ------------------------------------------------------------ batches */

static void batch_free(batch *b)
{
    free(b->ops);
    free(b->evs);
    memset(b, 0, sizeof(*b));
}

static void batch_op(batch *b, const char *name, const char *value)
{
    if (b->full)
        return;
    if (b->nops >= RT_HOST_OPS_MAX) {
        b->full = 1;
        return;
    }
    if (b->nops == b->opcap) {
        int cap = b->opcap ? b->opcap * 2 : 16;
        rt_op *ops = realloc(b->ops, (size_t)cap * sizeof(*ops));

        if (ops == NULL) {
            b->full = 1;
            return;
        }
        b->ops = ops;
        b->opcap = cap;
    }
    snprintf(b->ops[b->nops].name, sizeof(b->ops[0].name), "%s", name);
    snprintf(b->ops[b->nops].value, sizeof(b->ops[0].value), "%s", value);
    b->nops++;
}

static void batch_ev(batch *b, const char *domain, const char *site)
{
    if (b->nevs == b->evcap) {
        int cap = b->evcap ? b->evcap * 2 : 16;
        rt_ev *evs = realloc(b->evs, (size_t)cap * sizeof(*evs));

        if (evs == NULL) {
            log_error("domain hook dropped: out of memory", "domain=%s",
                      domain);
            return;
        }
        b->evs = evs;
        b->evcap = cap;
    }
    snprintf(b->evs[b->nevs].domain, sizeof(b->evs[0].domain), "%s", domain);
    snprintf(b->evs[b->nevs].site, sizeof(b->evs[0].site), "%s", site);
    b->nevs++;
}

/* ------------------------------------------------------------ changes */

/* The route that should own h now: the claimant with the highest
 * revision. r just changed; cur is the previous owner. Every route is
 * looked at only when the owner let go of a name others claim too. */
static route *owner_of(edge_routes *R, const host *h, route *r, route *cur)
{
    const char *name = h->h.key;
    route *best = NULL;
    size_t i;
    hent *e;

    if (cur != NULL && cur != r && route_claims(cur, name))
        best = cur;
    if (route_claims(r, name) && (best == NULL || r->revision > best->revision))
        best = r;
    if (best != NULL || cur != r || h->claims == 0)
        return best;
    for (i = 0; i < R->sites.nb; i++) {
        for (e = R->sites.b[i]; e != NULL; e = e->next) {
            route *x = (route *)e;

            if (x != r && route_claims(x, name) &&
                (best == NULL || x->revision > best->revision))
                best = x;
        }
    }
    return best;
}

static int names_have(char **names, int n, const char *name)
{
    return n > 0 && bsearch(&name, names, (size_t)n, sizeof(char *),
                            cmp_str) != NULL;
}

/* Gives r its new state (taking domains, nd sorted unique names) and
 * records in b what that changes for each host it had or has. */
static void route_replace(edge_routes *R, route *r, char **domains, int nd,
                          const char *upstream, int running, uint64_t rev,
                          int gone, batch *b)
{
    char **old = r->domains;
    char was[RT_UPSTREAM_MAX + 1], up[RT_UPSTREAM_MAX + 1];
    int nold = r->ndomains, i, pass;

    /* r's old value is what the map holds for the hosts it owned. */
    snprintf(was, sizeof(was), "%s", route_value(r));
    snprintf(up, sizeof(up), "%s", upstream);
    r->domains = domains;
    r->ndomains = nd;
    r->revision = rev;
    r->gone = gone;
    r->running = running;
    memcpy(r->upstream, up, sizeof(up));
    b->changed = 1;
    /* Each affected name once: the new ones, then the old ones that are
     * not among them. */
    for (pass = 0; pass < 2; pass++) {
        char **names = pass == 0 ? domains : old;
        int n = pass == 0 ? nd : nold;

        for (i = 0; i < n; i++) {
            const char *name = names[i];
            int had = pass == 1 || names_have(old, nold, name);
            host *h = (host *)ht_get(&R->hosts, name);
            route *cur = h != NULL ? h->owner : NULL, *best;
            char before[RT_UPSTREAM_MAX + 1] = "";

            if (pass == 1 && names_have(domains, nd, name))
                continue;
            if (cur != NULL)
                snprintf(before, sizeof(before), "%s",
                         cur == r ? was : route_value(cur));
            if (h == NULL) {
                h = calloc(1, sizeof(*h));
                if (h == NULL || (h->h.key = strdup(name)) == NULL) {
                    free(h);
                    log_error("host not added: out of memory", "domain=%s",
                              name);
                    R->resync = 1;
                    continue;
                }
                ht_put(&R->hosts, &h->h);
            }
            if (pass == 0 && !had)
                h->claims++;
            else if (pass == 1)
                h->claims--;
            best = owner_of(R, h, r, cur);
            h->owner = best;
            if (best == NULL) {
                ht_take(&R->hosts, name);
                free(h->h.key);
                free(h);
                if (cur != NULL) {
                    batch_op(b, name, "");
                    batch_ev(b, name, "");
                }
                continue;
            }
            if (strcmp(before, route_value(best)) != 0)
                batch_op(b, name, route_value(best));
            if (best != cur)
                batch_ev(b, name, best->h.key);
        }
    }
    domains_free(old, nold);
}

/* The hosts map as "name value\n" lines (comment lines carry the table for
 * edge_routes_new()). file: with the comments. Caller holds mu. */
static int table_text(edge_routes *R, int file, buf *out)
{
    route **all = NULL;
    size_t n = 0, i;
    hent *e;
    int rc = 0, j;

    buf_init(out, RT_FILE_MAX);
    if (!file) {
        for (i = 0; rc == 0 && i < R->hosts.nb; i++)
            for (e = R->hosts.b[i]; rc == 0 && e != NULL; e = e->next)
                rc = buf_printf(out, "%s %s\n", e->key,
                                route_value(((host *)e)->owner));
        return rc;
    }
    all = malloc((R->sites.n + 1) * sizeof(*all));
    if (all == NULL)
        return BERTH_ENOMEM;
    for (i = 0; i < R->sites.nb; i++)
        for (e = R->sites.b[i]; e != NULL; e = e->next)
            all[n++] = (route *)e;
    qsort(all, n, sizeof(*all), cmp_route);
    rc = buf_printf(out,
                    "# hosts.map - host -> upstream, written by berth-edge; "
                    "do not edit.\n"
                    "# floor %llu\n",
                    (unsigned long long)R->floor);
    for (i = 0; rc == 0 && i < n; i++) {
        route *r = all[i];

        if (r->gone) {
            rc = buf_printf(out, "# gone %s %llu\n", r->h.key,
                            (unsigned long long)r->revision);
            continue;
        }
        rc = buf_printf(out, "# site %s %llu %d %s\n", r->h.key,
                        (unsigned long long)r->revision, r->running,
                        r->upstream[0] ? r->upstream : "-");
        for (j = 0; rc == 0 && j < r->ndomains; j++) {
            host *h = (host *)ht_get(&R->hosts, r->domains[j]);

            if (h != NULL && h->owner == r)
                rc = buf_printf(out, "%s %s\n", r->domains[j], route_value(r));
            else
                rc = buf_printf(out, "# claim %s\n", r->domains[j]);
        }
    }
    free(all);
    return rc;
}

/* Puts the whole table into HAProxy at once. Caller holds mu. */
static int table_push(edge_routes *R)
{
    buf lines;
    int rc;

    rc = table_text(R, 0, &lines);
    if (rc == 0)
        rc = edge_haproxy_map_replace(R->hx, EDGE_HAPROXY_MAP_HOSTS,
                                      lines.data ? lines.data : "", lines.len);
    buf_free(&lines);
    R->resync = rc != 0;
    return rc;
}

/* Sends b's operations to HAProxy, then, without the table lock but in
 * order, calls the hooks. Called with mu held; returns with it released. */
static void batch_finish(edge_routes *R, batch *b)
{
    int i, rc = 0;

    if (b->full) {
        rc = table_push(R);
    } else {
        for (i = 0; i < b->nops && rc == 0; i++)
            rc = b->ops[i].value[0] != '\0'
                     ? edge_haproxy_map_set(R->hx, EDGE_HAPROXY_MAP_HOSTS,
                                            b->ops[i].name, b->ops[i].value)
                     : edge_haproxy_map_del(R->hx, EDGE_HAPROXY_MAP_HOSTS,
                                            b->ops[i].name);
    }
    if (rc != 0) {
        /* Up again, HAProxy gets the whole table from the restart
         * callback; otherwise the keeper retries. */
        R->resync = 1;
        if (edge_haproxy_up(R->hx))
            log_warn("route not applied to haproxy; retrying", "error=%s",
                     berth_strerror(rc));
    }
    if (b->changed && !R->dirty) {
        R->dirty = 1;
        R->dirty_at = clock_mono_ms();
    }
    if (b->changed || R->resync)
        pthread_cond_broadcast(&R->cv);
    pthread_mutex_lock(&R->hook_mu);
    pthread_mutex_unlock(&R->mu);
    for (i = 0; i < b->nevs; i++) {
        if (b->evs[i].site[0] != '\0' && R->domain_added != NULL)
            R->domain_added(R->domain_ud, b->evs[i].domain, b->evs[i].site);
        else if (b->evs[i].site[0] == '\0' && R->domain_removed != NULL)
            R->domain_removed(R->domain_ud, b->evs[i].domain);
    }
    pthread_mutex_unlock(&R->hook_mu);
}

/* ------------------------------------------------------------ applying */

/* The valid, unique domains of a RouteSet, sorted, into *out (caller frees
 * with domains_free). Invalid ones are logged and left out. */
static int domains_take(const char *site, char **in, size_t n, char ***out,
                        int *nout)
{
    char **d;
    size_t i;
    int k = 0, j;

    *out = NULL;
    *nout = 0;
    if (n == 0)
        return 0;
    if (n > EDGE_ROUTES_DOMAINS_MAX) {
        log_warn("route with too many domains; the rest ignored",
                 "site=%s domains=%zu max=%d", site, n,
                 EDGE_ROUTES_DOMAINS_MAX);
        n = EDGE_ROUTES_DOMAINS_MAX;
    }
    d = calloc(n, sizeof(*d));
    if (d == NULL)
        return BERTH_ENOMEM;
    for (i = 0; i < n; i++) {
        if (!edge_routes_domain_valid(in[i])) {
            log_warn("invalid domain in a route ignored", "site=%s domain=%.64s",
                     site, in[i]);
            continue;
        }
        for (j = 0; j < k && strcmp(d[j], in[i]) != 0; j++)
            ;
        if (j < k)
            continue;
        d[k] = strdup(in[i]);
        if (d[k] == NULL) {
            domains_free(d, k);
            return BERTH_ENOMEM;
        }
        k++;
    }
    qsort(d, (size_t)k, sizeof(*d), cmp_str);
    *out = d;
    *nout = k;
    return 0;
}

/* Applies a RouteSet for site (its subject's token) unless it is not newer
 * than the table. Caller holds mu. Returns 1 when applied, 0 when stale or
 * invalid, or a berth code. */
static int apply_set(edge_routes *R, const char *site,
                     const Berth__V1__RouteSet *m, batch *b)
{
    const char *upstream = m->upstream;
    route *r;
    char **domains = NULL;
    int nd = 0, running, rc;

    if (!site_id_valid(site) ||
        (m->site_id[0] != '\0' && strcmp(m->site_id, site) != 0)) {
        log_warn("route with a bad site id ignored", "site=%.64s body=%.64s",
                 site, m->site_id);
        return 0;
    }
    r = route_get(R, site);
    if (m->revision <= route_floor(R, r)) {
        log_debug("older route ignored", "site=%s revision=%llu have=%llu",
                  site, (unsigned long long)m->revision,
                  (unsigned long long)route_floor(R, r));
        return 0;
    }
    if (upstream[0] != '\0' && !upstream_valid(upstream)) {
        log_warn("route with an invalid upstream served as stopped",
                 "site=%s upstream=%.64s", site, upstream);
        upstream = "";
    }
    running = m->running && upstream[0] != '\0';
    rc = domains_take(site, m->domains, m->n_domains, &domains, &nd);
    if (rc != 0)
        return rc;
    if (r == NULL)
        r = route_add(R, site);
    if (r == NULL) {
        domains_free(domains, nd);
        return BERTH_ENOMEM;
    }
    route_replace(R, r, domains, nd, upstream, running, m->revision, 0, b);
    return 1;
}

/* Removes site's route as of revision rev; force: even when rev is not
 * newer (a route.list that lacks the site). Caller holds mu. Returns 1
 * when applied. */
static int apply_del(edge_routes *R, const char *site, uint64_t rev, int force,
                     batch *b)
{
    route *r = route_get(R, site);

    if (!site_id_valid(site))
        return 0;
    if (!force && rev <= route_floor(R, r))
        return 0;
    if (r == NULL) {
        r = route_add(R, site);
        if (r == NULL)
            return BERTH_ENOMEM;
    }
    route_replace(R, r, NULL, 0, "", 0, rev > r->revision ? rev : r->revision,
                  1, b);
    return 1;
}

/* One event of the edge-routes consumer. Always acknowledged: the table
 * takes it or it is stale; HAProxy catches up by itself. */
static int on_event(bus_msg *m, void *ud)
{
    edge_routes *R = ud;
    char site[EDGE_ROUTES_SITE_MAX + 2];
    int64_t t0 = clock_mono_ns();
    batch b = {0};
    int applied = 0;

    if (bus_subject_token(m->subject, 2, site, sizeof(site)) != 0) {
        log_warn("route event with a bad subject ignored", "subject=%s",
                 m->subject);
        return 0;
    }
    pthread_mutex_lock(&R->mu);
    if (m->msg->descriptor == &berth__v1__route_set__descriptor)
        applied = apply_set(R, site, (const Berth__V1__RouteSet *)m->msg, &b);
    else if (m->msg->descriptor == &berth__v1__route_del__descriptor)
        applied = apply_del(
            R, site, ((const Berth__V1__RouteDel *)m->msg)->revision, 0, &b);
    batch_finish(R, &b);
    if (applied > 0)
        log_info("route applied", "subject=%s hosts=%d apply_ms=%.3f",
                 m->subject, b.full ? -1 : b.nops,
                 (double)(clock_mono_ns() - t0) / 1e6);
    else if (applied < 0)
        log_error("route not applied", "subject=%s error=%s", m->subject,
                  berth_strerror(applied));
    batch_free(&b);
    return 0;
}

/* Drops tombstones the floor has made useless. Caller holds mu. */
static void prune(edge_routes *R)
{
    size_t i;

    for (i = 0; i < R->sites.nb; i++) {
        hent **p = &R->sites.b[i];

        while (*p != NULL) {
            route *r = (route *)*p;

            if (r->gone && r->revision <= R->floor) {
                *p = r->h.next;
                R->sites.n--;
                route_free(r);
            } else {
                p = &(*p)->next;
            }
        }
    }
}

/* Applies a complete route list: its routes as route.set messages, and
 * what it lacks removed unless the table has news of it (a revision newer
 * than the list's). Caller holds mu; b collects the changes. */
static void heal_apply(edge_routes *R, const Berth__V1__RouteList *list,
                       batch *b, int *set, int *removed)
{
    size_t i;
    hent *e;

    R->heal_gen++;
    for (i = 0; i < list->n_routes; i++) {
        const Berth__V1__RouteSet *m = list->routes[i];
        route *r;

        if (m == NULL || !site_id_valid(m->site_id))
            continue;
        *set += apply_set(R, m->site_id, m, b) > 0;
        r = route_get(R, m->site_id);
        if (r != NULL)
            r->seen = R->heal_gen;
    }
    for (i = 0; i < R->sites.nb; i++) {
        for (e = R->sites.b[i]; e != NULL; e = e->next) {
            route *r = (route *)e;

            if (!r->gone && r->seen != R->heal_gen &&
                r->revision <= list->revision)
                *removed += apply_del(R, r->h.key, list->revision, 1, b) > 0;
        }
    }
    if (list->revision > R->floor) {
        R->floor = list->revision;
        b->changed = 1;
    }
    prune(R);
}

/* Asks the panel for every route and applies the answer. Returns 0 or a
 * berth code (BERTH_ENORESP: no panel answers). */
static int heal(edge_routes *R)
{
    Berth__V1__RouteListRequest req = BERTH__V1__ROUTE_LIST_REQUEST__INIT;
    Berth__V1__RouteList *list = NULL;
    int64_t t0 = clock_mono_ms();
    int set = 0, removed = 0;
    bus_error err = {0};
    batch b = {0};
    int rc;

    rc = bus_request(R->bus, "route.list", &req.base, RT_LIST_TIMEOUT_MS,
                     (ProtobufCMessage **)&list, &err);
    if (rc != 0) {
        /* Said once per outage: the keeper asks again every few seconds. */
        log_emit(R->heal_failing       ? LOG_DEBUG
                 : rc == BERTH_ENORESP ? LOG_INFO
                                       : LOG_WARN,
                 "route list not available; asking again later",
                 "error=%s message=%s", berth_strerror(rc), err.message);
        R->heal_failing = 1;
        return rc;
    }
    R->heal_failing = 0;
    pthread_mutex_lock(&R->mu);
    heal_apply(R, list, &b, &set, &removed);
    batch_finish(R, &b);
    if (set + removed > 0)
        log_info("routes healed from the panel's list",
                 "routes=%zu set=%d removed=%d revision=%llu ms=%lld",
                 list->n_routes, set, removed,
                 (unsigned long long)list->revision,
                 (long long)(clock_mono_ms() - t0));
    else
        log_debug("route list matches", "routes=%zu revision=%llu",
                  list->n_routes, (unsigned long long)list->revision);
    batch_free(&b);
    protobuf_c_message_free_unpacked(&list->base, NULL);
    if (R->list_applied != NULL) {
        pthread_mutex_lock(&R->hook_mu);
        R->list_applied(R->domain_ud);
        pthread_mutex_unlock(&R->hook_mu);
    }
    return 0;
}

/* ------------------------------------------------------------ file */

/* Reads the table back from the hosts map file (see routes.h). */
static int load(edge_routes *R)
{
    const char *path = edge_haproxy_map_path(R->hx, EDGE_HAPROXY_MAP_HOSTS);
    char *text = NULL, *line, *save = NULL;
    route *cur = NULL;
    size_t len = 0;
    int rc, nroutes = 0;
    batch b = {0};

    rc = fs_read_file(path, RT_FILE_MAX, &text, &len);
    if (rc == BERTH_ENOENT)
        return 0;
    if (rc != 0) {
        log_error("hosts map not read", "path=%s error=%s", path,
                  berth_strerror(rc));
        return rc;
    }
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char id[EDGE_ROUTES_SITE_MAX + 2], up[RT_UPSTREAM_MAX + 2];
        char name[EDGE_ROUTES_DOMAIN_MAX + 2], value[RT_UPSTREAM_MAX + 2];
        unsigned long long rev;
        int running;

        if (sscanf(line, "# floor %llu", &rev) == 1) {
            R->floor = rev;
        } else if (sscanf(line, "# site %65s %llu %d %65s", id, &rev, &running,
                          up) == 4 &&
                   site_id_valid(id) && route_get(R, id) == NULL) {
            cur = route_add(R, id);
            if (cur == NULL) {
                rc = BERTH_ENOMEM;
                break;
            }
            cur->revision = rev;
            cur->running = running != 0;
            if (strcmp(up, "-") != 0 && upstream_valid(up))
                memcpy(cur->upstream, up, strlen(up) + 1); /* checked */
            nroutes++;
        } else if (sscanf(line, "# gone %65s %llu", id, &rev) == 2 &&
                   site_id_valid(id) && route_get(R, id) == NULL) {
            cur = route_add(R, id);
            if (cur == NULL) {
                rc = BERTH_ENOMEM;
                break;
            }
            cur->gone = 1;
            cur->revision = rev;
            cur = NULL;
        } else if ((sscanf(line, "# claim %254s", name) == 1 ||
                    (line[0] != '#' &&
                     sscanf(line, "%254s %65s", name, value) == 2)) &&
                   cur != NULL && edge_routes_domain_valid(name) &&
                   cur->ndomains < EDGE_ROUTES_DOMAINS_MAX &&
                   !route_claims(cur, name)) {
            /* Domains follow their site's line, in order. */
            char **d = realloc(cur->domains,
                               (size_t)(cur->ndomains + 1) * sizeof(*d));

            if (d == NULL || (d[cur->ndomains] = strdup(name)) == NULL) {
                if (d != NULL)
                    cur->domains = d;
                rc = BERTH_ENOMEM;
                break;
            }
            cur->domains = d;
            cur->ndomains++;
            qsort(cur->domains, (size_t)cur->ndomains, sizeof(char *),
                  cmp_str);
        }
    }
    free(text);
    if (rc != 0)
        return rc;
    /* Hosts from the claims: re-apply each route to itself. */
    {
        size_t i;
        hent *e;

        for (i = 0; i < R->sites.nb; i++) {
            for (e = R->sites.b[i]; e != NULL; e = e->next) {
                route *r = (route *)e;
                char **d = r->domains;
                int nd = r->ndomains;

                if (r->gone)
                    continue;
                r->domains = NULL;
                r->ndomains = 0;
                route_replace(R, r, d, nd, r->upstream, r->running,
                              r->revision, 0, &b);
            }
        }
    }
    batch_free(&b);
    log_info("routes loaded", "path=%s sites=%d hosts=%zu floor=%llu", path,
             nroutes, R->hosts.n, (unsigned long long)R->floor);
    return 0;
}

/* Writes the hosts map file when the table moved on. */
static void save(edge_routes *R)
{
    buf text;
    int rc;

    pthread_mutex_lock(&R->mu);
    if (!R->dirty) {
        pthread_mutex_unlock(&R->mu);
        return;
    }
    rc = table_text(R, 1, &text);
    R->dirty = 0;
    pthread_mutex_unlock(&R->mu);
    if (rc == 0)
        rc = edge_haproxy_map_write(R->hx, EDGE_HAPROXY_MAP_HOSTS,
                                    text.data ? text.data : "", text.len);
    buf_free(&text);
    if (rc != 0) {
        pthread_mutex_lock(&R->mu);
        if (!R->dirty) {
            R->dirty = 1;
            R->dirty_at = clock_mono_ms() + RT_RETRY_MS;
        }
        pthread_mutex_unlock(&R->mu);
    }
}

/* ------------------------------------------------------------ threads */

/* Runs on the HAProxy supervisor after every start of HAProxy. */
static void on_haproxy_start(void *ud)
{
    edge_routes *R = ud;
    int64_t t0 = clock_mono_ns();
    int rc;

    pthread_mutex_lock(&R->mu);
    rc = table_push(R);
    pthread_mutex_unlock(&R->mu);
    if (rc == 0)
        log_info("routes applied to haproxy", "hosts=%zu ms=%.3f",
                 R->hosts.n, (double)(clock_mono_ns() - t0) / 1e6);
    else
        log_warn("routes not applied to haproxy; retrying", "error=%s",
                 berth_strerror(rc));
}

static uint64_t reconnects(edge_routes *R)
{
    natsStatistics *st = NULL;
    uint64_t count = 0;

    if (natsStatistics_Create(&st) != NATS_OK)
        return 0;
    if (natsConnection_GetStats(bus_nats(R->bus), st) != NATS_OK ||
        natsStatistics_GetCounts(st, NULL, NULL, NULL, NULL, &count) != NATS_OK)
        count = 0;
    natsStatistics_Destroy(st);
    return count;
}

static void wait_until(edge_routes *R, int64_t due)
{
    int64_t left = due - clock_mono_ms();
    struct timespec ts;

    if (left <= 0)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&R->cv, &R->mu, &ts);
}

/* The keeper: JetStream streams, the map file, retries, healing. */
static void *keeper(void *arg)
{
    edge_routes *R = arg;
    int64_t now = clock_mono_ms(), next_heal = now, next_js = now;
    int64_t next_resync = now;
    uint64_t seen = reconnects(R);
    int js_ready = 0;

    pthread_mutex_lock(&R->mu);
    while (!R->stopping) {
        int64_t due = now + RT_TICK_MS;
        int write, resync;

        if (next_heal < due)
            due = next_heal;
        if (!js_ready && next_js < due)
            due = next_js;
        if (R->dirty && R->dirty_at + RT_WRITE_DELAY_MS < due)
            due = R->dirty_at + RT_WRITE_DELAY_MS;
        if (R->resync && next_resync < due)
            due = next_resync;
        wait_until(R, due);
        if (R->stopping)
            break;
        now = clock_mono_ms();
        write = R->dirty && now >= R->dirty_at + RT_WRITE_DELAY_MS;
        resync = R->resync && now >= next_resync;
        pthread_mutex_unlock(&R->mu);

        if (!js_ready && now >= next_js) {
            js_ready = bus_connected(R->bus) && bus_js_setup(R->bus) == 0;
            next_js = now + RT_RETRY_MS;
        }
        if (reconnects(R) != seen) {
            seen = reconnects(R);
            log_info("bus reconnected; asking for the route list", "n=%llu",
                     (unsigned long long)seen);
            next_heal = now;
        }
        if (write)
            save(R);
        if (resync && edge_haproxy_up(R->hx)) {
            pthread_mutex_lock(&R->mu);
            if (R->resync && table_push(R) == 0)
                log_info("routes re-applied to haproxy", "hosts=%zu",
                         R->hosts.n);
            pthread_mutex_unlock(&R->mu);
            next_resync = now + RT_RETRY_MS;
        }
        if (now >= next_heal) {
            int rc = bus_connected(R->bus) ? heal(R) : BERTH_EUNAVAIL;

            next_heal = clock_mono_ms() +
                        (rc == 0 || R->heal_ms < RT_HEAL_RETRY_MS
                             ? R->heal_ms
                             : RT_HEAL_RETRY_MS);
        }
        pthread_mutex_lock(&R->mu);
        now = clock_mono_ms();
    }
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

/* ------------------------------------------------------------ life cycle */

int edge_routes_new(const edge_routes_cfg *cfg, edge_routes **out)
{
    edge_routes *R;
    int rc;

    *out = NULL;
    if (cfg->bus == NULL || cfg->haproxy == NULL)
        return BERTH_EINVAL;
    R = calloc(1, sizeof(*R));
    if (R == NULL)
        return BERTH_ENOMEM;
    R->bus = cfg->bus;
    R->hx = cfg->haproxy;
    R->heal_ms = cfg->heal_ms > 0 ? cfg->heal_ms : EDGE_ROUTES_HEAL_MS;
    R->domain_added = cfg->domain_added;
    R->domain_removed = cfg->domain_removed;
    R->list_applied = cfg->list_applied;
    R->domain_ud = cfg->domain_ud;
    pthread_mutex_init(&R->mu, NULL);
    pthread_cond_init(&R->cv, NULL);
    pthread_mutex_init(&R->hook_mu, NULL);
    rc = ht_init(&R->sites);
    if (rc == 0)
        rc = ht_init(&R->hosts);
    if (rc == 0)
        rc = load(R);
    if (rc != 0) {
        edge_routes_free(R);
        return rc;
    }
    edge_haproxy_on_restart(R->hx, on_haproxy_start, R);
    *out = R;
    return 0;
}

int edge_routes_start(edge_routes *R)
{
    batch b = {0};
    size_t i;
    hent *e;
    int rc;

    /* Every domain already served, for whoever follows them. */
    pthread_mutex_lock(&R->mu);
    for (i = 0; i < R->hosts.nb; i++)
        for (e = R->hosts.b[i]; e != NULL; e = e->next)
            batch_ev(&b, e->key, ((host *)e)->owner->h.key);
    pthread_mutex_lock(&R->hook_mu);
    pthread_mutex_unlock(&R->mu);
    for (i = 0; i < (size_t)b.nevs && R->domain_added != NULL; i++)
        R->domain_added(R->domain_ud, b.evs[i].domain, b.evs[i].site);
    pthread_mutex_unlock(&R->hook_mu);
    batch_free(&b);

    /* The consumer binds faster when the stream exists already. */
    if (bus_wait_connected(R->bus, 2000) == 0)
        bus_js_setup(R->bus);
    if (pthread_create(&R->keeper, NULL, keeper, R) != 0)
        return BERTH_EINTERNAL;
    R->keeper_started = 1;
    rc = bus_js_consume(R->bus, "edge-routes", NULL, on_event, R, &R->worker);
    if (rc != 0)
        log_error("edge-routes consumer", "error=%s", berth_strerror(rc));
    return rc;
}

void edge_routes_counts(edge_routes *R, int *sites, int *hosts)
{
    size_t i;
    hent *e;
    int n = 0;

    pthread_mutex_lock(&R->mu);
    for (i = 0; i < R->sites.nb; i++)
        for (e = R->sites.b[i]; e != NULL; e = e->next)
            n += !((route *)e)->gone;
    *sites = n;
    *hosts = (int)R->hosts.n;
    pthread_mutex_unlock(&R->mu);
}

static void ht_free(htab *t, int routes)
{
    size_t i;

    for (i = 0; t->b != NULL && i < t->nb; i++) {
        while (t->b[i] != NULL) {
            hent *e = t->b[i];

            t->b[i] = e->next;
            if (routes) {
                route_free((route *)e);
            } else {
                free(e->key);
                free(e);
            }
        }
    }
    free(t->b);
    t->b = NULL;
}

void edge_routes_free(edge_routes *R)
{
    if (R == NULL)
        return;
    bus_js_stop(R->worker);
    R->worker = NULL;
    if (R->keeper_started) {
        pthread_mutex_lock(&R->mu);
        R->stopping = 1;
        pthread_cond_broadcast(&R->cv);
        pthread_mutex_unlock(&R->mu);
        pthread_join(R->keeper, NULL);
        save(R);
    }
    ht_free(&R->hosts, 0);
    ht_free(&R->sites, 1);
    pthread_mutex_destroy(&R->mu);
    pthread_cond_destroy(&R->cv);
    pthread_mutex_destroy(&R->hook_mu);
    free(R);
}
