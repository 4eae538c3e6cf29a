/* http_ws.c - the panel's HTTP server: websocket clients on /ws.
 *
 * A websocket is one http_ws, hung on its connection's conn (c->ws) and
 * owned by the loop thread like the conn. The open hook decides whether
 * the upgrade is accepted; incoming text messages are assembled up to
 * HTTP_WS_MSG_MAX and handed to the message hook; outgoing ones wait in a
 * per-client queue capped at HTTP_WS_QUEUE_MSGS messages and
 * HTTP_WS_QUEUE_BYTES bytes, one written per writeable callback. The
 * connection machinery is in http.c; http_int.h is what the two share.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libwebsockets.h>

#include "common/err.h"
#include "svc-panel/http.h"
#include "svc-panel/http_int.h"

/* A queued outgoing websocket message; data has LWS_PRE bytes in front. */
struct wsmsg {
    struct wsmsg *next;
    size_t len;
    unsigned char data[];
};

struct http_ws {
    http_server *s;
    struct lws *wsi;
    void *data;
    int open;    /* the open hook accepted: close will be called */
    int closing; /* http_ws_close() or the close hook is running */
    struct wsmsg *head, *tail;
    int nmsgs;
    size_t nbytes;
    buf rx; /* the message being received, capped */
};

void http_ws_free(http_ws *ws)
{
    struct wsmsg *m, *next;

    for (m = ws->head; m != NULL; m = next) {
        next = m->next;
        free(m);
    }
    buf_free(&ws->rx);
    free(ws);
}

/* The websocket client left: the close hook, then the memory. */
void http_ws_closed(conn *c)
{
    http_ws *ws = c->ws;
    http_server *s = c->s;

    if (ws == NULL)
        return;
    c->ws = NULL;
    ws->closing = 1;
    if (ws->open) {
        atomic_fetch_sub(&s->nws, 1);
        if (s->ws.close != NULL)
            s->ws.close(s->p, ws);
    }
    http_ws_free(ws);
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: websocket on /ws only. */
static int on_upgrade(http_server *s, struct lws *wsi, const char *what)
{
    conn *c = lws_get_opaque_user_data(wsi);
    char uri[8];

    if (!s->ws_on || what == NULL || strcasecmp(what, "websocket") != 0)
        return -1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) != 3 ||
        lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 ||
        strcmp(uri, "/ws") != 0)
        return -1;
    if (c != NULL && c->state != CONN_IDLE)
        return -1;
    return 0;
}

/* LWS_CALLBACK_ESTABLISHED: the open hook decides (headers still here). */
static int ws_open(http_server *s, struct lws *wsi)
{
    conn *c = lws_get_opaque_user_data(wsi);
    http_ws *ws;
    int rc;

    if (c == NULL) {
        c = http_conn_new(s, wsi);
        if (c == NULL)
            return -1;
    }
    http_conn_begin(c);
    c->label = LABEL_WS(s);
    if (http_read_request(c, "/ws", 3) != 0)
        return -1;
    http_req_fixup(c);
    c->req.route = "/ws";
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return -1;
    ws->s = s;
    ws->wsi = wsi;
    buf_init(&ws->rx, HTTP_WS_MSG_MAX);
    c->ws = ws;
    rc = s->ws.open(s->p, ws, &c->req);
    http_metrics_count(s, c->label, c->method_ix, rc == 0 ? 101 : 403, c->t0);
    http_conn_reset(c);
    if (rc != 0) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                         (unsigned char *)"refused", 7);
        return -1;
    }
    ws->open = 1;
    atomic_fetch_add(&s->nws, 1);
    return 0;
}

/* LWS_CALLBACK_RECEIVE: assembles a text message, capped. */
static int ws_receive(http_ws *ws, const void *in, size_t len)
{
    http_server *s = ws->s;

    if (lws_frame_is_binary(ws->wsi)) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                         (unsigned char *)"text only", 9);
        return -1;
    }
    if (buf_append(&ws->rx, in, len) != 0) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)"message too big", 15);
        return -1;
    }
    if (!lws_is_final_fragment(ws->wsi))
        return 0;
    if (s->ws.message != NULL && !ws->closing)
        s->ws.message(s->p, ws, ws->rx.data != NULL ? ws->rx.data : "",
                      ws->rx.len);
    http_buf_recycle(&ws->rx);
    return 0;
}

/* LWS_CALLBACK_SERVER_WRITEABLE: one queued message per callback. */
static int ws_writeable(http_ws *ws)
{
    struct wsmsg *m = ws->head;
    int n;

    if (m == NULL) {
        if (!ws->closing)
            return 0;
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    ws->head = m->next;
    if (ws->head == NULL)
        ws->tail = NULL;
    ws->nmsgs--;
    ws->nbytes -= m->len;
    n = lws_write(ws->wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
    if (n < (int)m->len) {
        free(m);
        return -1;
    }
    free(m);
    if (ws->head != NULL || ws->closing)
        lws_callback_on_writable(ws->wsi);
    return 0;
}

/* The websocket side of on_lws() in http.c. */
int http_ws_callback(http_server *s, struct lws *wsi, conn *c,
                     enum lws_callback_reasons reason, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_upgrade(s, wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_open(s, wsi);
    case LWS_CALLBACK_RECEIVE:
        return c != NULL && c->ws != NULL ? ws_receive(c->ws, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c != NULL && c->ws != NULL ? ws_writeable(c->ws) : 0;
    case LWS_CALLBACK_CLOSED:
        if (c != NULL)
            http_ws_closed(c);
        return 0;
    default:
        return 0;
    }
}

int http_ws_send(http_ws *ws, const char *data, size_t len)
{
    struct wsmsg *m;

    if (ws == NULL || ws->wsi == NULL || ws->closing)
        return BERTH_EUNAVAIL;
    if (ws->nmsgs >= HTTP_WS_QUEUE_MSGS || len > HTTP_WS_QUEUE_BYTES ||
        ws->nbytes + len > HTTP_WS_QUEUE_BYTES)
        return BERTH_ETOOBIG;
    m = malloc(sizeof(*m) + LWS_PRE + len);
    if (m == NULL)
        return BERTH_ENOMEM;
    m->next = NULL;
    m->len = len;
    if (len > 0)
        memcpy(m->data + LWS_PRE, data, len);
    if (ws->tail != NULL)
        ws->tail->next = m;
    else
        ws->head = m;
    ws->tail = m;
    ws->nmsgs++;
    ws->nbytes += len;
    lws_callback_on_writable(ws->wsi);
    return 0;
}

void *http_ws_get_data(http_ws *ws)
{
    return ws->data;
}

void http_ws_set_data(http_ws *ws, void *data)
{
    ws->data = data;
}

/* Closes after the queued messages are out. */
void http_ws_close(http_ws *ws)
{
    if (ws == NULL || ws->wsi == NULL || ws->closing)
        return;
    ws->closing = 1;
    lws_callback_on_writable(ws->wsi);
}
