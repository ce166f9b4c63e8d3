/*
 * BAA_SERVICE_KEYS and the check of a service's key. Only digests are
 * kept: the keys themselves stay in the environment, read once.
 */
#include "services.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "crypto.h"

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_-"
#define BLANKS " \t\n"

/* Appends one problem to err: "entry 2 (billing): key shorter than 32 bytes". */
static void
complain(char *err, size_t errlen, int *problems, int n, const char *name,
	 const char *what)
{
	size_t used = strlen(err);

	if (used >= errlen - 1)
		return;
	snprintf(err + used, errlen - used, "%s entry %d%s%s%s: %s",
		 *problems ? ";" : "has a bad", n, name ? " (" : "", name ? name : "",
		 name ? ")" : "", what);
	(*problems)++;
}

static const char *
check_entry(const char *entry, size_t len, const char **colon_out)
{
	const char *colon = memchr(entry, ':', len);
	size_t name_len, key_len;

	*colon_out = colon;
	if (colon == NULL)
		return "must be name:key";
	name_len = (size_t)(colon - entry);
	key_len = len - name_len - 1;
	if (name_len == 0 || name_len > SERVICES_NAME_MAX ||
	    strspn(entry, NAME_CHARS) < name_len)
		return "the name must be 1 to 32 of a-z, 0-9, '_', '-'";
	if (name_len == 4 && strncmp(entry, "none", 4) == 0)
		return "the name 'none' is /metrics' for calls without a right key";
	if (key_len < SERVICES_KEY_MIN)
		return "the key is shorter than 32 bytes";
	if (key_len > SERVICES_KEY_MAX)
		return "the key is longer than 256 bytes";
	for (size_t i = name_len + 1; i < len; i++)
		if ((unsigned char)entry[i] < 0x21 || (unsigned char)entry[i] > 0x7e)
			return "the key must be printable ASCII";
	return NULL;
}

/* Whether entry (its name checked) repeats an earlier service's name or key. */
static const char *
check_unique(const struct service_keys *keys, const struct service_key *k)
{
	for (int i = 0; i < keys->count; i++) {
		if (strcmp(keys->keys[i].name, k->name) == 0)
			return "the name is used twice";
		if (CRYPTO_memcmp(keys->keys[i].digest, k->digest, sizeof(k->digest)) ==
		    0)
			return "the key is another service's too";
	}
	return NULL;
}

int
services_parse(const char *value, struct service_keys *out, char *err, size_t errlen)
{
	int problems = 0, n = 0;
	const char *p = value;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	while (*(p += strspn(p, BLANKS)) != '\0') {
		size_t len = strcspn(p, BLANKS);
		const char *colon, *why = check_entry(p, len, &colon);
		struct service_key k;
		int named = why == NULL || strncmp(why, "the key", 7) == 0;

		memset(&k, 0, sizeof(k));

		n++;
		if (named)
			snprintf(k.name, sizeof(k.name), "%.*s", (int)(colon - p), p);
		if (why == NULL &&
		    crypto_sha256(colon + 1, len - (size_t)(colon - p) - 1, k.digest) < 0)
			why = "could not be hashed";
		if (why == NULL)
			why = check_unique(out, &k);
		if (why == NULL && out->count == SERVICES_MAX)
			why = "more than 16 services";
		if (why)
			complain(err, errlen, &problems, n, named ? k.name : NULL, why);
		else
			out->keys[out->count++] = k;
		OPENSSL_cleanse(&k, sizeof(k));
		p += len;
	}
	if (n == 0) {
		snprintf(err, errlen, "names no service (name:key ...)");
		return -1;
	}
	return problems ? -1 : 0;
}

enum services_auth
services_authenticate(const struct service_keys *keys, const char *authorization,
		      int *which)
{
	unsigned char digest[32];
	const char *key;
	size_t len;
	int found = -1;

	if (authorization == NULL || authorization[0] == '\0')
		return SERVICES_MISSING;
	/* RFC 9110: the scheme is case-insensitive; one space, then token68. */
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return SERVICES_MALFORMED;
	key = authorization + 7;
	len = strlen(key);
	if (len == 0 || len > SERVICES_KEY_MAX)
		return SERVICES_MALFORMED;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
			return SERVICES_MALFORMED;
	if (crypto_sha256(key, len, digest) < 0)
		return SERVICES_WRONG;
	/* Every digest is compared: no early exit at the right one. */
	for (int i = 0; i < keys->count; i++) {
		int equal =
			CRYPTO_memcmp(digest, keys->keys[i].digest, sizeof(digest)) == 0;
		found = equal ? i : found;
	}
	OPENSSL_cleanse(digest, sizeof(digest));
	if (found < 0)
		return SERVICES_WRONG;
	*which = found;
	return SERVICES_OK;
}
