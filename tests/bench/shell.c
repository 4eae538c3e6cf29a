/* shell.c - berth-shell benchmark: SFTP upload and download throughput of
 * a 256 MiB file on loopback with the real OpenSSH sftp client, and the
 * shell's resident memory with 50 idle interactive sessions.
 *
 * The real stack: nats-server, PostgreSQL and berth-panel (harness/panel.h),
 * berth-daemon on the real Docker Engine, berth-shell, one site running the
 * locally built busybox image. The admin (permission "*") logs in with an
 * SSH key registered through the panel's API. The transfer goes client ->
 * shell -> NATS -> daemon -> the site's directory and back, all on this
 * machine. Every container of the run's node is removed at the end.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/id.h"
#include "tests/harness/docker.h"
#include "tests/harness/panel.h"

#define PASSWORD "shell bench admin password"
#define FILE_MIB_DEFAULT 256 /* BERTH_BENCH_SHELL_MIB changes it */
#define IDLE_SESSIONS 50
#define TARGET_MBPS 100.0

static h_panel panel;
static char admin[H_ACCESS_MAX];
static char *tmp;
static char node_id[ID_UUID_LEN + 1];
static char port_s[16];
static h_proc dproc, sproc;
static h_proc idle[IDLE_SESSIONS];
static int file_mib = FILE_MIB_DEFAULT;

static void die(const char *what)
{
    fprintf(stderr, "bench: %s\n", what);
    exit(1);
}

static void cleanup(void)
{
    int i;

    for (i = 0; i < IDLE_SESSIONS; i++)
        h_proc_free(&idle[i]);
    if (sproc.pid > 0)
        h_proc_stop(&sproc, SIGTERM, 10000);
    h_proc_free(&sproc);
    if (dproc.pid > 0)
        h_proc_stop(&dproc, SIGTERM, 10000);
    h_proc_free(&dproc);
    if (node_id[0] != '\0') {
        char label[128];
        snprintf(label, sizeof(label), "berth.node=%s", node_id);
        h_docker_rm_labelled(label);
    }
    h_tempdir_drop(tmp, "bench");
    h_panel_stop(&panel);
}

