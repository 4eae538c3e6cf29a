/* panel.c - panel benchmark: authenticated GET /user/:uuid with wrk (the
 * most the panel serves), latency percentiles at a steady 1,000 req/s
 * (a paced client here), and the panel's RSS afterwards. Real nats-server,
 * PostgreSQL and berth-panel. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/fs.h"
#include "tests/harness/harness.h"
#include "tests/harness/pg.h"

#define PASSWORD "bench password 1"
#define PACED_RATE 1000
#define PACED_SECONDS 5
#define PACED_THREADS 4

static char base[64];
static char bearer[4200];
static char user_path[128];

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    buf *b = ud;

    if (b != NULL)
        buf_append(b, p, size * n);
    return size * n;
}

static int post_login(char *token, size_t size)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128];
    buf out;
    json_t *j;
    int rc = -1;

    buf_init(&out, 1 << 20);
    snprintf(url, sizeof(url), "%s/auth/login", base);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"username\":\"admin\",\"password\":\"" PASSWORD "\"}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    if (curl_easy_perform(c) == CURLE_OK &&
        (j = json_loadb(out.data, out.len, 0, NULL)) != NULL) {
        const char *t = json_string_value(json_object_get(j, "accessToken"));
        if (t != NULL) {
            snprintf(token, size, "%s", t);
            rc = 0;
        }
        json_decref(j);
    }
    buf_free(&out);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static int find_admin_id(const char *token, char *id, size_t size)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h;
    char url[128], auth[4200];
    buf out;
    json_t *j;
    int rc = -1;

    buf_init(&out, 1 << 20);
    snprintf(url, sizeof(url), "%s/users", base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    h = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    if (curl_easy_perform(c) == CURLE_OK &&
        (j = json_loadb(out.data, out.len, 0, NULL)) != NULL) {
        const char *s = json_string_value(json_object_get(
            json_array_get(json_object_get(j, "users"), 0), "id"));
        if (s != NULL) {
            snprintf(id, size, "%s", s);
            rc = 0;
        }
        json_decref(j);
    }
    buf_free(&out);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

/* One paced client: sends a request every PACED_THREADS/PACED_RATE s on a
 * kept-alive connection, recording each latency (ns). */
struct paced {
    int64_t *lat;
    int n;
    int failed;
};

