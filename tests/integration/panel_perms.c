/* panel_perms.c - every permission of the panel, both ways: for each name,
 * a user whose role holds every permission but that one is refused (403)
 * on each endpoint that needs it, and a user whose role holds only that
 * one gets past the check. node.manage, site.console.write and
 * site.files.write guard nothing in the panel's HTTP API (the daemon and
 * the shell enforce them), so they have no row here. Last, a NATS outage:
 * 503, then recovery.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "common/clock.h"
#include "node.pb-c.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"

#define ADMIN_PASSWORD "permission matrix admin"
#define USER_PASSWORD "matrix user password"

static h_panel panel;
static char admin[H_ACCESS_MAX];
static char site_id[40];
static int serial;

static void up(void)
{
    char *extra[] = {"BERTH_NODE_HEARTBEAT_MS=60000", NULL};

    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, extra), 0);
    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, admin, NULL), 201);
}

static void down(void)
{
    ck_assert_int_eq(h_panel_stop(&panel), 0);
}

/* Sends a request as admin and returns the "key" string of the reply (or
 * "" when absent); expects status want. */
static void as_admin(const char *method, const char *path, const char *body,
                     long want, const char *key, char *out, size_t size)
{
    h_resp r;

    ck_assert_msg(h_call(&panel, &r, method, path, admin, body) == want,
                  "%s %s: %ld %s", method, path, r.status,
                  r.body.data ? r.body.data : "");
    if (key != NULL)
        snprintf(out, size, "%s", h_jstr(r.json, key));
    h_resp_free(&r);
}

/* Creates a role with the given comma-separated permission list and a
 * user holding it; logs in and writes the access token. */
static void make_user(const char *perms, char *access)
{
    char body[2048], name[32], role[32], list[1500] = "";
    char *copy = strdup(perms), *save = NULL, *tok;
    size_t used = 0;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s\"%s\"",
                                 used ? "," : "", tok);
    free(copy);
    snprintf(role, sizeof(role), "matrix-%d", ++serial);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"permissions\":[%s]}", role, list);
    as_admin("POST", "/role", body, 200, NULL, NULL, 0);
    snprintf(name, sizeof(name), "matrix%d", serial);
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"password\":\"" USER_PASSWORD "\","
             "\"email\":\"%s@example.org\",\"role_name\":\"%s\"}",
             name, name, role);
    as_admin("POST", "/user/create", body, 201, NULL, NULL, 0);
    ck_assert_int_eq(h_login(&panel, name, USER_PASSWORD, access, NULL), 201);
}

/* A fresh user id, role id or site id for a destructive call. */
static void fresh_user(char *id)
{
    char body[256];

    serial++;
    snprintf(body, sizeof(body),
             "{\"name\":\"victim%d\",\"password\":\"victim password\","
             "\"email\":\"victim%d@example.org\",\"role_name\":\"admin\"}",
             serial, serial);
    as_admin("POST", "/user/create", body, 201, "uuid", id, 40);
}

static int fresh_role(void)
{
    char body[128];
    h_resp r;
    int id;

    snprintf(body, sizeof(body), "{\"name\":\"spare%d\",\"permissions\":[\"user.read\"]}",
             ++serial);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin, body), 200);
    id = (int)json_integer_value(json_object_get(r.json, "id"));
    h_resp_free(&r);
    return id;
}

static void fresh_site(char *id)
{
    char body[256];

    snprintf(body, sizeof(body),
             "{\"name\":\"site%d\",\"image\":\"busybox\",\"node\":\"n1\"}", ++serial);
    as_admin("POST", "/sites", body, 202, "id", id, 40);
}

/* Builds the request that needs perm; returns 0 when the panel's HTTP API
 * has none for it. */
