/* ui_e2e.c - the web UI end to end in real headless Chromium: a real
 * berth-panel (PostgreSQL, nats-server) serving ui/, a real berth-daemon
 * running sites in Docker, chromedriver driving the browser.
 *
 * The suite logs in as admin, sees the node online on the dashboard,
 * creates a role and a user with it, adds an SSH key, creates a site and
 * sees it become running, watches the CPU chart get new points, grants a
 * user the site's files, types into the console and sees the output,
 * uploads a file and downloads it back identical (and edits, renames,
 * archives, extracts, deletes), stops the daemon and sees why it is
 * unreachable, stops and starts the site, reads the audit log, checks the
 * narrow layout and the token refresh on reload, deletes the site, logs
 * out. The static file server is checked with raw requests first (types,
 * ETag and 304, refusals). The daemon's direct server listens on a free
 * port and accepts the panel's origin only.
 *
 * One stack serves the whole suite (CK_NOFORK); the tests run in order
 * and build on each other. When a test fails, its last screen and HTML go
 * to build/ui_e2e/<test>-failed.{png,html}, then each page of the UI is
 * captured as build/ui_e2e/page-<name>.png, and the browser's console is
 * printed. BERTH_UI_E2E_SHOTS=1 captures every step even when all pass.
 *
 * Needs chromium and chromium-driver (Debian); the suite is skipped with
 * a message when they are missing.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "tests/harness/docker.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"
#include "tests/harness/webdriver.h"

#define ADMIN_PASSWORD "correct horse battery staple"
#define HEARTBEAT_MS   1000
#define NODE_NAME      "ui-node"
#define SITE_NAME      "webshop"
#define WAIT_MS        15000

/* A valid OpenSSH public key line (ed25519). */
#define TEST_KEY                                                               \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC2mnj/6o1nh5R5rK9VeC9IoVZUI1S9S0i6S" \
    "7GnmcNrp ui-test@berth"

static h_panel panel;
static h_wd wd;
static int have_browser;
static char access_token[H_ACCESS_MAX];
static char *tmp;
static char daemon_log[1024];
static h_proc dproc;
static int direct_port; /* the daemon's direct server */
static char node_id[ID_UUID_LEN + 1];
static char site_id[64];
static char shots[1024];      /* build/ui_e2e */
static const char *test_name; /* the running test, for failure shots */
static int test_ok;

/* ------------------------------------------------------------ helpers */

/* Marks the start of a test (its name for the failure shots) and skips it
 * when there is no browser. */
#define BEGIN(name)                                                            \
    do {                                                                       \
        test_name = (name);                                                    \
        test_ok = 0;                                                           \
        if (!have_browser) {                                                   \
            test_ok = 1;                                                       \
            return;                                                            \
        }                                                                      \
    } while (0)
#define END() (test_ok = 1, shot_step(test_name))

static void url_of(char *dst, size_t size, const char *hash)
{
    snprintf(dst, size, "%s/%s", panel.base, hash);
}

static void go(const char *hash)
{
    char url[512];

    url_of(url, sizeof(url), hash);
    ck_assert_int_eq(h_wd_go(&wd, url), 0);
}

static void shot(const char *name)
{
    char path[1400];

    snprintf(path, sizeof(path), "%s/%s.png", shots, name);
    h_wd_screenshot(&wd, path);
}

static void shot_step(const char *name)
{
    const char *all = getenv("BERTH_UI_E2E_SHOTS");

    if (all != NULL && all[0] == '1')
        shot(name);
}

static void wait_css(const char *css)
{
    ck_assert_msg(h_wd_wait(&wd, css, WAIT_MS, NULL) == 0, "no %s", css);
}

static void wait_text(const char *css, const char *needle, int ms)
{
    ck_assert_msg(h_wd_wait_text(&wd, css, needle, ms) == 0,
                  "\"%s\" never appeared in %s", needle, css);
}

static void fill(const char *css, const char *text)
{
    ck_assert_msg(h_wd_fill_css(&wd, css, text) == 0, "cannot fill %s", css);
}

/* Types into a field without clearing it (Enter, for one). */
static void press(const char *css, const char *keys)
{
    char el[H_WD_ID_MAX];

    ck_assert_int_eq(h_wd_wait(&wd, css, WAIT_MS, el), 0);
    ck_assert_int_eq(h_wd_type(&wd, el, keys), 0);
}

static void click(const char *css)
{
    ck_assert_msg(h_wd_click_css(&wd, css) == 0, "cannot click %s", css);
}

/* Runs script and returns its value as an integer. */
static long long js_int(const char *script)
{
    json_t *v = NULL;
    long long n;

    ck_assert_int_eq(h_wd_exec(&wd, script, NULL, &v), 0);
    n = json_is_integer(v) ? (long long)json_integer_value(v)
        : json_is_string(v) ? atoll(json_string_value(v))
                            : (long long)json_number_value(v);
    json_decref(v);
    return n;
}

