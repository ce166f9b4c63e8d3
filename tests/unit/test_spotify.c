/* Reading Spotify's answers: token and profile JSON, the Retry-After header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/spotify.h"
#include "../../src/spotify_client.h"

static struct spotify_tokens tokens;
static struct spotify_user user;

static int
parse_tokens(const char *json, int refresh_required)
{
	return spotify_parse_tokens(json, strlen(json), refresh_required, &tokens);
}

static int
parse_user(const char *json)
{
	return spotify_parse_user(json, strlen(json), &user);
}

static void
test_retry_after_delta_seconds_are_taken_within_bounds(void **state)
{
	assert_int_equal(spotify_parse_retry_after("30"), 30);
	assert_int_equal(spotify_parse_retry_after("0"), 1);
	assert_int_equal(spotify_parse_retry_after("3600"), 3600);
	assert_int_equal(spotify_parse_retry_after("3601"), 3600);
}

/* Found by tests/fuzz/fuzz_retry_after: six digits and more were read as 1 s. */
static void
test_retry_after_of_many_digits_waits_the_longest_not_the_shortest(void **state)
{
	assert_int_equal(spotify_parse_retry_after("304247"), 3600);
	assert_int_equal(spotify_parse_retry_after("99999999999999999999999999"), 3600);
	assert_int_equal(spotify_parse_retry_after("000000000000000000000000005"), 5);
}

static void
test_retry_after_that_is_no_number_waits_one_second(void **state)
{
	assert_int_equal(spotify_parse_retry_after(NULL), 1);
	assert_int_equal(spotify_parse_retry_after(""), 1);
	assert_int_equal(spotify_parse_retry_after("-5"), 1);
	assert_int_equal(spotify_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 1);
}

static void
test_token_answer_is_read(void **state)
{
	assert_int_equal(
		parse_tokens("{\"access_token\":\"AT-1\",\"token_type\":\"Bearer\","
			     "\"expires_in\":3600,\"refresh_token\":\"RT-1\","
			     "\"scope\":\"user-read-private\"}",
			     1),
		0);
	assert_string_equal(tokens.access_token, "AT-1");
	assert_string_equal(tokens.refresh_token, "RT-1");
	assert_string_equal(tokens.scope, "user-read-private");
	assert_int_equal(tokens.expires_in, 3600);
}

/*
 * A refresh answer may carry scope or not; "" is a grant of no scope, which
 * baa must store, unlike an answer that says nothing of the grant.
 */
static void
test_token_answer_says_whether_it_carried_a_scope(void **state)
{
	assert_int_equal(parse_tokens("{\"access_token\":\"AT\",\"token_type\":"
				      "\"Bearer\",\"expires_in\":60}",
				      0),
			 0);
	assert_false(tokens.has_scope);
	assert_int_equal(parse_tokens("{\"access_token\":\"AT\",\"token_type\":"
				      "\"Bearer\",\"expires_in\":60,\"scope\":null}",
				      0),
			 0);
	assert_false(tokens.has_scope);
	assert_int_equal(parse_tokens("{\"access_token\":\"AT\",\"token_type\":"
				      "\"Bearer\",\"expires_in\":60,\"scope\":\"\"}",
				      0),
			 0);
	assert_true(tokens.has_scope);
	assert_string_equal(tokens.scope, "");
	assert_int_equal(parse_tokens("{\"access_token\":\"AT\",\"token_type\":"
				      "\"Bearer\",\"expires_in\":60,\"scope\":\"a b\"}",
				      0),
			 0);
	assert_true(tokens.has_scope);
	assert_string_equal(tokens.scope, "a b");
}

static void
test_token_answer_without_a_required_refresh_token_is_refused(void **state)
{
	const char *json =
		"{\"access_token\":\"AT\",\"token_type\":\"bearer\",\"expires_in\":60}";

	assert_int_equal(parse_tokens(json, 1), -1);
	assert_int_equal(parse_tokens(json, 0), 0);
	assert_string_equal(tokens.refresh_token, "");
}

