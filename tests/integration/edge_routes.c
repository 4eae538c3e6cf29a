/* edge_routes.c - berth-edge routing against a real nats-server, the real
 * HAProxy it runs, and real HTTP backends (busybox httpd): a route.set on
 * the bus is served within milliseconds, stopped sites get the 503 page,
 * unknown hosts the 404 page, deletions and older revisions behave, bad
 * input is refused without harm, an edge killed while routes change
 * converges when it comes back, a killed HAProxy is restarted with every
 * route, HAProxy never reloads, and route.list heals a missed event (the
 * test plays the panel).
 *
 * One nats-server, one edge data directory and two backends serve the
 * whole suite (CK_NOFORK); the tests run in order and build on each other.
 * The test keeps a model of the routes the panel would hold, so that its
 * route.list answers are consistent with what it published.
 */
#include <curl/curl.h>
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
#include "tests/harness/unit.h"

#define SITE_A "0b5e8a52-0c1e-4f5e-9d4a-a00000000001"
#define SITE_B "0b5e8a52-0c1e-4f5e-9d4a-a00000000002"
#define SITE_C "0b5e8a52-0c1e-4f5e-9d4a-a00000000003"
#define SITE_D "0b5e8a52-0c1e-4f5e-9d4a-a00000000004"
#define SITE_E "0b5e8a52-0c1e-4f5e-9d4a-a00000000005"
#define SITE_G "0b5e8a52-0c1e-4f5e-9d4a-a00000000007"
#define SITE_X "0b5e8a52-0c1e-4f5e-9d4a-a00000000009"
#define SAMPLES 20

static h_nats nats;
static bus *tb; /* the test's bus: publishes routes, plays the panel */
static char *tmp;
static char edge_dir[1024], edge_log[1024];
static h_proc edge, web1, web2;
static int http_port, https_port, port1, port2;
static char up1[32], up2[32];
static uint64_t revision = 100; /* the panel's revision counter */

/* ------------------------------------------------------------ model */

/* What the panel holds: the routes route.list returns. */
#define MODEL_MAX 32
struct mroute {
    char site[64];
    char *domains[4];
    int ndomains;
    char upstream[32];
    int running;
    uint64_t revision;
    int used;
};
static struct mroute model[MODEL_MAX];
static pthread_mutex_t model_mu = PTHREAD_MUTEX_INITIALIZER;

static struct mroute *model_get(const char *site)
{
    int i, free_slot = -1;

    for (i = 0; i < MODEL_MAX; i++) {
        if (model[i].used && strcmp(model[i].site, site) == 0)
            return &model[i];
        if (!model[i].used && free_slot < 0)
            free_slot = i;
    }
    ck_assert_int_ge(free_slot, 0);
    memset(&model[free_slot], 0, sizeof(model[0]));
    snprintf(model[free_slot].site, sizeof(model[0].site), "%s", site);
    model[free_slot].used = 1;
    return &model[free_slot];
}

/* ------------------------------------------------------------ HTTP */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    buf *b = ud;

    buf_append(b, data, size * n);
    return size * n;
}

/* GETs / through HAProxy with the Host header (HTTP) or the SNI and Host
 * (HTTPS, the default certificate is not checked). Returns the status, 0
 * when no answer came; body gets the page (may be NULL). */
static long get(const char *host, int https, buf *body)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL, *resolve = NULL;
    char url[512], h[300], rs[300];
    buf sink;
    long status = 0;

    buf_init(&sink, 1 << 20);
    if (https) {
        snprintf(url, sizeof(url), "https://%s:%d/", host, https_port);
        snprintf(rs, sizeof(rs), "%s:%d:127.0.0.1", host, https_port);
        resolve = curl_slist_append(NULL, rs);
        curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", http_port);
        snprintf(h, sizeof(h), "Host: %s", host);
        hdr = curl_slist_append(NULL, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body != NULL ? body : &sink);
    if (body != NULL)
        buf_reset(body);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
    buf_free(&sink);
    return status;
}

