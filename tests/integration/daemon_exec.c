/* daemon_exec.c - shell sessions of the real berth-daemon on the real
 * Docker Engine, driven through the real nats-server the way berth-shell
 * drives them: shell.open.<node> requests, ShellData on shell.in and
 * shell.out with credit both ways, ShellResize, ShellExit both ways.
 *
 * The test plays the panel (JetStream streams, node.register and an empty
 * node.sync, SiteCreate commands for a running site of the locally built
 * berth-test-busybox:1) and the shell. The daemon runs with a short
 * BERTH_SHELL_SESSION_TIMEOUT_MS; a thread of the test sends keepalives for
 * every session that wants them. Tests share one nats-server, one daemon
 * and one site (CK_NOFORK) and run in order; teardown removes every
 * container labelled with this run's node id.
 *
 * Figures printed: the 256 MiB stream's throughput, the daemon's RSS.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "shell.pb-c.h"
#include "site.pb-c.h"
#include "tests/harness/docker.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define WAIT_MS       30000
#define TIMEOUT_MS    1500 /* BERTH_SHELL_SESSION_TIMEOUT_MS */
#define KEEPALIVE_MS  300
#define WINDOW        (1024u * 1024) /* the daemon's default window */
#define MAX_SESSIONS  128
#define OUT_CAP       (8u << 20) /* output kept per session */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MAX_KB (400 * 1024) /* shadow memory counts */
#else
#define RSS_MAX_KB (30 * 1024)
#endif

/* ------------------------------------------------------------ sessions */

/* One session as the shell sees it. Fields under mu. */
typedef struct sess {
    char id[ID_UUID_LEN + 1];
    bool keepalive;  /* the keepalive thread speaks for it */
    bool auto_grant; /* give output credit back as it arrives */
    bool keep;       /* keep output in out/err (else count only) */
    buf out, err;
    uint64_t out_bytes; /* stdout and stderr payload */
    uint64_t granted;   /* output credit given beyond the first window */
    uint64_t ahead;     /* of which given ahead, before any output */
    uint64_t max_outstanding;
    uint64_t in_credit; /* input window left */
    uint64_t in_granted; /* input window the daemon gave back */
    uint64_t last_seq;
    int seq_errors;
    int data_after_eof;
    bool eof;
    bool exited;
    int exit_code;
    char reason[64];
    uint64_t in_seq;
    int check; /* 1: "y\n" expected, 2: zeros */
    uint64_t check_pos;
    int check_errors;
} sess;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Held from a message's seq to its publication: several threads send. */
static pthread_mutex_t send_mu = PTHREAD_MUTEX_INITIALIZER;
static sess *sessions[MAX_SESSIONS];
static int nsessions;

static h_nats nats;
static bus *b;      /* the panel and the shell */
static char *tmp;
static char data_dir[1024], log_path[1100];
static char node_id[ID_UUID_LEN + 1];
static h_proc dproc;
static char site[ID_UUID_LEN + 1];  /* running for the whole suite */
static char site2[ID_UUID_LEN + 1]; /* stopped by a test */
static pthread_t ka_thread;
static volatile int ka_stop;
static long rss_max_kb;

static sess *find(const char *id)
{
    int i;

    for (i = 0; i < nsessions; i++)
        if (strcmp(sessions[i]->id, id) == 0)
            return sessions[i];
    return NULL;
}

static void send_in(sess *s, const void *p, size_t n, bool eof,
                    uint32_t window)
{
    Berth__V1__ShellData d = BERTH__V1__SHELL_DATA__INIT;
    char subject[200];

    snprintf(subject, sizeof(subject), "shell.in.%s.%s", node_id, s->id);
    d.session_id = s->id;
    d.data.data = (uint8_t *)p;
    d.data.len = n;
    d.eof = eof;
    d.window = window;
    pthread_mutex_lock(&send_mu);
    d.seq = ++s->in_seq;
    ck_assert_int_eq(bus_publish(b, subject, &d.base), 0);
    pthread_mutex_unlock(&send_mu);
}

