/* exec.c - a process in a site's container, relayed between an SSH channel
 * and the site's daemon over the bus.
 *
 *   shell.open.<node>             ShellOpen -> ShellOpened (a job)
 *   shell.in.<node>.<session>     ShellData: stdin, EOF, output credit,
 *                                 keepalives (published here)
 *   shell.out.<node>.<session>    ShellData: output, EOF, stdin credit
 *   shell.resize.<node>.<session> ShellResize on window-change
 *   shell.exit.<node>.<session>   ShellExit: from the daemon when the
 *                                 process ended; from here when the user
 *                                 left or lost access
 *
 * Flow control is by credit, both ways. The daemon may send
 * SHELL_CREDIT_INIT bytes of output; each time bytes have gone into the
 * SSH channel (within the client's window) the same amount is granted
 * back with ShellData{window}. Output beyond the credit is a broken peer:
 * the session ends. Stdin is published within the credit the daemon
 * grants; what does not fit stays in libssh's channel buffer, whose window
 * then stops growing, so a fast typist (or `cat big | ssh`) is held back
 * by SSH itself. So a session holds at most about SHELL_CREDIT_INIT of
 * output and a channel window of input, whatever the two ends do.
 *
 * The session is registered (srv->xs, by id) before shell.open is sent,
 * so output that overtakes the reply is kept. Output and the daemon's
 * ShellExit come on two subscriptions, which nats.c may deliver out of
 * order: the end waits for the output's EOF (or SHELL_EXIT_GRACE_MS).
 * A publication every SHELL_KEEPALIVE_MS at the latest keeps the daemon
 * from reaping a quiet session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "svc-shell/shell_int.h"

#define SHELL_CREDIT_INIT (1u << 20)
#define SHELL_OUT_MAX (SHELL_CREDIT_INIT + (256u << 10)) /* credit + slack */
#define SHELL_IN_CHUNK (32u << 10)   /* stdin bytes per ShellData */
#define SHELL_GRANT_MIN (32u << 10)  /* credit granted back in one go */
#define SHELL_KEEPALIVE_MS 10000
#define SHELL_EXIT_GRACE_MS 2000
#define SHELL_OPEN_TIMEOUT_MS 20000
#define SHELL_SUBJECT_MAX 300

enum xs_state { XS_OPENING, XS_OPEN, XS_ENDED };

/* A piece of output waiting for the channel. */
struct xs_chunk {
    struct xs_chunk *next;
    size_t len, off;
    int is_stderr;
    unsigned char data[];
};

struct shell_exec {
    shell_exec *hnext; /* registry chain, under srv->xs_mu */
    shell_srv *srv;
    shell_loop *loop;
    shell_chan *chan; /* loop side only */
    char id[ID_UUID_LEN + 1];
    char node[SHELL_NODE_MAX + 1];
    char site[40];

    /* Filled by nats.c threads, under srv->xs_mu. */
    struct xs_chunk *inq, **inq_tail;
    size_t queued;       /* output bytes held (inq and out) */
    uint64_t in_granted; /* stdin credit granted, not yet taken */
    int got_eof, got_exit, overflow;
    int exit_code;
    char exit_reason[SHELL_REASON_MAX];

    /* Loop-owned. */
    int state;
    struct xs_chunk *out, **out_tail;
    uint64_t credit_in;    /* stdin bytes we may still publish */
    uint64_t grant_owed;   /* output written to SSH, not yet granted */
    uint64_t seq;          /* of the last ShellData on shell.in */
    int64_t last_pub_ms;
    int64_t exit_seen_ms;
    /* got_eof and got_exit as of the last take_inbound(): taken under the
     * lock together with the output queued before them, so the channel's
     * EOF never overtakes output still on its way from inq. */
    int eof_taken, exit_taken;
    int stdin_waiting; /* stdin left in libssh's buffer for lack of credit */
    int stdin_eof_sent;
    int ssh_eof_sent;
};

/* ------------------------------------------------------------ registry */

static unsigned bucket_of(const char *id)
{
    unsigned h = 2166136261u;

    while (*id)
        h = (h ^ (unsigned char)*id++) * 16777619u;
    return h % SHELL_XS_BUCKETS;
}

static void registry_add(shell_exec *xs)
{
    shell_srv *s = xs->srv;
    unsigned b = bucket_of(xs->id);

    pthread_mutex_lock(&s->xs_mu);
    xs->hnext = s->xs[b];
    s->xs[b] = xs;
    pthread_mutex_unlock(&s->xs_mu);
}

