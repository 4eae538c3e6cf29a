/* panel.h - the real berth-panel for integration tests: nats-server,
 * a private PostgreSQL and build/bin/berth-panel started together, and a
 * libcurl client for its HTTP API.
 *
 *   static h_panel panel;
 *   h_resp r;
 *   char access[H_ACCESS_MAX];
 *
 *   ck_assert_int_eq(h_panel_start(&panel, "admin password", NULL), 0);
 *   ck_assert_int_eq(h_login(&panel, "admin", "admin password", access,
 *                            NULL), 201);
 *   ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", access, NULL), 200);
 *   ck_assert_str_eq(h_jstr(json_array_get(json_object_get(r.json, "users"),
 *                                          0), "name"), "admin");
 *   h_resp_free(&r);
 *   ck_assert_int_eq(h_panel_stop(&panel), 0);
 *
 * The panel gets BERTH_NATS_URL, BERTH_PG_DSN, BERTH_DATA_DIR (nats.dir/
 * panel), BERTH_PANEL_ADDR (a free port of 127.0.0.1), BERTH_SQL_DIR (the
 * repository's sql/), BERTH_ADMIN_PASSWORD and BERTH_STRICT_SUBJECTS=1,
 * then the caller's extra variables, and logs to nats.dir/panel.log. Tests
 * reach the servers through the handle: p->pg for outages, p->nats.url for
 * their own bus, p->port for raw sockets (ws.h).
 *
 * Errors follow harness.h: 0 (or the documented value) on success, a
 * negative BERTH_E* code after a line starting with "harness:" on stderr.
 * Nothing here asserts; the tests do. Start and stop from the test's main
 * thread; h_call() may run on any thread.
 */
#ifndef BERTH_TESTS_HARNESS_PANEL_H
#define BERTH_TESTS_HARNESS_PANEL_H

#include <jansson.h>
#include <stddef.h>

#include "common/buf.h"
#include "tests/harness/harness.h"
#include "tests/harness/pg.h"

#define H_ACCESS_MAX 4096         /* an access token and its NUL */
#define H_REFRESH_MAX 128         /* a refresh token and its NUL */
#define H_RESP_MAX (16u << 20)    /* cap of a response body */
#define H_PANEL_READY_MS 20000    /* start-up until "msg=ready" */
#define H_PANEL_STOP_MS 10000     /* SIGTERM grace before SIGKILL */

/* A running panel and the servers behind it. The caller owns the struct
 * (usually static); h_panel_start() fills every field and h_panel_stop()
 * releases what the handle owns. Fields are read-only for the caller. */
typedef struct h_panel {
    h_nats nats;
    h_pg pg;
    h_proc proc;     /* berth-panel; a new process after h_panel_restart() */
    int port;        /* its HTTP port on 127.0.0.1; new after a restart */
    char base[64];   /* "http://127.0.0.1:PORT" */
    char log[512];   /* nats.dir/panel.log, appended to by every start */
    char **_env;     /* the panel's variables, owned, NULL-terminated */
    int _curl;       /* 1 once curl_global_init() succeeded */
} h_panel;

/* Starts nats-server, PostgreSQL and berth-panel (see above for its
 * environment; extra_env holds further "K=V" strings, copied, NULL for
 * none) and waits until the panel logged "msg=ready". Also initialises
 * libcurl (curl_global_init) for h_call(). p is overwritten. Returns 0, or
 * a berth code after stopping whatever had started. */
int h_panel_start(h_panel *p, const char *admin_password,
                  char *const extra_env[]);

/* Stops berth-panel (SIGTERM) and starts it again with the same
 * environment on a new free port, so it reloads its state from PostgreSQL;
 * nats-server and PostgreSQL keep running. Waits for "msg=ready" in the new
 * run's log lines. Returns 0; BERTH_EIO when the old process did not exit
 * 0 (it is gone all the same, and the new one is not started); or the code
 * of the failed start. */
int h_panel_restart(h_panel *p);

/* Stops berth-panel (SIGTERM, SIGKILL after H_PANEL_STOP_MS), destroys
 * PostgreSQL, stops nats-server and releases libcurl. Returns the panel's
 * status as h_proc_stop() reports it (0 after a clean exit), 0 when it was
 * not running. Everything is released whatever it returns; safe on a
 * zeroed or already stopped handle. */
int h_panel_stop(h_panel *p);

/* ---------------------------------------------------------------- HTTP */

/* One HTTP response. The caller owns the struct; h_call() fills it and
 * h_resp_free() releases body and json. */
typedef struct h_resp {
    long status;          /* 0 when no response came */
    buf body;             /* NUL-terminated when not empty; cap H_RESP_MAX */
    json_t *json;         /* the parsed body, NULL when empty or not JSON */
    char retry_after[16]; /* the Retry-After header, "" when absent */
    int _err;             /* what stopped h_resp_write(), 0 when nothing */
} h_resp;

/* Sends method path (relative to p->base) with "Authorization: Bearer
 * bearer" when bearer is not NULL and body as application/json when body
 * is not NULL, waiting at most 20 s. r is overwritten and must be freed
 * with h_resp_free() whatever this returns. Returns the HTTP status, or a
 * negative berth code when no response came (BERTH_EIO, BERTH_ETOOBIG when
 * the body overflowed H_RESP_MAX, BERTH_ENOMEM). */
long h_call(h_panel *p, h_resp *r, const char *method, const char *path,
            const char *bearer, const char *body);

/* Empties r and gives its body the H_RESP_MAX cap, for a request made with
 * libcurl directly (multipart uploads): pass h_resp_write as
 * CURLOPT_WRITEFUNCTION and r as CURLOPT_WRITEDATA. Free with
 * h_resp_free(). */
void h_resp_init(h_resp *r);

/* libcurl write callback appending to ((h_resp *)ud)->body; stops the
 * transfer when the cap is reached. */
size_t h_resp_write(char *data, size_t size, size_t n, void *ud);

/* Releases body and json and zeroes r. Safe on a zeroed or freed r. */
void h_resp_free(h_resp *r);

/* The string member key of object o, or "" when o is not an object, has
 * no such member or the member is not a string. Points into o. */
const char *h_jstr(const json_t *o, const char *key);

/* error.code of the panel's error body in r, or "". Points into r->json. */
const char *h_err_code(const h_resp *r);

/* POSTs /auth/login with user and password and returns the status, or a
 * berth code as h_call() does. On 201 the tokens are copied into access
 * (H_ACCESS_MAX bytes) and refresh (H_REFRESH_MAX bytes) where those are
 * not NULL; a longer token is an error (BERTH_ETOOBIG). */
long h_login(h_panel *p, const char *user, const char *password,
             char *access, char *refresh);

#endif
