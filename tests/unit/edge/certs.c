/* certs.c - the certificate manager's scheduling and storage
 * (svc-edge/certs.c) without a CA: renewal times, retry delays, what a
 * failure does to a domain (pending, failed, renewal failed, rate limits
 * holding every order), the status queue, and stored certificates loaded
 * and installed at start. Orders themselves are tested against Pebble in
 * tests/integration/edge_acme.c.
 */
#include "svc-edge/acme_crypto.c"
#include "svc-edge/acme.c"
#include "svc-edge/certs.c"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define DAY (24LL * 3600 * 1000)

static char *dir;

static void setup(void)
{
    dir = h_tempdir("certs-unit");
    ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
    h_rmtree(dir);
    free(dir);
}

/* A manager struct for the pure functions: no threads, no client. */
static edge_certs *bare(int64_t margin, int64_t rmin, int64_t rmax)
{
    edge_certs *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->cb_mu, NULL);
    pthread_cond_init(&c->work_cond, NULL);
    pthread_cond_init(&c->pub_cond, NULL);
    c->renew_margin_ms = margin;
    c->retry_min_ms = rmin;
    c->retry_max_ms = rmax;
    return c;
}

static void bare_free(edge_certs *c)
{
    cert_entry *e, *next;
    size_t i;

    for (i = 0; i < CERTS_BUCKETS; i++) {
        for (e = c->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(c);
}

START_TEST(renewal_times)
{
    edge_certs *c = bare(30 * DAY, 1000, 8000);
    int64_t na = 1000 * DAY, t;
    int i;

    for (i = 0; i < 50; i++) {
        /* 90 days: 30 days before the end, minus up to 3 days. */
        t = renew_time(c, na - 90 * DAY, na);
        ck_assert_int_le(t, na - 30 * DAY);
        ck_assert_int_ge(t, na - 33 * DAY);
        /* 6 days: a third of the lifetime, minus up to a tenth of that. */
        t = renew_time(c, na - 6 * DAY, na);
        ck_assert_int_le(t, na - 2 * DAY);
        ck_assert_int_ge(t, na - 2 * DAY - 2 * DAY / 10);
        /* 12 seconds. */
        t = renew_time(c, na - 12000, na);
        ck_assert_int_le(t, na - 4000);
        ck_assert_int_ge(t, na - 4400);
    }
    bare_free(c);
}
END_TEST

START_TEST(retry_delays_double_up_to_the_cap)
{
    edge_certs *c = bare(30 * DAY, 1000, 8000);
    static const int64_t base[] = {1000, 2000, 4000, 8000, 8000, 8000};
    int64_t d;
    int i, round;

    for (round = 0; round < 20; round++) {
        for (i = 0; i < 6; i++) {
            d = retry_delay(c, i + 1);
            ck_assert_int_ge(d, base[i]);
            ck_assert_int_le(d, base[i] + base[i] / 10);
        }
    }
    bare_free(c);
}
END_TEST

static edge_acme_err acme_err(const char *type, int64_t retry_after,
                              const char *msg)
{
    edge_acme_err e = {0};

    snprintf(e.type, sizeof(e.type), "%s", type);
    snprintf(e.message, sizeof(e.message), "%s", msg);
    e.retry_after_ms = retry_after;
    return e;
}

START_TEST(failures_set_the_state)
{
    edge_certs *c = bare(30 * DAY, 1000, 8000);
    int64_t now = 100 * DAY;
    enum work_kind kind;
    edge_acme_err err;
    cert_entry *e, *other;

    e = entry_get(c, "a.test");
    e->wanted = true;

    /* The CA cannot be reached: still pending, with the reason. */
    err = acme_err("", 0, "acme: the ACME server is unreachable");
    order_failed(c, e, BERTH_EUNAVAIL, &err, now);
    ck_assert_int_eq(e->state, STATE_PENDING);
    ck_assert_str_eq(e->reason, "acme: the ACME server is unreachable");
    ck_assert_int_ge(e->next_attempt_ms, now + 1000);
    ck_assert_int_le(e->next_attempt_ms, now + 1100);
    ck_assert_int_eq(entry_due(c, e, now, &kind), e->next_attempt_ms);
    ck_assert_int_eq(kind, WORK_ORDER);

    /* The CA said no: failed, and the delay doubles. */
    err = acme_err("unauthorized", 0, "acme: validating a.test failed");
    order_failed(c, e, BERTH_EPERM, &err, now);
    ck_assert_int_eq(e->state, STATE_FAILED);
    ck_assert_int_eq(e->failures, 2);
    ck_assert_int_ge(e->next_attempt_ms, now + 2000);

    /* A renewal failing keeps the domain valid. */
    e->have = true;
    e->installed = true;
    e->not_before_ms = now - 60 * DAY;
    e->not_after_ms = now + 30 * DAY;
    e->renew_at_ms = now - 1;
    order_failed(c, e, BERTH_EPERM, &err, now);
    ck_assert_int_eq(e->state, STATE_VALID);
    ck_assert_str_eq(e->reason, "renewal failed: acme: validating a.test "
                                "failed");

    /* A rate limit holds this domain and every other one. */
    other = entry_get(c, "b.test");
    other->wanted = true;
    ck_assert_int_eq(entry_due(c, other, now, &kind), 0);
    err = acme_err("rateLimited", 3600000, "acme: too many orders");
    order_failed(c, e, BERTH_ETHROTTLE, &err, now);
    ck_assert_int_eq(e->next_attempt_ms, now + 3600000);
    ck_assert_int_eq(c->orders_paused_until, now + 3600000);
    ck_assert_int_eq(entry_due(c, other, now, &kind), now + 3600000);
    ck_assert_int_eq(kind, WORK_ORDER);
    bare_free(c);
}
END_TEST

START_TEST(due_times)
{
    edge_certs *c = bare(30 * DAY, 1000, 8000);
    int64_t now = 100 * DAY;
    enum work_kind kind;
    cert_entry *e = entry_get(c, "a.test");

    /* Not wanted, nothing stored: nothing to do. */
    ck_assert_int_eq(entry_due(c, e, now, &kind), INT64_MAX);
    ck_assert_int_eq(kind, WORK_NONE);
    /* Stored and valid but not installed: install first, wanted or not. */
    e->have = true;
    e->not_before_ms = now - DAY;
    e->not_after_ms = now + 89 * DAY;
    e->renew_at_ms = now + 59 * DAY;
    e->next_install_ms = now + 5;
    ck_assert_int_eq(entry_due(c, e, now, &kind), now + 5);
    ck_assert_int_eq(kind, WORK_INSTALL);
    /* Installed and wanted: at renewal time. */
    e->installed = true;
    e->wanted = true;
    ck_assert_int_eq(entry_due(c, e, now, &kind), now + 59 * DAY);
    ck_assert_int_eq(kind, WORK_ORDER);
    /* Expired: now, but never within retry_min of the last order. */
    e->not_after_ms = now - 1;
    ck_assert_int_eq(entry_due(c, e, now, &kind), 0);
    e->last_order_ms = now - 200;
    ck_assert_int_eq(entry_due(c, e, now, &kind), now + 800);
    bare_free(c);
}
END_TEST

START_TEST(status_queue_keeps_oldest_and_latest)
{
    edge_certs *c = bare(30 * DAY, 1000, 8000);
    cert_entry *a = entry_get(c, "a.test"), *b = entry_get(c, "b.test");

    c->bus = (bus *)1; /* never used: nothing publishes here */
    status_set(c, a, STATE_PENDING, "");
    status_set(c, b, STATE_PENDING, "");
    status_set(c, a, STATE_FAILED, "first");
    status_set(c, a, STATE_FAILED, "second");
    ck_assert_ptr_eq(c->pubq_head, a);
    ck_assert_ptr_eq(a->pub_next, b);
    ck_assert_ptr_eq(c->pubq_tail, b);
    ck_assert_int_eq(a->npub, 2);
    ck_assert_int_eq(a->pub[0].state, STATE_PENDING);
    ck_assert_int_eq(a->pub[1].state, STATE_FAILED);
    ck_assert_str_eq(a->pub[1].reason, "second");
    ck_assert_int_eq(b->npub, 1);
    /* Without a bus nothing is queued. */
    c->bus = NULL;
    status_set(c, b, STATE_VALID, "");
    ck_assert_int_eq(b->npub, 1);
    ck_assert_int_eq(b->state, STATE_VALID);
    bare_free(c);
}
END_TEST

/* ------------------------------------------------------------ loading */

static int installs, removes;
static char installed_domains[8][64];

static int noop_set(void *ud, const char *t, const char *k)
{
    (void)ud;
    (void)t;
    (void)k;
    return 0;
}

static int noop_del(void *ud, const char *t)
{
    (void)ud;
    (void)t;
    return 0;
}

static int rec_install(void *ud, const char *domain, const char *pem)
{
    (void)ud;
    ck_assert_ptr_nonnull(strstr(pem, "PRIVATE KEY"));
    if (installs < 8)
        snprintf(installed_domains[installs], 64, "%s", domain);
    installs++;
    return 0;
}

static int rec_remove(void *ud, const char *domain)
{
    (void)ud;
    (void)domain;
    removes++;
    return 0;
}

/* Writes dir/certs/<file> holding a certificate for name, valid from
 * days_from to days_to (relative to now), and its key (or another key). */
static void store(const char *file, const char *name, long days_from,
                  long days_to, int matching_key)
{
    EVP_PKEY *k = NULL, *other = NULL;
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char path[1200], *data;
    long len;

    ck_assert_int_eq(acme_key_generate(&k), 0);
    ck_assert_int_eq(acme_key_generate(&other), 0);
    ck_assert(X509_set_version(x, 2));
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), days_from * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), days_to * 86400);
    X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
                               MBSTRING_ASC, (const unsigned char *)name, -1,
                               -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    ck_assert_int_gt(X509_sign(x, k, EVP_sha256()), 0);
    ck_assert(PEM_write_bio_X509(bio, x));
    ck_assert(PEM_write_bio_PrivateKey(bio, matching_key ? k : other, NULL,
                                       NULL, 0, NULL, NULL));
    len = BIO_get_mem_data(bio, &data);
    snprintf(path, sizeof(path), "%s/data/certs", dir);
    ck_assert_int_eq(fs_mkdirs(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/data/certs/%s", dir, file);
    ck_assert_int_eq(fs_write_atomic(path, data, (size_t)len, 0600), 0);
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

START_TEST(stored_certificates_load_at_start)
{
    edge_certs *c = NULL;
    edge_certs_info info;
    char data[1100];
    int64_t now = clock_wall_ms();

    store("good.test.pem", "good.test", -1, 89, 1);
    store("expired.test.pem", "expired.test", -90, -1, 1);
    store("badkey.test.pem", "badkey.test", -1, 89, 0);
    store("wrong.test.pem", "other.test", -1, 89, 1);
    store("Not-A-Domain.pem", "Not-A-Domain", -1, 89, 1);
    store("notes.txt", "good.test", -1, 89, 1);
    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_int_eq(
        edge_certs_start(&(edge_certs_cfg){.directory_url =
                                               "https://ca.invalid/dir",
                                           .data_dir = data,
                                           .challenge_set = noop_set,
                                           .challenge_del = noop_del,
                                           .install = rec_install,
                                           .remove = rec_remove},
                         &c),
        0);
    /* Only the good one, during start. */
    ck_assert_int_eq(installs, 1);
    ck_assert_str_eq(installed_domains[0], "good.test");
    ck_assert_int_eq(edge_certs_status(c, "good.test", &info), 0);
    ck_assert_int_eq(info.state, STATE_VALID);
    ck_assert(info.installed);
    ck_assert(!info.wanted);
    ck_assert_int_gt(info.not_after_ms, now + 88 * DAY);
    ck_assert_int_eq(info.orders, 0);
    ck_assert_int_eq(edge_certs_status(c, "expired.test", &info), 0);
    ck_assert(!info.installed);
    ck_assert_int_eq(edge_certs_status(c, "badkey.test", &info), BERTH_ENOENT);
    ck_assert_int_eq(edge_certs_status(c, "wrong.test", &info), BERTH_ENOENT);

    /* Reinstall: the valid one only. */
    ck_assert_int_eq(edge_certs_reinstall(c), 0);
    ck_assert_int_eq(installs, 2);
    /* Prune: nothing was wanted; the installed one is removed, both files
     * go. */
    ck_assert_int_eq(edge_certs_prune(c), 0);
    ck_assert_int_eq(removes, 1);
    snprintf(data, sizeof(data), "%s/data/certs/good.test.pem", dir);
    ck_assert_int_ne(access(data, F_OK), 0);
    snprintf(data, sizeof(data), "%s/data/certs/expired.test.pem", dir);
    ck_assert_int_ne(access(data, F_OK), 0);
    snprintf(data, sizeof(data), "%s/data/certs/badkey.test.pem", dir);
    ck_assert_int_eq(access(data, F_OK), 0);
    ck_assert_int_eq(edge_certs_status(c, "good.test", &info), BERTH_ENOENT);
    edge_certs_stop(c);
}
END_TEST

START_TEST(start_refuses_missing_fields)
{
    edge_certs *c = NULL;

    ck_assert_int_eq(edge_certs_start(&(edge_certs_cfg){.directory_url = "x",
                                                        .data_dir = dir},
                                      &c),
                     BERTH_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(edge_certs_start(NULL, &c), BERTH_EINVAL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("edge_certs");
    TCase *tc = tcase_create("certs");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, renewal_times);
    tcase_add_test(tc, retry_delays_double_up_to_the_cap);
    tcase_add_test(tc, failures_set_the_state);
    tcase_add_test(tc, due_times);
    tcase_add_test(tc, status_queue_keeps_oldest_and_latest);
    tcase_add_test(tc, stored_certificates_load_at_start);
    tcase_add_test(tc, start_refuses_missing_fields);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
