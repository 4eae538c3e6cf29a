/* auth.h - passwords, access and refresh tokens, login throttling, and the
 * permission names of the panel's RBAC.
 *
 * Passwords: argon2id (libsodium crypto_pwhash_str) with 2 passes over
 * 19 MiB, the OWASP minimum, so a login costs tens of milliseconds and a
 * burst of logins cannot push the panel past its memory budget.
 * Access tokens: HMAC-SHA256 tokens (common/token.h) carrying the user id,
 * valid 15 minutes, checked without touching PostgreSQL.
 * Refresh tokens: 32 random bytes, base64url; only their SHA-256 is stored.
 * Each belongs to a family (one login); using one rotates it, and reusing
 * an already rotated one revokes the whole family (svc-panel/users.c does
 * the database side).
 */
#ifndef BERTH_PANEL_AUTH_H
#define BERTH_PANEL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/token.h"

#define AUTH_ACCESS_TTL_S (15 * 60)
#define AUTH_REFRESH_TTL_S (7 * 24 * 3600)
#define AUTH_DIRECT_TTL_S (10 * 60)
#define AUTH_HASH_MAX 128        /* argon2id encoded hash, with NUL */
#define AUTH_REFRESH_LEN 43      /* base64url of 32 bytes */
#define AUTH_REFRESH_HASH_LEN 64 /* hex SHA-256 */
#define AUTH_PASSWORD_MAX 1024

/* The panel's keys, loaded from (or created in) the data directory, 0600. */
typedef struct auth_keys {
    unsigned char hmac[TOKEN_HMAC_KEY_BYTES];
    unsigned char sign_pk[TOKEN_ED25519_PK_BYTES];
    unsigned char sign_sk[TOKEN_ED25519_SK_BYTES];
    char key_id[17]; /* first 8 bytes of the public key, hex */
} auth_keys;

/* Loads data_dir/panel.hmac and data_dir/panel.ed25519, creating them (and
 * data_dir, 0700) on first start. Returns 0 or a berth code (BERTH_EPERM
 * when a key file is readable by others, BERTH_ECONFIG when one has the
 * wrong size or the Ed25519 key's halves do not match); k is zeroed on
 * failure. */
int auth_keys_load(auth_keys *k, const char *data_dir);

/* Hashes password into out. Returns 0, BERTH_EINVAL (empty or longer than
 * AUTH_PASSWORD_MAX) or BERTH_ENOMEM. */
int auth_password_hash(const char *password, char out[AUTH_HASH_MAX]);

/* Returns 0 when password matches hash, BERTH_EAUTH otherwise (also for
 * NULL, empty or over-long passwords). */
int auth_password_verify(const char *hash, const char *password);

/* Spends the time of one verification; used when the user does not exist so
 * that unknown users and wrong passwords take the same time. */
void auth_password_dummy(const char *password);

/* Issues an access token for user_id (a UUID; BERTH_EINVAL otherwise):
 * claims sub, typ "access", iat, exp = now + AUTH_ACCESS_TTL_S and a random
 * jti. Caller frees *out. */
int auth_access_issue(const auth_keys *k, const char *user_id, int64_t now,
                      char **out);

/* Checks "Bearer <token>" (or a bare token) and writes the user id. Returns
 * 0, BERTH_EAUTH (missing, malformed, forged) or BERTH_ETIMEDOUT
 * (expired). */
int auth_access_check(const auth_keys *k, const char *authorization,
                      int64_t now, char user_id[40]);

/* A new refresh token and the hash to store (lower-case hex SHA-256 of the
 * token text). Returns 0 or a berth code. */
int auth_refresh_new(char token[AUTH_REFRESH_LEN + 1],
                     char hash[AUTH_REFRESH_HASH_LEN + 1]);

/* The stored hash of a presented refresh token ("Bearer x" or "x").
 * Returns 0 or BERTH_EAUTH when it cannot be a refresh token (anything but
 * exactly AUTH_REFRESH_LEN canonical base64url characters). */
int auth_refresh_hash(const char *authorization,
                      char hash[AUTH_REFRESH_HASH_LEN + 1]);

