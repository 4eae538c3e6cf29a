/* daemon_sites.c - the real berth-daemon running sites on the real Docker
 * Engine, driven through the real nats-server the way the panel drives it:
 * durable commands on site.<verb>.<node>, results and states read from
 * command.result.<node> and site.status.<node>.<site>, consoles on
 * console.out/in, replay, stats.
 *
 * The test plays the panel on the bus: it creates the JetStream streams,
 * answers node.register.<node> and node.sync.<node> (with a desired state
 * the tests set), and publishes commands. The suite shares one nats-server
 * and one daemon data directory (CK_NOFORK); tests run in order and build
 * on each other. Sites use the locally built berth-test-busybox:1 image;
 * teardown removes every container labelled with this run's node id.
 */
#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "console.pb-c.h"
#include "node.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/docker.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define TEST_IMAGE H_TEST_IMAGE
#define WAIT_MS    20000
#define MAX_SEEN   4096

/* ------------------------------------------------------------ what the bus saw */

typedef struct seen_status {
    char site[64];
    int state;
    int exit_code;
    int oom;
    unsigned restarts;
    char reason[256];
    char upstream[80];
    char container[80];
} seen_status;

typedef struct seen_result {
    char command[64];
    int ok;
    int code;
    char message[512];
} seen_result;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static seen_status statuses[MAX_SEEN];
static int nstatuses;
static seen_result results[MAX_SEEN];
static int nresults;
static buf console_text; /* console.out of the site watched */
static char console_site[64];
static uint64_t console_last_seq;
static int console_seq_errors;
static int stats_count;
static char stats_site[64];
static unsigned stats_pids;

static h_nats nats;
static bus *b;
static char *tmp;
static char data_dir[1024], log_path[1100];
static char node_id[ID_UUID_LEN + 1];
static h_proc dproc;
static Berth__V1__SiteSpec *desired[16]; /* what node.sync answers */
static int ndesired;
static int syncs;

