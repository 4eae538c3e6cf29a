/* config.c - configuration from a key table, a file and the environment. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "err.h"
#include "log.h"

#define CONFIG_FILE_MAX (256u << 10)
#define CONFIG_VALUE_MAX 4096

struct config {
    const cfg_key *keys;
    size_t n;
    char **values; /* parallel to keys; NULL when unset */
};

static size_t key_count(const cfg_key *keys)
{
    size_t n = 0;

    while (keys[n].name != NULL)
        n++;
    return n;
}

static long find_key(const config *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        if (strcmp(c->keys[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

/* Expands "{component}" in a default value. Caller frees. */
static char *expand_default(const char *def, const char *component)
{
    static const char tag[] = "{component}";
    const char *at = strstr(def, tag);
    buf b;

    if (at == NULL)
        return strdup(def);
    buf_init(&b, CONFIG_VALUE_MAX);
    if (buf_append(&b, def, (size_t)(at - def)) != 0 ||
        buf_puts(&b, component) != 0 || buf_puts(&b, at + sizeof(tag) - 1)) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b, NULL);
}

static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
        !strcasecmp(s, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
        !strcasecmp(s, "off")) {
        *out = 0;
        return 0;
    }
    return BERTH_EINVAL;
}

static int parse_int(const char *s, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return BERTH_EINVAL;
    *out = v;
    return 0;
}

/* Checks value against the key's type; sets err on failure. */
static int check_value(const cfg_key *k, const char *value, const char *origin,
                       char *err, size_t errlen)
{
    long long v;
    int b;

    if (strlen(value) >= CONFIG_VALUE_MAX) {
        snprintf(err, errlen, "%s (%s): value longer than %d bytes", k->name,
                 origin, CONFIG_VALUE_MAX);
        return BERTH_ECONFIG;
    }
    if (k->type == CFG_INT) {
        if (parse_int(value, &v) != 0) {
            snprintf(err, errlen, "%s (%s): \"%s\" is not an integer", k->name,
                     origin, value);
            return BERTH_ECONFIG;
        }
        if ((k->min != 0 || k->max != 0) && (v < k->min || v > k->max)) {
            snprintf(err, errlen, "%s (%s): %lld is outside %lld..%lld",
                     k->name, origin, v, k->min, k->max);
            return BERTH_ECONFIG;
        }
    } else if (k->type == CFG_BOOL && parse_bool(value, &b) != 0) {
        snprintf(err, errlen, "%s (%s): \"%s\" is not a boolean", k->name,
                 origin, value);
        return BERTH_ECONFIG;
    }
    return 0;
}

static int set_value(config *c, size_t i, const char *value, const char *origin,
                     char *err, size_t errlen)
{
    char *copy;
    int rc;

    rc = check_value(&c->keys[i], value, origin, err, errlen);
    if (rc != 0)
        return rc;
    copy = strdup(value);
    if (copy == NULL)
        return BERTH_ENOMEM;
    free(c->values[i]);
    c->values[i] = copy;
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Reads KEY=value lines from path. */
static int load_file(config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    buf content;
    char chunk[4096];
    size_t n;
    char *line;
    char *save = NULL;
    int lineno = 0;
    int rc = 0;

    buf_init(&content, CONFIG_FILE_MAX);
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        rc = BERTH_ECONFIG;
        goto out;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&content, chunk, n) != 0) {
            snprintf(err, errlen, "config file %s: larger than %u bytes", path,
                     CONFIG_FILE_MAX);
            rc = BERTH_ECONFIG;
            goto out;
        }
    }
    if (content.data == NULL)
        goto out;
    for (line = strtok_r(content.data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char origin[64];
        char *eq;
        char *key;
        char *val;
        long i;

        lineno++;
        line = trim(line);
        if (*line == '\0' || *line == '#')
            continue;
        eq = strchr(line, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "config file %s:%d: expected KEY=value", path,
                     lineno);
            rc = BERTH_ECONFIG;
            goto out;
        }
        *eq = '\0';
        key = trim(line);
        val = trim(eq + 1);
        n = strlen(val);
        if (n >= 2 && (val[0] == '"' || val[0] == '\'') && val[n - 1] == val[0]) {
            val[n - 1] = '\0';
            val++;
        }
        i = find_key(c, key);
        if (i < 0) {
            snprintf(err, errlen, "config file %s:%d: unknown key %s", path,
                     lineno, key);
            rc = BERTH_ECONFIG;
            goto out;
        }
        snprintf(origin, sizeof(origin), "file line %d", lineno);
        rc = set_value(c, (size_t)i, val, origin, err, errlen);
        if (rc != 0)
            goto out;
    }
out:
    if (f != NULL)
        fclose(f);
    buf_free(&content);
    return rc;
}

