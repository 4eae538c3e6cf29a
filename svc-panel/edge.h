/* edge.h - the panel's side of berth-edge: the routes it publishes for the
 * edge, route.list, and the certificate states the edge reports.
 *
 * Routes. A site's route is its domains, the upstream ("ip:port") its
 * daemon reported last and whether it runs (sql/002_edge.sql). Whatever
 * changes a route takes the next revision of route_clock in the same
 * transaction, then, once committed, the route as stored is published to
 * JetStream (stream ROUTES):
 *
 *   route.set.<site>  RouteSet{site_id, domains, upstream, running, revision}
 *                     a site with domains was created or updated, or
 *                     reported a new state or upstream (running = starting
 *                     or running with an upstream; anything else: false,
 *                     and the edge answers 503)
 *   route.del.<site>  RouteDel{site_id, revision}
 *                     a routed site was deleted or lost all its domains
 *
 * A publish that fails (NATS away) is only logged: the edge asks for
 * route.list at start, after reconnecting and every minute, and the list
 * is read from PostgreSQL with the clock's revision in one snapshot, so it
 * heals whatever was missed.
 *
 * Certificates. The durable consumer panel-certs (stream CERTS) keeps the
 * newest cert.status.<domain> of each domain in the certificates table;
 * GET /sites/:id shows them per domain of the site.
 *
 * Threads: the hooks run on the caller's thread (HTTP workers, the
 * panel-events consumer, bus handlers) with the caller's connection where
 * one is given; route.list runs on a nats.c thread; the certificate
 * consumer has a thread of its own (bus/js.c).
 */
#ifndef BERTH_PANEL_EDGE_H
#define BERTH_PANEL_EDGE_H

#include <jansson.h>
#include <stdint.h>

#include "svc-panel/panel.h"

#define EDGE_PUBLISH_MS 3000 /* wait for JetStream's ack of a route */

typedef struct edge edge;

/* Creates the module; nothing runs yet. Returns 0 or BERTH_ENOMEM. */
int edge_new(edge **out, panel *p);

/* Serves route.list and starts consuming panel-certs. Returns 0 or a
 * berth code. */
int edge_start(edge *e);

/* Stops the certificate consumer (route.list is served until the bus is
 * closed); free after the bus is closed. NULL is a no-op. */
void edge_stop(edge *e);
void edge_free(edge *e);

/* ------------------------------------------------------------ hooks */

/* Inside the transaction that changes a site's domains (c has begun):
 * takes a revision for the site's route when it has domains or had a
 * route. *rev is that revision, 0 when there is nothing to announce.
 * Returns 0 or a database code (the caller's transaction fails). */
int edge_route_touch(db_conn *c, const char *site_id, uint64_t *rev);

/* After the commit: publishes the site's route as stored (route.set, or
 * route.del when it has no domains any more). rev is what
 * edge_route_touch() gave; 0 does nothing. */
void edge_route_publish(panel *p, const char *site_id, uint64_t rev);

/* Inside the transaction that deletes a site, before the delete: takes a
 * revision when the site had a route (*rev, else 0). */
int edge_route_deleting(db_conn *c, const char *site_id, uint64_t *rev);

/* After the commit: publishes route.del.<site> with rev (0: nothing). */
void edge_route_deleted(panel *p, const char *site_id, uint64_t rev);

/* A site.status was applied (c: the event's connection, not in a
 * transaction): records the upstream and running flag it implies and,
 * when they changed for a site with domains, announces the route.
 * Returns 0 or a database code (transient ones make the event come
 * again). */
int edge_site_status(panel *p, db_conn *c, const char *site_id, int state,
                     const char *upstream);

/* The certificates of a site's domains for GET /sites/:id:
 * [{domain, state: "unknown"|"pending"|"valid"|"failed"|"removed",
 * notAfter, reason, nextAttempt}] (null when not known). Returns a new
 * reference; an empty array when the database fails. */
json_t *edge_site_certs(panel *p, const char *site_id);

#endif
