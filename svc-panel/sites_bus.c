/* sites_bus.c - the bus side of sites (see sites.h).
 *
 *   site.create         SiteCreateRequest -> SiteReply   (request)
 *   site.power          SitePower -> SiteReply           (request)
 *   site.delete         SiteDelete -> Ack{id = command}  (request)
 *   node.sync.<node>    NodeSyncRequest -> NodeSyncReply (request)
 *   panel-events        site.status.<node>.<site>, command.result.<node>
 *
 * The requests do exactly what the HTTP endpoints do, through the same
 * site_op_* functions, audited without a user: whoever may publish on
 * these subjects (NATS permissions) is trusted. site.power may name the
 * user it acts for (a daemon's direct console): then that user's
 * permission is checked too and the audit row is theirs. Errors are the standard
 * error reply with the same code and message the HTTP API would give.
 */
#include "svc-panel/sites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bus/js.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "node.pb-c.h"
#include "svc-panel/auth.h"
#include "svc-panel/edge.h"
#include "svc-panel/nodes.h"
#include "svc-panel/sitespec.h"

#define SITES_REASON_MAX 1024 /* sites.status_reason */
#define SITES_ERROR_MAX  4096 /* commands.error */

struct sites {
    panel *p;
    bus_js_worker *events;
};

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

static int state_parse(const char *name)
{
    int i;

    for (i = 1; i <= BERTH__V1__SITE_STATE__SITE_STATE_DELETED; i++) {
        if (strcmp(sitespec_state_name(i), name) == 0)
            return i;
    }
    return 0;
}

/* ------------------------------------------------------------ requests */

/* Answers with the site as stored now: SiteReply{spec, status, command}. */
static int reply_site(bus_msg *m, panel *p, const site_result *res)
{
    Berth__V1__SiteReply reply = BERTH__V1__SITE_REPLY__INIT;
    Berth__V1__SiteStatus st = BERTH__V1__SITE_STATUS__INIT;
    Berth__V1__SiteSpec full, *owned = NULL;
    PGresult *r = NULL;
    int rc;

    rc = site_query_one(p, "site_get", res->site_id, &r);
    if (rc == 0)
        rc = site_row_spec(r, 0, &full, &owned);
    if (rc != 0) {
        /* Done, but it cannot be read back: say what was done. */
        Berth__V1__SiteSpec bare = BERTH__V1__SITE_SPEC__INIT;

        bare.id = (char *)res->site_id;
        bare.node_id = (char *)res->node_id;
        reply.spec = &bare;
        reply.command_id = (char *)res->command_id;
        rc = bus_reply(m, &reply.base);
        goto out;
    }
    st.site_id = full.id;
    st.node_id = full.node_id;
    st.state = (Berth__V1__SiteState)state_parse(PQgetvalue(r, 0, 5));
    st.reason = PQgetvalue(r, 0, 6);
    st.exit_code = atoi(PQgetvalue(r, 0, 7));
    reply.spec = &full;
    reply.status = &st;
    reply.command_id = (char *)res->command_id;
    rc = bus_reply(m, &reply.base);
out:
    if (owned != NULL)
        protobuf_c_message_free_unpacked(&owned->base, NULL);
    PQclear(r);
    return rc;
}

static int reply_failure(bus_msg *m, const site_result *res)
{
    if (res->command_id[0] != '\0')
        return bus_reply_error(m, res->code, "%s (site %s, command %s)",
                               res->message, res->site_id, res->command_id);
    return bus_reply_error(m, res->code, "%s", res->message);
}

static int on_create(bus_msg *m, void *ud)
{
    sites *s = ud;
    const Berth__V1__SiteCreateRequest *req =
        (const Berth__V1__SiteCreateRequest *)m->msg;
    site_result res;

    if (req->spec == NULL)
        return bus_reply_error(m, BERTH_EINVAL, "spec is required");
    if (site_op_create(s->p, NULL, NULL, req->spec, &res) != 0)
        return reply_failure(m, &res);
    return reply_site(m, s->p, &res);
}

static int on_power(bus_msg *m, void *ud)
{
    sites *s = ud;
    const Berth__V1__SitePower *req = (const Berth__V1__SitePower *)m->msg;
    principal who, *on_behalf = NULL;
    site_result res;

    /* A daemon's direct console acts for the user of its token: that user
     * must still hold site.power here (a token outlives a revocation by up
     * to its lifetime), and the audit log names them. */
    if (req->user_id != NULL && req->user_id[0] != '\0') {
        if (!id_uuid_valid(req->user_id) ||
            api_principal(s->p, req->user_id, &who) != 0 ||
            !api_site_allowed(s->p, &who, req->site_id, PERM_SITE_POWER))
            return bus_reply_error(m, BERTH_EPERM,
                                   "permission site.power required");
        on_behalf = &who;
    }
    if (site_op_power(s->p, on_behalf, NULL, req->site_id, (int)req->action,
                      &res) != 0)
        return reply_failure(m, &res);
    return reply_site(m, s->p, &res);
}

