/* codec.c - protobuf binary and proto3 JSON forms of every bus message.
 *
 * Everything here is driven by protobuf-c descriptors. For each message
 * type the codec lazily builds a small table (struct codec_msg) with the
 * lowerCamelCase JSON name of every field, the pre-rendered `"name":` key
 * the writer copies, whether a repeated field is really a map and the size
 * of one array element. The tables live in a fixed, lock-free hash table
 * keyed by descriptor address and are never freed, so the hot paths take no
 * lock and allocate nothing.
 *
 * The JSON writer stages output in a stack buffer and appends it to the
 * caller's buf in large pieces; the reader parses with jansson, then walks
 * the tree against the descriptors, building the message with malloc() so
 * that protobuf_c_message_free_unpacked(m, NULL) releases it (that function
 * is also what cleans up a half-built message after an error).
 *
 * The presence rules mirror protobuf-c's packer exactly: a field appears in
 * the JSON form if and only if protobuf_c_message_pack() would write it, so
 * protobuf -> JSON -> protobuf is byte-identical.
 */
#include "bus/codec.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* ------------------------------------------------------------ field tables */

/* What the codec precomputes for one field. */
struct codec_field {
    const ProtobufCFieldDescriptor *fd;
    const char *name;  /* the .proto name (snake_case) */
    const char *json;  /* lowerCamelCase */
    const char *key;   /* "\"json\":", ready for the writer */
    size_t name_len;
    size_t json_len;
    size_t key_len;
    size_t elem_size;  /* one element of a repeated field */
    unsigned char is_map;
    unsigned char has_alias; /* name and json differ */
};

/* The table of one message type; immutable once published. */
struct codec_msg {
    const ProtobufCMessageDescriptor *d;
    unsigned n_fields;
    struct codec_field f[];
};

#define CODEC_CACHE_SLOTS 1024u /* distinct message types cached; 2^10 */

static _Atomic(struct codec_msg *) codec_cache[CODEC_CACHE_SLOTS];

