/* shell.c - berth-shell with the real OpenSSH client (ssh, sftp), the real
 * panel (PostgreSQL, nats-server), the real daemon and Docker: key and
 * password logins, failures that cannot be told apart, the site menu on a
 * PTY, commands and their exit codes, SFTP transfers and their
 * permissions and sandbox, and sessions closed when access is revoked.
 *
 * One panel, one daemon, one shell and one site ("blog", busybox) serve
 * the whole suite (CK_NOFORK); the tests run in order. Users:
 *
 *   alice  console, files read and write on blog (grants); an SSH key
 *   bob    files read on blog only; an SSH key
 *   carol  console on blog; an SSH key; loses it in the revocation test
 *   dave   console and files on blog; deleted in the revocation test
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/id.h"
#include "tests/harness/docker.h"
#include "tests/harness/panel.h"
#include "tests/harness/unit.h"

#define ADMIN_PASSWORD "shell suite admin password"
#define USER_PASSWORD "a long user password"
#define NODE_NAME "shell-node"
#define SHORT_SESSIONS 100 /* the race they catch came about once in 50 */

static h_panel panel;
static char admin[H_ACCESS_MAX];
static char *tmp;
static char node_id[ID_UUID_LEN + 1];
static char site_id[ID_UUID_LEN + 1];
static char port_s[16];
static int shell_port;
static h_proc dproc, sproc; /* berth-daemon, berth-shell */
static char dlog[1024], slog[1024];
static char user_ids[4][40];

enum { ALICE, BOB, CAROL, DAVE };
static const char *const names[] = {"alice", "bob", "carol", "dave"};

/* ------------------------------------------------------------ panel */

static void as_admin(const char *method, const char *path, const char *body,
                     long want, const char *key, char *out, size_t size)
{
    h_resp r;

    ck_assert_msg(h_call(&panel, &r, method, path, admin, body) == want,
                  "%s %s: %ld %s", method, path, r.status,
                  r.body.data ? r.body.data : "");
    if (key != NULL)
        snprintf(out, size, "%s", h_jstr(r.json, key));
    h_resp_free(&r);
}

static void grant(int who, const char *perms)
{
    char path[200], body[300];

    snprintf(path, sizeof(path), "/sites/%s/grants/%s", site_id, user_ids[who]);
    snprintf(body, sizeof(body), "{\"permissions\":[%s]}", perms);
    as_admin("PUT", path, body, 200, NULL, NULL, 0);
}

static void key_path(int who, char *out, size_t size)
{
    snprintf(out, size, "%s/%s_key", tmp, names[who]);
}

/* Creates the user, a key pair for it, and registers the public key
 * through the user's own session (POST /user/keys). */
static void make_user(int who)
{
    char body[1024], access[H_ACCESS_MAX], key[1024], pub[1100];
    char *text = NULL, *nl;
    size_t len = 0;
    h_resp r;

    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"password\":\"" USER_PASSWORD "\","
             "\"email\":\"%s@example.org\",\"role_name\":\"member\"}",
             names[who], names[who]);
    as_admin("POST", "/user/create", body, 201, "uuid", user_ids[who],
             sizeof(user_ids[who]));
    key_path(who, key, sizeof(key));
    {
        char *argv[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        (char *)names[who], "-f", key, NULL};
        ck_assert_int_eq(h_run(argv, NULL, 0, NULL, 10000), 0);
    }
    snprintf(pub, sizeof(pub), "%s.pub", key);
    ck_assert_int_eq(fs_read_file(pub, 4096, &text, &len), 0);
    nl = strchr(text, '\n');
    if (nl != NULL)
        *nl = '\0';
    ck_assert_int_eq(h_login(&panel, names[who], USER_PASSWORD, access, NULL),
                     201);
    {
        json_t *j = json_pack("{s:s, s:s}", "name", "laptop", "publicKey", text);
        char *s = json_dumps(j, JSON_COMPACT);

        ck_assert_int_eq(h_call(&panel, &r, "POST", "/user/keys", access, s),
                         201);
        h_resp_free(&r);
        free(s);
        json_decref(j);
    }
    free(text);
}

static json_t *site_entry(void)
{
    char path[128];
    h_resp r;
    json_t *j;

    snprintf(path, sizeof(path), "/sites/%s", site_id);
    ck_assert_int_eq(h_call(&panel, &r, "GET", path, admin, NULL), 200);
    j = json_incref(r.json);
    h_resp_free(&r);
    return j;
}

