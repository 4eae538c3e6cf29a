/* bus.c - the bus against a real nats-server: request/reply in both
 * encodings, errors, JetStream durability across a consumer process
 * restart, discovery, and the real `nats` CLI.
 *
 * The binary doubles as the consumer process of the durability test: with
 * BERTH_TEST_CONSUMER set it consumes commands and prints their ids instead
 * of running the suite.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bus/bus.h"
#include "bus/codec.h"
#include "bus/js.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "site.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/pg.h"
#include "tests/harness/unit.h"

static h_nats nats;

static void nats_up(void)
{
    ck_assert_int_eq(h_nats_start(&nats), 0);
}

static void nats_down(void)
{
    h_nats_stop(&nats);
}

static bus *open_bus(const char *name)
{
    return h_bus_open(nats.url, name);
}

/* sys.echo handler with switches in the text: "fail" answers ENOENT,
 * "slow" sleeps past the caller's deadline. */
static int on_echo(bus_msg *m, void *ud)
{
    Berth__V1__Echo *e = (Berth__V1__Echo *)m->msg;

    (void)ud;
    if (strcmp(e->text, "fail") == 0)
        return bus_reply_error(m, BERTH_ENOENT, "no site named %s", "ghost");
    if (strcmp(e->text, "bare-fail") == 0)
        return BERTH_ECONFLICT;
    if (strcmp(e->text, "slow") == 0)
        clock_sleep_ms(700);
    return bus_reply(m, m->msg);
}

START_TEST(request_reply_protobuf)
{
    bus *srv = open_bus("berth-test");
    bus *cli = open_bus("berth-client");
    Berth__V1__Echo req = BERTH__V1__ECHO__INIT;
    Berth__V1__Echo *rep = NULL;
    ProtobufCMessage *out = NULL;
    bus_error err = {0};
    unsigned char blob[3] = {0, 0xff, 7};

    ck_assert_int_eq(bus_serve(srv, "echo", "sys.echo.berth-test", on_echo, NULL), 0);
    natsConnection_Flush(bus_nats(srv));
    req.text = "héllo";
    req.data.data = blob;
    req.data.len = sizeof(blob);
    req.sent_ns = -42;
    ck_assert_int_eq(bus_request(cli, "sys.echo.berth-test", &req.base, 2000, &out, &err), 0);
    rep = (Berth__V1__Echo *)out;
    ck_assert_str_eq(rep->text, "héllo");
    ck_assert_uint_eq(rep->data.len, 3);
    ck_assert_int_eq(rep->data.data[1], 0xff);
    ck_assert_int_eq(rep->sent_ns, -42);
    protobuf_c_message_free_unpacked(out, NULL);

    /* An error reply carries the code and the handler's message. */
    req.text = "fail";
    ck_assert_int_eq(bus_request(cli, "sys.echo.berth-test", &req.base, 2000, &out, &err),
                     BERTH_ENOENT);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(err.message, "no site named ghost");
    ck_assert_int_eq(err.status, 404);
    req.text = "bare-fail";
    ck_assert_int_eq(bus_request(cli, "sys.echo.berth-test", &req.base, 2000, &out, &err),
                     BERTH_ECONFLICT);

    /* Deadlines and absent responders are distinct errors. */
    req.text = "slow";
    ck_assert_int_eq(bus_request(cli, "sys.echo.berth-test", &req.base, 200, &out, &err),
                     BERTH_ETIMEDOUT);
    req.text = "x";
    ck_assert_int_eq(bus_request(cli, "sys.echo.nobody", &req.base, 2000, &out, &err),
                     BERTH_ENORESP);

    /* Subjects outside the catalog are refused before anything is sent. */
    ck_assert_int_eq(bus_request(cli, "no.such.subject", &req.base, 2000, &out, &err),
                     BERTH_ESUBJECT);
    ck_assert_int_eq(bus_publish(cli, "site.status.n1", &req.base), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_publish(cli, "site.status.n1.s1", &req.base), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_serve(cli, "x", "nothing.here", on_echo, NULL), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_subscribe(cli, "foo.>", NULL, on_echo, NULL), BERTH_ESUBJECT);
    bus_close(cli);
    bus_close(srv);
}
END_TEST

