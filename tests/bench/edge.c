/* edge.c - edge benchmarks, everything real: nats-server with JetStream,
 * the berth-edge binary with the HAProxy it runs, busybox httpd backends
 * and (for certificates) Pebble with PEBBLE_VA_NOSLEEP=1.
 *
 *   1. route.set published to JetStream -> the first proxied 200 for that
 *      host through HAProxy: one new site and host per sample, polled on a
 *      kept-alive connection every 0.5 ms. Target p99 <= 20 ms.
 *   2. 10,000 routes from scratch: a fresh edge data dir and a fresh
 *      nats-server, the bench plays the panel and answers route.list with
 *      10,000 routes; from the edge's start until the last route and a
 *      random sample are served. Target <= 2 s. Then 10,000 route.set
 *      events published to the stream: the time to publish them (each
 *      acked) and until the last one and a random sample are served.
 *   3. One certificate from Pebble: route.set with a new domain -> HTTPS
 *      with that SNI verifies against Pebble's root (a few samples).
 *
 * Each part runs on its own nats-server, so the stream and the edge's
 * durable consumer start empty.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "route.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/pebble.h"

#define LAT_SAMPLES 250
#define BULK 10000
#define SPOT_CHECKS 25
#define CERT_SAMPLES 5
#define CERT_WAIT_MS 30000

#define die(...)                                                              \
    do {                                                                      \
        fprintf(stderr, "bench: " __VA_ARGS__);                               \
        fputc('\n', stderr);                                                  \
        exit(1);                                                              \
    } while (0)

static char *tmp;
static h_nats nats;
static bus *tb; /* the bench's bus: publishes routes, plays the panel */
static h_proc edge, web1, web2;
static char edge_dir[1100], edge_log[1100];
static int http_port, https_port;
static char up1[32], up2[32];
static uint64_t revision = 100;

/* ------------------------------------------------------------ the panel */

/* What route.list returns: sites "<prefix>-NNNNN" with one domain each. */
struct lroute {
    char site[48];
    char domain[64];
    char *dp[1];
    const char *upstream;
    uint64_t revision;
};
static struct lroute *list;
static int list_n, list_cap;
static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;

static struct lroute *list_add(const char *site, const char *domain,
                               const char *upstream, uint64_t rev)
{
    struct lroute *r;

    pthread_mutex_lock(&list_mu);
    if (list_n == list_cap) {
        list_cap = list_cap ? list_cap * 2 : 1024;
        list = realloc(list, sizeof(*list) * (size_t)list_cap);
        if (list == NULL)
            die("out of memory");
    }
    r = &list[list_n++];
    snprintf(r->site, sizeof(r->site), "%s", site);
    snprintf(r->domain, sizeof(r->domain), "%s", domain);
    r->upstream = upstream;
    r->revision = rev;
    pthread_mutex_unlock(&list_mu);
    return r;
}

static void list_clear(void)
{
    pthread_mutex_lock(&list_mu);
    list_n = 0;
    pthread_mutex_unlock(&list_mu);
}

static int on_route_list(bus_msg *msg, void *ud)
{
    Berth__V1__RouteList out = BERTH__V1__ROUTE_LIST__INIT;
    Berth__V1__RouteSet *sets, **ptrs;
    int i, rc;

    (void)ud;
    pthread_mutex_lock(&list_mu);
    sets = calloc((size_t)list_n + 1, sizeof(*sets));
    ptrs = calloc((size_t)list_n + 1, sizeof(*ptrs));
    if (sets == NULL || ptrs == NULL)
        die("out of memory");
    for (i = 0; i < list_n; i++) {
        berth__v1__route_set__init(&sets[i]);
        list[i].dp[0] = list[i].domain;
        sets[i].site_id = list[i].site;
        sets[i].domains = list[i].dp;
        sets[i].n_domains = 1;
        sets[i].upstream = (char *)list[i].upstream;
        sets[i].running = 1;
        sets[i].revision = list[i].revision;
        ptrs[i] = &sets[i];
    }
    out.routes = ptrs;
    out.n_routes = (size_t)list_n;
    out.revision = revision;
    rc = bus_reply(msg, &out.base);
    pthread_mutex_unlock(&list_mu);
    free(sets);
    free(ptrs);
    return rc;
}

