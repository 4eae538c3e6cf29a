/* haproxy_runtime.c - the HAProxy driver's runtime API (see haproxy.h):
 * commands over the admin socket, the maps, ACME challenges, certificates
 * and the reload count. Every command is a connection of its own, so any
 * thread may call these; the locks are described in haproxy_int.h.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "svc-edge/haproxy_int.h"

/* ------------------------------------------------------------ helpers */

/* A token for a runtime command: printable, no spaces, not empty. */
static int token_ok(const char *s, size_t max)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];

        if (c <= ' ' || c >= 0x7f || n >= max)
            return 0;
    }
    return n > 0;
}

/* A lower-case host name of letters, digits, '-' and '.', as the routes
 * module checks them in full; here only what keeps paths and commands
 * safe. */
static int domain_ok(const char *d)
{
    size_t n = strlen(d), i;

    if (n == 0 || n > HX_DOMAIN_MAX || d[0] == '.' || d[0] == '-' ||
        strstr(d, "..") != NULL)
        return 0;
    for (i = 0; i < n; i++) {
        char c = d[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.'))
            return 0;
    }
    return strchr(d, '.') != NULL;
}

/* ------------------------------------------------------------ runtime API */

/* Sends cmd and a newline to the unix socket at path, half-closes, and
 * reads the answer until HAProxy closes (the master CLI waits for the
 * half-close). Returns 0 or BERTH_EUNAVAIL / BERTH_ETOOBIG / BERTH_EIO. */
int hx_sock_cmd(const char *path, const char *cmd, buf *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = HX_IO_TIMEOUT_MS / 1000};
    size_t len = strlen(cmd), off = 0;
    char chunk[4096];
    int fd, rc = 0;

    if (strlen(path) >= sizeof(sa.sun_path))
        return BERTH_EINVAL;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return berth_err_from_errno(errno);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = BERTH_EUNAVAIL;
        goto out;
    }
    while (off < len + 1) {
        ssize_t w = off < len ? send(fd, cmd + off, len - off, MSG_NOSIGNAL)
                              : send(fd, "\n", 1, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = BERTH_EUNAVAIL;
            goto out;
        }
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = errno == EAGAIN ? BERTH_ETIMEDOUT : BERTH_EIO;
            goto out;
        }
        if (r == 0)
            break;
        if (out != NULL && rc == 0)
            rc = buf_append(out, chunk, (size_t)r);
    }
out:
    close(fd);
    return rc;
}

int edge_haproxy_cmd(edge_haproxy *h, const char *cmd, buf *out)
{
    return hx_sock_cmd(h->admin_sock, cmd, out);
}

/* Runs cmd and judges HAProxy's text: 0 when the answer is empty or
 * contains one of the ok strings; the berth code paired with the first
 * matching fail string; BERTH_EIO otherwise (logged). ok and fail are
 * NULL-terminated; fail alternates string and code. */
static int run(edge_haproxy *h, const char *cmd, const char *const *ok,
               const char *const *fail, const int *fail_codes)
{
    buf out;
    size_t i, n;
    int rc;

    buf_init(&out, EDGE_HAPROXY_OUT_MAX);
    rc = hx_sock_cmd(h->admin_sock, cmd, &out);
    if (rc != 0)
        goto out;
    n = out.len;
    while (n > 0 && (out.data[n - 1] == '\n' || out.data[n - 1] == ' '))
        n--;
    if (n == 0)
        goto out;
    for (i = 0; ok != NULL && ok[i] != NULL; i++) {
        if (strstr(out.data, ok[i]) != NULL)
            goto out;
    }
    for (i = 0; fail != NULL && fail[i] != NULL; i++) {
        if (strstr(out.data, fail[i]) != NULL) {
            rc = fail_codes[i];
            goto out;
        }
    }
    {
        /* The command's first line (no payload) and the answer, cut. */
        char head[512], answer[300];
        const char *nl = strchr(cmd, '\n');

        snprintf(head, sizeof(head), "%.*s",
                 (int)(nl ? (size_t)(nl - cmd) : strlen(cmd)), cmd);
        snprintf(answer, sizeof(answer), "%.*s", (int)n, out.data);
        log_warn("haproxy refused a command", "command=%s answer=%s", head,
                 answer);
    }
    rc = BERTH_EIO;
out:
    buf_free(&out);
    return rc;
}

