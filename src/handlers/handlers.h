/*
 * Route handlers, one file per group of routes, and what they share: the
 * request's session (current.c).
 */
#ifndef BAA_HANDLERS_H
#define BAA_HANDLERS_H

#include <stddef.h>

#include "../audit.h"
#include "../client.h"
#include "../router.h"
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

/* auth_request.c: nginx's auth_request (GET /auth). */
route_handler auth_request_check;

/* metrics.c */
route_handler metrics_scrape;

/* me.c */
route_handler me_profile, me_token, me_delete;

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
