/* direct.c - the daemon's direct server on libwebsockets: the context and
 * its loop thread, HTTP connections, routing, writing responses, CORS, the
 * worker pool and the loop's inbox (see direct.h, direct_int.h and
 * docs/internals/direct.md).
 *
 * A connection carries one dd_conn, reused across keep-alive requests:
 *
 *   IDLE     between requests                              loop owns it
 *   BODY     headers read, body arriving (a JSON body      loop
 *            into c->body, an upload into its file)
 *   QUEUED   with a worker, or back in the inbox           the worker owns
 *                                                          req and resp
 *   WRITING  the response is going out                     loop
 *   CLOSING  answered before the end of the body; the      loop
 *            rest is read and dropped, then we close
 *
 * What libwebsockets 4.1 needs (learned on the panel, docs/internals/
 * http.md): the URI and its arguments arrive decoded, dot segments
 * collapsed, so file paths travel as the query parameter "path", decoded
 * once; a readable socket while a worker has the request spins the loop,
 * so reading is paused meanwhile (and resumed before asking to write); a
 * body is never discarded to keep a connection alive, an early answer
 * closes it after reading what the client still sends (up to
 * DD_DRAIN_MAX); a pipelined request with a body is refused; chunked
 * request bodies are refused (411): uploads need a length.
 */
#include "svc-daemon/direct.h"
#include "svc-daemon/direct_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bus/catalog.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/net.h"
#include "common/log.h"

#define DD_HEADER_DATA 8192 /* lws: request header bytes (a token fits) */
#define DD_KEEPALIVE_S 30
#define DD_TICK_MS     250
#define DD_WORKERS     4
#define DD_DRAIN_S     5

/* ------------------------------------------------------------------ tables */

