/* sftp.c - the SFTP subsystem (version 3, with posix-rename@openssh.com)
 * on libssh's SFTP server API, each operation turned into a files.op
 * request to the site's daemon, which runs it inside the site's data
 * directory with its path sandbox.
 *
 * Reading without blocking. libssh 0.10 reads SFTP packets with blocking
 * channel reads, which must never run on a loop. So the channel's data
 * callback only looks at what libssh has buffered and counts the whole
 * packets there (ch->sftp_ready); the pump then calls
 * sftp_get_client_message() once per whole packet, which finds every byte
 * it wants already buffered. A packet announced larger than
 * SFTP_PACKET_MAX ends the subsystem (it could never be buffered whole).
 *
 * Pipelining. Each request becomes a job (jobs.c); up to SFTP_JOBS_MAX run
 * at once per channel and answers go back in whatever order they finish,
 * as SFTP allows. Operations on one handle that must not overtake each
 * other are serialised by the client (it waits for a CLOSE's answer), and
 * a CLOSE here waits for the handle's jobs in flight. While the jobs are
 * all taken, packets stay in libssh's buffer and the client's window
 * stops growing: that is the back-pressure.
 *
 * Writing without blocking. A reply goes out only when the client's
 * window holds all of it (a partial SFTP packet would corrupt the
 * stream); the rest wait, in order, in the reply queue.
 *
 * Handles are this module's own: 8 bytes of slot and generation, checked
 * before use (libssh's handle table reads one slot past its end for a
 * forged handle). The daemon knows no handles: a handle is a path plus
 * the open flags, and every READ or WRITE names the path and offset.
 *
 * Permissions, checked on every operation against the channel's site:
 *   site.files.read   READ, OPEN for reading, OPENDIR, READDIR
 *   site.files.write  OPEN for writing, WRITE, MKDIR, RMDIR, REMOVE,
 *                     RENAME, SETSTAT
 *   either            STAT, LSTAT, FSTAT, REALPATH
 * SYMLINK and hardlink@openssh.com are refused; READLINK is unsupported.
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-shell/sftp_int.h"

/* ------------------------------------------------------------ input */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

uint32_t shell_sftp_input(shell_chan *ch, const void *data, uint32_t len)
{
    const unsigned char *p = data;
    uint32_t off = 0;
    unsigned n = 0;

    while (len - off >= 4) {
        uint32_t plen = be32(p + off);

        if (plen == 0 || plen > SFTP_PACKET_MAX) {
            ch->sftp_broken = 1;
            break;
        }
        if (plen > len - off - 4)
            break;
        n++;
        off += 4 + plen;
    }
    ch->sftp_ready = n;
    return 0;
}

/* ------------------------------------------------------------ replies */

static void reply_free(struct sreply *r)
{
    sftp_client_message_free(r->msg);
    free(r->copy);
    free(r);
}

/* Queues an answer to msg (taken over). Returns the entry to fill, or
 * NULL when memory ran out (msg is then dropped). */
struct sreply *shell_sftp_reply_new(shell_sftp *s, sftp_client_message msg, int kind)
{
    struct sreply *r;

    if (msg == NULL)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        sftp_client_message_free(msg);
        return NULL;
    }
    r->msg = msg;
    r->kind = kind;
    r->need = 64;
    *s->outq_tail = r;
    s->outq_tail = &r->next;
    return r;
}

void shell_sftp_reply_status(shell_sftp *s, sftp_client_message msg,
                         uint32_t status, const char *text)
{
    struct sreply *r = shell_sftp_reply_new(s, msg, R_STATUS);

    if (r == NULL)
        return;
    r->status = status;
    snprintf(r->text, sizeof(r->text), "%s", text ? text : "");
    r->need += strlen(r->text);
}

