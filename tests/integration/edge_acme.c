/* edge_acme.c - the certificate manager (svc-edge/certs.c) and its ACME
 * client (svc-edge/acme.c) against the real Pebble from Debian, with
 * pebble-challtestsrv resolving every test name to 127.0.0.1 and a real
 * nats-server for the CertStatus events.
 *
 * HTTP-01 answers are served by a small HTTP responder in this process on
 * Pebble's httpPort, fed by the manager's challenge callbacks; the install
 * and remove callbacks record what the proxy would have been told. Pebble
 * keeps its default nonce rejection (5 % of good nonces refused), so the
 * badNonce retry is exercised by every order.
 *
 * One Pebble, one nats-server and one data directory serve the suite
 * (CK_NOFORK); the tests run in order and build on each other. The renewal
 * test starts a second Pebble whose certificates live 12 seconds.
 */
#include "svc-edge/acme_crypto.c"
#include "svc-edge/acme.c"
#include "svc-edge/certs.c"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "route.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/pebble.h"
#include "tests/harness/unit.h"

#define ORDER_WAIT_MS 30000 /* one certificate from Pebble, with slack */
#define RETRY_MIN_MS 1000   /* the manager's first retry after a failure */
#define MAX_TOKENS 32
#define MAX_HOSTS 32
#define MAX_EVENTS 256
#define MAX_DOMAINS 16

#define ST_PENDING BERTH__V1__CERT_STATE__CERT_STATE_PENDING
#define ST_VALID BERTH__V1__CERT_STATE__CERT_STATE_VALID
#define ST_FAILED BERTH__V1__CERT_STATE__CERT_STATE_FAILED
#define ST_NONE BERTH__V1__CERT_STATE__CERT_STATE_UNSPECIFIED

/* ------------------------------------------------------------ HTTP-01 */

/* The responder: tokens and their key authorizations, hosts answered 404,
 * requests counted per host. */
typedef struct responder {
    pthread_mutex_t mu;
    int fd;
    int port;
    volatile int stop;
    pthread_t thread;
    char tokens[MAX_TOKENS][128];
    char keyauths[MAX_TOKENS][256];
    int ntokens;
    char fail_host[256]; /* answered 404 */
    char hosts[MAX_HOSTS][256];
    int host_hits[MAX_HOSTS];
    int nhosts;
} responder;

static responder web;

/* Copies the Host header's name (without the port) into dst. */
static void host_of(const char *req, char *dst, size_t size)
{
    const char *h = strcasestr(req, "\r\nHost:");
    size_t n = 0;

    dst[0] = '\0';
    if (h == NULL)
        return;
    h += 7;
    while (*h == ' ')
        h++;
    while (h[n] != '\0' && h[n] != '\r' && h[n] != ':' && n + 1 < size)
        n++;
    memcpy(dst, h, n);
    dst[n] = '\0';
}

