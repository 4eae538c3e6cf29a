/* codec.c - tests of bus/codec.c: protobuf <-> proto3 JSON.
 *
 * The core test fills every message type of the registry generically (every
 * field non-default, repeated fields and maps with two elements, 64-bit
 * extremes, NaN and infinities, bytes that are not UTF-8) and checks that
 * protobuf -> JSON -> protobuf gives the same bytes and JSON -> protobuf ->
 * JSON the same text. The berth schemas use no floats, zigzag or fixed
 * integers, oneofs, proto2 presence or non-string map keys, so a small test
 * schema with all of those is declared by hand below, laid out exactly as
 * protoc-c 1.4.1 generates it.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec.h"
#include "bus/types.h"
#include "common/buf.h"
#include "common/err.h"
#include "tests/harness/unit.h"

#include "common.pb-c.h"
#include "console.pb-c.h"
#include "node.pb-c.h"
#include "shell.pb-c.h"
#include "site.pb-c.h"

/* ------------------------------------------------------------ test schema
 *
 *   syntax = "proto3"; package berth.test;
 *   enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; COLOR_BLUE = -2; }
 *   message Inner { string s = 1; int32 i = 2; }
 *   message Kitchen {
 *     float f = 1; sint32 s32 = 2; sint64 s64 = 3; fixed32 fx32 = 4;
 *     fixed64 fx64 = 5; sfixed32 sf32 = 6; sfixed64 sf64 = 7;
 *     oneof choice { string c_str = 10; Inner c_msg = 11; uint64 c_num = 12; }
 *     map<int32, string> by_int = 13; map<bool, Inner> by_bool = 14;
 *     map<uint64, Color> by_u64 = 15; repeated float rf = 16;
 *     repeated bool rb = 17; repeated Color rc = 18; repeated bytes rby = 19;
 *     Color color = 20; Inner inner = 21; repeated Inner inners = 22;
 *     double d = 23;
 *   }
 *   syntax = "proto2";
 *   message Legacy {
 *     optional int32 oi = 1; optional string os = 2 [default = "dflt"];
 *     optional bytes ob = 3; optional Legacy child = 4; required uint64 req = 5;
 *     optional bool obool = 6; optional double od = 7 [default = 1.5];
 *     repeated int32 packed_i = 8 [packed = true]; repeated int32 unpacked_i = 9;
 *     optional string os_nodef = 10;
 *   }
 *   message Req { required string name = 1; }
 */
typedef struct {
    ProtobufCMessage base;
    char *s;
    int32_t i;
} T_Inner;

typedef struct {
    ProtobufCMessage base;
    int32_t key;
    char *value;
} T_ByInt;

typedef struct {
    ProtobufCMessage base;
    protobuf_c_boolean key;
    T_Inner *value;
} T_ByBool;

typedef struct {
    ProtobufCMessage base;
    uint64_t key;
    int value;
} T_ByU64;

typedef struct {
    ProtobufCMessage base;
    float f;
    int32_t s32;
    int64_t s64;
    uint32_t fx32;
    uint64_t fx64;
    int32_t sf32;
    int64_t sf64;
    size_t n_by_int;
    T_ByInt **by_int;
    size_t n_by_bool;
    T_ByBool **by_bool;
    size_t n_by_u64;
    T_ByU64 **by_u64;
    size_t n_rf;
    float *rf;
    size_t n_rb;
    protobuf_c_boolean *rb;
    size_t n_rc;
    int *rc;
    size_t n_rby;
    ProtobufCBinaryData *rby;
    int color;
    T_Inner *inner;
    size_t n_inners;
    T_Inner **inners;
    double d;
    uint32_t choice_case;
    union {
        char *c_str;
        T_Inner *c_msg;
        uint64_t c_num;
    };
} T_Kitchen;

typedef struct T_Legacy {
    ProtobufCMessage base;
    protobuf_c_boolean has_oi;
    int32_t oi;
    char *os;
    protobuf_c_boolean has_ob;
    ProtobufCBinaryData ob;
    struct T_Legacy *child;
    uint64_t req;
    protobuf_c_boolean has_obool;
    protobuf_c_boolean obool;
    protobuf_c_boolean has_od;
    double od;
    size_t n_packed_i;
    int32_t *packed_i;
    size_t n_unpacked_i;
    int32_t *unpacked_i;
    char *os_nodef;
} T_Legacy;

typedef struct {
    ProtobufCMessage base;
    char *name;
} T_Req;

static const ProtobufCMessageDescriptor inner_desc, by_int_desc, by_bool_desc,
    by_u64_desc, kitchen_desc, legacy_desc, req_desc;

static char legacy_os_default[] = "dflt";
static const double legacy_od_default = 1.5;

#define INIT_FN(fn, T, desc, ...)                                              \
    static void fn(ProtobufCMessage *m)                                        \
    {                                                                          \
        static const T init = {PROTOBUF_C_MESSAGE_INIT(&desc), __VA_ARGS__};   \
        memcpy(m, &init, sizeof(init));                                        \
    }
INIT_FN(inner_init, T_Inner, inner_desc, (char *)protobuf_c_empty_string, 0)
INIT_FN(by_int_init, T_ByInt, by_int_desc, 0, (char *)protobuf_c_empty_string)
INIT_FN(by_bool_init, T_ByBool, by_bool_desc, 0, NULL)
INIT_FN(by_u64_init, T_ByU64, by_u64_desc, 0, 0)
INIT_FN(kitchen_init, T_Kitchen, kitchen_desc, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0,
        NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0,
        0, {NULL})
INIT_FN(legacy_init, T_Legacy, legacy_desc, 0, 0, legacy_os_default, 0,
        {0, NULL}, NULL, 0, 0, 0, 0, 1.5, 0, NULL, 0, NULL, NULL)
INIT_FN(req_init, T_Req, req_desc, NULL)

static const ProtobufCEnumValue color_values[] = {
    {"COLOR_BLUE", "T_COLOR_BLUE", -2},
    {"COLOR_UNSPECIFIED", "T_COLOR_UNSPECIFIED", 0},
    {"COLOR_RED", "T_COLOR_RED", 1},
};
static const ProtobufCIntRange color_ranges[] = {{-2, 0}, {0, 1}, {0, 3}};
static const ProtobufCEnumValueIndex color_by_name[] = {
    {"COLOR_BLUE", 0}, {"COLOR_RED", 2}, {"COLOR_UNSPECIFIED", 1}};
static const ProtobufCEnumDescriptor color_desc = {
    PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC, "berth.test.Color", "Color", "T_Color",
    "berth.test", 3, color_values, 3, color_by_name, 2, color_ranges,
    NULL, NULL, NULL, NULL};

#define FD(T, name, id, label, type, q, desc, def, flags)                     \
    {#name, id, PROTOBUF_C_LABEL_##label, PROTOBUF_C_TYPE_##type, q,           \
     offsetof(T, name), desc, def, flags, 0, NULL, NULL}
