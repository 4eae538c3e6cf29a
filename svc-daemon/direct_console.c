/* direct_console.c - the console websocket of the direct server,
 * /sites/<site>/console (the protocol is in docs/internals/direct.md).
 *
 * A client authenticates (the token in the URL or a first "auth"
 * message), then gets "ready", the replay ring, the site's status, and
 * from then on live output, status changes and stats. It may send input
 * (with site.console.write), power actions (with site.power), pings and
 * fresh tokens; 60 s before its token expires it is told so.
 *
 * Flow. Output reaches the loop from the console thread (the watcher
 * copies each chunk into the inbox); status and stats from the bus
 * (nats.c threads encode them once, then post). On the loop, output is
 * appended to each watching client's pending bytes (capped: past the cap
 * it is dropped and counted, and the client is told how much); control
 * messages wait in a short queue. Each writeable callback sends one
 * message: a queued control message first, else up to 64 KiB of pending
 * output as one "output" message, cut on a UTF-8 boundary. The console
 * thread and the bus never wait for a browser.
 *
 * Ownership: clients belong to the loop thread (created on open, freed on
 * close). The bus handlers' gate outlives the server (no unsubscribe).
 */
#include "svc-daemon/direct_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "site.pb-c.h"

#define CON_MSG_MAX     (64u << 10) /* an incoming message */
#define CON_OUT_MAX     (4u << 20)  /* output pending for one client */
#define CON_OUT_PIECE   (64u << 10) /* output bytes per message */
#define CON_CTRL_MAX    256         /* control messages queued */
#define CON_CTRL_BYTES  (1u << 20)
#define CON_REPLAY_MAX  (512u << 10) /* the newest of a larger ring */
#define CON_AUTH_MS     10000       /* for the first auth message */
#define CON_WARN_S      60          /* "token.expiring" this long before */
#define CON_RATE        100         /* messages a second, */
#define CON_BURST       200         /* in bursts of */
#define CON_POWER_MS    10000       /* for the panel's answer */
#define CON_WSOUT_MAX   (LWS_PRE + 6 * CON_OUT_PIECE + 4096)

/* The ways the power message may name an action. */
static const struct {
    const char *name;
    int action;
} actions[] = {
    {"start", BERTH__V1__POWER_ACTION__POWER_ACTION_START},
    {"stop", BERTH__V1__POWER_ACTION__POWER_ACTION_STOP},
    {"restart", BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART},
    {"kill", BERTH__V1__POWER_ACTION__POWER_ACTION_KILL},
};

/* A queued control message; data has LWS_PRE bytes in front. */
typedef struct cmsg {
    struct cmsg *next;
    size_t len;
    unsigned char data[];
} cmsg;

struct dd_client {
    dd_client *prev, *next; /* d->clients */
    daemon_direct *d;
    dd_conn *c;
    uint64_t id;
    char site[DD_ID_MAX];
    bool authed;
    bool closing;
    int close_code;
    char close_why[64];
    dd_claims claims;
    bool warned;       /* told its token expires soon */
    int64_t opened_ms;
    uint64_t start_seq; /* output below it came in the replay */
    int64_t status_ms;  /* changes before it are in the status sent */
    buf rx;            /* the message being received */
    cmsg *head, *tail; /* control messages */
    int nmsgs;
    size_t nbytes;
    buf out;           /* pending output */
    uint64_t dropped;  /* output bytes dropped since the last notice */
    int64_t tokens;    /* rate limit: milli-messages */
    int64_t tokens_ms;
    int64_t throttled_ms;
    bool power_busy;
};

/* What the other threads post to the loop. */
enum ev_kind { EV_OUTPUT, EV_EVENT, EV_REVOKED };

typedef struct ev {
    dd_job job;
    daemon_direct *d;
    enum ev_kind kind;
    char site[DD_ID_MAX];
    char user[DD_ID_MAX];
    uint64_t seq;
    int64_t at; /* EV_REVOKED: seconds; EV_EVENT: the change's ms (0:
                   stats) */
    size_t len;
    char data[];
} ev;

