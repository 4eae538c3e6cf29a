/* harness.h - real processes for integration tests: ports, temp dirs,
 * child processes, nats-server, one-shot commands.
 *
 * Integration and end-to-end tests start the real binaries (nats-server, the
 * berth services, the nats CLI) and look at what they do. This module owns
 * the plumbing they share:
 *
 *   h_nats nats;
 *   h_proc panel;
 *   char *const argv[] = {(char *)h_bin("berth-panel"), NULL};
 *   char env[96], log[PATH_MAX];
 *
 *   ck_assert_int_eq(h_nats_start(&nats), 0);
 *   snprintf(env, sizeof(env), "BERTH_NATS_URL=%s", nats.url);
 *   snprintf(log, sizeof(log), "%s/panel.log", nats.dir);
 *   ck_assert_int_eq(h_proc_start(&panel, "panel", argv,
 *                                 (char *const[]){env, NULL}, log), 0);
 *   ck_assert_int_eq(h_proc_wait_log(&panel, "msg=ready", 5000), 0);
 *   ...
 *   ck_assert_int_eq(h_proc_stop(&panel, SIGTERM, 5000), 0);
 *   h_proc_free(&panel);
 *   h_nats_stop(&nats);
 *
 * Conventions. Functions return 0 (or a documented non-negative value) on
 * success and a negative BERTH_E* code on failure, after printing one line
 * that starts with "harness:" to stderr; those lines ignore the log level so
 * a failing test always says why. Every wait takes a timeout in
 * milliseconds. Every descriptor is opened O_CLOEXEC, so children never
 * inherit another child's pipes.
 *
 * Children. Each child runs in its own process group (signals go to the
 * whole group, so a shell script and what it started stop together), starts
 * with an empty signal mask and SIGPIPE at its default, reads /dev/null
 * unless given input, and gets PR_SET_PDEATHSIG(SIGKILL): when the thread
 * that started it dies (a crashed test, a failed ck_assert in check's forked
 * test process), the child is killed too. Start processes from the test's
 * main thread, not from a short-lived helper thread. Every child is reaped
 * by the harness; none is left a zombie, provided SIGCHLD is not ignored.
 *
 * Thread safety: h_bin() and h_nats_cli() may be called from any thread;
 * the rest works on caller-owned handles, one thread per handle.
 */
#ifndef BERTH_TESTS_HARNESS_H
#define BERTH_TESTS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"

/* ---------------------------------------------------------------- messages */

/* Prints "harness: <message>\n" to stderr in one write, whatever the log
 * level, so a failing test always shows the reason (see Conventions). */
__attribute__((format(printf, 1, 2))) void h_say(const char *fmt, ...);

/* ---------------------------------------------------------------- files */

/* Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to port
 * 0, read it back, close), or a negative berth code. Another process may
 * take it before the caller does; h_nats_start() retries for that reason. */
int h_free_port(void);

/* Creates a fresh directory "$TMPDIR/berth-<tag>-XXXXXX" (TMPDIR unset or
 * empty: /tmp), mode 0700. Returns its path, which the caller frees with
 * free(), or NULL after printing why. */
char *h_tempdir(const char *tag);

/* Removes path and everything under it without following symbolic links.
 * Refuses "", "/" and NULL. Errors are printed, not returned. */
void h_rmtree(const char *path);

/* Removes dir (from h_tempdir()) as h_rmtree() does and frees it; when
 * BERTH_KEEP_TEST_DIRS is set, keeps it and prints "kept <what> dir
 * <dir>" instead. NULL is a no-op. */
void h_tempdir_drop(char *dir, const char *what);

/* Returns the size of path in bytes, 0 when it does not exist. Used as the
 * offset for h_wait_log_from() before restarting a process whose log is
 * appended to. */
off_t h_file_size(const char *path);

/* Polls log_path (every 20 ms) until it contains needle. The file may not
 * exist yet. Returns 0, or BERTH_ETIMEDOUT after timeout_ms. */
int h_wait_log(const char *log_path, const char *needle, int timeout_ms);

/* Same, considering only the bytes from offset on. */
int h_wait_log_from(const char *log_path, off_t offset, const char *needle,
                    int timeout_ms);

