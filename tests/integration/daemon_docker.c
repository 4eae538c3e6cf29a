/* daemon_docker.c - the Docker Engine API driver against the real engine on
 * this machine: version negotiation, engine facts, image lookup, the life of
 * a labelled container (create with limits, start, inspect, list, events,
 * stop, kill, exit codes, remove), hardening seen from inside the
 * container, a missing image and a missing socket.
 *
 * The test image berth-test-busybox:1 is built locally by
 * tests/harness/image.sh (no registry). Every container is named
 * berth-test-... and labelled berth.node=<a node id unique to this run>; the
 * suite's teardown removes whatever carries that label.
 */
#include "svc-daemon/docker.c"
#include "svc-daemon/uhttp.c"
#include "svc-daemon/hijack.c"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/harness/docker.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define TEST_IMAGE H_TEST_IMAGE

static char node_id[64];  /* berth.node of every container this run makes */
static char node_label[96];

static daemon_docker *client(void)
{
    daemon_docker *d = NULL;

    ck_assert_int_eq(daemon_docker_new(NULL, &d), 0);
    return d;
}

/* The repository root, from where h_bin() found build/bin. */
static void suite_setup(void)
{
    snprintf(node_id, sizeof(node_id), "test-%ld-%d", (long)time(NULL),
             (int)getpid());
    snprintf(node_label, sizeof(node_label), "berth.node=%s", node_id);
    h_image_build();
}

/* Removes every container this run labelled, whatever the tests left. */
static void suite_teardown(void)
{
    daemon_docker *d = NULL;
    daemon_docker_summary *items = NULL;
    size_t n = 0, i;

    if (daemon_docker_new(NULL, &d) != 0)
        return;
    if (daemon_docker_container_list(d, node_label, &items, &n, NULL) == 0) {
        for (i = 0; i < n; i++) {
            h_say("removing leftover container %s", items[i].name);
            daemon_docker_container_remove(d, items[i].id, true, true, NULL);
        }
    }
    free(items);
    daemon_docker_free(d);
}

/* A spec for a busybox container of this run; the caller fills cmd. */
static daemon_docker_spec spec_for(const char *name, const char *site,
                                   const char *const *cmd)
{
    daemon_docker_spec s = {
        .name = name,
        .image = TEST_IMAGE,
        .cmd = cmd,
        .site = site,
        .node = node_id,
    };
    return s;
}

static void name_for(char *dst, size_t size, const char *what)
{
    snprintf(dst, size, "berth-test-%s-%s", what, node_id);
}

/* ---------------------------------------------------------------- engine */