/* Maps a berth code from the daemon (or from here) onto an SFTP status. */
void shell_sftp_reply_error(shell_sftp *s, sftp_client_message msg, int rc,
                        const char *text)
{
    uint32_t st;

    switch (rc) {
    case BERTH_ENOENT:
        st = SSH_FX_NO_SUCH_FILE;
        break;
    case BERTH_EPERM:
    case BERTH_EAUTH:
        st = SSH_FX_PERMISSION_DENIED;
        break;
    case BERTH_ENOTSUP:
        st = SSH_FX_OP_UNSUPPORTED;
        break;
    case BERTH_ETIMEDOUT:
    case BERTH_ENORESP:
    case BERTH_EUNAVAIL:
        st = SSH_FX_FAILURE;
        text = "the site's node does not answer";
        break;
    default:
        st = SSH_FX_FAILURE;
        break;
    }
    shell_sftp_reply_status(s, msg, st, text ? text : berth_strerror(rc));
}

static int flush_one(shell_sftp *s, struct sreply *r)
{
    ssh_string h;
    int rc = -1;

    switch (r->kind) {
    case R_STATUS:
        rc = sftp_reply_status(r->msg, r->status, r->text);
        break;
    case R_DATA:
        rc = sftp_reply_data(r->msg, r->data, (int)r->len);
        s->bytes_out += r->len;
        break;
    case R_HANDLE:
        h = ssh_string_new(sizeof(r->handle));
        if (h == NULL)
            break;
        ssh_string_fill(h, r->handle, sizeof(r->handle));
        rc = sftp_reply_handle(r->msg, h);
        ssh_string_free(h);
        break;
    case R_ATTR:
        rc = sftp_reply_attr(r->msg, &r->attr);
        break;
    case R_NAMES:
        rc = sftp_reply_names(r->msg);
        break;
    }
    return rc;
}

/* Sends queued answers while the client's window holds each whole. */
static void flush(shell_sftp *s)
{
    shell_chan *ch = s->ch;

    while (s->outq != NULL) {
        struct sreply *r = s->outq;

        if (ch->ch == NULL || !ssh_channel_is_open(ch->ch))
            return;
        if (ssh_channel_window_size(ch->ch) < r->need)
            return;
        s->outq = r->next;
        if (s->outq == NULL)
            s->outq_tail = &s->outq;
        if (r->kind == R_DATA)
            s->queued -= r->len;
        flush_one(s, r);
        reply_free(r);
    }
}

/* ------------------------------------------------------------ attributes */

static uint32_t mode_of(const Berth__V1__FileInfo *fi)
{
    uint32_t mode = fi->mode;

    if ((mode & S_IFMT) == 0)
        mode |= fi->is_dir ? S_IFDIR : fi->is_link ? S_IFLNK : S_IFREG;
    return mode;
}

static void attr_of(const Berth__V1__FileInfo *fi,
                    struct sftp_attributes_struct *a)
{
    memset(a, 0, sizeof(*a));
    if (fi == NULL)
        return;
    a->flags = SSH_FILEXFER_ATTR_SIZE | SSH_FILEXFER_ATTR_UIDGID |
               SSH_FILEXFER_ATTR_PERMISSIONS | SSH_FILEXFER_ATTR_ACMODTIME;
    a->size = fi->size;
    a->uid = fi->uid;
    a->gid = fi->gid;
    a->permissions = mode_of(fi);
    a->mtime = (uint32_t)(fi->mtime_ms / 1000);
    a->atime = a->mtime;
}

/* "drwxr-xr-x    1 1000     1000         4096 Nov 22 07:23 name", as
 * OpenSSH's server writes it. */
static void longname(const Berth__V1__FileInfo *fi, char *out, size_t len)
{
    static const char rwx[] = "rwxrwxrwx";
    uint32_t mode = mode_of(fi);
    char perms[11], date[32];
    time_t t = (time_t)(fi->mtime_ms / 1000);
    struct tm tm;
    int i;

    perms[0] = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : '-';
    for (i = 0; i < 9; i++)
        perms[1 + i] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
    perms[10] = '\0';
    gmtime_r(&t, &tm);
    if (t > time(NULL) - 182 * 86400)
        strftime(date, sizeof(date), "%b %e %H:%M", &tm);
    else
        strftime(date, sizeof(date), "%b %e  %Y", &tm);
    snprintf(out, len, "%s    1 %-8u %-8u %8llu %s %s", perms, fi->uid, fi->gid,
             (unsigned long long)fi->size, date, fi->name);
}

