/* log.c - tests of logfmt formatting (common/log.c). */
#include <stdarg.h>
#include <string.h>

#include "common/log.h"
#include "tests/harness/unit.h"

static char out[512];

static const char *fmt(const char *fields, ...)
    __attribute__((format(printf, 1, 2)));

static const char *fmt(const char *fields, ...)
{
    va_list ap;

    va_start(ap, fields);
    log_format_fields(out, sizeof(out), fields, ap);
    va_end(ap);
    return out;
}

START_TEST(values_are_quoted_when_needed)
{
    ck_assert_str_eq(fmt("a=%s b=%d", "plain", 42), "a=plain b=42");
    ck_assert_str_eq(fmt("a=%s", "two words"), "a=\"two words\"");
    ck_assert_str_eq(fmt("a=%s", ""), "a=\"\"");
    ck_assert_str_eq(fmt("a=%s", "x=y"), "a=\"x=y\"");
    ck_assert_str_eq(fmt("a=%s", "say \"hi\""), "a=\"say \\\"hi\\\"\"");
    ck_assert_str_eq(fmt("a=%s", "line\nbreak"), "a=\"line\\nbreak\"");
    ck_assert_str_eq(fmt("a=%s", "\x01"), "a=\"\\x01\"");
    {
        /* A NULL value prints as (null); hidden from gcc's format check. */
        const char *volatile nothing = NULL;
        ck_assert_str_eq(fmt("a=%s", nothing), "a=(null)");
    }
}
END_TEST

START_TEST(number_conversions)
{
    ck_assert_str_eq(fmt("n=%lld u=%llu z=%zu l=%ld", -5LL, 18446744073709551615ULL,
                         (size_t)7, 123456789L),
                     "n=-5 u=18446744073709551615 z=7 l=123456789");
    ck_assert_str_eq(fmt("x=%04x f=%.2f p=100%%", 255, 1.5), "x=00ff f=1.50 p=100%");
}
END_TEST

static int fmt_small(char *dst, int size, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

static int fmt_small(char *dst, int size, const char *fields, ...)
{
    va_list ap;
    int n;

    va_start(ap, fields);
    n = log_format_fields(dst, size, fields, ap);
    va_end(ap);
    return n;
}

START_TEST(truncation_is_safe)
{
    char small[16];

    /* The guard bytes after the given size stay untouched. */
    memset(small, 'z', sizeof(small));
    ck_assert_int_eq(fmt_small(small, 8, "v=%s n=%d", "0123456789 x", 12345), 7);
    ck_assert_uint_eq(strlen(small), 7);
    ck_assert_int_eq(small[8], 'z');
    ck_assert_int_eq(fmt_small(small, 8, "n=%d%d%d", 12345, 678, 9), 7);
    ck_assert_str_eq(small, "n=12345");
}
END_TEST

START_TEST(levels)
{
    ck_assert_int_eq(log_level_parse("debug"), LOG_DEBUG);
    ck_assert_int_eq(log_level_parse("warning"), LOG_WARN);
    ck_assert_int_eq(log_level_parse("error"), LOG_ERROR);
    ck_assert_int_eq(log_level_parse("loud"), -1);
    log_set_level(LOG_WARN);
    ck_assert_int_eq(log_enabled(LOG_INFO), 0);
    ck_assert_int_eq(log_enabled(LOG_ERROR), 1);
    log_set_level(LOG_INFO);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("common/log");
    TCase *tc = tcase_create("log");

    tcase_add_test(tc, values_are_quoted_when_needed);
    tcase_add_test(tc, number_conversions);
    tcase_add_test(tc, truncation_is_safe);
    tcase_add_test(tc, levels);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
