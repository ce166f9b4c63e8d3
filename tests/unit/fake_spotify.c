/*
 * spotify.h's calls for the handler tests: each answers what fake_spotify
 * scripts and notes what it was asked. The parsers are not here: a test
 * that links this file tests the handlers, not Spotify's answers
 * (test_spotify.c reads those).
 */
#include <stdio.h>
#include <string.h>

#include "fakes.h"

struct fake_spotify fake_spotify;

struct spotify_outcome
fake_outcome(enum spotify_status status, long retry_after)
{
	return (struct spotify_outcome){.status = status, .retry_after = retry_after};
}

void
fake_spotify_reset(void)
{
	memset(&fake_spotify, 0, sizeof(fake_spotify));
	strcpy(fake_spotify.tokens.access_token, "AT-new");
	strcpy(fake_spotify.tokens.refresh_token, "RT-new");
	fake_spotify.tokens.expires_in = 3600;
	strcpy(fake_spotify.user.id, "alice");
	strcpy(fake_spotify.user.account_id, "acct-a");
	strcpy(fake_spotify.user.display_name, "Alice");
}

int
spotify_global_init(void)
{
	return 0;
}

int
spotify_init(const struct config *cfg)
{
	return 0;
}

void
spotify_cleanup(void)
{
}

int
spotify_authorize_url(const char *state, const char *code_challenge, const char *scopes,
		      int show_dialog, char *out, size_t size)
{
	/* What baa decided to ask for, for the tests to read. */
	int n = snprintf(
		out, size,
		"https://accounts.test/authorize?state=%s&scope=%s&show_dialog=%d", state,
		scopes ? scopes : "(none)", show_dialog);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int
spotify_paused(struct spotify_outcome *result)
{
	if (!fake_spotify.paused)
		return 0;
	*result = fake_spotify.pause;
	result->paused = 1;
	return 1;
}

/* What a call answers: paused (not sent, not counted), or the script's. */
static int
sent(struct spotify_outcome *result, struct spotify_outcome scripted)
{
	if (spotify_paused(result))
		return 0;
	*result = scripted;
	return 1;
}

struct spotify_outcome
spotify_exchange_code(const char *code, const char *code_verifier,
		      struct spotify_tokens *out)
{
	struct spotify_outcome result;

	if (!sent(&result, fake_spotify.exchange))
		return result;
	fake_spotify.exchanges++;
	snprintf(fake_spotify.code, sizeof(fake_spotify.code), "%s", code);
	snprintf(fake_spotify.verifier, sizeof(fake_spotify.verifier), "%s",
		 code_verifier);
	if (result.status == SPOTIFY_OK)
		*out = fake_spotify.tokens;
	return result;
}

struct spotify_outcome
spotify_refresh(const char *refresh_token, struct spotify_tokens *out)
{
	struct spotify_outcome result;

	if (!sent(&result, fake_spotify.refresh))
		return result;
	fake_spotify.refreshes++;
	snprintf(fake_spotify.refresh_token, sizeof(fake_spotify.refresh_token), "%s",
		 refresh_token);
	if (result.status == SPOTIFY_OK)
		*out = fake_spotify.tokens;
	return result;
}

struct spotify_outcome
spotify_me(const char *access_token, struct spotify_user *out)
{
	struct spotify_outcome result;

	if (!sent(&result, fake_spotify.me))
		return result;
	fake_spotify.mes++;
	snprintf(fake_spotify.access_token, sizeof(fake_spotify.access_token), "%s",
		 access_token);
	if (result.status == SPOTIFY_OK)
		*out = fake_spotify.user;
	return result;
}