/* Sends a raw request with optional Content-Type; returns the reply. */
static natsMsg *raw_request(bus *b, const char *subject, const char *data,
                            int len, int json)
{
    natsMsg *req = NULL, *rep = NULL;

    ck_assert_int_eq(natsMsg_Create(&req, subject, NULL, data, len), NATS_OK);
    if (json)
        natsMsgHeader_Set(req, "Content-Type", "application/json");
    ck_assert_int_eq(natsConnection_RequestMsg(&rep, bus_nats(b), req, 2000), NATS_OK);
    natsMsg_Destroy(req);
    return rep;
}

START_TEST(request_reply_json_and_bad_input)
{
    bus *srv = open_bus("berth-test");
    const char *body = "{\"text\":\"hi\",\"data\":\"AP8H\",\"sentNs\":\"9007199254740993\"}";
    const char *ct = NULL, *code = NULL, *msg = NULL;
    natsMsg *rep;
    json_t *j;

    ck_assert_int_eq(bus_serve(srv, "echo", "sys.echo.berth-test", on_echo, NULL), 0);
    natsConnection_Flush(bus_nats(srv));

    rep = raw_request(srv, "sys.echo.berth-test", body, (int)strlen(body), 1);
    ck_assert_int_eq(natsMsgHeader_Get(rep, "Content-Type", &ct), NATS_OK);
    ck_assert_str_eq(ct, "application/json");
    j = json_loadb(natsMsg_GetData(rep), (size_t)natsMsg_GetDataLength(rep), 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "hi");
    ck_assert_str_eq(json_string_value(json_object_get(j, "data")), "AP8H");
    /* 64-bit integers survive exactly, as strings. */
    ck_assert_str_eq(json_string_value(json_object_get(j, "sentNs")), "9007199254740993");
    json_decref(j);
    natsMsg_Destroy(rep);

    /* An unknown field is refused with a message naming it, in JSON. */
    rep = raw_request(srv, "sys.echo.berth-test", "{\"txt\":1}", 9, 1);
    ck_assert_int_eq(natsMsgHeader_Get(rep, "Nats-Service-Error-Code", &code), NATS_OK);
    ck_assert_str_eq(code, "400");
    ck_assert_int_eq(natsMsgHeader_Get(rep, "Nats-Service-Error", &msg), NATS_OK);
    ck_assert_ptr_nonnull(strstr(msg, "txt"));
    j = json_loadb(natsMsg_GetData(rep), (size_t)natsMsg_GetDataLength(rep), 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "EPROTO");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 400);
    json_decref(j);
    natsMsg_Destroy(rep);

    /* Malformed JSON and malformed protobuf: error replies, no crash. */
    rep = raw_request(srv, "sys.echo.berth-test", "{\"text\":", 8, 1);
    ck_assert_int_eq(natsMsgHeader_Get(rep, "Nats-Service-Error-Code", &code), NATS_OK);
    ck_assert_str_eq(code, "400");
    natsMsg_Destroy(rep);
    rep = raw_request(srv, "sys.echo.berth-test", "\xff\xff\xff\xff", 4, 0);
    ck_assert_int_eq(natsMsgHeader_Get(rep, "Nats-Service-Error-Code", &code), NATS_OK);
    ck_assert_str_eq(code, "400");
    natsMsg_Destroy(rep);

    /* The service still answers afterwards. */
    rep = raw_request(srv, "sys.echo.berth-test", "{}", 2, 1);
    ck_assert_int_ne(natsMsgHeader_Get(rep, "Nats-Service-Error-Code", &code), NATS_OK);
    natsMsg_Destroy(rep);
    bus_close(srv);
}
END_TEST

