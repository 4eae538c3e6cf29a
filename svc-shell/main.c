/* main.c - berth-shell: SSH and SFTP into sites.
 *
 * Concurrency: the main thread starts the service and then only waits for
 * a shutdown signal. An acceptor thread takes TCP connections and gives
 * each a handshake thread (key exchange and authentication, blocking on
 * the panel's shell.auth); authenticated connections are handed to one of
 * BERTH_SHELL_LOOPS loop threads, each owning its connections and their
 * libssh objects. Bus requests made for open connections (shell.open,
 * files.op) run on BERTH_SHELL_WORKERS pool threads and come back to the
 * loops as posts; nats.c threads deliver session output and revocations
 * into locked queues and wake the loops through their eventfds (see
 * server.h and shell_int.h for who owns what). At exit the server stops
 * (sessions ended on the bus) before the bus closes, and is freed after.
 */
#include <malloc.h>
#include <stdlib.h>

#include "bus/svc.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-shell/hostkey.h"
#include "svc-shell/server.h"

static const cfg_key shell_keys[] = {
    CONFIG_COMMON_KEYS,
    {"BERTH_SHELL_ADDR", CFG_STR, "0.0.0.0:2222",
     "SSH listen address (host:port)", 0, 0, 0},
    {"BERTH_SHELL_LOOPS", CFG_INT, "2", "event-loop threads", 1, 64, 0},
    {"BERTH_SHELL_WORKERS", CFG_INT, "16",
     "threads running bus requests (file operations, session starts)", 1,
     256, 0},
    {"BERTH_SHELL_MAX_CONNS", CFG_INT, "1024", "SSH connections at once", 1,
     1000000, 0},
    {"BERTH_SHELL_MAX_STARTUPS", CFG_INT, "64",
     "connections not yet authenticated at once", 1, 10000, 0},
    {"BERTH_SHELL_LOGIN_GRACE_S", CFG_INT, "30",
     "seconds a client has to authenticate", 1, 600, 0},
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
    static svc s;
    char fingerprint[SHELL_FINGERPRINT_MAX];
    shell_server_cfg cfg = {0};
    shell_srv *srv = NULL;
    ssh_key key = NULL;
    int rc;

    /* File transfers allocate and free buffers of a few hundred KiB at a
     * high rate (SFTP chunks, bus messages). Served from the heap rather
     * than fresh mmaps, they do not fault in new pages every time. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    rc = svc_start(&s, &shell_def, argc, argv);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    if (ssh_init() != SSH_OK) {
        log_error("libssh initialisation failed", "error=%s", "ssh_init");
        rc = BERTH_EINTERNAL;
        goto out;
    }
    rc = shell_hostkey_load(s.data_dir, &key, fingerprint);
    if (rc != 0) {
        log_error("host key", "error=%s", berth_strerror(rc));
        goto out;
    }
    cfg.bus = s.bus;
    cfg.data_dir = s.data_dir;
    cfg.addr = config_str(s.cfg, "BERTH_SHELL_ADDR");
    cfg.hostkey = key;
    cfg.loops = (int)config_int(s.cfg, "BERTH_SHELL_LOOPS");
    cfg.workers = (int)config_int(s.cfg, "BERTH_SHELL_WORKERS");
    cfg.max_conns = (int)config_int(s.cfg, "BERTH_SHELL_MAX_CONNS");
    cfg.max_handshakes = (int)config_int(s.cfg, "BERTH_SHELL_MAX_STARTUPS");
    cfg.login_grace_ms = (int)config_int(s.cfg, "BERTH_SHELL_LOGIN_GRACE_S") * 1000;
    rc = shell_server_start(&cfg, &srv);
    if (rc != 0) {
        log_error("ssh server", "addr=%s error=%s", cfg.addr,
                  berth_strerror(rc));
        goto out;
    }
    log_info("listening", "addr=%s port=%d hostkey=%s", cfg.addr,
             shell_server_port(srv), fingerprint);
    svc_ready(&s);
    svc_wait(&s);
out:
    shell_server_stop(srv);
    svc_stop(&s); /* closes the bus, whose handlers use the server */
    shell_server_free(srv);
    ssh_finalize();
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