static int on_out(bus_msg *m, void *ud)
{
    const Berth__V1__ShellData *d = (const void *)m->msg;
    uint32_t grant = 0;
    uint64_t outstanding;
    size_t i;
    sess *s;

    (void)ud;
    pthread_mutex_lock(&mu);
    s = find(d->session_id);
    if (s == NULL) {
        pthread_mutex_unlock(&mu);
        return 0;
    }
    if (d->seq != s->last_seq + 1)
        s->seq_errors++;
    s->last_seq = d->seq;
    if (s->eof && (d->data.len > 0 || d->eof))
        s->data_after_eof++;
    s->in_credit += d->window;
    s->in_granted += d->window;
    if (d->data.len > 0) {
        s->out_bytes += d->data.len;
        outstanding = s->out_bytes + s->ahead - s->granted;
        if (outstanding > s->max_outstanding)
            s->max_outstanding = outstanding;
        if (s->keep)
            buf_append(d->stderr ? &s->err : &s->out, d->data.data,
                       d->data.len);
        if (s->check == 2) { /* zeros: word at a time */
            static const uint8_t zero[4096];
            size_t k;

            for (i = 0; i < d->data.len; i += k) {
                k = d->data.len - i < sizeof(zero) ? d->data.len - i
                                                   : sizeof(zero);
                s->check_errors += memcmp(d->data.data + i, zero, k) != 0;
            }
        }
        for (i = 0; s->check == 1 && i < d->data.len; i++, s->check_pos++) {
            char want = s->check == 1 ? (s->check_pos % 2 ? '\n' : 'y') : 0;
            if ((char)d->data.data[i] != want)
                s->check_errors++;
        }
        if (s->auto_grant) {
            grant = (uint32_t)d->data.len;
            s->granted += grant;
        }
    }
    if (d->eof)
        s->eof = true;
    pthread_mutex_unlock(&mu);
    if (grant > 0)
        send_in(s, NULL, 0, false, grant);
    return 0;
}

static int on_exit_msg(bus_msg *m, void *ud)
{
    const Berth__V1__ShellExit *e = (const void *)m->msg;
    sess *s;

    (void)ud;
    pthread_mutex_lock(&mu);
    s = find(e->session_id);
    /* The shell's own ShellExit comes back too: only the daemon's has a
     * reason or an exit code here... and ours are sent with reason
     * "bye". */
    if (s != NULL && strcmp(e->reason, "bye") != 0) {
        s->exited = true;
        s->exit_code = e->exit_code;
        snprintf(s->reason, sizeof(s->reason), "%s", e->reason);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static void *ka_main(void *arg)
{
    (void)arg;
    while (!ka_stop) {
        sess *live[MAX_SESSIONS];
        int i, n = 0;

        pthread_mutex_lock(&mu);
        for (i = 0; i < nsessions; i++)
            if (sessions[i]->keepalive && !sessions[i]->exited)
                live[n++] = sessions[i];
        pthread_mutex_unlock(&mu);
        for (i = 0; i < n; i++)
            send_in(live[i], NULL, 0, false, 0);
        clock_sleep_ms(KEEPALIVE_MS);
    }
    return NULL;
}

typedef struct open_opts {
    const char *site;
    bool tty;
    const char *argv[8];
    unsigned cols, rows;
    const char *env[4]; /* "K", "V", ... */
    bool no_keepalive;
    bool manual_grant;
    bool count_only;
    int check;
    const char *id; /* NULL: a new UUID */
} open_opts;

/* Opens a session; returns the berth code (0: *out set) and the error
 * message in why. */
static int open_session(const open_opts *o, sess **out, char *why,
                        size_t whylen)
{
    Berth__V1__ShellOpen req = BERTH__V1__SHELL_OPEN__INIT;
    Berth__V1__ShellOpen__EnvEntry e[2], *ep[2];
    ProtobufCMessage *reply = NULL;
    bus_error err = {0};
    char subject[200];
    size_t n = 0;
    sess *s = calloc(1, sizeof(*s));
    int rc;

    ck_assert_ptr_nonnull(s);
    if (o->id != NULL)
        snprintf(s->id, sizeof(s->id), "%s", o->id);
    else
        ck_assert_int_eq(id_uuid(s->id), 0);
    s->keepalive = !o->no_keepalive;
    s->auto_grant = !o->manual_grant;
    s->keep = !o->count_only;
    s->check = o->check;
    s->in_credit = WINDOW;
    buf_init(&s->out, OUT_CAP);
    buf_init(&s->err, OUT_CAP);
    /* Subscribed (once, with wildcards) before the request: nothing of
     * the session is missed. */
    ck_assert_int_lt(nsessions, MAX_SESSIONS); /* only this thread adds */
    pthread_mutex_lock(&mu);
    sessions[nsessions++] = s;
    pthread_mutex_unlock(&mu);

    req.session_id = s->id;
    req.site_id = (char *)(o->site != NULL ? o->site : site);
    req.user_id = "test-user";
    req.tty = o->tty;
    while (o->argv[n] != NULL)
        n++;
    req.n_command = n;
    req.command = (char **)o->argv;
    req.cols = o->cols;
    req.rows = o->rows;
    for (n = 0; n < 2 && o->env[2 * n] != NULL; n++) {
        berth__v1__shell_open__env_entry__init(&e[n]);
        e[n].key = (char *)o->env[2 * n];
        e[n].value = (char *)o->env[2 * n + 1];
        ep[n] = &e[n];
    }
    req.n_env = n;
    req.env = ep;
    snprintf(subject, sizeof(subject), "shell.open.%s", node_id);
    rc = bus_request(b, subject, &req.base, 30000, &reply, &err);
    if (why != NULL)
        snprintf(why, whylen, "%s", err.message);
    if (rc != 0) {
        pthread_mutex_lock(&mu);
        s->keepalive = false;
        pthread_mutex_unlock(&mu);
    }
    if (rc == 0) {
        Berth__V1__ShellOpened *r = (Berth__V1__ShellOpened *)reply;
        ck_assert_str_eq(r->session_id, s->id);
        protobuf_c_message_free_unpacked(reply, NULL);
    }
    *out = s;
    return rc;
}

static sess *open_ok(const open_opts *o)
{
    char why[256];
    sess *s = NULL;
    int rc = open_session(o, &s, why, sizeof(why));

    ck_assert_msg(rc == 0, "open failed: %s (%s)", berth_errname(rc), why);
    return s;
}

static void terminate(sess *s)
{
    Berth__V1__ShellExit e = BERTH__V1__SHELL_EXIT__INIT;
    char subject[200];

    snprintf(subject, sizeof(subject), "shell.exit.%s.%s", node_id, s->id);
    e.session_id = s->id;
    e.reason = "bye";
    ck_assert_int_eq(bus_publish(b, subject, &e.base), 0);
}

static void resize(sess *s, unsigned cols, unsigned rows)
{
    Berth__V1__ShellResize r = BERTH__V1__SHELL_RESIZE__INIT;
    char subject[200];

    snprintf(subject, sizeof(subject), "shell.resize.%s.%s", node_id, s->id);
    r.session_id = s->id;
    r.cols = cols;
    r.rows = rows;
    ck_assert_int_eq(bus_publish(b, subject, &r.base), 0);
}

static void rss_sample(void)
{
    char path[64], *text = NULL, *p;
    size_t len = 0;
    long kb;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)dproc.pid);
    if (fs_read_file(path, 65536, &text, &len) != 0)
        return;
    p = strstr(text, "VmRSS:");
    if (p != NULL && sscanf(p + 6, "%ld", &kb) == 1 && kb > rss_max_kb)
        rss_max_kb = kb;
    free(text);
}