/* A raw GET of path with an optional If-None-Match; returns the status
 * and copies the named response headers. */
struct raw {
    long status;
    char ctype[128], etag[128], cache[128], csp[512];
    size_t len;
};

static size_t raw_header(char *data, size_t size, size_t n, void *ud)
{
    struct raw *r = ud;
    size_t len = size * n;
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } want[] = {{"content-type:", r->ctype, sizeof(r->ctype)},
                {"etag:", r->etag, sizeof(r->etag)},
                {"cache-control:", r->cache, sizeof(r->cache)},
                {"content-security-policy:", r->csp, sizeof(r->csp)}};
    size_t i;

    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t nl = strlen(want[i].name);
        size_t vl;
        const char *v;

        if (len <= nl || strncasecmp(data, want[i].name, nl) != 0)
            continue;
        v = data + nl;
        while (*v == ' ')
            v++;
        vl = len - (size_t)(v - data);
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        snprintf(want[i].dst, want[i].cap, "%.*s", (int)vl, v);
    }
    return len;
}

static size_t raw_body(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    ((struct raw *)ud)->len += size * n;
    return size * n;
}

static long raw_get(const char *path, const char *inm, struct raw *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[1024], hdr[256];
    CURLcode res;

    memset(r, 0, sizeof(*r));
    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "%s%s", panel.base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, raw_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (inm != NULL) {
        snprintf(hdr, sizeof(hdr), "If-None-Match: %s", inm);
        h = curl_slist_append(NULL, hdr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    res = curl_easy_perform(c);
    /* lws itself closes on some malformed paths (a NUL byte). */
    ck_assert_msg(res == CURLE_OK || res == CURLE_GOT_NOTHING, "GET %s: %s",
                  path, curl_easy_strerror(res));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r->status;
}

/* The id of the user named name, from GET /users ("" when none). */
static void user_by_name(const char *name, char *id, size_t size,
                         long *role_id)
{
    h_resp r;
    json_t *u;
    size_t i;

    id[0] = '\0';
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", access_token, NULL),
                     200);
    json_array_foreach(json_object_get(r.json, "users"), i, u)
    {
        if (strcmp(h_jstr(u, "name"), name) == 0) {
            snprintf(id, size, "%s", h_jstr(u, "id"));
            *role_id = (long)json_integer_value(json_object_get(u, "roleId"));
        }
    }
    h_resp_free(&r);
}

/* ------------------------------------------------------------ stack */

/* The daemon's direct server listens on a free port of 127.0.0.1 and
 * accepts the panel's origin only, as in production. */
static void start_daemon(void)
{
    char nats[256], data[1100], node[128], addr[64], url[96], origin[96];
    char *argv[] = {NULL, NULL};
    char *env[] = {nats,   data, node, addr, url, origin,
                   "BERTH_STRICT_SUBJECTS=1", "BERTH_STATS_INTERVAL_MS=1000",
                   NULL};
    int port = h_free_port();

    ck_assert_int_gt(port, 0);
    direct_port = port;
    argv[0] = (char *)h_bin("berth-daemon");
    snprintf(nats, sizeof(nats), "BERTH_NATS_URL=%s", panel.nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s/data", tmp);
    snprintf(node, sizeof(node), "BERTH_NODE_NAME=%s", NODE_NAME);
    snprintf(addr, sizeof(addr), "BERTH_DAEMON_ADDR=127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "BERTH_DAEMON_PUBLIC_URL=http://127.0.0.1:%d",
             port);
    snprintf(origin, sizeof(origin), "BERTH_DAEMON_PANEL_ORIGIN=%s",
             panel.base);
    ck_assert_int_eq(h_proc_start(&dproc, "daemon", argv, env, daemon_log), 0);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=ready", 20000), 0);
}

/* Waits until GET /nodes lists our node online; keeps its id. */
static void wait_node(void)
{
    int64_t end = clock_mono_ms() + 20000;

    while (node_id[0] == '\0' && clock_mono_ms() < end) {
        h_resp r;
        json_t *n;
        size_t i;

        ck_assert_int_eq(
            h_call(&panel, &r, "GET", "/nodes", access_token, NULL), 200);
        json_array_foreach(json_object_get(r.json, "nodes"), i, n)
        {
            if (strcmp(h_jstr(n, "name"), NODE_NAME) == 0 &&
                json_is_true(json_object_get(n, "online")))
                snprintf(node_id, sizeof(node_id), "%s", h_jstr(n, "id"));
        }
        h_resp_free(&r);
        if (node_id[0] == '\0')
            clock_sleep_ms(100);
    }
    ck_assert_msg(node_id[0] != '\0', "the node never came online");
}

/* Waits until the panel hands out the daemon's current direct URL. */
static void wait_public_url(void)
{
    char want[64], path[128];
    int64_t end = clock_mono_ms() + 20000;
    int ok = 0;

    snprintf(want, sizeof(want), "http://127.0.0.1:%d", direct_port);
    snprintf(path, sizeof(path), "/nodes/%s", node_id);
    while (!ok && clock_mono_ms() < end) {
        h_resp r;

        ck_assert_int_eq(h_call(&panel, &r, "GET", path, access_token, NULL),
                         200);
        ok = strcmp(h_jstr(r.json, "publicUrl"), want) == 0;
        h_resp_free(&r);
        if (!ok)
            clock_sleep_ms(100);
    }
    ck_assert_msg(ok, "the node's public URL never became %s", want);
}

static void suite_up(void)
{
    char ui[1100], uienv[1200], hb[64];
    char *env[] = {uienv, hb, NULL};
    int rc;

    h_repo_path(shots, sizeof(shots), "build/ui_e2e");
    h_repo_path(ui, sizeof(ui), "ui");
    snprintf(uienv, sizeof(uienv), "BERTH_UI_DIR=%s", ui);
    snprintf(hb, sizeof(hb), "BERTH_NODE_HEARTBEAT_MS=%d", HEARTBEAT_MS);
    ck_assert_int_eq(h_image_build(), 0);
    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, env), 0);
    ck_assert_int_eq(
        h_login(&panel, "admin", ADMIN_PASSWORD, access_token, NULL), 201);
    tmp = h_tempdir("ui-e2e");
    ck_assert_ptr_nonnull(tmp);
    snprintf(daemon_log, sizeof(daemon_log), "%s/daemon.log", tmp);
    start_daemon();
    wait_node();
    rc = h_wd_start(&wd, 1280, 900);
    if (rc == BERTH_ENOENT) {
        fprintf(stderr, "ui_e2e: skipped, no chromium/chromedriver\n");
        return;
    }
    ck_assert_int_eq(rc, 0);
    have_browser = 1;
}

