/* main.c - berth-panel: users, roles, nodes and sites; signs tokens for browsers.
 *
 * Concurrency: the main thread starts the service and then only waits for a
 * shutdown signal; nats.c delivers bus messages on its own threads. Later
 * layers add their own loop here and say who owns what.
 */
#include "bus/svc.h"

static const cfg_key panel_keys[] = {
    CONFIG_COMMON_KEYS,
    {0},
};

static const svc_def panel_def = {
    .component = "panel",
    .service = "berth-panel",
    .description = "users, roles, nodes and sites; signs tokens for browsers",
    .keys = panel_keys,
};

int main(int argc, char **argv)
{
    return svc_main(&panel_def, argc, argv);
}
