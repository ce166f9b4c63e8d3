/* Query strings, form bodies and Cookie headers, including hostile ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
	assert_int_equal(cookies("baa_session=v1.1.2.3.mac; theme=dark;other=%41"),
			 PARAMS_OK);
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

#define OURS "__Host-baa_session"

static const char *found;
static size_t found_len;

static enum params_cookie
find(const char *header)
{
	return params_find_cookie(header, strlen(header), OURS, &found, &found_len);
}

/* The value found, as a C string (found_len bytes), for assert_string_equal. */
static const char *
found_text(void)
{
	static char text[256];

	assert_true(found_len < sizeof(text));
	memcpy(text, found, found_len);
	text[found_len] = '\0';
	return text;
}

static void
test_find_cookie_points_into_the_header_without_copying(void **state)
{
	const char *header = "theme=dark; " OURS "=v2.kid.sid.1.mac; lang=sv";

	assert_int_equal(find(header), PARAMS_COOKIE_FOUND);
	assert_ptr_equal(found, strstr(header, "v2."));
	assert_int_equal(found_len, strlen("v2.kid.sid.1.mac"));
}

static void
test_find_cookie_sees_ours_behind_a_hundred_foreign_cookies(void **state)
{
	static char header[8192];
	size_t used = 0;

	for (int i = 0; i < 150; i++)
		used += (size_t)snprintf(header + used, sizeof(header) - used,
					 "_ga_%d=GA1.2.%d.1700000000; ", i, i * 7919);
	snprintf(header + used, sizeof(header) - used, OURS "=mine; tail=1");
	assert_int_equal(find(header), PARAMS_COOKIE_FOUND);
	assert_string_equal(found_text(), "mine");
}

static void
test_find_cookie_skips_nameless_and_malformed_pairs(void **state)
{
	static const char *const headers[] = {
		"=nameless; " OURS "=mine",
		"bare; " OURS "=mine; ;;",
		OURS "=mine; ===; a==b; \x01\xff garbage; =",
		"; ;\t;" OURS "=mine",
		"\"quoted; " OURS "=mine",
	};

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		assert_int_equal(find(headers[i]), PARAMS_COOKIE_FOUND);
		assert_string_equal(found_text(), "mine");
	}
}

static void
test_find_cookie_refuses_ours_twice_not_the_first(void **state)
{
	assert_int_equal(find(OURS "=forged; a=1; " OURS "=mine"),
			 PARAMS_COOKIE_DUPLICATE);
	assert_null(found);
	assert_int_equal(found_len, 0);
	assert_int_equal(find(OURS "=same; " OURS "=same"), PARAMS_COOKIE_DUPLICATE);
	assert_int_equal(find(OURS "=; " OURS "=x; " OURS "=y"), PARAMS_COOKIE_DUPLICATE);
}

static void
test_find_cookie_needs_the_exact_name(void **state)
{
	static const char *const others[] = {
		OURS "2=x",
		"x" OURS "=x",
		"__host-baa_session=x",
		"__Host-baa_sessio=x",
		"baa_session=x",
		OURS,
		OURS "; other=1",
		"a=" OURS "=x",
		"",
	};

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		assert_int_equal(find(others[i]), PARAMS_COOKIE_ABSENT);
		assert_null(found);
	}
	assert_int_equal(find(OURS "2=x; " OURS "=mine; " OURS "_old=y"),
			 PARAMS_COOKIE_FOUND);
	assert_string_equal(found_text(), "mine");
}

static void
test_find_cookie_trims_blanks_around_names_and_values(void **state)
{
	static const char *const headers[] = {
		OURS "=mine",
		"  " OURS "=mine  ",
		"\t" OURS "\t=\tmine\t",
		"a=1;" OURS "=mine;b=2",
		"a=1 ; " OURS " = mine ; b=2",
		"a=1;\t " OURS "=mine",
	};

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		assert_int_equal(find(headers[i]), PARAMS_COOKIE_FOUND);
		assert_string_equal(found_text(), "mine");
	}
	/* Blanks inside a value are the value's. */
	assert_int_equal(find(OURS "= a b "), PARAMS_COOKIE_FOUND);
	assert_string_equal(found_text(), "a b");
}

static void
test_find_cookie_empty_value_is_found_empty(void **state)
{
	assert_int_equal(find("a=1; " OURS "=; b=2"), PARAMS_COOKIE_FOUND);
	assert_int_equal(found_len, 0);
	assert_int_equal(find(OURS "=   "), PARAMS_COOKIE_FOUND);
	assert_int_equal(found_len, 0);
	assert_int_equal(find(OURS "=v=w"), PARAMS_COOKIE_FOUND);
	assert_string_equal(found_text(), "v=w");
}

static void
test_find_cookie_reads_only_len_bytes(void **state)
{
	const char header[] = OURS "=mine; " OURS "=second";
	size_t first = strlen(OURS "=mine");

	/* The slice ends before the second pair, which is not seen. */
	assert_int_equal(params_find_cookie(header, first, OURS, &found, &found_len),
			 PARAMS_COOKIE_FOUND);
	assert_string_equal(found_text(), "mine");
	assert_int_equal(params_find_cookie(header, first - 2, OURS, &found, &found_len),
			 PARAMS_COOKIE_FOUND);
	assert_string_equal(found_text(), "mi");
	assert_int_equal(params_find_cookie(header, 0, OURS, &found, &found_len),
			 PARAMS_COOKIE_ABSENT);
}

static void
test_find_cookie_header_with_a_nul_byte_is_absent(void **state)
{
	static const char header[] = OURS "=mine; a=x\0y";

	assert_int_equal(
		params_find_cookie(header, sizeof(header) - 1, OURS, &found, &found_len),
		PARAMS_COOKIE_ABSENT);
	assert_null(found);
}

static void
test_find_cookie_without_header_or_name_is_absent(void **state)
{
	assert_int_equal(params_find_cookie(NULL, 0, OURS, &found, &found_len),
			 PARAMS_COOKIE_ABSENT);
	assert_int_equal(params_find_cookie("=x", 2, "", &found, &found_len),
			 PARAMS_COOKIE_ABSENT);
	assert_int_equal(params_find_cookie("a=1", 3, "a", NULL, NULL),
			 PARAMS_COOKIE_FOUND);
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
		cmocka_unit_test(test_find_cookie_points_into_the_header_without_copying),
		cmocka_unit_test(
			test_find_cookie_sees_ours_behind_a_hundred_foreign_cookies),
		cmocka_unit_test(test_find_cookie_skips_nameless_and_malformed_pairs),
		cmocka_unit_test(test_find_cookie_refuses_ours_twice_not_the_first),
		cmocka_unit_test(test_find_cookie_needs_the_exact_name),
		cmocka_unit_test(test_find_cookie_trims_blanks_around_names_and_values),
		cmocka_unit_test(test_find_cookie_empty_value_is_found_empty),
		cmocka_unit_test(test_find_cookie_reads_only_len_bytes),
		cmocka_unit_test(test_find_cookie_header_with_a_nul_byte_is_absent),
		cmocka_unit_test(test_find_cookie_without_header_or_name_is_absent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