/* Polls host until it answers status with a body containing needle (NULL:
 * any). Returns the milliseconds it took, or -1 after timeout_ms (and
 * prints what it saw last). */
static double wait_page(const char *host, int https, long status,
                        const char *needle, int timeout_ms)
{
    int64_t t0 = clock_mono_ns(), end = clock_mono_ms() + timeout_ms;
    long got = 0;
    buf body;

    buf_init(&body, 1 << 20);
    for (;;) {
        got = get(host, https, &body);
        if (got == status &&
            (needle == NULL ||
             (body.data != NULL && strstr(body.data, needle) != NULL))) {
            buf_free(&body);
            return (double)(clock_mono_ns() - t0) / 1e6;
        }
        if (clock_mono_ms() >= end)
            break;
        clock_sleep_ms(2);
    }
    h_say("%s: wanted %ld %s, got %ld %s", host, status, needle ? needle : "",
          got, body.data ? body.data : "");
    buf_free(&body);
    return -1;
}

static void expect_page(const char *host, long status, const char *needle)
{
    ck_assert_msg(wait_page(host, 0, status, needle, 5000) >= 0,
                  "%s never answered %ld", host, status);
}

/* The page stays as it is for a moment (an older message changes
 * nothing). */
static void expect_stays(const char *host, long status, const char *needle)
{
    int i;

    for (i = 0; i < 10; i++) {
        buf body;
        long got;

        buf_init(&body, 1 << 20);
        got = get(host, 0, &body);
        ck_assert_msg(got == status && (needle == NULL ||
                                        (body.data != NULL &&
                                         strstr(body.data, needle) != NULL)),
                      "%s: %ld %s", host, got, body.data ? body.data : "");
        buf_free(&body);
        clock_sleep_ms(30);
    }
}

/* ------------------------------------------------------------ bus */

/* Publishes route.set.<site> as the panel does (and records it in the
 * model unless quiet). */
static void publish_set_rev(const char *site, const char *const *domains,
                            int n, const char *upstream, int running,
                            uint64_t rev, int in_model)
{
    Berth__V1__RouteSet m = BERTH__V1__ROUTE_SET__INIT;
    char subject[128];
    int i;

    m.site_id = (char *)site;
    m.domains = (char **)domains;
    m.n_domains = (size_t)n;
    m.upstream = (char *)upstream;
    m.running = running;
    m.revision = rev;
    snprintf(subject, sizeof(subject), "route.set.%s", site);
    ck_assert_int_eq(bus_js_publish(tb, subject, &m.base, NULL, 3000), 0);
    if (!in_model)
        return;
    pthread_mutex_lock(&model_mu);
    {
        struct mroute *r = model_get(site);

        for (i = 0; i < r->ndomains; i++)
            free(r->domains[i]);
        r->ndomains = 0;
        for (i = 0; i < n && i < 4; i++)
            r->domains[r->ndomains++] = strdup(domains[i]);
        snprintf(r->upstream, sizeof(r->upstream), "%s", upstream);
        r->running = running;
        r->revision = rev;
    }
    pthread_mutex_unlock(&model_mu);
}

static uint64_t publish_set(const char *site, const char *const *domains,
                            int n, const char *upstream, int running)
{
    publish_set_rev(site, domains, n, upstream, running, ++revision, 1);
    return revision;
}

static void publish_del_rev(const char *site, uint64_t rev)
{
    Berth__V1__RouteDel m = BERTH__V1__ROUTE_DEL__INIT;
    char subject[128];
    int i;

    m.site_id = (char *)site;
    m.revision = rev;
    snprintf(subject, sizeof(subject), "route.del.%s", site);
    ck_assert_int_eq(bus_js_publish(tb, subject, &m.base, NULL, 3000), 0);
    pthread_mutex_lock(&model_mu);
    for (i = 0; i < MODEL_MAX; i++) {
        if (model[i].used && strcmp(model[i].site, site) == 0) {
            int j;

            for (j = 0; j < model[i].ndomains; j++)
                free(model[i].domains[j]);
            model[i].used = 0;
        }
    }
    pthread_mutex_unlock(&model_mu);
}

