/* main.c - berth-daemon: runs sites as Docker containers on one node.
 *
 * Concurrency: the main thread starts the service, builds the modules and
 * then only waits for a shutdown signal, after which it stops them in the
 * reverse order. The node thread (node.c) owns registration and
 * heartbeats; the site supervisor (sites.c) has an events thread, a
 * supervisor thread and the command worker; the console (console.c) and
 * the stats (stats.c) have a thread each; shell sessions (exec.c) have an
 * I/O thread and a worker. nats.c delivers bus messages on
 * its own threads; file requests (files.c) run on one of them. The direct
 * server (direct.c) has a loop thread for browsers' consoles and file
 * transfers, a few workers and a thread for the panel's key. The Docker
 * client is shared: each call makes its own connection (docker.h).
 */
#include <limits.h>
#include <stdlib.h>

#include "bus/svc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/version.h"
#include "svc-daemon/console.h"
#include "svc-daemon/direct.h"
#include "svc-daemon/docker.h"
#include "svc-daemon/exec.h"
#include "svc-daemon/files.h"
#include "svc-daemon/node.h"
#include "svc-daemon/sites.h"
#include "svc-daemon/stats.h"

static const cfg_key daemon_keys[] = {
    CONFIG_COMMON_KEYS,
    {"BERTH_NODE_NAME", CFG_STR, NULL,
     "name of this node shown by the panel (default: the host name)", 0, 0, 0},
    {"BERTH_DOCKER_SOCK", CFG_STR, DAEMON_DOCKER_SOCK_DEFAULT,
     "unix socket of the Docker Engine API", 0, 0, 0},
    {"BERTH_DAEMON_PUBLIC_URL", CFG_STR, "http://127.0.0.1:8443",
     "URL where browsers reach this daemon directly", 0, 0, 0},
    {"BERTH_DAEMON_RECONCILE_MS", CFG_INT, "60000",
     "interval of the reconcile with the panel's desired state", 1000,
     86400000, 0},
    {"BERTH_DAEMON_RESTART_BACKOFF_MS", CFG_INT, "1000",
     "first delay before restarting a crashed site (doubles, up to 30 s)",
     10, 60000, 0},
    {"BERTH_DAEMON_REMOVE_ORPHANS", CFG_BOOL, "0",
     "remove containers of sites the panel does not list", 0, 0, 0},
    {"BERTH_STATS_INTERVAL_MS", CFG_INT, "1000",
     "interval of container and node stats", 100, 60000, 0},
    {"BERTH_DAEMON_ADDR", CFG_STR, DAEMON_DIRECT_ADDR_DEFAULT,
     "address of the direct server browsers use for consoles and files "
     "(empty: off)", 0, 0, 0},
    {"BERTH_DAEMON_TLS_CERT", CFG_STR, NULL,
     "PEM certificate (chain) of the direct server; with the key: HTTPS", 0,
     0, 0},
    {"BERTH_DAEMON_TLS_KEY", CFG_STR, NULL,
     "PEM private key of the direct server", 0, 0, CFG_SECRET},
    {"BERTH_DAEMON_PANEL_ORIGIN", CFG_STR, NULL,
     "the panel's origin (https://panel.example.com) browsers come from; "
     "unset: any", 0, 0, 0},
    {"BERTH_DAEMON_UPLOAD_MAX", CFG_INT, "17179869184",
     "largest file one upload may write, in bytes", 1, 0x7fffffffffffffffLL,
     0},
    {"BERTH_DAEMON_EXTRACT_MAX", CFG_INT, "4294967296",
     "most bytes one archive may unpack to", 1, 0x7fffffffffffffffLL, 0},
    {"BERTH_DAEMON_EXTRACT_ENTRIES", CFG_INT, "100000",
     "most entries one archive may hold", 1, 100000000, 0},
    {"BERTH_DAEMON_IDLE_TIMEOUT_S", CFG_INT, "30",
     "a browser's request or transfer silent this long is cut", 1, 3600, 0},
    {"BERTH_SHELL_SESSION_TIMEOUT_MS", CFG_INT, "60000",
     "a shell session ends after this long without a word from berth-shell",
     100, 3600000, 0},
    {0},
};

static const svc_def daemon_def = {
    .component = "daemon",
    .service = "berth-daemon",
    .description = "runs sites as Docker containers on one node",
    .keys = daemon_keys,
};

static int count_running(void *ud)
{
    return daemon_sites_running(ud);
}

