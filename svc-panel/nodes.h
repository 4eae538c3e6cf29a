/* nodes.h - the nodes a panel knows: registration, heartbeats, liveness,
 * and the JetStream set-up their commands depend on.
 *
 * A daemon announces itself with a request on node.register.<node>
 * (NodeRegister -> NodeRegistered, which tells it the heartbeat interval)
 * and then publishes node.heartbeat.<node>. The panel keeps every node in
 * memory (loaded from PostgreSQL at start, written through on
 * registration), so GET /nodes and placement never wait for the database
 * or for a node. Heartbeats of a node the panel does not know are ignored:
 * a daemon registers first (and again whenever a register request failed). A
 * node is offline once NODES_MISSED_BEATS intervals pass without a heartbeat
 * and online again at its next heartbeat or registration; each change is
 * written to PostgreSQL (node_set_online) and published as the event
 * node.online.<node>. A write or publish that fails (database or NATS away) is
 * retried on the next tick until both agree with memory.
 *
 * The module's upkeep thread also creates the JetStream streams
 * (bus_js_setup), retrying until NATS answers, and the durable command
 * consumer node-<node> of every known node, so that a command for a node
 * whose daemon never ran waits for it.
 *
 * Threads: the table has its own mutex and is never held across a
 * database call or a publish; flushing changes is serialised by a second
 * mutex so that PostgreSQL and the event stream see changes in the order
 * memory made them. Bus handlers run on nats.c threads; the HTTP handlers
 * are HTTP_FAST (loop thread, memory only).
 */
#ifndef BERTH_PANEL_NODES_H
#define BERTH_PANEL_NODES_H

#include <stddef.h>
#include <stdint.h>

#include "svc-panel/panel.h"

#define NODES_MISSED_BEATS 3
#define NODES_ID_MAX       64
#define NODES_NAME_MAX     64
#define NODES_HOSTNAME_MAX 253
#define NODES_URL_MAX      2048

typedef struct nodes nodes;

/* A copy of what the panel knows about one node. */
typedef struct node_info {
    char id[NODES_ID_MAX + 1];
    char name[NODES_NAME_MAX + 1];
    char hostname[NODES_HOSTNAME_MAX + 1];
    char public_url[NODES_URL_MAX + 1];
    char version[64]; /* the daemon's */
    uint32_t cpus;
    uint64_t memory_bytes;
    uint64_t disk_bytes;
    char docker_version[64];
    char kernel[128];
    char arch[32];
    int online;
    int64_t last_seen_ms; /* wall clock; 0: never seen by this panel */
    char last_seen[40];   /* RFC 3339, "" when never seen at all */
    char registered_at[40];
} node_info;

/* Creates the module for p; nothing runs yet. The heartbeat interval
 * comes from BERTH_NODE_HEARTBEAT_MS. Returns 0 and *out (freed with
 * nodes_free()) or BERTH_ENOMEM. */
int nodes_new(nodes **out, panel *p);

/* Loads the nodes from PostgreSQL (each gets one full offline timeout of
 * grace to send a heartbeat), serves node.register.*, subscribes to
 * node.heartbeat.* and starts the upkeep thread. Returns 0 or a berth
 * code. */
int nodes_start(nodes *n);

/* Stops the upkeep thread. Bus handlers keep working until the bus is
 * closed; call nodes_free() after that. NULL is a no-op. */
void nodes_stop(nodes *n);
void nodes_free(nodes *n);

/* Copies node id into out. Returns 0 or BERTH_ENOENT. */
int nodes_find(nodes *n, const char *id, node_info *out);

/* Copies every node, by name, into a new array (caller frees with free()).
 * Returns 0 or BERTH_ENOMEM; *count may be 0 (and *out NULL). */
int nodes_snapshot(nodes *n, node_info **out, size_t *count);

/* Makes sure the command consumer of node exists, unless that is already
 * known. Never waits for a node; waits for NATS at most its request
 * timeout. Returns 0 or a berth code (the upkeep thread retries). */
int nodes_ensure_consumer(nodes *n, const char *id);

/* The heartbeat interval announced to daemons, in milliseconds. */
int nodes_heartbeat_ms(const nodes *n);

/* The node's id is a valid subject token of at most NODES_ID_MAX bytes. */
int nodes_id_valid(const char *id);

#endif
