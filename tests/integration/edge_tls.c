/* edge_tls.c - certificates end to end, everything real: a nats-server,
 * the berth-edge binary with the HAProxy it runs, Pebble (Debian's, with
 * its default nonce rejection and PEBBLE_VA_NOSLEEP=1) validating HTTP-01
 * on HAProxy's HTTP port, pebble-challtestsrv resolving every test name to
 * 127.0.0.1, and a busybox httpd backend.
 *
 * A route.set naming site1.test makes the edge order a certificate;
 * Pebble's challenge is answered by HAProxy from its challenge map; the
 * certificate is installed through the runtime API; an HTTPS request with
 * the SNI site1.test gets the backend's page over a chain that verifies
 * against Pebble's root (/roots/0) alone. CertStatus PENDING then VALID
 * arrives on cert.status.site1.test. A second domain of the same site gets
 * its own certificate; removing it from the route removes its certificate
 * (the default self-signed one is served again, so verification fails) and
 * its route (404); route.del does the same for the first. HAProxy never
 * reloads.
 *
 * One set of processes serves the suite (CK_NOFORK); the tests run in
 * order and build on each other.
 */
#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "route.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/pebble.h"
#include "tests/harness/unit.h"

#define SITE "0b5e8a52-0c1e-4f5e-9d4a-c00000000001"
#define D1 "site1.test"
#define D2 "www.site1.test"
#define CERT_WAIT_MS 30000
#define GONE_WAIT_MS 5000
#define MAX_EVENTS 256

#define ST_PENDING BERTH__V1__CERT_STATE__CERT_STATE_PENDING
#define ST_VALID BERTH__V1__CERT_STATE__CERT_STATE_VALID
#define ST_FAILED BERTH__V1__CERT_STATE__CERT_STATE_FAILED
#define ST_NONE BERTH__V1__CERT_STATE__CERT_STATE_UNSPECIFIED

static h_nats nats;
static h_pebble pb;
static bus *tb; /* the test's bus: publishes routes, hears statuses */
static char *tmp;
static char edge_dir[1024], edge_log[1024], root_pem[1100];
static h_proc edge, web;
static int http_port, https_port, web_port;
static char upstream[32];
static uint64_t revision = 100;

/* ------------------------------------------------------------ events */

typedef struct event {
    char subject[300];
    char domain[256];
    char site_id[64];
    char reason[600];
    int state;
    int64_t not_after_ms;
} event;

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static event events[MAX_EVENTS];
static int nevents;

static int on_status(bus_msg *m, void *ud)
{
    Berth__V1__CertStatus *s = (Berth__V1__CertStatus *)m->msg;

    (void)ud;
    pthread_mutex_lock(&ev_mu);
    if (nevents < MAX_EVENTS) {
        event *e = &events[nevents++];

        snprintf(e->subject, sizeof(e->subject), "%s", m->subject);
        snprintf(e->domain, sizeof(e->domain), "%s", s->domain);
        snprintf(e->site_id, sizeof(e->site_id), "%s", s->site_id);
        snprintf(e->reason, sizeof(e->reason), "%s", s->reason);
        e->state = s->state;
        e->not_after_ms = s->not_after_ms;
    }
    pthread_mutex_unlock(&ev_mu);
    return 0;
}

/* Waits for a status of domain in state, at index from or later, and
 * copies it; returns its index or -1. A FAILED status is reported. */
