/* berth-bus.c - the bus tool: the catalog, the codec and JetStream set-up
 * from the command line.
 *
 *   berth-bus subjects [--markdown]   print the subject catalog
 *   berth-bus types                   list every message type
 *   berth-bus decode SUBJECT          protobuf on stdin -> JSON on stdout
 *   berth-bus encode SUBJECT          JSON on stdin -> protobuf on stdout
 *   berth-bus setup                   create the JetStream streams
 *
 * decode and encode take --reply to use the reply type of a request subject
 * and --type NAME to name the type directly. decode is meant for
 *   nats sub 'container.stats.>' --translate 'berth-bus decode {{Subject}}'
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/catalog.h"
#include "bus/codec.h"
#include "bus/js.h"
#include "bus/types.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/version.h"

#define STDIN_MAX (8u << 20)

static const cfg_key tool_keys[] = {
    CONFIG_COMMON_KEYS,
    {0},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: berth-bus COMMAND [ARGS]\n\n"
            "  subjects [--markdown]      print the subject catalog\n"
            "  types                      list every message type\n"
            "  decode SUBJECT [--reply] [--type NAME]\n"
            "                             protobuf on stdin -> JSON on stdout\n"
            "  encode SUBJECT [--reply] [--type NAME]\n"
            "                             JSON on stdin -> protobuf on stdout\n"
            "  setup                      create or update the JetStream "
            "streams\n\n"
            "Watch the bus decoded:\n"
            "  nats sub '>' --translate 'berth-bus decode {{Subject}}'\n\n");
    config_print_help(f, "berth-bus setup", "bus", tool_keys);
}

static int read_stdin(buf *in)
{
    char chunk[65536];
    ssize_t r;
    int rc;

    for (;;) {
        r = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (r == 0)
            return 0;
        if (r < 0)
            return BERTH_EIO;
        rc = buf_append(in, chunk, (size_t)r);
        if (rc != 0)
            return rc;
    }
}

static int write_all(const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, c, n);
        if (w <= 0)
            return BERTH_EIO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void print_subjects(void)
{
    const bus_subject *s;

    printf("%-32s %-10s %-28s %-26s %-8s %s\n", "SUBJECT", "KIND", "MESSAGE",
           "REPLY", "STREAM", "PUBLISHER -> SUBSCRIBER");
    for (s = bus_catalog; s->pattern != NULL; s++) {
        printf("%-32s %-10s %-28s %-26s %-8s %s -> %s\n", s->pattern,
               bus_kind_name(s->kind), s->type->name,
               s->reply ? s->reply->name : "-", s->stream ? s->stream : "-",
               s->publisher, s->subscriber);
    }
}

/* Appends the JetStream tables to the Markdown catalog. */
static int markdown_js(buf *out)
{
    const bus_stream_def *d;
    const bus_consumer_def *c;
    int rc;

    rc = buf_puts(out, "\n## JetStream streams\n\n"
                       "| Stream | Subjects | Retention | Max age | Kept per "
                       "subject (0: all) | Purpose |\n|---|---|---|---|---|---|\n");
    for (d = bus_streams; rc == 0 && d->name != NULL; d++) {
        int i;

        rc = buf_printf(out, "| `%s` | ", d->name);
        for (i = 0; rc == 0 && d->subjects[i] != NULL; i++)
            rc = buf_printf(out, "%s`%s`", i ? ", " : "", d->subjects[i]);
        if (rc == 0)
            rc = buf_printf(out, " | %s | %lld d | %lld | %s |\n",
                            d->retention == js_WorkQueuePolicy ? "work queue"
                                                               : "limits",
                            (long long)(d->max_age_s / 86400),
                            (long long)d->max_msgs_per_subject, d->summary);
    }
    if (rc == 0)
        rc = buf_puts(out, "\n## Durable consumers\n\n"
                           "| Consumer | Stream | Durable name | Filter | Used by "
                           "| Purpose |\n|---|---|---|---|---|---|\n");
    for (c = bus_consumers; rc == 0 && c->name != NULL; c++)
        rc = buf_printf(out, "| %s | `%s` | `%s` | `%s` | %s | %s |\n", c->name,
                        c->stream, c->durable, c->filter ? c->filter : ">",
                        c->user, c->summary);
    return rc;
}

