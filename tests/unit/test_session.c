/* Signed cookies, key rotation, the first format, PKCE and base64url. */
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
static const char old_secret[] = "an-older-secret-key-of-32-bytes-or-more";
static const char new_secret[] = "a-newer-secret-key-of-32-bytes-or-more!";

/* BAA_SECRET_KEY as the tests set it: the secrets, space-separated. */
static void
use_secrets(const char *first, const char *second)
{
	char list[256];

	snprintf(list, sizeof(list), "%s%s%s", first, second ? " " : "",
		 second ? second : "");
	assert_int_equal(session_init(list), 0);
}

static int
one_secret(void **state)
{
	use_secrets(secret, NULL);
	return 0;
}

/* The kid of a secret, as the format says: 6 bytes of an HMAC, base64url. */
static void
kid_of(const char *s, char kid[SESSION_KID_LEN + 1])
{
	static const char label[] = "baa cookie key id";
	unsigned char key[CRYPTO_KEY_LEN], mac[CRYPTO_MAC_LEN];

	assert_int_equal(crypto_derive_key(s, strlen(s), "baa session cookie v1", key),
			 0);
	assert_int_equal(crypto_hmac(key, label, strlen(label), mac), 0);
	b64url_encode(mac, 6, kid);
}

/*
 * A cookie value signed by hand: fields + "." + base64url of the MAC of
 * "<purpose>|<fields>" under the key derived from s with info.
 */
static void
sign_fields(const char *s, const char *info, const char *purpose, const char *fields,
	    char *out, size_t size)
{
	unsigned char key[CRYPTO_KEY_LEN], mac[CRYPTO_MAC_LEN];
	char input[SESSION_COOKIE_MAX + 32];
	int n = snprintf(input, sizeof(input), "%s|%s", purpose, fields);

	assert_true(n > 0 && (size_t)n < sizeof(input));
	assert_int_equal(crypto_derive_key(s, strlen(s), info, key), 0);
	assert_int_equal(crypto_hmac(key, input, (size_t)n, mac), 0);
	n = snprintf(out, size, "%s.", fields);
	assert_true(n > 0 && (size_t)n + B64URL_LEN(CRYPTO_MAC_LEN) < size);
	b64url_encode(mac, sizeof(mac), out + n);
}

static void
sign_session_fields(const char *s, const char *fields, char *out, size_t size)
{
	sign_fields(s, "baa session cookie v1", "baa_session", fields, out, size);
}

static void
sign_login_fields(const char *s, const char *fields, char *out, size_t size)
{
	sign_fields(s, "baa oauth cookie v1", "baa_oauth", fields, out, size);
}

/* A session cookie of the first format: "v1.<user>.<generation>.<expires>". */
static void
legacy_session_cookie(const char *s, long long user_id, long long generation,
		      long long expires, char *out, size_t size)
{
	char fields[128];

	snprintf(fields, sizeof(fields), "v1.%lld.%lld.%lld", user_id, generation,
		 expires);
	sign_session_fields(s, fields, out, size);
}

static void
new_session_cookie(struct session_cookie *s, char cookie[SESSION_COOKIE_MAX + 1])
{
	assert_int_equal(session_new_id(s, NOW + 3600), 0);
	assert_int_equal(session_sign(s, cookie, SESSION_COOKIE_MAX + 1), 0);
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
test_b64url_takes_exactly_its_64_characters(void **state)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char out[4];

	for (int c = 0; c < 256; c++) {
		/* "<c>A": the character's six bits then zero bits, one byte. */
		char text[2] = {(char)c, 'A'};
		const char *at = c ? memchr(alphabet, c, 64) : NULL;
		long n = b64url_decode(text, 2, out, sizeof(out));

		if (at == NULL) {
			assert_int_equal(n, -1);
			continue;
		}
		assert_int_equal(n, 1);
		assert_int_equal(out[0], (unsigned char)((at - alphabet) << 2));
	}
}