/* ------------------------------------------------------------ handles */

static struct sftp_handle *handle_of(shell_sftp *s, ssh_string str)
{
    uint32_t v[2];
    struct sftp_handle *h;

    if (str == NULL || ssh_string_len(str) != sizeof(v))
        return NULL;
    memcpy(v, ssh_string_data(str), sizeof(v));
    if (v[0] >= SFTP_HANDLES)
        return NULL;
    h = &s->handles[v[0]];
    return h->used && h->gen == v[1] ? h : NULL;
}

static struct sftp_handle *handle_new(shell_sftp *s, const char *path,
                                      uint32_t out[2])
{
    int i;

    for (i = 0; i < SFTP_HANDLES; i++) {
        struct sftp_handle *h = &s->handles[i];

        if (h->used || h->busy > 0)
            continue;
        h->path = strdup(path);
        if (h->path == NULL)
            return NULL;
        h->used = 1;
        h->gen++;
        h->is_dir = 0;
        h->pflags = 0;
        h->list_off = 0;
        h->list_eof = 0;
        h->append = 0;
        h->append_off = 0;
        out[0] = (uint32_t)i;
        out[1] = h->gen;
        return h;
    }
    return NULL;
}

static void handle_close(shell_sftp *s, struct sftp_handle *h)
{
    shell_sftp_handle_drop(s, h);
    free(h->path);
    h->path = NULL;
    h->used = 0;
}

/* ------------------------------------------------------------ requests */

/* Returns 1 when the channel's site allows perms (any of them); answers
 * PERMISSION_DENIED and returns 0 otherwise. */
int shell_sftp_allowed(shell_sftp *s, sftp_client_message msg, unsigned perms)
{
    if ((s->ch->site.perms & perms) != 0)
        return 1;
    shell_sftp_reply_status(s, msg, SSH_FX_PERMISSION_DENIED,
                 perms == SHELL_PERM_FWRITE
                     ? "site.files.write is required"
                     : "site.files.read is required");
    return 0;
}

shell_job *shell_sftp_file_job(shell_sftp *s, shell_job_done_fn done,
                           sftp_client_message msg, int op, const char *path)
{
    shell_chan *ch = s->ch;
    shell_job *j;
    char *p;

    if (path == NULL || strlen(path) > SFTP_PATH_MAX) {
        shell_sftp_reply_status(s, msg, SSH_FX_FAILURE, "path too long");
        return NULL;
    }
    j = shell_job_new(ch, done);
    p = strdup(path);
    if (j == NULL || p == NULL) {
        free(p);
        if (j != NULL) {
            j->done = NULL;
            shell_job_finish(j);
        }
        shell_sftp_reply_status(s, msg, SSH_FX_FAILURE, "out of memory");
        return NULL;
    }
    j->owned[0] = p;
    j->msg = msg;
    berth__v1__file_request__init(&j->u.file);
    j->u.file.site_id = ch->site.id;
    j->u.file.user_id = ch->conn->user.id;
    j->u.file.op = op;
    j->u.file.path = p;
    j->req = &j->u.file.base;
    j->timeout_ms = SFTP_TIMEOUT_MS;
    snprintf(j->subject, sizeof(j->subject), "files.op.%s", ch->site.node);
    return j;
}

void shell_sftp_submit(shell_sftp *s, shell_job *j)
{
    s->jobs++;
    shell_job_submit(s->ch->conn->srv, j);
}

/* The start of every completion: NULL when the channel is gone (the job
 * is then dropped as it is). */
shell_sftp *shell_sftp_job_sftp(shell_job *j)
{
    shell_chan *ch = j->chan;

    if (ch->closed || ch->sftp == NULL)
        return NULL;
    ch->sftp->jobs--;
    ch->sftp->job_ns += clock_mono_ns() - j->started_ns;
    return ch->sftp;
}

static const Berth__V1__FileReply *job_reply(shell_job *j)
{
    return (const Berth__V1__FileReply *)j->reply;
}

