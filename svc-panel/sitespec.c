/* sitespec.c - validation, canonical form and JSON shapes of a site's
 * specification (see sitespec.h). */
#include "svc-panel/sitespec.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/catalog.h"
#include "bus/codec.h"
#include "common/buf.h"
#include "common/err.h"

#define SITESPEC_JSON_MAX (1u << 20)

const char *const sitespec_create_fields[] = {
    "name",        "image",       "command", "env",     "ports",
    "memoryBytes", "cpuMillis",   "pids",    "domains", "node",
    "httpPort",    "stopCommand", "restart", NULL};

const char *const sitespec_update_fields[] = {
    "image", "command", "env",      "ports",       "memoryBytes", "cpuMillis",
    "pids",  "domains", "httpPort", "stopCommand", "restart",     NULL};

/* ------------------------------------------------------------ characters */

static int is_lower(int c)
{
    return c >= 'a' && c <= 'z';
}
static int is_upper(int c)
{
    return c >= 'A' && c <= 'Z';
}
static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static int is_lower_alnum(int c)
{
    return is_lower(c) || is_digit(c);
}
static int is_alnum(int c)
{
    return is_lower(c) || is_upper(c) || is_digit(c);
}
static int is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ------------------------------------------------------------ names */

int sitespec_name_valid(const char *name)
{
    size_t n = strlen(name);
    size_t i;

    if (n == 0 || n > SITESPEC_NAME_MAX)
        return 0;
    if (!is_lower_alnum((unsigned char)name[0]) ||
        !is_lower_alnum((unsigned char)name[n - 1]))
        return 0;
    for (i = 0; i < n; i++) {
        if (!is_lower_alnum((unsigned char)name[i]) && name[i] != '-')
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ images */

/* One path component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* */
static int path_component_valid(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t start = i;

        while (i < n && is_lower_alnum((unsigned char)s[i]))
            i++;
        if (i == start)
            return 0;
        if (i == n)
            return 1;
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i++;
            if (i < n && s[i] == '_')
                i++;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return 0;
        }
        if (i == n)
            return 0; /* a separator must be followed by letters */
    }
    return 0;
}

/* A registry: host[:port], host being a DNS name or [IPv6]. */
static int registry_valid(const char *s, size_t n)
{
    char host[256];
    size_t hl = n, i, label = 0;
    const char *colon;

    if (n == 0 || n >= sizeof(host))
        return 0;
    if (s[0] == '[') {
        const char *end = memchr(s, ']', n);

        if (end == NULL || (size_t)(end - s) - 1 >= sizeof(host))
            return 0;
        memcpy(host, s + 1, (size_t)(end - s) - 1);
        host[end - s - 1] = '\0';
        {
            unsigned char a6[16];
            if (inet_pton(AF_INET6, host, a6) != 1)
                return 0;
        }
        hl = (size_t)(end - s) + 1;
        if (hl == n)
            return 1;
        if (s[hl] != ':')
            return 0;
        colon = s + hl;
    } else {
        colon = memchr(s, ':', n);
        if (colon != NULL)
            hl = (size_t)(colon - s);
        if (hl == 0)
            return 0;
        for (i = 0; i < hl; i++) {
            unsigned char c = (unsigned char)s[i];

            if (c == '.') {
                if (label == 0 || s[i - 1] == '-')
                    return 0;
                label = 0;
            } else if (is_alnum(c) || (c == '-' && label > 0)) {
                label++;
            } else {
                return 0;
            }
        }
        if (label == 0 || s[hl - 1] == '-')
            return 0;
    }
    if (colon != NULL) {
        size_t pl = n - (size_t)(colon - s) - 1;

        if (pl == 0 || pl > 5)
            return 0;
        for (i = 0; i < pl; i++) {
            if (!is_digit((unsigned char)colon[1 + i]))
                return 0;
        }
    }
    return 1;
}

