/* daemon_files.c - the real berth-daemon serving files.op.<node> over the
 * real nats-server, asked the way the shell asks: a 5 MiB file written
 * and read back in chunks, directory operations, escape attempts refused
 * with nothing outside touched, NUL bytes and malformed requests answered
 * with errors while the daemon stays up, JSON requests, the throughput
 * of a 64 MiB file through the bus, and a clean exit at the end.
 *
 * The test plays the panel (JetStream streams, node.register.* and
 * node.sync.* answered with no sites). The sites' data directories are
 * made under <data dir>/volumes before the daemon starts, with links
 * leading out of them; one site's directory belongs to uid 1234 so files
 * the daemon creates must be given to that owner. One nats-server and one
 * daemon serve the suite (CK_NOFORK); tests run in order.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/id.h"
#include "node.pb-c.h"
#include "shell.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

#define OWNER_ID  1234
#define CHUNK_W   (512u * 1024)
#define CHUNK_R   (512u * 1024)
#define BIG_BYTES (64u << 20)

static h_nats nats;
static bus *b;
static char *tmp;
static char data_dir[1024], log_path[1100], outside[1100];
static char site_dir[1200], other_dir[1200];
static char node_id[ID_UUID_LEN + 1];
static char site[ID_UUID_LEN + 1];  /* the site the tests use */
static char other[ID_UUID_LEN + 1]; /* a neighbour that must stay apart */
static char subject[160];
static h_proc dproc;

/* ------------------------------------------------------------ the panel */

static int on_register(bus_msg *m, void *ud)
{
    Berth__V1__NodeRegistered r = BERTH__V1__NODE_REGISTERED__INIT;

    (void)ud;
    r.node_id = ((Berth__V1__NodeRegister *)(void *)m->msg)->node_id;
    r.heartbeat_interval_ms = 1000;
    return bus_reply(m, &r.base);
}

static int on_sync(bus_msg *m, void *ud)
{
    Berth__V1__NodeSyncReply r = BERTH__V1__NODE_SYNC_REPLY__INIT;

    (void)ud;
    r.node_id = node_id;
    r.generated_ms = clock_wall_ms();
    return bus_reply(m, &r.base);
}

/* ------------------------------------------------------------ requests */

static Berth__V1__FileRequest freq(int op, const char *path)
{
    Berth__V1__FileRequest r = BERTH__V1__FILE_REQUEST__INIT;

    r.site_id = site;
    r.op = op;
    r.path = (char *)path;
    r.user_id = "test-user";
    return r;
}

static int fop(const Berth__V1__FileRequest *req, Berth__V1__FileReply **rep,
               bus_error *err)
{
    *rep = NULL;
    return bus_request(b, subject, &req->base, 20000, (ProtobufCMessage **)rep,
                       err);
}

