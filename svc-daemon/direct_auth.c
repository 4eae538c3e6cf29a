/* direct_auth.c - the direct server's trust: the panel's public key,
 * token checks, spent transfer tokens, revocations (see direct.h).
 *
 * The key thread asks panel.pubkey for the key at start (every 5 s until
 * it has one), then every refresh_ms, and at once (at most every 30 s)
 * when a token's signature does not verify, in case the panel's key
 * changed. A key it gets is written to <data_dir>/panel.pubkey (0600,
 * JSON: algorithm, publicKey in base64url, keyId), which the next start
 * reads before the bus answers. The key is guarded by klock; everything
 * else here belongs to the loop thread.
 */
#include "svc-daemon/direct_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.pb-c.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"

#define KEY_RETRY_MS     5000
#define KEY_REFETCH_MS   30000 /* fastest refresh a bad signature asks for */
#define KEY_TIMEOUT_MS   5000
#define KEY_FILE         "panel.pubkey"
#define SPENT_MAX        65536 /* transfer tokens remembered at once */
#define REVOKED_MAX      4096
#define REVOKED_KEEP_S   (60 * 60) /* longer than any direct token lives */

/* The permission names this server knows, as the panel writes them. */
static const struct {
    const char *name;
    unsigned bit;
} perm_names[] = {
    {"site.console.read", DD_PERM_CONSOLE_READ},
    {"site.console.write", DD_PERM_CONSOLE_WRITE},
    {"site.power", DD_PERM_POWER},
    {"site.files.read", DD_PERM_FILES_READ},
    {"site.files.write", DD_PERM_FILES_WRITE},
};

#define NPERMS (sizeof(perm_names) / sizeof(perm_names[0]))

/* ------------------------------------------------------------ the key */

static void key_path(const daemon_direct *d, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", d->data_dir, KEY_FILE);
}

/* Sets the key; writes the cache when it changed. */
static void key_set(daemon_direct *d, const unsigned char *pk,
                    const char *kid, bool save)
{
    char path[PATH_MAX + 32], *b64 = NULL, *text = NULL;
    bool changed;

    pthread_mutex_lock(&d->klock);
    changed = !d->have_key || memcmp(d->pk, pk, sizeof(d->pk)) != 0 ||
              strcmp(d->kid, kid) != 0;
    memcpy(d->pk, pk, sizeof(d->pk));
    snprintf(d->kid, sizeof(d->kid), "%s", kid);
    d->have_key = true;
    pthread_mutex_unlock(&d->klock);
    if (!changed)
        return;
    log_info("panel key", "key_id=%s", kid);
    if (!save)
        return;
    b64 = token_b64url_encode(pk, TOKEN_ED25519_PK_BYTES);
    if (b64 != NULL) {
        json_t *j = json_pack("{s:s, s:s, s:s}", "algorithm", "ed25519",
                              "publicKey", b64, "keyId", kid);

        text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    }
    key_path(d, path, sizeof(path));
    if (text == NULL ||
        fs_write_atomic(path, text, strlen(text), 0600) != 0)
        log_warn("cannot keep the panel's key", "path=%s", path);
    free(b64);
    free(text);
}

/* Reads the cached key, if any. */
static void key_load(daemon_direct *d)
{
    char path[PATH_MAX + 32], *text = NULL;
    unsigned char pk[TOKEN_ED25519_PK_BYTES];
    const char *b64, *kid, *alg;
    size_t len = 0;
    json_t *j = NULL;

    key_path(d, path, sizeof(path));
    if (fs_read_file(path, 4096, &text, &len) != 0)
        return;
    j = json_loadb(text, len, 0, NULL);
    alg = json_string_value(json_object_get(j, "algorithm"));
    b64 = json_string_value(json_object_get(j, "publicKey"));
    kid = json_string_value(json_object_get(j, "keyId"));
    if (alg == NULL || strcmp(alg, "ed25519") != 0 || b64 == NULL ||
        kid == NULL ||
        token_b64url_decode(b64, strlen(b64), pk, sizeof(pk)) !=
            (long)sizeof(pk)) {
        log_warn("cached panel key unreadable; waiting for the panel",
                 "path=%s", path);
    } else {
        key_set(d, pk, kid, false);
    }
    json_decref(j);
    free(text);
}

