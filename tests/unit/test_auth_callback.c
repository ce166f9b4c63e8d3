/*
 * GET /callback, every way it ends, against a fake Spotify and a fake
 * store (fakes.h): what the browser gets (status, body, cookies, where it
 * is sent), what was stored, what Spotify was asked and what was logged.
 * tests/integration/test_login.py drives the same handler through nginx
 * and PostgreSQL for what needs them.
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
static struct oauth_login login;
static char cookie_header[2048];

/* A login in progress: its signed cookie goes with every callback. */
static void
start_login(const char *next, time_t now, int ttl)
{
	char value[SESSION_COOKIE_MAX + 1];

	assert_int_equal(session_new_login(&login, next, now, ttl), 0);
	assert_int_equal(session_sign_login(&login, value, sizeof(value)), 0);
	fake_cookie(cookie_header, sizeof(cookie_header), OAUTH_COOKIE, value);
}

static int
setup(void **state)
{
	if (fakes_reset(state) < 0)
		return -1;
	start_login("/account", time(NULL), 600);
	return 0;
}

static void
callback_as(const char *query, const char *fetch_mode)
{
	struct request req = fake_request(HTTP_GET, "/callback", query,
					  cookie_header[0] ? cookie_header : NULL);

	req.sec_fetch_mode = fetch_mode;
	response_init(&res);
	auth_callback(&req, &res);
}

static void
callback(const char *query)
{
	callback_as(query, NULL);
}

/* What Spotify sends the browser back with, for this login. */
static const char *
good_query(void)
{
	static char query[256];

	snprintf(query, sizeof(query), "code=CODE-1&state=%s", login.state);
	return query;
}

/* Nothing of a login was kept: no user, no session, no event. */
static void
assert_nothing_stored(void)
{
	assert_int_equal(fake_store.data.nusers, 0);
	assert_int_equal(fake_store.data.nsessions, 0);
	assert_string_equal(fake_store_events(), "");
	assert_null(fake_set_cookie(&res, SESSION_COOKIE, (char[8]){0}, 8));
}

/* Refused before Spotify was asked and before the state was spent. */
static void
assert_refused_at_the_door(void)
{
	assert_nothing_stored();
	assert_int_equal(fake_store.data.nstates, 0);
	assert_int_equal(fake_spotify.exchanges + fake_spotify.mes, 0);
}

/* What the login asked Spotify for is stored beside what Spotify granted. */
static void
test_callback_stores_what_the_login_asked_for(void **state)
{
	char value[SESSION_COOKIE_MAX + 1];

	snprintf(login.asked, sizeof(login.asked), "user-read-email streaming");
	login.has_asked = 1;
	assert_int_equal(session_sign_login(&login, value, sizeof(value)), 0);
	fake_cookie(cookie_header, sizeof(cookie_header), OAUTH_COOKIE, value);
	snprintf(fake_spotify.tokens.scope, sizeof(fake_spotify.tokens.scope),
		 "user-read-email");
	callback(good_query());
	assert_int_equal(res.status, 302);
	assert_int_equal(fake_store.data.nusers, 1);
	assert_string_equal(fake_store.data.users[0].scope, "user-read-email");
	assert_true(fake_store.data.users[0].has_scope_requested);
	assert_string_equal(fake_store.data.users[0].scope_requested,
			    "user-read-email streaming");
}

/* A login cookie signed before baa kept what was asked: NULL, not "". */
static void
test_callback_of_a_login_that_says_nothing_of_its_scopes_stores_null(void **state)
{
	callback(good_query());
	assert_int_equal(res.status, 302);
	assert_false(fake_store.data.users[0].has_scope_requested);
}

/* -- refused before anything is spent -------------------------------------- */

static void
test_callback_rejects_malformed_query(void **state)
{
	callback("code=%zz&state=x");
	fake_assert_error(&res, 400, "malformed query string");
	assert_refused_at_the_door();
}

