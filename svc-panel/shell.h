/* shell.h - the panel's side of berth-shell: shell.auth, which checks an
 * SSH login and returns the sites the user may reach, and the
 * access.revoked events that make the shell close sessions.
 *
 *   shell.auth   ShellAuthRequest -> ShellAuthReply   (request)
 *
 * The request carries the bare user name: berth-shell splits "alice+blog"
 * itself and never sends the "+site" part. A password is checked with the
 * same argon2id verification and the same throttle (per name and per
 * remote address) as POST /auth/login; a public key (the SSH wire blob) is
 * matched by its SHA256 fingerprint against the user's stored SSH keys.
 * "root", unknown users and wrong passwords all answer ok = false after
 * the same work (an unknown user's password is checked against a dummy
 * hash). A throttled name or address is answered with the error
 * BERTH_ETHROTTLE. Key mismatches are not counted as failures: clients
 * offer several keys in turn.
 *
 * The sites returned are those on which the user holds site.console.write,
 * site.files.read or site.files.write, from the role (every site) or from
 * a grant, each with every site permission the user holds there.
 *
 * Revocation. When a user is deleted, changes password, or loses a site
 * permission (a role change, a role's permissions reduced, a grant
 * reduced or removed), the panel publishes access.revoked.<user>
 * AccessRevoked{user_id, site_id ("" = every site), reason}. When a site
 * is deleted it publishes access.revoked.all AccessRevoked{user_id = "",
 * site_id}: every session on that site ends, whoever holds it. Events go
 * out on core NATS (the EVENTS stream keeps them too); a lost one is
 * logged, never fails the operation that caused it.
 *
 * Threads: the handler runs on a nats.c thread and borrows its own
 * database connection; the revoke functions may be called from any
 * thread.
 */
#ifndef BERTH_PANEL_SHELL_H
#define BERTH_PANEL_SHELL_H

#include <stdint.h>

#include "svc-panel/panel.h"

/* The permissions that make a site reachable over SSH. */
#define SHELL_SITE_PERMS                                                       \
    (PERM_SITE_CONSOLE_WRITE | PERM_SITE_FILES_READ | PERM_SITE_FILES_WRITE)

/* At most this many sites in one reply (a reply stays far below the bus
 * payload limit). */
#define SHELL_SITES_MAX 1000

/* Serves shell.auth. Returns 0 or a berth code. */
int shell_start(panel *p);

/* Publishes access.revoked.<user_id> for site_id (NULL or "": every
 * site) with a short reason ("user deleted"). */
void shell_revoke_user(panel *p, const char *user_id, const char *site_id,
                       const char *reason);

/* Publishes access.revoked.all for site_id: every session on the site
 * ends. */
void shell_revoke_site(panel *p, const char *site_id, const char *reason);

/* Revokes every site of every user that holds role_id. */
void shell_revoke_role(panel *p, int role_id, const char *reason);

/* Revokes user_id's access when old_perms & ~new_perms holds a site
 * permission (PERM_SITE_SCOPED: what sessions and direct tokens rest on);
 * site_id as in shell_revoke_user(). */
void shell_revoke_lost(panel *p, const char *user_id, const char *site_id,
                       uint32_t old_perms, uint32_t new_perms,
                       const char *reason);

#endif