static const char *const type_names[] = {
    [PROTOBUF_C_TYPE_INT32] = "int32",     [PROTOBUF_C_TYPE_SINT32] = "sint32",
    [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
    [PROTOBUF_C_TYPE_SINT64] = "sint64",   [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
    [PROTOBUF_C_TYPE_UINT32] = "uint32",   [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
    [PROTOBUF_C_TYPE_UINT64] = "uint64",   [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
    [PROTOBUF_C_TYPE_FLOAT] = "float",     [PROTOBUF_C_TYPE_DOUBLE] = "double",
    [PROTOBUF_C_TYPE_BOOL] = "bool",       [PROTOBUF_C_TYPE_ENUM] = "enum",
    [PROTOBUF_C_TYPE_STRING] = "string",   [PROTOBUF_C_TYPE_BYTES] = "bytes",
    [PROTOBUF_C_TYPE_MESSAGE] = "message",
};

/* Size of one element of a repeated field of type t, as protobuf-c lays
 * the array out. */
static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default: /* 32-bit integers and enums */
        return sizeof(uint32_t);
    }
}

/* Writes protoc's lowerCamelCase form of name (ToJsonName) to dst, which
 * has room for strlen(name) + 1 bytes. Returns its length. */
static size_t json_name(char *dst, const char *name)
{
    size_t n = 0;
    int up = 0;

    for (; *name != '\0'; name++) {
        if (*name == '_') {
            up = 1;
        } else if (up) {
            dst[n++] = (*name >= 'a' && *name <= 'z') ? *name - 'a' + 'A' : *name;
            up = 0;
        } else {
            dst[n++] = *name;
        }
    }
    dst[n] = '\0';
    return n;
}

/* Whether fd, a field of parent, is a map: protoc turns `map<K, V> foo_bar`
 * into `repeated FooBarEntry foo_bar` with a nested FooBarEntry {key = 1;
 * value = 2;} and forbids any other nested type by that name. */
static int is_map_field(const ProtobufCMessageDescriptor *parent,
                        const ProtobufCFieldDescriptor *fd)
{
    const ProtobufCMessageDescriptor *e = fd->descriptor;
    const char *p;
    const char *s;
    size_t plen;
    int up = 1;

    if (fd->label != PROTOBUF_C_LABEL_REPEATED ||
        fd->type != PROTOBUF_C_TYPE_MESSAGE || e == NULL || fd->name == NULL)
        return 0;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        e->fields[0].name == NULL || e->fields[1].name == NULL ||
        strcmp(e->fields[0].name, "key") != 0 ||
        strcmp(e->fields[1].name, "value") != 0)
        return 0;
    /* short_name must be MapEntryName(fd->name). */
    s = e->short_name;
    for (p = fd->name; *p != '\0'; p++) {
        char c = *p;
        if (c == '_') {
            up = 1;
            continue;
        }
        if (up && c >= 'a' && c <= 'z')
            c = c - 'a' + 'A';
        up = 0;
        if (*s++ != c)
            return 0;
    }
    if (strcmp(s, "Entry") != 0)
        return 0;
    /* ... and the entry must be nested in parent. */
    plen = strlen(parent->name);
    return strncmp(e->name, parent->name, plen) == 0 && e->name[plen] == '.' &&
           strcmp(e->name + plen + 1, e->short_name) == 0;
}

/* Builds the table of d. Returns NULL when out of memory; the caller frees
 * the result with free(). */
static struct codec_msg *msg_build(const ProtobufCMessageDescriptor *d)
{
    struct codec_msg *c;
    char ids[16];
    size_t strbytes = 0;
    size_t size;
    char *s;
    unsigned i;

    for (i = 0; i < d->n_fields; i++) {
        const char *name = d->fields[i].name;
        size_t n = name != NULL ? strlen(name)
                                : (size_t)snprintf(ids, sizeof(ids), "%u", d->fields[i].id);
        strbytes += 3 * n + 6; /* name (when generated), json and key */
    }
    size = sizeof(*c) + d->n_fields * sizeof(c->f[0]) + strbytes;
    c = malloc(size);
    if (c == NULL)
        return NULL;
    c->d = d;
    c->n_fields = d->n_fields;
    s = (char *)&c->f[d->n_fields];
    for (i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        struct codec_field *f = &c->f[i];

        f->fd = fd;
        f->name = fd->name;
        if (f->name == NULL) { /* optimize_for = CODE_SIZE drops names */
            sprintf(s, "%u", fd->id);
            f->name = s;
            s += strlen(s) + 1;
        }
        f->name_len = strlen(f->name);
        f->json = s;
        f->json_len = json_name(s, f->name);
        s += f->json_len + 1;
        f->key = s;
        s[0] = '"';
        memcpy(s + 1, f->json, f->json_len);
        memcpy(s + 1 + f->json_len, "\":", 3);
        f->key_len = f->json_len + 3;
        s += f->key_len + 1;
        f->elem_size = elem_size(fd->type);
        f->is_map = (unsigned char)is_map_field(d, fd);
        f->has_alias = f->name_len != f->json_len ||
                       memcmp(f->name, f->json, f->json_len) != 0;
    }
    return c;
}

/* Returns the table of d, from the cache or freshly built, or NULL when out
 * of memory. Only when the cache is full is the table private to this call:
 * *owned is then set and the caller frees it. */
static const struct codec_msg *msg_info(const ProtobufCMessageDescriptor *d,
                                        struct codec_msg **owned)
{
    /* Fibonacci hashing: the top bits of the product spread well. */
    size_t h = (size_t)(((uint64_t)(uintptr_t)d * 0x9E3779B97F4A7C15ull) >> 54);
    struct codec_msg *fresh;
    unsigned i;

    *owned = NULL;
    for (i = 0; i < CODEC_CACHE_SLOTS; i++) {
        struct codec_msg *c = atomic_load_explicit(
            &codec_cache[(h + i) % CODEC_CACHE_SLOTS], memory_order_acquire);
        if (c == NULL)
            break;
        if (c->d == d)
            return c;
    }
    fresh = msg_build(d);
    if (fresh == NULL)
        return NULL;
    for (i = 0; i < CODEC_CACHE_SLOTS; i++) {
        struct codec_msg *expect = NULL;
        if (atomic_compare_exchange_strong_explicit(
                &codec_cache[(h + i) % CODEC_CACHE_SLOTS], &expect, fresh,
                memory_order_acq_rel, memory_order_acquire))
            return fresh;
        if (expect->d == d) { /* another thread won the race */
            free(fresh);
            return expect;
        }
    }
    *owned = fresh;
    return fresh;
}

/* ------------------------------------------------------------ helpers */

#define MEMBER(m, off) ((char *)(m) + (off))
#define CMEMBER(m, off) ((const char *)(m) + (off))

/* Returns the length of the valid UTF-8 sequence at p (1 to 4), or 0. p is
 * NUL-terminated, so a truncated sequence stops at the terminator. */
static size_t utf8_seq_len(const unsigned char *p)
{
    unsigned char c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
        unsigned char hi = c == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
                       (p[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        size_t n;
        if (*p < 0x80) {
            p++;
            continue;
        }
        n = utf8_seq_len(p);
        if (n == 0)
            return 0;
        p += n;
    }
    return 1;
}

/* Writes the decimal digits of v so that they end at end; returns the
 * first digit. */
static char *fmt_u64(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* Parses an optional '-' and one or more decimal digits (the whole of s).
 * Returns 0, -1 when s is not such a number or -2 when the magnitude passes
 * UINT64_MAX. */
static int dec_parse(const char *s, size_t n, int *neg, uint64_t *mag)
{
    uint64_t v = 0;
    size_t i;

    *neg = n > 0 && s[0] == '-';
    i = (size_t)*neg;
    if (i == n)
        return -1;
    for (; i < n; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *mag = v;
    return 0;
}

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Values of base64 digits, standard ('+', '/') and URL-safe ('-', '_')
 * alike; -1 for everything else. */
static const signed char b64_rev[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, 62, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* Decodes standard or URL-safe base64, padded or not. out has room for
 * n / 4 * 3 + 2 bytes. Returns the decoded length, or -1. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
    size_t pad = 0;
    size_t i;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    if (pad > 0 && n % 4 != 0)
        return -1;
    n -= pad;
    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        signed char v = b64_rev[(unsigned char)s[i]];
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

/* Formats err as one line; err may be NULL. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Makes err one line of valid UTF-8 (jansson quotes raw input in its
 * messages): control characters and invalid bytes become '?'. */
static void err_clean(char *err, size_t errlen)
{
    unsigned char *p = (unsigned char *)err;

    if (err == NULL || errlen == 0)
        return;
    while (*p != '\0') {
        size_t n = utf8_seq_len(p);
        if (n == 0 || *p < 0x20 || *p == 0x7f) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* Drops whatever was appended to b past len. */
static void buf_cut(buf *b, size_t len)
{
    b->len = len;
    if (b->data != NULL)
        b->data[len] = '\0';
}

/* ------------------------------------------------------------ JSON writer */

#define OUT_STAGE 4096

/* Output is staged here and appended to b in large pieces; the first error
 * sticks in rc and later writes are dropped. */
struct out {
    buf *b;
    size_t n;
    int rc;
    char tmp[OUT_STAGE];
};

static void out_flush(struct out *w)
{
    if (w->rc == 0 && w->n > 0)
        w->rc = buf_append(w->b, w->tmp, w->n);
    w->n = 0;
}

/* Returns room for need (<= OUT_STAGE) bytes; the caller adds what it used
 * to w->n. */
static char *out_room(struct out *w, size_t need)
{
    if (OUT_STAGE - w->n < need)
        out_flush(w);
    return w->tmp + w->n;
}

static void out_raw(struct out *w, const void *p, size_t n)
{
    if (n > OUT_STAGE - w->n) {
        out_flush(w);
        if (n > OUT_STAGE / 2) {
            if (w->rc == 0)
                w->rc = buf_append(w->b, p, n);
            return;
        }
    }
    memcpy(w->tmp + w->n, p, n);
    w->n += n;
}

static void out_ch(struct out *w, char c)
{
    if (w->n == OUT_STAGE)
        out_flush(w);
    w->tmp[w->n++] = c;
}

/* Byte classes for string escaping: 0 copied as is, 1 escaped, 2 start of
 * a multi-byte sequence (validated), 3 the terminator. */
static const unsigned char esc_class[256] = {
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Writes s as a JSON string; invalid UTF-8 bytes become U+FFFD. */
static void out_string(struct out *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

    out_ch(w, '"');
    for (;;) {
        const unsigned char *run = p;
        unsigned char c;
        size_t n;

        while (esc_class[*p] == 0)
            p++;
        if (p > run)
            out_raw(w, run, (size_t)(p - run));
        c = *p;
        switch (esc_class[c]) {
        case 3:
            out_ch(w, '"');
            return;
        case 1: {
            char e[6] = {'\\', (char)c, 0, 0, 0, 0};
            n = 2;
            if (c == '\n')
                e[1] = 'n';
            else if (c == '\r')
                e[1] = 'r';
            else if (c == '\t')
                e[1] = 't';
            else if (c < 0x20) {
                memcpy(e, "\\u00", 4);
                e[4] = hex[c >> 4];
                e[5] = hex[c & 15];
                n = 6;
            }
            out_raw(w, e, n);
            p++;
            break;
        }
        default:
            n = utf8_seq_len(p);
            if (n == 0) {
                out_raw(w, "\xef\xbf\xbd", 3);
                n = 1;
            } else {
                out_raw(w, p, n);
            }
            p += n;
            break;
        }
    }
}

static void out_u64(struct out *w, uint64_t v, int quoted)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    char *p = end;

    if (quoted)
        *--p = '"';
    p = fmt_u64(p, v);
    if (quoted)
        *--p = '"';
    out_raw(w, p, (size_t)(end - p));
}

static void out_i64(struct out *w, int64_t v, int quoted)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    char *p = end;

    if (quoted)
        *--p = '"';
    p = fmt_u64(p, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    if (v < 0)
        *--p = '-';
    if (quoted)
        *--p = '"';
    out_raw(w, p, (size_t)(end - p));
}

/* Writes the shortest decimal that reads back (through strtod, and a cast
 * to float for floats, as the reader does) as exactly d. */
static void out_double(struct out *w, double d, int is_float)
{
    char s[40];
    int prec;
    int n = 0;

    if (isnan(d)) {
        out_raw(w, "\"NaN\"", 5);
        return;
    }
    if (isinf(d)) {
        if (d > 0)
            out_raw(w, "\"Infinity\"", 10);
        else
            out_raw(w, "\"-Infinity\"", 11);
        return;
    }
    if (d == 0) { /* "-0" would read back as the integer 0 */
        if (signbit(d))
            out_raw(w, "-0.0", 4);
        else
            out_ch(w, '0');
        return;
    }
    for (prec = is_float ? 6 : 15; prec <= 17; prec++) {
        double back;
        n = snprintf(s, sizeof(s), "%.*g", prec, d);
        if (prec == 17)
            break;
        back = strtod(s, NULL);
        if (is_float ? (float)back == (float)d : back == d)
            break;
    }
    out_raw(w, s, (size_t)n);
}

static void out_enum(struct out *w, const ProtobufCEnumDescriptor *ed, int v)
{
    size_t lo = 0;
    size_t hi = ed->n_values;

    while (lo < hi) { /* values[] is sorted by number, without repeats */
        size_t mid = lo + (hi - lo) / 2;
        if (ed->values[mid].value < v) {
            lo = mid + 1;
        } else if (ed->values[mid].value > v) {
            hi = mid;
        } else {
            out_ch(w, '"');
            out_raw(w, ed->values[mid].name, strlen(ed->values[mid].name));
            out_ch(w, '"');
            return;
        }
    }
    out_i64(w, v, 0); /* a number this schema does not know */
}

static void out_base64(struct out *w, const ProtobufCBinaryData *bd)
{
    const unsigned char *p = bd->data;
    size_t n = p != NULL ? bd->len : 0;
    size_t i = 0;

    out_ch(w, '"');
    while (n - i >= 3) {
        size_t groups = (n - i) / 3;
        size_t room = (OUT_STAGE - w->n) / 4;
        char *o;
        size_t g;

        if (room == 0) {
            out_flush(w);
            room = OUT_STAGE / 4;
        }
        if (groups > room)
            groups = room;
        o = w->tmp + w->n;
        for (g = 0; g < groups; g++, i += 3, o += 4) {
            uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
            o[0] = b64_chars[v >> 18];
            o[1] = b64_chars[(v >> 12) & 63];
            o[2] = b64_chars[(v >> 6) & 63];
            o[3] = b64_chars[v & 63];
        }
        w->n += groups * 4;
    }
    if (n - i > 0) {
        char *o = out_room(w, 4);
        uint32_t v = (uint32_t)p[i] << 16;
        if (n - i == 2)
            v |= (uint32_t)p[i + 1] << 8;
        o[0] = b64_chars[v >> 18];
        o[1] = b64_chars[(v >> 12) & 63];
        o[2] = n - i == 2 ? b64_chars[(v >> 6) & 63] : '=';
        o[3] = '=';
        w->n += 4;
    }
    out_ch(w, '"');
}

static void out_message(struct out *w, const ProtobufCMessage *m,
                        unsigned depth);

/* Writes one value of field fd stored at member. */
static void out_value(struct out *w, const ProtobufCFieldDescriptor *fd,
                      const void *member, unsigned depth)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        out_i64(w, *(const int32_t *)member, 0);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        out_u64(w, *(const uint32_t *)member, 0);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        out_i64(w, *(const int64_t *)member, 1);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        out_u64(w, *(const uint64_t *)member, 1);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        out_double(w, *(const float *)member, 1);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        out_double(w, *(const double *)member, 0);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)member)
            out_raw(w, "true", 4);
        else
            out_raw(w, "false", 5);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        out_enum(w, fd->descriptor, *(const int *)member);
        break;
    case PROTOBUF_C_TYPE_STRING:
        out_string(w, *(const char *const *)member);
        break;
    case PROTOBUF_C_TYPE_BYTES:
        out_base64(w, member);
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        if (*(ProtobufCMessage *const *)member == NULL)
            out_raw(w, "{}", 2);
        else
            out_message(w, *(ProtobufCMessage *const *)member, depth);
        break;
    }
}

/* Writes a map key: JSON object keys are always strings. */
static void out_map_key(struct out *w, const ProtobufCFieldDescriptor *fd,
                        const void *member)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
        out_string(w, *(const char *const *)member);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)member)
            out_raw(w, "\"true\"", 6);
        else
            out_raw(w, "\"false\"", 7);
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        out_i64(w, *(const int32_t *)member, 1);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        out_u64(w, *(const uint32_t *)member, 1);
        break;
    default: /* 64-bit integers; protoc allows no other key type */
        out_value(w, fd, member, 0);
        break;
    }
}