/* Asks the panel. Returns 0 or a berth code. */
static int key_fetch(daemon_direct *d)
{
    Berth__V1__Empty req = BERTH__V1__EMPTY__INIT;
    Berth__V1__PanelPubkey *rep = NULL;
    ProtobufCMessage *reply = NULL;
    bus_error err = {0};
    int rc;

    rc = bus_request(d->bus, "panel.pubkey", &req.base, KEY_TIMEOUT_MS, &reply,
                     &err);
    if (rc != 0)
        return rc;
    rep = (Berth__V1__PanelPubkey *)reply;
    if (rep->algorithm == NULL || strcmp(rep->algorithm, "ed25519") != 0 ||
        rep->public_key.len != TOKEN_ED25519_PK_BYTES) {
        log_warn("panel key refused", "algorithm=%s length=%zu",
                 rep->algorithm != NULL ? rep->algorithm : "",
                 rep->public_key.len);
        rc = BERTH_EPROTO;
    } else {
        key_set(d, rep->public_key.data,
                rep->key_id != NULL ? rep->key_id : "", true);
    }
    protobuf_c_message_free_unpacked(reply, NULL);
    return rc;
}

static void *key_main(void *arg)
{
    daemon_direct *d = arg;
    int64_t next = 0;
    bool failing = false;

    pthread_mutex_lock(&d->klock);
    while (!d->kstop) {
        int64_t now = clock_mono_ms();

        if (now >= next || d->krefresh) {
            int rc;

            d->krefresh = false;
            pthread_mutex_unlock(&d->klock);
            rc = key_fetch(d);
            pthread_mutex_lock(&d->klock);
            if (rc != 0 && !failing)
                log_warn("cannot fetch the panel's key; retrying",
                         "error=%s have_key=%d", berth_strerror(rc),
                         (int)d->have_key);
            failing = rc != 0;
            next = clock_mono_ms() +
                   (rc == 0 || d->have_key ? (rc == 0 ? d->refresh_ms
                                                      : KEY_RETRY_MS)
                                           : KEY_RETRY_MS);
            continue;
        }
        {
            struct timespec ts;
            int64_t wait = next - now;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&d->kcond, &d->klock, &ts);
        }
    }
    pthread_mutex_unlock(&d->klock);
    return NULL;
}

int dd_auth_start(daemon_direct *d)
{
    int rc = token_crypto_init();

    if (rc != 0)
        return rc;
    key_load(d);
    if (pthread_create(&d->key_thread, NULL, key_main, d) != 0)
        return BERTH_ENOMEM;
    d->key_started = true;
    return 0;
}

void dd_auth_stop(daemon_direct *d)
{
    if (!d->key_started)
        return;
    pthread_mutex_lock(&d->klock);
    d->kstop = true;
    pthread_cond_signal(&d->kcond);
    pthread_mutex_unlock(&d->klock);
    pthread_join(d->key_thread, NULL);
    d->key_started = false;
}

/* Asks the key thread for a fetch now, at most every KEY_REFETCH_MS. */
static void key_refresh_soon(daemon_direct *d)
{
    int64_t now = clock_mono_ms();

    pthread_mutex_lock(&d->klock);
    if (d->krefresh_ms == 0 || now - d->krefresh_ms >= KEY_REFETCH_MS) {
        d->krefresh_ms = now;
        d->krefresh = true;
        pthread_cond_signal(&d->kcond);
    }
    pthread_mutex_unlock(&d->klock);
}

/* ------------------------------------------------------------ tokens */

json_t *dd_perm_names(unsigned perms)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a != NULL && i < NPERMS; i++) {
        if (perms & perm_names[i].bit)
            json_array_append_new(a, json_string(perm_names[i].name));
    }
    return a;
}

