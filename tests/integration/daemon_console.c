/* daemon_console.c - the console module against a real nats-server and the
 * real Docker Engine: 100,000 lines in order and complete, console input
 * through console.in (also to a container that reads late), replay with
 * max_bytes and next_seq, a TTY container, a bus that holds back and a
 * bus that goes away (every dropped byte reported), a restart right after
 * an exit, attach errors, detach and forget.
 *
 * The test image berth-test-busybox:1 is built locally by
 * tests/harness/image.sh. Every container is named berth-test-console-...
 * and labelled berth.node=<a node id unique to this run>; the suite's
 * teardown removes whatever carries that label.
 */
#include "svc-daemon/docker.c"
#include "svc-daemon/uhttp.c"
#include "svc-daemon/console.c"
#include "svc-daemon/hijack.c"

#include <limits.h>
#include <signal.h>
#include <time.h>

#include "tests/harness/docker.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define TEST_IMAGE H_TEST_IMAGE
#define WAIT_MS    60000

static char node_id[64]; /* berth.node of every container this run makes */
static char node_label[96];

/* ---------------------------------------------------------------- fixture */

static void suite_setup(void)
{
    snprintf(node_id, sizeof(node_id), "test-%ld-%d", (long)time(NULL),
             (int)getpid());
    snprintf(node_label, sizeof(node_label), "berth.node=%s", node_id);
    h_image_build();
}

static void suite_teardown(void)
{
    daemon_docker *d = NULL;
    daemon_docker_summary *items = NULL;
    size_t n = 0, i;

    if (daemon_docker_new(NULL, &d) != 0)
        return;
    if (daemon_docker_container_list(d, node_label, &items, &n, NULL) == 0) {
        for (i = 0; i < n; i++)
            daemon_docker_container_remove(d, items[i].id, true, true, NULL);
    }
    free(items);
    daemon_docker_free(d);
}

/* One test's world: nats-server, a bus shared by the console and the test,
 * a Docker client and the console. */
typedef struct world {
    h_nats nats;
    bus *bus;
    daemon_docker *docker;
    daemon_console *console;
} world;

static void world_start(world *w, daemon_console_cfg cfg)
{
    memset(w, 0, sizeof(*w));
    ck_assert_int_eq(h_nats_start(&w->nats), 0);
    w->bus = h_bus_open(w->nats.url, "console-test");
    ck_assert_int_eq(daemon_docker_new(NULL, &w->docker), 0);
    cfg.bus = w->bus;
    cfg.node_id = node_id;
    ck_assert_int_eq(daemon_console_new(&cfg, &w->console), 0);
}

static void world_stop(world *w)
{
    daemon_console_free(w->console);
    bus_close(w->bus);
    daemon_docker_free(w->docker);
    h_nats_stop(&w->nats);
}

/* Creates (does not start) a container of this run. */
static void make_container(world *w, const char *what, const char *site,
                          const char *const *cmd, bool tty,
                          char id[DAEMON_DOCKER_ID_MAX])
{
    daemon_docker_err err = {0};
    char name[160];
    daemon_docker_spec spec = {
        .name = name,
        .image = TEST_IMAGE,
        .cmd = cmd,
        .site = site,
        .node = node_id,
        .tty = tty,
    };

    snprintf(name, sizeof(name), "berth-test-console-%s-%s", what, node_id);
    if (daemon_docker_container_create(w->docker, &spec, id, &err) != 0)
        ck_abort_msg("create %s: %s", name, err.message);
}

static void start_container(world *w, const char *id)
{
    daemon_docker_err err = {0};

    if (daemon_docker_container_start(w->docker, id, &err) != 0)
        ck_abort_msg("start: %s", err.message);
}

static void remove_container(world *w, const char *id)
{
    daemon_docker_container_remove(w->docker, id, true, true, NULL);
}

/* ---------------------------------------------------------------- output */

/* What a subscriber to console.out.<node>.<site> received. */
typedef struct seen {
    pthread_mutex_t lock;
    buf out; /* stdout and stderr data, in order */
    buf err; /* stderr data */
    buf sys; /* notices */
    uint64_t dropped;
    int64_t last_seq; /* -1 before the first chunk */
    int seq_errors;
    int chunks;
    int drop_notices;
    int other_site;
} seen;

static seen *seen_new(void)
{
    seen *s = calloc(1, sizeof(*s));

    ck_assert_ptr_nonnull(s);
    pthread_mutex_init(&s->lock, NULL);
    buf_init(&s->out, 8u << 20);
    buf_init(&s->err, 1u << 20);
    buf_init(&s->sys, 1u << 20);
    s->last_seq = -1;
    return s;
}