static void out_map(struct out *w, const ProtobufCFieldDescriptor *fd,
                    size_t n, ProtobufCMessage *const *arr, unsigned depth)
{
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0];
    const ProtobufCFieldDescriptor *vf = &ed->fields[1];
    int first = 1;
    size_t i;

    out_ch(w, '{');
    for (i = 0; i < n; i++) {
        if (arr[i] == NULL)
            continue;
        if (!first)
            out_ch(w, ',');
        first = 0;
        out_map_key(w, kf, CMEMBER(arr[i], kf->offset));
        out_ch(w, ':');
        out_value(w, vf, CMEMBER(arr[i], vf->offset), depth + 1);
    }
    out_ch(w, '}');
}

static void out_array(struct out *w, const struct codec_field *cf, size_t n,
                      const char *arr, unsigned depth)
{
    size_t i;

    out_ch(w, '[');
    for (i = 0; i < n && w->rc == 0; i++) {
        if (i > 0)
            out_ch(w, ',');
        out_value(w, cf->fd, arr + i * cf->elem_size, depth + 1);
    }
    out_ch(w, ']');
}

/* Whether a string or message pointer holds a value, as protobuf-c's
 * packer decides for optional and oneof members. */
static int ptr_set(const ProtobufCFieldDescriptor *fd, const void *member)
{
    const void *p = *(const void *const *)member;
    return p != NULL && p != fd->default_value;
}

