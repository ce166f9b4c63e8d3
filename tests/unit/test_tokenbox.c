/* Sealed tokens: AES-256-GCM bound to row and column, keys named by kid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/tokenbox.h"

#define SEALED_MAX TOKENBOX_SEALED_LEN(4096)

static const char secret[] = "test-secret-key-of-at-least-32-bytes!";
static const char secret_a[] = "secret-a-of-at-least-thirty-two-bytes";
static const char secret_b[] = "secret-b-of-at-least-thirty-two-bytes";
static const char key_a[] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/* 32 bytes as base64url */
static const char key_b[] = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA";
static const char token[] = "BQD2-access-token_value.with.dots";

static char sealed[SEALED_MAX + 1], opened[SEALED_MAX + 1];

static int
use_keys(const char *text)
{
	return tokenbox_init(text, secret);
}

/* BAA_TOKEN_KEY=derived with BAA_SECRET_KEY="<first> [<second>]". */
static void
use_derived(const char *first, const char *second)
{
	char secrets[256];

	snprintf(secrets, sizeof(secrets), "%s %s", first, second ? second : "");
	assert_int_equal(tokenbox_init(TOKENBOX_DERIVED, secrets), 0);
}

static int
only_key_a(void **state)
{
	return use_keys(key_a);
}

static void
seal_ok(const char *value, long long id, enum tokenbox_role role)
{
	assert_int_equal(tokenbox_seal(value, id, role, sealed, sizeof(sealed)),
			 TOKENBOX_OK);
}

static enum tokenbox_status
open_as(const char *value, long long id, enum tokenbox_role role)
{
	return tokenbox_open(value, id, role, opened, sizeof(opened));
}