START_TEST(test_version_and_info)
{
    daemon_docker *d = client();
    daemon_docker_info info;
    daemon_docker_err err = {0};
    char api[16];
    int major = 0, minor = 0;

    ck_assert_int_eq(daemon_docker_api_version(d, api, &err), 0);
    ck_assert_int_eq(parse_api(api, &major, &minor), 0);
    ck_assert_int_eq(major, 1);
    ck_assert_int_ge(minor, DOCKER_API_MIN_MINOR);
    ck_assert_int_le(minor, DOCKER_API_MAX_MINOR);

    ck_assert_int_eq(daemon_docker_info_get(d, &info, &err), 0);
    ck_assert_str_eq(info.api_version, api);
    ck_assert_str_ne(info.version, "");
    ck_assert_int_gt(info.ncpu, 0);
    ck_assert_int_eq(info.ncpu, (int)sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert_int_gt(info.mem_total, 64LL * 1024 * 1024);
    daemon_docker_free(d);
}
END_TEST

START_TEST(test_image_inspect)
{
    daemon_docker *d = client();
    daemon_docker_err err = {0};

    ck_assert_int_eq(daemon_docker_image_inspect(d, TEST_IMAGE, &err), 0);
    ck_assert_int_eq(
        daemon_docker_image_inspect(d, "berth-test-no-such-image:0", &err),
        BERTH_ENOENT);
    ck_assert_int_eq(err.http_status, 404);
    ck_assert_ptr_nonnull(strstr(err.message, "No such image"));
    daemon_docker_free(d);
}
END_TEST

/* ---------------------------------------------------------------- lifecycle */

/* What the events thread saw for one container. */
typedef struct seen {
    pthread_mutex_t lock;
    char actions[8192]; /* " start:<id> die:<id> ..." */
    int die_code;
    char site[64];
    atomic_bool stop;
    int rc;
    daemon_docker *d;
    int64_t since;
} seen;

static int on_event(const daemon_docker_event *ev, void *arg)
{
    seen *s = arg;
    size_t len;

    /* Every event is kept: the create event may arrive before the test
     * knows the id it is waiting for. */
    pthread_mutex_lock(&s->lock);
    len = strlen(s->actions);
    snprintf(s->actions + len, sizeof(s->actions) - len, " %s:%s", ev->action,
             ev->id);
    if (strcmp(ev->action, "die") == 0) {
        s->die_code = ev->exit_code;
        snprintf(s->site, sizeof(s->site), "%s", ev->site);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void *events_thread(void *arg)
{
    seen *s = arg;

    s->rc = daemon_docker_events(s->d, node_id, s->since, on_event, s, &s->stop,
                                 NULL);
    return NULL;
}

/* Waits until the events thread has seen action for container id. */
static int wait_action(seen *s, const char *action, const char *id,
                       int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    char needle[128];
    int found;

    snprintf(needle, sizeof(needle), " %s:%s", action, id);
    do {
        pthread_mutex_lock(&s->lock);
        found = strstr(s->actions, needle) != NULL;
        pthread_mutex_unlock(&s->lock);
        if (found)
            return 1;
        usleep(20 * 1000);
    } while (clock_mono_ms() < end);
    return 0;
}

START_TEST(test_container_lifecycle)
{
    static const char *const cmd[] = {"sh", "-c", "echo hello; sleep 30", NULL};
    static const char *const env[] = {"BERTH_SITE=blog", "GREETING=hi", NULL};
    static const daemon_docker_port ports[] = {{.container_port = 8080}};
    daemon_docker *d = client();
    daemon_docker_err err = {0};
    daemon_docker_state st;
    daemon_docker_summary *items = NULL;
    daemon_docker_spec spec;
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER, .die_code = -2, .d = d};
    char name[128], id[DAEMON_DOCKER_ID_MAX];
    char *data = h_tempdir("docker-data");
    pthread_t th;
    size_t n = 0, i;
    int found = 0;
    int64_t t0;

    ck_assert_ptr_nonnull(data);
    name_for(name, sizeof(name), "life");
    spec = spec_for(name, "blog", cmd);
    spec.env = env;
    spec.memory_bytes = 64LL * 1024 * 1024;
    spec.nano_cpus = 500000000;
    spec.pids_limit = 32;
    spec.ports = ports;
    spec.nports = 1;
    spec.data_dir = data;

    /* Events from a second before creation on: nothing can be missed. */
    s.since = (int64_t)time(NULL) - 1;
    ck_assert_int_eq(pthread_create(&th, NULL, events_thread, &s), 0);

    ck_assert_int_eq(daemon_docker_container_create(d, &spec, id, &err), 0);
    ck_assert_uint_eq(strlen(id), 64);
    /* Same name again: already in use. */
    {
        char id2[DAEMON_DOCKER_ID_MAX];
        ck_assert_int_eq(daemon_docker_container_create(d, &spec, id2, &err),
                         BERTH_EEXIST);
    }

    ck_assert_int_eq(daemon_docker_container_inspect(d, id, &st, &err), 0);
    ck_assert_str_eq(st.status, "created");
    ck_assert(!st.running);

    ck_assert_int_eq(daemon_docker_container_start(d, id, &err), 0);
    ck_assert_int_eq(daemon_docker_container_start(d, name, &err), 0); /* 304 */
    ck_assert_int_eq(daemon_docker_container_inspect(d, name, &st, &err), 0);
    ck_assert_str_eq(st.id, id);
    ck_assert_str_eq(st.name, name);
    ck_assert_str_eq(st.site, "blog");
    ck_assert_str_eq(st.status, "running");
    ck_assert(st.running);
    ck_assert_int_gt(st.pid, 0);
    ck_assert_str_ne(st.started_at, "");

    ck_assert_int_eq(daemon_docker_container_list(d, node_label, &items, &n, &err),
                     0);
    for (i = 0; i < n; i++) {
        if (strcmp(items[i].id, id) == 0) {
            found = 1;
            ck_assert_str_eq(items[i].name, name);
            ck_assert_str_eq(items[i].site, "blog");
            ck_assert_str_eq(items[i].state, "running");
        }
    }
    free(items);
    ck_assert_int_eq(found, 1);
    ck_assert(wait_action(&s, "start", id, 5000));

    /* docker-init is pid 1 and forwards SIGTERM: sh ends at once, long
     * before the 5 s timeout, killed by the signal. */
    t0 = clock_mono_ms();
    ck_assert_int_eq(daemon_docker_container_stop(d, id, 5, &err), 0);
    ck_assert_int_lt(clock_mono_ms() - t0, 4000);
    ck_assert_int_eq(daemon_docker_container_inspect(d, id, &st, &err), 0);
    ck_assert_str_eq(st.status, "exited");
    ck_assert(!st.running);
    ck_assert_int_eq(st.pid, 0);
    ck_assert_int_eq(st.exit_code, 143); /* 128 + SIGTERM */
    ck_assert(!st.oom_killed);
    ck_assert_str_ne(st.finished_at, "");
    ck_assert(wait_action(&s, "die", id, 5000));
    pthread_mutex_lock(&s.lock);
    ck_assert_int_eq(s.die_code, 143);
    ck_assert_str_eq(s.site, "blog");
    pthread_mutex_unlock(&s.lock);
    ck_assert_int_eq(daemon_docker_container_stop(d, id, 1, &err), 0); /* 304 */

    /* Restart, then kill with a signal sh does not ignore. */
    ck_assert_int_eq(daemon_docker_container_restart(d, id, 1, &err), 0);
    ck_assert_int_eq(daemon_docker_container_inspect(d, id, &st, &err), 0);
    ck_assert(st.running);
    ck_assert_int_eq(daemon_docker_container_kill(d, id, SIGKILL, &err), 0);
    {
        int code = 0;
        ck_assert_int_eq(daemon_docker_container_wait(d, id, 10000, &code, &err),
                         0);
        ck_assert_int_eq(code, 137);
    }
    ck_assert_int_eq(daemon_docker_container_kill(d, id, SIGKILL, &err),
                     BERTH_ECONFLICT);
    ck_assert_int_eq(err.http_status, 409);
    ck_assert_ptr_nonnull(strstr(err.message, "not running"));

    ck_assert_int_eq(daemon_docker_container_remove(d, id, true, true, &err), 0);
    ck_assert(wait_action(&s, "destroy", id, 5000));
    ck_assert_int_eq(daemon_docker_container_inspect(d, id, &st, &err),
                     BERTH_ENOENT);
    ck_assert_int_eq(daemon_docker_container_remove(d, id, true, true, &err),
                     BERTH_ENOENT);

    atomic_store(&s.stop, true);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert(wait_action(&s, "create", id, 0));
    h_tempdir_drop(data, "docker data");
    daemon_docker_free(d);
}
END_TEST

START_TEST(test_exit_code)
{
    static const char *const cmd[] = {"sh", "-c", "exit 3", NULL};
    daemon_docker *d = client();
    daemon_docker_err err = {0};
    daemon_docker_spec spec;
    daemon_docker_state st;
    char name[128], id[DAEMON_DOCKER_ID_MAX];
    int code = -1;

    name_for(name, sizeof(name), "exit3");
    spec = spec_for(name, "exit3", cmd);
    ck_assert_int_eq(daemon_docker_container_create(d, &spec, id, &err), 0);
    ck_assert_int_eq(daemon_docker_container_start(d, id, &err), 0);
    ck_assert_int_eq(daemon_docker_container_wait(d, id, 10000, &code, &err), 0);
    ck_assert_int_eq(code, 3);
    ck_assert_int_eq(daemon_docker_container_inspect(d, id, &st, &err), 0);
    ck_assert_str_eq(st.status, "exited");
    ck_assert_int_eq(st.exit_code, 3);
    ck_assert_int_eq(daemon_docker_container_remove(d, id, false, true, &err), 0);
    daemon_docker_free(d);
}
END_TEST

/* The hardening is checked from inside: no capabilities, no new privileges,
 * a read-only root with a writable /tmp, and /data writable. */
START_TEST(test_hardening)
{
    static const char *const cmd[] = {
        "sh", "-c",
        "touch /x 2>/dev/null && exit 10;"
        "grep -q 'CapEff:.0000000000000000' /proc/self/status || exit 11;"
        "grep -q 'NoNewPrivs:.1' /proc/self/status || exit 12;"
        "echo ok > /data/ok || exit 13;"
        "touch /tmp/t || exit 14;"
        "[ \"$GREETING\" = hi ] || exit 15;"
        "exit 0",
        NULL};
    static const char *const env[] = {"GREETING=hi", NULL};
    daemon_docker *d = client();
    daemon_docker_err err = {0};
    daemon_docker_spec spec;
    char name[128], id[DAEMON_DOCKER_ID_MAX], path[PATH_MAX];
    char *data = h_tempdir("docker-data");
    int code = -1;

    ck_assert_ptr_nonnull(data);
    name_for(name, sizeof(name), "hard");
    spec = spec_for(name, "hard", cmd);
    spec.env = env;
    spec.data_dir = data;
    spec.readonly_rootfs = true;
    ck_assert_int_eq(daemon_docker_container_create(d, &spec, id, &err), 0);
    ck_assert_int_eq(daemon_docker_container_start(d, id, &err), 0);
    ck_assert_int_eq(daemon_docker_container_wait(d, id, 10000, &code, &err), 0);
    ck_assert_int_eq(code, 0);
    snprintf(path, sizeof(path), "%s/ok", data);
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_eq(daemon_docker_container_remove(d, id, true, true, &err), 0);
    h_tempdir_drop(data, "docker data");
    daemon_docker_free(d);
}
END_TEST

/* ---------------------------------------------------------------- failures */

START_TEST(test_missing_image)
{
    static const char *const cmd[] = {"sh", NULL};
    daemon_docker *d = client();
    daemon_docker_err err = {0};
    daemon_docker_spec spec;
    daemon_docker_state st;
    char name[128], id[DAEMON_DOCKER_ID_MAX];

    name_for(name, sizeof(name), "noimage");
    spec = spec_for(name, "noimage", cmd);
    spec.image = "berth-test-no-such-image:0";
    ck_assert_int_eq(daemon_docker_container_create(d, &spec, id, &err),
                     BERTH_ENOENT);
    ck_assert_str_eq(id, "");
    ck_assert_int_eq(err.http_status, 404);
    ck_assert_ptr_nonnull(strstr(err.message, "No such image"));
    ck_assert_int_eq(daemon_docker_container_inspect(d, name, &st, &err),
                     BERTH_ENOENT);

    /* Bad arguments never reach Docker. */
    spec.image = TEST_IMAGE;
    spec.name = "berth-test-bad/name";
    ck_assert_int_eq(daemon_docker_container_create(d, &spec, id, &err),
                     BERTH_EINVAL);
    ck_assert_int_eq(daemon_docker_container_start(d, "../../x", &err),
                     BERTH_EINVAL);
    daemon_docker_free(d);
}
END_TEST

START_TEST(test_missing_socket)
{
    daemon_docker *d = NULL;
    daemon_docker_err err = {0};
    daemon_docker_info info;
    char *dir = h_tempdir("docker-sock");
    char sock[PATH_MAX], api[16];
    int64_t t0;

    ck_assert_ptr_nonnull(dir);
    snprintf(sock, sizeof(sock), "%s/docker.sock", dir);
    ck_assert_int_eq(daemon_docker_new(&(daemon_docker_cfg){.sock_path = sock},
                                       &d),
                     0);
    t0 = clock_mono_ms();
    ck_assert_int_eq(daemon_docker_info_get(d, &info, &err), BERTH_EUNAVAIL);
    ck_assert_int_lt(clock_mono_ms() - t0, 1000);
    ck_assert_ptr_nonnull(strstr(err.message, "unavailable"));
    ck_assert_ptr_nonnull(strstr(err.message, sock));
    ck_assert_int_eq(daemon_docker_events(d, node_id, 0, on_event, NULL, NULL,
                                          &err),
                     BERTH_EUNAVAIL);
    ck_assert_int_eq(daemon_docker_container_start(d, "berth-test-x", &err),
                     BERTH_EUNAVAIL);

    /* The engine appears at that path: the next call simply works. */
    ck_assert_int_eq(symlink(DAEMON_DOCKER_SOCK_DEFAULT, sock), 0);
    ck_assert_int_eq(daemon_docker_api_version(d, api, &err), 0);
    ck_assert_int_eq(daemon_docker_info_get(d, &info, &err), 0);
    ck_assert_int_gt(info.ncpu, 0);

    /* And disappears again. */
    ck_assert_int_eq(unlink(sock), 0);
    ck_assert_int_eq(daemon_docker_image_inspect(d, TEST_IMAGE, &err),
                     BERTH_EUNAVAIL);
    daemon_docker_free(d);
    h_tempdir_drop(dir, "docker socket");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_docker");
    TCase *tc = tcase_create("docker");

    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_version_and_info);
    tcase_add_test(tc, test_image_inspect);
    tcase_add_test(tc, test_container_lifecycle);
    tcase_add_test(tc, test_exit_code);
    tcase_add_test(tc, test_hardening);
    tcase_add_test(tc, test_missing_image);
    tcase_add_test(tc, test_missing_socket);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
