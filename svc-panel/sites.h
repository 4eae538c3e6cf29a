/* sites.h - sites and their commands: the operations shared by the HTTP
 * API (sites.c) and the bus (sites_bus.c), and the module that serves the
 * bus side and applies what daemons report.
 *
 * An operation (create, update, power, delete) validates, writes
 * PostgreSQL in one transaction (the site, its domains and a commands row,
 * state "pending"), then publishes the durable command to the node's
 * daemon with bus_js_publish(msg_id = command id) and marks the row "sent"
 * once JetStream has it. Nothing waits for the node: JetStream keeps the
 * command (work-queue stream COMMANDS, consumer node-<node>) until the
 * daemon takes it. When the publish fails (NATS away) the operation
 * answers 503 but keeps what it wrote; the command row stays "pending" and
 * the daemon's reconcile (node.sync.<node>, the desired state of every
 * site) brings the node in line later.
 *
 * Updates re-send the whole spec as a SiteCreate (start = desired state is
 * running): daemons treat a SiteCreate for a site they run as "re-create
 * it with this spec", so commands stay idempotent.
 *
 * Daemons report through the EVENTS stream, consumed by the durable
 * "panel-events": site.status.<node>.<site> sets the site's status,
 * command.result.<node> settles a command (done or failed). Reports about
 * unknown sites or commands, or from the wrong node, are logged and
 * acknowledged so they never hold up the consumer.
 *
 * Threads: operations run on HTTP workers or nats.c threads, each with
 * its own borrowed database connection; the event consumer has a thread
 * of its own (bus/js.c).
 */
#ifndef BERTH_PANEL_SITES_H
#define BERTH_PANEL_SITES_H

#include "site.pb-c.h"
#include "svc-panel/api.h"
#include "svc-panel/panel.h"

#define SITES_PUBLISH_MS 3000 /* wait for JetStream's ack of a command */
#define SITES_DB_WAIT_MS 2000

/* The outcome of an operation, turned into an HTTP or a bus answer. */
typedef struct site_result {
    int code;          /* 0, or the berth code of the failure */
    int status;        /* HTTP status: 202 on success */
    char message[512]; /* why it failed */
    char site_id[40];  /* set once the site is known (even on failure) */
    char node_id[65];
    char command_id[40]; /* set once the command row exists */
} site_result;

/* The operations. who and req are NULL on the bus (audited as the system).
 * Each returns res->code. Permission checks are the caller's: the bus is
 * trusted, NATS permissions decide who may publish there. */
int site_op_create(panel *p, const principal *who, const http_req *req,
                   const Berth__V1__SiteSpec *spec, site_result *res);
/* spec replaces the site's spec (its name and node are kept). */
int site_op_update(panel *p, const principal *who, const http_req *req,
                   const char *site_id, const Berth__V1__SiteSpec *spec,
                   site_result *res);
int site_op_power(panel *p, const principal *who, const http_req *req,
                  const char *site_id, int action, site_result *res);
int site_op_delete(panel *p, const principal *who, const http_req *req,
                   const char *site_id, int purge, site_result *res);

/* Borrows a connection (waiting up to SITES_DB_WAIT_MS), runs the
 * prepared statement stmt and gives the connection back. *r is the
 * caller's to PQclear(). Returns 0 or a berth code. */
int site_query(panel *p, const char *stmt, int n, const char *const *params,
               PGresult **r);

/* site_query() of a statement taking one id that must return exactly one
 * row: BERTH_ENOENT when it returns none. */
int site_query_one(panel *p, const char *stmt, const char *id, PGresult **r);

/* Reads a SITE row (db.c) into a full SiteSpec: the stored spec plus id,
 * name, node_id and should_run. *owned is what to free with
 * protobuf_c_message_free_unpacked(); out borrows from it and from r.
 * Returns 0 or BERTH_EPROTO (a stored spec that no longer decodes). */
int site_row_spec(PGresult *r, int row, Berth__V1__SiteSpec *out,
                  Berth__V1__SiteSpec **owned);

/* The bus side. */
typedef struct sites sites;

/* Creates the module; nothing runs yet. Returns 0 or BERTH_ENOMEM. */
int sites_new(sites **out, panel *p);

/* Serves site.create, site.power, site.delete and node.sync.*, and starts
 * consuming panel-events. Returns 0 or a berth code. */
int sites_start(sites *s);

/* Stops the event consumer (waits for the event in progress). The served
 * subjects keep working until the bus is closed; free after that. NULL is
 * a no-op. */
void sites_stop(sites *s);
void sites_free(sites *s);

#endif
