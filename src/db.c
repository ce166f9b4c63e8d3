/*
 * One libpq connection per worker process. Errors are logged with the
 * statement name and SQLSTATE only: server messages can quote parameter
 * values, and parameters can be tokens.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static void
ignore_notice(void *arg, const char *message)
{
	/* Notices ("relation already exists, skipping") are not errors. */
}

/*
 * libpq's host and port lists: "h1,h2" and "5432,5433" (an empty item is
 * the default port). ports is "" when no address names one, so that PGPORT
 * keeps its say as with a single host.
 */
static void
join_hosts(const struct address_list *list, char *hosts, size_t hosts_size, char *ports,
	   size_t ports_size)
{
	size_t h = 0, p = 0;
	int any_port = 0;

	for (int i = 0; i < list->count; i++) {
		const struct address *a = &list->items[i];
		h += (size_t)snprintf(hosts + h, hosts_size - h, "%s%s", i ? "," : "",
				      a->host);
		p += (size_t)snprintf(ports + p, ports_size - p, "%s%s", i ? "," : "",
				      a->port);
		any_port |= a->port[0] != '\0';
	}
	if (!any_port)
		ports[0] = '\0';
}

PGconn *
db_connect(const struct config *cfg, const char *dbname, char *err, size_t errlen)
{
	const char *keys[16], *values[16];
	char hosts[ADDRESS_LIST_MAX * ADDRESS_HOST_MAX], ports[ADDRESS_LIST_MAX * 6];
	int n = 0;
	PGconn *conn;

	join_hosts(&cfg->postgres_url, hosts, sizeof(hosts), ports, sizeof(ports));
	keys[n] = "host", values[n++] = hosts;
	if (ports[0] != '\0')
		keys[n] = "port", values[n++] = ports;
	/*
	 * Several hosts are a primary and its standbys: libpq tries them in
	 * turn and keeps the first that takes writes, so after a failover the
	 * next connect finds the new primary by itself.
	 */
	if (cfg->postgres_url.count > 1)
		keys[n] = "target_session_attrs", values[n++] = "read-write";
	keys[n] = "user", values[n++] = cfg->postgres_user;
	keys[n] = "password", values[n++] = cfg->postgres_password;
	keys[n] = "dbname", values[n++] = dbname ? dbname : cfg->postgres_db;
	/* Bounded waits: a worker must not hang on an unreachable server. */
	keys[n] = "connect_timeout", values[n++] = "3";
	/*
	 * PgBouncer refuses a client that sends options; behind it the
	 * timeout is the pooler's or the role's to set (README). Prepared
	 * statements keep one generic plan: each here finds rows by key, and
	 * sessions_check_many, planned afresh for each array (a short one's
	 * custom plan looks cheaper), spent more planning than running.
	 */
	if (cfg->db_pooler == CONFIG_POOLER_NONE)
		keys[n] = "options",
		values[n++] =
			"-c statement_timeout=5000 -c plan_cache_mode=force_generic_plan";
	keys[n] = "application_name", values[n++] = "baa";
	/* No Kerberos: it would cost a round trip at each connect and the
	 * memory of the GSSAPI libraries in every worker. */
	keys[n] = "gssencmode", values[n++] = "disable";
	/* Always given, so that PGSSLMODE in the environment never decides. */
	keys[n] = "sslmode", values[n++] = cfg->postgres_sslmode;
	if (cfg->postgres_sslrootcert)
		keys[n] = "sslrootcert", values[n++] = cfg->postgres_sslrootcert;
	keys[n] = NULL, values[n] = NULL;

	/* expand_dbname = 0: a database name is never parsed as a conninfo. */
	conn = PQconnectdbParams(keys, values, 0);
	if (conn == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		const char *why = PQerrorMessage(conn);
		size_t len = strlen(why);
		while (len > 0 && (why[len - 1] == '\n' || why[len - 1] == ' '))
			len--;
		snprintf(err, errlen, "%.*s", (int)len, why);
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, ignore_notice, NULL);
	return conn;
}

