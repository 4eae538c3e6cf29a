/* routes.c - the edge's route table (svc-edge/routes.c) without HAProxy or
 * NATS: domain and upstream checks, revisions (older messages and sets
 * older than a deletion change nothing), two sites claiming one domain,
 * route.list healing with its revision floor, many changes in one commit,
 * the domain hooks, and the table read back from the map file. The HAProxy
 * runtime calls are replaced by a map kept here, so every test can check
 * that "HAProxy" holds what the table says. Routing through the real
 * HAProxy is tests/integration/edge_routes.c.
 */
#include "svc-edge/routes.c"

#include <stdlib.h>

#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

/* ------------------------------------------------------------ fake HAProxy */

#define FAKE_MAX 4096

static struct {
    char key[EDGE_ROUTES_DOMAIN_MAX + 1];
    char value[RT_UPSTREAM_MAX + 1];
} fake[FAKE_MAX];
static int nfake, replaces, ops;
static char *dir;
static char map_file[1024];
static char hooks[8192]; /* "+domain=site " and "-domain " in order */

static int fake_find(const char *key)
{
    int i;

    for (i = 0; i < nfake; i++) {
        if (strcmp(fake[i].key, key) == 0)
            return i;
    }
    return -1;
}

int edge_haproxy_map_set(edge_haproxy *h, enum edge_haproxy_map map,
                         const char *key, const char *value)
{
    int i = fake_find(key);

    (void)h;
    ck_assert_int_eq(map, EDGE_HAPROXY_MAP_HOSTS);
    ops++;
    if (i < 0) {
        ck_assert_int_lt(nfake, FAKE_MAX);
        i = nfake++;
        snprintf(fake[i].key, sizeof(fake[i].key), "%s", key);
    }
    snprintf(fake[i].value, sizeof(fake[i].value), "%s", value);
    return 0;
}

int edge_haproxy_map_del(edge_haproxy *h, enum edge_haproxy_map map,
                         const char *key)
{
    int i = fake_find(key);

    (void)h;
    (void)map;
    ops++;
    if (i >= 0)
        fake[i] = fake[--nfake];
    return 0;
}

int edge_haproxy_map_replace(edge_haproxy *h, enum edge_haproxy_map map,
                             const char *lines, size_t len)
{
    char *copy = strndup(lines, len), *line, *save = NULL;

    (void)h;
    (void)map;
    replaces++;
    nfake = 0;
    for (line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        ck_assert_int_lt(nfake, FAKE_MAX);
        ck_assert_int_eq(sscanf(line, "%253s %64s", fake[nfake].key,
                                fake[nfake].value),
                         2);
        nfake++;
    }
    free(copy);
    return 0;
}

int edge_haproxy_map_write(edge_haproxy *h, enum edge_haproxy_map map,
                           const char *content, size_t len)
{
    (void)h;
    (void)map;
    return fs_write_atomic(map_file, content, len, 0600);
}

const char *edge_haproxy_map_path(edge_haproxy *h, enum edge_haproxy_map map)
{
    (void)h;
    (void)map;
    return map_file;
}

int edge_haproxy_up(edge_haproxy *h)
{
    (void)h;
    return 1;
}

void edge_haproxy_on_restart(edge_haproxy *h, void (*fn)(void *ud), void *ud)
{
    (void)h;
    (void)fn;
    (void)ud;
}

/* ------------------------------------------------------------ helpers */

static int fake_bus, fake_hx;

static void on_added(void *ud, const char *domain, const char *site)
{
    (void)ud;
    snprintf(hooks + strlen(hooks), sizeof(hooks) - strlen(hooks), "+%s=%s ",
             domain, site);
}

static void on_removed(void *ud, const char *domain)
{
    (void)ud;
    snprintf(hooks + strlen(hooks), sizeof(hooks) - strlen(hooks), "-%s ",
             domain);
}

static edge_routes *table(void)
{
    edge_routes *R = NULL;

    ck_assert_int_eq(edge_routes_new(
                         &(edge_routes_cfg){.bus = (bus *)&fake_bus,
                                            .haproxy = (edge_haproxy *)&fake_hx,
                                            .domain_added = on_added,
                                            .domain_removed = on_removed},
                         &R),
                     0);
    return R;
}

static void setup(void)
{
    dir = h_tempdir("routes-unit");
    ck_assert_ptr_nonnull(dir);
    snprintf(map_file, sizeof(map_file), "%s/hosts.map", dir);
    nfake = replaces = ops = 0;
    hooks[0] = '\0';
}

static void teardown(void)
{
    h_rmtree(dir);
    free(dir);
}

/* route.set for site: domains separated by spaces. Returns what
 * apply_set() returned. */
