/* console.c - the sites' consoles: Docker attach streams to the bus, bus
 * input to the containers, a replay ring per site (see console.h).
 *
 *   console.out.<node>.<site>     ConsoleChunk (stream, published here)
 *   console.in.<node>.<site>      ConsoleInput (stream, subscribed)
 *   console.replay.<node>.<site>  ConsoleReplayRequest -> ConsoleReplay
 *
 * Ownership. One mutex (mu) guards the site table and everything in it.
 * The console thread alone reads, writes, registers and closes the attach
 * connections and alone publishes; other threads only change state under
 * mu and wake it through an eventfd. Sites are freed under mu by whoever
 * forgets them, so the thread never keeps a site pointer across an unlock;
 * connections are freed by the thread only, so it may read one unlocked.
 */
#include "svc-daemon/console.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "console.pb-c.h"
#include "svc-daemon/docker.h"
#include "svc-daemon/hijack.h"

#define CON_STDOUT BERTH__V1__CONSOLE_STREAM__CONSOLE_STREAM_STDOUT
#define CON_STDERR BERTH__V1__CONSOLE_STREAM__CONSOLE_STREAM_STDERR
#define CON_SYSTEM BERTH__V1__CONSOLE_STREAM__CONSOLE_STREAM_SYSTEM

#define CON_ID_MAX          129  /* a subject token (bus_token_valid) + NUL */
#define CON_SUBJECT_MAX     320
#define CON_DRAIN_MS        2000 /* attach waits for an ending stream */
#define CON_READ_MAX        (64u * 1024) /* per connection per turn */
#define CON_RETRY_MS        15   /* publishing again after a hold-back */
#define CON_BUDGET          256  /* chunks per turn before reading again */
#define CON_EVENTS          64
#define CON_NOTICE_MAX      1024
#define CON_FIFO_MIN        4096 /* first allocation of a byte queue */
#define CON_FIFO_KEEP       (64u * 1024) /* larger and empty: freed */
#define CON_RUNS_MAX        1024 /* stream changes kept in one backlog */
#define CON_SITES_MAX       65536
#define CON_LOG_EVERY_MS    10000 /* refused input, per site */

#define CON_BUFFERED_DEFAULT (4u * 1024 * 1024)
#define CON_INPUT_DEFAULT    (64u * 1024)
#define CON_RING_LIMIT       (64u * 1024 * 1024)
#define CON_CHUNK_LIMIT      (BUS_PAYLOAD_MAX / 2)
#define CON_BACKLOG_LIMIT    (1024u * 1024 * 1024)
#define CON_INPUT_LIMIT      (16u * 1024 * 1024)

/* ------------------------------------------------------------ types */

/* A circular byte queue that grows on demand up to max. */
typedef struct con_fifo {
    char *data;  /* NULL until the first byte */
    size_t cap;  /* allocated */
    size_t max;  /* cap never passes it */
    size_t head; /* index of the oldest byte */
    size_t len;
} con_fifo;

/* A stretch of backlog bytes from one stream. Neighbours always differ in
 * stream, so a chunk taken from the first run is as large as it can be. */
typedef struct con_run {
    uint32_t len;
    uint8_t stream;
} con_run;

/* Output read and not yet published: bytes plus the runs that say which
 * stream each byte came from. */
typedef struct con_backlog {
    con_fifo bytes;
    con_run *runs;
    size_t runs_cap;
    size_t runs_head;
    size_t runs_len;
} con_backlog;

typedef struct con_site con_site;

/* One attach connection. Freed by the console thread only. */
typedef struct con_conn {
    int fd;
    bool registered; /* in the epoll set */
    bool want_out;   /* EPOLLOUT armed: input waits for the container */
    daemon_demux dm;
    con_site *site; /* NULL once ended or replaced: the thread closes it */
    struct con_conn *next;
} con_conn;

struct con_site {
    char id[CON_ID_MAX];
    char container[DAEMON_DOCKER_NAME_MAX];
    uint64_t gen;        /* tells a re-created site from the old one */
    con_conn *conn;      /* NULL when not attached */
    con_fifo ring;       /* what was published, newest last */
    con_backlog backlog; /* read, not yet published */
    con_fifo input;      /* for the container's stdin, not yet written */
    uint64_t seq;        /* of the next chunk published */
    uint64_t dropped;    /* bytes lost since the last notice */
    int64_t refused_ms;  /* when refused input was last logged */
    uint64_t refused;    /* writes refused since then */
};

/* The bus has no unsubscribe: a handler keeps its ud until the bus closes.
 * Handlers get a gate, not the console; daemon_console_free() closes the
 * gate (c = NULL) and leaves it behind, a few bytes per console, on a list
 * that keeps it reachable for leak checkers. */
typedef struct con_gate {
    pthread_rwlock_t lock;
    daemon_console *c; /* NULL once the console is freed */
    struct con_gate *next;
} con_gate;

static pthread_mutex_t con_gates_mu = PTHREAD_MUTEX_INITIALIZER;
static con_gate *con_gates;

struct daemon_console {
    bus *bus;
    char node[CON_ID_MAX];
    char *sock_path;
    size_t ring_bytes;
    size_t chunk_bytes;
    size_t backlog_max;
    size_t out_buffered_max;
    size_t input_max;
    con_gate *gate;

