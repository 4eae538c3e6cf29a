/* panel.c - berth-panel against real PostgreSQL and nats-server, through
 * its HTTP API with libcurl: the Encedeus auth, user and role endpoints,
 * permissions, refresh rotation, throttling, bad input and database
 * outages.
 *
 * One panel serves the whole suite (CK_FORK off); tests build on each
 * other's users and roles in the order they are added.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"

#define ADMIN_PASSWORD "correct horse battery staple"

static h_panel panel;
static char admin_access[H_ACCESS_MAX], admin_refresh[H_REFRESH_MAX];
static char admin_id[40];

static void suite_up(void)
{
    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, NULL), 0);
}

static void suite_down(void)
{
    ck_assert_int_eq(h_panel_stop(&panel), 0);
}

START_TEST(health_and_metrics)
{
    h_resp r;

    ck_assert_int_eq(h_call(&panel, &r, "GET", "/health", NULL, NULL), 200);
    ck_assert_str_eq(h_jstr(r.json, "status"), "ok");
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/metrics", NULL, NULL), 200);
    ck_assert_ptr_nonnull(strstr(r.body.data, "berth_http_requests_total"));
    ck_assert_ptr_nonnull(strstr(r.body.data, "berth_db_pool_connections"));
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/nope", NULL, NULL), 404);
    ck_assert_str_eq(h_err_code(&r), "ENOENT");
    h_resp_free(&r);
}
END_TEST

START_TEST(login_and_user_body)
{
    h_resp r;
    char path[128];
    const char *key;
    json_t *v;
    int n = 0;

    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, admin_access,
                             admin_refresh),
                     201);
    ck_assert_uint_gt(strlen(admin_access), 20);
    ck_assert_uint_eq(strlen(admin_refresh), 43);

    /* By email as well, exactly the Encedeus body. */
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/auth/login", NULL,
                            "{\"email\":\"admin@localhost\",\"password\":\"" ADMIN_PASSWORD "\"}"),
                     201);
    ck_assert_int_eq(json_object_size(r.json), 2);
    ck_assert_str_ne(h_jstr(r.json, "accessToken"), "");
    ck_assert_str_ne(h_jstr(r.json, "refreshToken"), "");
    h_resp_free(&r);

    /* Who am I: decode nothing, ask the list. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", admin_access, NULL),
                     200);
    strcpy(admin_id, json_string_value(json_object_get(
                         json_array_get(json_object_get(r.json, "users"), 0), "id")));
    h_resp_free(&r);

    snprintf(path, sizeof(path), "/user/%s", admin_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_access, NULL), 200);
    ck_assert_str_eq(h_jstr(r.json, "name"), "admin");
    ck_assert_str_eq(h_jstr(r.json, "email"), "admin@localhost");
    json_object_foreach(r.json, key, v) {
        ck_assert_msg(strcmp(key, "id") == 0 || strcmp(key, "name") == 0 ||
                          strcmp(key, "email") == 0 || strcmp(key, "createdAt") == 0 ||
                          strcmp(key, "updatedAt") == 0 || strcmp(key, "roleId") == 0,
                      "unexpected field %s", key);
        n++;
    }
    ck_assert_int_eq(n, 6);
    ck_assert_int_gt(json_integer_value(json_object_get(r.json, "roleId")), 0);
    ck_assert_ptr_nonnull(strchr(h_jstr(r.json, "createdAt"), 'T'));
    h_resp_free(&r);

    /* Without or with a forged token: 401. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, NULL, NULL), 401);
    ck_assert_str_eq(h_err_code(&r), "EAUTH");
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, "eyJzdWIiOiJ4In0.AAAA",
                            NULL),
                     401);
    h_resp_free(&r);
    /* A refresh token is not an access token. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_refresh, NULL), 401);
    h_resp_free(&r);
}
END_TEST

START_TEST(wrong_password_and_unknown_user_look_alike)
{
    h_resp a, b;

    ck_assert_int_eq(h_call(&panel, &a, "POST", "/auth/login", NULL,
                            "{\"username\":\"admin\",\"password\":\"wrong password\"}"),
                     401);
    ck_assert_int_eq(h_call(&panel, &b, "POST", "/auth/login", NULL,
                            "{\"username\":\"nobody\",\"password\":\"wrong password\"}"),
                     401);
    ck_assert_str_eq(a.body.data, b.body.data);
    h_resp_free(&a);
    h_resp_free(&b);
    ck_assert_int_eq(h_call(&panel, &a, "POST", "/auth/login", NULL,
                            "{\"password\":\"x\"}"),
                     400);
    h_resp_free(&a);
}
END_TEST

static int viewer_role;
static char viewer_id[40], viewer_access[H_ACCESS_MAX];

START_TEST(roles_crud)
{
    h_resp r;
    char path[64], body[256];

    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"viewer\",\"permissions\":[\"user.read\",\"role.read\"]}"),
                     200);
    viewer_role = (int)json_integer_value(json_object_get(r.json, "id"));
    ck_assert_int_gt(viewer_role, 0);
    h_resp_free(&r);

    snprintf(path, sizeof(path), "/role/%d", viewer_role);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_access, NULL), 200);
    ck_assert_str_eq(h_jstr(r.json, "name"), "viewer");
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "permissions")), 2);
    h_resp_free(&r);

    /* Unknown permissions, duplicate names, missing fields. */
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"bad\",\"permissions\":[\"site.fly\"]}"),
                     400);
    ck_assert_ptr_nonnull(strstr(r.body.data, "site.fly"));
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"viewer\",\"permissions\":[\"user.read\"]}"),
                     409);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"x\"}"),
                     400);
    h_resp_free(&r);

    /* PATCH renames and replaces the permissions. */
    snprintf(body, sizeof(body),
             "{\"id\":%d,\"permissions\":[\"user.read\",\"role.read\",\"site.read\"]}",
             viewer_role);
    ck_assert_int_eq(h_call(&panel, &r, "PATCH", "/role", admin_access, body),
                     200);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/roles", admin_access, NULL),
                     200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "roles")), 2);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/role?id=%d", viewer_role);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_access, NULL), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "permissions")), 3);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/role/999999", admin_access,
                            NULL),
                     404);
    h_resp_free(&r);
}
END_TEST

