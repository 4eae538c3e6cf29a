/* acme_int.h - what acme.c uses from acme_crypto.c; not for other modules.
 *
 * Every function returns 0 or a berth code; OpenSSL failures are logged
 * once and become BERTH_EINTERNAL.
 */
#ifndef BERTH_EDGE_ACME_INT_H
#define BERTH_EDGE_ACME_INT_H

#include <openssl/evp.h>
#include <stddef.h>

#include "svc-edge/acme.h"

/* A new P-256 key in *out (caller frees with EVP_PKEY_free). */
int acme_key_generate(EVP_PKEY **out);

/* The key as unencrypted PKCS#8 PEM in *out (caller frees). */
int acme_key_to_pem(EVP_PKEY *k, char **out);

/* Loads the account key from path, creating it 0600 when missing.
 * BERTH_EPERM for a file others may read, BERTH_EPROTO for one that does
 * not hold a P-256 key. */
int acme_key_load(const char *path, EVP_PKEY **out);

/* The base64url x and y coordinates (43 characters each) of k's public
 * key, written into x and y of size bytes. */
int acme_jwk_coords(EVP_PKEY *k, char *x, char *y, size_t size);

/* The RFC 7638 thumbprint of the P-256 JWK (x, y), base64url, into out. */
int acme_jwk_thumbprint(const char *x, const char *y, char *out, size_t size);

/* Signs data with ES256; *out is the base64url of r||s (caller frees). */
int acme_es256_sign(EVP_PKEY *k, const char *data, size_t len, char **out);

/* A CSR for domain signed by k (CN and one DNS subjectAltName); its DER in
 * *der (caller frees with OPENSSL_free) and *len. BERTH_EINVAL for a name
 * edge_acme_domain_valid() refuses. */
int acme_csr_build(const char *domain, EVP_PKEY *k, unsigned char **der,
                   int *len);

#endif
