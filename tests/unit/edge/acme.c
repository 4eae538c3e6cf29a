/* acme.c - the ACME client's pure parts (svc-edge/acme.c and
 * svc-edge/acme_crypto.c): the JWK thumbprint, DER to raw ECDSA
 * signatures, JWS building, the CSR, problem documents, Retry-After,
 * domain names, the account key file and stored PEM checks. The protocol itself is tested against Pebble in
 * tests/integration/edge_acme.c.
 */
#include "svc-edge/acme_crypto.c"
#include "svc-edge/acme.c"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

static char *dir;

static void setup(void)
{
    dir = h_tempdir("acme-unit");
    ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
    h_rmtree(dir);
    free(dir);
}

/* A fresh P-256 key; caller frees. */
static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = NULL;

    ck_assert_int_eq(acme_key_generate(&k), 0);
    ck_assert(acme_key_is_p256(k));
    return k;
}

/* Decodes base64url text into a new NUL-terminated string; caller frees. */
static char *b64_text(const char *s)
{
    size_t n = strlen(s);
    unsigned char *out = malloc(n + 1);
    long len;

    ck_assert_ptr_nonnull(out);
    len = token_b64url_decode(s, n, out, n);
    ck_assert_int_ge(len, 0);
    out[len] = '\0';
    return (char *)out;
}

/* Verifies a raw r||s ES256 signature over data with k. */
static int verify_raw(EVP_PKEY *k, const char *data, const unsigned char *raw)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    unsigned char *der = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int len, ok;

    ck_assert(ECDSA_SIG_set0(sig, r, s));
    len = i2d_ECDSA_SIG(sig, &der);
    ck_assert_int_gt(len, 0);
    ck_assert(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k));
    ok = EVP_DigestVerify(ctx, der, (size_t)len, (const unsigned char *)data,
                          strlen(data));
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return ok == 1;
}