static void
test_callback_clears_the_login_when_the_user_declines_at_spotify(void **state)
{
	callback("error=access_denied&state=x");
	fake_assert_error(&res, 403, "login cancelled at Spotify");
	assert_true(fake_clears_cookie(&res, OAUTH_COOKIE));
	assert_refused_at_the_door();
}

static void
test_callback_answers_400_to_another_error_from_spotify(void **state)
{
	callback("error=server_error");
	fake_assert_error(&res, 400, "Spotify did not authorize the login");
	assert_true(fake_clears_cookie(&res, OAUTH_COOKIE));
	assert_refused_at_the_door();
}

static void
test_callback_sends_a_browser_to_the_page_with_the_reason(void **state)
{
	char location[128];

	callback_as("error=access_denied", "navigate");
	assert_int_equal(res.status, 303);
	assert_string_equal(fake_header(&res, "Location", location, sizeof(location)),
			    "/?login_error=login_cancelled");
	/* the cookie is still cleared on the way */
	assert_true(fake_clears_cookie(&res, OAUTH_COOKIE));
}

static void
test_callback_rejects_missing_code(void **state)
{
	char query[128];

	snprintf(query, sizeof(query), "state=%s", login.state);
	callback(query);
	fake_assert_error(&res, 400, "missing or malformed code or state");
	assert_refused_at_the_door();
}

static void
test_callback_rejects_code_of_bad_text(void **state)
{
	char query[256];

	snprintf(query, sizeof(query), "code=a%%2Fb&state=%s", login.state);
	callback(query);
	fake_assert_error(&res, 400, "missing or malformed code or state");
	snprintf(query, sizeof(query), "code=a&code=b&state=%s", login.state);
	callback(query);
	fake_assert_error(&res, 400, "missing or malformed code or state");
	assert_refused_at_the_door();
}

static void
test_callback_rejects_without_a_login_in_progress(void **state)
{
	cookie_header[0] = '\0';
	callback("code=CODE-1&state=abc");
	fake_assert_error(&res, 400,
			  "no login in progress or it expired: start again at /login");
	assert_refused_at_the_door();
}

/* A sibling site can add a cookie of that name, not remove baa's. */
static void
test_callback_rejects_a_login_cookie_sent_twice(void **state)
{
	size_t len = strlen(cookie_header);

	assert_true(2 * len + 3 <= sizeof(cookie_header));
	memcpy(cookie_header + len, "; ", 2);
	memcpy(cookie_header + len + 2, cookie_header, len);
	cookie_header[2 * len + 2] = '\0';
	callback(good_query());
	fake_assert_error(&res, 400,
			  "no login in progress or it expired: start again at /login");
	assert_refused_at_the_door();
}

static void
test_callback_rejects_expired_login(void **state)
{
	start_login("/", time(NULL) - 700, 600);
	callback(good_query());
	fake_assert_error(&res, 400,
			  "no login in progress or it expired: start again at /login");
	assert_refused_at_the_door();
}

static void
test_callback_rejects_forged_state(void **state)
{
	char query[256];

	snprintf(query, sizeof(query), "code=CODE-1&state=%.*sX", SESSION_STATE_LEN - 1,
		 login.state);
	callback(query);
	fake_assert_error(&res, 400, "state does not match this login");
	callback("code=CODE-1&state=short");
	fake_assert_error(&res, 400, "state does not match this login");
	assert_refused_at_the_door();
}

static void
test_callback_sends_a_browser_back_with_login_expired(void **state)
{
	char location[128];

	cookie_header[0] = '\0';
	callback_as(good_query(), "navigate");
	assert_int_equal(res.status, 303);
	assert_string_equal(fake_header(&res, "Location", location, sizeof(location)),
			    "/?login_error=login_expired");
}

/* -- the state, spent once -------------------------------------------------- */

static void
test_callback_refuses_a_state_used_before(void **state)
{
	callback(good_query());
	assert_int_equal(res.status, 302);
	callback(good_query());
	fake_assert_error(&res, 400, "login_expired");
	assert_int_equal(fake_spotify.exchanges, 1);
	assert_int_equal(fake_store.data.nsessions, 1);
	assert_true(fake_log_has("login_state_reused", NULL));
}