static int set(edge_routes *R, const char *site, const char *domains,
               const char *upstream, int running, uint64_t rev)
{
    Berth__V1__RouteSet m = BERTH__V1__ROUTE_SET__INIT;
    char copy[1024], *d[64], *save = NULL, *tok;
    batch b = {0};
    int n = 0, rc;

    snprintf(copy, sizeof(copy), "%s", domains);
    for (tok = strtok_r(copy, " ", &save); tok != NULL && n < 64;
         tok = strtok_r(NULL, " ", &save))
        d[n++] = tok;
    m.site_id = (char *)site;
    m.domains = d;
    m.n_domains = (size_t)n;
    m.upstream = (char *)upstream;
    m.running = running;
    m.revision = rev;
    pthread_mutex_lock(&R->mu);
    rc = apply_set(R, site, &m, &b);
    batch_finish(R, &b);
    batch_free(&b);
    return rc;
}

static int del(edge_routes *R, const char *site, uint64_t rev)
{
    batch b = {0};
    int rc;

    pthread_mutex_lock(&R->mu);
    rc = apply_del(R, site, rev, 0, &b);
    batch_finish(R, &b);
    batch_free(&b);
    return rc;
}

/* The fake HAProxy's value for key, or "" when absent. */
static const char *served(const char *key)
{
    int i = fake_find(key);

    return i < 0 ? "" : fake[i].value;
}

/* HAProxy holds exactly the table's hosts. */
static void consistent(edge_routes *R)
{
    size_t i;
    hent *e;

    ck_assert_int_eq(nfake, (int)R->hosts.n);
    for (i = 0; i < R->hosts.nb; i++)
        for (e = R->hosts.b[i]; e != NULL; e = e->next)
            ck_assert_str_eq(served(e->key), route_value(((host *)e)->owner));
}

/* ------------------------------------------------------------ tests */