static int on_status(bus_msg *m, void *ud)
{
    const Berth__V1__SiteStatus *st = (const void *)m->msg;
    seen_status *s;

    (void)ud;
    pthread_mutex_lock(&mu);
    if (nstatuses < MAX_SEEN) {
        s = &statuses[nstatuses++];
        snprintf(s->site, sizeof(s->site), "%s", st->site_id);
        s->state = st->state;
        s->exit_code = st->exit_code;
        s->oom = st->oom_killed;
        s->restarts = st->restarts;
        snprintf(s->reason, sizeof(s->reason), "%s", st->reason);
        snprintf(s->upstream, sizeof(s->upstream), "%s", st->upstream);
        snprintf(s->container, sizeof(s->container), "%s", st->container_id);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static int on_result(bus_msg *m, void *ud)
{
    const Berth__V1__CommandResult *r = (const void *)m->msg;
    seen_result *s;

    (void)ud;
    pthread_mutex_lock(&mu);
    if (nresults < MAX_SEEN) {
        s = &results[nresults++];
        snprintf(s->command, sizeof(s->command), "%s", r->command_id);
        s->ok = r->ok;
        s->code = r->error != NULL ? r->error->code : 0;
        snprintf(s->message, sizeof(s->message), "%s",
                 r->error != NULL ? r->error->message : "");
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static int on_console(bus_msg *m, void *ud)
{
    const Berth__V1__ConsoleChunk *c = (const void *)m->msg;

    (void)ud;
    pthread_mutex_lock(&mu);
    if (strcmp(c->site_id, console_site) == 0) {
        if (c->seq <= console_last_seq && console_last_seq != 0)
            console_seq_errors++;
        console_last_seq = c->seq;
        if (c->stream != BERTH__V1__CONSOLE_STREAM__CONSOLE_STREAM_SYSTEM)
            buf_append(&console_text, c->data.data, c->data.len);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static int on_stats(bus_msg *m, void *ud)
{
    const Berth__V1__ContainerStats *c = (const void *)m->msg;

    (void)ud;
    pthread_mutex_lock(&mu);
    if (strcmp(c->site_id, stats_site) == 0) {
        stats_count++;
        stats_pids = c->pids;
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static int on_sync(bus_msg *m, void *ud)
{
    Berth__V1__NodeSyncReply r = BERTH__V1__NODE_SYNC_REPLY__INIT;
    int rc;

    (void)ud;
    pthread_mutex_lock(&mu);
    r.node_id = node_id;
    r.sites = desired;
    r.n_sites = (size_t)ndesired;
    r.generated_ms = clock_wall_ms();
    syncs++;
    rc = bus_reply(m, &r.base);
    pthread_mutex_unlock(&mu);
    return rc;
}

/* Waits for a status of site in state after index *from; returns its index
 * and moves *from past it, or fails the test. */
static int wait_state(const char *site, int state, int *from, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int i;

    while (clock_mono_ms() < end) {
        pthread_mutex_lock(&mu);
        for (i = *from; i < nstatuses; i++) {
            if (strcmp(statuses[i].site, site) == 0 && statuses[i].state == state) {
                *from = i + 1;
                pthread_mutex_unlock(&mu);
                return i;
            }
        }
        pthread_mutex_unlock(&mu);
        clock_sleep_ms(20);
    }
    ck_abort_msg("site %s never reached state %d", site, state);
    return -1;
}

static int status_count(const char *site)
{
    int i, n = 0;

    pthread_mutex_lock(&mu);
    for (i = 0; i < nstatuses; i++)
        n += strcmp(statuses[i].site, site) == 0;
    pthread_mutex_unlock(&mu);
    return n;
}

static seen_result wait_result(const char *command)
{
    int64_t end = clock_mono_ms() + 60000;
    seen_result r;
    int i;

    while (clock_mono_ms() < end) {
        pthread_mutex_lock(&mu);
        for (i = 0; i < nresults; i++) {
            if (strcmp(results[i].command, command) == 0) {
                r = results[i];
                pthread_mutex_unlock(&mu);
                return r;
            }
        }
        pthread_mutex_unlock(&mu);
        clock_sleep_ms(20);
    }
    ck_abort_msg("no result for command %s", command);
    return r;
}

/* ------------------------------------------------------------ commands */

typedef struct site_def {
    const char *argv[8];
    uint64_t memory;
    const char *stop_command;
    int restart_mode;
    unsigned max_restarts;
    int host_port;
    unsigned http_port;
    const char *image;
} site_def;

/* A spec for a new site; caller frees with spec_free. */
static Berth__V1__SiteSpec *spec_new(const site_def *d, char id[ID_UUID_LEN + 1])
{
    Berth__V1__SiteSpec *s = calloc(1, sizeof(*s));
    Berth__V1__Limits *l = calloc(1, sizeof(*l));
    Berth__V1__RestartPolicy *p = calloc(1, sizeof(*p));
    size_t n = 0;

    berth__v1__site_spec__init(s);
    berth__v1__limits__init(l);
    berth__v1__restart_policy__init(p);
    ck_assert_int_eq(id_uuid(id), 0);
    s->id = strdup(id);
    s->name = strdup("test");
    s->node_id = strdup(node_id);
    s->image = strdup(d->image != NULL ? d->image : TEST_IMAGE);
    while (d->argv[n] != NULL)
        n++;
    s->n_command = n;
    s->command = calloc(n + 1, sizeof(char *));
    for (n = 0; n < s->n_command; n++)
        s->command[n] = strdup(d->argv[n]);
    l->memory_bytes = d->memory != 0 ? d->memory : 64u << 20;
    l->cpu_millis = 1000;
    l->pids = 256;
    s->limits = l;
    p->mode = d->restart_mode != 0 ? d->restart_mode
                                   : BERTH__V1__RESTART_POLICY__MODE__MODE_NEVER;
    p->max_restarts = d->max_restarts;
    p->window_seconds = 60;
    s->restart = p;
    s->stop_command = strdup(d->stop_command != NULL ? d->stop_command : "");
    s->stop_signal = strdup("");
    s->stop_timeout_seconds = 10;
    s->http_port = d->http_port;
    if (d->host_port != 0) {
        Berth__V1__PortBinding *pb = calloc(1, sizeof(*pb));
        berth__v1__port_binding__init(pb);
        pb->container_port = d->http_port;
        pb->host_port = (uint32_t)d->host_port;
        pb->protocol = strdup("tcp");
        pb->host_ip = strdup("127.0.0.1");
        s->n_ports = 1;
        s->ports = calloc(1, sizeof(*s->ports));
        s->ports[0] = pb;
    }
    return s;
}

/* Frees what spec_new made (it mirrors protobuf-c's own layout). */
static void spec_free(Berth__V1__SiteSpec *s)
{
    size_t i;

    for (i = 0; i < s->n_command; i++)
        free(s->command[i]);
    free(s->command);
    if (s->n_ports > 0) {
        free(s->ports[0]->protocol);
        free(s->ports[0]->host_ip);
        free(s->ports[0]);
        free(s->ports);
    }
    free(s->id);
    free(s->name);
    free(s->node_id);
    free(s->image);
    free(s->stop_command);
    free(s->stop_signal);
    free(s->limits);
    free(s->restart);
    free(s);
}

static void publish_cmd(const char *verb, const ProtobufCMessage *m,
                        const char *cid)
{
    char subject[160];

    snprintf(subject, sizeof(subject), "site.%s.%s", verb, node_id);
    ck_assert_int_eq(bus_js_publish(b, subject, m, cid, 5000), 0);
}

static void send_create(Berth__V1__SiteSpec *spec, int start, char cid[ID_UUID_LEN + 1])
{
    Berth__V1__SiteCreate c = BERTH__V1__SITE_CREATE__INIT;

    ck_assert_int_eq(id_uuid(cid), 0);
    c.command_id = cid;
    c.spec = spec;
    c.start = start;
    publish_cmd("create", &c.base, cid);
}

static void send_power(const char *site, int action, char cid[ID_UUID_LEN + 1])
{
    Berth__V1__SitePower p = BERTH__V1__SITE_POWER__INIT;

    ck_assert_int_eq(id_uuid(cid), 0);
    p.command_id = cid;
    p.site_id = (char *)site;
    p.action = action;
    publish_cmd("power", &p.base, cid);
}

static void send_delete(const char *site, int purge, char cid[ID_UUID_LEN + 1])
{
    Berth__V1__SiteDelete d = BERTH__V1__SITE_DELETE__INIT;

    ck_assert_int_eq(id_uuid(cid), 0);
    d.command_id = cid;
    d.site_id = (char *)site;
    d.purge_data = purge;
    publish_cmd("delete", &d.base, cid);
}

static void expect_ok(const char *cid)
{
    seen_result r = wait_result(cid);
    ck_assert_msg(r.ok, "command %s failed: %s", cid, r.message);
}

static seen_result expect_fail(const char *cid, int code)
{
    seen_result r = wait_result(cid);
    ck_assert_msg(!r.ok, "command %s should have failed", cid);
    if (code != 0)
        ck_assert_msg(r.code == code, "command %s failed with %d (%s), not %d",
                      cid, r.code, r.message, code);
    return r;
}

/* ------------------------------------------------------------ docker */

/* Runs `docker ARGS...` and returns its trimmed stdout (static). */
static const char *docker(const char *a1, const char *a2, const char *a3,
                          const char *a4)
{
    static char out_text[8192];
    char *argv[] = {"docker", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    buf out, err;

    buf_init(&out, sizeof(out_text) - 1);
    buf_init(&err, 64 * 1024);
    h_run2(argv, NULL, 0, &out, &err, 30000);
    buf_free(&err);
    snprintf(out_text, sizeof(out_text), "%s", out.data != NULL ? out.data : "");
    buf_free(&out);
    while (strlen(out_text) > 0 && out_text[strlen(out_text) - 1] == '\n')
        out_text[strlen(out_text) - 1] = '\0';
    return out_text;
}

static void container_of(const char *site, char *name, size_t size)
{
    snprintf(name, size, "berth-%s", site);
}

static const char *inspect(const char *site, const char *fmt)
{
    char name[128];

    container_of(site, name, sizeof(name));
    return docker("inspect", "-f", fmt, name);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    buf_append(arg, p, size * n);
    return size * n;
}

/* GET url; returns the HTTP status (0 when nothing answered), body in out. */
static long http_get(const char *url, buf *out)
{
    CURL *c = curl_easy_init();
    long status = 0;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* ------------------------------------------------------------ daemon */

static void start_daemon(void)
{
    char nats_env[256], data[1100];
    char *argv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *env[] = {nats_env,
                   data,
                   "BERTH_NODE_NAME=sites-test",
                   "BERTH_STRICT_SUBJECTS=1",
                   "BERTH_LOG_LEVEL=debug",
                   "BERTH_DAEMON_RESTART_BACKOFF_MS=200",
                   "BERTH_DAEMON_RECONCILE_MS=2000",
                   NULL};

    snprintf(nats_env, sizeof(nats_env), "BERTH_NATS_URL=%s", nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", data_dir);
    ck_assert_int_eq(h_proc_start(&dproc, "daemon", argv, env, log_path), 0);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=ready", 15000), 0);
}

static void suite_setup(void)
{
    char idfile[1200], subject[160];
    char *text = NULL;
    size_t len = 0;

    ck_assert_int_eq(h_image_build(), 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    buf_init(&console_text, 16u << 20);

    ck_assert_int_eq(h_nats_start(&nats), 0);
    b = h_bus_open(nats.url, "berth-panel");
    ck_assert_int_eq(bus_js_setup(b), 0);
    ck_assert_int_eq(h_fake_panel(b, on_sync, NULL), 0);

    tmp = h_tempdir("daemon-sites");
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    ck_assert_int_eq(fs_mkdirs(data_dir, 0700), 0);
    start_daemon();
    snprintf(idfile, sizeof(idfile), "%s/node.id", data_dir);
    ck_assert_int_eq(fs_read_file(idfile, 100, &text, &len), 0);
    snprintf(node_id, sizeof(node_id), "%s", text);
    free(text);

    snprintf(subject, sizeof(subject), "site.status.%s.*", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_status, NULL), 0);
    snprintf(subject, sizeof(subject), "command.result.%s", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_result, NULL), 0);
    snprintf(subject, sizeof(subject), "console.out.%s.*", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_console, NULL), 0);
    snprintf(subject, sizeof(subject), "container.stats.%s.*", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_stats, NULL), 0);
}

static void suite_teardown(void)
{
    char label[160];

    if (dproc.pid > 0) {
        int st = h_proc_stop(&dproc, SIGTERM, 15000);
        if (st != 0)
            h_log_tail(log_path, 4000);
        h_proc_free(&dproc);
    }
    snprintf(label, sizeof(label), "berth.node=%s", node_id);
    h_docker_rm_labelled(label);
    bus_close(b);
    h_nats_stop(&nats);
    h_tempdir_drop(tmp, "daemon-sites");
    buf_free(&console_text);
}

/* ------------------------------------------------------------ tests */

static char web[ID_UUID_LEN + 1]; /* busybox httpd on a host port */
static int web_port;
static Berth__V1__SiteSpec *web_spec;

START_TEST(create_runs_and_serves_http)
{
    char cid[ID_UUID_LEN + 1], path[1200], url[64];
    int from = 0, i;
    buf body;
    long status = 0;

    web_port = h_free_port();
    web_spec = spec_new(&(site_def){.argv = {"httpd", "-f", "-p", "8080", "-h",
                                             "/data", NULL},
                                    .host_port = web_port,
                                    .http_port = 8080},
                        web);
    send_create(web_spec, 1, cid);
    expect_ok(cid);
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_STARTING, &from, WAIT_MS);
    i = wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    ck_assert_msg(strstr(statuses[i].upstream, ":8080") != NULL,
                  "upstream %s", statuses[i].upstream);
    /* The data directory is the container's /data. */
    snprintf(path, sizeof(path), "%s/volumes/%s/index.html", data_dir, web);
    ck_assert_int_eq(fs_write_atomic(path, "hello from berth\n", 17, 0644), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/index.html", web_port);
    buf_init(&body, 4096);
    for (i = 0; i < 100 && status != 200; i++) {
        buf_reset(&body);
        status = http_get(url, &body);
        if (status != 200)
            clock_sleep_ms(50);
    }
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(body.data, "hello from berth\n");
    buf_free(&body);
    /* Labelled and hardened. */
    ck_assert_str_eq(inspect(web, "{{index .Config.Labels \"berth.node\"}}"), node_id);
    ck_assert_str_eq(inspect(web, "{{.HostConfig.CapDrop}}"), "[ALL]");
    ck_assert_str_eq(inspect(web, "{{.HostConfig.SecurityOpt}}"), "[no-new-privileges]");
}
END_TEST

START_TEST(stats_arrive_every_second)
{
    int n0, n1;

    pthread_mutex_lock(&mu);
    snprintf(stats_site, sizeof(stats_site), "%s", web);
    n0 = stats_count;
    pthread_mutex_unlock(&mu);
    clock_sleep_ms(3500);
    pthread_mutex_lock(&mu);
    n1 = stats_count;
    pthread_mutex_unlock(&mu);
    ck_assert_msg(n1 - n0 >= 2 && n1 - n0 <= 5, "%d stats in 3.5 s", n1 - n0);
    ck_assert_uint_ge(stats_pids, 1);
}
END_TEST

START_TEST(stop_with_signal_then_start_and_kill)
{
    char cid[ID_UUID_LEN + 1];
    int from = nstatuses, i;

    send_power(web, BERTH__V1__POWER_ACTION__POWER_ACTION_STOP, cid);
    expect_ok(cid);
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_STOPPING, &from, WAIT_MS);
    i = wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, &from, WAIT_MS);
    ck_assert_msg(strstr(statuses[i].reason, "stopped") != NULL, "%s",
                  statuses[i].reason);
    ck_assert_str_eq(inspect(web, "{{.State.Running}}"), "false");

    send_power(web, BERTH__V1__POWER_ACTION__POWER_ACTION_START, cid);
    expect_ok(cid);
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);

    send_power(web, BERTH__V1__POWER_ACTION__POWER_ACTION_KILL, cid);
    expect_ok(cid);
    i = wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, &from, WAIT_MS);
    ck_assert_int_eq(statuses[i].exit_code, 137);
}
END_TEST

START_TEST(restart_changes_the_start_time)
{
    char cid[ID_UUID_LEN + 1], before[64];
    int from = nstatuses;

    send_power(web, BERTH__V1__POWER_ACTION__POWER_ACTION_START, cid);
    expect_ok(cid);
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    snprintf(before, sizeof(before), "%s", inspect(web, "{{.State.StartedAt}}"));
    send_power(web, BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART, cid);
    expect_ok(cid);
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    ck_assert_str_ne(inspect(web, "{{.State.StartedAt}}"), before);
    ck_assert_str_eq(inspect(web, "{{.State.Running}}"), "true");
}
END_TEST

static char echo_site[ID_UUID_LEN + 1]; /* echoes stdin, "quit" ends it */

START_TEST(console_input_and_stop_command)
{
    char cid[ID_UUID_LEN + 1], subject[160];
    Berth__V1__ConsoleInput in = BERTH__V1__CONSOLE_INPUT__INIT;
    Berth__V1__SiteSpec *spec;
    int from = nstatuses, i, found = 0;

    spec = spec_new(&(site_def){.argv = {"sh", "-c",
                                         "echo ready; while read l; do "
                                         "[ \"$l\" = quit ] && exit 0; "
                                         "echo \"echo:$l\"; done",
                                         NULL},
                                .stop_command = "quit"},
                    echo_site);
    pthread_mutex_lock(&mu);
    snprintf(console_site, sizeof(console_site), "%s", echo_site);
    buf_reset(&console_text);
    console_last_seq = 0;
    pthread_mutex_unlock(&mu);
    send_create(spec, 1, cid);
    expect_ok(cid);
    wait_state(echo_site, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    in.site_id = echo_site;
    in.data.data = (uint8_t *)"hello console\n";
    in.data.len = 14;
    snprintf(subject, sizeof(subject), "console.in.%s.%s", node_id, echo_site);
    for (i = 0; i < 200 && !found; i++) {
        if (i % 50 == 0)
            ck_assert_int_eq(bus_publish(b, subject, &in.base), 0);
        clock_sleep_ms(20);
        pthread_mutex_lock(&mu);
        found = console_text.data != NULL &&
                strstr(console_text.data, "echo:hello console") != NULL;
        pthread_mutex_unlock(&mu);
    }
    ck_assert_msg(found, "the echo never came back: %s",
                  console_text.data != NULL ? console_text.data : "");
    /* The stop command ends it cleanly (exit 0, not a kill). */
    send_power(echo_site, BERTH__V1__POWER_ACTION__POWER_ACTION_STOP, cid);
    expect_ok(cid);
    i = wait_state(echo_site, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, &from,
                   WAIT_MS);
    ck_assert_int_eq(statuses[i].exit_code, 0);
    spec_free(spec);
}
END_TEST

START_TEST(console_100k_lines_in_order_and_replay)
{
    char cid[ID_UUID_LEN + 1], site[ID_UUID_LEN + 1], subject[160], line[16];
    Berth__V1__ConsoleReplayRequest rq = BERTH__V1__CONSOLE_REPLAY_REQUEST__INIT;
    Berth__V1__ConsoleReplay *rep = NULL;
    Berth__V1__SiteSpec *spec;
    int from = nstatuses, i, complete = 0;
    char *p;

    spec = spec_new(&(site_def){.argv = {"sh", "-c",
                                         "seq 1 100000; sleep 3600", NULL}},
                    site);
    pthread_mutex_lock(&mu);
    snprintf(console_site, sizeof(console_site), "%s", site);
    buf_reset(&console_text);
    console_last_seq = 0;
    console_seq_errors = 0;
    pthread_mutex_unlock(&mu);
    send_create(spec, 1, cid);
    expect_ok(cid);
    wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    for (i = 0; i < 500 && !complete; i++) {
        clock_sleep_ms(20);
        pthread_mutex_lock(&mu);
        complete = console_text.len >= 6 &&
                   strstr(console_text.data, "\n100000\n") != NULL;
        pthread_mutex_unlock(&mu);
    }
    ck_assert_msg(complete, "only %zu bytes of output arrived", console_text.len);
    /* Every line, once, in order. */
    pthread_mutex_lock(&mu);
    p = console_text.data;
    for (i = 1; i <= 100000; i++) {
        int n = snprintf(line, sizeof(line), "%d\n", i);
        ck_assert_msg(strncmp(p, line, (size_t)n) == 0, "line %d is wrong", i);
        p += n;
    }
    ck_assert_int_eq(console_seq_errors, 0);
    pthread_mutex_unlock(&mu);

    rq.site_id = site;
    snprintf(subject, sizeof(subject), "console.replay.%s.%s", node_id, site);
    ck_assert_int_eq(bus_request(b, subject, &rq.base, 5000,
                                 (ProtobufCMessage **)&rep, NULL),
                     0);
    ck_assert_uint_le(rep->data.len, 64 * 1024);
    ck_assert_uint_ge(rep->data.len, 60 * 1024);
    ck_assert_msg(memcmp(rep->data.data + rep->data.len - 7, "100000\n", 7) == 0,
                  "the replay does not end with the last line");
    ck_assert_uint_gt(rep->next_seq, 1);
    berth__v1__console_replay__free_unpacked(rep, NULL);
    spec_free(spec);
}
END_TEST

START_TEST(crash_restarts_then_gives_up)
{
    char cid[ID_UUID_LEN + 1], site[ID_UUID_LEN + 1];
    Berth__V1__SiteSpec *spec;
    int from = nstatuses, i;

    spec = spec_new(&(site_def){.argv = {"sh", "-c", "echo boom; exit 3", NULL},
                                .restart_mode =
                                    BERTH__V1__RESTART_POLICY__MODE__MODE_ON_FAILURE,
                                .max_restarts = 2},
                    site);
    send_create(spec, 1, cid);
    expect_ok(cid);
    i = wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_CRASHED, &from, WAIT_MS);
    ck_assert_int_eq(statuses[i].exit_code, 3);
    ck_assert_msg(strstr(statuses[i].reason, "restarting") != NULL, "%s",
                  statuses[i].reason);
    wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_STARTING, &from, WAIT_MS);
    wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_CRASHED, &from, WAIT_MS);
    wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_STARTING, &from, WAIT_MS);
    i = wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_CRASHED, &from, WAIT_MS);
    ck_assert_msg(strstr(statuses[i].reason, "giving up") != NULL, "%s",
                  statuses[i].reason);
    ck_assert_uint_eq(statuses[i].restarts, 2);
    /* It stays crashed. */
    clock_sleep_ms(1500);
    ck_assert_str_eq(inspect(site, "{{.State.Running}}"), "false");
    spec_free(spec);
}
END_TEST

