/* buf.c - growable byte buffers with a hard cap. */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void buf_init(buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->_cap = 0;
    b->_max = max;
}

void buf_free(buf *b)
{
    free(b->data);
    buf_init(b, b->_max);
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Grows the storage so that need bytes plus a terminator fit. */
static int buf_grow(buf *b, size_t need)
{
    size_t cap;
    char *p;

    if (need > b->_max)
        return BERTH_ETOOBIG;
    if (need + 1 <= b->_cap)
        return 0;
    cap = b->_cap ? b->_cap : 64;
    while (cap < need + 1)
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    if (cap > b->_max + 1)
        cap = b->_max + 1;
    p = realloc(b->data, cap);
    if (p == NULL)
        return BERTH_ENOMEM;
    b->data = p;
    b->_cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    int rc;

    if (n > b->_max - b->len)
        return BERTH_ETOOBIG;
    rc = buf_grow(b, b->len + n);
    if (rc != 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_putc(buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;
    int rc;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return BERTH_EINVAL;
    if ((size_t)n > b->_max - b->len)
        return BERTH_ETOOBIG;
    rc = buf_grow(b, b->len + (size_t)n);
    if (rc != 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *buf_reserve(buf *b, size_t n)
{
    if (n > b->_max - b->len)
        return NULL;
    if (buf_grow(b, b->len + n) != 0)
        return NULL;
    return b->data + b->len;
}

void buf_commit(buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

char *buf_detach(buf *b, size_t *len)
{
    char *p = b->data;

    if (p == NULL) {
        p = calloc(1, 1);
        if (p == NULL)
            return NULL;
    }
    if (len != NULL)
        *len = b->len;
    buf_init(b, b->_max);
    return p;
}
