/*
 * Cookie formats, each "v1.<fields>.<mac>" where mac is base64url of
 * HMAC-SHA256 over "<cookie name>|v1.<fields>" with a key of its own, so
 * a value signed for one purpose is worthless for another.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char oauth_key[CRYPTO_KEY_LEN];
static unsigned char session_key[CRYPTO_KEY_LEN];
static unsigned char pkce_key[CRYPTO_KEY_LEN];

int
session_init(const char *secret, size_t secret_len)
{
	unsigned char mac[CRYPTO_MAC_LEN];

	if (crypto_derive_key(secret, secret_len, "baa oauth cookie v1", oauth_key) < 0 ||
	    crypto_derive_key(secret, secret_len, "baa session cookie v1", session_key) <
		    0 ||
	    crypto_derive_key(secret, secret_len, "baa pkce verifier v1", pkce_key) < 0)
		return -1;
	/*
	 * Called before the workers are forked: a first MAC under each key
	 * sets up its context here, once, and the workers share the pages
	 * libcrypto touched doing it instead of each touching its own.
	 */
	if (crypto_hmac(oauth_key, "", 0, mac) < 0 ||
	    crypto_hmac(session_key, "", 0, mac) < 0 ||
	    crypto_hmac(pkce_key, "", 0, mac) < 0)
		return -1;
	return 0;
}

int
session_is_local_path(const char *next)
{
	size_t len = strlen(next);

	if (len == 0 || len > SESSION_NEXT_MAX || next[0] != '/')
		return 0;
	/* "//host" and "/\host" are read by browsers as another origin. */
	if (next[1] == '/' || next[1] == '\\')
		return 0;
	for (const char *c = next; *c; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '\\')
			return 0;
	return 1;
}

int
session_new_login(struct oauth_login *login, const char *next, time_t now, int ttl)
{
	unsigned char random[32];

	if (crypto_random(random, sizeof(random)) < 0)
		return -1;
	b64url_encode(random, sizeof(random), login->state);
	snprintf(login->next, sizeof(login->next), "%s",
		 next && session_is_local_path(next) ? next : "/");
	login->expires = now + ttl;
	return 0;
}

int
session_pkce(const char *state, char verifier[SESSION_VERIFIER_LEN + 1],
	     char challenge[B64URL_LEN(32) + 1])
{
	unsigned char mac[CRYPTO_MAC_LEN], digest[32];

	if (crypto_hmac(pkce_key, state, strlen(state), mac) < 0)
		return -1;
	b64url_encode(mac, sizeof(mac), verifier);
	if (crypto_sha256(verifier, strlen(verifier), digest) < 0)
		return -1;
	b64url_encode(digest, sizeof(digest), challenge);
	return 0;
}

/* Appends ".<mac>" of "<name>|<out>" to out. */
static int
append_mac(const unsigned char *key, const char *name, char *out, size_t size)
{
	char input[SESSION_COOKIE_MAX + 32];
	unsigned char mac[CRYPTO_MAC_LEN];
	size_t len = strlen(out);
	int n = snprintf(input, sizeof(input), "%s|%s", name, out);

	if (n < 0 || (size_t)n >= sizeof(input) ||
	    crypto_hmac(key, input, (size_t)n, mac) < 0)
		return -1;
	if (len + 1 + B64URL_LEN(CRYPTO_MAC_LEN) + 1 > size)
		return -1;
	out[len] = '.';
	b64url_encode(mac, sizeof(mac), out + len + 1);
	return 0;
}

/* Checks the trailing mac; on success cuts it off value_copy. */
static int
check_mac(const unsigned char *key, const char *name, char *value_copy)
{
	char *dot = strrchr(value_copy, '.');
	unsigned char expected[CRYPTO_MAC_LEN], given[CRYPTO_MAC_LEN + 1];
	char input[SESSION_COOKIE_MAX + 32];
	int n;

	if (dot == NULL || b64url_decode(dot + 1, strlen(dot + 1), given,
					 sizeof(given)) != CRYPTO_MAC_LEN)
		return -1;
	*dot = '\0';
	n = snprintf(input, sizeof(input), "%s|%s", name, value_copy);
	if (n < 0 || (size_t)n >= sizeof(input) ||
	    crypto_hmac(key, input, (size_t)n, expected) < 0)
		return -1;
	return crypto_equal(expected, given, CRYPTO_MAC_LEN) ? 0 : -1;
}

