/* cgroup.c - tests of svc-daemon/cgroup.c on fake /proc and /sys/fs/cgroup
 * trees built in a temp dir: locating a container's cgroup on v2, v1 with
 * separate and with combined cpu,cpuacct hierarchies and the hybrid
 * layout, the figures parsed from each, the node's /proc files, and
 * malformed or missing files, which must give a clear error and never a
 * crash.
 */
#include "svc-daemon/cgroup.c"

#include <sys/stat.h>

#include "common/fs.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define PID 4242

static char *root;           /* the temp dir */
static char proc_root[512];  /* <root>/proc */
static char cg_root[512];    /* <root>/cgroup */

static void setup(void)
{
    root = h_tempdir("cgroup");
    ck_assert_ptr_nonnull(root);
    snprintf(proc_root, sizeof(proc_root), "%s/proc", root);
    snprintf(cg_root, sizeof(cg_root), "%s/cgroup", root);
}

static void teardown(void)
{
    h_tempdir_drop(root, "cgroup");
    root = NULL;
}

/* Writes text to <root>/<rel>, creating the parents. */
static void put(const char *rel, const char *text)
{
    char path[1024], dir[1024];
    char *slash;

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    *slash = '\0';
    ck_assert_int_eq(fs_mkdirs(dir, 0755), 0);
    ck_assert_int_eq(fs_write_atomic(path, text, strlen(text), 0644), 0);
}

/* Rewrites <root>/<rel> in place, as the kernel's figures change under a
 * descriptor kept open. */
static void put_inplace(const char *rel, const char *text)
{
    char path[1024];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void rm(const char *rel)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    ck_assert_int_eq(unlink(path), 0);
}

/* Asserts that slot i of cg is <root>/<rel>. */
static void assert_path(const daemon_cgroup *cg, int i, const char *rel)
{
    char want[1024];

    snprintf(want, sizeof(want), "%s/%s", root, rel);
    ck_assert_ptr_nonnull(cg->_f[i].path);
    ck_assert_str_eq(cg->_f[i].path, want);
}

/* As the kernel writes it (long lines split here, not in the file). */
static const char net_dev[] =
    "Inter-|   Receive                                                |"
    "  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|"
    "bytes    packets errs drop fifo colls carrier compressed\n"
    "    lo:  999999     100    0    0    0     0          0         0"
    "   999999     100    0    0    0     0       0          0\n"
    "  eth0:    1182      13    0    0    0     0          0         0"
    "      500       5    0    0    0     0       0          0\n"
    "eth1:100 1 0 0 0 0 0 0 20 1 0 0 0 0 0 0\n";

/* The proc side of a container: its net/dev. */
static void put_net(void)
{
    put("proc/4242/net/dev", net_dev);
}

/* ---------------------------------------------------------------- v2 */

#define V2_DIR "cgroup/system.slice/docker-abc.scope"

static void put_v2(void)
{
    put("proc/4242/cgroup", "0::/system.slice/docker-abc.scope\n");
    put(V2_DIR "/cpu.stat", "usage_usec 1500000\nuser_usec 1000000\n"
                            "system_usec 500000\nnr_periods 0\n");
    put(V2_DIR "/memory.current", "104857600\n");
    put(V2_DIR "/memory.stat",
        "anon 50000000\nfile 50000000\nkernel_stack 16384\n"
        "active_anon 0\ninactive_anon 0\nactive_file 10\n"
        "inactive_file 4857600\nworkingset_refault_file 0\n");
    put(V2_DIR "/memory.max", "67108864\n");
    put(V2_DIR "/io.stat",
        "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
        "259:0 rbytes=1000 wbytes=2000 rios=1 wios=1 dbytes=0 dios=0\n");
    put(V2_DIR "/pids.current", "7\n");
    put_net();
}

