/* panel_sites.c - berth-panel's nodes, sites and commands against real
 * PostgreSQL and nats-server, with a fake daemon written here on the bus
 * library: registration and heartbeats, liveness, durable commands read
 * from JetStream after the fact, status and results flowing back,
 * placement, validation, per-site grants, and the same operations on the
 * bus.
 *
 * One panel serves the whole suite (CK_NOFORK); tests build on each
 * other's nodes and sites in the order they are added. The panel runs with
 * a 300 ms heartbeat interval, so a silent node is offline within a
 * second.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "bus/codec.h"
#include "bus/js.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "node.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"

#define ADMIN_PASSWORD "correct horse battery staple"
#define HEARTBEAT_MS   300
#define GIB            (1024ull * 1024 * 1024)
#define MIB            (1024ull * 1024)

static h_panel panel;
static char admin_access[H_ACCESS_MAX];

/* ------------------------------------------------------------ HTTP */

/* Expects status and, for an error, a JSON error body; prints the body
 * otherwise. */
static void expect(h_resp *r, long status, const char *method,
                   const char *path, const char *bearer, const char *body)
{
    h_call(&panel, r, method, path, bearer, body);
    ck_assert_msg(r->status == status, "%s %s %s: %ld %s", method, path,
                  body ? body : "", r->status,
                  r->body.data ? r->body.data : "");
    if (status >= 400)
        ck_assert_msg(h_err_code(r)[0] != '\0', "no error code in %s",
                      r->body.data);
}

/* ------------------------------------------------------------ fake daemon */

static bus *daemon_bus;
static pthread_t beat_thread;
static atomic_int beat_stop, beat_n1, beat_n2;

static void *beat_main(void *arg)
{
    uint64_t seq = 0;

    (void)arg;
    while (!atomic_load(&beat_stop)) {
        Berth__V1__NodeHeartbeat hb = BERTH__V1__NODE_HEARTBEAT__INIT;

        hb.sent_ms = clock_wall_ms();
        hb.seq = ++seq;
        if (atomic_load(&beat_n1)) {
            hb.node_id = "n1";
            bus_publish(daemon_bus, "node.heartbeat.n1", &hb.base);
        }
        if (atomic_load(&beat_n2)) {
            hb.node_id = "n2";
            bus_publish(daemon_bus, "node.heartbeat.n2", &hb.base);
        }
        clock_sleep_ms(HEARTBEAT_MS / 3);
    }
    return NULL;
}

/* Messages received by the fake daemon: commands (JetStream) and
 * node.online events (core NATS), each kept as an owned copy. */
#define MAILBOX_MAX 256

struct mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    char subject[MAILBOX_MAX][128];
    ProtobufCMessage *msg[MAILBOX_MAX];
};

static struct mailbox commands = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {{0}}, {0}};
static struct mailbox online_events = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {{0}}, {0}};
static bus_js_worker *command_worker;

static int on_mail(bus_msg *m, void *ud)
{
    struct mailbox *mb = ud;
    ProtobufCMessage *copy;
    buf b;

    buf_init(&b, BUS_PAYLOAD_MAX);
    if (codec_pack(m->msg, &b) != 0) {
        buf_free(&b);
        return BERTH_ENOMEM;
    }
    copy = codec_unpack(m->msg->descriptor, b.data ? b.data : "", b.len);
    buf_free(&b);
    pthread_mutex_lock(&mb->mu);
    if (copy != NULL && mb->n < MAILBOX_MAX) {
        snprintf(mb->subject[mb->n], sizeof(mb->subject[0]), "%s", m->subject);
        mb->msg[mb->n++] = copy;
        copy = NULL;
    }
    pthread_cond_broadcast(&mb->cv);
    pthread_mutex_unlock(&mb->mu);
    if (copy != NULL)
        protobuf_c_message_free_unpacked(copy, NULL);
    return 0;
}

/* The string field `name` of m ("" when absent). */
static const char *str_field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);

    if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING)
        return "";
    return *(const char *const *)((const char *)m + f->offset);
}

/* Waits up to timeout_ms for a message on subject whose `key` field is
 * value (any message when key is NULL); removes it and returns it (caller
 * frees), or NULL. */
static ProtobufCMessage *mail_wait(struct mailbox *mb, const char *subject,
                                   const char *key, const char *value,
                                   int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    ProtobufCMessage *found = NULL;

    pthread_mutex_lock(&mb->mu);
    for (;;) {
        int i;

        for (i = 0; i < mb->n && found == NULL; i++) {
            if (strcmp(mb->subject[i], subject) != 0 ||
                (key != NULL && strcmp(str_field(mb->msg[i], key), value) != 0))
                continue;
            found = mb->msg[i];
            memmove(&mb->msg[i], &mb->msg[i + 1],
                    (size_t)(mb->n - i - 1) * sizeof(mb->msg[0]));
            memmove(&mb->subject[i], &mb->subject[i + 1],
                    (size_t)(mb->n - i - 1) * sizeof(mb->subject[0]));
            mb->n--;
        }
        if (found != NULL || clock_mono_ms() >= end)
            break;
        {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&mb->cv, &mb->mu, &ts);
        }
    }
    pthread_mutex_unlock(&mb->mu);
    return found;
}

