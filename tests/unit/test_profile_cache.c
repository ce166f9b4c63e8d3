/*
 * The worker's cache of profiles, without a database: how many users it
 * holds, what a full bucket gives up, that a hit gives back every field
 * as it was read, the refusals (age, connection, a changed row), and that
 * a profile too long for an entry is not cached but read each time.
 *
 * The table lives for the whole test program: each test reads and writes
 * on an epoch of its own, on which what earlier tests left is no more
 * than room to take. The table of scopes is never emptied: the test that
 * fills it comes last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/profile_cache.h"

#define T0 1000000 /* a monotonic clock reading, in ms */
#define BUCKETS (PROFILE_CACHE_SLOTS / PROFILE_CACHE_WAYS)

static unsigned long epoch;
static struct user_profile in, out;

static void
new_epoch(void)
{
	epoch++;
}

/* What users_profile_read makes of a row as logins write it. */
static void
profile(long long id, struct user_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	snprintf(p->spotify_id, sizeof(p->spotify_id), "31l77y2al5lnn7mxfrmd4bp%05lld",
		 id % 100000);
	snprintf(p->account_id, sizeof(p->account_id), "acct%020lld", id);
	snprintf(p->display_name, sizeof(p->display_name), "Listener %lld", id);
	snprintf(p->token_expires_at, sizeof(p->token_expires_at),
		 "2026-12-02T15:00:00Z");
	p->authorized_at = 1800000000;
	snprintf(p->authorized_at_text, sizeof(p->authorized_at_text),
		 "2027-01-15T08:00:00Z");
	p->reauth_due_at = 1815552000;
	snprintf(p->reauth_due_at_text, sizeof(p->reauth_due_at_text),
		 "2027-07-14T08:00:00Z");
	snprintf(p->scope, sizeof(p->scope), "user-read-email user-read-private");
	p->has_scope = 1;
}

static int
put(long long id, long long now_ms)
{
	profile(id, &in);
	return profile_cache_put(&in, epoch, now_ms);
}

/* 1 when id's profile is served, with id's own name (and has says so). */
static int
hit(long long id, long long now_ms)
{
	char name[64];
	int has = profile_cache_has(id, epoch, now_ms);

	if (!profile_cache_get(id, epoch, now_ms, &out)) {
		assert_int_equal(has, 0);
		return 0;
	}
	assert_int_equal(has, 1);
	snprintf(name, sizeof(name), "Listener %lld", id);
	assert_int_equal(out.id, id);
	assert_string_equal(out.display_name, name);
	return 1;
}

/* users.id is a sequence: 16384 users, wherever it starts, all kept. */
static void
test_16384_users_are_all_kept(void **state)
{
	int missing = 0;

	for (long long first = 1; first <= 100001; first += 100000) {
		new_epoch();
		for (long long id = first; id < first + 16384; id++)
			assert_int_equal(put(id, T0), 0);
		for (long long id = first; id < first + 16384; id++)
			missing += !hit(id, T0);
	}
	assert_int_equal(missing, 0);
}

/* Every field comes back as it was read, strings and flags alike. */
static void
test_a_hit_gives_back_the_profile_as_read(void **state)
{
	struct user_profile want;

	new_epoch();
	profile(77, &want);
	want.needs_reauth = 1;
	want.scope_short = 1;
	snprintf(want.display_name, sizeof(want.display_name), "Zoë 🎧 \"quoted\"");
	assert_int_equal(profile_cache_put(&want, epoch, T0), 0);
	memset(&out, 'x', sizeof(out));
	assert_int_equal(profile_cache_get(77, epoch, T0, &out), 1);
	assert_int_equal(out.id, 77);
	assert_string_equal(out.spotify_id, want.spotify_id);
	assert_string_equal(out.account_id, want.account_id);
	assert_string_equal(out.display_name, want.display_name);
	assert_string_equal(out.token_expires_at, want.token_expires_at);
	assert_int_equal(out.authorized_at, want.authorized_at);
	assert_string_equal(out.authorized_at_text, want.authorized_at_text);
	assert_string_equal(out.reauth_due_at_text, want.reauth_due_at_text);
	assert_int_equal(out.reauth_due_at, want.reauth_due_at);
	assert_string_equal(out.scope, want.scope);
	assert_int_equal(out.needs_reauth, 1);
	assert_int_equal(out.has_scope, 1);
	assert_int_equal(out.scope_short, 1);
}

