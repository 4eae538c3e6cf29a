/* pg.h - a private PostgreSQL for tests: its own data directory, a free
 * port on 127.0.0.1, a unix socket in its directory, a `berth` database.
 *
 *   h_pg pg;
 *
 *   ck_assert_int_eq(h_pg_start(&pg), 0);
 *   ... connect with pg.dsn ("host=127.0.0.1 port=N dbname=berth
 *       user=postgres", trust authentication) ...
 *   ck_assert_int_eq(h_pg_stop(&pg), 0);     outage: the port refuses
 *   ck_assert_int_eq(h_pg_restart(&pg), 0);  same port, same data
 *   h_pg_destroy(&pg);
 *
 * Speed. The first start in a process runs initdb (and creates the berth
 * database in single-user mode) into a template directory; every start
 * copies that template, so it costs a directory copy and the server's
 * start-up, about a tenth of a second. The template is removed when the
 * process that made it exits. check forks a process per test, so a suite
 * that starts a server per test calls h_pg_init() before forking (in
 * main() or make_suite()) to build the template once for all its tests.
 *
 * The server runs with fsync=off, synchronous_commit=off and
 * full_page_writes=off: fast, and not crash-safe, which tests do not need.
 *
 * Users. PostgreSQL refuses to run as root; when the test runs as root the
 * server, initdb and the single-user backend run as the `postgres` system
 * user (or $BERTH_PG_USER) through setpriv(1), which also keeps the
 * parent-death signal, so a crashed test leaves no server behind. Run as
 * another user, they run as that user. The binaries come from
 * $BERTH_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin, else PATH.
 *
 * Errors follow harness.h: 0 or a negative BERTH_E* code after a line
 * starting with "harness:" on stderr. One thread per handle; start servers
 * from the test's main thread (see harness.h, children).
 */
#ifndef BERTH_TESTS_HARNESS_PG_H
#define BERTH_TESTS_HARNESS_PG_H

#include <stddef.h>

#include "tests/harness/harness.h"

/* The caller owns the struct; h_pg_start() fills every field. dir belongs
 * to the handle: data/ is the cluster, postgres.log the server's log, and
 * the unix socket .s.PGSQL.<port> lives in it too. */
typedef struct h_pg {
    h_proc proc;   /* the postmaster; pid 0 while stopped */
    int port;
    char *dir;
    char dsn[256]; /* "host=127.0.0.1 port=N dbname=berth user=postgres" */
} h_pg;

/* Builds this process's template cluster if it does not exist yet.
 * Optional: h_pg_start() calls it. Thread-safe. Returns 0 or a berth code
 * (BERTH_ENOENT when PostgreSQL is not installed). */
int h_pg_init(void);

/* Starts a new server on a free port and waits until it accepts
 * connections. pg is overwritten. Returns 0, or a berth code after cleaning
 * up and printing the log's tail. */
int h_pg_start(h_pg *pg);

/* Stops the server (fast shutdown: SIGINT, SIGKILL after 10 s) and keeps
 * dir and port for h_pg_restart(). Returns 0 once it exited cleanly,
 * BERTH_ETIMEDOUT when it had to be killed, BERTH_EIO for another exit
 * status. A stopped handle returns 0. */
int h_pg_stop(h_pg *pg);

/* Stops the server when it runs and starts it again on the same port with
 * the same data. Returns 0 once it accepts connections again. */
int h_pg_restart(h_pg *pg);

/* Stops the server and removes dir, unless BERTH_KEEP_TEST_DIRS is set
 * (the kept path is printed then). Leaves pg empty; safe on a zeroed or
 * already destroyed handle. */
void h_pg_destroy(h_pg *pg);

/* Creates the empty database name (lower-case letters, digits and '_', at
 * most 63 characters) on a running server and writes its DSN into dsn
 * (size bytes). Lets a suite give every test a fresh database. */
int h_pg_createdb(h_pg *pg, const char *name, char *dsn, size_t size);

#endif
