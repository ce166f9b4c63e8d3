/* Which users row a Spotify login belongs to (src/identity.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/identity.h"

static struct identity_plan
plan_for(int has_account, long long by_account, long long by_spotify_id,
	 enum identity_account spotify_row_account)
{
	struct identity_rows rows = {has_account, by_account, by_spotify_id,
				     spotify_row_account};

	return identity_plan(&rows);
}

static void
test_nobody_known_is_a_new_row(void **state)
{
	struct identity_plan p = plan_for(1, 0, 0, IDENTITY_ACCOUNT_NONE);

	assert_int_equal(p.match, IDENTITY_NEW);
	assert_int_equal(p.user, 0);
	assert_int_equal(p.detach, 0);
	p = plan_for(0, 0, 0, IDENTITY_ACCOUNT_NONE);
	assert_int_equal(p.match, IDENTITY_NEW);
	assert_int_equal(p.user, 0);
}

static void
test_same_account_same_id_is_that_row(void **state)
{
	struct identity_plan p = plan_for(1, 7, 7, IDENTITY_ACCOUNT_SAME);

	assert_int_equal(p.match, IDENTITY_ACCOUNT);
	assert_int_equal(p.user, 7);
	assert_int_equal(p.detach, 0);
}

/* Spotify changed the user's id: same account, same row, new spotify_id. */
static void
test_renamed_user_is_found_by_account(void **state)
{
	struct identity_plan p = plan_for(1, 7, 0, IDENTITY_ACCOUNT_NONE);

	assert_int_equal(p.match, IDENTITY_ACCOUNT);
	assert_int_equal(p.user, 7);
	assert_int_equal(p.detach, 0);
}

/* A row from before account_id: linked at this login. */
static void
test_row_without_account_is_linked_by_spotify_id(void **state)
{
	struct identity_plan p = plan_for(1, 0, 3, IDENTITY_ACCOUNT_NONE);

	assert_int_equal(p.match, IDENTITY_LINKED);
	assert_int_equal(p.user, 3);
	assert_int_equal(p.detach, 0);
}

/*
 * The collision: row 3 holds the id (and no account_id), row 7 holds the
 * account. The account wins; row 3 gives the id up and is not merged.
 */
static void
test_account_row_wins_and_the_other_holder_of_the_id_is_detached(void **state)
{
	struct identity_plan p = plan_for(1, 7, 3, IDENTITY_ACCOUNT_NONE);

	assert_int_equal(p.match, IDENTITY_ACCOUNT);
	assert_int_equal(p.user, 7);
	assert_int_equal(p.detach, 3);
	p = plan_for(1, 7, 3, IDENTITY_ACCOUNT_OTHER);
	assert_int_equal(p.user, 7);
	assert_int_equal(p.detach, 3);
}

/* The id now belongs to another account than the row's: a new user. */
static void
test_id_reused_by_another_account_makes_a_new_row(void **state)
{
	struct identity_plan p = plan_for(1, 0, 3, IDENTITY_ACCOUNT_OTHER);

	assert_int_equal(p.match, IDENTITY_NEW);
	assert_int_equal(p.user, 0);
	assert_int_equal(p.detach, 3);
}

/* An answer without account_id: by spotify_id, as before, whatever the row holds. */
static void
test_profile_without_account_goes_by_spotify_id(void **state)
{
	struct identity_plan p = plan_for(0, 0, 3, IDENTITY_ACCOUNT_OTHER);

	assert_int_equal(p.match, IDENTITY_SPOTIFY_ID);
	assert_int_equal(p.user, 3);
	assert_int_equal(p.detach, 0);
	p = plan_for(0, 0, 3, IDENTITY_ACCOUNT_NONE);
	assert_int_equal(p.match, IDENTITY_SPOTIFY_ID);
	assert_int_equal(p.user, 3);
}

static void
test_match_names_are_distinct(void **state)
{
	assert_string_equal(identity_match_name(IDENTITY_NEW), "new");
	assert_string_equal(identity_match_name(IDENTITY_ACCOUNT), "account_id");
	assert_string_equal(identity_match_name(IDENTITY_LINKED), "linked");
	assert_string_equal(identity_match_name(IDENTITY_SPOTIFY_ID), "spotify_id");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nobody_known_is_a_new_row),
		cmocka_unit_test(test_same_account_same_id_is_that_row),
		cmocka_unit_test(test_renamed_user_is_found_by_account),
		cmocka_unit_test(test_row_without_account_is_linked_by_spotify_id),
		cmocka_unit_test(
			test_account_row_wins_and_the_other_holder_of_the_id_is_detached),
		cmocka_unit_test(test_id_reused_by_another_account_makes_a_new_row),
		cmocka_unit_test(test_profile_without_account_goes_by_spotify_id),
		cmocka_unit_test(test_match_names_are_distinct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