/* Copies the last max_bytes of path to stderr between marker lines, so a
 * failing test shows what a process said. Missing files are reported. */
void h_log_tail(const char *path, size_t max_bytes);

/* ---------------------------------------------------------------- processes */

/* A child process. The caller owns the struct (usually on the stack); the
 * fields are set by h_proc_start() and read-only afterwards. name and
 * log_path are copies owned by the handle and released by h_proc_free(). */
typedef struct h_proc {
    pid_t pid;      /* also the process group id; 0 when never started */
    char *name;     /* for messages: "nats", "panel" */
    char *log_path; /* NULL when the child inherited our stdout/stderr */
    off_t _log_start; /* size of log_path when this start began */
    int _status;      /* h_proc_stop()-style status once reaped */
    int _reaped;      /* 1 once waitpid() collected the child */
} h_proc;

/* Starts argv[0] (a path, or a name searched in PATH) with argv. env_extra
 * holds "K=V" strings that are added to (or replace in) the current
 * environment; NULL means none. When log_path is not NULL, stdout and stderr
 * are appended to it (created 0644, parents not created); otherwise they are
 * inherited. stdin is /dev/null.
 *
 * p is overwritten: a handle that was started before must be passed to
 * h_proc_free() first. On failure p is left empty (safe for h_proc_free).
 * Returns 0 once the program has been exec'd, BERTH_ENOENT when it is not
 * found or not executable, or another berth code. */
int h_proc_start(h_proc *p, const char *name, char *const argv[],
                 char *const env_extra[], const char *log_path);

/* Sends sig to the child's process group, waits up to timeout_ms for the
 * child to exit, then sends SIGKILL (and reaps). Returns:
 *
 *   0..255   the exit code (WEXITSTATUS) when it exited
 *   128+N    when signal N ended it (so SIGTERM without a handler is 143)
 *   -1       H_PROC_KILLED: it outlived the timeout and was SIGKILLed
 *
 * A child that had already exited is reaped and its status returned; calling
 * it again on a reaped handle returns the same status. BERTH_ENOENT for a
 * handle that was never started. The handle still owns name and log_path:
 * call h_proc_free() when done (the log stays readable until then). */
#define H_PROC_KILLED (-1)
int h_proc_stop(h_proc *p, int sig, int timeout_ms);

/* Waits up to timeout_ms for the child to exit by itself, without sending
 * anything. Returns the status as h_proc_stop() does, or BERTH_ETIMEDOUT
 * (the child keeps running). */
int h_proc_wait(h_proc *p, int timeout_ms);

/* Returns 1 while the child runs, 0 once it exited (it is reaped then). */
int h_proc_alive(h_proc *p);

/* SIGKILLs the child's process group and reaps the child. For crash tests;
 * a no-op on a handle that is not running. */
void h_proc_kill9(h_proc *p);

/* Kills the child if it is still running (SIGKILL), reaps it and releases
 * name and log_path; the log file itself is kept. Leaves p empty. Safe on a
 * zeroed or already freed handle. */
void h_proc_free(h_proc *p);

/* Like h_wait_log() on p->log_path from the point this start began (so a
 * restarted process is not satisfied by its previous run's lines), but
 * returns BERTH_EUNAVAIL early, after printing the log's tail, when the
 * child exits first. BERTH_EINVAL when p has no log file. */
int h_proc_wait_log(h_proc *p, const char *needle, int timeout_ms);

/* Polls a TCP connect to 127.0.0.1:port until it is accepted. Returns 0 or
 * BERTH_ETIMEDOUT. */
int h_wait_port(int port, int timeout_ms);

/* ---------------------------------------------------------------- servers */

/* Starts a server process (nats-server, postgres) on the port its handle
 * holds and waits until it is ready. Returns 0, BERTH_EUNAVAIL when the
 * server exited during start-up (most likely another process took the
 * port), or another berth code. */
typedef int (*h_spawn_fn)(void *arg);

/* Runs spawn(arg) up to attempts times, each on a fresh h_free_port()
 * stored in *port first, while it returns BERTH_EUNAVAIL; name is for the
 * messages. Returns spawn's last result or h_free_port()'s error. */
