/* sites_ops.c - what a command does to a site (create, start, stop, kill,
 * restart, delete) and the command worker (see sites.h).
 *
 *   site.create.<node>    SiteCreate   (JetStream, consumer node-<node>)
 *   site.power.<node>     SitePower
 *   site.delete.<node>    SiteDelete
 *   command.result.<node> CommandResult (JetStream, EVENTS)
 *   site.pull.<node>.<site> ImagePull   (telemetry while an image is pulled)
 *
 * Every operation is called with the site's op lock held and may be redone
 * after an interruption: each checks Docker first and does only what is
 * missing.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "common.pb-c.h"
#include "svc-daemon/sites_int.h"

#define STOP_TIMEOUT_DEFAULT_S 30
#define KILL_WAIT_MS           10000
#define WAIT_SLICE_MS          1000
#define RESULT_WAIT_MS         5000
#define MEMORY_MIN_BYTES       (6LL * 1024 * 1024) /* Docker's own minimum */
#define PULL_TIMEOUT_MS        600000L

/* The capabilities a site keeps: what ordinary servers need to bind low
 * ports and drop privileges; everything else is dropped. */
static const char *const site_caps[] = {
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "NET_BIND_SERVICE",
    "KILL", NULL,
};

int site_op_fail(site_op *op, int rc, const char *fmt, ...)
{
    va_list ap;

    if (op != NULL) {
        va_start(ap, fmt);
        vsnprintf(op->error, sizeof(op->error), fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool transient(int rc)
{
    return rc == BERTH_EUNAVAIL || rc == BERTH_ETIMEDOUT || rc == BERTH_EBUSY;
}

static void container_name(const char *site_id, char *out, size_t size)
{
    snprintf(out, size, "berth-%s", site_id);
}

static void in_progress(site_op *op)
{
    if (op != NULL && op->cmd != NULL)
        bus_js_in_progress(op->cmd);
}

/* ------------------------------------------------------------ specs */

int site_spec_save(daemon_sites *s, const site_spec *spec)
{
    size_t len = protobuf_c_message_get_packed_size(&spec->base);
    uint8_t *data = malloc(len > 0 ? len : 1);
    char path[4200];
    int rc;

    if (data == NULL)
        return BERTH_ENOMEM;
    protobuf_c_message_pack(&spec->base, data);
    snprintf(path, sizeof(path), "%s/%s.pb", s->sites_dir, spec->id);
    rc = fs_write_atomic(path, data, len, 0600);
    free(data);
    if (rc != 0)
        log_error("cannot save a site's spec", "path=%s error=%s", path,
                  berth_strerror(rc));
    return rc;
}

/* Sets should_run in st's spec and on disk. */
void site_set_should_run(daemon_sites *s, site *st, bool run)
{
    site_spec *copy = site_spec_get(s, st);

    if (copy == NULL)
        return;
    copy->should_run = run;
    site_spec_save(s, copy);
    pthread_mutex_lock(&s->mu);
    site_spec_free(st->spec);
    st->spec = copy;
    pthread_mutex_unlock(&s->mu);
}

static bool image_valid(const char *image)
{
    size_t i, n = strlen(image);

    if (n == 0 || n > 255 || !((image[0] >= 'a' && image[0] <= 'z') ||
                               (image[0] >= '0' && image[0] <= '9')))
        return false;
    for (i = 0; i < n; i++) {
        char c = image[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == '/' || c == ':' || c == '@'))
            return false;
    }
    return true;
}

/* Checks what Docker would refuse late or the panel should have caught. */
static int spec_check(daemon_sites *s, const site_spec *spec, site_op *op)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t i;

    if (spec->id == NULL || spec->id[0] == '\0' ||
        strlen(spec->id) >= SITE_ID_MAX || !bus_token_valid(spec->id))
        return site_op_fail(op, BERTH_EINVAL, "the site id is missing or invalid");
    if (spec->node_id[0] != '\0' && strcmp(spec->node_id, s->node) != 0)
        return site_op_fail(op, BERTH_EINVAL,
                            "the site belongs to node %.64s, this is node %s",
                            spec->node_id, s->node);
    if (!image_valid(spec->image))
        return site_op_fail(op, BERTH_EINVAL,
                            "image \"%.128s\" is not a valid image reference",
                            spec->image);
    if (spec->limits != NULL) {
        if (spec->limits->memory_bytes != 0 &&
            (int64_t)spec->limits->memory_bytes < MEMORY_MIN_BYTES)
            return site_op_fail(op, BERTH_EINVAL,
                                "memory limit %llu is below Docker's minimum "
                                "of 6 MiB",
                                (unsigned long long)spec->limits->memory_bytes);
        if (ncpu > 0 && spec->limits->cpu_millis > (uint32_t)ncpu * 1000u)
            return site_op_fail(op, BERTH_EINVAL,
                                "cpu limit of %u millis is more than this "
                                "node's %ld CPUs",
                                spec->limits->cpu_millis, ncpu);
    }
    for (i = 0; i < spec->n_ports; i++) {
        const Berth__V1__PortBinding *p = spec->ports[i];
        if (p->container_port == 0 || p->container_port > 65535 ||
            p->host_port > 65535 ||
            (p->protocol[0] != '\0' && strcmp(p->protocol, "tcp") != 0 &&
             strcmp(p->protocol, "udp") != 0))
            return site_op_fail(op, BERTH_EINVAL,
                                "ports[%zu] is not a valid port binding", i);
    }
    return 0;
}

/* ------------------------------------------------------------ image */

typedef struct pull_ctx {
    daemon_sites *s;
    const char *site;
    const char *image;
    site_op *op;
    int64_t last_ms;
} pull_ctx;

static void on_pull(const char *status, uint64_t current, uint64_t total,
                    void *arg)
{
    pull_ctx *p = arg;
    Berth__V1__ImagePull m = BERTH__V1__IMAGE_PULL__INIT;
    char subject[200];
    int64_t now = clock_mono_ms();

    if (now - p->last_ms < 250)
        return; /* progress at most four times a second */
    p->last_ms = now;
    in_progress(p->op);
    m.site_id = (char *)p->site;
    m.image = (char *)p->image;
    m.status = (char *)status;
    m.current = current;
    m.total = total;
    snprintf(subject, sizeof(subject), "site.pull.%s.%s", p->s->node, p->site);
    bus_publish(p->s->bus, subject, &m.base);
}

/* Makes sure the image is local, pulling it when it is not. */
static int ensure_image(daemon_sites *s, const site_spec *spec, site_op *op)
{
    pull_ctx p = {.s = s, .site = spec->id, .image = spec->image, .op = op};
    daemon_docker_err err = {0};
    int rc;

    rc = daemon_docker_image_inspect(s->docker, spec->image, &err);
    if (rc != BERTH_ENOENT)
        return rc == 0 ? 0 : site_op_fail(op, rc, "%s", err.message);
    log_info("pulling image", "site=%s image=%s", spec->id, spec->image);
    rc = daemon_docker_image_pull(s->docker, spec->image, PULL_TIMEOUT_MS,
                                  on_pull, &p, &err);
    if (rc == 0)
        return 0;
    if (transient(rc) && rc != BERTH_ETIMEDOUT)
        return site_op_fail(op, rc, "%s", err.message);
    return site_op_fail(op, rc == BERTH_ENOENT ? BERTH_ENOENT : BERTH_EIO,
                        "image %s is not on this node and could not be "
                        "pulled: %s",
                        spec->image, err.message);
}

/* ------------------------------------------------------------ containers */

/* Removes site_id's container ref (id or name); a missing one is fine. */
static int remove_container(daemon_sites *s, const char *ref, site_op *op)
{
    daemon_docker_err err;
    int rc = daemon_docker_container_remove(s->docker, ref, true, false, &err);

    if (rc == BERTH_ENOENT)
        return 0;
    return rc == 0 ? 0 : site_op_fail(op, rc, "%s", err.message);
}

static int create_container(daemon_sites *s, const site_spec *spec,
                            const char *command_id, char id[DAEMON_DOCKER_ID_MAX],
                            site_op *op)
{
    daemon_docker_spec ds = {0};
    daemon_docker_port ports[64];
    daemon_docker_err err = {0};
    char name[DAEMON_DOCKER_NAME_MAX], data[4200];
    char **env = NULL, **cmd = NULL;
    size_t i;
    int rc, attempt;

    if (spec->n_ports > 64)
        return site_op_fail(op, BERTH_EINVAL, "at most 64 port bindings");
    env = calloc(spec->n_env + 1, sizeof(*env));
    cmd = calloc(spec->n_command + 1, sizeof(*cmd));
    if (env == NULL || cmd == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (i = 0; i < spec->n_env; i++) {
        if (asprintf(&env[i], "%s=%s", spec->env[i]->key,
                     spec->env[i]->value) < 0) {
            env[i] = NULL;
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    for (i = 0; i < spec->n_command; i++)
        cmd[i] = spec->command[i];
    for (i = 0; i < spec->n_ports; i++) {
        ports[i] = (daemon_docker_port){
            .container_port = (uint16_t)spec->ports[i]->container_port,
            .host_port = (uint16_t)spec->ports[i]->host_port,
            .proto = spec->ports[i]->protocol[0] != '\0'
                         ? spec->ports[i]->protocol
                         : NULL,
            .host_ip = spec->ports[i]->host_ip[0] != '\0'
                           ? spec->ports[i]->host_ip
                           : NULL,
        };
    }
    container_name(spec->id, name, sizeof(name));
    snprintf(data, sizeof(data), "%s/%s", s->volumes_dir, spec->id);
    rc = fs_mkdirs(data, 0755);
    if (rc != 0) {
        rc = site_op_fail(op, rc, "cannot create the data directory %s", data);
        goto out;
    }
    ds.name = name;
    ds.image = spec->image;
    ds.cmd = spec->n_command > 0 ? (const char *const *)cmd : NULL;
    ds.env = (const char *const *)env;
    ds.site = spec->id;
    ds.node = s->node;
    ds.command_id = command_id;
    ds.stop_signal = spec->stop_signal[0] != '\0' ? spec->stop_signal : NULL;
    if (spec->limits != NULL) {
        ds.memory_bytes = (int64_t)spec->limits->memory_bytes;
        ds.nano_cpus = (int64_t)spec->limits->cpu_millis * 1000000LL;
        ds.pids_limit = spec->limits->pids;
    }
    ds.ports = ports;
    ds.nports = spec->n_ports;
    ds.data_dir = data;
    ds.cap_add = site_caps;
    ds.readonly_rootfs = spec->read_only_root;
    ds.tty = spec->tty;
    for (attempt = 0; attempt < 2; attempt++) {
        rc = daemon_docker_container_create(s->docker, &ds, id, &err);
        if (rc != BERTH_EEXIST)
            break;
        /* A container of this site that the daemon lost track of. */
        rc = remove_container(s, name, op);
        if (rc != 0)
            goto out;
    }
    if (rc != 0)
        rc = site_op_fail(op, rc, "%s", err.message);
out:
    for (i = 0; env != NULL && env[i] != NULL; i++)
        free(env[i]);
    free(env);
    free(cmd);
    return rc;
}

int site_op_create(daemon_sites *s, site *st, const site_spec *spec,
                   bool start, const char *command_id, site_op *op)
{
    daemon_docker_state ds;
    daemon_docker_err err = {0};
    char old[DAEMON_DOCKER_ID_MAX], name[DAEMON_DOCKER_NAME_MAX];
    char id[DAEMON_DOCKER_ID_MAX];
    site_spec *copy = NULL;
    int rc;

    rc = spec_check(s, spec, op);
    if (rc != 0)
        return rc;
    rc = ensure_image(s, spec, op);
    if (rc != 0)
        return rc;
    copy = site_spec_dup(spec);
    if (copy == NULL)
        return BERTH_ENOMEM;
    copy->should_run = start;
    if (copy->node_id[0] == '\0') {
        free(copy->node_id);
        copy->node_id = strdup(s->node);
    }
    pthread_mutex_lock(&s->mu);
    snprintf(old, sizeof(old), "%s", st->container);
    pthread_mutex_unlock(&s->mu);
    container_name(spec->id, name, sizeof(name));
    rc = daemon_docker_container_inspect(s->docker, old[0] ? old : name, &ds,
                                         &err);
    if (rc == 0 && command_id != NULL && command_id[0] != '\0' &&
        strcmp(ds.command_id, command_id) == 0) {
        /* This command made it already; only the start may be missing. */
        snprintf(id, sizeof(id), "%s", ds.id);
    } else if (rc == 0 || rc == BERTH_ENOENT) {
        if (rc == 0) {
            /* A new spec replaces the container; the data stays. */
            pthread_mutex_lock(&s->mu);
            snprintf(st->container, sizeof(st->container), "%s", ds.id);
            st->deleting = true; /* its "destroy" is expected */
            pthread_mutex_unlock(&s->mu);
            if (ds.running)
                rc = site_op_stop(s, st, false, op);
            if (rc == 0)
                rc = remove_container(s, ds.id, op);
            pthread_mutex_lock(&s->mu);
            st->deleting = false;
            if (rc == 0)
                st->container[0] = '\0';
            pthread_mutex_unlock(&s->mu);
            if (rc != 0)
                goto out;
        }
        rc = create_container(s, copy, command_id, id, op);
        if (rc != 0)
            goto out;
    } else {
        rc = site_op_fail(op, rc, "%s", err.message);
        goto out;
    }
    rc = site_spec_save(s, copy);
    if (rc != 0) {
        rc = site_op_fail(op, rc, "cannot save the site's spec");
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    site_spec_free(st->spec);
    st->spec = copy;
    copy = NULL;
    snprintf(st->container, sizeof(st->container), "%s", id);
    st->tty = spec->tty;
    st->exit_code = 0;
    st->oom = false;
    st->restart_at = 0;
    st->last_op_wall = clock_wall_ms();
    if (!start)
        site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE,
                       "created");
    pthread_mutex_unlock(&s->mu);
    log_info("site created", "site=%s container=%.12s image=%s", st->id, id,
             spec->image);
    if (start)
        rc = site_op_start(s, st, true, op);
out:
    site_spec_free(copy);
    return rc;
}

int site_op_start(daemon_sites *s, site *st, bool user, site_op *op)
{
    daemon_docker_state ds;
    daemon_docker_err err = {0};
    char container[DAEMON_DOCKER_ID_MAX];
    char reason[SITE_REASON_MAX];
    bool tty;
    int rc;

    pthread_mutex_lock(&s->mu);
    snprintf(container, sizeof(container), "%s", st->container);
    tty = st->tty;
    if (user) {
        st->restarts = 0;
        st->window_count = 0;
        st->gave_up = false;
        st->restart_at = 0;
        st->last_op_wall = clock_wall_ms();
    }
    pthread_mutex_unlock(&s->mu);
    if (container[0] == '\0')
        return site_op_fail(op, BERTH_ENOENT, "site %s has no container",
                            st->id);
    rc = daemon_docker_container_inspect(s->docker, container, &ds, &err);
    if (rc != 0)
        return site_op_fail(op, rc, "%s", err.message);
    if (ds.running) {
        pthread_mutex_lock(&s->mu);
        st->expect_stop = false;
        if (st->state != BERTH__V1__SITE_STATE__SITE_STATE_RUNNING)
            site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, "");
        pthread_mutex_unlock(&s->mu);
        goto started;
    }
    /* Attached before the start, so not one byte of output is lost. */
    rc = daemon_console_attach(s->console, st->id, container, tty);
    if (rc != 0 && transient(rc))
        return site_op_fail(op, rc, "cannot attach to the console: %s",
                            berth_strerror(rc));
    pthread_mutex_lock(&s->mu);
    st->expect_stop = false;
    st->oom = false;
    st->start_wall_ns = clock_wall_ms() * 1000000LL;
    site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_STARTING, "");
    pthread_mutex_unlock(&s->mu);
    rc = daemon_docker_container_start(s->docker, container, &err);
    if (rc != 0) {
        snprintf(reason, sizeof(reason), "start failed: %.200s", err.message);
        pthread_mutex_lock(&s->mu);
        site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, reason);
        pthread_mutex_unlock(&s->mu);
        daemon_console_notice(s->console, st->id, "%s", reason);
        return site_op_fail(op, transient(rc) ? rc : BERTH_EIO, "%s",
                            err.message);
    }
    daemon_console_notice(s->console, st->id, "site started");
started:
    if (user)
        site_set_should_run(s, st, true);
    return 0;
}

/* Waits up to ms for the container to stop, in slices that keep the
 * command's ack timer alive. Returns 0 once it stopped, BERTH_ETIMEDOUT. */
static int wait_stopped(daemon_sites *s, const char *container, long ms,
                        site_op *op)
{
    int64_t deadline = clock_mono_ms() + ms;
    int code, rc;

    for (;;) {
        long left = (long)(deadline - clock_mono_ms());
        if (left <= 0)
            return BERTH_ETIMEDOUT;
        rc = daemon_docker_container_wait(
            s->docker, container, left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS,
            &code, NULL);
        if (rc == 0 || rc == BERTH_ENOENT)
            return 0;
        if (rc != BERTH_ETIMEDOUT)
            return rc;
        in_progress(op);
    }
}

static int signal_number(const char *name)
{
    static const struct {
        const char *name;
        int signo;
    } sigs[] = {
        {"SIGTERM", SIGTERM}, {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},
        {"SIGKILL", SIGKILL}, {"SIGHUP", SIGHUP},   {"SIGUSR1", SIGUSR1},
        {"SIGUSR2", SIGUSR2}, {"SIGWINCH", SIGWINCH},
    };
    size_t i;

    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (strcmp(name, sigs[i].name) == 0 ||
            strcmp(name, sigs[i].name + 3) == 0)
            return sigs[i].signo;
    }
    return SIGTERM;
}