/* After bus_close(): no handler may run any more. */
static void seen_free(seen *s)
{
    buf_free(&s->out);
    buf_free(&s->err);
    buf_free(&s->sys);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int on_chunk(bus_msg *m, void *ud)
{
    const Berth__V1__ConsoleChunk *ch = (const void *)m->msg;
    seen *s = ud;
    char site[CON_ID_MAX];

    bus_subject_token(m->subject, 3, site, sizeof(site));
    pthread_mutex_lock(&s->lock);
    if (strcmp(ch->site_id, site) != 0)
        s->other_site++;
    if ((int64_t)ch->seq != s->last_seq + 1)
        s->seq_errors++;
    s->last_seq = (int64_t)ch->seq;
    s->chunks++;
    if (ch->stream == CON_SYSTEM) {
        buf_append(&s->sys, ch->data.data, ch->data.len);
        s->dropped += ch->dropped_bytes;
        if (ch->dropped_bytes > 0)
            s->drop_notices++;
    } else {
        buf_append(&s->out, ch->data.data, ch->data.len);
        if (ch->stream == CON_STDERR)
            buf_append(&s->err, ch->data.data, ch->data.len);
        if (ch->dropped_bytes != 0)
            s->seq_errors++; /* only notices carry a count */
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static seen *watch(world *w, const char *site)
{
    char subject[CON_SUBJECT_MAX];
    seen *s = seen_new();

    snprintf(subject, sizeof(subject), "console.out.%s.%s", node_id, site);
    ck_assert_int_eq(bus_subscribe(w->bus, subject, NULL, on_chunk, s), 0);
    return s;
}

/* Waits until b (under s->lock) contains needle. */
static bool wait_text(seen *s, buf *b, const char *needle, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    bool found;

    do {
        pthread_mutex_lock(&s->lock);
        found = b->data != NULL && memmem(b->data, b->len, needle,
                                          strlen(needle)) != NULL;
        pthread_mutex_unlock(&s->lock);
        if (found)
            return true;
        clock_sleep_ms(20);
    } while (clock_mono_ms() < end);
    return false;
}

/* Waits until out.len + dropped reaches want. */
static bool wait_total(seen *s, uint64_t want, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    uint64_t got;

    do {
        pthread_mutex_lock(&s->lock);
        got = s->out.len + s->dropped;
        pthread_mutex_unlock(&s->lock);
        if (got >= want)
            return got == want;
        clock_sleep_ms(20);
    } while (clock_mono_ms() < end);
    h_say("waited for %llu bytes, got %llu", (unsigned long long)want,
          (unsigned long long)got);
    return false;
}

static bool wait_detached(world *w, const char *site, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    do {
        if (!daemon_console_attached(w->console, site))
            return true;
        clock_sleep_ms(20);
    } while (clock_mono_ms() < end);
    return false;
}

/* What `seq 1 n` prints. */
static void seq_text(buf *b, int n)
{
    int i;

    buf_init(b, 16u << 20);
    for (i = 1; i <= n; i++)
        ck_assert_int_eq(buf_printf(b, "%d\n", i), 0);
}

static int replay(world *w, const char *site, const char *req_site,
                  uint32_t max, Berth__V1__ConsoleReplay **out)
{
    Berth__V1__ConsoleReplayRequest req =
        BERTH__V1__CONSOLE_REPLAY_REQUEST__INIT;
    char subject[CON_SUBJECT_MAX];

    snprintf(subject, sizeof(subject), "console.replay.%s.%s", node_id, site);
    req.site_id = (char *)req_site;
    req.max_bytes = max;
    *out = NULL;
    return bus_request(w->bus, subject, &req.base, 5000,
                       (ProtobufCMessage **)out, NULL);
}

static void send_input(world *w, const char *site, const char *msg_site,
                       const char *text)
{
    Berth__V1__ConsoleInput in = BERTH__V1__CONSOLE_INPUT__INIT;
    char subject[CON_SUBJECT_MAX];

    snprintf(subject, sizeof(subject), "console.in.%s.%s", node_id, site);
    in.site_id = (char *)msg_site;
    in.data.data = (uint8_t *)text;
    in.data.len = strlen(text);
    in.user_id = "test-user";
    ck_assert_int_eq(bus_publish(w->bus, subject, &in.base), 0);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_output_and_replay)
{
    static const char *const cmd[] = {"seq", "1", "100000", NULL};
    const char *site = "site-seq";
    Berth__V1__ConsoleReplay *r = NULL;
    char id[DAEMON_DOCKER_ID_MAX];
    buf want;
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){0});
    s = watch(&w, site);
    seq_text(&want, 100000);
    make_container(&w, "seq", site, cmd, false, id);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    ck_assert(daemon_console_attached(w.console, site));
    start_container(&w, id);

    ck_assert(wait_total(s, want.len, WAIT_MS));
    ck_assert(wait_detached(&w, site, 10000));
    pthread_mutex_lock(&s->lock);
    ck_assert_uint_eq(s->out.len, want.len);
    ck_assert_int_eq(memcmp(s->out.data, want.data, want.len), 0);
    ck_assert_int_eq(s->seq_errors, 0);
    ck_assert_int_eq(s->other_site, 0);
    ck_assert_int_eq(s->drop_notices, 0);
    ck_assert_uint_eq(s->sys.len, 0);
    ck_assert_uint_eq(s->err.len, 0);
    ck_assert_int_gt(s->chunks, 1);
    h_say("100000 lines in %d chunks", s->chunks);
    pthread_mutex_unlock(&s->lock);

    /* The whole ring: the newest 64 KiB, ending with the last line. */
    ck_assert_int_eq(replay(&w, site, site, 0, &r), 0);
    ck_assert_str_eq(r->site_id, site);
    ck_assert_uint_eq(r->data.len, DAEMON_CONSOLE_RING_DEFAULT);
    ck_assert_int_eq(memcmp(r->data.data,
                            want.data + want.len - r->data.len, r->data.len),
                     0);
    ck_assert_uint_eq(r->next_seq, (uint64_t)s->last_seq + 1);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* The newest 100 bytes, asked without a site id in the body. */
    ck_assert_int_eq(replay(&w, site, "", 100, &r), 0);
    ck_assert_uint_eq(r->data.len, 100);
    ck_assert_int_eq(memcmp(r->data.data, want.data + want.len - 100, 100), 0);
    ck_assert_int_eq(memcmp(r->data.data + 93, "100000\n", 7), 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A notice from berth: published in order, kept in the ring. */
    daemon_console_notice(w.console, site, "site stopped (exit code %d)\n", 0);
    ck_assert(wait_text(s, &s->sys, "[berth] site stopped (exit code 0)\r\n",
                        5000));
    ck_assert_int_eq(replay(&w, site, site, 64, &r), 0);
    {
        const char *tail = "100000\n[berth] site stopped (exit code 0)\r\n";
        size_t n = strlen(tail);
        ck_assert_uint_eq(r->data.len, 64);
        ck_assert_int_eq(memcmp(r->data.data + 64 - n, tail, n), 0);
    }
    pthread_mutex_lock(&s->lock);
    ck_assert_uint_eq(r->next_seq, (uint64_t)s->last_seq + 1);
    ck_assert_int_eq(s->seq_errors, 0);
    pthread_mutex_unlock(&s->lock);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A site never seen has an empty console; a body naming another site
     * than the subject is refused. */
    ck_assert_int_eq(replay(&w, "site-never", "", 0, &r), 0);
    ck_assert_uint_eq(r->data.len, 0);
    ck_assert_uint_eq(r->next_seq, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    ck_assert_int_eq(replay(&w, site, "site-other", 0, &r), BERTH_EINVAL);

    remove_container(&w, id);
    buf_free(&want);
    world_stop(&w);
    seen_free(s);
}
END_TEST

START_TEST(test_input)
{
    static const char *const cmd[] = {
        "sh", "-c", "echo ready; read line; echo got:$line; echo oops >&2",
        NULL};
    const char *site = "site-input";
    char id[DAEMON_DOCKER_ID_MAX];
    char big[100 * 1024];
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){0});
    s = watch(&w, site);
    make_container(&w, "input", site, cmd, false, id);
    ck_assert_int_eq(daemon_console_write(w.console, site, "x\n", 2),
                     BERTH_ENOENT);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    start_container(&w, id);
    ck_assert(wait_text(s, &s->out, "ready\n", 10000));

    /* More than input_max at once is refused whole. */
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(daemon_console_write(w.console, site, big, sizeof(big)),
                     BERTH_ETOOBIG);
    /* Input naming another site than its subject is ignored. */
    send_input(&w, site, "site-other", "wrong\n");
    send_input(&w, site, site, "hello\n");
    ck_assert(wait_text(s, &s->out, "got:hello\n", 10000));
    ck_assert(wait_text(s, &s->err, "oops\n", 10000));
    ck_assert(wait_detached(&w, site, 10000));
    pthread_mutex_lock(&s->lock);
    ck_assert_ptr_null(memmem(s->out.data, s->out.len, "wrong", 5));
    ck_assert_int_eq(s->seq_errors, 0);
    pthread_mutex_unlock(&s->lock);
    ck_assert_int_eq(daemon_console_write(w.console, site, "x\n", 2),
                     BERTH_ENOENT);

    remove_container(&w, id);
    world_stop(&w);
    seen_free(s);
}
END_TEST

/* A container that reads its stdin late: input waits in the queue (and in
 * the socket) and is written as the container takes it; a writer that
 * gets BERTH_ETOOBIG tries again later and nothing is lost. */
START_TEST(test_input_backpressure)
{
    static const char *const cmd[] = {
        "sh", "-c", "sleep 1; head -c 1000000 | wc -c", NULL};
    const char *site = "site-slowin";
    char id[DAEMON_DOCKER_ID_MAX];
    static char piece[50000];
    size_t sent = 0;
    int refused = 0;
    int64_t end;
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){0});
    s = watch(&w, site);
    make_container(&w, "slowin", site, cmd, false, id);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    start_container(&w, id);
    memset(piece, 'z', sizeof(piece));
    end = clock_mono_ms() + WAIT_MS;
    while (sent < 1000000 && clock_mono_ms() < end) {
        int rc = daemon_console_write(w.console, site, piece, sizeof(piece));
        if (rc == BERTH_ETOOBIG) {
            refused++;
            clock_sleep_ms(5);
            continue;
        }
        ck_assert_int_eq(rc, 0);
        sent += sizeof(piece);
    }
    ck_assert_uint_eq(sent, 1000000);
    ck_assert(wait_text(s, &s->out, "1000000\n", WAIT_MS));
    h_say("input back-pressure: %d writes refused while the container slept",
          refused);
    ck_assert_int_gt(refused, 0);

    remove_container(&w, id);
    world_stop(&w);
    seen_free(s);
}
END_TEST

