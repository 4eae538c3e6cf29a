/* haproxy.h - the edge's HAProxy: its base configuration, its process, and
 * its runtime API.
 *
 *   edge_haproxy *h;
 *
 *   rc = edge_haproxy_new(&(edge_haproxy_cfg){.dir = "var/edge",
 *                                             .http_addr = "0.0.0.0:80",
 *                                             .https_addr = "0.0.0.0:443"},
 *                         &h);
 *   edge_haproxy_on_restart(h, reapply, routes);
 *   rc = edge_haproxy_start(h);        (HAProxy runs, its socket answers)
 *   rc = edge_haproxy_map_set(h, EDGE_HAPROXY_MAP_HOSTS, "a.example.com",
 *                             "10.0.0.5:80");
 *   ...
 *   edge_haproxy_free(h);              (HAProxy stops)
 *
 * Routing is data, not configuration. The base configuration, written once
 * at start, has one HTTP frontend (http_addr) and one HTTPS frontend
 * (https_addr, a self-signed default certificate plus a crt-list) in front
 * of a single catch-all backend whose server address is set per request
 * from the hosts map: Host header, port and final dot dropped, lower-cased,
 * looked up in dir/maps/hosts.map. The value is "ip:port" or "[ip6]:port"
 * (proxied), or EDGE_HAPROXY_STOPPED (a 503 page). A host that is not in
 * the map gets a 404 page. Before any of that,
 * /.well-known/acme-challenge/<token> is answered by HAProxy itself from
 * dir/maps/challenges.map (token -> key authorization) when the token is
 * there. The map and crt-list files are what HAProxy loads when it starts;
 * the runtime API changes the running process without a reload.
 *
 * Files under dir: haproxy.cfg, maps/hosts.map, maps/challenges.map,
 * certs/default.pem (self-signed, made at the first start), certs/<domain>.pem
 * (0600), certs.list (the crt-list), run/admin.sock (level admin),
 * run/master.sock (the master CLI), run/haproxy.pid.
 *
 * Two modes. With admin_socket NULL the edge runs HAProxy itself in
 * master-worker mode and supervises it: a thread waits for the process and
 * starts it again when it dies (backoff from 100 ms doubling to 10 s),
 * relaying what HAProxy prints to the log. With admin_socket set, nothing
 * is started: that HAProxy must load the configuration written here (or one
 * naming the same files), and a thread polls its socket every second. In
 * both modes the on_restart callbacks run after every start of HAProxy
 * (the first one included), because its runtime state then is what the
 * files on disk said, and must be brought up to date again.
 *
 * Runtime commands are one connection each to the admin socket, so every
 * call is thread safe and independent. A command answered with an error
 * text returns BERTH_EIO (the text is logged); an unreachable socket
 * returns BERTH_EUNAVAIL.
 *
 * Threads: everything here may be called from any thread once
 * edge_haproxy_start() returned; the callbacks run on the supervisor
 * thread.
 */
#ifndef BERTH_EDGE_HAPROXY_H
#define BERTH_EDGE_HAPROXY_H

#include "common/buf.h"

#define EDGE_HAPROXY_STOPPED "stopped" /* hosts map value: a 503 page */
#define EDGE_HAPROXY_OUT_MAX (1u << 20) /* cap of one command's output */
#define EDGE_HAPROXY_CALLBACKS_MAX 8

typedef struct edge_haproxy edge_haproxy;

/* Strings are copied by edge_haproxy_new(). */
typedef struct edge_haproxy_cfg {
    const char *dir;          /* edge data dir: haproxy.cfg, maps/, certs/, run/ */
    const char *http_addr;    /* "0.0.0.0:80" style */
    const char *https_addr;   /* "0.0.0.0:443" style */
    const char *admin_socket; /* NULL: write the config and run our own
                                 haproxy; else use a running HAProxy's admin
                                 socket */
    const char *haproxy_bin;  /* NULL: "haproxy" from PATH */
} edge_haproxy_cfg;

/* The maps the configuration reads. */
enum edge_haproxy_map {
    EDGE_HAPROXY_MAP_HOSTS = 0, /* host -> "ip:port" or "stopped" */
    EDGE_HAPROXY_MAP_CHALLENGES, /* ACME token -> key authorization */
    EDGE_HAPROXY_MAPS
};

/* Checks the configuration and makes the directories; nothing runs yet.
 * Returns 0 and *out (free with edge_haproxy_free()), BERTH_EINVAL for a
 * bad address, or another berth code. Errors are logged. */
int edge_haproxy_new(const edge_haproxy_cfg *cfg, edge_haproxy **out);

/* Writes the base configuration (and the default certificate, the empty
 * maps and crt-list when missing), starts and supervises HAProxy (or starts
 * watching the given socket) and waits up to 15 s until the admin socket
 * answers and the on_restart callbacks have run once. Returns 0,
 * BERTH_ETIMEDOUT (the supervisor keeps trying), or another berth code. */
