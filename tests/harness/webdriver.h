/* webdriver.h - a small W3C WebDriver client for end-to-end tests in a
 * real browser: chromedriver and headless Chromium (Debian's chromium and
 * chromium-driver) started by the test, driven over WebDriver's HTTP API
 * with libcurl and jansson.
 *
 *   static h_wd wd;
 *   char el[H_WD_ID_MAX];
 *
 *   ck_assert_int_eq(h_wd_start(&wd, 1280, 900), 0);
 *   ck_assert_int_eq(h_wd_go(&wd, "http://127.0.0.1:8080/"), 0);
 *   ck_assert_int_eq(h_wd_wait(&wd, "#login-username", 10000, el), 0);
 *   ck_assert_int_eq(h_wd_type(&wd, el, "admin"), 0);
 *   ...
 *   h_wd_screenshot(&wd, "build/ui_e2e/login.png");
 *   h_wd_stop(&wd);
 *
 * Elements are named by CSS selectors and addressed by WebDriver's element
 * ids (H_WD_ID_MAX bytes). Every wait polls every 100 ms up to its
 * timeout. Errors follow harness.h: 0 (or the documented value) on
 * success, a negative BERTH_E* code after a "harness:" line on stderr that
 * quotes WebDriver's error and message; BERTH_ENOENT is "no such element"
 * (a wait's timeout is BERTH_ETIMEDOUT). Nothing asserts. One thread per
 * handle.
 *
 * Binaries: BERTH_CHROMEDRIVER (default chromedriver in PATH, then
 * /usr/bin/chromedriver) and BERTH_CHROMIUM (default /usr/bin/chromium).
 * The browser gets a fresh profile in a temp directory, downloads go to
 * h_wd.download_dir, and runs with --no-sandbox when the test runs as
 * root (Chromium refuses otherwise).
 */
#ifndef BERTH_TESTS_HARNESS_WEBDRIVER_H
#define BERTH_TESTS_HARNESS_WEBDRIVER_H

#include <jansson.h>
#include <stddef.h>

#include "tests/harness/harness.h"

#define H_WD_ID_MAX 128        /* an element id and its NUL */
#define H_WD_CALL_TIMEOUT_S 60 /* one WebDriver command */

typedef struct h_wd {
    h_proc driver;          /* chromedriver */
    int port;               /* its port on 127.0.0.1 */
    char session[128];      /* the WebDriver session id, "" when none */
    char *dir;              /* temp dir: profile/, downloads/, driver.log */
    char download_dir[512]; /* where the browser saves downloads */
    char log[512];          /* chromedriver's log */
} h_wd;

/* Starts chromedriver on a free port and a headless Chromium session with
 * a window of width x height CSS pixels. w is overwritten. Returns 0, or
 * BERTH_ENOENT when chromedriver or chromium is missing (tests may skip
 * then), or another berth code after cleaning up. */
int h_wd_start(h_wd *w, int width, int height);

/* Ends the session, stops chromedriver and removes the temp directory
 * (kept when BERTH_KEEP_TEST_DIRS is set). Safe on a zeroed or stopped
 * handle. */
void h_wd_stop(h_wd *w);

/* Resizes the window (CSS pixels). */
int h_wd_window(h_wd *w, int width, int height);

/* Navigates to url and waits for the page's load event. */
int h_wd_go(h_wd *w, const char *url);

/* Finds the first element matching css now; id gets its element id.
 * BERTH_ENOENT when there is none. */
int h_wd_find(h_wd *w, const char *css, char id[H_WD_ID_MAX]);

/* Waits until an element matching css exists and is displayed; id (may be
 * NULL) gets its element id. BERTH_ETIMEDOUT after timeout_ms. */
int h_wd_wait(h_wd *w, const char *css, int timeout_ms, char id[H_WD_ID_MAX]);

/* Waits until the text of some element matching css contains needle.
 * BERTH_ETIMEDOUT after timeout_ms, after printing the texts last seen. */
int h_wd_wait_text(h_wd *w, const char *css, const char *needle,
                   int timeout_ms);

/* Waits until no element matching css exists. */
int h_wd_wait_gone(h_wd *w, const char *css, int timeout_ms);

int h_wd_click(h_wd *w, const char *id);
int h_wd_clear(h_wd *w, const char *id);

/* Types text into the element (WebDriver's key codes work: "\xee\x80\x87"
 * is Enter, U+E007). For <input type=file>, text is a local path. */
int h_wd_type(h_wd *w, const char *id, const char *text);

/* Shortcuts by selector: wait for css (timeout 10 s), then act. */
int h_wd_click_css(h_wd *w, const char *css);
int h_wd_fill_css(h_wd *w, const char *css, const char *text);

/* The visible text of the element into out (NUL-terminated, cut to
 * size - 1). */
int h_wd_text(h_wd *w, const char *id, char *out, size_t size);

/* Runs script (a function body; arguments in `arguments`) in the page.
 * args is a JSON array or NULL (not consumed); *result (may be NULL) gets
 * the returned value, which the caller json_decref()s. async: the script
 * gets a callback as its last argument and must call it. */
int h_wd_exec(h_wd *w, const char *script, json_t *args, json_t **result);
int h_wd_exec_async(h_wd *w, const char *script, json_t *args,
                    json_t **result);

/* Saves a PNG of the viewport to path (parents created). */
int h_wd_screenshot(h_wd *w, const char *path);

/* Writes the page's HTML to path (parents created). */
int h_wd_save_html(h_wd *w, const char *path);

/* Prints the browser's console messages collected since the last call
 * (severity, text) to stderr, one line each. Returns how many. */
int h_wd_dump_console(h_wd *w);

/* Enter, as WebDriver types it. */
#define H_WD_ENTER "\xee\x80\x87"

#endif
