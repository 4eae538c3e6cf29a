/* daemon_node.c - the real berth-daemon registering with the real
 * berth-panel: its specs appear in GET /nodes, heartbeats keep it online,
 * a SIGKILL makes it offline, a restart keeps its node id, a NATS restart
 * makes it register again, a daemon started before the panel registers
 * once the panel runs, a site created through the panel's HTTP API runs
 * on the daemon and its states come back, SIGTERM exits 0.
 *
 * One panel and one daemon data directory serve the whole suite
 * (CK_NOFORK); the tests run in order and build on each other. The panel
 * runs with a 300 ms heartbeat interval, so a silent node is offline
 * within a second.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/id.h"
#include "tests/harness/docker.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"

#define ADMIN_PASSWORD "correct horse battery staple"
#define HEARTBEAT_MS   300
#define NODE_NAME      "test-node"

static h_panel panel;
static char access_token[H_ACCESS_MAX];
static char *tmp;           /* the suite's directory */
static char data_dir[1024]; /* tmp/data: the daemon's BERTH_DATA_DIR */
static char log_path[1024]; /* tmp/daemon.log */
static char node_id[ID_UUID_LEN + 1];
static h_proc dproc; /* berth-daemon */

/* ------------------------------------------------------------ helpers */

/* Starts berth-daemon as p with data directory dir, node name and Docker
 * socket sock (NULL: the default), logging to log; waits for "ready". */
static void start_daemon_as(h_proc *p, const char *dir, const char *name,
                            const char *sock, const char *log)
{
    char nats[256], data[1100], node[128], docker[1100];
    char *argv[] = {NULL, NULL};
    char *env[] = {nats, data, node, "BERTH_STRICT_SUBJECTS=1",
                   "BERTH_LOG_LEVEL=debug", NULL, NULL};

    argv[0] = (char *)h_bin("berth-daemon");
    snprintf(nats, sizeof(nats), "BERTH_NATS_URL=%s", panel.nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", dir);
    snprintf(node, sizeof(node), "BERTH_NODE_NAME=%s", name);
    if (sock != NULL) {
        snprintf(docker, sizeof(docker), "BERTH_DOCKER_SOCK=%s", sock);
        env[5] = docker;
    }
    ck_assert_int_eq(h_proc_start(p, "daemon", argv, env, log), 0);
    ck_assert_int_eq(h_proc_wait_log(p, "msg=ready", 10000), 0);
}

static void start_daemon(void)
{
    start_daemon_as(&dproc, data_dir, NODE_NAME, NULL, log_path);
}

/* The content of dir/node.id; caller frees. Checks it is a 0600 UUID. */
static char *read_node_id_in(const char *dir)
{
    char path[1100];
    struct stat st;
    char *text = NULL;
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/node.id", dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(fs_read_file(path, 4096, &text, &len), 0);
    ck_assert_uint_eq(len, ID_UUID_LEN);
    ck_assert(id_uuid_valid(text));
    return text;
}

static char *read_node_id(void)
{
    return read_node_id_in(data_dir);
}

/* The node's entry in GET /nodes (a new reference), or NULL. */
static json_t *node_entry(const char *id)
{
    h_resp r;
    json_t *found = NULL, *n;
    size_t i;

    ck_assert_int_eq(h_call(&panel, &r, "GET", "/nodes", access_token, NULL),
                     200);
    json_array_foreach(json_object_get(r.json, "nodes"), i, n)
    {
        if (strcmp(h_jstr(n, "id"), id) == 0)
            found = json_incref(n);
    }
    h_resp_free(&r);
    return found;
}

/* Waits until node id is (want 1) or is not (want 0) online; returns 1
 * when it happened within timeout_ms. */
static int wait_online(const char *id, int want, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    while (clock_mono_ms() < end) {
        json_t *n = node_entry(id);
        int online = n != NULL && json_is_true(json_object_get(n, "online"));

        json_decref(n);
        if (online == want)
            return 1;
        clock_sleep_ms(50);
    }
    return 0;
}

static json_int_t spec_int(json_t *n, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(n, "specs"), key));
}

/* ------------------------------------------------------------ suite */

static void suite_up(void)
{
    char hb[64];
    char *env[] = {hb, NULL};

    snprintf(hb, sizeof(hb), "BERTH_NODE_HEARTBEAT_MS=%d", HEARTBEAT_MS);
    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, env), 0);
    ck_assert_int_eq(
        h_login(&panel, "admin", ADMIN_PASSWORD, access_token, NULL), 201);
    tmp = h_tempdir("daemon-node");
    ck_assert_ptr_nonnull(tmp);
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
}

