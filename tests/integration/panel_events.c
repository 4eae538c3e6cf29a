/* panel_events.c - berth-panel's live events (/ws) and direct-channel
 * tokens against real PostgreSQL and nats-server.
 *
 * The setup creates, through the API, a role without site permissions and
 * a user "una" holding it; then a node and two sites, A and B, go straight
 * into PostgreSQL with a grant on A for una (site.read and
 * site.console.read), and the panel restarts so its store loads them. The
 * test publishes daemon events on the bus and reads what each websocket
 * receives; the websocket client is written by hand (raw TCP, masked
 * frames). Tokens are verified with the public key served on panel.pubkey.
 *
 * One panel serves the whole suite (CK_FORK off); tests run in order.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/token.h"
#include "node.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"
#include "tests/harness/ws.h"

#define ADMIN_PASSWORD "correct horse battery staple"
#define UNA_PASSWORD "una's long password"
#define NODE_ID "node-1"
#define NODE_URL "https://node-1.example:8443"
#define WS_WAIT_MS 5000

static h_panel panel;
static bus *tb; /* the test's own bus: plays the daemons */
static char admin_access[H_ACCESS_MAX], una_access[H_ACCESS_MAX];
static char una_id[40], site_a[40], site_b[40];
static int role_id;
static int admin_fd = -1, una_fd = -1; /* kept open across tests */
static int lazy_fd = -1; /* opened without a token in the first test */
static int64_t lazy_opened_ms;

/* ------------------------------------------------------------ HTTP */

/* The compact JSON text of j, in a static buffer. */
static const char *dump(const json_t *j)
{
    static char out[1024];
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

    snprintf(out, sizeof(out), "%s", s ? s : "(null)");
    free(s);
    return out;
}

static void login(const char *user, const char *password, char *access)
{
    ck_assert_int_eq(h_login(&panel, user, password, access, NULL), 201);
}

/* ------------------------------------------------------------ PostgreSQL */

/* Runs sql with params; returns the first value of the first row (copied
 * into out when out is not NULL). */