static int wait_site_state(const char *want, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    while (clock_mono_ms() < end) {
        json_t *j = site_entry();
        int ok = strcmp(h_jstr(json_object_get(j, "status"), "state"), want) == 0;

        json_decref(j);
        if (ok)
            return 1;
        clock_sleep_ms(100);
    }
    return 0;
}

/* ------------------------------------------------------------ ssh */

/* Fills argv with an ssh (or sftp) command line for a key login; extra
 * arguments follow. Returns the count. */
static int ssh_argv(char **argv, const char *prog, const char *key,
                    char *const extra[])
{
    static char *const common[] = {
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", NULL};
    int n = 0, i;

    argv[n++] = (char *)prog;
    for (i = 0; common[i] != NULL; i++)
        argv[n++] = common[i];
    if (key != NULL) {
        argv[n++] = "-o";
        argv[n++] = "BatchMode=yes";
        argv[n++] = "-o";
        argv[n++] = "IdentitiesOnly=yes";
        argv[n++] = "-o";
        argv[n++] = "PasswordAuthentication=no";
        argv[n++] = "-i";
        argv[n++] = (char *)key;
    }
    argv[n++] = strcmp(prog, "sftp") == 0 ? "-P" : "-p";
    argv[n++] = port_s;
    for (i = 0; extra[i] != NULL; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return n;
}

/* Prints the last lines of the services' logs: what a client that hung
 * was waiting for. */
static void dump_logs(const char *why)
{
    static const char *const names[] = {"shell.log", "daemon.log"};
    size_t i;

    fprintf(stderr, "shell test: %s; the services' last log lines:\n", why);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[1200], *text = NULL;
        size_t len = 0, at;
        int lines = 0;

        snprintf(path, sizeof(path), "%s/%s", tmp, names[i]);
        if (fs_read_file(path, 64u << 20, &text, &len) != 0)
            continue;
        for (at = len; at > 0 && lines < 40; at--) {
            if (text[at - 1] == '\n')
                lines++;
        }
        fprintf(stderr, "--- %s\n%.*s", names[i], (int)(len - at), text + at);
        free(text);
    }
}

/* Runs ssh as who (key login) with login and command; output and errors
 * apart. Returns ssh's exit status. */
static int ssh_key(int who, const char *login, const char *command, buf *out,
                   buf *err, const void *in, size_t inlen)
{
    char key[1024], dest[200];
    char *argv[40];
    int rc;

    key_path(who, key, sizeof(key));
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", login);
    ssh_argv(argv, "ssh", key,
             (char *const[]){"-T", dest, (char *)command, NULL});
    rc = h_run2(argv, in, inlen, out, err, 60000);
    if (rc < 0)
        dump_logs(command);
    return rc;
}

/* A password login through SSH_ASKPASS; returns ssh's exit status. */
static int ssh_password(const char *login, const char *password,
                        const char *command, buf *out, buf *err)
{
    char askpass[1100], script[300], dest[200], env_askpass[1200];
    char *argv[48];
    int n = 0;

    snprintf(askpass, sizeof(askpass), "%s/askpass-%d.sh", tmp, (int)getpid());
    snprintf(script, sizeof(script), "#!/bin/sh\nprintf '%%s\\n' '%s'\n",
             password);
    ck_assert_int_eq(fs_write_atomic(askpass, script, strlen(script), 0700), 0);
    snprintf(env_askpass, sizeof(env_askpass), "SSH_ASKPASS=%s", askpass);
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", login);
    argv[n++] = "env";
    argv[n++] = env_askpass;
    argv[n++] = "SSH_ASKPASS_REQUIRE=force";
    argv[n++] = "DISPLAY=:0";
    argv[n++] = "setsid";
    argv[n++] = "-w";
    ssh_argv(argv + n, "ssh",  NULL,
             (char *const[]){"-o", "PreferredAuthentications=password",
                             "-o", "PubkeyAuthentication=no",
                             "-o", "NumberOfPasswordPrompts=1", "-T", dest,
                             (char *)command, NULL});
    return h_run2(argv, NULL, 0, out, err, 60000);
}

/* Runs an sftp batch as who on login; returns sftp's exit status, output
 * and errors in out. */
static int sftp_batch(int who, const char *login, const char *batch, buf *out)
{
    char key[1024], dest[200], file[1100];
    char *argv[40];

    key_path(who, key, sizeof(key));
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", login);
    snprintf(file, sizeof(file), "%s/batch-%d", tmp, (int)getpid());
    ck_assert_int_eq(fs_write_atomic(file, batch, strlen(batch), 0600), 0);
    ssh_argv(argv, "sftp", key, (char *const[]){"-b", file, dest, NULL});
    return h_run(argv, NULL, 0, out, 120000);
}

static int contains(const buf *b, const char *needle)
{
    return b->data != NULL && strstr(b->data, needle) != NULL;
}

/* ------------------------------------------------------------ a PTY */

typedef struct pty_child {
    pid_t pid;
    int fd;
    buf seen;
} pty_child;

/* Starts argv on a new pseudo-terminal. */
static void pty_start(pty_child *p, char *const argv[])
{
    struct winsize ws = {.ws_row = 30, .ws_col = 100};

    buf_init(&p->seen, 1 << 20);
    p->pid = forkpty(&p->fd, NULL, NULL, &ws);
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[0], argv);
        _exit(127);
    }
}