START_TEST(test_tty)
{
    static const char *const cmd[] = {
        "sh", "-c", "echo tty-ok; read line; echo got:$line", NULL};
    const char *site = "site-tty";
    char id[DAEMON_DOCKER_ID_MAX];
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){0});
    s = watch(&w, site);
    make_container(&w, "tty", site, cmd, true, id);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, true), 0);
    start_container(&w, id);
    /* A terminal turns "\n" into "\r\n". */
    ck_assert(wait_text(s, &s->out, "tty-ok\r\n", 10000));
    send_input(&w, site, site, "abc\n");
    ck_assert(wait_text(s, &s->out, "got:abc\r\n", 10000));
    ck_assert(wait_detached(&w, site, 10000));
    pthread_mutex_lock(&s->lock);
    ck_assert_int_eq(s->seq_errors, 0);
    ck_assert_uint_eq(s->err.len, 0);
    pthread_mutex_unlock(&s->lock);

    remove_container(&w, id);
    world_stop(&w);
    seen_free(s);
}
END_TEST

/* A bus that never has room (out_buffered_max 1 byte: whatever nats.c
 * still buffers is too much) and a 4 KiB backlog: output is dropped, and
 * every dropped byte is reported. */
START_TEST(test_slow_bus)
{
    static const char *const cmd[] = {"seq", "1", "200000", NULL};
    const char *site = "site-slow";
    char id[DAEMON_DOCKER_ID_MAX];
    buf want;
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){.out_buffered_max = 1,
                                         .backlog_max = 4096});
    s = watch(&w, site);
    seq_text(&want, 200000);
    make_container(&w, "slow", site, cmd, false, id);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    start_container(&w, id);
    ck_assert(wait_detached(&w, site, WAIT_MS));
    ck_assert(wait_total(s, want.len, WAIT_MS));
    pthread_mutex_lock(&s->lock);
    h_say("slow bus: %zu bytes arrived, %llu dropped, %d notices, %d chunks",
          s->out.len, (unsigned long long)s->dropped, s->drop_notices,
          s->chunks);
    ck_assert_int_gt(s->drop_notices, 0);
    ck_assert_uint_gt(s->dropped, 0);
    ck_assert_uint_eq(s->out.len + s->dropped, want.len);
    ck_assert_ptr_nonnull(memmem(s->sys.data, s->sys.len,
                                 " bytes of output dropped\r\n", 26));
    ck_assert_int_eq(s->seq_errors, 0);
    /* The newest output is what stays. */
    ck_assert_uint_ge(s->out.len, 7);
    ck_assert_int_eq(memcmp(s->out.data + s->out.len - 7, "200000\n", 7), 0);
    pthread_mutex_unlock(&s->lock);

    remove_container(&w, id);
    buf_free(&want);
    world_stop(&w);
    seen_free(s);
}
END_TEST

