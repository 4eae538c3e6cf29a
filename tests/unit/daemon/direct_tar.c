/* direct_tar.c - the direct server's archives: a tree written and read
 * back (long names, empty and binary files, links stored as links), what
 * extraction reads (PAX and GNU long names, plain tar, several gzip
 * members), and what it refuses before writing a byte (names that leave,
 * files that exist, too many bytes or entries, broken archives). */
#include "svc-daemon/direct_tar.c"
#include "svc-daemon/sandbox.c"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/fs.h"
#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

static char *tmp;
static char root[1200];
static int rootfd = -1;

/* direct_files.c's; nothing to give in a test. */
void dd_give(int rfd, int dirfd, const char *name, int fd)
{
    (void)rfd;
    (void)dirfd;
    (void)name;
    (void)fd;
}

static void setup(void)
{
    tmp = h_tempdir("direct-tar");
    ck_assert_ptr_nonnull(tmp);
    snprintf(root, sizeof(root), "%s/site", tmp);
    ck_assert_int_eq(mkdir(root, 0755), 0);
    rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(rootfd, 0);
}

static void teardown(void)
{
    close(rootfd);
    h_tempdir_drop(tmp, "direct-tar");
}

static void put(const char *rel, const void *data, size_t len)
{
    char p[2400];
    int fd;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void mkd(const char *rel)
{
    char p[2400];

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static int there(const char *rel)
{
    char p[2400];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    return lstat(p, &st) == 0;
}

static int open_file(const char *rel, int flags)
{
    char p[2400];
    int fd;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    fd = open(p, flags | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* The content of rel (caller frees). */
static char *slurp(const char *rel, size_t *n)
{
    char p[2400], *text = NULL;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    ck_assert_int_eq(fs_read_file(p, 64u << 20, &text, n), 0);
    return text;
}

/* ------------------------------------------------------------ building */

static void header(buf *b, const char *name, char type, uint64_t size,
                   const char *prefix)
{
    tar_hdr h;
    struct stat st;

    memset(&st, 0, sizeof(st));
    st.st_mode = 0644;
    st.st_size = (off_t)size;
    memset(&h, 0, sizeof(h));
    snprintf(h.name, sizeof(h.name), "%s", name);
    put_num(h.mode, sizeof(h.mode), 0644);
    put_num(h.uid, sizeof(h.uid), 0);
    put_num(h.gid, sizeof(h.gid), 0);
    put_num(h.size, sizeof(h.size), size);
    put_num(h.mtime, sizeof(h.mtime), 0);
    h.typeflag = type;
    memcpy(h.magic, "ustar", 6);
    memcpy(h.version, "00", 2);
    if (prefix != NULL)
        memcpy(h.prefix, prefix, strlen(prefix));
    hdr_checksum(&h);
    ck_assert_int_eq(buf_append(b, &h, sizeof(h)), 0);
}

static void data(buf *b, const void *p, size_t n)
{
    static const char zeros[TAR_BLOCK];

    ck_assert_int_eq(buf_append(b, p, n), 0);
    if (n % TAR_BLOCK != 0)
        ck_assert_int_eq(buf_append(b, zeros, TAR_BLOCK - n % TAR_BLOCK), 0);
}

static void end(buf *b)
{
    static const char zeros[2 * TAR_BLOCK];

    ck_assert_int_eq(buf_append(b, zeros, sizeof(zeros)), 0);
}

/* Writes b into rel, gzipped (members: how many gzip members) or as it
 * is (members 0). */
static void save(const char *rel, const buf *b, int members)
{
    char p[2400];
    size_t i, piece;
    gzFile z;

    snprintf(p, sizeof(p), "%s/%s", root, rel);
    if (members == 0) {
        ck_assert_int_eq(fs_write_atomic(p, b->data, b->len, 0644), 0);
        return;
    }
    unlink(p);
    piece = (b->len + (size_t)members - 1) / (size_t)members;
    for (i = 0; i < b->len; i += piece) {
        size_t n = b->len - i < piece ? b->len - i : piece;

        z = gzopen(p, "ab");
        ck_assert_ptr_nonnull(z);
        ck_assert_int_eq(gzwrite(z, b->data + i, (unsigned)n), (int)n);
        gzclose(z);
    }
}

static int extract(const char *rel, const char *dest, uint64_t max_bytes,
                   uint64_t max_entries, bool overwrite, uint64_t *entries,
                   char *why, size_t whylen)
{
    uint64_t e = 0, b = 0, s = 0;
    int fd = open_file(rel, O_RDONLY), rc;

    rc = dd_tar_extract(rootfd, dest, fd, max_bytes, max_entries, overwrite,
                        &e, &b, &s, why, whylen);
    close(fd);
    if (entries != NULL)
        *entries = e;
    return rc;
}

/* ------------------------------------------------------------ tests */

START_TEST(a_tree_round_trips)
{
    static unsigned char bin[300000];
    char name[400], path[600], why[512] = "";
    const char *paths[] = {""};
    uint64_t entries = 0, bytes = 0;
    size_t i, n;
    char *text;
    int fd;

    for (i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 7);
    mkd("src");
    mkd("src/a");
    mkd("src/a/b");
    put("src/empty", "", 0);
    put("src/a/b/bin", bin, sizeof(bin));
    /* A name of 200 bytes: ustar's prefix cannot split it. */
    memset(name, 'n', 200);
    name[200] = '\0';
    snprintf(path, sizeof(path), "src/a/%s", name);
    put(path, "long", 4);
    /* A long path that the prefix can split. */
    mkd("src/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
    put("src/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "split", 5);
    {
        char l[2400];

        snprintf(l, sizeof(l), "%s/src/link", root);
        ck_assert_int_eq(symlink("/etc/passwd", l), 0);
    }

    fd = open_file("src.tar.gz", O_RDWR | O_CREAT | O_TRUNC);
    ck_assert_int_eq(dd_tar_write(rootfd, "src", paths, 1, fd, &entries,
                                  &bytes, why, sizeof(why)),
                     0);
    close(fd);
    ck_assert_uint_eq(entries, 9); /* 3 dirs, 4 files, 1 link, 1 dir */
    ck_assert_uint_eq(bytes, sizeof(bin) + 4 + 5);

    mkd("out");
    ck_assert_int_eq(extract("src.tar.gz", "out", 1u << 30, 1000, false,
                             &entries, why, sizeof(why)),
                     0);
    text = slurp("out/a/b/bin", &n);
    ck_assert_uint_eq(n, sizeof(bin));
    ck_assert_int_eq(memcmp(text, bin, n), 0);
    free(text);
    snprintf(path, sizeof(path), "out/a/%s", name);
    text = slurp(path, &n);
    ck_assert_str_eq(text, "long");
    free(text);
    text = slurp("out/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/"
                 "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                 &n);
    ck_assert_str_eq(text, "split");
    free(text);
    ck_assert(there("out/empty"));
    ck_assert(!there("out/link")); /* links are never made */
    /* Again: the files exist now. */
    ck_assert_int_eq(extract("src.tar.gz", "out", 1u << 30, 1000, false, NULL,
                             why, sizeof(why)),
                     BERTH_EEXIST);
    ck_assert_int_eq(extract("src.tar.gz", "out", 1u << 30, 1000, true, NULL,
                             why, sizeof(why)),
                     0);
    /* The archive does not hold itself when written inside the tree. */
    fd = open_file("src/self.tar.gz", O_RDWR | O_CREAT | O_TRUNC);
    ck_assert_int_eq(dd_tar_write(rootfd, "src", paths, 1, fd, &entries,
                                  &bytes, why, sizeof(why)),
                     0);
    close(fd);
    ck_assert_uint_eq(entries, 9);
}
END_TEST

START_TEST(what_extraction_reads)
{
    char why[512] = "", *text;
    uint64_t entries;
    size_t n;
    buf b;

    buf_init(&b, 1 << 20);
    /* PAX path over the header's, a GNU long name, a prefix. */
    header(&b, "PaxHeaders/x", 'x', 0, NULL);
    {
        const char rec[] = "24 path=pax/renamed.txt\n";

        /* Rewrite the size now that the record is known. */
        put_num(((tar_hdr *)(void *)(b.data + b.len - TAR_BLOCK))->size, 12,
                sizeof(rec) - 1);
        hdr_checksum((tar_hdr *)(void *)(b.data + b.len - TAR_BLOCK));
        data(&b, rec, sizeof(rec) - 1);
    }
    header(&b, "ignored-name", '0', 3, NULL);
    data(&b, "pax", 3);
    {
        char longname[300];

        memset(longname, 'g', 250);
        snprintf(longname + 250, sizeof(longname) - 250, ".txt");
        header(&b, TAR_LINK_NAME, 'L', strlen(longname) + 1, NULL);
        data(&b, longname, strlen(longname) + 1);
        header(&b, "truncated", '0', 2, NULL);
        data(&b, "gn", 2);
    }
    header(&b, "file.txt", '0', 6, "some/prefix");
    data(&b, "prefix", 6);
    header(&b, "fifo", '6', 0, NULL);
    end(&b);

    save("a.tar", &b, 0);
    ck_assert_int_eq(extract("a.tar", "", 1u << 20, 100, false, &entries, why,
                             sizeof(why)),
                     0);
    text = slurp("pax/renamed.txt", &n);
    ck_assert_str_eq(text, "pax");
    free(text);
    ck_assert(!there("ignored-name"));
    text = slurp("some/prefix/file.txt", &n);
    ck_assert_str_eq(text, "prefix");
    free(text);
    ck_assert(!there("fifo"));
    {
        char longname[300];

        memset(longname, 'g', 250);
        snprintf(longname + 250, sizeof(longname) - 250, ".txt");
        text = slurp(longname, &n);
        ck_assert_str_eq(text, "gn");
        free(text);
    }
    /* The same gzipped in three members lands in another directory. */
    save("a.tar.gz", &b, 3);
    mkd("three");
    ck_assert_int_eq(extract("a.tar.gz", "three", 1u << 20, 100, false, NULL,
                             why, sizeof(why)),
                     0);
    ck_assert(there("three/some/prefix/file.txt"));
    buf_free(&b);
}
END_TEST

START_TEST(refused_before_writing)
{
    static const char *const leaving[] = {
        "../out.txt", "/abs.txt", "a/../../out.txt", "..", "./../x",
    };
    char why[512] = "";
    size_t i;
    buf b;

    mkd("dest");
    for (i = 0; i < sizeof(leaving) / sizeof(leaving[0]); i++) {
        buf_init(&b, 1 << 20);
        header(&b, "first.txt", '0', 5, NULL);
        data(&b, "first", 5);
        header(&b, leaving[i], '0', 3, NULL);
        data(&b, "bad", 3);
        end(&b);
        save("leave.tar.gz", &b, 1);
        buf_free(&b);
        ck_assert_msg(extract("leave.tar.gz", "dest", 1u << 20, 100, false,
                              NULL, why, sizeof(why)) == BERTH_EPERM,
                      "%s: %s", leaving[i], why);
        ck_assert(!there("dest/first.txt"));
    }
    ck_assert(!there("out.txt"));
    /* Declared bytes past the limit (the data is never even read). */
    buf_init(&b, 1 << 20);
    header(&b, "first.txt", '0', 5, NULL);
    data(&b, "first", 5);
    header(&b, "huge", '0', 1ull << 40, NULL);
    save("bomb.tar.gz", &b, 1);
    buf_free(&b);
    ck_assert_int_eq(extract("bomb.tar.gz", "dest", 1u << 20, 100, false, NULL,
                             why, sizeof(why)),
                     BERTH_ETOOBIG);
    ck_assert(!there("dest/first.txt"));
    /* Too many entries. */
    buf_init(&b, 1 << 20);
    for (i = 0; i < 20; i++) {
        char nm[16];

        snprintf(nm, sizeof(nm), "e%zu", i);
        header(&b, nm, '0', 0, NULL);
    }
    end(&b);
    save("many.tar", &b, 0);
    buf_free(&b);
    ck_assert_int_eq(extract("many.tar", "dest", 1u << 20, 10, false, NULL,
                             why, sizeof(why)),
                     BERTH_ETOOBIG);
    ck_assert(!there("dest/e0"));
    ck_assert_int_eq(extract("many.tar", "dest", 1u << 20, 20, false, NULL,
                             why, sizeof(why)),
                     0);
    /* A file where a directory is wanted. */
    buf_init(&b, 1 << 20);
    header(&b, "e0/", '5', 0, NULL);
    end(&b);
    save("dir.tar", &b, 0);
    buf_free(&b);
    ck_assert_int_eq(extract("dir.tar", "dest", 1u << 20, 20, true, NULL, why,
                             sizeof(why)),
                     BERTH_EEXIST);
    /* Broken archives. */
    put("garbage.tar", "this is not an archive at all, just text that is "
                       "long enough to fill nothing",
        77);
    ck_assert_int_eq(extract("garbage.tar", "dest", 1u << 20, 20, false, NULL,
                             why, sizeof(why)),
                     BERTH_EINVAL);
    buf_init(&b, 1 << 20);
    header(&b, "cut.txt", '0', 5000, NULL);
    data(&b, "short", 5);
    save("cut.tar.gz", &b, 1);
    buf_free(&b);
    ck_assert_int_eq(extract("cut.tar.gz", "dest", 1u << 20, 20, false, NULL,
                             why, sizeof(why)),
                     BERTH_EINVAL);
    ck_assert(!there("dest/cut.txt"));
    put("empty.tar", "", 0);
    ck_assert_int_eq(extract("empty.tar", "dest", 1u << 20, 20, false, NULL,
                             why, sizeof(why)),
                     BERTH_EINVAL);
    /* A destination that is not a directory. */
    ck_assert_int_eq(extract("many.tar", "dest/e0", 1u << 20, 20, false, NULL,
                             why, sizeof(why)),
                     BERTH_EINVAL);
}
END_TEST

START_TEST(numbers)
{
    char f[12];
    uint64_t v;

    put_num(f, sizeof(f), 0644);
    ck_assert_str_eq(f, "00000000644");
    ck_assert_int_eq(get_num(f, sizeof(f), &v), 0);
    ck_assert_uint_eq(v, 0644);
    /* Past 8 GiB: base-256. */
    put_num(f, sizeof(f), 10ull << 30);
    ck_assert_int_eq((unsigned char)f[0], 0x80);
    ck_assert_int_eq(get_num(f, sizeof(f), &v), 0);
    ck_assert_uint_eq(v, 10ull << 30);
    memcpy(f, "  12  \0\0\0\0\0", 12);
    ck_assert_int_eq(get_num(f, sizeof(f), &v), 0);
    ck_assert_uint_eq(v, 10);
    memcpy(f, "12x\0\0\0\0\0\0\0\0", 12);
    ck_assert_int_eq(get_num(f, sizeof(f), &v), -1);
    f[0] = (char)0xff; /* negative base-256 */
    ck_assert_int_eq(get_num(f, sizeof(f), &v), -1);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("daemon_direct_tar");
    TCase *tc = tcase_create("direct_tar");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_tree_round_trips);
    tcase_add_test(tc, what_extraction_reads);
    tcase_add_test(tc, refused_before_writing);
    tcase_add_test(tc, numbers);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
