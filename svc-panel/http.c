/* http.c - the panel's HTTP and websocket server on libwebsockets.
 *
 * This file holds the lws context and loop, the connection state machine,
 * the worker pool and dispatch. Websockets are in http_ws.c, response
 * helpers, query decoding and metrics in http_util.c; the structs the
 * three share are in http_int.h.
 *
 * Threads. http_run() runs the lws event loop, which owns every connection,
 * every struct conn and every http_ws. `workers` threads run the handlers of
 * routes without HTTP_FAST. The two sides meet only in two locked queues:
 * the work queue (loop -> workers, a condition variable as the doorbell) and
 * the done queue (workers and http_post() -> loop, lws_cancel_service() as
 * the doorbell, answered by LWS_CALLBACK_EVENT_WAIT_CANCELLED).
 *
 * A connection carries one struct conn (hung on the wsi with
 * lws_set_opaque_user_data(), reused across keep-alive requests) whose
 * state is one of:
 *
 *   IDLE     between requests                              loop owns it
 *   BODY     headers read, body arriving                   loop
 *   QUEUED   in the work queue, in a handler or in the     the pool owns
 *            done queue                                    req and resp
 *   WRITING  response being written                        loop
 *   CLOSING  answered before the end of the body (413,     loop
 *            404...) with Connection: close; the rest of
 *            the body is read and dropped, then we close
 *
 * While a conn is QUEUED the loop touches only its `wsi`, `orphan` and
 * `completions` fields, which no worker reads. When the connection dies
 * meanwhile (LWS_CALLBACK_WSI_DESTROY) the loop sets `orphan` and forgets
 * the wsi
 * instead of freeing; the job comes back through the done queue and the
 * loop frees it there. In every other state WSI_DESTROY frees the conn at
 * once. So each conn is freed exactly once, by the loop thread, or by
 * http_free() after the loop and the workers have stopped.
 *
 * libwebsockets 4.1 quirks handled here (docs/internals/http.md has more):
 * the URI and its arguments arrive percent-decoded, so the raw query is
 * rebuilt from the decoded arguments; chunked request bodies are decoded
 * here and leave lws expecting more, so such a connection closes after
 * its response; lws ignores, and so spins on, a readable socket while a
 * transaction is open, so reading is paused while a worker has the
 * request; a pipelined request with a body is mis-parsed, so it closes
 * the connection.
 */
#include "svc-panel/http.h"
#include "svc-panel/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/net.h"
#include "common/log.h"

#define HTTP_STRS_MAX (48u << 10)  /* a request's strings: path, query... */
#define HTTP_HDR_ROOM (16u << 10)  /* response header bytes */
#define HTTP_CHUNK (64u << 10)     /* body bytes per writeable callback */
#define HTTP_DRAIN_MAX (16u << 20) /* body bytes discarded after early reply */
#define HTTP_KEEP_MAX (64u << 10)  /* buffer storage kept between requests */
#define HTTP_HEADER_DATA 8192      /* lws: request header bytes */
#define HTTP_KEEPALIVE_S 30        /* idle keep-alive connections */
#define HTTP_DRAIN_S 5             /* waiting for a rejected body */

/* ------------------------------------------------------------------ tables */

/* Request methods as lws tokenizes them. HEAD is recognised only to be
 * answered without a body. */
static const struct method_def {
    enum http_method method; /* 0: not routable */
    enum lws_token_indexes token;
    const char *name;
} methods[] = {
    {HTTP_GET, WSI_TOKEN_GET_URI, "GET"},
    {HTTP_POST, WSI_TOKEN_POST_URI, "POST"},
    {HTTP_PUT, WSI_TOKEN_PUT_URI, "PUT"},
    {HTTP_PATCH, WSI_TOKEN_PATCH_URI, "PATCH"},
    {HTTP_DELETE, WSI_TOKEN_DELETE_URI, "DELETE"},
    {HTTP_OPTIONS, WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {0, WSI_TOKEN_HEAD_URI, "HEAD"},
};

#define NMETHODS ((int)(sizeof(methods) / sizeof(methods[0])))

/* Content types of streamed files, by extension. */
static const struct mime {
    const char *ext;
    const char *type;
} mimes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".webp", "image/webp"},
    {".gif", "image/gif"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
};

/* ------------------------------------------------------------------ types */

/* A function for the loop thread, queued by http_post(). */
struct post {
    struct qitem q;
    void (*fn)(panel *p, void *arg);
    void *arg;
};

/* Offsets into conn.strs, fixed up into http_req pointers. */
#define NO_STR ((size_t)-1)

static int conn_write(conn *c);
static int dispatch(conn *c);

/* ------------------------------------------------------------------ utils */

const char *http_method_name(int ix)
{
    return ix >= 0 && ix < NMETHODS ? methods[ix].name : "OTHER";
}

/* Routes libwebsockets' log lines (errors only) into ours. */
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

/* ------------------------------------------------------------------ routes */

/* Matches path against pattern; stores the captures' offsets and lengths.
 * Returns 1 on a match. */