static void
test_pkce_challenge_is_s256_of_a_43_char_verifier(void **state)
{
	/* RFC 7636 appendix B. */
	static const char rfc_verifier[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	struct oauth_login login = {.state = "some-state", .next = "/", .key = 0};
	unsigned char digest[32];
	char challenge[B64URL_LEN(32) + 1], verifier[SESSION_VERIFIER_LEN + 1];
	char challenge2[B64URL_LEN(32) + 1];

	assert_int_equal(crypto_sha256(rfc_verifier, strlen(rfc_verifier), digest), 0);
	b64url_encode(digest, 32, challenge);
	assert_string_equal(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");

	assert_int_equal(session_pkce(&login, verifier, challenge), 0);
	assert_int_equal(strlen(verifier), 43);
	assert_int_equal(crypto_sha256(verifier, strlen(verifier), digest), 0);
	b64url_encode(digest, 32, challenge2);
	assert_string_equal(challenge, challenge2);
	/* The same state always gives the same verifier; another state another. */
	assert_int_equal(session_pkce(&login, challenge2, challenge), 0);
	assert_string_equal(challenge2, verifier);
	strcpy(login.state, "other-state");
	assert_int_equal(session_pkce(&login, challenge2, challenge), 0);
	assert_string_not_equal(challenge2, verifier);
}

/* The verifier of state under secret s, computed as the format says. */
static void
pkce_by_hand(const char *s, const char *login_state,
	     char verifier[SESSION_VERIFIER_LEN + 1])
{
	unsigned char key[CRYPTO_KEY_LEN], mac[CRYPTO_MAC_LEN];

	assert_int_equal(crypto_derive_key(s, strlen(s), "baa pkce verifier v1", key), 0);
	assert_int_equal(crypto_hmac(key, login_state, strlen(login_state), mac), 0);
	b64url_encode(mac, sizeof(mac), verifier);
}

/*
 * A login begun before a rotation ends after it: its verifier must be the
 * one sent to Spotify then, under the secret that signed its cookie.
 */
static void
test_pkce_of_a_login_signed_by_the_second_secret_uses_that_secrets_key(void **state)
{
	struct oauth_login login, back;
	char cookie[SESSION_COOKIE_MAX + 1], challenge[B64URL_LEN(32) + 1];
	char before[SESSION_VERIFIER_LEN + 1], after[SESSION_VERIFIER_LEN + 1];
	char under_new[SESSION_VERIFIER_LEN + 1], by_hand[SESSION_VERIFIER_LEN + 1];

	assert_int_equal(session_new_login(&login, "/me", NOW, 600), 0);
	assert_int_equal(session_sign_login(&login, cookie, sizeof(cookie)), 0);
	assert_int_equal(session_pkce(&login, before, challenge), 0);

	use_secrets(new_secret, secret);
	assert_int_equal(session_verify_login(cookie, NOW + 1, &back), 0);
	assert_int_equal(back.key, 1);
	assert_int_equal(session_pkce(&back, after, challenge), 0);
	assert_string_equal(after, before);
	pkce_by_hand(secret, login.state, by_hand);
	assert_string_equal(after, by_hand);

	/* The first secret's PKCE key gives another verifier for the state. */
	back.key = 0;
	assert_int_equal(session_pkce(&back, under_new, challenge), 0);
	assert_string_not_equal(under_new, before);
	pkce_by_hand(new_secret, login.state, by_hand);
	assert_string_equal(under_new, by_hand);

	/* No secret at that position: no verifier. */
	back.key = 2;
	assert_int_equal(session_pkce(&back, under_new, challenge), -1);
	back.key = -1;
	assert_int_equal(session_pkce(&back, under_new, challenge), -1);
}

static void
test_login_cookie_round_trips_state_and_next(void **state)
{
	struct oauth_login login, back;
	char cookie[SESSION_COOKIE_MAX + 1], kid[SESSION_KID_LEN + 1];

	assert_int_equal(session_new_login(&login, "/account?tab=2", NOW, 600), 0);
	assert_int_equal(strlen(login.state), SESSION_STATE_LEN);
	assert_int_equal(login.key, 0);
	assert_int_equal(session_sign_login(&login, cookie, sizeof(cookie)), 0);
	kid_of(secret, kid);
	assert_int_equal(strncmp(cookie, "v2.", 3), 0);
	assert_memory_equal(cookie + 3, kid, SESSION_KID_LEN);
	assert_int_equal(session_verify_login(cookie, NOW + 1, &back), 0);
	assert_string_equal(back.state, login.state);
	assert_string_equal(back.next, "/account?tab=2");
	assert_int_equal(back.expires, NOW + 600);
	assert_int_equal(back.key, 0);
}

static void
test_login_cookie_has_the_documented_form(void **state)
{
	struct oauth_login login;
	char cookie[SESSION_COOKIE_MAX + 1], by_hand[SESSION_COOKIE_MAX + 1];
	char fields[256], kid[SESSION_KID_LEN + 1];

	assert_int_equal(session_new_login(&login, "/me", NOW, 600), 0);
	assert_int_equal(session_sign_login(&login, cookie, sizeof(cookie)), 0);
	kid_of(secret, kid);
	/* "/me" is "L21l" in base64url */
	snprintf(fields, sizeof(fields), "v2.%s.%s.%d.L21l", kid, login.state, NOW + 600);
	sign_login_fields(secret, fields, by_hand, sizeof(by_hand));
	assert_string_equal(cookie, by_hand);
}

/*
 * What the login asked Spotify for rides along (base64url, after next), so
 * that /callback can store it; a cookie without it, as every login signed
 * before, says nothing of it.
 */
static void
test_login_cookie_carries_what_the_login_asked_for(void **state)
{
	struct oauth_login login, back;
	char cookie[SESSION_COOKIE_MAX + 1], by_hand[SESSION_COOKIE_MAX + 1];
	char fields[256], kid[SESSION_KID_LEN + 1];

	assert_int_equal(session_new_login(&login, "/me", NOW, 600), 0);
	assert_false(login.has_asked);
	snprintf(login.asked, sizeof(login.asked), "a-b c");
	login.has_asked = 1;
	assert_int_equal(session_sign_login(&login, cookie, sizeof(cookie)), 0);
	kid_of(secret, kid);
	/* "a-b c" is "YS1iIGM" in base64url */
	snprintf(fields, sizeof(fields), "v2.%s.%s.%d.L21l.YS1iIGM", kid, login.state,
		 NOW + 600);
	sign_login_fields(secret, fields, by_hand, sizeof(by_hand));
	assert_string_equal(cookie, by_hand);
	assert_int_equal(session_verify_login(cookie, NOW + 1, &back), 0);
	assert_true(back.has_asked);
	assert_string_equal(back.asked, "a-b c");
	assert_string_equal(back.next, "/me");

	/* Nothing asked for is something known too. */
	login.asked[0] = '\0';
	assert_int_equal(session_sign_login(&login, cookie, sizeof(cookie)), 0);
	assert_int_equal(session_verify_login(cookie, NOW + 1, &back), 0);
	assert_true(back.has_asked);
	assert_string_equal(back.asked, "");

	/* The form of every login signed before: not known. */
	snprintf(fields, sizeof(fields), "v2.%s.%s.%d.L21l", kid, login.state, NOW + 600);
	sign_login_fields(secret, fields, by_hand, sizeof(by_hand));
	assert_int_equal(session_verify_login(by_hand, NOW + 1, &back), 0);
	assert_false(back.has_asked);
	assert_string_equal(back.asked, "");
}

/* A login with a long next and many scopes still fits: without the scopes. */
static void
test_login_cookie_leaves_out_what_was_asked_for_when_it_would_not_fit(void **state)
{
	struct oauth_login login, back;
	char cookie[SESSION_COOKIE_MAX + 1], next[SESSION_NEXT_MAX + 1];

	memset(next, 'n', sizeof(next) - 1);
	next[0] = '/';
	next[sizeof(next) - 1] = '\0';
	assert_int_equal(session_new_login(&login, next, NOW, 600), 0);
	memset(login.asked, 'a', sizeof(login.asked) - 1);
	login.asked[sizeof(login.asked) - 1] = '\0';
	login.has_asked = 1;
	assert_int_equal(session_sign_login(&login, cookie, sizeof(cookie)), 0);
	assert_int_equal(session_verify_login(cookie, NOW + 1, &back), 0);
	assert_string_equal(back.next, next);
	assert_false(back.has_asked);
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
	assert_int_equal(session_verify_login(cookie, NOW + 599, &back), 0);
	assert_int_equal(session_verify_login(cookie, NOW + 600, &back), -1);
}

static void
test_session_cookie_round_trips_its_id_and_expiry(void **state)
{
	struct session_cookie s, back;
	char cookie[SESSION_COOKIE_MAX + 1];

	new_session_cookie(&s, cookie);
	assert_int_equal(s.key, 0);
	assert_int_equal(session_verify(cookie, NOW, &back), 0);
	assert_memory_equal(back.id, s.id, SESSION_ID_LEN);
	assert_int_equal(back.expires, NOW + 3600);
	assert_int_equal(back.key, 0);
	assert_int_equal(session_verify(cookie, NOW + 3600, &back), -1);
}

static void
test_session_cookie_has_the_documented_form(void **state)
{
	struct session_cookie s;
	char cookie[SESSION_COOKIE_MAX + 1], by_hand[SESSION_COOKIE_MAX + 1];
	char fields[128], kid[SESSION_KID_LEN + 1], id[B64URL_LEN(SESSION_ID_LEN) + 1];

	new_session_cookie(&s, cookie);
	kid_of(secret, kid);
	b64url_encode(s.id, sizeof(s.id), id);
	assert_int_equal(strlen(id), 43);
	snprintf(fields, sizeof(fields), "v2.%s.%s.%d", kid, id, NOW + 3600);
	sign_session_fields(secret, fields, by_hand, sizeof(by_hand));
	assert_string_equal(cookie, by_hand);
}

static void
test_any_changed_byte_breaks_a_cookie(void **state)
{
	struct session_cookie s, back;
	char cookie[SESSION_COOKIE_MAX + 1], forged[SESSION_COOKIE_MAX + 1];

	new_session_cookie(&s, cookie);
	for (size_t i = 0; i < strlen(cookie); i++) {
		strcpy(forged, cookie);
		forged[i] = forged[i] == 'A' ? 'B' : 'A';
		assert_int_equal(session_verify(forged, NOW, &back), -1);
	}
	strcpy(forged, cookie);
	forged[strlen(forged) - 1] = '\0';
	assert_int_equal(session_verify(forged, NOW, &back), -1);
}

static void
test_forged_fields_with_an_old_mac_are_refused(void **state)
{
	struct session_cookie a, b, back;
	char cookie_a[SESSION_COOKIE_MAX + 1], cookie_b[SESSION_COOKIE_MAX + 1];
	char forged[2 * SESSION_COOKIE_MAX];

	new_session_cookie(&a, cookie_a);
	new_session_cookie(&b, cookie_b);
	/* b's fields under a's MAC */
	snprintf(forged, sizeof(forged), "%.*s%s",
		 (int)(strrchr(cookie_b, '.') - cookie_b), cookie_b,
		 strrchr(cookie_a, '.'));
	assert_int_equal(session_verify(forged, NOW, &back), -1);
}

static void
test_a_login_cookie_is_no_session_cookie(void **state)
{
	struct oauth_login login;
	struct session_cookie s, back;
	struct legacy_session legacy;
	char cookie[SESSION_COOKIE_MAX + 1];

	session_new_login(&login, "/", NOW, 600);
	session_sign_login(&login, cookie, sizeof(cookie));
	assert_int_equal(session_verify(cookie, NOW, &back), -1);
	assert_int_equal(session_verify_legacy(cookie, NOW, &legacy), -1);
	new_session_cookie(&s, cookie);
	assert_int_equal(session_verify_login(cookie, NOW, &login), -1);
}

/* The purposes are the first cookie names, kept through the rename. */
static void
test_a_mac_over_the_new_cookie_name_is_refused(void **state)
{
	char fields[128], cookie[SESSION_COOKIE_MAX + 1], kid[SESSION_KID_LEN + 1];
	struct session_cookie back;

	kid_of(secret, kid);
	snprintf(fields, sizeof(fields), "v2.%s.%043d.%d", kid, 0, NOW + 60);
	sign_session_fields(secret, fields, cookie, sizeof(cookie));
	assert_int_equal(session_verify(cookie, NOW, &back), 0);
	sign_fields(secret, "baa session cookie v1", SESSION_COOKIE, fields, cookie,
		    sizeof(cookie));
	assert_int_equal(session_verify(cookie, NOW, &back), -1);
}

static void
test_a_cookie_signed_by_the_second_secret_verifies_as_key_1(void **state)
{
	struct session_cookie s, back, again;
	struct oauth_login login, login_back;
	char cookie[SESSION_COOKIE_MAX + 1], reissued[SESSION_COOKIE_MAX + 1];
	char login_cookie[SESSION_COOKIE_MAX + 1], kid[SESSION_KID_LEN + 1];

	new_session_cookie(&s, cookie);
	session_new_login(&login, "/me", NOW, 600);
	session_sign_login(&login, login_cookie, sizeof(login_cookie));

	/* The rotation's second step: a new secret first, the old one kept. */
	use_secrets(new_secret, secret);
	assert_int_equal(session_verify(cookie, NOW, &back), 0);
	assert_int_equal(back.key, 1); /* the caller re-issues it */
	assert_memory_equal(back.id, s.id, SESSION_ID_LEN);
	assert_int_equal(session_verify_login(login_cookie, NOW, &login_back), 0);
	assert_int_equal(login_back.key, 1);
	assert_string_equal(login_back.state, login.state);

	/* Re-issued: the same session under the first secret. */
	assert_int_equal(session_sign(&back, reissued, sizeof(reissued)), 0);
	assert_string_not_equal(reissued, cookie);
	kid_of(new_secret, kid);
	assert_memory_equal(reissued + 3, kid, SESSION_KID_LEN);
	assert_int_equal(session_verify(reissued, NOW, &again), 0);
	assert_int_equal(again.key, 0);
	assert_memory_equal(again.id, s.id, SESSION_ID_LEN);
	assert_int_equal(again.expires, s.expires);
}

static void
test_a_cookie_whose_kid_names_no_secret_is_refused(void **state)
{
	struct session_cookie s, back;
	char cookie[SESSION_COOKIE_MAX + 1], fields[SESSION_COOKIE_MAX + 1];
	char forged[SESSION_COOKIE_MAX + 1], kid[SESSION_KID_LEN + 1];

	new_session_cookie(&s, cookie);
	/* The right MAC under the right key, but the kid names no secret. */
	snprintf(fields, sizeof(fields), "%.*s", (int)(strrchr(cookie, '.') - cookie),
		 cookie);
	memcpy(fields + 3, "AAAAAAAA", SESSION_KID_LEN);
	sign_session_fields(secret, fields, forged, sizeof(forged));
	assert_int_equal(session_verify(forged, NOW, &back), -1);

	/* The kid of one secret, the MAC of another: the kid picks the key. */
	use_secrets(secret, old_secret);
	kid_of(secret, kid);
	memcpy(fields + 3, kid, SESSION_KID_LEN);
	sign_session_fields(old_secret, fields, forged, sizeof(forged));
	assert_int_equal(session_verify(forged, NOW, &back), -1);
	sign_session_fields(secret, fields, forged, sizeof(forged));
	assert_int_equal(session_verify(forged, NOW, &back), 0);

	/* A kid one character short or long. */
	snprintf(fields, sizeof(fields), "v2.%.7s.%043d.%d", kid, 0, NOW + 60);
	sign_session_fields(secret, fields, forged, sizeof(forged));
	assert_int_equal(session_verify(forged, NOW, &back), -1);
	snprintf(fields, sizeof(fields), "v2.%sA.%043d.%d", kid, 0, NOW + 60);
	sign_session_fields(secret, fields, forged, sizeof(forged));
	assert_int_equal(session_verify(forged, NOW, &back), -1);
}

static void
test_a_dropped_secret_no_longer_verifies_its_cookies(void **state)
{
	struct session_cookie s, back;
	struct legacy_session legacy;
	struct oauth_login login, login_back;
	char cookie[SESSION_COOKIE_MAX + 1], login_cookie[SESSION_COOKIE_MAX + 1];
	char v1[SESSION_COOKIE_MAX + 1];

	new_session_cookie(&s, cookie);
	session_new_login(&login, "/", NOW, 600);
	session_sign_login(&login, login_cookie, sizeof(login_cookie));
	legacy_session_cookie(secret, 42, 3, NOW + 60, v1, sizeof(v1));

	use_secrets(new_secret, NULL);
	assert_int_equal(session_verify(cookie, NOW, &back), -1);
	assert_int_equal(session_verify_login(login_cookie, NOW, &login_back), -1);
	assert_int_equal(session_verify_legacy(v1, NOW, &legacy), -1);

	use_secrets(new_secret, secret);
	assert_int_equal(session_verify(cookie, NOW, &back), 0);
	assert_int_equal(session_verify_login(login_cookie, NOW, &login_back), 0);
	assert_int_equal(session_verify_legacy(v1, NOW, &legacy), 0);
}

static void
test_signing_uses_the_first_listed_secret(void **state)
{
	struct session_cookie s;
	char cookie[SESSION_COOKIE_MAX + 1], kid[SESSION_KID_LEN + 1];

	use_secrets(old_secret, secret);
	new_session_cookie(&s, cookie);
	kid_of(old_secret, kid);
	assert_memory_equal(cookie + 3, kid, SESSION_KID_LEN);
	kid_of(secret, kid);
	assert_memory_not_equal(cookie + 3, kid, SESSION_KID_LEN);
}

static void
test_first_format_session_cookie_is_read_by_verify_legacy_only(void **state)
{
	struct legacy_session legacy;
	struct session_cookie s, back;
	char v1[SESSION_COOKIE_MAX + 1], v2[SESSION_COOKIE_MAX + 1];

	legacy_session_cookie(secret, 42, 3, NOW + 60, v1, sizeof(v1));
	assert_int_equal(session_verify_legacy(v1, NOW, &legacy), 0);
	assert_int_equal(legacy.user_id, 42);
	assert_int_equal(legacy.generation, 3);
	assert_int_equal(legacy.expires, NOW + 60);
	assert_int_equal(session_verify(v1, NOW, &back), -1);
	assert_int_equal(session_verify_legacy(v1, NOW + 60, &legacy), -1);

	new_session_cookie(&s, v2);
	assert_int_equal(session_verify_legacy(v2, NOW, &legacy), -1);

	/* Signed by a secret listed second: each secret is tried. */
	legacy_session_cookie(old_secret, 7, 0, NOW + 60, v1, sizeof(v1));
	assert_int_equal(session_verify_legacy(v1, NOW, &legacy), -1);
	use_secrets(secret, old_secret);
	assert_int_equal(session_verify_legacy(v1, NOW, &legacy), 0);
	assert_int_equal(legacy.user_id, 7);
}

static void
test_forged_first_format_fields_are_refused(void **state)
{
	struct legacy_session legacy;
	char v1[SESSION_COOKIE_MAX + 1], forged[SESSION_COOKIE_MAX + 1];
	/* Signed, but not strict decimals, or not three of them. */
	static const char *const bad[] = {"v1.042.3.1800000060", "v1.-1.3.1800000060",
					  "v1.42.3", "v1.42.3.1800000060.9",
					  "v1.42.+3.1800000060"};

	legacy_session_cookie(secret, 42, 3, NOW + 60, v1, sizeof(v1));
	snprintf(forged, sizeof(forged), "v1.1.3.%d%s", NOW + 60, strrchr(v1, '.'));
	assert_int_equal(session_verify_legacy(forged, NOW, &legacy), -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sign_session_fields(secret, bad[i], forged, sizeof(forged));
		assert_int_equal(session_verify_legacy(forged, NOW, &legacy), -1);
	}
}

static void
test_first_format_login_cookie_still_verifies(void **state)
{
	char fields[256], cookie[SESSION_COOKIE_MAX + 1], next[B64URL_LEN(16) + 1];
	struct oauth_login back;
	struct session_cookie s;

	b64url_encode((const unsigned char *)"/me/token", 9, next);
	snprintf(fields, sizeof(fields), "v1.%043d.%d.%s", 7, NOW + 60, next);
	sign_login_fields(secret, fields, cookie, sizeof(cookie));
	assert_int_equal(session_verify_login(cookie, NOW, &back), 0);
	assert_string_equal(back.next, "/me/token");
	assert_int_equal(back.expires, NOW + 60);
	assert_int_equal(back.key, 0);
	assert_int_equal(session_verify(cookie, NOW, &s), -1);

	/* Under a secret listed second, it carries that secret's index. */
	sign_login_fields(old_secret, fields, cookie, sizeof(cookie));
	assert_int_equal(session_verify_login(cookie, NOW, &back), -1);
	use_secrets(secret, old_secret);
	assert_int_equal(session_verify_login(cookie, NOW, &back), 0);
	assert_int_equal(back.key, 1);
}

static void
test_garbage_cookies_are_refused(void **state)
{
	static const char *const bad[] = {"",
					  ".",
					  "v1",
					  "v2",
					  "v1....",
					  "v2.....",
					  "v1.1.2.3",
					  "v2.1.2.3.x",
					  "v3.AAAAAAAA.AAAA.1.AAAA",
					  "V2.AAAAAAAA.AAAA.1.AAAA",
					  "v1.-1.2.3.AAAA",
					  "v1.01.2.3.AAAA",
					  "v2.AAAAAAAA"};
	struct session_cookie back;
	struct legacy_session legacy;
	struct oauth_login login;
	char huge[SESSION_COOKIE_MAX + 10];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(session_verify(bad[i], NOW, &back), -1);
		assert_int_equal(session_verify_legacy(bad[i], NOW, &legacy), -1);
		assert_int_equal(session_verify_login(bad[i], NOW, &login), -1);
	}
	memset(huge, 'a', sizeof(huge) - 1);
	memcpy(huge, "v2.", 3);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(session_verify(huge, NOW, &back), -1);
	assert_int_equal(session_verify_login(huge, NOW, &login), -1);
}

/* Behind a good MAC: a session id of another length is refused. */
static void
test_a_signed_session_id_of_the_wrong_length_is_refused(void **state)
{
	char fields[256], cookie[SESSION_COOKIE_MAX + 1], kid[SESSION_KID_LEN + 1];
	struct session_cookie back;
	static const char *const ids[] = {
		"",
		"AAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",	/* 42 */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",	/* not canonical */
	};

	kid_of(secret, kid);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		snprintf(fields, sizeof(fields), "v2.%s.%s.%d", kid, ids[i], NOW + 60);
		sign_session_fields(secret, fields, cookie, sizeof(cookie));
		assert_int_equal(session_verify(cookie, NOW, &back), -1);
	}
	snprintf(fields, sizeof(fields), "v2.%s.%043d.0%d", kid, 0, NOW + 60);
	sign_session_fields(secret, fields, cookie, sizeof(cookie));
	assert_int_equal(session_verify(cookie, NOW, &back), -1);
	snprintf(fields, sizeof(fields), "v2.%s.%043d.%d", kid, 0, NOW + 60);
	sign_session_fields(secret, fields, cookie, sizeof(cookie));
	assert_int_equal(session_verify(cookie, NOW, &back), 0);
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
	char kid[SESSION_KID_LEN + 1];
	struct oauth_login back;

	kid_of(secret, kid);
	for (int v2 = 0; v2 <= 1; v2++) {
		const char *head = v2 ? "v2." : "v1.";
		const char *kid_field = v2 ? kid : "";
		const char *dot = v2 ? "." : "";

		/* The helper signs like session.c: a clean path verifies. */
		b64url_encode((const unsigned char *)"/me", 3, next);
		snprintf(fields, sizeof(fields), "%s%s%s%043d.%d.%s", head, kid_field,
			 dot, 0, NOW + 60, next);
		sign_login_fields(secret, fields, cookie, sizeof(cookie));
		assert_int_equal(session_verify_login(cookie, NOW, &back), 0);
		assert_string_equal(back.next, "/me");

		b64url_encode((const unsigned char *)"/me\0/x", 6, next);
		snprintf(fields, sizeof(fields), "%s%s%s%043d.%d.%s", head, kid_field,
			 dot, 0, NOW + 60, next);
		sign_login_fields(secret, fields, cookie, sizeof(cookie));
		assert_int_equal(session_verify_login(cookie, NOW, &back), -1);
	}
}