static void sql(const char *q, int n, const char *const *params, char *out,
                size_t outlen)
{
    PGconn *c = PQconnectdb(panel.pg.dsn);
    PGresult *res;

    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    res = PQexecParams(c, q, n, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK ||
                      PQresultStatus(res) == PGRES_COMMAND_OK,
                  "%s: %s", q, PQerrorMessage(c));
    if (out != NULL) {
        ck_assert_int_ge(PQntuples(res), 1);
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    PQfinish(c);
}

/* ------------------------------------------------------------ websocket */

/* Opens /ws with target ("/ws" or "/ws?token=..."); asserts the 101. */
static int ws_connect(const char *target, int rcvbuf)
{
    char head[1024];
    int fd = h_tcp_connect(panel.port, rcvbuf);

    ck_assert_int_ge(fd, 0);
    h_ws_handshake(fd, target, head, sizeof(head), WS_WAIT_MS);
    ck_assert_msg(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
    return fd;
}

/* Sends one text frame. */
static void ws_send(int fd, const char *data)
{
    ck_assert_int_eq(h_ws_send(fd, H_WS_TEXT, data, strlen(data)), 0);
}

/* Reads one server frame into out (NUL-terminated); returns its opcode,
 * or a negative code on timeout or a broken connection. */
static int ws_recv(int fd, char *out, size_t size, int timeout_ms)
{
    int op = h_ws_recv(fd, out, size, NULL, timeout_ms);

    ck_assert_int_ne(op, BERTH_ETOOBIG);
    return op;
}

/* The next text message as JSON (caller decrefs), or NULL when a close
 * frame, a timeout or the end of the connection comes instead. */
static json_t *ws_next(int fd, int timeout_ms)
{
    static char msg[1 << 16];
    int op;

    for (;;) {
        op = ws_recv(fd, msg, sizeof(msg), timeout_ms);
        if (op == H_WS_TEXT)
            break;
        if (op != H_WS_PING && op != H_WS_PONG) /* skip pings and pongs */
            return NULL;
    }
    return json_loads(msg, 0, NULL);
}

/* Reads the next message and checks its type; returns it (caller
 * decrefs). */
static json_t *ws_expect(int fd, const char *type)
{
    json_t *j = ws_next(fd, WS_WAIT_MS);

    ck_assert_msg(j != NULL, "no message; expected %s", type);
    ck_assert_msg(strcmp(h_jstr(j, "type"), type) == 0, "got %s, expected %s",
                  dump(j), type);
    return j;
}

/* Expects an error with code, then the close frame. */
static void ws_expect_error_close(int fd, const char *code)
{
    char msg[1024];
    json_t *j = ws_expect(fd, "error");

    ck_assert_str_eq(h_jstr(j, "code"), code);
    json_decref(j);
    ck_assert_int_eq(ws_recv(fd, msg, sizeof(msg), WS_WAIT_MS), H_WS_CLOSE);
}

/* Everything that arrives before the answer to a ping: what the server
 * sent this client until now, in order (caller decrefs the array). */
static json_t *ws_drain(int fd)
{
    json_t *all = json_array();

    ws_send(fd, "{\"type\":\"ping\"}");
    for (;;) {
        json_t *j = ws_next(fd, WS_WAIT_MS);

        ck_assert_ptr_nonnull(j);
        if (strcmp(h_jstr(j, "type"), "pong") == 0) {
            json_decref(j);
            return all;
        }
        json_array_append_new(all, j);
    }
}

static void subscribe(int fd, const char *topics)
{
    char msg[256];
    json_t *j;

    snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"topics\":%s}",
             topics);
    ws_send(fd, msg);
    j = ws_expect(fd, "subscribed");
    json_decref(j);
}

/* ------------------------------------------------------------ bus */

static void publish_status(const char *site, const char *reason)
{
    Berth__V1__SiteStatus m = BERTH__V1__SITE_STATUS__INIT;
    char subject[128];

    m.site_id = (char *)site;
    m.node_id = NODE_ID;
    m.state = BERTH__V1__SITE_STATE__SITE_STATE_RUNNING;
    m.reason = (char *)reason;
    m.at_ms = clock_wall_ms();
    snprintf(subject, sizeof(subject), "site.status.%s.%s", NODE_ID, site);
    ck_assert_int_eq(bus_publish(tb, subject, &m.base), 0);
}

static void publish_stats(const char *site, uint32_t pids)
{
    Berth__V1__ContainerStats m = BERTH__V1__CONTAINER_STATS__INIT;
    char subject[128];

    m.site_id = (char *)site;
    m.node_id = NODE_ID;
    m.at_ms = clock_wall_ms();
    m.cpu_percent = 12.5;
    m.memory_bytes = 64u << 20;
    m.pids = pids;
    snprintf(subject, sizeof(subject), "container.stats.%s.%s", NODE_ID, site);
    ck_assert_int_eq(bus_publish(tb, subject, &m.base), 0);
}

static void publish_node_online(void)
{
    Berth__V1__NodeOnline m = BERTH__V1__NODE_ONLINE__INIT;

    m.node_id = NODE_ID;
    m.name = "n1";
    m.online = 1;
    m.at_ms = clock_wall_ms();
    ck_assert_int_eq(bus_publish(tb, "node.online." NODE_ID, &m.base), 0);
}

static void publish_node_stats(void)
{
    Berth__V1__NodeStats m = BERTH__V1__NODE_STATS__INIT;

    m.node_id = NODE_ID;
    m.at_ms = clock_wall_ms();
    m.load1 = 0.5;
    ck_assert_int_eq(bus_publish(tb, "node.stats." NODE_ID, &m.base), 0);
}

/* Reads messages of fd until one matches type (and site, when not NULL)
 * with data.reason (when not NULL); collects every message read into seen
 * (may be NULL). */
static void wait_for(int fd, const char *type, const char *site,
                     const char *reason, json_t *seen)
{
    for (;;) {
        json_t *j = ws_next(fd, WS_WAIT_MS);
        int hit;

        ck_assert_msg(j != NULL, "no %s event arrived", type);
        hit = strcmp(h_jstr(j, "type"), type) == 0 &&
              (site == NULL || strcmp(h_jstr(j, "siteId"), site) == 0) &&
              (reason == NULL ||
               strcmp(h_jstr(json_object_get(j, "data"), "reason"), reason) ==
                   0);
        if (seen != NULL)
            json_array_append(seen, j);
        json_decref(j);
        if (hit)
            return;
    }
}

/* Counts the messages of list with type (and site when not NULL). */
static int count(json_t *list, const char *type, const char *site)
{
    size_t i;
    json_t *j;
    int n = 0;

    json_array_foreach(list, i, j) {
        if (strcmp(h_jstr(j, "type"), type) == 0 &&
            (site == NULL || strcmp(h_jstr(j, "siteId"), site) == 0))
            n++;
    }
    return n;
}

/* ------------------------------------------------------------ set-up */

static void suite_up(void)
{
    h_resp r;
    const char *params[2];

    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, NULL), 0);
    login("admin", ADMIN_PASSWORD, admin_access);

    /* A role without any site or node permission, and una holding it. */
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/role", admin_access,
                            "{\"name\":\"siteless\","
                            "\"permissions\":[\"user.read\"]}"),
                     200);
    role_id = (int)json_integer_value(json_object_get(r.json, "id"));
    h_resp_free(&r);
    ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/create", admin_access,
                            "{\"name\":\"una\",\"email\":\"una@example.org\","
                            "\"password\":\"" UNA_PASSWORD "\","
                            "\"role_name\":\"siteless\"}"),
                     201);
    snprintf(una_id, sizeof(una_id), "%s", h_jstr(r.json, "uuid"));
    h_resp_free(&r);
    ck_assert(id_uuid_valid(una_id));

    /* A node, sites A and B on it, and una's grant on A, loaded by the
     * panel's store when it starts again. */
    sql("INSERT INTO nodes (id, name, public_url) VALUES ('" NODE_ID
        "', 'n1', '" NODE_URL "')",
        0, NULL, NULL, 0);
    sql("INSERT INTO sites (name, node_id) VALUES ('alpha', '" NODE_ID
        "') RETURNING id",
        0, NULL, site_a, sizeof(site_a));
    sql("INSERT INTO sites (name, node_id) VALUES ('beta', '" NODE_ID
        "') RETURNING id",
        0, NULL, site_b, sizeof(site_b));
    params[0] = una_id;
    params[1] = site_a;
    sql("INSERT INTO site_grants (user_id, site_id, permission) VALUES"
        " ($1, $2, 'site.read'), ($1, $2, 'site.console.read')",
        2, params, NULL, 0);
    ck_assert_int_eq(h_panel_restart(&panel), 0);
    login("una", UNA_PASSWORD, una_access);
    tb = h_bus_open(panel.nats.url, "berth-test");
}

