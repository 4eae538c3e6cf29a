/* server.h - berth-shell's SSH server: the listener, the handshake threads,
 * the event loops, and what arrives from the bus for open sessions.
 *
 *   shell_srv *srv;
 *
 *   rc = shell_server_start(&(shell_server_cfg){.bus = b, .addr = addr,
 *                                                .hostkey = key, ...}, &srv);
 *   ...
 *   shell_server_stop(srv);
 *
 * Each accepted TCP connection gets a short-lived handshake thread that
 * runs the key exchange and authentication in blocking mode (the password
 * or key goes to the panel with shell.auth, which takes as long as an
 * argon2id check), so a slow client or a slow panel holds up nobody else.
 * Once the user is in, the connection is handed to one of a few loop
 * threads, each running a libssh ssh_event over its connections and an
 * eventfd through which other threads wake it; from then on nothing on
 * that connection blocks: bus requests go to the job pool (jobs.c) and
 * come back as posts.
 *
 * The server subscribes to shell.out.*.* and shell.exit.*.* (output and
 * ends of the sessions it opened; others' are ignored) and to
 * access.revoked.* (closing the revoked user's sessions within a loop
 * tick).
 */
#ifndef BERTH_SHELL_SERVER_H
#define BERTH_SHELL_SERVER_H

#include <libssh/libssh.h>

#include "bus/bus.h"

typedef struct shell_srv shell_srv;

typedef struct shell_server_cfg {
    bus *bus;
    const char *data_dir;
    const char *addr;    /* "host:port", "[v6]:port" or ":port" */
    ssh_key hostkey;     /* taken over by the server */
    int loops;           /* event-loop threads */
    int workers;         /* threads running bus requests */
    int max_conns;       /* connections at once, handshakes included */
    int max_handshakes;  /* unauthenticated connections at once */
    int login_grace_ms;  /* time to authenticate */
} shell_server_cfg;

/* Binds, starts the threads and subscribes. Returns 0 and *out (stop with
 * shell_server_stop()), or a berth code (BERTH_EINVAL for a bad address,
 * BERTH_EIO when the port cannot be bound). The host key is freed on
 * failure too. */
int shell_server_start(const shell_server_cfg *cfg, shell_srv **out);

/* The TCP port listened on (useful with port 0). */
int shell_server_port(const shell_srv *s);

/* Stops accepting, closes every connection with a message (ending their
 * sessions on the bus) and waits for the threads. The bus must still be
 * open. NULL is a no-op. */
void shell_server_stop(shell_srv *s);

/* Frees the server after shell_server_stop() and after the bus has been
 * closed (its subscriptions call into the server until then). NULL is a
 * no-op. */
void shell_server_free(shell_srv *s);

#endif