/* Answers a failed job; returns 1 when it failed. */
static int job_failed(shell_sftp *s, shell_job *j)
{
    if (j->rc == 0)
        return 0;
    shell_sftp_reply_error(s, j->msg, j->rc, j->err.message);
    j->msg = NULL;
    return 1;
}

static void done_status(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);

    if (s == NULL || job_failed(s, j))
        return;
    shell_sftp_reply_status(s, j->msg, SSH_FX_OK, "");
    j->msg = NULL;
}

static void done_attr(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);
    struct sreply *r;

    if (s == NULL || job_failed(s, j))
        return;
    r = shell_sftp_reply_new(s, j->msg, R_ATTR);
    j->msg = NULL;
    if (r != NULL)
        attr_of(job_reply(j)->info, &r->attr);
}

static void done_realpath(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);
    struct sftp_attributes_struct a = {0};
    const char *path;
    struct sreply *r;

    if (s == NULL || job_failed(s, j))
        return;
    path = job_reply(j)->path[0] ? job_reply(j)->path : "/";
    r = shell_sftp_reply_new(s, j->msg, R_NAMES);
    j->msg = NULL;
    if (r == NULL)
        return;
    if (sftp_reply_names_add(r->msg, path, path, &a) != 0)
        r->kind = R_STATUS, r->status = SSH_FX_FAILURE;
    r->need += 2 * strlen(path);
}

/* OPEN and OPENDIR: the file is there (and of the right kind): a handle. */
static void done_open(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);
    const Berth__V1__FileReply *rep;
    struct sftp_handle *h;
    struct sreply *r;
    int want_dir = j->u32 == SSH_FXP_OPENDIR;
    uint32_t hv[2];

    if (s == NULL || job_failed(s, j))
        return;
    rep = job_reply(j);
    if (rep->info != NULL && rep->info->is_dir != want_dir) {
        shell_sftp_reply_status(s, j->msg, SSH_FX_FAILURE,
                     want_dir ? "not a directory" : "is a directory");
        j->msg = NULL;
        return;
    }
    h = handle_new(s, j->u.file.path, hv);
    if (h == NULL) {
        shell_sftp_reply_status(s, j->msg, SSH_FX_FAILURE, "too many open files");
        j->msg = NULL;
        return;
    }
    h->is_dir = want_dir;
    h->pflags = sftp_client_message_get_flags(j->msg);
    if (!want_dir && (h->pflags & SSH_FXF_APPEND)) {
        h->append = 1;
        h->append_off = rep->info != NULL ? rep->info->size : 0;
    }
    r = shell_sftp_reply_new(s, j->msg, R_HANDLE);
    j->msg = NULL;
    if (r != NULL)
        memcpy(r->handle, hv, sizeof(hv));
}

static void do_open(shell_sftp *s, sftp_client_message msg)
{
    uint32_t fl = sftp_client_message_get_flags(msg);
    const char *path = sftp_client_message_get_filename(msg);
    int writes = (fl & (SSH_FXF_WRITE | SSH_FXF_APPEND | SSH_FXF_CREAT |
                        SSH_FXF_TRUNC)) != 0;
    shell_job *j;

    if (writes && !shell_sftp_allowed(s, msg, SHELL_PERM_FWRITE))
        return;
    if ((fl & SSH_FXF_READ) && !shell_sftp_allowed(s, msg, SHELL_PERM_FREAD))
        return;
    if (fl & SSH_FXF_CREAT) {
        j = shell_sftp_file_job(s, done_open, msg, BERTH__V1__FILE_OP__FILE_OP_WRITE, path);
        if (j == NULL)
            return;
        j->u.file.create = 1;
        j->u.file.truncate = (fl & SSH_FXF_TRUNC) != 0;
        j->u.file.exclusive = (fl & SSH_FXF_EXCL) != 0;
        if (msg->attr != NULL &&
            (msg->attr->flags & SSH_FILEXFER_ATTR_PERMISSIONS))
            j->u.file.mode = msg->attr->permissions & 0777;
    } else if (fl & SSH_FXF_TRUNC) {
        j = shell_sftp_file_job(s, done_open, msg, BERTH__V1__FILE_OP__FILE_OP_TRUNCATE,
                     path);
        if (j == NULL)
            return;
    } else {
        j = shell_sftp_file_job(s, done_open, msg, BERTH__V1__FILE_OP__FILE_OP_STAT, path);
        if (j == NULL)
            return;
    }
    j->u32 = SSH_FXP_OPEN;
    shell_sftp_submit(s, j);
}