static void suite_down(void)
{
    if (lazy_fd >= 0)
        close(lazy_fd);
    bus_close(tb);
    ck_assert_int_eq(h_panel_stop(&panel), 0);
    if (admin_fd >= 0)
        close(admin_fd);
    if (una_fd >= 0)
        close(una_fd);
}

/* ------------------------------------------------------------ tests */

START_TEST(ws_authentication)
{
    char target[4200];
    json_t *j;
    int fd;

    /* Kept open without authenticating: the last test checks that it is
     * closed after five seconds. */
    lazy_fd = ws_connect("/ws", 0);
    lazy_opened_ms = clock_mono_ms();

    /* A bad token on the URL: an error, then the close. */
    fd = ws_connect("/ws?token=not.a-token", 0);
    ws_expect_error_close(fd, "EAUTH");
    close(fd);

    /* A forged one in the first message. */
    fd = ws_connect("/ws", 0);
    snprintf(target, sizeof(target), "{\"type\":\"auth\",\"token\":\"%sx\"}",
             admin_access);
    ws_send(fd, target);
    ws_expect_error_close(fd, "EAUTH");
    close(fd);

    /* Anything else before authenticating. */
    fd = ws_connect("/ws", 0);
    ws_send(fd, "{\"type\":\"subscribe\",\"topics\":[\"node\"]}");
    ws_expect_error_close(fd, "EAUTH");
    close(fd);

    /* The right token, on the URL ... */
    snprintf(target, sizeof(target), "/ws?token=%s", admin_access);
    fd = ws_connect(target, 0);
    j = ws_expect(fd, "ready");
    ck_assert_uint_eq(strlen(h_jstr(j, "userId")), 36);
    json_decref(j);
    /* ... after which bad messages are answered, not fatal. */
    ws_send(fd, "not json");
    j = ws_expect(fd, "error");
    ck_assert_str_eq(h_jstr(j, "code"), "EPROTO");
    json_decref(j);
    ws_send(fd, "{\"type\":\"subscribe\",\"topics\":[\"site.logs\"]}");
    j = ws_expect(fd, "error");
    ck_assert_str_eq(h_jstr(j, "code"), "EINVAL");
    json_decref(j);
    ws_send(fd, "{\"type\":\"auth\",\"token\":\"x\"}");
    j = ws_expect(fd, "error");
    ck_assert_str_eq(h_jstr(j, "code"), "EINVAL");
    json_decref(j);
    ws_send(fd,
            "{\"type\":\"subscribe\",\"topics\":[\"node\",\"site.stats\"]}");
    j = ws_expect(fd, "subscribed");
    ck_assert_str_eq(dump(json_object_get(j, "topics")),
                     "[\"site.stats\",\"node\"]");
    json_decref(j);
    ws_send(fd, "{\"type\":\"unsubscribe\",\"topics\":[\"node\"]}");
    j = ws_expect(fd, "subscribed");
    ck_assert_int_eq(json_array_size(json_object_get(j, "topics")), 1);
    json_decref(j);
    close(fd);
}
END_TEST