static void suite_down(void)
{
    h_proc_free(&dproc);
    h_tempdir_drop(tmp, "daemon");
    tmp = NULL;
    ck_assert_int_eq(h_panel_stop(&panel), 0);
}

/* ------------------------------------------------------------ tests */

START_TEST(registers_with_specs_and_stays_online)
{
    json_t *n = NULL;
    char *id;
    int64_t end;

    start_daemon();
    id = read_node_id();
    snprintf(node_id, sizeof(node_id), "%s", id);
    free(id);
    ck_assert_int_eq(h_wait_log(log_path, "msg=\"node registered\"", 10000),
                     0);
    end = clock_mono_ms() + 10000;
    while (clock_mono_ms() < end) {
        n = node_entry(node_id);
        if (n != NULL && json_is_true(json_object_get(n, "online")))
            break;
        json_decref(n);
        n = NULL;
        clock_sleep_ms(50);
    }
    ck_assert_msg(n != NULL, "node %s never came online", node_id);
    ck_assert_str_eq(h_jstr(n, "name"), NODE_NAME);
    ck_assert_str_ne(h_jstr(n, "hostname"), "");
    ck_assert_str_eq(h_jstr(n, "publicUrl"), "http://127.0.0.1:8443");
    ck_assert_str_ne(h_jstr(n, "version"), "");
    ck_assert_int_gt(spec_int(n, "cpus"), 0);
    ck_assert_int_gt(spec_int(n, "memoryBytes"), 0);
    ck_assert_int_gt(spec_int(n, "diskBytes"), 0);
    ck_assert_str_ne(h_jstr(json_object_get(n, "specs"), "kernel"), "");
    ck_assert_str_ne(h_jstr(json_object_get(n, "specs"), "arch"), "");
    /* Docker runs on this machine: its version is reported. */
    if (access("/var/run/docker.sock", F_OK) == 0)
        ck_assert_str_ne(h_jstr(json_object_get(n, "specs"), "dockerVersion"),
                         "");
    json_decref(n);

    /* Heartbeats keep it online well past three intervals. */
    clock_sleep_ms(6 * HEARTBEAT_MS);
    n = node_entry(node_id);
    ck_assert_ptr_nonnull(n);
    ck_assert(json_is_true(json_object_get(n, "online")));
    json_decref(n);
}
END_TEST

START_TEST(sigkill_makes_it_offline)
{
    h_proc_kill9(&dproc);
    ck_assert_msg(wait_online(node_id, 0, 3000),
                  "node still online 3 s after SIGKILL");
}
END_TEST

START_TEST(restart_keeps_the_node_id)
{
    h_resp r;
    json_t *n;
    size_t i, named = 0;
    char *id;

    h_proc_free(&dproc);
    start_daemon();
    id = read_node_id();
    ck_assert_str_eq(id, node_id);
    free(id);
    ck_assert_msg(wait_online(node_id, 1, 10000),
                  "node not online again after restart");
    /* One node, not a second one with the same name. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/nodes", access_token, NULL),
                     200);
    json_array_foreach(json_object_get(r.json, "nodes"), i, n)
    {
        if (strcmp(h_jstr(n, "name"), NODE_NAME) == 0)
            named++;
    }
    h_resp_free(&r);
    ck_assert_uint_eq(named, 1);
}
END_TEST

START_TEST(nats_restart_registers_again)
{
    off_t from = h_file_size(log_path);

    ck_assert_int_eq(h_nats_restart(&panel.nats), 0);
    ck_assert_int_eq(h_wait_log_from(log_path, from,
                                     "bus reconnected; registering again",
                                     15000),
                     0);
    ck_assert_int_eq(
        h_wait_log_from(log_path, from, "msg=\"node registered\"", 15000), 0);
    ck_assert_msg(wait_online(node_id, 1, 10000),
                  "node not online after the NATS restart");
}
END_TEST

/* A daemon that starts while the panel is down keeps asking until the
 * panel answers. Its Docker socket does not exist: it registers all the
 * same, with the host's CPUs and memory and no Docker version. */
START_TEST(panel_started_later)
{
    char dir[1100], log[1100], sock[1100];
    h_proc late = {0};
    json_t *n;
    char *id;

    snprintf(dir, sizeof(dir), "%s/data-late", tmp);
    snprintf(log, sizeof(log), "%s/daemon-late.log", tmp);
    ck_assert_int_eq(h_proc_stop(&panel.proc, SIGTERM, H_PANEL_STOP_MS), 0);
    snprintf(sock, sizeof(sock), "%s/no-docker.sock", tmp);
    start_daemon_as(&late, dir, "late-node", sock, log);
    ck_assert_int_eq(
        h_wait_log(log, "node registration failed; retrying", 10000), 0);
    clock_sleep_ms(1000); /* a few retries while nobody answers */
    ck_assert_int_eq(h_panel_restart(&panel), 0);
    ck_assert_int_eq(
        h_login(&panel, "admin", ADMIN_PASSWORD, access_token, NULL), 201);
    id = read_node_id_in(dir);
    ck_assert_str_ne(id, node_id);
    ck_assert_msg(wait_online(id, 1, 15000),
                  "late node not online after the panel started");
    n = node_entry(id);
    ck_assert_ptr_nonnull(n);
    ck_assert_str_eq(h_jstr(n, "name"), "late-node");
    ck_assert_int_gt(spec_int(n, "cpus"), 0);
    ck_assert_int_gt(spec_int(n, "memoryBytes"), 0);
    ck_assert_str_eq(h_jstr(json_object_get(n, "specs"), "dockerVersion"), "");
    json_decref(n);
    /* The first daemon came back too (heartbeats of a known node). */
    ck_assert(wait_online(node_id, 1, 5000));
    free(id);
    ck_assert_int_eq(h_proc_stop(&late, SIGTERM, 10000), 0);
    h_proc_free(&late);
}
END_TEST

/* The site's state as GET /sites/:id shows it ("" when unknown). */
static void site_state(const char *id, char *out, size_t size)
{
    char path[128];
    h_resp r;

    snprintf(path, sizeof(path), "/sites/%s", id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, access_token, NULL), 200);
    snprintf(out, size, "%s",
             h_jstr(json_object_get(r.json, "status"), "state"));
    h_resp_free(&r);
}