START_TEST(oom_kill_is_detected)
{
    char cid[ID_UUID_LEN + 1], site[ID_UUID_LEN + 1];
    Berth__V1__SiteSpec *spec;
    int from = nstatuses, i;

    spec = spec_new(&(site_def){.argv = {"sh", "-c",
                                         "sleep 1; dd if=/dev/zero of=/dev/null "
                                         "bs=64M count=1",
                                         NULL},
                                .memory = 16u << 20},
                    site);
    send_create(spec, 1, cid);
    expect_ok(cid);
    i = wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_CRASHED, &from, WAIT_MS);
    ck_assert_int_eq(statuses[i].oom, 1);
    ck_assert_int_eq(statuses[i].exit_code, 137);
    ck_assert_msg(strstr(statuses[i].reason, "out of memory") != NULL, "%s",
                  statuses[i].reason);
    spec_free(spec);
}
END_TEST

START_TEST(bad_commands_fail_clearly)
{
    char cid[ID_UUID_LEN + 1], site[ID_UUID_LEN + 1], subject[160];
    Berth__V1__SiteSpec *spec;
    seen_result r;
    natsStatus s;

    /* An image that is not here and cannot be pulled: nothing is made. */
    spec = spec_new(&(site_def){.argv = {"true", NULL},
                                .image = "berth-test-absent:1"},
                    site);
    send_create(spec, 1, cid);
    r = expect_fail(cid, 0);
    ck_assert_msg(strstr(r.message, "berth-test-absent:1") != NULL, "%s",
                  r.message);
    ck_assert_str_eq(inspect(site, "{{.Id}}"), "");
    spec_free(spec);

    /* An invalid image name and a limit out of range. */
    spec = spec_new(&(site_def){.argv = {"true", NULL}, .image = "Not An Image!"},
                    site);
    send_create(spec, 1, cid);
    expect_fail(cid, BERTH_EINVAL);
    spec_free(spec);
    spec = spec_new(&(site_def){.argv = {"true", NULL}, .memory = 1024}, site);
    send_create(spec, 1, cid);
    r = expect_fail(cid, BERTH_EINVAL);
    ck_assert_msg(strstr(r.message, "memory") != NULL, "%s", r.message);
    spec_free(spec);

    /* A site this node does not have. */
    send_power("no-such-site", BERTH__V1__POWER_ACTION__POWER_ACTION_START, cid);
    expect_fail(cid, BERTH_ENOENT);

    /* A spec that names another node. */
    spec = spec_new(&(site_def){.argv = {"true", NULL}}, site);
    free(spec->node_id);
    spec->node_id = strdup("another-node");
    send_create(spec, 1, cid);
    expect_fail(cid, BERTH_EINVAL);
    spec_free(spec);

    /* A port another site holds: the start fails with Docker's reason. */
    spec = spec_new(&(site_def){.argv = {"httpd", "-f", "-p", "8080", NULL},
                                .host_port = web_port,
                                .http_port = 8080},
                    site);
    send_create(spec, 1, cid);
    r = expect_fail(cid, 0);
    ck_assert_msg(strstr(r.message, "allocated") != NULL ||
                      strstr(r.message, "in use") != NULL,
                  "%s", r.message);
    spec_free(spec);

    /* Garbage on the command subject is dropped; the daemon goes on. */
    snprintf(subject, sizeof(subject), "site.power.%s", node_id);
    {
        jsCtx *js = NULL;
        jsErrCode jerr = 0;
        s = natsConnection_JetStream(&js, bus_nats(b), NULL);
        ck_assert_int_eq(s, NATS_OK);
        s = js_Publish(NULL, js, subject, "\xff\xfe garbage", 10, NULL, &jerr);
        ck_assert_int_eq(s, NATS_OK);
        jsCtx_Destroy(js);
    }
    send_power(web, BERTH__V1__POWER_ACTION__POWER_ACTION_START, cid);
    expect_ok(cid);
    ck_assert(h_proc_alive(&dproc));
}
END_TEST

