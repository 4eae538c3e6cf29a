/* net.h - listen addresses shared by the services' servers.
 *
 *   char host[256], iface[64];
 *   int port, ipv4;
 *
 *   rc = net_parse_addr("0.0.0.0:8080", host, sizeof(host), &port);
 *   rc = net_resolve_host(host, iface, sizeof(iface), &ipv4);
 *   rc = net_port_taken(iface, ipv4, port);
 */
#ifndef BERTH_COMMON_NET_H
#define BERTH_COMMON_NET_H

#include <stddef.h>

/* Splits "host:port", "[v6]:port" or ":port". Returns 0 or BERTH_EINVAL. */
int net_parse_addr(const char *addr, char *host, size_t hostlen, int *port);

/* Resolves host to a numeric address in iface ("" for every address) and
 * sets *ipv4 when the socket must be IPv4. Returns 0 or BERTH_EINVAL. */
int net_resolve_host(const char *host, char *iface, size_t len, int *ipv4);

/* Returns BERTH_EBUSY when something listens on iface:port already, else
 * 0 (also when it cannot tell). */
int net_port_taken(const char *iface, int ipv4, int port);

#endif
