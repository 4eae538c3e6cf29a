/* token.c - tests of compact signed tokens (common/token.c).
 *
 * Tokens with bad claims are built by hand here (the signing functions
 * refuse such claims), signed with libsodium directly, which also pins the
 * wire format: the signature covers the base64url text of the claims.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/token.h"
#include "tests/harness/unit.h"

#define NOW 1700000000

static unsigned char hkey[TOKEN_HMAC_KEY_BYTES];
static unsigned char pk[TOKEN_ED25519_PK_BYTES];
static unsigned char sk[TOKEN_ED25519_SK_BYTES];

static void setup(void)
{
    ck_assert_int_eq(token_crypto_init(), 0);
    randombytes_buf(hkey, sizeof(hkey));
    crypto_sign_keypair(pk, sk);
}

static json_t *claims_exp(int64_t exp)
{
    json_t *c =
        json_pack("{s:s, s:I}", "sub", "someone", "exp", (json_int_t)exp);

    ck_assert_ptr_nonnull(c);
    return c;
}

/* A token over any claims text, HMAC-signed. Caller frees. */
static char *forge_hmac(const char *json, const unsigned char *key)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char *body = token_b64url_encode(json, strlen(json));
    char *sig;
    char *tok;

    ck_assert_ptr_nonnull(body);
    crypto_auth_hmacsha256(mac, (const unsigned char *)body, strlen(body), key);
    sig = token_b64url_encode(mac, sizeof(mac));
    ck_assert_ptr_nonnull(sig);
    tok = malloc(strlen(body) + strlen(sig) + 2);
    ck_assert_ptr_nonnull(tok);
    strcpy(tok, body);
    strcat(tok, ".");
    strcat(tok, sig);
    free(body);
    free(sig);
    return tok;
}

static int verify_hmac(const char *tok)
{
    json_t *c = (json_t *)1;
    int rc = token_verify_hmac(tok, hkey, NOW, &c);

    if (rc != 0)
        ck_assert_ptr_null(c);
    json_decref(c);
    return rc;
}

