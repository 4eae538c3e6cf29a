/* svc.h - the start-up and shutdown every berth service shares.
 *
 * A service's main() calls svc_start() (configuration, logging, data
 * directory, bus connection, discovery, the sys.echo probe), registers its
 * own handlers, logs "ready" with svc_ready(), waits in svc_wait() or runs
 * its own loop, and ends with svc_stop() (drain and free).
 */
#ifndef BERTH_BUS_SVC_H
#define BERTH_BUS_SVC_H

#include "bus/bus.h"
#include "common/config.h"

typedef struct svc_def {
    const char *component;   /* "panel": log name, data directory */
    const char *service;     /* "berth-panel": discovery name */
    const char *description; /* one line */
    const cfg_key *keys;     /* CONFIG_COMMON_KEYS plus its own, {0} ends */
} svc_def;

typedef struct svc {
    const svc_def *def;
    config *cfg;
    bus *bus;
    const char *data_dir; /* owned by cfg */
} svc;

/* Starts a service. Returns 0; 1 when --help was printed (exit 0); or a
 * negative berth code after logging why (exit non-zero). On failure
 * everything started is released. */
int svc_start(svc *s, const svc_def *def, int argc, char **argv);

/* Logs the "ready" line. */
void svc_ready(svc *s);

/* Blocks until SIGINT or SIGTERM. Returns the signal number. */
int svc_wait(svc *s);

/* Drains the bus and frees everything svc_start() made. */
void svc_stop(svc *s);

/* The whole life of a service that only answers the bus: start, ready,
 * wait for a signal, stop. Returns the process exit status. */
int svc_main(const svc_def *def, int argc, char **argv);

#endif
