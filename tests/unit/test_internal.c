/*
 * The internal API's handler (GET /internal/users/...) against the fake
 * Spotify and store (fakes.h): a service's key, the token through the same
 * path as /me/token (refresh under the row lock, needs_reauth, Spotify's
 * 429), lookups by spotify_id and account_id, the profile with the grant,
 * and what is logged: the service and the user, never the key or token.
 * tests/integration/test_internal.py drives it through nginx and the
 * internal listener.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/handlers/handlers.h"
#include "fakes.h"

#define BILLING_KEY "billing-key-of-at-least-thirty-two-bytes"
#define PLAYLISTS_KEY "playlists-key-of-at-least-thirty-two-bytes"

static struct response res;
static long long user;
static char err[512];

static int
setup(void **state)
{
	if (fakes_reset(state) < 0 ||
	    services_parse("billing:" BILLING_KEY " playlists:" PLAYLISTS_KEY,
			   &fake_cfg.service_keys, err, sizeof(err)) < 0)
		return -1;
	user = fake_store_add_user("alice", "acct-a", "AT-old", "RT-old", 0);
	snprintf(fake_store_user(user)->scope, sizeof(fake_store_user(user)->scope),
		 "user-read-private");
	return 0;
}

static struct fake_user *
row(void)
{
	return fake_store_user(user);
}

static void
call_as(const char *authorization, const char *path, const char *query)
{
	struct request req = fake_request(HTTP_GET, path, query, NULL);

	req.internal = 1;
	req.authorization = authorization;
	response_init(&res);
	fake_log_reset();
	internal_user(&req, &res);
}

static void
call(const char *path, const char *query)
{
	call_as("Bearer " BILLING_KEY, path, query);
}

/* No secret in the log: neither key nor any token. */
static void
assert_log_holds_no_secret(void)
{
	const char *log = fake_log_text();

	assert_null(strstr(log, BILLING_KEY));
	assert_null(strstr(log, "AT-old"));
	assert_null(strstr(log, "AT-new"));
	assert_null(strstr(log, "RT-"));
}

static void
assert_no_cookie_touched(void)
{
	assert_null(strstr(res.headers, "Set-Cookie"));
}

/* -- the service's key ----------------------------------------------------- */

static void
test_token_is_served_to_a_service_with_its_key(void **state)
{
	char uid[32];

	call("/internal/users/1/token", "");
	fake_assert_token_served(&res, "AT-old");
	assert_int_equal(fake_spotify.refreshes, 0);
	snprintf(uid, sizeof(uid), "user_id=%lld", user);
	assert_true(fake_log_has("internal_call", "service=billing", uid, "route=token",
				 "outcome=ok", NULL));
	assert_log_holds_no_secret();
	assert_no_cookie_touched();
	assert_int_equal(fake_internal_calls[1][METRICS_INTERNAL_OK], 1);
}

static void
test_each_service_is_named_by_its_own_key(void **state)
{
	call_as("Bearer " PLAYLISTS_KEY, "/internal/users/1/token", "");
	fake_assert_token_served(&res, "AT-old");
	assert_true(fake_log_has("internal_call", "service=playlists", NULL));
	assert_int_equal(fake_internal_calls[2][METRICS_INTERNAL_OK], 1);
}

static void
assert_unauthorized(const char *reason)
{
	char www[64], want[64];

	fake_assert_error(&res, 401, "unauthorized");
	assert_non_null(fake_header(&res, "WWW-Authenticate", www, sizeof(www)));
	assert_string_equal(fake_store.calls, ""); /* the database is not asked */
	assert_int_equal(fake_spotify.refreshes, 0);
	snprintf(want, sizeof(want), "reason=%s", reason);
	assert_true(fake_log_has("service_auth_failed", want, NULL));
	assert_false(fake_log_has("internal_call", NULL));
	assert_null(strstr(res.body, "AT-old"));
	assert_true(fake_internal_calls[0][METRICS_INTERNAL_UNAUTHORIZED] > 0);
	assert_int_equal(fake_internal_calls[1][METRICS_INTERNAL_OK], 0);
}

static void
test_wrong_key_is_401_and_logged_without_the_key(void **state)
{
	call_as("Bearer wrong-key-of-at-least-thirty-two-bytes!",
		"/internal/users/1/token", "");
	assert_unauthorized("wrong_key");
	assert_null(strstr(fake_log_text(), "wrong-key"));
}

static void
test_missing_key_is_401(void **state)
{
	call_as(NULL, "/internal/users/1/token", "");
	assert_unauthorized("missing");
}

static void
test_malformed_authorization_is_401(void **state)
{
	call_as(BILLING_KEY, "/internal/users/1/token", "");
	assert_unauthorized("malformed");
	call_as("Basic " BILLING_KEY, "/internal/users/1", "");
	assert_unauthorized("malformed");
	assert_log_holds_no_secret();
}