START_TEST(thumbprint_rfc7517_key)
{
    char tp[48];

    /* The P-256 key of RFC 7517 appendix A.1; the thumbprint is the one
     * other JOSE libraries compute for it. */
    ck_assert_int_eq(
        acme_jwk_thumbprint("MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
                       "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM", tp,
                       sizeof(tp)),
        0);
    ck_assert_str_eq(tp, "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
}
END_TEST

START_TEST(jwk_coordinates_are_43_chars)
{
    EVP_PKEY *k = new_key();
    char x[48], y[48];
    int i;

    /* Coordinates with leading zero bytes keep their 32 bytes. */
    for (i = 0; i < 20; i++) {
        ck_assert_int_eq(acme_jwk_coords(k, x, y, sizeof(x)), 0);
        ck_assert_uint_eq(strlen(x), 43);
        ck_assert_uint_eq(strlen(y), 43);
        EVP_PKEY_free(k);
        k = new_key();
    }
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(der_to_raw_vectors)
{
    static const unsigned char small[] = {0x30, 0x06, 0x02, 0x01, 0x01,
                                          0x02, 0x01, 0x02};
    unsigned char big[72] = {0x30, 0x44, 0x02, 0x21, 0x00};
    unsigned char toolong[72] = {0x30, 0x44, 0x02, 0x21, 0x01};
    unsigned char trailing[sizeof(small) + 1];
    unsigned char raw[64], want[64] = {0};
    size_t i;

    ck_assert_int_eq(acme_sig_der_to_raw(small, sizeof(small), raw), 0);
    want[31] = 1;
    want[63] = 2;
    ck_assert_mem_eq(raw, want, 64);

    /* r with its high bit set takes 33 DER bytes (a leading zero). */
    for (i = 0; i < 32; i++)
        big[5 + i] = (unsigned char)(0x80 + i);
    big[37] = 0x02;
    big[38] = 0x1f; /* s: 31 bytes, left-padded in the raw form */
    for (i = 0; i < 31; i++)
        big[39 + i] = (unsigned char)(i + 1);
    ck_assert_int_eq(acme_sig_der_to_raw(big, 70, raw), 0);
    for (i = 0; i < 32; i++)
        ck_assert_uint_eq(raw[i], 0x80 + i);
    ck_assert_uint_eq(raw[32], 0);
    for (i = 0; i < 31; i++)
        ck_assert_uint_eq(raw[33 + i], i + 1);

    /* 33 significant bytes do not fit P-256. */
    memcpy(toolong + 5, big + 5, 65);
    ck_assert_int_eq(acme_sig_der_to_raw(toolong, 70, raw), BERTH_EPROTO);

    memcpy(trailing, small, sizeof(small));
    trailing[sizeof(small)] = 0;
    ck_assert_int_eq(acme_sig_der_to_raw(trailing, sizeof(trailing), raw),
                     BERTH_EPROTO);
    ck_assert_int_eq(acme_sig_der_to_raw((const unsigned char *)"x", 1, raw),
                     BERTH_EPROTO);
}
END_TEST

START_TEST(es256_signature_verifies)
{
    EVP_PKEY *k = new_key();
    unsigned char raw[64];
    char *sig = NULL;
    int i;

    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(acme_es256_sign(k, "header.payload", 14, &sig), 0);
        ck_assert_uint_eq(strlen(sig), 86); /* 64 bytes, no padding */
        ck_assert_int_eq(token_b64url_decode(sig, strlen(sig), raw, 64), 64);
        ck_assert(verify_raw(k, "header.payload", raw));
        ck_assert(!verify_raw(k, "header.payloaD", raw));
        free(sig);
    }
    EVP_PKEY_free(k);
}
END_TEST

/* A client with a key and no network, for jws_build. */
static edge_acme *offline_client(void)
{
    edge_acme *a = NULL;
    char path[1024];

    snprintf(path, sizeof(path), "%s/account.key", dir);
    ck_assert_int_eq(edge_acme_new(&(edge_acme_cfg){
                                       .directory_url = "https://ca.invalid/d",
                                       .account_key_path = path},
                                   &a),
                     0);
    return a;
}

START_TEST(jws_with_jwk_then_kid)
{
    edge_acme *a = offline_client();
    json_t *jws, *prot, *jwk;
    char *out = NULL, *ptxt, *input, *payload;
    unsigned char raw[64];

    snprintf(a->nonce, sizeof(a->nonce), "nonce-1");
    ck_assert_int_eq(jws_build(a, "https://ca.invalid/new-acct",
                               "{\"termsOfServiceAgreed\":true}", 1, &out),
                     0);
    jws = json_loads(out, 0, NULL);
    ck_assert_ptr_nonnull(jws);
    ptxt = b64_text(json_string_value(json_object_get(jws, "protected")));
    prot = json_loads(ptxt, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(prot, "alg")), "ES256");
    ck_assert_str_eq(json_string_value(json_object_get(prot, "nonce")),
                     "nonce-1");
    ck_assert_str_eq(json_string_value(json_object_get(prot, "url")),
                     "https://ca.invalid/new-acct");
    ck_assert_ptr_null(json_object_get(prot, "kid"));
    jwk = json_object_get(prot, "jwk");
    ck_assert_str_eq(json_string_value(json_object_get(jwk, "kty")), "EC");
    ck_assert_str_eq(json_string_value(json_object_get(jwk, "crv")), "P-256");
    ck_assert_str_eq(json_string_value(json_object_get(jwk, "x")), a->jwk_x);
    ck_assert_str_eq(json_string_value(json_object_get(jwk, "y")), a->jwk_y);
    payload = b64_text(json_string_value(json_object_get(jws, "payload")));
    ck_assert_str_eq(payload, "{\"termsOfServiceAgreed\":true}");
    /* The signature covers protected "." payload, as sent. */
    ck_assert_int_gt(
        asprintf(&input, "%s.%s",
                 json_string_value(json_object_get(jws, "protected")),
                 json_string_value(json_object_get(jws, "payload"))),
        0);
    ck_assert_int_eq(
        token_b64url_decode(json_string_value(json_object_get(jws, "signature")),
                            86, raw, 64),
        64);
    ck_assert(verify_raw(a->key, input, raw));
    free(input);
    free(payload);
    free(ptxt);
    json_decref(prot);
    json_decref(jws);
    free(out);

    /* With a kid and no payload: POST-as-GET. */
    a->kid = strdup("https://ca.invalid/acct/1");
    ck_assert_int_eq(jws_build(a, "https://ca.invalid/order/1", NULL, 0, &out),
                     0);
    jws = json_loads(out, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(jws, "payload")), "");
    ptxt = b64_text(json_string_value(json_object_get(jws, "protected")));
    prot = json_loads(ptxt, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(prot, "kid")),
                     "https://ca.invalid/acct/1");
    ck_assert_ptr_null(json_object_get(prot, "jwk"));
    free(ptxt);
    json_decref(prot);
    json_decref(jws);
    free(out);
    edge_acme_free(a);
}
END_TEST

