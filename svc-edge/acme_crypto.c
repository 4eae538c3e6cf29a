/* acme_crypto.c - the ACME client's cryptography and names: the P-256
 * account key file, the JWK and its thumbprint, ES256 signatures in JWS
 * form, the CSR, stored PEM checks and domain names. Nothing here touches
 * the network; acme.c speaks the protocol.
 */
#include "svc-edge/acme_int.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/token.h"

#define ACME_KEY_FILE_MAX 16384 /* cap on the account key file */

/* Logs the OpenSSL error queue's first entry, empties it and returns
 * BERTH_EINTERNAL. */
static int acme_ossl_fail(const char *what)
{
    char detail[256];
    unsigned long e = ERR_get_error();

    ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    log_error("openssl failed", "op=%s error=%s", what, detail);
    return BERTH_EINTERNAL;
}

/* ------------------------------------------------------------ keys */

static int acme_key_is_p256(EVP_PKEY *k)
{
    char group[64];

    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
        return 0;
    if (!EVP_PKEY_get_group_name(k, group, sizeof(group), NULL))
        return 0;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

int acme_key_generate(EVP_PKEY **out)
{
    *out = EVP_EC_gen("P-256");
    if (*out == NULL)
        return acme_ossl_fail("generating a P-256 key");
    return 0;
}

/* Returns the key as unencrypted PKCS#8 PEM in *out (caller frees). */
int acme_key_to_pem(EVP_PKEY *k, char **out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int rc;

    *out = NULL;
    if (bio == NULL)
        return BERTH_ENOMEM;
    if (!PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL)) {
        rc = acme_ossl_fail("writing a key");
        goto out;
    }
    len = BIO_get_mem_data(bio, &data);
    *out = strndup(data, (size_t)len);
    rc = *out != NULL ? 0 : BERTH_ENOMEM;
out:
    BIO_free(bio);
    return rc;
}

/* Loads the account key from path, creating it (0600) when missing. */
int acme_key_load(const char *path, EVP_PKEY **out)
{
    struct stat st;
    char *pem = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    int rc;

    *out = NULL;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return berth_err_from_errno(errno);
        rc = acme_key_generate(out);
        if (rc != 0)
            goto out;
        rc = acme_key_to_pem(*out, &pem);
        if (rc != 0)
            goto out;
        rc = fs_write_atomic(path, pem, strlen(pem), 0600);
        if (rc == 0)
            log_info("acme account key created", "path=%s", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        char mode[8];

        snprintf(mode, sizeof(mode), "%03o", (unsigned)(st.st_mode & 0777));
        log_error("acme account key readable by others", "path=%s mode=%s",
                  path, mode);
        return BERTH_EPERM;
    }
    rc = fs_read_file(path, ACME_KEY_FILE_MAX, &pem, &len);
    if (rc != 0)
        goto out;
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    *out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (*out == NULL || !acme_key_is_p256(*out)) {
        ERR_clear_error();
        log_error("acme account key is not a P-256 key", "path=%s", path);
        rc = BERTH_EPROTO;
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    BIO_free(bio);
    if (pem != NULL)
        OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    return rc;
}

/* Copies the base64url of a 32-byte big-endian coordinate into dst. */
static int acme_b64url_fixed(const unsigned char *data, size_t len, char *dst,
                        size_t size)
{
    char *s = token_b64url_encode(data, len);
    int rc = 0;

    if (s == NULL)
        return BERTH_ENOMEM;
    if (snprintf(dst, size, "%s", s) >= (int)size)
        rc = BERTH_EINTERNAL;
    free(s);
    return rc;
}

/* Writes the base64url x and y coordinates of a P-256 public key. */
int acme_jwk_coords(EVP_PKEY *k, char *x, char *y, size_t size)
{
    BIGNUM *bx = NULL, *by = NULL;
    unsigned char raw[32];
    int rc;

    if (!EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) ||
        !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &by)) {
        rc = acme_ossl_fail("reading the public key");
        goto out;
    }
    if (BN_bn2binpad(bx, raw, sizeof(raw)) != (int)sizeof(raw)) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    rc = acme_b64url_fixed(raw, sizeof(raw), x, size);
    if (rc != 0)
        goto out;
    if (BN_bn2binpad(by, raw, sizeof(raw)) != (int)sizeof(raw)) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    rc = acme_b64url_fixed(raw, sizeof(raw), y, size);
out:
    BN_free(bx);
    BN_free(by);
    return rc;
}

/* The JWK thumbprint (RFC 7638): SHA-256 over the members crv, kty, x, y
 * in that order with no whitespace, base64url-encoded into out. */
