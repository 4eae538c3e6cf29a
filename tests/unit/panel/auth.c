/* auth.c - tests of the panel's keys, passwords, tokens, login throttle and
 * permission names (svc-panel/auth.c).
 *
 * svc-panel/auth.c is not in a library, so it is included here; that also
 * lets the throttle tests look at the tables' statics.
 */
#include "svc-panel/auth.c"

#include <ctype.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/harness/unit.h"

#define NOW 1700000000
#define USER1 "0b6a4a3c-3f1e-4c2a-9d7b-1e2f3a4b5c6d"
#define USER2 "9F1C2D3E-4A5B-4C6D-8E7F-0A1B2C3D4E5F"

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/berth-auth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    static const char *const names[] = {AUTH_HMAC_FILE, AUTH_SIGN_FILE};
    char path[PATH_MAX];
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

static void key_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
}

static mode_t file_mode(const char *name)
{
    char path[PATH_MAX];
    struct stat st;

    key_path(path, sizeof(path), name);
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_mode & 0777;
}

/* ------------------------------------------------------------------ keys */

START_TEST(keys_created_and_reloaded)
{
    auth_keys a, b;
    char hex[17];
    json_t *c =
        json_pack("{s:s, s:I}", "site", "x", "exp", (json_int_t)NOW + 5);
    char *tok = NULL;

    ck_assert_int_eq(auth_keys_load(&a, tmpdir), 0);
    ck_assert_uint_eq(file_mode(AUTH_HMAC_FILE), 0600);
    ck_assert_uint_eq(file_mode(AUTH_SIGN_FILE), 0600);
    ck_assert_int_eq(auth_keys_load(&b, tmpdir), 0);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);

    /* key_id is the first 8 bytes of the public key, in hex. */
    ck_assert_uint_eq(strlen(a.key_id), 16);
    sodium_bin2hex(hex, sizeof(hex), a.sign_pk, 8);
    ck_assert_str_eq(a.key_id, hex);
    /* The public key is the one that goes with the secret key. */
    ck_assert_int_eq(token_sign_ed25519(c, a.sign_sk, &tok), 0);
    ck_assert_int_eq(token_verify_ed25519(tok, b.sign_pk, NOW, NULL), 0);
    /* The two secrets differ. */
    ck_assert_int_ne(memcmp(a.hmac, a.sign_sk, sizeof(a.hmac)), 0);
    free(tok);
    json_decref(c);

    /* A fresh directory gets fresh keys, created with its parents. */
    {
        char sub[PATH_MAX];
        auth_keys d;
        snprintf(sub, sizeof(sub), "%s/x/y", tmpdir);
        ck_assert_int_eq(auth_keys_load(&d, sub), 0);
        ck_assert_int_ne(memcmp(d.hmac, a.hmac, sizeof(d.hmac)), 0);
        ck_assert_int_ne(memcmp(d.sign_pk, a.sign_pk, sizeof(d.sign_pk)), 0);
        snprintf(sub, sizeof(sub), "%s/x/y/" AUTH_HMAC_FILE, tmpdir);
        unlink(sub);
        snprintf(sub, sizeof(sub), "%s/x/y/" AUTH_SIGN_FILE, tmpdir);
        unlink(sub);
        snprintf(sub, sizeof(sub), "%s/x/y", tmpdir);
        rmdir(sub);
        snprintf(sub, sizeof(sub), "%s/x", tmpdir);
        rmdir(sub);
    }
    ck_assert_int_eq(auth_keys_load(NULL, tmpdir), BERTH_EINVAL);
    ck_assert_int_eq(auth_keys_load(&a, NULL), BERTH_EINVAL);
}
END_TEST

START_TEST(keys_refused_when_readable)
{
    auth_keys a, z;
    char path[PATH_MAX];

    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(auth_keys_load(&a, tmpdir), 0);
    key_path(path, sizeof(path), AUTH_HMAC_FILE);
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(auth_keys_load(&a, tmpdir), BERTH_EPERM);
    ck_assert_int_eq(memcmp(&a, &z, sizeof(a)), 0);
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(auth_keys_load(&a, tmpdir), 0);

    key_path(path, sizeof(path), AUTH_SIGN_FILE);
    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(auth_keys_load(&a, tmpdir), BERTH_EPERM);
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(auth_keys_load(&a, tmpdir), 0);
}
END_TEST

