/* harness.c - real processes for integration tests: ports, temp dirs,
 * child processes, nats-server, one-shot commands.
 *
 * Layout: messages and small helpers, files and logs, the child-process
 * core shared by h_proc_start() and h_run2() (path lookup, environment,
 * fork + exec with an exec-error pipe, reaping), then h_proc, ports,
 * nats-server, h_run and the path lookups.
 *
 * The code between fork() and execve() only calls async-signal-safe
 * functions: everything it needs (the resolved path, the environment, the
 * descriptors) is prepared by the parent, so starting processes is safe
 * from a test that has other threads running (libnats does).
 */
#include "tests/harness/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"

extern char **environ;

#define H_POLL_MS 20           /* period of the file and port polls */
#define H_IO_CHUNK 65536       /* bytes moved per read()/write() */
#define H_KILL_WAIT_MS 10000   /* how long a SIGKILLed child may take */
#define H_NATS_READY_MS 15000  /* how long nats-server may take to start */
#define H_NATS_STOP_MS 5000    /* SIGINT grace before SIGKILL */
/* nats-server shuts down cleanly (JetStream flushed) on SIGINT and SIGTERM
 * alike, but exits 0 only on SIGINT; 1 on SIGTERM would look like trouble. */
#define H_NATS_STOP_SIG SIGINT
#define H_NATS_ATTEMPTS 3      /* port races retried by h_nats_start() */
#define H_TAIL_BYTES 4096      /* log tail printed when a start fails */

/* ---------------------------------------------------------------- helpers */

void h_say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    n = snprintf(line, sizeof(line), "harness: ");
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nothing sensible to do when stderr is gone. */
    }
}

/* Moves fd to a number >= 3 (keeping O_CLOEXEC), so that the dup2() calls
 * onto 0, 1 and 2 in a child never clobber it. Returns the new fd, or -1
 * after closing fd. */
static int fd_high(int fd)
{
    int nfd;

    if (fd < 0 || fd > 2)
        return fd;
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}

static void fd_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Milliseconds left until deadline (monotonic), never negative. */
static int ms_left(int64_t deadline)
{
    int64_t left = deadline - clock_mono_ms();

    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static int64_t deadline_in(int timeout_ms)
{
    return clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

/* Converts a waitpid() status to the form the API returns. */
static int wait_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return BERTH_EINTERNAL;
}

/* ---------------------------------------------------------------- files */

int h_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = -1;
    int rc;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = berth_err_from_errno(errno);
        h_say("free port: socket: %s", strerror(errno));
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        rc = berth_err_from_errno(errno);
        h_say("free port: bind 127.0.0.1:0: %s", strerror(errno));
        goto out;
    }
    rc = ntohs(sa.sin_port);
out:
    fd_close(&fd);
    return rc;
}

char *h_tempdir(const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    char path[PATH_MAX];
    char *dup;

    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if (tag == NULL || tag[0] == '\0')
        tag = "test";
    if (snprintf(path, sizeof(path), "%s/berth-%s-XXXXXX", tmp, tag) >=
        (int)sizeof(path)) {
        h_say("tempdir: path too long under %s", tmp);
        return NULL;
    }
    if (mkdtemp(path) == NULL) {
        h_say("tempdir: mkdtemp %s: %s", path, strerror(errno));
        return NULL;
    }
    dup = strdup(path);
    if (dup == NULL) {
        h_say("tempdir: out of memory");
        rmdir(path);
    }
    return dup;
}

static int rmtree_one(const char *fpath, const struct stat *sb, int flag,
                      struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(fpath) != 0 && errno != ENOENT)
        h_say("rmtree: remove %s: %s", fpath, strerror(errno));
    return 0;
}

void h_rmtree(const char *path)
{
    if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0) {
        h_say("rmtree: refusing to remove \"%s\"", path ? path : "(null)");
        return;
    }
    if (nftw(path, rmtree_one, 16, FTW_DEPTH | FTW_PHYS) != 0 &&
        errno != ENOENT)
        h_say("rmtree: %s: %s", path, strerror(errno));
}

void h_tempdir_drop(char *dir, const char *what)
{
    const char *keep = getenv("BERTH_KEEP_TEST_DIRS");

    if (dir == NULL)
        return;
    if (keep != NULL && keep[0] != '\0')
        h_say("kept %s dir %s", what, dir);
    else
        h_rmtree(dir);
    free(dir);
}

off_t h_file_size(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return 0;
    return st.st_size;
}

/* Log scanning. A scan remembers how far it read and keeps the last
 * needle_len - 1 bytes, so a needle split across two polls is still seen,
 * and each poll reads only what was appended. */
typedef struct log_scan {
    const char *path;
    const char *needle;
    size_t nlen;
    off_t pos;
    char *win;      /* carry + one chunk */
    size_t carry;   /* bytes of the previous read kept at win[0..] */
} log_scan;

