/* daemon_stats.c - the daemon's stats (svc-daemon/stats.c, cgroup.c and
 * Docker's stats endpoint in docker.c) against a real nats-server and the
 * real Docker Engine of this machine: container.stats arrive at 1 Hz with
 * plausible figures for a container that allocates memory and for one that
 * burns CPU, node.stats carry the node's figures, untrack stops the
 * messages, an unreadable cgroup falls back to Docker, and the per-pass
 * cost for 200 containers is measured.
 *
 * Containers are named berth-test-stats-<what>-<run> and labelled
 * berth.node=<run>; the suite's teardown removes whatever carries that
 * label. The image berth-test-busybox:1 is built by tests/harness/image.sh.
 */
#include "svc-daemon/docker.c"
#include "svc-daemon/uhttp.c"
#include "svc-daemon/hijack.c"
#include "svc-daemon/cgroup.c"
#include "svc-daemon/stats.c"

#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "tests/harness/docker.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define TEST_IMAGE H_TEST_IMAGE
#define MIB (1024ull * 1024)
#define INBOX_MAX 256

static h_nats nats;
static char node_id[64]; /* berth.node of every container of this run */
static char node_label[96];

/* ---------------------------------------------------------------- fixture */

static void suite_setup(void)
{
    snprintf(node_id, sizeof(node_id), "test-%ld-%d", (long)time(NULL),
             (int)getpid());
    snprintf(node_label, sizeof(node_label), "berth.node=%s", node_id);
    h_image_build();
    if (h_nats_start(&nats) != 0)
        h_say("nats-server did not start");
}

static void suite_teardown(void)
{
    daemon_docker *d = NULL;
    daemon_docker_summary *items = NULL;
    size_t n = 0, i;

    if (daemon_docker_new(NULL, &d) == 0) {
        if (daemon_docker_container_list(d, node_label, &items, &n, NULL) ==
            0) {
            for (i = 0; i < n; i++)
                daemon_docker_container_remove(d, items[i].id, true, true,
                                               NULL);
        }
        free(items);
        daemon_docker_free(d);
    }
    h_nats_stop(&nats);
}

/* A running container of this run: its id and init pid. */
typedef struct box {
    char name[160];
    char id[DAEMON_DOCKER_ID_MAX];
    int pid;
} box;

static void box_start(daemon_docker *d, box *b, const char *what,
                      const char *script, int64_t memory)
{
    const char *const cmd[] = {"sh", "-c", script, NULL};
    daemon_docker_spec spec = {
        .image = TEST_IMAGE,
        .cmd = cmd,
        .site = what,
        .node = node_id,
        .memory_bytes = memory,
    };
    daemon_docker_state st;
    daemon_docker_err err = {0};

    snprintf(b->name, sizeof(b->name), "berth-test-stats-%s-%s", what,
             node_id);
    spec.name = b->name;
    ck_assert_msg(daemon_docker_container_create(d, &spec, b->id, &err) == 0,
                  "%s", err.message);
    ck_assert_msg(daemon_docker_container_start(d, b->id, &err) == 0, "%s",
                  err.message);
    ck_assert_int_eq(daemon_docker_container_inspect(d, b->id, &st, &err), 0);
    ck_assert(st.running);
    b->pid = st.pid;
    ck_assert_int_gt(b->pid, 0);
}

static void box_remove(daemon_docker *d, box *b)
{
    ck_assert_int_eq(daemon_docker_container_remove(d, b->id, true, true, NULL),
                     0);
}

/* ---------------------------------------------------------------- inbox */

/* What the subscriber saw: the fields of each message, copied. */
typedef struct seen_c {
    int64_t recv_ms;
    char site[64];
    char node[64];
    double cpu;
    uint64_t mem, limit, rx, tx, rd, wr, disk;
    uint32_t pids;
} seen_c;

typedef struct inbox {
    pthread_mutex_t mu;
    seen_c c[INBOX_MAX];
    int nc;    /* kept in c */
    int total; /* received */
    Berth__V1__NodeStats n[INBOX_MAX]; /* strings not kept */
    int64_t n_recv_ms[INBOX_MAX];
    int nn;
} inbox;