START_TEST(keys_refused_when_corrupt)
{
    auth_keys a;
    char path[PATH_MAX];
    char *data = NULL;
    size_t len = 0;

    ck_assert_int_eq(auth_keys_load(&a, tmpdir), 0);
    /* Truncated HMAC key. */
    key_path(path, sizeof(path), AUTH_HMAC_FILE);
    ck_assert_int_eq(fs_write_atomic(path, "short", 5, 0600), 0);
    ck_assert_int_eq(auth_keys_load(&a, tmpdir), BERTH_ECONFIG);
    unlink(path);
    /* Ed25519 key whose public half was changed. */
    key_path(path, sizeof(path), AUTH_SIGN_FILE);
    ck_assert_int_eq(fs_read_file(path, 1024, &data, &len), 0);
    ck_assert_uint_eq(len, 64);
    data[40] ^= 1;
    ck_assert_int_eq(fs_write_atomic(path, data, len, 0600), 0);
    ck_assert_int_eq(auth_keys_load(&a, tmpdir), BERTH_ECONFIG);
    free(data);
}
END_TEST

/* ------------------------------------------------------------- passwords */

START_TEST(passwords)
{
    char h1[AUTH_HASH_MAX], h2[AUTH_HASH_MAX];
    char *longpw = malloc(AUTH_PASSWORD_MAX + 2);

    ck_assert_int_eq(auth_password_hash("correct horse", h1), 0);
    ck_assert_msg(strncmp(h1, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0,
                  "hash %s", h1);
    ck_assert_int_eq(auth_password_verify(h1, "correct horse"), 0);
    ck_assert_int_eq(auth_password_verify(h1, "correct horsf"), BERTH_EAUTH);
    ck_assert_int_eq(auth_password_verify(h1, "Correct horse"), BERTH_EAUTH);
    ck_assert_int_eq(auth_password_verify(h1, ""), BERTH_EAUTH);
    ck_assert_int_eq(auth_password_verify(h1, NULL), BERTH_EAUTH);
    ck_assert_int_eq(auth_password_verify(NULL, "correct horse"), BERTH_EAUTH);
    ck_assert_int_eq(auth_password_verify("", "correct horse"), BERTH_EAUTH);
    ck_assert_int_eq(auth_password_verify("$argon2id$garbage", "x"),
                     BERTH_EAUTH);
    /* Salted: the same password hashes differently each time. */
    ck_assert_int_eq(auth_password_hash("correct horse", h2), 0);
    ck_assert_str_ne(h1, h2);
    ck_assert_int_eq(auth_password_verify(h2, "correct horse"), 0);

    ck_assert_int_eq(auth_password_hash("", h2), BERTH_EINVAL);
    ck_assert_str_eq(h2, "");
    ck_assert_int_eq(auth_password_hash(NULL, h2), BERTH_EINVAL);
    memset(longpw, 'p', AUTH_PASSWORD_MAX + 1);
    longpw[AUTH_PASSWORD_MAX + 1] = '\0';
    ck_assert_int_eq(auth_password_hash(longpw, h2), BERTH_EINVAL);
    ck_assert_int_eq(auth_password_verify(h1, longpw), BERTH_EAUTH);
    longpw[AUTH_PASSWORD_MAX] = '\0';
    ck_assert_int_eq(auth_password_hash(longpw, h2), 0);
    ck_assert_int_eq(auth_password_verify(h2, longpw), 0);
    longpw[0] = 'q';
    ck_assert_int_eq(auth_password_verify(h2, longpw), BERTH_EAUTH);
    free(longpw);
}
END_TEST

START_TEST(password_dummy)
{
    int64_t t0, t1, t2;
    char h[AUTH_HASH_MAX];

    ck_assert_int_eq(auth_password_hash("pw", h), 0);
    auth_password_dummy("warm up");
    /* A real hash with the same parameters, from an unknown password. */
    ck_assert_int_eq(strncmp(dummy_hash, h, 31), 0);
    ck_assert_int_eq(auth_password_verify(dummy_hash, "pw"), BERTH_EAUTH);
    t0 = clock_mono_ns();
    auth_password_dummy("pw");
    t1 = clock_mono_ns();
    (void)auth_password_verify(h, "wrong");
    t2 = clock_mono_ns();
    /* Both run argon2id over 19 MiB: not instant. */
    ck_assert_int_gt(t1 - t0, 5 * 1000 * 1000);
    ck_assert_int_gt(t2 - t1, 5 * 1000 * 1000);
    auth_password_dummy(NULL);
    auth_password_dummy("");
}
END_TEST

/* ---------------------------------------------------------------- tokens */

START_TEST(access_tokens)
{
    auth_keys k, other;
    char uid[40];
    char hdr[TOKEN_MAX + 32];
    char *tok = NULL;
    json_t *c = NULL;

    ck_assert_int_eq(auth_keys_load(&k, tmpdir), 0);
    ck_assert_int_eq(auth_access_issue(&k, USER1, NOW, &tok), 0);

    /* The claims are the ones promised. */
    ck_assert_int_eq(token_verify_hmac(tok, k.hmac, NOW, &c), 0);
    ck_assert_str_eq(json_string_value(json_object_get(c, "sub")), USER1);
    ck_assert_str_eq(json_string_value(json_object_get(c, "typ")), "access");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "iat")), NOW);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "exp")),
                     NOW + AUTH_ACCESS_TTL_S);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(c, "jti"))), 22);
    json_decref(c);

    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), 0);
    ck_assert_str_eq(uid, USER1);
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    ck_assert_int_eq(auth_access_check(&k, hdr, NOW + 10, uid), 0);
    snprintf(hdr, sizeof(hdr), "bearer %s", tok);
    ck_assert_int_eq(auth_access_check(&k, hdr, NOW, uid), 0);
    snprintf(hdr, sizeof(hdr), "BEARER   %s", tok);
    ck_assert_int_eq(auth_access_check(&k, hdr, NOW, uid), 0);
    ck_assert_str_eq(uid, USER1);

    /* Expiry. */
    ck_assert_int_eq(
        auth_access_check(&k, tok, NOW + AUTH_ACCESS_TTL_S - 1, uid), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW + AUTH_ACCESS_TTL_S, uid),
                     BERTH_ETIMEDOUT);
    ck_assert_str_eq(uid, "");

    /* Other schemes, garbage, other keys. */
    snprintf(hdr, sizeof(hdr), "Basic %s", tok);
    ck_assert_int_eq(auth_access_check(&k, hdr, NOW, uid), BERTH_EAUTH);
    snprintf(hdr, sizeof(hdr), "Bearer%s", tok);
    ck_assert_int_eq(auth_access_check(&k, hdr, NOW, uid), BERTH_EAUTH);
    snprintf(hdr, sizeof(hdr), "Bearer %s ", tok);
    ck_assert_int_eq(auth_access_check(&k, hdr, NOW, uid), BERTH_EAUTH);
    ck_assert_int_eq(auth_access_check(&k, "Bearer ", NOW, uid), BERTH_EAUTH);
    ck_assert_int_eq(auth_access_check(&k, "", NOW, uid), BERTH_EAUTH);
    ck_assert_int_eq(auth_access_check(&k, "garbage.garbage", NOW, uid),
                     BERTH_EAUTH);
    ck_assert_int_eq(auth_access_check(&k, NULL, NOW, uid), BERTH_EAUTH);
    ck_assert_str_eq(uid, "");
    memcpy(&other, &k, sizeof(other));
    other.hmac[5] ^= 0x80;
    ck_assert_int_eq(auth_access_check(&other, tok, NOW, uid), BERTH_EAUTH);
    free(tok);

    /* Upper-case UUIDs are UUIDs too. */
    ck_assert_int_eq(auth_access_issue(&k, USER2, NOW, &tok), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), 0);
    ck_assert_str_eq(uid, USER2);
    free(tok);

    /* Only UUIDs are issued for. */
    tok = (char *)1;
    ck_assert_int_eq(auth_access_issue(&k, "admin", NOW, &tok), BERTH_EINVAL);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(auth_access_issue(&k, NULL, NOW, &tok), BERTH_EINVAL);
}
END_TEST

