/* bus.c - the NATS connection, publish, request/reply and subscriptions.
 *
 * Threads: nats.c owns its connection threads and delivers messages on its
 * own threads. The bus struct's endpoint and subscription arrays are written
 * only under b->lock; endpoint counters under the endpoint's lock.
 */
#include "bus.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_int.h"
#include "bus/codec.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/log.h"

#define HDR_CONTENT_TYPE "Content-Type"
#define CT_JSON "application/json"
#define HDR_SVC_ERROR "Nats-Service-Error"
#define HDR_SVC_ERROR_CODE "Nats-Service-Error-Code"

int bus_err_from_nats(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_TIMEOUT:
        return BERTH_ETIMEDOUT;
    case NATS_NO_RESPONDERS:
        return BERTH_ENORESP;
    case NATS_NO_MEMORY:
        return BERTH_ENOMEM;
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NOT_YET_CONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_DRAINING:
        return BERTH_EUNAVAIL;
    case NATS_MAX_PAYLOAD:
        return BERTH_ETOOBIG;
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG:
        return BERTH_EINVAL;
    case NATS_NOT_PERMITTED:
        return BERTH_EPERM;
    case NATS_NOT_FOUND:
        return BERTH_ENOENT;
    default:
        return BERTH_EIO;
    }
}

/* Reports a subject outside the catalog: a programming error. With
 * BERTH_STRICT_SUBJECTS=1 (set by the test harness) the process aborts, so
 * a test that reaches such a call fails loudly. Returns BERTH_ESUBJECT. */
int bus_subject_violation(const char *what, const char *subject,
                          const char *type)
{
    const char *strict = getenv("BERTH_STRICT_SUBJECTS");

    log_error("subject outside the catalog", "call=%s subject=%s type=%s", what,
              subject ? subject : "(null)", type ? type : "-");
    if (strict != NULL && strcmp(strict, "1") == 0)
        abort();
    return BERTH_ESUBJECT;
}

/* ------------------------------------------------------------ connection */

static void on_disconnected(natsConnection *nc, void *ud)
{
    bus *b = ud;

    (void)nc;
    if (!atomic_load(&b->closing))
        log_warn("nats disconnected", "service=%s", b->service);
}

static void on_reconnected(natsConnection *nc, void *ud)
{
    bus *b = ud;
    char url[256] = "";

    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    log_info("nats reconnected", "service=%s url=%s", b->service, url);
}

static void on_connected(natsConnection *nc, void *ud)
{
    bus *b = ud;
    char url[256] = "";

    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    log_info("nats connected", "service=%s url=%s", b->service, url);
}

static void on_closed(natsConnection *nc, void *ud)
{
    bus *b = ud;

    (void)nc;
    log_info("nats connection closed", "service=%s", b->service);
    /* The last callback nats.c makes for this connection: once the flag is
     * set, bus_close() may free b. Nothing touches b after the store. */
    atomic_store(&b->closed_seen, 1);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
                     void *ud)
{
    bus *b = ud;
    const char *subj = sub ? natsSubscription_GetSubject(sub) : NULL;
    int64_t now = clock_mono_ms();
    int64_t last = atomic_load(&b->last_async_error_ms);
    long skipped;

    (void)nc;
    /* A slow consumer reports every dropped batch; log at most once a
     * second and say how many reports were folded into the line. */
    if (now - last < 1000 || !atomic_compare_exchange_strong(
                                 &b->last_async_error_ms, &last, now)) {
        atomic_fetch_add(&b->async_errors_skipped, 1);
        return;
    }
    skipped = atomic_exchange(&b->async_errors_skipped, 0);
    log_error("nats async error", "service=%s subject=%s error=%s repeated=%ld",
              b->service, subj ? subj : "-", natsStatus_GetText(err), skipped);
}

