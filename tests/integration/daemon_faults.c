/* daemon_faults.c - the real berth-daemon when Docker goes away: it reaches
 * the real Docker Engine through a unix-socket relay in this test, which
 * the test cuts (every connection closed, nothing listening) and restores.
 * A command sent meanwhile waits and is done once Docker answers again; a
 * container that died while Docker was out of reach is noticed when the
 * daemon resynchronises; the daemon never exits.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "node.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/docker.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define TEST_IMAGE  H_TEST_IMAGE
#define DOCKER_SOCK "/var/run/docker.sock"
#define MAX_CONNS   256

/* ------------------------------------------------------------ relay */

static struct {
    pthread_mutex_t mu;
    char path[100]; /* fits sun_path */
    int listen_fd; /* -1 while cut */
    int fds[MAX_CONNS]; /* both ends of every relayed connection */
    int nfds;
    pthread_t thread;
    int stop;
} relay = {.mu = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1};

static void relay_track(int fd)
{
    pthread_mutex_lock(&relay.mu);
    if (relay.nfds < MAX_CONNS)
        relay.fds[relay.nfds++] = fd;
    pthread_mutex_unlock(&relay.mu);
}

static void relay_untrack(int fd)
{
    int i;

    pthread_mutex_lock(&relay.mu);
    for (i = 0; i < relay.nfds; i++) {
        if (relay.fds[i] == fd) {
            relay.fds[i] = relay.fds[--relay.nfds];
            break;
        }
    }
    pthread_mutex_unlock(&relay.mu);
}

/* Copies bytes both ways until either side closes. */
static void *pump(void *arg)
{
    int *pair = arg;
    struct pollfd p[2] = {{pair[0], POLLIN, 0}, {pair[1], POLLIN, 0}};
    char data[65536];
    ssize_t n;
    int i;

    for (;;) {
        if (poll(p, 2, 1000) < 0 && errno != EINTR)
            break;
        for (i = 0; i < 2; i++) {
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                n = read(p[i].fd, data, sizeof(data));
                if (n <= 0 || write(p[1 - i].fd, data, (size_t)n) != n)
                    goto out;
            }
        }
    }
out:
    relay_untrack(pair[0]);
    relay_untrack(pair[1]);
    close(pair[0]);
    close(pair[1]);
    free(pair);
    return NULL;
}

static int unix_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *relay_main(void *arg)
{
    struct pollfd p;
    pthread_t t;
    int fd, up, *pair;

    (void)arg;
    while (!relay.stop) {
        pthread_mutex_lock(&relay.mu);
        p.fd = relay.listen_fd;
        pthread_mutex_unlock(&relay.mu);
        if (p.fd < 0) {
            clock_sleep_ms(20);
            continue;
        }
        p.events = POLLIN;
        if (poll(&p, 1, 50) <= 0 || !(p.revents & POLLIN))
            continue;
        fd = accept4(p.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        up = unix_connect(DOCKER_SOCK);
        if (up < 0) {
            close(fd);
            continue;
        }
        pair = malloc(2 * sizeof(int));
        pair[0] = fd;
        pair[1] = up;
        relay_track(fd);
        relay_track(up);
        pthread_create(&t, NULL, pump, pair);
        pthread_detach(t);
    }
    return NULL;
}

static void relay_up(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    unlink(relay.path);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", relay.path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    pthread_mutex_lock(&relay.mu);
    relay.listen_fd = fd;
    pthread_mutex_unlock(&relay.mu);
}

/* Docker is gone: nothing listens, every open connection is cut. */
static void relay_cut(void)
{
    int i;

    pthread_mutex_lock(&relay.mu);
    close(relay.listen_fd);
    relay.listen_fd = -1;
    unlink(relay.path);
    for (i = 0; i < relay.nfds; i++)
        shutdown(relay.fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&relay.mu);
}

/* ------------------------------------------------------------ the panel's side */

static h_nats nats;
static bus *b;
static char *tmp;
static char data_dir[1024], log_path[1100];
static char node_id[ID_UUID_LEN + 1];
static h_proc dproc;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char last_result[ID_UUID_LEN + 1];
static int last_ok;
static unsigned seen_states; /* bit per SiteState seen since the reset */

static int on_sync(bus_msg *m, void *ud)
{
    (void)m, (void)ud;
    return BERTH_EUNAVAIL; /* the panel is busy: local state rules */
}

static int on_result(bus_msg *m, void *ud)
{
    const Berth__V1__CommandResult *r = (const void *)m->msg;

    (void)ud;
    pthread_mutex_lock(&mu);
    snprintf(last_result, sizeof(last_result), "%s", r->command_id);
    last_ok = r->ok;
    pthread_mutex_unlock(&mu);
    return 0;
}

static int on_status(bus_msg *m, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&mu);
    seen_states |= 1u << ((const Berth__V1__SiteStatus *)(const void *)m->msg)->state;
    pthread_mutex_unlock(&mu);
    return 0;
}

static int wait_result(const char *cid, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int done = 0;

    while (!done && clock_mono_ms() < end) {
        pthread_mutex_lock(&mu);
        done = strcmp(last_result, cid) == 0;
        pthread_mutex_unlock(&mu);
        if (!done)
            clock_sleep_ms(20);
    }
    return done;
}

static int wait_state(int state, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int done = 0;

    while (!done && clock_mono_ms() < end) {
        pthread_mutex_lock(&mu);
        done = (seen_states & (1u << state)) != 0;
        pthread_mutex_unlock(&mu);
        if (!done)
            clock_sleep_ms(20);
    }
    return done;
}

static void forget_states(void)
{
    pthread_mutex_lock(&mu);
    seen_states = 0;
    pthread_mutex_unlock(&mu);
}