START_TEST(b64url_vectors)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba",
                                        "foobar"};
    static const char *const enc[] = {"",      "Zg",      "Zm8",     "Zm9v",
                                      "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    static const unsigned char urlsafe[] = {0xfb, 0xff, 0xbf};
    unsigned char out[16];
    size_t i;
    char *s;

    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        s = token_b64url_encode(plain[i], strlen(plain[i]));
        ck_assert_str_eq(s, enc[i]);
        free(s);
        ck_assert_int_eq(token_b64url_decode(enc[i], strlen(enc[i]), out,
                                             sizeof(out)),
                         (long)strlen(plain[i]));
        ck_assert_int_eq(memcmp(out, plain[i], strlen(plain[i])), 0);
    }
    s = token_b64url_encode(urlsafe, sizeof(urlsafe));
    ck_assert_str_eq(s, "-_-_");
    free(s);
    ck_assert_int_eq(token_b64url_decode("-_-_", 4, out, sizeof(out)), 3);
    ck_assert_int_eq(memcmp(out, urlsafe, 3), 0);

    /* Standard alphabet, padding, 4k+1 lengths and stray bits are refused. */
    ck_assert_int_eq(token_b64url_decode("+/+/", 4, out, sizeof(out)), -1);
    ck_assert_int_eq(token_b64url_decode("Zg==", 4, out, sizeof(out)), -1);
    ck_assert_int_eq(token_b64url_decode("Zm9vY", 5, out, sizeof(out)), -1);
    ck_assert_int_eq(token_b64url_decode("Zh", 2, out, sizeof(out)), -1);
    ck_assert_int_eq(token_b64url_decode("Zm9", 3, out, sizeof(out)), -1);
    ck_assert_int_eq(token_b64url_decode("Zm 9v", 5, out, sizeof(out)), -1);
    /* The output cap holds. */
    ck_assert_int_eq(token_b64url_decode("Zm9vYmFy", 8, out, 5), -1);
    ck_assert_int_eq(token_b64url_decode("Zm9vYmFy", 8, out, 6), 6);
    ck_assert_int_eq(token_b64url_decode(NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(token_b64url_decode(NULL, 4, out, sizeof(out)), -1);
    ck_assert_ptr_null(token_b64url_encode(NULL, 3));
}
END_TEST

START_TEST(round_trip_hmac)
{
    json_t *in = claims_exp(NOW + 60);
    json_t *out = NULL;
    char *tok = NULL;

    ck_assert_int_eq(token_sign_hmac(in, hkey, &tok), 0);
    ck_assert_ptr_nonnull(strchr(tok, '.'));
    ck_assert_uint_eq(strlen(strchr(tok, '.') + 1), 43);
    ck_assert_int_eq(token_verify_hmac(tok, hkey, NOW, &out), 0);
    ck_assert_int_eq(json_equal(in, out), 1);
    /* Verifying without asking for the claims. */
    ck_assert_int_eq(token_verify_hmac(tok, hkey, NOW, NULL), 0);
    /* One second before expiry it holds, at expiry it does not. */
    ck_assert_int_eq(token_verify_hmac(tok, hkey, NOW + 59, NULL), 0);
    ck_assert_int_eq(token_verify_hmac(tok, hkey, NOW + 60, NULL),
                     BERTH_ETIMEDOUT);
    /* The other scheme does not accept it. */
    ck_assert_int_eq(token_verify_ed25519(tok, pk, NOW, NULL), BERTH_EAUTH);
    json_decref(out);
    json_decref(in);
    free(tok);
}
END_TEST

START_TEST(round_trip_ed25519)
{
    json_t *in = claims_exp(NOW + 600);
    json_t *out = NULL;
    unsigned char pk2[TOKEN_ED25519_PK_BYTES], sk2[TOKEN_ED25519_SK_BYTES];
    char *tok = NULL;

    json_object_set_new(in, "perms", json_pack("[s,s]", "site.read", "x"));
    ck_assert_int_eq(token_sign_ed25519(in, sk, &tok), 0);
    ck_assert_uint_eq(strlen(strchr(tok, '.') + 1), 86);
    ck_assert_int_eq(token_verify_ed25519(tok, pk, NOW, &out), 0);
    ck_assert_int_eq(json_equal(in, out), 1);
    json_decref(out);
    out = (json_t *)1;
    ck_assert_int_eq(token_verify_ed25519(tok, pk, NOW + 600, &out),
                     BERTH_ETIMEDOUT);
    ck_assert_ptr_null(out);
    /* Another key pair. */
    crypto_sign_keypair(pk2, sk2);
    ck_assert_int_eq(token_verify_ed25519(tok, pk2, NOW, NULL), BERTH_EAUTH);
    json_decref(in);
    free(tok);
}
END_TEST

START_TEST(sign_refuses)
{
    unsigned char hkey2[TOKEN_HMAC_KEY_BYTES];
    json_t *noexp = json_pack("{s:s}", "sub", "x");
    json_t *realexp = json_pack("{s:f}", "exp", 1e12);
    json_t *arr = json_array();
    json_t *big = claims_exp(NOW + 60);
    json_t *small = claims_exp(NOW + 5);
    char *pad = malloc(TOKEN_MAX);
    char *tok = (char *)1;

    ck_assert_int_eq(token_sign_hmac(noexp, hkey, &tok), BERTH_EINVAL);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(token_sign_hmac(realexp, hkey, &tok), BERTH_EINVAL);
    ck_assert_int_eq(token_sign_hmac(arr, hkey, &tok), BERTH_EINVAL);
    ck_assert_int_eq(token_sign_hmac(NULL, hkey, &tok), BERTH_EINVAL);
    ck_assert_int_eq(token_sign_ed25519(noexp, sk, &tok), BERTH_EINVAL);
    ck_assert_int_eq(token_sign_hmac(big, NULL, &tok), BERTH_EINVAL);
    ck_assert_int_eq(token_sign_hmac(big, hkey, NULL), BERTH_EINVAL);
    /* Claims that would make a token past TOKEN_MAX. */
    memset(pad, 'a', TOKEN_MAX - 1);
    pad[TOKEN_MAX - 1] = '\0';
    json_object_set_new(big, "pad", json_string(pad));
    ck_assert_int_eq(token_sign_hmac(big, hkey, &tok), BERTH_ETOOBIG);
    ck_assert_ptr_null(tok);
    /* A different key verifies nothing. */
    ck_assert_int_eq(token_sign_hmac(small, hkey, &tok), 0);
    memcpy(hkey2, hkey, sizeof(hkey2));
    hkey2[0] ^= 1;
    ck_assert_int_eq(token_verify_hmac(tok, hkey2, NOW, NULL), BERTH_EAUTH);
    ck_assert_int_eq(token_verify_hmac(tok, NULL, NOW, NULL), BERTH_EINVAL);
    free(tok);
    free(pad);
    json_decref(noexp);
    json_decref(realexp);
    json_decref(arr);
    json_decref(big);
    json_decref(small);
}
END_TEST

START_TEST(tampering)
{
    json_t *in = claims_exp(NOW + 60);
    char *tok = NULL;
    char *t;
    char *dot;
    size_t len;

    ck_assert_int_eq(token_sign_hmac(in, hkey, &tok), 0);
    len = strlen(tok);
    dot = strchr(tok, '.');
    t = malloc(len + 8);

    /* Every single-character change anywhere is refused. */
    for (size_t i = 0; i < len; i++) {
        strcpy(t, tok);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    }
    /* Claims swapped for others (signature kept). */
    {
        char *other = NULL;
        json_t *c2 = claims_exp(NOW + 3600);
        ck_assert_int_eq(token_sign_hmac(c2, hkey, &other), 0);
        strcpy(t, other);
        strcpy(strchr(t, '.'), dot);
        ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
        free(other);
        json_decref(c2);
    }
    /* Truncated: signature one short, claims one short, no signature. */
    strcpy(t, tok);
    t[len - 1] = '\0';
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    strcpy(t, tok + 1);
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    strcpy(t, tok);
    t[dot - tok + 1] = '\0';
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    strcpy(t, tok);
    t[dot - tok] = '\0';
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    ck_assert_int_eq(verify_hmac(dot), BERTH_EAUTH);
    /* Two dots: at the end, inside the signature, inside the claims. */
    strcpy(t, tok);
    strcat(t, ".");
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    strcpy(t, tok);
    t[len - 3] = '.';
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    strcpy(t, tok);
    t[2] = '.';
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    /* Padding, on either part. */
    strcpy(t, tok);
    strcat(t, "=");
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    sprintf(t, "%.*s=%s", (int)(dot - tok), tok, dot);
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    /* Trailing and leading whitespace. */
    sprintf(t, "%s\n", tok);
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    sprintf(t, " %s", tok);
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    /* The original still verifies. */
    ck_assert_int_eq(verify_hmac(tok), 0);
    free(t);
    free(tok);
    json_decref(in);
}
END_TEST

START_TEST(non_base64url)
{
    /* A valid signature over text that is not base64url: the verifier must
     * check the alphabet, not trust the signer. */
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    static const char *const bodies[] = {"eyJ+ZXhwIjo5", "eyJ/ZXhwIjo5",
                                         "eyJleHAiOjk5OTk5OTk5OTl9==",
                                         "eyJleHAiOjk5OTk5OTk5OTl9\x80"};
    char t[256];
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char *sig;
        crypto_auth_hmacsha256(mac, (const unsigned char *)bodies[i],
                               strlen(bodies[i]), hkey);
        sig = token_b64url_encode(mac, sizeof(mac));
        snprintf(t, sizeof(t), "%s.%s", bodies[i], sig);
        ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
        free(sig);
    }
}
END_TEST

