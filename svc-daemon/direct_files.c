/* direct_files.c - the file operations of the direct server,
 * /sites/<site>/files/<op> (the protocol is in docs/internals/direct.md).
 *
 * Every path goes through the sandbox (sandbox.h): the simple operations
 * through daemon_files_do(), the same code that serves the shell's SFTP;
 * streamed transfers, copies, recursive deletes and archives here, on
 * descriptors the sandbox opened. Paths come decoded exactly once: from
 * the query parameter "path" (decoded by lws) or from JSON strings.
 *
 * Uploads stream into a temporary file next to the target
 * (".berth-upload-<random>", created O_EXCL) that takes the target's
 * place with renameat2() only once the whole body is in; an upload that
 * fails or is cut off removes it, so a partial upload never replaces
 * anything. Copies are made under a temporary name too and renamed into
 * place when complete.
 */
#include "svc-daemon/direct_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/id.h"
#include "common/log.h"
#include "svc-daemon/sandbox.h"

#define LIST_MAX     100000 /* entries one listing returns */
#define TREE_DEPTH   128    /* deepest directory a copy or delete walks */
#define COPY_ENTRIES 1000000
#define TMP_PREFIX   ".berth-"

static void op_list(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_stat(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_create(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_mkdir(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_rename(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_copy(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_delete(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_chmod(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_compress(daemon_direct *d, dd_req *req, dd_resp *resp);
static void op_extract(daemon_direct *d, dd_req *req, dd_resp *resp);

#define R DD_PERM_FILES_READ
#define W DD_PERM_FILES_WRITE
#define WK DD_OP_WORKER
#define JS (DD_OP_WORKER | DD_OP_JSON)

/* The operations: name, methods, permission, flags, handler. */
static const dd_op ops[] = {
    {"list", DD_GET, R, WK, op_list},
    {"stat", DD_GET, R, WK, op_stat},
    {"read", DD_GET, R, DD_OP_DOWNLOAD | DD_OP_TRANSFER, NULL},
    {"download", DD_GET, R, DD_OP_DOWNLOAD | DD_OP_TRANSFER, NULL},
    {"write", DD_PUT | DD_POST, W, DD_OP_UPLOAD | DD_OP_TRANSFER, NULL},
    {"upload", DD_PUT | DD_POST, W, DD_OP_UPLOAD | DD_OP_TRANSFER, NULL},
    {"create", DD_POST, W, JS, op_create},
    {"mkdir", DD_POST, W, JS, op_mkdir},
    {"rename", DD_POST, W, JS, op_rename},
    {"copy", DD_POST, W, JS, op_copy},
    {"delete", DD_POST, W, JS, op_delete},
    {"chmod", DD_POST, W, JS, op_chmod},
    {"compress", DD_POST, W, JS, op_compress},
    {"extract", DD_POST, W, JS, op_extract},
};

#undef R
#undef W
#undef WK
#undef JS

const dd_op *dd_files_op(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].name, name) == 0)
            return &ops[i];
    }
    return NULL;
}

/* ------------------------------------------------------------ helpers */

/* The HTTP status of a file operation's failure. */
static int status_of(int rc)
{
    return rc == BERTH_ENOTSUP ? 400 : berth_err_http_status(rc);
}

void dd_fail_path(dd_resp *resp, int rc, const char *what, const char *path)
{
    int e = errno;

    if (path == NULL)
        path = "";
    while (*path == '/')
        path++;
    dd_error(resp, status_of(rc), rc, "%s /%s: %s", what, path,
             rc == BERTH_ETOOBIG ? "too large"
             : rc == BERTH_ENOMEM ? "out of memory"
                                  : daemon_sandbox_reason(e));
}

int dd_site_root(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    int rc;

    if (req->rootfd >= 0)
        return 0;
    rc = daemon_files_site_root(d->files, req->site, &req->rootfd);
    if (rc == BERTH_ENOENT)
        dd_error(resp, 404, rc, "no site %s on this node", req->site);
    else if (rc != 0)
        dd_error(resp, 0, rc, "the site's directory: %s", berth_strerror(rc));
    return rc;
}

void dd_give(int rootfd, int dirfd, const char *name, int fd)
{
    struct stat root;
    int r;

    if (geteuid() != 0 || fstat(rootfd, &root) != 0)
        return;
    if (root.st_uid == 0 && root.st_gid == getegid())
        return;
    if (fd >= 0)
        r = fchown(fd, root.st_uid, root.st_gid);
    else
        r = fchownat(dirfd, name, root.st_uid, root.st_gid,
                     AT_SYMLINK_NOFOLLOW);
    if (r != 0)
        log_warn("cannot give a new file to the site's owner", "name=%s "
                 "error=%s", name != NULL ? name : "",
                 daemon_sandbox_reason(errno));
}

/* A path argument: the JSON body's string key, else the query's. NULL
 * when absent or not a string. */
static const char *req_str(const dd_req *req, const char *key)
{
    json_t *j = req->body != NULL ? json_object_get(req->body, key) : NULL;

    if (j != NULL)
        return json_string_value(j);
    return dd_arg(req, key);
}

/* Reads path argument key into out, clean. Fills resp and returns non-zero
 * when it is missing or refused. */
static int req_path(const dd_req *req, const char *key, const char *dflt,
                    char out[PATH_MAX], dd_resp *resp)
{
    const char *p = req_str(req, key), *why = NULL;
    int rc;

    if (p == NULL)
        p = dflt;
    if (p == NULL) {
        dd_error(resp, 400, BERTH_EINVAL, "the parameter \"%s\" is required",
                 key);
        return BERTH_EINVAL;
    }
    rc = daemon_sandbox_clean(p, out, PATH_MAX, &why);
    if (rc != 0) {
        if (rc == BERTH_EPERM)
            log_warn("direct path refused", "site=%s user=%s path=%s "
                     "reason=%s", req->site, req->claims.user, p, why);
        dd_error(resp, status_of(rc), rc, "%s: %s", key, why);
    }
    return rc;
}

/* Runs a FileRequest through files.c. On failure fills resp. */
static int files_do(daemon_direct *d, const dd_req *req,
                    Berth__V1__FileRequest *fr, Berth__V1__FileReply *rep,
                    dd_resp *resp)
{
    char why[512];
    int rc;

    fr->site_id = (char *)req->site;
    fr->user_id = (char *)req->claims.user;
    rc = daemon_files_do(d->files, fr, rep, why, sizeof(why));
    if (rc != 0)
        dd_error(resp, status_of(rc), rc, "%s", why);
    return rc;
}

static const char *type_of(uint32_t mode)
{
    return S_ISDIR(mode)   ? "dir"
           : S_ISLNK(mode) ? "link"
           : S_ISREG(mode) ? "file"
                           : "other";
}

/* Appends the JSON of one entry (without braces' neighbours). */
static int info_json(buf *b, const char *path, const Berth__V1__FileInfo *fi)
{
    int rc = buf_puts(b, "{\"name\":");

    if (rc == 0)
        rc = dd_json_str(b, fi->name, strlen(fi->name));
    if (rc == 0 && path != NULL) {
        rc = buf_puts(b, ",\"path\":");
        if (rc == 0)
            rc = dd_json_str(b, path, strlen(path));
    }
    if (rc == 0)
        rc = buf_printf(b,
                        ",\"type\":\"%s\",\"size\":%llu,\"mode\":\"%04o\","
                        "\"mtime\":%lld}",
                        type_of(fi->mode), (unsigned long long)fi->size,
                        (unsigned)(fi->mode & 07777),
                        (long long)fi->mtime_ms);
    return rc;
}

/* Answers with status and one entry (named after path). */
static void reply_info(dd_resp *resp, int status, const char *clean,
                       const Berth__V1__FileInfo *fi)
{
    char path[PATH_MAX + 2];

    snprintf(path, sizeof(path), "/%s", clean);
    buf_reset(&resp->body);
    if (fi == NULL || info_json(&resp->body, path, fi) != 0) {
        dd_error(resp, 500, BERTH_ENOMEM, "could not build the response");
        return;
    }
    resp->status = status;
}

/* An entry from a struct stat. */
static void reply_stat(dd_resp *resp, int status, const char *clean,
                       const struct stat *st)
{
    Berth__V1__FileInfo fi = BERTH__V1__FILE_INFO__INIT;
    const char *slash = strrchr(clean, '/');

    fi.name = (char *)(clean[0] == '\0' ? "/" : slash ? slash + 1 : clean);
    fi.size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
    fi.mode = (uint32_t)st->st_mode;
    fi.mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 +
                  st->st_mtim.tv_nsec / 1000000;
    reply_info(resp, status, clean, &fi);
}

/* A random temporary name for a file being made in a directory. */
static void tmp_name(char out[NAME_MAX + 1], const char *kind)
{
    unsigned char r[8];
    int i, o;

    id_random(r, sizeof(r));
    o = snprintf(out, NAME_MAX + 1, TMP_PREFIX "%s-", kind);
    for (i = 0; i < 8; i++)
        o += snprintf(out + o, (size_t)(NAME_MAX + 1 - o), "%02x", r[i]);
}

/* Parses a mode: "0755", "755" or a JSON number. Returns 0 or -1. */
static int parse_mode(json_t *j, mode_t *mode)
{
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);

        if (v < 0 || v > 07777)
            return -1;
        *mode = (mode_t)v;
        return 0;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        char *end;
        long v;

        if (s[0] == '\0' || strlen(s) > 5 || strspn(s, "01234567") != strlen(s))
            return -1;
        v = strtol(s, &end, 8);
        if (*end != '\0' || v < 0 || v > 07777)
            return -1;
        *mode = (mode_t)v;
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------ reading */

static int info_cmp(const void *a, const void *b)
{
    const Berth__V1__FileInfo *x = *(Berth__V1__FileInfo *const *)a;
    const Berth__V1__FileInfo *y = *(Berth__V1__FileInfo *const *)b;

    if (x->is_dir != y->is_dir)
        return x->is_dir ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void op_list(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    Berth__V1__FileReply *pages = NULL;
    Berth__V1__FileInfo **all = NULL;
    char path[PATH_MAX], shown[PATH_MAX + 2];
    size_t npages = 0, n = 0, i, k;
    bool truncated = false;
    buf *b = &resp->body;
    int rc = 0;

    if (req_path(req, "path", "/", path, resp) != 0)
        return;
    for (;;) {
        Berth__V1__FileRequest fr = BERTH__V1__FILE_REQUEST__INIT;
        Berth__V1__FileReply *grown;

        grown = realloc(pages, (npages + 1) * sizeof(*pages));
        if (grown == NULL) {
            dd_error(resp, 500, BERTH_ENOMEM, "out of memory");
            goto out;
        }
        pages = grown;
        fr.op = BERTH__V1__FILE_OP__FILE_OP_LIST;
        fr.path = path;
        fr.offset = n;
        fr.length = DAEMON_FILES_LIST_MAX;
        rc = files_do(d, req, &fr, &pages[npages], resp);
        npages++;
        if (rc != 0)
            goto out;
        n += pages[npages - 1].n_entries;
        if (pages[npages - 1].eof || pages[npages - 1].n_entries == 0)
            break;
        if (n >= LIST_MAX) {
            truncated = true;
            break;
        }
    }
    all = malloc((n ? n : 1) * sizeof(*all));
    if (all == NULL) {
        dd_error(resp, 500, BERTH_ENOMEM, "out of memory");
        goto out;
    }
    n = 0;
    for (i = 0; i < npages; i++) {
        for (k = 0; k < pages[i].n_entries; k++)
            all[n++] = pages[i].entries[k];
    }
    qsort(all, n, sizeof(*all), info_cmp);
    snprintf(shown, sizeof(shown), "/%s", path);
    buf_reset(b);
    rc = buf_puts(b, "{\"path\":");
    if (rc == 0)
        rc = dd_json_str(b, shown, strlen(shown));
    if (rc == 0)
        rc = buf_puts(b, ",\"entries\":[");
    for (i = 0; rc == 0 && i < n; i++) {
        if (i > 0)
            rc = buf_putc(b, ',');
        if (rc == 0)
            rc = info_json(b, NULL, all[i]);
    }
    if (rc == 0)
        rc = buf_printf(b, "],\"truncated\":%s}", truncated ? "true" : "false");
    if (rc != 0)
        dd_error(resp, 500, rc, "the listing is too large");
    else
        resp->status = 200;
out:
    for (i = 0; i < npages; i++)
        daemon_files_reply_clear(&pages[i]);
    free(pages);
    free(all);
}

static void op_stat(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    Berth__V1__FileRequest fr = BERTH__V1__FILE_REQUEST__INIT;
    Berth__V1__FileReply rep;
    char path[PATH_MAX];

    if (req_path(req, "path", "/", path, resp) != 0)
        return;
    fr.op = BERTH__V1__FILE_OP__FILE_OP_LSTAT;
    fr.path = path;
    if (files_do(d, req, &fr, &rep, resp) == 0)
        reply_info(resp, 200, path, rep.info);
    daemon_files_reply_clear(&rep);
}

/* The HTTP date of t. */
static void http_date(char *out, size_t size, time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Parses a single "bytes=" range against size. Returns 1 with [*a, *b],
 * 0 when the header is to be ignored (malformed, several ranges), -1 when
 * it cannot be satisfied. */
static int parse_range(const char *h, uint64_t size, uint64_t *a, uint64_t *b)
{
    const char *p;
    char *end;
    unsigned long long x, y;

    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
        return 0;
    p = h + 6;
    while (*p == ' ')
        p++;
    if (*p == '-') {
        if (p[1] < '0' || p[1] > '9')
            return 0;
        errno = 0;
        y = strtoull(p + 1, &end, 10);
        if (errno != 0 || *end != '\0')
            return 0;
        if (y == 0 || size == 0)
            return -1;
        *a = y >= size ? 0 : size - y;
        *b = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    errno = 0;
    x = strtoull(p, &end, 10);
    if (errno != 0 || *end != '-')
        return 0;
    p = end + 1;
    if (*p == '\0') {
        y = size > 0 ? size - 1 : 0;
    } else {
        if (*p < '0' || *p > '9')
            return 0;
        y = strtoull(p, &end, 10);
        if (errno != 0 || *end != '\0' || y < x)
            return 0;
    }
    if (x >= size)
        return -1;
    *a = x;
    *b = y >= size ? size - 1 : y;
    return 1;
}

/* Appends name for a Content-Disposition: an ASCII fallback and the
 * RFC 5987 form. */
static void disposition(dd_resp *resp, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    char ascii[256], ext[3 * NAME_MAX + 1], value[sizeof(ascii) + sizeof(ext) + 64];
    size_t i, a = 0, e = 0;

    for (i = 0; name[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)name[i];

        if (a + 1 < sizeof(ascii))
            ascii[a++] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\'
                             ? (char)ch
                             : '_';
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || strchr("!#$&+-.^_`|~", ch) != NULL) {
            ext[e++] = (char)ch;
        } else {
            ext[e++] = '%';
            ext[e++] = hex[ch >> 4];
            ext[e++] = hex[ch & 15];
        }
    }
    ascii[a] = '\0';
    ext[e] = '\0';
    snprintf(value, sizeof(value),
             "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, ext);
    dd_header(resp, "Content-Disposition", value);
}

void dd_download(daemon_direct *d, dd_conn *c)
{
    dd_req *req = &c->req;
    dd_resp *resp = &c->resp;
    char path[PATH_MAX], etag[64], date[64], cr[96];
    uint64_t size, a = 0, b = 0;
    struct stat st;
    int fd = -1, rc, ranged = 0;

    if (req_path(req, "path", NULL, path, resp) != 0 ||
        dd_site_root(d, req, resp) != 0)
        return;
    rc = daemon_sandbox_open(req->rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY,
                             0, 0, &fd);
    if (rc != 0) {
        dd_fail_path(resp, rc, req->op->name, path);
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dd_error(resp, 400, BERTH_EINVAL, "%s /%s: %s", req->op->name, path,
                 S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        close(fd);
        return;
    }
    size = (uint64_t)st.st_size;
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    http_date(date, sizeof(date), st.st_mtim.tv_sec);
    if (req->range[0] != '\0' &&
        (req->if_range[0] == '\0' || strcmp(req->if_range, etag) == 0 ||
         strcmp(req->if_range, date) == 0))
        ranged = parse_range(req->range, size, &a, &b);
    if (ranged < 0) {
        close(fd);
        snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
        dd_error(resp, 416, BERTH_EINVAL, "%s /%s: range not satisfiable",
                 req->op->name, path);
        dd_header(resp, "Content-Range", cr);
        return;
    }
    resp->status = ranged ? 206 : 200;
    resp->content_type = "application/octet-stream";
    resp->fd = fd;
    resp->off = ranged ? a : 0;
    resp->len = ranged ? b - a + 1 : size;
    dd_header(resp, "Accept-Ranges", "bytes");
    dd_header(resp, "ETag", etag);
    dd_header(resp, "Last-Modified", date);
    dd_header(resp, "Cache-Control", "private, no-cache");
    dd_header(resp, "Content-Security-Policy", "sandbox; default-src 'none'");
    if (ranged) {
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)a,
                 (unsigned long long)b, (unsigned long long)size);
        dd_header(resp, "Content-Range", cr);
    }
    if (strcmp(req->op->name, "download") == 0) {
        const char *slash = strrchr(path, '/');

        disposition(resp, slash != NULL ? slash + 1 : path);
    }
}

/* ------------------------------------------------------------ uploads */

int dd_upload_begin(daemon_direct *d, dd_conn *c)
{
    dd_req *req = &c->req;
    dd_resp *resp = &c->resp;
    char path[PATH_MAX];
    dd_upload *up = NULL;
    struct stat st;
    mode_t mode = 0644;
    int rc, i;

    if (req_path(req, "path", NULL, path, resp) != 0 ||
        dd_site_root(d, req, resp) != 0)
        return -1;
    if (path[0] == '\0') {
        dd_error(resp, 400, BERTH_EINVAL, "upload /: is a directory");
        return -1;
    }
    up = calloc(1, sizeof(*up));
    if (up == NULL) {
        dd_error(resp, 500, BERTH_ENOMEM, "out of memory");
        return -1;
    }
    up->fd = -1;
    up->want = req->content_length;
    up->overwrite = dd_arg(req, "overwrite") == NULL || dd_flag(req, "overwrite");
    rc = daemon_sandbox_open_parent(req->rootfd, path, 0, &up->dirfd, up->name);
    if (rc != 0) {
        dd_fail_path(resp, rc, req->op->name, path);
        free(up);
        return -1;
    }
    if (fstatat(up->dirfd, up->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode) || !up->overwrite) {
            dd_error(resp, S_ISDIR(st.st_mode) ? 400 : 409,
                     S_ISDIR(st.st_mode) ? BERTH_EINVAL : BERTH_EEXIST,
                     "%s /%s: %s", req->op->name, path,
                     S_ISDIR(st.st_mode) ? "is a directory" : "exists");
            goto fail;
        }
        if (S_ISREG(st.st_mode))
            mode = st.st_mode & 0777; /* the replacement keeps the mode */
    }
    for (i = 0; i < 5 && up->fd < 0; i++) {
        tmp_name(up->tmp, "upload");
        up->fd = openat(up->dirfd, up->tmp,
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        mode);
        if (up->fd < 0 && errno != EEXIST)
            break;
    }
    if (up->fd < 0) {
        dd_fail_path(resp, daemon_sandbox_err(errno), req->op->name, path);
        goto fail;
    }
    dd_give(req->rootfd, -1, NULL, up->fd);
    c->up = up;
    return 0;
fail:
    close(up->dirfd);
    free(up);
    return -1;
}

int dd_upload_data(dd_conn *c, const void *p, size_t n)
{
    dd_upload *up = c->up;
    const char *s = p;

    while (n > 0) {
        ssize_t k = write(up->fd, s, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            up->error = daemon_sandbox_err(errno);
            return up->error;
        }
        s += k;
        n -= (size_t)k;
        up->got += (uint64_t)k;
    }
    return 0;
}

void dd_upload_abort(dd_conn *c)
{
    dd_upload *up = c->up;

    if (up == NULL)
        return;
    c->up = NULL;
    if (up->fd >= 0) {
        close(up->fd);
        unlinkat(up->dirfd, up->tmp, 0);
        log_info("direct upload abandoned", "site=%s name=%s bytes=%llu",
                 c->req.site, up->name, (unsigned long long)up->got);
    }
    close(up->dirfd);
    free(up);
}

void dd_upload_end(daemon_direct *d, dd_conn *c)
{
    dd_upload *up = c->up;
    dd_req *req = &c->req;
    char path[PATH_MAX];
    struct stat st;
    int e;

    (void)d;
    daemon_sandbox_clean(dd_arg(req, "path"), path, sizeof(path), NULL);
    if (up->got != up->want) {
        dd_error(&c->resp, 400, BERTH_EPROTO, "%s /%s: %llu of %llu bytes",
                 req->op->name, path, (unsigned long long)up->got,
                 (unsigned long long)up->want);
        dd_upload_abort(c);
        return;
    }
    if (fstat(up->fd, &st) != 0 ||
        renameat2(up->dirfd, up->tmp, up->dirfd, up->name,
                  up->overwrite ? 0 : RENAME_NOREPLACE) != 0) {
        e = errno;
        dd_upload_abort(c);
        errno = e;
        dd_fail_path(&c->resp, daemon_sandbox_err(e), req->op->name, path);
        return;
    }
    close(up->fd);
    close(up->dirfd);
    log_info("direct upload", "site=%s path=/%s bytes=%llu user=%s", req->site,
             path, (unsigned long long)up->got, req->claims.user);
    free(up);
    c->up = NULL;
    reply_stat(&c->resp, 201, path, &st);
}

/* ------------------------------------------------------------ changes */

static void op_create(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    Berth__V1__FileRequest fr = BERTH__V1__FILE_REQUEST__INIT;
    Berth__V1__FileReply rep;
    char path[PATH_MAX];

    if (req_path(req, "path", NULL, path, resp) != 0)
        return;
    fr.op = BERTH__V1__FILE_OP__FILE_OP_WRITE;
    fr.path = path;
    fr.create = 1;
    fr.exclusive = 1;
    fr.mode = 0644;
    if (files_do(d, req, &fr, &rep, resp) == 0)
        reply_info(resp, 201, path, rep.info);
    daemon_files_reply_clear(&rep);
}

/* MKDIR of one path; *exists is set when it was there already as a
 * directory (not an error then). */
static int mkdir_one(daemon_direct *d, const dd_req *req, const char *path,
                     mode_t mode, Berth__V1__FileReply *rep, bool *exists,
                     dd_resp *resp)
{
    Berth__V1__FileRequest fr = BERTH__V1__FILE_REQUEST__INIT;
    int rc;

    fr.op = BERTH__V1__FILE_OP__FILE_OP_MKDIR;
    fr.path = (char *)path;
    fr.mode = mode;
    *exists = false;
    rc = files_do(d, req, &fr, rep, resp);
    if (rc == BERTH_EEXIST) {
        daemon_files_reply_clear(rep);
        fr.op = BERTH__V1__FILE_OP__FILE_OP_STAT;
        rc = files_do(d, req, &fr, rep, resp);
        if (rc == 0 && !rep->info->is_dir) {
            dd_error(resp, 409, BERTH_EEXIST, "mkdir /%s: exists and is not "
                     "a directory", path);
            rc = BERTH_EEXIST;
        }
        *exists = rc == 0;
    }
    return rc;
}

static void op_mkdir(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    Berth__V1__FileReply rep;
    char path[PATH_MAX], prefix[PATH_MAX];
    bool parents = dd_flag(req, "parents"), exists = false;
    json_t *jm = json_object_get(req->body, "mode");
    mode_t mode = 0755;
    size_t i;
    int rc = 0;

    if (req_path(req, "path", NULL, path, resp) != 0)
        return;
    if (jm != NULL && (parse_mode(jm, &mode) != 0 || (mode & 06000))) {
        dd_error(resp, 400, BERTH_EINVAL, "\"mode\" must be octal, like "
                 "\"0755\", without setuid or setgid");
        return;
    }
    for (i = 0; parents && rc == 0 && path[i] != '\0'; i++) {
        if (path[i] != '/')
            continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        rc = mkdir_one(d, req, prefix, mode, &rep, &exists, resp);
        daemon_files_reply_clear(&rep);
    }
    if (rc != 0)
        return;
    rc = mkdir_one(d, req, path, mode, &rep, &exists, resp);
    if (rc == 0 && exists && !parents) {
        dd_error(resp, 409, BERTH_EEXIST, "mkdir /%s: exists", path);
        rc = BERTH_EEXIST;
    }
    if (rc == 0)
        reply_info(resp, exists ? 200 : 201, path, rep.info);
    daemon_files_reply_clear(&rep);
}

static void op_rename(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    Berth__V1__FileRequest fr = BERTH__V1__FILE_REQUEST__INIT;
    Berth__V1__FileReply rep;
    char from[PATH_MAX], to[PATH_MAX];

    if (req_path(req, "from", NULL, from, resp) != 0 ||
        req_path(req, "to", NULL, to, resp) != 0)
        return;
    fr.op = BERTH__V1__FILE_OP__FILE_OP_RENAME;
    fr.path = from;
    fr.target = to;
    fr.exclusive = !dd_flag(req, "overwrite");
    if (files_do(d, req, &fr, &rep, resp) == 0) {
        daemon_files_reply_clear(&rep);
        fr.op = BERTH__V1__FILE_OP__FILE_OP_LSTAT;
        fr.path = to;
        if (files_do(d, req, &fr, &rep, resp) == 0)
            reply_info(resp, 200, to, rep.info);
    }
    daemon_files_reply_clear(&rep);
}

static void op_chmod(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    Berth__V1__FileRequest fr = BERTH__V1__FILE_REQUEST__INIT;
    Berth__V1__FileReply rep;
    char path[PATH_MAX];
    mode_t mode = 0;

    if (req_path(req, "path", NULL, path, resp) != 0)
        return;
    if (parse_mode(json_object_get(req->body, "mode"), &mode) != 0) {
        dd_error(resp, 400, BERTH_EINVAL,
                 "\"mode\" must be octal, like \"0644\"");
        return;
    }
    fr.op = BERTH__V1__FILE_OP__FILE_OP_CHMOD;
    fr.path = path;
    fr.mode = mode;
    if (files_do(d, req, &fr, &rep, resp) == 0)
        reply_info(resp, 200, path, rep.info);
    daemon_files_reply_clear(&rep);
}

/* ------------------------------------------------------------ trees */

/* A walk over a tree: counts and limits, and the first failure. */
typedef struct tree {
    dev_t dev;        /* the site's file system: mounts are not crossed */
    uint64_t entries;
    uint64_t bytes;
    uint64_t skipped; /* links, sockets, devices: not copied */
    int rootfd;
    int err;          /* berth code */
    char why[256];
} tree;

static int tree_fail(tree *t, int rc, const char *what, const char *name)
{
    if (t->err == 0) {
        t->err = rc;
        snprintf(t->why, sizeof(t->why), "%s %.180s: %s", what, name,
                 rc == BERTH_ETOOBIG ? "too many entries"
                                     : daemon_sandbox_reason(errno));
    }
    return rc;
}

/* Removes name in dirfd and everything under it: never follows a link,
 * never leaves the file system. */
static int rm_at(tree *t, int dirfd, const char *name, int depth)
{
    struct dirent *de;
    struct stat st;
    DIR *dp;
    int fd, tries;

    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOTDIR || errno == ELOOP) {
            if (unlinkat(dirfd, name, 0) != 0)
                return tree_fail(t, daemon_sandbox_err(errno), "delete", name);
            t->entries++;
            return 0;
        }
        return tree_fail(t, daemon_sandbox_err(errno), "delete", name);
    }
    if (fstat(fd, &st) != 0 || st.st_dev != t->dev) {
        close(fd);
        errno = EXDEV;
        return tree_fail(t, BERTH_EPERM, "delete (a mount point)", name);
    }
    if (depth >= TREE_DEPTH) {
        close(fd);
        errno = ELOOP;
        return tree_fail(t, BERTH_EINVAL, "delete (too deep)", name);
    }
    dp = fdopendir(fd);
    if (dp == NULL) {
        close(fd);
        return tree_fail(t, BERTH_ENOMEM, "delete", name);
    }
    for (tries = 0; tries < 3 && t->err == 0; tries++) {
        rewinddir(dp);
        while (t->err == 0 && (de = readdir(dp)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                continue;
            if (S_ISDIR(st.st_mode)) {
                rm_at(t, fd, de->d_name, depth + 1);
            } else if (unlinkat(fd, de->d_name, 0) != 0) {
                tree_fail(t, daemon_sandbox_err(errno), "delete", de->d_name);
            } else {
                t->entries++;
            }
        }
        if (t->err != 0)
            break;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0) {
            t->entries++;
            closedir(dp);
            return 0;
        }
        if (errno != ENOTEMPTY)
            tree_fail(t, daemon_sandbox_err(errno), "delete", name);
    }
    closedir(dp);
    if (t->err == 0)
        tree_fail(t, BERTH_EBUSY, "delete (files keep appearing in)", name);
    return t->err;
}

static void op_delete(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    Berth__V1__FileRequest fr = BERTH__V1__FILE_REQUEST__INIT;
    Berth__V1__FileReply rep;
    char path[PATH_MAX], name[NAME_MAX + 1];
    tree t = {0};
    struct stat st;
    bool is_dir;
    int rc, dirfd = -1;

    if (req_path(req, "path", NULL, path, resp) != 0)
        return;
    if (path[0] == '\0') {
        dd_error(resp, 403, BERTH_EPERM, "delete /: the site's root stays");
        return;
    }
    fr.op = BERTH__V1__FILE_OP__FILE_OP_LSTAT;
    fr.path = path;
    rc = files_do(d, req, &fr, &rep, resp);
    if (rc != 0)
        goto out;
    is_dir = rep.info->is_dir;
    daemon_files_reply_clear(&rep);
    if (!is_dir || !dd_flag(req, "recursive")) {
        fr.op = is_dir ? BERTH__V1__FILE_OP__FILE_OP_RMDIR
                       : BERTH__V1__FILE_OP__FILE_OP_REMOVE;
        rc = files_do(d, req, &fr, &rep, resp);
        if (rc == BERTH_EEXIST)
            dd_error(resp, 409, rc, "delete /%s: the directory is not empty "
                     "(set \"recursive\")", path);
        if (rc == 0)
            dd_json(resp, 200, json_pack("{s:I}", "deleted", (json_int_t)1));
        goto out;
    }
    if (dd_site_root(d, req, resp) != 0)
        goto out;
    rc = daemon_sandbox_open_parent(req->rootfd, path, 0, &dirfd, name);
    if (rc != 0) {
        dd_fail_path(resp, rc, "delete", path);
        goto out;
    }
    if (fstat(req->rootfd, &st) != 0) {
        dd_fail_path(resp, daemon_sandbox_err(errno), "delete", path);
        goto out;
    }
    t.dev = st.st_dev;
    rc = rm_at(&t, dirfd, name, 0);
    if (rc != 0) {
        dd_error(resp, status_of(rc), rc, "delete /%s: %s (%llu removed)",
                 path, t.why, (unsigned long long)t.entries);
        goto out;
    }
    log_info("direct delete", "site=%s path=/%s entries=%llu user=%s",
             req->site, path, (unsigned long long)t.entries, req->claims.user);
    dd_json(resp, 200, json_pack("{s:I}", "deleted", (json_int_t)t.entries));
out:
    if (dirfd >= 0)
        close(dirfd);
    daemon_files_reply_clear(&rep);
}

/* Copies the regular file open as in into a new file name in dirfd. */
static int copy_file(tree *t, int in, const struct stat *st, int dirfd,
                     const char *name)
{
    int out = openat(dirfd, name,
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     st->st_mode & 0777);
    off_t off = 0;

    if (out < 0)
        return tree_fail(t, daemon_sandbox_err(errno), "copy to", name);
    dd_give(t->rootfd, -1, NULL, out);
    while (off < st->st_size) {
        ssize_t n = copy_file_range(in, &off, out, NULL,
                                    (size_t)(st->st_size - off), 0);

        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL))
            n = sendfile(out, in, &off, (size_t)(st->st_size - off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                break; /* the source shrank */
            close(out);
            return tree_fail(t, daemon_sandbox_err(errno), "copy to", name);
        }
        t->bytes += (uint64_t)n;
    }
    close(out);
    t->entries++;
    return 0;
}

/* Copies the directory open as in (a descriptor this takes) into a new
 * directory name in parent; links and special files are skipped. */
static int copy_dir(tree *t, int in, const struct stat *st, int parent,
                    const char *name, int depth)
{
    struct dirent *de;
    DIR *dp;
    int out = -1;

    if (depth >= TREE_DEPTH) {
        close(in);
        errno = ELOOP;
        return tree_fail(t, BERTH_EINVAL, "copy (too deep)", name);
    }
    if (mkdirat(parent, name, st->st_mode & 0777) != 0) {
        close(in);
        return tree_fail(t, daemon_sandbox_err(errno), "copy to", name);
    }
    dd_give(t->rootfd, parent, name, -1);
    t->entries++;
    out = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    dp = fdopendir(in);
    if (out < 0 || dp == NULL) {
        if (dp == NULL)
            close(in);
        else
            closedir(dp);
        if (out >= 0)
            close(out);
        return tree_fail(t, daemon_sandbox_err(errno), "copy to", name);
    }
    while (t->err == 0 && (de = readdir(dp)) != NULL) {
        struct stat cst;
        int cfd;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (t->entries >= COPY_ENTRIES) {
            tree_fail(t, BERTH_ETOOBIG, "copy", name);
            break;
        }
        if (fstatat(dirfd(dp), de->d_name, &cst, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (!S_ISREG(cst.st_mode) && !S_ISDIR(cst.st_mode)) {
            t->skipped++;
            continue;
        }
        cfd = openat(dirfd(dp), de->d_name,
                     O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
                         (S_ISDIR(cst.st_mode) ? O_DIRECTORY : 0));
        if (cfd < 0 || fstat(cfd, &cst) != 0) {
            if (cfd >= 0)
                close(cfd);
            tree_fail(t, daemon_sandbox_err(errno), "copy", de->d_name);
            break;
        }
        if (cst.st_dev != t->dev) {
            close(cfd);
            t->skipped++;
            continue;
        }
        if (S_ISDIR(cst.st_mode)) {
            copy_dir(t, cfd, &cst, out, de->d_name, depth + 1);
        } else {
            copy_file(t, cfd, &cst, out, de->d_name);
            close(cfd);
        }
    }
    closedir(dp);
    close(out);
    return t->err;
}

static void op_copy(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    char from[PATH_MAX], to[PATH_MAX], rfrom[PATH_MAX + 1], rto[PATH_MAX + 1];
    char tname[NAME_MAX + 1], tmp[NAME_MAX + 1];
    bool overwrite = dd_flag(req, "overwrite");
    struct stat st, root;
    tree t = {0};
    size_t n;
    int in = -1, tdir = -1, rc;

    if (req_path(req, "from", NULL, from, resp) != 0 ||
        req_path(req, "to", NULL, to, resp) != 0 ||
        dd_site_root(d, req, resp) != 0)
        return;
    if (to[0] == '\0') {
        dd_error(resp, 409, BERTH_EEXIST, "copy to /: the site's root exists");
        return;
    }
    rc = daemon_sandbox_realpath(req->rootfd, from, 0, rfrom, sizeof(rfrom));
    if (rc != 0) {
        dd_fail_path(resp, rc, "copy", from);
        return;
    }
    rc = daemon_sandbox_realpath(req->rootfd, to, 0, rto, sizeof(rto));
    if (rc != 0) {
        dd_fail_path(resp, rc, "copy to", to);
        return;
    }
    n = strlen(rfrom);
    if (strcmp(rfrom, rto) == 0 || strcmp(rfrom, "/") == 0 ||
        (strncmp(rto, rfrom, n) == 0 && rto[n] == '/')) {
        dd_error(resp, 400, BERTH_EINVAL, "copy /%s to /%s: a directory "
                 "cannot be copied into itself", from, to);
        return;
    }
    rc = daemon_sandbox_open(req->rootfd, from,
                             O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, 0, &in);
    if (rc != 0) {
        dd_fail_path(resp, rc, "copy", from);
        return;
    }
    rc = daemon_sandbox_open_parent(req->rootfd, to, 0, &tdir, tname);
    if (rc != 0) {
        dd_fail_path(resp, rc, "copy to", to);
        goto out;
    }
    if (fstat(in, &st) != 0 || fstat(req->rootfd, &root) != 0 ||
        (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
        dd_error(resp, 400, BERTH_EINVAL, "copy /%s: not a file or a directory",
                 from);
        goto out;
    }
    {
        struct stat ex;

        if (fstatat(tdir, tname, &ex, AT_SYMLINK_NOFOLLOW) == 0 &&
            (!overwrite || S_ISDIR(ex.st_mode) || S_ISDIR(st.st_mode))) {
            dd_error(resp, 409, BERTH_EEXIST, "copy to /%s: exists", to);
            goto out;
        }
    }
    t.dev = root.st_dev;
    t.rootfd = req->rootfd;
    tmp_name(tmp, "copy");
    if (S_ISDIR(st.st_mode)) {
        rc = copy_dir(&t, in, &st, tdir, tmp, 0);
        in = -1;
    } else {
        rc = copy_file(&t, in, &st, tdir, tmp);
    }
    if (rc == 0 && renameat2(tdir, tmp, tdir, tname,
                             overwrite ? 0 : RENAME_NOREPLACE) != 0)
        rc = tree_fail(&t, daemon_sandbox_err(errno), "copy to", tname);
    if (rc != 0) {
        tree cleanup = {.dev = root.st_dev, .rootfd = req->rootfd};

        rm_at(&cleanup, tdir, tmp, 0);
        dd_error(resp, status_of(rc), rc, "copy /%s to /%s: %s", from, to,
                 t.why);
        goto out;
    }
    log_info("direct copy", "site=%s from=/%s to=/%s entries=%llu bytes=%llu",
             req->site, from, to, (unsigned long long)t.entries,
             (unsigned long long)t.bytes);
    dd_json(resp, 201,
            json_pack("{s:I, s:I, s:I}", "entries", (json_int_t)t.entries,
                      "bytes", (json_int_t)t.bytes, "skipped",
                      (json_int_t)t.skipped));
out:
    if (in >= 0)
        close(in);
    if (tdir >= 0)
        close(tdir);
}

/* ------------------------------------------------------------ archives */

static void op_compress(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    char base[PATH_MAX], to[PATH_MAX], tname[NAME_MAX + 1], tmp[NAME_MAX + 1];
    json_t *jpaths = json_object_get(req->body, "paths"), *v;
    char (*clean)[PATH_MAX] = NULL;
    const char **paths = NULL;
    bool overwrite = dd_flag(req, "overwrite");
    uint64_t entries = 0, bytes = 0;
    char why[512] = "";
    struct stat st;
    size_t n = 0, i;
    int tdir = -1, fd = -1, rc;

    if (req_path(req, "root", "/", base, resp) != 0 ||
        req_path(req, "to", NULL, to, resp) != 0 ||
        dd_site_root(d, req, resp) != 0)
        return;
    if (jpaths != NULL && (!json_is_array(jpaths) || json_array_size(jpaths) == 0 ||
                           json_array_size(jpaths) > 10000)) {
        dd_error(resp, 400, BERTH_EINVAL,
                 "\"paths\" must be a list of 1 to 10000 names under \"root\"");
        return;
    }
    n = jpaths != NULL ? json_array_size(jpaths) : 1;
    clean = calloc(n, sizeof(*clean));
    paths = calloc(n, sizeof(*paths));
    if (clean == NULL || paths == NULL) {
        dd_error(resp, 500, BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (jpaths == NULL) {
        clean[0][0] = '\0'; /* everything in root */
        paths[0] = clean[0];
    }
    json_array_foreach(jpaths, i, v)
    {
        char joined[PATH_MAX * 2 + 2];
        const char *p = json_string_value(v), *bad = NULL;

        if (p == NULL) {
            dd_error(resp, 400, BERTH_EINVAL, "\"paths\" holds strings only");
            goto out;
        }
        /* Each name stays under root. */
        snprintf(joined, sizeof(joined), "%s/%s", base, p);
        rc = daemon_sandbox_clean(joined, clean[i], PATH_MAX, &bad);
        if (rc == 0 && base[0] != '\0' &&
            (strncmp(clean[i], base, strlen(base)) != 0 ||
             (clean[i][strlen(base)] != '/' &&
              clean[i][strlen(base)] != '\0')))
            rc = BERTH_EPERM, bad = "the name leaves \"root\"";
        if (rc != 0) {
            dd_error(resp, status_of(rc), rc, "paths: %s: %s", p, bad);
            goto out;
        }
        paths[i] = clean[i];
    }
    rc = daemon_sandbox_open_parent(req->rootfd, to, 0, &tdir, tname);
    if (rc != 0) {
        dd_fail_path(resp, rc, "compress to", to);
        goto out;
    }
    if (!overwrite && fstatat(tdir, tname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        dd_error(resp, 409, BERTH_EEXIST, "compress to /%s: exists", to);
        goto out;
    }
    tmp_name(tmp, "archive");
    fd = openat(tdir, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0644);
    if (fd < 0) {
        dd_fail_path(resp, daemon_sandbox_err(errno), "compress to", to);
        goto out;
    }
    dd_give(req->rootfd, -1, NULL, fd);
    rc = dd_tar_write(req->rootfd, base, paths, n, fd, &entries, &bytes, why,
                      sizeof(why));
    if (rc == 0 && renameat2(tdir, tmp, tdir, tname,
                             overwrite ? 0 : RENAME_NOREPLACE) != 0) {
        rc = daemon_sandbox_err(errno);
        snprintf(why, sizeof(why), "%s", daemon_sandbox_reason(errno));
    }
    if (rc != 0) {
        unlinkat(tdir, tmp, 0);
        dd_error(resp, status_of(rc), rc, "compress to /%s: %s", to, why);
        goto out;
    }
    fstat(fd, &st);
    log_info("direct compress", "site=%s to=/%s entries=%llu bytes=%llu",
             req->site, to, (unsigned long long)entries,
             (unsigned long long)bytes);
    dd_json(resp, 201,
            json_pack("{s:I, s:I, s:I}", "entries", (json_int_t)entries,
                      "bytes", (json_int_t)bytes, "size",
                      (json_int_t)st.st_size));
out:
    if (fd >= 0)
        close(fd);
    if (tdir >= 0)
        close(tdir);
    free(clean);
    free(paths);
}

static void op_extract(daemon_direct *d, dd_req *req, dd_resp *resp)
{
    char path[PATH_MAX], dest[PATH_MAX], dflt[PATH_MAX + 2], why[512] = "";
    uint64_t entries = 0, bytes = 0, skipped = 0;
    char *slash;
    int fd = -1, rc;
    struct stat st;

    if (req_path(req, "path", NULL, path, resp) != 0)
        return;
    snprintf(dflt, sizeof(dflt), "/%s", path);
    slash = strrchr(dflt, '/');
    *slash = '\0';
    if (req_path(req, "to", dflt[0] != '\0' ? dflt : "/", dest, resp) != 0 ||
        dd_site_root(d, req, resp) != 0)
        return;
    rc = daemon_sandbox_open(req->rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY,
                             0, 0, &fd);
    if (rc != 0) {
        dd_fail_path(resp, rc, "extract", path);
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dd_error(resp, 400, BERTH_EINVAL, "extract /%s: not a regular file",
                 path);
        goto out;
    }
    rc = dd_tar_extract(req->rootfd, dest, fd, d->extract_max,
                        d->extract_entries, dd_flag(req, "overwrite"),
                        &entries, &bytes, &skipped, why, sizeof(why));
    if (rc != 0) {
        if (rc == BERTH_ETOOBIG)
            log_warn("direct archive refused", "site=%s path=/%s reason=%s",
                     req->site, path, why);
        dd_error(resp, status_of(rc), rc, "extract /%s: %s", path, why);
        goto out;
    }
    log_info("direct extract", "site=%s path=/%s to=/%s entries=%llu "
             "bytes=%llu skipped=%llu", req->site, path, dest,
             (unsigned long long)entries, (unsigned long long)bytes,
             (unsigned long long)skipped);
    dd_json(resp, 200,
            json_pack("{s:I, s:I, s:I}", "entries", (json_int_t)entries,
                      "bytes", (json_int_t)bytes, "skipped",
                      (json_int_t)skipped));
out:
    close(fd);
}
