/* auth.c - the panel's keys, argon2id passwords, access and refresh tokens,
 * login throttling and permission names (see auth.h).
 *
 * Thread safety: every function may be called from any thread. The keys are
 * read-only once auth_keys_load() has returned; libsodium is initialised
 * once through token_crypto_init(); the dummy password hash is computed once
 * under pthread_once; a throttle serialises its tables with one mutex.
 *
 * Secrets read from disk are wiped (sodium_memzero) before their buffers
 * are freed; the keys themselves live in the caller's auth_keys.
 */
#include "auth.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "common/log.h"

#define AUTH_HMAC_FILE "panel.hmac"
#define AUTH_SIGN_FILE "panel.ed25519"

#define AUTH_PWHASH_OPS 2
#define AUTH_PWHASH_MEM (19u << 20)
#define AUTH_PWHASH_ALG crypto_pwhash_ALG_ARGON2ID13

#define AUTH_JTI_BYTES 16
#define AUTH_REFRESH_BYTES 32

_Static_assert(AUTH_HASH_MAX == crypto_pwhash_STRBYTES, "argon2id string");
_Static_assert(AUTH_REFRESH_HASH_LEN == crypto_hash_sha256_BYTES * 2,
               "hex SHA-256");
_Static_assert(AUTH_REFRESH_LEN == (AUTH_REFRESH_BYTES * 4 + 2) / 3,
               "base64url of the refresh token");
_Static_assert(AUTH_PERM_COUNT <= 32, "permissions fit a uint32_t");

/* ------------------------------------------------------------------ keys */

static int gen_ed25519(void *data, size_t len)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];

    if (len != crypto_sign_SECRETKEYBYTES)
        return BERTH_EINVAL;
    if (crypto_sign_keypair(pk, data) != 0)
        return BERTH_EINTERNAL;
    return 0;
}

/* Reads data_dir/name, which must hold exactly len bytes, into dst,
 * creating it with gen first when it does not exist. */
static int load_secret(const char *data_dir, const char *name, size_t len,
                       int (*gen)(void *data, size_t len), unsigned char *dst)
{
    char path[PATH_MAX];
    char *data = NULL;
    size_t n = 0;
    int rc;

    if (snprintf(path, sizeof(path), "%s/%s", data_dir, name) >=
        (int)sizeof(path))
        return BERTH_EINVAL;
    rc = fs_secret(path, len, gen, &data, &n);
    if (rc == BERTH_EPERM) {
        log_error("key file is readable by others; chmod 600 it",
                  "path=%s", path);
        goto out;
    }
    if (rc != 0)
        goto out;
    if (n != len) {
        log_error("key file has the wrong size", "path=%s size=%zu want=%zu",
                  path, n, len);
        rc = BERTH_ECONFIG;
        goto out;
    }
    memcpy(dst, data, len);
out:
    if (data != NULL) {
        sodium_memzero(data, n);
        free(data);
    }
    return rc;
}

/* An Ed25519 secret key is seed || public key; a file whose halves do not
 * belong together would sign tokens no daemon accepts. */
static int check_ed25519(const unsigned char sk[crypto_sign_SECRETKEYBYTES])
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk2[crypto_sign_SECRETKEYBYTES];
    int rc = 0;

    crypto_sign_ed25519_sk_to_seed(seed, sk);
    if (crypto_sign_seed_keypair(pk, sk2, seed) != 0 ||
        sodium_memcmp(sk, sk2, sizeof(sk2)) != 0)
        rc = BERTH_ECONFIG;
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(sk2, sizeof(sk2));
    return rc;
}