static json_t *srv_request(bus *b, const char *subject)
{
    natsMsg *rep = NULL;
    json_t *j;

    ck_assert_int_eq(natsConnection_RequestString(&rep, bus_nats(b), subject, "", 2000),
                     NATS_OK);
    j = json_loadb(natsMsg_GetData(rep), (size_t)natsMsg_GetDataLength(rep), 0, NULL);
    natsMsg_Destroy(rep);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(discovery)
{
    bus *srv = open_bus("berth-test");
    bus *cli = open_bus("berth-client");
    Berth__V1__Echo req = BERTH__V1__ECHO__INIT;
    ProtobufCMessage *out = NULL;
    bus_error err;
    json_t *j, *eps;
    char subject[128];

    ck_assert_int_eq(bus_serve(srv, "echo", "sys.echo.berth-test", on_echo, NULL), 0);
    natsConnection_Flush(bus_nats(srv));
    req.text = "x";
    ck_assert_int_eq(bus_request(cli, "sys.echo.berth-test", &req.base, 2000, &out, &err), 0);
    protobuf_c_message_free_unpacked(out, NULL);
    req.text = "fail";
    bus_request(cli, "sys.echo.berth-test", &req.base, 2000, &out, &err);

    j = srv_request(cli, "$SRV.PING.berth-test");
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "berth-test");
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")),
                     "io.nats.micro.v1.ping_response");
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), bus_instance_id(srv));
    json_decref(j);

    /* Every instance listens on $SRV.> and answers only what names it. */
    {
        static const char *const others[] = {
            "$SRV.PING.berth-other", "$SRV.PING.berth-test.not-its-id",
            "$SRV.PINGS", "$SRV.INFO.berth-tes", "$SRV.STATS.berth-test.x.y"};
        size_t i;

        for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
            natsMsg *rep = NULL;

            ck_assert_msg(natsConnection_RequestString(&rep, bus_nats(cli),
                                                       others[i], "", 300) ==
                              NATS_TIMEOUT,
                          "%s was answered", others[i]);
            natsMsg_Destroy(rep);
        }
    }
    snprintf(subject, sizeof(subject), "$SRV.INFO.berth-test.%s", bus_instance_id(srv));
    j = srv_request(cli, subject);
    eps = json_object_get(j, "endpoints");
    ck_assert_int_eq(json_array_size(eps), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(eps, 0), "subject")),
                     "sys.echo.berth-test");
    ck_assert_str_eq(json_string_value(json_object_get(j, "description")), "integration test");
    json_decref(j);

    j = srv_request(cli, "$SRV.STATS.berth-test");
    eps = json_object_get(j, "endpoints");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(eps, 0), "num_requests")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(eps, 0), "num_errors")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(eps, 0), "last_error")),
                     "no site named ghost");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "started")));
    json_decref(j);

    /* Without a name, every service answers: both buses here. */
    {
        natsInbox *inbox = NULL;
        natsSubscription *sub = NULL;
        natsMsg *m = NULL;
        int n = 0;

        natsInbox_Create(&inbox);
        natsConnection_SubscribeSync(&sub, bus_nats(cli), inbox);
        natsConnection_PublishRequestString(bus_nats(cli), "$SRV.PING", inbox, "");
        while (natsSubscription_NextMsg(&m, sub, 500) == NATS_OK) {
            n++;
            natsMsg_Destroy(m);
        }
        ck_assert_int_eq(n, 2);
        natsSubscription_Destroy(sub);
        natsInbox_Destroy(inbox);
    }
    bus_close(cli);
    bus_close(srv);
}
END_TEST

/* ---------------------------------------------------------- JetStream */

