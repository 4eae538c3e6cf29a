/* docker.h - the Docker Engine API driver of berth-daemon.
 *
 * Talks HTTP/1.1 to the Docker Engine over its unix socket (uhttp.h;
 * /var/run/docker.sock unless configured) with JSON bodies (jansson):
 *
 *   daemon_docker *d;
 *   daemon_docker_err err;
 *   char id[DAEMON_DOCKER_ID_MAX];
 *
 *   rc = daemon_docker_new(&(daemon_docker_cfg){.sock_path = path}, &d);
 *   rc = daemon_docker_container_create(d, &spec, id, &err);
 *   rc = daemon_docker_container_start(d, id, &err);
 *   ...
 *   daemon_docker_free(d);
 *
 * API version. The first call asks GET /version once and from then on every
 * path is prefixed with "/v<ApiVersion>" (capped at the newest version this
 * driver was written for), so Docker never guesses what the client means.
 * When a call finds Docker unreachable the negotiated version is forgotten
 * and the next call negotiates again: Docker may have been upgraded while it
 * was down.
 *
 * Errors. Every function returns 0 or a negative BERTH_E* code:
 * BERTH_EUNAVAIL when the socket is missing or nothing answers on it (the
 * next call simply tries again, there is no connection state to repair),
 * BERTH_ETIMEDOUT when a call passed its time limit, BERTH_ENOENT for 404
 * (no such container / image), BERTH_EEXIST for a name already in use,
 * BERTH_ECONFLICT for other 409s (a container that is not running cannot be
 * killed), BERTH_EINVAL for bad arguments or 400s, BERTH_EIO for Docker's
 * 5xx, BERTH_EPROTO for a reply that is not the JSON expected. When err is
 * not NULL it receives a sentence saying what failed, with Docker's own
 * "message" when there was one; err may be NULL everywhere.
 *
 * Time limits. Every call has a connect timeout and a total timeout (cfg);
 * calls that wait inside Docker (stop, restart, wait) get their own wait
 * added to the total. The events stream has no total limit: it runs until
 * stopped or until the connection drops.
 *
 * Thread safety. A daemon_docker may be shared by any number of threads:
 * every call makes its own connection to the socket and closes it before
 * returning; the only shared state, the negotiated version, is behind a
 * mutex.
 */
#ifndef BERTH_DAEMON_DOCKER_H
#define BERTH_DAEMON_DOCKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAEMON_DOCKER_SOCK_DEFAULT "/var/run/docker.sock"
#define DAEMON_DOCKER_ID_MAX 72    /* 64 hex digits + NUL, with room */
#define DAEMON_DOCKER_NAME_MAX 128 /* container names we accept */

typedef struct daemon_docker daemon_docker;

/* Filled on failure when passed; message is always NUL-terminated. */
typedef struct daemon_docker_err {
    int http_status; /* Docker's status, 0 when no HTTP reply came */
    char message[512];
} daemon_docker_err;

typedef struct daemon_docker_cfg {
    const char *sock_path;   /* NULL: DAEMON_DOCKER_SOCK_DEFAULT */
    long connect_timeout_ms; /* 0: 2000 */
    long timeout_ms;         /* 0: 30000; total per call */
} daemon_docker_cfg;

/* Creates a client; nothing is contacted yet. The strings in cfg are copied.
 * Returns 0 and *out (free with daemon_docker_free()), or BERTH_ENOMEM /
 * BERTH_EINVAL. */
int daemon_docker_new(const daemon_docker_cfg *cfg, daemon_docker **out);

/* Frees the client. NULL is a no-op. No call may be running. */
void daemon_docker_free(daemon_docker *d);

/* ---------------------------------------------------------------- engine */

typedef struct daemon_docker_info {
    char version[64];     /* engine version, "20.10.24+dfsg1" */
    char api_version[16]; /* the version in use, "1.41" */
    int ncpu;             /* /info NCPU */
    int64_t mem_total;    /* /info MemTotal, bytes */
} daemon_docker_info;

/* Negotiates the API version if not done yet and returns the version in use
 * in api (at least 16 bytes). */
int daemon_docker_api_version(daemon_docker *d, char api[16],
                              daemon_docker_err *err);

/* GET /version and GET /info. */
int daemon_docker_info_get(daemon_docker *d, daemon_docker_info *info,
                           daemon_docker_err *err);

/* Returns 0 when the image exists locally, BERTH_ENOENT when it does not. */
int daemon_docker_image_inspect(daemon_docker *d, const char *image,
                                daemon_docker_err *err);

/* Progress of an image pull: one call per status line Docker sends. */
typedef void (*daemon_docker_pull_cb)(const char *status, uint64_t current,
                                      uint64_t total, void *arg);

/* Pulls image (POST /images/create), calling cb (may be NULL) with the
 * progress. A pull has its own time limit, timeout_ms (0: 10 min). Returns
 * 0 once the image is local; BERTH_ENOENT when the registry has no such
 * image; BERTH_EIO when the pull failed otherwise (a registry that cannot
 * be reached, refused credentials...), with Docker's reason in err; or the
 * transport codes of every call. */
