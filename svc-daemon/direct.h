/* direct.h - the daemon's direct server: browsers reach a site's console
 * and files here, with a token the panel signed, without the panel
 * carrying the bytes.
 *
 *   daemon_direct *d;
 *
 *   rc = daemon_direct_new(&(daemon_direct_cfg){.bus = b, .node_id = id,
 *                                               .console = c, .sites = s,
 *                                               .files = f, .addr = addr,
 *                                               ...}, &d);
 *   ...
 *   daemon_direct_free(d);
 *
 * One HTTP/1.1 and websocket server (libwebsockets) on addr, with TLS when
 * a certificate and key are given:
 *
 *   GET  /health                     no token: {"ok","node","version",...}
 *   GET  /sites/<site>/console       websocket: replay, live output,
 *                                    status, stats; input, power
 *   *    /sites/<site>/files/<op>    list, stat, read, download, write,
 *                                    upload, create, mkdir, rename, copy,
 *                                    delete, chmod, compress, extract
 *
 * docs/internals/direct.md holds the protocol: routes, parameters, the
 * websocket messages, status codes, limits.
 *
 * Tokens. Every request but /health carries a token from the panel's
 * POST /sites/:id/tokens, verified here offline with the panel's Ed25519
 * public key: signature, expiry, typ "direct", node (this one), site (the
 * URL's), scope ("console" for the websocket, "files" for the rest) and the
 * permission the operation needs. The key comes from the bus (panel.pubkey)
 * at start and every pubkey_refresh_ms, and is kept in
 * <data_dir>/panel.pubkey so a daemon that starts while the panel is down
 * still verifies. A token that starts a transfer (read, download, write,
 * upload) is spent: its id is remembered until it expires and a second
 * transfer with it is refused.
 *
 * Browsers. Origin, when a request carries one, must be panel_origin
 * (websocket upgrades and file requests alike); file responses carry the
 * CORS headers for it and preflight requests are answered. Without a
 * panel_origin every origin is accepted (and the start-up log says so).
 *
 * Threads: one loop thread owns every connection; a small pool of worker
 * threads runs the file operations that may block (listing, copying,
 * deleting trees, archives) and power actions; streamed transfers run on
 * the loop thread. The public key thread fetches the key. Bus handlers
 * (status, stats, revocations) and the console's watcher post to the loop.
 */
#ifndef BERTH_DAEMON_DIRECT_H
#define BERTH_DAEMON_DIRECT_H

#include <stdint.h>

#include "bus/bus.h"
#include "svc-daemon/console.h"
#include "svc-daemon/files.h"
#include "svc-daemon/sites.h"

#define DAEMON_DIRECT_ADDR_DEFAULT "0.0.0.0:8443"

#define DAEMON_DIRECT_UPLOAD_MAX_DEFAULT   (16ull << 30) /* 16 GiB */
#define DAEMON_DIRECT_EXTRACT_MAX_DEFAULT  (4ull << 30)  /* 4 GiB */
#define DAEMON_DIRECT_EXTRACT_ENTRIES_DEFAULT 100000
#define DAEMON_DIRECT_PUBKEY_REFRESH_DEFAULT (10 * 60 * 1000)

typedef struct daemon_direct daemon_direct;

/* Strings are copied; bus, console, sites and files must outlive the
 * server. sites may be NULL (no status, no power actions), console too (no
 * console). */
typedef struct daemon_direct_cfg {
    bus *bus;
    const char *node_id;
    const char *version;      /* for /health */
    const char *data_dir;     /* <data_dir>/panel.pubkey: the key's cache */
    daemon_console *console;
    daemon_sites *sites;
    daemon_files *files;
    const char *addr;         /* "host:port", "[v6]:port", ":port" */
    const char *tls_cert;     /* PEM files; both or neither */
    const char *tls_key;
    const char *panel_origin; /* "https://panel.example.com"; NULL or "":
                                 any origin */
    uint64_t upload_max;      /* 0: DAEMON_DIRECT_UPLOAD_MAX_DEFAULT */
    uint64_t extract_max;     /* 0: DAEMON_DIRECT_EXTRACT_MAX_DEFAULT */
    uint32_t extract_entries; /* 0: DAEMON_DIRECT_EXTRACT_ENTRIES_DEFAULT */
    int workers;              /* 0: 4 */
    int idle_timeout_s;       /* a request or transfer silent this long
                                 is cut; 0: 30 */
    int pubkey_refresh_ms;    /* 0: DAEMON_DIRECT_PUBKEY_REFRESH_DEFAULT */
} daemon_direct_cfg;

/* Listens on cfg->addr, loads the cached public key, starts the loop, the
 * workers and the key thread, subscribes to the site events of this node.
 * Returns 0 and *out (free with daemon_direct_free()), BERTH_EINVAL (bad
 * address, node id, TLS pair, origin), BERTH_EBUSY (the port is taken),
 * BERTH_EIO (listen or TLS set-up failed; logged) or BERTH_ENOMEM. */
int daemon_direct_new(const daemon_direct_cfg *cfg, daemon_direct **out);

/* The port listened on (cfg->addr may ask for port 0). */
int daemon_direct_port(const daemon_direct *d);

/* Stops the loop, closes every connection (consoles get a close frame),
 * joins the threads and frees d. Call it before the bus, console, sites
 * and files are freed. NULL is a no-op. */
void daemon_direct_free(daemon_direct *d);

#endif
