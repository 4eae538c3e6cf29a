/* sandbox.c - paths resolved inside a site's data directory: openat2 with
 * RESOLVE_BENEATH, or the same rules walked component by component. */
#include "svc-daemon/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/err.h"

/* How often openat2 is asked again when a rename or mount raced with a
 * lookup (EAGAIN). */
#define SB_AGAIN_MAX 8

/* 1 while openat2 is believed to exist; 0 once it returned ENOSYS. */
static atomic_int sb_have_openat2 = 1;

/* A lookup in user space. rest[pos..] is what is left to resolve; rpath is
 * what was resolved so far ("" at the root, "a/b" below it), and dirfd the
 * directory it names (rootfd itself or a descriptor owned by the walk). */
typedef struct sb_walk {
    int rootfd;
    int dirfd;
    unsigned sbflags;
    int links;
    size_t pos;
    size_t rlen;
    char rest[PATH_MAX];
    char rpath[PATH_MAX];
} sb_walk;

/* What a walk does with the final component. */
typedef struct sb_final {
    int oflags;      /* open(2) flags; O_NOFOLLOW: do not follow a link */
    mode_t mode;     /* for O_CREAT */
    int missing_ok;  /* realpath: a missing final component is fine */
} sb_final;

/* ------------------------------------------------------------ errors */

int daemon_sandbox_err(int e)
{
    switch (e) {
    case EXDEV:
    case ELOOP:
        return BERTH_EPERM;
    case EISDIR:
    case ENAMETOOLONG:
        return BERTH_EINVAL;
    case EAGAIN:
    case ETXTBSY:
        return BERTH_EBUSY;
    case EOPNOTSUPP:
    case ENXIO:
        return BERTH_ENOTSUP;
    default:
        return berth_err_from_errno(e);
    }
}

const char *daemon_sandbox_reason(int e)
{
    const char *s;

    if (e == EXDEV)
        return "outside the site's directory";
    s = strerrordesc_np(e);
    return s != NULL ? s : "unknown error";
}

/* Fails with errno e: sets errno and returns its berth code. */
static int sb_fail(int e)
{
    errno = e;
    return daemon_sandbox_err(e);
}

/* Closes fd keeping errno, so a failure's reason survives the clean-up. */
static void sb_close(int fd)
{
    int e = errno;

    if (fd >= 0)
        close(fd);
    errno = e;
}

int daemon_sandbox_has_openat2(void)
{
    return atomic_load(&sb_have_openat2);
}

/* ------------------------------------------------------------ the string */

int daemon_sandbox_clean(const char *path, char *out, size_t size,
                         const char **why)
{
    const char *reason = NULL;
    const char *p, *end;
    size_t n, len, olen = 0;
    int rc = 0;

    if (path == NULL || out == NULL) {
        reason = "no path";
        rc = BERTH_EINVAL;
        goto out;
    }
    n = strnlen(path, PATH_MAX);
    if (n >= PATH_MAX) {
        reason = "path longer than PATH_MAX";
        rc = BERTH_EINVAL;
        goto out;
    }
    for (p = path; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) {
            reason = "control character in the path";
            rc = BERTH_EINVAL;
            goto out;
        }
    }
    /* The clean form is never longer than the path. */
    if (size < n + 1) {
        reason = "path buffer too small";
        rc = BERTH_EINVAL;
        goto out;
    }
    p = path;
    while (*p != '\0') {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        end = strchr(p, '/');
        if (end == NULL)
            end = p + strlen(p);
        len = (size_t)(end - p);
        if (len == 1 && p[0] == '.') {
            /* "." names the directory already reached. */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (olen == 0) {
                reason = "the path climbs above the site's root";
                rc = BERTH_EPERM;
                goto out;
            }
            while (olen > 0 && out[olen - 1] != '/')
                olen--;
            if (olen > 0)
                olen--;
        } else {
            if (len > NAME_MAX) {
                reason = "a name longer than NAME_MAX bytes";
                rc = BERTH_EINVAL;
                goto out;
            }
            if (olen > 0)
                out[olen++] = '/';
            memcpy(out + olen, p, len);
            olen += len;
        }
        p = end;
    }
    out[olen] = '\0';
out:
    if (rc != 0) {
        errno = rc == BERTH_EPERM ? EXDEV : EINVAL;
        if (out != NULL && size > 0)
            out[0] = '\0';
    }
    if (why != NULL)
        *why = reason;
    return rc;
}

/* ------------------------------------------------------------ the walk */