static void
test_callback_answers_503_when_the_state_cannot_be_recorded(void **state)
{
	fake_store.failing = "states_redeem";
	callback(good_query());
	fake_assert_error(&res, 503, "database unavailable");
	assert_int_equal(fake_spotify.exchanges, 0);
	assert_nothing_stored();
}

static void
test_callback_while_paused_keeps_the_state_for_later(void **state)
{
	char retry[16];

	fake_spotify.paused = 1;
	fake_spotify.pause = fake_outcome(SPOTIFY_RATE_LIMITED, 7);
	callback(good_query());
	fake_assert_error(&res, 503, "spotify_rate_limited");
	assert_string_equal(fake_header(&res, "Retry-After", retry, sizeof(retry)), "7");
	assert_refused_at_the_door();
	/* once the pause is over, the same callback finishes the login */
	fake_spotify.paused = 0;
	callback(good_query());
	assert_int_equal(res.status, 302);
}

static void
test_callback_while_quota_is_used_up_says_so(void **state)
{
	char location[128], retry[16];

	fake_spotify.paused = 1;
	fake_spotify.pause = fake_outcome(SPOTIFY_QUOTA_EXCEEDED, 3600);
	callback_as(good_query(), "navigate");
	assert_int_equal(res.status, 303);
	assert_string_equal(fake_header(&res, "Location", location, sizeof(location)),
			    "/?login_error=spotify_quota_exceeded");
	assert_string_equal(fake_header(&res, "Retry-After", retry, sizeof(retry)),
			    "3600");
	assert_refused_at_the_door();
}

/* -- Spotify's answers ------------------------------------------------------- */

/*
 * One failed call to Spotify: the answer, whether the login cookie is
 * cleared, and that nothing of the login was stored (the state is spent).
 */
struct failure {
	enum spotify_status status;
	long retry_after;
	int http;
	const char *error; /* the body's "error" */
	const char *page;  /* login_error for a browser */
	int clears_login;
};

static void
check_failure(struct spotify_outcome *call, const struct failure *f)
{
	char want[64], got[64];

	*call = fake_outcome(f->status, f->retry_after);
	callback(good_query());
	fake_assert_error(&res, f->http, f->error);
	assert_int_equal(fake_clears_cookie(&res, OAUTH_COOKIE), f->clears_login);
	if (f->retry_after) {
		snprintf(want, sizeof(want), "%ld", f->retry_after);
		assert_string_equal(fake_header(&res, "Retry-After", got, sizeof(got)),
				    want);
	} else {
		assert_null(fake_header(&res, "Retry-After", got, sizeof(got)));
	}
	assert_nothing_stored();
	assert_int_equal(fake_store.data.nstates, 1);

	/* a browser is sent to the page, with the same headers */
	fake_store_reset();
	callback_as(good_query(), "navigate");
	assert_int_equal(res.status, 303);
	snprintf(want, sizeof(want), "/?login_error=%s", f->page);
	assert_string_equal(fake_header(&res, "Location", got, sizeof(got)), want);
}

#define EXCHANGE_FAILED "Spotify refused or failed the code exchange"
#define PROFILE_FAILED "could not read the Spotify profile"

static void
test_callback_exchange_invalid_grant_is_502(void **state)
{
	const struct failure f = {SPOTIFY_INVALID_GRANT, 0, 502, EXCHANGE_FAILED,
				  "spotify_failed",	 0};

	check_failure(&fake_spotify.exchange, &f);
	assert_int_equal(fake_spotify.mes, 0);
}

static void
test_callback_exchange_failure_is_502(void **state)
{
	const struct failure f = {SPOTIFY_FAILED,   0, 502, EXCHANGE_FAILED,
				  "spotify_failed", 0};

	check_failure(&fake_spotify.exchange, &f);
}

