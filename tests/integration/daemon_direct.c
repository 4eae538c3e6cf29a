/* daemon_direct.c - the daemon's direct server with the real parts: a
 * nats-server, PostgreSQL and the real berth-panel issuing the tokens
 * (POST /sites/:id/tokens), the real berth-daemon running a site in the
 * real Docker, libcurl and a hand-written websocket client on loopback.
 *
 * Covered: /health; token checks (none, bad signature, expired, another
 * site, another node, another scope, a permission missing, a spent
 * transfer token); the console (replay, live output, input, a fresh
 * token, the expiry warning and close, power); the path-attack list over
 * HTTP (60+ paths, percent-encoded tricks and NUL bytes included, on
 * every operation that takes a path); every file operation; Range
 * downloads; a 1 GiB streamed upload with the daemon's RSS flat and a cut
 * upload that replaces nothing; archives, an archive bomb and an escaping
 * archive refused; Origin and CORS; SIGTERM with a console open.
 *
 * One panel, one daemon and one site serve the whole suite (CK_NOFORK);
 * tests run in order. Forged tokens (expired, another node...) are signed
 * with the panel's own key, read from its data directory, so only the
 * claim under test is wrong.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/id.h"
#include "common/token.h"
#include "tests/harness/docker.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"
#include "tests/harness/ws.h"

#define ADMIN_PASSWORD "correct horse battery staple"
#define USER_PASSWORD  "files reader password"
#define ORIGIN         "http://panel.test"
#define EXTRACT_MAX    (64u << 20)
#define UPLOAD_MAX     (2ull << 30)
#define BIG            (1ull << 30)

static h_panel panel;
static char access_token[H_ACCESS_MAX];
static char reader_token[H_ACCESS_MAX]; /* role: site.read, site.files.read */
static char *tmp;
static char data_dir[1024], log_path[1024], site_dir[1200];
static char node_id[ID_UUID_LEN + 1];
static char site_id[64];
static int dport; /* the direct server's port */
static const char *scheme = "http";
static char cafile[1200]; /* with https: the server's certificate */
static h_proc dproc;
static unsigned char panel_sk[TOKEN_ED25519_SK_BYTES];

/* ------------------------------------------------------------ HTTP */

typedef struct dresp {
    long status;
    buf body;
    buf hdrs;
    json_t *json;
} dresp;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

static void dresp_free(dresp *r)
{
    buf_free(&r->body);
    buf_free(&r->hdrs);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* The value of response header name ("" when absent), copied to out. */
static const char *dheader(const dresp *r, const char *name, char *out,
                           size_t size)
{
    const char *p = r->hdrs.data;
    size_t n = strlen(name);

    out[0] = '\0';
    while (p != NULL && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);

        if (len > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;

            while (*v == ' ')
                v++;
            snprintf(out, size, "%.*s", (int)(len - (size_t)(v - p)), v);
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return out;
}

/* Sends method target (raw: sent exactly as written) to the daemon with
 * "Authorization: Bearer token" (NULL: none), Origin (NULL: none), a body
 * and extra header lines (separated by newlines). Returns the status, 0
 * when no answer came. */
static long dcall(const char *method, const char *target, const char *token,
                  const char *origin, const void *body, size_t len,
                  const char *extra, dresp *r)
{
    struct curl_slist *h = NULL;
    char url[16384], line[8192];
    CURL *c = curl_easy_init();

    memset(r, 0, sizeof(*r));
    buf_init(&r->body, 64u << 20);
    buf_init(&r->hdrs, 1u << 20);
    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, dport, target);
    if (cafile[0] != '\0')
        curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (token != NULL) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, line);
    }
    if (origin != NULL) {
        snprintf(line, sizeof(line), "Origin: %s", origin);
        h = curl_slist_append(h, line);
    }
    if (extra != NULL) {
        /* Several header lines, separated by newlines. */
        const char *e = extra;

        while (*e != '\0') {
            size_t n = strcspn(e, "\n");

            snprintf(line, sizeof(line), "%.*s", (int)n, e);
            h = curl_slist_append(h, line);
            e += n + (e[n] == '\n');
        }
    }
    h = curl_slist_append(h, "Expect:");
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r->body.len > 0)
        r->json = json_loadb(r->body.data, r->body.len, 0, NULL);
    return r->status;
}

/* The error code of a daemon error body, or "". */
static const char *derr(const dresp *r)
{
    return h_jstr(json_object_get(r->json, "error"), "code");
}

/* "/sites/<site>/files/<op>?path=<qpath>" (qpath sent as written). */
static const char *fpath(char *out, size_t size, const char *op,
                         const char *qpath)
{
    snprintf(out, size, "/sites/%s/files/%s%s%s", site_id, op,
             qpath != NULL ? "?path=" : "", qpath != NULL ? qpath : "");
    return out;
}

/* ------------------------------------------------------------ tokens */

/* A token from the panel for the suite's site with scope, as the user
 * whose access token is given. */
static void panel_token(const char *access, const char *scope, char *out,
                        size_t size)
{
    char path[128], body[64];
    h_resp r;

    snprintf(path, sizeof(path), "/sites/%s/tokens", site_id);
    snprintf(body, sizeof(body), "{\"scope\":\"%s\"}", scope);
    ck_assert_int_eq(h_call(&panel, &r, "POST", path, access, body), 200);
    ck_assert_str_eq(h_jstr(r.json, "scope"), scope);
    snprintf(out, size, "%s", h_jstr(r.json, "token"));
    ck_assert_uint_gt(strlen(out), 100);
    h_resp_free(&r);
}

static void files_token(char *out)
{
    panel_token(access_token, "files", out, TOKEN_MAX);
}

/* A token signed with the panel's key with chosen claims. */
static void forge(char *out, const char *site, const char *node,
                  const char *scope, const char *perms_csv, int64_t exp_in)
{
    char jti[ID_UUID_LEN + 1], *tok = NULL, *copy, *save = NULL, *p;
    int64_t now = clock_wall_ms() / 1000;
    json_t *perms = json_array(), *claims;

    copy = strdup(perms_csv);
    for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save))
        json_array_append_new(perms, json_string(p));
    free(copy);
    ck_assert_int_eq(id_uuid(jti), 0);
    claims = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:I, s:I, s:s}", "typ",
                       "direct", "sub", "forged-user", "site", site, "node",
                       node, "perms", perms, "scope", scope, "iat",
                       (json_int_t)now, "exp", (json_int_t)(now + exp_in),
                       "jti", jti);
    ck_assert_int_eq(token_sign_ed25519(claims, panel_sk, &tok), 0);
    json_decref(claims);
    snprintf(out, TOKEN_MAX, "%s", tok);
    free(tok);
}

#define ALL_FILES "site.files.read,site.files.write"
#define ALL_CONSOLE "site.console.read,site.console.write,site.power"

/* ------------------------------------------------------------ suite */

/* Starts berth-daemon with the suite's settings plus extra ("K=V" or
 * NULL). */
static void start_daemon_with(const char *extra1, const char *extra2)
{
    char nats[256], data[1100], addr[64], url[96];
    char *argv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *env[] = {nats,
                   data,
                   addr,
                   url,
                   "BERTH_NODE_NAME=direct-node",
                   "BERTH_STRICT_SUBJECTS=1",
                   "BERTH_LOG_LEVEL=debug",
                   "BERTH_DAEMON_PANEL_ORIGIN=" ORIGIN,
                   "BERTH_DAEMON_EXTRACT_MAX=67108864",
                   "BERTH_DAEMON_EXTRACT_ENTRIES=1000",
                   "BERTH_DAEMON_UPLOAD_MAX=2147483648",
                   "BERTH_DAEMON_IDLE_TIMEOUT_S=2",
                   (char *)extra1,
                   (char *)extra2,
                   NULL};

    snprintf(nats, sizeof(nats), "BERTH_NATS_URL=%s", panel.nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", data_dir);
    snprintf(addr, sizeof(addr), "BERTH_DAEMON_ADDR=127.0.0.1:%d", dport);
    snprintf(url, sizeof(url), "BERTH_DAEMON_PUBLIC_URL=http://127.0.0.1:%d",
             dport);
    ck_assert_int_eq(h_proc_start(&dproc, "daemon", argv, env, log_path), 0);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=ready", 10000), 0);
    ck_assert_int_eq(h_wait_port(dport, 5000), 0);
}

static void start_daemon(void)
{
    start_daemon_with(NULL, NULL);
}

static void read_panel_key(void)
{
    char path[1100], *data = NULL;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/panel/panel.ed25519", panel.nats.dir);
    ck_assert_int_eq(fs_read_file(path, 4096, &data, &n), 0);
    ck_assert_uint_eq(n, sizeof(panel_sk));
    memcpy(panel_sk, data, n);
    free(data);
}

/* The site's state in the panel. */
static int wait_site_state(const char *want, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    char path[128];

    snprintf(path, sizeof(path), "/sites/%s", site_id);
    while (clock_mono_ms() < end) {
        h_resp r;
        int ok;

        ck_assert_int_eq(h_call(&panel, &r, "GET", path, access_token, NULL),
                         200);
        ok = strcmp(h_jstr(json_object_get(r.json, "status"), "state"),
                    want) == 0;
        h_resp_free(&r);
        if (ok)
            return 1;
        clock_sleep_ms(100);
    }
    return 0;
}

static void make_reader(void)
{
    h_resp r;

    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", access_token,
                            "{\"name\":\"files-reader\",\"permissions\":"
                            "[\"site.read\",\"site.files.read\"]}"),
                     200);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", access_token,
                            "{\"name\":\"reader\",\"password\":\"" USER_PASSWORD
                            "\",\"email\":\"reader@example.org\","
                            "\"role_name\":\"files-reader\"}"),
                     201);
    h_resp_free(&r);
    ck_assert_int_eq(
        h_login(&panel, "reader", USER_PASSWORD, reader_token, NULL), 201);
}

