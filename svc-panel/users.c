/* users.c - the Encedeus auth and user endpoints, plus logout, the user
 * list and SSH keys.
 *
 *   POST /auth/login        {email|username, password} -> 201 {accessToken, refreshToken}
 *   GET  /auth/refresh      Bearer refresh -> 200 {accessToken, refreshToken}
 *   POST /auth/logout       Bearer refresh -> 204, the login's family revoked
 *   GET  /user/:uuid        -> {id, name, email, createdAt, updatedAt, roleId}
 *   POST /user/create       {name, password, email, role_id|role_name} -> 201 {uuid}
 *   PATCH /user             {id, name?, email?, password?, role_id?|role_name?}
 *   DELETE /user/:id
 *   PUT  /user              multipart: uuid, file (PNG, JPEG, GIF, WebP; 1 MiB)
 *   GET  /user/pfp/:uuid    the picture
 *   GET  /users             every user
 *   GET|POST /user/keys, DELETE /user/keys/:id   the caller's SSH public keys
 *
 * Handlers run on worker threads except GET /user/:uuid and GET /users,
 * which answer from the store on the loop thread.
 */
#include "svc-panel/routes.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "common/log.h"
#include "svc-panel/api.h"
#include "svc-panel/shell.h"
#include "svc-panel/store.h"

#define PFP_MAX (1u << 20)
#define PASSWORD_MIN 8

/* ------------------------------------------------------------ helpers */

/* Runs one statement on a connection borrowed for it. */
static int query(panel *p, const char *stmt, int n, const char *const *params,
                 PGresult **res)
{
    return db_query(p->db, 2000, stmt, n, params, res);
}

/* Reads a USER row (id, name, email, role_id, pfp, created_at,
 * updated_at; see db.c). */
static void row_user(PGresult *r, int row, store_user *u)
{
    store_user_from_row(r, row, u);
}

static json_t *user_json(const store_user *u)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "id", u->id, "name",
                     u->name, "email", u->email, "createdAt", u->created_at,
                     "updatedAt", u->updated_at, "roleId", u->role_id);
}

/* User names become SSH logins ("alice+blog"): lower-case letters, digits,
 * '_', '-' and '.', starting with a letter or digit. */