static void mail_clear(struct mailbox *mb)
{
    int i;

    pthread_mutex_lock(&mb->mu);
    for (i = 0; i < mb->n; i++)
        protobuf_c_message_free_unpacked(mb->msg[i], NULL);
    mb->n = 0;
    pthread_mutex_unlock(&mb->mu);
}

/* Registers node id with memory bytes; checks the reply. */
static void register_node(const char *id, uint64_t memory)
{
    Berth__V1__NodeSpecs specs = BERTH__V1__NODE_SPECS__INIT;
    Berth__V1__NodeRegister r = BERTH__V1__NODE_REGISTER__INIT;
    Berth__V1__NodeRegistered *reply = NULL;
    char subject[64], host[64], url[96], name[64];
    bus_error err;

    snprintf(subject, sizeof(subject), "node.register.%s", id);
    snprintf(host, sizeof(host), "host-%s", id);
    snprintf(url, sizeof(url), "http://%s.example.net:8443", id);
    snprintf(name, sizeof(name), "node %s", id);
    specs.hostname = host;
    specs.cpus = 4;
    specs.memory_bytes = memory;
    specs.disk_bytes = 100 * GIB;
    specs.docker_version = "24.0.7";
    specs.kernel = "6.1.0";
    specs.arch = "x86_64";
    r.node_id = (char *)id;
    r.name = name;
    r.specs = &specs;
    r.public_url = url;
    r.version = "0.1.0";
    r.started_ms = clock_wall_ms();
    ck_assert_int_eq(bus_request(daemon_bus, subject, &r.base, 5000,
                                 (ProtobufCMessage **)&reply, &err),
                     0);
    ck_assert_str_eq(reply->node_id, id);
    ck_assert_int_eq(reply->heartbeat_interval_ms, HEARTBEAT_MS);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
}

/* The node's entry in GET /nodes (a new reference), or NULL. */
static json_t *node_entry(const char *id)
{
    h_resp r;
    json_t *found = NULL, *n;
    size_t i;

    expect(&r, 200, "GET", "/nodes", admin_access, NULL);
    json_array_foreach(json_object_get(r.json, "nodes"), i, n)
    {
        if (strcmp(h_jstr(n, "id"), id) == 0)
            found = json_incref(n);
    }
    h_resp_free(&r);
    return found;
}

static int node_online(const char *id)
{
    json_t *n = node_entry(id);
    int online = n != NULL && json_is_true(json_object_get(n, "online"));

    json_decref(n);
    return online;
}

/* Waits until node id is (or is not) online; returns 1 when it happened. */
static int wait_online(const char *id, int want, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    while (clock_mono_ms() < end) {
        if (node_online(id) == want)
            return 1;
        clock_sleep_ms(50);
    }
    return 0;
}

/* ------------------------------------------------------------ suite */

static void suite_up(void)
{
    char hb[64];
    char *env[] = {hb, NULL};

    snprintf(hb, sizeof(hb), "BERTH_NODE_HEARTBEAT_MS=%d", HEARTBEAT_MS);
    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, env), 0);
    /* Commands can be queued once the streams exist. */
    ck_assert_int_eq(h_wait_log(panel.log, "jetstream streams ready", 10000),
                     0);
    daemon_bus = h_bus_open(panel.nats.url, "berth-fake-daemon");
    ck_assert_int_eq(bus_subscribe(daemon_bus, "node.online.*", NULL, on_mail,
                                   &online_events),
                     0);
    ck_assert_int_eq(pthread_create(&beat_thread, NULL, beat_main, NULL), 0);
    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, admin_access,
                             NULL),
                     201);
}

static void suite_down(void)
{
    atomic_store(&beat_stop, 1);
    pthread_join(beat_thread, NULL);
    bus_js_stop(command_worker);
    bus_close(daemon_bus);
    mail_clear(&commands);
    mail_clear(&online_events);
    ck_assert_int_eq(h_panel_stop(&panel), 0);
}

/* ------------------------------------------------------------ tests */

START_TEST(nodes_register_and_list)
{
    Berth__V1__NodeRegister bad = BERTH__V1__NODE_REGISTER__INIT;
    ProtobufCMessage *reply = NULL;
    h_resp r;
    bus_error err;
    json_t *n;

    register_node("n1", 4 * GIB);
    atomic_store(&beat_n1, 1);
    n = node_entry("n1");
    ck_assert_ptr_nonnull(n);
    ck_assert(json_is_true(json_object_get(n, "online")));
    ck_assert_str_eq(h_jstr(n, "name"), "node n1");
    ck_assert_str_eq(h_jstr(n, "hostname"), "host-n1");
    ck_assert_str_eq(h_jstr(n, "publicUrl"), "http://n1.example.net:8443");
    ck_assert_str_ne(h_jstr(n, "lastSeen"), "");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(n, "specs"), "memoryBytes")),
                     (json_int_t)(4 * GIB));
    ck_assert_int_eq(json_integer_value(
                         json_object_get(json_object_get(n, "specs"), "cpus")),
                     4);
    ck_assert_str_eq(h_jstr(json_object_get(n, "specs"), "dockerVersion"),
                     "24.0.7");
    json_decref(n);
    /* A node announcing itself online is an event. */
    reply = mail_wait(&online_events, "node.online.n1", NULL, NULL, 3000);
    ck_assert_ptr_nonnull(reply);
    ck_assert(((Berth__V1__NodeOnline *)reply)->online);
    protobuf_c_message_free_unpacked(reply, NULL);
    reply = NULL;

    expect(&r, 200, "GET", "/nodes/n1", admin_access, NULL);
    ck_assert_str_eq(h_jstr(r.json, "id"), "n1");
    h_resp_free(&r);
    expect(&r, 404, "GET", "/nodes/nope", admin_access, NULL);
    h_resp_free(&r);
    expect(&r, 401, "GET", "/nodes", NULL, NULL);
    h_resp_free(&r);

    /* The body cannot claim another node than the subject. */
    bad.node_id = "n9";
    ck_assert_int_eq(bus_request(daemon_bus, "node.register.n1", &bad.base,
                                 3000, &reply, &err),
                     BERTH_EINVAL);
    ck_assert_ptr_null(reply);
}
END_TEST

