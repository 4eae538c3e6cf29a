/* stats.c - the daemon's resource figures: a stats thread that reads every
 * tracked container's cgroup (cgroup.h) and the node's /proc files once a
 * tick and publishes them, a low-priority disk thread that measures the
 * sites' data directories, and a Docker thread that asks Docker for the
 * figures of the sites whose cgroup cannot be read (Docker answers such a
 * call only at its next collection, up to a second later, which must not
 * hold up the tick). See stats.h.
 *
 * Ownership. The site list and every field marked "mu" below are guarded
 * by s->mu. A site is reference counted: the list holds one reference and
 * a pass of the stats thread one more for each site it works on, so an
 * untrack in the middle of a pass frees nothing the pass still uses. The
 * fields marked "thread" belong to the stats thread alone (a site is
 * freed only after its last reference is gone, when no thread uses it).
 */
#include "svc-daemon/stats.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "node.pb-c.h"
#include "site.pb-c.h"
#include "svc-daemon/cgroup.h"

#define STATS_INTERVAL_DEFAULT_MS      1000
#define STATS_INTERVAL_MIN_MS          10
#define STATS_DISK_INTERVAL_DEFAULT_MS 60000
#define STATS_DISK_ENTRIES_MAX         1000000 /* per walk */
#define STATS_DISK_OPEN_FDS            16      /* nftw's descriptors */
#define STATS_SITE_MAX                 127
#define STATS_NODE_MAX                 127
#define STATS_SUBJECT_MAX              (32 + STATS_NODE_MAX + STATS_SITE_MAX)

/* Where a site's figures come from. */
enum source {
    SRC_NONE,   /* not located yet */
    SRC_CGROUP, /* cgroup.h */
    SRC_DOCKER, /* daemon_docker_container_stats() on the Docker thread:
                 * the cgroup was not readable */
    SRC_GONE,   /* its cgroup went away: the container stopped, and nothing
                 * is published until the site is tracked again (its pid
                 * may belong to another process by then) */
};

typedef struct site {
    char name[STATS_SITE_MAX + 1];
    char container[DAEMON_DOCKER_ID_MAX]; /* "" when none was given */
    char subject[STATS_SUBJECT_MAX];
    int pid;
    uint64_t memory_limit;

    int refs;           /* mu */
    atomic_bool removed; /* set under mu; read by the pass without it */

    /* mu: the last disk measurement, carried over when tracked again. */
    uint64_t disk_bytes;
    bool disk_known;
    int64_t disk_due_ms; /* monotonic; the next walk */

    /* mu: the Docker fallback. The stats thread sets docker_wanted; the
     * Docker thread keeps the last reading and the CPU share between its
     * last two readings. */
    bool docker_wanted;
    bool docker_ok; /* docker_f holds a reading of the running container */
    int64_t docker_at_ms; /* monotonic start of the last call */
    daemon_cgroup_figures docker_f;
    double docker_cpu;
    bool docker_have_prev;
    uint64_t docker_prev_cpu_ns, docker_prev_system_ns;

    /* thread */
    enum source src;
    daemon_cgroup cg;
    bool have_prev; /* prev_* hold a reading */
    uint64_t prev_cpu_ns;
    int64_t prev_ns; /* monotonic time of that reading */
} site;

struct daemon_stats {
    bus *bus;
    daemon_docker *docker;
    char node_id[STATS_NODE_MAX + 1];
    char node_subject[STATS_SUBJECT_MAX];
    char *data_dir;    /* NULL: no node disk figures */
    char *volumes_dir; /* NULL: no site disk figures */
    char *proc_root;
    char *cgroup_root;
    int interval_ms;
    int disk_interval_ms;
    int fd_budget;        /* cgroup files kept open at most */
    atomic_int fds_held;  /* cgroup files kept open now */

    pthread_mutex_t mu;
    pthread_cond_t tick_cv; /* wakes the stats thread: stop, new site */
    pthread_cond_t disk_cv; /* wakes the disk thread: stop, new site */
    pthread_cond_t docker_cv; /* wakes the Docker thread: stop, fallback */
    bool stopping;        /* mu */
    bool fresh;           /* mu: a site was tracked since the last look */
    site **sites;         /* mu */
    size_t nsites, cap;   /* mu */
    pthread_t thread, disk_thread, docker_thread;
    bool started, disk_started, docker_started;