/* Waits for the daemon's ShellExit; returns the exit code. */
static int wait_exit(sess *s, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    bool done;

    for (;;) {
        pthread_mutex_lock(&mu);
        done = s->exited;
        pthread_mutex_unlock(&mu);
        if (done)
            break;
        ck_assert_msg(clock_mono_ms() < end, "session %s never exited",
                      s->id);
        rss_sample();
        clock_sleep_ms(10);
    }
    /* ShellExit is published after the eof, but two subscriptions are
     * delivered on two threads: a process that ended gets its eof too. */
    for (;;) {
        pthread_mutex_lock(&mu);
        done = s->eof || s->reason[0] != '\0';
        pthread_mutex_unlock(&mu);
        if (done)
            break;
        ck_assert_msg(clock_mono_ms() < end, "session %s: exit, no eof",
                      s->id);
        clock_sleep_ms(5);
    }
    /* The session is over: nothing changes it any more. */
    ck_assert_int_eq(s->seq_errors, 0);
    ck_assert_int_eq(s->data_after_eof, 0);
    return s->exit_code;
}

/* Waits until the session's stdout holds needle (from offset *from on);
 * moves *from past it. */
static void wait_out(sess *s, const char *needle, size_t *from)
{
    int64_t end = clock_mono_ms() + WAIT_MS;

    for (;;) {
        const char *hit = NULL;

        pthread_mutex_lock(&mu);
        if (s->out.len > *from)
            hit = memmem(s->out.data + *from, s->out.len - *from, needle,
                         strlen(needle));
        if (hit != NULL)
            *from = (size_t)(hit - s->out.data) + strlen(needle);
        pthread_mutex_unlock(&mu);
        if (hit != NULL)
            return;
        if (clock_mono_ms() > end) {
            char seen[2048];

            pthread_mutex_lock(&mu);
            snprintf(seen, sizeof(seen), "%.*s", (int)s->out.len,
                     s->out.data != NULL ? s->out.data : "");
            pthread_mutex_unlock(&mu);
            ck_abort_msg("never saw \"%s\"; output: %s", needle, seen);
        }
        clock_sleep_ms(10);
    }
}

static const char *docker_top(void)
{
    static char out_text[16384];
    char name[128];
    char *argv[] = {"docker", "top", name, "-o", "pid,args", NULL};
    buf out;

    snprintf(name, sizeof(name), "berth-%s", site);
    buf_init(&out, sizeof(out_text) - 1);
    h_run2(argv, NULL, 0, &out, NULL, 30000);
    snprintf(out_text, sizeof(out_text), "%s", out.data ? out.data : "");
    buf_free(&out);
    return out_text;
}

/* Waits until `docker top` of the site lists needle (want) or not. */
static void wait_top(const char *needle, bool want)
{
    int64_t end = clock_mono_ms() + 10000;

    while ((strstr(docker_top(), needle) != NULL) != want) {
        ck_assert_msg(clock_mono_ms() < end, "%s %s in the container",
                      needle, want ? "never ran" : "still runs");
        clock_sleep_ms(50);
    }
}