void
db_init(struct db *db, const struct config *cfg)
{
	memset(db, 0, sizeof(*db));
	db->cfg = cfg;
}

void
db_close(struct db *db)
{
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	db->nprepared = 0;
	db->in_transaction = 0;
	db->socket_quiet = 0;
}

int
db_socket(const struct db *db)
{
	return db->conn ? PQsocket(db->conn) : -1;
}

/* Subscribes this connection to one channel; 1 when it worked. */
static int
listen_on(struct db *db, const char *channel)
{
	char sql[128];
	PGresult *res;
	int ok;

	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	res = PQexec(db->conn, sql);
	ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		log_event(LOG_WARN, "db_listen_failed", LOG_STR("channel", channel));
	return ok;
}

/*
 * Every subscribed channel, or none: 1 when the connection listens on all.
 * Only what a module subscribed to is listened on; a connection that
 * listens and is never asked would hoard the notifications.
 */
static int
listen_for_changes(struct db *db)
{
	if (db->cfg->db_pooler != CONFIG_POOLER_NONE || db->nchannels == 0)
		return 0;
	for (int i = 0; i < db->nchannels; i++)
		if (!listen_on(db, db->channels[i].name))
			return 0;
	return 1;
}

int
db_subscribe(struct db *db, const char *channel,
	     void (*fn)(const char *payload, void *arg), void *arg)
{
	if (db->nchannels == DB_CHANNELS_MAX)
		return -1;
	db->channels[db->nchannels++] = (struct db_channel){channel, fn, arg};
	return 0;
}

/* A notification for a subscribed channel, to its subscriber. */
static void
dispatch(const struct db *db, const PGnotify *n)
{
	for (int i = 0; i < db->nchannels; i++)
		if (strcmp(n->relname, db->channels[i].name) == 0)
			db->channels[i].fn(n->extra, db->channels[i].arg);
}

int
db_notifications(struct db *db)
{
	PGnotify *n;

	if (db->conn == NULL || !db->listening || PQstatus(db->conn) != CONNECTION_OK)
		return -1;
	/* libpq's socket is non-blocking: this reads only what is there. A
	 * quiet socket has nothing to read, but libpq may hold notifications
	 * it took in with a statement's answer (our own NOTIFY among them). */
	if (!db->socket_quiet &&
	    (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK))
		return -1;
	while ((n = PQnotifies(db->conn)) != NULL) {
		dispatch(db, n);
		PQfreemem(n);
	}
	return 0;
}

static int
db_reconnect(struct db *db)
{
	char err[512];
	int first = db->epoch == 0; /* never connected yet */

	db_close(db);
	db->conn = db_connect(db->cfg, NULL, err, sizeof(err));
	if (db->conn == NULL) {
		log_event(LOG_ERROR, "db_connect_failed", LOG_STR("reason", err));
		return -1;
	}
	if (!first) {
		db->reconnects++;
		metrics_db_reconnect();
	}
	db->epoch++;
	db->listening = listen_for_changes(db);
	/* prefer may end in plain text: the log says which it was. */
	log_event(LOG_INFO, first ? "db_connected" : "db_reconnected",
		  LOG_STR("host", PQhost(db->conn)), LOG_STR("port", PQport(db->conn)),
		  LOG_INT("reconnects", (long long)db->reconnects),
		  LOG_STR("tls", PQsslInUse(db->conn) ? "on" : "off"));
	return 0;
}

static int
is_prepared(const struct db *db, const struct db_statement *st)
{
	for (int i = 0; i < db->nprepared; i++)
		if (db->prepared[i] == st)
			return 1;
	return 0;
}

static void
remember_failure(struct db *db, const struct db_statement *st, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
	metrics_db_error();
	log_event(LOG_ERROR, "db_statement_failed", LOG_STR("statement", st->name),
		  LOG_STR("sqlstate", db->sqlstate));
}

