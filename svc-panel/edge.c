/* edge.c - the panel's side of berth-edge (see edge.h).
 *
 *   route.set.<site>  RouteSet (JetStream, published)
 *   route.del.<site>  RouteDel (JetStream, published)
 *   route.list        RouteListRequest -> RouteList (request, served)
 *   panel-certs       cert.status.<domain> CertStatus (consumed)
 */
#include "svc-panel/edge.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "route.pb-c.h"
#include "site.pb-c.h"
#include "svc-panel/sitespec.h"

#define EDGE_DB_WAIT_MS    2000
#define EDGE_UPSTREAM_MAX  64   /* sites.upstream */
#define EDGE_REASON_MAX    1024 /* certificates.reason */
#define EDGE_CERT_PREFIX   "cert.status."

struct edge {
    panel *p;
    bus_js_worker *certs;
};

/* ROUTE row columns (db.c ROUTE_COLS). */
enum { R_ID, R_UPSTREAM, R_RUNNING, R_REVISION, R_ROUTED, R_DOMAINS };

/* site_route_lock columns. */
enum { L_UPSTREAM, L_RUNNING, L_ROUTED, L_HAS_DOMAINS };

static int is_true(const char *v)
{
    return v[0] == 't';
}

/* What a daemon may report as an upstream: "ip:port" or "[ip6]:port",
 * checked loosely here (the edge checks the address itself). */
