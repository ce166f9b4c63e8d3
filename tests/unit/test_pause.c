/* The pause's arithmetic: its one-word form, keeping the later deadline,
 * seconds left, and the trigger's notification payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/pause.h"

static void
test_a_pause_packs_into_one_word_and_back(void **state)
{
	uint64_t p = pause_pack(123456789, PAUSE_QUOTA_EXCEEDED);

	assert_int_equal(pause_deadline(p), 123456789);
	assert_int_equal(pause_reason_of(p), PAUSE_QUOTA_EXCEEDED);
	p = pause_pack(42, PAUSE_SHORT_TERM);
	assert_int_equal(pause_deadline(p), 42);
	assert_int_equal(pause_reason_of(p), PAUSE_SHORT_TERM);
	/* the later deadline is the greater word, whatever the reasons */
	assert_true(pause_pack(1001, PAUSE_SHORT_TERM) >
		    pause_pack(1000, PAUSE_QUOTA_EXCEEDED));
	assert_int_equal(pause_deadline(pause_pack(-5, PAUSE_SHORT_TERM)), 0);
}

static void
test_the_later_deadline_is_kept(void **state)
{
	uint64_t slot = 0;

	assert_int_equal(pause_extend(&slot, pause_pack(5000, PAUSE_SHORT_TERM), 0), 1);
	assert_int_equal(pause_deadline(slot), 5000);
	/* an earlier deadline, even for the quota, changes nothing */
	assert_int_equal(pause_extend(&slot, pause_pack(4000, PAUSE_QUOTA_EXCEEDED), 0),
			 0);
	assert_int_equal(pause_deadline(slot), 5000);
	assert_int_equal(pause_reason_of(slot), PAUSE_SHORT_TERM);
	/* a later one replaces it, reason and all */
	assert_int_equal(pause_extend(&slot, pause_pack(9000, PAUSE_QUOTA_EXCEEDED), 0),
			 1);
	assert_int_equal(pause_deadline(slot), 9000);
	assert_int_equal(pause_reason_of(slot), PAUSE_QUOTA_EXCEEDED);
	assert_int_equal(pause_extend(&slot, pause_pack(9000, PAUSE_SHORT_TERM), 0), 0);
}

/* The same pause back from the database, a few milliseconds later: no news. */
static void
test_a_pause_within_the_slack_is_the_same_pause(void **state)
{
	uint64_t slot = pause_pack(10000, PAUSE_SHORT_TERM);

	assert_int_equal(pause_extend(&slot, pause_pack(10400, PAUSE_SHORT_TERM), 500),
			 0);
	assert_int_equal(pause_extend(&slot, pause_pack(10500, PAUSE_SHORT_TERM), 500),
			 0);
	assert_int_equal(pause_extend(&slot, pause_pack(10501, PAUSE_SHORT_TERM), 500),
			 1);
	assert_int_equal(pause_deadline(slot), 10501);
}

static void
test_seconds_left_round_up_and_stop_at_zero(void **state)
{
	assert_int_equal(pause_seconds_left(10000, 10000), 0);
	assert_int_equal(pause_seconds_left(10000, 12000), 0);
	assert_int_equal(pause_seconds_left(10001, 10000), 1);
	assert_int_equal(pause_seconds_left(11000, 10000), 1);
	assert_int_equal(pause_seconds_left(11001, 10000), 2);
	/* a Retry-After of an hour, read back at once */
	assert_int_equal(pause_seconds_left(3600 * 1000LL + 7, 7), 3600);
}

static void
test_notification_payload_is_read(void **state)
{
	enum pause_reason reason = PAUSE_SHORT_TERM;
	long long ms = -1;

	assert_int_equal(pause_parse_notification("quota_exceeded 3600000", &ms, &reason),
			 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(reason, PAUSE_QUOTA_EXCEEDED);
	assert_int_equal(pause_parse_notification("short_term 0", &ms, &reason), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(reason, PAUSE_SHORT_TERM);
	assert_string_equal(pause_reason_name(PAUSE_QUOTA_EXCEEDED), "quota_exceeded");
	assert_string_equal(pause_reason_name(PAUSE_SHORT_TERM), "short_term");
}

static void
test_notification_payload_that_is_not_ours_is_refused(void **state)
{
	const char *bad[] = {
		NULL,
		"",
		"short_term",
		"short_term ",
		"short 5",
		"short_terms 5",
		"Short_term 5",
		"short_term -5",
		"short_term 5 ",
		"short_term 5x",
		"short_term  5",
		"quota_exceeded 1e3",
		"short_term 1234567890123", /* more digits than any pause */
	};
	enum pause_reason reason;
	long long ms;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pause_parse_notification(bad[i], &ms, &reason), -1);
	assert_int_equal(
		pause_parse_notification("short_term 123456789012", &ms, &reason), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_pause_packs_into_one_word_and_back),
		cmocka_unit_test(test_the_later_deadline_is_kept),
		cmocka_unit_test(test_a_pause_within_the_slack_is_the_same_pause),
		cmocka_unit_test(test_seconds_left_round_up_and_stop_at_zero),
		cmocka_unit_test(test_notification_payload_is_read),
		cmocka_unit_test(test_notification_payload_that_is_not_ours_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
