/* exec.c - shell sessions: Docker execs in the sites' containers, relayed
 * over the bus with credit-based flow control (see exec.h and
 * docs/internals/exec.md).
 *
 * Ownership. One mutex (mu) guards the session table and the fields of
 * each session marked "mu". The I/O thread alone registers, reads, writes
 * and closes the connections and alone publishes on shell.out; it reads a
 * connection without the lock, which is safe because only the worker frees
 * sessions, and only once the I/O thread released them (io_done), which it
 * does between two epoll_wait() calls, so no event in hand can name a freed
 * session. The worker alone makes the blocking Docker calls of a live
 * session (resizes, exit codes, kills), publishes shell.exit and frees.
 * The open handler frees only its own placeholder, never seen by the
 * threads. Handlers change fields under mu and wake the thread concerned.
 */
#include "svc-daemon/exec.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "shell.pb-c.h"
#include "svc-daemon/hijack.h"

#define EX_ID_MAX          129 /* a subject token + NUL */
#define EX_SUBJECT_MAX     320
#define EX_READ_MAX        (256u * 1024) /* per connection per turn */
#define EX_BUFFERED_MAX    (4u * 1024 * 1024) /* NATS bytes not yet sent */
#define EX_RETRY_MS        15  /* reading again after the bus held back */
#define EX_EVENTS          64
#define EX_WINDOW_MIN      (64u * 1024)
#define EX_WINDOW_LIMIT    (16u * 1024 * 1024)
#define EX_CREDIT_MAX      (1024ull * 1024 * 1024) /* grants add up to this */
#define EX_QUEUE_KEEP      (64u * 1024) /* an empty input queue larger: freed */
#define EX_ARGS_MAX        256
#define EX_ENV_MAX         128
#define EX_STRINGS_MAX     (64u * 1024) /* command and env, bytes in all */
#define EX_DIM_MAX         10000 /* columns or rows */
#define EX_END_POLL_MS     25   /* exit code: asking Docker again */
#define EX_END_WAIT_MS     2000 /* output ended, process still running */
#define EX_KILL_POLL_MS    50
#define EX_KILL_GRACE_MS   2000 /* SIGHUP, then SIGKILL */
#define EX_RESIZE_RETRY_MS 20
#define EX_RESIZE_TRY_MS   1000 /* a process not started yet: Docker says no */
#define EX_FREE_WAIT_MS    5000
#define EX_STOP_WAIT_MS    1500 /* a killed process: is its site stopping? */
#define EX_TICK_MAX_MS     1000 /* keepalive checks */
/* Output that flows without pause is gathered into larger messages: a
 * read that finds less than EX_GATHER_MIN within EX_GATHER_GAP_NS of the
 * previous one waits up to EX_GATHER_NS for more (EX_GATHER_TURN_NS per
 * turn in all). Typed commands and their echo never wait. */
#define EX_GATHER_MIN      (64u * 1024)
#define EX_GATHER_GAP_NS   2000000
#define EX_GATHER_NS       1000000
#define EX_GATHER_TURN_NS  2000000
#define EX_WORKDIR         "/data"
#define EX_TERM            "TERM=xterm-256color"
/* Docker reads a TTY session's input for a detach sequence (ctrl-p,ctrl-q
 * by default: a shell's history keys). Ours is one nobody types by chance;
 * its first byte waits for the next one before going through. */
#define EX_DETACH_KEYS "ctrl-],ctrl-],ctrl-],ctrl-]"

/* The login shell of an empty ShellOpen.command. */
static const char *const ex_login_shell[] = {
    "/bin/sh", "-c", "[ -x /bin/bash ] && exec /bin/bash -l; exec /bin/sh -l",
    NULL};

/* ------------------------------------------------------------ types */

enum ex_state {
    EX_OPENING, /* placeholder while shell.open runs; seen by no thread */
    EX_LIVE,    /* relaying */
    EX_ENDING,  /* output ended: the worker collects the exit code */
    EX_KILLING, /* ended from here: the worker kills the process */
};

/* Bytes for a process's stdin: a linear buffer, compacted when needed,
 * growing up to max (the input window). */
typedef struct ex_queue {
    char *data;
    size_t off;
    size_t len;
    size_t cap;
    size_t max;
} ex_queue;

typedef struct ex_session {
    char id[ID_UUID_LEN + 1];
    char site[EX_ID_MAX];
    char user[EX_ID_MAX];
    char container[DAEMON_DOCKER_NAME_MAX];
    char exec_id[DAEMON_DOCKER_ID_MAX];
    bool tty;

    /* mu */
    enum ex_state state;
    bool closing;     /* end it here: the I/O thread closes, worker kills */
    char reason[64];  /* of the ShellExit to come */
    uint64_t credit;  /* output bytes the shell can still take */
    ex_queue input;   /* for stdin, not yet written */
    uint64_t in_written; /* written to stdin, not yet granted back */
    bool in_eof;      /* stdin closes once input is written */
    uint64_t in_seq;  /* of the last ShellData from the shell */
    bool seq_warned;  /* a gap was logged (once per session) */
    int64_t heard_ms; /* when the shell last said something */
    bool resize_pending;
    unsigned cols, rows;
    int64_t resize_due;
    int64_t resize_until;
    bool io_done;      /* the I/O thread let go: the worker may free */
    int64_t due_ms;    /* the worker's next step of an end */
    int64_t phase_ms;  /* when that phase began */
    int kill_stage;    /* 0, 1 SIGHUP sent, 2 SIGKILL sent */
    char *early;       /* stream bytes that came with Docker's reply */
    size_t nearly;

    /* The I/O thread's own (and the open handler's before EX_LIVE). */
    int fd;
    uint32_t armed;   /* events in the epoll set; 0: not in it */
    bool rd_eof;      /* the output ended */
    bool wr_shut;     /* stdin closed */
    bool out_blocked; /* a write found the connection full */
    uint64_t out_seq;    /* of the last ShellData published */
    daemon_demux dm;
    int64_t read_ns;  /* when output was last read */
} ex_session;

/* Work the I/O thread found under the lock and does after it. */
typedef struct ex_action {
    ex_session *s;
    uint64_t grant; /* input window to give back; 0: early bytes */
} ex_action;

/* The bus has no unsubscribe: handlers get a gate, which
 * daemon_exec_free() closes and leaves behind (a few bytes per module). */
typedef struct ex_gate {
    pthread_rwlock_t lock;
    daemon_exec *x; /* NULL once freed */
    struct ex_gate *next;
} ex_gate;

static pthread_mutex_t ex_gates_mu = PTHREAD_MUTEX_INITIALIZER;
static ex_gate *ex_gates;

