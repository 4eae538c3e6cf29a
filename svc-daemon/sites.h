/* sites.h - the site supervisor: the sites of this node, their containers
 * and their states.
 *
 *   daemon_sites *s;
 *
 *   rc = daemon_sites_new(&(daemon_sites_cfg){.bus = b, .docker = d,
 *                                             .console = c, .stats = st,
 *                                             .node_id = id, ...}, &s);
 *   rc = daemon_sites_start(s);  adopt, then commands, events, reconcile
 *   ...
 *   daemon_sites_free(s);
 *
 * Commands. The node's durable consumer node-<node> delivers site.create,
 * site.power and site.delete for this node one at a time. Each command's
 * id goes through the ledger (ledger.h): a command already done is not
 * done again (its result is published again), a command interrupted half
 * way is redone checking what already happened. A command is acknowledged
 * only once its effect is done or has failed for good; its outcome is
 * published as CommandResult on command.result.<node>. Docker being away
 * makes a command wait and retry, never fail.
 *
 * States. Each site is offline, starting, running, stopping or crashed
 * (missing when its container vanished, deleted at the end), driven by
 * Docker's /events stream: "start" makes a site running, "die" offline
 * when the daemon stopped it and crashed otherwise (exit code, and out of
 * memory when the kernel killed it). A crash restarts the site per its
 * policy (never / on failure / always) with a growing delay, at most
 * max_restarts in window_seconds (defaults 3 in 60 s); then it stays
 * crashed with the reason. Every change is published as SiteStatus on
 * site.status.<node>.<site> (JetStream), in order per site, retried until
 * NATS takes it.
 *
 * Stopping. A site's stop_command is written to its stdin, or its
 * stop_signal (default SIGTERM) is sent; after stop_timeout_seconds
 * (default 30) the container is killed.
 *
 * Restarts of the daemon. Specs are kept in <data dir>/sites/<site>.pb and
 * data in <data dir>/volumes/<site> (mounted at /data). At start the
 * daemon adopts the containers labelled berth.node=<node>: running ones
 * keep running (console and stats attached again), sites that should run
 * and do not are started.
 *
 * Reconcile. At start, every reconcile_ms and after NATS reconnects, the
 * daemon asks node.sync.<node> for the panel's desired state: sites it
 * lacks are created (reported missing first), changed specs re-create the
 * container, should_run is applied. Containers and sites the panel does
 * not know are reported in the log and left alone unless remove_orphans.
 */
#ifndef BERTH_DAEMON_SITES_H
#define BERTH_DAEMON_SITES_H

#include <stdbool.h>

#include "bus/bus.h"
#include "site.pb-c.h"
#include "svc-daemon/console.h"
#include "svc-daemon/docker.h"
#include "svc-daemon/stats.h"

typedef struct daemon_sites daemon_sites;

typedef struct daemon_sites_cfg {
    bus *bus;
    daemon_docker *docker;
    daemon_console *console;
    daemon_stats *stats;       /* may be NULL */
    const char *node_id;
    const char *data_dir;      /* absolute */
    int reconcile_ms;          /* 0: 60000 */
    int restart_backoff_ms;    /* first delay before an automatic restart;
                                  0: 1000, doubling up to 30 s */
    bool remove_orphans;       /* delete containers the panel disowns */
} daemon_sites_cfg;

/* Opens the ledger and loads the specs kept on disk. Returns 0 and *out,
 * or a berth code (logged). */
int daemon_sites_new(const daemon_sites_cfg *cfg, daemon_sites **out);

/* Adopts the existing containers, starts the events, supervisor and
 * command threads. Returns 0 or a berth code. */
int daemon_sites_start(daemon_sites *s);

/* Stops the threads (containers keep running) and frees s. NULL is a
 * no-op. */
void daemon_sites_free(daemon_sites *s);

/* The number of sites whose container runs. Any thread. */
int daemon_sites_running(daemon_sites *s);

/* Fills *out with site_id's current state, exit code, OOM flag and
 * restart count (site_id, node_id and reason point to the caller's
 * site_id, the node's id and reason, which receives reasonlen bytes).
 * Returns 0 or BERTH_ENOENT for a site not on this node. Any thread. */
int daemon_sites_status(daemon_sites *s, const char *site_id,
                        Berth__V1__SiteStatus *out, char *reason,
                        size_t reasonlen);

#endif
