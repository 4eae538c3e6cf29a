/* direct_int.h - what the direct server's files share; nothing else may
 * include it. The public contract is direct.h, the protocol
 * docs/internals/direct.md.
 *
 *   direct.c          the lws context and loop thread, HTTP connections,
 *                     routing, writing responses, CORS, the worker pool
 *                     and the loop's inbox
 *   direct_util.c     building responses (JSON, errors, headers), reading
 *                     query parameters
 *   direct_auth.c     the panel's public key (bus, cache, refresh),
 *                     token checks, spent transfer tokens, revocations
 *   direct_files.c    the file operations behind /sites/<id>/files/<op>
 *   direct_tar.c      .tar.gz archives: writing and guarded extraction
 *   direct_console.c  the console websocket
 *
 * Ownership. The loop thread owns every connection (dd_conn), every
 * console client and the spent-token set. A dd_conn handed to a worker
 * (state DD_QUEUED) has its request and response owned by that worker
 * until it comes back through the inbox; meanwhile the loop touches only
 * its wsi and orphan fields. Other threads reach the loop only through
 * dd_post() (a locked queue and lws_cancel_service()).
 */
#ifndef BERTH_DAEMON_DIRECT_INT_H
#define BERTH_DAEMON_DIRECT_INT_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <libwebsockets.h>

#include "common/buf.h"
#include "common/token.h"
#include "svc-daemon/direct.h"

#define DD_ID_MAX        129          /* a bus token and its NUL */
#define DD_ORIGIN_MAX    512
#define DD_JSON_MAX      (64u << 10)  /* request bodies of JSON operations */
#define DD_RESP_MAX      (32u << 20)  /* a JSON response (large listings) */
#define DD_CHUNK         (256u << 10) /* file bytes per writeable callback */
/* Connections the direct server holds at once. libwebsockets sizes (and
 * clears) its poll table by this, by default the process's whole file
 * limit: 20,000 descriptors cost 320 KiB of memory touched at start. */
#define DD_CONN_MAX      1024
#define DD_HDR_ROOM      (8u << 10)   /* response header bytes */
#define DD_MAX_ARGS      16           /* query parameters kept */
#define DD_ARGS_MAX      (16u << 10)  /* their bytes */
#define DD_MAX_HEADERS   8            /* extra response headers */
#define DD_DRAIN_MAX     (16u << 20)  /* body bytes dropped after an early
                                         answer before closing */
#define DD_INBOX_MAX     (64u << 20)  /* console output waiting for the
                                         loop thread */

/* Permissions a direct token may carry that this server looks at. */
enum dd_perm {
    DD_PERM_CONSOLE_READ = 1 << 0,  /* site.console.read */
    DD_PERM_CONSOLE_WRITE = 1 << 1, /* site.console.write */
    DD_PERM_POWER = 1 << 2,         /* site.power */
    DD_PERM_FILES_READ = 1 << 3,    /* site.files.read */
    DD_PERM_FILES_WRITE = 1 << 4,   /* site.files.write */
};

enum dd_method {
    DD_GET = 1,
    DD_POST = 2,
    DD_PUT = 4,
    DD_DELETE = 8,
    DD_OPTIONS = 16,
    DD_HEAD = 32,
};

/* ------------------------------------------------------------ jobs */

/* Work for a worker thread and its completion on the loop. run may be
 * NULL (a message for the loop only); done runs on the loop thread, or
 * with stopping set when the server is being freed with the job still
 * queued, and must free the job. */
typedef struct dd_job dd_job;
struct dd_job {
    dd_job *next;
    void (*run)(dd_job *j);
    void (*done)(dd_job *j, bool stopping);
};

/* ------------------------------------------------------------ tokens */

/* What a verified token says. */
typedef struct dd_claims {
    char user[DD_ID_MAX];
    char site[DD_ID_MAX];
    char jti[DD_ID_MAX];
    char scope[16];
    unsigned perms; /* enum dd_perm */
    int64_t iat;
    int64_t exp; /* seconds since the epoch */
} dd_claims;

/* ------------------------------------------------------------ requests */

typedef struct dd_op dd_op;

/* A file request as a handler sees it. Strings live as long as the
 * request. */
