/* files.c - file operations in a site's data directory through the
 * sandbox, and the files.op.<node> endpoint. */
#include "svc-daemon/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "svc-daemon/sandbox.h"

#define FILES_ID_MAX      129 /* a bus token (at most 128 bytes) + NUL */
#define FILES_SUBJECT_MAX 192
/* Requests served at once: one user's slow operation (a large recursive
 * delete, a disk that stalls) does not hold up everyone else's SFTP, and
 * a transfer's pipelined pieces overlap. */
#define FILES_THREADS 4
/* Bytes of names one LIST reply may carry, with room for the rest of each
 * entry, well below BUS_PAYLOAD_MAX. */
#define FILES_LIST_BYTES (640u * 1024)
#define FILES_ENTRY_COST 128 /* a FileInfo's other fields, JSON keys too */

/* The bus handler reaches the module through a gate: daemon_files_free()
 * closes it (f = NULL) under the write lock, so a request under way ends
 * first and later ones are refused. nats.c keeps the subscription until
 * the bus closes, after the module is gone, so the gate outlives the
 * module: it stays on a list that keeps it reachable for leak checkers. */
typedef struct files_gate {
    pthread_rwlock_t lock;
    daemon_files *f; /* NULL once the module is freed */
    struct files_gate *next;
} files_gate;

static pthread_mutex_t files_gates_mu = PTHREAD_MUTEX_INITIALIZER;
static files_gate *files_gates;

struct daemon_files {
    int volfd; /* <data dir>/volumes, O_PATH */
    unsigned sbflags;
    char node[FILES_ID_MAX];
    files_gate *gate;
};

/* One request under way. */
typedef struct files_ctx {
    daemon_files *f;
    const Berth__V1__FileRequest *req;
    Berth__V1__FileReply *rep;
    const char *op;  /* its name, for messages */
    int rootfd;      /* the site's directory */
    char path[PATH_MAX]; /* req->path, clean ("" for the root) */
    char *why;
    size_t whylen;
} files_ctx;

typedef int (*files_fn)(files_ctx *c);

/* ------------------------------------------------------------ replies */

