/* cgroup.h - the kernel's resource figures of a container (its cgroup and
 * network namespace) and of the node (/proc), read and parsed without
 * allocating on the hot path.
 *
 *   daemon_cgroup cg;
 *   daemon_cgroup_figures f;
 *   char why[256];
 *
 *   rc = daemon_cgroup_open(&cg, NULL, NULL, pid, true, why, sizeof(why));
 *   rc = daemon_cgroup_read(&cg, &f, why, sizeof(why));   once a second
 *   daemon_cgroup_close(&cg);
 *
 * Locating. A container's cgroup is found from its init pid's
 * <proc_root>/<pid>/cgroup. When a line names the memory controller
 * ("4:memory:/docker/<id>") the host runs cgroup v1 (or the hybrid layout)
 * and each controller's directory is <cgroup_root>/<controllers>/<path>,
 * where <controllers> is the line's list as mounted ("cpu,cpuacct") or a
 * single name of it ("cpuacct"); otherwise the "0::/path" line gives the
 * one v2 directory <cgroup_root>/<path>.
 *
 * Files. v2: cpu.stat (usage_usec), memory.current, memory.stat
 * (inactive_file), memory.max, io.stat (rbytes, wbytes summed over
 * devices), pids.current. v1: cpuacct.usage, memory.usage_in_bytes,
 * memory.stat (total_inactive_file), memory.limit_in_bytes,
 * blkio.throttle.io_service_bytes (else blkio.io_service_bytes_recursive,
 * else blkio.bfq.io_service_bytes_recursive; Read and Write summed over
 * devices), pids.current. Both: <proc_root>/<pid>/net/dev, every
 * interface but lo. The block I/O file is optional (a kernel without
 * block throttling has none; the figures are 0 then); every other file
 * is required.
 *
 * Cost. The paths are built once by daemon_cgroup_open(). With keep_open
 * the files stay open and each read is one pread() per file (7 file
 * descriptors per container); without, each read opens, reads and closes
 * them. Either way a read allocates nothing.
 *
 * Errors are 0 or a negative BERTH_E* code; why (may be NULL) receives a
 * sentence naming the file and what was wrong with it.
 *
 * Threads: a handle is used by one thread at a time; the functions keep no
 * other state.
 */
#ifndef BERTH_DAEMON_CGROUP_H
#define BERTH_DAEMON_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAEMON_CGROUP_PROC_ROOT "/proc"
#define DAEMON_CGROUP_ROOT "/sys/fs/cgroup"

/* One reading of a container. The counters (cpu, block, net) grow over the
 * container's life. */
typedef struct daemon_cgroup_figures {
    uint64_t cpu_ns;       /* CPU time used by every task of the cgroup */
    uint64_t memory_bytes; /* usage minus the inactive file cache, as
                            * `docker stats` shows it */
    uint64_t memory_limit; /* 0: no limit */
    uint64_t blk_read_bytes;
    uint64_t blk_write_bytes;
    uint64_t net_rx_bytes;
    uint64_t net_tx_bytes;
    uint32_t pids;
} daemon_cgroup_figures;

/* The files a reading needs, in the order daemon_cgroup_read() uses them. */
enum daemon_cgroup_file {
    DAEMON_CGROUP_CPU,       /* cpu.stat | cpuacct.usage */
    DAEMON_CGROUP_MEM,       /* memory.current | memory.usage_in_bytes */
    DAEMON_CGROUP_MEM_STAT,  /* memory.stat */
    DAEMON_CGROUP_MEM_LIMIT, /* memory.max | memory.limit_in_bytes */
    DAEMON_CGROUP_IO,        /* io.stat | blkio.*io_service_bytes* */
    DAEMON_CGROUP_PIDS,      /* pids.current */
    DAEMON_CGROUP_NET,       /* <proc>/<pid>/net/dev */
    DAEMON_CGROUP_NFILES
};

/* A located container. The caller owns the struct; open fills it and
 * close releases what it holds. Fields starting with _ are private. */
typedef struct daemon_cgroup {
    int version; /* 1 or 2; 0 when not open */
    int pid;
    bool _init; /* the fds below are ours (-1 or open) */
    struct {
        char *path; /* NULL: the file is absent (optional files only) */
        int fd;     /* -1 unless kept open */
    } _f[DAEMON_CGROUP_NFILES];
} daemon_cgroup;

/* Locates pid's cgroup under cgroup_root (NULL: DAEMON_CGROUP_ROOT) from
 * <proc_root>/<pid>/cgroup (proc_root NULL: DAEMON_CGROUP_PROC_ROOT),
 * checks that every required file is there, and opens them when
 * keep_open. Returns 0, or BERTH_ENOENT when <proc_root>/<pid> does not
 * exist (no such process, or one in another pid namespace), BERTH_EPERM
 * when a file may not be read, BERTH_EIO when a required file is missing,
 * BERTH_EPROTO when the cgroup file is malformed, or BERTH_ENOMEM; cg is
 * left closed on failure (safe for daemon_cgroup_close()). */
int daemon_cgroup_open(daemon_cgroup *cg, const char *proc_root,
                       const char *cgroup_root, int pid, bool keep_open,
                       char *why, size_t why_len);

/* Reads every figure into *f. Returns 0, BERTH_ENOENT when a file has
 * gone (the container stopped and its cgroup was removed), BERTH_EPROTO
 * when a file does not hold what it should, BERTH_ETOOBIG when a file is
 * larger than the read buffer, or another berth code for a failed read. */
int daemon_cgroup_read(daemon_cgroup *cg, daemon_cgroup_figures *f, char *why,
                       size_t why_len);

/* The number of file descriptors cg keeps open. */
int daemon_cgroup_fds(const daemon_cgroup *cg);

/* Closes the files and frees the paths. A closed or zeroed handle is a
 * no-op. */
void daemon_cgroup_close(daemon_cgroup *cg);

/* ---------------------------------------------------------------- node */

/* One reading of the node. The CPU counters are in clock ticks since boot;
 * the busy share of an interval is the delta of busy over the delta of
 * total. */
typedef struct daemon_cgroup_host_figures {
    uint64_t cpu_busy;  /* user nice system irq softirq steal */
    uint64_t cpu_total; /* busy plus idle and iowait */
    uint64_t mem_total; /* MemTotal, bytes */
    uint64_t mem_available; /* MemAvailable, bytes */
    double load1, load5, load15;
} daemon_cgroup_host_figures;

/* The node's /proc files, kept open: <proc_root>/stat, meminfo and
 * loadavg. */
typedef struct daemon_cgroup_host {
    bool _open;
    int _fd[3];
} daemon_cgroup_host;

/* Opens the files (proc_root NULL: DAEMON_CGROUP_PROC_ROOT). Returns 0 or
 * a berth code with the reason in why; h is left closed on failure. */
int daemon_cgroup_host_open(daemon_cgroup_host *h, const char *proc_root,
                            char *why, size_t why_len);

/* Reads the node's figures. Returns 0, BERTH_EPROTO for a file that does
 * not hold what it should, or the code of a failed read. */
int daemon_cgroup_host_read(daemon_cgroup_host *h,
                            daemon_cgroup_host_figures *f, char *why,
                            size_t why_len);

/* Closes the files. A closed handle is a no-op. */
void daemon_cgroup_host_close(daemon_cgroup_host *h);

#endif
