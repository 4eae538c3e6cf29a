/* roles.c - the Encedeus role endpoints plus the role list.
 *
 *   GET    /role/:id (or /role?id=N)  -> {id, name, permissions, createdAt, updatedAt}
 *   GET    /roles                     -> {roles: [...]}
 *   POST   /role   {name, permissions} -> 200 {id}
 *   PATCH  /role   {id, name?, permissions?}
 *   DELETE /role/:id (or body {id})   refused with 409 while users hold it
 *
 * Permission names are kept as given ("*", "site.*", "user.read") and
 * parsed into bits for checks; an unknown name is refused.
 */
#include "svc-panel/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "svc-panel/api.h"
#include "svc-panel/shell.h"
#include "svc-panel/store.h"

static json_t *role_json(const store_role *r)
{
    json_t *perms = json_array();
    char names[STORE_PERM_NAMES_MAX];
    char *save = NULL, *tok;

    snprintf(names, sizeof(names), "%s", r->names);
    for (tok = strtok_r(names, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        json_array_append_new(perms, json_string(tok));
    return json_pack("{s:i, s:s, s:o, s:s, s:s}", "id", r->id, "name", r->name,
                     "permissions", perms, "createdAt", r->created_at,
                     "updatedAt", r->updated_at);
}

/* The role id of the request: the :id segment, ?id=, or a body {"id"}. */
static int role_id_of(http_req *req, http_resp *resp)
{
    char q[24];
    long v = 0;

    if (req->nparams > 0) {
        v = strtol(req->params[0], NULL, 10);
    } else if (http_query(req, "id", q, sizeof(q))) {
        v = strtol(q, NULL, 10);
    } else if (req->body_len > 0) {
        json_t *b = http_body_json(req, resp);
        json_t *id;
        if (b == NULL)
            return 0;
        id = json_object_get(b, "id");
        if (json_is_integer(id))
            v = (long)json_integer_value(id);
        json_decref(b);
    }
    if (v <= 0 || v > 0x7fffffff) {
        http_error(resp, 400, BERTH_EINVAL, "a positive role id is required");
        return 0;
    }
    return (int)v;
}

void roles_get(panel *p, http_req *req, http_resp *resp)
{
    principal who;
    store_role r;
    store_user me;
    int id;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    id = role_id_of(req, resp);
    if (id == 0)
        return;
    /* Everyone may read their own role. */
    if ((store_user_get(p->store, who.user_id, &me) != 0 || me.role_id != id) &&
        api_require(&who, PERM_ROLE_READ, resp) != 0)
        return;
    if (store_role_get(p->store, id, &r) != 0) {
        http_error(resp, 404, BERTH_ENOENT, "role not found");
        return;
    }
    http_json(resp, 200, role_json(&r));
}

static void list_one(const store_role *r, void *ud)
{
    json_array_append_new((json_t *)ud, role_json(r));
}

void roles_list(panel *p, http_req *req, http_resp *resp)
{
    principal who;
    json_t *arr;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_ROLE_READ, resp) != 0)
        return;
    arr = json_array();
    store_role_each(p->store, list_one, arr);
    http_json(resp, 200, json_pack("{s:o}", "roles", arr));
}

/* Returns 1 when name is an element of the comma-separated list. */
static int name_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;

    while ((p = strstr(p, name)) != NULL) {
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
        p += n;
    }
    return 0;
}

/* Parses the "permissions" array into bits and a comma-separated list. */
static int parse_perms(json_t *arr, uint32_t *bits, char *names, size_t size,
                       http_resp *resp)
{
    size_t i, used = 0;
    json_t *v;

    *bits = 0;
    names[0] = '\0';
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > 64) {
        http_error(resp, 400, BERTH_EINVAL,
                   "permissions must be a list of 1 to 64 names");
        return BERTH_EINVAL;
    }
    json_array_foreach(arr, i, v) {
        const char *n = json_string_value(v);
        uint32_t b = n ? auth_perm_parse(n) : 0;
        int w;

        if (b == 0) {
            http_error(resp, 400, BERTH_EINVAL, "unknown permission \"%.64s\"",
                       n ? n : "(not a string)");
            return BERTH_EINVAL;
        }
        if (name_listed(names, n))
            continue; /* duplicates are folded */
        w = snprintf(names + used, size - used, "%s%s", used ? "," : "", n);
        if (w < 0 || (size_t)w >= size - used) {
            http_error(resp, 400, BERTH_EINVAL, "too many permissions");
            return BERTH_EINVAL;
        }
        used += (size_t)w;
        *bits |= b;
    }
    return 0;
}

/* Replaces the permissions of role id inside the caller's transaction. */
static int write_perms(db_conn *c, const char *id, const char *names)
{
    const char *params[2] = {id, names};

    return db_run(c, "role_perm_set", 2, params, NULL);
}

static const char *const create_fields[] = {"name", "permissions", NULL};

