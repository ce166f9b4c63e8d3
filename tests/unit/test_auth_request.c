/*
 * GET /auth, nginx's auth_request, against the fake store (fakes.h): who
 * the headers say the user is, when they are left out, what a browser and
 * a program are told without a session, the renewal, and that no stored
 * byte can break a header line.
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
static struct request req;
static char cookie_header[2048], value[SESSION_COOKIE_MAX + 1];
static long long user;

/* alice (account acct-a) logged in; the request carries her cookie. */
static int
setup(void **state)
{
	if (fakes_reset(state) < 0)
		return -1;
	user = fake_store_add_user("alice", "acct-a", "AT", "RT", 0);
	if (fake_store_add_session(user, value, sizeof(value)) < 0)
		return -1;
	fake_cookie(cookie_header, sizeof(cookie_header), SESSION_COOKIE, value);
	req = fake_request(HTTP_GET, "/auth", "", cookie_header);
	req.request_uri = "/app/";
	return 0;
}

static void
check(void)
{
	response_init(&res);
	auth_request_check(&req, &res);
}

static const char *
header(const char *name)
{
	static char out[2048];

	return fake_header(&res, name, out, sizeof(out));
}

/* How many of the response's header lines start with name. */
static int
lines_naming(const char *name)
{
	int n = 0;

	for (const char *line = res.headers, *end; *line; line = end + 2) {
		n += strncmp(line, name, strlen(name)) == 0;
		if ((end = strstr(line, "\r\n")) == NULL)
			break;
	}
	return n;
}

static void
assert_no_user_headers(void)
{
	assert_null(header("X-Baa-User-Id"));
	assert_null(header("X-Baa-Spotify-Id"));
	assert_null(header("X-Baa-Account-Id"));
}

static void
test_auth_answers_204_with_the_user_of_a_live_session(void **state)
{
	char id[24];

	check();
	assert_int_equal(res.status, 204);
	assert_int_equal(res.body_len, 0);
	assert_null(res.content_type);
	snprintf(id, sizeof(id), "%lld", user);
	assert_string_equal(header("X-Baa-User-Id"), id);
	assert_string_equal(header("X-Baa-Spotify-Id"), "alice");
	assert_string_equal(header("X-Baa-Account-Id"), "acct-a");
	/* a cookie with more than half its life left is not issued again */
	assert_null(header("X-Baa-Set-Cookie-1"));
	assert_null(header("Set-Cookie"));
	assert_null(header("X-Baa-Login"));
}

static void
test_auth_leaves_the_account_id_out_until_spotify_told_it(void **state)
{
	fake_store_user(user)->account_id[0] = '\0';
	check();
	assert_int_equal(res.status, 204);
	assert_string_equal(header("X-Baa-Spotify-Id"), "alice");
	assert_null(header("X-Baa-Account-Id"));
}

static void
test_auth_refuses_a_request_without_a_cookie(void **state)
{
	req.cookie = NULL;
	check();
	assert_int_equal(res.status, 401);
	assert_no_user_headers();
	/* a program (no Sec-Fetch-Mode, no Accept: text/html) keeps its 401 */
	assert_null(header("X-Baa-Login"));
}

static void
test_auth_refuses_a_forged_cookie(void **state)
{
	char forged[sizeof(value)];

	snprintf(forged, sizeof(forged), "%s", value);
	forged[strlen(forged) - 2] ^= 1; /* the MAC */
	fake_cookie(cookie_header, sizeof(cookie_header), SESSION_COOKIE, forged);
	check();
	assert_int_equal(res.status, 401);
	assert_no_user_headers();
}

static void
test_auth_refuses_an_expired_cookie(void **state)
{
	struct session_cookie c;
	char old[SESSION_COOKIE_MAX + 1];

	assert_int_equal(session_new_id(&c, time(NULL) - 1), 0);
	assert_int_equal(session_sign(&c, old, sizeof(old)), 0);
	fake_cookie(cookie_header, sizeof(cookie_header), SESSION_COOKIE, old);
	check();
	assert_int_equal(res.status, 401);
	assert_no_user_headers();
}

static void
test_auth_refuses_a_session_that_ended_and_clears_its_cookie(void **state)
{
	fake_store.data.nsessions = 0; /* logged out on another device */
	check();
	assert_int_equal(res.status, 401);
	assert_no_user_headers();
	assert_true(fake_clears_cookie(&res, SESSION_COOKIE));
	assert_non_null(header("X-Baa-Set-Cookie-1"));
	assert_null(header("X-Baa-Set-Cookie-2"));
}

/*
 * Each cookie under a name of its own: nginx passes one line per name on,
 * and a second Set-Cookie would be lost (1.22) or joined into the first.
 */
static void
test_auth_numbers_its_cookies_and_never_sends_set_cookie(void **state)
{
	char both[4096];

	fake_store.data.nsessions = 0;
	snprintf(both, sizeof(both), "%s; %s=v1.old", cookie_header,
		 LEGACY_SESSION_COOKIE);
	req.cookie = both;
	check();
	assert_int_equal(res.status, 401);
	assert_null(header("Set-Cookie"));
	assert_non_null(
		strstr(header("X-Baa-Set-Cookie-1"), SESSION_COOKIE "=; Max-Age=0;"));
	assert_non_null(strstr(header("X-Baa-Set-Cookie-2"),
			       LEGACY_SESSION_COOKIE "=; Max-Age=0;"));
	assert_null(header("X-Baa-Set-Cookie-3"));
}

