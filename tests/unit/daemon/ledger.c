/* ledger.c - the daemon's command journal: states survive a reopen, a torn
 * last line is ignored, the journal is compacted to the newest commands,
 * bad ids are refused. */
#include "svc-daemon/ledger.c"

#include <stdlib.h>
#include <sys/stat.h>

#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

static char path[1024];
static char *dir;

static void setup(void)
{
    dir = h_tempdir("ledger");
    snprintf(path, sizeof(path), "%s/commands.log", dir);
}

static void teardown(void)
{
    h_rmtree(dir);
    free(dir);
}

START_TEST(states_survive_reopen)
{
    daemon_ledger *l = NULL;
    daemon_ledger_entry e;
    struct stat st;

    ck_assert_int_eq(daemon_ledger_open(path, 0, &l), 0);
    daemon_ledger_get(l, "a", &e);
    ck_assert_int_eq(e.state, LEDGER_NEW);
    ck_assert_int_eq(daemon_ledger_begin(l, "a", 1000), 0);
    ck_assert_int_eq(daemon_ledger_done(l, "a", 0, NULL), 0);
    ck_assert_int_eq(daemon_ledger_begin(l, "b", 2000), 0);
    ck_assert_int_eq(daemon_ledger_begin(l, "c", 3000), 0);
    ck_assert_int_eq(daemon_ledger_done(l, "c", -3, "no such\nthing"), 0);
    daemon_ledger_close(l);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    ck_assert_int_eq(daemon_ledger_open(path, 0, &l), 0);
    daemon_ledger_get(l, "a", &e);
    ck_assert_int_eq(e.state, LEDGER_DONE);
    ck_assert_int_eq(e.code, 0);
    daemon_ledger_get(l, "b", &e);
    ck_assert_int_eq(e.state, LEDGER_BEGUN);
    ck_assert_int_eq(e.begun_ms, 2000);
    daemon_ledger_get(l, "c", &e);
    ck_assert_int_eq(e.state, LEDGER_DONE);
    ck_assert_int_eq(e.code, -3);
    ck_assert_str_eq(e.message, "no such thing");
    /* Beginning again keeps the first time. */
    ck_assert_int_eq(daemon_ledger_begin(l, "b", 9000), 0);
    daemon_ledger_get(l, "b", &e);
    ck_assert_int_eq(e.begun_ms, 2000);
    daemon_ledger_close(l);
}
END_TEST

START_TEST(torn_last_line_is_ignored)
{
    daemon_ledger *l = NULL;
    daemon_ledger_entry e;
    const char *text = "B x 5\nD x 0 \nB y 6\nD y 0";

    ck_assert_int_eq(fs_write_atomic(path, text, strlen(text), 0600), 0);
    ck_assert_int_eq(daemon_ledger_open(path, 0, &l), 0);
    daemon_ledger_get(l, "x", &e);
    ck_assert_int_eq(e.state, LEDGER_DONE);
    daemon_ledger_get(l, "y", &e);
    ck_assert_int_eq(e.state, LEDGER_BEGUN);
    /* The next line starts clean after the torn one. */
    ck_assert_int_eq(daemon_ledger_done(l, "y", 0, ""), 0);
    daemon_ledger_close(l);
    ck_assert_int_eq(daemon_ledger_open(path, 0, &l), 0);
    daemon_ledger_get(l, "y", &e);
    ck_assert_int_eq(e.state, LEDGER_DONE);
    daemon_ledger_close(l);
}
END_TEST

START_TEST(keeps_the_newest_and_compacts)
{
    daemon_ledger *l = NULL;
    daemon_ledger_entry e;
    char id[32];
    struct stat st;
    int i;

    ck_assert_int_eq(daemon_ledger_open(path, 8, &l), 0);
    for (i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "cmd-%d", i);
        ck_assert_int_eq(daemon_ledger_begin(l, id, i), 0);
        ck_assert_int_eq(daemon_ledger_done(l, id, 0, "ok"), 0);
    }
    daemon_ledger_get(l, "cmd-99", &e);
    ck_assert_int_eq(e.state, LEDGER_DONE);
    daemon_ledger_get(l, "cmd-92", &e);
    ck_assert_int_eq(e.state, LEDGER_DONE);
    daemon_ledger_get(l, "cmd-91", &e);
    ck_assert_int_eq(e.state, LEDGER_NEW);
    daemon_ledger_close(l);
    /* At most 4 x 8 lines plus the last pair. */
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_lt(st.st_size, 34 * 20);
    ck_assert_int_eq(daemon_ledger_open(path, 8, &l), 0);
    daemon_ledger_get(l, "cmd-95", &e);
    ck_assert_int_eq(e.state, LEDGER_DONE);
    daemon_ledger_close(l);
}
END_TEST

START_TEST(bad_ids_are_refused)
{
    daemon_ledger *l = NULL;
    daemon_ledger_entry e;
    char long_id[100];

    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    ck_assert_int_eq(daemon_ledger_open(path, 0, &l), 0);
    ck_assert_int_eq(daemon_ledger_begin(l, "", 1), BERTH_EINVAL);
    ck_assert_int_eq(daemon_ledger_begin(l, "two words", 1), BERTH_EINVAL);
    ck_assert_int_eq(daemon_ledger_begin(l, "new\nline", 1), BERTH_EINVAL);
    ck_assert_int_eq(daemon_ledger_begin(l, long_id, 1), BERTH_EINVAL);
    ck_assert_int_eq(daemon_ledger_done(l, "", 0, NULL), BERTH_EINVAL);
    daemon_ledger_get(l, "two words", &e);
    ck_assert_int_eq(e.state, LEDGER_NEW);
    daemon_ledger_close(l);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("ledger");
    TCase *tc = tcase_create("ledger");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, states_survive_reopen);
    tcase_add_test(tc, torn_last_line_is_ignored);
    tcase_add_test(tc, keeps_the_newest_and_compacts);
    tcase_add_test(tc, bad_ids_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
