/* sites.c - site operations and the site, grant and command endpoints.
 *
 *   GET    /sites                      -> {"sites": [site...]}   the caller's
 * sites POST   /sites          (site.create) spec fields + name, node? -> 202
 * {id, commandId, nodeId} GET    /sites/:id      (site.read)   -> site PATCH
 * /sites/:id      (site.update) spec fields -> 202 {id, commandId, nodeId}
 *   DELETE /sites/:id      (site.delete) ?purge=true -> 202 {id, commandId,
 * nodeId} POST   /sites/:id/power (site.power) {"action":
 * "start|stop|restart|kill"} -> 202 GET    /sites/:id/grants (site.update) ->
 * {"grants": [{userId, name, permissions}]} PUT    /sites/:id/grants/:userId
 * (site.update) {"permissions": [...]} -> 200 GET    /commands/:id   (site.read
 * on its site) -> command
 *
 * site is {id, name, nodeId, node: {id, name, online}, spec: {image,
 * command, env, ports, memoryBytes, cpuMillis, pids, httpPort,
 * stopCommand, restart}, domains, desiredState: "running"|"stopped",
 * status: {state, reason, exitCode, at}, createdAt, updatedAt}; the spec
 * fields are those of sitespec.h. command is {id, siteId, nodeId, kind,
 * state: "pending"|"sent"|"done"|"failed", error, createdAt, updatedAt}.
 * GET /sites/:id adds certificates: [{domain, state, notAfter, reason,
 * nextAttempt}] (edge.h).
 *
 * Site permissions come from the caller's role or from a grant on the
 * site (api_site_allowed). A grant is given only with permissions the
 * granter holds on that site. Every handler runs on a worker thread; none
 * waits for a node.
 */
#include "svc-panel/sites.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec.h"
#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "svc-panel/edge.h"
#include "svc-panel/nodes.h"
#include "svc-panel/routes.h"
#include "svc-panel/shell.h"
#include "svc-panel/sitespec.h"
#include "svc-panel/store.h"

#define SITES_PAYLOAD_MAX (1u << 20)

/* SITE row columns (db.c SITE_COLS). */
enum {
    S_ID,
    S_NAME,
    S_NODE,
    S_SPEC,
    S_DESIRED,
    S_STATUS,
    S_REASON,
    S_EXIT,
    S_STATUS_AT,
    S_CREATED,
    S_UPDATED
};
/* COMMAND row columns (db.c COMMAND_COLS). */
enum {
    C_ID,
    C_SITE,
    C_NODE,
    C_KIND,
    C_PAYLOAD,
    C_STATE,
    C_ERROR,
    C_CREATED,
    C_UPDATED,
    C_USER
};

/* ------------------------------------------------------------ results */