static int route_match(const char *pat, const char *path, size_t *coff,
                       size_t *clen, int *ncap)
{
    const char *p = pat, *u = path;
    int n = 0;

    while (*p) {
        if (p[0] == '*' && p[1] == '\0') {
            if (n < HTTP_MAX_PARAMS) {
                coff[n] = (size_t)(u - path);
                clen[n++] = strlen(u);
            }
            *ncap = n;
            return 1;
        }
        if (*p == ':' && p > pat && p[-1] == '/') {
            size_t seg = strcspn(u, "/");

            if (seg == 0)
                return 0;
            if (n < HTTP_MAX_PARAMS) {
                coff[n] = (size_t)(u - path);
                clen[n++] = seg;
            }
            p += strcspn(p, "/");
            u += seg;
            continue;
        }
        if (*p != *u)
            return 0;
        p++;
        u++;
    }
    if (*u != '\0')
        return 0;
    *ncap = n;
    return 1;
}

/* Checks a route table; returns its length or BERTH_EINVAL. */
static int routes_check(const http_route *routes)
{
    int i;

    for (i = 0; routes[i].pattern != NULL; i++) {
        const char *pat = routes[i].pattern;
        const char *star = strchr(pat, '*');
        int caps = 0;
        const char *c;

        for (c = pat; *c; c++)
            caps += *c == ':' && c[-1] == '/';
        caps += star != NULL;
        if (pat[0] != '/' || routes[i].fn == NULL ||
            routes[i].method < HTTP_GET || routes[i].method > HTTP_OPTIONS ||
            caps > HTTP_MAX_PARAMS || (star != NULL && star[1] != '\0')) {
            log_error("http route invalid", "pattern=%s", pat);
            return BERTH_EINVAL;
        }
    }
    return i;
}

/* ------------------------------------------------------------------ conns */

conn *http_conn_new(http_server *s, struct lws *wsi)
{
    conn *c = calloc(1, sizeof(*c));
    char ip[64] = "";

    if (c == NULL)
        return NULL;
    c->q.kind = Q_CONN;
    c->s = s;
    c->wsi = wsi;
    c->fd = -1;
    buf_init(&c->strs, HTTP_STRS_MAX);
    buf_init(&c->body, HTTP_UPLOAD_MAX);
    buf_init(&c->resp.body, HTTP_RESP_MAX);
    lws_get_peer_simple(wsi, ip, sizeof(ip));
    ip[sizeof(ip) - 1] = '\0';
    /* An IPv4 client of a dual-stack socket: show it as IPv4. */
    snprintf(c->ip, sizeof(c->ip), "%s",
             strncmp(ip, "::ffff:", 7) == 0 && strchr(ip, '.') ? ip + 7 : ip);
    lws_set_opaque_user_data(wsi, c);
    return c;
}

/* Keeps a buffer's storage for the next request unless it grew large. */
void http_buf_recycle(buf *b)
{
    if (b->_cap > HTTP_KEEP_MAX)
        buf_free(b);
    else
        buf_reset(b);
}

/* Forgets the finished request and its response; back to IDLE. */
void http_conn_reset(conn *c)
{
    int i;

    for (i = 0; i < c->resp.nheaders; i++)
        free(c->resp.headers[i]);
    http_resp_drop_file(&c->resp);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    http_buf_recycle(&c->resp.body);
    http_buf_recycle(&c->body);
    http_buf_recycle(&c->strs);
    c->resp.nheaders = 0;
    c->resp.status = 200;
    c->resp.content_type = NULL;
    memset(&c->req, 0, sizeof(c->req));
    c->state = CONN_IDLE;
    c->route = -1;
    c->hdr_sent = 0;
    c->off = 0;
    c->file_left = 0;
    c->allow[0] = '\0';
}

/* Frees a conn; the loop thread (or http_free) only. */
static void conn_free(conn *c)
{
    http_conn_reset(c);
    buf_free(&c->resp.body);
    buf_free(&c->body);
    buf_free(&c->strs);
    if (c->ws != NULL)
        http_ws_free(c->ws);
    free(c);
}

/* Starts a request: timing, defaults. */
void http_conn_begin(conn *c)
{
    http_conn_reset(c);
    c->t0 = clock_mono_ns();
    c->label = LABEL_UNMATCHED(c->s);
    c->method_ix = -1;
    c->cap = HTTP_BODY_MAX;
    c->content_length = 0;
    c->has_length = 0;
    c->chunked = 0;
    memset(&c->ck, 0, sizeof(c->ck));
    c->drained = 0;
    c->draining = 0;
    c->lingering = 0;
    c->completions = 0;
    c->close_after = 0;
    c->conn_close = 0;
    c->keep_10 = 0;
    c->head = 0;
    c->o_path = c->o_query = c->o_auth = c->o_ctype = c->o_ua = NO_STR;
    c->o_inm = NO_STR;
}

/* Appends n bytes and a NUL to strs; returns the offset or NO_STR. */
static size_t strs_add(conn *c, const char *s, size_t n)
{
    size_t off = c->strs.len;

    if (buf_append(&c->strs, s, n) != 0 || buf_putc(&c->strs, '\0') != 0)
        return NO_STR;
    return off;
}

/* Appends a copy of strs[from..from+n) and a NUL; returns its offset or
 * NO_STR. The source is addressed by offset: the append may move strs. */
static size_t strs_copy(conn *c, size_t from, size_t n)
{
    size_t off = c->strs.len;
    char *w = buf_reserve(&c->strs, n + 1);

    if (w == NULL)
        return NO_STR;
    memcpy(w, c->strs.data + from, n);
    w[n] = '\0';
    buf_commit(&c->strs, n + 1);
    return off;
}

/* Copies header h into strs; NO_STR when absent (or on overflow, noted in
 * *err). */