    pthread_mutex_t mu; /* guards everything down to the thread's own */
    con_site **sites;   /* sorted by id */
    size_t nsites;
    size_t sites_cap;
    con_conn *conns; /* every connection not yet closed */
    uint64_t next_gen;
    bool conns_dirty; /* a connection to register or to close */
    bool input_dirty; /* input queued */
    bool stopping;

    /* The console thread's own. */
    pthread_t thread;
    bool started;
    int epfd;
    int evfd;
    char *rbuf; /* CON_READ_MAX */
    char *cbuf; /* chunk_bytes */
    bool publish_failing;

    /* The in-process watcher (mu). */
    daemon_console_watch_fn watch;
    void *watch_ud;
};

/* A chunk (with a drop notice before it when dropped > 0) taken from a
 * backlog under the lock and published outside it. */
typedef struct con_out {
    char site[CON_ID_MAX];
    uint64_t gen;
    uint64_t seq; /* of the first message */
    uint64_t dropped;
    char notice[96];
    size_t notice_len;
    int stream;
    size_t len; /* bytes in c->cbuf */
} con_out;

/* ------------------------------------------------------------ byte queues */

static void con_fifo_init(con_fifo *f, size_t max)
{
    memset(f, 0, sizeof(*f));
    f->max = max;
}

static void con_fifo_free(con_fifo *f)
{
    free(f->data);
    con_fifo_init(f, f->max);
}

/* Makes room for need bytes in all (need <= max). Returns 0 or
 * BERTH_ENOMEM, leaving f as it was. */
static int con_fifo_reserve(con_fifo *f, size_t need)
{
    size_t cap = f->cap;
    char *p;

    if (need <= f->cap)
        return 0;
    if (need > f->max)
        return BERTH_ETOOBIG;
    if (cap < CON_FIFO_MIN)
        cap = CON_FIFO_MIN;
    while (cap < need)
        cap *= 2;
    if (cap > f->max)
        cap = f->max;
    p = realloc(f->data, cap);
    if (p == NULL)
        return BERTH_ENOMEM;
    /* A wrapped queue: its older part moves to the end of the new space. */
    if (f->head + f->len > f->cap) {
        size_t tail = f->cap - f->head;
        memmove(p + cap - tail, p + f->head, tail);
        f->head = cap - tail;
    }
    f->data = p;
    f->cap = cap;
    return 0;
}

/* Appends n bytes; the caller made room (len + n <= cap). */
static void con_fifo_push(con_fifo *f, const char *p, size_t n)
{
    size_t at, first;

    if (n == 0)
        return;
    at = (f->head + f->len) % f->cap;
    first = f->cap - at < n ? f->cap - at : n;
    memcpy(f->data + at, p, first);
    memcpy(f->data, p + first, n - first);
    f->len += n;
}

/* Forgets the n oldest bytes (n <= len). */
static void con_fifo_drop(con_fifo *f, size_t n)
{
    f->len -= n;
    f->head = f->len == 0 ? 0 : (f->head + n) % f->cap;
}

/* Copies n bytes starting off bytes after the oldest into dst. */
static void con_fifo_peek(const con_fifo *f, size_t off, char *dst, size_t n)
{
    size_t at, first;

    if (n == 0)
        return;
    at = (f->head + off) % f->cap;
    first = f->cap - at < n ? f->cap - at : n;
    memcpy(dst, f->data + at, first);
    memcpy(dst + first, f->data, n - first);
}

/* Appends to a ring: the oldest bytes give way once it holds max. Returns
 * 0 or BERTH_ENOMEM (then the ring keeps what fits in its current space). */
static int con_ring_append(con_fifo *r, const char *p, size_t n)
{
    size_t want;
    int rc;

    if (r->max == 0)
        return 0;
    if (n > r->max) {
        p += n - r->max;
        n = r->max;
    }
    want = r->len + n < r->max ? r->len + n : r->max;
    rc = con_fifo_reserve(r, want);
    if (rc != 0 && r->cap == 0)
        return rc;
    if (n > r->cap) {
        p += n - r->cap;
        n = r->cap;
    }
    if (r->len + n > r->cap)
        con_fifo_drop(r, r->len + n - r->cap);
    con_fifo_push(r, p, n);
    return rc;
}

/* Copies the newest min(max, len) bytes of a ring (max 0: all of it) into
 * dst. Returns how many. */
static size_t con_ring_tail(const con_fifo *r, size_t max, char *dst)
{
    size_t n = max == 0 || max > r->len ? r->len : max;

    con_fifo_peek(r, r->len - n, dst, n);
    return n;
}

/* ------------------------------------------------------------ backlog */

static void con_backlog_init(con_backlog *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    con_fifo_init(&b->bytes, max);
}

static void con_backlog_free(con_backlog *b)
{
    con_fifo_free(&b->bytes);
    free(b->runs);
    b->runs = NULL;
    b->runs_cap = b->runs_head = b->runs_len = 0;
}

/* Releases a large empty backlog's storage after a burst. */
static void con_backlog_trim(con_backlog *b)
{
    if (b->bytes.len == 0 && b->bytes.cap > CON_FIFO_KEEP)
        con_backlog_free(b);
}