int site_op_stop(daemon_sites *s, site *st, bool kill, site_op *op)
{
    daemon_docker_state ds;
    daemon_docker_err err = {0};
    char container[DAEMON_DOCKER_ID_MAX];
    site_spec *spec;
    long timeout_ms;
    int rc, signo;
    bool sent = false;

    pthread_mutex_lock(&s->mu);
    snprintf(container, sizeof(container), "%s", st->container);
    st->restart_at = 0;
    st->last_op_wall = clock_wall_ms();
    pthread_mutex_unlock(&s->mu);
    if (container[0] == '\0')
        return 0;
    rc = daemon_docker_container_inspect(s->docker, container, &ds, &err);
    if (rc == BERTH_ENOENT)
        return 0;
    if (rc != 0)
        return site_op_fail(op, rc, "%s", err.message);
    if (!ds.running) {
        pthread_mutex_lock(&s->mu);
        if (st->state != BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE &&
            st->state != BERTH__V1__SITE_STATE__SITE_STATE_CRASHED)
            site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE,
                           "stopped");
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    spec = site_spec_get(s, st);
    pthread_mutex_lock(&s->mu);
    st->expect_stop = true;
    site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_STOPPING,
                   kill ? "killing" : "stopping");
    pthread_mutex_unlock(&s->mu);
    timeout_ms = 1000L * (spec != NULL && spec->stop_timeout_seconds > 0
                              ? (long)spec->stop_timeout_seconds
                              : STOP_TIMEOUT_DEFAULT_S);
    if (!kill && spec != NULL && spec->stop_command[0] != '\0') {
        char line[1100];
        int n = snprintf(line, sizeof(line), "%s\n", spec->stop_command);
        sent = daemon_console_write(s->console, st->id, line, (size_t)n) == 0;
        if (!sent)
            log_warn("stop command could not be written; sending a signal",
                     "site=%s", st->id);
    }
    if (!kill && !sent) {
        signo = signal_number(spec != NULL ? spec->stop_signal : "");
        rc = daemon_docker_container_kill(s->docker, container, signo, &err);
        if (rc != 0 && rc != BERTH_ECONFLICT && rc != BERTH_ENOENT)
            goto fail;
    }
    if (!kill) {
        rc = wait_stopped(s, container, timeout_ms, op);
        if (rc == 0)
            goto out;
        log_warn("site did not stop in time; killing it", "site=%s timeout_ms=%ld",
                 st->id, timeout_ms);
        daemon_console_notice(s->console, st->id,
                              "site did not stop within %ld s; killing it",
                              timeout_ms / 1000);
    }
    rc = daemon_docker_container_kill(s->docker, container, SIGKILL, &err);
    if (rc != 0 && rc != BERTH_ECONFLICT && rc != BERTH_ENOENT)
        goto fail;
    rc = wait_stopped(s, container, KILL_WAIT_MS, op);
    if (rc != 0) {
        snprintf(err.message, sizeof(err.message),
                 "the container did not stop after SIGKILL");
        goto fail;
    }