int main(int argc, char **argv)
{
    daemon_docker *docker = NULL;
    daemon_node *node = NULL;
    daemon_console *console = NULL;
    daemon_direct *direct = NULL;
    daemon_exec *exec = NULL;
    daemon_stats *stats = NULL;
    daemon_sites *sites = NULL;
    daemon_files *files = NULL;
    const char *sock;
    char data_dir[PATH_MAX], volumes_dir[PATH_MAX + 16];
    svc s;
    int rc;

    rc = svc_start(&s, &daemon_def, argc, argv);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    /* Docker binds site data by absolute path. */
    if (realpath(s.data_dir, data_dir) == NULL) {
        rc = BERTH_ECONFIG;
        goto out;
    }
    snprintf(volumes_dir, sizeof(volumes_dir), "%s/volumes", data_dir);
    sock = config_str(s.cfg, "BERTH_DOCKER_SOCK");
    rc = daemon_docker_new(&(daemon_docker_cfg){.sock_path = sock}, &docker);
    if (rc != 0)
        goto out;
    rc = daemon_node_new(
        &(daemon_node_cfg){
            .bus = s.bus,
            .docker = docker,
            .data_dir = data_dir,
            .name = config_str(s.cfg, "BERTH_NODE_NAME"),
            .public_url = config_str(s.cfg, "BERTH_DAEMON_PUBLIC_URL"),
            .version = BERTH_VERSION,
        },
        &node);
    if (rc != 0)
        goto out;
    rc = daemon_console_new(
        &(daemon_console_cfg){
            .bus = s.bus, .node_id = daemon_node_id(node), .sock_path = sock},
        &console);
    if (rc != 0)
        goto out;
    rc = daemon_stats_new(
        &(daemon_stats_cfg){
            .bus = s.bus,
            .docker = docker,
            .node_id = daemon_node_id(node),
            .data_dir = data_dir,
            .volumes_dir = volumes_dir,
            .interval_ms = (int)config_int(s.cfg, "BERTH_STATS_INTERVAL_MS"),
        },
        &stats);
    if (rc != 0)
        goto out;
    rc = daemon_sites_new(
        &(daemon_sites_cfg){
            .bus = s.bus,
            .docker = docker,
            .console = console,
            .stats = stats,
            .node_id = daemon_node_id(node),
            .data_dir = data_dir,
            .reconcile_ms = (int)config_int(s.cfg, "BERTH_DAEMON_RECONCILE_MS"),
            .restart_backoff_ms =
                (int)config_int(s.cfg, "BERTH_DAEMON_RESTART_BACKOFF_MS"),
            .remove_orphans = config_bool(s.cfg, "BERTH_DAEMON_REMOVE_ORPHANS"),
        },
        &sites);
    if (rc != 0)
        goto out;
    rc = daemon_files_new(
        &(daemon_files_cfg){.bus = s.bus,
                            .node_id = daemon_node_id(node),
                            .volumes_dir = volumes_dir},
        &files);
    if (rc != 0)
        goto out;
    rc = daemon_exec_new(
        &(daemon_exec_cfg){
            .bus = s.bus,
            .docker = docker,
            .node_id = daemon_node_id(node),
            .sock_path = sock,
            .session_timeout_ms =
                (int)config_int(s.cfg, "BERTH_SHELL_SESSION_TIMEOUT_MS"),
        },
        &exec);
    if (rc != 0)
        goto out;
    if (config_str(s.cfg, "BERTH_DAEMON_ADDR") != NULL &&
        config_str(s.cfg, "BERTH_DAEMON_ADDR")[0] != '\0') {
        rc = daemon_direct_new(
            &(daemon_direct_cfg){
                .bus = s.bus,
                .node_id = daemon_node_id(node),
                .version = BERTH_VERSION,
                .data_dir = data_dir,
                .console = console,
                .sites = sites,
                .files = files,
                .addr = config_str(s.cfg, "BERTH_DAEMON_ADDR"),
                .tls_cert = config_str(s.cfg, "BERTH_DAEMON_TLS_CERT"),
                .tls_key = config_str(s.cfg, "BERTH_DAEMON_TLS_KEY"),
                .panel_origin = config_str(s.cfg, "BERTH_DAEMON_PANEL_ORIGIN"),
                .upload_max =
                    (uint64_t)config_int(s.cfg, "BERTH_DAEMON_UPLOAD_MAX"),
                .extract_max =
                    (uint64_t)config_int(s.cfg, "BERTH_DAEMON_EXTRACT_MAX"),
                .extract_entries = (uint32_t)config_int(
                    s.cfg, "BERTH_DAEMON_EXTRACT_ENTRIES"),
                .idle_timeout_s =
                    (int)config_int(s.cfg, "BERTH_DAEMON_IDLE_TIMEOUT_S"),
            },
            &direct);
        /* A taken port leaves the sites running, without the direct
         * server; a wrong setting stops the start. */
        if (rc == BERTH_EBUSY)
            log_error("direct server not started: its port is taken",
                      "addr=%s", config_str(s.cfg, "BERTH_DAEMON_ADDR"));
        else if (rc != 0)
            goto out;
        rc = 0;
    }
    daemon_node_count_with(node, count_running, sites);
    rc = daemon_node_start(node);
    if (rc == 0)
        rc = daemon_stats_start(stats);
    if (rc == 0)
        rc = daemon_sites_start(sites);
    if (rc != 0)
        goto out;
    svc_ready(&s);
    svc_wait(&s);
out:
    if (rc != 0)
        log_error("start failed", "service=%s error=%s", daemon_def.service,
                  berth_strerror(rc));
    daemon_direct_free(direct);
    daemon_exec_free(exec);
    daemon_files_free(files);
    daemon_sites_free(sites);
    daemon_stats_free(stats);
    daemon_console_free(console);
    daemon_node_free(node);
    daemon_docker_free(docker);
    svc_stop(&s);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
