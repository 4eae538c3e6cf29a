/* console.c - tests of the console's pure parts (svc-daemon/console.c):
 * the byte queues and the replay ring against a simple model, backlog drop
 * accounting, chunk taking with its drop notice. Docker's frame parser and
 * the attach's reply are tested with hijack.c (tests/unit/daemon/hijack.c).
 */
#include "svc-daemon/console.c"
#include "svc-daemon/hijack.c"
#include "svc-daemon/uhttp.c"

#include "tests/harness/unit.h"

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

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_console");
    TCase *tc = tcase_create("console");

    tcase_add_test(tc, ring_wrap_and_tail);
    tcase_add_test(tc, ring_model);
    tcase_add_test(tc, fifo_grow_wrapped);
    tcase_add_test(tc, backlog_drop_accounting);
    tcase_add_test(tc, backlog_model);
    tcase_add_test(tc, take_with_notice);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