/* A power action on a worker. */
typedef struct power_job {
    dd_job job;
    daemon_direct *d;
    uint64_t client;
    char site[DD_ID_MAX];
    char user[DD_ID_MAX];
    int action;
    const char *name;
    int rc;
    char err[256];
} power_job;

static pthread_mutex_t gates_mu = PTHREAD_MUTEX_INITIALIZER;
static dd_gate *gates;

/* ------------------------------------------------------------ sending */

/* Queues a control message (copied). Returns 0 or a code (too many
 * queued: the client is too slow; it is closed). */
static int send_ctrl(dd_client *cl, const char *json, size_t len)
{
    cmsg *m;

    if (cl->c == NULL || cl->c->wsi == NULL || cl->closing)
        return BERTH_EUNAVAIL;
    if (cl->nmsgs >= CON_CTRL_MAX || cl->nbytes + len > CON_CTRL_BYTES) {
        log_warn("direct console client too slow; closing", "site=%s user=%s",
                 cl->site, cl->claims.user);
        cl->closing = true;
        cl->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
        snprintf(cl->close_why, sizeof(cl->close_why), "too slow");
        lws_callback_on_writable(cl->c->wsi);
        return BERTH_ETOOBIG;
    }
    m = malloc(sizeof(*m) + LWS_PRE + len);
    if (m == NULL)
        return BERTH_ENOMEM;
    m->next = NULL;
    m->len = len;
    memcpy(m->data + LWS_PRE, json, len);
    if (cl->tail != NULL)
        cl->tail->next = m;
    else
        cl->head = m;
    cl->tail = m;
    cl->nmsgs++;
    cl->nbytes += len;
    lws_callback_on_writable(cl->c->wsi);
    return 0;
}

/* Queues j (consumed) as a message. */
static int send_json(dd_client *cl, json_t *j)
{
    char *s;
    int rc;

    if (j == NULL)
        return BERTH_ENOMEM;
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        return BERTH_ENOMEM;
    rc = send_ctrl(cl, s, strlen(s));
    free(s);
    return rc;
}

static void send_error(dd_client *cl, int code, const char *msg)
{
    send_json(cl, json_pack("{s:s, s:s, s:s}", "type", "error", "code",
                            berth_errname(code), "message", msg));
}

/* Sends what is queued, then closes with code and why. */
static void close_after(dd_client *cl, int code, const char *why)
{
    if (cl->closing || cl->c == NULL || cl->c->wsi == NULL)
        return;
    cl->closing = true;
    cl->close_code = code;
    snprintf(cl->close_why, sizeof(cl->close_why), "%s", why);
    lws_callback_on_writable(cl->c->wsi);
}

/* Appends output for the client, or counts it as dropped. */
static void add_output(dd_client *cl, const char *p, size_t n)
{
    if (cl->closing)
        return;
    if (buf_append(&cl->out, p, n) != 0) {
        cl->dropped += n;
        return;
    }
    lws_callback_on_writable(cl->c->wsi);
}

/* How many of p[0..n) can go out now without cutting a UTF-8 sequence
 * at the end: a lead byte whose sequence is not complete waits (unless
 * more than 3 bytes back, i.e. it was never going to be one). */
static size_t utf8_cut(const unsigned char *p, size_t n)
{
    size_t back;

    for (back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = p[n - back];
        size_t need;

        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: look further back */
        need = c >= 0xf0 && c <= 0xf4   ? 4
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xc2 && c <= 0xdf ? 2
                                        : 1;
        return need > back ? n - back : n;
    }
    return n;
}

/* Builds {"type":kind,"data":"..."} of p[0..n) in d->wsout after LWS_PRE
 * bytes. Returns 0 or a code. */
static int encode_output(daemon_direct *d, const char *kind, const char *p,
                         size_t n)
{
    buf *b = &d->wsout;
    int rc;

    buf_reset(b);
    if (buf_reserve(b, LWS_PRE) == NULL)
        return BERTH_ENOMEM;
    buf_commit(b, LWS_PRE);
    rc = buf_printf(b, "{\"type\":\"%s\",\"data\":", kind);
    if (rc == 0)
        rc = dd_json_str(b, p, n);
    if (rc == 0)
        rc = buf_putc(b, '}');
    return rc;
}

