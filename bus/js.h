/* js.h - JetStream streams and durable consumers, declared in tables.
 *
 * bus_streams[] lists every stream and bus_consumers[] every durable
 * consumer; both are created idempotently at start-up (an existing stream is
 * updated to the table's configuration, an existing consumer is kept). A
 * consumer is created with js_AddConsumer and then bound by name, so a
 * service restarting or unsubscribing never deletes it: messages published
 * while the service is away wait for it.
 *
 * Names and filters may contain "{node}", replaced by the caller's node id
 * (one command consumer per node).
 */
#ifndef BERTH_BUS_JS_H
#define BERTH_BUS_JS_H

#include <nats/nats.h>
#include <stdint.h>

#include "bus/bus.h"

#define BUS_STREAM_MAX_SUBJECTS 4

typedef struct bus_stream_def {
    const char *name;
    const char *subjects[BUS_STREAM_MAX_SUBJECTS + 1]; /* NULL-terminated */
    jsRetentionPolicy retention;
    int64_t max_age_s;
    int64_t max_msgs_per_subject; /* 0: unlimited */
    int64_t max_bytes;
    int64_t duplicates_s; /* de-duplication window by Nats-Msg-Id */
    const char *summary;
} bus_stream_def;

typedef struct bus_consumer_def {
    const char *name;    /* key in the table: "node-commands" */
    const char *stream;  /* stream name */
    const char *durable; /* durable name, may contain {node} */
    const char *filter;  /* filter subject, may contain {node} */
    const char *user;    /* the service that consumes it */
    int ack_wait_s;
    int max_deliver; /* -1: unlimited */
    int max_ack_pending;
    const char *summary;
} bus_consumer_def;

extern const bus_stream_def bus_streams[];     /* ends with a NULL name */
extern const bus_consumer_def bus_consumers[]; /* ends with a NULL name */

const bus_consumer_def *bus_consumer_find(const char *name);

/* Creates or updates every stream. Returns 0, or a berth code when
 * JetStream is not reachable (callers retry). */
int bus_js_setup(bus *b);

/* Makes sure the durable consumer `name` exists for node (NULL when the
 * consumer has no {node}). Returns 0 or a berth code. */
int bus_js_ensure_consumer(bus *b, const char *name, const char *node);

/* Publishes m on subject to JetStream and waits for the stream's ack. A
 * non-NULL msg_id de-duplicates within the stream's window (a command id).
 * Returns 0, BERTH_ESUBJECT when the subject is not kept by a stream, or a
 * berth code. */
int bus_js_publish(bus *b, const char *subject, const ProtobufCMessage *m,
                   const char *msg_id, int timeout_ms);

typedef struct bus_js_worker bus_js_worker;

/* Consumes the durable consumer `name` (for node) on a thread of its own:
 * each message is decoded by the catalog and handed to fn. When fn returns
 * 0 the message is acked; BERTH_EUNAVAIL, BERTH_ETIMEDOUT or BERTH_EBUSY ask
 * for redelivery after a backoff; any other code is final (the message is
 * terminated and logged). A message that cannot be decoded is terminated.
 * The worker recreates the consumer and resubscribes by itself after NATS or
 * JetStream outages. Returns 0 and a worker stopped with bus_js_stop(). */
int bus_js_consume(bus *b, const char *name, const char *node, bus_handler fn,
                   void *ud, bus_js_worker **out);

/* Tells JetStream a long command is still being worked on (resets the ack
 * timer). Only valid inside a bus_js_consume handler. */
void bus_js_in_progress(bus_msg *m);

/* Stops the worker (waits for the handler in progress), leaves the consumer
 * in place, frees the worker. NULL is allowed. */
void bus_js_stop(bus_js_worker *w);

/* Expands "{node}" in tmpl into out (size bytes). Returns 0 or
 * BERTH_EINVAL when node is not a valid subject token or out is too small. */
int bus_js_expand(const char *tmpl, const char *node, char *out, size_t size);

#endif