START_TEST(v2_locate_and_read)
{
    daemon_cgroup cg;
    daemon_cgroup_figures f;
    char why[256] = "";
    int keep;

    put_v2();
    for (keep = 0; keep <= 1; keep++) {
        ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID,
                                            keep, why, sizeof(why)),
                         0);
        ck_assert_int_eq(cg.version, 2);
        ck_assert_int_eq(cg.pid, PID);
        ck_assert_int_eq(daemon_cgroup_fds(&cg), keep ? 7 : 0);
        assert_path(&cg, DAEMON_CGROUP_CPU, V2_DIR "/cpu.stat");
        assert_path(&cg, DAEMON_CGROUP_MEM, V2_DIR "/memory.current");
        assert_path(&cg, DAEMON_CGROUP_MEM_STAT, V2_DIR "/memory.stat");
        assert_path(&cg, DAEMON_CGROUP_MEM_LIMIT, V2_DIR "/memory.max");
        assert_path(&cg, DAEMON_CGROUP_IO, V2_DIR "/io.stat");
        assert_path(&cg, DAEMON_CGROUP_PIDS, V2_DIR "/pids.current");
        assert_path(&cg, DAEMON_CGROUP_NET, "proc/4242/net/dev");

        ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), 0);
        ck_assert_uint_eq(f.cpu_ns, 1500000000ull);
        ck_assert_uint_eq(f.memory_bytes, 104857600ull - 4857600);
        ck_assert_uint_eq(f.memory_limit, 64ull << 20);
        ck_assert_uint_eq(f.blk_read_bytes, 1100);
        ck_assert_uint_eq(f.blk_write_bytes, 2200);
        ck_assert_uint_eq(f.pids, 7);
        ck_assert_uint_eq(f.net_rx_bytes, 1282); /* lo excluded */
        ck_assert_uint_eq(f.net_tx_bytes, 520);

        /* The figures change: a kept-open file is read again from 0. */
        put_inplace(V2_DIR "/pids.current", "12\n");
        put_inplace(V2_DIR "/memory.max", "max\n");
        ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), 0);
        ck_assert_uint_eq(f.pids, 12);
        ck_assert_uint_eq(f.memory_limit, 0);
        daemon_cgroup_close(&cg);
        ck_assert_int_eq(cg.version, 0);
        daemon_cgroup_close(&cg); /* twice is fine */
        put(V2_DIR "/pids.current", "7\n");
        put(V2_DIR "/memory.max", "67108864\n");
    }
}
END_TEST

/* io.stat exists only where the io controller is enabled: figures of 0. */
START_TEST(v2_without_io)
{
    daemon_cgroup cg;
    daemon_cgroup_figures f;
    char why[256] = "";

    put_v2();
    rm(V2_DIR "/io.stat");
    put(V2_DIR "/memory.max", "max\n");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, true,
                                        why, sizeof(why)),
                     0);
    ck_assert_ptr_null(cg._f[DAEMON_CGROUP_IO].path);
    ck_assert_int_eq(daemon_cgroup_fds(&cg), 6);
    ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), 0);
    ck_assert_uint_eq(f.blk_read_bytes, 0);
    ck_assert_uint_eq(f.memory_limit, 0);
    ck_assert_uint_eq(f.pids, 7);
    daemon_cgroup_close(&cg);
}
END_TEST

/* ---------------------------------------------------------------- v1 */

#define ID "0123456789abcdef"

static const char v1_memory_stat[] =
    "cache 1507328\nrss 49152\ninactive_file 1000\nactive_file 0\n"
    "hierarchical_memory_limit 67108864\ntotal_cache 1507328\n"
    "total_rss 49152\ntotal_inactive_file 1507328\ntotal_active_file 0\n";

static const char v1_blkio[] = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n"
                               "8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\n"
                               "8:16 Read 1\n8:16 Write 2\n8:16 Total 3\n"
                               "Total 12291\n";

/* A v1 container whose cpu and cpuacct controllers are in cpu_dir and
 * cpuacct_dir (the same for a combined mount). */