static void do_opendir(shell_sftp *s, sftp_client_message msg)
{
    shell_job *j;

    if (!shell_sftp_allowed(s, msg, SHELL_PERM_FREAD))
        return;
    j = shell_sftp_file_job(s, done_open, msg, BERTH__V1__FILE_OP__FILE_OP_STAT,
                 sftp_client_message_get_filename(msg));
    if (j == NULL)
        return;
    j->u32 = SSH_FXP_OPENDIR;
    shell_sftp_submit(s, j);
}

/* The handle's job is over: a waiting CLOSE may be answered. */
void shell_sftp_handle_idle(shell_sftp *s, struct sftp_handle *h)
{
    if (--h->busy > 0 || h->close_msg == NULL)
        return;
    handle_close(s, h);
    shell_sftp_reply_status(s, h->close_msg, SSH_FX_OK, "");
    h->close_msg = NULL;
}

static struct sftp_handle *job_handle(shell_sftp *s, shell_job *j)
{
    return &s->handles[j->u64];
}

static void done_list(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);
    const Berth__V1__FileReply *rep;
    struct sftp_handle *h;
    struct sreply *r;
    size_t i;

    if (s == NULL)
        return;
    h = job_handle(s, j);
    if (job_failed(s, j))
        goto out;
    rep = job_reply(j);
    if (rep->n_entries == 0) {
        h->list_eof = 1;
        shell_sftp_reply_status(s, j->msg, SSH_FX_EOF, "");
        j->msg = NULL;
        goto out;
    }
    h->list_off += rep->n_entries;
    h->list_eof = rep->eof;
    r = shell_sftp_reply_new(s, j->msg, R_NAMES);
    j->msg = NULL;
    if (r == NULL)
        goto out;
    for (i = 0; i < rep->n_entries; i++) {
        struct sftp_attributes_struct a;
        char ln[600];

        attr_of(rep->entries[i], &a);
        longname(rep->entries[i], ln, sizeof(ln));
        if (sftp_reply_names_add(r->msg, rep->entries[i]->name, ln, &a) != 0) {
            r->kind = R_STATUS;
            r->status = SSH_FX_FAILURE;
            break;
        }
        r->need += 48 + strlen(rep->entries[i]->name) + strlen(ln);
    }
out:
    shell_sftp_handle_idle(s, h);
}

/* READ, WRITE, READDIR, FSTAT, FSETSTAT on a handle. */
struct sftp_handle *shell_sftp_valid_handle(shell_sftp *s, sftp_client_message msg,
                                        int dir)
{
    struct sftp_handle *h = handle_of(s, msg->handle);

    if (h == NULL || h->close_msg != NULL || h->is_dir != dir) {
        shell_sftp_reply_status(s, msg, SSH_FX_INVALID_HANDLE, "invalid handle");
        return NULL;
    }
    return h;
}

static void do_readdir(shell_sftp *s, sftp_client_message msg)
{
    struct sftp_handle *h = shell_sftp_valid_handle(s, msg, 1);
    shell_job *j;

    if (h == NULL || !shell_sftp_allowed(s, msg, SHELL_PERM_FREAD))
        return;
    if (h->list_eof) {
        shell_sftp_reply_status(s, msg, SSH_FX_EOF, "");
        return;
    }
    j = shell_sftp_file_job(s, done_list, msg, BERTH__V1__FILE_OP__FILE_OP_LIST, h->path);
    if (j == NULL)
        return;
    j->u.file.offset = h->list_off;
    j->u.file.length = SFTP_LIST_PAGE;
    j->u64 = (uint64_t)(h - s->handles);
    h->busy++;
    shell_sftp_submit(s, j);
}