static void rep_free(Berth__V1__FileReply *rep)
{
    if (rep != NULL)
        protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* Runs req and checks its outcome is want; returns the reply (free with
 * rep_free), NULL after an error. */
static Berth__V1__FileReply *expect(const Berth__V1__FileRequest *req, int want)
{
    Berth__V1__FileReply *rep = NULL;
    bus_error err = {0};
    int rc = fop(req, &rep, &err);

    ck_assert_msg(rc == want, "op %d path \"%s\" target \"%s\": %s (%s), want %s",
                  req->op, req->path, req->target, berth_errname(rc),
                  err.message, berth_errname(want));
    if (rc == 0)
        ck_assert_ptr_nonnull(rep);
    return rep;
}

static void expect_ok(const Berth__V1__FileRequest *req)
{
    rep_free(expect(req, 0));
}

/* Sends payload as a request (JSON when json) and returns the raw reply. */
static natsMsg *raw_request(const void *payload, size_t len, int json)
{
    natsMsg *msg = NULL, *reply = NULL;

    ck_assert_int_eq(natsMsg_Create(&msg, subject, NULL, payload, (int)len),
                     NATS_OK);
    if (json)
        ck_assert_int_eq(natsMsgHeader_Set(msg, "Content-Type", "application/json"),
                         NATS_OK);
    ck_assert_int_eq(natsConnection_RequestMsg(&reply, bus_nats(b), msg, 10000),
                     NATS_OK);
    natsMsg_Destroy(msg);
    return reply;
}

/* The berth code of a raw error reply (0 when it is not an error). */
static int raw_error_code(natsMsg *reply, int json)
{
    const char *hdr = NULL;
    ProtobufCMessage *m = NULL;
    char why[128];
    int code;

    if (natsMsgHeader_Get(reply, "Nats-Service-Error-Code", &hdr) != NATS_OK)
        return 0;
    ck_assert_int_eq(bus_decode(&berth__v1__error__descriptor,
                                natsMsg_GetData(reply),
                                (size_t)natsMsg_GetDataLength(reply), json, &m,
                                why, sizeof(why)),
                     0);
    code = ((Berth__V1__Error *)(void *)m)->code;
    protobuf_c_message_free_unpacked(m, NULL);
    return code;
}

/* ------------------------------------------------------------ data */

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    size_t i;

    for (i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void put(const char *dir, const char *rel, const char *text)
{
    char p[1400];

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    ck_assert_int_eq(fs_write_atomic(p, text, strlen(text), 0644), 0);
}

static void lnk(const char *target, const char *rel)
{
    char p[1400];

    snprintf(p, sizeof(p), "%s/%s", site_dir, rel);
    ck_assert_int_eq(symlink(target, p), 0);
}

static char *slurp(const char *dir, const char *rel, size_t *len)
{
    char p[1400];
    char *text = NULL;

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    if (fs_read_file(p, BIG_BYTES + 1, &text, len) != 0)
        return NULL;
    return text;
}

/* ------------------------------------------------------------ suite */

static void start_daemon(void)
{
    char nats_env[256], data[1100];
    char *argv[] = {(char *)h_bin("berth-daemon"), NULL};
    char *env[] = {nats_env, data, "BERTH_NODE_NAME=files-test",
                   "BERTH_STRICT_SUBJECTS=1", "BERTH_LOG_LEVEL=info", NULL};

    snprintf(nats_env, sizeof(nats_env), "BERTH_NATS_URL=%s", nats.url);
    snprintf(data, sizeof(data), "BERTH_DATA_DIR=%s", data_dir);
    ck_assert_int_eq(h_proc_start(&dproc, "daemon", argv, env, log_path), 0);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=ready", 15000), 0);
}

static void suite_setup(void)
{
    char idfile[1200], p[1300];
    char *text = NULL;
    size_t len = 0;

    ck_assert_int_eq(h_nats_start(&nats), 0);
    b = h_bus_open(nats.url, "berth-panel");
    ck_assert_int_eq(bus_js_setup(b), 0);
    ck_assert_int_eq(bus_serve(b, "register", "node.register.*", on_register, NULL), 0);
    ck_assert_int_eq(bus_serve(b, "sync", "node.sync.*", on_sync, NULL), 0);

    tmp = h_tempdir("daemon-files");
    ck_assert_ptr_nonnull(tmp);
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    snprintf(outside, sizeof(outside), "%s/outside", tmp);
    ck_assert_int_eq(id_uuid(site), 0);
    ck_assert_int_eq(id_uuid(other), 0);
    snprintf(site_dir, sizeof(site_dir), "%s/volumes/%s", data_dir, site);
    snprintf(other_dir, sizeof(other_dir), "%s/volumes/%s", data_dir, other);
    ck_assert_int_eq(fs_mkdirs(site_dir, 0755), 0);
    ck_assert_int_eq(fs_mkdirs(other_dir, 0755), 0);
    ck_assert_int_eq(fs_mkdirs(outside, 0755), 0);
    put(outside, "secret", "SECRET");
    put(other_dir, "secret", "NEIGHBOUR");
    put(site_dir, "hello.txt", "hello");
    snprintf(p, sizeof(p), "%s/sub", site_dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    put(site_dir, "sub/inner", "inner");
    lnk("../../../outside", "link_out");
    lnk("/etc/passwd", "link_passwd");
    lnk(other_dir, "link_abs_other");
    snprintf(p, sizeof(p), "../%s", other);
    lnk(p, "link_other");
    lnk("loop", "loop");
    lnk("sub/inner", "link_in");
    lnk("../../../outside", "link_victim");
    /* The site belongs to someone else than the daemon. */
    ck_assert_int_eq(chown(site_dir, OWNER_ID, OWNER_ID), 0);

    start_daemon();
    snprintf(idfile, sizeof(idfile), "%s/node.id", data_dir);
    ck_assert_int_eq(fs_read_file(idfile, 100, &text, &len), 0);
    snprintf(node_id, sizeof(node_id), "%s", text);
    free(text);
    snprintf(subject, sizeof(subject), "files.op.%s", node_id);
    ck_assert_int_eq(h_proc_wait_log(&dproc, "msg=\"files ready\"", 5000), 0);
}

static void suite_teardown(void)
{
    int st;

    if (dproc.pid > 0) {
        st = h_proc_stop(&dproc, SIGTERM, 15000);
        if (st != 0)
            h_log_tail(log_path, 4000);
        h_proc_free(&dproc);
    }
    bus_close(b);
    h_nats_stop(&nats);
    h_tempdir_drop(tmp, "daemon-files");
}

/* ------------------------------------------------------------ tests */

START_TEST(write_5mib_in_chunks_and_read_it_back)
{
    const size_t total = 5u << 20;
    uint8_t *data = malloc(total), *back = malloc(total);
    Berth__V1__FileRequest req;
    Berth__V1__FileReply *rep;
    size_t off, got = 0, len = 0;
    char *disk;
    int eof = 0;

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(back);
    fill(data, total, 5);
    for (off = 0; off < total; off += CHUNK_W) {
        req = freq(BERTH__V1__FILE_OP__FILE_OP_WRITE, "/big.bin");
        req.offset = off;
        req.data.data = data + off;
        req.data.len = total - off < CHUNK_W ? total - off : CHUNK_W;
        req.create = off == 0;
        req.truncate = off == 0;
        rep = expect(&req, 0);
        ck_assert_uint_eq(rep->written, req.data.len);
        ck_assert_ptr_nonnull(rep->info);
        ck_assert_uint_eq(rep->info->size, off + req.data.len);
        rep_free(rep);
    }
    /* Read back in 256 KiB pieces until eof. */
    while (!eof) {
        req = freq(BERTH__V1__FILE_OP__FILE_OP_READ, "big.bin");
        req.offset = got;
        req.length = 256 * 1024;
        rep = expect(&req, 0);
        ck_assert_uint_le(got + rep->data.len, total);
        memcpy(back + got, rep->data.data, rep->data.len);
        got += rep->data.len;
        eof = rep->eof;
        ck_assert_uint_eq(rep->info->size, total);
        rep_free(rep);
        ck_assert_uint_le(got, total);
    }
    ck_assert_uint_eq(got, total);
    ck_assert(fnv(back, total) == fnv(data, total));
    ck_assert_int_eq(memcmp(back, data, total), 0);
    /* A read past the end is empty and at eof; length 0 means the most. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_READ, "big.bin");
    req.offset = total + 10;
    rep = expect(&req, 0);
    ck_assert_uint_eq(rep->data.len, 0);
    ck_assert(rep->eof);
    rep_free(rep);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_READ, "big.bin");
    req.length = 0xffffffffu;
    rep = expect(&req, 0);
    ck_assert_uint_eq(rep->data.len, 512 * 1024);
    ck_assert(!rep->eof);
    rep_free(rep);
    /* What the disk holds, and who owns it. */
    disk = slurp(site_dir, "big.bin", &len);
    ck_assert_ptr_nonnull(disk);
    ck_assert_uint_eq(len, total);
    ck_assert_int_eq(memcmp(disk, data, total), 0);
    free(disk);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_STAT, "/big.bin");
    rep = expect(&req, 0);
    ck_assert_uint_eq(rep->info->uid, OWNER_ID);
    ck_assert_uint_eq(rep->info->gid, OWNER_ID);
    ck_assert_str_eq(rep->info->name, "big.bin");
    rep_free(rep);
    free(data);
    free(back);
}
END_TEST

/* Names in a list reply, or NULL. */
static int listed(const Berth__V1__FileReply *rep, const char *name)
{
    size_t i;

    for (i = 0; i < rep->n_entries; i++)
        if (strcmp(rep->entries[i]->name, name) == 0)
            return 1;
    return 0;
}

START_TEST(directory_operations)
{
    Berth__V1__FileRequest req;
    Berth__V1__FileReply *rep;
    size_t total = 0, pages = 0;
    struct stat st;
    char p[1400];
    int i, eof = 0;

    req = freq(BERTH__V1__FILE_OP__FILE_OP_MKDIR, "/d1");
    req.mode = 0750;
    rep = expect(&req, 0);
    ck_assert(rep->info->is_dir);
    ck_assert_uint_eq(rep->info->mode & 07777, 0750 & ~022);
    ck_assert_uint_eq(rep->info->uid, OWNER_ID);
    rep_free(rep);
    rep_free(expect(&req, BERTH_EEXIST));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_MKDIR, "/");
    rep_free(expect(&req, BERTH_EEXIST));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_MKDIR, "missing/d");
    rep_free(expect(&req, BERTH_ENOENT));

    for (i = 0; i < 7; i++) {
        snprintf(p, sizeof(p), "d1/f%d", i);
        req = freq(BERTH__V1__FILE_OP__FILE_OP_WRITE, p);
        req.data.data = (uint8_t *)"0123456789";
        req.data.len = 10;
        req.create = 1;
        req.exclusive = 1;
        req.mode = 0640;
        expect_ok(&req);
        rep_free(expect(&req, BERTH_EEXIST)); /* exclusive */
    }
    /* Without create, a missing file is not made. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_WRITE, "d1/nope");
    req.data.data = (uint8_t *)"x";
    req.data.len = 1;
    rep_free(expect(&req, BERTH_ENOENT));

    /* A listing in pages of three. */
    while (!eof) {
        req = freq(BERTH__V1__FILE_OP__FILE_OP_LIST, "/d1/");
        req.offset = total;
        req.length = 3;
        rep = expect(&req, 0);
        ck_assert_uint_le(rep->n_entries, 3);
        for (i = 0; i < (int)rep->n_entries; i++) {
            ck_assert_uint_eq(rep->entries[i]->size, 10);
            ck_assert(!rep->entries[i]->is_dir);
        }
        total += rep->n_entries;
        eof = rep->eof;
        pages++;
        rep_free(rep);
        ck_assert_uint_le(pages, 10);
    }
    ck_assert_uint_eq(total, 7);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_LIST, "/");
    rep = expect(&req, 0);
    ck_assert(rep->eof);
    ck_assert(listed(rep, "d1"));
    ck_assert(listed(rep, "hello.txt"));
    ck_assert(listed(rep, "link_out"));
    for (i = 0; i < (int)rep->n_entries; i++)
        if (strcmp(rep->entries[i]->name, "link_out") == 0)
            ck_assert(rep->entries[i]->is_link);
    rep_free(rep);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_LIST, "hello.txt");
    rep_free(expect(&req, BERTH_ENOENT));

    /* stat follows, lstat does not. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_STAT, "link_in");
    rep = expect(&req, 0);
    ck_assert(!rep->info->is_link);
    ck_assert_uint_eq(rep->info->size, 5);
    rep_free(rep);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_LSTAT, "link_out");
    rep = expect(&req, 0);
    ck_assert(rep->info->is_link);
    rep_free(rep);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_STAT, "/");
    rep = expect(&req, 0);
    ck_assert(rep->info->is_dir);
    ck_assert_str_eq(rep->info->name, "/");
    rep_free(rep);

    /* rename, with and without replacing. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RENAME, "d1/f0");
    req.target = "/d1/g";
    expect_ok(&req);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RENAME, "d1/f1");
    req.target = "d1/g";
    req.exclusive = 1;
    rep_free(expect(&req, BERTH_EEXIST));
    req.exclusive = 0;
    expect_ok(&req);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RENAME, "d1/f0");
    req.target = "d1/h";
    rep_free(expect(&req, BERTH_ENOENT));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RENAME, "/");
    req.target = "x";
    rep_free(expect(&req, BERTH_EPERM));

    /* chmod: permission bits, never setuid or setgid. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_CHMOD, "d1/g");
    req.mode = 0100600; /* SFTP sends the type bits too */
    rep = expect(&req, 0);
    ck_assert_uint_eq(rep->info->mode & 07777, 0600);
    rep_free(rep);
    req.mode = 04755;
    rep_free(expect(&req, BERTH_EPERM));
    req.mode = 02755;
    rep_free(expect(&req, BERTH_EPERM));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_CHMOD, "d1");
    req.mode = 01777;
    rep = expect(&req, 0);
    ck_assert_uint_eq(rep->info->mode & 07777, 01777);
    rep_free(rep);

    /* truncate, realpath. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_TRUNCATE, "d1/g");
    req.offset = 3;
    rep = expect(&req, 0);
    ck_assert_uint_eq(rep->info->size, 3);
    rep_free(rep);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_TRUNCATE, "d1");
    rep_free(expect(&req, BERTH_EINVAL));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REALPATH, "/d1/../d1/./g");
    rep = expect(&req, 0);
    ck_assert_str_eq(rep->path, "/d1/g");
    rep_free(rep);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REALPATH, "link_in");
    rep = expect(&req, 0);
    ck_assert_str_eq(rep->path, "/sub/inner");
    rep_free(rep);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REALPATH, ".");
    rep = expect(&req, 0);
    ck_assert_str_eq(rep->path, "/");
    rep_free(rep);

    /* remove and rmdir, each refusing the other's kind. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, "d1");
    rep_free(expect(&req, BERTH_EINVAL));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RMDIR, "d1");
    rep_free(expect(&req, BERTH_EEXIST)); /* not empty */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RMDIR, "d1/g");
    rep_free(expect(&req, BERTH_ENOENT)); /* not a directory */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RMDIR, "/");
    rep_free(expect(&req, BERTH_EPERM));
    for (i = 2; i < 7; i++) {
        snprintf(p, sizeof(p), "d1/f%d", i);
        req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, p);
        expect_ok(&req);
    }
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, "d1/g");
    expect_ok(&req);
    rep_free(expect(&req, BERTH_ENOENT));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RMDIR, "d1");
    expect_ok(&req);
    snprintf(p, sizeof(p), "%s/d1", site_dir);
    ck_assert_int_ne(lstat(p, &st), 0);

    /* Removing a link leading out removes the link only. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, "link_victim");
    expect_ok(&req);
    snprintf(p, sizeof(p), "%s/secret", outside);
    ck_assert_int_eq(stat(p, &st), 0);
}
END_TEST

typedef struct bus_attack {
    const char *path;
    int rc; /* for read, stat, list */
} bus_attack;

