/*
 * Signed cookies: session_verify, session_verify_legacy and
 * session_verify_login, and the base64url they are made of, with two
 * secrets listed (FUZZ_SECRET first, FUZZ_SECRET_OLD second). Random bytes
 * rarely get past the MAC, so the target also signs the fuzzer's bytes
 * itself, the way baa does (format in session.c), under a listed secret or
 * one no longer listed, which lets the fuzzer reach the field parsers
 * behind the MAC. Invariants: what verifies is unexpired and well formed,
 * names (by its kid) the listed secret whose key signed it, and signing
 * the parsed fields again under that secret gives back the very same
 * cookie (one encoding per value); re-issued under the first secret it
 * verifies as the same value with key 0; a v1 and a v2 value never verify
 * as each other's kind, nor a session cookie as a login or back; nothing
 * an unlisted secret signed verifies; base64url decodes what it encodes and
 * nothing else.
 *
 * The first byte picks the mode; in the keyed modes the second picks the
 * secret; the rest is the input.
 */
#include "fuzz.h"

#include "../../src/crypto.h"
#include "../../src/session.h"

enum mode {
	MODE_RAW,	     /* the bytes as a cookie value, every kind */
	MODE_SIGNED_SESSION, /* "<bytes>.<mac>" under the first session key */
	MODE_SIGNED_LOGIN,   /* "<bytes>.<mac>" under the first login key */
	MODE_BASE64URL,	     /* decode and encode round trips */
	MODE_KEYED_SESSION,  /* "v2.<kid>.<bytes>.<mac>" of a chosen secret */
	MODE_KEYED_LOGIN,    /* the same with its login key */
	MODE_COUNT
};

#define SECRETS 3 /* FUZZ_SECRET, FUZZ_SECRET_OLD, FUZZ_SECRET_GONE */
#define LISTED 2  /* the first two are BAA_SECRET_KEY */
#define UNKNOWN (-1)

/* The MAC inputs' purposes (session.c). */
#define SESSION_PURPOSE "baa_session"
#define OAUTH_PURPOSE "baa_oauth"

static struct {
	unsigned char session[CRYPTO_KEY_LEN], oauth[CRYPTO_KEY_LEN];
	char kid[SESSION_KID_LEN + 1];
} secrets[SECRETS];