static int on_delete(bus_msg *m, void *ud)
{
    sites *s = ud;
    const Berth__V1__SiteDelete *req = (const Berth__V1__SiteDelete *)m->msg;
    Berth__V1__Ack ack = BERTH__V1__ACK__INIT;
    site_result res;

    if (site_op_delete(s->p, NULL, NULL, req->site_id, req->purge_data, &res) !=
        0)
        return reply_failure(m, &res);
    ack.id = res.command_id;
    return bus_reply(m, &ack.base);
}

/* node.sync.<node>: every site of the node with should_run from its
 * desired state. A node without sites (or unknown) gets an empty list. */
static int on_sync(bus_msg *m, void *ud)
{
    sites *s = ud;
    const Berth__V1__NodeSyncRequest *req =
        (const Berth__V1__NodeSyncRequest *)m->msg;
    Berth__V1__NodeSyncReply reply = BERTH__V1__NODE_SYNC_REPLY__INIT;
    Berth__V1__SiteSpec *specs = NULL, **ptrs = NULL, **owned = NULL;
    char node[NODES_ID_MAX + 1];
    const char *param = node;
    PGresult *r = NULL;
    int i, n = 0, count, rc;

    if (bus_subject_token(m->subject, 2, node, sizeof(node)) != 0 || !nodes_id_valid(node))
        return bus_reply_error(m, BERTH_EINVAL, "not a node id");
    if (req->node_id[0] != '\0' && strcmp(req->node_id, node) != 0)
        return bus_reply_error(
            m, BERTH_EINVAL,
            "node_id \"%.64s\" does not match the subject's \"%s\"",
            req->node_id, node);
    rc = site_query(s->p, "site_list_node", 1, &param, &r);
    if (rc != 0)
        return bus_reply_error(m, rc, "cannot read the node's sites: %s",
                               berth_strerror(rc));
    count = PQntuples(r);
    if (count > 0) {
        specs = calloc((size_t)count, sizeof(*specs));
        ptrs = calloc((size_t)count, sizeof(*ptrs));
        owned = calloc((size_t)count, sizeof(*owned));
        if (specs == NULL || ptrs == NULL || owned == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    for (i = 0; i < count; i++) {
        /* A spec that no longer decodes is left out (and logged): the
         * daemon keeps what it runs rather than losing it. */
        if (site_row_spec(r, i, &specs[n], &owned[n]) != 0)
            continue;
        ptrs[n] = &specs[n];
        n++;
    }
    reply.node_id = node;
    reply.n_sites = (size_t)n;
    reply.sites = ptrs;
    reply.generated_ms = clock_wall_ms();
    rc = bus_reply(m, &reply.base);
out:
    for (i = 0; owned != NULL && i < count; i++) {
        if (owned[i] != NULL)
            protobuf_c_message_free_unpacked(&owned[i]->base, NULL);
    }
    free(owned);
    free(ptrs);
    free(specs);
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------ events */

/* A database error while applying an event: transient ones make
 * JetStream redeliver it; anything else is logged and the event dropped,
 * so that one bad event never blocks the stream. */
static int event_db_error(const char *what, const char *subject, int rc)
{
    if (rc == BERTH_EUNAVAIL || rc == BERTH_ETIMEDOUT)
        return rc;
    log_error("event not applied", "what=%s subject=%s error=%s", what, subject,
              berth_strerror(rc));
    return 0;
}

/* Borrows a connection into *c (the caller gives it back) and reads the
 * row of stmt(id) into *r, a SITE or COMMAND row with the node in column
 * 2. Returns 1 when the row is there and is node's, 0 when the event is
 * to be ignored (logged as unknown or elsewhere, about kind=id), or a
 * berth code. */
static int event_row(panel *p, const char *stmt, const char *kind,
                     const char *id, const char *node, const char *unknown,
                     const char *elsewhere, db_conn **c, PGresult **r)
{
    int rc;

    rc = db_acquire(p->db, SITES_DB_WAIT_MS, c);
    if (rc == 0)
        rc = db_exec(*c, stmt, 1, &id, r);
    if (rc != 0)
        return rc;
    if (PQntuples(*r) != 1) {
        log_info(unknown, "%s=%s node=%s", kind, id, node);
        return 0;
    }
    if (strcmp(PQgetvalue(*r, 0, 2), node) != 0) {
        log_warn(elsewhere, "%s=%s node=%s %s_node=%s", kind, id, node, kind,
                 PQgetvalue(*r, 0, 2));
        return 0;
    }
    return 1;
}

/* site.status.<node>.<site> -> site_set_status. */
static int apply_status(panel *p, bus_msg *m)
{
    const Berth__V1__SiteStatus *st = (const Berth__V1__SiteStatus *)m->msg;
    char node[NODES_ID_MAX + 1], site[64], exit_code[16], at[40];
    char reason[SITES_REASON_MAX + 1];
    const char *params[5];
    PGresult *r = NULL;
    db_conn *c = NULL;
    int rc;

    if (bus_subject_token(m->subject, 2, node, sizeof(node)) != 0 ||
        bus_subject_token(m->subject, 3, site, sizeof(site)) != 0 || !id_uuid_valid(site) ||
        (st->site_id[0] != '\0' && strcasecmp(st->site_id, site) != 0)) {
        log_warn("site status with a bad subject or site id ignored",
                 "subject=%s", m->subject);
        return 0;
    }
    rc = event_row(p, "site_get", "site", site, node,
                   "status of an unknown site ignored",
                   "site status from a node the site is not on ignored", &c,
                   &r);
    if (rc <= 0)
        goto out;
    utf8_cut(st->reason[0] == '\0' && st->oom_killed ? "out of memory"
                                                     : st->reason,
             SITES_REASON_MAX, reason);
    snprintf(exit_code, sizeof(exit_code), "%d", st->exit_code);
    params[0] = site;
    params[1] = sitespec_state_name(st->state);
    params[2] = reason[0] != '\0' ? reason : NULL;
    params[3] =
        st->exit_code != 0 ||
                st->state == BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE ||
                st->state == BERTH__V1__SITE_STATE__SITE_STATE_CRASHED
            ? exit_code
            : NULL;
    params[4] =
        st->at_ms > 0 ? clock_fmt_rfc3339(at, sizeof(at), st->at_ms) : NULL;
    rc = db_run(c, "site_set_status", 5, params, NULL);
    if (rc == 0)
        log_debug("site status", "site=%s state=%s", site, params[1]);
    if (rc == 0) /* the edge's route follows the state and upstream */
        rc = edge_site_status(p, c, site, st->state, st->upstream);
out:
    if (c != NULL)
        db_release(p->db, c);
    PQclear(r);
    return rc != 0 ? event_db_error("site status", m->subject, rc) : 0;
}

/* command.result.<node> -> command_set_state done or failed. */
static int apply_result(panel *p, bus_msg *m)
{
    const Berth__V1__CommandResult *cr =
        (const Berth__V1__CommandResult *)m->msg;
    char node[NODES_ID_MAX + 1], error[SITES_ERROR_MAX + 1];
    const char *params[3];
    const char *id = cr->command_id;
    PGresult *r = NULL;
    db_conn *c = NULL;
    int rc;

    if (bus_subject_token(m->subject, 2, node, sizeof(node)) != 0 || !id_uuid_valid(id)) {
        log_warn("command result without a command id ignored", "subject=%s",
                 m->subject);
        return 0;
    }
    rc = event_row(p, "command_get", "command", id, node,
                   "result of an unknown command ignored",
                   "command result from another node ignored", &c, &r);
    if (rc <= 0)
        goto out;
    utf8_cut(cr->error != NULL && cr->error->message[0] != '\0'
                 ? cr->error->message
                 : "failed",
             SITES_ERROR_MAX, error);
    params[0] = id;
    params[1] = cr->ok ? "done" : "failed";
    params[2] = cr->ok ? NULL : error;
    PQclear(r);
    r = NULL;
    rc = db_exec(c, "command_set_state", 3, params, &r);
    if (rc == 0)
        log_info("command finished", "command=%s node=%s state=%s", id, node,
                 params[1]);
out:
    if (c != NULL)
        db_release(p->db, c);
    PQclear(r);
    return rc != 0 ? event_db_error("command result", m->subject, rc) : 0;
}

static int on_event(bus_msg *m, void *ud)
{
    sites *s = ud;
    const ProtobufCMessageDescriptor *d = m->msg->descriptor;

    if (d == &berth__v1__site_status__descriptor)
        return apply_status(s->p, m);
    if (d == &berth__v1__command_result__descriptor)
        return apply_result(s->p, m);
    return 0; /* node.online and the rest: nothing to apply */
}

/* ------------------------------------------------------------ life cycle */

int sites_new(sites **out, panel *p)
{
    sites *s = calloc(1, sizeof(*s));

    *out = s;
    if (s == NULL)
        return BERTH_ENOMEM;
    s->p = p;
    return 0;
}

int sites_start(sites *s)
{
    bus *b = s->p->svc.bus;
    int rc;

    rc = bus_serve(b, "site-create", "site.create", on_create, s);
    if (rc == 0)
        rc = bus_serve(b, "site-power", "site.power", on_power, s);
    if (rc == 0)
        rc = bus_serve(b, "site-delete", "site.delete", on_delete, s);
    if (rc == 0)
        rc = bus_serve(b, "node-sync", "node.sync.*", on_sync, s);
    if (rc == 0)
        rc = bus_js_consume(b, "panel-events", NULL, on_event, s, &s->events);
    return rc;
}

void sites_stop(sites *s)
{
    if (s == NULL)
        return;
    bus_js_stop(s->events);
    s->events = NULL;
}

void sites_free(sites *s)
{
    if (s == NULL)
        return;
    sites_stop(s);
    free(s);
}
