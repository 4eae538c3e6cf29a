/* api.h - what every panel endpoint does first: authenticate the caller,
 * check a permission, validate JSON fields, and record mutations in the
 * audit log.
 */
#ifndef BERTH_PANEL_API_H
#define BERTH_PANEL_API_H

#include <jansson.h>
#include <stdint.h>

#include "svc-panel/panel.h"

/* The authenticated caller of a request. */
typedef struct principal {
    char user_id[40];
    char name[65];
    uint32_t perms; /* from the role */
} principal;

/* Authenticates the access token of req. Returns 0 and fills who, or sets a
 * 401 on resp and returns BERTH_EAUTH. */
int api_auth(panel *p, http_req *req, http_resp *resp, principal *who);

/* Fills who for the user user_id as the store knows them now. Returns 0,
 * or BERTH_ENOENT when there is no such user. */
int api_principal(panel *p, const char *user_id, principal *who);

/* Returns 0 when who holds perm (globally), or sets a 403 and returns
 * BERTH_EPERM. */
int api_require(const principal *who, uint32_t perm, http_resp *resp);

/* Returns 1 when who holds perm globally or through a grant on site_id. */
int api_site_allowed(panel *p, const principal *who, const char *site_id,
                     uint32_t perm);

/* Checks that obj is an object whose keys are all in allowed (NULL-ended);
 * sets a 400 naming the first stranger and returns BERTH_EINVAL. */
int api_fields(json_t *obj, const char *const *allowed, http_resp *resp);

/* Reads an optional string field: NULL when absent or null, sets a 400 and
 * returns BERTH_EINVAL when present but not a string or longer than max
 * bytes (*out untouched). */
int api_str(json_t *obj, const char *key, size_t max, const char **out,
            http_resp *resp);

/* Answers a failed database call: 503 for EUNAVAIL/ETIMEDOUT, 409 for
 * EEXIST (what names the conflict), 400 for EINVAL, 500 otherwise. */
void api_db_error(http_resp *resp, int rc, const char *what);

/* Records a mutation: who (may be NULL), action ("user.create"), target,
 * the request's IP, and the response status as the result. Never fails the
 * request: a lost audit row is logged. detail may be NULL (consumed). */
void api_audit(panel *p, const principal *who, const http_req *req,
               const char *action, const char *target, int status,
               json_t *detail);

/* api_audit() for a caller known only by user id (login, refresh, logout:
 * no principal yet). user_id may be NULL or "". */
void api_audit_user(panel *p, const char *user_id, const http_req *req,
                    const char *action, const char *target, int status,
                    json_t *detail);

#endif
