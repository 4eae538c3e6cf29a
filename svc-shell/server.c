/* server.c - the listener, handshake threads and event loops (see
 * server.h).
 *
 * Layout: options and binding, loops (posts, the loop thread), handshake
 * threads, the acceptor, revocations, start and stop.
 */
#include "svc-shell/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "svc-shell/shell_int.h"

/* Modern algorithms only: curve25519 key exchange, AEAD ciphers (their
 * MACs are built in; the MAC lists only matter for other ciphers, which
 * are not offered), an Ed25519 host key. */
static const struct {
    enum ssh_bind_options_e opt;
    const char *value;
} bind_algorithms[] = {
    {SSH_BIND_OPTIONS_KEY_EXCHANGE,
     "curve25519-sha256,curve25519-sha256@libssh.org"},
    {SSH_BIND_OPTIONS_CIPHERS_C_S, "chacha20-poly1305@openssh.com,"
                                   "aes256-gcm@openssh.com,aes128-gcm@openssh.com"},
    {SSH_BIND_OPTIONS_CIPHERS_S_C, "chacha20-poly1305@openssh.com,"
                                   "aes256-gcm@openssh.com,aes128-gcm@openssh.com"},
    {SSH_BIND_OPTIONS_HMAC_C_S,
     "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"},
    {SSH_BIND_OPTIONS_HMAC_S_C,
     "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"},
    {SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, "ssh-ed25519"},
    {SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES,
     "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
     "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256"},
};

/* Extra non-blocking polls after a wake-up, before a pump pass. */
#define SHELL_DRAIN_POLLS 32

/* ------------------------------------------------------------ binding */

/* Splits "host:port", "[v6]:port" or ":port". */
static int parse_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t n;
    char *end;
    long v;

    if (colon == NULL)
        return BERTH_EINVAL;
    v = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || v < 0 || v > 65535)
        return BERTH_EINVAL;
    n = (size_t)(colon - addr);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0) {
        h = "0.0.0.0";
        n = strlen(h);
    }
    if (n >= hostlen)
        return BERTH_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)v;
    return 0;
}

