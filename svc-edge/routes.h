/* routes.h - the edge's route table: which site each domain goes to, kept
 * in HAProxy's hosts map.
 *
 *   edge_routes *r;
 *
 *   rc = edge_routes_new(&(edge_routes_cfg){.bus = b, .haproxy = h}, &r);
 *   rc = edge_haproxy_start(h);   (r re-applies its table at every start)
 *   rc = edge_routes_start(r);    (consumer and keeper thread run)
 *   ...
 *   edge_routes_free(r);
 *
 * The table maps a site id to its route: domains, upstream ("ip:port" of
 * the site's container), running flag and the revision the panel gave it.
 * A domain is served as the upstream of its site when the site runs, as a
 * 503 page when it does not (or its upstream is unknown), and not at all
 * (404) when no site claims it. Two sites claiming one domain (only
 * possible while events cross) give it to the one with the higher revision.
 *
 * Changes come from the durable consumer "edge-routes" (stream ROUTES):
 * route.set.<site> replaces the site's route, route.del.<site> removes it.
 * Each carries the panel's revision, and a message that is not newer than
 * what the table has for the site (or for a site it saw deleted) is
 * ignored, so replays and crossed messages never undo a newer state. A
 * change is applied to the running HAProxy at once (set map / add map /
 * del map per host; prepare map / commit map when many hosts change) and
 * the map file is rewritten shortly after (coalesced, atomic).
 *
 * Healing. The keeper thread asks the panel for the complete list
 * (route.list) at start, after every NATS reconnect and every heal_ms. The
 * list's own revision says how recent it is: its routes are applied like
 * route.set messages, and a site the table has that the list lacks is
 * removed when its revision is not newer than the list's.
 *
 * Persistence. The hosts map file is the source of truth on disk: HAProxy
 * loads it when it starts, and comment lines in it ("# site <id> <revision>
 * <running> <upstream>", "# gone <id> <revision>", "# floor <revision>")
 * carry the rest of the table, read back by edge_routes_new(). After
 * every start of HAProxy the whole table is applied again in one
 * prepare/commit.
 *
 * Domain hooks. domain_added(ud, domain, site_id) runs when a domain
 * becomes served (at edge_routes_start() for every domain already in the
 * table, then for each new one, and again when a domain passes to another
 * site); domain_removed(ud, domain) when it is no longer served;
 * list_applied(ud) after each route.list was applied. They are
 * called in order, on the thread that made the change, without the table
 * lock held: they may call into edge_haproxy but must not block long.
 *
 * Threads: the consumer thread (bus/js.c) applies events; the keeper
 * thread writes the map file, heals and retries; the HAProxy supervisor
 * thread re-applies after restarts. mu guards the table.
 */
#ifndef BERTH_EDGE_ROUTES_H
#define BERTH_EDGE_ROUTES_H

#include <stdint.h>

#include "bus/bus.h"
#include "svc-edge/haproxy.h"

#define EDGE_ROUTES_DOMAINS_MAX 64  /* per site; the panel allows 32 */
#define EDGE_ROUTES_SITE_MAX    64  /* a site id: [A-Za-z0-9_-] */
#define EDGE_ROUTES_DOMAIN_MAX  253
#define EDGE_ROUTES_HEAL_MS     60000

typedef struct edge_routes edge_routes;

/* The caller keeps bus and haproxy alive until edge_routes_free(). */
typedef struct edge_routes_cfg {
    bus *bus;
    edge_haproxy *haproxy;
    int heal_ms; /* route.list period; 0: EDGE_ROUTES_HEAL_MS */
    void (*domain_added)(void *ud, const char *domain, const char *site_id);
    void (*domain_removed)(void *ud, const char *domain);
    /* After each route.list was applied: every domain the panel routes has
     * been announced by then (a certificate manager may forget the rest). */
    void (*list_applied)(void *ud);
    void *domain_ud; /* for the three hooks */
} edge_routes_cfg;

/* Loads the table from the hosts map file (a missing file is an empty
 * table) and registers the re-apply with haproxy, so call it before
 * edge_haproxy_start(). Returns 0 and *out (free with edge_routes_free()),
 * or a berth code. */
int edge_routes_new(const edge_routes_cfg *cfg, edge_routes **out);

/* Announces the table's domains to domain_added, starts the keeper thread
 * (JetStream streams, route.list, map file) and the edge-routes consumer.
 * Returns 0 or a berth code. */
int edge_routes_start(edge_routes *r);

/* Stops the consumer and the keeper, writes the map file one last time and
 * frees r. NULL is a no-op. */
void edge_routes_free(edge_routes *r);

/* Returns 1 when d is a host name the edge routes: 1..253 bytes, labels of
 * 1..63 lower-case letters, digits and inner hyphens, at least two labels,
 * the last not numeric, no wildcard; a label with "--" in its third and
 * fourth places must be an IDNA A-label ("xn--..."). Upper case and
 * non-ASCII are refused: IDNs arrive as punycode. */
int edge_routes_domain_valid(const char *d);

/* Counts for logs and tests: sites with a route, hosts served. */
void edge_routes_counts(edge_routes *r, int *sites, int *hosts);

#endif
