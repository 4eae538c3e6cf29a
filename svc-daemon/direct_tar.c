/* direct_tar.c - .tar.gz archives for the direct server: writing one from
 * a site's files, and extracting one into them with guards against
 * archive bombs (see dd_tar_write() and dd_tar_extract() in direct_int.h).
 *
 * The format is POSIX ustar compressed with gzip (zlib). Names longer than
 * ustar holds are written as GNU long-name records ("././@LongLink", type
 * 'L'), which GNU tar, busybox and bsdtar read; sizes past 8 GiB use the
 * GNU base-256 form. Reading accepts the same plus PAX headers (path,
 * size), plain (uncompressed) tar and concatenated gzip members.
 *
 * Extraction reads the archive twice. The first pass only looks: every
 * entry's path must stay under the destination, the entries and the bytes
 * of data they declare must stay under the limits, and without overwrite
 * no file may exist already. Only then does the second pass write, again
 * counting against the limits (the archive could change in between), each
 * file into a temporary name renamed into place when complete. Only
 * regular files and directories are made: links, devices and FIFOs are
 * skipped, so nothing an archive holds can point outside the site.
 */
#include "svc-daemon/direct_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/err.h"
#include "common/id.h"
#include "svc-daemon/sandbox.h"

#define TAR_BLOCK     512
#define TAR_IO        (64u << 10)
#define TAR_DEPTH     128
#define TAR_PAX_MAX   (64u << 10) /* a PAX header's data */
#define TAR_LINK_NAME "././@LongLink"

/* A ustar header. */
typedef struct tar_hdr {
    char name[100];
    char mode[8];
    char uid[8];
    char gid[8];
    char size[12];
    char mtime[12];
    char chksum[8];
    char typeflag;
    char linkname[100];
    char magic[6];
    char version[2];
    char uname[32];
    char gname[32];
    char devmajor[8];
    char devminor[8];
    char prefix[155];
    char pad[12];
} tar_hdr;

_Static_assert(sizeof(tar_hdr) == TAR_BLOCK, "a tar header is one block");