static int bind_listen(shell_srv *s, const shell_server_cfg *cfg)
{
    char host[128];
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    bool no_config = false;
    size_t i;
    int port, rc;

    rc = parse_addr(cfg->addr, host, sizeof(host), &port);
    if (rc != 0) {
        log_error("BERTH_SHELL_ADDR is not host:port", "addr=%s", cfg->addr);
        return rc;
    }
    s->bind = ssh_bind_new();
    if (s->bind == NULL)
        return BERTH_ENOMEM;
    /* Nothing from /etc/ssh/libssh_server_config: the table below is the
     * whole policy. */
    if (ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG,
                             &no_config) != SSH_OK ||
        ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_BINDADDR, host) !=
            SSH_OK ||
        ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_BINDPORT, &port) !=
            SSH_OK) {
        log_error("ssh bind options", "error=%s", ssh_get_error(s->bind));
        return BERTH_EINVAL;
    }
    for (i = 0; i < sizeof(bind_algorithms) / sizeof(bind_algorithms[0]); i++) {
        if (ssh_bind_options_set(s->bind, bind_algorithms[i].opt,
                                 bind_algorithms[i].value) != SSH_OK) {
            log_error("ssh algorithms refused by libssh", "value=%s error=%s",
                      bind_algorithms[i].value, ssh_get_error(s->bind));
            return BERTH_ECONFIG;
        }
    }
    if (ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_IMPORT_KEY,
                             cfg->hostkey) != SSH_OK) {
        log_error("host key refused by libssh", "error=%s",
                  ssh_get_error(s->bind));
        return BERTH_ECONFIG;
    }
    if (ssh_bind_listen(s->bind) != SSH_OK) {
        log_error("cannot listen", "addr=%s error=%s", cfg->addr,
                  ssh_get_error(s->bind));
        return BERTH_EIO;
    }
    s->listen_fd = ssh_bind_get_fd(s->bind);
    s->port = port;
    if (getsockname(s->listen_fd, (struct sockaddr *)&sa, &salen) == 0) {
        if (sa.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        else if (sa.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    }
    return 0;
}

/* ------------------------------------------------------------ loops */

void shell_loop_wake(shell_loop *l)
{
    uint64_t one = 1;

    atomic_store(&l->pending, 1);
    if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("shell: cannot wake a loop", "error=%s", strerror(errno));
}

void shell_loop_post(shell_loop *l, shell_post *p)
{
    p->next = NULL;
    pthread_mutex_lock(&l->mu);
    *l->posts_tail = p;
    l->posts_tail = &p->next;
    pthread_mutex_unlock(&l->mu);
    shell_loop_wake(l);
}

static shell_post *take_posts(shell_loop *l)
{
    shell_post *p;

    pthread_mutex_lock(&l->mu);
    p = l->posts;
    l->posts = NULL;
    l->posts_tail = &l->posts;
    pthread_mutex_unlock(&l->mu);
    return p;
}

static void conn_register(shell_conn *c)
{
    shell_srv *s = c->srv;

    pthread_mutex_lock(&s->conns_mu);
    c->prev = NULL;
    c->next = s->all;
    if (s->all != NULL)
        s->all->prev = c;
    s->all = c;
    c->registered = 1;
    pthread_mutex_unlock(&s->conns_mu);
}

static void conn_unregister(shell_conn *c)
{
    shell_srv *s = c->srv;

    if (!c->registered)
        return;
    pthread_mutex_lock(&s->conns_mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->all = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->registered = 0;
    pthread_mutex_unlock(&s->conns_mu);
}

/* Handles what other threads posted. With running == 0 (shutdown, the
 * loop thread gone) connections are closed instead of adopted. */
static void handle_posts(shell_loop *l, shell_post *p, int running)
{
    while (p != NULL) {
        shell_post *next = p->next;

        switch (p->kind) {
        case SHELL_POST_CONN:
            if (running && !p->conn->closing &&
                ssh_event_add_session(l->event, p->conn->ssh) == SSH_OK) {
                p->conn->lnext = l->conns;
                l->conns = p->conn;
                l->nconns++;
                p->conn = NULL; /* the loop's reference now */
            } else {
                conn_unregister(p->conn);
                ssh_disconnect(p->conn->ssh);
                ssh_free(p->conn->ssh);
                p->conn->ssh = NULL;
            }
            break;
        case SHELL_POST_JOB:
            shell_job_finish(p->job);
            break;
        case SHELL_POST_REVOKE:
            if (p->conn->ssh != NULL && !p->conn->closing)
                shell_conn_revoke(p->conn, p->site_id, p->reason);
            break;
        }
        if (p->conn != NULL)
            shell_conn_unref(p->conn);
        free(p);
        p = next;
    }
}

/* Finishes a connection shell_conn_pump() is done with. */
static void release_conn(shell_loop *l, shell_conn *c)
{
    conn_unregister(c);
    l->nconns--;
    shell_conn_unref(c);
}

static void pump_all(shell_loop *l)
{
    shell_conn **pp = &l->conns;

    while (*pp != NULL) {
        shell_conn *c = *pp;

        if (shell_conn_pump(c)) {
            *pp = c->lnext;
            /* The session left the event inside shell_conn_pump(). */
            release_conn(l, c);
        } else {
            pp = &c->lnext;
        }
    }
}

static int on_wake(socket_t fd, int revents, void *ud)
{
    uint64_t v;

    (void)revents;
    (void)ud;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("shell: eventfd read", "error=%s", strerror(errno));
    return 0;
}

static void *loop_main(void *arg)
{
    shell_loop *l = arg;
    shell_conn *c;

    while (!atomic_load(&l->stop)) {
        int timeout = atomic_load(&l->pending) ? 0 : SHELL_TICK_MS;
        int more = SHELL_DRAIN_POLLS;

        /* libssh reads 4 KiB per wake-up: take what the sockets already
         * hold before a pump pass, which then has more to work with. */
        if (ssh_event_dopoll(l->event, timeout) == SSH_OK)
            while (more-- > 0 && ssh_event_dopoll(l->event, 0) == SSH_OK)
                ;
        atomic_store(&l->pending, 0);
        handle_posts(l, take_posts(l), 1);
        pump_all(l);
    }
    for (c = l->conns; c != NULL; c = c->lnext)
        shell_conn_close(c, "berth-shell is shutting down");
    pump_all(l);
    return NULL;
}

static int loop_init(shell_loop *l, shell_srv *s, int index)
{
    l->srv = s;
    l->index = index;
    l->wake_fd = -1;
    l->posts_tail = &l->posts;
    pthread_mutex_init(&l->mu, NULL);
    l->event = ssh_event_new();
    if (l->event == NULL)
        return BERTH_ENOMEM;
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0)
        return berth_err_from_errno(errno);
    if (ssh_event_add_fd(l->event, l->wake_fd, POLLIN, on_wake, l) != SSH_OK)
        return BERTH_ENOMEM;
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
        return BERTH_EINTERNAL;
    l->started = 1;
    return 0;
}

/* ------------------------------------------------------------ handshakes */

static void end_handshake(shell_conn *c)
{
    if (c->ssh != NULL) {
        ssh_disconnect(c->ssh);
        ssh_free(c->ssh);
        c->ssh = NULL;
    }
    atomic_fetch_sub(&c->srv->handshakes, 1);
    shell_conn_unref(c);
}

/* Key exchange and authentication, blocking, on a thread of their own;
 * then the connection goes to a loop. */
static void *handshake_main(void *arg)
{
    shell_conn *c = arg;
    shell_srv *s = c->srv;
    ssh_event ev = NULL;
    shell_post *p = NULL;
    int64_t deadline;
    long timeout_s = 10;
    int st;

    ssh_options_set(c->ssh, SSH_OPTIONS_TIMEOUT, &timeout_s);
    shell_conn_setup(c);
    if (ssh_handle_key_exchange(c->ssh) != SSH_OK) {
        log_debug("key exchange failed", "remote=%s error=%s", c->remote,
                  ssh_get_error(c->ssh));
        goto fail;
    }
    ev = ssh_event_new();
    if (ev == NULL || ssh_event_add_session(ev, c->ssh) != SSH_OK)
        goto fail;
    deadline = clock_mono_ms() + s->login_grace_ms;
    while (!c->authed && !atomic_load(&s->stopping)) {
        if (clock_mono_ms() >= deadline) {
            log_info("login timed out", "remote=%s user=%s", c->remote,
                     c->login);
            goto fail;
        }
        if (ssh_event_dopoll(ev, 200) == SSH_ERROR)
            goto fail;
        st = ssh_get_status(c->ssh);
        if ((st & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0)
            goto fail;
    }
    ssh_event_remove_session(ev, c->ssh);
    ssh_event_free(ev);
    ev = NULL;
    if (!c->authed)
        goto fail;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto fail;
    ssh_set_blocking(c->ssh, 0);
    c->loop = &s->loops[atomic_fetch_add(&s->next_loop, 1) % (unsigned)s->nloops];
    p->kind = SHELL_POST_CONN;
    p->conn = c; /* our reference goes with it */
    atomic_fetch_sub(&s->handshakes, 1);
    /* Revocations reach the connection from now on: one arriving before
     * the loop takes it over is queued ahead of it, on the same loop.
     * This thread touches nothing of the connection after this. */
    conn_register(c);
    shell_loop_post(c->loop, p);
    return NULL;
fail:
    if (ev != NULL) {
        ssh_event_remove_session(ev, c->ssh);
        ssh_event_free(ev);
    }
    end_handshake(c);
    return NULL;
}

/* ------------------------------------------------------------ acceptor */

static void format_peer(const struct sockaddr_storage *sa, char *out,
                        size_t len)
{
    out[0] = '\0';
    if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
                  (socklen_t)len);
    else if (sa->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  out, (socklen_t)len);
}

static void accept_one(shell_srv *s)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    pthread_attr_t attr;
    pthread_t t;
    ssh_session ssh = NULL;
    shell_conn *c = NULL;
    char remote[64];
    int fd;

    fd = accept4(s->listen_fd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("accept", "error=%s", strerror(errno));
        return;
    }
    /* Answers are small packets written as they finish: Nagle would hold
     * one back until the client acknowledges the last, and a client with
     * all its requests out acknowledges late (40 ms). */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    format_peer(&sa, remote, sizeof(remote));
    if (atomic_load(&s->conns) >= s->max_conns ||
        atomic_load(&s->handshakes) >= s->max_handshakes) {
        log_warn("connection refused: too many", "remote=%s conns=%d "
                 "handshakes=%d", remote, atomic_load(&s->conns),
                 atomic_load(&s->handshakes));
        close(fd);
        return;
    }
    ssh = ssh_new();
    if (ssh == NULL) {
        close(fd);
        return;
    }
    if (ssh_bind_accept_fd(s->bind, ssh, fd) != SSH_OK) {
        log_warn("ssh accept", "remote=%s error=%s", remote,
                 ssh_get_error(s->bind));
        if (ssh_get_fd(ssh) != fd)
            close(fd);
        ssh_free(ssh);
        return;
    }
    c = shell_conn_new(s, ssh, remote);
    if (c == NULL) {
        ssh_free(ssh);
        return;
    }
    atomic_fetch_add(&s->handshakes, 1);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, handshake_main, c) != 0) {
        log_error("cannot start a handshake thread", "remote=%s", remote);
        end_handshake(c);
    }
    pthread_attr_destroy(&attr);
}