/* A row never logged into since baa stored scopes: no scope, no times. */
static void
test_empty_strings_and_no_scope_come_back_empty(void **state)
{
	new_epoch();
	profile(78, &in);
	in.account_id[0] = in.token_expires_at[0] = in.scope[0] = '\0';
	in.authorized_at_text[0] = in.reauth_due_at_text[0] = '\0';
	in.authorized_at = in.reauth_due_at = 0;
	in.has_scope = 0;
	assert_int_equal(profile_cache_put(&in, epoch, T0), 0);
	memset(&out, 'x', sizeof(out));
	assert_int_equal(hit(78, T0), 1);
	assert_string_equal(out.account_id, "");
	assert_string_equal(out.token_expires_at, "");
	assert_string_equal(out.authorized_at_text, "");
	assert_string_equal(out.scope, "");
	assert_int_equal(out.has_scope, 0);
	assert_int_equal(out.needs_reauth, 0);
}

/* Past PROFILE_CACHE_SLOTS users, a bucket keeps its 8 most recently read. */
static void
test_a_full_bucket_gives_up_the_least_recently_read(void **state)
{
	const int n = PROFILE_CACHE_WAYS;

	new_epoch();
	for (int i = 0; i < n; i++)
		assert_int_equal(put(3 + (long long)i * BUCKETS, T0 + i), 0);
	assert_int_equal(put(3, T0 + n), 0); /* read again: the most recent */
	assert_int_equal(put(3 + (long long)n * BUCKETS, T0 + n + 1), 0);
	assert_int_equal(hit(3 + BUCKETS, T0 + n + 1), 0);
	assert_int_equal(hit(3, T0 + n + 1), 1);
	for (int i = 2; i <= n; i++)
		assert_int_equal(hit(3 + (long long)i * BUCKETS, T0 + n + 1), 1);
}

static void
test_a_profile_is_refused_once_too_old(void **state)
{
	new_epoch();
	assert_int_equal(put(5, T0), 0);
	assert_int_equal(hit(5, T0 + PROFILE_CACHE_TTL_MS - 1), 1);
	assert_int_equal(hit(5, T0 + PROFILE_CACHE_TTL_MS), 0);
}

/* A connection lost may have lost notifications: nothing read on it is trusted. */
static void
test_a_profile_read_on_another_connection_is_refused(void **state)
{
	new_epoch();
	assert_int_equal(put(6, T0), 0);
	assert_int_equal(profile_cache_get(6, epoch + 1, T0, &out), 0);
	assert_int_equal(profile_cache_get(6, epoch - 1, T0, &out), 0);
	assert_int_equal(profile_cache_has(6, epoch + 1, T0), 0);
	assert_int_equal(hit(6, T0), 1);
}

/* NOTIFY of a changed row: that user's profile goes, its neighbours stay. */
static void
test_a_changed_users_profile_is_forgotten(void **state)
{
	new_epoch();
	assert_int_equal(put(9, T0), 0);
	assert_int_equal(put(10, T0), 0);
	assert_int_equal(put(9 + BUCKETS, T0), 0);
	profile_cache_forget(9);
	assert_int_equal(hit(9, T0), 0);
	assert_int_equal(hit(10, T0), 1);
	assert_int_equal(hit(9 + BUCKETS, T0), 1);
	profile_cache_forget(12345678); /* never cached: nothing happens */
	assert_int_equal(hit(10, T0), 1);
}