static int res_fail(site_result *res, int code, int status, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

static int res_fail(site_result *res, int code, int status, const char *fmt,
                    ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
    res->code = code;
    res->status = status != 0 ? status : berth_err_http_status(code);
    return code;
}

/* A database failure, as api_db_error() would answer it. */
static int res_db(site_result *res, int rc, const char *what)
{
    switch (rc) {
    case BERTH_EUNAVAIL:
    case BERTH_ETIMEDOUT:
        return res_fail(res, BERTH_EUNAVAIL, 503,
                        "the database is unavailable");
    case BERTH_EEXIST:
        return res_fail(res, BERTH_ECONFLICT, 409, "%s already exists", what);
    case BERTH_EINVAL:
        return res_fail(res, BERTH_EINVAL, 400, "invalid %s", what);
    case BERTH_ENOENT:
        return res_fail(res, BERTH_ENOENT, 404, "%s not found", what);
    default:
        return res_fail(res, BERTH_EINTERNAL, 500, "internal error");
    }
}

/* ------------------------------------------------------------ helpers */

/* Appends the proto3 JSON of m to a new string (caller frees). */
static char *to_json(const ProtobufCMessage *m)
{
    buf out;

    buf_init(&out, SITES_PAYLOAD_MAX);
    if (codec_to_json(m, &out) != 0) {
        buf_free(&out);
        return NULL;
    }
    return buf_detach(&out, NULL);
}

int site_query(panel *p, const char *stmt, int n, const char *const *params,
               PGresult **r)
{
    return db_query(p->db, SITES_DB_WAIT_MS, stmt, n, params, r);
}

int site_query_one(panel *p, const char *stmt, const char *id, PGresult **r)
{
    int rc = site_query(p, stmt, 1, &id, r);

    if (rc == 0 && PQntuples(*r) != 1)
        rc = BERTH_ENOENT;
    return rc;
}

int site_row_spec(PGresult *r, int row, Berth__V1__SiteSpec *out,
                  Berth__V1__SiteSpec **owned)
{
    char err[256];
    int rc;

    rc = sitespec_decode_text(PQgetvalue(r, row, S_SPEC), owned, err,
                              sizeof(err));
    if (rc != 0) {
        log_error("stored site spec does not decode", "site=%s error=%s",
                  PQgetvalue(r, row, S_ID), err);
        return BERTH_EPROTO;
    }
    *out = **owned;
    out->id = PQgetvalue(r, row, S_ID);
    out->name = PQgetvalue(r, row, S_NAME);
    out->node_id = PQgetvalue(r, row, S_NODE);
    out->should_run = strcmp(PQgetvalue(r, row, S_DESIRED), "running") == 0;
    return 0;
}

/* Inserts the commands row of a command (payload = its JSON without the
 * command id, which is the row's id) and copies the id into res. */
static int command_insert(db_conn *c, const char *site_id, const char *node,
                          const char *kind, const ProtobufCMessage *m,
                          const principal *who, site_result *res)
{
    const char *params[5];
    PGresult *r = NULL;
    char *payload = to_json(m);
    int rc;

    if (payload == NULL)
        return BERTH_ENOMEM;
    params[0] = site_id;
    params[1] = node;
    params[2] = kind;
    params[3] = payload;
    params[4] = who != NULL && who->user_id[0] ? who->user_id : NULL;
    rc = db_exec(c, "command_insert", 5, params, &r);
    if (rc == 0)
        snprintf(res->command_id, sizeof(res->command_id), "%s",
                 PQgetvalue(r, 0, C_ID));
    PQclear(r);
    free(payload);
    return rc;
}

/* Publishes command m as <kind>.<node> for JetStream to keep until the
 * node's daemon takes it, then marks its row sent. On failure the row
 * stays pending and res says 503 (what was written stays). */
static int command_send(panel *p, const char *kind, const ProtobufCMessage *m,
                        site_result *res)
{
    const char *id = res->command_id;
    char subject[160];
    db_conn *c = NULL;
    int rc;

    snprintf(subject, sizeof(subject), "%s.%s", kind, res->node_id);
    if (!bus_connected(p->svc.bus)) {
        rc = BERTH_EUNAVAIL;
    } else {
        nodes_ensure_consumer(p->nodes, res->node_id);
        rc = bus_js_publish(p->svc.bus, subject, m, id, SITES_PUBLISH_MS);
    }
    if (rc != 0) {
        log_warn("command saved but not queued; it stays pending",
                 "command=%s "
                 "subject=%s error=%s",
                 id, subject, berth_strerror(rc));
        return res_fail(
            res, BERTH_EUNAVAIL, 503,
            "saved, but the command could not be queued (%s); the node "
            "will catch up when it next synchronises",
            berth_strerror(rc));
    }
    rc = db_acquire(p->db, SITES_DB_WAIT_MS, &c);
    if (rc == 0) {
        rc = db_run(c, "command_mark_sent", 1, &id, NULL);
        db_release(p->db, c);
    }
    if (rc != 0) /* queued all the same; the row says pending */
        log_warn("command queued but not marked sent", "command=%s error=%s",
                 id, berth_strerror(rc));
    res->status = 202;
    return 0;
}

/* Picks the node of a new site into res->node_id: the one asked for (it
 * must be known; it may be offline, its command waits), else the online
 * node with the most memory left (specs minus the sites' limits). */
static int place(panel *p, const char *wanted, site_result *res)
{
    node_info *all = NULL, info;
    size_t count = 0, i;
    PGresult *r = NULL;
    int best = -1, online = 0, rc;
    long long best_free = 0;

    if (wanted[0] != '\0') {
        if (nodes_find(p->nodes, wanted, &info) != 0)
            return res_fail(res, BERTH_ENOENT, 404, "node \"%s\" not found",
                            wanted);
        snprintf(res->node_id, sizeof(res->node_id), "%s", info.id);
        return 0;
    }
    rc = nodes_snapshot(p->nodes, &all, &count);
    if (rc != 0)
        return res_fail(res, rc, 500, "out of memory");
    for (i = 0; i < count; i++)
        online += all[i].online;
    if (online == 0) {
        rc = res_fail(
            res, BERTH_EUNAVAIL, 503,
            "no node is online to place the site on; start a daemon or "
            "name a node with \"node\"");
        goto out;
    }
    rc = site_query(p, "site_memory_by_node", 0, NULL, &r);
    if (rc != 0) {
        rc = res_db(res, rc, "placement");
        goto out;
    }
    for (i = 0; i < count; i++) {
        long long used = 0, left;
        int row;

        if (!all[i].online)
            continue;
        for (row = 0; row < PQntuples(r); row++) {
            if (strcmp(PQgetvalue(r, row, 0), all[i].id) == 0)
                used = atoll(PQgetvalue(r, row, 1));
        }
        left = (long long)(all[i].memory_bytes & INT64_MAX) - used;
        if (best < 0 || left > best_free) {
            best = (int)i;
            best_free = left;
        }
    }
    snprintf(res->node_id, sizeof(res->node_id), "%s", all[best].id);
    rc = 0;
out:
    PQclear(r);
    free(all);
    return rc;
}

/* Inserts the canonical domains of a site; a domain taken by another site
 * is a 409 naming it. */
static int domains_insert(db_conn *c, const char *site_id,
                          const Berth__V1__SiteSpec *s, site_result *res)
{
    size_t i;
    int rc;

    for (i = 0; i < s->n_domains; i++) {
        const char *params[2] = {s->domains[i], site_id};

        rc = db_run(c, "domain_insert", 2, params, NULL);
        if (rc == BERTH_EEXIST)
            return res_fail(res, BERTH_ECONFLICT, 409,
                            "domain %s belongs to another site", s->domains[i]);
        if (rc != 0)
            return res_db(res, rc, "domain");
    }
    return 0;
}

static void audit(panel *p, const principal *who, const http_req *req,
                  const char *action, const site_result *res, json_t *detail)
{
    if (detail != NULL) {
        json_object_set_new(detail, "nodeId", json_string(res->node_id));
        if (res->command_id[0])
            json_object_set_new(detail, "commandId",
                                json_string(res->command_id));
        if (res->code != 0)
            json_object_set_new(detail, "error", json_string(res->message));
    }
    api_audit(p, who, req, action, res->site_id, res->status, detail);
}

/* ------------------------------------------------------------ operations */

/* Opens an operation's transaction: borrows a connection into *c, begins
 * and runs stmt into *r. Whatever happens, *c (NULL when none was
 * borrowed) is then for op_commit() or op_end(). Returns 0 or a berth
 * code. */
static int op_begin(panel *p, const char *stmt, int n,
                    const char *const *params, db_conn **c, PGresult **r)
{
    int rc;

    rc = db_acquire(p->db, SITES_DB_WAIT_MS, c);
    if (rc == 0)
        rc = db_begin(*c);
    if (rc == 0)
        rc = db_exec(*c, stmt, n, params, r);
    return rc;
}

/* op_begin() with a statement that returns the SITE row of site_id (none:
 * the site is not found); copies the site's and its node's ids into res.
 * Returns 0 or res->code. */
static int op_begin_site(panel *p, const char *site_id, const char *stmt,
                         int n, const char *const *params, db_conn **c,
                         PGresult **r, site_result *res)
{
    int rc;

    rc = op_begin(p, stmt, n, params, c, r);
    if (rc == 0 && PQntuples(*r) != 1)
        rc = BERTH_ENOENT;
    if (rc != 0)
        return res_db(res, rc, "site");
    snprintf(res->site_id, sizeof(res->site_id), "%s", site_id);
    snprintf(res->node_id, sizeof(res->node_id), "%s",
             PQgetvalue(*r, 0, S_NODE));
    return 0;
}

/* Commits the transaction on *c when rc (what the operation wrote) is 0
 * and gives the connection back (*c = NULL). Otherwise the command row
 * goes with op_end()'s rollback: res says why and loses the command id.
 * Returns 0 or res->code. */
static int op_commit(panel *p, db_conn **c, int rc, site_result *res)
{
    if (rc == 0)
        rc = db_commit(*c);
    if (rc != 0) {
        res->command_id[0] = '\0';
        return res_db(res, rc, "site");
    }
    db_release(p->db, *c);
    *c = NULL;
    return 0;
}

/* Rolls back and gives back a connection op_commit() did not take. */
static void op_end(panel *p, db_conn *c)
{
    if (c == NULL)
        return;
    db_rollback(c);
    db_release(p->db, c);
}

int site_op_create(panel *p, const principal *who, const http_req *req,
                   const Berth__V1__SiteSpec *in, site_result *res)
{
    Berth__V1__SiteCreate cmd = BERTH__V1__SITE_CREATE__INIT;
    Berth__V1__SiteSpec full;
    sitespec_canon *cs = NULL;
    uint64_t route_rev = 0;
    const char *params[4];
    char *spec = NULL;
    PGresult *r = NULL;
    db_conn *c = NULL;
    char err[256];
    int rc;

    memset(res, 0, sizeof(*res));
    cs = malloc(sizeof(*cs));
    if (cs == NULL)
        return res_fail(res, BERTH_ENOMEM, 500, "out of memory");
    rc = sitespec_check(in, cs, err, sizeof(err));
    if (rc != 0) {
        res_fail(res, BERTH_EINVAL, 400, "%s", err);
        goto out;
    }
    rc = place(p, cs->spec.node_id, res);
    if (rc != 0)
        goto out;
    spec = sitespec_store_json(&cs->spec);
    if (spec == NULL) {
        rc = res_fail(res, BERTH_ENOMEM, 500, "out of memory");
        goto out;
    }
    params[0] = cs->spec.name;
    params[1] = res->node_id;
    params[2] = spec;
    params[3] = "running";
    rc = op_begin(p, "site_insert", 4, params, &c, &r);
    if (rc == BERTH_EEXIST) {
        rc = res_fail(res, BERTH_ECONFLICT, 409,
                      "a site named %s already exists", cs->spec.name);
        goto out;
    }
    if (rc != 0) {
        res_db(res, rc, "site");
        goto out;
    }
    snprintf(res->site_id, sizeof(res->site_id), "%s", PQgetvalue(r, 0, S_ID));
    rc = domains_insert(c, res->site_id, &cs->spec, res);
    if (rc != 0)
        goto out;
    full = cs->spec;
    full.id = res->site_id;
    full.node_id = res->node_id;
    full.should_run = 1;
    cmd.spec = &full;
    cmd.start = 1;
    rc = command_insert(c, res->site_id, res->node_id, "site.create", &cmd.base,
                        who, res);
    if (rc == 0)
        rc = edge_route_touch(c, res->site_id, &route_rev);
    rc = op_commit(p, &c, rc, res);
    if (rc != 0)
        goto out;
    cmd.command_id = res->command_id;
    command_send(p, "site.create", &cmd.base, res);
    edge_route_publish(p, res->site_id, route_rev);
    audit(p, who, req, "site.create", res,
          json_pack("{s:s, s:s}", "name", cs->spec.name, "image",
                    cs->spec.image));
    rc = res->code;
out:
    op_end(p, c);
    if (rc != 0 && res->command_id[0] == '\0')
        res->site_id[0] = '\0'; /* rolled back */
    PQclear(r);
    free(spec);
    free(cs);
    return res->code;
}

int site_op_update(panel *p, const principal *who, const http_req *req,
                   const char *site_id, const Berth__V1__SiteSpec *in,
                   site_result *res)
{
    Berth__V1__SiteCreate cmd = BERTH__V1__SITE_CREATE__INIT;
    Berth__V1__SiteSpec named, full;
    sitespec_canon *cs = NULL;
    uint64_t route_rev = 0;
    const char *params[4];
    char *spec = NULL;
    PGresult *r = NULL;
    db_conn *c = NULL;
    char err[256];
    int run, rc;

    memset(res, 0, sizeof(*res));
    if (!id_uuid_valid(site_id))
        return res_fail(res, BERTH_ENOENT, 404, "site not found");
    cs = malloc(sizeof(*cs));
    if (cs == NULL)
        return res_fail(res, BERTH_ENOMEM, 500, "out of memory");
    rc = op_begin_site(p, site_id, "site_get", 1, &site_id, &c, &r, res);
    if (rc != 0)
        goto out;
    run = strcmp(PQgetvalue(r, 0, S_DESIRED), "running") == 0;
    named = *in; /* the name and node are not the caller's to change */
    named.name = PQgetvalue(r, 0, S_NAME);
    named.node_id = res->node_id;
    rc = sitespec_check(&named, cs, err, sizeof(err));
    if (rc != 0) {
        rc = res_fail(res, BERTH_EINVAL, 400, "%s", err);
        goto out;
    }
    spec = sitespec_store_json(&cs->spec);
    if (spec == NULL) {
        rc = res_fail(res, BERTH_ENOMEM, 500, "out of memory");
        goto out;
    }
    params[0] = site_id;
    params[1] = NULL;
    params[2] = spec;
    params[3] = NULL;
    rc = db_run(c, "site_update", 4, params, NULL);
    if (rc == 0)
        rc = db_run(c, "domain_delete_site", 1, &site_id, NULL);
    if (rc != 0) {
        res_db(res, rc, "site");
        goto out;
    }
    rc = domains_insert(c, site_id, &cs->spec, res);
    if (rc != 0)
        goto out;
    full = cs->spec;
    full.id = res->site_id;
    full.should_run = run;
    cmd.spec = &full;
    cmd.start = run;
    rc = command_insert(c, site_id, res->node_id, "site.create", &cmd.base, who,
                        res);
    if (rc == 0)
        rc = edge_route_touch(c, site_id, &route_rev);
    rc = op_commit(p, &c, rc, res);
    if (rc != 0)
        goto out;
    cmd.command_id = res->command_id;
    command_send(p, "site.create", &cmd.base, res);
    edge_route_publish(p, site_id, route_rev);
    audit(p, who, req, "site.update", res,
          json_pack("{s:s, s:i}", "image", cs->spec.image, "domains",
                    (int)cs->spec.n_domains));
out:
    op_end(p, c);
    PQclear(r);
    free(spec);
    free(cs);
    return res->code;
}

int site_op_power(panel *p, const principal *who, const http_req *req,
                  const char *site_id, int action, site_result *res)
{
    Berth__V1__SitePower cmd = BERTH__V1__SITE_POWER__INIT;
    static const char *const names[] = {"", "start", "stop", "restart", "kill"};
    const char *params[4];
    const char *desired;
    PGresult *r = NULL;
    db_conn *c = NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    if (action < BERTH__V1__POWER_ACTION__POWER_ACTION_START ||
        action > BERTH__V1__POWER_ACTION__POWER_ACTION_KILL)
        return res_fail(
            res, BERTH_EINVAL, 400,
            "action must be \"start\", \"stop\", \"restart\" or \"kill\"");
    if (!id_uuid_valid(site_id))
        return res_fail(res, BERTH_ENOENT, 404, "site not found");
    desired = action == BERTH__V1__POWER_ACTION__POWER_ACTION_START ||
                      action == BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART
                  ? "running"
                  : "stopped";
    params[0] = site_id;
    params[1] = NULL;
    params[2] = NULL;
    params[3] = desired;
    rc = op_begin_site(p, site_id, "site_update", 4, params, &c, &r, res);
    if (rc != 0)
        goto out;
    cmd.site_id = res->site_id;
    cmd.action = (Berth__V1__PowerAction)action;
    rc = command_insert(c, site_id, res->node_id, "site.power", &cmd.base, who,
                        res);
    rc = op_commit(p, &c, rc, res);
    if (rc != 0)
        goto out;
    cmd.command_id = res->command_id;
    command_send(p, "site.power", &cmd.base, res);
    audit(p, who, req, "site.power", res,
          json_pack("{s:s, s:s}", "action", names[action], "desiredState",
                    desired));
out:
    op_end(p, c);
    PQclear(r);
    return res->code;
}

int site_op_delete(panel *p, const principal *who, const http_req *req,
                   const char *site_id, int purge, site_result *res)
{
    Berth__V1__SiteDelete cmd = BERTH__V1__SITE_DELETE__INIT;
    uint64_t route_rev = 0;
    PGresult *r = NULL;
    db_conn *c = NULL;
    char name[SITESPEC_NAME_MAX + 1] = "";
    long n = 0;
    int rc;

    memset(res, 0, sizeof(*res));
    if (!id_uuid_valid(site_id))
        return res_fail(res, BERTH_ENOENT, 404, "site not found");
    rc = op_begin_site(p, site_id, "site_get", 1, &site_id, &c, &r, res);
    if (rc != 0)
        goto out;
    snprintf(name, sizeof(name), "%s", PQgetvalue(r, 0, S_NAME));
    cmd.site_id = res->site_id;
    cmd.purge_data = purge != 0;
    /* The command row outlives the site: it is about the node. */
    rc = command_insert(c, NULL, res->node_id, "site.delete", &cmd.base, who,
                        res);
    if (rc == 0)
        rc = edge_route_deleting(c, site_id, &route_rev);
    if (rc == 0)
        rc = db_run(c, "site_delete", 1, &site_id, &n);
    if (rc == 0 && n != 1)
        rc = BERTH_ENOENT;
    rc = op_commit(p, &c, rc, res);
    if (rc != 0)
        goto out;
    store_grant_drop(p->store, NULL, site_id);
    shell_revoke_site(p, site_id, "site deleted");
    cmd.command_id = res->command_id;
    command_send(p, "site.delete", &cmd.base, res);
    edge_route_deleted(p, site_id, route_rev);
    audit(p, who, req, "site.delete", res,
          json_pack("{s:s, s:b}", "name", name, "purge", purge != 0));
out:
    op_end(p, c);
    PQclear(r);
    return res->code;
}

/* ------------------------------------------------------------ HTTP helpers */

/* Answers an operation: 202 {id, commandId, nodeId}, or the error; an
 * error after the site was saved carries the ids too. */
static void answer(http_resp *resp, const site_result *res)
{
    json_t *j;

    if (res->code == 0) {
        http_json(resp, 202,
                  json_pack("{s:s, s:s, s:s}", "id", res->site_id, "commandId",
                            res->command_id, "nodeId", res->node_id));
        return;
    }
    if (res->command_id[0] == '\0') {
        http_error(resp, res->status, res->code, "%s", res->message);
        return;
    }
    j = json_pack("{s:{s:s, s:s}, s:s, s:s, s:s, s:s}", "error", "code",
                  berth_errname(res->code), "message", res->message, "message",
                  res->message, "id", res->site_id, "commandId",
                  res->command_id, "nodeId", res->node_id);
    http_json(resp, res->status, j);
    http_header(resp, "Retry-After", "5");
}

static json_t *opt_str(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

/* The API form of a SITE row. */
static json_t *site_json(panel *p, PGresult *r, int row)
{
    Berth__V1__SiteSpec full, *owned = NULL;
    json_t *spec, *domains = json_array(), *exit_code;
    node_info ni;
    int known;
    size_t i;

    if (site_row_spec(r, row, &full, &owned) == 0) {
        spec = sitespec_api_json(&full);
        for (i = 0; i < full.n_domains; i++)
            json_array_append_new(domains, json_string(full.domains[i]));
    } else {
        spec = json_object();
    }
    if (owned != NULL)
        protobuf_c_message_free_unpacked(&owned->base, NULL);
    known = nodes_find(p->nodes, PQgetvalue(r, row, S_NODE), &ni) == 0;
    exit_code = PQgetisnull(r, row, S_EXIT)
                    ? json_null()
                    : json_integer(atoi(PQgetvalue(r, row, S_EXIT)));
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:b}, s:o, s:o, s:s, "
                     "s:{s:s, s:o, s:o, s:o}, s:s, s:s}",
                     "id", PQgetvalue(r, row, S_ID), "name",
                     PQgetvalue(r, row, S_NAME), "nodeId",
                     PQgetvalue(r, row, S_NODE), "node", "id",
                     PQgetvalue(r, row, S_NODE), "name",
                     known ? ni.name : PQgetvalue(r, row, S_NODE), "online",
                     known && ni.online, "spec", spec, "domains", domains,
                     "desiredState", PQgetvalue(r, row, S_DESIRED), "status",
                     "state", PQgetvalue(r, row, S_STATUS), "reason",
                     opt_str(PQgetvalue(r, row, S_REASON)), "exitCode",
                     exit_code, "at", opt_str(PQgetvalue(r, row, S_STATUS_AT)),
                     "createdAt", PQgetvalue(r, row, S_CREATED), "updatedAt",
                     PQgetvalue(r, row, S_UPDATED));
}

