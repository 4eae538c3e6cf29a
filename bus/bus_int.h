/* bus_int.h - internals shared by the bus modules; not for services. */
#ifndef BERTH_BUS_INT_H
#define BERTH_BUS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bus/bus.h"

#define BUS_MAX_ENDPOINTS 64
#define BUS_MAX_SUBS 128

/* One served endpoint and its counters (guarded by lock). */
typedef struct bus_endpoint {
    char *name;
    char *subject;
    bus_handler fn;
    void *ud;
    bus *bus;
    natsSubscription *subs[BUS_SERVE_THREADS_MAX]; /* one thread each */
    int nsubs;
    pthread_mutex_t lock;
    uint64_t num_requests;
    uint64_t num_errors;
    int64_t processing_ns;
    char last_error[BUS_ERROR_MESSAGE_MAX];
} bus_endpoint;

/* A plain subscription's handler. */
typedef struct bus_sub {
    bus_handler fn;
    void *ud;
    bus *bus;
    natsSubscription *sub;
} bus_sub;

struct bus {
    natsConnection *nc;
    jsCtx *js; /* created on first use, under lock */
    natsOptions *opts;
    char *service;
    char *version;
    char *description;
    char id[40];
    int64_t started_ms;
    atomic_llong last_async_error_ms; /* rate limit of on_error logs */
    atomic_long async_errors_skipped;
    atomic_int closing;
    atomic_int closed_seen; /* the closed callback has run */ /* set by bus_close(); quiets the disconnect log */

    pthread_mutex_t lock; /* guards the arrays below */
    bus_endpoint *endpoints[BUS_MAX_ENDPOINTS];
    int n_endpoints;
    bus_sub *subs[BUS_MAX_SUBS];
    int n_subs;
    natsSubscription *micro_sub; /* "$SRV.>", micro.c */
};

/* Logs (and under BERTH_STRICT_SUBJECTS=1 aborts on) a subject outside the
 * catalog; returns BERTH_ESUBJECT. */
int bus_subject_violation(const char *what, const char *subject,
                          const char *type);

/* Starts answering $SRV.PING/INFO/STATS (micro.c). */
int bus_micro_start(bus *b);

/* Encodes m for the wire in protobuf or JSON into out. */
int bus_encode(const ProtobufCMessage *m, int json, buf *out);

/* Returns 1 when a message carries Content-Type: application/json. */
int bus_msg_is_json(natsMsg *m);

#endif