/* Takes xs out of the registry and frees what nats threads queued. */
static void registry_del(shell_exec *xs)
{
    shell_srv *s = xs->srv;
    shell_exec **pp = &s->xs[bucket_of(xs->id)];
    struct xs_chunk *k;

    pthread_mutex_lock(&s->xs_mu);
    while (*pp != NULL && *pp != xs)
        pp = &(*pp)->hnext;
    if (*pp == xs)
        *pp = xs->hnext;
    k = xs->inq;
    xs->inq = NULL;
    xs->inq_tail = &xs->inq;
    pthread_mutex_unlock(&s->xs_mu);
    while (k != NULL) {
        struct xs_chunk *next = k->next;
        free(k);
        k = next;
    }
}

/* Under srv->xs_mu. */
static shell_exec *registry_find(shell_srv *s, const char *id)
{
    shell_exec *xs;

    for (xs = s->xs[bucket_of(id)]; xs != NULL; xs = xs->hnext) {
        if (strcmp(xs->id, id) == 0)
            return xs;
    }
    return NULL;
}

static void xs_free(shell_exec *xs)
{
    struct xs_chunk *k = xs->out;

    while (k != NULL) {
        struct xs_chunk *next = k->next;
        free(k);
        k = next;
    }
    free(xs);
}

/* ------------------------------------------------------------ publishing */

static int publish(shell_exec *xs, const char *kind, const ProtobufCMessage *m)
{
    char subject[SHELL_SUBJECT_MAX];
    int rc;

    snprintf(subject, sizeof(subject), "shell.%s.%s.%s", kind, xs->node, xs->id);
    rc = bus_publish(xs->srv->bus, subject, m);
    if (rc != 0)
        log_warn("shell publish failed", "subject=%s error=%s", subject,
                 berth_strerror(rc));
    xs->last_pub_ms = clock_mono_ms();
    return rc;
}

/* Publishes stdin data, EOF or a credit grant on shell.in. */
static int publish_in(shell_exec *xs, const void *data, size_t len, int eof,
                      uint32_t window)
{
    Berth__V1__ShellData d = BERTH__V1__SHELL_DATA__INIT;

    d.session_id = xs->id;
    d.seq = ++xs->seq;
    d.data.data = (uint8_t *)data;
    d.data.len = len;
    d.eof = eof != 0;
    d.window = window;
    return publish(xs, "in", &d.base);
}

void shell_exec_end(shell_exec *xs, const char *reason)
{
    Berth__V1__ShellExit e = BERTH__V1__SHELL_EXIT__INIT;

    if (xs == NULL)
        return;
    /* Out of the registry first: our own ShellExit comes back to us. */
    registry_del(xs);
    if (xs->state != XS_ENDED && !xs->got_exit) {
        e.session_id = xs->id;
        e.exit_code = -1;
        e.reason = (char *)(reason ? reason : "closed");
        publish(xs, "exit", &e.base);
        log_info("session ended", "session=%s site=%s reason=%s", xs->id,
                 xs->site, e.reason);
    }
    xs_free(xs);
}

/* ------------------------------------------------------------ opening */

static void open_done(shell_job *j)
{
    shell_chan *ch = j->chan;
    shell_exec *xs = ch->xs;
    const char *why;

    if (ch->closed || xs == NULL || xs != j->ctx)
        return; /* the channel went away meanwhile; the session was ended */
    if (j->rc == 0) {
        xs->state = XS_OPEN;
        log_debug("session open", "session=%s site=%s ms=%lld", xs->id,
                  xs->site, (long long)((clock_mono_ns() - j->started_ns) / 1000000));
        return;
    }
    switch (j->rc) {
    case BERTH_ENOENT:
        why = "the site is not on its node";
        break;
    case BERTH_ECONFLICT:
        why = "the site is not running";
        break;
    case BERTH_ETOOBIG:
        why = "the site has too many sessions";
        break;
    case BERTH_ETIMEDOUT:
    case BERTH_ENORESP:
    case BERTH_EUNAVAIL:
        why = "the site's node does not answer";
        break;
    default:
        why = j->err.message;
        break;
    }
    log_info("session refused by the daemon", "session=%s site=%s error=%s "
             "message=%s", xs->id, xs->site, berth_errname(j->rc), j->err.message);
    shell_chan_say(ch, "berth: cannot start a shell on %s: %s\n", ch->site.name,
                   why);
    xs->state = XS_ENDED; /* nothing to tell the daemon */
    ch->xs = NULL;
    shell_exec_end(xs, NULL);
    shell_chan_finish(ch, 1);
}

