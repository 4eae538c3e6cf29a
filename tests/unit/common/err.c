/* err.c - tests of the error table (common/err.c). */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "tests/harness/unit.h"

START_TEST(codes_are_dense_and_named)
{
    int rc;

    /* Every code from -1 down to the last has a name, a message and a
     * status, and names map back to codes. */
    for (rc = -1; strcmp(berth_errname(rc), "EUNKNOWN") != 0; rc--) {
        ck_assert_int_eq(berth_err_from_name(berth_errname(rc)), rc);
        ck_assert_str_ne(berth_strerror(rc), "unknown error");
        ck_assert_int_ge(berth_err_http_status(rc), 400);
    }
    ck_assert_int_le(rc, BERTH_EINTERNAL - 1);
}
END_TEST

START_TEST(specific_codes)
{
    ck_assert_str_eq(berth_errname(0), "OK");
    ck_assert_str_eq(berth_strerror(0), "success");
    ck_assert_str_eq(berth_errname(BERTH_EINVAL), "EINVAL");
    ck_assert_int_eq(berth_err_http_status(BERTH_ENOENT), 404);
    ck_assert_int_eq(berth_err_http_status(BERTH_ETHROTTLE), 429);
    ck_assert_int_eq(berth_err_http_status(BERTH_ETOOBIG), 413);
    ck_assert_int_eq(berth_err_http_status(BERTH_EUNAVAIL), 503);
    ck_assert_int_eq(berth_err_from_name("BERTH_EPERM"), BERTH_EPERM);
    ck_assert_int_eq(berth_err_from_name("ENOPE"), 0);
    ck_assert_int_eq(berth_err_from_name(NULL), 0);
    ck_assert_str_eq(berth_errname(-9999), "EUNKNOWN");
    ck_assert_str_eq(berth_strerror(7), "unknown error");
    ck_assert_int_eq(berth_err_http_status(-9999), 500);
}
END_TEST

START_TEST(errno_mapping)
{
    ck_assert_int_eq(berth_err_from_errno(0), 0);
    ck_assert_int_eq(berth_err_from_errno(ENOENT), BERTH_ENOENT);
    ck_assert_int_eq(berth_err_from_errno(EACCES), BERTH_EPERM);
    ck_assert_int_eq(berth_err_from_errno(EEXIST), BERTH_EEXIST);
    ck_assert_int_eq(berth_err_from_errno(ETIMEDOUT), BERTH_ETIMEDOUT);
    ck_assert_int_eq(berth_err_from_errno(ECONNREFUSED), BERTH_EUNAVAIL);
    ck_assert_int_eq(berth_err_from_errno(EBADF), BERTH_EIO);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("common/err");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, codes_are_dense_and_named);
    tcase_add_test(tc, specific_codes);
    tcase_add_test(tc, errno_mapping);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