static void
test_session_id_hash_is_sha256_of_the_32_raw_bytes(void **state)
{
	/* SHA-256 of 32 zero bytes */
	static const unsigned char zeros_hash[32] = {
		0x66, 0x68, 0x7a, 0xad, 0xf8, 0x62, 0xbd, 0x77, 0x6c, 0x8f, 0xc1,
		0x8b, 0x8e, 0x9f, 0x8e, 0x20, 0x08, 0x97, 0x14, 0x85, 0x6e, 0xe2,
		0x33, 0xb3, 0x90, 0x2a, 0x59, 0x1d, 0x0d, 0x5f, 0x29, 0x25};
	struct session_cookie s = {.expires = NOW}, t;
	unsigned char hash[32], expected[32];
	char cookie[SESSION_COOKIE_MAX + 1];

	assert_int_equal(session_id_hash(&s, hash), 0);
	assert_memory_equal(hash, zeros_hash, sizeof(hash));

	new_session_cookie(&s, cookie);
	new_session_cookie(&t, cookie);
	assert_memory_not_equal(s.id, t.id, SESSION_ID_LEN);
	assert_int_equal(session_id_hash(&s, hash), 0);
	assert_int_equal(crypto_sha256(s.id, SESSION_ID_LEN, expected), 0);
	assert_memory_equal(hash, expected, sizeof(hash));
}