/* [A-Za-z][A-Za-z0-9]* ([+._-] [A-Za-z][A-Za-z0-9]*)* ":" [0-9a-fA-F]{32,} */
static int digest_valid(const char *s)
{
    const char *colon = strchr(s, ':');
    size_t i, n;
    int need = 1;

    if (colon == NULL || colon == s)
        return 0;
    for (i = 0; s + i < colon; i++) {
        unsigned char c = (unsigned char)s[i];

        if (need) {
            if (!is_lower(c) && !is_upper(c))
                return 0;
            need = 0;
        } else if (c == '+' || c == '.' || c == '_' || c == '-') {
            need = 1;
        } else if (!is_alnum(c)) {
            return 0;
        }
    }
    if (need)
        return 0;
    n = strlen(colon + 1);
    if (n < 32)
        return 0;
    if ((size_t)(colon - s) == 6 && strncmp(s, "sha256", 6) == 0 && n != 64)
        return 0;
    for (i = 0; i < n; i++) {
        if (!is_hex((unsigned char)colon[1 + i]))
            return 0;
    }
    return 1;
}

/* [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static int tag_valid(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > 128 || !(is_alnum((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!is_alnum(c) && c != '_' && c != '.' && c != '-')
            return 0;
    }
    return 1;
}

/* Docker's reference grammar (distribution/reference):
 * [registry/]path[:tag][@digest], the name at most 255 bytes. */
int sitespec_image_valid(const char *image)
{
    char ref[SITESPEC_IMAGE_MAX + 1];
    char *at, *slash, *colon, *path, *end;
    size_t n = strlen(image);

    if (n == 0 || n > SITESPEC_IMAGE_MAX)
        return 0;
    memcpy(ref, image, n + 1);
    at = strchr(ref, '@');
    if (at != NULL) {
        *at = '\0';
        if (!digest_valid(at + 1))
            return 0;
    }
    slash = strrchr(ref, '/');
    colon = strrchr(ref, ':');
    if (colon != NULL && (slash == NULL || colon > slash)) {
        *colon = '\0';
        if (!tag_valid(colon + 1))
            return 0;
    }
    n = strlen(ref);
    if (n == 0 || n > 255)
        return 0;
    path = ref;
    slash = strchr(ref, '/');
    if (slash != NULL) {
        size_t fl = (size_t)(slash - ref);
        int registry = memchr(ref, '.', fl) != NULL ||
                       memchr(ref, ':', fl) != NULL ||
                       (fl == 9 && strncmp(ref, "localhost", 9) == 0);
        size_t i;

        for (i = 0; i < fl; i++)
            registry |= is_upper((unsigned char)ref[i]) || ref[i] == '[';
        if (registry) {
            if (!registry_valid(ref, fl))
                return 0;
            path = slash + 1;
        }
    }
    for (;;) {
        end = strchr(path, '/');
        if (!path_component_valid(path,
                                  end ? (size_t)(end - path) : strlen(path)))
            return 0;
        if (end == NULL)
            return 1;
        path = end + 1;
    }
}

/* ------------------------------------------------------------ domains */

/* A label with "--" in its third and fourth places is reserved (RFC 5890)
 * unless it is an IDNA A-label, "xn--" and more: IDNs come as punycode. */
static int reserved_label(const char *l, size_t len)
{
    return len >= 4 && l[2] == '-' && l[3] == '-' &&
           !(l[0] == 'x' && l[1] == 'n' && len > 4);
}

int sitespec_domain_normalize(const char *in, char out[SITESPEC_DOMAIN_MAX + 1])
{
    size_t n = strlen(in), i, label = 0, labels = 1;
    int numeric = 1;

    out[0] = '\0';
    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0 || n > SITESPEC_DOMAIN_MAX)
        return BERTH_EINVAL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];

        if (is_upper(c))
            c = (unsigned char)(c - 'A' + 'a');
        if (c == '.') {
            if (label == 0 || out[i - 1] == '-' ||
                reserved_label(out + i - label, label))
                return BERTH_EINVAL;
            label = 0;
            labels++;
            numeric = 1;
        } else if (is_lower_alnum(c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return BERTH_EINVAL;
            numeric &= is_digit(c);
        } else {
            return BERTH_EINVAL;
        }
        out[i] = (char)c;
    }
    out[n] = '\0';
    if (label == 0 || out[n - 1] == '-' || labels < 2 || numeric ||
        reserved_label(out + n - label, label)) {
        out[0] = '\0';
        return BERTH_EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------ checking */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return BERTH_EINVAL;
}

