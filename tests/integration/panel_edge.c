/* panel_edge.c - the panel's side of the edge against real PostgreSQL and
 * nats-server: a site with domains announces its route (route.set) when it
 * is created and updated, follows what its fake daemon reports (running
 * with an upstream, stopped: running=false with the last upstream), loses
 * it (route.del) when its domains go or it is deleted; revisions only
 * grow; route.list answers every routed site with the clock's revision;
 * cert.status events show up in GET /sites/:id; domain validation and
 * conflicts.
 *
 * One panel serves the whole suite (CK_NOFORK); tests build on each other.
 * The test listens to route.set.* / route.del.* on core NATS (JetStream
 * publishes reach core subscribers too) in place of the edge.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "bus/codec.h"
#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/id.h"
#include "node.pb-c.h"
#include "route.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"

#define ADMIN_PASSWORD "correct horse battery staple"
#define HEARTBEAT_MS   300
#define GIB            (1024ull * 1024 * 1024)

static h_panel panel;
static char admin[H_ACCESS_MAX];
static bus *tb; /* the fake daemon and the fake edge */
static pthread_t beat_thread;
static atomic_int beat_stop;

/* ------------------------------------------------------------ helpers */

static void expect(h_resp *r, long status, const char *method,
                   const char *path, const char *body)
{
    h_call(&panel, r, method, path, admin, body);
    ck_assert_msg(r->status == status, "%s %s %s: %ld %s", method, path,
                  body ? body : "", r->status,
                  r->body.data ? r->body.data : "");
}

static void *beat_main(void *arg)
{
    uint64_t seq = 0;

    (void)arg;
    while (!atomic_load(&beat_stop)) {
        Berth__V1__NodeHeartbeat hb = BERTH__V1__NODE_HEARTBEAT__INIT;

        hb.node_id = "n1";
        hb.sent_ms = clock_wall_ms();
        hb.seq = ++seq;
        bus_publish(tb, "node.heartbeat.n1", &hb.base);
        clock_sleep_ms(HEARTBEAT_MS / 3);
    }
    return NULL;
}

static void register_node(void)
{
    Berth__V1__NodeSpecs specs = BERTH__V1__NODE_SPECS__INIT;
    Berth__V1__NodeRegister r = BERTH__V1__NODE_REGISTER__INIT;
    Berth__V1__NodeRegistered *reply = NULL;
    bus_error err;

    specs.hostname = "host-n1";
    specs.cpus = 4;
    specs.memory_bytes = 8 * GIB;
    specs.disk_bytes = 100 * GIB;
    r.node_id = "n1";
    r.name = "node n1";
    r.specs = &specs;
    r.public_url = "http://n1.example.net:8443";
    r.version = "0.1.0";
    r.started_ms = clock_wall_ms();
    ck_assert_int_eq(bus_request(tb, "node.register.n1", &r.base, 5000,
                                 (ProtobufCMessage **)&reply, &err),
                     0);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
}

/* Route messages seen by the fake edge, owned copies in arrival order. */
#define MAILBOX_MAX 256
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int nmail;
static char subjects[MAILBOX_MAX][128];
static ProtobufCMessage *mail[MAILBOX_MAX];