#define NONE(T, name, id, type, desc, def) FD(T, name, id, NONE, type, 0, desc, def, 0)
#define REP(T, name, id, type, desc, flags)                                   \
    FD(T, name, id, REPEATED, type, offsetof(T, n_##name), desc, NULL, flags)
#define ONEOF(T, name, id, type, desc, def)                                   \
    FD(T, name, id, NONE, type, offsetof(T, choice_case), desc, def,           \
       PROTOBUF_C_FIELD_FLAG_ONEOF)
#define OPT(T, name, id, type, desc, def)                                     \
    FD(T, name, id, OPTIONAL, type, offsetof(T, has_##name), desc, def, 0)
#define PK PROTOBUF_C_FIELD_FLAG_PACKED
#define ES (&protobuf_c_empty_string)

static const ProtobufCFieldDescriptor inner_fields[] = {
    NONE(T_Inner, s, 1, STRING, NULL, ES),
    NONE(T_Inner, i, 2, INT32, NULL, NULL),
};
static const ProtobufCFieldDescriptor by_int_fields[] = {
    NONE(T_ByInt, key, 1, INT32, NULL, NULL),
    NONE(T_ByInt, value, 2, STRING, NULL, ES),
};
static const ProtobufCFieldDescriptor by_bool_fields[] = {
    NONE(T_ByBool, key, 1, BOOL, NULL, NULL),
    NONE(T_ByBool, value, 2, MESSAGE, &inner_desc, NULL),
};
static const ProtobufCFieldDescriptor by_u64_fields[] = {
    NONE(T_ByU64, key, 1, UINT64, NULL, NULL),
    NONE(T_ByU64, value, 2, ENUM, &color_desc, NULL),
};
static const ProtobufCFieldDescriptor kitchen_fields[] = {
    NONE(T_Kitchen, f, 1, FLOAT, NULL, NULL),
    NONE(T_Kitchen, s32, 2, SINT32, NULL, NULL),
    NONE(T_Kitchen, s64, 3, SINT64, NULL, NULL),
    NONE(T_Kitchen, fx32, 4, FIXED32, NULL, NULL),
    NONE(T_Kitchen, fx64, 5, FIXED64, NULL, NULL),
    NONE(T_Kitchen, sf32, 6, SFIXED32, NULL, NULL),
    NONE(T_Kitchen, sf64, 7, SFIXED64, NULL, NULL),
    ONEOF(T_Kitchen, c_str, 10, STRING, NULL, ES),
    ONEOF(T_Kitchen, c_msg, 11, MESSAGE, &inner_desc, NULL),
    ONEOF(T_Kitchen, c_num, 12, UINT64, NULL, NULL),
    REP(T_Kitchen, by_int, 13, MESSAGE, &by_int_desc, 0),
    REP(T_Kitchen, by_bool, 14, MESSAGE, &by_bool_desc, 0),
    REP(T_Kitchen, by_u64, 15, MESSAGE, &by_u64_desc, 0),
    REP(T_Kitchen, rf, 16, FLOAT, NULL, PK),
    REP(T_Kitchen, rb, 17, BOOL, NULL, PK),
    REP(T_Kitchen, rc, 18, ENUM, &color_desc, PK),
    REP(T_Kitchen, rby, 19, BYTES, NULL, 0),
    NONE(T_Kitchen, color, 20, ENUM, &color_desc, NULL),
    NONE(T_Kitchen, inner, 21, MESSAGE, &inner_desc, NULL),
    REP(T_Kitchen, inners, 22, MESSAGE, &inner_desc, 0),
    NONE(T_Kitchen, d, 23, DOUBLE, NULL, NULL),
};
static const ProtobufCFieldDescriptor legacy_fields[] = {
    OPT(T_Legacy, oi, 1, INT32, NULL, NULL),
    FD(T_Legacy, os, 2, OPTIONAL, STRING, 0, NULL, legacy_os_default, 0),
    OPT(T_Legacy, ob, 3, BYTES, NULL, NULL),
    FD(T_Legacy, child, 4, OPTIONAL, MESSAGE, 0, &legacy_desc, NULL, 0),
    FD(T_Legacy, req, 5, REQUIRED, UINT64, 0, NULL, NULL, 0),
    OPT(T_Legacy, obool, 6, BOOL, NULL, NULL),
    OPT(T_Legacy, od, 7, DOUBLE, NULL, &legacy_od_default),
    REP(T_Legacy, packed_i, 8, INT32, NULL, PK),
    REP(T_Legacy, unpacked_i, 9, INT32, NULL, 0),
    FD(T_Legacy, os_nodef, 10, OPTIONAL, STRING, 0, NULL, NULL, 0),
};

static const ProtobufCFieldDescriptor req_fields[] = {
    FD(T_Req, name, 1, REQUIRED, STRING, 0, NULL, NULL, 0),
};

static const unsigned kv_by_name[] = {0, 1};
static const unsigned one_by_name[] = {0};
static const ProtobufCIntRange dense1[] = {{1, 0}, {0, 1}};
static const unsigned inner_by_name[] = {1, 0};
static const unsigned kitchen_by_name[] = {11, 10, 12, 8, 9, 7, 17, 20, 0, 3, 4,
                                           18, 19, 14, 16, 15, 13, 1, 2, 5, 6};
static const unsigned legacy_by_name[] = {3, 2, 5, 6, 0, 1, 9, 7, 4, 8};
static const ProtobufCIntRange dense2[] = {{1, 0}, {0, 2}};
static const ProtobufCIntRange dense10[] = {{1, 0}, {0, 10}};
static const ProtobufCIntRange kitchen_ranges[] = {{1, 0}, {10, 7}, {0, 21}};

#define MD(full, short, T, fields, by_name, nr, ranges, init)                  \
    {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, full, short, #T, "berth.test",      \
     sizeof(T), sizeof(fields) / sizeof(fields[0]), fields, by_name, nr,       \
     ranges, init, NULL, NULL, NULL}
static const ProtobufCMessageDescriptor inner_desc =
    MD("berth.test.Inner", "Inner", T_Inner, inner_fields, inner_by_name, 1,
       dense2, inner_init);
static const ProtobufCMessageDescriptor by_int_desc =
    MD("berth.test.Kitchen.ByIntEntry", "ByIntEntry", T_ByInt, by_int_fields,
       kv_by_name, 1, dense2, by_int_init);
static const ProtobufCMessageDescriptor by_bool_desc =
    MD("berth.test.Kitchen.ByBoolEntry", "ByBoolEntry", T_ByBool,
       by_bool_fields, kv_by_name, 1, dense2, by_bool_init);
static const ProtobufCMessageDescriptor by_u64_desc =
    MD("berth.test.Kitchen.ByU64Entry", "ByU64Entry", T_ByU64, by_u64_fields,
       kv_by_name, 1, dense2, by_u64_init);
static const ProtobufCMessageDescriptor kitchen_desc =
    MD("berth.test.Kitchen", "Kitchen", T_Kitchen, kitchen_fields,
       kitchen_by_name, 2, kitchen_ranges, kitchen_init);
static const ProtobufCMessageDescriptor legacy_desc =
    MD("berth.test.Legacy", "Legacy", T_Legacy, legacy_fields, legacy_by_name,
       1, dense10, legacy_init);

static const ProtobufCMessageDescriptor req_desc =
    MD("berth.test.Req", "Req", T_Req, req_fields, one_by_name, 1, dense1, req_init);

static const ProtobufCMessageDescriptor *const test_types[] = {
    &inner_desc, &by_int_desc, &by_bool_desc, &by_u64_desc,
    &kitchen_desc, &legacy_desc, &req_desc, NULL};

/* ------------------------------------------------------------ helpers */

#define BIG (64u << 20)

static ProtobufCMessage *msg_new(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);

    ck_assert_ptr_nonnull(m);
    protobuf_c_message_init(d, m);
    return m;
}

/* Returns the JSON of m as a string the caller frees. */
static char *to_json(const ProtobufCMessage *m)
{
    buf b;
    char *s;

    buf_init(&b, BIG);
    ck_assert_int_eq(codec_to_json(m, &b), 0);
    s = buf_detach(&b, NULL);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Parses json as d, expecting success; the caller frees the result. */
static ProtobufCMessage *parse_ok(const ProtobufCMessageDescriptor *d,
                                  const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[256];
    int rc = codec_from_json(d, json, strlen(json), &m, err, sizeof(err));

    ck_assert_msg(rc == 0, "%s: %s (rc %d) for %s", d->short_name, err, rc, json);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* Expects json to be rejected as d with rc and an error containing want. */
static void parse_bad_rc(const ProtobufCMessageDescriptor *d, const char *json,
                         size_t len, int want_rc, const char *want)
{
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    char err[256];
    int rc = codec_from_json(d, json, len, &m, err, sizeof(err));

    ck_assert_msg(rc == want_rc, "%s: rc %d, want %d for %.200s (%s)",
                  d->short_name, rc, want_rc, json, err);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\" for %.200s",
                  err, want, json);
    for (const char *c = err; *c != '\0'; c++)
        ck_assert_msg((unsigned char)*c >= 0x20, "control character in \"%s\"", err);
}

static void parse_bad(const ProtobufCMessageDescriptor *d, const char *json,
                      const char *want)
{
    parse_bad_rc(d, json, strlen(json), BERTH_EPROTO, want);
}

/* JSON in, canonical JSON out must equal want. */
static void canon(const ProtobufCMessageDescriptor *d, const char *json,
                  const char *want)
{
    ProtobufCMessage *m = parse_ok(d, json);
    char *s = to_json(m);

    ck_assert_msg(strcmp(s, want) == 0, "%s: got %s\nwant %s", d->short_name, s, want);
    free(s);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ------------------------------------------------------------ generic fill */

static const int32_t i32s[8] = {INT32_MIN, INT32_MAX, -1, 1, 7, -123456, 42, 100};
static const uint32_t u32s[8] = {UINT32_MAX, 1, 2147483648u, 42, 7, 65535, 3, 100};
static const int64_t i64s[8] = {INT64_MIN, INT64_MAX, -1, 9007199254740993,
                                7, -9007199254740993, 42, 100};
static const uint64_t u64s[8] = {UINT64_MAX, 1, 9223372036854775808u,
                                 9007199254740993u, 7, 18446744073709551614u, 42, 100};
static const char *const strs[8] = {
    "h\u00e9llo \"w\u00f6rld\"\n\t\\ \x01\x1f \u2713 \U0001F600",
    "plain", "", "</script>\u2028", "a b", "snake_case", "{\"json\":1}", "\x7f del"};
static const struct {
    const char *p;
    size_t n;
} bins[8] = {{"\xff\x00\xfe\x80\x61", 5}, {"\x00", 1}, {"\xfb\xff", 2},
             {"\xff\xfe\xfd", 3}, {"", 0}, {"\xc3\x28\xa0\xa1", 4},
             {"abcdefg", 7}, {"\xfe", 1}};

static float f32_at(unsigned v)
{
    const float t[8] = {-FLT_MAX, FLT_MIN, NAN, 0.1f, -0.0f, INFINITY, -INFINITY, 1e-45f};
    return t[v % 8];
}

static double f64_at(unsigned v)
{
    const double t[8] = {-DBL_MAX, DBL_MIN, NAN, 0.1, -0.0, INFINITY, -INFINITY, 4.9e-324};
    return t[v % 8];
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

static void fill(ProtobufCMessage *m, unsigned v, unsigned depth);

/* Stores value number v of fd's type at member. */
static void fill_one(const ProtobufCFieldDescriptor *fd, void *member,
                     unsigned v, unsigned depth)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)member = i32s[v % 8];
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)member = u32s[v % 8];
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        *(int64_t *)member = i64s[v % 8];
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)member = u64s[v % 8];
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)member = f32_at(v);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)member = f64_at(v);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)member = v % 2 == 0;
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = fd->descriptor;
        /* v 7: a number the enum does not name */
        *(int *)member = v % 8 == 7 ? 1000 : ed->values[(v + 1) % ed->n_values].value;
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        *(char **)member = strdup(strs[v % 8]);
        ck_assert_ptr_nonnull(*(char **)member);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = member;
        bd->len = bins[v % 8].n;
        bd->data = bd->len ? malloc(bd->len) : NULL;
        if (bd->len)
            memcpy(bd->data, bins[v % 8].p, bd->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *sub = msg_new(fd->descriptor);
        if (depth < 3)
            fill(sub, v + 1, depth + 1);
        *(ProtobufCMessage **)member = sub;
        break;
    }
    }
}

