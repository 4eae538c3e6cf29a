/* console.c - tests of the console's pure parts (svc-daemon/console.c):
 * Docker's frame parser under every split of its input, the byte queues
 * and the replay ring against a simple model, backlog drop accounting,
 * chunk taking with its drop notice, and the attach reply's status line.
 */
#include "svc-daemon/console.c"

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
    on_emit(want, CON_STDOUT, "hello\n", 6);
    on_emit(want, CON_STDERR, "oops", 4);
    on_emit(want, CON_STDOUT, big, longlen);
    on_emit(want, CON_STDOUT, "!\n", 2);
    on_emit(want, CON_STDERR, "x", 1);
    on_emit(want, CON_STDOUT, "in", 2);
    on_emit(want, CON_STDERR, "err", 3);
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
        con_demux d = {0};

        memset(&got, 0, sizeof(got));
        ck_assert_int_eq(con_demux_feed(&d, in, i, on_emit, &got), 0);
        ck_assert_int_eq(con_demux_feed(&d, in + i, len - i, on_emit, &got),
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
            con_demux d = {0};

            memset(&got, 0, sizeof(got));
            con_demux_feed(&d, in, i, on_emit, &got);
            con_demux_feed(&d, in + i, j - i, on_emit, &got);
            con_demux_feed(&d, in + j, len - j, on_emit, &got);
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
    con_demux d = {0};

    memset(&got, 0, sizeof(got));
    for (i = 0; i < len; i++)
        ck_assert_int_eq(con_demux_feed(&d, in + i, 1, on_emit, &got), 0);
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
    con_demux d = {0};

    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(con_demux_feed(&d, text, 3, on_emit, &got), 0);
    ck_assert_int_eq(con_demux_feed(&d, text + 3, strlen(text) - 3, on_emit,
                                    &got),
                     BERTH_EPROTO);
    ck_assert(d.raw);
    ck_assert_uint_eq(got.len, strlen(text));
    ck_assert_int_eq(memcmp(got.data, text, got.len), 0);
    ck_assert_int_eq(got.stream[0], CON_STDOUT);
    ck_assert_int_eq(con_demux_feed(&d, "more", 4, on_emit, &got), 0);
    ck_assert_uint_eq(got.len, strlen(text) + 4);

    /* A frame claiming more than CON_FRAME_MAX is not Docker's either. */
    {
        char in[32];
        size_t len = 0;
        con_demux d2 = {0};

        frame(in, &len, 1, "ok", 2);
        in[len] = 1;
        in[len + 1] = in[len + 2] = in[len + 3] = 0;
        in[len + 4] = 0x7f;
        in[len + 5] = in[len + 6] = in[len + 7] = 0;
        memset(&got, 0, sizeof(got));
        ck_assert_int_eq(con_demux_feed(&d2, in, len + 8, on_emit, &got),
                         BERTH_EPROTO);
        ck_assert_uint_eq(got.len, 2 + 8);
    }
}
END_TEST

START_TEST(demux_tty_raw)
{
    static transcript got;
    con_demux d = {.raw = true};
    char in[3] = {1, 0, 0};

    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(con_demux_feed(&d, in, sizeof(in), on_emit, &got), 0);
    ck_assert_uint_eq(got.len, 3);
    ck_assert_int_eq(got.stream[0], CON_STDOUT);
}
END_TEST

/* ---------------------------------------------------------------- ring */

START_TEST(ring_wrap_and_tail)
{
    con_fifo r;
    char out[64];

    con_fifo_init(&r, 16);
    /* Nothing is allocated before the first byte. */
    ck_assert_ptr_null(r.data);
    ck_assert_uint_eq(con_ring_tail(&r, 0, out), 0);

    ck_assert_int_eq(con_ring_append(&r, "0123456789", 10), 0);
    ck_assert_uint_eq(con_ring_tail(&r, 0, out), 10);
    ck_assert_int_eq(memcmp(out, "0123456789", 10), 0);
    ck_assert_int_eq(con_ring_append(&r, "abcdefghij", 10), 0);
    ck_assert_uint_eq(r.len, 16);
    ck_assert_uint_eq(r.cap, 16);
    ck_assert_uint_eq(con_ring_tail(&r, 0, out), 16);
    ck_assert_int_eq(memcmp(out, "456789abcdefghij", 16), 0);
    ck_assert_uint_eq(con_ring_tail(&r, 5, out), 5);
    ck_assert_int_eq(memcmp(out, "fghij", 5), 0);
    ck_assert_uint_eq(con_ring_tail(&r, 100, out), 16);

    /* More than the ring holds at once: only its newest bytes. */
    ck_assert_int_eq(
        con_ring_append(&r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 36), 0);
    ck_assert_uint_eq(con_ring_tail(&r, 0, out), 16);
    ck_assert_int_eq(memcmp(out, "UVWXYZ0123456789", 16), 0);
    con_fifo_free(&r);

    /* A 64 KiB ring that got a line holds a small allocation. */
    con_fifo_init(&r, 64 * 1024);
    ck_assert_int_eq(con_ring_append(&r, "hi\n", 3), 0);
    ck_assert_uint_le(r.cap, CON_FIFO_MIN);
    con_fifo_free(&r);
}
END_TEST