START_TEST(escapes_are_refused_over_the_bus)
{
    static const bus_attack attacks[] = {
        {"..", BERTH_EPERM},
        {"../", BERTH_EPERM},
        {"/..", BERTH_EPERM},
        {"../../../outside/secret", BERTH_EPERM},
        {"/../../../outside/secret", BERTH_EPERM},
        {"sub/../../x", BERTH_EPERM},
        {"./../x", BERTH_EPERM},
        {"sub/../../..", BERTH_EPERM},
        {"link_out/secret", BERTH_EPERM},
        {"link_out/", BERTH_EPERM},
        {"link_passwd", BERTH_EPERM},
        {"link_other/secret", BERTH_EPERM},
        {"link_abs_other/secret", BERTH_EPERM},
        {"loop", BERTH_EPERM},
        {"loop/x", BERTH_EPERM},
        {"a\x01" "b", BERTH_EINVAL},
        {"../\n", BERTH_EINVAL},
        {"\x1b]0;x\x07", BERTH_EINVAL},
        {"%2e%2e/%2e%2e/outside/secret", BERTH_ENOENT},
        {"..%2f..%2f..%2foutside%2fsecret", BERTH_ENOENT},
        {"\\..\\..\\outside\\secret", BERTH_ENOENT},
        {"\xe2\x80\xa4\xe2\x80\xa4/outside/secret", BERTH_ENOENT},
        {"/etc/passwd", BERTH_ENOENT},
        {"....//....//outside", BERTH_ENOENT},
    };
    static const int reads[] = {
        BERTH__V1__FILE_OP__FILE_OP_READ,
        BERTH__V1__FILE_OP__FILE_OP_STAT,
        BERTH__V1__FILE_OP__FILE_OP_LIST,
    };
    static const char *const targets[] = {
        "../evil", "link_out/evil", "/../../../outside/evil", "link_other/evil",
    };
    char big[5000], p[1400];
    Berth__V1__FileRequest req;
    Berth__V1__FileReply *rep;
    bus_error err;
    struct stat st;
    size_t i, k, len;
    char *text;

    for (i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
        for (k = 0; k < sizeof(reads) / sizeof(reads[0]); k++) {
            req = freq(reads[k], attacks[i].path);
            rep_free(expect(&req, attacks[i].rc));
        }
        if (attacks[i].rc != BERTH_ENOENT) {
            req = freq(BERTH__V1__FILE_OP__FILE_OP_REALPATH, attacks[i].path);
            rep_free(expect(&req, attacks[i].rc));
            req = freq(BERTH__V1__FILE_OP__FILE_OP_CHMOD, attacks[i].path);
            req.mode = 0777;
            rep_free(expect(&req, attacks[i].rc));
            req = freq(BERTH__V1__FILE_OP__FILE_OP_TRUNCATE, attacks[i].path);
            rep_free(expect(&req, attacks[i].rc));
        }
    }
    /* The replies say why. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_READ, "link_out/secret");
    ck_assert_int_eq(fop(&req, &rep, &err), BERTH_EPERM);
    ck_assert_str_eq(err.message, "read /link_out/secret: outside the site's directory");
    req = freq(BERTH__V1__FILE_OP__FILE_OP_READ, "sub/../../x");
    ck_assert_int_eq(fop(&req, &rep, &err), BERTH_EPERM);
    ck_assert_str_eq(err.message, "read: the path climbs above the site's root");
    req = freq(BERTH__V1__FILE_OP__FILE_OP_STAT, "a\tb");
    ck_assert_int_eq(fop(&req, &rep, &err), BERTH_EINVAL);
    ck_assert_str_eq(err.message, "stat: control character in the path");

    /* Overlong. */
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    req = freq(BERTH__V1__FILE_OP__FILE_OP_STAT, big);
    rep_free(expect(&req, BERTH_EINVAL));
    big[300] = '\0';
    req = freq(BERTH__V1__FILE_OP__FILE_OP_WRITE, big);
    req.create = 1;
    rep_free(expect(&req, BERTH_EINVAL));

    /* Writes, directories, removals and renames that would land outside. */
    for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        req = freq(BERTH__V1__FILE_OP__FILE_OP_WRITE, targets[i]);
        req.data.data = (uint8_t *)"evil";
        req.data.len = 4;
        req.create = 1;
        req.truncate = 1;
        rep_free(expect(&req, BERTH_EPERM));
        req = freq(BERTH__V1__FILE_OP__FILE_OP_MKDIR, targets[i]);
        rep_free(expect(&req, BERTH_EPERM));
        req = freq(BERTH__V1__FILE_OP__FILE_OP_RENAME, "hello.txt");
        req.target = (char *)targets[i];
        rep_free(expect(&req, BERTH_EPERM));
    }
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, "link_out/secret");
    rep_free(expect(&req, BERTH_EPERM));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, "link_other/secret");
    rep_free(expect(&req, BERTH_EPERM));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, "../../../outside/secret");
    rep_free(expect(&req, BERTH_EPERM));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RMDIR, "link_out/");
    rep_free(expect(&req, BERTH_ENOENT)); /* the link itself is no directory */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RENAME, "link_out/secret");
    req.target = "stolen";
    rep_free(expect(&req, BERTH_EPERM));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_RENAME, "hello.txt");
    req.target = "a\nb";
    rep_free(expect(&req, BERTH_EINVAL));

    /* Nothing outside changed, nothing landed next to the site. */
    text = slurp(outside, "secret", &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "SECRET");
    free(text);
    text = slurp(other_dir, "secret", &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "NEIGHBOUR");
    free(text);
    snprintf(p, sizeof(p), "%s/evil", outside);
    ck_assert_int_ne(lstat(p, &st), 0);
    snprintf(p, sizeof(p), "%s/evil", other_dir);
    ck_assert_int_ne(lstat(p, &st), 0);
    snprintf(p, sizeof(p), "%s/volumes/evil", data_dir);
    ck_assert_int_ne(lstat(p, &st), 0);
    snprintf(p, sizeof(p), "%s/hello.txt", site_dir);
    ck_assert_int_eq(stat(p, &st), 0);
    snprintf(p, sizeof(p), "%s/secret", outside);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    /* The refusals were logged. */
    ck_assert_int_eq(h_wait_log(log_path, "msg=\"file path refused\"", 1000), 0);
}
END_TEST