/* ------------------------------------------------------------ maps */

const char *edge_haproxy_map_path(edge_haproxy *h, enum edge_haproxy_map map)
{
    return map >= 0 && map < EDGE_HAPROXY_MAPS ? h->maps[map] : "";
}

int edge_haproxy_map_set(edge_haproxy *h, enum edge_haproxy_map map,
                         const char *key, const char *value)
{
    static const char *const fail[] = {"not found", NULL};
    static const int codes[] = {BERTH_ENOENT};
    char cmd[PATH_MAX + 1024];
    int rc;

    if (map < 0 || map >= EDGE_HAPROXY_MAPS || !token_ok(key, 512) ||
        !token_ok(value, 512))
        return BERTH_EINVAL;
    snprintf(cmd, sizeof(cmd), "set map %s %s %s", h->maps[map], key, value);
    rc = run(h, cmd, NULL, fail, codes);
    if (rc == BERTH_ENOENT) {
        snprintf(cmd, sizeof(cmd), "add map %s %s %s", h->maps[map], key,
                 value);
        rc = run(h, cmd, NULL, NULL, NULL);
    }
    return rc;
}

int edge_haproxy_map_del(edge_haproxy *h, enum edge_haproxy_map map,
                         const char *key)
{
    static const char *const ok[] = {"not found", NULL};
    char cmd[PATH_MAX + 600];

    if (map < 0 || map >= EDGE_HAPROXY_MAPS || !token_ok(key, 512))
        return BERTH_EINVAL;
    snprintf(cmd, sizeof(cmd), "del map %s %s", h->maps[map], key);
    return run(h, cmd, ok, NULL, NULL);
}

int edge_haproxy_map_replace(edge_haproxy *h, enum edge_haproxy_map map,
                             const char *lines, size_t len)
{
    const char *p = lines, *end = lines + len;
    char head[PATH_MAX + 64];
    buf cmd, out;
    long version;
    char *num;
    int rc;

    if (map < 0 || map >= EDGE_HAPROXY_MAPS)
        return BERTH_EINVAL;
    buf_init(&cmd, HX_PAYLOAD_MAX + sizeof(head) + 1024);
    buf_init(&out, 4096);
    snprintf(head, sizeof(head), "prepare map %s", h->maps[map]);
    rc = hx_sock_cmd(h->admin_sock, head, &out);
    if (rc != 0)
        goto out;
    num = out.data != NULL ? strstr(out.data, "New version created:") : NULL;
    if (num == NULL) {
        log_warn("haproxy refused a command", "command=%s answer=%s", head,
                 out.data ? out.data : "");
        rc = BERTH_EIO;
        goto out;
    }
    version = strtol(num + strlen("New version created:"), NULL, 10);
    snprintf(head, sizeof(head), "add map @%ld %s <<\n", version,
             h->maps[map]);
    while (p < end) {
        buf_reset(&cmd);
        buf_puts(&cmd, head);
        /* Whole lines until the payload is full. */
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

            if (n > 0 && p[0] != '#') {
                if (cmd.len > strlen(head) && cmd.len + n + 1 > HX_PAYLOAD_MAX)
                    break;
                rc = buf_append(&cmd, p, n);
                if (rc == 0)
                    rc = buf_putc(&cmd, '\n');
                if (rc != 0)
                    goto out;
            }
            p += n + (nl ? 1 : 0);
        }
        if (cmd.len == strlen(head))
            break;
        rc = run(h, cmd.data, NULL, NULL, NULL);
        if (rc != 0)
            goto out; /* the prepared version is simply never committed */
    }
    snprintf(head, sizeof(head), "commit map @%ld %s", version, h->maps[map]);
    rc = run(h, head, NULL, NULL, NULL);
out:
    buf_free(&cmd);
    buf_free(&out);
    return rc;
}

