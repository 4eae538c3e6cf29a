/* main.c - berth-daemon: runs sites as Docker containers on one node.
 *
 * Concurrency: the main thread starts the service, builds the modules and
 * then only waits for a shutdown signal, after which it stops them in the
 * reverse order. The node thread (node.c) owns registration and
 * heartbeats and everything they keep. nats.c delivers bus messages on its
 * own threads. The Docker client is shared: each call makes its own
 * connection (docker.h).
 */
#include <stdlib.h>

#include "bus/svc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/version.h"
#include "svc-daemon/docker.h"
#include "svc-daemon/node.h"

static const cfg_key daemon_keys[] = {
    CONFIG_COMMON_KEYS,
    {"BERTH_NODE_NAME", CFG_STR, NULL,
     "name of this node shown by the panel (default: the host name)", 0, 0, 0},
    {"BERTH_DOCKER_SOCK", CFG_STR, DAEMON_DOCKER_SOCK_DEFAULT,
     "unix socket of the Docker Engine API", 0, 0, 0},
    {"BERTH_DAEMON_PUBLIC_URL", CFG_STR, "http://127.0.0.1:8443",
     "URL where browsers reach this daemon directly", 0, 0, 0},
    {0},
};

static const svc_def daemon_def = {
    .component = "daemon",
    .service = "berth-daemon",
    .description = "runs sites as Docker containers on one node",
    .keys = daemon_keys,
};

int main(int argc, char **argv)
{
    daemon_docker *docker = NULL;
    daemon_node *node = NULL;
    svc s;
    int rc;

    rc = svc_start(&s, &daemon_def, argc, argv);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    rc = daemon_docker_new(
        &(daemon_docker_cfg){.sock_path =
                                 config_str(s.cfg, "BERTH_DOCKER_SOCK")},
        &docker);
    if (rc != 0)
        goto out;
    rc = daemon_node_new(
        &(daemon_node_cfg){
            .bus = s.bus,
            .docker = docker,
            .data_dir = s.data_dir,
            .name = config_str(s.cfg, "BERTH_NODE_NAME"),
            .public_url = config_str(s.cfg, "BERTH_DAEMON_PUBLIC_URL"),
            .version = BERTH_VERSION,
        },
        &node);
    if (rc != 0)
        goto out;
    rc = daemon_node_start(node);
    if (rc != 0)
        goto out;
    svc_ready(&s);
    svc_wait(&s);
out:
    if (rc != 0)
        log_error("start failed", "service=%s error=%s", daemon_def.service,
                  berth_strerror(rc));
    daemon_node_free(node);
    daemon_docker_free(docker);
    svc_stop(&s);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