static void do_close(shell_sftp *s, sftp_client_message msg)
{
    struct sftp_handle *h = handle_of(s, msg->handle);

    if (h == NULL || h->close_msg != NULL) {
        shell_sftp_reply_status(s, msg, SSH_FX_INVALID_HANDLE, "invalid handle");
        return;
    }
    if (h->busy > 0) {
        h->close_msg = msg; /* answered when the last job returns */
        return;
    }
    handle_close(s, h);
    shell_sftp_reply_status(s, msg, SSH_FX_OK, "");
}

/* SETSTAT and FSETSTAT: a size truncates, permissions chmod; times and
 * owners are not kept by sites and are ignored. A job doing both chains
 * the second from its completion. */
static void done_setstat(shell_job *j);

static void setstat_next(shell_sftp *s, sftp_client_message msg,
                         const char *path, int did_size)
{
    sftp_attributes a = msg->attr;
    shell_job *j;

    if (!did_size && (a->flags & SSH_FILEXFER_ATTR_SIZE)) {
        j = shell_sftp_file_job(s, done_setstat, msg, BERTH__V1__FILE_OP__FILE_OP_TRUNCATE,
                     path);
        if (j == NULL)
            return;
        j->u.file.offset = a->size;
        shell_sftp_submit(s, j);
        return;
    }
    if (a->flags & SSH_FILEXFER_ATTR_PERMISSIONS) {
        j = shell_sftp_file_job(s, done_status, msg, BERTH__V1__FILE_OP__FILE_OP_CHMOD,
                     path);
        if (j == NULL)
            return;
        j->u.file.mode = a->permissions & 07777;
        shell_sftp_submit(s, j);
        return;
    }
    shell_sftp_reply_status(s, msg, SSH_FX_OK, "");
}

static void done_setstat(shell_job *j)
{
    shell_sftp *s = shell_sftp_job_sftp(j);
    sftp_client_message msg = j->msg;

    if (s == NULL || job_failed(s, j))
        return;
    j->msg = NULL;
    setstat_next(s, msg, j->u.file.path, 1);
}

static void do_setstat(shell_sftp *s, sftp_client_message msg, const char *path)
{
    if (!shell_sftp_allowed(s, msg, SHELL_PERM_FWRITE))
        return;
    if (msg->attr == NULL) {
        shell_sftp_reply_status(s, msg, SSH_FX_BAD_MESSAGE, "no attributes");
        return;
    }
    if ((msg->attr->flags & SSH_FILEXFER_ATTR_UIDGID) != 0) {
        shell_sftp_reply_status(s, msg, SSH_FX_PERMISSION_DENIED,
                     "owners cannot be changed");
        return;
    }
    setstat_next(s, msg, path, 0);
}

/* STAT, LSTAT, MKDIR, RMDIR, REMOVE, REALPATH, RENAME: one job each. */
static void do_simple(shell_sftp *s, sftp_client_message msg, int op,
                      unsigned perms, shell_job_done_fn done)
{
    shell_job *j;
    const char *target;

    if (!shell_sftp_allowed(s, msg, perms))
        return;
    j = shell_sftp_file_job(s, done, msg, op, sftp_client_message_get_filename(msg));
    if (j == NULL)
        return;
    if (op == BERTH__V1__FILE_OP__FILE_OP_RENAME) {
        target = sftp_client_message_get_data(msg);
        if (target == NULL || strlen(target) > SFTP_PATH_MAX) {
            j->msg = NULL;
            j->done = NULL;
            shell_job_finish(j);
            shell_sftp_reply_status(s, msg, SSH_FX_FAILURE, "bad target");
            return;
        }
        j->u.file.target = (char *)target; /* owned by msg, held by j */
        /* SSH_FXP_RENAME does not replace (the OpenSSH server's
         * semantics); posix-rename@openssh.com does. */
        j->u.file.exclusive = sftp_client_message_get_type(msg) == SSH_FXP_RENAME;
    }
    if (op == BERTH__V1__FILE_OP__FILE_OP_MKDIR && msg->attr != NULL &&
        (msg->attr->flags & SSH_FILEXFER_ATTR_PERMISSIONS))
        j->u.file.mode = msg->attr->permissions & 0777;
    shell_sftp_submit(s, j);
}