/* Login throttling, in memory, per user name and per IP: at most
 * AUTH_THROTTLE_FAILS failures in AUTH_THROTTLE_WINDOW_S, then refusals
 * until the window has passed. Thread-safe. User names compare without
 * regard to ASCII case; an IPv6 address counts as its /64. Each table keeps
 * at most 4096 keys and recycles the one that failed least recently. */
#define AUTH_THROTTLE_FAILS 5
#define AUTH_THROTTLE_WINDOW_S 60
#define AUTH_THROTTLE_IP_FAILS 20

typedef struct auth_throttle auth_throttle;

auth_throttle *auth_throttle_new(void);
void auth_throttle_free(auth_throttle *t);

/* Returns 0 when user (may be NULL) from ip (may be NULL) may try now, or
 * BERTH_ETHROTTLE and the seconds to wait in *retry_after (1 to
 * AUTH_THROTTLE_WINDOW_S: until the oldest failure that makes up the limit
 * leaves the window). */
int auth_throttle_check(auth_throttle *t, const char *user, const char *ip,
                        int64_t now, int *retry_after);
void auth_throttle_failed(auth_throttle *t, const char *user, const char *ip,
                          int64_t now);
/* Clears the user's failures; the IP's count is kept. */
void auth_throttle_succeeded(auth_throttle *t, const char *user,
                             const char *ip);

/* ---- permissions ---- */

/* The permission names, one bit each. "*" grants all; "role.*", "user.*",
 * "site.*", "node.*" grant every name with that prefix. */
#define AUTH_PERM_MAP(XX)                                                      \
    XX(USER_READ, "user.read")                                                 \
    XX(USER_CREATE, "user.create")                                             \
    XX(USER_UPDATE, "user.update")                                             \
    XX(USER_DELETE, "user.delete")                                             \
    XX(ROLE_READ, "role.read")                                                 \
    XX(ROLE_CREATE, "role.create")                                             \
    XX(ROLE_UPDATE, "role.update")                                             \
    XX(ROLE_DELETE, "role.delete")                                             \
    XX(NODE_READ, "node.read")                                                 \
    XX(NODE_MANAGE, "node.manage")                                             \
    XX(SITE_READ, "site.read")                                                 \
    XX(SITE_CREATE, "site.create")                                             \
    XX(SITE_UPDATE, "site.update")                                             \
    XX(SITE_DELETE, "site.delete")                                             \
    XX(SITE_POWER, "site.power")                                               \
    XX(SITE_CONSOLE_READ, "site.console.read")                                 \
    XX(SITE_CONSOLE_WRITE, "site.console.write")                               \
    XX(SITE_FILES_READ, "site.files.read")                                     \
    XX(SITE_FILES_WRITE, "site.files.write")                                   \
    XX(AUDIT_READ, "audit.read")

enum auth_perm_bit {
#define XX(id, name) AUTH_PERM_BIT_##id,
    AUTH_PERM_MAP(XX)
#undef XX
    AUTH_PERM_COUNT
};

enum auth_perm {
#define XX(id, name) PERM_##id = 1 << AUTH_PERM_BIT_##id,
    AUTH_PERM_MAP(XX)
#undef XX
};

#define PERM_ALL ((uint32_t)((1u << AUTH_PERM_COUNT) - 1))
/* The permissions a per-site grant may carry. */
#define PERM_SITE_SCOPED                                                       \
    (PERM_SITE_READ | PERM_SITE_UPDATE | PERM_SITE_DELETE | PERM_SITE_POWER |  \
     PERM_SITE_CONSOLE_READ | PERM_SITE_CONSOLE_WRITE | PERM_SITE_FILES_READ | \
     PERM_SITE_FILES_WRITE)

#define AUTH_PERM_NAME_MAX 64 /* longer names are refused */

/* Parses one name ("site.read", "role.*", "site.console.*", "*"). Returns
 * its bits, or 0 for an unknown name. */
uint32_t auth_perm_parse(const char *name);

/* Writes the (static) names of mask into names in table order, at most
 * max, and returns how many it wrote. */
int auth_perm_names(uint32_t mask, const char **names, int max);

#endif