/* route.list, answered from the model, plus bulk_n generated routes
 * "bulk-NNNNN" -> bNNNNN.bulk.test. */
static int bulk_n;

static int on_route_list(bus_msg *msg, void *ud)
{
    Berth__V1__RouteList list = BERTH__V1__ROUTE_LIST__INIT;
    Berth__V1__RouteSet *sets, **ptrs;
    char (*names)[64], (*ids)[32], **dp;
    int i, n = 0, rc;

    (void)ud;
    pthread_mutex_lock(&model_mu);
    sets = calloc((size_t)(MODEL_MAX + bulk_n), sizeof(*sets));
    ptrs = calloc((size_t)(MODEL_MAX + bulk_n), sizeof(*ptrs));
    names = calloc((size_t)bulk_n + 1, sizeof(*names));
    ids = calloc((size_t)bulk_n + 1, sizeof(*ids));
    dp = calloc((size_t)bulk_n + 1, sizeof(*dp));
    ck_assert(sets && ptrs && names && ids && dp);
    for (i = 0; i < bulk_n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "bulk-%05d", i);
        snprintf(names[i], sizeof(names[i]), "b%05d.bulk.test", i);
        dp[i] = names[i];
        berth__v1__route_set__init(&sets[n]);
        sets[n].site_id = ids[i];
        sets[n].domains = &dp[i];
        sets[n].n_domains = 1;
        sets[n].upstream = up1;
        sets[n].running = 1;
        sets[n].revision = 50;
        ptrs[n] = &sets[n];
        n++;
    }
    for (i = 0; i < MODEL_MAX; i++) {
        if (!model[i].used)
            continue;
        berth__v1__route_set__init(&sets[n]);
        sets[n].site_id = model[i].site;
        sets[n].domains = model[i].domains;
        sets[n].n_domains = (size_t)model[i].ndomains;
        sets[n].upstream = model[i].upstream;
        sets[n].running = model[i].running;
        sets[n].revision = model[i].revision;
        ptrs[n] = &sets[n];
        n++;
    }
    list.routes = ptrs;
    list.n_routes = (size_t)n;
    list.revision = revision;
    rc = bus_reply(msg, &list.base);
    pthread_mutex_unlock(&model_mu);
    free(sets);
    free(ptrs);
    free(names);
    free(ids);
    free(dp);
    return rc;
}

/* ------------------------------------------------------------ HAProxy */

/* One runtime command to a unix socket of the edge's HAProxy; the answer
 * in out. Returns 0 or -1. */
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
    buf out;
    char *line;
    long n = -1;

    int64_t end = clock_mono_ms() + 5000;

    buf_init(&out, 1 << 16);
    /* A new master listens a moment after its worker answers. */
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

static long pid_file(void)
{
    char path[1100], *text = NULL;
    size_t len;
    long pid;

    snprintf(path, sizeof(path), "%s/run/haproxy.pid", edge_dir);
    if (fs_read_file(path, 64, &text, &len) != 0)
        return 0;
    pid = strtol(text, NULL, 10);
    free(text);
    return pid;
}

static long worker_pid(void)
{
    buf out;
    char *p;
    long pid = 0;

    buf_init(&out, 1 << 16);
    if (hx_cmd("admin.sock", "show info", &out) == 0 && out.data != NULL &&
        (p = strstr(out.data, "\nPid: ")) != NULL)
        pid = strtol(p + 6, NULL, 10);
    buf_free(&out);
    return pid;
}

/* ------------------------------------------------------------ processes */

