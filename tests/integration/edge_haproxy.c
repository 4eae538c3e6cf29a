/* edge_haproxy.c - the edge's HAProxy driver (svc-edge/haproxy.c,
 * haproxy_runtime.c) against a real HAProxy: the configuration it writes
 * passes haproxy -c, ACME HTTP-01 answers come from the challenge map,
 * certificates are installed, replaced in place and removed at runtime
 * (TLS with that SNI verifies against exactly that certificate), a bad PEM
 * changes nothing, maps are replaced in one commit, a killed HAProxy comes
 * back with its certificates and challenges and the restart callback runs,
 * and HAProxy never reloads. Routing through berth-edge is
 * tests/integration/edge_routes.c.
 */
#include "svc-edge/haproxy.c"
#include "svc-edge/haproxy_runtime.c"

#include <curl/curl.h>
#include <stdatomic.h>

#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

static char *tmp;
static char dir[1024];
static int http_port, https_port;
static edge_haproxy *hx;
static atomic_int restarts;

static void on_restart(void *ud)
{
    (void)ud;
    atomic_fetch_add(&restarts, 1);
}

/* ------------------------------------------------------------ helpers */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    buf_append(ud, data, size * n);
    return size * n;
}

/* GET path over HTTP with Host host. Returns the status (0: none). */
static long http_get(const char *host, const char *path, buf *body)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char url[512], h[300];
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", http_port, path);
    snprintf(h, sizeof(h), "Host: %s", host);
    hdr = curl_slist_append(NULL, h);
    buf_reset(body);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return status;
}

/* An HTTPS request to host (SNI) trusting only the certificate in ca.
 * Returns the curl code: CURLE_OK when the chain verified. */
static CURLcode tls_with(const char *host, const char *ca)
{
    CURL *c = curl_easy_init();
    struct curl_slist *resolve = NULL;
    char url[512], rs[300];
    buf sink;
    CURLcode rc;

    buf_init(&sink, 1 << 20);
    snprintf(url, sizeof(url), "https://%s:%d/", host, https_port);
    snprintf(rs, sizeof(rs), "%s:%d:127.0.0.1", host, https_port);
    resolve = curl_slist_append(NULL, rs);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    rc = curl_easy_perform(c);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
    buf_free(&sink);
    return rc;
}

/* A self-signed certificate for host: name.crt (the certificate alone,
 * for trusting it) and the returned PEM (certificate then key; caller
 * frees). */
static char *make_cert(const char *host, const char *name)
{
    char key[1100], crt[1100], subj[300], san[300];
    char *argv[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", subj,
                    "-addext", san, "-days", "30", "-keyout", key, "-out",
                    crt, NULL};
    char *a = NULL, *b = NULL, *pem;
    size_t la, lb;

    snprintf(key, sizeof(key), "%s/%s.key", tmp, name);
    snprintf(crt, sizeof(crt), "%s/%s.crt", tmp, name);
    snprintf(subj, sizeof(subj), "/CN=%s", host);
    snprintf(san, sizeof(san), "subjectAltName=DNS:%s", host);
    ck_assert_int_eq(h_run(argv, NULL, 0, NULL, 20000), 0);
    ck_assert_int_eq(fs_read_file(crt, 1 << 20, &a, &la), 0);
    ck_assert_int_eq(fs_read_file(key, 1 << 20, &b, &lb), 0);
    pem = malloc(la + lb + 1);
    ck_assert_ptr_nonnull(pem);
    memcpy(pem, a, la);
    memcpy(pem + la, b, lb + 1);
    free(a);
    free(b);
    return pem;
}

static void crt_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s.crt", tmp, name);
}