static void *paced_main(void *arg)
{
    struct paced *p = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, bearer);
    char url[256];
    int64_t period = 1000000000LL * PACED_THREADS / PACED_RATE;
    int64_t next = clock_mono_ns();
    int total = PACED_RATE * PACED_SECONDS / PACED_THREADS;
    int i;

    snprintf(url, sizeof(url), "%s%s", base, user_path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    for (i = 0; i < total; i++) {
        int64_t t0;
        long status = 0;

        {
            /* Sleep to the next slot; spinning would steal the panel's CPU. */
            struct timespec ts = {next / 1000000000, next % 1000000000};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
                ;
        }
        t0 = clock_mono_ns();
        if (curl_easy_perform(c) != CURLE_OK ||
            (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status), status != 200))
            p->failed++;
        p->lat[p->n++] = clock_mono_ns() - t0;
        next += period;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void paced(void)
{
    struct paced p[PACED_THREADS];
    pthread_t t[PACED_THREADS];
    int64_t *all;
    int i, n = 0, failed = 0;
    int per = PACED_RATE * PACED_SECONDS / PACED_THREADS;

    all = malloc(sizeof(int64_t) * (size_t)per * PACED_THREADS);
    for (i = 0; i < PACED_THREADS; i++) {
        p[i].lat = all + (size_t)i * per;
        p[i].n = 0;
        p[i].failed = 0;
        pthread_create(&t[i], NULL, paced_main, &p[i]);
    }
    for (i = 0; i < PACED_THREADS; i++) {
        pthread_join(t[i], NULL);
        failed += p[i].failed;
    }
    for (i = 0; i < PACED_THREADS; i++) {
        memmove(all + n, p[i].lat, sizeof(int64_t) * (size_t)p[i].n);
        n += p[i].n;
    }
    qsort(all, (size_t)n, sizeof(int64_t), cmp64);
    printf("panel  GET /user/:uuid at %d req/s for %d s: p50 %.2f ms  p99 %.2f ms  "
           "max %.2f ms  (%d failed)\n",
           PACED_RATE, PACED_SECONDS, all[n / 2] / 1e6, all[n * 99 / 100] / 1e6,
           all[n - 1] / 1e6, failed);
    free(all);
}

static long rss_kib(pid_t pid)
{
    char path[64], *data = NULL, *line;
    size_t len;
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (fs_read_file(path, 1 << 16, &data, &len) != 0)
        return -1;
    line = strstr(data, "VmRSS:");
    if (line != NULL)
        kib = strtol(line + 6, NULL, 10);
    free(data);
    return kib;
}

int main(void)
{
    h_nats nats;
    h_pg pg;
    h_proc panel = {0}, wrk = {0};
    char url[96], dsn[320], dir[320], addr[64], sql[600], pw[96], log[512];
    char token[4096], admin[40], target[256], wrk_log[512];
    char *data = NULL;
    size_t len;
    int port;
    int rc = 1;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (h_nats_start(&nats) != 0 || h_pg_start(&pg) != 0) {
        fprintf(stderr, "bench: nats-server or PostgreSQL did not start\n");
        return 1;
    }
    port = h_free_port();
    snprintf(url, sizeof(url), "BERTH_NATS_URL=%s", nats.url);
    snprintf(dsn, sizeof(dsn), "BERTH_PG_DSN=%s", pg.dsn);
    snprintf(dir, sizeof(dir), "BERTH_DATA_DIR=%s/panel", nats.dir);
    snprintf(addr, sizeof(addr), "BERTH_PANEL_ADDR=127.0.0.1:%d", port);
    snprintf(sql, sizeof(sql), "BERTH_SQL_DIR=%s/../../sql", h_bin("."));
    snprintf(pw, sizeof(pw), "BERTH_ADMIN_PASSWORD=%s", PASSWORD);
    snprintf(log, sizeof(log), "%s/panel.log", nats.dir);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    {
        char *argv[] = {(char *)h_bin("berth-panel"), NULL};
        char *env[] = {url, dsn, dir, addr, sql, pw, "BERTH_LOG_LEVEL=warn", NULL};
        if (h_proc_start(&panel, "panel", argv, env, log) != 0 ||
            h_wait_port(port, 20000) != 0) {
            fprintf(stderr, "bench: the panel did not start\n");
            goto out;
        }
    }
    if (post_login(token, sizeof(token)) != 0 ||
        find_admin_id(token, admin, sizeof(admin)) != 0) {
        fprintf(stderr, "bench: cannot log in\n");
        goto out;
    }
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
    snprintf(user_path, sizeof(user_path), "/user/%s", admin);
    snprintf(target, sizeof(target), "%s%s", base, user_path);
    snprintf(wrk_log, sizeof(wrk_log), "%s/wrk.out", nats.dir);
    {
        char *argv[] = {"wrk", "-t2", "-c64", "-d10s", "--latency", "-H", bearer,
                        target, NULL};
        if (h_proc_start(&wrk, "wrk", argv, NULL, wrk_log) != 0 ||
            h_proc_wait(&wrk, 60000) != 0) {
            fprintf(stderr, "bench: wrk failed (is it installed? make deps)\n");
            goto out;
        }
    }
    if (fs_read_file(wrk_log, 1 << 20, &data, &len) == 0) {
        const char *rps = strstr(data, "Requests/sec:");
        const char *p99 = strstr(data, "99%");
        const char *non2xx = strstr(data, "Non-2xx");
        printf("panel  wrk -t2 -c64 -d10s GET /user/:uuid: %.*s  p99 %.*s%s%.*s\n",
               rps ? (int)strcspn(rps + 13, "\n") : 0, rps ? rps + 13 : "",
               p99 ? (int)strcspn(p99 + 3, "\n") : 0, p99 ? p99 + 3 : "",
               non2xx ? "  " : "", non2xx ? (int)strcspn(non2xx, "\n") : 0,
               non2xx ? non2xx : "");
        free(data);
    }
    paced();
    printf("panel  RSS after the runs: %.1f MiB\n", rss_kib(panel.pid) / 1024.0);
    rc = 0;
out:
    h_proc_free(&wrk);
    h_proc_stop(&panel, SIGTERM, 10000);
    h_proc_free(&panel);
    h_pg_destroy(&pg);
    h_nats_stop(&nats);
    return rc;
}