/* Tokens signed with the panel's HMAC key that are not access tokens. */
START_TEST(access_wrong_claims)
{
    auth_keys k;
    char uid[40];
    char *tok = NULL;
    json_t *c;

    ck_assert_int_eq(auth_keys_load(&k, tmpdir), 0);

    c = json_pack("{s:s, s:s, s:I}", "sub", USER1, "typ", "refresh", "exp",
                  (json_int_t)NOW + 60);
    ck_assert_int_eq(token_sign_hmac(c, k.hmac, &tok), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), BERTH_EAUTH);
    free(tok);
    json_decref(c);

    c = json_pack("{s:s, s:I}", "sub", USER1, "exp", (json_int_t)NOW + 60);
    ck_assert_int_eq(token_sign_hmac(c, k.hmac, &tok), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), BERTH_EAUTH);
    free(tok);
    json_decref(c);

    c = json_pack("{s:s, s:s, s:I}", "sub", "admin", "typ", "access", "exp",
                  (json_int_t)NOW + 60);
    ck_assert_int_eq(token_sign_hmac(c, k.hmac, &tok), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), BERTH_EAUTH);
    free(tok);
    json_decref(c);

    c = json_pack("{s:i, s:s, s:I}", "sub", 7, "typ", "access", "exp",
                  (json_int_t)NOW + 60);
    ck_assert_int_eq(token_sign_hmac(c, k.hmac, &tok), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), BERTH_EAUTH);
    free(tok);
    json_decref(c);

    /* The right claims signed with the Ed25519 key are not access tokens. */
    c = json_pack("{s:s, s:s, s:I}", "sub", USER1, "typ", "access", "exp",
                  (json_int_t)NOW + 60);
    ck_assert_int_eq(token_sign_ed25519(c, k.sign_sk, &tok), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), BERTH_EAUTH);
    free(tok);
    ck_assert_int_eq(token_sign_hmac(c, k.hmac, &tok), 0);
    ck_assert_int_eq(auth_access_check(&k, tok, NOW, uid), 0);
    ck_assert_str_eq(uid, USER1);
    free(tok);
    json_decref(c);
}
END_TEST