static int name_valid(const char *s)
{
    size_t n = strlen(s);
    size_t i;

    if (n == 0 || n > STORE_NAME_MAX || !isalnum((unsigned char)s[0]))
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int email_valid(const char *s)
{
    const char *at = strchr(s, '@');
    size_t i;

    if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@'))
        return 0;
    for (i = 0; s[i]; i++) {
        if ((unsigned char)s[i] <= ' ')
            return 0;
    }
    return i <= STORE_EMAIL_MAX;
}

/* Resolves role_id or role_name to a role id; sets the error itself. */
static int pick_role(panel *p, json_t *body, http_resp *resp, int *role_id)
{
    json_t *id = json_object_get(body, "role_id");
    const char *name = NULL;
    store_role r;

    if (api_str(body, "role_name", STORE_NAME_MAX, &name, resp) != 0)
        return BERTH_EINVAL;
    if (id != NULL && !json_is_null(id)) {
        if (!json_is_integer(id) || json_integer_value(id) <= 0 ||
            json_integer_value(id) > 0x7fffffff) {
            http_error(resp, 400, BERTH_EINVAL,
                       "field \"role_id\" must be a positive integer");
            return BERTH_EINVAL;
        }
        if (store_role_get(p->store, (int)json_integer_value(id), &r) != 0) {
            http_error(resp, 404, BERTH_ENOENT, "role not found");
            return BERTH_ENOENT;
        }
        *role_id = r.id;
        return 0;
    }
    if (name != NULL) {
        if (store_role_by_name(p->store, name, &r) != 0) {
            http_error(resp, 404, BERTH_ENOENT, "role not found");
            return BERTH_ENOENT;
        }
        *role_id = r.id;
        return 0;
    }
    *role_id = 0;
    return 0;
}

/* ------------------------------------------------------------ auth */

static const char *const login_fields[] = {"email", "username", "password",
                                           NULL};

/* Stores a new refresh token of family for user and writes it to token. */
static int refresh_store(db_conn *c, const char *user_id, const char *family,
                         const char *ip, char token[AUTH_REFRESH_LEN + 1])
{
    char hash[AUTH_REFRESH_HASH_LEN + 1];
    char expires[40];
    const char *params[5];
    int rc;

    rc = auth_refresh_new(token, hash);
    if (rc != 0)
        return rc;
    clock_fmt_rfc3339(expires, sizeof(expires),
                      clock_wall_ms() + (int64_t)AUTH_REFRESH_TTL_S * 1000);
    params[0] = hash;
    params[1] = user_id;
    params[2] = family;
    params[3] = expires;
    params[4] = ip;
    return db_run(c, "token_insert", 5, params, NULL);
}

static void tokens_reply(panel *p, http_resp *resp, int status,
                         const char *user_id, const char *refresh)
{
    char *access = NULL;

    if (auth_access_issue(&p->keys, user_id, clock_wall_ms() / 1000,
                          &access) != 0) {
        http_error(resp, 500, BERTH_EINTERNAL, "cannot issue a token");
        return;
    }
    http_json(resp, status,
              json_pack("{s:s, s:s}", "accessToken", access, "refreshToken",
                        refresh));
    free(access);
}

void users_login(panel *p, http_req *req, http_resp *resp)
{
    json_t *body = http_body_json(req, resp);
    const char *email = NULL, *username = NULL, *password = NULL;
    const char *who;
    PGresult *res = NULL;
    db_conn *c = NULL;
    char family[ID_UUID_LEN + 1];
    char token[AUTH_REFRESH_LEN + 1];
    char user_id[40] = "";
    int retry = 0;
    int rc;

    if (body == NULL)
        return;
    if (api_fields(body, login_fields, resp) != 0 ||
        api_str(body, "email", STORE_EMAIL_MAX, &email, resp) != 0 ||
        api_str(body, "username", STORE_NAME_MAX, &username, resp) != 0 ||
        api_str(body, "password", AUTH_PASSWORD_MAX, &password, resp) != 0)
        goto out;
    if (username == NULL && email == NULL) {
        http_error(resp, 400, BERTH_EINVAL,
                   "either username or email must be specified");
        goto out;
    }
    if (password == NULL) {
        http_error(resp, 400, BERTH_EINVAL, "field \"password\" is required");
        goto out;
    }
    who = username ? username : email;
    if (auth_throttle_check(p->throttle, who, req->ip, clock_wall_ms() / 1000,
                            &retry) != 0) {
        char s[16];
        snprintf(s, sizeof(s), "%d", retry);
        http_error(resp, 429, BERTH_ETHROTTLE,
                   "too many failed logins; try again in %d s", retry);
        http_header(resp, "Retry-After", s);
        goto out;
    }
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0)
        rc = db_exec(c, "user_login", 1, &who, &res);
    if (rc != 0) {
        api_db_error(resp, rc, "user");
        goto out;
    }
    if (PQntuples(res) == 1) {
        snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(res, 0, 0));
        rc = auth_password_verify(PQgetvalue(res, 0, 1), password);
    } else {
        auth_password_dummy(password);
        rc = BERTH_EAUTH;
    }
    if (rc != 0) {
        auth_throttle_failed(p->throttle, who, req->ip, clock_wall_ms() / 1000);
        http_error(resp, 401, BERTH_EAUTH, "invalid username or password");
        api_audit(p, NULL, req, "auth.login", who, 401, NULL);
        goto out;
    }
    auth_throttle_succeeded(p->throttle, who, req->ip);
    rc = id_uuid(family);
    if (rc == 0)
        rc = refresh_store(c, user_id, family, req->ip, token);
    if (rc != 0) {
        api_db_error(resp, rc, "session");
        goto out;
    }
    tokens_reply(p, resp, 201, user_id, token);
    api_audit_user(p, user_id, req, "auth.login", who, 201, NULL);
out:
    PQclear(res);
    if (c != NULL)
        db_release(p->db, c);
    json_decref(body);
}

/* What a presented refresh token is. */
enum refresh_state { RT_OK, RT_UNKNOWN, RT_DEAD, RT_REUSED };

/* Rotates a live token atomically (token_rotate), or tells why it cannot
 * be: unknown, dead (expired or revoked) or reused (rotated before). */