static char blog_id[40], blog_cmd[40];

START_TEST(create_site_and_durable_command)
{
    Berth__V1__SiteCreate *sc;
    h_resp r;
    char path[128];
    json_t *spec;

    expect(
        &r, 202, "POST", "/sites", admin_access,
        "{\"name\":\"blog\",\"image\":\"nginx:1.25\","
        "\"command\":[\"nginx\",\"-g\",\"daemon off;\"],\"env\":{\"A\":\"1\"},"
        "\"ports\":[{\"containerPort\":80,\"hostPort\":8080}],"
        "\"memoryBytes\":1073741824,\"cpuMillis\":500,\"pids\":256,"
        "\"domains\":[\"Blog.Example.com.\"],\"restart\":\"always\"}");
    snprintf(blog_id, sizeof(blog_id), "%s", h_jstr(r.json, "id"));
    snprintf(blog_cmd, sizeof(blog_cmd), "%s", h_jstr(r.json, "commandId"));
    ck_assert(id_uuid_valid(blog_id));
    ck_assert(id_uuid_valid(blog_cmd));
    ck_assert_str_eq(h_jstr(r.json, "nodeId"), "n1");
    h_resp_free(&r);

    /* The command row: JetStream has it, so it is sent. */
    snprintf(path, sizeof(path), "/commands/%s", blog_cmd);
    expect(&r, 200, "GET", path, admin_access, NULL);
    ck_assert_str_eq(h_jstr(r.json, "state"), "sent");
    ck_assert_str_eq(h_jstr(r.json, "kind"), "site.create");
    ck_assert_str_eq(h_jstr(r.json, "siteId"), blog_id);
    ck_assert_str_eq(h_jstr(r.json, "nodeId"), "n1");
    ck_assert(json_is_null(json_object_get(r.json, "error")));
    h_resp_free(&r);

    /* The daemon starts consuming only now and still gets the command. */
    ck_assert_int_eq(bus_js_consume(daemon_bus, "node-commands", "n1", on_mail,
                                    &commands, &command_worker),
                     0);
    sc = (Berth__V1__SiteCreate *)mail_wait(&commands, "site.create.n1",
                                            "command_id", blog_cmd, 10000);
    ck_assert_ptr_nonnull(sc);
    ck_assert(sc->start);
    ck_assert_str_eq(sc->spec->id, blog_id);
    ck_assert_str_eq(sc->spec->name, "blog");
    ck_assert_str_eq(sc->spec->node_id, "n1");
    ck_assert_str_eq(sc->spec->image, "nginx:1.25");
    ck_assert(sc->spec->should_run);
    ck_assert_uint_eq(sc->spec->n_command, 3);
    ck_assert_str_eq(sc->spec->command[2], "daemon off;");
    ck_assert_uint_eq(sc->spec->n_env, 1);
    ck_assert_str_eq(sc->spec->env[0]->key, "A");
    ck_assert_str_eq(sc->spec->env[0]->value, "1");
    ck_assert_uint_eq(sc->spec->n_ports, 1);
    ck_assert_uint_eq(sc->spec->ports[0]->host_port, 8080);
    ck_assert_str_eq(sc->spec->ports[0]->protocol, "tcp");
    ck_assert_uint_eq(sc->spec->limits->memory_bytes, GIB);
    ck_assert_uint_eq(sc->spec->limits->cpu_millis, 500);
    ck_assert_uint_eq(sc->spec->limits->pids, 256);
    ck_assert_uint_eq(sc->spec->n_domains, 1);
    ck_assert_str_eq(sc->spec->domains[0], "blog.example.com");
    ck_assert_uint_eq(sc->spec->http_port, 80);
    ck_assert_int_eq(sc->spec->restart->mode,
                     BERTH__V1__RESTART_POLICY__MODE__MODE_ALWAYS);
    protobuf_c_message_free_unpacked(&sc->base, NULL);

    snprintf(path, sizeof(path), "/sites/%s", blog_id);
    expect(&r, 200, "GET", path, admin_access, NULL);
    ck_assert_str_eq(h_jstr(r.json, "name"), "blog");
    ck_assert_str_eq(h_jstr(r.json, "desiredState"), "running");
    ck_assert_str_eq(h_jstr(json_object_get(r.json, "status"), "state"),
                     "unknown");
    ck_assert(json_is_true(
        json_object_get(json_object_get(r.json, "node"), "online")));
    ck_assert_str_eq(h_jstr(json_object_get(r.json, "node"), "name"),
                     "node n1");
    ck_assert_str_eq(json_string_value(
                         json_array_get(json_object_get(r.json, "domains"), 0)),
                     "blog.example.com");
    spec = json_object_get(r.json, "spec");
    ck_assert_str_eq(h_jstr(spec, "image"), "nginx:1.25");
    ck_assert_str_eq(h_jstr(spec, "restart"), "always");
    ck_assert_int_eq(json_integer_value(json_object_get(spec, "memoryBytes")),
                     (json_int_t)GIB);
    ck_assert_str_eq(h_jstr(json_object_get(spec, "env"), "A"), "1");
    h_resp_free(&r);
}
END_TEST