out:
    site_spec_free(spec);
    return 0;
fail:
    site_spec_free(spec);
    pthread_mutex_lock(&s->mu);
    st->expect_stop = false;
    pthread_mutex_unlock(&s->mu);
    return site_op_fail(op, rc, "%s", err.message);
}

/* Parses Docker's "2026-11-22T06:30:01.123456789Z" into wall ms; 0 when it
 * cannot. */
static int64_t parse_docker_time(const char *t)
{
    struct tm tm = {0};
    const char *rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    int64_t ms;
    int digits = 0, frac = 0;

    if (rest == NULL)
        return 0;
    ms = (int64_t)timegm(&tm) * 1000;
    if (*rest == '.') {
        for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
            if (digits < 3) {
                frac = frac * 10 + (*rest - '0');
                digits++;
            }
        }
        while (digits++ < 3)
            frac *= 10;
        ms += frac;
    }
    return ms;
}

int site_op_restart(daemon_sites *s, site *st, site_op *op)
{
    daemon_docker_state ds;
    char container[DAEMON_DOCKER_ID_MAX];
    int rc;

    if (op->resume_ms != 0) {
        /* Redone after an interruption: a start after the command began
         * means the restart happened. */
        pthread_mutex_lock(&s->mu);
        snprintf(container, sizeof(container), "%s", st->container);
        pthread_mutex_unlock(&s->mu);
        if (container[0] != '\0' &&
            daemon_docker_container_inspect(s->docker, container, &ds, NULL) == 0 &&
            ds.running && parse_docker_time(ds.started_at) >= op->resume_ms) {
            log_info("restart already done", "site=%s", st->id);
            return 0;
        }
    }
    rc = site_op_stop(s, st, false, op);
    if (rc == 0)
        rc = site_op_start(s, st, true, op);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        log_warn("cannot remove", "path=%s error=%s", path, strerror(errno));
    return 0;
}