static char dummy_hash[AUTH_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

/* The hash of a random password nobody knows, with the same parameters as
 * every real hash. On failure it stays empty and dummies return at once. */
static void dummy_init(void)
{
    unsigned char raw[16];
    char pw[sizeof(raw) * 2 + 1];

    if (id_random(raw, sizeof(raw)) != 0)
        return;
    sodium_bin2hex(pw, sizeof(pw), raw, sizeof(raw));
    if (auth_password_hash(pw, dummy_hash) != 0)
        dummy_hash[0] = '\0';
    sodium_memzero(pw, sizeof(pw));
    sodium_memzero(raw, sizeof(raw));
}

int auth_keys_load(auth_keys *k, const char *data_dir)
{
    int rc;

    if (k == NULL || data_dir == NULL || data_dir[0] == '\0')
        return BERTH_EINVAL;
    memset(k, 0, sizeof(*k));
    rc = token_crypto_init();
    if (rc != 0)
        goto out;
    rc = fs_mkdirs(data_dir, 0700);
    if (rc != 0)
        goto out;
    rc = load_secret(data_dir, AUTH_HMAC_FILE, sizeof(k->hmac), id_random,
                     k->hmac);
    if (rc != 0)
        goto out;
    rc = load_secret(data_dir, AUTH_SIGN_FILE, sizeof(k->sign_sk),
                     gen_ed25519, k->sign_sk);
    if (rc != 0)
        goto out;
    rc = check_ed25519(k->sign_sk);
    if (rc != 0) {
        log_error("Ed25519 key file is corrupt", "dir=%s file=%s", data_dir,
                  AUTH_SIGN_FILE);
        goto out;
    }
    crypto_sign_ed25519_sk_to_pk(k->sign_pk, k->sign_sk);
    sodium_bin2hex(k->key_id, sizeof(k->key_id), k->sign_pk,
                   (sizeof(k->key_id) - 1) / 2);
    /* Compute the dummy hash now, so the first unknown-user login does not
     * take twice as long as a wrong password. */
    pthread_once(&dummy_once, dummy_init);
out:
    if (rc != 0)
        sodium_memzero(k, sizeof(*k));
    return rc;
}

/* ------------------------------------------------------------- passwords */

/* Refuses NULL, empty and over-long passwords the same way for real and
 * dummy checks, so both return equally fast on them. */
static int password_len(const char *password, size_t *len)
{
    if (password == NULL)
        return BERTH_EINVAL;
    *len = strnlen(password, AUTH_PASSWORD_MAX + 1);
    if (*len == 0 || *len > AUTH_PASSWORD_MAX)
        return BERTH_EINVAL;
    return 0;
}

int auth_password_hash(const char *password, char out[AUTH_HASH_MAX])
{
    size_t len;
    int rc;

    if (out == NULL)
        return BERTH_EINVAL;
    out[0] = '\0';
    rc = password_len(password, &len);
    if (rc != 0)
        return rc;
    rc = token_crypto_init();
    if (rc != 0)
        return rc;
    if (crypto_pwhash_str_alg(out, password, len, AUTH_PWHASH_OPS,
                              AUTH_PWHASH_MEM, AUTH_PWHASH_ALG) != 0) {
        out[0] = '\0';
        return BERTH_ENOMEM;
    }
    return 0;
}

static int password_check(const char *hash, const char *password)
{
    size_t len;

    if (hash == NULL || password_len(password, &len) != 0)
        return BERTH_EAUTH;
    if (hash[0] == '\0' || strnlen(hash, AUTH_HASH_MAX) >= AUTH_HASH_MAX)
        return BERTH_EAUTH;
    if (token_crypto_init() != 0)
        return BERTH_EAUTH;
    if (crypto_pwhash_str_verify(hash, password, len) != 0)
        return BERTH_EAUTH;
    return 0;
}

int auth_password_verify(const char *hash, const char *password)
{
    return password_check(hash, password);
}

void auth_password_dummy(const char *password)
{
    pthread_once(&dummy_once, dummy_init);
    (void)password_check(dummy_hash, password);
}

/* ---------------------------------------------------------------- tokens */

/* Skips an "Authorization" scheme of "Bearer" (any case) and the spaces
 * after it; anything else is taken as the bare token. */
static const char *strip_bearer(const char *s)
{
    if (strncasecmp(s, "Bearer ", 7) != 0)
        return s;
    s += 7;
    while (*s == ' ')
        s++;
    return s;
}

int auth_access_issue(const auth_keys *k, const char *user_id, int64_t now,
                      char **out)
{
    unsigned char raw[AUTH_JTI_BYTES];
    json_t *claims = NULL;
    char *jti = NULL;
    int rc;

    if (out == NULL)
        return BERTH_EINVAL;
    *out = NULL;
    if (k == NULL || !id_uuid_valid(user_id) ||
        now > INT64_MAX - AUTH_ACCESS_TTL_S)
        return BERTH_EINVAL;
    rc = id_random(raw, sizeof(raw));
    if (rc != 0)
        goto out;
    jti = token_b64url_encode(raw, sizeof(raw));
    if (jti == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    claims = json_pack("{s:s, s:s, s:I, s:I, s:s}", "sub", user_id, "typ",
                       "access", "iat", (json_int_t)now, "exp",
                       (json_int_t)(now + AUTH_ACCESS_TTL_S), "jti", jti);
    if (claims == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = token_sign_hmac(claims, k->hmac, out);
out:
    json_decref(claims);
    free(jti);
    return rc;
}

int auth_access_check(const auth_keys *k, const char *authorization,
                      int64_t now, char user_id[40])
{
    json_t *claims = NULL;
    const char *typ;
    const char *sub;
    int rc;

    if (user_id == NULL || k == NULL)
        return BERTH_EINVAL;
    user_id[0] = '\0';
    if (authorization == NULL)
        return BERTH_EAUTH;
    rc = token_verify_hmac(strip_bearer(authorization), k->hmac, now, &claims);
    if (rc != 0)
        goto out;
    rc = BERTH_EAUTH;
    typ = json_string_value(json_object_get(claims, "typ"));
    sub = json_string_value(json_object_get(claims, "sub"));
    if (typ == NULL || strcmp(typ, "access") != 0 || !id_uuid_valid(sub))
        goto out;
    memcpy(user_id, sub, ID_UUID_LEN + 1);
    rc = 0;
out:
    json_decref(claims);
    return rc;
}

static void sha256_hex(const char *s, size_t len,
                       char hex[AUTH_REFRESH_HASH_LEN + 1])
{
    unsigned char d[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(d, (const unsigned char *)s, len);
    sodium_bin2hex(hex, AUTH_REFRESH_HASH_LEN + 1, d, sizeof(d));
}

int auth_refresh_new(char token[AUTH_REFRESH_LEN + 1],
                     char hash[AUTH_REFRESH_HASH_LEN + 1])
{
    unsigned char raw[AUTH_REFRESH_BYTES];
    char *enc = NULL;
    int rc;

    if (token == NULL || hash == NULL)
        return BERTH_EINVAL;
    token[0] = '\0';
    hash[0] = '\0';
    rc = token_crypto_init();
    if (rc != 0)
        goto out;
    rc = id_random(raw, sizeof(raw));
    if (rc != 0)
        goto out;
    enc = token_b64url_encode(raw, sizeof(raw));
    if (enc == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    memcpy(token, enc, AUTH_REFRESH_LEN + 1);
    sha256_hex(token, AUTH_REFRESH_LEN, hash);
out:
    sodium_memzero(raw, sizeof(raw));
    if (enc != NULL) {
        sodium_memzero(enc, AUTH_REFRESH_LEN);
        free(enc);
    }
    return rc;
}

/* Only exactly AUTH_REFRESH_LEN canonical base64url characters can be a
 * refresh token; everything else is refused before hashing. */
int auth_refresh_hash(const char *authorization,
                      char hash[AUTH_REFRESH_HASH_LEN + 1])
{
    unsigned char raw[AUTH_REFRESH_BYTES];
    const char *s;
    int rc;

    if (hash == NULL)
        return BERTH_EINVAL;
    hash[0] = '\0';
    if (authorization == NULL)
        return BERTH_EAUTH;
    s = strip_bearer(authorization);
    if (strnlen(s, AUTH_REFRESH_LEN + 1) != AUTH_REFRESH_LEN ||
        token_b64url_decode(s, AUTH_REFRESH_LEN, raw, sizeof(raw)) !=
            (long)sizeof(raw))
        return BERTH_EAUTH;
    sodium_memzero(raw, sizeof(raw));
    rc = token_crypto_init();
    if (rc != 0)
        return rc;
    sha256_hex(s, AUTH_REFRESH_LEN, hash);
    return 0;
}

/* -------------------------------------------------------------- throttle */

/* Each table holds at most THROTTLE_ENTRIES keys in a fixed pool, chained
 * from THROTTLE_BUCKETS buckets and kept on a recency list ordered by last
 * failure; when the pool is full the least recently failed key is recycled.
 * An entry keeps its last `limit` failure times in a ring, which is all it
 * takes to know whether `limit` of them fall in the window and when the
 * oldest of those leaves it. Keys are keyed BLAKE2b digests of the user name
 * or address, so their length is fixed and nobody can aim at one bucket. */
#define THROTTLE_ENTRIES 4096
#define THROTTLE_BUCKETS 8192 /* a power of two */
#define THROTTLE_KEY_BYTES 16
#define THROTTLE_NONE (-1)

typedef struct throttle_entry {
    unsigned char key[THROTTLE_KEY_BYTES];
    int32_t chain; /* next entry in the same bucket */
    int32_t older; /* recency list */
    int32_t newer;
    int n;    /* failures held, at most the table's limit */
    int next; /* ring slot written next: the oldest failure once full */
} throttle_entry;

typedef struct throttle_table {
    int limit;
    int32_t used; /* pool entries handed out so far */
    int32_t oldest;
    int32_t newest;
    int32_t buckets[THROTTLE_BUCKETS];
    throttle_entry entries[THROTTLE_ENTRIES];
    int64_t *times; /* limit failure times per entry */
} throttle_table;

struct auth_throttle {
    pthread_mutex_t lock;
    unsigned char hash_key[crypto_generichash_KEYBYTES];
    throttle_table users;
    throttle_table ips;
};

static int table_init(throttle_table *tb, int limit)
{
    tb->limit = limit;
    tb->used = 0;
    tb->oldest = THROTTLE_NONE;
    tb->newest = THROTTLE_NONE;
    memset(tb->buckets, 0xff, sizeof(tb->buckets)); /* THROTTLE_NONE */
    tb->times = calloc((size_t)THROTTLE_ENTRIES * (size_t)limit,
                       sizeof(*tb->times));
    return tb->times == NULL ? BERTH_ENOMEM : 0;
}

static uint32_t bucket_of(const unsigned char *key)
{
    uint32_t h;

    memcpy(&h, key, sizeof(h));
    return h & (THROTTLE_BUCKETS - 1);
}

static int32_t table_find(const throttle_table *tb, const unsigned char *key)
{
    int32_t i = tb->buckets[bucket_of(key)];

    while (i != THROTTLE_NONE &&
           memcmp(tb->entries[i].key, key, THROTTLE_KEY_BYTES) != 0)
        i = tb->entries[i].chain;
    return i;
}

static void list_unlink(throttle_table *tb, int32_t i)
{
    throttle_entry *e = &tb->entries[i];

    if (e->older != THROTTLE_NONE)
        tb->entries[e->older].newer = e->newer;
    else
        tb->oldest = e->newer;
    if (e->newer != THROTTLE_NONE)
        tb->entries[e->newer].older = e->older;
    else
        tb->newest = e->older;
    e->older = THROTTLE_NONE;
    e->newer = THROTTLE_NONE;
}

/* Links unlinked entry i into the recency list between older and newer
 * (THROTTLE_NONE: i becomes that end of the list). */
static void list_link(throttle_table *tb, int32_t i, int32_t older,
                      int32_t newer)
{
    throttle_entry *e = &tb->entries[i];

    e->older = older;
    e->newer = newer;
    if (older != THROTTLE_NONE)
        tb->entries[older].newer = i;
    else
        tb->oldest = i;
    if (newer != THROTTLE_NONE)
        tb->entries[newer].older = i;
    else
        tb->newest = i;
}

static void bucket_unlink(throttle_table *tb, int32_t i)
{
    int32_t *p = &tb->buckets[bucket_of(tb->entries[i].key)];

    while (*p != i)
        p = &tb->entries[*p].chain;
    *p = tb->entries[i].chain;
}

/* Records a failure of key at now, making its entry when there is none. */
static void table_fail(throttle_table *tb, const unsigned char *key,
                       int64_t now)
{
    int32_t i = table_find(tb, key);
    throttle_entry *e;
    uint32_t b;

    if (i == THROTTLE_NONE) {
        if (tb->used < THROTTLE_ENTRIES) {
            i = tb->used++;
        } else {
            i = tb->oldest;
            list_unlink(tb, i);
            bucket_unlink(tb, i);
        }
        e = &tb->entries[i];
        memcpy(e->key, key, THROTTLE_KEY_BYTES);
        e->n = 0;
        e->next = 0;
        b = bucket_of(key);
        e->chain = tb->buckets[b];
        tb->buckets[b] = i;
    } else {
        list_unlink(tb, i);
    }
    list_link(tb, i, tb->newest, THROTTLE_NONE);
    e = &tb->entries[i];
    tb->times[(size_t)i * (size_t)tb->limit + (size_t)e->next] = now;
    e->next = (e->next + 1) % tb->limit;
    if (e->n < tb->limit)
        e->n++;
}

/* Seconds key must wait before its next try, 0 when it may try now. */
static int table_wait(const throttle_table *tb, const unsigned char *key,
                      int64_t now)
{
    int32_t i = table_find(tb, key);
    const throttle_entry *e;
    int64_t until;

    if (i == THROTTLE_NONE)
        return 0;
    e = &tb->entries[i];
    if (e->n < tb->limit)
        return 0;
    until = tb->times[(size_t)i * (size_t)tb->limit + (size_t)e->next] +
            AUTH_THROTTLE_WINDOW_S;
    if (until <= now)
        return 0;
    /* A clock set back must not lock anyone out for longer than a window. */
    if (until - now > AUTH_THROTTLE_WINDOW_S)
        return AUTH_THROTTLE_WINDOW_S;
    return (int)(until - now);
}

/* Forgets key's failures and marks its entry first to be recycled. */
static void table_clear(throttle_table *tb, const unsigned char *key)
{
    int32_t i = table_find(tb, key);

    if (i == THROTTLE_NONE)
        return;
    tb->entries[i].n = 0;
    tb->entries[i].next = 0;
    list_unlink(tb, i);
    list_link(tb, i, THROTTLE_NONE, tb->oldest);
}

static void key_digest(const auth_throttle *t, char tag, const void *data,
                       size_t len, unsigned char key[THROTTLE_KEY_BYTES])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, t->hash_key, sizeof(t->hash_key),
                            THROTTLE_KEY_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)&tag, 1);
    crypto_generichash_update(&st, data, len);
    crypto_generichash_final(&st, key, THROTTLE_KEY_BYTES);
}

/* User names compare without regard to ASCII case. */
static void key_user(const auth_throttle *t, const char *user,
                     unsigned char key[THROTTLE_KEY_BYTES])
{
    crypto_generichash_state st;
    unsigned char chunk[64];
    const unsigned char tag = 'u';
    size_t n;

    crypto_generichash_init(&st, t->hash_key, sizeof(t->hash_key),
                            THROTTLE_KEY_BYTES);
    crypto_generichash_update(&st, &tag, 1);
    while (*user != '\0') {
        for (n = 0; n < sizeof(chunk) && *user != '\0'; n++, user++) {
            unsigned char c = (unsigned char)*user;
            chunk[n] = c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
        }
        crypto_generichash_update(&st, chunk, n);
    }
    crypto_generichash_final(&st, key, THROTTLE_KEY_BYTES);
}

/* An IPv4 address counts as itself (also when IPv4-mapped); an IPv6
 * address counts as its /64, the smallest block one host usually gets;
 * anything else counts as its text. */
static void key_ip(const auth_throttle *t, const char *ip,
                   unsigned char key[THROTTLE_KEY_BYTES])
{
    struct in6_addr a6;
    struct in_addr a4;

    if (inet_pton(AF_INET, ip, &a4) == 1) {
        key_digest(t, '4', &a4, 4, key);
    } else if (inet_pton(AF_INET6, ip, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6))
            key_digest(t, '4', a6.s6_addr + 12, 4, key);
        else
            key_digest(t, '6', a6.s6_addr, 8, key);
    } else {
        key_digest(t, 's', ip, strlen(ip), key);
    }
}

auth_throttle *auth_throttle_new(void)
{
    auth_throttle *t = NULL;
    int rc;

    rc = token_crypto_init();
    if (rc != 0)
        goto out;
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = id_random(t->hash_key, sizeof(t->hash_key));
    if (rc != 0)
        goto out;
    rc = table_init(&t->users, AUTH_THROTTLE_FAILS);
    if (rc != 0)
        goto out;
    rc = table_init(&t->ips, AUTH_THROTTLE_IP_FAILS);
    if (rc != 0)
        goto out;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
out:
    if (rc != 0 && t != NULL) {
        free(t->users.times);
        free(t->ips.times);
        free(t);
        t = NULL;
    }
    return t;
}

void auth_throttle_free(auth_throttle *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->users.times);
    free(t->ips.times);
    free(t);
}