static int on_route(bus_msg *m, void *ud)
{
    ProtobufCMessage *copy;
    buf b;

    (void)ud;
    buf_init(&b, BUS_PAYLOAD_MAX);
    if (codec_pack(m->msg, &b) != 0) {
        buf_free(&b);
        return 0;
    }
    copy = codec_unpack(m->msg->descriptor, b.data ? b.data : "", b.len);
    buf_free(&b);
    pthread_mutex_lock(&mu);
    if (copy != NULL && nmail < MAILBOX_MAX) {
        snprintf(subjects[nmail], sizeof(subjects[0]), "%s", m->subject);
        mail[nmail++] = copy;
        copy = NULL;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (copy != NULL)
        protobuf_c_message_free_unpacked(copy, NULL);
    return 0;
}

/* Waits up to timeout_ms for the next message on subject (removing it and
 * everything before it on that subject); caller frees. NULL on timeout. */
static ProtobufCMessage *next_on(const char *subject, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    ProtobufCMessage *found = NULL;

    pthread_mutex_lock(&mu);
    while (found == NULL) {
        int i;

        for (i = 0; i < nmail; i++) {
            if (strcmp(subjects[i], subject) != 0)
                continue;
            found = mail[i];
            memmove(&mail[i], &mail[i + 1],
                    (size_t)(nmail - i - 1) * sizeof(mail[0]));
            memmove(&subjects[i], &subjects[i + 1],
                    (size_t)(nmail - i - 1) * sizeof(subjects[0]));
            nmail--;
            break;
        }
        if (found != NULL || clock_mono_ms() >= end)
            break;
        {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
    }
    pthread_mutex_unlock(&mu);
    return found;
}

static Berth__V1__RouteSet *next_set(const char *site)
{
    char subject[128];

    snprintf(subject, sizeof(subject), "route.set.%s", site);
    return (Berth__V1__RouteSet *)next_on(subject, 5000);
}

static Berth__V1__RouteDel *next_del(const char *site)
{
    char subject[128];

    snprintf(subject, sizeof(subject), "route.del.%s", site);
    return (Berth__V1__RouteDel *)next_on(subject, 5000);
}

/* Nothing about site arrives for a while. */
static void expect_quiet(const char *site)
{
    char subject[128];
    ProtobufCMessage *m;

    snprintf(subject, sizeof(subject), "route.set.%s", site);
    m = next_on(subject, 600);
    ck_assert_msg(m == NULL, "unexpected %s", subject);
    snprintf(subject, sizeof(subject), "route.del.%s", site);
    m = next_on(subject, 10);
    ck_assert_msg(m == NULL, "unexpected %s", subject);
}

/* The fake daemon reports state (and upstream) for site. */
static void report(const char *site, int state, const char *upstream)
{
    Berth__V1__SiteStatus st = BERTH__V1__SITE_STATUS__INIT;
    char subject[160];

    st.site_id = (char *)site;
    st.node_id = "n1";
    st.state = (Berth__V1__SiteState)state;
    st.upstream = (char *)upstream;
    st.at_ms = clock_wall_ms();
    snprintf(subject, sizeof(subject), "site.status.n1.%s", site);
    ck_assert_int_eq(bus_js_publish(tb, subject, &st.base, NULL, 3000), 0);
}

static void cert_status(const char *domain, const char *site, int state,
                        int64_t not_after_ms, const char *reason)
{
    Berth__V1__CertStatus cs = BERTH__V1__CERT_STATUS__INIT;
    char subject[300];

    cs.domain = (char *)domain;
    cs.site_id = (char *)site;
    cs.state = (Berth__V1__CertState)state;
    cs.not_after_ms = not_after_ms;
    cs.reason = (char *)reason;
    snprintf(subject, sizeof(subject), "cert.status.%s", domain);
    ck_assert_int_eq(bus_js_publish(tb, subject, &cs.base, NULL, 3000), 0);
}

/* The site's certificate entry for domain in GET /sites/:id (a new
 * reference), or NULL. */
static json_t *cert_entry(const char *site, const char *domain)
{
    char path[128];
    json_t *found = NULL, *c;
    h_resp r;
    size_t i;

    snprintf(path, sizeof(path), "/sites/%s", site);
    expect(&r, 200, "GET", path, NULL);
    json_array_foreach(json_object_get(r.json, "certificates"), i, c)
    {
        if (strcmp(h_jstr(c, "domain"), domain) == 0)
            found = json_incref(c);
    }
    h_resp_free(&r);
    return found;
}

static Berth__V1__RouteList *route_list(void)
{
    Berth__V1__RouteListRequest req = BERTH__V1__ROUTE_LIST_REQUEST__INIT;
    Berth__V1__RouteList *list = NULL;
    bus_error err;

    ck_assert_int_eq(bus_request(tb, "route.list", &req.base, 5000,
                                 (ProtobufCMessage **)&list, &err),
                     0);
    return list;
}

static const Berth__V1__RouteSet *list_find(const Berth__V1__RouteList *l,
                                            const char *site)
{
    size_t i;

    for (i = 0; i < l->n_routes; i++) {
        if (strcmp(l->routes[i]->site_id, site) == 0)
            return l->routes[i];
    }
    return NULL;
}

/* ------------------------------------------------------------ suite */

static void suite_up(void)
{
    char hb[64];
    char *env[] = {hb, NULL};

    snprintf(hb, sizeof(hb), "BERTH_NODE_HEARTBEAT_MS=%d", HEARTBEAT_MS);
    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, env), 0);
    ck_assert_int_eq(h_wait_log(panel.log, "jetstream streams ready", 10000),
                     0);
    tb = h_bus_open(panel.nats.url, "berth-fake-edge");
    ck_assert_int_eq(bus_subscribe(tb, "route.set.*", NULL, on_route, NULL),
                     0);
    ck_assert_int_eq(bus_subscribe(tb, "route.del.*", NULL, on_route, NULL),
                     0);
    register_node();
    ck_assert_int_eq(pthread_create(&beat_thread, NULL, beat_main, NULL), 0);
    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, admin, NULL),
                     201);
}

