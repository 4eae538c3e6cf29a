/* js.c - JetStream streams, durable consumers and pull workers.
 *
 * Threads: each bus_js_worker owns one thread that fetches from its pull
 * subscription and runs the handler; nothing else touches the subscription.
 */
#include "js.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_int.h"
#include "bus/codec.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#define JS_WAIT_MS 5000
#define JS_FETCH_BATCH 16
#define JS_FETCH_WAIT_MS 1000

/* clang-format off */
const bus_stream_def bus_streams[] = {
    {"COMMANDS", {"site.*.*", NULL}, js_WorkQueuePolicy,
     7 * 24 * 3600, 0, 256 << 20, 120,
     "durable commands for daemons; each is removed once a node acks it"},
    {"EVENTS", {"site.status.*.*", "command.result.*", "node.online.*",
                "access.revoked.*", NULL}, js_LimitsPolicy,
     7 * 24 * 3600, 100, 512 << 20, 120,
     "state changes, replayable (last 100 per subject)"},
    {"CERTS", {"cert.status.>", NULL}, js_LimitsPolicy,
     90 * 24 * 3600, 10, 64 << 20, 120,
     "certificate state per domain"},
    {"ROUTES", {"route.set.*", "route.del.*", NULL}, js_LimitsPolicy,
     30 * 24 * 3600, 10, 256 << 20, 120,
     "route changes for the edge"},
    {NULL, {NULL}, 0, 0, 0, 0, 0, NULL},
};

const bus_consumer_def bus_consumers[] = {
    /* One command in flight per node keeps them strictly in order: a
     * command that must be retried holds back the ones after it. The
     * daemon marks long commands in progress, so a short ack wait only
     * shortens the redelivery after a daemon died mid-command. */
    {"node-commands", "COMMANDS", "node-{node}", "site.*.{node}", "daemon",
     10, -1, 1, "a node's commands, in order, worked by its daemon"},
    {"panel-events", "EVENTS", "panel-events", NULL, "panel",
     30, -1, 1024, "every event, applied to the panel's database"},
    {"panel-certs", "CERTS", "panel-certs", NULL, "panel",
     30, -1, 256, "certificate state for the panel"},
    {"edge-routes", "ROUTES", "edge-routes", NULL, "edge",
     30, -1, 1024, "route changes applied to HAProxy"},
    {NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL},
};
/* clang-format on */

struct bus_js_worker {
    bus *b;
    const bus_consumer_def *def;
    char durable[128];
    char filter[256];
    bus_handler fn;
    void *ud;
    pthread_t thread;
    atomic_int stop;
    natsSubscription *sub;
};

static int js_ctx(bus *b, jsCtx **out)
{
    natsStatus s = NATS_OK;

    pthread_mutex_lock(&b->lock);
    if (b->js == NULL)
        s = natsConnection_JetStream(&b->js, b->nc, NULL);
    *out = b->js;
    pthread_mutex_unlock(&b->lock);
    return bus_err_from_nats(s);
}