static int wait_event(const char *domain, int state, int from, event *out,
                      int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int i, said = from;

    while (clock_mono_ms() < end) {
        pthread_mutex_lock(&ev_mu);
        for (i = from; i < nevents; i++) {
            if (strcmp(events[i].domain, domain) != 0)
                continue;
            if (events[i].state == state) {
                if (out != NULL)
                    *out = events[i];
                pthread_mutex_unlock(&ev_mu);
                return i;
            }
            if (events[i].state == ST_FAILED && i >= said) {
                h_say("%s: failed: %s", domain, events[i].reason);
                said = i + 1;
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

/* How many statuses of domain in state arrived at index from or later. */
static int events_of(const char *domain, int state, int from)
{
    int i, n = 0;

    pthread_mutex_lock(&ev_mu);
    for (i = from; i < nevents; i++)
        if (strcmp(events[i].domain, domain) == 0 && events[i].state == state)
            n++;
    pthread_mutex_unlock(&ev_mu);
    return n;
}

/* ------------------------------------------------------------ HTTP(S) */

typedef struct answer {
    CURLcode cc;
    long status;
    buf body;
    int chain_len;          /* certificates the server presented */
    char serial[128];       /* of the leaf, hex */
    char san[512];          /* the leaf's DNS names, "a,b" */
    char issuer[256];       /* the leaf's issuer */
} answer;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    buf *b = ud;

    buf_append(b, data, size * n);
    return size * n;
}

/* Fills serial, san and issuer from the leaf's PEM. */
static void leaf_facts(const char *pem, answer *a)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    GENERAL_NAMES *names;
    BIGNUM *bn;
    char *hex;
    int i;

    BIO_free(bio);
    if (x == NULL) {
        ERR_clear_error();
        return;
    }
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(a->serial, sizeof(a->serial), "%s", hex != NULL ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
    X509_NAME_oneline(X509_get_issuer_name(x), a->issuer, sizeof(a->issuer));
    names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        size_t len = strlen(a->san);

        if (gn->type != GEN_DNS)
            continue;
        snprintf(a->san + len, sizeof(a->san) - len, "%s%s", len ? "," : "",
                 (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
    }
    GENERAL_NAMES_free(names);
    X509_free(x);
}

/* GETs / through HAProxy: over HTTPS with the SNI host (verify: against
 * Pebble's root only, with the host name checked; else nothing checked,
 * and the presented leaf is described), or over HTTP with the Host
 * header. a->body must be freed by the caller (answer_free). */
static void fetch_page(const char *host, int https, int verify, answer *a)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL, *resolve = NULL;
    char url[512], h[300], rs[300];

    memset(a, 0, sizeof(*a));
    buf_init(&a->body, 1 << 20);
    ck_assert_ptr_nonnull(c);
    if (https) {
        snprintf(url, sizeof(url), "https://%s:%d/", host, https_port);
        snprintf(rs, sizeof(rs), "%s:%d:127.0.0.1", host, https_port);
        resolve = curl_slist_append(NULL, rs);
        curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
        if (verify) {
            curl_easy_setopt(c, CURLOPT_CAINFO, root_pem);
            curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        } else {
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
    } else {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", http_port);
        snprintf(h, sizeof(h), "Host: %s", host);
        hdr = curl_slist_append(NULL, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a->body);
    a->cc = curl_easy_perform(c);
    if (a->cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    if (https && a->cc == CURLE_OK) {
        struct curl_certinfo *ci = NULL;

        if (curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) == CURLE_OK &&
            ci != NULL && ci->num_of_certs > 0) {
            struct curl_slist *s;

            a->chain_len = ci->num_of_certs;
            for (s = ci->certinfo[0]; s != NULL; s = s->next)
                if (strncmp(s->data, "Cert:", 5) == 0)
                    leaf_facts(s->data + 5, a);
        }
    }
    curl_slist_free_all(hdr);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
}

static void answer_free(answer *a)
{
    buf_free(&a->body);
}

static int body_has(const answer *a, const char *needle)
{
    return a->body.data != NULL && strstr(a->body.data, needle) != NULL;
}

/* Polls until host answers status with needle in the body (https: with
 * verification). Returns the milliseconds it took or -1 (and says what it
 * saw last). */
static double wait_page(const char *host, int https, long status,
                        const char *needle, int timeout_ms)
{
    int64_t t0 = clock_mono_ns(), end = clock_mono_ms() + timeout_ms;
    answer a;

    for (;;) {
        fetch_page(host, https, https, &a);
        if (a.cc == CURLE_OK && a.status == status &&
            (needle == NULL || body_has(&a, needle))) {
            answer_free(&a);
            return (double)(clock_mono_ns() - t0) / 1e6;
        }
        if (clock_mono_ms() >= end)
            break;
        answer_free(&a);
        clock_sleep_ms(20);
    }
    h_say("%s (%s): wanted %ld %s, got %s, %ld %s", host,
          https ? "https" : "http", status, needle ? needle : "",
          curl_easy_strerror(a.cc), a.status,
          a.body.data ? a.body.data : "");
    answer_free(&a);
    return -1;
}

/* Polls until HTTPS with the SNI host no longer verifies against Pebble's
 * root. Returns 1, or 0 after timeout_ms. */
static int wait_unverified(const char *host, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    for (;;) {
        answer a;
        CURLcode cc;

        fetch_page(host, 1, 1, &a);
        cc = a.cc;
        answer_free(&a);
        if (cc == CURLE_PEER_FAILED_VERIFICATION)
            return 1;
        if (clock_mono_ms() >= end) {
            h_say("%s: still %s", host, curl_easy_strerror(cc));
            return 0;
        }
        clock_sleep_ms(20);
    }
}

/* The leaf HAProxy presents for the SNI host, without verification. */
static void presented(const char *host, answer *a)
{
    fetch_page(host, 1, 0, a);
    ck_assert_msg(a->cc == CURLE_OK, "%s: %s", host, curl_easy_strerror(a->cc));
    ck_assert_int_gt(a->chain_len, 0);
}

/* ------------------------------------------------------------ bus */

static void publish_set(const char *const *domains, int n)
{
    Berth__V1__RouteSet m = BERTH__V1__ROUTE_SET__INIT;

    m.site_id = SITE;
    m.domains = (char **)domains;
    m.n_domains = (size_t)n;
    m.upstream = upstream;
    m.running = 1;
    m.revision = ++revision;
    ck_assert_int_eq(bus_js_publish(tb, "route.set." SITE, &m.base, NULL, 3000),
                     0);
}

static void publish_del(void)
{
    Berth__V1__RouteDel m = BERTH__V1__ROUTE_DEL__INIT;

    m.site_id = SITE;
    m.revision = ++revision;
    ck_assert_int_eq(bus_js_publish(tb, "route.del." SITE, &m.base, NULL, 3000),
                     0);
}

/* ------------------------------------------------------------ HAProxy */

/* One command to a unix socket of the edge's HAProxy; the answer in out. */
static int hx_cmd(const char *sock, const char *cmd, buf *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char path[1100], chunk[4096];
    ssize_t r;
    int fd;

    snprintf(path, sizeof(path), "%s/run/%s", edge_dir, sock);
    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (write(fd, cmd, strlen(cmd)) < 0 || write(fd, "\n", 1) < 0) {
        close(fd);
        return -1;
    }
    shutdown(fd, SHUT_WR);
    while ((r = read(fd, chunk, sizeof(chunk))) > 0)
        buf_append(out, chunk, (size_t)r);
    close(fd);
    return 0;
}

/* HAProxy's reload count from the master CLI. */
static long reloads(void)
{
    int64_t end = clock_mono_ms() + 5000;
    buf out;
    char *line;
    long n = -1;

    buf_init(&out, 1 << 16);
    while (hx_cmd("master.sock", "show proc", &out) != 0 &&
           clock_mono_ms() < end)
        clock_sleep_ms(20);
    for (line = out.data; line != NULL; line = strchr(line, '\n')) {
        long pid, r;
        char type[16];

        while (*line == '\n')
            line++;
        if (sscanf(line, "%ld %15s %ld", &pid, type, &r) == 3 &&
            strcmp(type, "master") == 0)
            n = r;
    }
    buf_free(&out);
    return n;
}

/* Whether HAProxy's crt-list names the domain's certificate file. */
static int in_crt_list(const char *domain)
{
    char needle[300], cmd[1300];
    buf out;
    int found;

    snprintf(cmd, sizeof(cmd), "show ssl crt-list -n %s/certs.list", edge_dir);
    buf_init(&out, 1 << 20);
    ck_assert_int_eq(hx_cmd("admin.sock", cmd, &out), 0);
    snprintf(needle, sizeof(needle), "/%s.pem", domain);
    found = out.data != NULL && strstr(out.data, needle) != NULL;
    buf_free(&out);
    return found;
}

/* The entries of HAProxy's challenge map (lines of "show map"). */
static int challenges(void)
{
    char cmd[1300], *line;
    buf out;
    int n = 0;

    snprintf(cmd, sizeof(cmd), "show map %s/maps/challenges.map", edge_dir);
    buf_init(&out, 1 << 20);
    ck_assert_int_eq(hx_cmd("admin.sock", cmd, &out), 0);
    ck_assert_ptr_nonnull(out.data);
    ck_assert_ptr_null(strstr(out.data, "Unknown"));
    for (line = out.data; line != NULL; line = strchr(line, '\n')) {
        while (*line == '\n')
            line++;
        if (strncmp(line, "0x", 2) == 0) /* "0x<ref> <token> <answer>" */
            n++;
    }
    buf_free(&out);
    return n;
}

/* The stored certificate of domain: present with mode 0600, or absent. */
static void check_stored(const char *domain, int want)
{
    char path[1400];
    struct stat st;

    snprintf(path, sizeof(path), "%s/certs/%s.pem", edge_dir, domain);
    if (!want) {
        ck_assert_msg(stat(path, &st) != 0, "%s still exists", path);
        return;
    }
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}

/* ------------------------------------------------------------ processes */

static void start_edge(void)
{
    char nats_env[128], data[1100], http[64], https[64], dir[128];
    char bundle[PATH_MAX + 32];
    char *argv[] = {NULL, NULL};
    char *env[] = {nats_env,
                   data,
                   http,
                   https,
                   dir,
                   bundle,
                   "BERTH_ACME_EMAIL=admin@site1.test",
                   "BERTH_STRICT_SUBJECTS=1",
                   "BERTH_LOG_LEVEL=debug",
                   NULL};

    argv[0] = (char *)h_bin("berth-edge");
    snprintf(nats_env, sizeof(nats_env), "BERTH_NATS_URL=%s", nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", edge_dir);
    snprintf(http, sizeof(http), "BERTH_EDGE_HTTP_ADDR=127.0.0.1:%d",
             http_port);
    snprintf(https, sizeof(https), "BERTH_EDGE_HTTPS_ADDR=127.0.0.1:%d",
             https_port);
    snprintf(dir, sizeof(dir), "BERTH_ACME_DIRECTORY=%s", pb.directory_url);
    snprintf(bundle, sizeof(bundle), "BERTH_ACME_CA_BUNDLE=%s", pb.ca_bundle);
    ck_assert_int_eq(h_proc_start(&edge, "edge", argv, env, edge_log), 0);
    ck_assert_int_eq(h_proc_wait_log(&edge, "msg=ready", 20000), 0);
}

static void start_web(void)
{
    char dir[1100], file[1200], addr[32], log[1100];
    char *argv[] = {"busybox", "httpd", "-f", "-p", addr, "-h", dir, NULL};
    const char *text = "this is site one over TLS\n";

    snprintf(dir, sizeof(dir), "%s/web", tmp);
    ck_assert_int_eq(fs_mkdirs(dir, 0755), 0);
    snprintf(file, sizeof(file), "%s/index.html", dir);
    ck_assert_int_eq(fs_write_atomic(file, text, strlen(text), 0644), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", web_port);
    snprintf(log, sizeof(log), "%s/web.log", tmp);
    ck_assert_int_eq(h_proc_start(&web, "web", argv, NULL, log), 0);
    ck_assert_int_eq(h_wait_port(web_port, 5000), 0);
}

/* ------------------------------------------------------------ suite */

static void suite_up(void)
{
    buf root;

    ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
    tmp = h_tempdir("edge-tls");
    ck_assert_ptr_nonnull(tmp);
    snprintf(edge_dir, sizeof(edge_dir), "%s/edge", tmp);
    snprintf(edge_log, sizeof(edge_log), "%s/edge.log", tmp);
    snprintf(root_pem, sizeof(root_pem), "%s/pebble-root.pem", tmp);
    http_port = h_free_port();
    https_port = h_free_port();
    web_port = h_free_port();
    ck_assert(http_port > 0 && https_port > 0 && web_port > 0);
    snprintf(upstream, sizeof(upstream), "127.0.0.1:%d", web_port);

    /* Pebble validates HTTP-01 on HAProxy's HTTP port. */
    ck_assert_int_eq(h_pebble_start(&pb, &(h_pebble_opts){.http_port =
                                                              http_port}),
                     0);
    buf_init(&root, 1 << 16);
    ck_assert_int_eq(h_pebble_get(&pb, "/roots/0", &root), 200);
    ck_assert_ptr_nonnull(strstr(root.data, "-----BEGIN CERTIFICATE-----"));
    ck_assert_int_eq(fs_write_atomic(root_pem, root.data, root.len, 0644), 0);
    buf_free(&root);

    ck_assert_int_eq(h_nats_start(&nats), 0);
    start_web();
    tb = h_bus_open(nats.url, "berth-edge-test");
    ck_assert_int_eq(bus_js_setup(tb), 0);
    ck_assert_int_eq(bus_subscribe(tb, "cert.status.>", NULL, on_status, NULL),
                     0);
    ck_assert_int_eq(natsConnection_Flush(bus_nats(tb)), NATS_OK);
    start_edge();
}

static void suite_down(void)
{
    if (edge.pid != 0)
        h_proc_stop(&edge, SIGTERM, 10000);
    h_proc_free(&edge);
    h_proc_free(&web);
    bus_close(tb);
    h_nats_stop(&nats);
    h_pebble_stop(&pb);
    h_tempdir_drop(tmp, "edge tls test");
    curl_global_cleanup();
}

/* ------------------------------------------------------------ tests */

START_TEST(first_domain_gets_a_certificate)
{
    const char *d[] = {D1};
    int64_t t0;
    double ms;
    int pending, valid, from = event_count();
    event ev;
    answer a;

    /* Before: the default certificate, which Pebble's root does not sign. */
    ck_assert(wait_unverified(D1, GONE_WAIT_MS));

    t0 = clock_mono_ms();
    publish_set(d, 1);
    ck_assert(wait_page(D1, 0, 200, "site one over TLS", 5000) >= 0);
    pending = wait_event(D1, ST_PENDING, from, &ev, CERT_WAIT_MS);
    ck_assert_int_ge(pending, 0);
    ck_assert_str_eq(ev.subject, "cert.status." D1);
    ck_assert_str_eq(ev.site_id, SITE);
    valid = wait_event(D1, ST_VALID, from, &ev, CERT_WAIT_MS);
    ck_assert_msg(valid >= 0, "no certificate for " D1 " within %d ms",
                  CERT_WAIT_MS);
    ck_assert_int_gt(valid, pending);
    ck_assert_str_eq(ev.subject, "cert.status." D1);
    ck_assert_str_eq(ev.site_id, SITE);
    ck_assert_int_gt(ev.not_after_ms, clock_wall_ms() + 86400000LL);
    ck_assert_int_eq(events_of(D1, ST_FAILED, from), 0);

    /* The page over HTTPS, the chain verified against Pebble's root. */
    ms = wait_page(D1, 1, 200, "site one over TLS", 5000);
    ck_assert(ms >= 0);
    printf("edge: route.set with a new domain -> HTTPS verified by Pebble's "
           "root: %lld ms\n",
           (long long)(clock_mono_ms() - t0));
    fflush(stdout);

    /* What HAProxy presents: Pebble's leaf for the name, and its chain. */
    presented(D1, &a);
    ck_assert_str_eq(a.san, D1);
    ck_assert_int_ge(a.chain_len, 2);
    ck_assert_ptr_nonnull(strstr(a.issuer, "Pebble"));
    answer_free(&a);
    check_stored(D1, 1);
    ck_assert(in_crt_list(D1));
    /* The challenge answered by HAProxy is taken out after the order. */
    ck_assert_int_eq(challenges(), 0);
    ck_assert_int_eq(reloads(), 0);
}
END_TEST

START_TEST(second_domain_gets_its_own_certificate)
{
    const char *d[] = {D1, D2};
    int from = event_count();
    answer a1, a2;
    event ev;

    publish_set(d, 2);
    ck_assert(wait_page(D2, 0, 200, "site one over TLS", 5000) >= 0);
    ck_assert_int_ge(wait_event(D2, ST_PENDING, from, &ev, CERT_WAIT_MS), 0);
    ck_assert_str_eq(ev.subject, "cert.status." D2);
    ck_assert_int_ge(wait_event(D2, ST_VALID, from, &ev, CERT_WAIT_MS), 0);
    ck_assert_str_eq(ev.site_id, SITE);
    ck_assert(wait_page(D2, 1, 200, "site one over TLS", 5000) >= 0);
    ck_assert(wait_page(D1, 1, 200, "site one over TLS", 5000) >= 0);

    /* Two certificates, each for its own name; the first one is kept. */
    presented(D1, &a1);
    presented(D2, &a2);
    ck_assert_str_eq(a1.san, D1);
    ck_assert_str_eq(a2.san, D2);
    ck_assert_str_ne(a1.serial, a2.serial);
    answer_free(&a1);
    answer_free(&a2);
    ck_assert_int_eq(events_of(D1, ST_PENDING, from), 0);
    ck_assert_int_eq(events_of(D1, ST_NONE, from), 0);
    check_stored(D2, 1);
    ck_assert(in_crt_list(D2));
    ck_assert_int_eq(challenges(), 0);
    ck_assert_int_eq(reloads(), 0);
}
END_TEST

START_TEST(removed_domain_loses_certificate_and_route)
{
    const char *d[] = {D1};
    int from = event_count();
    answer a;
    event ev;

    publish_set(d, 1);
    ck_assert(wait_page(D2, 0, 404, "No site is served", 5000) >= 0);
    ck_assert(wait_unverified(D2, GONE_WAIT_MS));
    ck_assert_int_ge(wait_event(D2, ST_NONE, from, &ev, GONE_WAIT_MS), 0);
    ck_assert_str_eq(ev.subject, "cert.status." D2);
    ck_assert_str_eq(ev.reason, "removed");
    /* The default certificate is served for that name now. */
    presented(D2, &a);
    ck_assert_ptr_null(strstr(a.san, D2));
    ck_assert_ptr_null(strstr(a.issuer, "Pebble"));
    answer_free(&a);
    check_stored(D2, 0);
    ck_assert(!in_crt_list(D2));

    /* The other domain of the site keeps its certificate and route. */
    ck_assert(wait_page(D1, 1, 200, "site one over TLS", 5000) >= 0);
    presented(D1, &a);
    ck_assert_str_eq(a.san, D1);
    answer_free(&a);
    ck_assert_int_eq(reloads(), 0);
}
END_TEST

START_TEST(deleted_route_loses_certificate_and_route)
{
    int from = event_count();
    answer a;
    event ev;

    publish_del();
    ck_assert(wait_page(D1, 0, 404, "No site is served", 5000) >= 0);
    ck_assert(wait_unverified(D1, GONE_WAIT_MS));
    ck_assert_int_ge(wait_event(D1, ST_NONE, from, &ev, GONE_WAIT_MS), 0);
    ck_assert_str_eq(ev.reason, "removed");
    presented(D1, &a);
    ck_assert_ptr_null(strstr(a.san, D1));
    ck_assert_ptr_null(strstr(a.issuer, "Pebble"));
    ck_assert_int_eq(a.status, 404); /* no route over HTTPS either */
    answer_free(&a);
    check_stored(D1, 0);
    ck_assert(!in_crt_list(D1));
    ck_assert_int_eq(reloads(), 0);
    ck_assert(h_proc_alive(&edge));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("edge_tls");
    TCase *tc = tcase_create("edge");

    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, first_domain_gets_a_certificate);
    tcase_add_test(tc, second_domain_gets_its_own_certificate);
    tcase_add_test(tc, removed_domain_loses_certificate_and_route);
    tcase_add_test(tc, deleted_route_loses_certificate_and_route);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
