/* nodes.c - node registration, heartbeats and liveness, the JetStream
 * set-up for commands, and the node endpoints (see nodes.h).
 *
 *   node.register.<node>   NodeRegister -> NodeRegistered (request)
 *   node.heartbeat.<node>  NodeHeartbeat (telemetry)
 *   node.online.<node>     NodeOnline, published on every change (event)
 *   GET /nodes             -> {"nodes": [node...]}         (node.read)
 *   GET /nodes/:id         -> node                          (node.read)
 *
 * where node is {id, name, hostname, publicUrl, version, online, lastSeen,
 * registeredAt, specs: {cpus, memoryBytes, diskBytes, dockerVersion,
 * kernel, arch}}. Both endpoints answer from memory on the loop thread.
 */
#include "svc-panel/nodes.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "node.pb-c.h"
#include "svc-panel/api.h"
#include "svc-panel/routes.h"

#define NODES_TICK_MIN_MS    50
#define NODES_TICK_MAX_MS    1000
#define NODES_UPKEEP_MS      30000 /* streams, consumers and last_seen refresh */
#define NODES_SETUP_RETRY_MS 1000
#define NODES_PUBLISH_MS     2000 /* wait for JetStream's ack of node.online */
#define NODES_DB_WAIT_MS     2000

/* One node and what PostgreSQL and the event stream were last told. */
struct node {
    node_info info;
    int64_t beat_mono; /* monotonic ms of the last heartbeat (or grace) */
    int db_online;     /* online as written to PostgreSQL; -1 unknown */
    int pub_online;    /* online as last published; -1 never */
    int consumer_ok;   /* node-<id> is known to exist */
};

struct nodes {
    panel *p;
    int interval_ms;
    pthread_mutex_t mu; /* guards tab, len, cap */
    struct node *tab;
    size_t len, cap;
    pthread_mutex_t flush_mu; /* one flush() at a time */
    pthread_mutex_t wake_mu;  /* guards stopping; wake signals it */
    pthread_cond_t wake;
    int stopping;
    pthread_t thread;
    int started;
    atomic_int js_ready; /* the streams exist */
};

/* ------------------------------------------------------------ helpers */

int nodes_id_valid(const char *id)
{
    return id != NULL && strlen(id) <= NODES_ID_MAX && bus_token_valid(id);
}

int nodes_heartbeat_ms(const nodes *n)
{
    return n->interval_ms;
}

/* Caller holds n->mu. */
static struct node *find_locked(nodes *n, const char *id)
{
    size_t i;

    for (i = 0; i < n->len; i++) {
        if (strcmp(n->tab[i].info.id, id) == 0)
            return &n->tab[i];
    }
    return NULL;
}

/* Returns the entry of id, adding a zeroed one when absent; NULL on
 * ENOMEM. Caller holds n->mu. */
static struct node *add_locked(nodes *n, const char *id)
{
    struct node *e = find_locked(n, id);

    if (e != NULL)
        return e;
    if (n->len == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 16;
        struct node *t = realloc(n->tab, cap * sizeof(*t));

        if (t == NULL)
            return NULL;
        n->tab = t;
        n->cap = cap;
    }
    e = &n->tab[n->len++];
    memset(e, 0, sizeof(*e));
    snprintf(e->info.id, sizeof(e->info.id), "%s", id);
    e->db_online = -1;
    e->pub_online = -1;
    return e;
}

static uint64_t json_u64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (json_is_integer(v) && json_integer_value(v) > 0)
        return (uint64_t)json_integer_value(v);
    if (json_is_string(v))
        return strtoull(json_string_value(v), NULL, 10);
    return 0;
}

static void json_copy_str(json_t *o, const char *key, char *out, size_t size)
{
    const char *s = json_string_value(json_object_get(o, key));

    snprintf(out, size, "%s", s ? s : "");
}

/* Fills info from a NODE row (db.c: id, name, hostname, specs, public_url,
 * online, last_seen, registered_at). The specs column holds what
 * specs_json() wrote. */
