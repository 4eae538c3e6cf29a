/* micro.c - the NATS service discovery protocol ($SRV.PING|INFO|STATS).
 *
 * Debian's nats.c predates its micro API, so the protocol is answered here:
 * each verb is served on "$SRV.<VERB>", "$SRV.<VERB>.<name>" and
 * "$SRV.<VERB>.<name>.<id>", without a queue group, so that every instance
 * answers. Replies are the JSON documents `nats micro ls|info|stats` read.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_int.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

enum micro_verb { MICRO_PING, MICRO_INFO, MICRO_STATS };

static const char *const verb_names[] = {"PING", "INFO", "STATS"};
static const char *const verb_types[] = {
    "io.nats.micro.v1.ping_response",
    "io.nats.micro.v1.info_response",
    "io.nats.micro.v1.stats_response",
};

/* The subscription's closure: the bus and the verb, packed in one pointer's
 * worth of static storage per verb. */
struct micro_ctx {
    bus *b;
    enum micro_verb verb;
};

static json_t *identity(bus *b, enum micro_verb verb)
{
    return json_pack("{s:s, s:s, s:s, s:{}, s:s}", "name", b->service, "id",
                     b->id, "version", b->version, "metadata", "type",
                     verb_types[verb]);
}

static json_t *endpoints_json(bus *b, enum micro_verb verb)
{
    json_t *arr = json_array();
    int i;

    if (arr == NULL)
        return NULL;
    pthread_mutex_lock(&b->lock);
    for (i = 0; i < b->n_endpoints; i++) {
        bus_endpoint *e = b->endpoints[i];
        json_t *o;

        if (verb == MICRO_INFO) {
            o = json_pack("{s:s, s:s, s:s, s:{}}", "name", e->name, "subject",
                          e->subject, "queue_group", b->service, "metadata");
        } else {
            uint64_t n, errs;
            int64_t ns;
            char last[BUS_ERROR_MESSAGE_MAX];

            pthread_mutex_lock(&e->lock);
            n = e->num_requests;
            errs = e->num_errors;
            ns = e->processing_ns;
            memcpy(last, e->last_error, sizeof(last));
            pthread_mutex_unlock(&e->lock);
            o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I}", "name",
                          e->name, "subject", e->subject, "queue_group",
                          b->service, "num_requests", (json_int_t)n,
                          "num_errors", (json_int_t)errs, "last_error", last,
                          "processing_time", (json_int_t)ns,
                          "average_processing_time",
                          (json_int_t)(n ? ns / (int64_t)n : 0));
        }
        if (o != NULL)
            json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&b->lock);
    return arr;
}

static void on_srv(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                   void *ud)
{
    struct micro_ctx *ctx = ud;
    bus *b = ctx->b;
    const char *reply = natsMsg_GetReply(msg);
    json_t *doc = NULL;
    char *text = NULL;
    char started[40];

    (void)sub;
    if (reply == NULL || reply[0] == '\0')
        goto out;
    doc = identity(b, ctx->verb);
    if (doc == NULL)
        goto out;
    if (ctx->verb == MICRO_INFO) {
        json_object_set_new(doc, "description", json_string(b->description));
        json_object_set_new(doc, "endpoints", endpoints_json(b, MICRO_INFO));
    } else if (ctx->verb == MICRO_STATS) {
        clock_fmt_rfc3339(started, sizeof(started), b->started_ms);
        json_object_set_new(doc, "started", json_string(started));
        json_object_set_new(doc, "endpoints", endpoints_json(b, MICRO_STATS));
    }
    text = json_dumps(doc, JSON_COMPACT);
    if (text != NULL)
        natsConnection_PublishString(nc, reply, text);
out:
    free(text);
    json_decref(doc);
    natsMsg_Destroy(msg);
}

int bus_micro_start(bus *b)
{
    struct micro_ctx *c;
    char subject[256];
    int v;
    int rc = 0;

    /* One context per verb; the bus owns the array (b->micro_ctx). */
    c = calloc(3, sizeof(*c));
    if (c == NULL)
        return BERTH_ENOMEM;
    for (v = 0; v < 3; v++) {
        int form;

        c[v].b = b;
        c[v].verb = (enum micro_verb)v;
        for (form = 0; form < 3; form++) {
            natsStatus s;

            if (form == 0)
                snprintf(subject, sizeof(subject), "$SRV.%s", verb_names[v]);
            else if (form == 1)
                snprintf(subject, sizeof(subject), "$SRV.%s.%s", verb_names[v],
                         b->service);
            else
                snprintf(subject, sizeof(subject), "$SRV.%s.%s.%s",
                         verb_names[v], b->service, b->id);
            s = natsConnection_Subscribe(&b->micro_subs[b->n_micro], b->nc,
                                         subject, on_srv, &c[v]);
            if (s != NATS_OK) {
                log_error("discovery subscribe", "subject=%s error=%s", subject,
                          natsStatus_GetText(s));
                rc = bus_err_from_nats(s);
                goto out;
            }
            b->n_micro++;
        }
    }
    b->micro_ctx = c;
    c = NULL;
out:
    free(c);
    return rc;
}