/* Reads until needle has been seen (from the start); returns 1 when it
 * was within timeout_ms. */
static int pty_expect(pty_child *p, const char *needle, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;

    while (p->seen.data == NULL || strstr(p->seen.data, needle) == NULL) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int64_t left = end - clock_mono_ms();
        char b[4096];
        ssize_t n;

        if (left <= 0)
            return 0;
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        n = read(p->fd, b, sizeof(b));
        if (n <= 0)
            return 0;
        buf_append(&p->seen, b, (size_t)n);
    }
    return 1;
}

static void pty_send(pty_child *p, const char *s)
{
    ck_assert_int_eq(write(p->fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Waits for the child; returns its exit status or -1. */
static int pty_wait(pty_child *p, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    int st;

    while (clock_mono_ms() < end) {
        char b[4096];

        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            close(p->fd);
            buf_free(&p->seen);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (read(p->fd, b, sizeof(b)) > 0)
            continue;
        clock_sleep_ms(20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    close(p->fd);
    buf_free(&p->seen);
    return -1;
}

/* ------------------------------------------------------------ suite */

static void start_daemon(void)
{
    char nats[256], data[1100], node[128];
    char *argv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *env[] = {nats, data, node, "BERTH_STRICT_SUBJECTS=1", NULL};
    char path[1100], *text = NULL;
    size_t len = 0;

    snprintf(nats, sizeof(nats), "BERTH_NATS_URL=%s", panel.nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s/daemon", tmp);
    snprintf(node, sizeof(node), "BERTH_NODE_NAME=%s", NODE_NAME);
    ck_assert_int_eq(h_proc_start(&dproc, "daemon", argv, env, dlog), 0);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=ready", 15000), 0);
    snprintf(path, sizeof(path), "%s/daemon/node.id", tmp);
    ck_assert_int_eq(fs_read_file(path, 4096, &text, &len), 0);
    snprintf(node_id, sizeof(node_id), "%s", text);
    free(text);
    ck_assert_int_eq(h_wait_log(dlog, "msg=\"node registered\"", 15000), 0);
}

static void start_shell(void)
{
    char nats[256], data[1100], addr[64];
    char *argv[] = {(char *)h_bin("berth-shell"), NULL};
    char *env[] = {nats, data, addr, "BERTH_STRICT_SUBJECTS=1", NULL};

    shell_port = h_free_port();
    ck_assert_int_gt(shell_port, 0);
    snprintf(port_s, sizeof(port_s), "%d", shell_port);
    snprintf(nats, sizeof(nats), "BERTH_NATS_URL=%s", panel.nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s/shell", tmp);
    snprintf(addr, sizeof(addr), "BERTH_SHELL_ADDR=127.0.0.1:%d", shell_port);
    ck_assert_int_eq(h_proc_start(&sproc, "shell", argv, env, slog), 0);
    ck_assert_int_eq(h_proc_wait_log(&sproc, "msg=ready", 15000), 0);
    ck_assert_int_eq(h_wait_port(shell_port, 5000), 0);
}

static void suite_up(void)
{
    char body[512];
    int i;

    ck_assert_int_eq(h_image_build(), 0);
    ck_assert_int_eq(h_panel_start(&panel, ADMIN_PASSWORD, NULL), 0);
    ck_assert_int_eq(h_login(&panel, "admin", ADMIN_PASSWORD, admin, NULL),
                     201);
    tmp = h_tempdir("shell");
    ck_assert_ptr_nonnull(tmp);
    snprintf(dlog, sizeof(dlog), "%s/daemon.log", tmp);
    snprintf(slog, sizeof(slog), "%s/shell.log", tmp);
    start_daemon();
    start_shell();
    snprintf(body, sizeof(body),
             "{\"name\":\"blog\",\"image\":\"" H_TEST_IMAGE "\","
             "\"node\":\"%s\",\"command\":[\"sleep\",\"36000\"],"
             "\"memoryBytes\":67108864}",
             node_id);
    as_admin("POST", "/sites", body, 202, "id", site_id, sizeof(site_id));
    ck_assert_msg(wait_site_state("running", 60000), "site never ran");
    /* A role that reaches no site by itself: the grants decide. */
    as_admin("POST", "/role", "{\"name\":\"member\",\"permissions\":"
                              "[\"user.read\"]}", 200, NULL, NULL, 0);
    for (i = ALICE; i <= DAVE; i++)
        make_user(i);
    grant(ALICE, "\"site.read\",\"site.console.write\",\"site.files.read\","
                 "\"site.files.write\"");
    grant(BOB, "\"site.files.read\"");
    grant(CAROL, "\"site.console.write\"");
    grant(DAVE, "\"site.console.write\",\"site.files.read\"");
}

static void suite_down(void)
{
    if (sproc.pid > 0)
        ck_assert_int_eq(h_proc_stop(&sproc, SIGTERM, 10000), 0);
    h_proc_free(&sproc);
    if (dproc.pid > 0)
        h_proc_stop(&dproc, SIGTERM, 10000);
    h_proc_free(&dproc);
    if (node_id[0] != '\0') {
        char label[128];
        snprintf(label, sizeof(label), "berth.node=%s", node_id);
        h_docker_rm_labelled(label);
    }
    h_tempdir_drop(tmp, "shell");
    tmp = NULL;
    ck_assert_int_eq(h_panel_stop(&panel), 0);
}

/* ------------------------------------------------------------ tests */

START_TEST(host_key_kept_private)
{
    char path[1100];
    struct stat st;

    snprintf(path, sizeof(path), "%s/shell/shell.ed25519", tmp);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(key_login_runs_a_command)
{
    buf out, err;

    buf_init(&out, 1 << 20);
    buf_init(&err, 1 << 20);
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "echo $((6*7))", &out, &err,
                             NULL, 0),
                     0);
    ck_assert_msg(out.data != NULL && strcmp(out.data, "42\n") == 0,
                  "stdout [%s] stderr [%s]", out.data ? out.data : "",
                  err.data ? err.data : "");
    buf_free(&out);
    buf_free(&err);
}
END_TEST

/* Output, the end of the output and the exit come on separate messages and
 * race the shell's loop; every one of many short sessions must still end
 * with all its output and its code (the channel's EOF once went out ahead
 * of output still queued, and the client hung). */
START_TEST(many_short_sessions_end_cleanly)
{
    buf out, err;
    int k, rc;

    buf_init(&out, 1 << 20);
    buf_init(&err, 1 << 20);
    for (k = 0; k < SHORT_SESSIONS; k++) {
        buf_reset(&out);
        buf_reset(&err);
        rc = ssh_key(ALICE, "alice+blog", "echo out; echo err >&2; exit 3",
                     &out, &err, NULL, 0);
        ck_assert_msg(rc == 3, "session %d: exit %d", k, rc);
        ck_assert_msg(out.data != NULL && strcmp(out.data, "out\n") == 0,
                      "session %d: stdout [%s]", k, out.data ? out.data : "");
        ck_assert_msg(contains(&err, "err\n"), "session %d: stderr [%s]", k,
                      err.data ? err.data : "");
    }
    buf_free(&out);
    buf_free(&err);
}
END_TEST

START_TEST(exit_codes_and_streams_propagate)
{
    buf out, err;

    buf_init(&out, 1 << 20);
    buf_init(&err, 1 << 20);
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "echo out; echo err >&2; exit 3",
                             &out, &err, NULL, 0),
                     3);
    ck_assert_str_eq(out.data, "out\n");
    ck_assert(contains(&err, "err\n"));
    buf_reset(&out);
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "false", &out, NULL, NULL, 0), 1);
    /* Standard input reaches the process, and its end too. */
    buf_reset(&out);
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "wc -c", &out, NULL,
                             "hello, world\n", 13),
                     0);
    ck_assert_msg(out.data != NULL && atoi(out.data) == 13, "wc said [%s]",
                  out.data ? out.data : "");
    /* The command runs in the site's data directory. */
    buf_reset(&out);
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "pwd", &out, NULL, NULL, 0), 0);
    ck_assert_str_eq(out.data, "/data\n");
    buf_free(&out);
    buf_free(&err);
}
END_TEST