/* Whether field fd of m is written: exactly when protobuf-c packs it. */
static int field_present(const ProtobufCFieldDescriptor *fd,
                         const ProtobufCMessage *m)
{
    const void *member = CMEMBER(m, fd->offset);
    int is_ptr = fd->type == PROTOBUF_C_TYPE_STRING ||
                 fd->type == PROTOBUF_C_TYPE_MESSAGE;

    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)CMEMBER(m, fd->quantifier_offset) != 0;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)CMEMBER(m, fd->quantifier_offset) == fd->id &&
               (!is_ptr || ptr_set(fd, member));
    if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
        return 1; /* packed even when NULL, as "" or {} */
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL)
        return is_ptr ? ptr_set(fd, member)
                      : *(const protobuf_c_boolean *)CMEMBER(m, fd->quantifier_offset);
    /* proto3 implicit presence: written unless it holds the zero value */
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)member != 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)member != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)member != 0;
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)member != 0;
    case PROTOBUF_C_TYPE_STRING:
        return *(const char *const *)member != NULL &&
               **(const char *const *)member != '\0';
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)member)->len != 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)member != NULL;
    default: /* 32-bit integers and enums */
        return *(const uint32_t *)member != 0;
    }
}

/* Writes m as an object at nesting level depth (the outermost is 1). Every
 * array and object counts as a level, as codec_from_json() counts them. */
static void out_message(struct out *w, const ProtobufCMessage *m,
                        unsigned depth)
{
    struct codec_msg *owned = NULL;
    const struct codec_msg *info;
    int first = 1;
    unsigned i;

    if (w->rc != 0)
        return;
    if (depth > CODEC_MAX_DEPTH) {
        w->rc = BERTH_ETOOBIG;
        return;
    }
    info = msg_info(m->descriptor, &owned);
    if (info == NULL) {
        w->rc = BERTH_ENOMEM;
        return;
    }
    out_ch(w, '{');
    for (i = 0; i < info->n_fields && w->rc == 0; i++) {
        const struct codec_field *cf = &info->f[i];
        const ProtobufCFieldDescriptor *fd = cf->fd;

        if (!field_present(fd, m))
            continue;
        if (!first)
            out_ch(w, ',');
        first = 0;
        out_raw(w, cf->key, cf->key_len);
        if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
            out_value(w, fd, CMEMBER(m, fd->offset), depth + 1);
            continue;
        }
        if (depth + 1 > CODEC_MAX_DEPTH) {
            w->rc = BERTH_ETOOBIG;
            break;
        }
        if (cf->is_map)
            out_map(w, fd, *(const size_t *)CMEMBER(m, fd->quantifier_offset),
                    *(ProtobufCMessage *const *const *)CMEMBER(m, fd->offset),
                    depth + 1);
        else
            out_array(w, cf, *(const size_t *)CMEMBER(m, fd->quantifier_offset),
                      *(const char *const *)CMEMBER(m, fd->offset), depth + 1);
    }
    out_ch(w, '}');
    free(owned);
}

int codec_to_json(const ProtobufCMessage *m, buf *out)
{
    struct out w;
    size_t start;

    if (m == NULL || out == NULL)
        return BERTH_EINVAL;
    w.b = out;
    w.n = 0;
    w.rc = 0;
    start = out->len;
    out_message(&w, m, 1);
    out_flush(&w);
    if (w.rc != 0)
        buf_cut(out, start);
    return w.rc;
}

/* ------------------------------------------------------------ JSON reader */