static void serve_one(int fd)
{
    char req[8192], host[256], path[512], reply[1024];
    const char *body = "not found\n";
    int status = 404, i, found = -1;
    size_t len = 0;
    ssize_t r;

    while (len + 1 < sizeof(req)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0)
            break;
        r = read(fd, req + len, sizeof(req) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    req[len] = '\0';
    if (sscanf(req, "GET %511s ", path) != 1)
        path[0] = '\0';
    host_of(req, host, sizeof(host));

    pthread_mutex_lock(&web.mu);
    for (i = 0; i < web.nhosts; i++) {
        if (strcmp(web.hosts[i], host) == 0)
            break;
    }
    if (i == web.nhosts && i < MAX_HOSTS) {
        snprintf(web.hosts[i], sizeof(web.hosts[i]), "%s", host);
        web.nhosts++;
    }
    if (i < MAX_HOSTS)
        web.host_hits[i]++;
    if (strcmp(host, web.fail_host) != 0 &&
        strncmp(path, "/.well-known/acme-challenge/", 28) == 0) {
        for (i = 0; i < web.ntokens; i++) {
            if (strcmp(web.tokens[i], path + 28) == 0)
                found = i;
        }
    }
    if (found >= 0) {
        status = 200;
        snprintf(reply, sizeof(reply),
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%.255s",
                 strlen(web.keyauths[found]), web.keyauths[found]);
    }
    pthread_mutex_unlock(&web.mu);
    if (status != 200)
        snprintf(reply, sizeof(reply),
                 "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(body), body);
    if (write(fd, reply, strlen(reply)) < 0)
        h_say("responder: write failed: %s", strerror(errno));
}

static void *responder_main(void *arg)
{
    (void)arg;
    while (!web.stop) {
        struct pollfd p = {.fd = web.fd, .events = POLLIN};
        int cfd;

        if (poll(&p, 1, 100) <= 0)
            continue;
        cfd = accept4(web.fd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        serve_one(cfd);
        close(cfd);
    }
    return NULL;
}

/* Listens on a port of 127.0.0.1 the kernel picks (no race with Pebble,
 * which is told the port afterwards). */
static void responder_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    int one = 1;

    pthread_mutex_init(&web.mu, NULL);
    web.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(web.fd, 0);
    setsockopt(web.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(web.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(web.fd, 64), 0);
    ck_assert_int_eq(getsockname(web.fd, (struct sockaddr *)&a, &alen), 0);
    web.port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&web.thread, NULL, responder_main, NULL),
                     0);
}

static void responder_stop(void)
{
    web.stop = 1;
    pthread_join(web.thread, NULL);
    close(web.fd);
}

static int host_hits(const char *host)
{
    int i, n = 0;

    pthread_mutex_lock(&web.mu);
    for (i = 0; i < web.nhosts; i++) {
        if (strcmp(web.hosts[i], host) == 0)
            n = web.host_hits[i];
    }
    pthread_mutex_unlock(&web.mu);
    return n;
}

/* ------------------------------------------------------------ the proxy */

/* What the manager told the "proxy". */
typedef struct proxy {
    pthread_mutex_t mu;
    int in_callback; /* callbacks must never overlap */
    int overlaps;
    char domains[MAX_DOMAINS][256];
    char *pem[MAX_DOMAINS]; /* the latest install */
    int installs[MAX_DOMAINS];
    int removes[MAX_DOMAINS];
    int ndomains;
    int challenge_sets;
    int challenge_dels;
} proxy;

static proxy px;

static int px_slot(const char *domain)
{
    int i;

    for (i = 0; i < px.ndomains; i++) {
        if (strcmp(px.domains[i], domain) == 0)
            return i;
    }
    /* Called from the manager's threads too: no ck_assert here. */
    if (px.ndomains == MAX_DOMAINS) {
        h_say("proxy: more than %d domains; raise MAX_DOMAINS", MAX_DOMAINS);
        abort();
    }
    snprintf(px.domains[i], sizeof(px.domains[i]), "%s", domain);
    px.ndomains++;
    return i;
}

static void cb_enter(void)
{
    pthread_mutex_lock(&px.mu);
    if (px.in_callback++ > 0)
        px.overlaps++;
    pthread_mutex_unlock(&px.mu);
}

static void cb_leave(void)
{
    pthread_mutex_lock(&px.mu);
    px.in_callback--;
    pthread_mutex_unlock(&px.mu);
}

static int on_challenge_set(void *ud, const char *token, const char *ka)
{
    (void)ud;
    cb_enter();
    pthread_mutex_lock(&web.mu);
    if (web.ntokens < MAX_TOKENS) {
        snprintf(web.tokens[web.ntokens], sizeof(web.tokens[0]), "%s", token);
        snprintf(web.keyauths[web.ntokens], sizeof(web.keyauths[0]), "%s", ka);
        web.ntokens++;
    }
    pthread_mutex_unlock(&web.mu);
    pthread_mutex_lock(&px.mu);
    px.challenge_sets++;
    pthread_mutex_unlock(&px.mu);
    cb_leave();
    return 0;
}

static int on_challenge_del(void *ud, const char *token)
{
    int i;

    (void)ud;
    cb_enter();
    pthread_mutex_lock(&web.mu);
    for (i = 0; i < web.ntokens; i++) {
        if (strcmp(web.tokens[i], token) == 0) {
            web.ntokens--;
            memcpy(web.tokens[i], web.tokens[web.ntokens], sizeof(web.tokens[0]));
            memcpy(web.keyauths[i], web.keyauths[web.ntokens],
                   sizeof(web.keyauths[0]));
            break;
        }
    }
    pthread_mutex_unlock(&web.mu);
    pthread_mutex_lock(&px.mu);
    px.challenge_dels++;
    pthread_mutex_unlock(&px.mu);
    cb_leave();
    return 0;
}

static int on_install(void *ud, const char *domain, const char *pem)
{
    int i;

    (void)ud;
    cb_enter();
    pthread_mutex_lock(&px.mu);
    i = px_slot(domain);
    free(px.pem[i]);
    px.pem[i] = strdup(pem);
    px.installs[i]++;
    pthread_mutex_unlock(&px.mu);
    cb_leave();
    return 0;
}

static int on_remove(void *ud, const char *domain)
{
    int i;

    (void)ud;
    cb_enter();
    pthread_mutex_lock(&px.mu);
    i = px_slot(domain);
    px.removes[i]++;
    pthread_mutex_unlock(&px.mu);
    cb_leave();
    return 0;
}

static int installs_of(const char *domain)
{
    int n;

    pthread_mutex_lock(&px.mu);
    n = px.installs[px_slot(domain)];
    pthread_mutex_unlock(&px.mu);
    return n;
}

static int removes_of(const char *domain)
{
    int n;

    pthread_mutex_lock(&px.mu);
    n = px.removes[px_slot(domain)];
    pthread_mutex_unlock(&px.mu);
    return n;
}

/* The latest installed PEM for domain; caller frees. */
static char *pem_of(const char *domain)
{
    char *s;

    pthread_mutex_lock(&px.mu);
    s = px.pem[px_slot(domain)] != NULL ? strdup(px.pem[px_slot(domain)]) : NULL;
    pthread_mutex_unlock(&px.mu);
    return s;
}

/* Waits until domain has had at least n installs. */
static int wait_installs(const char *domain, int n, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    while (clock_mono_ms() < end) {
        if (installs_of(domain) >= n)
            return 1;
        clock_sleep_ms(50);
    }
    return 0;
}

/* ------------------------------------------------------------ events */

typedef struct event {
    char domain[256];
    char site_id[64];
    char reason[600];
    int state;
    int64_t not_after_ms;
    int64_t next_attempt_ms;
} event;

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static event events[MAX_EVENTS];
static int nevents;
static int bad_subjects;

static int on_status(bus_msg *m, void *ud)
{
    Berth__V1__CertStatus *s = (Berth__V1__CertStatus *)m->msg;

    (void)ud;
    pthread_mutex_lock(&ev_mu);
    if (nevents < MAX_EVENTS) {
        event *e = &events[nevents++];
        snprintf(e->domain, sizeof(e->domain), "%s", s->domain);
        snprintf(e->site_id, sizeof(e->site_id), "%s", s->site_id);
        snprintf(e->reason, sizeof(e->reason), "%s", s->reason);
        e->state = s->state;
        e->not_after_ms = s->not_after_ms;
        e->next_attempt_ms = s->next_attempt_ms;
        /* The subject carries the domain too (checked by the tests: no
         * ck_assert off the test's thread). */
        if (strcmp(m->subject + strlen("cert.status."), s->domain) != 0) {
            h_say("status for %s on subject %s", s->domain, m->subject);
            bad_subjects++;
        }
    }
    pthread_mutex_unlock(&ev_mu);
    return 0;
}

/* Waits for a status of domain in state (after index from) and copies
 * it; returns its index or -1. */
static int wait_event(const char *domain, int state, int from, event *out,
                      int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int i;

    while (clock_mono_ms() < end) {
        pthread_mutex_lock(&ev_mu);
        for (i = from; i < nevents; i++) {
            if (strcmp(events[i].domain, domain) == 0 &&
                events[i].state == state) {
                if (out != NULL)
                    *out = events[i];
                pthread_mutex_unlock(&ev_mu);
                return i;
            }
        }
        pthread_mutex_unlock(&ev_mu);
        clock_sleep_ms(20);
    }
    return -1;
}

static int event_count(void)
{
    int n;

    pthread_mutex_lock(&ev_mu);
    n = nevents;
    pthread_mutex_unlock(&ev_mu);
    return n;
}

/* ------------------------------------------------------------ suite */

static h_pebble pb;
static h_nats nats;
static bus *edge_bus; /* the manager's */
static bus *test_bus; /* the subscriber's */
static char *tmp;
static char data_dir[1024];
static edge_certs *certs;

static void certs_start_with(edge_certs **out, const char *url,
                             const char *bundle, const char *dir,
                             int64_t retry_min_ms)
{
    ck_assert_int_eq(edge_certs_start(&(edge_certs_cfg){
                                          .directory_url = url,
                                          .ca_bundle = bundle,
                                          .email = "admin@site1.test",
                                          .data_dir = dir,
                                          .bus = edge_bus,
                                          .retry_min_ms = retry_min_ms,
                                          .retry_max_ms = 8 * retry_min_ms,
                                          .http_timeout_ms = 5000,
                                          .poll_max_ms = 20000,
                                          .challenge_set = on_challenge_set,
                                          .challenge_del = on_challenge_del,
                                          .install = on_install,
                                          .remove = on_remove,
                                      },
                                      out),
                     0);
}

static void certs_start(void)
{
    certs_start_with(&certs, pb.directory_url, pb.ca_bundle, data_dir,
                     RETRY_MIN_MS);
}

static void suite_up(void)
{
    log_init("edge_acme", LOG_INFO);
    pthread_mutex_init(&px.mu, NULL);
    responder_start();
    ck_assert_int_eq(h_pebble_start(&pb, &(h_pebble_opts){.http_port = web.port}),
                     0);
    ck_assert_int_eq(h_nats_start(&nats), 0);
    edge_bus = h_bus_open(nats.url, "berth-edge");
    test_bus = h_bus_open(nats.url, "test");
    ck_assert_int_eq(bus_js_setup(edge_bus), 0);
    ck_assert_int_eq(bus_subscribe(test_bus, "cert.status.>", NULL, on_status,
                                   NULL),
                     0);
    ck_assert_int_eq(natsConnection_Flush(bus_nats(test_bus)), NATS_OK);
    tmp = h_tempdir("edge-acme");
    ck_assert_ptr_nonnull(tmp);
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
}

static void suite_down(void)
{
    int i;

    edge_certs_stop(certs);
    certs = NULL;
    bus_close(test_bus);
    bus_close(edge_bus);
    h_nats_stop(&nats);
    h_pebble_stop(&pb);
    responder_stop();
    h_tempdir_drop(tmp, "edge-acme");
    for (i = 0; i < px.ndomains; i++)
        free(px.pem[i]);
}

/* Parses every certificate in pem, in order. */
static STACK_OF(X509) *certs_of(const char *pem)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x;

    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, x);
    ERR_clear_error();
    BIO_free(bio);
    return sk;
}

