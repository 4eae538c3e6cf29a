/* store.c - users, roles and grants cached in memory (see store.h).
 *
 * Users live in an open-addressing hash table keyed by id (a request looks
 * one up on every call); roles and grants are short arrays searched
 * linearly: a panel has tens of roles, and grants are read per site.
 */
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "svc-panel/auth.h"

struct grant {
    char user_id[40];
    char site_id[40];
    uint32_t perms;
};

struct store {
    pthread_rwlock_t lock;
    store_user *users; /* hash table; id[0] == '\\0' marks a free slot */
    size_t users_cap;  /* a power of two */
    size_t users_len;
    store_role *roles;
    size_t roles_len, roles_cap;
    struct grant *grants;
    size_t grants_len, grants_cap;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    return h;
}

store *store_new(void)
{
    store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    pthread_rwlock_init(&s->lock, NULL);
    return s;
}

static void store_clear(store *s)
{
    free(s->users);
    free(s->roles);
    free(s->grants);
    s->users = NULL;
    s->roles = NULL;
    s->grants = NULL;
    s->users_cap = s->users_len = 0;
    s->roles_len = s->roles_cap = 0;
    s->grants_len = s->grants_cap = 0;
}

void store_free(store *s)
{
    if (s == NULL)
        return;
    store_clear(s);
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

/* Returns the slot of id, or the free slot where it would go. */
static size_t user_slot(const store *s, const char *id)
{
    size_t mask = s->users_cap - 1;
    size_t i = (size_t)hash_str(id) & mask;

    while (s->users[i].id[0] != '\0' && strcmp(s->users[i].id, id) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Grows the table so that one more user keeps the load under 1/2. */
static int users_reserve(store *s)
{
    store_user *old = s->users;
    size_t old_cap = s->users_cap;
    size_t cap;
    size_t i;

    if ((s->users_len + 1) * 2 <= s->users_cap)
        return 0;
    cap = old_cap ? old_cap * 2 : 64;
    s->users = calloc(cap, sizeof(*s->users));
    if (s->users == NULL) {
        s->users = old;
        return BERTH_ENOMEM;
    }
    s->users_cap = cap;
    for (i = 0; i < old_cap; i++) {
        if (old[i].id[0] != '\0')
            s->users[user_slot(s, old[i].id)] = old[i];
    }
    free(old);
    return 0;
}

static void user_put_locked(store *s, const store_user *u)
{
    size_t i;

    if (users_reserve(s) != 0) {
        log_error("store: out of memory; user not cached", "user=%s", u->id);
        return;
    }
    i = user_slot(s, u->id);
    if (s->users[i].id[0] == '\0')
        s->users_len++;
    s->users[i] = *u;
}

int store_user_get(store *s, const char *id, store_user *out)
{
    int rc = BERTH_ENOENT;

    pthread_rwlock_rdlock(&s->lock);
    if (s->users_cap > 0) {
        size_t i = user_slot(s, id);
        if (s->users[i].id[0] != '\0') {
            *out = s->users[i];
            rc = 0;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

void store_user_put(store *s, const store_user *u)
{
    pthread_rwlock_wrlock(&s->lock);
    user_put_locked(s, u);
    pthread_rwlock_unlock(&s->lock);
}

void store_user_del(store *s, const char *id)
{
    size_t i, j, mask;

    pthread_rwlock_wrlock(&s->lock);
    if (s->users_cap == 0)
        goto out;
    mask = s->users_cap - 1;
    i = user_slot(s, id);
    if (s->users[i].id[0] == '\0')
        goto out;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    s->users[i].id[0] = '\0';
    s->users_len--;
    for (j = (i + 1) & mask; s->users[j].id[0] != '\0'; j = (j + 1) & mask) {
        store_user moved = s->users[j];
        s->users[j].id[0] = '\0';
        s->users[user_slot(s, moved.id)] = moved;
    }
out:
    pthread_rwlock_unlock(&s->lock);
}

static int cmp_user_name(const void *a, const void *b)
{
    const store_user *x = *(store_user *const *)a;
    const store_user *y = *(store_user *const *)b;

    return strcmp(x->name, y->name);
}

void store_user_each(store *s, void (*fn)(const store_user *u, void *ud),
                     void *ud)
{
    const store_user **order = NULL;
    size_t i, n = 0;

    pthread_rwlock_rdlock(&s->lock);
    order = malloc((s->users_len ? s->users_len : 1) * sizeof(*order));
    if (order == NULL)
        goto out;
    for (i = 0; i < s->users_cap; i++) {
        if (s->users[i].id[0] != '\0')
            order[n++] = &s->users[i];
    }
    qsort(order, n, sizeof(*order), cmp_user_name);
    for (i = 0; i < n; i++)
        fn(order[i], ud);
out:
    pthread_rwlock_unlock(&s->lock);
    free(order);
}

static store_role *role_find(store *s, int id)
{
    size_t i;

    for (i = 0; i < s->roles_len; i++) {
        if (s->roles[i].id == id)
            return &s->roles[i];
    }
    return NULL;
}

int store_role_get(store *s, int id, store_role *out)
{
    store_role *r;
    int rc = BERTH_ENOENT;

    pthread_rwlock_rdlock(&s->lock);
    r = role_find(s, id);
    if (r != NULL) {
        *out = *r;
        rc = 0;
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int store_role_by_name(store *s, const char *name, store_role *out)
{
    size_t i;
    int rc = BERTH_ENOENT;

    pthread_rwlock_rdlock(&s->lock);
    for (i = 0; i < s->roles_len; i++) {
        if (strcmp(s->roles[i].name, name) == 0) {
            *out = s->roles[i];
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

static void role_put_locked(store *s, const store_role *r)
{
    store_role *have = role_find(s, r->id);

    if (have != NULL) {
        *have = *r;
        return;
    }
    if (s->roles_len == s->roles_cap) {
        size_t cap = s->roles_cap ? s->roles_cap * 2 : 16;
        store_role *p = realloc(s->roles, cap * sizeof(*p));
        if (p == NULL) {
            log_error("store: out of memory; role not cached", "role=%d", r->id);
            return;
        }
        s->roles = p;
        s->roles_cap = cap;
    }
    s->roles[s->roles_len++] = *r;
}

void store_role_put(store *s, const store_role *r)
{
    pthread_rwlock_wrlock(&s->lock);
    role_put_locked(s, r);
    pthread_rwlock_unlock(&s->lock);
}

void store_role_del(store *s, int id)
{
    store_role *r;

    pthread_rwlock_wrlock(&s->lock);
    r = role_find(s, id);
    if (r != NULL)
        *r = s->roles[--s->roles_len];
    pthread_rwlock_unlock(&s->lock);
}

static int cmp_role_id(const void *a, const void *b)
{
    const store_role *x = a, *y = b;

    return (x->id > y->id) - (x->id < y->id);
}

void store_role_each(store *s, void (*fn)(const store_role *r, void *ud),
                     void *ud)
{
    size_t i;

    pthread_rwlock_wrlock(&s->lock); /* sorts in place */
    qsort(s->roles, s->roles_len, sizeof(*s->roles), cmp_role_id);
    for (i = 0; i < s->roles_len; i++)
        fn(&s->roles[i], ud);
    pthread_rwlock_unlock(&s->lock);
}

int store_role_users(store *s, int id)
{
    size_t i;
    int n = 0;

    pthread_rwlock_rdlock(&s->lock);
    for (i = 0; i < s->users_cap; i++) {
        if (s->users[i].id[0] != '\0' && s->users[i].role_id == id)
            n++;
    }
    pthread_rwlock_unlock(&s->lock);
    return n;
}

static struct grant *grant_find(store *s, const char *user_id,
                                const char *site_id)
{
    size_t i;

    for (i = 0; i < s->grants_len; i++) {
        if (strcmp(s->grants[i].user_id, user_id) == 0 &&
            strcmp(s->grants[i].site_id, site_id) == 0)
            return &s->grants[i];
    }
    return NULL;
}

uint32_t store_grant_get(store *s, const char *user_id, const char *site_id)
{
    struct grant *g;
    uint32_t perms = 0;

    pthread_rwlock_rdlock(&s->lock);
    g = grant_find(s, user_id, site_id);
    if (g != NULL)
        perms = g->perms;
    pthread_rwlock_unlock(&s->lock);
    return perms;
}

static void grant_set_locked(store *s, const char *user_id,
                             const char *site_id, uint32_t perms)
{
    struct grant *g = grant_find(s, user_id, site_id);

    if (g != NULL) {
        if (perms == 0)
            *g = s->grants[--s->grants_len];
        else
            g->perms = perms;
        return;
    }
    if (perms == 0)
        return;
    if (s->grants_len == s->grants_cap) {
        size_t cap = s->grants_cap ? s->grants_cap * 2 : 16;
        struct grant *p = realloc(s->grants, cap * sizeof(*p));
        if (p == NULL) {
            log_error("store: out of memory; grant not cached", "user=%s",
                      user_id);
            return;
        }
        s->grants = p;
        s->grants_cap = cap;
    }
    g = &s->grants[s->grants_len++];
    snprintf(g->user_id, sizeof(g->user_id), "%s", user_id);
    snprintf(g->site_id, sizeof(g->site_id), "%s", site_id);
    g->perms = perms;
}

void store_grant_set(store *s, const char *user_id, const char *site_id,
                     uint32_t perms)
{
    pthread_rwlock_wrlock(&s->lock);
    grant_set_locked(s, user_id, site_id, perms);
    pthread_rwlock_unlock(&s->lock);
}

void store_grant_drop(store *s, const char *user_id, const char *site_id)
{
    size_t i = 0;

    pthread_rwlock_wrlock(&s->lock);
    while (i < s->grants_len) {
        struct grant *g = &s->grants[i];
        if ((user_id == NULL || strcmp(g->user_id, user_id) == 0) &&
            (site_id == NULL || strcmp(g->site_id, site_id) == 0))
            *g = s->grants[--s->grants_len];
        else
            i++;
    }
    pthread_rwlock_unlock(&s->lock);
}

void store_grant_each(store *s, const char *user_id,
                      void (*fn)(const char *site_id, uint32_t perms, void *ud),
                      void *ud)
{
    size_t i;

    pthread_rwlock_rdlock(&s->lock);
    for (i = 0; i < s->grants_len; i++) {
        if (strcmp(s->grants[i].user_id, user_id) == 0)
            fn(s->grants[i].site_id, s->grants[i].perms, ud);
    }
    pthread_rwlock_unlock(&s->lock);
}

uint32_t store_user_perms(store *s, const char *user_id, int *exists)
{
    uint32_t perms = 0;
    size_t i;

    *exists = 0;
    pthread_rwlock_rdlock(&s->lock);
    if (s->users_cap > 0) {
        i = user_slot(s, user_id);
        if (s->users[i].id[0] != '\0') {
            store_role *r = role_find(s, s->users[i].role_id);
            *exists = 1;
            perms = r ? r->perms : 0;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return perms;
}

void store_user_from_row(PGresult *r, int row, store_user *u)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->id, sizeof(u->id), "%s", PQgetvalue(r, row, 0));
    snprintf(u->name, sizeof(u->name), "%s", PQgetvalue(r, row, 1));
    snprintf(u->email, sizeof(u->email), "%s", PQgetvalue(r, row, 2));
    u->role_id = atoi(PQgetvalue(r, row, 3));
    snprintf(u->created_at, sizeof(u->created_at), "%s", PQgetvalue(r, row, 5));
    snprintf(u->updated_at, sizeof(u->updated_at), "%s", PQgetvalue(r, row, 6));
}

void store_role_from_row(PGresult *res, int row, store_role *r)
{
    char names[STORE_PERM_NAMES_MAX];
    char *save = NULL, *tok;

    memset(r, 0, sizeof(*r));
    r->id = atoi(PQgetvalue(res, row, 0));
    snprintf(r->name, sizeof(r->name), "%s", PQgetvalue(res, row, 1));
    snprintf(r->created_at, sizeof(r->created_at), "%s", PQgetvalue(res, row, 2));
    snprintf(r->updated_at, sizeof(r->updated_at), "%s", PQgetvalue(res, row, 3));
    snprintf(r->names, sizeof(r->names), "%s", PQgetvalue(res, row, 4));
    snprintf(names, sizeof(names), "%s", r->names);
    for (tok = strtok_r(names, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        r->perms |= auth_perm_parse(tok);
}

/* Fills the store from PostgreSQL in one transaction (a consistent
 * snapshot): users, roles with their permission names, grants. */
int store_load(store *s, db_pool *db)
{
    PGresult *users = NULL, *roles = NULL, *grants = NULL;
    const char *all[2] = {NULL, NULL};
    db_conn *c = NULL;
    int i, rc;

    rc = db_acquire(db, 5000, &c);
    if (rc != 0)
        return rc;
    rc = db_begin(c);
    if (rc == 0)
        rc = db_exec(c, "user_list", 2, all, &users);
    if (rc == 0)
        rc = db_exec(c, "role_list", 0, NULL, &roles);
    if (rc == 0)
        rc = db_exec(c, "site_grant_list_all", 0, NULL, &grants);
    if (rc == 0)
        rc = db_commit(c);
    else
        db_rollback(c);
    db_release(db, c);
    if (rc != 0)
        goto out;
    pthread_rwlock_wrlock(&s->lock);
    store_clear(s);
    for (i = 0; i < PQntuples(users); i++) {
        store_user u;
        store_user_from_row(users, i, &u);
        user_put_locked(s, &u);
    }
    for (i = 0; i < PQntuples(roles); i++) {
        store_role r;
        store_role_from_row(roles, i, &r);
        role_put_locked(s, &r);
    }
    for (i = 0; i < PQntuples(grants); i++) {
        const char *uid = PQgetvalue(grants, i, 0);
        const char *sid = PQgetvalue(grants, i, 1);
        struct grant *g = grant_find(s, uid, sid);
        uint32_t cur = g ? g->perms : 0;

        grant_set_locked(s, uid, sid,
                         cur | (auth_perm_parse(PQgetvalue(grants, i, 2)) &
                                PERM_SITE_SCOPED));
    }
    pthread_rwlock_unlock(&s->lock);
    log_info("store loaded", "users=%d roles=%d grants=%d", PQntuples(users),
             PQntuples(roles), PQntuples(grants));
out:
    PQclear(users);
    PQclear(roles);
    PQclear(grants);
    return rc;
}
