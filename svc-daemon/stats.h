/* stats.h - resource figures of the node and of every running site,
 * published once a second.
 *
 *   daemon_stats *s;
 *
 *   rc = daemon_stats_new(&(daemon_stats_cfg){.bus = b, .docker = d,
 *                                             .node_id = id, ...}, &s);
 *   rc = daemon_stats_start(s);
 *   daemon_stats_track(s, site, container_id, pid, memory_limit);
 *   daemon_stats_untrack(s, site);
 *   daemon_stats_free(s);
 *
 * Per container (container.stats.<node>.<site>, ContainerStats) the stats
 * thread reads the kernel's figures directly (cgroup.h): the cgroup is
 * located from the container's init pid (/proc/<pid>/cgroup), cgroup v2
 * (cpu.stat, memory.current, memory.stat, io.stat, pids.current) or, on a
 * v1 host, the cpuacct / memory / blkio / pids controllers; network bytes
 * come from /proc/<pid>/net/dev (the container's network namespace,
 * loopback excluded). cpu_percent is the CPU time used over the interval
 * in percent of one core (200 = two cores busy). When the cgroup files
 * cannot be read the figures come from Docker's stats endpoint instead,
 * and the log says so once (at warn; later cases at debug). memory_bytes
 * is the usage minus the inactive file cache, as `docker stats` shows it;
 * memory_limit_bytes is the cgroup's limit, else the tracked one, else the
 * node's memory. A container whose cgroup goes away (it stopped) gets no
 * more messages until its site is tracked again.
 *
 * Timing. Ticks fall on multiples of interval_ms of the monotonic clock;
 * a missed tick is skipped, never caught up. A newly tracked site is read
 * at once for a CPU baseline, so its first message already carries a CPU
 * share. The cgroup files of a site are located once and kept open (a
 * pread per file per tick) while they take at most half of the process's
 * RLIMIT_NOFILE; past that they are opened per read.
 *
 * Disk usage of a site's data directory (<volumes_dir>/<site>) is
 * measured by a walk of its own (nftw, not following links or crossing
 * mounts, allocated blocks counted, at most 1,000,000 entries), soon after
 * a site is first tracked and then at most once every disk_interval_ms, on
 * a separate thread of the lowest CPU and I/O priority, so a huge tree
 * never delays the 1 Hz figures; disk_bytes carries the last measurement
 * (0 until the first). Tracking a site again keeps its measurement.
 *
 * Per node (node.stats.<node>, NodeStats): CPU from /proc/stat (percent of
 * the whole node, 0-100), memory from /proc/meminfo (MemTotal minus
 * MemAvailable), disk of the data directory (statvfs), load averages.
 *
 * Threads: the stats thread reads and publishes, the disk thread walks,
 * a Docker thread asks Docker for the fallback (whose answer comes only at
 * Docker's next collection, up to a second later); track/untrack/count
 * may be called from any thread.
 */
#ifndef BERTH_DAEMON_STATS_H
#define BERTH_DAEMON_STATS_H

#include <stdint.h>

#include "bus/bus.h"
#include "svc-daemon/docker.h"

typedef struct daemon_stats daemon_stats;

typedef struct daemon_stats_cfg {
    bus *bus;
    daemon_docker *docker;    /* for the fallback */
    const char *node_id;
    const char *data_dir;     /* node disk figures */
    const char *volumes_dir;  /* <volumes_dir>/<site>: a site's data */
    int interval_ms;          /* 0: 1000 */
    int disk_interval_ms;     /* 0: 60000 */
    const char *proc_root;    /* tests: NULL means "/proc" */
    const char *cgroup_root;  /* tests: NULL means "/sys/fs/cgroup" */
} daemon_stats_cfg;

/* Prepares the module; nothing is read or sent yet. bus and node_id are
 * required; docker may be NULL (no fallback then), data_dir NULL (no node
 * disk figures), volumes_dir NULL (no site disk figures). The strings are
 * copied; bus and docker must outlive s. Returns 0 and *out (free with
 * daemon_stats_free()), BERTH_EINVAL (a node id that is not a subject
 * token of [A-Za-z0-9_-], an interval below 10 ms) or BERTH_ENOMEM. */
int daemon_stats_new(const daemon_stats_cfg *cfg, daemon_stats **out);

/* Starts the stats thread (and the disk thread when volumes_dir is set).
 * Returns 0 or BERTH_ENOMEM. */
int daemon_stats_start(daemon_stats *s);

/* Stops the threads and frees s; waits for a Docker call in progress
 * (about a second). NULL is a no-op. */
void daemon_stats_free(daemon_stats *s);

/* Starts publishing figures for site, whose container runs with init pid
 * pid and memory limit memory_limit (0: none; the node's memory is
 * reported then). Tracking a site again replaces what was known (but its
 * disk measurement). container (id or name) is what the Docker fallback
 * asks for; pid 0 means the pid is unknown and the figures come from
 * Docker. Returns 0, BERTH_EINVAL (site not a subject token of
 * [A-Za-z0-9_-] of at most 127 bytes, a negative pid) or BERTH_ENOMEM. */
int daemon_stats_track(daemon_stats *s, const char *site,
                       const char *container, int pid, uint64_t memory_limit);

/* Stops publishing for site (its container stopped or was deleted). A
 * message the stats thread is sending at that moment may still go out; no
 * later one does. An unknown site is a no-op. */
void daemon_stats_untrack(daemon_stats *s, const char *site);

/* The number of sites tracked, i.e. running. */
int daemon_stats_count(daemon_stats *s);

#endif