static int wait_site_state(const char *id, const char *want, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    char state[32];

    while (clock_mono_ms() < end) {
        site_state(id, state, sizeof(state));
        if (strcmp(state, want) == 0)
            return 1;
        clock_sleep_ms(100);
    }
    return 0;
}

/* End to end: a site created through the panel's HTTP API runs as a
 * container on this daemon, and its states come back to the panel. */
START_TEST(site_created_through_the_panel_runs)
{
    char body[512], id[64], path[160];
    h_resp r;
    buf out;

    ck_assert_int_eq(h_image_build(), 0);
    snprintf(body, sizeof(body),
             "{\"name\":\"e2e\",\"image\":\"berth-test-busybox:1\","
             "\"node\":\"%s\",\"command\":[\"sleep\",\"3600\"],"
             "\"memoryBytes\":67108864}",
             node_id);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/sites", access_token, body),
                     202);
    snprintf(id, sizeof(id), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    ck_assert_msg(wait_site_state(id, "running", 30000), "site never ran");

    snprintf(path, sizeof(path), "/sites/%s/power", id);
    ck_assert_int_eq(h_call(&panel, &r, "POST", path, access_token,
                            "{\"action\":\"stop\"}"),
                     202);
    h_resp_free(&r);
    ck_assert_msg(wait_site_state(id, "offline", 30000), "site never stopped");

    snprintf(path, sizeof(path), "/sites/%s", id);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, access_token, NULL),
                     202);
    h_resp_free(&r);
    /* The container goes with it. */
    {
        char name[128], cmd[300];
        char *av[] = {"sh", "-c", cmd, NULL};
        int64_t end = clock_mono_ms() + 30000;
        int gone = 0;

        snprintf(name, sizeof(name), "berth-%s", id);
        snprintf(cmd, sizeof(cmd), "docker inspect %s >/dev/null 2>&1", name);
        while (!gone && clock_mono_ms() < end) {
            buf_init(&out, 4096);
            gone = h_run(av, NULL, 0, &out, 10000) != 0;
            buf_free(&out);
            if (!gone)
                clock_sleep_ms(100);
        }
        ck_assert_msg(gone, "container %s still exists", name);
    }
}
END_TEST

START_TEST(sigterm_exits_cleanly)
{
    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 10000), 0);
    ck_assert_int_eq(h_wait_log(log_path, "msg=stopped", 1000), 0);
    /* No heartbeats after the exit: offline soon. */
    ck_assert(wait_online(node_id, 0, 3000));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/daemon_node");
    TCase *tc = tcase_create("daemon_node");

    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, registers_with_specs_and_stays_online);
    tcase_add_test(tc, sigkill_makes_it_offline);
    tcase_add_test(tc, restart_keeps_the_node_id);
    tcase_add_test(tc, nats_restart_registers_again);
    tcase_add_test(tc, panel_started_later);
    tcase_add_test(tc, site_created_through_the_panel_runs);
    tcase_add_test(tc, sigterm_exits_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests share one panel and one daemon data directory. */
UNIT_MAIN_NOFORK(make_suite)