START_TEST(users_crud_and_permissions)
{
    h_resp r;
    char path[128], body[512];

    snprintf(body, sizeof(body),
             "{\"name\":\"vera\",\"password\":\"vera-secret-1\",\"email\":\"vera@example.org\","
             "\"role_name\":\"viewer\"}");
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", admin_access,
                            body),
                     201);
    strcpy(viewer_id, h_jstr(r.json, "uuid"));
    ck_assert_int_eq(strlen(viewer_id), 36);
    h_resp_free(&r);
    /* The same name again: 409. */
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", admin_access,
                            body),
                     409);
    h_resp_free(&r);
    /* No role: 400, unknown role: 404. */
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", admin_access,
                            "{\"name\":\"x1\",\"password\":\"12345678\",\"email\":\"x1@e.org\"}"),
                     400);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", admin_access,
                            "{\"name\":\"x1\",\"password\":\"12345678\",\"email\":\"x1@e.org\","
                            "\"role_id\":424242}"),
                     404);
    h_resp_free(&r);

    ck_assert_int_eq(h_login(&panel, "vera", "vera-secret-1", viewer_access,
                             NULL),
                     201);
    /* vera may read users and roles ... */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", viewer_access, NULL),
                     200);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/user/%s", admin_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, viewer_access, NULL), 200);
    h_resp_free(&r);
    /* ... but not create, update others, delete or manage roles. */
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", viewer_access,
                            body),
                     403);
    ck_assert_str_eq(h_err_code(&r), "EPERM");
    ck_assert_ptr_nonnull(strstr(r.body.data, "user.create"));
    h_resp_free(&r);
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"name\":\"evil\"}", admin_id);
    ck_assert_int_eq(h_call(&panel, &r, "PATCH", "/user", viewer_access, body),
                     403);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/user/%s", admin_id);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, viewer_access, NULL),
                     403);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", viewer_access,
                            "{\"name\":\"x\",\"permissions\":[\"*\"]}"),
                     403);
    h_resp_free(&r);
    /* She may change her own email, not her own role. */
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"email\":\"vera@example.net\"}", viewer_id);
    ck_assert_int_eq(h_call(&panel, &r, "PATCH", "/user", viewer_access, body),
                     200);
    h_resp_free(&r);
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"role_name\":\"admin\"}", viewer_id);
    ck_assert_int_eq(h_call(&panel, &r, "PATCH", "/user", viewer_access, body),
                     403);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/user/%s", viewer_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_access, NULL), 200);
    ck_assert_str_eq(h_jstr(r.json, "email"), "vera@example.net");
    h_resp_free(&r);

    /* A role in use cannot go. */
    snprintf(path, sizeof(path), "/role/%d", viewer_role);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, admin_access, NULL),
                     409);
    h_resp_free(&r);
}
END_TEST