START_TEST(status_and_results_flow_back)
{
    Berth__V1__CommandResult cr = BERTH__V1__COMMAND_RESULT__INIT;
    Berth__V1__SiteStatus st = BERTH__V1__SITE_STATUS__INIT;
    char ghost[ID_UUID_LEN + 1], subject[128], path[128];
    int64_t end;
    h_resp r;
    int done = 0, running = 0;

    /* Reports about unknown commands and sites are acknowledged and
     * skipped; they must not hold up the real ones behind them. */
    ck_assert_int_eq(id_uuid(ghost), 0);
    cr.command_id = ghost;
    cr.node_id = "n1";
    cr.ok = 1;
    ck_assert_int_eq(
        bus_js_publish(daemon_bus, "command.result.n1", &cr.base, NULL, 3000),
        0);
    snprintf(subject, sizeof(subject), "site.status.n1.%s", ghost);
    st.site_id = ghost;
    st.node_id = "n1";
    st.state = BERTH__V1__SITE_STATE__SITE_STATE_RUNNING;
    ck_assert_int_eq(bus_js_publish(daemon_bus, subject, &st.base, NULL, 3000),
                     0);
    /* A status about blog from the wrong node is ignored too. */
    snprintf(subject, sizeof(subject), "site.status.n2.%s", blog_id);
    st.site_id = blog_id;
    st.state = BERTH__V1__SITE_STATE__SITE_STATE_CRASHED;
    ck_assert_int_eq(bus_js_publish(daemon_bus, subject, &st.base, NULL, 3000),
                     0);

    cr.command_id = blog_cmd;
    cr.site_id = blog_id;
    cr.finished_ms = clock_wall_ms();
    ck_assert_int_eq(
        bus_js_publish(daemon_bus, "command.result.n1", &cr.base, NULL, 3000),
        0);
    snprintf(subject, sizeof(subject), "site.status.n1.%s", blog_id);
    st.state = BERTH__V1__SITE_STATE__SITE_STATE_RUNNING;
    st.reason = "started";
    st.at_ms = clock_wall_ms();
    ck_assert_int_eq(bus_js_publish(daemon_bus, subject, &st.base, NULL, 3000),
                     0);

    end = clock_mono_ms() + 3000;
    while (clock_mono_ms() < end && !(done && running)) {
        snprintf(path, sizeof(path), "/commands/%s", blog_cmd);
        expect(&r, 200, "GET", path, admin_access, NULL);
        done = strcmp(h_jstr(r.json, "state"), "done") == 0;
        h_resp_free(&r);
        snprintf(path, sizeof(path), "/sites/%s", blog_id);
        expect(&r, 200, "GET", path, admin_access, NULL);
        running = strcmp(h_jstr(json_object_get(r.json, "status"), "state"),
                         "running") == 0;
        if (running) {
            ck_assert_str_eq(
                h_jstr(json_object_get(r.json, "status"), "reason"), "started");
            ck_assert_str_ne(h_jstr(json_object_get(r.json, "status"), "at"),
                             "");
        }
        h_resp_free(&r);
        if (!(done && running))
            clock_sleep_ms(50);
    }
    ck_assert_msg(done, "command %s not done", blog_cmd);
    ck_assert_msg(running, "site %s not running", blog_id);
}
END_TEST