static void do_fstat(shell_sftp *s, sftp_client_message msg)
{
    struct sftp_handle *h = handle_of(s, msg->handle);
    shell_job *j;

    if (h == NULL || h->close_msg != NULL) {
        shell_sftp_reply_status(s, msg, SSH_FX_INVALID_HANDLE, "invalid handle");
        return;
    }
    j = shell_sftp_file_job(s, done_attr, msg, BERTH__V1__FILE_OP__FILE_OP_STAT, h->path);
    if (j != NULL)
        shell_sftp_submit(s, j);
}

static void do_extended(shell_sftp *s, sftp_client_message msg)
{
    const char *sub = sftp_client_message_get_submessage(msg);

    if (sub != NULL && strcmp(sub, "posix-rename@openssh.com") == 0) {
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_RENAME, SHELL_PERM_FWRITE,
                  done_status);
        return;
    }
    if (sub != NULL && strcmp(sub, "hardlink@openssh.com") == 0) {
        shell_sftp_reply_status(s, msg, SSH_FX_PERMISSION_DENIED,
                     "links are not allowed");
        return;
    }
    shell_sftp_reply_status(s, msg, SSH_FX_OP_UNSUPPORTED, "unsupported");
}

/* Requests that change files: cached reads older than them are stale. */
static int changes_files(sftp_client_message msg)
{
    switch (sftp_client_message_get_type(msg)) {
    case SSH_FXP_OPEN:
        return (sftp_client_message_get_flags(msg) &
                (SSH_FXF_CREAT | SSH_FXF_TRUNC)) != 0;
    case SSH_FXP_SETSTAT:
    case SSH_FXP_FSETSTAT:
    case SSH_FXP_REMOVE:
    case SSH_FXP_RENAME:
    case SSH_FXP_RMDIR:
    case SSH_FXP_EXTENDED:
        return 1;
    default:
        return 0;
    }
}

static void dispatch(shell_sftp *s, sftp_client_message msg)
{
    const unsigned any = SHELL_PERM_FREAD | SHELL_PERM_FWRITE;
    struct sftp_handle *h;
    int type = sftp_client_message_get_type(msg);

    s->ops++;
    /* Gathered writes go first: whatever comes next sees them. */
    if (type != SSH_FXP_WRITE)
        shell_sftp_flush_writes(s);
    if (changes_files(msg))
        s->wgen++;
    switch (type) {
    case SSH_FXP_OPEN:
        do_open(s, msg);
        break;
    case SSH_FXP_CLOSE:
        do_close(s, msg);
        break;
    case SSH_FXP_READ:
        shell_sftp_read(s, msg);
        break;
    case SSH_FXP_WRITE:
        shell_sftp_write(s, msg);
        break;
    case SSH_FXP_OPENDIR:
        do_opendir(s, msg);
        break;
    case SSH_FXP_READDIR:
        do_readdir(s, msg);
        break;
    case SSH_FXP_STAT:
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_STAT, any, done_attr);
        break;
    case SSH_FXP_LSTAT:
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_LSTAT, any, done_attr);
        break;
    case SSH_FXP_FSTAT:
        do_fstat(s, msg);
        break;
    case SSH_FXP_SETSTAT:
        do_setstat(s, msg, sftp_client_message_get_filename(msg));
        break;
    case SSH_FXP_FSETSTAT:
        h = handle_of(s, msg->handle);
        if (h == NULL || h->close_msg != NULL)
            shell_sftp_reply_status(s, msg, SSH_FX_INVALID_HANDLE, "invalid handle");
        else
            do_setstat(s, msg, h->path);
        break;
    case SSH_FXP_MKDIR:
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_MKDIR, SHELL_PERM_FWRITE,
                  done_status);
        break;
    case SSH_FXP_RMDIR:
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_RMDIR, SHELL_PERM_FWRITE,
                  done_status);
        break;
    case SSH_FXP_REMOVE:
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_REMOVE, SHELL_PERM_FWRITE,
                  done_status);
        break;
    case SSH_FXP_RENAME:
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_RENAME, SHELL_PERM_FWRITE,
                  done_status);
        break;
    case SSH_FXP_REALPATH:
        do_simple(s, msg, BERTH__V1__FILE_OP__FILE_OP_REALPATH, any,
                  done_realpath);
        break;
    case SSH_FXP_SYMLINK:
        shell_sftp_reply_status(s, msg, SSH_FX_PERMISSION_DENIED,
                     "symbolic links are not allowed");
        break;
    case SSH_FXP_EXTENDED:
        do_extended(s, msg);
        break;
    default: /* READLINK */
        shell_sftp_reply_status(s, msg, SSH_FX_OP_UNSUPPORTED, "unsupported");
        break;
    }
}