static void suite_up(void)
{
    char body[512], *id;
    size_t n = 0;
    h_resp r;

    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, NULL), 0);
    ck_assert_int_eq(
        h_login(&panel, "admin", ADMIN_PASSWORD, access_token, NULL), 201);
    read_panel_key();
    make_reader();
    tmp = h_tempdir("daemon-direct");
    ck_assert_ptr_nonnull(tmp);
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    dport = h_free_port();
    ck_assert_int_gt(dport, 0);
    start_daemon();
    {
        char p[1100];

        snprintf(p, sizeof(p), "%s/node.id", data_dir);
        ck_assert_int_eq(fs_read_file(p, 4096, &id, &n), 0);
        snprintf(node_id, sizeof(node_id), "%s", id);
        free(id);
    }
    ck_assert_int_eq(h_wait_log(log_path, "msg=\"node registered\"", 15000), 0);
    ck_assert_int_eq(h_wait_log(log_path, "msg=\"panel key\"", 15000), 0);
    ck_assert_int_eq(h_image_build(), 0);
    snprintf(body, sizeof(body),
             "{\"name\":\"direct\",\"image\":\"" H_TEST_IMAGE "\","
             "\"node\":\"%s\",\"command\":[\"sh\",\"-c\","
             "\"echo hello-from-site; while read l; do echo got:$l; done\"],"
             "\"memoryBytes\":67108864}",
             node_id);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/sites", access_token, body),
                     202);
    snprintf(site_id, sizeof(site_id), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    ck_assert_msg(wait_site_state("running", 60000), "the site never ran");
    snprintf(site_dir, sizeof(site_dir), "%s/volumes/%s", data_dir, site_id);
}

static void suite_down(void)
{
    char label[128];

    if (dproc.pid > 0)
        h_proc_stop(&dproc, SIGTERM, 15000);
    h_proc_free(&dproc);
    snprintf(label, sizeof(label), "berth.node=%s", node_id);
    h_docker_rm_labelled(label);
    h_tempdir_drop(tmp, "daemon");
    tmp = NULL;
    h_panel_stop(&panel);
}

/* Writes a file into the site's directory directly. */
static void put_file(const char *rel, const void *data, size_t len)
{
    char path[2048];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", site_dir, rel);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static int exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* ------------------------------------------------------------ tests */

START_TEST(health_answers_without_a_token)
{
    char v[256];
    dresp r;

    ck_assert_int_eq(dcall("GET", "/health", NULL, "http://elsewhere.test",
                           NULL, 0, NULL, &r),
                     200);
    ck_assert(json_is_true(json_object_get(r.json, "ok")));
    ck_assert_str_eq(h_jstr(r.json, "node"), node_id);
    ck_assert_str_ne(h_jstr(r.json, "version"), "");
    ck_assert_str_eq(h_jstr(r.json, "panelOrigin"), ORIGIN);
    ck_assert_str_eq(dheader(&r, "access-control-allow-origin", v, sizeof(v)),
                     "*");
    dresp_free(&r);
    ck_assert_int_eq(dcall("GET", "/nowhere", NULL, NULL, NULL, 0, NULL, &r),
                     404);
    dresp_free(&r);
}
END_TEST

START_TEST(tokens_are_checked)
{
    char tok[TOKEN_MAX], bad[TOKEN_MAX], p[TOKEN_MAX + 256];
    char other[ID_UUID_LEN + 1];
    size_t n;
    dresp r;

    fpath(p, sizeof(p), "list", "/");
    /* None. */
    ck_assert_int_eq(dcall("GET", p, NULL, NULL, NULL, 0, NULL, &r), 401);
    ck_assert_str_eq(derr(&r), "EAUTH");
    dresp_free(&r);
    /* A real one works, in the header and in the query. */
    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
    snprintf(p, sizeof(p), "/sites/%s/files/list?path=/&token=%s", site_id,
             tok);
    ck_assert_int_eq(dcall("GET", p, NULL, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
    fpath(p, sizeof(p), "list", "/");
    /* A bad signature: one character of it changed. */
    snprintf(bad, sizeof(bad), "%s", tok);
    n = strlen(bad);
    bad[n - 3] = bad[n - 3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 401);
    ck_assert_str_eq(derr(&r), "EAUTH");
    dresp_free(&r);
    /* Claims changed under the signature. */
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[5] = bad[5] == 'x' ? 'y' : 'x';
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 401);
    dresp_free(&r);
    ck_assert_int_eq(dcall("GET", p, "garbage", NULL, NULL, 0, NULL, &r), 401);
    dresp_free(&r);
    /* Expired. */
    forge(bad, site_id, node_id, "files", ALL_FILES, -5);
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 401);
    ck_assert_ptr_nonnull(strstr(h_jstr(r.json, "message"), "expired"));
    dresp_free(&r);
    /* The same forged claims, valid: accepted (the forge is sound). */
    forge(bad, site_id, node_id, "files", ALL_FILES, 60);
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
    /* Another site: in the token, and in the URL. */
    ck_assert_int_eq(id_uuid(other), 0);
    forge(bad, other, node_id, "files", ALL_FILES, 60);
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 403);
    ck_assert_ptr_nonnull(strstr(h_jstr(r.json, "message"), "another site"));
    dresp_free(&r);
    snprintf(p, sizeof(p), "/sites/%s/files/list?path=/", other);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 403);
    dresp_free(&r);
    fpath(p, sizeof(p), "list", "/");
    /* Another node. */
    forge(bad, site_id, other, "files", ALL_FILES, 60);
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 403);
    ck_assert_ptr_nonnull(strstr(h_jstr(r.json, "message"), "another node"));
    dresp_free(&r);
    /* Another scope: a console token on the files. */
    panel_token(access_token, "console", bad, sizeof(bad));
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 403);
    ck_assert_ptr_nonnull(strstr(h_jstr(r.json, "message"), "scope"));
    dresp_free(&r);
    /* A permission missing: the panel's token of a user who may read the
     * files, not write them. */
    panel_token(reader_token, "files", bad, sizeof(bad));
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
    fpath(p, sizeof(p), "mkdir", NULL);
    ck_assert_int_eq(dcall("POST", p, bad, NULL, "{\"path\":\"/nope\"}", 15,
                           NULL, &r),
                     403);
    ck_assert_ptr_nonnull(
        strstr(h_jstr(r.json, "message"), "site.files.write"));
    dresp_free(&r);
    fpath(p, sizeof(p), "upload", "/nope.txt");
    ck_assert_int_eq(dcall("PUT", p, bad, NULL, "x", 1, NULL, &r), 403);
    dresp_free(&r);
    {
        char f[1400];

        snprintf(f, sizeof(f), "%s/nope", site_dir);
        ck_assert(!exists(f));
        snprintf(f, sizeof(f), "%s/nope.txt", site_dir);
        ck_assert(!exists(f));
    }
    /* A user without site.files.read gets no token from the panel at all;
     * a forged token without it is refused here. */
    forge(bad, site_id, node_id, "files", "site.files.write", 60);
    fpath(p, sizeof(p), "list", "/");
    ck_assert_int_eq(dcall("GET", p, bad, NULL, NULL, 0, NULL, &r), 403);
    dresp_free(&r);
}
END_TEST

static int ws_open(const char *query);
static json_t *ws_until(int fd, const char *type, buf *seen, int timeout_ms);

/* The panel revokes a user (deleted here): the daemon closes the user's
 * console and refuses the tokens it was given before. */
START_TEST(revoked_users_are_cut_off)
{
    char access[H_ACCESS_MAX], tok[TOKEN_MAX], ctok[TOKEN_MAX];
    char q[TOKEN_MAX + 16], p[512], id[64];
    json_t *j;
    dresp r;
    h_resp hr;
    int fd;

    ck_assert_int_eq(h_call(&panel, &hr, "POST", "/user/create", access_token,
                            "{\"name\":\"leaver\",\"password\":\""
                            USER_PASSWORD "\",\"email\":"
                            "\"leaver@example.org\",\"role_name\":\"admin\"}"),
                     201);
    snprintf(id, sizeof(id), "%s", h_jstr(hr.json, "uuid"));
    h_resp_free(&hr);
    ck_assert_str_ne(id, "");
    ck_assert_int_eq(h_login(&panel, "leaver", USER_PASSWORD, access, NULL),
                     201);
    panel_token(access, "files", tok, sizeof(tok));
    panel_token(access, "console", ctok, sizeof(ctok));
    fpath(p, sizeof(p), "list", "/");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
    snprintf(q, sizeof(q), "?token=%s", ctok);
    fd = ws_open(q);
    j = ws_until(fd, "ready", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);

    snprintf(q, sizeof(q), "/user/%s", id);
    ck_assert_int_eq(h_call(&panel, &hr, "DELETE", q, access_token, NULL), 200);
    h_resp_free(&hr);
    j = ws_until(fd, "error", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(h_jstr(j, "code"), "EAUTH");
    json_decref(j);
    j = ws_until(fd, "close", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    close(fd);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 401);
    ck_assert_ptr_nonnull(strstr(h_jstr(r.json, "message"), "revoked"));
    dresp_free(&r);
    /* Others are not affected. */
    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
}
END_TEST

START_TEST(a_transfer_token_is_spent)
{
    char tok[TOKEN_MAX], p[512];
    dresp r;

    put_file("spent.txt", "spent\n", 6);
    files_token(tok);
    fpath(p, sizeof(p), "download", "/spent.txt");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    ck_assert_str_eq(r.body.data, "spent\n");
    dresp_free(&r);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 401);
    ck_assert_ptr_nonnull(strstr(h_jstr(r.json, "message"), "used already"));
    dresp_free(&r);
    /* Spent for every transfer, not only the same one. */
    fpath(p, sizeof(p), "upload", "/spent2.txt");
    ck_assert_int_eq(dcall("PUT", p, tok, NULL, "x", 1, NULL, &r), 401);
    dresp_free(&r);
    /* Operations that are not transfers keep working with it. */
    fpath(p, sizeof(p), "stat", "/spent.txt");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "size")), 6);
    dresp_free(&r);
}
END_TEST

