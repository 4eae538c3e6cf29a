/* routes.h - every endpoint handler of the panel, and the route table
 * (routes.c) that maps methods and paths onto them. */
#ifndef BERTH_PANEL_ROUTES_H
#define BERTH_PANEL_ROUTES_H

#include "svc-panel/panel.h"

extern const http_route panel_routes[];

/* users.c */
void users_login(panel *p, http_req *req, http_resp *resp);
void users_refresh(panel *p, http_req *req, http_resp *resp);
void users_logout(panel *p, http_req *req, http_resp *resp);
void users_get(panel *p, http_req *req, http_resp *resp);
void users_list(panel *p, http_req *req, http_resp *resp);
void users_create(panel *p, http_req *req, http_resp *resp);
void users_update(panel *p, http_req *req, http_resp *resp);
void users_delete(panel *p, http_req *req, http_resp *resp);
void users_set_picture(panel *p, http_req *req, http_resp *resp);
void users_get_picture(panel *p, http_req *req, http_resp *resp);
void users_keys_list(panel *p, http_req *req, http_resp *resp);
void users_keys_add(panel *p, http_req *req, http_resp *resp);
void users_keys_delete(panel *p, http_req *req, http_resp *resp);

/* roles.c */
void roles_get(panel *p, http_req *req, http_resp *resp);
void roles_list(panel *p, http_req *req, http_resp *resp);
void roles_create(panel *p, http_req *req, http_resp *resp);
void roles_update(panel *p, http_req *req, http_resp *resp);
void roles_delete(panel *p, http_req *req, http_resp *resp);

/* audit.c */
void audit_list(panel *p, http_req *req, http_resp *resp);

/* tokens.c */
void tokens_issue(panel *p, http_req *req, http_resp *resp);

/* nodes.c */
void nodes_list(panel *p, http_req *req, http_resp *resp);
void nodes_get(panel *p, http_req *req, http_resp *resp);

/* sites.c */
void sites_list(panel *p, http_req *req, http_resp *resp);
void sites_create(panel *p, http_req *req, http_resp *resp);
void sites_get(panel *p, http_req *req, http_resp *resp);
void sites_update(panel *p, http_req *req, http_resp *resp);
void sites_delete(panel *p, http_req *req, http_resp *resp);
void sites_power(panel *p, http_req *req, http_resp *resp);
void sites_grants_list(panel *p, http_req *req, http_resp *resp);
void sites_grants_set(panel *p, http_req *req, http_resp *resp);
void commands_get(panel *p, http_req *req, http_resp *resp);

/* main.c */
void panel_health(panel *p, http_req *req, http_resp *resp);
void panel_metrics(panel *p, http_req *req, http_resp *resp);

#endif