static void
test_callback_exchange_forbidden_is_403_and_ends_the_login(void **state)
{
	const struct failure f = {
		SPOTIFY_FORBIDDEN,	 0, 403, "spotify_access_denied",
		"spotify_access_denied", 1};

	check_failure(&fake_spotify.exchange, &f);
	assert_true(fake_log_has("spotify_access_denied", "at=login", NULL));
}

static void
test_callback_exchange_rate_limited_is_503_with_retry_after(void **state)
{
	const struct failure f = {SPOTIFY_RATE_LIMITED,	  30, 503, "spotify_rate_limited",
				  "spotify_rate_limited", 0};

	check_failure(&fake_spotify.exchange, &f);
}

static void
test_callback_exchange_quota_exceeded_is_503_with_retry_after(void **state)
{
	const struct failure f = {
		SPOTIFY_QUOTA_EXCEEDED,	  3600, 503, "spotify_quota_exceeded",
		"spotify_quota_exceeded", 0};

	check_failure(&fake_spotify.exchange, &f);
}

static void
test_callback_profile_unauthorized_is_502(void **state)
{
	const struct failure f = {SPOTIFY_UNAUTHORIZED, 0, 502, PROFILE_FAILED,
				  "spotify_failed",	0};

	check_failure(&fake_spotify.me, &f);
	/* /v1/me was asked with the token the exchange gave */
	assert_string_equal(fake_spotify.access_token, "AT-new");
}

static void
test_callback_profile_failure_is_502(void **state)
{
	const struct failure f = {SPOTIFY_FAILED,   0, 502, PROFILE_FAILED,
				  "spotify_failed", 0};

	check_failure(&fake_spotify.me, &f);
}

static void
test_callback_profile_forbidden_in_development_mode_is_403(void **state)
{
	const struct failure f = {
		SPOTIFY_FORBIDDEN,	 0, 403, "spotify_access_denied",
		"spotify_access_denied", 1};

	check_failure(&fake_spotify.me, &f);
	assert_true(fake_log_has("spotify_access_denied", "at=login", NULL));
}

static void
test_callback_profile_rate_limited_is_503_with_retry_after(void **state)
{
	const struct failure f = {SPOTIFY_RATE_LIMITED,	  5, 503, "spotify_rate_limited",
				  "spotify_rate_limited", 0};

	check_failure(&fake_spotify.me, &f);
}

static void
test_callback_profile_quota_exceeded_is_503_with_retry_after(void **state)
{
	const struct failure f = {
		SPOTIFY_QUOTA_EXCEEDED,	  60, 503, "spotify_quota_exceeded",
		"spotify_quota_exceeded", 0};

	check_failure(&fake_spotify.me, &f);
}

/* -- the login stored -------------------------------------------------------- */

/* The login went through: 302 to next, a session cookie, the login ended. */
static void
assert_logged_in(const char *identity)
{
	char location[128], value[SESSION_COOKIE_MAX + 1], want[64];
	struct session_cookie cookie;

	assert_int_equal(res.status, 302);
	assert_string_equal(fake_header(&res, "Location", location, sizeof(location)),
			    "/account");
	assert_non_null(fake_set_cookie(&res, SESSION_COOKIE, value, sizeof(value)));
	assert_int_equal(session_verify(value, time(NULL), &cookie), 0);
	assert_true(fake_clears_cookie(&res, OAUTH_COOKIE));
	assert_string_equal(fake_store_events(), "login");
	assert_int_equal(fake_store.commits, 1);
	snprintf(want, sizeof(want), "identity=%s", identity);
	assert_true(fake_log_has("login", want, NULL));
}

