/*
 * Signed cookies. Everything the server must remember about a login in
 * progress travels in a cookie; a logged-in browser's cookie carries only
 * a random session id, whose row (sessions.c) says whose it is.
 *
 *   __Host-baa_oauth    a login in progress: the OAuth state, its expiry,
 *                       the local path to return to and, when it fits,
 *                       the scopes it asked Spotify for. The PKCE verifier
 *                       is derived from the state with a server-side key,
 *                       so it never leaves baa.
 *   __Host-baa_session  a logged-in browser: the session id, the cookie's
 *                       expiry.
 *
 * BAA_SECRET_KEY is a list of secrets: the first signs, every one verifies,
 * and each cookie names (by a fingerprint, its kid) the secret that signed
 * it, so that a key can be added, put first and dropped without logging
 * anyone out. The cookies of the first format ("v1", named baa_oauth and
 * baa_session) are still read, never written.
 */
#ifndef BAA_SESSION_H
#define BAA_SESSION_H

#include <stddef.h>
#include <time.h>

#include "crypto.h"

#define SESSION_STATE_LEN B64URL_LEN(32)    /* 43 */
#define SESSION_VERIFIER_LEN B64URL_LEN(32) /* 43 */
#define SESSION_ID_LEN 32		    /* random bytes of a session id */
#define SESSION_KID_LEN B64URL_LEN(6)	    /* 8 */
#define SESSION_NEXT_MAX 512
#define SESSION_ASKED_MAX 1024 /* a login's scopes as text: SCOPES_TEXT_MAX */
#define SESSION_COOKIE_MAX 1024
#define SESSION_KEYS_MAX 8

/* __Host-: only a secure, host-only, Path=/ cookie may carry the name, so a
 * sibling subdomain cannot plant one. */
#define OAUTH_COOKIE "__Host-baa_oauth"
#define SESSION_COOKIE "__Host-baa_session"
#define LEGACY_OAUTH_COOKIE "baa_oauth"
#define LEGACY_SESSION_COOKIE "baa_session"

struct oauth_login {
	char state[SESSION_STATE_LEN + 1];
	char next[SESSION_NEXT_MAX + 1]; /* a local path, "/" by default */
	/*
	 * What the login asked Spotify for, for /callback to store. has_asked
	 * 0: not known (a cookie signed before baa kept it, or one whose next
	 * left it no room: the cookie carries it only when it fits).
	 */
	char asked[SESSION_ASKED_MAX + 1];
	int has_asked;
	time_t expires;
	int key; /* the secret that signed it; its PKCE key goes with it */
};

/* What a session cookie says; the row says the rest. */
struct session_cookie {
	unsigned char id[SESSION_ID_LEN];
	time_t expires;
	int key; /* 0: signed by the first secret; else re-issue it */
};

/* A cookie of the first format: a user and a session generation. */
struct legacy_session {
	long long user_id;
	long long generation;
	time_t expires;
};

/*
 * Checks BAA_SECRET_KEY: one to SESSION_KEYS_MAX space-separated secrets,
 * each at least min bytes. On error writes a reason that never quotes a
 * secret and returns -1.
 */
int session_check_secrets(const char *secrets, size_t min, char *err, size_t errlen);

/* Derives the keys of every secret; once, at start-up. */
int session_init(const char *secrets);

/* A new login: fresh random state, next as given (already validated). */
int session_new_login(struct oauth_login *login, const char *next, time_t now, int ttl);

/* The PKCE verifier for a login's state, and its S256 challenge. */
int session_pkce(const struct oauth_login *login, char verifier[SESSION_VERIFIER_LEN + 1],
		 char challenge[B64URL_LEN(32) + 1]);

/* A new random session id. */
int session_new_id(struct session_cookie *s, time_t expires);

/*
 * The session id a first-format cookie is adopted under: derived from the
 * cookie, so that sending it again finds the same row instead of making
 * one more.
 */
int session_adopted_id(const char *legacy_value, struct session_cookie *s);

/* SHA-256 of the session id: what the sessions table stores. */
int session_id_hash(const struct session_cookie *s, unsigned char hash[32]);

/* Cookie values (no name, no attributes), signed by the first secret;
 * out holds SESSION_COOKIE_MAX. */
int session_sign_login(const struct oauth_login *login, char *out, size_t size);
int session_sign(const struct session_cookie *s, char *out, size_t size);

/* 0 when value is authentic under any secret and unexpired at now. */
int session_verify_login(const char *value, time_t now, struct oauth_login *login);
int session_verify(const char *value, time_t now, struct session_cookie *s);
int session_verify_legacy(const char *value, time_t now, struct legacy_session *s);

/*
 * Whether next is a safe place to send a browser after login: a local
 * absolute path, never another origin ("//host", "/\host", "https://...").
 */
int session_is_local_path(const char *next);

#endif