START_TEST(validation)
{
    static const struct {
        long status;
        const char *body;
        const char *says;
    } cases[] = {
        {400, "{\"name\":\"Bad_Name\",\"image\":\"nginx\"}", "name"},
        {400, "{\"name\":\"-x\",\"image\":\"nginx\"}", "name"},
        {400, "{\"name\":\"x\"}", "image"},
        {400, "{\"name\":\"x\",\"image\":\"nginx:\"}", "image"},
        {400, "{\"name\":\"x\",\"image\":\"a//b\"}", "image"},
        {400, "{\"name\":\"x\",\"image\":\"Nginx\"}", "image"},
        {400, "{\"name\":\"x\",\"image\":\"nginx@sha256:abc\"}", "image"},
        {400,
         "{\"name\":\"x\",\"image\":\"nginx\",\"domains\":[\"*.example.com\"]}",
         "domains"},
        {400,
         "{\"name\":\"x\",\"image\":\"nginx\",\"domains\":[\"localhost\"]}",
         "domains"},
        {400,
         "{\"name\":\"x\",\"image\":\"nginx\",\"domains\":[\"a_b.example.com\"]"
         "}",
         "domains"},
        {400,
         "{\"name\":\"x\",\"image\":\"nginx\",\"domains\":[\"a.com\",\"A.com\"]"
         "}",
         "twice"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"memoryBytes\":1}",
         "memoryBytes"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"memoryBytes\":-5}",
         "memoryBytes"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"cpuMillis\":5}",
         "cpuMillis"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"pids\":99999999}", "pids"},
        {400,
         "{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":"
         "70000}]}",
         "containerPort"},
        {400,
         "{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":80,"
         "\"protocol\":\"sctp\"}]}",
         "protocol"},
        {400,
         "{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":80,"
         "\"bogus\":1}]}",
         "bogus"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"env\":{\"A\":1}}", "env"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"env\":{\"1A\":\"x\"}}",
         "env"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"command\":\"ls\"}",
         "command"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"restart\":\"sometimes\"}",
         "restart"},
        {400, "{\"name\":\"x\",\"image\":\"nginx\",\"bogus\":1}", "bogus"},
        {404, "{\"name\":\"x\",\"image\":\"nginx\",\"node\":\"nope\"}", "nope"},
        {409, "{\"name\":\"blog\",\"image\":\"nginx\"}", "blog"},
        {409,
         "{\"name\":\"x\",\"image\":\"nginx\",\"domains\":[\"new.example.com\","
         "\"BLOG.example.com\"]}",
         "blog.example.com"},
    };
    h_resp r;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect(&r, cases[i].status, "POST", "/sites", admin_access,
               cases[i].body);
        ck_assert_msg(strstr(r.body.data, cases[i].says) != NULL, "%s: %s",
                      cases[i].body, r.body.data);
        h_resp_free(&r);
    }
    /* Nothing of the refused sites was kept: "x" and its domain are free. */
    expect(&r, 200, "GET", "/sites", admin_access, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "sites")), 1);
    h_resp_free(&r);
    /* Well-formed references of every shape pass. */
    expect(&r, 202, "POST", "/sites", admin_access,
           "{\"name\":\"x\",\"image\":\"registry.example.com:5000/team/"
           "app_1:v1.2-rc"
           "@sha256:"
           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
           "\"domains\":[\"new.example.com\"]}");
    h_resp_free(&r);
    {
        char path[128];
        snprintf(path, sizeof(path), "/sites/%s", blog_id);
        expect(&r, 400, "PATCH", path, admin_access, "{\"name\":\"renamed\"}");
        h_resp_free(&r);
        expect(&r, 400, "PATCH", path, admin_access, "{}");
        h_resp_free(&r);
        expect(&r, 400, "GET", "/sites/not-a-uuid", admin_access, NULL);
        h_resp_free(&r);
    }
}
END_TEST

static char p1_id[40], p2_id[40], p3_id[40], p1_cmd[40];

START_TEST(placement)
{
    h_resp r;

    register_node("n2", 2 * GIB);
    atomic_store(&beat_n2, 1);
    ck_assert(wait_online("n2", 1, 2000));
    /* n1: 4 GiB - blog 1 GiB - x 256 MiB; n2: 2 GiB. */
    expect(&r, 202, "POST", "/sites", admin_access,
           "{\"name\":\"p1\",\"image\":\"nginx\",\"memoryBytes\":536870912,"
           "\"domains\":[\"p1.example.com\"]}");
    ck_assert_str_eq(h_jstr(r.json, "nodeId"), "n1");
    snprintf(p1_id, sizeof(p1_id), "%s", h_jstr(r.json, "id"));
    snprintf(p1_cmd, sizeof(p1_cmd), "%s", h_jstr(r.json, "commandId"));
    h_resp_free(&r);
    /* Pinned to n1: n1 is left with less than n2. */
    expect(&r, 202, "POST", "/sites", admin_access,
           "{\"name\":\"p2\",\"image\":\"nginx\",\"memoryBytes\":1073741824,"
           "\"node\":\"n1\"}");
    ck_assert_str_eq(h_jstr(r.json, "nodeId"), "n1");
    snprintf(p2_id, sizeof(p2_id), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    expect(&r, 202, "POST", "/sites", admin_access,
           "{\"name\":\"p3\",\"image\":\"nginx\"}");
    ck_assert_str_eq(h_jstr(r.json, "nodeId"), "n2");
    snprintf(p3_id, sizeof(p3_id), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}
END_TEST

static char sam_id[40], sam_access[H_ACCESS_MAX];

START_TEST(per_site_grants)
{
    h_resp r;
    char path[160], body[256];
    json_t *sites;

    expect(&r, 200, "POST", "/role", admin_access,
           "{\"name\":\"member\",\"permissions\":[\"user.read\"]}");
    h_resp_free(&r);
    expect(&r, 201, "POST", "/user/create", admin_access,
           "{\"name\":\"sam\",\"password\":\"sam-secret-1\",\"email\":\"sam@"
           "example.org\","
           "\"role_name\":\"member\"}");
    snprintf(sam_id, sizeof(sam_id), "%s", h_jstr(r.json, "uuid"));
    h_resp_free(&r);
    ck_assert_int_eq(h_login(&panel, "sam", "sam-secret-1", sam_access, NULL),
                     201);

    expect(&r, 200, "GET", "/sites", sam_access, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "sites")), 0);
    h_resp_free(&r);
    expect(&r, 403, "POST", "/sites", sam_access,
           "{\"name\":\"mine\",\"image\":\"nginx\"}");
    h_resp_free(&r);

    snprintf(path, sizeof(path), "/sites/%s/grants/%s", blog_id, sam_id);
    expect(&r, 400, "PUT", path, admin_access,
           "{\"permissions\":[\"site.create\"]}");
    h_resp_free(&r);
    expect(&r, 400, "PUT", path, admin_access,
           "{\"permissions\":[\"user.read\"]}");
    h_resp_free(&r);
    expect(&r, 200, "PUT", path, admin_access,
           "{\"permissions\":[\"site.read\"]}");
    h_resp_free(&r);

    expect(&r, 200, "GET", "/sites", sam_access, NULL);
    sites = json_object_get(r.json, "sites");
    ck_assert_uint_eq(json_array_size(sites), 1);
    ck_assert_str_eq(h_jstr(json_array_get(sites, 0), "id"), blog_id);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/sites/%s", blog_id);
    expect(&r, 200, "GET", path, sam_access, NULL);
    h_resp_free(&r);
    expect(&r, 403, "PATCH", path, sam_access, "{\"image\":\"evil\"}");
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/sites/%s/power", blog_id);
    expect(&r, 403, "POST", path, sam_access, "{\"action\":\"stop\"}");
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/sites/%s", p1_id);
    expect(&r, 403, "GET", path, sam_access, NULL);
    h_resp_free(&r);
    expect(&r, 403, "DELETE", path, sam_access, NULL);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/commands/%s", blog_cmd);
    expect(&r, 200, "GET", path, sam_access, NULL);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/commands/%s", p1_cmd);
    expect(&r, 403, "GET", path, sam_access, NULL);
    h_resp_free(&r);
    /* sam cannot hand out anything: he lacks site.update. */
    snprintf(path, sizeof(path), "/sites/%s/grants/%s", blog_id, sam_id);
    expect(&r, 403, "PUT", path, sam_access,
           "{\"permissions\":[\"site.read\"]}");
    h_resp_free(&r);

    snprintf(path, sizeof(path), "/sites/%s/grants", blog_id);
    expect(&r, 200, "GET", path, admin_access, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "grants")), 1);
    ck_assert_str_eq(
        h_jstr(json_array_get(json_object_get(r.json, "grants"), 0), "userId"),
        sam_id);
    ck_assert_str_eq(
        h_jstr(json_array_get(json_object_get(r.json, "grants"), 0), "name"),
        "sam");
    h_resp_free(&r);

    /* An empty list removes the grant. */
    snprintf(path, sizeof(path), "/sites/%s/grants/%s", p1_id, sam_id);
    snprintf(body, sizeof(body),
             "{\"permissions\":[\"site.read\",\"site.power\"]}");
    expect(&r, 200, "PUT", path, admin_access, body);
    h_resp_free(&r);
    expect(&r, 200, "PUT", path, admin_access, "{\"permissions\":[]}");
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/sites/%s", p1_id);
    expect(&r, 403, "GET", path, sam_access, NULL);
    h_resp_free(&r);
}
END_TEST