START_TEST(bad_claims)
{
    static const char *const bad[] = {
        "[1,2]",                            /* not an object */
        "\"exp\"",                          /* a string */
        "42",                               /* a number */
        "null",                             /* null */
        "",                                 /* nothing */
        "{\"sub\":\"x\"}",                  /* no exp */
        "{\"exp\":\"9999999999\"}",         /* exp a string */
        "{\"exp\":9999999999.0}",           /* exp a real */
        "{\"exp\":true}",                   /* exp a boolean */
        "{\"exp\":null}",                   /* exp null */
        "{\"exp\":9999999999",              /* truncated JSON */
        "{\"exp\":9999999999}x",            /* trailing garbage */
        "{\"exp\":1,\"exp\":9999999999}",   /* duplicate keys */
        "{\"exp\":99999999999999999999999}", /* does not fit */
    };
    size_t i;
    char *t;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = forge_hmac(bad[i], hkey);
        ck_assert_msg(verify_hmac(t) == BERTH_EAUTH, "accepted %s", bad[i]);
        free(t);
    }
    /* The hand-built path itself is sound: a good object verifies, and
     * expiry is judged only after the signature. */
    t = forge_hmac("{\"exp\":1700000001,\"n\":[{}]}", hkey);
    ck_assert_int_eq(verify_hmac(t), 0);
    free(t);
    t = forge_hmac("{\"exp\":1700000000}", hkey);
    ck_assert_int_eq(verify_hmac(t), BERTH_ETIMEDOUT);
    free(t);
    t = forge_hmac("{\"exp\":-5}", hkey);
    ck_assert_int_eq(verify_hmac(t), BERTH_ETIMEDOUT);
    free(t);
    t = forge_hmac("{\"exp\":1700000000}", pk); /* wrong key: not expired */
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    free(t);
}
END_TEST

