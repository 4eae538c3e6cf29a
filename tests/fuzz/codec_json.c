/* codec_json.c - libFuzzer target for the JSON side of bus/codec.c.
 *
 * The first input byte picks a message type from bus_types[], the rest is
 * JSON. Whatever decodes must encode, decode again to the same protobuf
 * bytes and encode again to the same text; a decoding failure must leave
 * no message and say why. Run with `make fuzz` (FUZZ_SECONDS=n).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/codec.h"
#include "bus/types.h"
#include "common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t n_types(void)
{
    size_t n = 0;

    while (bus_types[n] != NULL)
        n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *d;
    ProtobufCMessage *m1 = NULL;
    ProtobufCMessage *m2 = NULL;
    char err[256];
    buf j1, j2, p1, p2;
    int rc;

    if (size < 1)
        return 0;
    d = bus_types[data[0] % n_types()];
    buf_init(&j1, CODEC_JSON_MAX);
    buf_init(&j2, CODEC_JSON_MAX);
    buf_init(&p1, CODEC_JSON_MAX);
    buf_init(&p2, CODEC_JSON_MAX);

    rc = codec_from_json(d, data + 1, size - 1, &m1, err, sizeof(err));
    if (rc != 0) {
        if (m1 != NULL || err[0] == '\0' || strchr(err, '\n') != NULL)
            abort();
        goto out;
    }
    if (codec_to_json(m1, &j1) != 0)
        abort();
    rc = codec_from_json(d, j1.data, j1.len, &m2, err, sizeof(err));
    if (rc != 0)
        abort(); /* the codec's own output must read back */
    if (codec_pack(m1, &p1) != 0 || codec_pack(m2, &p2) != 0)
        abort();
    if (p1.len != p2.len || memcmp(p1.data, p2.data, p1.len) != 0)
        abort();
    if (codec_to_json(m2, &j2) != 0)
        abort();
    if (j1.len != j2.len || memcmp(j1.data, j2.data, j1.len) != 0)
        abort();
out:
    protobuf_c_message_free_unpacked(m1, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
    buf_free(&j1);
    buf_free(&j2);
    buf_free(&p1);
    buf_free(&p2);
    return 0;
}
