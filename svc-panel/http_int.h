/* http_int.h - internals shared by the panel's HTTP server files only.
 *
 * svc-panel/http.c (the lws context, loop, connections, workers,
 * dispatch), http_ws.c (websockets) and http_util.c (response helpers,
 * query decoding, metrics) include this header and nothing else may: the
 * public contract is svc-panel/http.h. It holds the structs the three
 * files share and the few functions one of them calls in another; the
 * threading and ownership rules are in the comment atop http.c.
 */
#ifndef BERTH_PANEL_HTTP_INT_H
#define BERTH_PANEL_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "svc-panel/http.h"

#define HTTP_NBUCKETS 13 /* the latency histogram's buckets (http_util.c) */

enum qkind { Q_CONN, Q_POST };

/* A link in the work or done queue; first member of conn and post. */
struct qitem {
    struct qitem *next;
    enum qkind kind;
};

enum conn_state {
    CONN_IDLE,
    CONN_BODY,
    CONN_QUEUED,
    CONN_WRITING,
    CONN_CLOSING,
};

enum ck_state {
    CK_SIZE,
    CK_EXT,
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER,
    CK_TRAILER_LINE,
    CK_END_LF,
    CK_DONE,
};

/* The state of a chunked-encoding decoder. */
struct chunked {
    enum ck_state st;
    uint64_t left; /* bytes of the current chunk, or its size being read */
    int digits;
    int too_big; /* past the cap: data is no longer stored */
};

typedef struct conn {
    struct qitem q; /* first: the queues link conns */
    http_server *s;
    struct lws *wsi; /* NULL once the connection is gone */
    enum conn_state state;
    int orphan; /* the connection died while QUEUED */

    /* the request */
    int route;     /* the handler, an index into s->routes, or -1 */
    int label;     /* the metrics label: a route index, LABEL_* */
    int method_ix; /* index into methods[], or -1 */
    int64_t t0;
    http_req req;
    buf strs; /* path, query, headers, params; NUL-separated */
    size_t o_path, o_query, o_auth, o_ctype, o_ua, o_inm;
    size_t o_params[HTTP_MAX_PARAMS];
    buf body;
    size_t cap;             /* this route's body cap */
    uint64_t content_length;
    int has_length;
    int chunked;
    struct chunked ck;
    uint64_t drained;
    int draining;    /* a rejected chunked body still arriving */
    int lingering;   /* a rejected counted body still arriving */
    int completions; /* HTTP_BODY_COMPLETION calls for this request */
    int close_after; /* close once the response is out */
    int conn_close;  /* the client asked for Connection: close */
    int keep_10;     /* HTTP/1.0 with keep-alive */
    int head;
    char ip[64]; /* the peer, read once per connection */

    /* the response */
    http_resp resp;
    int hdr_sent;
    size_t off;
    int fd;
    uint64_t file_left;
    char allow[64]; /* Allow header for 405 and OPTIONS, or "" */

    http_ws *ws;
} conn;

struct mslot {
    int used;
    int label;
    int method_ix;
    int status;
    uint64_t n;
};

struct http_server {
    panel *p;
    struct lws_context *ctx;
    const http_route *routes;
    int nroutes;
    http_ws_hooks ws;
    int ws_on;
    int port;
    atomic_int stop;
    struct lws_protocols protocols[2];

    /* work queue */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct qitem *qhead, *qtail;
    int qlen;
    int qstop;
    pthread_t *threads;
    int nthreads;

    /* done queue */
    pthread_mutex_t dlock;
    struct qitem *dhead, *dtail;
    int dbell; /* a wake-up is pending */

    /* loop thread only */
    unsigned char *wbuf; /* LWS_PRE + HTTP_HDR_ROOM + HTTP_CHUNK */
    int dying;           /* http_free() is closing everything */
    atomic_int nws;

    /* metrics */
    pthread_mutex_t mlock;
    struct mslot *slots;
    size_t nslots; /* a power of two */
    uint64_t hist[HTTP_NBUCKETS + 1];
    int64_t sum_ns;
    uint64_t count;
};

#define LABEL_UNMATCHED(s) ((s)->nroutes)
#define LABEL_WS(s) ((s)->nroutes + 1)

/* ------------------------------------------------------------------- http.c */

/* The name of methods[ix] in http.c, or "OTHER". */
const char *http_method_name(int ix);

/* Keeps a buffer's storage for the next request unless it grew large. */
void http_buf_recycle(buf *b);

/* Creates the conn of a new connection and hangs it on wsi; NULL when out
 * of memory. Freed by the loop thread (see http.c). */
conn *http_conn_new(http_server *s, struct lws *wsi);

/* Starts a request (timing, defaults) / forgets it, back to IDLE. */
void http_conn_begin(conn *c);
void http_conn_reset(conn *c);

/* Reads the method, path, query and the headers handlers see. Returns 0 or
 * BERTH_ETOOBIG. */
int http_read_request(conn *c, const char *uri, size_t urilen);

/* Points the request at its strings once strs stopped growing. */
void http_req_fixup(conn *c);

/* ---------------------------------------------------------------- http_ws.c */

/* The lws callbacks of a websocket connection (CONFIRM_UPGRADE,
 * ESTABLISHED, RECEIVE, SERVER_WRITEABLE, CLOSED); c is the wsi's conn or
 * NULL. Returns what on_lws() returns to lws. */
int http_ws_callback(http_server *s, struct lws *wsi, conn *c,
                     enum lws_callback_reasons reason, void *in, size_t len);

/* The websocket client left: the close hook, then the memory. No-op when
 * c has no websocket. */
void http_ws_closed(conn *c);

/* Frees a websocket and its queued messages without running any hook. */
void http_ws_free(http_ws *ws);

/* -------------------------------------------------------------- http_util.c */

/* The value of hex digit c, or -1. */
int http_hexval(int c);

/* Appends s[0..n) percent-encoded (everything but unreserved characters).
 * Returns 0 or BERTH_ETOOBIG. */
int http_pct_encode(buf *b, const char *s, size_t n);

/* Frees the response's file path, if any. */
void http_resp_drop_file(http_resp *r);

/* Counts a finished request (t0 from clock_mono_ns()); any thread. */
void http_metrics_count(http_server *s, int label, int method_ix, int status,
                        int64_t t0);

#endif
