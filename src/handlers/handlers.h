/*
 * Route handlers, one file per group of routes.
 */
#ifndef BAA_HANDLERS_H
#define BAA_HANDLERS_H

#include "../router.h"
#include "../spotify.h"

struct user_session;

/* health.c */
route_handler health_live, health_ready;

/* auth.c */
route_handler auth_login, auth_callback, auth_logout;
/* The request's valid session cookie: 0, or -1 when there is none. */
int auth_current_session(const struct request *req, struct user_session *session);

/* 503 with Retry-After when Spotify rate-limits the app (its quota included),
 * else 502 with what. */
void auth_spotify_failed(struct response *res, struct spotify_outcome outcome,
			 const char *what);

/* metrics.c */
route_handler metrics_scrape;

/* me.c */
route_handler me_profile, me_token, me_delete;

#endif
