/* events.h - live events for browsers: the /ws websocket.
 *
 * The panel subscribes to the bus once per subject (site.status.*.*,
 * container.stats.*.*, node.online.*, node.stats.*; core NATS, nothing
 * kept), turns each message into one JSON text
 *
 *   {"type":"site.status","siteId":"...","nodeId":"...","data":{...}}
 *
 * and hands it to the event loop, which sends it to every websocket client
 * that subscribed to its topic and may see it: site events need site.read
 * globally or through a grant on the site, node events need node.read.
 * Permissions are read from the store for every batch of events, so a
 * revoked role or grant stops the flow at once. docs/internals/events.md
 * has the protocol.
 *
 * Threads: bus handlers (nats.c threads) only encode and queue, under the
 * module's lock, and never wait for a browser; the clients and everything
 * about them belong to the loop thread. A ticker thread wakes the loop
 * four times a second for time-outs and notices.
 */
#ifndef BERTH_PANEL_EVENTS_H
#define BERTH_PANEL_EVENTS_H

#include "common/buf.h"
#include "svc-panel/panel.h"

#define EVENTS_AUTH_TIMEOUT_MS 5000 /* to send {"type":"auth"} after opening */
#define EVENTS_RATE_PER_S 20        /* incoming messages per client ... */
#define EVENTS_RATE_BURST 20        /* ... and the burst allowed */
#define EVENTS_QUEUE_MAX 8192       /* events waiting for the loop ... */
#define EVENTS_QUEUE_BYTES (16u << 20) /* ... and their bytes */
#define EVENTS_JSON_MAX (256u << 10)   /* one event's JSON */

typedef struct events events;

/* The websocket hooks to give http_start(); they reach the module through
 * p->events. */
extern const http_ws_hooks events_ws_hooks;

/* Creates the module for p (nothing runs yet). Returns 0 and *out, freed
 * with events_free(), or BERTH_ENOMEM. */
int events_new(events **out, panel *p);

/* Subscribes to the bus and starts the ticker. p->http must be running.
 * Returns 0 or a berth code. */
int events_start(events *e);

/* Stops posting to the loop: call before http_free(). Bus messages that
 * arrive afterwards are dropped. NULL is a no-op. */
void events_stop(events *e);

/* Frees everything: call after http_free() (whose close hooks release the
 * clients) and after the bus is closed (no handler may still run). NULL is
 * a no-op. */
void events_free(events *e);

/* Appends the module's Prometheus counters to out (any thread). */
int events_metrics(events *e, buf *out);

#endif