/* Removes the n oldest bytes (n <= bytes.len). Returns n. */
static uint64_t con_backlog_drop(con_backlog *b, size_t n)
{
    size_t left = n;

    while (left > 0) {
        con_run *r = &b->runs[b->runs_head];
        size_t k = r->len < left ? r->len : left;

        r->len -= (uint32_t)k;
        con_fifo_drop(&b->bytes, k);
        left -= k;
        if (r->len == 0) {
            b->runs_head = (b->runs_head + 1) % b->runs_cap;
            b->runs_len--;
        }
    }
    return n;
}

/* Adds n bytes of stream. What does not fit under the cap, oldest first
 * (or, past CON_RUNS_MAX stream changes, the oldest run), is dropped.
 * Returns the number of bytes dropped, new or old. */
static uint64_t con_backlog_add(con_backlog *b, int stream, const char *p,
                                size_t n)
{
    uint64_t dropped = 0;
    con_run *last;

    if (n > b->bytes.max) {
        dropped += n - b->bytes.max;
        p += n - b->bytes.max;
        n = b->bytes.max;
    }
    if (n == 0)
        return dropped;
    if (b->bytes.len + n > b->bytes.max)
        dropped += con_backlog_drop(b, b->bytes.len + n - b->bytes.max);
    if (con_fifo_reserve(&b->bytes, b->bytes.len + n) != 0)
        return dropped + n;
    last = b->runs_len > 0
               ? &b->runs[(b->runs_head + b->runs_len - 1) % b->runs_cap]
               : NULL;
    if (last != NULL && last->stream == stream) {
        last->len += (uint32_t)n;
        con_fifo_push(&b->bytes, p, n);
        return dropped;
    }
    if (b->runs_len == CON_RUNS_MAX)
        dropped += con_backlog_drop(b, b->runs[b->runs_head].len);
    if (b->runs_len == b->runs_cap) {
        size_t cap = b->runs_cap == 0 ? 8 : b->runs_cap * 2;
        con_run *runs = calloc(cap, sizeof(*runs));
        size_t i;

        if (runs == NULL)
            return dropped + n;
        for (i = 0; i < b->runs_len; i++)
            runs[i] = b->runs[(b->runs_head + i) % b->runs_cap];
        free(b->runs);
        b->runs = runs;
        b->runs_cap = cap;
        b->runs_head = 0;
    }
    b->runs[(b->runs_head + b->runs_len) % b->runs_cap] =
        (con_run){.len = (uint32_t)n, .stream = (uint8_t)stream};
    b->runs_len++;
    con_fifo_push(&b->bytes, p, n);
    return dropped;
}

/* Moves up to max bytes of the oldest run into dst. Returns how many and
 * their stream in *stream; 0 when the backlog is empty. */
static size_t con_backlog_take(con_backlog *b, size_t max, char *dst,
                               int *stream)
{
    con_run *r;
    size_t n;

    if (b->runs_len == 0)
        return 0;
    r = &b->runs[b->runs_head];
    n = r->len < max ? r->len : max;
    *stream = r->stream;
    con_fifo_peek(&b->bytes, 0, dst, n);
    con_backlog_drop(b, n);
    return n;
}

/* ------------------------------------------------------------ attach */

/* Docker's stream numbers are the console's stream values. */
_Static_assert(CON_STDOUT == DAEMON_DEMUX_STDOUT &&
                   CON_STDERR == DAEMON_DEMUX_STDERR,
               "console streams are Docker's");

/* Connects to Docker's socket and attaches to container (hijack.h). The
 * path is unversioned: Docker then speaks its own version, and attach has
 * not changed since long before 1.40. */
static int con_dial(const char *sock_path, const char *container, int *fd,
                    char *early, size_t *nearly, char *why, size_t whylen)
{
    char path[256];

    snprintf(path, sizeof(path),
             "/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1",
             container);
    return daemon_hijack_dial(
        &(daemon_hijack_req){.sock_path = sock_path, .path = path}, fd, early,
        nearly, why, whylen);
}

/* ------------------------------------------------------------ sites */

