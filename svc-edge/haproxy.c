/* haproxy.c - the edge's HAProxy: base configuration, the process and its
 * supervision (see haproxy.h); the runtime API is haproxy_runtime.c.
 *
 * Threads: one supervisor thread owns the HAProxy process (spawn, wait,
 * relay its output, restart) or, for an external HAProxy, the polling of
 * its socket; it runs the on_restart callbacks. The locks are described
 * in haproxy_int.h.
 */
#include "svc-edge/haproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "svc-edge/haproxy_int.h"

/* ------------------------------------------------------------ helpers */

static int path_join(char *out, size_t size, const char *a, const char *b)
{
    int n = snprintf(out, size, "%s/%s", a, b);

    return n < 0 || (size_t)n >= size ? BERTH_EINVAL : 0;
}

/* Checks "host:port" where host is empty, "*", an IPv4 address or an IPv6
 * address in brackets, and port 1..65535. */
static int addr_ok(const char *a)
{
    const char *colon = strrchr(a, ':');
    char host[HX_ADDR_MAX];
    unsigned char tmp[16];
    char *end;
    long port;
    size_t hl;

    if (colon == NULL || strlen(a) >= HX_ADDR_MAX)
        return 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return 0;
    hl = (size_t)(colon - a);
    memcpy(host, a, hl);
    host[hl] = '\0';
    if (hl == 0 || strcmp(host, "*") == 0)
        return 1;
    if (host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return inet_pton(AF_INET6, host + 1, tmp) == 1;
    }
    return inet_pton(AF_INET, host, tmp) == 1;
}
int edge_haproxy_up(edge_haproxy *h)
{
    int up;

    pthread_mutex_lock(&h->mu);
    up = h->up;
    pthread_mutex_unlock(&h->mu);
    return up;
}

long edge_haproxy_pid(edge_haproxy *h)
{
    long pid;

    pthread_mutex_lock(&h->mu);
    pid = (long)h->pid;
    pthread_mutex_unlock(&h->mu);
    return pid;
}

/* ------------------------------------------------------------ base files */

/* The self-signed default certificate HAProxy needs to bind ssl at all:
 * EC P-256, CN "berth-edge default", ten years; cert then key, 0600. */