START_TEST(power_update_delete_commands)
{
    Berth__V1__SitePower *sp;
    Berth__V1__SiteCreate *sc;
    Berth__V1__SiteDelete *sd;
    h_resp r;
    char path[128], cmd[40];

    snprintf(path, sizeof(path), "/sites/%s/power", blog_id);
    expect(&r, 400, "POST", path, admin_access, "{\"action\":\"fly\"}");
    h_resp_free(&r);
    expect(&r, 202, "POST", path, admin_access, "{\"action\":\"stop\"}");
    snprintf(cmd, sizeof(cmd), "%s", h_jstr(r.json, "commandId"));
    h_resp_free(&r);
    sp = (Berth__V1__SitePower *)mail_wait(&commands, "site.power.n1",
                                           "command_id", cmd, 5000);
    ck_assert_ptr_nonnull(sp);
    ck_assert_str_eq(sp->site_id, blog_id);
    ck_assert_int_eq(sp->action, BERTH__V1__POWER_ACTION__POWER_ACTION_STOP);
    protobuf_c_message_free_unpacked(&sp->base, NULL);

    /* PATCH merges: env and command stay, the rest is replaced. */
    snprintf(path, sizeof(path), "/sites/%s", blog_id);
    expect(&r, 202, "PATCH", path, admin_access,
           "{\"image\":\"nginx:1.26\",\"memoryBytes\":536870912,"
           "\"domains\":[\"blog.example.com\",\"www.blog.example.com\"]}");
    snprintf(cmd, sizeof(cmd), "%s", h_jstr(r.json, "commandId"));
    h_resp_free(&r);
    sc = (Berth__V1__SiteCreate *)mail_wait(&commands, "site.create.n1",
                                            "command_id", cmd, 5000);
    ck_assert_ptr_nonnull(sc);
    ck_assert(!sc->start); /* stopped: updated, not started */
    ck_assert(!sc->spec->should_run);
    ck_assert_str_eq(sc->spec->id, blog_id);
    ck_assert_str_eq(sc->spec->name, "blog");
    ck_assert_str_eq(sc->spec->image, "nginx:1.26");
    ck_assert_uint_eq(sc->spec->limits->memory_bytes, 512 * MIB);
    ck_assert_uint_eq(sc->spec->limits->cpu_millis, 500);
    ck_assert_uint_eq(sc->spec->n_domains, 2);
    ck_assert_uint_eq(sc->spec->n_env, 1);
    ck_assert_uint_eq(sc->spec->n_command, 3);
    protobuf_c_message_free_unpacked(&sc->base, NULL);
    expect(&r, 200, "GET", path, admin_access, NULL);
    ck_assert_str_eq(h_jstr(r.json, "desiredState"), "stopped");
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "domains")), 2);
    h_resp_free(&r);
    /* A domain of another site: 409, and nothing changes. */
    expect(&r, 409, "PATCH", path, admin_access,
           "{\"domains\":[\"p1.example.com\"]}");
    h_resp_free(&r);
    expect(&r, 200, "GET", path, admin_access, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "domains")), 2);
    h_resp_free(&r);

    expect(&r, 400, "DELETE",
           "/sites/00000000-0000-4000-8000-000000000000?purge=maybe",
           admin_access, NULL);
    h_resp_free(&r);
    expect(&r, 404, "DELETE", "/sites/00000000-0000-4000-8000-000000000000",
           admin_access, NULL);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/sites/%s?purge=true", blog_id);
    expect(&r, 202, "DELETE", path, admin_access, NULL);
    snprintf(cmd, sizeof(cmd), "%s", h_jstr(r.json, "commandId"));
    h_resp_free(&r);
    sd = (Berth__V1__SiteDelete *)mail_wait(&commands, "site.delete.n1",
                                            "command_id", cmd, 5000);
    ck_assert_ptr_nonnull(sd);
    ck_assert_str_eq(sd->site_id, blog_id);
    ck_assert(sd->purge_data);
    protobuf_c_message_free_unpacked(&sd->base, NULL);
    snprintf(path, sizeof(path), "/sites/%s", blog_id);
    expect(&r, 404, "GET", path, admin_access, NULL);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/commands/%s", cmd);
    expect(&r, 200, "GET", path, admin_access, NULL);
    ck_assert_str_eq(h_jstr(r.json, "kind"), "site.delete");
    ck_assert(json_is_null(json_object_get(r.json, "siteId")));
    h_resp_free(&r);
    /* Its domains are free again. */
    expect(&r, 202, "POST", "/sites", admin_access,
           "{\"name\":\"blog2\",\"image\":\"nginx\",\"node\":\"n1\","
           "\"domains\":[\"blog.example.com\"]}");
    h_resp_free(&r);
}
END_TEST

