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
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/bus.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "common/token.h"
#include "node.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/pg.h"
#include "tests/harness/unit.h"

#define ADMIN_PASSWORD "correct horse battery staple"
#define UNA_PASSWORD "una's long password"
#define NODE_ID "node-1"
#define NODE_URL "https://node-1.example:8443"
#define WS_WAIT_MS 5000

static h_nats nats;
static h_pg pg;
static h_proc panel_proc;
static bus *tb; /* the test's own bus: plays the daemons */
static int port;
static char base[64];
static char admin_access[4096], una_access[4096];
static char una_id[40], site_a[40], site_b[40];
static int role_id;
static int admin_fd = -1, una_fd = -1; /* kept open across tests */
static int lazy_fd = -1; /* opened without a token in the first test */
static int64_t lazy_opened_ms;

/* ------------------------------------------------------------ HTTP */

struct resp {
    long status;
    buf body;
    json_t *json;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;

    if (buf_append(&r->body, p, size * n) != 0)
        return 0;
    return size * n;
}

static void resp_free(struct resp *r)
{
    buf_free(&r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* Sends one request; body and bearer may be NULL. */
static long call(struct resp *r, const char *method, const char *path,
                 const char *bearer, const char *body)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[512], auth[4200];

    memset(r, 0, sizeof(*r));
    buf_init(&r->body, 1 << 20);
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    if (body != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body.len > 0)
        r->json = json_loadb(r->body.data, r->body.len, 0, NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r->status;
}

static const char *jstr(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

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
    struct resp r;
    char body[256];

    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}",
             user, password);
    ck_assert_int_eq(call(&r, "POST", "/auth/login", NULL, body), 201);
    strcpy(access, jstr(r.json, "accessToken"));
    resp_free(&r);
}

/* ------------------------------------------------------------ PostgreSQL */

/* Runs sql with params; returns the first value of the first row (copied
 * into out when out is not NULL). */
static void sql(const char *q, int n, const char *const *params, char *out,
                size_t outlen)
{
    PGconn *c = PQconnectdb(pg.dsn);
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

static int tcp_connect(int rcvbuf)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

        ck_assert_int_gt(w, 0);
        c += w;
        n -= (size_t)w;
    }
}

/* Reads exactly n bytes, waiting at most timeout_ms in all; returns how
 * many arrived. */