int edge_haproxy_start(edge_haproxy *h);

/* Stops the supervisor and our HAProxy (SIGTERM, SIGKILL after 5 s) and
 * frees h. NULL is a no-op. */
void edge_haproxy_free(edge_haproxy *h);

/* fn runs (on the supervisor thread) after every (re)start of HAProxy, when
 * the runtime state is empty again and must be re-applied; also once after
 * the first start. Up to EDGE_HAPROXY_CALLBACKS_MAX callbacks, called in
 * the order they were added; add them before edge_haproxy_start(). */
void edge_haproxy_on_restart(edge_haproxy *h, void (*fn)(void *ud), void *ud);

/* One runtime API command over the admin socket (without the final
 * newline; a command ending in "<<" is followed by its payload lines and
 * an empty line, see the HAProxy management guide), output in out (may be
 * NULL; its cap is the caller's). Returns 0 or a berth code: BERTH_EUNAVAIL
 * when the socket does not answer. The output is not judged: HAProxy
 * answers errors as text. Thread safe. */
int edge_haproxy_cmd(edge_haproxy *h, const char *cmd, buf *out);

/* 1 while the admin socket answered at the last look of the supervisor. */
int edge_haproxy_up(edge_haproxy *h);

/* The pid of our HAProxy master process, 0 when none runs (or when the
 * HAProxy is not ours). */
long edge_haproxy_pid(edge_haproxy *h);

/* ------------------------------------------------------------ maps */

/* The absolute path of a map file (how the runtime API names it). */
const char *edge_haproxy_map_path(edge_haproxy *h, enum edge_haproxy_map map);

/* Sets key to value in the running HAProxy (set map, or add map when the
 * key is absent). key and value must be one token each, without spaces or
 * control characters. Returns 0, BERTH_EINVAL, BERTH_EUNAVAIL or
 * BERTH_EIO. */
int edge_haproxy_map_set(edge_haproxy *h, enum edge_haproxy_map map,
                         const char *key, const char *value);

/* Removes key from the running HAProxy; an absent key is not an error. */
int edge_haproxy_map_del(edge_haproxy *h, enum edge_haproxy_map map,
                         const char *key);

/* Replaces the whole map in the running HAProxy at once: prepare map, add
 * map @version in payloads of at most 8 KiB, commit map @version. lines
 * holds "key value\n" lines (comment lines starting with '#' are skipped).
 * Returns 0 or a berth code; on failure the running map is unchanged. */
int edge_haproxy_map_replace(edge_haproxy *h, enum edge_haproxy_map map,
                             const char *lines, size_t len);

/* Rewrites the map file atomically (temp file, fsync, rename) with
 * content, so that the next start of HAProxy loads it. Writers of one map
 * are serialised. */
int edge_haproxy_map_write(edge_haproxy *h, enum edge_haproxy_map map,
                           const char *content, size_t len);

/* ------------------------------------------------------------ ACME HTTP-01 */

/* /.well-known/acme-challenge/<token> answered by HAProxy itself from the
 * challenge map via http-request return (text/plain). token is base64url
 * (at most 256 bytes); key_authorization is token "." thumbprint. The map
 * file is rewritten too, and the challenges are put back after a restart
 * of HAProxy before any callback runs. */
int edge_haproxy_challenge_set(edge_haproxy *h, const char *token,
                               const char *key_authorization);
int edge_haproxy_challenge_del(edge_haproxy *h, const char *token);

/* ------------------------------------------------------------ certificates */

/* pem holds the chain then the private key; stored 0600 under
 * dir/certs/<domain>.pem and installed at runtime with new ssl cert / set
 * ssl cert / commit ssl cert / add ssl crt-list (or replaced in place when
 * it exists), no reload; certs.list is rewritten so that a restart loads
 * it. domain is a lower-case host name (no wildcard). Returns 0,
 * BERTH_EINVAL (bad domain, or a PEM HAProxy refuses: nothing changed),
 * BERTH_EUNAVAIL (HAProxy is down: the file is in place and loads at its
 * next start) or another berth code. */
int edge_haproxy_cert_install(edge_haproxy *h, const char *domain,
                              const char *pem);

/* del ssl crt-list / del ssl cert, deletes the file and its line in
 * certs.list. A certificate that is not there is not an error. */
int edge_haproxy_cert_remove(edge_haproxy *h, const char *domain);

/* HAProxy's reload count, for tests: must stay 0. Ours: the master CLI's
 * "show proc" reloads of the master. An external HAProxy: how many times
 * its worker pid changed while the edge watched. Returns 0 and *n, or a
 * berth code. */
int edge_haproxy_reloads(edge_haproxy *h, long *n);

#endif