/* Strict decimal: digits only, no sign, no leading zeros, bounded. */
static int
parse_decimal(const char *s, long long *out)
{
	size_t len = strlen(s);

	if (len == 0 || len > 18 || strspn(s, "0123456789") != len ||
	    (s[0] == '0' && len > 1))
		return -1;
	*out = strtoll(s, NULL, 10);
	return 0;
}

/* Splits "a.b.c" in place into exactly n fields. */
static int
split_fields(char *s, char **fields, int n)
{
	int i = 0;

	fields[i++] = s;
	for (char *c = s; *c; c++) {
		if (*c == '.') {
			if (i == n)
				return -1;
			*c = '\0';
			fields[i++] = c + 1;
		}
	}
	return i == n ? 0 : -1;
}

int
session_sign_login(const struct oauth_login *login, char *out, size_t size)
{
	char next[B64URL_LEN(SESSION_NEXT_MAX) + 1];
	int n;

	b64url_encode((const unsigned char *)login->next, strlen(login->next), next);
	n = snprintf(out, size, "v1.%s.%lld.%s", login->state, (long long)login->expires,
		     next);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return append_mac(oauth_key, OAUTH_COOKIE, out, size);
}

int
session_verify_login(const char *value, time_t now, struct oauth_login *login)
{
	char copy[SESSION_COOKIE_MAX + 1], *f[4];
	long long expires;
	long next_len;

	if (strlen(value) > SESSION_COOKIE_MAX)
		return -1;
	strcpy(copy, value);
	if (check_mac(oauth_key, OAUTH_COOKIE, copy) < 0 || split_fields(copy, f, 4) < 0)
		return -1;
	if (strcmp(f[0], "v1") != 0 || strlen(f[1]) != SESSION_STATE_LEN ||
	    parse_decimal(f[2], &expires) < 0 || expires <= now)
		return -1;
	next_len = b64url_decode(f[3], strlen(f[3]), (unsigned char *)login->next,
				 sizeof(login->next) - 1);
	/* A NUL would cut the path short of what was signed. */
	if (next_len < 0 || memchr(login->next, '\0', (size_t)next_len) != NULL)
		return -1;
	login->next[next_len] = '\0';
	if (!session_is_local_path(login->next))
		return -1;
	strcpy(login->state, f[1]);
	login->expires = (time_t)expires;
	return 0;
}

int
session_sign_user(const struct user_session *s, char *out, size_t size)
{
	int n = snprintf(out, size, "v1.%lld.%lld.%lld", s->user_id, s->generation,
			 (long long)s->expires);

	if (n < 0 || (size_t)n >= size)
		return -1;
	return append_mac(session_key, SESSION_COOKIE, out, size);
}

int
session_verify_user(const char *value, time_t now, struct user_session *s)
{
	char copy[SESSION_COOKIE_MAX + 1], *f[4];
	long long user_id, generation, expires;

	if (strlen(value) > SESSION_COOKIE_MAX)
		return -1;
	strcpy(copy, value);
	if (check_mac(session_key, SESSION_COOKIE, copy) < 0 ||
	    split_fields(copy, f, 4) < 0)
		return -1;
	if (strcmp(f[0], "v1") != 0 || parse_decimal(f[1], &user_id) < 0 ||
	    parse_decimal(f[2], &generation) < 0 || parse_decimal(f[3], &expires) < 0 ||
	    expires <= now)
		return -1;
	s->user_id = user_id;
	s->generation = generation;
	s->expires = (time_t)expires;
	return 0;
}
