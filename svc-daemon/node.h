/* node.h - who this daemon is to the panel: its persistent node id, its
 * specs, registration and heartbeats.
 *
 *   daemon_node *n;
 *
 *   rc = daemon_node_new(&(daemon_node_cfg){.bus = b, .docker = d,
 *                                           .data_dir = dir, ...}, &n);
 *   rc = daemon_node_start(n);   (the node thread runs)
 *   ...
 *   daemon_node_free(n);         (stops and joins the thread)
 *
 * Identity. The node id is a UUID generated on the first start and kept in
 * <data dir>/node.id (0600); every later start reads it back, so a node
 * keeps its id, its command consumer and its sites across restarts.
 *
 * Registration. The node thread gathers the specs (host name, CPUs,
 * memory, Docker version, disk of the data directory, kernel, arch) and
 * asks node.register.<id> (NodeRegister -> NodeRegistered), retrying with
 * backoff (250 ms doubling to 5 s) until the panel answers; it may start
 * later than the daemon. It registers again after every NATS reconnect,
 * and once Docker answers when it did not at the last registration (the
 * Docker version was sent empty then).
 *
 * Heartbeats. Once registered, node.heartbeat.<id> (NodeHeartbeat with a
 * sequence number and the send time) is published every
 * heartbeat_interval_ms of the last reply. A later registration that fails
 * does not stop them; it is retried with the same backoff.
 *
 * Threads: one node thread does all the above and owns the state it keeps;
 * daemon_node_id() may be called from any thread.
 */
#ifndef BERTH_DAEMON_NODE_H
#define BERTH_DAEMON_NODE_H

#include "bus/bus.h"
#include "common/id.h"
#include "svc-daemon/docker.h"

#define DAEMON_NODE_ID_FILE "node.id"
#define DAEMON_NODE_NAME_MAX 64 /* the panel's NODES_NAME_MAX */

typedef struct daemon_node daemon_node;

/* The caller keeps bus and docker alive until daemon_node_free(); the
 * strings are copied. */
typedef struct daemon_node_cfg {
    bus *bus;
    daemon_docker *docker;
    const char *data_dir;   /* node.id lives here; its disk is reported */
    const char *name;       /* NULL or "": the host name */
    const char *public_url; /* http(s) URL where browsers reach the daemon */
    const char *version;    /* the daemon's version */
} daemon_node_cfg;

/* Reads <data_dir>/node.id, creating it with a new UUID when absent, into
 * id. Returns 0, BERTH_EPERM when the file is readable by others,
 * BERTH_EPROTO when it does not hold a UUID, or another berth code. */
int daemon_node_id_load(const char *data_dir, char id[ID_UUID_LEN + 1]);

/* Loads the node id and prepares the module; nothing is sent yet. Returns
 * 0 and *out (free with daemon_node_free()), BERTH_EINVAL for a bad name
 * or public URL, or the code of daemon_node_id_load(). Errors are
 * logged. */
int daemon_node_new(const daemon_node_cfg *cfg, daemon_node **out);

/* Heartbeats carry fn(ud) as the number of running sites. Call before
 * daemon_node_start(). */
void daemon_node_count_with(daemon_node *n, int (*fn)(void *ud), void *ud);

/* Starts the node thread. Returns 0 or BERTH_ENOMEM. */
int daemon_node_start(daemon_node *n);

/* Stops and joins the node thread; no more heartbeats are sent. Safe to
 * call twice or on a module never started. */
void daemon_node_stop(daemon_node *n);

/* Stops the thread and frees n. NULL is a no-op. */
void daemon_node_free(daemon_node *n);

/* The node id, valid as long as n. */
const char *daemon_node_id(const daemon_node *n);

#endif