/* Sets a 403 unless who holds perm on site_id; 400 for a malformed id
 * (checked after the permission so that nothing leaks). */
static int site_access(panel *p, const principal *who, const char *site_id,
                       uint32_t perm, http_resp *resp)
{
    const char *names[1];

    if (!api_site_allowed(p, who, site_id, perm)) {
        auth_perm_names(perm, names, 1);
        http_error(resp, 403, BERTH_EPERM,
                   "permission %s on this site required", names[0]);
        return BERTH_EPERM;
    }
    if (!id_uuid_valid(site_id)) {
        http_error(resp, 400, BERTH_EINVAL, "not a site id");
        return BERTH_EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------ site endpoints
 */

void sites_list(panel *p, http_req *req, http_resp *resp)
{
    const char *param;
    PGresult *r = NULL;
    principal who;
    int global, i, rc;
    json_t *arr;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    global = (who.perms & PERM_SITE_READ) != 0;
    param = who.user_id;
    rc = global ? site_query(p, "site_list", 0, NULL, &r)
                : site_query(p, "site_list_user", 1, &param, &r);
    if (rc != 0) {
        api_db_error(resp, rc, "site");
        return;
    }
    arr = json_array();
    for (i = 0; i < PQntuples(r); i++) {
        if (!global &&
            !api_site_allowed(p, &who, PQgetvalue(r, i, S_ID), PERM_SITE_READ))
            continue;
        json_array_append_new(arr, site_json(p, r, i));
    }
    PQclear(r);
    http_json(resp, 200, json_pack("{s:o}", "sites", arr));
}

void sites_get(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    PGresult *r = NULL;
    principal who;
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        site_access(p, &who, id, PERM_SITE_READ, resp) != 0)
        return;
    rc = site_query_one(p, "site_get", id, &r);
    if (rc != 0) {
        api_db_error(resp, rc, "site");
    } else {
        json_t *site = site_json(p, r, 0);

        json_object_set_new(site, "certificates", edge_site_certs(p, id));
        http_json(resp, 200, site);
    }
    PQclear(r);
}

/* Maps an API body onto proto3 JSON (over base, consumed) and decodes it.
 * Sets a 400 and returns NULL on bad input. */
static Berth__V1__SiteSpec *spec_from_body(json_t *body, json_t *base,
                                           http_resp *resp)
{
    Berth__V1__SiteSpec *spec = NULL;
    char err[256] = "";

    if (sitespec_api_merge(body, base, err, sizeof(err)) != 0 ||
        sitespec_decode(base, &spec, err, sizeof(err)) != 0)
        http_error(resp, 400, BERTH_EINVAL, "%s",
                   err[0] ? err : "invalid site");
    json_decref(base);
    return spec;
}

void sites_create(panel *p, http_req *req, http_resp *resp)
{
    Berth__V1__SiteSpec *spec = NULL;
    json_t *body = NULL;
    site_result res;
    principal who;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_SITE_CREATE, resp) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, sitespec_create_fields, resp) != 0)
        goto out;
    spec = spec_from_body(body, json_object(), resp);
    if (spec == NULL)
        goto out;
    site_op_create(p, &who, req, spec, &res);
    answer(resp, &res);
