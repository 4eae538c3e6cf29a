/* uhttp.c - tests of svc-daemon/uhttp.c without Docker: chunked decoding
 * under every split of its input, reply headers, query escaping, and whole
 * requests against a stand-in peer on a unix socket (bodies by length,
 * chunked and until close, a reply cut short, a silent peer, a stop flag,
 * a callback that stops, no socket at all).
 */
#include "svc-daemon/hijack.c"
#include "svc-daemon/uhttp.c"

#include <pthread.h>
#include <stdlib.h>

#include "tests/harness/unit.h"

/* ---------------------------------------------------------------- chunked */

typedef struct sink {
    char data[4096];
    size_t len;
    size_t stop_at; /* 0: never stop */
} sink;

static int collect(void *arg, const char *p, size_t n)
{
    sink *s = arg;

    ck_assert_uint_le(s->len + n, sizeof(s->data));
    memcpy(s->data + s->len, p, n);
    s->len += n;
    return s->stop_at > 0 && s->len >= s->stop_at;
}

/* Feeds in pieces cut at a and b; returns the final code and how much of
 * the last piece was used. */
static int feed_split(const char *in, size_t n, size_t a, size_t b, sink *s,
                      size_t *consumed)
{
    uhttp_chunked c = {0};
    size_t cuts[3] = {a, b, n}, from = 0, used = 0;
    int i, k = 0;

    *consumed = 0;
    for (i = 0; i < 3; i++) {
        k = uhttp_chunked_feed(&c, in + from, cuts[i] - from, collect, s,
                               &used);
        if (k != 0) {
            *consumed = from + used;
            return k;
        }
        from = cuts[i];
    }
    *consumed = n;
    return k;
}

START_TEST(chunked_every_two_splits)
{
    static const char in[] = "5\r\nhello\r\n1;name=v\r\n \r\n"
                             "B\r\nchunked wor\r\n2\r\nld\r\n"
                             "0\r\nTrailer: x\r\n\r\nNEXT";
    size_t n = sizeof(in) - 1, a, b, used;

    for (a = 0; a <= n - 4; a++) {
        for (b = a; b <= n - 4; b++) {
            sink s = {0};

            ck_assert_int_eq(feed_split(in, n - 4, a, b, &s, &used), 1);
            ck_assert_uint_eq(s.len, 19);
            ck_assert_int_eq(memcmp(s.data, "hello chunked world", 19), 0);
            ck_assert_uint_eq(used, n - 4);
        }
    }
    {
        /* Bytes after the end are left alone. */
        uhttp_chunked c = {0};
        sink s = {0};

        ck_assert_int_eq(uhttp_chunked_feed(&c, in, n, collect, &s, &used), 1);
        ck_assert_uint_eq(used, n - 4);
    }
}
END_TEST

START_TEST(chunked_bare_lf_and_empty)
{
    uhttp_chunked c = {0};
    sink s = {0};
    size_t used;

    /* LF without CR, as lenient peers write. */
    ck_assert_int_eq(uhttp_chunked_feed(&c, "3\nabc\n0\n\n", 10, collect, &s,
                                        &used),
                     1);
    ck_assert_uint_eq(s.len, 3);
    memset(&c, 0, sizeof(c));
    s.len = 0;
    ck_assert_int_eq(uhttp_chunked_feed(&c, "0\r\n\r\n", 5, collect, &s, &used),
                     1);
    ck_assert_uint_eq(s.len, 0);
    /* More wanted. */
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(uhttp_chunked_feed(&c, "a\r\n01234", 8, collect, &s, &used),
                     0);
}
END_TEST

START_TEST(chunked_refuses_garbage)
{
    static const char *const bad[] = {
        "x\r\n",              /* not hex */
        "\r\n",               /* no digits */
        "3\r\nabcX",          /* no CRLF after data */
        "3\r\nabc\rX",        /* CR then not LF */
        "1234567890abcdef0\r\n", /* absurdly large */
        "0\r\n\rX",           /* trailer end broken */
    };
    size_t i, used;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uhttp_chunked c = {0};
        sink s = {0};

        ck_assert_msg(uhttp_chunked_feed(&c, bad[i], strlen(bad[i]), collect,
                                         &s, &used) == -1,
                      "accepted %s", bad[i]);
    }
}
END_TEST

