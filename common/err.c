/* err.c - names, messages and HTTP statuses of the berth error codes. */
#include "err.h"

#include <errno.h>
#include <string.h>

struct err_entry {
    int code;
    int status;
    const char *name;
    const char *msg;
};

static const struct err_entry err_table[] = {
#define XX(name, value, status, msg) {(value), (status), #name, (msg)},
    BERTH_ERR_MAP(XX)
#undef XX
};

#define ERR_COUNT (sizeof(err_table) / sizeof(err_table[0]))

static const struct err_entry *err_find(int rc)
{
    /* Codes are dense from -1 downwards, so the table is indexed directly. */
    if (rc >= 0 || (size_t)-rc > ERR_COUNT)
        return NULL;
    return &err_table[-rc - 1];
}

const char *berth_strerror(int rc)
{
    const struct err_entry *e;

    if (rc == 0)
        return "success";
    e = err_find(rc);
    return e ? e->msg : "unknown error";
}

const char *berth_errname(int rc)
{
    const struct err_entry *e;

    if (rc == 0)
        return "OK";
    e = err_find(rc);
    return e ? e->name : "EUNKNOWN";
}

int berth_err_from_name(const char *name)
{
    size_t i;

    if (name == NULL)
        return 0;
    if (strncmp(name, "BERTH_", 6) == 0)
        name += 6;
    for (i = 0; i < ERR_COUNT; i++) {
        if (strcmp(err_table[i].name, name) == 0)
            return err_table[i].code;
    }
    return 0;
}

int berth_err_http_status(int rc)
{
    const struct err_entry *e;

    if (rc == 0)
        return 200;
    e = err_find(rc);
    return e ? e->status : 500;
}

int berth_err_from_errno(int e)
{
    switch (e) {
    case 0:
        return 0;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
        return BERTH_EINVAL;
    case ENOMEM:
        return BERTH_ENOMEM;
    case ENOENT:
    case ENOTDIR:
        return BERTH_ENOENT;
    case EEXIST:
    case ENOTEMPTY:
        return BERTH_EEXIST;
    case EPERM:
    case EACCES:
    case EROFS:
        return BERTH_EPERM;
    case EFBIG:
    case ENOSPC:
    case EDQUOT:
        return BERTH_ETOOBIG;
    case ETIMEDOUT:
        return BERTH_ETIMEDOUT;
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return BERTH_EUNAVAIL;
    case EBUSY:
        return BERTH_EBUSY;
    case ECANCELED:
    case EINTR:
        return BERTH_ECANCELED;
    case ENOTSUP:
        return BERTH_ENOTSUP;
    default:
        return BERTH_EIO;
    }
}
