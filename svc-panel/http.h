/* http.h - the panel's HTTP and websocket server on libwebsockets.
 *
 * Routes are declared in one table (routes.c): method, pattern with :param
 * segments, handler, flags. The event loop thread owns every connection;
 * a handler runs on a worker thread (it may block on PostgreSQL or the bus)
 * unless its route is HTTP_FAST, in which case it runs on the loop thread
 * and must not block (in-memory answers: health, metrics, cached reads).
 * A worker's result is handed back to the loop through a locked queue and
 * lws_cancel_service(); nothing else crosses threads.
 *
 * Bodies are read completely (up to the route's cap, else 413) before the
 * handler runs. Errors are JSON: {"error":{"code":"...","message":"..."},
 * "message":"..."} (the top-level "message" keeps Encedeus clients happy).
 */
#ifndef BERTH_PANEL_HTTP_H
#define BERTH_PANEL_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define HTTP_BODY_MAX (64u << 10)       /* default request body cap */
#define HTTP_UPLOAD_MAX (2u << 20)      /* multipart uploads */
#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_HEADERS 8
#define HTTP_RESP_MAX (16u << 20)       /* response body cap (http_resp.body) */
#define HTTP_WS_MSG_MAX (64u << 10)     /* incoming websocket message cap */
#define HTTP_WS_QUEUE_MSGS 256          /* outgoing queue per client ... */
#define HTTP_WS_QUEUE_BYTES (1u << 20)  /* ... and its byte cap */

enum http_method {
    HTTP_GET = 1,
    HTTP_POST,
    HTTP_PUT,
    HTTP_PATCH,
    HTTP_DELETE,
    HTTP_OPTIONS,
};

enum http_route_flags {
    HTTP_FAST = 1 << 0,   /* run on the loop thread; must not block */
    HTTP_UPLOAD = 1 << 1, /* body cap HTTP_UPLOAD_MAX instead of the default */
};

typedef struct panel panel;

/* A request as the handler sees it. Everything is owned by the server and
 * valid until the handler returns. */
typedef struct http_req {
    enum http_method method;
    const char *path;   /* without the query string, percent-decoded */
    const char *query;  /* raw query string without '?', or "" */
    const char *params[HTTP_MAX_PARAMS]; /* :param values, in order */
    int nparams;
    const char *authorization; /* the Authorization header, or NULL */
    const char *content_type;  /* or NULL */
    const char *user_agent;    /* or NULL */
    const char *if_none_match; /* or NULL (static files, svc-panel/static.c) */
    const char *body;          /* NUL-terminated; "" when there is none */
    size_t body_len;
    char ip[64];               /* the peer's address */
    const char *route;         /* the route pattern, for metrics and audit */
} http_req;

/* A response being built by a handler. */
typedef struct http_resp {
    int status;               /* 200 unless set */
    const char *content_type; /* "application/json" unless set */
    buf body;                 /* capped at 16 MiB */
    char *headers[HTTP_MAX_HEADERS]; /* extra "Name: value" lines, owned */
    int nheaders;
    char *file_path; /* if set, the body is this file, streamed (owned) */
} http_resp;

typedef void (*http_handler)(panel *p, http_req *req, http_resp *resp);

typedef struct http_route {
    enum http_method method;
    const char *pattern; /* "/user/:uuid"; a final "*" matches the rest */
    http_handler fn;
    unsigned flags;
} http_route;

/* Sets a JSON body (consumes j). */
void http_json(http_resp *r, int status, json_t *j);

/* Sets the standard error body; code is a berth code (its name is the
 * "code" field; the HTTP status comes from berth_err_http_status() unless
 * status is non-zero). */
void http_error(http_resp *r, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds a header line ("Name: value"). */
void http_header(http_resp *r, const char *name, const char *value);

/* Parses the request body as a JSON object. Returns the object (caller
 * decrefs) or NULL after setting a 400 on r. */
json_t *http_body_json(http_req *req, http_resp *r);

/* Finds a query parameter (percent-decoded into out). Returns 1 when
 * present. Returns 0 when absent and BERTH_ETOOBIG when present but longer
 * than outlen - 1; out is "" in both cases. */
int http_query(const http_req *req, const char *name, char *out,
               size_t outlen);

typedef struct http_server http_server;

/* A websocket client of /ws, owned by the loop thread. */
typedef struct http_ws http_ws;

/* Websocket hooks, all called on the loop thread. open returns 0 to accept;
 * message gets each complete text message; close is called once. A client
 * is addressed by its http_ws pointer, valid until close. */
typedef struct http_ws_hooks {
    int (*open)(panel *p, http_ws *ws, const http_req *req);
    void (*message)(panel *p, http_ws *ws, const char *data, size_t len);
    void (*close)(panel *p, http_ws *ws);
} http_ws_hooks;

/* Queues a text message to a websocket client (loop thread only). Returns
 * BERTH_ETOOBIG when the client's queue is full (a slow client). */
int http_ws_send(http_ws *ws, const char *data, size_t len);
void *http_ws_get_data(http_ws *ws);
void http_ws_set_data(http_ws *ws, void *data);
void http_ws_close(http_ws *ws);

/* Runs fn(p, arg) on the loop thread soon (any thread may call it). The
 * way bus handlers reach websocket clients. Returns BERTH_EUNAVAIL once
 * http_stop() was called; a post queued but not run when the loop stops is
 * dropped by http_free() without running (arg is not freed). */
int http_post(http_server *s, void (*fn)(panel *p, void *arg), void *arg);

/* Creates the server listening on addr ("127.0.0.1:8080") with routes
 * (ending with a NULL pattern), workers worker threads and websocket hooks
 * for the path "/ws". */
/* Details: addr is "host:port", "[v6]:port" or ":port" (every address);
 * the routes table is borrowed and must outlive the server. The first route
 * whose method and pattern match wins; a final "*" also captures the rest
 * of the path as the last param. ws may be NULL, or have a NULL open hook:
 * then websocket upgrades are refused. */
int http_start(http_server **out, panel *p, const char *addr,
               const http_route *routes, int workers,
               const http_ws_hooks *ws);

/* Runs the loop until http_stop() is called from any thread. */
int http_run(http_server *s);
void http_stop(http_server *s);

/* Joins the workers and closes every connection; the close hook of each
 * websocket client still open runs here, on the caller's thread, after
 * http_run() returned. NULL is a no-op. */
void http_free(http_server *s);

/* The TCP port the server listens on (useful when addr asked for port 0). */
int http_port(const http_server *s);

/* Request counters for /metrics: writes Prometheus text into out. */
int http_metrics(http_server *s, buf *out);

#endif
