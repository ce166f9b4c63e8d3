/*
 * The worker's PostgreSQL connection: opened on first use, kept for the
 * life of the process, statements prepared once per connection (or sent
 * unnamed each time behind a transaction pooler, BAA_DB_POOLER), and
 * re-opened by itself when the server went away (a restart, a failover).
 */
#ifndef BAA_DB_H
#define BAA_DB_H

#include <libpq-fe.h>

#include "config.h"

/* A statement is owned by the module whose table it touches. */
struct db_statement {
	const char *name; /* unique: the server-side prepared statement name */
	const char *sql;
	int nparams;
};

#define DB_PREPARED_MAX 64
#define DB_CHANNELS_MAX 4

/* A notification channel a module listens on (db_subscribe). */
struct db_channel {
	const char *name; /* baa's own constant: it goes into LISTEN as it is */
	void (*fn)(const char *payload, void *arg);
	void *arg;
};

struct db {
	const struct config *cfg;
	PGconn *conn;
	const struct db_statement *prepared[DB_PREPARED_MAX]; /* none when pooled */
	int nprepared;
	char sqlstate[6]; /* of the last failed statement, "" otherwise */
	unsigned long reconnects;
	int in_transaction;  /* no silent retry on a new connection inside one */
	unsigned long epoch; /* bumped by every (re)connect */
	/* LISTEN succeeded on this connection for every subscribed channel. */
	int listening;
	struct db_channel channels[DB_CHANNELS_MAX];
	int nchannels;
	/*
	 * Set by a caller that polls the socket (the worker's epoll) while it
	 * knows nothing has arrived unasked since: db_notifications then
	 * need not read to find out.
	 */
	int socket_quiet;
};

enum db_status {
	DB_OK,
	DB_UNAVAILABLE,	 /* no connection could be had */
	DB_QUERY_FAILED, /* the server refused the statement; see sqlstate */
};

/*
 * Opens a one-off connection to dbname (the configured database when NULL).
 * On failure returns NULL and puts libpq's reason in err.
 */
PGconn *db_connect(const struct config *cfg, const char *dbname, char *err,
		   size_t errlen);

void db_init(struct db *db, const struct config *cfg);
void db_close(struct db *db);

/*
 * Runs a prepared statement; on DB_OK *result holds a PGresult the caller
 * must PQclear. A connection found broken is re-opened and the statement
 * retried once, so the first request after a database restart succeeds.
 * Statements passed here must therefore be safe to run twice (outside a
 * transaction; inside one there is no retry).
 */
enum db_status db_exec(struct db *db, const struct db_statement *st,
		       const char *const *params, PGresult **result);

/* For a statement whose only answer is how many rows it touched: that
 * number, or -1 when it failed. */
long long db_exec_count(struct db *db, const struct db_statement *st,
			const char *const *params);

/*
 * Listens on channel on every connection from now on (none behind a
 * transaction pooler, which cannot carry LISTEN): each notification on it
 * is passed to fn, by whichever caller takes notifications in. After
 * db_init, before the first statement. -1 when the table is full.
 */
int db_subscribe(struct db *db, const char *channel,
		 void (*fn)(const char *payload, void *arg), void *arg);

/*
 * Takes in, without waiting, what the server sent unasked, and passes each
 * notification to its channel's subscriber. Returns 0 when the connection
 * is up and listening, so that what a subscriber cached since this epoch
 * is still trustworthy; -1 otherwise.
 */
int db_notifications(struct db *db);

/* The connection's socket, -1 when there is none. */
int db_socket(const struct db *db);

/*
 * Transactions. Inside one, a broken connection is reported, not retried:
 * the transaction died with it. db_rollback is safe to call after any
 * failure, db_commit returns DB_OK only when the server committed.
 */
enum db_status db_begin(struct db *db);
enum db_status db_commit(struct db *db);
void db_rollback(struct db *db);

#endif