static void
test_token_answer_that_is_not_a_bearer_token_is_refused(void **state)
{
	assert_int_equal(parse_tokens("{\"access_token\":\"AT\",\"token_type\":\"MAC\","
				      "\"expires_in\":60}",
				      0),
			 -1);
	assert_int_equal(
		parse_tokens("{\"access_token\":\"A T\",\"token_type\":\"Bearer\","
			     "\"expires_in\":60}",
			     0),
		-1);
	assert_int_equal(
		parse_tokens("{\"access_token\":\"AT\",\"token_type\":\"Bearer\","
			     "\"expires_in\":0}",
			     0),
		-1);
	assert_int_equal(parse_tokens("[]", 0), -1);
	assert_int_equal(parse_tokens("", 0), -1);
}

static void
test_invalid_grant_is_told_from_other_errors(void **state)
{
	const char *dead =
		"{\"error\":\"invalid_grant\",\"error_description\":\"revoked\"}";
	const char *other = "{\"error\":\"invalid_client\"}";

	assert_int_equal(spotify_is_invalid_grant(dead, strlen(dead)), 1);
	assert_int_equal(spotify_is_invalid_grant(other, strlen(other)), 0);
	assert_int_equal(spotify_is_invalid_grant("invalid_grant", 13), 0);
}

static int
quota(const char *json)
{
	return spotify_is_quota_exceeded(json, strlen(json));
}

/* The July 2026 shape, exactly; a short-term limit has no reason. */
static void
test_quota_exceeded_is_told_from_a_short_term_limit(void **state)
{
	assert_int_equal(quota("{\"error\":{\"status\":429,\"message\":\"Too many "
			       "requests\",\"reason\":\"QUOTA_EXCEEDED\"}}"),
			 1);
	assert_int_equal(quota("{\"error\":{\"status\":429,\"message\":\"API rate "
			       "limit exceeded\"}}"),
			 0);
	/* the accounts service's OAuth-style error, and no body at all */
	assert_int_equal(quota("{\"error\":\"too_many_requests\","
			       "\"error_description\":\"Too Many Requests\"}"),
			 0);
	assert_int_equal(quota(""), 0);
}

static void
test_quota_reason_must_be_the_error_objects_own_string(void **state)
{
	assert_int_equal(quota("{\"reason\":\"QUOTA_EXCEEDED\"}"), 0);
	assert_int_equal(quota("{\"error\":{\"reason\":\"quota_exceeded\"}}"), 0);
	assert_int_equal(quota("{\"error\":{\"reason\":[\"QUOTA_EXCEEDED\"]}}"), 0);
	assert_int_equal(quota("{\"error\":\"QUOTA_EXCEEDED\"}"), 0);
	assert_int_equal(quota("[{\"error\":{\"reason\":\"QUOTA_EXCEEDED\"}}]"), 0);
	assert_int_equal(quota("{\"error\":{\"reason\":\"QUOTA_EXCEEDED\""), 0);
}

static void
test_profile_is_read_and_display_name_may_be_null(void **state)
{
	assert_int_equal(
		parse_user("{\"id\":\"wizzler\",\"display_name\":\"JM Wizzler\"}"), 0);
	assert_string_equal(user.id, "wizzler");
	assert_string_equal(user.display_name, "JM Wizzler");
	assert_int_equal(parse_user("{\"id\":\"wizzler\",\"display_name\":null}"), 0);
	assert_string_equal(user.display_name, "");
	assert_int_equal(parse_user("{\"id\":\"\"}"), -1);
	assert_int_equal(parse_user("{\"id\":42}"), -1);
}

/*
 * Found by tests/fuzz/fuzz_spotify_user: a name that is not UTF-8 was
 * accepted, and the database then refused it: "database unavailable" (503)
 * for what is garbage from Spotify (502).
 */