int auth_throttle_check(auth_throttle *t, const char *user, const char *ip,
                        int64_t now, int *retry_after)
{
    unsigned char ukey[THROTTLE_KEY_BYTES];
    unsigned char ikey[THROTTLE_KEY_BYTES];
    int wait = 0;
    int w;

    if (retry_after != NULL)
        *retry_after = 0;
    if (t == NULL)
        return BERTH_EINVAL;
    if (user != NULL)
        key_user(t, user, ukey);
    if (ip != NULL)
        key_ip(t, ip, ikey);
    pthread_mutex_lock(&t->lock);
    if (user != NULL)
        wait = table_wait(&t->users, ukey, now);
    if (ip != NULL) {
        w = table_wait(&t->ips, ikey, now);
        if (w > wait)
            wait = w;
    }
    pthread_mutex_unlock(&t->lock);
    if (wait == 0)
        return 0;
    if (retry_after != NULL)
        *retry_after = wait;
    return BERTH_ETHROTTLE;
}

void auth_throttle_failed(auth_throttle *t, const char *user, const char *ip,
                          int64_t now)
{
    unsigned char ukey[THROTTLE_KEY_BYTES];
    unsigned char ikey[THROTTLE_KEY_BYTES];

    if (t == NULL)
        return;
    if (user != NULL)
        key_user(t, user, ukey);
    if (ip != NULL)
        key_ip(t, ip, ikey);
    pthread_mutex_lock(&t->lock);
    if (user != NULL)
        table_fail(&t->users, ukey, now);
    if (ip != NULL)
        table_fail(&t->ips, ikey, now);
    pthread_mutex_unlock(&t->lock);
}