/* ------------------------------------------------------------ the panel */

static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;
static char st_site[64];
static int st_state;

static int on_status(bus_msg *m, void *ud)
{
    const Berth__V1__SiteStatus *st = (const void *)m->msg;

    (void)ud;
    pthread_mutex_lock(&st_mu);
    if (strcmp(st->site_id, st_site) == 0)
        st_state = st->state;
    pthread_mutex_unlock(&st_mu);
    return 0;
}

static void wait_state(const char *id, int state)
{
    int64_t end = clock_mono_ms() + 60000;
    int now;

    for (;;) {
        pthread_mutex_lock(&st_mu);
        now = strcmp(st_site, id) == 0 ? st_state : -1;
        pthread_mutex_unlock(&st_mu);
        if (now == state)
            return;
        ck_assert_msg(clock_mono_ms() < end, "site %s never reached %d", id,
                      state);
        clock_sleep_ms(20);
    }
}

/* Creates a site running `sleep` (started when start) and waits until it
 * is running, or offline. */
static void create_site(char id[ID_UUID_LEN + 1], bool start)
{
    Berth__V1__SiteSpec s = BERTH__V1__SITE_SPEC__INIT;
    Berth__V1__Limits l = BERTH__V1__LIMITS__INIT;
    Berth__V1__RestartPolicy p = BERTH__V1__RESTART_POLICY__INIT;
    Berth__V1__SiteCreate c = BERTH__V1__SITE_CREATE__INIT;
    char *argv[] = {"sleep", "100000000"};
    char cid[ID_UUID_LEN + 1], subject[160];

    ck_assert_int_eq(id_uuid(id), 0);
    pthread_mutex_lock(&st_mu);
    snprintf(st_site, sizeof(st_site), "%s", id);
    st_state = 0;
    pthread_mutex_unlock(&st_mu);
    s.id = id;
    s.name = "exec-test";
    s.node_id = node_id;
    s.image = H_TEST_IMAGE;
    s.n_command = 2;
    s.command = argv;
    l.memory_bytes = 128u << 20;
    l.cpu_millis = 1000;
    l.pids = 512;
    s.limits = &l;
    p.mode = BERTH__V1__RESTART_POLICY__MODE__MODE_NEVER;
    s.restart = &p;
    s.stop_timeout_seconds = 5;
    ck_assert_int_eq(id_uuid(cid), 0);
    c.command_id = cid;
    c.spec = &s;
    c.start = start;
    snprintf(subject, sizeof(subject), "site.create.%s", node_id);
    ck_assert_int_eq(bus_js_publish(b, subject, &c.base, cid, 5000), 0);
    wait_state(id, start ? BERTH__V1__SITE_STATE__SITE_STATE_RUNNING
                         : BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE);
}

static void stop_site(const char *id)
{
    Berth__V1__SitePower p = BERTH__V1__SITE_POWER__INIT;
    char cid[ID_UUID_LEN + 1], subject[160];

    ck_assert_int_eq(id_uuid(cid), 0);
    p.command_id = cid;
    p.site_id = (char *)id;
    p.action = BERTH__V1__POWER_ACTION__POWER_ACTION_STOP;
    snprintf(subject, sizeof(subject), "site.power.%s", node_id);
    ck_assert_int_eq(bus_js_publish(b, subject, &p.base, cid, 5000), 0);
}

/* ------------------------------------------------------------ fixture */

static void suite_setup(void)
{
    char nats_env[256], data[1100], idfile[1200], subject[160];
    char timeout_env[96];
    char *argv[] = {NULL, NULL};
    char *env[] = {nats_env, data, timeout_env, "BERTH_NODE_NAME=exec-test",
                   "BERTH_STRICT_SUBJECTS=1", "BERTH_LOG_LEVEL=debug", NULL};
    char *text = NULL;
    size_t len = 0;

    ck_assert_int_eq(h_image_build(), 0);
    ck_assert_int_eq(h_nats_start(&nats), 0);
    b = h_bus_open(nats.url, "berth-panel");
    ck_assert_int_eq(bus_js_setup(b), 0);
    ck_assert_int_eq(h_fake_panel(b, NULL, NULL), 0);

    tmp = h_tempdir("daemon-exec");
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    ck_assert_int_eq(fs_mkdirs(data_dir, 0700), 0);
    snprintf(nats_env, sizeof(nats_env), "BERTH_NATS_URL=%s", nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", data_dir);
    snprintf(timeout_env, sizeof(timeout_env),
             "BERTH_SHELL_SESSION_TIMEOUT_MS=%d", TIMEOUT_MS);
    argv[0] = (char *)h_bin("berth-daemon");
    ck_assert_int_eq(h_proc_start(&dproc, "daemon", argv, env, log_path), 0);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=ready", 15000), 0);
    snprintf(idfile, sizeof(idfile), "%s/node.id", data_dir);
    ck_assert_int_eq(fs_read_file(idfile, 100, &text, &len), 0);
    snprintf(node_id, sizeof(node_id), "%s", text);
    free(text);

    snprintf(subject, sizeof(subject), "site.status.%s.*", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_status, NULL), 0);
    snprintf(subject, sizeof(subject), "shell.out.%s.*", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_out, NULL), 0);
    snprintf(subject, sizeof(subject), "shell.exit.%s.*", node_id);
    ck_assert_int_eq(bus_subscribe(b, subject, NULL, on_exit_msg, NULL), 0);
    ck_assert_int_eq(pthread_create(&ka_thread, NULL, ka_main, NULL), 0);
    create_site(site, true);
}

