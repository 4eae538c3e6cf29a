/* fs.h - files and directories that hold a component's state. */
#ifndef BERTH_COMMON_FS_H
#define BERTH_COMMON_FS_H

#include <stddef.h>
#include <sys/types.h>

/* Creates path and its parents with mode (like mkdir -p). Returns 0 or a
 * berth code. An existing directory is not an error. */
int fs_mkdirs(const char *path, mode_t mode);

/* Writes len bytes to path atomically (temp file, fsync, rename) with the
 * given mode. Returns 0 or a berth code. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Reads at most max bytes of path into a new NUL-terminated buffer the caller
 * frees. Returns 0, BERTH_ENOENT, BERTH_ETOOBIG or another berth code. */
int fs_read_file(const char *path, size_t max, char **out, size_t *len);

/* Reads a secret file, creating it with gen(ctx) first when it does not
 * exist; the file is 0600 and a secret found with wider permissions is
 * refused with BERTH_EPERM. gen writes len bytes into data. */
int fs_secret(const char *path, size_t len, int (*gen)(void *data, size_t len),
              char **out, size_t *outlen);

#endif