static int publish_commands(bus *b, int from, int to)
{
    int i;

    for (i = from; i < to; i++) {
        Berth__V1__SitePower p = BERTH__V1__SITE_POWER__INIT;
        char id[32];
        char site[32];

        snprintf(id, sizeof(id), "cmd-%d", i);
        snprintf(site, sizeof(site), "site-%d", i);
        p.command_id = id;
        p.site_id = site;
        p.action = BERTH__V1__POWER_ACTION__POWER_ACTION_START;
        ck_assert_int_eq(bus_js_publish(b, "site.power.n1", &p.base, id, 2000), 0);
    }
    return 0;
}

/* Consumer mode: consume BERTH_TEST_CONSUMER commands, print their ids. */
struct consumed {
    int want;
    int got;
};

static int on_command(bus_msg *m, void *ud)
{
    struct consumed *c = ud;
    Berth__V1__SitePower *p = (Berth__V1__SitePower *)m->msg;

    /* Past its quota the process behaves like a daemon shutting down: it
     * hands the rest back for redelivery instead of acking them. */
    if (c->got >= c->want)
        return BERTH_EUNAVAIL;
    printf("%s\n", p->command_id);
    fflush(stdout);
    c->got++;
    return 0;
}

static int consumer_main(int want)
{
    bus_opts o = {0};
    bus *b = NULL;
    bus_js_worker *w = NULL;
    struct consumed c = {want, 0};
    int64_t end = clock_mono_ms() + 15000;

    log_init("consumer", LOG_WARN);
    o.url = getenv("BERTH_NATS_URL");
    o.service = "berth-test-consumer";
    if (bus_open(&b, &o) != 0 || bus_wait_connected(b, 5000) != 0)
        return 2;
    if (bus_js_consume(b, "node-commands", "n1", on_command, &c, &w) != 0)
        return 3;
    while (c.got < want && clock_mono_ms() < end)
        clock_sleep_ms(10);
    bus_js_stop(w);
    bus_close(b);
    return c.got == want ? 0 : 4;
}