/* Sends the replay: whole messages of at most CON_OUT_PIECE bytes, the
 * first starting on a character. */
static void send_replay(dd_client *cl, const char *p, size_t n)
{
    daemon_direct *d = cl->d;
    size_t skip = 0;

    while (skip < n && skip < 3 && ((unsigned char)p[skip] & 0xc0) == 0x80)
        skip++;
    p += skip;
    n -= skip;
    while (n > 0) {
        size_t take = n < CON_OUT_PIECE ? n : CON_OUT_PIECE;

        if (take < n)
            take = utf8_cut((const unsigned char *)p, take);
        if (take == 0)
            take = n < CON_OUT_PIECE ? n : CON_OUT_PIECE;
        if (encode_output(d, "replay", p, take) != 0 ||
            send_ctrl(cl, d->wsout.data + LWS_PRE, d->wsout.len - LWS_PRE) != 0)
            return;
        p += take;
        n -= take;
    }
}

/* The status event of the site as the sites module knows it now. */
static void send_status(dd_client *cl)
{
    daemon_direct *d = cl->d;
    Berth__V1__SiteStatus st;
    char reason[256];
    buf b;

    if (d->sites == NULL ||
        daemon_sites_status(d->sites, cl->site, &st, reason, sizeof(reason)) !=
            0)
        return;
    cl->status_ms = st.at_ms;
    buf_init(&b, 64 << 10);
    if (buf_printf(&b,
                   "{\"type\":\"site.status\",\"siteId\":\"%s\",\"nodeId\":"
                   "\"%s\",\"data\":",
                   cl->site, d->node) == 0 &&
        codec_to_json(&st.base, &b) == 0 && buf_putc(&b, '}') == 0)
        send_ctrl(cl, b.data, b.len);
    buf_free(&b);
}

/* ------------------------------------------------------------ clients */

static dd_client *client_find(daemon_direct *d, uint64_t id)
{
    dd_client *cl;

    for (cl = d->clients; cl != NULL; cl = cl->next) {
        if (cl->id == id)
            return cl;
    }
    return NULL;
}

/* The token checked out: say so, replay, status. */
static void become_ready(dd_client *cl)
{
    daemon_direct *d = cl->d;
    char *data = NULL;
    size_t len = 0;
    uint64_t next = 0;

    cl->authed = true;
    cl->warned = false;
    send_json(cl, json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "type", "ready",
                            "site", cl->site, "node", d->node, "user",
                            cl->claims.user, "perms",
                            dd_perm_names(cl->claims.perms), "expiresAt",
                            (json_int_t)cl->claims.exp));
    if (daemon_console_replay(d->console, cl->site, CON_REPLAY_MAX, &data, &len,
                              &next) == 0) {
        cl->start_seq = next;
        send_replay(cl, data, len);
    }
    free(data);
    send_status(cl);
    log_info("direct console opened", "site=%s user=%s", cl->site,
             cl->claims.user);
}

/* Checks a token for this client: the first (opens the console) or a
 * fresh one (extends it). */
static void authenticate(dd_client *cl, const char *token)
{
    daemon_direct *d = cl->d;
    char why[256];
    dd_claims c;
    int rc;

    rc = dd_auth_check(d, token, cl->site, "console", DD_PERM_CONSOLE_READ,
                       &c, why, sizeof(why));
    if (rc == 0 && cl->authed && strcmp(c.user, cl->claims.user) != 0) {
        rc = BERTH_EPERM;
        snprintf(why, sizeof(why), "a fresh token must be for the same user");
    }
    if (rc == 0 && !cl->authed && d->sites != NULL) {
        Berth__V1__SiteStatus st;
        char reason[8];

        if (daemon_sites_status(d->sites, cl->site, &st, reason,
                                sizeof(reason)) != 0) {
            rc = BERTH_ENOENT;
            snprintf(why, sizeof(why), "no site %s on this node", cl->site);
        }
    }
    if (rc != 0) {
        send_error(cl, rc, why);
        if (!cl->authed)
            close_after(cl, LWS_CLOSE_STATUS_POLICY_VIOLATION, "refused");
        return;
    }
    cl->claims = c;
    if (cl->authed) {
        cl->warned = false;
        send_json(cl, json_pack("{s:s, s:o, s:I}", "type", "auth.ok", "perms",
                                dd_perm_names(c.perms), "expiresAt",
                                (json_int_t)c.exp));
        return;
    }
    become_ready(cl);
}