static void suite_down(void)
{
    int i;

    atomic_store(&beat_stop, 1);
    pthread_join(beat_thread, NULL);
    bus_close(tb);
    for (i = 0; i < nmail; i++)
        protobuf_c_message_free_unpacked(mail[i], NULL);
    ck_assert_int_eq(h_panel_stop(&panel), 0);
}

/* ------------------------------------------------------------ tests */

static char web[40];       /* a site with domains */
static uint64_t last_rev; /* the newest revision seen */

START_TEST(created_site_announces_its_route)
{
    Berth__V1__RouteSet *rs;
    h_resp r;

    expect(&r, 202, "POST", "/sites",
           "{\"name\":\"web\",\"image\":\"nginx:1.25\",\"httpPort\":8080,"
           "\"domains\":[\"WWW.Web.Example.com\",\"web.example.com\"]}");
    snprintf(web, sizeof(web), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert_str_eq(rs->site_id, web);
    ck_assert_uint_eq(rs->n_domains, 2);
    ck_assert_str_eq(rs->domains[0], "web.example.com");
    ck_assert_str_eq(rs->domains[1], "www.web.example.com");
    ck_assert(!rs->running); /* not reported yet: the edge answers 503 */
    ck_assert_str_eq(rs->upstream, "");
    ck_assert_uint_gt(rs->revision, 0);
    last_rev = rs->revision;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
}
END_TEST

START_TEST(running_with_upstream_then_stopped)
{
    Berth__V1__RouteSet *rs;

    /* Starting without an address yet: nothing changes for the edge. */
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_STARTING, "");
    expect_quiet(web);
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, "172.17.0.5:8080");
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert(rs->running);
    ck_assert_str_eq(rs->upstream, "172.17.0.5:8080");
    ck_assert_uint_eq(rs->n_domains, 2);
    ck_assert_uint_gt(rs->revision, last_rev);
    last_rev = rs->revision;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
    /* The same report again changes nothing. */
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, "172.17.0.5:8080");
    expect_quiet(web);
    /* Stopping: running=false, the upstream last known kept. */
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_STOPPING, "");
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert(!rs->running);
    ck_assert_str_eq(rs->upstream, "172.17.0.5:8080");
    ck_assert_uint_gt(rs->revision, last_rev);
    last_rev = rs->revision;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE, "");
    expect_quiet(web);
    /* Crashed after a restart on another address (a move). */
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, "172.17.0.9:8080");
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert(rs->running);
    ck_assert_str_eq(rs->upstream, "172.17.0.9:8080");
    protobuf_c_message_free_unpacked(&rs->base, NULL);
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_CRASHED, "");
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert(!rs->running);
    last_rev = rs->revision;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, "172.17.0.9:8080");
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert(rs->running);
    last_rev = rs->revision;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
}
END_TEST

