/* sandbox.h - paths resolved inside a site's data directory, never outside.
 *
 *   int root = -1, fd = -1;
 *
 *   rc = daemon_files_site_root(files, "blog", &root);   (files.h)
 *   rc = daemon_sandbox_open(root, "/www/index.html", O_RDONLY, 0, 0, &fd);
 *
 * Every path a user sends (over SFTP through the shell, or to the daemon's
 * direct file endpoints) names something under one directory, the site's
 * root, held open as a directory file descriptor. This module turns such a
 * path into a file descriptor without ever leaving that directory.
 *
 * The path string. "/" is the site's root: leading slashes are dropped, so
 * "/a/b", "a/b", "//a//b" and "./a/./b" all name the same file. Empty and
 * "." components are dropped and ".." is applied to the string itself
 * before any lookup (as in a URL: "a/../b" is "b" whatever "a" is); a ".."
 * that would climb above the root is an escape (BERTH_EPERM). Refused as
 * malformed (BERTH_EINVAL): control characters (0x01-0x1f, 0x7f), a path
 * of PATH_MAX bytes or more, a component longer than NAME_MAX. Nothing is
 * decoded: "%2e%2e" is a name of six characters (the HTTP layer decodes
 * percent escapes once, before calling here), a backslash is an ordinary
 * character and so are non-ASCII dots such as U+2024. A path is a C string;
 * a caller holding counted bytes must refuse an embedded NUL itself.
 *
 * The lookup. With openat2(2), RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: a
 * symbolic link that stays under the root is followed, one that points
 * outside (absolute, or through ".." above the root) fails with EXDEV, a
 * loop with ELOOP. Where openat2 is missing (ENOSYS, kernels before 5.6)
 * the same rules are applied in user space: one openat(O_PATH|O_NOFOLLOW)
 * per component, each symbolic link read through its own descriptor and
 * spliced into the rest of the path, ".." of a link's target popping the
 * component already resolved and never the root, absolute targets refused,
 * at most 40 links. Both ways give the same results (the unit test runs
 * every case through both).
 *
 * Errors. 0 or a negative berth code: BERTH_EINVAL (malformed path),
 * BERTH_EPERM (an escape: ".." above the root, a symbolic link leading
 * outside or absolute, a loop, magic links), BERTH_ENOENT, BERTH_EEXIST
 * and the rest from errno through daemon_sandbox_err(). On failure errno
 * still holds the system's reason (EXDEV for every escape), so callers can
 * word a message; daemon_sandbox_reason() does it.
 *
 * Threads: every function may be called from any thread at once.
 */
#ifndef BERTH_DAEMON_SANDBOX_H
#define BERTH_DAEMON_SANDBOX_H

#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Flags for the sbflags arguments. */
#define DAEMON_SANDBOX_NO_SYMLINKS 0x1u /* refuse any symbolic link on the
                                           way (RESOLVE_NO_SYMLINKS) */
#define DAEMON_SANDBOX_FALLBACK    0x2u /* use the user-space walk even when
                                           openat2 exists (tests) */

/* The most symbolic links one lookup follows (the kernel's own limit). */
#define DAEMON_SANDBOX_MAX_LINKS 40

/* Checks path and writes its clean form into out (size bytes, PATH_MAX is
 * always enough): components joined by single slashes, no leading slash,
 * no "." or ".." left; "" for the root itself. Returns 0, BERTH_EINVAL or
 * BERTH_EPERM (".." above the root); *why (may be NULL) then points to a
 * static phrase saying what is wrong ("control character in the path"). */
int daemon_sandbox_clean(const char *path, char *out, size_t size,
                         const char **why);

/* Opens path under the directory rootfd with open(2) flags oflags (mode
 * for O_CREAT). O_CLOEXEC is always added. O_NOFOLLOW keeps its meaning
 * for the final component: a symbolic link there fails (BERTH_EPERM,
 * errno ELOOP), links before it are still followed unless
 * DAEMON_SANDBOX_NO_SYMLINKS. The root itself ("", "/", ".") opens ".".
 * Returns 0 and a descriptor in *out the caller closes, or a berth code. */
int daemon_sandbox_open(int rootfd, const char *path, int oflags, mode_t mode,
                        unsigned sbflags, int *out);

/* Opens the directory holding path's final component (O_PATH, following
 * links under the root) for operations on that component itself: create,
 * mkdirat, unlinkat, renameat2, fstatat(AT_SYMLINK_NOFOLLOW). Writes the
 * component into name (NAME_MAX + 1 bytes). The root itself has no parent:
 * BERTH_EPERM with errno EBUSY. Returns 0 and *dirfd (caller closes), or a
 * berth code. */
int daemon_sandbox_open_parent(int rootfd, const char *path, unsigned sbflags,
                               int *dirfd, char name[NAME_MAX + 1]);

/* lstat(2) under the root: the final component is not followed (a link
 * reports itself, wherever it points); the components before it are. */
int daemon_sandbox_lstat(int rootfd, const char *path, unsigned sbflags,
                         struct stat *st);

/* stat(2) under the root: links are followed while they stay under it. */
int daemon_sandbox_stat(int rootfd, const char *path, unsigned sbflags,
                        struct stat *st);

/* Writes the canonical path of path inside the root into out (size bytes)
 * as "/a/b" ("/" for the root), every symbolic link resolved. When only the
 * final component is missing the result names it anyway (a file about to
 * be created); a missing directory before it is BERTH_ENOENT. Always walks
 * in user space, whatever openat2 offers. */
int daemon_sandbox_realpath(int rootfd, const char *path, unsigned sbflags,
                            char *out, size_t size);

/* Maps an errno value of a sandboxed call onto a berth code: EXDEV and
 * ELOOP (an escape, a loop) are BERTH_EPERM, EISDIR and ENAMETOOLONG
 * BERTH_EINVAL, EAGAIN and ETXTBSY BERTH_EBUSY, EOPNOTSUPP and ENXIO
 * BERTH_ENOTSUP, the rest as berth_err_from_errno(). */
int daemon_sandbox_err(int e);

/* A static phrase for errno value e after a sandboxed call failed:
 * "outside the site's directory" for EXDEV, strerror's text otherwise. */
const char *daemon_sandbox_reason(int e);

/* Returns 1 when openat2 is used, 0 once it was found missing. */
int daemon_sandbox_has_openat2(void);

#endif
