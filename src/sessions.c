/*
 * SQL for the sessions table, parameterised and prepared once per
 * connection, and the worker's cache of the sessions it checked.
 *
 * The cache (session_cache.h: 32768 sessions): a checked session is kept
 * with the time it was read (on the monotonic clock) and the connection
 * (epoch) it was read on, and served without a query while that
 * connection stays up, for at most SESSION_CACHE_TTL_MS, and never past
 * its row's expiry as read (a wall clock time, as the row holds it).
 * Ending a session deletes its row, whose trigger notifies the user's id;
 * every worker then forgets all of that user's sessions. A touch by
 * another worker moves the row's expiry on without notifying: a cached
 * expiry reached is checked again, not taken as the end.
 */
#include "sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "metrics.h"
#include "session_cache.h"
#include "users.h"

#define EPOCH(column) "floor(extract(epoch FROM " column "))::bigint"
/* clang-format would take EPOCH for a call, not a string literal. */
/* clang-format off */
#define SESSION_COLUMNS                                                                  \
	"s.id, s.user_id, " EPOCH("s.created_at") ", " EPOCH("s.last_seen_at") ", "     \
	EPOCH("s.expires_at") ", " EPOCH("s.max_expires_at")
/* clang-format on */
#define SESSION_NCOLS 6

/* The channel of the sessions trigger (sql/005_sessions_and_audit.sql). */
#define SESSION_ENDED_CHANNEL "baa_session_ended"

/* Sessions that expired are kept this long before they are deleted, so
 * that a device list shows why a cookie stopped working for a while. */
#define PRUNE_GRACE "1 day"

static const struct db_statement create = {
	"sessions_create",
	"INSERT INTO sessions AS s (token_hash, user_id, expires_at, max_expires_at,"
	"                           device, network)"
	" VALUES ($1, $2, now() + make_interval(secs => $3::int),"
	"  now() + make_interval(secs => $4::int), $5, $6::cidr)"
	" RETURNING " SESSION_COLUMNS,
	6,
};

/* One round trip: the session and what GET /me shows of its user. */
static const struct db_statement check = {
	"sessions_check",
	"SELECT " SESSION_COLUMNS ", " USERS_PROFILE_COLUMNS
	" FROM sessions s JOIN users u ON u.id = s.user_id"
	" WHERE s.token_hash = $1 AND s.expires_at > now()",
	1,
};

/*
 * The sessions of several requests in one statement, $1 their hashes: one
 * plan and one execution for all, where each sessions_check is one of
 * its own (PostgreSQL's CPU per session, by pgbench: about 33 µs alone,
 * 9 to 11 in a statement of 16). k.i says which hash a row answers.
 * OFFSET 0 keeps the subquery an index lookup per hash: flattened into a
 * join, the planner may read every live session of a small table instead.
 */
static const struct db_statement check_many = {
	"sessions_check_many",
	"SELECT k.i, x.* FROM unnest($1::bytea[]) WITH ORDINALITY AS k(h, i)"
	" CROSS JOIN LATERAL (SELECT " SESSION_COLUMNS ", " USERS_PROFILE_COLUMNS
	"  FROM sessions s JOIN users u ON u.id = s.user_id"
	"  WHERE s.token_hash = k.h AND s.expires_at > now() OFFSET 0) x",
	1,
};

/* $4: renew now, whenever it was last seen. */
static const struct db_statement touch = {
	"sessions_touch",
	"UPDATE sessions AS s SET last_seen_at = now(),"
	"  expires_at = least(now() + make_interval(secs => $2::int), max_expires_at)"
	" WHERE s.id = $1 AND s.expires_at > now()"
	"  AND ($4::boolean OR s.last_seen_at <= now() - make_interval(secs => $3::int))"
	" RETURNING " SESSION_COLUMNS,
	4,
};

static const struct db_statement end_one = {
	"sessions_end",
	"DELETE FROM sessions WHERE user_id = $1 AND id = $2",
	2,
};

static const struct db_statement end_all = {
	"sessions_end_all",
	"DELETE FROM sessions WHERE user_id = $1",
	1,
};

