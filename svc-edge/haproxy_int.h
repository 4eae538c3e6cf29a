/* haproxy_int.h - what haproxy.c (configuration, process, supervision)
 * and haproxy_runtime.c (runtime API: maps, challenges, certificates)
 * share: the driver's struct and a few functions. Nothing else includes
 * it.
 *
 * Locks: mu guards the process state (pid, up, starts, stopping);
 * challenge_mu the challenge table; cert_mu the certificate files and
 * certs.list; map_mu[] the writers of each map file. None is held while
 * another is taken, except challenge_mu around map writes.
 */
#ifndef BERTH_EDGE_HAPROXY_INT_H
#define BERTH_EDGE_HAPROXY_INT_H

#include <limits.h>
#include <pthread.h>
#include <sys/types.h>

#include "svc-edge/haproxy.h"

#define HX_START_WAIT_MS   15000 /* edge_haproxy_start() waits this long */
#define HX_BACKOFF_MIN_MS  100
#define HX_BACKOFF_MAX_MS  10000
#define HX_STABLE_MS       10000 /* up this long: the backoff starts over */
#define HX_STOP_GRACE_MS   5000  /* SIGTERM, then SIGKILL */
#define HX_POLL_MS         1000  /* an external HAProxy is looked at */
#define HX_IO_TIMEOUT_MS   10000 /* one runtime command */
#define HX_PAYLOAD_MAX     8192  /* one "add map @ver" payload (tune.bufsize) */
#define HX_TOKEN_MAX       256   /* an ACME token */
#define HX_KEYAUTH_MAX     512   /* token "." thumbprint */
#define HX_CHALLENGES_MAX  1024
#define HX_DOMAIN_MAX      253
#define HX_PEM_MAX         (256u << 10)
#define HX_ADDR_MAX        128
#define HX_LINE_MAX        1024  /* a line HAProxy prints */

typedef struct hx_callback {
    void (*fn)(void *ud);
    void *ud;
} hx_callback;

typedef struct hx_challenge {
    char token[HX_TOKEN_MAX + 1];
    char keyauth[HX_KEYAUTH_MAX + 1];
} hx_challenge;

struct edge_haproxy {
    /* Set by edge_haproxy_new(), read-only afterwards. */
    char dir[PATH_MAX];
    char cfg_path[PATH_MAX + 32];
    char maps[EDGE_HAPROXY_MAPS][PATH_MAX + 32];
    char certs_dir[PATH_MAX + 32];
    char crt_list[PATH_MAX + 32];
    char default_cert[PATH_MAX + 32];
    char admin_sock[PATH_MAX + 32];
    char master_sock[PATH_MAX + 32];
    char pid_file[PATH_MAX + 32];
    char http_addr[HX_ADDR_MAX];
    char https_addr[HX_ADDR_MAX];
    char bin[PATH_MAX];
    int external;
    hx_callback callbacks[EDGE_HAPROXY_CALLBACKS_MAX];
    int ncallbacks;

    pthread_mutex_t mu; /* guards the fields below; cv signals changes */
    pthread_cond_t cv;
    pid_t pid;       /* our master process, 0 when none */
    int up;          /* the admin socket answered since the last start */
    long starts;     /* starts of HAProxy whose callbacks have run */
    long ext_reloads; /* external: worker pid changes seen */
    int stopping;
    pthread_t thread;
    int thread_started;

    pthread_mutex_t challenge_mu;
    hx_challenge *challenges;
    int nchallenges;

    pthread_mutex_t cert_mu; /* certificate operations, certs.list */
    pthread_mutex_t map_mu[EDGE_HAPROXY_MAPS];
};

/* haproxy_runtime.c */

/* Sends cmd to the unix socket at path and reads the whole answer into out
 * (may be NULL). Returns 0 or BERTH_EUNAVAIL / BERTH_ETOOBIG / BERTH_EIO. */
int hx_sock_cmd(const char *path, const char *cmd, buf *out);

/* Rewrites challenges.map from the table; caller holds challenge_mu. */
int hx_challenge_save(edge_haproxy *h);

/* After a start of HAProxy: the challenge map as the table says. */
void hx_challenges_reapply(edge_haproxy *h);

/* Rewrites certs.list from the files of certs/; caller holds cert_mu. */
int hx_crt_list_write(edge_haproxy *h);

#endif
