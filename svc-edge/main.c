/* main.c - berth-edge: routes domains to sites through HAProxy; obtains TLS
 * certificates.
 *
 * Concurrency: the main thread starts the service, builds the modules and
 * then only waits for a shutdown signal, after which it stops them in the
 * reverse order. The HAProxy driver (haproxy.c) has a supervisor thread
 * that owns the HAProxy process (or watches an external one) and runs the
 * re-apply callbacks after every start of HAProxy. The route table
 * (routes.c) is guarded by its own lock; its consumer thread (bus/js.c)
 * applies route events, its keeper thread writes the map file, asks the
 * panel for the route list and retries. Runtime API commands open their
 * own connection to HAProxy, so any thread may issue them. nats.c
 * delivers bus messages on its own threads.
 */
#include <stdlib.h>

#include "bus/svc.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-edge/haproxy.h"
#include "svc-edge/routes.h"

static const cfg_key edge_keys[] = {
    CONFIG_COMMON_KEYS,
    {"BERTH_EDGE_HTTP_ADDR", CFG_STR, "0.0.0.0:80",
     "HTTP listen address of HAProxy (host:port, [IPv6]:port)", 0, 0, 0},
    {"BERTH_EDGE_HTTPS_ADDR", CFG_STR, "0.0.0.0:443",
     "HTTPS listen address of HAProxy", 0, 0, 0},
    {"BERTH_EDGE_HAPROXY_SOCKET", CFG_STR, NULL,
     "admin socket of an HAProxy already running with the configuration "
     "the edge writes (default: the edge runs its own HAProxy)",
     0, 0, 0},
    {"BERTH_EDGE_HAPROXY_BIN", CFG_STR, NULL,
     "the haproxy program (default: haproxy from PATH)", 0, 0, 0},
    {"BERTH_EDGE_ROUTE_LIST_MS", CFG_INT, "60000",
     "interval of the route list asked of the panel, to heal missed events",
     100, 86400000, 0},
    /* Certificates (certs.c) add BERTH_ACME_DIRECTORY, BERTH_ACME_CA_BUNDLE
     * and BERTH_ACME_EMAIL here. */
    {0},
};

static const svc_def edge_def = {
    .component = "edge",
    .service = "berth-edge",
    .description = "routes domains to sites through HAProxy; obtains TLS "
                   "certificates",
    .keys = edge_keys,
};

int main(int argc, char **argv)
{
    edge_haproxy *haproxy = NULL;
    edge_routes *routes = NULL;
    svc s;
    int rc;

    rc = svc_start(&s, &edge_def, argc, argv);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    rc = edge_haproxy_new(
        &(edge_haproxy_cfg){
            .dir = s.data_dir,
            .http_addr = config_str(s.cfg, "BERTH_EDGE_HTTP_ADDR"),
            .https_addr = config_str(s.cfg, "BERTH_EDGE_HTTPS_ADDR"),
            .admin_socket = config_str(s.cfg, "BERTH_EDGE_HAPROXY_SOCKET"),
            .haproxy_bin = config_str(s.cfg, "BERTH_EDGE_HAPROXY_BIN"),
        },
        &haproxy);
    if (rc != 0)
        goto out;
    /* Before HAProxy starts: the table is re-applied at every start. */
    rc = edge_routes_new(
        &(edge_routes_cfg){
            .bus = s.bus,
            .haproxy = haproxy,
            .heal_ms = (int)config_int(s.cfg, "BERTH_EDGE_ROUTE_LIST_MS"),
        },
        &routes);
    if (rc != 0)
        goto out;
    rc = edge_haproxy_start(haproxy);
    if (rc == BERTH_ETIMEDOUT)
        rc = 0; /* the supervisor keeps trying; routes apply once it runs */
    if (rc == 0)
        rc = edge_routes_start(routes);
    if (rc != 0)
        goto out;
    svc_ready(&s);
    svc_wait(&s);
out:
    if (rc != 0)
        log_error("start failed", "service=%s error=%s", edge_def.service,
                  berth_strerror(rc));
    edge_routes_free(routes);
    edge_haproxy_free(haproxy);
    svc_stop(&s);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