/* ------------------------------------------------------------ console */

/* Opens a console websocket with target's query; returns the socket. */
static int ws_open(const char *query)
{
    char target[TOKEN_MAX + 256], head[2048];
    int fd = h_tcp_connect(dport, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(target, sizeof(target), "/sites/%s/console%s", site_id, query);
    ck_assert_int_eq(h_ws_handshake(fd, target, head, sizeof(head), 5000), 0);
    ck_assert_msg(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
    return fd;
}

/* Reads messages until one of type arrives (its JSON, a new reference),
 * appending the data of output and replay messages to seen when not
 * NULL. NULL after timeout_ms. */
static json_t *ws_until(int fd, const char *type, buf *seen, int timeout_ms)
{
    static char msg[1 << 20];
    int64_t end = clock_mono_ms() + timeout_ms;
    size_t len;

    while (clock_mono_ms() < end) {
        int left = (int)(end - clock_mono_ms());
        int op = h_ws_recv(fd, msg, sizeof(msg), &len, left > 0 ? left : 1);
        json_t *j;
        const char *t;

        if (op == H_WS_CLOSE || op < 0)
            return op == H_WS_CLOSE && strcmp(type, "close") == 0
                       ? json_pack("{s:s}", "type", "close")
                       : NULL;
        if (op != H_WS_TEXT)
            continue;
        j = json_loadb(msg, len, 0, NULL);
        ck_assert_msg(j != NULL, "not JSON: %.200s", msg);
        t = h_jstr(j, "type");
        if (seen != NULL &&
            (strcmp(t, "output") == 0 || strcmp(t, "replay") == 0))
            buf_puts(seen, h_jstr(j, "data"));
        if (strcmp(t, type) == 0)
            return j;
        json_decref(j);
    }
    return NULL;
}

/* Reads until seen holds needle. */
static int ws_see(int fd, buf *seen, const char *needle, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    while (seen->data == NULL || strstr(seen->data, needle) == NULL) {
        json_t *j;

        if (clock_mono_ms() >= end)
            return 0;
        j = ws_until(fd, "never", seen, 200);
        json_decref(j);
    }
    return 1;
}

static void ws_send_json(int fd, const char *json)
{
    ck_assert_int_eq(h_ws_send(fd, H_WS_TEXT, json, strlen(json)), 0);
}

START_TEST(console_replays_streams_and_takes_input)
{
    char tok[TOKEN_MAX], q[TOKEN_MAX + 16], msg[TOKEN_MAX + 64];
    buf seen;
    json_t *j;
    int fd, fd2;

    panel_token(access_token, "console", tok, sizeof(tok));
    snprintf(q, sizeof(q), "?token=%s", tok);
    fd = ws_open(q);
    buf_init(&seen, 8u << 20);
    j = ws_until(fd, "ready", &seen, 5000);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(h_jstr(j, "site"), site_id);
    ck_assert_str_eq(h_jstr(j, "node"), node_id);
    ck_assert_int_gt(json_integer_value(json_object_get(j, "expiresAt")),
                     clock_wall_ms() / 1000);
    json_decref(j);
    /* The replay holds what the site printed at start, then its status. */
    j = ws_until(fd, "site.status", &seen, 5000);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(h_jstr(json_object_get(j, "data"), "state"),
                     "SITE_STATE_RUNNING");
    json_decref(j);
    ck_assert_ptr_nonnull(strstr(seen.data, "hello-from-site"));
    /* Input, a line at a time and raw. */
    ws_send_json(fd, "{\"type\":\"line\",\"data\":\"first\"}");
    ck_assert_msg(ws_see(fd, &seen, "got:first", 5000), "%s", seen.data);
    ws_send_json(fd, "{\"type\":\"input\",\"data\":\"sec\"}");
    ws_send_json(fd, "{\"type\":\"input\",\"data\":\"ond\\n\"}");
    ck_assert(ws_see(fd, &seen, "got:second", 5000));
    /* Stats arrive once a second. */
    j = ws_until(fd, "site.stats", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(h_jstr(j, "siteId"), site_id);
    json_decref(j);
    /* Ping. */
    ws_send_json(fd, "{\"type\":\"ping\"}");
    j = ws_until(fd, "pong", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    /* A second viewer (token in the first message) gets it all replayed
     * and sees the first one's input live. */
    fd2 = ws_open("");
    snprintf(msg, sizeof(msg), "{\"type\":\"auth\",\"token\":\"%s\"}", tok);
    ws_send_json(fd2, msg);
    buf_reset(&seen);
    j = ws_until(fd2, "site.status", &seen, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    ck_assert_ptr_nonnull(strstr(seen.data, "hello-from-site"));
    ck_assert_ptr_nonnull(strstr(seen.data, "got:second"));
    ck_assert_ptr_null(strstr(seen.data, "got:third"));
    ws_send_json(fd, "{\"type\":\"line\",\"data\":\"third\"}");
    ck_assert(ws_see(fd2, &seen, "got:third", 5000));
    /* Each line once: live output is not repeated after the replay. */
    {
        const char *first = strstr(seen.data, "got:second");

        ck_assert_ptr_null(strstr(first + 1, "got:second"));
    }
    /* A fresh token on the same socket. */
    panel_token(access_token, "console", tok, sizeof(tok));
    snprintf(msg, sizeof(msg), "{\"type\":\"auth\",\"token\":\"%s\"}", tok);
    ws_send_json(fd2, msg);
    j = ws_until(fd2, "auth.ok", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    /* Bad messages are answered, the socket stays. */
    ws_send_json(fd2, "{\"type\":\"dance\"}");
    j = ws_until(fd2, "error", NULL, 5000);
    ck_assert_str_eq(h_jstr(j, "code"), "EPROTO");
    json_decref(j);
    ws_send_json(fd2, "not json");
    j = ws_until(fd2, "error", NULL, 5000);
    json_decref(j);
    close(fd2);
    close(fd);
    buf_free(&seen);
}
END_TEST

START_TEST(console_tokens_are_checked)
{
    char tok[TOKEN_MAX], q[TOKEN_MAX + 16], msg[TOKEN_MAX + 64];
    buf seen;
    json_t *j;
    int fd;

    buf_init(&seen, 1u << 20);
    /* A files token. */
    files_token(tok);
    snprintf(q, sizeof(q), "?token=%s", tok);
    fd = ws_open(q);
    j = ws_until(fd, "error", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(h_jstr(j, "code"), "EPERM");
    json_decref(j);
    j = ws_until(fd, "close", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    close(fd);
    /* Anything before auth. */
    fd = ws_open("");
    ws_send_json(fd, "{\"type\":\"line\",\"data\":\"sneaky\"}");
    j = ws_until(fd, "error", NULL, 5000);
    ck_assert_str_eq(h_jstr(j, "code"), "EAUTH");
    json_decref(j);
    j = ws_until(fd, "close", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    close(fd);
    /* Read-only: output yes, input no, power no. */
    forge(tok, site_id, node_id, "console", "site.console.read", 120);
    snprintf(q, sizeof(q), "?token=%s", tok);
    fd = ws_open(q);
    j = ws_until(fd, "ready", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    ws_send_json(fd, "{\"type\":\"line\",\"data\":\"readonly\"}");
    j = ws_until(fd, "error", NULL, 5000);
    ck_assert_str_eq(h_jstr(j, "code"), "EPERM");
    json_decref(j);
    ws_send_json(fd, "{\"type\":\"power\",\"action\":\"stop\"}");
    j = ws_until(fd, "error", NULL, 5000);
    ck_assert_str_eq(h_jstr(j, "code"), "EPERM");
    json_decref(j);
    /* A fresh token of another user is refused, the socket stays. */
    panel_token(access_token, "console", tok, sizeof(tok));
    snprintf(msg, sizeof(msg), "{\"type\":\"auth\",\"token\":\"%s\"}", tok);
    ws_send_json(fd, msg);
    j = ws_until(fd, "error", NULL, 5000);
    ck_assert_str_eq(h_jstr(j, "code"), "EPERM");
    json_decref(j);
    close(fd);
    /* Expiring: warned, then closed when it runs out. */
    forge(tok, site_id, node_id, "console", ALL_CONSOLE, 3);
    snprintf(q, sizeof(q), "?token=%s", tok);
    fd = ws_open(q);
    j = ws_until(fd, "token.expiring", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_le(json_integer_value(json_object_get(j, "expiresIn")), 3);
    json_decref(j);
    j = ws_until(fd, "error", NULL, 6000);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(h_jstr(j, "code"), "EAUTH");
    json_decref(j);
    j = ws_until(fd, "close", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    close(fd);
    /* Renewed in time, it lives on. */
    forge(tok, site_id, node_id, "console", ALL_CONSOLE, 3);
    snprintf(q, sizeof(q), "?token=%s", tok);
    fd = ws_open(q);
    j = ws_until(fd, "token.expiring", NULL, 5000);
    json_decref(j);
    forge(tok, site_id, node_id, "console", ALL_CONSOLE, 600);
    snprintf(msg, sizeof(msg), "{\"type\":\"auth\",\"token\":\"%s\"}", tok);
    ws_send_json(fd, msg);
    j = ws_until(fd, "auth.ok", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    clock_sleep_ms(3500);
    ws_send_json(fd, "{\"type\":\"ping\"}");
    j = ws_until(fd, "pong", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    close(fd);
    /* Another origin cannot open a console at all. */
    fd = h_tcp_connect(dport, 0);
    {
        char req[TOKEN_MAX + 512];
        char head[1024];
        size_t n;

        snprintf(req, sizeof(req),
                 "GET /sites/%s/console?token=%s HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nOrigin: http://evil.test\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
                 site_id, tok);
        ck_assert_int_eq(h_send_all(fd, req, strlen(req)), 0);
        n = h_recv_n(fd, head, sizeof(head) - 1, 2000);
        head[n] = '\0';
        ck_assert_msg(strncmp(head, "HTTP/1.1 101", 12) != 0, "%s", head);
    }
    close(fd);
    buf_free(&seen);
}
END_TEST

static const char *site_desired(char *out, size_t size)
{
    char path[128];
    h_resp r;

    snprintf(path, sizeof(path), "/sites/%s", site_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, access_token, NULL), 200);
    snprintf(out, size, "%s", h_jstr(r.json, "desiredState"));
    h_resp_free(&r);
    return out;
}

/* Sends power action over the console, expects it accepted, then the
 * panel's desired state and the site's state, and an audit row of the
 * action with the token's user. */
static void power_and_expect(int fd, const char *action, const char *desired,
                             const char *state)
{
    char msg[96], path[160], got[32];
    json_t *j, *e;
    h_resp r;
    size_t i, n;
    int found = 0;

    snprintf(msg, sizeof(msg), "{\"type\":\"power\",\"action\":\"%s\"}",
             action);
    ws_send_json(fd, msg);
    j = ws_until(fd, "power", NULL, 60000);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(json_is_true(json_object_get(j, "ok")), "%s",
                  h_jstr(j, "message"));
    json_decref(j);
    ck_assert_str_eq(site_desired(got, sizeof(got)), desired);
    ck_assert_msg(wait_site_state(state, 60000), "site never %s", state);
    snprintf(path, sizeof(path), "/audit?action=site.power&target=%s&limit=50",
             site_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, access_token, NULL), 200);
    n = json_array_size(json_object_get(r.json, "entries"));
    for (i = 0; i < n; i++) {
        e = json_array_get(json_object_get(r.json, "entries"), i);
        if (strcmp(h_jstr(json_object_get(e, "detail"), "action"), action) ==
                0 &&
            json_is_string(json_object_get(e, "userId")))
            found = 1;
    }
    h_resp_free(&r);
    ck_assert_msg(found, "no audit row of %s with a user", action);
}

START_TEST(console_power_restarts_the_site)
{
    char tok[TOKEN_MAX], q[TOKEN_MAX + 16];
    buf seen;
    json_t *j;
    int fd;

    buf_init(&seen, 8u << 20);
    panel_token(access_token, "console", tok, sizeof(tok));
    snprintf(q, sizeof(q), "?token=%s", tok);
    fd = ws_open(q);
    j = ws_until(fd, "site.status", &seen, 5000);
    json_decref(j);
    ws_send_json(fd, "{\"type\":\"power\",\"action\":\"jump\"}");
    j = ws_until(fd, "error", NULL, 5000);
    ck_assert_str_eq(h_jstr(j, "code"), "EINVAL");
    json_decref(j);
    buf_reset(&seen);
    ws_send_json(fd, "{\"type\":\"power\",\"action\":\"restart\"}");
    j = ws_until(fd, "power", &seen, 60000);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(json_is_true(json_object_get(j, "ok")), "%s",
                  h_jstr(j, "message"));
    ck_assert_str_eq(h_jstr(j, "action"), "restart");
    json_decref(j);
    /* Live: the new run's first line. */
    ck_assert_msg(ws_see(fd, &seen, "hello-from-site", 20000), "%s",
                  seen.data != NULL ? seen.data : "");
    /* A stop goes through the panel: its desired state follows (so a
     * reconcile keeps the site stopped) and the audit log names the user;
     * a start brings both back. */
    power_and_expect(fd, "stop", "stopped", "offline");
    power_and_expect(fd, "start", "running", "running");
    close(fd);
    buf_free(&seen);
}
END_TEST

/* ------------------------------------------------------------ attacks */

typedef struct attack {
    const char *q; /* the path parameter, sent as written */
    int status;    /* what a read of it gets; NUL: see below */
} attack;

/* libwebsockets 4.1 drops a connection whose URI holds %00 before any
 * callback runs: no answer at all, which is a refusal too. A decoded CR
 * or LF ends the URI there (the rest of the request line is skipped), so
 * such a path names its own prefix: never more than the client could
 * name anyway. */
#define NUL 0

/* Whether status is what an attack of want should get. */
static int refused_as(long status, int want)
{
    return want == NUL ? status == 0 || status == 400 : status == want;
}

/* The sandbox's attack list (tests/unit/daemon/sandbox.c) as it arrives
 * over HTTP: every one decoded once by the server, then refused by the
 * sandbox, or taken literally as a name that does not exist. */
static const attack attacks[] = {
    {"..", 403},
    {"../", 403},
    {"../secret.txt", 403},
    {"a/../../secret.txt", 403},
    {"./../x", 403},
    {"/../etc/passwd", 403},
    {"/..", 403},
    {"/./../etc/passwd", 403},
    {"a/b/../../../x", 403},
    {"..//..//etc/passwd", 403},
    {"../../../../../../../../../../etc/passwd", 403},
    {"a/./../.././../etc", 403},
    {"%2e%2e", 403},
    {"%2e%2e%2f", 403},
    {"%2E%2E%2Fsecret.txt", 403},
    {"%2e%2e%2f%2e%2e%2fetc%2fpasswd", 403},
    {"..%2f..%2fetc%2fpasswd", 403},
    {"%2f..%2f..%2fetc%2fpasswd", 403},
    {".%2e/secret.txt", 403},
    {"%2e./secret.txt", 403},
    {"sub%2f..%2f..%2fsecret.txt", 403},
    {"%2fetc%2fpasswd", 404},
    {"%252e%252e%252fsecret.txt", 404},
    {"%252e%252e/secret.txt", 404},
    {"..%252fsecret.txt", 404},
    {"%c0%ae%c0%ae/secret.txt", 404},
    {"%c0%ae%c0%ae%c0%afsecret.txt", 404},
    {"%e2%80%a4%e2%80%a4/secret.txt", 404},
    {"%ef%bc%8e%ef%bc%8e/secret.txt", 404},
    {"..%5c..%5csecret.txt", 404},
    {"%5c..%5c..%5cetc%5cpasswd", 404},
    {"....//....//secret.txt", 404},
    {"...", 404},
    {"/etc/passwd", 404},
    {"//etc//passwd", 404},
    {"/proc/self/root/etc/passwd", 404},
    {"/proc/self/environ", 404},
    {"..%00/etc/passwd", NUL},
    {"a%00b", NUL},
    {"%00", NUL},
    {"spent.txt%00.png", NUL},
    {"a%01b", 400},
    {"a%0ab", 404},
    {"a%0db", 404},
    {"a%09b", 400},
    {"%7f", 400},
    {"%1b%5b31mred", 400},
    {"..%2f%0a..%2fetc", 403},
    {"link_out", 403},
    {"link_out/passwd", 403},
    {"link_out%2fpasswd", 403},
    {"link_sib", 403},
    {"link_sib_dir/secret.txt", 403},
    {"link_abs_in", 403},
    {"link_proc/self/environ", 403},
    {"link_loop", 403},
    {"link_loop/x", 403},
    {"sub/up_out", 403},
    {"sub/up_out/secret.txt", 403},
    {"link_in/../../secret.txt", 403},
};

#define NATTACKS (sizeof(attacks) / sizeof(attacks[0]))

START_TEST(path_attacks_are_refused)
{
    char tok[TOKEN_MAX], p[2048], body[1024], outside[1200], sib[1300];
    char longq[6000];
    size_t i;
    dresp r;

    ck_assert_uint_ge(NATTACKS, 50);
    /* Something outside the site to reach for, links that lead to it. */
    snprintf(outside, sizeof(outside), "%s/volumes/secret.txt", data_dir);
    ck_assert_int_eq(fs_write_atomic(outside, "secret\n", 7, 0644), 0);
    snprintf(sib, sizeof(sib), "%s/sub", site_dir);
    mkdir(sib, 0755);
#define LINK(target, name)                                                     \
    do {                                                                       \
        char l_[1400];                                                         \
        snprintf(l_, sizeof(l_), "%s/%s", site_dir, name);                     \
        ck_assert_int_eq(symlink(target, l_), 0);                              \
    } while (0)
    LINK("/etc", "link_out");
    LINK("../secret.txt", "link_sib");
    LINK("..", "link_sib_dir");
    LINK(site_dir, "link_abs_in");
    LINK("/proc", "link_proc");
    LINK("link_loop", "link_loop");
    LINK("../..", "sub/up_out");
    LINK("sub", "link_in");

    files_token(tok);
    for (i = 0; i < NATTACKS; i++) {
        static const char *const ops[] = {"list", "stat"};
        size_t k;

        for (k = 0; k < 2; k++) {
            fpath(p, sizeof(p), ops[k], attacks[i].q);
            dcall("GET", p, tok, NULL, NULL, 0, NULL, &r);
            /* stat is lstat: a final link is shown as the link itself. */
            ck_assert_msg(refused_as(r.status, attacks[i].status) ||
                              (k == 1 && r.status == 200 &&
                               strcmp(h_jstr(r.json, "type"), "link") == 0),
                          "%s %s: %ld %s, want %d", ops[k], attacks[i].q,
                          r.status, r.body.data, attacks[i].status);
            ck_assert(r.body.data == NULL ||
                      strstr(r.body.data, "secret\n") == NULL);
            dresp_free(&r);
        }
        /* Reading spends a token each time. */
        {
            char t2[TOKEN_MAX];

            files_token(t2);
            fpath(p, sizeof(p), "download", attacks[i].q);
            dcall("GET", p, t2, NULL, NULL, 0, NULL, &r);
            ck_assert_msg(refused_as(r.status, attacks[i].status),
                          "download %s: %ld %s", attacks[i].q, r.status,
                          r.body.data);
            ck_assert(r.body.data == NULL ||
                      strstr(r.body.data, "secret\n") == NULL);
            dresp_free(&r);
        }
    }
    /* Writes through the same paths make nothing anywhere. */
    {
        static const char *const evil[] = {
            "../evil", "..%2fevil", "%2e%2e%2fevil", "link_sib_dir/evil",
            "link_out/evil", "sub/up_out/evil", "%2e%2e%2f%2e%2e%2fevil",
            "/../../evil", "link_sib/evil",
        };
        char t2[TOKEN_MAX], e1[1400], e2[1400];

        for (i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
            files_token(t2);
            fpath(p, sizeof(p), "upload", evil[i]);
            dcall("PUT", p, t2, NULL, "pwned", 5, NULL, &r);
            ck_assert_msg(r.status == 403, "upload %s: %ld %s", evil[i],
                          r.status, r.body.data);
            dresp_free(&r);
        }
        static const char *const ops[] = {"mkdir", "create", "delete",
                                          "chmod"};
        static const char *const jpaths[] = {"../evil", "/../evil",
                                             "link_sib_dir/evil",
                                             "sub/up_out/evil", "link_out/x"};
        for (i = 0; i < 4; i++) {
            size_t k;

            for (k = 0; k < sizeof(jpaths) / sizeof(jpaths[0]); k++) {
                snprintf(body, sizeof(body),
                         "{\"path\":\"%s\",\"mode\":\"0777\",\"recursive\":true}",
                         jpaths[k]);
                fpath(p, sizeof(p), ops[i], NULL);
                dcall("POST", p, tok, NULL, body, strlen(body), NULL, &r);
                ck_assert_msg(r.status == 403 || r.status == 404,
                              "%s %s: %ld %s", ops[i], jpaths[k], r.status,
                              r.body.data);
                dresp_free(&r);
            }
        }
        snprintf(body, sizeof(body),
                 "{\"from\":\"spent.txt\",\"to\":\"../evil\"}");
        fpath(p, sizeof(p), "rename", NULL);
        ck_assert_int_eq(dcall("POST", p, tok, NULL, body, strlen(body), NULL,
                               &r),
                         403);
        dresp_free(&r);
        fpath(p, sizeof(p), "copy", NULL);
        ck_assert_int_eq(dcall("POST", p, tok, NULL, body, strlen(body), NULL,
                               &r),
                         403);
        dresp_free(&r);
        snprintf(body, sizeof(body),
                 "{\"from\":\"link_sib\",\"to\":\"stolen\"}");
        ck_assert_int_eq(dcall("POST", p, tok, NULL, body, strlen(body), NULL,
                               &r),
                         403);
        dresp_free(&r);
        snprintf(body, sizeof(body), "{\"path\":\"a\\u0000b\"}");
        fpath(p, sizeof(p), "mkdir", NULL);
        ck_assert_int_eq(dcall("POST", p, tok, NULL, body, strlen(body), NULL,
                               &r),
                         400);
        dresp_free(&r);
        snprintf(e1, sizeof(e1), "%s/volumes/evil", data_dir);
        snprintf(e2, sizeof(e2), "%s/evil", data_dir);
        ck_assert(!exists(e1));
        ck_assert(!exists(e2));
        ck_assert(!exists("/etc/evil"));
        snprintf(e1, sizeof(e1), "%s/stolen", site_dir);
        ck_assert(!exists(e1));
    }
    /* The URL itself: dot segments and encodings around the route. */
    {
        static const char *const urls[] = {
            "/sites/%s/files/../../../etc/passwd",
            "/sites/%s/files/%%2e%%2e/%%2e%%2e/etc/passwd",
            "/sites/%s/files/list/../../../../etc/passwd",
            "/sites/..%%2f..%%2fetc/files/list?path=/",
            "/sites/%%2e%%2e/files/list?path=/",
            "/sites/%s%%00/files/list?path=/",
            "/sites/%s/files/list%%00?path=/",
            "/sites/%s/files/%%2e%%2e%%2f%%2e%%2e%%2fetc%%2fpasswd",
            "/sites/%s/files/download/..%%2f..%%2f..%%2fetc%%2fpasswd",
        };

        for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
            snprintf(p, sizeof(p), urls[i], site_id);
            dcall("GET", p, tok, NULL, NULL, 0, NULL, &r);
            ck_assert_msg(r.status == 0 || r.status >= 400, "%s: %ld", p,
                          r.status);
            ck_assert(r.body.data == NULL || strstr(r.body.data, "root:") == NULL);
            dresp_free(&r);
        }
    }
    /* Too long a path. */
    memset(longq, 'a', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    fpath(p, sizeof(p), "stat", NULL);
    snprintf(body, sizeof(body), "?path=%.900s", longq);
    {
        char big[8000];

        snprintf(big, sizeof(big), "%s%s", p, body);
        ck_assert_int_eq(dcall("GET", big, tok, NULL, NULL, 0, NULL, &r), 400);
        dresp_free(&r);
    }
    /* A plus and a space are what they say. */
    put_file("a+b c.txt", "plus", 4);
    fpath(p, sizeof(p), "stat", "a%2Bb%20c.txt");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
}
END_TEST

/* ------------------------------------------------------------ operations */

/* POSTs a JSON operation; returns the status, r filled. */
static long op(const char *tok, const char *name, const char *body, dresp *r)
{
    char p[512];

    fpath(p, sizeof(p), name, NULL);
    return dcall("POST", p, tok, ORIGIN, body, strlen(body), NULL, r);
}

/* Whether entries (a listing) holds name of type. */
static int listed(const dresp *r, const char *name, const char *type)
{
    json_t *e;
    size_t i;

    json_array_foreach(json_object_get(r->json, "entries"), i, e)
    {
        if (strcmp(h_jstr(e, "name"), name) == 0 &&
            strcmp(h_jstr(e, "type"), type) == 0)
            return 1;
    }
    return 0;
}

START_TEST(file_operations_work)
{
    char tok[TOKEN_MAX], t2[TOKEN_MAX], p[512], v[256], f[1400];
    struct stat st;
    dresp r;

    files_token(tok);
    ck_assert_int_eq(op(tok, "mkdir", "{\"path\":\"/www/assets/img\","
                                      "\"parents\":true}", &r),
                     201);
    ck_assert_str_eq(h_jstr(r.json, "type"), "dir");
    ck_assert_str_eq(dheader(&r, "access-control-allow-origin", v, sizeof(v)),
                     ORIGIN);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "mkdir", "{\"path\":\"/www\"}", &r), 409);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "create", "{\"path\":\"/www/index.html\"}", &r),
                     201);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "size")), 0);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "create", "{\"path\":\"/www/index.html\"}", &r),
                     409);
    dresp_free(&r);
    /* Write, read back. */
    files_token(t2);
    fpath(p, sizeof(p), "write", "/www/index.html");
    ck_assert_int_eq(dcall("PUT", p, t2, ORIGIN, "<h1>hi</h1>\n", 12, NULL,
                           &r),
                     201);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "size")), 12);
    dresp_free(&r);
    files_token(t2);
    fpath(p, sizeof(p), "read", "/www/index.html");
    ck_assert_int_eq(dcall("GET", p, t2, ORIGIN, NULL, 0, NULL, &r), 200);
    ck_assert_str_eq(r.body.data, "<h1>hi</h1>\n");
    ck_assert_str_eq(dheader(&r, "content-disposition", v, sizeof(v)), "");
    dresp_free(&r);
    /* overwrite=0 refuses to replace. */
    files_token(t2);
    snprintf(p, sizeof(p), "/sites/%s/files/upload?path=/www/index.html"
             "&overwrite=0", site_id);
    ck_assert_int_eq(dcall("PUT", p, t2, NULL, "x", 1, NULL, &r), 409);
    dresp_free(&r);
    /* List, stat. */
    fpath(p, sizeof(p), "list", "/www");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    ck_assert_str_eq(h_jstr(r.json, "path"), "/www");
    ck_assert(listed(&r, "assets", "dir"));
    ck_assert(listed(&r, "index.html", "file"));
    dresp_free(&r);
    fpath(p, sizeof(p), "list", "/");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    ck_assert(listed(&r, "link_out", "link"));
    dresp_free(&r);
    fpath(p, sizeof(p), "list", "/www/index.html");
    ck_assert_int_ne(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
    /* chmod. */
    ck_assert_int_eq(op(tok, "chmod", "{\"path\":\"/www/index.html\","
                                      "\"mode\":\"0600\"}", &r),
                     200);
    ck_assert_str_eq(h_jstr(r.json, "mode"), "0600");
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "chmod", "{\"path\":\"/www/index.html\","
                                      "\"mode\":\"4755\"}", &r),
                     403);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "chmod", "{\"path\":\"/www/index.html\","
                                      "\"mode\":\"rwx\"}", &r),
                     400);
    dresp_free(&r);
    /* Copy a tree, rename, delete. */
    ck_assert_int_eq(op(tok, "copy", "{\"from\":\"/www\",\"to\":\"/www2\"}",
                        &r),
                     201);
    ck_assert_int_ge(json_integer_value(json_object_get(r.json, "entries")), 4);
    dresp_free(&r);
    snprintf(f, sizeof(f), "%s/www2/index.html", site_dir);
    ck_assert_int_eq(stat(f, &st), 0);
    ck_assert_int_eq(st.st_size, 12);
    ck_assert_int_eq(op(tok, "copy", "{\"from\":\"/www\",\"to\":\"/www2\"}",
                        &r),
                     409);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "copy", "{\"from\":\"/www\",\"to\":\"/www/in\"}",
                        &r),
                     400);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "copy", "{\"from\":\"/www/index.html\","
                                     "\"to\":\"/copy.html\"}", &r),
                     201);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "rename", "{\"from\":\"/copy.html\","
                                       "\"to\":\"/www2/moved.html\"}", &r),
                     200);
    ck_assert_str_eq(h_jstr(r.json, "path"), "/www2/moved.html");
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "rename", "{\"from\":\"/www2/moved.html\","
                                       "\"to\":\"/www2/index.html\"}", &r),
                     409);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "delete", "{\"path\":\"/www2\"}", &r), 409);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "delete", "{\"path\":\"/www2\","
                                       "\"recursive\":true}", &r),
                     200);
    ck_assert_int_ge(json_integer_value(json_object_get(r.json, "deleted")), 5);
    dresp_free(&r);
    snprintf(f, sizeof(f), "%s/www2", site_dir);
    ck_assert(!exists(f));
    /* A recursive delete removes a link, never what it points to. */
    ck_assert_int_eq(op(tok, "mkdir", "{\"path\":\"/deep\"}", &r), 201);
    dresp_free(&r);
    {
        char l[1400];

        snprintf(l, sizeof(l), "%s/deep/sib", site_dir);
        ck_assert_int_eq(symlink("../../", l), 0);
    }
    ck_assert_int_eq(op(tok, "delete", "{\"path\":\"/deep\","
                                       "\"recursive\":true}", &r),
                     200);
    dresp_free(&r);
    snprintf(f, sizeof(f), "%s/volumes/secret.txt", data_dir);
    ck_assert(exists(f));
    ck_assert(exists(site_dir));
    ck_assert_int_eq(op(tok, "delete", "{\"path\":\"/\",\"recursive\":true}",
                        &r),
                     403);
    dresp_free(&r);
    /* Malformed requests. */
    ck_assert_int_eq(op(tok, "mkdir", "{\"path\":", &r), 400);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "mkdir", "[1]", &r), 400);
    dresp_free(&r);
    fpath(p, sizeof(p), "mkdir", NULL);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 405);
    dresp_free(&r);
    fpath(p, sizeof(p), "shred", NULL);
    ck_assert_int_eq(dcall("POST", p, tok, NULL, "{}", 2, NULL, &r), 404);
    dresp_free(&r);
}
END_TEST

