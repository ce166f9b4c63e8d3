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

/* A UTC time of day and date, as the calendar has it. */
struct clock_civil {
	long long year;
	int month, day, hour, minute, second;
};

/*
 * t as a UTC date, from the clock alone: days to a civil date by Howard
 * Hinnant's civil_from_days, without gmtime_r and its time-zone lock (the
 * log formats lines in a signal handler too, and GET /me formats dates on
 * every read of a profile).
 */
static inline void
clock_civil(time_t t, struct clock_civil *out)
{
	long long days = (long long)t / 86400, secs = (long long)t % 86400;
	long long era, doe, yoe, doy, mp;

	if (secs < 0) { /* before 1970: the day before, and its time of day */
		secs += 86400;
		days--;
	}
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	out->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	out->month = (int)(mp < 10 ? mp + 3 : mp - 9);
	out->year = yoe + era * 400 + (out->month <= 2);
	out->hour = (int)(secs / 3600);
	out->minute = (int)(secs / 60 % 60);
	out->second = (int)(secs % 60);
}

/* n as exactly width digits (zero-padded) at out. */
static inline void
clock_digits(char *out, long long n, int width)
{
	while (width-- > 0) {
		out[width] = (char)('0' + n % 10);
		n /= 10;
	}
}

/* t as "2026-12-02T03:43:00Z" (years 0 to 9999). */
static inline void
clock_iso8601(time_t t, char out[32])
{
	struct clock_civil c;

	clock_civil(t, &c);
	clock_digits(out, c.year, 4);
	out[4] = '-';
	clock_digits(out + 5, c.month, 2);
	out[7] = '-';
	clock_digits(out + 8, c.day, 2);
	out[10] = 'T';
	clock_digits(out + 11, c.hour, 2);
	out[13] = ':';
	clock_digits(out + 14, c.minute, 2);
	out[16] = ':';
	clock_digits(out + 17, c.second, 2);
	out[19] = 'Z';
	out[20] = '\0';
}

#endif
