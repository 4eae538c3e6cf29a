/* shell.c - shell.auth and access.revoked events for berth-shell (see
 * shell.h).
 */
#include "svc-panel/shell.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "shell.pb-c.h"
#include "svc-panel/api.h"
#include "svc-panel/store.h"

#define SHELL_DB_WAIT_MS 2000
#define SHELL_FP_MAX 64      /* "SHA256:" + 43 base64 characters */
#define SHELL_KEY_MAX 16384  /* the largest public key blob looked at */
#define SHELL_REASON_MAX 128

/* What one login attempt found out. */
struct login {
    char user_id[40];
    char name[STORE_NAME_MAX + 1];
    int found; /* the name belongs to a user other than root */
};

/* ------------------------------------------------------------ revocation */

static void publish_revoked(panel *p, const char *token, const char *user_id,
                            const char *site_id, const char *reason)
{
    Berth__V1__AccessRevoked ev = BERTH__V1__ACCESS_REVOKED__INIT;
    char subject[64];
    int rc;

    if (p->svc.bus == NULL)
        return;
    snprintf(subject, sizeof(subject), "access.revoked.%s", token);
    ev.user_id = (char *)user_id;
    ev.site_id = (char *)(site_id ? site_id : "");
    ev.reason = (char *)(reason ? reason : "");
    ev.at_ms = clock_wall_ms();
    rc = bus_publish(p->svc.bus, subject, &ev.base);
    if (rc != 0)
        log_warn("access revocation not published", "user=%s site=%s error=%s",
                 user_id[0] ? user_id : "all", ev.site_id, berth_strerror(rc));
    else
        log_info("access revoked", "user=%s site=%s reason=%s",
                 user_id[0] ? user_id : "all",
                 ev.site_id[0] ? ev.site_id : "all", ev.reason);
}

void shell_revoke_user(panel *p, const char *user_id, const char *site_id,
                       const char *reason)
{
    if (!id_uuid_valid(user_id))
        return;
    publish_revoked(p, user_id, user_id, site_id, reason);
}

void shell_revoke_site(panel *p, const char *site_id, const char *reason)
{
    if (!id_uuid_valid(site_id))
        return;
    publish_revoked(p, "all", "", site_id, reason);
}

void shell_revoke_lost(panel *p, const char *user_id, const char *site_id,
                       uint32_t old_perms, uint32_t new_perms,
                       const char *reason)
{
    if ((old_perms & ~new_perms & PERM_SITE_SCOPED) != 0)
        shell_revoke_user(p, user_id, site_id, reason);
}

/* The users of one role, collected under the store's lock and revoked
 * after it (publishing must not happen inside store_user_each). */
struct role_users {
    int role_id;
    char (*ids)[40];
    size_t n, cap;
};

static void collect_role_user(const store_user *u, void *ud)
{
    struct role_users *r = ud;

    if (u->role_id != r->role_id)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char(*ids)[40] = realloc(r->ids, cap * sizeof(*ids));
        if (ids == NULL)
            return;
        r->ids = ids;
        r->cap = cap;
    }
    snprintf(r->ids[r->n++], 40, "%s", u->id);
}

void shell_revoke_role(panel *p, int role_id, const char *reason)
{
    struct role_users r = {.role_id = role_id};
    size_t i;

    store_user_each(p->store, collect_role_user, &r);
    for (i = 0; i < r.n; i++)
        shell_revoke_user(p, r.ids[i], NULL, reason);
    free(r.ids);
}

/* ------------------------------------------------------------ shell.auth */

/* The fingerprint ssh-keygen -l prints, as users.c stores it. */
static void key_fingerprint(const uint8_t *blob, size_t len,
                            char fp[SHELL_FP_MAX])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
                                       sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];

    crypto_hash_sha256(digest, blob, len);
    sodium_bin2base64(b64, sizeof(b64), digest, sizeof(digest),
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(fp, SHELL_FP_MAX, "SHA256:%s", b64);
}

/* Looks name up. *hash receives the password hash (caller frees) when
 * want_hash is set. "root" and names of no user leave l->found at 0.
 * Returns 0 or a database code. */
