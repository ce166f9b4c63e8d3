/*
 * Fakes the handler tests link against instead of the real modules (link-
 * time substitution: the test's objects define these names first, so the
 * archive's spotify.o, users.o, sessions.o, states.o, audit.o and db.o are
 * never pulled in). No PostgreSQL, no network: a test scripts what Spotify
 * answers and reads what the store holds and was asked.
 *
 * fake_spotify.c  spotify.h's calls, answering what fake_spotify says.
 * fake_store.c    users.h, sessions.h, states.h, audit.h and db.h's
 *                 transactions, in memory: a rollback puts back what
 *                 db_begin saw, so a failed request leaves nothing behind.
 * fake_log.c      log_fields, wrapped (-Wl,--wrap=log_fields): every line
 *                 the handlers log, kept for the test to read.
 * fake_request.c  requests as the worker hands them over, and what a
 *                 response set, for the tests to read.
 */
#ifndef BAA_TESTS_FAKES_H
#define BAA_TESTS_FAKES_H

#include <stddef.h>
#include <time.h>

#include "../../src/audit.h"
#include "../../src/client.h"
#include "../../src/config.h"
#include "../../src/db.h"
#include "../../src/metrics.h"
#include "../../src/services.h"
#include "../../src/request.h"
#include "../../src/response.h"
#include "../../src/session.h"
#include "../../src/spotify.h"

/* -- Spotify ------------------------------------------------------------- */

/*
 * What each call answers. A test sets the outcomes it needs; the rest stay
 * SPOTIFY_OK with tokens and user. paused (status, retry_after) makes
 * spotify_paused say so and every call answer it unsent, as spotify.c does.
 */
struct fake_spotify {
	struct spotify_outcome exchange, refresh, me;
	struct spotify_tokens tokens; /* what an OK exchange or refresh gives */
	struct spotify_user user;     /* what an OK /v1/me gives */
	int paused;
	struct spotify_outcome pause; /* with paused: what the pause says */

	/* What was asked, and with what. */
	int exchanges, refreshes, mes;
	char code[1100], verifier[SESSION_VERIFIER_LEN + 1];
	char refresh_token[SPOTIFY_TOKEN_MAX + 1], access_token[SPOTIFY_TOKEN_MAX + 1];
};

extern struct fake_spotify fake_spotify;

/* Every call OK: tokens "AT-new"/"RT-new", user "alice" (account "acct-a"). */
void fake_spotify_reset(void);

/* An outcome of status, e.g. for .me = fake_outcome(SPOTIFY_FORBIDDEN, 0). */
struct spotify_outcome fake_outcome(enum spotify_status status, long retry_after);

/* -- the store ------------------------------------------------------------ */

#define FAKE_USERS_MAX 4
#define FAKE_SESSIONS_MAX 8
#define FAKE_EVENTS_MAX 16
#define FAKE_STATES_MAX 4

struct fake_user {
	long long id;
	char spotify_id[SPOTIFY_ID_MAX + 1];
	char account_id[SPOTIFY_ID_MAX + 1];
	char display_name[SPOTIFY_NAME_MAX + 1];
	char access_token[SPOTIFY_TOKEN_MAX + 1];  /* "" when none */
	char refresh_token[SPOTIFY_TOKEN_MAX + 1]; /* "" when none */
	char scope[SPOTIFY_SCOPE_MAX + 1];	   /* a login's, as users.c keeps it */
	/* What the last login asked Spotify for; has_: not NULL. */
	char scope_requested[SPOTIFY_SCOPE_MAX + 1];
	int has_scope_requested;
	time_t expires_at, authorized_at, needs_reauth_at;
	long long generation; /* of first-format cookies */
};

struct fake_session {
	long long id, user_id;
	unsigned char hash[32];
	time_t created_at, last_seen_at, expires_at, max_expires_at;
	struct client client;
};

struct fake_event {
	enum audit_event event;
	long long user_id, session_id;
};

