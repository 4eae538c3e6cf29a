/* sandbox.c - the site file sandbox: path strings cleaned or refused, more
 * than fifty escape attempts refused, legitimate paths and links inside the
 * site's directory working; every case runs through openat2 and through
 * the user-space walk, and the walk takes over when openat2 is ENOSYS. */
#include "svc-daemon/sandbox.c"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness/harness.h"
#include "tests/harness/unit.h"

static char *tmp;            /* the test's directory */
static char root_path[1200]; /* tmp/root: the site */
static char out_path[1200];  /* tmp/outside: what must stay out of reach */
static int rootfd = -1;

/* The mode of a loop test: 0 is openat2, 1 the user-space walk. */
static unsigned mode_flags(int i)
{
    return i == 0 ? 0 : DAEMON_SANDBOX_FALLBACK;
}

static void put(const char *dir, const char *rel, const char *text)
{
    char p[1400];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void mkd(const char *dir, const char *rel)
{
    char p[1400];

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void lnk(const char *target, const char *rel)
{
    char p[1400];

    snprintf(p, sizeof(p), "%s/%s", root_path, rel);
    ck_assert_int_eq(symlink(target, p), 0);
}

/* The site:
 *
 *   top                 "top"
 *   a/b                 "ab"
 *   a/c/
 *   dir/f               "dirf"
 *   dir/sub/
 *   lit/%2e%2e          "literal"
 *   link_in        -> a/b
 *   link_dir_in    -> a
 *   chain_in1      -> chain_in2 -> top
 *   dir/link_rel   -> ../top
 *   dir/sub/up     -> ../../a/b
 *   dangling_in    -> newfile_in
 *   and links leading out, a loop and a self-loop (below).
 */
static void setup(void)
{
    tmp = h_tempdir("sandbox");
    ck_assert_ptr_nonnull(tmp);
    snprintf(root_path, sizeof(root_path), "%s/root", tmp);
    snprintf(out_path, sizeof(out_path), "%s/outside", tmp);
    ck_assert_int_eq(mkdir(root_path, 0755), 0);
    ck_assert_int_eq(mkdir(out_path, 0755), 0);
    put(out_path, "secret", "SECRET");

    put(root_path, "top", "top");
    mkd(root_path, "a");
    put(root_path, "a/b", "ab");
    mkd(root_path, "a/c");
    mkd(root_path, "dir");
    put(root_path, "dir/f", "dirf");
    mkd(root_path, "dir/sub");
    mkd(root_path, "lit");
    put(root_path, "lit/%2e%2e", "literal");

    lnk("a/b", "link_in");
    lnk("a", "link_dir_in");
    lnk("chain_in2", "chain_in1");
    lnk("top", "chain_in2");
    lnk("../top", "dir/link_rel");
    lnk("../../a/b", "dir/sub/up");
    lnk("newfile_in", "dangling_in");

    lnk("/etc/passwd", "link_passwd");
    lnk("/etc", "link_out");
    lnk("../outside", "link_outside");
    lnk("../outside/secret", "link_outside_file");
    lnk("chain2", "chain1");
    lnk("chain3", "chain2");
    lnk("../outside/secret", "chain3");
    lnk("loop2", "loop1");
    lnk("loop1", "loop2");
    lnk("self", "self");
    lnk("../../outside", "dir/deep_out");
    lnk("../../../outside/secret", "dir/sub/up_out");
    lnk("../root/top", "link_reenter");
    lnk("/top", "abs_in");
    lnk("/data/top", "data_abs");
    lnk("/proc/self/root", "proc_link");
    lnk("../outside/newfile", "dangling_out");
    lnk("link_outside", "link_to_link_out");

    rootfd = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(rootfd, 0);
}

static void teardown(void)
{
    if (rootfd >= 0)
        close(rootfd);
    rootfd = -1;
    h_rmtree(tmp);
    free(tmp);
}

/* Reads what fd holds (a small file). */
static const char *slurp(int fd)
{
    static char text[256];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);

    ck_assert_int_ge(n, 0);
    text[n] = '\0';
    return text;
}

static int exists_outside(const char *rel)
{
    char p[1400];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%s", out_path, rel);
    return lstat(p, &st) == 0;
}

/* ------------------------------------------------------------ the string */

START_TEST(clean_paths)
{
    static const struct {
        const char *in;
        int rc;
        const char *out;
    } cases[] = {
        {"", 0, ""},
        {"/", 0, ""},
        {".", 0, ""},
        {"///", 0, ""},
        {"/a/b", 0, "a/b"},
        {"a//b", 0, "a/b"},
        {"./a/./b/", 0, "a/b"},
        {"/data/x", 0, "data/x"},
        {"a/../b", 0, "b"},
        {"a/b/../../c", 0, "c"},
        {"a/..", 0, ""},
        {"a/b/..", 0, "a"},
        {"...", 0, "..."},
        {"..a/a..", 0, "..a/a.."},
        {"%2e%2e", 0, "%2e%2e"},
        {"\\..\\", 0, "\\..\\"},
        {"..", BERTH_EPERM, ""},
        {"/..", BERTH_EPERM, ""},
        {"a/../..", BERTH_EPERM, ""},
        {"a\tb", BERTH_EINVAL, ""},
        {"a\x7f", BERTH_EINVAL, ""},
    };
    char out[PATH_MAX], big[PATH_MAX + 8];
    const char *why;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why = NULL;
        ck_assert_msg(daemon_sandbox_clean(cases[i].in, out, sizeof(out), &why) ==
                          cases[i].rc,
                      "clean(\"%s\")", cases[i].in);
        ck_assert_str_eq(out, cases[i].out);
        if (cases[i].rc != 0)
            ck_assert_ptr_nonnull(why);
    }
    /* Lengths: PATH_MAX - 1 bytes pass, PATH_MAX do not; NAME_MAX is the
     * longest name. */
    memset(big, 'a', sizeof(big));
    for (i = NAME_MAX; i < PATH_MAX - 1; i += NAME_MAX + 1)
        big[i] = '/';
    big[PATH_MAX - 1] = '\0';
    ck_assert_int_eq(daemon_sandbox_clean(big, out, sizeof(out), NULL), 0);
    big[PATH_MAX - 1] = 'a';
    big[PATH_MAX] = '\0';
    ck_assert_int_eq(daemon_sandbox_clean(big, out, sizeof(out), NULL),
                     BERTH_EINVAL);
    memset(big, 'a', NAME_MAX + 1);
    big[NAME_MAX + 1] = '\0';
    ck_assert_int_eq(daemon_sandbox_clean(big, out, sizeof(out), &why),
                     BERTH_EINVAL);
    ck_assert_str_eq(why, "a name longer than NAME_MAX bytes");
    big[NAME_MAX] = '\0';
    ck_assert_int_eq(daemon_sandbox_clean(big, out, sizeof(out), NULL), 0);
    /* A small output buffer is refused rather than overflowed. */
    ck_assert_int_eq(daemon_sandbox_clean("abcdef", out, 4, NULL), BERTH_EINVAL);
    ck_assert_int_eq(daemon_sandbox_clean(NULL, out, sizeof(out), NULL),
                     BERTH_EINVAL);
}
END_TEST