/* Exponential backoff from 100 ms to 5 s with up to 25 % jitter. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *ud)
{
    int64_t d = 100;
    uint32_t r = 0;

    (void)nc;
    (void)ud;
    while (attempts-- > 0 && d < 5000)
        d *= 2;
    if (d > 5000)
        d = 5000;
    id_random(&r, sizeof(r));
    return d + (int64_t)(r % (uint32_t)(d / 4 + 1));
}

static char *xstrdup(const char *s)
{
    return strdup(s ? s : "");
}

int bus_open(bus **out, const bus_opts *o)
{
    bus *b = NULL;
    natsStatus s;
    int rc = 0;

    *out = NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return BERTH_ENOMEM;
    pthread_mutex_init(&b->lock, NULL);
    b->service = xstrdup(o->service);
    b->version = xstrdup(o->version ? o->version : "0.1.0");
    b->description = xstrdup(o->description);
    b->started_ms = clock_wall_ms();
    if (b->service == NULL || b->version == NULL || b->description == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (o->instance_id != NULL)
        snprintf(b->id, sizeof(b->id), "%s", o->instance_id);
    else if ((rc = id_uuid(b->id)) != 0)
        goto out;

    s = natsOptions_Create(&b->opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(b->opts, o->url ? o->url : NATS_DEFAULT_URL);
    if (s == NATS_OK && o->creds != NULL && o->creds[0] != '\0')
        s = natsOptions_SetUserCredentialsFromFiles(b->opts, o->creds, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetName(b->opts, b->service);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(b->opts, o->connect_timeout_ms > 0
                                                ? o->connect_timeout_ms
                                                : 2000);
    /* Write each message at once rather than waiting for the flusher:
     * request/reply latency matters more than batching small messages. */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(b->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(b->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay(b->opts, reconnect_delay, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(b->opts, o->reconnect_buf_bytes > 0
                                                         ? o->reconnect_buf_bytes
                                                         : 8 << 20);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(b->opts, true, on_connected, b);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(b->opts, on_disconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(b->opts, on_reconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(b->opts, on_closed, b);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(b->opts, on_error, b);
    if (s != NATS_OK) {
        log_error("nats options", "error=%s", natsStatus_GetText(s));
        rc = bus_err_from_nats(s);
        goto out;
    }
    /* With RetryOnFailedConnect, NATS_NOT_YET_CONNECTED means "retrying in
     * the background", which is what a service wants at start-up. */
    s = natsConnection_Connect(&b->nc, b->opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        log_error("nats connect", "url=%s error=%s", o->url,
                  natsStatus_GetText(s));
        rc = bus_err_from_nats(s);
        goto out;
    }
    if (s == NATS_NOT_YET_CONNECTED)
        log_warn("nats not reachable yet; retrying", "url=%s", o->url);
    else
        on_connected(b->nc, b);
    rc = bus_micro_start(b);
    if (rc != 0)
        goto out;
    *out = b;
    b = NULL;
out:
    bus_close(b);
    return rc;
}

int bus_wait_connected(bus *b, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    while (!bus_connected(b)) {
        if (clock_mono_ms() >= end)
            return BERTH_ETIMEDOUT;
        clock_sleep_ms(10);
    }
    return 0;
}

int bus_connected(bus *b)
{
    return b->nc != NULL && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED;
}

natsConnection *bus_nats(bus *b)
{
    return b->nc;
}

const char *bus_service(bus *b)
{
    return b->service;
}

const char *bus_instance_id(bus *b)
{
    return b->id;
}

void bus_close(bus *b)
{
    int i;

    if (b == NULL)
        return;
    atomic_store(&b->closing, 1);
    if (b->nc != NULL) {
        if (bus_connected(b)) {
            natsStatus s = natsConnection_DrainTimeout(b->nc, 5000);
            int64_t end = clock_mono_ms() + 6000;
            if (s == NATS_OK) {
                while (!natsConnection_IsClosed(b->nc) && clock_mono_ms() < end)
                    clock_sleep_ms(5);
            }
        }
        natsConnection_Close(b->nc);
        /* nats.c runs the closed callback on its own thread, later: wait
         * for it before freeing what the callback reads. */
        for (i = 0; i < 300 && !atomic_load(&b->closed_seen); i++)
            clock_sleep_ms(10);
        if (!atomic_load(&b->closed_seen)) {
            log_error("nats close callback never came; bus not freed",
                      "service=%s", b->service);
            return;
        }
    }
    natsSubscription_Destroy(b->micro_sub);
    for (i = 0; i < b->n_endpoints; i++) {
        bus_endpoint *e = b->endpoints[i];
        int k;

        for (k = 0; k < e->nsubs; k++)
            natsSubscription_Destroy(e->subs[k]);
        pthread_mutex_destroy(&e->lock);
        free(e->name);
        free(e->subject);
        free(e);
    }
    for (i = 0; i < b->n_subs; i++) {
        natsSubscription_Destroy(b->subs[i]->sub);
        free(b->subs[i]);
    }
    jsCtx_Destroy(b->js);
    natsConnection_Destroy(b->nc);
    natsOptions_Destroy(b->opts);
    pthread_mutex_destroy(&b->lock);
    free(b->service);
    free(b->version);
    free(b->description);
    free(b);
}

/* ------------------------------------------------------------ encoding */

int bus_encode(const ProtobufCMessage *m, int json, buf *out)
{
    return json ? codec_to_json(m, out) : codec_pack(m, out);
}

int bus_decode(const ProtobufCMessageDescriptor *d, const void *data,
               size_t len, int json, ProtobufCMessage **out, char *err,
               size_t errlen)
{
    *out = NULL;
    if (json) {
        if (len == 0)
            return codec_from_json(d, "{}", 2, out, err, errlen);
        return codec_from_json(d, data, len, out, err, errlen);
    }
    *out = codec_unpack(d, data, len);
    if (*out == NULL) {
        snprintf(err, errlen, "payload is not a valid protobuf %s", d->name);
        return BERTH_EPROTO;
    }
    return 0;
}

int bus_msg_is_json(natsMsg *m)
{
    const char *v = NULL;

    if (natsMsgHeader_Get(m, HDR_CONTENT_TYPE, &v) != NATS_OK || v == NULL)
        return 0;
    return strncmp(v, CT_JSON, sizeof(CT_JSON) - 1) == 0;
}

/* Decodes an incoming message by its catalog entry. */
static int msg_decode(bus_msg *bm, natsMsg *raw, const ProtobufCMessageDescriptor *d,
                      char *err, size_t errlen)
{
    bm->raw = raw;
    bm->subject = natsMsg_GetSubject(raw);
    bm->json = bus_msg_is_json(raw);
    return bus_decode(d, natsMsg_GetData(raw), (size_t)natsMsg_GetDataLength(raw),
                      bm->json, &bm->msg, err, errlen);
}

/* ------------------------------------------------------------ publishing */

int bus_publish(bus *b, const char *subject, const ProtobufCMessage *m)
{
    const bus_subject *e = bus_catalog_find(subject);
    buf out;
    natsStatus s;
    int rc;

    if (e == NULL || e->type != m->descriptor)
        return bus_subject_violation("publish", subject, m->descriptor->name);
    buf_init(&out, BUS_PAYLOAD_MAX);
    rc = codec_pack(m, &out);
    if (rc != 0)
        goto out;
    s = natsConnection_Publish(b->nc, subject, out.data, (int)out.len);
    rc = bus_err_from_nats(s);
out:
    buf_free(&out);
    return rc;
}

/* Fills err from an error reply's body and headers; returns its code. */
static int error_from_reply(natsMsg *reply, bus_error *err)
{
    ProtobufCMessage *m = NULL;
    const char *hdr = NULL;
    char why[128];
    int code = BERTH_EIO;
    int status = 500;

    if (natsMsgHeader_Get(reply, HDR_SVC_ERROR_CODE, &hdr) == NATS_OK && hdr)
        status = atoi(hdr);
    if (bus_decode(&berth__v1__error__descriptor, natsMsg_GetData(reply),
                   (size_t)natsMsg_GetDataLength(reply), bus_msg_is_json(reply),
                   &m, why, sizeof(why)) == 0) {
        Berth__V1__Error *e = (Berth__V1__Error *)m;
        if (e->code < 0)
            code = e->code;
        if (err != NULL)
            snprintf(err->message, sizeof(err->message), "%s", e->message);
    } else if (err != NULL) {
        hdr = NULL;
        natsMsgHeader_Get(reply, HDR_SVC_ERROR, &hdr);
        snprintf(err->message, sizeof(err->message), "%s", hdr ? hdr : "error");
    }
    if (err != NULL) {
        err->code = code;
        err->status = status;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return code;
}

static void set_err(bus_error *err, int code, const char *msg)
{
    if (err == NULL)
        return;
    err->code = code;
    err->status = berth_err_http_status(code);
    snprintf(err->message, sizeof(err->message), "%s", msg);
}

int bus_request(bus *b, const char *subject, const ProtobufCMessage *req,
                int timeout_ms, ProtobufCMessage **reply, bus_error *err)
{
    const bus_subject *e = bus_catalog_find(subject);
    natsMsg *resp = NULL;
    const char *hdr = NULL;
    char why[BUS_ERROR_MESSAGE_MAX];
    buf out;
    natsStatus s;
    int rc;

    *reply = NULL;
    buf_init(&out, BUS_PAYLOAD_MAX);
    if (e == NULL || e->kind != BUS_REQUEST || e->type != req->descriptor) {
        rc = bus_subject_violation("request", subject, req->descriptor->name);
        set_err(err, rc, "subject not in the catalog");
        goto out;
    }
    rc = codec_pack(req, &out);
    if (rc != 0) {
        set_err(err, rc, "request too large");
        goto out;
    }
    s = natsConnection_Request(&resp, b->nc, subject, out.data, (int)out.len,
                               timeout_ms);
    if (s != NATS_OK) {
        rc = bus_err_from_nats(s);
        set_err(err, rc, s == NATS_NO_RESPONDERS ? "no responders"
                                                 : natsStatus_GetText(s));
        goto out;
    }
    if (natsMsgHeader_Get(resp, HDR_SVC_ERROR_CODE, &hdr) == NATS_OK) {
        rc = error_from_reply(resp, err);
        goto out;
    }
    rc = bus_decode(e->reply, natsMsg_GetData(resp),
                    (size_t)natsMsg_GetDataLength(resp), bus_msg_is_json(resp),
                    reply, why, sizeof(why));
    if (rc != 0)
        set_err(err, rc, why);
out:
    natsMsg_Destroy(resp);
    buf_free(&out);
    return rc;
}

/* ------------------------------------------------------------ replying */

/* Publishes payload to the message's reply subject with optional headers. */
static int send_reply(bus_msg *m, const buf *payload, int json, int code,
                      const char *errmsg)
{
    const char *to = natsMsg_GetReply(m->raw);
    natsMsg *r = NULL;
    natsStatus s;
    char status[16];

    if (to == NULL || to[0] == '\0')
        return 0; /* a request sent without a reply subject */
    m->_replied = code != 0 ? 2 : 1;
    if (!json && code == 0) {
        s = natsConnection_Publish(m->bus->nc, to, payload->data, (int)payload->len);
        return bus_err_from_nats(s);
    }
    s = natsMsg_Create(&r, to, NULL, payload->data, (int)payload->len);
    if (s == NATS_OK && json)
        s = natsMsgHeader_Set(r, HDR_CONTENT_TYPE, CT_JSON);
    if (s == NATS_OK && code != 0) {
        snprintf(status, sizeof(status), "%d", berth_err_http_status(code));
        s = natsMsgHeader_Set(r, HDR_SVC_ERROR, errmsg);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(r, HDR_SVC_ERROR_CODE, status);
    }
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(m->bus->nc, r);
    natsMsg_Destroy(r);
    return bus_err_from_nats(s);
}

int bus_reply(bus_msg *m, const ProtobufCMessage *reply)
{
    buf out;
    int rc;

    if (m->entry != NULL && m->entry->reply != NULL &&
        m->entry->reply != reply->descriptor) {
        log_error("reply of the wrong type", "subject=%s type=%s", m->subject,
                  reply->descriptor->name);
        return bus_reply_error(m, BERTH_EINTERNAL, "reply of the wrong type");
    }
    buf_init(&out, BUS_PAYLOAD_MAX);
    rc = bus_encode(reply, m->json, &out);
    if (rc == 0)
        rc = send_reply(m, &out, m->json, 0, NULL);
    else
        rc = bus_reply_error(m, rc, "reply too large");
    buf_free(&out);
    return rc;
}

int bus_reply_error(bus_msg *m, int code, const char *fmt, ...)
{
    Berth__V1__Error e = BERTH__V1__ERROR__INIT;
    char msg[BUS_ERROR_MESSAGE_MAX];
    va_list ap;
    buf out;
    int rc;

    if (code >= 0)
        code = BERTH_EINTERNAL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(m->_error, sizeof(m->_error), "%s", msg);
    e.code = code;
    e.name = (char *)berth_errname(code);
    e.message = msg;
    e.status = berth_err_http_status(code);
    buf_init(&out, 4096);
    rc = bus_encode(&e.base, m->json, &out);
    if (rc == 0)
        rc = send_reply(m, &out, m->json, code, msg);
    buf_free(&out);
    return rc;
}

/* ------------------------------------------------------------ serving */

static void endpoint_count(bus_endpoint *ep, int64_t ns, int rc, const char *why)
{
    pthread_mutex_lock(&ep->lock);
    ep->num_requests++;
    ep->processing_ns += ns;
    if (rc != 0) {
        ep->num_errors++;
        snprintf(ep->last_error, sizeof(ep->last_error), "%s", why);
    }
    pthread_mutex_unlock(&ep->lock);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *raw,
                       void *ud)
{
    bus_endpoint *ep = ud;
    bus_msg m = {0};
    char why[BUS_ERROR_MESSAGE_MAX] = "";
    int64_t t0 = clock_mono_ns();
    int rc;

    (void)nc;
    (void)sub;
    m.bus = ep->bus;
    m.entry = bus_catalog_find(natsMsg_GetSubject(raw));
    if (m.entry == NULL || m.entry->kind != BUS_REQUEST) {
        m.raw = raw;
        m.json = bus_msg_is_json(raw);
        rc = BERTH_ESUBJECT;
        snprintf(why, sizeof(why), "subject %s is not a request in the catalog",
                 natsMsg_GetSubject(raw));
        bus_reply_error(&m, rc, "%s", why);
        goto out;
    }
    rc = msg_decode(&m, raw, m.entry->type, why, sizeof(why));
    if (rc != 0) {
        bus_reply_error(&m, rc, "%s", why);
        goto out;
    }
    rc = ep->fn(&m, ep->ud);
    if (rc != 0) {
        snprintf(why, sizeof(why), "%s", berth_strerror(rc));
        if (!m._replied)
            bus_reply_error(&m, rc, "%s", why);
    } else if (m._replied == 2) {
        /* The handler answered with an error itself. */
        rc = BERTH_EINTERNAL;
        snprintf(why, sizeof(why), "%s", m._error);
    }
out:
    endpoint_count(ep, clock_mono_ns() - t0, rc, why);
    protobuf_c_message_free_unpacked(m.msg, NULL);
    natsMsg_Destroy(raw);
}

int bus_serve(bus *b, const char *name, const char *subject, bus_handler fn,
              void *ud)
{
    return bus_serve_threads(b, name, subject, fn, ud, 1);
}

int bus_serve_threads(bus *b, const char *name, const char *subject,
                      bus_handler fn, void *ud, int threads)
{
    bus_endpoint *ep = NULL;
    natsStatus s = NATS_OK;
    int rc = 0;

    if (threads < 1 || threads > BUS_SERVE_THREADS_MAX)
        return BERTH_EINVAL;
    if (bus_catalog_check_filter(subject) != 0)
        return bus_subject_violation("serve", subject, NULL);
    ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return BERTH_ENOMEM;
    pthread_mutex_init(&ep->lock, NULL);
    ep->name = strdup(name);
    ep->subject = strdup(subject);
    ep->fn = fn;
    ep->ud = ud;
    ep->bus = b;
    if (ep->name == NULL || ep->subject == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    pthread_mutex_lock(&b->lock);
    if (b->n_endpoints == BUS_MAX_ENDPOINTS) {
        pthread_mutex_unlock(&b->lock);
        rc = BERTH_ETOOBIG;
        goto out;
    }
    /* Each subscription of the queue group has its own delivery thread,
     * so threads requests run side by side; NATS spreads them. */
    while (s == NATS_OK && ep->nsubs < threads) {
        s = natsConnection_QueueSubscribe(&ep->subs[ep->nsubs], b->nc, subject,
                                          b->service, on_request, ep);
        if (s == NATS_OK)
            ep->nsubs++;
    }
    if (s == NATS_OK)
        b->endpoints[b->n_endpoints++] = ep;
    pthread_mutex_unlock(&b->lock);
    if (s != NATS_OK) {
        log_error("serve", "subject=%s error=%s", subject, natsStatus_GetText(s));
        rc = bus_err_from_nats(s);
        goto out;
    }
    ep = NULL;
out:
    if (ep != NULL) {
        while (ep->nsubs > 0) {
            natsSubscription *sub = ep->subs[--ep->nsubs];

            natsSubscription_Unsubscribe(sub);
            natsSubscription_Destroy(sub);
        }
        pthread_mutex_destroy(&ep->lock);
        free(ep->name);
        free(ep->subject);
        free(ep);
    }
    return rc;
}

static void on_message(natsConnection *nc, natsSubscription *sub, natsMsg *raw,
                       void *ud)
{
    bus_sub *bs = ud;
    bus_msg m = {0};
    char why[BUS_ERROR_MESSAGE_MAX] = "";

    (void)nc;
    (void)sub;
    m.bus = bs->bus;
    m.entry = bus_catalog_find(natsMsg_GetSubject(raw));
    if (m.entry == NULL) {
        log_warn("message outside the catalog", "subject=%s",
                 natsMsg_GetSubject(raw));
        goto out;
    }
    if (msg_decode(&m, raw, m.entry->type, why, sizeof(why)) != 0) {
        log_warn("undecodable message", "subject=%s error=%s", m.subject, why);
        goto out;
    }
    bs->fn(&m, bs->ud);
out:
    protobuf_c_message_free_unpacked(m.msg, NULL);
    natsMsg_Destroy(raw);
}

int bus_subscribe(bus *b, const char *filter, const char *queue, bus_handler fn,
                  void *ud)
{
    bus_sub *bs;
    natsStatus s;

    if (bus_catalog_check_filter(filter) != 0)
        return bus_subject_violation("subscribe", filter, NULL);
    bs = calloc(1, sizeof(*bs));
    if (bs == NULL)
        return BERTH_ENOMEM;
    bs->fn = fn;
    bs->ud = ud;
    bs->bus = b;
    pthread_mutex_lock(&b->lock);
    if (b->n_subs == BUS_MAX_SUBS) {
        pthread_mutex_unlock(&b->lock);
        free(bs);
        return BERTH_ETOOBIG;
    }
    if (queue != NULL)
        s = natsConnection_QueueSubscribe(&bs->sub, b->nc, filter, queue,
                                          on_message, bs);
    else
        s = natsConnection_Subscribe(&bs->sub, b->nc, filter, on_message, bs);
    if (s == NATS_OK)
        b->subs[b->n_subs++] = bs;
    pthread_mutex_unlock(&b->lock);
    if (s != NATS_OK) {
        free(bs);
        log_error("subscribe", "subject=%s error=%s", filter,
                  natsStatus_GetText(s));
        return bus_err_from_nats(s);
    }
    return 0;
}