START_TEST(unknown_sites_and_malformed_requests)
{
    Berth__V1__FileRequest req;
    Berth__V1__FileReply *rep;
    bus_error err;
    uint8_t packed[256], *z;
    natsMsg *reply;
    size_t n;
    char js[512];

    req = freq(BERTH__V1__FILE_OP__FILE_OP_STAT, "/");
    req.site_id = "no-such-site";
    ck_assert_int_eq(fop(&req, &rep, &err), BERTH_ENOENT);
    ck_assert_str_eq(err.message, "stat: no site no-such-site on this node");
    req.site_id = "";
    rep_free(expect(&req, BERTH_EINVAL));
    req.site_id = "a/b";
    rep_free(expect(&req, BERTH_EINVAL));
    req.site_id = "..";
    rep_free(expect(&req, BERTH_EINVAL));
    req = freq(0, "/");
    rep_free(expect(&req, BERTH_ENOTSUP));
    req = freq(99, "/");
    rep_free(expect(&req, BERTH_ENOTSUP));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_WRITE, "hello.txt");
    req.offset = (uint64_t)INT64_MAX;
    req.data.data = (uint8_t *)"x";
    req.data.len = 1;
    rep_free(expect(&req, BERTH_EINVAL));
    req = freq(BERTH__V1__FILE_OP__FILE_OP_READ, "sub");
    rep_free(expect(&req, BERTH_EINVAL));

    /* A NUL byte inside the path: protobuf-c would cut the string there. */
    req = freq(BERTH__V1__FILE_OP__FILE_OP_REMOVE, "hello.txtZ../../x");
    n = protobuf_c_message_pack(&req.base, packed);
    ck_assert_uint_lt(n, sizeof(packed));
    z = memchr(packed, 'Z', n);
    ck_assert_ptr_nonnull(z);
    *z = '\0';
    reply = raw_request(packed, n, 0);
    ck_assert_int_eq(raw_error_code(reply, 0), BERTH_EINVAL);
    natsMsg_Destroy(reply);
    ck_assert_int_eq(access(site_dir, F_OK), 0);
    req = freq(BERTH__V1__FILE_OP__FILE_OP_STAT, "hello.txt");
    expect_ok(&req);

    /* Garbage, JSON garbage, a JSON NUL. */
    reply = raw_request("\xff\xff\xff\xff", 4, 0);
    ck_assert_int_eq(raw_error_code(reply, 0), BERTH_EPROTO);
    natsMsg_Destroy(reply);
    reply = raw_request("{\"path\":", 8, 1);
    ck_assert_int_eq(raw_error_code(reply, 1), BERTH_EPROTO);
    natsMsg_Destroy(reply);
    snprintf(js, sizeof(js),
             "{\"siteId\":\"%s\",\"op\":\"FILE_OP_STAT\",\"path\":\"hello.txt\\u0000/../..\"}",
             site);
    reply = raw_request(js, strlen(js), 1);
    ck_assert_int_eq(raw_error_code(reply, 1), BERTH_EPROTO);
    natsMsg_Destroy(reply);
    ck_assert(h_proc_alive(&dproc));
}
END_TEST