/* ------------------------------------------------------------ attacks */

typedef struct attack {
    const char *path;
    int rc; /* what opening it for reading gives */
} attack;

/* Every one of these must fail, in both modes, with the code given. ENOENT
 * means the path was taken literally inside the site and found nothing. */
static const attack attacks[] = {
    /* ".." above the root, in every spelling. */
    {"..", BERTH_EPERM},
    {"../", BERTH_EPERM},
    {"../outside/secret", BERTH_EPERM},
    {"a/../../outside/secret", BERTH_EPERM},
    {"./../x", BERTH_EPERM},
    {"/../etc/passwd", BERTH_EPERM},
    {"/..", BERTH_EPERM},
    {"/./../etc/passwd", BERTH_EPERM},
    {"a/b/../../../x", BERTH_EPERM},
    {"dir/../../..", BERTH_EPERM},
    {"dir/sub/../../../outside", BERTH_EPERM},
    {"..//..//etc/passwd", BERTH_EPERM},
    {"../../../../../../../../../../etc/passwd", BERTH_EPERM},
    {"a/./../.././../etc", BERTH_EPERM},
    {"link_in/../../outside/secret", BERTH_EPERM},
    {"link_dir_in/../../outside/secret", BERTH_EPERM},
    /* Dots that are not "..": names, looked up literally. */
    {"....//", BERTH_ENOENT},
    {"..../etc/passwd", BERTH_ENOENT},
    {"...", BERTH_ENOENT},
    {".../...", BERTH_ENOENT},
    /* Encodings are not decoded here. */
    {"%2e%2e/", BERTH_ENOENT},
    {"%2e%2e/%2e%2e/etc/passwd", BERTH_ENOENT},
    {"..%2f..%2fetc%2fpasswd", BERTH_ENOENT},
    {"%252e%252e/etc/passwd", BERTH_ENOENT},
    {"..%00/etc/passwd", BERTH_ENOENT},
    {"%c0%ae%c0%ae/etc/passwd", BERTH_ENOENT},
    {"\xc0\xae\xc0\xae/etc/passwd", BERTH_ENOENT},
    {"\\..\\..\\etc\\passwd", BERTH_ENOENT},
    {"..\\..\\etc\\passwd", BERTH_ENOENT},
    {"\xe2\x80\xa4\xe2\x80\xa4/etc/passwd", BERTH_ENOENT}, /* U+2024 */
    {"\xef\xbc\x8e\xef\xbc\x8e/etc/passwd", BERTH_ENOENT}, /* U+FF0E */
    /* Absolute paths are the site's own. */
    {"/etc/passwd", BERTH_ENOENT},
    {"//etc//passwd", BERTH_ENOENT},
    {"/proc/self/root/etc/passwd", BERTH_ENOENT},
    {"/data/../../etc/passwd", BERTH_EPERM},
    /* Control characters. */
    {"a\x01" "b", BERTH_EINVAL},
    {"a\nb", BERTH_EINVAL},
    {"a\rb", BERTH_EINVAL},
    {"a\tb", BERTH_EINVAL},
    {"\x7f", BERTH_EINVAL},
    {"\x1b[31mred", BERTH_EINVAL},
    {"../\n../etc/passwd", BERTH_EINVAL},
    /* Links leading out. */
    {"link_passwd", BERTH_EPERM},
    {"link_out/passwd", BERTH_EPERM},
    {"link_out", BERTH_EPERM},
    {"link_outside/secret", BERTH_EPERM},
    {"link_outside/", BERTH_EPERM},
    {"link_outside_file", BERTH_EPERM},
    {"link_to_link_out/secret", BERTH_EPERM},
    {"link_dir_in/../link_outside/secret", BERTH_EPERM},
    {"chain1", BERTH_EPERM},
    {"chain1/x", BERTH_EPERM},
    {"dir/deep_out/secret", BERTH_EPERM},
    {"dir/sub/up_out", BERTH_EPERM},
    {"link_reenter", BERTH_EPERM},
    {"abs_in", BERTH_EPERM},
    {"data_abs", BERTH_EPERM},
    {"proc_link/etc/passwd", BERTH_EPERM},
    {"dangling_out", BERTH_EPERM},
    /* Loops. */
    {"loop1", BERTH_EPERM},
    {"loop1/x", BERTH_EPERM},
    {"self", BERTH_EPERM},
};

