/* login.c - SSH authentication through the panel (shell.auth).
 *
 * The login "alice+blog" is split here: the panel gets the bare user name
 * ("alice"), the site part stays with the connection. A password goes to
 * the panel as it is; a public key goes as its SSH wire blob, and only a
 * key whose signature libssh has verified authenticates: an offer
 * without a signature is only answered "this key would do" (PK_OK). The
 * panel's answer (user id, name, sites and permissions) is kept for the
 * connection: the key the panel approved is remembered by hash, so the
 * signed attempt that follows an offer needs no second request.
 *
 * Every failure, whatever its cause (unknown user, root, wrong password,
 * a key that is not the user's, the panel away), looks the same to the
 * client. These callbacks run on the connection's handshake thread, which
 * may block on the panel.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "svc-shell/shell_int.h"

#define SHELL_AUTH_TIMEOUT_MS 10000
#define SHELL_AUTH_TRIES 6
#define SHELL_KEY_BLOB_MAX 16384

static int token_char(char c, int site)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           (!site && (c == '_' || c == '.'));
}

int shell_login_split(const char *login, char user[SHELL_USER_NAME_MAX + 1],
                      char site[SHELL_SITE_NAME_MAX + 1])
{
    const char *plus = strchr(login, '+');
    size_t ul = plus ? (size_t)(plus - login) : strlen(login);
    size_t i;

    user[0] = site[0] = '\0';
    if (ul == 0 || ul > SHELL_USER_NAME_MAX)
        return BERTH_EINVAL;
    for (i = 0; i < ul; i++) {
        if (!token_char(login[i], 0))
            return BERTH_EINVAL;
    }
    if (plus != NULL) {
        size_t sl = strlen(plus + 1);

        if (sl == 0 || sl > SHELL_SITE_NAME_MAX)
            return BERTH_EINVAL;
        for (i = 0; i < sl; i++) {
            if (!token_char(plus[1 + i], 1))
                return BERTH_EINVAL;
        }
        memcpy(site, plus + 1, sl + 1);
    }
    memcpy(user, login, ul);
    user[ul] = '\0';
    return 0;
}

static unsigned perm_bits(const Berth__V1__ShellSite *s)
{
    unsigned bits = 0;
    size_t i;

    for (i = 0; i < s->n_permissions; i++) {
        const char *p = s->permissions[i];

        if (strcmp(p, "site.console.write") == 0)
            bits |= SHELL_PERM_CONSOLE;
        else if (strcmp(p, "site.files.read") == 0)
            bits |= SHELL_PERM_FREAD;
        else if (strcmp(p, "site.files.write") == 0)
            bits |= SHELL_PERM_FWRITE;
    }
    return bits;
}

/* Copies the panel's reply into u. Returns 0 or a berth code. */
static int user_from_reply(const Berth__V1__ShellAuthReply *r, shell_user *u)
{
    size_t i, n = 0;

    shell_user_clear(u);
    if (r->n_sites > 0) {
        u->sites = calloc(r->n_sites, sizeof(*u->sites));
        if (u->sites == NULL)
            return BERTH_ENOMEM;
    }
    for (i = 0; i < r->n_sites; i++) {
        const Berth__V1__ShellSite *s = r->sites[i];
        shell_site *d = &u->sites[n];

        if (strlen(s->site_id) >= sizeof(d->id) ||
            strlen(s->name) >= sizeof(d->name) ||
            strlen(s->node_id) >= sizeof(d->node) || !bus_token_valid(s->node_id))
            continue;
        snprintf(d->id, sizeof(d->id), "%s", s->site_id);
        snprintf(d->name, sizeof(d->name), "%s", s->name);
        snprintf(d->node, sizeof(d->node), "%s", s->node_id);
        d->perms = perm_bits(s);
        n++;
    }
    u->nsites = n;
    snprintf(u->id, sizeof(u->id), "%s", r->user_id);
    snprintf(u->name, sizeof(u->name), "%s", r->username);
    return 0;
}

/* Asks the panel. Returns 0 with u filled when the login is good,
 * BERTH_EAUTH when not, or another code when the panel could not tell. */