int site_op_delete(daemon_sites *s, site *st, bool purge, site_op *op)
{
    char container[DAEMON_DOCKER_ID_MAX], name[DAEMON_DOCKER_NAME_MAX];
    char path[4200];
    int rc;

    pthread_mutex_lock(&s->mu);
    snprintf(container, sizeof(container), "%s", st->container);
    st->expect_stop = true;
    st->deleting = true;
    st->restart_at = 0;
    pthread_mutex_unlock(&s->mu);
    container_name(st->id, name, sizeof(name));
    rc = remove_container(s, container[0] != '\0' ? container : name, op);
    if (rc == 0 && container[0] != '\0')
        rc = remove_container(s, name, op);
    if (rc != 0) {
        pthread_mutex_lock(&s->mu);
        st->deleting = false;
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    if (s->stats != NULL)
        daemon_stats_untrack(s->stats, st->id);
    daemon_console_forget(s->console, st->id);
    snprintf(path, sizeof(path), "%s/%s.pb", s->sites_dir, st->id);
    if (unlink(path) != 0 && errno != ENOENT)
        log_warn("cannot remove a site's spec", "path=%s error=%s", path,
                 strerror(errno));
    if (purge) {
        snprintf(path, sizeof(path), "%s/%s", s->volumes_dir, st->id);
        nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    }
    pthread_mutex_lock(&s->mu);
    st->container[0] = '\0';
    site_set_state(s, st, BERTH__V1__SITE_STATE__SITE_STATE_DELETED,
                   purge ? "deleted with its data" : "deleted");
    pthread_mutex_unlock(&s->mu);
    site_publish(s, st);
    site_remove(s, st);
    log_info("site deleted", "site=%s purge=%d", st->id, purge);
    return 0;
}

/* ------------------------------------------------------------ commands */

static int publish_result(daemon_sites *s, const char *command_id,
                          const char *site_id, int code, const char *message)
{
    Berth__V1__CommandResult r = BERTH__V1__COMMAND_RESULT__INIT;
    Berth__V1__Error e = BERTH__V1__ERROR__INIT;
    char subject[200], msg_id[100];

    r.command_id = (char *)command_id;
    r.site_id = (char *)site_id;
    r.node_id = s->node;
    r.ok = code == 0;
    r.finished_ms = clock_wall_ms();
    if (code != 0) {
        e.code = code;
        e.name = (char *)berth_errname(code);
        e.message = (char *)(message != NULL && message[0] != '\0'
                                 ? message
                                 : berth_strerror(code));
        e.status = berth_err_http_status(code);
        r.error = &e;
    }
    snprintf(subject, sizeof(subject), "command.result.%s", s->node);
    snprintf(msg_id, sizeof(msg_id), "result-%s", command_id);
    return bus_js_publish(s->bus, subject, &r.base, msg_id, RESULT_WAIT_MS);
}

static int apply_create(daemon_sites *s, const Berth__V1__SiteCreate *c,
                        site_op *op)
{
    site *st;
    bool fresh;
    int rc;

    if (c->spec == NULL)
        return site_op_fail(op, BERTH_EINVAL, "the command has no spec");
    rc = spec_check(s, c->spec, op);
    if (rc != 0)
        return rc;
    st = site_add(s, c->spec->id);
    if (st == NULL)
        return site_op_fail(op, BERTH_ENOMEM, "too many sites on this node");
    pthread_mutex_lock(&st->op);
    pthread_mutex_lock(&s->mu);
    fresh = st->spec == NULL;
    pthread_mutex_unlock(&s->mu);
    rc = site_op_create(s, st, c->spec, c->start, c->command_id, op);
    if (rc != 0 && fresh && !transient(rc)) {
        pthread_mutex_lock(&s->mu);
        fresh = st->spec == NULL; /* nothing was made: forget it */
        pthread_mutex_unlock(&s->mu);
        if (fresh)
            site_remove(s, st);
    }
    pthread_mutex_unlock(&st->op);
    site_put(s, st);
    return rc;
}

static int apply_power(daemon_sites *s, const Berth__V1__SitePower *p,
                       site_op *op)
{
    site *st = site_get(s, p->site_id);
    int rc;

    if (st == NULL)
        return site_op_fail(op, BERTH_ENOENT, "site %.64s is not on this node",
                            p->site_id);
    pthread_mutex_lock(&st->op);
    switch (p->action) {
    case BERTH__V1__POWER_ACTION__POWER_ACTION_START:
        rc = site_op_start(s, st, true, op);
        break;
    case BERTH__V1__POWER_ACTION__POWER_ACTION_STOP:
    case BERTH__V1__POWER_ACTION__POWER_ACTION_KILL:
        /* The intent first: a daemon killed half way must not start the
         * site again when it adopts its containers. */
        site_set_should_run(s, st, false);
        rc = site_op_stop(s, st,
                          p->action == BERTH__V1__POWER_ACTION__POWER_ACTION_KILL,
                          op);
        break;
    case BERTH__V1__POWER_ACTION__POWER_ACTION_RESTART:
        rc = site_op_restart(s, st, op);
        break;
    default:
        rc = site_op_fail(op, BERTH_EINVAL, "unknown power action %d",
                          (int)p->action);
    }
    pthread_mutex_unlock(&st->op);
    site_put(s, st);
    return rc;
}

static int apply_delete(daemon_sites *s, const Berth__V1__SiteDelete *d,
                        site_op *op)
{
    site *st;
    int rc;

    if (d->site_id[0] == '\0' || strlen(d->site_id) >= SITE_ID_MAX ||
        !bus_token_valid(d->site_id))
        return site_op_fail(op, BERTH_EINVAL, "the site id is missing or invalid");
    /* A site the daemon does not know may still have leftovers. */
    st = site_add(s, d->site_id);
    if (st == NULL)
        return site_op_fail(op, BERTH_ENOMEM, "too many sites on this node");
    pthread_mutex_lock(&st->op);
    rc = site_op_delete(s, st, d->purge_data, op);
    pthread_mutex_unlock(&st->op);
    site_put(s, st);
    return rc;
}

static int on_command(bus_msg *m, void *ud)
{
    daemon_sites *s = ud;
    const ProtobufCMessageDescriptor *d = m->msg->descriptor;
    daemon_ledger_entry e;
    site_op op = {.cmd = m};
    const char *cid, *site_id;
    int rc;

    if (d == &berth__v1__site_create__descriptor) {
        const Berth__V1__SiteCreate *c = (const void *)m->msg;
        cid = c->command_id;
        site_id = c->spec != NULL ? c->spec->id : "";
    } else if (d == &berth__v1__site_power__descriptor) {
        cid = ((const Berth__V1__SitePower *)(const void *)m->msg)->command_id;
        site_id = ((const Berth__V1__SitePower *)(const void *)m->msg)->site_id;
    } else if (d == &berth__v1__site_delete__descriptor) {
        cid = ((const Berth__V1__SiteDelete *)(const void *)m->msg)->command_id;
        site_id = ((const Berth__V1__SiteDelete *)(const void *)m->msg)->site_id;
    } else {
        log_warn("unexpected command type dropped", "subject=%s", m->subject);
        return BERTH_EINVAL;
    }
    daemon_ledger_get(s->ledger, cid, &e);
    if (e.state == LEDGER_DONE) {
        log_info("command already done; result sent again", "command=%s",
                 cid);
        return publish_result(s, cid, site_id, e.code, e.message);
    }
    if (e.state == LEDGER_NEW) {
        rc = daemon_ledger_begin(s->ledger, cid, clock_wall_ms());
        if (rc == BERTH_EINVAL) {
            log_warn("command without a valid id dropped", "subject=%s",
                     m->subject);
            return rc;
        }
        if (rc != 0)
            return BERTH_EBUSY; /* the disk may come back */
    } else {
        op.resume_ms = e.begun_ms;
        log_info("command interrupted before; redoing it", "command=%s", cid);
    }
    log_info("command", "command=%s subject=%s site=%s", cid, m->subject,
             site_id);
    if (d == &berth__v1__site_create__descriptor)
        rc = apply_create(s, (const void *)m->msg, &op);
    else if (d == &berth__v1__site_power__descriptor)
        rc = apply_power(s, (const void *)m->msg, &op);
    else
        rc = apply_delete(s, (const void *)m->msg, &op);
    if (transient(rc)) {
        log_warn("command will be retried", "command=%s error=%s", cid,
                 op.error[0] ? op.error : berth_strerror(rc));
        return rc;
    }
    if (rc != 0)
        log_warn("command failed", "command=%s error=%s", cid,
                 op.error[0] ? op.error : berth_strerror(rc));
    if (daemon_ledger_done(s->ledger, cid, rc, op.error) != 0)
        return BERTH_EBUSY;
    rc = publish_result(s, cid, site_id, rc, op.error);
    return rc != 0 ? BERTH_EUNAVAIL : 0;
}

int daemon_sites_status(daemon_sites *s, const char *site_id,
                        Berth__V1__SiteStatus *out, char *reason,
                        size_t reasonlen)
{
    site *st = site_id != NULL ? site_get(s, site_id) : NULL;

    berth__v1__site_status__init(out);
    if (reasonlen > 0)
        reason[0] = '\0';
    if (st == NULL)
        return BERTH_ENOENT;
    pthread_mutex_lock(&s->mu);
    out->state = st->state;
    out->exit_code = st->exit_code;
    out->oom_killed = st->oom;
    out->restarts = st->restarts;
    snprintf(reason, reasonlen, "%s", st->reason);
    pthread_mutex_unlock(&s->mu);
    out->site_id = (char *)site_id;
    out->node_id = s->node;
    out->reason = reason;
    out->at_ms = clock_wall_ms();
    site_put(s, st);
    return 0;
}

int sites_commands_start(daemon_sites *s)
{
    return bus_js_consume(s->bus, "node-commands", s->node, on_command, s,
                          &s->worker);
}