START_TEST(password_login)
{
    buf out, err;

    buf_init(&out, 1 << 20);
    buf_init(&err, 1 << 20);
    ck_assert_msg(ssh_password("alice+blog", USER_PASSWORD, "echo pw-$((40+2))",
                               &out, &err) == 0,
                  "stderr: %s", err.data ? err.data : "");
    ck_assert_str_eq(out.data, "pw-42\n");
    buf_free(&out);
    buf_free(&err);
}
END_TEST

/* Replaces every occurrence of from in s by "X". */
static void mask(char *s, const char *from)
{
    char *p;
    size_t n = strlen(from);

    while ((p = strstr(s, from)) != NULL) {
        memmove(p + 1, p + n, strlen(p + n) + 1);
        *p = 'X';
    }
}

static int64_t refused_ms(const char *login, const char *password,
                          char *msg, size_t size)
{
    buf err;
    int64_t t0 = clock_mono_ms(), t;
    int rc;

    buf_init(&err, 1 << 16);
    rc = ssh_password(login, password, "true", NULL, &err);
    t = clock_mono_ms() - t0;
    ck_assert_int_eq(rc, 255);
    snprintf(msg, size, "%s", err.data ? err.data : "");
    mask(msg, login);
    buf_free(&err);
    return t;
}

