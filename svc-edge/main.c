/* main.c - berth-edge: routes domains to sites through HAProxy; obtains TLS certificates.
 *
 * Concurrency: the main thread starts the service and then only waits for a
 * shutdown signal; nats.c delivers bus messages on its own threads. Later
 * layers add their own loop here and say who owns what.
 */
#include "bus/svc.h"

static const cfg_key edge_keys[] = {
    CONFIG_COMMON_KEYS,
    {0},
};

static const svc_def edge_def = {
    .component = "edge",
    .service = "berth-edge",
    .description = "routes domains to sites through HAProxy; obtains TLS certificates",
    .keys = edge_keys,
};

int main(int argc, char **argv)
{
    return svc_main(&edge_def, argc, argv);
}
