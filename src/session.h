/*
 * Stateless sessions: everything the server must remember between two
 * requests travels in HMAC-signed cookies, so any worker of any instance
 * sharing BAA_SECRET_KEY and the database can serve any request.
 *
 *   baa_oauth    a login in progress: the OAuth state, its expiry and the
 *                local path to return to. The PKCE verifier is derived from
 *                the state with a server-side key, so it never leaves baa.
 *   baa_session  a logged-in user: id, session generation, expiry. Logout
 *                bumps the generation in the database, which revokes the
 *                cookie everywhere.
 */
#ifndef BAA_SESSION_H
#define BAA_SESSION_H

#include <stddef.h>
#include <time.h>

#include "crypto.h"

#define SESSION_STATE_LEN B64URL_LEN(32)    /* 43 */
#define SESSION_VERIFIER_LEN B64URL_LEN(32) /* 43 */
#define SESSION_NEXT_MAX 512
#define SESSION_COOKIE_MAX 1024

#define OAUTH_COOKIE "baa_oauth"
#define SESSION_COOKIE "baa_session"

struct oauth_login {
	char state[SESSION_STATE_LEN + 1];
	char next[SESSION_NEXT_MAX + 1]; /* a local path, "/" by default */
	time_t expires;
};

struct user_session {
	long long user_id;
	long long generation;
	time_t expires;
};

/* Derives the cookie and PKCE keys from BAA_SECRET_KEY; once, at start-up. */
int session_init(const char *secret, size_t secret_len);

/* A new login: fresh random state, next as given (already validated). */
int session_new_login(struct oauth_login *login, const char *next, time_t now, int ttl);

/* The PKCE verifier for a state, and its S256 challenge. */
int session_pkce(const char *state, char verifier[SESSION_VERIFIER_LEN + 1],
		 char challenge[B64URL_LEN(32) + 1]);

/* Cookie values (no name, no attributes); out holds SESSION_COOKIE_MAX. */
int session_sign_login(const struct oauth_login *login, char *out, size_t size);
int session_sign_user(const struct user_session *s, char *out, size_t size);

/* 0 when value is authentic and unexpired at now; -1 otherwise. */
int session_verify_login(const char *value, time_t now, struct oauth_login *login);
int session_verify_user(const char *value, time_t now, struct user_session *s);

/*
 * Whether next is a safe place to send a browser after login: a local
 * absolute path, never another origin ("//host", "/\host", "https://...").
 */
int session_is_local_path(const char *next);

#endif
