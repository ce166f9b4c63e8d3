/*
 * The Retry-After header of a 429 from Spotify, as spotify.c reads it (the
 * value as libcurl hands it over: a C string). Invariants: the wait is
 * always 1 to 3600 seconds; delta-seconds (RFC 9110: digits, any number
 * of them) are taken as sent within those bounds, anything else (HTTP
 * dates, signs, garbage) waits 1 second.
 */
#include "fuzz.h"

#include "../../src/spotify.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *value = fuzz_string(data, size);
	size_t len = strlen(value);
	long seconds = spotify_parse_retry_after(value), expected = 1;

	FUZZ_ASSERT(seconds >= 1 && seconds <= 3600);
	if (len > 0 && strspn(value, "0123456789") == len) {
		expected = 0;
		for (size_t i = 0; i < len && expected <= 3600; i++)
			expected = expected * 10 + (value[i] - '0');
		expected = expected < 1 ? 1 : expected > 3600 ? 3600 : expected;
	}
	FUZZ_ASSERT(seconds == expected);
	free(value);
	return 0;
}