START_TEST(sizes_and_nulls)
{
    char *huge = malloc(TOKEN_MAX + 2);
    char *big_json = malloc(TOKEN_MAX);
    json_t *c = (json_t *)1;
    char *t;
    size_t n;

    /* Longer than TOKEN_MAX, validly signed: refused before anything. */
    n = TOKEN_MAX / 4 * 3;
    memset(big_json, ' ', TOKEN_MAX);
    memcpy(big_json, "{\"exp\":9999999999", 17);
    strcpy(big_json + n, "}");
    t = forge_hmac(big_json, hkey);
    ck_assert_uint_gt(strlen(t), TOKEN_MAX);
    ck_assert_int_eq(verify_hmac(t), BERTH_EAUTH);
    free(t);
    /* Just under the limit is fine. */
    strcpy(big_json + n - 60, "}");
    t = forge_hmac(big_json, hkey);
    ck_assert_uint_le(strlen(t), TOKEN_MAX);
    ck_assert_int_eq(verify_hmac(t), 0);
    free(t);
    /* A long run of characters without a terminator close by. */
    memset(huge, 'A', TOKEN_MAX + 1);
    huge[TOKEN_MAX + 1] = '\0';
    ck_assert_int_eq(verify_hmac(huge), BERTH_EAUTH);

    ck_assert_int_eq(verify_hmac(""), BERTH_EAUTH);
    ck_assert_int_eq(verify_hmac("."), BERTH_EAUTH);
    ck_assert_int_eq(verify_hmac(".."), BERTH_EAUTH);
    ck_assert_int_eq(token_verify_hmac(NULL, hkey, NOW, &c), BERTH_EAUTH);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(token_verify_ed25519(NULL, pk, NOW, NULL), BERTH_EAUTH);
    ck_assert_int_eq(token_verify_ed25519("", pk, NOW, NULL), BERTH_EAUTH);
    ck_assert_int_eq(token_verify_ed25519("x.y", NULL, NOW, NULL),
                     BERTH_EINVAL);
    free(huge);
    free(big_json);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("token");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, b64url_vectors);
    tcase_add_test(tc, round_trip_hmac);
    tcase_add_test(tc, round_trip_ed25519);
    tcase_add_test(tc, sign_refuses);
    tcase_add_test(tc, tampering);
    tcase_add_test(tc, non_base64url);
    tcase_add_test(tc, bad_claims);
    tcase_add_test(tc, sizes_and_nulls);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