static void info_from_row(PGresult *r, int row, node_info *info)
{
    json_t *specs = json_loads(PQgetvalue(r, row, 3), 0, NULL);

    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%s", PQgetvalue(r, row, 0));
    snprintf(info->name, sizeof(info->name), "%s", PQgetvalue(r, row, 1));
    snprintf(info->hostname, sizeof(info->hostname), "%s",
             PQgetvalue(r, row, 2));
    snprintf(info->public_url, sizeof(info->public_url), "%s",
             PQgetvalue(r, row, 4));
    info->online = strcmp(PQgetvalue(r, row, 5), "t") == 0;
    snprintf(info->last_seen, sizeof(info->last_seen), "%s",
             PQgetvalue(r, row, 6));
    snprintf(info->registered_at, sizeof(info->registered_at), "%s",
             PQgetvalue(r, row, 7));
    if (specs != NULL) {
        info->cpus = (uint32_t)json_u64(specs, "cpus");
        info->memory_bytes = json_u64(specs, "memoryBytes");
        info->disk_bytes = json_u64(specs, "diskBytes");
        json_copy_str(specs, "dockerVersion", info->docker_version,
                      sizeof(info->docker_version));
        json_copy_str(specs, "kernel", info->kernel, sizeof(info->kernel));
        json_copy_str(specs, "arch", info->arch, sizeof(info->arch));
        json_copy_str(specs, "version", info->version, sizeof(info->version));
    }
    json_decref(specs);
}

/* The specs column: NodeSpecs in the API's shape (numbers, not the proto3
 * strings) plus the daemon's version. Caller frees. */
static char *specs_json(const Berth__V1__NodeRegister *r)
{
    const Berth__V1__NodeSpecs *s = r->specs;
    json_t *j;
    char *text;

    j = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "cpus",
                  (json_int_t)(s ? s->cpus : 0), "memoryBytes",
                  (json_int_t)(s ? s->memory_bytes & INT64_MAX : 0),
                  "diskBytes", (json_int_t)(s ? s->disk_bytes & INT64_MAX : 0),
                  "dockerVersion", s ? s->docker_version : "", "kernel",
                  s ? s->kernel : "", "arch", s ? s->arch : "", "version",
                  r->version);
    if (j == NULL)
        return NULL;
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

/* ------------------------------------------------------------ flushing */

/* What flush() has to tell PostgreSQL and the event stream about a node. */
struct change {
    char id[NODES_ID_MAX + 1];
    char name[NODES_NAME_MAX + 1];
    int online;
    int db;  /* write node_set_online */
    int pub; /* publish node.online */
};

/* Brings PostgreSQL and the event stream in line with memory: writes
 * node_set_online and publishes node.online for every node whose state
 * they have not seen yet. With refresh, online nodes get their last_seen
 * rewritten too. What fails stays pending for the next call. */
static void flush(nodes *n, int refresh)
{
    struct change *ch = NULL;
    size_t count = 0, i;
    db_conn *c = NULL;
    int rc;

    pthread_mutex_lock(&n->flush_mu);
    pthread_mutex_lock(&n->mu);
    if (n->len > 0)
        ch = calloc(n->len, sizeof(*ch));
    for (i = 0; ch != NULL && i < n->len; i++) {
        struct node *e = &n->tab[i];
        int db = e->db_online != e->info.online || (refresh && e->info.online);
        int pub = e->pub_online != e->info.online;

        if (!db && !pub)
            continue;
        snprintf(ch[count].id, sizeof(ch[count].id), "%s", e->info.id);
        snprintf(ch[count].name, sizeof(ch[count].name), "%s", e->info.name);
        ch[count].online = e->info.online;
        ch[count].db = db;
        ch[count].pub = pub;
        count++;
    }
    pthread_mutex_unlock(&n->mu);
    for (i = 0; i < count; i++) {
        const char *params[2] = {ch[i].id, ch[i].online ? "true" : "false"};

        if (!ch[i].db)
            continue;
        rc = c != NULL ? 0 : db_acquire(n->p->db, NODES_DB_WAIT_MS, &c);
        if (rc == 0)
            rc = db_run(c, "node_set_online", 2, params, NULL);
        if (rc != 0) {
            log_warn("node state not saved; will retry",
                     "node=%s online=%d error=%s", ch[i].id, ch[i].online,
                     berth_strerror(rc));
            break; /* the database is away: the rest would fail too */
        }
        pthread_mutex_lock(&n->mu);
        {
            struct node *e = find_locked(n, ch[i].id);
            if (e != NULL)
                e->db_online = ch[i].online;
        }
        pthread_mutex_unlock(&n->mu);
    }
    if (c != NULL)
        db_release(n->p->db, c);
    for (i = 0; i < count; i++) {
        Berth__V1__NodeOnline ev = BERTH__V1__NODE_ONLINE__INIT;
        char subject[32 + NODES_ID_MAX];

        if (!ch[i].pub)
            continue;
        if (!atomic_load(&n->js_ready) || !bus_connected(n->p->svc.bus))
            break;
        ev.node_id = ch[i].id;
        ev.name = ch[i].name;
        ev.online = ch[i].online;
        ev.at_ms = clock_wall_ms();
        snprintf(subject, sizeof(subject), "node.online.%s", ch[i].id);
        rc = bus_js_publish(n->p->svc.bus, subject, &ev.base, NULL,
                            NODES_PUBLISH_MS);
        if (rc != 0)
            break;
        pthread_mutex_lock(&n->mu);
        {
            struct node *e = find_locked(n, ch[i].id);
            if (e != NULL)
                e->pub_online = ch[i].online;
        }
        pthread_mutex_unlock(&n->mu);
    }
    free(ch);
    pthread_mutex_unlock(&n->flush_mu);
}

