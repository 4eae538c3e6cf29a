/* buf.c - tests of capped buffers (common/buf.c). */
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "tests/harness/unit.h"

START_TEST(append_and_cap)
{
    buf b;
    int i;

    buf_init(&b, 10);
    ck_assert_int_eq(buf_puts(&b, "hello"), 0);
    ck_assert_int_eq(buf_putc(&b, ' '), 0);
    ck_assert_int_eq(buf_puts(&b, "world"), BERTH_ETOOBIG);
    /* A refused append leaves the content as it was. */
    ck_assert_uint_eq(b.len, 6);
    ck_assert_str_eq(b.data, "hello ");
    ck_assert_int_eq(buf_puts(&b, "wor"), 0);
    ck_assert_int_eq(buf_putc(&b, 'l'), 0);
    ck_assert_uint_eq(b.len, 10);
    ck_assert_int_eq(buf_putc(&b, 'd'), BERTH_ETOOBIG);
    ck_assert_str_eq(b.data, "hello worl");
    buf_free(&b);
    ck_assert_ptr_null(b.data);

    buf_init(&b, 1 << 20);
    for (i = 0; i < 100000; i++)
        ck_assert_int_eq(buf_append(&b, "0123456789", 10), 0);
    ck_assert_uint_eq(b.len, 1000000);
    ck_assert_int_eq(memcmp(b.data + 999990, "0123456789", 10), 0);
    buf_free(&b);
}
END_TEST

START_TEST(printf_and_cap)
{
    buf b;

    buf_init(&b, 16);
    ck_assert_int_eq(buf_printf(&b, "%d-%s", 42, "x"), 0);
    ck_assert_str_eq(b.data, "42-x");
    ck_assert_int_eq(buf_printf(&b, "%s", "0123456789abcdef"), BERTH_ETOOBIG);
    ck_assert_str_eq(b.data, "42-x");
    buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    buf_free(&b);
}
END_TEST

START_TEST(reserve_commit_detach)
{
    buf b;
    char *p;
    size_t len;

    buf_init(&b, 8);
    ck_assert_ptr_null(buf_reserve(&b, 9));
    p = buf_reserve(&b, 8);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "abc", 3);
    buf_commit(&b, 3);
    ck_assert_str_eq(b.data, "abc");
    p = buf_detach(&b, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_str_eq(p, "abc");
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    free(p);
    p = buf_detach(&b, &len);
    ck_assert_str_eq(p, "");
    ck_assert_uint_eq(len, 0);
    free(p);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("common/buf");
    TCase *tc = tcase_create("buf");

    tcase_add_test(tc, append_and_cap);
    tcase_add_test(tc, printf_and_cap);
    tcase_add_test(tc, reserve_commit_detach);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