static const struct db_statement list = {
	"sessions_list",
	"SELECT " SESSION_COLUMNS ", s.device, coalesce(host(s.network) || '/' ||"
	"  masklen(s.network), '')"
	" FROM sessions s WHERE s.user_id = $1 AND s.expires_at > now()"
	" ORDER BY s.last_seen_at DESC, s.id DESC LIMIT 100",
	1,
};

/*
 * $2 the generation the cookie carries, $3 its expiry, $4 BAA_SESSION_TTL:
 * a v1 cookie was issued before the cutover, so it expires before
 * cutover + TTL (with the TTL of then; a longer one now only widens it).
 */
static const struct db_statement legacy_user = {
	"sessions_legacy_user",
	"SELECT u.id FROM users u, session_cookie_cutover c"
	" WHERE u.id = $1 AND u.session_generation = $2 AND u.created_at < c.at"
	"  AND to_timestamp($3::bigint) <= c.at + make_interval(secs => $4::int)"
	" FOR UPDATE OF u",
	4,
};

static const struct db_statement prune = {
	"sessions_prune",
	"DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
	"  WHERE expires_at < now() - interval '" PRUNE_GRACE "' LIMIT $1)",
	1,
};

/* The answers sessions_prefetch got, each for one sessions_check. */
struct prefetched {
	unsigned char hash[32];
	int waiting;		     /* not taken yet, and its user not notified since */
	enum sessions_status status; /* SESSIONS_OK or SESSIONS_NOT_FOUND */
	struct session_row row;
	struct user_profile profile;
};

static struct prefetched prefetched[SESSIONS_PREFETCH_MAX];
static int nprefetched;

static void
forget_user(const char *payload, void *arg)
{
	long long user_id = strtoll(payload, NULL, 10);

	(void)arg;
	session_cache_forget_user(user_id);
	/* Read before the notification came: asked again. */
	for (int i = 0; i < nprefetched; i++)
		if (prefetched[i].status == SESSIONS_OK &&
		    prefetched[i].row.user_id == user_id)
			prefetched[i].waiting = 0;
}

int
sessions_attach(struct db *db)
{
	if (!db->cfg->profile_cache)
		return 0;
	return db_subscribe(db, SESSION_ENDED_CHANNEL, forget_user, NULL);
}

static void
remember(struct db *db, const unsigned char hash[32], const struct session_row *row)
{
	if (db->cfg->profile_cache && db->listening)
		session_cache_put(hash, row, db->epoch, clock_now_ms());
}

static const struct session_row *
cached(struct db *db, const unsigned char hash[32], time_t now)
{
	if (!db->cfg->profile_cache || db_notifications(db) < 0)
		return NULL;
	return session_cache_get(hash, db->epoch, clock_now_ms(), now);
}

/* "\x<hex>": a bytea parameter in text format. */
static void
bytea_param(const unsigned char *bytes, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	out[0] = '\\';
	out[1] = 'x';
	for (size_t i = 0; i < len; i++) {
		out[2 + 2 * i] = hex[bytes[i] >> 4];
		out[3 + 2 * i] = hex[bytes[i] & 15];
	}
	out[2 + 2 * len] = '\0';
}

