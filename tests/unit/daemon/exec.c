/* exec.c - tests of the shell sessions' parts that need no Docker and no
 * NATS (svc-daemon/exec.c): the input queue against a model, ShellOpen
 * validation, the credit both ways as shell.in's handler and the I/O
 * thread's input flush keep it (over a socketpair standing in for Docker's
 * connection), eof, and the pid check before a kill.
 */
#include "svc-daemon/docker.c"
#include "svc-daemon/uhttp.c"
#include "svc-daemon/exec.c"
#include "svc-daemon/hijack.c"

#include <sys/wait.h>

#include "tests/harness/unit.h"

#define W (1024u * 1024)

/* ---------------------------------------------------------------- queue */

START_TEST(queue_model)
{
    static char model[W];
    ex_queue q = {.max = 64 * 1024};
    size_t mlen = 0, i;
    char chunk[5000];

    srand(7);
    for (i = 0; i < 20000; i++) {
        size_t n = (size_t)rand() % sizeof(chunk);
        size_t k;

        if (rand() % 2) {
            memset(chunk, (int)(i & 0xff), n);
            if (mlen + n > q.max) {
                ck_assert_int_eq(ex_queue_push(&q, chunk, n), BERTH_ETOOBIG);
                continue;
            }
            ck_assert_int_eq(ex_queue_push(&q, chunk, n), 0);
            memcpy(model + mlen, chunk, n);
            mlen += n;
        } else {
            k = mlen == 0 ? 0 : (size_t)rand() % (mlen + 1);
            if (k > 0)
                ck_assert_int_eq(memcmp(q.data + q.off, model, k), 0);
            ex_queue_drop(&q, k);
            memmove(model, model + k, mlen - k);
            mlen -= k;
        }
        ck_assert_uint_eq(q.len, mlen);
        ck_assert_uint_le(q.cap, q.max);
        ck_assert_uint_le(q.off + q.len, q.cap);
    }
    ex_queue_free(&q);
}
END_TEST

/* ---------------------------------------------------------------- open */

START_TEST(open_validation)
{
    Berth__V1__ShellOpen r = BERTH__V1__SHELL_OPEN__INIT;
    Berth__V1__ShellOpen__EnvEntry e = BERTH__V1__SHELL_OPEN__ENV_ENTRY__INIT;
    Berth__V1__ShellOpen__EnvEntry *ep[] = {&e};
    char *cmd[] = {"ls", "-l"}, *empty[] = {""};
    static char big[EX_STRINGS_MAX + 10];
    char why[256];

    r.session_id = "6f1c2f9e-4b7a-4c51-9d3e-2a9f0e8b7c61";
    r.site_id = "blog";
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), 0);
    r.n_command = 2;
    r.command = cmd;
    r.tty = true;
    r.cols = 200;
    r.rows = 50;
    e.key = "LANG";
    e.value = "C.UTF-8";
    r.n_env = 1;
    r.env = ep;
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), 0);

    r.session_id = "not-a-uuid";
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    r.session_id = "6f1c2f9e-4b7a-4c51-9d3e-2a9f0e8b7c61";
    r.site_id = "a.b";
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    r.site_id = "blog";
    r.cols = EX_DIM_MAX + 1;
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    r.cols = 80;
    r.command = empty;
    r.n_command = 1;
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    r.command = cmd;
    e.key = "1ABC";
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    e.key = "A=B";
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    e.key = "";
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    e.key = "BIG";
    memset(big, 'x', sizeof(big) - 1);
    e.value = big;
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), BERTH_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "larger than"));
    e.value = "";
    ck_assert_int_eq(ex_validate(&r, why, sizeof(why)), 0);
}
END_TEST

/* ---------------------------------------------------------------- credit */

/* A module with one live session whose connection is one end of a
 * socketpair (peer: the other end, standing in for Docker). No threads:
 * the test plays the I/O thread. */
typedef struct rig {
    daemon_exec *x;
    ex_gate g;
    ex_session *s;
    int peer;
} rig;