/* Returns the index of id in the table, or -(insertion point) - 1. */
static long con_site_index(daemon_console *c, const char *id)
{
    size_t lo = 0, hi = c->nsites;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(c->sites[mid]->id, id);
        if (cmp == 0)
            return (long)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static con_site *con_site_find(daemon_console *c, const char *id)
{
    long i = con_site_index(c, id);

    return i >= 0 ? c->sites[i] : NULL;
}

/* Returns the site, creating it (with nothing allocated but the struct)
 * when needed. Under mu. */
static int con_site_get(daemon_console *c, const char *id, con_site **out)
{
    long i = con_site_index(c, id);
    size_t at;
    con_site *s;

    if (i >= 0) {
        *out = c->sites[i];
        return 0;
    }
    if (c->nsites == CON_SITES_MAX)
        return BERTH_ETOOBIG;
    if (c->nsites == c->sites_cap) {
        size_t cap = c->sites_cap == 0 ? 16 : c->sites_cap * 2;
        con_site **p = realloc(c->sites, cap * sizeof(*p));
        if (p == NULL)
            return BERTH_ENOMEM;
        c->sites = p;
        c->sites_cap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BERTH_ENOMEM;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->gen = ++c->next_gen;
    con_fifo_init(&s->ring, c->ring_bytes);
    con_backlog_init(&s->backlog, c->backlog_max);
    con_fifo_init(&s->input, c->input_max);
    at = (size_t)(-i - 1);
    memmove(c->sites + at + 1, c->sites + at,
            (c->nsites - at) * sizeof(*c->sites));
    c->sites[at] = s;
    c->nsites++;
    *out = s;
    return 0;
}

/* Cuts the site loose from its connection, which the thread then closes;
 * input still queued for it is dropped. Under mu. */
static void con_site_unplug(daemon_console *c, con_site *s)
{
    if (s->conn != NULL) {
        s->conn->site = NULL;
        s->conn = NULL;
        c->conns_dirty = true;
    }
    con_fifo_free(&s->input);
}

static void con_site_free(con_site *s)
{
    con_fifo_free(&s->ring);
    con_backlog_free(&s->backlog);
    con_fifo_free(&s->input);
    free(s);
}

static bool con_site_pending(const con_site *s)
{
    return s->backlog.bytes.len > 0 || s->dropped > 0;
}

/* Adds output or a notice to the site's backlog. Under mu. */
static void con_site_output(con_site *s, int stream, const char *p, size_t n)
{
    s->dropped += con_backlog_add(&s->backlog, stream, p, n);
}

static void con_emit(void *arg, int stream, const char *p, size_t n)
{
    con_site_output(arg, stream, p, n);
}

/* Runs stream bytes read from k through its demultiplexer into its site's
 * backlog. Under mu; k->site is not NULL. */
static void con_conn_feed(con_conn *k, const char *p, size_t n)
{
    if (daemon_demux_feed(&k->dm, p, n, con_emit, k->site) != 0)
        log_warn("console stream is not multiplexed; passing it on raw",
                 "site=%s container=%s", k->site->id, k->site->container);
}

/* Whether Docker has closed k (its container stopped) and the thread has
 * not read the end yet. Under mu: the thread closes connections only under
 * mu, so k->fd is still k's. */
static bool con_conn_ending(const con_conn *k)
{
    struct pollfd p = {.fd = k->fd, .events = POLLRDHUP};

    return poll(&p, 1, 0) > 0 &&
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void con_wake(daemon_console *c)
{
    uint64_t one = 1;

    if (write(c->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("console wake failed", "error=%s", strerror(errno));
}

/* ------------------------------------------------------------ thread */

/* Registers new connections and closes the ones cut loose. Under mu. */
static void con_sync_conns(daemon_console *c)
{
    con_conn **pp = &c->conns;

    while (*pp != NULL) {
        con_conn *k = *pp;

        if (k->site != NULL && !k->registered) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
            if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, k->fd, &ev) == 0) {
                k->registered = true;
            } else {
                log_error("console epoll add failed", "site=%s error=%s",
                          k->site->id, strerror(errno));
                con_site_unplug(c, k->site);
            }
        }
        if (k->site == NULL) {
            if (k->registered)
                epoll_ctl(c->epfd, EPOLL_CTL_DEL, k->fd, NULL);
            close(k->fd);
            *pp = k->next;
            free(k);
            continue;
        }
        pp = &k->next;
    }
    c->conns_dirty = false;
}

static void con_set_out(daemon_console *c, con_conn *k, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.ptr = k};

    if (k->want_out == on)
        return;
    if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, k->fd, &ev) == 0)
        k->want_out = on;
}

/* Writes as much queued input as the container takes now. Under mu. */
static void con_flush_input(daemon_console *c, con_site *s)
{
    con_conn *k = s->conn;

    if (k == NULL || !k->registered)
        return;
    while (s->input.len > 0) {
        con_fifo *f = &s->input;
        size_t first = f->cap - f->head < f->len ? f->cap - f->head : f->len;
        ssize_t n = send(k->fd, f->data + f->head, first,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            con_fifo_drop(f, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            con_set_out(c, k, true);
            return;
        }
        /* The read side sees the end of the connection and says so. */
        log_warn("console input not written", "site=%s error=%s", s->id,
                 strerror(errno));
        break;
    }
    con_fifo_free(&s->input);
    con_set_out(c, k, false);
}

/* Reads once from k and adds what came to its site's backlog; the end of
 * the stream (the container stopped) cuts the site loose from k. */
static void con_read(daemon_console *c, con_conn *k)
{
    ssize_t n = read(k->fd, c->rbuf, CON_READ_MAX);
    int e = errno;

    if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR))
        return;
    pthread_mutex_lock(&c->mu);
    if (k->site == NULL)
        goto out;
    if (n > 0) {
        con_conn_feed(k, c->rbuf, (size_t)n);
        goto out;
    }
    if (n == 0)
        log_info("console ended", "site=%s container=%s", k->site->id,
                 k->site->container);
    else
        log_warn("console read failed", "site=%s container=%s error=%s",
                 k->site->id, k->site->container, strerror(e));
    con_site_unplug(c, k->site);
out:
    pthread_mutex_unlock(&c->mu);
}