/* Random appends against the obvious model: the last max bytes of
 * everything appended. */
START_TEST(ring_model)
{
    static char all[200000], in[300], out[1000];
    size_t total = 0, max = 777;
    unsigned seed = 7;
    con_fifo r;
    int i;

    con_fifo_init(&r, max);
    for (i = 0; i < 600; i++) {
        size_t n = (size_t)(rand_r(&seed) % 300), k, want;

        for (k = 0; k < n; k++)
            in[k] = (char)rand_r(&seed);
        ck_assert_int_eq(con_ring_append(&r, in, n), 0);
        memcpy(all + total, in, n);
        total += n;
        want = total < max ? total : max;
        ck_assert_uint_eq(r.len, want);
        k = (size_t)(rand_r(&seed) % (max + 50));
        {
            size_t got = con_ring_tail(&r, k, out);
            size_t exp = k == 0 || k > want ? want : k;
            ck_assert_uint_eq(got, exp);
            ck_assert_int_eq(memcmp(out, all + total - exp, exp), 0);
        }
    }
    con_fifo_free(&r);
}
END_TEST

/* A queue that grows while wrapped keeps its order. */
START_TEST(fifo_grow_wrapped)
{
    static char in[10000], out[10000];
    con_fifo f;
    size_t i;

    for (i = 0; i < sizeof(in); i++)
        in[i] = (char)(i * 7);
    con_fifo_init(&f, 64 * 1024);
    ck_assert_int_eq(con_fifo_reserve(&f, 3000), 0);
    ck_assert_uint_eq(f.cap, CON_FIFO_MIN);
    con_fifo_push(&f, in, 3000);
    con_fifo_drop(&f, 2000);
    con_fifo_push(&f, in + 3000, 2500); /* wraps: head 2000, 3500 bytes */
    ck_assert_uint_lt(f.head, f.cap);
    ck_assert_uint_gt(f.head + f.len, f.cap);
    ck_assert_int_eq(con_fifo_reserve(&f, 9000), 0);
    con_fifo_push(&f, in + 5500, 4500);
    ck_assert_uint_eq(f.len, 8000);
    con_fifo_peek(&f, 0, out, f.len);
    ck_assert_int_eq(memcmp(out, in + 2000, 8000), 0);
    ck_assert_int_eq(con_fifo_reserve(&f, 64 * 1024 + 1), BERTH_ETOOBIG);
    con_fifo_free(&f);
    ck_assert_ptr_null(f.data);
}
END_TEST

/* ---------------------------------------------------------------- backlog */

static size_t take_str(con_backlog *b, size_t max, char *dst, int *stream)
{
    size_t n = con_backlog_take(b, max, dst, stream);

    dst[n] = '\0';
    return n;
}