static void suite_teardown(void)
{
    char label[160];
    int i;

    ka_stop = 1;
    pthread_join(ka_thread, NULL);
    if (dproc.pid > 0) {
        int st = h_proc_stop(&dproc, SIGTERM, 15000);
        if (st != 0)
            h_log_tail(log_path, 6000);
        h_proc_free(&dproc);
    }
    snprintf(label, sizeof(label), "berth.node=%s", node_id);
    h_docker_rm_labelled(label);
    bus_close(b);
    h_nats_stop(&nats);
    h_tempdir_drop(tmp, "daemon-exec");
    for (i = 0; i < nsessions; i++) {
        buf_free(&sessions[i]->out);
        buf_free(&sessions[i]->err);
        free(sessions[i]);
    }
    printf("daemon RSS at most %ld KiB during the sessions\n", rss_max_kb);
}

/* ------------------------------------------------------------ tests */

START_TEST(command_output_and_exit_code)
{
    sess *s = open_ok(&(open_opts){.argv = {"sh", "-c", "echo $((6*7))"}});

    ck_assert_int_eq(wait_exit(s, WAIT_MS), 0);
    ck_assert_str_eq(s->reason, "");
    ck_assert(s->eof);
    ck_assert_uint_eq(s->out.len, 3);
    ck_assert_int_eq(memcmp(s->out.data, "42\n", 3), 0);
    ck_assert_uint_eq(s->err.len, 0);

    s = open_ok(&(open_opts){.argv = {"sh", "-c", "exit 3"}});
    ck_assert_int_eq(wait_exit(s, WAIT_MS), 3);
    ck_assert_uint_eq(s->out.len, 0);
}
END_TEST

START_TEST(stderr_apart_env_and_workdir)
{
    sess *s = open_ok(&(open_opts){
        .argv = {"sh", "-c", "echo out $FOO; pwd; echo err >&2; echo out2"},
        .env = {"FOO", "bar baz"}});

    ck_assert_int_eq(wait_exit(s, WAIT_MS), 0);
    ck_assert_uint_eq(s->out.len, strlen("out bar baz\n/data\nout2\n"));
    ck_assert_int_eq(memcmp(s->out.data, "out bar baz\n/data\nout2\n",
                            s->out.len),
                     0);
    ck_assert_uint_eq(s->err.len, 4);
    ck_assert_int_eq(memcmp(s->err.data, "err\n", 4), 0);

    /* The shell's TERM wins over the default of a TTY. */
    s = open_ok(&(open_opts){.tty = true,
                             .argv = {"sh", "-c", "echo $TERM"},
                             .env = {"TERM", "vt100"}});
    ck_assert_int_eq(wait_exit(s, WAIT_MS), 0);
    ck_assert_uint_eq(s->out.len, 7);
    ck_assert_int_eq(memcmp(s->out.data, "vt100\r\n", 7), 0);
}
END_TEST

/* `cat` echoes 4 MiB of input exactly (four windows: the daemon grants
 * input credit back), and exits 0 once stdin is closed by eof. */
START_TEST(stdin_with_eof_and_input_credit)
{
    const size_t total = 4u << 20, chunk = 32 * 1024;
    char *data = malloc(total);
    size_t sent = 0, i;
    int64_t end = clock_mono_ms() + WAIT_MS;
    sess *s;

    ck_assert_ptr_nonnull(data);
    for (i = 0; i < total; i++)
        data[i] = (char)(rand() & 0xff);
    s = open_ok(&(open_opts){.argv = {"cat"}});
    while (sent < total) {
        uint64_t credit;

        pthread_mutex_lock(&mu);
        credit = s->in_credit;
        if (credit >= chunk)
            s->in_credit -= chunk;
        pthread_mutex_unlock(&mu);
        if (credit < chunk) {
            ck_assert_msg(clock_mono_ms() < end, "input credit never came");
            clock_sleep_ms(1);
            continue;
        }
        send_in(s, data + sent, chunk, false, 0);
        sent += chunk;
    }
    send_in(s, NULL, 0, true, 0);
    ck_assert_int_eq(wait_exit(s, WAIT_MS), 0);
    ck_assert_uint_eq(s->out.len, total);
    ck_assert_int_eq(memcmp(s->out.data, data, total), 0);
    /* The daemon gave credit back for what it wrote, in steps of a
     * quarter window at most. */
    ck_assert_uint_ge(s->in_granted, total - WINDOW / 4);
    ck_assert_uint_le(s->in_granted, total);
    free(data);
}
END_TEST