/* ------------------------------------------------------------ consumers */

static int ensure_consumer(nodes *n, const char *id, int force)
{
    struct node *e;
    int known = 0;
    int rc;

    pthread_mutex_lock(&n->mu);
    e = find_locked(n, id);
    if (e != NULL)
        known = e->consumer_ok;
    pthread_mutex_unlock(&n->mu);
    if (known && !force)
        return 0;
    if (!atomic_load(&n->js_ready))
        return BERTH_EUNAVAIL;
    rc = bus_js_ensure_consumer(n->p->svc.bus, "node-commands", id);
    pthread_mutex_lock(&n->mu);
    e = find_locked(n, id);
    if (e != NULL)
        e->consumer_ok = rc == 0;
    pthread_mutex_unlock(&n->mu);
    if (rc != 0)
        log_warn("node command consumer not created; will retry",
                 "node=%s error=%s", id, berth_strerror(rc));
    return rc;
}

int nodes_ensure_consumer(nodes *n, const char *id)
{
    return ensure_consumer(n, id, 0);
}

/* Ensures the consumer of every node (all of them with force, else those
 * not known to exist). */
static void ensure_all(nodes *n, int force)
{
    char(*ids)[NODES_ID_MAX + 1] = NULL;
    size_t count = 0, i;

    pthread_mutex_lock(&n->mu);
    if (n->len > 0)
        ids = calloc(n->len, sizeof(*ids));
    for (i = 0; ids != NULL && i < n->len; i++) {
        if (force || !n->tab[i].consumer_ok)
            snprintf(ids[count++], sizeof(ids[0]), "%s", n->tab[i].info.id);
    }
    pthread_mutex_unlock(&n->mu);
    for (i = 0; i < count; i++) {
        if (ensure_consumer(n, ids[i], 1) != 0)
            break;
    }
    free(ids);
}

/* ------------------------------------------------------------ bus handlers */

