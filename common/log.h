/* log.h - one logfmt line per event, to stderr.
 *
 *   log_info("listening", "addr=%s port=%d", addr, port);
 *
 * prints
 *
 *   ts=2026-11-22T03:50:01.123Z level=info comp=panel msg=listening addr=0.0.0.0 port=8080
 *
 * The second argument holds the key=value fields in printf form. Every %s
 * value is quoted and escaped by the logger when it needs to be (spaces,
 * quotes, '=' or control characters), so callers never quote by hand. The
 * supported conversions are %s %c %d %i %u %x %ld %lu %lld %llu %zu %zd %p %f
 * %g and %% (with the usual flags and widths for numbers).
 */
#ifndef BERTH_COMMON_LOG_H
#define BERTH_COMMON_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

/* Sets the component name (copied) and the lowest level printed. */
void log_init(const char *component, enum log_level level);

/* Parses "debug", "info", "warn", "error" or "off"; returns -1 otherwise. */
int log_level_parse(const char *s);

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

void log_emit(enum log_level level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));
void log_vemit(enum log_level level, const char *msg, const char *fields,
               va_list ap) __attribute__((format(printf, 3, 0)));

/* Formats fields into dst (size bytes) with the same quoting rules; used by
 * log_emit and exposed for tests. Returns the length written. */
int log_format_fields(char *dst, int size, const char *fields, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_debug(msg, ...) log_emit(LOG_DEBUG, (msg), __VA_ARGS__)
#define log_info(msg, ...) log_emit(LOG_INFO, (msg), __VA_ARGS__)
#define log_warn(msg, ...) log_emit(LOG_WARN, (msg), __VA_ARGS__)
#define log_error(msg, ...) log_emit(LOG_ERROR, (msg), __VA_ARGS__)

#endif
