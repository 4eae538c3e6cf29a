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
 * own connection to HAProxy, so any thread may issue them. The
 * certificate manager (certs.c) orders, renews and installs certificates
 * on its worker thread as routes announce domains. nats.c
 * delivers bus messages on its own threads.
 */
#include <curl/curl.h>
#include <stdlib.h>

#include "bus/js.h"
#include "bus/svc.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-edge/certs.h"
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
    {"BERTH_ACME_DIRECTORY", CFG_STR, NULL,
     "ACME directory URL (e.g. Let's Encrypt's); unset: no certificates "
     "are ordered and HTTPS serves the default certificate",
     0, 0, 0},
    {"BERTH_ACME_CA_BUNDLE", CFG_STR, NULL,
     "CA bundle trusted for the ACME server (default: the system's)", 0, 0,
     0},
    {"BERTH_ACME_EMAIL", CFG_STR, NULL, "contact of the ACME account", 0, 0,
     0},
    {0},
};

static const svc_def edge_def = {
    .component = "edge",
    .service = "berth-edge",
    .description = "routes domains to sites through HAProxy; obtains TLS "
                   "certificates",
    .keys = edge_keys,
};

/* The certificate manager, once started; the route hooks run only after
 * edge_routes_start(), when it is set or ACME is off. */
static edge_certs *certs;

static void on_domain_added(void *ud, const char *domain, const char *site)
{
    (void)ud;
    if (certs != NULL)
        edge_certs_want(certs, domain, site);
}

static void on_domain_removed(void *ud, const char *domain)
{
    (void)ud;
    if (certs != NULL)
        edge_certs_drop(certs, domain);
}

static void on_list_applied(void *ud)
{
    (void)ud;
    if (certs != NULL)
        edge_certs_prune(certs);
}

static int challenge_set(void *ud, const char *token, const char *ka)
{
    return edge_haproxy_challenge_set(ud, token, ka);
}

static int challenge_del(void *ud, const char *token)
{
    return edge_haproxy_challenge_del(ud, token);
}

static int cert_install(void *ud, const char *domain, const char *pem)
{
    return edge_haproxy_cert_install(ud, domain, pem);
}

static int cert_remove(void *ud, const char *domain)
{
    return edge_haproxy_cert_remove(ud, domain);
}

/* Starts the certificate manager when an ACME directory is configured. */
static int certs_start(svc *s, edge_haproxy *haproxy)
{
    const char *dir = config_str(s->cfg, "BERTH_ACME_DIRECTORY");
    int rc;

    if (dir == NULL || dir[0] == '\0') {
        log_info("no ACME directory configured; no certificates ordered",
                 "service=%s", edge_def.service);
        return 0;
    }
    rc = bus_js_setup(s->bus); /* the CERTS stream; retried by routes too */
    if (rc != 0)
        log_warn("jetstream not ready; certificate states wait", "error=%s",
                 berth_strerror(rc));
    return edge_certs_start(
        &(edge_certs_cfg){
            .directory_url = dir,
            .ca_bundle = config_str(s->cfg, "BERTH_ACME_CA_BUNDLE"),
            .email = config_str(s->cfg, "BERTH_ACME_EMAIL"),
            .data_dir = s->data_dir,
            .bus = s->bus,
            .challenge_set = challenge_set,
            .challenge_del = challenge_del,
            .install = cert_install,
            .remove = cert_remove,
            .ud = haproxy,
        },
        &certs);
}

static void on_haproxy_restart(void *ud)
{
    (void)ud;
    if (certs != NULL)
        edge_certs_reinstall(certs);
}

int main(int argc, char **argv)
{
    edge_haproxy *haproxy = NULL;
    edge_routes *routes = NULL;
    svc s;
    int rc;

    rc = svc_start(&s, &edge_def, argc, argv);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread uses curl */
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
            .domain_added = on_domain_added,
            .domain_removed = on_domain_removed,
            .list_applied = on_list_applied,
        },
        &routes);
    if (rc != 0)
        goto out;
    edge_haproxy_on_restart(haproxy, on_haproxy_restart, NULL);
    rc = edge_haproxy_start(haproxy);
    if (rc == BERTH_ETIMEDOUT)
        rc = 0; /* the supervisor keeps trying; routes apply once it runs */
    if (rc == 0)
        rc = certs_start(&s, haproxy);
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
    edge_certs_stop(certs);
    certs = NULL;
    edge_haproxy_free(haproxy);
    svc_stop(&s);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