static int on_register(bus_msg *m, void *ud)
{
    nodes *n = ud;
    const Berth__V1__NodeRegister *r = (const Berth__V1__NodeRegister *)m->msg;
    Berth__V1__NodeRegistered reply = BERTH__V1__NODE_REGISTERED__INIT;
    char id[NODES_ID_MAX + 1];
    const char *name, *hostname;
    const char *params[5];
    PGresult *res = NULL;
    db_conn *c = NULL;
    char *specs = NULL;
    node_info info;
    struct node *e;
    int was_online = 0;
    int rc;

    if (bus_subject_token(m->subject, 2, id, sizeof(id)) != 0 ||
        !nodes_id_valid(id))
        return bus_reply_error(
            m, BERTH_EINVAL, "node ids are subject tokens of at most %d bytes",
            NODES_ID_MAX);
    if (r->node_id[0] != '\0' && strcmp(r->node_id, id) != 0)
        return bus_reply_error(
            m, BERTH_EINVAL,
            "node_id \"%.64s\" does not match the subject's \"%s\"", r->node_id,
            id);
    name = r->name[0] != '\0' ? r->name : id;
    hostname = r->specs != NULL ? r->specs->hostname : "";
    if (strlen(name) > NODES_NAME_MAX ||
        strlen(hostname) > NODES_HOSTNAME_MAX ||
        strlen(r->public_url) > NODES_URL_MAX || strlen(r->version) > 63)
        return bus_reply_error(
            m, BERTH_EINVAL,
            "name (%d), hostname (%d), public_url (%d) or version "
            "(63 bytes) too long",
            NODES_NAME_MAX, NODES_HOSTNAME_MAX, NODES_URL_MAX);
    if (r->public_url[0] != '\0' && strncmp(r->public_url, "http://", 7) != 0 &&
        strncmp(r->public_url, "https://", 8) != 0)
        return bus_reply_error(m, BERTH_EINVAL,
                               "public_url must be an http(s) URL");
    specs = specs_json(r);
    if (specs == NULL)
        return BERTH_ENOMEM;
    params[0] = id;
    params[1] = name;
    params[2] = hostname;
    params[3] = specs;
    params[4] = r->public_url;
    rc = db_acquire(n->p->db, NODES_DB_WAIT_MS, &c);
    if (rc == 0)
        rc = db_exec(c, "node_upsert", 5, params, &res);
    if (c != NULL)
        db_release(n->p->db, c);
    if (rc != 0) {
        log_warn("node registration not saved", "node=%s error=%s", id,
                 berth_strerror(rc));
        rc = bus_reply_error(m, rc, "cannot save the node: %s",
                             berth_strerror(rc));
        goto out;
    }
    info_from_row(res, 0, &info);
    info.online = 1;
    info.last_seen_ms = clock_wall_ms();
    pthread_mutex_lock(&n->mu);
    e = add_locked(n, id);
    if (e != NULL) {
        was_online = e->info.online;
        e->info = info;
        e->beat_mono = clock_mono_ms();
        e->db_online = 1; /* node_upsert sets online */
    }
    pthread_mutex_unlock(&n->mu);
    if (e == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    log_info(was_online ? "node registered" : "node registered; online",
             "node=%s name=%s hostname=%s version=%s", id, name, hostname,
             r->version);
    ensure_consumer(n, id, 0);
    api_audit(n->p, NULL, NULL, "node.register", id, 200,
              json_pack("{s:s, s:s, s:s}", "name", name, "hostname", hostname,
                        "version", r->version));
    reply.node_id = id;
    reply.heartbeat_interval_ms = n->interval_ms;
    rc = bus_reply(m, &reply.base);
    flush(n, 0);
out:
    PQclear(res);
    free(specs);
    return rc;
}

static int on_heartbeat(bus_msg *m, void *ud)
{
    nodes *n = ud;
    char id[NODES_ID_MAX + 1];
    struct node *e;
    int known = 0, changed = 0;

    if (bus_subject_token(m->subject, 2, id, sizeof(id)) != 0)
        return 0;
    pthread_mutex_lock(&n->mu);
    e = find_locked(n, id);
    if (e != NULL) {
        known = 1;
        e->beat_mono = clock_mono_ms();
        e->info.last_seen_ms = clock_wall_ms();
        changed = !e->info.online;
        e->info.online = 1;
    }
    pthread_mutex_unlock(&n->mu);
    if (!known) {
        log_debug("heartbeat of an unregistered node ignored", "node=%s", id);
        return 0;
    }
    if (changed) {
        log_info("node online", "node=%s", id);
        flush(n, 0);
    }
    return 0;
}

/* ------------------------------------------------------------ upkeep */

static int stream_count(void)
{
    const bus_stream_def *d;
    int k = 0;

    for (d = bus_streams; d->name != NULL; d++)
        k++;
    return k;
}

/* Marks offline every online node silent for NODES_MISSED_BEATS
 * intervals. */
static void expire(nodes *n)
{
    int64_t now = clock_mono_ms();
    int64_t limit = (int64_t)NODES_MISSED_BEATS * n->interval_ms;
    size_t i;

    pthread_mutex_lock(&n->mu);
    for (i = 0; i < n->len; i++) {
        struct node *e = &n->tab[i];

        if (e->info.online && now - e->beat_mono > limit) {
            e->info.online = 0;
            log_warn("node offline: heartbeats stopped",
                     "node=%s silent_ms=%lld", e->info.id,
                     (long long)(now - e->beat_mono));
        }
    }
    pthread_mutex_unlock(&n->mu);
}

static void *upkeep_main(void *arg)
{
    nodes *n = arg;
    int tick = n->interval_ms / 3;
    int64_t next_setup = 0, next_refresh;
    struct timespec ts;

    if (tick < NODES_TICK_MIN_MS)
        tick = NODES_TICK_MIN_MS;
    if (tick > NODES_TICK_MAX_MS)
        tick = NODES_TICK_MAX_MS;
    next_refresh = clock_mono_ms() + NODES_UPKEEP_MS;
    for (;;) {
        int64_t now = clock_mono_ms();
        int refresh = 0;

        pthread_mutex_lock(&n->wake_mu);
        if (n->stopping) {
            pthread_mutex_unlock(&n->wake_mu);
            break;
        }
        pthread_mutex_unlock(&n->wake_mu);
        if (now >= next_setup && bus_connected(n->p->svc.bus)) {
            int rc = bus_js_setup(n->p->svc.bus);

            if (rc == 0) {
                if (!atomic_exchange(&n->js_ready, 1))
                    log_info("jetstream streams ready", "streams=%d",
                             stream_count());
                ensure_all(n, 1);
                next_setup = now + NODES_UPKEEP_MS;
            } else {
                log_warn("jetstream set-up failed; retrying", "error=%s",
                         berth_strerror(rc));
                next_setup = now + NODES_SETUP_RETRY_MS;
            }
        } else if (atomic_load(&n->js_ready)) {
            ensure_all(n, 0);
        }
        expire(n);
        if (now >= next_refresh) {
            refresh = 1;
            next_refresh = now + NODES_UPKEEP_MS;
        }
        flush(n, refresh);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)(tick % 1000) * 1000000L;
        ts.tv_sec += tick / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&n->wake_mu);
        if (!n->stopping)
            pthread_cond_timedwait(&n->wake, &n->wake_mu, &ts);
        pthread_mutex_unlock(&n->wake_mu);
    }
    return NULL;
}

