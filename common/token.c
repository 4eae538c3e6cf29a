/* token.c - compact signed tokens: base64url(JSON claims) "." base64url(sig).
 *
 * The signature covers the base64url text of the claims part exactly as it
 * appears in the token, so a verifier never re-encodes anything. Parsing is
 * strict on purpose: one token has one spelling (no padding, no other
 * characters, zero trailing bits, exact signature length), which keeps
 * tokens usable as cache keys and leaves a forger nothing to play with.
 * Nothing is decoded before the signature has been checked.
 *
 * The two signature schemes share every line but the sign and verify calls,
 * so each is a row of token_algs.
 */
#include "token.h"

#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* A signature scheme: its signature size and the two libsodium calls. */
typedef struct token_alg {
    size_t sig_bytes;
    size_t sig_chars; /* base64url length of the signature */
    int (*sign)(unsigned char *sig, const char *msg, size_t len,
                const unsigned char *key);
    int (*verify)(const unsigned char *sig, const char *msg, size_t len,
                  const unsigned char *key);
} token_alg;

#define B64_CHARS(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
#define SIG_MAX crypto_sign_BYTES
#define CLAIMS_MAX (TOKEN_MAX / 4 * 3 + 2)

static int ed25519_sign(unsigned char *sig, const char *msg, size_t len,
                        const unsigned char *key);
static int ed25519_verify(const unsigned char *sig, const char *msg,
                          size_t len, const unsigned char *key);
static int hmac_sign(unsigned char *sig, const char *msg, size_t len,
                     const unsigned char *key);
static int hmac_verify(const unsigned char *sig, const char *msg, size_t len,
                       const unsigned char *key);

static const token_alg alg_ed25519 = {
    crypto_sign_BYTES,
    B64_CHARS(crypto_sign_BYTES),
    ed25519_sign,
    ed25519_verify,
};

static const token_alg alg_hmac = {
    crypto_auth_hmacsha256_BYTES,
    B64_CHARS(crypto_auth_hmacsha256_BYTES),
    hmac_sign,
    hmac_verify,
};

_Static_assert(TOKEN_ED25519_PK_BYTES == crypto_sign_PUBLICKEYBYTES,
               "Ed25519 public key size");
_Static_assert(TOKEN_ED25519_SK_BYTES == crypto_sign_SECRETKEYBYTES,
               "Ed25519 secret key size");
_Static_assert(TOKEN_HMAC_KEY_BYTES == crypto_auth_hmacsha256_KEYBYTES,
               "HMAC-SHA256 key size");

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int crypto_rc;

static void crypto_init_once(void)
{
    crypto_rc = sodium_init() < 0 ? BERTH_EINTERNAL : 0;
}

int token_crypto_init(void)
{
    pthread_once(&crypto_once, crypto_init_once);
    return crypto_rc;
}

static int ed25519_sign(unsigned char *sig, const char *msg, size_t len,
                        const unsigned char *key)
{
    return crypto_sign_detached(sig, NULL, (const unsigned char *)msg, len,
                                key);
}

static int ed25519_verify(const unsigned char *sig, const char *msg,
                          size_t len, const unsigned char *key)
{
    return crypto_sign_verify_detached(sig, (const unsigned char *)msg, len,
                                       key);
}

static int hmac_sign(unsigned char *sig, const char *msg, size_t len,
                     const unsigned char *key)
{
    return crypto_auth_hmacsha256(sig, (const unsigned char *)msg, len, key);
}

/* Constant time in the signature (libsodium compares with
 * crypto_verify_32). */
static int hmac_verify(const unsigned char *sig, const char *msg, size_t len,
                       const unsigned char *key)
{
    return crypto_auth_hmacsha256_verify(sig, (const unsigned char *)msg, len,
                                         key);
}

/* The 6-bit value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

char *token_b64url_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out;
    size_t i, o = 0;

    if (data == NULL && len > 0)
        return NULL;
    if (len > (SIZE_MAX - 4) / 4 * 3)
        return NULL;
    out = malloc(B64_CHARS(len) + 1);
    if (out == NULL)
        return NULL;
    for (i = 0; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

/* Strict: only the 64 URL-safe characters, no padding, no length of the
 * form 4k+1, and the unused low bits of the last character must be zero so
 * that every byte string has exactly one encoding. */
long token_b64url_decode(const char *s, size_t len, unsigned char *out,
                         size_t outlen)
{
    uint32_t acc = 0;
    size_t need, i, o = 0;
    int bits = 0;

    if (s == NULL && len > 0)
        return -1;
    if (len % 4 == 1 || len > (size_t)LONG_MAX)
        return -1;
    need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > outlen)
        return -1;
    for (i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    return (long)o;
}

