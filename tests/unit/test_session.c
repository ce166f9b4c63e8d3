/* Signed cookies, PKCE and base64url. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/session.h"

#define NOW 1800000000

static const char secret[] = "test-secret-key-of-at-least-32-bytes!";

static int
init_keys(void **state)
{
	return session_init(secret, strlen(secret));
}

static void
test_b64url_round_trips_every_length(void **state)
{
	unsigned char in[40], out[40];
	char text[B64URL_LEN(40) + 1];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 37 + 250);
	for (size_t len = 0; len <= sizeof(in); len++) {
		size_t n = b64url_encode(in, len, text);
		assert_int_equal(n, B64URL_LEN(len));
		assert_null(strpbrk(text, "+/="));
		assert_int_equal(b64url_decode(text, n, out, sizeof(out)), (long)len);
		assert_memory_equal(in, out, len);
	}
}

static void
test_b64url_refuses_non_canonical_or_foreign_text(void **state)
{
	unsigned char out[8];

	assert_int_equal(b64url_decode("ab+/", 4, out, sizeof(out)), -1);
	assert_int_equal(b64url_decode("abc=", 4, out, sizeof(out)), -1);
	assert_int_equal(b64url_decode("a", 1, out, sizeof(out)), -1);
	/* "QR" and "QQ" would both decode to "A" without the canonical check. */
	assert_int_equal(b64url_decode("QQ", 2, out, sizeof(out)), 1);
	assert_int_equal(b64url_decode("QR", 2, out, sizeof(out)), -1);
	assert_int_equal(b64url_decode("QUJDREVGR0hJ", 12, out, 8), -1);
}

