/* log.c - logfmt lines to stderr, one write(2) per event.
 *
 * A line is formatted into a stack buffer and written with a single call,
 * so lines from different threads never interleave.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define LOG_LINE_MAX 4096

static char log_comp[32] = "berth";
static volatile int log_min = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "off"};

void log_init(const char *component, enum log_level level)
{
    snprintf(log_comp, sizeof(log_comp), "%s", component);
    log_min = level;
}

int log_level_parse(const char *s)
{
    int i;

    for (i = 0; i <= LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0)
            return i;
    }
    if (strcmp(s, "warning") == 0)
        return LOG_WARN;
    return -1;
}

void log_set_level(enum log_level level)
{
    log_min = level;
}

int log_enabled(enum log_level level)
{
    return (int)level >= log_min && level < LOG_OFF;
}

static int needs_quote(const char *s)
{
    if (*s == '\0')
        return 1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return 1;
    }
    return 0;
}

/* Appends s at dst[*pos], quoted and escaped when needed. */
static void put_value(char *dst, int size, int *pos, const char *s)
{
    int quote;

    if (s == NULL)
        s = "(null)";
    quote = needs_quote(s);
    if (quote && *pos < size - 1)
        dst[(*pos)++] = '"';
    for (; *s && *pos < size - 1; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char hex[8];

        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\r')
            esc = "\\r";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(hex, sizeof(hex), "\\x%02x", c);
            esc = hex;
        }
        if (esc != NULL) {
            for (; *esc && *pos < size - 1; esc++)
                dst[(*pos)++] = *esc;
        } else {
            dst[(*pos)++] = (char)c;
        }
    }
    if (quote && *pos < size - 1)
        dst[(*pos)++] = '"';
    dst[*pos] = '\0';
}

int log_format_fields(char *dst, int size, const char *fields, va_list ap)
{
    int pos = 0;
    const char *p = fields;

    if (size <= 0)
        return 0;
    dst[0] = '\0';
    while (*p && pos < size - 1) {
        char spec[32];
        int n = 0;
        int longs = 0;
        int sizet = 0;
        char conv;
        char tmp[128];

        if (*p != '%') {
            dst[pos++] = *p++;
            continue;
        }
        /* Copy the conversion spec: flags, width, precision, length. */
        spec[n++] = *p++;
        while (*p && strchr("-+ #0123456789.", *p) && n < 20)
            spec[n++] = *p++;
        while (*p == 'l' || *p == 'z' || *p == 'h') {
            if (*p == 'l')
                longs++;
            if (*p == 'z')
                sizet = 1;
            spec[n++] = *p++;
        }
        conv = *p ? *p++ : '\0';
        spec[n++] = conv;
        spec[n] = '\0';
        tmp[0] = '\0';
        switch (conv) {
        case 's':
            put_value(dst, size, &pos, va_arg(ap, const char *));
            continue;
        case '%':
            snprintf(tmp, sizeof(tmp), "%%");
            break;
        case 'c':
            snprintf(tmp, sizeof(tmp), "%c", va_arg(ap, int));
            break;
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
            if (sizet)
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, size_t));
            else if (longs >= 2)
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, long long));
            else if (longs == 1)
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, long));
            else
                snprintf(tmp, sizeof(tmp), spec, va_arg(ap, int));
            break;
        case 'f':
        case 'g':
        case 'e':
            snprintf(tmp, sizeof(tmp), spec, va_arg(ap, double));
            break;
        case 'p':
            snprintf(tmp, sizeof(tmp), "%p", va_arg(ap, void *));
            break;
        default:
            snprintf(tmp, sizeof(tmp), "%s", spec);
            break;
        }
        for (n = 0; tmp[n] && pos < size - 1; n++)
            dst[pos++] = tmp[n];
    }
    dst[pos] = '\0';
    return pos;
}

void log_vemit(enum log_level level, const char *msg, const char *fields,
               va_list ap)
{
    char line[LOG_LINE_MAX];
    char ts[40];
    int pos;
    ssize_t w;

    if (!log_enabled(level))
        return;
    clock_fmt_rfc3339(ts, sizeof(ts), clock_wall_ms());
    pos = snprintf(line, sizeof(line), "ts=%s level=%s comp=%s msg=", ts,
                   level_names[level], log_comp);
    put_value(line, (int)sizeof(line) - 1, &pos, msg);
    if (fields != NULL && fields[0] != '\0' && pos < (int)sizeof(line) - 2) {
        line[pos++] = ' ';
        pos += log_format_fields(line + pos, (int)sizeof(line) - 1 - pos,
                                 fields, ap);
    }
    line[pos++] = '\n';
    w = write(STDERR_FILENO, line, (size_t)pos);
    (void)w;
}

void log_emit(enum log_level level, const char *msg, const char *fields, ...)
{
    va_list ap;

    va_start(ap, fields);
    log_vemit(level, msg, fields, ap);
    va_end(ap);
}