int dd_console_open(daemon_direct *d, dd_conn *c, const char *site,
                    const char *token)
{
    dd_client *cl = calloc(1, sizeof(*cl));

    if (cl == NULL)
        return -1;
    cl->d = d;
    cl->c = c;
    cl->id = ++d->next_client;
    snprintf(cl->site, sizeof(cl->site), "%s", site);
    cl->opened_ms = clock_mono_ms();
    cl->tokens = CON_BURST * 1000;
    cl->tokens_ms = cl->opened_ms;
    buf_init(&cl->rx, CON_MSG_MAX);
    buf_init(&cl->out, CON_OUT_MAX);
    cl->next = d->clients;
    if (d->clients != NULL)
        d->clients->prev = cl;
    d->clients = cl;
    c->ws = cl;
    atomic_fetch_add(&d->nclients, 1);
    if (token != NULL && token[0] != '\0')
        authenticate(cl, token);
    return 0;
}

void dd_console_closed(dd_conn *c)
{
    dd_client *cl = c->ws;
    daemon_direct *d;
    cmsg *m, *next;

    if (cl == NULL)
        return;
    d = cl->d;
    c->ws = NULL;
    if (cl->prev != NULL)
        cl->prev->next = cl->next;
    else
        d->clients = cl->next;
    if (cl->next != NULL)
        cl->next->prev = cl->prev;
    for (m = cl->head; m != NULL; m = next) {
        next = m->next;
        free(m);
    }
    if (cl->authed)
        log_info("direct console closed", "site=%s user=%s", cl->site,
                 cl->claims.user);
    buf_free(&cl->rx);
    buf_free(&cl->out);
    atomic_fetch_sub(&d->nclients, 1);
    free(cl);
}

/* ------------------------------------------------------------ receiving */

/* The panel keeps each site's desired state, so a power action from the
 * console goes to it as the user-level site.power, on behalf of the
 * token's user: the panel checks that user's permission again, records
 * the new desired state, audits and sends the command to this node
 * through the durable queue like any other. Done directly here, the next
 * reconcile would undo it. */
static void power_run(dd_job *j)
{
    power_job *p = (power_job *)j;
    Berth__V1__SitePower req = BERTH__V1__SITE_POWER__INIT;
    ProtobufCMessage *reply = NULL;
    bus_error be = {0};

    req.site_id = p->site;
    req.action = (Berth__V1__PowerAction)p->action;
    req.user_id = p->user;
    p->rc = bus_request(p->d->bus, "site.power", &req.base, CON_POWER_MS,
                        &reply, &be);
    if (p->rc != 0)
        snprintf(p->err, sizeof(p->err), "%s",
                 be.message[0] != '\0' ? be.message
                 : p->rc == BERTH_ETIMEDOUT
                     ? "the panel did not answer"
                     : berth_strerror(p->rc));
    if (reply != NULL)
        protobuf_c_message_free_unpacked(reply, NULL);
}

static void power_done(dd_job *j, bool stopping)
{
    power_job *p = (power_job *)j;
    dd_client *cl = stopping ? NULL : client_find(p->d, p->client);

    log_info("direct power action", "site=%s action=%s user=%s error=%s",
             p->site, p->name, p->user,
             p->rc == 0 ? "" : berth_errname(p->rc));
    if (cl != NULL) {
        cl->power_busy = false;
        if (p->rc == 0)
            send_json(cl, json_pack("{s:s, s:s, s:b}", "type", "power",
                                    "action", p->name, "ok", 1));
        else
            send_json(cl, json_pack("{s:s, s:s, s:b, s:s, s:s}", "type",
                                    "power", "action", p->name, "ok", 0,
                                    "code", berth_errname(p->rc), "message",
                                    p->err));
    }
    free(p);
}

