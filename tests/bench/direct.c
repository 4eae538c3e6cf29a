/* direct.c - benchmark of the daemon's direct server on loopback: a 1 GiB
 * upload and download (targets >= 500 MB/s each, the daemon's RSS flat)
 * and console output to one websocket client (target >= 100,000 lines/s).
 * Real nats-server, PostgreSQL, berth-panel (issuing the tokens),
 * berth-daemon and a site in Docker; the client is libcurl and the tests'
 * hand-written websocket client, as a browser would be.
 *
 * The console figure is end to end: a line of input ("1000000") makes the
 * site print a million numbered lines through Docker's attach stream, the
 * console module, the server's watcher and the websocket; the clock runs
 * from sending the input to reading the last line, and every line is
 * checked to have arrived once, in order.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/token.h"
#include "tests/harness/docker.h"
#include "tests/harness/harness.h"
#include "tests/harness/panel.h"
#include "tests/harness/ws.h"

#define PASSWORD    "bench password 1"
#define BIG         (1ull << 30)
#define LINES       1000000
#define UP_TARGET   500.0    /* MB/s */
#define DOWN_TARGET 500.0
#define LINE_TARGET 100000.0 /* lines/s */

static h_panel panel;
static h_proc dproc;
static char access_token[H_ACCESS_MAX];
static char *tmp;
static char node_id[64], site_id[64];
static int dport;
static unsigned char pattern[1 << 16];

static void die(const char *what)
{
    char label[128];

    fprintf(stderr, "bench: %s\n", what);
    if (tmp != NULL) {
        char log[1100];

        snprintf(log, sizeof(log), "%s/daemon.log", tmp);
        h_log_tail(log, 4000);
    }
    if (dproc.pid > 0)
        h_proc_stop(&dproc, SIGTERM, 10000);
    if (node_id[0] != '\0') {
        snprintf(label, sizeof(label), "berth.node=%s", node_id);
        h_docker_rm_labelled(label);
    }
    h_panel_stop(&panel);
    exit(1);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return v;
}

typedef struct sampler {
    pid_t pid;
    volatile int stop;
    long max;
    pthread_t t;
} sampler;

static void *sample_main(void *arg)
{
    sampler *s = arg;

    while (!s->stop) {
        long v = rss_kib(s->pid);

        if (v > s->max)
            s->max = v;
        clock_sleep_ms(20);
    }
    return NULL;
}

static void sampler_start(sampler *s)
{
    s->pid = dproc.pid;
    s->stop = 0;
    s->max = rss_kib(dproc.pid);
    pthread_create(&s->t, NULL, sample_main, s);
}

static void sampler_stop(sampler *s)
{
    s->stop = 1;
    pthread_join(s->t, NULL);
}

/* ------------------------------------------------------------ set-up */

static void token(const char *scope, char *out)
{
    char path[128], body[64];
    h_resp r;

    snprintf(path, sizeof(path), "/sites/%s/tokens", site_id);
    snprintf(body, sizeof(body), "{\"scope\":\"%s\"}", scope);
    if (h_call(&panel, &r, "POST", path, access_token, body) != 200)
        die("no token from the panel");
    snprintf(out, TOKEN_MAX, "%s", h_jstr(r.json, "token"));
    h_resp_free(&r);
}