START_TEST(origin_and_cors)
{
    char tok[TOKEN_MAX], p[512], v[256];
    dresp r;

    files_token(tok);
    fpath(p, sizeof(p), "list", "/");
    ck_assert_int_eq(dcall("GET", p, tok, "http://evil.test", NULL, 0, NULL,
                           &r),
                     403);
    ck_assert_str_eq(dheader(&r, "access-control-allow-origin", v, sizeof(v)),
                     "");
    dresp_free(&r);
    ck_assert_int_eq(dcall("GET", p, tok, ORIGIN, NULL, 0, NULL, &r), 200);
    ck_assert_str_eq(dheader(&r, "access-control-allow-origin", v, sizeof(v)),
                     ORIGIN);
    ck_assert_ptr_nonnull(strstr(
        dheader(&r, "access-control-expose-headers", v, sizeof(v)),
        "Content-Range"));
    dresp_free(&r);
    /* The preflight, without a token. */
    fpath(p, sizeof(p), "upload", "/x");
    ck_assert_int_eq(dcall("OPTIONS", p, NULL, ORIGIN, NULL, 0,
                           "Access-Control-Request-Method: PUT", &r),
                     204);
    ck_assert_str_eq(dheader(&r, "access-control-allow-origin", v, sizeof(v)),
                     ORIGIN);
    ck_assert_ptr_nonnull(strstr(
        dheader(&r, "access-control-allow-methods", v, sizeof(v)), "PUT"));
    ck_assert_ptr_nonnull(strstr(
        dheader(&r, "access-control-allow-headers", v, sizeof(v)),
        "Authorization"));
    dresp_free(&r);
}
END_TEST