START_TEST(ws_fan_out_by_permission)
{
    char target[4200], auth[4200];
    json_t *seen, *una, *j;

    snprintf(target, sizeof(target), "/ws?token=%s", admin_access);
    admin_fd = ws_connect(target, 0);
    json_decref(ws_expect(admin_fd, "ready"));
    /* una authenticates with a first message, as a browser may. */
    una_fd = ws_connect("/ws", 0);
    snprintf(auth, sizeof(auth), "{\"type\":\"auth\",\"token\":\"%s\"}",
             una_access);
    ws_send(una_fd, auth);
    j = ws_expect(una_fd, "ready");
    ck_assert_str_eq(h_jstr(j, "userId"), una_id);
    json_decref(j);
    subscribe(admin_fd, "[\"site.status\",\"site.stats\",\"node\"]");
    subscribe(una_fd, "[\"site.status\",\"site.stats\",\"node\"]");

    publish_status(site_b, "b");
    publish_stats(site_b, 2);
    publish_node_online();
    publish_node_stats();
    publish_stats(site_a, 1);
    publish_status(site_a, "a");

    /* The admin sees all six (subscriptions deliver on their own threads,
     * so the order across subjects is not fixed). */
    seen = json_array();
    while (json_array_size(seen) < 6) {
        j = ws_next(admin_fd, WS_WAIT_MS);
        ck_assert_msg(j != NULL, "admin got %zu of 6", json_array_size(seen));
        json_array_append_new(seen, j);
    }
    ck_assert_int_eq(count(seen, "site.status", site_a), 1);
    ck_assert_int_eq(count(seen, "site.status", site_b), 1);
    ck_assert_int_eq(count(seen, "site.stats", site_a), 1);
    ck_assert_int_eq(count(seen, "site.stats", site_b), 1);
    ck_assert_int_eq(count(seen, "node.online", NULL), 1);
    ck_assert_int_eq(count(seen, "node.stats", NULL), 1);
    /* The data is the proto3 JSON mapping of the message. */
    {
        size_t i;

        json_array_foreach(seen, i, j) {
            json_t *d = json_object_get(j, "data");

            ck_assert_str_eq(h_jstr(j, "nodeId"), NODE_ID);
            ck_assert(json_is_object(d));
            if (strcmp(h_jstr(j, "type"), "site.status") == 0) {
                ck_assert_str_eq(h_jstr(d, "state"), "SITE_STATE_RUNNING");
                ck_assert_str_eq(h_jstr(d, "siteId"), h_jstr(j, "siteId"));
            }
            if (strcmp(h_jstr(j, "type"), "site.stats") == 0)
                ck_assert_str_eq(h_jstr(d, "memoryBytes"), "67108864");
        }
    }
    json_decref(seen);

    /* una (site.read on A through her grant, no node.read) sees A only:
     * everything fanned out to her came before the answer to her ping. */
    una = ws_drain(una_fd);
    ck_assert_int_eq(json_array_size(una), 2);
    ck_assert_int_eq(count(una, "site.status", site_a), 1);
    ck_assert_int_eq(count(una, "site.stats", site_a), 1);
    json_decref(una);
}
END_TEST

