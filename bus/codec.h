/* codec.h - protobuf binary and proto3 JSON forms of every bus message.
 *
 * The codec is driven only by protobuf-c descriptors: a message type added
 * to schemas/ is encoded and decoded without any per-message code. The JSON
 * side follows the proto3 JSON mapping (lowerCamelCase names, 64-bit
 * integers as strings, enums by name, bytes as base64, maps as objects);
 * docs/internals/codec.md lists the rules and the few deliberate limits.
 *
 * Every function is thread-safe. Messages returned by the decoders belong to
 * the caller, who frees them with protobuf_c_message_free_unpacked(m, NULL).
 */
#ifndef BERTH_BUS_CODEC_H
#define BERTH_BUS_CODEC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "common/buf.h"

#define CODEC_JSON_MAX (4u << 20) /* largest JSON document accepted */
#define CODEC_MAX_DEPTH 32        /* deepest nesting of objects and arrays */

/* Appends the proto3 JSON form of m to out. Returns 0, BERTH_ETOOBIG (out's
 * cap, or m nested deeper than CODEC_MAX_DEPTH) or BERTH_ENOMEM; on failure
 * out is left as it was. Fields holding their default value are omitted.
 * Strings that are not valid UTF-8 are written with U+FFFD replacing the
 * bad bytes, so the output is always valid JSON. */
int codec_to_json(const ProtobufCMessage *m, buf *out);

/* Parses len bytes of JSON as a message of type d. On success returns 0 and
 * *out is a new message the caller frees with
 * protobuf_c_message_free_unpacked(*out, NULL). On failure returns
 * BERTH_EPROTO (or BERTH_ETOOBIG above CODEC_JSON_MAX, BERTH_ENOMEM,
 * BERTH_EINVAL for a NULL d or out), *out is NULL and err (errlen bytes, may
 * be NULL) holds a one-line message naming the field path, e.g.
 * `field "spec.limits.memoryBytes": expected a number or numeric string`. */
int codec_from_json(const ProtobufCMessageDescriptor *d, const void *json,
                    size_t len, ProtobufCMessage **out, char *err,
                    size_t errlen);

/* Appends the protobuf binary form of m to out. Returns 0, BERTH_ETOOBIG or
 * BERTH_ENOMEM; on failure out is left as it was. */
int codec_pack(const ProtobufCMessage *m, buf *out);

/* Parses len bytes of protobuf binary as a message of type d. Returns NULL
 * on malformed input, including string fields that are not valid UTF-8
 * (proto3 requires it). The caller frees the result with
 * protobuf_c_message_free_unpacked(m, NULL). */
ProtobufCMessage *codec_unpack(const ProtobufCMessageDescriptor *d,
                               const void *data, size_t len);

/* Protobuf in, JSON appended to out. Returns 0, BERTH_EPROTO (malformed
 * input, described in err), BERTH_ETOOBIG or BERTH_ENOMEM. */
int codec_pb_to_json(const ProtobufCMessageDescriptor *d, const void *data,
                     size_t len, buf *out, char *err, size_t errlen);

/* JSON in, protobuf appended to out. Returns what codec_from_json() or
 * codec_pack() return; err describes a failure. */
int codec_json_to_pb(const ProtobufCMessageDescriptor *d, const void *json,
                     size_t len, buf *out, char *err, size_t errlen);

#endif