static void suite_down(void)
{
    if (have_browser)
        h_wd_stop(&wd);
    if (site_id[0] != '\0') {
        char label[128];

        snprintf(label, sizeof(label), "berth.site=%s", site_id);
        h_docker_rm_labelled(label);
    }
    if (dproc.pid > 0)
        h_proc_stop(&dproc, SIGTERM, 10000);
    h_proc_free(&dproc);
    h_tempdir_drop(tmp, "ui-e2e");
    tmp = NULL;
    ck_assert_int_eq(h_panel_stop(&panel), 0);
}

/* After a failed test: its screen and HTML, the browser's console, then a
 * picture of every page. */
static void test_setup(void)
{
    test_ok = 0;
}

static void test_teardown(void)
{
    static const struct {
        const char *name, *hash;
    } pages[] = {
        {"dashboard", "#/"},  {"users", "#/users"}, {"roles", "#/roles"},
        {"audit", "#/audit"}, {"keys", "#/keys"},
    };
    char name[256], path[1300];
    size_t i;

    if (test_ok || !have_browser)
        return;
    snprintf(name, sizeof(name), "%s-failed", test_name ? test_name : "test");
    shot(name);
    snprintf(path, sizeof(path), "%s/%s.html", shots, name);
    h_wd_save_html(&wd, path);
    h_wd_dump_console(&wd);
    for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        url_of(path, sizeof(path), pages[i].hash);
        if (h_wd_go(&wd, path) != 0)
            continue;
        clock_sleep_ms(1500);
        snprintf(name, sizeof(name), "page-%s", pages[i].name);
        shot(name);
    }
    if (site_id[0] != '\0') {
        snprintf(name, sizeof(name), "#/sites/%s", site_id);
        url_of(path, sizeof(path), name);
        if (h_wd_go(&wd, path) == 0) {
            clock_sleep_ms(2500);
            shot("page-site");
        }
    }
    fprintf(stderr, "ui_e2e: screenshots in %s\n", shots);
    h_log_tail(daemon_log, 3000);
}

/* ------------------------------------------------------------ tests */