static const char *perm_name(unsigned bit)
{
    size_t i;

    for (i = 0; i < NPERMS; i++) {
        if (perm_names[i].bit == bit)
            return perm_names[i].name;
    }
    return "?";
}

/* Copies claim key of cl (a string of at most size - 1 bytes). */
static int claim_str(json_t *cl, const char *key, char *out, size_t size)
{
    const char *v = json_string_value(json_object_get(cl, key));

    if (v == NULL || strlen(v) >= size)
        return -1;
    snprintf(out, size, "%s", v);
    return 0;
}

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

int dd_auth_check(daemon_direct *d, const char *token, const char *site,
                  const char *scope, unsigned need, dd_claims *c, char *why,
                  size_t whylen)
{
    unsigned char pk[TOKEN_ED25519_PK_BYTES];
    char typ[16], node[DD_ID_MAX];
    json_t *cl = NULL, *perms, *v;
    bool have;
    size_t i, k;
    int rc;

    memset(c, 0, sizeof(*c));
    if (whylen > 0)
        why[0] = '\0';
    if (token == NULL || token[0] == '\0')
        return fail(why, whylen, BERTH_EAUTH,
                    "a token from the panel is required");
    pthread_mutex_lock(&d->klock);
    have = d->have_key;
    memcpy(pk, d->pk, sizeof(pk));
    pthread_mutex_unlock(&d->klock);
    if (!have) {
        key_refresh_soon(d);
        return fail(why, whylen, BERTH_EUNAVAIL,
                    "this node does not know the panel's key yet");
    }
    rc = token_verify_ed25519(token, pk, clock_wall_ms() / 1000, &cl);
    if (rc == BERTH_ETIMEDOUT)
        return fail(why, whylen, BERTH_EAUTH, "the token has expired");
    if (rc != 0) {
        key_refresh_soon(d);
        return fail(why, whylen, BERTH_EAUTH, "the token is not valid");
    }
    rc = BERTH_EAUTH;
    if (claim_str(cl, "typ", typ, sizeof(typ)) != 0 ||
        strcmp(typ, "direct") != 0 ||
        claim_str(cl, "node", node, sizeof(node)) != 0 ||
        claim_str(cl, "site", c->site, sizeof(c->site)) != 0 ||
        claim_str(cl, "scope", c->scope, sizeof(c->scope)) != 0 ||
        claim_str(cl, "sub", c->user, sizeof(c->user)) != 0 ||
        claim_str(cl, "jti", c->jti, sizeof(c->jti)) != 0 ||
        !json_is_integer(json_object_get(cl, "exp")) ||
        !json_is_array(json_object_get(cl, "perms"))) {
        rc = fail(why, whylen, BERTH_EAUTH, "the token is not a direct token");
        goto out;
    }
    c->exp = json_integer_value(json_object_get(cl, "exp"));
    c->iat = json_integer_value(json_object_get(cl, "iat"));
    perms = json_object_get(cl, "perms");
    json_array_foreach(perms, i, v)
    {
        const char *name = json_string_value(v);

        for (k = 0; name != NULL && k < NPERMS; k++) {
            if (strcmp(name, perm_names[k].name) == 0)
                c->perms |= perm_names[k].bit;
        }
    }
    if (strcmp(node, d->node) != 0) {
        rc = fail(why, whylen, BERTH_EPERM, "the token is for another node");
        goto out;
    }
    if (strcmp(c->site, site) != 0) {
        rc = fail(why, whylen, BERTH_EPERM, "the token is for another site");
        goto out;
    }
    if (strcmp(c->scope, scope) != 0) {
        rc = fail(why, whylen, BERTH_EPERM,
                  "the token's scope is %s, not %s", c->scope, scope);
        goto out;
    }
    for (k = 0; k < NPERMS; k++) {
        if ((need & perm_names[k].bit) && !(c->perms & perm_names[k].bit)) {
            rc = fail(why, whylen, BERTH_EPERM,
                      "permission %s required on this site",
                      perm_name(perm_names[k].bit));
            goto out;
        }
    }
    for (i = 0; i < d->nrevoked; i++) {
        const dd_revoked *r = &d->revoked[i];

        if ((r->user[0] == '\0' || strcmp(r->user, c->user) == 0) &&
            (r->site[0] == '\0' || strcmp(r->site, site) == 0) &&
            c->iat <= r->at) {
            rc = fail(why, whylen, BERTH_EAUTH, "access was revoked");
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(cl);
    if (rc != 0)
        log_info("direct token refused", "site=%s scope=%s user=%s reason=%s",
                 site, scope, c->user, why);
    return rc;
}

/* ------------------------------------------------------------ spent ids */

/* FNV-1a. */
static size_t spent_hash(const char *s)
{
    size_t h = 1469598103934665603ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Inserts into a table known to have room. */
static void spent_put(dd_spent *tab, size_t cap, const dd_spent *e)
{
    size_t i = spent_hash(e->jti) & (cap - 1);

    while (tab[i].jti[0] != '\0')
        i = (i + 1) & (cap - 1);
    tab[i] = *e;
}

/* Rebuilds the table with cap slots, keeping what has not expired at
 * now. Returns 0 or BERTH_ENOMEM (the table is kept). */
static int spent_rebuild(daemon_direct *d, size_t cap, int64_t now)
{
    dd_spent *tab = calloc(cap, sizeof(*tab));
    size_t i, n = 0;

    if (tab == NULL)
        return BERTH_ENOMEM;
    for (i = 0; i < d->nspent_cap; i++) {
        if (d->spent[i].jti[0] != '\0' && d->spent[i].exp > now) {
            spent_put(tab, cap, &d->spent[i]);
            n++;
        }
    }
    free(d->spent);
    d->spent = tab;
    d->nspent_cap = cap;
    d->nspent = n;
    return 0;
}

int dd_auth_spend(daemon_direct *d, const dd_claims *c)
{
    dd_spent e;
    size_t i;

    if (d->nspent_cap > 0) {
        for (i = spent_hash(c->jti) & (d->nspent_cap - 1);
             d->spent[i].jti[0] != '\0'; i = (i + 1) & (d->nspent_cap - 1)) {
            if (strcmp(d->spent[i].jti, c->jti) == 0)
                return BERTH_EAUTH;
        }
    }
    if ((d->nspent + 1) * 2 > d->nspent_cap) {
        size_t cap = d->nspent_cap ? d->nspent_cap * 2 : 64;

        if (d->nspent >= SPENT_MAX ||
            spent_rebuild(d, cap, clock_wall_ms() / 1000) != 0)
            return BERTH_EUNAVAIL;
    }
    memset(&e, 0, sizeof(e));
    snprintf(e.jti, sizeof(e.jti), "%s", c->jti);
    e.exp = c->exp;
    spent_put(d->spent, d->nspent_cap, &e);
    d->nspent++;
    return 0;
}

void dd_auth_tick(daemon_direct *d, int64_t now)
{
    size_t i, o = 0;

    /* Every ten seconds is often enough to forget. */
    if (now - d->swept_s < 10)
        return;
    d->swept_s = now;
    if (d->nspent > 0)
        spent_rebuild(d, d->nspent_cap, now);
    for (i = 0; i < d->nrevoked; i++) {
        if (d->revoked[i].at + REVOKED_KEEP_S > now)
            d->revoked[o++] = d->revoked[i];
    }
    d->nrevoked = o;
}

void dd_auth_revoke(daemon_direct *d, const char *user, const char *site,
                    int64_t at)
{
    dd_revoked *r;

    if (d->revoked == NULL) {
        d->revoked = calloc(REVOKED_MAX, sizeof(*d->revoked));
        if (d->revoked == NULL)
            return;
    }
    if (d->nrevoked == REVOKED_MAX) {
        memmove(d->revoked, d->revoked + 1,
                (REVOKED_MAX - 1) * sizeof(*d->revoked));
        d->nrevoked--;
    }
    r = &d->revoked[d->nrevoked++];
    snprintf(r->user, sizeof(r->user), "%s", user);
    snprintf(r->site, sizeof(r->site), "%s", site != NULL ? site : "");
    r->at = at;
}
