/* daemon.c - berth-daemon benchmark on the real Docker Engine: console
 * throughput from one container to one subscriber, what the command path
 * adds to a container start, the daemon's RSS with 0 and 50 running sites,
 * and its CPU with 200 running sites and stats at 1 Hz.
 *
 * Real nats-server and berth-daemon; the benchmark plays the panel on the
 * bus as tests/integration/daemon_sites.c does (JetStream streams,
 * node.register and node.sync answered, SiteCreate and SitePower published,
 * command.result and site.status read). Sites run the locally built
 * berth-test-busybox:1 image. Two daemons run one after the other, each on
 * a fresh data directory (so a fresh node id): the first for the console
 * and start figures on a quiet node, the second for memory and CPU from
 * zero sites up. Every container labelled with either node id is removed at
 * the end, also when a step fails or the run is interrupted.
 *
 * Each figure is printed with its target. docker.c is included for its
 * client: it makes and starts the container timed directly on the Engine
 * API, and follows Docker's events so that the daemon's own share of a
 * start can be told from Docker's. The start through the bus is compared
 * with the same Docker calls made directly (attach, so that no output is
 * lost, then start), and also with a bare start.
 */
#include "svc-daemon/docker.c"
#include "svc-daemon/uhttp.c"
#include "svc-daemon/hijack.c"

#include <curl/curl.h>
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "common/log.h"
#include "console.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/docker.h"
#include "tests/harness/harness.h"

#define TEST_IMAGE      H_TEST_IMAGE
#define MAX_SEEN        16384
#define WAIT_MS         30000
#define RSS_SITES       50
#define CPU_SITES       200
#define CPU_WINDOW_S    15
#define IDLE_WINDOW_S   10
#define SETTLE_MS       5000
#define CONSOLE_LINES   2000000
#define START_ROUNDS    30

#define TARGET_RSS_KIB       (8 * 1024)
#define TARGET_CPU_PERCENT   5.0
#define TARGET_LINES_PER_S   100000.0
#define TARGET_START_OVER_MS 10.0

/* ------------------------------------------------------------ what the bus saw */

typedef struct seen_status {
    char site[ID_UUID_LEN + 1];
    int state;
    int64_t at_ns;
} seen_status;

typedef struct seen_result {
    char command[ID_UUID_LEN + 1];
    int ok;
    int64_t at_ns;
    char message[256];
} seen_result;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static seen_status statuses[MAX_SEEN];
static int nstatuses;
static seen_result results[MAX_SEEN];
static int nresults;
static long stats_msgs;     /* container.stats received, any site */
static int publish_retries; /* commands published again (see publish_cmd) */

/* One daemon under test: its process, files and node id. */
typedef struct bench_daemon {
    h_proc proc;
    char dir[PATH_MAX];
    char log[PATH_MAX + 16];
    char node[ID_UUID_LEN + 1];
} bench_daemon;

static h_nats nats;
static bus *b;
static char *tmp;
static bench_daemon daemons[2];
static int ndaemons;
static char direct_label[64]; /* berth.node of the containers made directly */
static volatile sig_atomic_t interrupted;