static int find_user(panel *p, const char *name, struct login *l, char **hash)
{
    PGresult *res = NULL;
    store_user u;
    int rc;

    memset(l, 0, sizeof(*l));
    if (hash != NULL)
        *hash = NULL;
    if (name[0] == '\0' || strlen(name) > STORE_NAME_MAX ||
        strcmp(name, "root") == 0)
        return 0;
    rc = db_query(p->db, SHELL_DB_WAIT_MS, "user_login", 1, &name, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) != 1)
        goto out;
    /* user_login also matches e-mail addresses: SSH logins are names. */
    if (store_user_get(p->store, PQgetvalue(res, 0, 0), &u) != 0 ||
        strcmp(u.name, name) != 0)
        goto out;
    snprintf(l->user_id, sizeof(l->user_id), "%s", u.id);
    snprintf(l->name, sizeof(l->name), "%s", u.name);
    l->found = 1;
    if (hash != NULL) {
        *hash = strdup(PQgetvalue(res, 0, 1));
        if (*hash == NULL)
            rc = BERTH_ENOMEM;
    }
out:
    PQclear(res);
    return rc;
}

/* Returns 0 when blob is one of user_id's stored keys, BERTH_EAUTH when
 * not, or a database code. */
static int key_owned(panel *p, const char *user_id, const uint8_t *blob,
                     size_t len)
{
    char fp[SHELL_FP_MAX];
    const char *param = fp;
    PGresult *res = NULL;
    int i, rc;

    key_fingerprint(blob, len, fp);
    rc = db_query(p->db, SHELL_DB_WAIT_MS, "ssh_key_find", 1, &param, &res);
    if (rc != 0)
        return rc;
    rc = BERTH_EAUTH;
    /* SSH_KEY row: id, user_id, name, type, public_key, fingerprint, ... */
    for (i = 0; i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, 1), user_id) == 0) {
            rc = 0;
            break;
        }
    }
    PQclear(res);
    return rc;
}

/* The reply's sites, owned by the caller (sites_free()). */
struct site_list {
    Berth__V1__ShellSite *items;
    Berth__V1__ShellSite **ptrs;
    char **strings; /* everything the items point to */
    size_t n, nstrings;
};

static void sites_free(struct site_list *s)
{
    size_t i;

    for (i = 0; i < s->nstrings; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s->items);
    free(s->ptrs);
    memset(s, 0, sizeof(*s));
}

static char *keep(struct site_list *s, const char *v)
{
    char *c = strdup(v);

    if (c != NULL)
        s->strings[s->nstrings++] = c;
    return c;
}

/* Fills s with the sites user_id reaches over SSH and its permissions on
 * each. Returns 0 or a berth code. */