static void *acceptor_main(void *arg)
{
    shell_srv *s = arg;
    struct pollfd pfd = {.fd = s->listen_fd, .events = POLLIN};

    while (!atomic_load(&s->stopping)) {
        int n = poll(&pfd, 1, 200);

        if (n > 0 && (pfd.revents & POLLIN))
            accept_one(s);
    }
    return NULL;
}

/* ------------------------------------------------------------ revocation */

/* access.revoked.<user> and access.revoked.all: every connection of the
 * user (of anyone, for "all") is told on its loop. */
static int on_revoked(bus_msg *m, void *ud)
{
    const Berth__V1__AccessRevoked *ev = (const Berth__V1__AccessRevoked *)m->msg;
    shell_srv *s = ud;
    shell_conn *c;
    int n = 0;

    if (ev->user_id[0] == '\0' && ev->site_id[0] == '\0')
        return 0; /* "everyone, everywhere" is not an event we take */
    pthread_mutex_lock(&s->conns_mu);
    for (c = s->all; c != NULL; c = c->next) {
        shell_post *p;

        if (ev->user_id[0] != '\0' && strcmp(c->user.id, ev->user_id) != 0)
            continue;
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            break;
        p->kind = SHELL_POST_REVOKE;
        p->conn = c;
        shell_conn_ref(c);
        snprintf(p->site_id, sizeof(p->site_id), "%s", ev->site_id);
        snprintf(p->reason, sizeof(p->reason), "%s",
                 ev->reason[0] ? ev->reason : "access revoked");
        shell_loop_post(c->loop, p);
        n++;
    }
    pthread_mutex_unlock(&s->conns_mu);
    log_info("access revoked", "user=%s site=%s reason=%s connections=%d",
             ev->user_id[0] ? ev->user_id : "all",
             ev->site_id[0] ? ev->site_id : "all", ev->reason, n);
    return 0;
}