static void
test_profile_text_that_is_not_utf8_is_refused(void **state)
{
	assert_int_equal(parse_user("{\"id\":\"u\",\"display_name\":\"Bj\xf6rk\"}"), -1);
	assert_int_equal(parse_user("{\"id\":\"\xc0\xaf\"}"), -1); /* overlong '/' */
	assert_int_equal(parse_user("{\"id\":\"u\",\"display_name\":\"\xed\xa0\x80\"}"),
			 -1); /* surrogate */
	assert_int_equal(
		parse_user("{\"id\":\"u\",\"display_name\":\"\xf4\x90\x80\x80\"}"), -1);
	assert_int_equal(
		parse_tokens("{\"access_token\":\"AT\",\"token_type\":\"Bearer\","
			     "\"expires_in\":60,\"scope\":\"\xff\"}",
			     0),
		-1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"display_name\":\"Bj\u00f6rk "
				    "\xf0\x9f\x90\x91\"}"),
			 0);
	assert_string_equal(user.display_name, "Bj\xc3\xb6rk \xf0\x9f\x90\x91");
}

/* cJSON turns \u0000 into a NUL: "abc\u0000x" must not be read as "abc". */
static void
test_escaped_nul_is_refused_not_cut(void **state)
{
	assert_int_equal(parse_user("{\"id\":\"abc\\u0000x\"}"), -1);
	assert_int_equal(parse_user("{\"id\":\"a\",\"display_name\":\"\\u0000\"}"), -1);
	assert_int_equal(parse_tokens("{\"access_token\":\"AT\\u0000\",\"token_type\":"
				      "\"Bearer\",\"expires_in\":60}",
				      0),
			 -1);
	assert_int_equal(parse_user("{\"id\":\"a\\u0041\"}"), 0);
	assert_string_equal(user.id, "aA");
}

/*
 * A raw NUL byte is no escape but cJSON keeps it inside a string (and skips
 * it between tokens as blank): "abc<NUL>def" must not be read as "abc", nor
 * "invalid_grant<NUL>x" as a dead grant. The bodies are passed with their
 * full length, as libcurl's are.
 */
#define BODY(s) (s), sizeof(s) - 1

static void
test_raw_nul_byte_is_refused_not_cut(void **state)
{
	assert_int_equal(spotify_parse_user(BODY("{\"id\":\"abcdef\"}"), &user), 0);
	assert_int_equal(spotify_parse_user(BODY("{\"id\":\"abc\0def\"}"), &user), -1);
	assert_int_equal(
		spotify_parse_user(BODY("{\"id\":\"u\",\"account_id\":\"a\0b\"}"), &user),
		-1);
	assert_int_equal(spotify_parse_user(BODY("{\"id\":\"abc\",\0\"x\":1}"), &user),
			 -1);
	assert_int_equal(
		spotify_parse_tokens(BODY("{\"access_token\":\"AT\0x\",\"token_type\":"
					  "\"Bearer\",\"expires_in\":60}"),
				     0, &tokens),
		-1);
	assert_int_equal(
		spotify_parse_tokens(BODY("{\"access_token\":\"AT\",\"token_type\":"
					  "\"Bearer\",\"expires_in\":60,"
					  "\"refresh_token\":\"R\0x\"}"),
				     1, &tokens),
		-1);
	assert_int_equal(spotify_is_invalid_grant(BODY("{\"error\":\"invalid_grant\"}")),
			 1);
	assert_int_equal(
		spotify_is_invalid_grant(BODY("{\"error\":\"invalid_grant\0x\"}")), 0);
	assert_int_equal(spotify_is_quota_exceeded(
				 BODY("{\"error\":{\"reason\":\"QUOTA_EXCEEDED\0x\"}}")),
			 0);
}