START_TEST(csr_names_the_domain)
{
    EVP_PKEY *k = new_key();
    unsigned char *der = NULL;
    const unsigned char *p;
    X509_REQ *req;
    EVP_PKEY *pub;
    STACK_OF(X509_EXTENSION) *exts;
    GENERAL_NAMES *names;
    GENERAL_NAME *gn;
    char cn[256];
    int len = 0, i, found = 0;

    ck_assert_int_eq(acme_csr_build("site1.example.com", k, &der, &len), 0);
    ck_assert_int_gt(len, 0);
    p = der;
    req = d2i_X509_REQ(NULL, &p, len);
    ck_assert_ptr_nonnull(req);
    pub = X509_REQ_get0_pubkey(req);
    ck_assert_int_eq(EVP_PKEY_eq(pub, k), 1);
    ck_assert_int_eq(X509_REQ_verify(req, pub), 1);
    ck_assert_int_gt(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req),
                                               NID_commonName, cn, sizeof(cn)),
                     0);
    ck_assert_str_eq(cn, "site1.example.com");
    exts = X509_REQ_get_extensions(req);
    names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    ck_assert_ptr_nonnull(names);
    ck_assert_int_eq(sk_GENERAL_NAME_num(names), 1);
    for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        gn = sk_GENERAL_NAME_value(names, i);
        ck_assert_int_eq(gn->type, GEN_DNS);
        ck_assert_str_eq((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
                         "site1.example.com");
        found = 1;
    }
    ck_assert(found);
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    OPENSSL_free(der);

    ck_assert_int_eq(acme_csr_build("bad,name", k, &der, &len), BERTH_EINVAL);
    ck_assert_ptr_null(der);
    EVP_PKEY_free(k);
}
END_TEST

/* Parses a problem document given as text. */
static int problem(const char *text, long status, int64_t retry_after,
                   edge_acme_err *err)
{
    json_t *pb = text != NULL ? json_loads(text, 0, NULL) : NULL;
    int rc;

    memset(err, 0, sizeof(*err));
    rc = problem_parse(pb, status, retry_after, "new order for a.example",
                       err);
    json_decref(pb);
    return rc;
}

START_TEST(problem_documents)
{
    edge_acme_err err;

    ck_assert_int_eq(
        problem("{\"type\":\"urn:ietf:params:acme:error:rateLimited\","
                "\"detail\":\"too many certificates already issued\"}",
                429, 3600000, &err),
        BERTH_ETHROTTLE);
    ck_assert_str_eq(err.type, "rateLimited");
    ck_assert_int_eq(err.retry_after_ms, 3600000);
    ck_assert_int_eq(err.http_status, 429);
    ck_assert_str_eq(err.message,
                     "acme: new order for a.example failed: too many "
                     "certificates already issued (rateLimited); retry after "
                     "3600 s");

    ck_assert_int_eq(
        problem("{\"type\":\"urn:ietf:params:acme:error:badNonce\"}", 400, -1,
                &err),
        BERTH_EUNAVAIL);
    ck_assert_str_eq(err.type, "badNonce");
    ck_assert_int_eq(err.retry_after_ms, 0);

    ck_assert_int_eq(
        problem("{\"type\":\"urn:ietf:params:acme:error:unauthorized\","
                "\"detail\":\"The key authorization file from the server did "
                "not match this challenge\",\"status\":403}",
                0, -1, &err),
        BERTH_EPERM);
    ck_assert_str_eq(err.type, "unauthorized");
    ck_assert_ptr_nonnull(strstr(err.message, "did not match"));

    ck_assert_int_eq(
        problem("{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\"}",
                400, -1, &err),
        BERTH_EINVAL);
    ck_assert_int_eq(
        problem("{\"type\":\"urn:ietf:params:acme:error:accountDoesNotExist\"}",
                400, -1, &err),
        BERTH_EAUTH);
    ck_assert_int_eq(
        problem("{\"type\":\"urn:ietf:params:acme:error:compound\","
                "\"subproblems\":[{\"type\":"
                "\"urn:ietf:params:acme:error:caa\",\"detail\":\"CAA "
                "forbids\"}]}",
                403, -1, &err),
        BERTH_EPERM);
    ck_assert_str_eq(err.type, "caa");

    /* Unknown types and bare statuses fall back on the status. */
    ck_assert_int_eq(problem("{\"type\":\"about:blank\"}", 503, -1, &err),
                     BERTH_EUNAVAIL);
    ck_assert_int_eq(problem(NULL, 404, -1, &err), BERTH_ENOENT);
    ck_assert_str_eq(err.message, "acme: new order for a.example failed: no "
                                  "detail given (HTTP 404)");
    ck_assert_int_eq(problem(NULL, 429, 5000, &err), BERTH_ETHROTTLE);
    ck_assert_int_eq(err.retry_after_ms, 5000);
}
END_TEST

