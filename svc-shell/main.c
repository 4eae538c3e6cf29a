/* main.c - berth-shell: SSH and SFTP into sites.
 *
 * Concurrency: the main thread starts the service and then only waits for a
 * shutdown signal; nats.c delivers bus messages on its own threads. Later
 * layers add their own loop here and say who owns what.
 */
#include "bus/svc.h"

static const cfg_key shell_keys[] = {
    CONFIG_COMMON_KEYS,
    {0},
};

static const svc_def shell_def = {
    .component = "shell",
    .service = "berth-shell",
    .description = "SSH and SFTP into sites",
    .keys = shell_keys,
};

int main(int argc, char **argv)
{
    return svc_main(&shell_def, argc, argv);
}
