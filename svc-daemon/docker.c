/* docker.c - the Docker Engine API driver: HTTP over the unix socket
 * (uhttp.h), JSON with jansson. See docker.h for errors, limits and
 * threads.
 */
#include "svc-daemon/docker.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "svc-daemon/uhttp.h"

/* The newest API version this driver was written against; a newer engine is
 * spoken to in this version, an older one in its own. */
#define DOCKER_API_MAX_MAJOR 1
#define DOCKER_API_MAX_MINOR 43
/* The oldest we accept: 1.40 brought everything used here. */
#define DOCKER_API_MIN_MINOR 40

#define DOCKER_REPLY_MAX (8u * 1024 * 1024) /* cap on a reply body */
#define DOCKER_EVENT_LINE_MAX (64u * 1024)  /* cap on one events line */

struct daemon_docker {
    char *sock_path;
    long connect_timeout_ms;
    long timeout_ms;
    pthread_mutex_t lock; /* guards api and engine_version */
    char api[16];         /* "" until negotiated */
    char engine_version[64];
};

/* One request: what to send, where the reply goes. */
typedef struct docker_req {
    const char *method;
    char path[512]; /* without the version prefix */
    json_t *body;   /* borrowed; NULL: no body */
    long extra_timeout_ms;
    bool unversioned;
} docker_req;