static void send_power(const char *site, int action, char cid[ID_UUID_LEN + 1])
{
    Berth__V1__SitePower p = BERTH__V1__SITE_POWER__INIT;
    char subject[160];

    ck_assert_int_eq(id_uuid(cid), 0);
    p.command_id = cid;
    p.site_id = (char *)site;
    p.action = action;
    snprintf(subject, sizeof(subject), "site.power.%s", node_id);
    ck_assert_int_eq(bus_js_publish(b, subject, &p.base, cid, 5000), 0);
}

static void docker_cli(const char *verb, const char *name)
{
    char *argv[] = {"docker", (char *)verb, (char *)name, NULL};

    buf out;

    buf_init(&out, 64 * 1024);
    h_run(argv, NULL, 0, &out, 60000);
    buf_free(&out);
}

static void start_daemon(void)
{
    char nats_env[256], data[1100], sock[300];
    char *argv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *env[] = {nats_env, data, sock, "BERTH_STRICT_SUBJECTS=1",
                   "BERTH_LOG_LEVEL=debug", NULL};

    snprintf(nats_env, sizeof(nats_env), "BERTH_NATS_URL=%s", nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", data_dir);
    snprintf(sock, sizeof(sock), "BERTH_DOCKER_SOCK=%s", relay.path);
    ck_assert_int_eq(h_proc_start(&dproc, "daemon", argv, env, log_path), 0);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=ready", 15000), 0);
}

START_TEST(docker_away_and_back)
{
    char idfile[1200], subject[160], cid[ID_UUID_LEN + 1];
    char site[ID_UUID_LEN + 1], name[128];
    Berth__V1__SiteCreate c = BERTH__V1__SITE_CREATE__INIT;
    Berth__V1__SiteSpec spec = BERTH__V1__SITE_SPEC__INIT;
    char *cmd[] = {"sleep", "3600"};
    char *text = NULL;
    size_t len = 0;
    pthread_t rt;
    buf out;

    ck_assert_int_eq(h_image_build(), 0);
    tmp = h_tempdir("daemon-faults");
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    ck_assert_int_lt(snprintf(relay.path, sizeof(relay.path), "%s/docker.sock",
                              tmp),
                     (int)sizeof(relay.path));
    ck_assert_int_eq(fs_mkdirs(data_dir, 0700), 0);
    relay_up();
    pthread_create(&rt, NULL, relay_main, NULL);

    ck_assert_int_eq(h_nats_start(&nats), 0);
    b = h_bus_open(nats.url, "berth-panel");
    ck_assert_int_eq(bus_js_setup(b), 0);
    ck_assert_int_eq(h_fake_panel(b, on_sync, NULL), 0);
    start_daemon();
    snprintf(idfile, sizeof(idfile), "%s/node.id", data_dir);
    ck_assert_int_eq(fs_read_file(idfile, 100, &text, &len), 0);
    snprintf(node_id, sizeof(node_id), "%s", text);
    free(text);
    snprintf(subject, sizeof(subject), "command.result.%s", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_result, NULL), 0);
    snprintf(subject, sizeof(subject), "site.status.%s.*", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_status, NULL), 0);

    /* A running site. */
    ck_assert_int_eq(id_uuid(site), 0);
    ck_assert_int_eq(id_uuid(cid), 0);
    snprintf(name, sizeof(name), "berth-%s", site);
    spec.id = site;
    spec.name = "faults";
    spec.node_id = node_id;
    spec.image = TEST_IMAGE;
    spec.command = cmd;
    spec.n_command = 2;
    c.command_id = cid;
    c.spec = &spec;
    c.start = 1;
    snprintf(subject, sizeof(subject), "site.create.%s", node_id);
    ck_assert_int_eq(bus_js_publish(b, subject, &c.base, cid, 5000), 0);
    ck_assert(wait_result(cid, 30000));
    ck_assert(last_ok);
    ck_assert(wait_state(BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, 20000));

    /* Docker goes away. A stop sent now waits for it. */
    relay_cut();
    forget_states();
    ck_assert_int_eq(
        h_wait_log(log_path, "docker events stream ended", 10000), 0);
    send_power(site, BERTH__V1__POWER_ACTION__POWER_ACTION_STOP, cid);
    ck_assert(!wait_result(cid, 3000));
    ck_assert(h_proc_alive(&dproc));
    relay_up();
    ck_assert_msg(wait_result(cid, 30000), "the stop never finished");
    ck_assert(last_ok);
    ck_assert(wait_state(BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, 20000));

    /* Started again, then it dies while Docker is out of reach: the
     * daemon finds out when Docker answers again. */
    send_power(site, BERTH__V1__POWER_ACTION__POWER_ACTION_START, cid);
    ck_assert(wait_result(cid, 30000));
    ck_assert(wait_state(BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, 20000));
    relay_cut();
    forget_states();
    docker_cli("kill", name);
    clock_sleep_ms(1000);
    relay_up();
    ck_assert_int_eq(h_wait_log(log_path, "docker is back", 15000), 0);
    ck_assert_msg(wait_state(BERTH__V1__SITE_STATE__SITE_STATE_CRASHED, 20000),
                  "the death while docker was away went unnoticed");
    ck_assert(h_proc_alive(&dproc));

    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 15000), 0);
    h_proc_free(&dproc);
    {
        char *av[] = {"docker", "rm", "-f", name, NULL};
        buf_init(&out, 4096);
        h_run(av, NULL, 0, &out, 30000);
        buf_free(&out);
    }
    relay.stop = 1;
    pthread_join(rt, NULL);
    bus_close(b);
    h_nats_stop(&nats);
    h_tempdir_drop(tmp, "daemon-faults");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_faults");
    TCase *tc = tcase_create("faults");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, docker_away_and_back);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