static int refresh_take(db_conn *c, const char *hash, char user_id[40],
                        char family[40], enum refresh_state *state)
{
    PGresult *res = NULL;
    int rc;

    rc = db_exec(c, "token_rotate", 1, &hash, &res);
    if (rc != 0)
        return rc;
    if (PQntuples(res) == 1) {
        snprintf(user_id, 40, "%s", PQgetvalue(res, 0, 0));
        snprintf(family, 40, "%s", PQgetvalue(res, 0, 1));
        *state = RT_OK;
        PQclear(res);
        return 0;
    }
    PQclear(res);
    res = NULL;
    rc = db_exec(c, "token_get", 1, &hash, &res);
    if (rc != 0)
        return rc;
    if (PQntuples(res) != 1) {
        *state = RT_UNKNOWN;
    } else {
        /* TOKEN row: hash, user_id, family, expires_at, rotated_at,
         * revoked_at, created_at, ip, expired. */
        snprintf(user_id, 40, "%s", PQgetvalue(res, 0, 1));
        snprintf(family, 40, "%s", PQgetvalue(res, 0, 2));
        if (!PQgetisnull(res, 0, 5) || strcmp(PQgetvalue(res, 0, 8), "t") == 0)
            *state = RT_DEAD;
        else if (!PQgetisnull(res, 0, 4))
            *state = RT_REUSED;
        else
            *state = RT_DEAD;
    }
    PQclear(res);
    return 0;
}

void users_refresh(panel *p, http_req *req, http_resp *resp)
{
    char hash[AUTH_REFRESH_HASH_LEN + 1];
    char user_id[40] = "", family[40] = "";
    char token[AUTH_REFRESH_LEN + 1];
    enum refresh_state state = RT_UNKNOWN;
    const char *param;
    db_conn *c = NULL;
    int rc;

    if (auth_refresh_hash(req->authorization, hash) != 0) {
        http_error(resp, 401, BERTH_EAUTH, "a refresh token is required");
        return;
    }
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0)
        rc = db_begin(c);
    if (rc == 0)
        rc = refresh_take(c, hash, user_id, family, &state);
    if (rc != 0)
        goto fail;
    if (state == RT_REUSED) {
        /* A rotated token came back: someone holds a copy. End the whole
         * login, for the thief and the owner alike. */
        param = family;
        rc = db_run(c, "token_revoke_family", 1, &param, NULL);
        if (rc == 0)
            rc = db_commit(c);
        if (rc != 0)
            goto fail;
        db_release(p->db, c);
        http_error(resp, 401, BERTH_EAUTH,
                   "refresh token reused; the session has been revoked");
        api_audit_user(p, user_id, req, "auth.refresh_reuse", family, 401, NULL);
        return;
    }
    if (state != RT_OK) {
        db_rollback(c);
        db_release(p->db, c);
        http_error(resp, 401, BERTH_EAUTH, "refresh token invalid or expired");
        return;
    }
    rc = refresh_store(c, user_id, family, req->ip, token);
    if (rc == 0)
        rc = db_commit(c);
    if (rc != 0)
        goto fail;
    db_release(p->db, c);
    tokens_reply(p, resp, 200, user_id, token);
    return;
fail:
    if (c != NULL) {
        db_rollback(c);
        db_release(p->db, c);
    }
    api_db_error(resp, rc, "session");
}

void users_logout(panel *p, http_req *req, http_resp *resp)
{
    char hash[AUTH_REFRESH_HASH_LEN + 1];
    char family[40] = "", user_id[40] = "";
    const char *param;
    PGresult *res = NULL;
    db_conn *c = NULL;
    int rc;

    if (auth_refresh_hash(req->authorization, hash) != 0) {
        http_error(resp, 401, BERTH_EAUTH,
                   "log out with the refresh token as the Bearer token");
        return;
    }
    param = hash;
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0)
        rc = db_exec(c, "token_get", 1, &param, &res);
    if (rc == 0 && PQntuples(res) != 1) {
        http_error(resp, 401, BERTH_EAUTH, "unknown refresh token");
        goto out;
    }
    if (rc == 0) {
        snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(res, 0, 1));
        snprintf(family, sizeof(family), "%s", PQgetvalue(res, 0, 2));
        param = family;
        rc = db_run(c, "token_revoke_family", 1, &param, NULL);
    }
    if (rc != 0) {
        api_db_error(resp, rc, "session");
        goto out;
    }
    resp->status = 204;
    api_audit_user(p, user_id, req, "auth.logout", family, 204, NULL);
