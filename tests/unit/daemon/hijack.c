/* hijack.c - tests of svc-daemon/hijack.c without Docker: the frame
 * demultiplexer under every split of its input, a stream that is not
 * multiplexed, the reply's status line, the references accepted in paths,
 * and a dial against a stand-in engine on a unix socket (the request as
 * written, early stream bytes, error statuses, a silent peer).
 */
#include "svc-daemon/hijack.c"
#include "svc-daemon/uhttp.c"

#include <pthread.h>
#include <stdlib.h>

#include "tests/harness/unit.h"

/* ---------------------------------------------------------------- helpers */

/* What a demultiplexer emitted: bytes with the stream of each, adjacent
 * pieces of one stream merged, so any split of the input compares equal. */
typedef struct transcript {
    char data[8192];
    int stream[8192];
    size_t len;
    int pieces;
} transcript;

static void on_emit(void *arg, int stream, const char *p, size_t n)
{
    transcript *t = arg;
    size_t i;

    ck_assert_uint_gt(n, 0);
    ck_assert_uint_le(t->len + n, sizeof(t->data));
    for (i = 0; i < n; i++) {
        t->data[t->len] = p[i];
        t->stream[t->len] = stream;
        t->len++;
    }
    t->pieces++;
}

static void frame(char *dst, size_t *len, int stream, const char *p, size_t n)
{
    unsigned char *h = (unsigned char *)dst + *len;

    h[0] = (unsigned char)stream;
    h[1] = h[2] = h[3] = 0;
    h[4] = (unsigned char)(n >> 24);
    h[5] = (unsigned char)(n >> 16);
    h[6] = (unsigned char)(n >> 8);
    h[7] = (unsigned char)n;
    memcpy(dst + *len + 8, p, n);
    *len += 8 + n;
}

/* A multi-frame stream: every stream type, an empty frame, a long one. */
static size_t sample(char *dst, transcript *want, size_t longlen)
{
    char big[2048];
    size_t len = 0, i;

    for (i = 0; i < longlen; i++)
        big[i] = (char)('a' + i % 26);
    frame(dst, &len, 1, "hello\n", 6);
    frame(dst, &len, 2, "oops", 4);
    frame(dst, &len, 1, "", 0);
    frame(dst, &len, 1, big, longlen);
    frame(dst, &len, 1, "!\n", 2);
    frame(dst, &len, 2, "x", 1);
    frame(dst, &len, 0, "in", 2);
    frame(dst, &len, 3, "err", 3);

    memset(want, 0, sizeof(*want));
    on_emit(want, DAEMON_DEMUX_STDOUT, "hello\n", 6);
    on_emit(want, DAEMON_DEMUX_STDERR, "oops", 4);
    on_emit(want, DAEMON_DEMUX_STDOUT, big, longlen);
    on_emit(want, DAEMON_DEMUX_STDOUT, "!\n", 2);
    on_emit(want, DAEMON_DEMUX_STDERR, "x", 1);
    on_emit(want, DAEMON_DEMUX_STDOUT, "in", 2);
    on_emit(want, DAEMON_DEMUX_STDERR, "err", 3);
    return len;
}

static void same(const transcript *a, const transcript *b)
{
    ck_assert_uint_eq(a->len, b->len);
    ck_assert_int_eq(memcmp(a->data, b->data, a->len), 0);
    ck_assert_int_eq(memcmp(a->stream, b->stream, a->len * sizeof(int)), 0);
}

/* ---------------------------------------------------------------- frames */

START_TEST(demux_every_split)
{
    static char in[4096];
    static transcript want, got;
    size_t len = sample(in, &want, 1000), i;

    for (i = 0; i <= len; i++) {
        daemon_demux d = {0};

        memset(&got, 0, sizeof(got));
        ck_assert_int_eq(daemon_demux_feed(&d, in, i, on_emit, &got), 0);
        ck_assert_int_eq(daemon_demux_feed(&d, in + i, len - i, on_emit, &got),
                         0);
        same(&got, &want);
        ck_assert_uint_eq(d.have, 0);
        ck_assert_uint_eq(d.left, 0);
    }
}
END_TEST

START_TEST(demux_every_two_splits)
{
    static char in[4096];
    static transcript want, got;
    size_t len = sample(in, &want, 40), i, j;

    for (i = 0; i <= len; i++) {
        for (j = i; j <= len; j++) {
            daemon_demux d = {0};

            memset(&got, 0, sizeof(got));
            daemon_demux_feed(&d, in, i, on_emit, &got);
            daemon_demux_feed(&d, in + i, j - i, on_emit, &got);
            daemon_demux_feed(&d, in + j, len - j, on_emit, &got);
            same(&got, &want);
        }
    }
}
END_TEST