out:
    if (spec != NULL)
        protobuf_c_message_free_unpacked(&spec->base, NULL);
    json_decref(body);
}

void sites_update(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    Berth__V1__SiteSpec *spec = NULL;
    json_t *body = NULL, *base;
    PGresult *r = NULL;
    site_result res;
    principal who;
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        site_access(p, &who, id, PERM_SITE_UPDATE, resp) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, sitespec_update_fields, resp) != 0)
        goto out;
    if (json_object_size(body) == 0) {
        http_error(resp, 400, BERTH_EINVAL, "nothing to update");
        goto out;
    }
    rc = site_query_one(p, "site_get", id, &r);
    if (rc != 0) {
        api_db_error(resp, rc, "site");
        goto out;
    }
    base = json_loads(PQgetvalue(r, 0, S_SPEC), 0, NULL);
    if (!json_is_object(base)) {
        json_decref(base);
        http_error(resp, 500, BERTH_EINTERNAL, "the stored spec is damaged");
        goto out;
    }
    spec = spec_from_body(body, base, resp);
    if (spec == NULL)
        goto out;
    site_op_update(p, &who, req, id, spec, &res);
    answer(resp, &res);
out:
    if (spec != NULL)
        protobuf_c_message_free_unpacked(&spec->base, NULL);
    PQclear(r);
    json_decref(body);
}

