/* node.c - the daemon's node id, specs, registration and heartbeats (see
 * node.h).
 *
 *   node.register.<id>   NodeRegister -> NodeRegistered (request)
 *   node.heartbeat.<id>  NodeHeartbeat (telemetry)
 */
#include "svc-daemon/node.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "node.pb-c.h"

#define NODE_BACKOFF_MIN_MS      250
#define NODE_BACKOFF_MAX_MS      5000
#define NODE_REGISTER_TIMEOUT_MS 2000
#define NODE_DOCKER_RETRY_MS     10000 /* asks Docker again while it is down */
#define NODE_INTERVAL_MIN_MS     100   /* a smaller interval from the panel */
#define NODE_HOSTNAME_MAX        256

/* What NodeSpecs carries, gathered by gather(). */
struct specs {
    char hostname[NODE_HOSTNAME_MAX];
    uint32_t cpus;
    uint64_t memory_bytes;
    uint64_t disk_bytes;
    char docker_version[64];
    char kernel[65];
    char arch[65];
};

struct daemon_node {
    bus *bus;
    daemon_docker *docker;
    char *data_dir;
    char *public_url;
    char *version;
    char name[DAEMON_NODE_NAME_MAX + 1];
    char id[ID_UUID_LEN + 1];
    int64_t started_ms;
    int (*sites_running)(void *ud); /* set before the thread starts */
    void *sites_ud;

    pthread_mutex_t mu; /* guards stopping; wake signals it */
    pthread_cond_t wake;
    int stopping;
    pthread_t thread;
    int started;

    /* Owned by the node thread once it runs. */
    struct specs specs;
    int registered;       /* the panel answered at least once */
    int need_register;    /* register at next_register */
    int interval_ms;      /* heartbeat interval of the last reply */
    int backoff_ms;
    int64_t next_register; /* monotonic ms */
    int64_t next_beat;
    int64_t next_docker;   /* while docker_version is "" */
    uint64_t seq;
    uint64_t reconnects;   /* nats.c's count at the last look */
    int failures;          /* register attempts failed in a row */
    int docker_failures;   /* Docker info calls failed in a row */
};

/* ------------------------------------------------------------ identity */

static int gen_uuid(void *data, size_t len)
{
    char id[ID_UUID_LEN + 1];
    int rc;

    if (len != ID_UUID_LEN)
        return BERTH_EINVAL;
    rc = id_uuid(id);
    if (rc == 0)
        memcpy(data, id, ID_UUID_LEN);
    return rc;
}

int daemon_node_id_load(const char *data_dir, char id[ID_UUID_LEN + 1])
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    int rc;

    id[0] = '\0';
    if (snprintf(path, sizeof(path), "%s/%s", data_dir, DAEMON_NODE_ID_FILE) >=
        (int)sizeof(path))
        return BERTH_EINVAL;
    rc = fs_secret(path, ID_UUID_LEN, gen_uuid, &text, &len);
    if (rc != 0)
        goto out;
    /* Tolerate a trailing newline from a hand-written file. */
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    if (len != ID_UUID_LEN || !id_uuid_valid(text)) {
        rc = BERTH_EPROTO;
        goto out;
    }
    memcpy(id, text, ID_UUID_LEN + 1);
out:
    free(text);
    return rc;
}

/* ------------------------------------------------------------ specs */

/* Fills s. The host's own figures stand in for Docker's when Docker does
 * not answer; docker_version stays "" then. Returns 1 when Docker
 * answered. */
static int gather(daemon_node *n, struct specs *s)
{
    daemon_docker_info info;
    daemon_docker_err err;
    struct utsname u;
    struct statvfs vfs;
    long ncpu, pages, page;
    int rc;

    memset(s, 0, sizeof(*s));
    if (gethostname(s->hostname, sizeof(s->hostname) - 1) != 0)
        s->hostname[0] = '\0';
    if (uname(&u) == 0) {
        snprintf(s->kernel, sizeof(s->kernel), "%s", u.release);
        snprintf(s->arch, sizeof(s->arch), "%s", u.machine);
    }
    if (statvfs(n->data_dir, &vfs) == 0)
        s->disk_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    rc = daemon_docker_info_get(n->docker, &info, &err);
    if (rc == 0) {
        s->cpus = (uint32_t)info.ncpu;
        s->memory_bytes = (uint64_t)info.mem_total;
        snprintf(s->docker_version, sizeof(s->docker_version), "%s",
                 info.version);
        n->docker_failures = 0;
        return 1;
    }
    /* Said once per outage; the retries every NODE_DOCKER_RETRY_MS only at
     * debug. */
    if (n->docker_failures++ == 0)
        log_warn("docker not answering; registering without it", "error=%s",
                 err.message);
    else
        log_debug("docker still not answering", "error=%s", err.message);
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    pages = sysconf(_SC_PHYS_PAGES);
    page = sysconf(_SC_PAGESIZE);
    s->cpus = ncpu > 0 ? (uint32_t)ncpu : 0;
    s->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * page : 0;
    return 0;
}

