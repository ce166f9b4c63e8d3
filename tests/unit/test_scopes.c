/* Scope sets: parsing what clients and Spotify send, union, what is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/scopes.h"

static struct scopes a, b, c;

static int
parse(struct scopes *set, const char *text, enum scopes_syntax syntax)
{
	return scopes_parse(set, text, strlen(text), syntax);
}

static const char *
text(const struct scopes *set)
{
	static char out[SCOPES_TEXT_MAX + 1];

	assert_int_equal(scopes_format(set, out, sizeof(out)), 0);
	return out;
}

static void
test_names_are_split_on_spaces_and_kept_once_in_order(void **state)
{
	assert_int_equal(parse(&a, "  b a  b c ", SCOPES_STRICT), 0);
	assert_string_equal(text(&a), "b a c");
	assert_int_equal(parse(&a, "", SCOPES_STRICT), 0);
	assert_int_equal(a.count, 0);
	assert_string_equal(text(&a), "");
}

/* A client names Spotify scopes; the configuration took '_' and '.' too. */
static void
test_strict_names_are_lowercase_letters_digits_and_dashes(void **state)
{
	static const char *const refused[] = {
		"User-read", "a,b", "a+b", "a%20b", "a\tb",
		"a_b",	     "a.b", "é",   "a/b",   "a\"b",
	};

	assert_int_equal(
		parse(&a, "user-read-email playlist-read-private2", SCOPES_STRICT), 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(parse(&a, refused[i], SCOPES_STRICT), -1);
		assert_int_equal(a.count, 0);
	}
	assert_int_equal(parse(&a, "a_b a.b", SCOPES_LOOSE), 0);
	assert_int_equal(parse(&a, "A", SCOPES_LOOSE), -1);
}

/* A NUL inside the bytes given is refused, not taken for the end. */
static void
test_a_nul_byte_is_refused(void **state)
{
	assert_int_equal(scopes_parse(&a, "ab\0cd", 5, SCOPES_LOOSE), -1);
}

/* Bounded: refused, never cut short. */
static void
test_too_long_or_too_many_names_are_refused(void **state)
{
	char many[SCOPES_TEXT_MAX + 64] = "", name[SCOPES_NAME_MAX + 2];

	memset(name, 'a', SCOPES_NAME_MAX);
	name[SCOPES_NAME_MAX] = '\0';
	assert_int_equal(parse(&a, name, SCOPES_STRICT), 0);
	name[SCOPES_NAME_MAX] = 'a';
	name[SCOPES_NAME_MAX + 1] = '\0';
	assert_int_equal(parse(&a, name, SCOPES_STRICT), -1);
	for (int i = 0; i <= SCOPES_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "s%d ", i);
	assert_int_equal(parse(&a, many, SCOPES_STRICT), -1);
	memset(many, ' ', sizeof(many) - 1);
	many[sizeof(many) - 1] = '\0';
	assert_int_equal(parse(&a, many, SCOPES_STRICT), -1);
}

static void
test_union_adds_what_is_new_after_what_was_there(void **state)
{
	parse(&a, "x y", SCOPES_LOOSE);
	parse(&b, "y z x w", SCOPES_STRICT);
	assert_int_equal(scopes_union(&a, &b), 0);
	assert_string_equal(text(&a), "x y z w");
	assert_true(scopes_has(&a, "w"));
	assert_false(scopes_has(&a, "v"));
}

static void
test_union_past_the_bound_changes_nothing(void **state)
{
	a.count = 0;
	b.count = 0;
	for (int i = 0; i < SCOPES_MAX; i++)
		snprintf(a.names[a.count++], sizeof(a.names[0]), "a%d", i);
	snprintf(b.names[b.count++], sizeof(b.names[0]), "new");
	assert_int_equal(scopes_union(&a, &b), -1);
	assert_int_equal(a.count, SCOPES_MAX);
	assert_false(scopes_has(&a, "new"));
}

static void
test_missing_is_what_is_wanted_and_not_held(void **state)
{
	parse(&a, "user-read-email", SCOPES_LOOSE);
	parse(&b, "playlist-read-private user-read-email streaming", SCOPES_STRICT);
	scopes_missing(&a, &b, &c);
	assert_string_equal(text(&c), "playlist-read-private streaming");
	scopes_missing(&b, &a, &c);
	assert_int_equal(c.count, 0);
}

/*
 * SPOTIFY_SCOPES grew since the grant: the user should log in again, unless
 * the last login asked for every scope the grant lacks (Spotify dropped
 * it, and would again). asked NULL: not known, so only the grant counts.
 */
static void
test_a_login_is_worth_asking_only_for_a_scope_not_asked_for(void **state)
{
	assert_false(scopes_worth_asking("a b", NULL, "b a"));
	assert_true(scopes_worth_asking("a", NULL, "a b"));
	assert_true(scopes_worth_asking(NULL, NULL, "a"));
	assert_true(scopes_worth_asking("", NULL, "a"));
	assert_true(scopes_worth_asking("NOT PARSED", NULL, "a"));
	assert_false(scopes_worth_asking(NULL, NULL, NULL));
	assert_false(scopes_worth_asking("", NULL, ""));
	assert_false(scopes_worth_asking(NULL, NULL, ""));
	/* b was asked for and dropped: asking again brings nothing */
	assert_false(scopes_worth_asking("a", "a b", "a b"));
	assert_false(scopes_worth_asking("", "a b", "b"));
	/* c was never asked for */
	assert_true(scopes_worth_asking("a", "a b", "a b c"));
	assert_true(scopes_worth_asking("a", "", "a b"));
	assert_true(scopes_worth_asking("a", "NOT PARSED", "a b"));
}

static void
test_format_refuses_what_does_not_fit(void **state)
{
	char small[4];

	parse(&a, "abc de", SCOPES_STRICT);
	assert_int_equal(scopes_format(&a, small, sizeof(small)), -1);
	assert_string_equal(small, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_are_split_on_spaces_and_kept_once_in_order),
		cmocka_unit_test(
			test_strict_names_are_lowercase_letters_digits_and_dashes),
		cmocka_unit_test(test_a_nul_byte_is_refused),
		cmocka_unit_test(test_too_long_or_too_many_names_are_refused),
		cmocka_unit_test(test_union_adds_what_is_new_after_what_was_there),
		cmocka_unit_test(test_union_past_the_bound_changes_nothing),
		cmocka_unit_test(test_missing_is_what_is_wanted_and_not_held),
		cmocka_unit_test(
			test_a_login_is_worth_asking_only_for_a_scope_not_asked_for),
		cmocka_unit_test(test_format_refuses_what_does_not_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