static int on_container(bus_msg *m, void *ud)
{
    inbox *in = ud;
    Berth__V1__ContainerStats *c = (Berth__V1__ContainerStats *)m->msg;
    seen_c *s;

    pthread_mutex_lock(&in->mu);
    in->total++;
    if (in->nc < INBOX_MAX) {
        s = &in->c[in->nc++];
        s->recv_ms = clock_mono_ms();
        snprintf(s->site, sizeof(s->site), "%s", c->site_id);
        snprintf(s->node, sizeof(s->node), "%s", c->node_id);
        s->cpu = c->cpu_percent;
        s->mem = c->memory_bytes;
        s->limit = c->memory_limit_bytes;
        s->rx = c->net_rx_bytes;
        s->tx = c->net_tx_bytes;
        s->rd = c->block_read_bytes;
        s->wr = c->block_write_bytes;
        s->disk = c->disk_bytes;
        s->pids = c->pids;
    }
    pthread_mutex_unlock(&in->mu);
    return 0;
}

static int on_node(bus_msg *m, void *ud)
{
    inbox *in = ud;
    Berth__V1__NodeStats *n = (Berth__V1__NodeStats *)m->msg;

    pthread_mutex_lock(&in->mu);
    if (in->nn < INBOX_MAX) {
        in->n_recv_ms[in->nn] = clock_mono_ms();
        in->n[in->nn] = *n;
        in->n[in->nn].node_id = NULL;
        in->nn++;
    }
    pthread_mutex_unlock(&in->mu);
    return 0;
}

/* Subscribes in to this run's container.stats (of site, "*" for all) and
 * node.stats. */
static void subscribe(bus *b, inbox *in, const char *site)
{
    char filter[256];

    pthread_mutex_init(&in->mu, NULL);
    snprintf(filter, sizeof(filter), "container.stats.%s.%s", node_id, site);
    ck_assert_int_eq(bus_subscribe(b, filter, NULL, on_container, in), 0);
    snprintf(filter, sizeof(filter), "node.stats.%s", node_id);
    ck_assert_int_eq(bus_subscribe(b, filter, NULL, on_node, in), 0);
    ck_assert_int_eq(natsConnection_Flush(bus_nats(b)), NATS_OK);
}

static int count_c(inbox *in)
{
    int n;

    pthread_mutex_lock(&in->mu);
    n = in->total;
    pthread_mutex_unlock(&in->mu);
    return n;
}

static daemon_stats *stats_new(bus *b, daemon_docker *d, const char *volumes,
                               const char *cgroup_root, int interval_ms)
{
    daemon_stats *s = NULL;

    ck_assert_int_eq(daemon_stats_new(&(daemon_stats_cfg){
                                          .bus = b,
                                          .docker = d,
                                          .node_id = node_id,
                                          .data_dir = nats.dir,
                                          .volumes_dir = volumes,
                                          .interval_ms = interval_ms,
                                          .cgroup_root = cgroup_root,
                                      },
                                      &s),
                     0);
    return s;
}

/* ---------------------------------------------------------------- tests */

/* A 64 MiB container that takes 40 MiB after two seconds: 1 Hz messages,
 * the limit, the growth, pids, the site's disk, and node.stats. */