START_TEST(backlog_drop_accounting)
{
    con_backlog b;
    char out[64];
    int stream = 0;

    con_backlog_init(&b, 10);
    ck_assert_uint_eq(con_backlog_add(&b, CON_STDOUT, "abcdef", 6), 0);
    ck_assert_uint_eq(con_backlog_add(&b, CON_STDERR, "ghij", 4), 0);
    ck_assert_uint_eq(con_backlog_add(&b, CON_STDOUT, "kl", 2), 2);
    ck_assert_uint_eq(b.bytes.len, 10);
    ck_assert_uint_eq(b.runs_len, 3);

    ck_assert_uint_eq(take_str(&b, 3, out, &stream), 3);
    ck_assert_str_eq(out, "cde");
    ck_assert_int_eq(stream, CON_STDOUT);
    ck_assert_uint_eq(take_str(&b, 100, out, &stream), 1);
    ck_assert_str_eq(out, "f");
    ck_assert_uint_eq(take_str(&b, 100, out, &stream), 4);
    ck_assert_str_eq(out, "ghij");
    ck_assert_int_eq(stream, CON_STDERR);
    /* Same-stream additions coalesce into one chunk. */
    ck_assert_uint_eq(con_backlog_add(&b, CON_STDOUT, "mn", 2), 0);
    ck_assert_uint_eq(take_str(&b, 100, out, &stream), 4);
    ck_assert_str_eq(out, "klmn");
    ck_assert_uint_eq(con_backlog_take(&b, 100, out, &stream), 0);

    /* More than the cap at once: its oldest part and everything held. */
    ck_assert_uint_eq(con_backlog_add(&b, CON_STDERR, "xyz", 3), 0);
    ck_assert_uint_eq(
        con_backlog_add(&b, CON_STDOUT, "0123456789ABCDEFGHIJKLMNO", 25),
        15 + 3);
    ck_assert_uint_eq(take_str(&b, 100, out, &stream), 10);
    ck_assert_str_eq(out, "FGHIJKLMNO");
    ck_assert_int_eq(stream, CON_STDOUT);
    con_backlog_free(&b);

    /* Past CON_RUNS_MAX stream changes the oldest run goes, counted. */
    con_backlog_init(&b, 1 << 20);
    {
        uint64_t dropped = 0;
        int i;

        for (i = 0; i < CON_RUNS_MAX + 10; i++)
            dropped += con_backlog_add(&b, i % 2 ? CON_STDERR : CON_STDOUT,
                                       "ab", 2);
        ck_assert_uint_eq(dropped, 20);
        ck_assert_uint_eq(b.runs_len, CON_RUNS_MAX);
        ck_assert_uint_eq(b.bytes.len, 2 * CON_RUNS_MAX);
    }
    con_backlog_free(&b);
}
END_TEST

/* Random adds and takes: every byte added is taken or counted as dropped,
 * and what is taken is the newest part, in order, with its stream. */