int shell_exec_start(shell_chan *ch)
{
    shell_conn *c = ch->conn;
    Berth__V1__ShellOpen *o;
    Berth__V1__ShellOpen__EnvEntry *entries, **env;
    shell_exec *xs;
    shell_job *j;
    char **argv = NULL;
    int i, n = 0, rc;

    xs = calloc(1, sizeof(*xs));
    if (xs == NULL)
        return BERTH_ENOMEM;
    xs->srv = c->srv;
    xs->loop = c->loop;
    xs->chan = ch;
    xs->inq_tail = &xs->inq;
    xs->out_tail = &xs->out;
    xs->credit_in = SHELL_CREDIT_INIT;
    xs->last_pub_ms = clock_mono_ms();
    /* Input sent with the request waits in libssh's buffer already. */
    xs->stdin_waiting = 1;
    snprintf(xs->node, sizeof(xs->node), "%s", ch->site.node);
    snprintf(xs->site, sizeof(xs->site), "%s", ch->site.id);
    rc = id_uuid(xs->id);
    if (rc != 0) {
        free(xs);
        return rc;
    }
    j = shell_job_new(ch, open_done);
    entries = calloc(SHELL_ENV_MAX + 1, sizeof(*entries));
    env = calloc(SHELL_ENV_MAX + 1, sizeof(*env));
    if (ch->command != NULL)
        argv = calloc(3, sizeof(*argv));
    if (j == NULL || entries == NULL || env == NULL ||
        (ch->command != NULL && argv == NULL)) {
        free(entries);
        free(env);
        free(argv);
        if (j != NULL)
            shell_job_finish(j);
        free(xs);
        return BERTH_ENOMEM;
    }
    j->owned[0] = entries;
    j->owned[1] = env;
    j->owned[2] = argv;
    j->ctx = xs;
    o = &j->u.open;
    berth__v1__shell_open__init(o);
    o->session_id = xs->id;
    o->site_id = ch->site.id;
    o->user_id = c->user.id;
    o->tty = ch->pty != 0;
    o->cols = ch->pty ? ch->cols : 0;
    o->rows = ch->pty ? ch->rows : 0;
    if (ch->command != NULL) {
        /* As sshd does: the command line goes to the shell. */
        argv[0] = "/bin/sh";
        argv[1] = "-c";
        argv[2] = ch->command;
        o->command = argv;
        o->n_command = 3;
    }
    for (i = 0; i < ch->nenv; i++, n++) {
        berth__v1__shell_open__env_entry__init(&entries[n]);
        entries[n].key = ch->env_k[i];
        entries[n].value = ch->env_v[i];
        env[n] = &entries[n];
    }
    if (ch->pty) {
        berth__v1__shell_open__env_entry__init(&entries[n]);
        entries[n].key = "TERM";
        entries[n].value = ch->term;
        env[n] = &entries[n];
        n++;
    }
    o->env = env;
    o->n_env = (size_t)n;
    j->req = &o->base;
    j->timeout_ms = SHELL_OPEN_TIMEOUT_MS;
    snprintf(j->subject, sizeof(j->subject), "shell.open.%s", xs->node);
    ch->xs = xs;
    registry_add(xs);
    shell_job_submit(c->srv, j);
    return 0;
}

/* ------------------------------------------------------------ input */

uint32_t shell_exec_input(shell_chan *ch, const void *data, uint32_t len)
{
    shell_exec *xs = ch->xs;
    uint32_t done = 0;

    if (xs == NULL || xs->state == XS_ENDED) {
        return len; /* nowhere to go */
    }
    if (xs->state != XS_OPEN || xs->stdin_eof_sent) {
        xs->stdin_waiting = xs->state == XS_OPENING;
        return xs->state == XS_OPENING ? 0 : len;
    }
    while (done < len && xs->credit_in > 0) {
        uint32_t n = len - done;

        if (n > SHELL_IN_CHUNK)
            n = SHELL_IN_CHUNK;
        if (n > xs->credit_in)
            n = (uint32_t)xs->credit_in;
        if (publish_in(xs, (const char *)data + done, n, 0, 0) != 0)
            break;
        xs->credit_in -= n;
        done += n;
    }
    xs->stdin_waiting = done < len;
    return done;
}

/* Publishes stdin that waited in libssh's buffer, now that there is
 * credit. */
