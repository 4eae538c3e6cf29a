/* routes.c - the panel's HTTP routes, in one table. FAST routes answer on
 * the event loop from memory; the rest run on worker threads. */
#include "svc-panel/routes.h"
#include "svc-panel/static.h"

/* clang-format off */
const http_route panel_routes[] = {
    {HTTP_GET,    "/health",          panel_health,       HTTP_FAST},
    {HTTP_GET,    "/metrics",         panel_metrics,      HTTP_FAST},

    {HTTP_POST,   "/auth/login",      users_login,        0},
    {HTTP_GET,    "/auth/refresh",    users_refresh,      0},
    {HTTP_POST,   "/auth/logout",     users_logout,       0},

    {HTTP_GET,    "/users",           users_list,         HTTP_FAST},
    {HTTP_GET,    "/user/keys",       users_keys_list,    0},
    {HTTP_POST,   "/user/keys",       users_keys_add,     0},
    {HTTP_DELETE, "/user/keys/:id",   users_keys_delete,  0},
    {HTTP_GET,    "/user/pfp/:uuid",  users_get_picture,  0},
    {HTTP_GET,    "/user/:uuid",      users_get,          HTTP_FAST},
    {HTTP_POST,   "/user/create",     users_create,       0},
    {HTTP_POST,   "/user",            users_create,       0},
    {HTTP_PATCH,  "/user",            users_update,       0},
    {HTTP_PUT,    "/user",            users_set_picture,  HTTP_UPLOAD},
    {HTTP_DELETE, "/user/:id",        users_delete,       0},

    {HTTP_GET,    "/roles",           roles_list,         HTTP_FAST},
    {HTTP_GET,    "/role",            roles_get,          HTTP_FAST},
    {HTTP_GET,    "/role/:id",        roles_get,          HTTP_FAST},
    {HTTP_POST,   "/role",            roles_create,       0},
    {HTTP_PATCH,  "/role",            roles_update,       0},
    {HTTP_DELETE, "/role",            roles_delete,       0},
    {HTTP_DELETE, "/role/:id",        roles_delete,       0},

    {HTTP_GET,    "/audit",           audit_list,         0},

    {HTTP_POST,   "/sites/:id/tokens", tokens_issue,      0},

    {HTTP_GET,    "/nodes",           nodes_list,         HTTP_FAST},
    {HTTP_GET,    "/nodes/:id",       nodes_get,          HTTP_FAST},

    {HTTP_GET,    "/sites",           sites_list,         0},
    {HTTP_POST,   "/sites",           sites_create,       0},
    {HTTP_GET,    "/sites/:id",       sites_get,          0},
    {HTTP_PATCH,  "/sites/:id",       sites_update,       0},
    {HTTP_DELETE, "/sites/:id",       sites_delete,       0},
    {HTTP_POST,   "/sites/:id/power", sites_power,        0},
    {HTTP_GET,    "/sites/:id/grants", sites_grants_list, 0},
    {HTTP_PUT,    "/sites/:id/grants/:userId", sites_grants_set, 0},
    {HTTP_GET,    "/commands/:id",    commands_get,       0},

    /* the web UI (static.c) */
    {HTTP_GET,    "/",                static_index,       0},
    {HTTP_GET,    "/ui/*",            static_ui,          0},
    {HTTP_GET,    "/vendor/:lib/*",   static_vendor,      0},

    {0, NULL, NULL, 0},
};
/* clang-format on */