static int log_scan_init(log_scan *s, const char *path, off_t from,
                         const char *needle)
{
    memset(s, 0, sizeof(*s));
    if (path == NULL || needle == NULL || needle[0] == '\0')
        return BERTH_EINVAL;
    s->path = path;
    s->needle = needle;
    s->nlen = strlen(needle);
    s->pos = from;
    s->win = malloc(s->nlen + H_IO_CHUNK);
    return s->win == NULL ? BERTH_ENOMEM : 0;
}

static void log_scan_free(log_scan *s)
{
    free(s->win);
    s->win = NULL;
}

/* Reads what was appended since the last call. Returns 1 when the needle
 * was seen, 0 when not yet (including a missing file). */
static int log_scan_step(log_scan *s)
{
    struct stat st;
    int found = 0;
    int fd;

    fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) == 0 && st.st_size < s->pos) {
        /* Truncated or replaced: start over. */
        s->pos = 0;
        s->carry = 0;
    }
    for (;;) {
        ssize_t n = pread(fd, s->win + s->carry, H_IO_CHUNK, s->pos);
        size_t have;
        size_t keep;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        s->pos += n;
        have = s->carry + (size_t)n;
        if (memmem(s->win, have, s->needle, s->nlen) != NULL) {
            found = 1;
            break;
        }
        keep = s->nlen - 1 < have ? s->nlen - 1 : have;
        memmove(s->win, s->win + have - keep, keep);
        s->carry = keep;
    }
    close(fd);
    return found;
}

int h_wait_log_from(const char *log_path, off_t offset, const char *needle,
                    int timeout_ms)
{
    int64_t deadline = deadline_in(timeout_ms);
    log_scan s;
    int rc;

    rc = log_scan_init(&s, log_path, offset, needle);
    if (rc != 0) {
        h_say("wait log: bad arguments or out of memory");
        goto out;
    }
    for (;;) {
        if (log_scan_step(&s)) {
            rc = 0;
            goto out;
        }
        if (ms_left(deadline) == 0)
            break;
        clock_sleep_ms(ms_left(deadline) < H_POLL_MS ? ms_left(deadline)
                                                     : H_POLL_MS);
    }
    rc = BERTH_ETIMEDOUT;
    h_say("wait log: \"%s\" not in %s after %d ms", needle, log_path,
          timeout_ms);
out:
    log_scan_free(&s);
    return rc;
}

int h_wait_log(const char *log_path, const char *needle, int timeout_ms)
{
    return h_wait_log_from(log_path, 0, needle, timeout_ms);
}

void h_log_tail(const char *path, size_t max_bytes)
{
    char chunk[4096];
    struct stat st;
    off_t from = 0;
    int fd = -1;

    if (path == NULL)
        return;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        h_say("no log at %s: %s", path, strerror(errno));
        return;
    }
    if (fstat(fd, &st) == 0 && (size_t)st.st_size > max_bytes)
        from = st.st_size - (off_t)max_bytes;
    h_say("---- tail of %s ----", path);
    for (;;) {
        ssize_t n = pread(fd, chunk, sizeof(chunk), from);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        from += n;
        if (write(STDERR_FILENO, chunk, (size_t)n) < 0)
            break;
    }
    h_say("---- end of %s ----", path);
    close(fd);
}

/* ---------------------------------------------------------------- children */

/* Finds an executable: file itself when it holds a '/', else the first
 * match in PATH (a default when unset). Writes the path into dst. */
