/* uhttp.c - HTTP/1.1 over Docker's unix socket (see uhttp.h). */
#include "svc-daemon/uhttp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "svc-daemon/hijack.h"

#define UHTTP_CONNECT_MS 2000
#define UHTTP_TICK_MS    1000 /* how often a stop flag is looked at */
#define UHTTP_READ       (64u << 10)

/* ------------------------------------------------------------ connection */

int uhttp_connect(const char *path, long connect_timeout_ms, int *fd,
                  char *why, size_t whylen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int64_t deadline = clock_mono_ms() + (connect_timeout_ms > 0
                                              ? connect_timeout_ms
                                              : UHTTP_CONNECT_MS);
    int s, e;

    *fd = -1;
    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(why, whylen, "socket path missing or too long");
        return BERTH_EINVAL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return berth_err_from_errno(errno);
    }
    for (;;) {
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            *fd = s;
            return 0;
        }
        e = errno;
        /* A unix socket's full listen queue says EAGAIN: Docker is busy,
         * not gone. Anything else is final. */
        if (e == EINTR)
            continue;
        if (e != EAGAIN || clock_mono_ms() >= deadline)
            break;
        clock_sleep_ms(10);
    }
    close(s);
    snprintf(why, whylen, "engine unavailable at %s: %s", path,
             e == EAGAIN ? "connection queue full" : strerror(e));
    return e == ENOENT || e == ECONNREFUSED || e == EAGAIN || e == ENOTDIR ||
                   e == EACCES
               ? BERTH_EUNAVAIL
               : berth_err_from_errno(e);
}

int uhttp_send_all(int s, const char *p, size_t len, int64_t deadline,
                   char *why, size_t whylen)
{
    size_t sent = 0;
    int rc;

    while (sent < len) {
        ssize_t n = send(s, p + sent, len - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            rc = daemon_hijack_wait_fd(s, POLLOUT, deadline);
            if (rc == 0)
                continue;
            snprintf(why, whylen, "sending the request: %s",
                     berth_strerror(rc));
            return rc;
        }
        snprintf(why, whylen, "sending the request: %s", strerror(errno));
        return BERTH_EUNAVAIL;
    }
    return 0;
}

int uhttp_read_header(int s, char *hdr, size_t cap, int64_t deadline,
                      size_t *got, const char **end, char *why,
                      size_t whylen)
{
    const char *e = NULL;
    int rc;

    *got = 0;
    while (e == NULL) {
        ssize_t n;

        if (*got == cap) {
            snprintf(why, whylen, "reply header larger than %zu bytes", cap);
            return BERTH_EPROTO;
        }
        n = recv(s, hdr + *got, cap - *got, 0);
        if (n > 0) {
            size_t from = *got > 3 ? *got - 3 : 0;
            *got += (size_t)n;
            e = memmem(hdr + from, *got - from, "\r\n\r\n", 4);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            rc = daemon_hijack_wait_fd(s, POLLIN, deadline);
            if (rc == 0)
                continue;
            snprintf(why, whylen, "waiting for the reply: %s",
                     berth_strerror(rc));
            return rc;
        }
        snprintf(why, whylen, "connection closed before the reply header");
        return BERTH_EUNAVAIL;
    }
    *end = e + 4;
    return 0;
}

/* ------------------------------------------------------------ header */

/* Whether the field line p (n bytes, no CRLF) is name: and where its value
 * starts (spaces skipped). */
static const char *field(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name);

    if (n <= k || p[k] != ':' || strncasecmp(p, name, k) != 0)
        return NULL;
    p += k + 1;
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int uhttp_parse_head(const char *p, size_t n, uhttp_head *h)
{
    const char *line = p, *end = p + n, *eol, *v;

    h->status = daemon_hijack_http_status(p, n);
    h->content_length = -1;
    h->chunked = false;
    if (h->status < 100)
        return BERTH_EPROTO;
    eol = memchr(line, '\n', (size_t)(end - line));
    while (eol != NULL) {
        size_t len;

        line = eol + 1;
        eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            break;
        len = (size_t)(eol - line);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == 0)
            break; /* the blank line */
        if ((v = field(line, len, "Content-Length")) != NULL) {
            int64_t cl = 0;
            const char *q = v;

            if (q == line + len)
                return BERTH_EPROTO;
            for (; q < line + len && *q >= '0' && *q <= '9'; q++) {
                if (cl > (INT64_MAX - 9) / 10)
                    return BERTH_EPROTO;
                cl = cl * 10 + (*q - '0');
            }
            while (q < line + len && (*q == ' ' || *q == '\t'))
                q++;
            if (q != line + len)
                return BERTH_EPROTO;
            h->content_length = cl;
        } else if ((v = field(line, len, "Transfer-Encoding")) != NULL) {
            size_t vl = (size_t)(line + len - v);

            /* chunked is always the last coding applied. */
            h->chunked = vl >= 7 && strncasecmp(line + len - 7, "chunked", 7) == 0;
            if (!h->chunked)
                return BERTH_EPROTO; /* a coding we cannot undo */
        }
    }
    return 0;
}