out:
    PQclear(res);
    if (c != NULL)
        db_release(p->db, c);
}

/* ------------------------------------------------------------ users */

void users_get(panel *p, http_req *req, http_resp *resp)
{
    principal who;
    store_user u;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    if (strcmp(who.user_id, req->params[0]) != 0 &&
        api_require(&who, PERM_USER_READ, resp) != 0)
        return;
    if (!id_uuid_valid(req->params[0])) {
        http_error(resp, 400, BERTH_EINVAL, "not a user id");
        return;
    }
    if (store_user_get(p->store, req->params[0], &u) != 0) {
        http_error(resp, 404, BERTH_ENOENT, "user not found");
        return;
    }
    http_json(resp, 200, user_json(&u));
}

static void list_one(const store_user *u, void *ud)
{
    json_array_append_new((json_t *)ud, user_json(u));
}

void users_list(panel *p, http_req *req, http_resp *resp)
{
    principal who;
    json_t *arr;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_USER_READ, resp) != 0)
        return;
    arr = json_array();
    store_user_each(p->store, list_one, arr);
    http_json(resp, 200, json_pack("{s:o}", "users", arr));
}

static const char *const create_fields[] = {"name", "password", "email",
                                            "role_id", "role_name", NULL};

void users_create(panel *p, http_req *req, http_resp *resp)
{
    json_t *body = NULL;
    const char *name = NULL, *password = NULL, *email = NULL;
    char hash[AUTH_HASH_MAX];
    char role[16];
    const char *params[4];
    PGresult *res = NULL;
    principal who;
    store_user u;
    int role_id = 0;
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_USER_CREATE, resp) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, create_fields, resp) != 0 ||
        api_str(body, "name", STORE_NAME_MAX, &name, resp) != 0 ||
        api_str(body, "email", STORE_EMAIL_MAX, &email, resp) != 0 ||
        api_str(body, "password", AUTH_PASSWORD_MAX, &password, resp) != 0)
        goto out;
    if (name == NULL || email == NULL || password == NULL) {
        http_error(resp, 400, BERTH_EINVAL,
                   "name, email and password are required");
        goto out;
    }
    if (!name_valid(name)) {
        http_error(resp, 400, BERTH_EINVAL,
                   "name must be 1-64 of a-z, 0-9, '_', '-', '.', starting "
                   "with a letter or digit");
        goto out;
    }
    if (!email_valid(email)) {
        http_error(resp, 400, BERTH_EINVAL, "email is not an address");
        goto out;
    }
    if (strlen(password) < PASSWORD_MIN) {
        http_error(resp, 400, BERTH_EINVAL,
                   "password must be at least %d characters", PASSWORD_MIN);
        goto out;
    }
    if (pick_role(p, body, resp, &role_id) != 0)
        goto out;
    if (role_id == 0) {
        http_error(resp, 400, BERTH_EINVAL,
                   "either role name or id must be specified");
        goto out;
    }
    rc = auth_password_hash(password, hash);
    if (rc != 0) {
        http_error(resp, 500, BERTH_EINTERNAL, "cannot hash the password");
        goto out;
    }
    snprintf(role, sizeof(role), "%d", role_id);
    params[0] = name;
    params[1] = email;
    params[2] = hash;
    params[3] = role;
    rc = query(p, "user_insert", 4, params, &res);
    if (rc != 0) {
        api_db_error(resp, rc, "a user with this name or email");
        api_audit(p, &who, req, "user.create", name, resp->status, NULL);
        goto out;
    }
    row_user(res, 0, &u);
    store_user_put(p->store, &u);
    http_json(resp, 201, json_pack("{s:s}", "uuid", u.id));
    api_audit(p, &who, req, "user.create", u.id, 201,
              json_pack("{s:s, s:i}", "name", u.name, "roleId", u.role_id));
out:
    sodium_memzero(hash, sizeof(hash));
    PQclear(res);
    json_decref(body);
}