enum seg_kind { SEG_FIELD, SEG_INDEX, SEG_MAPKEY };

/* One step of the path to the value being read, for error messages. */
struct seg {
    enum seg_kind kind;
    const char *key;
    size_t index;
};

struct codec_in {
    char *err;
    size_t errlen;
    unsigned depth; /* segments in path */
    struct seg path[CODEC_MAX_DEPTH + 2];
};

static void in_push(struct codec_in *ci, enum seg_kind kind, const char *key,
                    size_t index)
{
    if (ci->depth < sizeof(ci->path) / sizeof(ci->path[0])) {
        ci->path[ci->depth].kind = kind;
        ci->path[ci->depth].key = key;
        ci->path[ci->depth].index = index;
    }
    ci->depth++;
}

static void in_pop(struct codec_in *ci)
{
    ci->depth--;
}

/* Copies at most 64 bytes of key to dst (80 bytes), with quotes and
 * control characters replaced so that an error stays one readable line. */
static const char *err_key(char *dst, const char *key)
{
    size_t i;

    for (i = 0; key[i] != '\0' && i < 64; i++) {
        unsigned char c = (unsigned char)key[i];
        dst[i] = (c < 0x20 || c == '"' || c == 0x7f) ? '?' : (char)c;
    }
    strcpy(dst + i, key[i] != '\0' ? "..." : "");
    return dst;
}

/* Appends to the string in err (errlen bytes), truncating. */
static void err_cat(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_cat(char *err, size_t errlen, const char *fmt, ...)
{
    size_t n = strlen(err);
    va_list ap;

    if (n + 1 >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
}

/* Records `field "<path>": <message>` in err and returns BERTH_EPROTO. */
static int in_fail(struct codec_in *ci, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int in_fail(struct codec_in *ci, const char *fmt, ...)
{
    const size_t max = sizeof(ci->path) / sizeof(ci->path[0]);
    char *e = ci->err;
    size_t room = ci->errlen;
    size_t n;
    char key[80];
    unsigned i;
    va_list ap;

    if (e == NULL || room == 0)
        return BERTH_EPROTO;
    e[0] = '\0';
    if (ci->depth > 0) {
        err_cat(e, room, "field \"");
        for (i = 0; i < ci->depth && i < max; i++) {
            const struct seg *s = &ci->path[i];
            if (s->kind == SEG_INDEX)
                err_cat(e, room, "[%zu]", s->index);
            else if (s->kind == SEG_MAPKEY)
                err_cat(e, room, "[%s]", err_key(key, s->key));
            else
                err_cat(e, room, "%s%s", i > 0 ? "." : "", err_key(key, s->key));
        }
        err_cat(e, room, "\": ");
    }
    n = strlen(e);
    if (n + 1 < room) {
        va_start(ap, fmt);
        vsnprintf(e + n, room - n, fmt, ap);
        va_end(ap);
    }
    return BERTH_EPROTO;
}

/* Returns a new message of type d as protobuf-c's unpacker would start it,
 * or NULL when out of memory. */
static ProtobufCMessage *msg_new(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);

    if (m != NULL)
        protobuf_c_message_init(d, m);
    return m;
}

#define NOT_A_NUMBER "expected a number or numeric string"

/* Reads an integer in [min, max] from a JSON number or decimal string. */
static int in_signed(struct codec_in *ci, const json_t *v, int64_t min,
                     int64_t max, ProtobufCType t, int64_t *out)
{
    int64_t x;

    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != trunc(d))
            return in_fail(ci, "expected an integer, got %g", d);
        if (d < -0x1p63 || d >= 0x1p63)
            return in_fail(ci, "value out of range for %s", type_names[t]);
        if (fabs(d) > 0x1p53)
            return in_fail(ci, "%g is not exact as a JSON number; send it as a string", d);
        x = (int64_t)d;
    } else if (json_is_string(v)) {
        uint64_t mag;
        int neg;
        int rc = dec_parse(json_string_value(v), json_string_length(v), &neg, &mag);
        if (rc == -1)
            return in_fail(ci, NOT_A_NUMBER);
        if (rc == -2 || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
            return in_fail(ci, "value out of range for %s", type_names[t]);
        x = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    } else {
        return in_fail(ci, NOT_A_NUMBER);
    }
    if (x < min || x > max)
        return in_fail(ci, "value out of range for %s", type_names[t]);
    *out = x;
    return 0;
}

/* Reads an integer in [0, max] from a JSON number or decimal string. */
static int in_unsigned(struct codec_in *ci, const json_t *v, uint64_t max,
                       ProtobufCType t, uint64_t *out)
{
    uint64_t x;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return in_fail(ci, "value out of range for %s", type_names[t]);
        x = (uint64_t)i;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != trunc(d))
            return in_fail(ci, "expected an integer, got %g", d);
        if (d < 0 || d >= 0x1p64)
            return in_fail(ci, "value out of range for %s", type_names[t]);
        if (d > 0x1p53)
            return in_fail(ci, "%g is not exact as a JSON number; send it as a string", d);
        x = (uint64_t)d;
    } else if (json_is_string(v)) {
        int neg;
        int rc = dec_parse(json_string_value(v), json_string_length(v), &neg, &x);
        if (rc == -1)
            return in_fail(ci, NOT_A_NUMBER);
        if (rc == -2 || (neg && x != 0))
            return in_fail(ci, "value out of range for %s", type_names[t]);
    } else {
        return in_fail(ci, NOT_A_NUMBER);
    }
    if (x > max)
        return in_fail(ci, "value out of range for %s", type_names[t]);
    *out = x;
    return 0;
}

/* Reads a float or double: a JSON number, "NaN", "Infinity", "-Infinity"
 * or a decimal string. */
