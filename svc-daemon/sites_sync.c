/* sites_sync.c - what the daemon knows at start (specs on disk, labelled
 * containers in Docker) and the reconcile with the panel's desired state
 * (see sites.h).
 *
 *   node.sync.<node>   NodeSyncRequest -> NodeSyncReply (request)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "node.pb-c.h"
#include "svc-daemon/sites_int.h"

#define SYNC_TIMEOUT_MS 5000
#define SPEC_FILE_MAX   (1u << 20)

/* ------------------------------------------------------------ load */

static void load_one(daemon_sites *s, const char *file)
{
    char path[4200];
    char *data = NULL;
    size_t len = 0;
    site_spec *spec = NULL;
    site *st = NULL;

    snprintf(path, sizeof(path), "%s/%s", s->sites_dir, file);
    if (fs_read_file(path, SPEC_FILE_MAX, &data, &len) != 0)
        goto bad;
    spec = berth__v1__site_spec__unpack(NULL, len, (const uint8_t *)data);
    if (spec == NULL || strlen(file) != strlen(spec->id) + 3 ||
        strncmp(file, spec->id, strlen(spec->id)) != 0)
        goto bad;
    st = site_add(s, spec->id);
    if (st == NULL)
        goto bad;
    pthread_mutex_lock(&s->mu);
    site_spec_free(st->spec);
    st->spec = spec;
    st->tty = spec->tty;
    spec = NULL;
    pthread_mutex_unlock(&s->mu);
    site_put(s, st);
    free(data);
    return;
bad:
    log_warn("unreadable site spec ignored", "path=%s", path);
    site_spec_free(spec);
    free(data);
}

int sites_load(daemon_sites *s)
{
    DIR *dir = opendir(s->sites_dir);
    struct dirent *de;
    size_t n;
    int count = 0;

    if (dir == NULL) {
        log_error("cannot read the site specs", "dir=%s", s->sites_dir);
        return BERTH_EIO;
    }
    while ((de = readdir(dir)) != NULL) {
        n = strlen(de->d_name);
        if (n > 3 && strcmp(de->d_name + n - 3, ".pb") == 0) {
            load_one(s, de->d_name);
            count++;
        }
    }
    closedir(dir);
    log_info("site specs loaded", "count=%d", count);
    return 0;
}

/* ------------------------------------------------------------ adopt */

/* Takes st's container (ds) as it is found: running ones are attached,
 * stopped ones that should run are started. op held. */
static void adopt_one(daemon_sites *s, site *st, const daemon_docker_state *ds)
{
    site_op op = {0};
    char reason[SITE_REASON_MAX];
    bool should_run, tty;
    int was;

    pthread_mutex_lock(&s->mu);
    snprintf(st->container, sizeof(st->container), "%s", ds->id);
    st->tty = tty = ds->tty;
    snprintf(st->ip, sizeof(st->ip), "%s", ds->ip);
    should_run = st->spec != NULL && st->spec->should_run;
    was = st->state;
    if (ds->running) {
        st->expect_stop = false;
        if (was != BERTH__V1__SITE_STATE__SITE_STATE_RUNNING || st->nqueue == 0)
            site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING,
                           "adopted");
    } else if (was == BERTH__V1__SITE_STATE__SITE_STATE_RUNNING ||
               was == BERTH__V1__SITE_STATE__SITE_STATE_STARTING ||
               was == BERTH__V1__SITE_STATE__SITE_STATE_STOPPING ||
               !should_run) {
        st->exit_code = ds->exit_code;
        st->oom = ds->oom_killed;
        snprintf(reason, sizeof(reason), "found stopped (exit code %d%s)",
                 ds->exit_code, ds->oom_killed ? ", out of memory" : "");
        site_set_state(s, st,
                       ds->exit_code == 0 && !ds->oom_killed
                           ? BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE
                           : BERTH__V1__SITE_STATE__SITE_STATE_CRASHED,
                       reason);
    }
    pthread_mutex_unlock(&s->mu);
    if (ds->running) {
        daemon_console_attach(s->console, st->id, ds->id, tty);
        if (s->stats != NULL)
            daemon_stats_track(s->stats, st->id, ds->id, ds->pid,
                               (uint64_t)ds->memory_limit);
        return;
    }
    if (should_run && site_op_start(s, st, false, &op) != 0)
        log_warn("site that should run did not start", "site=%s error=%s",
                 st->id, op.error);
}

/* Sites kept on disk whose container is gone are made again from the
 * spec on disk, so a node runs its sites even while the panel is away. */