START_TEST(demux_byte_by_byte)
{
    static char in[4096];
    static transcript want, got;
    size_t len = sample(in, &want, 1500), i;
    daemon_demux d = {0};

    memset(&got, 0, sizeof(got));
    for (i = 0; i < len; i++)
        ck_assert_int_eq(daemon_demux_feed(&d, in + i, 1, on_emit, &got), 0);
    same(&got, &want);
    /* One piece per payload byte: nothing is held back to be whole. */
    ck_assert_int_eq(got.pieces, (int)want.len);
}
END_TEST

/* A stream that is not multiplexed (a TTY container attached as if it were
 * not) passes through raw from the first bad header on. */
START_TEST(demux_not_multiplexed)
{
    static transcript got;
    const char *text = "plain text from a terminal\r\n";
    daemon_demux d = {0};

    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(daemon_demux_feed(&d, text, 3, on_emit, &got), 0);
    ck_assert_int_eq(daemon_demux_feed(&d, text + 3, strlen(text) - 3, on_emit,
                                    &got),
                     BERTH_EPROTO);
    ck_assert(d.raw);
    ck_assert_uint_eq(got.len, strlen(text));
    ck_assert_int_eq(memcmp(got.data, text, got.len), 0);
    ck_assert_int_eq(got.stream[0], DAEMON_DEMUX_STDOUT);
    ck_assert_int_eq(daemon_demux_feed(&d, "more", 4, on_emit, &got), 0);
    ck_assert_uint_eq(got.len, strlen(text) + 4);

    /* A frame claiming more than DAEMON_DEMUX_FRAME_MAX is not Docker's either. */
    {
        char in[32];
        size_t len = 0;
        daemon_demux d2 = {0};

        frame(in, &len, 1, "ok", 2);
        in[len] = 1;
        in[len + 1] = in[len + 2] = in[len + 3] = 0;
        in[len + 4] = 0x7f;
        in[len + 5] = in[len + 6] = in[len + 7] = 0;
        memset(&got, 0, sizeof(got));
        ck_assert_int_eq(daemon_demux_feed(&d2, in, len + 8, on_emit, &got),
                         BERTH_EPROTO);
        ck_assert_uint_eq(got.len, 2 + 8);
    }
}
END_TEST

START_TEST(demux_tty_raw)
{
    static transcript got;
    daemon_demux d = {.raw = true};
    char in[3] = {1, 0, 0};

    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(daemon_demux_feed(&d, in, sizeof(in), on_emit, &got), 0);
    ck_assert_uint_eq(got.len, 3);
    ck_assert_int_eq(got.stream[0], DAEMON_DEMUX_STDOUT);
}
END_TEST

/* ---------------------------------------------------------------- requests */

START_TEST(http_status_line)
{
    const char *ok = "HTTP/1.1 101 UPGRADED\r\n";

    ck_assert_int_eq(daemon_hijack_http_status(ok, strlen(ok)), 101);
    ck_assert_int_eq(
        daemon_hijack_http_status("HTTP/1.0 404 Not Found\r\n", 24), 404);
    ck_assert_int_eq(daemon_hijack_http_status("HTTP/1.1 200\r\n", 14), 200);
    ck_assert_int_eq(
        daemon_hijack_http_status("HTTP/2 200 OK\r\n\r\n", 17), -1);
    ck_assert_int_eq(
        daemon_hijack_http_status("HTTP/1.1 20x OK\r\n", 17), -1);
    ck_assert_int_eq(
        daemon_hijack_http_status("HTTP/1.1 2000 OK\r\n", 18), -1);
    ck_assert_int_eq(daemon_hijack_http_status("HTTP/1.1 20", 11), -1);
    ck_assert_int_eq(daemon_hijack_http_status("", 0), -1);
}
END_TEST