/* Returns the first site after cursor ("" for the first) with something
 * to publish, or NULL. Under mu. */
static con_site *con_next_pending(daemon_console *c, const char *cursor)
{
    long i = cursor[0] == '\0' ? -1 : con_site_index(c, cursor);
    size_t at = i >= 0 ? (size_t)i + 1 : (size_t)(-i - 1);

    for (; at < c->nsites; at++) {
        if (con_site_pending(c->sites[at]))
            return c->sites[at];
    }
    return NULL;
}

/* Whether the bus cannot take more now. */
static bool con_held(daemon_console *c)
{
    int buffered;

    if (!bus_connected(c->bus))
        return true;
    buffered = natsConnection_Buffered(bus_nats(c->bus));
    return buffered < 0 || (size_t)buffered > c->out_buffered_max;
}

/* Takes the next chunk of s, with the drop notice that must go before it.
 * Under mu. */
static void con_take(daemon_console *c, con_site *s, con_out *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->site, sizeof(o->site), "%s", s->id);
    o->gen = s->gen;
    o->seq = s->seq;
    o->dropped = s->dropped;
    if (o->dropped > 0) {
        int n = snprintf(o->notice, sizeof(o->notice),
                         "[berth] %llu bytes of output dropped\r\n",
                         (unsigned long long)o->dropped);
        o->notice_len = (size_t)n;
        s->dropped = 0;
    }
    o->len = con_backlog_take(&s->backlog, c->chunk_bytes, c->cbuf,
                              &o->stream);
    con_backlog_trim(&s->backlog);
}

/* Publishes what con_take() took, then records it: a published chunk
 * advances the site's sequence and goes into its ring; one that could not
 * be published counts as dropped, so a notice says so later. Returns
 * whether everything went out. */
static bool con_send(daemon_console *c, const con_out *o)
{
    Berth__V1__ConsoleChunk m = BERTH__V1__CONSOLE_CHUNK__INIT;
    char subject[CON_SUBJECT_MAX];
    bool notice_ok = false, data_ok = false;
    con_site *s;
    int rc = 0;

    snprintf(subject, sizeof(subject), "console.out.%s.%s", c->node, o->site);
    m.site_id = (char *)o->site;
    if (o->dropped > 0) {
        m.seq = o->seq;
        m.stream = CON_SYSTEM;
        m.data.data = (uint8_t *)o->notice;
        m.data.len = o->notice_len;
        m.dropped_bytes = o->dropped;
        rc = bus_publish(c->bus, subject, &m.base);
        notice_ok = rc == 0;
        log_debug("console output dropped", "site=%s bytes=%llu", o->site,
                  (unsigned long long)o->dropped);
    }
    if (rc == 0 && o->len > 0) {
        m.seq = o->seq + (notice_ok ? 1 : 0);
        m.stream = o->stream;
        m.data.data = (uint8_t *)c->cbuf;
        m.data.len = o->len;
        m.dropped_bytes = 0;
        rc = bus_publish(c->bus, subject, &m.base);
        data_ok = rc == 0;
    }
    if (rc != 0 && !c->publish_failing)
        log_warn("console publish failed; output counted as dropped",
                 "site=%s error=%s", o->site, berth_strerror(rc));
    c->publish_failing = rc != 0;

    pthread_mutex_lock(&c->mu);
    s = con_site_find(c, o->site);
    if (s != NULL && s->gen == o->gen) {
        if (notice_ok) {
            con_ring_append(&s->ring, o->notice, o->notice_len);
            if (c->watch != NULL)
                c->watch(c->watch_ud, s->id, o->seq, CON_SYSTEM, o->notice,
                         o->notice_len);
        } else {
            s->dropped += o->dropped;
        }
        if (data_ok) {
            con_ring_append(&s->ring, c->cbuf, o->len);
            if (c->watch != NULL)
                c->watch(c->watch_ud, s->id, o->seq + (notice_ok ? 1 : 0),
                         o->stream, c->cbuf, o->len);
        } else {
            s->dropped += o->len;
        }
        s->seq += (notice_ok ? 1 : 0) + (data_ok ? 1 : 0);
    }
    pthread_mutex_unlock(&c->mu);
    return rc == 0;
}

enum { CON_IDLE, CON_HELD, CON_MORE };

/* Publishes from the backlogs, one chunk per site per pass so that a busy
 * site does not delay the others, until nothing is left (CON_IDLE), the bus
 * holds back or refuses a chunk (CON_HELD: try again shortly) or the turn's
 * budget is spent (CON_MORE). */
static int con_publish(daemon_console *c)
{
    char cursor[CON_ID_MAX];
    int budget = CON_BUDGET;
    bool sent;
    con_out o;

    for (;;) {
        cursor[0] = '\0';
        sent = false;
        for (;;) {
            con_site *s;

            pthread_mutex_lock(&c->mu);
            s = con_next_pending(c, cursor);
            if (s != NULL)
                snprintf(cursor, sizeof(cursor), "%s", s->id);
            pthread_mutex_unlock(&c->mu);
            if (s == NULL)
                break;
            if (con_held(c))
                return CON_HELD;
            pthread_mutex_lock(&c->mu);
            s = con_site_find(c, cursor);
            if (s == NULL || !con_site_pending(s)) {
                pthread_mutex_unlock(&c->mu);
                continue;
            }
            con_take(c, s, &o);
            pthread_mutex_unlock(&c->mu);
            if (!con_send(c, &o))
                return CON_HELD;
            sent = true;
            if (--budget == 0)
                return CON_MORE;
        }
        if (!sent)
            return CON_IDLE;
    }
}

