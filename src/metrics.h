/*
 * Counters shared by the master and every worker of an instance, in one
 * anonymous shared mapping made before the first fork: they survive a
 * worker's death and are summed by nobody, since there is only one copy.
 * Updates are relaxed atomic adds; a scrape reads whatever is there.
 */
#ifndef BAA_METRICS_H
#define BAA_METRICS_H

#include <stddef.h>

enum metrics_spotify_call {
	METRICS_CALL_CODE,
	METRICS_CALL_REFRESH,
	METRICS_CALL_ME,
	METRICS_CALL_COUNT
};

enum metrics_spotify_outcome {
	METRICS_OUTCOME_OK,
	METRICS_OUTCOME_INVALID_GRANT,
	METRICS_OUTCOME_UNAUTHORIZED,
	METRICS_OUTCOME_FORBIDDEN,
	METRICS_OUTCOME_RATE_LIMITED,
	METRICS_OUTCOME_QUOTA_EXCEEDED, /* a 429 saying the app's quota is used up */
	METRICS_OUTCOME_FAILED,
	METRICS_OUTCOME_PAUSED, /* not sent: paused after an earlier 429 */
	METRICS_OUTCOME_COUNT,
};

/* The 429s Spotify answered, by what their body said. */
enum metrics_rate_limit {
	METRICS_RATE_LIMIT_SHORT_TERM,
	METRICS_RATE_LIMIT_QUOTA_EXCEEDED,
	METRICS_RATE_LIMIT_COUNT,
};

/* How a backend service's call on the internal listener ended. */
enum metrics_internal_outcome {
	METRICS_INTERNAL_OK,
	METRICS_INTERNAL_UNAUTHORIZED, /* no or a wrong service key */
	METRICS_INTERNAL_BAD_REQUEST,
	METRICS_INTERNAL_NOT_FOUND,
	METRICS_INTERNAL_REAUTH_REQUIRED, /* the user must log in (again) */
	METRICS_INTERNAL_FORBIDDEN,
	METRICS_INTERNAL_RATE_LIMITED, /* Spotify's 429: paused */
	METRICS_INTERNAL_SPOTIFY_FAILED,
	METRICS_INTERNAL_UNAVAILABLE, /* the database */
	METRICS_INTERNAL_ERROR,	      /* baa's own failure: a 500, say */
	METRICS_INTERNAL_COUNT,
};

/*
 * The label of an outcome, as logs and /metrics write it. Here, not in
 * metrics.c, so that the handler tests' fakes need not define it.
 */
static inline const char *
metrics_internal_label(enum metrics_internal_outcome outcome)
{
	static const char *const labels[METRICS_INTERNAL_COUNT] = {
		"ok",		"unauthorized",	   "bad_request",
		"not_found",	"reauth_required", "forbidden",
		"rate_limited", "spotify_failed",  "unavailable",
		"error"};

	return labels[outcome];
}

/* Where a session check found its answer (sessions_check). */
enum metrics_session_source {
	METRICS_SESSION_CACHE, /* the worker's cache: no query */
	METRICS_SESSION_BATCH, /* looked up with its wake-up's others */
	METRICS_SESSION_ALONE, /* a query of its own */
	METRICS_SESSION_SOURCE_COUNT,
};

/* Creates the shared counters; once, in the master, before forking. */
int metrics_init(size_t route_count);

/* route: index in the route table, or route_count for "no route". */
void metrics_request(size_t route, int status, double duration_ms);
void metrics_db_reconnect(void);
/* A connection closed because its request did not arrive in time. */
void metrics_request_timeout(void);
void metrics_db_error(void);
/* One statement that checked the sessions of several requests at once. */
void metrics_db_batch(int requests);
void metrics_session_lookup(enum metrics_session_source source);
void metrics_spotify(enum metrics_spotify_call call,
		     enum metrics_spotify_outcome outcome);
void metrics_spotify_rate_limited(enum metrics_rate_limit reason);
void metrics_worker_restart(void);
/* service: index in BAA_SERVICE_KEYS, or -1 when no key was right. */
void metrics_internal_call(int service, enum metrics_internal_outcome outcome);

/*
 * Prometheus text exposition, the instance's pause of calls to Spotify
 * (pause.h) included, and the internal calls by service (services NULL or
 * empty: none); returns the length, or 0 when out is too small.
 */
struct service_keys;
size_t metrics_render(char *out, size_t size, const char *const *route_names,
		      const struct service_keys *services);

#endif
