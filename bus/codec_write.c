/* codec_write.c - the proto3 JSON writer of the codec: codec_to_json().
 *
 * The writer walks a message against its field table (codec_msg_info()),
 * staging output in a stack buffer and appending it to the caller's buf in
 * large pieces. The presence rules mirror protobuf-c's packer exactly: a
 * field appears in the JSON form if and only if protobuf_c_message_pack()
 * would write it, so protobuf -> JSON -> protobuf is byte-identical.
 */
#include "bus/codec.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec_int.h"
#include "common/err.h"

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

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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
            n = codec_utf8_seq_len(p);
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
    info = codec_msg_info(m->descriptor, &owned);
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
        codec_buf_cut(out, start);
    return w.rc;
}
