/* codec_int.h - internals shared by the three files of the codec.
 *
 * Private to the codec: only bus/codec.c, bus/codec_write.c and
 * bus/codec_read.c include it, and everything else goes through
 * bus/codec.h. It declares the per-type field tables built and cached in
 * codec.c, the member-access macros and the few helpers that more than one
 * of the three files uses.
 */
#ifndef BERTH_BUS_CODEC_INT_H
#define BERTH_BUS_CODEC_INT_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "common/buf.h"

#define MEMBER(m, off) ((char *)(m) + (off))
#define CMEMBER(m, off) ((const char *)(m) + (off))

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

/* Returns the table of d, from the cache or freshly built, or NULL when out
 * of memory. Only when the cache is full is the table private to this call:
 * *owned is then set and the caller frees it with free(); otherwise *owned
 * is NULL and the table lives for the rest of the process. */
const struct codec_msg *codec_msg_info(const ProtobufCMessageDescriptor *d,
                                       struct codec_msg **owned);

/* Returns the length of the valid UTF-8 sequence at p (1 to 4), or 0. p is
 * NUL-terminated, so a truncated sequence stops at the terminator. */
size_t codec_utf8_seq_len(const unsigned char *p);

/* Formats err (errlen bytes) as one line; err may be NULL. */
void codec_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Drops whatever was appended to b past len. */
void codec_buf_cut(buf *b, size_t len);

#endif