/* Serialises claims compactly, encodes them, signs the encoded text and
 * joins the parts. Refuses claims without an integer "exp" (they could never
 * verify) with BERTH_EINVAL and tokens past TOKEN_MAX with BERTH_ETOOBIG. */
static int token_sign(const token_alg *alg, const json_t *claims,
                      const unsigned char *key, char **out)
{
    unsigned char sig[SIG_MAX];
    char *json = NULL;
    char *body = NULL;
    char *sig64 = NULL;
    char *token = NULL;
    size_t body_len;
    int rc;

    if (out == NULL)
        return BERTH_EINVAL;
    *out = NULL;
    if (key == NULL || !json_is_object(claims) ||
        !json_is_integer(json_object_get(claims, "exp")))
        return BERTH_EINVAL;
    rc = token_crypto_init();
    if (rc != 0)
        return rc;
    json = json_dumps(claims, JSON_COMPACT);
    if (json == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    body = token_b64url_encode(json, strlen(json));
    if (body == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    body_len = strlen(body);
    if (body_len + 1 + alg->sig_chars > TOKEN_MAX) {
        rc = BERTH_ETOOBIG;
        goto out;
    }
    if (alg->sign(sig, body, body_len, key) != 0) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    sig64 = token_b64url_encode(sig, alg->sig_bytes);
    token = malloc(body_len + 1 + alg->sig_chars + 1);
    if (sig64 == NULL || token == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    memcpy(token, body, body_len);
    token[body_len] = '.';
    memcpy(token + body_len + 1, sig64, alg->sig_chars + 1);
    *out = token;
    token = NULL;
    rc = 0;
out:
    free(token);
    free(sig64);
    free(body);
    free(json);
    return rc;
}

/* Checks shape, then the signature over the claims text, then decodes the
 * claims and checks "exp". Only a signed token is ever parsed as JSON. */
static int token_verify(const token_alg *alg, const char *token,
                        const unsigned char *key, int64_t now, json_t **claims)
{
    unsigned char sig[SIG_MAX];
    unsigned char raw[CLAIMS_MAX];
    json_t *obj = NULL;
    json_t *exp;
    const char *dot;
    size_t len, body_len;
    long n;
    int rc;

    if (claims != NULL)
        *claims = NULL;
    if (key == NULL)
        return BERTH_EINVAL;
    if (token == NULL)
        return BERTH_EAUTH;
    len = strnlen(token, TOKEN_MAX + 1);
    if (len > TOKEN_MAX)
        return BERTH_EAUTH;
    dot = memchr(token, '.', len);
    if (dot == NULL)
        return BERTH_EAUTH;
    body_len = (size_t)(dot - token);
    /* The signature has a fixed length, which also rules out a second dot
     * there; a dot in the body fails the base64url decode below. */
    if (body_len == 0 || len - body_len - 1 != alg->sig_chars)
        return BERTH_EAUTH;
    if (token_b64url_decode(dot + 1, alg->sig_chars, sig, sizeof(sig)) !=
        (long)alg->sig_bytes)
        return BERTH_EAUTH;
    rc = token_crypto_init();
    if (rc != 0)
        return rc;
    rc = BERTH_EAUTH;
    if (alg->verify(sig, token, body_len, key) != 0)
        goto out;
    n = token_b64url_decode(token, body_len, raw, sizeof(raw));
    if (n <= 0)
        goto out;
    obj = json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES,
                     NULL);
    if (!json_is_object(obj))
        goto out;
    exp = json_object_get(obj, "exp");
    if (!json_is_integer(exp))
        goto out;
    if (json_integer_value(exp) <= now) {
        rc = BERTH_ETIMEDOUT;
        goto out;
    }
    if (claims != NULL) {
        *claims = obj;
        obj = NULL;
    }
    rc = 0;
out:
    json_decref(obj);
    return rc;
}

int token_sign_ed25519(const json_t *claims,
                       const unsigned char sk[TOKEN_ED25519_SK_BYTES],
                       char **out)
{
    return token_sign(&alg_ed25519, claims, sk, out);
}

int token_verify_ed25519(const char *token,
                         const unsigned char pk[TOKEN_ED25519_PK_BYTES],
                         int64_t now, json_t **claims)
{
    return token_verify(&alg_ed25519, token, pk, now, claims);
}

int token_sign_hmac(const json_t *claims,
                    const unsigned char key[TOKEN_HMAC_KEY_BYTES], char **out)
{
    return token_sign(&alg_hmac, claims, key, out);
}

int token_verify_hmac(const char *token,
                      const unsigned char key[TOKEN_HMAC_KEY_BYTES],
                      int64_t now, json_t **claims)
{
    return token_verify(&alg_hmac, token, key, now, claims);
}
