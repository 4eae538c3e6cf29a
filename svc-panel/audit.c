/* audit.c - GET /audit: the audit log, newest first, with paging and
 * filters.
 *
 *   GET /audit?user=<uuid>&action=user.create&target=...&since=<time>
 *             &until=<time>&limit=100&offset=0
 *   -> {"entries": [{id, at, userId, action, target, ip, result, detail}],
 *       "total": N, "limit": L, "offset": O}
 *
 * Times are anything PostgreSQL reads as timestamptz (RFC 3339 works).
 */
#include "svc-panel/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/id.h"
#include "svc-panel/api.h"

#define AUDIT_PARAM_MAX 256

/* Reads query parameter name into out; "" when absent. */
static const char *param(http_req *req, const char *name, char *out)
{
    if (!http_query(req, name, out, AUDIT_PARAM_MAX))
        out[0] = '\0';
    return out[0] ? out : NULL;
}

static int number(const char *s, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL)
        return 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || v > max)
        return BERTH_EINVAL;
    *out = v;
    return 0;
}

void audit_list(panel *p, http_req *req, http_resp *resp)
{
    char user[AUDIT_PARAM_MAX], action[AUDIT_PARAM_MAX], target[AUDIT_PARAM_MAX];
    char since[AUDIT_PARAM_MAX], until[AUDIT_PARAM_MAX];
    char lim[AUDIT_PARAM_MAX], off[AUDIT_PARAM_MAX];
    char lims[24], offs[24];
    const char *params[7];
    PGresult *rows = NULL, *count = NULL;
    db_conn *c = NULL;
    principal who;
    long limit = 100, offset = 0;
    json_t *arr;
    int i, rc;

    if (api_auth(p, req, resp, &who) != 0 ||
        api_require(&who, PERM_AUDIT_READ, resp) != 0)
        return;
    params[0] = param(req, "user", user);
    params[1] = param(req, "action", action);
    params[2] = param(req, "target", target);
    params[3] = param(req, "since", since);
    params[4] = param(req, "until", until);
    if (params[0] != NULL && !id_uuid_valid(params[0])) {
        http_error(resp, 400, BERTH_EINVAL, "user must be a user id");
        return;
    }
    if (number(param(req, "limit", lim), 1000, &limit) != 0 || limit == 0 ||
        number(param(req, "offset", off), 1L << 40, &offset) != 0) {
        http_error(resp, 400, BERTH_EINVAL,
                   "limit must be 1-1000 and offset a non-negative number");
        return;
    }
    snprintf(lims, sizeof(lims), "%ld", limit);
    snprintf(offs, sizeof(offs), "%ld", offset);
    params[5] = lims;
    params[6] = offs;
    rc = db_acquire(p->db, 2000, &c);
    if (rc == 0)
        rc = db_exec(c, "audit_list", 7, params, &rows);
    if (rc == 0)
        rc = db_exec(c, "audit_count", 5, params, &count);
    if (c != NULL)
        db_release(p->db, c);
    if (rc != 0) {
        api_db_error(resp, rc, "filter (since and until must be times)");
        goto out;
    }
    arr = json_array();
    for (i = 0; i < PQntuples(rows); i++) {
        /* AUDIT row: id, at, user_id, action, target, ip, result, detail. */
        json_t *detail = NULL;
        json_t *e;

        if (!PQgetisnull(rows, i, 7))
            detail = json_loads(PQgetvalue(rows, i, 7), 0, NULL);
        e = json_pack("{s:I, s:s, s:o, s:s, s:o, s:o, s:s, s:o}", "id",
                      (json_int_t)strtoll(PQgetvalue(rows, i, 0), NULL, 10),
                      "at", PQgetvalue(rows, i, 1), "userId",
                      PQgetisnull(rows, i, 2) ? json_null()
                                              : json_string(PQgetvalue(rows, i, 2)),
                      "action", PQgetvalue(rows, i, 3), "target",
                      PQgetisnull(rows, i, 4) ? json_null()
                                              : json_string(PQgetvalue(rows, i, 4)),
                      "ip",
                      PQgetisnull(rows, i, 5) ? json_null()
                                              : json_string(PQgetvalue(rows, i, 5)),
                      "result", PQgetvalue(rows, i, 6), "detail",
                      detail ? detail : json_null());
        json_array_append_new(arr, e);
    }
    http_json(resp, 200,
              json_pack("{s:o, s:I, s:I, s:I}", "entries", arr, "total",
                        (json_int_t)strtoll(PQgetvalue(count, 0, 0), NULL, 10),
                        "limit", (json_int_t)limit, "offset", (json_int_t)offset));
out:
    PQclear(rows);
    PQclear(count);
}