/* ------------------------------------------------------------ life */

int shell_sftp_start(shell_chan *ch)
{
    shell_sftp *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return BERTH_ENOMEM;
    s->ch = ch;
    s->outq_tail = &s->outq;
    s->sftp = sftp_server_new(ch->conn->ssh, ch->ch);
    if (s->sftp == NULL) {
        free(s);
        return BERTH_ENOMEM;
    }
    ch->sftp = s;
    return 0;
}

int shell_sftp_pump(shell_chan *ch)
{
    shell_sftp *s = ch->sftp;

    if (s == NULL)
        return 1;
    if (ch->sftp_broken) {
        log_warn("sftp packet too large; subsystem ended", "user=%s site=%s",
                 ch->conn->user.name, ch->site.name);
        return 1;
    }
    flush(s);
    if (!s->inited) {
        if (ch->sftp_ready == 0)
            return ch->client_eof;
        ch->sftp_ready--;
        if (sftp_server_init(s->sftp) != 0) {
            log_info("sftp init failed", "user=%s error=%s",
                     ch->conn->user.name, ssh_get_error(ch->conn->ssh));
            return 1;
        }
        s->inited = 1;
    }
    while (ch->sftp_ready > 0 && s->jobs < SFTP_JOBS_MAX &&
           s->queued < SFTP_QUEUE_MAX) {
        sftp_client_message msg = sftp_get_client_message(s->sftp);

        ch->sftp_ready--;
        if (msg == NULL) {
            /* An unknown request type: it cannot even be answered. */
            log_info("sftp request not understood", "user=%s error=%s",
                     ch->conn->user.name, ssh_get_error(ch->conn->ssh));
            continue;
        }
        dispatch(s, msg);
        flush(s);
    }
    shell_sftp_flush_idle(s);
    flush(s);
    return ch->client_eof && ch->sftp_ready == 0 && s->jobs == 0 &&
           s->outq == NULL;
}

void shell_sftp_end(shell_chan *ch)
{
    shell_sftp *s = ch->sftp;
    int i;

    if (s == NULL)
        return;
    ch->sftp = NULL;
    if (s->ops > 0)
        log_info("sftp ended", "user=%s site=%s ops=%llu in=%llu out=%llu "
                 "op_ms=%.2f", ch->conn->user.name, ch->site.name,
                 (unsigned long long)s->ops, (unsigned long long)s->bytes_in,
                 (unsigned long long)s->bytes_out,
                 (double)s->job_ns / 1e6 / (double)s->ops);
    while (s->outq != NULL) {
        struct sreply *r = s->outq;
        s->outq = r->next;
        reply_free(r);
    }
    for (i = 0; i < SFTP_HANDLES; i++) {
        shell_sftp_handle_drop(s, &s->handles[i]);
        sftp_client_message_free(s->handles[i].close_msg);
        free(s->handles[i].path);
    }
    sftp_server_free(s->sftp);
    free(s);
    /* A transfer leaves megabytes of freed buffers in the heaps of the
     * threads that carried it: give them back. */
    malloc_trim(0);
}