START_TEST(failures_look_alike)
{
    const char *logins[] = {"alice+blog", "nobody", "root", "alice"};
    const char *passwords[] = {"wrong password", USER_PASSWORD, USER_PASSWORD,
                               "also wrong"};
    char first[512], msg[512];
    int64_t t[4], lo = INT64_MAX, hi = 0;
    int i;

    for (i = 0; i < 4; i++) {
        t[i] = refused_ms(logins[i], passwords[i], i == 0 ? first : msg,
                          sizeof(msg));
        if (i > 0)
            ck_assert_msg(strcmp(first, msg) == 0, "[%s] vs [%s]", first, msg);
        lo = t[i] < lo ? t[i] : lo;
        hi = t[i] > hi ? t[i] : hi;
    }
    ck_assert_msg(strstr(first, "Permission denied") != NULL, "%s", first);
    /* Each costs one argon2id check: the spread is noise, not a tell. */
    fprintf(stderr, "shell: refused logins took %lld %lld %lld %lld ms\n",
            (long long)t[0], (long long)t[1], (long long)t[2], (long long)t[3]);
    ck_assert_msg(hi - lo < 400, "times %lld %lld %lld %lld ms", (long long)t[0],
                  (long long)t[1], (long long)t[2], (long long)t[3]);
}
END_TEST

START_TEST(menu_picks_a_site)
{
    char key[1024], dest[200];
    char *argv[40];
    pty_child p;

    key_path(ALICE, key, sizeof(key));
    snprintf(dest, sizeof(dest), "alice@127.0.0.1");
    ssh_argv(argv, "ssh", key, (char *const[]){"-tt", dest, NULL});
    pty_start(&p, argv);
    ck_assert_msg(pty_expect(&p, "Choose a site", 20000), "no menu: [%s]",
                  p.seen.data ? p.seen.data : "");
    ck_assert(strstr(p.seen.data, "1) blog") != NULL);
    pty_send(&p, "7\r");
    ck_assert(pty_expect(&p, "is not a choice", 5000));
    /* The choice and the first command in one burst: nothing is lost. */
    pty_send(&p, "1\recho menu-$((40+2))\r");
    ck_assert_msg(pty_expect(&p, "berth: blog", 5000), "[%s]", p.seen.data);
    ck_assert_msg(pty_expect(&p, "menu-42", 15000), "[%s]", p.seen.data);
    /* The terminal's size, then a window-change. */
    pty_send(&p, "stty size\r");
    ck_assert_msg(pty_expect(&p, "30 100", 10000), "[%s]", p.seen.data);
    {
        struct winsize ws = {.ws_row = 41, .ws_col = 121};

        ck_assert_int_eq(ioctl(p.fd, TIOCSWINSZ, &ws), 0);
        kill(p.pid, SIGWINCH);
    }
    clock_sleep_ms(500);
    pty_send(&p, "stty size\r");
    ck_assert_msg(pty_expect(&p, "41 121", 10000), "[%s]", p.seen.data);
    pty_send(&p, "exit 4\r");
    ck_assert_int_eq(pty_wait(&p, 15000), 4);
}
END_TEST