int daemon_docker_image_pull(daemon_docker *d, const char *image,
                             long timeout_ms, daemon_docker_pull_cb cb,
                             void *arg, daemon_docker_err *err);

/* ---------------------------------------------------------------- containers */

typedef struct daemon_docker_port {
    uint16_t container_port;
    uint16_t host_port; /* 0: Docker picks one */
    const char *proto;  /* NULL: "tcp" */
    const char *host_ip; /* NULL: all addresses */
} daemon_docker_port;

/* What a site's container looks like. The caller owns every string; the
 * arrays of strings end with NULL and may themselves be NULL. */
typedef struct daemon_docker_spec {
    const char *name;  /* container name, [A-Za-z0-9_.-] */
    const char *image; /* must exist locally */
    const char *const *cmd; /* NULL: the image's CMD */
    const char *const *env; /* "K=V" */
    const char *site;  /* label berth.site */
    const char *node;  /* label berth.node */
    const char *command_id; /* label berth.command: the command that made it */
    const char *stop_signal; /* "SIGTERM" ...; NULL: the image's */
    int64_t memory_bytes; /* 0: no limit; swap limited to the same */
    int64_t nano_cpus;    /* 1e9 = one CPU; 0: no limit */
    int64_t pids_limit;   /* 0: no limit */
    const daemon_docker_port *ports;
    size_t nports;
    const char *data_dir; /* host directory bound at /data; NULL: none */
    /* Hardening: no-new-privileges and CapDrop ALL always; cap_add lists the
     * few capabilities given back ("CHOWN", "SETUID" ...). */
    const char *const *cap_add;
    bool readonly_rootfs; /* root read-only, /tmp a small tmpfs */
    bool tty;             /* a terminal instead of multiplexed output */
} daemon_docker_spec;

/* Creates (does not start) a container from spec: labelled, limited,
 * hardened, with stdin open for console input. The image must be local; a
 * missing image is BERTH_ENOENT and nothing is created. id receives the new
 * container's id. */
int daemon_docker_container_create(daemon_docker *d,
                                   const daemon_docker_spec *spec,
                                   char id[DAEMON_DOCKER_ID_MAX],
                                   daemon_docker_err *err);

/* ref is a container id or name. Starting a running container and stopping
 * a stopped one succeed (Docker's 304). */
int daemon_docker_container_start(daemon_docker *d, const char *ref,
                                  daemon_docker_err *err);

/* SIGTERM (or the image's stop signal), then SIGKILL after timeout_s. */
int daemon_docker_container_stop(daemon_docker *d, const char *ref,
                                 int timeout_s, daemon_docker_err *err);

/* Sends signal signo. BERTH_ECONFLICT when the container is not running. */
int daemon_docker_container_kill(daemon_docker *d, const char *ref, int signo,
                                 daemon_docker_err *err);

int daemon_docker_container_restart(daemon_docker *d, const char *ref,
                                    int timeout_s, daemon_docker_err *err);

/* force kills a running container first; volumes removes its anonymous
 * volumes. BERTH_ENOENT when there is no such container. */
int daemon_docker_container_remove(daemon_docker *d, const char *ref,
                                   bool force, bool volumes,
                                   daemon_docker_err *err);

/* Waits until the container stops (at most timeout_ms) and returns its
 * exit code in *exit_code. */
int daemon_docker_container_wait(daemon_docker *d, const char *ref,
                                 long timeout_ms, int *exit_code,
                                 daemon_docker_err *err);

typedef struct daemon_docker_state {
    char id[DAEMON_DOCKER_ID_MAX];
    char name[DAEMON_DOCKER_NAME_MAX]; /* without the leading '/' */
    char site[64];   /* label berth.site, "" when absent */
    char command_id[64]; /* label berth.command, "" when absent */
    char status[16]; /* created running paused restarting removing exited dead */
    char ip[48];     /* address on the default bridge, "" when none */
    int64_t memory_limit; /* HostConfig.Memory, 0: none */
    bool tty;
    bool running;
    bool oom_killed;
    int exit_code;
    int pid; /* 0 when not running */
    char started_at[40];  /* RFC 3339 as Docker writes it */
    char finished_at[40];
} daemon_docker_state;

int daemon_docker_container_inspect(daemon_docker *d, const char *ref,
                                    daemon_docker_state *st,
                                    daemon_docker_err *err);

typedef struct daemon_docker_summary {
    char id[DAEMON_DOCKER_ID_MAX];
    char name[DAEMON_DOCKER_NAME_MAX];
    char site[64];
    char state[16]; /* "running", "exited" ... */
} daemon_docker_summary;

/* Lists containers (running and stopped) carrying label, "key=value" or
 * "key". Returns 0 with *items (free with free()) and *n, which may be 0. */