static void rig_new(rig *r, bool tty)
{
    int sv[2];

    memset(r, 0, sizeof(*r));
    r->x = calloc(1, sizeof(*r->x));
    ck_assert_ptr_nonnull(r->x);
    pthread_mutex_init(&r->x->mu, NULL);
    pthread_cond_init(&r->x->work, NULL);
    r->x->window = W;
    r->x->max_sessions = 4;
    r->x->max_per_site = 4;
    r->x->timeout_ms = 60000;
    snprintf(r->x->node, sizeof(r->x->node), "n1");
    r->x->sessions = calloc(4, sizeof(*r->x->sessions));
    r->x->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->x->epfd = epoll_create1(EPOLL_CLOEXEC);
    pthread_rwlock_init(&r->g.lock, NULL);
    r->g.x = r->x;
    r->s = calloc(1, sizeof(*r->s));
    snprintf(r->s->id, sizeof(r->s->id), "6f1c2f9e-4b7a-4c51-9d3e-2a9f0e8b7c61");
    snprintf(r->s->site, sizeof(r->s->site), "blog");
    r->s->tty = tty;
    r->s->state = EX_LIVE;
    r->s->credit = W;
    r->s->input.max = W;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    r->s->fd = sv[0];
    r->peer = sv[1];
    ck_assert_int_eq(ex_insert(r->x, r->s), 0);
}

static void rig_free(rig *r)
{
    ex_session_free(r->s);
    close(r->peer);
    close(r->x->evfd);
    close(r->x->epfd);
    free(r->x->sessions);
    pthread_mutex_destroy(&r->x->mu);
    pthread_cond_destroy(&r->x->work);
    free(r->x);
}

/* Delivers a ShellData from the shell to shell.in's handler. */
static void rig_in(rig *r, const char *session, const void *p, size_t n,
                   bool eof, uint32_t window)
{
    Berth__V1__ShellData d = BERTH__V1__SHELL_DATA__INIT;
    char subject[200];
    bus_msg m = {0};

    snprintf(subject, sizeof(subject), "shell.in.n1.%s", session);
    d.data.data = (uint8_t *)p;
    d.data.len = n;
    d.eof = eof;
    d.window = window;
    m.subject = subject;
    m.msg = &d.base;
    ex_on_in(&m, &r->g);
}

/* Reads everything the peer has; returns how many bytes. */
static size_t drain_peer(rig *r)
{
    static char sink[256 * 1024];
    size_t total = 0;
    ssize_t n;

    while ((n = read(r->peer, sink, sizeof(sink))) > 0)
        total += (size_t)n;
    return total;
}

START_TEST(output_credit_adds_up)
{
    rig r;

    rig_new(&r, false);
    r.s->credit = 0;
    rig_in(&r, r.s->id, NULL, 0, false, 1000);
    ck_assert_uint_eq(r.s->credit, 1000);
    rig_in(&r, r.s->id, NULL, 0, false, UINT32_MAX);
    rig_in(&r, r.s->id, NULL, 0, false, UINT32_MAX);
    ck_assert_uint_eq(r.s->credit, EX_CREDIT_MAX);
    /* Another session, or the wrong session_id in the body: ignored. */
    rig_in(&r, "0f1c2f9e-4b7a-4c51-9d3e-2a9f0e8b7c61", "x", 1, false, 0);
    ck_assert_uint_eq(r.s->input.len, 0);
    rig_free(&r);
}
END_TEST

/* The shell may have a window of input outstanding: queued here or
 * written and not yet given back. One byte more ends the session. */
START_TEST(input_window_and_grants)
{
    static char data[W];
    uint64_t granted = 0, g;
    size_t written = 0;
    rig r;

    rig_new(&r, false);
    memset(data, 'a', sizeof(data));
    rig_in(&r, r.s->id, data, W, false, 0);
    ck_assert_uint_eq(r.s->input.len, W);
    ck_assert(!r.s->closing);
    /* The connection takes what its buffers hold; a grant comes once a
     * quarter window is written. */
    pthread_mutex_lock(&r.x->mu);
    g = ex_flush_input(r.x, r.s);
    pthread_mutex_unlock(&r.x->mu);
    granted += g;
    ck_assert(r.s->out_blocked || r.s->input.len == 0);
    while (r.s->input.len > 0) {
        written += drain_peer(&r);
        pthread_mutex_lock(&r.x->mu);
        granted += ex_flush_input(r.x, r.s);
        pthread_mutex_unlock(&r.x->mu);
    }
    written += drain_peer(&r);
    ck_assert_uint_eq(written, W);
    ck_assert_uint_eq(granted + r.s->in_written, W);
    ck_assert_uint_lt(r.s->in_written, W / 4);
    /* Room now: the window less what is not given back yet. */
    rig_in(&r, r.s->id, data, W - r.s->in_written, false, 0);
    ck_assert(!r.s->closing);
    rig_in(&r, r.s->id, data, 1, false, 0);
    ck_assert(r.s->closing);
    ck_assert_str_eq(r.s->reason, "input beyond the window");
    rig_free(&r);
}
END_TEST