START_TEST(tty_shell_echo_and_resize)
{
    size_t at = 0;
    sess *s = open_ok(&(open_opts){.tty = true, .cols = 80, .rows = 24});
    const char *line;

    wait_out(s, "# ", &at); /* busybox sh's prompt */
    line = "echo hi\n";
    send_in(s, line, strlen(line), false, 0);
    wait_out(s, "\r\nhi\r\n", &at);
    line = "stty size; echo $TERM\n";
    send_in(s, line, strlen(line), false, 0);
    wait_out(s, "\r\n24 80\r\nxterm-256color\r\n", &at);
    resize(s, 132, 43);
    clock_sleep_ms(300);
    line = "stty size\n";
    send_in(s, line, strlen(line), false, 0);
    wait_out(s, "\r\n43 132\r\n", &at);
    /* A terminal has no end of input: eof changes nothing. */
    send_in(s, NULL, 0, true, 0);
    line = "exit 7\n";
    send_in(s, line, strlen(line), false, 0);
    ck_assert_int_eq(wait_exit(s, WAIT_MS), 7);
    ck_assert_uint_eq(s->err.len, 0);
}
END_TEST

/* 50 MB from `yes` with credit given slowly: the daemon never sends more
 * than the window ahead, holds nothing itself (its RSS stays small) and
 * every byte arrives, in order. */
START_TEST(flow_control_bounds_memory)
{
    const uint64_t total = 50000000;
    sess *s = open_ok(&(open_opts){
        .argv = {"sh", "-c", "yes | head -c 50000000"},
        .manual_grant = true,
        .count_only = true,
        .check = 1});
    int64_t end = clock_mono_ms() + 120000;
    uint64_t got, before;
    int rounds = 0;

    /* No credit given: it stops at the window, exactly. */
    do {
        ck_assert_msg(clock_mono_ms() < end, "the first window never came");
        clock_sleep_ms(20);
        pthread_mutex_lock(&mu);
        before = s->out_bytes;
        pthread_mutex_unlock(&mu);
    } while (before < WINDOW);
    ck_assert_uint_eq(before, WINDOW);
    clock_sleep_ms(500);
    pthread_mutex_lock(&mu);
    got = s->out_bytes;
    pthread_mutex_unlock(&mu);
    ck_assert_uint_eq(got, before);

    for (;;) {
        bool exited;
        uint64_t give;

        pthread_mutex_lock(&mu);
        got = s->out_bytes;
        exited = s->exited;
        give = got - s->granted;
        s->granted = got;
        pthread_mutex_unlock(&mu);
        if (exited)
            break;
        if (give > 0)
            send_in(s, NULL, 0, false, (uint32_t)give);
        rss_sample();
        ck_assert_msg(clock_mono_ms() < end, "stream too slow: %llu bytes",
                      (unsigned long long)got);
        clock_sleep_ms(++rounds % 10 == 0 ? 100 : 5); /* now and then a pause */
    }
    ck_assert_int_eq(wait_exit(s, 1000), 0);
    ck_assert_uint_eq(s->out_bytes, total);
    ck_assert_int_eq(s->check_errors, 0);
    ck_assert_uint_le(s->max_outstanding, WINDOW);
    printf("50 MB with slow credit: at most %llu bytes outstanding, "
           "daemon RSS at most %ld KiB\n",
           (unsigned long long)s->max_outstanding, rss_max_kb);
    ck_assert_int_lt(rss_max_kb, RSS_MAX_KB);
}
END_TEST

/* CPU seconds the daemon used so far (user + system). */
static double daemon_cpu_secs(void)
{
    char path[64], *text = NULL, *p;
    unsigned long long ut = 0, st = 0;
    size_t len = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)dproc.pid);
    ck_assert_int_eq(fs_read_file(path, 65536, &text, &len), 0);
    p = strrchr(text, ')');
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p + 1,
                            " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %llu",
                            &ut, &st),
                     2);
    free(text);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Seconds the docker CLI takes to read 256 MiB from an exec running cmd:
 * what Docker's exec stream itself gives, for comparison. */
static double docker_cli_secs(const char *cmd)
{
    char script[512];
    char *argv[] = {"sh", "-c", script, NULL};
    int64_t t0 = clock_mono_ns();
    buf out;

    snprintf(script, sizeof(script), "docker exec berth-%s %s | wc -c", site,
             cmd);
    buf_init(&out, 4096);
    ck_assert_int_eq(h_run(argv, NULL, 0, &out, 120000), 0);
    ck_assert_int_eq(atoll(out.data), 268435456);
    buf_free(&out);
    return (double)(clock_mono_ns() - t0) / 1e9;
}

