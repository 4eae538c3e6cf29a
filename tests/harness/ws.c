/* ws.c - a raw TCP and websocket client for tests (see ws.h).
 *
 * Layout: TCP (connect, write all, read with a deadline), then the
 * websocket handshake and frames on top of it.
 */
#include "tests/harness/ws.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"

#define H_WS_HEADER_MAX 14 /* 2 + 8 bytes of length + 4 of mask */

/* ---------------------------------------------------------------- TCP */

int h_tcp_connect(int port, int rcvbuf)
{
    struct sockaddr_in a;
    int one = 1;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "harness: socket: %s\n", strerror(errno));
        return BERTH_EIO;
    }
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fprintf(stderr, "harness: connect 127.0.0.1:%d: %s\n", port,
                strerror(errno));
        close(fd);
        return BERTH_EIO;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int h_send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "harness: send: %s\n",
                    w < 0 ? strerror(errno) : "nothing written");
            return BERTH_EIO;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

size_t h_recv_n(int fd, void *p, size_t n, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    size_t got = 0;

    while (got < n) {
        int64_t left = end - clock_mono_ms();
        struct timeval tv;
        ssize_t r;

        if (left <= 0)
            break;
        tv.tv_sec = left / 1000;
        tv.tv_usec = (left % 1000) * 1000;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        r = recv(fd, (char *)p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* ---------------------------------------------------------------- websocket */

int h_ws_handshake(int fd, const char *target, char *head, size_t size,
                   int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    char *req = NULL;
    size_t n = 0;
    int rc;

    if (size == 0)
        return BERTH_EINVAL;
    head[0] = '\0';
    if (asprintf(&req,
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
                 target) < 0) {
        req = NULL;
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = h_send_all(fd, req, strlen(req));
    if (rc != 0)
        goto out;
    while (strstr(head, "\r\n\r\n") == NULL) {
        int64_t left = end - clock_mono_ms();

        if (n + 1 >= size) {
            fprintf(stderr, "harness: ws handshake: head over %zu bytes\n",
                    size - 1);
            rc = BERTH_ETOOBIG;
            goto out;
        }
        if (left <= 0 || h_recv_n(fd, head + n, 1, (int)left) != 1) {
            rc = BERTH_ETIMEDOUT;
            goto out;
        }
        head[++n] = '\0';
    }
    rc = 0;
out:
    free(req);
    return rc;
}

int h_ws_send(int fd, int opcode, const void *data, size_t len)
{
    static const unsigned char mask[4] = {0x9a, 0x21, 0x5c, 0xe3};
    const unsigned char *d = data;
    unsigned char *f;
    size_t h = 0, i;
    int rc;

    f = malloc(len + H_WS_HEADER_MAX);
    if (f == NULL)
        return BERTH_ENOMEM;
    f[h++] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        f[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    } else {
        f[h++] = 0x80 | 127;
        for (i = 0; i < 8; i++)
            f[h++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(f + h, mask, 4);
    h += 4;
    for (i = 0; i < len; i++)
        f[h + i] = d[i] ^ mask[i % 4];
    rc = h_send_all(fd, f, h + len);
    free(f);
    return rc;
}

int h_ws_recv(int fd, char *out, size_t size, size_t *len, int timeout_ms)
{
    unsigned char h[2], ext[8];
    uint64_t n;
    size_t i;

    if (h_recv_n(fd, h, 2, timeout_ms) != 2)
        return BERTH_ETIMEDOUT;
    n = h[1] & 0x7f;
    if (n == 126) {
        if (h_recv_n(fd, ext, 2, timeout_ms) != 2)
            return BERTH_ETIMEDOUT;
        n = (uint64_t)ext[0] << 8 | ext[1];
    } else if (n == 127) {
        if (h_recv_n(fd, ext, 8, timeout_ms) != 8)
            return BERTH_ETIMEDOUT;
        for (n = 0, i = 0; i < 8; i++)
            n = n << 8 | ext[i];
    }
    if (n >= size) {
        fprintf(stderr, "harness: ws frame of %llu bytes, buffer of %zu\n",
                (unsigned long long)n, size);
        return BERTH_ETOOBIG;
    }
    if (h_recv_n(fd, out, (size_t)n, timeout_ms) != n)
        return BERTH_ETIMEDOUT;
    out[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    return h[0] & 0x0f;
}