static void *con_main(void *arg)
{
    daemon_console *c = arg;
    struct epoll_event evs[CON_EVENTS];
    int state = CON_IDLE;

    for (;;) {
        int i, n, timeout;

        pthread_mutex_lock(&c->mu);
        if (c->stopping) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        if (c->conns_dirty)
            con_sync_conns(c);
        if (c->input_dirty) {
            size_t j;
            for (j = 0; j < c->nsites; j++)
                if (c->sites[j]->input.len > 0)
                    con_flush_input(c, c->sites[j]);
            c->input_dirty = false;
        }
        pthread_mutex_unlock(&c->mu);

        state = con_publish(c);
        timeout = state == CON_MORE ? 0 : state == CON_HELD ? CON_RETRY_MS : -1;
        n = epoll_wait(c->epfd, evs, CON_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("console epoll failed", "error=%s", strerror(errno));
            clock_sleep_ms(100);
            continue;
        }
        for (i = 0; i < n; i++) {
            con_conn *k = evs[i].data.ptr;

            if (k == NULL) {
                uint64_t v;
                if (read(c->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    log_error("console wake read failed", "error=%s",
                              strerror(errno));
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                pthread_mutex_lock(&c->mu);
                if (k->site != NULL)
                    con_flush_input(c, k->site);
                pthread_mutex_unlock(&c->mu);
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                con_read(c, k);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ bus side */

static int con_on_input(bus_msg *m, void *ud)
{
    con_gate *g = ud;
    const Berth__V1__ConsoleInput *in = (const void *)m->msg;
    char site[CON_ID_MAX];
    int rc;

    if (bus_subject_token(m->subject, 3, site, sizeof(site)) != 0)
        return BERTH_EINVAL;
    if (in->site_id != NULL && in->site_id[0] != '\0' &&
        strcmp(in->site_id, site) != 0) {
        log_warn("console input for another site ignored",
                 "subject=%s site_id=%s", m->subject, in->site_id);
        return BERTH_EINVAL;
    }
    pthread_rwlock_rdlock(&g->lock);
    rc = g->c != NULL ? daemon_console_write(g->c, site, in->data.data,
                                             in->data.len)
                      : BERTH_EUNAVAIL;
    pthread_rwlock_unlock(&g->lock);
    if (rc == BERTH_ENOENT)
        log_debug("console input for a site not attached", "site=%s user=%s",
                  site, in->user_id != NULL ? in->user_id : "");
    return rc;
}

static int con_on_replay(bus_msg *m, void *ud)
{
    con_gate *g = ud;
    const Berth__V1__ConsoleReplayRequest *req = (const void *)m->msg;
    Berth__V1__ConsoleReplay rep = BERTH__V1__CONSOLE_REPLAY__INIT;
    char site[CON_ID_MAX];
    char *data = NULL;
    con_site *s;
    bool lost = false;
    int rc;

    if (bus_subject_token(m->subject, 3, site, sizeof(site)) != 0)
        return BERTH_EINVAL;
    if (req->site_id != NULL && req->site_id[0] != '\0' &&
        strcmp(req->site_id, site) != 0) {
        bus_reply_error(m, BERTH_EINVAL, "site_id %s is not the subject's %s",
                        req->site_id, site);
        return BERTH_EINVAL;
    }
    pthread_rwlock_rdlock(&g->lock);
    if (g->c == NULL) {
        rc = BERTH_EUNAVAIL;
        goto out;
    }
    pthread_mutex_lock(&g->c->mu);
    s = con_site_find(g->c, site);
    if (s != NULL && s->ring.len > 0) {
        data = malloc(s->ring.len);
        if (data != NULL)
            rep.data.len = con_ring_tail(&s->ring, req->max_bytes, data);
        lost = data == NULL;
    }
    rep.next_seq = s != NULL ? s->seq : 0;
    pthread_mutex_unlock(&g->c->mu);
    if (lost) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rep.site_id = site;
    rep.data.data = (uint8_t *)data;
    rc = bus_reply(m, &rep.base);
out:
    pthread_rwlock_unlock(&g->lock);
    free(data);
    return rc;
}

/* ------------------------------------------------------------ public */

static size_t con_limit(size_t v, size_t dflt, size_t max)
{
    if (v == 0)
        return dflt;
    return v > max ? max : v;
}

int daemon_console_new(const daemon_console_cfg *cfg, daemon_console **out)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    daemon_console *c = NULL;
    char filter[CON_SUBJECT_MAX];
    con_gate *g;
    int rc;

    *out = NULL;
    if (cfg == NULL || cfg->bus == NULL || !bus_token_valid(cfg->node_id))
        return BERTH_EINVAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BERTH_ENOMEM;
    c->epfd = c->evfd = -1;
    pthread_mutex_init(&c->mu, NULL);
    c->bus = cfg->bus;
    snprintf(c->node, sizeof(c->node), "%s", cfg->node_id);
    c->ring_bytes =
        con_limit(cfg->ring_bytes, DAEMON_CONSOLE_RING_DEFAULT, CON_RING_LIMIT);
    c->chunk_bytes = con_limit(cfg->chunk_bytes, DAEMON_CONSOLE_CHUNK_DEFAULT,
                               CON_CHUNK_LIMIT);
    c->backlog_max = con_limit(cfg->backlog_max, DAEMON_CONSOLE_BACKLOG_DEFAULT,
                               CON_BACKLOG_LIMIT);
    c->out_buffered_max =
        con_limit(cfg->out_buffered_max, CON_BUFFERED_DEFAULT, INT32_MAX);
    c->input_max =
        con_limit(cfg->input_max, CON_INPUT_DEFAULT, CON_INPUT_LIMIT);
    c->sock_path = strdup(cfg->sock_path != NULL ? cfg->sock_path
                                                 : DAEMON_DOCKER_SOCK_DEFAULT);
    c->rbuf = malloc(CON_READ_MAX);
    c->cbuf = malloc(c->chunk_bytes);
    if (c->sock_path == NULL || c->rbuf == NULL || c->cbuf == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->epfd < 0 || c->evfd < 0 ||
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &ev) != 0) {
        rc = berth_err_from_errno(errno);
        goto out;
    }

    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    pthread_rwlock_init(&g->lock, NULL);
    g->c = c;
    c->gate = g;
    pthread_mutex_lock(&con_gates_mu);
    g->next = con_gates;
    con_gates = g;
    pthread_mutex_unlock(&con_gates_mu);

    if (pthread_create(&c->thread, NULL, con_main, c) != 0) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    c->started = true;
    snprintf(filter, sizeof(filter), "console.in.%s.*", c->node);
    rc = bus_subscribe(c->bus, filter, NULL, con_on_input, g);
    if (rc != 0)
        goto out;
    snprintf(filter, sizeof(filter), "console.replay.%s.*", c->node);
    rc = bus_serve(c->bus, "console-replay", filter, con_on_replay, g);
    if (rc != 0)
        goto out;
    *out = c;
    c = NULL;
out:
    daemon_console_free(c);
    return rc;
}

void daemon_console_free(daemon_console *c)
{
    con_conn *k;
    size_t i;

    if (c == NULL)
        return;
    if (c->gate != NULL) {
        pthread_rwlock_wrlock(&c->gate->lock);
        c->gate->c = NULL;
        pthread_rwlock_unlock(&c->gate->lock);
    }
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_mutex_unlock(&c->mu);
        con_wake(c);
        pthread_join(c->thread, NULL);
    }
    while (c->conns != NULL) {
        k = c->conns;
        c->conns = k->next;
        close(k->fd);
        free(k);
    }
    for (i = 0; i < c->nsites; i++)
        con_site_free(c->sites[i]);
    free(c->sites);
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->evfd >= 0)
        close(c->evfd);
    free(c->rbuf);
    free(c->cbuf);
    free(c->sock_path);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int daemon_console_attach(daemon_console *c, const char *site,
                          const char *container, bool tty)
{
    char early[DAEMON_HIJACK_HDR_MAX], why[512];
    size_t nearly = 0;
    con_conn *k = NULL;
    int64_t deadline = clock_mono_ms() + CON_DRAIN_MS;
    con_site *s;
    bool same, ending;
    int fd = -1;
    int rc;

    if (!bus_token_valid(site) || !daemon_hijack_valid_ref(container))
        return BERTH_EINVAL;
    /* Already attached: nothing to do, unless that stream is the end of
     * the container's previous run (a restart right after an exit). Its
     * tail is read first, then a new attach is made. */
    for (;;) {
        pthread_mutex_lock(&c->mu);
        s = con_site_find(c, site);
        same = s != NULL && s->conn != NULL &&
               strcmp(s->container, container) == 0;
        ending = same && con_conn_ending(s->conn);
        pthread_mutex_unlock(&c->mu);
        if (same && !ending)
            return 0;
        if (!same || clock_mono_ms() >= deadline)
            break;
        clock_sleep_ms(5);
    }

    rc = con_dial(c->sock_path, container, &fd, early, &nearly, why,
                  sizeof(why));
    if (rc != 0) {
        log_warn("console attach failed",
                 "site=%s container=%s error=%s detail=%s", site, container,
                 berth_errname(rc), why);
        goto out;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    k->fd = fd;
    k->dm.raw = tty;
    fd = -1;

    pthread_mutex_lock(&c->mu);
    rc = con_site_get(c, site, &s);
    if (rc == 0 && s->conn != NULL && strcmp(s->container, container) == 0 &&
        !con_conn_ending(s->conn)) {
        /* Another thread attached the same container meanwhile. */
        fd = k->fd;
        free(k);
        k = NULL;
    } else if (rc == 0) {
        if (s->conn != NULL) {
            s->conn->site = NULL;
            c->conns_dirty = true;
        }
        snprintf(s->container, sizeof(s->container), "%s", container);
        s->conn = k;
        k->site = s;
        k->next = c->conns;
        c->conns = k;
        c->conns_dirty = true;
        if (nearly > 0)
            con_conn_feed(k, early, nearly);
        k = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == 0) {
        con_wake(c);
        log_info("console attached", "site=%s container=%s tty=%d", site,
                 container, (int)tty);
    }
out:
    if (k != NULL) {
        fd = k->fd;
        free(k);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

bool daemon_console_attached(daemon_console *c, const char *site)
{
    con_site *s;
    bool on;

    pthread_mutex_lock(&c->mu);
    s = site != NULL ? con_site_find(c, site) : NULL;
    on = s != NULL && s->conn != NULL;
    pthread_mutex_unlock(&c->mu);
    return on;
}

void daemon_console_detach(daemon_console *c, const char *site)
{
    con_site *s;

    pthread_mutex_lock(&c->mu);
    s = site != NULL ? con_site_find(c, site) : NULL;
    if (s != NULL)
        con_site_unplug(c, s);
    pthread_mutex_unlock(&c->mu);
    con_wake(c);
}

void daemon_console_forget(daemon_console *c, const char *site)
{
    long i;

    pthread_mutex_lock(&c->mu);
    i = site != NULL ? con_site_index(c, site) : -1;
    if (i >= 0) {
        con_site *s = c->sites[i];
        con_site_unplug(c, s);
        memmove(c->sites + i, c->sites + i + 1,
                (c->nsites - (size_t)i - 1) * sizeof(*c->sites));
        c->nsites--;
        con_site_free(s);
    }
    pthread_mutex_unlock(&c->mu);
    con_wake(c);
}

int daemon_console_write(daemon_console *c, const char *site,
                         const void *data, size_t len)
{
    con_site *s;
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    s = site != NULL ? con_site_find(c, site) : NULL;
    if (s == NULL || s->conn == NULL) {
        rc = BERTH_ENOENT;
        goto out;
    }
    if (len > c->input_max - s->input.len) {
        /* A container that never reads must not flood the log with every
         * keystroke sent to it: one line per CON_LOG_EVERY_MS. */
        int64_t now = clock_mono_ms();

        s->refused++;
        if (s->refused_ms == 0 || now - s->refused_ms >= CON_LOG_EVERY_MS) {
            log_warn("console input refused: the container does not read",
                     "site=%s queued=%zu len=%zu max=%zu refused=%llu", site,
                     s->input.len, len, c->input_max,
                     (unsigned long long)s->refused);
            s->refused_ms = now;
            s->refused = 0;
        }
        rc = BERTH_ETOOBIG;
        goto out;
    }
    if (len == 0)
        goto out;
    rc = con_fifo_reserve(&s->input, s->input.len + len);
    if (rc != 0)
        goto out;
    con_fifo_push(&s->input, data, len);
    c->input_dirty = true;
out:
    pthread_mutex_unlock(&c->mu);
    if (rc == 0 && len > 0)
        con_wake(c);
    return rc;
}

void daemon_console_watch(daemon_console *c, daemon_console_watch_fn fn,
                          void *ud)
{
    pthread_mutex_lock(&c->mu);
    c->watch = fn;
    c->watch_ud = ud;
    pthread_mutex_unlock(&c->mu);
}

int daemon_console_replay(daemon_console *c, const char *site, size_t max,
                          char **data, size_t *len, uint64_t *next_seq)
{
    con_site *s;
    int rc = 0;

    *data = NULL;
    *len = 0;
    *next_seq = 0;
    pthread_mutex_lock(&c->mu);
    s = site != NULL ? con_site_find(c, site) : NULL;
    if (s != NULL && s->ring.len > 0) {
        *data = malloc(max == 0 || max > s->ring.len ? s->ring.len : max);
        if (*data != NULL)
            *len = con_ring_tail(&s->ring, max, *data);
        else
            rc = BERTH_ENOMEM;
    }
    if (s != NULL)
        *next_seq = s->seq;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void daemon_console_notice(daemon_console *c, const char *site,
                           const char *fmt, ...)
{
    static const char prefix[] = "[berth] ";
    char line[CON_NOTICE_MAX];
    size_t n = sizeof(prefix) - 1, room = sizeof(line) - n - 3;
    con_site *s;
    va_list ap;
    int k, rc;

    if (!bus_token_valid(site)) {
        log_warn("console notice for an invalid site id", "site=%s",
                 site != NULL ? site : "");
        return;
    }
    memcpy(line, prefix, n);
    va_start(ap, fmt);
    k = vsnprintf(line + n, room + 1, fmt, ap);
    va_end(ap);
    if (k < 0)
        k = 0;
    n += (size_t)k < room ? (size_t)k : room;
    while (n > sizeof(prefix) - 1 &&
           (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    memcpy(line + n, "\r\n", 2);
    n += 2;

    pthread_mutex_lock(&c->mu);
    rc = con_site_get(c, site, &s);
    if (rc == 0)
        con_site_output(s, CON_SYSTEM, line, n);
    pthread_mutex_unlock(&c->mu);
    if (rc != 0)
        log_warn("console notice lost", "site=%s error=%s", site,
                 berth_strerror(rc));
    con_wake(c);
}
