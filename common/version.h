/* version.h - the berth version, shared by every binary. */
#ifndef BERTH_COMMON_VERSION_H
#define BERTH_COMMON_VERSION_H

#define BERTH_VERSION "0.1.0"

#endif