/* ------------------------------------------------------------ bus */

/* Asks node.register.<id> once. Returns 0 and sets the interval, or the
 * request's error code. */
static int do_register(daemon_node *n)
{
    Berth__V1__NodeSpecs specs = BERTH__V1__NODE_SPECS__INIT;
    Berth__V1__NodeRegister req = BERTH__V1__NODE_REGISTER__INIT;
    Berth__V1__NodeRegistered *reply = NULL;
    char subject[32 + ID_UUID_LEN];
    bus_error err = {0};
    int timeout = NODE_REGISTER_TIMEOUT_MS;
    int rc;

    /* While heartbeating, a slow panel must not make us miss beats. */
    if (n->registered && n->interval_ms < timeout)
        timeout = n->interval_ms;
    snprintf(subject, sizeof(subject), "node.register.%s", n->id);
    specs.hostname = n->specs.hostname;
    specs.cpus = n->specs.cpus;
    specs.memory_bytes = n->specs.memory_bytes;
    specs.disk_bytes = n->specs.disk_bytes;
    specs.docker_version = n->specs.docker_version;
    specs.kernel = n->specs.kernel;
    specs.arch = n->specs.arch;
    req.node_id = n->id;
    req.name = n->name;
    req.specs = &specs;
    req.public_url = n->public_url;
    req.version = n->version;
    req.started_ms = n->started_ms;
    rc = bus_request(n->bus, subject, &req.base, timeout,
                     (ProtobufCMessage **)&reply, &err);
    if (rc != 0) {
        /* The first failure says why; the rest of a run only at debug. */
        if (n->failures++ == 0)
            log_warn("node registration failed; retrying",
                     "node=%s error=%s message=%s", n->id, berth_strerror(rc),
                     err.message);
        else
            log_debug("node registration failed; retrying",
                      "node=%s error=%s attempts=%d", n->id,
                      berth_strerror(rc), n->failures);
        return rc;
    }
    n->interval_ms = reply->heartbeat_interval_ms;
    if (n->interval_ms < NODE_INTERVAL_MIN_MS)
        n->interval_ms = NODE_INTERVAL_MIN_MS;
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    log_info("node registered", "node=%s name=%s heartbeat_ms=%d attempts=%d",
             n->id, n->name, n->interval_ms, n->failures + 1);
    n->failures = 0;
    return 0;
}

static void heartbeat(daemon_node *n)
{
    Berth__V1__NodeHeartbeat hb = BERTH__V1__NODE_HEARTBEAT__INIT;
    char subject[32 + ID_UUID_LEN];
    int rc;

    snprintf(subject, sizeof(subject), "node.heartbeat.%s", n->id);
    hb.node_id = n->id;
    hb.seq = ++n->seq;
    hb.sent_ms = clock_wall_ms();
    hb.sites_running =
        n->sites_running != NULL ? (uint32_t)n->sites_running(n->sites_ud) : 0;
    rc = bus_publish(n->bus, subject, &hb.base);
    if (rc != 0)
        log_debug("heartbeat not sent", "node=%s error=%s", n->id,
                  berth_strerror(rc));
}

/* nats.c's reconnect count, 0 when it cannot be read. */
static uint64_t reconnect_count(daemon_node *n)
{
    natsStatistics *st = NULL;
    uint64_t count = 0;

    if (natsStatistics_Create(&st) != NATS_OK)
        return 0;
    if (natsConnection_GetStats(bus_nats(n->bus), st) != NATS_OK ||
        natsStatistics_GetCounts(st, NULL, NULL, NULL, NULL, &count) !=
            NATS_OK)
        count = 0;
    natsStatistics_Destroy(st);
    return count;
}

/* ------------------------------------------------------------ thread */

/* One pass of the node thread: whatever is due now. */
static void tick(daemon_node *n, int64_t now)
{
    uint64_t rec = reconnect_count(n);

    if (rec != n->reconnects) {
        n->reconnects = rec;
        if (n->registered) {
            log_info("bus reconnected; registering again", "node=%s", n->id);
            n->need_register = 1;
            n->next_register = now;
            n->backoff_ms = NODE_BACKOFF_MIN_MS;
        }
    }
    if (n->specs.docker_version[0] == '\0' && now >= n->next_docker) {
        struct specs s;

        if (gather(n, &s)) {
            log_info("docker answers; registering again", "node=%s "
                     "docker=%s", n->id, s.docker_version);
            n->specs = s;
            n->need_register = 1;
            n->next_register = now;
        }
        n->next_docker = now + NODE_DOCKER_RETRY_MS;
    }
    if (n->need_register && now >= n->next_register) {
        if (do_register(n) == 0) {
            n->need_register = 0;
            n->backoff_ms = NODE_BACKOFF_MIN_MS;
            if (!n->registered)
                n->next_beat = clock_mono_ms();
            n->registered = 1;
        } else {
            n->next_register = clock_mono_ms() + n->backoff_ms;
            n->backoff_ms *= 2;
            if (n->backoff_ms > NODE_BACKOFF_MAX_MS)
                n->backoff_ms = NODE_BACKOFF_MAX_MS;
        }
    }
    now = clock_mono_ms();
    if (n->registered && now >= n->next_beat) {
        heartbeat(n);
        n->next_beat += n->interval_ms;
        if (n->next_beat <= now) /* fell behind: do not burst */
            n->next_beat = now + n->interval_ms;
    }
}

