/* misc.c - tests of ids, clocks and state files (common/id.c, clock.c,
 * fs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "tests/harness/unit.h"

START_TEST(uuids)
{
    char a[ID_UUID_LEN + 1], b[ID_UUID_LEN + 1];

    ck_assert_int_eq(id_uuid(a), 0);
    ck_assert_int_eq(id_uuid(b), 0);
    ck_assert_uint_eq(strlen(a), ID_UUID_LEN);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(a[14], '4');
    ck_assert_ptr_nonnull(strchr("89ab", a[19]));
    ck_assert_int_eq(id_uuid_valid(a), 1);
    ck_assert_int_eq(id_uuid_valid("6F9619FF-8B86-D011-B42D-00C04FC964FF"), 1);
    ck_assert_int_eq(id_uuid_valid("6F9619FF-8B86-D011-B42D-00C04FC964F"), 0);
    ck_assert_int_eq(id_uuid_valid("6F9619FF-8B86-D011-B42D-00C04FC964FFF"), 0);
    ck_assert_int_eq(id_uuid_valid("6F9619FFx8B86-D011-B42D-00C04FC964FF"), 0);
    ck_assert_int_eq(id_uuid_valid("zF9619FF-8B86-D011-B42D-00C04FC964FF"), 0);
    ck_assert_int_eq(id_uuid_valid(NULL), 0);
}
END_TEST

START_TEST(clocks)
{
    char ts[40];
    int64_t t0 = clock_mono_ms();

    clock_sleep_ms(20);
    ck_assert_int_ge(clock_mono_ms() - t0, 20);
    ck_assert_int_gt(clock_wall_ms(), 1700000000000LL);
    clock_fmt_rfc3339(ts, sizeof(ts), 1795320601123LL);
    ck_assert_str_eq(ts, "2026-11-22T04:10:01.123Z");
    clock_fmt_rfc3339(ts, sizeof(ts), 0);
    ck_assert_str_eq(ts, "1970-01-01T00:00:00.000Z");
}
END_TEST

static int gen_fixed(void *data, size_t len)
{
    memset(data, 'k', len);
    return 0;
}

START_TEST(files)
{
    char dir[] = "/tmp/berth-fs-XXXXXX";
    char path[256];
    char *data = NULL;
    size_t len = 0;
    struct stat st;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    ck_assert_int_eq(fs_mkdirs(path, 0700), 0);
    ck_assert_int_eq(fs_mkdirs(path, 0700), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));

    snprintf(path, sizeof(path), "%s/a/file", dir);
    ck_assert_int_eq(fs_write_atomic(path, "hello", 5, 0640), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    ck_assert_int_eq(fs_read_file(path, 100, &data, &len), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_str_eq(data, "hello");
    free(data);
    ck_assert_int_eq(fs_read_file(path, 4, &data, &len), BERTH_ETOOBIG);
    ck_assert_int_eq(fs_read_file("/nonexistent/x", 4, &data, &len),
                     BERTH_ENOENT);

    /* A secret is generated once, kept 0600 and read back unchanged. */
    snprintf(path, sizeof(path), "%s/secret", dir);
    ck_assert_int_eq(fs_secret(path, 32, gen_fixed, &data, &len), 0);
    ck_assert_uint_eq(len, 32);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    free(data);
    ck_assert_int_eq(fs_secret(path, 32, NULL, &data, &len), 0);
    ck_assert_int_eq(data[0], 'k');
    free(data);
    /* Wider permissions are refused. */
    chmod(path, 0644);
    ck_assert_int_eq(fs_secret(path, 32, gen_fixed, &data, &len), BERTH_EPERM);

    snprintf(path, sizeof(path), "rm -rf %s", dir);
    ck_assert_int_eq(system(path), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("common/misc");
    TCase *tc = tcase_create("misc");

    tcase_add_test(tc, uuids);
    tcase_add_test(tc, clocks);
    tcase_add_test(tc, files);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
