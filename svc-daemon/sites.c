/* sites.c - the site table, states driven by Docker's events, automatic
 * restarts and status publishing (see sites.h and sites_int.h).
 *
 *   site.status.<node>.<site>   SiteStatus (JetStream, EVENTS)
 *
 * Threads: the events thread follows Docker's /events and turns them into
 * states; the supervisor thread publishes status changes, runs due
 * automatic restarts and the periodic reconcile; the command worker
 * (sites_ops.c) runs commands.
 */
#include "svc-daemon/sites.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "svc-daemon/sites_int.h"

#define SUPER_TICK_MS          250
#define STATUS_PUBLISH_WAIT_MS 2000
#define EVENTS_BACKOFF_MAX_MS  5000
#define RESTART_BACKOFF_MAX_MS 30000
#define RESTART_MAX_DEFAULT    3
#define RESTART_WINDOW_DEFAULT 60 /* seconds */

/* ------------------------------------------------------------ specs */

site_spec *site_spec_dup(const site_spec *spec)
{
    size_t len = protobuf_c_message_get_packed_size(&spec->base);
    uint8_t *data = malloc(len > 0 ? len : 1);
    site_spec *copy;

    if (data == NULL)
        return NULL;
    protobuf_c_message_pack(&spec->base, data);
    copy = berth__v1__site_spec__unpack(NULL, len, data);
    free(data);
    return copy;
}

void site_spec_free(site_spec *spec)
{
    if (spec != NULL)
        berth__v1__site_spec__free_unpacked(spec, NULL);
}

site_spec *site_spec_get(daemon_sites *s, site *st)
{
    site_spec *copy = NULL;

    pthread_mutex_lock(&s->mu);
    if (st->spec != NULL)
        copy = site_spec_dup(st->spec);
    pthread_mutex_unlock(&s->mu);
    return copy;
}

const char *site_state_name(int state)
{
    switch (state) {
    case BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE:
        return "offline";
    case BERTH__V1__SITE_STATE__SITE_STATE_STARTING:
        return "starting";
    case BERTH__V1__SITE_STATE__SITE_STATE_RUNNING:
        return "running";
    case BERTH__V1__SITE_STATE__SITE_STATE_STOPPING:
        return "stopping";
    case BERTH__V1__SITE_STATE__SITE_STATE_CRASHED:
        return "crashed";
    case BERTH__V1__SITE_STATE__SITE_STATE_MISSING:
        return "missing";
    case BERTH__V1__SITE_STATE__SITE_STATE_DELETED:
        return "deleted";
    default:
        return "unknown";
    }
}

/* ------------------------------------------------------------ table */

static void site_free(site *st)
{
    site_spec_free(st->spec);
    pthread_mutex_destroy(&st->op);
    free(st);
}

static site *find_locked(daemon_sites *s, const char *id)
{
    int i;

    for (i = 0; i < s->nsites; i++) {
        if (strcmp(s->table[i]->id, id) == 0)
            return s->table[i];
    }
    return NULL;
}

site *site_get(daemon_sites *s, const char *id)
{
    site *st;

    pthread_mutex_lock(&s->mu);
    st = find_locked(s, id);
    if (st != NULL)
        st->refs++;
    pthread_mutex_unlock(&s->mu);
    return st;
}

site *site_add(daemon_sites *s, const char *id)
{
    site *st;

    if (id == NULL || id[0] == '\0' || strlen(id) >= SITE_ID_MAX ||
        !bus_token_valid(id))
        return NULL;
    pthread_mutex_lock(&s->mu);
    st = find_locked(s, id);
    if (st != NULL) {
        st->refs++;
        goto out;
    }
    if (s->nsites >= SITES_MAX)
        goto out;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        goto out;
    snprintf(st->id, sizeof(st->id), "%s", id);
    pthread_mutex_init(&st->op, NULL);
    st->state = BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE;
    st->refs = 2; /* the table's and the caller's */
    s->table[s->nsites++] = st;
out:
    pthread_mutex_unlock(&s->mu);
    return st;
}