/* The next monotonic ms anything is due. */
static int64_t next_due(const daemon_node *n)
{
    int64_t t = INT64_MAX;

    if (n->need_register && n->next_register < t)
        t = n->next_register;
    if (n->registered && n->next_beat < t)
        t = n->next_beat;
    if (n->specs.docker_version[0] == '\0' && n->next_docker < t)
        t = n->next_docker;
    /* Reconnects are noticed within a second. */
    if (t > clock_mono_ms() + 1000)
        t = clock_mono_ms() + 1000;
    return t;
}

static void *node_main(void *arg)
{
    daemon_node *n = arg;
    struct timespec ts;

    if (!gather(n, &n->specs))
        n->next_docker = clock_mono_ms() + NODE_DOCKER_RETRY_MS;
    n->reconnects = reconnect_count(n);
    n->need_register = 1;
    n->next_register = clock_mono_ms();
    n->backoff_ms = NODE_BACKOFF_MIN_MS;
    for (;;) {
        int64_t due;

        pthread_mutex_lock(&n->mu);
        if (n->stopping) {
            pthread_mutex_unlock(&n->mu);
            break;
        }
        pthread_mutex_unlock(&n->mu);
        tick(n, clock_mono_ms());
        due = next_due(n);
        ts.tv_sec = (time_t)(due / 1000);
        ts.tv_nsec = (long)(due % 1000) * 1000000L;
        pthread_mutex_lock(&n->mu);
        if (!n->stopping)
            pthread_cond_timedwait(&n->wake, &n->mu, &ts);
        pthread_mutex_unlock(&n->mu);
    }
    return NULL;
}

/* ------------------------------------------------------------ life cycle */

int daemon_node_new(const daemon_node_cfg *cfg, daemon_node **out)
{
    pthread_condattr_t ca;
    daemon_node *n = NULL;
    const char *url = cfg->public_url ? cfg->public_url : "";
    int rc;

    *out = NULL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        log_error("configuration", "error=%s",
                  "BERTH_DAEMON_PUBLIC_URL must be an http(s) URL");
        return BERTH_EINVAL;
    }
    if (cfg->name != NULL && strlen(cfg->name) > DAEMON_NODE_NAME_MAX) {
        log_error("configuration", "error=BERTH_NODE_NAME is longer than %d "
                  "bytes", DAEMON_NODE_NAME_MAX);
        return BERTH_EINVAL;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return BERTH_ENOMEM;
    n->bus = cfg->bus;
    n->docker = cfg->docker;
    n->data_dir = strdup(cfg->data_dir);
    n->public_url = strdup(url);
    n->version = strdup(cfg->version ? cfg->version : "");
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (n->data_dir == NULL || n->public_url == NULL || n->version == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (cfg->name != NULL && cfg->name[0] != '\0') {
        snprintf(n->name, sizeof(n->name), "%s", cfg->name);
    } else {
        char host[NODE_HOSTNAME_MAX] = "";

        /* A longer host name is cut to what the panel accepts. */
        gethostname(host, sizeof(host) - 1);
        snprintf(n->name, sizeof(n->name), "%s", host);
    }
    rc = daemon_node_id_load(n->data_dir, n->id);
    if (rc != 0) {
        log_error("node id", "path=%s/%s error=%s", n->data_dir,
                  DAEMON_NODE_ID_FILE, berth_strerror(rc));
        goto out;
    }
    n->started_ms = clock_wall_ms();
    log_info("node", "node=%s name=%s public_url=%s", n->id, n->name,
             n->public_url);
    *out = n;
    n = NULL;
out:
    daemon_node_free(n);
    return rc;
}

void daemon_node_count_with(daemon_node *n, int (*fn)(void *ud), void *ud)
{
    n->sites_running = fn;
    n->sites_ud = ud;
}

int daemon_node_start(daemon_node *n)
{
    if (pthread_create(&n->thread, NULL, node_main, n) != 0)
        return BERTH_ENOMEM;
    n->started = 1;
    return 0;
}

void daemon_node_stop(daemon_node *n)
{
    if (n == NULL || !n->started)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = 1;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    n->started = 0;
}

void daemon_node_free(daemon_node *n)
{
    if (n == NULL)
        return;
    daemon_node_stop(n);
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->mu);
    free(n->data_dir);
    free(n->public_url);
    free(n->version);
    free(n);
}

const char *daemon_node_id(const daemon_node *n)
{
    return n->id;
}