static void recreate_missing(daemon_sites *s)
{
    site_op op = {0};
    site_spec *spec;
    site **all;
    int i, n;
    bool missing;

    all = sites_snapshot(s, &n);
    for (i = 0; i < n; i++) {
        pthread_mutex_lock(&all[i]->op);
        pthread_mutex_lock(&s->mu);
        missing = all[i]->spec != NULL && all[i]->container[0] == '\0' &&
                  !all[i]->removed;
        if (missing)
            site_set_state(s, all[i], BERTH__V1__SITE_STATE__SITE_STATE_MISSING,
                           "no container on this node; creating it");
        pthread_mutex_unlock(&s->mu);
        spec = missing ? site_spec_get(s, all[i]) : NULL;
        if (spec != NULL &&
            site_op_create(s, all[i], spec, spec->should_run, NULL, &op) != 0)
            log_warn("cannot create a missing site's container", "site=%s "
                     "error=%s", all[i]->id, op.error);
        site_spec_free(spec);
        pthread_mutex_unlock(&all[i]->op);
    }
    sites_snapshot_put(s, all, n);
}

void sites_adopt(daemon_sites *s)
{
    daemon_docker_summary *list = NULL;
    daemon_docker_state ds;
    daemon_docker_err err;
    char label[128], name[DAEMON_DOCKER_NAME_MAX];
    size_t i, n = 0;
    site *st;

    snprintf(label, sizeof(label), "berth.node=%s", s->node);
    if (daemon_docker_container_list(s->docker, label, &list, &n, &err) != 0) {
        log_warn("cannot list the node's containers; adoption waits for "
                 "docker",
                 "error=%s", err.message);
        pthread_mutex_lock(&s->mu);
        s->resync_now = false;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    for (i = 0; i < n; i++) {
        if (list[i].site[0] == '\0')
            continue;
        snprintf(name, sizeof(name), "berth-%s", list[i].site);
        if (strcmp(list[i].name, name) != 0)
            continue; /* not the site's own container: a leftover */
        st = site_get(s, list[i].site);
        if (st == NULL) {
            log_warn("container of a site this node does not know; left alone",
                     "container=%s site=%s", list[i].name, list[i].site);
            continue;
        }
        pthread_mutex_lock(&st->op);
        if (daemon_docker_container_inspect(s->docker, list[i].id, &ds, &err) ==
            0)
            adopt_one(s, st, &ds);
        pthread_mutex_unlock(&st->op);
        site_put(s, st);
    }
    log_info("containers adopted", "count=%zu", n);
    free(list);
    recreate_missing(s);
}

/* ------------------------------------------------------------ reconcile */

/* Whether two specs ask for different containers (should_run aside). */
static bool spec_differs(const site_spec *a, const site_spec *b,
                         const char *node)
{
    site_spec *x = site_spec_dup(a), *y = site_spec_dup(b);
    size_t lx, ly;
    uint8_t *px = NULL, *py = NULL;
    bool differ = true;

    if (x == NULL || y == NULL)
        goto out;
    x->should_run = y->should_run = false;
    free(x->node_id);
    free(y->node_id);
    x->node_id = strdup(node);
    y->node_id = strdup(node);
    /* Names and domains do not change the container. */
    free(x->name);
    free(y->name);
    x->name = strdup("");
    y->name = strdup("");
    if (x->node_id == NULL || y->node_id == NULL || x->name == NULL ||
        y->name == NULL)
        goto out;
    lx = protobuf_c_message_get_packed_size(&x->base);
    ly = protobuf_c_message_get_packed_size(&y->base);
    px = malloc(lx + 1);
    py = malloc(ly + 1);
    if (px == NULL || py == NULL)
        goto out;
    protobuf_c_message_pack(&x->base, px);
    protobuf_c_message_pack(&y->base, py);
    differ = lx != ly || memcmp(px, py, lx) != 0;
out:
    free(px);
    free(py);
    site_spec_free(x);
    site_spec_free(y);
    return differ;
}

/* Brings one site in line with the panel's spec. op held. */
static void reconcile_one(daemon_sites *s, site *st, const site_spec *want,
                          int64_t generated_ms)
{
    site_op op = {0};
    site_spec *have;
    char container[DAEMON_DOCKER_ID_MAX];
    int64_t last_op;
    int state, rc = 0;
    bool gave_up, pending;

    have = site_spec_get(s, st);
    pthread_mutex_lock(&s->mu);
    snprintf(container, sizeof(container), "%s", st->container);
    last_op = st->last_op_wall;
    state = st->state;
    gave_up = st->gave_up;
    pending = st->restart_at != 0;
    pthread_mutex_unlock(&s->mu);
    if (last_op > generated_ms)
        goto out; /* a command came after the panel's answer was made */
    if (have == NULL || container[0] == '\0') {
        pthread_mutex_lock(&s->mu);
        site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_MISSING,
                       "no container on this node; creating it");
        pthread_mutex_unlock(&s->mu);
        rc = site_op_create(s, st, want, want->should_run, NULL, &op);
    } else if (spec_differs(have, want, s->node)) {
        log_info("site spec changed; re-creating its container", "site=%s",
                 st->id);
        rc = site_op_create(s, st, want, want->should_run, NULL, &op);
    } else if (want->should_run &&
               state != BERTH__V1__SITE_STATE__SITE_STATE_RUNNING &&
               state != BERTH__V1__SITE_STATE__SITE_STATE_STARTING &&
               !gave_up && !pending) {
        rc = site_op_start(s, st, true, &op);
    } else if (!want->should_run &&
               (state == BERTH__V1__SITE_STATE__SITE_STATE_RUNNING ||
                state == BERTH__V1__SITE_STATE__SITE_STATE_STARTING)) {
        rc = site_op_stop(s, st, false, &op);
        if (rc == 0)
            site_set_should_run(s, st, false);
    }
    if (rc != 0)
        log_warn("reconcile of a site failed", "site=%s error=%s", st->id,
                 op.error[0] ? op.error : berth_strerror(rc));
out:
    site_spec_free(have);
}