START_TEST(refresh_tokens)
{
    char t1[AUTH_REFRESH_LEN + 1], t2[AUTH_REFRESH_LEN + 1];
    char h1[AUTH_REFRESH_HASH_LEN + 1], h2[AUTH_REFRESH_HASH_LEN + 1];
    char hdr[128];
    char bad[AUTH_REFRESH_LEN + 2];
    size_t i;

    ck_assert_int_eq(auth_refresh_new(t1, h1), 0);
    ck_assert_int_eq(auth_refresh_new(t2, h2), 0);
    ck_assert_uint_eq(strlen(t1), AUTH_REFRESH_LEN);
    ck_assert_uint_eq(strlen(h1), AUTH_REFRESH_HASH_LEN);
    ck_assert_str_ne(t1, t2);
    ck_assert_str_ne(h1, h2);
    for (i = 0; i < AUTH_REFRESH_LEN; i++)
        ck_assert(isalnum((unsigned char)t1[i]) || t1[i] == '-' ||
                  t1[i] == '_');
    for (i = 0; i < AUTH_REFRESH_HASH_LEN; i++)
        ck_assert_ptr_nonnull(strchr("0123456789abcdef", h1[i]));

    /* The hash of the presented token is the one stored, either way. */
    ck_assert_int_eq(auth_refresh_hash(t1, h2), 0);
    ck_assert_str_eq(h2, h1);
    snprintf(hdr, sizeof(hdr), "Bearer %s", t1);
    ck_assert_int_eq(auth_refresh_hash(hdr, h2), 0);
    ck_assert_str_eq(h2, h1);
    snprintf(hdr, sizeof(hdr), "bEaReR %s", t1);
    ck_assert_int_eq(auth_refresh_hash(hdr, h2), 0);
    ck_assert_str_eq(h2, h1);

    /* SHA-256 of the text, lower-case hex. */
    memset(bad, 'A', AUTH_REFRESH_LEN);
    bad[AUTH_REFRESH_LEN] = '\0';
    ck_assert_int_eq(auth_refresh_hash(bad, h2), 0);
    ck_assert_str_eq(
        h2, "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a");

    /* Anything that is not 43 base64url characters. */
    bad[AUTH_REFRESH_LEN - 1] = '\0';
    ck_assert_int_eq(auth_refresh_hash(bad, h2), BERTH_EAUTH);
    ck_assert_str_eq(h2, "");
    strcpy(bad, t1);
    strcat(bad, "A");
    ck_assert_int_eq(auth_refresh_hash(bad, h2), BERTH_EAUTH);
    strcpy(bad, t1);
    bad[10] = '+';
    ck_assert_int_eq(auth_refresh_hash(bad, h2), BERTH_EAUTH);
    bad[10] = '=';
    ck_assert_int_eq(auth_refresh_hash(bad, h2), BERTH_EAUTH);
    bad[10] = '.';
    ck_assert_int_eq(auth_refresh_hash(bad, h2), BERTH_EAUTH);
    /* The last character carries two unused bits that must be zero. */
    memset(bad, 'A', AUTH_REFRESH_LEN);
    bad[AUTH_REFRESH_LEN - 1] = 'B';
    bad[AUTH_REFRESH_LEN] = '\0';
    ck_assert_int_eq(auth_refresh_hash(bad, h2), BERTH_EAUTH);
    snprintf(hdr, sizeof(hdr), "Basic %s", t1);
    ck_assert_int_eq(auth_refresh_hash(hdr, h2), BERTH_EAUTH);
    snprintf(hdr, sizeof(hdr), "%s ", t1);
    ck_assert_int_eq(auth_refresh_hash(hdr, h2), BERTH_EAUTH);
    ck_assert_int_eq(auth_refresh_hash("Bearer ", h2), BERTH_EAUTH);
    ck_assert_int_eq(auth_refresh_hash("", h2), BERTH_EAUTH);
    ck_assert_int_eq(auth_refresh_hash(NULL, h2), BERTH_EAUTH);
}
END_TEST