static int env_key_valid(const char *k)
{
    size_t n = strlen(k), i;

    if (n == 0 || n > SITESPEC_ENV_KEY_MAX ||
        !(is_lower((unsigned char)k[0]) || is_upper((unsigned char)k[0]) ||
          k[0] == '_'))
        return 0;
    for (i = 1; i < n; i++) {
        if (!is_alnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '.')
            return 0;
    }
    return 1;
}

static int signal_valid(const char *s)
{
    size_t n = strlen(s), i;

    if (n > 16)
        return 0;
    for (i = 0; i < n; i++) {
        if (!is_upper((unsigned char)s[i]) && !is_digit((unsigned char)s[i]) &&
            s[i] != '+' && s[i] != '-')
            return 0;
    }
    return 1;
}

static int check_ports(const Berth__V1__SiteSpec *in, sitespec_canon *c,
                       char *err, size_t errlen)
{
    size_t i, j;

    if (in->n_ports > SITESPEC_PORTS_MAX)
        return fail(err, errlen, "ports: at most %d", SITESPEC_PORTS_MAX);
    for (i = 0; i < in->n_ports; i++) {
        Berth__V1__PortBinding *p = &c->ports[i];
        unsigned char addr[16];

        *p = *in->ports[i];
        if (p->container_port < 1 || p->container_port > 65535)
            return fail(err, errlen,
                        "ports[%zu].containerPort must be 1..65535", i);
        if (p->host_port > 65535)
            return fail(err, errlen, "ports[%zu].hostPort must be 1..65535", i);
        if (p->protocol[0] == '\0')
            p->protocol = (char *)"tcp";
        if (strcmp(p->protocol, "tcp") != 0 && strcmp(p->protocol, "udp") != 0)
            return fail(err, errlen,
                        "ports[%zu].protocol must be \"tcp\" or \"udp\"", i);
        if (p->host_ip[0] != '\0' &&
            inet_pton(AF_INET, p->host_ip, addr) != 1 &&
            inet_pton(AF_INET6, p->host_ip, addr) != 1)
            return fail(err, errlen, "ports[%zu].hostIp is not an IP address",
                        i);
        for (j = 0; j < i; j++) {
            const Berth__V1__PortBinding *q = &c->ports[j];

            if (strcmp(p->protocol, q->protocol) != 0)
                continue;
            if (p->container_port == q->container_port)
                return fail(err, errlen,
                            "ports[%zu]: container port %u/%s is listed twice",
                            i, p->container_port, p->protocol);
            if (p->host_port != 0 && p->host_port == q->host_port)
                return fail(err, errlen,
                            "ports[%zu]: host port %u/%s is listed twice", i,
                            p->host_port, p->protocol);
        }
        c->port_ptrs[i] = p;
    }
    c->spec.ports = in->n_ports > 0 ? c->port_ptrs : NULL;
    return 0;
}

static int check_limits(const Berth__V1__SiteSpec *in, sitespec_canon *c,
                        char *err, size_t errlen)
{
    Berth__V1__Limits init = BERTH__V1__LIMITS__INIT;
    Berth__V1__Limits *l = &c->limits;

    *l = in->limits != NULL ? *in->limits : init;
    if (l->memory_bytes == 0)
        l->memory_bytes = SITESPEC_MEMORY_DEFAULT;
    if (l->cpu_millis == 0)
        l->cpu_millis = SITESPEC_CPU_DEFAULT;
    if (l->pids == 0)
        l->pids = SITESPEC_PIDS_DEFAULT;
    if (l->memory_bytes < SITESPEC_MEMORY_MIN ||
        l->memory_bytes > SITESPEC_MEMORY_MAX)
        return fail(err, errlen,
                    "memoryBytes must be %llu (6 MiB) to %llu (1 TiB)",
                    SITESPEC_MEMORY_MIN, SITESPEC_MEMORY_MAX);
    if (l->cpu_millis < SITESPEC_CPU_MIN || l->cpu_millis > SITESPEC_CPU_MAX)
        return fail(err, errlen, "cpuMillis must be %d to %d (1000 = one core)",
                    SITESPEC_CPU_MIN, SITESPEC_CPU_MAX);
    if (l->pids < SITESPEC_PIDS_MIN || l->pids > SITESPEC_PIDS_MAX)
        return fail(err, errlen, "pids must be %d to %d", SITESPEC_PIDS_MIN,
                    SITESPEC_PIDS_MAX);
    c->spec.limits = l;
    return 0;
}