/* Sets every field of m (one member of each oneof, chosen by v). */
static void fill(ProtobufCMessage *m, unsigned v, unsigned depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    unsigned i;
    unsigned j;

    for (i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        char *member = (char *)m + fd->offset;
        char *q = (char *)m + fd->quantifier_offset;

        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            unsigned pos = 0;
            unsigned size = 0;
            for (j = 0; j < d->n_fields; j++) {
                if ((d->fields[j].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    d->fields[j].quantifier_offset == fd->quantifier_offset) {
                    if (j < i)
                        pos++;
                    size++;
                }
            }
            if (pos != v % size)
                continue;
            *(uint32_t *)q = fd->id;
            fill_one(fd, member, v, depth);
        } else if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t es = elem_size(fd->type);
            char *arr = calloc(2, es);
            ck_assert_ptr_nonnull(arr);
            for (j = 0; j < 2; j++)
                fill_one(fd, arr + j * es, v + j, depth);
            *(void **)member = arr;
            *(size_t *)q = 2;
        } else {
            if (fd->label == PROTOBUF_C_LABEL_OPTIONAL &&
                fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE)
                *(protobuf_c_boolean *)q = 1;
            fill_one(fd, member, v, depth);
        }
    }
}

/* pb -> JSON -> pb must give the same bytes, JSON -> pb -> JSON the same
 * text, and unpacking the bytes the same JSON again. */
static void roundtrip(const ProtobufCMessage *m, const char *label)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    ProtobufCMessage *m2 = NULL;
    ProtobufCMessage *m3;
    char err[256] = "";
    buf p1, p2;
    char *j1, *j2, *j3;
    int rc;

    buf_init(&p1, BIG);
    buf_init(&p2, BIG);
    ck_assert_int_eq(codec_pack(m, &p1), 0);
    j1 = to_json(m);
    rc = codec_from_json(d, j1, strlen(j1), &m2, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: %s\n%s", label, err, j1);
    ck_assert_int_eq(codec_pack(m2, &p2), 0);
    ck_assert_msg(p1.len == p2.len && memcmp(p1.data, p2.data, p1.len) == 0,
                  "%s: packed bytes differ after JSON (%zu vs %zu)\n%s", label,
                  p1.len, p2.len, j1);
    j2 = to_json(m2);
    ck_assert_msg(strcmp(j1, j2) == 0, "%s: JSON differs\n%s\n%s", label, j1, j2);
    m3 = codec_unpack(d, p1.data, p1.len);
    ck_assert_msg(m3 != NULL, "%s: unpack failed", label);
    j3 = to_json(m3);
    ck_assert_msg(strcmp(j1, j3) == 0, "%s: JSON of unpacked differs\n%s\n%s",
                  label, j1, j3);
    free(j1);
    free(j2);
    free(j3);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m3, NULL);
    buf_free(&p1);
    buf_free(&p2);
}