typedef struct dd_req {
    int method;               /* enum dd_method */
    const dd_op *op;
    char site[DD_ID_MAX];
    dd_claims claims;
    json_t *body;             /* JSON operations: the body, an object */
    int nargs;
    const char *keys[DD_MAX_ARGS];
    const char *vals[DD_MAX_ARGS];
    buf argbuf;               /* the decoded query parameters */
    int rootfd;               /* the site's directory, -1 when not open */
    char range[128];          /* the Range header, "" when absent */
    char if_range[128];
    uint64_t content_length;
} dd_req;

/* A response. status 200 and a JSON body unless said otherwise; a file
 * response streams fd from off for len bytes. */
typedef struct dd_resp {
    int status;
    const char *content_type; /* static; NULL: application/json */
    buf body;
    char *headers[DD_MAX_HEADERS]; /* "Name: value", owned */
    int nheaders;
    int fd;                   /* -1: the body buf */
    uint64_t off;
    uint64_t len;
} dd_resp;

/* A handler of a file operation: fills resp from req. Runs on a worker
 * (DD_OP_WORKER) or the loop thread. */
typedef void (*dd_handler)(daemon_direct *d, dd_req *req, dd_resp *resp);

enum dd_op_flags {
    DD_OP_WORKER = 1 << 0,   /* runs on a worker thread */
    DD_OP_JSON = 1 << 1,     /* takes a JSON body */
    DD_OP_UPLOAD = 1 << 2,   /* the body streams into a file */
    DD_OP_DOWNLOAD = 1 << 3, /* the response streams from a file */
    DD_OP_TRANSFER = 1 << 4, /* spends the token */
};

struct dd_op {
    const char *name;
    int methods;   /* enum dd_method bits */
    unsigned perm; /* enum dd_perm needed */
    int flags;     /* enum dd_op_flags */
    dd_handler fn;
};

/* An upload under way: the temporary file in the target's directory. */
typedef struct dd_upload {
    int dirfd;
    int fd;
    char name[NAME_MAX + 1]; /* the target's name in dirfd */
    char tmp[NAME_MAX + 1];  /* the temporary file's */
    uint64_t want;           /* Content-Length */
    uint64_t got;
    bool overwrite;
    int error;               /* a write failed: berth code */
    int err_no;
} dd_upload;

enum dd_state {
    DD_IDLE,
    DD_BODY,    /* headers read, body arriving */
    DD_QUEUED,  /* with a worker */
    DD_WRITING, /* the response is going out */
    DD_CLOSING, /* answered early: the rest of the body is dropped */
};

typedef struct dd_client dd_client;

/* One connection; hung on its wsi with lws_set_opaque_user_data(). */
typedef struct dd_conn {
    dd_job job; /* first: the conn travels through the job queues */
    daemon_direct *d;
    struct lws *wsi; /* NULL once the connection is gone */
    enum dd_state state;
    bool orphan;     /* the connection died while DD_QUEUED */
    char origin[DD_ORIGIN_MAX];
    bool cors;       /* the answer carries CORS headers for origin */

    dd_req req;
    buf body;        /* a JSON body arriving */
    bool has_length;
    bool close_after;
    bool lingering;  /* an early answer: the body is still arriving */
    uint64_t drained;
    int completions;
    dd_upload *up;

    dd_resp resp;
    bool hdr_sent;
    size_t off;      /* of resp.body written */

    dd_client *ws;   /* a console websocket */
} dd_conn;

/* ------------------------------------------------------------ the server */

/* A spent transfer token: kept until it expires. */
typedef struct dd_spent {
    char jti[DD_ID_MAX];
    int64_t exp;
} dd_spent;

/* A revocation the panel announced, kept as long as a token may live. */
typedef struct dd_revoked {
    char user[DD_ID_MAX]; /* "" for every user */
    char site[DD_ID_MAX]; /* "" for every site */
    int64_t at;           /* seconds: tokens issued before are refused */
} dd_revoked;

/* The bus handlers' way in: it outlives the server (the bus has no
 * unsubscribe), and d is NULL once the server is freed. */
typedef struct dd_gate {
    pthread_rwlock_t lock;
    daemon_direct *d;
    struct dd_gate *next;
} dd_gate;