static void on_signal(int sig)
{
    (void)sig;
    cleanup();
    _exit(1);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

/* CPU seconds (user + system) pid has used so far. */
static double cpu_s(pid_t pid)
{
    char path[64], text[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    p = strrchr(text, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void start_services(void)
{
    char nats[256], data[1100], node[128], addr[64], path[1100];
    char *dargv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *sargv[] = {(char *)h_bin("berth-shell"), NULL};
    char *denv[] = {nats, data, node, NULL};
    char *senv[] = {nats, addr, data, NULL};
    char log[1100], *text = NULL;
    size_t len = 0;
    int port;

    snprintf(nats, sizeof(nats), "BERTH_NATS_URL=%s", panel.nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s/daemon", tmp);
    snprintf(node, sizeof(node), "BERTH_NODE_NAME=bench-node");
    snprintf(log, sizeof(log), "%s/daemon.log", tmp);
    if (h_proc_start(&dproc, "daemon", dargv, denv, log) != 0 ||
        h_proc_wait_log(&dproc, "msg=ready", 15000) != 0)
        die("berth-daemon did not start");
    snprintf(path, sizeof(path), "%s/daemon/node.id", tmp);
    if (fs_read_file(path, 4096, &text, &len) != 0)
        die("no node id");
    snprintf(node_id, sizeof(node_id), "%s", text);
    free(text);
    if (h_wait_log(log, "msg=\"node registered\"", 15000) != 0)
        die("the daemon did not register");
    port = h_free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(addr, sizeof(addr), "BERTH_SHELL_ADDR=127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s/shell", tmp);
    snprintf(log, sizeof(log), "%s/shell.log", tmp);
    if (h_proc_start(&sproc, "shell", sargv, senv, log) != 0 ||
        h_proc_wait_log(&sproc, "msg=ready", 15000) != 0 ||
        h_wait_port(port, 5000) != 0)
        die("berth-shell did not start");
}

static void make_site(void)
{
    char body[512], path[128];
    int64_t end = clock_mono_ms() + 60000;
    h_resp r;

    snprintf(body, sizeof(body),
             "{\"name\":\"bench\",\"image\":\"" H_TEST_IMAGE "\",\"node\":\"%s\","
             "\"command\":[\"sleep\",\"36000\"],\"memoryBytes\":134217728}",
             node_id);
    if (h_call(&panel, &r, "POST", "/sites", admin, body) != 202)
        die("cannot create the site");
    snprintf(path, sizeof(path), "/sites/%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    while (clock_mono_ms() < end) {
        int running;

        h_call(&panel, &r, "GET", path, admin, NULL);
        running = strcmp(h_jstr(json_object_get(r.json, "status"), "state"),
                         "running") == 0;
        h_resp_free(&r);
        if (running)
            return;
        clock_sleep_ms(100);
    }
    die("the site never ran");
}

static void make_key(char *key, size_t size)
{
    char pub[1200], *text = NULL, *nl, *s;
    size_t len = 0;
    json_t *j;
    h_resp r;

    snprintf(key, size, "%s/admin_key", tmp);
    {
        char *argv[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        key, NULL};
        if (h_run(argv, NULL, 0, NULL, 10000) != 0)
            die("ssh-keygen failed");
    }
    snprintf(pub, sizeof(pub), "%s.pub", key);
    if (fs_read_file(pub, 4096, &text, &len) != 0)
        die("no public key");
    nl = strchr(text, '\n');
    if (nl != NULL)
        *nl = '\0';
    j = json_pack("{s:s, s:s}", "name", "bench", "publicKey", text);
    s = json_dumps(j, JSON_COMPACT);
    if (h_call(&panel, &r, "POST", "/user/keys", admin, s) != 201)
        die("cannot add the key");
    h_resp_free(&r);
    free(s);
    json_decref(j);
    free(text);
}

static void common_args(char **argv, int *n, const char *prog, const char *key)
{
    static char *const opts[] = {
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o",
        "IdentitiesOnly=yes", NULL};
    int i;

    argv[(*n)++] = (char *)prog;
    for (i = 0; opts[i] != NULL; i++)
        argv[(*n)++] = opts[i];
    argv[(*n)++] = "-i";
    argv[(*n)++] = (char *)key;
    argv[(*n)++] = strcmp(prog, "sftp") == 0 ? "-P" : "-p";
    argv[(*n)++] = port_s;
}

/* CPU seconds used by reaped children (the sftp and ssh clients). */
static double children_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Runs one sftp batch command and returns the seconds it took; prints
 * the CPU the shell, the daemon, nats-server and the client spent
 * meanwhile (what the figure costs, whatever else runs on the machine). */
static double sftp_timed(const char *key, const char *command)
{
    double c0[4] = {cpu_s(sproc.pid), cpu_s(dproc.pid),
                    cpu_s(panel.nats.proc.pid), children_cpu_s()};
    double secs;
    char file[1100];
    char *argv[32];
    int64_t t0;
    buf out;
    int n = 0, rc;

    snprintf(file, sizeof(file), "%s/batch", tmp);
    if (fs_write_atomic(file, command, strlen(command), 0600) != 0)
        die("cannot write the batch");
    common_args(argv, &n, "sftp", key);
    argv[n++] = "-b";
    argv[n++] = file;
    argv[n++] = "admin+bench@127.0.0.1";
    argv[n] = NULL;
    buf_init(&out, 1 << 20);
    t0 = clock_mono_ns();
    rc = h_run(argv, NULL, 0, &out, 600000);
    if (rc != 0) {
        fprintf(stderr, "%s\n", out.data ? out.data : "");
        die("sftp failed");
    }
    buf_free(&out);
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    printf("shell  CPU for it: berth-shell %.2f s, berth-daemon %.2f s, "
           "nats-server %.2f s, sftp+ssh %.2f s\n", cpu_s(sproc.pid) - c0[0],
           cpu_s(dproc.pid) - c0[1], cpu_s(panel.nats.proc.pid) - c0[2],
           children_cpu_s() - c0[3]);
    return secs;
}

static void big_file(const char *path)
{
    size_t n = (size_t)file_mib << 20, i;
    unsigned char *d = malloc(n);
    uint64_t x = 88172645463325252ull;

    if (d == NULL)
        die("out of memory");
    for (i = 0; i + 8 <= n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(d + i, &x, 8);
    }
    if (fs_write_atomic(path, d, n, 0644) != 0)
        die("cannot write the test file");
    free(d);
}

static void throughput(const char *key)
{
    char local[1100], back[1100], cmd[2400];
    double up, down, mb = file_mib * 1048576.0 / 1e6;
    char *argv[] = {"cmp", local, back, NULL};

    snprintf(local, sizeof(local), "%s/big.bin", tmp);
    snprintf(back, sizeof(back), "%s/back.bin", tmp);
    big_file(local);
    snprintf(cmd, sizeof(cmd), "put %s big.bin\n", local);
    up = sftp_timed(key, cmd);
    snprintf(cmd, sizeof(cmd), "get big.bin %s\n", back);
    down = sftp_timed(key, cmd);
    if (h_run(argv, NULL, 0, NULL, 60000) != 0)
        die("the downloaded file differs");
    printf("shell  sftp upload   %d MiB: %6.2f s  %7.1f MB/s  (target >= %.0f)\n",
           file_mib, up, mb / up, TARGET_MBPS);
    printf("shell  sftp download %d MiB: %6.2f s  %7.1f MB/s  (target >= %.0f)\n",
           file_mib, down, mb / down, TARGET_MBPS);
    unlink(local);
    unlink(back);
}

static void idle_rss(const char *key, long fresh)
{
    char slog[1100], line[64];
    long before, after;
    int i;

    clock_sleep_ms(1000);
    before = rss_kib(sproc.pid);
    printf("shell  RSS: %ld KiB after start, %ld KiB after the transfers\n",
           fresh, before);
    snprintf(slog, sizeof(slog), "%s/shell.log", tmp);
    for (i = 0; i < IDLE_SESSIONS; i++) {
        char *argv[40], log[1100];
        int n = 0;

        common_args(argv, &n, "ssh", key);
        argv[n++] = "-T";
        argv[n++] = "admin+bench@127.0.0.1";
        argv[n++] = "echo up; sleep 600";
        argv[n] = NULL;
        snprintf(log, sizeof(log), "%s/idle-%d.log", tmp, i);
        if (h_proc_start(&idle[i], "ssh", argv, NULL, log) != 0)
            die("cannot start ssh");
    }
    for (i = 0; i < IDLE_SESSIONS; i++) {
        if (h_proc_wait_log(&idle[i], "up", 60000) != 0)
            die("an idle session did not start");
    }
    clock_sleep_ms(3000);
    after = rss_kib(sproc.pid);
    snprintf(line, sizeof(line), "%d", IDLE_SESSIONS);
    printf("shell  RSS: %ld KiB with %s idle sessions (%.0f KiB per "
           "session)\n",
           after, line, (double)(after - before) / IDLE_SESSIONS);
    for (i = 0; i < IDLE_SESSIONS; i++)
        h_proc_stop(&idle[i], SIGTERM, 5000);
}

int main(void)
{
    char key[1100];
    long fresh;

    if (getenv("BERTH_BENCH_SHELL_MIB") != NULL)
        file_mib = atoi(getenv("BERTH_BENCH_SHELL_MIB"));
    if (file_mib <= 0 || file_mib > 4096)
        die("BERTH_BENCH_SHELL_MIB must be 1 to 4096");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (h_image_build() != 0)
        die("cannot build the test image");
    if (h_panel_start(&panel, PASSWORD, NULL) != 0)
        die("the panel did not start");
    if (h_login(&panel, "admin", PASSWORD, admin, NULL) != 201)
        die("cannot log in");
    tmp = h_tempdir("shell-bench");
    if (tmp == NULL)
        die("no temp dir");
    start_services();
    fresh = rss_kib(sproc.pid);
    make_site();
    make_key(key, sizeof(key));
    throughput(key);
    idle_rss(key, fresh);
    cleanup();
    return 0;
}