int config_wants_help(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

int config_load(config **out, const char *component, const cfg_key *keys,
                int argc, char **argv, char *err, size_t errlen)
{
    config *c = NULL;
    const char *file = NULL;
    size_t i;
    int rc = 0;

    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BERTH_ENOMEM;
    c->keys = keys;
    c->n = key_count(keys);
    c->values = calloc(c->n ? c->n : 1, sizeof(char *));
    if (c->values == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (i = 0; i < c->n; i++) {
        if (keys[i].def == NULL)
            continue;
        c->values[i] = expand_default(keys[i].def, component);
        if (c->values[i] == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < (size_t)argc) {
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        } else {
            snprintf(err, errlen, "unknown argument %s (try --help)", argv[i]);
            rc = BERTH_ECONFIG;
            goto out;
        }
    }
    if (file == NULL)
        file = getenv("BERTH_CONFIG");
    if (file != NULL && *file != '\0') {
        rc = load_file(c, file, err, errlen);
        if (rc != 0)
            goto out;
    }
    for (i = 0; i < c->n; i++) {
        const char *v = getenv(keys[i].name);
        if (v == NULL)
            continue;
        rc = set_value(c, i, v, "environment", err, errlen);
        if (rc != 0)
            goto out;
    }
    for (i = 0; i < c->n; i++) {
        if ((keys[i].flags & CFG_REQUIRED) &&
            (c->values[i] == NULL || c->values[i][0] == '\0')) {
            snprintf(err, errlen, "%s is required", keys[i].name);
            rc = BERTH_ECONFIG;
            goto out;
        }
    }
    *out = c;
    c = NULL;
out:
    config_free(c);
    return rc;
}

void config_free(config *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; c->values != NULL && i < c->n; i++)
        free(c->values[i]);
    free(c->values);
    free(c);
}

static const char *type_name(enum cfg_type t)
{
    switch (t) {
    case CFG_INT:
        return "int";
    case CFG_BOOL:
        return "bool";
    default:
        return "string";
    }
}

void config_print_help(FILE *f, const char *prog, const char *component,
                       const cfg_key *keys)
{
    size_t i;

    fprintf(f,
            "usage: %s [--config FILE] [--help]\n\n"
            "Configuration comes from the environment (or KEY=value lines in "
            "FILE):\n\n",
            prog);
    for (i = 0; keys[i].name != NULL; i++) {
        const cfg_key *k = &keys[i];
        char *def = k->def ? expand_default(k->def, component) : NULL;

        fprintf(f, "  %-26s %-6s %s\n", k->name, type_name(k->type), k->help);
        if (k->flags & CFG_REQUIRED)
            fprintf(f, "  %-26s %-6s required\n", "", "");
        else if (def != NULL)
            fprintf(f, "  %-26s %-6s default: %s\n", "", "",
                    (k->flags & CFG_SECRET) ? "(generated)" : def);
        if (k->type == CFG_INT && (k->min != 0 || k->max != 0))
            fprintf(f, "  %-26s %-6s range: %lld..%lld\n", "", "", k->min,
                    k->max);
        free(def);
    }
}

static long must_find(const config *c, const char *name, enum cfg_type type)
{
    long i = find_key(c, name);

    if (i < 0 || c->keys[i].type != type) {
        log_error("config key not declared", "key=%s", name);
        abort();
    }
    return i;
}

const char *config_str(const config *c, const char *name)
{
    return c->values[must_find(c, name, CFG_STR)];
}

long long config_int(const config *c, const char *name)
{
    long i = must_find(c, name, CFG_INT);
    long long v = 0;

    if (c->values[i] != NULL)
        parse_int(c->values[i], &v);
    return v;
}

int config_bool(const config *c, const char *name)
{
    long i = must_find(c, name, CFG_BOOL);
    int v = 0;

    if (c->values[i] != NULL)
        parse_bool(c->values[i], &v);
    return v;
}

void config_log(const config *c)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        const char *v = c->values[i];
        if (v != NULL && (c->keys[i].flags & CFG_SECRET))
            v = "***";
        log_info("config", "key=%s value=%s", c->keys[i].name,
                 v ? v : "(unset)");
    }
}