/* A change of role reaches open websockets at once. */
START_TEST(ws_permission_change_is_immediate)
{
    h_resp r;
    char body[256];
    json_t *una;

    snprintf(body, sizeof(body),
             "{\"id\":%d,\"permissions\":[\"user.read\",\"node.read\"]}",
             role_id);
    ck_assert_int_eq(h_call(&panel, &r, "PATCH", "/role", admin_access, body),
                     200);
    h_resp_free(&r);
    publish_node_online();
    wait_for(una_fd, "node.online", NULL, NULL, NULL);
    wait_for(admin_fd, "node.online", NULL, NULL, NULL);

    snprintf(body, sizeof(body), "{\"id\":%d,\"permissions\":[\"user.read\"]}",
             role_id);
    ck_assert_int_eq(h_call(&panel, &r, "PATCH", "/role", admin_access, body),
                     200);
    h_resp_free(&r);
    publish_node_online();
    wait_for(admin_fd, "node.online", NULL, NULL, NULL);
    una = ws_drain(una_fd);
    ck_assert_int_eq(json_array_size(una), 0);
    json_decref(una);

    /* Unsubscribing stops a topic. */
    ws_send(una_fd, "{\"type\":\"unsubscribe\",\"topics\":[\"site.stats\"]}");
    json_decref(ws_expect(una_fd, "subscribed"));
    publish_stats(site_a, 3);
    publish_status(site_a, "after");
    wait_for(admin_fd, "site.status", site_a, "after", NULL);
    una = ws_drain(una_fd);
    ck_assert_int_eq(json_array_size(una), 1);
    ck_assert_int_eq(count(una, "site.status", site_a), 1);
    json_decref(una);
}
END_TEST

/* More than 20 messages a second: the rest are ignored, with a notice. */
START_TEST(ws_rate_limit)
{
    int i, pongs = 0, throttled = 0;
    json_t *j;

    clock_sleep_ms(1000); /* a full bucket */
    for (i = 0; i < 60; i++)
        ws_send(una_fd, "{\"type\":\"ping\"}");
    while ((j = ws_next(una_fd, 700)) != NULL) {
        if (strcmp(h_jstr(j, "type"), "pong") == 0)
            pongs++;
        else if (strcmp(h_jstr(j, "code"), "ETHROTTLE") == 0)
            throttled++;
        json_decref(j);
    }
    ck_assert_int_ge(pongs, 20);
    ck_assert_int_lt(pongs, 30);
    ck_assert_int_eq(throttled, 1);
    /* The bucket refills. */
    clock_sleep_ms(300);
    json_decref(ws_drain(una_fd));
}
END_TEST

/* The value of a line of /metrics. */
static long metric(const char *name)
{
    h_resp r;
    const char *at;
    long v;

    ck_assert_int_eq(h_call(&panel, &r, "GET", "/metrics", NULL, NULL), 200);
    at = strstr(r.body.data, name);
    ck_assert_msg(at != NULL, "no %s in /metrics", name);
    v = strtol(at + strlen(name), NULL, 10);
    h_resp_free(&r);
    return v;
}

/* A client that does not read loses events, never the panel's time, and
 * learns how many it lost. */