/* ------------------------------------------------------------ transfers */

START_TEST(range_downloads)
{
    static unsigned char data[1 << 20];
    char tok[TOKEN_MAX], p[512], v[256];
    size_t i;
    dresp r;

    for (i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
    put_file("range.bin", data, sizeof(data));
    fpath(p, sizeof(p), "download", "/range.bin");

    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    ck_assert_uint_eq(r.body.len, sizeof(data));
    ck_assert_int_eq(memcmp(r.body.data, data, sizeof(data)), 0);
    ck_assert_str_eq(dheader(&r, "accept-ranges", v, sizeof(v)), "bytes");
    ck_assert_ptr_nonnull(strstr(
        dheader(&r, "content-disposition", v, sizeof(v)), "range.bin"));
    dresp_free(&r);

    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, "Range: bytes=0-99",
                           &r),
                     206);
    ck_assert_uint_eq(r.body.len, 100);
    ck_assert_int_eq(memcmp(r.body.data, data, 100), 0);
    ck_assert_str_eq(dheader(&r, "content-range", v, sizeof(v)),
                     "bytes 0-99/1048576");
    dresp_free(&r);

    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0,
                           "Range: bytes=1000000-", &r),
                     206);
    ck_assert_uint_eq(r.body.len, sizeof(data) - 1000000);
    ck_assert_int_eq(memcmp(r.body.data, data + 1000000, r.body.len), 0);
    dresp_free(&r);

    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, "Range: bytes=-10",
                           &r),
                     206);
    ck_assert_uint_eq(r.body.len, 10);
    ck_assert_int_eq(memcmp(r.body.data, data + sizeof(data) - 10, 10), 0);
    ck_assert_str_eq(dheader(&r, "content-range", v, sizeof(v)),
                     "bytes 1048566-1048575/1048576");
    dresp_free(&r);

    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0,
                           "Range: bytes=500000-500000000", &r),
                     206);
    ck_assert_uint_eq(r.body.len, sizeof(data) - 500000);
    dresp_free(&r);

    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0,
                           "Range: bytes=2000000-", &r),
                     416);
    ck_assert_str_eq(dheader(&r, "content-range", v, sizeof(v)),
                     "bytes */1048576");
    dresp_free(&r);

    /* Several ranges, or a stale If-Range: the whole file. */
    files_token(tok);
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0,
                           "Range: bytes=0-1,5-6", &r),
                     200);
    ck_assert_uint_eq(r.body.len, sizeof(data));
    dresp_free(&r);
    {
        char etag[128], hdr[256];

        files_token(tok);
        fpath(p, sizeof(p), "read", "/range.bin");
        ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0,
                               "Range: bytes=0-0", &r),
                         206);
        dheader(&r, "etag", etag, sizeof(etag));
        ck_assert_str_ne(etag, "");
        dresp_free(&r);
        files_token(tok);
        snprintf(hdr, sizeof(hdr), "Range: bytes=0-0\nIf-Range: %s", etag);
        ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, hdr, &r), 206);
        ck_assert_uint_eq(r.body.len, 1);
        dresp_free(&r);
        files_token(tok);
        ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0,
                               "Range: bytes=0-0\nIf-Range: \"stale\"", &r),
                         200);
        ck_assert_uint_eq(r.body.len, sizeof(data));
        dresp_free(&r);
    }
}
END_TEST