void roles_create(panel *p, http_req *req, http_resp *resp)
{
    json_t *body = NULL;
    const char *name = NULL;
    PGresult *res = NULL;
    db_conn *c = NULL;
    principal who;
    store_role r;
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_ROLE_CREATE, resp) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    memset(&r, 0, sizeof(r));
    if (api_fields(body, create_fields, resp) != 0 ||
        api_str(body, "name", STORE_NAME_MAX, &name, resp) != 0)
        goto out;
    if (name == NULL || name[0] == '\0') {
        http_error(resp, 400, BERTH_EINVAL, "field \"name\" is required");
        goto out;
    }
    if (parse_perms(json_object_get(body, "permissions"), &r.perms, r.names,
                    sizeof(r.names), resp) != 0)
        goto out;
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0)
        rc = db_begin(c);
    if (rc == 0)
        rc = db_exec(c, "role_insert", 1, &name, &res);
    if (rc == 0) {
        /* ROLE row: id, name, created_at, updated_at, permissions. */
        r.id = atoi(PQgetvalue(res, 0, 0));
        snprintf(r.created_at, sizeof(r.created_at), "%s", PQgetvalue(res, 0, 2));
        snprintf(r.updated_at, sizeof(r.updated_at), "%s", PQgetvalue(res, 0, 3));
        rc = write_perms(c, PQgetvalue(res, 0, 0), r.names);
    }
    if (rc == 0)
        rc = db_commit(c);
    if (rc != 0) {
        if (c != NULL)
            db_rollback(c);
        api_db_error(resp, rc, "a role with this name");
        goto out;
    }
    snprintf(r.name, sizeof(r.name), "%s", name);
    store_role_put(p->store, &r);
    http_json(resp, 200, json_pack("{s:i}", "id", r.id));
    api_audit(p, &who, req, "role.create", r.name, 200,
              json_pack("{s:i, s:s}", "id", r.id, "permissions", r.names));
out:
    PQclear(res);
    if (c != NULL)
        db_release(p->db, c);
    json_decref(body);
}

static const char *const update_fields[] = {"id", "name", "permissions", NULL};

void roles_update(panel *p, http_req *req, http_resp *resp)
{
    json_t *body = NULL, *perms, *idv;
    const char *name = NULL;
    const char *params[2];
    char id[16];
    PGresult *res = NULL;
    db_conn *c = NULL;
    principal who;
    store_role r;
    uint32_t old_perms;
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_ROLE_UPDATE, resp) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, update_fields, resp) != 0 ||
        api_str(body, "name", STORE_NAME_MAX, &name, resp) != 0)
        goto out;
    idv = json_object_get(body, "id");
    perms = json_object_get(body, "permissions");
    if (!json_is_integer(idv) || json_integer_value(idv) <= 0 ||
        json_integer_value(idv) > 0x7fffffff) {
        http_error(resp, 400, BERTH_EINVAL, "field \"id\" must be a role id");
        goto out;
    }
    if (store_role_get(p->store, (int)json_integer_value(idv), &r) != 0) {
        http_error(resp, 404, BERTH_ENOENT, "role not found");
        goto out;
    }
    if (name == NULL && perms == NULL) {
        http_error(resp, 400, BERTH_EINVAL, "nothing to update");
        goto out;
    }
    old_perms = r.perms;
    if (perms != NULL &&
        parse_perms(perms, &r.perms, r.names, sizeof(r.names), resp) != 0)
        goto out;
    snprintf(id, sizeof(id), "%d", r.id);
    params[0] = id;
    params[1] = name ? name : r.name;
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0)
        rc = db_begin(c);
    if (rc == 0)
        rc = db_exec(c, "role_update", 2, params, &res);
    if (rc == 0 && PQntuples(res) != 1)
        rc = BERTH_ENOENT;
    if (rc == 0 && perms != NULL)
        rc = write_perms(c, id, r.names);
    if (rc == 0)
        rc = db_commit(c);
    if (rc != 0) {
        if (c != NULL)
            db_rollback(c);
        api_db_error(resp, rc, rc == BERTH_ENOENT ? "role" : "a role with this name");
        goto out;
    }
    snprintf(r.name, sizeof(r.name), "%s", PQgetvalue(res, 0, 1));
    snprintf(r.updated_at, sizeof(r.updated_at), "%s", PQgetvalue(res, 0, 3));
    store_role_put(p->store, &r);
    /* Holders of a role that lost site permissions lose their sessions. */
    if ((old_perms & ~r.perms & PERM_SITE_SCOPED) != 0)
        shell_revoke_role(p, r.id, "role permissions reduced");
    resp->status = 200;
    api_audit(p, &who, req, "role.update", r.name, 200,
              json_pack("{s:i, s:s}", "id", r.id, "permissions", r.names));
out:
    PQclear(res);
    if (c != NULL)
        db_release(p->db, c);
    json_decref(body);
}

void roles_delete(panel *p, http_req *req, http_resp *resp)
{
    const char *param;
    char id[16];
    principal who;
    long n = 0;
    int rid, users, rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_ROLE_DELETE, resp) != 0)
        return;
    rid = role_id_of(req, resp);
    if (rid == 0)
        return;
    users = store_role_users(p->store, rid);
    if (users > 0) {
        http_error(resp, 409, BERTH_ECONFLICT, "role is held by %d user%s",
                   users, users == 1 ? "" : "s");
        return;
    }
    snprintf(id, sizeof(id), "%d", rid);
    param = id;
    rc = db_query_run(p->db, 2000, "role_delete", 1, &param, &n);
    if (rc == 0 && n == 0)
        rc = BERTH_ENOENT;
    if (rc != 0) {
        api_db_error(resp, rc, rc == BERTH_ENOENT ? "role" : "role");
        return;
    }
    store_role_del(p->store, rid);
    resp->status = 200;
    api_audit(p, &who, req, "role.delete", id, 200, NULL);
}
