/* pg.c - a private PostgreSQL for tests: template cluster, start, stop,
 * restart, fresh databases.
 *
 * Layout: the binaries and the user they run as, the command
 * vector (setpriv prefix when root), the per-process template, then the
 * h_pg functions.
 *
 * The template is one initdb'ed cluster with the berth database, built
 * once per process under a mutex and copied (cp -a) for every server; the
 * process that built it removes it at exit. A forked test process reuses
 * its parent's template, which stays on disk while the parent lives.
 */
#include "tests/harness/pg.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/err.h"

#define H_PG_INITDB_MS 120000   /* initdb on a slow disk */
#define H_PG_READY_MS 30000     /* server start-up (crash recovery included) */
#define H_PG_STOP_MS 10000      /* fast shutdown before SIGKILL */
#define H_PG_ATTEMPTS 3         /* port races retried by h_pg_start() */
#define H_PG_OUT_MAX 65536      /* output kept from initdb and friends */
#define H_PG_TAIL_BYTES 4096    /* log tail printed when a start fails */
#define H_PG_ARGS 48            /* entries in a command vector */
#define H_PG_SOCK_MAX 107       /* sun_path, minus the terminator */
#define H_PG_READY "database system is ready to accept connections"

/* ---------------------------------------------------------------- binaries */

/* What every command needs: where the binaries are and whom they run as.
 * Filled once under tpl.mu. */
typedef struct pg_env {
    int ready;
    char bindir[PATH_MAX];
    int as_user; /* 1: we are root and switch to uid/gid */
    uid_t uid;
    gid_t gid;
} pg_env;

static int is_exec(const char *dir, const char *name)
{
    char path[PATH_MAX];

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return 0;
    return access(path, X_OK) == 0;
}

/* Finds the directory holding postgres and initdb: $BERTH_PG_BINDIR, the
 * newest /usr/lib/postgresql/N/bin, then PATH. */
static int find_bindir(char *dst, size_t size)
{
    const char *env = getenv("BERTH_PG_BINDIR");
    const char *path = getenv("PATH");
    glob_t g = {0};
    long best = -1;
    size_t i;
    int rc = BERTH_ENOENT;

    if (env != NULL && env[0] != '\0') {
        if (is_exec(env, "postgres") && is_exec(env, "initdb") &&
            snprintf(dst, size, "%s", env) < (int)size)
            return 0;
        h_say("BERTH_PG_BINDIR=%s holds no postgres and initdb", env);
        return BERTH_ENOENT;
    }
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0) {
        for (i = 0; i < g.gl_pathc; i++) {
            const char *v = g.gl_pathv[i] + strlen("/usr/lib/postgresql/");
            long n = strtol(v, NULL, 10);
            char dir[PATH_MAX];
            int len = (int)(strrchr(g.gl_pathv[i], '/') - g.gl_pathv[i]);

            snprintf(dir, sizeof(dir), "%.*s", len, g.gl_pathv[i]);
            if (n > best && is_exec(dir, "initdb") &&
                snprintf(dst, size, "%s", dir) < (int)size) {
                best = n;
                rc = 0;
            }
        }
    }
    globfree(&g);
    if (rc == 0 || path == NULL)
        return rc;
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        char dir[PATH_MAX];

        if (n > 0 && n < sizeof(dir)) {
            memcpy(dir, path, n);
            dir[n] = '\0';
            if (is_exec(dir, "postgres") && is_exec(dir, "initdb") &&
                snprintf(dst, size, "%s", dir) < (int)size)
                return 0;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return BERTH_ENOENT;
}

static int env_load(pg_env *e)
{
    const char *user = getenv("BERTH_PG_USER");
    struct passwd pw;
    struct passwd *res = NULL;
    char pwbuf[4096];
    int rc;

    if (e->ready)
        return 0;
    rc = find_bindir(e->bindir, sizeof(e->bindir));
    if (rc != 0) {
        h_say("PostgreSQL not found (install postgresql or set "
               "BERTH_PG_BINDIR)");
        return rc;
    }
    if (geteuid() == 0) {
        if (user == NULL || user[0] == '\0')
            user = "postgres";
        if (getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &res) != 0 ||
            res == NULL) {
            h_say("running as root, and there is no user %s to run "
                   "PostgreSQL as (set BERTH_PG_USER)", user);
            return BERTH_ENOENT;
        }
        if (pw.pw_uid == 0) {
            h_say("BERTH_PG_USER=%s is root; PostgreSQL refuses root", user);
            return BERTH_EINVAL;
        }
        e->as_user = 1;
        e->uid = pw.pw_uid;
        e->gid = pw.pw_gid;
    }
    e->ready = 1;
    return 0;
}