static void drain_stdin(shell_chan *ch, shell_exec *xs)
{
    char buf[SHELL_IN_CHUNK];

    /* Keys typed at the site menu after the choice come first. */
    if (ch->nahead > 0 && xs->state == XS_OPEN && xs->credit_in >= ch->nahead &&
        publish_in(xs, ch->ahead, ch->nahead, 0, 0) == 0) {
        xs->credit_in -= ch->nahead;
        free(ch->ahead);
        ch->ahead = NULL;
        ch->nahead = 0;
    }
    if (ch->nahead > 0)
        return;

    while (xs->stdin_waiting && xs->credit_in > 0 && xs->state == XS_OPEN) {
        uint32_t want = xs->credit_in < sizeof(buf) ? (uint32_t)xs->credit_in
                                                    : (uint32_t)sizeof(buf);
        int n = ssh_channel_read_nonblocking(ch->ch, buf, want, 0);

        if (n <= 0) {
            xs->stdin_waiting = 0;
            break;
        }
        if (publish_in(xs, buf, (size_t)n, 0, 0) != 0)
            break;
        xs->credit_in -= (uint32_t)n;
    }
}

/* ------------------------------------------------------------ output */

/* Moves what nats threads queued to the loop's side. */
static void take_inbound(shell_exec *xs)
{
    shell_srv *s = xs->srv;

    pthread_mutex_lock(&s->xs_mu);
    if (xs->inq != NULL) {
        *xs->out_tail = xs->inq;
        xs->out_tail = xs->inq_tail;
        xs->inq = NULL;
        xs->inq_tail = &xs->inq;
    }
    xs->credit_in += xs->in_granted;
    if (xs->in_granted > 0 && xs->stdin_waiting == 0)
        xs->stdin_waiting = 1; /* libssh may hold keys typed meanwhile */
    xs->in_granted = 0;
    if (xs->got_exit && xs->exit_seen_ms == 0)
        xs->exit_seen_ms = clock_mono_ms();
    xs->eof_taken = xs->got_eof;
    xs->exit_taken = xs->got_exit;
    pthread_mutex_unlock(&s->xs_mu);
}

/* Writes queued output within the client's window; returns bytes written.
 * *failed is set when the channel refuses writes for good. */
static size_t write_out(shell_chan *ch, shell_exec *xs, int *failed)
{
    size_t total = 0;

    while (xs->out != NULL) {
        struct xs_chunk *k = xs->out;
        uint32_t win = ssh_channel_window_size(ch->ch);
        size_t n = k->len - k->off;
        int w;

        if (win == 0)
            break;
        if (n > win)
            n = win;
        if (n > 0) {
            w = k->is_stderr && !ch->pty
                    ? ssh_channel_write_stderr(ch->ch, k->data + k->off, (uint32_t)n)
                    : ssh_channel_write(ch->ch, k->data + k->off, (uint32_t)n);
            if (w == SSH_ERROR)
                *failed = 1;
            if (w <= 0)
                break;
            k->off += (size_t)w;
            total += (size_t)w;
        }
        if (k->off < k->len)
            break;
        xs->out = k->next;
        if (xs->out == NULL)
            xs->out_tail = &xs->out;
        free(k);
    }
    if (total > 0) {
        pthread_mutex_lock(&xs->srv->xs_mu);
        xs->queued -= total;
        pthread_mutex_unlock(&xs->srv->xs_mu);
        xs->grant_owed += total;
    }
    return total;
}