/* Writes a sentence into c->why and returns rc. */
__attribute__((format(printf, 3, 4))) static int
files_fail(files_ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->why, c->whylen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Fails after a sandboxed call on path (clean): rc and errno (still the
 * call's) give the reason. Escapes are logged as warnings. */
static int files_fail_at(files_ctx *c, int rc, const char *path)
{
    int e = errno;

    if (rc == BERTH_EPERM && (e == EXDEV || e == ELOOP))
        log_warn("file path refused", "site=%s op=%s path=%s user=%s reason=%s",
                 c->req->site_id, c->op, path, c->req->user_id,
                 daemon_sandbox_reason(e));
    return files_fail(c, rc, "%s /%s: %s", c->op, path,
                      daemon_sandbox_reason(e));
}

static int files_fail_sys(files_ctx *c, int rc)
{
    return files_fail_at(c, rc, c->path);
}

/* Returns 1 when s[0..n) is valid UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF), which protobuf strings must be. */
static int utf8_valid_n(const unsigned char *s, size_t n)
{
    size_t i = 0, k, len;
    unsigned cp;

    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

/* Copies a file name for a reply. A name that is not UTF-8 (a file made
 * inside the container with another encoding) cannot travel in a protobuf
 * string: each byte of a bad sequence becomes U+FFFD. NULL when out of
 * memory. */
static char *files_name_dup(const char *name)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t n = strlen(name), i, o = 0, step;
    char *out;

    if (utf8_valid_n(s, n))
        return strdup(name);
    out = malloc(n * 3 + 1);
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i += step) {
        step = 1;
        if (s[i] < 0x80) {
            out[o++] = (char)s[i];
            continue;
        }
        for (step = 4; step > 1; step--) {
            if (i + step <= n && utf8_valid_n(s + i, step))
                break;
        }
        if (step > 1) {
            memcpy(out + o, s + i, step);
            o += step;
            continue;
        }
        memcpy(out + o, "\xef\xbf\xbd", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* The most bytes name takes in a reply: JSON escapes included. */
static size_t files_name_cost(const char *name)
{
    size_t n = 0;

    for (; *name != '\0'; name++) {
        unsigned char ch = (unsigned char)*name;
        n += ch < 0x20 ? 6 : ch == '"' || ch == '\\' ? 2 : 1;
    }
    return n;
}

/* Makes a FileInfo for st named name (copied). NULL when out of memory. */
static Berth__V1__FileInfo *files_info_new(const char *name,
                                           const struct stat *st)
{
    Berth__V1__FileInfo *fi = malloc(sizeof(*fi));

    if (fi == NULL)
        return NULL;
    berth__v1__file_info__init(fi);
    fi->name = files_name_dup(name);
    if (fi->name == NULL) {
        free(fi);
        return NULL;
    }
    fi->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
    fi->mode = (uint32_t)st->st_mode;
    fi->mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 +
                   st->st_mtim.tv_nsec / 1000000;
    fi->is_dir = S_ISDIR(st->st_mode);
    fi->is_link = S_ISLNK(st->st_mode);
    fi->uid = st->st_uid;
    fi->gid = st->st_gid;
    return fi;
}

static void files_info_free(Berth__V1__FileInfo *fi)
{
    if (fi == NULL)
        return;
    if (fi->name != protobuf_c_empty_string)
        free(fi->name);
    free(fi);
}

/* The name the reply gives the request's path: its last component, "/"
 * for the root. */
static const char *files_base(const files_ctx *c)
{
    const char *slash = strrchr(c->path, '/');

    if (c->path[0] == '\0')
        return "/";
    return slash != NULL ? slash + 1 : c->path;
}

/* Puts the FileInfo of st in the reply. */
static int files_set_info(files_ctx *c, const struct stat *st)
{
    c->rep->info = files_info_new(files_base(c), st);
    if (c->rep->info == NULL)
        return files_fail(c, BERTH_ENOMEM, "%s: out of memory", c->op);
    return 0;
}

void daemon_files_reply_clear(Berth__V1__FileReply *rep)
{
    size_t i;

    if (rep == NULL)
        return;
    files_info_free(rep->info);
    for (i = 0; i < rep->n_entries; i++)
        files_info_free(rep->entries[i]);
    free(rep->entries);
    free(rep->data.data);
    if (rep->path != NULL && rep->path != protobuf_c_empty_string)
        free(rep->path);
    berth__v1__file_reply__init(rep);
}

/* ------------------------------------------------------------ helpers */

/* Gives a new file or directory to the owner of the site's directory when
 * the daemon runs as root, so the site's own processes can use it. */
static void files_give(files_ctx *c, int dirfd, const char *name, int fd)
{
    struct stat root;
    int r;

    if (geteuid() != 0 || fstat(c->rootfd, &root) != 0)
        return;
    if (root.st_uid == 0 && root.st_gid == getegid())
        return;
    if (fd >= 0)
        r = fchown(fd, root.st_uid, root.st_gid);
    else
        r = fchownat(dirfd, name, root.st_uid, root.st_gid,
                     AT_SYMLINK_NOFOLLOW);
    if (r != 0)
        log_warn("cannot give a new file to the site's owner",
                 "site=%s path=%s error=%s", c->req->site_id, c->req->path,
                 daemon_sandbox_reason(errno));
}

/* Opens the request's path as a regular file with oflags; anything else
 * (a directory, a FIFO, a socket) is refused without blocking on it. */
static int files_open_regular(files_ctx *c, int oflags, int *fd,
                              struct stat *st)
{
    int rc;

    rc = daemon_sandbox_open(c->rootfd, c->path, oflags | O_NONBLOCK | O_NOCTTY,
                             0, c->f->sbflags, fd);
    if (rc != 0)
        return files_fail_sys(c, rc);
    if (fstat(*fd, st) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        goto out;
    }
    if (!S_ISREG(st->st_mode)) {
        rc = files_fail(c, S_ISDIR(st->st_mode) ? BERTH_EINVAL : BERTH_ENOTSUP,
                        "%s /%s: %s", c->op, c->path,
                        S_ISDIR(st->st_mode) ? "is a directory"
                                             : "not a regular file");
        goto out;
    }
    return 0;
out:
    close(*fd);
    *fd = -1;
    return rc;
}

/* Checks a mode from the request for chmod: permission bits only, never
 * setuid or setgid. */
static int files_check_mode(files_ctx *c, mode_t *mode)
{
    mode_t m = (mode_t)c->req->mode & 07777;

    if (m & (S_ISUID | S_ISGID))
        return files_fail(c, BERTH_EPERM,
                          "%s /%s: setuid and setgid bits are not allowed",
                          c->op, c->path);
    *mode = m;
    return 0;
}

/* ------------------------------------------------------------ operations */

static int op_stat(files_ctx *c)
{
    struct stat st;
    int rc;

    rc = daemon_sandbox_stat(c->rootfd, c->path, c->f->sbflags, &st);
    if (rc != 0)
        return files_fail_sys(c, rc);
    return files_set_info(c, &st);
}

static int op_lstat(files_ctx *c)
{
    struct stat st;
    int rc;

    rc = daemon_sandbox_lstat(c->rootfd, c->path, c->f->sbflags, &st);
    if (rc != 0)
        return files_fail_sys(c, rc);
    return files_set_info(c, &st);
}

/* Lists a page of a directory in readdir order: offset entries skipped,
 * then up to length entries or as many names as fit the reply. */
static int op_list(files_ctx *c)
{
    Berth__V1__FileReply *rep = c->rep;
    uint64_t skip = c->req->offset;
    size_t max = c->req->length, bytes = 0, cost;
    Berth__V1__FileInfo *fi;
    struct dirent *de;
    struct stat st;
    DIR *d = NULL;
    int fd = -1, rc;

    if (max == 0)
        max = DAEMON_FILES_LIST_DEFAULT;
    if (max > DAEMON_FILES_LIST_MAX)
        max = DAEMON_FILES_LIST_MAX;
    rc = daemon_sandbox_open(c->rootfd, c->path, O_RDONLY | O_DIRECTORY, 0,
                             c->f->sbflags, &fd);
    if (rc != 0)
        return files_fail_sys(c, rc);
    d = fdopendir(fd);
    if (d == NULL) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        close(fd);
        goto out;
    }
    rep->entries = calloc(max, sizeof(*rep->entries));
    if (rep->entries == NULL) {
        rc = files_fail(c, BERTH_ENOMEM, "%s: out of memory", c->op);
        goto out;
    }
    rep->eof = 1;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = files_fail_sys(c, daemon_sandbox_err(errno));
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (skip > 0) {
            skip--;
            continue;
        }
        if (rep->n_entries == max) {
            rep->eof = 0;
            break;
        }
        /* An entry removed since readdir saw it is left out. */
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        fi = files_info_new(de->d_name, &st);
        if (fi == NULL) {
            rc = files_fail(c, BERTH_ENOMEM, "%s: out of memory", c->op);
            break;
        }
        /* An entry that does not fit opens the next page. */
        cost = files_name_cost(fi->name) + FILES_ENTRY_COST;
        if (bytes + cost > FILES_LIST_BYTES) {
            files_info_free(fi);
            rep->eof = 0;
            break;
        }
        bytes += cost;
        rep->entries[rep->n_entries++] = fi;
    }
out:
    if (d != NULL)
        closedir(d);
    return rc;
}

static int op_read(files_ctx *c)
{
    Berth__V1__FileReply *rep = c->rep;
    uint64_t off = c->req->offset;
    size_t want = c->req->length, got = 0;
    struct stat st;
    ssize_t n;
    int fd = -1, rc;

    if (want == 0 || want > DAEMON_FILES_READ_MAX)
        want = DAEMON_FILES_READ_MAX;
    if (off > (uint64_t)INT64_MAX)
        return files_fail(c, BERTH_EINVAL, "%s /%s: offset out of range",
                          c->op, c->path);
    rc = files_open_regular(c, O_RDONLY, &fd, &st);
    if (rc != 0)
        return rc;
    /* Only what the file holds now is allocated. */
    if ((uint64_t)st.st_size <= off)
        want = 0;
    else if ((uint64_t)st.st_size - off < want)
        want = (size_t)((uint64_t)st.st_size - off);
    if (want > 0) {
        rep->data.data = malloc(want);
        if (rep->data.data == NULL) {
            rc = files_fail(c, BERTH_ENOMEM, "%s: out of memory", c->op);
            goto out;
        }
    }
    while (got < want) {
        n = pread(fd, rep->data.data + got, want - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = files_fail_sys(c, daemon_sandbox_err(errno));
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    rep->data.len = got;
    rep->eof = off + got >= (uint64_t)st.st_size;
    rc = files_set_info(c, &st);
out:
    close(fd);
    return rc;
}

/* Opens the file for WRITE. A file the request creates is created with
 * O_EXCL, so the daemon knows it made it (and gives it to the site's
 * owner); an existing one is then opened as it is. Writing through a
 * dangling link is refused (ENOENT). */
static int files_open_write(files_ctx *c, int *fd, struct stat *st)
{
    const Berth__V1__FileRequest *req = c->req;
    int oflags = O_WRONLY | (req->truncate ? O_TRUNC : 0);
    mode_t mode = (mode_t)req->mode & 0777;
    int rc = 0, i;

    if (mode == 0)
        mode = 0644;

    if (!req->create)
        return files_open_regular(c, oflags, fd, st);
    for (i = 0; i < 3; i++) {
        rc = daemon_sandbox_open(c->rootfd, c->path,
                                 oflags | O_CREAT | O_EXCL | O_NONBLOCK |
                                     O_NOCTTY,
                                 mode, c->f->sbflags, fd);
        if (rc == 0) {
            files_give(c, -1, NULL, *fd);
            if (fstat(*fd, st) != 0) {
                rc = files_fail_sys(c, daemon_sandbox_err(errno));
                close(*fd);
                *fd = -1;
            }
            return rc;
        }
        if (rc != BERTH_EEXIST || req->exclusive)
            return files_fail_sys(c, rc);
        rc = daemon_sandbox_open(c->rootfd, c->path,
                                 oflags | O_NONBLOCK | O_NOCTTY, 0,
                                 c->f->sbflags, fd);
        if (rc != BERTH_ENOENT)
            break;
    }
    if (rc != 0)
        return files_fail_sys(c, rc);
    if (fstat(*fd, st) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
    } else if (!S_ISREG(st->st_mode)) {
        rc = files_fail(c, BERTH_ENOTSUP, "%s /%s: not a regular file", c->op,
                        c->path);
    }
    if (rc != 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

static int op_write(files_ctx *c)
{
    const Berth__V1__FileRequest *req = c->req;
    uint64_t off = req->offset;
    size_t len = req->data.len, done = 0;
    struct stat st;
    ssize_t n;
    int fd = -1, rc;

    if (off > (uint64_t)INT64_MAX - len)
        return files_fail(c, BERTH_EINVAL, "%s /%s: offset out of range",
                          c->op, c->path);
    rc = files_open_write(c, &fd, &st);
    if (rc != 0)
        return rc;
    while (done < len) {
        n = pwrite(fd, req->data.data + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = files_fail_sys(c, daemon_sandbox_err(errno));
            goto out;
        }
        done += (size_t)n;
    }
    c->rep->written = (uint32_t)done;
    if (fstat(fd, &st) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        goto out;
    }
    rc = files_set_info(c, &st);
out:
    close(fd);
    return rc;
}

static int op_mkdir(files_ctx *c)
{
    mode_t mode = (mode_t)c->req->mode & 01777;
    char name[NAME_MAX + 1];
    struct stat st;
    int dirfd = -1, rc;

    if (mode == 0)
        mode = 0755;
    if (c->path[0] == '\0')
        return files_fail(c, BERTH_EEXIST, "%s /: the site's root exists",
                          c->op);
    rc = daemon_sandbox_open_parent(c->rootfd, c->path, c->f->sbflags, &dirfd,
                                    name);
    if (rc != 0)
        return files_fail_sys(c, rc);
    if (mkdirat(dirfd, name, mode) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        goto out;
    }
    files_give(c, dirfd, name, -1);
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        goto out;
    }
    rc = files_set_info(c, &st);
out:
    close(dirfd);
    return rc;
}

/* RMDIR and REMOVE: unlinkat with flags on the final component. */
static int files_unlink(files_ctx *c, int flags)
{
    char name[NAME_MAX + 1];
    int dirfd = -1, rc = 0;

    if (c->path[0] == '\0')
        return files_fail(c, BERTH_EPERM, "%s /: the site's root stays",
                          c->op);
    rc = daemon_sandbox_open_parent(c->rootfd, c->path, c->f->sbflags, &dirfd,
                                    name);
    if (rc != 0)
        return files_fail_sys(c, rc);
    if (unlinkat(dirfd, name, flags) != 0)
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
    close(dirfd);
    return rc;
}

static int op_rmdir(files_ctx *c)
{
    return files_unlink(c, AT_REMOVEDIR);
}

static int op_remove(files_ctx *c)
{
    return files_unlink(c, 0);
}

static int op_rename(files_ctx *c)
{
    char target[PATH_MAX], sname[NAME_MAX + 1], tname[NAME_MAX + 1];
    const char *why = NULL;
    int sdir = -1, tdir = -1, rc;

    rc = daemon_sandbox_clean(c->req->target, target, sizeof(target), &why);
    if (rc == BERTH_EPERM)
        log_warn("file path refused", "site=%s op=%s path=%s user=%s reason=%s",
                 c->req->site_id, c->op, c->req->target, c->req->user_id, why);
    if (rc != 0)
        return files_fail(c, rc, "%s /%s: target: %s", c->op, c->path, why);
    if (c->path[0] == '\0' || target[0] == '\0')
        return files_fail(c, BERTH_EPERM,
                          "%s /%s to /%s: the site's root stays", c->op,
                          c->path, target);
    rc = daemon_sandbox_open_parent(c->rootfd, c->path, c->f->sbflags, &sdir,
                                    sname);
    if (rc != 0)
        return files_fail_sys(c, rc);
    rc = daemon_sandbox_open_parent(c->rootfd, target, c->f->sbflags, &tdir,
                                    tname);
    if (rc != 0) {
        rc = files_fail_at(c, rc, target);
        goto out;
    }
    if (renameat2(sdir, sname, tdir, tname,
                  c->req->exclusive ? RENAME_NOREPLACE : 0) != 0)
        rc = files_fail(c, daemon_sandbox_err(errno), "%s /%s to /%s: %s",
                        c->op, c->path, target, daemon_sandbox_reason(errno));
out:
    if (sdir >= 0)
        close(sdir);
    if (tdir >= 0)
        close(tdir);
    return rc;
}

static int op_chmod(files_ctx *c)
{
    char proc[64];
    struct stat st;
    mode_t mode = 0;
    int fd = -1, rc;

    rc = files_check_mode(c, &mode);
    if (rc != 0)
        return rc;
    rc = daemon_sandbox_open(c->rootfd, c->path, O_PATH, 0, c->f->sbflags, &fd);
    if (rc != 0)
        return files_fail_sys(c, rc);
    /* An O_PATH descriptor cannot be fchmod()ed; its /proc link names
     * exactly the inode the sandbox opened, whatever the path does next. */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (chmod(proc, mode) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        goto out;
    }
    rc = files_set_info(c, &st);
out:
    close(fd);
    return rc;
}

static int op_realpath(files_ctx *c)
{
    char out[PATH_MAX + 1];
    int rc;

    rc = daemon_sandbox_realpath(c->rootfd, c->path, c->f->sbflags, out,
                                 sizeof(out));
    if (rc != 0)
        return files_fail_sys(c, rc);
    c->rep->path = strdup(out);
    if (c->rep->path == NULL)
        return files_fail(c, BERTH_ENOMEM, "%s: out of memory", c->op);
    return 0;
}

static int op_truncate(files_ctx *c)
{
    struct stat st;
    int fd = -1, rc;

    if (c->req->offset > (uint64_t)INT64_MAX)
        return files_fail(c, BERTH_EINVAL, "%s /%s: size out of range", c->op,
                          c->path);
    rc = files_open_regular(c, O_WRONLY, &fd, &st);
    if (rc != 0)
        return rc;
    if (ftruncate(fd, (off_t)c->req->offset) != 0 || fstat(fd, &st) != 0) {
        rc = files_fail_sys(c, daemon_sandbox_err(errno));
        goto out;
    }
    rc = files_set_info(c, &st);
out:
    close(fd);
    return rc;
}

/* Every operation, by FileOp value. */
static const struct files_op_def {
    const char *name;
    files_fn fn;
} files_ops[] = {
    [BERTH__V1__FILE_OP__FILE_OP_STAT] = {"stat", op_stat},
    [BERTH__V1__FILE_OP__FILE_OP_LSTAT] = {"lstat", op_lstat},
    [BERTH__V1__FILE_OP__FILE_OP_LIST] = {"list", op_list},
    [BERTH__V1__FILE_OP__FILE_OP_READ] = {"read", op_read},
    [BERTH__V1__FILE_OP__FILE_OP_WRITE] = {"write", op_write},
    [BERTH__V1__FILE_OP__FILE_OP_MKDIR] = {"mkdir", op_mkdir},
    [BERTH__V1__FILE_OP__FILE_OP_RMDIR] = {"rmdir", op_rmdir},
    [BERTH__V1__FILE_OP__FILE_OP_REMOVE] = {"remove", op_remove},
    [BERTH__V1__FILE_OP__FILE_OP_RENAME] = {"rename", op_rename},
    [BERTH__V1__FILE_OP__FILE_OP_CHMOD] = {"chmod", op_chmod},
    [BERTH__V1__FILE_OP__FILE_OP_REALPATH] = {"realpath", op_realpath},
    [BERTH__V1__FILE_OP__FILE_OP_TRUNCATE] = {"truncate", op_truncate},
};

#define FILES_NOPS (sizeof(files_ops) / sizeof(files_ops[0]))

/* ------------------------------------------------------------ public */

int daemon_files_site_root(daemon_files *f, const char *site_id, int *rootfd)
{
    struct stat st;
    int fd;

    *rootfd = -1;
    if (site_id == NULL || !bus_token_valid(site_id) ||
        strchr(site_id, '/') != NULL)
        return BERTH_EINVAL;
    fd = openat(f->volfd, site_id,
                O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP
                   ? BERTH_ENOENT
                   : berth_err_from_errno(errno);
    if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        close(fd);
        return BERTH_ENOENT;
    }
    *rootfd = fd;
    return 0;
}

int daemon_files_do(daemon_files *f, const Berth__V1__FileRequest *req,
                    Berth__V1__FileReply *rep, char *why, size_t whylen)
{
    files_ctx c = {.f = f, .req = req, .rep = rep, .op = "file operation",
                   .rootfd = -1, .why = why, .whylen = whylen};
    const char *bad = NULL;
    unsigned op;
    int rc;

    berth__v1__file_reply__init(rep);
    if (whylen > 0)
        why[0] = '\0';
    op = (unsigned)req->op;
    if (op >= FILES_NOPS || files_ops[op].fn == NULL)
        return files_fail(&c, BERTH_ENOTSUP, "unknown file operation %d",
                          (int)req->op);
    c.op = files_ops[op].name;
    rc = daemon_sandbox_clean(req->path, c.path, sizeof(c.path), &bad);
    if (rc != 0) {
        if (rc == BERTH_EPERM)
            log_warn("file path refused",
                     "site=%s op=%s path=%s user=%s reason=%s", req->site_id,
                     c.op, req->path, req->user_id, bad);
        return files_fail(&c, rc, "%s: %s", c.op, bad);
    }
    rc = daemon_files_site_root(f, req->site_id, &c.rootfd);
    if (rc == BERTH_EINVAL)
        return files_fail(&c, rc, "%s: site id is not a bus token", c.op);
    if (rc == BERTH_ENOENT)
        return files_fail(&c, rc, "%s: no site %s on this node", c.op,
                          req->site_id);
    if (rc != 0)
        return files_fail(&c, rc, "%s: the site's directory: %s", c.op,
                          berth_strerror(rc));
    rc = files_ops[op].fn(&c);
    close(c.rootfd);
    return rc;
}

/* Whether a protobuf message's string fields (top level) hold a NUL byte.
 * protobuf-c would cut such a string at the NUL without a word, and a
 * path "a\0/../../x" must not quietly become "a". Malformed input is left
 * to the decoder, which already accepted it. */
static int wire_string_has_nul(const ProtobufCMessageDescriptor *d,
                               const uint8_t *p, size_t n)
{
    const ProtobufCFieldDescriptor *fd;
    uint64_t key, len;
    size_t i = 0;
    int shift;

    while (i < n) {
        key = 0;
        for (shift = 0; i < n && shift < 64; shift += 7) {
            key |= (uint64_t)(p[i] & 0x7f) << shift;
            if (!(p[i++] & 0x80))
                break;
        }
        switch (key & 7) {
        case 0:
            while (i < n && (p[i++] & 0x80))
                ;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2:
            len = 0;
            for (shift = 0; i < n && shift < 64; shift += 7) {
                len |= (uint64_t)(p[i] & 0x7f) << shift;
                if (!(p[i++] & 0x80))
                    break;
            }
            if (len > n - i)
                return 0;
            fd = protobuf_c_message_descriptor_get_field(d,
                                                         (unsigned)(key >> 3));
            if (fd != NULL && fd->type == PROTOBUF_C_TYPE_STRING &&
                memchr(p + i, 0, (size_t)len) != NULL)
                return 1;
            i += (size_t)len;
            break;
        default:
            return 0;
        }
    }
    return 0;
}

static int files_on_request(bus_msg *m, void *ud)
{
    files_gate *g = ud;
    const Berth__V1__FileRequest *req = (const void *)m->msg;
    Berth__V1__FileReply rep = BERTH__V1__FILE_REPLY__INIT;
    char why[BUS_ERROR_MESSAGE_MAX];
    int rc;

    pthread_rwlock_rdlock(&g->lock);
    if (g->f == NULL) {
        bus_reply_error(m, BERTH_EUNAVAIL, "the daemon is stopping");
        rc = BERTH_EUNAVAIL;
        goto out;
    }
    if (!m->json &&
        wire_string_has_nul(m->entry->type,
                            (const uint8_t *)natsMsg_GetData(m->raw),
                            (size_t)natsMsg_GetDataLength(m->raw))) {
        bus_reply_error(m, BERTH_EINVAL, "NUL byte in a string of the request");
        rc = BERTH_EINVAL;
        goto out;
    }
    rc = daemon_files_do(g->f, req, &rep, why, sizeof(why));
    if (rc == 0)
        rc = bus_reply(m, &rep.base);
    else
        bus_reply_error(m, rc, "%s", why);
    if (rc != 0)
        log_debug("file operation failed",
                  "site=%s op=%d path=%s user=%s error=%s", req->site_id,
                  (int)req->op, req->path, req->user_id, why);
out:
    pthread_rwlock_unlock(&g->lock);
    daemon_files_reply_clear(&rep);
    return rc;
}

int daemon_files_new(const daemon_files_cfg *cfg, daemon_files **out)
{
    daemon_files *f = NULL;
    char subject[FILES_SUBJECT_MAX];
    files_gate *g;
    int fd = -1, rc;

    *out = NULL;
    if (cfg == NULL || cfg->volumes_dir == NULL ||
        (cfg->bus != NULL && (cfg->node_id == NULL ||
                              strlen(cfg->node_id) >= sizeof(f->node) ||
                              !bus_token_valid(cfg->node_id))))
        return BERTH_EINVAL;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return BERTH_ENOMEM;
    f->volfd = -1;
    f->sbflags = cfg->sbflags;
    if (cfg->node_id != NULL)
        snprintf(f->node, sizeof(f->node), "%s", cfg->node_id);
    rc = fs_mkdirs(cfg->volumes_dir, 0755);
    if (rc != 0)
        goto out;
    f->volfd = open(cfg->volumes_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (f->volfd < 0) {
        rc = berth_err_from_errno(errno);
        goto out;
    }
    /* One lookup tells whether openat2 exists, for the log line below. */
    if (daemon_sandbox_open(f->volfd, "", O_PATH | O_DIRECTORY, 0, 0, &fd) == 0)
        close(fd);
    if (cfg->bus != NULL) {
        g = calloc(1, sizeof(*g));
        if (g == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        pthread_rwlock_init(&g->lock, NULL);
        g->f = f;
        f->gate = g;
        pthread_mutex_lock(&files_gates_mu);
        g->next = files_gates;
        files_gates = g;
        pthread_mutex_unlock(&files_gates_mu);
        snprintf(subject, sizeof(subject), "files.op.%s", f->node);
        rc = bus_serve_threads(cfg->bus, "files", subject, files_on_request,
                               g, FILES_THREADS);
        if (rc != 0)
            goto out;
    }
    log_info("files ready", "volumes=%s openat2=%d", cfg->volumes_dir,
             daemon_sandbox_has_openat2());
    *out = f;
    f = NULL;
out:
    if (rc != 0)
        log_error("files start failed", "volumes=%s error=%s",
                  cfg->volumes_dir, berth_strerror(rc));
    daemon_files_free(f);
    return rc;
}

void daemon_files_free(daemon_files *f)
{
    if (f == NULL)
        return;
    if (f->gate != NULL) {
        pthread_rwlock_wrlock(&f->gate->lock);
        f->gate->f = NULL;
        pthread_rwlock_unlock(&f->gate->lock);
    }
    if (f->volfd >= 0)
        close(f->volfd);
    free(f);
}