/* Reads VmRSS of pid in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return v;
}

typedef struct sampler {
    pid_t pid;
    volatile int stop;
    long max;
    pthread_t t;
} sampler;

static void *sample_main(void *arg)
{
    sampler *s = arg;

    while (!s->stop) {
        long v = rss_kib(s->pid);

        if (v > s->max)
            s->max = v;
        clock_sleep_ms(50);
    }
    return NULL;
}

/* The upload's body: a pattern, generated as it goes. */
typedef struct feeder {
    uint64_t sent;
    uint64_t total;
    uint64_t cut; /* fail the transfer here (0: never) */
} feeder;

static unsigned char pattern[1 << 16];

static size_t feed(char *out, size_t size, size_t n, void *ud)
{
    feeder *f = ud;
    size_t want = size * n, o = 0;

    if (f->cut != 0 && f->sent >= f->cut)
        return CURL_READFUNC_ABORT;
    while (o < want && f->sent < f->total) {
        size_t at = (size_t)(f->sent % sizeof(pattern));
        size_t k = sizeof(pattern) - at;

        if (k > want - o)
            k = want - o;
        if (k > f->total - f->sent)
            k = (size_t)(f->total - f->sent);
        memcpy(out + o, pattern + at, k);
        o += k;
        f->sent += k;
    }
    return o;
}