/* Publishes route.set.<site> as the panel does. */
static void publish_set(const char *site, const char *domain,
                        const char *upstream, uint64_t rev)
{
    Berth__V1__RouteSet m = BERTH__V1__ROUTE_SET__INIT;
    char subject[128], *d[1] = {(char *)domain};

    m.site_id = (char *)site;
    m.domains = d;
    m.n_domains = 1;
    m.upstream = (char *)upstream;
    m.running = 1;
    m.revision = rev;
    snprintf(subject, sizeof(subject), "route.set.%s", site);
    if (bus_js_publish(tb, subject, &m.base, NULL, 5000) != 0)
        die("publishing %s failed", subject);
}

/* ------------------------------------------------------------ HTTP */

struct body {
    char data[512];
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct body *b = ud;
    size_t len = size * n, room = sizeof(b->data) - 1 - b->len;

    if (len < room)
        room = len;
    memcpy(b->data + b->len, data, room);
    b->len += room;
    b->data[b->len] = '\0';
    return size * n;
}

static CURL *hc; /* kept alive to HAProxy's HTTP port */

/* GET / with the Host header on the kept-alive handle; the status (0: no
 * answer) and the start of the body in b. */
static long get(const char *host, struct body *b)
{
    struct curl_slist *hdr;
    char url[96], h[160];
    long status = 0;

    b->len = 0;
    b->data[0] = '\0';
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", http_port);
    snprintf(h, sizeof(h), "Host: %s", host);
    hdr = curl_slist_append(NULL, h);
    curl_easy_setopt(hc, CURLOPT_URL, url);
    curl_easy_setopt(hc, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(hc, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(hc, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(hc, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(hc, CURLOPT_WRITEDATA, b);
    if (curl_easy_perform(hc) == CURLE_OK)
        curl_easy_getinfo(hc, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(hc, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    return status;
}

/* 1 when host answers 200 with needle in the body. */
static int served(const char *host, const char *needle)
{
    struct body b;

    return get(host, &b) == 200 && strstr(b.data, needle) != NULL;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Polls host every 0.5 ms until served; returns the mono ns it was first
 * seen served, or -1 after timeout_ms. */
static int64_t poll_served(const char *host, const char *needle, int timeout_ms)
{
    int64_t end = clock_mono_ns() + (int64_t)timeout_ms * 1000000;

    for (;;) {
        if (served(host, needle))
            return clock_mono_ns();
        if (clock_mono_ns() >= end)
            return -1;
        sleep_us(500);
    }
}

/* ------------------------------------------------------------ processes */

static void start_web(h_proc *p, const char *name, int port, const char *text)
{
    char dir[1100], file[1200], addr[32], log[1100];
    char *argv[] = {"busybox", "httpd", "-f", "-p", addr, "-h", dir, NULL};

    snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
    snprintf(file, sizeof(file), "%s/index.html", dir);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "%s/%s.log", tmp, name);
    if (fs_mkdirs(dir, 0755) != 0 ||
        fs_write_atomic(file, text, strlen(text), 0644) != 0 ||
        h_proc_start(p, name, argv, NULL, log) != 0 ||
        h_wait_port(port, 5000) != 0)
        die("busybox httpd %s did not start", name);
}

/* A fresh nats-server and the bench's bus on it, answering route.list. */
static void start_nats(void)
{
    if (h_nats_start(&nats) != 0)
        die("nats-server did not start");
    tb = h_bus_open(nats.url, "berth-edge-bench");
    if (bus_js_setup(tb) != 0 ||
        bus_serve(tb, "route-list", "route.list", on_route_list, NULL) != 0)
        die("cannot set up JetStream or serve route.list");
}

static void stop_nats(void)
{
    bus_close(tb);
    tb = NULL;
    h_nats_stop(&nats);
}

/* A berth-edge with a new data dir "<tmp>/<name>" on fresh ports; acme:
 * Pebble's directory, or NULL. Returns the mono ns of the start. */
static int64_t start_edge(const char *name, const h_pebble *acme,
                          int http, int https)
{
    static char nats_env[128], data[1200], h1[64], h2[64], dir[128];
    static char bundle[PATH_MAX + 32];
    char *argv[] = {(char *)h_bin("berth-edge"), NULL};
    char *env[12];
    int n = 0;
    int64_t t0;

    http_port = http;
    https_port = https;
    snprintf(edge_dir, sizeof(edge_dir), "%s/%s", tmp, name);
    snprintf(edge_log, sizeof(edge_log), "%s/%s.log", tmp, name);
    snprintf(nats_env, sizeof(nats_env), "BERTH_NATS_URL=%s", nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", edge_dir);
    snprintf(h1, sizeof(h1), "BERTH_EDGE_HTTP_ADDR=127.0.0.1:%d", http);
    snprintf(h2, sizeof(h2), "BERTH_EDGE_HTTPS_ADDR=127.0.0.1:%d", https);
    env[n++] = nats_env;
    env[n++] = data;
    env[n++] = h1;
    env[n++] = h2;
    env[n++] = "BERTH_LOG_LEVEL=info";
    /* No heal during the measurements. */
    env[n++] = "BERTH_EDGE_ROUTE_LIST_MS=600000";
    if (acme != NULL) {
        snprintf(dir, sizeof(dir), "BERTH_ACME_DIRECTORY=%s",
                 acme->directory_url);
        snprintf(bundle, sizeof(bundle), "BERTH_ACME_CA_BUNDLE=%s",
                 acme->ca_bundle);
        env[n++] = dir;
        env[n++] = bundle;
        env[n++] = "BERTH_ACME_EMAIL=admin@bench.test";
    }
    env[n] = NULL;
    t0 = clock_mono_ns();
    if (h_proc_start(&edge, "edge", argv, env, edge_log) != 0)
        die("berth-edge did not start");
    return t0;
}

static void wait_edge_ready(void)
{
    if (h_proc_wait_log(&edge, "msg=ready", 30000) != 0)
        die("berth-edge not ready (log %s)", edge_log);
}

static void stop_edge(void)
{
    h_proc_stop(&edge, SIGTERM, 10000);
    h_proc_free(&edge);
}

/* ------------------------------------------------------------ figures */

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, int p)
{
    int i = (n * p + 99) / 100 - 1;

    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return sorted[i];
}

/* ------------------------------------------------------------ 1 */

static void bench_latency(void)
{
    double ms[LAT_SAMPLES], pub[LAT_SAMPLES], after[LAT_SAMPLES];
    int i;

    start_nats();
    start_edge("edge-lat", NULL, h_free_port(), h_free_port());
    wait_edge_ready();
    /* The edge is serving: an unknown host gets the 404 page. */
    {
        int64_t end = clock_mono_ms() + 10000;
        struct body b;

        while (get("warm.lat.bench", &b) != 404) {
            if (clock_mono_ms() >= end)
                die("HAProxy does not answer 404 for an unknown host");
            clock_sleep_ms(5);
        }
    }
    for (i = 0; i < LAT_SAMPLES; i++) {
        char site[48], host[64];
        const char *up = i % 2 ? up2 : up1;
        const char *needle = i % 2 ? "site two" : "site one";
        int64_t t0, t1, seen;

        snprintf(site, sizeof(site), "lat-%05d", i);
        snprintf(host, sizeof(host), "l%05d.lat.bench", i);
        list_add(site, host, up, ++revision);
        t0 = clock_mono_ns();
        publish_set(site, host, up, revision);
        t1 = clock_mono_ns();
        seen = poll_served(host, needle, 5000);
        if (seen < 0)
            die("%s was not served within 5 s", host);
        ms[i] = (double)(seen - t0) / 1e6;
        pub[i] = (double)(t1 - t0) / 1e6;
        after[i] = (double)(seen - t1) / 1e6;
        sleep_us(2000); /* let the edge settle between samples */
    }
    qsort(ms, LAT_SAMPLES, sizeof(double), cmpd);
    qsort(pub, LAT_SAMPLES, sizeof(double), cmpd);
    qsort(after, LAT_SAMPLES, sizeof(double), cmpd);
    printf("edge  route.set published -> first proxied 200 (%d new sites, "
           "polled every 0.5 ms): p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  "
           "max %.2f ms  (target p99 <= 20 ms: %s)\n",
           LAT_SAMPLES, pct(ms, LAT_SAMPLES, 50), pct(ms, LAT_SAMPLES, 90),
           pct(ms, LAT_SAMPLES, 99), ms[LAT_SAMPLES - 1],
           pct(ms, LAT_SAMPLES, 99) <= 20.0 ? "met" : "MISSED");
    printf("edge    the JetStream publish until its ack: p50 %.2f ms  p90 %.2f ms  "
           "p99 %.2f ms  max %.2f ms\n",
           pct(pub, LAT_SAMPLES, 50), pct(pub, LAT_SAMPLES, 90),
           pct(pub, LAT_SAMPLES, 99), pub[LAT_SAMPLES - 1]);
    printf("edge    the ack -> first proxied 200: p50 %.2f ms  p90 %.2f ms  "
           "p99 %.2f ms  max %.2f ms\n",
           pct(after, LAT_SAMPLES, 50), pct(after, LAT_SAMPLES, 90),
           pct(after, LAT_SAMPLES, 99), after[LAT_SAMPLES - 1]);
    fflush(stdout);
    stop_edge();
    stop_nats();
    list_clear();
}

/* ------------------------------------------------------------ 2 */

/* Polls the last host, then a random sample and the first; returns the
 * mono ns when all of them were served. */
static int64_t all_served(const char *fmt, int n, const char *needle,
                          int timeout_ms)
{
    char host[64];
    int64_t at;
    int i;

    snprintf(host, sizeof(host), fmt, n - 1);
    if ((at = poll_served(host, needle, timeout_ms)) < 0)
        die("%s was not served within %d ms (log %s)", host, timeout_ms,
            edge_log);
    for (i = 0; i <= SPOT_CHECKS; i++) {
        int k = i == SPOT_CHECKS ? 0 : rand() % n;
        int64_t t;

        snprintf(host, sizeof(host), fmt, k);
        if (served(host, needle))
            continue; /* served before the last one was */
        if ((t = poll_served(host, needle, timeout_ms)) < 0)
            die("%s was not served within %d ms", host, timeout_ms);
        at = t;
    }
    return at;
}

static void bench_bulk(void)
{
    int64_t t0, t_ready, t_all, t_pub;
    char *logtxt = NULL, *healed;
    size_t len;
    int i;

    start_nats();
    for (i = 0; i < BULK; i++) {
        char site[48], host[64];

        snprintf(site, sizeof(site), "bulk-%05d", i);
        snprintf(host, sizeof(host), "b%05d.bulk.bench", i);
        list_add(site, host, i % 2 ? up2 : up1, 50);
    }
    /* A fresh data dir: nothing on disk, the routes come from route.list. */
    t0 = start_edge("edge-bulk", NULL, h_free_port(), h_free_port());
    wait_edge_ready();
    t_ready = clock_mono_ns();
    t_all = all_served("b%05d.bulk.bench", BULK, "site", 20000);
    if (!served("b09999.bulk.bench", "site two") ||
        !served("b00000.bulk.bench", "site one"))
        die("bulk routes lead to the wrong backend");
    if (fs_read_file(edge_log, 1 << 22, &logtxt, &len) == 0 &&
        (healed = strstr(logtxt, "routes healed")) != NULL) {
        char *ms = strstr(healed, " ms="), *nl = strchr(healed, '\n');

        if (ms != NULL && (nl == NULL || ms < nl))
            printf("edge    (the edge logged the list applied in %ld ms)\n",
                   strtol(ms + 4, NULL, 10));
    }
    free(logtxt);
    printf("edge  %d routes from scratch via route.list: edge start -> all "
           "served %.0f ms (start -> ready %.0f ms)  (target <= 2000 ms: %s)\n",
           BULK, (double)(t_all - t0) / 1e6, (double)(t_ready - t0) / 1e6,
           (double)(t_all - t0) / 1e6 <= 2000.0 ? "met" : "MISSED");
    fflush(stdout);

    /* 10,000 route.set events on top, each published and acked. */
    t0 = clock_mono_ns();
    for (i = 0; i < BULK; i++) {
        char site[48], host[64];

        snprintf(site, sizeof(site), "ev-%05d", i);
        snprintf(host, sizeof(host), "e%05d.events.bench", i);
        publish_set(site, host, i % 2 ? up2 : up1, ++revision);
    }
    t_pub = clock_mono_ns();
    t_all = all_served("e%05d.events.bench", BULK, "site", 60000);
    printf("edge  %d route.set events published to the stream (each acked): "
           "%.0f ms (%.0f events/s); first publish -> all served %.0f ms\n",
           BULK, (double)(t_pub - t0) / 1e6, BULK / ((t_pub - t0) / 1e9),
           (double)(t_all - t0) / 1e6);
    fflush(stdout);
    stop_edge();
    stop_nats();
    list_clear();
}

/* ------------------------------------------------------------ 3 */

static char root_pem[1200];
static pthread_mutex_t cert_mu = PTHREAD_MUTEX_INITIALIZER;
static char valid_domain[64];
static int64_t valid_at;

static int on_status(bus_msg *m, void *ud)
{
    Berth__V1__CertStatus *s = (Berth__V1__CertStatus *)m->msg;

    (void)ud;
    pthread_mutex_lock(&cert_mu);
    if (s->state == BERTH__V1__CERT_STATE__CERT_STATE_VALID &&
        strcmp(s->domain, valid_domain) == 0 && valid_at == 0)
        valid_at = clock_mono_ns();
    if (s->state == BERTH__V1__CERT_STATE__CERT_STATE_FAILED)
        fprintf(stderr, "bench: certificate for %s failed: %s\n", s->domain,
                s->reason);
    pthread_mutex_unlock(&cert_mu);
    return 0;
}

/* HTTPS to host with its SNI, verified against Pebble's root only. */
static int https_verified(const char *host)
{
    CURL *c = curl_easy_init();
    struct curl_slist *resolve;
    char url[128], rs[128];
    struct body b = {.len = 0};
    long status = 0;

    b.data[0] = '\0';
    snprintf(url, sizeof(url), "https://%s:%d/", host, https_port);
    snprintf(rs, sizeof(rs), "%s:%d:127.0.0.1", host, https_port);
    resolve = curl_slist_append(NULL, rs);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_CAINFO, root_pem);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
    return status == 200 && strstr(b.data, "site one") != NULL;
}

static void bench_cert(void)
{
    h_pebble pb;
    buf root;
    double ms[CERT_SAMPLES], vms[CERT_SAMPLES];
    int http = h_free_port(), https = h_free_port();
    int i, rc;

    /* Pebble validates HTTP-01 on HAProxy's HTTP port. */
    rc = h_pebble_start(&pb, &(h_pebble_opts){.http_port = http});
    if (rc == BERTH_ENOENT) {
        printf("edge  certificate from Pebble: skipped (pebble not installed)\n");
        return;
    }
    if (rc != 0)
        die("Pebble did not start");
    snprintf(root_pem, sizeof(root_pem), "%s/pebble-root.pem", tmp);
    buf_init(&root, 1 << 16);
    if (h_pebble_get(&pb, "/roots/0", &root) != 200 ||
        fs_write_atomic(root_pem, root.data, root.len, 0644) != 0)
        die("cannot get Pebble's root");
    buf_free(&root);
    start_nats();
    if (bus_subscribe(tb, "cert.status.>", NULL, on_status, NULL) != 0 ||
        natsConnection_Flush(bus_nats(tb)) != NATS_OK)
        die("cannot subscribe to cert.status");
    start_edge("edge-tls", &pb, http, https);
    wait_edge_ready();
    for (i = 0; i < CERT_SAMPLES; i++) {
        char site[48], host[64];
        int64_t t0, end;

        snprintf(site, sizeof(site), "tls-%05d", i);
        snprintf(host, sizeof(host), "c%d.cert.bench", i);
        pthread_mutex_lock(&cert_mu);
        snprintf(valid_domain, sizeof(valid_domain), "%s", host);
        valid_at = 0;
        pthread_mutex_unlock(&cert_mu);
        list_add(site, host, up1, ++revision);
        t0 = clock_mono_ns();
        publish_set(site, host, up1, revision);
        end = t0 + (int64_t)CERT_WAIT_MS * 1000000;
        while (!https_verified(host)) {
            if (clock_mono_ns() >= end)
                die("no verified certificate for %s within %d ms (log %s)",
                    host, CERT_WAIT_MS, edge_log);
            sleep_us(5000);
        }
        ms[i] = (double)(clock_mono_ns() - t0) / 1e6;
        pthread_mutex_lock(&cert_mu);
        vms[i] = valid_at ? (double)(valid_at - t0) / 1e6 : -1;
        pthread_mutex_unlock(&cert_mu);
    }
    qsort(ms, CERT_SAMPLES, sizeof(double), cmpd);
    qsort(vms, CERT_SAMPLES, sizeof(double), cmpd);
    printf("edge  one certificate from Pebble (NOSLEEP), route.set with a new "
           "domain -> HTTPS with its SNI verifies (%d samples): min %.0f ms  "
           "median %.0f ms  max %.0f ms\n",
           CERT_SAMPLES, ms[0], ms[CERT_SAMPLES / 2], ms[CERT_SAMPLES - 1]);
    printf("edge    route.set -> cert.status VALID: min %.0f ms  median %.0f ms  "
           "max %.0f ms\n",
           vms[0], vms[CERT_SAMPLES / 2], vms[CERT_SAMPLES - 1]);
    fflush(stdout);
    stop_edge();
    stop_nats();
    h_pebble_stop(&pb);
    list_clear();
}

/* ------------------------------------------------------------ main */

int main(void)
{
    int port1, port2;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    srand(12345);
    hc = curl_easy_init();
    tmp = h_tempdir("edge-bench");
    if (tmp == NULL || hc == NULL)
        die("no temp dir");
    port1 = h_free_port();
    port2 = h_free_port();
    snprintf(up1, sizeof(up1), "127.0.0.1:%d", port1);
    snprintf(up2, sizeof(up2), "127.0.0.1:%d", port2);
    start_web(&web1, "web1", port1, "this is site one\n");
    start_web(&web2, "web2", port2, "this is site two\n");

    bench_latency();
    bench_bulk();
    bench_cert();

    curl_easy_cleanup(hc);
    h_proc_free(&web1);
    h_proc_free(&web2);
    h_tempdir_drop(tmp, "edge bench");
    free(list);
    curl_global_cleanup();
    return 0;
}