/* NATS goes away while the container prints: output is held back, the
 * backlog keeps its newest 64 KiB, and once the bus is back one notice
 * reports the rest, followed by exactly those newest bytes. */
START_TEST(test_bus_outage)
{
    static const char *const cmd[] = {
        "sh", "-c", "read x; seq 1 100000", NULL};
    const char *site = "site-outage";
    Berth__V1__ConsoleReplay *r = NULL;
    const size_t backlog = 64 * 1024;
    char id[DAEMON_DOCKER_ID_MAX];
    int64_t end;
    buf want;
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){.backlog_max = backlog});
    s = watch(&w, site);
    seq_text(&want, 100000);
    make_container(&w, "outage", site, cmd, false, id);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    start_container(&w, id);

    ck_assert_int_ge(h_proc_stop(&w.nats.proc, SIGINT, 5000), 0);
    end = clock_mono_ms() + 5000;
    while (bus_connected(w.bus) && clock_mono_ms() < end)
        clock_sleep_ms(10);
    ck_assert(!bus_connected(w.bus));
    /* Console input does not need the bus. */
    ck_assert_int_eq(daemon_console_write(w.console, site, "go\n", 3), 0);
    ck_assert(wait_detached(&w, site, WAIT_MS));

    ck_assert_int_eq(h_nats_restart(&w.nats), 0);
    ck_assert_int_eq(bus_wait_connected(w.bus, 10000), 0);
    ck_assert(wait_total(s, want.len, WAIT_MS));
    pthread_mutex_lock(&s->lock);
    ck_assert_int_eq(s->drop_notices, 1);
    ck_assert_uint_eq(s->dropped, want.len - backlog);
    ck_assert_uint_eq(s->out.len, backlog);
    ck_assert_int_eq(memcmp(s->out.data, want.data + want.len - backlog,
                            backlog),
                     0);
    ck_assert_int_eq(s->seq_errors, 0);
    ck_assert_int_eq(s->last_seq, (int64_t)s->chunks - 1);
    pthread_mutex_unlock(&s->lock);

    /* The ring saw the same: the notice, then the newest output. */
    ck_assert_int_eq(replay(&w, site, site, 0, &r), 0);
    ck_assert_uint_eq(r->data.len, DAEMON_CONSOLE_RING_DEFAULT);
    ck_assert_int_eq(memcmp(r->data.data + r->data.len - 7, "100000\n", 7),
                     0);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    remove_container(&w, id);
    buf_free(&want);
    world_stop(&w);
    seen_free(s);
}
END_TEST

