/*
 * GET /login's scopes and GET /me's grant, against the fakes (fakes.h):
 * what Spotify is asked for (the fake authorize URL shows the scopes and
 * show_dialog baa passed), what is refused, and what /me shows.
 * tests/integration/test_scopes.py drives the same through nginx, the
 * fake Spotify and PostgreSQL.
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

/* SPOTIFY_SCOPES user-read-email; two more may be asked for. */
static int
setup(void **state)
{
	char value[SESSION_COOKIE_MAX + 1];

	if (fakes_reset(state) < 0)
		return -1;
	fake_cfg.spotify_scopes = "user-read-email";
	fake_cfg.spotify_scopes_allowed =
		"user-read-email playlist-read-private streaming";
	user = fake_store_add_user("alice", "acct-a", "AT", "RT", 0);
	snprintf(fake_store_user(user)->scope, sizeof(fake_store_user(user)->scope),
		 "user-read-email streaming user-top-read");
	if (fake_store_add_session(user, value, sizeof(value)) < 0)
		return -1;
	fake_cookie(cookie_header, sizeof(cookie_header), SESSION_COOKIE, value);
	return 0;
}

static void
get(route_handler *handler, const char *path, const char *query, int with_session)
{
	struct request req =
		fake_request(HTTP_GET, path, query, with_session ? cookie_header : NULL);

	response_init(&res);
	handler(&req, &res);
}

/* The scope and show_dialog of the 302's Location, as the fake wrote them. */
static void
assert_asked(const char *scopes, int show_dialog)
{
	char location[2048], want[1024];

	assert_int_equal(res.status, 302);
	assert_non_null(fake_header(&res, "Location", location, sizeof(location)));
	snprintf(want, sizeof(want), "&scope=%s&show_dialog=%d", scopes, show_dialog);
	if (strstr(location, want) == NULL)
		fail_msg("Location %s has no %s", location, want);
	assert_non_null(fake_set_cookie(&res, OAUTH_COOKIE, want, sizeof(want)));
}

static void
assert_refused(int status, const char *code)
{
	char want[256], cookie[SESSION_COOKIE_MAX + 1];

	assert_int_equal(res.status, status);
	snprintf(want, sizeof(want), "\"error\":\"%s\"", code);
	if (strstr(res.body, want) == NULL)
		fail_msg("body %s has no %s", res.body, want);
	/* Nothing started: no login cookie. */
	assert_null(fake_set_cookie(&res, OAUTH_COOKIE, cookie, sizeof(cookie)));
}

static void
test_login_asks_for_the_configured_and_requested_scopes(void **state)
{
	get(auth_login, "/login", "scope=playlist-read-private+user-read-email", 0);
	assert_asked("user-read-email playlist-read-private", 0);
	get(auth_login, "/login", "", 0);
	assert_asked("user-read-email", 0);
}

/*
 * With a session the user's grant is kept, as far as the allowlist still
 * holds it: user-top-read was withdrawn and is not asked for again.
 */
static void
test_login_keeps_the_session_users_grant_as_far_as_allowed(void **state)
{
	get(auth_login, "/login", "scope=playlist-read-private", 1);
	assert_asked("user-read-email streaming playlist-read-private", 0);
}

static void
test_login_refuses_a_scope_not_allowed_or_malformed(void **state)
{
	get(auth_login, "/login", "scope=user-top-read", 1);
	assert_refused(400, "scope_not_allowed");
	assert_non_null(strstr(res.body, "'user-top-read'"));
	get(auth_login, "/login", "scope=Streaming", 0);
	assert_refused(400, "invalid_scope");
	get(auth_login, "/login", "scope=streaming&scope=streaming", 0);
	assert_refused(400, "invalid_scope");
}