static void
test_callback_stores_a_new_user_and_sets_the_session_cookie(void **state)
{
	char verifier[SESSION_VERIFIER_LEN + 1], challenge[B64URL_LEN(32) + 1];
	const struct fake_user *u;

	callback(good_query());
	assert_logged_in("new");
	assert_int_equal(fake_store.data.nusers, 1);
	u = &fake_store.data.users[0];
	assert_string_equal(u->spotify_id, "alice");
	assert_string_equal(u->account_id, "acct-a");
	assert_string_equal(u->access_token, "AT-new");
	assert_string_equal(u->refresh_token, "RT-new");
	assert_int_equal(fake_store.data.nsessions, 1);
	assert_int_equal(fake_store.data.sessions[0].user_id, u->id);
	/* the session row remembers the device and network, not the address */
	assert_string_equal(fake_store.data.sessions[0].client.network, "192.0.2.0/24");
	/* Spotify got the code and this login's PKCE verifier */
	assert_int_equal(session_pkce(&login, verifier, challenge), 0);
	assert_string_equal(fake_spotify.code, "CODE-1");
	assert_string_equal(fake_spotify.verifier, verifier);
	/* no token in the log */
	assert_null(strstr(fake_log_text(), "AT-new"));
	assert_null(strstr(fake_log_text(), "RT-new"));
}

static void
test_callback_session_cookie_lasts_as_long_as_its_row(void **state)
{
	callback(good_query());
	assert_int_equal(res.status, 302);
	/* BAA_SESSION_TTL is a day here: the row's first idle deadline */
	assert_non_null(strstr(res.headers, "; Max-Age=86400; Path=/; HttpOnly; Secure; "
					    "SameSite=Lax\r\n"));
}

/* The database's second has not turned yet: the cookie still lives a whole day. */
static void
test_callback_session_cookie_is_not_a_second_short(void **state)
{
	fake_store.clock_behind = 1;
	callback(good_query());
	assert_int_equal(res.status, 302);
	assert_non_null(strstr(res.headers, "; Max-Age=86400; "));
}

/* A login started before the cookie's rename finishes, and both names end. */
static void
test_callback_finishes_a_login_under_the_cookies_first_name(void **state)
{
	char value[SESSION_COOKIE_MAX + 1];

	assert_int_equal(session_sign_login(&login, value, sizeof(value)), 0);
	fake_cookie(cookie_header, sizeof(cookie_header), LEGACY_OAUTH_COOKIE, value);
	callback(good_query());
	assert_logged_in("new");
	assert_true(fake_clears_cookie(&res, LEGACY_OAUTH_COOKIE));
}

static void
test_callback_finds_a_returning_user_by_account_id(void **state)
{
	long long id =
		fake_store_add_user("alice-old-id", "acct-a", "AT-old", "RT-old", 0);

	fake_store_user(id)->needs_reauth_at = time(NULL) - 10;
	callback(good_query());
	assert_logged_in("account_id");
	assert_int_equal(fake_store.data.nusers, 1);
	assert_string_equal(fake_store_user(id)->spotify_id, "alice");
	assert_string_equal(fake_store_user(id)->access_token, "AT-new");
	/* a login renews the grant */
	assert_int_equal(fake_store_user(id)->needs_reauth_at, 0);
}

static void
test_callback_links_a_row_found_by_spotify_id(void **state)
{
	long long id = fake_store_add_user("alice", "", "AT-old", "RT-old", 0);

	callback(good_query());
	assert_logged_in("linked");
	assert_int_equal(fake_store.data.nusers, 1);
	assert_string_equal(fake_store_user(id)->account_id, "acct-a");
}

static void
test_callback_matches_by_spotify_id_when_spotify_sends_no_account_id(void **state)
{
	long long id = fake_store_add_user("alice", "", "AT-old", "RT-old", 0);

	fake_spotify.user.account_id[0] = '\0';
	callback(good_query());
	assert_logged_in("spotify_id");
	assert_int_equal(fake_store.data.nusers, 1);
	assert_string_equal(fake_store_user(id)->access_token, "AT-new");
}

static void
test_callback_gives_a_new_row_when_the_id_now_is_another_accounts(void **state)
{
	long long old = fake_store_add_user("alice", "acct-other", "AT-old", "RT-old", 0);

	callback(good_query());
	assert_logged_in("new");
	assert_int_equal(fake_store.data.nusers, 2);
	/* the other account keeps its row and tokens, under no id */
	assert_string_equal(fake_store_user(old)->spotify_id, "detached:1");
	assert_string_equal(fake_store_user(old)->access_token, "AT-old");
}