static void
test_pkce_challenge_is_s256_of_a_43_char_verifier(void **state)
{
	/* RFC 7636 appendix B. */
	static const char rfc_verifier[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	unsigned char digest[32];
	char challenge[B64URL_LEN(32) + 1], verifier[SESSION_VERIFIER_LEN + 1];
	char challenge2[B64URL_LEN(32) + 1];

	assert_int_equal(crypto_sha256(rfc_verifier, strlen(rfc_verifier), digest), 0);
	b64url_encode(digest, 32, challenge);
	assert_string_equal(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");

	assert_int_equal(session_pkce("some-state", verifier, challenge), 0);
	assert_int_equal(strlen(verifier), 43);
	assert_int_equal(crypto_sha256(verifier, strlen(verifier), digest), 0);
	b64url_encode(digest, 32, challenge2);
	assert_string_equal(challenge, challenge2);
	/* The same state always gives the same verifier; another state another. */
	assert_int_equal(session_pkce("some-state", challenge2, challenge), 0);
	assert_string_equal(challenge2, verifier);
	assert_int_equal(session_pkce("other-state", challenge2, challenge), 0);
	assert_string_not_equal(challenge2, verifier);
}

static void
test_login_cookie_round_trips_state_and_next(void **state)
{
	struct oauth_login login, back;
	char cookie[SESSION_COOKIE_MAX + 1];

	assert_int_equal(session_new_login(&login, "/account?tab=2", NOW, 600), 0);
	assert_int_equal(strlen(login.state), SESSION_STATE_LEN);
	assert_int_equal(session_sign_login(&login, cookie, sizeof(cookie)), 0);
	assert_int_equal(session_verify_login(cookie, NOW + 1, &back), 0);
	assert_string_equal(back.state, login.state);
	assert_string_equal(back.next, "/account?tab=2");
}

static void
test_two_logins_get_different_states(void **state)
{
	struct oauth_login a, b;

	assert_int_equal(session_new_login(&a, NULL, NOW, 600), 0);
	assert_int_equal(session_new_login(&b, NULL, NOW, 600), 0);
	assert_string_not_equal(a.state, b.state);
	assert_string_equal(a.next, "/");
}

static void
test_expired_login_cookie_is_refused(void **state)
{
	struct oauth_login login, back;
	char cookie[SESSION_COOKIE_MAX + 1];

	session_new_login(&login, "/", NOW, 600);
	session_sign_login(&login, cookie, sizeof(cookie));
	assert_int_equal(session_verify_login(cookie, NOW + 600, &back), -1);
}

static void
test_any_changed_byte_breaks_a_cookie(void **state)
{
	struct user_session s = {42, 3, NOW + 3600}, back;
	char cookie[SESSION_COOKIE_MAX + 1], forged[SESSION_COOKIE_MAX + 1];

	assert_int_equal(session_sign_user(&s, cookie, sizeof(cookie)), 0);
	assert_int_equal(session_verify_user(cookie, NOW, &back), 0);
	assert_int_equal(back.user_id, 42);
	assert_int_equal(back.generation, 3);
	for (size_t i = 0; i < strlen(cookie); i++) {
		strcpy(forged, cookie);
		forged[i] = forged[i] == 'A' ? 'B' : 'A';
		assert_int_equal(session_verify_user(forged, NOW, &back), -1);
	}
	strcpy(forged, cookie);
	forged[strlen(forged) - 1] = '\0';
	assert_int_equal(session_verify_user(forged, NOW, &back), -1);
}

static void
test_forged_fields_with_an_old_mac_are_refused(void **state)
{
	struct user_session s = {42, 3, NOW + 3600}, back;
	char cookie[SESSION_COOKIE_MAX + 1], forged[SESSION_COOKIE_MAX + 2];
	const char *mac;

	session_sign_user(&s, cookie, sizeof(cookie));
	mac = strrchr(cookie, '.') + 1;
	snprintf(forged, sizeof(forged), "v1.1.3.%d.%s", NOW + 3600, mac);
	assert_int_equal(session_verify_user(forged, NOW, &back), -1);
}

static void
test_a_login_cookie_is_no_session_cookie(void **state)
{
	struct oauth_login login;
	struct user_session back;
	char cookie[SESSION_COOKIE_MAX + 1];

	session_new_login(&login, "/", NOW, 600);
	session_sign_login(&login, cookie, sizeof(cookie));
	assert_int_equal(session_verify_user(cookie, NOW, &back), -1);
}

static void
test_another_secret_key_refuses_the_cookie(void **state)
{
	struct user_session s = {7, 1, NOW + 3600}, back;
	char cookie[SESSION_COOKIE_MAX + 1];
	static const char other[] = "another-secret-key-of-32-bytes-or-more";

	session_sign_user(&s, cookie, sizeof(cookie));
	session_init(other, strlen(other));
	assert_int_equal(session_verify_user(cookie, NOW, &back), -1);
	session_init(secret, strlen(secret));
	assert_int_equal(session_verify_user(cookie, NOW, &back), 0);
}

static void
test_garbage_cookies_are_refused(void **state)
{
	static const char *const bad[] = {"",
					  ".",
					  "v1",
					  "v1....",
					  "v1.1.2.3",
					  "v2.1.2.3.x",
					  "v1.-1.2.3.AAAA",
					  "v1.01.2.3.AAAA"};
	struct user_session back;
	struct oauth_login login;
	char huge[SESSION_COOKIE_MAX + 10];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(session_verify_user(bad[i], NOW, &back), -1);
		assert_int_equal(session_verify_login(bad[i], NOW, &login), -1);
	}
	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(session_verify_user(huge, NOW, &back), -1);
}

/* A login cookie signed over fields, as session.c signs them. */
static void
sign_login_fields(const char *fields, char *out, size_t size)
{
	unsigned char key[CRYPTO_KEY_LEN], mac[CRYPTO_MAC_LEN];
	char input[SESSION_COOKIE_MAX + 32];
	int n = snprintf(input, sizeof(input), "%s|%s", OAUTH_COOKIE, fields);

	assert_int_equal(
		crypto_derive_key(secret, strlen(secret), "baa oauth cookie v1", key), 0);
	assert_int_equal(crypto_hmac(key, input, (size_t)n, mac), 0);
	n = snprintf(out, size, "%s.", fields);
	b64url_encode(mac, sizeof(mac), out + n);
}

/*
 * Found by tests/fuzz/fuzz_session: a signed next whose bytes hold a NUL
 * was cut at it, so the cookie verified with a path other than the one
 * signed. Only baa signs, so no one could forge one; still refused now.
 */
static void
test_signed_next_with_a_nul_byte_is_refused_not_cut(void **state)
{
	char fields[256], cookie[SESSION_COOKIE_MAX + 1], next[B64URL_LEN(8) + 1];
	struct oauth_login back;

	/* The helper signs like session.c: a clean path verifies. */
	b64url_encode((const unsigned char *)"/me", 3, next);
	snprintf(fields, sizeof(fields), "v1.%043d.%d.%s", 0, NOW + 60, next);
	sign_login_fields(fields, cookie, sizeof(cookie));
	assert_int_equal(session_verify_login(cookie, NOW, &back), 0);
	assert_string_equal(back.next, "/me");

	b64url_encode((const unsigned char *)"/me\0/x", 6, next);
	snprintf(fields, sizeof(fields), "v1.%043d.%d.%s", 0, NOW + 60, next);
	sign_login_fields(fields, cookie, sizeof(cookie));
	assert_int_equal(session_verify_login(cookie, NOW, &back), -1);
}

static void
test_only_local_paths_are_places_to_return_to(void **state)
{
	static const char *const good[] = {"/", "/me", "/a/b?c=d#e"};
	static const char *const bad[] = {"",
					  "https://evil.example",
					  "//evil.example",
					  "/\\evil.example",
					  "evil.example",
					  "/a b",
					  "/a\nb",
					  "/\x7f",
					  "/path\\with\\backslash",
					  "\\/evil.example"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(session_is_local_path(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(session_is_local_path(bad[i]));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_round_trips_every_length),
		cmocka_unit_test(test_b64url_refuses_non_canonical_or_foreign_text),
		cmocka_unit_test(test_pkce_challenge_is_s256_of_a_43_char_verifier),
		cmocka_unit_test(test_login_cookie_round_trips_state_and_next),
		cmocka_unit_test(test_two_logins_get_different_states),
		cmocka_unit_test(test_expired_login_cookie_is_refused),
		cmocka_unit_test(test_any_changed_byte_breaks_a_cookie),
		cmocka_unit_test(test_forged_fields_with_an_old_mac_are_refused),
		cmocka_unit_test(test_a_login_cookie_is_no_session_cookie),
		cmocka_unit_test(test_another_secret_key_refuses_the_cookie),
		cmocka_unit_test(test_garbage_cookies_are_refused),
		cmocka_unit_test(test_signed_next_with_a_nul_byte_is_refused_not_cut),
		cmocka_unit_test(test_only_local_paths_are_places_to_return_to),
	};
	return cmocka_run_group_tests(tests, init_keys, NULL);
}
