/* Responses as the web server receives them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "../../src/response.h"

static struct response res;
static char out[RESPONSE_HEADERS_MAX + RESPONSE_BODY_MAX + 256];

static void
test_error_is_a_json_body_with_status_and_length(void **state)
{
	size_t len;

	response_init(&res);
	response_error(&res, 404, "not found");
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_string_equal(out, "Status: 404 Not Found\r\n"
				 "Content-Type: application/json\r\n"
				 "Cache-Control: no-store\r\n"
				 "Content-Length: 22\r\n"
				 "\r\n"
				 "{\"error\":\"not found\"}\n");
}

static void
test_json_strings_are_escaped(void **state)
{
	size_t len;

	response_init(&res);
	response_json_string(&res, 200, "status", "a\"b\\c\n");
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "{\"status\":\"a\\\"b\\\\c\\n\"}\n"));
}

static void
test_extra_headers_come_before_the_blank_line(void **state)
{
	size_t len;

	response_init(&res);
	response_header(&res, "Allow", "GET, HEAD");
	response_error(&res, 405, "method not allowed");
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "Status: 405 Method Not Allowed\r\n"));
	assert_true(strstr(out, "Allow: GET, HEAD\r\n") < strstr(out, "\r\n\r\n"));
}

static void
test_head_only_omits_the_body_but_keeps_its_length(void **state)
{
	size_t len;

	response_init(&res);
	response_json_string(&res, 200, "status", "ok");
	len = response_render(&res, 1, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "Content-Length: 16\r\n"));
	assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
}

static void
test_no_content_has_no_body_type_or_length(void **state)
{
	size_t len;

	response_init(&res);
	response_error(&res, 401, "not logged in");
	response_no_content(&res);
	response_header(&res, "X-Baa-User-Id", "7");
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_string_equal(out, "Status: 204 No Content\r\nX-Baa-User-Id: 7\r\n"
				 "Cache-Control: no-store\r\n\r\n");
}

static void
test_overflowing_headers_turn_into_a_500(void **state)
{
	char big[RESPONSE_HEADERS_MAX];
	size_t len;

	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	response_init(&res);
	response_header(&res, "X-Big", big);
	response_json_string(&res, 200, "status", "ok");
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "Status: 500 Internal Server Error\r\n"));
	assert_null(strstr(out, "vvvv"));
}

static void
test_overflowing_body_turns_into_a_500(void **state)
{
	static char big[RESPONSE_BODY_MAX + 10];
	size_t len;

	memset(big, 'b', sizeof(big) - 1);
	response_init(&res);
	response_json_string(&res, 200, "data", big);
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "Status: 500"));
}

static void
test_render_refuses_a_too_small_buffer(void **state)
{
	char tiny[8];

	response_init(&res);
	response_json_string(&res, 200, "status", "ok");
	assert_int_equal(response_render(&res, 0, tiny, sizeof(tiny)), 0);
}

/* What the hand-written object reads as, through cJSON's parser. */
static cJSON *
body_json(void)
{
	assert_int_equal(res.body[res.body_len - 1], '\n');
	return cJSON_ParseWithLength(res.body, res.body_len);
}

static void
test_object_members_read_back_as_written(void **state)
{
	/* Every byte below 0x20, quotes, backslashes, UTF-8 and DEL. */
	char tricky[64];
	cJSON *json;

	for (int i = 0; i < 32; i++)
		tricky[i] = (char)(i + 1 < 32 ? i + 1 : '"');
	strcpy(tricky + 32, "\\/\x7f\xc3\xb6\xf0\x9f\x90\x91 end");
	response_init(&res);
	response_object_begin(&res, 200);
	response_member_raw(&res, "id", "12345678901234567");
	response_member_string(&res, "tricky", tricky, 0);
	response_member_string(&res, "empty", "", 0);
	response_member_string(&res, "none", "", 1);
	response_member_string(&res, "null", NULL, 0);
	response_member_bool(&res, "yes", 1);
	response_member_bool(&res, "no", 0);
	response_object_end(&res);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.content_type, "application/json");
	assert_int_equal(res.overflow, 0);
	json = body_json();
	assert_non_null(json);
	assert_int_equal(cJSON_GetArraySize(json), 7);
	assert_string_equal(cJSON_GetObjectItem(json, "tricky")->valuestring, tricky);
	assert_string_equal(cJSON_GetObjectItem(json, "empty")->valuestring, "");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(json, "none")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(json, "null")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(json, "yes")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(json, "no")));
	/* raw digits, not a double read back */
	assert_non_null(strstr(res.body, "{\"id\":12345678901234567,"));
	cJSON_Delete(json);
}