static int find_exec(const char *file, char *dst, size_t size)
{
    const char *path;
    const char *p;

    if (file == NULL || file[0] == '\0')
        return BERTH_EINVAL;
    if (strchr(file, '/') != NULL) {
        if (access(file, X_OK) != 0)
            return BERTH_ENOENT;
        if (snprintf(dst, size, "%s", file) >= (int)size)
            return BERTH_EINVAL;
        return 0;
    }
    path = getenv("PATH");
    if (path == NULL || path[0] == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    for (p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        struct stat st;

        if (dlen == 0) {
            if (snprintf(dst, size, "./%s", file) >= (int)size)
                dst[0] = '\0';
        } else if (snprintf(dst, size, "%.*s/%s", (int)dlen, p, file) >=
                   (int)size) {
            dst[0] = '\0';
        }
        if (dst[0] != '\0' && stat(dst, &st) == 0 && S_ISREG(st.st_mode) &&
            access(dst, X_OK) == 0)
            return 0;
        p += dlen;
        if (*p == ':')
            p++;
    }
    dst[0] = '\0';
    return BERTH_ENOENT;
}

/* Builds the child's environment: ours, minus the keys extra overrides,
 * plus extra. The array is the caller's (free()); the strings are borrowed
 * from environ and extra. */
static int build_env(char *const extra[], char ***out)
{
    size_t nenv = 0;
    size_t nextra = 0;
    size_t i;
    size_t j;
    size_t k = 0;
    char **envp;

    *out = NULL;
    while (environ != NULL && environ[nenv] != NULL)
        nenv++;
    while (extra != NULL && extra[nextra] != NULL) {
        if (strchr(extra[nextra], '=') == NULL) {
            h_say("env entry \"%s\" has no '='", extra[nextra]);
            return BERTH_EINVAL;
        }
        nextra++;
    }
    envp = calloc(nenv + nextra + 1, sizeof(*envp));
    if (envp == NULL)
        return BERTH_ENOMEM;
    for (i = 0; i < nenv; i++) {
        int replaced = 0;

        for (j = 0; j < nextra && !replaced; j++) {
            size_t klen = (size_t)(strchr(extra[j], '=') - extra[j]) + 1;

            replaced = strncmp(environ[i], extra[j], klen) == 0;
        }
        if (!replaced)
            envp[k++] = environ[i];
    }
    for (j = 0; j < nextra; j++)
        envp[k++] = extra[j];
    envp[k] = NULL;
    *out = envp;
    return 0;
}

/* dup2() that also works when from == to (then it only clears CLOEXEC). */
static int child_dup(int from, int to)
{
    if (from == to)
        return fcntl(to, F_SETFD, 0);
    return dup2(from, to) < 0 ? -1 : 0;
}

/* Runs in the child between fork() and execve(); async-signal-safe only.
 * in/out/err of -1 leave that descriptor as inherited. On failure errno is
 * written to report_fd and the child exits 127. */
__attribute__((noreturn)) static void child_exec(const char *path,
                                                 char *const argv[],
                                                 char *const envp[], int in,
                                                 int out, int err,
                                                 int report_fd, pid_t parent)
{
    struct sigaction sa;
    sigset_t none;
    int e;
    int s;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL);
    }
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        goto fail;
    if (setpgid(0, 0) != 0)
        goto fail;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        goto fail;
    if (getppid() != parent)
        _exit(127); /* the parent died before prctl() took effect */
    if (in >= 0 && child_dup(in, STDIN_FILENO) != 0)
        goto fail;
    if (out >= 0 && child_dup(out, STDOUT_FILENO) != 0)
        goto fail;
    if (err >= 0 && child_dup(err, STDERR_FILENO) != 0)
        goto fail;
    execve(path, argv, envp);
fail:
    e = errno;
    if (write(report_fd, &e, sizeof(e)) < 0) {
        /* The parent then sees exit status 127 without a reason. */
    }
    _exit(127);
}

/* Forks and execs path. The exec-error pipe tells the parent whether
 * execve() worked before this returns, so a missing program is an error
 * here and not a mysterious exit 127 later. *pid is set on success only. */
static int spawn(const char *path, char *const argv[], char *const envp[],
                 int in, int out, int err, pid_t *pid)
{
    int ep[2] = {-1, -1};
    pid_t parent = getpid();
    pid_t child;
    int child_errno = 0;
    size_t got = 0;
    int rc = 0;

    if (pipe2(ep, O_CLOEXEC) != 0) {
        rc = berth_err_from_errno(errno);
        h_say("pipe2: %s", strerror(errno));
        goto out;
    }
    ep[0] = fd_high(ep[0]);
    ep[1] = fd_high(ep[1]);
    if (ep[0] < 0 || ep[1] < 0) {
        rc = BERTH_EIO;
        goto out;
    }
    child = fork();
    if (child < 0) {
        rc = berth_err_from_errno(errno);
        h_say("fork: %s", strerror(errno));
        goto out;
    }
    if (child == 0)
        child_exec(path, argv, envp, in, out, err, ep[1], parent);
    fd_close(&ep[1]);
    while (got < sizeof(child_errno)) {
        ssize_t n = read(ep[0], (char *)&child_errno + got,
                         sizeof(child_errno) - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got > 0) {
        int st;

        while (waitpid(child, &st, 0) < 0 && errno == EINTR)
            ;
        rc = berth_err_from_errno(child_errno);
        if (rc == 0)
            rc = BERTH_EINTERNAL;
        h_say("exec %s: %s", path, strerror(child_errno));
        goto out;
    }
    *pid = child;
out:
    fd_close(&ep[0]);
    fd_close(&ep[1]);
    return rc;
}

/* Waits up to timeout_ms for pid to exit. Once it has, anything still in
 * its process group is SIGKILLed (the zombie keeps the group id reserved
 * until then, so the signal cannot hit a stranger) and the child is reaped.
 * Returns 1 with *status set, 0 when it is still running, or a negative
 * code when it cannot be waited for. */
static int wait_child(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = deadline_in(timeout_ms);
    int step = 1;

    for (;;) {
        siginfo_t si;
        int st;

        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR)
                continue;
            h_say("waitid %ld: %s", (long)pid, strerror(errno));
            return BERTH_EINTERNAL;
        }
        if (si.si_pid == pid) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0) {
                if (errno != EINTR) {
                    h_say("waitpid %ld: %s", (long)pid, strerror(errno));
                    return BERTH_EINTERNAL;
                }
            }
            *status = wait_status(st);
            return 1;
        }
        if (ms_left(deadline) == 0)
            return 0;
        clock_sleep_ms(step < ms_left(deadline) ? step : ms_left(deadline));
        if (step < H_POLL_MS)
            step *= 2;
    }
}