/* Checks that the installed PEM for domain is a chain that verifies
 * against Pebble's root, for that name, that its intermediate is Pebble's,
 * and that the leaf names only domain. */
static void verify_installed(const char *domain)
{
    char *pem = pem_of(domain);
    buf root, inter;
    STACK_OF(X509) *chain, *roots, *inters, *untrusted;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    GENERAL_NAMES *names;
    GENERAL_NAME *gn;
    X509 *leaf;
    int i, ok;

    ck_assert_ptr_nonnull(pem);
    ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    ck_assert_ptr_nonnull(strstr(pem, "PRIVATE KEY-----"));
    /* The chain comes first, then the key (HAProxy's order). */
    ck_assert(strstr(pem, "-----BEGIN CERTIFICATE-----") <
              strstr(pem, "PRIVATE KEY-----"));
    ck_assert_int_eq(edge_acme_pem_check(pem, domain, NULL, NULL), 0);

    buf_init(&root, 1 << 16);
    buf_init(&inter, 1 << 16);
    ck_assert_int_eq(h_pebble_get(&pb, "/roots/0", &root), 200);
    ck_assert_int_eq(h_pebble_get(&pb, "/intermediates/0", &inter), 200);
    roots = certs_of(root.data);
    inters = certs_of(inter.data);
    ck_assert_int_eq(sk_X509_num(roots), 1);
    ck_assert_int_ge(sk_X509_num(inters), 1);
    ck_assert_int_eq(X509_STORE_add_cert(store, sk_X509_value(roots, 0)), 1);

    chain = certs_of(pem);
    ck_assert_int_ge(sk_X509_num(chain), 2);
    leaf = sk_X509_value(chain, 0);
    /* Only what the chain itself carries may help the verification. */
    untrusted = sk_X509_new_null();
    for (i = 1; i < sk_X509_num(chain); i++)
        sk_X509_push(untrusted, sk_X509_value(chain, i));
    ck_assert_int_eq(X509_cmp(sk_X509_value(chain, 1), sk_X509_value(inters, 0)),
                     0);
    ck_assert_int_eq(X509_STORE_CTX_init(ctx, store, leaf, untrusted), 1);
    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), domain, 0);
    ok = X509_verify_cert(ctx);
    ck_assert_msg(ok == 1, "chain of %s does not verify: %s", domain,
                  X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));

    names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    ck_assert_ptr_nonnull(names);
    ck_assert_int_eq(sk_GENERAL_NAME_num(names), 1);
    gn = sk_GENERAL_NAME_value(names, 0);
    ck_assert_int_eq(gn->type, GEN_DNS);
    ck_assert_str_eq((const char *)ASN1_STRING_get0_data(gn->d.dNSName), domain);

    GENERAL_NAMES_free(names);
    sk_X509_free(untrusted);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(roots, X509_free);
    sk_X509_pop_free(inters, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    buf_free(&root);
    buf_free(&inter);
    free(pem);
}