START_TEST(json_requests)
{
    natsMsg *reply;
    char js[512];
    const char *body;

    snprintf(js, sizeof(js),
             "{\"siteId\":\"%s\",\"op\":\"FILE_OP_WRITE\",\"path\":\"/j.txt\","
             "\"data\":\"aGVsbG8gd29ybGQ=\",\"create\":true,\"truncate\":true}",
             site);
    reply = raw_request(js, strlen(js), 1);
    ck_assert_int_eq(raw_error_code(reply, 1), 0);
    body = natsMsg_GetData(reply);
    ck_assert_ptr_nonnull(strstr(body, "\"written\":11"));
    natsMsg_Destroy(reply);
    snprintf(js, sizeof(js),
             "{\"siteId\":\"%s\",\"op\":\"FILE_OP_READ\",\"path\":\"j.txt\"}", site);
    reply = raw_request(js, strlen(js), 1);
    ck_assert_int_eq(raw_error_code(reply, 1), 0);
    body = natsMsg_GetData(reply);
    ck_assert_ptr_nonnull(strstr(body, "\"data\":\"aGVsbG8gd29ybGQ=\""));
    ck_assert_ptr_nonnull(strstr(body, "\"eof\":true"));
    natsMsg_Destroy(reply);
    snprintf(js, sizeof(js),
             "{\"siteId\":\"%s\",\"op\":\"FILE_OP_READ\",\"path\":\"../../../outside/secret\"}",
             site);
    reply = raw_request(js, strlen(js), 1);
    ck_assert_int_eq(raw_error_code(reply, 1), BERTH_EPERM);
    natsMsg_Destroy(reply);
}
END_TEST

