/*
 * The worker's cache of checked sessions, without a database: how many
 * sessions it holds, which one a full pair of buckets gives up, and every
 * refusal (age, connection, the row's expiry, a user's sessions ended).
 *
 * The table lives for the whole test program: each test reads and writes
 * on an epoch of its own, on which what earlier tests left is no more
 * than room to take.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/crypto.h"
#include "../../src/session_cache.h"

#define NOW 1800000000
#define T0 1000000 /* a monotonic clock reading, in ms */
#define BUCKETS (SESSION_CACHE_SLOTS / SESSION_CACHE_WAYS)

static unsigned long epoch;

static void
new_epoch(void)
{
	epoch++;
}

/* A session key as a login makes it: the SHA-256 of a random id. */
static void
real_key(int n, unsigned char hash[32])
{
	char id[32];

	snprintf(id, sizeof(id), "session-%d", n);
	assert_int_equal(crypto_sha256(id, strlen(id), hash), 0);
}

/*
 * A key whose two buckets are a and b: what a real key lands on by chance,
 * made on purpose to fill one pair of buckets. n tells keys apart.
 */
static void
key_in(uint64_t a, uint64_t b, int n, unsigned char hash[32])
{
	uint64_t tag = 0x9e3779b97f4a7c15ULL * (uint64_t)(n + 1);

	memset(hash, 0, 32);
	memcpy(hash, &a, 8);
	memcpy(hash + 8, &b, 8);
	memcpy(hash + 16, &tag, 8);
	memcpy(hash + 24, &n, sizeof(n));
}

static struct session_row
row(long long id, long long user_id)
{
	return (struct session_row){.id = id,
				    .user_id = user_id,
				    .created_at = NOW - 60,
				    .last_seen_at = NOW - 60,
				    .expires_at = NOW + 3600,
				    .max_expires_at = NOW + 86400};
}

static void
put(const unsigned char hash[32], long long id, long long user_id, long long now_ms)
{
	struct session_row r = row(id, user_id);

	session_cache_put(hash, &r, epoch, now_ms);
}

/* The cached row's id, or 0 when the cache refuses. */
static long long
get(const unsigned char hash[32], long long now_ms)
{
	const struct session_row *r = session_cache_get(hash, epoch, now_ms, NOW);

	return r ? r->id : 0;
}

/* Half the table: each worker keeps this many users' sessions, none lost. */
static void
test_16384_sessions_are_all_kept(void **state)
{
	unsigned char hash[32];
	int missing = 0;

	new_epoch();
	for (int i = 0; i < 16384; i++) {
		real_key(i, hash);
		put(hash, i + 1, 100000 + i, T0 + i / 1000);
	}
	for (int i = 0; i < 16384; i++) {
		real_key(i, hash);
		missing += get(hash, T0 + 20) != i + 1;
	}
	assert_int_equal(missing, 0);
}

/* Two thirds full, a few may go (each the least recently read of 16). */
static void
test_24576_sessions_are_nearly_all_kept(void **state)
{
	unsigned char hash[32];
	int missing = 0;

	new_epoch();
	for (int i = 0; i < 24576; i++) {
		real_key(i, hash);
		put(hash, i + 1, 100000 + i, T0);
	}
	for (int i = 0; i < 24576; i++) {
		real_key(i, hash);
		missing += get(hash, T0) != i + 1;
	}
	assert_in_range(missing, 0, 24);
}

static void
test_a_full_pair_of_buckets_gives_up_the_least_recently_read(void **state)
{
	unsigned char keys[2 * SESSION_CACHE_WAYS + 2][32];
	const int n = 2 * SESSION_CACHE_WAYS; /* what the pair holds */

	new_epoch();
	for (int i = 0; i < n + 2; i++)
		key_in(5, BUCKETS + 9, i, keys[i]);
	for (int i = 0; i < n; i++)
		put(keys[i], i + 1, 7, T0 + i);
	/* Read again: the most recent now, the second is the oldest. */
	put(keys[0], 1, 7, T0 + n);
	put(keys[n], n + 1, 7, T0 + n + 1);
	assert_int_equal(get(keys[1], T0 + n + 1), 0);
	for (int i = 0; i <= n; i++)
		if (i != 1)
			assert_int_equal(get(keys[i], T0 + n + 1), i + 1);
	put(keys[n + 1], n + 2, 7, T0 + n + 2);
	assert_int_equal(get(keys[2], T0 + n + 2), 0);
	assert_int_equal(get(keys[n + 1], T0 + n + 2), n + 2);
}