static void start(void)
{
    char nats[256], data[1100], addr[64], url[96], log[1100], p[1100];
    char *argv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *env[] = {nats, data, addr, url, "BERTH_NODE_NAME=bench-direct",
                   "BERTH_DAEMON_PANEL_ORIGIN=http://panel.bench", NULL};
    char body[512], *text = NULL;
    int64_t end;
    size_t n = 0;
    h_resp r;

    if (h_panel_start(&panel, PASSWORD, NULL) != 0)
        die("the panel did not start");
    if (h_login(&panel, "admin", PASSWORD, access_token, NULL) != 201)
        die("login failed");
    tmp = h_tempdir("bench-direct");
    dport = h_free_port();
    snprintf(nats, sizeof(nats), "BERTH_NATS_URL=%s", panel.nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s/data", tmp);
    snprintf(addr, sizeof(addr), "BERTH_DAEMON_ADDR=127.0.0.1:%d", dport);
    snprintf(url, sizeof(url), "BERTH_DAEMON_PUBLIC_URL=http://127.0.0.1:%d",
             dport);
    snprintf(log, sizeof(log), "%s/daemon.log", tmp);
    if (h_proc_start(&dproc, "daemon", argv, env, log) != 0 ||
        h_proc_wait_log(&dproc, "msg=ready", 15000) != 0 ||
        h_wait_log(log, "msg=\"panel key\"", 15000) != 0 ||
        h_wait_log(log, "msg=\"node registered\"", 15000) != 0)
        die("the daemon did not start");
    snprintf(p, sizeof(p), "%s/data/node.id", tmp);
    if (fs_read_file(p, 100, &text, &n) != 0)
        die("no node id");
    snprintf(node_id, sizeof(node_id), "%s", text);
    free(text);
    if (h_image_build() != 0)
        die("no test image");
    snprintf(body, sizeof(body),
             "{\"name\":\"bench\",\"image\":\"" H_TEST_IMAGE "\","
             "\"node\":\"%s\",\"command\":[\"sh\",\"-c\","
             "\"while read n; do seq 1 $n; echo DONE; done\"]}",
             node_id);
    if (h_call(&panel, &r, "POST", "/sites", access_token, body) != 202)
        die("site not created");
    snprintf(site_id, sizeof(site_id), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    end = clock_mono_ms() + 60000;
    for (;;) {
        char path[128];
        int running;

        snprintf(path, sizeof(path), "/sites/%s", site_id);
        h_call(&panel, &r, "GET", path, access_token, NULL);
        running = strcmp(h_jstr(json_object_get(r.json, "status"), "state"),
                         "running") == 0;
        h_resp_free(&r);
        if (running)
            break;
        if (clock_mono_ms() > end)
            die("the site never ran");
        clock_sleep_ms(100);
    }
}

/* ------------------------------------------------------------ files */

typedef struct feeder {
    uint64_t sent, total;
} feeder;

static size_t feed(char *out, size_t size, size_t n, void *ud)
{
    feeder *f = ud;
    size_t want = size * n, o = 0;

    while (o < want && f->sent < f->total) {
        size_t at = (size_t)(f->sent % sizeof(pattern));
        size_t k = sizeof(pattern) - at;

        if (k > want - o)
            k = want - o;
        if (k > f->total - f->sent)
            k = (size_t)(f->total - f->sent);
        memcpy(out + o, pattern + at, k);
        o += k;
        f->sent += k;
    }
    return o;
}

typedef struct drain {
    uint64_t got;
    int bad; /* a byte differed from the pattern */
} drain;

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    drain *d = ud;
    size_t len = size * n;

    /* Spot checks: the first byte of every piece. */
    if (len > 0 && (unsigned char)p[0] != pattern[d->got % sizeof(pattern)])
        d->bad = 1;
    d->got += len;
    return len;
}

static double transfer(int up)
{
    char tok[TOKEN_MAX], url[512], hdr[TOKEN_MAX + 64];
    struct curl_slist *h = NULL;
    feeder f = {.total = BIG};
    drain dr = {0};
    long status = 0;
    int64_t t0;
    double secs;
    CURL *c = curl_easy_init();

    token("files", tok);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/sites/%s/files/%s?path=/"
             "big.bin", dport, site_id, up ? "upload" : "download");
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
    h = curl_slist_append(h, hdr);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &dr);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
    if (up) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
        curl_easy_setopt(c, CURLOPT_READDATA, &f);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)BIG);
        curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
    }
    t0 = clock_mono_ns();
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (status != (up ? 201 : 200))
        die(up ? "upload failed" : "download failed");
    if (!up && (dr.got != BIG || dr.bad))
        die("the download differs from the upload");
    return secs;
}

/* ------------------------------------------------------------ console */

/* Reads console messages until "DONE" follows line LINES; checks every
 * line arrives once, in order. Returns the number of lines seen. */