/* Applies the changed fields (NULL: unchanged) in one transaction; *res is
 * the user's row afterwards (no row: no such user). */
static int update_user_tx(panel *p, const char *id, const char *name,
                          const char *email, const char *hash,
                          const char *role, PGresult **res)
{
    const char *params[3];
    db_conn *c = NULL;
    PGresult *r = NULL;
    int rc;

    *res = NULL;
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0)
        rc = db_begin(c);
    params[0] = id;
    if (rc == 0) {
        params[1] = name;
        params[2] = email;
        rc = db_exec(c, "user_update", 3, params, &r);
    }
    if (rc == 0 && PQntuples(r) == 1 && role != NULL) {
        PQclear(r);
        r = NULL;
        params[1] = role;
        rc = db_exec(c, "user_set_role", 2, params, &r);
    }
    if (rc == 0 && PQntuples(r) == 1 && hash != NULL) {
        PGresult *x = NULL;
        params[1] = hash;
        rc = db_exec(c, "user_set_password", 2, params, &x);
        PQclear(x);
    }
    if (rc == 0)
        rc = db_commit(c);
    if (rc != 0) {
        PQclear(r);
        r = NULL;
        if (c != NULL)
            db_rollback(c);
    }
    if (c != NULL)
        db_release(p->db, c);
    *res = r;
    return rc;
}

static const char *const update_fields[] = {
    "id", "name", "email", "password", "role_id", "role_name", NULL};

void users_update(panel *p, http_req *req, http_resp *resp)
{
    json_t *body = NULL;
    const char *id = NULL, *name = NULL, *email = NULL, *password = NULL;
    char hash[AUTH_HASH_MAX] = "";
    char role[16] = "";
    PGresult *res = NULL;
    principal who;
    store_user u;
    uint32_t old_perms;
    int role_id = 0, exists = 0;
    int rc;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, update_fields, resp) != 0 ||
        api_str(body, "id", 40, &id, resp) != 0 ||
        api_str(body, "name", STORE_NAME_MAX, &name, resp) != 0 ||
        api_str(body, "email", STORE_EMAIL_MAX, &email, resp) != 0 ||
        api_str(body, "password", AUTH_PASSWORD_MAX, &password, resp) != 0 ||
        pick_role(p, body, resp, &role_id) != 0)
        goto out;
    if (id == NULL || !id_uuid_valid(id)) {
        http_error(resp, 400, BERTH_EINVAL, "field \"id\" must be a user id");
        goto out;
    }
    if (name == NULL && email == NULL && password == NULL && role_id == 0) {
        http_error(resp, 400, BERTH_EINVAL, "nothing to update");
        goto out;
    }
    /* Anyone may edit their own profile; other users and every role change
     * need user.update. */
    if ((strcmp(id, who.user_id) != 0 || role_id != 0) &&
        api_require(&who, PERM_USER_UPDATE, resp) != 0)
        goto out;
    if (name != NULL && !name_valid(name)) {
        http_error(resp, 400, BERTH_EINVAL, "invalid name");
        goto out;
    }
    if (email != NULL && !email_valid(email)) {
        http_error(resp, 400, BERTH_EINVAL, "email is not an address");
        goto out;
    }
    if (password != NULL) {
        if (strlen(password) < PASSWORD_MIN) {
            http_error(resp, 400, BERTH_EINVAL,
                       "password must be at least %d characters", PASSWORD_MIN);
            goto out;
        }
        if (auth_password_hash(password, hash) != 0) {
            http_error(resp, 500, BERTH_EINTERNAL, "cannot hash the password");
            goto out;
        }
    }
    if (role_id != 0)
        snprintf(role, sizeof(role), "%d", role_id);
    old_perms = store_user_perms(p->store, id, &exists);
    rc = update_user_tx(p, id, name, email, password ? hash : NULL,
                        role_id ? role : NULL, &res);
    if (rc == 0 && PQntuples(res) != 1)
        rc = BERTH_ENOENT;
    if (rc != 0) {
        api_db_error(resp, rc,
                     rc == BERTH_ENOENT ? "user" : "a user with this name or email");
        goto out;
    }
    row_user(res, 0, &u);
    store_user_put(p->store, &u);
    /* SSH sessions end with a new password or a lost permission. */
    if (password != NULL)
        shell_revoke_user(p, id, NULL, "password changed");
    else
        shell_revoke_lost(p, id, NULL, old_perms,
                          store_user_perms(p->store, id, &exists),
                          "role changed");
    if (password != NULL) {
        /* A new password ends every session of the user. */
        PGresult *r2 = NULL;
        query(p, "token_revoke_user", 1, &id, &r2);
        PQclear(r2);
    }
    resp->status = 200;
    api_audit(p, &who, req, "user.update", id, 200,
              json_pack("{s:b, s:b, s:b, s:i}", "name", name != NULL, "email",
                        email != NULL, "password", password != NULL, "roleId",
                        role_id));
