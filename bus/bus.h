/* bus.h - berth's connection to NATS and typed messaging over it.
 *
 * A bus is one NATS connection owned by one service instance. It reconnects
 * forever with backoff and jitter, buffers publishes while disconnected, and
 * drains on close. Every subject goes through the catalog (catalog.h): the
 * payload type is found there, and a subject outside the catalog is refused
 * with BERTH_ESUBJECT.
 *
 * Payloads are protobuf unless a message carries the header
 * "Content-Type: application/json"; a request's reply uses the request's
 * encoding. Errors travel as a berth.v1.Error body plus the
 * Nats-Service-Error and Nats-Service-Error-Code headers.
 *
 * Threads: handlers run on nats.c delivery threads; several handlers may run
 * at once, but one subscription's messages arrive in order on one thread.
 */
#ifndef BERTH_BUS_BUS_H
#define BERTH_BUS_BUS_H

#include <nats/nats.h>
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "bus/catalog.h"

#define BUS_PAYLOAD_MAX (1u << 20) /* NATS' default max_payload */
#define BUS_ERROR_MESSAGE_MAX 256

typedef struct bus bus;

typedef struct bus_opts {
    const char *url;         /* "nats://host:port", comma separated */
    const char *creds;       /* credentials file or NULL */
    const char *service;     /* discovery name: "berth-panel" */
    const char *version;     /* "0.1.0" */
    const char *description; /* one line for `nats micro info` */
    const char *instance_id; /* NULL: generated */
    int connect_timeout_ms;  /* 0: 2000 */
    int reconnect_buf_bytes; /* 0: 8 MiB */
} bus_opts;

/* The outcome of a failed request: a berth code and the peer's message. */
typedef struct bus_error {
    int code;
    int status;
    char message[BUS_ERROR_MESSAGE_MAX];
} bus_error;

/* A received message. It and everything it points to are valid only during
 * the handler call. */
typedef struct bus_msg {
    bus *bus;
    const char *subject;
    const bus_subject *entry; /* the catalog entry of subject */
    ProtobufCMessage *msg;    /* the decoded payload */
    int json;                 /* the payload was JSON */
    natsMsg *raw;
    int _replied; /* 1: answered, 2: answered with an error */
    char _error[BUS_ERROR_MESSAGE_MAX];
} bus_msg;

/* A handler returns 0, or a negative berth code. For a request that has not
 * been answered yet, a negative code makes the bus reply with that error
 * (use bus_reply_error() to give a better message). */
typedef int (*bus_handler)(bus_msg *m, void *ud);

/* Connects. The connection is retried in the background when the server is
 * not reachable yet, so this returns 0 even then; bus_wait_connected() waits
 * for it. Returns 0 and a bus the caller frees with bus_close(). */
int bus_open(bus **out, const bus_opts *o);

/* Drains subscriptions and publishes (up to 5 s), closes, frees. NULL is
 * allowed. */
void bus_close(bus *b);

/* Waits up to timeout_ms for the connection. Returns 0 or BERTH_ETIMEDOUT. */
int bus_wait_connected(bus *b, int timeout_ms);
int bus_connected(bus *b);

natsConnection *bus_nats(bus *b);
const char *bus_service(bus *b);
const char *bus_instance_id(bus *b);

/* Publishes m on subject (core NATS) in protobuf. */
int bus_publish(bus *b, const char *subject, const ProtobufCMessage *m);

/* Sends a request and waits up to timeout_ms for the reply, which is
 * decoded as the catalog's reply type into *reply (caller frees with
 * protobuf_c_message_free_unpacked). Returns 0, BERTH_ETIMEDOUT,
 * BERTH_ENORESP (nobody listens), BERTH_EUNAVAIL (not connected), the code
 * of an error reply (err holds its message; err may be NULL), or another
 * berth code. */
int bus_request(bus *b, const char *subject, const ProtobufCMessage *req,
                int timeout_ms, ProtobufCMessage **reply, bus_error *err);

/* Answers a request in the request's encoding. */
int bus_reply(bus_msg *m, const ProtobufCMessage *reply);

/* Answers a request with an error: code is a negative berth code. */
int bus_reply_error(bus_msg *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Serves requests on subject (a catalog request pattern, wildcards allowed)
 * in the queue group of the service, as endpoint name in discovery. Each
 * request is decoded by the catalog; a malformed one is answered with
 * BERTH_EPROTO before fn is called. Requests, errors and processing time are
 * counted for $SRV.STATS. */
int bus_serve(bus *b, const char *name, const char *subject, bus_handler fn,
              void *ud);

/* bus_serve() with threads requests handled at once (at most
 * BUS_SERVE_THREADS_MAX), for handlers that may block on I/O: fn must then
 * be safe to run on several threads. Requests are not answered in the
 * order they came. */
#define BUS_SERVE_THREADS_MAX 8
int bus_serve_threads(bus *b, const char *name, const char *subject,
                      bus_handler fn, void *ud, int threads);

/* Subscribes to events, telemetry or streams matching filter (core NATS).
 * queue may be NULL. Messages that fail to decode are logged and skipped. */
int bus_subscribe(bus *b, const char *filter, const char *queue, bus_handler fn,
                  void *ud);

/* Decodes a payload of type d in either encoding. Caller frees *out. */
int bus_decode(const ProtobufCMessageDescriptor *d, const void *data,
               size_t len, int json, ProtobufCMessage **out, char *err,
               size_t errlen);

/* Maps a natsStatus onto a berth code. */
int bus_err_from_nats(natsStatus s);

#endif
