/* catalog.c - tests of the subject catalog (bus/catalog.c) and of its
 * agreement with the JetStream tables (bus/js.c). */
#include <string.h>

#include "bus/catalog.h"
#include "bus/js.h"
#include "bus/types.h"
#include "common/err.h"
#include "tests/harness/unit.h"

static const char *kind_of(const char *subject)
{
    const bus_subject *s = bus_catalog_find(subject);

    return s ? s->pattern : NULL;
}

START_TEST(find_concrete_subjects)
{
    ck_assert_str_eq(kind_of("site.create"), "site.create");
    ck_assert_str_eq(kind_of("site.create.n1"), "site.create.{node}");
    ck_assert_str_eq(kind_of("site.status.n1.blog"), "site.status.{node}.{site}");
    ck_assert_str_eq(kind_of("container.stats.n-1.6f9619ff"),
                     "container.stats.{node}.{site}");
    ck_assert_str_eq(kind_of("cert.status.example.com"), "cert.status.{domain...}");
    ck_assert_str_eq(kind_of("cert.status.a.b.c.example.org"),
                     "cert.status.{domain...}");
    ck_assert_str_eq(kind_of("sys.echo.berth-panel"), "sys.echo.{service}");
    ck_assert_ptr_null(kind_of("cert.status"));
    ck_assert_ptr_null(kind_of("site.status.n1"));
    ck_assert_ptr_null(kind_of("site.status.n1.blog.extra"));
    ck_assert_ptr_null(kind_of("site.frobnicate.n1"));
    ck_assert_ptr_null(kind_of("nothing"));
    ck_assert_ptr_null(kind_of(""));
    ck_assert_ptr_null(kind_of("site..n1"));
    ck_assert_ptr_null(kind_of("site.create.*"));
    ck_assert_ptr_null(kind_of("site.create.>"));
    ck_assert_ptr_null(kind_of(NULL));
}
END_TEST