/* Strings up to PROFILE_CACHE_TEXT_MAX bytes in all fit; one more does not. */
static void
test_a_profile_too_long_is_not_cached_and_misses(void **state)
{
	size_t others;

	new_epoch();
	assert_int_equal(put(11, T0), 0); /* as it was: short */
	profile(11, &in);
	others = strlen(in.spotify_id) + strlen(in.account_id) +
		 strlen(in.token_expires_at) + strlen(in.authorized_at_text) +
		 strlen(in.reauth_due_at_text);
	memset(in.display_name, 'n', PROFILE_CACHE_TEXT_MAX - others);
	in.display_name[PROFILE_CACHE_TEXT_MAX - others] = '\0';
	assert_int_equal(profile_cache_put(&in, epoch, T0 + 1), 0);
	assert_int_equal(profile_cache_get(11, epoch, T0 + 1, &out), 1);
	assert_string_equal(out.display_name, in.display_name);

	/* Renamed to one byte more: the short name must not be served, nor any. */
	strcat(in.display_name, "n");
	assert_int_equal(profile_cache_put(&in, epoch, T0 + 2), -1);
	assert_int_equal(profile_cache_get(11, epoch, T0 + 2, &out), 0);

	/* A Spotify id as long as Spotify allows (256 bytes) is not kept either. */
	profile(12, &in);
	memset(in.spotify_id, 's', SPOTIFY_ID_MAX);
	in.spotify_id[SPOTIFY_ID_MAX] = '\0';
	assert_int_equal(profile_cache_put(&in, epoch, T0), -1);
	assert_int_equal(profile_cache_get(12, epoch, T0, &out), 0);
}

/* Only users.id values (from 1) are kept. */
static void
test_an_id_that_is_not_a_users_id_is_not_cached(void **state)
{
	new_epoch();
	assert_int_equal(put(0, T0), -1);
	assert_int_equal(profile_cache_get(0, epoch, T0, &out), 0);
	assert_int_equal(put(-3, T0), -1);
	assert_int_equal(profile_cache_get(-3, epoch, T0, &out), 0);
}

/*
 * Each distinct scope is kept once; when PROFILE_CACHE_SCOPES are kept,
 * a user with yet another is read from the database every time, while
 * users with a kept scope are still cached. Last: it fills the table.
 */
static void
test_a_scope_past_the_table_is_not_cached(void **state)
{
	int n = 0;

	new_epoch();
	for (;; n++) {
		profile(1000 + n, &in);
		snprintf(in.scope, sizeof(in.scope), "user-read-private scope-%d", n);
		if (profile_cache_put(&in, epoch, T0) < 0)
			break;
		assert_in_range(n, 0, PROFILE_CACHE_SCOPES - 1);
	}
	assert_int_equal(profile_cache_get(1000 + n, epoch, T0, &out), 0);
	for (int i = 0; i < n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "user-read-private scope-%d", i);
		assert_int_equal(hit(1000 + i, T0), 1);
		assert_string_equal(out.scope, want);
	}
	assert_int_equal(put(2000, T0), 0); /* the scope every other test used */
	assert_int_equal(hit(2000, T0), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_16384_users_are_all_kept),
		cmocka_unit_test(test_a_hit_gives_back_the_profile_as_read),
		cmocka_unit_test(test_empty_strings_and_no_scope_come_back_empty),
		cmocka_unit_test(test_a_full_bucket_gives_up_the_least_recently_read),
		cmocka_unit_test(test_a_profile_is_refused_once_too_old),
		cmocka_unit_test(test_a_profile_read_on_another_connection_is_refused),
		cmocka_unit_test(test_a_changed_users_profile_is_forgotten),
		cmocka_unit_test(test_a_profile_too_long_is_not_cached_and_misses),
		cmocka_unit_test(test_an_id_that_is_not_a_users_id_is_not_cached),
		cmocka_unit_test(test_a_scope_past_the_table_is_not_cached),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