/* Why a statement failed: the server refused it, or the connection is gone. */
static enum db_status
failure(const struct db *db)
{
	return PQstatus(db->conn) == CONNECTION_OK ? DB_QUERY_FAILED : DB_UNAVAILABLE;
}

/* Prepares st on this connection the first time it is run there. */
static enum db_status
prepare_once(struct db *db, const struct db_statement *st)
{
	PGresult *res;

	if (is_prepared(db, st))
		return DB_OK;
	if (db->nprepared == DB_PREPARED_MAX)
		return DB_QUERY_FAILED;
	res = PQprepare(db->conn, st->name, st->sql, st->nparams, NULL);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		remember_failure(db, st, res);
		PQclear(res);
		return failure(db);
	}
	PQclear(res);
	db->prepared[db->nprepared++] = st;
	return DB_OK;
}

/*
 * Returns the result of one attempt; NULL result means see db->conn.
 * Behind a transaction pooler the next statement may reach another server
 * connection, one that never saw our PREPARE: there every statement goes
 * unnamed, parse, bind and execute in one message train, one round trip.
 */
static enum db_status
try_exec(struct db *db, const struct db_statement *st, const char *const *params,
	 PGresult **result)
{
	PGresult *res;
	ExecStatusType status;

	if (db->cfg->db_pooler == CONFIG_POOLER_TRANSACTION) {
		res = PQexecParams(db->conn, st->sql, st->nparams, NULL, params, NULL,
				   NULL, 0);
	} else {
		enum db_status prepared = prepare_once(db, st);
		if (prepared != DB_OK)
			return prepared;
		res = PQexecPrepared(db->conn, st->name, st->nparams, params, NULL, NULL,
				     0);
	}
	status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
		db->sqlstate[0] = '\0';
		*result = res;
		return DB_OK;
	}
	remember_failure(db, st, res);
	PQclear(res);
	return failure(db);
}

enum db_status
db_exec(struct db *db, const struct db_statement *st, const char *const *params,
	PGresult **result)
{
	enum db_status status;

	*result = NULL;
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		if (db_reconnect(db) < 0)
			return DB_UNAVAILABLE;
		return try_exec(db, st, params, result);
	}
	status = try_exec(db, st, params, result);
	/* A connection that broke under us (server restart) gets one new try. */
	if (status == DB_UNAVAILABLE && !db->in_transaction && db_reconnect(db) == 0)
		status = try_exec(db, st, params, result);
	return status;
}

long long
db_exec_count(struct db *db, const struct db_statement *st, const char *const *params)
{
	PGresult *res;
	long long n;

	if (db_exec(db, st, params, &res) != DB_OK)
		return -1;
	n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return n;
}

/* Runs BEGIN-less control statements; ok only when the server's command
 * tag is the statement itself (COMMIT of a failed transaction says ROLLBACK). */
static enum db_status
run_simple(struct db *db, const char *sql)
{
	PGresult *res = PQexec(db->conn, sql);
	int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK &&
		 strcmp(PQcmdStatus(res), sql) == 0;

	PQclear(res);
	if (ok)
		return DB_OK;
	log_event(LOG_ERROR, "db_statement_failed", LOG_STR("statement", sql));
	return failure(db);
}

enum db_status
db_begin(struct db *db)
{
	static const struct db_statement begin = {"begin", "BEGIN", 0};
	PGresult *res;
	enum db_status status;

	/* BEGIN itself may be retried on a fresh connection: nothing ran yet. */
	status = db_exec(db, &begin, NULL, &res);
	PQclear(res);
	db->in_transaction = status == DB_OK;
	return status;
}

enum db_status
db_commit(struct db *db)
{
	enum db_status status = run_simple(db, "COMMIT");

	db->in_transaction = 0;
	return status;
}

void
db_rollback(struct db *db)
{
	if (db->in_transaction && db->conn && PQstatus(db->conn) == CONNECTION_OK)
		run_simple(db, "ROLLBACK");
	db->in_transaction = 0;
}