static int check_domains(const Berth__V1__SiteSpec *in, sitespec_canon *c,
                         char *err, size_t errlen)
{
    size_t i, j;

    if (in->n_domains > SITESPEC_DOMAINS_MAX)
        return fail(err, errlen, "domains: at most %d", SITESPEC_DOMAINS_MAX);
    for (i = 0; i < in->n_domains; i++) {
        if (sitespec_domain_normalize(in->domains[i], c->domains[i]) != 0)
            return fail(
                err, errlen,
                "domains[%zu] \"%.64s\" is not a hostname (letters, digits and "
                "'-' in labels of 1..63, two labels or more, no wildcards)",
                i, in->domains[i]);
        for (j = 0; j < i; j++) {
            if (strcmp(c->domains[i], c->domains[j]) == 0)
                return fail(err, errlen, "domains[%zu] \"%s\" is listed twice",
                            i, c->domains[i]);
        }
        c->domain_ptrs[i] = c->domains[i];
    }
    c->spec.domains = in->n_domains > 0 ? c->domain_ptrs : NULL;
    return 0;
}

int sitespec_check(const Berth__V1__SiteSpec *in, sitespec_canon *c, char *err,
                   size_t errlen)
{
    Berth__V1__RestartPolicy rinit = BERTH__V1__RESTART_POLICY__INIT;
    size_t i;
    int rc;

    memset(c, 0, sizeof(*c));
    c->spec = *in;
    if (!sitespec_name_valid(in->name))
        return fail(
            err, errlen,
            "name must be 1 to %d lower-case letters, digits and '-', starting "
            "and ending with a letter or digit",
            SITESPEC_NAME_MAX);
    if (in->image[0] == '\0')
        return fail(err, errlen, "image is required");
    if (!sitespec_image_valid(in->image))
        return fail(err, errlen,
                    "image \"%.128s\" is not a valid image reference",
                    in->image);
    if (in->node_id[0] != '\0' &&
        (strlen(in->node_id) > 64 || !bus_token_valid(in->node_id)))
        return fail(err, errlen, "node \"%.64s\" is not a node id",
                    in->node_id);
    if (in->n_command > SITESPEC_ARGS_MAX)
        return fail(err, errlen, "command: at most %d arguments",
                    SITESPEC_ARGS_MAX);
    for (i = 0; i < in->n_command; i++) {
        if (strlen(in->command[i]) > SITESPEC_ARG_BYTES)
            return fail(err, errlen, "command[%zu] is longer than %d bytes", i,
                        SITESPEC_ARG_BYTES);
    }
    if (in->n_env > SITESPEC_ENV_MAX)
        return fail(err, errlen, "env: at most %d variables", SITESPEC_ENV_MAX);
    for (i = 0; i < in->n_env; i++) {
        if (!env_key_valid(in->env[i]->key))
            return fail(err, errlen, "env: \"%.64s\" is not a variable name",
                        in->env[i]->key);
        if (strlen(in->env[i]->value) > SITESPEC_ENV_VALUE_MAX)
            return fail(err, errlen, "env[%.64s] is longer than %d bytes",
                        in->env[i]->key, SITESPEC_ENV_VALUE_MAX);
    }
    rc = check_ports(in, c, err, errlen);
    if (rc == 0)
        rc = check_limits(in, c, err, errlen);
    if (rc == 0)
        rc = check_domains(in, c, err, errlen);
    if (rc != 0)
        return rc;
    if (in->http_port > 65535)
        return fail(err, errlen, "httpPort must be 1..65535");
    if (in->n_domains > 0 && in->http_port == 0)
        c->spec.http_port = 80;
    if (strlen(in->stop_command) > SITESPEC_STOP_COMMAND_MAX)
        return fail(err, errlen, "stopCommand is longer than %d bytes",
                    SITESPEC_STOP_COMMAND_MAX);
    if (!signal_valid(in->stop_signal))
        return fail(err, errlen,
                    "stopSignal must be a signal name such as SIGTERM");
    if (in->stop_timeout_seconds > 3600)
        return fail(err, errlen, "stopTimeoutSeconds must be at most 3600");
    c->restart = in->restart != NULL ? *in->restart : rinit;
    if (c->restart.mode == BERTH__V1__RESTART_POLICY__MODE__MODE_UNSPECIFIED)
        c->restart.mode = BERTH__V1__RESTART_POLICY__MODE__MODE_ON_FAILURE;
    if (c->restart.mode > BERTH__V1__RESTART_POLICY__MODE__MODE_ALWAYS)
        return fail(err, errlen,
                    "restart must be \"never\", \"on-failure\" or \"always\"");
    if (c->restart.max_restarts > 1000 || c->restart.window_seconds > 86400)
        return fail(err, errlen,
                    "restart: at most 1000 restarts in at most 86400 s");
    c->spec.restart = &c->restart;
    return 0;
}