static void put_v1(const char *cgroup_file, const char *cpuacct_dir)
{
    char rel[512];

    put("proc/4242/cgroup", cgroup_file);
    snprintf(rel, sizeof(rel), "cgroup/%s/docker/" ID "/cpuacct.usage",
             cpuacct_dir);
    put(rel, "59327099\n");
    put("cgroup/memory/docker/" ID "/memory.usage_in_bytes", "3379200\n");
    put("cgroup/memory/docker/" ID "/memory.stat", v1_memory_stat);
    put("cgroup/memory/docker/" ID "/memory.limit_in_bytes", "67108864\n");
    put("cgroup/blkio/docker/" ID "/blkio.throttle.io_service_bytes", v1_blkio);
    put("cgroup/blkio/docker/" ID "/blkio.io_service_bytes_recursive",
        "Total 0\n");
    put("cgroup/pids/docker/" ID "/pids.current", "3\n");
    put_net();
}

/* This machine's layout: separate cpu and cpuacct, a name=systemd line and
 * the hybrid "0::" line, which v1 ignores. */
static const char v1_separate[] = "9:name=systemd:/docker/" ID "\n"
                                  "8:pids:/docker/" ID "\n"
                                  "7:blkio:/docker/" ID "\n"
                                  "4:memory:/docker/" ID "\n"
                                  "3:cpuset:/docker/" ID "\n"
                                  "2:cpuacct:/docker/" ID "\n"
                                  "1:cpu:/docker/" ID "\n"
                                  "0::/docker/" ID "\n";

static void check_v1_figures(const daemon_cgroup_figures *f)
{
    ck_assert_uint_eq(f->cpu_ns, 59327099);
    ck_assert_uint_eq(f->memory_bytes, 3379200 - 1507328); /* total_ */
    ck_assert_uint_eq(f->memory_limit, 64ull << 20);
    ck_assert_uint_eq(f->blk_read_bytes, 4097);
    ck_assert_uint_eq(f->blk_write_bytes, 8194);
    ck_assert_uint_eq(f->pids, 3);
    ck_assert_uint_eq(f->net_rx_bytes, 1282);
    ck_assert_uint_eq(f->net_tx_bytes, 520);
}

START_TEST(v1_separate_controllers)
{
    daemon_cgroup cg;
    daemon_cgroup_figures f;
    char why[256] = "";

    put_v1(v1_separate, "cpuacct");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, true,
                                        why, sizeof(why)),
                     0);
    ck_assert_int_eq(cg.version, 1);
    assert_path(&cg, DAEMON_CGROUP_CPU,
                "cgroup/cpuacct/docker/" ID "/cpuacct.usage");
    assert_path(&cg, DAEMON_CGROUP_MEM,
                "cgroup/memory/docker/" ID "/memory.usage_in_bytes");
    assert_path(&cg, DAEMON_CGROUP_MEM_STAT,
                "cgroup/memory/docker/" ID "/memory.stat");
    assert_path(&cg, DAEMON_CGROUP_MEM_LIMIT,
                "cgroup/memory/docker/" ID "/memory.limit_in_bytes");
    assert_path(&cg, DAEMON_CGROUP_IO,
                "cgroup/blkio/docker/" ID "/blkio.throttle.io_service_bytes");
    assert_path(&cg, DAEMON_CGROUP_PIDS,
                "cgroup/pids/docker/" ID "/pids.current");
    assert_path(&cg, DAEMON_CGROUP_NET, "proc/4242/net/dev");
    ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), 0);
    check_v1_figures(&f);
    daemon_cgroup_close(&cg);
}
END_TEST

/* "cpu,cpuacct" mounted under that name (with or without the single-name
 * links systemd adds). */
