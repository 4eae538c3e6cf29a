/* panel.c - the real berth-panel for integration tests, and a libcurl
 * client for its HTTP API (see panel.h).
 *
 * Layout: the panel's environment and process, h_panel_start/restart/stop,
 * then the HTTP calls and the JSON accessors.
 */
#include "tests/harness/panel.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"

#define H_PANEL_ENV_BASE 7     /* variables every panel gets */
#define H_PANEL_ENV_ADDR 3     /* the slot of BERTH_PANEL_ADDR */
#define H_CALL_TIMEOUT_S 20L   /* one HTTP request, connect included */
#define H_AUTH_MAX (H_ACCESS_MAX + 32) /* the Authorization header line */

/* ---------------------------------------------------------------- process */

static void env_free(char **env)
{
    size_t i;

    if (env == NULL)
        return;
    for (i = 0; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

/* Appends a formatted "K=V" string to env at *k (NULL on failure, so
 * env stays NULL-terminated for env_free()). Returns 0 or BERTH_ENOMEM. */
__attribute__((format(printf, 3, 4))) static int env_add(char **env,
                                                         size_t *k,
                                                         const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&env[*k], fmt, ap);
    va_end(ap);
    if (n < 0) {
        env[*k] = NULL;
        return BERTH_ENOMEM;
    }
    (*k)++;
    return 0;
}

/* Builds p->_env: the panel's own variables, then extra_env (copied).
 * Slot H_PANEL_ENV_ADDR is rewritten by panel_spawn() on every start. */
static int env_build(h_panel *p, const char *admin_password,
                     char *const extra_env[])
{
    size_t n_extra = 0, i, k = 0;
    char **env;
    int rc;

    while (extra_env != NULL && extra_env[n_extra] != NULL)
        n_extra++;
    env = calloc(H_PANEL_ENV_BASE + n_extra + 1, sizeof(*env));
    if (env == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = env_add(env, &k, "BERTH_NATS_URL=%s", p->nats.url);
    if (rc == 0)
        rc = env_add(env, &k, "BERTH_PG_DSN=%s", p->pg.dsn);
    if (rc == 0)
        rc = env_add(env, &k, "BERTH_DATA_DIR=%s/panel", p->nats.dir);
    if (rc == 0)
        rc = env_add(env, &k, "BERTH_PANEL_ADDR=");
    if (rc == 0)
        rc = env_add(env, &k, "BERTH_SQL_DIR=%s/../../sql", h_bin("."));
    if (rc == 0)
        rc = env_add(env, &k, "BERTH_ADMIN_PASSWORD=%s", admin_password);
    if (rc == 0)
        rc = env_add(env, &k, "BERTH_STRICT_SUBJECTS=1");
    for (i = 0; rc == 0 && i < n_extra; i++)
        rc = env_add(env, &k, "%s", extra_env[i]);
    if (rc != 0)
        goto out;
    p->_env = env;
    env = NULL;
out:
    env_free(env);
    if (rc != 0)
        fprintf(stderr, "harness: panel: out of memory\n");
    return rc;
}

/* Starts berth-panel on a new free port and waits for "msg=ready". */
static int panel_spawn(h_panel *p)
{
    char *argv[] = {(char *)h_bin("berth-panel"), NULL};
    char *addr = NULL;
    int port, rc;

    port = h_free_port();
    if (port < 0)
        return port;
    if (asprintf(&addr, "BERTH_PANEL_ADDR=127.0.0.1:%d", port) < 0)
        return BERTH_ENOMEM;
    free(p->_env[H_PANEL_ENV_ADDR]);
    p->_env[H_PANEL_ENV_ADDR] = addr;
    p->port = port;
    snprintf(p->base, sizeof(p->base), "http://127.0.0.1:%d", port);
    rc = h_proc_start(&p->proc, "panel", argv, p->_env, p->log);
    if (rc != 0)
        return rc;
    return h_proc_wait_log(&p->proc, "msg=ready", H_PANEL_READY_MS);
}

int h_panel_start(h_panel *p, const char *admin_password,
                  char *const extra_env[])
{
    int rc;

    memset(p, 0, sizeof(*p));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "harness: panel: curl_global_init failed\n");
        return BERTH_EINTERNAL;
    }
    p->_curl = 1;
    rc = h_nats_start(&p->nats);
    if (rc != 0)
        goto out;
    rc = h_pg_start(&p->pg);
    if (rc != 0)
        goto out;
    snprintf(p->log, sizeof(p->log), "%s/panel.log", p->nats.dir);
    rc = env_build(p, admin_password, extra_env);
    if (rc != 0)
        goto out;
    rc = panel_spawn(p);
out:
    if (rc != 0)
        h_panel_stop(p);
    return rc;
}