/* Request methods as lws tokenizes them. */
static const struct {
    int method;
    enum lws_token_indexes token;
    const char *name;
} methods[] = {
    {DD_GET, WSI_TOKEN_GET_URI, "GET"},
    {DD_POST, WSI_TOKEN_POST_URI, "POST"},
    {DD_PUT, WSI_TOKEN_PUT_URI, "PUT"},
    {DD_DELETE, WSI_TOKEN_DELETE_URI, "DELETE"},
    {DD_OPTIONS, WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {DD_HEAD, WSI_TOKEN_HEAD_URI, "HEAD"},
};

#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

/* What a browser may read from a file response. */
static const char expose_headers[] =
    "Content-Length, Content-Range, Content-Disposition, Accept-Ranges, "
    "ETag, Last-Modified";

static int conn_write(dd_conn *c);

/* ------------------------------------------------------------------ utils */

static const char *method_name(int m)
{
    size_t i;

    for (i = 0; i < NMETHODS; i++) {
        if (methods[i].method == m)
            return methods[i].name;
    }
    return "OTHER";
}

/* Writes the names of the method bits as "GET, POST" into out. */
static void method_list(int bits, char *out, size_t size)
{
    size_t i, o = 0;

    out[0] = '\0';
    for (i = 0; i < NMETHODS; i++) {
        if (bits & methods[i].method)
            o += (size_t)snprintf(out + o, o < size ? size - o : 0, "%s%s",
                                  o ? ", " : "", methods[i].name);
    }
}

/* libwebsockets' log lines (errors only) into ours. */
static void lws_log(int level, const char *line)
{
    char msg[512];
    size_t n;

    (void)level;
    snprintf(msg, sizeof(msg), "%s", line);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_error("libwebsockets", "line=%s", msg);
}

/* Copies header h into dst (size bytes). Returns its length, -1 when
 * absent, -2 when it does not fit. */
static int header(struct lws *wsi, enum lws_token_indexes h, char *dst,
                  int size)
{
    int n = lws_hdr_total_length(wsi, h);

    dst[0] = '\0';
    if (n <= 0)
        return -1;
    if (n >= size)
        return -2;
    if (lws_hdr_copy(wsi, dst, size, h) < 0) {
        dst[0] = '\0';
        return -2;
    }
    return n;
}

/* ------------------------------------------------------------------ responses */

/* Empties a response for the next request, keeping small storage. */
static void resp_reset(dd_resp *r)
{
    int i;

    for (i = 0; i < r->nheaders; i++)
        free(r->headers[i]);
    r->nheaders = 0;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->off = r->len = 0;
    r->status = 200;
    r->content_type = NULL;
    if (r->body._cap > (64u << 10))
        buf_free(&r->body);
    else
        buf_reset(&r->body);
}

/* ------------------------------------------------------------------ jobs */

void dd_submit(daemon_direct *d, dd_job *j)
{
    pthread_mutex_lock(&d->wlock);
    j->next = NULL;
    if (d->wtail != NULL)
        d->wtail->next = j;
    else
        d->whead = j;
    d->wtail = j;
    pthread_cond_signal(&d->wcond);
    pthread_mutex_unlock(&d->wlock);
}

int dd_post(daemon_direct *d, dd_job *j)
{
    bool ring;

    pthread_mutex_lock(&d->ilock);
    if (atomic_load(&d->stop)) {
        pthread_mutex_unlock(&d->ilock);
        return BERTH_EUNAVAIL;
    }
    j->next = NULL;
    if (d->itail != NULL)
        d->itail->next = j;
    else
        d->ihead = j;
    d->itail = j;
    ring = !d->ibell;
    d->ibell = true;
    pthread_mutex_unlock(&d->ilock);
    if (ring)
        lws_cancel_service(d->ctx);
    return 0;
}

static void *worker_main(void *arg)
{
    daemon_direct *d = arg;

    for (;;) {
        dd_job *j;

        pthread_mutex_lock(&d->wlock);
        while (d->whead == NULL && !d->wstop)
            pthread_cond_wait(&d->wcond, &d->wlock);
        if (d->wstop) {
            pthread_mutex_unlock(&d->wlock);
            break;
        }
        j = d->whead;
        d->whead = j->next;
        if (d->whead == NULL)
            d->wtail = NULL;
        pthread_mutex_unlock(&d->wlock);
        if (j->run != NULL)
            j->run(j);
        if (dd_post(d, j) != 0) {
            /* Stopping: daemon_direct_free() ends it. */
            pthread_mutex_lock(&d->ilock);
            j->next = d->ihead;
            d->ihead = j;
            if (d->itail == NULL)
                d->itail = j;
            pthread_mutex_unlock(&d->ilock);
        }
    }
    return NULL;
}

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: runs what the inbox holds. */
static void inbox_drain(daemon_direct *d)
{
    dd_job *j, *next;

    pthread_mutex_lock(&d->ilock);
    j = d->ihead;
    d->ihead = d->itail = NULL;
    d->ibell = false;
    pthread_mutex_unlock(&d->ilock);
    for (; j != NULL; j = next) {
        next = j->next;
        j->done(j, false);
    }
}

/* Ends every job still queued anywhere (the server is being freed). */
static void queues_flush(daemon_direct *d)
{
    dd_job *lists[2], *j, *next;
    int i;

    pthread_mutex_lock(&d->wlock);
    lists[0] = d->whead;
    d->whead = d->wtail = NULL;
    pthread_mutex_unlock(&d->wlock);
    pthread_mutex_lock(&d->ilock);
    lists[1] = d->ihead;
    d->ihead = d->itail = NULL;
    pthread_mutex_unlock(&d->ilock);
    for (i = 0; i < 2; i++) {
        for (j = lists[i]; j != NULL; j = next) {
            next = j->next;
            j->done(j, true);
        }
    }
}

/* ------------------------------------------------------------------ conns */

static dd_conn *conn_new(daemon_direct *d, struct lws *wsi)
{
    dd_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->d = d;
    c->wsi = wsi;
    c->req.rootfd = -1;
    c->resp.fd = -1;
    c->resp.status = 200;
    buf_init(&c->body, DD_JSON_MAX);
    buf_init(&c->resp.body, DD_RESP_MAX);
    buf_init(&c->req.argbuf, DD_ARGS_MAX);
    lws_set_opaque_user_data(wsi, c);
    return c;
}

/* Forgets the request and its response; back to IDLE. */
static void conn_reset(dd_conn *c)
{
    if (c->up != NULL)
        dd_upload_abort(c);
    if (c->req.rootfd >= 0)
        close(c->req.rootfd);
    json_decref(c->req.body);
    buf_free(&c->req.argbuf);
    buf_reset(&c->body);
    resp_reset(&c->resp);
    memset(&c->req, 0, sizeof(c->req));
    c->req.rootfd = -1;
    buf_init(&c->req.argbuf, DD_ARGS_MAX);
    c->state = DD_IDLE;
    c->hdr_sent = false;
    c->off = 0;
    c->has_length = false;
    c->close_after = false;
    c->lingering = false;
    c->drained = 0;
    c->completions = 0;
    c->cors = false;
    c->origin[0] = '\0';
}

static void conn_free(dd_conn *c)
{
    conn_reset(c);
    buf_free(&c->body);
    buf_free(&c->resp.body);
    buf_free(&c->req.argbuf);
    free(c);
}

/* Whether origin may talk to us. */
static bool origin_ok(const daemon_direct *d, const char *origin)
{
    return origin[0] == '\0' || d->origin[0] == '\0' ||
           strcmp(origin, d->origin) == 0;
}

/* Reads the query parameters, decoded by lws. Returns 0, BERTH_EINVAL (a
 * NUL byte in one) or BERTH_ETOOBIG. */
static int read_args(dd_conn *c)
{
    char frag[DD_HEADER_DATA + 1];
    size_t offs[DD_MAX_ARGS][2];
    int i, n;

    for (i = 0;; i++) {
        char *eq;
        size_t klen;

        n = lws_hdr_copy_fragment(c->wsi, frag, sizeof(frag),
                                  WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (strlen(frag) != (size_t)n)
            return BERTH_EINVAL;
        if (c->req.nargs == DD_MAX_ARGS)
            return BERTH_ETOOBIG;
        eq = strchr(frag, '=');
        klen = eq != NULL ? (size_t)(eq - frag) : (size_t)n;
        offs[c->req.nargs][0] = c->req.argbuf.len;
        if (buf_append(&c->req.argbuf, frag, klen) != 0 ||
            buf_putc(&c->req.argbuf, '\0') != 0)
            return BERTH_ETOOBIG;
        offs[c->req.nargs][1] = c->req.argbuf.len;
        if (buf_puts(&c->req.argbuf, eq != NULL ? eq + 1 : "") != 0 ||
            buf_putc(&c->req.argbuf, '\0') != 0)
            return BERTH_ETOOBIG;
        c->req.nargs++;
    }
    for (i = 0; i < c->req.nargs; i++) {
        c->req.keys[i] = c->req.argbuf.data + offs[i][0];
        c->req.vals[i] = c->req.argbuf.data + offs[i][1];
    }
    return 0;
}

/* The token of a request: "Authorization: Bearer <token>", else the query
 * parameter "token". Returns a pointer into buf or the arguments, or
 * NULL. */
static const char *request_token(dd_conn *c, char *tbuf, int size)
{
    int n = header(c->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, tbuf, size);

    if (n > 7 && strncasecmp(tbuf, "Bearer ", 7) == 0) {
        char *t = tbuf + 7;

        while (*t == ' ')
            t++;
        return t;
    }
    return dd_arg(&c->req, "token");
}

/* ------------------------------------------------------------------ writing */

static int no_body_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

static int add_header(struct lws *wsi, const char *name, const char *value,
                      unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

/* Writes the status line and headers at *p (not past end). */
static int put_headers(dd_conn *c, unsigned char **p, unsigned char *end,
                       uint64_t clen)
{
    struct lws *wsi = c->wsi;
    dd_resp *r = &c->resp;
    const char *ctype =
        r->content_type != NULL ? r->content_type : "application/json";
    int i;

    if (lws_add_http_header_status(wsi, (unsigned)r->status, p, end))
        return -1;
    if (!no_body_status(r->status)) {
        if (add_header(wsi, "content-type:", ctype, p, end) ||
            lws_add_http_header_content_length(wsi, clen, p, end))
            return -1;
        if (r->content_type == NULL &&
            add_header(wsi, "cache-control:", "no-store", p, end))
            return -1;
    }
    if (add_header(wsi, "x-content-type-options:", "nosniff", p, end))
        return -1;
    if (c->cors) {
        if (add_header(wsi, "access-control-allow-origin:", c->origin, p,
                       end) ||
            add_header(wsi, "vary:", "Origin", p, end) ||
            add_header(wsi, "access-control-expose-headers:", expose_headers,
                       p, end))
            return -1;
    }
    for (i = 0; i < r->nheaders; i++) {
        const char *line = r->headers[i];
        const char *colon = strchr(line, ':');
        const char *v;
        char name[128];
        size_t nl;

        if (colon == NULL || (size_t)(colon - line) + 2 > sizeof(name))
            continue;
        nl = (size_t)(colon - line) + 1;
        memcpy(name, line, nl);
        name[nl] = '\0';
        for (v = colon + 1; *v == ' '; v++)
            ;
        if (add_header(wsi, name, v, p, end))
            return -1;
    }
    if (c->close_after &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                     (const unsigned char *)"close", 5, p,
                                     end))
        return -1;
    return lws_finalize_http_header(wsi, p, end) ? -1 : 0;
}

/* The response is out: keep the connection or close it. */
static int conn_finish(dd_conn *c)
{
    bool close_after = c->close_after, wait = c->lingering;

    conn_reset(c);
    if (!close_after)
        return lws_http_transaction_completed(c->wsi) ? -1 : 0;
    if (!wait)
        return -1;
    c->state = DD_CLOSING;
    c->lingering = true;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, DD_DRAIN_S);
    return 0;
}

/* Writes the headers (first call) and the next piece of the body; asks
 * for another writeable callback until the last. Returns -1 to close. */
static int conn_write(dd_conn *c)
{
    dd_resp *r = &c->resp;
    unsigned char *start = c->d->wbuf + LWS_PRE, *p = start;
    unsigned char *end = start + DD_HDR_ROOM + DD_CHUNK;
    size_t room;
    bool last;

    if (!c->hdr_sent) {
        uint64_t clen = r->fd >= 0 ? r->len : r->body.len;

        if (r->status < 100 || r->status > 599)
            dd_error(r, 500, BERTH_EINTERNAL, "internal error");
        if (put_headers(c, &p, start + DD_HDR_ROOM, clen) != 0)
            return -1;
        c->hdr_sent = true;
        if (no_body_status(r->status) || c->req.method == DD_HEAD) {
            if (r->fd >= 0)
                close(r->fd);
            r->fd = -1;
            r->len = 0;
            c->off = r->body.len;
        }
    }
    room = (size_t)(end - p);
    if (r->fd >= 0) {
        size_t want = r->len < room ? (size_t)r->len : room;
        ssize_t n = want > 0 ? pread(r->fd, p, want, (off_t)r->off) : 0;

        if (want > 0 && n <= 0)
            return -1; /* the file shrank or failed: cut the response */
        p += n;
        r->off += (uint64_t)n;
        r->len -= (uint64_t)n;
        last = r->len == 0;
    } else {
        size_t n = r->body.len - c->off;

        if (n > room)
            n = room;
        if (n > 0)
            memcpy(p, r->body.data + c->off, n);
        p += n;
        c->off += n;
        last = c->off == r->body.len;
    }
    if (p > start &&
        lws_write(c->wsi, start, (size_t)(p - start),
                  last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
        return -1;
    if (!last) {
        /* The idle timeout counts from the last piece the kernel took. */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, c->d->idle_s);
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    return conn_finish(c);
}

/* Answers now, before (or instead of) reading the body. Such a
 * connection closes after the answer, once the client has sent its body
 * (up to DD_DRAIN_MAX), so that it reads the answer rather than a reset. */
static int reply_early(dd_conn *c)
{
    if (c->state == DD_BODY || c->state == DD_IDLE) {
        if (c->has_length && c->req.content_length > 0) {
            c->close_after = true;
            c->lingering = c->req.content_length <= DD_DRAIN_MAX;
        } else if (!c->has_length && (c->req.method == DD_POST ||
                                      c->req.method == DD_PUT)) {
            c->close_after = true;
        }
    }
    if (c->up != NULL)
        dd_upload_abort(c);
    c->state = DD_WRITING;
    return conn_write(c);
}

static int reply_error(dd_conn *c, int status, int code, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static int reply_error(dd_conn *c, int status, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dd_error(&c->resp, status, code, "%s", msg);
    return reply_early(c);
}

/* ------------------------------------------------------------------ dispatch */

static void conn_run(dd_job *j)
{
    dd_conn *c = (dd_conn *)j;

    c->req.op->fn(c->d, &c->req, &c->resp);
}

static void conn_done(dd_job *j, bool stopping)
{
    dd_conn *c = (dd_conn *)j;

    if (stopping || c->orphan) {
        conn_free(c);
        return;
    }
    /* A flow-controlled h1 wsi gets no writeable callbacks. */
    lws_rx_flow_control(c->wsi, 1);
    c->state = DD_WRITING;
    lws_callback_on_writable(c->wsi);
}

/* Runs the operation on a worker, or here. */
static int dispatch(dd_conn *c)
{
    if (!(c->req.op->flags & DD_OP_WORKER)) {
        c->req.op->fn(c->d, &c->req, &c->resp);
        c->state = DD_WRITING;
        return conn_write(c);
    }
    /* lws would spin on a readable socket (a FIN, pipelined bytes) while
     * the transaction is open: stop reading until the job is back. */
    lws_rx_flow_control(c->wsi, 0);
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    c->state = DD_QUEUED;
    c->job.run = conn_run;
    c->job.done = conn_done;
    dd_submit(c->d, &c->job);
    return 0;
}

/* ------------------------------------------------------------------ requests */

/* Reads Content-Length and refuses what cannot be framed. Returns 0 or
 * -1 after an answer. */
static int read_framing(dd_conn *c, int *rc)
{
    char te[64], clen[32];
    int n, i;

    *rc = 0;
    n = header(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen, sizeof(clen));
    if (n >= 0 || n == -2) {
        if (n <= 0 || n > 19) {
            *rc = reply_error(c, 400, BERTH_EINVAL, "malformed Content-Length");
            return -1;
        }
        for (i = 0; clen[i]; i++) {
            if (clen[i] < '0' || clen[i] > '9') {
                *rc = reply_error(c, 400, BERTH_EINVAL,
                                  "malformed Content-Length");
                return -1;
            }
            c->req.content_length =
                c->req.content_length * 10 + (uint64_t)(clen[i] - '0');
        }
        c->has_length = true;
    }
    if (header(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, te, sizeof(te)) !=
        -1) {
        /* lws 4.1 leaves a chunked body encoded and then waits for more:
         * nothing can follow on this connection. */
        c->close_after = true;
        *rc = reply_error(c, 411, BERTH_EINVAL,
                          "a body needs a Content-Length");
        return -1;
    }
    return 0;
}

/* The request's method from lws's tokens. */
static int read_method(struct lws *wsi)
{
    size_t i;

    for (i = 0; i < NMETHODS; i++) {
        if (lws_hdr_total_length(wsi, methods[i].token) > 0)
            return methods[i].method;
    }
    return 0;
}

/* Splits "/sites/<id>/<rest>": copies id, points *rest after its slash.
 * Returns 0 or -1 when path has another shape or id is not a bus token. */
static int parse_site_path(const char *path, char *id, const char **rest)
{
    const char *p, *slash;
    size_t n;

    if (strncmp(path, "/sites/", 7) != 0)
        return -1;
    p = path + 7;
    slash = strchr(p, '/');
    if (slash == NULL)
        return -1;
    n = (size_t)(slash - p);
    if (n == 0 || n >= DD_ID_MAX)
        return -1;
    memcpy(id, p, n);
    id[n] = '\0';
    if (!bus_token_valid(id))
        return -1;
    *rest = slash + 1;
    return 0;
}

/* GET /health: who we are, for the UI's diagnostics; any origin. */
static int on_health(dd_conn *c)
{
    daemon_direct *d = c->d;

    if (c->req.method == DD_OPTIONS) {
        c->resp.status = 204;
    } else if (c->req.method != DD_GET && c->req.method != DD_HEAD) {
        dd_error(&c->resp, 405, BERTH_ENOTSUP, "use GET");
        dd_header(&c->resp, "Allow", "GET, HEAD, OPTIONS");
    } else {
        dd_json(&c->resp, 200,
                json_pack("{s:b, s:s, s:s, s:b, s:s?}", "ok", 1, "node",
                          d->node, "version", d->version, "tls", d->tls,
                          "panelOrigin",
                          d->origin[0] != '\0' ? d->origin : NULL));
    }
    c->cors = false;
    dd_header(&c->resp, "Access-Control-Allow-Origin", "*");
    if (c->req.method == DD_OPTIONS) {
        dd_header(&c->resp, "Access-Control-Allow-Methods", "GET, HEAD");
        dd_header(&c->resp, "Access-Control-Max-Age", "600");
    }
    return reply_early(c);
}

/* OPTIONS on a file route: the CORS preflight. */
static int on_preflight(dd_conn *c, int allowed)
{
    char allow[64];

    method_list(allowed | DD_OPTIONS, allow, sizeof(allow));
    c->resp.status = 204;
    dd_header(&c->resp, "Allow", allow);
    if (c->cors) {
        dd_header(&c->resp, "Access-Control-Allow-Methods", allow);
        dd_header(&c->resp, "Access-Control-Allow-Headers",
                  "Authorization, Content-Type, Range, If-Range");
        dd_header(&c->resp, "Access-Control-Max-Age", "600");
    }
    return reply_early(c);
}

/* Sends the interim "100 Continue" to a client waiting with Expect. */
static int send_continue(dd_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    unsigned char *p = c->d->wbuf + LWS_PRE;

    memcpy(p, cont, sizeof(cont) - 1);
    return lws_write(c->wsi, p, sizeof(cont) - 1, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}

/* The body of this request will be read: headers are done. */
static int expect_body(dd_conn *c)
{
    char expect[32];

    if (header(c->wsi, WSI_TOKEN_HTTP_EXPECT, expect, sizeof(expect)) > 0 &&
        strcasecmp(expect, "100-continue") == 0 && send_continue(c) != 0)
        return -1;
    c->state = DD_BODY;
    return 0;
}

/* LWS_CALLBACK_HTTP: a request's headers are in. */
static int on_http(daemon_direct *d, struct lws *wsi, const char *uri)
{
    dd_conn *c = lws_get_opaque_user_data(wsi);
    char site[DD_ID_MAX], why[256];
    char *tbuf = NULL;
    const char *rest, *token;
    const dd_op *op;
    int rc;

    if (c == NULL) {
        c = conn_new(d, wsi);
        if (c == NULL)
            return -1;
    }
    if (c->state != DD_IDLE)
        return -1; /* pipelined while a request is in flight */
    conn_reset(c);
    c->req.method = read_method(wsi);
    if (header(wsi, WSI_TOKEN_ORIGIN, c->origin, sizeof(c->origin)) == -2)
        return reply_error(c, 400, BERTH_EINVAL, "Origin too long");
    if (read_framing(c, &rc) != 0)
        return rc;
    if (strcmp(uri, "/health") == 0)
        return on_health(c);
    if (!origin_ok(d, c->origin)) {
        log_warn("direct request from another origin refused",
                 "origin=%s path=%s", c->origin, uri);
        return reply_error(c, 403, BERTH_EPERM,
                           "origin %s may not use this node (the panel's is "
                           "%s)",
                           c->origin, d->origin);
    }
    c->cors = c->origin[0] != '\0';
    if (parse_site_path(uri, site, &rest) != 0)
        return reply_error(c, 404, BERTH_ENOENT, "no route for %s", uri);
    if (strcmp(rest, "console") == 0)
        return reply_error(c, 426, BERTH_EINVAL,
                           "the console is a websocket");
    if (strncmp(rest, "files/", 6) != 0)
        return reply_error(c, 404, BERTH_ENOENT, "no route for %s", uri);
    op = dd_files_op(rest + 6);
    if (op == NULL)
        return reply_error(c, 404, BERTH_ENOENT, "no file operation %s",
                           rest + 6);
    if (c->req.method == DD_OPTIONS)
        return on_preflight(c, op->methods);
    if (!(c->req.method & op->methods)) {
        char allow[64];

        method_list(op->methods | DD_OPTIONS, allow, sizeof(allow));
        dd_header(&c->resp, "Allow", allow);
        return reply_error(c, 405, BERTH_ENOTSUP, "%s is not allowed on %s",
                           method_name(c->req.method), op->name);
    }
    rc = read_args(c);
    if (rc != 0)
        return reply_error(c, 400, rc,
                           rc == BERTH_EINVAL
                               ? "a NUL byte in a query parameter"
                               : "too many or too long query parameters");
    snprintf(c->req.site, sizeof(c->req.site), "%s", site);
    c->req.op = op;
    tbuf = malloc(DD_HEADER_DATA);
    if (tbuf == NULL)
        return -1;
    token = request_token(c, tbuf, DD_HEADER_DATA);
    rc = dd_auth_check(d, token, site, "files", op->perm, &c->req.claims, why,
                       sizeof(why));
    free(tbuf);
    if (rc == 0 && (op->flags & DD_OP_TRANSFER)) {
        rc = dd_auth_spend(d, &c->req.claims);
        if (rc != 0)
            snprintf(why, sizeof(why), "%s",
                     rc == BERTH_EAUTH ? "this token was used already"
                                       : "too many transfers under way");
    }
    if (rc != 0) {
        if (rc == BERTH_EAUTH)
            dd_header(&c->resp, "WWW-Authenticate", "Bearer");
        return reply_error(c, 0, rc, "%s", why);
    }
    header(wsi, WSI_TOKEN_HTTP_RANGE, c->req.range, sizeof(c->req.range));
    header(wsi, WSI_TOKEN_HTTP_IF_RANGE, c->req.if_range,
           sizeof(c->req.if_range));

    if (op->flags & DD_OP_DOWNLOAD) {
        dd_download(d, c);
        return reply_early(c);
    }
    if (op->flags & DD_OP_UPLOAD) {
        if (!c->has_length) {
            c->close_after = true;
            return reply_error(c, 411, BERTH_EINVAL,
                               "an upload needs a Content-Length");
        }
        if (c->req.content_length > d->upload_max)
            return reply_error(c, 413, BERTH_ETOOBIG,
                               "the file is larger than this node accepts "
                               "(%llu bytes)",
                               (unsigned long long)d->upload_max);
        if (dd_upload_begin(d, c) != 0)
            return reply_early(c);
        if (c->req.content_length == 0) {
            dd_upload_end(d, c);
            return reply_early(c);
        }
        return expect_body(c);
    }
    if (op->flags & DD_OP_JSON) {
        if (!c->has_length || c->req.content_length == 0)
            return reply_error(c, 400, BERTH_EINVAL,
                               "a JSON object body is required");
        if (c->req.content_length > DD_JSON_MAX)
            return reply_error(c, 413, BERTH_ETOOBIG,
                               "request body too large");
        return expect_body(c);
    }
    if (c->has_length && c->req.content_length > 0)
        return reply_error(c, 400, BERTH_EINVAL, "%s takes no body",
                           op->name);
    return dispatch(c);
}

/* Whether a request's first body bytes are a request line: lws 4.1 hands
 * a pipelined request that sat in its buffer the buffer's start, headers
 * included, as body. Such a connection is closed. */
static bool body_is_headers(const dd_conn *c, const unsigned char *in,
                            size_t len)
{
    char line[16];
    size_t n = (size_t)snprintf(line, sizeof(line), "%s /",
                                method_name(c->req.method));
    const unsigned char *eol;

    if (memcmp(in, line, len < n ? len : n) != 0)
        return false;
    eol = memchr(in, '\n', len);
    return eol == NULL ||
           (eol - in >= 10 && memcmp(eol - 10, " HTTP/1.", 8) == 0);
}

/* LWS_CALLBACK_HTTP_BODY */
static int on_body(dd_conn *c, const unsigned char *in, size_t len)
{
    int rc;

    if (c->state == DD_CLOSING) {
        c->drained += len;
        return c->drained > DD_DRAIN_MAX ? -1 : 0;
    }
    if (c->state != DD_BODY || len == 0)
        return 0;
    if (c->drained == 0 && body_is_headers(c, in, len)) {
        log_warn("direct pipelined body refused", "site=%s", c->req.site);
        return -1;
    }
    c->drained += len;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, c->d->idle_s);
    if (c->up != NULL) {
        rc = dd_upload_data(c, in, len);
        if (rc != 0) {
            dd_fail_path(&c->resp, rc, "upload", dd_arg(&c->req, "path"));
            return reply_early(c);
        }
        return 0;
    }
    if (buf_append(&c->body, in, len) != 0)
        return reply_error(c, 413, BERTH_ETOOBIG, "request body too large");
    return 0;
}

/* LWS_CALLBACK_HTTP_BODY_COMPLETION */
static int on_body_done(dd_conn *c)
{
    json_error_t err;
    json_t *j;

    /* Once per request; a second one is lws looping on a bad buffer. */
    if (c->completions++ > 0)
        return -1;
    if (c->state == DD_CLOSING)
        return -1; /* the rejected body is in: close now */
    if (c->state != DD_BODY)
        return 0;
    if (c->up != NULL) {
        dd_upload_end(c->d, c);
        c->state = DD_WRITING;
        return conn_write(c);
    }
    j = json_loadb(c->body.data != NULL ? c->body.data : "", c->body.len,
                   JSON_REJECT_DUPLICATES, &err);
    if (j == NULL || !json_is_object(j)) {
        if (j == NULL)
            dd_error(&c->resp, 400, BERTH_EPROTO,
                     "invalid JSON (line %d, column %d): %s", err.line,
                     err.column, err.text);
        else
            dd_error(&c->resp, 400, BERTH_EINVAL,
                     "the body must be a JSON object");
        json_decref(j);
        c->state = DD_WRITING;
        return conn_write(c);
    }
    c->req.body = j;
    return dispatch(c);
}

/* LWS_CALLBACK_WSI_DESTROY: the connection is gone. */
static void conn_gone(dd_conn *c)
{
    if (c->ws != NULL)
        dd_console_closed(c);
    c->wsi = NULL;
    if (c->state == DD_QUEUED) {
        c->orphan = true; /* freed when its job comes back */
        return;
    }
    conn_free(c);
}

/* ------------------------------------------------------------------ websocket */

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: websockets on /sites/<id>/console
 * only, from the panel's origin. */
static int on_upgrade(daemon_direct *d, struct lws *wsi, const char *what)
{
    dd_conn *c = lws_get_opaque_user_data(wsi);
    char uri[256], origin[DD_ORIGIN_MAX], site[DD_ID_MAX];
    const char *rest;

    if (what == NULL || strcasecmp(what, "websocket") != 0 ||
        d->console == NULL)
        return -1;
    if (header(wsi, WSI_TOKEN_GET_URI, uri, sizeof(uri)) <= 0 ||
        parse_site_path(uri, site, &rest) != 0 || strcmp(rest, "console") != 0)
        return -1;
    if (header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) == -2 ||
        !origin_ok(d, origin)) {
        log_warn("direct console from another origin refused",
                 "origin=%s site=%s", origin, site);
        return -1;
    }
    if (c != NULL && c->state != DD_IDLE)
        return -1;
    return 0;
}

/* LWS_CALLBACK_ESTABLISHED */
static int on_ws_open(daemon_direct *d, struct lws *wsi)
{
    dd_conn *c = lws_get_opaque_user_data(wsi);
    char uri[256], site[DD_ID_MAX];
    const char *rest;

    if (c == NULL) {
        c = conn_new(d, wsi);
        if (c == NULL)
            return -1;
    }
    conn_reset(c);
    if (header(wsi, WSI_TOKEN_GET_URI, uri, sizeof(uri)) <= 0 ||
        parse_site_path(uri, site, &rest) != 0)
        return -1;
    if (read_args(c) != 0)
        return -1;
    return dd_console_open(d, c, site, dd_arg(&c->req, "token"));
}

/* ------------------------------------------------------------------ lws */

static void on_tick(lws_sorted_usec_list_t *sul)
{
    daemon_direct *d = lws_container_of(sul, daemon_direct, tick);
    int64_t now = clock_wall_ms();

    dd_auth_tick(d, now / 1000);
    dd_console_tick(d, now);
    if (!atomic_load(&d->stop))
        lws_sul_schedule(d->ctx, 0, &d->tick, on_tick,
                         DD_TICK_MS * LWS_US_PER_MS);
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason,
                  void *user, void *in, size_t len)
{
    daemon_direct *d;
    dd_conn *c;

    (void)user;
    if (wsi == NULL)
        return 0;
    d = lws_context_user(lws_get_context(wsi));
    if (d == NULL)
        return 0;
    c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(d, wsi, in);
    case LWS_CALLBACK_HTTP_BODY:
        return c != NULL ? on_body(c, in, len) : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return c != NULL ? on_body_done(c) : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c != NULL && c->state == DD_WRITING ? conn_write(c) : 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_upgrade(d, wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        return on_ws_open(d, wsi);
    case LWS_CALLBACK_RECEIVE:
        return c != NULL && c->ws != NULL ? dd_console_receive(c, in, len)
                                          : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c != NULL && c->ws != NULL ? dd_console_writeable(c) : 0;
    case LWS_CALLBACK_CLOSED:
        if (c != NULL && c->ws != NULL)
            dd_console_closed(c);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (!d->dying)
            inbox_drain(d);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (c != NULL) {
            lws_set_opaque_user_data(wsi, NULL);
            conn_gone(c);
        }
        return 0;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ listening */




/* Whether origin is "scheme://host[:port]" without a path. */
static bool origin_valid(const char *o)
{
    const char *h;

    if (strncmp(o, "https://", 8) == 0)
        h = o + 8;
    else if (strncmp(o, "http://", 7) == 0)
        h = o + 7;
    else
        return false;
    return h[0] != '\0' && strpbrk(h, "/?# \t\r\n") == NULL &&
           strlen(o) < DD_ORIGIN_MAX;
}

static void *loop_main(void *arg)
{
    daemon_direct *d = arg;

    while (!atomic_load(&d->stop)) {
        if (lws_service(d->ctx, 0) < 0) {
            log_error("direct loop failed", "error=%s",
                      berth_strerror(BERTH_EIO));
            break;
        }
    }
    return NULL;
}

int daemon_direct_new(const daemon_direct_cfg *cfg, daemon_direct **out)
{
    struct lws_context_creation_info info;
    daemon_direct *d = NULL;
    char host[256], iface[INET6_ADDRSTRLEN];
    int port, ipv4, rc, i, nworkers;

    *out = NULL;
    if (cfg == NULL || cfg->bus == NULL || cfg->files == NULL ||
        cfg->node_id == NULL || !bus_token_valid(cfg->node_id) ||
        strlen(cfg->node_id) >= DD_ID_MAX || cfg->addr == NULL ||
        cfg->data_dir == NULL)
        return BERTH_EINVAL;
    if ((cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0') !=
        (cfg->tls_key != NULL && cfg->tls_key[0] != '\0')) {
        log_error("direct TLS needs both a certificate and a key",
                  "cert=%s key=%s", cfg->tls_cert ? cfg->tls_cert : "",
                  cfg->tls_key ? cfg->tls_key : "");
        return BERTH_EINVAL;
    }
    if (cfg->panel_origin != NULL && cfg->panel_origin[0] != '\0' &&
        !origin_valid(cfg->panel_origin)) {
        log_error("direct panel origin invalid",
                  "origin=%s expected=scheme://host[:port]", cfg->panel_origin);
        return BERTH_EINVAL;
    }
    rc = net_parse_addr(cfg->addr, host, sizeof(host), &port);
    if (rc == 0)
        rc = net_resolve_host(host, iface, sizeof(iface), &ipv4);
    if (rc != 0) {
        log_error("direct address invalid", "addr=%s", cfg->addr);
        return rc;
    }
    rc = net_port_taken(iface, ipv4, port);
    if (rc != 0) {
        log_error("direct address in use", "addr=%s", cfg->addr);
        return rc;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return BERTH_ENOMEM;
    pthread_mutex_init(&d->wlock, NULL);
    pthread_cond_init(&d->wcond, NULL);
    pthread_mutex_init(&d->ilock, NULL);
    pthread_mutex_init(&d->klock, NULL);
    pthread_cond_init(&d->kcond, NULL);
    d->bus = cfg->bus;
    d->console = cfg->console;
    d->sites = cfg->sites;
    d->files = cfg->files;
    snprintf(d->node, sizeof(d->node), "%s", cfg->node_id);
    snprintf(d->version, sizeof(d->version), "%s",
             cfg->version != NULL ? cfg->version : "");
    snprintf(d->origin, sizeof(d->origin), "%s",
             cfg->panel_origin != NULL ? cfg->panel_origin : "");
    d->tls = cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0';
    d->upload_max = cfg->upload_max != 0 ? cfg->upload_max
                                         : DAEMON_DIRECT_UPLOAD_MAX_DEFAULT;
    d->extract_max = cfg->extract_max != 0 ? cfg->extract_max
                                           : DAEMON_DIRECT_EXTRACT_MAX_DEFAULT;
    d->extract_entries = cfg->extract_entries != 0
                             ? cfg->extract_entries
                             : DAEMON_DIRECT_EXTRACT_ENTRIES_DEFAULT;
    d->idle_s = cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : 30;
    d->refresh_ms = cfg->pubkey_refresh_ms > 0
                        ? cfg->pubkey_refresh_ms
                        : DAEMON_DIRECT_PUBKEY_REFRESH_DEFAULT;
    d->data_dir = strdup(cfg->data_dir);
    d->wbuf = malloc(LWS_PRE + DD_HDR_ROOM + DD_CHUNK);
    nworkers = cfg->workers > 0 ? cfg->workers : DD_WORKERS;
    d->workers = calloc((size_t)nworkers, sizeof(*d->workers));
    if (d->data_dir == NULL || d->wbuf == NULL || d->workers == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = dd_auth_start(d);
    if (rc != 0)
        goto out;

    d->protocols[0].name = "berth-direct";
    d->protocols[0].callback = on_lws;
    d->protocols[0].rx_buffer_size = DD_CHUNK;
    d->protocols[0].tx_packet_size = DD_HDR_ROOM + DD_CHUNK;
    lws_set_log_level(LLL_ERR, lws_log);
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = iface[0] != '\0' ? iface : NULL;
    info.protocols = d->protocols;
    info.user = d;
    info.vhost_name = "berth-direct";
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   (ipv4 ? LWS_SERVER_OPTION_DISABLE_IPV6 : 0);
    if (d->tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        info.alpn = "http/1.1";
    }
    info.max_http_header_data = DD_HEADER_DATA;
    info.keepalive_timeout = DD_KEEPALIVE_S;
    info.timeout_secs = (unsigned)d->idle_s;
    info.ka_time = 60; /* TCP keep-alive finds dead websocket peers */
    info.ka_probes = 3;
    info.ka_interval = 10;
    info.pt_serv_buf_size = DD_CHUNK;
    info.fd_limit_per_thread = DD_CONN_MAX;
    d->ctx = lws_create_context(&info);
    if (d->ctx == NULL) {
        log_error("direct listen failed", "addr=%s tls=%d", cfg->addr,
                  (int)d->tls);
        rc = BERTH_EIO;
        goto out;
    }
    d->port = lws_get_vhost_listen_port(
        lws_get_vhost_by_name(d->ctx, "berth-direct"));
    rc = dd_console_start(d);
    if (rc != 0)
        goto out;
    for (i = 0; i < nworkers; i++) {
        if (pthread_create(&d->workers[i], NULL, worker_main, d) != 0) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        d->nworkers++;
    }
    lws_sul_schedule(d->ctx, 0, &d->tick, on_tick, DD_TICK_MS * LWS_US_PER_MS);
    if (pthread_create(&d->loop_thread, NULL, loop_main, d) != 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    d->loop_started = true;
    if (d->origin[0] == '\0')
        log_warn("direct server accepts every origin",
                 "hint=%s", "set BERTH_DAEMON_PANEL_ORIGIN to the panel's");
    log_info("direct server listening", "addr=%s port=%d tls=%d origin=%s",
             cfg->addr, d->port, (int)d->tls, d->origin);
    *out = d;
    d = NULL;
out:
    daemon_direct_free(d);
    return rc;
}

int daemon_direct_port(const daemon_direct *d)
{
    return d->port;
}

void daemon_direct_free(daemon_direct *d)
{
    int i;

    if (d == NULL)
        return;
    dd_console_stop(d);
    pthread_mutex_lock(&d->ilock);
    atomic_store(&d->stop, true);
    pthread_mutex_unlock(&d->ilock);
    if (d->loop_started) {
        lws_cancel_service(d->ctx);
        pthread_join(d->loop_thread, NULL);
    }
    pthread_mutex_lock(&d->wlock);
    d->wstop = true;
    pthread_cond_broadcast(&d->wcond);
    pthread_mutex_unlock(&d->wlock);
    for (i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i], NULL);
    dd_auth_stop(d);
    /* Closing every connection orphans the conns still with the queues,
     * which queues_flush() then frees. */
    d->dying = true;
    if (d->ctx != NULL) {
        lws_sul_cancel(&d->tick);
        lws_context_destroy(d->ctx);
    }
    queues_flush(d);
    buf_free(&d->wsout);
    free(d->spent);
    free(d->revoked);
    free(d->workers);
    free(d->wbuf);
    free(d->data_dir);
    pthread_mutex_destroy(&d->wlock);
    pthread_cond_destroy(&d->wcond);
    pthread_mutex_destroy(&d->ilock);
    pthread_mutex_destroy(&d->klock);
    pthread_cond_destroy(&d->kcond);
    free(d);
}