/* ------------------------------------------------------------ chunked */

enum {
    CH_SIZE = 0, /* hex digits of a chunk size */
    CH_EXT,      /* chunk extension, up to the LF */
    CH_DATA,
    CH_DATA_CR,  /* the CRLF after a chunk's data */
    CH_DATA_LF,
    CH_TRAILER_START, /* at the start of a trailer line */
    CH_TRAILER,       /* inside a trailer line */
    CH_TRAILER_LF,    /* a CR at a line start: the LF ends everything */
    CH_DONE,
};

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The chunk-size line ended: data follows, or the trailer. */
static void size_done(uhttp_chunked *c)
{
    c->state = c->left > 0 ? CH_DATA : CH_TRAILER_START;
    c->digits = 0;
}

int uhttp_chunked_feed(uhttp_chunked *c, const char *p, size_t n,
                       int (*emit)(void *arg, const char *p, size_t n),
                       void *arg, size_t *used)
{
    size_t i = 0;

    while (i < n && c->state != CH_DONE) {
        char ch = p[i];
        int v;

        switch (c->state) {
        case CH_SIZE:
            v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > 15)
                    return -1; /* 2^60 bytes: not from Docker */
                c->left = c->left * 16 + (uint64_t)v;
            } else if (c->digits == 0) {
                return -1;
            } else if (ch == ';' || ch == ' ' || ch == '\t' || ch == '\r') {
                c->state = CH_EXT;
            } else if (ch == '\n') {
                size_done(c);
            } else {
                return -1;
            }
            i++;
            break;
        case CH_EXT:
            if (ch == '\n')
                size_done(c);
            i++;
            break;
        case CH_DATA: {
            size_t k = n - i < c->left ? n - i : (size_t)c->left;

            c->left -= k;
            if (c->left == 0)
                c->state = CH_DATA_CR;
            if (emit != NULL && emit(arg, p + i, k) != 0) {
                *used = i + k;
                return 2;
            }
            i += k;
            break;
        }
        case CH_DATA_CR:
            if (ch == '\r')
                c->state = CH_DATA_LF;
            else if (ch == '\n')
                c->state = CH_SIZE;
            else
                return -1;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return -1;
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER_START:
            c->state = ch == '\n' ? CH_DONE : ch == '\r' ? CH_TRAILER_LF
                                                         : CH_TRAILER;
            i++;
            break;
        case CH_TRAILER:
            if (ch == '\n')
                c->state = CH_TRAILER_START;
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return -1;
            c->state = CH_DONE;
            i++;
            break;
        default:
            return -1;
        }
    }
    *used = i;
    return c->state == CH_DONE ? 1 : 0;
}

/* ------------------------------------------------------------ request */

int uhttp_escape(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
            ch == '~') {
            if (o + 1 >= size)
                return BERTH_ETOOBIG;
            out[o++] = (char)ch;
        } else {
            if (o + 3 >= size)
                return BERTH_ETOOBIG;
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (size == 0)
        return BERTH_ETOOBIG;
    out[o] = '\0';
    return 0;
}

static bool printable_token(const char *s, size_t max)
{
    size_t i;

    if (s == NULL || s[0] == '\0' || strlen(s) >= max)
        return false;
    for (i = 0; s[i] != '\0'; i++) {
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    }
    return true;
}

/* The body as it arrives, on its way to the caller. */
typedef struct body_ctx {
    const uhttp_req *r;
    uhttp_res *res;
} body_ctx;

static int body_emit(void *arg, const char *p, size_t n)
{
    body_ctx *b = arg;

    if (n == 0 || b->r->on_body == NULL)
        return 0;
    return b->r->on_body(b->r->arg, b->res->status, p, n);
}

/* Waits for s to be readable, looking at the stop flag every tick.
 * Returns 0 when readable, 1 when asked to stop, or BERTH_ETIMEDOUT. */
static int wait_readable(int s, const uhttp_req *r, int64_t deadline)
{
    for (;;) {
        int64_t now = clock_mono_ms();
        int64_t until = deadline < now + UHTTP_TICK_MS ? deadline
                                                       : now + UHTTP_TICK_MS;
        int rc;

        if (r->stop != NULL && atomic_load(r->stop))
            return 1;
        if (now >= deadline)
            return BERTH_ETIMEDOUT;
        rc = daemon_hijack_wait_fd(s, POLLIN, until);
        if (rc == 0)
            return 0;
        if (rc != BERTH_ETIMEDOUT)
            return rc;
    }
}