static void err_set(daemon_docker_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(daemon_docker_err *err, int status, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    err->http_status = status;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* Container names and ids go into URL paths unescaped, so only accept the
 * characters Docker allows in names anyway. */
static int valid_ref(const char *ref)
{
    size_t i;

    if (ref == NULL || ref[0] == '\0' || strlen(ref) >= DAEMON_DOCKER_NAME_MAX)
        return 0;
    for (i = 0; ref[i] != '\0'; i++) {
        char c = ref[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

int daemon_docker_new(const daemon_docker_cfg *cfg, daemon_docker **out)
{
    daemon_docker *d = NULL;
    const char *sock;
    int rc;

    *out = NULL;
    sock = cfg != NULL && cfg->sock_path != NULL ? cfg->sock_path
                                                 : DAEMON_DOCKER_SOCK_DEFAULT;
    if (sock[0] == '\0')
        return BERTH_EINVAL;
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    d->sock_path = strdup(sock);
    if (d->sock_path == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    d->connect_timeout_ms =
        cfg != NULL && cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
                                                   : 2000;
    d->timeout_ms = cfg != NULL && cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    pthread_mutex_init(&d->lock, NULL);
    *out = d;
    d = NULL;
    rc = 0;
out:
    if (d != NULL)
        free(d->sock_path);
    free(d);
    return rc;
}

void daemon_docker_free(daemon_docker *d)
{
    if (d == NULL)
        return;
    pthread_mutex_destroy(&d->lock);
    free(d->sock_path);
    free(d);
}

/* ---------------------------------------------------------------- transport */

/* Collects a reply body, up to its cap. */
static int on_body(void *arg, int status, const char *p, size_t n)
{
    (void)status;
    return buf_append(arg, p, n) != 0; /* past the cap: stop */
}

/* Maps a transport failure (uhttp_request()'s code) onto the code callers
 * get and a sentence. */
static int transport_failure(daemon_docker *d, int rc, const char *what,
                             const char *why, daemon_docker_err *err)
{
    switch (rc) {
    case BERTH_ETIMEDOUT:
        err_set(err, 0, "docker: %s: timed out: %s", what, why);
        return BERTH_ETIMEDOUT;
    case BERTH_EUNAVAIL:
    case BERTH_EPROTO:
        /* Docker may come back as a different version: ask again then. */
        pthread_mutex_lock(&d->lock);
        d->api[0] = '\0';
        pthread_mutex_unlock(&d->lock);
        err_set(err, 0, "docker: %s: engine unavailable at %s: %s", what,
                d->sock_path, why);
        return BERTH_EUNAVAIL;
    case BERTH_ENOMEM:
        return BERTH_ENOMEM;
    default:
        err_set(err, 0, "docker: %s: %s", what, why);
        return rc == BERTH_EINVAL ? BERTH_EINVAL : BERTH_EIO;
    }
}

/* Maps an HTTP error status onto a berth code. */
static int status_to_rc(long status, const char *message)
{
    if (status == 404)
        return BERTH_ENOENT;
    if (status == 409)
        return message != NULL && strstr(message, "already in use") != NULL
                   ? BERTH_EEXIST
                   : BERTH_ECONFLICT;
    if (status == 400)
        return BERTH_EINVAL;
    if (status == 401 || status == 403)
        return BERTH_EPERM;
    if (status >= 500)
        return BERTH_EIO;
    return BERTH_EPROTO;
}

/* Percent-encodes s for a URL into a new string (free()), or NULL. */
static char *escape(const char *s)
{
    size_t size = 3 * strlen(s) + 1;
    char *out = malloc(size);

    if (out != NULL && uhttp_escape(s, out, size) != 0) {
        free(out);
        out = NULL;
    }
    return out;
}

static int negotiate(daemon_docker *d, char api[16], daemon_docker_err *err);

/* Sends r and returns 0 with the parsed JSON reply in *reply (NULL when the
 * reply was empty or reply is NULL; caller frees with json_decref()) for a
 * 2xx or 304 status, whose value goes to *status when not NULL. Any other
 * status becomes a berth code with Docker's message in err. */
static int docker_call(daemon_docker *d, docker_req *r, long *status,
                       json_t **reply, daemon_docker_err *err)
{
    char *body = NULL;
    char why[256];
    char api[16];
    char target[640];
    json_t *j = NULL;
    json_error_t jerr;
    uhttp_res res;
    long st = 0;
    buf out;
    int rc;

    buf_init(&out, DOCKER_REPLY_MAX);
    if (reply != NULL)
        *reply = NULL;
    if (r->unversioned) {
        snprintf(target, sizeof(target), "%s", r->path);
    } else {
        rc = negotiate(d, api, err);
        if (rc != 0)
            goto out;
        snprintf(target, sizeof(target), "/v%s%s", api, r->path);
    }
    if (r->body != NULL) {
        body = json_dumps(r->body, JSON_COMPACT);
        if (body == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    rc = uhttp_request(&(uhttp_req){.sock_path = d->sock_path,
                                    .method = r->method,
                                    .target = target,
                                    .body = body,
                                    .body_len = body != NULL ? strlen(body) : 0,
                                    .connect_timeout_ms = d->connect_timeout_ms,
                                    .timeout_ms =
                                        d->timeout_ms + r->extra_timeout_ms,
                                    .on_body = on_body,
                                    .arg = &out},
                       &res, why, sizeof(why));
    if (rc != 0) {
        rc = transport_failure(d, rc, r->path, why, err);
        goto out;
    }
    if (res.stopped) {
        err_set(err, 0, "docker: %s: reply larger than %u bytes", r->path,
                DOCKER_REPLY_MAX);
        rc = BERTH_ETOOBIG;
        goto out;
    }
    st = res.status;
    if (status != NULL)
        *status = st;
    if (out.len > 0) {
        j = json_loadb(out.data, out.len, 0, &jerr);
        /* Docker's errors are JSON; a few success replies are plain text. */
    }
    if ((st >= 200 && st < 300) || st == 304) {
        if (reply != NULL && st != 204 && st != 304) {
            if (j == NULL && out.len > 0) {
                err_set(err, (int)st, "docker: %s %s: reply is not JSON: %s",
                        r->method, r->path, jerr.text);
                rc = BERTH_EPROTO;
                goto out;
            }
            *reply = j;
            j = NULL;
        }
        rc = 0;
        goto out;
    }
    {
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (msg == NULL)
            msg = out.len > 0 ? out.data : "(no message)";
        err_set(err, (int)st, "docker: %s %s: %ld %s", r->method, r->path, st,
                msg);
        rc = status_to_rc(st, msg);
    }
out:
    json_decref(j);
    free(body);
    buf_free(&out);
    return rc;
}

/* Parses "1.41" into major and minor. Returns 0 or BERTH_EPROTO. */
static int parse_api(const char *s, int *major, int *minor)
{
    char tail;

    if (s == NULL || sscanf(s, "%d.%d%c", major, minor, &tail) != 2)
        return BERTH_EPROTO;
    return 0;
}

/* Copies the negotiated API version into api, asking GET /version first when
 * no version is known. Two threads may both ask; both write the same. */
static int negotiate(daemon_docker *d, char api[16], daemon_docker_err *err)
{
    docker_req r = {.method = "GET", .path = "/version", .unversioned = true};
    json_t *v = NULL;
    const char *ver;
    int major, minor;
    int rc;

    pthread_mutex_lock(&d->lock);
    memcpy(api, d->api, 16);
    pthread_mutex_unlock(&d->lock);
    if (api[0] != '\0')
        return 0;

    rc = docker_call(d, &r, NULL, &v, err);
    if (rc != 0)
        goto out;
    ver = json_string_value(json_object_get(v, "ApiVersion"));
    rc = parse_api(ver, &major, &minor);
    if (rc != 0) {
        err_set(err, 0, "docker: /version: no usable ApiVersion");
        goto out;
    }
    if (major != DOCKER_API_MAX_MAJOR || minor < DOCKER_API_MIN_MINOR) {
        err_set(err, 0, "docker: engine API %s is older than 1.%d", ver,
                DOCKER_API_MIN_MINOR);
        rc = BERTH_ENOTSUP;
        goto out;
    }
    if (minor > DOCKER_API_MAX_MINOR)
        minor = DOCKER_API_MAX_MINOR;
    snprintf(api, 16, "%d.%d", major, minor);
    pthread_mutex_lock(&d->lock);
    memcpy(d->api, api, 16);
    copy_str(d->engine_version, sizeof(d->engine_version),
             json_string_value(json_object_get(v, "Version")));
    pthread_mutex_unlock(&d->lock);
out:
    json_decref(v);
    return rc;
}

/* ---------------------------------------------------------------- engine */

int daemon_docker_api_version(daemon_docker *d, char api[16],
                              daemon_docker_err *err)
{
    return negotiate(d, api, err);
}

int daemon_docker_info_get(daemon_docker *d, daemon_docker_info *info,
                           daemon_docker_err *err)
{
    docker_req r = {.method = "GET", .path = "/info"};
    json_t *j = NULL;
    int rc;

    memset(info, 0, sizeof(*info));
    rc = docker_call(d, &r, NULL, &j, err);
    if (rc != 0)
        goto out;
    pthread_mutex_lock(&d->lock);
    memcpy(info->api_version, d->api, sizeof(info->api_version));
    memcpy(info->version, d->engine_version, sizeof(info->version));
    pthread_mutex_unlock(&d->lock);
    info->ncpu = (int)json_integer_value(json_object_get(j, "NCPU"));
    info->mem_total = json_integer_value(json_object_get(j, "MemTotal"));
    if (info->ncpu <= 0 || info->mem_total <= 0) {
        err_set(err, 0, "docker: /info: no NCPU or MemTotal");
        rc = BERTH_EPROTO;
    }
out:
    json_decref(j);
    return rc;
}

int daemon_docker_image_inspect(daemon_docker *d, const char *image,
                                daemon_docker_err *err)
{
    docker_req r = {.method = "GET"};
    char *esc = NULL;
    int rc;

    if (image == NULL || image[0] == '\0' || strlen(image) > 256) {
        err_set(err, 0, "docker: invalid image name");
        return BERTH_EINVAL;
    }
    esc = escape(image);
    if (esc == NULL)
        return BERTH_ENOMEM;
    snprintf(r.path, sizeof(r.path), "/images/%s/json", esc);
    rc = docker_call(d, &r, NULL, NULL, err);
    free(esc);
    return rc;
}

/* ---------------------------------------------------------------- containers */

/* Appends the NULL-terminated strs to a new JSON array in *arr. */
static int str_array(const char *const *strs, json_t **arr)
{
    json_t *a = json_array();
    size_t i;

    *arr = NULL;
    if (a == NULL)
        return BERTH_ENOMEM;
    for (i = 0; strs != NULL && strs[i] != NULL; i++) {
        if (json_array_append_new(a, json_string(strs[i])) != 0) {
            json_decref(a);
            return BERTH_EINVAL; /* not UTF-8, or no memory */
        }
    }
    *arr = a;
    return 0;
}

/* Builds the body of POST /containers/create. Returns 0 and *out (caller
 * frees with json_decref()) or a berth code. */
static int create_body(const daemon_docker_spec *s, json_t **out,
                       daemon_docker_err *err)
{
    json_t *body = NULL, *host = NULL, *arr = NULL, *labels = NULL;
    json_t *exposed = NULL, *bindings = NULL;
    size_t i;
    int rc;

    *out = NULL;
    body = json_object();
    host = json_object();
    labels = json_object();
    exposed = json_object();
    bindings = json_object();
    if (body == NULL || host == NULL || labels == NULL || exposed == NULL ||
        bindings == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    json_object_set_new(body, "Image", json_string(s->image));
    if (s->cmd != NULL) {
        rc = str_array(s->cmd, &arr);
        if (rc != 0)
            goto out;
        json_object_set_new(body, "Cmd", arr);
    }
    rc = str_array(s->env, &arr);
    if (rc != 0)
        goto out;
    json_object_set_new(body, "Env", arr);
    if (s->site != NULL)
        json_object_set_new(labels, "berth.site", json_string(s->site));
    if (s->node != NULL)
        json_object_set_new(labels, "berth.node", json_string(s->node));
    if (s->command_id != NULL)
        json_object_set_new(labels, "berth.command", json_string(s->command_id));
    if (s->stop_signal != NULL && s->stop_signal[0] != '\0')
        json_object_set_new(body, "StopSignal", json_string(s->stop_signal));
    json_object_set(body, "Labels", labels);
    /* Console: stdin stays open for input; output always attached. */
    json_object_set_new(body, "OpenStdin", json_true());
    json_object_set_new(body, "AttachStdin", json_true());
    json_object_set_new(body, "StdinOnce", json_false());
    json_object_set_new(body, "AttachStdout", json_true());
    json_object_set_new(body, "AttachStderr", json_true());
    json_object_set_new(body, "Tty", json_boolean(s->tty));

    for (i = 0; i < s->nports; i++) {
        const daemon_docker_port *p = &s->ports[i];
        const char *proto = p->proto != NULL ? p->proto : "tcp";
        char key[32], hport[8];
        json_t *b, *list;

        if (p->container_port == 0 ||
            (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)) {
            err_set(err, 0, "docker: invalid port binding %u/%s",
                    p->container_port, proto);
            rc = BERTH_EINVAL;
            goto out;
        }
        snprintf(key, sizeof(key), "%u/%s", p->container_port, proto);
        snprintf(hport, sizeof(hport), "%u", p->host_port);
        json_object_set_new(exposed, key, json_object());
        list = json_object_get(bindings, key);
        if (list == NULL) {
            list = json_array();
            json_object_set_new(bindings, key, list);
        }
        b = json_pack("{s:s, s:s}", "HostIp",
                      p->host_ip != NULL ? p->host_ip : "", "HostPort",
                      p->host_port != 0 ? hport : "");
        if (b == NULL || json_array_append_new(list, b) != 0) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    json_object_set(body, "ExposedPorts", exposed);
    json_object_set(host, "PortBindings", bindings);

    if (s->memory_bytes > 0) {
        json_object_set_new(host, "Memory", json_integer(s->memory_bytes));
        json_object_set_new(host, "MemorySwap", json_integer(s->memory_bytes));
    }
    if (s->nano_cpus > 0)
        json_object_set_new(host, "NanoCpus", json_integer(s->nano_cpus));
    if (s->pids_limit > 0)
        json_object_set_new(host, "PidsLimit", json_integer(s->pids_limit));
    if (s->data_dir != NULL) {
        char bind[4200];
        if (s->data_dir[0] != '/' || strchr(s->data_dir, ':') != NULL ||
            strlen(s->data_dir) > 4096) {
            err_set(err, 0, "docker: data dir must be an absolute path "
                            "without ':'");
            rc = BERTH_EINVAL;
            goto out;
        }
        snprintf(bind, sizeof(bind), "%s:/data:rw", s->data_dir);
        json_object_set_new(host, "Binds", json_pack("[s]", bind));
    }
    json_object_set_new(host, "SecurityOpt",
                        json_pack("[s]", "no-new-privileges"));
    json_object_set_new(host, "CapDrop", json_pack("[s]", "ALL"));
    rc = str_array(s->cap_add, &arr);
    if (rc != 0)
        goto out;
    json_object_set_new(host, "CapAdd", arr);
    if (s->readonly_rootfs) {
        json_object_set_new(host, "ReadonlyRootfs", json_true());
        json_object_set_new(host, "Tmpfs",
                            json_pack("{s:s}", "/tmp", "rw,size=64m,mode=1777"));
    }
    /* A small init (Docker's docker-init) as PID 1 forwards the stop
     * signal, which a server running as PID 1 would otherwise ignore, and
     * reaps orphans. */
    json_object_set_new(host, "Init", json_true());
    json_object_set_new(host, "RestartPolicy", json_pack("{s:s}", "Name", "no"));
    /* The daemon keeps its own console ring; Docker's log only needs to be
     * small (its default json-file log grows without limit). */
    json_object_set_new(host, "LogConfig",
                        json_pack("{s:s, s:{s:s, s:s}}", "Type", "local",
                                  "Config", "max-size", "5m", "max-file",
                                  "2"));
    json_object_set(body, "HostConfig", host);
    *out = body;
    body = NULL;
    rc = 0;
out:
    json_decref(body);
    json_decref(host);
    json_decref(labels);
    json_decref(exposed);
    json_decref(bindings);
    return rc;
}

int daemon_docker_container_create(daemon_docker *d,
                                   const daemon_docker_spec *spec,
                                   char id[DAEMON_DOCKER_ID_MAX],
                                   daemon_docker_err *err)
{
    docker_req r = {.method = "POST"};
    json_t *body = NULL, *reply = NULL;
    const char *cid;
    int rc;

    id[0] = '\0';
    if (!valid_ref(spec->name) || spec->image == NULL ||
        spec->image[0] == '\0') {
        err_set(err, 0, "docker: create needs a valid name and an image");
        return BERTH_EINVAL;
    }
    rc = create_body(spec, &body, err);
    if (rc != 0)
        goto out;
    r.body = body;
    snprintf(r.path, sizeof(r.path), "/containers/create?name=%s", spec->name);
    rc = docker_call(d, &r, NULL, &reply, err);
    if (rc != 0)
        goto out;
    cid = json_string_value(json_object_get(reply, "Id"));
    if (cid == NULL || strlen(cid) >= DAEMON_DOCKER_ID_MAX) {
        err_set(err, 0, "docker: create: no Id in the reply");
        rc = BERTH_EPROTO;
        goto out;
    }
    copy_str(id, DAEMON_DOCKER_ID_MAX, cid);
out:
    json_decref(body);
    json_decref(reply);
    return rc;
}

/* POST /containers/<ref>/<verb><query> with no body and no reply. */
static int container_post(daemon_docker *d, const char *ref, const char *verb,
                          const char *query, long extra_ms,
                          daemon_docker_err *err)
{
    docker_req r = {.method = "POST", .extra_timeout_ms = extra_ms};

    if (!valid_ref(ref)) {
        err_set(err, 0, "docker: invalid container reference");
        return BERTH_EINVAL;
    }
    snprintf(r.path, sizeof(r.path), "/containers/%s/%s%s", ref, verb, query);
    return docker_call(d, &r, NULL, NULL, err);
}

int daemon_docker_container_start(daemon_docker *d, const char *ref,
                                  daemon_docker_err *err)
{
    return container_post(d, ref, "start", "", 0, err);
}

int daemon_docker_container_stop(daemon_docker *d, const char *ref,
                                 int timeout_s, daemon_docker_err *err)
{
    char q[32];

    if (timeout_s < 0)
        timeout_s = 0;
    snprintf(q, sizeof(q), "?t=%d", timeout_s);
    return container_post(d, ref, "stop", q, timeout_s * 1000L, err);
}

int daemon_docker_container_kill(daemon_docker *d, const char *ref, int signo,
                                 daemon_docker_err *err)
{
    char q[32];

    if (signo <= 0 || signo > 64) {
        err_set(err, 0, "docker: invalid signal %d", signo);
        return BERTH_EINVAL;
    }
    snprintf(q, sizeof(q), "?signal=%d", signo);
    return container_post(d, ref, "kill", q, 0, err);
}

int daemon_docker_container_restart(daemon_docker *d, const char *ref,
                                    int timeout_s, daemon_docker_err *err)
{
    char q[32];

    if (timeout_s < 0)
        timeout_s = 0;
    snprintf(q, sizeof(q), "?t=%d", timeout_s);
    return container_post(d, ref, "restart", q, timeout_s * 1000L, err);
}

int daemon_docker_container_remove(daemon_docker *d, const char *ref,
                                   bool force, bool volumes,
                                   daemon_docker_err *err)
{
    docker_req r = {.method = "DELETE"};

    if (!valid_ref(ref)) {
        err_set(err, 0, "docker: invalid container reference");
        return BERTH_EINVAL;
    }
    snprintf(r.path, sizeof(r.path), "/containers/%s?force=%d&v=%d", ref,
             force ? 1 : 0, volumes ? 1 : 0);
    return docker_call(d, &r, NULL, NULL, err);
}

int daemon_docker_container_wait(daemon_docker *d, const char *ref,
                                 long timeout_ms, int *exit_code,
                                 daemon_docker_err *err)
{
    docker_req r = {.method = "POST"};
    json_t *reply = NULL;
    json_t *code;
    int rc;

    *exit_code = -1;
    if (!valid_ref(ref)) {
        err_set(err, 0, "docker: invalid container reference");
        return BERTH_EINVAL;
    }
    /* The call's own limit is the wait: replace the default total. */
    r.extra_timeout_ms = timeout_ms > 0 ? timeout_ms - d->timeout_ms : 0;
    snprintf(r.path, sizeof(r.path), "/containers/%s/wait", ref);
    rc = docker_call(d, &r, NULL, &reply, err);
    if (rc != 0)
        goto out;
    code = json_object_get(reply, "StatusCode");
    if (!json_is_integer(code)) {
        err_set(err, 0, "docker: wait: no StatusCode");
        rc = BERTH_EPROTO;
        goto out;
    }
    *exit_code = (int)json_integer_value(code);
out:
    json_decref(reply);
    return rc;
}

static const char *label_of(json_t *labels, const char *key)
{
    const char *v = json_string_value(json_object_get(labels, key));

    return v != NULL ? v : "";
}

int daemon_docker_container_inspect(daemon_docker *d, const char *ref,
                                    daemon_docker_state *st,
                                    daemon_docker_err *err)
{
    docker_req r = {.method = "GET"};
    json_t *j = NULL, *s, *labels;
    const char *name;
    int rc;

    memset(st, 0, sizeof(*st));
    if (!valid_ref(ref)) {
        err_set(err, 0, "docker: invalid container reference");
        return BERTH_EINVAL;
    }
    snprintf(r.path, sizeof(r.path), "/containers/%s/json", ref);
    rc = docker_call(d, &r, NULL, &j, err);
    if (rc != 0)
        goto out;
    s = json_object_get(j, "State");
    if (!json_is_object(s)) {
        err_set(err, 0, "docker: inspect: no State");
        rc = BERTH_EPROTO;
        goto out;
    }
    copy_str(st->id, sizeof(st->id), json_string_value(json_object_get(j, "Id")));
    name = json_string_value(json_object_get(j, "Name"));
    copy_str(st->name, sizeof(st->name),
             name != NULL && name[0] == '/' ? name + 1 : name);
    labels = json_object_get(json_object_get(j, "Config"), "Labels");
    copy_str(st->site, sizeof(st->site), label_of(labels, "berth.site"));
    copy_str(st->command_id, sizeof(st->command_id),
             label_of(labels, "berth.command"));
    st->tty = json_is_true(
        json_object_get(json_object_get(j, "Config"), "Tty"));
    st->memory_limit = (int64_t)json_integer_value(
        json_object_get(json_object_get(j, "HostConfig"), "Memory"));
    copy_str(st->ip, sizeof(st->ip),
             json_string_value(json_object_get(
                 json_object_get(j, "NetworkSettings"), "IPAddress")));
    copy_str(st->status, sizeof(st->status),
             json_string_value(json_object_get(s, "Status")));
    st->running = json_is_true(json_object_get(s, "Running"));
    st->oom_killed = json_is_true(json_object_get(s, "OOMKilled"));
    st->exit_code = (int)json_integer_value(json_object_get(s, "ExitCode"));
    st->pid = (int)json_integer_value(json_object_get(s, "Pid"));
    copy_str(st->started_at, sizeof(st->started_at),
             json_string_value(json_object_get(s, "StartedAt")));
    copy_str(st->finished_at, sizeof(st->finished_at),
             json_string_value(json_object_get(s, "FinishedAt")));
out:
    json_decref(j);
    return rc;
}

int daemon_docker_container_list(daemon_docker *d, const char *label,
                                 daemon_docker_summary **items, size_t *n,
                                 daemon_docker_err *err)
{
    docker_req r = {.method = "GET"};
    json_t *filters = NULL, *j = NULL, *c;
    daemon_docker_summary *list = NULL;
    char *fs = NULL, *esc = NULL;
    size_t i;
    int rc;

    *items = NULL;
    *n = 0;
    if (label == NULL || label[0] == '\0' || strlen(label) > 256) {
        err_set(err, 0, "docker: list needs a label");
        return BERTH_EINVAL;
    }
    filters = json_pack("{s:[s]}", "label", label);
    fs = filters != NULL ? json_dumps(filters, JSON_COMPACT) : NULL;
    esc = fs != NULL ? escape(fs) : NULL;
    if (esc == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    snprintf(r.path, sizeof(r.path), "/containers/json?all=1&filters=%s", esc);
    rc = docker_call(d, &r, NULL, &j, err);
    if (rc != 0)
        goto out;
    if (!json_is_array(j)) {
        err_set(err, 0, "docker: list: reply is not an array");
        rc = BERTH_EPROTO;
        goto out;
    }
    list = calloc(json_array_size(j) + 1, sizeof(*list));
    if (list == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    json_array_foreach(j, i, c) {
        const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
        copy_str(list[i].id, sizeof(list[i].id),
                 json_string_value(json_object_get(c, "Id")));
        copy_str(list[i].name, sizeof(list[i].name),
                 name != NULL && name[0] == '/' ? name + 1 : name);
        copy_str(list[i].site, sizeof(list[i].site),
                 label_of(json_object_get(c, "Labels"), "berth.site"));
        copy_str(list[i].state, sizeof(list[i].state),
                 json_string_value(json_object_get(c, "State")));
    }
    *items = list;
    *n = json_array_size(j);
    list = NULL;
out:
    free(list);
    json_decref(j);
    json_decref(filters);
    free(fs);
    free(esc);
    return rc;
}

/* ---------------------------------------------------------------- events */

/* A streamed reply of JSON lines (/events, /images/create). */
typedef struct events_ctx events_ctx;
struct events_ctx {
    buf line;    /* the line being assembled; the error body when not 200 */
    int (*line_fn)(events_ctx *x, const char *p, size_t len); /* !0: stop */
    daemon_docker_event_cb cb;
    daemon_docker_pull_cb pull_cb;
    void *arg;
    const atomic_bool *stop;
    bool stopped; /* cb or *stop asked to stop */
    bool too_long;
    char error[256]; /* an error line of a pull */
};

/* Parses one line of /events and hands it to the callback. Lines that are
 * not container events we understand are skipped. Returns non-zero to stop. */
static int events_line(events_ctx *x, const char *p, size_t len)
{
    daemon_docker_event ev;
    json_t *j, *actor, *attrs;
    const char *code;
    int stop = 0;

    j = json_loadb(p, len, 0, NULL);
    if (j == NULL)
        return 0;
    actor = json_object_get(j, "Actor");
    attrs = json_object_get(actor, "Attributes");
    memset(&ev, 0, sizeof(ev));
    copy_str(ev.action, sizeof(ev.action),
             json_string_value(json_object_get(j, "Action")));
    copy_str(ev.id, sizeof(ev.id), json_string_value(json_object_get(actor, "ID")));
    copy_str(ev.name, sizeof(ev.name), label_of(attrs, "name"));
    copy_str(ev.site, sizeof(ev.site), label_of(attrs, "berth.site"));
    code = json_string_value(json_object_get(attrs, "exitCode"));
    ev.exit_code = code != NULL ? atoi(code) : -1;
    ev.time_ns = json_integer_value(json_object_get(j, "timeNano"));
    if (ev.action[0] != '\0' && ev.id[0] != '\0')
        stop = x->cb(&ev, x->arg);
    json_decref(j);
    return stop;
}

static int on_events(void *arg, int status, const char *p, size_t total)
{
    events_ctx *x = arg;
    size_t i, start = 0;

    if (status != 200) {
        buf_append(&x->line, p, total); /* kept for the message, as capped */
        return 0;
    }
    for (i = 0; i < total; i++) {
        if (p[i] != '\n')
            continue;
        if (buf_append(&x->line, p + start, i - start) != 0) {
            x->too_long = true;
            return 1;
        }
        if (x->line.len > 0 && x->line_fn(x, x->line.data, x->line.len)) {
            x->stopped = true;
            return 1;
        }
        buf_reset(&x->line);
        start = i + 1;
    }
    if (buf_append(&x->line, p + start, total - start) != 0) {
        x->too_long = true;
        return 1;
    }
    return 0;
}

/* Runs a streamed request on x (line_fn set, line initialised) with a
 * total limit of total_ms (0: none). Returns 0 when the stream ended with a
 * 200 reply or was stopped (x->stopped), or a berth code with err set. */
static int stream_perform(daemon_docker *d, events_ctx *x, const char *method,
                          const char *target, long total_ms, const char *what,
                          daemon_docker_err *err)
{
    char why[256];
    uhttp_res res;
    int rc;

    rc = uhttp_request(&(uhttp_req){.sock_path = d->sock_path,
                                    .method = method,
                                    .target = target,
                                    .connect_timeout_ms = d->connect_timeout_ms,
                                    .timeout_ms = total_ms,
                                    .on_body = on_events,
                                    .arg = x,
                                    .stop = x->stop},
                       &res, why, sizeof(why));
    if (res.stopped && !x->too_long)
        x->stopped = true;
    if (x->stopped) {
        rc = 0;
    } else if (x->too_long) {
        err_set(err, res.status, "docker: %s: a line longer than %u bytes",
                what, DOCKER_EVENT_LINE_MAX);
        rc = BERTH_ETOOBIG;
    } else if (rc != 0) {
        rc = transport_failure(d, rc, what, why, err);
        if (rc != BERTH_ENOMEM && rc != BERTH_ETIMEDOUT)
            rc = BERTH_EUNAVAIL;
    } else if (res.status != 200) {
        json_t *j = json_loadb(x->line.data != NULL ? x->line.data : "",
                               x->line.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));

        if (msg == NULL)
            msg = x->line.len > 0 ? x->line.data : "(no message)";
        err_set(err, res.status, "docker: %s: %d %s", what, res.status, msg);
        rc = status_to_rc(res.status, msg);
        json_decref(j);
    } else {
        rc = 0;
    }
    return rc;
}

int daemon_docker_events(daemon_docker *d, const char *node, int64_t since,
                         daemon_docker_event_cb cb, void *arg,
                         const atomic_bool *stop, daemon_docker_err *err)
{
    events_ctx x = {.cb = cb, .arg = arg, .stop = stop};
    json_t *filters = NULL;
    char *fs = NULL, *esc = NULL;
    char label[200], api[16], url[1024], since_q[40] = "";
    int rc;

    buf_init(&x.line, DOCKER_EVENT_LINE_MAX);
    if (node == NULL || node[0] == '\0' || strlen(node) > 128 || cb == NULL) {
        err_set(err, 0, "docker: events needs a node id and a callback");
        rc = BERTH_EINVAL;
        goto out;
    }
    rc = negotiate(d, api, err);
    if (rc != 0)
        goto out;
    snprintf(label, sizeof(label), "berth.node=%s", node);
    filters = json_pack("{s:[s], s:[s]}", "label", label, "type", "container");
    fs = filters != NULL ? json_dumps(filters, JSON_COMPACT) : NULL;
    esc = fs != NULL ? escape(fs) : NULL;
    if (esc == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (since > 0)
        snprintf(since_q, sizeof(since_q), "&since=%lld", (long long)since);
    snprintf(url, sizeof(url), "/v%s/events?filters=%s%s", api, esc, since_q);
    x.line_fn = events_line;
    rc = stream_perform(d, &x, "GET", url, 0, "events", err);
    if (rc == 0 && !x.stopped) {
        err_set(err, 200, "docker: events: the engine closed the stream");
        rc = BERTH_EUNAVAIL;
    }
out:
    json_decref(filters);
    free(fs);
    free(esc);
    buf_free(&x.line);
    return rc;
}

/* ---------------------------------------------------------------- pull */

/* One line of /images/create: progress, or the error that ends the pull. */
static int pull_line(events_ctx *x, const char *p, size_t len)
{
    json_t *j = json_loadb(p, len, 0, NULL);
    json_t *detail;
    const char *e;

    if (j == NULL)
        return 0;
    e = json_string_value(json_object_get(j, "error"));
    if (e != NULL) {
        copy_str(x->error, sizeof(x->error), e);
        json_decref(j);
        return 1;
    }
    detail = json_object_get(j, "progressDetail");
    if (x->pull_cb != NULL)
        x->pull_cb(json_string_value(json_object_get(j, "status")) != NULL
                       ? json_string_value(json_object_get(j, "status"))
                       : "",
                   (uint64_t)json_integer_value(json_object_get(detail, "current")),
                   (uint64_t)json_integer_value(json_object_get(detail, "total")),
                   x->arg);
    json_decref(j);
    return 0;
}

int daemon_docker_image_pull(daemon_docker *d, const char *image,
                             long timeout_ms, daemon_docker_pull_cb cb,
                             void *arg, daemon_docker_err *err)
{
    events_ctx x = {.pull_cb = cb, .arg = arg, .line_fn = pull_line};
    char api[16], url[1024];
    char *esc = NULL;
    int rc;

    buf_init(&x.line, DOCKER_EVENT_LINE_MAX);
    if (image == NULL || image[0] == '\0' || strlen(image) > 256) {
        err_set(err, 0, "docker: invalid image name");
        rc = BERTH_EINVAL;
        goto out;
    }
    rc = negotiate(d, api, err);
    if (rc != 0)
        goto out;
    esc = escape(image);
    if (esc == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    /* fromImage takes "name:tag" (or "name@digest") whole. */
    snprintf(url, sizeof(url), "/v%s/images/create?fromImage=%s", api, esc);
    rc = stream_perform(d, &x, "POST", url,
                        timeout_ms > 0 ? timeout_ms : 600000L, "pull", err);
    if (rc == 0 && x.stopped) {
        err_set(err, 200, "docker: pull %s: %s", image, x.error);
        rc = strstr(x.error, "not found") != NULL ||
                     strstr(x.error, "does not exist") != NULL
                 ? BERTH_ENOENT
                 : BERTH_EIO;
    }
out:
    free(esc);
    buf_free(&x.line);
    return rc;
}

/* ---------------------------------------------------------------- stats */

/* A non-negative integer member of o, 0 when absent or of another type. */
static uint64_t stats_u64(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));

    return v > 0 ? (uint64_t)v : 0;
}

int daemon_docker_container_stats(daemon_docker *d, const char *ref,
                                  daemon_docker_stats *out,
                                  daemon_docker_err *err)
{
    docker_req r = {.method = "GET"};
    json_t *j = NULL, *cpu, *mem, *mstats, *v;
    const char *read, *key, *op;
    uint64_t inactive;
    size_t i;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!valid_ref(ref)) {
        err_set(err, 0, "docker: invalid container reference");
        return BERTH_EINVAL;
    }
    snprintf(r.path, sizeof(r.path),
             "/containers/%s/stats?stream=false&one-shot=true", ref);
    rc = docker_call(d, &r, NULL, &j, err);
    if (rc != 0)
        goto out;
    /* A container that is not running gets a reply of zeros whose read
     * time is the zero time. */
    read = json_string_value(json_object_get(j, "read"));
    if (read == NULL || strncmp(read, "0001-", 5) == 0) {
        err_set(err, 0, "docker: stats: container %s is not running", ref);
        rc = BERTH_ECONFLICT;
        goto out;
    }
    cpu = json_object_get(j, "cpu_stats");
    mem = json_object_get(j, "memory_stats");
    if (!json_is_integer(json_object_get(json_object_get(cpu, "cpu_usage"),
                                         "total_usage")) ||
        !json_is_integer(json_object_get(mem, "usage"))) {
        err_set(err, 0, "docker: stats: no CPU or memory figures");
        rc = BERTH_EPROTO;
        goto out;
    }
    out->cpu_usage_ns = stats_u64(json_object_get(cpu, "cpu_usage"),
                                  "total_usage");
    out->system_usage_ns = stats_u64(cpu, "system_cpu_usage");
    out->online_cpus = (uint32_t)stats_u64(cpu, "online_cpus");
    /* Like the docker CLI: cgroup v1 names the cache total_inactive_file,
     * v2 inactive_file. */
    mstats = json_object_get(mem, "stats");
    inactive = json_is_integer(json_object_get(mstats, "total_inactive_file"))
                   ? stats_u64(mstats, "total_inactive_file")
                   : stats_u64(mstats, "inactive_file");
    out->memory_usage = stats_u64(mem, "usage");
    out->memory_usage =
        out->memory_usage > inactive ? out->memory_usage - inactive : 0;
    out->memory_limit = stats_u64(mem, "limit");
    json_object_foreach(json_object_get(j, "networks"), key, v) {
        out->net_rx_bytes += stats_u64(v, "rx_bytes");
        out->net_tx_bytes += stats_u64(v, "tx_bytes");
    }
    json_array_foreach(json_object_get(json_object_get(j, "blkio_stats"),
                                       "io_service_bytes_recursive"),
                       i, v) {
        op = json_string_value(json_object_get(v, "op"));
        if (op == NULL)
            continue;
        if (strcasecmp(op, "read") == 0)
            out->blk_read_bytes += stats_u64(v, "value");
        else if (strcasecmp(op, "write") == 0)
            out->blk_write_bytes += stats_u64(v, "value");
    }
    out->pids =
        (uint32_t)stats_u64(json_object_get(j, "pids_stats"), "current");
out:
    json_decref(j);
    return rc;
}

/* ---------------------------------------------------------------- exec */

int daemon_docker_exec_create(daemon_docker *d, const char *ref,
                              const daemon_docker_exec_spec *spec,
                              char id[DAEMON_DOCKER_ID_MAX],
                              daemon_docker_err *err)
{
    docker_req r = {.method = "POST"};
    json_t *body = NULL, *reply = NULL, *arr = NULL;
    const char *eid;
    int rc;

    id[0] = '\0';
    if (!valid_ref(ref) || spec->cmd == NULL || spec->cmd[0] == NULL) {
        err_set(err, 0, "docker: exec needs a container and a command");
        return BERTH_EINVAL;
    }
    body = json_pack("{s:b, s:b, s:b, s:b}", "AttachStdin",
                     (int)spec->attach_stdin, "AttachStdout", 1,
                     "AttachStderr", 1, "Tty", (int)spec->tty);
    if (body == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = str_array(spec->cmd, &arr);
    if (rc != 0) {
        err_set(err, 0, "docker: exec command is not UTF-8");
        goto out;
    }
    json_object_set_new(body, "Cmd", arr);
    rc = str_array(spec->env, &arr);
    if (rc != 0) {
        err_set(err, 0, "docker: exec environment is not UTF-8");
        goto out;
    }
    json_object_set_new(body, "Env", arr);
    if (spec->working_dir != NULL)
        json_object_set_new(body, "WorkingDir",
                            json_string(spec->working_dir));
    if (spec->detach_keys != NULL)
        json_object_set_new(body, "DetachKeys",
                            json_string(spec->detach_keys));
    r.body = body;
    snprintf(r.path, sizeof(r.path), "/containers/%s/exec", ref);
    rc = docker_call(d, &r, NULL, &reply, err);
    if (rc != 0)
        goto out;
    eid = json_string_value(json_object_get(reply, "Id"));
    if (eid == NULL || !valid_ref(eid) || strlen(eid) >= DAEMON_DOCKER_ID_MAX) {
        err_set(err, 0, "docker: exec: no usable Id in the reply");
        rc = BERTH_EPROTO;
        goto out;
    }
    copy_str(id, DAEMON_DOCKER_ID_MAX, eid);
out:
    json_decref(body);
    json_decref(reply);
    return rc;
}

int daemon_docker_exec_inspect(daemon_docker *d, const char *id,
                               daemon_docker_exec_state *st,
                               daemon_docker_err *err)
{
    docker_req r = {.method = "GET"};
    json_t *j = NULL, *code;
    int rc;

    memset(st, 0, sizeof(*st));
    st->exit_code = -1;
    if (!valid_ref(id)) {
        err_set(err, 0, "docker: invalid exec id");
        return BERTH_EINVAL;
    }
    snprintf(r.path, sizeof(r.path), "/exec/%s/json", id);
    rc = docker_call(d, &r, NULL, &j, err);
    if (rc != 0)
        goto out;
    if (!json_is_object(j)) {
        err_set(err, 0, "docker: exec inspect: reply is not an object");
        rc = BERTH_EPROTO;
        goto out;
    }
    st->running = json_is_true(json_object_get(j, "Running"));
    code = json_object_get(j, "ExitCode");
    if (!st->running && json_is_integer(code))
        st->exit_code = (int)json_integer_value(code);
    st->pid = (int)json_integer_value(json_object_get(j, "Pid"));
    copy_str(st->container_id, sizeof(st->container_id),
             json_string_value(json_object_get(j, "ContainerID")));
out:
    json_decref(j);
    return rc;
}

int daemon_docker_exec_resize(daemon_docker *d, const char *id,
                              unsigned cols, unsigned rows,
                              daemon_docker_err *err)
{
    docker_req r = {.method = "POST"};

    if (!valid_ref(id) || cols == 0 || rows == 0 || cols > 65535 ||
        rows > 65535) {
        err_set(err, 0, "docker: invalid exec id or size");
        return BERTH_EINVAL;
    }
    snprintf(r.path, sizeof(r.path), "/exec/%s/resize?h=%u&w=%u", id, rows,
             cols);
    return docker_call(d, &r, NULL, NULL, err);
}
