/* codec.c - bus/codec.c benchmarks: ns per message to pack, unpack, write
 * JSON and read JSON, for the messages that cross the bus most often
 * (console chunks of a full 4 KiB and of a typical 100-byte line, and
 * container stats). Each figure is the median of RUNS runs of N messages,
 * N chosen so that one run lasts about RUN_SECONDS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "console.pb-c.h"
#include "site.pb-c.h"

#define RUNS 3
#define RUN_SECONDS 0.2

enum op { OP_PACK, OP_UNPACK, OP_TO_JSON, OP_FROM_JSON };

static const char *const op_names[] = {"pack", "unpack", "to_json", "from_json"};

struct subject {
    const char *name;
    const ProtobufCMessage *m;
    buf pb;   /* m packed, input of unpack */
    buf json; /* m as JSON, input of from_json */
};

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench codec: %s failed: %s\n", what, berth_strerror(rc));
    exit(1);
}

/* Runs op n times on s and returns the elapsed nanoseconds. */
static int64_t run(struct subject *s, enum op op, long n, buf *out)
{
    const ProtobufCMessageDescriptor *d = s->m->descriptor;
    int64_t t0 = clock_mono_ns();
    ProtobufCMessage *m;
    char err[128];
    long i;
    int rc;

    for (i = 0; i < n; i++) {
        switch (op) {
        case OP_PACK:
            buf_reset(out);
            rc = codec_pack(s->m, out);
            if (rc != 0)
                die("pack", rc);
            break;
        case OP_UNPACK:
            m = codec_unpack(d, s->pb.data, s->pb.len);
            if (m == NULL)
                die("unpack", BERTH_EPROTO);
            protobuf_c_message_free_unpacked(m, NULL);
            break;
        case OP_TO_JSON:
            buf_reset(out);
            rc = codec_to_json(s->m, out);
            if (rc != 0)
                die("to_json", rc);
            break;
        case OP_FROM_JSON:
            rc = codec_from_json(d, s->json.data, s->json.len, &m, err, sizeof(err));
            if (rc != 0)
                die(err, rc);
            protobuf_c_message_free_unpacked(m, NULL);
            break;
        }
    }
    return clock_mono_ns() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Prints the median ns per message of op on s. */
static void measure(struct subject *s, enum op op)
{
    double per[RUNS];
    buf out;
    long n = 64;
    int64_t t;
    int i;

    buf_init(&out, CODEC_JSON_MAX);
    /* grow n until a run is long enough to time, then aim at RUN_SECONDS */
    while ((t = run(s, op, n, &out)) < 20 * 1000 * 1000)
        n *= 4;
    n = (long)((double)n * RUN_SECONDS * 1e9 / (double)t) + 1;
    for (i = 0; i < RUNS; i++)
        per[i] = (double)run(s, op, n, &out) / (double)n;
    qsort(per, RUNS, sizeof(per[0]), cmp_double);
    printf("codec  %-22s %-10s %8.0f ns/msg\n", s->name, op_names[op], per[RUNS / 2]);
    fflush(stdout);
    buf_free(&out);
}

int main(void)
{
    static uint8_t chunk[4096];
    static uint8_t line[100];
    static const char line_text[] =
        "2026-11-22T03:50:01.123Z INFO  GET /api/v1/items?page=2 200 1532B "
        "4.2ms ua=\"curl/8.5.0\"";
    Berth__V1__ConsoleChunk big = BERTH__V1__CONSOLE_CHUNK__INIT;
    Berth__V1__ConsoleChunk small = BERTH__V1__CONSOLE_CHUNK__INIT;
    Berth__V1__ContainerStats stats = BERTH__V1__CONTAINER_STATS__INIT;
    struct subject subjects[3];
    size_t i;
    int rc;
    int op;

    /* console output: log-like text, as a container prints it */
    for (i = 0; i < sizeof(chunk); i++)
        chunk[i] = i % 80 == 79 ? '\n' : (uint8_t)(' ' + (i * 7) % 95);
    memset(line, ' ', sizeof(line));
    memcpy(line, line_text, strlen(line_text));
    line[sizeof(line) - 1] = '\n';
    big.site_id = "0b1f7e2c-5d4a-4c1e-9a8b-3f6d2e1c0a9b";
    big.seq = 1234567;
    big.stream = BERTH__V1__CONSOLE_STREAM__CONSOLE_STREAM_STDOUT;
    big.data.data = chunk;
    big.data.len = sizeof(chunk);
    small = big;
    small.data.data = line;
    small.data.len = sizeof(line);

    stats.site_id = "0b1f7e2c-5d4a-4c1e-9a8b-3f6d2e1c0a9b";
    stats.node_id = "node-fra-01";
    stats.at_ms = 1795318201123;
    stats.cpu_percent = 12.345678901234;
    stats.memory_bytes = 187654321;
    stats.memory_limit_bytes = 536870912;
    stats.net_rx_bytes = 9876543210;
    stats.net_tx_bytes = 1234567890;
    stats.block_read_bytes = 45678901;
    stats.block_write_bytes = 12345678;
    stats.pids = 17;
    stats.disk_bytes = 2147483648;

    subjects[0].name = "console-chunk(4KiB)";
    subjects[0].m = &big.base;
    subjects[1].name = "console-chunk(100B)";
    subjects[1].m = &small.base;
    subjects[2].name = "container-stats";
    subjects[2].m = &stats.base;
    for (i = 0; i < 3; i++) {
        buf_init(&subjects[i].pb, CODEC_JSON_MAX);
        buf_init(&subjects[i].json, CODEC_JSON_MAX);
        rc = codec_pack(subjects[i].m, &subjects[i].pb);
        if (rc == 0)
            rc = codec_to_json(subjects[i].m, &subjects[i].json);
        if (rc != 0)
            die("setup", rc);
        printf("codec  %-22s %zu bytes protobuf, %zu bytes JSON\n", subjects[i].name,
               subjects[i].pb.len, subjects[i].json.len);
    }
    for (i = 0; i < 3; i++)
        for (op = OP_PACK; op <= OP_FROM_JSON; op++)
            measure(&subjects[i], (enum op)op);
    for (i = 0; i < 3; i++) {
        buf_free(&subjects[i].pb);
        buf_free(&subjects[i].json);
    }
    return 0;
}