/* PUTs total bytes of the pattern to path at most rate bytes a second
 * (0: as fast as it goes); returns the status (0 when the transfer was
 * cut). */
static long upload_at(const char *path, uint64_t total, uint64_t cut,
                      uint64_t rate)
{
    char tok[TOKEN_MAX], url[TOKEN_MAX + 512], hdr[TOKEN_MAX + 64];
    struct curl_slist *h = NULL;
    feeder f = {.total = total, .cut = cut};
    long status = 0;
    buf body;
    CURL *c = curl_easy_init();

    files_token(tok);
    buf_init(&body, 1 << 20);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/sites/%s/files/upload?"
             "path=%s", dport, site_id, path);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
    h = curl_slist_append(h, hdr);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
    curl_easy_setopt(c, CURLOPT_READDATA, &f);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)total);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
    if (rate > 0) {
        curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)rate);
        curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 64L << 10);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_free(&body);
    return status;
}

static long upload(const char *path, uint64_t total, uint64_t cut)
{
    return upload_at(path, total, cut, 0);
}

/* Whether a temporary upload file is left in dir. */
static int temp_left(const char *dir)
{
    char cmd[1400];
    buf out;
    char *av[] = {"sh", "-c", cmd, NULL};
    int found;

    snprintf(cmd, sizeof(cmd), "ls -a '%s' | grep -c '^\\.berth-' || true",
             dir);
    buf_init(&out, 4096);
    h_run(av, NULL, 0, &out, 10000);
    found = out.data != NULL && atoi(out.data) > 0;
    buf_free(&out);
    return found;
}

START_TEST(a_1gib_upload_streams_with_flat_rss)
{
    sampler s = {.pid = dproc.pid};
    char f[1400], p[512], tok[TOKEN_MAX];
    long before, grew;
    struct stat st;
    int64_t t0;
    double secs;
    size_t i;
    dresp r;

    for (i = 0; i < sizeof(pattern); i++)
        pattern[i] = (unsigned char)(i * 131 + (i >> 8));
    before = rss_kib(dproc.pid);
    ck_assert_int_gt(before, 0);
    ck_assert_int_eq(pthread_create(&s.t, NULL, sample_main, &s), 0);
    t0 = clock_mono_ns();
    ck_assert_int_eq(upload("/big.bin", BIG, 0), 201);
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    s.stop = 1;
    pthread_join(s.t, NULL);
    grew = s.max - before;
    fprintf(stderr, "1 GiB upload: %.2f s, %.0f MB/s; daemon RSS %ld KiB -> "
            "max %ld KiB\n", secs, (double)BIG / secs / 1e6, before, s.max);
    ck_assert_msg(grew < 32 * 1024, "RSS grew by %ld KiB", grew);
    snprintf(f, sizeof(f), "%s/big.bin", site_dir);
    ck_assert_int_eq(stat(f, &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_size, BIG);
    ck_assert(!temp_left(site_dir));
    /* What landed is what was sent: a stretch in the middle. */
    files_token(tok);
    fpath(p, sizeof(p), "download", "/big.bin");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0,
                           "Range: bytes=536870000-536936000", &r),
                     206);
    ck_assert_uint_eq(r.body.len, 66001);
    for (i = 0; i < r.body.len; i++)
        ck_assert_uint_eq((unsigned char)r.body.data[i],
                          pattern[(536870000 + i) % sizeof(pattern)]);
    dresp_free(&r);

    /* Cut half way: the file before stays as it was, nothing is left. */
    ck_assert_int_eq(upload("/big.bin", BIG, 100u << 20), 0);
    clock_sleep_ms(300);
    ck_assert_int_eq(stat(f, &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_size, BIG);
    ck_assert(!temp_left(site_dir));
    /* Past the limit: refused from the headers. */
    {
        char req[TOKEN_MAX + 1024], head[1024];
        size_t n;
        int fd = h_tcp_connect(dport, 0);

        ck_assert_int_ge(fd, 0);
        files_token(tok);
        snprintf(req, sizeof(req),
                 "PUT /sites/%s/files/upload?path=/huge.bin HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: %llu\r\n\r\n",
                 site_id, tok, (unsigned long long)UPLOAD_MAX + 1);
        ck_assert_int_eq(h_send_all(fd, req, strlen(req)), 0);
        n = h_recv_n(fd, head, 12, 5000);
        head[n] = '\0';
        ck_assert_str_eq(head, "HTTP/1.1 413");
        close(fd);
    }
    snprintf(f, sizeof(f), "%s/huge.bin", site_dir);
    ck_assert(!exists(f));
    ck_assert(!temp_left(site_dir));
    unlink(f);
}
END_TEST

/* ------------------------------------------------------------ archives */

/* Appends a ustar header for name (type, size) to b. */
static void tar_header(buf *b, const char *name, char type, uint64_t size)
{
    unsigned char h[512];
    unsigned sum = 0;
    size_t i;

    memset(h, 0, sizeof(h));
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    for (i = 0; i < sizeof(h); i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    ck_assert_int_eq(buf_append(b, h, sizeof(h)), 0);
}

/* gzips the tar stream made by gen into the site's file name. */
typedef void (*tar_gen)(gzFile z);

static void gz_zeros(gzFile z, uint64_t n)
{
    static char zeros[1 << 16];

    while (n > 0) {
        unsigned k = n < sizeof(zeros) ? (unsigned)n : sizeof(zeros);

        ck_assert_int_eq(gzwrite(z, zeros, k), (int)k);
        n -= k;
    }
}

static void gz_buf(gzFile z, const buf *b)
{
    ck_assert_int_eq(gzwrite(z, b->data, (unsigned)b->len), (int)b->len);
}

static gzFile gz_open(const char *name)
{
    char path[1400];
    gzFile z;

    snprintf(path, sizeof(path), "%s/%s", site_dir, name);
    z = gzopen(path, "wb9");
    ck_assert_ptr_nonnull(z);
    return z;
}

/* Transfers longer than the idle timeout (2 s here) live while bytes
 * flow. */
START_TEST(slow_transfers_outlive_the_idle_timeout)
{
    char tok[TOKEN_MAX], url[600], hdr[TOKEN_MAX + 64], p[512];
    struct curl_slist *h = NULL;
    long status = 0;
    buf body;
    CURL *c;
    dresp r;

    ck_assert_int_eq(upload_at("/slow.bin", 10u << 20, 0, 3u << 20), 201);
    files_token(tok);
    fpath(p, sizeof(p), "download", "/slow.bin");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", dport, p);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
    h = curl_slist_append(h, hdr);
    buf_init(&body, 16u << 20);
    c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)(3u << 20));
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 16L << 10);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    ck_assert_int_eq(status, 200);
    ck_assert_uint_eq(body.len, 10u << 20);
    buf_free(&body);
    /* An upload that stops sending is cut after the timeout. */
    {
        char req[TOKEN_MAX + 1024], head[64];
        size_t n;
        int fd = h_tcp_connect(dport, 0);

        files_token(tok);
        snprintf(req, sizeof(req),
                 "PUT /sites/%s/files/upload?path=/stalled.bin HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: 1000\r\n\r\nonly a little",
                 site_id, tok);
        ck_assert_int_eq(h_send_all(fd, req, strlen(req)), 0);
        n = h_recv_n(fd, head, sizeof(head) - 1, 8000);
        ck_assert_uint_eq(n, 0); /* closed without an answer */
        close(fd);
        clock_sleep_ms(200);
        fpath(p, sizeof(p), "list", "/");
        files_token(tok);
        ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
        ck_assert(!listed(&r, "stalled.bin", "file"));
        dresp_free(&r);
        ck_assert(!temp_left(site_dir));
    }
}
END_TEST