static void
test_sealed_token_opens_for_its_row_and_column(void **state)
{
	char longest[2049];

	seal_ok(token, 42, TOKENBOX_ACCESS);
	assert_null(strstr(sealed, token));
	assert_null(strstr(sealed, "access-token"));
	assert_int_equal(strncmp(sealed, "v1.", 3), 0);
	assert_memory_equal(sealed + 3, tokenbox_current_kid(), TOKENBOX_KID_LEN);
	assert_int_equal(strlen(sealed), TOKENBOX_SEALED_LEN(strlen(token)));
	assert_int_equal(open_as(sealed, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
	assert_string_equal(opened, token);
	assert_true(tokenbox_is_current(sealed));

	memset(longest, 'r', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	seal_ok(longest, 7, TOKENBOX_REFRESH);
	assert_int_equal(open_as(sealed, 7, TOKENBOX_REFRESH), TOKENBOX_OK);
	assert_string_equal(opened, longest);
}

static void
test_a_value_moved_to_another_row_or_column_does_not_open(void **state)
{
	seal_ok(token, 42, TOKENBOX_ACCESS);
	assert_int_equal(open_as(sealed, 43, TOKENBOX_ACCESS), TOKENBOX_FORGED);
	assert_int_equal(open_as(sealed, 4, TOKENBOX_ACCESS), TOKENBOX_FORGED);
	assert_int_equal(open_as(sealed, 420, TOKENBOX_ACCESS), TOKENBOX_FORGED);
	assert_int_equal(open_as(sealed, -42, TOKENBOX_ACCESS), TOKENBOX_FORGED);
	assert_int_equal(open_as(sealed, 42, TOKENBOX_REFRESH), TOKENBOX_FORGED);
	assert_string_equal(opened, "");
	assert_int_equal(open_as(sealed, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
}

static void
test_any_changed_bit_of_nonce_ciphertext_or_tag_is_refused(void **state)
{
	unsigned char raw[TOKENBOX_NONCE_LEN + sizeof(token) + TOKENBOX_TAG_LEN];
	char forged[SEALED_MAX + 1];
	size_t head = 3 + TOKENBOX_KID_LEN + 1;
	long len;

	seal_ok(token, 42, TOKENBOX_ACCESS);
	len = b64url_decode(sealed + head, strlen(sealed + head), raw, sizeof(raw));
	assert_int_equal(len, TOKENBOX_NONCE_LEN + strlen(token) + TOKENBOX_TAG_LEN);
	for (long i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			raw[i] ^= (unsigned char)(1u << bit);
			memcpy(forged, sealed, head);
			b64url_encode(raw, (size_t)len, forged + head);
			assert_int_equal(open_as(forged, 42, TOKENBOX_ACCESS),
					 TOKENBOX_FORGED);
			raw[i] ^= (unsigned char)(1u << bit);
			/* The key's context, kept between values, is whole again. */
			assert_int_equal(open_as(sealed, 42, TOKENBOX_ACCESS),
					 TOKENBOX_OK);
		}
	}
	/* cut short: the tag is lost */
	memcpy(forged, sealed, head);
	b64url_encode(raw, (size_t)len - 1, forged + head);
	assert_int_equal(open_as(forged, 42, TOKENBOX_ACCESS), TOKENBOX_FORGED);
}

static void
test_two_seals_of_one_value_differ(void **state)
{
	char first[SEALED_MAX + 1];

	seal_ok(token, 42, TOKENBOX_ACCESS);
	memcpy(first, sealed, sizeof(first));
	seal_ok(token, 42, TOKENBOX_ACCESS);
	assert_string_not_equal(first, sealed);
	/* the nonces themselves differ, not only the text */
	assert_memory_not_equal(first + 12, sealed + 12, 16);
	assert_int_equal(open_as(first, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
	assert_int_equal(open_as(sealed, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
}

static void
test_old_key_opens_while_listed_and_new_key_seals(void **state)
{
	char under_a[SEALED_MAX + 1], kid_a[TOKENBOX_KID_LEN + 1];
	char both[sizeof(key_a) + sizeof(key_b) + 4];

	seal_ok(token, 42, TOKENBOX_ACCESS);
	memcpy(under_a, sealed, sizeof(under_a));
	snprintf(kid_a, sizeof(kid_a), "%s", tokenbox_current_kid());

	snprintf(both, sizeof(both), "%s  %s", key_b, key_a);
	assert_int_equal(use_keys(both), 0);
	assert_string_not_equal(tokenbox_current_kid(), kid_a);
	assert_false(tokenbox_is_current(under_a));
	assert_int_equal(open_as(under_a, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
	assert_string_equal(opened, token);
	seal_ok(token, 42, TOKENBOX_ACCESS);
	assert_true(tokenbox_is_current(sealed));
	assert_memory_equal(sealed + 3, tokenbox_current_kid(), TOKENBOX_KID_LEN);

	/* A dropped: what it sealed no longer opens */
	assert_int_equal(use_keys(key_b), 0);
	assert_int_equal(open_as(under_a, 42, TOKENBOX_ACCESS), TOKENBOX_UNKNOWN_KEY);
	assert_string_equal(opened, "");
	assert_int_equal(open_as(sealed, 42, TOKENBOX_ACCESS), TOKENBOX_OK);

	/* the kid depends on the key alone */
	assert_int_equal(use_keys(key_a), 0);
	assert_string_equal(tokenbox_current_kid(), kid_a);
}

static void
test_kid_names_the_key_without_showing_it(void **state)
{
	unsigned char derived[CRYPTO_KEY_LEN];
	char hex[2 * CRYPTO_KEY_LEN + 1], kid_derived[TOKENBOX_KID_LEN + 1];

	assert_int_equal(use_keys(NULL), 0);
	snprintf(kid_derived, sizeof(kid_derived), "%s", tokenbox_current_kid());
	assert_int_equal(strlen(kid_derived), TOKENBOX_KID_LEN);
	assert_int_equal(use_keys(TOKENBOX_DERIVED), 0);
	assert_string_equal(tokenbox_current_kid(), kid_derived);

	/* "derived" is HKDF-SHA256(BAA_SECRET_KEY, "baa token encryption v1") */
	assert_int_equal(crypto_derive_key(secret, strlen(secret),
					   "baa token encryption v1", derived),
			 0);
	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", derived[i]);
	assert_int_equal(use_keys(hex), 0);
	assert_string_equal(tokenbox_current_kid(), kid_derived);

	assert_int_equal(use_keys(key_b), 0);
	assert_string_not_equal(tokenbox_current_kid(), kid_derived);
	assert_null(strstr(key_b, tokenbox_current_kid()));
	assert_int_equal(use_keys(key_a), 0);
}

/*
 * Rotating BAA_SECRET_KEY with BAA_TOKEN_KEY=derived: each secret gives a
 * key, the first seals, every one opens, so stored tokens stay readable
 * while the old secret is listed.
 */
static void
test_derived_keys_follow_the_secrets_in_their_order(void **state)
{
	char under_b[SEALED_MAX + 1], under_a[SEALED_MAX + 1];
	char kid_a[TOKENBOX_KID_LEN + 1], kid_b[TOKENBOX_KID_LEN + 1];
	char list[sizeof(key_a) + 16], secrets[sizeof(secret_a) + sizeof(secret_b)];

	use_derived(secret_b, secret_a);
	seal_ok(token, 42, TOKENBOX_ACCESS);
	memcpy(under_b, sealed, sizeof(under_b));
	snprintf(kid_b, sizeof(kid_b), "%s", tokenbox_current_kid());
	assert_true(tokenbox_is_current(under_b));

	/* "A B": A's key seals now, B's still opens what it sealed. */
	use_derived(secret_a, secret_b);
	snprintf(kid_a, sizeof(kid_a), "%s", tokenbox_current_kid());
	assert_string_not_equal(kid_a, kid_b);
	assert_false(tokenbox_is_current(under_b));
	assert_int_equal(open_as(under_b, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
	assert_string_equal(opened, token);
	seal_ok(token, 42, TOKENBOX_ACCESS);
	memcpy(under_a, sealed, sizeof(under_a));
	assert_true(tokenbox_is_current(under_a));
	assert_memory_equal(under_a + 3, kid_a, TOKENBOX_KID_LEN);

	/* The kid of a derived key depends on its secret alone. */
	use_derived(secret_a, NULL);
	assert_string_equal(tokenbox_current_kid(), kid_a);
	assert_int_equal(open_as(under_a, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
	/* B dropped before its tokens were sealed again: they no longer open. */
	assert_int_equal(open_as(under_b, 42, TOKENBOX_ACCESS), TOKENBOX_UNKNOWN_KEY);

	/* An explicit key first, then the derived ones: all open. */
	snprintf(list, sizeof(list), "%s %s", key_a, TOKENBOX_DERIVED);
	snprintf(secrets, sizeof(secrets), "%s %s", secret_b, secret_a);
	assert_int_equal(tokenbox_init(list, secrets), 0);
	assert_false(tokenbox_is_current(under_a));
	assert_int_equal(open_as(under_a, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
	assert_int_equal(open_as(under_b, 42, TOKENBOX_ACCESS), TOKENBOX_OK);
	assert_int_equal(use_keys(key_a), 0);
}

static void
test_malformed_values_are_refused_without_harm(void **state)
{
	char value[SEALED_MAX + 64], big[8192];
	const char *kid;
	const char *cases[] = {"v1.",
			       "v1",
			       "v1.short",
			       "v1.abcdefgh",
			       "v1.abcdefgh.",
			       "v2.abcdefgh.AAAA",
			       "V1.abcdefgh.AAAA",
			       "v1..",
			       "v1.........."};
	/* after the right kid: bodies that are no sealed value */
	const char *bodies[] = {"",	"A",	"AAAA",	   "!!!!", "AAAA AAAA",
				"AA==", "AAA+", "AAAAAAAA" /* 6 bytes, < nonce + tag */};

	assert_int_equal(open_as("", 1, TOKENBOX_ACCESS), TOKENBOX_PLAINTEXT);
	assert_int_equal(open_as("BQplaintext-token", 1, TOKENBOX_ACCESS),
			 TOKENBOX_PLAINTEXT);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_not_equal(open_as(cases[i], 1, TOKENBOX_ACCESS), TOKENBOX_OK);
		assert_string_equal(opened, "");
	}

	kid = tokenbox_current_kid();
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(value, sizeof(value), "v1.%s.%s", kid, bodies[i]);
		assert_int_equal(open_as(value, 1, TOKENBOX_ACCESS), TOKENBOX_MALFORMED);
	}
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "v1.", 3);
	memcpy(big + 3, kid, TOKENBOX_KID_LEN);
	big[3 + TOKENBOX_KID_LEN] = '.';
	assert_int_equal(open_as(big, 1, TOKENBOX_ACCESS), TOKENBOX_MALFORMED);

	/* every prefix of a good value, and one too-small output buffer */
	seal_ok(token, 5, TOKENBOX_REFRESH);
	for (size_t len = 0; len < strlen(sealed); len++) {
		snprintf(value, sizeof(value), "%.*s", (int)len, sealed);
		assert_int_not_equal(open_as(value, 5, TOKENBOX_REFRESH), TOKENBOX_OK);
	}
	assert_int_equal(
		tokenbox_open(sealed, 5, TOKENBOX_REFRESH, opened, strlen(token)),
		TOKENBOX_TOO_LONG);
	assert_int_equal(tokenbox_seal(token, 5, TOKENBOX_REFRESH, value,
				       TOKENBOX_SEALED_LEN(strlen(token))),
			 TOKENBOX_TOO_LONG);
	assert_int_equal(tokenbox_seal(big, 5, TOKENBOX_REFRESH, value, sizeof(value)),
			 TOKENBOX_TOO_LONG);
}

static void
test_key_lists_are_checked_without_echoing_them(void **state)
{
	char err[256], list[1024];
	const char *good[] = {
		key_a,
		key_b,
		"derived",
		"  derived  ",
		"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA derived",
		"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"};
	const char *bad[] = {
		"", "   ", "secret", "Derived",
		/* 63 and 65 hex digits */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0",
		"g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		/* base64 with '+', and 42 / 44 characters */
		"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMy+TA",
		"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMT",
		"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTAx",
		/* non-canonical last character */
		"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTB", "derived,derived",
		"derived\tderived"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(tokenbox_check_keys(good[i], err, sizeof(err)), 0);
		assert_int_equal(use_keys(good[i]), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(tokenbox_check_keys(bad[i], err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
		if (strlen(bad[i]) > 8)
			assert_null(strstr(err, bad[i] + 1));
		assert_int_equal(use_keys(bad[i]), -1);
	}
	snprintf(list, sizeof(list), "%s %s %s %s %s %s %s %s %s", key_a, key_b, key_a,
		 key_b, key_a, key_b, key_a, key_b, "derived");
	assert_int_equal(tokenbox_check_keys(list, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 8"));
	assert_int_equal(use_keys(key_a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_sealed_token_opens_for_its_row_and_column,
				       only_key_a),
		cmocka_unit_test_setup(
			test_a_value_moved_to_another_row_or_column_does_not_open,
			only_key_a),
		cmocka_unit_test_setup(
			test_any_changed_bit_of_nonce_ciphertext_or_tag_is_refused,
			only_key_a),
		cmocka_unit_test_setup(test_two_seals_of_one_value_differ, only_key_a),
		cmocka_unit_test_setup(test_old_key_opens_while_listed_and_new_key_seals,
				       only_key_a),
		cmocka_unit_test_setup(test_kid_names_the_key_without_showing_it,
				       only_key_a),
		cmocka_unit_test_setup(
			test_derived_keys_follow_the_secrets_in_their_order, only_key_a),
		cmocka_unit_test_setup(test_malformed_values_are_refused_without_harm,
				       only_key_a),
		cmocka_unit_test_setup(test_key_lists_are_checked_without_echoing_them,
				       only_key_a),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