START_TEST(offline_nodes_never_slow_the_api)
{
    ProtobufCMessage *ev;
    int64_t end, t0, worst = 0;
    h_resp r;
    int n1_off = 0, n2_off = 0, calls = 0;

    mail_clear(&online_events);
    atomic_store(&beat_n1, 0);
    atomic_store(&beat_n2, 0);
    end = clock_mono_ms() + 5000;
    while (clock_mono_ms() < end && !(n1_off && n2_off)) {
        t0 = clock_mono_ms();
        expect(&r, 200, "GET", "/sites", admin_access, NULL);
        if (clock_mono_ms() - t0 > worst)
            worst = clock_mono_ms() - t0;
        calls++;
        h_resp_free(&r);
        n1_off = !node_online("n1");
        n2_off = !node_online("n2");
        clock_sleep_ms(20);
    }
    ck_assert_msg(n1_off && n2_off,
                  "nodes still online after 5 s without heartbeats");
    ck_assert_msg(worst < 200,
                  "GET /sites took %lld ms while nodes went offline",
                  (long long)worst);
    ck_assert_int_gt(calls, 3);
    ev = mail_wait(&online_events, "node.online.n1", NULL, NULL, 3000);
    ck_assert_ptr_nonnull(ev);
    ck_assert(!((Berth__V1__NodeOnline *)ev)->online);
    protobuf_c_message_free_unpacked(ev, NULL);

    /* Nowhere to place a site; a site pinned to an offline node is fine:
     * its command waits. */
    t0 = clock_mono_ms();
    expect(&r, 503, "POST", "/sites", admin_access,
           "{\"name\":\"nowhere\",\"image\":\"nginx\"}");
    ck_assert_str_eq(h_err_code(&r), "EUNAVAIL");
    ck_assert_ptr_nonnull(strstr(r.body.data, "no node is online"));
    h_resp_free(&r);
    expect(&r, 202, "POST", "/sites", admin_access,
           "{\"name\":\"waiting\",\"image\":\"nginx\",\"node\":\"n2\"}");
    h_resp_free(&r);
    ck_assert_int_lt(clock_mono_ms() - t0, 1000);
    expect(&r, 200, "GET", "/nodes/n1", admin_access, NULL);
    ck_assert(json_is_false(json_object_get(r.json, "online")));
    h_resp_free(&r);

    /* Heartbeats resume: online again, and said so. */
    atomic_store(&beat_n1, 1);
    ck_assert(wait_online("n1", 1, 3000));
    ev = mail_wait(&online_events, "node.online.n1", NULL, NULL, 3000);
    ck_assert_ptr_nonnull(ev);
    ck_assert(((Berth__V1__NodeOnline *)ev)->online);
    protobuf_c_message_free_unpacked(ev, NULL);
}
END_TEST