START_TEST(refresh_rotation_and_reuse)
{
    h_resp r;
    char a[H_ACCESS_MAX], r1[H_REFRESH_MAX], r2[H_REFRESH_MAX];
    char r3[H_REFRESH_MAX];

    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, a, r1), 201);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/auth/refresh", r1, NULL), 200);
    strcpy(r2, h_jstr(r.json, "refreshToken"));
    ck_assert_str_ne(r2, r1);
    ck_assert_str_ne(h_jstr(r.json, "accessToken"), "");
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/auth/refresh", r2, NULL), 200);
    strcpy(r3, h_jstr(r.json, "refreshToken"));
    h_resp_free(&r);
    /* r1 again: reuse. The whole family dies, r3 included. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/auth/refresh", r1, NULL), 401);
    ck_assert_ptr_nonnull(strstr(r.body.data, "reused"));
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/auth/refresh", r3, NULL), 401);
    h_resp_free(&r);
    /* Other logins are untouched. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/auth/refresh", admin_refresh,
                            NULL),
                     200);
    strcpy(admin_refresh, h_jstr(r.json, "refreshToken"));
    h_resp_free(&r);
    /* Logout ends that login. */
    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, a, r1), 201);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/auth/logout", r1, NULL), 204);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/auth/refresh", r1, NULL), 401);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/auth/refresh", "not-a-token",
                            NULL),
                     401);
    h_resp_free(&r);
}
END_TEST

START_TEST(login_throttle)
{
    h_resp r;
    int i;

    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(h_call(&panel, &r, "POST", "/auth/login", NULL,
                                "{\"username\":\"vera\",\"password\":\"bad bad bad\"}"),
                         401);
        h_resp_free(&r);
    }
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/auth/login", NULL,
                            "{\"username\":\"vera\",\"password\":\"vera-secret-1\"}"),
                     429);
    ck_assert_str_eq(h_err_code(&r), "ETHROTTLE");
    ck_assert_int_ge(atoi(r.retry_after), 1);
    h_resp_free(&r);
    /* Another user is not affected. */
    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, NULL, NULL), 201);
}
END_TEST

START_TEST(bad_input)
{
    h_resp r;
    buf big;
    int i;

    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":"),
                     400);
    ck_assert_str_eq(h_err_code(&r), "EPROTO");
    ck_assert_ptr_nonnull(json_object_get(r.json, "message"));
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access, "[1,2]"),
                     400);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"r\",\"permissions\":[\"user.read\"],\"extra\":1}"),
                     400);
    ck_assert_ptr_nonnull(strstr(r.body.data, "extra"));
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":42,\"permissions\":[\"user.read\"]}"),
                     400);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"r\",\"permissions\":\"user.read\"}"),
                     400);
    h_resp_free(&r);
    /* A body past the cap is refused, not buffered. */
    buf_init(&big, 1 << 20);
    buf_puts(&big, "{\"name\":\"");
    for (i = 0; i < 100000; i++)
        buf_putc(&big, 'a');
    buf_puts(&big, "\"}");
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            big.data),
                     413);
    h_resp_free(&r);
    buf_free(&big);
}
END_TEST