static long read_lines(int fd, int64_t deadline_ms)
{
    static char msg[1 << 20];
    char carry[32] = "";
    long next = 1;
    size_t len;

    while (clock_mono_ms() < deadline_ms) {
        int op = h_ws_recv(fd, msg, sizeof(msg), &len, 5000);
        json_t *j;
        const char *t, *data, *p;

        if (op < 0)
            return next - 1;
        if (op != H_WS_TEXT)
            continue;
        j = json_loadb(msg, len, 0, NULL);
        t = json_string_value(json_object_get(j, "type"));
        if (t != NULL && strcmp(t, "dropped") == 0)
            die("the client was too slow: output dropped");
        if (t == NULL || strcmp(t, "output") != 0) {
            json_decref(j);
            continue;
        }
        data = json_string_value(json_object_get(j, "data"));
        for (p = data; p != NULL && *p;) {
            const char *nl = strchr(p, '\n');
            char line[64];

            if (nl == NULL) {
                strncat(carry, p, sizeof(carry) - strlen(carry) - 1);
                break;
            }
            snprintf(line, sizeof(line), "%s%.*s", carry, (int)(nl - p), p);
            carry[0] = '\0';
            p = nl + 1;
            if (line[0] != '\0' && line[strlen(line) - 1] == '\r')
                line[strlen(line) - 1] = '\0';
            if (strcmp(line, "DONE") == 0) {
                json_decref(j);
                return next - 1;
            }
            if (atol(line) != next) {
                fprintf(stderr, "bench: line %ld arrived as \"%s\"\n", next,
                        line);
                die("console lines out of order or missing");
            }
            next++;
        }
        json_decref(j);
    }
    return next - 1;
}

static double console_rate(void)
{
    char tok[TOKEN_MAX], target[TOKEN_MAX + 128], head[2048];
    char line[64];
    int64_t t0;
    double secs;
    long got;
    int fd;

    token("console", tok);
    fd = h_tcp_connect(dport, 1 << 20);
    snprintf(target, sizeof(target), "/sites/%s/console?token=%s", site_id,
             tok);
    if (fd < 0 || h_ws_handshake(fd, target, head, sizeof(head), 5000) != 0 ||
        strncmp(head, "HTTP/1.1 101", 12) != 0)
        die("no console");
    /* Let the replay and the first status pass. */
    for (;;) {
        static char msg[1 << 20];
        size_t len;
        int op = h_ws_recv(fd, msg, sizeof(msg), &len, 5000);

        if (op < 0)
            die("the console said nothing");
        if (op == H_WS_TEXT && strstr(msg, "\"site.status\"") != NULL)
            break;
    }
    snprintf(line, sizeof(line), "{\"type\":\"line\",\"data\":\"%d\"}", LINES);
    t0 = clock_mono_ns();
    if (h_ws_send(fd, H_WS_TEXT, line, strlen(line)) != 0)
        die("input not sent");
    got = read_lines(fd, clock_mono_ms() + 120000);
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    close(fd);
    if (got != LINES) {
        fprintf(stderr, "bench: %ld of %d lines\n", got, LINES);
        die("console lines missing");
    }
    return secs;
}

int main(void)
{
    sampler s;
    long before;
    double up, down, con;
    size_t i;
    char label[128];

    signal(SIGPIPE, SIG_IGN);
    for (i = 0; i < sizeof(pattern); i++)
        pattern[i] = (unsigned char)(i * 131 + (i >> 8));
    start();

    before = rss_kib(dproc.pid);
    sampler_start(&s);
    up = transfer(1);
    sampler_stop(&s);
    printf("direct upload   1 GiB: %6.2f s  %7.1f MB/s  (target >= %.0f)  "
           "daemon RSS %ld -> max %ld KiB\n",
           up, (double)BIG / up / 1e6, UP_TARGET, before, s.max);
    before = rss_kib(dproc.pid);
    sampler_start(&s);
    down = transfer(0);
    sampler_stop(&s);
    printf("direct download 1 GiB: %6.2f s  %7.1f MB/s  (target >= %.0f)  "
           "daemon RSS %ld -> max %ld KiB\n",
           down, (double)BIG / down / 1e6, DOWN_TARGET, before, s.max);
    con = console_rate();
    printf("direct console  %d lines: %6.2f s  %9.0f lines/s  "
           "(target >= %.0f)\n",
           LINES, con, LINES / con, LINE_TARGET);
    fflush(stdout);

    h_proc_stop(&dproc, SIGTERM, 15000);
    h_proc_free(&dproc);
    snprintf(label, sizeof(label), "berth.node=%s", node_id);
    h_docker_rm_labelled(label);
    h_tempdir_drop(tmp, "bench");
    h_panel_stop(&panel);
    return 0;
}