/* Reading a session again replaces its entry: it never takes a second one. */
static void
test_a_session_read_again_keeps_one_entry(void **state)
{
	unsigned char keys[2 * SESSION_CACHE_WAYS][32];
	const int n = 2 * SESSION_CACHE_WAYS;

	new_epoch();
	for (int i = 0; i < n; i++) {
		key_in(17, 17, i, keys[i]); /* both buckets the same: 8 entries */
		put(keys[i], i + 1, 7, T0 + i);
	}
	for (int i = n - SESSION_CACHE_WAYS; i < n; i++)
		assert_int_equal(get(keys[i], T0 + n), i + 1);
	for (int again = 0; again < 20; again++)
		put(keys[n - 1], 1000 + again, 7, T0 + n + again);
	for (int i = n - SESSION_CACHE_WAYS; i < n - 1; i++)
		assert_int_equal(get(keys[i], T0 + n + 20), i + 1);
	assert_int_equal(get(keys[n - 1], T0 + n + 20), 1019);
}

/* What can no longer be served makes room before a live entry is evicted. */
static void
test_an_entry_too_old_is_replaced_first(void **state)
{
	unsigned char keys[2 * SESSION_CACHE_WAYS + 1][32];
	const int n = 2 * SESSION_CACHE_WAYS;
	const long long later = T0 + SESSION_CACHE_TTL_MS;

	new_epoch();
	for (int i = 0; i <= n; i++)
		key_in(33, BUCKETS + 44, i, keys[i]);
	put(keys[n - 1], n, 7, T0); /* the oldest, and too old at `later` */
	for (int i = 0; i < n - 1; i++)
		put(keys[i], i + 1, 7, later - 100 + i);
	put(keys[n], n + 1, 7, later);
	for (int i = 0; i < n - 1; i++)
		assert_int_equal(get(keys[i], later), i + 1);
	assert_int_equal(get(keys[n], later), n + 1);
}

static void
test_a_session_is_refused_once_too_old(void **state)
{
	unsigned char hash[32];

	new_epoch();
	real_key(-1, hash);
	put(hash, 1, 7, T0);
	assert_int_equal(get(hash, T0 + SESSION_CACHE_TTL_MS - 1), 1);
	assert_int_equal(get(hash, T0 + SESSION_CACHE_TTL_MS), 0);
}

/* A connection lost may have lost notifications: nothing read on it is trusted. */
static void
test_a_session_read_on_another_connection_is_refused(void **state)
{
	unsigned char hash[32];

	new_epoch();
	real_key(-2, hash);
	put(hash, 1, 7, T0);
	assert_non_null(session_cache_get(hash, epoch, T0, NOW));
	assert_null(session_cache_get(hash, epoch + 1, T0, NOW));
	assert_null(session_cache_get(hash, epoch - 1, T0, NOW));
}

static void
test_a_session_is_refused_at_its_expiry_as_read(void **state)
{
	unsigned char hash[32];
	struct session_row r = row(1, 7);

	new_epoch();
	real_key(-3, hash);
	r.expires_at = NOW + 5;
	session_cache_put(hash, &r, epoch, T0);
	assert_non_null(session_cache_get(hash, epoch, T0, NOW + 4));
	assert_null(session_cache_get(hash, epoch, T0, NOW + 5));
}

/* A touch moves the expiry on: the cached row follows, read time unchanged. */
static void
test_a_touch_updates_the_cached_row(void **state)
{
	unsigned char hash[32], other[32];
	struct session_row r = row(1, 7);

	new_epoch();
	real_key(-4, hash);
	real_key(-5, other);
	r.expires_at = NOW + 5;
	session_cache_put(hash, &r, epoch, T0);
	r.expires_at = NOW + 600;
	session_cache_update(hash, &r);
	assert_non_null(session_cache_get(hash, epoch, T0, NOW + 300));
	assert_null(session_cache_get(hash, epoch, T0 + SESSION_CACHE_TTL_MS, NOW));
	session_cache_update(other, &r);
	assert_null(session_cache_get(other, epoch, T0, NOW));
}

