/*
 * GET /me/token and its slow path, refresh_and_answer, every way they end,
 * against a fake Spotify and a fake store (fakes.h): the answer, what the
 * user's row holds afterwards, the audit event, what Spotify was asked and
 * what was logged. tests/integration/test_tokens.py and test_grant.py
 * drive the same code through nginx and PostgreSQL, row locks included.
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

static struct response res;
static char cookie_header[2048];
static long long user;
static struct fake_user stored_before;

/* A logged-in user whose token is fresh for an hour. */
static int
setup(void **state)
{
	char value[SESSION_COOKIE_MAX + 1];

	if (fakes_reset(state) < 0)
		return -1;
	user = fake_store_add_user("alice", "acct-a", "AT-old", "RT-old", 0);
	if (fake_store_add_session(user, value, sizeof(value)) < 0)
		return -1;
	fake_cookie(cookie_header, sizeof(cookie_header), SESSION_COOKIE, value);
	fake_cfg.spotify_scopes = "user-read-email";
	fake_cfg.spotify_scopes_allowed =
		"user-read-email playlist-read-private streaming";
	return 0;
}

static struct fake_user *
row(void)
{
	return fake_store_user(user);
}

/* The token is due: it expires within the refresh margin (a minute). */
static void
token_due(void)
{
	row()->expires_at = time(NULL) + 30;
	stored_before = *row();
}

static void
get_token_with(const char *query)
{
	struct request req = fake_request(HTTP_GET, "/me/token", query,
					  cookie_header[0] ? cookie_header : NULL);

	response_init(&res);
	fake_log_reset();
	me_token(&req, &res);
}

static void
get_token(void)
{
	get_token_with("");
}

/* The row's tokens and flag are as they were before the request. */
static void
assert_tokens_kept(void)
{
	assert_string_equal(row()->access_token, stored_before.access_token);
	assert_string_equal(row()->refresh_token, stored_before.refresh_token);
	assert_int_equal(row()->expires_at, stored_before.expires_at);
	assert_int_equal(row()->needs_reauth_at, stored_before.needs_reauth_at);
}