void sites_delete(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    site_result res;
    principal who;
    char purge[8];
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        site_access(p, &who, id, PERM_SITE_DELETE, resp) != 0)
        return;
    rc = http_query(req, "purge", purge, sizeof(purge));
    if (rc < 0 || (rc == 1 && strcmp(purge, "true") != 0 &&
                   strcmp(purge, "false") != 0)) {
        http_error(resp, 400, BERTH_EINVAL, "purge must be true or false");
        return;
    }
    site_op_delete(p, &who, req, id, rc == 1 && strcmp(purge, "true") == 0,
                   &res);
    answer(resp, &res);
}

static const char *const power_fields[] = {"action", NULL};

void sites_power(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    const char *action = NULL;
    json_t *body = NULL;
    site_result res;
    principal who;

    if (api_auth(p, req, resp, &who) != 0 ||
        site_access(p, &who, id, PERM_SITE_POWER, resp) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, power_fields, resp) != 0 ||
        api_str(body, "action", 16, &action, resp) != 0)
        goto out;
    site_op_power(p, &who, req, id, sitespec_power_parse(action), &res);
    answer(resp, &res);
out:
    json_decref(body);
}

/* ------------------------------------------------------------ grants */

void sites_grants_list(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    PGresult *r = NULL;
    json_t *arr, *cur = NULL;
    principal who;
    int i, rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        site_access(p, &who, id, PERM_SITE_UPDATE, resp) != 0)
        return;
    rc = site_query_one(p, "site_get", id, &r);
    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = site_query(p, "site_grant_list_site", 1, &id, &r);
    if (rc != 0) {
        api_db_error(resp, rc, "site");
        return;
    }
    /* Rows come ordered by user: one entry per user. */
    arr = json_array();
    for (i = 0; i < PQntuples(r); i++) {
        const char *uid = PQgetvalue(r, i, 0);

        if (cur == NULL ||
            strcmp(json_string_value(json_object_get(cur, "userId")), uid) !=
                0) {
            store_user u;

            cur =
                json_pack("{s:s, s:s, s:[]}", "userId", uid, "name",
                          store_user_get(p->store, uid, &u) == 0 ? u.name : "",
                          "permissions");
            json_array_append_new(arr, cur);
        }
        json_array_append_new(json_object_get(cur, "permissions"),
                              json_string(PQgetvalue(r, i, 1)));
    }
    PQclear(r);
    http_json(resp, 200, json_pack("{s:o}", "grants", arr));
}

