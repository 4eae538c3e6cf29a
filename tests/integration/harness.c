/* harness.c - checks that the integration-test harness itself works:
 * nats-server start / restart / stop (JetStream data kept across the
 * restart), h_run output capture, a 1 MiB stdin round trip, timeouts, and
 * h_proc start, log waits and stop statuses.
 */
#include "tests/harness/harness.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "tests/harness/unit.h"

#define MiB (1024 * 1024)

/* Runs the nats CLI against url with args (NULL-terminated, at most 12).
 * Returns its exit status or a berth code; output goes to out. */
static int nats_cli(const char *url, buf *out, const char *const args[])
{
    char *argv[16];
    int i = 0;
    int j;

    argv[i++] = (char *)h_nats_cli();
    argv[i++] = "--server";
    argv[i++] = (char *)url;
    for (j = 0; args[j] != NULL && i < 15; j++)
        argv[i++] = (char *)args[j];
    argv[i] = NULL;
    return h_run(argv, NULL, 0, out, 20000);
}

START_TEST(test_nats_start_restart_stop)
{
    h_nats n;
    char dir[PATH_MAX];
    int port;
    buf out;
    struct stat st;

    buf_init(&out, MiB);
    ck_assert_int_eq(h_nats_start(&n), 0);
    ck_assert_int_gt(n.port, 0);
    ck_assert_ptr_nonnull(n.dir);
    ck_assert_int_eq(h_wait_port(n.port, 1000), 0);
    ck_assert_int_eq(h_proc_alive(&n.proc), 1);
    snprintf(dir, sizeof(dir), "nats://127.0.0.1:%d", n.port);
    ck_assert_str_eq(n.url, dir);

    /* JetStream data must survive a restart: a file-backed stream made
     * before it must still be there after. Needs the nats CLI. */
    if (h_nats_cli() != NULL) {
        const char *add[] = {"stream", "add", "HTEST", "--subjects", "htest.>",
                             "--storage", "file", "--defaults", NULL};
        const char *pub[] = {"pub", "htest.a", "persisted", "--jetstream",
                             NULL};

        ck_assert_msg(nats_cli(n.url, &out, add) == 0, "stream add: %s",
                      out.data ? out.data : "");
        buf_reset(&out);
        ck_assert_msg(nats_cli(n.url, &out, pub) == 0, "pub: %s",
                      out.data ? out.data : "");
        buf_reset(&out);
    }

    port = n.port;
    snprintf(dir, sizeof(dir), "%s", n.dir);
    ck_assert_int_eq(h_nats_restart(&n), 0);
    ck_assert_int_eq(n.port, port);
    ck_assert_str_eq(n.dir, dir);
    ck_assert_int_eq(h_wait_port(n.port, 1000), 0);

    if (h_nats_cli() != NULL) {
        const char *info[] = {"stream", "info", "HTEST", "--json", NULL};

        ck_assert_msg(nats_cli(n.url, &out, info) == 0, "stream info: %s",
                      out.data ? out.data : "");
        ck_assert_msg(strstr(out.data, "\"messages\": 1") != NULL,
                      "stream lost its message: %s", out.data);
    }

    h_nats_stop(&n);
    ck_assert_int_eq(n.port, 0);
    ck_assert_ptr_null(n.dir);
    ck_assert_int_ne(stat(dir, &st), 0);
    buf_free(&out);
}
END_TEST

START_TEST(test_run_echo)
{
    char *const argv[] = {"/bin/echo", "hi", NULL};
    char *const sh[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3",
                        NULL};
    buf out;
    buf err;

    buf_init(&out, 1024);
    buf_init(&err, 1024);
    ck_assert_int_eq(h_run(argv, NULL, 0, &out, 5000), 0);
    ck_assert_str_eq(out.data, "hi\n");

    buf_reset(&out);
    ck_assert_int_eq(h_run(sh, NULL, 0, &out, 5000), 3);
    ck_assert_str_eq(out.data, "out\nerr\n");

    buf_reset(&out);
    ck_assert_int_eq(h_run2(sh, NULL, 0, &out, &err, 5000), 3);
    ck_assert_str_eq(out.data, "out\n");
    ck_assert_str_eq(err.data, "err\n");
    buf_free(&out);
    buf_free(&err);
}
END_TEST

START_TEST(test_run_cat_1mib)
{
    char *const argv[] = {"/bin/cat", NULL};
    char *in = malloc(MiB);
    buf out;
    size_t i;

    ck_assert_ptr_nonnull(in);
    for (i = 0; i < MiB; i++)
        in[i] = (char)('a' + i % 26);
    buf_init(&out, 2 * MiB);
    ck_assert_int_eq(h_run(argv, in, MiB, &out, 10000), 0);
    ck_assert_uint_eq(out.len, MiB);
    ck_assert(memcmp(out.data, in, MiB) == 0);

    /* Output past the cap is drained and reported, not a deadlock. */
    buf_free(&out);
    buf_init(&out, 1000);
    ck_assert_int_eq(h_run(argv, in, MiB, &out, 10000), BERTH_ETOOBIG);
    buf_free(&out);
    free(in);
}
END_TEST