int h_panel_restart(h_panel *p)
{
    int st;

    st = h_proc_stop(&p->proc, SIGTERM, H_PANEL_STOP_MS);
    h_proc_free(&p->proc);
    if (st != 0) {
        fprintf(stderr, "harness: panel: stopped with status %d\n", st);
        return BERTH_EIO;
    }
    return panel_spawn(p);
}

int h_panel_stop(h_panel *p)
{
    int st = 0;

    if (p->proc.pid != 0) {
        st = h_proc_stop(&p->proc, SIGTERM, H_PANEL_STOP_MS);
        if (st != 0)
            fprintf(stderr, "harness: panel: stopped with status %d\n", st);
    }
    h_proc_free(&p->proc);
    h_pg_destroy(&p->pg);
    h_nats_stop(&p->nats);
    env_free(p->_env);
    p->_env = NULL;
    if (p->_curl)
        curl_global_cleanup();
    memset(p, 0, sizeof(*p));
    return st;
}

/* ---------------------------------------------------------------- HTTP */

void h_resp_init(h_resp *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, H_RESP_MAX);
}

size_t h_resp_write(char *data, size_t size, size_t n, void *ud)
{
    h_resp *r = ud;
    int rc = buf_append(&r->body, data, size * n);

    if (rc != 0) {
        r->_err = rc;
        return 0;
    }
    return size * n;
}

/* Keeps the value of Retry-After, without the line end. */
static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    static const char name[] = "Retry-After:";
    h_resp *r = ud;
    size_t len = size * n, skip = sizeof(name) - 1;

    if (len > skip && strncasecmp(line, name, skip) == 0) {
        while (skip < len && line[skip] == ' ')
            skip++;
        while (len > skip && (line[len - 1] == '\r' || line[len - 1] == '\n'))
            len--;
        snprintf(r->retry_after, sizeof(r->retry_after), "%.*s",
                 (int)(len - skip), line + skip);
    }
    return size * n;
}

void h_resp_free(h_resp *r)
{
    buf_free(&r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

long h_call(h_panel *p, h_resp *r, const char *method, const char *path,
            const char *bearer, const char *body)
{
    CURL *c = NULL;
    struct curl_slist *h = NULL, *h2;
    char url[512], auth[H_AUTH_MAX];
    CURLcode res;
    long rc;

    h_resp_init(r);
    c = curl_easy_init();
    if (c == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    snprintf(url, sizeof(url), "%s%s", p->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_resp_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, H_CALL_TIMEOUT_S);
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        h2 = curl_slist_append(h, auth);
        if (h2 == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        h = h2;
    }
    if (body != NULL) {
        h2 = curl_slist_append(h, "Content-Type: application/json");
        if (h2 == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        h = h2;
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    res = curl_easy_perform(c);
    if (res != CURLE_OK) {
        fprintf(stderr, "harness: %s %s: %s\n", method, path,
                curl_easy_strerror(res));
        rc = r->_err != 0 ? r->_err : BERTH_EIO;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body.len > 0)
        r->json = json_loadb(r->body.data, r->body.len, 0, NULL);
    rc = r->status;
out:
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

const char *h_jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? s : "";
}

const char *h_err_code(const h_resp *r)
{
    return h_jstr(json_object_get(r->json, "error"), "code");
}

/* Copies src into dst (size bytes); BERTH_ETOOBIG when it does not fit. */
static int copy_token(char *dst, size_t size, const char *src)
{
    if (dst == NULL)
        return 0;
    if (strlen(src) >= size) {
        fprintf(stderr, "harness: login: token of %zu bytes\n", strlen(src));
        return BERTH_ETOOBIG;
    }
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

long h_login(h_panel *p, const char *user, const char *password,
             char *access, char *refresh)
{
    json_t *req = NULL;
    char *body = NULL;
    h_resp r = {0};
    long st;

    req = json_pack("{s:s, s:s}", "username", user, "password", password);
    if (req != NULL)
        body = json_dumps(req, JSON_COMPACT);
    if (body == NULL) {
        st = BERTH_ENOMEM;
        goto out;
    }
    st = h_call(p, &r, "POST", "/auth/login", NULL, body);
    if (st != 201)
        goto out;
    if (copy_token(access, H_ACCESS_MAX, h_jstr(r.json, "accessToken")) != 0 ||
        copy_token(refresh, H_REFRESH_MAX, h_jstr(r.json, "refreshToken")) != 0)
        st = BERTH_ETOOBIG;
out:
    h_resp_free(&r);
    free(body);
    json_decref(req);
    return st;
}