/* ------------------------------------------------------------ throughput */

typedef struct pump {
    int write;
    size_t chunk;
    size_t total;
    uint8_t *data;
    atomic_size_t next; /* the next chunk index to take */
    atomic_int errors;
} pump;

static void *pump_main(void *arg)
{
    pump *p = arg;
    Berth__V1__FileRequest req;
    Berth__V1__FileReply *rep;
    bus_error err;
    size_t i, off, len;

    for (;;) {
        i = atomic_fetch_add(&p->next, 1);
        off = i * p->chunk;
        if (off >= p->total)
            return NULL;
        len = p->total - off < p->chunk ? p->total - off : p->chunk;
        req = freq(p->write ? BERTH__V1__FILE_OP__FILE_OP_WRITE
                            : BERTH__V1__FILE_OP__FILE_OP_READ,
                   "/huge.bin");
        req.offset = off;
        if (p->write) {
            req.data.data = p->data + off;
            req.data.len = len;
            req.create = 1;
        } else {
            req.length = (uint32_t)len;
        }
        if (fop(&req, &rep, &err) != 0 ||
            (p->write ? rep->written != len : rep->data.len != len)) {
            atomic_fetch_add(&p->errors, 1);
        } else if (!p->write) {
            memcpy(p->data + off, rep->data.data, len);
        }
        rep_free(rep);
    }
}