static void on_power(dd_client *cl, json_t *msg)
{
    const char *name = json_string_value(json_object_get(msg, "action"));
    power_job *p;
    size_t i;

    if (!(cl->claims.perms & DD_PERM_POWER)) {
        send_error(cl, BERTH_EPERM, "permission site.power required");
        return;
    }
    for (i = 0; name != NULL && i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcmp(name, actions[i].name) == 0)
            break;
    }
    if (name == NULL || i == sizeof(actions) / sizeof(actions[0])) {
        send_error(cl, BERTH_EINVAL,
                   "\"action\" must be start, stop, restart or kill");
        return;
    }
    if (cl->power_busy) {
        send_error(cl, BERTH_EBUSY, "a power action is under way");
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        send_error(cl, BERTH_ENOMEM, "out of memory");
        return;
    }
    p->job.run = power_run;
    p->job.done = power_done;
    p->d = cl->d;
    p->client = cl->id;
    p->action = actions[i].action;
    p->name = actions[i].name;
    snprintf(p->site, sizeof(p->site), "%s", cl->site);
    snprintf(p->user, sizeof(p->user), "%s", cl->claims.user);
    cl->power_busy = true;
    dd_submit(cl->d, &p->job);
}

static void on_input(dd_client *cl, json_t *msg, bool line)
{
    json_t *jd = json_object_get(msg, "data");
    const char *data = json_string_value(jd);
    size_t len = json_string_length(jd);
    char *with_nl = NULL;
    int rc;

    if (!(cl->claims.perms & DD_PERM_CONSOLE_WRITE)) {
        send_error(cl, BERTH_EPERM, "permission site.console.write required");
        return;
    }
    if (data == NULL) {
        send_error(cl, BERTH_EINVAL, "\"data\" must be a string");
        return;
    }
    if (line) {
        with_nl = malloc(len + 1);
        if (with_nl == NULL) {
            send_error(cl, BERTH_ENOMEM, "out of memory");
            return;
        }
        memcpy(with_nl, data, len);
        with_nl[len++] = '\n';
        data = with_nl;
    }
    rc = daemon_console_write(cl->d->console, cl->site, data, len);
    free(with_nl);
    if (rc == BERTH_ENOENT)
        send_error(cl, rc, "the site is not running");
    else if (rc == BERTH_ETOOBIG)
        send_error(cl, rc, "the site does not read its input; input dropped");
    else if (rc != 0)
        send_error(cl, rc, berth_strerror(rc));
}

/* Takes one message from the bucket; false when the client is over its
 * rate (told so at most once a second). */
static bool rate_ok(dd_client *cl)
{
    int64_t now = clock_mono_ms();

    cl->tokens += (now - cl->tokens_ms) * CON_RATE;
    cl->tokens_ms = now;
    if (cl->tokens > CON_BURST * 1000)
        cl->tokens = CON_BURST * 1000;
    if (cl->tokens >= 1000) {
        cl->tokens -= 1000;
        return true;
    }
    if (now - cl->throttled_ms >= 1000) {
        cl->throttled_ms = now;
        send_error(cl, BERTH_ETHROTTLE, "too many messages; some were ignored");
    }
    return false;
}

static void on_message(dd_client *cl, const char *text, size_t len)
{
    json_error_t err;
    json_t *msg;
    const char *type;

    if (!rate_ok(cl))
        return;
    msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    type = json_string_value(json_object_get(msg, "type"));
    if (type == NULL) {
        send_error(cl, BERTH_EPROTO,
                   msg == NULL ? "invalid JSON" : "a message needs a \"type\"");
        if (!cl->authed)
            close_after(cl, LWS_CLOSE_STATUS_POLICY_VIOLATION, "refused");
        goto out;
    }
    if (strcmp(type, "auth") == 0) {
        authenticate(cl, json_string_value(json_object_get(msg, "token")));
    } else if (!cl->authed) {
        send_error(cl, BERTH_EAUTH, "send {\"type\":\"auth\",\"token\":...} "
                                    "first");
        close_after(cl, LWS_CLOSE_STATUS_POLICY_VIOLATION, "refused");
    } else if (strcmp(type, "input") == 0) {
        on_input(cl, msg, false);
    } else if (strcmp(type, "line") == 0) {
        on_input(cl, msg, true);
    } else if (strcmp(type, "power") == 0) {
        on_power(cl, msg);
    } else if (strcmp(type, "ping") == 0) {
        send_ctrl(cl, "{\"type\":\"pong\"}", 15);
    } else {
        send_error(cl, BERTH_EPROTO, "unknown message type");
    }
out:
    json_decref(msg);
}