static int failf(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int failf(char *why, size_t whylen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

/* ------------------------------------------------------------ writing */

typedef struct tar_out {
    int fd;
    z_stream z;
    unsigned char *obuf; /* TAR_IO */
    unsigned char *ibuf; /* TAR_IO: file data being read */
    int rootfd;
    dev_t dev;
    dev_t self_dev; /* the archive itself is not archived */
    ino_t self_ino;
    uint64_t entries;
    uint64_t bytes;
    int err;
    char *why;
    size_t whylen;
} tar_out;

/* Feeds n bytes (or, with flush Z_FINISH, the end) to the compressor. */
static int out_feed(tar_out *o, const void *p, size_t n, int flush)
{
    o->z.next_in = (unsigned char *)p;
    o->z.avail_in = (uInt)n;
    do {
        size_t have;
        int zr;

        o->z.next_out = o->obuf;
        o->z.avail_out = TAR_IO;
        zr = deflate(&o->z, flush);
        if (zr == Z_STREAM_ERROR)
            return o->err = failf(o->why, o->whylen, BERTH_EINTERNAL,
                                  "compression failed");
        have = TAR_IO - o->z.avail_out;
        for (size_t done = 0; done < have;) {
            ssize_t k = write(o->fd, o->obuf + done, have - done);

            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return o->err = failf(o->why, o->whylen,
                                      daemon_sandbox_err(errno),
                                      "writing the archive: %s",
                                      daemon_sandbox_reason(errno));
            done += (size_t)k;
        }
    } while (o->z.avail_out == 0 || (flush == Z_FINISH && o->z.avail_in > 0));
    return 0;
}

/* Writes v in octal into a field of size bytes (NUL-terminated), or in
 * base-256 when it does not fit. */
static void put_num(char *f, size_t size, uint64_t v)
{
    size_t i;

    if (v < (1ull << (3 * (size - 1)))) {
        snprintf(f, size, "%0*llo", (int)(size - 1), (unsigned long long)v);
        return;
    }
    memset(f, 0, size);
    f[0] = (char)0x80;
    for (i = size - 1; i > 0 && v > 0; i--, v >>= 8)
        f[i] = (char)(v & 0xff);
}

static void hdr_checksum(tar_hdr *h)
{
    const unsigned char *p = (const unsigned char *)h;
    unsigned sum = 0;
    size_t i;

    memset(h->chksum, ' ', sizeof(h->chksum));
    for (i = 0; i < sizeof(*h); i++)
        sum += p[i];
    snprintf(h->chksum, sizeof(h->chksum), "%06o", sum);
    h->chksum[7] = ' ';
}

/* Writes a GNU long-name record of type ('L' name, 'K' link target). */
static int put_long(tar_out *o, char type, const char *s)
{
    size_t n = strlen(s) + 1;
    char pad[TAR_BLOCK] = {0};
    tar_hdr h;

    memset(&h, 0, sizeof(h));
    snprintf(h.name, sizeof(h.name), "%s", TAR_LINK_NAME);
    put_num(h.mode, sizeof(h.mode), 0);
    put_num(h.uid, sizeof(h.uid), 0);
    put_num(h.gid, sizeof(h.gid), 0);
    put_num(h.size, sizeof(h.size), n);
    put_num(h.mtime, sizeof(h.mtime), 0);
    h.typeflag = type;
    memcpy(h.magic, "ustar ", 6);
    memcpy(h.version, " ", 2);
    hdr_checksum(&h);
    if (out_feed(o, &h, sizeof(h), Z_NO_FLUSH) != 0 ||
        out_feed(o, s, n, Z_NO_FLUSH) != 0)
        return o->err;
    if (n % TAR_BLOCK != 0)
        return out_feed(o, pad, TAR_BLOCK - n % TAR_BLOCK, Z_NO_FLUSH);
    return 0;
}

/* Writes the header of one entry named name. */
static int put_header(tar_out *o, const char *name, const struct stat *st,
                      char type, const char *link)
{
    size_t n = strlen(name);
    tar_hdr h;

    memset(&h, 0, sizeof(h));
    if (link != NULL && strlen(link) > sizeof(h.linkname) &&
        put_long(o, 'K', link) != 0)
        return o->err;
    if (n <= sizeof(h.name)) {
        memcpy(h.name, name, n);
    } else {
        /* ustar: prefix "/" name, split at a slash. */
        const char *cut = NULL, *s;

        for (s = name; (s = strchr(s, '/')) != NULL; s++) {
            if ((size_t)(s - name) <= sizeof(h.prefix) &&
                n - (size_t)(s - name) - 1 <= sizeof(h.name) &&
                n - (size_t)(s - name) - 1 > 0)
                cut = s;
        }
        if (cut != NULL) {
            memcpy(h.prefix, name, (size_t)(cut - name));
            memcpy(h.name, cut + 1, n - (size_t)(cut - name) - 1);
        } else {
            if (put_long(o, 'L', name) != 0)
                return o->err;
            memcpy(h.name, name, sizeof(h.name));
        }
    }
    put_num(h.mode, sizeof(h.mode), st->st_mode & 07777);
    put_num(h.uid, sizeof(h.uid), st->st_uid);
    put_num(h.gid, sizeof(h.gid), st->st_gid);
    put_num(h.size, sizeof(h.size),
            type == '0' && st->st_size > 0 ? (uint64_t)st->st_size : 0);
    put_num(h.mtime, sizeof(h.mtime),
            st->st_mtim.tv_sec > 0 ? (uint64_t)st->st_mtim.tv_sec : 0);
    h.typeflag = type;
    if (link != NULL)
        memcpy(h.linkname, link,
               strlen(link) < sizeof(h.linkname) ? strlen(link)
                                                 : sizeof(h.linkname));
    memcpy(h.magic, "ustar", 6);
    memcpy(h.version, "00", 2);
    put_num(h.devmajor, sizeof(h.devmajor), 0);
    put_num(h.devminor, sizeof(h.devminor), 0);
    hdr_checksum(&h);
    return out_feed(o, &h, sizeof(h), Z_NO_FLUSH);
}

/* Writes a regular file's data: exactly st_size bytes, zeros when it
 * shrank meanwhile. */
static int put_data(tar_out *o, int fd, uint64_t size)
{
    uint64_t left = size;

    while (left > 0) {
        size_t want = left < TAR_IO ? (size_t)left : TAR_IO;
        ssize_t k = read(fd, o->ibuf, want);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return o->err = failf(o->why, o->whylen, daemon_sandbox_err(errno),
                                  "reading a file: %s",
                                  daemon_sandbox_reason(errno));
        if (k == 0) {
            memset(o->ibuf, 0, want);
            k = (ssize_t)want;
        }
        if (out_feed(o, o->ibuf, (size_t)k, Z_NO_FLUSH) != 0)
            return o->err;
        left -= (uint64_t)k;
    }
    o->bytes += size;
    if (size % TAR_BLOCK != 0) {
        memset(o->ibuf, 0, TAR_BLOCK);
        return out_feed(o, o->ibuf, TAR_BLOCK - size % TAR_BLOCK, Z_NO_FLUSH);
    }
    return 0;
}

/* Archives name in parent as aname, and what is under it. */
static int put_entry(tar_out *o, int parent, const char *name,
                     const char *aname, int depth)
{
    char link[PATH_MAX + 1], child[PATH_MAX * 2];
    struct dirent *de;
    struct stat st;
    DIR *dp;
    ssize_t n;
    int fd;

    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0; /* gone meanwhile */
    if (st.st_dev != o->dev ||
        (st.st_dev == o->self_dev && st.st_ino == o->self_ino))
        return 0;
    if (S_ISLNK(st.st_mode)) {
        n = readlinkat(parent, name, link, sizeof(link) - 1);
        if (n < 0)
            return 0;
        link[n] = '\0';
        o->entries++;
        return put_header(o, aname, &st, '2', link);
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return 0;
    fd = openat(parent, name,
                O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
                    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    o->entries++;
    if (S_ISREG(st.st_mode)) {
        if (put_header(o, aname, &st, '0', NULL) == 0)
            put_data(o, fd, (uint64_t)st.st_size);
        close(fd);
        return o->err;
    }
    if (depth >= TAR_DEPTH) {
        close(fd);
        return o->err = failf(o->why, o->whylen, BERTH_EINVAL,
                              "%s: too deep", aname);
    }
    if (aname[0] != '\0') {
        snprintf(child, sizeof(child), "%s/", aname);
        if (put_header(o, child, &st, '5', NULL) != 0) {
            close(fd);
            return o->err;
        }
    }
    dp = fdopendir(fd);
    if (dp == NULL) {
        close(fd);
        return 0;
    }
    while (o->err == 0 && (de = readdir(dp)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (aname[0] != '\0')
            snprintf(child, sizeof(child), "%s/%s", aname, de->d_name);
        else
            snprintf(child, sizeof(child), "%s", de->d_name);
        if (strlen(child) >= PATH_MAX) {
            o->err = failf(o->why, o->whylen, BERTH_EINVAL,
                           "a path longer than PATH_MAX");
            break;
        }
        put_entry(o, dirfd(dp), de->d_name, child, depth + 1);
    }
    closedir(dp);
    return o->err;
}

int dd_tar_write(int rootfd, const char *base, const char *const *paths,
                 size_t n, int fd, uint64_t *entries, uint64_t *bytes,
                 char *why, size_t whylen)
{
    tar_out o = {.fd = fd, .rootfd = rootfd, .why = why, .whylen = whylen};
    char zeros[2 * TAR_BLOCK] = {0}, name[NAME_MAX + 1];
    struct stat st;
    size_t i, blen = strlen(base);
    bool zinit = false;
    int rc;

    *entries = *bytes = 0;
    if (fstat(rootfd, &st) != 0)
        return failf(why, whylen, BERTH_EIO, "the site's directory");
    o.dev = st.st_dev;
    if (fstat(fd, &st) != 0)
        return failf(why, whylen, BERTH_EIO, "the archive");
    o.self_dev = st.st_dev;
    o.self_ino = st.st_ino;
    o.obuf = malloc(TAR_IO);
    o.ibuf = malloc(TAR_IO);
    if (o.obuf == NULL || o.ibuf == NULL) {
        rc = failf(why, whylen, BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (deflateInit2(&o.z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        rc = failf(why, whylen, BERTH_ENOMEM, "compression unavailable");
        goto out;
    }
    zinit = true;
    for (i = 0; i < n && o.err == 0; i++) {
        const char *aname = paths[i] + (blen > 0 ? blen + 1 : 0);
        int dirfd = -1;

        if (paths[i][0] == '\0' || strcmp(paths[i], base) == 0) {
            /* Everything in base, named from it. */
            rc = daemon_sandbox_open(rootfd, base, O_PATH | O_DIRECTORY, 0, 0,
                                     &dirfd);
            if (rc != 0) {
                o.err = failf(why, whylen, rc, "/%s: %s", base,
                              daemon_sandbox_reason(errno));
                break;
            }
            put_entry(&o, dirfd, ".", "", 0);
            close(dirfd);
            continue;
        }
        rc = daemon_sandbox_open_parent(rootfd, paths[i], 0, &dirfd, name);
        if (rc != 0) {
            o.err = failf(why, whylen, rc, "/%s: %s", paths[i],
                          daemon_sandbox_reason(errno));
            break;
        }
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            o.err = failf(why, whylen, daemon_sandbox_err(errno), "/%s: %s",
                          paths[i], daemon_sandbox_reason(errno));
        else
            put_entry(&o, dirfd, name, aname, 0);
        close(dirfd);
    }
    if (o.err == 0)
        out_feed(&o, zeros, sizeof(zeros), Z_NO_FLUSH);
    if (o.err == 0)
        out_feed(&o, NULL, 0, Z_FINISH);
    rc = o.err;
    *entries = o.entries;
    *bytes = o.bytes;
out:
    if (zinit)
        deflateEnd(&o.z);
    free(o.obuf);
    free(o.ibuf);
    return rc;
}

/* ------------------------------------------------------------ reading */

/* The archive as a stream of tar bytes: gunzipped, or as it is. */
typedef struct tar_in {
    int fd;
    bool gz;
    bool zinit;
    bool eof;     /* the file ended */
    bool zend;    /* the compressed stream ended */
    z_stream z;
    unsigned char *ibuf; /* TAR_IO */
    size_t ilen, ipos;   /* raw (not gzip) reading */
    uint64_t total;      /* tar bytes produced */
    char *why;
    size_t whylen;
} tar_in;

/* Reads more of the file into ibuf. Returns bytes read, 0 at the end, or
 * a berth code. */
static ssize_t in_fill(tar_in *r)
{
    ssize_t k;

    do
        k = read(r->fd, r->ibuf, TAR_IO);
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return failf(r->why, r->whylen, daemon_sandbox_err(errno),
                     "reading the archive: %s", daemon_sandbox_reason(errno));
    if (k == 0)
        r->eof = true;
    return k;
}

static int in_open(tar_in *r, int fd, char *why, size_t whylen)
{
    ssize_t k;

    memset(r, 0, sizeof(*r));
    r->fd = fd;
    r->why = why;
    r->whylen = whylen;
    r->ibuf = malloc(TAR_IO);
    if (r->ibuf == NULL)
        return failf(why, whylen, BERTH_ENOMEM, "out of memory");
    if (lseek(fd, 0, SEEK_SET) != 0)
        return failf(why, whylen, BERTH_EIO, "cannot read the archive");
    k = in_fill(r);
    if (k < 0)
        return (int)k;
    r->gz = k >= 2 && r->ibuf[0] == 0x1f && r->ibuf[1] == 0x8b;
    if (r->gz) {
        if (inflateInit2(&r->z, 15 + 32) != Z_OK)
            return failf(why, whylen, BERTH_ENOMEM, "gzip unavailable");
        r->zinit = true;
        r->z.next_in = r->ibuf;
        r->z.avail_in = (uInt)k;
    } else {
        r->ilen = (size_t)k;
    }
    return 0;
}

static void in_close(tar_in *r)
{
    if (r->zinit)
        inflateEnd(&r->z);
    free(r->ibuf);
}

/* Reads up to n tar bytes into p. Returns how many (fewer only at the
 * end), or a berth code. */
static ssize_t in_read(tar_in *r, void *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        if (!r->gz) {
            size_t take;

            if (r->ipos == r->ilen) {
                ssize_t k = r->eof ? 0 : in_fill(r);

                if (k < 0)
                    return k;
                if (k == 0)
                    break;
                r->ilen = (size_t)k;
                r->ipos = 0;
            }
            take = r->ilen - r->ipos < n - got ? r->ilen - r->ipos : n - got;
            memcpy((char *)p + got, r->ibuf + r->ipos, take);
            r->ipos += take;
            got += take;
            continue;
        }
        if (r->zend && r->z.avail_in == 0 && r->eof)
            break;
        if (r->z.avail_in == 0 && !r->eof) {
            ssize_t k = in_fill(r);

            if (k < 0)
                return k;
            r->z.next_in = r->ibuf;
            r->z.avail_in = (uInt)k;
            if (k == 0 && r->zend)
                break;
            if (k == 0)
                return failf(r->why, r->whylen, BERTH_EINVAL,
                             "the archive is truncated");
        }
        if (r->zend) {
            /* Another gzip member follows. */
            if (inflateReset(&r->z) != Z_OK)
                return failf(r->why, r->whylen, BERTH_EINVAL,
                             "the archive is not valid gzip");
            r->zend = false;
        }
        r->z.next_out = (unsigned char *)p + got;
        r->z.avail_out = (uInt)(n - got);
        {
            int zr = inflate(&r->z, Z_NO_FLUSH);

            got = n - r->z.avail_out;
            if (zr == Z_STREAM_END)
                r->zend = true;
            else if (zr != Z_OK && zr != Z_BUF_ERROR)
                return failf(r->why, r->whylen, BERTH_EINVAL,
                             "the archive is not valid gzip");
            else if (zr == Z_BUF_ERROR && r->z.avail_in == 0 && r->eof)
                return failf(r->why, r->whylen, BERTH_EINVAL,
                             "the archive is truncated");
        }
    }
    r->total += got;
    return (ssize_t)got;
}

/* Reads exactly n bytes. */
static int in_exact(tar_in *r, void *p, size_t n)
{
    ssize_t k = in_read(r, p, n);

    if (k < 0)
        return (int)k;
    if ((size_t)k != n)
        return failf(r->why, r->whylen, BERTH_EINVAL,
                     "the archive is truncated");
    return 0;
}

/* Parses a numeric field: octal, or GNU base-256. Returns 0 or -1. */
static int get_num(const char *f, size_t size, uint64_t *v)
{
    size_t i = 0;
    uint64_t x = 0;

    if ((unsigned char)f[0] & 0x80) {
        if (f[0] != (char)0x80)
            return -1; /* negative */
        for (i = 1; i < size; i++) {
            if (x >> 56)
                return -1;
            x = x << 8 | (unsigned char)f[i];
        }
        *v = x;
        return 0;
    }
    while (i < size && (f[i] == ' ' || f[i] == '\0'))
        i++;
    for (; i < size && f[i] >= '0' && f[i] <= '7'; i++) {
        if (x >> 60)
            return -1;
        x = x << 3 | (uint64_t)(f[i] - '0');
    }
    for (; i < size; i++) {
        if (f[i] != ' ' && f[i] != '\0')
            return -1;
    }
    *v = x;
    return 0;
}

/* Whether a block is all zeros (the end of the archive). */
static bool block_zero(const unsigned char *b)
{
    size_t i;

    for (i = 0; i < TAR_BLOCK; i++) {
        if (b[i] != 0)
            return false;
    }
    return true;
}

static bool hdr_valid(const tar_hdr *h)
{
    const unsigned char *p = (const unsigned char *)h;
    unsigned sum = 0;
    int ssum = 0;
    uint64_t want;
    size_t i;

    if (get_num(h->chksum, sizeof(h->chksum), &want) != 0)
        return false;
    for (i = 0; i < sizeof(*h); i++) {
        unsigned char c = i >= 148 && i < 156 ? ' ' : p[i];

        sum += c;
        ssum += (signed char)c;
    }
    return want == sum || (int64_t)want == ssum;
}

/* One entry as read: its full name, type, size and mode. */
typedef struct tar_entry {
    char name[PATH_MAX];
    char type;
    uint64_t size;
    mode_t mode;
} tar_entry;

/* Skips n bytes of data and its padding. */
static int in_skip(tar_in *r, uint64_t n, unsigned char *scratch)
{
    uint64_t left = n + (TAR_BLOCK - n % TAR_BLOCK) % TAR_BLOCK;

    while (left > 0) {
        size_t want = left < TAR_IO ? (size_t)left : TAR_IO;
        int rc = in_exact(r, scratch, want);

        if (rc != 0)
            return rc;
        left -= want;
    }
    return 0;
}

/* Reads a long name or PAX record set of size n into a NUL-terminated
 * string (caller frees). */
static int in_meta(tar_in *r, uint64_t n, char **out)
{
    uint64_t padded = n + (TAR_BLOCK - n % TAR_BLOCK) % TAR_BLOCK;
    char *s;
    int rc;

    *out = NULL;
    if (n > TAR_PAX_MAX)
        return failf(r->why, r->whylen, BERTH_ETOOBIG,
                     "an extended header is too large");
    s = malloc(padded + 1);
    if (s == NULL)
        return failf(r->why, r->whylen, BERTH_ENOMEM, "out of memory");
    rc = in_exact(r, s, (size_t)padded);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

/* Applies the PAX records "len key=value\n" that matter: path, size. */
static void pax_apply(const char *s, char *path, size_t pathsize,
                      uint64_t *size, bool *has_size)
{
    while (*s != '\0') {
        char *end;
        unsigned long len = strtoul(s, &end, 10);
        const char *kv, *eq;

        if (end == s || *end != ' ' || len < 5 || len > strlen(s))
            return;
        kv = end + 1;
        eq = memchr(kv, '=', (size_t)(s + len - kv));
        if (eq != NULL && s[len - 1] == '\n') {
            size_t klen = (size_t)(eq - kv), vlen = (size_t)(s + len - 1 - eq - 1);

            if (klen == 4 && memcmp(kv, "path", 4) == 0 && vlen < pathsize) {
                memcpy(path, eq + 1, vlen);
                path[vlen] = '\0';
            } else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
                char num[32];

                if (vlen < sizeof(num)) {
                    memcpy(num, eq + 1, vlen);
                    num[vlen] = '\0';
                    *size = strtoull(num, NULL, 10);
                    *has_size = true;
                }
            }
        }
        s += len;
    }
}

/* Reads the next entry's header (long names and PAX applied). Returns 1
 * with an entry, 0 at the end of the archive, or a berth code. */
static int next_entry(tar_in *r, tar_entry *e)
{
    char longname[PATH_MAX] = "", paxpath[PATH_MAX] = "";
    uint64_t paxsize = 0;
    bool has_paxsize = false;

    for (int nmeta = 0;; nmeta++) {
        tar_hdr h;
        uint64_t v;
        char *meta = NULL;
        ssize_t k = in_read(r, &h, sizeof(h));
        int rc;

        if (k < 0)
            return (int)k;
        if (k == 0 && r->total > 0)
            return 0; /* the end, without its zero blocks: accepted */
        if ((size_t)k != sizeof(h))
            return failf(r->why, r->whylen, BERTH_EINVAL,
                         k == 0 ? "the archive is empty"
                                : "the archive is truncated");
        if (nmeta > 8)
            return failf(r->why, r->whylen, BERTH_EINVAL,
                         "too many extended headers for one entry");
        if (block_zero((const unsigned char *)&h))
            return 0;
        if (!hdr_valid(&h))
            return failf(r->why, r->whylen, BERTH_EINVAL,
                         "not a tar archive (bad header checksum)");
        if (get_num(h.size, sizeof(h.size), &v) != 0)
            return failf(r->why, r->whylen, BERTH_EINVAL,
                         "a malformed size in the archive");
        if (h.typeflag == 'L' || h.typeflag == 'x' || h.typeflag == 'g' ||
            h.typeflag == 'K') {
            rc = in_meta(r, v, &meta);
            if (rc != 0)
                return rc;
            if (h.typeflag == 'L')
                snprintf(longname, sizeof(longname), "%s", meta);
            else if (h.typeflag == 'x')
                pax_apply(meta, paxpath, sizeof(paxpath), &paxsize,
                          &has_paxsize);
            free(meta);
            continue;
        }
        e->type = h.typeflag == '\0' ? '0' : h.typeflag;
        e->size = has_paxsize ? paxsize : v;
        if (get_num(h.mode, sizeof(h.mode), &v) != 0)
            v = 0644;
        e->mode = (mode_t)(v & 0777);
        if (paxpath[0] != '\0') {
            snprintf(e->name, sizeof(e->name), "%s", paxpath);
        } else if (longname[0] != '\0') {
            snprintf(e->name, sizeof(e->name), "%s", longname);
        } else {
            char nm[101], px[156];

            memcpy(nm, h.name, 100);
            nm[100] = '\0';
            memcpy(px, h.prefix, 155);
            px[155] = '\0';
            if (memcmp(h.magic, "ustar", 5) == 0 && px[0] != '\0' &&
                h.magic[5] == '\0')
                snprintf(e->name, sizeof(e->name), "%s/%s", px, nm);
            else
                snprintf(e->name, sizeof(e->name), "%s", nm);
        }
        return 1;
    }
}

/* ------------------------------------------------------------ extracting */

typedef struct tar_x {
    int rootfd;
    const char *dest;
    uint64_t max_bytes;
    uint64_t max_entries;
    bool overwrite;
    uint64_t entries;
    uint64_t bytes;
    uint64_t skipped;
    char *why;
    size_t whylen;
} tar_x;

/* The entry's path under the site's root: dest "/" name, clean, and still
 * under dest. Returns 0 or a berth code. */
static int entry_path(tar_x *x, const tar_entry *e, char out[PATH_MAX])
{
    char joined[PATH_MAX * 2 + 2];
    const char *bad = NULL;
    size_t dl = strlen(x->dest);
    int rc;

    if (e->name[0] == '/' )
        return failf(x->why, x->whylen, BERTH_EPERM,
                     "%.200s: absolute names are refused", e->name);
    snprintf(joined, sizeof(joined), "%s/%s", x->dest, e->name);
    rc = daemon_sandbox_clean(joined, out, PATH_MAX, &bad);
    if (rc == BERTH_EPERM ||
        (rc == 0 && dl > 0 &&
         (strncmp(out, x->dest, dl) != 0 || (out[dl] != '/' && out[dl] != '\0'))))
        return failf(x->why, x->whylen, BERTH_EPERM,
                     "%.200s: the name leaves the destination", e->name);
    if (rc != 0)
        return failf(x->why, x->whylen, rc, "%.200s: %s", e->name, bad);
    return 0;
}

/* Counts an entry against the limits; the stream as a whole may hold
 * headers and padding besides the data, not much more. */
static int count(tar_x *x, const tar_in *r, const tar_entry *e,
                 uint64_t *entries, uint64_t *bytes)
{
    if (r->total > x->max_bytes + x->max_entries * 4096 + (16u << 20))
        return failf(x->why, x->whylen, BERTH_ETOOBIG,
                     "the archive unpacks to more than %llu bytes",
                     (unsigned long long)x->max_bytes);
    (*entries)++;
    *bytes += e->size;
    if (*entries > x->max_entries)
        return failf(x->why, x->whylen, BERTH_ETOOBIG,
                     "the archive holds more than %llu entries",
                     (unsigned long long)x->max_entries);
    if (*bytes > x->max_bytes || e->size > x->max_bytes)
        return failf(x->why, x->whylen, BERTH_ETOOBIG,
                     "the archive unpacks to more than %llu bytes",
                     (unsigned long long)x->max_bytes);
    return 0;
}

/* The first pass: looks at every entry, writes nothing. */
static int scan(tar_x *x, tar_in *r, unsigned char *scratch)
{
    uint64_t entries = 0, bytes = 0;
    tar_entry e;
    char path[PATH_MAX];
    struct stat st;
    int rc;

    while ((rc = next_entry(r, &e)) == 1) {
        rc = count(x, r, &e, &entries, &bytes);
        if (rc == 0)
            rc = entry_path(x, &e, path);
        if (rc != 0)
            return rc;
        if (e.type == '0' || e.type == '7') {
            if (path[0] == '\0')
                return failf(x->why, x->whylen, BERTH_EINVAL,
                             "%.200s: not a file name", e.name);
            if (daemon_sandbox_lstat(x->rootfd, path, 0, &st) == 0 &&
                (!x->overwrite || !S_ISREG(st.st_mode)))
                return failf(x->why, x->whylen, BERTH_EEXIST,
                             "/%.200s exists", path);
        } else if (e.type == '5') {
            if (daemon_sandbox_lstat(x->rootfd, path, 0, &st) == 0 &&
                !S_ISDIR(st.st_mode))
                return failf(x->why, x->whylen, BERTH_EEXIST,
                             "/%.200s exists and is not a directory", path);
        }
        rc = in_skip(r, e.size, scratch);
        if (rc != 0)
            return rc;
    }
    return rc;
}

/* Makes the directory path and those above it (under dest). */
static int make_dirs(tar_x *x, const char *path, mode_t mode)
{
    char prefix[PATH_MAX], name[NAME_MAX + 1];
    size_t i, n = strlen(path);
    int rc, dirfd;

    for (i = 0; i <= n; i++) {
        struct stat st;

        if (path[i] != '/' && path[i] != '\0')
            continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        if (prefix[0] == '\0')
            continue;
        rc = daemon_sandbox_open_parent(x->rootfd, prefix, 0, &dirfd, name);
        if (rc != 0)
            return failf(x->why, x->whylen, rc, "/%.200s: %s", prefix,
                         daemon_sandbox_reason(errno));
        if (mkdirat(dirfd, name, i == n ? (mode | 0700) : 0755) == 0) {
            dd_give(x->rootfd, dirfd, name, -1);
        } else if (errno != EEXIST ||
                   fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                   !S_ISDIR(st.st_mode)) {
            rc = daemon_sandbox_err(errno == EEXIST ? ENOTDIR : errno);
            close(dirfd);
            return failf(x->why, x->whylen, rc, "/%.200s: %s", prefix,
                         errno == EEXIST ? "exists and is not a directory"
                                         : daemon_sandbox_reason(errno));
        }
        close(dirfd);
    }
    return 0;
}

/* Writes one regular file: into a temporary name, then into place. */
static int write_file(tar_x *x, tar_in *r, const tar_entry *e,
                      const char *path, unsigned char *scratch)
{
    char name[NAME_MAX + 1], tmp[NAME_MAX + 1], parent[PATH_MAX];
    const char *slash = strrchr(path, '/');
    unsigned char rnd[8];
    uint64_t left = e->size;
    int dirfd = -1, fd = -1, rc, i;

    if (slash != NULL) {
        memcpy(parent, path, (size_t)(slash - path));
        parent[slash - path] = '\0';
        rc = make_dirs(x, parent, 0755);
        if (rc != 0)
            return rc;
    }
    rc = daemon_sandbox_open_parent(x->rootfd, path, 0, &dirfd, name);
    if (rc != 0)
        return failf(x->why, x->whylen, rc, "/%.200s: %s", path,
                     daemon_sandbox_reason(errno));
    id_random(rnd, sizeof(rnd));
    i = snprintf(tmp, sizeof(tmp), ".berth-extract-");
    for (int k = 0; k < 8; k++)
        i += snprintf(tmp + i, sizeof(tmp) - (size_t)i, "%02x", rnd[k]);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                e->mode != 0 ? e->mode : 0644);
    if (fd < 0) {
        rc = failf(x->why, x->whylen, daemon_sandbox_err(errno), "/%.200s: %s",
                   path, daemon_sandbox_reason(errno));
        goto out;
    }
    dd_give(x->rootfd, -1, NULL, fd);
    while (left > 0) {
        size_t want = left < TAR_IO ? (size_t)left : TAR_IO;

        rc = in_exact(r, scratch, want);
        for (size_t done = 0; rc == 0 && done < want;) {
            ssize_t k = write(fd, scratch + done, want - done);

            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                rc = failf(x->why, x->whylen, daemon_sandbox_err(errno),
                           "/%.200s: %s", path, daemon_sandbox_reason(errno));
            else
                done += (size_t)k;
        }
        if (rc != 0)
            goto out;
        left -= want;
    }
    if (e->size % TAR_BLOCK != 0)
        rc = in_exact(r, scratch, TAR_BLOCK - e->size % TAR_BLOCK);
    if (rc != 0)
        goto out;
    if (renameat2(dirfd, tmp, dirfd, name, x->overwrite ? 0 : RENAME_NOREPLACE)
        != 0) {
        rc = failf(x->why, x->whylen, daemon_sandbox_err(errno), "/%.200s: %s",
                   path, daemon_sandbox_reason(errno));
        goto out;
    }
    tmp[0] = '\0';
out:
    if (fd >= 0) {
        close(fd);
        if (tmp[0] != '\0')
            unlinkat(dirfd, tmp, 0);
    }
    close(dirfd);
    return rc;
}

/* The second pass: writes. */
static int unpack(tar_x *x, tar_in *r, unsigned char *scratch)
{
    tar_entry e;
    char path[PATH_MAX];
    int rc;

    while ((rc = next_entry(r, &e)) == 1) {
        rc = count(x, r, &e, &x->entries, &x->bytes);
        if (rc == 0)
            rc = entry_path(x, &e, path);
        if (rc != 0)
            return rc;
        if (e.type == '5') {
            rc = path[0] != '\0' ? make_dirs(x, path, e.mode) : 0;
            if (rc == 0)
                rc = in_skip(r, e.size, scratch);
        } else if (e.type == '0' || e.type == '7') {
            rc = write_file(x, r, &e, path, scratch);
        } else {
            x->skipped++;
            rc = in_skip(r, e.size, scratch);
        }
        if (rc != 0)
            return rc;
    }
    return rc;
}

int dd_tar_extract(int rootfd, const char *dest, int fd, uint64_t max_bytes,
                   uint64_t max_entries, bool overwrite, uint64_t *entries,
                   uint64_t *bytes, uint64_t *skipped, char *why,
                   size_t whylen)
{
    tar_x x = {.rootfd = rootfd, .dest = dest, .max_bytes = max_bytes,
               .max_entries = max_entries, .overwrite = overwrite,
               .why = why, .whylen = whylen};
    unsigned char *scratch = malloc(TAR_IO);
    struct stat st;
    tar_in r;
    int rc;

    *entries = *bytes = *skipped = 0;
    memset(&r, 0, sizeof(r));
    if (scratch == NULL) {
        rc = failf(why, whylen, BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (dest[0] != '\0') {
        rc = daemon_sandbox_stat(rootfd, dest, 0, &st);
        if (rc == 0 && !S_ISDIR(st.st_mode))
            rc = BERTH_EINVAL, errno = ENOTDIR;
        if (rc != 0) {
            rc = failf(why, whylen, rc, "to /%s: %s", dest,
                       daemon_sandbox_reason(errno));
            goto out;
        }
    }
    rc = in_open(&r, fd, why, whylen);
    if (rc == 0)
        rc = scan(&x, &r, scratch);
    in_close(&r);
    if (rc != 0)
        goto out;
    rc = in_open(&r, fd, why, whylen);
    if (rc == 0)
        rc = unpack(&x, &r, scratch);
    in_close(&r);
    *entries = x.entries;
    *bytes = x.bytes;
    *skipped = x.skipped;
out:
    free(scratch);
    return rc;
}
