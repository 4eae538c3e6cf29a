/* shell.c - tests of berth-shell's pure parts without a client or a
 * panel: login names ("alice", "alice+blog"), the panel's answer turned
 * into a user with per-site permission bits, counting whole SFTP packets
 * in libssh's buffer under every split, and the shell's own SFTP handles
 * (slot and generation) refusing forged and stale ones.
 *
 * The shell's modules are included whole (but main.c), so the statics are
 * reachable and the binary links without the service.
 */
#include "svc-shell/login.c"
#include "svc-shell/sftp.c"
#include "svc-shell/sftp_io.c"
#include "svc-shell/jobs.c"
#include "svc-shell/conn.c"
#include "svc-shell/exec.c"
#include "svc-shell/server.c"
#include "svc-shell/hostkey.c"

#include "tests/harness/unit.h"

/* ---------------------------------------------------------------- names */

START_TEST(login_names_split)
{
    static const struct {
        const char *login, *user, *site;
    } good[] = {
        {"alice", "alice", ""},
        {"alice+blog", "alice", "blog"},
        {"a.b_c-9+site-1", "a.b_c-9", "site-1"},
        {"root", "root", ""}, /* refused by the panel, like any unknown */
    };
    char user[SHELL_USER_NAME_MAX + 1], site[SHELL_SITE_NAME_MAX + 1];
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ck_assert_int_eq(shell_login_split(good[i].login, user, site), 0);
        ck_assert_str_eq(user, good[i].user);
        ck_assert_str_eq(site, good[i].site);
    }
}
END_TEST