struct daemon_direct {
    bus *bus;
    daemon_console *console;
    daemon_sites *sites;
    daemon_files *files;
    char node[DD_ID_MAX];
    char version[64];
    char *data_dir;
    char origin[DD_ORIGIN_MAX]; /* "" : any */
    bool tls;
    uint64_t upload_max;
    uint64_t extract_max;
    uint32_t extract_entries;
    int idle_s;
    dd_gate *gate;

    /* lws */
    struct lws_context *ctx;
    struct lws_protocols protocols[2];
    int port;
    pthread_t loop_thread;
    bool loop_started;
    atomic_bool stop;
    bool dying; /* the context is being destroyed */
    unsigned char *wbuf; /* LWS_PRE + DD_HDR_ROOM + DD_CHUNK */
    lws_sorted_usec_list_t tick;

    /* workers */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    dd_job *whead, *wtail;
    bool wstop;
    pthread_t *workers;
    int nworkers;

    /* the loop's inbox */
    pthread_mutex_t ilock;
    dd_job *ihead, *itail;
    bool ibell;     /* a wake-up is pending */
    size_t ibytes;  /* console output waiting */
    uint64_t idropped;

    /* loop thread only */
    dd_client *clients;
    uint64_t next_client; /* ids of console clients */
    buf wsout;            /* LWS_PRE + one outgoing console message */
    int64_t swept_s;      /* when spent ids were last swept */
    dd_spent *spent; /* open addressing, nspent_cap a power of two */
    size_t nspent, nspent_cap;
    dd_revoked *revoked;
    size_t nrevoked;
    atomic_int nclients;

    /* the panel's key, under klock */
    pthread_mutex_t klock;
    pthread_cond_t kcond;
    unsigned char pk[TOKEN_ED25519_PK_BYTES];
    char kid[64];
    bool have_key;
    bool kstop;
    bool krefresh; /* a token named another key: fetch now */
    int64_t krefresh_ms; /* when a refresh was last asked for */
    int refresh_ms;
    pthread_t key_thread;
    bool key_started;
};

/* ------------------------------------------------------------ direct.c */

/* Hands a job to a worker. Loop thread. */
void dd_submit(daemon_direct *d, dd_job *j);

/* Queues j for the loop thread (its done runs there). Any thread. Returns
 * 0, or BERTH_EUNAVAIL once the server stops (j is not queued then). */
int dd_post(daemon_direct *d, dd_job *j);

/* ------------------------------------------------------------ direct_util.c */

/* Response helpers: a compact JSON body (consumes j; NULL gives a 500),
 * the standard error body, an extra header. */
