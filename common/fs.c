/* fs.c - state files: directories, atomic writes, 0600 secrets. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"

int fs_mkdirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    char *p;

    if (n == 0 || n >= sizeof(tmp))
        return BERTH_EINVAL;
    memcpy(tmp, path, n + 1);
    for (p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return berth_err_from_errno(errno);
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return berth_err_from_errno(errno);
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    const char *p = data;
    int fd = -1;
    int rc = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof(tmp))
        return BERTH_EINVAL;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return berth_err_from_errno(errno);
    if (fchmod(fd, mode) != 0) {
        rc = berth_err_from_errno(errno);
        goto out;
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = berth_err_from_errno(errno);
            goto out;
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = berth_err_from_errno(errno);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = berth_err_from_errno(errno);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        rc = berth_err_from_errno(errno);
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int fs_read_file(const char *path, size_t max, char **out, size_t *len)
{
    char chunk[8192];
    buf b;
    int fd;
    int rc = 0;

    *out = NULL;
    buf_init(&b, max);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return berth_err_from_errno(errno);
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = berth_err_from_errno(errno);
            goto out;
        }
        if (r == 0)
            break;
        rc = buf_append(&b, chunk, (size_t)r);
        if (rc != 0)
            goto out;
    }
    *out = buf_detach(&b, len);
    if (*out == NULL)
        rc = BERTH_ENOMEM;
out:
    close(fd);
    buf_free(&b);
    return rc;
}

int fs_secret(const char *path, size_t len, int (*gen)(void *data, size_t len),
              char **out, size_t *outlen)
{
    struct stat st;
    char *data = NULL;
    int rc;

    *out = NULL;
    if (stat(path, &st) == 0) {
        if ((st.st_mode & 077) != 0)
            return BERTH_EPERM;
        return fs_read_file(path, 1u << 20, out, outlen);
    }
    if (errno != ENOENT)
        return berth_err_from_errno(errno);
    data = malloc(len + 1);
    if (data == NULL)
        return BERTH_ENOMEM;
    rc = gen(data, len);
    if (rc != 0)
        goto out;
    data[len] = '\0';
    rc = fs_write_atomic(path, data, len, 0600);
    if (rc != 0)
        goto out;
    *out = data;
    data = NULL;
    if (outlen != NULL)
        *outlen = len;
out:
    free(data);
    return rc;
}