static size_t strs_header(conn *c, enum lws_token_indexes h, int *err)
{
    int n = lws_hdr_total_length(c->wsi, h);
    size_t off = c->strs.len;
    char *w;

    if (n <= 0)
        return NO_STR;
    w = buf_reserve(&c->strs, (size_t)n + 1);
    if (w == NULL || lws_hdr_copy(c->wsi, w, n + 1, h) < 0) {
        *err = 1;
        return NO_STR;
    }
    buf_commit(&c->strs, (size_t)n + 1);
    return off;
}

/* Reads a short header into dst (lower-cased); "" when absent or long. */
static void small_header(struct lws *wsi, enum lws_token_indexes h, char *dst,
                         int size)
{
    int i;

    dst[0] = '\0';
    if (lws_hdr_total_length(wsi, h) >= size ||
        lws_hdr_copy(wsi, dst, size, h) < 0) {
        dst[0] = '\0';
        return;
    }
    for (i = 0; dst[i]; i++)
        dst[i] = (char)(dst[i] >= 'A' && dst[i] <= 'Z' ? dst[i] + 32 : dst[i]);
}

/* Rebuilds the raw query string from lws's decoded arguments. */
static int read_query(conn *c)
{
    char frag[HTTP_HEADER_DATA + 1];
    size_t start = c->strs.len;
    int i, n, rc = 0;

    for (i = 0; rc == 0; i++) {
        char *eq;

        n = lws_hdr_copy_fragment(c->wsi, frag, sizeof(frag),
                                  WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (c->strs.len > start)
            rc = buf_putc(&c->strs, '&');
        eq = memchr(frag, '=', (size_t)n);
        if (rc == 0)
            rc = http_pct_encode(&c->strs, frag,
                                 eq != NULL ? (size_t)(eq - frag) : (size_t)n);
        if (rc == 0 && eq != NULL) {
            rc = buf_putc(&c->strs, '=');
            if (rc == 0)
                rc = http_pct_encode(&c->strs, eq + 1,
                                     (size_t)(frag + n - eq - 1));
        }
    }
    if (rc == 0)
        rc = buf_putc(&c->strs, '\0');
    if (rc != 0)
        return rc;
    c->o_query = start;
    return 0;
}

/* Points the request at its strings once strs stopped growing. */
void http_req_fixup(conn *c)
{
    http_req *r = &c->req;
    const char *base = c->strs.data;
    int i;

#define STR_AT(o) ((o) == NO_STR || base == NULL ? NULL : base + (o))
    r->path = STR_AT(c->o_path);
    r->query = STR_AT(c->o_query);
    if (r->path == NULL)
        r->path = "/";
    if (r->query == NULL)
        r->query = "";
    r->authorization = STR_AT(c->o_auth);
    r->content_type = STR_AT(c->o_ctype);
    r->user_agent = STR_AT(c->o_ua);
    r->if_none_match = STR_AT(c->o_inm);
    for (i = 0; i < r->nparams; i++)
        r->params[i] = STR_AT(c->o_params[i]);
#undef STR_AT
    snprintf(r->ip, sizeof(r->ip), "%s", c->ip);
    r->route = c->route >= 0 ? c->s->routes[c->route].pattern : NULL;
    r->body = c->body.data != NULL ? c->body.data : "";
    r->body_len = c->body.len;
}

/* Reads the method, path, query and the headers handlers see. Returns 0 or
 * BERTH_ETOOBIG. */
int http_read_request(conn *c, const char *uri, size_t urilen)
{
    int i, err = 0;

    for (i = 0; i < NMETHODS; i++) {
        if (lws_hdr_total_length(c->wsi, methods[i].token) > 0) {
            c->method_ix = i;
            break;
        }
    }
    c->req.method = c->method_ix >= 0 ? methods[c->method_ix].method : 0;
    c->head = c->method_ix >= 0 &&
              methods[c->method_ix].token == WSI_TOKEN_HEAD_URI;
    c->o_path = strs_add(c, uri, urilen);
    if (c->o_path == NO_STR || read_query(c) != 0)
        return BERTH_ETOOBIG;
    c->o_auth = strs_header(c, WSI_TOKEN_HTTP_AUTHORIZATION, &err);
    c->o_ctype = strs_header(c, WSI_TOKEN_HTTP_CONTENT_TYPE, &err);
    c->o_ua = strs_header(c, WSI_TOKEN_HTTP_USER_AGENT, &err);
    c->o_inm = strs_header(c, WSI_TOKEN_HTTP_IF_NONE_MATCH, &err);
    return err ? BERTH_ETOOBIG : 0;
}

/* Finds the handler; sets c->route (or -1), c->label, c->allow and the
 * params. */
static int route_find(conn *c)
{
    http_server *s = c->s;
    const char *path = c->strs.data + c->o_path;
    size_t coff[HTTP_MAX_PARAMS], clen[HTTP_MAX_PARAMS];
    unsigned allow = 0;
    int i, n, ncap = 0, first = -1;

    c->route = -1;
    for (i = 0; i < s->nroutes; i++) {
        const http_route *r = &s->routes[i];

        if (!route_match(r->pattern, path, coff, clen, &ncap))
            continue;
        if (first < 0)
            first = i;
        allow |= 1u << r->method;
        if (c->req.method == r->method) {
            c->route = i;
            break;
        }
    }
    if (first >= 0)
        c->label = c->route >= 0 ? c->route : first;
    if (c->route < 0) {
        if (first >= 0) {
            int o = 0;

            allow |= 1u << HTTP_OPTIONS;
            for (i = 0; i < NMETHODS; i++) {
                if (methods[i].method && (allow & (1u << methods[i].method)))
                    o += snprintf(c->allow + o, sizeof(c->allow) - (size_t)o,
                                  "%s%s", o ? ", " : "", methods[i].name);
            }
        }
        return 0;
    }
    c->req.nparams = ncap;
    for (n = 0; n < ncap; n++) {
        c->o_params[n] = strs_copy(c, c->o_path + coff[n], clen[n]);
        if (c->o_params[n] == NO_STR)
            return BERTH_ETOOBIG;
    }
    return 0;
}

/* ------------------------------------------------------------------ bodies */

/* A chunk-size line ended: the chunk's data, or the trailer, follows. */
static void chunk_line_done(struct chunked *k, const buf *out, size_t cap)
{
    if (out != NULL && k->left > cap - out->len)
        k->too_big = 1;
    k->digits = 0;
    k->st = k->left == 0 ? CK_TRAILER : CK_DATA;
}

/* Feeds n bytes of chunked encoding. Data goes to out while it fits in cap;
 * past that (or when out is NULL) it is only counted in *drained and
 * k->too_big is set. Returns 1 at the end of the body (later bytes are
 * ignored), 0 when more is needed, or BERTH_EPROTO. */
static int chunked_feed(struct chunked *k, const unsigned char *in, size_t n,
                        buf *out, size_t cap, uint64_t *drained)
{
    size_t i = 0;

    while (i < n && k->st != CK_DONE) {
        unsigned char ch;

        if (k->st == CK_DATA) {
            size_t take = n - i < k->left ? n - i : (size_t)k->left;

            if (out != NULL && !k->too_big &&
                buf_append(out, in + i, take) != 0)
                k->too_big = 1;
            *drained += take;
            k->left -= take;
            i += take;
            if (k->left == 0)
                k->st = CK_DATA_CR;
            continue;
        }
        ch = in[i++];
        switch (k->st) {
        case CK_SIZE:
            if (http_hexval(ch) >= 0) {
                if (++k->digits > 15)
                    return BERTH_EPROTO;
                k->left = k->left << 4 | (uint64_t)http_hexval(ch);
            } else if (k->digits == 0) {
                return BERTH_EPROTO;
            } else if (ch == '\r') {
                k->st = CK_SIZE_LF;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                k->st = CK_EXT;
            } else if (ch == '\n') {
                chunk_line_done(k, out, cap);
            } else {
                return BERTH_EPROTO;
            }
            break;
        case CK_EXT:
            if (ch == '\n')
                chunk_line_done(k, out, cap);
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return BERTH_EPROTO;
            chunk_line_done(k, out, cap);
            break;
        case CK_DATA_CR:
            if (ch == '\n')
                k->st = CK_SIZE;
            else if (ch == '\r')
                k->st = CK_DATA_LF;
            else
                return BERTH_EPROTO;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return BERTH_EPROTO;
            k->st = CK_SIZE;
            break;
        case CK_TRAILER:
            if (ch == '\r')
                k->st = CK_END_LF;
            else
                k->st = ch == '\n' ? CK_DONE : CK_TRAILER_LINE;
            break;
        case CK_TRAILER_LINE:
            if (ch == '\n')
                k->st = CK_TRAILER;
            break;
        case CK_END_LF:
            if (ch != '\n')
                return BERTH_EPROTO;
            k->st = CK_DONE;
            break;
        case CK_DATA:
        case CK_DONE:
            break;
        }
    }
    return k->st == CK_DONE;
}

/* Whether lws, having no Content-Length, waits for a body anyway. */
static int lws_awaits_body(const conn *c)
{
    return !c->has_length && (c->req.method == HTTP_POST ||
                              c->req.method == HTTP_PUT ||
                              c->req.method == HTTP_PATCH);
}

/* Answers now, before (or instead of) reading the rest of the body. Such
 * a connection is closed after the answer (lws 4.1 cannot be trusted to
 * discard a body and then parse a request that follows it in the same
 * read), but only once the client has sent the rest of its body (up to
 * HTTP_DRAIN_MAX), so that it reads our answer rather than a reset. */
static int reply_early(conn *c)
{
    if (c->state == CONN_BODY || c->state == CONN_IDLE) {
        if (c->chunked) {
            c->close_after = 1;
            c->draining = c->ck.st != CK_DONE;
        } else if (lws_awaits_body(c)) {
            c->close_after = 1;
        } else if (c->content_length > 0) {
            c->close_after = 1;
            c->lingering = c->content_length <= HTTP_DRAIN_MAX;
        }
    }
    c->state = CONN_WRITING;
    return conn_write(c);
}

static int reply_error(conn *c, int status, int code, const char *msg)
{
    http_error(&c->resp, status, code, "%s", msg);
    return reply_early(c);
}

/* Sends the interim "100 Continue" a client waiting with Expect gets. */
static int send_continue(conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    unsigned char *p = c->s->wbuf + LWS_PRE;

    memcpy(p, cont, sizeof(cont) - 1);
    return lws_write(c->wsi, p, sizeof(cont) - 1, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}

/* Decides how the body arrives: Content-Length, chunked or none. */
static int read_framing(conn *c)
{
    char te[64], clen[32], conn_hdr[64], ver[16];
    int i;

    small_header(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, te, sizeof(te));
    small_header(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen, sizeof(clen));
    small_header(c->wsi, WSI_TOKEN_CONNECTION, conn_hdr, sizeof(conn_hdr));
    small_header(c->wsi, WSI_TOKEN_HTTP, ver, sizeof(ver));
    c->conn_close = strstr(conn_hdr, "close") != NULL;
    c->keep_10 = strcmp(ver, "http/1.0") == 0 &&
                 strstr(conn_hdr, "keep-alive") != NULL;
    if (lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        if (clen[0] == '\0' || strlen(clen) > 18)
            return BERTH_EINVAL;
        for (i = 0; clen[i]; i++) {
            if (clen[i] < '0' || clen[i] > '9')
                return BERTH_EINVAL;
            c->content_length =
                c->content_length * 10 + (uint64_t)(clen[i] - '0');
        }
        c->has_length = 1;
    }
    if (lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        /* lws hands us the raw body only where it expects one. */
        if (strcmp(te, "chunked") != 0)
            return BERTH_ENOTSUP;
        if (c->has_length || (c->req.method != HTTP_POST &&
                              c->req.method != HTTP_PUT &&
                              c->req.method != HTTP_PATCH))
            return BERTH_EINVAL;
        c->chunked = 1;
    }
    return 0;
}

/* LWS_CALLBACK_HTTP: a request's headers are in. */
static int on_http(http_server *s, struct lws *wsi, const char *uri,
                   size_t urilen)
{
    conn *c = lws_get_opaque_user_data(wsi);
    const http_route *r;
    char expect[32];
    int rc;

    if (c == NULL) {
        c = http_conn_new(s, wsi);
        if (c == NULL)
            return -1;
    }
    /* A pipelined request while one is in flight: not supported. */
    if (c->state != CONN_IDLE)
        return -1;
    http_conn_begin(c);
    rc = http_read_request(c, uri, urilen);
    if (rc == 0)
        rc = route_find(c);
    if (rc != 0) {
        http_req_fixup(c);
        return reply_error(c, 431, BERTH_ETOOBIG, "request headers too large");
    }
    http_req_fixup(c);
    rc = read_framing(c);
    if (rc != 0)
        return reply_error(c, rc == BERTH_ENOTSUP ? 501 : 400, rc,
                           rc == BERTH_ENOTSUP ? "unsupported transfer encoding"
                                               : "malformed request framing");
    if (c->route < 0) {
        if (c->allow[0] != '\0' && c->req.method == HTTP_OPTIONS) {
            c->resp.status = 204;
        } else if (c->allow[0] != '\0') {
            http_error(&c->resp, 405, BERTH_ENOTSUP,
                       "method %s not allowed here",
                       http_method_name(c->method_ix));
        } else {
            http_error(&c->resp, 404, BERTH_ENOENT, "no route for %s",
                       c->req.path);
        }
        return reply_early(c);
    }
    r = &s->routes[c->route];
    c->cap = r->flags & HTTP_UPLOAD ? HTTP_UPLOAD_MAX : HTTP_BODY_MAX;
    if (c->has_length && c->content_length > c->cap)
        return reply_error(c, 413, BERTH_ETOOBIG, "request body too large");
    if (c->chunked || c->content_length > 0) {
        small_header(wsi, WSI_TOKEN_HTTP_EXPECT, expect, sizeof(expect));
        if (strcmp(expect, "100-continue") == 0 && send_continue(c) != 0)
            return -1;
        c->state = CONN_BODY;
        return 0;
    }
    /* A body-carrying method without a length: lws would wait for one. */
    if (lws_awaits_body(c))
        c->close_after = 1;
    return dispatch(c);
}

/* Whether a request's first body bytes are its own request line: lws 4.1
 * hands a pipelined request that sat in its input buffer the buffer's
 * start, headers included, as body (and then loops on it). Such a
 * connection is closed instead of answering garbage. */
static int body_is_headers(const conn *c, const unsigned char *in, size_t len)
{
    char line[16];
    size_t n = (size_t)snprintf(line, sizeof(line), "%s /",
                                http_method_name(c->method_ix));
    const unsigned char *eol;

    if (memcmp(in, line, len < n ? len : n) != 0)
        return 0;
    eol = memchr(in, '\n', len);
    return eol == NULL ||
           (eol - in >= 10 && memcmp(eol - 10, " HTTP/1.", 8) == 0);
}

/* LWS_CALLBACK_HTTP_BODY */
static int on_body(conn *c, const unsigned char *in, size_t len)
{
    int rc;

    if (c->draining) {
        rc = chunked_feed(&c->ck, in, len, NULL, 0, &c->drained);
        if (rc < 0 || c->drained > HTTP_DRAIN_MAX)
            return -1;
        if (rc == 1) {
            c->draining = 0;
            if (c->state == CONN_CLOSING)
                return -1;
        }
        return 0;
    }
    if (c->state != CONN_BODY || len == 0)
        return 0;
    if (c->body.len == 0 && c->drained == 0 && body_is_headers(c, in, len)) {
        log_warn("http pipelined body refused", "ip=%s", c->ip);
        return -1;
    }
    if (!c->chunked) {
        c->drained += len;
        if (c->body.len + len > c->cap || buf_append(&c->body, in, len) != 0)
            return reply_error(c, 413, BERTH_ETOOBIG, "request body too large");
        return 0;
    }
    rc = chunked_feed(&c->ck, in, len, &c->body, c->cap, &c->drained);
    if (rc < 0) {
        c->chunked = 0; /* nothing worth draining: close after the reply */
        c->close_after = 1;
        return reply_error(c, 400, BERTH_EPROTO, "malformed chunked body");
    }
    if (c->ck.too_big)
        return reply_error(c, 413, BERTH_ETOOBIG, "request body too large");
    if (rc == 1) {
        http_req_fixup(c);
        return dispatch(c);
    }
    return 0;
}

/* LWS_CALLBACK_HTTP_BODY_COMPLETION */
static int on_body_done(conn *c)
{
    /* Once per request; a second one is lws looping (see above). */
    if (c->completions++ > 0)
        return -1;
    if (c->state == CONN_CLOSING && c->lingering)
        return -1; /* the rejected body is in: close now */
    c->lingering = 0;
    if (c->state != CONN_BODY || c->chunked)
        return 0;
    http_req_fixup(c);
    return dispatch(c);
}

/* ------------------------------------------------------------------ pool */

static void pool_push(http_server *s, conn *c)
{
    pthread_mutex_lock(&s->qlock);
    c->q.next = NULL;
    if (s->qtail != NULL)
        s->qtail->next = &c->q;
    else
        s->qhead = &c->q;
    s->qtail = &c->q;
    s->qlen++;
    pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
}

/* Hands an item to the loop thread, ringing only when no ring is pending. */
static void done_push(http_server *s, struct qitem *it)
{
    int ring;

    pthread_mutex_lock(&s->dlock);
    it->next = NULL;
    if (s->dtail != NULL)
        s->dtail->next = it;
    else
        s->dhead = it;
    s->dtail = it;
    ring = !s->dbell;
    s->dbell = 1;
    pthread_mutex_unlock(&s->dlock);
    if (ring)
        lws_cancel_service(s->ctx);
}

/* A worker: takes a QUEUED conn, runs its handler, hands it back. */
static void *worker_main(void *arg)
{
    http_server *s = arg;

    for (;;) {
        struct qitem *it;
        conn *c;

        pthread_mutex_lock(&s->qlock);
        while (s->qhead == NULL && !s->qstop)
            pthread_cond_wait(&s->qcond, &s->qlock);
        if (s->qstop) {
            pthread_mutex_unlock(&s->qlock);
            break;
        }
        it = s->qhead;
        s->qhead = it->next;
        if (s->qhead == NULL)
            s->qtail = NULL;
        s->qlen--;
        pthread_mutex_unlock(&s->qlock);
        c = (conn *)it;
        s->routes[c->route].fn(s->p, &c->req, &c->resp);
        done_push(s, &c->q);
    }
    return NULL;
}

/* Runs the handler here (HTTP_FAST) or queues it for a worker. */
static int dispatch(conn *c)
{
    http_server *s = c->s;
    const http_route *r = &s->routes[c->route];

    if (r->flags & HTTP_FAST) {
        r->fn(s->p, &c->req, &c->resp);
        c->state = CONN_WRITING;
        return conn_write(c);
    }
    /* lws ignores input while a transaction is open, and would spin on a
     * readable socket (a client's FIN, pipelined bytes): stop reading
     * until the job is back (done_drain). A reset still closes the wsi. */
    lws_rx_flow_control(c->wsi, 0);
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    c->state = CONN_QUEUED;
    pool_push(s, c);
    return 0;
}

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: finished jobs and posts. */
static void done_drain(http_server *s)
{
    struct qitem *it, *next;

    pthread_mutex_lock(&s->dlock);
    it = s->dhead;
    s->dhead = s->dtail = NULL;
    s->dbell = 0;
    pthread_mutex_unlock(&s->dlock);
    for (; it != NULL; it = next) {
        next = it->next;
        if (it->kind == Q_POST) {
            struct post *pp = (struct post *)it;

            pp->fn(s->p, pp->arg);
            free(pp);
            continue;
        }
        conn *c = (conn *)it;

        if (c->orphan) {
            http_metrics_count(s, c->label, c->method_ix, 499, c->t0);
            conn_free(c);
        } else {
            /* A flow-controlled h1 wsi gets no writeable callbacks. */
            lws_rx_flow_control(c->wsi, 1);
            c->state = CONN_WRITING;
            lws_callback_on_writable(c->wsi);
        }
    }
}

int http_post(http_server *s, void (*fn)(panel *p, void *arg), void *arg)
{
    struct post *pp;

    if (s == NULL || fn == NULL)
        return BERTH_EINVAL;
    if (atomic_load(&s->stop))
        return BERTH_EUNAVAIL;
    pp = malloc(sizeof(*pp));
    if (pp == NULL)
        return BERTH_ENOMEM;
    pp->q.kind = Q_POST;
    pp->fn = fn;
    pp->arg = arg;
    done_push(s, &pp->q);
    return 0;
}

/* ------------------------------------------------------------------ writing */

static const char *mime_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    size_t i;

    for (i = 0; dot != NULL && i < sizeof(mimes) / sizeof(mimes[0]); i++) {
        if (strcasecmp(dot, mimes[i].ext) == 0)
            return mimes[i].type;
    }
    return "application/octet-stream";
}

/* Checks the status and opens the response's file; failures become an
 * error response. */
static void resp_settle(conn *c)
{
    http_resp *r = &c->resp;
    struct stat st;
    int fd;

    if (r->status < 100 || r->status > 599) {
        log_warn("http handler status invalid", "route=%s status=%d",
                 c->req.route, r->status);
        http_error(r, 500, BERTH_EINTERNAL, "internal error");
    }
    if (r->file_path == NULL)
        return;
    fd = open(r->file_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int missing = fd < 0 && errno == ENOENT;

        if (fd >= 0)
            close(fd);
        http_error(r, 0, missing ? BERTH_ENOENT : BERTH_EIO,
                   missing ? "file not found" : "file not readable");
        return;
    }
    c->fd = fd;
    c->file_left = (uint64_t)st.st_size;
    if (r->content_type == NULL)
        r->content_type = mime_of(r->file_path);
}

static int no_body_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

/* Writes the status line and headers at *p (not past end). */
static int put_headers(conn *c, unsigned char **p, unsigned char *end,
                       uint64_t clen)
{
    struct lws *wsi = c->wsi;
    http_resp *r = &c->resp;
    const char *ctype = r->content_type ? r->content_type : "application/json";
    const char *connhdr = NULL;
    int i;

    if (lws_add_http_header_status(wsi, (unsigned)r->status, p, end))
        return -1;
    if (!no_body_status(r->status)) {
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         (const unsigned char *)ctype,
                                         (int)strlen(ctype), p, end) ||
            lws_add_http_header_content_length(wsi, clen, p, end))
            return -1;
        if (strncmp(ctype, "application/json", 16) == 0 &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (const unsigned char *)"no-store", 8,
                                         p, end))
            return -1;
    }
    if (c->allow[0] != '\0' &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_ALLOW,
                                     (const unsigned char *)c->allow,
                                     (int)strlen(c->allow), p, end))
        return -1;
    for (i = 0; i < r->nheaders; i++) {
        const char *line = r->headers[i];
        const char *colon = strchr(line, ':');
        const char *v;
        char name[128];
        size_t nl;

        if (colon == NULL || (size_t)(colon - line) + 2 > sizeof(name))
            continue;
        nl = (size_t)(colon - line) + 1; /* with the colon */
        memcpy(name, line, nl);
        name[nl] = '\0';
        for (v = colon + 1; *v == ' '; v++)
            ;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                        (const unsigned char *)v,
                                        (int)strlen(v), p, end))
            return -1;
    }
    if (c->close_after || c->conn_close)
        connhdr = "close";
    else if (c->keep_10)
        connhdr = "keep-alive";
    if (connhdr != NULL &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                     (const unsigned char *)connhdr,
                                     (int)strlen(connhdr), p, end))
        return -1;
    return lws_finalize_http_header(wsi, p, end) ? -1 : 0;
}