static int request_for(const char *perm, char *method, char *path, char *body)
{
    char id[40];

    body[0] = '\0';
    if (!strcmp(perm, "user.read")) {
        strcpy(method, "GET");
        strcpy(path, "/users");
    } else if (!strcmp(perm, "user.create")) {
        strcpy(method, "POST");
        strcpy(path, "/user/create");
        serial++;
        sprintf(body,
                "{\"name\":\"made%d\",\"password\":\"made password\","
                "\"email\":\"made%d@example.org\",\"role_name\":\"admin\"}",
                serial, serial);
    } else if (!strcmp(perm, "user.update")) {
        fresh_user(id);
        strcpy(method, "PATCH");
        strcpy(path, "/user");
        sprintf(body, "{\"id\":\"%s\",\"email\":\"changed%d@example.org\"}", id, ++serial);
    } else if (!strcmp(perm, "user.delete")) {
        fresh_user(id);
        strcpy(method, "DELETE");
        sprintf(path, "/user/%s", id);
    } else if (!strcmp(perm, "role.read")) {
        strcpy(method, "GET");
        strcpy(path, "/roles");
    } else if (!strcmp(perm, "role.create")) {
        strcpy(method, "POST");
        strcpy(path, "/role");
        sprintf(body, "{\"name\":\"new%d\",\"permissions\":[\"user.read\"]}", ++serial);
    } else if (!strcmp(perm, "role.update")) {
        strcpy(method, "PATCH");
        strcpy(path, "/role");
        sprintf(body, "{\"id\":%d,\"name\":\"renamed%d\"}", fresh_role(), ++serial);
    } else if (!strcmp(perm, "role.delete")) {
        strcpy(method, "DELETE");
        sprintf(path, "/role/%d", fresh_role());
    } else if (!strcmp(perm, "node.read")) {
        strcpy(method, "GET");
        strcpy(path, "/nodes");
    } else if (!strcmp(perm, "site.read")) {
        strcpy(method, "GET");
        sprintf(path, "/sites/%s", site_id);
    } else if (!strcmp(perm, "site.create")) {
        strcpy(method, "POST");
        strcpy(path, "/sites");
        sprintf(body, "{\"name\":\"made%d\",\"image\":\"busybox\",\"node\":\"n1\"}", ++serial);
    } else if (!strcmp(perm, "site.update")) {
        strcpy(method, "PATCH");
        sprintf(path, "/sites/%s", site_id);
        strcpy(body, "{\"image\":\"busybox:1\"}");
    } else if (!strcmp(perm, "site.delete")) {
        fresh_site(id);
        strcpy(method, "DELETE");
        sprintf(path, "/sites/%s", id);
    } else if (!strcmp(perm, "site.power")) {
        strcpy(method, "POST");
        sprintf(path, "/sites/%s/power", site_id);
        strcpy(body, "{\"action\":\"restart\"}");
    } else if (!strcmp(perm, "site.console.read")) {
        strcpy(method, "POST");
        sprintf(path, "/sites/%s/tokens", site_id);
        strcpy(body, "{\"scope\":\"console\"}");
    } else if (!strcmp(perm, "site.files.read")) {
        strcpy(method, "POST");
        sprintf(path, "/sites/%s/tokens", site_id);
        strcpy(body, "{\"scope\":\"files\"}");
    } else if (!strcmp(perm, "audit.read")) {
        strcpy(method, "GET");
        strcpy(path, "/audit");
    } else {
        return 0;
    }
    return 1;
}

START_TEST(setup_node_and_site)
{
    bus *b = h_bus_open(panel.nats.url, "matrix-daemon");
    Berth__V1__NodeSpecs specs = BERTH__V1__NODE_SPECS__INIT;
    Berth__V1__NodeRegister reg = BERTH__V1__NODE_REGISTER__INIT;
    ProtobufCMessage *reply = NULL;
    bus_error err;

    specs.hostname = "matrix";
    specs.memory_bytes = 8ull << 30;
    reg.node_id = "n1";
    reg.name = "n1";
    reg.specs = &specs;
    reg.public_url = "https://n1.example.net:8443";
    ck_assert_int_eq(bus_request(b, "node.register.n1", &reg.base, 5000, &reply, &err), 0);
    protobuf_c_message_free_unpacked(reply, NULL);
    bus_close(b);
    fresh_site(site_id);
}
END_TEST

/* Every permission name the panel knows (README "Permissions"). */
static const char *const names[] = {
    "user.read",         "user.create",        "user.update",
    "user.delete",       "role.read",          "role.create",
    "role.update",       "role.delete",        "node.read",
    "node.manage",       "site.read",          "site.create",
    "site.update",       "site.delete",        "site.power",
    "site.console.read", "site.console.write", "site.files.read",
    "site.files.write",  "audit.read",
};

