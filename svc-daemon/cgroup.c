/* cgroup.c - locating a container's cgroup (v1 or v2) and parsing the
 * kernel's figures of containers and of the node. See cgroup.h.
 *
 * The parsers below are plain loops over a NUL-terminated buffer: the
 * 1 Hz pass reads seven small files per container, and a scanf per line
 * would cost more than the reads themselves.
 */
#include "svc-daemon/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"

#define CG_READ_MAX   (16u * 1024) /* the largest file we parse, + 1 */
#define CG_CGROUP_MAX (8u * 1024)  /* <proc>/<pid>/cgroup */
/* A v1 memory limit at or above this is the kernel's "no limit" (its page
 * counter maximum, 9223372036854771712 with 4 KiB pages). */
#define CG_V1_NO_LIMIT (1ull << 62)

/* The file names of each version, indexed by enum daemon_cgroup_file;
 * NULL where the name depends on more than the version. */
static const char *const v2_files[DAEMON_CGROUP_NFILES] = {
    "cpu.stat", "memory.current", "memory.stat", "memory.max",
    "io.stat",  "pids.current",   NULL,
};
static const char *const v1_files[DAEMON_CGROUP_NFILES] = {
    "cpuacct.usage", "memory.usage_in_bytes", "memory.stat",
    "memory.limit_in_bytes", NULL, "pids.current", NULL,
};
/* v1 block I/O files, best first. */
static const char *const v1_blkio_files[] = {
    "blkio.throttle.io_service_bytes",
    "blkio.io_service_bytes_recursive",
    "blkio.bfq.io_service_bytes_recursive",
};