static void
test_key_of_another_length_is_401(void **state)
{
	call_as("Bearer " BILLING_KEY "x", "/internal/users/1/token", "");
	assert_unauthorized("wrong_key");
	call_as("Bearer billing", "/internal/users/1/token", "");
	assert_unauthorized("wrong_key");
}

/* -- the token: /me/token's answers ------------------------------------------- */

static void
test_due_token_is_refreshed_under_the_row_lock(void **state)
{
	row()->expires_at = time(NULL) + 30;
	call("/internal/users/1/token", "");
	fake_assert_token_served(&res, "AT-new");
	assert_int_equal(fake_spotify.refreshes, 1);
	assert_int_equal(fake_store_called("users_lock_token"), 1);
	assert_string_equal(row()->access_token, "AT-new");
	/* recorded for the user, without a session */
	assert_string_equal(fake_store_events(), "refresh");
	assert_int_equal(fake_store.data.events[0].user_id, user);
	assert_int_equal(fake_store.data.events[0].session_id, 0);
	assert_log_holds_no_secret();
}

static void
test_refreshed_meanwhile_is_served_without_a_second_refresh(void **state)
{
	row()->expires_at = time(NULL) + 30;
	/* the browser's /me/token refreshed while this call waited for the lock */
	fake_store.meanwhile = NULL;
	snprintf(row()->access_token, sizeof(row()->access_token), "AT-browser");
	row()->expires_at = time(NULL) + 3600;
	call("/internal/users/1/token", "");
	fake_assert_token_served(&res, "AT-browser");
	assert_int_equal(fake_spotify.refreshes, 0);
}

static void
test_needs_reauth_is_answered_as_me_token_does(void **state)
{
	row()->needs_reauth_at = time(NULL) - 10;
	call("/internal/users/1/token", "");
	fake_assert_error(&res, 401, "reauth_required");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_true(fake_log_has("internal_call", "outcome=reauth_required", NULL));
	assert_no_cookie_touched();
}

static void
test_first_invalid_grant_flags_the_user(void **state)
{
	row()->expires_at = time(NULL) + 30;
	fake_spotify.refresh = fake_outcome(SPOTIFY_INVALID_GRANT, 0);
	call("/internal/users/1/token", "");
	fake_assert_error(&res, 401, "reauth_required");
	assert_true(row()->needs_reauth_at != 0);
	assert_string_equal(fake_store_events(), "reauth_required");
}

static void
test_unreadable_token_is_401_without_cookies(void **state)
{
	row()->access_token[0] = '\0';
	call("/internal/users/1/token", "");
	fake_assert_error(&res, 401, "Spotify authorization expired: log in again");
	assert_no_cookie_touched();
}

static void
test_rate_limited_refresh_is_503_with_retry_after(void **state)
{
	char retry[16];

	row()->expires_at = time(NULL) + 30;
	fake_spotify.refresh = fake_outcome(SPOTIFY_RATE_LIMITED, 42);
	call("/internal/users/1/token", "");
	fake_assert_error(&res, 503, "spotify_rate_limited");
	assert_string_equal(fake_header(&res, "Retry-After", retry, sizeof(retry)), "42");
	assert_true(fake_log_has("internal_call", "outcome=rate_limited", NULL));
	assert_int_equal(fake_internal_calls[1][METRICS_INTERNAL_RATE_LIMITED], 1);
}

static void
test_forbidden_refresh_is_403(void **state)
{
	row()->expires_at = time(NULL) + 30;
	fake_spotify.refresh = fake_outcome(SPOTIFY_FORBIDDEN, 0);
	call("/internal/users/1/token", "");
	fake_assert_error(&res, 403, "spotify_access_denied");
	assert_true(fake_log_has("internal_call", "outcome=forbidden", NULL));
}

static void
test_failed_refresh_is_502(void **state)
{
	row()->expires_at = time(NULL) + 30;
	fake_spotify.refresh = fake_outcome(SPOTIFY_FAILED, 0);
	call("/internal/users/1/token", "");
	assert_int_equal(res.status, 502);
	assert_true(fake_log_has("internal_call", "outcome=spotify_failed", NULL));
}

static void
test_database_down_is_503(void **state)
{
	fake_store.failing = "users_token";
	call("/internal/users/1/token", "");
	fake_assert_error(&res, 503, "database unavailable");
	assert_true(fake_log_has("internal_call", "outcome=unavailable", NULL));
}

/*
 * Only a failure of Spotify's is spotify_failed: baa's own 500 (a bound
 * of the response overflowed, a login URL that would not fit) is "error",
 * or the dashboard would send the operator to Spotify's status page.
 */