START_TEST(each_permission_both_ways)
{
    const int n = (int)(sizeof(names) / sizeof(names[0]));
    int checked = 0;
    int i, j;

    for (i = 0; i < n; i++) {
        char without[H_ACCESS_MAX], with[H_ACCESS_MAX];
        char method[16], path[160], body[512], others[1500] = "";
        size_t used = 0;
        h_resp r;

        if (!request_for(names[i], method, path, body))
            continue;
        for (j = 0; j < n; j++) {
            if (j != i)
                used += (size_t)snprintf(others + used, sizeof(others) - used,
                                         "%s%s", used ? "," : "", names[j]);
        }
        make_user(others, without);
        make_user(names[i], with);

        h_call(&panel, &r, method, path, without, body[0] ? body : NULL);
        ck_assert_msg(r.status == 403, "%s %s without %s: %ld %s", method, path,
                      names[i], r.status, r.body.data ? r.body.data : "");
        ck_assert_ptr_nonnull(strstr(r.body.data, names[i]));
        h_resp_free(&r);

        /* The same request again (a fresh target for destructive ones). */
        request_for(names[i], method, path, body);
        h_call(&panel, &r, method, path, with, body[0] ? body : NULL);
        ck_assert_msg(r.status >= 200 && r.status < 300, "%s %s with only %s: %ld %s",
                      method, path, names[i], r.status, r.body.data ? r.body.data : "");
        h_resp_free(&r);
        checked++;
    }
    ck_assert_int_eq(checked, n - 3);
}
END_TEST

/* SQL metacharacters in the free-text fields of sites, users and keys are
 * stored and returned byte for byte; nothing is executed. */
START_TEST(metacharacters_stored_verbatim)
{
    const char *evil = "x'); DROP TABLE sites; -- \\ \" \u00e9";
    json_t *body, *j;
    char *text, path[96], id[40], user[40];
    h_resp r;

    body = json_pack("{s:s, s:s, s:s, s:[s, s], s:{s:s}}", "name", "quotes", "image",
                     "busybox", "node", "n1", "command", "sh", evil, "env", "EVIL", evil);
    text = json_dumps(body, 0);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/sites", admin, text), 202);
    snprintf(id, sizeof(id), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    free(text);
    json_decref(body);
    snprintf(path, sizeof(path), "/sites/%s", id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin, NULL), 200);
    j = json_object_get(r.json, "spec");
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "command"), 1)), evil);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "env"), "EVIL")), evil);
    h_resp_free(&r);

    /* An address full of quotes is still an address, kept as typed. */
    body = json_pack("{s:s, s:s, s:s, s:s}", "name", "quoted", "password", "quoted password",
                     "email", "o'hara'--;@example.org", "role_name", "admin");
    text = json_dumps(body, 0);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", admin, text), 201);
    snprintf(user, sizeof(user), "%s", h_jstr(r.json, "uuid"));
    h_resp_free(&r);
    free(text);
    json_decref(body);
    snprintf(path, sizeof(path), "/user/%s", user);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin, NULL), 200);
    ck_assert_str_eq(h_jstr(r.json, "email"), "o'hara'--;@example.org");
    h_resp_free(&r);

    /* The tables are all still there. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/sites", admin, NULL), 200);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", admin, NULL), 200);
    h_resp_free(&r);
}
END_TEST

/* NATS down: operations that must reach a node answer 503 at once (the
 * site is kept), reads keep working, and once NATS is back the panel
 * reconnects by itself. */
START_TEST(nats_outage)
{
    char body[160];
    int64_t t0, end;
    h_resp r;
    long st = 0;

    ck_assert_int_eq(h_proc_stop(&panel.nats.proc, SIGINT, 10000), 0);
    h_proc_free(&panel.nats.proc);
    snprintf(body, sizeof(body),
             "{\"name\":\"outage%d\",\"image\":\"busybox\",\"node\":\"n1\"}", ++serial);
    t0 = clock_mono_ms();
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/sites", admin, body), 503);
    ck_assert_str_eq(h_err_code(&r), "EUNAVAIL");
    h_resp_free(&r);
    ck_assert_int_lt(clock_mono_ms() - t0, 10000);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/sites", admin, NULL), 200);
    h_resp_free(&r);

    ck_assert_int_eq(h_nats_restart(&panel.nats), 0);
    end = clock_mono_ms() + 20000;
    while (clock_mono_ms() < end) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"back%d\",\"image\":\"busybox\",\"node\":\"n1\"}",
                 ++serial);
        st = h_call(&panel, &r, "POST", "/sites", admin, body);
        h_resp_free(&r);
        if (st == 202)
            break;
        clock_sleep_ms(250);
    }
    ck_assert_int_eq(st, 202);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/panel_perms");
    TCase *tc = tcase_create("perms");

    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, up, down);
    tcase_add_test(tc, setup_node_and_site);
    tcase_add_test(tc, each_permission_both_ways);
    tcase_add_test(tc, metacharacters_stored_verbatim);
    tcase_add_test(tc, nats_outage);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
