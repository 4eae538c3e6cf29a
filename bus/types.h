/* types.h - the registry of every message type defined in schemas/.
 *
 * The table is generated at build time from the protobuf-c headers, so a new
 * message in a .proto file is known to the codec, the catalog and berth-bus
 * without any hand-written code.
 */
#ifndef BERTH_BUS_TYPES_H
#define BERTH_BUS_TYPES_H

#include <protobuf-c/protobuf-c.h>

/* NULL-terminated list of every message descriptor of package berth.v1. */
extern const ProtobufCMessageDescriptor *const bus_types[];

/* Finds a type by full name ("berth.v1.SiteSpec") or short name
 * ("SiteSpec"). Returns NULL when unknown. */
const ProtobufCMessageDescriptor *bus_type_find(const char *name);

#endif