static void
test_object_is_compact_like_cjsons(void **state)
{
	response_init(&res);
	response_object_begin(&res, 403);
	response_member_string(&res, "error", "a\tb", 0);
	response_member_bool(&res, "x", 1);
	response_object_end(&res);
	assert_string_equal(res.body, "{\"error\":\"a\\tb\",\"x\":true}\n");
	response_object_begin(&res, 200);
	response_object_end(&res);
	assert_string_equal(res.body, "{}\n");
}

static void
test_problem_has_code_and_sentence(void **state)
{
	cJSON *json;

	response_init(&res);
	response_problem(&res, 403, "spotify_access_denied", "Ask the \"owner\".");
	assert_int_equal(res.status, 403);
	json = body_json();
	assert_string_equal(cJSON_GetObjectItem(json, "error")->valuestring,
			    "spotify_access_denied");
	assert_string_equal(cJSON_GetObjectItem(json, "message")->valuestring,
			    "Ask the \"owner\".");
	cJSON_Delete(json);
}

static void
test_overflowing_object_turns_into_a_500(void **state)
{
	static char big[RESPONSE_BODY_MAX / 2];
	size_t len;

	memset(big, '"', sizeof(big) - 1); /* each doubles when escaped */
	response_init(&res);
	response_object_begin(&res, 200);
	response_member_string(&res, "big", big, 0);
	response_object_end(&res);
	assert_int_equal(res.overflow, 1);
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "Status: 500 "));
}

static void
test_see_other_keeps_earlier_headers(void **state)
{
	size_t len;

	response_init(&res);
	response_cookie(&res, "baa_oauth", "", 0);
	response_error(&res, 403, "nope");
	response_redirect_status(&res, 303, "/?login_error=spotify_access_denied");
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "Status: 303 See Other\r\n"));
	assert_non_null(strstr(out, "Location: /?login_error=spotify_access_denied\r\n"));
	assert_non_null(strstr(out, "Set-Cookie: baa_oauth=; Max-Age=0"));
	assert_null(strstr(out, "nope"));
}

static void
test_cookies_can_be_numbered_under_a_prefix(void **state)
{
	size_t len;

	response_init(&res);
	res.cookie_header_prefix = "X-Baa-Set-Cookie-";
	response_cookie(&res, "a", "1", 60);
	response_cookie(&res, "b", "", 0);
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out,
			       "X-Baa-Set-Cookie-1: a=1; Max-Age=60; Path=/; HttpOnly; "
			       "Secure; SameSite=Lax\r\n"));
	assert_non_null(strstr(out, "X-Baa-Set-Cookie-2: b=; Max-Age=0;"));
	assert_null(strstr(out, "\nSet-Cookie"));
	/* the next response starts as Set-Cookie again */
	response_init(&res);
	response_cookie(&res, "a", "1", 60);
	len = response_render(&res, 0, out, sizeof(out));
	out[len] = '\0';
	assert_non_null(strstr(out, "\nSet-Cookie: a=1;"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_is_a_json_body_with_status_and_length),
		cmocka_unit_test(test_json_strings_are_escaped),
		cmocka_unit_test(test_extra_headers_come_before_the_blank_line),
		cmocka_unit_test(test_head_only_omits_the_body_but_keeps_its_length),
		cmocka_unit_test(test_no_content_has_no_body_type_or_length),
		cmocka_unit_test(test_overflowing_headers_turn_into_a_500),
		cmocka_unit_test(test_overflowing_body_turns_into_a_500),
		cmocka_unit_test(test_render_refuses_a_too_small_buffer),
		cmocka_unit_test(test_object_members_read_back_as_written),
		cmocka_unit_test(test_object_is_compact_like_cjsons),
		cmocka_unit_test(test_problem_has_code_and_sentence),
		cmocka_unit_test(test_overflowing_object_turns_into_a_500),
		cmocka_unit_test(test_see_other_keeps_earlier_headers),
		cmocka_unit_test(test_cookies_can_be_numbered_under_a_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
