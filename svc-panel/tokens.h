/* tokens.h - direct-channel tokens: what lets a browser talk to a daemon
 * directly (console, files) once the panel has said yes.
 *
 *   POST /sites/:id/tokens {"scope":"console"|"files"}
 *     -> 200 {"token","expiresAt","url","scope"}
 *
 * A token is signed with the panel's Ed25519 key (common/token.h) and
 * carries the claims
 *
 *   typ "direct", sub (user id), site, node, perms (the caller's
 *   site-scoped permission names on the site), scope, iat, exp
 *   (iat + AUTH_DIRECT_TTL_S), jti (a new UUID), kid (the key id)
 *
 * Daemons verify it offline with the public key the panel serves on the
 * bus subject panel.pubkey (berth.v1.Empty -> berth.v1.PanelPubkey).
 * The route handler, tokens_issue(), is declared in routes.h.
 */
#ifndef BERTH_PANEL_TOKENS_H
#define BERTH_PANEL_TOKENS_H

#include <stdint.h>

#include "svc-panel/panel.h"

/* Signs a direct-channel token for user_id on site_id (on node_id) with
 * scope ("console" or "files") and the permission bits perms (only the
 * PERM_SITE_SCOPED ones are written), issued at now (seconds). Writes the
 * token into *out (caller frees) and its jti into jti. Returns 0,
 * BERTH_EINVAL or another berth code. */
int tokens_sign_direct(const auth_keys *k, const char *user_id,
                       const char *site_id, const char *node_id,
                       uint32_t perms, const char *scope, int64_t now,
                       char **out, char jti[37]);

/* Serves panel.pubkey on the bus. Returns 0 or a berth code. */
int tokens_start(panel *p);

#endif