/* Reads the body after the header: pre (npre bytes) came with it. */
static int read_body(int s, const uhttp_req *r, uhttp_res *res,
                     const uhttp_head *h, const char *pre, size_t npre,
                     int64_t deadline, char *why, size_t whylen)
{
    body_ctx b = {.r = r, .res = res};
    uhttp_chunked ch = {0};
    int64_t left = h->content_length;
    char *rbuf = NULL;
    const char *p = pre;
    size_t n = npre;
    int rc = 0;

    if (h->status == 204 || h->status == 304 || (h->status >= 100 && h->status < 200) ||
        strcmp(r->method, "HEAD") == 0)
        return 0;
    for (;;) {
        if (h->chunked) {
            size_t used = 0;
            int k = uhttp_chunked_feed(&ch, p, n, body_emit, &b, &used);

            if (k < 0) {
                snprintf(why, whylen, "reply body is not valid chunked coding");
                rc = BERTH_EPROTO;
                break;
            }
            if (k == 2) {
                res->stopped = true;
                break;
            }
            if (k == 1)
                break;
        } else if (left >= 0) {
            size_t k = (uint64_t)left < n ? (size_t)left : n;

            left -= (int64_t)k;
            if (body_emit(&b, p, k) != 0) {
                res->stopped = true;
                break;
            }
            if (left == 0)
                break;
        } else if (body_emit(&b, p, n) != 0) {
            res->stopped = true;
            break;
        }
        if (rbuf == NULL) {
            rbuf = malloc(UHTTP_READ);
            if (rbuf == NULL) {
                rc = BERTH_ENOMEM;
                break;
            }
        }
        for (;;) {
            ssize_t got = recv(s, rbuf, UHTTP_READ, 0);

            if (got > 0) {
                p = rbuf;
                n = (size_t)got;
                break;
            }
            if (got == 0) {
                n = 0;
                break;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                snprintf(why, whylen, "reading the reply: %s", strerror(errno));
                rc = BERTH_EUNAVAIL;
                goto out;
            }
            rc = wait_readable(s, r, deadline);
            if (rc == 1) {
                res->stopped = true;
                rc = 0;
                goto out;
            }
            if (rc != 0) {
                snprintf(why, whylen, "reading the reply: %s",
                         berth_strerror(rc));
                goto out;
            }
        }
        if (n == 0) {
            /* The peer closed: the end of a body that runs until close,
             * a reply cut short otherwise. */
            if (!h->chunked && left < 0)
                break;
            snprintf(why, whylen, "connection closed before the reply's end");
            rc = BERTH_EUNAVAIL;
            break;
        }
    }
out:
    free(rbuf);
    return rc;
}

int uhttp_request(const uhttp_req *r, uhttp_res *res, char *why,
                  size_t whylen)
{
    int64_t deadline = r->timeout_ms > 0 ? clock_mono_ms() + r->timeout_ms
                                         : INT64_MAX;
    char head[UHTTP_TARGET_MAX + 256], hdr[UHTTP_HDR_MAX];
    const char *end = NULL;
    uhttp_head h;
    size_t got = 0;
    int s = -1, n, rc;

    memset(res, 0, sizeof(*res));
    why[0] = '\0';
    if (!printable_token(r->method, 16) ||
        !printable_token(r->target, UHTTP_TARGET_MAX) || r->target[0] != '/') {
        snprintf(why, whylen, "request method or target not usable");
        return BERTH_EINVAL;
    }
    n = snprintf(head, sizeof(head),
                 "%s %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: berth-daemon\r\n"
                 "Connection: close\r\n%s",
                 r->method, r->target,
                 r->body != NULL ? "Content-Type: application/json\r\n" : "");
    if (r->body != NULL || strcmp(r->method, "POST") == 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "Content-Length: %zu\r\n",
                      r->body != NULL ? r->body_len : 0);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    rc = uhttp_connect(r->sock_path, r->connect_timeout_ms, &s, why, whylen);
    if (rc != 0)
        return rc;
    rc = uhttp_send_all(s, head, (size_t)n, deadline, why, whylen);
    if (rc == 0 && r->body != NULL)
        rc = uhttp_send_all(s, r->body, r->body_len, deadline, why, whylen);
    if (rc != 0)
        goto out;
    /* The header comes under the deadline, or, with none, the stop flag's
     * tick: a stream's header arrives at once. */
    for (;;) {
        int64_t until = deadline;

        if (r->timeout_ms <= 0)
            until = clock_mono_ms() + UHTTP_TICK_MS;
        rc = uhttp_read_header(s, hdr, sizeof(hdr), until, &got, &end, why,
                               whylen);
        if (rc != BERTH_ETIMEDOUT || r->timeout_ms > 0 || got > 0)
            break;
        if (r->stop != NULL && atomic_load(r->stop)) {
            res->stopped = true;
            rc = 0;
            goto out;
        }
    }
    if (rc != 0)
        goto out;
    if (uhttp_parse_head(hdr, (size_t)(end - hdr), &h) != 0) {
        snprintf(why, whylen, "reply is not HTTP/1.x");
        rc = BERTH_EPROTO;
        goto out;
    }
    res->status = h.status;
    rc = read_body(s, r, res, &h, end, got - (size_t)(end - hdr), deadline,
                   why, whylen);
out:
    close(s);
    return rc;
}
