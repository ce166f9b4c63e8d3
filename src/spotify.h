/*
 * Calls to Spotify's accounts service and Web API over libcurl: the code
 * exchange, the token refresh and /v1/me. One easy handle per worker,
 * reused so that connections (and TLS sessions) to Spotify are kept.
 */
#ifndef BAA_SPOTIFY_H
#define BAA_SPOTIFY_H

#include <stddef.h>

#include "config.h"

#define SPOTIFY_TOKEN_MAX 2048
#define SPOTIFY_SCOPE_MAX 1024
#define SPOTIFY_ID_MAX 256
#define SPOTIFY_NAME_MAX 256

struct spotify_tokens {
	char access_token[SPOTIFY_TOKEN_MAX + 1];
	char refresh_token[SPOTIFY_TOKEN_MAX + 1]; /* "" when Spotify sent none */
	char scope[SPOTIFY_SCOPE_MAX + 1];
	/* The answer carried scope ("" too: a grant of none); a refresh
	 * answer may say nothing of the grant. */
	int has_scope;
	long expires_in;
};

/*
 * What baa reads of /v1/me. account_id is immutable and what accounts are
 * linked on; id may change. Every other field of the profile (email,
 * country, product, images, followers...) is optional at Spotify, absent
 * in development mode, and never read.
 */
struct spotify_user {
	char id[SPOTIFY_ID_MAX + 1];
	char account_id[SPOTIFY_ID_MAX + 1];	 /* "" when the answer has none */
	char display_name[SPOTIFY_NAME_MAX + 1]; /* "" when Spotify has none */
};

enum spotify_status {
	SPOTIFY_OK,
	SPOTIFY_INVALID_GRANT, /* the code or refresh token is dead: log in again */
	SPOTIFY_UNAUTHORIZED,  /* the Web API refused the access token */
	SPOTIFY_FORBIDDEN,     /* 403: this user may not use the app (development mode) */
	SPOTIFY_RATE_LIMITED,  /* 429: retry_after says when */
	/* 429 saying the app's quota is used up (QUOTA_EXCEEDED): likewise */
	SPOTIFY_QUOTA_EXCEEDED,
	SPOTIFY_FAILED, /* 5xx, timeout, refused, or an answer we cannot use */
};

struct spotify_outcome {
	enum spotify_status status;
	long retry_after; /* seconds, with SPOTIFY_RATE_LIMITED or _QUOTA_EXCEEDED */
	int paused;	  /* not sent: calls are paused after an earlier 429 (pause.h) */
};

/* Once per process, before forking. */
int spotify_global_init(void);

/*
 * Per worker, after the fork: makes the worker's client (spotify_client.h),
 * which the calls below use, and frees it.
 */
int spotify_init(const struct config *cfg);
void spotify_cleanup(void);

/*
 * The URL to send the browser to for consent, asking for scopes (space-
 * separated; NULL or blank: no scope parameter). show_dialog makes Spotify
 * show its consent page even to a user who approved the app before, with
 * "Not you?", so that another account can log in (/login?switch=1).
 */
int spotify_authorize_url(const char *state, const char *code_challenge,
			  const char *scopes, int show_dialog, char *out, size_t size);

struct spotify_outcome spotify_exchange_code(const char *code, const char *code_verifier,
					     struct spotify_tokens *out);
struct spotify_outcome spotify_refresh(const char *refresh_token,
				       struct spotify_tokens *out);
struct spotify_outcome spotify_me(const char *access_token, struct spotify_user *out);

/*
 * The parsers of Spotify's answers, pure so that they can be fuzzed
 * (tests/fuzz): the calls above run exactly these on what they receive.
 * Each returns 0, or -1 for an answer baa cannot use; every one of them,
 * the two predicates below included, refuses a body holding a NUL byte.
 */
int spotify_parse_tokens(const char *text, size_t len, int refresh_required,
			 struct spotify_tokens *out);
int spotify_parse_user(const char *text, size_t len, struct spotify_user *out);
/* 1 for 400 {"error": "invalid_grant"}: the grant is dead, not the service. */
int spotify_is_invalid_grant(const char *text, size_t len);
/*
 * 1 for a 429 whose body says the app's quota is used up (July 2026:
 * {"error": {"status": 429, "message": ..., "reason": "QUOTA_EXCEEDED"}});
 * 0 for a short-term limit (no reason) or anything else.
 */
int spotify_is_quota_exceeded(const char *text, size_t len);
/*
 * Whether Spotify asked the app (any worker of any instance) to wait, after
 * a 429: 1 and result filled in (status, retry_after, paused), so that a
 * caller can answer without making the call; 0 when calls may go.
 */
int spotify_paused(struct spotify_outcome *result);

/* Seconds to wait after a 429, 1 to 3600; value is the header, or NULL. */
long spotify_parse_retry_after(const char *value);

#endif