static void
test_profile_account_id_is_read_and_may_be_absent(void **state)
{
	assert_int_equal(parse_user("{\"id\":\"wizzler\",\"account_id\":"
				    "\"acct-0123456789abcdef\"}"),
			 0);
	assert_string_equal(user.id, "wizzler");
	assert_string_equal(user.account_id, "acct-0123456789abcdef");
	/* an older answer: no account_id, or null */
	assert_int_equal(parse_user("{\"id\":\"wizzler\"}"), 0);
	assert_string_equal(user.account_id, "");
	assert_int_equal(parse_user("{\"id\":\"wizzler\",\"account_id\":null}"), 0);
	assert_string_equal(user.account_id, "");
}

/* Sent, it is held to id's rules: "" would make all such users one account. */
static void
test_profile_account_id_that_is_empty_or_no_string_is_refused(void **state)
{
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":\"\"}"), -1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":42}"), -1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":{}}"), -1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":[\"a\"]}"), -1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":true}"), -1);
}

static void
test_profile_account_id_is_bounded_not_cut(void **state)
{
	char json[SPOTIFY_ID_MAX + 64], id[SPOTIFY_ID_MAX + 2];

	memset(id, 'k', SPOTIFY_ID_MAX);
	id[SPOTIFY_ID_MAX] = '\0';
	snprintf(json, sizeof(json), "{\"id\":\"u\",\"account_id\":\"%s\"}", id);
	assert_int_equal(parse_user(json), 0);
	assert_int_equal(strlen(user.account_id), SPOTIFY_ID_MAX);
	strcat(id, "k");
	snprintf(json, sizeof(json), "{\"id\":\"u\",\"account_id\":\"%s\"}", id);
	assert_int_equal(parse_user(json), -1);
}

static void
test_profile_account_id_must_be_utf8_without_nul(void **state)
{
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":\"a\\u0000b\"}"), -1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":\"\xc0\xaf\"}"), -1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":\"\xed\xa0\x80\"}"),
			 -1);
	assert_int_equal(parse_user("{\"id\":\"u\",\"account_id\":\"\\u00e5\"}"), 0);
	assert_string_equal(user.account_id, "\xc3\xa5");
}

/*
 * Development mode: no email, country, product, followers or
 * explicit_content; images may be empty or absent. None of them matters.
 */
static void
test_development_mode_profile_without_optional_fields_is_read(void **state)
{
	assert_int_equal(
		parse_user("{\"display_name\":\"Dev\",\"external_urls\":{\"spotify\":"
			   "\"https://open.spotify.com/user/dev\"},\"href\":"
			   "\"https://api.spotify.com/v1/users/dev\",\"id\":\"dev\","
			   "\"account_id\":\"acct-1\",\"type\":\"user\","
			   "\"uri\":\"spotify:user:dev\"}"),
		0);
	assert_string_equal(user.id, "dev");
	assert_string_equal(user.account_id, "acct-1");
	assert_string_equal(user.display_name, "Dev");
	/* whatever the optional fields hold, they are not read */
	assert_int_equal(
		parse_user("{\"id\":\"dev\",\"email\":5,\"country\":null,"
			   "\"product\":[],\"images\":\"x\",\"followers\":\"y\"}"),
		0);
	assert_string_equal(user.display_name, "");
}

static const struct config url_config = {
	.spotify_client_id = "cid",
	.spotify_redirect_uri = "https://baa.example/callback",
	.spotify_accounts_url = "https://accounts.spotify.com",
};

static void
authorize_url_with(const char *scopes, int show_dialog, char *out, size_t size)
{
	assert_int_equal(spotify_init(&url_config), 0);
	assert_int_equal(spotify_authorize_url("STATE", "CHALLENGE", scopes, show_dialog,
					       out, size),
			 0);
	spotify_cleanup();
}

static void
authorize_url(const char *scopes, char *out, size_t size)
{
	authorize_url_with(scopes, 0, out, size);
}

/* /login?switch=1: Spotify shows its consent page, with "Not you?". */
static void
test_authorize_url_asks_for_the_dialog_only_when_told(void **state)
{
	char url[2048];

	authorize_url_with("user-read-email", 1, url, sizeof(url));
	assert_non_null(strstr(url, "&scope=user-read-email&"));
	assert_non_null(strstr(url, "&show_dialog=true"));
	authorize_url_with("user-read-email", 0, url, sizeof(url));
	assert_null(strstr(url, "show_dialog"));
}