void site_put(daemon_sites *s, site *st)
{
    int last;

    if (st == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    last = --st->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        site_free(st);
}

void site_remove(daemon_sites *s, site *st)
{
    int i, last = 0;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nsites; i++) {
        if (s->table[i] == st) {
            s->table[i] = s->table[--s->nsites];
            st->removed = true;
            last = --st->refs == 0;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (last)
        site_free(st);
}

site **sites_snapshot(daemon_sites *s, int *n)
{
    site **all;
    int i;

    pthread_mutex_lock(&s->mu);
    all = malloc(sizeof(*all) * (size_t)(s->nsites > 0 ? s->nsites : 1));
    *n = 0;
    if (all != NULL) {
        for (i = 0; i < s->nsites; i++) {
            all[i] = s->table[i];
            all[i]->refs++;
        }
        *n = s->nsites;
    }
    pthread_mutex_unlock(&s->mu);
    return all;
}

void sites_snapshot_put(daemon_sites *s, site **all, int n)
{
    int i;

    for (i = 0; i < n; i++)
        site_put(s, all[i]);
    free(all);
}

void sites_wake(daemon_sites *s)
{
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

int daemon_sites_running(daemon_sites *s)
{
    int i, n = 0;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nsites; i++)
        n += s->table[i]->state == BERTH__V1__SITE_STATE__SITE_STATE_RUNNING;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ------------------------------------------------------------ status */

void site_set_state(daemon_sites *s, site *st, int state, const char *reason)
{
    Berth__V1__SiteStatus init = BERTH__V1__SITE_STATUS__INIT;
    Berth__V1__SiteStatus *q;
    int k;

    st->state = state;
    snprintf(st->reason, sizeof(st->reason), "%s", reason != NULL ? reason : "");
    if (st->nqueue == SITE_STATUS_QUEUE) {
        /* NATS has been away for a while: the oldest change goes (the
         * second oldest when the oldest is being published right now). */
        int drop = st->publishing ? 1 : 0;
        memmove(&st->queue[drop], &st->queue[drop + 1],
                sizeof(st->queue[0]) * (size_t)(SITE_STATUS_QUEUE - 1 - drop));
        memmove(&st->queue_reason[drop], &st->queue_reason[drop + 1],
                sizeof(st->queue_reason[0]) *
                    (size_t)(SITE_STATUS_QUEUE - 1 - drop));
        st->nqueue--;
    }
    k = st->nqueue++;
    q = &st->queue[k];
    *q = init;
    q->state = state;
    q->exit_code = st->exit_code;
    q->oom_killed = st->oom;
    q->restarts = st->restarts;
    q->at_ms = clock_wall_ms();
    snprintf(st->queue_reason[k], SITE_REASON_MAX, "%s", st->reason);
    log_info("site state", "site=%s state=%s reason=%s", st->id,
             site_state_name(state), st->reason);
    pthread_cond_signal(&s->wake);
}

/* Publishes the queued changes of st, oldest first; what NATS does not
 * take stays queued for the next tick. */
void site_publish(daemon_sites *s, site *st)
{
    Berth__V1__SiteStatus m;
    char reason[SITE_REASON_MAX], container[DAEMON_DOCKER_ID_MAX];
    char upstream[80] = "", subject[200];
    int rc;

    snprintf(subject, sizeof(subject), "site.status.%s.%s", s->node, st->id);
    pthread_mutex_lock(&s->mu);
    if (st->publishing) {
        /* Another thread drains this queue, in order. */
        pthread_mutex_unlock(&s->mu);
        return;
    }
    st->publishing = true;
    while (st->nqueue > 0) {
        m = st->queue[0];
        memcpy(reason, st->queue_reason[0], sizeof(reason));
        memcpy(container, st->container, sizeof(container));
        if (st->ip[0] != '\0' && st->spec != NULL && st->spec->http_port != 0)
            snprintf(upstream, sizeof(upstream), "%s:%u", st->ip,
                     st->spec->http_port);
        pthread_mutex_unlock(&s->mu);

        m.site_id = st->id;
        m.node_id = s->node;
        m.reason = reason;
        m.container_id = container;
        m.upstream = m.state == BERTH__V1__SITE_STATE__SITE_STATE_RUNNING
                         ? upstream
                         : "";
        rc = bus_js_publish(s->bus, subject, &m.base, NULL,
                            STATUS_PUBLISH_WAIT_MS);
        pthread_mutex_lock(&s->mu);
        if (rc != 0)
            break; /* stays queued for the next tick */
        st->nqueue--;
        memmove(&st->queue[0], &st->queue[1],
                sizeof(st->queue[0]) * (size_t)st->nqueue);
        memmove(&st->queue_reason[0], &st->queue_reason[1],
                sizeof(st->queue_reason[0]) * (size_t)st->nqueue);
    }
    st->publishing = false;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ events */

/* The running container's pid and address, for stats and the upstream. */
static void on_started(daemon_sites *s, site *st, const char *container)
{
    daemon_docker_state ds;
    daemon_docker_err err;
    bool tty;

    if (daemon_docker_container_inspect(s->docker, container, &ds, &err) != 0) {
        log_warn("inspect after start failed", "site=%s error=%s", st->id,
                 err.message);
        return;
    }
    pthread_mutex_lock(&s->mu);
    snprintf(st->ip, sizeof(st->ip), "%s", ds.ip);
    tty = st->tty;
    pthread_mutex_unlock(&s->mu);
    if (!ds.running)
        return;
    if (s->stats != NULL)
        daemon_stats_track(s->stats, st->id, container, ds.pid,
                           (uint64_t)ds.memory_limit);
    /* Containers started by the daemon were attached before; one started
     * by someone else (docker start) is attached now. */
    if (!daemon_console_attached(s->console, st->id))
        daemon_console_attach(s->console, st->id, container, tty);
}

/* Decides what an exit the daemon did not ask for means (mu held).
 * Returns the delay before an automatic restart, or -1 for none. */
static int64_t crash_policy(daemon_sites *s, site *st, int64_t now)
{
    const Berth__V1__RestartPolicy *p = st->spec != NULL ? st->spec->restart : NULL;
    int mode = p != NULL ? (int)p->mode : 0;
    uint32_t max = p != NULL && p->max_restarts > 0 ? p->max_restarts
                                                     : RESTART_MAX_DEFAULT;
    int64_t window = 1000LL * (p != NULL && p->window_seconds > 0
                                   ? p->window_seconds
                                   : RESTART_WINDOW_DEFAULT);
    bool failed = st->exit_code != 0 || st->oom;
    const char *why = st->oom ? "killed: out of memory" : "exited";
    int64_t delay;

    if (mode == BERTH__V1__RESTART_POLICY__MODE__MODE_UNSPECIFIED)
        mode = BERTH__V1__RESTART_POLICY__MODE__MODE_ON_FAILURE;
    if (mode == BERTH__V1__RESTART_POLICY__MODE__MODE_NEVER ||
        (mode == BERTH__V1__RESTART_POLICY__MODE__MODE_ON_FAILURE && !failed)) {
        snprintf(st->reason, sizeof(st->reason), "%s with code %d", why,
                 st->exit_code);
        return -1;
    }
    if (st->window_count == 0 || now - st->window_start > window) {
        st->window_start = now;
        st->window_count = 0;
    }
    if (st->window_count >= max) {
        st->gave_up = true;
        snprintf(st->reason, sizeof(st->reason),
                 "%s with code %d; restarted %u times in %lld s, giving up",
                 why, st->exit_code, st->window_count,
                 (long long)(window / 1000));
        return -1;
    }
    delay = (int64_t)s->backoff_ms << (st->window_count < 5 ? st->window_count : 5);
    if (delay > RESTART_BACKOFF_MAX_MS)
        delay = RESTART_BACKOFF_MAX_MS;
    st->window_count++;
    snprintf(st->reason, sizeof(st->reason),
             "%s with code %d; restarting in %lld ms", why, st->exit_code,
             (long long)delay);
    return delay;
}

static void on_died(daemon_sites *s, site *st, const char *container,
                    int exit_code, int64_t time_ns)
{
    daemon_docker_state ds;
    bool oom = false;
    int64_t delay;
    char reason[SITE_REASON_MAX];

    if (daemon_docker_container_inspect(s->docker, container, &ds, NULL) == 0)
        oom = ds.oom_killed;
    pthread_mutex_lock(&s->mu);
    if (strcmp(st->container, container) != 0 ||
        (time_ns != 0 && time_ns < st->start_wall_ns)) {
        /* An exit from before the last start: the stop that caused it
         * is over and the site runs again. */
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->stats != NULL)
        daemon_stats_untrack(s->stats, st->id); /* takes its own lock */
    st->exit_code = exit_code;
    st->oom = st->oom || oom;
    st->ip[0] = '\0';
    if (st->expect_stop) {
        st->expect_stop = false;
        snprintf(reason, sizeof(reason), "stopped (exit code %d)", exit_code);
        site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, reason);
        pthread_mutex_unlock(&s->mu);
        daemon_console_notice(s->console, st->id, "site stopped (exit code %d)",
                              exit_code);
        return;
    }
    delay = crash_policy(s, st, clock_mono_ms());
    snprintf(reason, sizeof(reason), "%s", st->reason);
    st->restart_at = delay >= 0 ? clock_mono_ms() + delay : 0;
    site_set_state(s, st,
                   exit_code == 0 && !st->oom && delay < 0
                       ? BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE
                       : BERTH__V1__SITE_STATE__SITE_STATE_CRASHED,
                   reason);
    pthread_mutex_unlock(&s->mu);
    daemon_console_notice(s->console, st->id, "site %s", reason);
}

static int on_event(const daemon_docker_event *ev, void *arg)
{
    daemon_sites *s = arg;
    site *st;
    bool ours;

    if (ev->time_ns != 0 && ev->time_ns <= s->last_event_ns)
        return 0; /* seen before the stream was resumed */
    if (ev->time_ns != 0)
        s->last_event_ns = ev->time_ns;
    st = ev->site[0] != '\0' ? site_get(s, ev->site) : NULL;
    if (st == NULL) {
        log_debug("docker event for no known site", "action=%s container=%.12s",
                  ev->action, ev->id);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    ours = strcmp(st->container, ev->id) == 0;
    pthread_mutex_unlock(&s->mu);
    if (!ours) {
        site_put(s, st);
        return 0; /* a container the site had before */
    }
    log_debug("docker event", "site=%s action=%s exit_code=%d", st->id,
              ev->action, ev->exit_code);
    if (strcmp(ev->action, "start") == 0) {
        /* The address first, so the status carries the upstream. */
        on_started(s, st, ev->id);
        pthread_mutex_lock(&s->mu);
        st->expect_stop = false;
        if (strcmp(st->container, ev->id) == 0)
            site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING,
                           "");
        pthread_mutex_unlock(&s->mu);
    } else if (strcmp(ev->action, "oom") == 0) {
        pthread_mutex_lock(&s->mu);
        st->oom = true;
        pthread_mutex_unlock(&s->mu);
    } else if (strcmp(ev->action, "die") == 0) {
        on_died(s, st, ev->id, ev->exit_code, ev->time_ns);
    } else if (strcmp(ev->action, "destroy") == 0) {
        pthread_mutex_lock(&s->mu);
        if (strcmp(st->container, ev->id) == 0 && !st->removed &&
            !st->deleting) {
            st->container[0] = '\0';
            st->restart_at = 0;
            site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_MISSING,
                           "the container was removed outside berth");
            s->reconcile_now = true;
        }
        pthread_mutex_unlock(&s->mu);
    }
    site_put(s, st);
    return 0;
}

static void *events_main(void *arg)
{
    daemon_sites *s = arg;
    daemon_docker_err err;
    int backoff = 250, rc;
    bool down = false;

    while (!atomic_load(&s->stop_events)) {
        int64_t since = s->last_event_ns / 1000000000LL;

        rc = daemon_docker_events(s->docker, s->node, since, on_event, s,
                                  &s->stop_events, &err);
        if (atomic_load(&s->stop_events))
            break;
        if (!down)
            log_warn("docker events stream ended; reconnecting", "error=%s",
                     rc != 0 ? err.message : "closed");
        down = true;
        clock_sleep_ms(backoff);
        backoff = backoff * 2 > EVENTS_BACKOFF_MAX_MS ? EVENTS_BACKOFF_MAX_MS
                                                      : backoff * 2;
        if (daemon_docker_api_version(s->docker, (char[16]){0}, NULL) == 0) {
            /* Docker answers again: what happened meanwhile may not be in
             * its event log (it restarted), so look at every container. */
            log_info("docker is back; resynchronising", "node=%s", s->node);
            pthread_mutex_lock(&s->mu);
            s->resync_now = true;
            pthread_cond_signal(&s->wake);
            pthread_mutex_unlock(&s->mu);
            backoff = 250;
            down = false;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ supervisor */

/* Runs the automatic restart of st when it is due. */
static void restart_due(daemon_sites *s, site *st, int64_t now)
{
    site_op op = {0};
    bool due;

    pthread_mutex_lock(&s->mu);
    due = st->restart_at != 0 && st->restart_at <= now;
    pthread_mutex_unlock(&s->mu);
    if (!due)
        return;
    pthread_mutex_lock(&st->op);
    pthread_mutex_lock(&s->mu);
    due = st->restart_at != 0 && st->restart_at <= now && !st->removed &&
          st->state == BERTH__V1__SITE_STATE__SITE_STATE_CRASHED;
    st->restart_at = 0;
    if (due)
        st->restarts++;
    pthread_mutex_unlock(&s->mu);
    if (due && site_op_start(s, st, false, &op) != 0)
        log_warn("automatic restart failed", "site=%s error=%s", st->id,
                 op.error);
    pthread_mutex_unlock(&st->op);
}

/* nats.c's reconnect count (0 when it cannot be read), into the one
 * statistics object the supervisor keeps. */
static uint64_t nats_reconnects(daemon_sites *s)
{
    uint64_t n = 0;

    if (s->nstats == NULL && natsStatistics_Create(&s->nstats) != NATS_OK)
        return 0;
    if (natsConnection_GetStats(bus_nats(s->bus), s->nstats) == NATS_OK)
        natsStatistics_GetCounts(s->nstats, NULL, NULL, NULL, NULL, &n);
    return n;
}

static void *super_main(void *arg)
{
    daemon_sites *s = arg;
    int64_t now, next_reconcile = 0;
    struct timespec ts;
    site **all;
    int i, n;
    bool reconcile, resync, stop;
    uint64_t rec;

    for (;;) {
        now = clock_mono_ms();
        rec = nats_reconnects(s);
        pthread_mutex_lock(&s->mu);
        if (rec != s->reconnects) {
            s->reconnects = rec;
            s->reconcile_now = true; /* events may have been missed */
        }
        reconcile = s->reconcile_now || now >= next_reconcile;
        resync = s->resync_now;
        s->reconcile_now = false;
        s->resync_now = false;
        stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (resync)
            sites_adopt(s);
        if (reconcile) {
            sites_reconcile(s);
            next_reconcile = clock_mono_ms() + s->reconcile_ms;
        }
        all = sites_snapshot(s, &n);
        for (i = 0; i < n; i++) {
            restart_due(s, all[i], clock_mono_ms());
            site_publish(s, all[i]);
        }
        sites_snapshot_put(s, all, n);

        pthread_mutex_lock(&s->mu);
        if (!s->stopping && !s->reconcile_now && !s->resync_now) {
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += SUPER_TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->wake, &s->mu, &ts);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* ------------------------------------------------------------ life */

int daemon_sites_new(const daemon_sites_cfg *cfg, daemon_sites **out)
{
    daemon_sites *s;
    char path[4200];
    int rc;

    *out = NULL;
    if (cfg->data_dir == NULL || cfg->data_dir[0] != '/' ||
        cfg->node_id == NULL || strlen(cfg->node_id) >= SITE_ID_MAX)
        return BERTH_EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BERTH_ENOMEM;
    s->bus = cfg->bus;
    s->docker = cfg->docker;
    s->console = cfg->console;
    s->stats = cfg->stats;
    snprintf(s->node, sizeof(s->node), "%s", cfg->node_id);
    s->reconcile_ms = cfg->reconcile_ms > 0 ? cfg->reconcile_ms : 60000;
    s->backoff_ms = cfg->restart_backoff_ms > 0 ? cfg->restart_backoff_ms : 1000;
    s->remove_orphans = cfg->remove_orphans;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    atomic_init(&s->stop_events, false);
    s->data_dir = strdup(cfg->data_dir);
    s->table = calloc(SITES_MAX, sizeof(*s->table));
    if (s->data_dir == NULL || s->table == NULL ||
        asprintf(&s->sites_dir, "%s/sites", cfg->data_dir) < 0 ||
        asprintf(&s->volumes_dir, "%s/volumes", cfg->data_dir) < 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = fs_mkdirs(s->sites_dir, 0700);
    if (rc == 0)
        rc = fs_mkdirs(s->volumes_dir, 0755);
    if (rc != 0) {
        log_error("cannot create the site directories", "dir=%s error=%s",
                  cfg->data_dir, berth_strerror(rc));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/commands.log", cfg->data_dir);
    rc = daemon_ledger_open(path, 0, &s->ledger);
    if (rc != 0) {
        log_error("cannot open the command ledger", "path=%s error=%s", path,
                  berth_strerror(rc));
        goto out;
    }
    rc = sites_load(s);
    if (rc != 0)
        goto out;
    *out = s;
    s = NULL;
out:
    daemon_sites_free(s);
    return rc;
}

int daemon_sites_start(daemon_sites *s)
{
    int rc;

    s->reconnects = nats_reconnects(s);
    sites_adopt(s);
    if (pthread_create(&s->events_thread, NULL, events_main, s) != 0)
        return BERTH_ENOMEM;
    if (pthread_create(&s->super_thread, NULL, super_main, s) != 0) {
        atomic_store(&s->stop_events, true);
        pthread_join(s->events_thread, NULL);
        return BERTH_ENOMEM;
    }
    s->threads = true;
    rc = sites_commands_start(s);
    if (rc != 0)
        log_error("command consumer failed to start", "error=%s",
                  berth_strerror(rc));
    return rc;
}

void daemon_sites_free(daemon_sites *s)
{
    int i;

    if (s == NULL)
        return;
    bus_js_stop(s->worker);
    if (s->threads) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        atomic_store(&s->stop_events, true);
        pthread_join(s->super_thread, NULL);
        pthread_join(s->events_thread, NULL);
    }
    for (i = 0; s->table != NULL && i < s->nsites; i++)
        site_free(s->table[i]);
    free(s->table);
    daemon_ledger_close(s->ledger);
    natsStatistics_Destroy(s->nstats);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s->sites_dir);
    free(s->volumes_dir);
    free(s->data_dir);
    free(s);
}