/* 256 MiB through a session with credit given back as it arrives; the
 * same through the docker CLI for comparison. */
static void stream_256mib(const char *label, const char *cmd,
                          uint32_t extra)
{
    const uint64_t total = 268435456;
    int64_t t0 = clock_mono_ns();
    double cpu0 = daemon_cpu_secs(), cpu;
    sess *s = open_ok(&(open_opts){.argv = {"sh", "-c", cmd},
                                   .count_only = true,
                                   .check = 2});
    double secs, cli;

    /* A shell may widen the window by giving credit ahead. */
    if (extra > 0) {
        pthread_mutex_lock(&mu);
        s->granted += extra;
        s->ahead = extra;
        pthread_mutex_unlock(&mu);
        send_in(s, NULL, 0, false, extra);
    }

    ck_assert_int_eq(wait_exit(s, 120000), 0);
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    cpu = daemon_cpu_secs() - cpu0;
    ck_assert_uint_eq(s->out_bytes, total);
    ck_assert_int_eq(s->check_errors, 0);
    ck_assert_uint_le(s->max_outstanding, WINDOW + extra);
    cli = docker_cli_secs(cmd);
    printf("256 MiB (%s, window %u KiB) through a session: %.2f s, %.1f MB/s, %llu "
           "messages, daemon CPU %.2f s (%.0f MB per CPU second); docker exec "
           "CLI: %.2f s, %.1f MB/s; daemon RSS at most %ld KiB\n",
           label, (WINDOW + extra) / 1024, secs, (double)total / secs / 1e6,
           (unsigned long long)s->last_seq, cpu,
           cpu > 0 ? (double)total / cpu / 1e6 : 0.0, cli,
           (double)total / cli / 1e6, rss_max_kb);
    ck_assert_int_lt(rss_max_kb, RSS_MAX_KB);
}

START_TEST(throughput_256mib)
{
    const char *dd = "dd if=/dev/zero bs=65536 count=4096 2>/dev/null";

    stream_256mib("head -c", "head -c 268435456 /dev/zero", 0);
    stream_256mib("dd bs=64k", dd, 0);
    stream_256mib("dd bs=64k", dd, 7u << 20);
}
END_TEST

START_TEST(terminate_kills_the_process)
{
    sess *s = open_ok(&(open_opts){.argv = {"sleep", "1231"}});
    sess *t;
    size_t at = 0;
    const char *line;

    wait_top("sleep 1231", true);
    terminate(s);
    wait_exit(s, WAIT_MS);
    ck_assert_str_eq(s->reason, "terminated");
    wait_top("sleep 1231", false);

    /* A TTY shell's foreground job goes with it. */
    t = open_ok(&(open_opts){.tty = true, .cols = 80, .rows = 24});
    wait_out(t, "# ", &at);
    line = "sleep 1232\n";
    send_in(t, line, strlen(line), false, 0);
    wait_top("sleep 1232", true);
    terminate(t);
    wait_exit(t, WAIT_MS);
    ck_assert_str_eq(t->reason, "terminated");
    wait_top("sleep 1232", false);
}
END_TEST

START_TEST(silent_shell_times_out)
{
    int64_t t0 = clock_mono_ms();
    sess *s = open_ok(&(open_opts){.argv = {"sleep", "1233"},
                                   .no_keepalive = true});
    sess *kept = open_ok(&(open_opts){.argv = {"sleep", "1234"}});
    bool done;

    wait_exit(s, WAIT_MS);
    ck_assert_str_eq(s->reason, "shell gone");
    ck_assert_int_ge(clock_mono_ms() - t0, TIMEOUT_MS);
    ck_assert_int_lt(clock_mono_ms() - t0, TIMEOUT_MS + 5000);
    wait_top("sleep 1233", false);
    /* The one with keepalives lives on. */
    clock_sleep_ms(TIMEOUT_MS);
    pthread_mutex_lock(&mu);
    done = kept->exited;
    pthread_mutex_unlock(&mu);
    ck_assert(!done);
    ck_assert_ptr_nonnull(strstr(docker_top(), "sleep 1234"));
    terminate(kept);
    wait_exit(kept, WAIT_MS);
}
END_TEST