static int default_cert_make(const char *path)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509_NAME *name;
    BIO *bio = NULL;
    BUF_MEM *mem;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int rc = BERTH_EINTERNAL;

    key = EVP_EC_gen("P-256");
    x = X509_new();
    bio = BIO_new(BIO_s_mem());
    if (key == NULL || x == NULL || bio == NULL)
        goto out;
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto out;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto out;
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)"berth-edge default", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    if (X509_sign(x, key, EVP_sha256()) == 0 || !PEM_write_bio_X509(bio, x) ||
        !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
        goto out;
    BIO_get_mem_ptr(bio, &mem);
    rc = fs_write_atomic(path, mem->data, mem->length, 0600);
out:
    if (rc == BERTH_EINTERNAL)
        log_error("default certificate not made", "error=%s",
                  ERR_reason_error_string(ERR_get_error()));
    ERR_clear_error();
    BN_free(bn);
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

/* Creates path with content when it does not exist. */
static int file_ensure(const char *path, const char *content)
{
    if (access(path, F_OK) == 0)
        return 0;
    return fs_write_atomic(path, content, strlen(content), 0600);
}

/* The frontend rules shared by HTTP and HTTPS: ACME challenges first, then
 * the host map (404 unknown, 503 stopped), then the catch-all backend. */
static int write_frontend(buf *c, edge_haproxy *h, const char *name,
                          const char *bind, int tls)
{
    static const char page404[] =
        "<!doctype html><title>404 Not Found</title><h1>404 Not Found</h1>"
        "<p>No site is served under this name here.</p>";
    static const char page503[] =
        "<!doctype html><title>503 Service Unavailable</title>"
        "<h1>503 Service Unavailable</h1>"
        "<p>This site is stopped. Try again later.</p>";

    buf_printf(c, "frontend %s\n", name);
    if (tls)
        buf_printf(c, "    bind %s ssl crt %s crt-list %s alpn h2,http/1.1\n",
                   bind, h->default_cert, h->crt_list);
    else
        buf_printf(c, "    bind %s\n", bind);
    buf_printf(c,
               "    http-request set-var(txn.acme) path,field(4,/),map(%s) "
               "if { path_beg /.well-known/acme-challenge/ }\n"
               "    http-request return status 200 content-type text/plain "
               "lf-string \"%%[var(txn.acme)]\" hdr cache-control no-store "
               "if { var(txn.acme) -m found }\n",
               h->maps[EDGE_HAPROXY_MAP_CHALLENGES]);
    buf_printf(c,
               "    http-request set-var(txn.host) "
               "req.hdr(host),field(1,:),lower,regsub(\\.$,)\n"
               "    http-request set-var(txn.up) var(txn.host),map(%s)\n",
               h->maps[EDGE_HAPROXY_MAP_HOSTS]);
    buf_printf(c,
               "    http-request return status 404 content-type "
               "\"text/html; charset=utf-8\" string \"%s\" "
               "hdr cache-control no-store unless { var(txn.up) -m found }\n",
               page404);
    buf_printf(c,
               "    http-request return status 503 content-type "
               "\"text/html; charset=utf-8\" string \"%s\" "
               "hdr cache-control no-store hdr retry-after 10 "
               "if { var(txn.up) -m str %s }\n",
               page503, EDGE_HAPROXY_STOPPED);
    buf_printf(c, "    http-request set-header X-Forwarded-Proto %s\n",
               tls ? "https" : "http");
    return buf_puts(c, "    default_backend sites\n\n");
}

static int write_config(edge_haproxy *h)
{
    buf c;
    int rc;

    buf_init(&c, 64 << 10);
    buf_printf(&c,
               "# haproxy.cfg - written by berth-edge at every start; do not "
               "edit.\n"
               "# Routes are data: %s (host -> ip:port or \"%s\"),\n"
               "# changed at runtime through the admin socket.\n\n",
               h->maps[EDGE_HAPROXY_MAP_HOSTS], EDGE_HAPROXY_STOPPED);
    buf_printf(&c,
               "global\n"
               "    stats socket %s mode 600 level admin\n"
               "    stats timeout 2m\n"
               "    noreuseport\n"
               "    ssl-default-bind-options ssl-min-ver TLSv1.2\n\n",
               h->admin_sock);
    buf_puts(&c, "defaults\n"
                 "    mode http\n"
                 "    option forwardfor\n"
                 "    option dontlognull\n"
                 "    retries 1\n"
                 "    timeout connect 3s\n"
                 "    timeout client 60s\n"
                 "    timeout server 60s\n"
                 "    timeout http-request 10s\n"
                 "    timeout http-keep-alive 10s\n"
                 "    timeout queue 10s\n"
                 "    timeout tunnel 1h\n\n");
    write_frontend(&c, h, "http", h->http_addr, 0);
    write_frontend(&c, h, "https", h->https_addr, 1);
    /* HAProxy 2.6 cannot add backends at runtime: one backend whose
     * destination is the map's value ("ip:port" or "[ip6]:port"). */
    rc = buf_puts(&c, "backend sites\n"
                      "    http-request set-dst "
                      "var(txn.up),regsub(:[0-9]+$,),regsub(^\\[,),"
                      "regsub(\\]$,)\n"
                      "    http-request set-dst-port var(txn.up),field(-1,:)\n"
                      "    server upstream 0.0.0.0:0\n");
    if (rc == 0)
        rc = fs_write_atomic(h->cfg_path, c.data, c.len, 0600);
    buf_free(&c);
    return rc;
}

/* Everything HAProxy reads at start, made when missing. */
static int base_files(edge_haproxy *h)
{
    static const char hosts_head[] =
        "# hosts.map - host -> upstream, written by berth-edge; do not "
        "edit.\n";
    int rc;

    rc = access(h->default_cert, F_OK) == 0 ? 0
                                            : default_cert_make(h->default_cert);
    if (rc == 0)
        rc = file_ensure(h->maps[EDGE_HAPROXY_MAP_HOSTS], hosts_head);
    if (rc == 0) {
        pthread_mutex_lock(&h->challenge_mu);
        rc = hx_challenge_save(h); /* challenges do not outlive the edge */
        pthread_mutex_unlock(&h->challenge_mu);
    }
    if (rc == 0) {
        pthread_mutex_lock(&h->cert_mu);
        rc = hx_crt_list_write(h);
        pthread_mutex_unlock(&h->cert_mu);
    }
    if (rc == 0) /* an external HAProxy is to be started with it */
        rc = write_config(h);
    if (rc != 0)
        log_error("haproxy files", "dir=%s error=%s", h->dir,
                  berth_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------ process */

/* A HAProxy left running by an edge that died without stopping it (the
 * parent-death signal normally takes it along) would hold the ports: stop
 * it when the pid file names a haproxy reading our configuration. */
static void stale_stop(edge_haproxy *h)
{
    char *text = NULL, path[64], cmdline[4096];
    size_t len = 0;
    long pid;
    ssize_t n;
    int fd, i;

    if (fs_read_file(h->pid_file, 64, &text, &len) != 0)
        return;
    pid = strtol(text, NULL, 10);
    free(text);
    if (pid <= 1)
        return;
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, cmdline, sizeof(cmdline) - 1);
    close(fd);
    if (n <= 0)
        return;
    cmdline[n] = '\0';
    for (i = 0; i < n; i++)
        cmdline[i] = cmdline[i] == '\0' ? ' ' : cmdline[i];
    if (strstr(cmdline, "haproxy") == NULL ||
        strstr(cmdline, h->cfg_path) == NULL)
        return;
    log_warn("stopping a haproxy left by an earlier run", "pid=%ld", pid);
    kill((pid_t)pid, SIGTERM);
    for (i = 0; i < 50 && kill((pid_t)pid, 0) == 0; i++)
        clock_sleep_ms(20);
    if (kill((pid_t)pid, 0) == 0)
        kill((pid_t)pid, SIGKILL);
}

/* Forks and execs HAProxy in master-worker mode with its output on a pipe
 * (*errfd, non-blocking). Returns 0 and the pid, or a berth code. Only
 * async-signal-safe calls happen between fork and exec. */
static int spawn(edge_haproxy *h, pid_t *pid, int *errfd)
{
    char master[PATH_MAX + 64];
    char *argv[] = {h->bin,        "-W",   "-db",      "-f",
                    h->cfg_path,   "-S",   master,     "-p",
                    h->pid_file,   NULL};
    pid_t parent = getpid(), child;
    int pipefd[2], devnull;

    snprintf(master, sizeof(master), "%s,mode,600", h->master_sock);
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return berth_err_from_errno(errno);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    child = fork();
    if (child < 0) {
        int e = errno;

        close(pipefd[0]);
        close(pipefd[1]);
        if (devnull >= 0)
            close(devnull);
        return berth_err_from_errno(e);
    }
    if (child == 0) {
        sigset_t none;
        int fd, maxfd = (int)sysconf(_SC_OPEN_MAX);

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* Dies with the edge's supervisor thread; its own process group so
         * a terminal's ^C goes to the edge, which stops it in order. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        setpgid(0, 0);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        if (maxfd < 0 || maxfd > 65536)
            maxfd = 65536;
        for (fd = 3; fd < maxfd; fd++)
            close(fd);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    if (devnull >= 0)
        close(devnull);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    *pid = child;
    *errfd = pipefd[0];
    return 0;
}

/* Logs what HAProxy printed, one line at a time. line/used carry a partial
 * line between calls. Returns 0 at EOF, 1 while the pipe is open. */
static int relay(int fd, char *line, size_t *used)
{
    char chunk[4096];
    ssize_t n;

    for (;;) {
        size_t i;

        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (i = 0; i < (size_t)n; i++) {
            if (chunk[i] != '\n' && *used < HX_LINE_MAX - 1) {
                line[(*used)++] = chunk[i];
                continue;
            }
            if (chunk[i] != '\n')
                continue; /* the rest of an overlong line */
            line[*used] = '\0';
            if (*used > 0) {
                if (strstr(line, "[ALERT]") != NULL ||
                    strstr(line, "[WARNING]") != NULL)
                    log_warn("haproxy", "line=%s", line);
                else
                    log_info("haproxy", "line=%s", line);
            }
            *used = 0;
        }
    }
    return n == 0 ? 0 : 1;
}

/* The parent of process pid, 0 when unknown. */
static long parent_of(long pid)
{
    char path[64], stat[512], *close_paren;
    long ppid = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, stat, sizeof(stat) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    stat[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
    close_paren = strrchr(stat, ')');
    if (close_paren == NULL || sscanf(close_paren + 1, " %*c %ld", &ppid) != 1)
        return 0;
    return ppid;
}

/* Returns 1 when the admin socket answers "show info", with the worker's
 * pid in *worker_pid. When master is not 0 the worker must be its child:
 * the worker of a HAProxy that just died may still answer for a moment. */
static int answers(edge_haproxy *h, long master, long *worker_pid)
{
    buf out;
    char *p;
    long pid;
    int rc;

    buf_init(&out, 64 << 10);
    rc = hx_sock_cmd(h->admin_sock, "show info", &out);
    p = rc == 0 && out.data != NULL ? strstr(out.data, "\nPid: ") : NULL;
    pid = p != NULL ? strtol(p + 6, NULL, 10) : 0;
    if (worker_pid != NULL)
        *worker_pid = pid;
    buf_free(&out);
    return pid > 0 && (master == 0 || parent_of(pid) == master);
}

/* HAProxy came up: challenges back, then the callbacks. */
static void came_up(edge_haproxy *h)
{
    int i;

    pthread_mutex_lock(&h->mu);
    h->up = 1;
    pthread_mutex_unlock(&h->mu);
    hx_challenges_reapply(h);
    for (i = 0; i < h->ncallbacks; i++)
        h->callbacks[i].fn(h->callbacks[i].ud);
    /* Counted once the state is back: edge_haproxy_start() waits for it. */
    pthread_mutex_lock(&h->mu);
    h->starts++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void went_down(edge_haproxy *h)
{
    pthread_mutex_lock(&h->mu);
    h->up = 0;
    h->pid = 0;
    pthread_mutex_unlock(&h->mu);
}

static int stopping(edge_haproxy *h)
{
    int s;

    pthread_mutex_lock(&h->mu);
    s = h->stopping;
    pthread_mutex_unlock(&h->mu);
    return s;
}

/* Sleeps ms unless the module is stopping. Returns 1 when stopping. */
static int nap(edge_haproxy *h, int64_t ms)
{
    int64_t end = clock_mono_ms() + ms;
    int s;

    pthread_mutex_lock(&h->mu);
    while (!h->stopping && clock_mono_ms() < end) {
        struct timespec ts;
        int64_t left = end - clock_mono_ms();

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    s = h->stopping;
    pthread_mutex_unlock(&h->mu);
    return s;
}

/* Runs one HAProxy until it exits. Returns how long it lived (ms). */
static int64_t run_once(edge_haproxy *h)
{
    char line[HX_LINE_MAX];
    size_t used = 0;
    int64_t started = clock_mono_ms(), term_at = 0;
    int status = 0, errfd = -1, open_pipe = 1, announced = 0;
    pid_t pid = 0;
    int rc;

    rc = spawn(h, &pid, &errfd);
    if (rc != 0) {
        log_error("haproxy not started", "bin=%s error=%s", h->bin,
                  berth_strerror(rc));
        return 0;
    }
    pthread_mutex_lock(&h->mu);
    h->pid = pid;
    pthread_mutex_unlock(&h->mu);
    log_info("haproxy started", "pid=%ld config=%s", (long)pid, h->cfg_path);
    for (;;) {
        struct pollfd pfd = {.fd = errfd, .events = POLLIN};
        pid_t w;

        if (open_pipe)
            poll(&pfd, 1, announced ? 100 : 10);
        else
            clock_sleep_ms(announced ? 100 : 10);
        if (open_pipe)
            open_pipe = relay(errfd, line, &used);
        w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (stopping(h)) {
            int64_t now = clock_mono_ms();

            if (term_at == 0) {
                kill(pid, SIGTERM);
                term_at = now;
            } else if (now - term_at > HX_STOP_GRACE_MS) {
                kill(pid, SIGKILL);
            }
            continue;
        }
        if (!announced && answers(h, (long)pid, NULL)) {
            announced = 1;
            log_info("haproxy ready", "pid=%ld socket=%s", (long)pid,
                     h->admin_sock);
            came_up(h);
        }
    }
    if (open_pipe)
        relay(errfd, line, &used);
    close(errfd);
    went_down(h);
    log_emit(term_at != 0 ? LOG_INFO : LOG_WARN, "haproxy exited",
             "pid=%ld status=%d signal=%d", (long)pid,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1,
             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return clock_mono_ms() - started;
}

static void *supervise(void *arg)
{
    edge_haproxy *h = arg;
    int64_t backoff = HX_BACKOFF_MIN_MS;

    stale_stop(h);
    while (!stopping(h)) {
        int64_t lived = run_once(h);

        if (stopping(h))
            break;
        backoff = lived >= HX_STABLE_MS ? HX_BACKOFF_MIN_MS
                                        : (backoff * 2 > HX_BACKOFF_MAX_MS
                                               ? HX_BACKOFF_MAX_MS
                                               : backoff * 2);
        log_info("restarting haproxy", "in_ms=%lld", (long long)backoff);
        if (nap(h, backoff))
            break;
    }
    return NULL;
}

/* An HAProxy that is not ours: its socket is looked at every second. It
 * coming back after being unreachable, or with another worker pid (a
 * restart or a reload), means its runtime state is the files' again. */
static void *watch(void *arg)
{
    edge_haproxy *h = arg;
    long known = 0;
    int was_up = 0;

    while (!stopping(h)) {
        long pid = 0;
        int up = answers(h, 0, &pid);

        if (up && (!was_up || pid != known)) {
            if (was_up && known != 0 && pid != known) {
                pthread_mutex_lock(&h->mu);
                h->ext_reloads++;
                pthread_mutex_unlock(&h->mu);
            }
            log_info("haproxy ready", "pid=%ld socket=%s", pid, h->admin_sock);
            known = pid;
            came_up(h);
        } else if (!up && was_up) {
            log_warn("haproxy unreachable", "socket=%s", h->admin_sock);
            went_down(h);
        }
        was_up = up;
        if (nap(h, HX_POLL_MS))
            break;
    }
    return NULL;
}

/* ------------------------------------------------------------ life cycle */

int edge_haproxy_new(const edge_haproxy_cfg *cfg, edge_haproxy **out)
{
    static const char *const subdirs[] = {"maps", "certs", "run", NULL};
    edge_haproxy *h = NULL;
    char sub[PATH_MAX + 32];
    int i, rc = 0;

    *out = NULL;
    if (cfg->dir == NULL || cfg->http_addr == NULL || cfg->https_addr == NULL)
        return BERTH_EINVAL;
    if (!addr_ok(cfg->http_addr) || !addr_ok(cfg->https_addr)) {
        log_error("haproxy addresses must be host:port (IPv4, [IPv6], * or "
                  "empty host)",
                  "http=%s https=%s", cfg->http_addr, cfg->https_addr);
        return BERTH_EINVAL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return BERTH_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    pthread_mutex_init(&h->challenge_mu, NULL);
    pthread_mutex_init(&h->cert_mu, NULL);
    for (i = 0; i < EDGE_HAPROXY_MAPS; i++)
        pthread_mutex_init(&h->map_mu[i], NULL);
    h->challenges = calloc(HX_CHALLENGES_MAX, sizeof(*h->challenges));
    rc = h->challenges == NULL ? BERTH_ENOMEM : fs_mkdirs(cfg->dir, 0700);
    if (rc == 0 && realpath(cfg->dir, h->dir) == NULL)
        rc = berth_err_from_errno(errno);
    for (i = 0; rc == 0 && subdirs[i] != NULL; i++) {
        rc = path_join(sub, sizeof(sub), h->dir, subdirs[i]);
        if (rc == 0)
            rc = fs_mkdirs(sub, 0700);
    }
    if (rc == 0)
        rc = path_join(h->cfg_path, sizeof(h->cfg_path), h->dir, "haproxy.cfg");
    if (rc == 0)
        rc = path_join(h->maps[EDGE_HAPROXY_MAP_HOSTS], sizeof(h->maps[0]),
                       h->dir, "maps/hosts.map");
    if (rc == 0)
        rc = path_join(h->maps[EDGE_HAPROXY_MAP_CHALLENGES], sizeof(h->maps[0]),
                       h->dir, "maps/challenges.map");
    if (rc == 0)
        rc = path_join(h->certs_dir, sizeof(h->certs_dir), h->dir, "certs");
    if (rc == 0)
        rc = path_join(h->crt_list, sizeof(h->crt_list), h->dir, "certs.list");
    if (rc == 0)
        rc = path_join(h->default_cert, sizeof(h->default_cert), h->dir,
                       "certs/default.pem");
    if (rc == 0)
        rc = path_join(h->master_sock, sizeof(h->master_sock), h->dir,
                       "run/master.sock");
    if (rc == 0)
        rc = path_join(h->pid_file, sizeof(h->pid_file), h->dir,
                       "run/haproxy.pid");
    if (rc == 0 && cfg->admin_socket != NULL && cfg->admin_socket[0] != '\0') {
        h->external = 1;
        if (snprintf(h->admin_sock, sizeof(h->admin_sock), "%s",
                     cfg->admin_socket) >= (int)sizeof(h->admin_sock))
            rc = BERTH_EINVAL;
    } else if (rc == 0) {
        rc = path_join(h->admin_sock, sizeof(h->admin_sock), h->dir,
                       "run/admin.sock");
    }
    if (rc == 0 && sizeof(((struct sockaddr_un *)0)->sun_path) <=
                       strlen(h->admin_sock) + 1) {
        log_error("admin socket path too long for a unix socket", "path=%s",
                  h->admin_sock);
        rc = BERTH_EINVAL;
    }
    snprintf(h->http_addr, sizeof(h->http_addr), "%s", cfg->http_addr);
    snprintf(h->https_addr, sizeof(h->https_addr), "%s", cfg->https_addr);
    snprintf(h->bin, sizeof(h->bin), "%s",
             cfg->haproxy_bin != NULL && cfg->haproxy_bin[0] != '\0'
                 ? cfg->haproxy_bin
                 : "haproxy");
    if (rc != 0) {
        log_error("haproxy set-up", "dir=%s error=%s", cfg->dir,
                  berth_strerror(rc));
        edge_haproxy_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void edge_haproxy_on_restart(edge_haproxy *h, void (*fn)(void *ud), void *ud)
{
    if (h->ncallbacks >= EDGE_HAPROXY_CALLBACKS_MAX || h->thread_started) {
        log_error("haproxy callback refused (too many, or added after the "
                  "start)",
                  "max=%d", EDGE_HAPROXY_CALLBACKS_MAX);
        return;
    }
    h->callbacks[h->ncallbacks].fn = fn;
    h->callbacks[h->ncallbacks].ud = ud;
    h->ncallbacks++;
}

int edge_haproxy_start(edge_haproxy *h)
{
    int64_t end;
    int rc, up;

    rc = base_files(h);
    if (rc != 0)
        return rc;
    if (pthread_create(&h->thread, NULL, h->external ? watch : supervise, h) !=
        0)
        return BERTH_EINTERNAL;
    h->thread_started = 1;
    end = clock_mono_ms() + HX_START_WAIT_MS;
    pthread_mutex_lock(&h->mu);
    while (h->starts == 0 && clock_mono_ms() < end) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    up = h->starts > 0;
    pthread_mutex_unlock(&h->mu);
    if (!up) {
        log_warn("haproxy not answering yet; still trying", "socket=%s",
                 h->admin_sock);
        return BERTH_ETIMEDOUT;
    }
    return 0;
}

void edge_haproxy_free(edge_haproxy *h)
{
    int i;

    if (h == NULL)
        return;
    if (h->thread_started) {
        pthread_mutex_lock(&h->mu);
        h->stopping = 1;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->challenge_mu);
    pthread_mutex_destroy(&h->cert_mu);
    for (i = 0; i < EDGE_HAPROXY_MAPS; i++)
        pthread_mutex_destroy(&h->map_mu[i]);
    free(h->challenges);
    free(h);
}
