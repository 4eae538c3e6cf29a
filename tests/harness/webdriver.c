/* webdriver.c - chromedriver + headless Chromium, driven over the W3C
 * WebDriver HTTP API (see webdriver.h).
 */
#include "tests/harness/webdriver.h"

#include <curl/curl.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"

#define WD_RESP_MAX (64u << 20) /* screenshots of big windows */
#define WD_POLL_MS 100
#define WD_START_MS 20000
#define ELEMENT_KEY "element-6066-11e4-a52e-4f735466cecf"

/* ------------------------------------------------------------ HTTP */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    buf *b = ud;

    return buf_append(b, data, size * n) == 0 ? size * n : 0;
}

/* Sends method path (under the session when session is set: the path then
 * starts after "/session/<id>") with body (a JSON value, not consumed; NULL
 * for none, "{}" is sent for POST). On success *value (may be NULL) gets
 * the response's "value" (caller decrefs). quiet: do not print
 * "no such element". Returns 0 or a berth code. */
static int wd_call(h_wd *w, const char *method, const char *path, int session,
                   json_t *body, json_t **value, int quiet)
{
    CURL *c = NULL;
    struct curl_slist *h = NULL;
    char url[1024];
    char *text = NULL;
    json_t *resp = NULL, *v;
    long status = 0;
    CURLcode res;
    buf b;
    int rc;

    if (value != NULL)
        *value = NULL;
    buf_init(&b, WD_RESP_MAX);
    if (session)
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/session/%s%s", w->port,
                 w->session, path);
    else
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", w->port, path);
    c = curl_easy_init();
    if (c == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)H_WD_CALL_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "POST") == 0) {
        text = body != NULL ? json_dumps(body, JSON_COMPACT) : strdup("{}");
        if (text == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        h = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    res = curl_easy_perform(c);
    if (res != CURLE_OK) {
        h_say("webdriver %s %s: %s", method, path, curl_easy_strerror(res));
        rc = BERTH_EIO;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp = b.len > 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    v = json_object_get(resp, "value");
    if (status != 200) {
        const char *err = json_string_value(json_object_get(v, "error"));
        const char *msg = json_string_value(json_object_get(v, "message"));

        rc = err != NULL && strcmp(err, "no such element") == 0 ? BERTH_ENOENT
             : err != NULL && strcmp(err, "timeout") == 0     ? BERTH_ETIMEDOUT
                                                              : BERTH_EIO;
        if (!(quiet && rc == BERTH_ENOENT)) {
            char first[300];

            snprintf(first, sizeof(first), "%s", msg ? msg : "");
            first[strcspn(first, "\n")] = '\0';
            h_say("webdriver %s %s: %ld %s: %s", method, path, status,
                  err ? err : "?", first);
        }
        goto out;
    }
    if (value != NULL)
        *value = json_incref(v != NULL ? v : json_null());
    rc = 0;
out:
    json_decref(resp);
    free(text);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------ life */

static const char *find_exe(const char *env, const char *name,
                            const char *fallback)
{
    static char found[2][PATH_MAX];
    static int slot;
    const char *v = getenv(env);
    const char *path = getenv("PATH");
    char *copy, *dir, *save = NULL;
    char *out = found[slot++ & 1];

    if (v != NULL && v[0] != '\0')
        return v;
    copy = strdup(path != NULL ? path : "/usr/bin:/bin");
    for (dir = copy ? strtok_r(copy, ":", &save) : NULL; dir != NULL;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, PATH_MAX, "%s/%s", dir, name);
        if (access(out, X_OK) == 0) {
            free(copy);
            return out;
        }
    }
    free(copy);
    return access(fallback, X_OK) == 0 ? fallback : NULL;
}

static json_t *capabilities(h_wd *w, const char *chromium, int width,
                            int height)
{
    char profile[600], size[64];
    json_t *args;

    snprintf(profile, sizeof(profile), "--user-data-dir=%s/profile", w->dir);
    snprintf(size, sizeof(size), "--window-size=%d,%d", width, height);
    args = json_pack("[s, s, s, s, s, s, s, s, s]", "--headless=new",
                     "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--no-default-browser-check", "--disable-extensions",
                     "--lang=en-US", profile, size);
    if (args != NULL && geteuid() == 0)
        json_array_append_new(args, json_string("--no-sandbox"));
    return json_pack(
        "{s:{s:{s:s, s:s, s:{s:s}, s:{s:s, s:o, s:{s:s, s:b, s:b}}}}}",
        "capabilities", "alwaysMatch", "browserName", "chrome",
        "pageLoadStrategy", "normal", "goog:loggingPrefs", "browser", "ALL",
        "goog:chromeOptions", "binary", chromium, "args", args, "prefs",
        "download.default_directory", w->download_dir,
        "download.prompt_for_download", 0, "safebrowsing.enabled", 0);
}

int h_wd_start(h_wd *w, int width, int height)
{
    const char *driver = find_exe("BERTH_CHROMEDRIVER", "chromedriver",
                                  "/usr/bin/chromedriver");
    const char *chromium = find_exe("BERTH_CHROMIUM", "chromium",
                                    "/usr/bin/chromium");
    char portarg[32];
    char *argv[] = {NULL, portarg, "--allowed-ips=127.0.0.1", NULL};
    json_t *caps = NULL, *v = NULL;
    int64_t end;
    int rc;

    memset(w, 0, sizeof(*w));
    if (driver == NULL || chromium == NULL) {
        h_say("webdriver: %s not found (install chromium and chromium-driver)",
              driver == NULL ? "chromedriver" : "chromium");
        return BERTH_ENOENT;
    }
    w->dir = h_tempdir("webdriver");
    if (w->dir == NULL)
        return BERTH_EIO;
    snprintf(w->download_dir, sizeof(w->download_dir), "%s/downloads", w->dir);
    snprintf(w->log, sizeof(w->log), "%s/driver.log", w->dir);
    rc = fs_mkdirs(w->download_dir, 0700);
    if (rc != 0)
        goto fail;
    w->port = h_free_port();
    if (w->port < 0) {
        rc = w->port;
        goto fail;
    }
    snprintf(portarg, sizeof(portarg), "--port=%d", w->port);
    argv[0] = (char *)driver;
    rc = h_proc_start(&w->driver, "chromedriver", argv, NULL, w->log);
    if (rc != 0)
        goto fail;
    rc = h_wait_port(w->port, WD_START_MS);
    if (rc != 0)
        goto fail;
    caps = capabilities(w, chromium, width, height);
    if (caps == NULL) {
        rc = BERTH_ENOMEM;
        goto fail;
    }
    /* The driver may listen a moment before it answers. */
    end = clock_mono_ms() + WD_START_MS;
    for (;;) {
        rc = wd_call(w, "POST", "/session", 0, caps, &v, 0);
        if (rc != BERTH_EIO || clock_mono_ms() >= end)
            break;
        clock_sleep_ms(200);
    }
    json_decref(caps);
    if (rc != 0)
        goto fail;
    snprintf(w->session, sizeof(w->session), "%s",
             json_string_value(json_object_get(v, "sessionId"))
                 ? json_string_value(json_object_get(v, "sessionId"))
                 : "");
    json_decref(v);
    if (w->session[0] == '\0') {
        h_say("webdriver: no session id");
        rc = BERTH_EPROTO;
        goto fail;
    }
    return 0;
fail:
    h_log_tail(w->log, 4096);
    h_wd_stop(w);
    return rc;
}

void h_wd_stop(h_wd *w)
{
    if (w->session[0] != '\0')
        wd_call(w, "DELETE", "", 1, NULL, NULL, 0);
    w->session[0] = '\0';
    if (w->driver.pid > 0)
        h_proc_stop(&w->driver, SIGTERM, 5000);
    h_proc_free(&w->driver);
    h_tempdir_drop(w->dir, "webdriver");
    w->dir = NULL;
}

int h_wd_window(h_wd *w, int width, int height)
{
    json_t *b = json_pack("{s:i, s:i}", "width", width, "height", height);
    int rc = wd_call(w, "POST", "/window/rect", 1, b, NULL, 0);

    json_decref(b);
    return rc;
}

int h_wd_go(h_wd *w, const char *url)
{
    json_t *b = json_pack("{s:s}", "url", url);
    int rc = wd_call(w, "POST", "/url", 1, b, NULL, 0);

    json_decref(b);
    return rc;
}

/* ------------------------------------------------------------ elements */

static int find(h_wd *w, const char *css, char id[H_WD_ID_MAX], int quiet)
{
    json_t *b = json_pack("{s:s, s:s}", "using", "css selector", "value", css);
    json_t *v = NULL;
    const char *s;
    int rc;

    rc = wd_call(w, "POST", "/element", 1, b, &v, quiet);
    json_decref(b);
    if (rc != 0)
        return rc;
    s = json_string_value(json_object_get(v, ELEMENT_KEY));
    if (s == NULL || strlen(s) >= H_WD_ID_MAX) {
        json_decref(v);
        return BERTH_EPROTO;
    }
    snprintf(id, H_WD_ID_MAX, "%s", s);
    json_decref(v);
    return 0;
}

int h_wd_find(h_wd *w, const char *css, char id[H_WD_ID_MAX])
{
    return find(w, css, id, 0);
}

static int displayed(h_wd *w, const char *id)
{
    char path[H_WD_ID_MAX + 32];
    json_t *v = NULL;
    int shown;

    snprintf(path, sizeof(path), "/element/%s/displayed", id);
    if (wd_call(w, "GET", path, 1, NULL, &v, 1) != 0)
        return 0;
    shown = json_is_true(v);
    json_decref(v);
    return shown;
}

int h_wd_wait(h_wd *w, const char *css, int timeout_ms, char id[H_WD_ID_MAX])
{
    int64_t end = clock_mono_ms() + timeout_ms;
    char el[H_WD_ID_MAX];
    int rc;

    for (;;) {
        rc = find(w, css, el, 1);
        if (rc == 0 && displayed(w, el)) {
            if (id != NULL)
                snprintf(id, H_WD_ID_MAX, "%s", el);
            return 0;
        }
        if (rc != 0 && rc != BERTH_ENOENT)
            return rc;
        if (clock_mono_ms() >= end)
            break;
        clock_sleep_ms(WD_POLL_MS);
    }
    h_say("webdriver: no visible %s after %d ms", css, timeout_ms);
    return BERTH_ETIMEDOUT;
}

/* The texts of every element matching css, joined with " | ". */
static json_t *texts(h_wd *w, const char *css)
{
    json_t *args = json_pack("[s]", css), *v = NULL;

    h_wd_exec(w,
              "return Array.from(document.querySelectorAll(arguments[0]))"
              ".map(e => e.innerText || e.textContent || '').join(' | ');",
              args, &v);
    json_decref(args);
    return v;
}

int h_wd_wait_text(h_wd *w, const char *css, const char *needle,
                   int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    json_t *v = NULL;

    for (;;) {
        const char *s;

        json_decref(v);
        v = texts(w, css);
        s = json_string_value(v);
        if (s != NULL && strstr(s, needle) != NULL) {
            json_decref(v);
            return 0;
        }
        if (clock_mono_ms() >= end)
            break;
        clock_sleep_ms(WD_POLL_MS);
    }
    {
        const char *s = json_string_value(v);
        size_t n = s ? strlen(s) : 0;

        h_say("webdriver: \"%s\" not in %s after %d ms; last text: %.*s%s",
              needle, css, timeout_ms, (int)(n > 2000 ? 2000 : n),
              s ? s : "(none)", n > 2000 ? "..." : "");
    }
    json_decref(v);
    return BERTH_ETIMEDOUT;
}

int h_wd_wait_gone(h_wd *w, const char *css, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    char el[H_WD_ID_MAX];

    for (;;) {
        int rc = find(w, css, el, 1);

        if (rc == BERTH_ENOENT)
            return 0;
        if (rc != 0)
            return rc;
        if (clock_mono_ms() >= end)
            break;
        clock_sleep_ms(WD_POLL_MS);
    }
    h_say("webdriver: %s still there after %d ms", css, timeout_ms);
    return BERTH_ETIMEDOUT;
}

static int element_post(h_wd *w, const char *id, const char *what,
                        json_t *body)
{
    char path[H_WD_ID_MAX + 32];

    snprintf(path, sizeof(path), "/element/%s/%s", id, what);
    return wd_call(w, "POST", path, 1, body, NULL, 0);
}

int h_wd_click(h_wd *w, const char *id)
{
    return element_post(w, id, "click", NULL);
}

int h_wd_clear(h_wd *w, const char *id)
{
    return element_post(w, id, "clear", NULL);
}

int h_wd_type(h_wd *w, const char *id, const char *text)
{
    json_t *b = json_pack("{s:s}", "text", text);
    int rc = element_post(w, id, "value", b);

    json_decref(b);
    return rc;
}

int h_wd_click_css(h_wd *w, const char *css)
{
    char el[H_WD_ID_MAX];
    int rc = h_wd_wait(w, css, 10000, el);

    return rc != 0 ? rc : h_wd_click(w, el);
}

int h_wd_fill_css(h_wd *w, const char *css, const char *text)
{
    char el[H_WD_ID_MAX];
    int rc = h_wd_wait(w, css, 10000, el);

    if (rc == 0)
        rc = h_wd_clear(w, el);
    return rc != 0 ? rc : h_wd_type(w, el, text);
}

int h_wd_text(h_wd *w, const char *id, char *out, size_t size)
{
    char path[H_WD_ID_MAX + 32];
    json_t *v = NULL;
    int rc;

    snprintf(path, sizeof(path), "/element/%s/text", id);
    rc = wd_call(w, "GET", path, 1, NULL, &v, 0);
    if (rc == 0)
        snprintf(out, size, "%s",
                 json_string_value(v) ? json_string_value(v) : "");
    json_decref(v);
    return rc;
}

/* ------------------------------------------------------------ scripts */

static int exec(h_wd *w, const char *path, const char *script, json_t *args,
                json_t **result)
{
    json_t *b = json_pack("{s:s, s:o}", "script", script, "args",
                          args != NULL ? json_incref(args) : json_array());
    int rc;

    rc = wd_call(w, "POST", path, 1, b, result, 0);
    json_decref(b);
    return rc;
}

int h_wd_exec(h_wd *w, const char *script, json_t *args, json_t **result)
{
    return exec(w, "/execute/sync", script, args, result);
}

int h_wd_exec_async(h_wd *w, const char *script, json_t *args,
                    json_t **result)
{
    return exec(w, "/execute/async", script, args, result);
}

/* ------------------------------------------------------------ artefacts */

static int write_file(const char *path, const void *data, size_t len)
{
    char dir[PATH_MAX];
    int rc;

    snprintf(dir, sizeof(dir), "%s", path);
    rc = fs_mkdirs(dirname(dir), 0755);
    if (rc == 0)
        rc = fs_write_atomic(path, data, len, 0644);
    if (rc != 0)
        h_say("webdriver: cannot write %s: %s", path, berth_strerror(rc));
    return rc;
}

int h_wd_screenshot(h_wd *w, const char *path)
{
    json_t *v = NULL;
    const char *b64;
    unsigned char *png = NULL;
    size_t len = 0, cap;
    int rc;

    rc = wd_call(w, "GET", "/screenshot", 1, NULL, &v, 0);
    if (rc != 0)
        return rc;
    b64 = json_string_value(v);
    cap = b64 != NULL ? strlen(b64) / 4 * 3 + 3 : 0;
    png = cap > 0 ? malloc(cap) : NULL;
    if (png == NULL ||
        sodium_base642bin(png, cap, b64, strlen(b64), "\r\n", &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        h_say("webdriver: screenshot is not base64");
        rc = BERTH_EPROTO;
    } else {
        rc = write_file(path, png, len);
    }
    free(png);
    json_decref(v);
    return rc;
}

int h_wd_save_html(h_wd *w, const char *path)
{
    json_t *v = NULL;
    const char *s;
    int rc;

    rc = h_wd_exec(w, "return document.documentElement.outerHTML;", NULL, &v);
    if (rc == 0) {
        s = json_string_value(v);
        rc = write_file(path, s ? s : "", s ? strlen(s) : 0);
    }
    json_decref(v);
    return rc;
}

int h_wd_dump_console(h_wd *w)
{
    json_t *b = json_pack("{s:s}", "type", "browser"), *v = NULL, *e;
    size_t i;
    int rc;

    rc = wd_call(w, "POST", "/se/log", 1, b, &v, 0);
    json_decref(b);
    if (rc != 0)
        return rc;
    json_array_foreach(v, i, e)
    {
        h_say("browser %s: %s", json_string_value(json_object_get(e, "level")),
              json_string_value(json_object_get(e, "message")));
    }
    rc = (int)json_array_size(v);
    json_decref(v);
    return rc;
}