int acme_jwk_thumbprint(const char *x, const char *y, char *out, size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char canon[256];
    int n;

    n = snprintf(canon, sizeof(canon),
                 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                 x, y);
    if (n < 0 || n >= (int)sizeof(canon))
        return BERTH_EINVAL;
    if (!EVP_Digest(canon, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
        return acme_ossl_fail("hashing the JWK");
    return acme_b64url_fixed(md, mdlen, out, size);
}

/* Converts a DER ECDSA signature (SEQUENCE of INTEGER r, s) into the JWS
 * form: r and s as 32-byte big-endian numbers, 64 bytes in all. Returns 0 or
 * BERTH_EPROTO when der is not such a signature or a number is too long. */
static int acme_sig_der_to_raw(const unsigned char *der, size_t len,
                          unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *s;
    int rc = BERTH_EPROTO;

    if (sig == NULL || p != der + len) {
        ERR_clear_error();
        goto out;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_num_bytes(r) > 32 || BN_num_bytes(s) > 32)
        goto out;
    if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
        goto out;
    rc = 0;
out:
    ECDSA_SIG_free(sig);
    return rc;
}

/* Signs data with ES256 and returns the base64url of r||s in *out. */
int acme_es256_sign(EVP_PKEY *k, const char *data, size_t len, char **out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[128], raw[64];
    size_t derlen = sizeof(der);
    int rc;

    *out = NULL;
    if (ctx == NULL)
        return BERTH_ENOMEM;
    if (!EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) ||
        !EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)data, len)) {
        rc = acme_ossl_fail("signing");
        goto out;
    }
    rc = acme_sig_der_to_raw(der, derlen, raw);
    if (rc != 0)
        goto out;
    *out = token_b64url_encode(raw, sizeof(raw));
    rc = *out != NULL ? 0 : BERTH_ENOMEM;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Builds a CSR for domain signed by k: subject CN=domain and a
 * subjectAltName with DNS:domain. Returns 0 and its DER in *der (caller
 * frees with OPENSSL_free) and *len. */
int acme_csr_build(const char *domain, EVP_PKEY *k, unsigned char **der,
                     int *len)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *san = NULL;
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    int rc;

    *der = NULL;
    *len = 0;
    if (req == NULL || name == NULL || exts == NULL || names == NULL ||
        gn == NULL || ia5 == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (!edge_acme_domain_valid(domain)) {
        rc = BERTH_EINVAL;
        goto out;
    }
    if (!X509_REQ_set_version(req, 0) ||
        !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                    (const unsigned char *)domain, -1, -1, 0) ||
        !X509_REQ_set_subject_name(req, name) ||
        !X509_REQ_set_pubkey(req, k) ||
        !ASN1_STRING_set(ia5, domain, (int)strlen(domain))) {
        rc = acme_ossl_fail("building the CSR");
        goto out;
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(names, gn)) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    gn = NULL;
    san = X509V3_EXT_i2d(NID_subject_alt_name, 0, names);
    if (san == NULL || !sk_X509_EXTENSION_push(exts, san)) {
        rc = acme_ossl_fail("building the CSR's subjectAltName");
        goto out;
    }
    san = NULL;
    if (!X509_REQ_add_extensions(req, exts) ||
        X509_REQ_sign(req, k, EVP_sha256()) <= 0) {
        rc = acme_ossl_fail("signing the CSR");
        goto out;
    }
    *len = i2d_X509_REQ(req, der);
    if (*len <= 0) {
        *der = NULL;
        rc = acme_ossl_fail("encoding the CSR");
        goto out;
    }
    rc = 0;
out:
    X509_EXTENSION_free(san);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(names);
    GENERAL_NAME_free(gn);
    ASN1_IA5STRING_free(ia5);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return rc;
}

/* Converts an ASN1_TIME into ms since the epoch. */
static int acme_asn1_time_ms(const ASN1_TIME *t, int64_t *ms)
{
    struct tm tm;

    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return BERTH_EPROTO;
    *ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

int edge_acme_pem_check(const char *pem, const char *domain,
                        int64_t *not_before_ms, int64_t *not_after_ms)
{
    BIO *bio = NULL;
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    int64_t nb, na;
    int rc;

    if (pem == NULL || domain == NULL)
        return BERTH_EINVAL;
    /* Each PEM reader skips the blocks of other kinds, so the order of the
     * certificates and the key in the file does not matter. */
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL)
        return BERTH_ENOMEM;
    leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (leaf == NULL || key == NULL) {
        rc = BERTH_EPROTO;
        goto out;
    }
    if (acme_asn1_time_ms(X509_get0_notBefore(leaf), &nb) != 0 ||
        acme_asn1_time_ms(X509_get0_notAfter(leaf), &na) != 0) {
        rc = BERTH_EPROTO;
        goto out;
    }
    if (X509_check_private_key(leaf, key) != 1 ||
        X509_check_host(leaf, domain, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) !=
            1) {
        rc = BERTH_ECONFLICT;
        goto out;
    }
    if (not_before_ms != NULL)
        *not_before_ms = nb;
    if (not_after_ms != NULL)
        *not_after_ms = na;
    rc = 0;
out:
    ERR_clear_error();
    X509_free(leaf);
    EVP_PKEY_free(key);
    BIO_free(bio);
    return rc;
}

/* ------------------------------------------------------------ names */

int edge_acme_domain_valid(const char *d)
{
    size_t len, label = 0, labels = 1, i;
    int all_digits = 1;

    if (d == NULL)
        return 0;
    len = strlen(d);
    if (len == 0 || len > EDGE_ACME_DOMAIN_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return 0;
            label = 0;
            labels++;
            all_digits = 1;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        if (c == '-' && label == 0)
            return 0;
        if (!(c >= '0' && c <= '9'))
            all_digits = 0;
        if (++label > 63)
            return 0;
    }
    return label > 0 && d[len - 1] != '-' && labels >= 2 && !all_digits;
}
