/* codec_read.c - the proto3 JSON reader of the codec: codec_from_json().
 *
 * The reader parses with jansson, then walks the tree against the
 * descriptors and their field tables (codec_msg_info()), building the
 * message with malloc() so that protobuf_c_message_free_unpacked(m, NULL)
 * releases it (that function is also what cleans up a half-built message
 * after an error). Errors name the path to the offending value, kept as a
 * stack of segments during the walk.
 */
#include "bus/codec.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec_int.h"
#include "common/err.h"

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

/* Makes err one line of valid UTF-8 (jansson quotes raw input in its
 * messages): control characters and invalid bytes become '?'. */
static void err_clean(char *err, size_t errlen)
{
    unsigned char *p = (unsigned char *)err;

    if (err == NULL || errlen == 0)
        return;
    while (*p != '\0') {
        size_t n = codec_utf8_seq_len(p);
        if (n == 0 || *p < 0x20 || *p == 0x7f) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
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

    info = codec_msg_info(d, &owned);
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
        codec_set_err(err, errlen, "invalid arguments");
        return BERTH_EINVAL;
    }
    if (len > CODEC_JSON_MAX) {
        codec_set_err(err, errlen,
                      "JSON document of %zu bytes is over the %u-byte limit",
                      len, CODEC_JSON_MAX);
        rc = BERTH_ETOOBIG;
        goto out;
    }
    if (json_too_deep(json, len)) {
        codec_set_err(err, errlen, "JSON nested deeper than %d levels",
                      CODEC_MAX_DEPTH);
        rc = BERTH_EPROTO;
        goto out;
    }
    root = json_loadb(json != NULL ? json : "", len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        rc = json_error_code(&je) == json_error_out_of_memory ? BERTH_ENOMEM
                                                               : BERTH_EPROTO;
        codec_set_err(err, errlen, "invalid JSON at line %d column %d: %s",
                      je.line, je.column, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        codec_set_err(err, errlen, "expected a JSON object for %s", d->name);
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
        codec_set_err(err, errlen, "out of memory");
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