int edge_haproxy_map_write(edge_haproxy *h, enum edge_haproxy_map map,
                           const char *content, size_t len)
{
    int rc;

    if (map < 0 || map >= EDGE_HAPROXY_MAPS)
        return BERTH_EINVAL;
    pthread_mutex_lock(&h->map_mu[map]);
    rc = fs_write_atomic(h->maps[map], content, len, 0600);
    pthread_mutex_unlock(&h->map_mu[map]);
    if (rc != 0)
        log_error("map file not written", "path=%s error=%s", h->maps[map],
                  berth_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------ challenges */

static int challenge_token_ok(const char *t)
{
    size_t n = strlen(t), i;

    if (n == 0 || n > HX_TOKEN_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)t[i]) && t[i] != '-' && t[i] != '_')
            return 0;
    }
    return 1;
}

/* The challenge map's lines; caller holds challenge_mu and frees *out. */
static int challenge_lines(edge_haproxy *h, buf *out)
{
    int i, rc = 0;

    buf_init(out, (size_t)HX_CHALLENGES_MAX * (HX_TOKEN_MAX + HX_KEYAUTH_MAX + 2) + 256);
    rc = buf_puts(out, "# challenges.map - ACME HTTP-01 answers, written by "
                       "berth-edge; do not edit.\n");
    for (i = 0; rc == 0 && i < h->nchallenges; i++)
        rc = buf_printf(out, "%s %s\n", h->challenges[i].token,
                        h->challenges[i].keyauth);
    return rc;
}

int hx_challenge_save(edge_haproxy *h)
{
    buf lines;
    int rc;

    rc = challenge_lines(h, &lines);
    if (rc == 0)
        rc = edge_haproxy_map_write(h, EDGE_HAPROXY_MAP_CHALLENGES,
                                    lines.data, lines.len);
    buf_free(&lines);
    return rc;
}

int edge_haproxy_challenge_set(edge_haproxy *h, const char *token,
                               const char *key_authorization)
{
    hx_challenge *c = NULL;
    size_t kn = strlen(key_authorization);
    int i, rc;

    if (!challenge_token_ok(token) || kn == 0 || kn > HX_KEYAUTH_MAX ||
        !token_ok(key_authorization, HX_KEYAUTH_MAX))
        return BERTH_EINVAL;
    pthread_mutex_lock(&h->challenge_mu);
    for (i = 0; i < h->nchallenges && c == NULL; i++) {
        if (strcmp(h->challenges[i].token, token) == 0)
            c = &h->challenges[i];
    }
    if (c == NULL) {
        if (h->nchallenges >= HX_CHALLENGES_MAX) {
            rc = BERTH_ETOOBIG;
            goto out;
        }
        c = &h->challenges[h->nchallenges++];
        snprintf(c->token, sizeof(c->token), "%s", token);
    }
    snprintf(c->keyauth, sizeof(c->keyauth), "%s", key_authorization);
    rc = edge_haproxy_map_set(h, EDGE_HAPROXY_MAP_CHALLENGES, token,
                              key_authorization);
    hx_challenge_save(h);
out:
    pthread_mutex_unlock(&h->challenge_mu);
    return rc;
}

int edge_haproxy_challenge_del(edge_haproxy *h, const char *token)
{
    int i, rc;

    if (!challenge_token_ok(token))
        return BERTH_EINVAL;
    pthread_mutex_lock(&h->challenge_mu);
    for (i = 0; i < h->nchallenges; i++) {
        if (strcmp(h->challenges[i].token, token) == 0) {
            h->challenges[i] = h->challenges[--h->nchallenges];
            break;
        }
    }
    rc = edge_haproxy_map_del(h, EDGE_HAPROXY_MAP_CHALLENGES, token);
    hx_challenge_save(h);
    pthread_mutex_unlock(&h->challenge_mu);
    return rc;
}

/* After a start: the challenge map as the table says. */
void hx_challenges_reapply(edge_haproxy *h)
{
    buf lines;
    int rc;

    pthread_mutex_lock(&h->challenge_mu);
    rc = challenge_lines(h, &lines);
    if (rc == 0)
        rc = edge_haproxy_map_replace(h, EDGE_HAPROXY_MAP_CHALLENGES,
                                      lines.data, lines.len);
    pthread_mutex_unlock(&h->challenge_mu);
    buf_free(&lines);
    if (rc != 0)
        log_warn("challenges not re-applied", "error=%s", berth_strerror(rc));
}