START_TEST(archives_and_bombs)
{
    char tok[TOKEN_MAX], f[2048], *text = NULL;
    size_t n = 0;
    dresp r;
    buf b;

    files_token(tok);
    /* Compress a tree, extract it elsewhere, compare. */
    ck_assert_int_eq(op(tok, "mkdir", "{\"path\":\"/src/a/b\",\"parents\":true}",
                        &r),
                     201);
    dresp_free(&r);
    put_file("src/a/b/one.txt", "one\n", 4);
    put_file("src/two.txt", "two\n", 4);
    {
        char longname[400];

        memset(longname, 'n', 200);
        longname[200] = '\0';
        snprintf(f, sizeof(f), "src/a/%s", longname);
        put_file(f, "long\n", 5);
    }
    ck_assert_int_eq(op(tok, "compress", "{\"root\":\"/src\",\"to\":"
                                         "\"/src.tar.gz\"}", &r),
                     201);
    ck_assert_int_ge(json_integer_value(json_object_get(r.json, "entries")), 5);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "compress", "{\"root\":\"/src\",\"to\":"
                                         "\"/src.tar.gz\"}", &r),
                     409);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "mkdir", "{\"path\":\"/out\"}", &r), 201);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/src.tar.gz\",\"to\":"
                                        "\"/out\"}", &r),
                     200);
    dresp_free(&r);
    snprintf(f, sizeof(f), "%s/out/a/b/one.txt", site_dir);
    ck_assert_int_eq(fs_read_file(f, 100, &text, &n), 0);
    ck_assert_str_eq(text, "one\n");
    free(text);
    snprintf(f, sizeof(f), "%s/out/two.txt", site_dir);
    ck_assert(exists(f));
    {
        char longname[400];

        memset(longname, 'n', 200);
        longname[200] = '\0';
        snprintf(f, sizeof(f), "%s/out/a/%s", site_dir, longname);
        ck_assert(exists(f));
    }
    /* Again: the files exist now. */
    ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/src.tar.gz\",\"to\":"
                                        "\"/out\"}", &r),
                     409);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/src.tar.gz\",\"to\":"
                                        "\"/out\",\"overwrite\":true}", &r),
                     200);
    dresp_free(&r);
    /* Selected names. */
    ck_assert_int_eq(op(tok, "compress", "{\"root\":\"/src\",\"paths\":"
                                         "[\"two.txt\",\"a/b\"],\"to\":"
                                         "\"/some.tar.gz\"}", &r),
                     201);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "entries")), 3);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "compress", "{\"root\":\"/src\",\"paths\":"
                                         "[\"../../etc\"],\"to\":"
                                         "\"/x.tar.gz\"}", &r),
                     403);
    dresp_free(&r);

    /* A bomb: 200 MiB of zeros in a few hundred KiB. */
    {
        gzFile z = gz_open("bomb.tar.gz");

        buf_init(&b, 1 << 20);
        tar_header(&b, "zeros.bin", '0', 200u << 20);
        gz_buf(z, &b);
        gz_zeros(z, 200u << 20);
        buf_reset(&b);
        ck_assert_int_eq(buf_append(&b, (char[1024]){0}, 1024), 0);
        gz_buf(z, &b);
        gzclose(z);
        buf_free(&b);
    }
    ck_assert_int_eq(op(tok, "mkdir", "{\"path\":\"/boom\"}", &r), 201);
    dresp_free(&r);
    ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/bomb.tar.gz\",\"to\":"
                                        "\"/boom\"}", &r),
                     413);
    ck_assert_str_eq(derr(&r), "ETOOBIG");
    dresp_free(&r);
    snprintf(f, sizeof(f), "%s/boom/zeros.bin", site_dir);
    ck_assert(!exists(f));
    snprintf(f, sizeof(f), "%s/boom", site_dir);
    ck_assert(!temp_left(f));
    /* Many small entries: past the entry limit (1000). */
    {
        gzFile z = gz_open("many.tar.gz");
        int i;

        buf_init(&b, 4 << 20);
        for (i = 0; i < 1500; i++) {
            char nm[32];

            snprintf(nm, sizeof(nm), "f%d", i);
            tar_header(&b, nm, '0', 0);
        }
        ck_assert_int_eq(buf_append(&b, (char[1024]){0}, 1024), 0);
        gz_buf(z, &b);
        gzclose(z);
        buf_free(&b);
    }
    ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/many.tar.gz\",\"to\":"
                                        "\"/boom\"}", &r),
                     413);
    dresp_free(&r);
    snprintf(f, sizeof(f), "%s/boom/f0", site_dir);
    ck_assert(!exists(f));
    /* Names that leave: refused before anything is written. */
    {
        static const char *const bad[] = {"../escaped.txt", "/abs.txt",
                                          "a/../../escaped.txt"};
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            gzFile z = gz_open("escape.tar.gz");

            buf_init(&b, 1 << 20);
            tar_header(&b, "fine.txt", '0', 4);
            ck_assert_int_eq(buf_append(&b, "fine", 4), 0);
            ck_assert_int_eq(buf_append(&b, (char[508]){0}, 508), 0);
            tar_header(&b, bad[i], '0', 4);
            ck_assert_int_eq(buf_append(&b, "evil", 4), 0);
            ck_assert_int_eq(buf_append(&b, (char[1532]){0}, 1532), 0);
            gz_buf(z, &b);
            gzclose(z);
            buf_free(&b);
            ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/escape.tar.gz\","
                                                "\"to\":\"/boom\"}", &r),
                             403);
            dresp_free(&r);
            snprintf(f, sizeof(f), "%s/boom/fine.txt", site_dir);
            ck_assert(!exists(f));
        }
        snprintf(f, sizeof(f), "%s/escaped.txt", site_dir);
        ck_assert(!exists(f));
        snprintf(f, sizeof(f), "%s/volumes/escaped.txt", data_dir);
        ck_assert(!exists(f));
    }
    /* Links in an archive are not made. */
    {
        gzFile z = gz_open("links.tar.gz");

        buf_init(&b, 1 << 20);
        tar_header(&b, "passwd", '2', 0);
        memcpy(b.data + 157, "/etc/passwd", 11); /* linkname */
        {
            unsigned sum = 0;
            size_t i;

            memset(b.data + 148, ' ', 8);
            for (i = 0; i < 512; i++)
                sum += (unsigned char)b.data[i];
            snprintf(b.data + 148, 8, "%06o", sum);
        }
        ck_assert_int_eq(buf_append(&b, (char[1024]){0}, 1024), 0);
        gz_buf(z, &b);
        gzclose(z);
        buf_free(&b);
    }
    ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/links.tar.gz\","
                                        "\"to\":\"/boom\"}", &r),
                     200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "skipped")), 1);
    dresp_free(&r);
    snprintf(f, sizeof(f), "%s/boom/passwd", site_dir);
    ck_assert(!exists(f));
    /* Not an archive. */
    ck_assert_int_eq(op(tok, "extract", "{\"path\":\"/spent.txt\","
                                        "\"to\":\"/boom\"}", &r),
                     400);
    dresp_free(&r);
}
END_TEST

START_TEST(tls_when_a_certificate_is_set)
{
    char cert[1200], key[1200], e1[1300], e2[1300], cmd[4000], tok[TOKEN_MAX];
    char p[512];
    char *av[] = {"sh", "-c", cmd, NULL};
    dresp r;
    buf out;

    snprintf(cert, sizeof(cert), "%s/cert.pem", tmp);
    snprintf(key, sizeof(key), "%s/key.pem", tmp);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -keyout '%s' -out '%s' -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 2>&1",
             key, cert);
    buf_init(&out, 1 << 16);
    ck_assert_msg(h_run(av, NULL, 0, &out, 30000) == 0, "%s", out.data);
    buf_free(&out);
    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 15000), 0);
    h_proc_free(&dproc);
    snprintf(e1, sizeof(e1), "BERTH_DAEMON_TLS_CERT=%s", cert);
    snprintf(e2, sizeof(e2), "BERTH_DAEMON_TLS_KEY=%s", key);
    start_daemon_with(e1, e2);
    /* Plain HTTP on the TLS port gets nothing useful. */
    ck_assert_int_ne(dcall("GET", "/health", NULL, NULL, NULL, 0, NULL, &r),
                     200);
    dresp_free(&r);
    scheme = "https";
    snprintf(cafile, sizeof(cafile), "%s", cert);
    ck_assert_int_eq(dcall("GET", "/health", NULL, NULL, NULL, 0, NULL, &r),
                     200);
    ck_assert(json_is_true(json_object_get(r.json, "tls")));
    dresp_free(&r);
    /* The key kept on disk verifies at once; files work over TLS. */
    files_token(tok);
    fpath(p, sizeof(p), "list", "/");
    ck_assert_int_eq(dcall("GET", p, tok, ORIGIN, NULL, 0, NULL, &r), 200);
    dresp_free(&r);
    files_token(tok);
    fpath(p, sizeof(p), "download", "/spent.txt");
    ck_assert_int_eq(dcall("GET", p, tok, NULL, NULL, 0, NULL, &r), 200);
    ck_assert_str_eq(r.body.data, "spent\n");
    dresp_free(&r);
    /* Back to plain HTTP for what follows. */
    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 15000), 0);
    h_proc_free(&dproc);
    scheme = "http";
    cafile[0] = '\0';
    start_daemon();
}
END_TEST

START_TEST(sigterm_with_a_console_open)
{
    char tok[TOKEN_MAX], q[TOKEN_MAX + 16];
    json_t *j;
    int fd;

    panel_token(access_token, "console", tok, sizeof(tok));
    snprintf(q, sizeof(q), "?token=%s", tok);
    fd = ws_open(q);
    j = ws_until(fd, "ready", NULL, 5000);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 15000), 0);
    close(fd);
    /* The key was kept for the next start. */
    {
        char f[1100];

        snprintf(f, sizeof(f), "%s/panel.pubkey", data_dir);
        ck_assert(exists(f));
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/daemon_direct");
    TCase *tc = tcase_create("daemon_direct");

    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, health_answers_without_a_token);
    tcase_add_test(tc, tokens_are_checked);
    tcase_add_test(tc, a_transfer_token_is_spent);
    tcase_add_test(tc, revoked_users_are_cut_off);
    tcase_add_test(tc, console_replays_streams_and_takes_input);
    tcase_add_test(tc, console_tokens_are_checked);
    tcase_add_test(tc, path_attacks_are_refused);
    tcase_add_test(tc, file_operations_work);
    tcase_add_test(tc, origin_and_cors);
    tcase_add_test(tc, range_downloads);
    tcase_add_test(tc, a_1gib_upload_streams_with_flat_rss);
    tcase_add_test(tc, slow_transfers_outlive_the_idle_timeout);
    tcase_add_test(tc, archives_and_bombs);
    tcase_add_test(tc, console_power_restarts_the_site);
    tcase_add_test(tc, tls_when_a_certificate_is_set);
    tcase_add_test(tc, sigterm_with_a_console_open);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