int h_server_start(h_spawn_fn spawn, void *arg, int *port, const char *name,
                   int attempts);

/* Runs spawn(arg) again on the same port, up to attempts times 200 ms
 * apart while it returns BERTH_EUNAVAIL (a slow release of the listener).
 * Returns spawn's last result, after printing why when it is not 0. */
int h_server_restart(h_spawn_fn spawn, void *arg, int port, const char *name,
                     int attempts);

/* ---------------------------------------------------------------- nats */

/* A nats-server with JetStream. The caller owns the struct; h_nats_start()
 * fills every field, dir is owned by the handle. */
typedef struct h_nats {
    h_proc proc;
    int port;
    char *dir;     /* temp dir: js/ is the store, nats.log the log */
    char url[64];  /* "nats://127.0.0.1:PORT" */
} h_nats;

/* Starts nats-server (env BERTH_NATS_SERVER, else PATH, else /usr/sbin)
 * on a free port of 127.0.0.1 with JetStream stored under a new temp dir,
 * logging to dir/nats.log, and waits until the port accepts connections and
 * the server logged "Server is ready" (JetStream is up by then). n is
 * overwritten. Returns 0, or a berth code after cleaning everything up and
 * printing the log's tail. */
int h_nats_start(h_nats *n);

/* Stops the server (SIGINT, its clean shutdown that exits 0; SIGKILL after
 * 5 s) and starts it again on the same port with the same store, so
 * JetStream streams, consumers and KV buckets survive. Waits for readiness
 * as h_nats_start() does. n->proc is a new process afterwards. */
int h_nats_restart(h_nats *n);

/* Stops the server (as above) and removes dir, unless BERTH_KEEP_TEST_DIRS is set (the
 * kept path is printed then). Safe on a zeroed or already stopped handle. */
void h_nats_stop(h_nats *n);

/* ---------------------------------------------------------------- commands */

/* Runs argv to completion. stdin_data (stdin_len bytes) is fed to its stdin,
 * which is then closed; NULL gives /dev/null. stdout and stderr are both
 * appended, in the order written, to out (NULL: discarded). The buf keeps its
 * own cap; output past it is read and dropped. After timeout_ms the whole
 * process group is SIGKILLed.
 *
 * Returns the exit status as h_proc_stop() reports it (0..255, 128+signal),
 * or BERTH_ETIMEDOUT, BERTH_ETOOBIG (out overflowed; the child still ran to
 * the end), BERTH_ENOENT (program not found) or another berth code. Pipes
 * are served with poll(), so large inputs and outputs cannot deadlock. */
int h_run(char *const argv[], const void *stdin_data, size_t stdin_len,
          buf *out, int timeout_ms);

/* Same with stderr kept apart: out receives stdout (NULL: discarded), err
 * receives stderr (NULL: inherited, so it shows in the test's output). When
 * err == out both streams share one pipe, as in h_run(). */
int h_run2(char *const argv[], const void *stdin_data, size_t stdin_len,
           buf *out, buf *err, int timeout_ms);

/* ---------------------------------------------------------------- paths */

/* Returns the path of a built binary: "$BERTH_BIN_DIR/name" when that is
 * set, else "<repo>/build/bin/name" where <repo> is the nearest directory
 * holding Makefile and tests/harness/ found walking up from the current
 * directory, then from the test binary's own location; "build/bin/name"
 * when neither finds it. The string is cached and valid for the life of the
 * process. Existence is not checked. */
const char *h_bin(const char *name);

/* Returns the path of the nats CLI: env BERTH_NATS_CLI, else `nats` in PATH,
 * else /usr/local/bin/nats or ~/.local/bin/nats when executable; NULL when
 * none is found (tests then skip what needs it). Cached for the process. */
const char *h_nats_cli(void);

/* Opens a bus named name on url and waits up to 5 s for the connection;
 * exits the process with a message when it cannot (a test or benchmark
 * cannot go on without it). Free with bus_close(). (hbus.c) */
struct bus *h_bus_open(const char *url, const char *name);

#endif
