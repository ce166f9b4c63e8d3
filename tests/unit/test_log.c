/* Log lines: one per event, parseable, and immune to injected values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../src/log.h"

static const char *
after_timestamp(const char *line)
{
	const char *space = strchr(line, ' ');
	assert_non_null(space);
	assert_memory_equal(line, "ts=", 3);
	return space + 1;
}

/* The timestamp is UTC as strftime writes it, with milliseconds and Z. */
static void
test_timestamp_is_utc_in_iso_8601(void **state)
{
	char buf[128], want[32];
	struct tm tm;
	struct timespec before, after;

	/* log.c's clock: time() reads a coarser one, which can still say the
	 * last second when CLOCK_REALTIME has turned. */
	do {
		clock_gettime(CLOCK_REALTIME, &before);
		log_format(buf, sizeof(buf), LOG_INFO, "tick", NULL, 0);
		clock_gettime(CLOCK_REALTIME, &after);
	} while (before.tv_sec != after.tv_sec); /* the second turned: once more */
	gmtime_r(&before.tv_sec, &tm);
	strftime(want, sizeof(want), "ts=%Y-%m-%dT%H:%M:%S.", &tm);
	assert_memory_equal(buf, want, strlen(want));
	assert_memory_equal(buf + strlen(want) + 3, "Z level=info event=tick\n", 24);
}

static void
test_fields_are_written_as_logfmt(void **state)
{
	char buf[512];
	struct log_field f[] = {LOG_STR("path", "/healthz"), LOG_INT("status", 200),
				LOG_MS("duration_ms", 1.5)};

	log_format(buf, sizeof(buf), LOG_INFO, "request", f, 3);
	assert_string_equal(
		after_timestamp(buf),
		"level=info event=request path=/healthz status=200 duration_ms=1.500\n");
}

static void
test_to_the_journal_each_line_starts_with_its_syslog_priority(void **state)
{
	static const struct {
		enum log_level level;
		const char *prefix;
	} cases[] = {{LOG_DEBUG, "<7>ts="},
		     {LOG_INFO, "<6>ts="},
		     {LOG_WARN, "<4>ts="},
		     {LOG_ERROR, "<3>ts="}};
	char buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_set_journal(1);
		log_format(buf, sizeof(buf), cases[i].level, "e", NULL, 0);
		log_set_journal(0);
		assert_memory_equal(buf, cases[i].prefix, strlen(cases[i].prefix));
	}
	/* Not the journal: the line is logfmt from its first byte. */
	log_format(buf, sizeof(buf), LOG_ERROR, "e", NULL, 0);
	assert_memory_equal(buf, "ts=", 3);
}

static void
test_values_with_spaces_or_quotes_are_quoted_and_escaped(void **state)
{
	char buf[512];
	struct log_field f[] = {LOG_STR("reason", "say \"hi\" \\ now"),
				LOG_STR("empty", "")};

	log_format(buf, sizeof(buf), LOG_WARN, "x", f, 2);
	assert_string_equal(
		after_timestamp(buf),
		"level=warn event=x reason=\"say \\\"hi\\\" \\\\ now\" empty=\"\"\n");
}

static void
test_a_newline_in_a_value_cannot_start_a_forged_line(void **state)
{
	char buf[512];
	struct log_field f[] = {
		LOG_STR("path", "/a\nts=0 level=error event=forged\r\x01\xff")};

	log_format(buf, sizeof(buf), LOG_INFO, "request", f, 1);
	assert_int_equal(strchr(buf, '\n') - buf, (long)strlen(buf) - 1);
	assert_non_null(strstr(buf, "\\x0a"));
	assert_non_null(strstr(buf, "\\x0d\\x01\\xff"));
}

static void
test_long_values_are_cut_and_marked(void **state)
{
	char buf[2048], value[1000];
	struct log_field f[] = {LOG_STR("path", value)};

	memset(value, 'a', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	log_format(buf, sizeof(buf), LOG_INFO, "request", f, 1);
	assert_non_null(strstr(buf, "aaa...\n"));
	assert_true(strlen(buf) < 400);
}

static void
test_a_full_buffer_still_ends_the_line(void **state)
{
	char buf[64];
	struct log_field f[] = {
		LOG_STR("a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")};
	size_t len = log_format(buf, sizeof(buf), LOG_INFO, "request", f, 1);

	assert_true(len < sizeof(buf));
	assert_int_equal(buf[len - 1], '\n');
	assert_int_equal(buf[len], '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timestamp_is_utc_in_iso_8601),
		cmocka_unit_test(test_fields_are_written_as_logfmt),
		cmocka_unit_test(
			test_to_the_journal_each_line_starts_with_its_syslog_priority),
		cmocka_unit_test(
			test_values_with_spaces_or_quotes_are_quoted_and_escaped),
		cmocka_unit_test(test_a_newline_in_a_value_cannot_start_a_forged_line),
		cmocka_unit_test(test_long_values_are_cut_and_marked),
		cmocka_unit_test(test_a_full_buffer_still_ends_the_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