/* How many times the site's container started: each run appends a line
 * to /data/starts (Docker's own event log is too short to ask). */
static int starts_of(const char *site)
{
    char path[1200];
    char *text = NULL;
    size_t len = 0, i;
    int n = 0;

    snprintf(path, sizeof(path), "%s/volumes/%s/starts", data_dir, site);
    if (fs_read_file(path, 1 << 20, &text, &len) != 0)
        return 0;
    for (i = 0; i < len; i++)
        n += text[i] == '\n';
    free(text);
    return n;
}

START_TEST(sigkill_mid_queue_applies_each_command_once)
{
    char c[6][ID_UUID_LEN + 1], g[ID_UUID_LEN + 1], h[ID_UUID_LEN + 1];
    Berth__V1__SiteSpec *sg, *sh;
    int from = nstatuses, i;

    sg = spec_new(&(site_def){.argv = {"sh", "-c",
                                       "echo start >> /data/starts; "
                                       "exec sleep 3600",
                                       NULL}},
                  g);
    sh = spec_new(&(site_def){.argv = {"sh", "-c",
                                       "echo start >> /data/starts; "
                                       "exec sleep 3600",
                                       NULL}},
                  h);
    send_create(sg, 1, c[0]);
    send_power(g, BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART, c[1]);
    send_power(g, BERTH__V1__POWER_ACTION__POWER_ACTION_STOP, c[2]);
    send_power(g, BERTH__V1__POWER_ACTION__POWER_ACTION_START, c[3]);
    send_power(g, BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART, c[4]);
    send_create(sh, 1, c[5]);
    /* Killed while it works through the queue. */
    expect_ok(c[1]);
    h_proc_kill9(&dproc);
    h_proc_free(&dproc);
    start_daemon();
    for (i = 0; i < 6; i++)
        expect_ok(c[i]);
    wait_state(h, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    clock_sleep_ms(1000);
    /* create+start, restart, start, restart: four starts, not more. */
    ck_assert_int_eq(starts_of(g), 4);
    ck_assert_int_eq(starts_of(h), 1);
    ck_assert_str_eq(inspect(g, "{{.State.Running}}"), "true");
    spec_free(sg);
    spec_free(sh);
}
END_TEST

START_TEST(restart_adopts_running_sites)
{
    char before[64];
    int from;

    snprintf(before, sizeof(before), "%s", inspect(web, "{{.State.StartedAt}}"));
    ck_assert_str_eq(inspect(web, "{{.State.Running}}"), "true");
    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 15000), 0);
    h_proc_free(&dproc);
    from = nstatuses;
    start_daemon();
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    ck_assert_str_eq(inspect(web, "{{.State.StartedAt}}"), before);
}
END_TEST