/* Sites this node has that the panel does not list. */
static void reconcile_orphans(daemon_sites *s,
                              const Berth__V1__NodeSyncReply *r)
{
    site **all;
    site_op op = {0};
    size_t j;
    int i, n = 0;
    bool known;

    pthread_mutex_lock(&s->mu);
    all = malloc(sizeof(*all) * (size_t)(s->nsites > 0 ? s->nsites : 1));
    for (i = 0; all != NULL && i < s->nsites; i++) {
        known = false;
        for (j = 0; j < r->n_sites && !known; j++)
            known = strcmp(r->sites[j]->id, s->table[i]->id) == 0;
        if (!known) {
            all[n] = s->table[i];
            all[n++]->refs++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    for (i = 0; i < n; i++) {
        if (!s->remove_orphans) {
            log_warn("site unknown to the panel; left alone "
                     "(BERTH_DAEMON_REMOVE_ORPHANS=1 removes it)",
                     "site=%s", all[i]->id);
        } else {
            log_warn("site unknown to the panel; removing its container",
                     "site=%s", all[i]->id);
            pthread_mutex_lock(&all[i]->op);
            site_op_delete(s, all[i], false, &op);
            pthread_mutex_unlock(&all[i]->op);
        }
        site_put(s, all[i]);
    }
    free(all);
}

void sites_reconcile(daemon_sites *s)
{
    Berth__V1__NodeSyncRequest req = BERTH__V1__NODE_SYNC_REQUEST__INIT;
    Berth__V1__NodeSyncReply *r = NULL;
    ProtobufCMessage *reply = NULL;
    bus_error err = {0};
    char subject[160];
    size_t i;
    site *st;
    int rc;

    req.node_id = s->node;
    snprintf(subject, sizeof(subject), "node.sync.%s", s->node);
    rc = bus_request(s->bus, subject, &req.base, SYNC_TIMEOUT_MS, &reply, &err);
    if (rc != 0) {
        log_info("reconcile postponed: the panel did not answer", "error=%s",
                 err.message[0] ? err.message : berth_strerror(rc));
        return;
    }
    r = (Berth__V1__NodeSyncReply *)reply;
    for (i = 0; i < r->n_sites; i++) {
        const site_spec *want = r->sites[i];

        if (want->node_id[0] != '\0' && strcmp(want->node_id, s->node) != 0)
            continue;
        st = site_add(s, want->id);
        if (st == NULL) {
            log_warn("reconcile skipped a site with a bad id", "site=%.64s",
                     want->id);
            continue;
        }
        pthread_mutex_lock(&st->op);
        if (!st->removed)
            reconcile_one(s, st, want, r->generated_ms);
        pthread_mutex_unlock(&st->op);
        site_put(s, st);
    }
    reconcile_orphans(s, r);
    log_debug("reconciled", "sites=%zu", r->n_sites);
    protobuf_c_message_free_unpacked(reply, NULL);
}
