/*
 * Monotonic time for deadlines and back-off: unaffected by changes to the
 * wall clock, and read through the vDSO (no system call).
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

#endif
