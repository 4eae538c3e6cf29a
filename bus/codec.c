/* codec.c - protobuf binary and proto3 JSON forms of every bus message.
 *
 * Everything here is driven by protobuf-c descriptors. For each message
 * type the codec lazily builds a small table (struct codec_msg) with the
 * lowerCamelCase JSON name of every field, the pre-rendered `"name":` key
 * the writer copies, whether a repeated field is really a map and the size
 * of one array element. The tables live in a fixed, lock-free hash table
 * keyed by descriptor address and are never freed, so the hot paths take no
 * lock and allocate nothing. This file holds those tables, the helpers the
 * JSON writer (codec_write.c) and reader (codec_read.c) share with it
 * through bus/codec_int.h, and the protobuf side: packing, unpacking with a
 * UTF-8 check, and the conversions between the two forms.
 */
#include "bus/codec.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec_int.h"
#include "common/err.h"

/* ------------------------------------------------------------ field tables */

#define CODEC_CACHE_SLOTS 1024u /* distinct message types cached; 2^10 */

static _Atomic(struct codec_msg *) codec_cache[CODEC_CACHE_SLOTS];

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
const struct codec_msg *codec_msg_info(const ProtobufCMessageDescriptor *d,
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

/* Returns the length of the valid UTF-8 sequence at p (1 to 4), or 0. p is
 * NUL-terminated, so a truncated sequence stops at the terminator. */
size_t codec_utf8_seq_len(const unsigned char *p)
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
        n = codec_utf8_seq_len(p);
        if (n == 0)
            return 0;
        p += n;
    }
    return 1;
}

/* Formats err as one line; err may be NULL. */
void codec_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Drops whatever was appended to b past len. */
void codec_buf_cut(buf *b, size_t len)
{
    b->len = len;
    if (b->data != NULL)
        b->data[len] = '\0';
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
        codec_buf_cut(out, start);
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
        codec_set_err(err, errlen, "invalid arguments");
        return BERTH_EINVAL;
    }
    m = codec_unpack(d, data, len);
    if (m == NULL) {
        codec_set_err(err, errlen, "malformed protobuf for %s", d->name);
        rc = BERTH_EPROTO;
        goto out;
    }
    rc = codec_to_json(m, out);
    if (rc != 0)
        codec_set_err(err, errlen, "writing JSON for %s: %s", d->name,
                      berth_strerror(rc));
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
        codec_set_err(err, errlen, "invalid arguments");
        return BERTH_EINVAL;
    }
    rc = codec_from_json(d, json, len, &m, err, errlen);
    if (rc != 0)
        goto out;
    rc = codec_pack(m, out);
    if (rc != 0)
        codec_set_err(err, errlen, "packing %s: %s", d->name,
                      berth_strerror(rc));
out:
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}
