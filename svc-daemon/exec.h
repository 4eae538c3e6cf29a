/* exec.h - shell sessions: processes started inside a site's container
 * with Docker exec, their bytes relayed over the bus.
 *
 *   daemon_exec *x;
 *
 *   rc = daemon_exec_new(&(daemon_exec_cfg){.bus = b, .docker = d,
 *                                           .node_id = id}, &x);
 *   ...                            berth-shell opens sessions on the bus
 *   daemon_exec_free(x);           before the bus is closed
 *
 * Opening. shell.open.<node> (ShellOpen -> ShellOpened) starts
 * ShellOpen.command (empty: a login shell, bash when the image has
 * /bin/bash, else /bin/sh -l) in the container berth-<site>, working
 * directory /data, with TERM=xterm-256color for a TTY plus the request's
 * env. The reply comes once Docker created and started the exec and the
 * upgraded connection is up; the session's output may be published before
 * it. Errors: BERTH_EINVAL (fields, see exec.md), BERTH_ENOENT (no such
 * site on this node), BERTH_ECONFLICT (the site is not running),
 * BERTH_EEXIST (the session id is in use), BERTH_ETOOBIG (max_per_site or
 * max_sessions reached), or Docker's failure (BERTH_EUNAVAIL ...).
 *
 * Streams, per session (the session id is a UUID chosen by the shell):
 *
 *   shell.out.<node>.<session>     ShellData, published: output (stderr
 *                                  apart, with stderr set, when there is
 *                                  no TTY), input window grants, then
 *                                  eof; seq 1, 2, 3 ... over all of them
 *   shell.exit.<node>.<session>    ShellExit, published once at the end
 *   shell.in.<node>.<session>      ShellData, subscribed: stdin bytes,
 *                                  output window grants, eof, keepalive
 *   shell.resize.<node>.<session>  ShellResize, subscribed
 *   shell.exit.<node>.<session>    ShellExit, subscribed: end the session
 *
 * Flow control. Each side may have at most `window` bytes (cfg, 1 MiB)
 * outstanding in each direction and gives credit back with
 * ShellData.window. Output: the daemon reads the exec's connection only
 * while the shell's credit lasts, so a fast producer blocks on its pipe
 * and nothing piles up here. Input: the shell's bytes are written to
 * stdin, and every window/4 bytes written are granted back on shell.out.
 * Input beyond the window ends the session ("input beyond the window").
 *
 * End. When the process's output ends: ShellData eof, then ShellExit with
 * the exit code from Docker (-1 when unknown) and reason "" (or "site
 * stopped" / "site deleted" when the container went away). A ShellExit
 * from the shell, or no message from it for session_timeout_ms (reason
 * "shell gone"), closes the connection and kills the process (SIGHUP,
 * SIGKILL 2 s later), then ShellExit is published the same way.
 *
 * Threads: handlers run on nats.c's threads and only queue work; one I/O
 * thread owns the connections (epoll) and publishes shell.out; one worker
 * thread makes the blocking Docker calls of resizes and ends and
 * publishes shell.exit. Any function here may be called from any thread.
 */
#ifndef BERTH_DAEMON_EXEC_H
#define BERTH_DAEMON_EXEC_H

#include <stddef.h>

#include "bus/bus.h"
#include "svc-daemon/docker.h"

#define DAEMON_EXEC_WINDOW_DEFAULT   (1024u * 1024)
#define DAEMON_EXEC_TIMEOUT_DEFAULT  60000 /* ms without a word from the shell */
#define DAEMON_EXEC_PER_SITE_DEFAULT 64
#define DAEMON_EXEC_TOTAL_DEFAULT    512

typedef struct daemon_exec daemon_exec;

/* The strings are copied; docker and bus must outlive the module. */
typedef struct daemon_exec_cfg {
    bus *bus;
    daemon_docker *docker;
    const char *node_id;       /* a subject token */
    const char *sock_path;     /* Docker's socket; NULL: the default */
    int session_timeout_ms;    /* 0: DAEMON_EXEC_TIMEOUT_DEFAULT */
    size_t window;             /* 0: DAEMON_EXEC_WINDOW_DEFAULT [16 MiB] */
    unsigned max_per_site;     /* 0: DAEMON_EXEC_PER_SITE_DEFAULT */
    unsigned max_sessions;     /* 0: DAEMON_EXEC_TOTAL_DEFAULT */
} daemon_exec_cfg;

/* Starts the I/O and worker threads, subscribes shell.in/resize/exit of
 * the node and serves shell.open.<node>. Returns 0 and *out, BERTH_EINVAL
 * without a bus, a Docker client or a valid node id, or another berth
 * code. */
int daemon_exec_new(const daemon_exec_cfg *cfg, daemon_exec **out);

/* Ends every session as a terminated one (reason "daemon stopping", the
 * processes killed; waits up to 5 s for that), stops the threads and
 * frees x. Call it before the bus is closed. NULL is a no-op. */
void daemon_exec_free(daemon_exec *x);

/* The number of sessions open or ending. */
unsigned daemon_exec_count(daemon_exec *x);

#endif