/* The session survives: no Set-Cookie touches it, its row is there. */
static void
assert_session_kept(void)
{
	assert_false(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_int_equal(fake_store_live_sessions(user), 1);
}

/* -- the fast path ---------------------------------------------------------- */

static void
test_token_is_served_without_spotify_while_fresh(void **state)
{
	assert_non_null(row());
	get_token();
	fake_assert_token_served(&res, "AT-old");
	assert_true(strstr(res.body, "\"expires_in\":3600,") ||
		    strstr(res.body, "\"expires_in\":3599,"));
	assert_int_equal(fake_spotify.refreshes, 0);
	/* no transaction, no row lock, nothing recorded */
	assert_int_equal(fake_store.begins, 0);
	assert_int_equal(fake_store_called("users_lock_token"), 0);
	assert_string_equal(fake_store_events(), "");
}

static void
test_token_requires_a_session(void **state)
{
	cookie_header[0] = '\0';
	get_token();
	fake_assert_error(&res, 401, "not logged in");
	assert_int_equal(fake_store_called("users_token"), 0);
}

static void
test_token_answers_503_when_the_session_cannot_be_checked(void **state)
{
	fake_store.failing = "sessions_check";
	get_token();
	fake_assert_error(&res, 503, "database unavailable");
	assert_false(fake_clears_cookie(&res, SESSION_COOKIE));
}

static void
test_token_answers_503_when_the_token_cannot_be_read(void **state)
{
	fake_store.failing = "users_token";
	get_token();
	fake_assert_error(&res, 503, "database unavailable");
	assert_session_kept();
}

static void
test_token_without_a_usable_token_logs_the_user_out(void **state)
{
	row()->access_token[0] = '\0'; /* stored, but it does not open */
	get_token();
	fake_assert_error(&res, 401, "Spotify authorization expired: log in again");
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_int_equal(fake_spotify.refreshes, 0);
}

/* -- the refresh --------------------------------------------------------------- */

static void
test_refresh_stores_and_serves_the_new_token(void **state)
{
	token_due();
	get_token();
	fake_assert_token_served(&res, "AT-new");
	assert_string_equal(fake_spotify.refresh_token, "RT-old");
	assert_string_equal(row()->access_token, "AT-new");
	assert_string_equal(row()->refresh_token, "RT-new");
	assert_true(row()->expires_at >= time(NULL) + 3599);
	assert_string_equal(fake_store_events(), "refresh");
	assert_int_equal(fake_store.commits, 1);
	assert_true(fake_log_has("token_refreshed", "rotated=1", NULL));
	assert_null(strstr(fake_log_text(), "AT-new"));
	assert_session_kept();
}

static void
test_refresh_keeps_the_refresh_token_spotify_did_not_rotate(void **state)
{
	token_due();
	fake_spotify.tokens.refresh_token[0] = '\0';
	get_token();
	fake_assert_token_served(&res, "AT-new");
	assert_string_equal(row()->refresh_token, "RT-old");
	assert_true(fake_log_has("token_refreshed", "rotated=0", NULL));
}

/*
 * Spotify's refresh answer says what the grant is now: a narrower one is
 * stored (and a require= of the dropped scope then answers 403), and this
 * very answer recommends the login that asks for it again.
 */
static void
test_refresh_stores_the_scope_spotify_answered(void **state)
{
	snprintf(row()->scope, sizeof(row()->scope), "user-read-email streaming");
	token_due();
	snprintf(fake_spotify.tokens.scope, sizeof(fake_spotify.tokens.scope),
		 "streaming");
	fake_spotify.tokens.has_scope = 1;
	get_token();
	fake_assert_token_served(&res, "AT-new");
	assert_string_equal(row()->scope, "streaming");
	assert_non_null(strstr(res.body, "\"reauth_recommended\":true"));
	get_token_with("require=user-read-email");
	fake_assert_error(&res, 403, "insufficient_scope");
}

/* An answer without scope says nothing of the grant: the stored one stays. */
static void
test_refresh_without_a_scope_keeps_the_stored_one(void **state)
{
	snprintf(row()->scope, sizeof(row()->scope), "user-read-email streaming");
	token_due();
	get_token();
	fake_assert_token_served(&res, "AT-new");
	assert_string_equal(row()->scope, "user-read-email streaming");
	assert_non_null(strstr(res.body, "\"reauth_recommended\":false"));
}

static void
test_refresh_without_a_refresh_token_logs_the_user_out(void **state)
{
	token_due();
	row()->refresh_token[0] = '\0';
	get_token();
	fake_assert_error(&res, 401, "Spotify authorization expired: log in again");
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_int_equal(fake_store.rollbacks, 1);
}

static void
test_refresh_answers_503_when_the_transaction_cannot_start(void **state)
{
	token_due();
	fake_store.failing = "db_begin";
	get_token();
	fake_assert_error(&res, 503, "database unavailable");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_tokens_kept();
}

static void
test_refresh_answers_503_and_keeps_tokens_when_they_cannot_be_stored(void **state)
{
	token_due();
	fake_store.failing = "users_store_refresh";
	get_token();
	fake_assert_error(&res, 503, "database unavailable");
	assert_tokens_kept();
	assert_string_equal(fake_store_events(), "");
	assert_null(strstr(res.body, "AT-new"));
}

static void
test_refresh_answers_503_when_the_commit_fails(void **state)
{
	token_due();
	fake_store.failing = "db_commit";
	get_token();
	fake_assert_error(&res, 503, "database unavailable");
	assert_tokens_kept();
	assert_string_equal(fake_store_events(), "");
}

/* -- Spotify refuses or fails ---------------------------------------------------- */

static void
test_refresh_flags_the_user_on_a_first_invalid_grant(void **state)
{
	token_due();
	fake_spotify.refresh = fake_outcome(SPOTIFY_INVALID_GRANT, 0);
	get_token();
	fake_assert_error(&res, 401, "reauth_required");
	assert_non_null(strstr(res.body, "\"login\":\"/login?next=%2F\""));
	/* kept: it may be Spotify's incident */
	assert_string_equal(row()->access_token, "AT-old");
	assert_string_equal(row()->refresh_token, "RT-old");
	assert_true(row()->needs_reauth_at != 0);
	assert_string_equal(fake_store_events(), "reauth_required");
	assert_true(fake_log_has("reauth_needed", NULL));
	assert_session_kept();
}

static void
test_refresh_is_not_sent_while_an_invalid_grant_awaits_confirmation(void **state)
{
	row()->needs_reauth_at = time(NULL) - 10; /* BAA_INVALID_GRANT_CONFIRM is 600 */
	get_token();
	fake_assert_error(&res, 401, "reauth_required");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_int_equal(fake_store.begins, 0);
	assert_session_kept();
}

static void
test_refresh_forgets_tokens_when_invalid_grant_is_confirmed(void **state)
{
	/* flagged long enough ago: this refresh, fresh token or not, confirms */
	row()->needs_reauth_at = time(NULL) - 700;
	fake_spotify.refresh = fake_outcome(SPOTIFY_INVALID_GRANT, 0);
	get_token();
	fake_assert_error(&res, 401, "reauth_required");
	assert_int_equal(fake_spotify.refreshes, 1);
	assert_string_equal(row()->access_token, "");
	assert_string_equal(row()->refresh_token, "");
	assert_true(row()->needs_reauth_at != 0);
	assert_string_equal(fake_store_events(), "reauth_required");
	assert_true(fake_log_has("tokens_cleared", NULL));
	assert_session_kept();
}

static void
test_refresh_that_succeeds_after_the_wait_clears_the_flag(void **state)
{
	row()->needs_reauth_at = time(NULL) - 700;
	get_token();
	fake_assert_token_served(&res, "AT-new");
	assert_int_equal(row()->needs_reauth_at, 0);
	assert_string_equal(fake_store_events(), "refresh");
}

static void
test_refresh_answers_503_and_flags_nothing_when_the_flag_cannot_be_stored(void **state)
{
	token_due();
	fake_spotify.refresh = fake_outcome(SPOTIFY_INVALID_GRANT, 0);
	fake_store.failing = "audit_record";
	get_token();
	fake_assert_error(&res, 503, "database unavailable");
	assert_tokens_kept();
	assert_string_equal(fake_store_events(), "");
}

static void
test_refresh_keeps_tokens_on_forbidden(void **state)
{
	token_due();
	fake_spotify.refresh = fake_outcome(SPOTIFY_FORBIDDEN, 0);
	get_token();
	fake_assert_error(&res, 403, "spotify_access_denied");
	assert_tokens_kept();
	assert_string_equal(fake_store_events(), "refresh_failed");
	assert_true(fake_log_has("spotify_access_denied", "at=refresh", NULL));
	assert_session_kept();
}

static void
test_refresh_rate_limited_is_503_with_retry_after(void **state)
{
	char retry[16];

	token_due();
	fake_spotify.refresh = fake_outcome(SPOTIFY_RATE_LIMITED, 42);
	get_token();
	fake_assert_error(&res, 503, "spotify_rate_limited");
	assert_string_equal(fake_header(&res, "Retry-After", retry, sizeof(retry)), "42");
	assert_tokens_kept();
	assert_string_equal(fake_store_events(), "rate_limited");
}

static void
test_refresh_quota_exceeded_is_503_with_retry_after(void **state)
{
	char retry[16];

	token_due();
	fake_spotify.refresh = fake_outcome(SPOTIFY_QUOTA_EXCEEDED, 3600);
	get_token();
	fake_assert_error(&res, 503, "spotify_quota_exceeded");
	assert_string_equal(fake_header(&res, "Retry-After", retry, sizeof(retry)),
			    "3600");
	assert_tokens_kept();
	assert_string_equal(fake_store_events(), "rate_limited");
}

static void
test_refresh_failure_is_502_and_keeps_tokens(void **state)
{
	char retry[16];

	token_due();
	fake_spotify.refresh = fake_outcome(SPOTIFY_FAILED, 0);
	get_token();
	fake_assert_error(&res, 502, "Spotify token refresh failed");
	assert_null(fake_header(&res, "Retry-After", retry, sizeof(retry)));
	assert_tokens_kept();
	assert_string_equal(fake_store_events(), "refresh_failed");
	assert_session_kept();
}

static void
test_refresh_while_paused_is_not_sent_and_records_nothing(void **state)
{
	char retry[16];

	token_due();
	fake_spotify.paused = 1;
	fake_spotify.pause = fake_outcome(SPOTIFY_RATE_LIMITED, 9);
	get_token();
	fake_assert_error(&res, 503, "spotify_rate_limited");
	assert_string_equal(fake_header(&res, "Retry-After", retry, sizeof(retry)), "9");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_string_equal(fake_store_events(), "");
	assert_int_equal(fake_store.rollbacks, 1);
	assert_tokens_kept();
}

/* -- single flight: what the row says once it is locked -------------------------- */

static void
another_worker_refreshed(void)
{
	strcpy(row()->access_token, "AT-other");
	row()->expires_at = time(NULL) + 3600;
}

static void
another_worker_met_invalid_grant(void)
{
	row()->needs_reauth_at = time(NULL);
}

static void
user_deleted_meanwhile(void)
{
	fake_store.data.nusers = 0;
}

static void
test_refresh_serves_the_token_another_worker_just_refreshed(void **state)
{
	token_due();
	fake_store.meanwhile = another_worker_refreshed;
	get_token();
	fake_assert_token_served(&res, "AT-other");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_int_equal(fake_store.rollbacks, 1);
	assert_string_equal(fake_store_events(), "");
}

static void
test_refresh_answers_reauth_when_another_worker_just_met_invalid_grant(void **state)
{
	token_due();
	fake_store.meanwhile = another_worker_met_invalid_grant;
	get_token();
	fake_assert_error(&res, 401, "reauth_required");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_session_kept();
}

static void
test_refresh_answers_401_when_the_user_was_deleted_meanwhile(void **state)
{
	token_due();
	fake_store.meanwhile = user_deleted_meanwhile;
	get_token();
	fake_assert_error(&res, 401, "session expired or revoked: log in again");
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_int_equal(fake_spotify.refreshes, 0);
}

static void
test_refresh_answers_503_when_the_row_cannot_be_locked(void **state)
{
	token_due();
	fake_store.failing = "users_lock_token";
	get_token();
	fake_assert_error(&res, 503, "database unavailable");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_int_equal(fake_store.rollbacks, 1);
}

/* -- require= --------------------------------------------------------------- */

/*
 * The grant lacks a scope: 403 with what is missing and the login that
 * asks for it, before the refresh a due token would otherwise cost.
 */
static void
test_token_lacking_a_required_scope_is_403_without_calling_spotify(void **state)
{
	snprintf(row()->scope, sizeof(row()->scope), "user-read-email");
	token_due();
	get_token_with(
		"require=playlist-read-private+user-read-email+streaming&next=%2Flists");
	assert_int_equal(res.status, 403);
	assert_string_equal(
		res.body,
		"{\"error\":\"insufficient_scope\",\"message\":\"Spotify has not granted "
		"baa every scope this needs. Log in with Spotify again to grant the "
		"missing ones.\",\"missing\":[\"playlist-read-private\",\"streaming\"],"
		"\"login\":\"/login?scope=playlist-read-private%20user-read-email%"
		"20streaming&next=%2Flists\"}\n");
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_int_equal(fake_store.begins, 0);
	assert_tokens_kept();
	assert_session_kept();
}

/* Without next the login comes back to the page at "/". */
static void
test_insufficient_scope_login_returns_to_the_page_by_default(void **state)
{
	get_token_with("require=streaming");
	fake_assert_error(&res, 403, "insufficient_scope");
	assert_non_null(
		strstr(res.body, "\"login\":\"/login?scope=streaming&next=%2F\""));
}

static void
test_token_with_every_required_scope_is_served(void **state)
{
	snprintf(row()->scope, sizeof(row()->scope), "streaming user-read-email");
	get_token_with("require=user-read-email+streaming");
	fake_assert_token_served(&res, "AT-old");
}

/*
 * A scope outside SPOTIFY_SCOPES_ALLOWED: the 400 that /login would answer
 * to the login a 403 would name, so the caller learns of its bug at once
 * instead of following a link that fails.
 */
static void
test_token_requiring_a_scope_not_allowed_is_400_as_login_answers(void **state)
{
	struct request login =
		fake_request(HTTP_GET, "/login", "scope=streaming+user-top-read", NULL);
	struct response at_login;

	response_init(&at_login);
	auth_login(&login, &at_login);
	fake_assert_error(&at_login, 400, "scope_not_allowed");

	token_due();
	get_token_with("require=streaming+user-top-read");
	fake_assert_error(&res, 400, "scope_not_allowed");
	assert_string_equal(res.body, at_login.body);
	assert_int_equal(fake_spotify.refreshes, 0);
	assert_int_equal(fake_store_called("users_token"), 0);
}

/* A require= that names nothing is a caller's bug, not "nothing needed". */
static void
test_token_with_a_require_naming_nothing_is_400(void **state)
{
	static const char *const queries[] = {"require=", "require=+", "require=%20%20",
					      "require=&next=%2Flists"};

	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		get_token_with(queries[i]);
		if (res.status != 400 || strstr(res.body, "\"invalid_scope\"") == NULL)
			fail_msg("%s: %d %s", queries[i], res.status, res.body);
	}
	assert_int_equal(fake_store_called("users_token"), 0);
}