START_TEST(v1_combined_cpu_cpuacct)
{
    static const char file[] = "11:pids:/docker/" ID "\n"
                               "6:memory:/docker/" ID "\n"
                               "4:blkio:/docker/" ID "\n"
                               "3:cpu,cpuacct:/docker/" ID "\n"
                               "1:name=systemd:/docker/" ID "\n";
    daemon_cgroup cg;
    daemon_cgroup_figures f;
    char why[256] = "";

    put_v1(file, "cpu,cpuacct");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, false,
                                        why, sizeof(why)),
                     0);
    ck_assert_int_eq(cg.version, 1);
    assert_path(&cg, DAEMON_CGROUP_CPU,
                "cgroup/cpu,cpuacct/docker/" ID "/cpuacct.usage");
    ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), 0);
    check_v1_figures(&f);
    daemon_cgroup_close(&cg);
}
END_TEST

/* A combined hierarchy mounted only under a single name. */
START_TEST(v1_combined_single_name)
{
    static const char file[] = "11:pids:/docker/" ID "\n"
                               "6:memory:/docker/" ID "\n"
                               "3:cpuacct,cpu:/docker/" ID "\n";
    daemon_cgroup cg;
    char why[256] = "";

    put_v1(file, "cpuacct");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, false,
                                        why, sizeof(why)),
                     0);
    assert_path(&cg, DAEMON_CGROUP_CPU,
                "cgroup/cpuacct/docker/" ID "/cpuacct.usage");
    /* No blkio line: no block figures, no error. */
    ck_assert_ptr_null(cg._f[DAEMON_CGROUP_IO].path);
    daemon_cgroup_close(&cg);
}
END_TEST

/* Without blkio throttling: the recursive CFQ file, then BFQ's. A huge
 * limit is no limit. */
START_TEST(v1_blkio_fallback_and_no_limit)
{
    daemon_cgroup cg;
    daemon_cgroup_figures f;
    char why[256] = "";

    put_v1(v1_separate, "cpuacct");
    rm("cgroup/blkio/docker/" ID "/blkio.throttle.io_service_bytes");
    put("cgroup/blkio/docker/" ID "/blkio.io_service_bytes_recursive",
        "8:0 Read 10\n8:0 Write 20\nTotal 30\n");
    put("cgroup/memory/docker/" ID "/memory.limit_in_bytes",
        "9223372036854771712\n");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, true,
                                        why, sizeof(why)),
                     0);
    assert_path(&cg, DAEMON_CGROUP_IO,
                "cgroup/blkio/docker/" ID "/blkio.io_service_bytes_recursive");
    ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), 0);
    ck_assert_uint_eq(f.blk_read_bytes, 10);
    ck_assert_uint_eq(f.blk_write_bytes, 20);
    ck_assert_uint_eq(f.memory_limit, 0);
    daemon_cgroup_close(&cg);

    rm("cgroup/blkio/docker/" ID "/blkio.io_service_bytes_recursive");
    put("cgroup/blkio/docker/" ID "/blkio.bfq.io_service_bytes_recursive",
        "8:0 Read 1\n8:0 Write 2\nTotal 3\n");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, true,
                                        why, sizeof(why)),
                     0);
    ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), 0);
    ck_assert_uint_eq(f.blk_read_bytes, 1);
    daemon_cgroup_close(&cg);
}
END_TEST

/* ---------------------------------------------------------------- errors */

/* Opens with the given /proc/<pid>/cgroup content; returns the code. */
static int open_with(const char *cgroup_file, char *why, size_t why_len)
{
    daemon_cgroup cg;
    int rc;

    put("proc/4242/cgroup", cgroup_file);
    rc = daemon_cgroup_open(&cg, proc_root, cg_root, PID, true, why, why_len);
    if (rc == 0)
        daemon_cgroup_close(&cg);
    else
        ck_assert_int_eq(cg.version, 0);
    return rc;
}