/* The supervisor's restart: attach and start again as soon as Docker says
 * the container exited, without waiting for the console to see the end of
 * the old stream. Every run's output arrives, in order. */
START_TEST(test_restart_right_away)
{
    static const char *const cmd[] = {"sh", "-c", "echo run", NULL};
    const char *site = "site-restart";
    char id[DAEMON_DOCKER_ID_MAX];
    daemon_docker_err err = {0};
    int i, code;
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){0});
    s = watch(&w, site);
    make_container(&w, "restart", site, cmd, false, id);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
        start_container(&w, id);
        code = -1;
        ck_assert_int_eq(
            daemon_docker_container_wait(w.docker, id, 10000, &code, &err), 0);
        ck_assert_int_eq(code, 0);
    }
    ck_assert(wait_text(s, &s->out, "run\nrun\nrun\nrun\nrun\n", 10000));
    ck_assert(wait_detached(&w, site, 10000));
    pthread_mutex_lock(&s->lock);
    ck_assert_uint_eq(s->out.len, 20);
    ck_assert_int_eq(s->seq_errors, 0);
    pthread_mutex_unlock(&s->lock);

    remove_container(&w, id);
    world_stop(&w);
    seen_free(s);
}
END_TEST

START_TEST(test_attach_detach_forget)
{
    static const char *const cmd[] = {"cat", NULL};
    const char *site = "site-cat";
    Berth__V1__ConsoleReplay *r = NULL;
    char id[DAEMON_DOCKER_ID_MAX];
    seen *s;
    world w;

    world_start(&w, (daemon_console_cfg){0});
    s = watch(&w, site);
    make_container(&w, "cat", site, cmd, false, id);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    start_container(&w, id);
    ck_assert_int_eq(daemon_console_write(w.console, site, "one\n", 4), 0);
    ck_assert(wait_text(s, &s->out, "one\n", 10000));

    /* Detached: no input, the ring stays, notices still go out. */
    daemon_console_detach(w.console, site);
    ck_assert(!daemon_console_attached(w.console, site));
    ck_assert_int_eq(daemon_console_write(w.console, site, "two\n", 4),
                     BERTH_ENOENT);
    daemon_console_notice(w.console, site, "detached");
    ck_assert(wait_text(s, &s->sys, "[berth] detached\r\n", 5000));
    ck_assert_int_eq(replay(&w, site, site, 0, &r), 0);
    ck_assert_uint_eq(r->data.len, strlen("one\n[berth] detached\r\n"));
    ck_assert_int_eq(memcmp(r->data.data, "one\n[berth] detached\r\n",
                            r->data.len),
                     0);
    ck_assert_uint_eq(r->next_seq, 2);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* Attaching again to the running container picks up where it is. */
    ck_assert_int_eq(daemon_console_attach(w.console, site, id, false), 0);
    ck_assert(daemon_console_attached(w.console, site));
    ck_assert_int_eq(daemon_console_write(w.console, site, "three\n", 6), 0);
    ck_assert(wait_text(s, &s->out, "three\n", 10000));
    pthread_mutex_lock(&s->lock);
    ck_assert_int_eq(s->seq_errors, 0);
    ck_assert_int_eq(s->last_seq, 2);
    pthread_mutex_unlock(&s->lock);

    /* Forgotten: the console is empty again. */
    daemon_console_forget(w.console, site);
    ck_assert(!daemon_console_attached(w.console, site));
    ck_assert_int_eq(replay(&w, site, site, 0, &r), 0);
    ck_assert_uint_eq(r->data.len, 0);
    ck_assert_uint_eq(r->next_seq, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    remove_container(&w, id);
    world_stop(&w);
    seen_free(s);
}
END_TEST

START_TEST(test_attach_errors)
{
    daemon_console *c = NULL;
    char *dir = h_tempdir("console-sock");
    char sock[PATH_MAX], name[160];
    int64_t t0;
    world w;

    world_start(&w, (daemon_console_cfg){0});
    snprintf(name, sizeof(name), "berth-test-console-none-%s", node_id);
    ck_assert_int_eq(daemon_console_attach(w.console, "site-x", name, false),
                     BERTH_ENOENT);
    ck_assert(!daemon_console_attached(w.console, "site-x"));
    ck_assert_int_eq(daemon_console_attach(w.console, "site-x", "../x", false),
                     BERTH_EINVAL);
    ck_assert_int_eq(daemon_console_attach(w.console, "a.b", name, false),
                     BERTH_EINVAL);
    ck_assert_int_eq(daemon_console_new(&(daemon_console_cfg){.bus = w.bus,
                                                              .node_id = "a.b"},
                                        &c),
                     BERTH_EINVAL);

    /* No engine at that path: unavailable, at once. */
    ck_assert_ptr_nonnull(dir);
    snprintf(sock, sizeof(sock), "%s/docker.sock", dir);
    ck_assert_int_eq(
        daemon_console_new(&(daemon_console_cfg){.bus = w.bus,
                                                 .node_id = "n2",
                                                 .sock_path = sock},
                           &c),
        0);
    t0 = clock_mono_ms();
    ck_assert_int_eq(daemon_console_attach(c, "site-x", name, false),
                     BERTH_EUNAVAIL);
    ck_assert_int_lt(clock_mono_ms() - t0, 1000);
    daemon_console_free(c);

    world_stop(&w);
    h_tempdir_drop(dir, "console socket");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_console");
    TCase *tc = tcase_create("console");

    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_output_and_replay);
    tcase_add_test(tc, test_input);
    tcase_add_test(tc, test_input_backpressure);
    tcase_add_test(tc, test_tty);
    tcase_add_test(tc, test_slow_bus);
    tcase_add_test(tc, test_bus_outage);
    tcase_add_test(tc, test_restart_right_away);
    tcase_add_test(tc, test_attach_detach_forget);
    tcase_add_test(tc, test_attach_errors);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
