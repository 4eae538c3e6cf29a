/* hbus.c - a connected bus for tests and benchmarks. */
#include <stdio.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "tests/harness/harness.h"

bus *h_bus_open(const char *url, const char *name)
{
    bus_opts o = {0};
    bus *b = NULL;

    o.url = url;
    o.service = name;
    o.version = "0.1.0";
    o.description = "integration test";
    if (bus_open(&b, &o) != 0 || bus_wait_connected(b, 5000) != 0) {
        fprintf(stderr, "harness: cannot connect %s to %s\n", name, url);
        exit(1);
    }
    return b;
}
