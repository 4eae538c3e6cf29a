/* conn.c - one SSH connection and its channels: channel requests, the
 * site a channel works on (from "alice+blog", or chosen from a menu), the
 * permission each kind of channel needs, and closing.
 *
 * A channel goes NEW -> (MENU ->) EXEC or SFTP -> DONE. The libssh
 * callbacks below only record requests and data; shell_conn_pump(), on the
 * loop, acts on them:
 *
 *   shell / exec   needs site.console.write on the site
 *   sftp           needs site.files.read or site.files.write (each
 *                  operation then checks the one it needs, sftp.c)
 *
 * A login without "+site" gets a numbered menu of the user's sites on an
 * interactive shell; exec and sftp without a site use the user's only
 * site that allows them, or explain how to name one. Whatever refuses a
 * channel says why on it, sends exit-status 1 and closes the connection.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-shell/shell_int.h"

#define SHELL_MENU_MS 120000    /* time to pick a site */
#define SHELL_CLOSE_GRACE_MS 2000 /* a closing client's time to leave */
#define SHELL_SSH_KEEPALIVE_MS 60000
#define SHELL_COMMAND_MAX (64u << 10)

/* The environment variables a client may pass (SendEnv): locale only. */
static const char *const env_allowed[] = {"LANG", "LC_", "COLORTERM", NULL};

/* ------------------------------------------------------------ users */

const shell_site *shell_user_site(const shell_user *u, const char *name)
{
    size_t i;

    for (i = 0; i < u->nsites; i++) {
        if (strcmp(u->sites[i].name, name) == 0 ||
            strcmp(u->sites[i].id, name) == 0)
            return &u->sites[i];
    }
    return NULL;
}

void shell_user_clear(shell_user *u)
{
    free(u->sites);
    memset(u, 0, sizeof(*u));
}

/* ------------------------------------------------------------ lifetime */

shell_conn *shell_conn_new(shell_srv *srv, ssh_session ssh, const char *remote)
{
    shell_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    c->srv = srv;
    c->ssh = ssh;
    snprintf(c->remote, sizeof(c->remote), "%s", remote);
    c->last_keepalive_ms = clock_mono_ms();
    atomic_fetch_add(&srv->conns, 1);
    return c;
}

