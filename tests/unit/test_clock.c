/*
 * clock.h's dates without gmtime_r: each must read as gmtime_r and
 * strftime write it, over the range a token, a session or a log line can
 * name (1900 to 2400, leap days and century years among them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/clock.h"

static void
assert_as_libc(time_t t)
{
	char want[32], got[32];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
	clock_iso8601(t, got);
	if (strcmp(want, got) != 0)
		fail_msg("%lld: %s, not %s", (long long)t, got, want);
}

static void
test_every_day_from_1900_to_2400_reads_as_gmtime(void **state)
{
	/* each day's first and last second, and one in between */
	for (long long day = -25567; day < 157800; day++) {
		assert_as_libc((time_t)(day * 86400));
		assert_as_libc((time_t)(day * 86400 + 86399));
		assert_as_libc((time_t)(day * 86400 + (day * 7919) % 86400));
	}
}

static void
test_known_dates(void **state)
{
	char out[32];

	clock_iso8601(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	clock_iso8601(951782400, out); /* a century year's leap day */
	assert_string_equal(out, "2000-02-29T00:00:00Z");
	clock_iso8601(1796182980, out);
	assert_string_equal(out, "2026-12-02T03:43:00Z");
	clock_iso8601(-1, out);
	assert_string_equal(out, "1969-12-31T23:59:59Z");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_day_from_1900_to_2400_reads_as_gmtime),
		cmocka_unit_test(test_known_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
