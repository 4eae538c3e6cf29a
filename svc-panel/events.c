/* events.c - live events over the /ws websocket (see events.h and
 * docs/internals/events.md).
 *
 * Layout: types and tables, the bus side (encode once, queue, wake the
 * loop), the loop side (fan-out, time-outs, notices), the websocket hooks
 * and the client protocol, then start-up and shutdown.
 *
 * Ownership. The queue of encoded events (struct ev_msg) and the flags
 * `posted` and `stopped` are guarded by e->lock. Clients (struct client)
 * live on a list owned by the loop thread: created by the open hook, freed
 * by the close hook, touched by nothing else. The loop takes the whole
 * queue at once and frees each event after its fan-out.
 */
#include "svc-panel/events.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/codec.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-panel/store.h"

#define TICK_MS 250            /* the ticker's period */
#define NOTICE_MS 1000         /* at most one notice of a kind per second */
#define ID_MAX 64              /* longest node or site id from a subject */

enum topic {
    TOPIC_SITE_STATUS = 1 << 0,
    TOPIC_SITE_STATS = 1 << 1,
    TOPIC_NODE = 1 << 2,
};

/* The topics a browser may subscribe to. */
static const struct {
    const char *name;
    unsigned bit;
} topics[] = {
    {"site.status", TOPIC_SITE_STATUS},
    {"site.stats", TOPIC_SITE_STATS},
    {"node", TOPIC_NODE},
};

#define NTOPICS (sizeof(topics) / sizeof(topics[0]))

/* What the panel subscribes to, and how each subject becomes an event:
 * the subject's third token is the node id, the fourth (if any) the site. */
static const struct source {
    const char *filter;
    const char *type; /* the event's "type" */
    unsigned topic;
    int has_site;
} sources[] = {
    {"site.status.*.*", "site.status", TOPIC_SITE_STATUS, 1},
    {"container.stats.*.*", "site.stats", TOPIC_SITE_STATS, 1},
    {"node.online.*", "node.online", TOPIC_NODE, 0},
    {"node.stats.*", "node.stats", TOPIC_NODE, 0},
};

#define NSOURCES (sizeof(sources) / sizeof(sources[0]))

/* One encoded event on its way to the loop. */
struct ev_msg {
    struct ev_msg *next;
    unsigned topic;
    char site_id[ID_MAX + 1]; /* "" for node events */
    size_t len;
    char *json; /* owned */
};

/* A websocket client (loop thread only). */
typedef struct client {
    struct client *prev, *next;
    http_ws *ws;
    int authed;
    int closing; /* an error was sent and the close requested */
    char user_id[40];
    uint32_t perms;  /* role permissions, refreshed per batch */
    unsigned topics; /* enum topic bits */
    int64_t opened_ms;
    int64_t allow;    /* rate limit: milli-messages in the bucket */
    int64_t allow_at; /* when the bucket was last filled */
    int64_t throttle_notice_ms;
    uint64_t dropped; /* events not queued since the last notice */
    int64_t dropped_notice_ms;
} client;

/* The user data of one bus subscription. */
struct sub {
    events *e;
    const struct source *src;
};

struct events {
    panel *p;
    struct sub subs[NSOURCES];

    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* wakes the ticker to stop */
    struct ev_msg *head, *tail;
    size_t qlen, qbytes;
    int posted;  /* on_loop() is queued on the loop */
    int stopped; /* events_stop() was called */
    uint64_t qdropped;   /* since the last log line */
    int64_t qdrop_log_ms;
    pthread_t ticker;
    int ticker_on;

    /* loop thread only */
    client *clients;
    int64_t next_tick_ms;

    /* counters, any thread */
    atomic_uint_fast64_t n_received, n_sent, n_drop_queue, n_drop_client;
};

/* ------------------------------------------------------------ bus side */

/* Wakes the loop unless a wake-up is pending. Called with e->lock held. */
static void on_loop(panel *p, void *arg);

static void wake_locked(events *e)
{
    if (e->posted || e->stopped)
        return;
    if (http_post(e->p->http, on_loop, e) == 0)
        e->posted = 1;
}