START_TEST(chunked_emit_stops)
{
    uhttp_chunked c = {0};
    sink s = {.stop_at = 2};
    size_t used;

    ck_assert_int_eq(uhttp_chunked_feed(&c, "5\r\nhello\r\n0\r\n\r\n", 15,
                                        collect, &s, &used),
                     2);
    ck_assert_uint_eq(s.len, 5);
    ck_assert_uint_eq(used, 8);
}
END_TEST

/* ---------------------------------------------------------------- header */

START_TEST(head_fields)
{
    static const char h1[] = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\n"
                             "content-length:  42 \r\n\r\n";
    static const char h2[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                             "\r\n";
    static const char h3[] = "HTTP/1.0 404 Not Found\r\n\r\n";
    uhttp_head h;

    ck_assert_int_eq(uhttp_parse_head(h1, sizeof(h1) - 1, &h), 0);
    ck_assert_int_eq(h.status, 200);
    ck_assert_int_eq(h.content_length, 42);
    ck_assert(!h.chunked);
    ck_assert_int_eq(uhttp_parse_head(h2, sizeof(h2) - 1, &h), 0);
    ck_assert(h.chunked);
    ck_assert_int_eq(h.content_length, -1);
    ck_assert_int_eq(uhttp_parse_head(h3, sizeof(h3) - 1, &h), 0);
    ck_assert_int_eq(h.status, 404);
}
END_TEST

START_TEST(head_refused)
{
    static const char *const bad[] = {
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    };
    size_t i;
    uhttp_head h;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(uhttp_parse_head(bad[i], strlen(bad[i]), &h) ==
                          BERTH_EPROTO,
                      "accepted %s", bad[i]);
}
END_TEST

START_TEST(escape_query_values)
{
    char out[64];

    ck_assert_int_eq(uhttp_escape("{\"label\":[\"berth.node=a b\"]}", out,
                                  sizeof(out)),
                     0);
    ck_assert_str_eq(out, "%7B%22label%22%3A%5B%22berth.node%3Da%20b%22%5D%7D");
    ck_assert_int_eq(uhttp_escape("busybox:1.36~x_y-z", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "busybox%3A1.36~x_y-z");
    ck_assert_int_eq(uhttp_escape("\xc3\xa9/", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "%C3%A9%2F");
    ck_assert_int_eq(uhttp_escape("abc", out, 4), 0);
    ck_assert_int_eq(uhttp_escape("abcd", out, 4), BERTH_ETOOBIG);
    ck_assert_int_eq(uhttp_escape("a b", out, 5), BERTH_ETOOBIG);
}
END_TEST

/* ---------------------------------------------------------------- requests */

/* A stand-in peer: accepts one connection, reads the request (header and
 * Content-Length body), writes each of replies with a pause between, then
 * closes (or keeps silent for hold_ms first). */
typedef struct peer {
    char dir[64];
    char path[96];
    int lfd;
    const char *replies[4];
    int hold_ms;
    char req[4096];
    size_t reqlen;
    pthread_t thread;
} peer;

static void *peer_main(void *arg)
{
    peer *e = arg;
    int fd = accept(e->lfd, NULL, NULL);
    int i;

    if (fd < 0)
        return NULL;
    for (;;) {
        const char *end, *cl;
        ssize_t n = read(fd, e->req + e->reqlen, sizeof(e->req) - 1 - e->reqlen);

        if (n <= 0)
            break;
        e->reqlen += (size_t)n;
        e->req[e->reqlen] = '\0';
        end = strstr(e->req, "\r\n\r\n");
        if (end == NULL)
            continue;
        cl = strstr(e->req, "Content-Length: ");
        if (cl == NULL || e->reqlen >= (size_t)(end - e->req) + 4 +
                                           strtoul(cl + 16, NULL, 10))
            break;
    }
    for (i = 0; i < 4 && e->replies[i] != NULL; i++) {
        if (i > 0)
            clock_sleep_ms(20);
        if (write(fd, e->replies[i], strlen(e->replies[i])) < 0)
            break;
    }
    if (e->hold_ms > 0)
        clock_sleep_ms(e->hold_ms);
    close(fd);
    return NULL;
}

static void peer_start(peer *e, int hold_ms, const char *r0, const char *r1,
                       const char *r2)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/berth-uhttp-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/docker.sock", e->dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->path);
    e->replies[0] = r0;
    e->replies[1] = r1;
    e->replies[2] = r2;
    e->hold_ms = hold_ms;
    e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(e->lfd, 0);
    ck_assert_int_eq(bind(e->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(e->lfd, 4), 0);
    ck_assert_int_eq(pthread_create(&e->thread, NULL, peer_main, e), 0);
}

static void peer_stop(peer *e)
{
    pthread_join(e->thread, NULL);
    close(e->lfd);
    unlink(e->path);
    rmdir(e->dir);
}

static int on_body_collect(void *arg, int status, const char *p, size_t n)
{
    ck_assert_int_gt(status, 0);
    return collect(arg, p, n);
}

static int run(peer *e, const char *method, const char *body, long timeout_ms,
               const atomic_bool *stop, sink *s, uhttp_res *res, char *why)
{
    return uhttp_request(&(uhttp_req){.sock_path = e->path,
                                      .method = method,
                                      .target = "/v1.41/things?x=%7B%7D",
                                      .body = body,
                                      .body_len = body != NULL ? strlen(body) : 0,
                                      .timeout_ms = timeout_ms,
                                      .on_body = on_body_collect,
                                      .arg = s,
                                      .stop = stop},
                         res, why, 256);
}

START_TEST(request_with_length)
{
    peer e;
    sink s = {0};
    uhttp_res res;
    char why[256];

    peer_start(&e, 0, "HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\nhello",
               " world", NULL);
    ck_assert_int_eq(run(&e, "POST", "{\"a\":1}", 5000, NULL, &s, &res, why), 0);
    peer_stop(&e);
    ck_assert_int_eq(res.status, 201);
    ck_assert(!res.stopped);
    ck_assert_uint_eq(s.len, 11);
    ck_assert_int_eq(memcmp(s.data, "hello world", 11), 0);
    ck_assert_ptr_nonnull(strstr(e.req, "POST /v1.41/things?x=%7B%7D HTTP/1.1\r\n"));
    ck_assert_ptr_nonnull(strstr(e.req, "Content-Type: application/json\r\n"));
    ck_assert_ptr_nonnull(strstr(e.req, "Content-Length: 7\r\n\r\n{\"a\":1}"));
}
END_TEST

START_TEST(request_chunked_and_until_close)
{
    peer e;
    sink s = {0};
    uhttp_res res;
    char why[256];

    peer_start(&e, 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"",
               "\r\n3\r\n:1}\r\n0\r\n\r\n", NULL);
    ck_assert_int_eq(run(&e, "GET", NULL, 5000, NULL, &s, &res, why), 0);
    peer_stop(&e);
    ck_assert_uint_eq(s.len, 7);
    ck_assert_int_eq(memcmp(s.data, "{\"a\":1}", 7), 0);
    ck_assert_ptr_null(strstr(e.req, "Content-Length"));

    memset(&s, 0, sizeof(s));
    peer_start(&e, 0, "HTTP/1.0 500 Oops\r\n\r\n{\"message\":", "\"x\"}", NULL);
    ck_assert_int_eq(run(&e, "DELETE", NULL, 5000, NULL, &s, &res, why), 0);
    peer_stop(&e);
    ck_assert_int_eq(res.status, 500);
    ck_assert_uint_eq(s.len, 15);
    /* A POST without a body still says so. */
    memset(&s, 0, sizeof(s));
    peer_start(&e, 0, "HTTP/1.1 204 No Content\r\n\r\n", NULL, NULL);
    ck_assert_int_eq(run(&e, "POST", NULL, 5000, NULL, &s, &res, why), 0);
    peer_stop(&e);
    ck_assert_int_eq(res.status, 204);
    ck_assert_ptr_nonnull(strstr(e.req, "Content-Length: 0\r\n"));
}
END_TEST

START_TEST(request_failures)
{
    peer e;
    sink s = {0};
    uhttp_res res;
    char why[256];

    /* Cut short: fewer bytes than announced, chunked without its end. */
    peer_start(&e, 0, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", NULL,
               NULL);
    ck_assert_int_eq(run(&e, "GET", NULL, 5000, NULL, &s, &res, why),
                     BERTH_EUNAVAIL);
    peer_stop(&e);
    peer_start(&e, 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc",
               NULL, NULL);
    ck_assert_int_eq(run(&e, "GET", NULL, 5000, NULL, &s, &res, why),
                     BERTH_EUNAVAIL);
    peer_stop(&e);
    /* Not HTTP, bad chunking. */
    peer_start(&e, 0, "SSH-2.0-x\r\n\r\n", NULL, NULL);
    ck_assert_int_eq(run(&e, "GET", NULL, 5000, NULL, &s, &res, why),
                     BERTH_EPROTO);
    peer_stop(&e);
    peer_start(&e, 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
               NULL, NULL);
    ck_assert_int_eq(run(&e, "GET", NULL, 5000, NULL, &s, &res, why),
                     BERTH_EPROTO);
    peer_stop(&e);
    /* A silent peer runs into the time limit. */
    peer_start(&e, 1500, NULL, NULL, NULL);
    ck_assert_int_eq(run(&e, "GET", NULL, 300, NULL, &s, &res, why),
                     BERTH_ETIMEDOUT);
    peer_stop(&e);
    /* No socket; a target the request line cannot carry. */
    ck_assert_int_eq(uhttp_request(&(uhttp_req){.sock_path = "/nonexistent/d.sock",
                                                .method = "GET",
                                                .target = "/_ping"},
                                   &res, why, sizeof(why)),
                     BERTH_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(why, "unavailable"));
    ck_assert_int_eq(uhttp_request(&(uhttp_req){.sock_path = "/nonexistent/d.sock",
                                                .method = "GET",
                                                .target = "/a b"},
                                   &res, why, sizeof(why)),
                     BERTH_EINVAL);
}
END_TEST

static void *raise_later(void *arg)
{
    clock_sleep_ms(300);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

START_TEST(request_stops)
{
    peer e;
    sink s = {.stop_at = 3};
    uhttp_res res;
    char why[256];
    atomic_bool stop = false;
    pthread_t t;
    int64_t t0;

    /* The callback stops a stream. */
    peer_start(&e, 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
               "2\r\ncd\r\n", NULL);
    ck_assert_int_eq(run(&e, "GET", NULL, 0, NULL, &s, &res, why), 0);
    peer_stop(&e);
    ck_assert(res.stopped);
    ck_assert_uint_eq(s.len, 4);
    /* The stop flag ends a stream that has gone quiet, within its tick. */
    memset(&s, 0, sizeof(s));
    peer_start(&e, 3000, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
               NULL, NULL);
    ck_assert_int_eq(pthread_create(&t, NULL, raise_later, &stop), 0);
    t0 = clock_mono_ms();
    ck_assert_int_eq(run(&e, "GET", NULL, 0, &stop, &s, &res, why), 0);
    ck_assert(res.stopped);
    ck_assert_int_lt(clock_mono_ms() - t0, 2500);
    pthread_join(t, NULL);
    peer_stop(&e);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_uhttp");
    TCase *tc = tcase_create("uhttp");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, chunked_every_two_splits);
    tcase_add_test(tc, chunked_bare_lf_and_empty);
    tcase_add_test(tc, chunked_refuses_garbage);
    tcase_add_test(tc, chunked_emit_stops);
    tcase_add_test(tc, head_fields);
    tcase_add_test(tc, head_refused);
    tcase_add_test(tc, escape_query_values);
    tcase_add_test(tc, request_with_length);
    tcase_add_test(tc, request_chunked_and_until_close);
    tcase_add_test(tc, request_failures);
    tcase_add_test(tc, request_stops);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
