/* hostkey.c - the host key (see hostkey.h). */
#include "svc-shell/hostkey.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"

/* Creates a new key and writes it to path, 0600, atomically. */
static int generate(const char *path)
{
    ssh_key key = NULL;
    char *b64 = NULL;
    int rc;

    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    if (ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &b64) != SSH_OK) {
        rc = BERTH_EINTERNAL;
        goto out;
    }
    rc = fs_write_atomic(path, b64, strlen(b64), 0600);
    if (rc == 0)
        log_info("host key created", "path=%s", path);
out:
    if (b64 != NULL) {
        explicit_bzero(b64, strlen(b64));
        ssh_string_free_char(b64);
    }
    ssh_key_free(key);
    return rc;
}

static int fingerprint_of(ssh_key key, char out[SHELL_FINGERPRINT_MAX])
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp;

    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) !=
        SSH_OK)
        return BERTH_EINTERNAL;
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    if (fp == NULL)
        return BERTH_ENOMEM;
    snprintf(out, SHELL_FINGERPRINT_MAX, "%s", fp);
    ssh_string_free_char(fp);
    return 0;
}

int shell_hostkey_load(const char *data_dir, ssh_key *key,
                       char fingerprint[SHELL_FINGERPRINT_MAX])
{
    char path[PATH_MAX];
    struct stat st;
    ssh_key k = NULL;
    int rc;

    *key = NULL;
    if (snprintf(path, sizeof(path), "%s/%s", data_dir, SHELL_HOSTKEY_FILE) >=
        (int)sizeof(path))
        return BERTH_EINVAL;
    rc = fs_mkdirs(data_dir, 0700);
    if (rc != 0)
        return rc;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return berth_err_from_errno(errno);
        rc = generate(path);
        if (rc != 0)
            return rc;
        if (stat(path, &st) != 0)
            return berth_err_from_errno(errno);
    }
    if ((st.st_mode & 077) != 0) {
        log_error("host key is readable by others; chmod 600 it", "path=%s",
                  path);
        return BERTH_EPERM;
    }
    if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &k) != SSH_OK ||
        ssh_key_type(k) != SSH_KEYTYPE_ED25519 || !ssh_key_is_private(k)) {
        log_error("host key is not an Ed25519 private key", "path=%s", path);
        rc = BERTH_ECONFIG;
        goto out;
    }
    rc = fingerprint_of(k, fingerprint);
    if (rc != 0)
        goto out;
    *key = k;
    k = NULL;
out:
    ssh_key_free(k);
    return rc;
}