START_TEST(attacks_are_refused)
{
    unsigned fl = mode_flags(_i);
    char big[PATH_MAX + 8];
    size_t i, n = sizeof(attacks) / sizeof(attacks[0]);
    int fd, rc;

    ck_assert_uint_ge(n, 50);
    for (i = 0; i < n; i++) {
        fd = -1;
        rc = daemon_sandbox_open(rootfd, attacks[i].path, O_RDONLY, 0, fl, &fd);
        ck_assert_msg(rc == attacks[i].rc, "mode %d: open(\"%s\") = %s, want %s",
                      _i, attacks[i].path, berth_errname(rc),
                      berth_errname(attacks[i].rc));
        ck_assert_int_eq(fd, -1);
        /* The other ways in refuse the same paths. */
        fd = -1;
        rc = daemon_sandbox_open(rootfd, attacks[i].path, O_PATH, 0, fl, &fd);
        ck_assert_msg(rc == attacks[i].rc, "mode %d: O_PATH \"%s\" = %s",
                      _i, attacks[i].path, berth_errname(rc));
        if (fd >= 0)
            close(fd);
    }
    /* Overlong: the whole path, and one name. */
    memset(big, 'a', sizeof(big));
    big[PATH_MAX] = '\0';
    ck_assert_int_eq(daemon_sandbox_open(rootfd, big, O_RDONLY, 0, fl, &fd),
                     BERTH_EINVAL);
    big[NAME_MAX + 1] = '\0';
    ck_assert_int_eq(daemon_sandbox_open(rootfd, big, O_RDONLY, 0, fl, &fd),
                     BERTH_EINVAL);
    /* Creating through a way out creates nothing outside. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "dangling_out",
                                         O_WRONLY | O_CREAT, 0644, fl, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_outside/newfile",
                                         O_WRONLY | O_CREAT, 0644, fl, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "../newfile",
                                         O_WRONLY | O_CREAT, 0644, fl, &fd),
                     BERTH_EPERM);
    ck_assert(!exists_outside("newfile"));
    /* Escapes report EXDEV in errno, loops ELOOP. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_outside/secret",
                                         O_RDONLY, 0, fl, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(errno, EXDEV);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "../x", O_RDONLY, 0, fl, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(errno, EXDEV);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "loop1", O_RDONLY, 0, fl, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(errno, ELOOP);
    ck_assert_str_eq(daemon_sandbox_reason(EXDEV), "outside the site's directory");
}
END_TEST

/* The parent helper, lstat, stat and realpath refuse the same escapes. */
START_TEST(helpers_refuse_escapes)
{
    unsigned fl = mode_flags(_i);
    static const char *const paths[] = {
        "../x", "link_outside/x", "link_out/passwd", "chain1/x",
        "dir/deep_out/x", "loop1/x", "/../etc/passwd", "link_reenter/x",
    };
    char name[NAME_MAX + 1], out[PATH_MAX];
    struct stat st;
    size_t i;
    int fd;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        ck_assert_msg(daemon_sandbox_open_parent(rootfd, paths[i], fl, &fd, name) ==
                          BERTH_EPERM,
                      "parent of %s", paths[i]);
        ck_assert_int_eq(fd, -1);
        ck_assert_msg(daemon_sandbox_lstat(rootfd, paths[i], fl, &st) == BERTH_EPERM,
                      "lstat %s", paths[i]);
        ck_assert_msg(daemon_sandbox_stat(rootfd, paths[i], fl, &st) == BERTH_EPERM,
                      "stat %s", paths[i]);
        ck_assert_msg(daemon_sandbox_realpath(rootfd, paths[i], fl, out,
                                              sizeof(out)) == BERTH_EPERM,
                      "realpath %s", paths[i]);
    }
    ck_assert_int_eq(daemon_sandbox_stat(rootfd, "link_outside", fl, &st),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_realpath(rootfd, "link_outside", fl, out,
                                             sizeof(out)),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_realpath(rootfd, "loop1", fl, out, sizeof(out)),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_realpath(rootfd, "abs_in", fl, out, sizeof(out)),
                     BERTH_EPERM);
    /* The root has no parent. */
    ck_assert_int_eq(daemon_sandbox_open_parent(rootfd, "/", fl, &fd, name),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_open_parent(rootfd, "a/..", fl, &fd, name),
                     BERTH_EPERM);
}
END_TEST