/* The tables: what a test compares before and after a request. */
struct fake_data {
	struct fake_user users[FAKE_USERS_MAX];
	int nusers;
	struct fake_session sessions[FAKE_SESSIONS_MAX];
	int nsessions;
	struct fake_event events[FAKE_EVENTS_MAX];
	int nevents;
	char states[FAKE_STATES_MAX][SESSION_STATE_LEN + 1];
	int nstates;
	long long next_id;
};

struct fake_store {
	struct fake_data data;
	struct fake_data before; /* as db_begin found it: what db_rollback restores */
	int in_transaction, begins, commits, rollbacks;
	/*
	 * Calls (by name, space-separated: "db_commit users_store_refresh")
	 * that answer a database error; sqlstate goes into db->sqlstate then.
	 */
	const char *failing;
	const char *sqlstate;
	/*
	 * Run at users_lock_token and users_delete before they read: what
	 * another worker committed while this request was on its way.
	 */
	void (*meanwhile)(void);
	/*
	 * Seconds the database's clock is behind this process's: PostgreSQL's
	 * floor(now()) may still be the last second when time(NULL) is not.
	 */
	int clock_behind;
	char calls[2048]; /* every call, in order, space-separated */
};

extern struct fake_store fake_store;

void fake_store_reset(void);

/* A user with tokens; expires_at 0: the access token expires in an hour. */
long long fake_store_add_user(const char *spotify_id, const char *account_id,
			      const char *access_token, const char *refresh_token,
			      time_t expires_at);
struct fake_user *fake_store_user(long long id); /* NULL: no such row */

/* A live session of user: its row, and its signed cookie value in cookie. */
long long fake_store_add_session(long long user_id, char *cookie, size_t size);
int fake_store_live_sessions(long long user_id);

/* How many times call (a function's name) was made. */
int fake_store_called(const char *call);

/* The audit events recorded, as names: "login refresh" ("" when none). */
const char *fake_store_events(void);

/* -- the log -------------------------------------------------------------- */

/* Forgets the lines logged so far. */
void fake_log_reset(void);
/* Every line logged since, one a line, as log_format writes them. */
const char *fake_log_text(void);
/* Whether a line of event holds every "key=value" given (NULL-terminated). */
int fake_log_has(const char *event, ...);

/* -- metrics ------------------------------------------------------------- */

/*
 * metrics_internal_call, counted here (metrics.c would bring the pause and
 * the database along): [service + 1][outcome], [0] for no right key.
 */
extern int fake_internal_calls[SERVICES_MAX + 1][METRICS_INTERNAL_COUNT];

/* -- requests ------------------------------------------------------------ */

/* The configuration and connection every fake request carries. */
extern struct config fake_cfg;
extern struct db fake_db;

/* Store, Spotify and log as new; the cookie secret set. Each test's setup. */
int fakes_reset(void **state);

/* A request as the worker hands it over; cookie NULL: no Cookie header. */
struct request fake_request(enum http_method method, const char *path, const char *query,
			    const char *cookie);

/* "name=value" for a Cookie header, in a buffer of the caller's. */
const char *fake_cookie(char *out, size_t size, const char *name, const char *value);

/* Fails the test unless res has status and a body {"error":"code",...}. */
void fake_assert_error(const struct response *res, int status, const char *code);

/* Fails the test unless res is 200 and hands out access_token, Bearer. */
void fake_assert_token_served(const struct response *res, const char *access_token);

/* The value of the response's first header called name, or NULL. */
const char *fake_header(const struct response *res, const char *name, char *out,
			size_t size);

/* Whether the response sets cookie name to "" with Max-Age=0 (deletes it). */
int fake_clears_cookie(const struct response *res, const char *name);

/* The value a response's Set-Cookie gives name, or NULL when it sets none. */
const char *fake_set_cookie(const struct response *res, const char *name, char *out,
			    size_t size);

#endif
