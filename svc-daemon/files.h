/* files.h - file operations in a site's data directory, and the
 * files.op.<node> bus endpoint that serves them to the shell's SFTP.
 *
 *   daemon_files *f;
 *
 *   rc = daemon_files_new(&(daemon_files_cfg){.bus = b, .node_id = id,
 *                                             .volumes_dir = vols}, &f);
 *   ...
 *   daemon_files_free(f);
 *
 * A site's files live in <volumes_dir>/<site> (mounted at /data in its
 * container); "/" in a request is that directory. Every path goes through
 * the sandbox (sandbox.h): nothing outside the site's directory is ever
 * reached, whatever the path or the symbolic links inside say. Symbolic
 * links are never created.
 *
 * Trust. The caller (the shell, later the daemon's direct server) has
 * checked the user's permissions for the site; this module checks that the
 * site exists on this node (its directory does) and that the request is
 * well formed. user_id is only logged.
 *
 * Requests (FileRequest) and what each operation uses and answers:
 *
 *   STAT      path                       info, links followed
 *   LSTAT     path                       info of a final link itself
 *   LIST      path; offset: entries to   entries (lstat of each), eof
 *             skip; length: most to
 *             return (0: 1024, at most 4096)
 *   READ      path, offset, length (0 or data, eof, info; regular files
 *             more: DAEMON_FILES_READ_MAX)   only
 *   WRITE     path, offset, data,        written, info; regular files
 *             create, truncate,          only; mode of a new file (0:
 *             exclusive, mode            0644, masked with 0777)
 *   MKDIR     path, mode (0: 0755)       info
 *   RMDIR     path                       (empty)
 *   REMOVE    path (not a directory)     (empty)
 *   RENAME    path -> target; exclusive: (empty)
 *             fail when target exists
 *   CHMOD     path, mode (07777; setuid  info
 *             and setgid refused)
 *   REALPATH  path                       path ("/a/b", links resolved)
 *   TRUNCATE  path, offset = new size    info
 *
 * Errors are berth codes with a sentence: BERTH_EINVAL (malformed path or
 * request), BERTH_EPERM (outside the site's directory, the root itself,
 * setuid bits), BERTH_ENOENT (unknown site, missing file), BERTH_EEXIST
 * (exists, directory not empty), BERTH_ENOTSUP (unknown operation, not a
 * regular file).
 *
 * Files and directories created while the daemon runs as root are given
 * to the owner of the site's directory, so the site's processes can use
 * them.
 *
 * Threads: daemon_files_do() and daemon_files_site_root() may be called
 * from any thread at once; requests from the bus arrive on one nats.c
 * thread, one at a time.
 */
#ifndef BERTH_DAEMON_FILES_H
#define BERTH_DAEMON_FILES_H

#include "bus/bus.h"
#include "shell.pb-c.h"

/* The most bytes one READ returns: its reply, base64 in JSON included,
 * stays below BUS_PAYLOAD_MAX. */
#define DAEMON_FILES_READ_MAX (512u * 1024)

#define DAEMON_FILES_LIST_DEFAULT 1024
#define DAEMON_FILES_LIST_MAX     4096

typedef struct daemon_files daemon_files;

typedef struct daemon_files_cfg {
    bus *bus;                /* NULL: no bus endpoint */
    const char *node_id;     /* with bus: serves files.op.<node_id> */
    const char *volumes_dir; /* <data dir>/volumes, created when missing */
    unsigned sbflags;        /* DAEMON_SANDBOX_* for every lookup (0) */
} daemon_files_cfg;

/* Opens the volumes directory and serves files.op.<node> when cfg->bus is
 * set. Returns 0 and *out (free with daemon_files_free()), or a berth
 * code. */
int daemon_files_new(const daemon_files_cfg *cfg, daemon_files **out);

/* Stops answering the bus (a request under way finishes first) and frees
 * f. NULL is a no-op. */
void daemon_files_free(daemon_files *f);

/* Opens the data directory of site_id (O_PATH, not through a link) for
 * the sandbox's calls. Returns 0 and *rootfd (caller closes), BERTH_EINVAL
 * for an id that is not a bus token, BERTH_ENOENT for a site without a
 * directory on this node. */
int daemon_files_site_root(daemon_files *f, const char *site_id, int *rootfd);

/* Runs one request. Fills *rep (initialised here; release it with
 * daemon_files_reply_clear() whatever the result). Returns 0, or a berth
 * code with a sentence in why (whylen bytes) naming the operation, the
 * path and the reason. */
int daemon_files_do(daemon_files *f, const Berth__V1__FileRequest *req,
                    Berth__V1__FileReply *rep, char *why, size_t whylen);

/* Frees what daemon_files_do() put in rep and initialises it again. */
void daemon_files_reply_clear(Berth__V1__FileReply *rep);

#endif
