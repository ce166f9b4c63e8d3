/* Query strings, form bodies and Cookie headers, including hostile ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/params.h"

static struct params p;

static enum params_status
form(const char *s)
{
	return params_parse_form(&p, s, strlen(s));
}

static enum params_status
cookies(const char *s)
{
	return params_parse_cookies(&p, s, strlen(s));
}

static void
test_query_pairs_are_percent_and_plus_decoded(void **state)
{
	assert_int_equal(form("code=a%2Fb%3D&state=x+y&next=%2Fme%3Fa%3D1"), PARAMS_OK);
	assert_int_equal(p.count, 3);
	assert_string_equal(params_get(&p, "code"), "a/b=");
	assert_string_equal(params_get(&p, "state"), "x y");
	assert_string_equal(params_get(&p, "next"), "/me?a=1");
	assert_null(params_get(&p, "missing"));
}

static void
test_empty_values_and_names_without_values_are_kept(void **state)
{
	assert_int_equal(form("a=&b&c=3"), PARAMS_OK);
	assert_string_equal(params_get(&p, "a"), "");
	assert_string_equal(params_get(&p, "b"), "");
	assert_string_equal(params_get(&p, "c"), "3");
	assert_int_equal(form(""), PARAMS_OK);
	assert_int_equal(p.count, 0);
	assert_int_equal(form("&&&"), PARAMS_OK);
	assert_int_equal(p.count, 0);
}

static void
test_duplicates_are_counted_so_handlers_can_refuse_them(void **state)
{
	assert_int_equal(form("state=a&code=1&state=b"), PARAMS_OK);
	assert_int_equal(params_count(&p, "state"), 2);
	assert_int_equal(params_count(&p, "code"), 1);
	assert_string_equal(params_get(&p, "state"), "a");
}

static void
test_bad_percent_encoding_is_refused(void **state)
{
	static const char *const bad[] = {"a=%", "a=%2", "a=%zz", "a=%2g", "%=1", "a=1%"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(form(bad[i]), PARAMS_MALFORMED);
}

static void
test_encoded_or_raw_nul_bytes_are_refused(void **state)
{
	static const char raw[] = {'a', '=', 'x', '\0', 'y'};

	assert_int_equal(form("a=%00"), PARAMS_MALFORMED);
	assert_int_equal(form("a%00b=1"), PARAMS_MALFORMED);
	assert_int_equal(params_parse_form(&p, raw, sizeof(raw)), PARAMS_MALFORMED);
	assert_int_equal(params_parse_cookies(&p, raw, sizeof(raw)), PARAMS_MALFORMED);
}

static void
test_too_many_pairs_are_refused_not_truncated(void **state)
{
	char s[PARAMS_MAX * 4 + 16] = "";

	for (int i = 0; i <= PARAMS_MAX; i++)
		strcat(s, "a=1&");
	assert_int_equal(form(s), PARAMS_TOO_LARGE);
}

static void
test_overlong_input_is_refused_not_truncated(void **state)
{
	static char s[PARAMS_BUF + 16];

	memset(s, 'a', sizeof(s) - 1);
	s[0] = 'x';
	s[1] = '=';
	assert_int_equal(form(s), PARAMS_TOO_LARGE);
	assert_int_equal(cookies(s), PARAMS_TOO_LARGE);
}

static void
test_decoded_bytes_beyond_ascii_pass_through(void **state)
{
	assert_int_equal(form("name=%C3%A9%FF"), PARAMS_OK);
	assert_string_equal(params_get(&p, "name"), "\xc3\xa9\xff");
}

static void
test_cookie_header_pairs_are_split_and_trimmed(void **state)
{
	assert_int_equal(cookies("baa_session=v1.1.2.3.mac; theme=dark;other=%41"), PARAMS_OK);
	assert_int_equal(p.count, 3);
	assert_string_equal(params_get(&p, "baa_session"), "v1.1.2.3.mac");
	assert_string_equal(params_get(&p, "theme"), "dark");
	/* Cookie values are not percent-decoded. */
	assert_string_equal(params_get(&p, "other"), "%41");
	assert_int_equal(cookies("  a=1 ;; b=2;  "), PARAMS_OK);
	assert_int_equal(p.count, 2);
}

static void
test_cookie_pairs_without_a_name_are_refused(void **state)
{
	assert_int_equal(cookies("=value"), PARAMS_MALFORMED);
	assert_int_equal(cookies("novalue"), PARAMS_MALFORMED);
	assert_int_equal(cookies("a=1; =2"), PARAMS_MALFORMED);
}

static void
test_cookie_values_may_hold_equals_signs(void **state)
{
	assert_int_equal(cookies("a=b=c"), PARAMS_OK);
	assert_string_equal(params_get(&p, "a"), "b=c");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_pairs_are_percent_and_plus_decoded),
		cmocka_unit_test(test_empty_values_and_names_without_values_are_kept),
		cmocka_unit_test(test_duplicates_are_counted_so_handlers_can_refuse_them),
		cmocka_unit_test(test_bad_percent_encoding_is_refused),
		cmocka_unit_test(test_encoded_or_raw_nul_bytes_are_refused),
		cmocka_unit_test(test_too_many_pairs_are_refused_not_truncated),
		cmocka_unit_test(test_overlong_input_is_refused_not_truncated),
		cmocka_unit_test(test_decoded_bytes_beyond_ascii_pass_through),
		cmocka_unit_test(test_cookie_header_pairs_are_split_and_trimmed),
		cmocka_unit_test(test_cookie_pairs_without_a_name_are_refused),
		cmocka_unit_test(test_cookie_values_may_hold_equals_signs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
