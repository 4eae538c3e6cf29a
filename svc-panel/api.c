/* api.c - authentication, authorisation, field checks and audit shared by
 * the panel's endpoints. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-panel/store.h"

int api_auth(panel *p, http_req *req, http_resp *resp, principal *who)
{
    int rc;

    memset(who, 0, sizeof(*who));
    rc = auth_access_check(&p->keys, req->authorization,
                           clock_wall_ms() / 1000, who->user_id);
    if (rc == BERTH_ETIMEDOUT) {
        http_error(resp, 401, BERTH_EAUTH, "access token expired");
        return BERTH_EAUTH;
    }
    if (rc != 0) {
        http_error(resp, 401, BERTH_EAUTH, "a valid access token is required");
        return BERTH_EAUTH;
    }
    if (api_principal(p, who->user_id, who) != 0) {
        http_error(resp, 401, BERTH_EAUTH, "the token's user no longer exists");
        return BERTH_EAUTH;
    }
    return 0;
}

int api_principal(panel *p, const char *user_id, principal *who)
{
    store_user u;
    int exists = 0;
    uint32_t perms = store_user_perms(p->store, user_id, &exists);

    if (!exists || store_user_get(p->store, user_id, &u) != 0)
        return BERTH_ENOENT;
    memset(who, 0, sizeof(*who));
    snprintf(who->user_id, sizeof(who->user_id), "%s", u.id);
    snprintf(who->name, sizeof(who->name), "%s", u.name);
    who->perms = perms;
    return 0;
}

int api_require(const principal *who, uint32_t perm, http_resp *resp)
{
    const char *names[1];

    if ((who->perms & perm) == perm)
        return 0;
    auth_perm_names(perm, names, 1);
    http_error(resp, 403, BERTH_EPERM, "permission %s required", names[0]);
    return BERTH_EPERM;
}

int api_site_allowed(panel *p, const principal *who, const char *site_id,
                     uint32_t perm)
{
    if ((who->perms & perm) == perm)
        return 1;
    return (store_grant_get(p->store, who->user_id, site_id) & perm) == perm;
}

int api_fields(json_t *obj, const char *const *allowed, http_resp *resp)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v) {
        const char *const *a;
        int known = 0;

        for (a = allowed; *a != NULL; a++) {
            if (strcmp(*a, key) == 0) {
                known = 1;
                break;
            }
        }
        if (!known) {
            http_error(resp, 400, BERTH_EINVAL, "unknown field \"%.64s\"", key);
            return BERTH_EINVAL;
        }
    }
    return 0;
}

int api_str(json_t *obj, const char *key, size_t max, const char **out,
            http_resp *resp)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        http_error(resp, 400, BERTH_EINVAL, "field \"%s\" must be a string", key);
        return BERTH_EINVAL;
    }
    if (json_string_length(v) > max) {
        http_error(resp, 400, BERTH_EINVAL,
                   "field \"%s\" is longer than %zu bytes", key, max);
        return BERTH_EINVAL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        http_error(resp, 400, BERTH_EINVAL, "field \"%s\" holds a NUL byte", key);
        return BERTH_EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

void api_db_error(http_resp *resp, int rc, const char *what)
{
    switch (rc) {
    case BERTH_EUNAVAIL:
    case BERTH_ETIMEDOUT:
        http_error(resp, 503, BERTH_EUNAVAIL, "the database is unavailable");
        http_header(resp, "Retry-After", "2");
        break;
    case BERTH_EEXIST:
        http_error(resp, 409, BERTH_ECONFLICT, "%s already exists", what);
        break;
    case BERTH_EINVAL:
        http_error(resp, 400, BERTH_EINVAL, "invalid %s", what);
        break;
    case BERTH_ENOENT:
        http_error(resp, 404, BERTH_ENOENT, "%s not found", what);
        break;
    default:
        http_error(resp, 500, BERTH_EINTERNAL, "internal error");
        break;
    }
}

void api_audit(panel *p, const principal *who, const http_req *req,
               const char *action, const char *target, int status,
               json_t *detail)
{
    api_audit_user(p, who ? who->user_id : NULL, req, action, target, status,
                   detail);
}

void api_audit_user(panel *p, const char *user_id, const http_req *req,
                    const char *action, const char *target, int status,
                    json_t *detail)
{
    char result[16];
    char *text = NULL;
    const char *params[6];
    int rc;

    snprintf(result, sizeof(result), "%d", status);
    text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    params[0] = user_id && user_id[0] ? user_id : NULL;
    params[1] = action;
    params[2] = target;
    params[3] = req ? req->ip : NULL;
    params[4] = result;
    params[5] = text;
    rc = db_query_run(p->db, 2000, "audit_insert", 6, params, NULL);
    if (rc != 0)
        log_warn("audit row lost", "action=%s target=%s error=%s", action,
                 target ? target : "-", berth_strerror(rc));
    free(text);
    json_decref(detail);
}
