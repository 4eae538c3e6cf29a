/* uhttp.h - the HTTP/1.1 client the daemon speaks to the Docker Engine
 * with, over its unix socket: one request per connection, a JSON body or
 * none, the reply's body by Content-Length, chunked or until close, handed
 * to a callback piece by piece.
 *
 *   uhttp_res res;
 *   char why[256];
 *
 *   rc = uhttp_request(&(uhttp_req){.sock_path = "/var/run/docker.sock",
 *                                   .method = "GET",
 *                                   .target = "/v1.41/containers/json",
 *                                   .timeout_ms = 30000,
 *                                   .on_body = collect, .arg = &b},
 *                      &res, why, sizeof(why));
 *
 * Why not libcurl: Debian's libcurl links some 28 libraries (GnuTLS,
 * Kerberos, LDAP, libssh2, RTMP...) whose pages cost the daemon about
 * 4 MiB of resident memory, over half its budget, for a protocol subset
 * that fits here: no TLS, no proxies, no redirects, no keep-alive, one
 * peer that is always Docker.
 *
 * The connection helpers are shared with hijack.c, whose upgraded
 * requests outlive the HTTP exchange. Everything here is reentrant.
 */
#ifndef BERTH_DAEMON_UHTTP_H
#define BERTH_DAEMON_UHTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UHTTP_HDR_MAX    8192 /* a reply header */
#define UHTTP_TARGET_MAX 2048 /* path and query */

/* Called with each piece of the reply body (status is the reply's). A
 * non-zero return stops the request: uhttp_request() then returns 0 with
 * res->stopped set. */
typedef int (*uhttp_body_fn)(void *arg, int status, const char *p, size_t n);

typedef struct uhttp_req {
    const char *sock_path;
    const char *method;  /* "GET", "POST", "DELETE" ... */
    const char *target;  /* "/v1.41/containers/json?all=1", printable ASCII */
    const char *body;    /* JSON; NULL: none (POST sends Content-Length 0) */
    size_t body_len;
    long connect_timeout_ms; /* 0: 2000; a full listen queue is retried */
    long timeout_ms;         /* the whole exchange; 0: no limit */
    uhttp_body_fn on_body;   /* NULL: the body is read and dropped */
    void *arg;
    const atomic_bool *stop; /* may be NULL; checked at least once a second */
} uhttp_req;

typedef struct uhttp_res {
    int status;   /* the reply's status, 0 before a header came */
    bool stopped; /* on_body or *stop ended the request */
} uhttp_res;

/* Runs r. Returns 0 once the whole reply was read (any status: the caller
 * judges it) or the request was stopped; otherwise BERTH_EUNAVAIL (no
 * socket, nothing listening, the connection dropped: reply cut short),
 * BERTH_ETIMEDOUT, BERTH_EINVAL (a target or method the request line
 * cannot carry), BERTH_EPROTO (a reply that is not HTTP/1.x) or
 * BERTH_ENOMEM, with a sentence in why. */
int uhttp_request(const uhttp_req *r, uhttp_res *res, char *why,
                  size_t whylen);

/* Percent-encodes s for a query value (all but A-Z a-z 0-9 - . _ ~) into
 * out. Returns 0, or BERTH_ETOOBIG when out (size bytes) is too small. */
int uhttp_escape(const char *s, char *out, size_t size);

/* ------------------------------------------------------------ pieces */

/* Connects a non-blocking, close-on-exec stream socket to path, retrying
 * a full listen queue until connect_timeout_ms (0: 2000) passes. Returns 0
 * and *fd, or a berth code with a sentence in why. */
int uhttp_connect(const char *path, long connect_timeout_ms, int *fd,
                  char *why, size_t whylen);

/* Sends len bytes of p on the non-blocking s before deadline (monotonic
 * ms). Returns 0 or a berth code with a sentence in why. */
int uhttp_send_all(int s, const char *p, size_t len, int64_t deadline,
                   char *why, size_t whylen);

/* Reads a reply header into hdr (cap bytes) before deadline. Returns 0 with
 * *got bytes read and *end just past the blank line (bytes after it belong
 * to the body), or a berth code with a sentence in why. */
int uhttp_read_header(int s, char *hdr, size_t cap, int64_t deadline,
                      size_t *got, const char **end, char *why,
                      size_t whylen);

/* What the header says of the body that follows. */
typedef struct uhttp_head {
    int status;
    int64_t content_length; /* -1 when not given */
    bool chunked;
} uhttp_head;

/* Parses a reply header (status line and fields, up to the blank line).
 * Returns 0 or BERTH_EPROTO. */
int uhttp_parse_head(const char *p, size_t n, uhttp_head *h);

/* The chunked transfer coding, decoded across any split of the input.
 * Start from zero. */
typedef struct uhttp_chunked {
    int state;
    uint64_t left; /* data bytes of the current chunk still to come */
    unsigned digits;
} uhttp_chunked;

/* Feeds n bytes; each piece of data goes to emit (non-zero stops: returns
 * 2). Returns 0 when more input is wanted, 1 when the last chunk and the
 * trailer are complete (*used tells how much of p was consumed), 2 when
 * emit stopped it, or -1 for input that is not chunked coding. */
int uhttp_chunked_feed(uhttp_chunked *c, const char *p, size_t n,
                       int (*emit)(void *arg, const char *p, size_t n),
                       void *arg, size_t *used);

#endif
