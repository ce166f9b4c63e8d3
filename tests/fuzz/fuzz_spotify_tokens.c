/*
 * The accounts service's answers to a code exchange or a refresh, as
 * spotify.c reads them: spotify_parse_tokens for a 200,
 * spotify_is_invalid_grant for a 400 and spotify_is_quota_exceeded for a
 * 429 (which a Web API answer gets too). The first byte says whether a refresh
 * token is required (code exchange) or optional (refresh); the rest is the
 * body, not NUL-terminated, right before an inaccessible page. Invariants:
 * what is accepted is a bearer token fit for an HTTP header and the
 * database, UTF-8 text, a bounded lifetime, and a refresh token whenever
 * one is required; no body is both a dead grant and a used-up quota, and a
 * quota is only read where the body says QUOTA_EXCEEDED. No body holding a
 * NUL byte is read as any of them (one would cut a string short).
 */
#include "fuzz.h"

#include <locale.h>

#include "../../src/spotify.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
		abort();
	return 0;
}

/* Printable ASCII without spaces: safe in a header and a text column. */
static int
is_token_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spotify_tokens tokens;
	int refresh_required, nul, dead, quota;
	const char *body;

	if (size == 0 || (body = fuzz_guarded(data + 1, size - 1)) == NULL)
		return 0;
	refresh_required = data[0] & 1;

	nul = memchr(body, '\0', size - 1) != NULL;
	if (spotify_parse_tokens(body, size - 1, refresh_required, &tokens) == 0) {
		FUZZ_ASSERT(!nul);
		FUZZ_ASSERT(tokens.access_token[0] != '\0');
		FUZZ_ASSERT(strlen(tokens.access_token) <= SPOTIFY_TOKEN_MAX &&
			    strlen(tokens.refresh_token) <= SPOTIFY_TOKEN_MAX &&
			    strlen(tokens.scope) <= SPOTIFY_SCOPE_MAX);
		FUZZ_ASSERT(is_token_text(tokens.access_token) &&
			    is_token_text(tokens.refresh_token));
		FUZZ_ASSERT(fuzz_is_utf8(tokens.scope));
		FUZZ_ASSERT(!refresh_required || tokens.refresh_token[0] != '\0');
		FUZZ_ASSERT(tokens.expires_in >= 1 && tokens.expires_in <= 86400L * 366);
	}
	dead = spotify_is_invalid_grant(body, size - 1);
	FUZZ_ASSERT(dead == 0 || dead == 1);
	quota = spotify_is_quota_exceeded(body, size - 1);
	FUZZ_ASSERT(quota == 0 || quota == 1);
	FUZZ_ASSERT(!(quota && dead));
	FUZZ_ASSERT(!nul || !(quota || dead));
	FUZZ_ASSERT(!quota || memmem(body, size - 1, "QUOTA_EXCEEDED", 14) != NULL);
	return 0;
}