static const char *const grant_fields[] = {"permissions", NULL};

void sites_grants_set(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0], *user_id = req->params[1];
    char names[STORE_PERM_NAMES_MAX] = "";
    const char *params[3];
    json_t *body = NULL, *arr, *v;
    PGresult *r = NULL;
    principal who;
    uint32_t bits = 0, mine, old, role;
    int exists = 0;
    size_t i, used = 0;
    store_user u;
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        site_access(p, &who, id, PERM_SITE_UPDATE, resp) != 0)
        return;
    if (!id_uuid_valid(user_id) || store_user_get(p->store, user_id, &u) != 0) {
        http_error(resp, 404, BERTH_ENOENT, "user not found");
        return;
    }
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, grant_fields, resp) != 0)
        goto out;
    arr = json_object_get(body, "permissions");
    if (!json_is_array(arr) || json_array_size(arr) > 32) {
        http_error(resp, 400, BERTH_EINVAL,
                   "permissions must be a list of at most 32 site permissions");
        goto out;
    }
    json_array_foreach(arr, i, v)
    {
        const char *n = json_string_value(v);
        uint32_t b = n != NULL && strlen(n) <= AUTH_PERM_NAME_MAX
                         ? auth_perm_parse(n)
                         : 0;
        int w;

        if (b == 0 || (b & ~(uint32_t)PERM_SITE_SCOPED) != 0) {
            http_error(
                resp, 400, BERTH_EINVAL,
                "\"%.64s\" is not a site permission (site.read, site.update, "
                "site.delete, site.power, site.console.*, site.files.*)",
                n != NULL ? n : "(not a string)");
            goto out;
        }
        w = snprintf(names + used, sizeof(names) - used, "%s%s",
                     used ? "," : "", n);
        if (w < 0 || (size_t)w >= sizeof(names) - used) {
            http_error(resp, 400, BERTH_EINVAL, "too many permissions");
            goto out;
        }
        used += (size_t)w;
        bits |= b;
    }
    /* Nobody hands out more than they hold on the site. */
    mine = (who.perms | store_grant_get(p->store, who.user_id, id)) &
           PERM_SITE_SCOPED;
    if ((bits & ~mine) != 0) {
        http_error(resp, 403, BERTH_EPERM,
                   "you can grant only permissions you hold on this site");
        goto out;
    }
    rc = site_query_one(p, "site_get", id, &r);
    if (rc == 0) {
        params[0] = user_id;
        params[1] = id;
        params[2] = names;
        PQclear(r);
        r = NULL;
        rc = site_query(p, "site_grant_set", 3, params, &r);
    }
    if (rc != 0) {
        api_db_error(resp, rc, "site");
        goto out;
    }
    /* What the user held on the site before and after, role included. */
    role = store_user_perms(p->store, user_id, &exists);
    old = store_grant_get(p->store, user_id, id);
    store_grant_set(p->store, user_id, id, bits);
    shell_revoke_lost(p, user_id, id, role | old, role | bits, "grant reduced");
    http_json(resp, 200,
              json_pack("{s:s, s:s, s:O}", "siteId", id, "userId", user_id,
                        "permissions", arr));
    api_audit(p, &who, req, "site.grant", id, 200,
              json_pack("{s:s, s:s}", "userId", user_id, "permissions", names));