START_TEST(malformed_cgroup_file)
{
    char why[256];

    put_v2();
    ck_assert_int_eq(open_with("garbage\n", why, sizeof(why)), BERTH_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "malformed"));
    ck_assert_int_eq(open_with("", why, sizeof(why)), BERTH_EPROTO);
    ck_assert_int_eq(open_with("0::relative/path\n", why, sizeof(why)),
                     BERTH_EPROTO);
    ck_assert_int_eq(open_with("0::/a/../../../etc\n", why, sizeof(why)),
                     BERTH_EPROTO);
    ck_assert_int_eq(open_with("0::/a/./b\n", why, sizeof(why)), BERTH_EPROTO);
    ck_assert_int_eq(open_with("0:/x\n", why, sizeof(why)), BERTH_EPROTO);
    ck_assert_int_eq(open_with("1:name=systemd:/x\n", why, sizeof(why)),
                     BERTH_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "neither"));
    /* A v2 path with no such directory. */
    ck_assert_int_eq(open_with("0::/nowhere\n", why, sizeof(why)), BERTH_EIO);
    ck_assert_ptr_nonnull(strstr(why, "nowhere/cpu.stat"));
    /* v1 without a cpuacct line. */
    ck_assert_int_eq(open_with("4:memory:/docker/x\n8:pids:/docker/x\n", why,
                               sizeof(why)),
                     BERTH_EIO);
    ck_assert_ptr_nonnull(strstr(why, "cpuacct"));
    /* Blank lines and a missing final newline are fine. */
    ck_assert_int_eq(open_with("\n0::/system.slice/docker-abc.scope", why,
                               sizeof(why)),
                     0);
}
END_TEST

START_TEST(missing_process_and_files)
{
    daemon_cgroup cg;
    char why[256] = "";

    put_v2();
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, 4243, true,
                                        why, sizeof(why)),
                     BERTH_ENOENT);
    ck_assert_ptr_nonnull(strstr(why, "4243/cgroup"));
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, 0, true, why,
                                        sizeof(why)),
                     BERTH_EINVAL);
    {
        daemon_cgroup_figures f;

        ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)),
                         BERTH_EINVAL);
    }

    rm(V2_DIR "/memory.stat");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, true,
                                        why, sizeof(why)),
                     BERTH_EIO);
    ck_assert_ptr_nonnull(strstr(why, "memory.stat"));
    ck_assert_int_eq(cg.version, 0);
    daemon_cgroup_close(&cg);

    put(V2_DIR "/memory.stat", "inactive_file 0\n");
    rm("proc/4242/net/dev");
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, true,
                                        why, sizeof(why)),
                     BERTH_EIO);
    ck_assert_ptr_nonnull(strstr(why, "net/dev"));

    /* Files that go away after open: the cgroup was removed. */
    put_net();
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, false,
                                        why, sizeof(why)),
                     0);
    rm(V2_DIR "/pids.current");
    {
        daemon_cgroup_figures f;

        ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)),
                         BERTH_ENOENT);
        ck_assert_ptr_nonnull(strstr(why, "pids.current"));
    }
    daemon_cgroup_close(&cg);

    /* A zeroed handle closes as a no-op (and keeps fd 0 open). */
    memset(&cg, 0, sizeof(cg));
    daemon_cgroup_close(&cg);
    ck_assert_int_ne(fcntl(0, F_GETFD), -1);
}
END_TEST

/* Opens the v2 fake, writes text into rel and expects read to fail with
 * rc and a reason naming the file. */
static void expect_bad(const char *rel, const char *text, int rc)
{
    daemon_cgroup cg;
    daemon_cgroup_figures f;
    char why[256] = "";

    put_v2();
    put(rel, text);
    ck_assert_int_eq(daemon_cgroup_open(&cg, proc_root, cg_root, PID, false,
                                        why, sizeof(why)),
                     0);
    ck_assert_int_eq(daemon_cgroup_read(&cg, &f, why, sizeof(why)), rc);
    ck_assert_ptr_nonnull(strstr(why, strrchr(rel, '/') + 1));
    daemon_cgroup_close(&cg);
}