out:
    sodium_memzero(hash, sizeof(hash));
    PQclear(res);
    json_decref(body);
}

void users_delete(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    principal who;
    long n = 0;
    int rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_USER_DELETE, resp) != 0)
        return;
    if (!id_uuid_valid(id)) {
        http_error(resp, 400, BERTH_EINVAL, "not a user id");
        return;
    }
    if (strcmp(id, who.user_id) == 0) {
        http_error(resp, 400, BERTH_EINVAL, "you cannot delete yourself");
        return;
    }
    rc = db_query_run(p->db, 2000, "user_delete", 1, &id, &n);
    if (rc == 0 && n == 0)
        rc = BERTH_ENOENT;
    if (rc != 0) {
        api_db_error(resp, rc, "user");
        return;
    }
    store_user_del(p->store, id);
    store_grant_drop(p->store, id, NULL);
    shell_revoke_user(p, id, NULL, "user deleted");
    resp->status = 200;
    api_audit(p, &who, req, "user.delete", id, 200, NULL);
}

/* ------------------------------------------------------------ pictures */

static const char *image_type(const unsigned char *d, size_t n)
{
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (n >= 3 && memcmp(d, "\xff\xd8\xff", 3) == 0)
        return "image/jpeg";
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return "image/gif";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return "image/webp";
    return NULL;
}

/* The static copy of a stored type name (the result row is freed before
 * the response is written). */
static const char *image_type_static(const char *stored)
{
    static const char *const types[] = {"image/png", "image/jpeg", "image/gif",
                                        "image/webp", NULL};
    const char *const *t;

    for (t = types; *t; t++) {
        if (strcmp(*t, stored) == 0)
            return *t;
    }
    return "application/octet-stream";
}

/* One part of a multipart/form-data body. */
struct part {
    char name[64];
    const char *data;
    size_t len;
};

/* Splits body at boundary into at most max parts. Returns the count or -1
 * when the body is not well-formed multipart. */
static int multipart_parse(const char *ctype, const char *body, size_t len,
                           struct part *parts, int max)
{
    char delim[128];
    const char *b = ctype ? strstr(ctype, "boundary=") : NULL;
    const char *p, *end = body + len;
    size_t dl;
    int n = 0;

    if (b == NULL || strncmp(ctype, "multipart/form-data", 19) != 0)
        return -1;
    b += 9;
    if (*b == '"')
        b++;
    dl = strcspn(b, "\";");
    if (dl == 0 || dl > 70)
        return -1;
    snprintf(delim, sizeof(delim), "--%.*s", (int)dl, b);
    dl = strlen(delim);
    p = memmem(body, len, delim, dl);
    while (p != NULL && n < max) {
        const char *hdr = p + dl;
        const char *hend, *next, *nm;

        if (end - hdr >= 2 && memcmp(hdr, "--", 2) == 0)
            return n; /* the closing delimiter */
        if (end - hdr < 2 || memcmp(hdr, "\r\n", 2) != 0)
            return -1;
        hdr += 2;
        hend = memmem(hdr, (size_t)(end - hdr), "\r\n\r\n", 4);
        if (hend == NULL)
            return -1;
        next = memmem(hend + 4, (size_t)(end - hend - 4), delim, dl);
        if (next == NULL || next - 2 < hend + 4 || memcmp(next - 2, "\r\n", 2))
            return -1;
        nm = memmem(hdr, (size_t)(hend - hdr), "name=\"", 6);
        if (nm != NULL) {
            size_t nl = strcspn(nm + 6, "\"\r\n");
            snprintf(parts[n].name, sizeof(parts[n].name), "%.*s", (int)nl,
                     nm + 6);
            parts[n].data = hend + 4;
            parts[n].len = (size_t)(next - 2 - (hend + 4));
            n++;
        }
        p = next;
    }
    return -1;
}