void shell_conn_ref(shell_conn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void shell_conn_unref(shell_conn *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    atomic_fetch_sub(&c->srv->conns, 1);
    shell_user_clear(&c->user);
    free(c);
}

void shell_chan_free(shell_chan *ch)
{
    int i;

    free(ch->command);
    free(ch->ahead);
    for (i = 0; i < ch->nenv; i++) {
        free(ch->env_k[i]);
        free(ch->env_v[i]);
    }
    free(ch);
}

/* ------------------------------------------------------------ output */

void shell_chan_say(shell_chan *ch, const char *fmt, ...)
{
    char text[1024], out[2048];
    size_t i, n = 0;
    uint32_t win;
    va_list ap;

    if (ch->ch == NULL || !ssh_channel_is_open(ch->ch))
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    for (i = 0; text[i] != '\0' && n + 2 < sizeof(out); i++) {
        if (text[i] == '\n' && ch->pty)
            out[n++] = '\r';
        out[n++] = text[i];
    }
    win = ssh_channel_window_size(ch->ch);
    if (n > win)
        n = win;
    if (n == 0)
        return;
    if (ch->pty)
        ssh_channel_write(ch->ch, out, (uint32_t)n);
    else
        ssh_channel_write_stderr(ch->ch, out, (uint32_t)n);
}

void shell_chan_finish(shell_chan *ch, int status)
{
    if (ch->ch != NULL && ssh_channel_is_open(ch->ch)) {
        if (status >= 0)
            ssh_channel_request_send_exit_status(ch->ch, status);
        ssh_channel_send_eof(ch->ch);
        ssh_channel_close(ch->ch);
    }
    ch->kind = SHELL_CH_DONE;
}

/* Ends what runs on the channel, closes it and forgets it; the struct
 * lives on while jobs name it. */
static void chan_drop(shell_conn *c, int slot, const char *reason)
{
    shell_chan *ch = c->chans[slot];

    c->chans[slot] = NULL;
    shell_exec_end(ch->xs, reason);
    ch->xs = NULL;
    shell_sftp_end(ch);
    if (ch->ch != NULL) {
        ssh_remove_channel_callbacks(ch->ch, &ch->cb);
        if (ssh_channel_is_open(ch->ch))
            ssh_channel_close(ch->ch);
        ssh_channel_free(ch->ch);
        ch->ch = NULL;
    }
    ch->closed = 1;
    if (ch->jobs == 0)
        shell_chan_free(ch);
}

/* ------------------------------------------------------------ callbacks */

static int on_data(ssh_session s, ssh_channel channel, void *data,
                   uint32_t len, int is_stderr, void *ud)
{
    shell_chan *ch = ud;
    uint32_t i;

    (void)s;
    (void)channel;
    (void)is_stderr;
    switch (ch->kind) {
    case SHELL_CH_EXEC:
        return (int)shell_exec_input(ch, data, len);
    case SHELL_CH_SFTP:
        return (int)shell_sftp_input(ch, data, len);
    case SHELL_CH_MENU:
        /* Keys beyond the buffer are dropped: nobody types that fast. */
        for (i = 0; i < len && ch->nkeys < sizeof(ch->keys); i++)
            ch->keys[ch->nkeys++] = ((char *)data)[i];
        return (int)len;
    case SHELL_CH_NEW:
        /* Kept in libssh's buffer for what the request will start. */
        if (ch->req == SHELL_REQ_SFTP)
            return (int)shell_sftp_input(ch, data, len);
        return ch->req != SHELL_REQ_NONE ? 0 : (int)len;
    default:
        return (int)len;
    }
}

static void on_eof(ssh_session s, ssh_channel channel, void *ud)
{
    (void)s;
    (void)channel;
    ((shell_chan *)ud)->client_eof = 1;
}

static void on_close(ssh_session s, ssh_channel channel, void *ud)
{
    (void)s;
    (void)channel;
    ((shell_chan *)ud)->client_closed = 1;
}

static int on_pty(ssh_session s, ssh_channel channel, const char *term,
                  int width, int height, int pxw, int pxh, void *ud)
{
    shell_chan *ch = ud;

    (void)s;
    (void)channel;
    (void)pxw;
    (void)pxh;
    if (ch->kind != SHELL_CH_NEW || ch->req != SHELL_REQ_NONE)
        return -1;
    ch->pty = 1;
    snprintf(ch->term, sizeof(ch->term), "%s", term ? term : "xterm");
    ch->cols = width > 0 && width < 10000 ? (unsigned)width : 80;
    ch->rows = height > 0 && height < 10000 ? (unsigned)height : 24;
    return 0;
}

static int on_window_change(ssh_session s, ssh_channel channel, int width,
                            int height, int pxw, int pxh, void *ud)
{
    shell_chan *ch = ud;

    (void)s;
    (void)channel;
    (void)pxw;
    (void)pxh;
    if (width <= 0 || height <= 0 || width >= 10000 || height >= 10000)
        return -1;
    ch->cols = (unsigned)width;
    ch->rows = (unsigned)height;
    ch->resized = 1;
    return 0;
}

static int on_env(ssh_session s, ssh_channel channel, const char *name,
                  const char *value, void *ud)
{
    shell_chan *ch = ud;
    const char *const *a;

    (void)s;
    (void)channel;
    if (ch->kind != SHELL_CH_NEW || ch->nenv == SHELL_ENV_MAX ||
        strlen(name) > 64 || strlen(value) > 256)
        return -1;
    for (a = env_allowed; *a != NULL; a++) {
        size_t n = strlen(*a);
        int prefix = (*a)[n - 1] == '_';

        if (prefix ? strncmp(name, *a, n) == 0 : strcmp(name, *a) == 0)
            break;
    }
    if (*a == NULL)
        return -1;
    ch->env_k[ch->nenv] = strdup(name);
    ch->env_v[ch->nenv] = strdup(value);
    if (ch->env_k[ch->nenv] == NULL || ch->env_v[ch->nenv] == NULL) {
        free(ch->env_k[ch->nenv]);
        free(ch->env_v[ch->nenv]);
        return -1;
    }
    ch->nenv++;
    return 0;
}

static int take_request(shell_chan *ch, int req)
{
    if (ch->kind != SHELL_CH_NEW || ch->req != SHELL_REQ_NONE)
        return -1;
    ch->req = req;
    return 0;
}

static int on_shell(ssh_session s, ssh_channel channel, void *ud)
{
    (void)s;
    (void)channel;
    return take_request(ud, SHELL_REQ_SHELL);
}

static int on_exec(ssh_session s, ssh_channel channel, const char *command,
                   void *ud)
{
    shell_chan *ch = ud;

    (void)s;
    (void)channel;
    if (command == NULL || strlen(command) > SHELL_COMMAND_MAX)
        return -1;
    if (take_request(ch, SHELL_REQ_EXEC) != 0)
        return -1;
    ch->command = strdup(command);
    if (ch->command == NULL) {
        ch->req = SHELL_REQ_NONE;
        return -1;
    }
    return 0;
}

static int on_subsystem(ssh_session s, ssh_channel channel,
                        const char *subsystem, void *ud)
{
    (void)s;
    (void)channel;
    if (subsystem == NULL || strcmp(subsystem, "sftp") != 0)
        return -1;
    return take_request(ud, SHELL_REQ_SFTP);
}

static ssh_channel on_channel_open(ssh_session s, void *ud)
{
    shell_conn *c = ud;
    shell_chan *ch;
    int slot;

    for (slot = 0; slot < SHELL_CHAN_MAX && c->chans[slot] != NULL; slot++)
        ;
    if (slot == SHELL_CHAN_MAX || c->closing)
        return NULL;
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    ch->conn = c;
    ch->id = ++c->next_chan_id;
    ch->ch = ssh_channel_new(s);
    if (ch->ch == NULL) {
        free(ch);
        return NULL;
    }
    ssh_callbacks_init(&ch->cb);
    ch->cb.userdata = ch;
    ch->cb.channel_data_function = on_data;
    ch->cb.channel_eof_function = on_eof;
    ch->cb.channel_close_function = on_close;
    ch->cb.channel_pty_request_function = on_pty;
    ch->cb.channel_pty_window_change_function = on_window_change;
    ch->cb.channel_env_request_function = on_env;
    ch->cb.channel_shell_request_function = on_shell;
    ch->cb.channel_exec_request_function = on_exec;
    ch->cb.channel_subsystem_request_function = on_subsystem;
    if (ssh_set_channel_callbacks(ch->ch, &ch->cb) != SSH_OK) {
        ssh_channel_free(ch->ch);
        free(ch);
        return NULL;
    }
    c->chans[slot] = ch;
    return ch->ch;
}

/* Everything libssh would otherwise queue (global requests, agent and X11
 * forwarding, port forwarding, other channel types) gets its default
 * answer: refused. */
static int on_message(ssh_session s, ssh_message msg, void *ud)
{
    (void)s;
    (void)msg;
    (void)ud;
    return 1;
}

void shell_conn_setup(shell_conn *c)
{
    ssh_callbacks_init(&c->scb);
    c->scb.userdata = c;
    c->scb.auth_password_function = shell_login_password;
    c->scb.auth_pubkey_function = shell_login_pubkey;
    c->scb.channel_open_request_session_function = on_channel_open;
    ssh_set_server_callbacks(c->ssh, &c->scb);
    ssh_set_auth_methods(c->ssh,
                         SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_PUBLICKEY);
    ssh_set_message_callback(c->ssh, on_message, c);
}

/* ------------------------------------------------------------ sites */

static void perm_words(unsigned perms, char *out, size_t len)
{
    snprintf(out, len, "%s%s%s",
             perms & SHELL_PERM_CONSOLE ? "shell" : "",
             perms & SHELL_PERM_CONSOLE && perms & (SHELL_PERM_FREAD | SHELL_PERM_FWRITE)
                 ? ", "
                 : "",
             perms & SHELL_PERM_FWRITE  ? "files"
             : perms & SHELL_PERM_FREAD ? "files read-only"
                                        : "");
}

/* Refuses the channel with a message, and the connection with it. */
static void refuse(shell_chan *ch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void refuse(shell_chan *ch, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    shell_chan_say(ch, "berth: %s\n", text);
    log_info("channel refused", "user=%s remote=%s reason=%s",
             ch->conn->user.name, ch->conn->remote, text);
    shell_chan_finish(ch, 1);
    ch->conn->closing = 1;
}

/* Starts what the channel asked for on ch->site, after the permission
 * check. */
static void start_on_site(shell_chan *ch)
{
    const char *what = ch->req == SHELL_REQ_SFTP ? "sftp" : "shell";
    int rc;

    if (ch->req == SHELL_REQ_SFTP) {
        if ((ch->site.perms & (SHELL_PERM_FREAD | SHELL_PERM_FWRITE)) == 0) {
            refuse(ch, "site.files.read or site.files.write on %s is "
                       "required for sftp", ch->site.name);
            return;
        }
        ch->kind = SHELL_CH_SFTP;
        rc = shell_sftp_start(ch);
    } else {
        if ((ch->site.perms & SHELL_PERM_CONSOLE) == 0) {
            refuse(ch, "site.console.write on %s is required for a shell",
                   ch->site.name);
            return;
        }
        ch->kind = SHELL_CH_EXEC;
        rc = shell_exec_start(ch);
    }
    log_info("channel", "user=%s site=%s kind=%s pty=%d remote=%s rc=%s",
             ch->conn->user.name, ch->site.name,
             ch->req == SHELL_REQ_EXEC ? "exec" : what, ch->pty,
             ch->conn->remote, berth_errname(rc));
    if (rc != 0)
        shell_chan_finish(ch, 1);
}

/* Picks the user's only site that allows perms, or explains. */
static int only_site(shell_chan *ch, unsigned perms)
{
    const shell_user *u = &ch->conn->user;
    const shell_site *found = NULL;
    size_t i, n = 0;

    for (i = 0; i < u->nsites; i++) {
        if ((u->sites[i].perms & perms) != 0) {
            found = &u->sites[i];
            n++;
        }
    }
    if (n == 1) {
        ch->site = *found;
        ch->has_site = 1;
        return 0;
    }
    if (n == 0)
        refuse(ch, "you have no site to reach this way");
    else
        refuse(ch, "you have several sites; name one: %s+<site>@host",
               u->name);
    return BERTH_ENOENT;
}

/* ------------------------------------------------------------ menu */

static void menu_show(shell_chan *ch)
{
    const shell_user *u = &ch->conn->user;
    char words[64];
    size_t i;

    shell_chan_say(ch, "berth: sites of %s\n", u->name);
    for (i = 0; i < u->nsites; i++) {
        perm_words(u->sites[i].perms, words, sizeof(words));
        shell_chan_say(ch, "  %2zu) %-24s (%s)\n", i + 1, u->sites[i].name,
                       words);
    }
    shell_chan_say(ch, "Choose a site [1-%zu], q to quit: ", u->nsites);
}

/* Reads keys typed at the menu: echo on a PTY, backspace, Enter picks,
 * q, ^C or ^D quit. */
static void menu_pump(shell_chan *ch)
{
    const shell_user *u = &ch->conn->user;
    char keys[sizeof(ch->keys)];
    size_t i, nkeys;
    char *end;
    long pick;

    if (!ch->menu_shown) {
        /* Keys typed before the menu wait in libssh's buffer. */
        int r = ssh_channel_read_nonblocking(ch->ch, keys, sizeof(keys), 0);

        for (i = 0; r > 0 && i < (size_t)r && ch->nkeys < sizeof(ch->keys); i++)
            ch->keys[ch->nkeys++] = keys[i];
        ch->menu_shown = 1;
        ch->menu_deadline_ms = clock_mono_ms() + SHELL_MENU_MS;
        menu_show(ch);
    }
    if (clock_mono_ms() > ch->menu_deadline_ms) {
        refuse(ch, "no site chosen in time");
        return;
    }
    nkeys = ch->nkeys;
    memcpy(keys, ch->keys, nkeys);
    ch->nkeys = 0;
    for (i = 0; i < nkeys; i++) {
        char k = keys[i];

        if (k == 0x03 || k == 0x04) {
            shell_chan_say(ch, "\n");
            shell_chan_finish(ch, 1);
            ch->conn->closing = 1;
            return;
        }
        if (k == 0x7f || k == 0x08) {
            if (ch->line_len > 0) {
                ch->line_len--;
                if (ch->pty)
                    shell_chan_say(ch, "\b \b");
            }
            continue;
        }
        if (k != '\r' && k != '\n') {
            if (ch->line_len + 1 < sizeof(ch->line) &&
                isprint((unsigned char)k)) {
                ch->line[ch->line_len++] = k;
                if (ch->pty)
                    shell_chan_say(ch, "%c", k);
            }
            continue;
        }
        ch->line[ch->line_len] = '\0';
        if (ch->pty)
            shell_chan_say(ch, "\n");
        if (ch->line_len == 0)
            continue;
        ch->line_len = 0;
        if (strcmp(ch->line, "q") == 0) {
            shell_chan_finish(ch, 0);
            ch->conn->closing = 1;
            return;
        }
        pick = strtol(ch->line, &end, 10);
        if (*end != '\0' || pick < 1 || (size_t)pick > u->nsites) {
            shell_chan_say(ch, "berth: \"%s\" is not a choice.\n", ch->line);
            shell_chan_say(ch, "Choose a site [1-%zu], q to quit: ",
                           u->nsites);
            continue;
        }
        ch->site = u->sites[pick - 1];
        ch->has_site = 1;
        shell_chan_say(ch, "berth: %s\n", ch->site.name);
        /* Keys typed after the choice go to the process. */
        if (i + 1 < nkeys) {
            ch->ahead = malloc(nkeys - i - 1);
            if (ch->ahead != NULL) {
                memcpy(ch->ahead, keys + i + 1, nkeys - i - 1);
                ch->nahead = nkeys - i - 1;
            }
        }
        start_on_site(ch);
        return;
    }
}

/* ------------------------------------------------------------ pumping */

/* Acts on a request the callbacks recorded. */
static void chan_start(shell_chan *ch)
{
    shell_conn *c = ch->conn;
    const shell_site *s;

    if (c->site_name[0] != '\0') {
        s = shell_user_site(&c->user, c->site_name);
        if (s == NULL) {
            refuse(ch, "you have no site named %s", c->site_name);
            return;
        }
        ch->site = *s;
        ch->has_site = 1;
        start_on_site(ch);
        return;
    }
    if (ch->req == SHELL_REQ_SHELL) {
        if (c->user.nsites == 0) {
            refuse(ch, "you have no site to reach over SSH");
            return;
        }
        ch->kind = SHELL_CH_MENU;
        menu_pump(ch);
        return;
    }
    if (only_site(ch, ch->req == SHELL_REQ_SFTP
                          ? SHELL_PERM_FREAD | SHELL_PERM_FWRITE
                          : SHELL_PERM_CONSOLE) == 0)
        start_on_site(ch);
}

/* One channel's turn. Returns 1 when it can be dropped. */
static int chan_pump(shell_chan *ch)
{
    switch (ch->kind) {
    case SHELL_CH_NEW:
        if (ch->req != SHELL_REQ_NONE)
            chan_start(ch);
        break;
    case SHELL_CH_MENU:
        menu_pump(ch);
        break;
    case SHELL_CH_EXEC:
        if (shell_exec_pump(ch))
            ch->kind = SHELL_CH_DONE;
        break;
    case SHELL_CH_SFTP:
        if (shell_sftp_pump(ch))
            shell_chan_finish(ch, 0);
        break;
    default:
        break;
    }
    /* A channel closed by us stays until the client closes it too. */
    return ch->client_closed;
}

void shell_conn_close(shell_conn *c, const char *message)
{
    int i;

    for (i = 0; i < SHELL_CHAN_MAX; i++) {
        shell_chan *ch = c->chans[i];

        if (ch == NULL || ch->kind == SHELL_CH_DONE)
            continue;
        if (message != NULL)
            shell_chan_say(ch, "\nberth: %s\n", message);
        shell_exec_end(ch->xs, message ? message : "connection closed");
        ch->xs = NULL;
        shell_sftp_end(ch);
        shell_chan_finish(ch, message != NULL ? 255 : -1);
    }
    c->closing = 1;
}

void shell_conn_revoke(shell_conn *c, const char *site_id, const char *reason)
{
    char message[SHELL_REASON_MAX + 32];
    size_t i, k;
    int all = site_id[0] == '\0';

    snprintf(message, sizeof(message), "access revoked (%s)", reason);
    if (all) {
        log_info("session revoked", "user=%s remote=%s reason=%s",
                 c->user.name, c->remote, reason);
        shell_conn_close(c, message);
        return;
    }
    /* The site leaves the user's list: no new channel reaches it. */
    for (i = 0, k = 0; i < c->user.nsites; i++) {
        if (strcmp(c->user.sites[i].id, site_id) != 0)
            c->user.sites[k++] = c->user.sites[i];
    }
    c->user.nsites = k;
    for (i = 0; i < SHELL_CHAN_MAX; i++) {
        shell_chan *ch = c->chans[i];

        if (ch == NULL || !ch->has_site || strcmp(ch->site.id, site_id) != 0 ||
            ch->kind == SHELL_CH_DONE)
            continue;
        log_info("session revoked", "user=%s site=%s remote=%s reason=%s",
                 c->user.name, ch->site.name, c->remote, reason);
        shell_chan_say(ch, "\nberth: %s\n", message);
        shell_exec_end(ch->xs, message);
        ch->xs = NULL;
        shell_sftp_end(ch);
        shell_chan_finish(ch, 255);
        /* A login bound to the site has nothing left. */
        if (c->site_name[0] != '\0')
            c->closing = 1;
    }
}

/* Frees the libssh session after the channels. */
static void conn_release(shell_conn *c)
{
    int i;

    for (i = 0; i < SHELL_CHAN_MAX; i++) {
        if (c->chans[i] != NULL)
            chan_drop(c, i, "connection closed");
    }
    ssh_event_remove_session(c->loop->event, c->ssh);
    ssh_disconnect(c->ssh);
    ssh_free(c->ssh);
    c->ssh = NULL;
}

int shell_conn_pump(shell_conn *c)
{
    int64_t now = clock_mono_ms();
    int i, st, live = 0;

    st = ssh_get_status(c->ssh);
    if ((st & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0 || !ssh_is_connected(c->ssh)) {
        log_info("disconnected", "user=%s remote=%s", c->user.name, c->remote);
        conn_release(c);
        return 1;
    }
    for (i = 0; i < SHELL_CHAN_MAX; i++) {
        shell_chan *ch = c->chans[i];

        if (ch == NULL)
            continue;
        if (chan_pump(ch))
            chan_drop(c, i, "client closed the channel");
        else
            live++;
    }
    if (c->closing) {
        /* Give the client a moment to read the last words and leave. */
        if (c->closing_since_ms == 0)
            c->closing_since_ms = now;
        if (now - c->closing_since_ms > SHELL_CLOSE_GRACE_MS || live == 0) {
            log_info("disconnected", "user=%s remote=%s by=server",
                     c->user.name, c->remote);
            conn_release(c);
            return 1;
        }
        return 0;
    }
    if (now - c->last_keepalive_ms > SHELL_SSH_KEEPALIVE_MS) {
        ssh_send_keepalive(c->ssh);
        c->last_keepalive_ms = now;
    }
    return 0;
}
