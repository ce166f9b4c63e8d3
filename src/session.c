/*
 * Cookie formats, each "<version>.<fields>.<mac>" where mac is base64url of
 * HMAC-SHA256 over "<purpose>|<version>.<fields>" with a key of its own, so
 * a value signed for one purpose is worthless for another:
 *
 *   session  v2.<kid>.<session id>.<expires>
 *   oauth    v2.<kid>.<state>.<expires>.<base64url(next)>
 *   v1 (read only)  session v1.<user id>.<generation>.<expires>,
 *                   oauth v1.<state>.<expires>.<base64url(next)>
 *
 * kid names the secret whose keys signed (6 bytes of an HMAC under its
 * session key, which shows nothing of it). v1 cookies carry none: each
 * secret is tried.
 */
#include "session.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct cookie_keys {
	unsigned char oauth[CRYPTO_KEY_LEN];
	unsigned char session[CRYPTO_KEY_LEN];
	unsigned char pkce[CRYPTO_KEY_LEN];
	char kid[SESSION_KID_LEN + 1];
};

static struct cookie_keys keys[SESSION_KEYS_MAX];
static int nkeys;

/* The MAC inputs' purposes: the cookies' first names, kept through renames. */
#define OAUTH_PURPOSE "baa_oauth"
#define SESSION_PURPOSE "baa_session"

/* The next space-separated word of *s, or NULL at the end. */
static const char *
next_secret(const char **s, size_t *len)
{
	const char *start = *s + strspn(*s, " ");

	if (*start == '\0')
		return NULL;
	*len = strcspn(start, " ");
	*s = start + *len;
	return start;
}

int
session_check_secrets(const char *secrets, size_t min, char *err, size_t errlen)
{
	const char *word;
	size_t len;
	int n = 0;

	while ((word = next_secret(&secrets, &len)) != NULL) {
		if (++n > SESSION_KEYS_MAX) {
			snprintf(err, errlen, "lists more than %d secrets",
				 SESSION_KEYS_MAX);
			return -1;
		}
		if (len < min && n == 1 && *(secrets + strspn(secrets, " ")) == '\0') {
			snprintf(
				err, errlen,
				"must be at least %zu bytes long (it has %zu): generate one "
				"with 'openssl rand -base64 48'",
				min, len);
			return -1;
		}
		if (len < min) {
			snprintf(
				err, errlen,
				"must list secrets of at least %zu bytes each (secret %d has "
				"%zu): generate one with 'openssl rand -base64 48'",
				min, n, len);
			return -1;
		}
	}
	if (n == 0) {
		snprintf(err, errlen,
			 "is empty: generate a secret with 'openssl rand -base64 48'");
		return -1;
	}
	return 0;
}

static int
derive_keys(const char *secret, size_t len, struct cookie_keys *k)
{
	static const char label[] = "baa cookie key id";
	unsigned char mac[CRYPTO_MAC_LEN];

	if (crypto_derive_key(secret, len, "baa oauth cookie v1", k->oauth) < 0 ||
	    crypto_derive_key(secret, len, "baa session cookie v1", k->session) < 0 ||
	    crypto_derive_key(secret, len, "baa pkce verifier v1", k->pkce) < 0 ||
	    crypto_hmac(k->session, label, strlen(label), mac) < 0)
		return -1;
	b64url_encode(mac, 6, k->kid);
	/*
	 * Called before the workers are forked: a first MAC under each key
	 * sets up its context here, once, and the workers share the pages
	 * libcrypto touched doing it instead of each touching its own.
	 */
	return crypto_hmac(k->oauth, "", 0, mac) < 0 ||
			       crypto_hmac(k->pkce, "", 0, mac) < 0
		       ? -1
		       : 0;
}

int
session_init(const char *secrets)
{
	unsigned char mac[CRYPTO_MAC_LEN];
	const char *word;
	size_t len;

	OPENSSL_cleanse(keys, sizeof(keys));
	nkeys = 0;
	while ((word = next_secret(&secrets, &len)) != NULL) {
		if (nkeys == SESSION_KEYS_MAX || derive_keys(word, len, &keys[nkeys]) < 0)
			return -1;
		nkeys++;
	}
	/* As for the MACs: the digest every session cookie's id goes through,
	 * fetched once here for every worker. */
	return nkeys > 0 && crypto_sha256("", 0, mac) == 0 ? 0 : -1;
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
	login->asked[0] = '\0';
	login->has_asked = 0;
	login->expires = now + ttl;
	login->key = 0;
	return 0;
}

