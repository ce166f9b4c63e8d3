/*
 * Route handlers, one file per group of routes, and what they share: the
 * request's session (current.c).
 */
#ifndef BAA_HANDLERS_H
#define BAA_HANDLERS_H

#include <stddef.h>
#include <time.h>

#include "../audit.h"
#include "../client.h"
#include "../metrics.h"
#include "../params.h"
#include "../router.h"
#include "../scopes.h"
#include "../session.h"
#include "../sessions.h"
#include "../spotify.h"
#include "../users.h"

/* health.c */
route_handler health_live, health_ready;

/* auth.c */
route_handler auth_login, auth_callback, auth_logout;

/* 503 with Retry-After when Spotify rate-limits the app (its quota included),
 * else 502 with what. */
void auth_spotify_failed(struct response *res, struct spotify_outcome outcome,
			 const char *what);

/*
 * scope.c: scopes asked for when needed. The token routes (GET /me/token,
 * the internal one for services) take require=a+b with
 * scope_parse_request and check it with scope_require before anything
 * else (no refresh, no call to Spotify, for a grant that lacks a scope).
 */

/* The list in query's parameter name (absent: empty); -1 with the 400
 * (invalid_scope) written for a malformed, repeated or too long one. */
int scope_parse_request(const struct params *query, const char *name, struct scopes *out,
			struct response *res);

/* What a client may ask for: SPOTIFY_SCOPES_ALLOWED, else SPOTIFY_SCOPES. */
void scope_allowed(const struct config *cfg, struct scopes *out);

/*
 * 0 when allowed holds every scope of requested; else -1 with 400
 * {"error": "scope_not_allowed", "message"} naming the first that it
 * lacks: /login?scope= and the token routes' require= answer alike.
 */
int scope_check_allowed(const struct scopes *requested, const struct scopes *allowed,
			struct response *res);

/*
 * 0 when granted (the stored users.scope, Spotify's text; NULL: none)
 * holds every scope of required. Otherwise -1 with 403 {"error":
 * "insufficient_scope", "message", "missing": [...], "login":
 * "/login?scope=...&next=..."} written; next is the page the login returns
 * to (a local path; NULL or anything else: "/").
 */
int scope_require(const char *granted, const struct scopes *required, const char *next,
		  struct response *res);

/*
 * A token route's query: ?require=a+b, the scopes the caller needs (at
 * least one, each in SPOTIFY_SCOPES_ALLOWED), and ?next=/page, where the
 * login of a 403 insufficient_scope returns to (*next NULL when absent).
 * -1 with the 400 written.
 */
int scope_token_query(const struct request *req, struct params *query,
		      struct scopes *required, const char **next, struct response *res);

/* "/login?scope=a%20b&next=%2Fpath" into out; -1 when it does not fit. */
int scope_login_url(const struct scopes *scopes, const char *next, char *out,
		    size_t size);

/* auth_request.c: nginx's auth_request (GET /auth). */
route_handler auth_request_check;

/* metrics.c */
route_handler metrics_scrape;

/* me.c */
route_handler me_profile, me_token, me_delete;

/* GET /me's members for profile, inside an object res is writing. */
void me_profile_members(const struct request *req, struct response *res,
			const struct user_profile *profile);

/* internal.c: backend services, on the internal listener only. */
route_handler internal_user;

/*
 * How /metrics and the log count a service's call that res answers:
 * spotify_failed only for Spotify's failures (502), error for baa's own
 * (a 500, an overflowed response, any status not listed).
 */
enum metrics_internal_outcome internal_outcome(const struct response *res);

/* token.c: a user's access token, for their browser or a backend service. */
struct token_caller {
	long long user_id;
	long long session_id; /* the browser's session; 0 for a service */
	int browser;	      /* a session's browser: its cookie may be cleared */
	/* ?require=: scopes the grant must hold (403 insufficient_scope), or NULL */
	const struct scopes *required;
	const char *next; /* where the 403's login returns to; NULL: "/" */
};

/*
 * Answers with the user's access token, refreshed first (once, under the
 * row's lock) when it is about to expire; or with why not: the same
 * answers for every caller, but a service's never touch cookies, and a
 * user who is not there is 404 for it (401 for a browser's session).
 */
void token_answer(const struct request *req, struct response *res,
		  const struct token_caller *who);

/* Whether the user should renew Spotify's grant now (BAA_REAUTH_WINDOW). */
int token_reauth_recommended(const struct config *cfg, time_t due_at, int needs_reauth);

/* devices.c */
route_handler me_sessions, me_session_end, me_activity;

/* current.c: the request's session. */
struct current {
	struct session_cookie cookie;
	unsigned char hash[32];
	struct session_row session;
	struct user_profile profile; /* when asked for */
	int legacy;		     /* adopted from a cookie of the first format */
};

enum current_status {
	CURRENT_OK,
	CURRENT_NONE,	   /* no session cookie, or not one baa signed */
	CURRENT_DUPLICATE, /* the session cookie's name sent twice */
	CURRENT_GONE,	   /* authentic, but its row is gone or expired */
	CURRENT_DB_ERROR,
};

enum cookie_found { COOKIE_ABSENT, COOKIE_FOUND, COOKIE_DUPLICATE, COOKIE_INVALID };

/* The one cookie called name, copied into out (size bytes). */
enum cookie_found current_cookie(const struct request *req, const char *name, char *out,
				 size_t size);

/* The request's session, its profile too when want_profile. */
/* A session cookie of the current format, verified, and its row's key. */
struct current_key {
	struct session_cookie cookie;
	unsigned char hash[32];
};

/*
 * The request's session cookie (the current format, sent once, its
 * signature good), verified: 0, or -1 when there is none such. For the
 * worker, which looks up its wake-up's sessions together
 * (sessions_prefetch) and hands the key on in req->session_key, so that
 * current_find need not verify the cookie again.
 */
int current_session_key(const struct request *req, struct current_key *out);

enum current_status current_find(const struct request *req, struct current *cur,
				 int want_profile);

/*
 * The request's session, renewed or touched as due; or -1 with the 401
 * (or 503) already in res.
 */
int current_require(const struct request *req, struct response *res, struct current *cur,
		    int want_profile);

/* Whether a cookie called name came with the request. */
int current_cookie_sent(const struct request *req, const char *name);

/*
 * Ends the session which of the caller's user (0: all of the user's
 * sessions) in one transaction with the first-format cookies the user
 * still holds (users_end_legacy_cookies) and the audit event. NOT_FOUND,
 * nothing changed, when which is none of the user's live sessions.
 */
enum sessions_status current_end_sessions(const struct request *req,
					  const struct current *cur, long long which,
					  enum audit_event event);

/* 401 for a session whose row is gone or expired; its cookie is cleared. */
void current_refuse_gone(const struct request *req, struct response *res);

/* Set-Cookie lines that delete the session cookie (both names). */
void current_clear_cookies(const struct request *req, struct response *res);

/* Where the request came from, as sessions and audit events record it. */
void client_of(const struct request *req, struct client *out);

#endif