START_TEST(route_list_answers)
{
    Berth__V1__RouteList *list = route_list();
    const Berth__V1__RouteSet *rs = list_find(list, web);

    ck_assert_ptr_nonnull(rs);
    ck_assert(rs->running);
    ck_assert_str_eq(rs->upstream, "172.17.0.9:8080");
    ck_assert_uint_eq(rs->n_domains, 2);
    ck_assert_str_eq(rs->domains[1], "www.web.example.com");
    ck_assert_uint_eq(rs->revision, last_rev);
    ck_assert_uint_ge(list->revision, last_rev);
    protobuf_c_message_free_unpacked(&list->base, NULL);
}
END_TEST

START_TEST(certificates_on_the_site)
{
    json_t *c;
    int64_t until = clock_wall_ms() + 90LL * 24 * 3600 * 1000;
    int i;

    /* No status yet. */
    c = cert_entry(web, "web.example.com");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(h_jstr(c, "state"), "unknown");
    ck_assert(json_is_null(json_object_get(c, "notAfter")));
    json_decref(c);
    cert_status("web.example.com", web, BERTH__V1__CERT_STATE__CERT_STATE_PENDING,
                0, "ordering");
    cert_status("web.example.com", web, BERTH__V1__CERT_STATE__CERT_STATE_VALID,
                until, "");
    cert_status("www.web.example.com", web,
                BERTH__V1__CERT_STATE__CERT_STATE_FAILED, 0,
                "urn:ietf:params:acme:error:dns: no such host");
    for (i = 0; i < 100; i++) {
        c = cert_entry(web, "www.web.example.com");
        if (c != NULL && strcmp(h_jstr(c, "state"), "failed") == 0)
            break;
        json_decref(c);
        c = NULL;
        clock_sleep_ms(50);
    }
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(h_jstr(c, "reason"),
                     "urn:ietf:params:acme:error:dns: no such host");
    json_decref(c);
    c = cert_entry(web, "web.example.com");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(h_jstr(c, "state"), "valid");
    ck_assert_str_ne(h_jstr(c, "notAfter"), "");
    ck_assert(json_is_null(json_object_get(c, "reason")));
    json_decref(c);
}
END_TEST

START_TEST(domains_validated_and_unique)
{
    h_resp r;

    /* One site per domain. */
    expect(&r, 409, "POST", "/sites",
           "{\"name\":\"thief\",\"image\":\"nginx:1.25\","
           "\"domains\":[\"web.example.com\"]}");
    ck_assert_str_eq(h_err_code(&r), "ECONFLICT");
    h_resp_free(&r);
    expect(&r, 400, "POST", "/sites",
           "{\"name\":\"wild\",\"image\":\"nginx:1.25\","
           "\"domains\":[\"*.example.com\"]}");
    h_resp_free(&r);
    expect(&r, 400, "POST", "/sites",
           "{\"name\":\"idn\",\"image\":\"nginx:1.25\","
           "\"domains\":[\"b\xc3\xbc" "cher.example\"]}");
    h_resp_free(&r);
    expect(&r, 400, "POST", "/sites",
           "{\"name\":\"rldh\",\"image\":\"nginx:1.25\","
           "\"domains\":[\"ab--cd.example.com\"]}");
    h_resp_free(&r);
    expect(&r, 400, "POST", "/sites",
           "{\"name\":\"long\",\"image\":\"nginx:1.25\",\"domains\":[\""
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           ".example.com\"]}");
    h_resp_free(&r);
    /* Punycode is how an IDN is given. */
    expect(&r, 202, "POST", "/sites",
           "{\"name\":\"idn\",\"image\":\"nginx:1.25\","
           "\"domains\":[\"xn--bcher-kva.example\"]}");
    h_resp_free(&r);
}
END_TEST