/* ------------------------------------------------------------ certificates */

/* Checks pem with OpenSSL: at least one certificate, then a private key
 * that matches the first one. HAProxy refuses to start on a bad file in
 * the crt-list, so nothing unchecked reaches the disk. */
static int pem_check(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *leaf = NULL, *x;
    EVP_PKEY *key = NULL;
    int rc = BERTH_EINVAL;

    if (bio == NULL)
        return BERTH_ENOMEM;
    leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (leaf == NULL)
        goto out;
    /* The rest of the chain, up to the key. */
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        X509_free(x);
    ERR_clear_error();
    BIO_free(bio);
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (key != NULL && X509_check_private_key(leaf, key) == 1)
        rc = 0;
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(leaf);
    BIO_free(bio);
    return rc;
}

/* The PEM with CRs and blank lines dropped (a blank line would end the
 * runtime API payload) and a final newline. Caller frees out. */
static int pem_clean(const char *pem, buf *out)
{
    const char *p = pem;
    int rc = 0;

    buf_init(out, HX_PEM_MAX + 2);
    while (*p != '\0' && rc == 0) {
        size_t n = strcspn(p, "\r\n");

        if (n > 0) {
            rc = buf_append(out, p, n);
            if (rc == 0)
                rc = buf_putc(out, '\n');
        }
        p += n;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    return rc;
}

/* Rewrites certs.list from the *.pem files of certs/ (default.pem is given
 * on the bind line). Caller holds cert_mu. */
int hx_crt_list_write(edge_haproxy *h)
{
    struct dirent *e;
    DIR *d;
    buf out;
    int rc = 0;

    d = opendir(h->certs_dir);
    if (d == NULL)
        return berth_err_from_errno(errno);
    buf_init(&out, 64u << 20);
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);

        if (n < 5 || strcmp(e->d_name + n - 4, ".pem") != 0 ||
            strcmp(e->d_name, "default.pem") == 0 || e->d_name[0] == '.')
            continue;
        rc = buf_printf(&out, "%s/%s\n", h->certs_dir, e->d_name);
    }
    closedir(d);
    if (rc == 0)
        rc = fs_write_atomic(h->crt_list, out.data ? out.data : "", out.len,
                             0600);
    buf_free(&out);
    if (rc != 0)
        log_error("crt-list not written", "path=%s error=%s", h->crt_list,
                  berth_strerror(rc));
    return rc;
}

/* Loads pem into the running HAProxy as file (a new certificate store, or
 * the existing one replaced in place). Caller holds cert_mu. */
static int cert_runtime_install(edge_haproxy *h, const char *file,
                                const char *pem)
{
    static const char *const new_ok[] = {"New empty certificate store", NULL};
    static const char *const new_fail[] = {"already exists", NULL};
    static const int new_codes[] = {BERTH_EEXIST};
    static const char *const set_ok[] = {"Transaction created",
                                         "Transaction updated", NULL};
    static const char *const success[] = {"Success!", NULL};
    char cmd[PATH_MAX * 3 + 64];
    buf payload;
    int created = 0, rc;

    buf_init(&payload, HX_PEM_MAX + sizeof(cmd) + 8);
    snprintf(cmd, sizeof(cmd), "new ssl cert %s", file);
    rc = run(h, cmd, new_ok, new_fail, new_codes);
    if (rc == 0)
        created = 1;
    else if (rc != BERTH_EEXIST)
        goto out;
    rc = buf_printf(&payload, "set ssl cert %s <<\n%s", file, pem);
    if (rc == 0)
        rc = run(h, payload.data, set_ok, NULL, NULL);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "abort ssl cert %s", file);
        run(h, cmd, NULL, NULL, NULL);
        if (created) {
            snprintf(cmd, sizeof(cmd), "del ssl cert %s", file);
            run(h, cmd, NULL, NULL, NULL);
        }
        rc = rc == BERTH_EIO ? BERTH_EINVAL : rc;
        goto out;
    }
    snprintf(cmd, sizeof(cmd), "commit ssl cert %s", file);
    rc = run(h, cmd, success, NULL, NULL);
    if (rc == 0 && created) {
        snprintf(cmd, sizeof(cmd), "add ssl crt-list %s %s", h->crt_list,
                 file);
        rc = run(h, cmd, success, NULL, NULL);
    }