START_TEST(static_files)
{
    struct raw r;
    char etag[128];

    test_name = "static_files";
    ck_assert_int_eq(raw_get("/", NULL, &r), 200);
    ck_assert_str_eq(r.ctype, "text/html; charset=utf-8");
    ck_assert_str_eq(r.cache, "no-cache");
    ck_assert_ptr_nonnull(strstr(r.csp, "default-src 'self'"));
    ck_assert(r.etag[0] != '\0');
    snprintf(etag, sizeof(etag), "%s", r.etag);
    ck_assert_int_eq(raw_get("/", etag, &r), 304);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_int_eq(raw_get("/", "\"other\", W/\"x\"", &r), 200);

    ck_assert_int_eq(raw_get("/ui/js/main.js", NULL, &r), 200);
    ck_assert_str_eq(r.ctype, "text/javascript; charset=utf-8");
    ck_assert_int_eq(raw_get("/ui/css/app.css", NULL, &r), 200);
    ck_assert_str_eq(r.ctype, "text/css; charset=utf-8");

    /* The Debian libraries, cached for a day. */
    ck_assert_int_eq(raw_get("/vendor/chart.js/chart.mjs", NULL, &r), 200);
    ck_assert_str_eq(r.ctype, "text/javascript; charset=utf-8");
    ck_assert_str_eq(r.cache, "public, max-age=86400");
    ck_assert_int_eq(raw_get("/vendor/xterm/xterm.js", NULL, &r), 200);
    ck_assert_int_eq(raw_get("/vendor/xterm/addons/fit/fit.js", NULL, &r), 200);
    ck_assert_int_eq(raw_get("/vendor/xterm/xterm.css", NULL, &r), 200);
    ck_assert_str_eq(r.ctype, "text/css; charset=utf-8");

    /* Refusals: unknown library, traversal in every spelling, hidden and
     * unknown files, directories. */
    ck_assert_int_eq(raw_get("/vendor/nope/x.js", NULL, &r), 404);
    ck_assert_int_eq(raw_get("/ui/../Makefile", NULL, &r), 404);
    ck_assert_int_eq(raw_get("/ui/%2e%2e/Makefile", NULL, &r), 404);
    ck_assert_int_eq(raw_get("/ui/js/%2e%2e/%2e%2e/README.md", NULL, &r), 404);
    ck_assert_int_eq(raw_get("/ui/..%2fMakefile", NULL, &r), 404);
    ck_assert_int_eq(raw_get("/vendor/xterm/../../../../etc/passwd", NULL, &r),
                     404);
    ck_assert_int_eq(raw_get("/vendor/xterm/%2e%2e/package.json", NULL, &r),
                     404);
    ck_assert_int_eq(raw_get("/ui/.git/config", NULL, &r), 404);
    ck_assert_int_eq(raw_get("/ui/js", NULL, &r), 404);
    ck_assert_int_eq(raw_get("/ui/js/", NULL, &r), 404);
    ck_assert_int_ne(raw_get("/ui/index.html%00.js", NULL, &r), 200);
    ck_assert_int_eq(raw_get("/ui/js\\..\\..\\Makefile", NULL, &r), 404);
    test_ok = 1;
}
END_TEST

START_TEST(login)
{
    BEGIN("login");
    go("");
    wait_css("#login-username");
    /* A wrong password is said so, and the form stays. */
    fill("#login-username", "admin");
    fill("#login-password", "wrong password" H_WD_ENTER);
    wait_text("#login-form .form-error", "Wrong user name or password", WAIT_MS);
    /* Enter submits. */
    fill("#login-password", ADMIN_PASSWORD H_WD_ENTER);
    wait_text("main h1", "Dashboard", WAIT_MS);
    wait_text("#whoami", "admin", WAIT_MS);
    wait_text("#live-state", "live", WAIT_MS);
    END();
}
END_TEST

START_TEST(dashboard_shows_the_node)
{
    BEGIN("dashboard");
    wait_text("#nodes tbody", NODE_NAME, WAIT_MS);
    wait_text("#nodes tbody", "online", WAIT_MS);
    /* node.stats arrive over /ws and fill the CPU and memory cells. */
    wait_text("#nodes tbody", "%", WAIT_MS);
    wait_text("#nodes tbody", "GiB", WAIT_MS);
    wait_text("#sites tbody", "No sites yet", WAIT_MS);
    END();
}
END_TEST

START_TEST(role_and_user)
{
    char id[64];
    long role_id = 0;
    h_resp r;
    json_t *role = NULL, *x;
    size_t i;

    BEGIN("role_and_user");
    click("#nav a[data-nav=roles]");
    wait_text("#roles-table", "admin", WAIT_MS);
    click("#new-role");
    fill("#role-name", "operators");
    click("#perm-site-read");
    click("#perm-site-console-all");
    click("#perm-site-power");
    click("#role-save");
    wait_text("#roles-table", "operators", WAIT_MS);
    wait_text("#roles-table", "site.console.*", WAIT_MS);

    click("#nav a[data-nav=users]");
    wait_text("#users-table", "admin", WAIT_MS);
    click("#new-user");
    fill("#user-name", "alice");
    fill("#user-email", "alice@example.com");
    fill("#user-password", "alice password");
    ck_assert_int_eq(
        h_wd_exec(&wd,
                  "const s = document.getElementById('user-role');"
                  "const o = [...s.options].find(o => o.text === 'operators');"
                  "s.value = o.value; return o.value;",
                  NULL, NULL),
        0);
    /* Enter in a field submits the form. */
    press("#user-email", H_WD_ENTER);
    wait_text("main h1", "User alice", WAIT_MS);

    /* What the panel holds now. */
    user_by_name("alice", id, sizeof(id), &role_id);
    ck_assert_msg(id[0] != '\0', "alice was not created");
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/roles", access_token, NULL),
                     200);
    json_array_foreach(json_object_get(r.json, "roles"), i, x)
    {
        if (strcmp(h_jstr(x, "name"), "operators") == 0)
            role = x;
    }
    ck_assert_ptr_nonnull(role);
    ck_assert_int_eq(json_integer_value(json_object_get(role, "id")), role_id);
    ck_assert_int_eq(json_array_size(json_object_get(role, "permissions")), 3);
    h_resp_free(&r);
    /* alice can log in with that password. */
    ck_assert_int_eq(h_login(&panel, "alice", "alice password", NULL, NULL),
                     201);
    click("#nav a[data-nav=users]");
    wait_text("#users-table", "alice", WAIT_MS);
    wait_text("#users-table", "operators", WAIT_MS);
    END();
}
END_TEST

