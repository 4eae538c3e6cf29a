/* config.c - tests of the configuration table (common/config.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "tests/harness/unit.h"

static const cfg_key keys[] = {
    CONFIG_COMMON_KEYS,
    {"BERTH_T_PORT", CFG_INT, "8080", "a port", 1, 65535, 0},
    {"BERTH_T_FLAG", CFG_BOOL, "false", "a flag", 0, 0, 0},
    {"BERTH_T_SECRET", CFG_STR, NULL, "a secret", 0, 0, CFG_SECRET},
    {0},
};

static const cfg_key required_keys[] = {
    {"BERTH_T_NEEDED", CFG_STR, NULL, "must be set", 0, 0, CFG_REQUIRED},
    {0},
};

static char *argv0[] = {"prog", NULL};

static void clear_env(void)
{
    unsetenv("BERTH_T_PORT");
    unsetenv("BERTH_T_FLAG");
    unsetenv("BERTH_CONFIG");
    unsetenv("BERTH_NATS_URL");
    unsetenv("BERTH_DATA_DIR");
    unsetenv("BERTH_T_NEEDED");
}

static char *write_temp(const char *content)
{
    static char path[64];
    FILE *f;
    int fd;

    strcpy(path, "/tmp/berth-config-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    fputs(content, f);
    fclose(f);
    return path;
}

START_TEST(defaults)
{
    config *c = NULL;
    char err[256];

    clear_env();
    ck_assert_int_eq(config_load(&c, "panel", keys, 1, argv0, err, sizeof(err)), 0);
    ck_assert_str_eq(config_str(c, "BERTH_NATS_URL"), "nats://127.0.0.1:4222");
    ck_assert_str_eq(config_str(c, "BERTH_DATA_DIR"), "var/panel");
    ck_assert_ptr_null(config_str(c, "BERTH_NATS_CREDS"));
    ck_assert_int_eq(config_int(c, "BERTH_T_PORT"), 8080);
    ck_assert_int_eq(config_bool(c, "BERTH_T_FLAG"), 0);
    config_free(c);
}
END_TEST

START_TEST(environment_overrides_file)
{
    config *c = NULL;
    char err[256];
    char *path;

    clear_env();
    path = write_temp("# a comment\n\nBERTH_T_PORT = 9000\n"
                      "BERTH_NATS_URL=\"nats://file:1\"\nBERTH_T_FLAG=yes\n");
    setenv("BERTH_CONFIG", path, 1);
    setenv("BERTH_T_PORT", "9100", 1);
    ck_assert_int_eq(config_load(&c, "edge", keys, 1, argv0, err, sizeof(err)), 0);
    ck_assert_int_eq(config_int(c, "BERTH_T_PORT"), 9100);
    ck_assert_str_eq(config_str(c, "BERTH_NATS_URL"), "nats://file:1");
    ck_assert_int_eq(config_bool(c, "BERTH_T_FLAG"), 1);
    config_free(c);
    unlink(path);
    clear_env();
}
END_TEST

START_TEST(config_argument)
{
    config *c = NULL;
    char err[256];
    char *path = write_temp("BERTH_T_PORT=7000\n");
    char *argv[] = {"prog", "--config", path, NULL};
    char *bad[] = {"prog", "--frobnicate", NULL};

    clear_env();
    ck_assert_int_eq(config_load(&c, "x", keys, 3, argv, err, sizeof(err)), 0);
    ck_assert_int_eq(config_int(c, "BERTH_T_PORT"), 7000);
    config_free(c);
    ck_assert_int_eq(config_load(&c, "x", keys, 2, bad, err, sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "--frobnicate"));
    unlink(path);
}
END_TEST

START_TEST(bad_values)
{
    config *c = NULL;
    char err[256];
    char *path;

    clear_env();
    setenv("BERTH_T_PORT", "80x", 1);
    ck_assert_int_eq(config_load(&c, "x", keys, 1, argv0, err, sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, "BERTH_T_PORT"));
    ck_assert_ptr_nonnull(strstr(err, "not an integer"));

    setenv("BERTH_T_PORT", "70000", 1);
    ck_assert_int_eq(config_load(&c, "x", keys, 1, argv0, err, sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "outside 1..65535"));

    setenv("BERTH_T_PORT", "99999999999999999999999", 1);
    ck_assert_int_eq(config_load(&c, "x", keys, 1, argv0, err, sizeof(err)),
                     BERTH_ECONFIG);
    unsetenv("BERTH_T_PORT");

    setenv("BERTH_T_FLAG", "maybe", 1);
    ck_assert_int_eq(config_load(&c, "x", keys, 1, argv0, err, sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "not a boolean"));
    unsetenv("BERTH_T_FLAG");

    path = write_temp("BERTH_UNKNOWN_THING=1\n");
    setenv("BERTH_CONFIG", path, 1);
    ck_assert_int_eq(config_load(&c, "x", keys, 1, argv0, err, sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "unknown key BERTH_UNKNOWN_THING"));
    ck_assert_ptr_nonnull(strstr(err, ":1:"));
    unlink(path);

    path = write_temp("BERTH_T_PORT\n");
    setenv("BERTH_CONFIG", path, 1);
    ck_assert_int_eq(config_load(&c, "x", keys, 1, argv0, err, sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "expected KEY=value"));
    unlink(path);

    setenv("BERTH_CONFIG", "/nonexistent/berth.conf", 1);
    ck_assert_int_eq(config_load(&c, "x", keys, 1, argv0, err, sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/berth.conf"));
    clear_env();
}
END_TEST

START_TEST(required_key)
{
    config *c = NULL;
    char err[256];

    clear_env();
    ck_assert_int_eq(config_load(&c, "x", required_keys, 1, argv0, err,
                                 sizeof(err)),
                     BERTH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "BERTH_T_NEEDED is required"));
    setenv("BERTH_T_NEEDED", "here", 1);
    ck_assert_int_eq(config_load(&c, "x", required_keys, 1, argv0, err,
                                 sizeof(err)),
                     0);
    ck_assert_str_eq(config_str(c, "BERTH_T_NEEDED"), "here");
    config_free(c);
    clear_env();
}
END_TEST

START_TEST(help)
{
    char *with[] = {"prog", "--help", NULL};
    char *without[] = {"prog", "--config", "x", NULL};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ck_assert_int_eq(config_wants_help(2, with), 1);
    ck_assert_int_eq(config_wants_help(3, without), 0);
    config_print_help(f, "berth-x", "x", keys);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "BERTH_NATS_URL"));
    ck_assert_ptr_nonnull(strstr(text, "default: var/x"));
    ck_assert_ptr_nonnull(strstr(text, "range: 1..65535"));
    free(text);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("common/config");
    TCase *tc = tcase_create("config");

    tcase_add_test(tc, defaults);
    tcase_add_test(tc, environment_overrides_file);
    tcase_add_test(tc, config_argument);
    tcase_add_test(tc, bad_values);
    tcase_add_test(tc, required_key);
    tcase_add_test(tc, help);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