/* Gives path to the user PostgreSQL runs as (a no-op unless root). */
static int give(const pg_env *e, const char *path)
{
    if (!e->as_user)
        return 0;
    if (chown(path, e->uid, e->gid) != 0) {
        h_say("chown %s: %s", path, strerror(errno));
        return berth_err_from_errno(errno);
    }
    return 0;
}

/* ---------------------------------------------------------------- commands */

/* A command vector for one PostgreSQL binary, behind setpriv when root.
 * The strings it points to live in the struct or are the caller's. */
typedef struct pg_cmd {
    char *argv[H_PG_ARGS];
    int argc;
    int overflow;
    char prog[PATH_MAX];
    char reuid[32];
    char regid[32];
} pg_cmd;

static void cmd_add(pg_cmd *c, const char *arg)
{
    if (c->argc >= H_PG_ARGS - 1) {
        c->overflow = 1;
        return;
    }
    c->argv[c->argc++] = (char *)arg;
    c->argv[c->argc] = NULL;
}

static void cmd_init(pg_cmd *c, const pg_env *e, const char *prog)
{
    memset(c, 0, sizeof(*c));
    if (snprintf(c->prog, sizeof(c->prog), "%s/%s", e->bindir, prog) >=
        (int)sizeof(c->prog))
        c->overflow = 1;
    if (e->as_user) {
        snprintf(c->reuid, sizeof(c->reuid), "--reuid=%lu",
                 (unsigned long)e->uid);
        snprintf(c->regid, sizeof(c->regid), "--regid=%lu",
                 (unsigned long)e->gid);
        cmd_add(c, "setpriv");
        cmd_add(c, c->reuid);
        cmd_add(c, c->regid);
        cmd_add(c, "--init-groups");
        /* A change of credentials clears the parent-death signal the
         * harness set; keep it, so the server dies with the test. */
        cmd_add(c, "--pdeathsig=keep");
        cmd_add(c, "--");
    }
    cmd_add(c, c->prog);
}

/* Runs c to completion; 0 when it exited 0, else prints its output. */
static int cmd_run(pg_cmd *c, const char *what, const char *input)
{
    buf out;
    int st;
    int rc = 0;

    buf_init(&out, H_PG_OUT_MAX);
    if (c->overflow) {
        h_say("%s: too many arguments", what);
        rc = BERTH_EINTERNAL;
        goto out;
    }
    st = h_run(c->argv, input, input != NULL ? strlen(input) : 0, &out,
               H_PG_INITDB_MS);
    if (st == BERTH_ETOOBIG)
        st = 0; /* chatty, not failed */
    if (st != 0 || (out.data != NULL && strstr(out.data, "ERROR:") != NULL)) {
        h_say("%s failed (status %d):\n%s", what, st,
               out.data != NULL ? out.data : "");
        rc = st < 0 ? st : BERTH_EIO;
    }
out:
    buf_free(&out);
    return rc;
}

/* ---------------------------------------------------------------- template */

static struct {
    pthread_mutex_t mu;
    pg_env env;
    char *dir;     /* holds data/, a stopped cluster with database berth */
    pid_t owner;   /* the process that built dir and removes it */
    int at_exit;   /* remove_template registered */
} tpl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void remove_template(void)
{
    if (tpl.dir != NULL && tpl.owner == getpid())
        h_rmtree(tpl.dir);
}