/* -------------------------------------------------------------- throttle */

START_TEST(throttle_user)
{
    auth_throttle *t = auth_throttle_new();
    int retry = -1;
    int i;

    ck_assert_ptr_nonnull(t);
    for (i = 0; i < AUTH_THROTTLE_FAILS; i++) {
        ck_assert_int_eq(auth_throttle_check(t, "alice", "10.0.0.1", NOW + i,
                                             &retry),
                         0);
        ck_assert_int_eq(retry, 0);
        auth_throttle_failed(t, "alice", "10.0.0.1", NOW + i);
    }
    ck_assert_int_eq(auth_throttle_check(t, "alice", "10.0.0.1", NOW + 10,
                                         &retry),
                     BERTH_ETHROTTLE);
    /* Until the first failure leaves the window. */
    ck_assert_int_eq(retry, AUTH_THROTTLE_WINDOW_S - 10);
    ck_assert(retry >= 1 && retry <= AUTH_THROTTLE_WINDOW_S);
    /* The name, whatever its case, from any address. */
    ck_assert_int_eq(auth_throttle_check(t, "ALICE", "10.9.9.9", NOW + 10,
                                         &retry),
                     BERTH_ETHROTTLE);
    ck_assert_int_eq(auth_throttle_check(t, "Alice", NULL, NOW + 59, &retry),
                     BERTH_ETHROTTLE);
    ck_assert_int_eq(retry, 1);
    /* Another user, even from the same address, is not affected. */
    ck_assert_int_eq(auth_throttle_check(t, "bob", "10.0.0.1", NOW + 10,
                                         &retry),
                     0);
    ck_assert_int_eq(auth_throttle_check(t, "alice2", "10.0.0.2", NOW + 10,
                                         &retry),
                     0);
    /* One minute after the first failure, one more try is allowed... */
    ck_assert_int_eq(auth_throttle_check(t, "alice", "10.0.0.1",
                                         NOW + AUTH_THROTTLE_WINDOW_S, &retry),
                     0);
    /* ...and a failure then locks again until the second one expires. */
    auth_throttle_failed(t, "alice", "10.0.0.1", NOW + AUTH_THROTTLE_WINDOW_S);
    ck_assert_int_eq(auth_throttle_check(t, "alice", "10.0.0.1",
                                         NOW + AUTH_THROTTLE_WINDOW_S, &retry),
                     BERTH_ETHROTTLE);
    ck_assert_int_eq(retry, 1);
    /* Clock set back: never more than a window. */
    ck_assert_int_eq(auth_throttle_check(t, "alice", NULL, NOW - 3600, &retry),
                     BERTH_ETHROTTLE);
    ck_assert_int_eq(retry, AUTH_THROTTLE_WINDOW_S);
    /* Well after: free again. */
    ck_assert_int_eq(auth_throttle_check(t, "alice", "10.0.0.1", NOW + 3600,
                                         &retry),
                     0);
    ck_assert_int_eq(auth_throttle_check(t, NULL, NULL, NOW, NULL), 0);
    ck_assert_int_eq(auth_throttle_check(NULL, "a", "b", NOW, &retry),
                     BERTH_EINVAL);
    auth_throttle_free(t);
    auth_throttle_free(NULL);
}
END_TEST

