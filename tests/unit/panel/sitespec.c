/* sitespec.c - tests of a site spec's validation, canonical form and JSON
 * shapes (svc-panel/sitespec.c, included to build without the panel). */
#include "svc-panel/sitespec.c"

#include "tests/harness/unit.h"

START_TEST(names)
{
    ck_assert(sitespec_name_valid("blog"));
    ck_assert(sitespec_name_valid("a"));
    ck_assert(sitespec_name_valid("my-site-2"));
    ck_assert(sitespec_name_valid("0"));
    ck_assert(!sitespec_name_valid(""));
    ck_assert(!sitespec_name_valid("-a"));
    ck_assert(!sitespec_name_valid("a-"));
    ck_assert(!sitespec_name_valid("Blog"));
    ck_assert(!sitespec_name_valid("a_b"));
    ck_assert(!sitespec_name_valid("a.b"));
    ck_assert(sitespec_name_valid(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    ck_assert(!sitespec_name_valid(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

START_TEST(images)
{
    static const char *const good[] = {
        "nginx",
        "nginx:1.25",
        "library/nginx:latest",
        "a/b/c",
        "my_app",
        "a__b",
        "a---b",
        "a.b",
        "localhost/app",
        "localhost:5000/app:v1",
        "registry.example.com/team/app",
        "Registry.Example.com/app",
        "reg:5000/"
        "a@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "[::1]:5000/app",
        "app:_tag",
        "app:v1.2-rc.3",
        NULL};
    static const char *const bad[] = {"",
                                      "Nginx",
                                      "nginx:",
                                      "nginx::1",
                                      "a//b",
                                      "/a",
                                      "a/",
                                      "-a",
                                      "a-",
                                      "a_",
                                      "a___b",
                                      "a..b",
                                      "nginx:-tag",
                                      "nginx@sha256:abc",
                                      "nginx@sha256:xyz",
                                      "nginx@md5",
                                      "reg:port/app",
                                      "reg:123456/app",
                                      "app:" /* empty tag */,
                                      "app name",
                                      "[::g]:5000/app",
                                      "-reg.com/app",
                                      NULL};
    int i;

    for (i = 0; good[i]; i++)
        ck_assert_msg(sitespec_image_valid(good[i]), "refused %s", good[i]);
    for (i = 0; bad[i]; i++)
        ck_assert_msg(!sitespec_image_valid(bad[i]), "accepted %s", bad[i]);
}
END_TEST

START_TEST(domains)
{
    char out[SITESPEC_DOMAIN_MAX + 1];
    char longest[300];

    ck_assert_int_eq(sitespec_domain_normalize("Blog.Example.COM.", out), 0);
    ck_assert_str_eq(out, "blog.example.com");
    ck_assert_int_eq(sitespec_domain_normalize("a-b.x1.io", out), 0);
    ck_assert_int_eq(sitespec_domain_normalize("xn--bcher-kva.example", out),
                     0);
    ck_assert_int_eq(sitespec_domain_normalize("localhost", out), BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("*.example.com", out),
                     BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("a_b.example.com", out),
                     BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("-a.example.com", out),
                     BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("a-.example.com", out),
                     BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("a..com", out), BERTH_EINVAL);
    /* "--" in places 3-4 only in an A-label. */
    ck_assert_int_eq(sitespec_domain_normalize("ab--cd.example.com", out),
                     BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("www.xn--.example", out),
                     BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("a.b--c.example", out), 0);
    ck_assert_int_eq(sitespec_domain_normalize("www.XN--bcher-kva.example",
                                               out),
                     0);
    ck_assert_str_eq(out, "www.xn--bcher-kva.example");
    ck_assert_int_eq(sitespec_domain_normalize(".a.com", out), BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("10.0.0.1", out), BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("b\xc3\xbc"
                                               "cher.de",
                                               out),
                     BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize("", out), BERTH_EINVAL);
    ck_assert_int_eq(sitespec_domain_normalize(".", out), BERTH_EINVAL);
    /* A 64-byte label, then 253 and 254 bytes overall. */
    memset(longest, 'a', 64);
    strcpy(longest + 64, ".com");
    ck_assert_int_eq(sitespec_domain_normalize(longest, out), BERTH_EINVAL);
    memset(longest, 'a', 249);
    strcpy(longest + 249, ".com");
    for (int i = 60; i < 249; i += 61)
        longest[i] = '.';
    ck_assert_int_eq(strlen(longest), 253);
    ck_assert_int_eq(sitespec_domain_normalize(longest, out), 0);
    memmove(longest + 1, longest, 254);
    longest[0] = 'a';
    ck_assert_int_eq(sitespec_domain_normalize(longest, out), BERTH_EINVAL);
}
END_TEST

/* Decodes an API body through the same path as POST /sites. */
static Berth__V1__SiteSpec *from_api(const char *text, char *err, size_t errlen)
{
    json_t *body = json_loads(text, 0, NULL), *proto = json_object();
    Berth__V1__SiteSpec *s = NULL;

    ck_assert_ptr_nonnull(body);
    if (sitespec_api_merge(body, proto, err, errlen) == 0)
        sitespec_decode(proto, &s, err, errlen);
    json_decref(body);
    json_decref(proto);
    return s;
}

START_TEST(defaults_and_canonical_form)
{
    sitespec_canon *c = malloc(sizeof(*c));
    Berth__V1__SiteSpec *s, *back;
    char err[256] = "";
    char *stored;
    json_t *api;

    s = from_api(
        "{\"name\":\"blog\",\"image\":\"nginx\",\"domains\":[\"A.com.\"],"
        "\"ports\":[{\"containerPort\":80}],\"restart\":\"never\","
        "\"node\":\"n1\"}",
        err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(sitespec_check(s, c, err, sizeof(err)), 0);
    ck_assert_uint_eq(c->spec.limits->memory_bytes, SITESPEC_MEMORY_DEFAULT);
    ck_assert_uint_eq(c->spec.limits->cpu_millis, SITESPEC_CPU_DEFAULT);
    ck_assert_uint_eq(c->spec.limits->pids, SITESPEC_PIDS_DEFAULT);
    ck_assert_str_eq(c->spec.domains[0], "a.com");
    ck_assert_uint_eq(c->spec.http_port, 80); /* domains without httpPort */
    ck_assert_str_eq(c->spec.ports[0]->protocol, "tcp");
    ck_assert_int_eq(c->spec.restart->mode,
                     BERTH__V1__RESTART_POLICY__MODE__MODE_NEVER);
    ck_assert_str_eq(c->spec.node_id, "n1");

    /* Stored without the columns; decodes back to the same spec. */
    stored = sitespec_store_json(&c->spec);
    ck_assert_ptr_nonnull(stored);
    ck_assert_ptr_null(strstr(stored, "\"name\""));
    ck_assert_ptr_null(strstr(stored, "nodeId"));
    ck_assert_int_eq(sitespec_decode_text(stored, &back, err, sizeof(err)), 0);
    ck_assert_str_eq(back->image, "nginx");
    ck_assert_str_eq(back->domains[0], "a.com");
    api = sitespec_api_json(back);
    ck_assert_str_eq(json_string_value(json_object_get(api, "restart")),
                     "never");
    ck_assert_int_eq(json_integer_value(json_object_get(api, "memoryBytes")),
                     (json_int_t)SITESPEC_MEMORY_DEFAULT);
    json_decref(api);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    free(stored);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    free(c);
}
END_TEST

START_TEST(refusals_name_the_field)
{
    static const struct {
        const char *body;
        const char *says;
    } cases[] = {
        {"{\"name\":\"x\",\"image\":\"nginx\",\"memoryBytes\":1}",
         "memoryBytes"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"memoryBytes\":2199023255552}",
         "memoryBytes"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"cpuMillis\":2000000}",
         "cpuMillis"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"pids\":8}", "pids"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"httpPort\":70000}", "httpPort"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":0}]"
         "}",
         "containerPort"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":1,"
         "\"hostPort\":70000}]}",
         "hostPort"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":1,"
         "\"hostIp\":\"x\"}]}",
         "hostIp"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":1},"
         "{\"containerPort\":1}]}",
         "twice"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":1,"
         "\"hostPort\":8080},"
         "{\"containerPort\":2,\"hostPort\":8080}]}",
         "twice"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"domains\":[\"a.com\",\"A.COM."
         "\"]}",
         "twice"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"env\":{\"A=B\":\"c\"}}", "env"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"node\":\"a.b\"}", "node"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"restart\":\"maybe\"}",
         "restart"},
        {"{\"name\":\"x\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":"
         "\"x\"}]}",
         "containerPort"},
    };
    sitespec_canon *c = malloc(sizeof(*c));
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        Berth__V1__SiteSpec *s = from_api(cases[i].body, err, sizeof(err));

        if (s != NULL) {
            ck_assert_msg(sitespec_check(s, c, err, sizeof(err)) ==
                              BERTH_EINVAL,
                          "accepted %s", cases[i].body);
            protobuf_c_message_free_unpacked(&s->base, NULL);
        }
        ck_assert_msg(strstr(err, cases[i].says) != NULL, "%s: %s",
                      cases[i].body, err);
    }
    free(c);
}
END_TEST

START_TEST(merge_replaces_and_resets)
{
    json_t *proto =
        json_pack("{s:s, s:{s:s, s:i}, s:[s], s:{s:s}}", "image", "old",
                  "limits", "memoryBytes", "1073741824", "cpuMillis", 500,
                  "domains", "a.com", "restart", "mode", "MODE_ALWAYS");
    json_t *body =
        json_loads("{\"image\":\"new\",\"memoryBytes\":null,\"pids\":64,"
                   "\"domains\":[],\"restart\":null}",
                   0, NULL);
    char err[128];

    ck_assert_int_eq(sitespec_api_merge(body, proto, err, sizeof(err)), 0);
    ck_assert_str_eq(json_string_value(json_object_get(proto, "image")), "new");
    ck_assert_ptr_null(
        json_object_get(json_object_get(proto, "limits"), "memoryBytes"));
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(proto, "limits"), "cpuMillis")),
                     500);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(proto, "limits"), "pids")),
                     64);
    ck_assert_uint_eq(json_array_size(json_object_get(proto, "domains")), 0);
    ck_assert_ptr_null(json_object_get(proto, "restart"));
    json_decref(body);
    json_decref(proto);
    ck_assert_int_eq(sitespec_power_parse("kill"),
                     BERTH__V1__POWER_ACTION__POWER_ACTION_KILL);
    ck_assert_int_eq(sitespec_power_parse("Kill"), 0);
    ck_assert_str_eq(
        sitespec_state_name(BERTH__V1__SITE_STATE__SITE_STATE_CRASHED),
        "crashed");
    ck_assert_str_eq(sitespec_state_name(99), "unknown");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("panel/sitespec");
    TCase *tc = tcase_create("sitespec");

    tcase_add_test(tc, names);
    tcase_add_test(tc, images);
    tcase_add_test(tc, domains);
    tcase_add_test(tc, defaults_and_canonical_form);
    tcase_add_test(tc, refusals_name_the_field);
    tcase_add_test(tc, merge_replaces_and_resets);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
