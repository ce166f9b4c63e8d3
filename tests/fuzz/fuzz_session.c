/*
 * Signed cookies: session_verify_user and session_verify_login, and the
 * base64url they are made of. Random bytes rarely get past the MAC, so the
 * target also signs the fuzzer's bytes itself, the way baa does (format in
 * session.c), which lets the fuzzer reach the field parsers behind the MAC.
 * Invariants: what verifies is unexpired and well formed, and signing the
 * parsed fields again gives back the very same cookie (one encoding per
 * value); base64url decodes what it encodes and nothing else.
 *
 * The first byte picks the mode, the rest is the input.
 */
#include "fuzz.h"

#include "../../src/crypto.h"
#include "../../src/session.h"

enum mode {
	MODE_RAW,	     /* the bytes as a cookie value, both kinds */
	MODE_SIGNED_SESSION, /* "<bytes>.<mac>" under the session key */
	MODE_SIGNED_LOGIN,   /* "<bytes>.<mac>" under the login key */
	MODE_BASE64URL,	     /* decode and encode round trips */
	MODE_COUNT
};

static unsigned char session_key[CRYPTO_KEY_LEN], oauth_key[CRYPTO_KEY_LEN];

/* value = fields + "." + b64url(HMAC(key, "<name>|<fields>")), or -1. */
static int
sign(const unsigned char *key, const char *name, const char *fields, char *value,
     size_t size)
{
	char input[SESSION_COOKIE_MAX + 64];
	unsigned char mac[CRYPTO_MAC_LEN];
	int n = snprintf(input, sizeof(input), "%s|%s", name, fields);
	size_t len = strlen(fields);

	if (n < 0 || (size_t)n >= sizeof(input) ||
	    crypto_hmac(key, input, (size_t)n, mac) < 0 ||
	    len + 1 + B64URL_LEN(CRYPTO_MAC_LEN) + 1 > size)
		return -1;
	memcpy(value, fields, len);
	value[len] = '.';
	b64url_encode(mac, sizeof(mac), value + len + 1);
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct user_session s = {42, 7, FUZZ_NOW + 60};
	char by_baa[SESSION_COOKIE_MAX + 1], by_target[SESSION_COOKIE_MAX + 1];

	if (session_init(FUZZ_SECRET, strlen(FUZZ_SECRET)) < 0 ||
	    crypto_derive_key(FUZZ_SECRET, strlen(FUZZ_SECRET), "baa session cookie v1",
			      session_key) < 0 ||
	    crypto_derive_key(FUZZ_SECRET, strlen(FUZZ_SECRET), "baa oauth cookie v1",
			      oauth_key) < 0)
		abort();
	/* The target's signing must be baa's, or the signed modes test nothing. */
	if (session_sign_user(&s, by_baa, sizeof(by_baa)) < 0 ||
	    sign(session_key, SESSION_COOKIE, "v1.42.7.1700000060", by_target,
		 sizeof(by_target)) < 0 ||
	    strcmp(by_baa, by_target) != 0) {
		fprintf(stderr, "fuzz_session: the target signs unlike session.c\n");
		abort();
	}
	return 0;
}

static void
verify_user(const char *value)
{
	struct user_session s;
	char again[SESSION_COOKIE_MAX + 1];

	if (session_verify_user(value, FUZZ_NOW, &s) < 0)
		return;
	FUZZ_ASSERT(strlen(value) <= SESSION_COOKIE_MAX);
	FUZZ_ASSERT(s.expires > FUZZ_NOW && s.user_id >= 0 && s.generation >= 0);
	FUZZ_ASSERT(session_sign_user(&s, again, sizeof(again)) == 0);
	FUZZ_ASSERT(strcmp(again, value) == 0);
}

static void
verify_login(const char *value)
{
	struct oauth_login login;
	char again[SESSION_COOKIE_MAX + 1];

	if (session_verify_login(value, FUZZ_NOW, &login) < 0)
		return;
	FUZZ_ASSERT(strlen(value) <= SESSION_COOKIE_MAX);
	FUZZ_ASSERT(login.expires > FUZZ_NOW && strlen(login.state) == SESSION_STATE_LEN);
	FUZZ_ASSERT(session_is_local_path(login.next));
	FUZZ_ASSERT(session_sign_login(&login, again, sizeof(again)) == 0);
	FUZZ_ASSERT(strcmp(again, value) == 0);
}

static void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

static void
check_base64url(const uint8_t *data, size_t size)
{
	char *text = xmalloc(B64URL_LEN(size) + 1);
	unsigned char *bytes = xmalloc(size);
	long n;

	/* Bytes -> text -> the same bytes, in a buffer of exactly their size. */
	FUZZ_ASSERT(b64url_encode(data, size, text) == B64URL_LEN(size));
	FUZZ_ASSERT(strlen(text) == B64URL_LEN(size));
	FUZZ_ASSERT(b64url_decode(text, strlen(text), bytes, size) == (long)size);
	FUZZ_ASSERT(memcmp(bytes, data, size) == 0);
	free(bytes);
	free(text);

	/* Text -> bytes -> the same text: only canonical text decodes. */
	bytes = xmalloc(size);
	n = b64url_decode((const char *)data, size, bytes, size);
	if (n >= 0) {
		FUZZ_ASSERT((size_t)n <= size * 3 / 4);
		text = xmalloc(B64URL_LEN((size_t)n) + 1);
		b64url_encode(bytes, (size_t)n, text);
		FUZZ_ASSERT(strlen(text) == size && memcmp(text, data, size) == 0);
		free(text);
	}
	free(bytes);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char value[SESSION_COOKIE_MAX + 64];
	char *text;

	if (size == 0)
		return 0;
	text = fuzz_string(data + 1, size - 1);
	switch (data[0] % MODE_COUNT) {
	case MODE_RAW:
		verify_user(text);
		verify_login(text);
		break;
	case MODE_SIGNED_SESSION:
		if (sign(session_key, SESSION_COOKIE, text, value, sizeof(value)) == 0) {
			struct oauth_login login;
			verify_user(value);
			/* A value signed for one purpose is worthless for another. */
			FUZZ_ASSERT(session_verify_login(value, FUZZ_NOW, &login) < 0);
		}
		break;
	case MODE_SIGNED_LOGIN:
		if (sign(oauth_key, OAUTH_COOKIE, text, value, sizeof(value)) == 0) {
			struct user_session session;
			verify_login(value);
			FUZZ_ASSERT(session_verify_user(value, FUZZ_NOW, &session) < 0);
		}
		break;
	case MODE_BASE64URL: check_base64url(data + 1, size - 1); break;
	}
	free(text);
	return 0;
}
