/* hostkey.h - berth-shell's Ed25519 host key, generated on first start and
 * kept 0600 in the data directory (shell.ed25519, OpenSSH private key
 * format). A key file readable by group or others is refused, as sshd
 * refuses one.
 */
#ifndef BERTH_SHELL_HOSTKEY_H
#define BERTH_SHELL_HOSTKEY_H

#include <libssh/libssh.h>

#define SHELL_HOSTKEY_FILE "shell.ed25519"
#define SHELL_FINGERPRINT_MAX 128

/* Loads data_dir/shell.ed25519, creating it first when missing. Returns 0,
 * *key (caller frees with ssh_key_free()) and its SHA256 fingerprint as
 * ssh-keygen -l prints it; BERTH_EPERM for a file others may read;
 * BERTH_ECONFIG for a file that is not an Ed25519 private key; or another
 * berth code. */
int shell_hostkey_load(const char *data_dir, ssh_key *key,
                       char fingerprint[SHELL_FINGERPRINT_MAX]);

#endif
