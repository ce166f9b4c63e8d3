/*
 * The sessions table: one row per logged-in device (sql/005). A session
 * cookie names its row by a random id whose SHA-256 is the row's key; the
 * row says whose session it is and until when. Every SQL statement that
 * touches the table lives here, with the worker's cache of checked
 * sessions: a cached session is served without a query until PostgreSQL
 * notifies that one of its user's sessions ended.
 */
#ifndef BAA_SESSIONS_H
#define BAA_SESSIONS_H

#include <time.h>

#include "client.h"
#include "db.h"
#include "session.h"

struct user_profile;

#define SESSIONS_LIST_MAX 100

struct session_row {
	long long id; /* public: the device list and DELETE /me/sessions/{id} */
	long long user_id;
	time_t created_at;
	time_t last_seen_at;
	time_t expires_at;     /* the idle deadline */
	time_t max_expires_at; /* the cap on renewals */
};

struct session_listing {
	struct session_row row;
	struct client client; /* where it was started from */
};

struct session_list {
	int count;
	struct session_listing items[SESSIONS_LIST_MAX];
};

enum sessions_status {
	SESSIONS_OK,
	SESSIONS_NOT_FOUND, /* no such session, or it expired */
	SESSIONS_DB_ERROR,
};

/*
 * A worker's connection: with the cache on, listens for ended sessions.
 * -1 when it could not subscribe.
 */
int sessions_attach(struct db *db);

/* Inside the login's transaction: a new session of user, keyed by hash. */
enum sessions_status sessions_create(struct db *db, long long user_id,
				     const unsigned char hash[32],
				     const struct client *client,
				     struct session_row *out);

/*
 * The live session keyed by hash, and when profile is not NULL its user's
 * profile, from the worker's cache when it may, else in one query.
 */
enum sessions_status sessions_check(struct db *db, const unsigned char hash[32],
				    struct session_row *out,
				    struct user_profile *profile);

/*
 * Looks up, in one statement, the sessions that the requests of one
 * wake-up of the worker are about to check, those the cache cannot serve:
 * each request's sessions_check then takes its answer (once) instead of
 * asking alone. n at most SESSIONS_PREFETCH_MAX; the same hash twice is
 * asked once and answers both requests. What could not be looked up this
 * way is left for sessions_check to ask alone. sessions_prefetch_end
 * forgets what was not taken.
 */
#define SESSIONS_PREFETCH_MAX 128
void sessions_prefetch(struct db *db, const unsigned char (*hashes)[32], int n);
void sessions_prefetch_end(void);

/*
 * Records that the session was used: at most once a touch interval (a
 * minute, less for short BAA_SESSION_TTL), or now when renew is set, the
 * idle deadline moves to least(now + BAA_SESSION_TTL, max_expires_at).
 * row is updated; NOT_FOUND when renew found the row gone.
 */
enum sessions_status sessions_touch(struct db *db, const unsigned char hash[32],
				    struct session_row *row, int renew);

/* Whether the session is due a touch (sessions_touch without renew). */
int sessions_touch_due(const struct db *db, const struct session_row *row, time_t now);

/* Ends one session of user; NOT_FOUND when user has no such session. */
enum sessions_status sessions_end(struct db *db, long long user_id, long long id);

/* Ends every session of user. */
enum sessions_status sessions_end_all(struct db *db, long long user_id);

/* The user's live sessions, most recently seen first. */
enum sessions_status sessions_list(struct db *db, long long user_id,
				   struct session_list *out);

/*
 * A cookie of the first format, turned into a session row when the user it
 * names still holds its generation, existed when such cookies were last
 * issued, and the cookie cannot have been issued after (sql/005). In a
 * transaction of its own.
 */
enum sessions_status sessions_adopt_legacy(struct db *db,
					   const struct legacy_session *legacy,
					   const unsigned char hash[32],
					   const struct client *client,
					   struct session_row *out);

/* Deletes up to limit sessions expired for a while; the number, or -1. */
int sessions_prune(struct db *db, int limit);

#endif