START_TEST(retry_after_values)
{
    /* Wed, 21 Oct 2015 07:28:00 GMT */
    int64_t date_ms = 1445412480000LL;

    ck_assert_int_eq(retry_after_parse("120", 0), 120000);
    ck_assert_int_eq(retry_after_parse(" 0\r\n", 0), 0);
    ck_assert_int_eq(
        retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", date_ms - 10000),
        10000);
    ck_assert_int_eq(
        retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", date_ms + 10000), 0);
    ck_assert_int_eq(retry_after_parse("soon", 0), -1);
    ck_assert_int_eq(retry_after_parse("", 0), -1);
    ck_assert_int_eq(retry_after_parse("-5", 0), -1);
}
END_TEST

START_TEST(header_lines)
{
    acme_resp r;

    resp_init(&r);
    on_header("Replay-Nonce: abc_DEF-1\r\n", 1, 25, &r);
    ck_assert_str_eq(r.nonce, "abc_DEF-1");
    on_header("location:https://ca/o/1 \r\n", 1, 26, &r);
    ck_assert_str_eq(r.location, "https://ca/o/1");
    on_header("Retry-After: 7\r\n", 1, 16, &r);
    ck_assert_int_eq(r.retry_after_ms, 7000);
    on_header("Replay-Nonces: no\r\n", 1, 19, &r);
    ck_assert_str_eq(r.nonce, "abc_DEF-1");
    /* A second status line (after 100 Continue) starts afresh. */
    on_header("HTTP/1.1 200 OK\r\n", 1, 17, &r);
    ck_assert_str_eq(r.nonce, "");
    ck_assert_int_eq(r.retry_after_ms, -1);
    buf_free(&r.body);
}
END_TEST

START_TEST(domain_names)
{
    static const char *const good[] = {"a.b", "site1.test", "xn--bcher-kva.example",
                                       "a-b.c-d.example", "1.example", NULL};
    static const char *const bad[] = {"", "localhost", "Example.com", "a..b",
                                      ".a.b", "a.b.", "-a.b", "a-.b", "*.a.b",
                                      "a_b.c", "1.2.3.4", "a b.c", "a,b.c",
                                      NULL};
    char long_label[80], long_name[300];
    int i;

    for (i = 0; good[i] != NULL; i++)
        ck_assert_msg(edge_acme_domain_valid(good[i]), "%s", good[i]);
    for (i = 0; bad[i] != NULL; i++)
        ck_assert_msg(!edge_acme_domain_valid(bad[i]), "%s", bad[i]);
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".b");
    ck_assert(!edge_acme_domain_valid(long_label)); /* a 64-byte label */
    ck_assert(edge_acme_domain_valid(long_label + 1));
    for (i = 0; i < 127; i++)
        memcpy(long_name + 2 * i, "a.", 2);
    strcpy(long_name + 254, "b");
    ck_assert(!edge_acme_domain_valid(long_name)); /* 255 bytes */
    ck_assert(edge_acme_domain_valid(long_name + 2));
}
END_TEST