START_TEST(eof_closes_stdin_after_the_input)
{
    char buf2[16];
    ssize_t n;
    rig r;

    rig_new(&r, false);
    rig_in(&r, r.s->id, "abc", 3, true, 0);
    rig_in(&r, r.s->id, "late", 4, false, 0); /* after eof: dropped */
    pthread_mutex_lock(&r.x->mu);
    ex_flush_input(r.x, r.s);
    pthread_mutex_unlock(&r.x->mu);
    ck_assert(r.s->wr_shut);
    n = read(r.peer, buf2, sizeof(buf2));
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(memcmp(buf2, "abc", 3), 0);
    ck_assert_int_eq(read(r.peer, buf2, sizeof(buf2)), 0); /* half-closed */
    rig_free(&r);

    /* A terminal has no end of input. */
    rig_new(&r, true);
    rig_in(&r, r.s->id, "exit\n", 5, true, 0);
    rig_in(&r, r.s->id, "x", 1, false, 0);
    pthread_mutex_lock(&r.x->mu);
    ex_flush_input(r.x, r.s);
    pthread_mutex_unlock(&r.x->mu);
    ck_assert(!r.s->wr_shut);
    ck_assert_int_eq(read(r.peer, buf2, sizeof(buf2)), 6);
    rig_free(&r);
}
END_TEST

START_TEST(table_caps)
{
    rig r;
    ex_session a = {.site = "blog"}, c = {.site = "other"};
    ex_session d = {.site = "blog"};
    ex_session e = {.site = "blog"};

    rig_new(&r, false);
    snprintf(a.id, sizeof(a.id), "%s", r.s->id);
    ck_assert_int_eq(ex_insert(r.x, &a), BERTH_EEXIST);
    r.x->max_per_site = 2;
    snprintf(d.id, sizeof(d.id), "1f1c2f9e-4b7a-4c51-9d3e-2a9f0e8b7c61");
    ck_assert_int_eq(ex_insert(r.x, &d), 0);
    snprintf(e.id, sizeof(e.id), "2f1c2f9e-4b7a-4c51-9d3e-2a9f0e8b7c61");
    ck_assert_int_eq(ex_insert(r.x, &e), BERTH_ETOOBIG);
    snprintf(c.id, sizeof(c.id), "3f1c2f9e-4b7a-4c51-9d3e-2a9f0e8b7c61");
    ck_assert_int_eq(ex_insert(r.x, &c), 0);
    ck_assert_ptr_eq(ex_find(r.x, c.id), &c);
    ex_remove(r.x, &c);
    ex_remove(r.x, &d);
    ck_assert_ptr_null(ex_find(r.x, c.id));
    ck_assert_uint_eq(r.x->nsessions, 1);
    rig_free(&r);
}
END_TEST

/* ---------------------------------------------------------------- kill */

START_TEST(signal_checks_the_namespace)
{
    pid_t child = fork();
    int st;

    ck_assert_int_ge(child, 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    /* Never init itself, nor a pid given as its own init. */
    ck_assert_int_eq(ex_signal(1, 1, SIGTERM), BERTH_EINVAL);
    ck_assert_int_eq(ex_signal(child, child, SIGTERM), BERTH_EINVAL);
    ck_assert_int_eq(ex_signal(0, 1, SIGTERM), BERTH_EINVAL);
    /* A pid that does not exist. */
    ck_assert_int_eq(ex_signal(INT_MAX - 1, getpid(), SIGTERM), BERTH_ENOENT);
    /* Same namespace as the "init" given (this process): signalled. */
    ck_assert_int_eq(ex_signal(child, getpid(), SIGKILL), 0);
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_exec");
    TCase *tc = tcase_create("exec");

    tcase_add_test(tc, queue_model);
    tcase_add_test(tc, open_validation);
    tcase_add_test(tc, output_credit_adds_up);
    tcase_add_test(tc, input_window_and_grants);
    tcase_add_test(tc, eof_closes_stdin_after_the_input);
    tcase_add_test(tc, table_caps);
    tcase_add_test(tc, signal_checks_the_namespace);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