START_TEST(operations_on_the_bus)
{
    Berth__V1__SiteSpec spec = BERTH__V1__SITE_SPEC__INIT;
    Berth__V1__SiteCreateRequest req = BERTH__V1__SITE_CREATE_REQUEST__INIT;
    Berth__V1__SitePower pw = BERTH__V1__SITE_POWER__INIT;
    Berth__V1__SiteDelete del = BERTH__V1__SITE_DELETE__INIT;
    Berth__V1__NodeSyncRequest sync = BERTH__V1__NODE_SYNC_REQUEST__INIT;
    Berth__V1__SiteReply *reply = NULL;
    Berth__V1__NodeSyncReply *nodes = NULL;
    Berth__V1__Ack *ack = NULL;
    ProtobufCMessage *cmd;
    char id[40], path[160];
    h_resp r;
    bus_error err;
    size_t i, n1_sites = 0;
    int found = 0;
    json_t *s;

    spec.name = "bus-made";
    spec.image = "busybox:1.36";
    req.spec = &spec;
    ck_assert_int_eq(bus_request(daemon_bus, "site.create", &req.base, 5000,
                                 (ProtobufCMessage **)&reply, &err),
                     0);
    ck_assert(id_uuid_valid(reply->spec->id));
    ck_assert_str_eq(reply->spec->node_id, "n1"); /* the only node online */
    ck_assert_str_eq(reply->spec->name, "bus-made");
    ck_assert_uint_eq(reply->spec->limits->memory_bytes, 256 * MIB);
    ck_assert(reply->spec->should_run);
    snprintf(id, sizeof(id), "%s", reply->spec->id);
    cmd = mail_wait(&commands, "site.create.n1", "command_id",
                    reply->command_id, 5000);
    ck_assert_ptr_nonnull(cmd);
    protobuf_c_message_free_unpacked(cmd, NULL);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    reply = NULL;

    /* The same validation as over HTTP. */
    spec.name = "BAD";
    ck_assert_int_eq(bus_request(daemon_bus, "site.create", &req.base, 5000,
                                 (ProtobufCMessage **)&reply, &err),
                     BERTH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "name"));
    spec.name = "p1";
    ck_assert_int_eq(bus_request(daemon_bus, "site.create", &req.base, 5000,
                                 (ProtobufCMessage **)&reply, &err),
                     BERTH_ECONFLICT);

    pw.site_id = id;
    pw.action = BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART;
    ck_assert_int_eq(bus_request(daemon_bus, "site.power", &pw.base, 5000,
                                 (ProtobufCMessage **)&reply, &err),
                     0);
    cmd = mail_wait(&commands, "site.power.n1", "command_id", reply->command_id,
                    5000);
    ck_assert_ptr_nonnull(cmd);
    ck_assert_int_eq(((Berth__V1__SitePower *)cmd)->action,
                     BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART);
    protobuf_c_message_free_unpacked(cmd, NULL);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    reply = NULL;
    pw.site_id = "00000000-0000-4000-8000-000000000000";
    ck_assert_int_eq(bus_request(daemon_bus, "site.power", &pw.base, 5000,
                                 (ProtobufCMessage **)&reply, &err),
                     BERTH_ENOENT);

    /* node.sync.n1: every site of n1, as GET /sites lists them. */
    expect(&r, 200, "GET", "/sites", admin_access, NULL);
    json_array_foreach(json_object_get(r.json, "sites"), i, s)
    {
        if (strcmp(h_jstr(s, "nodeId"), "n1") == 0)
            n1_sites++;
    }
    h_resp_free(&r);
    sync.node_id = "n1";
    ck_assert_int_eq(bus_request(daemon_bus, "node.sync.n1", &sync.base, 5000,
                                 (ProtobufCMessage **)&nodes, &err),
                     0);
    ck_assert_str_eq(nodes->node_id, "n1");
    ck_assert_uint_eq(nodes->n_sites, n1_sites);
    for (i = 0; i < nodes->n_sites; i++) {
        ck_assert_str_eq(nodes->sites[i]->node_id, "n1");
        ck_assert(id_uuid_valid(nodes->sites[i]->id));
        if (strcmp(nodes->sites[i]->id, id) == 0) {
            found = 1;
            ck_assert(nodes->sites[i]->should_run);
            ck_assert_str_eq(nodes->sites[i]->image, "busybox:1.36");
        }
    }
    ck_assert(found);
    protobuf_c_message_free_unpacked(&nodes->base, NULL);
    nodes = NULL;

    del.site_id = id;
    ck_assert_int_eq(bus_request(daemon_bus, "site.delete", &del.base, 5000,
                                 (ProtobufCMessage **)&ack, &err),
                     0);
    cmd = mail_wait(&commands, "site.delete.n1", "command_id", ack->id, 5000);
    ck_assert_ptr_nonnull(cmd);
    ck_assert_str_eq(((Berth__V1__SiteDelete *)cmd)->site_id, id);
    protobuf_c_message_free_unpacked(cmd, NULL);
    protobuf_c_message_free_unpacked(&ack->base, NULL);

    /* Audited, without a user. */
    snprintf(path, sizeof(path), "/audit?action=site.create&target=%s", id);
    expect(&r, 200, "GET", path, admin_access, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 1);
    ck_assert(json_is_null(json_object_get(
        json_array_get(json_object_get(r.json, "entries"), 0), "userId")));
    h_resp_free(&r);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/panel_sites");
    TCase *tc = tcase_create("panel_sites");

    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, nodes_register_and_list);
    tcase_add_test(tc, create_site_and_durable_command);
    tcase_add_test(tc, status_and_results_flow_back);
    tcase_add_test(tc, validation);
    tcase_add_test(tc, placement);
    tcase_add_test(tc, per_site_grants);
    tcase_add_test(tc, power_update_delete_commands);
    tcase_add_test(tc, offline_nodes_never_slow_the_api);
    tcase_add_test(tc, operations_on_the_bus);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests share one panel and build on each other. */
UNIT_MAIN_NOFORK(make_suite)