START_TEST(domains_change_then_go)
{
    Berth__V1__RouteSet *rs;
    Berth__V1__RouteDel *rd;
    Berth__V1__RouteList *list;
    char path[128];
    h_resp r;

    snprintf(path, sizeof(path), "/sites/%s", web);
    expect(&r, 202, "PATCH", path, "{\"domains\":[\"web.example.com\"]}");
    h_resp_free(&r);
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert_uint_eq(rs->n_domains, 1);
    ck_assert(rs->running); /* the last report stands */
    ck_assert_uint_gt(rs->revision, last_rev);
    last_rev = rs->revision;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
    /* No domains left: route.del, and out of route.list. */
    expect(&r, 202, "PATCH", path, "{\"domains\":[]}");
    h_resp_free(&r);
    rd = next_del(web);
    ck_assert_ptr_nonnull(rd);
    ck_assert_str_eq(rd->site_id, web);
    ck_assert_uint_gt(rd->revision, last_rev);
    last_rev = rd->revision;
    protobuf_c_message_free_unpacked(&rd->base, NULL);
    list = route_list();
    ck_assert_ptr_null(list_find(list, web));
    ck_assert_uint_ge(list->revision, last_rev);
    protobuf_c_message_free_unpacked(&list->base, NULL);
    /* Reports about a site without domains announce nothing. */
    report(web, BERTH__V1__SITE_STATE__SITE_STATE_STOPPING, "");
    expect_quiet(web);
    /* Back with a domain: the route as stored (stopped now). */
    expect(&r, 202, "PATCH", path, "{\"domains\":[\"web.example.com\"]}");
    h_resp_free(&r);
    rs = next_set(web);
    ck_assert_ptr_nonnull(rs);
    ck_assert(!rs->running);
    ck_assert_str_eq(rs->upstream, "172.17.0.9:8080");
    ck_assert_uint_gt(rs->revision, last_rev);
    last_rev = rs->revision;
    protobuf_c_message_free_unpacked(&rs->base, NULL);
}
END_TEST

START_TEST(deleted_site_loses_its_route)
{
    Berth__V1__RouteDel *rd;
    char path[128], plain[40];
    h_resp r;

    snprintf(path, sizeof(path), "/sites/%s", web);
    expect(&r, 202, "DELETE", path, NULL);
    h_resp_free(&r);
    rd = next_del(web);
    ck_assert_ptr_nonnull(rd);
    ck_assert_uint_gt(rd->revision, last_rev);
    protobuf_c_message_free_unpacked(&rd->base, NULL);
    /* A site that never had domains comes and goes silently. */
    expect(&r, 202, "POST", "/sites",
           "{\"name\":\"plain\",\"image\":\"nginx:1.25\"}");
    snprintf(plain, sizeof(plain), "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    report(plain, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING, "172.17.0.7:80");
    expect_quiet(plain);
    snprintf(path, sizeof(path), "/sites/%s", plain);
    expect(&r, 202, "DELETE", path, NULL);
    h_resp_free(&r);
    expect_quiet(plain);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("panel_edge");
    TCase *tc = tcase_create("panel_edge");

    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, created_site_announces_its_route);
    tcase_add_test(tc, running_with_upstream_then_stopped);
    tcase_add_test(tc, route_list_answers);
    tcase_add_test(tc, certificates_on_the_site);
    tcase_add_test(tc, domains_validated_and_unique);
    tcase_add_test(tc, domains_change_then_go);
    tcase_add_test(tc, deleted_site_loses_its_route);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