/* NOTIFY of an ended session: every session of that user goes, no other. */
static void
test_a_users_sessions_are_forgotten_together(void **state)
{
	unsigned char keys[5][32];

	new_epoch();
	for (int i = 0; i < 5; i++) {
		real_key(-10 - i, keys[i]);
		put(keys[i], i + 1, i < 3 ? 41 : 42, T0);
	}
	session_cache_forget_user(41);
	for (int i = 0; i < 3; i++)
		assert_int_equal(get(keys[i], T0), 0);
	for (int i = 3; i < 5; i++)
		assert_int_equal(get(keys[i], T0), i + 1);
	/* Read again after the end: served from then on. */
	put(keys[0], 1, 41, T0 + 1);
	assert_int_equal(get(keys[0], T0 + 1), 1);
}

/* Ids equal modulo the table's size share a chain: each is forgotten alone. */
static void
test_users_whose_ids_share_a_chain_are_forgotten_apart(void **state)
{
	unsigned char keys[6][32];
	const long long users[3] = {43, 43 + SESSION_CACHE_SLOTS,
				    43 + 2LL * SESSION_CACHE_SLOTS};

	new_epoch();
	for (int i = 0; i < 6; i++) {
		real_key(-20 - i, keys[i]);
		put(keys[i], i + 1, users[i % 3], T0);
	}
	session_cache_forget_user(users[1]);
	for (int i = 0; i < 6; i++)
		assert_int_equal(get(keys[i], T0), i % 3 == 1 ? 0 : i + 1);
	session_cache_forget_user(users[0]);
	for (int i = 0; i < 6; i++)
		assert_int_equal(get(keys[i], T0), i % 3 == 2 ? i + 1 : 0);
}

/*
 * Sessions of four users on one chain, crowded into one pair of buckets
 * so that most reads evict another: after each notification, what that
 * user had misses and what the others had is still served.
 */
static void
test_forgetting_stays_exact_through_evictions(void **state)
{
	enum { KEYS = 64 };
	unsigned char keys[KEYS][32];
	long long owner[KEYS];
	int served[KEYS];
	unsigned seed = 1;

	new_epoch();
	for (int i = 0; i < KEYS; i++) {
		key_in(70, BUCKETS + 71, i, keys[i]);
		owner[i] = 500 + (i % 4) * (long long)SESSION_CACHE_SLOTS;
	}
	for (long long now_ms = T0; now_ms < T0 + 5000; now_ms++) {
		int k;

		seed = seed * 1103515245 + 12345;
		k = (int)((seed >> 16) % KEYS);
		if ((seed >> 8) % 8 != 0) {
			put(keys[k], k + 1, owner[k], now_ms);
			continue;
		}
		for (int i = 0; i < KEYS; i++)
			served[i] = get(keys[i], now_ms) != 0;
		session_cache_forget_user(owner[k]);
		for (int i = 0; i < KEYS; i++)
			assert_int_equal(get(keys[i], now_ms) != 0,
					 served[i] && owner[i] != owner[k]);
	}
}

/* Another key with the same buckets and tag is not taken for it. */
static void
test_only_the_whole_hash_matches(void **state)
{
	unsigned char hash[32], near[32];

	new_epoch();
	key_in(60, 61, 1, hash);
	memcpy(near, hash, 32);
	near[31] ^= 1;
	put(hash, 1, 7, T0);
	assert_int_equal(get(near, T0), 0);
	assert_int_equal(get(hash, T0), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_16384_sessions_are_all_kept),
		cmocka_unit_test(test_24576_sessions_are_nearly_all_kept),
		cmocka_unit_test(
			test_a_full_pair_of_buckets_gives_up_the_least_recently_read),
		cmocka_unit_test(test_a_session_read_again_keeps_one_entry),
		cmocka_unit_test(test_an_entry_too_old_is_replaced_first),
		cmocka_unit_test(test_a_session_is_refused_once_too_old),
		cmocka_unit_test(test_a_session_read_on_another_connection_is_refused),
		cmocka_unit_test(test_a_session_is_refused_at_its_expiry_as_read),
		cmocka_unit_test(test_a_touch_updates_the_cached_row),
		cmocka_unit_test(test_a_users_sessions_are_forgotten_together),
		cmocka_unit_test(test_users_whose_ids_share_a_chain_are_forgotten_apart),
		cmocka_unit_test(test_forgetting_stays_exact_through_evictions),
		cmocka_unit_test(test_only_the_whole_hash_matches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