/* ------------------------------------------------------------ JSON shapes */

static int is_string_array(json_t *v)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v))
        return 0;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return 0;
    }
    return 1;
}

static int is_string_object(json_t *v)
{
    const char *k;
    json_t *e;

    if (!json_is_object(v))
        return 0;
    json_object_foreach(v, k, e)
    {
        if (!json_is_string(e))
            return 0;
    }
    return 1;
}

static int set_or_del(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || json_is_null(v))
        return json_object_del(obj, key), 0;
    return json_object_set(obj, key, v) == 0 ? 0 : BERTH_ENOMEM;
}

static const char *const limit_keys[] = {"memoryBytes", "cpuMillis", "pids",
                                         NULL};

int sitespec_api_merge(json_t *body, json_t *proto, char *err, size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v)
    {
        const char *const *lk;
        int is_limit = 0;

        for (lk = limit_keys; *lk != NULL; lk++)
            is_limit |= strcmp(*lk, key) == 0;
        if (json_is_null(v)) {
            /* falls through to set_or_del below, which deletes */
        } else if (strcmp(key, "name") == 0 || strcmp(key, "image") == 0 ||
                   strcmp(key, "stopCommand") == 0 ||
                   strcmp(key, "node") == 0 || strcmp(key, "restart") == 0) {
            if (!json_is_string(v))
                return fail(err, errlen, "%s must be a string", key);
        } else if (strcmp(key, "command") == 0 || strcmp(key, "domains") == 0) {
            if (!is_string_array(v))
                return fail(err, errlen, "%s must be a list of strings", key);
        } else if (strcmp(key, "env") == 0) {
            if (!is_string_object(v))
                return fail(err, errlen, "env must be an object of strings");
        } else if (strcmp(key, "ports") == 0) {
            if (!json_is_array(v))
                return fail(err, errlen, "ports must be a list of objects");
        } else if (is_limit || strcmp(key, "httpPort") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return fail(err, errlen, "%s must be a non-negative integer",
                            key);
        }
        if (is_limit) {
            json_t *limits = json_object_get(proto, "limits");

            if (!json_is_object(limits)) {
                limits = json_object();
                if (limits == NULL ||
                    json_object_set_new(proto, "limits", limits) != 0)
                    return BERTH_ENOMEM;
            }
            if (set_or_del(limits, key, v) != 0)
                return BERTH_ENOMEM;
        } else if (strcmp(key, "node") == 0) {
            if (set_or_del(proto, "nodeId", v) != 0)
                return BERTH_ENOMEM;
        } else if (strcmp(key, "restart") == 0) {
            static const char *const modes[] = {"never", "on-failure",
                                                "always"};
            static const char *const names[] = {"MODE_NEVER", "MODE_ON_FAILURE",
                                                "MODE_ALWAYS"};
            const char *word = json_string_value(v);
            int i, found = -1;

            for (i = 0; word != NULL && i < 3; i++) {
                if (strcmp(word, modes[i]) == 0)
                    found = i;
            }
            if (word != NULL && found < 0)
                return fail(
                    err, errlen,
                    "restart must be \"never\", \"on-failure\" or \"always\"");
            if (word == NULL)
                json_object_del(proto, "restart");
            else if (json_object_set_new(
                         proto, "restart",
                         json_pack("{s:s}", "mode", names[found])) != 0)
                return BERTH_ENOMEM;
        } else if (set_or_del(proto, key, v) != 0) {
            return BERTH_ENOMEM;
        }
    }
    return 0;
}