START_TEST(foreign_containers_are_ignored)
{
    char label_node[160], label_site[100], site[ID_UUID_LEN + 1];
    int before;

    ck_assert_int_eq(id_uuid(site), 0);
    snprintf(label_node, sizeof(label_node), "berth.node=%s", node_id);
    snprintf(label_site, sizeof(label_site), "berth.site=%s", site);
    before = status_count(site);
    /* Ours by node label but of no site the daemon has, and one with no
     * label at all: started and stopped, neither makes a status. */
    {
        char name1[128], name2[128], cmd[1200];
        char *argv[] = {"sh", "-c", cmd, NULL};
        buf out;

        snprintf(name1, sizeof(name1), "berth-test-foreign-%s", site);
        snprintf(name2, sizeof(name2), "berth-test-plain-%s", site);
        snprintf(cmd, sizeof(cmd),
                 "docker run -d --name %s --label %s --label %s %s sleep 1 && "
                 "docker run -d --name %s %s sleep 1 && sleep 2 && "
                 "docker rm -f %s %s",
                 name1, label_node, label_site, TEST_IMAGE, name2, TEST_IMAGE,
                 name1, name2);
        buf_init(&out, 64 * 1024);
        ck_assert_int_eq(h_run(argv, NULL, 0, &out, 60000), 0);
        buf_free(&out);
    }
    ck_assert_int_eq(status_count(site), before);
    ck_assert(h_proc_alive(&dproc));
}
END_TEST