void users_set_picture(panel *p, http_req *req, http_resp *resp)
{
    struct part parts[4];
    char id[40] = "";
    char path[512];
    const struct part *file = NULL;
    const char *type;
    const char *params[2];
    principal who;
    long n = 0;
    db_conn *c = NULL;
    int np, i, rc;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    np = multipart_parse(req->content_type, req->body, req->body_len, parts, 4);
    if (np < 0) {
        http_error(resp, 400, BERTH_EINVAL,
                   "expected multipart/form-data with fields uuid and file");
        return;
    }
    for (i = 0; i < np; i++) {
        if (strcmp(parts[i].name, "uuid") == 0 && parts[i].len < sizeof(id))
            snprintf(id, sizeof(id), "%.*s", (int)parts[i].len, parts[i].data);
        else if (strcmp(parts[i].name, "file") == 0)
            file = &parts[i];
    }
    if (!id_uuid_valid(id) || file == NULL) {
        http_error(resp, 400, BERTH_EINVAL, "fields uuid and file are required");
        return;
    }
    if (strcmp(id, who.user_id) != 0 &&
        api_require(&who, PERM_USER_UPDATE, resp) != 0)
        return;
    if (file->len > PFP_MAX) {
        http_error(resp, 413, BERTH_ETOOBIG, "a picture may be at most 1 MiB");
        return;
    }
    type = image_type((const unsigned char *)file->data, file->len);
    if (type == NULL) {
        http_error(resp, 415, BERTH_EINVAL,
                   "the picture must be PNG, JPEG, GIF or WebP");
        return;
    }
    params[0] = id;
    params[1] = type;
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0) {
        PGresult *r = NULL;
        rc = db_exec(c, "user_set_pfp", 2, params, &r);
        n = rc == 0 ? PQntuples(r) : 0;
        PQclear(r);
        db_release(p->db, c);
    }
    if (rc == 0 && n == 0)
        rc = BERTH_ENOENT;
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/%s", p->pfp_dir, id);
        rc = fs_write_atomic(path, file->data, file->len, 0644);
    }
    if (rc != 0) {
        api_db_error(resp, rc, "user");
        return;
    }
    resp->status = 200;
    api_audit(p, &who, req, "user.picture", id, 200,
              json_pack("{s:s, s:I}", "type", type, "bytes", (json_int_t)file->len));
}

void users_get_picture(panel *p, http_req *req, http_resp *resp)
{
    const char *id = req->params[0];
    PGresult *res = NULL;
    char path[512];
    int rc;

    if (!id_uuid_valid(id)) {
        http_error(resp, 400, BERTH_EINVAL, "not a user id");
        return;
    }
    rc = query(p, "user_get", 1, &id, &res);
    if (rc != 0) {
        api_db_error(resp, rc, "user");
        return;
    }
    /* The pfp column holds the picture's type; the file is named by id. */
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 4)) {
        http_error(resp, 404, BERTH_ENOENT, "no picture");
        PQclear(res);
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", p->pfp_dir, id);
    resp->status = 200;
    resp->content_type = image_type_static(PQgetvalue(res, 0, 4));
    resp->file_path = strdup(path);
    PQclear(res);
}

/* ------------------------------------------------------------ SSH keys */