START_TEST(malformed_figures)
{
    char big[CG_READ_MAX + 100];

    expect_bad(V2_DIR "/cpu.stat", "user_usec 5\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/cpu.stat", "usage_usec x\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/cpu.stat", "usage_usec 99999999999999999999\n",
               BERTH_EPROTO);
    expect_bad(V2_DIR "/cpu.stat", "usage_usec 18446744073709552\n",
               BERTH_EPROTO); /* * 1000 overflows */
    expect_bad(V2_DIR "/memory.current", "12abc\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/memory.current", "", BERTH_EPROTO);
    expect_bad(V2_DIR "/memory.current", "-5\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/memory.stat", "file 5\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/memory.max", "maximum\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/io.stat", "8:0 rbytes=x wbytes=1\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/pids.current", "\n", BERTH_EPROTO);
    expect_bad(V2_DIR "/pids.current", "99999999999\n", BERTH_EPROTO);
    expect_bad("proc/4242/net/dev", "one line only", BERTH_EPROTO);
    expect_bad("proc/4242/net/dev",
               "h1\nh2\n  eth0 1 2 3 4 5 6 7 8 9 10\n", BERTH_EPROTO);
    expect_bad("proc/4242/net/dev", "h1\nh2\n  eth0: 1 2 3\n", BERTH_EPROTO);
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_bad(V2_DIR "/memory.current", big, BERTH_ETOOBIG);
}
END_TEST

/* ---------------------------------------------------------------- parsers */

START_TEST(parsers)
{
    const char *p;
    uint64_t a, b;
    double d;

    p = " 0.20 x";
    ck_assert_int_eq(parse_decimal(&p, &d), 0);
    ck_assert(d > 0.199 && d < 0.201);
    p = "12";
    ck_assert_int_eq(parse_decimal(&p, &d), 0);
    ck_assert(d == 12.0);
    p = ".5";
    ck_assert_int_eq(parse_decimal(&p, &d), -1);
    p = "18446744073709551615";
    ck_assert_int_eq(parse_u64(&p, &a), 0);
    ck_assert_uint_eq(a, UINT64_MAX);
    p = "18446744073709551616";
    ck_assert_int_eq(parse_u64(&p, &a), -1);
    ck_assert_int_eq(parse_blkio("", &a, &b), 0);
    ck_assert_uint_eq(a + b, 0);
    ck_assert_int_eq(parse_blkio("8:0 Read\n", &a, &b), -1);
    ck_assert_int_eq(parse_io_stat("", &a, &b), 0);
    ck_assert_int_eq(parse_net_dev("h1\nh2\n", &a, &b), 0);
    ck_assert_ptr_null(find_key("xinactive_file 5\n", "inactive_file "));
    ck_assert(has_controller("cpu,cpuacct", 11, "cpu"));
    ck_assert(has_controller("cpu,cpuacct", 11, "cpuacct"));
    ck_assert(!has_controller("cpu,cpuacct", 11, "cpuac"));
    ck_assert(!has_controller("", 0, "cpu"));
}
END_TEST

/* ---------------------------------------------------------------- node */

