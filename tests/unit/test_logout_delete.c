/*
 * POST /logout and DELETE /me against the fake store (fakes.h): which
 * sessions end, what the browser's cookies become, what is recorded, and
 * that a database failure changes nothing.
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
static long long user, this_session, other_session;
static struct fake_data stored_before;

/* A user logged in on two devices; the request comes from the first. */
static int
setup(void **state)
{
	char value[SESSION_COOKIE_MAX + 1], other[SESSION_COOKIE_MAX + 1];

	if (fakes_reset(state) < 0)
		return -1;
	user = fake_store_add_user("alice", "acct-a", "AT", "RT", 0);
	this_session = fake_store_add_session(user, value, sizeof(value));
	other_session = fake_store_add_session(user, other, sizeof(other));
	fake_cookie(cookie_header, sizeof(cookie_header), SESSION_COOKIE, value);
	memcpy(&stored_before, &fake_store.data, sizeof(stored_before));
	return 0;
}

static void
handle(enum http_method method, const char *path, const char *query, route_handler *fn)
{
	struct request req = fake_request(method, path, query,
					  cookie_header[0] ? cookie_header : NULL);

	response_init(&res);
	fn(&req, &res);
}

static void
logout(const char *query)
{
	handle(HTTP_POST, "/logout", query, auth_logout);
}

static void
delete_me(void)
{
	handle(HTTP_DELETE, "/me", "", me_delete);
}

static int
session_exists(long long id)
{
	for (int i = 0; i < fake_store.data.nsessions; i++)
		if (fake_store.data.sessions[i].id == id)
			return 1;
	return 0;
}

static void
assert_nothing_changed(void)
{
	assert_memory_equal(&fake_store.data, &stored_before, sizeof(stored_before));
}

/* -- logout ---------------------------------------------------------------- */

static void
test_logout_ends_this_session_only(void **state)
{
	logout("");
	assert_int_equal(res.status, 200);
	assert_string_equal(res.body, "{\"status\":\"logged out\"}\n");
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_false(session_exists(this_session));
	assert_true(session_exists(other_session));
	assert_string_equal(fake_store_events(), "logout");
	assert_int_equal(fake_store.data.events[0].session_id, this_session);
	/* first-format cookies of the user end with it */
	assert_int_equal(fake_store_user(user)->generation, 1);
	assert_true(fake_log_has("logout", NULL));
}

static void
test_logout_everywhere_ends_every_session(void **state)
{
	logout("everywhere=1");
	assert_int_equal(res.status, 200);
	assert_int_equal(fake_store_live_sessions(user), 0);
	assert_string_equal(fake_store_events(), "logout_everywhere");
	assert_true(fake_log_has("logout_everywhere", NULL));
	/* the tokens stay: logging out is not revoking the grant */
	assert_string_equal(fake_store_user(user)->access_token, "AT");
}

static void
test_logout_with_everywhere_0_ends_this_session_only(void **state)
{
	logout("everywhere=0");
	assert_int_equal(res.status, 200);
	assert_true(session_exists(other_session));
	assert_string_equal(fake_store_events(), "logout");
}

static void
test_logout_rejects_a_bad_everywhere_and_changes_nothing(void **state)
{
	logout("everywhere=yes");
	assert_int_equal(res.status, 400);
	assert_string_equal(res.body, "{\"error\":\"everywhere must be 1 or 0\"}\n");
	logout("everywhere=1&everywhere=1");
	assert_int_equal(res.status, 400);
	logout("everywhere=%zz");
	assert_int_equal(res.status, 400);
	assert_false(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_nothing_changed();
}

static void
test_logout_without_a_session_still_clears_the_cookie(void **state)
{
	cookie_header[0] = '\0';
	logout("");
	assert_int_equal(res.status, 200);
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_nothing_changed();
}

static void
test_logout_of_a_session_already_gone_answers_logged_out(void **state)
{
	fake_store.data.nsessions = 0;
	memcpy(&stored_before, &fake_store.data, sizeof(stored_before));
	logout("");
	assert_int_equal(res.status, 200);
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_nothing_changed();
}

static void
test_logout_answers_503_and_ends_nothing_when_the_database_fails(void **state)
{
	fake_store.failing = "audit_record";
	logout("");
	assert_int_equal(res.status, 503);
	assert_string_equal(res.body, "{\"error\":\"database unavailable\"}\n");
	assert_false(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_nothing_changed();
}

static void
test_logout_answers_503_when_the_session_cannot_be_checked(void **state)
{
	fake_store.failing = "sessions_check";
	logout("");
	assert_int_equal(res.status, 503);
	assert_false(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_nothing_changed();
}

/* -- delete ----------------------------------------------------------------- */

static void
test_delete_removes_the_user_and_everything_of_theirs(void **state)
{
	delete_me();
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body, "\"status\":\"deleted\""));
	assert_non_null(strstr(
		res.body, "\"revoke_url\":\"https://www.spotify.com/account/apps/\""));
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_null(fake_store_user(user));
	assert_int_equal(fake_store.data.nsessions, 0);
	/* one line without a user says that a deletion happened */
	assert_string_equal(fake_store_events(), "deleted");
	assert_int_equal(fake_store.data.events[0].user_id, 0);
	assert_true(fake_log_has("user_deleted", NULL));
}

static void
test_delete_answers_503_and_keeps_the_user_when_the_database_fails(void **state)
{
	fake_store.failing = "audit_record";
	delete_me();
	assert_int_equal(res.status, 503);
	assert_false(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_nothing_changed();
	fake_store.failing = "db_commit";
	delete_me();
	assert_int_equal(res.status, 503);
	assert_nothing_changed();
}

static void
test_delete_requires_a_session(void **state)
{
	cookie_header[0] = '\0';
	delete_me();
	assert_int_equal(res.status, 401);
	assert_string_equal(res.body, "{\"error\":\"not logged in\"}\n");
	assert_nothing_changed();
}

static void
delete_elsewhere(void)
{
	fake_store.data.nusers = 0;
}

static void
test_delete_of_a_user_deleted_meanwhile_is_401(void **state)
{
	fake_store.meanwhile = delete_elsewhere;
	delete_me();
	assert_int_equal(res.status, 401);
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_string_equal(fake_store_events(), "");
}

#define T(name) cmocka_unit_test_setup(name, setup)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_logout_ends_this_session_only),
		T(test_logout_everywhere_ends_every_session),
		T(test_logout_with_everywhere_0_ends_this_session_only),
		T(test_logout_rejects_a_bad_everywhere_and_changes_nothing),
		T(test_logout_without_a_session_still_clears_the_cookie),
		T(test_logout_of_a_session_already_gone_answers_logged_out),
		T(test_logout_answers_503_and_ends_nothing_when_the_database_fails),
		T(test_logout_answers_503_when_the_session_cannot_be_checked),
		T(test_delete_removes_the_user_and_everything_of_theirs),
		T(test_delete_answers_503_and_keeps_the_user_when_the_database_fails),
		T(test_delete_requires_a_session),
		T(test_delete_of_a_user_deleted_meanwhile_is_401),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