out:
    buf_free(&payload);
    return rc;
}

int edge_haproxy_cert_install(edge_haproxy *h, const char *domain,
                              const char *pem)
{
    char file[PATH_MAX + 300];
    buf clean;
    int rc;

    if (!domain_ok(domain) || strlen(pem) > HX_PEM_MAX)
        return BERTH_EINVAL;
    rc = pem_clean(pem, &clean);
    if (rc == 0)
        rc = pem_check(clean.data != NULL ? clean.data : "");
    if (rc != 0) {
        log_warn("certificate refused", "domain=%s error=%s", domain,
                 berth_strerror(rc));
        buf_free(&clean);
        return rc;
    }
    snprintf(file, sizeof(file), "%s/%s.pem", h->certs_dir, domain);
    pthread_mutex_lock(&h->cert_mu);
    rc = fs_write_atomic(file, clean.data, clean.len, 0600);
    if (rc == 0)
        rc = hx_crt_list_write(h);
    if (rc == 0)
        rc = cert_runtime_install(h, file, clean.data);
    pthread_mutex_unlock(&h->cert_mu);
    if (rc == 0)
        log_info("certificate installed", "domain=%s", domain);
    else
        log_warn("certificate not installed at runtime", "domain=%s error=%s",
                 domain, berth_strerror(rc));
    buf_free(&clean);
    return rc;
}

int edge_haproxy_cert_remove(edge_haproxy *h, const char *domain)
{
    /* Deleted, or not there (HAProxy words it several ways). */
    static const char *const gone_list[] = {
        "deleted in crtlist", "can't be found", "does not exist",
        "doesn't exist", NULL};
    static const char *const gone_cert[] = {"deleted!", "doesn't exist",
                                            "does not exist", NULL};
    char file[PATH_MAX + 300], cmd[PATH_MAX * 2 + 700];
    int rc;

    if (!domain_ok(domain))
        return BERTH_EINVAL;
    snprintf(file, sizeof(file), "%s/%s.pem", h->certs_dir, domain);
    pthread_mutex_lock(&h->cert_mu);
    if (unlink(file) != 0 && errno != ENOENT)
        log_warn("certificate file not removed", "path=%s error=%s", file,
                 strerror(errno));
    hx_crt_list_write(h);
    snprintf(cmd, sizeof(cmd), "del ssl crt-list %s %s", h->crt_list, file);
    rc = run(h, cmd, gone_list, NULL, NULL);
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "del ssl cert %s", file);
        rc = run(h, cmd, gone_cert, NULL, NULL);
    }
    pthread_mutex_unlock(&h->cert_mu);
    if (rc == 0)
        log_info("certificate removed", "domain=%s", domain);
    return rc;
}

/* ------------------------------------------------------------ reloads */

int edge_haproxy_reloads(edge_haproxy *h, long *n)
{
    buf out;
    char *line;
    int rc;

    *n = 0;
    if (h->external) {
        pthread_mutex_lock(&h->mu);
        *n = h->ext_reloads;
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    buf_init(&out, 64 << 10);
    rc = hx_sock_cmd(h->master_sock, "show proc", &out);
    if (rc != 0)
        goto out;
    /* "<pid> master <reloads> [failed: N] <uptime> <version>" */
    rc = BERTH_EPROTO;
    for (line = out.data; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        long pid, reloads;
        char type[16];

        if (nl != NULL)
            *nl = '\0';
        if (sscanf(line, "%ld %15s %ld", &pid, type, &reloads) == 3 &&
            strcmp(type, "master") == 0) {
            *n = reloads;
            rc = 0;
            break;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
out:
    buf_free(&out);
    return rc;
}