static void
test_token_with_a_malformed_require_is_400(void **state)
{
	static const char *const queries[] = {
		"require=User-Read", "require=a&require=b",
		"require=a%2Cb",     "require=a&next=https%3A%2F%2Fevil.example%2F",
		"require=a%ZZ",
	};

	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		get_token_with(queries[i]);
		if (res.status != 400)
			fail_msg("%s: %d %s", queries[i], res.status, res.body);
	}
	assert_int_equal(fake_store_called("users_token"), 0);
}

#define T(name) cmocka_unit_test_setup(name, setup)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_token_lacking_a_required_scope_is_403_without_calling_spotify),
		T(test_insufficient_scope_login_returns_to_the_page_by_default),
		T(test_token_with_every_required_scope_is_served),
		T(test_token_with_a_malformed_require_is_400),
		T(test_token_requiring_a_scope_not_allowed_is_400_as_login_answers),
		T(test_token_with_a_require_naming_nothing_is_400),
		T(test_token_is_served_without_spotify_while_fresh),
		T(test_token_requires_a_session),
		T(test_token_answers_503_when_the_session_cannot_be_checked),
		T(test_token_answers_503_when_the_token_cannot_be_read),
		T(test_token_without_a_usable_token_logs_the_user_out),
		T(test_refresh_stores_and_serves_the_new_token),
		T(test_refresh_keeps_the_refresh_token_spotify_did_not_rotate),
		T(test_refresh_stores_the_scope_spotify_answered),
		T(test_refresh_without_a_scope_keeps_the_stored_one),
		T(test_refresh_without_a_refresh_token_logs_the_user_out),
		T(test_refresh_answers_503_when_the_transaction_cannot_start),
		T(test_refresh_answers_503_and_keeps_tokens_when_they_cannot_be_stored),
		T(test_refresh_answers_503_when_the_commit_fails),
		T(test_refresh_flags_the_user_on_a_first_invalid_grant),
		T(test_refresh_is_not_sent_while_an_invalid_grant_awaits_confirmation),
		T(test_refresh_forgets_tokens_when_invalid_grant_is_confirmed),
		T(test_refresh_that_succeeds_after_the_wait_clears_the_flag),
		T(test_refresh_answers_503_and_flags_nothing_when_the_flag_cannot_be_stored),
		T(test_refresh_keeps_tokens_on_forbidden),
		T(test_refresh_rate_limited_is_503_with_retry_after),
		T(test_refresh_quota_exceeded_is_503_with_retry_after),
		T(test_refresh_failure_is_502_and_keeps_tokens),
		T(test_refresh_while_paused_is_not_sent_and_records_nothing),
		T(test_refresh_serves_the_token_another_worker_just_refreshed),
		T(test_refresh_answers_reauth_when_another_worker_just_met_invalid_grant),
		T(test_refresh_answers_401_when_the_user_was_deleted_meanwhile),
		T(test_refresh_answers_503_when_the_row_cannot_be_locked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