static int in_double(struct codec_in *ci, const json_t *v, int is_float,
                     double *out)
{
    double d;

    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        char *end;

        if (strcmp(s, "NaN") == 0) {
            d = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
            d = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
            d = -INFINITY;
        } else {
            if (n == 0 || strspn(s, "0123456789.eE+-") != n || s[0] == '+')
                return in_fail(ci, NOT_A_NUMBER);
            d = strtod(s, &end);
            if (end != s + n)
                return in_fail(ci, NOT_A_NUMBER);
            if (isinf(d))
                return in_fail(ci, "value out of range for %s",
                               is_float ? "float" : "double");
        }
    } else {
        return in_fail(ci, "expected a number or \"NaN\", \"Infinity\", \"-Infinity\"");
    }
    /* Anything below FLT_MAX + half an ulp still rounds to FLT_MAX. */
    if (is_float && isfinite(d) && fabs(d) >= 0x1.ffffffp+127)
        return in_fail(ci, "value out of range for float");
    *out = d;
    return 0;
}

static int enum_name_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const ProtobufCEnumValueIndex *)elem)->name);
}

static int in_enum(struct codec_in *ci, const ProtobufCEnumDescriptor *ed,
                   const json_t *v, int *out)
{
    const ProtobufCEnumValueIndex *ix;
    int64_t x;
    int rc;

    if (json_is_string(v)) {
        ix = bsearch(json_string_value(v), ed->values_by_name, ed->n_value_names,
                     sizeof(*ix), enum_name_cmp);
        if (ix == NULL) {
            char shown[80];
            return in_fail(ci, "unknown value \"%s\" of enum %s",
                           err_key(shown, json_string_value(v)), ed->name);
        }
        *out = ed->values[ix->index].value;
        return 0;
    }
    if (!json_is_number(v))
        return in_fail(ci, "expected an enum value name or number");
    rc = in_signed(ci, v, INT32_MIN, INT32_MAX, PROTOBUF_C_TYPE_ENUM, &x);
    if (rc == 0)
        *out = (int)x;
    return rc;
}

static int in_message(struct codec_in *ci, const ProtobufCMessageDescriptor *d,
                      json_t *obj, ProtobufCMessage *m);

/* Stores one JSON value v of field fd at member. explicit is false for
 * proto3 implicit-presence fields, where an empty string needs no copy. */
static int in_value(struct codec_in *ci, const ProtobufCFieldDescriptor *fd,
                    json_t *v, void *member, int explicit)
{
    int64_t sx;
    uint64_t ux;
    double dx;
    int rc = 0;

    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = in_signed(ci, v, INT32_MIN, INT32_MAX, fd->type, &sx);
        if (rc == 0)
            *(int32_t *)member = (int32_t)sx;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        rc = in_signed(ci, v, INT64_MIN, INT64_MAX, fd->type, &sx);
        if (rc == 0)
            *(int64_t *)member = sx;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = in_unsigned(ci, v, UINT32_MAX, fd->type, &ux);
        if (rc == 0)
            *(uint32_t *)member = (uint32_t)ux;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = in_unsigned(ci, v, UINT64_MAX, fd->type, &ux);
        if (rc == 0)
            *(uint64_t *)member = ux;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        rc = in_double(ci, v, 1, &dx);
        if (rc == 0)
            *(float *)member = (float)dx;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = in_double(ci, v, 0, &dx);
        if (rc == 0)
            *(double *)member = dx;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return in_fail(ci, "expected true or false");
        *(protobuf_c_boolean *)member = json_is_true(v);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        rc = in_enum(ci, fd->descriptor, v, (int *)member);
        break;
    case PROTOBUF_C_TYPE_STRING: {
        size_t n;
        char *s;
        if (!json_is_string(v))
            return in_fail(ci, "expected a string");
        n = json_string_length(v);
        if (n == 0 && !explicit)
            break; /* the member already points at the empty default */
        s = malloc(n + 1);
        if (s == NULL)
            return BERTH_ENOMEM;
        memcpy(s, json_string_value(v), n + 1);
        *(char **)member = s;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = member;
        size_t n;
        unsigned char *p;
        long got;
        if (!json_is_string(v))
            return in_fail(ci, "expected a base64 string");
        n = json_string_length(v);
        if (n == 0)
            break; /* stays {0, NULL}, as protobuf-c unpacks empty bytes */
        p = malloc(n / 4 * 3 + 2);
        if (p == NULL)
            return BERTH_ENOMEM;
        got = b64_decode(json_string_value(v), n, p);
        if (got <= 0) {
            free(p);
            if (got < 0)
                return in_fail(ci, "invalid base64");
            break;
        }
        bd->data = p;
        bd->len = (size_t)got;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *sub;
        if (!json_is_object(v))
            return in_fail(ci, "expected an object");
        sub = msg_new(fd->descriptor);
        if (sub == NULL)
            return BERTH_ENOMEM;
        *(ProtobufCMessage **)member = sub; /* freed with the parent */
        rc = in_message(ci, fd->descriptor, v, sub);
        break;
    }
    }
    return rc;
}

/* Reads a map key, always a JSON object key, as key field fd. */
static int in_map_key(struct codec_in *ci, const ProtobufCFieldDescriptor *fd,
                      const char *key, size_t klen, void *member)
{
    json_t *v = NULL;
    int rc;

    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s;
        if (klen == 0)
            return 0;
        s = malloc(klen + 1);
        if (s == NULL)
            return BERTH_ENOMEM;
        memcpy(s, key, klen + 1);
        *(char **)member = s;
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(key, "true") == 0)
            *(protobuf_c_boolean *)member = 1;
        else if (strcmp(key, "false") == 0)
            *(protobuf_c_boolean *)member = 0;
        else
            return in_fail(ci, "map key must be \"true\" or \"false\"");
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return in_fail(ci, "unsupported map key type");
    default:
        /* Integers, as canonical decimal strings: "01" or "-0" would make
         * two JSON keys for one map key. */
        if ((klen > 1 && key[0] == '0') ||
            (klen > 1 && key[0] == '-' && key[1] == '0'))
            return in_fail(ci, "map key must be a decimal integer without leading zeros");
        v = json_stringn_nocheck(key, klen);
        if (v == NULL)
            return BERTH_ENOMEM;
        rc = in_value(ci, fd, v, member, 0);
        json_decref(v);
        return rc;
    }
}