static int sites_of(panel *p, const char *user_id, struct site_list *s)
{
    static const char *perm_names[AUTH_PERM_COUNT];
    PGresult *res = NULL;
    uint32_t role;
    int exists = 0, rows, i, k, rc;

    memset(s, 0, sizeof(*s));
    role = store_user_perms(p->store, user_id, &exists);
    if (!exists)
        return 0;
    if ((role & SHELL_SITE_PERMS) != 0)
        rc = db_query(p->db, SHELL_DB_WAIT_MS, "site_list", 0, NULL, &res);
    else
        rc = db_query(p->db, SHELL_DB_WAIT_MS, "site_list_user", 1, &user_id,
                      &res);
    if (rc != 0)
        goto out;
    rows = PQntuples(res);
    if (rows > SHELL_SITES_MAX) {
        log_warn("shell login: too many sites; list cut", "user=%s sites=%d",
                 user_id, rows);
        rows = SHELL_SITES_MAX;
    }
    if (rows == 0)
        goto out;
    s->items = calloc((size_t)rows, sizeof(*s->items));
    s->ptrs = calloc((size_t)rows, sizeof(*s->ptrs));
    s->strings = calloc((size_t)rows * (3 + AUTH_PERM_COUNT), sizeof(char *));
    if (s->items == NULL || s->ptrs == NULL || s->strings == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    /* SITE row: id, name, node_id, ... */
    for (i = 0; i < rows; i++) {
        const char *sid = PQgetvalue(res, i, 0);
        uint32_t perms =
            (role | store_grant_get(p->store, user_id, sid)) & PERM_SITE_SCOPED;
        Berth__V1__ShellSite *it = &s->items[s->n];
        int np;

        if ((perms & SHELL_SITE_PERMS) == 0)
            continue;
        berth__v1__shell_site__init(it);
        it->site_id = keep(s, sid);
        it->name = keep(s, PQgetvalue(res, i, 1));
        it->node_id = keep(s, PQgetvalue(res, i, 2));
        np = auth_perm_names(perms, perm_names, AUTH_PERM_COUNT);
        it->permissions = calloc((size_t)np, sizeof(char *));
        if (it->site_id == NULL || it->name == NULL || it->node_id == NULL ||
            it->permissions == NULL) {
            free(it->permissions);
            rc = BERTH_ENOMEM;
            goto out;
        }
        /* The names are static strings; the array is kept with the rest. */
        s->strings[s->nstrings++] = (char *)it->permissions;
        for (k = 0; k < np; k++)
            it->permissions[k] = (char *)perm_names[k];
        it->n_permissions = (size_t)np;
        s->ptrs[s->n++] = it;
    }
out:
    PQclear(res);
    if (rc != 0)
        sites_free(s);
    return rc;
}

/* Checks the password or key of req against user l. Returns 0 when it
 * matches, BERTH_EAUTH when not, or a database code. Unknown users spend
 * the time of a real password check. */
static int check_secret(panel *p, const Berth__V1__ShellAuthRequest *req,
                        const struct login *l, const char *hash)
{
    if (req->public_key.len > 0) {
        if (!l->found)
            return BERTH_EAUTH;
        return key_owned(p, l->user_id, req->public_key.data,
                         req->public_key.len);
    }
    if (!l->found || hash == NULL) {
        auth_password_dummy(req->password);
        return BERTH_EAUTH;
    }
    return auth_password_verify(hash, req->password);
}

static int on_auth(bus_msg *m, void *ud)
{
    panel *p = ud;
    const Berth__V1__ShellAuthRequest *req =
        (const Berth__V1__ShellAuthRequest *)m->msg;
    Berth__V1__ShellAuthReply reply = BERTH__V1__SHELL_AUTH_REPLY__INIT;
    const char *ip = req->remote_addr[0] ? req->remote_addr : NULL;
    const char *method = req->public_key.len > 0 ? "publickey" : "password";
    int by_password = req->public_key.len == 0;
    struct site_list sites = {0};
    struct login l;
    char *hash = NULL;
    int retry = 0;
    int rc;

    if ((req->password[0] != '\0') == (req->public_key.len > 0) ||
        req->public_key.len > SHELL_KEY_MAX)
        return bus_reply_error(m, BERTH_EINVAL,
                               "give either a password or a public key");
    if (by_password &&
        auth_throttle_check(p->throttle, req->username, ip,
                            clock_wall_ms() / 1000, &retry) != 0)
        return bus_reply_error(m, BERTH_ETHROTTLE,
                               "too many failed logins; try again in %d s",
                               retry);
    rc = find_user(p, req->username, &l, by_password ? &hash : NULL);
    if (rc == 0)
        rc = check_secret(p, req, &l, hash);
    if (rc == BERTH_EAUTH) {
        if (by_password)
            auth_throttle_failed(p->throttle, req->username, ip,
                                 clock_wall_ms() / 1000);
        log_info("shell login refused", "user=%s method=%s remote=%s",
                 req->username, method, req->remote_addr);
        /* Key offers are not audited: clients try several in turn. */
        if (by_password)
            api_audit_user(p, l.found ? l.user_id : NULL, NULL, "shell.login",
                           req->username, 401,
                           json_pack("{s:s, s:s}", "method", method, "remote",
                                     req->remote_addr));
        rc = bus_reply(m, &reply.base);
        goto out;
    }
    if (rc != 0) {
        rc = bus_reply_error(m, rc, "cannot check the login: %s",
                             berth_strerror(rc));
        goto out;
    }
    if (by_password)
        auth_throttle_succeeded(p->throttle, req->username, ip);
    rc = sites_of(p, l.user_id, &sites);
    if (rc != 0) {
        rc = bus_reply_error(m, rc, "cannot list the user's sites: %s",
                             berth_strerror(rc));
        goto out;
    }
    reply.ok = 1;
    reply.user_id = l.user_id;
    reply.username = l.name;
    reply.n_sites = sites.n;
    reply.sites = sites.ptrs;
    rc = bus_reply(m, &reply.base);
    api_audit_user(p, l.user_id, NULL, "shell.login", req->username, 200,
                   json_pack("{s:s, s:s, s:i}", "method", method, "remote",
                             req->remote_addr, "sites", (int)sites.n));
out:
    if (hash != NULL) {
        sodium_memzero(hash, strlen(hash));
        free(hash);
    }
    sites_free(&sites);
    return rc;
}

int shell_start(panel *p)
{
    int rc = bus_serve(p->svc.bus, "shell-auth", "shell.auth", on_auth, p);

    if (rc != 0)
        log_error("serve shell.auth", "error=%s", berth_strerror(rc));
    return rc;
}