START_TEST(ssh_keys)
{
    h_resp r;

    BEGIN("ssh_keys");
    click("#nav a[data-nav=keys]");
    wait_text("#keys-table", "No keys yet", WAIT_MS);
    fill("#key-name", "laptop");
    fill("#key-text", TEST_KEY);
    press("#key-text", H_WD_ENTER);
    wait_text("#keys-table", "SHA256:", WAIT_MS);
    wait_text("#keys-table", "laptop", WAIT_MS);
    ck_assert_int_eq(
        h_call(&panel, &r, "GET", "/user/keys", access_token, NULL), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "keys")), 1);
    h_resp_free(&r);
    /* A bad key is refused with the panel's message. */
    fill("#key-text", "ssh-rsa nonsense" H_WD_ENTER);
    wait_text("#key-form .form-error", "OpenSSH public key", WAIT_MS);
    END();
}
END_TEST

START_TEST(site_created_and_running)
{
    json_t *v = NULL;
    const char *hash;

    BEGIN("site_created");
    click("#nav a[data-nav=dashboard]");
    click("#new-site");
    fill("#site-name", SITE_NAME);
    fill("#site-image", H_TEST_IMAGE);
    fill("#site-command", "sh\n-c\necho site-ready; exec sh");
    fill("#site-memory", "64");
    fill("#site-domains", "Shop.Example.com");
    click("#site-create");
    wait_text("main h1", SITE_NAME, WAIT_MS);
    ck_assert_int_eq(h_wd_exec(&wd, "return location.hash;", NULL, &v), 0);
    hash = json_string_value(v);
    ck_assert_ptr_nonnull(hash);
    ck_assert_msg(strncmp(hash, "#/sites/", 8) == 0, "at %s", hash);
    snprintf(site_id, sizeof(site_id), "%s", hash + 8);
    json_decref(v);
    /* Its state arrives live. */
    wait_text("#site-state", "running", 60000);
    wait_text("#stat-mem", "MiB", WAIT_MS);
    /* Its domain, lower-cased by the panel, with the certificate state
     * the panel knows (none: no edge runs here). */
    wait_text("#domains", "shop.example.com", WAIT_MS);
    wait_css("#domains [data-cert='unknown']");
    END();
}
END_TEST

START_TEST(cpu_chart_gets_points)
{
    long long first, later;
    int64_t end;

    BEGIN("cpu_chart");
    wait_css("#chart-cpu canvas");
    wait_css("#chart-mem canvas");
    first = js_int("return Number(document.getElementById('chart-cpu')"
                   ".dataset.points);");
    end = clock_mono_ms() + WAIT_MS;
    do {
        clock_sleep_ms(250);
        later = js_int("return Number(document.getElementById('chart-cpu')"
                       ".dataset.points);");
    } while (later < first + 3 && clock_mono_ms() < end);
    ck_assert_msg(later >= first + 3, "the chart went from %lld to %lld points",
                  first, later);
    /* Chart.js drew on the canvas: some pixels are not transparent. */
    ck_assert_int_gt(
        js_int("const c = document.querySelector('#chart-cpu canvas');"
               "const d = c.getContext('2d').getImageData(0, 0, c.width, "
               "c.height).data; let n = 0;"
               "for (let i = 3; i < d.length; i += 4) if (d[i]) n++;"
               "return n;"),
        100);
    END();
}
END_TEST

START_TEST(site_grant)
{
    char alice[64], path[128];
    long role_id = 0;
    h_resp r;
    json_t *g;

    BEGIN("site_grant");
    user_by_name("alice", alice, sizeof(alice), &role_id);
    ck_assert(alice[0] != '\0');
    /* On the site page: give alice the files on this site only. */
    wait_css("#grant-form");
    {
        json_t *args = json_pack("[s]", alice); /* h_wd_exec borrows it */

        ck_assert_int_eq(
            h_wd_exec(&wd,
                      "const s = document.getElementById('grant-user');"
                      "s.value = arguments[0]; return s.value;",
                      args, NULL),
            0);
        json_decref(args);
    }
    click("#grant-site-files-read");
    click("#grant-site-files-write");
    click("#grant-save");
    wait_text("#grants tbody", "site.files.read", WAIT_MS);
    snprintf(path, sizeof(path), "/sites/%s/grants", site_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, access_token, NULL), 200);
    g = json_array_get(json_object_get(r.json, "grants"), 0);
    ck_assert_str_eq(h_jstr(g, "userId"), alice);
    ck_assert_int_eq(json_array_size(json_object_get(g, "permissions")), 2);
    h_resp_free(&r);
    END();
}
END_TEST