START_TEST(reconcile_creates_what_the_panel_wants)
{
    char site[ID_UUID_LEN + 1], before[100];
    Berth__V1__SiteSpec *spec;
    int from = nstatuses, i;

    spec = spec_new(&(site_def){.argv = {"sleep", "3600", NULL}}, site);
    spec->should_run = 1;
    pthread_mutex_lock(&mu);
    desired[ndesired++] = spec;
    pthread_mutex_unlock(&mu);
    wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_MISSING, &from, WAIT_MS);
    wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
    ck_assert_str_eq(inspect(site, "{{.State.Running}}"), "true");
    snprintf(before, sizeof(before), "%s", inspect(site, "{{.Id}}"));
    /* A changed spec re-creates the container (the data stays). */
    pthread_mutex_lock(&mu);
    free(spec->command[1]);
    spec->command[1] = strdup("7200");
    pthread_mutex_unlock(&mu);
    for (i = 0; i < 200; i++) {
        if (strcmp(inspect(site, "{{.Id}}"), before) != 0 &&
            strcmp(inspect(site, "{{.State.Running}}"), "true") == 0)
            break;
        clock_sleep_ms(100);
    }
    ck_assert_str_eq(inspect(site, "{{json .Config.Cmd}}"), "[\"sleep\",\"7200\"]");
    ck_assert_str_eq(inspect(site, "{{.State.Running}}"), "true");
    /* The panel now wants it stopped. */
    pthread_mutex_lock(&mu);
    spec->should_run = 0;
    pthread_mutex_unlock(&mu);
    wait_state(site, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, &from, WAIT_MS);
    /* Sites the panel does not list are left alone by default. */
    ck_assert_str_eq(inspect(web, "{{.State.Running}}"), "true");
}
END_TEST