START_TEST(throttle_success_resets_user)
{
    auth_throttle *t = auth_throttle_new();
    int retry;
    int i;

    for (i = 0; i < AUTH_THROTTLE_FAILS - 1; i++)
        auth_throttle_failed(t, "carol", "10.0.0.3", NOW);
    auth_throttle_succeeded(t, "Carol", "10.0.0.3");
    for (i = 0; i < AUTH_THROTTLE_FAILS - 1; i++)
        auth_throttle_failed(t, "carol", "10.0.0.3", NOW + 1);
    ck_assert_int_eq(auth_throttle_check(t, "carol", "10.0.0.3", NOW + 1,
                                         &retry),
                     0);
    auth_throttle_failed(t, "carol", "10.0.0.3", NOW + 1);
    ck_assert_int_eq(auth_throttle_check(t, "carol", NULL, NOW + 1, &retry),
                     BERTH_ETHROTTLE);
    ck_assert_int_eq(retry, AUTH_THROTTLE_WINDOW_S);
    auth_throttle_succeeded(t, "carol", NULL);
    ck_assert_int_eq(auth_throttle_check(t, "carol", NULL, NOW + 1, &retry),
                     0);
    auth_throttle_succeeded(t, "nobody", NULL);
    auth_throttle_succeeded(t, NULL, "10.0.0.3");

    /* The address keeps its count: 2 * 4 + 1 = 9 failures so far. */
    for (i = 0; i < AUTH_THROTTLE_IP_FAILS - 9; i++)
        auth_throttle_failed(t, "dave", "10.0.0.3", NOW + 2);
    ck_assert_int_eq(auth_throttle_check(t, NULL, "10.0.0.3", NOW + 2, &retry),
                     BERTH_ETHROTTLE);
    auth_throttle_free(t);
}
END_TEST

START_TEST(throttle_ip)
{
    auth_throttle *t = auth_throttle_new();
    char name[32];
    int retry;
    int i;

    /* One failure each for many users from one address. */
    for (i = 0; i < AUTH_THROTTLE_IP_FAILS; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        ck_assert_int_eq(auth_throttle_check(t, name, "192.0.2.7", NOW + i,
                                             &retry),
                         0);
        auth_throttle_failed(t, name, "192.0.2.7", NOW + i);
    }
    ck_assert_int_eq(auth_throttle_check(t, "newcomer", "192.0.2.7",
                                         NOW + AUTH_THROTTLE_IP_FAILS, &retry),
                     BERTH_ETHROTTLE);
    ck_assert_int_eq(retry, AUTH_THROTTLE_WINDOW_S - AUTH_THROTTLE_IP_FAILS);
    /* IPv4-mapped IPv6 is the same address. */
    ck_assert_int_eq(auth_throttle_check(t, NULL, "::ffff:192.0.2.7",
                                         NOW + AUTH_THROTTLE_IP_FAILS, &retry),
                     BERTH_ETHROTTLE);
    /* Those users, from elsewhere, are fine. */
    ck_assert_int_eq(auth_throttle_check(t, "user0", "192.0.2.8",
                                         NOW + AUTH_THROTTLE_IP_FAILS, &retry),
                     0);

    /* An IPv6 address counts as its /64. */
    for (i = 0; i < AUTH_THROTTLE_IP_FAILS; i++) {
        snprintf(name, sizeof(name), "2001:db8:0:1::%x", i + 1);
        auth_throttle_failed(t, NULL, name, NOW);
    }
    ck_assert_int_eq(auth_throttle_check(t, NULL, "2001:DB8:0:1:ffff::9", NOW,
                                         &retry),
                     BERTH_ETHROTTLE);
    ck_assert_int_eq(auth_throttle_check(t, NULL, "2001:db8:0:2::1", NOW,
                                         &retry),
                     0);
    /* Text that is not an address still counts. */
    for (i = 0; i < AUTH_THROTTLE_IP_FAILS; i++)
        auth_throttle_failed(t, NULL, "unix:/run/panel.sock", NOW);
    ck_assert_int_eq(auth_throttle_check(t, NULL, "unix:/run/panel.sock", NOW,
                                         &retry),
                     BERTH_ETHROTTLE);
    auth_throttle_free(t);
}
END_TEST

START_TEST(throttle_memory_is_capped)
{
    auth_throttle *t = auth_throttle_new();
    unsigned char key[THROTTLE_KEY_BYTES];
    char name[32];
    int retry;
    int i;

    for (i = 0; i < AUTH_THROTTLE_FAILS; i++)
        auth_throttle_failed(t, "victim", "10.1.0.1", NOW);
    ck_assert_int_eq(auth_throttle_check(t, "victim", NULL, NOW, &retry),
                     BERTH_ETHROTTLE);
    /* Twice the table's size in other names, all failing later. */
    for (i = 0; i < 2 * THROTTLE_ENTRIES; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        snprintf(name + 16, 16, "10.2.%d.%d", i / 256 % 256, i % 256);
        auth_throttle_failed(t, name, name + 16, NOW + 1);
    }
    ck_assert_int_eq(t->users.used, THROTTLE_ENTRIES);
    ck_assert_int_eq(t->ips.used, THROTTLE_ENTRIES);
    /* The least recently failed entries went first... */
    ck_assert_int_eq(auth_throttle_check(t, "victim", NULL, NOW, &retry), 0);
    key_user(t, "u0", key);
    ck_assert_int_eq(table_find(&t->users, key), THROTTLE_NONE);
    /* ...and the latest are all still there, chains intact. */
    for (i = THROTTLE_ENTRIES; i < 2 * THROTTLE_ENTRIES; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        key_user(t, name, key);
        ck_assert_int_ne(table_find(&t->users, key), THROTTLE_NONE);
    }
    auth_throttle_free(t);
}
END_TEST