static int on_status(bus_msg *m, void *ud)
{
    const Berth__V1__SiteStatus *st = (const void *)m->msg;
    int64_t now = clock_mono_ns();

    (void)ud;
    pthread_mutex_lock(&mu);
    if (nstatuses < MAX_SEEN) {
        seen_status *s = &statuses[nstatuses++];
        snprintf(s->site, sizeof(s->site), "%s", st->site_id);
        s->state = st->state;
        s->at_ns = now;
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static int on_result(bus_msg *m, void *ud)
{
    const Berth__V1__CommandResult *r = (const void *)m->msg;
    int64_t now = clock_mono_ns();

    (void)ud;
    pthread_mutex_lock(&mu);
    if (nresults < MAX_SEEN) {
        seen_result *s = &results[nresults++];
        snprintf(s->command, sizeof(s->command), "%s", r->command_id);
        s->ok = r->ok;
        s->at_ns = now;
        snprintf(s->message, sizeof(s->message), "%s",
                 r->error != NULL ? r->error->message : "");
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static int on_stats(bus_msg *m, void *ud)
{
    (void)m;
    (void)ud;
    __atomic_add_fetch(&stats_msgs, 1, __ATOMIC_RELAXED);
    return 0;
}

/* ------------------------------------------------------------ cleanup */

/* Removes every container of this run (both daemons' and the direct ones)
 * and returns how many seconds it took. */
static double remove_containers(void)
{
    int64_t t0 = clock_mono_ns();
    char label[128];
    int i;

    if (direct_label[0] != '\0') {
        snprintf(label, sizeof(label), "berth.node=%s", direct_label);
        h_docker_rm_labelled(label);
    }
    for (i = 0; i < ndaemons; i++) {
        if (daemons[i].node[0] == '\0')
            continue;
        snprintf(label, sizeof(label), "berth.node=%s", daemons[i].node);
        h_docker_rm_labelled(label);
    }
    return (double)(clock_mono_ns() - t0) / 1e9;
}

static void daemon_stop(bench_daemon *d)
{
    if (d->proc.pid > 0) {
        if (h_proc_stop(&d->proc, SIGTERM, 15000) != 0)
            h_log_tail(d->log, 4000);
        h_proc_free(&d->proc);
    }
}

static void cleanup(void)
{
    int i;

    for (i = 0; i < ndaemons; i++)
        daemon_stop(&daemons[i]);
    remove_containers();
    if (b != NULL)
        bus_close(b);
    b = NULL;
    h_nats_stop(&nats);
    h_tempdir_drop(tmp, "bench-daemon");
    tmp = NULL;
}

/* Says why the benchmark cannot go on, shows the daemon's log, cleans up
 * and exits. */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt,
                                                                 ...)
{
    va_list ap;

    fprintf(stderr, "bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (ndaemons > 0)
        h_log_tail(daemons[ndaemons - 1].log, 4000);
    cleanup();
    exit(1);
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleeps ms in slices, failing (and cleaning up) when interrupted. */
static void nap(int64_t ms)
{
    int64_t end = clock_mono_ms() + ms;

    while (clock_mono_ms() < end) {
        if (interrupted)
            fail("interrupted");
        clock_sleep_ms(end - clock_mono_ms() < 20 ? end - clock_mono_ms() : 20);
    }
}

/* ------------------------------------------------------------ waiting */

/* Waits for a status of site in state after index *from; returns the time
 * it arrived (monotonic ns) and moves *from past it. */
static int64_t wait_state(const char *site, int state, int *from, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int i;

    while (clock_mono_ms() < end) {
        pthread_mutex_lock(&mu);
        for (i = *from; i < nstatuses; i++) {
            if (statuses[i].state == state && strcmp(statuses[i].site, site) == 0) {
                int64_t at = statuses[i].at_ns;
                *from = i + 1;
                pthread_mutex_unlock(&mu);
                return at;
            }
        }
        pthread_mutex_unlock(&mu);
        nap(2);
    }
    fail("site %s never reached state %d", site, state);
}

/* Waits for the result of command and fails unless it is ok; returns the
 * time it arrived. */
static int64_t wait_ok(const char *command, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int i;

    while (clock_mono_ms() < end) {
        pthread_mutex_lock(&mu);
        for (i = nresults - 1; i >= 0; i--) {
            if (strcmp(results[i].command, command) == 0) {
                seen_result r = results[i];
                pthread_mutex_unlock(&mu);
                if (!r.ok)
                    fail("command %s failed: %s", command, r.message);
                return r.at_ns;
            }
        }
        pthread_mutex_unlock(&mu);
        nap(2);
    }
    fail("no result for command %s", command);
}

/* Returns how many of sites[0..n) reached state after status index from. */
static int count_state(char (*sites)[ID_UUID_LEN + 1], int n, int state, int from)
{
    int i, k, count = 0;

    pthread_mutex_lock(&mu);
    for (k = 0; k < n; k++) {
        for (i = from; i < nstatuses; i++) {
            if (statuses[i].state == state &&
                strcmp(statuses[i].site, sites[k]) == 0) {
                count++;
                break;
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return count;
}

/* Returns how many of commands[0..n) succeeded; *failed counts those that
 * failed and why receives the first failure's message. */
static int count_ok(char (*commands)[ID_UUID_LEN + 1], int n, int *failed,
                    char *why, size_t why_size)
{
    int i, k, count = 0;

    *failed = 0;
    pthread_mutex_lock(&mu);
    for (k = 0; k < n; k++) {
        for (i = 0; i < nresults; i++) {
            if (strcmp(results[i].command, commands[k]) != 0)
                continue;
            if (results[i].ok)
                count++;
            else if ((*failed)++ == 0)
                snprintf(why, why_size, "%s", results[i].message);
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return count;
}

/* ------------------------------------------------------------ commands */

/* A spec for a new site running argv, the way the panel makes them: 64 MiB,
 * one CPU, 256 pids, never restarted. Caller frees with spec_free(). */
static Berth__V1__SiteSpec *spec_new(const char *node, const char *const *argv,
                                     char id[ID_UUID_LEN + 1])
{
    Berth__V1__SiteSpec *s = calloc(1, sizeof(*s));
    Berth__V1__Limits *l = calloc(1, sizeof(*l));
    Berth__V1__RestartPolicy *p = calloc(1, sizeof(*p));
    size_t n = 0;

    if (s == NULL || l == NULL || p == NULL || id_uuid(id) != 0)
        fail("out of memory");
    berth__v1__site_spec__init(s);
    berth__v1__limits__init(l);
    berth__v1__restart_policy__init(p);
    s->id = strdup(id);
    s->name = strdup("bench");
    s->node_id = strdup(node);
    s->image = strdup(TEST_IMAGE);
    while (argv[n] != NULL)
        n++;
    s->n_command = n;
    s->command = calloc(n + 1, sizeof(char *));
    for (n = 0; n < s->n_command; n++)
        s->command[n] = strdup(argv[n]);
    l->memory_bytes = 64u << 20;
    l->cpu_millis = 1000;
    l->pids = 256;
    s->limits = l;
    p->mode = BERTH__V1__RESTART_POLICY__MODE__MODE_NEVER;
    p->window_seconds = 60;
    s->restart = p;
    s->stop_command = strdup("");
    s->stop_signal = strdup("");
    s->stop_timeout_seconds = 10;
    return s;
}

static void spec_free(Berth__V1__SiteSpec *s)
{
    size_t i;

    for (i = 0; i < s->n_command; i++)
        free(s->command[i]);
    free(s->command);
    free(s->id);
    free(s->name);
    free(s->node_id);
    free(s->image);
    free(s->stop_command);
    free(s->stop_signal);
    free(s->limits);
    free(s->restart);
    free(s);
}

/* Publishes a command, trying again a few times (the same Nats-Msg-Id, so
 * JetStream keeps one) when the server is too busy to acknowledge, which a
 * node starting hundreds of containers on two cores can make it. */
static void publish_cmd(const char *node, const char *verb,
                        const ProtobufCMessage *m, const char *cid)
{
    char subject[160];
    int rc, attempt;

    snprintf(subject, sizeof(subject), "site.%s.%s", verb, node);
    for (attempt = 0; attempt < 5; attempt++) {
        rc = bus_js_publish(b, subject, m, cid, 5000);
        if (rc == 0)
            return;
        publish_retries++;
        nap(200);
    }
    fail("publishing on %s: %s", subject, berth_strerror(rc));
}

static void send_create(const char *node, Berth__V1__SiteSpec *spec, int start,
                        char cid[ID_UUID_LEN + 1])
{
    Berth__V1__SiteCreate c = BERTH__V1__SITE_CREATE__INIT;

    id_uuid(cid);
    c.command_id = cid;
    c.spec = spec;
    c.start = start;
    publish_cmd(node, "create", &c.base, cid);
}

static void send_power(const char *node, const char *site, int action,
                       char cid[ID_UUID_LEN + 1])
{
    Berth__V1__SitePower p = BERTH__V1__SITE_POWER__INIT;

    id_uuid(cid);
    p.command_id = cid;
    p.site_id = (char *)site;
    p.action = action;
    publish_cmd(node, "power", &p.base, cid);
}

/* ------------------------------------------------------------ the daemon */

/* Starts a daemon on a fresh data directory and reads its node id. */
static bench_daemon *daemon_start(void)
{
    bench_daemon *d = &daemons[ndaemons];
    char nats_env[256], data_env[PATH_MAX + 32], idfile[PATH_MAX + 16];
    char *argv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *env[] = {nats_env, data_env, "BERTH_NODE_NAME=bench",
                   "BERTH_STRICT_SUBJECTS=1", NULL};
    char *text = NULL;
    size_t len = 0;

    snprintf(d->dir, sizeof(d->dir), "%s/data%d", tmp, ndaemons);
    snprintf(d->log, sizeof(d->log), "%s/daemon%d.log", tmp, ndaemons);
    if (fs_mkdirs(d->dir, 0700) != 0)
        fail("cannot create %s", d->dir);
    snprintf(nats_env, sizeof(nats_env), "BERTH_NATS_URL=%s", nats.url);
    snprintf(data_env, sizeof(data_env), "BERTH_DATA_DIR=%s", d->dir);
    ndaemons++;
    if (h_proc_start(&d->proc, "daemon", argv, env, d->log) != 0 ||
        h_proc_wait_log(&d->proc, "msg=ready", 20000) != 0)
        fail("berth-daemon did not start");
    snprintf(idfile, sizeof(idfile), "%s/node.id", d->dir);
    if (fs_read_file(idfile, 100, &text, &len) != 0)
        fail("no node id in %s", idfile);
    snprintf(d->node, sizeof(d->node), "%.*s", ID_UUID_LEN, text);
    free(text);
    return d;
}

/* The figures of /proc/<pid>/status (and smaps_rollup: pss, the share of
 * pages that are shared with other processes, and uss, the pages no other
 * process maps) the benchmark prints, in KiB. */
typedef struct mem_figures {
    long rss, anon, file, threads, pss, uss;
} mem_figures;

static long status_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);

    return p != NULL ? strtol(p + strlen(key), NULL, 10) : -1;
}

static mem_figures mem_of(pid_t pid)
{
    mem_figures m = {-1, -1, -1, -1, -1, -1};
    char path[64], *text = NULL;
    size_t len;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (fs_read_file(path, 1 << 16, &text, &len) != 0)
        fail("cannot read %s", path);
    m.rss = status_field(text, "VmRSS:");
    m.anon = status_field(text, "RssAnon:");
    m.file = status_field(text, "RssFile:");
    m.threads = status_field(text, "Threads:");
    free(text);
    text = NULL;
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    if (fs_read_file(path, 1 << 16, &text, &len) == 0) {
        m.pss = status_field(text, "Pss:");
        m.uss = status_field(text, "Private_Clean:") +
                status_field(text, "Private_Dirty:");
        free(text);
    }
    return m;
}

/* utime + stime of every thread of pid, in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], *text = NULL, *p;
    size_t len;
    unsigned long long ut = 0, st = 0;
    int field;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (fs_read_file(path, 4096, &text, &len) != 0)
        fail("cannot read %s", path);
    /* The command name may hold spaces; fields count from its ')'. */
    p = strrchr(text, ')');
    for (field = 2; p != NULL && field < 13; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%llu %llu", &ut, &st) != 2)
        fail("cannot parse %s", path);
    free(text);
    return (long long)(ut + st);
}

/* CPU time of every thread of pid, exited ones included, in ns, from its
 * process CPU clock; -1 when the kernel does not give it. */
static int64_t cpu_clock_ns(pid_t pid)
{
    struct timespec ts;
    clockid_t id;

    if (clock_getcpuclockid(pid, &id) != 0 || clock_gettime(id, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* What pid used over s seconds, in percent of one core: from utime+stime
 * (clock ticks, coarse) and from its CPU clock (ns; -1 when unavailable),
 * its busiest thread's share, and the container.stats messages per second
 * received meanwhile. */
typedef struct cpu_figures {
    double ticks_pct, clock_pct, top_thread_pct;
    long stats_per_s;
} cpu_figures;

#define THREADS_MAX 256

/* Reads the CPU time (ns, /proc/<pid>/task/<tid>/schedstat) of up to
 * THREADS_MAX threads of pid into tids/ns; returns how many. */
static int thread_times(pid_t pid, int *tids, int64_t *ns)
{
    char path[64], file[400], *text = NULL;
    struct dirent *e;
    size_t len;
    DIR *dir;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    dir = opendir(path);
    if (dir == NULL)
        return 0;
    while (n < THREADS_MAX && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(file, sizeof(file), "%s/%s/schedstat", path, e->d_name);
        if (fs_read_file(file, 256, &text, &len) == 0) {
            tids[n] = atoi(e->d_name);
            ns[n++] = strtoll(text, NULL, 10);
        }
        free(text);
        text = NULL;
    }
    closedir(dir);
    return n;
}

static cpu_figures cpu_use(pid_t pid, int s)
{
    static int tid0[THREADS_MAX], tid1[THREADS_MAX];
    static int64_t ns0[THREADS_MAX], ns1[THREADS_MAX];
    cpu_figures f = {0};
    int n0 = thread_times(pid, tid0, ns0), n1, i, k;
    long long t0 = cpu_ticks(pid), t1;
    int64_t c0 = cpu_clock_ns(pid), c1;
    long m0 = __atomic_load_n(&stats_msgs, __ATOMIC_RELAXED);
    int64_t w0 = clock_mono_ns(), w1;
    double secs;

    nap((int64_t)s * 1000);
    t1 = cpu_ticks(pid);
    c1 = cpu_clock_ns(pid);
    w1 = clock_mono_ns();
    n1 = thread_times(pid, tid1, ns1);
    secs = (double)(w1 - w0) / 1e9;
    for (i = 0; i < n1; i++) {
        for (k = 0; k < n0 && tid0[k] != tid1[i]; k++)
            ;
        if (k < n0 && 100.0 * (double)(ns1[i] - ns0[k]) / 1e9 / secs > f.top_thread_pct)
            f.top_thread_pct = 100.0 * (double)(ns1[i] - ns0[k]) / 1e9 / secs;
    }
    f.stats_per_s =
        (long)((double)(__atomic_load_n(&stats_msgs, __ATOMIC_RELAXED) - m0) / secs + 0.5);
    f.ticks_pct = 100.0 * (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK) / secs;
    f.clock_pct = c0 >= 0 && c1 >= 0 ? 100.0 * (double)(c1 - c0) / 1e9 / secs : -1;
    return f;
}

static const char *verdict(int ok)
{
    return ok ? "ok" : "MISSED";
}

/* ------------------------------------------------------------ console */

/* What the console subscriber saw: chunks checked as they arrive. */
typedef struct console_watch {
    pthread_mutex_t lock;
    uint64_t last_seq;
    long chunks;
    long seq_errors;
    uint64_t dropped; /* dropped_bytes announced by notices */
    long bytes;       /* output bytes (not notices) */
    long lines;
    long next;        /* the number the next line must hold */
    long cur;         /* digits of the line being read */
    long wrong;       /* lines that did not hold the number expected */
    int64_t first_ns; /* first output chunk */
    int64_t last_ns;  /* the chunk with the last line */
} console_watch;

static void on_chunk(natsConnection *nc, natsSubscription *sub, natsMsg *raw,
                     void *ud)
{
    console_watch *w = ud;
    Berth__V1__ConsoleChunk *c;
    int64_t now = clock_mono_ns();
    size_t i;

    (void)nc;
    (void)sub;
    c = berth__v1__console_chunk__unpack(NULL, (size_t)natsMsg_GetDataLength(raw),
                                         (const uint8_t *)natsMsg_GetData(raw));
    natsMsg_Destroy(raw);
    pthread_mutex_lock(&w->lock);
    if (c == NULL) {
        w->seq_errors++;
        goto out;
    }
    w->chunks++;
    if (w->last_seq != 0 && c->seq != w->last_seq + 1)
        w->seq_errors++;
    w->last_seq = c->seq;
    if (c->stream == BERTH__V1__CONSOLE_STREAM__CONSOLE_STREAM_SYSTEM) {
        /* "site started" is a notice too; only a drop carries bytes. */
        w->dropped += c->dropped_bytes;
        goto out;
    }
    if (w->first_ns == 0)
        w->first_ns = now;
    w->bytes += (long)c->data.len;
    for (i = 0; i < c->data.len; i++) {
        uint8_t ch = c->data.data[i];
        if (ch >= '0' && ch <= '9') {
            w->cur = w->cur * 10 + (ch - '0');
        } else if (ch == '\n') {
            if (w->cur != w->next)
                w->wrong++;
            w->next = w->cur + 1;
            w->cur = 0;
            w->lines++;
            if (w->lines == CONSOLE_LINES)
                w->last_ns = now;
        } else {
            w->wrong++;
        }
    }
out:
    pthread_mutex_unlock(&w->lock);
    berth__v1__console_chunk__free_unpacked(c, NULL);
}

/* Figure 3: a container prints CONSOLE_LINES numbered lines; one
 * subscriber (its own connection, no pending limits) checks every line and
 * sequence number. */
static void bench_console(bench_daemon *d)
{
    static console_watch w = {.lock = PTHREAD_MUTEX_INITIALIZER, .next = 1};
    const char *argv[] = {"sh", "-c", "sleep 1; seq 1 2000000; sleep 3600", NULL};
    char site[ID_UUID_LEN + 1], cid[ID_UUID_LEN + 1], subject[200];
    Berth__V1__SiteSpec *spec = spec_new(d->node, argv, site);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    int64_t end;
    long expected_bytes = 0, n;
    double secs;
    int done = 0, lost;

    for (n = 1; n <= CONSOLE_LINES; n++)
        expected_bytes += snprintf(subject, sizeof(subject), "%ld\n", n);
    snprintf(subject, sizeof(subject), "console.out.%s.%s", d->node, site);
    if (natsConnection_ConnectTo(&nc, nats.url) != NATS_OK ||
        natsConnection_Subscribe(&sub, nc, subject, on_chunk, &w) != NATS_OK ||
        natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
        natsConnection_Flush(nc) != NATS_OK)
        fail("cannot subscribe to %s", subject);
    send_create(d->node, spec, 1, cid);
    wait_ok(cid, WAIT_MS);
    end = clock_mono_ms() + 120000;
    while (!done && clock_mono_ms() < end) {
        nap(20);
        pthread_mutex_lock(&w.lock);
        done = w.last_ns != 0 || w.dropped > 0;
        pthread_mutex_unlock(&w.lock);
    }
    nap(200); /* anything after the last line would be a fault too */
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    pthread_mutex_lock(&w.lock);
    secs = w.last_ns > w.first_ns ? (double)(w.last_ns - w.first_ns) / 1e9 : 0;
    lost = w.lines != CONSOLE_LINES || w.bytes != expected_bytes || w.wrong != 0 ||
           w.seq_errors != 0 || w.dropped != 0;
    printf("console  %ld of %d lines (%.1f MB) in %ld chunks, first chunk to last line "
           "%.3f s\n",
           w.lines, CONSOLE_LINES, (double)w.bytes / 1e6, w.chunks, secs);
    if (secs > 0)
        printf("console  %.0f lines/s, %.1f MB/s  (target >= %.0f lines/s: %s)\n",
               CONSOLE_LINES / secs, (double)w.bytes / 1e6 / secs,
               TARGET_LINES_PER_S, verdict(CONSOLE_LINES / secs >= TARGET_LINES_PER_S));
    if (!lost)
        printf("console  nothing lost: every line once and in order, seq contiguous, "
               "no drop notice\n");
    else
        printf("console  LOST: %ld lines wrong, %ld seq errors, %llu bytes dropped "
               "by notice, %ld of %ld bytes\n",
               w.wrong, w.seq_errors, (unsigned long long)w.dropped, w.bytes,
               expected_bytes);
    pthread_mutex_unlock(&w.lock);
    fflush(stdout);
    spec_free(spec);
}

/* ------------------------------------------------------------ starts */

static int cmp64(const void *a, const void *b2)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b2;

    return (x > y) - (x < y);
}

/* Sorts v[0..n) and returns the p-th percentile in ms. */
static double pct_ms(int64_t *v, int n, int p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp64);
    return (double)v[(n - 1) * p / 100] / 1e6;
}

/* Docker's own view of the starts: the attach and start events of the
 * daemon's containers, stamped by Docker, collected on a thread. */
typedef struct start_events {
    pthread_mutex_t lock;
    int64_t attach_ns[256], start_ns[256]; /* Docker's timeNano */
    int nattach, nstart;
    atomic_bool stop;
    daemon_docker *docker;
    const char *node;
} start_events;

static int on_docker_event(const daemon_docker_event *ev, void *arg)
{
    start_events *e = arg;

    pthread_mutex_lock(&e->lock);
    if (strcmp(ev->action, "attach") == 0 && e->nattach < 256)
        e->attach_ns[e->nattach++] = ev->time_ns;
    else if (strcmp(ev->action, "start") == 0 && e->nstart < 256)
        e->start_ns[e->nstart++] = ev->time_ns;
    pthread_mutex_unlock(&e->lock);
    return 0;
}

static void *events_main(void *arg)
{
    start_events *e = arg;

    while (!atomic_load(&e->stop))
        daemon_docker_events(e->docker, e->node, 0, on_docker_event, e, &e->stop,
                             NULL);
    return NULL;
}

/* Waits for the n-th attach and start events and returns their times
 * (Docker's wall clock, ns). */
static void docker_times(start_events *e, int n, int64_t *attach, int64_t *start)
{
    int64_t end = clock_mono_ms() + 5000;
    int got = 0;

    while (!got && clock_mono_ms() < end) {
        pthread_mutex_lock(&e->lock);
        got = e->nattach > n && e->nstart > n;
        if (got) {
            *attach = e->attach_ns[n];
            *start = e->start_ns[n];
        }
        pthread_mutex_unlock(&e->lock);
        if (!got)
            nap(2);
    }
    if (!got)
        fail("Docker's events for start %d never came", n);
}

/* The wall clock less the monotonic one, to put Docker's event times and
 * the benchmark's on one scale. */
static int64_t wall_offset_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - clock_mono_ns();
}

/* Figure 4: a stopped site started through the bus (SitePower START until
 * its CommandResult, and until its RUNNING status) against an identical
 * container started directly on the Engine API, alternately. Each bus start
 * is sent a random 0-1 s after the previous command, as a user's would be.
 * The daemon's own share of a bus start is also given exactly: the time to
 * the result less Docker's time from the daemon's attach to the container's
 * start event, which takes Docker's large start-to-start variance out. */
/* Attaches to container id as the daemon's console does, starts it, and
 * closes the attach. Returns 0 or a berth code with err set. */
static int direct_attach_start(daemon_docker *docker, const char *id,
                               daemon_docker_err *err)
{
    char path[256], early[DAEMON_HIJACK_HDR_MAX];
    size_t nearly = 0;
    int fd = -1, rc;

    snprintf(path, sizeof(path),
             "/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1", id);
    rc = daemon_hijack_dial(&(daemon_hijack_req){.sock_path =
                                                     DAEMON_DOCKER_SOCK_DEFAULT,
                                                 .path = path},
                            &fd, early, &nearly, err->message,
                            sizeof(err->message));
    if (rc != 0)
        return rc;
    rc = daemon_docker_container_start(docker, id, err);
    close(fd);
    return rc;
}

static void bench_starts(bench_daemon *d)
{
    static start_events ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    const char *argv[] = {"sleep", "3600", NULL};
    const char *const caps[] = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID",
                                "SETUID", "NET_BIND_SERVICE", "KILL", NULL};
    int64_t by_result[START_ROUNDS], by_running[START_ROUNDS], direct[START_ROUNDS];
    int64_t attached[START_ROUNDS];
    int64_t own[START_ROUNDS], before[START_ROUNDS], after[START_ROUNDS];
    int64_t off = wall_offset_ns();
    char site[ID_UUID_LEN + 1], cid[ID_UUID_LEN + 1], name[96], data[PATH_MAX + 64];
    char id[DAEMON_DOCKER_ID_MAX], api[16];
    Berth__V1__SiteSpec *spec = spec_new(d->node, argv, site);
    daemon_docker *docker = NULL;
    daemon_docker_err err = {0};
    pthread_t events;
    unsigned seed = 1;
    double r50, s50, d50, a50, o50;
    int from, i, code, rc;

    send_create(d->node, spec, 0, cid);
    wait_ok(cid, WAIT_MS);

    /* The same container as the daemon makes, under a label it ignores. */
    if (daemon_docker_new(&(daemon_docker_cfg){0}, &docker) != 0 ||
        daemon_docker_api_version(docker, api, &err) != 0)
        fail("docker: %s", err.message);
    snprintf(name, sizeof(name), "berth-bench-direct-%s", site);
    snprintf(data, sizeof(data), "%s/direct", d->dir);
    if (fs_mkdirs(data, 0755) != 0)
        fail("cannot create %s", data);
    rc = daemon_docker_container_create(
        docker,
        &(daemon_docker_spec){.name = name,
                              .image = TEST_IMAGE,
                              .cmd = argv,
                              .env = (const char *const[]){NULL},
                              .site = site,
                              .node = direct_label,
                              .memory_bytes = 64 << 20,
                              .nano_cpus = 1000000000,
                              .pids_limit = 256,
                              .data_dir = data,
                              .cap_add = caps},
        id, &err);
    if (rc != 0)
        fail("docker create: %s", err.message);
    ev.docker = docker;
    ev.node = d->node;
    if (pthread_create(&events, NULL, events_main, &ev) != 0)
        fail("cannot start a thread");
    nap(500); /* the events stream is open */

    from = nstatuses;
    for (i = 0; i < START_ROUNDS; i++) {
        int64_t t0, t_result, t_attach, t_start;

        nap(rand_r(&seed) % 1000);
        t0 = clock_mono_ns();
        send_power(d->node, site, BERTH__V1__POWER_ACTION__POWER_ACTION_START, cid);
        t_result = wait_ok(cid, WAIT_MS);
        by_result[i] = t_result - t0;
        by_running[i] =
            wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS) -
            t0;
        docker_times(&ev, i, &t_attach, &t_start);
        own[i] = by_result[i] - (t_start - t_attach);
        before[i] = t_attach - (t0 + off);
        after[i] = t_result + off - t_start;
        send_power(d->node, site, BERTH__V1__POWER_ACTION__POWER_ACTION_KILL, cid);
        wait_ok(cid, WAIT_MS);
        wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, &from, WAIT_MS);
        nap(100);

        t0 = clock_mono_ns();
        rc = daemon_docker_container_start(docker, id, &err);
        direct[i] = clock_mono_ns() - t0;
        if (rc != 0)
            fail("docker start: %s", err.message);
        if (daemon_docker_container_kill(docker, id, SIGKILL, &err) != 0 ||
            daemon_docker_container_wait(docker, id, 10000, &code, &err) != 0)
            fail("docker kill: %s", err.message);
        nap(100);

        /* What the daemon asks of Docker, directly: attach (so no output
         * is lost), then start. */
        t0 = clock_mono_ns();
        rc = direct_attach_start(docker, id, &err);
        attached[i] = clock_mono_ns() - t0;
        if (rc != 0)
            fail("docker attach and start: %s", err.message);
        if (daemon_docker_container_kill(docker, id, SIGKILL, &err) != 0 ||
            daemon_docker_container_wait(docker, id, 10000, &code, &err) != 0)
            fail("docker kill: %s", err.message);
        nap(100);
    }
    atomic_store(&ev.stop, true);
    pthread_join(events, NULL);
    r50 = pct_ms(by_result, START_ROUNDS, 50);
    s50 = pct_ms(by_running, START_ROUNDS, 50);
    d50 = pct_ms(direct, START_ROUNDS, 50);
    a50 = pct_ms(attached, START_ROUNDS, 50);
    o50 = pct_ms(own, START_ROUNDS, 50);
    printf("start  %d starts of a stopped sleep container, alternately:\n", START_ROUNDS);
    printf("start    bus: SitePower START -> CommandResult ok  p50 %6.1f ms  p90 %6.1f ms\n",
           r50, pct_ms(by_result, START_ROUNDS, 90));
    printf("start    bus: SitePower START -> status RUNNING    p50 %6.1f ms  p90 %6.1f ms\n",
           s50, pct_ms(by_running, START_ROUNDS, 90));
    printf("start    direct: POST /containers/<id>/start       p50 %6.1f ms  p90 %6.1f ms\n",
           d50, pct_ms(direct, START_ROUNDS, 90));
    printf("start    direct: attach, then POST start          p50 %6.1f ms  p90 %6.1f ms\n",
           a50, pct_ms(attached, START_ROUNDS, 90));
    printf("start  overhead, p50 difference to the same calls made directly "
           "(attach, start): %.1f ms to the result, %.1f ms to RUNNING  "
           "(target <= %.0f ms: %s)\n",
           r50 - a50, s50 - a50, TARGET_START_OVER_MS,
           verdict(r50 - a50 <= TARGET_START_OVER_MS));
    printf("start  (to a bare start without attach: %.1f ms; Docker starts an "
           "attached container more slowly)\n",
           r50 - d50);
    printf("start  overhead, per start (to the result less Docker's attach->start "
           "events): p50 %.1f ms  p90 %.1f ms  (target <= %.0f ms: %s)\n",
           o50, pct_ms(own, START_ROUNDS, 90), TARGET_START_OVER_MS,
           verdict(o50 <= TARGET_START_OVER_MS));
    printf("start    of which: publish to Docker's attach event p50 %.1f ms, Docker's "
           "start event to the result p50 %.1f ms\n",
           pct_ms(before, START_ROUNDS, 50), pct_ms(after, START_ROUNDS, 50));
    fflush(stdout);
    daemon_docker_container_remove(docker, id, true, false, NULL);
    daemon_docker_free(docker);
    spec_free(spec);
}

/* ------------------------------------------------------------ memory and CPU */

/* Creates and starts sites [first, last) of sites in one burst of commands
 * and waits until every one runs; returns the seconds it took. */
static double create_running(bench_daemon *d, char (*sites)[ID_UUID_LEN + 1],
                             char (*cids)[ID_UUID_LEN + 1], int first, int last)
{
    const char *argv[] = {"sleep", "3600", NULL};
    int64_t t0 = clock_mono_ns(), end;
    int from = nstatuses, i, ok = 0, failed = 0, running = 0;
    char why[256] = "";

    for (i = first; i < last; i++) {
        Berth__V1__SiteSpec *spec = spec_new(d->node, argv, sites[i]);
        send_create(d->node, spec, 1, cids[i]);
        spec_free(spec);
    }
    end = clock_mono_ms() + 600000;
    while (clock_mono_ms() < end) {
        ok = count_ok(cids + first, last - first, &failed, why, sizeof(why));
        if (failed > 0)
            fail("%d of the create commands failed, the first with: %s", failed, why);
        running = count_state(sites + first, last - first,
                              BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, from);
        if (ok == last - first && running == last - first)
            return (double)(clock_mono_ns() - t0) / 1e9;
        nap(200);
    }
    fail("after 600 s, %d of %d creates done and %d running", ok, last - first,
         running);
}

static void print_mem(const char *what, mem_figures m, int target)
{
    printf("memory  %-18s VmRSS %6ld KiB (anon %ld, file %ld; PSS %ld, "
           "private %ld), %ld threads",
           what, m.rss, m.anon, m.file, m.pss, m.uss, m.threads);
    if (target)
        printf("  (target <= %d KiB: %s)", TARGET_RSS_KIB,
               verdict(m.rss <= TARGET_RSS_KIB));
    printf("\n");
    fflush(stdout);
}

/* Figures 1 and 2 on a fresh daemon: RSS with 0 and RSS_SITES running
 * sites, then CPU with CPU_SITES. */
static void bench_memory_cpu(bench_daemon *d)
{
    static char sites[CPU_SITES][ID_UUID_LEN + 1], cids[CPU_SITES][ID_UUID_LEN + 1];
    cpu_figures idle, busy;
    double secs;

    idle = cpu_use(d->proc.pid, IDLE_WINDOW_S);
    print_mem("0 sites", mem_of(d->proc.pid), 0);

    secs = create_running(d, sites, cids, 0, RSS_SITES);
    printf("sites  %d sites created and running in %.1f s (one burst of commands)\n",
           RSS_SITES, secs);
    nap(SETTLE_MS);
    print_mem("50 running sites", mem_of(d->proc.pid), 1);

    secs = create_running(d, sites, cids, RSS_SITES, CPU_SITES);
    printf("sites  %d more created and running in %.1f s (%.2f s per site)\n",
           CPU_SITES - RSS_SITES, secs, secs / (CPU_SITES - RSS_SITES));
    nap(SETTLE_MS);
    print_mem("200 running sites", mem_of(d->proc.pid), 0);
    busy = cpu_use(d->proc.pid, CPU_WINDOW_S);
    printf("cpu  whole daemon, 0 sites:   CPU clock %5.2f %% of one core over %d s "
           "(utime+stime %.2f %%)\n",
           idle.clock_pct, IDLE_WINDOW_S, idle.ticks_pct);
    printf("cpu  whole daemon, %d sites: CPU clock %5.2f %% of one core over %d s "
           "(utime+stime %.2f %%), %ld container.stats/s  (target <= %.0f %%: %s)\n",
           CPU_SITES, busy.clock_pct, CPU_WINDOW_S, busy.ticks_pct, busy.stats_per_s,
           TARGET_CPU_PERCENT,
           verdict(busy.ticks_pct <= TARGET_CPU_PERCENT &&
                   busy.clock_pct <= TARGET_CPU_PERCENT));
    printf("cpu  busiest single thread at %d sites: %.2f %% (the stats thread, when "
           "it is the largest user)\n",
           CPU_SITES, busy.top_thread_pct);
    printf("cpu  (all the daemon's threads, an upper bound of what stats at 1 Hz cost; "
           "utime+stime are sampled at clock ticks and miss short bursts)\n");
    fflush(stdout);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    char subject[160], suffix[ID_UUID_LEN + 1];
    double secs;

    log_init("bench", LOG_WARN);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    id_uuid(suffix);
    snprintf(direct_label, sizeof(direct_label), "bench-direct-%s", suffix);
    if (h_image_build() != 0)
        fail("cannot build %s", TEST_IMAGE);
    tmp = h_tempdir("bench-daemon");
    if (tmp == NULL || h_nats_start(&nats) != 0)
        fail("nats-server did not start");
    b = h_bus_open(nats.url, "berth-panel");
    if (bus_js_setup(b) != 0 || h_fake_panel(b, NULL, NULL) != 0)
        fail("cannot set up the bus");
    snprintf(subject, sizeof(subject), "site.status.*.*");
    if (bus_subscribe(b, subject, NULL, on_status, NULL) != 0 ||
        bus_subscribe(b, "command.result.*", NULL, on_result, NULL) != 0 ||
        bus_subscribe(b, "container.stats.*.*", NULL, on_stats, NULL) != 0)
        fail("cannot subscribe");
    natsConnection_Flush(bus_nats(b));

    /* A quiet node for the console and the starts. */
    bench_console(daemon_start());
    bench_starts(&daemons[0]);
    daemon_stop(&daemons[0]);
    remove_containers();

    /* A fresh daemon for memory and CPU. */
    bench_memory_cpu(daemon_start());
    daemon_stop(&daemons[1]);
    secs = remove_containers();
    printf("sites  removing the containers took %.1f s; %d command publishes "
           "retried\n",
           secs, publish_retries);
    ndaemons = 0;
    direct_label[0] = '\0';
    cleanup();
    return 0;
}
