/* direct_util.c - the direct server's helpers for building responses and
 * reading requests: JSON strings that are always valid UTF-8, the
 * standard error body, extra headers, query parameters and flags (see
 * direct_int.h). Any thread; they touch only what they are given.
 */
#include "svc-daemon/direct_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

int dd_json_str(buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    char *w = buf_reserve(out, n * 6 + 2);
    size_t o = 0;

    if (w == NULL)
        return BERTH_ETOOBIG;
    w[o++] = '"';
    while (i < n) {
        unsigned char ch = p[i];
        size_t len = 0, k;
        unsigned cp = 0;

        if (ch < 0x80) {
            if (ch == '"' || ch == '\\') {
                w[o++] = '\\';
                w[o++] = (char)ch;
            } else if (ch == '\n') {
                w[o++] = '\\';
                w[o++] = 'n';
            } else if (ch == '\r') {
                w[o++] = '\\';
                w[o++] = 'r';
            } else if (ch == '\t') {
                w[o++] = '\\';
                w[o++] = 't';
            } else if (ch < 0x20 || ch == 0x7f) {
                memcpy(w + o, "\\u00", 4);
                w[o + 4] = hex[ch >> 4];
                w[o + 5] = hex[ch & 15];
                o += 6;
            } else {
                w[o++] = (char)ch;
            }
            i++;
            continue;
        }
        if (ch >= 0xc2 && ch <= 0xdf)
            len = 2, cp = ch & 0x1f;
        else if (ch >= 0xe0 && ch <= 0xef)
            len = 3, cp = ch & 0x0f;
        else if (ch >= 0xf0 && ch <= 0xf4)
            len = 4, cp = ch & 0x07;
        for (k = 1; len > 0 && k < len; k++) {
            if (i + k >= n || (p[i + k] & 0xc0) != 0x80) {
                len = 0;
                break;
            }
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            len = 0;
        if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
            len = 0;
        if (len == 0) {
            memcpy(w + o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            i++;
            continue;
        }
        memcpy(w + o, p + i, len);
        o += len;
        i += len;
    }
    w[o++] = '"';
    buf_commit(out, o);
    return 0;
}

static int dump_cb(const char *p, size_t n, void *ud)
{
    return buf_append(ud, p, n) == 0 ? 0 : -1;
}

void dd_json(dd_resp *r, int status, json_t *j)
{
    buf_reset(&r->body);
    if (j == NULL) {
        dd_error(r, 500, BERTH_EINTERNAL, "could not build the response");
        return;
    }
    if (json_dump_callback(j, dump_cb, &r->body,
                           JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        json_decref(j);
        dd_error(r, 500, BERTH_ETOOBIG, "the response is too large");
        return;
    }
    json_decref(j);
    r->status = status;
    r->content_type = NULL;
}

void dd_error(dd_resp *r, int status, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->status = status != 0 ? status : berth_err_http_status(code);
    r->content_type = NULL;
    buf_reset(&r->body);
    rc = buf_printf(&r->body, "{\"error\":{\"code\":\"%s\",\"message\":",
                    berth_errname(code));
    if (rc == 0)
        rc = dd_json_str(&r->body, msg, strlen(msg));
    if (rc == 0)
        rc = buf_puts(&r->body, "},\"message\":");
    if (rc == 0)
        rc = dd_json_str(&r->body, msg, strlen(msg));
    if (rc == 0)
        rc = buf_putc(&r->body, '}');
    if (rc != 0) {
        buf_reset(&r->body);
        buf_puts(&r->body, "{\"error\":{\"code\":\"ENOMEM\",\"message\":"
                           "\"out of memory\"},\"message\":\"out of memory\"}");
    }
}

void dd_header(dd_resp *r, const char *name, const char *value)
{
    size_t n;
    char *line;

    if (r->nheaders >= DD_MAX_HEADERS || strpbrk(name, ":\r\n ") != NULL ||
        strpbrk(value, "\r\n") != NULL) {
        log_warn("direct header dropped", "name=%s", name);
        return;
    }
    n = strlen(name) + strlen(value) + 3;
    line = malloc(n);
    if (line == NULL)
        return;
    snprintf(line, n, "%s: %s", name, value);
    r->headers[r->nheaders++] = line;
}

const char *dd_arg(const dd_req *req, const char *name)
{
    int i;

    for (i = 0; i < req->nargs; i++) {
        if (strcmp(req->keys[i], name) == 0)
            return req->vals[i];
    }
    return NULL;
}

bool dd_flag(const dd_req *req, const char *name)
{
    const char *v = dd_arg(req, name);
    json_t *j = req->body != NULL ? json_object_get(req->body, name) : NULL;

    if (j != NULL)
        return json_is_true(j);
    return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ||
                         strcmp(v, "yes") == 0);
}