static void why_set(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* Maps the errno of an open or read of a kernel file onto a berth code. A
 * removed cgroup answers ENODEV, an exited process ESRCH: both are gone. */
static int errno_rc(int e)
{
    return e == ENODEV || e == ESRCH ? BERTH_ENOENT : berth_err_from_errno(e);
}

/* ---------------------------------------------------------------- parsing */

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parses a decimal number at *pp after blanks and moves *pp past it.
 * Returns 0, or -1 when there is no digit or the value overflows. */
static int parse_u64(const char **pp, uint64_t *v)
{
    const char *p = skip_blanks(*pp);
    uint64_t x = 0;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');

        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *pp = p;
    *v = x;
    return 0;
}

/* Parses a file that holds one number and nothing else but white space. */
static int parse_single(const char *text, uint64_t *v)
{
    const char *p = text;

    if (parse_u64(&p, v) != 0)
        return -1;
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    return *p == '\0' ? 0 : -1;
}

/* Parses "12.34" (as /proc/loadavg writes it) without the locale. */
static int parse_decimal(const char **pp, double *v)
{
    const char *p;
    uint64_t whole;
    double frac = 0, scale = 0.1;

    if (parse_u64(pp, &whole) != 0)
        return -1;
    p = *pp;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    *pp = p;
    *v = (double)whole + frac;
    return 0;
}

/* Returns the text after "key" at the start of a line of text, where key
 * includes its separator ("usage_usec ", "MemTotal:"), or NULL. */
static const char *find_key(const char *text, const char *key)
{
    size_t klen = strlen(key);
    const char *line = text;

    while (*line != '\0') {
        if (strncmp(line, key, klen) == 0)
            return line + klen;
        line = strchr(line, '\n');
        if (line == NULL)
            break;
        line++;
    }
    return NULL;
}

/* Parses the number after key in a "key value" file. */
static int keyed_u64(const char *text, const char *key, uint64_t *v)
{
    const char *p = find_key(text, key);

    return p != NULL ? parse_u64(&p, v) : -1;
}

/* The length of the field at p, up to a blank, newline or NUL. */
static size_t field_len(const char *p)
{
    size_t n = 0;

    while (p[n] != '\0' && p[n] != ' ' && p[n] != '\t' && p[n] != '\n')
        n++;
    return n;
}

/* Sums rbytes= and wbytes= over the lines of a v2 io.stat:
 * "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0". */
static int parse_io_stat(const char *text, uint64_t *rd, uint64_t *wr)
{
    const char *p = text;
    uint64_t v;

    *rd = *wr = 0;
    while (*p != '\0') {
        p = skip_blanks(p);
        if (*p == '\n') {
            p++;
            continue;
        }
        if (strncmp(p, "rbytes=", 7) == 0 || strncmp(p, "wbytes=", 7) == 0) {
            uint64_t *sum = p[0] == 'r' ? rd : wr;

            p += 7;
            if (parse_u64(&p, &v) != 0)
                return -1;
            *sum += v;
        }
        p += field_len(p);
    }
    return 0;
}

/* Sums the Read and Write lines of a v1 blkio file over devices:
 * "8:0 Read 4096" ... "Total 8192". */
static int parse_blkio(const char *text, uint64_t *rd, uint64_t *wr)
{
    const char *p = text;
    uint64_t v;

    *rd = *wr = 0;
    while (*p != '\0') {
        const char *op = skip_blanks(p);
        size_t n = field_len(op);
        const char *eol = strchr(p, '\n');

        /* Skip the device field; the "Total" line has none. */
        if (n > 0 && !(n == 5 && strncmp(op, "Total", 5) == 0)) {
            op = skip_blanks(op + n);
            n = field_len(op);
            if ((n == 4 && strncmp(op, "Read", 4) == 0) ||
                (n == 5 && strncmp(op, "Write", 5) == 0)) {
                const char *q = op + n;

                if (parse_u64(&q, &v) != 0)
                    return -1;
                *(op[0] == 'R' ? rd : wr) += v;
            }
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return 0;
}

/* Sums receive and transmit bytes over the interfaces of a /proc net/dev,
 * loopback excluded. Two header lines, then
 * "  eth0: rxbytes rxpackets errs drop fifo frame compressed multicast
 * txbytes ...". */
static int parse_net_dev(const char *text, uint64_t *rx, uint64_t *tx)
{
    const char *p = text;
    int line;

    *rx = *tx = 0;
    for (line = 0; *p != '\0'; line++) {
        const char *eol = strchr(p, '\n');
        const char *name = skip_blanks(p);
        const char *colon = strchr(name, ':');

        if (line >= 2 && *name != '\n' && *name != '\0') {
            uint64_t v[9];
            const char *q;
            int i;

            if (colon == NULL || (eol != NULL && colon > eol))
                return -1;
            q = colon + 1;
            for (i = 0; i < 9; i++)
                if (parse_u64(&q, &v[i]) != 0)
                    return -1;
            if (!(colon - name == 2 && strncmp(name, "lo", 2) == 0)) {
                *rx += v[0];
                *tx += v[8];
            }
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return line >= 2 ? 0 : -1;
}

/* ---------------------------------------------------------------- files */

/* Reads the file at fd (kept open) or path into b, NUL-terminated, from
 * its start. A file that fills b is BERTH_ETOOBIG unless partial_ok, for
 * files of which only the beginning is parsed. */
static int read_text(int fd, const char *path, char *b, size_t cap,
                     bool partial_ok, char *why, size_t why_len)
{
    ssize_t n;
    int own = -1;
    int rc = 0;

    if (fd < 0) {
        own = open(path, O_RDONLY | O_CLOEXEC);
        if (own < 0) {
            rc = errno_rc(errno);
            why_set(why, why_len, "%s: %s", path, strerror(errno));
            goto out;
        }
        fd = own;
    }
    /* Kernel files (seq_file, kernfs) fill the whole buffer in one read
     * unless they end first, so a short read is the end of the file. */
    n = pread(fd, b, cap - 1, 0);
    if (n < 0) {
        rc = errno_rc(errno);
        why_set(why, why_len, "%s: %s", path, strerror(errno));
        goto out;
    }
    if ((size_t)n == cap - 1 && !partial_ok) {
        rc = BERTH_ETOOBIG;
        why_set(why, why_len, "%s: larger than %zu bytes", path, cap - 1);
        goto out;
    }
    b[n] = '\0';
out:
    if (own >= 0)
        close(own);
    return rc;
}

static int slot_read(daemon_cgroup *cg, int i, char *b, size_t cap, char *why,
                     size_t why_len)
{
    return read_text(cg->_f[i].fd, cg->_f[i].path, b, cap, false, why,
                     why_len);
}

/* ---------------------------------------------------------------- locating */

/* Is name one of the comma-separated controllers of list (len bytes)? */
static bool has_controller(const char *list, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    size_t i = 0;

    while (i < len) {
        size_t j = i;

        while (j < len && list[j] != ',')
            j++;
        if (j - i == nlen && strncmp(list + i, name, nlen) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

/* One line of <proc>/<pid>/cgroup: "hierarchy-id:controllers:path". */
typedef struct cg_line {
    const char *ctl;
    size_t ctl_len;
    const char *path;
    size_t path_len;
} cg_line;

/* What the cgroup file says about the controllers we read. */
typedef struct cg_where {
    cg_line v2, cpuacct, memory, blkio, pids;
    bool has_v2;
    bool has_cpuacct, has_memory, has_blkio, has_pids;
} cg_where;

/* Accepts "/..." without "." or ".." components, which the kernel never
 * writes, so a strange file cannot lead a path outside cgroup_root. */
static bool path_ok(const char *p, size_t len)
{
    size_t i = 0;

    if (len == 0 || p[0] != '/' || len >= PATH_MAX / 2)
        return false;
    while (i < len) {
        size_t j;

        i++; /* past '/' */
        j = i;
        while (j < len && p[j] != '/')
            j++;
        if ((j - i == 1 && p[i] == '.') ||
            (j - i == 2 && p[i] == '.' && p[i + 1] == '.'))
            return false;
        i = j;
    }
    return true;
}

static int parse_cgroup_file(const char *text, cg_where *w)
{
    const char *p = text;

    memset(w, 0, sizeof(*w));
    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        const char *c1 = strchr(p, ':');
        const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        cg_line l;

        if (len == 0) {
            p++;
            continue;
        }
        if (c1 == NULL || c2 == NULL || c1 == p || c1 - p > (ptrdiff_t)len ||
            c2 - p > (ptrdiff_t)len)
            return -1;
        l.ctl = c1 + 1;
        l.ctl_len = (size_t)(c2 - c1 - 1);
        l.path = c2 + 1;
        l.path_len = len - (size_t)(c2 + 1 - p);
        if (!path_ok(l.path, l.path_len))
            return -1;
        if (l.ctl_len == 0 && c1 - p == 1 && p[0] == '0') {
            w->v2 = l;
            w->has_v2 = true;
        }
        if (has_controller(l.ctl, l.ctl_len, "cpuacct")) {
            w->cpuacct = l;
            w->has_cpuacct = true;
        }
        if (has_controller(l.ctl, l.ctl_len, "memory")) {
            w->memory = l;
            w->has_memory = true;
        }
        if (has_controller(l.ctl, l.ctl_len, "blkio")) {
            w->blkio = l;
            w->has_blkio = true;
        }
        if (has_controller(l.ctl, l.ctl_len, "pids")) {
            w->pids = l;
            w->has_pids = true;
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return 0;
}

/* Writes into dir the v1 directory of l's cgroup for controller name: the
 * hierarchy as mounted under its full list ("cpu,cpuacct") when that
 * exists, else under the single name. Returns 0 or BERTH_EIO. */
static int v1_dir(const char *root, const cg_line *l, const char *name,
                  char *dir, size_t size, char *why, size_t why_len)
{
    int n;

    n = snprintf(dir, size, "%s/%.*s%.*s", root, (int)l->ctl_len, l->ctl,
                 (int)l->path_len, l->path);
    if (n > 0 && (size_t)n < size && access(dir, F_OK) == 0)
        return 0;
    n = snprintf(dir, size, "%s/%s%.*s", root, name, (int)l->path_len, l->path);
    if (n > 0 && (size_t)n < size && access(dir, F_OK) == 0)
        return 0;
    why_set(why, why_len, "no %s cgroup directory %s", name, dir);
    return BERTH_EIO;
}

/* Sets slot i to dir/name (name alone when dir is NULL), checking that it
 * can be opened; keeps it open when keep_open. A missing file is
 * BERTH_EIO, one that may not be read BERTH_EPERM. */
static int slot_set(daemon_cgroup *cg, int i, const char *dir,
                    const char *name, bool keep_open, char *why,
                    size_t why_len)
{
    char path[PATH_MAX];
    int fd;

    if (snprintf(path, sizeof(path), "%s%s%s", dir != NULL ? dir : "",
                 dir != NULL ? "/" : "", name) >= (int)sizeof(path)) {
        why_set(why, why_len, "cgroup path too long: %s", dir);
        return BERTH_EINVAL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        why_set(why, why_len, "%s: %s", path, strerror(e));
        return e == EACCES || e == EPERM ? BERTH_EPERM : BERTH_EIO;
    }
    if (keep_open) {
        cg->_f[i].fd = fd;
    } else {
        close(fd);
    }
    cg->_f[i].path = strdup(path);
    return cg->_f[i].path != NULL ? 0 : BERTH_ENOMEM;
}

static int open_v2(daemon_cgroup *cg, const char *root, const cg_where *w,
                   bool keep_open, char *why, size_t why_len)
{
    char dir[PATH_MAX];
    int i, rc;

    if (snprintf(dir, sizeof(dir), "%s%.*s", root, (int)w->v2.path_len,
                 w->v2.path) >= (int)sizeof(dir))
        return BERTH_EINVAL;
    for (i = 0; i < DAEMON_CGROUP_NFILES; i++) {
        if (v2_files[i] == NULL)
            continue;
        rc = slot_set(cg, i, dir, v2_files[i], keep_open, why, why_len);
        /* io.stat exists only where the io controller is enabled. */
        if (rc == BERTH_EIO && i == DAEMON_CGROUP_IO)
            rc = 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int open_v1(daemon_cgroup *cg, const char *root, const cg_where *w,
                   bool keep_open, char *why, size_t why_len)
{
    char dir[PATH_MAX];
    size_t i;
    int rc;

    if (!w->has_cpuacct || !w->has_pids) {
        why_set(why, why_len, "cgroup v1 without the %s controller",
                !w->has_cpuacct ? "cpuacct" : "pids");
        return BERTH_EIO;
    }
    rc = v1_dir(root, &w->cpuacct, "cpuacct", dir, sizeof(dir), why, why_len);
    if (rc == 0)
        rc = slot_set(cg, DAEMON_CGROUP_CPU, dir, v1_files[DAEMON_CGROUP_CPU],
                      keep_open, why, why_len);
    if (rc != 0)
        return rc;
    rc = v1_dir(root, &w->memory, "memory", dir, sizeof(dir), why, why_len);
    for (i = DAEMON_CGROUP_MEM; rc == 0 && i <= DAEMON_CGROUP_MEM_LIMIT; i++)
        rc = slot_set(cg, (int)i, dir, v1_files[i], keep_open, why, why_len);
    if (rc != 0)
        return rc;
    rc = v1_dir(root, &w->pids, "pids", dir, sizeof(dir), why, why_len);
    if (rc == 0)
        rc = slot_set(cg, DAEMON_CGROUP_PIDS, dir,
                      v1_files[DAEMON_CGROUP_PIDS], keep_open, why, why_len);
    if (rc != 0)
        return rc;
    /* Block I/O is optional: the first file that exists. */
    if (w->has_blkio &&
        v1_dir(root, &w->blkio, "blkio", dir, sizeof(dir), NULL, 0) == 0) {
        for (i = 0; i < sizeof(v1_blkio_files) / sizeof(v1_blkio_files[0]);
             i++) {
            rc = slot_set(cg, DAEMON_CGROUP_IO, dir, v1_blkio_files[i],
                          keep_open, NULL, 0);
            if (rc != BERTH_EIO)
                break;
        }
        if (rc == BERTH_EIO)
            rc = 0;
    }
    return rc;
}

int daemon_cgroup_open(daemon_cgroup *cg, const char *proc_root,
                       const char *cgroup_root, int pid, bool keep_open,
                       char *why, size_t why_len)
{
    char path[PATH_MAX];
    char *text = NULL;
    cg_where w;
    int i, rc;

    memset(cg, 0, sizeof(*cg));
    cg->_init = true;
    for (i = 0; i < DAEMON_CGROUP_NFILES; i++)
        cg->_f[i].fd = -1;
    if (proc_root == NULL)
        proc_root = DAEMON_CGROUP_PROC_ROOT;
    if (cgroup_root == NULL)
        cgroup_root = DAEMON_CGROUP_ROOT;
    if (pid <= 0) {
        why_set(why, why_len, "invalid pid %d", pid);
        return BERTH_EINVAL;
    }
    text = malloc(CG_CGROUP_MAX);
    if (text == NULL)
        return BERTH_ENOMEM;
    snprintf(path, sizeof(path), "%s/%d/cgroup", proc_root, pid);
    rc = read_text(-1, path, text, CG_CGROUP_MAX, false, why, why_len);
    if (rc != 0)
        goto out;
    if (parse_cgroup_file(text, &w) != 0) {
        why_set(why, why_len, "%s: malformed", path);
        rc = BERTH_EPROTO;
        goto out;
    }
    if (w.has_memory) {
        cg->version = 1;
        rc = open_v1(cg, cgroup_root, &w, keep_open, why, why_len);
    } else if (w.has_v2) {
        cg->version = 2;
        rc = open_v2(cg, cgroup_root, &w, keep_open, why, why_len);
    } else {
        why_set(why, why_len, "%s: neither a memory controller nor a v2 line",
                path);
        rc = BERTH_EPROTO;
    }
    if (rc != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/%d/net/dev", proc_root, pid);
    rc = slot_set(cg, DAEMON_CGROUP_NET, NULL, path, keep_open, why, why_len);
    if (rc != 0)
        goto out;
    cg->pid = pid;
out:
    if (rc != 0)
        daemon_cgroup_close(cg);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- reading */

int daemon_cgroup_read(daemon_cgroup *cg, daemon_cgroup_figures *f, char *why,
                       size_t why_len)
{
    char b[CG_READ_MAX];
    uint64_t usage, inactive = 0, limit = 0;
    int i, rc;

    memset(f, 0, sizeof(*f));
    if (cg->version == 0)
        return BERTH_EINVAL;
    for (i = 0; i < DAEMON_CGROUP_NFILES; i++) {
        const char *bad = NULL;

        if (cg->_f[i].path == NULL)
            continue; /* an optional file that is absent */
        rc = slot_read(cg, i, b, sizeof(b), why, why_len);
        if (rc != 0)
            return rc;
        switch (i) {
        case DAEMON_CGROUP_CPU:
            if (cg->version == 2) {
                if (keyed_u64(b, "usage_usec ", &usage) != 0 ||
                    usage > UINT64_MAX / 1000)
                    bad = "no usage_usec";
                else
                    f->cpu_ns = usage * 1000;
            } else if (parse_single(b, &f->cpu_ns) != 0) {
                bad = "not a number";
            }
            break;
        case DAEMON_CGROUP_MEM:
            if (parse_single(b, &f->memory_bytes) != 0)
                bad = "not a number";
            break;
        case DAEMON_CGROUP_MEM_STAT:
            if (keyed_u64(b, cg->version == 2 ? "inactive_file "
                                              : "total_inactive_file ",
                          &inactive) != 0)
                bad = "no inactive_file";
            break;
        case DAEMON_CGROUP_MEM_LIMIT:
            if (cg->version == 2 && strncmp(b, "max", 3) == 0 &&
                (b[3] == '\n' || b[3] == '\0'))
                limit = 0;
            else if (parse_single(b, &limit) != 0)
                bad = "not a limit";
            else if (cg->version == 1 && limit >= CG_V1_NO_LIMIT)
                limit = 0;
            f->memory_limit = limit;
            break;
        case DAEMON_CGROUP_IO:
            if ((cg->version == 2 ? parse_io_stat(b, &f->blk_read_bytes,
                                                  &f->blk_write_bytes)
                                  : parse_blkio(b, &f->blk_read_bytes,
                                                &f->blk_write_bytes)) != 0)
                bad = "malformed";
            break;
        case DAEMON_CGROUP_PIDS:
            if (parse_single(b, &usage) != 0 || usage > UINT32_MAX)
                bad = "not a number";
            else
                f->pids = (uint32_t)usage;
            break;
        case DAEMON_CGROUP_NET:
            if (parse_net_dev(b, &f->net_rx_bytes, &f->net_tx_bytes) != 0)
                bad = "malformed";
            break;
        }
        if (bad != NULL) {
            why_set(why, why_len, "%s: %s", cg->_f[i].path, bad);
            return BERTH_EPROTO;
        }
    }
    /* Like `docker stats`: the cache the kernel may drop is not use. */
    f->memory_bytes = f->memory_bytes > inactive ? f->memory_bytes - inactive
                                                 : 0;
    return 0;
}

int daemon_cgroup_fds(const daemon_cgroup *cg)
{
    int i, n = 0;

    if (cg->version == 0)
        return 0;
    for (i = 0; i < DAEMON_CGROUP_NFILES; i++)
        n += cg->_f[i].fd >= 0;
    return n;
}

void daemon_cgroup_close(daemon_cgroup *cg)
{
    int i;

    /* A zeroed handle has fd 0 everywhere: none of them is ours. */
    if (!cg->_init)
        return;
    for (i = 0; i < DAEMON_CGROUP_NFILES; i++) {
        if (cg->_f[i].fd >= 0)
            close(cg->_f[i].fd);
        free(cg->_f[i].path);
        cg->_f[i].path = NULL;
        cg->_f[i].fd = -1;
    }
    cg->version = 0;
    cg->_init = false;
}

/* ---------------------------------------------------------------- node */

static const char *const host_files[3] = {"stat", "meminfo", "loadavg"};

int daemon_cgroup_host_open(daemon_cgroup_host *h, const char *proc_root,
                            char *why, size_t why_len)
{
    char path[PATH_MAX];
    int i, rc = 0;

    h->_open = true;
    for (i = 0; i < 3; i++)
        h->_fd[i] = -1;
    if (proc_root == NULL)
        proc_root = DAEMON_CGROUP_PROC_ROOT;
    for (i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", proc_root, host_files[i]);
        h->_fd[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (h->_fd[i] < 0) {
            rc = errno_rc(errno);
            why_set(why, why_len, "%s: %s", path, strerror(errno));
            break;
        }
    }
    if (rc != 0)
        daemon_cgroup_host_close(h);
    return rc;
}

int daemon_cgroup_host_read(daemon_cgroup_host *h,
                            daemon_cgroup_host_figures *f, char *why,
                            size_t why_len)
{
    char b[CG_READ_MAX];
    const char *p;
    uint64_t v[8] = {0};
    int i, rc;

    memset(f, 0, sizeof(*f));
    if (!h->_open)
        return BERTH_EINVAL;
    /* stat: only the first line is parsed; the rest may be long. */
    rc = read_text(h->_fd[0], "stat", b, sizeof(b), true, why, why_len);
    if (rc != 0)
        return rc;
    p = find_key(b, "cpu ");
    /* user nice system idle iowait irq softirq steal; older kernels stop
     * after idle. Guest time is already counted in user. */
    for (i = 0; p != NULL && i < 8; i++) {
        if (parse_u64(&p, &v[i]) != 0) {
            if (i < 4)
                p = NULL;
            break;
        }
    }
    if (p == NULL) {
        why_set(why, why_len, "stat: no cpu line");
        return BERTH_EPROTO;
    }
    f->cpu_busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    f->cpu_total = f->cpu_busy + v[3] + v[4];

    rc = read_text(h->_fd[1], "meminfo", b, sizeof(b), true, why, why_len);
    if (rc != 0)
        return rc;
    if (keyed_u64(b, "MemTotal:", &f->mem_total) != 0 ||
        keyed_u64(b, "MemAvailable:", &f->mem_available) != 0) {
        why_set(why, why_len, "meminfo: no MemTotal or MemAvailable");
        return BERTH_EPROTO;
    }
    f->mem_total *= 1024; /* kB */
    f->mem_available *= 1024;

    rc = read_text(h->_fd[2], "loadavg", b, sizeof(b), false, why, why_len);
    if (rc != 0)
        return rc;
    p = b;
    if (parse_decimal(&p, &f->load1) != 0 ||
        parse_decimal(&p, &f->load5) != 0 ||
        parse_decimal(&p, &f->load15) != 0) {
        why_set(why, why_len, "loadavg: malformed");
        return BERTH_EPROTO;
    }
    return 0;
}

void daemon_cgroup_host_close(daemon_cgroup_host *h)
{
    int i;

    if (!h->_open)
        return;
    for (i = 0; i < 3; i++) {
        if (h->_fd[i] >= 0)
            close(h->_fd[i]);
        h->_fd[i] = -1;
    }
    h->_open = false;
}