/* ------------------------------------------------------------ start, stop */

int shell_server_port(const shell_srv *s)
{
    return s->port;
}

int shell_server_start(const shell_server_cfg *cfg, shell_srv **out)
{
    shell_srv *s;
    int i, rc;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        ssh_key_free(cfg->hostkey);
        return BERTH_ENOMEM;
    }
    s->bus = cfg->bus;
    s->data_dir = cfg->data_dir;
    s->listen_fd = -1;
    s->max_conns = cfg->max_conns;
    s->max_handshakes = cfg->max_handshakes;
    s->login_grace_ms = cfg->login_grace_ms;
    pthread_mutex_init(&s->conns_mu, NULL);
    pthread_mutex_init(&s->xs_mu, NULL);
    rc = bind_listen(s, cfg);
    if (s->bind == NULL)
        ssh_key_free(cfg->hostkey); /* not handed to a bind */
    if (rc != 0)
        goto out;
    rc = shell_jobs_new(&s->jobs, s->bus, cfg->workers);
    if (rc != 0)
        goto out;
    s->loops = calloc((size_t)cfg->loops, sizeof(*s->loops));
    if (s->loops == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (i = 0; i < cfg->loops; i++) {
        s->nloops++;
        rc = loop_init(&s->loops[i], s, i);
        if (rc != 0)
            goto out;
    }
    rc = bus_subscribe(s->bus, "shell.out.*.*", NULL, shell_exec_on_out, s);
    if (rc == 0)
        rc = bus_subscribe(s->bus, "shell.exit.*.*", NULL, shell_exec_on_exit,
                           s);
    if (rc == 0)
        rc = bus_subscribe(s->bus, "access.revoked.*", NULL, on_revoked, s);
    if (rc != 0)
        goto out;
    if (pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    s->acceptor_started = 1;
    *out = s;
    s = NULL;
out:
    shell_server_stop(s);
    shell_server_free(s);
    return rc;
}

void shell_server_stop(shell_srv *s)
{
    int64_t end;
    int i;

    if (s == NULL)
        return;
    atomic_store(&s->stopping, 1);
    if (s->acceptor_started)
        pthread_join(s->acceptor, NULL);
    /* Handshakes notice the flag within 200 ms, or when their shell.auth
     * request returns. */
    end = clock_mono_ms() + 15000;
    while (atomic_load(&s->handshakes) > 0 && clock_mono_ms() < end)
        clock_sleep_ms(20);
    for (i = 0; i < s->nloops; i++) {
        shell_loop *l = &s->loops[i];

        if (l->started) {
            atomic_store(&l->stop, 1);
            shell_loop_wake(l);
            pthread_join(l->thread, NULL);
        }
    }
    /* The pool finishes what is under way; completions land in the loops'
     * queues and are taken here, on this thread, now that the loops are
     * gone. */
    shell_jobs_free(s->jobs);
    s->jobs = NULL;
    for (i = 0; i < s->nloops; i++)
        handle_posts(&s->loops[i], take_posts(&s->loops[i]), 0);
}

void shell_server_free(shell_srv *s)
{
    int i;

    if (s == NULL)
        return;
    for (i = 0; i < s->nloops; i++) {
        shell_loop *l = &s->loops[i];

        handle_posts(l, take_posts(l), 0);
        if (l->event != NULL) {
            if (l->wake_fd >= 0)
                ssh_event_remove_fd(l->event, l->wake_fd);
            ssh_event_free(l->event);
        }
        if (l->wake_fd >= 0)
            close(l->wake_fd);
        pthread_mutex_destroy(&l->mu);
    }
    free(s->loops);
    if (s->bind != NULL)
        ssh_bind_free(s->bind);
    pthread_mutex_destroy(&s->conns_mu);
    pthread_mutex_destroy(&s->xs_mu);
    free(s);
}