START_TEST(console_permission_required)
{
    buf out, err;

    buf_init(&out, 1 << 16);
    buf_init(&err, 1 << 16);
    ck_assert_int_ne(ssh_key(BOB, "bob+blog", "echo no", &out, &err, NULL, 0), 0);
    ck_assert(out.data == NULL || strstr(out.data, "no") == NULL);
    ck_assert_msg(contains(&err, "site.console.write"), "stderr: %s",
                  err.data ? err.data : "");
    buf_reset(&err);
    ck_assert_int_ne(ssh_key(ALICE, "alice+nosuch", "true", NULL, &err, NULL, 0),
                     0);
    ck_assert(contains(&err, "no site named nosuch"));
    buf_free(&out);
    buf_free(&err);
}
END_TEST

/* Writes n pseudo-random bytes to path. */
static void random_file(const char *path, size_t n)
{
    unsigned char *d = malloc(n);
    size_t i;
    uint32_t x = 2463534242u;

    ck_assert_ptr_nonnull(d);
    for (i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = (unsigned char)x;
    }
    ck_assert_int_eq(fs_write_atomic(path, d, n, 0644), 0);
    free(d);
}

static int same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    int same;

    ck_assert_int_eq(fs_read_file(a, 64u << 20, &x, &xl), 0);
    ck_assert_int_eq(fs_read_file(b, 64u << 20, &y, &yl), 0);
    same = xl == yl && memcmp(x, y, xl) == 0;
    free(x);
    free(y);
    return same;
}

START_TEST(sftp_batch_transfers)
{
    char local[1100], back[1100], batch[4096];
    buf out;

    snprintf(local, sizeof(local), "%s/upload.bin", tmp);
    snprintf(back, sizeof(back), "%s/download.bin", tmp);
    random_file(local, (5u << 20) + 12345);
    snprintf(batch, sizeof(batch),
             "pwd\n"
             "mkdir docs\n"
             "put %s docs/file.bin\n"
             "ls -l docs\n"
             "get docs/file.bin %s\n"
             "rename docs/file.bin docs/moved.bin\n"
             "ls docs\n"
             "chmod 600 docs/moved.bin\n"
             "ls -l docs/moved.bin\n"
             "rm docs/moved.bin\n"
             "rmdir docs\n"
             "ls\n",
             local, back);
    buf_init(&out, 1 << 20);
    ck_assert_msg(sftp_batch(ALICE, "alice+blog", batch, &out) == 0, "[%s]",
                  out.data ? out.data : "");
    ck_assert_msg(contains(&out, "Remote working directory: /"), "[%s]", out.data);
    ck_assert_msg(contains(&out, "file.bin"), "[%s]", out.data);
    ck_assert_msg(contains(&out, "moved.bin"), "[%s]", out.data);
    ck_assert_msg(contains(&out, "-rw-------"), "[%s]", out.data);
    ck_assert_msg(same_file(local, back), "downloaded file differs");
    /* The file really went through the site's directory and is gone. */
    buf_reset(&out);
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "ls -a /data", &out, NULL,
                             NULL, 0), 0);
    ck_assert_msg(!contains(&out, "docs"), "[%s]", out.data);
    buf_free(&out);
}
END_TEST