int daemon_docker_container_list(daemon_docker *d, const char *label,
                                 daemon_docker_summary **items, size_t *n,
                                 daemon_docker_err *err);

/* ---------------------------------------------------------------- events */

typedef struct daemon_docker_event {
    char action[32]; /* create start die oom kill stop destroy ... */
    char id[DAEMON_DOCKER_ID_MAX];
    char name[DAEMON_DOCKER_NAME_MAX];
    char site[64];
    int exit_code;   /* "die" only; -1 otherwise */
    int64_t time_ns; /* Docker's timeNano */
} daemon_docker_event;

/* Called for each event, on the thread running daemon_docker_events(). A
 * non-zero return stops the stream. ev is valid during the call only. */
typedef int (*daemon_docker_event_cb)(const daemon_docker_event *ev,
                                      void *arg);

/* Streams GET /events for containers labelled berth.node=<node> and calls
 * cb for each one, line by line. since (unix seconds, 0: now) replays what
 * happened from then on, so a caller that reconnects loses nothing. Runs
 * until cb returns non-zero or *stop (may be NULL; checked at least once a
 * second) becomes true, which return 0, or until the connection drops or
 * cannot be made, which returns BERTH_EUNAVAIL: reconnect then. */
int daemon_docker_events(daemon_docker *d, const char *node, int64_t since,
                         daemon_docker_event_cb cb, void *arg,
                         const atomic_bool *stop, daemon_docker_err *err);

/* ---------------------------------------------------------------- stats */

/* One reading of a running container's counters as Docker reports them.
 * Counters grow over the container's life, so a rate (CPU %) needs two
 * readings and the time between them. */
typedef struct daemon_docker_stats {
    uint64_t cpu_usage_ns;    /* cpu_stats.cpu_usage.total_usage */
    uint64_t system_usage_ns; /* cpu_stats.system_cpu_usage: the host, all CPUs */
    uint32_t online_cpus;
    uint64_t memory_usage; /* usage minus the inactive file cache, the figure
                            * `docker stats` shows */
    uint64_t memory_limit; /* the limit, or the host's memory when none */
    uint64_t net_rx_bytes; /* summed over the container's interfaces */
    uint64_t net_tx_bytes;
    uint64_t blk_read_bytes; /* summed over devices */
    uint64_t blk_write_bytes;
    uint32_t pids;
} daemon_docker_stats;

/* GET /containers/<ref>/stats?stream=false&one-shot=true into *out.
 * Returns 0, BERTH_ENOENT when there is no such container, BERTH_ECONFLICT
 * when it is not running, BERTH_EPROTO when the reply lacks the CPU or
 * memory figures, or a transport error as every call here does. */
int daemon_docker_container_stats(daemon_docker *d, const char *ref,
                                  daemon_docker_stats *out,
                                  daemon_docker_err *err);

/* ---------------------------------------------------------------- exec
 *
 * A process started inside a running container (the shell sessions,
 * exec.c). Created here, started by exec.c over an upgraded connection
 * (hijack.h: POST /v<api>/exec/<id>/start), inspected and resized here.
 */

typedef struct daemon_docker_exec_spec {
    const char *const *cmd;  /* argv, at least one; NULL-terminated */
    const char *const *env;  /* "K=V", added to the container's; may be NULL */
    const char *working_dir; /* NULL: the container's */
    const char *detach_keys; /* NULL: Docker's default, ctrl-p,ctrl-q */
    bool tty;                /* a terminal; else multiplexed stdout/stderr */
    bool attach_stdin;       /* stdin from the start connection */
} daemon_docker_exec_spec;

/* POST /containers/<ref>/exec. id receives the exec's id. BERTH_ENOENT
 * when there is no such container, BERTH_ECONFLICT when it is not running
 * (or paused), BERTH_EINVAL for an empty cmd or strings that are not
 * UTF-8. */
int daemon_docker_exec_create(daemon_docker *d, const char *ref,
                              const daemon_docker_exec_spec *spec,
                              char id[DAEMON_DOCKER_ID_MAX],
                              daemon_docker_err *err);

typedef struct daemon_docker_exec_state {
    bool running;
    int exit_code; /* -1 while running or when Docker does not know */
    int pid;       /* on the host; 0 before the start */
    char container_id[DAEMON_DOCKER_ID_MAX];
} daemon_docker_exec_state;

/* GET /exec/<id>/json. BERTH_ENOENT when Docker forgot the exec (its
 * container was removed). */
int daemon_docker_exec_inspect(daemon_docker *d, const char *id,
                               daemon_docker_exec_state *st,
                               daemon_docker_err *err);

/* POST /exec/<id>/resize?h=rows&w=cols (a TTY exec). Docker answers an
 * error (BERTH_EIO) while the process has not started or has ended. */
int daemon_docker_exec_resize(daemon_docker *d, const char *id,
                              unsigned cols, unsigned rows,
                              daemon_docker_err *err);

#endif
