/* svc.c - the start-up and shutdown every berth service shares. */
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.pb-c.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/sig.h"
#include "common/version.h"

/* sys.echo.<service>: returns the request unchanged. */
static int on_echo(bus_msg *m, void *ud)
{
    (void)ud;
    return bus_reply(m, m->msg);
}

int svc_start(svc *s, const svc_def *def, int argc, char **argv)
{
    bus_opts o = {0};
    char err[512];
    char subject[128];
    const char *level;
    int lvl;
    int rc;

    memset(s, 0, sizeof(*s));
    s->def = def;
    log_init(def->component, LOG_INFO);
    if (config_wants_help(argc, argv)) {
        printf("%s - %s\n\n", def->service, def->description);
        config_print_help(stdout, argv[0], def->component, def->keys);
        return 1;
    }
    /* Signals are taken synchronously; block them before any thread. */
    rc = sig_block();
    if (rc != 0)
        goto out;
    rc = config_load(&s->cfg, def->component, def->keys, argc, argv, err,
                     sizeof(err));
    if (rc != 0) {
        log_error("configuration", "error=%s", err);
        goto out;
    }
    level = config_str(s->cfg, "BERTH_LOG_LEVEL");
    lvl = log_level_parse(level ? level : "info");
    if (lvl < 0) {
        log_error("configuration", "error=%s", "BERTH_LOG_LEVEL must be debug, info, warn or error");
        rc = BERTH_ECONFIG;
        goto out;
    }
    log_set_level((enum log_level)lvl);
    log_info("starting", "service=%s version=%s", def->service, BERTH_VERSION);
    s->data_dir = config_str(s->cfg, "BERTH_DATA_DIR");
    rc = fs_mkdirs(s->data_dir, 0700);
    if (rc != 0) {
        log_error("data directory", "path=%s error=%s", s->data_dir,
                  berth_strerror(rc));
        goto out;
    }
    o.url = config_str(s->cfg, "BERTH_NATS_URL");
    o.creds = config_str(s->cfg, "BERTH_NATS_CREDS");
    o.service = def->service;
    o.version = BERTH_VERSION;
    o.description = def->description;
    rc = bus_open(&s->bus, &o);
    if (rc != 0)
        goto out;
    snprintf(subject, sizeof(subject), "sys.echo.%s", def->service);
    rc = bus_serve(s->bus, "echo", subject, on_echo, NULL);
    if (rc != 0)
        goto out;
    return 0;
out:
    log_error("start failed", "service=%s error=%s", def->service,
              berth_strerror(rc));
    svc_stop(s);
    return rc;
}

void svc_ready(svc *s)
{
    log_info("ready", "service=%s id=%s", s->def->service,
             bus_instance_id(s->bus));
}

int svc_wait(svc *s)
{
    int sig;

    (void)s;
    do {
        sig = sig_wait(-1);
    } while (sig == 0);
    log_info("shutting down", "signal=%s", strsignal(sig));
    return sig;
}

void svc_stop(svc *s)
{
    bus_close(s->bus);
    s->bus = NULL;
    config_free(s->cfg);
    s->cfg = NULL;
    /* Release nats.c's global state and threads: the process is ending,
     * and a clean exit keeps leak checkers quiet. */
    nats_CloseAndWait(2000);
    if (s->def != NULL)
        log_info("stopped", "service=%s", s->def->service);
}

int svc_main(const svc_def *def, int argc, char **argv)
{
    svc s;
    int rc;

    rc = svc_start(&s, def, argc, argv);
    if (rc != 0)
        return rc > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    svc_ready(&s);
    svc_wait(&s);
    svc_stop(&s);
    return EXIT_SUCCESS;
}
