/*
 * The users table: every SQL statement that touches it lives here. The
 * caller has checked the session that names the user (sessions.h).
 */
#ifndef BAA_USERS_H
#define BAA_USERS_H

#include <time.h>

#include "db.h"
#include "identity.h"
#include "spotify.h"

struct user_profile {
	long long id;
	char spotify_id[SPOTIFY_ID_MAX + 1];
	char account_id[SPOTIFY_ID_MAX + 1]; /* "" when not known yet */
	char display_name[SPOTIFY_NAME_MAX + 1];
	char token_expires_at[32]; /* ISO 8601 UTC, "" when no token is held */
	time_t authorized_at;	   /* the last login; 0 when unknown */
	int needs_reauth;	   /* Spotify answered invalid_grant since */
	/*
	 * Written once when the row is read, not at every GET /me from the
	 * cache (strftime takes the time-zone lock): authorized_at, and when
	 * Spotify's grant ends, authorized_at + BAA_GRANT_LIFETIME. "" and 0
	 * when the authorization time is unknown.
	 */
	char authorized_at_text[32];
	char reauth_due_at_text[32];
	time_t reauth_due_at;
	/* users.scope: what Spotify's last token answer that said so granted. */
	char scope[SPOTIFY_SCOPE_MAX + 1];
	int has_scope; /* 0: NULL, never stored (a row baa did not write) */
	/* The grant lacks a scope of SPOTIFY_SCOPES that the last login did not
	 * ask for (users.scope_requested): worked out when the row is read,
	 * not at every GET /me from the cache. */
	int scope_short;
};

struct user_token {
	char access_token[SPOTIFY_TOKEN_MAX + 1];  /* "" when tokens were cleared */
	char refresh_token[SPOTIFY_TOKEN_MAX + 1]; /* only from users_lock_token */
	time_t expires_at;
	time_t authorized_at;		   /* 0 when unknown */
	time_t needs_reauth_at;		   /* the first invalid_grant; 0 when none */
	char scope[SPOTIFY_SCOPE_MAX + 1]; /* the stored grant, "" when none */
	/* What the last login asked Spotify for; has_: not NULL (known). */
	char scope_requested[SPOTIFY_SCOPE_MAX + 1];
	int has_scope_requested;
};

enum users_status {
	USERS_OK,
	USERS_NOT_FOUND, /* no such user (deleted since the session was checked) */
	USERS_DB_ERROR,
};

/*
 * Inside the login's transaction: finds the user's row by account_id (or
 * by spotify_id, see identity.h), inserts one for a new user, stores the
 * profile and tokens, what the login asked for (asked; NULL: not known),
 * restarts the grant (authorized_at) and clears needs_reauth. *match says
 * how the row was found.
 */
enum users_status users_store_login(struct db *db, const struct spotify_user *who,
				    const struct spotify_tokens *tokens,
				    const char *asked, long long *id,
				    enum identity_match *match);

/*
 * What GET /me shows, as columns of a statement that joins users as u
 * (sessions.c reads a session and its user's profile in one round trip).
 */
#define USERS_PROFILE_COLUMNS                                                            \
	"u.id, u.spotify_id, coalesce(u.display_name, ''),"                              \
	" floor(extract(epoch FROM u.token_expires_at))::bigint,"                        \
	" coalesce(u.account_id, ''),"                                                   \
	" coalesce(floor(extract(epoch FROM u.authorized_at))::bigint, 0),"              \
	" u.needs_reauth_at IS NOT NULL, u.scope IS NOT NULL, coalesce(u.scope, ''),"    \
	" u.scope_requested"

/* The profile from row of res, its columns starting at first. */
void users_profile_read(const struct db *db, const PGresult *res, int row, int first,
			struct user_profile *out);

/*
 * The worker's cache of profiles (profile_cache.h): 1 and *out when id's
 * profile may be served from it (the connection it was read on is up and
 * no change of the row has been notified since), else 0. The caller has
 * taken the notifications in just before (sessions_check does, once per
 * request). users_profile_remember keeps a profile just read; one whose
 * strings are too long for the cache's compact entries is not kept, and
 * is read from the database each time.
 */
int users_profile_cached(struct db *db, long long id, struct user_profile *out);
void users_profile_remember(struct db *db, const struct user_profile *profile);
/* Whether users_profile_cached would answer, without copying the profile out. */
int users_profile_is_cached(struct db *db, long long id);

/*
 * A worker's connection: with the profile cache on, listens for changed
 * users, so that a changed user's cached profile is forgotten when the
 * notification arrives. -1 when it could not subscribe.
 */
int users_attach(struct db *db);

/* How a backend service may name a user besides baa's own id. */
enum users_lookup { USERS_BY_SPOTIFY_ID, USERS_BY_ACCOUNT_ID };

/*
 * The id of the user whose spotify_id or account_id is value. A row
 * detached from its old spotify_id (identity.h) is not found by the
 * placeholder it holds.
 */
enum users_status users_find(struct db *db, enum users_lookup by, const char *value,
			     long long *id);

/* What GET /me shows of user id (its grant's scope included), read now, not cached. */
enum users_status users_grant(struct db *db, long long id, struct user_profile *out);

/* The access token without locking (the fast path of /me/token). */
enum users_status users_token(struct db *db, long long id, struct user_token *out);

/* Inside a transaction: the row locked FOR UPDATE, refresh token included. */
enum users_status users_lock_token(struct db *db, long long id, struct user_token *out);

/*
 * Stores a refreshed token (a new refresh token only when Spotify rotated
 * it, the grant's scope only when the answer carried one) and clears
 * needs_reauth.
 */
enum users_status users_store_refresh(struct db *db, long long id,
				      const struct spotify_tokens *tokens,
				      time_t *expires_at);

/*
 * Inside the refresh's transaction: the first invalid_grant. The tokens are
 * kept (it may be Spotify's incident) and the sessions stay valid.
 */
enum users_status users_mark_reauth(struct db *db, long long id);

/*
 * Forgets tokens Spotify no longer honours (invalid_grant confirmed). The
 * sessions stay valid: the user is still who they were, only the grant is
 * gone, and needs_reauth stays set so that the page offers the renewal.
 */
enum users_status users_clear_tokens(struct db *db, long long id);

struct users_reseal_counts {
	long long users;      /* rows looked at */
	long long resealed;   /* tokens sealed again under the current key */
	long long unreadable; /* tokens that did not open: their rows are untouched */
};

/*
 * Inside a transaction: locks up to limit rows with an id above *after and
 * seals every token not under the current key again (plaintext ones from
 * before encryption included), recording key_rotated for each user. Moves *after on;
 * returns the number of rows (0: none left) or -1 when the database failed.
 */
int users_reseal_batch(struct db *db, long long *after, int limit,
		       struct users_reseal_counts *counts);

/*
 * Ends every cookie of the first format the user still holds (they carry
 * the session generation): a logout or a revoked session must not leave
 * one that could be adopted into a new session afterwards. Goes when the
 * code that reads them goes.
 */
enum users_status users_end_legacy_cookies(struct db *db, long long id);

/* Deletes the user; the sessions and audit events go with the row. */
enum users_status users_delete(struct db *db, long long id);

#endif