static void walk_init(sb_walk *w, int rootfd, const char *clean,
                      unsigned sbflags)
{
    w->rootfd = rootfd;
    w->dirfd = rootfd;
    w->sbflags = sbflags;
    w->links = 0;
    w->pos = 0;
    w->rlen = 0;
    w->rpath[0] = '\0';
    snprintf(w->rest, sizeof(w->rest), "%s", clean);
}

static void walk_done(sb_walk *w)
{
    if (w->dirfd != w->rootfd)
        sb_close(w->dirfd);
    w->dirfd = w->rootfd;
}

/* Makes fd (owned) the current directory. */
static void walk_setdir(sb_walk *w, int fd)
{
    if (w->dirfd != w->rootfd)
        close(w->dirfd);
    w->dirfd = fd;
}

/* Appends name to rpath. */
static int walk_push_name(sb_walk *w, const char *name)
{
    size_t n = strlen(name);

    if (w->rlen + n + 2 > sizeof(w->rpath))
        return sb_fail(ENAMETOOLONG);
    if (w->rlen > 0)
        w->rpath[w->rlen++] = '/';
    memcpy(w->rpath + w->rlen, name, n + 1);
    w->rlen += n;
    return 0;
}

/* Skips separators and "." components from p on. */
static const char *skip_dots(const char *p)
{
    for (;;) {
        while (*p == '/')
            p++;
        if (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
            p++;
            continue;
        }
        return p;
    }
}

/* Takes the next component of rest into name. Returns 1 and sets *last
 * when there is one (last: nothing but separators and "." after it), 0
 * when rest is used up. A component longer than NAME_MAX (only a link's
 * target can hold one) comes back as "". */
static int walk_next(sb_walk *w, char name[NAME_MAX + 1], int *last)
{
    const char *p = skip_dots(w->rest + w->pos);
    const char *end;
    size_t len;

    if (*p == '\0') {
        w->pos = (size_t)(p - w->rest);
        return 0;
    }
    end = strchr(p, '/');
    if (end == NULL)
        end = p + strlen(p);
    len = (size_t)(end - p);
    if (len > NAME_MAX)
        len = 0;
    memcpy(name, p, len);
    name[len] = '\0';
    w->pos = (size_t)(end - w->rest);
    *last = *skip_dots(end) == '\0';
    return 1;
}

/* Reopens the directory named by rpath from the root, one component at a
 * time; used after ".." dropped the last one. Every component was a
 * directory a moment ago, so anything else now is a race: refused. */
static int walk_reopen(sb_walk *w)
{
    char copy[PATH_MAX];
    char *save = NULL, *tok;
    struct stat st;
    int fd;

    walk_setdir(w, w->rootfd);
    memcpy(copy, w->rpath, w->rlen + 1);
    for (tok = strtok_r(copy, "/", &save); tok != NULL;
         tok = strtok_r(NULL, "/", &save)) {
        fd = openat(w->dirfd, tok,
                    O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return daemon_sandbox_err(errno);
        if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
            close(fd);
            return sb_fail(EXDEV);
        }
        walk_setdir(w, fd);
    }
    return 0;
}

/* Replaces the link (open as O_PATH in linkfd) by its target in front of
 * what is left of rest. */
static int walk_splice(sb_walk *w, int linkfd)
{
    char target[PATH_MAX];
    char joined[PATH_MAX];
    const char *tail = w->rest + w->pos;
    ssize_t n;
    int len;

    if (w->sbflags & DAEMON_SANDBOX_NO_SYMLINKS)
        return sb_fail(ELOOP);
    if (++w->links > DAEMON_SANDBOX_MAX_LINKS)
        return sb_fail(ELOOP);
    n = readlinkat(linkfd, "", target, sizeof(target));
    if (n < 0)
        return daemon_sandbox_err(errno);
    if ((size_t)n >= sizeof(target))
        return sb_fail(ENAMETOOLONG);
    target[n] = '\0';
    if (n == 0)
        return sb_fail(ENOENT);
    /* RESOLVE_BENEATH refuses absolute links; so does the walk. */
    if (target[0] == '/')
        return sb_fail(EXDEV);
    len = snprintf(joined, sizeof(joined), "%s%s%s", target,
                   *tail != '\0' ? "/" : "", tail);
    if (len < 0 || (size_t)len >= sizeof(joined))
        return sb_fail(ENAMETOOLONG);
    memcpy(w->rest, joined, (size_t)len + 1);
    w->pos = 0;
    return 0;
}

/* Whether fd (O_PATH, not followed) is a symbolic link: 1, 0, or a berth
 * code. */