int sitespec_decode_text(const char *text, Berth__V1__SiteSpec **out, char *err,
                         size_t errlen)
{
    ProtobufCMessage *m = NULL;
    int rc;

    *out = NULL;
    rc = codec_from_json(&berth__v1__site_spec__descriptor, text, strlen(text),
                         &m, err, errlen);
    if (rc == 0)
        *out = (Berth__V1__SiteSpec *)m;
    return rc;
}

int sitespec_decode(json_t *proto, Berth__V1__SiteSpec **out, char *err,
                    size_t errlen)
{
    char *text = json_dumps(proto, JSON_COMPACT);
    int rc;

    *out = NULL;
    if (text == NULL)
        return BERTH_ENOMEM;
    rc = sitespec_decode_text(text, out, err, errlen);
    free(text);
    return rc;
}

char *sitespec_store_json(const Berth__V1__SiteSpec *s)
{
    Berth__V1__SiteSpec copy = *s;
    buf out;

    copy.id = (char *)"";
    copy.name = (char *)"";
    copy.node_id = (char *)"";
    copy.should_run = 0;
    buf_init(&out, SITESPEC_JSON_MAX);
    if (codec_to_json(&copy.base, &out) != 0) {
        buf_free(&out);
        return NULL;
    }
    return buf_detach(&out, NULL);
}

const char *sitespec_restart_name(int mode)
{
    switch (mode) {
    case BERTH__V1__RESTART_POLICY__MODE__MODE_NEVER:
        return "never";
    case BERTH__V1__RESTART_POLICY__MODE__MODE_ON_FAILURE:
        return "on-failure";
    case BERTH__V1__RESTART_POLICY__MODE__MODE_ALWAYS:
        return "always";
    default:
        return "";
    }
}

const char *sitespec_state_name(int state)
{
    static const char *const names[] = {"unknown", "offline",  "starting",
                                        "running", "stopping", "crashed",
                                        "missing", "deleted"};

    if (state < 0 || state >= (int)(sizeof(names) / sizeof(names[0])))
        return "unknown";
    return names[state];
}

int sitespec_power_parse(const char *action)
{
    static const char *const names[] = {"", "start", "stop", "restart", "kill"};
    int i;

    for (i = 1; action != NULL && i < 5; i++) {
        if (strcmp(action, names[i]) == 0)
            return i;
    }
    return 0;
}

json_t *sitespec_api_json(const Berth__V1__SiteSpec *s)
{
    json_t *cmd = json_array(), *env = json_object(), *ports = json_array();
    const Berth__V1__Limits *l = s->limits;
    size_t i;

    for (i = 0; i < s->n_command; i++)
        json_array_append_new(cmd, json_string(s->command[i]));
    for (i = 0; i < s->n_env; i++)
        json_object_set_new(env, s->env[i]->key, json_string(s->env[i]->value));
    for (i = 0; i < s->n_ports; i++) {
        const Berth__V1__PortBinding *p = s->ports[i];
        json_t *o =
            json_pack("{s:i, s:i, s:s}", "containerPort",
                      (int)p->container_port, "hostPort", (int)p->host_port,
                      "protocol", p->protocol[0] ? p->protocol : "tcp");

        if (o != NULL && p->host_ip[0] != '\0')
            json_object_set_new(o, "hostIp", json_string(p->host_ip));
        json_array_append_new(ports, o);
    }
    return json_pack(
        "{s:s, s:o, s:o, s:o, s:I, s:i, s:i, s:i, s:s, s:s}", "image", s->image,
        "command", cmd, "env", env, "ports", ports, "memoryBytes",
        (json_int_t)(l ? l->memory_bytes : 0), "cpuMillis",
        (int)(l ? l->cpu_millis : 0), "pids", (int)(l ? l->pids : 0),
        "httpPort", (int)s->http_port, "stopCommand", s->stop_command,
        "restart",
        sitespec_restart_name(s->restart ? (int)s->restart->mode : 0));
}
