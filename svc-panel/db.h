/* db.h - the panel's PostgreSQL: a small pool of libpq connections,
 * prepared statements declared in one table, transactions, migrations.
 *
 * Every query binds its parameters (text format); no SQL is ever built
 * from input. A connection is borrowed with db_acquire() for one unit of
 * work (a handler, a transaction) and given back with db_release(); a
 * connection found broken is reset on release, and the pool reconnects by
 * itself when PostgreSQL returns. While PostgreSQL is unreachable,
 * db_acquire() fails fast with BERTH_EUNAVAIL (callers answer 503).
 *
 * Threads: the pool is shared; a borrowed db_conn belongs to the borrowing
 * thread until released.
 */
#ifndef BERTH_PANEL_DB_H
#define BERTH_PANEL_DB_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct db_pool db_pool;
typedef struct db_conn db_conn;

/* Opens up to size connections to dsn (lazily, at least one at once) and
 * applies the migrations found in sql_dir (files NNN_name.sql, in order,
 * each in its own transaction, recorded in schema_migrations). Refuses with
 * BERTH_ECONFIG when the database has a migration newer than any in sql_dir.
 * Returns 0 and a pool freed with db_close(). */
int db_open(db_pool **out, const char *dsn, int size, const char *sql_dir);
void db_close(db_pool *p);

/* Borrows a connection, waiting up to timeout_ms for a free one. Returns
 * BERTH_EUNAVAIL when PostgreSQL cannot be reached, BERTH_ETIMEDOUT when
 * every connection stays busy. */
int db_acquire(db_pool *p, int timeout_ms, db_conn **out);
void db_release(db_pool *p, db_conn *c);

/* Runs the prepared statement `name` (from the statement table in db.c)
 * with nparams text parameters (NULL = SQL NULL). On success returns 0 and
 * *res (caller frees with PQclear). Errors: BERTH_EEXIST for a unique
 * violation, BERTH_EINVAL for a check/foreign-key/invalid-text violation,
 * BERTH_EUNAVAIL when the connection is lost, BERTH_EIO otherwise. */
int db_exec(db_conn *c, const char *name, int nparams,
            const char *const *params, PGresult **res);

/* db_exec for statements whose result rows are not needed; *affected (may
 * be NULL) receives the number of rows changed. */
int db_run(db_conn *c, const char *name, int nparams,
           const char *const *params, long *affected);

/* One statement on a connection borrowed for it alone (waiting up to
 * timeout_ms for one): db_exec / db_run without the acquire and release
 * around them. Same results and errors, plus db_acquire()'s. */
int db_query(db_pool *p, int timeout_ms, const char *name, int nparams,
             const char *const *params, PGresult **res);
int db_query_run(db_pool *p, int timeout_ms, const char *name, int nparams,
                 const char *const *params, long *affected);

int db_begin(db_conn *c);
int db_commit(db_conn *c);
void db_rollback(db_conn *c);

/* The constraint named by the last error (for 409 messages), or "". */
const char *db_last_constraint(db_conn *c);

/* Pool figures for /metrics. */
void db_stats(db_pool *p, int *size, int *busy, long *errors);

/* The number of the newest migration applied. */
int db_schema_version(db_pool *p);

#endif