/* Reads the daemon's counters of the files endpoint from $SRV.STATS:
 * requests and nanoseconds spent answering them (handler, encoding and
 * publishing the reply). */
static void files_stats(int64_t *n, int64_t *ns)
{
    natsMsg *reply = NULL;
    json_t *doc, *eps, *ep;
    size_t i;

    *n = *ns = 0;
    ck_assert_int_eq(natsConnection_RequestString(&reply, bus_nats(b),
                                                  "$SRV.STATS.berth-daemon", "",
                                                  5000),
                     NATS_OK);
    doc = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply),
                     0, NULL);
    ck_assert_ptr_nonnull(doc);
    eps = json_object_get(doc, "endpoints");
    json_array_foreach(eps, i, ep) {
        if (strcmp(json_string_value(json_object_get(ep, "name")), "files") == 0) {
            *n = json_integer_value(json_object_get(ep, "num_requests"));
            *ns = json_integer_value(json_object_get(ep, "processing_time"));
        }
    }
    json_decref(doc);
    natsMsg_Destroy(reply);
}

/* Moves total bytes through the bus in chunk-sized requests, inflight at
 * a time; returns MB/s (10^6 bytes). */
static double run_pump(int write, uint8_t *data, size_t total, size_t chunk,
                       int inflight, double *busy)
{
    pthread_t th[16];
    pump p = {.write = write, .chunk = chunk, .total = total, .data = data};
    int64_t t0, ns, n0, busy0, n1, busy1;
    int i;

    atomic_init(&p.next, 0);
    atomic_init(&p.errors, 0);
    files_stats(&n0, &busy0);
    t0 = clock_mono_ns();
    for (i = 0; i < inflight; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, pump_main, &p), 0);
    for (i = 0; i < inflight; i++)
        pthread_join(th[i], NULL);
    ns = clock_mono_ns() - t0;
    files_stats(&n1, &busy1);
    ck_assert_int_eq(atomic_load(&p.errors), 0);
    ck_assert_int_eq(n1 - n0, (int64_t)((total + chunk - 1) / chunk));
    *busy = 100.0 * (double)(busy1 - busy0) / (double)ns;
    return (double)total / 1e6 / ((double)ns / 1e9);
}

