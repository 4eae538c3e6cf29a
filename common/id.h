/* id.h - identifiers: random UUIDs (version 4). */
#ifndef BERTH_COMMON_ID_H
#define BERTH_COMMON_ID_H

#include <stddef.h>

#define ID_UUID_LEN 36 /* without the terminator */

/* Writes a new random UUID ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower
 * case) into out. Returns 0 or BERTH_EIO when no randomness is available. */
int id_uuid(char out[ID_UUID_LEN + 1]);

/* Returns 1 when s is a UUID in canonical form (any version, either case). */
int id_uuid_valid(const char *s);

/* Fills p with n random bytes. Returns 0 or BERTH_EIO. */
int id_random(void *p, size_t n);

#endif