    /* thread */
    site **snap; /* this pass's sites, with a reference each */
    size_t snap_cap;
    daemon_cgroup_host host;
    bool host_ok;
    bool have_host_prev;
    daemon_cgroup_host_figures host_prev;
    uint64_t mem_total; /* the node's, for sites without a limit */
    bool warned_fallback; /* the first fallback was logged at warn */
    bool warned_host;
};

/* ---------------------------------------------------------------- sites */

/* Site ids and node ids become subject tokens. */
static bool valid_token(const char *s, size_t max)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || strlen(s) > max)
        return false;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Drops a reference; the last one closes the site's files and frees it.
 * Called with mu held. */
static void site_unref(daemon_stats *s, site *e)
{
    if (--e->refs > 0)
        return;
    atomic_fetch_sub(&s->fds_held, daemon_cgroup_fds(&e->cg));
    daemon_cgroup_close(&e->cg);
    free(e);
}

/* The index of the site named name, or -1. Called with mu held. */
static ssize_t site_find(daemon_stats *s, const char *name)
{
    size_t i;

    for (i = 0; i < s->nsites; i++)
        if (strcmp(s->sites[i]->name, name) == 0)
            return (ssize_t)i;
    return -1;
}

int daemon_stats_track(daemon_stats *s, const char *site_id,
                       const char *container, int pid, uint64_t memory_limit)
{
    site *e = NULL, *old;
    ssize_t at;
    int rc;

    if (!valid_token(site_id, STATS_SITE_MAX) || pid < 0 ||
        (container != NULL && strlen(container) >= DAEMON_DOCKER_ID_MAX))
        return BERTH_EINVAL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return BERTH_ENOMEM;
    snprintf(e->name, sizeof(e->name), "%s", site_id);
    snprintf(e->container, sizeof(e->container), "%s",
             container != NULL ? container : "");
    snprintf(e->subject, sizeof(e->subject), "container.stats.%s.%s",
             s->node_id, site_id);
    e->pid = pid;
    e->memory_limit = memory_limit;
    e->refs = 1;
    e->disk_due_ms = clock_mono_ms();

    pthread_mutex_lock(&s->mu);
    at = site_find(s, site_id);
    if (at >= 0) {
        /* The data directory is the site's, not the container's: its last
         * measurement stays good. */
        old = s->sites[at];
        e->disk_bytes = old->disk_bytes;
        e->disk_known = old->disk_known;
        e->disk_due_ms = old->disk_known ? old->disk_due_ms : e->disk_due_ms;
        atomic_store(&old->removed, true);
        site_unref(s, old);
        s->sites[at] = e;
    } else {
        if (s->nsites == s->cap) {
            size_t cap = s->cap != 0 ? s->cap * 2 : 16;
            site **n = realloc(s->sites, cap * sizeof(*n));

            if (n == NULL) {
                rc = BERTH_ENOMEM;
                pthread_mutex_unlock(&s->mu);
                goto out;
            }
            s->sites = n;
            s->cap = cap;
        }
        s->sites[s->nsites++] = e;
    }
    s->fresh = true;
    pthread_cond_signal(&s->tick_cv);
    pthread_cond_signal(&s->disk_cv);
    pthread_mutex_unlock(&s->mu);
    e = NULL;
    rc = 0;
out:
    free(e);
    return rc;
}