/* value = fields + "." + b64url(HMAC(key, "<purpose>|<fields>")), or -1. */
static int
sign(const unsigned char *key, const char *purpose, const char *fields, char *value,
     size_t size)
{
	char input[2 * SESSION_COOKIE_MAX];
	unsigned char mac[CRYPTO_MAC_LEN];
	int n = snprintf(input, sizeof(input), "%s|%s", purpose, fields);
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

static void
derive(int i, const char *secret)
{
	static const char label[] = "baa cookie key id";
	unsigned char mac[CRYPTO_MAC_LEN];

	if (crypto_derive_key(secret, strlen(secret), "baa session cookie v1",
			      secrets[i].session) < 0 ||
	    crypto_derive_key(secret, strlen(secret), "baa oauth cookie v1",
			      secrets[i].oauth) < 0 ||
	    crypto_hmac(secrets[i].session, label, strlen(label), mac) < 0)
		abort();
	b64url_encode(mac, 6, secrets[i].kid);
}

/* The session cookie of s as the target signs it under secret i. */
static int
sign_session(int i, const struct session_cookie *s, char *out, size_t size)
{
	char id[B64URL_LEN(SESSION_ID_LEN) + 1], fields[SESSION_COOKIE_MAX];

	b64url_encode(s->id, sizeof(s->id), id);
	snprintf(fields, sizeof(fields), "v2.%s.%s.%lld", secrets[i].kid, id,
		 (long long)s->expires);
	return sign(secrets[i].session, SESSION_PURPOSE, fields, out, size);
}

/*
 * The login cookie as the target signs it under secret i, v1 or v2: a v2
 * with what the login asked for when it has it (v1 never carried it).
 */
static int
sign_login(int i, int v1, const struct oauth_login *login, char *out, size_t size)
{
	char next[B64URL_LEN(SESSION_NEXT_MAX) + 1], fields[SESSION_COOKIE_MAX + 1];
	char asked[B64URL_LEN(SESSION_ASKED_MAX) + 2] = "";
	int n;

	b64url_encode((const unsigned char *)login->next, strlen(login->next), next);
	if (!v1 && login->has_asked) {
		asked[0] = '.';
		b64url_encode((const unsigned char *)login->asked, strlen(login->asked),
			      asked + 1);
	}
	n = snprintf(fields, sizeof(fields), "%s%s%s%s.%lld.%s%s", v1 ? "v1." : "v2.",
		     v1 ? "" : secrets[i].kid, v1 ? "" : ".", login->state,
		     (long long)login->expires, next, asked);
	if (n < 0 || (size_t)n >= sizeof(fields))
		return -1;
	return sign(secrets[i].oauth, OAUTH_PURPOSE, fields, out, size);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct session_cookie s = {.expires = FUZZ_NOW + 60};
	struct oauth_login login = {.next = "/me", .expires = FUZZ_NOW + 60};
	char by_baa[SESSION_COOKIE_MAX + 1], by_target[SESSION_COOKIE_MAX + 1];

	derive(0, FUZZ_SECRET);
	derive(1, FUZZ_SECRET_OLD);
	derive(2, FUZZ_SECRET_GONE);
	if (session_init(FUZZ_SECRET " " FUZZ_SECRET_OLD) < 0)
		abort();
	/* The target's signing must be baa's, or the signed modes test nothing. */
	memset(s.id, 0xa5, sizeof(s.id));
	memset(login.state, 'q', SESSION_STATE_LEN);
	if (session_sign(&s, by_baa, sizeof(by_baa)) < 0 ||
	    sign_session(0, &s, by_target, sizeof(by_target)) < 0 ||
	    strcmp(by_baa, by_target) != 0 ||
	    session_sign_login(&login, by_baa, sizeof(by_baa)) < 0 ||
	    sign_login(0, 0, &login, by_target, sizeof(by_target)) < 0 ||
	    strcmp(by_baa, by_target) != 0) {
		fprintf(stderr, "fuzz_session: the target signs unlike session.c\n");
		abort();
	}
	return 0;
}

/* signer: the secret the target signed with, or UNKNOWN. */
static void
check_session(const char *value, const struct session_cookie *s, int signer)
{
	struct session_cookie back;
	char again[SESSION_COOKIE_MAX + 1];

	FUZZ_ASSERT(strlen(value) <= SESSION_COOKIE_MAX);
	FUZZ_ASSERT(strncmp(value, "v2.", 3) == 0);
	FUZZ_ASSERT(s->expires > FUZZ_NOW);
	FUZZ_ASSERT(s->key >= 0 && s->key < LISTED);
	FUZZ_ASSERT(signer == UNKNOWN || s->key == signer);
	FUZZ_ASSERT(memcmp(value + 3, secrets[s->key].kid, SESSION_KID_LEN) == 0);
	FUZZ_ASSERT(sign_session(s->key, s, again, sizeof(again)) == 0);
	FUZZ_ASSERT(strcmp(again, value) == 0);
	/* Re-issued by baa: under the first secret, the same session. */
	FUZZ_ASSERT(session_sign(s, again, sizeof(again)) == 0);
	FUZZ_ASSERT(s->key != 0 || strcmp(again, value) == 0);
	FUZZ_ASSERT(session_verify(again, FUZZ_NOW, &back) == 0);
	FUZZ_ASSERT(back.key == 0 && back.expires == s->expires);
	FUZZ_ASSERT(memcmp(back.id, s->id, SESSION_ID_LEN) == 0);
}

static void
check_legacy(const char *value, const struct legacy_session *s, int signer)
{
	char fields[64], again[SESSION_COOKIE_MAX + 1];
	int matches = 0;

	FUZZ_ASSERT(strlen(value) <= SESSION_COOKIE_MAX);
	FUZZ_ASSERT(strncmp(value, "v1.", 3) == 0);
	FUZZ_ASSERT(s->expires > FUZZ_NOW && s->user_id >= 0 && s->generation >= 0);
	snprintf(fields, sizeof(fields), "v1.%lld.%lld.%lld", s->user_id, s->generation,
		 (long long)s->expires);
	for (int i = 0; i < LISTED; i++) {
		FUZZ_ASSERT(sign(secrets[i].session, SESSION_PURPOSE, fields, again,
				 sizeof(again)) == 0);
		if (strcmp(again, value) == 0 && (signer == UNKNOWN || signer == i))
			matches++;
	}
	FUZZ_ASSERT(matches == 1);
}

/* Both readers of a session cookie: at most one kind verifies. */
static void
verify_session(const char *value, int signer)
{
	struct session_cookie s;
	struct legacy_session legacy;
	int v2 = session_verify(value, FUZZ_NOW, &s) == 0;
	int v1 = session_verify_legacy(value, FUZZ_NOW, &legacy) == 0;

	FUZZ_ASSERT(!(v1 && v2));
	if (v2)
		check_session(value, &s, signer);
	if (v1)
		check_legacy(value, &legacy, signer);
}

static void
verify_login(const char *value, int signer)
{
	struct oauth_login login, back;
	char again[SESSION_COOKIE_MAX + 1], verifier[SESSION_VERIFIER_LEN + 1];
	char challenge[B64URL_LEN(32) + 1];
	int v1;

	if (session_verify_login(value, FUZZ_NOW, &login) < 0)
		return;
	v1 = strncmp(value, "v1.", 3) == 0;
	FUZZ_ASSERT(strlen(value) <= SESSION_COOKIE_MAX);
	FUZZ_ASSERT(v1 || strncmp(value, "v2.", 3) == 0);
	FUZZ_ASSERT(login.expires > FUZZ_NOW && strlen(login.state) == SESSION_STATE_LEN);
	FUZZ_ASSERT(session_is_local_path(login.next));
	FUZZ_ASSERT(login.key >= 0 && login.key < LISTED);
	FUZZ_ASSERT(signer == UNKNOWN || login.key == signer);
	FUZZ_ASSERT(v1 ||
		    memcmp(value + 3, secrets[login.key].kid, SESSION_KID_LEN) == 0);
	FUZZ_ASSERT(sign_login(login.key, v1, &login, again, sizeof(again)) == 0);
	FUZZ_ASSERT(strcmp(again, value) == 0);
	FUZZ_ASSERT(session_pkce(&login, verifier, challenge) == 0);
	/* Re-signed by baa: v2 under the first secret, the same login. */
	FUZZ_ASSERT(session_sign_login(&login, again, sizeof(again)) == 0);
	FUZZ_ASSERT(v1 || login.key != 0 || strcmp(again, value) == 0);
	FUZZ_ASSERT(session_verify_login(again, FUZZ_NOW, &back) == 0);
	FUZZ_ASSERT(back.key == 0 && back.expires == login.expires);
	FUZZ_ASSERT(strcmp(back.state, login.state) == 0 &&
		    strcmp(back.next, login.next) == 0);
	/* What the login asked for: only v2 carries it, and it fit before. */
	FUZZ_ASSERT(!v1 || !login.has_asked);
	FUZZ_ASSERT(back.has_asked == login.has_asked &&
		    strcmp(back.asked, login.asked) == 0);
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

/* A value signed as a session cookie: a session, never a login. */
static void
signed_session(int i, const char *fields)
{
	char value[2 * SESSION_COOKIE_MAX];
	struct oauth_login login;

	if (sign(secrets[i].session, SESSION_PURPOSE, fields, value, sizeof(value)) < 0)
		return;
	verify_session(value, i < LISTED ? i : UNKNOWN);
	FUZZ_ASSERT(session_verify_login(value, FUZZ_NOW, &login) < 0);
	if (i >= LISTED) {
		struct session_cookie s;
		struct legacy_session legacy;
		FUZZ_ASSERT(session_verify(value, FUZZ_NOW, &s) < 0);
		FUZZ_ASSERT(session_verify_legacy(value, FUZZ_NOW, &legacy) < 0);
	}
}

/* A value signed as a login cookie: a login, never a session. */
static void
signed_login(int i, const char *fields)
{
	char value[2 * SESSION_COOKIE_MAX];
	struct session_cookie s;
	struct legacy_session legacy;
	struct oauth_login login;

	if (sign(secrets[i].oauth, OAUTH_PURPOSE, fields, value, sizeof(value)) < 0)
		return;
	verify_login(value, i < LISTED ? i : UNKNOWN);
	FUZZ_ASSERT(session_verify(value, FUZZ_NOW, &s) < 0);
	FUZZ_ASSERT(session_verify_legacy(value, FUZZ_NOW, &legacy) < 0);
	FUZZ_ASSERT(i < LISTED || session_verify_login(value, FUZZ_NOW, &login) < 0);
}

/* "v2.<kid of secret i>.<text>" */
static void
keyed(int login, int i, const char *text)
{
	char fields[2 * SESSION_COOKIE_MAX];
	int n = snprintf(fields, sizeof(fields), "v2.%s.%s", secrets[i].kid, text);

	if (n < 0 || (size_t)n >= sizeof(fields))
		return;
	if (login)
		signed_login(i, fields);
	else
		signed_session(i, fields);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum mode mode;
	char *text;

	if (size == 0)
		return 0;
	mode = (enum mode)(data[0] % MODE_COUNT);
	if ((mode == MODE_KEYED_SESSION || mode == MODE_KEYED_LOGIN) && size < 2)
		return 0;
	if (mode == MODE_KEYED_SESSION || mode == MODE_KEYED_LOGIN)
		text = fuzz_string(data + 2, size - 2);
	else
		text = fuzz_string(data + 1, size - 1);
	switch (mode) {
	case MODE_RAW:
		verify_session(text, UNKNOWN);
		verify_login(text, UNKNOWN);
		break;
	case MODE_SIGNED_SESSION: signed_session(0, text); break;
	case MODE_SIGNED_LOGIN: signed_login(0, text); break;
	case MODE_BASE64URL: check_base64url(data + 1, size - 1); break;
	case MODE_KEYED_SESSION: keyed(0, data[1] % SECRETS, text); break;
	case MODE_KEYED_LOGIN: keyed(1, data[1] % SECRETS, text); break;
	case MODE_COUNT: break;
	}
	free(text);
	return 0;
}
