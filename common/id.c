/* id.c - random UUIDs from the kernel's generator. */
#include "id.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>

#include "err.h"

int id_random(void *p, size_t n)
{
    unsigned char *b = p;

    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return BERTH_EIO;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int id_uuid(char out[ID_UUID_LEN + 1])
{
    unsigned char r[16];
    int rc;

    rc = id_random(r, sizeof(r));
    if (rc != 0)
        return rc;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, ID_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
             r[11], r[12], r[13], r[14], r[15]);
    return 0;
}

int id_uuid_valid(const char *s)
{
    int i;

    if (s == NULL)
        return 0;
    for (i = 0; i < ID_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return s[ID_UUID_LEN] == '\0';
}