/* ------------------------------------------------------------ life cycle */

int nodes_new(nodes **out, panel *p)
{
    pthread_condattr_t ca;
    nodes *n;

    *out = NULL;
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return BERTH_ENOMEM;
    n->p = p;
    n->interval_ms = (int)config_int(p->svc.cfg, "BERTH_NODE_HEARTBEAT_MS");
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->flush_mu, NULL);
    pthread_mutex_init(&n->wake_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->wake, &ca);
    pthread_condattr_destroy(&ca);
    *out = n;
    return 0;
}

/* Fills the table from PostgreSQL. Every node gets a full offline timeout
 * from now to show it is alive: what the database says is believed until
 * then, so a panel restart does not make every node flap. */
static int load(nodes *n)
{
    PGresult *res = NULL;
    db_conn *c = NULL;
    int64_t now = clock_mono_ms();
    int i, rc;

    rc = db_acquire(n->p->db, 5000, &c);
    if (rc != 0)
        return rc;
    rc = db_exec(c, "node_list", 0, NULL, &res);
    db_release(n->p->db, c);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&n->mu);
    for (i = 0; i < PQntuples(res); i++) {
        struct node *e = add_locked(n, PQgetvalue(res, i, 0));

        if (e == NULL) {
            rc = BERTH_ENOMEM;
            break;
        }
        info_from_row(res, i, &e->info);
        e->beat_mono = now;
        e->db_online = e->info.online;
        e->pub_online = e->info.online;
    }
    pthread_mutex_unlock(&n->mu);
    PQclear(res);
    if (rc == 0)
        log_info("nodes loaded", "nodes=%zu heartbeat_ms=%d", n->len,
                 n->interval_ms);
    return rc;
}

