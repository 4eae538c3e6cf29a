/* store.h - the panel's in-memory copy of users, roles and per-site
 * grants, so that authenticating and authorising a request never waits for
 * PostgreSQL.
 *
 * PostgreSQL stays the source of truth: the store is loaded from it at
 * start-up and every write goes to PostgreSQL first and then, once
 * committed, to the store (write-through). The panel is the only writer of
 * its database.
 *
 * Threads: any thread may call any function; a rwlock guards the tables.
 * Records are copied in and out, never shared.
 */
#ifndef BERTH_PANEL_STORE_H
#define BERTH_PANEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "svc-panel/db.h"

#define STORE_NAME_MAX 64
#define STORE_EMAIL_MAX 254
#define STORE_TIME_MAX 40

typedef struct store_user {
    char id[40];
    char name[STORE_NAME_MAX + 1];
    char email[STORE_EMAIL_MAX + 1];
    int role_id; /* 0: none */
    char created_at[STORE_TIME_MAX];
    char updated_at[STORE_TIME_MAX];
} store_user;

#define STORE_PERM_NAMES_MAX 1024

typedef struct store_role {
    int id;
    char name[STORE_NAME_MAX + 1];
    uint32_t perms;                        /* the names, parsed */
    char names[STORE_PERM_NAMES_MAX];      /* as given, comma-separated */
    char created_at[STORE_TIME_MAX];
    char updated_at[STORE_TIME_MAX];
} store_role;

typedef struct store store;

/* Creates an empty store. Returns NULL on ENOMEM. */
store *store_new(void);
void store_free(store *s);

/* Reads a USER row of db.c (id, name, email, role_id, pfp, created_at,
 * updated_at) into u. */
void store_user_from_row(PGresult *r, int row, store_user *u);

/* Reads a ROLE row of db.c (id, name, created_at, updated_at, permission
 * names joined with ',') into r, parsing the names into bits. */
void store_role_from_row(PGresult *res, int row, store_role *r);

/* Replaces the content with what PostgreSQL holds. Returns 0 or the db
 * code. */
int store_load(store *s, db_pool *db);

int store_user_get(store *s, const char *id, store_user *out);
void store_user_put(store *s, const store_user *u);
void store_user_del(store *s, const char *id);
/* Calls fn for every user in name order (under the read lock: fn must not
 * call back into the store). */
void store_user_each(store *s, void (*fn)(const store_user *u, void *ud),
                     void *ud);

int store_role_get(store *s, int id, store_role *out);
int store_role_by_name(store *s, const char *name, store_role *out);
void store_role_put(store *s, const store_role *r);
void store_role_del(store *s, int id);
void store_role_each(store *s, void (*fn)(const store_role *r, void *ud),
                     void *ud);
/* Number of users holding role id. */
int store_role_users(store *s, int id);

/* Per-site grants of a user: the permissions (PERM_SITE_SCOPED bits) it
 * holds on site_id, 0 when none. */
uint32_t store_grant_get(store *s, const char *user_id, const char *site_id);
void store_grant_set(store *s, const char *user_id, const char *site_id,
                     uint32_t perms);
/* Drops every grant of a user (user_id) or on a site (site_id); either may
 * be NULL. */
void store_grant_drop(store *s, const char *user_id, const char *site_id);
/* Calls fn for every site on which user_id holds grants. */
void store_grant_each(store *s, const char *user_id,
                      void (*fn)(const char *site_id, uint32_t perms, void *ud),
                      void *ud);

/* The effective role permissions of a user: 0 and *exists = 0 when the
 * user is unknown. */
uint32_t store_user_perms(store *s, const char *user_id, int *exists);

#endif