static int sb_is_link(int fd)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return daemon_sandbox_err(errno);
    return S_ISLNK(st.st_mode) ? 1 : 0;
}

/* Resolves w->rest and opens its final component as fin says. Returns 0
 * and *out (-1 when fin->missing_ok and the final component is missing),
 * or a berth code. rpath names what was opened. */
static int walk_run(sb_walk *w, const sb_final *fin, int *out)
{
    int follow = !(fin->oflags & O_NOFOLLOW);
    char name[NAME_MAX + 1];
    struct stat st;
    int last, fd = -1, e, rc;

    *out = -1;
    for (;;) {
        if (!walk_next(w, name, &last)) {
            /* Nothing left: the directory reached is the result. */
            fd = openat(w->dirfd, ".", fin->oflags | O_CLOEXEC, fin->mode);
            if (fd < 0)
                return daemon_sandbox_err(errno);
            *out = fd;
            return 0;
        }
        if (name[0] == '\0')
            return sb_fail(ENAMETOOLONG);
        if (strcmp(name, "..") == 0) {
            if (w->rlen == 0)
                return sb_fail(EXDEV);
            while (w->rlen > 0 && w->rpath[w->rlen - 1] != '/')
                w->rlen--;
            if (w->rlen > 0)
                w->rlen--;
            w->rpath[w->rlen] = '\0';
            rc = walk_reopen(w);
            if (rc != 0)
                return rc;
            continue;
        }
        if (!last) {
            fd = openat(w->dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
                return daemon_sandbox_err(errno);
            if (fstat(fd, &st) != 0) {
                rc = daemon_sandbox_err(errno);
                sb_close(fd);
                return rc;
            }
            if (S_ISLNK(st.st_mode)) {
                rc = walk_splice(w, fd);
                sb_close(fd);
                if (rc != 0)
                    return rc;
                continue;
            }
            if (!S_ISDIR(st.st_mode)) {
                close(fd);
                return sb_fail(ENOTDIR);
            }
            rc = walk_push_name(w, name);
            if (rc != 0) {
                sb_close(fd);
                return rc;
            }
            walk_setdir(w, fd);
            continue;
        }
        /* The final component: opened without following; a link found
         * there is followed by hand when the caller wants that. */
        fd = openat(w->dirfd, name, fin->oflags | O_NOFOLLOW | O_CLOEXEC,
                    fin->mode);
        if (fd >= 0) {
            if (follow && (fin->oflags & O_PATH)) {
                rc = sb_is_link(fd);
                if (rc == 1) {
                    rc = walk_splice(w, fd);
                    sb_close(fd);
                    if (rc != 0)
                        return rc;
                    continue;
                }
                if (rc < 0) {
                    sb_close(fd);
                    return rc;
                }
            }
            rc = walk_push_name(w, name);
            if (rc != 0) {
                sb_close(fd);
                return rc;
            }
            *out = fd;
            return 0;
        }
        e = errno;
        /* ELOOP, or ENOTDIR under O_DIRECTORY, is what O_NOFOLLOW gives
         * for a link; EEXIST under O_EXCL is final, never followed. */
        if (follow && (e == ELOOP || e == ENOTDIR)) {
            fd = openat(w->dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
                return sb_fail(e);
            rc = sb_is_link(fd);
            if (rc == 1) {
                rc = walk_splice(w, fd);
                sb_close(fd);
                if (rc != 0)
                    return rc;
                continue;
            }
            close(fd);
            return rc < 0 ? rc : sb_fail(e);
        }
        if (e == ENOENT && fin->missing_ok) {
            rc = walk_push_name(w, name);
            if (rc != 0)
                return rc;
            return 0;
        }
        return sb_fail(e);
    }
}

/* ------------------------------------------------------------ opening */

/* openat2 on a clean path. Returns 0, a berth code, or 1 when openat2 is
 * missing (the caller walks instead). */
static int sb_openat2(int rootfd, const char *clean, int oflags, mode_t mode,
                      unsigned sbflags, int *out)
{
    struct open_how how;
    long fd;
    int i;

    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(unsigned)(oflags | O_CLOEXEC);
    if ((oflags & O_CREAT) || (oflags & O_TMPFILE) == O_TMPFILE)
        how.mode = mode;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    if (sbflags & DAEMON_SANDBOX_NO_SYMLINKS)
        how.resolve |= RESOLVE_NO_SYMLINKS;
    for (i = 0;; i++) {
        fd = syscall(SYS_openat2, rootfd, clean[0] != '\0' ? clean : ".", &how,
                     sizeof(how));
        if (fd >= 0) {
            *out = (int)fd;
            return 0;
        }
        if (errno == EAGAIN && i < SB_AGAIN_MAX)
            continue;
        if (errno == ENOSYS) {
            atomic_store(&sb_have_openat2, 0);
            return 1;
        }
        return daemon_sandbox_err(errno);
    }
}

/* Opens a clean path: openat2 when there is one, the walk otherwise. */
static int sb_open_clean(int rootfd, const char *clean, int oflags,
                         mode_t mode, unsigned sbflags, int *out)
{
    sb_walk w;
    sb_final fin = {.oflags = oflags, .mode = mode};
    int rc;

    *out = -1;
    if (!(sbflags & DAEMON_SANDBOX_FALLBACK) && atomic_load(&sb_have_openat2)) {
        rc = sb_openat2(rootfd, clean, oflags, mode, sbflags, out);
        if (rc != 1)
            return rc;
    }
    walk_init(&w, rootfd, clean, sbflags);
    rc = walk_run(&w, &fin, out);
    walk_done(&w);
    return rc;
}

int daemon_sandbox_open(int rootfd, const char *path, int oflags, mode_t mode,
                        unsigned sbflags, int *out)
{
    char clean[PATH_MAX];
    int rc;

    *out = -1;
    rc = daemon_sandbox_clean(path, clean, sizeof(clean), NULL);
    if (rc != 0)
        return rc;
    return sb_open_clean(rootfd, clean, oflags, mode, sbflags, out);
}

/* Splits a clean path into its directory part (in place) and final name. */
static void sb_split(char *clean, char name[NAME_MAX + 1])
{
    char *slash = strrchr(clean, '/');

    if (slash == NULL) {
        snprintf(name, NAME_MAX + 1, "%s", clean);
        clean[0] = '\0';
        return;
    }
    snprintf(name, NAME_MAX + 1, "%s", slash + 1);
    *slash = '\0';
}

int daemon_sandbox_open_parent(int rootfd, const char *path, unsigned sbflags,
                               int *dirfd, char name[NAME_MAX + 1])
{
    char clean[PATH_MAX];
    int rc;

    *dirfd = -1;
    name[0] = '\0';
    rc = daemon_sandbox_clean(path, clean, sizeof(clean), NULL);
    if (rc != 0)
        return rc;
    if (clean[0] == '\0') {
        errno = EBUSY;
        return BERTH_EPERM;
    }
    sb_split(clean, name);
    return sb_open_clean(rootfd, clean, O_PATH | O_DIRECTORY, 0, sbflags,
                         dirfd);
}

int daemon_sandbox_lstat(int rootfd, const char *path, unsigned sbflags,
                         struct stat *st)
{
    char clean[PATH_MAX], name[NAME_MAX + 1];
    int dirfd = -1, rc;

    rc = daemon_sandbox_clean(path, clean, sizeof(clean), NULL);
    if (rc != 0)
        return rc;
    if (clean[0] == '\0')
        return fstat(rootfd, st) == 0 ? 0 : daemon_sandbox_err(errno);
    sb_split(clean, name);
    rc = sb_open_clean(rootfd, clean, O_PATH | O_DIRECTORY, 0, sbflags, &dirfd);
    if (rc != 0)
        return rc;
    if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = daemon_sandbox_err(errno);
    sb_close(dirfd);
    return rc;
}

int daemon_sandbox_stat(int rootfd, const char *path, unsigned sbflags,
                        struct stat *st)
{
    int fd = -1, rc;

    rc = daemon_sandbox_open(rootfd, path, O_PATH, 0, sbflags, &fd);
    if (rc != 0)
        return rc;
    if (fstat(fd, st) != 0)
        rc = daemon_sandbox_err(errno);
    sb_close(fd);
    return rc;
}

int daemon_sandbox_realpath(int rootfd, const char *path, unsigned sbflags,
                            char *out, size_t size)
{
    char clean[PATH_MAX];
    sb_final fin = {.oflags = O_PATH, .missing_ok = 1};
    sb_walk w;
    int fd = -1, rc, n;

    if (size > 0)
        out[0] = '\0';
    rc = daemon_sandbox_clean(path, clean, sizeof(clean), NULL);
    if (rc != 0)
        return rc;
    walk_init(&w, rootfd, clean, sbflags);
    rc = walk_run(&w, &fin, &fd);
    if (rc == 0) {
        n = snprintf(out, size, "/%s", w.rpath);
        if (n < 0 || (size_t)n >= size)
            rc = sb_fail(ENAMETOOLONG);
    }
    sb_close(fd);
    walk_done(&w);
    return rc;
}