int nodes_start(nodes *n)
{
    bus *b = n->p->svc.bus;
    int rc;

    rc = load(n);
    if (rc == 0)
        rc = bus_serve(b, "node-register", "node.register.*", on_register, n);
    if (rc == 0)
        rc = bus_subscribe(b, "node.heartbeat.*", NULL, on_heartbeat, n);
    if (rc != 0)
        return rc;
    if (pthread_create(&n->thread, NULL, upkeep_main, n) != 0)
        return BERTH_ENOMEM;
    n->started = 1;
    return 0;
}

void nodes_stop(nodes *n)
{
    if (n == NULL || !n->started)
        return;
    pthread_mutex_lock(&n->wake_mu);
    n->stopping = 1;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->wake_mu);
    pthread_join(n->thread, NULL);
    n->started = 0;
}

void nodes_free(nodes *n)
{
    if (n == NULL)
        return;
    nodes_stop(n);
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->wake_mu);
    pthread_mutex_destroy(&n->flush_mu);
    pthread_mutex_destroy(&n->mu);
    free(n->tab);
    free(n);
}

/* ------------------------------------------------------------ queries */

int nodes_find(nodes *n, const char *id, node_info *out)
{
    struct node *e;

    pthread_mutex_lock(&n->mu);
    e = find_locked(n, id);
    if (e != NULL)
        *out = e->info;
    pthread_mutex_unlock(&n->mu);
    return e != NULL ? 0 : BERTH_ENOENT;
}

static int by_name(const void *a, const void *b)
{
    const node_info *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c != 0 ? c : strcmp(x->id, y->id);
}

int nodes_snapshot(nodes *n, node_info **out, size_t *count)
{
    node_info *arr = NULL;
    size_t i;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&n->mu);
    if (n->len > 0) {
        arr = malloc(n->len * sizeof(*arr));
        if (arr == NULL) {
            pthread_mutex_unlock(&n->mu);
            return BERTH_ENOMEM;
        }
        for (i = 0; i < n->len; i++)
            arr[i] = n->tab[i].info;
        *count = n->len;
    }
    pthread_mutex_unlock(&n->mu);
    if (arr != NULL)
        qsort(arr, *count, sizeof(*arr), by_name);
    *out = arr;
    return 0;
}

/* ------------------------------------------------------------ HTTP */

static json_t *node_json(const node_info *i)
{
    char seen[40];
    const char *last = i->last_seen;

    if (i->last_seen_ms > 0)
        last = clock_fmt_rfc3339(seen, sizeof(seen), i->last_seen_ms);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s?, s:s, "
                     "s:{s:I, s:I, s:I, s:s, s:s, s:s}}",
                     "id", i->id, "name", i->name, "hostname", i->hostname,
                     "publicUrl", i->public_url, "version", i->version,
                     "online", i->online, "lastSeen", last[0] ? last : NULL,
                     "registeredAt", i->registered_at, "specs", "cpus",
                     (json_int_t)i->cpus, "memoryBytes",
                     (json_int_t)(i->memory_bytes & INT64_MAX), "diskBytes",
                     (json_int_t)(i->disk_bytes & INT64_MAX), "dockerVersion",
                     i->docker_version, "kernel", i->kernel, "arch", i->arch);
}

void nodes_list(panel *p, http_req *req, http_resp *resp)
{
    node_info *all = NULL;
    size_t count = 0, i;
    principal who;
    json_t *arr;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_NODE_READ, resp) != 0)
        return;
    if (nodes_snapshot(p->nodes, &all, &count) != 0) {
        http_error(resp, 500, BERTH_ENOMEM, "out of memory");
        return;
    }
    arr = json_array();
    for (i = 0; i < count; i++)
        json_array_append_new(arr, node_json(&all[i]));
    free(all);
    http_json(resp, 200, json_pack("{s:o}", "nodes", arr));
}

void nodes_get(panel *p, http_req *req, http_resp *resp)
{
    principal who;
    node_info info;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_NODE_READ, resp) != 0)
        return;
    if (nodes_find(p->nodes, req->params[0], &info) != 0) {
        http_error(resp, 404, BERTH_ENOENT, "node not found");
        return;
    }
    http_json(resp, 200, node_json(&info));
}