static void start_edge(void)
{
    char nats_env[128], data[1100], http[64], https[64];
    char *argv[] = {NULL, NULL};
    char *env[] = {nats_env,
                   data,
                   http,
                   https,
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
    ck_assert_int_eq(h_proc_start(&edge, "edge", argv, env, edge_log), 0);
    ck_assert_int_eq(h_proc_wait_log(&edge, "msg=ready", 20000), 0);
}

/* busybox httpd serving dir/index.html = text on 127.0.0.1:port. */
static void start_web(h_proc *p, const char *name, int port, const char *text)
{
    char dir[1100], file[1200], addr[32], log[1100];
    char *argv[] = {"busybox", "httpd", "-f", "-p", addr, "-h", dir, NULL};

    snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
    ck_assert_int_eq(fs_mkdirs(dir, 0755), 0);
    snprintf(file, sizeof(file), "%s/index.html", dir);
    ck_assert_int_eq(fs_write_atomic(file, text, strlen(text), 0644), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "%s/%s.log", tmp, name);
    ck_assert_int_eq(h_proc_start(p, name, argv, NULL, log), 0);
    ck_assert_int_eq(h_wait_port(port, 5000), 0);
}

/* ------------------------------------------------------------ suite */

static void suite_up(void)
{
    ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
    ck_assert_int_eq(h_nats_start(&nats), 0);
    tmp = h_tempdir("edge");
    ck_assert_ptr_nonnull(tmp);
    snprintf(edge_dir, sizeof(edge_dir), "%s/edge", tmp);
    snprintf(edge_log, sizeof(edge_log), "%s/edge.log", tmp);
    port1 = h_free_port();
    port2 = h_free_port();
    http_port = h_free_port();
    https_port = h_free_port();
    ck_assert(port1 > 0 && port2 > 0 && http_port > 0 && https_port > 0);
    snprintf(up1, sizeof(up1), "127.0.0.1:%d", port1);
    snprintf(up2, sizeof(up2), "127.0.0.1:%d", port2);
    start_web(&web1, "web1", port1, "this is site one\n");
    start_web(&web2, "web2", port2, "this is site two\n");
    tb = h_bus_open(nats.url, "berth-edge-test");
    ck_assert_int_eq(bus_js_setup(tb), 0);
    start_edge();
}

static void suite_down(void)
{
    int i, j;

    if (edge.pid != 0)
        h_proc_stop(&edge, SIGTERM, 10000);
    h_proc_free(&edge);
    h_proc_free(&web1);
    h_proc_free(&web2);
    bus_close(tb);
    h_nats_stop(&nats);
    h_tempdir_drop(tmp, "edge test");
    for (i = 0; i < MODEL_MAX; i++)
        for (j = 0; j < model[i].ndomains; j++)
            free(model[i].domains[j]);
    curl_global_cleanup();
}

/* ------------------------------------------------------------ tests */

START_TEST(route_set_served_in_milliseconds)
{
    const char *a[] = {"a.example.test"};
    double ms[SAMPLES], sum = 0;
    int i, j;

    /* Nothing is routed yet. */
    expect_page("a.example.test", 404, "No site is served");
    /* The first route, timed from the publish to the proxied page. */
    publish_set(SITE_A, a, 1, up1, 1);
    ms[0] = wait_page("a.example.test", 0, 200, "site one", 5000);
    ck_assert(ms[0] >= 0);
    /* More samples: each a new host of a new site. */
    for (i = 1; i < SAMPLES; i++) {
        char host[64], site[64];
        const char *d[1] = {host};

        snprintf(host, sizeof(host), "t%d.example.test", i);
        snprintf(site, sizeof(site), "0b5e8a52-0c1e-4f5e-9d4a-b000000000%02d",
                 i);
        publish_set(site, d, 1, i % 2 ? up2 : up1, 1);
        ms[i] = wait_page(host, 0, 200, i % 2 ? "site two" : "site one", 5000);
        ck_assert(ms[i] >= 0);
    }
    for (i = 0; i < SAMPLES; i++) {
        for (j = i + 1; j < SAMPLES; j++) {
            if (ms[j] < ms[i]) {
                double t = ms[i];

                ms[i] = ms[j];
                ms[j] = t;
            }
        }
        sum += ms[i];
    }
    printf("edge: route.set published -> first proxied 200: min %.2f ms, "
           "median %.2f ms, mean %.2f ms, max %.2f ms (%d routes)\n",
           ms[0], ms[SAMPLES / 2], sum / SAMPLES, ms[SAMPLES - 1], SAMPLES);
    fflush(stdout);
    ck_assert_msg(ms[SAMPLES - 1] < 1000, "slowest route took %.1f ms",
                  ms[SAMPLES - 1]);
    /* The same site over HTTPS (the default certificate, SNI). */
    ck_assert(wait_page("a.example.test", 1, 200, "site one", 5000) >= 0);
}
END_TEST

START_TEST(stopped_site_gets_503)
{
    const char *a[] = {"a.example.test"};
    uint64_t rev;

    rev = publish_set(SITE_A, a, 1, up1, 0);
    expect_page("a.example.test", 503, "This site is stopped");
    /* An older message (a replay) changes nothing. */
    publish_set_rev(SITE_A, a, 1, up1, 1, rev - 1, 0);
    expect_stays("a.example.test", 503, "stopped");
    /* Running again. */
    publish_set(SITE_A, a, 1, up1, 1);
    expect_page("a.example.test", 200, "site one");
    /* Running without a known upstream is served as stopped. */
    publish_set(SITE_A, a, 1, "", 1);
    expect_page("a.example.test", 503, "stopped");
    publish_set(SITE_A, a, 1, up1, 1);
    expect_page("a.example.test", 200, "site one");
}
END_TEST

START_TEST(unknown_host_gets_404)
{
    buf body;

    expect_page("nobody.example.test", 404, "No site is served");
    expect_page("A.Example.Test", 200, "site one"); /* case and port */
    expect_page("a.example.test:8080", 200, "site one");
    buf_init(&body, 1 << 16);
    ck_assert_int_eq(get("nobody.example.test", 1, &body), 404);
    buf_free(&body);
}
END_TEST

START_TEST(moves_domains_and_deletion)
{
    const char *b2[] = {"b.example.test", "www.b.example.test"};
    const char *b1[] = {"b.example.test"};
    uint64_t del;

    publish_set(SITE_B, b2, 2, up2, 1);
    expect_page("b.example.test", 200, "site two");
    expect_page("www.b.example.test", 200, "site two");
    /* The site moves (another upstream) and loses a domain. */
    publish_set(SITE_B, b1, 1, up1, 1);
    expect_page("b.example.test", 200, "site one");
    expect_page("www.b.example.test", 404, NULL);
    /* Deleted: 404; a set older than the deletion stays without effect. */
    del = ++revision;
    publish_del_rev(SITE_B, del);
    expect_page("b.example.test", 404, "No site is served");
    publish_set_rev(SITE_B, b1, 1, up1, 1, del - 1, 0);
    expect_stays("b.example.test", 404, NULL);
    /* A newer set brings it back. */
    publish_set(SITE_B, b2, 2, up2, 1);
    expect_page("www.b.example.test", 200, "site two");
}
END_TEST

START_TEST(bad_input_is_refused)
{
    const char *bad[] = {"*.wild.example.test", "UPPER.example.test",
                         "under_score.example.test", "dots..example.test",
                         "-dash.example.test", "nolabel", "1.2.3.4",
                         "ab--cd.example.test", "good.example.test"};
    const char *dead[] = {"dead.example.test"};
    int i;

    publish_set(SITE_X, bad, 9, up2, 1);
    expect_page("good.example.test", 200, "site two");
    for (i = 0; i < 8; i++)
        ck_assert_int_eq(get(bad[i], 0, NULL), 404);
    /* An upstream nobody listens on: HAProxy's 503, and the edge lives. */
    publish_set(SITE_D, dead, 1, "127.0.0.1:1", 1);
    expect_page("dead.example.test", 503, NULL);
    /* An upstream that is not an address: served as stopped. */
    publish_set(SITE_D, dead, 1, "backend.internal:80", 1);
    expect_page("dead.example.test", 503, "This site is stopped");
    ck_assert(h_proc_alive(&edge));
    expect_page("a.example.test", 200, "site one");
}
END_TEST

START_TEST(edge_killed_converges)
{
    const char *c[] = {"c.example.test"};
    const char *a[] = {"a.example.test"};
    long hx;
    int i;

    expect_page("b.example.test", 200, "site two");
    hx = pid_file();
    ck_assert_int_gt(hx, 1);
    h_proc_kill9(&edge);
    /* HAProxy goes with its edge (parent-death signal). */
    for (i = 0; i < 250 && kill((pid_t)hx, 0) == 0; i++)
        clock_sleep_ms(20);
    ck_assert_msg(kill((pid_t)hx, 0) != 0, "haproxy %ld outlived its edge", hx);
    /* Meanwhile the panel changes routes. */
    publish_set(SITE_C, c, 1, up2, 1);
    publish_del_rev(SITE_B, ++revision);
    publish_set(SITE_A, a, 1, up2, 1);
    h_proc_free(&edge);
    start_edge();
    expect_page("c.example.test", 200, "site two");
    expect_page("b.example.test", 404, NULL);
    expect_page("a.example.test", 200, "site two");
    expect_page("t1.example.test", 200, "site two"); /* kept from before */
}
END_TEST

START_TEST(haproxy_killed_is_restarted_with_every_route)
{
    const char *d[] = {"d.example.test"};
    long master, worker;
    int i;

    /* The master: the edge restarts HAProxy and applies the routes. */
    master = pid_file();
    ck_assert_int_gt(master, 1);
    ck_assert_int_eq(kill((pid_t)master, SIGKILL), 0);
    /* A change while HAProxy is down. */
    publish_set(SITE_D, d, 1, up1, 1);
    for (i = 0; i < 500 && pid_file() == master; i++)
        clock_sleep_ms(20);
    ck_assert_int_ne(pid_file(), master);
    expect_page("d.example.test", 200, "site one");
    expect_page("a.example.test", 200, "site two");
    expect_page("c.example.test", 200, "site two");
    expect_page("good.example.test", 200, "site two");
    expect_page("b.example.test", 404, NULL);

    /* The worker: its master exits, the edge starts HAProxy again. */
    master = pid_file();
    worker = worker_pid();
    ck_assert_int_gt(worker, 1);
    ck_assert_int_eq(kill((pid_t)worker, SIGKILL), 0);
    for (i = 0; i < 500 && (pid_file() == master || worker_pid() == 0); i++)
        clock_sleep_ms(20);
    ck_assert_int_ne(pid_file(), master);
    expect_page("d.example.test", 200, "site one");
    expect_page("t2.example.test", 200, "site one");
    ck_assert(h_proc_alive(&edge));
}
END_TEST

START_TEST(haproxy_never_reloads)
{
    const char *e[] = {"reload.example.test"};
    int i;

    ck_assert_int_eq(reloads(), 0);
    for (i = 0; i < 20; i++)
        publish_set(SITE_E, e, 1, i % 2 ? up1 : up2, 1);
    expect_page("reload.example.test", 200, "site one");
    ck_assert_int_eq(reloads(), 0);
}
END_TEST

START_TEST(route_list_heals_missed_events)
{
    const char *g[] = {"ghost.example.test"};
    const char *h[] = {"healed.example.test"};
    char path[1100], *map = NULL;
    size_t len;

    /* A route the edge has but the panel no longer does (its route.del
     * was missed): published, then taken out of the model. */
    publish_set_rev(SITE_G, g, 1, up1, 1, ++revision, 0);
    expect_page("ghost.example.test", 200, "site one");
    /* A route the panel has but never published: site C's domains are
     * replaced. */
    pthread_mutex_lock(&model_mu);
    {
        struct mroute *r = model_get(SITE_C);

        free(r->domains[0]);
        r->domains[0] = strdup(h[0]);
        r->ndomains = 1;
        snprintf(r->upstream, sizeof(r->upstream), "%s", up1);
        r->running = 1;
        r->revision = ++revision;
    }
    pthread_mutex_unlock(&model_mu);
    /* The test now answers route.list; a NATS restart makes the edge ask. */
    ck_assert_int_eq(bus_serve(tb, "route-list", "route.list", on_route_list,
                               NULL),
                     0);
    ck_assert_int_eq(h_nats_restart(&nats), 0);
    ck_assert_int_eq(bus_wait_connected(tb, 10000), 0);
    expect_page("ghost.example.test", 404, NULL);
    expect_page("healed.example.test", 200, "site one");
    expect_page("c.example.test", 404, NULL); /* C's domains are replaced */
    expect_page("a.example.test", 200, "site two");
    ck_assert_int_eq(h_wait_log(edge_log, "routes healed", 5000), 0);
    /* The map file on disk says the same. */
    snprintf(path, sizeof(path), "%s/maps/hosts.map", edge_dir);
    clock_sleep_ms(200);
    ck_assert_int_eq(fs_read_file(path, 1 << 20, &map, &len), 0);
    ck_assert_ptr_nonnull(strstr(map, "healed.example.test 127.0.0.1:"));
    ck_assert_ptr_null(strstr(map, "\nghost.example.test"));
    ck_assert_ptr_nonnull(strstr(map, "# site " SITE_A));
    free(map);
    ck_assert_int_eq(reloads(), 0);
}
END_TEST

START_TEST(ten_thousand_routes_from_scratch)
{
    char path[1100];
    int64_t t0;
    double ms;

    /* A new edge with nothing on disk; the panel lists 10,000 routes. */
    ck_assert_int_eq(h_proc_stop(&edge, SIGTERM, 10000), 0);
    h_proc_free(&edge);
    snprintf(path, sizeof(path), "%s/maps/hosts.map", edge_dir);
    ck_assert_int_eq(unlink(path), 0);
    bulk_n = 10000;
    t0 = clock_mono_ms();
    start_edge();
    ms = wait_page("b09999.bulk.test", 0, 200, "site one", 20000);
    ck_assert(ms >= 0);
    printf("edge: 10000 routes from route.list, edge start -> all served: "
           "%lld ms\n",
           (long long)(clock_mono_ms() - t0));
    fflush(stdout);
    ck_assert_int_eq(h_wait_log(edge_log, "routes=10", 1000), 0);
    expect_page("b00000.bulk.test", 200, "site one");
    expect_page("healed.example.test", 200, "site one");
    ck_assert_int_eq(reloads(), 0);
}
END_TEST

START_TEST(sigterm_stops_haproxy_too)
{
    long hx = pid_file();
    struct stat st;
    char path[1100];
    int i;

    ck_assert_int_gt(hx, 1);
    snprintf(path, sizeof(path), "%s/certs/default.pem", edge_dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(h_proc_stop(&edge, SIGTERM, 10000), 0);
    for (i = 0; i < 250 && kill((pid_t)hx, 0) == 0; i++)
        clock_sleep_ms(20);
    ck_assert_msg(kill((pid_t)hx, 0) != 0, "haproxy %ld still runs", hx);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("edge_routes");
    TCase *tc = tcase_create("edge");

    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, route_set_served_in_milliseconds);
    tcase_add_test(tc, stopped_site_gets_503);
    tcase_add_test(tc, unknown_host_gets_404);
    tcase_add_test(tc, moves_domains_and_deletion);
    tcase_add_test(tc, bad_input_is_refused);
    tcase_add_test(tc, edge_killed_converges);
    tcase_add_test(tc, haproxy_killed_is_restarted_with_every_route);
    tcase_add_test(tc, haproxy_never_reloads);
    tcase_add_test(tc, route_list_heals_missed_events);
    tcase_add_test(tc, ten_thousand_routes_from_scratch);
    tcase_add_test(tc, sigterm_stops_haproxy_too);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
