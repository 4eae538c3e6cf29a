/* types.c - lookup in the generated message registry. */
#include "types.h"

#include <string.h>

const ProtobufCMessageDescriptor *bus_type_find(const char *name)
{
    size_t i;

    if (name == NULL)
        return NULL;
    for (i = 0; bus_types[i] != NULL; i++) {
        const ProtobufCMessageDescriptor *d = bus_types[i];
        if (strcmp(d->name, name) == 0 || strcmp(d->short_name, name) == 0)
            return d;
    }
    return NULL;
}