START_TEST(sql_metacharacters_are_data)
{
    h_resp r;
    const char *evil = "r'); DROP TABLE users; --\\\" \u00e9";
    char body[512], path[64];
    json_t *j;
    char *text;
    int id;

    j = json_pack("{s:s, s:[s]}", "name", evil, "permissions", "user.read");
    text = json_dumps(j, 0);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access, text),
                     200);
    id = (int)json_integer_value(json_object_get(r.json, "id"));
    h_resp_free(&r);
    free(text);
    json_decref(j);
    snprintf(path, sizeof(path), "/role/%d", id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_access, NULL), 200);
    ck_assert_str_eq(h_jstr(r.json, "name"), evil);
    h_resp_free(&r);
    /* The users table is still there. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", admin_access, NULL),
                     200);
    ck_assert_int_ge(json_array_size(json_object_get(r.json, "users")), 2);
    h_resp_free(&r);
    /* Metacharacters in a login name are just a wrong name. */
    snprintf(body, sizeof(body),
             "{\"username\":\"admin' OR '1'='1\",\"password\":\"x' OR '1'='1\"}");
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/auth/login", NULL, body),
                     401);
    h_resp_free(&r);
}
END_TEST

START_TEST(ssh_keys)
{
    h_resp r;
    const char *key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@host";
    char body[512], path[80], id[40];

    snprintf(body, sizeof(body), "{\"name\":\"laptop\",\"publicKey\":\"%s\"}", key);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/keys", viewer_access,
                            body),
                     201);
    strcpy(id, h_jstr(r.json, "id"));
    ck_assert_ptr_nonnull(strstr(h_jstr(r.json, "fingerprint"), "SHA256:"));
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/keys", viewer_access,
                            body),
                     409);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/keys", viewer_access,
                            "{\"publicKey\":\"ssh-ed25519 bm90IGEga2V5\"}"),
                     400);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/user/keys", viewer_access,
                            NULL),
                     200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "keys")), 1);
    h_resp_free(&r);
    /* Another user cannot delete it. */
    snprintf(path, sizeof(path), "/user/keys/%s", id);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, admin_access, NULL),
                     404);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, viewer_access, NULL),
                     200);
    h_resp_free(&r);
}
END_TEST

START_TEST(profile_picture)
{
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                        0, 0, 0, 13, 'I', 'H', 'D', 'R', 1, 2, 3};
    char url[256], path[96];
    h_resp r;
    CURL *c;
    curl_mime *mime;
    curl_mimepart *part;
    struct curl_slist *h = NULL;
    char auth[4200];
    long status = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        c = curl_easy_init();
        mime = curl_mime_init(c);
        part = curl_mime_addpart(mime);
        curl_mime_name(part, "uuid");
        curl_mime_data(part, viewer_id, CURL_ZERO_TERMINATED);
        part = curl_mime_addpart(mime);
        curl_mime_name(part, "file");
        curl_mime_filename(part, "me.png");
        if (attempt == 0)
            curl_mime_data(part, (const char *)png, sizeof(png));
        else
            curl_mime_data(part, "just text", CURL_ZERO_TERMINATED);
        snprintf(url, sizeof(url), "%s/user", panel.base);
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", viewer_access);
        h = curl_slist_append(NULL, auth);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_resp_write);
        h_resp_init(&r);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        ck_assert_int_eq(status, attempt == 0 ? 200 : 415);
        h_resp_free(&r);
        curl_slist_free_all(h);
        curl_mime_free(mime);
        curl_easy_cleanup(c);
    }
    snprintf(path, sizeof(path), "/user/pfp/%s", viewer_id);
    h_call(&panel, &r, "GET", path, NULL, NULL);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status,
                  r.body.data ? r.body.data : "");
    ck_assert_uint_eq(r.body.len, sizeof(png));
    ck_assert_int_eq(memcmp(r.body.data, png, sizeof(png)), 0);
    h_resp_free(&r);
}
END_TEST