static int in_map(struct codec_in *ci, const ProtobufCFieldDescriptor *fd,
                  json_t *v, ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0];
    const ProtobufCFieldDescriptor *vf = &ed->fields[1];
    ProtobufCMessage **arr;
    size_t n;
    size_t i = 0;
    void *it;
    int rc = 0;

    if (!json_is_object(v))
        return in_fail(ci, "expected an object (map)");
    n = json_object_size(v);
    if (n == 0)
        return 0;
    arr = calloc(n, sizeof(*arr));
    if (arr == NULL)
        return BERTH_ENOMEM;
    *(ProtobufCMessage ***)MEMBER(m, fd->offset) = arr;
    *(size_t *)MEMBER(m, fd->quantifier_offset) = n;
    for (it = json_object_iter(v); it != NULL && i < n;
         it = json_object_iter_next(v, it), i++) {
        const char *key = json_object_iter_key(it);
        json_t *val = json_object_iter_value(it);

        arr[i] = msg_new(ed);
        if (arr[i] == NULL)
            return BERTH_ENOMEM;
        in_push(ci, SEG_MAPKEY, key, 0);
        rc = in_map_key(ci, kf, key, json_object_iter_key_len(it),
                        MEMBER(arr[i], kf->offset));
        if (rc == 0 && json_is_null(val))
            rc = in_fail(ci, "null is not allowed as a map value");
        if (rc == 0)
            rc = in_value(ci, vf, val, MEMBER(arr[i], vf->offset),
                          vf->label != PROTOBUF_C_LABEL_NONE);
        in_pop(ci);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int in_array(struct codec_in *ci, const struct codec_field *cf,
                    json_t *v, ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *fd = cf->fd;
    char *arr;
    size_t n;
    size_t i;
    int rc;

    if (!json_is_array(v))
        return in_fail(ci, "expected an array");
    n = json_array_size(v);
    if (n == 0)
        return 0;
    /* calloc: NULL strings and messages are what free_unpacked expects of
     * elements not reached yet. */
    arr = calloc(n, cf->elem_size);
    if (arr == NULL)
        return BERTH_ENOMEM;
    *(void **)MEMBER(m, fd->offset) = arr;
    *(size_t *)MEMBER(m, fd->quantifier_offset) = n;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);

        in_push(ci, SEG_INDEX, NULL, i);
        if (json_is_null(e))
            rc = in_fail(ci, "null is not allowed in a repeated field");
        else
            rc = in_value(ci, fd, e, arr + i * cf->elem_size, 1);
        in_pop(ci);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Stores the JSON value v of field cf into m. */
static int in_field(struct codec_in *ci, const struct codec_field *cf,
                    json_t *v, ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *fd = cf->fd;

    if (json_is_null(v))
        return 0; /* the default, which m already holds */
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return cf->is_map ? in_map(ci, fd, v, m) : in_array(ci, cf, v, m);
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *oneof_case = (uint32_t *)MEMBER(m, fd->quantifier_offset);
        if (*oneof_case != 0 && *oneof_case != fd->id)
            return in_fail(ci, "another field of the same oneof is already set");
        /* Set before the value so that free_unpacked releases it. */
        *oneof_case = fd->id;
        return in_value(ci, fd, v, MEMBER(m, fd->offset), 1);
    }
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL &&
        fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)MEMBER(m, fd->quantifier_offset) = 1;
    return in_value(ci, fd, v, MEMBER(m, fd->offset),
                    fd->label != PROTOBUF_C_LABEL_NONE);
}

/* Fills m, a fresh message of type d, from the JSON object obj. */
static int in_message(struct codec_in *ci, const ProtobufCMessageDescriptor *d,
                      json_t *obj, ProtobufCMessage *m)
{
    struct codec_msg *owned = NULL;
    const struct codec_msg *info;
    unsigned i;
    void *it;
    int rc = 0;

    info = msg_info(d, &owned);
    if (info == NULL)
        return BERTH_ENOMEM;
    for (it = json_object_iter(obj); it != NULL && rc == 0;
         it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        const struct codec_field *cf = NULL;
        const char *alias = NULL;

        for (i = 0; i < info->n_fields; i++) {
            const struct codec_field *f = &info->f[i];
            if (klen == f->json_len && memcmp(key, f->json, klen) == 0) {
                cf = f;
                alias = f->has_alias ? f->name : NULL;
                break;
            }
            if (klen == f->name_len && memcmp(key, f->name, klen) == 0) {
                cf = f;
                alias = f->has_alias ? f->json : NULL;
                break;
            }
        }
        in_push(ci, SEG_FIELD, key, 0);
        if (cf == NULL)
            rc = in_fail(ci, "unknown field of %s", d->name);
        else if (alias != NULL && json_object_get(obj, alias) != NULL)
            rc = in_fail(ci, "set twice, also as \"%s\"", alias);
        else
            rc = in_field(ci, cf, json_object_iter_value(it), m);
        in_pop(ci);
    }
    /* proto2 only: protobuf-c cannot pack a missing required pointer */
    for (i = 0; rc == 0 && i < info->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = info->f[i].fd;
        if (fd->label == PROTOBUF_C_LABEL_REQUIRED &&
            (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE) &&
            *(void **)MEMBER(m, fd->offset) == NULL)
            rc = in_fail(ci, "required field \"%s\" of %s is missing",
                         info->f[i].json, d->name);
    }
    free(owned);
    return rc;
}

/* Returns whether the JSON text nests objects and arrays deeper than
 * CODEC_MAX_DEPTH. Checked before parsing so that jansson never builds a
 * deep tree; malformed text is left for jansson to report. */