START_TEST(commands_wait_while_nats_is_down)
{
    char cid[ID_UUID_LEN + 1];
    int from = nstatuses;

    /* NATS away for a while: the daemon waits and reconnects by itself. */
    h_proc_stop(&nats.proc, SIGTERM, 5000);
    h_proc_free(&nats.proc);
    clock_sleep_ms(1500);
    ck_assert(h_proc_alive(&dproc));
    ck_assert_int_eq(h_nats_restart(&nats), 0);
    ck_assert_int_eq(bus_wait_connected(b, 10000), 0);
    send_power(web, BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART, cid);
    expect_ok(cid);
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, &from, WAIT_MS);
}
END_TEST

START_TEST(delete_with_purge_removes_container_and_data)
{
    char cid[ID_UUID_LEN + 1], path[1200];
    struct stat sb;
    int from = nstatuses;

    snprintf(path, sizeof(path), "%s/volumes/%s", data_dir, web);
    ck_assert_int_eq(stat(path, &sb), 0);
    send_delete(web, 1, cid);
    expect_ok(cid);
    wait_state(web, BERTH__V1__SITE_STATE__SITE_STATE_DELETED, &from, WAIT_MS);
    ck_assert_str_eq(inspect(web, "{{.Id}}"), "");
    ck_assert_int_ne(stat(path, &sb), 0);
    snprintf(path, sizeof(path), "%s/sites/%s.pb", data_dir, web);
    ck_assert_int_ne(stat(path, &sb), 0);
    ck_assert(h_proc_alive(&dproc));
    /* Deleting again is done, not an error. */
    send_delete(web, 1, cid);
    expect_ok(cid);
    spec_free(web_spec);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_sites");
    TCase *tc = tcase_create("sites");

    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, create_runs_and_serves_http);
    tcase_add_test(tc, stats_arrive_every_second);
    tcase_add_test(tc, stop_with_signal_then_start_and_kill);
    tcase_add_test(tc, restart_changes_the_start_time);
    tcase_add_test(tc, console_input_and_stop_command);
    tcase_add_test(tc, console_100k_lines_in_order_and_replay);
    tcase_add_test(tc, crash_restarts_then_gives_up);
    tcase_add_test(tc, oom_kill_is_detected);
    tcase_add_test(tc, bad_commands_fail_clearly);
    tcase_add_test(tc, sigkill_mid_queue_applies_each_command_once);
    tcase_add_test(tc, restart_adopts_running_sites);
    tcase_add_test(tc, foreign_containers_are_ignored);
    tcase_add_test(tc, reconcile_creates_what_the_panel_wants);
    tcase_add_test(tc, commands_wait_while_nats_is_down);
    tcase_add_test(tc, delete_with_purge_removes_container_and_data);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