/* Copies token n (0-based) of subject into out when it is a plausible id:
 * 1 to ID_MAX characters of [A-Za-z0-9_-]. Such ids need no JSON escaping.
 * Returns 0 or BERTH_EINVAL. */
static int subject_token(const char *subject, int n, char out[ID_MAX + 1])
{
    const char *s = subject;
    size_t len = 0;

    while (n > 0 && s != NULL) {
        s = strchr(s, '.');
        if (s != NULL)
            s++;
        n--;
    }
    if (s == NULL)
        return BERTH_EINVAL;
    while (s[len] != '\0' && s[len] != '.') {
        char c = s[len];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_') ||
            len == ID_MAX)
            return BERTH_EINVAL;
        out[len] = c;
        len++;
    }
    out[len] = '\0';
    return len > 0 ? 0 : BERTH_EINVAL;
}

/* Queues an event for the loop (takes ownership of m), or drops it when
 * the queue is full or the module stopped. Never waits for the loop. */
static void enqueue(events *e, struct ev_msg *m)
{
    uint64_t report = 0;
    int64_t now = clock_mono_ms();

    pthread_mutex_lock(&e->lock);
    if (e->stopped || e->qlen >= EVENTS_QUEUE_MAX ||
        e->qbytes + m->len > EVENTS_QUEUE_BYTES) {
        atomic_fetch_add(&e->n_drop_queue, 1);
        e->qdropped++;
        if (now - e->qdrop_log_ms >= NOTICE_MS && !e->stopped) {
            report = e->qdropped;
            e->qdropped = 0;
            e->qdrop_log_ms = now;
        }
        pthread_mutex_unlock(&e->lock);
        if (report > 0)
            log_warn("live events dropped: the loop is behind",
                     "count=%llu", (unsigned long long)report);
        free(m->json);
        free(m);
        return;
    }
    if (e->tail != NULL)
        e->tail->next = m;
    else
        e->head = m;
    e->tail = m;
    e->qlen++;
    e->qbytes += m->len;
    wake_locked(e);
    pthread_mutex_unlock(&e->lock);
}

/* A bus message (nats.c thread): encode it once, queue it. */
static int on_bus(bus_msg *bm, void *ud)
{
    const struct sub *s = ud;
    events *e = s->e;
    char node[ID_MAX + 1], site[ID_MAX + 1] = "";
    struct ev_msg *m = NULL;
    buf b;
    int rc;

    atomic_fetch_add(&e->n_received, 1);
    if (subject_token(bm->subject, 2, node) != 0 ||
        (s->src->has_site && subject_token(bm->subject, 3, site) != 0)) {
        log_debug("live event with odd ids skipped", "subject=%s", bm->subject);
        return 0;
    }
    buf_init(&b, EVENTS_JSON_MAX);
    rc = buf_printf(&b, "{\"type\":\"%s\",", s->src->type);
    if (rc == 0 && s->src->has_site)
        rc = buf_printf(&b, "\"siteId\":\"%s\",", site);
    if (rc == 0)
        rc = buf_printf(&b, "\"nodeId\":\"%s\",\"data\":", node);
    if (rc == 0)
        rc = codec_to_json(bm->msg, &b);
    if (rc == 0)
        rc = buf_putc(&b, '}');
    if (rc == 0) {
        m = calloc(1, sizeof(*m));
        rc = m != NULL ? 0 : BERTH_ENOMEM;
    }
    if (rc != 0) {
        log_warn("live event not forwarded", "subject=%s error=%s",
                 bm->subject, berth_strerror(rc));
        buf_free(&b);
        return 0;
    }
    m->topic = s->src->topic;
    memcpy(m->site_id, site, sizeof(site));
    m->json = buf_detach(&b, &m->len);
    if (m->json == NULL) {
        free(m);
        return 0;
    }
    enqueue(e, m);
    return 0;
}

/* Runs until events_stop(): wakes the loop every TICK_MS. */
static void *ticker_main(void *arg)
{
    events *e = arg;
    struct timespec ts;

    pthread_mutex_lock(&e->lock);
    while (!e->stopped) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->cond, &e->lock, &ts);
        wake_locked(e);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* ------------------------------------------------------------ loop side */