START_TEST(errors_are_answered)
{
    char why[256], subject[200], bad_id[ID_UUID_LEN + 1];
    natsMsg *reply = NULL;
    const char *code = NULL;
    sess *s, *dup;
    sess *many[64];
    int i, rc;

    /* Unknown site. */
    ck_assert_int_eq(id_uuid(bad_id), 0);
    rc = open_session(&(open_opts){.site = bad_id, .argv = {"true"}}, &s, why,
                      sizeof(why));
    ck_assert_int_eq(rc, BERTH_ENOENT);
    ck_assert_ptr_nonnull(strstr(why, "not on this node"));
    /* A session id that is not a UUID, a bad env name, a huge size. */
    rc = open_session(&(open_opts){.argv = {"true"}, .id = "not-a-uuid"}, &s,
                      why, sizeof(why));
    ck_assert_int_eq(rc, BERTH_EINVAL);
    rc = open_session(&(open_opts){.argv = {"true"}, .env = {"A=B", "x"}}, &s,
                      why, sizeof(why));
    ck_assert_int_eq(rc, BERTH_EINVAL);
    rc = open_session(&(open_opts){.argv = {"true"}, .tty = true,
                                   .cols = 100000, .rows = 5},
                      &s, why, sizeof(why));
    ck_assert_int_eq(rc, BERTH_EINVAL);
    /* A duplicate session id. */
    s = open_ok(&(open_opts){.argv = {"sleep", "1236"}});
    rc = open_session(&(open_opts){.argv = {"true"}, .id = s->id}, &dup, why,
                      sizeof(why));
    ck_assert_int_eq(rc, BERTH_EEXIST);
    /* Garbage where protobuf belongs. */
    snprintf(subject, sizeof(subject), "shell.open.%s", node_id);
    ck_assert_int_eq(natsConnection_Request(&reply, bus_nats(b), subject,
                                            "\xff\xff\xff garbage", 12, 5000),
                     NATS_OK);
    ck_assert_int_eq(
        natsMsgHeader_Get(reply, "Nats-Service-Error-Code", &code), NATS_OK);
    ck_assert_str_eq(code, "400");
    natsMsg_Destroy(reply);
    snprintf(subject, sizeof(subject), "shell.in.%s.%s", node_id, s->id);
    ck_assert_int_eq(natsConnection_Publish(bus_nats(b), subject,
                                            "\xff\xff\xff", 3),
                     NATS_OK);
    snprintf(subject, sizeof(subject), "shell.resize.%s.%s", node_id, s->id);
    ck_assert_int_eq(natsConnection_Publish(bus_nats(b), subject, "\x08", 1),
                     NATS_OK);
    /* Messages for sessions nobody opened are ignored. */
    snprintf(subject, sizeof(subject), "shell.exit.%s.%s", node_id, bad_id);
    ck_assert_int_eq(natsConnection_Publish(bus_nats(b), subject, "", 0),
                     NATS_OK);
    resize(s, 80, 24); /* no TTY: ignored */

    /* 64 sessions per site, the 65th refused. */
    many[0] = s;
    for (i = 1; i < 64; i++)
        many[i] = open_ok(&(open_opts){.argv = {"sleep", "1237"}});
    rc = open_session(&(open_opts){.argv = {"true"}}, &dup, why, sizeof(why));
    ck_assert_int_eq(rc, BERTH_ETOOBIG);
    for (i = 0; i < 64; i++)
        terminate(many[i]);
    for (i = 0; i < 64; i++)
        wait_exit(many[i], WAIT_MS);
    wait_top("sleep 1237", false);
    wait_top("sleep 1236", false);

    /* The daemon is alive and well. */
    ck_assert_int_eq(h_proc_alive(&dproc), 1);
    s = open_ok(&(open_opts){.argv = {"echo", "still here"}});
    ck_assert_int_eq(wait_exit(s, WAIT_MS), 0);
    ck_assert_uint_eq(s->out.len, strlen("still here\n"));
}
END_TEST

/* A site that stops ends its sessions; a stopped site refuses new ones. */
START_TEST(site_stop_ends_sessions)
{
    sess *s, *t;
    char why[256];
    int rc;

    create_site(site2, true);
    s = open_ok(&(open_opts){.site = site2, .argv = {"sleep", "1238"}});
    t = open_ok(&(open_opts){.site = site2, .tty = true, .cols = 80,
                             .rows = 24});
    stop_site(site2);
    wait_exit(s, WAIT_MS);
    wait_exit(t, WAIT_MS);
    ck_assert_str_eq(s->reason, "site stopped");
    ck_assert_str_eq(t->reason, "site stopped");
    wait_state(site2, BERTH__V1__SITE_STATE__SITE_STATE_OFFLINE);
    rc = open_session(&(open_opts){.site = site2, .argv = {"true"}}, &s, why,
                      sizeof(why));
    ck_assert_int_eq(rc, BERTH_ECONFLICT);
    ck_assert_str_eq(why, "site is not running");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_exec");
    TCase *tc = tcase_create("exec");

    tcase_set_timeout(tc, 900);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, command_output_and_exit_code);
    tcase_add_test(tc, stderr_apart_env_and_workdir);
    tcase_add_test(tc, stdin_with_eof_and_input_credit);
    tcase_add_test(tc, tty_shell_echo_and_resize);
    tcase_add_test(tc, flow_control_bounds_memory);
    tcase_add_test(tc, throughput_256mib);
    tcase_add_test(tc, terminate_kills_the_process);
    tcase_add_test(tc, silent_shell_times_out);
    tcase_add_test(tc, errors_are_answered);
    tcase_add_test(tc, site_stop_ends_sessions);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