START_TEST(read_only_user_cannot_upload)
{
    char local[1100], batch[2048];
    buf out;

    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "echo hi > /data/readme.txt",
                             NULL, NULL, NULL, 0), 0);
    snprintf(local, sizeof(local), "%s/small.txt", tmp);
    ck_assert_int_eq(fs_write_atomic(local, "small\n", 6, 0644), 0);
    buf_init(&out, 1 << 20);
    /* Reading works ... */
    snprintf(batch, sizeof(batch), "ls\nget readme.txt %s/readme.txt\n", tmp);
    ck_assert_msg(sftp_batch(BOB, "bob+blog", batch, &out) == 0, "[%s]",
                  out.data ? out.data : "");
    ck_assert(contains(&out, "readme.txt"));
    /* ... writing does not. */
    buf_reset(&out);
    snprintf(batch, sizeof(batch), "put %s up.txt\n", local);
    ck_assert_int_ne(sftp_batch(BOB, "bob+blog", batch, &out), 0);
    ck_assert_msg(contains(&out, "Permission denied"), "[%s]", out.data);
    buf_reset(&out);
    ck_assert_int_ne(sftp_batch(BOB, "bob+blog", "mkdir x\n", &out), 0);
    ck_assert_int_ne(sftp_batch(BOB, "bob+blog", "rm readme.txt\n", &out), 0);
    buf_reset(&out);
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "ls /data", &out, NULL,
                             NULL, 0), 0);
    ck_assert(!contains(&out, "up.txt"));
    ck_assert(contains(&out, "readme.txt"));
    buf_free(&out);
}
END_TEST

START_TEST(escapes_are_refused)
{
    char batch[2048];
    buf out;

    buf_init(&out, 1 << 20);
    ck_assert_int_ne(sftp_batch(ALICE, "alice+blog", "cd ..\nls\n", &out), 0);
    buf_reset(&out);
    snprintf(batch, sizeof(batch), "get ../../etc/passwd %s/passwd1\n", tmp);
    ck_assert_int_ne(sftp_batch(ALICE, "alice+blog", batch, &out), 0);
    buf_reset(&out);
    snprintf(batch, sizeof(batch), "get /../etc/passwd %s/passwd2\n", tmp);
    ck_assert_int_ne(sftp_batch(ALICE, "alice+blog", batch, &out), 0);
    /* A link made inside the container to the outside leads nowhere. */
    ck_assert_int_eq(ssh_key(ALICE, "alice+blog", "ln -s /etc /data/esc", NULL,
                             NULL, NULL, 0), 0);
    buf_reset(&out);
    snprintf(batch, sizeof(batch), "get esc/passwd %s/passwd3\n", tmp);
    ck_assert_int_ne(sftp_batch(ALICE, "alice+blog", batch, &out), 0);
    /* Nor can SFTP make links. */
    buf_reset(&out);
    ck_assert_int_ne(sftp_batch(ALICE, "alice+blog", "symlink readme.txt l\n",
                                &out), 0);
    ck_assert_msg(contains(&out, "ermission denied"), "[%s]", out.data);
    {
        char p[1100];
        struct stat st;

        for (int i = 1; i <= 3; i++) {
            snprintf(p, sizeof(p), "%s/passwd%d", tmp, i);
            ck_assert_int_ne(stat(p, &st), 0);
        }
    }
    buf_free(&out);
}
END_TEST

/* Starts `ssh who+blog command` in the background, logging to log, and
 * waits until its output shows marker. */
static void background_ssh(h_proc *p, int who, const char *login,
                           const char *command, const char *log,
                           const char *marker)
{
    char key[1024], dest[200];
    char *argv[40];

    key_path(who, key, sizeof(key));
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", login);
    ssh_argv(argv, "ssh", key, (char *const[]){"-T", dest, (char *)command, NULL});
    ck_assert_int_eq(h_proc_start(p, "ssh", argv, NULL, log), 0);
    ck_assert_int_eq(h_proc_wait_log(p, marker, 20000), 0);
}

START_TEST(revoked_grant_closes_the_session)
{
    char log[1100];
    h_proc p = {0};
    int64_t t0;
    int st;

    snprintf(log, sizeof(log), "%s/carol.log", tmp);
    background_ssh(&p, CAROL, "carol+blog", "echo started; sleep 60", log,
                   "started");
    t0 = clock_mono_ms();
    grant(CAROL, "");
    st = h_proc_wait(&p, 3000);
    ck_assert_msg(st >= 0, "ssh still running 3 s after the grant went");
    ck_assert_msg(clock_mono_ms() - t0 < 1000, "closed after %lld ms",
                  (long long)(clock_mono_ms() - t0));
    ck_assert_int_ne(st, 0);
    ck_assert_int_eq(h_wait_log(log, "access revoked", 1000), 0);
    h_proc_free(&p);
    /* And carol cannot come back. */
    {
        buf err;

        buf_init(&err, 1 << 16);
        ck_assert_int_ne(ssh_key(CAROL, "carol+blog", "true", NULL, &err, NULL, 0),
                         0);
        ck_assert(contains(&err, "no site named blog"));
        buf_free(&err);
    }
}
END_TEST

