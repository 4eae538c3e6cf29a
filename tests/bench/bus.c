/* bus.c - bus benchmarks against a real nats-server on loopback:
 * request/reply round trips per second through the codec (protobuf and
 * JSON, one requester and several), and publish throughput. */
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/codec.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "site.pb-c.h"
#include "tests/harness/harness.h"

#define BENCH_SECONDS 2

static h_nats nats;

static bus *open_bus(const char *name)
{
    return h_bus_open(nats.url, name);
}

static int on_echo(bus_msg *m, void *ud)
{
    (void)ud;
    return bus_reply(m, m->msg);
}

struct requester {
    bus *b;
    int json;
    int64_t until_ns;
    long done;
    long failed;
};

static void *request_loop(void *arg)
{
    struct requester *r = arg;
    Berth__V1__Echo req = BERTH__V1__ECHO__INIT;
    const char *json = "{\"text\":\"ping\",\"sentNs\":\"1234567890\"}";
    buf pb;

    req.text = "ping";
    req.sent_ns = 1234567890;
    buf_init(&pb, 1024);
    codec_pack(&req.base, &pb);
    while (clock_mono_ns() < r->until_ns) {
        if (r->json) {
            /* The JSON path: header in, the responder decodes JSON and
             * answers JSON. */
            natsMsg *m = NULL, *rep = NULL;
            natsMsg_Create(&m, "sys.echo.bench", NULL, json, (int)strlen(json));
            natsMsgHeader_Set(m, "Content-Type", "application/json");
            if (natsConnection_RequestMsg(&rep, bus_nats(r->b), m, 2000) == NATS_OK)
                r->done++;
            else
                r->failed++;
            natsMsg_Destroy(rep);
            natsMsg_Destroy(m);
        } else {
            ProtobufCMessage *out = NULL;
            bus_error err;
            if (bus_request(r->b, "sys.echo.bench", &req.base, 2000, &out, &err) == 0)
                r->done++;
            else
                r->failed++;
            protobuf_c_message_free_unpacked(out, NULL);
        }
    }
    buf_free(&pb);
    return NULL;
}

static void bench_requests(int json, int threads)
{
    struct requester r[16];
    pthread_t t[16];
    bus *clients[16];
    long done = 0, failed = 0;
    int64_t t0;
    double secs;
    int i;

    for (i = 0; i < threads; i++) {
        clients[i] = open_bus("berth-bench-client");
        r[i].b = clients[i];
        r[i].json = json;
        r[i].done = r[i].failed = 0;
    }
    t0 = clock_mono_ns();
    for (i = 0; i < threads; i++) {
        r[i].until_ns = t0 + (int64_t)BENCH_SECONDS * 1000000000;
        pthread_create(&t[i], NULL, request_loop, &r[i]);
    }
    for (i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        done += r[i].done;
        failed += r[i].failed;
        bus_close(clients[i]);
    }
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    printf("bus  request/reply %-8s %2d requesters  %8.0f req/s  (%ld failed)\n",
           json ? "json" : "protobuf", threads, (double)done / secs, failed);
}

/* Pipelined round trips: one requester keeps a window of requests in
 * flight on a shared reply subscription, as a busy client would; every
 * request is still decoded and answered one by one by the responder. */
struct pipeline {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long replies;
    long errors;
};

static void on_pipeline_reply(natsConnection *nc, natsSubscription *sub,
                              natsMsg *msg, void *ud)
{
    struct pipeline *p = ud;
    const char *code = NULL;

    (void)nc;
    (void)sub;
    pthread_mutex_lock(&p->lock);
    if (natsMsgHeader_Get(msg, "Nats-Service-Error-Code", &code) == NATS_OK)
        p->errors++;
    p->replies++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    natsMsg_Destroy(msg);
}

/* The codec's work in one round trip (encode and decode of the request
 * and of the reply), measured alone, so its share can be printed. */
