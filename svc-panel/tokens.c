/* tokens.c - direct-channel tokens for browsers and the panel's public key
 * on the bus (see tokens.h).
 *
 *   POST /sites/:id/tokens {"scope":"console"|"files"}
 *     -> 200 {token, expiresAt, url, scope}
 *        404 unknown site, 403 without site.console.read (console) or
 *        site.files.read (files) on the site, 503 when the site's node has
 *        no public address
 *   bus: panel.pubkey (berth.v1.Empty) -> berth.v1.PanelPubkey
 *
 * The handler runs on a worker thread (it reads the site and its node from
 * PostgreSQL); the bus handler only reads the keys, which never change
 * after start-up.
 */
#include "svc-panel/tokens.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "svc-panel/api.h"
#include "svc-panel/routes.h"
#include "svc-panel/store.h"

#define URL_MAX 2048 /* nodes.public_url */

/* The scopes a token may carry and the permission each needs. */
static const struct {
    const char *name;
    uint32_t perm;
} scopes[] = {
    {"console", PERM_SITE_CONSOLE_READ},
    {"files", PERM_SITE_FILES_READ},
};

int tokens_sign_direct(const auth_keys *k, const char *user_id,
                       const char *site_id, const char *node_id,
                       uint32_t perms, const char *scope, int64_t now,
                       char **out, char jti[37])
{
    const char *names[AUTH_PERM_COUNT];
    json_t *claims = NULL, *list = NULL;
    int i, n, rc;

    *out = NULL;
    if (k == NULL || user_id == NULL || site_id == NULL || node_id == NULL ||
        scope == NULL)
        return BERTH_EINVAL;
    rc = id_uuid(jti);
    if (rc != 0)
        return rc;
    list = json_array();
    n = auth_perm_names(perms & PERM_SITE_SCOPED, names, AUTH_PERM_COUNT);
    for (i = 0; list != NULL && i < n; i++)
        json_array_append_new(list, json_string(names[i]));
    claims = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:I, s:I, s:s, s:s}",
                       "typ", "direct", "sub", user_id, "site", site_id,
                       "node", node_id, "perms", list, "scope", scope,
                       "iat", (json_int_t)now, "exp",
                       (json_int_t)(now + AUTH_DIRECT_TTL_S), "jti", jti,
                       "kid", k->key_id);
    if (claims == NULL)
        return BERTH_ENOMEM;
    rc = token_sign_ed25519(claims, k->sign_sk, out);
    json_decref(claims);
    return rc;
}

static const char *const issue_fields[] = {"scope", NULL};

/* Reads the node of site_id and that node's public URL. Returns 0,
 * BERTH_ENOENT for an unknown site, or a db code. */
static int site_node(panel *p, const char *site_id, char node_id[65],
                     char url[URL_MAX + 1])
{
    PGresult *res = NULL;
    db_conn *c = NULL;
    const char *param;
    int rc;

    rc = db_acquire(p->db, 2000, &c);
    if (rc != 0)
        return rc;
    param = site_id;
    /* SITE row: id, name, node_id, ... */
    rc = db_exec(c, "site_get", 1, &param, &res);
    if (rc == 0 && PQntuples(res) != 1)
        rc = BERTH_ENOENT;
    if (rc != 0)
        goto out;
    snprintf(node_id, 65, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    res = NULL;
    param = node_id;
    /* NODE row: id, name, hostname, specs, public_url, ... */
    rc = db_exec(c, "node_get", 1, &param, &res);
    if (rc == 0 && PQntuples(res) != 1)
        rc = BERTH_ENOENT; /* cannot happen: sites.node_id is a key */
    if (rc == 0)
        snprintf(url, URL_MAX + 1, "%s", PQgetvalue(res, 0, 4));
out:
    PQclear(res);
    db_release(p->db, c);
    return rc;
}

void tokens_issue(panel *p, http_req *req, http_resp *resp)
{
    const char *site_id = req->params[0];
    const char *scope = NULL;
    const char *need_name[1];
    char node_id[65], url[URL_MAX + 1], jti[37], expires[40];
    char *token = NULL;
    json_t *body = NULL;
    principal who;
    uint32_t need = 0, perms;
    int64_t now;
    size_t i;
    int rc;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, issue_fields, resp) != 0 ||
        api_str(body, "scope", 16, &scope, resp) != 0)
        goto out;
    for (i = 0; scope != NULL && i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        if (strcmp(scope, scopes[i].name) == 0)
            need = scopes[i].perm;
    }
    if (need == 0) {
        http_error(resp, 400, BERTH_EINVAL,
                   "field \"scope\" must be \"console\" or \"files\"");
        goto out;
    }
    rc = id_uuid_valid(site_id) ? site_node(p, site_id, node_id, url)
                                : BERTH_ENOENT;
    if (rc != 0) {
        api_db_error(resp, rc, "site");
        goto out;
    }
    if (!api_site_allowed(p, &who, site_id, need)) {
        auth_perm_names(need, need_name, 1);
        http_error(resp, 403, BERTH_EPERM,
                   "permission %s required on this site", need_name[0]);
        goto out;
    }
    if (url[0] == '\0') {
        http_error(resp, 503, BERTH_EUNAVAIL,
                   "the site's node has no public address");
        goto out;
    }
    now = clock_wall_ms() / 1000;
    perms = who.perms | store_grant_get(p->store, who.user_id, site_id);
    rc = tokens_sign_direct(&p->keys, who.user_id, site_id, node_id, perms,
                            scope, now, &token, jti);
    if (rc != 0) {
        log_error("direct token", "error=%s", berth_strerror(rc));
        http_error(resp, 500, BERTH_EINTERNAL, "cannot issue a token");
        goto out;
    }
    clock_fmt_rfc3339(expires, sizeof(expires),
                      (now + AUTH_DIRECT_TTL_S) * 1000);
    http_json(resp, 200,
              json_pack("{s:s, s:s, s:s, s:s}", "token", token, "expiresAt",
                        expires, "url", url, "scope", scope));
    api_audit(p, &who, req, "site.token", site_id, 200,
              json_pack("{s:s, s:s, s:s}", "scope", scope, "jti", jti, "node",
                        node_id));
out:
    free(token);
    json_decref(body);
}

/* panel.pubkey: the key daemons verify direct tokens with. */
static int on_pubkey(bus_msg *m, void *ud)
{
    panel *p = ud;
    Berth__V1__PanelPubkey r = BERTH__V1__PANEL_PUBKEY__INIT;

    r.algorithm = "ed25519";
    r.public_key.data = p->keys.sign_pk;
    r.public_key.len = sizeof(p->keys.sign_pk);
    r.key_id = p->keys.key_id;
    return bus_reply(m, &r.base);
}

int tokens_start(panel *p)
{
    int rc = bus_serve(p->svc.bus, "pubkey", "panel.pubkey", on_pubkey, p);

    if (rc != 0)
        log_error("serve panel.pubkey", "error=%s", berth_strerror(rc));
    return rc;
}