/* ------------------------------------------------------------ what works */

START_TEST(legitimate_paths_work)
{
    static const struct {
        const char *path;
        const char *text; /* NULL: a directory */
    } ok[] = {
        {"/a/b", "ab"},
        {"a//b", "ab"},
        {"./a/b", "ab"},
        {"a/./b", "ab"},
        {"/data/../a/b", "ab"},
        {"dir/sub/../f", "dirf"},
        {"top", "top"},
        {"link_in", "ab"},
        {"link_dir_in/b", "ab"},
        {"chain_in1", "top"},
        {"dir/link_rel", "top"},
        {"dir/sub/up", "ab"},
        {"lit/%2e%2e", "literal"},
        {"/", NULL},
        {"", NULL},
        {".", NULL},
        {"a/c/", NULL},
        {"link_dir_in", NULL},
        {"link_dir_in/c", NULL},
    };
    unsigned fl = mode_flags(_i);
    struct stat st;
    size_t i;
    int fd;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        fd = -1;
        ck_assert_msg(daemon_sandbox_open(rootfd, ok[i].path, O_RDONLY, 0, fl, &fd) == 0,
                      "mode %d: open(\"%s\") errno %d", _i, ok[i].path, errno);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        if (ok[i].text != NULL)
            ck_assert_str_eq(slurp(fd), ok[i].text);
        else
            ck_assert(S_ISDIR(st.st_mode));
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
    }
    /* O_DIRECTORY through a link to a directory, and on a file. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_dir_in",
                                         O_RDONLY | O_DIRECTORY, 0, fl, &fd),
                     0);
    close(fd);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "top", O_RDONLY | O_DIRECTORY,
                                         0, fl, &fd),
                     BERTH_ENOENT);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "missing", O_RDONLY, 0, fl, &fd),
                     BERTH_ENOENT);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "top/x", O_RDONLY, 0, fl, &fd),
                     BERTH_ENOENT);
}
END_TEST

START_TEST(creates_inside)
{
    unsigned fl = mode_flags(_i);
    char p[1400];
    struct stat st;
    int fd;

    ck_assert_int_eq(daemon_sandbox_open(rootfd, "/a/new", O_WRONLY | O_CREAT,
                                         0600, fl, &fd),
                     0);
    ck_assert_int_eq(write(fd, "n", 1), 1);
    close(fd);
    snprintf(p, sizeof(p), "%s/a/new", root_path);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, 1);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "a/new",
                                         O_WRONLY | O_CREAT | O_EXCL, 0600, fl,
                                         &fd),
                     BERTH_EEXIST);
    /* O_EXCL never follows a link, wherever it points. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "dangling_out",
                                         O_WRONLY | O_CREAT | O_EXCL, 0600, fl,
                                         &fd),
                     BERTH_EEXIST);
    /* O_CREAT through a dangling link inside creates its target, as the
     * kernel does. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "dangling_in",
                                         O_WRONLY | O_CREAT, 0600, fl, &fd),
                     0);
    close(fd);
    snprintf(p, sizeof(p), "%s/newfile_in", root_path);
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    /* Through a link to a directory. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_dir_in/made",
                                         O_WRONLY | O_CREAT, 0600, fl, &fd),
                     0);
    close(fd);
    snprintf(p, sizeof(p), "%s/a/made", root_path);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(!exists_outside("newfile"));
}
END_TEST

START_TEST(parent_lstat_stat)
{
    unsigned fl = mode_flags(_i);
    char name[NAME_MAX + 1];
    struct stat st;
    int fd;

    ck_assert_int_eq(daemon_sandbox_open_parent(rootfd, "/a/b", fl, &fd, name), 0);
    ck_assert_str_eq(name, "b");
    ck_assert_int_eq(fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
    ck_assert(S_ISREG(st.st_mode));
    close(fd);
    /* The final component may be a link leading out: it is not followed. */
    ck_assert_int_eq(daemon_sandbox_open_parent(rootfd, "link_outside", fl, &fd,
                                                name),
                     0);
    ck_assert_str_eq(name, "link_outside");
    close(fd);
    ck_assert_int_eq(daemon_sandbox_open_parent(rootfd, "link_dir_in/new", fl,
                                                &fd, name),
                     0);
    ck_assert_str_eq(name, "new");
    ck_assert_int_eq(mkdirat(fd, name, 0755), 0);
    close(fd);
    ck_assert_int_eq(daemon_sandbox_stat(rootfd, "a/new", fl, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));

    ck_assert_int_eq(daemon_sandbox_lstat(rootfd, "link_outside", fl, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(daemon_sandbox_lstat(rootfd, "loop1", fl, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(daemon_sandbox_lstat(rootfd, "link_dir_in/b", fl, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(daemon_sandbox_lstat(rootfd, "/", fl, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(daemon_sandbox_stat(rootfd, "link_in", fl, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_size, 2);
    ck_assert_int_eq(daemon_sandbox_stat(rootfd, "dangling_in", fl, &st),
                     BERTH_ENOENT);
}
END_TEST

START_TEST(realpath_inside)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"/", "/"},
        {"", "/"},
        {"a/..", "/"},
        {"/a/b", "/a/b"},
        {"link_in", "/a/b"},
        {"link_dir_in/b", "/a/b"},
        {"link_dir_in", "/a"},
        {"chain_in1", "/top"},
        {"dir/link_rel", "/top"},
        {"dir/sub/up", "/a/b"},
        {"a/missing", "/a/missing"},
        {"link_dir_in/missing", "/a/missing"},
        {"dangling_in", "/newfile_in"},
        {"/a/x/../missing", "/a/missing"},
    };
    unsigned fl = mode_flags(_i);
    char out[PATH_MAX];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(daemon_sandbox_realpath(rootfd, cases[i].in, fl, out,
                                              sizeof(out)) == 0,
                      "mode %d: realpath %s", _i, cases[i].in);
        ck_assert_str_eq(out, cases[i].out);
    }
    /* A missing directory before the final component is an error. */
    ck_assert_int_eq(daemon_sandbox_realpath(rootfd, "data/x", fl, out,
                                             sizeof(out)),
                     BERTH_ENOENT);
    ck_assert_int_eq(daemon_sandbox_realpath(rootfd, "top/x", fl, out,
                                             sizeof(out)),
                     BERTH_ENOENT);
    ck_assert_int_eq(daemon_sandbox_realpath(rootfd, "a/b", fl, out, 4),
                     BERTH_EINVAL);
}
END_TEST

START_TEST(nofollow_and_no_symlinks)
{
    unsigned fl = mode_flags(_i);
    struct stat st;
    int fd;

    /* O_NOFOLLOW: a final link fails, an O_PATH one opens the link. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_in", O_RDONLY | O_NOFOLLOW,
                                         0, fl, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(errno, ELOOP);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_outside",
                                         O_PATH | O_NOFOLLOW, 0, fl, &fd),
                     0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    close(fd);
    /* Links before the final component are still followed. */
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_dir_in/b",
                                         O_RDONLY | O_NOFOLLOW, 0, fl, &fd),
                     0);
    close(fd);
    /* DAEMON_SANDBOX_NO_SYMLINKS refuses every link on the way. */
    fl |= DAEMON_SANDBOX_NO_SYMLINKS;
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "a/b", O_RDONLY, 0, fl, &fd), 0);
    close(fd);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_in", O_RDONLY, 0, fl, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_dir_in/b", O_RDONLY, 0,
                                         fl, &fd),
                     BERTH_EPERM);
}
END_TEST