static double codec_ns_per_round_trip(int json)
{
    Berth__V1__Echo req = BERTH__V1__ECHO__INIT;
    const int n = 200000;
    ProtobufCMessage *m = NULL;
    int64_t t0;
    buf b;
    int i;

    req.text = "ping";
    req.sent_ns = 1234567890;
    buf_init(&b, 1024);
    t0 = clock_mono_ns();
    for (i = 0; i < n; i++) {
        int k;
        for (k = 0; k < 2; k++) { /* request, then reply */
            buf_reset(&b);
            if (json) {
                codec_to_json(&req.base, &b);
                codec_from_json(&berth__v1__echo__descriptor, b.data, b.len, &m,
                                NULL, 0);
            } else {
                codec_pack(&req.base, &b);
                m = codec_unpack(&berth__v1__echo__descriptor, b.data, b.len);
            }
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    buf_free(&b);
    return (double)(clock_mono_ns() - t0) / n;
}

static void bench_pipelined(int json, int window)
{
    Berth__V1__Echo req = BERTH__V1__ECHO__INIT;
    const char *jtext = "{\"text\":\"ping\",\"sentNs\":\"1234567890\"}";
    struct pipeline p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    buf pb;
    long sent = 0;
    int64_t t0, until;
    double secs;

    req.text = "ping";
    req.sent_ns = 1234567890;
    buf_init(&pb, 1024);
    codec_pack(&req.base, &pb);
    natsConnection_ConnectTo(&nc, nats.url);
    natsConnection_Subscribe(&sub, nc, "_INBOX.bench.*", on_pipeline_reply, &p);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(nc);
    t0 = clock_mono_ns();
    until = t0 + (int64_t)BENCH_SECONDS * 1000000000;
    while (clock_mono_ns() < until) {
        pthread_mutex_lock(&p.lock);
        while (sent - p.replies >= window)
            pthread_cond_wait(&p.cond, &p.lock);
        pthread_mutex_unlock(&p.lock);
        if (json) {
            natsMsg_Create(&m, "sys.echo.bench", "_INBOX.bench.r", jtext, (int)strlen(jtext));
            natsMsgHeader_Set(m, "Content-Type", "application/json");
        } else {
            natsMsg_Create(&m, "sys.echo.bench", "_INBOX.bench.r", pb.data, (int)pb.len);
        }
        natsConnection_PublishMsg(nc, m);
        natsMsg_Destroy(m);
        sent++;
    }
    natsConnection_Flush(nc);
    pthread_mutex_lock(&p.lock);
    while (p.replies < sent) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        if (pthread_cond_timedwait(&p.cond, &p.lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&p.lock);
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    {
        double rate = (double)p.replies / secs;
        double codec_ns = codec_ns_per_round_trip(json);
        printf("bus  request/reply %-8s window %4d     %8.0f req/s  (%ld errors, %ld unanswered)\n",
               json ? "json" : "protobuf", window, rate, p.errors, sent - p.replies);
        printf("bus    codec per round trip %6.0f ns = %.1f %% of the %.0f ns per request\n",
               codec_ns, 100.0 * codec_ns * rate / 1e9, 1e9 / rate);
    }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    buf_free(&pb);
}

static long received;

static int on_stats(bus_msg *m, void *ud)
{
    (void)m;
    (void)ud;
    __atomic_add_fetch(&received, 1, __ATOMIC_RELAXED);
    return 0;
}

static void bench_publish(void)
{
    bus *sub = open_bus("berth-bench-sub");
    bus *pub = open_bus("berth-bench-pub");
    Berth__V1__ContainerStats st = BERTH__V1__CONTAINER_STATS__INIT;
    const long n = 500000;
    int64_t t0, t1, end;
    long i;

    bus_subscribe(sub, "container.stats.n1.*", NULL, on_stats, NULL);
    natsConnection_Flush(bus_nats(sub));
    st.site_id = "6f9619ff-8b86-4011-b42d-00c04fc964ff";
    st.node_id = "n1";
    st.cpu_percent = 37.5;
    st.memory_bytes = 123456789;
    st.memory_limit_bytes = 536870912;
    st.net_rx_bytes = 987654321;
    st.net_tx_bytes = 123456;
    st.pids = 12;
    t0 = clock_mono_ns();
    for (i = 0; i < n; i++) {
        st.at_ms = i;
        bus_publish(pub, "container.stats.n1.6f9619ff-8b86-4011-b42d-00c04fc964ff", &st.base);
    }
    natsConnection_Flush(bus_nats(pub));
    t1 = clock_mono_ns();
    end = clock_mono_ms() + 10000;
    while (__atomic_load_n(&received, __ATOMIC_RELAXED) < n && clock_mono_ms() < end)
        clock_sleep_ms(1);
    printf("bus  publish container.stats        %8.0f msg/s published, %ld/%ld received in %.2f s\n",
           (double)n / ((double)(t1 - t0) / 1e9), received, n,
           (double)(clock_mono_ns() - t0) / 1e9);
    bus_close(pub);
    bus_close(sub);
}

int main(void)
{
    bus *srv;

    log_init("bench", LOG_ERROR);
    if (h_nats_start(&nats) != 0) {
        fprintf(stderr, "bench: nats-server did not start\n");
        return 1;
    }
    srv = open_bus("berth-bench");
    bus_serve(srv, "echo", "sys.echo.bench", on_echo, NULL);
    natsConnection_Flush(bus_nats(srv));

    bench_requests(0, 1);
    bench_requests(0, 8);
    bench_requests(1, 1);
    bench_requests(1, 8);
    bench_pipelined(0, 256);
    bench_pipelined(1, 256);
    bench_publish();

    bus_close(srv);
    h_nats_stop(&nats);
    return 0;
}