static const ProtobufCMessageDescriptor *pick_type(int argc, char **argv,
                                                   const char **why)
{
    const char *subject = NULL;
    const char *type = NULL;
    const bus_subject *s;
    int reply = 0;
    int i;

    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--reply") == 0)
            reply = 1;
        else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
            type = argv[++i];
        else if (subject == NULL)
            subject = argv[i];
        else {
            *why = "too many arguments";
            return NULL;
        }
    }
    if (type != NULL) {
        const ProtobufCMessageDescriptor *d = bus_type_find(type);
        if (d == NULL)
            *why = "unknown type (see berth-bus types)";
        return d;
    }
    if (subject == NULL) {
        *why = "a subject is required";
        return NULL;
    }
    s = bus_catalog_find(subject);
    if (s == NULL) {
        *why = "subject not in the catalog (see berth-bus subjects)";
        return NULL;
    }
    if (reply && s->reply == NULL) {
        *why = "--reply given but the subject is not a request";
        return NULL;
    }
    return reply ? s->reply : s->type;
}

static int convert(int argc, char **argv, int to_json)
{
    const ProtobufCMessageDescriptor *d;
    const char *why = "";
    char err[512] = "";
    buf in;
    buf out;
    int rc;

    buf_init(&in, STDIN_MAX);
    buf_init(&out, CODEC_JSON_MAX + 1);
    d = pick_type(argc, argv, &why);
    if (d == NULL) {
        fprintf(stderr, "berth-bus: %s\n", why);
        rc = BERTH_EINVAL;
        goto out;
    }
    rc = read_stdin(&in);
    if (rc != 0) {
        fprintf(stderr, "berth-bus: reading stdin: %s\n", berth_strerror(rc));
        goto out;
    }
    if (to_json)
        rc = codec_pb_to_json(d, in.data ? in.data : "", in.len, &out, err,
                              sizeof(err));
    else
        rc = codec_json_to_pb(d, in.len ? in.data : "{}", in.len ? in.len : 2,
                              &out, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "berth-bus: %s: %s\n", d->name,
                err[0] ? err : berth_strerror(rc));
        goto out;
    }
    if (to_json)
        rc = buf_putc(&out, '\n');
    if (rc == 0)
        rc = write_all(out.data ? out.data : "", out.len);
out:
    buf_free(&in);
    buf_free(&out);
    return rc;
}

static int setup(void)
{
    config *cfg = NULL;
    bus *b = NULL;
    bus_opts o = {0};
    char err[512];
    int rc;

    rc = config_load(&cfg, "bus", tool_keys, 1, NULL, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "berth-bus: %s\n", err);
        return rc;
    }
    o.url = config_str(cfg, "BERTH_NATS_URL");
    o.creds = config_str(cfg, "BERTH_NATS_CREDS");
    o.service = "berth-bus";
    o.version = BERTH_VERSION;
    o.description = "the bus tool";
    rc = bus_open(&b, &o);
    if (rc == 0)
        rc = bus_wait_connected(b, 5000);
    if (rc == 0)
        rc = bus_js_setup(b);
    if (rc == 0)
        printf("streams ready\n");
    else
        fprintf(stderr, "berth-bus: setup: %s\n", berth_strerror(rc));
    bus_close(b);
    config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    int rc = 0;

    log_init("bus", LOG_WARN);
    if (strcmp(cmd, "subjects") == 0) {
        if (argc > 2 && strcmp(argv[2], "--markdown") == 0) {
            buf out;
            buf_init(&out, 1u << 20);
            rc = bus_catalog_markdown(&out);
            if (rc == 0)
                rc = markdown_js(&out);
            if (rc == 0)
                rc = write_all(out.data, out.len);
            buf_free(&out);
        } else {
            print_subjects();
        }
    } else if (strcmp(cmd, "types") == 0) {
        int i;
        for (i = 0; bus_types[i] != NULL; i++)
            printf("%s\n", bus_types[i]->name);
    } else if (strcmp(cmd, "decode") == 0) {
        rc = convert(argc, argv, 1);
    } else if (strcmp(cmd, "encode") == 0) {
        rc = convert(argc, argv, 0);
    } else if (strcmp(cmd, "setup") == 0) {
        rc = setup();
    } else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
               strcmp(cmd, "help") == 0) {
        usage(stdout);
    } else if (strcmp(cmd, "--version") == 0) {
        printf("berth-bus %s\n", BERTH_VERSION);
    } else {
        usage(stderr);
        rc = BERTH_EINVAL;
    }
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