/* The response is out: count it, then keep the connection or close it. */
static int conn_finish(conn *c)
{
    int close_after = c->close_after;
    int wait = c->draining || c->lingering;

    http_metrics_count(c->s, c->label, c->method_ix, c->resp.status, c->t0);
    http_conn_reset(c);
    if (!close_after)
        return lws_http_transaction_completed(c->wsi) ? -1 : 0;
    if (!wait)
        return -1;
    c->state = CONN_CLOSING;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_DRAIN_S);
    return 0;
}

/* Writes the headers (first call) and the next piece of the body; asks for
 * another writeable callback until the last piece. Returns -1 to close. */
static int conn_write(conn *c)
{
    http_resp *r = &c->resp;
    unsigned char *start = c->s->wbuf + LWS_PRE, *p = start;
    unsigned char *end = start + HTTP_HDR_ROOM + HTTP_CHUNK;
    size_t room;
    int last;

    if (!c->hdr_sent) {
        uint64_t clen;

        resp_settle(c);
        clen = c->fd >= 0 ? c->file_left : r->body.len;
        if (put_headers(c, &p, start + HTTP_HDR_ROOM, clen) != 0) {
            int i;

            for (i = 0; i < r->nheaders; i++)
                free(r->headers[i]);
            r->nheaders = 0;
            if (c->fd >= 0)
                close(c->fd);
            c->fd = -1;
            http_error(r, 500, BERTH_EINTERNAL, "response headers too large");
            p = start;
            if (put_headers(c, &p, start + HTTP_HDR_ROOM, r->body.len) != 0)
                return -1;
        }
        c->hdr_sent = 1;
        if (c->head || no_body_status(r->status)) {
            if (c->fd >= 0)
                close(c->fd);
            c->fd = -1;
            c->file_left = 0;
            c->off = r->body.len;
        }
    }
    room = (size_t)(end - p);
    if (c->fd >= 0) {
        size_t want = c->file_left < room ? (size_t)c->file_left : room;
        ssize_t n = want > 0 ? read(c->fd, p, want) : 0;

        if (want > 0 && n <= 0)
            return -1; /* the file shrank or failed: cut the response */
        p += n;
        c->file_left -= (uint64_t)n;
        last = c->file_left == 0;
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
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    return conn_finish(c);
}

/* LWS_CALLBACK_WSI_DESTROY: the connection is gone. */
static void conn_gone(conn *c)
{
    if (c->ws != NULL)
        http_ws_closed(c);
    c->wsi = NULL;
    if (c->state == CONN_QUEUED) {
        c->orphan = 1; /* freed when its worker hands it back */
        return;
    }
    if (c->state == CONN_BODY || c->state == CONN_WRITING)
        http_metrics_count(c->s, c->label, c->method_ix,
                           c->hdr_sent ? c->resp.status : 499, c->t0);
    conn_free(c);
}

/* ------------------------------------------------------------------ lws */

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason,
                  void *user, void *in, size_t len)
{
    http_server *s;
    conn *c;

    (void)user;
    if (wsi == NULL)
        return 0;
    s = lws_context_user(lws_get_context(wsi));
    c = lws_get_opaque_user_data(wsi);
    if (s == NULL)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(s, wsi, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        return c != NULL ? on_body(c, in, len) : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return c != NULL ? on_body_done(c) : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c != NULL && c->state == CONN_WRITING ? conn_write(c) : 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLOSED:
        return http_ws_callback(s, wsi, c, reason, in, len);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (!s->dying)
            done_drain(s);
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

/* ------------------------------------------------------------------ server */




int http_start(http_server **out, panel *p, const char *addr,
               const http_route *routes, int workers,
               const http_ws_hooks *ws)
{
    struct lws_context_creation_info info;
    http_server *s = NULL;
    char host[256], iface[INET6_ADDRSTRLEN];
    int port, ipv4, rc, n;

    *out = NULL;
    if (addr == NULL || routes == NULL || workers < 1 || workers > 256)
        return BERTH_EINVAL;
    rc = net_parse_addr(addr, host, sizeof(host), &port);
    if (rc == 0)
        rc = net_resolve_host(host, iface, sizeof(iface), &ipv4);
    if (rc != 0) {
        log_error("http address invalid", "addr=%s", addr);
        return rc;
    }
    rc = net_port_taken(iface, ipv4, port);
    if (rc != 0) {
        log_error("http address in use", "addr=%s", addr);
        return rc;
    }
    n = routes_check(routes);
    if (n < 0)
        return n;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BERTH_ENOMEM;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    pthread_mutex_init(&s->dlock, NULL);
    pthread_mutex_init(&s->mlock, NULL);
    s->p = p;
    s->routes = routes;
    s->nroutes = n;
    if (ws != NULL && ws->open != NULL) {
        s->ws = *ws;
        s->ws_on = 1;
    }
    for (s->nslots = 256; s->nslots < (size_t)(n + 2) * 16; s->nslots *= 2)
        ;
    s->slots = calloc(s->nslots, sizeof(*s->slots));
    s->wbuf = malloc(LWS_PRE + HTTP_HDR_ROOM + HTTP_CHUNK);
    s->threads = calloc((size_t)workers, sizeof(*s->threads));
    if (s->slots == NULL || s->wbuf == NULL || s->threads == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    s->protocols[0].name = "berth";
    s->protocols[0].callback = on_lws;
    s->protocols[0].tx_packet_size = HTTP_HDR_ROOM + HTTP_CHUNK;

    lws_set_log_level(LLL_ERR, lws_log);
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = iface[0] != '\0' ? iface : NULL;
    info.protocols = s->protocols;
    info.user = s;
    info.vhost_name = "berth";
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   (ipv4 ? LWS_SERVER_OPTION_DISABLE_IPV6 : 0);
    info.max_http_header_data = HTTP_HEADER_DATA;
    info.keepalive_timeout = HTTP_KEEPALIVE_S;
    info.timeout_secs = 20;
    info.ka_time = 60; /* TCP keep-alive finds dead websocket peers */
    info.ka_probes = 3;
    info.ka_interval = 10;
    info.pt_serv_buf_size = 32 << 10;
    s->ctx = lws_create_context(&info);
    if (s->ctx == NULL) {
        log_error("http listen failed", "addr=%s", addr);
        rc = BERTH_EIO;
        goto out;
    }
    s->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(s->ctx, "berth"));
    for (; s->nthreads < workers; s->nthreads++) {
        if (pthread_create(&s->threads[s->nthreads], NULL, worker_main,
                           s) != 0) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    log_debug("http listening", "addr=%s port=%d workers=%d", addr, s->port,
              workers);
    *out = s;
    s = NULL;
out:
    http_free(s);
    return rc;
}

int http_port(const http_server *s)
{
    return s->port;
}

int http_run(http_server *s)
{
    while (!atomic_load(&s->stop)) {
        if (lws_service(s->ctx, 0) < 0) {
            log_error("http loop failed", "error=%s",
                      berth_strerror(BERTH_EIO));
            return BERTH_EIO;
        }
    }
    return 0;
}

void http_stop(http_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, 1);
    if (s->ctx != NULL)
        lws_cancel_service(s->ctx);
}

/* Frees the items left in a queue: posts unrun, orphaned conns. */
static void queue_free(struct qitem *it)
{
    struct qitem *next;

    for (; it != NULL; it = next) {
        next = it->next;
        if (it->kind == Q_POST)
            free(it);
        else
            conn_free((conn *)it);
    }
}

void http_free(http_server *s)
{
    int i;

    if (s == NULL)
        return;
    pthread_mutex_lock(&s->qlock);
    s->qstop = 1;
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    for (i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    /* Closing every connection orphans the QUEUED conns, which sit in the
     * queues now that no worker runs. */
    s->dying = 1;
    if (s->ctx != NULL)
        lws_context_destroy(s->ctx);
    queue_free(s->qhead);
    queue_free(s->dhead);
    free(s->threads);
    free(s->slots);
    free(s->wbuf);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->dlock);
    pthread_mutex_destroy(&s->mlock);
    free(s);
}