/* Another account may log in: it is not asked for the first one's grant. */
static void
test_login_switch_asks_for_the_dialog_without_the_grant(void **state)
{
	get(auth_login, "/login", "switch=1", 1);
	assert_asked("user-read-email", 1);
	get(auth_login, "/login", "switch=0", 1);
	assert_asked("user-read-email streaming", 0);
	get(auth_login, "/login", "switch=yes", 1);
	assert_int_equal(res.status, 400);
}

/* Asking without the grant would narrow it: better a retry. */
static void
test_login_answers_503_when_the_session_cannot_be_checked(void **state)
{
	fake_store.failing = "sessions_check";
	get(auth_login, "/login", "", 1);
	assert_refused(503, "database unavailable");
	get(auth_login, "/login", "", 0);
	assert_asked("user-read-email", 0);
}

static void
test_me_shows_the_grant_and_recommends_a_login_when_it_is_short(void **state)
{
	get(me_profile, "/me", "", 1);
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body, "\"reauth_recommended\":false"));
	assert_non_null(strstr(res.body,
			       "\"scope\":\"user-read-email streaming user-top-read\""));
	/* SPOTIFY_SCOPES grew: the grant lacks playlist-read-private. */
	fake_cfg.spotify_scopes = "user-read-email playlist-read-private";
	get(me_profile, "/me", "", 1);
	assert_non_null(strstr(res.body, "\"reauth_recommended\":true"));
	get(me_token, "/me/token", "", 1);
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body, "\"reauth_recommended\":true"));
}

/* The login cookie says what this login asked for, for /callback to store. */
static void
test_login_cookie_carries_what_the_login_asked_for(void **state)
{
	char cookie[SESSION_COOKIE_MAX + 1];
	struct oauth_login login;

	get(auth_login, "/login", "scope=playlist-read-private", 1);
	assert_non_null(fake_set_cookie(&res, OAUTH_COOKIE, cookie, sizeof(cookie)));
	assert_int_equal(session_verify_login(cookie, time(NULL), &login), 0);
	assert_true(login.has_asked);
	assert_string_equal(login.asked,
			    "user-read-email streaming playlist-read-private");
}

/*
 * Spotify dropped playlist-read-private at the last login, which asked for
 * it: another login would bring nothing. A scope configured since, never
 * asked for, is worth one.
 */
static void
test_me_recommends_no_login_for_a_scope_the_last_one_asked_for(void **state)
{
	struct fake_user *u = fake_store_user(user);

	snprintf(u->scope, sizeof(u->scope), "user-read-email");
	snprintf(u->scope_requested, sizeof(u->scope_requested),
		 "user-read-email playlist-read-private");
	u->has_scope_requested = 1;
	fake_cfg.spotify_scopes = "user-read-email playlist-read-private";
	get(me_profile, "/me", "", 1);
	assert_non_null(strstr(res.body, "\"reauth_recommended\":false"));
	get(me_token, "/me/token", "", 1);
	assert_non_null(strstr(res.body, "\"reauth_recommended\":false"));

	fake_cfg.spotify_scopes = "user-read-email playlist-read-private streaming";
	get(me_profile, "/me", "", 1);
	assert_non_null(strstr(res.body, "\"reauth_recommended\":true"));
	get(me_token, "/me/token", "", 1);
	assert_non_null(strstr(res.body, "\"reauth_recommended\":true"));
}

#define T(name) cmocka_unit_test_setup(name, setup)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_login_asks_for_the_configured_and_requested_scopes),
		T(test_login_keeps_the_session_users_grant_as_far_as_allowed),
		T(test_login_refuses_a_scope_not_allowed_or_malformed),
		T(test_login_switch_asks_for_the_dialog_without_the_grant),
		T(test_login_answers_503_when_the_session_cannot_be_checked),
		T(test_me_shows_the_grant_and_recommends_a_login_when_it_is_short),
		T(test_login_cookie_carries_what_the_login_asked_for),
		T(test_me_recommends_no_login_for_a_scope_the_last_one_asked_for),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