struct daemon_exec {
    bus *bus;
    daemon_docker *docker;
    char node[EX_ID_MAX];
    char *sock_path;
    int timeout_ms;
    size_t window;
    unsigned max_per_site;
    unsigned max_sessions;
    ex_gate *gate;

    pthread_mutex_t mu;
    pthread_cond_t work; /* the worker waits on it */
    ex_session **sessions; /* sorted by id */
    size_t nsessions;
    bool io_stop;
    bool worker_stop;

    /* The I/O thread's own. */
    pthread_t io;
    bool io_started;
    int epfd;
    int evfd;
    char *rbuf;  /* EX_READ_MAX */
    char *obuf;  /* EX_READ_MAX: output of one stream being coalesced */
    size_t olen;
    int ostream;
    uint64_t opay; /* payload bytes of the current read */
    ex_action *actions; /* max_sessions + 1 */
    int64_t next_tick;
    int64_t gather_ns; /* spent waiting for more output this turn */
    bool publish_failing;

    pthread_t worker;
    bool worker_started;
};

/* ------------------------------------------------------------ input queue */

static void ex_queue_free(ex_queue *q)
{
    free(q->data);
    q->data = NULL;
    q->off = q->len = q->cap = 0;
}

/* Appends n bytes. Returns 0, or BERTH_ETOOBIG past max, or BERTH_ENOMEM;
 * q is unchanged on failure. */
static int ex_queue_push(ex_queue *q, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > q->max - q->len)
        return BERTH_ETOOBIG;
    if (q->off + q->len + n > q->cap) {
        if (q->off > 0) {
            memmove(q->data, q->data + q->off, q->len);
            q->off = 0;
        }
        if (q->len + n > q->cap) {
            size_t cap = q->cap < 4096 ? 4096 : q->cap;
            char *d;

            while (cap < q->len + n)
                cap *= 2;
            if (cap > q->max)
                cap = q->max;
            d = realloc(q->data, cap);
            if (d == NULL)
                return BERTH_ENOMEM;
            q->data = d;
            q->cap = cap;
        }
    }
    memcpy(q->data + q->off + q->len, p, n);
    q->len += n;
    return 0;
}

static void ex_queue_drop(ex_queue *q, size_t n)
{
    q->off += n;
    q->len -= n;
    if (q->len == 0) {
        q->off = 0;
        if (q->cap > EX_QUEUE_KEEP)
            ex_queue_free(q);
    }
}

/* ------------------------------------------------------------ table */

/* Returns the index of id in the table, or -(insertion point) - 1. Under
 * mu. */
static long ex_index(daemon_exec *x, const char *id)
{
    size_t lo = 0, hi = x->nsessions;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(x->sessions[mid]->id, id);
        if (cmp == 0)
            return (long)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static ex_session *ex_find(daemon_exec *x, const char *id)
{
    long i = ex_index(x, id);

    return i >= 0 ? x->sessions[i] : NULL;
}

/* Inserts s unless its id is taken or a cap is reached. Under mu. */
static int ex_insert(daemon_exec *x, ex_session *s)
{
    long i = ex_index(x, s->id);
    unsigned same_site = 0;
    size_t j, at;

    if (i >= 0)
        return BERTH_EEXIST;
    if (x->nsessions >= x->max_sessions)
        return BERTH_ETOOBIG;
    for (j = 0; j < x->nsessions; j++)
        same_site += strcmp(x->sessions[j]->site, s->site) == 0;
    if (same_site >= x->max_per_site)
        return BERTH_ETOOBIG;
    at = (size_t)(-i - 1);
    memmove(x->sessions + at + 1, x->sessions + at,
            (x->nsessions - at) * sizeof(*x->sessions));
    x->sessions[at] = s;
    x->nsessions++;
    return 0;
}

static void ex_remove(daemon_exec *x, ex_session *s)
{
    long i = ex_index(x, s->id);

    if (i < 0 || x->sessions[i] != s)
        return;
    memmove(x->sessions + i, x->sessions + i + 1,
            (x->nsessions - (size_t)i - 1) * sizeof(*x->sessions));
    x->nsessions--;
}

static void ex_session_free(ex_session *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd);
    ex_queue_free(&s->input);
    free(s->early);
    free(s);
}