static void roundtrip_types(const ProtobufCMessageDescriptor *const *types)
{
    char label[128];
    unsigned i;
    unsigned v;

    for (i = 0; types[i] != NULL; i++) {
        for (v = 0; v < 8; v++) {
            ProtobufCMessage *m = msg_new(types[i]);
            fill(m, v, 0);
            snprintf(label, sizeof(label), "%s variant %u", types[i]->name, v);
            roundtrip(m, label);
            protobuf_c_message_free_unpacked(m, NULL);
        }
        /* and the empty message */
        {
            ProtobufCMessage *m = msg_new(types[i]);
            snprintf(label, sizeof(label), "%s empty", types[i]->name);
            roundtrip(m, label);
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
}

/* ------------------------------------------------------------ tests */

START_TEST(test_roundtrip_registry)
{
    unsigned n = 0;

    while (bus_types[n] != NULL)
        n++;
    ck_assert_uint_gt(n, 40);
    roundtrip_types(bus_types);
}
END_TEST

START_TEST(test_roundtrip_test_schema)
{
    roundtrip_types(test_types);
}
END_TEST

START_TEST(test_canonical_site_spec)
{
    static const char json[] =
        "{\"id\":\"s1\",\"name\":\"Blog\",\"command\":[\"nginx\",\"-g\"],"
        "\"env\":{\"A\":\"1\",\"B\":\"x=y\"},"
        "\"ports\":[{\"containerPort\":80,\"hostPort\":8080,\"protocol\":\"tcp\"}],"
        "\"limits\":{\"memoryBytes\":\"536870912\",\"cpuMillis\":500},"
        "\"stopTimeoutSeconds\":10,\"restart\":{\"mode\":\"MODE_ALWAYS\"},"
        "\"shouldRun\":true}";
    Berth__V1__SiteSpec *s;

    canon(&berth__v1__site_spec__descriptor, json, json);
    s = (Berth__V1__SiteSpec *)parse_ok(&berth__v1__site_spec__descriptor, json);
    ck_assert_str_eq(s->id, "s1");
    ck_assert_uint_eq(s->n_command, 2);
    ck_assert_str_eq(s->command[1], "-g");
    ck_assert_uint_eq(s->n_env, 2);
    ck_assert_str_eq(s->env[1]->key, "B");
    ck_assert_str_eq(s->env[1]->value, "x=y");
    ck_assert_uint_eq(s->ports[0]->host_port, 8080);
    ck_assert_uint_eq(s->limits->memory_bytes, 536870912);
    ck_assert_int_eq(s->restart->mode, BERTH__V1__RESTART_POLICY__MODE__MODE_ALWAYS);
    ck_assert_int_eq(s->should_run, 1);
    ck_assert_ptr_eq(s->image, protobuf_c_empty_string);
    protobuf_c_message_free_unpacked(&s->base, NULL);
}
END_TEST

START_TEST(test_output_format)
{
    Berth__V1__ConsoleChunk c = BERTH__V1__CONSOLE_CHUNK__INIT;
    Berth__V1__NodeStats ns = BERTH__V1__NODE_STATS__INIT;
    char *s;

    c.site_id = "a\"b\\c\n\x01\x7f\xc3\xa9\xff\xe2\x82";
    c.seq = UINT64_MAX;
    c.stream = BERTH__V1__CONSOLE_STREAM__CONSOLE_STREAM_STDERR;
    c.data.data = (uint8_t *)"\xfb\xff\xbf";
    c.data.len = 3;
    s = to_json(&c.base);
    ck_assert_str_eq(s, "{\"siteId\":\"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9\xef\xbf\xbd"
                        "\xef\xbf\xbd\xef\xbf\xbd\",\"seq\":\"18446744073709551615\","
                        "\"stream\":\"CONSOLE_STREAM_STDERR\",\"data\":\"+/+/\"}");
    free(s);
    c.data.len = 2; /* padding */
    c.site_id = "";
    c.seq = 0;
    c.stream = 0;
    s = to_json(&c.base);
    ck_assert_str_eq(s, "{\"data\":\"+/8=\"}");
    free(s);

    ns.cpu_percent = 12.5;
    ns.load1 = 0.1;
    ns.load5 = NAN;
    ns.load15 = -INFINITY;
    ns.at_ms = INT64_MIN;
    s = to_json(&ns.base);
    ck_assert_str_eq(s, "{\"atMs\":\"-9223372036854775808\",\"cpuPercent\":12.5,"
                        "\"load1\":0.1,\"load5\":\"NaN\",\"load15\":\"-Infinity\"}");
    free(s);
}
END_TEST

START_TEST(test_unknown_field)
{
    parse_bad(&berth__v1__site_spec__descriptor, "{\"id\":\"x\",\"bogus\":1}",
              "field \"bogus\": unknown field of berth.v1.SiteSpec");
    parse_bad(&berth__v1__site_create_request__descriptor,
              "{\"spec\":{\"limits\":{\"memoryBytez\":1}}}",
              "field \"spec.limits.memoryBytez\": unknown field of berth.v1.Limits");
    parse_bad(&berth__v1__site_spec__descriptor, "{\"Id\":\"x\"}", "\"Id\"");
    parse_bad(&berth__v1__site_spec__descriptor, "{\"nodeID\":\"x\"}", "unknown");
}
END_TEST

START_TEST(test_error_path)
{
    ProtobufCMessage *m = NULL;
    char err[256];
    static const char json[] = "{\"spec\":{\"limits\":{\"memoryBytes\":true}}}";
    int rc = codec_from_json(&berth__v1__site_create_request__descriptor, json,
                             strlen(json), &m, err, sizeof(err));

    ck_assert_int_eq(rc, BERTH_EPROTO);
    ck_assert_str_eq(err, "field \"spec.limits.memoryBytes\": expected a number or numeric string");
    parse_bad(&berth__v1__site_spec__descriptor, "{\"ports\":[{},{\"hostPort\":\"x\"}]}",
              "field \"ports[1].hostPort\": expected a number");
    parse_bad(&berth__v1__shell_open__descriptor, "{\"env\":{\"A\\nB\\\"\":5}}",
              "field \"env[A?B?]\": expected a string");
    /* a tiny or absent error buffer is fine */
    rc = codec_from_json(&berth__v1__site_create_request__descriptor, json,
                         strlen(json), &m, err, 4);
    ck_assert_int_eq(rc, BERTH_EPROTO);
    ck_assert_uint_eq(strlen(err), 3);
    rc = codec_from_json(&berth__v1__site_create_request__descriptor, json,
                         strlen(json), &m, NULL, 0);
    ck_assert_int_eq(rc, BERTH_EPROTO);
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(test_wrong_types)
{
    const ProtobufCMessageDescriptor *cc = &berth__v1__console_chunk__descriptor;
    const ProtobufCMessageDescriptor *ss = &berth__v1__site_spec__descriptor;

    parse_bad(cc, "{\"siteId\":5}", "field \"siteId\": expected a string");
    parse_bad(cc, "{\"siteId\":[\"a\"]}", "expected a string");
    parse_bad(cc, "{\"siteId\":true}", "expected a string");
    parse_bad(cc, "{\"seq\":\"abc\"}", "field \"seq\": expected a number or numeric string");
    parse_bad(cc, "{\"seq\":\"\"}", "expected a number");
    parse_bad(cc, "{\"seq\":\" 1\"}", "expected a number");
    parse_bad(cc, "{\"seq\":\"+1\"}", "expected a number");
    parse_bad(cc, "{\"seq\":\"0x10\"}", "expected a number");
    parse_bad(cc, "{\"seq\":true}", "expected a number");
    parse_bad(cc, "{\"seq\":{}}", "expected a number");
    parse_bad(cc, "{\"data\":5}", "field \"data\": expected a base64 string");
    parse_bad(cc, "{\"stream\":true}", "expected an enum value name or number");
    parse_bad(ss, "{\"command\":{}}", "field \"command\": expected an array");
    parse_bad(ss, "{\"command\":\"ls\"}", "expected an array");
    parse_bad(ss, "{\"command\":[1]}", "field \"command[0]\": expected a string");
    parse_bad(ss, "{\"env\":[]}", "field \"env\": expected an object");
    parse_bad(ss, "{\"env\":\"A=1\"}", "expected an object");
    parse_bad(ss, "{\"limits\":5}", "field \"limits\": expected an object");
    parse_bad(ss, "{\"limits\":[]}", "expected an object");
    parse_bad(ss, "{\"ports\":[5]}", "field \"ports[0]\": expected an object");
    parse_bad(ss, "{\"shouldRun\":\"true\"}", "field \"shouldRun\": expected true or false");
    parse_bad(ss, "{\"shouldRun\":1}", "expected true or false");
    parse_bad(&berth__v1__node_stats__descriptor, "{\"cpuPercent\":\"x\"}",
              "expected a number");
    parse_bad(&berth__v1__node_stats__descriptor, "{\"cpuPercent\":\"nan\"}",
              "expected a number");
    parse_bad(&berth__v1__node_stats__descriptor, "{\"cpuPercent\":\"1e5x\"}",
              "expected a number");
    parse_bad(&berth__v1__node_stats__descriptor, "{\"cpuPercent\":true}",
              "expected a number or \"NaN\"");
    parse_bad(&berth__v1__site_spec__descriptor, "[]", "expected a JSON object");
}
END_TEST

START_TEST(test_numbers)
{
    const ProtobufCMessageDescriptor *cc = &berth__v1__console_chunk__descriptor;
    const ProtobufCMessageDescriptor *ex = &berth__v1__shell_exit__descriptor;
    const ProtobufCMessageDescriptor *ns = &berth__v1__node_stats__descriptor;
    const ProtobufCMessageDescriptor *rr = &berth__v1__console_replay_request__descriptor;
    const ProtobufCMessageDescriptor *ch = &berth__v1__command_result__descriptor;

    /* uint64 */
    canon(cc, "{\"seq\":\"18446744073709551615\"}", "{\"seq\":\"18446744073709551615\"}");
    canon(cc, "{\"seq\":9007199254740993}", "{\"seq\":\"9007199254740993\"}");
    canon(cc, "{\"seq\":1e3}", "{\"seq\":\"1000\"}");
    canon(cc, "{\"seq\":\"007\"}", "{\"seq\":\"7\"}");
    canon(cc, "{\"seq\":\"-0\"}", "{}");
    canon(cc, "{\"seq\":9223372036854775807}", "{\"seq\":\"9223372036854775807\"}");
    parse_bad(cc, "{\"seq\":\"18446744073709551616\"}", "field \"seq\": value out of range for uint64");
    parse_bad(cc, "{\"seq\":\"99999999999999999999999\"}", "out of range for uint64");
    parse_bad(cc, "{\"seq\":18446744073709551616}", "invalid JSON"); /* jansson: too big */
    parse_bad(cc, "{\"seq\":-1}", "out of range for uint64");
    parse_bad(cc, "{\"seq\":\"-1\"}", "out of range for uint64");
    parse_bad(cc, "{\"seq\":1.5}", "expected an integer");
    parse_bad(cc, "{\"seq\":1e19}", "send it as a string");
    parse_bad(cc, "{\"seq\":1e20}", "out of range");
    parse_bad(cc, "{\"seq\":1e400}", "invalid JSON");
    /* int64 */
    canon(ch, "{\"finishedMs\":\"-9223372036854775808\"}", "{\"finishedMs\":\"-9223372036854775808\"}");
    canon(ch, "{\"finishedMs\":-9223372036854775808}", "{\"finishedMs\":\"-9223372036854775808\"}");
    canon(ch, "{\"finishedMs\":-5e1}", "{\"finishedMs\":\"-50\"}");
    parse_bad(ch, "{\"finishedMs\":\"9223372036854775808\"}", "out of range for int64");
    parse_bad(ch, "{\"finishedMs\":\"-9223372036854775809\"}", "out of range for int64");
    parse_bad(ch, "{\"finishedMs\":\"--1\"}", "expected a number");
    parse_bad(ch, "{\"finishedMs\":\"-\"}", "expected a number");
    parse_bad(ch, "{\"finishedMs\":9.3e18}", "out of range for int64");
    /* int32 */
    canon(ex, "{\"exitCode\":\"-2147483648\"}", "{\"exitCode\":-2147483648}");
    canon(ex, "{\"exitCode\":2147483647}", "{\"exitCode\":2147483647}");
    canon(ex, "{\"exitCode\":-1.0}", "{\"exitCode\":-1}");
    parse_bad(ex, "{\"exitCode\":2147483648}", "field \"exitCode\": value out of range for int32");
    parse_bad(ex, "{\"exitCode\":\"-2147483649\"}", "out of range for int32");
    parse_bad(ex, "{\"exitCode\":0.5}", "expected an integer");
    /* uint32 */
    canon(rr, "{\"maxBytes\":4294967295}", "{\"maxBytes\":4294967295}");
    canon(rr, "{\"maxBytes\":\"12\"}", "{\"maxBytes\":12}");
    parse_bad(rr, "{\"maxBytes\":4294967296}", "out of range for uint32");
    parse_bad(rr, "{\"maxBytes\":-1}", "out of range for uint32");
    /* double */
    canon(ns, "{\"cpuPercent\":\"NaN\",\"load1\":\"Infinity\",\"load5\":\"-Infinity\"}",
          "{\"cpuPercent\":\"NaN\",\"load1\":\"Infinity\",\"load5\":\"-Infinity\"}");
    canon(ns, "{\"cpuPercent\":\"1.5e2\",\"load1\":3,\"load5\":-0.0,\"load15\":1e-320}",
          "{\"cpuPercent\":150,\"load1\":3,\"load15\":9.99988867182683e-321}");
    canon(ns, "{\"cpuPercent\":1.7976931348623157e308}", "{\"cpuPercent\":1.7976931348623157e+308}");
    canon(ns, "{\"cpuPercent\":0.30000000000000004}", "{\"cpuPercent\":0.30000000000000004}");
    parse_bad(ns, "{\"cpuPercent\":\"1e400\"}", "out of range for double");
    parse_bad(ns, "{\"cpuPercent\":1e400}", "invalid JSON");
    parse_bad(ns, "{\"cpuPercent\":\"+1\"}", "expected a number");
    parse_bad(ns, "{\"cpuPercent\":\"inf\"}", "expected a number");
}
END_TEST

START_TEST(test_floats)
{
    const ProtobufCMessageDescriptor *k = &kitchen_desc;
    T_Kitchen *m;

    canon(k, "{\"f\":3.4028234663852886e38}", "{\"f\":3.4028235e+38}");
    canon(k, "{\"f\":\"3.4028235e38\"}", "{\"f\":3.4028235e+38}");
    canon(k, "{\"f\":0.1}", "{\"f\":0.1}");
    canon(k, "{\"f\":1e-46}", "{}"); /* underflows to zero */
    canon(k, "{\"f\":-1e-45}", "{\"f\":-1.4013e-45}");
    canon(k, "{\"rf\":[-0.0,0,\"NaN\",1]}", "{\"rf\":[-0.0,0,\"NaN\",1]}");
    parse_bad(k, "{\"f\":3.5e38}", "field \"f\": value out of range for float");
    parse_bad(k, "{\"f\":\"-1e39\"}", "out of range for float");
    m = (T_Kitchen *)parse_ok(k, "{\"rf\":[-0.0]}");
    ck_assert(signbit(m->rf[0]));
    protobuf_c_message_free_unpacked(&m->base, NULL);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    const ProtobufCMessageDescriptor *cc = &berth__v1__console_chunk__descriptor;
    static const char bad1[] = "{\"siteId\":\"a\xff\"}";
    static const char bad2[] = "{\"siteId\":\"\xc0\xaf\"}";      /* overlong */
    static const char bad3[] = "{\"siteId\":\"\xed\xa0\x80\"}";  /* surrogate */

    parse_bad(cc, bad1, "invalid JSON");
    parse_bad(cc, bad2, "invalid JSON");
    parse_bad(cc, bad3, "invalid JSON");
    parse_bad(cc, "{\"siteId\":\"\\ud800\"}", "invalid JSON");
    parse_bad(cc, "{\"siteId\":\"a\\u0000b\"}", "invalid JSON");
    parse_bad(cc, "{\"siteId\":\"\\\n\x01\"}", "invalid JSON"); /* echoed by jansson */
    canon(cc, "{\"siteId\":\"\\ud83d\\ude00\\u00e9\\u0001\"}",
          "{\"siteId\":\"\xf0\x9f\x98\x80\xc3\xa9\\u0001\"}");
}
END_TEST

/* Returns JSON nesting n arrays inside the command field (depth n + 1). */
static char *nested(unsigned n)
{
    char *s = malloc(2 * n + 32);
    size_t k = 0;
    unsigned i;

    ck_assert_ptr_nonnull(s);
    k += (size_t)sprintf(s, "{\"command\":");
    for (i = 0; i < n; i++)
        s[k++] = '[';
    s[k++] = '"';
    s[k++] = '[';
    s[k++] = '"';
    for (i = 0; i < n; i++)
        s[k++] = ']';
    s[k++] = '}';
    s[k] = '\0';
    return s;
}

START_TEST(test_deep_nesting)
{
    const ProtobufCMessageDescriptor *ss = &berth__v1__site_spec__descriptor;
    T_Legacy *chain[40];
    char *s;
    buf b;
    unsigned i;

    s = nested(31); /* 32 levels: allowed, then rejected by type */
    parse_bad(ss, s, "field \"command[0]\": expected a string");
    free(s);
    s = nested(32);
    parse_bad(ss, s, "JSON nested deeper than 32 levels");
    free(s);
    s = nested(5000);
    parse_bad(ss, s, "deeper than 32");
    free(s);
    /* brackets inside strings (and escaped quotes) do not count */
    parse_bad(ss, "{\"id\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\",\"x\":1}",
              "field \"x\": unknown field");

    /* Legacy.child nests without limit in memory: 32 levels are written and
     * read back, 33 are refused on output. */
    for (i = 0; i < 40; i++) {
        chain[i] = (T_Legacy *)msg_new(&legacy_desc);
        if (i > 0)
            chain[i - 1]->child = chain[i];
    }
    chain[31]->child = NULL;
    roundtrip(&chain[0]->base, "32 levels");
    chain[31]->child = chain[32];
    buf_init(&b, BIG);
    ck_assert_int_eq(codec_to_json(&chain[0]->base, &b), BERTH_ETOOBIG);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
    protobuf_c_message_free_unpacked(&chain[0]->base, NULL);
}
END_TEST

START_TEST(test_oversized)
{
    size_t n = CODEC_JSON_MAX;
    char *s = malloc(n + 2);
    ProtobufCMessage *m;

    ck_assert_ptr_nonnull(s);
    memset(s, ' ', n + 1);
    s[0] = '{';
    s[n - 1] = '}';
    /* exactly the limit: accepted */
    m = NULL;
    ck_assert_int_eq(codec_from_json(&berth__v1__empty__descriptor, s, n, &m, NULL, 0), 0);
    protobuf_c_message_free_unpacked(m, NULL);
    /* one more byte: refused before parsing */
    s[n] = '\0';
    parse_bad_rc(&berth__v1__empty__descriptor, s, n + 1, BERTH_ETOOBIG, "limit");
    free(s);
}
END_TEST

START_TEST(test_empty_object)
{
    static const char *const docs[] = {"{}", "  {  }\n", "{\"siteId\":\"\",\"seq\":0,\"data\":\"\"}"};
    unsigned i;

    for (i = 0; i < 3; i++) {
        ProtobufCMessage *m = parse_ok(&berth__v1__console_chunk__descriptor, docs[i]);
        Berth__V1__ConsoleChunk *c = (Berth__V1__ConsoleChunk *)m;
        ck_assert_uint_eq(protobuf_c_message_get_packed_size(m), 0);
        ck_assert_ptr_eq(c->site_id, protobuf_c_empty_string);
        ck_assert_ptr_null(c->data.data);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    canon(&berth__v1__site_reply__descriptor, "{\"spec\":{}}", "{\"spec\":{}}");
    parse_bad(&berth__v1__console_chunk__descriptor, "", "invalid JSON");
    parse_bad(&berth__v1__console_chunk__descriptor, "null", "invalid JSON");
}
END_TEST

START_TEST(test_enums)
{
    const ProtobufCMessageDescriptor *st = &berth__v1__site_status__descriptor;
    Berth__V1__SiteStatus *s;

    s = (Berth__V1__SiteStatus *)parse_ok(st, "{\"state\":\"SITE_STATE_RUNNING\"}");
    ck_assert_int_eq(s->state, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    s = (Berth__V1__SiteStatus *)parse_ok(st, "{\"state\":3}");
    ck_assert_int_eq(s->state, BERTH__V1__SITE_STATE__SITE_STATE_RUNNING);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    canon(st, "{\"state\":3}", "{\"state\":\"SITE_STATE_RUNNING\"}");
    canon(st, "{\"state\":99}", "{\"state\":99}");
    canon(st, "{\"state\":\"SITE_STATE_UNSPECIFIED\"}", "{}");
    canon(&kitchen_desc, "{\"color\":\"COLOR_BLUE\",\"rc\":[-2,\"COLOR_RED\",0,7]}",
          "{\"rc\":[\"COLOR_BLUE\",\"COLOR_RED\",\"COLOR_UNSPECIFIED\",7],\"color\":\"COLOR_BLUE\"}");
    parse_bad(st, "{\"state\":\"SITE_STATE_FLYING\"}",
              "field \"state\": unknown value \"SITE_STATE_FLYING\" of enum berth.v1.SiteState");
    parse_bad(st, "{\"state\":\"running\"}", "unknown value");
    parse_bad(st, "{\"state\":\"3\"}", "unknown value");
    parse_bad(st, "{\"state\":2147483648}", "out of range");
    parse_bad(st, "{\"state\":1.5}", "expected an integer");
}
END_TEST

START_TEST(test_base64)
{
    const ProtobufCMessageDescriptor *cc = &berth__v1__console_chunk__descriptor;
    static const char *const good[] = {"+/8=", "+/8", "-_8=", "-_8"};
    static const char *const bad[] = {"QQ=", "Q", "Q===", "@@@@", "QQ==QQ==",
                                      "QQ= =", "QUJD\\n", "=", "QUJDR"};
    char json[64];
    unsigned i;

    for (i = 0; i < 4; i++) {
        Berth__V1__ConsoleChunk *c;
        snprintf(json, sizeof(json), "{\"data\":\"%s\"}", good[i]);
        c = (Berth__V1__ConsoleChunk *)parse_ok(cc, json);
        ck_assert_uint_eq(c->data.len, 2);
        ck_assert_int_eq(memcmp(c->data.data, "\xfb\xff", 2), 0);
        protobuf_c_message_free_unpacked(&c->base, NULL);
        canon(cc, json, "{\"data\":\"+/8=\"}");
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"data\":\"%s\"}", bad[i]);
        parse_bad(cc, json, "field \"data\": invalid base64");
    }
    canon(cc, "{\"data\":\"QUJD\"}", "{\"data\":\"QUJD\"}");
    canon(cc, "{\"data\":\"QUI\"}", "{\"data\":\"QUI=\"}");
    canon(cc, "{\"data\":\"QQ\"}", "{\"data\":\"QQ==\"}");
}
END_TEST

START_TEST(test_duplicates_and_garbage)
{
    const ProtobufCMessageDescriptor *cc = &berth__v1__console_chunk__descriptor;

    parse_bad(cc, "{\"siteId\":\"a\",\"siteId\":\"b\"}", "invalid JSON");
    parse_bad(cc, "{\"siteId\":\"a\",\"site_id\":\"b\"}", "set twice");
    parse_bad(cc, "{\"site_id\":null,\"siteId\":\"b\"}", "set twice");
    parse_bad(&berth__v1__site_spec__descriptor, "{\"env\":{\"A\":\"1\",\"A\":\"2\"}}",
              "invalid JSON");
    parse_bad(cc, "{} x", "invalid JSON");
    parse_bad(cc, "{}{}", "invalid JSON");
    parse_bad(cc, "{\"seq\":1}]", "invalid JSON");
    parse_bad(cc, "{\"seq\":1,}", "invalid JSON");
    parse_bad(cc, "{\"seq\":1", "invalid JSON");
    parse_bad(cc, "{'seq':1}", "invalid JSON");
}
END_TEST

START_TEST(test_names)
{
    const ProtobufCMessageDescriptor *ss = &berth__v1__site_spec__descriptor;
    static const char want[] = "{\"nodeId\":\"n\",\"readOnlyRoot\":true,\"httpPort\":8080}";

    canon(ss, "{\"node_id\":\"n\",\"read_only_root\":true,\"http_port\":8080}", want);
    canon(ss, "{\"nodeId\":\"n\",\"read_only_root\":true,\"httpPort\":8080}", want);
    canon(&kitchen_desc, "{\"by_int\":{\"1\":\"x\"},\"byBool\":{}}", "{\"byInt\":{\"1\":\"x\"}}");
}
END_TEST

START_TEST(test_nulls)
{
    const ProtobufCMessageDescriptor *ss = &berth__v1__site_spec__descriptor;

    canon(ss, "{\"id\":null,\"command\":null,\"env\":null,\"limits\":null,"
              "\"shouldRun\":null,\"stopTimeoutSeconds\":null,\"name\":\"x\"}",
          "{\"name\":\"x\"}");
    canon(&berth__v1__console_chunk__descriptor, "{\"data\":null,\"stream\":null}", "{}");
    parse_bad(ss, "{\"command\":[\"a\",null]}",
              "field \"command[1]\": null is not allowed in a repeated field");
    parse_bad(ss, "{\"env\":{\"A\":null}}", "field \"env[A]\": null is not allowed as a map value");
    canon(&kitchen_desc, "{\"cStr\":null,\"cNum\":\"5\"}", "{\"cNum\":\"5\"}");
}
END_TEST

START_TEST(test_oneof)
{
    const ProtobufCMessageDescriptor *k = &kitchen_desc;
    T_Kitchen *m;

    canon(k, "{\"cStr\":\"\"}", "{\"cStr\":\"\"}");
    canon(k, "{\"cNum\":0}", "{\"cNum\":\"0\"}");
    canon(k, "{\"cMsg\":{}}", "{\"cMsg\":{}}");
    parse_bad(k, "{\"cStr\":\"x\",\"cNum\":1}",
              "field \"cNum\": another field of the same oneof is already set");
    parse_bad(k, "{\"cMsg\":{\"s\":\"x\"},\"c_str\":\"y\"}", "same oneof");
    parse_bad(k, "{\"cMsg\":{\"s\":1}}", "field \"cMsg.s\": expected a string");
    m = (T_Kitchen *)parse_ok(k, "{\"cMsg\":{\"i\":3}}");
    ck_assert_uint_eq(m->choice_case, 11);
    ck_assert_int_eq(m->c_msg->i, 3);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}
END_TEST

START_TEST(test_maps)
{
    const ProtobufCMessageDescriptor *k = &kitchen_desc;

    canon(k,
          "{\"byInt\":{\"-5\":\"x\",\"0\":\"\"},\"byBool\":{\"true\":{},\"false\":{\"i\":1}},"
          "\"byU64\":{\"18446744073709551615\":\"COLOR_RED\",\"1\":0}}",
          "{\"byInt\":{\"-5\":\"x\",\"0\":\"\"},\"byBool\":{\"true\":{},\"false\":{\"i\":1}},"
          "\"byU64\":{\"18446744073709551615\":\"COLOR_RED\",\"1\":\"COLOR_UNSPECIFIED\"}}");
    parse_bad(k, "{\"byInt\":{\"x\":\"y\"}}", "field \"byInt[x]\": expected a number");
    parse_bad(k, "{\"byInt\":{\"2147483648\":\"y\"}}", "out of range for int32");
    parse_bad(k, "{\"byInt\":{\" 1\":\"y\"}}", "expected a number");
    parse_bad(k, "{\"byInt\":{\"1\":\"a\",\"01\":\"b\"}}", "field \"byInt[01]\": map key must be");
    parse_bad(k, "{\"byInt\":{\"-0\":\"y\"}}", "without leading zeros");
    parse_bad(k, "{\"byInt\":{\"\":\"y\"}}", "expected a number");
    parse_bad(k, "{\"byInt\":{\"-\":\"y\"}}", "expected a number");
    parse_bad(k, "{\"byBool\":{\"yes\":{}}}", "field \"byBool[yes]\": map key must be");
    parse_bad(k, "{\"byU64\":{\"-1\":0}}", "out of range for uint64");
    parse_bad(k, "{\"byU64\":{\"1\":\"COLOR_GREEN\"}}", "unknown value");
    canon(&berth__v1__shell_open__descriptor, "{\"env\":{\"\":\"\",\"\\u00e9\":\"v\"}}",
          "{\"env\":{\"\":\"\",\"\xc3\xa9\":\"v\"}}");
}
END_TEST

START_TEST(test_proto2_presence)
{
    const ProtobufCMessageDescriptor *l = &legacy_desc;
    T_Legacy *m;

    canon(l, "{}", "{\"req\":\"0\"}");
    canon(l, "{\"oi\":0,\"obool\":false,\"od\":1.5,\"ob\":\"\",\"os\":\"dflt\",\"osNodef\":\"\"}",
          "{\"oi\":0,\"os\":\"dflt\",\"ob\":\"\",\"req\":\"0\",\"obool\":false,\"od\":1.5,"
          "\"osNodef\":\"\"}");
    m = (T_Legacy *)parse_ok(l, "{\"child\":{\"child\":{}}}");
    ck_assert_ptr_eq(m->os, legacy_os_default);
    ck_assert_int_eq(m->has_od, 0);
    ck_assert(m->od == 1.5);
    ck_assert_ptr_nonnull(m->child->child);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    canon(l, "{\"packedI\":[1,-1],\"unpacked_i\":[2]}",
          "{\"req\":\"0\",\"packedI\":[1,-1],\"unpackedI\":[2]}");
    canon(&req_desc, "{\"name\":\"\"}", "{\"name\":\"\"}");
    parse_bad(&req_desc, "{}", "required field \"name\" of berth.test.Req is missing");
    parse_bad(&req_desc, "{\"name\":null}", "is missing");
}
END_TEST

START_TEST(test_unpack)
{
    const ProtobufCMessageDescriptor *cc = &berth__v1__console_chunk__descriptor;
    static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char trunc_varint[] = {0x10, 0x80};
    static const unsigned char trunc_len[] = {0x0a, 0x05, 'a'};
    static const unsigned char bad_wire[] = {0x0a, 0x01, 0xff}; /* site_id "\xff" */
    static const unsigned char good[] = {0x0a, 0x01, 'a', 0x10, 0x05};
    ProtobufCMessage *m;
    char err[128];
    buf b;

    ck_assert_ptr_null(codec_unpack(cc, garbage, sizeof(garbage)));
    ck_assert_ptr_null(codec_unpack(cc, trunc_varint, sizeof(trunc_varint)));
    ck_assert_ptr_null(codec_unpack(cc, trunc_len, sizeof(trunc_len)));
    ck_assert_ptr_null(codec_unpack(cc, bad_wire, sizeof(bad_wire)));
    ck_assert_ptr_null(codec_unpack(cc, NULL, 3));
    m = codec_unpack(cc, NULL, 0);
    ck_assert_ptr_nonnull(m);
    protobuf_c_message_free_unpacked(m, NULL);
    m = codec_unpack(cc, good, sizeof(good));
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(((Berth__V1__ConsoleChunk *)m)->site_id, "a");
    protobuf_c_message_free_unpacked(m, NULL);

    buf_init(&b, 1024);
    ck_assert_int_eq(codec_pb_to_json(cc, good, sizeof(good), &b, err, sizeof(err)), 0);
    ck_assert_str_eq(b.data, "{\"siteId\":\"a\",\"seq\":\"5\"}");
    buf_reset(&b);
    ck_assert_int_eq(codec_pb_to_json(cc, garbage, sizeof(garbage), &b, err, sizeof(err)),
                     BERTH_EPROTO);
    ck_assert_str_eq(err, "malformed protobuf for berth.v1.ConsoleChunk");
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(codec_json_to_pb(cc, b.data, 0, &b, err, sizeof(err)), BERTH_EPROTO);
    ck_assert_int_eq(codec_json_to_pb(cc, "{\"siteId\":\"a\",\"seq\":5}",
                                      strlen("{\"siteId\":\"a\",\"seq\":5}"), &b, err,
                                      sizeof(err)), 0);
    ck_assert_uint_eq(b.len, sizeof(good));
    ck_assert_int_eq(memcmp(b.data, good, sizeof(good)), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_caps)
{
    Berth__V1__ConsoleChunk c = BERTH__V1__CONSOLE_CHUNK__INIT;
    static uint8_t data[10000];
    buf b;

    c.site_id = "site";
    c.data.data = data;
    c.data.len = sizeof(data);
    buf_init(&b, 1000);
    ck_assert_int_eq(buf_puts(&b, "keep"), 0);
    ck_assert_int_eq(codec_to_json(&c.base, &b), BERTH_ETOOBIG);
    ck_assert_str_eq(b.data, "keep");
    ck_assert_int_eq(codec_pack(&c.base, &b), BERTH_ETOOBIG);
    ck_assert_str_eq(b.data, "keep");
    c.data.len = 100;
    ck_assert_int_eq(codec_pack(&c.base, &b), 0);
    ck_assert_uint_eq(b.len, 4 + protobuf_c_message_get_packed_size(&c.base));
    buf_free(&b);
    /* a JSON output exactly at the cap fits */
    c.data.len = 0;
    buf_init(&b, strlen("{\"siteId\":\"site\"}"));
    ck_assert_int_eq(codec_to_json(&c.base, &b), 0);
    buf_free(&b);
    buf_init(&b, strlen("{\"siteId\":\"site\"}") - 1);
    ck_assert_int_eq(codec_to_json(&c.base, &b), BERTH_ETOOBIG);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
}
END_TEST

/* Large values cross the writer's staging buffer in every way. */
START_TEST(test_large_values)
{
    Berth__V1__ConsoleChunk c = BERTH__V1__CONSOLE_CHUNK__INIT;
    size_t sizes[] = {0, 1, 2, 3, 3071, 3072, 3073, 4095, 4096, 4097, 100000};
    unsigned char *data = malloc(100000);
    char *text = malloc(100001);
    unsigned i;
    size_t j;

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(text);
    for (j = 0; j < 100000; j++) {
        data[j] = (unsigned char)(j * 7 + 3);
        text[j] = j % 13 == 0 ? '\n' : (char)('a' + j % 26);
    }
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        text[sizes[i]] = '\0';
        c.site_id = text;
        c.data.data = data;
        c.data.len = sizes[i];
        roundtrip(&c.base, "large");
        text[sizes[i]] = 'x';
    }
    free(data);
    free(text);
}
END_TEST

START_TEST(test_bad_args)
{
    ProtobufCMessage *m = NULL;
    buf b;

    buf_init(&b, 100);
    ck_assert_int_eq(codec_from_json(NULL, "{}", 2, &m, NULL, 0), BERTH_EINVAL);
    ck_assert_int_eq(codec_from_json(&berth__v1__empty__descriptor, "{}", 2, NULL, NULL, 0),
                     BERTH_EINVAL);
    ck_assert_int_eq(codec_to_json(NULL, &b), BERTH_EINVAL);
    ck_assert_int_eq(codec_pack(NULL, &b), BERTH_EINVAL);
    ck_assert_ptr_null(codec_unpack(NULL, "", 0));
    buf_free(&b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("bus/codec");
    TCase *tc = tcase_create("codec");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_roundtrip_registry);
    tcase_add_test(tc, test_roundtrip_test_schema);
    tcase_add_test(tc, test_canonical_site_spec);
    tcase_add_test(tc, test_output_format);
    tcase_add_test(tc, test_unknown_field);
    tcase_add_test(tc, test_error_path);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_floats);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_oversized);
    tcase_add_test(tc, test_empty_object);
    tcase_add_test(tc, test_enums);
    tcase_add_test(tc, test_base64);
    tcase_add_test(tc, test_duplicates_and_garbage);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_nulls);
    tcase_add_test(tc, test_oneof);
    tcase_add_test(tc, test_maps);
    tcase_add_test(tc, test_proto2_presence);
    tcase_add_test(tc, test_unpack);
    tcase_add_test(tc, test_caps);
    tcase_add_test(tc, test_large_values);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
