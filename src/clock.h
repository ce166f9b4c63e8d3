/*
 * Time. Monotonic time for deadlines and back-off: unaffected by changes to
 * the wall clock, and read through the vDSO (no system call). Wall-clock
 * times in answers are ISO 8601 UTC, as the database writes them.
 */
#ifndef BAA_CLOCK_H
#define BAA_CLOCK_H

#include <time.h>

static inline long long
clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* t as "2026-12-02T03:43:00Z". */
static inline void
clock_iso8601(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#endif