out:
    PQclear(r);
    json_decref(body);
}

/* ------------------------------------------------------------ commands */

void commands_get(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    PGresult *r = NULL;
    principal who;
    int rc;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    if (!id_uuid_valid(id)) {
        http_error(resp, 400, BERTH_EINVAL, "not a command id");
        return;
    }
    rc = site_query_one(p, "command_get", id, &r);
    if (rc != 0) {
        api_db_error(resp, rc, "command");
        goto out;
    }
    /* Readable with site.read on its site; a command about no site (a
     * deletion) needs site.read globally, unless the caller issued it. */
    if (!(PQgetisnull(r, 0, C_SITE)
              ? (who.perms & PERM_SITE_READ) != 0
              : api_site_allowed(p, &who, PQgetvalue(r, 0, C_SITE),
                                 PERM_SITE_READ)) &&
        strcmp(PQgetvalue(r, 0, C_USER), who.user_id) != 0) {
        http_error(resp, 403, BERTH_EPERM,
                   "permission site.read on this site required");
        goto out;
    }
    http_json(resp, 200,
              json_pack("{s:s, s:o, s:s, s:s, s:s, s:o, s:s, s:s}", "id",
                        PQgetvalue(r, 0, C_ID), "siteId",
                        opt_str(PQgetvalue(r, 0, C_SITE)), "nodeId",
                        PQgetvalue(r, 0, C_NODE), "kind",
                        PQgetvalue(r, 0, C_KIND), "state",
                        PQgetvalue(r, 0, C_STATE), "error",
                        opt_str(PQgetvalue(r, 0, C_ERROR)), "createdAt",
                        PQgetvalue(r, 0, C_CREATED), "updatedAt",
                        PQgetvalue(r, 0, C_UPDATED)));
out:
    PQclear(r);
}
