/* main.c - berth-panel: users, roles, nodes and sites; signs tokens for
 * browsers.
 *
 * Concurrency: the main thread runs the libwebsockets event loop (http.c),
 * which owns every HTTP and websocket connection. Handlers that may block
 * (PostgreSQL) run on http.c's worker threads, each borrowing its own
 * database connection from the pool (db.c). nats.c delivers bus messages on
 * its own threads; anything they need to tell browsers is posted to the
 * loop with http_post(). Shared state lives in modules with their own locks:
 * the store (users, roles, grants), the throttle, the pool, the node table
 * (nodes.c, whose upkeep thread checks liveness and JetStream). The
 * panel-events consumer runs on a thread of its own (sites_bus.c), so
 * does the panel-certs consumer (edge.c). Live
 * events for websockets are queued by bus threads and fanned out on the
 * loop (events.c, whose ticker thread wakes the loop). A signal thread
 * stops the loop. At exit the bus is closed before the database,
 * because bus handlers use the database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/svc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "common/log.h"
#include "common/sig.h"
#include "svc-panel/edge.h"
#include "svc-panel/events.h"
#include "svc-panel/nodes.h"
#include "svc-panel/panel.h"
#include "svc-panel/routes.h"
#include "svc-panel/shell.h"
#include "svc-panel/sites.h"
#include "svc-panel/store.h"
#include "svc-panel/tokens.h"

static const cfg_key panel_keys[] = {
    CONFIG_COMMON_KEYS,
    {"BERTH_PANEL_ADDR", CFG_STR, "127.0.0.1:8080", "HTTP listen address",
     0, 0, 0},
    {"BERTH_PG_DSN", CFG_STR, "host=/var/run/postgresql dbname=berth",
     "PostgreSQL connection string", 0, 0, 0},
    {"BERTH_PG_POOL", CFG_INT, "4", "PostgreSQL connections", 1, 64, 0},
    {"BERTH_SQL_DIR", CFG_STR, "sql", "directory of the SQL migrations", 0, 0,
     0},
    {"BERTH_ADMIN_PASSWORD", CFG_STR, NULL,
     "password of the first admin (default: generated and printed once)", 0, 0,
     CFG_SECRET},
    {"BERTH_HTTP_WORKERS", CFG_INT, "4", "threads running blocking handlers",
     1, 64, 0},
    {"BERTH_UI_DIR", CFG_STR, "ui", "directory of the web UI's files", 0, 0,
     0},
    {"BERTH_UI_VENDOR_DIR", CFG_STR, "/usr/share/nodejs",
     "where Debian's node-xterm and node-chart.js are installed", 0, 0, 0},
    {"BERTH_NODE_HEARTBEAT_MS", CFG_INT, "5000",
     "heartbeat interval asked of daemons; 3 missed = offline", 100, 600000, 0},
    {0},
};

static const svc_def panel_def = {
    .component = "panel",
    .service = "berth-panel",
    .description = "users, roles, nodes and sites; signs tokens for browsers",
    .keys = panel_keys,
};

void panel_health(panel *p, http_req *req, http_resp *resp)
{
    (void)req;
    http_json(resp, 200,
              json_pack("{s:s, s:b, s:i}", "status", "ok", "bus",
                        bus_connected(p->svc.bus), "schema",
                        db_schema_version(p->db)));
}

void panel_metrics(panel *p, http_req *req, http_resp *resp)
{
    int size = 0, busy = 0;
    long errors = 0;

    (void)req;
    resp->content_type = "text/plain; version=0.0.4";
    http_metrics(p->http, &resp->body);
    events_metrics(p->events, &resp->body);
    db_stats(p->db, &size, &busy, &errors);
    buf_printf(&resp->body,
               "# TYPE berth_db_pool_connections gauge\n"
               "berth_db_pool_connections %d\n"
               "# TYPE berth_db_pool_busy gauge\n"
               "berth_db_pool_busy %d\n"
               "# TYPE berth_db_errors_total counter\n"
               "berth_db_errors_total %ld\n"
               "# TYPE berth_bus_connected gauge\n"
               "berth_bus_connected %d\n",
               size, busy, errors, bus_connected(p->svc.bus));
}

/* Opens the pool, waiting for PostgreSQL as long as it takes: a panel
 * started before its database simply waits. */
static int open_db(panel *p)
{
    const config *cfg = p->svc.cfg;
    int64_t delay = 200;
    int rc;

    for (;;) {
        rc = db_open(&p->db, config_str(cfg, "BERTH_PG_DSN"),
                     (int)config_int(cfg, "BERTH_PG_POOL"),
                     config_str(cfg, "BERTH_SQL_DIR"));
        if (rc != BERTH_EUNAVAIL)
            return rc;
        if (sig_wait((int)delay) > 0)
            return BERTH_ECANCELED;
        if (delay < 5000)
            delay *= 2;
        log_warn("waiting for PostgreSQL", "retry_ms=%lld", (long long)delay);
    }
}

