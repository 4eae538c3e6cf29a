/* hijack.c - Docker's upgraded connections and its stream frames (see
 * hijack.h). Shared by the console (container attach) and the shell
 * sessions (exec start).
 */
#include "svc-daemon/hijack.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "svc-daemon/docker.h"
#include "svc-daemon/uhttp.h"

#define HJ_REQ_MAX  4096 /* request line, headers and body */
#define HJ_PATH_MAX 1024

/* ------------------------------------------------------------ helpers */

int daemon_hijack_http_status(const char *p, size_t n)
{
    int i, st = 0;

    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
        (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    for (i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        st = st * 10 + (p[i] - '0');
    }
    if (n > 12 && p[12] != ' ' && p[12] != '\r')
        return -1;
    return st;
}

bool daemon_hijack_valid_ref(const char *ref)
{
    size_t i;

    if (ref == NULL || ref[0] == '\0' || strlen(ref) >= DAEMON_DOCKER_NAME_MAX)
        return false;
    for (i = 0; ref[i] != '\0'; i++) {
        char ch = ref[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

int daemon_hijack_wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int n;

    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            return BERTH_ETIMEDOUT;
        n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0)
            return BERTH_ETIMEDOUT;
        if (errno != EINTR)
            return BERTH_EIO;
    }
}

/* A path goes into the request line as it is: printable, no spaces. */
static bool hj_valid_path(const char *path)
{
    size_t i;

    if (path == NULL || path[0] != '/' || strlen(path) >= HJ_PATH_MAX)
        return false;
    for (i = 0; path[i] != '\0'; i++) {
        if ((unsigned char)path[i] <= ' ' || (unsigned char)path[i] >= 0x7f)
            return false;
    }
    return true;
}

/* ------------------------------------------------------------ dial */

int daemon_hijack_dial(const daemon_hijack_req *r, int *fd, char *early,
                       size_t *nearly, char *why, size_t whylen)
{
    int64_t deadline = clock_mono_ms() + (r->timeout_ms > 0
                                              ? r->timeout_ms
                                              : DAEMON_HIJACK_TIMEOUT_MS);
    size_t bodylen = r->body != NULL ? strlen(r->body) : 0;
    char req[HJ_REQ_MAX], hdr[DAEMON_HIJACK_HDR_MAX];
    const char *end = NULL;
    size_t got = 0;
    int s = -1, st, n, rc;

    *fd = -1;
    *nearly = 0;
    why[0] = '\0';
    if (!hj_valid_path(r->path)) {
        snprintf(why, whylen, "request path not usable");
        rc = BERTH_EINVAL;
        goto out;
    }
    n = snprintf(req, sizeof(req),
                 "POST %s HTTP/1.1\r\nHost: docker\r\n"
                 "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                 "%sContent-Length: %zu\r\n\r\n%s",
                 r->path,
                 r->body != NULL ? "Content-Type: application/json\r\n" : "",
                 bodylen, r->body != NULL ? r->body : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        snprintf(why, whylen, "request larger than %d bytes", HJ_REQ_MAX);
        rc = BERTH_ETOOBIG;
        goto out;
    }
    rc = uhttp_connect(r->sock_path, 0, &s, why, whylen);
    if (rc != 0)
        goto out;
    rc = uhttp_send_all(s, req, (size_t)n, deadline, why, whylen);
    if (rc != 0)
        goto out;
    rc = uhttp_read_header(s, hdr, sizeof(hdr), deadline, &got, &end, why,
                           whylen);
    if (rc != 0)
        goto out;
    st = daemon_hijack_http_status(hdr, (size_t)(end - hdr));
    if (st == 101 || st == 200) {
        *nearly = got - (size_t)(end - hdr);
        memcpy(early, end, *nearly);
        *fd = s;
        s = -1;
        rc = 0;
        goto out;
    }
    {
        /* Docker's error body, as much as came with the header. */
        char msg[256];
        size_t i, k = got - (size_t)(end - hdr);

        if (k >= sizeof(msg))
            k = sizeof(msg) - 1;
        for (i = 0; i < k; i++)
            msg[i] = end[i] >= ' ' && end[i] < 0x7f ? end[i] : ' ';
        while (k > 0 && msg[k - 1] == ' ')
            k--;
        msg[k] = '\0';
        snprintf(why, whylen, "docker answered %d %s", st, msg);
    }
    if (st == 404)
        rc = BERTH_ENOENT;
    else if (st == 409)
        rc = BERTH_ECONFLICT;
    else if (st == 400)
        rc = BERTH_EINVAL;
    else if (st >= 500)
        rc = BERTH_EIO;
    else
        rc = BERTH_EPROTO;
out:
    if (s >= 0)
        close(s);
    return rc;
}

/* ------------------------------------------------------------ frames */

int daemon_demux_feed(daemon_demux *d, const char *p, size_t n,
                      daemon_demux_emit_fn emit, void *arg)
{
    int rc = 0;

    while (n > 0) {
        size_t k;
        uint32_t size;

        if (d->raw) {
            emit(arg, DAEMON_DEMUX_STDOUT, p, n);
            break;
        }
        if (d->left > 0) {
            k = n < d->left ? n : d->left;
            emit(arg, d->stream, p, k);
            d->left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        k = sizeof(d->hdr) - d->have < n ? sizeof(d->hdr) - d->have : n;
        memcpy(d->hdr + d->have, p, k);
        d->have += k;
        p += k;
        n -= k;
        if (d->have < sizeof(d->hdr))
            break;
        d->have = 0;
        size = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 |
               (uint32_t)d->hdr[6] << 8 | (uint32_t)d->hdr[7];
        if (d->hdr[0] > 3 || d->hdr[1] != 0 || d->hdr[2] != 0 ||
            d->hdr[3] != 0 || size > DAEMON_DEMUX_FRAME_MAX) {
            d->raw = true;
            emit(arg, DAEMON_DEMUX_STDOUT, (const char *)d->hdr,
                 sizeof(d->hdr));
            rc = BERTH_EPROTO;
            continue;
        }
        d->stream = d->hdr[0] >= 2 ? DAEMON_DEMUX_STDERR : DAEMON_DEMUX_STDOUT;
        d->left = size;
    }
    return rc;
}