static void
test_only_spotify_failures_count_as_spotify_failed(void **state)
{
	static const struct {
		int status, overflow;
		enum metrics_internal_outcome outcome;
	} cases[] = {
		{502, 0, METRICS_INTERNAL_SPOTIFY_FAILED},
		{500, 0, METRICS_INTERNAL_ERROR},
		{504, 0, METRICS_INTERNAL_ERROR},
		{405, 0, METRICS_INTERNAL_ERROR},
		{200, 1, METRICS_INTERNAL_ERROR}, /* rendered as a 500 */
		{200, 0, METRICS_INTERNAL_OK},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		response_init(&res);
		response_error(&res, cases[i].status, "x");
		res.overflow = cases[i].overflow;
		assert_int_equal(internal_outcome(&res), cases[i].outcome);
	}
	assert_string_equal(metrics_internal_label(METRICS_INTERNAL_ERROR), "error");
}

/* -- which user ------------------------------------------------------------ */

static void
test_unknown_user_is_404_user_not_found(void **state)
{
	call("/internal/users/99/token", "");
	fake_assert_error(&res, 404, "user_not_found");
	call("/internal/users/99", "");
	fake_assert_error(&res, 404, "user_not_found");
	assert_true(fake_log_has("internal_call", "outcome=not_found", NULL));
}

static void
test_user_found_by_spotify_id_or_account_id(void **state)
{
	call("/internal/users/lookup/token", "spotify_id=alice");
	fake_assert_token_served(&res, "AT-old");
	call("/internal/users/lookup/token", "account_id=acct-a");
	fake_assert_token_served(&res, "AT-old");
	call("/internal/users/lookup", "account_id=acct-a");
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body, "\"spotify_id\":\"alice\""));
	call("/internal/users/lookup/token", "spotify_id=bob");
	fake_assert_error(&res, 404, "user_not_found");
}

static void
test_detached_placeholder_finds_no_one(void **state)
{
	snprintf(row()->spotify_id, sizeof(row()->spotify_id), "detached:%lld", user);
	call("/internal/users/lookup/token", "spotify_id=detached%3A1");
	fake_assert_error(&res, 404, "user_not_found");
}

static void
test_lookup_needs_exactly_one_id(void **state)
{
	static const char *const bad[] = {"",
					  "spotify_id=",
					  "spotify_id=a&spotify_id=b",
					  "spotify_id=a&account_id=b",
					  "id=1",
					  "spotify_id=%zz"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		call("/internal/users/lookup/token", bad[i]);
		fake_assert_error(&res, 400, "bad_request");
	}
	assert_int_equal(fake_spotify.refreshes, 0);
}

static void
test_paths_that_name_nothing_are_404(void **state)
{
	static const char *const bad[] = {"/internal/users/abc/token",
					  "/internal/users/01/token",
					  "/internal/users/1/tokens",
					  "/internal/users/1/token/x",
					  "/internal/users/1/",
					  "/internal/users/-1",
					  "/internal/users/1234567890123456789/token"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		call(bad[i], "");
		if (res.status != 404)
			fail_msg("%s answered %d", bad[i], res.status);
	}
}

/* -- the profile ------------------------------------------------------------ */

static void
test_profile_shows_the_grant(void **state)
{
	row()->authorized_at = time(NULL) - 86400;
	row()->needs_reauth_at = time(NULL) - 10;
	call("/internal/users/1", "");
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body, "\"id\":1,\"spotify_id\":\"alice\","
					 "\"account_id\":\"acct-a\""));
	assert_non_null(strstr(res.body, "\"needs_reauth\":true"));
	assert_non_null(strstr(res.body, "\"reauth_recommended\":true"));
	assert_non_null(strstr(res.body, "\"scope\":\"user-read-private\""));
	assert_null(strstr(res.body, "AT-old"));
	assert_true(fake_log_has("internal_call", "service=billing", "route=profile",
				 "outcome=ok", NULL));
}

#define T(test) cmocka_unit_test_setup(test, setup)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_token_is_served_to_a_service_with_its_key),
		T(test_each_service_is_named_by_its_own_key),
		T(test_wrong_key_is_401_and_logged_without_the_key),
		T(test_missing_key_is_401),
		T(test_malformed_authorization_is_401),
		T(test_key_of_another_length_is_401),
		T(test_due_token_is_refreshed_under_the_row_lock),
		T(test_refreshed_meanwhile_is_served_without_a_second_refresh),
		T(test_needs_reauth_is_answered_as_me_token_does),
		T(test_first_invalid_grant_flags_the_user),
		T(test_unreadable_token_is_401_without_cookies),
		T(test_rate_limited_refresh_is_503_with_retry_after),
		T(test_forbidden_refresh_is_403),
		T(test_failed_refresh_is_502),
		T(test_database_down_is_503),
		T(test_only_spotify_failures_count_as_spotify_failed),
		T(test_unknown_user_is_404_user_not_found),
		T(test_user_found_by_spotify_id_or_account_id),
		T(test_detached_placeholder_finds_no_one),
		T(test_lookup_needs_exactly_one_id),
		T(test_paths_that_name_nothing_are_404),
		T(test_profile_shows_the_grant),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