START_TEST(deleted_user_loses_sftp_and_shell)
{
    char log[1100], fifo[1100], key[1024], path[200];
    char *argv[40];
    h_proc p = {0}, q = {0};
    int64_t t0;
    int fd, st;

    /* A shell ... */
    snprintf(log, sizeof(log), "%s/dave.log", tmp);
    background_ssh(&p, DAVE, "dave+blog", "echo started; sleep 60", log,
                   "started");
    /* ... and an SFTP session waiting for commands. */
    snprintf(fifo, sizeof(fifo), "%s/dave.fifo", tmp);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    fd = open(fifo, O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "pwd\n", 4), 4);
    key_path(DAVE, key, sizeof(key));
    snprintf(log, sizeof(log), "%s/dave-sftp.log", tmp);
    ssh_argv(argv, "sftp", key,
             (char *const[]){"-b", fifo, "dave+blog@127.0.0.1", NULL});
    ck_assert_int_eq(h_proc_start(&q, "sftp", argv, NULL, log), 0);
    ck_assert_int_eq(h_proc_wait_log(&q, "Remote working directory", 20000), 0);

    t0 = clock_mono_ms();
    snprintf(path, sizeof(path), "/user/%s", user_ids[DAVE]);
    as_admin("DELETE", path, NULL, 200, NULL, NULL, 0);
    st = h_proc_wait(&p, 3000);
    ck_assert_msg(st > 0, "ssh: %d", st);
    ck_assert_msg(clock_mono_ms() - t0 < 1000, "closed after %lld ms",
                  (long long)(clock_mono_ms() - t0));
    /* sftp sees its connection gone at its next command, sent a second
     * after the deletion. */
    clock_sleep_ms(1000 - (clock_mono_ms() - t0));
    ck_assert_int_eq(write(fd, "ls\n", 3), 3);
    st = h_proc_wait(&q, 3000);
    ck_assert_msg(st > 0, "sftp: %d", st);
    close(fd);
    h_proc_free(&p);
    h_proc_free(&q);
}
END_TEST

START_TEST(deleted_site_ends_its_sessions)
{
    char log[1100], path[200];
    h_proc p = {0};
    int64_t t0;

    snprintf(log, sizeof(log), "%s/alice-last.log", tmp);
    background_ssh(&p, ALICE, "alice+blog", "echo started; sleep 60", log,
                   "started");
    t0 = clock_mono_ms();
    snprintf(path, sizeof(path), "/sites/%s", site_id);
    as_admin("DELETE", path, NULL, 202, NULL, NULL, 0);
    ck_assert_int_gt(h_proc_wait(&p, 3000), 0);
    ck_assert_msg(clock_mono_ms() - t0 < 1000, "closed after %lld ms",
                  (long long)(clock_mono_ms() - t0));
    h_proc_free(&p);
}
END_TEST

START_TEST(sigterm_exits_cleanly)
{
    ck_assert_int_eq(h_proc_stop(&sproc, SIGTERM, 10000), 0);
    ck_assert_int_eq(h_wait_log(slog, "msg=stopped", 1000), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("integration/shell");
    TCase *tc = tcase_create("shell");

    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_test(tc, host_key_kept_private);
    tcase_add_test(tc, key_login_runs_a_command);
    tcase_add_test(tc, exit_codes_and_streams_propagate);
    tcase_add_test(tc, many_short_sessions_end_cleanly);
    tcase_add_test(tc, password_login);
    tcase_add_test(tc, failures_look_alike);
    tcase_add_test(tc, menu_picks_a_site);
    tcase_add_test(tc, console_permission_required);
    tcase_add_test(tc, sftp_batch_transfers);
    tcase_add_test(tc, read_only_user_cannot_upload);
    tcase_add_test(tc, escapes_are_refused);
    tcase_add_test(tc, revoked_grant_closes_the_session);
    tcase_add_test(tc, deleted_user_loses_sftp_and_shell);
    tcase_add_test(tc, deleted_site_ends_its_sessions);
    tcase_add_test(tc, sigterm_exits_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests share one panel, daemon, shell and site. */
UNIT_MAIN_NOFORK(make_suite)