static int ask_panel(shell_conn *c, const char *login, const char *password,
                     const uint8_t *blob, size_t bloblen, const char *keytype)
{
    Berth__V1__ShellAuthRequest req = BERTH__V1__SHELL_AUTH_REQUEST__INIT;
    Berth__V1__ShellAuthReply *reply = NULL;
    char user[SHELL_USER_NAME_MAX + 1], site[SHELL_SITE_NAME_MAX + 1];
    bus_error err = {0};
    int rc;

    /* A name that cannot be a user still goes to the panel (as one that
     * is none), so that it costs the same time as any other. */
    if (shell_login_split(login, user, site) != 0) {
        snprintf(user, sizeof(user), "%s", "-");
        site[0] = '\0';
    }
    req.username = user;
    req.password = (char *)(password ? password : "");
    req.public_key.data = (uint8_t *)blob;
    req.public_key.len = bloblen;
    req.public_key_type = (char *)(keytype ? keytype : "");
    req.remote_addr = c->remote;
    rc = bus_request(c->srv->bus, "shell.auth", &req.base,
                     SHELL_AUTH_TIMEOUT_MS, (ProtobufCMessage **)&reply, &err);
    if (rc != 0) {
        log_warn("shell.auth failed", "user=%s remote=%s error=%s message=%s",
                 user, c->remote, berth_errname(rc), err.message);
        return rc;
    }
    if (!reply->ok) {
        rc = BERTH_EAUTH;
        goto out;
    }
    rc = user_from_reply(reply, &c->user);
    if (rc != 0)
        goto out;
    snprintf(c->login, sizeof(c->login), "%s", login);
    snprintf(c->username, sizeof(c->username), "%s", user);
    snprintf(c->site_name, sizeof(c->site_name), "%s", site);
out:
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    return rc;
}

/* Counts a try; past the limit the client is sent away. */
static int count_try(shell_conn *c)
{
    if (++c->auth_tries > SHELL_AUTH_TRIES) {
        log_info("too many login attempts", "remote=%s user=%s", c->remote,
                 c->login);
        ssh_disconnect(c->ssh);
        return BERTH_EAUTH;
    }
    return 0;
}

int shell_login_password(ssh_session s, const char *user, const char *pw,
                         void *ud)
{
    shell_conn *c = ud;
    int rc;

    (void)s;
    if (count_try(c) != 0)
        return SSH_AUTH_DENIED;
    snprintf(c->login, sizeof(c->login), "%s", user);
    rc = ask_panel(c, user, pw, NULL, 0, NULL);
    if (rc != 0) {
        log_info("login refused", "remote=%s user=%s method=password",
                 c->remote, user);
        return SSH_AUTH_DENIED;
    }
    c->authed = 1;
    log_info("login", "remote=%s user=%s site=%s method=password sites=%zu",
             c->remote, c->username, c->site_name, c->user.nsites);
    return SSH_AUTH_SUCCESS;
}

/* The key's SSH wire blob (caller frees) and type name. */
static int key_blob(ssh_key key, uint8_t **blob, size_t *len)
{
    char *b64 = NULL;
    uint8_t *bin = NULL;
    size_t n = 0;
    int rc = BERTH_EINVAL;

    *blob = NULL;
    if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
        return BERTH_EINVAL;
    bin = malloc(SHELL_KEY_BLOB_MAX);
    if (bin == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (sodium_base642bin(bin, SHELL_KEY_BLOB_MAX, b64, strlen(b64), NULL, &n,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n == 0)
        goto out;
    *blob = bin;
    *len = n;
    bin = NULL;
    rc = 0;
out:
    free(bin);
    ssh_string_free_char(b64);
    return rc;
}

int shell_login_pubkey(ssh_session s, const char *user,
                       struct ssh_key_struct *key, char state, void *ud)
{
    shell_conn *c = ud;
    unsigned char hash[32];
    uint8_t *blob = NULL;
    size_t len = 0;
    int known, rc = SSH_AUTH_DENIED;

    (void)s;
    if (state != SSH_PUBLICKEY_STATE_NONE && state != SSH_PUBLICKEY_STATE_VALID)
        return SSH_AUTH_DENIED; /* a signature that does not verify */
    if (count_try(c) != 0 || key_blob(key, &blob, &len) != 0)
        return SSH_AUTH_DENIED;
    crypto_hash_sha256(hash, blob, len);
    /* The panel approved this key for this login moments ago. */
    known = c->key_ok && sodium_memcmp(hash, c->key_hash, sizeof(hash)) == 0 &&
            strcmp(c->login, user) == 0;
    if (!known) {
        c->key_ok = 0;
        if (ask_panel(c, user, NULL, blob, len,
                      ssh_key_type_to_char(ssh_key_type(key))) != 0) {
            log_info("login refused", "remote=%s user=%s method=publickey "
                     "signed=%d", c->remote, user,
                     state == SSH_PUBLICKEY_STATE_VALID);
            goto out;
        }
        memcpy(c->key_hash, hash, sizeof(hash));
        c->key_ok = 1;
    }
    if (state == SSH_PUBLICKEY_STATE_NONE) {
        /* An offer: the key would do; a try it is not. */
        c->auth_tries--;
        rc = SSH_AUTH_SUCCESS;
        goto out;
    }
    c->authed = 1;
    log_info("login", "remote=%s user=%s site=%s method=publickey sites=%zu",
             c->remote, c->username, c->site_name, c->user.nsites);
    rc = SSH_AUTH_SUCCESS;
out:
    free(blob);
    return rc;
}
