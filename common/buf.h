/* buf.h - growable byte buffers with a hard cap.
 *
 * Every buffer is created with the largest size it may ever reach; an append
 * that would pass the cap fails with BERTH_ETOOBIG and leaves the buffer as
 * it was. The data is always NUL-terminated (the terminator is not counted in
 * len), so a buffer of text can be handed to C string functions.
 *
 * The caller owns the buf struct; buf_free() releases the storage only.
 */
#ifndef BERTH_COMMON_BUF_H
#define BERTH_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t _cap;
    size_t _max;
} buf;

/* Prepares b to hold at most max bytes. Never fails; no memory is taken. */
void buf_init(buf *b, size_t max);

/* Releases the storage and resets b to empty with the same cap. */
void buf_free(buf *b);

/* Forgets the content but keeps the storage for reuse. */
void buf_reset(buf *b);

/* Appends n bytes. Returns 0, BERTH_ETOOBIG or BERTH_ENOMEM. */
int buf_append(buf *b, const void *p, size_t n);

/* Appends a C string. */
int buf_puts(buf *b, const char *s);

/* Appends one byte. */
int buf_putc(buf *b, char c);

/* Appends formatted text. Returns 0, BERTH_ETOOBIG or BERTH_ENOMEM. */
int buf_printf(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Makes room for n more bytes and returns a pointer to them, or NULL when
 * the cap or memory forbids it. The caller writes at most n bytes there and
 * then calls buf_commit() with the number actually written. */
char *buf_reserve(buf *b, size_t n);
void buf_commit(buf *b, size_t n);

/* Hands the storage to the caller (free with free()) and resets b. Returns
 * an empty, allocated string when b holds nothing; NULL only on ENOMEM. */
char *buf_detach(buf *b, size_t *len);

#endif