START_TEST(throughput_of_64mib)
{
    static const struct {
        size_t chunk;
        int inflight;
    } runs[] = {{256 * 1024, 1}, {512 * 1024, 1}, {512 * 1024, 4}};
    uint8_t *data = malloc(BIG_BYTES), *back = malloc(BIG_BYTES);
    double w, r, wbusy, rbusy;
    size_t i;

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(back);
    fill(data, BIG_BYTES, 64);
    for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        w = run_pump(1, data, BIG_BYTES, runs[i].chunk, runs[i].inflight,
                     &wbusy);
        memset(back, 0, BIG_BYTES);
        r = run_pump(0, back, BIG_BYTES, runs[i].chunk, runs[i].inflight,
                     &rbusy);
        ck_assert(fnv(back, BIG_BYTES) == fnv(data, BIG_BYTES));
        /* "busy": the share of the wall time the daemon's handler (file
         * I/O, encoding, publishing) took; the rest is the bus. */
        printf("files.op throughput, 64 MiB, chunk %zu KiB, %d in flight: "
               "write %.0f MB/s (daemon busy %.0f%%), "
               "read %.0f MB/s (daemon busy %.0f%%)\n",
               runs[i].chunk / 1024, runs[i].inflight, w, wbusy, r, rbusy);
        fflush(stdout);
    }
    free(data);
    free(back);
    ck_assert(h_proc_alive(&dproc));
}
END_TEST

/* After all of the above the daemon is still up and stops cleanly. */
START_TEST(sigterm_exits_zero)
{
    ck_assert(h_proc_alive(&dproc));
    ck_assert_int_eq(h_proc_stop(&dproc, SIGTERM, 15000), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_files");
    TCase *tc = tcase_create("files");

    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, write_5mib_in_chunks_and_read_it_back);
    tcase_add_test(tc, directory_operations);
    tcase_add_test(tc, escapes_are_refused_over_the_bus);
    tcase_add_test(tc, unknown_sites_and_malformed_requests);
    tcase_add_test(tc, json_requests);
    tcase_add_test(tc, throughput_of_64mib);
    tcase_add_test(tc, sigterm_exits_zero);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN_NOFORK(make_suite)