START_TEST(ws_slow_client_dropped)
{
    enum { N = 40000 };
    char target[4200];
    int fd, i, stats = 0, notices = 0;
    long dropped = 0;
    json_t *j;

    /* The admin's socket is not read meanwhile: no stats for it. */
    json_decref(ws_drain(admin_fd));
    ws_send(admin_fd, "{\"type\":\"unsubscribe\",\"topics\":[\"site.stats\"]}");
    json_decref(ws_expect(admin_fd, "subscribed"));

    snprintf(target, sizeof(target), "/ws?token=%s", admin_access);
    fd = ws_connect(target, 4096);
    json_decref(ws_expect(fd, "ready"));
    subscribe(fd, "[\"site.stats\"]");
    for (i = 0; i < N; i++)
        publish_stats(site_a, (uint32_t)i + 1);
    ck_assert_int_eq(natsConnection_FlushTimeout(bus_nats(tb), 5000), NATS_OK);
    /* Meanwhile the other clients are served. */
    publish_status(site_a, "while-slow");
    wait_for(una_fd, "site.status", site_a, "while-slow", NULL);
    wait_for(admin_fd, "site.status", site_a, "while-slow", NULL);
    clock_sleep_ms(300);

    while ((j = ws_next(fd, 1500)) != NULL) {
        if (strcmp(h_jstr(j, "type"), "site.stats") == 0) {
            stats++;
        } else if (strcmp(h_jstr(j, "type"), "dropped") == 0) {
            notices++;
            dropped += (long)json_integer_value(json_object_get(j, "count"));
        }
        json_decref(j);
    }
    ck_assert_int_gt(notices, 0);
    ck_assert_int_gt(dropped, 0);
    ck_assert_int_gt(stats, 0);
    /* Every event was delivered or counted: to this client, or in the
     * panel's queue when its loop fell behind (none here, normally). */
    ck_assert_int_eq(stats + dropped +
                         metric("berth_events_dropped_total{reason=\"queue\"}"),
                     N);
    json_decref(ws_drain(fd));
    close(fd);
}
END_TEST

/* ------------------------------------------------------------ tokens */

static void issue(h_resp *r, const char *token, const char *site,
                  const char *body, long want)
{
    char path[128];

    snprintf(path, sizeof(path), "/sites/%s/tokens", site);
    ck_assert_int_eq(h_call(&panel, r, "POST", path, token, body), want);
}