START_TEST(container_refs)
{
    char longref[200];

    ck_assert(daemon_hijack_valid_ref("berth-test_1.x"));
    ck_assert(daemon_hijack_valid_ref(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    ck_assert(!daemon_hijack_valid_ref(""));
    ck_assert(!daemon_hijack_valid_ref(NULL));
    ck_assert(!daemon_hijack_valid_ref("../x"));
    ck_assert(!daemon_hijack_valid_ref("a b"));
    ck_assert(!daemon_hijack_valid_ref("a?b=1"));
    memset(longref, 'a', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = '\0';
    ck_assert(!daemon_hijack_valid_ref(longref));
}
END_TEST


/* ---------------------------------------------------------------- dial */

/* A stand-in engine: accepts one connection on a unix socket, keeps the
 * request, answers reply (NULL: never answers), then echoes what comes
 * until the peer half-closes, and says so. */
typedef struct engine {
    char dir[64];
    char path[96];
    int lfd;
    const char *reply;
    char req[4096];
    size_t reqlen;
    char echoed[256];
    size_t echolen;
    bool saw_eof;
    pthread_t thread;
} engine;

static void *engine_main(void *arg)
{
    engine *e = arg;
    int fd = accept(e->lfd, NULL, NULL);
    ssize_t n;

    if (fd < 0)
        return NULL;
    /* The request is small: headers and body come in a few reads. */
    while (e->reqlen < sizeof(e->req) - 1) {
        const char *end;

        n = read(fd, e->req + e->reqlen, sizeof(e->req) - 1 - e->reqlen);
        if (n <= 0)
            break;
        e->reqlen += (size_t)n;
        e->req[e->reqlen] = '\0';
        end = strstr(e->req, "\r\n\r\n");
        if (end != NULL &&
            (strstr(e->req, "Content-Length: 0\r\n") != NULL ||
             e->reqlen > (size_t)(end - e->req) + 4))
            break;
    }
    if (e->reply == NULL) {
        clock_sleep_ms(1000);
        close(fd);
        return NULL;
    }
    ck_assert_int_eq(write(fd, e->reply, strlen(e->reply)),
                     (ssize_t)strlen(e->reply));
    while ((n = read(fd, e->echoed + e->echolen,
                     sizeof(e->echoed) - e->echolen)) > 0) {
        ck_assert_int_eq(write(fd, e->echoed + e->echolen, (size_t)n), n);
        e->echolen += (size_t)n;
    }
    e->saw_eof = n == 0;
    close(fd);
    return NULL;
}

static void engine_start(engine *e, const char *reply)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/berth-hijack-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/docker.sock", e->dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->path);
    e->reply = reply;
    e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(e->lfd, 0);
    ck_assert_int_eq(bind(e->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(e->lfd, 4), 0);
    ck_assert_int_eq(pthread_create(&e->thread, NULL, engine_main, e), 0);
}

static void engine_stop(engine *e)
{
    pthread_join(e->thread, NULL);
    close(e->lfd);
    unlink(e->path);
    rmdir(e->dir);
}

START_TEST(dial_upgrades_with_body)
{
    engine e;
    char early[DAEMON_HIJACK_HDR_MAX], why[256], back[16];
    size_t nearly = 0, got = 0;
    int fd = -1;

    engine_start(&e, "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n"
                     "Upgrade: tcp\r\n\r\nearly bytes");
    ck_assert_int_eq(daemon_hijack_dial(
                         &(daemon_hijack_req){.sock_path = e.path,
                                              .path = "/v1.41/exec/ab_1/start",
                                              .body = "{\"Tty\":false}"},
                         &fd, early, &nearly, why, sizeof(why)),
                     0);
    ck_assert_int_ge(fd, 0);
    ck_assert_uint_eq(nearly, 11);
    ck_assert_int_eq(memcmp(early, "early bytes", 11), 0);
    /* The stream runs both ways and half-closes. */
    ck_assert_int_eq(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    while (got < sizeof(back)) {
        ssize_t n;

        ck_assert_int_eq(
            daemon_hijack_wait_fd(fd, POLLIN, clock_mono_ms() + 5000), 0);
        n = read(fd, back + got, sizeof(back) - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    engine_stop(&e);
    ck_assert_uint_eq(got, 4);
    ck_assert_int_eq(memcmp(back, "ping", 4), 0);
    ck_assert(e.saw_eof);
    ck_assert_str_eq(e.req, "POST /v1.41/exec/ab_1/start HTTP/1.1\r\n"
                            "Host: docker\r\nConnection: Upgrade\r\n"
                            "Upgrade: tcp\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: 13\r\n\r\n{\"Tty\":false}");
}
END_TEST

START_TEST(dial_without_body)
{
    engine e;
    char early[DAEMON_HIJACK_HDR_MAX], why[256];
    size_t nearly = 1;
    int fd = -1;

    engine_start(&e, "HTTP/1.1 200 OK\r\n\r\n");
    ck_assert_int_eq(daemon_hijack_dial(
                         &(daemon_hijack_req){.sock_path = e.path,
                                              .path = "/containers/x/attach"},
                         &fd, early, &nearly, why, sizeof(why)),
                     0);
    ck_assert_uint_eq(nearly, 0);
    shutdown(fd, SHUT_WR);
    close(fd);
    engine_stop(&e);
    ck_assert_ptr_nonnull(strstr(e.req, "Content-Length: 0\r\n\r\n"));
    ck_assert_ptr_null(strstr(e.req, "Content-Type"));
}
END_TEST

START_TEST(dial_errors)
{
    static const struct {
        const char *reply;
        int rc;
        const char *why;
    } cases[] = {
        {"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n"
         "{\"message\":\"No such exec instance: x\"}\n",
         BERTH_ENOENT, "No such exec instance: x"},
        {"HTTP/1.1 409 Conflict\r\n\r\n{\"message\":\"is paused\"}",
         BERTH_ECONFLICT, "409"},
        {"HTTP/1.1 400 Bad Request\r\n\r\n", BERTH_EINVAL, "400"},
        {"HTTP/1.1 500 Internal Server Error\r\n\r\n", BERTH_EIO, "500"},
        {"HTTP/1.1 302 Found\r\n\r\n", BERTH_EPROTO, "302"},
        {"SSH-2.0-nope\r\n\r\n", BERTH_EPROTO, "-1"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        engine e;
        char early[DAEMON_HIJACK_HDR_MAX], why[256];
        size_t nearly = 0;
        int fd = 7;

        engine_start(&e, cases[i].reply);
        ck_assert_int_eq(
            daemon_hijack_dial(&(daemon_hijack_req){.sock_path = e.path,
                                                    .path = "/exec/x/start"},
                               &fd, early, &nearly, why, sizeof(why)),
            cases[i].rc);
        ck_assert_int_eq(fd, -1);
        ck_assert_msg(strstr(why, cases[i].why) != NULL, "why: %s", why);
        engine_stop(&e);
    }
}
END_TEST

START_TEST(dial_silent_engine_and_no_engine)
{
    engine e;
    char early[DAEMON_HIJACK_HDR_MAX], why[256];
    size_t nearly = 0;
    int64_t t0;
    int fd = 7;

    engine_start(&e, NULL);
    t0 = clock_mono_ms();
    ck_assert_int_eq(
        daemon_hijack_dial(&(daemon_hijack_req){.sock_path = e.path,
                                                .path = "/exec/x/start",
                                                .timeout_ms = 200},
                           &fd, early, &nearly, why, sizeof(why)),
        BERTH_ETIMEDOUT);
    ck_assert_int_lt(clock_mono_ms() - t0, 900);
    ck_assert_int_eq(fd, -1);
    engine_stop(&e);

    ck_assert_int_eq(
        daemon_hijack_dial(&(daemon_hijack_req){.sock_path = e.path,
                                                .path = "/exec/x/start"},
                           &fd, early, &nearly, why, sizeof(why)),
        BERTH_EUNAVAIL);
    ck_assert_ptr_nonnull(strstr(why, e.path));
    /* Paths that the request line cannot carry are refused unsent. */
    ck_assert_int_eq(
        daemon_hijack_dial(&(daemon_hijack_req){.sock_path = e.path,
                                                .path = "/exec/a b/start"},
                           &fd, early, &nearly, why, sizeof(why)),
        BERTH_EINVAL);
    ck_assert_int_eq(
        daemon_hijack_dial(&(daemon_hijack_req){.sock_path = e.path,
                                                .path = "exec"},
                           &fd, early, &nearly, why, sizeof(why)),
        BERTH_EINVAL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_hijack");
    TCase *tc = tcase_create("hijack");

    tcase_add_test(tc, demux_every_split);
    tcase_add_test(tc, demux_every_two_splits);
    tcase_add_test(tc, demux_byte_by_byte);
    tcase_add_test(tc, demux_not_multiplexed);
    tcase_add_test(tc, demux_tty_raw);
    tcase_add_test(tc, http_status_line);
    tcase_add_test(tc, container_refs);
    tcase_add_test(tc, dial_upgrades_with_body);
    tcase_add_test(tc, dial_without_body);
    tcase_add_test(tc, dial_errors);
    tcase_add_test(tc, dial_silent_engine_and_no_engine);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
