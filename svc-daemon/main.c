/* main.c - berth-daemon: runs sites as Docker containers on one node.
 *
 * Concurrency: the main thread starts the service and then only waits for a
 * shutdown signal; nats.c delivers bus messages on its own threads. Later
 * layers add their own loop here and say who owns what.
 */
#include "bus/svc.h"

static const cfg_key daemon_keys[] = {
    CONFIG_COMMON_KEYS,
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
    return svc_main(&daemon_def, argc, argv);
}