static int gen_password(void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    unsigned char r[64];
    char *out = data;
    size_t i;
    int rc;

    if (len > sizeof(r))
        return BERTH_EINVAL;
    rc = id_random(r, len);
    for (i = 0; rc == 0 && i < len; i++)
        out[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
    return rc;
}

/* First start: the admin role (permission "*") and the admin user. */
static int bootstrap(panel *p)
{
    const char *given = config_str(p->svc.cfg, "BERTH_ADMIN_PASSWORD");
    char password[25] = "";
    char hash[AUTH_HASH_MAX];
    char role_id[16];
    const char *params[4];
    PGresult *res = NULL;
    db_conn *c = NULL;
    store_role r;
    int rc;

    rc = db_acquire(p->db, 5000, &c);
    if (rc != 0)
        return rc;
    rc = db_exec(c, "user_count", 0, NULL, &res);
    if (rc != 0 || atoi(PQgetvalue(res, 0, 0)) > 0)
        goto out;
    if (store_role_by_name(p->store, "admin", &r) != 0) {
        const char *name = "admin";
        PQclear(res);
        res = NULL;
        rc = db_exec(c, "role_insert", 1, &name, &res);
        if (rc != 0)
            goto out;
        params[0] = PQgetvalue(res, 0, 0);
        params[1] = "*";
        rc = db_run(c, "role_perm_set", 2, params, NULL);
        if (rc != 0)
            goto out;
    }
    if (given != NULL && given[0] != '\0')
        snprintf(password, sizeof(password), "%s", given);
    else if ((rc = gen_password(password, 24)) != 0)
        goto out;
    rc = auth_password_hash(given && given[0] ? given : password, hash);
    if (rc != 0)
        goto out;
    PQclear(res);
    res = NULL;
    rc = db_exec(c, "role_get_by_name", 1, (const char *[]){"admin"}, &res);
    if (rc != 0 || PQntuples(res) != 1) {
        rc = rc ? rc : BERTH_EINTERNAL;
        goto out;
    }
    snprintf(role_id, sizeof(role_id), "%s", PQgetvalue(res, 0, 0));
    params[0] = "admin";
    params[1] = "admin@localhost";
    params[2] = hash;
    params[3] = role_id;
    rc = db_run(c, "user_insert", 4, params, NULL);
    if (rc != 0)
        goto out;
    if (given == NULL || given[0] == '\0') {
        fprintf(stderr,
                "\n  berth: first start. Log in as admin with the password\n"
                "\n      %s\n\n  It is shown only this once.\n\n",
                password);
    }
    log_info("admin user created", "name=%s", "admin");
out:
    PQclear(res);
    db_release(p->db, c);
    return rc;
}

static void on_signal(int signo, void *arg)
{
    panel *p = arg;

    log_info("shutting down", "signal=%s", strsignal(signo));
    http_stop(p->http);
}

int main(int argc, char **argv)
{
    static panel p;
    char pfp[1024];
    int rc;

    rc = svc_start(&p.svc, &panel_def, argc, argv);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    snprintf(pfp, sizeof(pfp), "%s/pfp", p.svc.data_dir);
    p.pfp_dir = pfp;
    p.throttle = auth_throttle_new();
    p.store = store_new();
    if (p.throttle == NULL || p.store == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = events_new(&p.events, &p);
    if (rc == 0)
        rc = fs_mkdirs(pfp, 0700);
    if (rc == 0)
        rc = auth_keys_load(&p.keys, p.svc.data_dir);
    if (rc != 0) {
        log_error("panel keys", "error=%s", berth_strerror(rc));
        goto out;
    }
    rc = open_db(&p);
    if (rc == 0)
        rc = store_load(p.store, p.db);
    if (rc == 0)
        rc = bootstrap(&p);
    if (rc == 0)
        rc = store_load(p.store, p.db);
    if (rc != 0) {
        log_error("database", "error=%s", berth_strerror(rc));
        goto out;
    }
    rc = nodes_new(&p.nodes, &p);
    if (rc == 0)
        rc = sites_new(&p.sites, &p);
    if (rc == 0)
        rc = edge_new(&p.edge, &p);
    if (rc == 0)
        rc = nodes_start(p.nodes);
    if (rc == 0)
        rc = sites_start(p.sites);
    if (rc == 0)
        rc = edge_start(p.edge);
    if (rc != 0) {
        log_error("nodes and sites", "error=%s", berth_strerror(rc));
        goto out;
    }
    rc = http_start(&p.http, &p, config_str(p.svc.cfg, "BERTH_PANEL_ADDR"),
                    panel_routes, (int)config_int(p.svc.cfg, "BERTH_HTTP_WORKERS"),
                    &events_ws_hooks);
    if (rc != 0) {
        log_error("http", "addr=%s error=%s",
                  config_str(p.svc.cfg, "BERTH_PANEL_ADDR"), berth_strerror(rc));
        goto out;
    }
    rc = events_start(p.events);
    if (rc == 0)
        rc = tokens_start(&p);
    if (rc == 0)
        rc = shell_start(&p);
    if (rc == 0)
        rc = sig_start_thread(on_signal, &p);
    if (rc != 0)
        goto out;
    log_info("listening", "addr=%s", config_str(p.svc.cfg, "BERTH_PANEL_ADDR"));
    svc_ready(&p.svc);
    rc = http_run(p.http);
out:
    events_stop(p.events);
    http_free(p.http);
    edge_stop(p.edge);
    sites_stop(p.sites);
    nodes_stop(p.nodes);
    bus_close(p.svc.bus); /* drains the handlers, which use the database */
    p.svc.bus = NULL;
    db_close(p.db);
    store_free(p.store);
    auth_throttle_free(p.throttle);
    svc_stop(&p.svc);
    events_free(p.events); /* after the bus: its handlers use it */
    edge_free(p.edge);
    sites_free(p.sites);
    nodes_free(p.nodes);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