static size_t recv_n(int fd, void *p, size_t n, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    size_t got = 0;

    while (got < n) {
        int64_t left = end - clock_mono_ms();
        struct timeval tv;
        ssize_t r;

        if (left <= 0)
            break;
        tv.tv_sec = left / 1000;
        tv.tv_usec = (left % 1000) * 1000;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        r = recv(fd, (char *)p + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Opens /ws with target ("/ws" or "/ws?token=..."); asserts the 101. */
static int ws_connect(const char *target, int rcvbuf)
{
    char req[5120], head[1024];
    int fd = tcp_connect(rcvbuf);
    size_t n = 0;

    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             target);
    send_all(fd, req, strlen(req));
    head[0] = '\0';
    while (n + 1 < sizeof(head) && strstr(head, "\r\n\r\n") == NULL) {
        if (recv_n(fd, head + n, 1, WS_WAIT_MS) != 1)
            break;
        head[++n] = '\0';
    }
    ck_assert_msg(strncmp(head, "HTTP/1.1 101", 12) == 0, "%s", head);
    return fd;
}

/* Sends one masked text frame. */
static void ws_send(int fd, const char *data)
{
    size_t len = strlen(data), h = 0, i;
    unsigned char *f = malloc(len + 14);
    const unsigned char mask[4] = {0x9a, 0x21, 0x5c, 0xe3};

    f[h++] = 0x81;
    if (len < 126) {
        f[h++] = (unsigned char)(0x80 | len);
    } else {
        ck_assert_uint_lt(len, 65536);
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    }
    memcpy(f + h, mask, 4);
    h += 4;
    for (i = 0; i < len; i++)
        f[h + i] = (unsigned char)data[i] ^ mask[i % 4];
    send_all(fd, f, h + len);
    free(f);
}

/* Reads one server frame into out (NUL-terminated); returns its opcode,
 * or -1 on timeout or a broken connection. */
static int ws_recv(int fd, char *out, size_t size, int timeout_ms)
{
    unsigned char h[2], ext[8];
    uint64_t n;
    size_t i;

    if (recv_n(fd, h, 2, timeout_ms) != 2)
        return -1;
    n = h[1] & 0x7f;
    if (n == 126) {
        if (recv_n(fd, ext, 2, WS_WAIT_MS) != 2)
            return -1;
        n = (uint64_t)ext[0] << 8 | ext[1];
    } else if (n == 127) {
        if (recv_n(fd, ext, 8, WS_WAIT_MS) != 8)
            return -1;
        for (n = 0, i = 0; i < 8; i++)
            n = n << 8 | ext[i];
    }
    ck_assert_uint_lt(n, size);
    if (recv_n(fd, out, (size_t)n, WS_WAIT_MS) != n)
        return -1;
    out[n] = '\0';
    return h[0] & 0x0f;
}

/* The next text message as JSON (caller decrefs), or NULL when a close
 * frame, a timeout or the end of the connection comes instead. */
static json_t *ws_next(int fd, int timeout_ms)
{
    static char msg[1 << 16];
    int op;

    for (;;) {
        op = ws_recv(fd, msg, sizeof(msg), timeout_ms);
        if (op == 1)
            break;
        if (op != 9 && op != 10) /* skip pings and pongs */
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
    ck_assert_msg(strcmp(jstr(j, "type"), type) == 0, "got %s, expected %s",
                  dump(j), type);
    return j;
}

/* Expects an error with code, then the close frame. */
static void ws_expect_error_close(int fd, const char *code)
{
    char msg[1024];
    json_t *j = ws_expect(fd, "error");

    ck_assert_str_eq(jstr(j, "code"), code);
    json_decref(j);
    ck_assert_int_eq(ws_recv(fd, msg, sizeof(msg), WS_WAIT_MS), 8);
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
        if (strcmp(jstr(j, "type"), "pong") == 0) {
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
        hit = strcmp(jstr(j, "type"), type) == 0 &&
              (site == NULL || strcmp(jstr(j, "siteId"), site) == 0) &&
              (reason == NULL ||
               strcmp(jstr(json_object_get(j, "data"), "reason"), reason) == 0);
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
        if (strcmp(jstr(j, "type"), type) == 0 &&
            (site == NULL || strcmp(jstr(j, "siteId"), site) == 0))
            n++;
    }
    return n;
}

/* ------------------------------------------------------------ set-up */

static void start_panel(void)
{
    char url[96], dsn[320], dir[320], addr[64], sqld[600], pw[96];
    char *argv[] = {(char *)h_bin("berth-panel"), NULL};
    char *env[] = {url, dsn, dir, addr, sqld, pw, "BERTH_STRICT_SUBJECTS=1",
                   NULL};
    char log[512];

    port = h_free_port();
    snprintf(url, sizeof(url), "BERTH_NATS_URL=%s", nats.url);
    snprintf(dsn, sizeof(dsn), "BERTH_PG_DSN=%s", pg.dsn);
    snprintf(dir, sizeof(dir), "BERTH_DATA_DIR=%s/panel", nats.dir);
    snprintf(addr, sizeof(addr), "BERTH_PANEL_ADDR=127.0.0.1:%d", port);
    snprintf(sqld, sizeof(sqld), "BERTH_SQL_DIR=%s/../../sql", h_bin("."));
    snprintf(pw, sizeof(pw), "BERTH_ADMIN_PASSWORD=%s", ADMIN_PASSWORD);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "%s/panel.log", nats.dir);
    ck_assert_int_eq(h_proc_start(&panel_proc, "panel", argv, env, log), 0);
    ck_assert_int_eq(h_proc_wait_log(&panel_proc, "msg=ready", 20000), 0);
}

static void suite_up(void)
{
    struct resp r;
    const char *params[2];

    curl_global_init(CURL_GLOBAL_DEFAULT);
    ck_assert_int_eq(h_nats_start(&nats), 0);
    ck_assert_int_eq(h_pg_start(&pg), 0);
    start_panel();
    login("admin", ADMIN_PASSWORD, admin_access);

    /* A role without any site or node permission, and una holding it. */
    ck_assert_int_eq(call(&r, "POST", "/role", admin_access,
                          "{\"name\":\"siteless\","
                          "\"permissions\":[\"user.read\"]}"),
                     200);
    role_id = (int)json_integer_value(json_object_get(r.json, "id"));
    resp_free(&r);
    ck_assert_int_eq(call(&r, "POST", "/user/create", admin_access,
                          "{\"name\":\"una\",\"email\":\"una@example.org\","
                          "\"password\":\"" UNA_PASSWORD "\","
                          "\"role_name\":\"siteless\"}"),
                     201);
    snprintf(una_id, sizeof(una_id), "%s", jstr(r.json, "uuid"));
    resp_free(&r);
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
    ck_assert_int_eq(h_proc_stop(&panel_proc, SIGTERM, 10000), 0);
    h_proc_free(&panel_proc);
    start_panel();
    login("una", UNA_PASSWORD, una_access);
    tb = h_bus_open(nats.url, "berth-test");
}

static void suite_down(void)
{
    if (lazy_fd >= 0)
        close(lazy_fd);
    bus_close(tb);
    ck_assert_int_eq(h_proc_stop(&panel_proc, SIGTERM, 10000), 0);
    h_proc_free(&panel_proc);
    if (admin_fd >= 0)
        close(admin_fd);
    if (una_fd >= 0)
        close(una_fd);
    h_pg_destroy(&pg);
    h_nats_stop(&nats);
    curl_global_cleanup();
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
    ck_assert_uint_eq(strlen(jstr(j, "userId")), 36);
    json_decref(j);
    /* ... after which bad messages are answered, not fatal. */
    ws_send(fd, "not json");
    j = ws_expect(fd, "error");
    ck_assert_str_eq(jstr(j, "code"), "EPROTO");
    json_decref(j);
    ws_send(fd, "{\"type\":\"subscribe\",\"topics\":[\"site.logs\"]}");
    j = ws_expect(fd, "error");
    ck_assert_str_eq(jstr(j, "code"), "EINVAL");
    json_decref(j);
    ws_send(fd, "{\"type\":\"auth\",\"token\":\"x\"}");
    j = ws_expect(fd, "error");
    ck_assert_str_eq(jstr(j, "code"), "EINVAL");
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
    ck_assert_str_eq(jstr(j, "userId"), una_id);
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

            ck_assert_str_eq(jstr(j, "nodeId"), NODE_ID);
            ck_assert(json_is_object(d));
            if (strcmp(jstr(j, "type"), "site.status") == 0) {
                ck_assert_str_eq(jstr(d, "state"), "SITE_STATE_RUNNING");
                ck_assert_str_eq(jstr(d, "siteId"), jstr(j, "siteId"));
            }
            if (strcmp(jstr(j, "type"), "site.stats") == 0)
                ck_assert_str_eq(jstr(d, "memoryBytes"), "67108864");
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
    struct resp r;
    char body[256];
    json_t *una;

    snprintf(body, sizeof(body),
             "{\"id\":%d,\"permissions\":[\"user.read\",\"node.read\"]}",
             role_id);
    ck_assert_int_eq(call(&r, "PATCH", "/role", admin_access, body), 200);
    resp_free(&r);
    publish_node_online();
    wait_for(una_fd, "node.online", NULL, NULL, NULL);
    wait_for(admin_fd, "node.online", NULL, NULL, NULL);

    snprintf(body, sizeof(body), "{\"id\":%d,\"permissions\":[\"user.read\"]}",
             role_id);
    ck_assert_int_eq(call(&r, "PATCH", "/role", admin_access, body), 200);
    resp_free(&r);
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
        if (strcmp(jstr(j, "type"), "pong") == 0)
            pongs++;
        else if (strcmp(jstr(j, "code"), "ETHROTTLE") == 0)
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
    struct resp r;
    const char *at;
    long v;

    ck_assert_int_eq(call(&r, "GET", "/metrics", NULL, NULL), 200);
    at = strstr(r.body.data, name);
    ck_assert_msg(at != NULL, "no %s in /metrics", name);
    v = strtol(at + strlen(name), NULL, 10);
    resp_free(&r);
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
        if (strcmp(jstr(j, "type"), "site.stats") == 0) {
            stats++;
        } else if (strcmp(jstr(j, "type"), "dropped") == 0) {
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

static void issue(struct resp *r, const char *token, const char *site,
                  const char *body, long want)
{
    char path[128];

    snprintf(path, sizeof(path), "/sites/%s/tokens", site);
    ck_assert_int_eq(call(r, "POST", path, token, body), want);
}

START_TEST(direct_tokens)
{
    Berth__V1__Empty empty = BERTH__V1__EMPTY__INIT;
    Berth__V1__PanelPubkey *pk = NULL;
    ProtobufCMessage *reply = NULL;
    bus_error err;
    struct resp r;
    json_t *claims = NULL, *perms;
    char token[TOKEN_MAX], bad[TOKEN_MAX], audit[16];
    const char *dot, *params[1];
    int64_t now = clock_wall_ms() / 1000, exp;

    issue(&r, una_access, site_a, "{\"scope\":\"console\"}", 200);
    snprintf(token, sizeof(token), "%s", jstr(r.json, "token"));
    ck_assert_str_eq(jstr(r.json, "url"), NODE_URL);
    ck_assert_str_eq(jstr(r.json, "scope"), "console");
    ck_assert_uint_eq(strlen(jstr(r.json, "expiresAt")), 24);
    resp_free(&r);

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
    ck_assert_str_eq(jstr(claims, "sub"), una_id);
    ck_assert_str_eq(jstr(claims, "site"), site_a);
    ck_assert_str_eq(jstr(claims, "node"), NODE_ID);
    ck_assert_str_eq(jstr(claims, "scope"), "console");
    ck_assert_str_eq(jstr(claims, "kid"), pk->key_id);
    ck_assert_str_eq(jstr(claims, "typ"), "direct");
    ck_assert(id_uuid_valid(jstr(claims, "jti")));
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
    resp_free(&r);
    issue(&r, una_access, site_b, "{\"scope\":\"console\"}", 403);
    resp_free(&r);
    issue(&r, una_access, "7d1d8e2e-96c4-4a3b-9a57-05f1c1a1b2c3",
          "{\"scope\":\"console\"}", 404);
    resp_free(&r);
    issue(&r, una_access, "nope", "{\"scope\":\"console\"}", 404);
    resp_free(&r);
    issue(&r, una_access, site_a, "{\"scope\":\"shell\"}", 400);
    resp_free(&r);
    issue(&r, una_access, site_a, "{\"scope\":\"console\",\"x\":1}", 400);
    resp_free(&r);
    issue(&r, NULL, site_a, "{\"scope\":\"console\"}", 401);
    resp_free(&r);

    /* The admin holds every site permission everywhere. */
    issue(&r, admin_access, site_b, "{\"scope\":\"files\"}", 200);
    ck_assert_int_eq(token_verify_ed25519(jstr(r.json, "token"),
                                          pk->public_key.data, now, &claims),
                     0);
    ck_assert_str_eq(jstr(claims, "site"), site_b);
    ck_assert_int_eq(json_array_size(json_object_get(claims, "perms")), 8);
    json_decref(claims);
    resp_free(&r);

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

int main(void)
{
    SRunner *sr = srunner_create(make_suite());
    int failed;

    /* The tests share one panel and build on each other. */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