START_TEST(login_names_refused)
{
    static const char *const bad[] = {
        "",           "+blog",       "alice+",      "alice+blog+x",
        "Alice",      "alice+Blog",  "al ice",      "alice+bl.og",
        "alice+b_og", "al/ice",      "alice\n",     "al\xc3\xa9",
        "alice+blog ",
    };
    char user[SHELL_USER_NAME_MAX + 1], site[SHELL_SITE_NAME_MAX + 1];
    char longest[SHELL_LOGIN_MAX + 8];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(shell_login_split(bad[i], user, site) == BERTH_EINVAL,
                      "accepted \"%s\"", bad[i]);
        ck_assert_str_eq(user, "");
        ck_assert_str_eq(site, "");
    }
    /* Lengths: the longest of each part passes, one more does not. */
    memset(longest, 'u', SHELL_USER_NAME_MAX);
    longest[SHELL_USER_NAME_MAX] = '\0';
    ck_assert_int_eq(shell_login_split(longest, user, site), 0);
    longest[SHELL_USER_NAME_MAX] = 'u';
    longest[SHELL_USER_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(shell_login_split(longest, user, site), BERTH_EINVAL);
    longest[0] = 'a';
    longest[1] = '+';
    memset(longest + 2, 's', SHELL_SITE_NAME_MAX);
    longest[2 + SHELL_SITE_NAME_MAX] = '\0';
    ck_assert_int_eq(shell_login_split(longest, user, site), 0);
    ck_assert_uint_eq(strlen(site), SHELL_SITE_NAME_MAX);
    longest[2 + SHELL_SITE_NAME_MAX] = 's';
    longest[3 + SHELL_SITE_NAME_MAX] = '\0';
    ck_assert_int_eq(shell_login_split(longest, user, site), BERTH_EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- user */

START_TEST(panel_reply_becomes_a_user)
{
    char *perms_all[] = {"site.read", "site.console.write", "site.files.read",
                         "site.files.write"};
    char *perms_ro[] = {"site.files.read", "site.power"};
    Berth__V1__ShellSite s0 = BERTH__V1__SHELL_SITE__INIT;
    Berth__V1__ShellSite s1 = BERTH__V1__SHELL_SITE__INIT;
    Berth__V1__ShellSite s2 = BERTH__V1__SHELL_SITE__INIT;
    Berth__V1__ShellSite *sites[] = {&s0, &s1, &s2};
    Berth__V1__ShellAuthReply r = BERTH__V1__SHELL_AUTH_REPLY__INIT;
    shell_user u = {0};

    s0.site_id = "0b7c0b3e-0000-4000-8000-000000000001";
    s0.name = "blog";
    s0.node_id = "node-a";
    s0.n_permissions = 4;
    s0.permissions = perms_all;
    s1.site_id = "0b7c0b3e-0000-4000-8000-000000000002";
    s1.name = "shop";
    s1.node_id = "node-b";
    s1.n_permissions = 2;
    s1.permissions = perms_ro;
    s2.site_id = "0b7c0b3e-0000-4000-8000-000000000003";
    s2.name = "bad";
    s2.node_id = "node.with.dots"; /* not a bus token: never reachable */
    r.user_id = "0b7c0b3e-0000-4000-8000-0000000000aa";
    r.username = "alice";
    r.n_sites = 3;
    r.sites = sites;
    ck_assert_int_eq(user_from_reply(&r, &u), 0);
    ck_assert_str_eq(u.name, "alice");
    ck_assert_str_eq(u.id, r.user_id);
    ck_assert_uint_eq(u.nsites, 2);
    ck_assert_str_eq(u.sites[0].name, "blog");
    ck_assert_str_eq(u.sites[0].node, "node-a");
    ck_assert_uint_eq(u.sites[0].perms,
                      SHELL_PERM_CONSOLE | SHELL_PERM_FREAD | SHELL_PERM_FWRITE);
    ck_assert_str_eq(u.sites[1].name, "shop");
    ck_assert_uint_eq(u.sites[1].perms, SHELL_PERM_FREAD);
    shell_user_clear(&u);
    ck_assert_uint_eq(u.nsites, 0);
}
END_TEST

/* ---------------------------------------------------------------- packets */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Three packets of 5, 1 and 300 bytes (length prefix and body). */
static size_t three_packets(unsigned char *out)
{
    static const uint32_t lens[] = {5, 1, 300};
    size_t off = 0, i;

    for (i = 0; i < 3; i++) {
        put32(out + off, lens[i]);
        memset(out + off + 4, (int)('a' + i), lens[i]);
        off += 4 + lens[i];
    }
    return off;
}

START_TEST(sftp_packets_counted_whole)
{
    unsigned char buf[512];
    size_t n = three_packets(buf), cut;
    shell_chan ch;

    /* libssh's buffer holds a prefix of the stream: only whole packets
     * count, whatever the cut. */
    for (cut = 0; cut <= n; cut++) {
        unsigned want = cut >= 9 + 5 + 304 ? 3 : cut >= 9 + 5 ? 2 : cut >= 9 ? 1 : 0;

        memset(&ch, 0, sizeof(ch));
        ck_assert_uint_eq(shell_sftp_input(&ch, buf, (uint32_t)cut), 0);
        ck_assert_msg(ch.sftp_ready == want, "cut %zu: %u packets, want %u",
                      cut, ch.sftp_ready, want);
        ck_assert_int_eq(ch.sftp_broken, 0);
    }
}
END_TEST

START_TEST(sftp_packets_oversized_or_empty)
{
    unsigned char buf[64];
    shell_chan ch;

    /* A packet announced larger than can ever be buffered ends the
     * subsystem, even before its bytes come; so does a zero length. The
     * whole packets before it still count. */
    put32(buf, 1);
    buf[4] = 'x';
    put32(buf + 5, SFTP_PACKET_MAX + 1);
    memset(&ch, 0, sizeof(ch));
    shell_sftp_input(&ch, buf, 9);
    ck_assert_int_eq(ch.sftp_broken, 1);
    ck_assert_uint_eq(ch.sftp_ready, 1);
    put32(buf + 5, 0);
    memset(&ch, 0, sizeof(ch));
    shell_sftp_input(&ch, buf, 9);
    ck_assert_int_eq(ch.sftp_broken, 1);
    /* The largest allowed is only waited for. */
    put32(buf + 5, SFTP_PACKET_MAX);
    memset(&ch, 0, sizeof(ch));
    shell_sftp_input(&ch, buf, 64);
    ck_assert_int_eq(ch.sftp_broken, 0);
    ck_assert_uint_eq(ch.sftp_ready, 1);
}
END_TEST

/* ---------------------------------------------------------------- handles */

static ssh_string handle_str(uint32_t slot, uint32_t gen)
{
    uint32_t v[2] = {slot, gen};
    ssh_string s = ssh_string_new(sizeof(v));

    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ssh_string_fill(s, v, sizeof(v)), 0);
    return s;
}

START_TEST(sftp_handles_refuse_forgeries)
{
    shell_sftp *s = calloc(1, sizeof(*s));
    struct sftp_handle *h;
    ssh_string str;
    uint32_t id[2], id2[2];

    ck_assert_ptr_nonnull(s);
    h = handle_new(s, "/data/a.txt", id);
    ck_assert_ptr_nonnull(h);
    str = handle_str(id[0], id[1]);
    ck_assert_ptr_eq(handle_of(s, str), h);
    ssh_string_free(str);
    /* Wrong generation, a slot past the table, a free slot, a short
     * string. */
    str = handle_str(id[0], id[1] + 1);
    ck_assert_ptr_null(handle_of(s, str));
    ssh_string_free(str);
    str = handle_str(SFTP_HANDLES, id[1]);
    ck_assert_ptr_null(handle_of(s, str));
    ssh_string_free(str);
    str = handle_str(id[0] + 1, 0);
    ck_assert_ptr_null(handle_of(s, str));
    ssh_string_free(str);
    str = ssh_string_new(4);
    ck_assert_ptr_null(handle_of(s, str));
    ssh_string_free(str);
    ck_assert_ptr_null(handle_of(s, NULL));
    /* Closed, then the slot reused: the old handle is stale. */
    free(h->path);
    h->path = NULL;
    h->used = 0;
    h = handle_new(s, "/data/b.txt", id2);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(id2[0], id[0]);
    ck_assert_uint_ne(id2[1], id[1]);
    str = handle_str(id[0], id[1]);
    ck_assert_ptr_null(handle_of(s, str));
    ssh_string_free(str);
    free(h->path);
    free(s);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("shell");
    TCase *tc = tcase_create("shell");

    tcase_add_test(tc, login_names_split);
    tcase_add_test(tc, login_names_refused);
    tcase_add_test(tc, panel_reply_becomes_a_user);
    tcase_add_test(tc, sftp_packets_counted_whole);
    tcase_add_test(tc, sftp_packets_oversized_or_empty);
    tcase_add_test(tc, sftp_handles_refuse_forgeries);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
