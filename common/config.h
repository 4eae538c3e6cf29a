/* config.h - configuration declared as one table of keys.
 *
 * A binary declares its keys (name, type, default, help) in a table ending
 * with {0}; CONFIG_COMMON_KEYS are the ones every binary shares. Values come
 * from, in rising precedence: the default, the optional file given by
 * --config FILE or BERTH_CONFIG (lines of KEY=value, # comments), and the
 * environment. `--help` prints the table.
 *
 * Defaults may contain "{component}", replaced by the binary's component
 * name ("panel", "daemon", ...).
 */
#ifndef BERTH_COMMON_CONFIG_H
#define BERTH_COMMON_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum cfg_type { CFG_STR = 1, CFG_INT, CFG_BOOL };

enum cfg_flags {
    CFG_SECRET = 1 << 0, /* never logged */
    CFG_REQUIRED = 1 << 1,
};

typedef struct cfg_key {
    const char *name; /* "BERTH_NATS_URL" */
    enum cfg_type type;
    const char *def; /* default as text; NULL: unset */
    const char *help;
    long long min; /* CFG_INT bounds (inclusive); both 0: unbounded */
    long long max;
    int flags;
} cfg_key;

#define CONFIG_COMMON_KEYS                                                     \
    {"BERTH_NATS_URL", CFG_STR, "nats://127.0.0.1:4222",                       \
     "NATS server URL; several may be given, comma separated", 0, 0, 0},       \
    {"BERTH_NATS_CREDS", CFG_STR, NULL,                                        \
     "NATS credentials file (user JWT and NKey seed)", 0, 0, 0},               \
    {"BERTH_DATA_DIR", CFG_STR, "var/{component}",                             \
     "directory that holds this component's state", 0, 0, 0},                 \
    {"BERTH_LOG_LEVEL", CFG_STR, "info", "debug, info, warn or error", 0, 0,   \
     0},                                                                       \
    {"BERTH_CONFIG", CFG_STR, NULL,                                            \
     "optional file of KEY=value lines read before the environment", 0, 0, 0}

typedef struct config config;

/* Reads the configuration of component from keys, the file and the
 * environment (envp: NULL for the process environment). Returns 0 and a new
 * config the caller frees with config_free(), or BERTH_ECONFIG with err set
 * to a clear message (unknown key in the file, a value of the wrong type or
 * out of range, a required key missing). */
int config_load(config **out, const char *component, const cfg_key *keys,
                int argc, char **argv, char *err, size_t errlen);

void config_free(config *c);

/* Returns 1 when argv asks for --help or -h. */
int config_wants_help(int argc, char **argv);

/* Prints usage and every key with its type, default and help. */
void config_print_help(FILE *f, const char *prog, const char *component,
                       const cfg_key *keys);

/* Getters. Asking for a key that is not in the table aborts: that is a
 * programming error. config_str returns NULL for an unset key. */
const char *config_str(const config *c, const char *name);
long long config_int(const config *c, const char *name);
int config_bool(const config *c, const char *name);

/* Logs every key and value at info level; secrets are shown as "***". */
void config_log(const config *c);

#endif