int
session_pkce(const struct oauth_login *login, char verifier[SESSION_VERIFIER_LEN + 1],
	     char challenge[B64URL_LEN(32) + 1])
{
	unsigned char mac[CRYPTO_MAC_LEN], digest[32];

	if (login->key < 0 || login->key >= nkeys ||
	    crypto_hmac(keys[login->key].pkce, login->state, strlen(login->state), mac) <
		    0)
		return -1;
	b64url_encode(mac, sizeof(mac), verifier);
	if (crypto_sha256(verifier, strlen(verifier), digest) < 0)
		return -1;
	b64url_encode(digest, sizeof(digest), challenge);
	return 0;
}

int
session_new_id(struct session_cookie *s, time_t expires)
{
	s->expires = expires;
	s->key = 0;
	return crypto_random(s->id, sizeof(s->id));
}

int
session_id_hash(const struct session_cookie *s, unsigned char hash[32])
{
	return crypto_sha256(s->id, sizeof(s->id), hash);
}

/* The MAC of "<purpose>|<body>" under key. */
static int
mac_of(const unsigned char *key, const char *purpose, const char *body,
       unsigned char mac[CRYPTO_MAC_LEN])
{
	char input[SESSION_COOKIE_MAX + 32];
	int n = snprintf(input, sizeof(input), "%s|%s", purpose, body);

	if (n < 0 || (size_t)n >= sizeof(input))
		return -1;
	return crypto_hmac(key, input, (size_t)n, mac);
}

int
session_adopted_id(const char *legacy_value, struct session_cookie *s)
{
	s->expires = 0;
	s->key = 0;
	return mac_of(keys[0].session, "baa_session adopted", legacy_value, s->id);
}

/* Appends ".<mac>" of "<purpose>|<out>" to out. */
static int
append_mac(const unsigned char *key, const char *purpose, char *out, size_t size)
{
	unsigned char mac[CRYPTO_MAC_LEN];
	size_t len = strlen(out);

	if (mac_of(key, purpose, out, mac) < 0 ||
	    len + 1 + B64URL_LEN(CRYPTO_MAC_LEN) + 1 > size)
		return -1;
	out[len] = '.';
	b64url_encode(mac, sizeof(mac), out + len + 1);
	return 0;
}

/*
 * Cuts the trailing ".<mac>" off value_copy and checks it under the key at
 * key_offset of the secret a v2 kid names, or, for v1, of each secret in
 * turn. Returns the index of the secret that signed, or -1.
 */