static int json_too_deep(const char *p, size_t n)
{
    unsigned depth = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        char c = p[i];

        if (c == '"') { /* skip to the closing quote */
            for (;;) {
                const char *q = memchr(p + i + 1, '"', n - i - 1);
                size_t bs = 0;
                if (q == NULL)
                    return 0;
                i = (size_t)(q - p);
                while (p[i - 1 - bs] == '\\')
                    bs++;
                if (bs % 2 == 0)
                    break;
            }
        } else if (c == '{' || c == '[') {
            if (++depth > CODEC_MAX_DEPTH)
                return 1;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

int codec_from_json(const ProtobufCMessageDescriptor *d, const void *json,
                    size_t len, ProtobufCMessage **out, char *err,
                    size_t errlen)
{
    struct codec_in ci;
    ProtobufCMessage *m = NULL;
    json_t *root = NULL;
    json_error_t je;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (d == NULL || out == NULL || (json == NULL && len > 0)) {
        set_err(err, errlen, "invalid arguments");
        return BERTH_EINVAL;
    }
    if (len > CODEC_JSON_MAX) {
        set_err(err, errlen, "JSON document of %zu bytes is over the %u-byte limit",
                len, CODEC_JSON_MAX);
        rc = BERTH_ETOOBIG;
        goto out;
    }
    if (json_too_deep(json, len)) {
        set_err(err, errlen, "JSON nested deeper than %d levels", CODEC_MAX_DEPTH);
        rc = BERTH_EPROTO;
        goto out;
    }
    root = json_loadb(json != NULL ? json : "", len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        rc = json_error_code(&je) == json_error_out_of_memory ? BERTH_ENOMEM
                                                               : BERTH_EPROTO;
        set_err(err, errlen, "invalid JSON at line %d column %d: %s", je.line,
                je.column, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        set_err(err, errlen, "expected a JSON object for %s", d->name);
        rc = BERTH_EPROTO;
        goto out;
    }
    m = msg_new(d);
    if (m == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    ci.err = err;
    ci.errlen = errlen;
    ci.depth = 0;
    rc = in_message(&ci, d, root, m);
    if (rc == BERTH_ENOMEM)
        set_err(err, errlen, "out of memory");
out:
    json_decref(root);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
        err_clean(err, errlen);
    }
    *out = m;
    return rc;
}

/* ------------------------------------------------------------ protobuf */

/* Whether every string in m, and in its submessages, is valid UTF-8. */
static int msg_utf8_ok(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    unsigned f;

    for (f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        const void *member = CMEMBER(m, fd->offset);
        size_t i;
        size_t n;

        if (fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)CMEMBER(m, fd->quantifier_offset) != fd->id)
            continue;
        if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
            const void *p = *(const void *const *)member;
            if (p == NULL)
                continue;
            if (fd->type == PROTOBUF_C_TYPE_STRING ? !utf8_valid(p) : !msg_utf8_ok(p))
                return 0;
            continue;
        }
        n = *(const size_t *)CMEMBER(m, fd->quantifier_offset);
        for (i = 0; i < n; i++) {
            const void *p = (*(const void *const *const *)member)[i];
            if (p == NULL)
                continue;
            if (fd->type == PROTOBUF_C_TYPE_STRING ? !utf8_valid(p) : !msg_utf8_ok(p))
                return 0;
        }
    }
    return 1;
}

ProtobufCMessage *codec_unpack(const ProtobufCMessageDescriptor *d,
                               const void *data, size_t len)
{
    static const uint8_t empty[1];
    ProtobufCMessage *m;

    if (d == NULL || (data == NULL && len > 0))
        return NULL;
    m = protobuf_c_message_unpack(d, NULL, len, data != NULL ? data : empty);
    if (m != NULL && !msg_utf8_ok(m)) {
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
    }
    return m;
}

/* A ProtobufCBuffer appending to a buf, used when packing in place failed
 * and the exact reason is wanted. */
struct pack_sink {
    ProtobufCBuffer base;
    buf *b;
    int rc;
};

static void pack_sink_append(ProtobufCBuffer *pb, size_t n, const uint8_t *data)
{
    struct pack_sink *s = (struct pack_sink *)pb;

    if (s->rc == 0)
        s->rc = buf_append(s->b, data, n);
}

int codec_pack(const ProtobufCMessage *m, buf *out)
{
    struct pack_sink sink;
    size_t start;
    size_t n;
    uint8_t *p;

    if (m == NULL || out == NULL)
        return BERTH_EINVAL;
    n = protobuf_c_message_get_packed_size(m);
    p = (uint8_t *)buf_reserve(out, n);
    if (p != NULL) {
        protobuf_c_message_pack(m, p);
        buf_commit(out, n);
        return 0;
    }
    /* buf_reserve() does not say why; appending piecewise does. */
    start = out->len;
    sink.base.append = pack_sink_append;
    sink.b = out;
    sink.rc = 0;
    protobuf_c_message_pack_to_buffer(m, &sink.base);
    if (sink.rc != 0)
        buf_cut(out, start);
    return sink.rc;
}

int codec_pb_to_json(const ProtobufCMessageDescriptor *d, const void *data,
                     size_t len, buf *out, char *err, size_t errlen)
{
    ProtobufCMessage *m = NULL;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (d == NULL || out == NULL) {
        set_err(err, errlen, "invalid arguments");
        return BERTH_EINVAL;
    }
    m = codec_unpack(d, data, len);
    if (m == NULL) {
        set_err(err, errlen, "malformed protobuf for %s", d->name);
        rc = BERTH_EPROTO;
        goto out;
    }
    rc = codec_to_json(m, out);
    if (rc != 0)
        set_err(err, errlen, "writing JSON for %s: %s", d->name, berth_strerror(rc));
out:
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int codec_json_to_pb(const ProtobufCMessageDescriptor *d, const void *json,
                     size_t len, buf *out, char *err, size_t errlen)
{
    ProtobufCMessage *m = NULL;
    int rc;

    if (out == NULL) {
        set_err(err, errlen, "invalid arguments");
        return BERTH_EINVAL;
    }
    rc = codec_from_json(d, json, len, &m, err, errlen);
    if (rc != 0)
        goto out;
    rc = codec_pack(m, out);
    if (rc != 0)
        set_err(err, errlen, "packing %s: %s", d->name, berth_strerror(rc));
out:
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}