START_TEST(database_outage)
{
    h_resp r;
    int64_t end;
    long st = 0;

    ck_assert_int_eq(h_pg_stop(&panel.pg), 0);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"during-outage\",\"permissions\":[\"user.read\"]}"),
                     503);
    ck_assert_str_eq(h_err_code(&r), "EUNAVAIL");
    h_resp_free(&r);
    /* Reads served from memory keep working. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", admin_access, NULL),
                     200);
    h_resp_free(&r);
    ck_assert_int_eq(h_pg_restart(&panel.pg), 0);
    end = clock_mono_ms() + 15000;
    while (clock_mono_ms() < end) {
        st = h_call(&panel, &r, "POST", "/role", admin_access,
                    "{\"name\":\"after-outage\",\"permissions\":[\"user.read\"]}");
        h_resp_free(&r);
        if (st == 200)
            break;
        clock_sleep_ms(200);
    }
    ck_assert_int_eq(st, 200);
}
END_TEST

START_TEST(audit_log)
{
    h_resp r;
    char path[160];
    json_t *e;

    snprintf(path, sizeof(path), "/audit?action=user.create&target=%s", viewer_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_access, NULL), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 1);
    e = json_array_get(json_object_get(r.json, "entries"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "userId")), admin_id);
    ck_assert_str_eq(json_string_value(json_object_get(e, "result")), "201");
    ck_assert_str_eq(json_string_value(json_object_get(e, "ip")), "127.0.0.1");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "detail"), "name")),
                     "vera");
    h_resp_free(&r);
    /* Failed logins are recorded too, and paging works. */
    ck_assert_int_eq(h_call(&panel, &r, "GET",
                            "/audit?action=auth.login&limit=2", admin_access,
                            NULL),
                     200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "entries")), 2);
    ck_assert_int_gt(json_integer_value(json_object_get(r.json, "total")), 2);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/audit?limit=0", admin_access,
                            NULL),
                     400);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/audit?since=yesterday-ish",
                            admin_access, NULL),
                     400);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/audit?user=not-a-uuid",
                            admin_access, NULL),
                     400);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/audit", viewer_access, NULL),
                     403);
    h_resp_free(&r);
}
END_TEST

START_TEST(delete_user)
{
    h_resp r;
    char path[96];

    snprintf(path, sizeof(path), "/user/%s", admin_id);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, admin_access, NULL),
                     400);
    h_resp_free(&r);
    snprintf(path, sizeof(path), "/user/%s", viewer_id);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, admin_access, NULL),
                     200);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin_access, NULL), 404);
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "DELETE", path, admin_access, NULL),
                     404);
    h_resp_free(&r);
    /* Her still-valid access token no longer opens anything. */
    ck_assert_int_eq(h_call(&panel, &r, "GET", "/users", viewer_access, NULL),
                     401);
    h_resp_free(&r);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/panel");
    TCase *tc = tcase_create("panel");

    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, health_and_metrics);
    tcase_add_test(tc, login_and_user_body);
    tcase_add_test(tc, wrong_password_and_unknown_user_look_alike);
    tcase_add_test(tc, roles_crud);
    tcase_add_test(tc, users_crud_and_permissions);
    tcase_add_test(tc, refresh_rotation_and_reuse);
    tcase_add_test(tc, login_throttle);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, sql_metacharacters_are_data);
    tcase_add_test(tc, ssh_keys);
    tcase_add_test(tc, profile_picture);
    tcase_add_test(tc, database_outage);
    tcase_add_test(tc, audit_log);
    tcase_add_test(tc, delete_user);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests share one panel and build on each other. */
UNIT_MAIN_NOFORK(make_suite)