int dd_console_receive(dd_conn *c, const void *in, size_t len)
{
    dd_client *cl = c->ws;

    if (lws_frame_is_binary(c->wsi)) {
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                         (unsigned char *)"text only", 9);
        return -1;
    }
    if (buf_append(&cl->rx, in, len) != 0) {
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)"message too big", 15);
        return -1;
    }
    if (!lws_is_final_fragment(c->wsi))
        return 0;
    if (!cl->closing)
        on_message(cl, cl->rx.data != NULL ? cl->rx.data : "", cl->rx.len);
    buf_reset(&cl->rx);
    return 0;
}

/* ------------------------------------------------------------ writing */

int dd_console_writeable(dd_conn *c)
{
    dd_client *cl = c->ws;
    daemon_direct *d = cl->d;
    unsigned char *p;
    size_t n;
    cmsg *m = cl->head;

    if (m != NULL) {
        cl->head = m->next;
        if (cl->head == NULL)
            cl->tail = NULL;
        cl->nmsgs--;
        cl->nbytes -= m->len;
        n = m->len;
        if (lws_write(c->wsi, m->data + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n) {
            free(m);
            return -1;
        }
        free(m);
        goto more;
    }
    if (cl->closing) {
        lws_close_reason(c->wsi, (enum lws_close_status)cl->close_code,
                         (unsigned char *)cl->close_why,
                         strlen(cl->close_why));
        return -1;
    }
    if (cl->dropped > 0) {
        char note[96];
        int k = snprintf(note, sizeof(note),
                         "{\"type\":\"dropped\",\"bytes\":%llu}",
                         (unsigned long long)cl->dropped);

        cl->dropped = 0;
        send_ctrl(cl, note, (size_t)k);
        goto more;
    }
    if (cl->out.len == 0)
        return 0;
    n = cl->out.len < CON_OUT_PIECE ? cl->out.len : CON_OUT_PIECE;
    n = utf8_cut((const unsigned char *)cl->out.data, n);
    if (n == 0)
        return 0; /* only the start of a character: wait for the rest */
    if (encode_output(d, "output", cl->out.data, n) != 0)
        return -1;
    p = (unsigned char *)d->wsout.data + LWS_PRE;
    if (lws_write(c->wsi, p, d->wsout.len - LWS_PRE, LWS_WRITE_TEXT) <
        (int)(d->wsout.len - LWS_PRE))
        return -1;
    memmove(cl->out.data, cl->out.data + n, cl->out.len - n);
    cl->out.len -= n;
    cl->out.data[cl->out.len] = '\0';
    if (cl->out._cap > (256u << 10) && cl->out.len == 0)
        buf_free(&cl->out);
more:
    if (cl->head != NULL || cl->out.len > 0 || cl->closing || cl->dropped > 0)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* ------------------------------------------------------------ the loop */

void dd_console_tick(daemon_direct *d, int64_t now_ms)
{
    int64_t now_s = now_ms / 1000, mono = clock_mono_ms();
    dd_client *cl;

    for (cl = d->clients; cl != NULL; cl = cl->next) {
        if (cl->closing)
            continue;
        if (!cl->authed) {
            if (mono - cl->opened_ms >= CON_AUTH_MS) {
                send_error(cl, BERTH_EAUTH, "no token within 10 s");
                close_after(cl, LWS_CLOSE_STATUS_POLICY_VIOLATION, "no token");
            }
            continue;
        }
        if (cl->claims.exp <= now_s) {
            send_error(cl, BERTH_EAUTH, "the token has expired");
            close_after(cl, LWS_CLOSE_STATUS_POLICY_VIOLATION, "expired");
        } else if (!cl->warned && cl->claims.exp - now_s <= CON_WARN_S) {
            cl->warned = true;
            send_json(cl, json_pack("{s:s, s:I, s:I}", "type", "token.expiring",
                                    "expiresIn",
                                    (json_int_t)(cl->claims.exp - now_s),
                                    "expiresAt", (json_int_t)cl->claims.exp));
        }
    }
}

void dd_console_revoked(daemon_direct *d, const char *user, const char *site)
{
    dd_client *cl;

    for (cl = d->clients; cl != NULL; cl = cl->next) {
        if (!cl->authed ||
            (user[0] != '\0' && strcmp(cl->claims.user, user) != 0) ||
            (site[0] != '\0' && strcmp(cl->site, site) != 0))
            continue;
        send_error(cl, BERTH_EAUTH, "access was revoked");
        close_after(cl, LWS_CLOSE_STATUS_POLICY_VIOLATION, "revoked");
    }
}

void dd_console_close_all(daemon_direct *d)
{
    dd_client *cl;

    for (cl = d->clients; cl != NULL; cl = cl->next)
        close_after(cl, LWS_CLOSE_STATUS_GOINGAWAY, "node stopping");
}

static void ev_done(dd_job *j, bool stopping)
{
    ev *e = (ev *)j;
    daemon_direct *d = e->d;
    dd_client *cl;

    if (stopping)
        goto out;
    switch (e->kind) {
    case EV_OUTPUT:
        pthread_mutex_lock(&d->ilock);
        d->ibytes -= e->len;
        pthread_mutex_unlock(&d->ilock);
        for (cl = d->clients; cl != NULL; cl = cl->next) {
            if (cl->authed && e->seq >= cl->start_seq &&
                strcmp(cl->site, e->site) == 0)
                add_output(cl, e->data, e->len);
        }
        break;
    case EV_EVENT:
        /* A change older than the state a client was sent on connecting
         * is in it already (e->at is 0 for stats). */
        for (cl = d->clients; cl != NULL; cl = cl->next) {
            if (cl->authed && strcmp(cl->site, e->site) == 0 &&
                (e->at == 0 || e->at >= cl->status_ms))
                send_ctrl(cl, e->data, e->len);
        }
        break;
    case EV_REVOKED:
        dd_auth_revoke(d, e->user, e->site, e->at);
        dd_console_revoked(d, e->user, e->site);
        break;
    }
out:
    free(e);
}

static ev *ev_new(daemon_direct *d, enum ev_kind kind, const char *site,
                  size_t len)
{
    ev *e = malloc(sizeof(*e) + len + 1);

    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->job.done = ev_done;
    e->d = d;
    e->kind = kind;
    e->len = len;
    snprintf(e->site, sizeof(e->site), "%s", site);
    return e;
}

/* The console's watcher (console thread, console lock held). */
static void on_output(void *ud, const char *site, uint64_t seq, int stream,
                      const void *data, size_t len)
{
    daemon_direct *d = ud;
    ev *e;

    (void)stream;
    if (atomic_load(&d->nclients) == 0 || len == 0)
        return;
    pthread_mutex_lock(&d->ilock);
    if (d->ibytes + len > DD_INBOX_MAX) {
        d->idropped += len;
        pthread_mutex_unlock(&d->ilock);
        return;
    }
    d->ibytes += len;
    pthread_mutex_unlock(&d->ilock);
    e = ev_new(d, EV_OUTPUT, site, len);
    if (e != NULL) {
        e->seq = seq;
        memcpy(e->data, data, len);
    }
    if (e == NULL || dd_post(d, &e->job) != 0) {
        pthread_mutex_lock(&d->ilock);
        d->ibytes -= len;
        pthread_mutex_unlock(&d->ilock);
        free(e);
    }
}

/* site.status.<node>.<site> and container.stats.<node>.<site>. */
static int on_site_event(bus_msg *m, void *ud)
{
    dd_gate *g = ud;
    const char *type = strncmp(m->subject, "site.status.", 12) == 0
                           ? "site.status"
                           : "site.stats";
    char site[DD_ID_MAX];
    daemon_direct *d;
    buf b;
    ev *e;
    int rc = 0;

    if (bus_subject_token(m->subject, 3, site, sizeof(site)) != 0 ||
        !bus_token_valid(site))
        return 0;
    pthread_rwlock_rdlock(&g->lock);
    d = g->d;
    if (d == NULL || atomic_load(&d->nclients) == 0)
        goto out;
    buf_init(&b, 256 << 10);
    rc = buf_printf(&b,
                    "{\"type\":\"%s\",\"siteId\":\"%s\",\"nodeId\":\"%s\","
                    "\"data\":",
                    type, site, d->node);
    if (rc == 0)
        rc = codec_to_json(m->msg, &b);
    if (rc == 0)
        rc = buf_putc(&b, '}');
    e = rc == 0 ? ev_new(d, EV_EVENT, site, b.len) : NULL;
    if (e != NULL) {
        if (m->msg->descriptor == &berth__v1__site_status__descriptor)
            e->at = ((const Berth__V1__SiteStatus *)(const void *)m->msg)
                        ->at_ms;
        memcpy(e->data, b.data, b.len);
        if (dd_post(d, &e->job) != 0)
            free(e);
    }
    buf_free(&b);
out:
    pthread_rwlock_unlock(&g->lock);
    return 0;
}

/* access.revoked.<user> (or .all, for a site deleted): that user's (or
 * everyone's) consoles of the site (or of every site) close, and tokens
 * issued before are refused. */
static int on_revoked(bus_msg *m, void *ud)
{
    const Berth__V1__AccessRevoked *r = (const void *)m->msg;
    dd_gate *g = ud;
    char user[DD_ID_MAX];
    daemon_direct *d;
    ev *e;

    if (bus_subject_token(m->subject, 2, user, sizeof(user)) != 0)
        return 0;
    if (strcmp(user, "all") == 0)
        user[0] = '\0';
    pthread_rwlock_rdlock(&g->lock);
    d = g->d;
    if (d != NULL) {
        e = ev_new(d, EV_REVOKED,
                   r->site_id != NULL && strlen(r->site_id) < DD_ID_MAX
                       ? r->site_id
                       : "",
                   0);
        if (e != NULL) {
            snprintf(e->user, sizeof(e->user), "%s", user);
            e->at = (r->at_ms > 0 ? r->at_ms : clock_wall_ms()) / 1000;
            if (dd_post(d, &e->job) != 0)
                free(e);
        }
        log_info("direct access revoked", "user=%s site=%s",
                 user[0] != '\0' ? user : "all",
                 r->site_id != NULL ? r->site_id : "");
    }
    pthread_rwlock_unlock(&g->lock);
    return 0;
}

int dd_console_start(daemon_direct *d)
{
    char filter[256];
    dd_gate *g;
    int rc;

    buf_init(&d->wsout, CON_WSOUT_MAX);
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return BERTH_ENOMEM;
    pthread_rwlock_init(&g->lock, NULL);
    g->d = d;
    d->gate = g;
    pthread_mutex_lock(&gates_mu);
    g->next = gates;
    gates = g;
    pthread_mutex_unlock(&gates_mu);
    if (d->console != NULL)
        daemon_console_watch(d->console, on_output, d);
    snprintf(filter, sizeof(filter), "site.status.%s.*", d->node);
    rc = bus_subscribe(d->bus, filter, NULL, on_site_event, g);
    if (rc == 0) {
        snprintf(filter, sizeof(filter), "container.stats.%s.*", d->node);
        rc = bus_subscribe(d->bus, filter, NULL, on_site_event, g);
    }
    if (rc == 0)
        rc = bus_subscribe(d->bus, "access.revoked.*", NULL, on_revoked, g);
    if (rc != 0)
        log_error("direct subscriptions failed", "error=%s",
                  berth_strerror(rc));
    return rc;
}

void dd_console_stop(daemon_direct *d)
{
    if (d->console != NULL)
        daemon_console_watch(d->console, NULL, NULL);
    if (d->gate != NULL) {
        pthread_rwlock_wrlock(&d->gate->lock);
        d->gate->d = NULL;
        pthread_rwlock_unlock(&d->gate->lock);
    }
}