static void ex_wake(daemon_exec *x)
{
    uint64_t one = 1;

    if (write(x->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("exec wake failed", "error=%s", strerror(errno));
}

/* Asks for the end of a live session with reason. Under mu. Returns
 * whether it was live (and so is ending now). */
static bool ex_close(ex_session *s, const char *reason)
{
    if (s->closing || (s->state != EX_LIVE && s->state != EX_OPENING))
        return false;
    s->closing = true;
    if (s->reason[0] == '\0')
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
    return true;
}

/* ------------------------------------------------------------ publishing */

static void ex_subject(daemon_exec *x, char *dst, const char *verb,
                       const char *id)
{
    snprintf(dst, EX_SUBJECT_MAX, "shell.%s.%s.%s", verb, x->node, id);
}

/* Publishes one ShellData on the session's shell.out (I/O thread). */
static void ex_publish_out(daemon_exec *x, ex_session *s, const char *p,
                           size_t n, bool is_stderr, uint32_t window,
                           bool eof)
{
    Berth__V1__ShellData m = BERTH__V1__SHELL_DATA__INIT;
    char subject[EX_SUBJECT_MAX];
    int rc;

    ex_subject(x, subject, "out", s->id);
    m.session_id = s->id;
    m.seq = ++s->out_seq;
    m.data.data = (uint8_t *)p;
    m.data.len = n;
    m.stderr = is_stderr;
    m.window = window;
    m.eof = eof;
    rc = bus_publish(x->bus, subject, &m.base);
    if (rc != 0 && !x->publish_failing)
        log_warn("shell output not published", "session=%s seq=%llu error=%s",
                 s->id, (unsigned long long)m.seq, berth_strerror(rc));
    x->publish_failing = rc != 0;
}

static void ex_publish_exit(daemon_exec *x, ex_session *s, int code)
{
    Berth__V1__ShellExit m = BERTH__V1__SHELL_EXIT__INIT;
    char subject[EX_SUBJECT_MAX];
    int rc;

    ex_subject(x, subject, "exit", s->id);
    m.session_id = s->id;
    m.exit_code = code;
    m.reason = s->reason;
    rc = bus_publish(x->bus, subject, &m.base);
    if (rc != 0)
        log_warn("shell exit not published", "session=%s error=%s", s->id,
                 berth_strerror(rc));
}

/* ------------------------------------------------------------ I/O thread */

/* Whether the bus cannot take more now. */
static bool ex_held(daemon_exec *x)
{
    int buffered;

    if (!bus_connected(x->bus))
        return true;
    buffered = natsConnection_Buffered(bus_nats(x->bus));
    return buffered < 0 || (size_t)buffered > EX_BUFFERED_MAX;
}

/* Puts the session's connection in the epoll set for what it waits for
 * now: output while the shell has credit (and the bus takes more), room
 * for input that found the connection full. Under mu. */
static void ex_arm(daemon_exec *x, ex_session *s, bool held)
{
    uint32_t want = 0;
    struct epoll_event ev = {.data.ptr = s};
    int op, r;

    if (!s->rd_eof && s->credit > 0 && !held)
        want |= EPOLLIN;
    if (s->input.len > 0 && s->out_blocked)
        want |= EPOLLOUT;
    if (want == s->armed)
        return;
    ev.events = want;
    op = want == 0 ? EPOLL_CTL_DEL
                   : s->armed == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    r = epoll_ctl(x->epfd, op, s->fd, &ev);
    if (r != 0) {
        log_error("exec epoll failed", "session=%s error=%s", s->id,
                  strerror(errno));
        ex_close(s, "internal error");
        return;
    }
    s->armed = want;
}

/* Writes as much queued input as the connection takes, closes stdin after
 * the last byte when the shell sent eof, and returns the input window to
 * give back now (0: none yet). Under mu. */
static uint64_t ex_flush_input(daemon_exec *x, ex_session *s)
{
    uint64_t grant = 0;

    s->out_blocked = false;
    while (s->input.len > 0 && !s->wr_shut) {
        ssize_t n = send(s->fd, s->input.data + s->input.off, s->input.len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            ex_queue_drop(&s->input, (size_t)n);
            s->in_written += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s->out_blocked = true;
            break;
        }
        /* The process closed its stdin; the read side sees the end. */
        log_debug("shell input not written", "session=%s error=%s", s->id,
                  strerror(errno));
        ex_queue_free(&s->input);
        s->wr_shut = true;
    }
    /* Docker then closes the process's stdin. */
    if (s->in_eof && s->input.len == 0 && !s->wr_shut) {
        if (shutdown(s->fd, SHUT_WR) != 0)
            log_debug("shell stdin shutdown failed", "session=%s error=%s",
                      s->id, strerror(errno));
        s->wr_shut = true;
    }
    if (s->in_written >= x->window / 4) {
        grant = s->in_written;
        s->in_written = 0;
    }
    return grant;
}

/* Lets go of a session whose output ended or that is closed from here:
 * its connection leaves the epoll set and is closed, and the worker takes
 * over. Under mu. */
static void ex_release(daemon_exec *x, ex_session *s, int64_t now)
{
    if (s->armed != 0)
        epoll_ctl(x->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->armed = 0;
    close(s->fd);
    s->fd = -1;
    s->io_done = true;
    s->state = s->closing ? EX_KILLING : EX_ENDING;
    s->due_ms = now;
    s->phase_ms = now;
    s->kill_stage = 0;
}

/* The turn's bookkeeping under mu: keepalives, ends, input, epoll
 * interest. Fills x->actions (early bytes to publish, windows to grant)
 * and returns how many; *worker says whether the worker has work. */
static size_t ex_io_sync(daemon_exec *x, int64_t now, bool held, bool *worker)
{
    bool tick = now >= x->next_tick;
    size_t i, nact = 0;

    if (tick)
        x->next_tick = now + (x->timeout_ms / 4 < EX_TICK_MAX_MS
                                  ? x->timeout_ms / 4 + 1
                                  : EX_TICK_MAX_MS);
    for (i = 0; i < x->nsessions; i++) {
        ex_session *s = x->sessions[i];
        uint64_t grant;

        if (s->state != EX_LIVE || s->io_done)
            continue;
        if (tick && now - s->heard_ms > x->timeout_ms && ex_close(s, "shell gone"))
            log_info("shell session timed out", "session=%s site=%s idle_ms=%lld",
                     s->id, s->site, (long long)(now - s->heard_ms));
        if (s->closing || s->rd_eof) {
            ex_release(x, s, now);
            *worker = true;
            continue;
        }
        if (s->nearly > 0)
            x->actions[nact++] = (ex_action){.s = s};
        grant = ex_flush_input(x, s);
        if (grant > 0)
            x->actions[nact++] = (ex_action){.s = s, .grant = grant};
        ex_arm(x, s, held);
    }
    return nact;
}

/* Publishes what was coalesced in obuf. */
static void ex_out_flush(daemon_exec *x, ex_session *s)
{
    if (x->olen == 0)
        return;
    ex_publish_out(x, s, x->obuf, x->olen,
                   x->ostream == DAEMON_DEMUX_STDERR, 0, false);
    x->olen = 0;
}

typedef struct ex_emit_ctx {
    daemon_exec *x;
    ex_session *s;
} ex_emit_ctx;

/* Coalesces payload of one stream; a change of stream publishes first. */
static void ex_emit(void *arg, int stream, const char *p, size_t n)
{
    ex_emit_ctx *c = arg;
    daemon_exec *x = c->x;

    if (x->olen > 0 && x->ostream != stream)
        ex_out_flush(x, c->s);
    /* Payload never exceeds what was read, at most EX_READ_MAX. */
    memcpy(x->obuf + x->olen, p, n);
    x->olen += n;
    x->ostream = stream;
    x->opay += n;
}

/* Runs stream bytes through the session's demultiplexer to the bus and
 * takes their payload from the shell's credit. */
static void ex_feed(daemon_exec *x, ex_session *s, const char *p, size_t n)
{
    ex_emit_ctx c = {.x = x, .s = s};

    x->olen = 0;
    x->opay = 0;
    if (daemon_demux_feed(&s->dm, p, n, ex_emit, &c) != 0)
        log_warn("exec stream is not multiplexed; passing it on raw",
                 "session=%s", s->id);
    ex_out_flush(x, s);
    pthread_mutex_lock(&x->mu);
    s->credit = s->credit > x->opay ? s->credit - x->opay : 0;
    if (s->credit == 0 && !s->io_done)
        ex_arm(x, s, false);
    pthread_mutex_unlock(&x->mu);
}

/* Reads from s what is there, within the shell's credit and EX_READ_MAX
 * (waiting a little for more while output flows, see EX_GATHER_MIN): a
 * producer writing small pieces still gives large messages. The end of
 * the stream is published (eof) and left for the next turn to release. */
static void ex_read(daemon_exec *x, ex_session *s)
{
    int64_t now = clock_mono_ns();
    bool flowing = now - s->read_ns < EX_GATHER_GAP_NS;
    uint64_t credit;
    size_t want, got = 0;
    bool skip, end = false;
    int e = 0;

    pthread_mutex_lock(&x->mu);
    credit = s->credit;
    skip = s->closing || s->rd_eof || s->io_done;
    pthread_mutex_unlock(&x->mu);
    if (skip || credit == 0)
        return;
    want = credit < EX_READ_MAX ? (size_t)credit : EX_READ_MAX;
    while (got < want) {
        ssize_t n = read(s->fd, x->rbuf + got, want - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        e = n < 0 ? errno : 0;
        end = n == 0 || (e != EAGAIN && e != EWOULDBLOCK);
        if (!end && flowing && got < EX_GATHER_MIN && got < want &&
            x->gather_ns < EX_GATHER_TURN_NS) {
            struct pollfd p = {.fd = s->fd, .events = POLLIN};
            int64_t t0 = clock_mono_ns();
            int r = poll(&p, 1, EX_GATHER_NS / 1000000);

            x->gather_ns += clock_mono_ns() - t0;
            if (r > 0)
                continue;
        }
        break;
    }
    s->read_ns = clock_mono_ns();
    if (got > 0)
        ex_feed(x, s, x->rbuf, got);
    if (!end)
        return;
    if (e != 0)
        log_warn("exec read failed", "session=%s error=%s", s->id,
                 strerror(e));
    ex_publish_out(x, s, NULL, 0, false, 0, true);
    pthread_mutex_lock(&x->mu);
    s->rd_eof = true;
    pthread_mutex_unlock(&x->mu);
}

static void *ex_io_main(void *arg)
{
    daemon_exec *x = arg;
    struct epoll_event evs[EX_EVENTS];

    for (;;) {
        bool held = ex_held(x), worker = false;
        int64_t now = clock_mono_ms();
        size_t i, nact;
        int n, timeout;

        pthread_mutex_lock(&x->mu);
        if (x->io_stop) {
            pthread_mutex_unlock(&x->mu);
            break;
        }
        nact = ex_io_sync(x, now, held, &worker);
        if (worker)
            pthread_cond_signal(&x->work);
        pthread_mutex_unlock(&x->mu);

        for (i = 0; i < nact; i++) {
            ex_action *a = &x->actions[i];

            if (a->grant > 0) {
                ex_publish_out(x, a->s, NULL, 0, false,
                               a->grant > UINT32_MAX ? UINT32_MAX
                                                     : (uint32_t)a->grant,
                               false);
                continue;
            }
            /* Early bytes: published once, before anything read. */
            ex_feed(x, a->s, a->s->early, a->s->nearly);
            pthread_mutex_lock(&x->mu);
            free(a->s->early);
            a->s->early = NULL;
            a->s->nearly = 0;
            pthread_mutex_unlock(&x->mu);
        }

        timeout = (int)(x->next_tick - clock_mono_ms());
        if (timeout < 0)
            timeout = 0;
        if (held && timeout > EX_RETRY_MS)
            timeout = EX_RETRY_MS;
        n = epoll_wait(x->epfd, evs, EX_EVENTS, timeout);
        x->gather_ns = 0;
        if (n < 0 && errno != EINTR) {
            log_error("exec epoll failed", "error=%s", strerror(errno));
            clock_sleep_ms(100);
            continue;
        }
        for (i = 0; n > 0 && i < (size_t)n; i++) {
            ex_session *s = evs[i].data.ptr;

            if (s == NULL) {
                uint64_t v;
                if (read(x->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    log_error("exec wake read failed", "error=%s",
                              strerror(errno));
                continue;
            }
            /* EPOLLOUT: the next turn writes the input. */
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                ex_read(x, s);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ worker */

/* Signals the exec's process (pid on the host) after checking that it is
 * still in the container's pid namespace (that of its init, init_pid): a
 * pid reused by another process since is left alone. A process that leads
 * its process group (a TTY's shell) is signalled with its group. Returns 0
 * or a berth code. */
static int ex_signal(int pid, int init_pid, int sig)
{
    char path[64], ns[64], init_ns[64], stat[512];
    const char *p;
    ssize_t n;
    FILE *f;
    int pgrp = 0;

    if (pid <= 1 || init_pid <= 1 || pid == init_pid)
        return BERTH_EINVAL;
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
    n = readlink(path, ns, sizeof(ns) - 1);
    if (n <= 0)
        return BERTH_ENOENT;
    ns[n] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", init_pid);
    n = readlink(path, init_ns, sizeof(init_ns) - 1);
    if (n <= 0)
        return BERTH_ENOENT;
    init_ns[n] = '\0';
    if (strcmp(ns, init_ns) != 0)
        return BERTH_EPERM;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "re");
    if (f != NULL) {
        if (fgets(stat, sizeof(stat), f) != NULL) {
            /* "pid (comm) state ppid pgrp ...": comm may hold anything. */
            p = strrchr(stat, ')');
            if (p == NULL || sscanf(p + 1, " %*c %*d %d", &pgrp) != 1)
                pgrp = 0;
        }
        fclose(f);
    }
    if (kill(pgrp == pid ? -pid : pid, sig) != 0)
        return berth_err_from_errno(errno);
    return 0;
}

/* Publishes the session's ShellExit and frees it. The reason says so
 * when the container stopped or went away meanwhile. A process killed
 * (137, or 126 or unknown: Docker's code for an exec whose stream broke)
 * may be one whose container is stopping: its init went first and the
 * kernel killed the rest, and Docker reports the container's end a moment
 * later, so it is waited for a while. */
static void ex_finish(daemon_exec *x, ex_session *s, int code)
{
    bool killed = code == 128 + SIGKILL || code == 126 || code < 0;
    int64_t until = clock_mono_ms() + (killed ? EX_STOP_WAIT_MS : 0);
    daemon_docker_state st;

    while (s->reason[0] == '\0') {
        int rc = daemon_docker_container_inspect(x->docker, s->container, &st,
                                                 NULL);
        if (rc == BERTH_ENOENT)
            snprintf(s->reason, sizeof(s->reason), "site deleted");
        else if (rc == 0 && !st.running)
            snprintf(s->reason, sizeof(s->reason), "site stopped");
        else if (rc != 0 || clock_mono_ms() >= until)
            break;
        else
            clock_sleep_ms(EX_END_POLL_MS * 2);
    }
    ex_publish_exit(x, s, code);
    log_info("shell session ended",
             "session=%s site=%s user=%s exit_code=%d reason=%s", s->id,
             s->site, s->user, code, s->reason);
    pthread_mutex_lock(&x->mu);
    ex_remove(x, s);
    pthread_mutex_unlock(&x->mu);
    ex_session_free(s);
}

/* One step of a session's end (state and kill_stage copied under mu).
 * Sets the next step's time, or finishes. */
static void ex_end_step(daemon_exec *x, ex_session *s, enum ex_state state,
                        int kill_stage, int64_t phase_ms)
{
    daemon_docker_exec_state es;
    daemon_docker_state cs;
    daemon_docker_err err;
    int64_t now;
    int rc, sig;

    rc = daemon_docker_exec_inspect(x->docker, s->exec_id, &es, &err);
    now = clock_mono_ms();
    /* Docker starts the process after answering the start: an exec that
     * is not running yet, or running without a pid yet, is asked again. */
    if (rc == 0 && es.pid <= 0 && (es.running || es.exit_code < 0) &&
        now - phase_ms < EX_END_WAIT_MS) {
        pthread_mutex_lock(&x->mu);
        s->due_ms = now + EX_END_POLL_MS;
        pthread_mutex_unlock(&x->mu);
        return;
    }
    if (rc != 0 || !es.running) {
        if (rc != 0 && rc != BERTH_ENOENT)
            log_warn("shell exit code unknown", "session=%s error=%s",
                     s->id, err.message);
        ex_finish(x, s, rc == 0 ? es.exit_code : -1);
        return;
    }
    pthread_mutex_lock(&x->mu);
    if (state == EX_ENDING) {
        if (now - phase_ms < EX_END_WAIT_MS) {
            s->due_ms = now + EX_END_POLL_MS;
        } else {
            /* Docker ended the stream of a process that runs on (a
             * detach): it must not outlive its session. */
            s->state = EX_KILLING;
            s->due_ms = now;
            s->phase_ms = now;
        }
        pthread_mutex_unlock(&x->mu);
        return;
    }
    pthread_mutex_unlock(&x->mu);
    if (kill_stage == 2 && now - phase_ms >= EX_KILL_GRACE_MS) {
        log_error("shell process survives SIGKILL", "session=%s pid=%d",
                  s->id, es.pid);
        ex_finish(x, s, -1);
        return;
    }
    if (kill_stage == 0 || (kill_stage == 1 && now - phase_ms >= EX_KILL_GRACE_MS)) {
        sig = kill_stage == 0 ? SIGHUP : SIGKILL;
        rc = daemon_docker_container_inspect(x->docker, es.container_id, &cs,
                                             &err);
        if (rc == 0)
            rc = ex_signal(es.pid, cs.pid, sig);
        if (rc != 0) {
            log_warn("shell process not killed", "session=%s pid=%d error=%s",
                     s->id, es.pid, berth_strerror(rc));
            ex_finish(x, s, -1);
            return;
        }
        log_debug("shell process signalled", "session=%s pid=%d signal=%d",
                  s->id, es.pid, sig);
        kill_stage++;
        phase_ms = now;
    }
    pthread_mutex_lock(&x->mu);
    s->kill_stage = kill_stage;
    s->phase_ms = phase_ms;
    s->due_ms = now + EX_KILL_POLL_MS;
    pthread_mutex_unlock(&x->mu);
}

/* Resizes a TTY session's terminal; a process not started yet is tried
 * again for a while. */
static void ex_resize_step(daemon_exec *x, ex_session *s, unsigned cols,
                           unsigned rows)
{
    daemon_docker_err err;
    int64_t now;
    int rc;

    rc = daemon_docker_exec_resize(x->docker, s->exec_id, cols, rows, &err);
    now = clock_mono_ms();
    pthread_mutex_lock(&x->mu);
    if (rc == 0 || now >= s->resize_until) {
        if (rc != 0)
            log_debug("shell resize failed", "session=%s error=%s", s->id,
                      err.message);
        if (s->cols == cols && s->rows == rows)
            s->resize_pending = false;
    } else {
        s->resize_due = now + EX_RESIZE_RETRY_MS;
    }
    pthread_mutex_unlock(&x->mu);
}

/* Returns a session with work due and what to do, or NULL with the
 * milliseconds until the next due work in *wait (-1: none). Under mu. */
static ex_session *ex_next_work(daemon_exec *x, int64_t now, int64_t *wait)
{
    int64_t next = -1;
    size_t i;

    for (i = 0; i < x->nsessions; i++) {
        ex_session *s = x->sessions[i];
        int64_t due;

        if (s->state == EX_LIVE && s->resize_pending && !s->closing)
            due = s->resize_due;
        else if ((s->state == EX_ENDING || s->state == EX_KILLING) &&
                 s->io_done)
            due = s->due_ms;
        else
            continue;
        if (due <= now)
            return s;
        if (next < 0 || due - now < next)
            next = due - now;
    }
    *wait = next;
    return NULL;
}

static void *ex_worker_main(void *arg)
{
    daemon_exec *x = arg;

    pthread_mutex_lock(&x->mu);
    while (!x->worker_stop) {
        int64_t wait = -1;
        ex_session *s = ex_next_work(x, clock_mono_ms(), &wait);
        enum ex_state state;
        unsigned cols, rows;
        int kill_stage;
        int64_t phase;

        if (s == NULL) {
            if (wait < 0) {
                pthread_cond_wait(&x->work, &x->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += wait / 1000;
                ts.tv_nsec += (wait % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&x->work, &x->mu, &ts);
            }
            continue;
        }
        state = s->state;
        cols = s->cols;
        rows = s->rows;
        kill_stage = s->kill_stage;
        phase = s->phase_ms;
        pthread_mutex_unlock(&x->mu);
        /* Only this thread frees sessions: s stays valid unlocked. */
        if (state == EX_LIVE)
            ex_resize_step(x, s, cols, rows);
        else
            ex_end_step(x, s, state, kill_stage, phase);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* ------------------------------------------------------------ opening */

/* Whether s names an environment variable: [A-Za-z_][A-Za-z0-9_]*. */
static bool ex_env_name(const char *s)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return i <= 256;
}

/* Checks a ShellOpen. Returns 0, or BERTH_EINVAL with a sentence in why. */
static int ex_validate(const Berth__V1__ShellOpen *req, char *why,
                       size_t whylen)
{
    size_t i, total = 0;

    if (!id_uuid_valid(req->session_id)) {
        snprintf(why, whylen, "session_id must be a UUID");
        return BERTH_EINVAL;
    }
    if (!bus_token_valid(req->site_id)) {
        snprintf(why, whylen, "site_id is not a valid id");
        return BERTH_EINVAL;
    }
    if (req->cols > EX_DIM_MAX || req->rows > EX_DIM_MAX) {
        snprintf(why, whylen, "cols and rows must be at most %d", EX_DIM_MAX);
        return BERTH_EINVAL;
    }
    if (req->n_command > EX_ARGS_MAX || req->n_env > EX_ENV_MAX) {
        snprintf(why, whylen, "at most %d command words and %d variables",
                 EX_ARGS_MAX, EX_ENV_MAX);
        return BERTH_EINVAL;
    }
    if (req->n_command > 0 && req->command[0][0] == '\0') {
        snprintf(why, whylen, "the command's first word is empty");
        return BERTH_EINVAL;
    }
    for (i = 0; i < req->n_command; i++)
        total += strlen(req->command[i]) + 1;
    for (i = 0; i < req->n_env; i++) {
        if (!ex_env_name(req->env[i]->key)) {
            snprintf(why, whylen, "env name %.64s is not a variable name",
                     req->env[i]->key);
            return BERTH_EINVAL;
        }
        total += strlen(req->env[i]->key) + strlen(req->env[i]->value) + 2;
    }
    if (total > EX_STRINGS_MAX) {
        snprintf(why, whylen, "command and env larger than %u bytes",
                 EX_STRINGS_MAX);
        return BERTH_EINVAL;
    }
    return 0;
}

/* Creates and starts the exec of s (EX_OPENING, in the table) as req asks.
 * Returns 0 with s->fd, s->exec_id and early bytes set, or a berth code
 * with a sentence in why. Blocks on Docker. */
static int ex_start(daemon_exec *x, ex_session *s,
                    const Berth__V1__ShellOpen *req, char *why, size_t whylen)
{
    const char **env = NULL, **argv = NULL;
    char **kv = NULL;
    char early[DAEMON_HIJACK_HDR_MAX], path[256], api[16], hwhy[384];
    daemon_docker_state st;
    daemon_docker_err err = {0};
    size_t i, nenv = 0, nearly = 0;
    int rc;

    rc = daemon_docker_container_inspect(x->docker, s->container, &st, &err);
    if (rc == BERTH_ENOENT || (rc == 0 && strcmp(st.site, s->site) != 0)) {
        snprintf(why, whylen, "site %s is not on this node", s->site);
        rc = BERTH_ENOENT;
        goto out;
    }
    if (rc != 0) {
        snprintf(why, whylen, "%s", err.message);
        goto out;
    }
    if (!st.running) {
        snprintf(why, whylen, "site is not running");
        rc = BERTH_ECONFLICT;
        goto out;
    }

    /* protobuf-c's repeated fields are counted, not NULL-terminated. */
    argv = calloc(req->n_command + 1, sizeof(*argv));
    env = calloc(req->n_env + 2, sizeof(*env));
    kv = calloc(req->n_env + 1, sizeof(*kv));
    if (argv == NULL || env == NULL || kv == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (i = 0; i < req->n_command; i++)
        argv[i] = req->command[i];
    /* Docker keeps the first of two equal names: the request's TERM wins
     * by leaving ours out. */
    for (i = 0; i < req->n_env && strcmp(req->env[i]->key, "TERM") != 0; i++)
        ;
    if (req->tty && i == req->n_env)
        env[nenv++] = EX_TERM;
    for (i = 0; i < req->n_env; i++) {
        if (asprintf(&kv[i], "%s=%s", req->env[i]->key, req->env[i]->value) <
            0) {
            kv[i] = NULL;
            rc = BERTH_ENOMEM;
            goto out;
        }
        env[nenv++] = kv[i];
    }
    rc = daemon_docker_exec_create(
        x->docker, st.id,
        &(daemon_docker_exec_spec){
            .cmd = req->n_command > 0 ? argv : ex_login_shell,
            .env = env,
            .working_dir = EX_WORKDIR,
            .detach_keys = req->tty ? EX_DETACH_KEYS : NULL,
            .tty = req->tty,
            .attach_stdin = true,
        },
        s->exec_id, &err);
    if (rc == BERTH_ECONFLICT) {
        snprintf(why, whylen, "site is not running");
        goto out;
    }
    if (rc == BERTH_ENOENT) {
        snprintf(why, whylen, "site %s is not on this node", s->site);
        goto out;
    }
    if (rc != 0) {
        snprintf(why, whylen, "%s", err.message);
        goto out;
    }
    rc = daemon_docker_api_version(x->docker, api, &err);
    if (rc != 0) {
        snprintf(why, whylen, "%s", err.message);
        goto out;
    }
    snprintf(path, sizeof(path), "/v%s/exec/%s/start", api, s->exec_id);
    rc = daemon_hijack_dial(
        &(daemon_hijack_req){.sock_path = x->sock_path,
                             .path = path,
                             .body = req->tty ? "{\"Detach\":false,\"Tty\":true}"
                                              : "{\"Detach\":false,\"Tty\":false}"},
        &s->fd, early, &nearly, hwhy, sizeof(hwhy));
    if (rc != 0) {
        snprintf(why, whylen, "exec start: %s", hwhy);
        goto out;
    }
    if (nearly > 0) {
        s->early = malloc(nearly);
        if (s->early == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        memcpy(s->early, early, nearly);
        s->nearly = nearly;
    }
out:
    if (kv != NULL) {
        for (i = 0; i < req->n_env; i++)
            free(kv[i]);
    }
    free(kv);
    free(env);
    free(argv);
    return rc;
}

static int ex_open(daemon_exec *x, bus_msg *m)
{
    const Berth__V1__ShellOpen *req = (const void *)m->msg;
    Berth__V1__ShellOpened rep = BERTH__V1__SHELL_OPENED__INIT;
    ex_session *s = NULL;
    char why[512];
    bool listed = false;
    int64_t now;
    int rc;

    rc = ex_validate(req, why, sizeof(why));
    if (rc != 0)
        goto out;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = BERTH_ENOMEM;
        snprintf(why, sizeof(why), "out of memory");
        goto out;
    }
    s->fd = -1;
    snprintf(s->id, sizeof(s->id), "%s", req->session_id);
    snprintf(s->site, sizeof(s->site), "%s", req->site_id);
    snprintf(s->user, sizeof(s->user), "%s", req->user_id);
    s->tty = req->tty;
    s->dm.raw = req->tty;
    s->input.max = x->window;
    s->state = EX_OPENING;
    if (strlen(s->site) + 7 > sizeof(s->container) - 1) {
        snprintf(why, sizeof(why), "site %s is not on this node", s->site);
        rc = BERTH_ENOENT;
        goto out;
    }
    snprintf(s->container, sizeof(s->container), "berth-%s", s->site);
    if (!daemon_hijack_valid_ref(s->container)) {
        snprintf(why, sizeof(why), "site %s is not on this node", s->site);
        rc = BERTH_ENOENT;
        goto out;
    }

    pthread_mutex_lock(&x->mu);
    rc = ex_insert(x, s);
    pthread_mutex_unlock(&x->mu);
    if (rc == BERTH_EEXIST) {
        snprintf(why, sizeof(why), "session %s exists", s->id);
        goto out;
    }
    if (rc == BERTH_ETOOBIG) {
        snprintf(why, sizeof(why),
                 "too many shell sessions (%u per site, %u in all)",
                 x->max_per_site, x->max_sessions);
        goto out;
    }
    listed = true;

    rc = ex_start(x, s, req, why, sizeof(why));
    if (rc != 0)
        goto out;

    now = clock_mono_ms();
    pthread_mutex_lock(&x->mu);
    s->state = EX_LIVE;
    s->heard_ms = now;
    s->credit = x->window;
    if (s->tty && req->cols > 0 && req->rows > 0) {
        s->cols = req->cols;
        s->rows = req->rows;
        s->resize_pending = true;
        s->resize_due = now;
        s->resize_until = now + EX_RESIZE_TRY_MS;
        pthread_cond_signal(&x->work);
    }
    pthread_mutex_unlock(&x->mu);
    s = NULL; /* the threads own it now */
    ex_wake(x);
    log_info("shell session opened",
             "session=%s site=%s user=%s tty=%d command=%s", req->session_id,
             req->site_id, req->user_id, (int)req->tty,
             req->n_command > 0 ? req->command[0] : "(login shell)");
    rep.session_id = req->session_id;
    rc = bus_reply(m, &rep.base);
    if (rc != 0)
        log_warn("shell open reply failed", "session=%s error=%s",
                 req->session_id, berth_strerror(rc));
    return 0;
out:
    if (listed) {
        pthread_mutex_lock(&x->mu);
        ex_remove(x, s);
        pthread_mutex_unlock(&x->mu);
    }
    ex_session_free(s);
    log_info("shell session refused", "session=%s site=%s error=%s detail=%s",
             req->session_id, req->site_id, berth_errname(rc), why);
    bus_reply_error(m, rc, "%s", why);
    return rc;
}

/* ------------------------------------------------------------ bus side */

/* The session a stream message is about, by its subject's last token
 * (and its session_id when set). Returns it under mu, or NULL unlocked
 * when the session is unknown or not live (or opening, when opening is
 * true): such messages are ignored (the daemon hears its own ShellExit
 * too). */
static ex_session *ex_lookup(daemon_exec *x, bus_msg *m, const char *field,
                             bool opening)
{
    char id[EX_ID_MAX];
    ex_session *s;

    if (bus_subject_token(m->subject, 3, id, sizeof(id)) != 0)
        return NULL;
    if (field != NULL && field[0] != '\0' && strcmp(field, id) != 0) {
        log_warn("shell message for another session ignored",
                 "subject=%s session_id=%s", m->subject, field);
        return NULL;
    }
    pthread_mutex_lock(&x->mu);
    s = ex_find(x, id);
    if (s == NULL || s->closing ||
        (s->state != EX_LIVE && !(opening && s->state == EX_OPENING))) {
        pthread_mutex_unlock(&x->mu);
        log_debug("shell message for no live session", "subject=%s",
                  m->subject);
        return NULL;
    }
    return s;
}

static int ex_on_in(bus_msg *m, void *ud)
{
    ex_gate *g = ud;
    const Berth__V1__ShellData *in = (const void *)m->msg;
    daemon_exec *x;
    ex_session *s;
    bool wake = false;
    int rc = 0;

    pthread_rwlock_rdlock(&g->lock);
    x = g->x;
    s = x != NULL ? ex_lookup(x, m, in->session_id, false) : NULL;
    if (s == NULL)
        goto out;
    s->heard_ms = clock_mono_ms();
    if (in->seq != 0) {
        if (s->in_seq != 0 && in->seq != s->in_seq + 1 && !s->seq_warned) {
            s->seq_warned = true;
            log_warn("shell input out of sequence", "session=%s seq=%llu "
                     "expected=%llu", s->id, (unsigned long long)in->seq,
                     (unsigned long long)s->in_seq + 1);
        }
        s->in_seq = in->seq;
    }
    if (in->window > 0) {
        wake = s->credit == 0;
        s->credit += in->window;
        if (s->credit > EX_CREDIT_MAX)
            s->credit = EX_CREDIT_MAX;
    }
    if (in->data.len > 0 && !s->in_eof) {
        /* What the shell sent and was not given back, queued or written,
         * may not pass the window. */
        rc = in->data.len > x->window - s->input.len - s->in_written
                 ? BERTH_ETOOBIG
                 : ex_queue_push(&s->input, in->data.data, in->data.len);
        if (rc == BERTH_ETOOBIG) {
            log_warn("shell input beyond the window; ending the session",
                     "session=%s queued=%zu len=%zu window=%zu", s->id,
                     s->input.len, in->data.len, x->window);
            ex_close(s, "input beyond the window");
        } else if (rc != 0) {
            ex_close(s, "out of memory");
        }
        wake = true;
    }
    /* A terminal has no end of input (^D is a byte): eof is ignored. */
    if (in->eof && !s->in_eof && !s->tty) {
        s->in_eof = true;
        wake = true;
    }
    pthread_mutex_unlock(&x->mu);
    if (wake)
        ex_wake(x);
out:
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

static int ex_on_resize(bus_msg *m, void *ud)
{
    ex_gate *g = ud;
    const Berth__V1__ShellResize *r = (const void *)m->msg;
    daemon_exec *x;
    ex_session *s;
    int rc = 0;

    pthread_rwlock_rdlock(&g->lock);
    x = g->x;
    s = x != NULL ? ex_lookup(x, m, r->session_id, false) : NULL;
    if (s == NULL)
        goto out;
    s->heard_ms = clock_mono_ms();
    if (!s->tty || r->cols == 0 || r->rows == 0 || r->cols > EX_DIM_MAX ||
        r->rows > EX_DIM_MAX) {
        rc = BERTH_EINVAL;
    } else {
        s->cols = r->cols;
        s->rows = r->rows;
        s->resize_pending = true;
        s->resize_due = s->heard_ms;
        s->resize_until = s->heard_ms + EX_RESIZE_TRY_MS;
        pthread_cond_signal(&x->work);
    }
    pthread_mutex_unlock(&x->mu);
out:
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

static int ex_on_exit(bus_msg *m, void *ud)
{
    ex_gate *g = ud;
    const Berth__V1__ShellExit *e = (const void *)m->msg;
    daemon_exec *x;
    ex_session *s;

    pthread_rwlock_rdlock(&g->lock);
    x = g->x;
    /* A session still opening ends as soon as it is open. */
    s = x != NULL ? ex_lookup(x, m, e->session_id, true) : NULL;
    if (s != NULL) {
        log_info("shell session terminated by the shell", "session=%s",
                 s->id);
        ex_close(s, "terminated");
        pthread_mutex_unlock(&x->mu);
        ex_wake(x);
    }
    pthread_rwlock_unlock(&g->lock);
    return 0;
}

static int ex_on_open(bus_msg *m, void *ud)
{
    ex_gate *g = ud;
    int rc;

    pthread_rwlock_rdlock(&g->lock);
    if (g->x == NULL) {
        bus_reply_error(m, BERTH_EUNAVAIL, "shell sessions are stopping");
        rc = BERTH_EUNAVAIL;
    } else {
        rc = ex_open(g->x, m);
    }
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

/* ------------------------------------------------------------ public */

int daemon_exec_new(const daemon_exec_cfg *cfg, daemon_exec **out)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    pthread_condattr_t ca;
    daemon_exec *x = NULL;
    char filter[EX_SUBJECT_MAX];
    ex_gate *g;
    int rc;

    *out = NULL;
    if (cfg == NULL || cfg->bus == NULL || cfg->docker == NULL ||
        !bus_token_valid(cfg->node_id))
        return BERTH_EINVAL;
    x = calloc(1, sizeof(*x));
    if (x == NULL)
        return BERTH_ENOMEM;
    x->epfd = x->evfd = -1;
    pthread_mutex_init(&x->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->work, &ca);
    pthread_condattr_destroy(&ca);
    x->bus = cfg->bus;
    x->docker = cfg->docker;
    snprintf(x->node, sizeof(x->node), "%s", cfg->node_id);
    x->timeout_ms = cfg->session_timeout_ms > 0 ? cfg->session_timeout_ms
                                                : DAEMON_EXEC_TIMEOUT_DEFAULT;
    x->window = cfg->window > 0 ? cfg->window : DAEMON_EXEC_WINDOW_DEFAULT;
    if (x->window < EX_WINDOW_MIN)
        x->window = EX_WINDOW_MIN;
    if (x->window > EX_WINDOW_LIMIT)
        x->window = EX_WINDOW_LIMIT;
    x->max_per_site =
        cfg->max_per_site > 0 ? cfg->max_per_site : DAEMON_EXEC_PER_SITE_DEFAULT;
    x->max_sessions =
        cfg->max_sessions > 0 ? cfg->max_sessions : DAEMON_EXEC_TOTAL_DEFAULT;
    x->sock_path = strdup(cfg->sock_path != NULL ? cfg->sock_path
                                                 : DAEMON_DOCKER_SOCK_DEFAULT);
    x->sessions = calloc(x->max_sessions, sizeof(*x->sessions));
    /* Per session and turn: early bytes and a grant at most. */
    x->actions = calloc(2 * (size_t)x->max_sessions, sizeof(*x->actions));
    x->rbuf = malloc(EX_READ_MAX);
    x->obuf = malloc(EX_READ_MAX);
    if (x->sock_path == NULL || x->sessions == NULL || x->actions == NULL ||
        x->rbuf == NULL || x->obuf == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    x->epfd = epoll_create1(EPOLL_CLOEXEC);
    x->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (x->epfd < 0 || x->evfd < 0 ||
        epoll_ctl(x->epfd, EPOLL_CTL_ADD, x->evfd, &ev) != 0) {
        rc = berth_err_from_errno(errno);
        goto out;
    }

    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    pthread_rwlock_init(&g->lock, NULL);
    g->x = x;
    x->gate = g;
    pthread_mutex_lock(&ex_gates_mu);
    g->next = ex_gates;
    ex_gates = g;
    pthread_mutex_unlock(&ex_gates_mu);

    if (pthread_create(&x->io, NULL, ex_io_main, x) != 0) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    x->io_started = true;
    if (pthread_create(&x->worker, NULL, ex_worker_main, x) != 0) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    x->worker_started = true;
    snprintf(filter, sizeof(filter), "shell.in.%s.*", x->node);
    rc = bus_subscribe(x->bus, filter, NULL, ex_on_in, g);
    if (rc != 0)
        goto out;
    snprintf(filter, sizeof(filter), "shell.resize.%s.*", x->node);
    rc = bus_subscribe(x->bus, filter, NULL, ex_on_resize, g);
    if (rc != 0)
        goto out;
    snprintf(filter, sizeof(filter), "shell.exit.%s.*", x->node);
    rc = bus_subscribe(x->bus, filter, NULL, ex_on_exit, g);
    if (rc != 0)
        goto out;
    snprintf(filter, sizeof(filter), "shell.open.%s", x->node);
    rc = bus_serve(x->bus, "shell-open", filter, ex_on_open, g);
    if (rc != 0)
        goto out;
    *out = x;
    x = NULL;
out:
    daemon_exec_free(x);
    return rc;
}

void daemon_exec_free(daemon_exec *x)
{
    int64_t deadline = clock_mono_ms() + EX_FREE_WAIT_MS;
    size_t i, left;

    if (x == NULL)
        return;
    /* No handler runs past this point; the open in progress finished. */
    if (x->gate != NULL) {
        pthread_rwlock_wrlock(&x->gate->lock);
        x->gate->x = NULL;
        pthread_rwlock_unlock(&x->gate->lock);
    }
    if (x->io_started && x->worker_started) {
        pthread_mutex_lock(&x->mu);
        for (i = 0; i < x->nsessions; i++)
            ex_close(x->sessions[i], "daemon stopping");
        left = x->nsessions;
        pthread_mutex_unlock(&x->mu);
        if (left > 0)
            log_info("ending shell sessions", "sessions=%zu", left);
        ex_wake(x);
        while (daemon_exec_count(x) > 0 && clock_mono_ms() < deadline)
            clock_sleep_ms(10);
    }
    if (x->io_started) {
        pthread_mutex_lock(&x->mu);
        x->io_stop = true;
        pthread_mutex_unlock(&x->mu);
        ex_wake(x);
        pthread_join(x->io, NULL);
    }
    if (x->worker_started) {
        pthread_mutex_lock(&x->mu);
        x->worker_stop = true;
        pthread_cond_signal(&x->work);
        pthread_mutex_unlock(&x->mu);
        pthread_join(x->worker, NULL);
    }
    for (i = 0; i < x->nsessions; i++)
        ex_session_free(x->sessions[i]);
    free(x->sessions);
    free(x->actions);
    free(x->rbuf);
    free(x->obuf);
    free(x->sock_path);
    if (x->epfd >= 0)
        close(x->epfd);
    if (x->evfd >= 0)
        close(x->evfd);
    pthread_cond_destroy(&x->work);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

unsigned daemon_exec_count(daemon_exec *x)
{
    unsigned n;

    pthread_mutex_lock(&x->mu);
    n = (unsigned)x->nsessions;
    pthread_mutex_unlock(&x->mu);
    return n;
}