START_TEST(test_run_stdin_ignored)
{
    /* The child exits without reading: EPIPE, not SIGPIPE for the test. */
    char *const argv[] = {"/bin/true", NULL};
    char *in = calloc(1, MiB);

    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(h_run(argv, in, MiB, NULL, 5000), 0);
    free(in);
}
END_TEST

START_TEST(test_run_timeout)
{
    char *const argv[] = {"sleep", "10", NULL};
    char *const missing[] = {"/nonexistent/berth-nothing", NULL};
    int64_t t0 = clock_mono_ms();

    ck_assert_int_eq(h_run(argv, NULL, 0, NULL, 300), BERTH_ETIMEDOUT);
    ck_assert_int_lt(clock_mono_ms() - t0, 2000);
    ck_assert_int_eq(h_run(missing, NULL, 0, NULL, 300), BERTH_ENOENT);
}
END_TEST

START_TEST(test_proc_lifecycle)
{
    char *dir = h_tempdir("proc");
    char log[512];
    char *const env[] = {"BERTH_HTEST=bar", NULL};
    char *const ready[] = {
        "/bin/sh", "-c", "echo \"msg=ready v=$BERTH_HTEST\"; exec sleep 30",
        NULL};
    char *const stubborn[] = {"/bin/sh", "-c",
                              "trap '' TERM; echo msg=ready; "
                              "while :; do sleep 0.05; done",
                              NULL};
    char *const quitter[] = {"/bin/sh", "-c", "echo dying; exit 7", NULL};
    h_proc p;
    int64_t t0;

    ck_assert_ptr_nonnull(dir);
    snprintf(log, sizeof(log), "%s/p.log", dir);

    ck_assert_int_eq(h_proc_start(&p, "ready", ready, env, log), 0);
    ck_assert_int_eq(h_proc_wait_log(&p, "msg=ready v=bar", 5000), 0);
    ck_assert_int_eq(h_proc_alive(&p), 1);
    ck_assert_int_eq(h_proc_stop(&p, SIGTERM, 5000), 128 + SIGTERM);
    ck_assert_int_eq(h_proc_alive(&p), 0);
    ck_assert_int_eq(h_proc_stop(&p, SIGTERM, 5000), 128 + SIGTERM);
    h_proc_free(&p);

    /* The same log again: only this run's lines count. */
    ck_assert_int_eq(h_proc_start(&p, "stubborn", stubborn, NULL, log), 0);
    ck_assert_int_eq(h_proc_wait_log(&p, "msg=ready", 5000), 0);
    ck_assert_int_eq(h_proc_wait_log(&p, "v=bar", 100), BERTH_ETIMEDOUT);
    t0 = clock_mono_ms();
    ck_assert_int_eq(h_proc_stop(&p, SIGTERM, 300), H_PROC_KILLED);
    ck_assert_int_lt(clock_mono_ms() - t0, 3000);
    h_proc_free(&p);

    ck_assert_int_eq(h_proc_start(&p, "quitter", quitter, NULL, log), 0);
    ck_assert_int_eq(h_proc_wait_log(&p, "never", 5000), BERTH_EUNAVAIL);
    ck_assert_int_eq(h_proc_wait(&p, 1000), 7);
    h_proc_free(&p);

    ck_assert_int_eq(h_proc_start(&p, "gone", (char *const[]){"no-such-berth-"
                                                               "binary",
                                                               NULL},
                                  NULL, NULL),
                     BERTH_ENOENT);
    h_proc_free(&p);

    ck_assert_int_eq(h_wait_log(log, "dying", 1000), 0);
    h_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_paths)
{
    const char *a = h_bin("berth-panel");
    const char *b = h_bin("berth-edge");
    int port = h_free_port();

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(strstr(a, "build/bin/berth-panel"));
    ck_assert_ptr_nonnull(strstr(b, "build/bin/berth-edge"));
    ck_assert_ptr_eq(a, h_bin("berth-panel"));
    ck_assert_int_gt(port, 0);
    ck_assert_int_eq(h_wait_port(port, 100), BERTH_ETIMEDOUT);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("harness");
    TCase *tc = tcase_create("harness");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nats_start_restart_stop);
    tcase_add_test(tc, test_run_echo);
    tcase_add_test(tc, test_run_cat_1mib);
    tcase_add_test(tc, test_run_stdin_ignored);
    tcase_add_test(tc, test_run_timeout);
    tcase_add_test(tc, test_proc_lifecycle);
    tcase_add_test(tc, test_paths);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