/* A success clears the user's failures only: an address that is guessing
 * many accounts keeps its count even when one guess is right. */
void auth_throttle_succeeded(auth_throttle *t, const char *user,
                             const char *ip)
{
    unsigned char ukey[THROTTLE_KEY_BYTES];

    (void)ip;
    if (t == NULL || user == NULL)
        return;
    key_user(t, user, ukey);
    pthread_mutex_lock(&t->lock);
    table_clear(&t->users, ukey);
    pthread_mutex_unlock(&t->lock);
}

/* ----------------------------------------------------------- permissions */

static const struct {
    uint32_t bit;
    const char *name;
} perm_table[] = {
#define XX(id, name) {PERM_##id, name},
    AUTH_PERM_MAP(XX)
#undef XX
};

#define PERM_TABLE_LEN (sizeof(perm_table) / sizeof(perm_table[0]))

/* "*" is everything; "<prefix>.*" is every name that starts with
 * "<prefix>." ("site.*", "site.console.*"); otherwise an exact name. */
uint32_t auth_perm_parse(const char *name)
{
    uint32_t bits = 0;
    size_t len, i;

    if (name == NULL)
        return 0;
    len = strnlen(name, AUTH_PERM_NAME_MAX + 1);
    if (len == 0 || len > AUTH_PERM_NAME_MAX)
        return 0;
    if (strcmp(name, "*") == 0)
        return PERM_ALL;
    if (len >= 3 && name[len - 2] == '.' && name[len - 1] == '*') {
        for (i = 0; i < PERM_TABLE_LEN; i++) {
            if (strncmp(perm_table[i].name, name, len - 1) == 0)
                bits |= perm_table[i].bit;
        }
        return bits;
    }
    for (i = 0; i < PERM_TABLE_LEN; i++) {
        if (strcmp(perm_table[i].name, name) == 0)
            return perm_table[i].bit;
    }
    return 0;
}

int auth_perm_names(uint32_t mask, const char **names, int max)
{
    size_t i;
    int n = 0;

    if (names == NULL)
        return 0;
    for (i = 0; i < PERM_TABLE_LEN && n < max; i++) {
        if (mask & perm_table[i].bit)
            names[n++] = perm_table[i].name;
    }
    return n;
}