static const char *const key_types[] = {
    "ssh-ed25519",         "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "ssh-rsa",             "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",         NULL};

/* Parses "type base64 [comment]" and checks that the blob names the same
 * type. Writes the SHA256 fingerprint as OpenSSH prints it. */
static int key_parse(const char *line, char type[64], char fp[64])
{
    char b64[8192];
    unsigned char blob[6144];
    unsigned char digest[32];
    size_t bloblen = 0;
    const char *const *t;
    uint32_t tl;
    int known = 0;
    char *enc;
    size_t i;

    if (sscanf(line, "%63s %8191s", type, b64) != 2)
        return BERTH_EINVAL;
    for (t = key_types; *t; t++)
        known |= strcmp(*t, type) == 0;
    if (!known)
        return BERTH_EINVAL;
    if (sodium_base642bin(blob, sizeof(blob), b64, strlen(b64), NULL, &bloblen,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bloblen < 4)
        return BERTH_EINVAL;
    tl = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
         (uint32_t)blob[2] << 8 | blob[3];
    if (tl != strlen(type) || bloblen < 4 + tl || memcmp(blob + 4, type, tl))
        return BERTH_EINVAL;
    crypto_hash_sha256(digest, blob, bloblen);
    enc = malloc(sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING));
    if (enc == NULL)
        return BERTH_ENOMEM;
    sodium_bin2base64(enc, sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING),
                      digest, 32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(fp, 64, "SHA256:%s", enc);
    free(enc);
    for (i = 0; type[i]; i++) {
        if (!isprint((unsigned char)type[i]))
            return BERTH_EINVAL;
    }
    return 0;
}

void users_keys_list(panel *p, http_req *req, http_resp *resp)
{
    principal who;
    PGresult *res = NULL;
    const char *param;
    json_t *arr;
    int i, rc;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    param = who.user_id;
    rc = query(p, "ssh_key_list", 1, &param, &res);
    if (rc != 0) {
        api_db_error(resp, rc, "key");
        return;
    }
    arr = json_array();
    for (i = 0; i < PQntuples(res); i++) {
        json_array_append_new(
            /* SSH_KEY row: id, user_id, name, type, public_key,
             * fingerprint, created_at. */
            arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                           PQgetvalue(res, i, 0), "name", PQgetvalue(res, i, 2),
                           "type", PQgetvalue(res, i, 3), "publicKey",
                           PQgetvalue(res, i, 4), "fingerprint",
                           PQgetvalue(res, i, 5), "createdAt",
                           PQgetvalue(res, i, 6)));
    }
    PQclear(res);
    http_json(resp, 200, json_pack("{s:o}", "keys", arr));
}

static const char *const key_fields[] = {"name", "publicKey", NULL};

void users_keys_add(panel *p, http_req *req, http_resp *resp)
{
    json_t *body = NULL;
    const char *name = NULL, *key = NULL;
    const char *params[5];
    char type[64], fp[64];
    PGresult *res = NULL;
    principal who;
    int rc;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    body = http_body_json(req, resp);
    if (body == NULL)
        return;
    if (api_fields(body, key_fields, resp) != 0 ||
        api_str(body, "name", STORE_NAME_MAX, &name, resp) != 0 ||
        api_str(body, "publicKey", 8192, &key, resp) != 0)
        goto out;
    if (key == NULL || key_parse(key, type, fp) != 0) {
        http_error(resp, 400, BERTH_EINVAL,
                   "publicKey must be an OpenSSH public key line");
        goto out;
    }
    params[0] = who.user_id;
    params[1] = name ? name : "";
    params[2] = type;
    params[3] = key;
    params[4] = fp;
    rc = query(p, "ssh_key_insert", 5, params, &res);
    if (rc != 0) {
        api_db_error(resp, rc, "this key");
        goto out;
    }
    http_json(resp, 201,
              json_pack("{s:s, s:s}", "id", PQgetvalue(res, 0, 0),
                        "fingerprint", fp));
    api_audit(p, &who, req, "user.key.add", PQgetvalue(res, 0, 0), 201,
              json_pack("{s:s}", "fingerprint", fp));
out:
    PQclear(res);
    json_decref(body);
}

void users_keys_delete(panel *p, http_req *req, http_resp *resp)
{
    const char *params[2];
    principal who;
    long n = 0;
    int rc;

    if (api_auth(p, req, resp, &who) != 0)
        return;
    if (!id_uuid_valid(req->params[0])) {
        http_error(resp, 400, BERTH_EINVAL, "not a key id");
        return;
    }
    params[0] = req->params[0];
    params[1] = who.user_id;
    rc = db_query_run(p->db, 2000, "ssh_key_delete", 2, params, &n);
    if (rc == 0 && n == 0)
        rc = BERTH_ENOENT;
    if (rc != 0) {
        api_db_error(resp, rc, "key");
        return;
    }
    resp->status = 200;
    api_audit(p, &who, req, "user.key.delete", req->params[0], 200, NULL);
}