START_TEST(power_buttons)
{
    char path[128];

    BEGIN("power");
    snprintf(path, sizeof(path), "#/sites/%s", site_id);
    go(path);
    wait_text("#site-state", "running", WAIT_MS);
    click("#power-stop");
    wait_text("#site-state", "offline", 60000);
    wait_text("#site-desired", "stopped", WAIT_MS);
    click("#power-start");
    wait_text("#site-state", "running", 60000);
    END();
}
END_TEST

START_TEST(console_output_and_input)
{
    char el[H_WD_ID_MAX];

    BEGIN("console");
    wait_text("#console-status", "Connected", WAIT_MS);
    /* The replay: what the site printed before we came. */
    wait_text("#console .xterm-rows", "site-ready", WAIT_MS);
    /* A line from the command box runs in the site's shell. */
    fill("#console-line", "echo berth-$((6*7))" H_WD_ENTER);
    wait_text("#console .xterm-rows", "berth-42", WAIT_MS);
    /* Keys typed into the terminal itself: echoed, sent on Enter. */
    ck_assert_int_eq(h_wd_find(&wd, "#console .xterm-helper-textarea", el), 0);
    ck_assert_int_eq(h_wd_type(&wd, el, "echo typed-$((2+3))" H_WD_ENTER), 0);
    /* (the DOM renderer draws spaces as empty cells: no spaces in text) */
    wait_text("#console .xterm-rows", "typed-$((2+3))", WAIT_MS);
    wait_text("#console .xterm-rows", "typed-5", WAIT_MS);
    END();
}
END_TEST

/* Writes size pseudo-random bytes to path. */
static void random_file(const char *path, size_t size)
{
    FILE *f = fopen(path, "wb");
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t i;

    ck_assert_ptr_nonnull(f);
    for (i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ck_assert_int_ne(fputc((int)(x & 0xff), f), EOF);
    }
    ck_assert_int_eq(fclose(f), 0);
}

/* 1 when a and b hold the same bytes. */
static int same_file(const char *a, const char *b)
{
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    int same;

    if (fs_read_file(a, 64u << 20, &da, &la) != 0 ||
        fs_read_file(b, 64u << 20, &db, &lb) != 0) {
        free(da);
        free(db);
        return 0;
    }
    same = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
}

START_TEST(files_upload_and_download)
{
    char up[1100], down[1100], el[H_WD_ID_MAX], hash[128];
    int64_t end;
    int found = 0;

    BEGIN("files");
    snprintf(up, sizeof(up), "%s/blob.bin", tmp);
    random_file(up, 3u << 20);
    click("#open-files");
    wait_text("main h1", "Files of " SITE_NAME, WAIT_MS);
    wait_css("#files-table");
    /* Upload through the file picker, with a progress bar. */
    ck_assert_int_eq(h_wd_find(&wd, "#upload-input", el), 0);
    ck_assert_int_eq(h_wd_type(&wd, el, up), 0);
    wait_css("#uploads progress");
    ck_assert_int_eq(h_wd_wait(&wd, "[data-upload='blob.bin'][data-done='1']",
                               30000, NULL),
                     0);
    wait_text("#files-table", "blob.bin", WAIT_MS);
    wait_text("tr[data-name='blob.bin']", "3.0 MiB", WAIT_MS);
    /* Download it back: the browser saves it; same bytes. */
    click("tr[data-name='blob.bin'] button[data-act=download]");
    snprintf(down, sizeof(down), "%s/blob.bin", wd.download_dir);
    end = clock_mono_ms() + 30000;
    while (!found && clock_mono_ms() < end) {
        found = h_file_size(down) == (off_t)(3u << 20);
        if (!found)
            clock_sleep_ms(100);
    }
    ck_assert_msg(found, "no complete download at %s", down);
    ck_assert_msg(same_file(up, down), "the download differs from the upload");

    /* A folder, a text file written in the editor, read back. */
    click("#files-new-folder");
    fill("dialog[open] input", "www" H_WD_ENTER);
    click("a.entry-dir");
    wait_text("#crumbs", "www", WAIT_MS);
    click("#files-new-file");
    fill("dialog[open] input", "index.html" H_WD_ENTER);
    click("tr[data-name='index.html'] a.entry-file");
    wait_css("#editor-text");
    fill("#editor-text", "<h1>hello from the editor</h1>");
    click("#editor-save");
    wait_text("#editor-state", "Saved", WAIT_MS);
    ck_assert_int_eq(h_wd_exec(&wd, "location.reload();", NULL, NULL), 0);
    ck_assert_int_eq(h_wd_wait(&wd, "#editor-text", WAIT_MS, el), 0);
    end = clock_mono_ms() + WAIT_MS;
    {
        json_t *v = NULL;
        int ok = 0;

        while (!ok && clock_mono_ms() < end) {
            h_wd_exec(&wd,
                      "return document.getElementById('editor-text').value;",
                      NULL, &v);
            ok = json_is_string(v) &&
                 strcmp(json_string_value(v),
                        "<h1>hello from the editor</h1>") == 0;
            json_decref(v);
            v = NULL;
            if (!ok)
                clock_sleep_ms(100);
        }
        ck_assert_msg(ok, "the editor did not show the saved text");
    }
    click("#editor-close");
    wait_text("#files-table", "index.html", WAIT_MS);
    wait_text("tr[data-name='index.html']", "30 B", WAIT_MS);

    /* Back at the root: rename, compress, extract, delete. */
    snprintf(hash, sizeof(hash), "#/sites/%s/files?path=%%2F", site_id);
    go(hash);
    wait_text("#files-table", "blob.bin", WAIT_MS);
    click("tr[data-name='blob.bin'] button[data-act=rename]");
    fill("dialog[open] input", "renamed.bin" H_WD_ENTER);
    wait_text("#files-table", "renamed.bin", WAIT_MS);
    click("tr[data-name='www'] input[name=sel]");
    click("#files-compress");
    fill("dialog[open] input", "site.tar.gz" H_WD_ENTER);
    wait_text("#files-table", "site.tar.gz", WAIT_MS);
    click("tr[data-name='www'] button[data-act=delete]");
    click("dialog[open] button.danger");
    ck_assert_int_eq(h_wd_wait_gone(&wd, "tr[data-name='www']", WAIT_MS), 0);
    click("tr[data-name='site.tar.gz'] button[data-act=extract]");
    wait_text("#files-table", "www", WAIT_MS);
    click("tr[data-name='renamed.bin'] button[data-act=delete]");
    click("dialog[open] button.danger");
    ck_assert_int_eq(h_wd_wait_gone(&wd, "tr[data-name='renamed.bin']", WAIT_MS),
                     0);
    END();
}
END_TEST