START_TEST(backlog_model)
{
    static char model[1 << 16], in[400], out[400];
    static int mstream[1 << 16];
    size_t mlen = 0, max = 5000, i;
    uint64_t added = 0, taken = 0, dropped = 0;
    unsigned seed = 11;
    con_backlog b;
    int round;

    con_backlog_init(&b, max);
    for (round = 0; round < 5000; round++) {
        if (rand_r(&seed) % 3 != 0) {
            size_t n = (size_t)(rand_r(&seed) % 400);
            int stream = 1 + rand_r(&seed) % 3;
            uint64_t d;

            for (i = 0; i < n; i++)
                in[i] = (char)rand_r(&seed);
            d = con_backlog_add(&b, stream, in, n);
            added += n;
            dropped += d;
            for (i = 0; i < n; i++) {
                model[mlen] = in[i];
                mstream[mlen++] = stream;
            }
            if (mlen > max) {
                size_t cut = mlen - max;
                ck_assert_uint_eq(d, cut);
                memmove(model, model + cut, max);
                memmove(mstream, mstream + cut, max * sizeof(int));
                mlen = max;
            } else {
                ck_assert_uint_eq(d, 0);
            }
        } else {
            size_t max_take = 1 + (size_t)(rand_r(&seed) % 399), n, run = 0;
            int stream = 0;

            while (run < mlen && run < max_take && mstream[run] == mstream[0])
                run++;
            n = con_backlog_take(&b, max_take, out, &stream);
            ck_assert_uint_eq(n, run);
            if (n > 0) {
                ck_assert_int_eq(stream, mstream[0]);
                ck_assert_int_eq(memcmp(out, model, n), 0);
            }
            memmove(model, model + n, mlen - n);
            memmove(mstream, mstream + n, (mlen - n) * sizeof(int));
            mlen -= n;
            taken += n;
        }
        ck_assert_uint_eq(b.bytes.len, mlen);
        ck_assert_uint_eq(added, taken + dropped + mlen);
    }
    con_backlog_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- chunks */

/* A console with what con_site_get() and con_take() use; no thread, no
 * bus. */
static daemon_console *bare_console(size_t chunk, size_t backlog)
{
    daemon_console *c = calloc(1, sizeof(*c));

    ck_assert_ptr_nonnull(c);
    pthread_mutex_init(&c->mu, NULL);
    c->ring_bytes = DAEMON_CONSOLE_RING_DEFAULT;
    c->chunk_bytes = chunk;
    c->backlog_max = backlog;
    c->input_max = 64;
    c->cbuf = malloc(chunk);
    c->epfd = c->evfd = -1;
    return c;
}

START_TEST(take_with_notice)
{
    daemon_console *c = bare_console(4, 8);
    con_site *s = NULL, *t = NULL;
    con_out o;

    ck_assert_int_eq(con_site_get(c, "site-b", &s), 0);
    ck_assert_int_eq(con_site_get(c, "site-a", &t), 0);
    ck_assert_int_eq(con_site_get(c, "site-b", &s), 0);
    ck_assert_uint_eq(c->nsites, 2);
    ck_assert_str_eq(c->sites[0]->id, "site-a");
    /* A site that printed nothing holds no buffers. */
    ck_assert_ptr_null(s->ring.data);
    ck_assert_ptr_null(s->backlog.bytes.data);
    ck_assert_ptr_null(s->input.data);
    ck_assert(!con_site_pending(s));

    con_site_output(s, CON_STDOUT, "0123456789", 10);
    ck_assert_uint_eq(s->dropped, 2);
    ck_assert(con_site_pending(s));
    ck_assert_ptr_eq(con_next_pending(c, ""), s);
    ck_assert_ptr_null(con_next_pending(c, "site-b"));

    con_take(c, s, &o);
    ck_assert_uint_eq(o.dropped, 2);
    ck_assert_str_eq(o.notice, "[berth] 2 bytes of output dropped\r\n");
    ck_assert_uint_eq(o.notice_len, strlen(o.notice));
    ck_assert_uint_eq(o.len, 4);
    ck_assert_int_eq(memcmp(c->cbuf, "2345", 4), 0);
    ck_assert_int_eq(o.stream, CON_STDOUT);
    ck_assert_uint_eq(o.seq, 0);
    ck_assert_uint_eq(s->dropped, 0);

    con_take(c, s, &o);
    ck_assert_uint_eq(o.dropped, 0);
    ck_assert_uint_eq(o.len, 4);
    ck_assert_int_eq(memcmp(c->cbuf, "6789", 4), 0);
    ck_assert(!con_site_pending(s));

    con_site_unplug(c, s);
    con_site_free(c->sites[0]);
    con_site_free(c->sites[1]);
    free(c->sites);
    free(c->cbuf);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
END_TEST

/* ---------------------------------------------------------------- attach */

START_TEST(http_status_line)
{
    const char *ok = "HTTP/1.1 101 UPGRADED\r\n";

    ck_assert_int_eq(con_http_status(ok, strlen(ok)), 101);
    ck_assert_int_eq(con_http_status("HTTP/1.0 404 Not Found\r\n", 24), 404);
    ck_assert_int_eq(con_http_status("HTTP/1.1 200\r\n", 14), 200);
    ck_assert_int_eq(con_http_status("HTTP/2 200 OK\r\n\r\n", 17), -1);
    ck_assert_int_eq(con_http_status("HTTP/1.1 20x OK\r\n", 17), -1);
    ck_assert_int_eq(con_http_status("HTTP/1.1 2000 OK\r\n", 18), -1);
    ck_assert_int_eq(con_http_status("HTTP/1.1 20", 11), -1);
    ck_assert_int_eq(con_http_status("", 0), -1);
}
END_TEST

START_TEST(container_refs)
{
    char longref[200];

    ck_assert(con_valid_ref("berth-test_1.x"));
    ck_assert(con_valid_ref(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    ck_assert(!con_valid_ref(""));
    ck_assert(!con_valid_ref(NULL));
    ck_assert(!con_valid_ref("../x"));
    ck_assert(!con_valid_ref("a b"));
    ck_assert(!con_valid_ref("a?b=1"));
    memset(longref, 'a', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = '\0';
    ck_assert(!con_valid_ref(longref));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_console");
    TCase *tc = tcase_create("console");

    tcase_add_test(tc, demux_every_split);
    tcase_add_test(tc, demux_every_two_splits);
    tcase_add_test(tc, demux_byte_by_byte);
    tcase_add_test(tc, demux_not_multiplexed);
    tcase_add_test(tc, demux_tty_raw);
    tcase_add_test(tc, ring_wrap_and_tail);
    tcase_add_test(tc, ring_model);
    tcase_add_test(tc, fifo_grow_wrapped);
    tcase_add_test(tc, backlog_drop_accounting);
    tcase_add_test(tc, backlog_model);
    tcase_add_test(tc, take_with_notice);
    tcase_add_test(tc, http_status_line);
    tcase_add_test(tc, container_refs);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