static int run_consumer(int want, buf *out)
{
    char count[48];
    char url[96];
    char *argv[] = {"/proc/self/exe", NULL};
    char *env[] = {count, url, NULL};
    h_proc p = {0};
    char log[256];
    char *data = NULL;
    size_t len = 0;
    int st;

    snprintf(count, sizeof(count), "BERTH_TEST_CONSUMER=%d", want);
    snprintf(url, sizeof(url), "BERTH_NATS_URL=%s", nats.url);
    snprintf(log, sizeof(log), "%s/consumer.out", nats.dir);
    unlink(log);
    {
        char self[512];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        ck_assert_int_gt(n, 0);
        self[n] = '\0';
        argv[0] = self;
        ck_assert_int_eq(h_proc_start(&p, "consumer", argv, env, log), 0);
    }
    st = h_proc_wait(&p, 20000);
    h_proc_free(&p);
    if (fs_read_file(log, 1 << 20, &data, &len) == 0) {
        buf_append(out, data, len);
        free(data);
    }
    return st;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    const char *p = s;

    while (p != NULL && (p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

START_TEST(jetstream_consumer_survives_restart)
{
    bus *b = open_bus("berth-test");
    jsCtx *js = NULL;
    jsConsumerInfo *ci = NULL;
    jsStreamInfo *si = NULL;
    buf out;
    char id[32];
    int i;

    buf_init(&out, 1 << 20);
    ck_assert_int_eq(bus_js_setup(b), 0);
    /* Setting up twice is harmless. */
    ck_assert_int_eq(bus_js_setup(b), 0);
    ck_assert_int_eq(bus_js_ensure_consumer(b, "node-commands", "n1"), 0);

    /* Ten commands wait for a node that is not running yet; a duplicate
     * publish (same command id) is stored once. */
    publish_commands(b, 0, 10);
    publish_commands(b, 9, 10);
    natsConnection_JetStream(&js, bus_nats(b), NULL);
    ck_assert_int_eq(js_GetStreamInfo(&si, js, "COMMANDS", NULL, NULL), NATS_OK);
    ck_assert_uint_eq(si->State.Msgs, 10);
    jsStreamInfo_Destroy(si);

    /* The first consumer process takes four and exits. */
    ck_assert_int_eq(run_consumer(4, &out), 0);
    ck_assert_int_eq(count_lines(out.data, "cmd-"), 4);

    /* More commands arrive while no consumer runs. */
    publish_commands(b, 10, 15);

    /* The durable consumer is still there, and a new process gets the
     * other eleven, in order, each once. */
    ck_assert_int_eq(js_GetConsumerInfo(&ci, js, "COMMANDS", "node-n1", NULL, NULL), NATS_OK);
    jsConsumerInfo_Destroy(ci);
    ck_assert_int_eq(run_consumer(11, &out), 0);
    for (i = 0; i < 15; i++) {
        snprintf(id, sizeof(id), "cmd-%d\n", i);
        ck_assert_msg(count_lines(out.data, id) == 1, "%s seen %d times", id,
                      count_lines(out.data, id));
    }
    /* In order across both processes (log lines may come between). */
    {
        const char *prev = out.data, *at;
        for (i = 0; i < 15; i++) {
            snprintf(id, sizeof(id), "cmd-%d\n", i);
            at = strstr(out.data, id);
            ck_assert_msg(at != NULL && at >= prev, "%s out of order:\n%s", id,
                          out.data);
            prev = at;
        }
    }

    /* Work-queue retention: acked commands are gone from the stream. */
    ck_assert_int_eq(js_GetStreamInfo(&si, js, "COMMANDS", NULL, NULL), NATS_OK);
    ck_assert_uint_eq(si->State.Msgs, 0);
    jsStreamInfo_Destroy(si);

    /* Commands for another node are not delivered to n1's consumer. */
    {
        Berth__V1__SiteDelete d = BERTH__V1__SITE_DELETE__INIT;
        d.command_id = "del-1";
        d.site_id = "s";
        ck_assert_int_eq(bus_js_publish(b, "site.delete.n2", &d.base, "del-1", 2000), 0);
        ck_assert_int_eq(js_GetConsumerInfo(&ci, js, "COMMANDS", "node-n1", NULL, NULL), NATS_OK);
        ck_assert_uint_eq(ci->NumPending, 0);
        jsConsumerInfo_Destroy(ci);
    }
    /* Only catalog subjects kept by a stream can be published this way. */
    {
        Berth__V1__Echo e = BERTH__V1__ECHO__INIT;
        ck_assert_int_eq(bus_js_publish(b, "sys.echo.x", &e.base, NULL, 1000), BERTH_ESUBJECT);
    }
    jsCtx_Destroy(js);
    buf_free(&out);
    bus_close(b);
}
END_TEST

/* JetStream data and the consumer survive a nats-server restart, and a
 * running worker picks up again by itself. */
static int seen_after_restart;

static int on_count(bus_msg *m, void *ud)
{
    (void)m;
    (void)ud;
    __atomic_add_fetch(&seen_after_restart, 1, __ATOMIC_SEQ_CST);
    return 0;
}

START_TEST(jetstream_worker_survives_server_restart)
{
    bus *b = open_bus("berth-test");
    bus_js_worker *w = NULL;
    int64_t end;

    ck_assert_int_eq(bus_js_setup(b), 0);
    ck_assert_int_eq(bus_js_consume(b, "node-commands", "n1", on_count, NULL, &w), 0);
    publish_commands(b, 100, 103);
    end = clock_mono_ms() + 10000;
    while (__atomic_load_n(&seen_after_restart, __ATOMIC_SEQ_CST) < 3 && clock_mono_ms() < end)
        clock_sleep_ms(20);
    ck_assert_int_eq(seen_after_restart, 3);

    ck_assert_int_eq(h_nats_restart(&nats), 0);
    ck_assert_int_eq(bus_wait_connected(b, 10000), 0);
    publish_commands(b, 103, 106);
    end = clock_mono_ms() + 15000;
    while (__atomic_load_n(&seen_after_restart, __ATOMIC_SEQ_CST) < 6 && clock_mono_ms() < end)
        clock_sleep_ms(20);
    ck_assert_int_eq(seen_after_restart, 6);
    bus_js_stop(w);
    bus_close(b);
}
END_TEST

/* ---------------------------------------------------- real binaries + CLI */

static const char *const services[] = {"berth-panel", "berth-daemon", "berth-edge",
                                       "berth-shell"};

START_TEST(services_start_are_discovered_and_stop)
{
    h_proc procs[4];
    char url[96], dir[4][320], log[4][320], dsn[320], sql[600], addr[64];
    buf out, err;
    int i;
    const char *cli = h_nats_cli();
    h_pg pg;

    ck_assert_msg(cli != NULL, "the nats CLI is not installed (make deps)");
    memset(procs, 0, sizeof(procs));
    /* The panel needs its database before it is ready. */
    memset(&pg, 0, sizeof(pg));
    ck_assert_int_eq(h_pg_start(&pg), 0);
    snprintf(dsn, sizeof(dsn), "BERTH_PG_DSN=%s", pg.dsn);
    snprintf(sql, sizeof(sql), "BERTH_SQL_DIR=%s/../../sql", h_bin("."));
    snprintf(addr, sizeof(addr), "BERTH_PANEL_ADDR=127.0.0.1:%d", h_free_port());
    snprintf(url, sizeof(url), "BERTH_NATS_URL=%s", nats.url);
    for (i = 0; i < 4; i++) {
        char *argv[] = {(char *)h_bin(services[i]), NULL};
        char *env[] = {url, dir[i], "BERTH_STRICT_SUBJECTS=1", dsn, sql, addr, NULL};
        snprintf(dir[i], sizeof(dir[i]), "BERTH_DATA_DIR=%s/%s", nats.dir, services[i]);
        snprintf(log[i], sizeof(log[i]), "%s/%s.log", nats.dir, services[i]);
        ck_assert_int_eq(h_proc_start(&procs[i], services[i], argv, env, log[i]), 0);
    }
    for (i = 0; i < 4; i++)
        ck_assert_msg(h_proc_wait_log(&procs[i], "msg=ready", 10000) == 0, "%s not ready",
                      services[i]);

    buf_init(&out, 1 << 20);
    buf_init(&err, 1 << 20);
    {
        char *argv[] = {(char *)cli, "--server", nats.url, "micro", "ls", NULL};
        ck_assert_int_eq(h_run2(argv, NULL, 0, &out, &err, 20000), 0);
        for (i = 0; i < 4; i++)
            ck_assert_msg(strstr(out.data, services[i]) != NULL, "%s missing from: %s",
                          services[i], out.data);
    }
    buf_reset(&out);
    {
        char *argv[] = {(char *)cli, "--server", nats.url, "micro", "info", "berth-panel", NULL};
        ck_assert_int_eq(h_run2(argv, NULL, 0, &out, &err, 20000), 0);
        ck_assert_ptr_nonnull(strstr(out.data, "sys.echo.berth-panel"));
    }
    buf_reset(&out);
    /* The CLI sends JSON and gets JSON back. */
    {
        char *argv[] = {(char *)cli, "--server", nats.url, "req", "sys.echo.berth-daemon",
                        "{\"text\":\"from the cli\",\"sentNs\":\"-5\"}",
                        "-H", "Content-Type:application/json", "--raw", NULL};
        json_t *j;
        ck_assert_int_eq(h_run2(argv, NULL, 0, &out, &err, 20000), 0);
        j = json_loads(out.data, JSON_DISABLE_EOF_CHECK, NULL);
        ck_assert_msg(j != NULL, "not JSON: %s", out.data);
        ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "from the cli");
        ck_assert_str_eq(json_string_value(json_object_get(j, "sentNs")), "-5");
        json_decref(j);
    }
    buf_reset(&out);
    /* A bad JSON request through the CLI gets a clear error, not silence. */
    {
        char *argv[] = {(char *)cli, "--server", nats.url, "req", "sys.echo.berth-edge",
                        "{\"bogus\":true}", "-H", "Content-Type:application/json", "--raw",
                        NULL};
        h_run2(argv, NULL, 0, &out, &err, 20000);
        ck_assert_msg(strstr(out.data, "bogus") || strstr(err.data ? err.data : "", "bogus"),
                      "no error naming the field: %s / %s", out.data, err.data);
    }

    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(h_proc_stop(&procs[i], SIGTERM, 10000), 0);
        ck_assert_int_eq(h_wait_log(log[i], "msg=stopped", 1000), 0);
        h_proc_free(&procs[i]);
    }
    h_pg_destroy(&pg);
    buf_free(&out);
    buf_free(&err);
}
END_TEST

START_TEST(cli_sub_translate_decodes)
{
    const char *cli = h_nats_cli();
    char translate[512], log[320];
    h_proc sub = {0};
    bus *b = open_bus("berth-test");
    Berth__V1__ContainerStats st = BERTH__V1__CONTAINER_STATS__INIT;
    char *data = NULL;
    size_t len = 0;
    int i;

    ck_assert_ptr_nonnull(cli);
    snprintf(translate, sizeof(translate), "%s decode {{Subject}}", h_bin("berth-bus"));
    snprintf(log, sizeof(log), "%s/sub.out", nats.dir);
    {
        char *argv[] = {(char *)cli, "--server", nats.url, "sub", "container.stats.>",
                        "--translate", translate, "--count", "1", NULL};
        ck_assert_int_eq(h_proc_start(&sub, "nats-sub", argv, NULL, log), 0);
    }
    ck_assert_int_eq(h_proc_wait_log(&sub, "Subscribing", 10000), 0);
    st.site_id = "blog";
    st.node_id = "n1";
    st.memory_bytes = 123456789;
    st.cpu_percent = 12.5;
    /* Publish until the subscriber has taken one (it quits after one). */
    for (i = 0; i < 50 && h_proc_alive(&sub); i++) {
        ck_assert_int_eq(bus_publish(b, "container.stats.n1.blog", &st.base), 0);
        natsConnection_Flush(bus_nats(b));
        clock_sleep_ms(100);
    }
    ck_assert_int_eq(h_proc_wait(&sub, 5000), 0);
    ck_assert_int_eq(fs_read_file(log, 1 << 20, &data, &len), 0);
    ck_assert_msg(strstr(data, "\"siteId\":\"blog\"") != NULL, "not decoded: %s", data);
    ck_assert_msg(strstr(data, "\"memoryBytes\":\"123456789\"") != NULL, "not decoded: %s",
                  data);
    free(data);
    h_proc_free(&sub);
    bus_close(b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/bus");
    TCase *tc = tcase_create("bus");

    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, nats_up, nats_down);
    tcase_add_test(tc, request_reply_protobuf);
    tcase_add_test(tc, request_reply_json_and_bad_input);
    tcase_add_test(tc, discovery);
    tcase_add_test(tc, jetstream_consumer_survives_restart);
    tcase_add_test(tc, jetstream_worker_survives_server_restart);
    tcase_add_test(tc, services_start_are_discovered_and_stop);
    tcase_add_test(tc, cli_sub_translate_decodes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *consumer = getenv("BERTH_TEST_CONSUMER");
    SRunner *sr;
    int failed;

    if (consumer != NULL)
        return consumer_main(atoi(consumer));
    setenv("BERTH_STRICT_SUBJECTS", "0", 1);
    log_init("test", LOG_WARN);
    sr = srunner_create(make_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