int shell_exec_pump(shell_chan *ch)
{
    shell_exec *xs = ch->xs;
    int64_t now = clock_mono_ms();
    int failed = 0;

    if (xs == NULL)
        return 1;
    take_inbound(xs);
    if (xs->overflow) {
        log_warn("daemon sent output beyond its credit; session ended",
                 "session=%s site=%s", xs->id, xs->site);
        shell_chan_say(ch, "\nberth: the session broke its flow control\n");
        ch->xs = NULL;
        shell_exec_end(xs, "flow control violated");
        shell_chan_finish(ch, 255);
        return 1;
    }
    write_out(ch, xs, &failed);
    if (failed) {
        log_warn("session output cannot be written; session ended",
                 "session=%s site=%s error=%s", xs->id, xs->site,
                 ssh_get_error(ch->conn->ssh));
        ch->xs = NULL;
        shell_exec_end(xs, "the channel refused output");
        shell_chan_finish(ch, 255);
        return 1;
    }
    if (xs->state == XS_OPEN) {
        drain_stdin(ch, xs);
        if (ch->client_eof && !xs->stdin_eof_sent && !xs->stdin_waiting) {
            publish_in(xs, NULL, 0, 1, 0);
            xs->stdin_eof_sent = 1;
        }
        if (ch->resized) {
            Berth__V1__ShellResize r = BERTH__V1__SHELL_RESIZE__INIT;

            r.session_id = xs->id;
            r.cols = ch->cols;
            r.rows = ch->rows;
            publish(xs, "resize", &r.base);
            ch->resized = 0;
        }
        if (xs->grant_owed >= SHELL_GRANT_MIN ||
            (xs->grant_owed > 0 && xs->out == NULL)) {
            uint64_t g = xs->grant_owed;

            if (g > UINT32_MAX)
                g = UINT32_MAX;
            if (publish_in(xs, NULL, 0, 0, (uint32_t)g) == 0)
                xs->grant_owed -= g;
        }
        if (now - xs->last_pub_ms >= SHELL_KEEPALIVE_MS)
            publish_in(xs, NULL, 0, 0, 0);
    }
    if (xs->out != NULL)
        return 0;
    if (xs->eof_taken && !xs->ssh_eof_sent) {
        ssh_channel_send_eof(ch->ch);
        xs->ssh_eof_sent = 1;
    }
    if (xs->exit_taken &&
        (xs->eof_taken || now - xs->exit_seen_ms >= SHELL_EXIT_GRACE_MS)) {
        int code = xs->exit_code;

        log_info("session exited", "session=%s site=%s code=%d reason=%s",
                 xs->id, xs->site, code, xs->exit_reason);
        if (code < 0 || code > 255) {
            if (xs->exit_reason[0] != '\0')
                shell_chan_say(ch, "\nberth: %s\n", xs->exit_reason);
            code = 255;
        }
        xs->state = XS_ENDED;
        ch->xs = NULL;
        shell_exec_end(xs, NULL);
        shell_chan_finish(ch, code);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ bus side */

/* Finds the session of a shell.<kind>.<node>.<session> subject, under
 * srv->xs_mu (the caller unlocks). NULL for sessions not ours. */
static shell_exec *find_locked(shell_srv *s, const char *subject)
{
    char node[SHELL_NODE_MAX + 1], id[ID_UUID_LEN + 2];
    shell_exec *xs;

    if (bus_subject_token(subject, 2, node, sizeof(node)) != 0 ||
        bus_subject_token(subject, 3, id, sizeof(id)) != 0)
        return NULL;
    pthread_mutex_lock(&s->xs_mu);
    xs = registry_find(s, id);
    if (xs != NULL && strcmp(xs->node, node) != 0)
        xs = NULL;
    return xs;
}

int shell_exec_on_out(bus_msg *m, void *ud)
{
    const Berth__V1__ShellData *d = (const Berth__V1__ShellData *)m->msg;
    shell_srv *s = ud;
    shell_loop *wake = NULL;
    shell_exec *xs;

    xs = find_locked(s, m->subject);
    if (xs == NULL) {
        pthread_mutex_unlock(&s->xs_mu);
        return 0;
    }
    if (d->data.len > 0 && !xs->overflow) {
        struct xs_chunk *k;

        if (xs->queued + d->data.len > SHELL_OUT_MAX) {
            xs->overflow = 1;
        } else {
            k = malloc(sizeof(*k) + d->data.len);
            if (k == NULL) {
                xs->overflow = 1;
            } else {
                k->next = NULL;
                k->len = d->data.len;
                k->off = 0;
                k->is_stderr = d->stderr != 0;
                memcpy(k->data, d->data.data, d->data.len);
                *xs->inq_tail = k;
                xs->inq_tail = &k->next;
                xs->queued += d->data.len;
            }
        }
    }
    xs->in_granted += d->window;
    if (d->eof)
        xs->got_eof = 1;
    wake = xs->loop;
    pthread_mutex_unlock(&s->xs_mu);
    shell_loop_wake(wake);
    return 0;
}

int shell_exec_on_exit(bus_msg *m, void *ud)
{
    const Berth__V1__ShellExit *e = (const Berth__V1__ShellExit *)m->msg;
    shell_srv *s = ud;
    shell_loop *wake = NULL;
    shell_exec *xs;

    xs = find_locked(s, m->subject);
    if (xs != NULL && !xs->got_exit) {
        xs->got_exit = 1;
        xs->exit_code = e->exit_code;
        snprintf(xs->exit_reason, sizeof(xs->exit_reason), "%s", e->reason);
        wake = xs->loop;
    }
    pthread_mutex_unlock(&s->xs_mu);
    if (wake != NULL)
        shell_loop_wake(wake);
    return 0;
}