const bus_consumer_def *bus_consumer_find(const char *name)
{
    const bus_consumer_def *c;

    for (c = bus_consumers; c->name != NULL; c++) {
        if (strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

int bus_js_expand(const char *tmpl, const char *node, char *out, size_t size)
{
    const char *at;
    int n;

    if (tmpl == NULL) {
        out[0] = '\0';
        return 0;
    }
    at = strstr(tmpl, "{node}");
    if (at == NULL) {
        n = snprintf(out, size, "%s", tmpl);
    } else {
        if (!bus_token_valid(node))
            return BERTH_EINVAL;
        n = snprintf(out, size, "%.*s%s%s", (int)(at - tmpl), tmpl, node,
                     at + 6);
    }
    return n < 0 || (size_t)n >= size ? BERTH_EINVAL : 0;
}

static int stream_setup(jsCtx *js, const bus_stream_def *d)
{
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    int n = 0;

    jsStreamConfig_Init(&cfg);
    cfg.Name = d->name;
    cfg.Description = d->summary;
    while (d->subjects[n] != NULL)
        n++;
    cfg.Subjects = (const char **)d->subjects;
    cfg.SubjectsLen = n;
    cfg.Retention = d->retention;
    cfg.Storage = js_FileStorage;
    cfg.MaxAge = d->max_age_s * 1000000000LL;
    cfg.MaxMsgsPerSubject = d->max_msgs_per_subject ? d->max_msgs_per_subject : -1;
    cfg.MaxBytes = d->max_bytes;
    cfg.Duplicates = d->duplicates_s * 1000000000LL;
    cfg.MaxMsgSize = (int32_t)BUS_PAYLOAD_MAX;
    s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {
        jerr = 0;
        s = js_UpdateStream(&si, js, &cfg, NULL, &jerr);
    }
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        log_error("jetstream stream", "stream=%s error=%s code=%d", d->name,
                  natsStatus_GetText(s), (int)jerr);
        return bus_err_from_nats(s);
    }
    return 0;
}

int bus_js_setup(bus *b)
{
    const bus_stream_def *d;
    jsCtx *js;
    int rc;

    rc = js_ctx(b, &js);
    if (rc != 0)
        return rc;
    for (d = bus_streams; d->name != NULL; d++) {
        rc = stream_setup(js, d);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int consumer_ensure(bus *b, const bus_consumer_def *d,
                           const char *durable, const char *filter)
{
    jsConsumerConfig cfg;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    jsCtx *js;
    natsStatus s;
    int rc;

    rc = js_ctx(b, &js);
    if (rc != 0)
        return rc;
    s = js_GetConsumerInfo(&ci, js, d->stream, durable, NULL, &jerr);
    if (s == NATS_OK) {
        jsConsumerInfo_Destroy(ci);
        return 0;
    }
    jsConsumerConfig_Init(&cfg);
    cfg.Durable = durable;
    cfg.Description = d->summary;
    cfg.DeliverPolicy = js_DeliverAll;
    cfg.AckPolicy = js_AckExplicit;
    cfg.AckWait = (int64_t)d->ack_wait_s * 1000000000LL;
    cfg.MaxDeliver = d->max_deliver;
    cfg.MaxAckPending = d->max_ack_pending;
    cfg.FilterSubject = filter[0] ? filter : NULL;
    jerr = 0;
    s = js_AddConsumer(&ci, js, d->stream, &cfg, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK && jerr != JSConsumerNameExistErr) {
        log_error("jetstream consumer", "stream=%s durable=%s error=%s code=%d",
                  d->stream, durable, natsStatus_GetText(s), (int)jerr);
        return bus_err_from_nats(s);
    }
    return 0;
}

int bus_js_ensure_consumer(bus *b, const char *name, const char *node)
{
    const bus_consumer_def *d = bus_consumer_find(name);
    char durable[128];
    char filter[256];

    if (d == NULL)
        return BERTH_ENOENT;
    if (bus_js_expand(d->durable, node, durable, sizeof(durable)) != 0 ||
        bus_js_expand(d->filter, node, filter, sizeof(filter)) != 0)
        return BERTH_EINVAL;
    return consumer_ensure(b, d, durable, filter);
}

int bus_js_publish(bus *b, const char *subject, const ProtobufCMessage *m,
                   const char *msg_id, int timeout_ms)
{
    const bus_subject *e = bus_catalog_find(subject);
    jsPubOptions po;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    jsCtx *js;
    buf out;
    natsStatus s;
    int rc;

    if (e == NULL || e->stream == NULL || e->type != m->descriptor)
        return bus_subject_violation("jetstream publish", subject,
                                     m->descriptor->name);
    rc = js_ctx(b, &js);
    if (rc != 0)
        return rc;
    buf_init(&out, BUS_PAYLOAD_MAX);
    rc = codec_pack(m, &out);
    if (rc != 0)
        goto out;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = timeout_ms > 0 ? timeout_ms : JS_WAIT_MS;
    s = js_Publish(&ack, js, subject, out.data, (int)out.len, &po, &jerr);
    if (s != NATS_OK) {
        log_warn("jetstream publish", "subject=%s error=%s code=%d", subject,
                 natsStatus_GetText(s), (int)jerr);
        rc = bus_err_from_nats(s);
    }
out:
    jsPubAck_Destroy(ack);
    buf_free(&out);
    return rc;
}

void bus_js_in_progress(bus_msg *m)
{
    if (m->raw != NULL)
        natsMsg_InProgress(m->raw, NULL);
}

static int transient(int rc)
{
    return rc == BERTH_EUNAVAIL || rc == BERTH_ETIMEDOUT || rc == BERTH_EBUSY;
}

/* Runs the handler on one message and settles it with JetStream. */
static void worker_handle(bus_js_worker *w, natsMsg *raw)
{
    bus_msg m = {0};
    char why[BUS_ERROR_MESSAGE_MAX] = "";
    const char *meta_subject = natsMsg_GetSubject(raw);
    int rc;

    m.bus = w->b;
    m.raw = raw;
    m.subject = meta_subject;
    m.entry = bus_catalog_find(meta_subject);
    if (m.entry == NULL) {
        log_error("jetstream message outside the catalog", "subject=%s",
                  meta_subject);
        natsMsg_Term(raw, NULL);
        return;
    }
    m.json = bus_msg_is_json(raw);
    rc = bus_decode(m.entry->type, natsMsg_GetData(raw),
                    (size_t)natsMsg_GetDataLength(raw), m.json, &m.msg, why,
                    sizeof(why));
    if (rc != 0) {
        log_error("jetstream message undecodable; dropped", "subject=%s error=%s",
                  meta_subject, why);
        natsMsg_Term(raw, NULL);
        return;
    }
    rc = w->fn(&m, w->ud);
    if (rc == 0) {
        natsMsg_AckSync(raw, NULL, NULL);
    } else if (transient(rc)) {
        log_warn("jetstream message will be redelivered", "subject=%s error=%s",
                 meta_subject, berth_strerror(rc));
        natsMsg_NakWithDelay(raw, 1000, NULL);
    } else {
        log_warn("jetstream message failed for good", "subject=%s error=%s",
                 meta_subject, berth_strerror(rc));
        natsMsg_Term(raw, NULL);
    }
    protobuf_c_message_free_unpacked(m.msg, NULL);
}

/* Creates the consumer if needed and binds a pull subscription to it. */
static int worker_bind(bus_js_worker *w)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    jsCtx *js;
    natsStatus s;
    int rc;

    rc = consumer_ensure(w->b, w->def, w->durable, w->filter);
    if (rc != 0)
        return rc;
    rc = js_ctx(w->b, &js);
    if (rc != 0)
        return rc;
    jsSubOptions_Init(&so);
    so.Stream = w->def->stream;
    so.Consumer = w->durable;
    s = js_PullSubscribe(&w->sub, js, w->filter[0] ? w->filter : NULL,
                         w->durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        log_warn("jetstream bind", "durable=%s error=%s code=%d", w->durable,
                 natsStatus_GetText(s), (int)jerr);
        w->sub = NULL;
        return bus_err_from_nats(s);
    }
    log_info("jetstream consumer bound", "stream=%s durable=%s filter=%s",
             w->def->stream, w->durable, w->filter[0] ? w->filter : ">");
    return 0;
}

static void *worker_main(void *arg)
{
    bus_js_worker *w = arg;
    int64_t backoff = 100;

    while (!atomic_load(&w->stop)) {
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s;
        int i;

        if (w->sub == NULL) {
            if (worker_bind(w) != 0) {
                clock_sleep_ms(backoff);
                backoff = backoff < 5000 ? backoff * 2 : 5000;
                continue;
            }
            backoff = 100;
        }
        /* A fetch waits until its whole batch came or it expires: never
         * ask for more than the consumer lets out at once, or a lone
         * command would wait out the expiry. */
        s = natsSubscription_Fetch(&list, w->sub,
                                   w->def->max_ack_pending < JS_FETCH_BATCH
                                       ? w->def->max_ack_pending
                                       : JS_FETCH_BATCH,
                                   JS_FETCH_WAIT_MS, &jerr);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            /* The consumer may be gone or the connection lost: rebind. */
            if (s != NATS_CONNECTION_DISCONNECTED && s != NATS_NOT_YET_CONNECTED)
                log_warn("jetstream fetch", "durable=%s error=%s code=%d",
                         w->durable, natsStatus_GetText(s), (int)jerr);
            natsSubscription_Destroy(w->sub);
            w->sub = NULL;
            clock_sleep_ms(backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        for (i = 0; i < list.Count; i++) {
            if (!atomic_load(&w->stop))
                worker_handle(w, list.Msgs[i]);
            else /* hand it back at once, in order, to the next consumer */
                natsMsg_Nak(list.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

int bus_js_consume(bus *b, const char *name, const char *node, bus_handler fn,
                   void *ud, bus_js_worker **out)
{
    const bus_consumer_def *d = bus_consumer_find(name);
    bus_js_worker *w;

    *out = NULL;
    if (d == NULL)
        return BERTH_ENOENT;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return BERTH_ENOMEM;
    w->b = b;
    w->def = d;
    w->fn = fn;
    w->ud = ud;
    if (bus_js_expand(d->durable, node, w->durable, sizeof(w->durable)) != 0 ||
        bus_js_expand(d->filter, node, w->filter, sizeof(w->filter)) != 0) {
        free(w);
        return BERTH_EINVAL;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        free(w);
        return BERTH_EINTERNAL;
    }
    *out = w;
    return 0;
}

void bus_js_stop(bus_js_worker *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, 1);
    pthread_join(w->thread, NULL);
    /* Destroy without unsubscribing from the consumer's point of view: the
     * consumer was bound, not created, by the subscription. */
    natsSubscription_Destroy(w->sub);
    free(w);
}