START_TEST(test_memory_container)
{
    daemon_docker *d = NULL;
    daemon_stats *s;
    bus *b = h_bus_open(nats.url, "stats-test");
    inbox *in = calloc(1, sizeof(*in));
    char *volumes = h_tempdir("stats-volumes");
    char path[PATH_MAX];
    static char blob[1 << 20];
    uint64_t first_mem, max_mem = 0;
    int64_t t0;
    int i, n;
    box bx;

    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(volumes);
    snprintf(path, sizeof(path), "%s/mem", volumes);
    ck_assert_int_eq(fs_mkdirs(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/mem/blob", volumes);
    memset(blob, 'x', sizeof(blob));
    ck_assert_int_eq(fs_write_atomic(path, blob, sizeof(blob), 0644), 0);

    ck_assert_int_eq(daemon_docker_new(NULL, &d), 0);
    subscribe(b, in, "mem");
    box_start(d, &bx, "mem",
              "sleep 2; dd if=/dev/zero bs=40M count=1 | sleep 30", 64 * MIB);
    s = stats_new(b, d, volumes, NULL, 0);
    ck_assert_int_eq(daemon_stats_start(s), 0);
    t0 = clock_mono_ms();
    ck_assert_int_eq(daemon_stats_track(s, "mem", bx.id, bx.pid, 64 * MIB), 0);
    ck_assert_int_eq(daemon_stats_count(s), 1);
    clock_sleep_ms(5000 - (clock_mono_ms() - t0));
    n = count_c(in);
    h_say("memory container: %d messages in 5 s", n);
    ck_assert_int_ge(n, 4);
    ck_assert_int_le(n, 7);
    /* The growth may need a moment more on a slow machine. */
    for (i = 0; i < 50; i++) {
        pthread_mutex_lock(&in->mu);
        max_mem = 0;
        for (n = 0; n < in->nc; n++)
            if (in->c[n].mem > max_mem)
                max_mem = in->c[n].mem;
        first_mem = in->c[0].mem;
        pthread_mutex_unlock(&in->mu);
        if (max_mem > first_mem + 30 * MIB)
            break;
        clock_sleep_ms(100);
    }
    pthread_mutex_lock(&in->mu);
    for (i = 0; i < in->nc; i++) {
        seen_c *c = &in->c[i];

        ck_assert_str_eq(c->site, "mem");
        ck_assert_str_eq(c->node, node_id);
        ck_assert_uint_eq(c->limit, 64 * MIB);
        ck_assert_uint_ge(c->pids, 1);
        ck_assert(c->cpu >= 0 && c->cpu < 1000);
        ck_assert_uint_le(c->mem, 64 * MIB);
        if (i > 0) /* about 1 Hz */
            ck_assert_int_ge(c->recv_ms - in->c[i - 1].recv_ms, 700);
    }
    h_say("memory: first %llu MiB, max %llu MiB; disk %llu bytes; rx %llu",
          (unsigned long long)(first_mem / MIB),
          (unsigned long long)(max_mem / MIB),
          (unsigned long long)in->c[in->nc - 1].disk,
          (unsigned long long)in->c[in->nc - 1].rx);
    ck_assert_uint_gt(max_mem, first_mem + 30 * MIB);
    /* The site's data was measured soon after tracking. */
    ck_assert_uint_ge(in->c[in->nc - 1].disk, sizeof(blob));
    ck_assert_uint_lt(in->c[in->nc - 1].disk, 4 * MIB);

    /* node.stats at the same pace, with the node's figures. */
    ck_assert_int_ge(in->nn, 4);
    for (i = 0; i < in->nn; i++) {
        Berth__V1__NodeStats *m = &in->n[i];

        ck_assert_uint_gt(m->memory_total_bytes, 64 * MIB);
        ck_assert_uint_gt(m->memory_used_bytes, 0);
        ck_assert_uint_le(m->memory_used_bytes, m->memory_total_bytes);
        ck_assert_uint_gt(m->disk_total_bytes, 0);
        ck_assert_uint_gt(m->disk_used_bytes, 0);
        ck_assert_uint_le(m->disk_used_bytes, m->disk_total_bytes);
        ck_assert(m->load1 >= 0 && m->load5 >= 0 && m->load15 >= 0);
        ck_assert(m->cpu_percent >= 0 && m->cpu_percent <= 100);
        ck_assert_int_gt(m->at_ms, 1700000000000LL);
    }
    pthread_mutex_unlock(&in->mu);

    daemon_stats_untrack(s, "mem");
    ck_assert_int_eq(daemon_stats_count(s), 0);
    daemon_stats_free(s);
    box_remove(d, &bx);
    bus_close(b);
    daemon_docker_free(d);
    h_tempdir_drop(volumes, "stats volumes");
    free(in);
}
END_TEST

/* A container that spins: more than half a core; untrack stops the
 * messages. */
START_TEST(test_cpu_container_and_untrack)
{
    daemon_docker *d = NULL;
    daemon_stats *s;
    bus *b = h_bus_open(nats.url, "stats-test");
    inbox *in = calloc(1, sizeof(*in));
    double last, max_cpu = 0;
    int i, n;
    box bx;

    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(daemon_docker_new(NULL, &d), 0);
    subscribe(b, in, "*");
    box_start(d, &bx, "cpu", "while :; do :; done", 0);
    s = stats_new(b, d, NULL, NULL, 0);
    ck_assert_int_eq(daemon_stats_start(s), 0);
    ck_assert_int_eq(daemon_stats_track(s, "cpu", bx.id, bx.pid, 0), 0);
    clock_sleep_ms(3500);
    pthread_mutex_lock(&in->mu);
    ck_assert_int_ge(in->nc, 2);
    last = in->c[in->nc - 1].cpu;
    h_say("busy container: cpu_percent %.1f, %.1f (limit %llu MiB)",
          in->c[0].cpu, last,
          (unsigned long long)(in->c[in->nc - 1].limit / MIB));
    /* A baseline was taken on tracking: even the first figure counts (a
     * machine busy with other tests may give the spinner less than a
     * core at times, hence the maximum). */
    ck_assert(in->c[0].cpu > 20);
    for (i = 0; i < in->nc; i++) {
        if (in->c[i].cpu > max_cpu)
            max_cpu = in->c[i].cpu;
        ck_assert(in->c[i].cpu < 250); /* one thread: a core, and noise */
    }
    ck_assert(max_cpu > 50);
    /* No limit: the node's memory. */
    ck_assert_uint_eq(in->c[in->nc - 1].limit,
                      in->n[in->nn - 1].memory_total_bytes);
    pthread_mutex_unlock(&in->mu);

    daemon_stats_untrack(s, "cpu");
    clock_sleep_ms(200); /* a message already on its way */
    n = count_c(in);
    clock_sleep_ms(2500);
    ck_assert_int_eq(count_c(in), n);
    /* Tracking again resumes. */
    ck_assert_int_eq(daemon_stats_track(s, "cpu", bx.id, bx.pid, 0), 0);
    clock_sleep_ms(1500);
    ck_assert_int_gt(count_c(in), n);

    /* The container dies while still tracked: its cgroup goes, and so do
     * the messages, without a fallback to Docker. */
    {
        daemon_docker_err err = {0};
        ssize_t at;
        int code;

        ck_assert_int_eq(daemon_docker_container_kill(d, bx.id, 9, &err), 0);
        ck_assert_int_eq(daemon_docker_container_wait(d, bx.id, 10000, &code,
                                                      &err),
                         0);
        clock_sleep_ms(1200);
        n = count_c(in);
        clock_sleep_ms(2000);
        ck_assert_int_eq(count_c(in), n);
        pthread_mutex_lock(&s->mu);
        at = site_find(s, "cpu");
        ck_assert_int_ge(at, 0);
        ck_assert_int_eq(s->sites[at]->src, SRC_GONE);
        pthread_mutex_unlock(&s->mu);
        ck_assert(!s->warned_fallback);
        ck_assert_int_eq(atomic_load(&s->fds_held), 0);
    }

    daemon_stats_free(s);
    box_remove(d, &bx);
    bus_close(b);
    daemon_docker_free(d);
    free(in);
}
END_TEST

/* A cgroup root where nothing can be found: Docker's figures instead,
 * said once. A stopped container publishes nothing. */
START_TEST(test_docker_fallback)
{
    daemon_docker *d = NULL;
    daemon_docker_stats ds;
    daemon_docker_err err = {0};
    daemon_stats *s;
    bus *b = h_bus_open(nats.url, "stats-test");
    inbox *in = calloc(1, sizeof(*in));
    char *empty = h_tempdir("stats-cgroup");
    ssize_t at;
    int n;
    box bx;

    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(empty);
    ck_assert_int_eq(daemon_docker_new(NULL, &d), 0);

    /* The endpoint itself. */
    box_start(d, &bx, "fb", "sleep 30", 64 * MIB);
    ck_assert_msg(daemon_docker_container_stats(d, bx.id, &ds, &err) == 0, "%s",
                  err.message);
    ck_assert_uint_gt(ds.cpu_usage_ns, 0);
    ck_assert_uint_gt(ds.system_usage_ns, 0);
    ck_assert_uint_ge(ds.online_cpus, 1);
    ck_assert_uint_gt(ds.memory_usage, 0);
    ck_assert_uint_lt(ds.memory_usage, 64 * MIB);
    ck_assert_uint_eq(ds.memory_limit, 64 * MIB);
    ck_assert_uint_eq(ds.pids, 2); /* docker-init and sleep */
    ck_assert_int_eq(daemon_docker_container_stats(d, "berth-test-stats-none",
                                                   &ds, &err),
                     BERTH_ENOENT);
    ck_assert_int_eq(daemon_docker_container_stats(d, "../x", &ds, &err),
                     BERTH_EINVAL);

    subscribe(b, in, "fb");
    s = stats_new(b, d, NULL, empty, 0);
    ck_assert_int_eq(daemon_stats_start(s), 0);
    ck_assert_int_eq(daemon_stats_track(s, "fb", bx.id, bx.pid, 64 * MIB), 0);
    /* Docker answers at its next collection, up to a second later. */
    clock_sleep_ms(4000);
    pthread_mutex_lock(&in->mu);
    ck_assert_int_ge(in->nc, 2);
    ck_assert_uint_eq(in->c[in->nc - 1].limit, 64 * MIB);
    ck_assert_uint_eq(in->c[in->nc - 1].pids, 2); /* docker-init and sleep */
    ck_assert_uint_gt(in->c[in->nc - 1].mem, 0);
    pthread_mutex_unlock(&in->mu);
    pthread_mutex_lock(&s->mu);
    at = site_find(s, "fb");
    ck_assert_int_ge(at, 0);
    ck_assert_int_eq(s->sites[at]->src, SRC_DOCKER);
    pthread_mutex_unlock(&s->mu);
    ck_assert(s->warned_fallback);

    /* Stopped: Docker says so, and nothing is sent. */
    ck_assert_int_eq(daemon_docker_container_kill(d, bx.id, 9, &err), 0);
    {
        int code;
        ck_assert_int_eq(daemon_docker_container_wait(d, bx.id, 10000, &code,
                                                      &err),
                         0);
    }
    ck_assert_int_eq(daemon_docker_container_stats(d, bx.id, &ds, &err),
                     BERTH_ECONFLICT);
    clock_sleep_ms(1200);
    n = count_c(in);
    clock_sleep_ms(2000);
    ck_assert_int_eq(count_c(in), n);

    daemon_stats_free(s);
    box_remove(d, &bx);
    bus_close(b);
    daemon_docker_free(d);
    h_tempdir_drop(empty, "stats cgroup");
    free(in);
}
END_TEST

static double thread_cpu_ms(pthread_t t)
{
    clockid_t id;
    struct timespec ts;

    ck_assert_int_eq(pthread_getcpuclockid(t, &id), 0);
    ck_assert_int_eq(clock_gettime(id, &ts), 0);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double self_cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The cost of 200 containers: the reads alone (kept open and not), then
 * whole passes of the stats thread (reads, protobuf, publish) for 200
 * sites, all pointing at one real container. */
START_TEST(test_cost_200)
{
    enum { N = 200, ROUNDS = 20 };
    static daemon_cgroup cg[N];
    daemon_cgroup_figures f;
    daemon_docker *d = NULL;
    daemon_stats *s;
    bus *b = h_bus_open(nats.url, "stats-test");
    inbox *in = calloc(1, sizeof(*in));
    char why[256] = "", site[32];
    double t0, kept, opened, stats_ms;
    int i, r, keep, passes;
    box bx;

    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(daemon_docker_new(NULL, &d), 0);
    box_start(d, &bx, "cost", "sleep 60", 64 * MIB);

    for (keep = 1; keep >= 0; keep--) {
        for (i = 0; i < N; i++)
            ck_assert_msg(daemon_cgroup_open(&cg[i], NULL, NULL, bx.pid, keep,
                                             why, sizeof(why)) == 0,
                          "%s", why);
        t0 = self_cpu_ms();
        for (r = 0; r < ROUNDS; r++)
            for (i = 0; i < N; i++)
                ck_assert_int_eq(daemon_cgroup_read(&cg[i], &f, why,
                                                    sizeof(why)),
                                 0);
        if (keep)
            kept = (self_cpu_ms() - t0) / ROUNDS;
        else
            opened = (self_cpu_ms() - t0) / ROUNDS;
        for (i = 0; i < N; i++)
            daemon_cgroup_close(&cg[i]);
    }
    h_say("200 cgroup reads: %.2f ms CPU per pass with files kept open, "
          "%.2f ms opening them each time", kept, opened);
    ck_assert(kept < 50);
    ck_assert(opened < 50);

    subscribe(b, in, "*");
    s = stats_new(b, d, NULL, NULL, 200);
    ck_assert_int_eq(daemon_stats_start(s), 0);
    for (i = 0; i < N; i++) {
        snprintf(site, sizeof(site), "s%03d", i);
        ck_assert_int_eq(daemon_stats_track(s, site, bx.id, bx.pid, 0), 0);
    }
    clock_sleep_ms(500); /* baselines taken, first tick passed */
    pthread_mutex_lock(&in->mu);
    in->nc = in->total = 0;
    pthread_mutex_unlock(&in->mu);
    t0 = thread_cpu_ms(s->thread);
    clock_sleep_ms(3000); /* 15 passes at 200 ms */
    stats_ms = thread_cpu_ms(s->thread) - t0;
    passes = count_c(in) / N;
    ck_assert_int_ge(passes, 12);
    h_say("stats thread, 200 sites: %.2f ms CPU per pass (%d passes, %d "
          "messages, %d fds kept open): %.2f%% of a core at 1 Hz",
          stats_ms / passes, passes, count_c(in), atomic_load(&s->fds_held),
          stats_ms / passes / 10);
    ck_assert(stats_ms / passes < 50);
    ck_assert_int_eq(atomic_load(&s->fds_held), N * DAEMON_CGROUP_NFILES);
    daemon_stats_free(s);

    box_remove(d, &bx);
    bus_close(b);
    daemon_docker_free(d);
    free(in);
}
END_TEST

START_TEST(test_bad_arguments)
{
    daemon_stats *s = NULL;
    bus *b = h_bus_open(nats.url, "stats-test");

    ck_assert_int_eq(daemon_stats_new(&(daemon_stats_cfg){.bus = b,
                                                          .node_id = "a.b"},
                                      &s),
                     BERTH_EINVAL);
    ck_assert_int_eq(daemon_stats_new(&(daemon_stats_cfg){.node_id = "n"}, &s),
                     BERTH_EINVAL);
    ck_assert_int_eq(daemon_stats_new(&(daemon_stats_cfg){.bus = b,
                                                          .node_id = "n",
                                                          .interval_ms = 5},
                                      &s),
                     BERTH_EINVAL);
    ck_assert_int_eq(
        daemon_stats_new(&(daemon_stats_cfg){.bus = b, .node_id = "n"}, &s), 0);
    ck_assert_int_eq(daemon_stats_track(s, "a.b", "x", 1, 0), BERTH_EINVAL);
    ck_assert_int_eq(daemon_stats_track(s, "", "x", 1, 0), BERTH_EINVAL);
    ck_assert_int_eq(daemon_stats_track(s, "a>", "x", 1, 0), BERTH_EINVAL);
    ck_assert_int_eq(daemon_stats_track(s, "ok", "x", -1, 0), BERTH_EINVAL);
    ck_assert_int_eq(daemon_stats_track(s, "ok", "x", 1, 0), 0);
    ck_assert_int_eq(daemon_stats_track(s, "ok", "y", 2, 0), 0); /* replaces */
    ck_assert_int_eq(daemon_stats_count(s), 1);
    daemon_stats_untrack(s, "nope");
    daemon_stats_untrack(s, NULL);
    ck_assert_int_eq(daemon_stats_count(s), 1);
    daemon_stats_free(s); /* never started */
    daemon_stats_free(NULL);
    bus_close(b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_stats");
    TCase *tc = tcase_create("stats");

    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_memory_container);
    tcase_add_test(tc, test_cpu_container_and_untrack);
    tcase_add_test(tc, test_docker_fallback);
    tcase_add_test(tc, test_cost_200);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
