/* Responses as the web server receives them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_is_a_json_body_with_status_and_length),
		cmocka_unit_test(test_json_strings_are_escaped),
		cmocka_unit_test(test_extra_headers_come_before_the_blank_line),
		cmocka_unit_test(test_head_only_omits_the_body_but_keeps_its_length),
		cmocka_unit_test(test_overflowing_headers_turn_into_a_500),
		cmocka_unit_test(test_overflowing_body_turns_into_a_500),
		cmocka_unit_test(test_render_refuses_a_too_small_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