/* Sends j (consumed) to c. Returns what http_ws_send() returns. */
static int send_json(client *c, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = BERTH_ENOMEM;

    if (text != NULL)
        rc = http_ws_send(c->ws, text, strlen(text));
    free(text);
    json_decref(j);
    return rc;
}

/* Sends {"type":"error","code":...,"message":...}. */
static void send_error(client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_error(client *c, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_json(c, json_pack("{s:s, s:s, s:s}", "type", "error", "code",
                           berth_errname(code), "message", msg));
}

/* Sends an error and closes once it is out. */
static void client_fail(client *c, int code, const char *msg)
{
    if (c->closing)
        return;
    send_error(c, code, "%s", msg);
    c->closing = 1;
    http_ws_close(c->ws);
}

/* Tells c how many events it missed, at most once per NOTICE_MS. */
static void dropped_notice(client *c, int64_t now)
{
    if (c->dropped == 0 || now - c->dropped_notice_ms < NOTICE_MS)
        return;
    if (send_json(c, json_pack("{s:s, s:I}", "type", "dropped", "count",
                               (json_int_t)c->dropped)) == 0) {
        c->dropped = 0;
        c->dropped_notice_ms = now;
    }
}

/* Whether c may see m with role permissions c->perms. */
static int may_see(events *e, const client *c, const struct ev_msg *m)
{
    if (m->topic == TOPIC_NODE)
        return (c->perms & PERM_NODE_READ) != 0;
    if (c->perms & PERM_SITE_READ)
        return 1;
    return (store_grant_get(e->p->store, c->user_id, m->site_id) &
            PERM_SITE_READ) != 0;
}

/* Sends each event of list (freed here) to the clients that want it. */
static void fan_out(events *e, struct ev_msg *list, int64_t now)
{
    struct ev_msg *m, *next;
    client *c;

    /* Permissions are read again for every batch: a changed role or a
     * deleted user takes effect with the next event. */
    for (c = e->clients; c != NULL; c = c->next) {
        int exists = 0;

        if (!c->authed || c->closing)
            continue;
        c->perms = store_user_perms(e->p->store, c->user_id, &exists);
        if (!exists)
            client_fail(c, BERTH_EAUTH, "the user no longer exists");
    }
    for (m = list; m != NULL; m = next) {
        next = m->next;
        for (c = e->clients; c != NULL; c = c->next) {
            if (!c->authed || c->closing || !(c->topics & m->topic) ||
                !may_see(e, c, m))
                continue;
            if (http_ws_send(c->ws, m->json, m->len) == 0) {
                atomic_fetch_add(&e->n_sent, 1);
                dropped_notice(c, now);
            } else {
                c->dropped++;
                atomic_fetch_add(&e->n_drop_client, 1);
            }
        }
        free(m->json);
        free(m);
    }
}

/* Every TICK_MS: authentication time-outs and pending drop notices. */
static void housekeeping(events *e, int64_t now)
{
    client *c;

    for (c = e->clients; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        if (!c->authed && now - c->opened_ms >= EVENTS_AUTH_TIMEOUT_MS)
            client_fail(c, BERTH_EAUTH, "authentication timed out");
        else
            dropped_notice(c, now);
    }
}

/* Posted by the bus side and the ticker: takes the queue and fans it out. */
static void on_loop(panel *p, void *arg)
{
    events *e = arg;
    struct ev_msg *list;
    int64_t now = clock_mono_ms();

    (void)p;
    pthread_mutex_lock(&e->lock);
    list = e->head;
    e->head = e->tail = NULL;
    e->qlen = 0;
    e->qbytes = 0;
    e->posted = 0;
    pthread_mutex_unlock(&e->lock);
    if (list != NULL)
        fan_out(e, list, now);
    if (now >= e->next_tick_ms) {
        e->next_tick_ms = now + TICK_MS;
        housekeeping(e, now);
    }
}

/* ------------------------------------------------------------ protocol */

/* Authenticates c with an access token (bare or "Bearer x"); on failure
 * sends an error and closes. */
static void authenticate(events *e, client *c, const char *token)
{
    panel *p = e->p;
    char user_id[40];
    int exists = 0;
    uint32_t perms;
    int rc;

    rc = auth_access_check(&p->keys, token, clock_wall_ms() / 1000, user_id);
    if (rc == BERTH_ETIMEDOUT) {
        client_fail(c, BERTH_EAUTH, "access token expired");
        return;
    }
    if (rc != 0) {
        client_fail(c, BERTH_EAUTH, "a valid access token is required");
        return;
    }
    perms = store_user_perms(p->store, user_id, &exists);
    if (!exists) {
        client_fail(c, BERTH_EAUTH, "the token's user no longer exists");
        return;
    }
    c->authed = 1;
    c->perms = perms;
    memcpy(c->user_id, user_id, sizeof(c->user_id));
    send_json(c, json_pack("{s:s, s:s}", "type", "ready", "userId", user_id));
}

/* Token bucket: EVENTS_RATE_PER_S messages a second, bursts of
 * EVENTS_RATE_BURST. Returns 1 when the message may be handled. */
static int rate_ok(client *c, int64_t now)
{
    const int64_t cap = (int64_t)EVENTS_RATE_BURST * 1000;

    c->allow += (now - c->allow_at) * EVENTS_RATE_PER_S;
    c->allow_at = now;
    if (c->allow > cap)
        c->allow = cap;
    if (c->allow < 1000)
        return 0;
    c->allow -= 1000;
    return 1;
}

/* {"type":"subscribe"|"unsubscribe","topics":[...]}: answers with the
 * complete set, {"type":"subscribed","topics":[...]}. */
static void on_topics(client *c, json_t *msg, int add)
{
    json_t *list = json_object_get(msg, "topics");
    json_t *v, *now;
    unsigned bits = 0;
    size_t i, k;

    if (!json_is_array(list)) {
        send_error(c, BERTH_EINVAL, "\"topics\" must be a list of topic names");
        return;
    }
    json_array_foreach(list, i, v) {
        const char *name = json_string_value(v);
        unsigned bit = 0;

        for (k = 0; name != NULL && k < NTOPICS; k++) {
            if (strcmp(name, topics[k].name) == 0)
                bit = topics[k].bit;
        }
        if (bit == 0) {
            send_error(c, BERTH_EINVAL,
                       "unknown topic %.64s (site.status, site.stats, node)",
                       name ? name : "(not a string)");
            return;
        }
        bits |= bit;
    }
    c->topics = add ? c->topics | bits : c->topics & ~bits;
    now = json_array();
    for (k = 0; k < NTOPICS; k++) {
        if (c->topics & topics[k].bit)
            json_array_append_new(now, json_string(topics[k].name));
    }
    send_json(c, json_pack("{s:s, s:o}", "type", "subscribed", "topics", now));
}

static int ws_open(panel *p, http_ws *ws, const http_req *req)
{
    events *e = p->events;
    char token[TOKEN_MAX + 1];
    int64_t now = clock_mono_ms();
    client *c;
    int rc;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BERTH_ENOMEM;
    c->ws = ws;
    c->opened_ms = now;
    c->allow = (int64_t)EVENTS_RATE_BURST * 1000;
    c->allow_at = now;
    c->throttle_notice_ms = now - NOTICE_MS;
    c->dropped_notice_ms = now - NOTICE_MS;
    c->next = e->clients;
    if (e->clients != NULL)
        e->clients->prev = c;
    e->clients = c;
    http_ws_set_data(ws, c);
    /* Browsers cannot set headers on a websocket: ?token= or a first
     * message {"type":"auth"} within EVENTS_AUTH_TIMEOUT_MS. */
    rc = http_query(req, "token", token, sizeof(token));
    if (rc == 1)
        authenticate(e, c, token);
    else if (rc != 0)
        client_fail(c, BERTH_EAUTH, "a valid access token is required");
    return 0;
}

static void ws_message(panel *p, http_ws *ws, const char *data, size_t len)
{
    client *c = http_ws_get_data(ws);
    int64_t now = clock_mono_ms();
    json_t *msg = NULL;
    const char *type;

    if (c == NULL || c->closing)
        return;
    if (!rate_ok(c, now)) {
        if (now - c->throttle_notice_ms >= NOTICE_MS) {
            c->throttle_notice_ms = now;
            send_error(c, BERTH_ETHROTTLE,
                       "more than %d messages a second; messages ignored",
                       EVENTS_RATE_PER_S);
        }
        return;
    }
    msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    type = json_string_value(json_object_get(msg, "type"));
    if (!json_is_object(msg) || type == NULL) {
        send_error(c, BERTH_EPROTO,
                   "messages are JSON objects with a \"type\"");
    } else if (strcmp(type, "auth") == 0) {
        if (c->authed)
            send_error(c, BERTH_EINVAL, "already authenticated");
        else
            authenticate(p->events, c,
                         json_string_value(json_object_get(msg, "token")));
    } else if (!c->authed) {
        client_fail(c, BERTH_EAUTH, "authenticate first");
    } else if (strcmp(type, "subscribe") == 0) {
        on_topics(c, msg, 1);
    } else if (strcmp(type, "unsubscribe") == 0) {
        on_topics(c, msg, 0);
    } else if (strcmp(type, "ping") == 0) {
        send_json(c, json_pack("{s:s}", "type", "pong"));
    } else {
        send_error(c, BERTH_EINVAL, "unknown message type %.64s", type);
    }
    json_decref(msg);
}

static void ws_close(panel *p, http_ws *ws)
{
    events *e = p->events;
    client *c = http_ws_get_data(ws);

    if (c == NULL)
        return;
    http_ws_set_data(ws, NULL);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        e->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
}

const http_ws_hooks events_ws_hooks = {ws_open, ws_message, ws_close};

/* ------------------------------------------------------------ life */

int events_new(events **out, panel *p)
{
    pthread_condattr_t ca;
    events *e;
    size_t i;

    *out = NULL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return BERTH_ENOMEM;
    e->p = p;
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    for (i = 0; i < NSOURCES; i++) {
        e->subs[i].e = e;
        e->subs[i].src = &sources[i];
    }
    e->qdrop_log_ms = clock_mono_ms() - NOTICE_MS;
    *out = e;
    return 0;
}

int events_start(events *e)
{
    size_t i;
    int rc;

    for (i = 0; i < NSOURCES; i++) {
        rc = bus_subscribe(e->p->svc.bus, sources[i].filter, NULL, on_bus,
                           &e->subs[i]);
        if (rc != 0) {
            log_error("live events: subscribe", "subject=%s error=%s",
                      sources[i].filter, berth_strerror(rc));
            return rc;
        }
    }
    rc = pthread_create(&e->ticker, NULL, ticker_main, e);
    if (rc != 0)
        return berth_err_from_errno(rc);
    e->ticker_on = 1;
    return 0;
}

void events_stop(events *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopped = 1;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    if (e->ticker_on) {
        pthread_join(e->ticker, NULL);
        e->ticker_on = 0;
    }
}

void events_free(events *e)
{
    struct ev_msg *m, *next;

    if (e == NULL)
        return;
    events_stop(e);
    for (m = e->head; m != NULL; m = next) {
        next = m->next;
        free(m->json);
        free(m);
    }
    while (e->clients != NULL) {
        client *c = e->clients;

        e->clients = c->next;
        free(c);
    }
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int events_metrics(events *e, buf *out)
{
    if (e == NULL)
        return 0;
    return buf_printf(
        out,
        "# TYPE berth_events_received_total counter\n"
        "berth_events_received_total %llu\n"
        "# TYPE berth_events_sent_total counter\n"
        "berth_events_sent_total %llu\n"
        "# TYPE berth_events_dropped_total counter\n"
        "berth_events_dropped_total{reason=\"queue\"} %llu\n"
        "berth_events_dropped_total{reason=\"client\"} %llu\n",
        (unsigned long long)atomic_load(&e->n_received),
        (unsigned long long)atomic_load(&e->n_sent),
        (unsigned long long)atomic_load(&e->n_drop_queue),
        (unsigned long long)atomic_load(&e->n_drop_client));
}
