/* err.h - the project-wide error codes.
 *
 * Every function in berth that can fail returns 0 on success or one of the
 * negative BERTH_E* codes below. Names, messages and the HTTP status each
 * code maps to come from the single BERTH_ERR_MAP table, so a code means the
 * same thing in a log line, a bus error reply and an HTTP response.
 */
#ifndef BERTH_COMMON_ERR_H
#define BERTH_COMMON_ERR_H

/* XX(name, value, http status, message) */
#define BERTH_ERR_MAP(XX)                                                      \
    XX(EINVAL, -1, 400, "invalid argument")                                    \
    XX(ENOMEM, -2, 500, "out of memory")                                       \
    XX(ENOENT, -3, 404, "not found")                                           \
    XX(EEXIST, -4, 409, "already exists")                                      \
    XX(EPERM, -5, 403, "permission denied")                                    \
    XX(EAUTH, -6, 401, "authentication required")                              \
    XX(ETOOBIG, -7, 413, "too large")                                          \
    XX(ETIMEDOUT, -8, 504, "timed out")                                        \
    XX(ENORESP, -9, 503, "no responders")                                      \
    XX(EUNAVAIL, -10, 503, "service unavailable")                              \
    XX(EIO, -11, 500, "input/output error")                                    \
    XX(EPROTO, -12, 400, "malformed message")                                  \
    XX(ECONFLICT, -13, 409, "conflict")                                        \
    XX(ETHROTTLE, -14, 429, "too many requests")                               \
    XX(ENOTSUP, -15, 501, "not supported")                                     \
    XX(ECANCELED, -16, 499, "canceled")                                        \
    XX(EBUSY, -17, 409, "resource busy")                                       \
    XX(ESUBJECT, -18, 500, "subject not in the catalog")                       \
    XX(ECONFIG, -19, 500, "invalid configuration")                             \
    XX(EINTERNAL, -20, 500, "internal error")

enum berth_err {
    BERTH_OK = 0,
#define XX(name, value, status, msg) BERTH_##name = (value),
    BERTH_ERR_MAP(XX)
#undef XX
};

/* Returns a static message for rc ("success" for 0, "unknown error" for a
 * value outside the table). Never NULL. */
const char *berth_strerror(int rc);

/* Returns the static name of rc without the BERTH_ prefix ("EINVAL"), "OK"
 * for 0 and "EUNKNOWN" otherwise. */
const char *berth_errname(int rc);

/* Returns the code named name ("EINVAL" or "BERTH_EINVAL"), or 0 when the
 * name is not in the table. */
int berth_err_from_name(const char *name);

/* Returns the HTTP status that best describes rc (200 for 0). */
int berth_err_http_status(int rc);

/* Maps an errno value (positive) onto the closest berth code. */
int berth_err_from_errno(int e);

#endif