START_TEST(host_figures)
{
    daemon_cgroup_host h;
    daemon_cgroup_host_figures f;
    char why[256] = "";

    put("proc/stat", "cpu  100 20 30 1000 50 5 6 7 8 9\n"
                     "cpu0 50 10 15 500 25 2 3 3 4 4\nintr 1 2 3\n");
    put("proc/meminfo", "MemTotal:       16316412 kB\n"
                        "MemFree:         1000000 kB\n"
                        "MemAvailable:    8000000 kB\n");
    put("proc/loadavg", "0.20 1.58 12.30 1/101 7659\n");
    ck_assert_int_eq(daemon_cgroup_host_open(&h, proc_root, why, sizeof(why)),
                     0);
    ck_assert_int_eq(daemon_cgroup_host_read(&h, &f, why, sizeof(why)), 0);
    ck_assert_uint_eq(f.cpu_busy, 100 + 20 + 30 + 5 + 6 + 7);
    ck_assert_uint_eq(f.cpu_total, f.cpu_busy + 1000 + 50);
    ck_assert_uint_eq(f.mem_total, 16316412ull * 1024);
    ck_assert_uint_eq(f.mem_available, 8000000ull * 1024);
    ck_assert(f.load1 > 0.199 && f.load1 < 0.201);
    ck_assert(f.load5 > 1.579 && f.load5 < 1.581);
    ck_assert(f.load15 > 12.29 && f.load15 < 12.31);
    daemon_cgroup_host_close(&h);
    daemon_cgroup_host_close(&h);

    /* An old kernel's four fields. */
    put("proc/stat", "cpu 1 2 3 4\n");
    ck_assert_int_eq(daemon_cgroup_host_open(&h, proc_root, why, sizeof(why)),
                     0);
    ck_assert_int_eq(daemon_cgroup_host_read(&h, &f, why, sizeof(why)), 0);
    ck_assert_uint_eq(f.cpu_total, 10);

    /* Malformed files (an fd kept open sees the old file: reopen). */
    daemon_cgroup_host_close(&h);
    put("proc/stat", "cpu 1 2\n");
    ck_assert_int_eq(daemon_cgroup_host_open(&h, proc_root, why, sizeof(why)),
                     0);
    ck_assert_int_eq(daemon_cgroup_host_read(&h, &f, why, sizeof(why)),
                     BERTH_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "stat"));
    daemon_cgroup_host_close(&h);
    put("proc/stat", "cpu 1 2 3 4\n");
    put("proc/meminfo", "MemTotal: 5 kB\n");
    ck_assert_int_eq(daemon_cgroup_host_open(&h, proc_root, why, sizeof(why)),
                     0);
    ck_assert_int_eq(daemon_cgroup_host_read(&h, &f, why, sizeof(why)),
                     BERTH_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "MemAvailable"));
    daemon_cgroup_host_close(&h);
    put("proc/meminfo", "MemTotal: 5 kB\nMemAvailable: 4 kB\n");
    put("proc/loadavg", "high\n");
    ck_assert_int_eq(daemon_cgroup_host_open(&h, proc_root, why, sizeof(why)),
                     0);
    ck_assert_int_eq(daemon_cgroup_host_read(&h, &f, why, sizeof(why)),
                     BERTH_EPROTO);
    daemon_cgroup_host_close(&h);

    rm("proc/loadavg");
    ck_assert_int_eq(daemon_cgroup_host_open(&h, proc_root, why, sizeof(why)),
                     BERTH_ENOENT);
    ck_assert_ptr_nonnull(strstr(why, "loadavg"));
    daemon_cgroup_host_close(&h);
}
END_TEST

/* The real /proc of this machine parses. */
START_TEST(host_real)
{
    daemon_cgroup_host h;
    daemon_cgroup_host_figures f;
    char why[256] = "";

    ck_assert_int_eq(daemon_cgroup_host_open(&h, NULL, why, sizeof(why)), 0);
    ck_assert_int_eq(daemon_cgroup_host_read(&h, &f, why, sizeof(why)), 0);
    ck_assert_uint_gt(f.cpu_total, 0);
    ck_assert_uint_gt(f.mem_total, 0);
    ck_assert_uint_le(f.mem_available, f.mem_total);
    ck_assert(f.load1 >= 0);
    daemon_cgroup_host_close(&h);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_cgroup");
    TCase *tc = tcase_create("cgroup");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, v2_locate_and_read);
    tcase_add_test(tc, v2_without_io);
    tcase_add_test(tc, v1_separate_controllers);
    tcase_add_test(tc, v1_combined_cpu_cpuacct);
    tcase_add_test(tc, v1_combined_single_name);
    tcase_add_test(tc, v1_blkio_fallback_and_no_limit);
    tcase_add_test(tc, malformed_cgroup_file);
    tcase_add_test(tc, missing_process_and_files);
    tcase_add_test(tc, malformed_figures);
    tcase_add_test(tc, parsers);
    tcase_add_test(tc, host_figures);
    tcase_add_test(tc, host_real);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