START_TEST(account_key_file)
{
    char path[1024], tp[48];
    edge_acme *a = NULL;
    struct stat st;
    EVP_PKEY *rsa;
    char *pem = NULL;

    snprintf(path, sizeof(path), "%s/account.key", dir);
    ck_assert_int_eq(edge_acme_new(&(edge_acme_cfg){.directory_url = "x",
                                                   .account_key_path = path},
                                   &a),
                     0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    snprintf(tp, sizeof(tp), "%s", edge_acme_thumbprint(a));
    ck_assert_uint_eq(strlen(tp), 43);
    edge_acme_free(a);

    /* The same key comes back. */
    ck_assert_int_eq(edge_acme_new(&(edge_acme_cfg){.directory_url = "x",
                                                   .account_key_path = path},
                                   &a),
                     0);
    ck_assert_str_eq(edge_acme_thumbprint(a), tp);
    edge_acme_free(a);

    /* Wider permissions are refused. */
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(edge_acme_new(&(edge_acme_cfg){.directory_url = "x",
                                                   .account_key_path = path},
                                   &a),
                     BERTH_EPERM);

    /* So is a key of another kind. */
    rsa = EVP_RSA_gen(2048);
    ck_assert_ptr_nonnull(rsa);
    ck_assert_int_eq(acme_key_to_pem(rsa, &pem), 0);
    ck_assert_int_eq(fs_write_atomic(path, pem, strlen(pem), 0600), 0);
    ck_assert_int_eq(edge_acme_new(&(edge_acme_cfg){.directory_url = "x",
                                                   .account_key_path = path},
                                   &a),
                     BERTH_EPROTO);
    free(pem);
    EVP_PKEY_free(rsa);

    ck_assert_int_eq(edge_acme_new(&(edge_acme_cfg){.directory_url = "x",
                                                   .account_key_path = path,
                                                   .email = "a b@c"},
                                   &a),
                     BERTH_EINVAL);
    ck_assert_int_eq(edge_acme_new(&(edge_acme_cfg){.account_key_path = path},
                                   &a),
                     BERTH_EINVAL);
}
END_TEST

/* A self-signed certificate for name with key k, as PEM; caller frees. */
static char *self_signed(const char *name, EVP_PKEY *k, long days)
{
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long len;

    ck_assert(X509_set_version(x, 2));
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
                               MBSTRING_ASC, (const unsigned char *)name, -1,
                               -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    ck_assert_int_gt(X509_sign(x, k, EVP_sha256()), 0);
    ck_assert(PEM_write_bio_X509(bio, x));
    len = BIO_get_mem_data(bio, &data);
    out = strndup(data, (size_t)len);
    BIO_free(bio);
    X509_free(x);
    return out;
}

START_TEST(stored_pem_checks)
{
    EVP_PKEY *k = new_key(), *other = new_key();
    char *cert = self_signed("a.example", k, 90);
    char *key = NULL, *other_pem = NULL, *both = NULL;
    int64_t nb = 0, na = 0, now = clock_wall_ms();

    ck_assert_int_eq(acme_key_to_pem(k, &key), 0);
    ck_assert_int_eq(acme_key_to_pem(other, &other_pem), 0);
    ck_assert_int_gt(asprintf(&both, "%s%s", cert, key), 0);
    ck_assert_int_eq(edge_acme_pem_check(both, "a.example", &nb, &na), 0);
    ck_assert_int_le(nb, now);
    ck_assert_int_gt(na, now + 89LL * 86400000);
    ck_assert_int_lt(na, now + 91LL * 86400000);
    ck_assert_int_eq(edge_acme_pem_check(both, "b.example", NULL, NULL),
                     BERTH_ECONFLICT);
    free(both);
    /* Key first works too; the wrong key does not. */
    ck_assert_int_gt(asprintf(&both, "%s%s", key, cert), 0);
    ck_assert_int_eq(edge_acme_pem_check(both, "a.example", NULL, NULL), 0);
    free(both);
    ck_assert_int_gt(asprintf(&both, "%s%s", cert, other_pem), 0);
    ck_assert_int_eq(edge_acme_pem_check(both, "a.example", NULL, NULL),
                     BERTH_ECONFLICT);
    ck_assert_int_eq(edge_acme_pem_check(cert, "a.example", NULL, NULL),
                     BERTH_EPROTO);
    ck_assert_int_eq(edge_acme_pem_check("junk", "a.example", NULL, NULL),
                     BERTH_EPROTO);
    free(both);
    free(cert);
    free(key);
    free(other_pem);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}
END_TEST

START_TEST(obtain_refuses_bad_input)
{
    edge_acme *a = offline_client();
    edge_acme_http01 h = {0};
    edge_acme_cert c;
    edge_acme_err err;

    ck_assert_int_eq(edge_acme_obtain(a, "Not A Domain", &h, &c, &err),
                     BERTH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "Not A Domain"));
    ck_assert_ptr_null(c.chain_pem);
    edge_acme_free(a);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("edge_acme");
    TCase *tc = tcase_create("acme");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, thumbprint_rfc7517_key);
    tcase_add_test(tc, jwk_coordinates_are_43_chars);
    tcase_add_test(tc, der_to_raw_vectors);
    tcase_add_test(tc, es256_signature_verifies);
    tcase_add_test(tc, jws_with_jwk_then_kid);
    tcase_add_test(tc, csr_names_the_domain);
    tcase_add_test(tc, problem_documents);
    tcase_add_test(tc, retry_after_values);
    tcase_add_test(tc, header_lines);
    tcase_add_test(tc, domain_names);
    tcase_add_test(tc, account_key_file);
    tcase_add_test(tc, stored_pem_checks);
    tcase_add_test(tc, obtain_refuses_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