void daemon_stats_untrack(daemon_stats *s, const char *site_id)
{
    ssize_t at;

    if (site_id == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    at = site_find(s, site_id);
    if (at >= 0) {
        site *e = s->sites[at];

        s->sites[at] = s->sites[--s->nsites];
        atomic_store(&e->removed, true);
        site_unref(s, e);
    }
    pthread_mutex_unlock(&s->mu);
}

int daemon_stats_count(daemon_stats *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = (int)s->nsites;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---------------------------------------------------------------- reading */

/* Hands e to the Docker thread, saying why: the first time at warn, later
 * only at debug, so a host where no cgroup can be read says it once. */
static void fall_back(daemon_stats *s, site *e, const char *why)
{
    if (!s->warned_fallback) {
        s->warned_fallback = true;
        log_warn("container stats from docker: cgroup not readable",
                 "site=%s container=%s pid=%d reason=%s", e->name,
                 e->container, e->pid, why);
    } else {
        log_debug("container stats from docker: cgroup not readable",
                  "site=%s container=%s pid=%d reason=%s", e->name,
                  e->container, e->pid, why);
    }
    e->src = SRC_DOCKER;
    pthread_mutex_lock(&s->mu);
    e->docker_wanted = true;
    pthread_cond_signal(&s->docker_cv);
    pthread_mutex_unlock(&s->mu);
}

/* Locates e's cgroup, or decides that its figures come from Docker. */
static void locate(daemon_stats *s, site *e)
{
    bool keep;
    char why[512] = "";
    int rc;

    keep = atomic_load(&s->fds_held) + DAEMON_CGROUP_NFILES <= s->fd_budget;
    rc = e->pid > 0 ? daemon_cgroup_open(&e->cg, s->proc_root,
                                         s->cgroup_root, e->pid, keep, why,
                                         sizeof(why))
                    : BERTH_EINVAL;
    if (rc == 0) {
        atomic_fetch_add(&s->fds_held, daemon_cgroup_fds(&e->cg));
        e->src = SRC_CGROUP;
        return;
    }
    /* No <proc>/<pid> at all: the daemon may live in another pid
     * namespace, or the container has already stopped; Docker knows. */
    if (e->pid <= 0)
        snprintf(why, sizeof(why), "no pid given");
    if (e->container[0] == '\0' || s->docker == NULL) {
        if (!s->warned_fallback)
            log_warn("container stats unavailable", "site=%s pid=%d reason=%s",
                     e->name, e->pid, why);
        s->warned_fallback = true;
        return;
    }
    fall_back(s, e, why);
}

/* Reads e's figures into f from its cgroup, or takes the Docker thread's
 * last reading, whose CPU share goes to *cpu (-1 otherwise: the caller
 * works it out). Returns 0, or non-zero when there is nothing to publish
 * this time (the container stopped, Docker has not answered yet). */
static int sample(daemon_stats *s, site *e, daemon_cgroup_figures *f,
                  double *cpu)
{
    char why[512] = "";
    int rc;

    *cpu = -1;
    if (e->src == SRC_NONE)
        locate(s, e);
    if (e->src == SRC_CGROUP) {
        rc = daemon_cgroup_read(&e->cg, f, why, sizeof(why));
        if (rc == 0)
            return 0;
        atomic_fetch_sub(&s->fds_held, daemon_cgroup_fds(&e->cg));
        daemon_cgroup_close(&e->cg);
        e->have_prev = false;
        if (rc == BERTH_ENOENT) {
            e->src = SRC_GONE;
            log_debug("container stats stop: cgroup gone", "site=%s pid=%d "
                      "reason=%s", e->name, e->pid, why);
            return rc;
        }
        e->src = SRC_NONE;
        if (e->container[0] == '\0' || s->docker == NULL)
            return rc;
        fall_back(s, e, why);
    }
    if (e->src != SRC_DOCKER)
        return BERTH_ENOENT;
    pthread_mutex_lock(&s->mu);
    rc = e->docker_ok ? 0 : BERTH_ENOENT;
    *f = e->docker_f;
    *cpu = e->docker_cpu;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Reads e and publishes its figures, with the CPU share since the last
 * reading. When publish is false only the reading is kept (the baseline of
 * a new site). */
static void site_pass(daemon_stats *s, site *e, bool publish)
{
    Berth__V1__ContainerStats m = BERTH__V1__CONTAINER_STATS__INIT;
    daemon_cgroup_figures f;
    double cpu;
    int64_t now;
    int rc;

    if (sample(s, e, &f, &cpu) != 0)
        return;
    if (cpu < 0) {
        now = clock_mono_ns();
        cpu = 0;
        if (e->have_prev && now > e->prev_ns && f.cpu_ns >= e->prev_cpu_ns)
            cpu = (double)(f.cpu_ns - e->prev_cpu_ns) * 100.0 /
                  (double)(now - e->prev_ns);
        e->prev_cpu_ns = f.cpu_ns;
        e->prev_ns = now;
        e->have_prev = true;
    }
    if (!publish || atomic_load(&e->removed))
        return;
    m.site_id = e->name;
    m.node_id = s->node_id;
    m.at_ms = clock_wall_ms();
    m.cpu_percent = cpu;
    m.memory_bytes = f.memory_bytes;
    m.memory_limit_bytes = f.memory_limit != 0   ? f.memory_limit
                           : e->memory_limit != 0 ? e->memory_limit
                                                  : s->mem_total;
    m.net_rx_bytes = f.net_rx_bytes;
    m.net_tx_bytes = f.net_tx_bytes;
    m.block_read_bytes = f.blk_read_bytes;
    m.block_write_bytes = f.blk_write_bytes;
    m.pids = f.pids;
    pthread_mutex_lock(&s->mu);
    m.disk_bytes = e->disk_bytes;
    pthread_mutex_unlock(&s->mu);
    rc = bus_publish(s->bus, e->subject, &m.base);
    if (rc != 0)
        log_debug("container stats not sent", "site=%s error=%s", e->name,
                  berth_strerror(rc));
}

static void node_pass(daemon_stats *s)
{
    Berth__V1__NodeStats m = BERTH__V1__NODE_STATS__INIT;
    daemon_cgroup_host_figures h;
    struct statvfs vfs;
    char why[256] = "";
    int rc;

    m.node_id = s->node_id;
    m.at_ms = clock_wall_ms();
    rc = s->host_ok ? daemon_cgroup_host_read(&s->host, &h, why, sizeof(why))
                    : BERTH_ENOENT;
    if (rc == 0) {
        if (s->have_host_prev && h.cpu_total > s->host_prev.cpu_total &&
            h.cpu_busy >= s->host_prev.cpu_busy)
            m.cpu_percent = (double)(h.cpu_busy - s->host_prev.cpu_busy) *
                            100.0 /
                            (double)(h.cpu_total - s->host_prev.cpu_total);
        s->host_prev = h;
        s->have_host_prev = true;
        s->mem_total = h.mem_total;
        m.memory_total_bytes = h.mem_total;
        m.memory_used_bytes =
            h.mem_total > h.mem_available ? h.mem_total - h.mem_available : 0;
        m.load1 = h.load1;
        m.load5 = h.load5;
        m.load15 = h.load15;
    } else if (s->host_ok && !s->warned_host) {
        s->warned_host = true;
        log_warn("node stats not readable", "error=%s reason=%s",
                 berth_strerror(rc), why);
    }
    if (s->data_dir != NULL && statvfs(s->data_dir, &vfs) == 0) {
        m.disk_total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        m.disk_used_bytes = (uint64_t)(vfs.f_blocks - vfs.f_bfree) *
                            vfs.f_frsize;
    }
    rc = bus_publish(s->bus, s->node_subject, &m.base);
    if (rc != 0)
        log_debug("node stats not sent", "error=%s", berth_strerror(rc));
}

/* Takes a reference on every site (only the fresh ones when fresh_only)
 * into s->snap. Returns how many, or -1 without memory. */
static ssize_t snapshot(daemon_stats *s, bool fresh_only)
{
    size_t i, n = 0;

    pthread_mutex_lock(&s->mu);
    if (s->snap_cap < s->nsites) {
        site **snap = realloc(s->snap, s->cap * sizeof(*snap));

        if (snap == NULL) {
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        s->snap = snap;
        s->snap_cap = s->cap;
    }
    for (i = 0; i < s->nsites; i++) {
        site *e = s->sites[i];

        /* A fresh site has never been read: no baseline yet. */
        if (fresh_only && e->have_prev)
            continue;
        e->refs++;
        s->snap[n++] = e;
    }
    s->fresh = false;
    pthread_mutex_unlock(&s->mu);
    return (ssize_t)n;
}

static void release(daemon_stats *s, size_t n)
{
    size_t i;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < n; i++)
        site_unref(s, s->snap[i]);
    pthread_mutex_unlock(&s->mu);
}

/* One tick: every site, then the node. Sites tracked since the last tick
 * were given a baseline when they arrived (fresh_pass), so their first
 * figure already has a CPU share. */
static void tick(daemon_stats *s)
{
    ssize_t n = snapshot(s, false);
    ssize_t i;

    for (i = 0; i < n; i++)
        site_pass(s, s->snap[i], true);
    if (n > 0)
        release(s, (size_t)n);
    node_pass(s);
}

static void fresh_pass(daemon_stats *s)
{
    ssize_t n = snapshot(s, true);
    ssize_t i;

    for (i = 0; i < n; i++)
        if (!atomic_load(&s->snap[i]->removed))
            site_pass(s, s->snap[i], false);
    if (n > 0)
        release(s, (size_t)n);
}

static struct timespec mono_ts(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    return ts;
}

/* The stats thread. Ticks fall on multiples of interval_ms of the
 * monotonic clock; a tick that is missed (a slow pass, a suspended host)
 * is skipped rather than caught up, so the schedule never drifts and never
 * bursts. */
static void *stats_main(void *arg)
{
    daemon_stats *s = arg;
    int64_t iv = s->interval_ms;
    int64_t next = (clock_mono_ms() / iv + 1) * iv;
    struct timespec ts;

    node_pass(s); /* the node's CPU baseline; its figures go out at once */
    for (;;) {
        bool fresh;
        int64_t now;

        pthread_mutex_lock(&s->mu);
        ts = mono_ts(next);
        while (!s->stopping && !s->fresh && clock_mono_ms() < next)
            pthread_cond_timedwait(&s->tick_cv, &s->mu, &ts);
        fresh = s->fresh;
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        pthread_mutex_unlock(&s->mu);
        if (fresh)
            fresh_pass(s);
        now = clock_mono_ms();
        if (now < next)
            continue;
        tick(s);
        next += iv;
        now = clock_mono_ms();
        if (next <= now)
            next = (now / iv + 1) * iv;
    }
    return NULL;
}

/* ---------------------------------------------------------------- disk */

/* nftw() takes no argument: the walk's state is the thread's. */
static __thread struct disk_walk {
    uint64_t bytes;
    uint64_t entries;
} walk;

static int disk_visit(const char *path, const struct stat *st, int type,
                      struct FTW *ftw)
{
    (void)path, (void)ftw;
    if (type != FTW_NS)
        walk.bytes += (uint64_t)st->st_blocks * 512;
    return ++walk.entries >= STATS_DISK_ENTRIES_MAX ? 1 : 0;
}

/* Lowers the calling thread's CPU and I/O priority: a walk of a big tree
 * must not slow the sites down. Failures are harmless. */
static void lower_priority(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);

    if (setpriority(PRIO_PROCESS, (id_t)tid, 19) != 0)
        log_debug("disk thread priority not lowered", "error=%s",
                  strerror(errno));
#ifdef SYS_ioprio_set
    /* IOPRIO_WHO_PROCESS, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT */
    syscall(SYS_ioprio_set, 1, (int)tid, 3 << 13);
#endif
}

/* The site whose walk is due first: its name in name, the time it is due
 * in *due. Returns false when there is none. Called with mu held. */
static bool disk_next(daemon_stats *s, char *name, size_t size, int64_t *due)
{
    site *best = NULL;
    size_t i;

    for (i = 0; i < s->nsites; i++)
        if (best == NULL || s->sites[i]->disk_due_ms < best->disk_due_ms)
            best = s->sites[i];
    if (best == NULL)
        return false;
    snprintf(name, size, "%s", best->name);
    *due = best->disk_due_ms;
    return true;
}

static void *disk_main(void *arg)
{
    daemon_stats *s = arg;
    char name[STATS_SITE_MAX + 1];
    char path[4096];
    struct timespec ts;
    int64_t due, t0;
    ssize_t at;
    int rc;

    lower_priority();
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (!disk_next(s, name, sizeof(name), &due)) {
            pthread_cond_wait(&s->disk_cv, &s->mu);
            continue;
        }
        if (clock_mono_ms() < due) {
            ts = mono_ts(due);
            pthread_cond_timedwait(&s->disk_cv, &s->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->mu);

        walk.bytes = 0;
        walk.entries = 0;
        t0 = clock_mono_ms();
        snprintf(path, sizeof(path), "%s/%s", s->volumes_dir, name);
        rc = nftw(path, disk_visit, STATS_DISK_OPEN_FDS, FTW_PHYS | FTW_MOUNT);
        if (rc == 1)
            log_warn("site disk walk cut short", "site=%s entries=%d "
                     "bytes=%llu", name, STATS_DISK_ENTRIES_MAX,
                     (unsigned long long)walk.bytes);
        else if (rc != 0 && errno != ENOENT)
            log_debug("site disk walk failed", "site=%s path=%s error=%s",
                      name, path, strerror(errno));
        log_debug("site disk measured", "site=%s bytes=%llu entries=%llu "
                  "ms=%lld", name, (unsigned long long)walk.bytes,
                  (unsigned long long)walk.entries,
                  (long long)(clock_mono_ms() - t0));

        pthread_mutex_lock(&s->mu);
        /* The site may have been untracked, or tracked again, meanwhile. */
        at = site_find(s, name);
        if (at >= 0) {
            site *e = s->sites[at];

            e->disk_bytes = walk.bytes;
            e->disk_known = true;
            e->disk_due_ms = clock_mono_ms() + s->disk_interval_ms;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------------------------------------------------------------- docker */

/* The fallback site whose Docker reading is oldest, with a reference.
 * Returns NULL when there is none; *wait_ms says when the oldest may be
 * asked again (at most once an interval). Called with mu held. */
static site *docker_next(daemon_stats *s, int64_t *wait_ms)
{
    site *best = NULL;
    int64_t now = clock_mono_ms();
    size_t i;

    *wait_ms = -1;
    for (i = 0; i < s->nsites; i++) {
        site *e = s->sites[i];

        if (e->docker_wanted &&
            (best == NULL || e->docker_at_ms < best->docker_at_ms))
            best = e;
    }
    if (best == NULL)
        return NULL;
    if (best->docker_at_ms + s->interval_ms > now) {
        *wait_ms = best->docker_at_ms + s->interval_ms;
        return NULL;
    }
    best->refs++;
    best->docker_at_ms = now;
    return best;
}

/* Asks Docker for e's figures and keeps them, with the CPU share since the
 * previous answer as `docker stats` works it out: the container's CPU time
 * over the host's, times the host's CPUs, which is percent of one core. */
static void docker_read(daemon_stats *s, site *e)
{
    daemon_docker_stats ds;
    daemon_docker_err derr;
    daemon_cgroup_figures f = {0};
    int rc;

    rc = daemon_docker_container_stats(s->docker, e->container, &ds, &derr);
    if (rc != 0 && rc != BERTH_ECONFLICT && rc != BERTH_ENOENT)
        log_debug("docker stats failed", "site=%s error=%s message=%s",
                  e->name, berth_strerror(rc), derr.message);
    f.cpu_ns = ds.cpu_usage_ns;
    f.memory_bytes = ds.memory_usage;
    f.memory_limit = ds.memory_limit;
    f.blk_read_bytes = ds.blk_read_bytes;
    f.blk_write_bytes = ds.blk_write_bytes;
    f.net_rx_bytes = ds.net_rx_bytes;
    f.net_tx_bytes = ds.net_tx_bytes;
    f.pids = ds.pids;
    pthread_mutex_lock(&s->mu);
    e->docker_ok = rc == 0;
    if (rc == 0) {
        e->docker_cpu = 0;
        if (e->docker_have_prev && ds.cpu_usage_ns >= e->docker_prev_cpu_ns &&
            ds.system_usage_ns > e->docker_prev_system_ns)
            e->docker_cpu = (double)(ds.cpu_usage_ns - e->docker_prev_cpu_ns) /
                            (double)(ds.system_usage_ns -
                                     e->docker_prev_system_ns) *
                            (ds.online_cpus > 0 ? ds.online_cpus : 1) * 100.0;
        e->docker_prev_cpu_ns = ds.cpu_usage_ns;
        e->docker_prev_system_ns = ds.system_usage_ns;
        e->docker_have_prev = true;
        e->docker_f = f;
    } else {
        e->docker_have_prev = false;
    }
    pthread_mutex_unlock(&s->mu);
}

/* The Docker thread: one call at a time, the stalest fallback site first,
 * each site at most once an interval. */
static void *docker_main(void *arg)
{
    daemon_stats *s = arg;
    struct timespec ts;
    int64_t wait_ms;
    site *e;

    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        e = docker_next(s, &wait_ms);
        if (e == NULL) {
            if (wait_ms < 0) {
                pthread_cond_wait(&s->docker_cv, &s->mu);
            } else {
                ts = mono_ts(wait_ms);
                pthread_cond_timedwait(&s->docker_cv, &s->mu, &ts);
            }
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        if (!atomic_load(&e->removed))
            docker_read(s, e);
        pthread_mutex_lock(&s->mu);
        site_unref(s, e);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------------------------------------------------------------- life */

static char *dup_or_null(const char *p, bool *failed)
{
    char *d;

    if (p == NULL)
        return NULL;
    d = strdup(p);
    if (d == NULL)
        *failed = true;
    return d;
}

int daemon_stats_new(const daemon_stats_cfg *cfg, daemon_stats **out)
{
    pthread_condattr_t ca;
    daemon_stats *s = NULL;
    struct rlimit rl;
    bool nomem = false;
    int rc;

    *out = NULL;
    if (cfg == NULL || cfg->bus == NULL ||
        !valid_token(cfg->node_id, STATS_NODE_MAX) || cfg->interval_ms < 0 ||
        (cfg->interval_ms > 0 && cfg->interval_ms < STATS_INTERVAL_MIN_MS) ||
        cfg->disk_interval_ms < 0)
        return BERTH_EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BERTH_ENOMEM;
    s->bus = cfg->bus;
    s->docker = cfg->docker;
    snprintf(s->node_id, sizeof(s->node_id), "%s", cfg->node_id);
    snprintf(s->node_subject, sizeof(s->node_subject), "node.stats.%s",
             cfg->node_id);
    s->data_dir = dup_or_null(cfg->data_dir, &nomem);
    s->volumes_dir = dup_or_null(cfg->volumes_dir, &nomem);
    s->proc_root = dup_or_null(cfg->proc_root != NULL
                                   ? cfg->proc_root
                                   : DAEMON_CGROUP_PROC_ROOT,
                               &nomem);
    s->cgroup_root = dup_or_null(
        cfg->cgroup_root != NULL ? cfg->cgroup_root : DAEMON_CGROUP_ROOT,
        &nomem);
    s->interval_ms =
        cfg->interval_ms > 0 ? cfg->interval_ms : STATS_INTERVAL_DEFAULT_MS;
    s->disk_interval_ms = cfg->disk_interval_ms > 0
                              ? cfg->disk_interval_ms
                              : STATS_DISK_INTERVAL_DEFAULT_MS;
    /* Keep cgroup files open while they take at most half of the
     * descriptors the process may have; past that, open them per read. */
    s->fd_budget = 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        s->fd_budget = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 21)
                           ? 1 << 20
                           : (int)(rl.rlim_cur / 2);
    atomic_init(&s->fds_held, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->tick_cv, &ca);
    pthread_cond_init(&s->disk_cv, &ca);
    pthread_cond_init(&s->docker_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (nomem) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    {
        char why[256] = "";

        rc = daemon_cgroup_host_open(&s->host, s->proc_root, why, sizeof(why));
        s->host_ok = rc == 0;
        if (rc != 0)
            log_warn("node stats not readable", "error=%s reason=%s",
                     berth_strerror(rc), why);
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    daemon_stats_free(s);
    return rc;
}

int daemon_stats_start(daemon_stats *s)
{
    if (s->started)
        return 0;
    if (pthread_create(&s->thread, NULL, stats_main, s) != 0)
        return BERTH_ENOMEM;
    s->started = true;
    if (s->volumes_dir != NULL) {
        if (pthread_create(&s->disk_thread, NULL, disk_main, s) != 0)
            return BERTH_ENOMEM; /* daemon_stats_free() stops the other */
        s->disk_started = true;
    }
    if (s->docker != NULL) {
        if (pthread_create(&s->docker_thread, NULL, docker_main, s) != 0)
            return BERTH_ENOMEM;
        s->docker_started = true;
    }
    log_info("stats started", "node=%s interval_ms=%d disk_interval_ms=%d "
             "fd_budget=%d", s->node_id, s->interval_ms, s->disk_interval_ms,
             s->fd_budget);
    return 0;
}

void daemon_stats_free(daemon_stats *s)
{
    size_t i;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->tick_cv);
    pthread_cond_broadcast(&s->disk_cv);
    pthread_cond_broadcast(&s->docker_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->thread, NULL);
    if (s->disk_started)
        pthread_join(s->disk_thread, NULL);
    if (s->docker_started)
        pthread_join(s->docker_thread, NULL);
    for (i = 0; i < s->nsites; i++)
        site_unref(s, s->sites[i]);
    free(s->sites);
    free(s->snap);
    daemon_cgroup_host_close(&s->host);
    pthread_cond_destroy(&s->tick_cv);
    pthread_cond_destroy(&s->disk_cv);
    pthread_cond_destroy(&s->docker_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->data_dir);
    free(s->volumes_dir);
    free(s->proc_root);
    free(s->cgroup_root);
    free(s);
}
