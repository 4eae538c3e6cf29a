/* net.c - listen addresses: parsing, resolving, probing (see net.h). */
#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"

/* Splits "host:port", "[v6]:port" or ":port". */
int net_parse_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *h = addr, *he, *ps;
    char *endp;
    long v;

    if (addr[0] == '[') {
        h = addr + 1;
        he = strchr(h, ']');
        if (he == NULL || he[1] != ':')
            return BERTH_EINVAL;
        ps = he + 2;
    } else {
        he = strrchr(addr, ':');
        if (he == NULL || strchr(addr, ':') != he)
            return BERTH_EINVAL;
        ps = he + 1;
    }
    if ((size_t)(he - h) >= hostlen || *ps < '0' || *ps > '9')
        return BERTH_EINVAL;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    errno = 0;
    v = strtol(ps, &endp, 10);
    if (errno != 0 || *endp != '\0' || v < 0 || v > 65535)
        return BERTH_EINVAL;
    *port = (int)v;
    return 0;
}

/* Resolves host to a numeric address for lws ("" : every address) and
 * says whether the socket must be IPv4. */
int net_resolve_host(const char *host, char *iface, size_t len, int *ipv4)
{
    struct addrinfo hints, *res = NULL;
    int any;

    iface[0] = '\0';
    *ipv4 = 0;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        return 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return BERTH_EINVAL;
    if (res->ai_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)res->ai_addr;

        *ipv4 = 1;
        any = a->sin_addr.s_addr == htonl(INADDR_ANY);
        inet_ntop(AF_INET, &a->sin_addr, iface, (socklen_t)len);
    } else {
        const struct sockaddr_in6 *a = (const void *)res->ai_addr;

        any = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
        inet_ntop(AF_INET6, &a->sin6_addr, iface, (socklen_t)len);
    }
    freeaddrinfo(res);
    if (any)
        iface[0] = '\0';
    return 0;
}

/* Tells a taken port apart before lws tries (libwebsockets 4.1 leaks on that path).
 * Returns BERTH_EBUSY when something listens there already. */
int net_port_taken(const char *iface, int ipv4, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1, rc = 0;

    if (port == 0)
        return 0;
    memset(&ss, 0, sizeof(ss));
    if (ipv4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (iface[0] != '\0')
            inet_pton(AF_INET, iface, &a->sin_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (iface[0] != '\0')
            inet_pton(AF_INET6, iface, &a->sin6_addr);
        len = sizeof(*a);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* let lws report it */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 && errno == EADDRINUSE)
        rc = BERTH_EBUSY;
    close(fd);
    return rc;
}