static void
test_callback_answers_503_when_the_login_cannot_be_stored(void **state)
{
	fake_store.failing = "sessions_create";
	callback(good_query());
	fake_assert_error(&res, 503, "database unavailable");
	assert_nothing_stored();
	assert_false(fake_clears_cookie(&res, OAUTH_COOKIE));
	assert_int_equal(fake_store.rollbacks, 1);
	assert_int_equal(fake_store_called("users_store_login"), 1);
}

static void
test_callback_tries_a_conflicting_login_three_times(void **state)
{
	fake_store.failing = "audit_record";
	fake_store.sqlstate = "23505";
	callback(good_query());
	fake_assert_error(&res, 503, "database unavailable");
	assert_int_equal(fake_store_called("users_store_login"), 3);
	assert_nothing_stored();
}

static void
test_callback_sends_a_browser_back_when_the_database_fails(void **state)
{
	char location[128];

	fake_store.failing = "db_begin";
	callback_as(good_query(), "navigate");
	assert_int_equal(res.status, 303);
	assert_string_equal(fake_header(&res, "Location", location, sizeof(location)),
			    "/?login_error=unavailable");
	assert_nothing_stored();
}

#define T(name) cmocka_unit_test_setup(name, setup)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_callback_stores_what_the_login_asked_for),
		T(test_callback_of_a_login_that_says_nothing_of_its_scopes_stores_null),
		T(test_callback_rejects_malformed_query),
		T(test_callback_clears_the_login_when_the_user_declines_at_spotify),
		T(test_callback_answers_400_to_another_error_from_spotify),
		T(test_callback_sends_a_browser_to_the_page_with_the_reason),
		T(test_callback_rejects_missing_code),
		T(test_callback_rejects_code_of_bad_text),
		T(test_callback_rejects_without_a_login_in_progress),
		T(test_callback_rejects_a_login_cookie_sent_twice),
		T(test_callback_rejects_expired_login),
		T(test_callback_rejects_forged_state),
		T(test_callback_sends_a_browser_back_with_login_expired),
		T(test_callback_refuses_a_state_used_before),
		T(test_callback_answers_503_when_the_state_cannot_be_recorded),
		T(test_callback_while_paused_keeps_the_state_for_later),
		T(test_callback_while_quota_is_used_up_says_so),
		T(test_callback_exchange_invalid_grant_is_502),
		T(test_callback_exchange_failure_is_502),
		T(test_callback_exchange_forbidden_is_403_and_ends_the_login),
		T(test_callback_exchange_rate_limited_is_503_with_retry_after),
		T(test_callback_exchange_quota_exceeded_is_503_with_retry_after),
		T(test_callback_profile_unauthorized_is_502),
		T(test_callback_profile_failure_is_502),
		T(test_callback_profile_forbidden_in_development_mode_is_403),
		T(test_callback_profile_rate_limited_is_503_with_retry_after),
		T(test_callback_profile_quota_exceeded_is_503_with_retry_after),
		T(test_callback_stores_a_new_user_and_sets_the_session_cookie),
		T(test_callback_session_cookie_lasts_as_long_as_its_row),
		T(test_callback_session_cookie_is_not_a_second_short),
		T(test_callback_finishes_a_login_under_the_cookies_first_name),
		T(test_callback_finds_a_returning_user_by_account_id),
		T(test_callback_links_a_row_found_by_spotify_id),
		T(test_callback_matches_by_spotify_id_when_spotify_sends_no_account_id),
		T(test_callback_gives_a_new_row_when_the_id_now_is_another_accounts),
		T(test_callback_answers_503_when_the_login_cannot_be_stored),
		T(test_callback_tries_a_conflicting_login_three_times),
		T(test_callback_sends_a_browser_back_when_the_database_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