static void
test_auth_sends_a_navigation_to_the_login_and_back(void **state)
{
	req.cookie = NULL;
	req.sec_fetch_mode = "navigate";
	req.request_uri = "/app/report?year=2026&q=a%20b"; /* raw, as sent */
	check();
	assert_int_equal(res.status, 401);
	assert_string_equal(header("X-Baa-Login"),
			    "/login?next=%2Fapp%2Freport%3Fyear%3D2026%26q%3Da%2520b");
}

static void
test_auth_takes_accept_html_for_a_navigation_only_without_sec_fetch_mode(void **state)
{
	req.cookie = NULL;
	req.accept = "text/html,application/xhtml+xml,*/*;q=0.8";
	check();
	assert_string_equal(header("X-Baa-Login"), "/login?next=%2Fapp%2F");
	/* fetch() from a page: a program, whatever it accepts */
	req.sec_fetch_mode = "cors";
	check();
	assert_int_equal(res.status, 401);
	assert_null(header("X-Baa-Login"));
}

static void
test_auth_sends_to_the_plain_login_what_login_would_not_take_back(void **state)
{
	static char long_uri[SESSION_NEXT_MAX + 2];

	req.cookie = NULL;
	req.sec_fetch_mode = "navigate";
	req.request_uri = "//evil.example/app/";
	check();
	assert_string_equal(header("X-Baa-Login"), "/login");
	memset(long_uri, 'a', sizeof(long_uri) - 1);
	long_uri[0] = '/';
	req.request_uri = long_uri;
	check();
	assert_string_equal(header("X-Baa-Login"), "/login");
	req.request_uri = NULL;
	check();
	assert_string_equal(header("X-Baa-Login"), "/login");
}

static void
test_auth_renews_a_cookie_in_the_second_half_of_its_life(void **state)
{
	char renewed[SESSION_COOKIE_MAX + 1];

	/* The cookie has a day left of a four-day TTL. */
	fake_cfg.session_ttl = 4 * 86400;
	check();
	assert_int_equal(res.status, 204);
	assert_non_null(header("X-Baa-User-Id"));
	assert_non_null(fake_set_cookie(&res, SESSION_COOKIE, renewed, sizeof(renewed)));
	assert_non_null(header("X-Baa-Set-Cookie-1"));
	assert_null(header("Set-Cookie"));
	assert_string_not_equal(renewed, value);
	assert_true(fake_store.data.sessions[0].expires_at > time(NULL) + 3 * 86400);
}

/*
 * A stored id with a byte a header cannot carry is passed percent-encoded
 * (and '%' too, so the application can decode it back): never raw, where
 * CR or LF would end the header or start another, and never a 500 that
 * would shut the user out of every protected location for good.
 */
static void
test_auth_never_passes_a_value_that_could_break_a_header(void **state)
{
	snprintf(fake_store_user(user)->spotify_id, SPOTIFY_ID_MAX + 1,
		 "alice\r\nX-Baa-User-Id: 1");
	check();
	assert_int_equal(res.status, 204);
	/* One header line per header: no raw break ends the id early. */
	assert_null(strstr(res.headers, "alice\r"));
	assert_null(strstr(res.headers, "alice\n"));
	assert_int_equal(lines_naming("X-Baa-User-Id:"), 1);
	assert_string_equal(header("X-Baa-Spotify-Id"), "alice%0D%0AX-Baa-User-Id:%201");

	snprintf(fake_store_user(user)->spotify_id, SPOTIFY_ID_MAX + 1, "alice");
	snprintf(fake_store_user(user)->account_id, SPOTIFY_ID_MAX + 1, "%s",
		 "acct\n100%\x7f\xc3\xa9");
	check();
	assert_int_equal(res.status, 204);
	assert_string_equal(header("X-Baa-Spotify-Id"), "alice");
	assert_string_equal(header("X-Baa-Account-Id"), "acct%0A100%25%7F%C3%A9");
}

static void
test_auth_answers_503_not_401_when_the_database_fails(void **state)
{
	fake_store.failing = "sessions_check";
	req.sec_fetch_mode = "navigate";
	check();
	assert_int_equal(res.status, 503);
	assert_no_user_headers();
	/* nobody is sent to log in again for the database's sake */
	assert_null(header("X-Baa-Login"));
}

#define T(name) cmocka_unit_test_setup(name, setup)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_auth_answers_204_with_the_user_of_a_live_session),
		T(test_auth_leaves_the_account_id_out_until_spotify_told_it),
		T(test_auth_refuses_a_request_without_a_cookie),
		T(test_auth_refuses_a_forged_cookie),
		T(test_auth_refuses_an_expired_cookie),
		T(test_auth_refuses_a_session_that_ended_and_clears_its_cookie),
		T(test_auth_numbers_its_cookies_and_never_sends_set_cookie),
		T(test_auth_sends_a_navigation_to_the_login_and_back),
		T(test_auth_takes_accept_html_for_a_navigation_only_without_sec_fetch_mode),
		T(test_auth_sends_to_the_plain_login_what_login_would_not_take_back),
		T(test_auth_renews_a_cookie_in_the_second_half_of_its_life),
		T(test_auth_never_passes_a_value_that_could_break_a_header),
		T(test_auth_answers_503_not_401_when_the_database_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