/* Many threads failing and checking at once; run under ASan this catches
 * unsynchronised table updates that corrupt the chains. */
struct hammer {
    auth_throttle *t;
    int id;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    char name[32];
    char ip[32];
    int retry;
    int i;

    for (i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "t%d-%d", h->id, i % 700);
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", h->id, i / 256 % 4, i % 256);
        (void)auth_throttle_check(h->t, name, ip, NOW + i / 100, &retry);
        auth_throttle_failed(h->t, name, ip, NOW + i / 100);
        if (i % 7 == 0)
            auth_throttle_succeeded(h->t, name, ip);
    }
    return NULL;
}

START_TEST(throttle_threads)
{
    enum { N = 8 };
    struct hammer h[N];
    pthread_t th[N];
    int32_t i, count;

    h[0].t = auth_throttle_new();
    for (i = 0; i < N; i++) {
        h[i].t = h[0].t;
        h[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    for (i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    /* The recency list holds every entry once. */
    count = 0;
    for (i = h[0].t->users.oldest; i != THROTTLE_NONE;
         i = h[0].t->users.entries[i].newer)
        count++;
    ck_assert_int_eq(count, h[0].t->users.used);
    ck_assert_int_eq(h[0].t->users.used, THROTTLE_ENTRIES);
    auth_throttle_free(h[0].t);
}
END_TEST

/* ----------------------------------------------------------- permissions */

START_TEST(perm_parse)
{
    char longname[AUTH_PERM_NAME_MAX + 2];

    ck_assert_uint_eq(auth_perm_parse("user.read"), PERM_USER_READ);
    ck_assert_uint_eq(auth_perm_parse("site.console.write"),
                      PERM_SITE_CONSOLE_WRITE);
    ck_assert_uint_eq(auth_perm_parse("audit.read"), PERM_AUDIT_READ);
    ck_assert_uint_eq(auth_perm_parse("*"), PERM_ALL);
    ck_assert_uint_eq(auth_perm_parse("role.*"),
                      PERM_ROLE_READ | PERM_ROLE_CREATE | PERM_ROLE_UPDATE |
                          PERM_ROLE_DELETE);
    ck_assert_uint_eq(auth_perm_parse("user.*"),
                      PERM_USER_READ | PERM_USER_CREATE | PERM_USER_UPDATE |
                          PERM_USER_DELETE);
    ck_assert_uint_eq(auth_perm_parse("node.*"),
                      PERM_NODE_READ | PERM_NODE_MANAGE);
    ck_assert_uint_eq(auth_perm_parse("audit.*"), PERM_AUDIT_READ);
    ck_assert_uint_eq(auth_perm_parse("site.*"),
                      PERM_SITE_SCOPED | PERM_SITE_CREATE);
    ck_assert_uint_eq(auth_perm_parse("site.console.*"),
                      PERM_SITE_CONSOLE_READ | PERM_SITE_CONSOLE_WRITE);
    ck_assert_uint_eq(auth_perm_parse("site.files.*"),
                      PERM_SITE_FILES_READ | PERM_SITE_FILES_WRITE);
    ck_assert_uint_eq(auth_perm_parse("role.*") | auth_perm_parse("user.*") |
                          auth_perm_parse("site.*") |
                          auth_perm_parse("node.*") |
                          auth_perm_parse("audit.*"),
                      PERM_ALL);

    /* Unknown, partial, misplaced wildcards, wrong case, too long. */
    ck_assert_uint_eq(auth_perm_parse("site"), 0);
    ck_assert_uint_eq(auth_perm_parse("site."), 0);
    ck_assert_uint_eq(auth_perm_parse("site.rea"), 0);
    ck_assert_uint_eq(auth_perm_parse("site.read.*"), 0);
    ck_assert_uint_eq(auth_perm_parse("site.re*"), 0);
    ck_assert_uint_eq(auth_perm_parse("si*"), 0);
    ck_assert_uint_eq(auth_perm_parse("sit.*"), 0);
    ck_assert_uint_eq(auth_perm_parse("*.read"), 0);
    ck_assert_uint_eq(auth_perm_parse("*.*"), 0);
    ck_assert_uint_eq(auth_perm_parse(".*"), 0);
    ck_assert_uint_eq(auth_perm_parse("**"), 0);
    ck_assert_uint_eq(auth_perm_parse("Site.Read"), 0);
    ck_assert_uint_eq(auth_perm_parse("site.read "), 0);
    ck_assert_uint_eq(auth_perm_parse(""), 0);
    ck_assert_uint_eq(auth_perm_parse(NULL), 0);
    memset(longname, 'a', sizeof(longname));
    memcpy(longname, "site.", 5);
    longname[AUTH_PERM_NAME_MAX - 1] = '*';
    longname[AUTH_PERM_NAME_MAX - 2] = '.';
    longname[AUTH_PERM_NAME_MAX] = '\0';
    ck_assert_uint_eq(auth_perm_parse(longname), 0); /* 64: unknown prefix */
    longname[AUTH_PERM_NAME_MAX] = 'x';
    longname[AUTH_PERM_NAME_MAX + 1] = '\0';
    ck_assert_uint_eq(auth_perm_parse(longname), 0);
}
END_TEST

START_TEST(perm_names)
{
    const char *names[AUTH_PERM_COUNT + 4];
    uint32_t back = 0;
    int n, i;

    n = auth_perm_names(PERM_ALL, names, AUTH_PERM_COUNT + 4);
    ck_assert_int_eq(n, AUTH_PERM_COUNT);
    ck_assert_str_eq(names[0], "user.read");
    ck_assert_str_eq(names[n - 1], "audit.read");
    for (i = 0; i < n; i++) {
        ck_assert_uint_eq(auth_perm_parse(names[i]), 1u << i);
        back |= auth_perm_parse(names[i]);
    }
    ck_assert_uint_eq(back, PERM_ALL);

    n = auth_perm_names(auth_perm_parse("site.console.*") | PERM_NODE_READ,
                        names, 8);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(names[0], "node.read");
    ck_assert_str_eq(names[1], "site.console.read");
    ck_assert_str_eq(names[2], "site.console.write");

    /* At most max; bits beyond the table are ignored. */
    ck_assert_int_eq(auth_perm_names(PERM_ALL, names, 2), 2);
    ck_assert_str_eq(names[1], "user.create");
    ck_assert_int_eq(auth_perm_names(PERM_ALL, names, 0), 0);
    ck_assert_int_eq(auth_perm_names(PERM_ALL, names, -1), 0);
    ck_assert_int_eq(auth_perm_names(PERM_ALL, NULL, 5), 0);
    ck_assert_int_eq(auth_perm_names(0, names, 5), 0);
    ck_assert_int_eq(auth_perm_names(0x80000000u, names, 5), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *keys = tcase_create("keys");
    TCase *pw = tcase_create("passwords");
    TCase *tok = tcase_create("tokens");
    TCase *thr = tcase_create("throttle");
    TCase *perm = tcase_create("permissions");

    tcase_add_checked_fixture(keys, make_tmpdir, remove_tmpdir);
    tcase_add_test(keys, keys_created_and_reloaded);
    tcase_add_test(keys, keys_refused_when_readable);
    tcase_add_test(keys, keys_refused_when_corrupt);
    suite_add_tcase(s, keys);

    tcase_set_timeout(pw, 30);
    tcase_add_test(pw, passwords);
    tcase_add_test(pw, password_dummy);
    suite_add_tcase(s, pw);

    tcase_add_checked_fixture(tok, make_tmpdir, remove_tmpdir);
    tcase_add_test(tok, access_tokens);
    tcase_add_test(tok, access_wrong_claims);
    tcase_add_test(tok, refresh_tokens);
    suite_add_tcase(s, tok);

    tcase_set_timeout(thr, 30);
    tcase_add_test(thr, throttle_user);
    tcase_add_test(thr, throttle_success_resets_user);
    tcase_add_test(thr, throttle_ip);
    tcase_add_test(thr, throttle_memory_is_capped);
    tcase_add_test(thr, throttle_threads);
    suite_add_tcase(s, thr);

    tcase_add_test(perm, perm_parse);
    tcase_add_test(perm, perm_names);
    suite_add_tcase(s, perm);
    return s;
}

UNIT_MAIN(make_suite)