START_TEST(unreachable_daemon_is_explained)
{
    char path[128];

    BEGIN("unreachable");
    /* Stop the daemon: the console explains instead of spinning. */
    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 10000), 0);
    h_proc_free(&dproc);
    snprintf(path, sizeof(path), "#/sites/%s", site_id);
    go("#/");
    go(path);
    wait_text("#console-status", "could not connect to the daemon", 30000);
    wait_text("#console-status", "Port", WAIT_MS);
    start_daemon();
    wait_public_url();
    click("#console-reconnect");
    wait_text("#console-status", "Connected", 30000);
    END();
}
END_TEST

START_TEST(site_on_the_dashboard)
{
    char css[160];

    BEGIN("site_on_dashboard");
    click("#nav a[data-nav=dashboard]");
    snprintf(css, sizeof(css), "#sites tr[data-site='%s']", site_id);
    wait_text(css, SITE_NAME, WAIT_MS);
    wait_text(css, "running", WAIT_MS);
    wait_text(css, "%", WAIT_MS);
    END();
}
END_TEST

START_TEST(audit_log)
{
    BEGIN("audit");
    click("#nav a[data-nav=audit]");
    wait_text("#audit-table", "site.create", WAIT_MS);
    wait_text("#audit-table", "user.create", WAIT_MS);
    wait_text("#audit-table", "role.create", WAIT_MS);
    /* Filtering by action. */
    fill("#audit-action", "user.key.add" H_WD_ENTER);
    wait_text("#audit-table", "user.key.add", WAIT_MS);
    ck_assert_int_eq(
        js_int("return document.querySelectorAll('#audit-table tbody tr').length;"),
        1);
    END();
}
END_TEST

START_TEST(narrow_layout)
{
    BEGIN("narrow");
    ck_assert_int_eq(h_wd_window(&wd, 390, 844), 0);
    go("#/");
    wait_text("main h1", "Dashboard", WAIT_MS);
    /* The navigation folds behind Menu, and opens with it. */
    wait_css("#menu-toggle");
    ck_assert_int_eq(js_int("return document.getElementById('nav')"
                            ".getBoundingClientRect().height;"),
                     0);
    click("#menu-toggle");
    wait_css("#nav a[data-nav=users]");
    /* Nothing sticks out sideways. */
    ck_assert_int_le(js_int("return document.documentElement.scrollWidth;"),
                     390);
    click("#nav a[data-nav=users]");
    wait_text("#users-table", "alice", WAIT_MS);
    ck_assert_int_le(js_int("return document.documentElement.scrollWidth;"),
                     390);
    shot_step("narrow-users");
    /* The site page (charts, console) and the file manager too. */
    {
        char path[128];

        snprintf(path, sizeof(path), "#/sites/%s", site_id);
        go(path);
        wait_text("#console-status", "Connected", WAIT_MS);
        wait_css("#chart-cpu canvas");
        ck_assert_int_le(js_int("return document.documentElement.scrollWidth;"),
                         390);
        shot_step("narrow-site");
        snprintf(path, sizeof(path), "#/sites/%s/files", site_id);
        go(path);
        wait_css("#files-table");
        ck_assert_int_le(js_int("return document.documentElement.scrollWidth;"),
                         390);
        shot_step("narrow-files");
    }
    ck_assert_int_eq(h_wd_window(&wd, 1280, 900), 0);
    END();
}
END_TEST