START_TEST(filters)
{
    ck_assert_int_eq(bus_catalog_check_filter("site.status.*.*"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("site.status.n1.*"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("container.stats.>"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("site.*.n1"), 0);
    ck_assert_int_eq(bus_catalog_check_filter(">"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("cert.status.>"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("cert.status.*"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("cert.status.*.*.*"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("shell.auth"), 0);
    ck_assert_int_eq(bus_catalog_check_filter("shell.nope"), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_catalog_check_filter("site.status.*"), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_catalog_check_filter("foo.>"), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_catalog_check_filter("site.>.x"), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_catalog_check_filter("site.st*"), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_catalog_check_filter(""), BERTH_ESUBJECT);
    ck_assert_int_eq(bus_catalog_check_filter(NULL), BERTH_ESUBJECT);
}
END_TEST

START_TEST(filter_matching)
{
    ck_assert_int_eq(bus_filter_matches("site.*.n1", "site.create.n1"), 1);
    ck_assert_int_eq(bus_filter_matches("site.*.n1", "site.create.n2"), 0);
    ck_assert_int_eq(bus_filter_matches("site.*.n1", "site.status.n1.x"), 0);
    ck_assert_int_eq(bus_filter_matches("cert.status.>", "cert.status.a.b"), 1);
    ck_assert_int_eq(bus_filter_matches("cert.status.>", "cert.status"), 0);
    ck_assert_int_eq(bus_filter_matches(">", "a"), 1);
    ck_assert_int_eq(bus_filter_matches("a.b", "a.b"), 1);
    ck_assert_int_eq(bus_filter_matches("a.b", "a.b.c"), 0);
    ck_assert_int_eq(bus_filter_matches(NULL, "a"), 0);
}
END_TEST

START_TEST(bind_and_wildcard)
{
    const bus_subject *s = bus_catalog_find("site.status.n1.blog");
    const bus_subject *c = bus_catalog_find("cert.status.example.com");
    buf b;

    buf_init(&b, 256);
    ck_assert_int_eq(bus_catalog_wildcard(s, &b), 0);
    ck_assert_str_eq(b.data, "site.status.*.*");
    buf_reset(&b);
    ck_assert_int_eq(bus_catalog_bind(s, "node", "n7", &b), 0);
    ck_assert_str_eq(b.data, "site.status.n7.*");
    buf_reset(&b);
    ck_assert_int_eq(bus_catalog_bind(s, "site", "blog", &b), 0);
    ck_assert_str_eq(b.data, "site.status.*.blog");
    buf_reset(&b);
    ck_assert_int_eq(bus_catalog_wildcard(c, &b), 0);
    ck_assert_str_eq(b.data, "cert.status.>");
    buf_reset(&b);
    ck_assert_int_eq(bus_catalog_bind(c, "domain", "example.com", &b), 0);
    ck_assert_str_eq(b.data, "cert.status.example.com");
    buf_free(&b);
}
END_TEST

START_TEST(tokens)
{
    ck_assert_int_eq(bus_token_valid("6f9619ff-8b86-4011-b42d-00c04fc964ff"), 1);
    ck_assert_int_eq(bus_token_valid("node_1"), 1);
    ck_assert_int_eq(bus_token_valid("a.b"), 0);
    ck_assert_int_eq(bus_token_valid("*"), 0);
    ck_assert_int_eq(bus_token_valid(">"), 0);
    ck_assert_int_eq(bus_token_valid("a b"), 0);
    ck_assert_int_eq(bus_token_valid(""), 0);
    ck_assert_int_eq(bus_token_valid(NULL), 0);
}
END_TEST

/* Every entry is well formed: a known type, a reply type exactly for
 * requests, a stream exactly for commands and events, and no two entries
 * match the same subject. */
START_TEST(entries_are_consistent)
{
    const bus_subject *s, *t;
    int n = 0;

    for (s = bus_catalog; s->pattern != NULL; s++, n++) {
        buf sample;
        char *p;

        ck_assert_msg(bus_type_find(s->type->name) == s->type, "%s", s->pattern);
        ck_assert_msg((s->kind == BUS_REQUEST) == (s->reply != NULL), "%s",
                      s->pattern);
        ck_assert_msg((s->kind == BUS_COMMAND || s->kind == BUS_EVENT) ==
                          (s->stream != NULL),
                      "%s", s->pattern);
        ck_assert_ptr_nonnull(s->publisher);
        ck_assert_ptr_nonnull(s->subscriber);
        ck_assert_ptr_nonnull(s->summary);
        /* A sample subject (every placeholder made concrete) matches this
         * entry first and no other. */
        buf_init(&sample, 256);
        ck_assert_int_eq(bus_catalog_wildcard(s, &sample), 0);
        for (p = sample.data; *p; p++) {
            if (*p == '*' || *p == '>')
                *p = 'x';
        }
        ck_assert_msg(bus_catalog_find(sample.data) == s, "%s", sample.data);
        for (t = bus_catalog; t->pattern != NULL; t++) {
            if (t == s)
                continue;
            ck_assert_msg(strcmp(t->pattern, s->pattern) != 0, "%s twice",
                          s->pattern);
        }
        buf_free(&sample);
    }
    ck_assert_int_gt(n, 20);
}
END_TEST

/* The streams keep exactly the catalog's commands and events: every entry
 * with a stream is captured by that stream, and no other entry is. */
START_TEST(streams_match_catalog)
{
    const bus_subject *s;
    const bus_stream_def *d;
    const bus_consumer_def *c;

    for (s = bus_catalog; s->pattern != NULL; s++) {
        buf sample;
        char *p;

        buf_init(&sample, 256);
        ck_assert_int_eq(bus_catalog_wildcard(s, &sample), 0);
        for (p = sample.data; *p; p++) {
            if (*p == '*' || *p == '>')
                *p = 'x';
        }
        for (d = bus_streams; d->name != NULL; d++) {
            int i;
            int captured = 0;

            for (i = 0; d->subjects[i] != NULL; i++)
                captured |= bus_filter_matches(d->subjects[i], sample.data);
            if (s->stream != NULL && strcmp(s->stream, d->name) == 0)
                ck_assert_msg(captured, "%s not kept by %s", s->pattern, d->name);
            else
                ck_assert_msg(!captured, "%s wrongly kept by %s", s->pattern,
                              d->name);
        }
        buf_free(&sample);
    }
    for (s = bus_catalog; s->pattern != NULL; s++) {
        int found = s->stream == NULL;
        for (d = bus_streams; d->name != NULL; d++)
            found |= s->stream != NULL && strcmp(s->stream, d->name) == 0;
        ck_assert_msg(found, "%s names a missing stream", s->pattern);
    }
    for (c = bus_consumers; c->name != NULL; c++) {
        char out[128];
        int found = 0;
        for (d = bus_streams; d->name != NULL; d++)
            found |= strcmp(c->stream, d->name) == 0;
        ck_assert_msg(found, "consumer %s on a missing stream", c->name);
        ck_assert_int_eq(bus_js_expand(c->durable, "n1", out, sizeof(out)), 0);
        ck_assert_ptr_null(strchr(out, '.'));
        ck_assert_ptr_eq(bus_consumer_find(c->name), c);
        if (c->filter != NULL) {
            ck_assert_int_eq(bus_js_expand(c->filter, "n1", out, sizeof(out)), 0);
            ck_assert_int_eq(bus_catalog_check_filter(out), 0);
        }
    }
}
END_TEST

START_TEST(expand)
{
    char out[32];

    ck_assert_int_eq(bus_js_expand("site.*.{node}", "n1", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "site.*.n1");
    ck_assert_int_eq(bus_js_expand("node-{node}", "a.b", out, sizeof(out)),
                     BERTH_EINVAL);
    ck_assert_int_eq(bus_js_expand("node-{node}", NULL, out, sizeof(out)),
                     BERTH_EINVAL);
    ck_assert_int_eq(bus_js_expand("plain", NULL, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "plain");
    ck_assert_int_eq(bus_js_expand("node-{node}",
                                   "0123456789012345678901234567890123456789",
                                   out, sizeof(out)),
                     BERTH_EINVAL);
}
END_TEST

START_TEST(markdown)
{
    buf b;

    buf_init(&b, 1 << 20);
    ck_assert_int_eq(bus_catalog_markdown(&b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "| `site.status.{node}.{site}` | event |"));
    ck_assert_ptr_nonnull(strstr(b.data, "do not edit"));
    buf_free(&b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("bus/catalog");
    TCase *tc = tcase_create("catalog");

    tcase_add_test(tc, find_concrete_subjects);
    tcase_add_test(tc, filters);
    tcase_add_test(tc, filter_matching);
    tcase_add_test(tc, bind_and_wildcard);
    tcase_add_test(tc, tokens);
    tcase_add_test(tc, entries_are_consistent);
    tcase_add_test(tc, streams_match_catalog);
    tcase_add_test(tc, expand);
    tcase_add_test(tc, markdown);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