static long long
column_int(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* SESSION_COLUMNS of row i, starting at column first. */
static void
read_row_at(const PGresult *res, int i, int first, struct session_row *out)
{
	out->id = column_int(res, i, first);
	out->user_id = column_int(res, i, first + 1);
	out->created_at = (time_t)column_int(res, i, first + 2);
	out->last_seen_at = (time_t)column_int(res, i, first + 3);
	out->expires_at = (time_t)column_int(res, i, first + 4);
	out->max_expires_at = (time_t)column_int(res, i, first + 5);
}

static void
read_row(const PGresult *res, int i, struct session_row *out)
{
	read_row_at(res, i, 0, out);
}

/* Runs st; SESSIONS_OK with *res (PQclear it) holding exactly one row. */
static enum sessions_status
run_one(struct db *db, const struct db_statement *st, const char *const *params,
	PGresult **res)
{
	if (db_exec(db, st, params, res) != DB_OK)
		return SESSIONS_DB_ERROR;
	if (PQntuples(*res) == 1)
		return SESSIONS_OK;
	PQclear(*res);
	return SESSIONS_NOT_FOUND;
}

enum sessions_status
sessions_create(struct db *db, long long user_id, const unsigned char hash[32],
		const struct client *client, struct session_row *out)
{
	char hash_text[2 + 64 + 1], user_text[24], ttl[24], max_age[24];
	const char *params[6] = {
		hash_text, user_text,	   ttl,
		max_age,   client->device, client->network[0] ? client->network : NULL};
	enum sessions_status status;
	PGresult *res;

	bytea_param(hash, 32, hash_text);
	snprintf(user_text, sizeof(user_text), "%lld", user_id);
	snprintf(ttl, sizeof(ttl), "%d", db->cfg->session_ttl);
	snprintf(max_age, sizeof(max_age), "%d", db->cfg->session_max_age);
	status = run_one(db, &create, params, &res);
	if (status != SESSIONS_OK)
		return status == SESSIONS_NOT_FOUND ? SESSIONS_DB_ERROR : status;
	read_row(res, 0, out);
	PQclear(res);
	return SESSIONS_OK;
}

/* The row of a session check's answer into row, and into profile when
 * asked for; each kept in its cache. */
static void
read_check_row(struct db *db, const unsigned char hash[32], const PGresult *res,
	       struct session_row *row, struct user_profile *profile)
{
	read_row(res, 0, row);
	remember(db, hash, row);
	if (profile) {
		users_profile_read(db, res, 0, SESSION_NCOLS, profile);
		users_profile_remember(db, profile);
	}
}

/* An element of check_many's array: "\\x<hex>", quoted. */
#define HASH_ELEMENT_LEN (1 + 2 + 64 + 1)

/*
 * The array literal of the distinct hashes the requests ask (asking[i]:
 * the index in hashes of the request whose hash is the i-th element).
 */
static void
hash_array(const unsigned char (*hashes)[32], const int *asking, int n, char *out)
{
	char *p = out;

	*p++ = '{';
	for (int i = 0; i < n; i++) {
		if (i > 0)
			*p++ = ',';
		*p++ = '"';
		*p++ = '\\'; /* the array's escape, before bytea's "\x" */
		bytea_param(hashes[asking[i]], 32, p);
		p += 2 + 64;
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
}

/*
 * What check_many answered, into the prefetched answers: each one whose
 * hash is element i of the array (element_of[k] == i) gets row i's session
 * and profile, read once.
 */
static void
read_many(struct db *db, const PGresult *res, const int *element_of)
{
	for (int row = 0; row < PQntuples(res); row++) {
		int i = (int)column_int(res, row, 0) - 1;
		const struct prefetched *read = NULL;

		for (int k = 0; k < nprefetched; k++) {
			struct prefetched *p = &prefetched[k];
			if (element_of[k] != i)
				continue;
			p->status = SESSIONS_OK;
			if (read) {
				p->row = read->row;
				p->profile = read->profile;
				continue;
			}
			read = p;
			read_row_at(res, row, 1, &p->row);
			users_profile_read(db, res, row, 1 + SESSION_NCOLS, &p->profile);
			remember(db, p->hash, &p->row);
			users_profile_remember(db, &p->profile);
		}
	}
}

void
sessions_prefetch(struct db *db, const unsigned char (*hashes)[32], int n)
{
	static char array[2 + SESSIONS_PREFETCH_MAX * (HASH_ELEMENT_LEN + 1)];
	const char *params[1] = {array};
	/* Per request: the element of the array that asks its hash, or -1
	 * when the cache answers it; per element: the first request asking. */
	int element[SESSIONS_PREFETCH_MAX], asking[SESSIONS_PREFETCH_MAX];
	int element_of[SESSIONS_PREFETCH_MAX]; /* per prefetched answer */
	int nelements = 0, nasking = 0;
	time_t now = time(NULL);
	PGresult *res;

	sessions_prefetch_end();
	n = n < SESSIONS_PREFETCH_MAX ? n : SESSIONS_PREFETCH_MAX;
	for (int r = 0; r < n; r++) {
		const struct session_row *hit = cached(db, hashes[r], now);

		element[r] = -1;
		if (hit && users_profile_is_cached(db, hit->user_id))
			continue; /* the cache answers it */
		nasking++;
		/* The same session twice (a page's parallel requests): asked once. */
		for (int i = 0; i < nelements && element[r] < 0; i++)
			if (memcmp(hashes[asking[i]], hashes[r], 32) == 0)
				element[r] = i;
		if (element[r] < 0) {
			element[r] = nelements;
			asking[nelements++] = r;
		}
	}
	/* One alone gains nothing: sessions_check asks it as ever. */
	if (nasking < 2)
		return;
	hash_array(hashes, asking, nelements, array);
	if (db_exec(db, &check_many, params, &res) != DB_OK)
		return; /* each asks alone, and meets the outage there */
	metrics_db_batch(nasking);
	for (int r = 0; r < n; r++) {
		struct prefetched *p = &prefetched[nprefetched];
		if (element[r] < 0)
			continue;
		memcpy(p->hash, hashes[r], 32);
		p->waiting = 1;
		p->status = SESSIONS_NOT_FOUND;
		element_of[nprefetched++] = element[r];
	}
	read_many(db, res, element_of);
	PQclear(res);
}

void
sessions_prefetch_end(void)
{
	nprefetched = 0;
}

/* The prefetched answer for hash, taken: 1, or 0 when there is none. */
static int
take_prefetched(struct db *db, const unsigned char hash[32], struct session_row *out,
		struct user_profile *profile, enum sessions_status *status)
{
	if (nprefetched == 0)
		return 0;
	/* One that came since the prefetch forgets what it read (forget_user). */
	db_notifications(db);
	for (int i = 0; i < nprefetched; i++) {
		struct prefetched *p = &prefetched[i];
		if (!p->waiting || memcmp(p->hash, hash, 32) != 0)
			continue;
		p->waiting = 0;
		*status = p->status;
		if (p->status == SESSIONS_OK) {
			*out = p->row;
			if (profile)
				*profile = p->profile;
		}
		return 1;
	}
	return 0;
}

enum sessions_status
sessions_check(struct db *db, const unsigned char hash[32], struct session_row *out,
	       struct user_profile *profile)
{
	char hash_text[2 + 64 + 1];
	const char *params[1] = {hash_text};
	const struct session_row *hit;
	enum sessions_status status;
	time_t now = time(NULL);
	PGresult *res;

	/* First: what was looked up for this request, which the prefetch
	 * also left in the cache. */
	if (take_prefetched(db, hash, out, profile, &status)) {
		metrics_session_lookup(METRICS_SESSION_BATCH);
		return status;
	}
	hit = cached(db, hash, now);
	if (hit && (profile == NULL || users_profile_cached(db, hit->user_id, profile))) {
		*out = *hit;
		metrics_session_lookup(METRICS_SESSION_CACHE);
		return SESSIONS_OK;
	}
	metrics_session_lookup(METRICS_SESSION_ALONE);
	bytea_param(hash, 32, hash_text);
	status = run_one(db, &check, params, &res);
	if (status != SESSIONS_OK)
		return status;
	read_check_row(db, hash, res, out, profile);
	PQclear(res);
	return SESSIONS_OK;
}

/* A short TTL is touched more often than a minute, so that a session in
 * use never reaches the idle deadline its row holds. */
static int
touch_interval(const struct db *db)
{
	int quarter = db->cfg->session_ttl / 4;

	return quarter < 60 ? quarter : 60;
}

/*
 * Strictly more whole seconds than the interval: last_seen_at is read
 * rounded down, so with ">=" the touch could come before the UPDATE's own
 * test (last_seen_at <= now() - interval) holds, find no row, and be put
 * off by a whole interval.
 */
int
sessions_touch_due(const struct db *db, const struct session_row *row, time_t now)
{
	return now - row->last_seen_at > touch_interval(db);
}

enum sessions_status
sessions_touch(struct db *db, const unsigned char hash[32], struct session_row *row,
	       int renew)
{
	char id_text[24], ttl[24], interval[24];
	const char *params[4] = {id_text, ttl, interval, renew ? "true" : "false"};
	enum sessions_status status;
	time_t now = time(NULL);
	PGresult *res;

	snprintf(id_text, sizeof(id_text), "%lld", row->id);
	snprintf(ttl, sizeof(ttl), "%d", db->cfg->session_ttl);
	snprintf(interval, sizeof(interval), "%d", touch_interval(db));
	status = run_one(db, &touch, params, &res);
	if (status == SESSIONS_OK) {
		read_row(res, 0, row);
		PQclear(res);
	} else if (status == SESSIONS_NOT_FOUND && !renew) {
		/* Another worker touched it first: nothing to do for a while. */
		row->last_seen_at = now;
		status = SESSIONS_OK;
	}
	if (status == SESSIONS_OK)
		session_cache_update(hash, row);
	return status;
}

static enum sessions_status
run_touching(struct db *db, const struct db_statement *st, const char *const *params)
{
	long long n = db_exec_count(db, st, params);

	return n < 0 ? SESSIONS_DB_ERROR : n == 0 ? SESSIONS_NOT_FOUND : SESSIONS_OK;
}

enum sessions_status
sessions_end(struct db *db, long long user_id, long long id)
{
	char user_text[24], id_text[24];
	const char *params[2] = {user_text, id_text};

	snprintf(user_text, sizeof(user_text), "%lld", user_id);
	snprintf(id_text, sizeof(id_text), "%lld", id);
	return run_touching(db, &end_one, params);
}

enum sessions_status
sessions_end_all(struct db *db, long long user_id)
{
	char user_text[24];
	const char *params[1] = {user_text};
	enum sessions_status status;

	snprintf(user_text, sizeof(user_text), "%lld", user_id);
	status = run_touching(db, &end_all, params);
	return status == SESSIONS_NOT_FOUND ? SESSIONS_OK : status;
}

enum sessions_status
sessions_list(struct db *db, long long user_id, struct session_list *out)
{
	char user_text[24];
	const char *params[1] = {user_text};
	PGresult *res;

	snprintf(user_text, sizeof(user_text), "%lld", user_id);
	if (db_exec(db, &list, params, &res) != DB_OK)
		return SESSIONS_DB_ERROR;
	out->count = 0;
	for (int i = 0; i < PQntuples(res) && i < SESSIONS_LIST_MAX; i++) {
		struct session_listing *item = &out->items[out->count++];
		read_row(res, i, &item->row);
		snprintf(item->client.device, sizeof(item->client.device), "%s",
			 PQgetvalue(res, i, SESSION_NCOLS));
		snprintf(item->client.network, sizeof(item->client.network), "%s",
			 PQgetvalue(res, i, SESSION_NCOLS + 1));
	}
	PQclear(res);
	return SESSIONS_OK;
}

/* Inside the adoption's transaction. */
static enum sessions_status
adopt(struct db *db, const struct legacy_session *legacy, const unsigned char hash[32],
      const struct client *client, struct session_row *out)
{
	char user_text[24], generation[24], expires[24], ttl[24];
	const char *params[4] = {user_text, generation, expires, ttl};
	enum sessions_status status;
	PGresult *res;

	snprintf(user_text, sizeof(user_text), "%lld", legacy->user_id);
	snprintf(generation, sizeof(generation), "%lld", legacy->generation);
	snprintf(expires, sizeof(expires), "%lld", (long long)legacy->expires);
	snprintf(ttl, sizeof(ttl), "%d", db->cfg->session_ttl);
	status = run_one(db, &legacy_user, params, &res);
	if (status != SESSIONS_OK)
		return status;
	PQclear(res);
	return sessions_create(db, legacy->user_id, hash, client, out);
}

enum sessions_status
sessions_adopt_legacy(struct db *db, const struct legacy_session *legacy,
		      const unsigned char hash[32], const struct client *client,
		      struct session_row *out)
{
	enum sessions_status status;

	if (db_begin(db) != DB_OK)
		return SESSIONS_DB_ERROR;
	status = adopt(db, legacy, hash, client, out);
	if (status == SESSIONS_OK && db_commit(db) != DB_OK)
		status = SESSIONS_DB_ERROR;
	if (status != SESSIONS_OK)
		db_rollback(db);
	return status;
}

int
sessions_prune(struct db *db, int limit)
{
	char limit_text[24];
	const char *params[1] = {limit_text};

	snprintf(limit_text, sizeof(limit_text), "%d", limit);
	return (int)db_exec_count(db, &prune, params);
}