/* Checks the stored file of domain: present (want 1) with mode 0600, or
 * absent (want 0). */
static void check_stored(const char *dir, const char *domain, int want)
{
    char path[1400];
    struct stat st;

    snprintf(path, sizeof(path), "%s/certs/%s.pem", dir, domain);
    if (!want) {
        ck_assert_int_ne(stat(path, &st), 0);
        return;
    }
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}

/* ------------------------------------------------------------ tests */

START_TEST(first_domain_gets_a_certificate)
{
    edge_certs_info info;
    event ev;
    int64_t now;
    int pending, valid;
    char path[1400];
    struct stat st;

    certs_start();
    snprintf(path, sizeof(path), "%s/acme/account.key", data_dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    ck_assert_int_eq(edge_certs_want(certs, "site1.test", "s1"), 0);
    ck_assert_msg(wait_installs("site1.test", 1, ORDER_WAIT_MS),
                  "no certificate installed for site1.test");
    verify_installed("site1.test");
    check_stored(data_dir, "site1.test", 1);

    pending = wait_event("site1.test", ST_PENDING, 0, &ev, 5000);
    ck_assert_int_ge(pending, 0);
    ck_assert_str_eq(ev.site_id, "s1");
    valid = wait_event("site1.test", ST_VALID, 0, &ev, 5000);
    ck_assert_int_gt(valid, pending);
    now = clock_wall_ms();
    ck_assert_int_gt(ev.not_after_ms, now + 24LL * 3600 * 1000);
    ck_assert_str_eq(ev.site_id, "s1");
    ck_assert_str_eq(ev.reason, "");

    ck_assert_int_eq(edge_certs_status(certs, "site1.test", &info), 0);
    ck_assert_int_eq(info.state, ST_VALID);
    ck_assert(info.installed);
    ck_assert_uint_eq(info.orders, 1);
    ck_assert_int_eq(info.not_after_ms, ev.not_after_ms);
    /* Pebble's default certificates live five years: renewal is 30 days
     * (and some jitter) before the end. */
    ck_assert_int_le(info.renew_at_ms, info.not_after_ms - 30LL * 86400000);
    ck_assert_int_ge(info.renew_at_ms, info.not_after_ms - 33LL * 86400000);

    /* The challenge answer was withdrawn afterwards. */
    pthread_mutex_lock(&px.mu);
    ck_assert_int_eq(px.challenge_sets, px.challenge_dels);
    ck_assert_int_eq(px.overlaps, 0);
    pthread_mutex_unlock(&px.mu);
    pthread_mutex_lock(&web.mu);
    ck_assert_int_eq(web.ntokens, 0);
    pthread_mutex_unlock(&web.mu);
    ck_assert_int_ge(host_hits("site1.test"), 1);

    /* Asking again changes nothing. */
    ck_assert_int_eq(edge_certs_want(certs, "site1.test", "s1"), 0);
    clock_sleep_ms(300);
    ck_assert_int_eq(installs_of("site1.test"), 1);
    ck_assert_int_eq(edge_certs_status(certs, "site1.test", &info), 0);
    ck_assert_uint_eq(info.orders, 1);
}
END_TEST

START_TEST(second_domain_of_the_site)
{
    edge_certs_info info;
    event ev;

    ck_assert_int_eq(edge_certs_want(certs, "www.site1.test", "s1"), 0);
    ck_assert(wait_installs("www.site1.test", 1, ORDER_WAIT_MS));
    verify_installed("www.site1.test");
    check_stored(data_dir, "www.site1.test", 1);
    ck_assert_int_ge(wait_event("www.site1.test", ST_VALID, 0, &ev, 5000), 0);
    ck_assert_int_eq(edge_certs_status(certs, "www.site1.test", &info), 0);
    ck_assert_int_eq(info.state, ST_VALID);
    /* The first domain kept its certificate. */
    ck_assert_int_eq(installs_of("site1.test"), 1);
}
END_TEST

START_TEST(drop_removes_the_certificate)
{
    edge_certs_info info;
    event ev;
    int from = event_count();

    ck_assert_int_eq(edge_certs_drop(certs, "www.site1.test"), 0);
    ck_assert_int_eq(removes_of("www.site1.test"), 1);
    check_stored(data_dir, "www.site1.test", 0);
    ck_assert_int_eq(edge_certs_status(certs, "www.site1.test", &info),
                     BERTH_ENOENT);
    ck_assert_int_ge(wait_event("www.site1.test", ST_NONE, from, &ev, 5000), 0);
    ck_assert_str_eq(ev.reason, "removed");
    /* Dropping what is not there is harmless. */
    ck_assert_int_eq(edge_certs_drop(certs, "www.site1.test"), 0);
    ck_assert_int_eq(edge_certs_drop(certs, "never.test"), 0);
    ck_assert_int_eq(removes_of("www.site1.test"), 1);
    ck_assert_int_eq(removes_of("site1.test"), 0);
}
END_TEST

START_TEST(restart_installs_stored_certificates_without_ordering)
{
    edge_certs_info info;
    event ev;
    char *before, *after;
    int from;

    /* A domain that will not be wanted after the restart. */
    ck_assert_int_eq(edge_certs_want(certs, "old.test", "s2"), 0);
    ck_assert(wait_installs("old.test", 1, ORDER_WAIT_MS));
    before = pem_of("site1.test");
    edge_certs_stop(certs);
    certs = NULL;

    /* The stored certificates are installed during start, before any
     * route is known, and no order is placed. */
    certs_start();
    ck_assert_int_eq(installs_of("site1.test"), 2);
    ck_assert_int_eq(installs_of("old.test"), 2);
    ck_assert_int_eq(installs_of("www.site1.test"), 1);
    after = pem_of("site1.test");
    ck_assert_str_eq(before, after);
    free(before);
    free(after);

    from = event_count();
    ck_assert_int_eq(edge_certs_want(certs, "site1.test", "s1"), 0);
    ck_assert_int_ge(wait_event("site1.test", ST_VALID, from, &ev, 5000), 0);
    clock_sleep_ms(500);
    ck_assert_int_eq(edge_certs_status(certs, "site1.test", &info), 0);
    ck_assert_uint_eq(info.orders, 0);
    ck_assert_int_eq(info.state, ST_VALID);
    ck_assert_int_eq(installs_of("site1.test"), 2);

    /* HAProxy restarted: everything stored goes in again. */
    ck_assert_int_eq(edge_certs_reinstall(certs), 0);
    ck_assert_int_eq(installs_of("site1.test"), 3);
    ck_assert_int_eq(installs_of("old.test"), 3);

    /* The full route list did not name old.test: pruned. */
    ck_assert_int_eq(edge_certs_prune(certs), 0);
    ck_assert_int_eq(removes_of("old.test"), 1);
    ck_assert_int_eq(removes_of("site1.test"), 0);
    check_stored(data_dir, "old.test", 0);
    check_stored(data_dir, "site1.test", 1);
    ck_assert_int_eq(edge_certs_status(certs, "old.test", &info), BERTH_ENOENT);
    ck_assert_int_eq(edge_certs_status(certs, "site1.test", &info), 0);
}
END_TEST

START_TEST(failing_challenge_backs_off)
{
    edge_certs_info info;
    event ev;
    int64_t t0, now;
    int hits, first;

    pthread_mutex_lock(&web.mu);
    snprintf(web.fail_host, sizeof(web.fail_host), "fail.test");
    pthread_mutex_unlock(&web.mu);
    t0 = clock_wall_ms();
    ck_assert_int_eq(edge_certs_want(certs, "fail.test", "s3"), 0);
    first = wait_event("fail.test", ST_FAILED, 0, &ev, ORDER_WAIT_MS);
    ck_assert_int_ge(first, 0);
    now = clock_wall_ms();
    ck_assert_str_eq(ev.site_id, "s3");
    ck_assert_msg(strstr(ev.reason, "fail.test") != NULL &&
                      strstr(ev.reason, "404") != NULL,
                  "reason: %s", ev.reason);
    ck_assert_int_gt(ev.next_attempt_ms, t0 + RETRY_MIN_MS - 100);
    ck_assert_int_le(ev.next_attempt_ms, now + 2 * RETRY_MIN_MS);
    ck_assert_int_eq(installs_of("fail.test"), 0);

    /* Retries about 1, then 2, then 4 s apart: within 4.5 s of the first
     * failure, at most three more orders. Pebble fetches the answer up to
     * three times per validation. */
    clock_sleep_ms(4500);
    ck_assert_int_eq(edge_certs_status(certs, "fail.test", &info), 0);
    hits = host_hits("fail.test");
    ck_assert_msg(info.orders >= 2 && info.orders <= 4, "orders %u",
                  info.orders);
    ck_assert_msg(hits >= 2 && hits <= 3 * (int)info.orders,
                  "%d requests for %u orders", hits, info.orders);
    ck_assert_int_eq(info.state, ST_FAILED);
    /* An order may be under way: it counts before it fails. */
    ck_assert_int_ge(info.failures, (int)info.orders - 1);
    ck_assert_int_le(info.failures, (int)info.orders);
    ck_assert_int_gt(info.next_attempt_ms, clock_wall_ms() - 100);
    pthread_mutex_lock(&px.mu);
    ck_assert_int_eq(px.challenge_sets, px.challenge_dels);
    pthread_mutex_unlock(&px.mu);

    /* Fixed: the next retry succeeds. */
    pthread_mutex_lock(&web.mu);
    web.fail_host[0] = '\0';
    pthread_mutex_unlock(&web.mu);
    ck_assert(wait_installs("fail.test", 1, ORDER_WAIT_MS + 8 * RETRY_MIN_MS));
    verify_installed("fail.test");
    ck_assert_int_ge(wait_event("fail.test", ST_VALID, first, &ev, 5000), 0);
    ck_assert_int_eq(edge_certs_drop(certs, "fail.test"), 0);
    ck_assert_int_eq(bad_subjects, 0);
}
END_TEST

START_TEST(acme_server_down_stays_pending)
{
    edge_certs *down = NULL;
    edge_certs_info info;
    char url[128], dir[1100];
    event ev;
    int port = h_free_port();

    ck_assert_int_gt(port, 0);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/dir", port);
    snprintf(dir, sizeof(dir), "%s/down", tmp);
    certs_start_with(&down, url, pb.ca_bundle, dir, RETRY_MIN_MS);
    ck_assert_int_eq(edge_certs_want(down, "down.test", "s4"), 0);
    ck_assert_int_ge(wait_event("down.test", ST_PENDING, 0, &ev, 5000), 0);
    /* The first status has no reason; the failed attempt adds one. */
    for (;;) {
        int i = wait_event("down.test", ST_PENDING, 0, &ev, 5000);
        ck_assert_int_ge(i, 0);
        if (ev.reason[0] != '\0')
            break;
        ck_assert_int_ge(wait_event("down.test", ST_PENDING, i + 1, &ev, 5000),
                         0);
        if (ev.reason[0] != '\0')
            break;
    }
    ck_assert_msg(strstr(ev.reason, "unreachable") != NULL, "reason: %s",
                  ev.reason);
    ck_assert_int_gt(ev.next_attempt_ms, clock_wall_ms());
    clock_sleep_ms(2500);
    ck_assert_int_eq(edge_certs_status(down, "down.test", &info), 0);
    ck_assert_int_eq(info.state, ST_PENDING);
    ck_assert_msg(info.orders >= 2 && info.orders <= 3, "orders %u",
                  info.orders);
    /* Bad names are refused up front. */
    ck_assert_int_eq(edge_certs_want(down, "Bad Name", "s4"), BERTH_EINVAL);
    ck_assert_int_eq(edge_certs_want(down, "*.wild.test", "s4"), BERTH_EINVAL);
    edge_certs_stop(down);
}
END_TEST

START_TEST(short_lived_certificate_is_renewed)
{
    h_pebble pb2;
    edge_certs *c2 = NULL;
    edge_certs_info info;
    char dir[1100];
    int64_t first_after;

    /* Certificates that live 12 s: renewed a third before the end. */
    ck_assert_int_eq(h_pebble_start(&pb2, &(h_pebble_opts){.http_port = web.port,
                                                          .validity_s = 12}),
                     0);
    snprintf(dir, sizeof(dir), "%s/renew", tmp);
    certs_start_with(&c2, pb2.directory_url, pb2.ca_bundle, dir, RETRY_MIN_MS);
    ck_assert_int_eq(edge_certs_want(c2, "renew.test", "s5"), 0);
    ck_assert(wait_installs("renew.test", 1, ORDER_WAIT_MS));
    ck_assert_int_eq(edge_certs_status(c2, "renew.test", &info), 0);
    first_after = info.not_after_ms;
    ck_assert_int_le(first_after, clock_wall_ms() + 13000);
    ck_assert_int_lt(info.renew_at_ms, first_after - 3000);
    ck_assert_int_gt(info.renew_at_ms, first_after - 5000);

    ck_assert(wait_installs("renew.test", 2, 15000 + ORDER_WAIT_MS));
    ck_assert_int_eq(edge_certs_status(c2, "renew.test", &info), 0);
    ck_assert_int_gt(info.not_after_ms, first_after);
    ck_assert_uint_ge(info.orders, 2);
    ck_assert_int_eq(info.state, ST_VALID);
    edge_certs_stop(c2);
    h_pebble_stop(&pb2);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/edge_acme");
    TCase *tc = tcase_create("edge_acme");

    tcase_set_timeout(tc, 180);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, first_domain_gets_a_certificate);
    tcase_add_test(tc, second_domain_of_the_site);
    tcase_add_test(tc, drop_removes_the_certificate);
    tcase_add_test(tc, restart_installs_stored_certificates_without_ordering);
    tcase_add_test(tc, failing_challenge_backs_off);
    tcase_add_test(tc, acme_server_down_stays_pending);
    tcase_add_test(tc, short_lived_certificate_is_renewed);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests share one Pebble, one nats-server and one data directory. */
UNIT_MAIN_NOFORK(make_suite)