/* Without scopes (the default) the parameter is left out, not sent empty. */
static void
test_authorize_url_has_no_scope_parameter_without_scopes(void **state)
{
	char url[2048];

	authorize_url(NULL, url, sizeof(url));
	assert_string_equal(url,
			    "https://accounts.spotify.com/authorize?client_id=cid&"
			    "response_type=code&redirect_uri=https%3A%2F%2Fbaa.example%"
			    "2Fcallback&state=STATE&code_challenge=CHALLENGE&"
			    "code_challenge_method=S256");
	authorize_url("  ", url, sizeof(url));
	assert_null(strstr(url, "scope"));
	authorize_url("user-read-email user-read-private", url, sizeof(url));
	assert_non_null(strstr(url, "&scope=user-read-email%20user-read-private&"));
}

/* A test makes clients of its own; the calls use the one it names. */
static void
test_calls_use_the_client_the_test_made(void **state)
{
	static struct spotify_client one, two;
	struct config other = url_config;
	struct spotify_client *before;
	char url[2048];

	other.spotify_accounts_url = "http://127.0.0.1:9";
	assert_int_equal(spotify_client_init(&one, &url_config), 0);
	assert_int_equal(spotify_client_init(&two, &other), 0);
	before = spotify_use(&two);
	assert_int_equal(spotify_authorize_url("S", "C", NULL, 0, url, sizeof(url)), 0);
	assert_true(strncmp(url, "http://127.0.0.1:9/authorize?", 29) == 0);
	spotify_use(&one);
	assert_int_equal(spotify_authorize_url("S", "C", NULL, 0, url, sizeof(url)), 0);
	assert_true(strncmp(url, "https://accounts.spotify.com/authorize?", 39) == 0);
	spotify_use(before);
	spotify_client_cleanup(&one);
	spotify_client_cleanup(&two);
	assert_null(two.curl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_after_delta_seconds_are_taken_within_bounds),
		cmocka_unit_test(
			test_retry_after_of_many_digits_waits_the_longest_not_the_shortest),
		cmocka_unit_test(test_retry_after_that_is_no_number_waits_one_second),
		cmocka_unit_test(test_token_answer_is_read),
		cmocka_unit_test(test_token_answer_says_whether_it_carried_a_scope),
		cmocka_unit_test(
			test_token_answer_without_a_required_refresh_token_is_refused),
		cmocka_unit_test(test_token_answer_that_is_not_a_bearer_token_is_refused),
		cmocka_unit_test(test_invalid_grant_is_told_from_other_errors),
		cmocka_unit_test(test_quota_exceeded_is_told_from_a_short_term_limit),
		cmocka_unit_test(test_quota_reason_must_be_the_error_objects_own_string),
		cmocka_unit_test(test_profile_is_read_and_display_name_may_be_null),
		cmocka_unit_test(test_profile_text_that_is_not_utf8_is_refused),
		cmocka_unit_test(test_escaped_nul_is_refused_not_cut),
		cmocka_unit_test(test_raw_nul_byte_is_refused_not_cut),
		cmocka_unit_test(test_profile_account_id_is_read_and_may_be_absent),
		cmocka_unit_test(
			test_profile_account_id_that_is_empty_or_no_string_is_refused),
		cmocka_unit_test(test_profile_account_id_is_bounded_not_cut),
		cmocka_unit_test(test_profile_account_id_must_be_utf8_without_nul),
		cmocka_unit_test(
			test_development_mode_profile_without_optional_fields_is_read),
		cmocka_unit_test(
			test_authorize_url_has_no_scope_parameter_without_scopes),
		cmocka_unit_test(test_authorize_url_asks_for_the_dialog_only_when_told),
		cmocka_unit_test(test_calls_use_the_client_the_test_made),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