/* SIGKILLs pid's group and reaps it. Returns 0, or a negative code when it
 * would not die (a process stuck in the kernel). */
static int kill_and_reap(pid_t pid)
{
    int status;
    int r;

    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    r = wait_child(pid, H_KILL_WAIT_MS, &status);
    if (r == 1)
        return 0;
    if (r == 0)
        h_say("pid %ld survived SIGKILL for %d ms", (long)pid,
              H_KILL_WAIT_MS);
    return r == 0 ? BERTH_ETIMEDOUT : r;
}

/* ---------------------------------------------------------------- h_proc */

int h_proc_start(h_proc *p, const char *name, char *const argv[],
                 char *const env_extra[], const char *log_path)
{
    char path[PATH_MAX];
    char **envp = NULL;
    int null_fd = -1;
    int log_fd = -1;
    struct stat st;
    pid_t pid = 0;
    int rc;

    memset(p, 0, sizeof(*p));
    if (name == NULL || argv == NULL || argv[0] == NULL) {
        h_say("proc start: name and argv[0] are required");
        rc = BERTH_EINVAL;
        goto out;
    }
    p->name = strdup(name);
    if (p->name == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (log_path != NULL) {
        p->log_path = strdup(log_path);
        if (p->log_path == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    rc = find_exec(argv[0], path, sizeof(path));
    if (rc != 0) {
        h_say("[%s] %s: not found or not executable", name, argv[0]);
        goto out;
    }
    rc = build_env(env_extra, &envp);
    if (rc != 0)
        goto out;
    null_fd = fd_high(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (null_fd < 0) {
        rc = berth_err_from_errno(errno);
        h_say("[%s] open /dev/null: %s", name, strerror(errno));
        goto out;
    }
    if (log_path != NULL) {
        log_fd = fd_high(open(log_path,
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
        if (log_fd < 0) {
            rc = berth_err_from_errno(errno);
            h_say("[%s] open log %s: %s", name, log_path, strerror(errno));
            goto out;
        }
        if (fstat(log_fd, &st) == 0)
            p->_log_start = st.st_size;
    }
    rc = spawn(path, argv, envp, null_fd, log_fd, log_fd, &pid);
    if (rc != 0) {
        h_say("[%s] could not start %s", name, path);
        goto out;
    }
    p->pid = pid;
out:
    fd_close(&null_fd);
    fd_close(&log_fd);
    free(envp);
    if (rc != 0) {
        free(p->name);
        free(p->log_path);
        memset(p, 0, sizeof(*p));
    }
    return rc;
}

/* Reaps p when it has exited within timeout_ms. Returns 1 when reaped
 * (now or before), 0 while it runs, or a negative code. */
static int proc_reap(h_proc *p, int timeout_ms)
{
    int status;
    int r;

    if (p->_reaped)
        return 1;
    r = wait_child(p->pid, timeout_ms, &status);
    if (r < 0) {
        /* Someone else reaped it (SIGCHLD ignored?): treat it as gone. */
        p->_reaped = 1;
        p->_status = r;
        return 1;
    }
    if (r == 1) {
        p->_reaped = 1;
        p->_status = status;
    }
    return r;
}

int h_proc_stop(h_proc *p, int sig, int timeout_ms)
{
    int r;

    if (p->pid <= 0)
        return BERTH_ENOENT;
    if (p->_reaped)
        return p->_status;
    if (kill(-p->pid, sig) != 0 && kill(p->pid, sig) != 0 && errno != ESRCH)
        h_say("[%s] kill %d: %s", p->name, sig, strerror(errno));
    r = proc_reap(p, timeout_ms);
    if (r == 1)
        return p->_status;
    h_say("[%s] still running %d ms after signal %d: sending SIGKILL",
          p->name, timeout_ms, sig);
    kill_and_reap(p->pid);
    p->_reaped = 1;
    p->_status = H_PROC_KILLED;
    return H_PROC_KILLED;
}

int h_proc_wait(h_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return BERTH_ENOENT;
    if (proc_reap(p, timeout_ms) == 1)
        return p->_status;
    return BERTH_ETIMEDOUT;
}

int h_proc_alive(h_proc *p)
{
    if (p->pid <= 0)
        return 0;
    return proc_reap(p, 0) == 0;
}

void h_proc_kill9(h_proc *p)
{
    if (p->pid <= 0 || p->_reaped)
        return;
    kill_and_reap(p->pid);
    p->_reaped = 1;
    p->_status = 128 + SIGKILL;
}

void h_proc_free(h_proc *p)
{
    if (p == NULL)
        return;
    h_proc_kill9(p);
    free(p->name);
    free(p->log_path);
    memset(p, 0, sizeof(*p));
}

int h_proc_wait_log(h_proc *p, const char *needle, int timeout_ms)
{
    int64_t deadline = deadline_in(timeout_ms);
    log_scan s;
    int rc;

    if (p->log_path == NULL) {
        h_say("[%s] wait log: the process has no log file",
              p->name ? p->name : "?");
        return BERTH_EINVAL;
    }
    rc = log_scan_init(&s, p->log_path, p->_log_start, needle);
    if (rc != 0)
        goto out;
    for (;;) {
        int alive = h_proc_alive(p);

        /* Scan after the liveness check: a child that logged and exited
         * in between is still credited with its line. */
        if (log_scan_step(&s)) {
            rc = 0;
            goto out;
        }
        if (!alive) {
            rc = BERTH_EUNAVAIL;
            h_say("[%s] exited (status %d) before logging \"%s\"", p->name,
                  p->_status, needle);
            h_log_tail(p->log_path, H_TAIL_BYTES);
            goto out;
        }
        if (ms_left(deadline) == 0)
            break;
        clock_sleep_ms(ms_left(deadline) < H_POLL_MS ? ms_left(deadline)
                                                     : H_POLL_MS);
    }
    rc = BERTH_ETIMEDOUT;
    h_say("[%s] \"%s\" not logged within %d ms", p->name, needle, timeout_ms);
    h_log_tail(p->log_path, H_TAIL_BYTES);
out:
    log_scan_free(&s);
    return rc;
}

/* ---------------------------------------------------------------- ports */

/* One connect attempt to 127.0.0.1:port, bounded by wait_ms. */
static int try_connect(int port, int wait_ms)
{
    struct sockaddr_in sa;
    struct pollfd pfd;
    socklen_t len = sizeof(int);
    int soerr = 0;
    int fd;
    int ok = 0;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        ok = 1;
    } else if (errno == EINPROGRESS) {
        pfd.fd = fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;
        if (poll(&pfd, 1, wait_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
            soerr == 0)
            ok = 1;
    }
    close(fd);
    return ok;
}

int h_wait_port(int port, int timeout_ms)
{
    int64_t deadline = deadline_in(timeout_ms);

    if (port <= 0 || port > 65535) {
        h_say("wait port: bad port %d", port);
        return BERTH_EINVAL;
    }
    for (;;) {
        int left = ms_left(deadline);

        if (try_connect(port, left < 250 ? (left > 0 ? left : 1) : 250))
            return 0;
        left = ms_left(deadline);
        if (left == 0)
            break;
        clock_sleep_ms(left < H_POLL_MS ? left : H_POLL_MS);
    }
    h_say("wait port: 127.0.0.1:%d not accepting after %d ms", port,
          timeout_ms);
    return BERTH_ETIMEDOUT;
}

/* ---------------------------------------------------------------- nats */

static int nats_server_path(char *dst, size_t size)
{
    static const char *const fallbacks[] = {
        "/usr/sbin/nats-server", "/usr/local/bin/nats-server",
        "/usr/bin/nats-server", NULL};
    const char *env = getenv("BERTH_NATS_SERVER");
    int i;

    if (env != NULL && env[0] != '\0')
        return find_exec(env, dst, size);
    if (find_exec("nats-server", dst, size) == 0)
        return 0;
    for (i = 0; fallbacks[i] != NULL; i++) {
        if (find_exec(fallbacks[i], dst, size) == 0)
            return 0;
    }
    return BERTH_ENOENT;
}

/* Starts nats-server on n->port (n->url follows it) with the store in
 * n->dir and waits until it is ready (an h_spawn_fn). On failure n->proc
 * is stopped and freed. */
static int nats_spawn(void *arg)
{
    h_nats *n = arg;
    char bin[PATH_MAX];
    char store[PATH_MAX];
    char log[PATH_MAX];
    char port[16];
    int rc;

    snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d", n->port);
    rc = nats_server_path(bin, sizeof(bin));
    if (rc != 0) {
        h_say("nats-server not found (set BERTH_NATS_SERVER or install it)");
        goto out;
    }
    if (snprintf(store, sizeof(store), "%s/js", n->dir) >= (int)sizeof(store) ||
        snprintf(log, sizeof(log), "%s/nats.log", n->dir) >= (int)sizeof(log)) {
        rc = BERTH_EINVAL;
        goto out;
    }
    snprintf(port, sizeof(port), "%d", n->port);
    {
        char *const argv[] = {bin,  "-js", "-sd",       store, "-p",
                              port, "-a",  "127.0.0.1", NULL};

        rc = h_proc_start(&n->proc, "nats-server", argv, NULL, log);
    }
    if (rc != 0)
        goto out;
    rc = h_proc_wait_log(&n->proc, "Server is ready", H_NATS_READY_MS);
    if (rc != 0)
        goto out;
    rc = h_wait_port(n->port, H_NATS_READY_MS);
out:
    if (rc != 0 && n->proc.pid > 0) {
        h_proc_stop(&n->proc, H_NATS_STOP_SIG, 1000);
        h_proc_free(&n->proc);
    }
    return rc;
}

/* ---------------------------------------------------------------- servers */

int h_server_start(h_spawn_fn spawn, void *arg, int *port, const char *name,
                   int attempts)
{
    int attempt;
    int rc = 0;

    for (attempt = 0; attempt < attempts; attempt++) {
        rc = h_free_port();
        if (rc < 0)
            return rc;
        *port = rc;
        rc = spawn(arg);
        /* A server that exited early most likely lost a race for the
         * port; anything else will not get better by retrying. */
        if (rc != BERTH_EUNAVAIL)
            break;
        h_say("%s exited early on port %d; retrying", name, *port);
    }
    return rc;
}

int h_server_restart(h_spawn_fn spawn, void *arg, int port, const char *name,
                     int attempts)
{
    int attempt;
    int rc = 0;

    for (attempt = 0; attempt < attempts; attempt++) {
        rc = spawn(arg);
        if (rc != BERTH_EUNAVAIL)
            break;
        clock_sleep_ms(200);
    }
    if (rc != 0)
        h_say("%s did not restart on port %d (%s)", name, port,
              berth_strerror(rc));
    return rc;
}

/* ---------------------------------------------------------------- nats */

int h_nats_start(h_nats *n)
{
    int rc = 0;

    memset(n, 0, sizeof(*n));
    n->dir = h_tempdir("nats");
    if (n->dir == NULL) {
        rc = BERTH_EIO;
        goto out;
    }
    rc = h_server_start(nats_spawn, n, &n->port, "nats-server",
                        H_NATS_ATTEMPTS);
out:
    if (rc != 0) {
        h_say("nats-server did not start (%s)", berth_strerror(rc));
        h_nats_stop(n);
    }
    return rc;
}

int h_nats_restart(h_nats *n)
{
    int rc = BERTH_EINVAL;

    if (n->dir == NULL || n->port <= 0) {
        h_say("nats restart: the server was never started");
        return rc;
    }
    if (n->proc.pid > 0) {
        rc = h_proc_stop(&n->proc, H_NATS_STOP_SIG, H_NATS_STOP_MS);
        if (rc != 0)
            h_say("nats-server stopped with status %d", rc);
        h_proc_free(&n->proc);
    }
    /* The port is ours and the server closed it. */
    return h_server_restart(nats_spawn, n, n->port, "nats-server",
                            H_NATS_ATTEMPTS);
}

void h_nats_stop(h_nats *n)
{
    if (n == NULL)
        return;
    if (n->proc.pid > 0) {
        h_proc_stop(&n->proc, H_NATS_STOP_SIG, H_NATS_STOP_MS);
        h_proc_free(&n->proc);
    }
    h_tempdir_drop(n->dir, "nats");
    memset(n, 0, sizeof(*n));
}

/* ---------------------------------------------------------------- h_run */

/* Appends n bytes to b, recording the first failure in *rc and dropping
 * what does not fit; draining goes on either way. */
static void sink(buf *b, const char *data, size_t n, int *rc)
{
    int r;

    if (b == NULL)
        return;
    r = buf_append(b, data, n);
    if (r != 0 && *rc == 0)
        *rc = r;
}

/* Reads what is available on *fd into b; closes *fd at end of file. */
static void drain(int *fd, buf *b, int *rc)
{
    char chunk[H_IO_CHUNK];

    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof(chunk));

        if (n > 0) {
            sink(b, chunk, (size_t)n, rc);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        fd_close(fd); /* EOF or a real error: nothing more will come */
        return;
    }
}

/* The body of h_run() and h_run2(). merge: stderr goes where stdout goes;
 * otherwise err NULL leaves stderr inherited. */
static int run(char *const argv[], const void *in, size_t inlen, buf *out,
               buf *err, int merge, int timeout_ms)
{
    int64_t deadline = deadline_in(timeout_ms);
    char path[PATH_MAX];
    int in_p[2] = {-1, -1};
    int out_p[2] = {-1, -1};
    int err_p[2] = {-1, -1};
    int null_fd = -1;
    int child_in;
    int child_out;
    int child_err;
    size_t written = 0;
    sigset_t pipe_set;
    sigset_t old_mask;
    sigset_t pending;
    int pipe_was_pending;
    int io_rc = 0;
    pid_t pid = 0;
    int status;
    int rc;
    int r;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    pipe_was_pending = sigismember(&pending, SIGPIPE);
    /* A child that stops reading must give EPIPE, not kill the test. */
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    if (argv == NULL || argv[0] == NULL) {
        rc = BERTH_EINVAL;
        h_say("run: argv[0] is required");
        goto out;
    }
    rc = find_exec(argv[0], path, sizeof(path));
    if (rc != 0) {
        h_say("run: %s: not found or not executable", argv[0]);
        goto out;
    }
    null_fd = fd_high(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (null_fd < 0) {
        rc = berth_err_from_errno(errno);
        goto out;
    }
    if ((in != NULL && pipe2(in_p, O_CLOEXEC) != 0) ||
        (out != NULL && pipe2(out_p, O_CLOEXEC) != 0) ||
        (!merge && err != NULL && pipe2(err_p, O_CLOEXEC) != 0)) {
        rc = berth_err_from_errno(errno);
        h_say("run: pipe2: %s", strerror(errno));
        goto out;
    }
    in_p[0] = fd_high(in_p[0]);
    in_p[1] = fd_high(in_p[1]);
    out_p[0] = fd_high(out_p[0]);
    out_p[1] = fd_high(out_p[1]);
    err_p[0] = fd_high(err_p[0]);
    err_p[1] = fd_high(err_p[1]);
    if ((in != NULL && (in_p[0] < 0 || in_p[1] < 0)) ||
        (out != NULL && (out_p[0] < 0 || out_p[1] < 0)) ||
        (!merge && err != NULL && (err_p[0] < 0 || err_p[1] < 0))) {
        rc = BERTH_EIO;
        h_say("run: could not move pipe descriptors");
        goto out;
    }
    child_in = in != NULL ? in_p[0] : null_fd;
    child_out = out != NULL ? out_p[1] : null_fd;
    if (merge)
        child_err = child_out;
    else
        child_err = err != NULL ? err_p[1] : -1;
    rc = spawn(path, argv, environ, child_in, child_out, child_err, &pid);
    if (rc != 0)
        goto out;
    fd_close(&in_p[0]);
    fd_close(&out_p[1]);
    fd_close(&err_p[1]);
    if (in_p[1] >= 0)
        fcntl(in_p[1], F_SETFL, O_NONBLOCK);
    if (out_p[0] >= 0)
        fcntl(out_p[0], F_SETFL, O_NONBLOCK);
    if (err_p[0] >= 0)
        fcntl(err_p[0], F_SETFL, O_NONBLOCK);
    if (in_p[1] >= 0 && inlen == 0)
        fd_close(&in_p[1]);

    while (in_p[1] >= 0 || out_p[0] >= 0 || err_p[0] >= 0) {
        struct pollfd pfd[3];
        int nfd = 0;
        int i;

        if (ms_left(deadline) == 0)
            goto timedout;
        if (in_p[1] >= 0)
            pfd[nfd++] = (struct pollfd){.fd = in_p[1], .events = POLLOUT};
        if (out_p[0] >= 0)
            pfd[nfd++] = (struct pollfd){.fd = out_p[0], .events = POLLIN};
        if (err_p[0] >= 0)
            pfd[nfd++] = (struct pollfd){.fd = err_p[0], .events = POLLIN};
        r = poll(pfd, (nfds_t)nfd, ms_left(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = berth_err_from_errno(errno);
            h_say("run: poll: %s", strerror(errno));
            goto abort_child;
        }
        for (i = 0; i < nfd; i++) {
            if (pfd[i].revents == 0)
                continue;
            if (pfd[i].fd == in_p[1]) {
                size_t left = inlen - written;
                ssize_t n = write(in_p[1], (const char *)in + written,
                                  left < H_IO_CHUNK ? left : H_IO_CHUNK);

                if (n > 0)
                    written += (size_t)n;
                else if (n < 0 && errno != EAGAIN && errno != EINTR)
                    fd_close(&in_p[1]); /* EPIPE: it stopped reading */
                if (written == inlen)
                    fd_close(&in_p[1]);
            } else if (pfd[i].fd == out_p[0]) {
                drain(&out_p[0], out, &io_rc);
            } else if (pfd[i].fd == err_p[0]) {
                drain(&err_p[0], err, &io_rc);
            }
        }
    }
    r = wait_child(pid, ms_left(deadline), &status);
    if (r == 0)
        goto timedout;
    pid = 0;
    if (r < 0) {
        rc = r;
        goto out;
    }
    rc = io_rc != 0 ? io_rc : status;
    if (io_rc != 0)
        h_say("run: %s: output past the buffer's cap was dropped", argv[0]);
    goto out;

timedout:
    rc = BERTH_ETIMEDOUT;
    h_say("run: %s still running after %d ms: killed", argv[0], timeout_ms);
abort_child:
    kill_and_reap(pid);
    pid = 0;
out:
    fd_close(&in_p[0]);
    fd_close(&in_p[1]);
    fd_close(&out_p[0]);
    fd_close(&out_p[1]);
    fd_close(&err_p[0]);
    fd_close(&err_p[1]);
    fd_close(&null_fd);
    if (!pipe_was_pending) {
        struct timespec zero = {0, 0};

        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE))
            sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return rc;
}

int h_run(char *const argv[], const void *stdin_data, size_t stdin_len,
          buf *out, int timeout_ms)
{
    return run(argv, stdin_data, stdin_len, out, NULL, 1, timeout_ms);
}

int h_run2(char *const argv[], const void *stdin_data, size_t stdin_len,
           buf *out, buf *err, int timeout_ms)
{
    int merge = out != NULL && err == out;

    return run(argv, stdin_data, stdin_len, out, merge ? NULL : err, merge,
               timeout_ms);
}

/* ---------------------------------------------------------------- paths */

/* Cached lookups live for the process; the list head keeps them reachable
 * so leak checkers do not report them. */
typedef struct bin_entry {
    struct bin_entry *next;
    char *name;
    char *path;
} bin_entry;

static pthread_mutex_t paths_lock = PTHREAD_MUTEX_INITIALIZER;
static bin_entry *bins;
static char repo_root[PATH_MAX];
static int repo_root_done;
static char *nats_cli;
static int nats_cli_done;

static int is_repo(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;

    if (snprintf(p, sizeof(p), "%s/Makefile", dir) >= (int)sizeof(p) ||
        stat(p, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (snprintf(p, sizeof(p), "%s/tests/harness", dir) >= (int)sizeof(p) ||
        stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    return 1;
}

/* Walks up from dir (modified in place) to the repository root. Returns 1
 * with dir set to the root, 0 when no ancestor is one. */
static int walk_up(char *dir)
{
    for (;;) {
        char *slash;

        if (is_repo(dir))
            return 1;
        slash = strrchr(dir, '/');
        if (slash == NULL || (slash == dir && dir[1] == '\0'))
            return 0;
        if (slash == dir)
            dir[1] = '\0'; /* "/x" -> "/" */
        else
            *slash = '\0';
    }
}

/* Fills repo_root once (paths_lock held); empty when not found. */
static void find_repo_root(void)
{
    char dir[PATH_MAX];
    ssize_t n;

    if (repo_root_done)
        return;
    repo_root_done = 1;
    if (getcwd(dir, sizeof(dir)) != NULL && walk_up(dir)) {
        snprintf(repo_root, sizeof(repo_root), "%s", dir);
        return;
    }
    n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    if (n > 0) {
        dir[n] = '\0';
        if (walk_up(dir)) {
            snprintf(repo_root, sizeof(repo_root), "%s", dir);
            return;
        }
    }
    repo_root[0] = '\0';
}

const char *h_bin(const char *name)
{
    const char *dir = getenv("BERTH_BIN_DIR");
    const char *path = NULL;
    bin_entry *e;
    char tmp[PATH_MAX];
    int n;

    if (name == NULL)
        return NULL;
    pthread_mutex_lock(&paths_lock);
    for (e = bins; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            path = e->path;
            goto out;
        }
    }
    if (dir != NULL && dir[0] != '\0') {
        n = snprintf(tmp, sizeof(tmp), "%s/%s", dir, name);
    } else {
        find_repo_root();
        if (repo_root[0] != '\0')
            n = snprintf(tmp, sizeof(tmp), "%s/build/bin/%s",
                         strcmp(repo_root, "/") == 0 ? "" : repo_root, name);
        else
            n = snprintf(tmp, sizeof(tmp), "build/bin/%s", name);
    }
    if (n < 0 || n >= (int)sizeof(tmp)) {
        h_say("bin %s: path too long", name);
        goto out;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        h_say("bin %s: out of memory", name);
        goto out;
    }
    e->name = strdup(name);
    e->path = strdup(tmp);
    if (e->name == NULL || e->path == NULL) {
        h_say("bin %s: out of memory", name);
        free(e->name);
        free(e->path);
        free(e);
        goto out;
    }
    e->next = bins;
    bins = e;
    path = e->path;
out:
    pthread_mutex_unlock(&paths_lock);
    return path;
}

/* The lookup order documented in harness.h. */
static int find_nats_cli(char *dst, size_t size)
{
    const char *env = getenv("BERTH_NATS_CLI");
    const char *home = getenv("HOME");
    char local[PATH_MAX];

    if (env != NULL && env[0] != '\0') {
        if (find_exec(env, dst, size) == 0)
            return 0;
        h_say("BERTH_NATS_CLI=%s is not executable", env);
        return BERTH_ENOENT;
    }
    if (find_exec("nats", dst, size) == 0 ||
        find_exec("/usr/local/bin/nats", dst, size) == 0)
        return 0;
    if (home != NULL && home[0] != '\0' &&
        snprintf(local, sizeof(local), "%s/.local/bin/nats", home) <
            (int)sizeof(local) &&
        find_exec(local, dst, size) == 0)
        return 0;
    return BERTH_ENOENT;
}

const char *h_nats_cli(void)
{
    char tmp[PATH_MAX];
    const char *path;

    pthread_mutex_lock(&paths_lock);
    if (!nats_cli_done) {
        nats_cli_done = 1;
        if (find_nats_cli(tmp, sizeof(tmp)) == 0)
            nats_cli = strdup(tmp);
    }
    path = nats_cli;
    pthread_mutex_unlock(&paths_lock);
    return path;
}