void dd_json(dd_resp *r, int status, json_t *j);
void dd_error(dd_resp *r, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void dd_header(dd_resp *r, const char *name, const char *value);

/* The query parameter name, or NULL. */
const char *dd_arg(const dd_req *req, const char *name);

/* Whether a query or JSON flag is set ("1", "true", "yes"; JSON true). */
bool dd_flag(const dd_req *req, const char *name);

/* Appends s (n bytes) to out as a JSON string, quotes included; bytes
 * that are not UTF-8 become U+FFFD. Returns 0 or a buf code. */
int dd_json_str(buf *out, const char *s, size_t n);

/* ------------------------------------------------------------ direct_auth.c */

/* Loads the cached key and starts the key thread. Returns 0 or a code. */
int dd_auth_start(daemon_direct *d);
void dd_auth_stop(daemon_direct *d);

/* Verifies token for site and scope and checks that it grants need.
 * Fills *claims. Returns 0; BERTH_EAUTH (missing, malformed, bad
 * signature, expired, revoked; why says which) or BERTH_EPERM (another
 * node, site or scope, a permission missing). why gets whylen bytes. Loop
 * thread (it reads the revocations). */
int dd_auth_check(daemon_direct *d, const char *token, const char *site,
                  const char *scope, unsigned need, dd_claims *claims,
                  char *why, size_t whylen);

/* Spends a transfer token's id. Returns 0, BERTH_EAUTH when it was spent
 * already, BERTH_EUNAVAIL when too many are held. Loop thread. */
int dd_auth_spend(daemon_direct *d, const dd_claims *claims);

/* Forgets spent ids and revocations past their time. Loop thread. */
void dd_auth_tick(daemon_direct *d, int64_t now);

/* Records a revocation (user, site or "", at seconds). Loop thread. */
void dd_auth_revoke(daemon_direct *d, const char *user, const char *site,
                    int64_t at);

/* The names of perms as a new JSON array. */
json_t *dd_perm_names(unsigned perms);

/* ------------------------------------------------------------ direct_files.c */

/* The file operation named name, or NULL. */
const dd_op *dd_files_op(const char *name);

/* DD_OP_UPLOAD: prepares the temporary file once the headers are in;
 * fills resp and returns non-zero when the upload cannot start. */
int dd_upload_begin(daemon_direct *d, dd_conn *c);
/* Writes body bytes. Returns 0 or a berth code (the upload failed). */
int dd_upload_data(dd_conn *c, const void *p, size_t n);
/* The body is complete: the file takes the target's place; fills resp. */
void dd_upload_end(daemon_direct *d, dd_conn *c);
/* Removes the temporary file of an unfinished upload and frees it. */
void dd_upload_abort(dd_conn *c);

/* DD_OP_DOWNLOAD: opens the file, applies Range; fills resp (fd, off,
 * len, headers) or an error. Loop thread. */
void dd_download(daemon_direct *d, dd_conn *c);

/* Opens the site's directory into req->rootfd; fills resp and returns a
 * code when the site has none on this node. */
int dd_site_root(daemon_direct *d, dd_req *req, dd_resp *resp);

/* Gives a new file to the owner of the site's directory (root only). */
void dd_give(int rootfd, int dirfd, const char *name, int fd);

/* Fills resp with the error of a sandboxed call on path. */
void dd_fail_path(dd_resp *resp, int rc, const char *what, const char *path);

/* ------------------------------------------------------------ direct_tar.c */

/* Writes a gzip-compressed ustar archive of the entries paths[0..n) (clean
 * paths under rootfd, relative to base, a clean directory path) into the
 * open file fd. Never follows symbolic links (they are stored as links);
 * skips sockets, FIFOs and devices. Returns 0 with the counts, or a berth
 * code with a sentence in why. */
int dd_tar_write(int rootfd, const char *base, const char *const *paths,
                 size_t n, int fd, uint64_t *entries, uint64_t *bytes,
                 char *why, size_t whylen);

/* Extracts the .tar.gz open as fd into the directory dest (clean) under
 * rootfd. First reads the whole archive and refuses it (BERTH_ETOOBIG)
 * past max_bytes of file data or max_entries entries, or with a path that
 * leaves dest (BERTH_EPERM), or (without overwrite) one that exists
 * (BERTH_EEXIST); then extracts regular files and directories only (links,
 * devices and FIFOs are skipped and counted). Returns 0 with the counts or
 * a berth code with a sentence in why. */
int dd_tar_extract(int rootfd, const char *dest, int fd, uint64_t max_bytes,
                   uint64_t max_entries, bool overwrite, uint64_t *entries,
                   uint64_t *bytes, uint64_t *skipped, char *why,
                   size_t whylen);

/* ------------------------------------------------------------ direct_console.c */

/* The websocket callbacks of a console connection (path already checked
 * by direct.c). Return what the lws callback returns. */
int dd_console_open(daemon_direct *d, dd_conn *c, const char *site,
                    const char *token);
int dd_console_receive(dd_conn *c, const void *in, size_t len);
int dd_console_writeable(dd_conn *c);
void dd_console_closed(dd_conn *c);

/* Every 250 ms on the loop: auth time-outs, expiring tokens, rate limits,
 * dropped-output notices. */
void dd_console_tick(daemon_direct *d, int64_t now_ms);

/* Installs the console watcher and the bus subscriptions. */
int dd_console_start(daemon_direct *d);
/* Removes the watcher (before the console is freed). */
void dd_console_stop(daemon_direct *d);

/* A user (every user when user is "") lost access: closes the matching
 * consoles (of site, or of every site when site is ""). Loop thread. */
void dd_console_revoked(daemon_direct *d, const char *user, const char *site);

/* Closes every console client (the server stops). Loop thread. */
void dd_console_close_all(daemon_direct *d);

#endif
