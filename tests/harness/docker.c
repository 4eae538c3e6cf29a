/* docker.c - helpers for the tests that use the real Docker Engine (see
 * docker.h). */
#include "tests/harness/docker.h"

#include <stdio.h>
#include <string.h>

#include "bus/bus.h"
#include "common/clock.h"
#include "node.pb-c.h"
#include "tests/harness/harness.h"

void h_repo_path(char *dst, size_t size, const char *rel)
{
    const char *bin = h_bin("x");
    const char *cut = strstr(bin, "build/bin/x");
    int n = cut != NULL ? (int)(cut - bin) : 0;

    snprintf(dst, size, "%.*s%s", n, bin, rel);
}

int h_image_build(void)
{
    char script[4096];
    char *argv[] = {"sh", script, H_TEST_IMAGE, NULL};
    buf out;
    int rc;

    h_repo_path(script, sizeof(script), "tests/harness/image.sh");
    buf_init(&out, 64 * 1024);
    rc = h_run(argv, NULL, 0, &out, 300000);
    if (rc != 0)
        h_say("image.sh failed (%d): %s", rc, out.data ? out.data : "");
    buf_free(&out);
    return rc;
}

void h_docker_rm_labelled(const char *label)
{
    char cmd[512];
    char *argv[] = {"sh", "-c", cmd, NULL};
    buf out;

    snprintf(cmd, sizeof(cmd),
             "docker ps -aq --filter 'label=%s' | xargs -r docker rm -f",
             label);
    buf_init(&out, 64 * 1024);
    h_run(argv, NULL, 0, &out, 120000);
    buf_free(&out);
}

static int on_register(bus_msg *m, void *ud)
{
    Berth__V1__NodeRegistered r = BERTH__V1__NODE_REGISTERED__INIT;

    (void)ud;
    r.node_id = ((Berth__V1__NodeRegister *)(void *)m->msg)->node_id;
    r.heartbeat_interval_ms = 1000;
    return bus_reply(m, &r.base);
}

static int on_sync_empty(bus_msg *m, void *ud)
{
    Berth__V1__NodeSyncReply r = BERTH__V1__NODE_SYNC_REPLY__INIT;

    (void)ud;
    r.node_id = ((Berth__V1__NodeSyncRequest *)(void *)m->msg)->node_id;
    r.generated_ms = clock_wall_ms();
    return bus_reply(m, &r.base);
}

int h_fake_panel(struct bus *b, int (*sync)(struct bus_msg *m, void *ud),
                 void *ud)
{
    int rc = bus_serve(b, "register", "node.register.*", on_register, NULL);

    if (rc == 0)
        rc = bus_serve(b, "sync", "node.sync.*",
                       sync != NULL ? sync : on_sync_empty, ud);
    return rc;
}
