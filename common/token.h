/* token.h - compact signed tokens: base64url(JSON claims) "." base64url(sig).
 *
 * Two kinds share the format:
 *  - panel-internal tokens (access tokens) signed with HMAC-SHA256 and a
 *    secret only the panel holds, cheap to verify on every request;
 *  - direct-channel tokens signed with Ed25519 by the panel and verified
 *    offline by daemons with the panel's public key.
 *
 * Claims are a JSON object (jansson). Verification checks the signature
 * first, then "exp" (seconds since the epoch) against the current time,
 * and returns the claims only when both hold.
 */
#ifndef BERTH_COMMON_TOKEN_H
#define BERTH_COMMON_TOKEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_MAX 4096 /* longest token accepted */
#define TOKEN_ED25519_PK_BYTES 32
#define TOKEN_ED25519_SK_BYTES 64
#define TOKEN_HMAC_KEY_BYTES 32

/* Initialises libsodium once per process (thread-safe, idempotent). Every
 * function here calls it; modules that use libsodium directly call it too.
 * Returns 0 or BERTH_EINTERNAL. */
int token_crypto_init(void);

/* Signs claims (not consumed) with the Ed25519 secret key. Returns 0 and a
 * NUL-terminated token in *out (caller frees), BERTH_EINVAL when claims is
 * not an object with an integer "exp", BERTH_ETOOBIG past TOKEN_MAX, or
 * another berth code. */
int token_sign_ed25519(const json_t *claims,
                       const unsigned char sk[TOKEN_ED25519_SK_BYTES],
                       char **out);

/* Verifies token with the public key and its expiry at now (seconds).
 * Returns 0 and the claims in *claims (caller json_decref()s; claims may be
 * NULL to only verify), BERTH_EAUTH for a bad signature or shape (including
 * a NULL token and claims without an integer "exp"), BERTH_ETIMEDOUT when
 * exp <= now. *claims is NULL on every failure. */
int token_verify_ed25519(const char *token,
                         const unsigned char pk[TOKEN_ED25519_PK_BYTES],
                         int64_t now, json_t **claims);

/* The same with HMAC-SHA256 and a shared secret. */
int token_sign_hmac(const json_t *claims,
                    const unsigned char key[TOKEN_HMAC_KEY_BYTES], char **out);
int token_verify_hmac(const char *token,
                      const unsigned char key[TOKEN_HMAC_KEY_BYTES],
                      int64_t now, json_t **claims);

/* base64url without padding. Encode returns a new string (caller frees);
 * decode writes at most outlen bytes and returns the length or -1. */
char *token_b64url_encode(const void *data, size_t len);
long token_b64url_decode(const char *s, size_t len, unsigned char *out,
                         size_t outlen);

#endif