static int template_build(void)
{
    char data[PATH_MAX];
    char *dir = NULL;
    pg_cmd cmd;
    int rc;

    dir = h_tempdir("pgtpl");
    if (dir == NULL) {
        rc = BERTH_EIO;
        goto out;
    }
    rc = give(&tpl.env, dir);
    if (rc != 0)
        goto out;
    snprintf(data, sizeof(data), "%s/data", dir);
    cmd_init(&cmd, &tpl.env, "initdb");
    cmd_add(&cmd, "-D");
    cmd_add(&cmd, data);
    cmd_add(&cmd, "--no-sync");
    cmd_add(&cmd, "--auth=trust");
    cmd_add(&cmd, "--username=postgres");
    cmd_add(&cmd, "--encoding=UTF8");
    cmd_add(&cmd, "--locale=C");
    cmd_add(&cmd, "--wal-segsize=1");
    rc = cmd_run(&cmd, "initdb", NULL);
    if (rc != 0)
        goto out;
    /* The single-user backend creates the database without a server. */
    cmd_init(&cmd, &tpl.env, "postgres");
    cmd_add(&cmd, "--single");
    cmd_add(&cmd, "-D");
    cmd_add(&cmd, data);
    cmd_add(&cmd, "-F");
    cmd_add(&cmd, "postgres");
    rc = cmd_run(&cmd, "create database berth", "CREATE DATABASE berth;\n");
    if (rc != 0)
        goto out;
    tpl.dir = dir;
    tpl.owner = getpid();
    dir = NULL;
    if (!tpl.at_exit && atexit(remove_template) == 0)
        tpl.at_exit = 1;
out:
    if (dir != NULL) {
        h_rmtree(dir);
        free(dir);
    }
    return rc;
}

int h_pg_init(void)
{
    struct stat st;
    char data[PATH_MAX];
    int rc;

    pthread_mutex_lock(&tpl.mu);
    rc = env_load(&tpl.env);
    if (rc != 0)
        goto out;
    if (tpl.dir != NULL) {
        snprintf(data, sizeof(data), "%s/data/PG_VERSION", tpl.dir);
        if (stat(data, &st) == 0)
            goto out;
        /* The parent that built it has gone; build our own. */
        free(tpl.dir);
        tpl.dir = NULL;
    }
    rc = template_build();
out:
    pthread_mutex_unlock(&tpl.mu);
    return rc;
}

/* ---------------------------------------------------------------- h_pg */

/* Starts the postmaster of pg->dir on pg->port and waits until it accepts
 * connections (an h_spawn_fn). On failure pg->proc is stopped and freed;
 * BERTH_EUNAVAIL means the server exited during start-up (most likely a
 * lost port). */
static int pg_spawn(void *arg)
{
    h_pg *pg = arg;
    char data[PATH_MAX];
    char log[PATH_MAX];
    char port[16];
    pg_cmd cmd;
    int rc;

    snprintf(data, sizeof(data), "%s/data", pg->dir);
    snprintf(log, sizeof(log), "%s/postgres.log", pg->dir);
    snprintf(port, sizeof(port), "%d", pg->port);
    cmd_init(&cmd, &tpl.env, "postgres");
    cmd_add(&cmd, "-D");
    cmd_add(&cmd, data);
    cmd_add(&cmd, "-p");
    cmd_add(&cmd, port);
    cmd_add(&cmd, "-h");
    cmd_add(&cmd, "127.0.0.1");
    cmd_add(&cmd, "-k");
    cmd_add(&cmd, pg->dir);
    cmd_add(&cmd, "-F"); /* fsync=off */
    cmd_add(&cmd, "-c");
    cmd_add(&cmd, "synchronous_commit=off");
    cmd_add(&cmd, "-c");
    cmd_add(&cmd, "full_page_writes=off");
    cmd_add(&cmd, "-c");
    cmd_add(&cmd, "max_connections=100");
    cmd_add(&cmd, "-c");
    cmd_add(&cmd, "shared_buffers=32MB");
    if (cmd.overflow) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    rc = h_proc_start(&pg->proc, "postgres", cmd.argv, NULL, log);
    if (rc != 0)
        goto out;
    rc = h_proc_wait_log(&pg->proc, H_PG_READY, H_PG_READY_MS);
    if (rc != 0)
        goto out;
    rc = h_wait_port(pg->port, H_PG_READY_MS);
out:
    if (rc != 0 && pg->proc.pid > 0) {
        h_proc_stop(&pg->proc, SIGQUIT, 2000);
        h_proc_free(&pg->proc);
    }
    return rc;
}

