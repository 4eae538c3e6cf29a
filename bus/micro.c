/* micro.c - the NATS service discovery protocol ($SRV.PING|INFO|STATS).
 *
 * Debian's nats.c predates its micro API, so the protocol is answered here:
 * each verb is served on "$SRV.<VERB>", "$SRV.<VERB>.<name>" and
 * "$SRV.<VERB>.<name>.<id>", without a queue group, so that every instance
 * answers. Replies are the JSON documents `nats micro ls|info|stats` read.
 * One subscription to "$SRV.>" takes all nine subjects and this file picks
 * what is addressed to it: nats.c gives each subscription a thread, and
 * discovery is rare.
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

/* The verb of subject when it is addressed to b: "$SRV.<VERB>" and the
 * same followed by b's name, and then b's id. Returns -1 otherwise. */
static int addressed_verb(const bus *b, const char *subject)
{
    const char *p, *dot;
    size_t n;
    int v;

    if (strncmp(subject, "$SRV.", 5) != 0)
        return -1;
    p = subject + 5;
    dot = strchr(p, '.');
    n = dot != NULL ? (size_t)(dot - p) : strlen(p);
    for (v = 0; v < 3; v++) {
        if (strlen(verb_names[v]) == n && strncmp(p, verb_names[v], n) == 0)
            break;
    }
    if (v == 3)
        return -1;
    if (dot == NULL)
        return v;
    p = dot + 1;
    dot = strchr(p, '.');
    n = dot != NULL ? (size_t)(dot - p) : strlen(p);
    if (strlen(b->service) != n || strncmp(p, b->service, n) != 0)
        return -1;
    if (dot == NULL)
        return v;
    return strcmp(dot + 1, b->id) == 0 ? v : -1;
}

static void on_srv(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                   void *ud)
{
    bus *b = ud;
    const char *reply = natsMsg_GetReply(msg);
    int verb = addressed_verb(b, natsMsg_GetSubject(msg));
    json_t *doc = NULL;
    char *text = NULL;
    char started[40];

    (void)sub;
    if (reply == NULL || reply[0] == '\0' || verb < 0)
        goto out;
    doc = identity(b, (enum micro_verb)verb);
    if (doc == NULL)
        goto out;
    if (verb == MICRO_INFO) {
        json_object_set_new(doc, "description", json_string(b->description));
        json_object_set_new(doc, "endpoints", endpoints_json(b, MICRO_INFO));
    } else if (verb == MICRO_STATS) {
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
    natsStatus s = natsConnection_Subscribe(&b->micro_sub, b->nc, "$SRV.>",
                                            on_srv, b);

    if (s != NATS_OK) {
        log_error("discovery subscribe", "subject=$SRV.> error=%s",
                  natsStatus_GetText(s));
        b->micro_sub = NULL;
        return bus_err_from_nats(s);
    }
    return 0;
}