static int
check_mac(const char *purpose, char *value_copy, int v1, size_t key_offset)
{
	char *dot = strrchr(value_copy, '.');
	unsigned char expected[CRYPTO_MAC_LEN], given[CRYPTO_MAC_LEN + 1];

	if (dot == NULL || b64url_decode(dot + 1, strlen(dot + 1), given,
					 sizeof(given)) != CRYPTO_MAC_LEN)
		return -1;
	*dot = '\0';
	for (int i = 0; i < nkeys; i++) {
		const unsigned char *key = (const unsigned char *)&keys[i] + key_offset;

		/* "v2.<kid>.": only the key it names. */
		if (!v1 && (strncmp(value_copy + 3, keys[i].kid, SESSION_KID_LEN) != 0 ||
			    value_copy[3 + SESSION_KID_LEN] != '.'))
			continue;
		if (mac_of(key, purpose, value_copy, expected) == 0 &&
		    crypto_equal(expected, given, CRYPTO_MAC_LEN))
			return i;
	}
	return -1;
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

/*
 * A copy of value, its MAC checked: *key is the signing key's index and
 * *v1 whether it is of the first format. The fields are left in copy.
 */
static int
open_cookie(const char *value, const char *purpose, size_t key_offset,
	    char copy[SESSION_COOKIE_MAX + 1], int *v1, int *key)
{
	if (strlen(value) > SESSION_COOKIE_MAX)
		return -1;
	if (strncmp(value, "v2.", 3) == 0)
		*v1 = 0;
	else if (strncmp(value, "v1.", 3) == 0)
		*v1 = 1;
	else
		return -1;
	strcpy(copy, value);
	*key = check_mac(purpose, copy, *v1, key_offset);
	return *key < 0 ? -1 : 0;
}

/*
 * "v2.<kid>.<state>.<expires>.<next>[.<asked>]" signed, next and asked in
 * base64url. asked goes in only when the cookie still fits
 * SESSION_COOKIE_MAX with it (a long next and many scopes would not):
 * the login goes on without it, and /callback stores "not known".
 */
int
session_sign_login(const struct oauth_login *login, char *out, size_t size)
{
	char next[B64URL_LEN(SESSION_NEXT_MAX) + 1];
	size_t room = size < SESSION_COOKIE_MAX + 1 ? size : SESSION_COOKIE_MAX + 1;
	int n = -1;

	b64url_encode((const unsigned char *)login->next, strlen(login->next), next);
	if (login->has_asked) {
		char asked[B64URL_LEN(SESSION_ASKED_MAX) + 1];

		b64url_encode((const unsigned char *)login->asked, strlen(login->asked),
			      asked);
		n = snprintf(out, size, "v2.%s.%s.%lld.%s.%s", keys[0].kid, login->state,
			     (long long)login->expires, next, asked);
	}
	/* Room for ".<mac>" within SESSION_COOKIE_MAX, or again without asked. */
	if (n < 0 || (size_t)n + 1 + B64URL_LEN(CRYPTO_MAC_LEN) >= room)
		n = snprintf(out, size, "v2.%s.%s.%lld.%s", keys[0].kid, login->state,
			     (long long)login->expires, next);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return append_mac(keys[0].oauth, OAUTH_PURPOSE, out, size);
}

/* Decodes a login cookie's asked field into login (NUL-free, bounded). */
static int
read_asked(const char *field, struct oauth_login *login)
{
	long len = b64url_decode(field, strlen(field), (unsigned char *)login->asked,
				 sizeof(login->asked) - 1);

	if (len < 0 || memchr(login->asked, '\0', (size_t)len) != NULL)
		return -1;
	login->asked[len] = '\0';
	login->has_asked = 1;
	return 0;
}

/* How many '.'-separated fields s has. */
static int
count_fields(const char *s)
{
	int n = 1;

	for (; *s; s++)
		n += *s == '.';
	return n;
}

int
session_verify_login(const char *value, time_t now, struct oauth_login *login)
{
	char copy[SESSION_COOKIE_MAX + 1], *f[6], **fields;
	long long expires;
	long next_len;
	int v1, key, n;

	if (open_cookie(value, OAUTH_PURPOSE, offsetof(struct cookie_keys, oauth), copy,
			&v1, &key) < 0)
		return -1;
	/* v1: 4 fields; v2: 5, or 6 with what the login asked for. */
	n = count_fields(copy);
	if ((v1 ? n != 4 : n != 5 && n != 6) || split_fields(copy, f, n) < 0)
		return -1;
	/* From here on both formats read the same: state, expires, next. */
	fields = v1 ? f : f + 1;
	if (strlen(fields[1]) != SESSION_STATE_LEN ||
	    parse_decimal(fields[2], &expires) < 0 || expires <= now)
		return -1;
	next_len = b64url_decode(fields[3], strlen(fields[3]),
				 (unsigned char *)login->next, sizeof(login->next) - 1);
	/* A NUL would cut the path short of what was signed. */
	if (next_len < 0 || memchr(login->next, '\0', (size_t)next_len) != NULL)
		return -1;
	login->next[next_len] = '\0';
	if (!session_is_local_path(login->next))
		return -1;
	login->asked[0] = '\0';
	login->has_asked = 0;
	if (n == 6 && read_asked(fields[4], login) < 0)
		return -1;
	strcpy(login->state, fields[1]);
	login->expires = (time_t)expires;
	login->key = key;
	return 0;
}

int
session_sign(const struct session_cookie *s, char *out, size_t size)
{
	char id[B64URL_LEN(SESSION_ID_LEN) + 1];
	int n;

	b64url_encode(s->id, sizeof(s->id), id);
	n = snprintf(out, size, "v2.%s.%s.%lld", keys[0].kid, id, (long long)s->expires);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return append_mac(keys[0].session, SESSION_PURPOSE, out, size);
}

int
session_verify(const char *value, time_t now, struct session_cookie *s)
{
	char copy[SESSION_COOKIE_MAX + 1], *f[4];
	long long expires;
	int v1, key;

	if (open_cookie(value, SESSION_PURPOSE, offsetof(struct cookie_keys, session),
			copy, &v1, &key) < 0 ||
	    v1 || split_fields(copy, f, 4) < 0)
		return -1;
	if (b64url_decode(f[2], strlen(f[2]), s->id, sizeof(s->id)) != SESSION_ID_LEN ||
	    parse_decimal(f[3], &expires) < 0 || expires <= now)
		return -1;
	s->expires = (time_t)expires;
	s->key = key;
	return 0;
}

int
session_verify_legacy(const char *value, time_t now, struct legacy_session *s)
{
	char copy[SESSION_COOKIE_MAX + 1], *f[4];
	long long user_id, generation, expires;
	int v1, key;

	if (open_cookie(value, SESSION_PURPOSE, offsetof(struct cookie_keys, session),
			copy, &v1, &key) < 0 ||
	    !v1 || split_fields(copy, f, 4) < 0)
		return -1;
	if (parse_decimal(f[1], &user_id) < 0 || parse_decimal(f[2], &generation) < 0 ||
	    parse_decimal(f[3], &expires) < 0 || expires <= now)
		return -1;
	s->user_id = user_id;
	s->generation = generation;
	s->expires = (time_t)expires;
	return 0;
}
