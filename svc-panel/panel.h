/* panel.h - the panel's shared context: one struct owned by main(), handed
 * to every handler. Modules keep their own state behind their own lock;
 * this struct only ties them together and never changes after start-up.
 */
#ifndef BERTH_PANEL_PANEL_H
#define BERTH_PANEL_PANEL_H

#include "bus/svc.h"
#include "svc-panel/auth.h"
#include "svc-panel/db.h"
#include "svc-panel/http.h"

struct store;
struct nodes;
struct sites;
struct events;
struct edge;

struct panel {
    svc svc;           /* config, bus, data directory */
    db_pool *db;       /* PostgreSQL, the source of truth */
    http_server *http; /* the HTTP/websocket loop */
    auth_keys keys;    /* token keys, loaded or generated at start */
    auth_throttle *throttle;
    struct store *store;   /* users and roles, cached for reads */
    struct nodes *nodes;   /* node liveness */
    struct sites *sites;   /* site commands, the event consumer */
    struct events *events; /* websocket fan-out */
    struct edge *edge;     /* routes for berth-edge, certificate states */
    const char *pfp_dir;   /* profile pictures, under the data dir */
};

#endif
