/* hijack.h - Docker's upgraded ("hijacked") connections: the attach of a
 * container and the start of an exec, whose streams run both ways on the
 * raw unix-socket connection once Docker answers 101, and the demultiplexer
 * of the framed stream Docker sends when there is no TTY.
 *
 *   char early[DAEMON_HIJACK_HDR_MAX], why[256];
 *   size_t nearly;
 *   int fd;
 *
 *   rc = daemon_hijack_dial(&(daemon_hijack_req){
 *                               .sock_path = sock,
 *                               .path = "/containers/<id>/attach?stream=1..."},
 *                           &fd, early, &nearly, why, sizeof(why));
 *   ... early[0..nearly) already belongs to the stream; then read fd ...
 *
 *   daemon_demux dm = {.raw = tty};
 *   daemon_demux_feed(&dm, p, n, emit, arg);   stdout / stderr pieces
 *
 * These requests outlive the HTTP exchange (the stream then runs both
 * ways on the connection), so they are written here, on uhttp.h's
 * connection helpers: one POST with "Connection: Upgrade" and "Upgrade: tcp", an optional JSON
 * body, the reply header read under a deadline with a cap. The connection
 * returned is non-blocking and close-on-exec, owned by the caller.
 *
 * Everything here is reentrant; nothing is shared between calls.
 */
#ifndef BERTH_DAEMON_HIJACK_H
#define BERTH_DAEMON_HIJACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAEMON_HIJACK_HDR_MAX       8192 /* Docker's reply header */
#define DAEMON_HIJACK_TIMEOUT_MS    5000 /* default for the whole exchange */
#define DAEMON_DEMUX_STDOUT         1
#define DAEMON_DEMUX_STDERR         2
#define DAEMON_DEMUX_FRAME_MAX      (16u * 1024 * 1024) /* larger: not Docker's */

/* One upgraded request. The strings are the caller's. */
typedef struct daemon_hijack_req {
    const char *sock_path; /* Docker's socket */
    const char *path;      /* "/containers/<id>/attach?..." or
                            * "/v1.41/exec/<id>/start", sent as is */
    const char *body;      /* a JSON body; NULL: none */
    int timeout_ms;        /* 0: DAEMON_HIJACK_TIMEOUT_MS */
} daemon_hijack_req;

/* Connects to Docker's socket and sends r. Returns 0 once Docker answered
 * 101 (or 200), with the connection in *fd (non-blocking, close-on-exec;
 * the caller closes it) and the stream bytes that came with the reply
 * header in early (*nearly of them, at most DAEMON_HIJACK_HDR_MAX).
 * Otherwise *fd is -1, why holds a sentence (with Docker's message when it
 * sent one) and the code is BERTH_EUNAVAIL (no socket, nothing listening,
 * the connection dropped), BERTH_ETIMEDOUT, BERTH_ENOENT (404),
 * BERTH_ECONFLICT (409), BERTH_EINVAL (400, or a path the request line
 * cannot carry), BERTH_EIO (5xx) or BERTH_EPROTO. */
int daemon_hijack_dial(const daemon_hijack_req *r, int *fd, char *early,
                       size_t *nearly, char *why, size_t whylen);

/* Returns the status code of an HTTP/1.x status line, or -1. */
int daemon_hijack_http_status(const char *p, size_t n);

/* Whether ref (a container or exec id or name) may go into a request path
 * as it is: non-empty, shorter than DAEMON_DOCKER_NAME_MAX, only
 * [A-Za-z0-9_.-]. */
bool daemon_hijack_valid_ref(const char *ref);

/* Waits until fd is ready for events (poll's) or deadline (monotonic ms)
 * passes. Returns 0 or BERTH_ETIMEDOUT / BERTH_EIO. */
int daemon_hijack_wait_fd(int fd, short events, int64_t deadline);

/* ---------------------------------------------------------------- frames */

/* The state of Docker's multiplexed stream between two reads. Start from
 * zero; raw = true for a TTY, whose stream is not framed. */
typedef struct daemon_demux {
    unsigned char hdr[8];
    size_t have;   /* header bytes collected */
    uint32_t left; /* payload bytes of the current frame still to come */
    int stream;    /* of the current frame */
    bool raw;      /* a TTY, or a stream that turned out not multiplexed */
} daemon_demux;

/* Receives a piece of payload (n > 0) of stream DAEMON_DEMUX_STDOUT or
 * DAEMON_DEMUX_STDERR. */
typedef void (*daemon_demux_emit_fn)(void *arg, int stream, const char *p,
                                     size_t n);

/* Feeds n bytes of a stream through d, calling emit for every piece of
 * payload with its stream; a frame is passed on as it arrives and never
 * held whole, so any split of the input gives the same bytes. Docker's
 * frame header is 8 bytes: the stream (0 stdin, 1 stdout, 2 stderr, 3
 * Docker's own errors, reported as stderr), three zero bytes and the
 * big-endian payload size. Returns 0, or BERTH_EPROTO once when a header is
 * not Docker's: the stream is then passed on raw, as stdout, from that
 * header on. */
int daemon_demux_feed(daemon_demux *d, const char *p, size_t n,
                      daemon_demux_emit_fn emit, void *arg);

#endif