/* With openat2 answering ENOSYS (a seccomp filter in this forked test),
 * the sandbox notices once and walks from then on. */
START_TEST(enosys_falls_back_to_the_walk)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]),
                              .filter = filter};
    int fd;

    ck_assert_int_eq(daemon_sandbox_open(rootfd, "top", O_RDONLY, 0, 0, &fd), 0);
    close(fd);
    ck_assert_int_eq(daemon_sandbox_has_openat2(), 1);
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
    ck_assert_int_eq(syscall(SYS_openat2, rootfd, "top", NULL, 0), -1);
    ck_assert_int_eq(errno, ENOSYS);

    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_in", O_RDONLY, 0, 0, &fd), 0);
    ck_assert_str_eq(slurp(fd), "ab");
    close(fd);
    ck_assert_int_eq(daemon_sandbox_has_openat2(), 0);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "link_outside/secret", O_RDONLY,
                                         0, 0, &fd),
                     BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_open(rootfd, "../outside/secret", O_RDONLY,
                                         0, 0, &fd),
                     BERTH_EPERM);
}
END_TEST

START_TEST(errno_mapping)
{
    ck_assert_int_eq(daemon_sandbox_err(EXDEV), BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_err(ELOOP), BERTH_EPERM);
    ck_assert_int_eq(daemon_sandbox_err(EISDIR), BERTH_EINVAL);
    ck_assert_int_eq(daemon_sandbox_err(ENAMETOOLONG), BERTH_EINVAL);
    ck_assert_int_eq(daemon_sandbox_err(ENOENT), BERTH_ENOENT);
    ck_assert_int_eq(daemon_sandbox_err(ENOTDIR), BERTH_ENOENT);
    ck_assert_int_eq(daemon_sandbox_err(EEXIST), BERTH_EEXIST);
    ck_assert_int_eq(daemon_sandbox_err(ENOTEMPTY), BERTH_EEXIST);
    ck_assert_int_eq(daemon_sandbox_err(ENXIO), BERTH_ENOTSUP);
    ck_assert_int_eq(daemon_sandbox_err(EAGAIN), BERTH_EBUSY);
    ck_assert_str_eq(daemon_sandbox_reason(ENOENT), "No such file or directory");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("sandbox");
    TCase *tc = tcase_create("sandbox");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, clean_paths);
    tcase_add_loop_test(tc, attacks_are_refused, 0, 2);
    tcase_add_loop_test(tc, helpers_refuse_escapes, 0, 2);
    tcase_add_loop_test(tc, legitimate_paths_work, 0, 2);
    tcase_add_loop_test(tc, creates_inside, 0, 2);
    tcase_add_loop_test(tc, parent_lstat_stat, 0, 2);
    tcase_add_loop_test(tc, realpath_inside, 0, 2);
    tcase_add_loop_test(tc, nofollow_and_no_symlinks, 0, 2);
    tcase_add_test(tc, enosys_falls_back_to_the_walk);
    tcase_add_test(tc, errno_mapping);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