int h_pg_start(h_pg *pg)
{
    char data[PATH_MAX];
    int rc;

    memset(pg, 0, sizeof(*pg));
    rc = h_pg_init();
    if (rc != 0)
        goto out;
    pg->dir = h_tempdir("pg");
    if (pg->dir == NULL) {
        rc = BERTH_EIO;
        goto out;
    }
    if (strlen(pg->dir) + strlen("/.s.PGSQL.65535") > H_PG_SOCK_MAX) {
        h_say("postgres: %s is too long for a unix socket path (TMPDIR)",
               pg->dir);
        rc = BERTH_EINVAL;
        goto out;
    }
    rc = give(&tpl.env, pg->dir);
    if (rc != 0)
        goto out;
    snprintf(data, sizeof(data), "%s/data", tpl.dir);
    {
        char *const argv[] = {"cp", "-a", data, pg->dir, NULL};
        pg_cmd cp = {.argc = 0};

        memcpy(cp.argv, argv, sizeof(argv));
        rc = cmd_run(&cp, "copy the template cluster", NULL);
    }
    if (rc != 0)
        goto out;
    rc = h_server_start(pg_spawn, pg, &pg->port, "postgres", H_PG_ATTEMPTS);
    if (rc != 0)
        goto out;
    snprintf(pg->dsn, sizeof(pg->dsn),
             "host=127.0.0.1 port=%d dbname=berth user=postgres", pg->port);
out:
    if (rc != 0) {
        h_say("postgres did not start (%s)", berth_strerror(rc));
        h_pg_destroy(pg);
    }
    return rc;
}

int h_pg_stop(h_pg *pg)
{
    int st;

    if (pg == NULL || pg->proc.pid <= 0)
        return 0;
    /* SIGINT is PostgreSQL's fast shutdown: sessions are ended, a
     * checkpoint written, exit 0. The backends lead their own process
     * groups, so the signal to ours reaches the postmaster only. */
    st = h_proc_stop(&pg->proc, SIGINT, H_PG_STOP_MS);
    h_proc_free(&pg->proc);
    if (st == 0)
        return 0;
    h_say("postgres on port %d stopped with status %d", pg->port, st);
    return st == H_PROC_KILLED ? BERTH_ETIMEDOUT : BERTH_EIO;
}

int h_pg_restart(h_pg *pg)
{
    int rc;

    if (pg->dir == NULL || pg->port <= 0) {
        h_say("postgres restart: the server was never started");
        return BERTH_EINVAL;
    }
    rc = h_pg_stop(pg);
    if (rc != 0 && rc != BERTH_ETIMEDOUT)
        return rc;
    /* The port was ours. */
    return h_server_restart(pg_spawn, pg, pg->port, "postgres", H_PG_ATTEMPTS);
}

void h_pg_destroy(h_pg *pg)
{
    if (pg == NULL)
        return;
    if (pg->proc.pid > 0)
        h_pg_stop(pg);
    h_proc_free(&pg->proc);
    h_tempdir_drop(pg->dir, "postgres");
    memset(pg, 0, sizeof(*pg));
}

int h_pg_createdb(h_pg *pg, const char *name, char *dsn, size_t size)
{
    char sql[128];
    PGconn *conn = NULL;
    PGresult *res = NULL;
    size_t i;
    int rc = 0;

    if (name == NULL || name[0] == '\0' || strlen(name) > 63) {
        rc = BERTH_EINVAL;
        goto out;
    }
    for (i = 0; name[i] != '\0'; i++) {
        char ch = name[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_')) {
            rc = BERTH_EINVAL;
            goto out;
        }
    }
    if (snprintf(dsn, size, "host=127.0.0.1 port=%d dbname=%s user=postgres",
                 pg->port, name) >= (int)size) {
        rc = BERTH_EINVAL;
        goto out;
    }
    conn = PQconnectdb(pg->dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        h_say("createdb %s: %s", name, PQerrorMessage(conn));
        rc = BERTH_EUNAVAIL;
        goto out;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        h_say("createdb %s: %s", name, PQerrorMessage(conn));
        rc = BERTH_EIO;
        goto out;
    }
out:
    if (rc == BERTH_EINVAL)
        h_say("createdb: bad database name \"%s\"", name ? name : "(null)");
    PQclear(res);
    PQfinish(conn);
    return rc;
}