START_TEST(direct_tokens)
{
    Berth__V1__Empty empty = BERTH__V1__EMPTY__INIT;
    Berth__V1__PanelPubkey *pk = NULL;
    ProtobufCMessage *reply = NULL;
    bus_error err;
    h_resp r;
    json_t *claims = NULL, *perms;
    char token[TOKEN_MAX], bad[TOKEN_MAX], audit[16];
    const char *dot, *params[1];
    int64_t now = clock_wall_ms() / 1000, exp;

    issue(&r, una_access, site_a, "{\"scope\":\"console\"}", 200);
    snprintf(token, sizeof(token), "%s", h_jstr(r.json, "token"));
    ck_assert_str_eq(h_jstr(r.json, "url"), NODE_URL);
    ck_assert_str_eq(h_jstr(r.json, "scope"), "console");
    ck_assert_uint_eq(strlen(h_jstr(r.json, "expiresAt")), 24);
    h_resp_free(&r);

    /* The public key from the bus. */
    ck_assert_int_eq(bus_request(tb, "panel.pubkey", &empty.base, 2000, &reply,
                                 &err),
                     0);
    pk = (Berth__V1__PanelPubkey *)reply;
    ck_assert_str_eq(pk->algorithm, "ed25519");
    ck_assert_uint_eq(pk->public_key.len, TOKEN_ED25519_PK_BYTES);
    ck_assert_uint_eq(strlen(pk->key_id), 16);

    ck_assert_int_eq(token_verify_ed25519(token, pk->public_key.data, now,
                                          &claims),
                     0);
    ck_assert_str_eq(h_jstr(claims, "sub"), una_id);
    ck_assert_str_eq(h_jstr(claims, "site"), site_a);
    ck_assert_str_eq(h_jstr(claims, "node"), NODE_ID);
    ck_assert_str_eq(h_jstr(claims, "scope"), "console");
    ck_assert_str_eq(h_jstr(claims, "kid"), pk->key_id);
    ck_assert_str_eq(h_jstr(claims, "typ"), "direct");
    ck_assert(id_uuid_valid(h_jstr(claims, "jti")));
    exp = json_integer_value(json_object_get(claims, "exp"));
    ck_assert_int_eq(exp - json_integer_value(json_object_get(claims, "iat")),
                     600);
    ck_assert_int_ge(exp, now + 590);
    perms = json_object_get(claims, "perms");
    ck_assert_str_eq(dump(perms),
                     "[\"site.read\",\"site.console.read\"]");
    json_decref(claims);
    claims = NULL;

    /* Tampered: a flipped bit in the signature, or in the claims. */
    snprintf(bad, sizeof(bad), "%s", token);
    dot = strchr(bad, '.');
    ck_assert_ptr_nonnull(dot);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(token_verify_ed25519(bad, pk->public_key.data, now, NULL),
                     BERTH_EAUTH);
    snprintf(bad, sizeof(bad), "%s", token);
    bad[3] = bad[3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(token_verify_ed25519(bad, pk->public_key.data, now, NULL),
                     BERTH_EAUTH);
    /* Expired. */
    ck_assert_int_eq(
        token_verify_ed25519(token, pk->public_key.data, exp, NULL),
        BERTH_ETIMEDOUT);
    ck_assert_int_eq(
        token_verify_ed25519(token, pk->public_key.data, exp + 3600, NULL),
        BERTH_ETIMEDOUT);

    /* Refusals. */
    issue(&r, una_access, site_a, "{\"scope\":\"files\"}", 403);
    h_resp_free(&r);
    issue(&r, una_access, site_b, "{\"scope\":\"console\"}", 403);
    h_resp_free(&r);
    issue(&r, una_access, "7d1d8e2e-96c4-4a3b-9a57-05f1c1a1b2c3",
          "{\"scope\":\"console\"}", 404);
    h_resp_free(&r);
    issue(&r, una_access, "nope", "{\"scope\":\"console\"}", 404);
    h_resp_free(&r);
    issue(&r, una_access, site_a, "{\"scope\":\"shell\"}", 400);
    h_resp_free(&r);
    issue(&r, una_access, site_a, "{\"scope\":\"console\",\"x\":1}", 400);
    h_resp_free(&r);
    issue(&r, NULL, site_a, "{\"scope\":\"console\"}", 401);
    h_resp_free(&r);

    /* The admin holds every site permission everywhere. */
    issue(&r, admin_access, site_b, "{\"scope\":\"files\"}", 200);
    ck_assert_int_eq(token_verify_ed25519(h_jstr(r.json, "token"),
                                          pk->public_key.data, now, &claims),
                     0);
    ck_assert_str_eq(h_jstr(claims, "site"), site_b);
    ck_assert_int_eq(json_array_size(json_object_get(claims, "perms")), 8);
    json_decref(claims);
    h_resp_free(&r);

    /* Each issuance is in the audit log. */
    params[0] = site_a;
    sql("SELECT count(*) FROM audit_log WHERE action = 'site.token'"
        " AND target = $1 AND result = '200'",
        1, params, audit, sizeof(audit));
    ck_assert_str_eq(audit, "1");
    protobuf_c_message_free_unpacked(reply, NULL);
}
END_TEST

/* The client opened in the first test never authenticated. */
START_TEST(ws_auth_timeout)
{
    ws_expect_error_close(lazy_fd, "EAUTH");
    ck_assert_int_ge(clock_mono_ms() - lazy_opened_ms, 4900);
    close(lazy_fd);
    lazy_fd = -1;
    /* admin_fd and una_fd stay open: the panel stops with clients. */
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/panel_events");
    TCase *tc = tcase_create("panel_events");

    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, ws_authentication);
    tcase_add_test(tc, ws_fan_out_by_permission);
    tcase_add_test(tc, ws_permission_change_is_immediate);
    tcase_add_test(tc, ws_rate_limit);
    tcase_add_test(tc, ws_slow_client_dropped);
    tcase_add_test(tc, direct_tokens);
    tcase_add_test(tc, ws_auth_timeout);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests share one panel and build on each other. */
UNIT_MAIN_NOFORK(make_suite)
