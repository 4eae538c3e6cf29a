/* clock.h - monotonic and wall time helpers. */
#ifndef BERTH_COMMON_CLOCK_H
#define BERTH_COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time (CLOCK_MONOTONIC) for measuring intervals and deadlines. */
int64_t clock_mono_ns(void);
int64_t clock_mono_ms(void);

/* Wall time in milliseconds since the Unix epoch, for timestamps only. */
int64_t clock_wall_ms(void);

/* Writes ms as "2026-11-22T03:50:01.123Z" into dst. Returns dst. */
char *clock_fmt_rfc3339(char *dst, size_t size, int64_t ms);

/* Sleeps for ms milliseconds, resuming after signals. */
void clock_sleep_ms(int64_t ms);

#endif