START_TEST(domain_names)
{
    static const char *const good[] = {
        "example.com", "a.b.c.example.org", "xn--bcher-kva.example",
        "www.xn--80ak6aa92e.com", "a-b.x1.io", "1a.example.com",
        "a.b--c.example"};
    static const char *const bad[] = {
        "", "localhost", "Example.com", "*.example.com", "a_b.example.com",
        "-a.example.com", "a-.example.com", "a..com", ".a.com", "a.com.",
        "10.0.0.1", "ab--cd.example.com", "xn--.example.com",
        "b\xc3\xbc" "cher.de", "a.123"};
    char longest[300];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(edge_routes_domain_valid(good[i]), "%s", good[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!edge_routes_domain_valid(bad[i]), "%s", bad[i]);
    memset(longest, 'a', 64);
    strcpy(longest + 64, ".com");
    ck_assert(!edge_routes_domain_valid(longest)); /* a 64-byte label */
    memset(longest, 'a', 249);
    strcpy(longest + 249, ".com");
    for (i = 60; i < 249; i += 61)
        longest[i] = '.';
    ck_assert(edge_routes_domain_valid(longest)); /* 253 bytes */
    memmove(longest + 1, longest, 254);
    longest[0] = 'a';
    ck_assert(!edge_routes_domain_valid(longest));
}
END_TEST

START_TEST(upstreams)
{
    ck_assert(upstream_valid("10.0.0.5:8080"));
    ck_assert(upstream_valid("[::1]:80"));
    ck_assert(upstream_valid("[fd00::5]:65535"));
    ck_assert(!upstream_valid("10.0.0.5"));
    ck_assert(!upstream_valid("10.0.0.5:0"));
    ck_assert(!upstream_valid("10.0.0.5:65536"));
    ck_assert(!upstream_valid("10.0.0.5:80x"));
    ck_assert(!upstream_valid("host.internal:80"));
    ck_assert(!upstream_valid("::1:80"));
    ck_assert(!upstream_valid(":80"));
    ck_assert(!upstream_valid("10.0.0.5: 80"));
}
END_TEST

START_TEST(revisions_order_everything)
{
    edge_routes *R = table();

    ck_assert_int_eq(set(R, "s1", "a.example.com b.example.com",
                         "10.0.0.1:80", 1, 5),
                     1);
    ck_assert_str_eq(served("a.example.com"), "10.0.0.1:80");
    ck_assert_str_eq(served("b.example.com"), "10.0.0.1:80");
    /* Older or equal: ignored. */
    ck_assert_int_eq(set(R, "s1", "a.example.com", "10.0.0.2:80", 1, 4), 0);
    ck_assert_int_eq(set(R, "s1", "a.example.com", "10.0.0.2:80", 1, 5), 0);
    ck_assert_int_eq(del(R, "s1", 3), 0);
    ck_assert_str_eq(served("b.example.com"), "10.0.0.1:80");
    /* Stopped, then without an upstream: the 503 value. */
    ck_assert_int_eq(set(R, "s1", "a.example.com b.example.com",
                         "10.0.0.1:80", 0, 6),
                     1);
    ck_assert_str_eq(served("a.example.com"), EDGE_HAPROXY_STOPPED);
    ck_assert_int_eq(set(R, "s1", "a.example.com", "", 1, 7), 1);
    ck_assert_str_eq(served("a.example.com"), EDGE_HAPROXY_STOPPED);
    ck_assert_str_eq(served("b.example.com"), "");
    /* Deleted at 8: a set at 8 or older stays out, a newer one is in. */
    ck_assert_int_eq(del(R, "s1", 8), 1);
    ck_assert_str_eq(served("a.example.com"), "");
    ck_assert_int_eq(set(R, "s1", "a.example.com", "10.0.0.1:80", 1, 8), 0);
    ck_assert_str_eq(served("a.example.com"), "");
    ck_assert_int_eq(set(R, "s1", "a.example.com", "10.0.0.1:80", 1, 9), 1);
    ck_assert_str_eq(served("a.example.com"), "10.0.0.1:80");
    /* Bad input: a bad site id, invalid domains left out. */
    ck_assert_int_eq(set(R, "bad site", "c.example.com", "10.0.0.1:80", 1, 10),
                     0);
    ck_assert_int_eq(set(R, "s2", "*.x.example.com C.example.com c.example.com",
                         "10.0.0.3:80", 1, 11),
                     1);
    ck_assert_str_eq(served("c.example.com"), "10.0.0.3:80");
    consistent(R);
    ck_assert_str_eq(hooks, "+a.example.com=s1 +b.example.com=s1 "
                            "-b.example.com -a.example.com "
                            "+a.example.com=s1 +c.example.com=s2 ");
    edge_routes_free(R);
}
END_TEST

START_TEST(crossed_claims_go_to_the_newest)
{
    edge_routes *R = table();

    set(R, "a", "x.example.com", "10.0.0.1:80", 1, 1);
    /* b claims x before a's release arrives: b is newer, b serves it. */
    set(R, "b", "x.example.com", "10.0.0.2:80", 1, 2);
    ck_assert_str_eq(served("x.example.com"), "10.0.0.2:80");
    /* a changes but still claims x: a (3) is newer than b (2). */
    set(R, "a", "x.example.com", "10.0.0.3:80", 1, 3);
    ck_assert_str_eq(served("x.example.com"), "10.0.0.3:80");
    /* a lets go: back to b. */
    set(R, "a", "y.example.com", "10.0.0.3:80", 1, 4);
    ck_assert_str_eq(served("x.example.com"), "10.0.0.2:80");
    /* b deleted: x is gone. */
    del(R, "b", 5);
    ck_assert_str_eq(served("x.example.com"), "");
    consistent(R);
    ck_assert_str_eq(hooks, "+x.example.com=a +x.example.com=b "
                            "+x.example.com=a +y.example.com=a "
                            "+x.example.com=b -x.example.com ");
    edge_routes_free(R);
}
END_TEST

/* A RouteList of n routes "site i" -> "d<i>.example.com". */
static void heal_list(edge_routes *R, Berth__V1__RouteSet **sets, size_t n,
                      uint64_t revision, int *set_n, int *removed)
{
    Berth__V1__RouteList list = BERTH__V1__ROUTE_LIST__INIT;
    batch b = {0};

    list.routes = sets;
    list.n_routes = n;
    list.revision = revision;
    *set_n = *removed = 0;
    pthread_mutex_lock(&R->mu);
    heal_apply(R, &list, &b, set_n, removed);
    batch_finish(R, &b);
    batch_free(&b);
}

START_TEST(route_list_heals)
{
    Berth__V1__RouteSet c = BERTH__V1__ROUTE_SET__INIT, *sets[1] = {&c};
    char *cd[] = {"c.example.com"};
    edge_routes *R = table();
    int n, removed;

    set(R, "a", "a.example.com", "10.0.0.1:80", 1, 5);
    set(R, "b", "b.example.com", "10.0.0.2:80", 1, 20);
    del(R, "old", 7);
    c.site_id = "c";
    c.domains = cd;
    c.n_domains = 1;
    c.upstream = "10.0.0.3:80";
    c.running = 1;
    c.revision = 8;
    /* The panel at revision 10 knows only c: a's deletion was missed, b
     * is newer than the list and stays. */
    heal_list(R, sets, 1, 10, &n, &removed);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(removed, 1);
    ck_assert_str_eq(served("a.example.com"), "");
    ck_assert_str_eq(served("b.example.com"), "10.0.0.2:80");
    ck_assert_str_eq(served("c.example.com"), "10.0.0.3:80");
    ck_assert_uint_eq(R->floor, 10);
    /* Tombstones at or below the floor are gone; the floor guards. */
    ck_assert_ptr_null(route_get(R, "old"));
    ck_assert_ptr_null(route_get(R, "a"));
    ck_assert_int_eq(set(R, "a", "a.example.com", "10.0.0.1:80", 1, 9), 0);
    ck_assert_int_eq(set(R, "a", "a.example.com", "10.0.0.1:80", 1, 11), 1);
    /* The same list again changes nothing. */
    c.revision = 8;
    heal_list(R, sets, 1, 10, &n, &removed);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(removed, 0);
    consistent(R);
    edge_routes_free(R);
}
END_TEST

START_TEST(many_changes_in_one_commit)
{
    Berth__V1__RouteSet *sets[2000], *s;
    char names[2000][32], ids[2000][16], *dp[2000];
    edge_routes *R = table();
    int i, n, removed;

    for (i = 0; i < 2000; i++) {
        s = calloc(1, sizeof(*s));
        berth__v1__route_set__init(s);
        snprintf(names[i], sizeof(names[i]), "d%d.example.com", i);
        snprintf(ids[i], sizeof(ids[i]), "s%d", i);
        dp[i] = names[i];
        s->site_id = ids[i];
        s->domains = &dp[i];
        s->n_domains = 1;
        s->upstream = "10.1.0.1:80";
        s->running = 1;
        s->revision = (uint64_t)i + 1;
        sets[i] = s;
    }
    heal_list(R, sets, 2000, 3000, &n, &removed);
    ck_assert_int_eq(n, 2000);
    ck_assert_int_eq(replaces, 1); /* one prepare/commit, not 2000 sets */
    ck_assert_int_eq(ops, 0);
    consistent(R);
    /* All gone at once, cheaply (no scan per released host). */
    heal_list(R, sets, 0, 4000, &n, &removed);
    ck_assert_int_eq(removed, 2000);
    ck_assert_int_eq(nfake, 0);
    ck_assert_int_eq((int)R->sites.n, 0); /* pruned by the floor */
    for (i = 0; i < 2000; i++)
        free(sets[i]);
    edge_routes_free(R);
}
END_TEST

START_TEST(table_survives_in_the_map_file)
{
    edge_routes *R = table(), *again;
    char *text = NULL;
    size_t len;
    int n, removed;

    set(R, "a", "a.example.com x.example.com", "10.0.0.1:80", 1, 3);
    set(R, "b", "x.example.com", "[fd00::2]:8080", 0, 4); /* newer: owns x */
    set(R, "c", "c.example.com", "10.0.0.3:80", 1, 5);
    del(R, "c", 6);
    heal_list(R, NULL, 0, 2, &n, &removed); /* floor 2: nothing removed */
    ck_assert_int_eq(removed, 0);
    save(R);
    ck_assert_int_eq(fs_read_file(map_file, 1 << 20, &text, &len), 0);
    ck_assert_ptr_nonnull(strstr(text, "# floor 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "# site a 3 1 10.0.0.1:80\n"
                                       "a.example.com 10.0.0.1:80\n"
                                       "# claim x.example.com\n"));
    ck_assert_ptr_nonnull(strstr(text, "# site b 4 0 [fd00::2]:8080\n"
                                       "x.example.com stopped\n"));
    ck_assert_ptr_nonnull(strstr(text, "# gone c 6\n"));
    free(text);
    edge_routes_free(R);
    /* A new table reads it back: same hosts, owners and revisions. */
    hooks[0] = '\0';
    again = table();
    ck_assert_int_eq((int)again->hosts.n, 2);
    ck_assert_str_eq(((host *)ht_get(&again->hosts, "x.example.com"))
                         ->owner->h.key,
                     "b");
    ck_assert_uint_eq(route_get(again, "a")->revision, 3);
    ck_assert_str_eq(route_get(again, "b")->upstream, "[fd00::2]:8080");
    ck_assert(route_get(again, "c")->gone);
    ck_assert_uint_eq(again->floor, 2);
    ck_assert_int_eq(set(again, "c", "c.example.com", "10.0.0.3:80", 1, 6), 0);
    /* b goes: x falls back to a, which the file said claims it. */
    del(again, "b", 7);
    nfake = 0;
    on_haproxy_start(again);
    ck_assert_str_eq(served("x.example.com"), "10.0.0.1:80");
    consistent(again);
    edge_routes_free(again);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("edge/routes");
    TCase *tc = tcase_create("routes");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, domain_names);
    tcase_add_test(tc, upstreams);
    tcase_add_test(tc, revisions_order_everything);
    tcase_add_test(tc, crossed_claims_go_to_the_newest);
    tcase_add_test(tc, route_list_heals);
    tcase_add_test(tc, many_changes_in_one_commit);
    tcase_add_test(tc, table_survives_in_the_map_file);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
