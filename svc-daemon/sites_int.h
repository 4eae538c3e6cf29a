/* sites_int.h - what sites.c (table, events, supervisor thread, status),
 * sites_ops.c (operations and commands) and sites_sync.c (adoption and
 * reconcile) share. Not for other modules.
 *
 * Locking. sup->mu guards the table and every field of a site marked
 * "mu" below; it is never held across a Docker or bus call. site->op
 * serialises the operations on one site (a command, an automatic restart,
 * a reconcile step) and is held across their Docker calls; take op before
 * mu, never the other way round. A site is freed when its last reference
 * goes (site_put).
 */
#ifndef BERTH_DAEMON_SITES_INT_H
#define BERTH_DAEMON_SITES_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/js.h"
#include "site.pb-c.h"
#include "svc-daemon/ledger.h"
#include "svc-daemon/sites.h"

#define SITE_ID_MAX       64
#define SITE_REASON_MAX   256
#define SITE_STATUS_QUEUE 8 /* unpublished changes kept per site */
#define SITES_MAX         4096

typedef Berth__V1__SiteSpec site_spec;

typedef struct site {
    char id[SITE_ID_MAX];
    int refs; /* mu */
    pthread_mutex_t op;

    /* mu */
    site_spec *spec; /* owned; replaced whole, never edited in place */
    char container[DAEMON_DOCKER_ID_MAX]; /* "" when none */
    bool tty;
    int state; /* BERTH__V1__SITE_STATE__* */
    int exit_code;
    bool oom;
    char reason[SITE_REASON_MAX];
    char ip[48];
    bool expect_stop;       /* the next exit is one we asked for */
    bool gave_up;           /* crashed past the restart policy */
    uint32_t restarts;      /* automatic restarts since the last start */
    int64_t window_start;   /* mono ms of the first restart in the window */
    uint32_t window_count;
    int64_t restart_at;     /* mono ms of a due automatic restart, 0: none */
    int64_t last_op_wall;   /* wall ms of the last command applied */
    int64_t start_wall_ns;  /* when the daemon last started it: a "die"
                               from before belongs to an earlier run */
    bool publishing;        /* a thread is draining the queue */
    bool deleting;          /* a delete or re-create runs: the container's
                               destroy is expected */
    bool removed;           /* no longer in the table */

    /* Status changes not yet published, oldest first (mu). */
    Berth__V1__SiteStatus queue[SITE_STATUS_QUEUE];
    char queue_reason[SITE_STATUS_QUEUE][SITE_REASON_MAX];
    int nqueue;
} site;

struct daemon_sites {
    bus *bus;
    daemon_docker *docker;
    daemon_console *console;
    daemon_stats *stats;
    char node[SITE_ID_MAX];
    char *data_dir;
    char *sites_dir;   /* <data>/sites: specs */
    char *volumes_dir; /* <data>/volumes: site data */
    int reconcile_ms;
    int backoff_ms;
    bool remove_orphans;
    daemon_ledger *ledger; /* the command worker's */

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the supervisor's */
    site **table;        /* mu */
    int nsites;
    bool reconcile_now;  /* mu */
    bool resync_now;     /* mu: look at every container again */
    bool stopping;       /* mu */

    atomic_bool stop_events;
    pthread_t events_thread;
    pthread_t super_thread;
    bool threads;
    bus_js_worker *worker;
    int64_t last_event_ns; /* events thread */
    uint64_t reconnects;   /* supervisor thread: nats.c's count */
    natsStatistics *nstats; /* read into by the start and supervisor threads */
};

/* A running operation: the command being worked (NULL otherwise), whose
 * ack timer is reset while the operation waits. */
typedef struct site_op {
    bus_msg *cmd;
    int64_t resume_ms; /* wall ms the command began when redone, else 0 */
    char error[512];   /* the sentence of a failure */
} site_op;

/* ---- sites.c: table, states, status */
site *site_get(daemon_sites *s, const char *id);   /* +1 ref or NULL */
site *site_add(daemon_sites *s, const char *id);   /* +1 ref or NULL */
void site_put(daemon_sites *s, site *st);
void site_remove(daemon_sites *s, site *st);       /* from the table */
/* Takes a reference on every site, for walks outside the lock. Returns the
 * array (release with sites_snapshot_put()) and its length in *n. */
site **sites_snapshot(daemon_sites *s, int *n);
void sites_snapshot_put(daemon_sites *s, site **all, int n);
/* Records a state change (mu held) and queues its status. */
void site_set_state(daemon_sites *s, site *st, int state, const char *reason);
void sites_wake(daemon_sites *s);
/* Publishes st's queued status changes now (what fails stays queued). */
void site_publish(daemon_sites *s, site *st);
site_spec *site_spec_dup(const site_spec *spec);   /* NULL: ENOMEM */
void site_spec_free(site_spec *spec);
/* A copy of st's spec (mu taken here); caller frees. */
site_spec *site_spec_get(daemon_sites *s, site *st);
const char *site_state_name(int state);

/* ---- sites_ops.c: operations (op held by the caller) */
int site_op_create(daemon_sites *s, site *st, const site_spec *spec,
                   bool start, const char *command_id, site_op *op);
int site_op_start(daemon_sites *s, site *st, bool user, site_op *op);
int site_op_stop(daemon_sites *s, site *st, bool kill, site_op *op);
int site_op_restart(daemon_sites *s, site *st, site_op *op);
int site_op_delete(daemon_sites *s, site *st, bool purge, site_op *op);
int site_spec_save(daemon_sites *s, const site_spec *spec);
/* Sets should_run in st's spec and on disk. */
void site_set_should_run(daemon_sites *s, site *st, bool run);
int sites_commands_start(daemon_sites *s);
/* Sets op->error and returns rc. */
int site_op_fail(site_op *op, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- sites_sync.c: adoption and reconcile */
int sites_load(daemon_sites *s);          /* specs from disk */
void sites_adopt(daemon_sites *s);        /* containers from Docker */
void sites_reconcile(daemon_sites *s);    /* node.sync with the panel */

#endif