START_TEST(reload_refreshes_the_token)
{
    long long before;

    BEGIN("refresh");
    /* Spoil the stored access token: the reload must refresh it with the
     * refresh token and carry on, rotating the refresh token. */
    before = js_int("return JSON.parse(localStorage.getItem('berth.session'))"
                    ".refresh.length;");
    ck_assert_int_gt(before, 0);
    ck_assert_int_eq(
        h_wd_exec(&wd,
                  "const s = JSON.parse(localStorage.getItem('berth.session'));"
                  "window.oldRefresh = s.refresh; s.access = 'e30.x';"
                  "localStorage.setItem('berth.session', JSON.stringify(s));"
                  "sessionStorage.setItem('oldRefresh', s.refresh);",
                  NULL, NULL),
        0);
    go("#/keys");
    ck_assert_int_eq(h_wd_exec(&wd, "location.reload();", NULL, NULL), 0);
    wait_text("#keys-table", "laptop", WAIT_MS);
    ck_assert_int_eq(
        js_int("const s = JSON.parse(localStorage.getItem('berth.session'));"
               "return s.refresh !== sessionStorage.getItem('oldRefresh') && "
               "s.access !== 'e30.x' ? 1 : 0;"),
        1);
    END();
}
END_TEST

START_TEST(site_deleted)
{
    char path[128];
    int64_t end;
    long status = 0;

    BEGIN("site_deleted");
    snprintf(path, sizeof(path), "#/sites/%s", site_id);
    go(path);
    wait_text("main h1", SITE_NAME, WAIT_MS);
    click("#site-delete");
    wait_css("dialog[open] button.danger");
    click("dialog[open] button.danger");
    wait_text("main h1", "Dashboard", WAIT_MS);
    /* The panel forgets it once the daemon has removed it. */
    end = clock_mono_ms() + 60000;
    snprintf(path, sizeof(path), "/sites/%s", site_id);
    while (clock_mono_ms() < end) {
        h_resp r;

        status = h_call(&panel, &r, "GET", path, access_token, NULL);
        h_resp_free(&r);
        if (status == 404)
            break;
        clock_sleep_ms(200);
    }
    ck_assert_int_eq(status, 404);
    /* The container goes with it. */
    {
        char cmd[300];
        char *av[] = {"sh", "-c", cmd, NULL};
        int gone = 0;
        buf out;

        snprintf(cmd, sizeof(cmd), "docker inspect berth-%s >/dev/null 2>&1",
                 site_id);
        end = clock_mono_ms() + 60000;
        while (!gone && clock_mono_ms() < end) {
            buf_init(&out, 4096);
            gone = h_run(av, NULL, 0, &out, 10000) != 0;
            buf_free(&out);
            if (!gone)
                clock_sleep_ms(200);
        }
        ck_assert_msg(gone, "container berth-%s still exists", site_id);
    }
    go("#/");
    wait_text("#sites tbody", "No sites yet", WAIT_MS);
    END();
}
END_TEST

START_TEST(logout)
{
    BEGIN("logout");
    click("#logout");
    wait_css("#login-username");
    ck_assert_int_eq(
        js_int("return localStorage.getItem('berth.session') === null ? 1 : 0;"),
        1);
    /* The refresh token was revoked: a reload stays logged out. */
    go("");
    wait_css("#login-username");
    END();
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/ui_e2e");
    TCase *tc = tcase_create("ui_e2e");

    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_checked_fixture(tc, test_setup, test_teardown);
    tcase_add_test(tc, static_files);
    tcase_add_test(tc, login);
    tcase_add_test(tc, dashboard_shows_the_node);
    tcase_add_test(tc, role_and_user);
    tcase_add_test(tc, ssh_keys);
    tcase_add_test(tc, site_created_and_running);
    tcase_add_test(tc, cpu_chart_gets_points);
    tcase_add_test(tc, site_grant);
    tcase_add_test(tc, console_output_and_input);
    tcase_add_test(tc, files_upload_and_download);
    tcase_add_test(tc, unreachable_daemon_is_explained);
    tcase_add_test(tc, site_on_the_dashboard);
    tcase_add_test(tc, power_buttons);
    tcase_add_test(tc, audit_log);
    tcase_add_test(tc, narrow_layout);
    tcase_add_test(tc, reload_refreshes_the_token);
    tcase_add_test(tc, site_deleted);
    tcase_add_test(tc, logout);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests share one stack and one browser. */
UNIT_MAIN_NOFORK(make_suite)