static int file_has(const char *path, const char *needle)
{
    char *text = NULL;
    size_t len;
    int has;

    if (fs_read_file(path, 1 << 20, &text, &len) != 0)
        return 0;
    has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

/* ------------------------------------------------------------ suite */

static void suite_up(void)
{
    char http[64], https[64];

    ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
    tmp = h_tempdir("edge-haproxy");
    ck_assert_ptr_nonnull(tmp);
    snprintf(dir, sizeof(dir), "%s/edge", tmp);
    http_port = h_free_port();
    https_port = h_free_port();
    snprintf(http, sizeof(http), "127.0.0.1:%d", http_port);
    snprintf(https, sizeof(https), "127.0.0.1:%d", https_port);
    ck_assert_int_eq(edge_haproxy_new(&(edge_haproxy_cfg){.dir = dir,
                                                          .http_addr = http,
                                                          .https_addr = https},
                                      &hx),
                     0);
    edge_haproxy_on_restart(hx, on_restart, NULL);
    ck_assert_int_eq(edge_haproxy_start(hx), 0);
    ck_assert_int_eq(atomic_load(&restarts), 1);
}

static void suite_down(void)
{
    long pid = edge_haproxy_pid(hx);
    int i;

    edge_haproxy_free(hx);
    for (i = 0; i < 100 && pid > 0 && kill((pid_t)pid, 0) == 0; i++)
        clock_sleep_ms(20);
    ck_assert_msg(pid <= 0 || kill((pid_t)pid, 0) != 0, "haproxy %ld lives",
                  pid);
    h_tempdir_drop(tmp, "edge haproxy test");
    curl_global_cleanup();
}

/* ------------------------------------------------------------ tests */

START_TEST(config_is_valid)
{
    char cfg[1100], *argv[] = {"haproxy", "-c", "-q", "-f", cfg, NULL};
    struct stat st;
    char path[1100];
    buf out;

    snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", dir);
    buf_init(&out, 1 << 16);
    ck_assert_msg(h_run(argv, NULL, 0, &out, 20000) == 0, "%s",
                  out.data ? out.data : "");
    buf_free(&out);
    snprintf(path, sizeof(path), "%s/certs/default.pem", dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert(edge_haproxy_up(hx));
    ck_assert_int_gt(edge_haproxy_pid(hx), 1);
}
END_TEST

START_TEST(acme_challenges)
{
    char path[1100];
    buf body;

    buf_init(&body, 1 << 16);
    ck_assert_int_eq(edge_haproxy_challenge_set(hx, "tok-EN_1", "tok-EN_1.thumb"),
                     0);
    ck_assert_int_eq(http_get("any.example.test",
                              "/.well-known/acme-challenge/tok-EN_1", &body),
                     200);
    ck_assert_str_eq(body.data, "tok-EN_1.thumb");
    ck_assert_int_eq(http_get("any.example.test",
                              "/.well-known/acme-challenge/other", &body),
                     404);
    snprintf(path, sizeof(path), "%s/maps/challenges.map", dir);
    ck_assert(file_has(path, "tok-EN_1 tok-EN_1.thumb\n"));
    /* Set again: replaced, not doubled. */
    ck_assert_int_eq(edge_haproxy_challenge_set(hx, "tok-EN_1", "tok-EN_1.v2"),
                     0);
    ck_assert_int_eq(http_get("x.test", "/.well-known/acme-challenge/tok-EN_1",
                              &body),
                     200);
    ck_assert_str_eq(body.data, "tok-EN_1.v2");
    ck_assert_int_eq(edge_haproxy_challenge_del(hx, "tok-EN_1"), 0);
    ck_assert_int_eq(http_get("x.test", "/.well-known/acme-challenge/tok-EN_1",
                              &body),
                     404);
    ck_assert(!file_has(path, "tok-EN_1"));
    ck_assert_int_eq(edge_haproxy_challenge_del(hx, "tok-EN_1"), 0);
    ck_assert_int_eq(edge_haproxy_challenge_set(hx, "bad token", "x"),
                     BERTH_EINVAL);
    ck_assert_int_eq(edge_haproxy_challenge_set(hx, "t", "a b"), BERTH_EINVAL);
    buf_free(&body);
}
END_TEST

START_TEST(certificates_at_runtime)
{
    char *one = make_cert("secure.example.test", "one");
    char *two = make_cert("secure.example.test", "two");
    char *other = make_cert("secure.example.test", "other");
    char ca1[1100], ca2[1100], file[1100], list[1100], *bad;
    struct stat st;
    const char *key2;
    size_t certlen;

    crt_path(ca1, sizeof(ca1), "one");
    crt_path(ca2, sizeof(ca2), "two");
    snprintf(file, sizeof(file), "%s/certs/secure.example.test.pem", dir);
    snprintf(list, sizeof(list), "%s/certs.list", dir);
    /* The default certificate before. */
    ck_assert_int_ne(tls_with("secure.example.test", ca1), CURLE_OK);
    ck_assert_int_eq(edge_haproxy_cert_install(hx, "secure.example.test", one),
                     0);
    ck_assert_int_eq(tls_with("secure.example.test", ca1), CURLE_OK);
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert(file_has(list, file));
    /* Replaced in place. */
    ck_assert_int_eq(edge_haproxy_cert_install(hx, "secure.example.test", two),
                     0);
    ck_assert_int_eq(tls_with("secure.example.test", ca2), CURLE_OK);
    ck_assert_int_ne(tls_with("secure.example.test", ca1), CURLE_OK);
    /* A key that does not match its certificate: refused, nothing moves. */
    key2 = strstr(two, "-----BEGIN PRIVATE KEY-----");
    ck_assert_ptr_nonnull(key2);
    certlen = (size_t)(strstr(other, "-----BEGIN PRIVATE KEY") - other);
    bad = malloc(certlen + strlen(key2) + 1);
    ck_assert_ptr_nonnull(bad);
    memcpy(bad, other, certlen);
    strcpy(bad + certlen, key2);
    ck_assert_int_eq(edge_haproxy_cert_install(hx, "secure.example.test", bad),
                     BERTH_EINVAL);
    free(bad);
    ck_assert_int_eq(edge_haproxy_cert_install(hx, "secure.example.test",
                                               "garbage"),
                     BERTH_EINVAL);
    ck_assert_int_eq(edge_haproxy_cert_install(hx, "../etc.test", two),
                     BERTH_EINVAL);
    ck_assert_int_eq(tls_with("secure.example.test", ca2), CURLE_OK);
    /* Removed: the default certificate again, file and line gone. */
    ck_assert_int_eq(edge_haproxy_cert_remove(hx, "secure.example.test"), 0);
    ck_assert_int_ne(tls_with("secure.example.test", ca2), CURLE_OK);
    ck_assert_int_ne(stat(file, &st), 0);
    ck_assert(!file_has(list, file));
    ck_assert_int_eq(edge_haproxy_cert_remove(hx, "secure.example.test"), 0);
    /* Installed again for the restart test. */
    ck_assert_int_eq(edge_haproxy_cert_install(hx, "secure.example.test", two),
                     0);
    free(one);
    free(two);
    free(other);
}
END_TEST

START_TEST(maps_replace_set_del)
{
    buf lines, body;
    int i;

    buf_init(&lines, 1 << 20);
    buf_init(&body, 1 << 16);
    buf_puts(&lines, "# a comment line is skipped\n");
    for (i = 0; i < 3000; i++)
        buf_printf(&lines, "h%04d.example.test %s\n", i, EDGE_HAPROXY_STOPPED);
    ck_assert_int_eq(edge_haproxy_map_replace(hx, EDGE_HAPROXY_MAP_HOSTS,
                                              lines.data, lines.len),
                     0);
    ck_assert_int_eq(http_get("h0000.example.test", "/", &body), 503);
    ck_assert_int_eq(http_get("h2999.example.test", "/", &body), 503);
    ck_assert_int_eq(http_get("h3000.example.test", "/", &body), 404);
    ck_assert_int_eq(edge_haproxy_map_del(hx, EDGE_HAPROXY_MAP_HOSTS,
                                          "h0000.example.test"),
                     0);
    ck_assert_int_eq(http_get("h0000.example.test", "/", &body), 404);
    ck_assert_int_eq(edge_haproxy_map_del(hx, EDGE_HAPROXY_MAP_HOSTS,
                                          "h0000.example.test"),
                     0);
    ck_assert_int_eq(edge_haproxy_map_set(hx, EDGE_HAPROXY_MAP_HOSTS,
                                          "h0000.example.test", "127.0.0.1:1"),
                     0);
    ck_assert_int_eq(http_get("h0000.example.test", "/", &body), 503);
    ck_assert_int_eq(edge_haproxy_map_set(hx, EDGE_HAPROXY_MAP_HOSTS,
                                          "bad key", "x"),
                     BERTH_EINVAL);
    /* An empty replace empties the map. */
    ck_assert_int_eq(edge_haproxy_map_replace(hx, EDGE_HAPROXY_MAP_HOSTS, "", 0),
                     0);
    ck_assert_int_eq(http_get("h2999.example.test", "/", &body), 404);
    buf_free(&lines);
    buf_free(&body);
}
END_TEST

START_TEST(killed_haproxy_comes_back_with_its_state)
{
    char ca2[1100];
    long pid = edge_haproxy_pid(hx), reloads = -1;
    buf body;
    int i;

    crt_path(ca2, sizeof(ca2), "two");
    buf_init(&body, 1 << 16);
    ck_assert_int_eq(edge_haproxy_challenge_set(hx, "kept", "kept.thumb"), 0);
    ck_assert_int_gt(pid, 1);
    ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
    for (i = 0; i < 500 && atomic_load(&restarts) < 2; i++)
        clock_sleep_ms(20);
    ck_assert_int_eq(atomic_load(&restarts), 2);
    ck_assert_int_ne(edge_haproxy_pid(hx), pid);
    ck_assert_int_eq(tls_with("secure.example.test", ca2), CURLE_OK);
    ck_assert_int_eq(http_get("x.test", "/.well-known/acme-challenge/kept",
                              &body),
                     200);
    ck_assert_str_eq(body.data, "kept.thumb");
    /* The new master's CLI listens a moment after its worker answers. */
    for (i = 0; i < 250 && edge_haproxy_reloads(hx, &reloads) != 0; i++)
        clock_sleep_ms(20);
    ck_assert_int_eq(reloads, 0);
    buf_free(&body);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("edge_haproxy");
    TCase *tc = tcase_create("haproxy");

    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, config_is_valid);
    tcase_add_test(tc, acme_challenges);
    tcase_add_test(tc, certificates_at_runtime);
    tcase_add_test(tc, maps_replace_set_del);
    tcase_add_test(tc, killed_haproxy_comes_back_with_its_state);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