static int upstream_ok(const char *u)
{
    size_t n = strlen(u), i;

    if (n < 3 || n > EDGE_UPSTREAM_MAX || strchr(u, ':') == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        char c = u[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F') || c == '.' || c == ':' || c == '[' ||
              c == ']'))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ routes */

/* A RouteSet from the ROUTE row at column off of row. The domains are
 * split out of a copy the caller frees (*copy) along with *list. Returns
 * 0 or BERTH_ENOMEM. */
static int route_fill(PGresult *r, int row, int off, Berth__V1__RouteSet *m,
                      char **copy, char ***list)
{
    const char *joined = PQgetvalue(r, row, off + R_DOMAINS);
    size_t n = 0, i;
    char *p;

    *copy = NULL;
    *list = NULL;
    berth__v1__route_set__init(m);
    m->site_id = PQgetvalue(r, row, off + R_ID);
    m->upstream = PQgetvalue(r, row, off + R_UPSTREAM);
    m->running = is_true(PQgetvalue(r, row, off + R_RUNNING));
    m->revision = strtoull(PQgetvalue(r, row, off + R_REVISION), NULL, 10);
    if (joined[0] == '\0')
        return 0;
    *copy = strdup(joined);
    for (i = 0, n = 1; joined[i] != '\0'; i++)
        n += joined[i] == ',';
    *list = calloc(n, sizeof(**list));
    if (*copy == NULL || *list == NULL) {
        free(*copy);
        free(*list);
        *copy = NULL;
        *list = NULL;
        return BERTH_ENOMEM;
    }
    for (i = 0, p = *copy; i < n; i++) {
        char *comma = strchr(p, ',');

        (*list)[i] = p;
        if (comma != NULL) {
            *comma = '\0';
            p = comma + 1;
        }
    }
    m->domains = *list;
    m->n_domains = n;
    return 0;
}

static void publish_del(panel *p, const char *site_id, uint64_t rev)
{
    Berth__V1__RouteDel m = BERTH__V1__ROUTE_DEL__INIT;
    char subject[128], msg_id[128];
    int rc;

    m.site_id = (char *)site_id;
    m.revision = rev;
    snprintf(subject, sizeof(subject), "route.del.%s", site_id);
    snprintf(msg_id, sizeof(msg_id), "route-%s-%" PRIu64, site_id, rev);
    rc = bus_js_publish(p->svc.bus, subject, &m.base, msg_id, EDGE_PUBLISH_MS);
    if (rc != 0)
        log_warn("route deletion not published; route.list will heal it",
                 "site=%s revision=%" PRIu64 " error=%s", site_id, rev,
                 berth_strerror(rc));
    else
        log_info("route deleted", "site=%s revision=%" PRIu64, site_id, rev);
}

/* Publishes the route of ROUTE row 0 of r: route.set, or route.del when
 * the site is no longer routed. The JetStream message id makes a second
 * publish of one revision a no-op. */
static void publish_row(panel *p, PGresult *r)
{
    Berth__V1__RouteSet m;
    char subject[128], msg_id[128];
    char *copy = NULL, **list = NULL;
    int rc;

    if (PQntuples(r) != 1)
        return;
    rc = route_fill(r, 0, 0, &m, &copy, &list);
    if (rc != 0 || m.revision == 0)
        goto out;
    if (!is_true(PQgetvalue(r, 0, R_ROUTED))) {
        publish_del(p, m.site_id, m.revision);
        goto out;
    }
    snprintf(subject, sizeof(subject), "route.set.%s", m.site_id);
    snprintf(msg_id, sizeof(msg_id), "route-%s-%" PRIu64, m.site_id,
             m.revision);
    rc = bus_js_publish(p->svc.bus, subject, &m.base, msg_id, EDGE_PUBLISH_MS);
    if (rc != 0)
        log_warn("route not published; route.list will heal it",
                 "site=%s revision=%" PRIu64 " error=%s", m.site_id,
                 m.revision, berth_strerror(rc));
    else
        log_info("route published",
                 "site=%s revision=%" PRIu64 " domains=%zu upstream=%s "
                 "running=%d",
                 m.site_id, m.revision, m.n_domains, m.upstream, m.running);
out:
    free(list);
    free(copy);
}

/* The next route revision into *rev (c is in a transaction). */
static int next_revision(db_conn *c, uint64_t *rev)
{
    PGresult *r = NULL;
    int rc;

    rc = db_exec(c, "route_clock_next", 0, NULL, &r);
    if (rc == 0 && PQntuples(r) != 1)
        rc = BERTH_EINTERNAL;
    if (rc == 0)
        *rev = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

int edge_route_touch(db_conn *c, const char *site_id, uint64_t *rev)
{
    const char *params[5];
    char revtext[24];
    PGresult *r = NULL;
    int has, rc;

    *rev = 0;
    rc = db_exec(c, "site_route_lock", 1, &site_id, &r);
    if (rc != 0 || PQntuples(r) != 1)
        goto out;
    has = is_true(PQgetvalue(r, 0, L_HAS_DOMAINS));
    if (!has && !is_true(PQgetvalue(r, 0, L_ROUTED)))
        goto out; /* never routed, still no domains */
    rc = next_revision(c, rev);
    if (rc != 0)
        goto out;
    snprintf(revtext, sizeof(revtext), "%" PRIu64, *rev);
    params[0] = site_id;
    params[1] = NULL;
    params[2] = PQgetvalue(r, 0, L_RUNNING);
    params[3] = revtext;
    params[4] = has ? "true" : "false";
    rc = db_run(c, "site_route_set", 5, params, NULL);
out:
    if (rc != 0)
        *rev = 0;
    PQclear(r);
    return rc;
}

void edge_route_publish(panel *p, const char *site_id, uint64_t rev)
{
    PGresult *r = NULL;
    int rc;

    if (rev == 0)
        return;
    rc = db_query(p->db, EDGE_DB_WAIT_MS, "site_route_get", 1, &site_id, &r);
    if (rc == 0)
        publish_row(p, r);
    else
        log_warn("route not read; route.list will heal it",
                 "site=%s error=%s", site_id, berth_strerror(rc));
    PQclear(r);
}

int edge_route_deleting(db_conn *c, const char *site_id, uint64_t *rev)
{
    PGresult *r = NULL;
    int rc;

    *rev = 0;
    rc = db_exec(c, "site_route_lock", 1, &site_id, &r);
    if (rc == 0 && PQntuples(r) == 1 && is_true(PQgetvalue(r, 0, L_ROUTED)))
        rc = next_revision(c, rev);
    PQclear(r);
    return rc;
}

void edge_route_deleted(panel *p, const char *site_id, uint64_t rev)
{
    if (rev != 0)
        publish_del(p, site_id, rev);
}

int edge_site_status(panel *p, db_conn *c, const char *site_id, int state,
                     const char *upstream)
{
    const char *params[5];
    const char *up = upstream_ok(upstream) ? upstream : NULL;
    int running = up != NULL &&
                  (state == BERTH__V1__SITE_STATE__SITE_STATE_RUNNING ||
                   state == BERTH__V1__SITE_STATE__SITE_STATE_STARTING);
    char revtext[24];
    uint64_t rev = 0;
    PGresult *r = NULL;
    int has, committed = 0, rc;

    if (upstream[0] != '\0' && up == NULL)
        log_warn("site status with an unusable upstream",
                 "site=%s upstream=%.64s", site_id, upstream);
    rc = db_begin(c);
    if (rc == 0)
        rc = db_exec(c, "site_route_lock", 1, &site_id, &r);
    if (rc != 0 || PQntuples(r) != 1)
        goto out;
    if ((up == NULL || strcmp(up, PQgetvalue(r, 0, L_UPSTREAM)) == 0) &&
        running == is_true(PQgetvalue(r, 0, L_RUNNING)))
        goto out; /* the route stays as it is */
    has = is_true(PQgetvalue(r, 0, L_HAS_DOMAINS));
    if (has) {
        rc = next_revision(c, &rev);
        if (rc != 0)
            goto out;
        snprintf(revtext, sizeof(revtext), "%" PRIu64, rev);
    }
    params[0] = site_id;
    params[1] = up;
    params[2] = running ? "true" : "false";
    params[3] = has ? revtext : NULL;
    params[4] = has ? "true" : NULL;
    rc = db_run(c, "site_route_set", 5, params, NULL);
    if (rc == 0)
        rc = db_commit(c);
    committed = rc == 0;
out:
    PQclear(r);
    r = NULL;
    if (!committed)
        db_rollback(c);
    if (rc != 0 || rev == 0)
        return rc;
    rc = db_exec(c, "site_route_get", 1, &site_id, &r);
    if (rc == 0)
        publish_row(p, r);
    PQclear(r);
    return 0; /* committed: route.list heals a failed read or publish */
}

/* route.list: every site with domains, with the clock's revision, read in
 * one statement (one snapshot). */
static int on_route_list(bus_msg *m, void *ud)
{
    edge *e = ud;
    Berth__V1__RouteList reply = BERTH__V1__ROUTE_LIST__INIT;
    Berth__V1__RouteSet *sets = NULL, **ptrs = NULL;
    char **copies = NULL, ***lists = NULL;
    PGresult *r = NULL;
    int i, n = 0, rows, rc;

    rc = db_query(e->p->db, EDGE_DB_WAIT_MS, "route_list", 0, NULL, &r);
    if (rc != 0)
        return bus_reply_error(m, rc, "cannot read the routes: %s",
                               berth_strerror(rc));
    rows = PQntuples(r);
    if (rows > 0)
        reply.revision = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    sets = calloc((size_t)rows + 1, sizeof(*sets));
    ptrs = calloc((size_t)rows + 1, sizeof(*ptrs));
    copies = calloc((size_t)rows + 1, sizeof(*copies));
    lists = calloc((size_t)rows + 1, sizeof(*lists));
    if (sets == NULL || ptrs == NULL || copies == NULL || lists == NULL) {
        rc = bus_reply_error(m, BERTH_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < rows; i++) {
        if (PQgetisnull(r, i, 1 + R_ID))
            continue; /* no site has domains */
        rc = route_fill(r, i, 1, &sets[n], &copies[n], &lists[n]);
        if (rc != 0) {
            rc = bus_reply_error(m, rc, "out of memory");
            goto out;
        }
        ptrs[n] = &sets[n];
        n++;
    }
    reply.routes = ptrs;
    reply.n_routes = (size_t)n;
    rc = bus_reply(m, &reply.base);
    log_debug("route list served", "routes=%d revision=%" PRIu64, n,
              reply.revision);
out:
    for (i = 0; copies != NULL && i < n; i++) {
        free(copies[i]);
        free(lists[i]);
    }
    free(copies);
    free(lists);
    free(ptrs);
    free(sets);
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------ certificates */

static const char *cert_state(const Berth__V1__CertStatus *cs)
{
    switch (cs->state) {
    case BERTH__V1__CERT_STATE__CERT_STATE_PENDING:
        return "pending";
    case BERTH__V1__CERT_STATE__CERT_STATE_VALID:
        return "valid";
    case BERTH__V1__CERT_STATE__CERT_STATE_FAILED:
        return "failed";
    default:
        return strcmp(cs->reason, "removed") == 0 ? "removed" : "unknown";
    }
}

/* Copies at most max bytes of s, cut back to a whole UTF-8 character. */
static void utf8_cut(const char *s, size_t max, char *out)
{
    size_t n = strlen(s);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

/* cert.status.<domain> -> certificates (the newest event wins). */
static int on_cert(bus_msg *m, void *ud)
{
    edge *e = ud;
    const Berth__V1__CertStatus *cs = (const Berth__V1__CertStatus *)m->msg;
    const char *domain = m->subject + strlen(EDGE_CERT_PREFIX);
    char norm[SITESPEC_DOMAIN_MAX + 1], reason[EDGE_REASON_MAX + 1];
    char not_after[40], next[40], ns[24];
    const char *params[7];
    jsMsgMetaData *meta = NULL;
    int64_t at = 0;
    int rc;

    if (strncmp(m->subject, EDGE_CERT_PREFIX, strlen(EDGE_CERT_PREFIX)) != 0 ||
        sitespec_domain_normalize(domain, norm) != 0 ||
        strcmp(norm, domain) != 0 ||
        (cs->domain[0] != '\0' && strcmp(cs->domain, domain) != 0)) {
        log_warn("certificate status with a bad domain ignored",
                 "subject=%s domain=%.64s", m->subject, cs->domain);
        return 0;
    }
    if (m->raw != NULL && natsMsg_GetMetaData(&meta, m->raw) == NATS_OK) {
        at = meta->Timestamp;
        jsMsgMetaData_Destroy(meta);
    }
    if (at <= 0)
        at = clock_wall_ms() * 1000000;
    utf8_cut(cs->reason, EDGE_REASON_MAX, reason);
    snprintf(ns, sizeof(ns), "%" PRId64, at);
    params[0] = domain;
    params[1] = id_uuid_valid(cs->site_id) ? cs->site_id : NULL;
    params[2] = cert_state(cs);
    params[3] = cs->not_after_ms > 0 ? clock_fmt_rfc3339(not_after,
                                                         sizeof(not_after),
                                                         cs->not_after_ms)
                                     : NULL;
    params[4] = reason[0] != '\0' ? reason : NULL;
    params[5] = cs->next_attempt_ms > 0
                    ? clock_fmt_rfc3339(next, sizeof(next), cs->next_attempt_ms)
                    : NULL;
    params[6] = ns;
    rc = db_query_run(e->p->db, EDGE_DB_WAIT_MS, "cert_upsert", 7, params,
                      NULL);
    if (rc == BERTH_EUNAVAIL || rc == BERTH_ETIMEDOUT)
        return rc; /* JetStream delivers it again */
    if (rc != 0)
        log_error("certificate status not stored", "domain=%s error=%s",
                  domain, berth_strerror(rc));
    else
        log_debug("certificate status", "domain=%s state=%s", domain,
                  params[2]);
    return 0;
}

json_t *edge_site_certs(panel *p, const char *site_id)
{
    json_t *arr = json_array();
    PGresult *r = NULL;
    int i;

    if (db_query(p->db, EDGE_DB_WAIT_MS, "cert_list_site", 1, &site_id, &r) !=
        0) {
        PQclear(r);
        return arr;
    }
    for (i = 0; i < PQntuples(r); i++) {
        json_t *c = json_pack("{s:s, s:s}", "domain", PQgetvalue(r, i, 0),
                              "state", PQgetvalue(r, i, 1));
        int col;

        for (col = 2; col <= 4; col++) {
            static const char *const keys[] = {"notAfter", "reason",
                                               "nextAttempt"};

            json_object_set_new(c, keys[col - 2],
                                PQgetisnull(r, i, col)
                                    ? json_null()
                                    : json_string(PQgetvalue(r, i, col)));
        }
        json_array_append_new(arr, c);
    }
    PQclear(r);
    return arr;
}

/* ------------------------------------------------------------ life cycle */

int edge_new(edge **out, panel *p)
{
    edge *e = calloc(1, sizeof(*e));

    *out = e;
    if (e == NULL)
        return BERTH_ENOMEM;
    e->p = p;
    return 0;
}

int edge_start(edge *e)
{
    bus *b = e->p->svc.bus;
    int rc;

    rc = bus_serve(b, "route-list", "route.list", on_route_list, e);
    if (rc == 0)
        rc = bus_js_consume(b, "panel-certs", NULL, on_cert, e, &e->certs);
    return rc;
}

void edge_stop(edge *e)
{
    if (e == NULL)
        return;
    bus_js_stop(e->certs);
    e->certs = NULL;
}

void edge_free(edge *e)
{
    if (e == NULL)
        return;
    edge_stop(e);
    free(e);
}