static void
test_secret_lists_are_checked_without_quoting_a_secret(void **state)
{
	static const char short_one[] = "short-secret-value";
	char list[1024], err[256];

	assert_int_equal(session_check_secrets(secret, 32, err, sizeof(err)), 0);
	snprintf(list, sizeof(list), "  %s   %s ", secret, old_secret);
	assert_int_equal(session_check_secrets(list, 32, err, sizeof(err)), 0);

	err[0] = '\0';
	assert_int_equal(session_check_secrets("", 32, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(session_check_secrets("    ", 32, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));

	snprintf(list, sizeof(list), "%s %s %s", secret, short_one, old_secret);
	assert_int_equal(session_check_secrets(list, 32, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "secret 2 "));
	assert_non_null(strstr(err, "at least 32 bytes"));
	assert_null(strstr(err, short_one));
	assert_null(strstr(err, "short-secret"));
	assert_null(strstr(err, "test-secret"));
	assert_null(strstr(err, "older-secret"));

	/* Eight secrets are the most. */
	list[0] = '\0';
	for (int i = 0; i < SESSION_KEYS_MAX; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i ? " " : "", i % 2 ? secret : old_secret);
	assert_int_equal(session_check_secrets(list, 32, err, sizeof(err)), 0);
	assert_int_equal(session_init(list), 0);
	snprintf(list + strlen(list), sizeof(list) - strlen(list), " %s", new_secret);
	assert_int_equal(session_check_secrets(list, 32, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 8"));
	assert_null(strstr(err, "secret-key"));
	assert_int_equal(session_init(list), -1);
	assert_int_equal(session_init(""), -1);
	assert_int_equal(session_init("   "), -1);
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

/*
 * A first-format cookie adopted twice is adopted under one id, which only
 * baa can compute: the same cookie gives the same id, another cookie or
 * another first secret another one.
 */
static void
test_an_adopted_cookie_always_gets_the_same_secret_id(void **state)
{
	struct session_cookie a, b, c, d;

	assert_int_equal(session_adopted_id("v1.7.1.1800003600.MAC", &a), 0);
	assert_int_equal(session_adopted_id("v1.7.1.1800003600.MAC", &b), 0);
	assert_int_equal(session_adopted_id("v1.7.2.1800003600.MAC", &c), 0);
	assert_memory_equal(a.id, b.id, SESSION_ID_LEN);
	assert_memory_not_equal(a.id, c.id, SESSION_ID_LEN);
	assert_int_equal(a.key, 0);
	use_secrets(new_secret, secret);
	assert_int_equal(session_adopted_id("v1.7.1.1800003600.MAC", &d), 0);
	assert_memory_not_equal(a.id, d.id, SESSION_ID_LEN);
}

#define TEST(f) cmocka_unit_test_setup(f, one_secret)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_b64url_round_trips_every_length),
		TEST(test_b64url_refuses_non_canonical_or_foreign_text),
		TEST(test_b64url_takes_exactly_its_64_characters),
		TEST(test_pkce_challenge_is_s256_of_a_43_char_verifier),
		TEST(test_pkce_of_a_login_signed_by_the_second_secret_uses_that_secrets_key),
		TEST(test_login_cookie_round_trips_state_and_next),
		TEST(test_login_cookie_has_the_documented_form),
		TEST(test_login_cookie_carries_what_the_login_asked_for),
		TEST(test_login_cookie_leaves_out_what_was_asked_for_when_it_would_not_fit),
		TEST(test_two_logins_get_different_states),
		TEST(test_expired_login_cookie_is_refused),
		TEST(test_session_cookie_round_trips_its_id_and_expiry),
		TEST(test_session_cookie_has_the_documented_form),
		TEST(test_any_changed_byte_breaks_a_cookie),
		TEST(test_forged_fields_with_an_old_mac_are_refused),
		TEST(test_a_login_cookie_is_no_session_cookie),
		TEST(test_a_mac_over_the_new_cookie_name_is_refused),
		TEST(test_a_cookie_signed_by_the_second_secret_verifies_as_key_1),
		TEST(test_a_cookie_whose_kid_names_no_secret_is_refused),
		TEST(test_a_dropped_secret_no_longer_verifies_its_cookies),
		TEST(test_signing_uses_the_first_listed_secret),
		TEST(test_first_format_session_cookie_is_read_by_verify_legacy_only),
		TEST(test_forged_first_format_fields_are_refused),
		TEST(test_first_format_login_cookie_still_verifies),
		TEST(test_garbage_cookies_are_refused),
		TEST(test_a_signed_session_id_of_the_wrong_length_is_refused),
		TEST(test_signed_next_with_a_nul_byte_is_refused_not_cut),
		TEST(test_session_id_hash_is_sha256_of_the_32_raw_bytes),
		TEST(test_an_adopted_cookie_always_gets_the_same_secret_id),
		TEST(test_secret_lists_are_checked_without_quoting_a_secret),
		TEST(test_only_local_paths_are_places_to_return_to),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
