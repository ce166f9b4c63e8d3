/*
 * SQL for the users table, parameterised and prepared once per connection,
 * and the worker's cache of the profiles GET /me shows. The caller has
 * checked the session (sessions.c) before it asks for a user's row.
 */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "clock.h"
#include "log.h"
#include "profile_cache.h"
#include "scopes.h"
#include "tokenbox.h"

/* A token as stored: sealed, so longer than Spotify's own bound. */
#define SEALED_MAX TOKENBOX_SEALED_LEN(SPOTIFY_TOKEN_MAX)

/*
 * The rows a login could belong to, locked until the login commits: the one
 * holding the profile's account_id ($2, NULL when it has none) and the one
 * holding its id. At most two; see identity.c for what is done with them.
 * A detached row is found again by its account_id only, never by the
 * placeholder it holds as spotify_id.
 */
static const struct db_statement find_identity = {
	"users_find_identity",
	"SELECT id, coalesce(account_id, ''), account_id = $2, spotify_id = $1"
	" FROM users WHERE (spotify_id = $1 AND spotify_id NOT LIKE 'detached:%')"
	"  OR account_id = $2 ORDER BY id FOR UPDATE",
	2,
};

/* ':' never occurs in a Spotify id (spotify:user:<id>), so no id collides. */
static const struct db_statement detach_identity = {
	"users_detach_identity",
	"UPDATE users SET spotify_id = 'detached:' || id, updated_at = now()"
	" WHERE id = $1",
	1,
};

/* A login restarts the six-month grant and ends any doubt about the old one. */
static const struct db_statement login_update = {
	"users_login_update",
	"UPDATE users SET spotify_id = $2, account_id = coalesce($3, account_id),"
	"  display_name = $4, token_expires_at = now() + make_interval(secs => $5::int),"
	"  scope = $6, scope_requested = $7, authorized_at = now(), needs_reauth_at = NULL,"
	"  updated_at = now()"
	" WHERE id = $1 RETURNING id",
	7,
};

/* The row first: its id is part of what the sealed tokens are bound to. */
static const struct db_statement login_insert = {
	"users_login_insert",
	"INSERT INTO users (spotify_id, account_id, display_name, token_expires_at, scope,"
	"                   scope_requested, authorized_at)"
	" VALUES ($1, $2, $3, now() + make_interval(secs => $4::int), $5, $6, now())"
	" RETURNING id",
	6,
};

static const struct db_statement store_tokens = {
	"users_store_tokens",
	"UPDATE users SET spotify_token = $2, refresh_token = $3 WHERE id = $1",
	3,
};

/* Key rotation walks the table in id order, a locked batch at a time. */
static const struct db_statement lock_batch = {
	"users_lock_batch",
	"SELECT id, spotify_token, refresh_token FROM users WHERE id > $1"
	" ORDER BY id LIMIT $2 FOR UPDATE",
	2,
};

#define EPOCH_OR_0(column) "coalesce(floor(extract(epoch FROM " column "))::bigint, 0)"

/*
 * Columns 0-5 of both: what read_token takes in. clang-format would take
 * EPOCH_OR_0 for a call, not the string literal it is, and scatter the SQL.
 */
/* clang-format off */
static const struct db_statement token = {
	"users_token",
	"SELECT coalesce(spotify_token, ''), " EPOCH_OR_0("token_expires_at") ","
	"  " EPOCH_OR_0("authorized_at") ", " EPOCH_OR_0("needs_reauth_at") ","
	"  coalesce(scope, ''), scope_requested"
	" FROM users WHERE id = $1",
	1,
};

static const struct db_statement find_by_spotify_id = {
	"users_find_by_spotify_id",
	"SELECT id FROM users WHERE spotify_id = $1"
	"  AND spotify_id NOT LIKE 'detached:%'",
	1,
};

static const struct db_statement find_by_account_id = {
	"users_find_by_account_id",
	"SELECT id FROM users WHERE account_id = $1",
	1,
};

static const struct db_statement grant = {
	"users_grant",
	"SELECT " USERS_PROFILE_COLUMNS " FROM users u WHERE u.id = $1",
	1,
};

static const struct db_statement lock_token = {
	"users_lock_token",
	"SELECT coalesce(spotify_token, ''), " EPOCH_OR_0("token_expires_at") ","
	"  " EPOCH_OR_0("authorized_at") ", " EPOCH_OR_0("needs_reauth_at") ","
	"  coalesce(scope, ''), scope_requested, coalesce(refresh_token, '')"
	" FROM users WHERE id = $1 FOR UPDATE",
	1,
};
/* clang-format on */

static const struct db_statement store_refresh = {
	"users_store_refresh",
	"UPDATE users SET spotify_token = $2,"
	"  token_expires_at = now() + make_interval(secs => $3::int),"
	"  refresh_token = coalesce($4, refresh_token), needs_reauth_at = NULL,"
	"  scope = coalesce($5, scope), updated_at = now()"
	" WHERE id = $1 RETURNING floor(extract(epoch FROM token_expires_at))::bigint",
	5,
};

/* The first invalid_grant counts; a second one during the wait does not move it. */
static const struct db_statement mark_reauth = {
	"users_mark_reauth",
	"UPDATE users SET needs_reauth_at = coalesce(needs_reauth_at, now()),"
	"  updated_at = now() WHERE id = $1",
	1,
};

/* The sessions are left alone: they stay valid. */
static const struct db_statement clear_tokens = {
	"users_clear_tokens",
	"UPDATE users SET spotify_token = NULL, refresh_token = NULL,"
	"  token_expires_at = NULL, needs_reauth_at = coalesce(needs_reauth_at, now()),"
	"  updated_at = now() WHERE id = $1",
	1,
};

static const struct db_statement bump_generation = {
	"users_bump_generation",
	"UPDATE users SET session_generation = session_generation + 1 WHERE id = $1",
	1,
};

static const struct db_statement delete_user = {
	"users_delete",
	"DELETE FROM users WHERE id = $1",
	1,
};

/*
 * GET /me is the hot path; what it shows changes rarely. Each worker keeps
 * the profiles it served, keyed by user id (profile_cache.h: 16384 users),
 * and forgets one when PostgreSQL notifies that its row changed (the
 * trigger of sql/002). A connection lost means notifications lost: entries
 * are only trusted from the connection (epoch) they were read on, and
 * never for longer than PROFILE_CACHE_TTL_MS, whatever happens: measured
 * on the monotonic clock, which a step of the wall clock (NTP, an
 * operator's `date`) can neither stretch nor cut short.
 */
static void
forget_profile(const char *payload, void *arg)
{
	(void)arg;
	profile_cache_forget(strtoll(payload, NULL, 10));
}

/* The channel of the users trigger (sql/002_user_changed_notify.sql). */
#define USER_CHANGED_CHANNEL "baa_user_changed"

int
users_attach(struct db *db)
{
	if (!db->cfg->profile_cache)
		return 0;
	return db_subscribe(db, USER_CHANGED_CHANNEL, forget_profile, NULL);
}

/* Runs st; on success *res holds the result (PQclear it), else NULL. */
static enum users_status
run(struct db *db, const struct db_statement *st, const char *const *params,
    PGresult **res)
{
	return db_exec(db, st, params, res) == DB_OK ? USERS_OK : USERS_DB_ERROR;
}

/* A column's text, cut to size; without snprintf, since every profile
 * read copies four of them. */
static void
copy_cell(const PGresult *res, int row, int col, char *out, size_t size)
{
	size_t n = (size_t)PQgetlength(res, row, col);

	n = n < size ? n : size - 1;
	memcpy(out, PQgetvalue(res, row, col), n);
	out[n] = '\0';
}

static void
copy_value(const PGresult *res, int col, char *out, size_t size)
{
	copy_cell(res, 0, col, out, size);
}

/* For statements whose only answer is how many rows they touched. */
static enum users_status
run_touching(struct db *db, const struct db_statement *st, const char *const *params)
{
	long long n = db_exec_count(db, st, params);

	return n < 0 ? USERS_DB_ERROR : n == 0 ? USERS_NOT_FOUND : USERS_OK;
}

static enum users_status
touch_row(struct db *db, const struct db_statement *st, long long id)
{
	char id_text[24];
	const char *params[1] = {id_text};

	snprintf(id_text, sizeof(id_text), "%lld", id);
	return run_touching(db, st, params);
}

static const char *
role_name(enum tokenbox_role role)
{
	return role == TOKENBOX_ACCESS ? "access" : "refresh";
}

/* Seals a token for the row's column; "" stays NULL (no token). */
static int
seal_token(const char *value, long long id, enum tokenbox_role role,
	   char sealed[SEALED_MAX + 1], const char **param)
{
	enum tokenbox_status status;

	*param = NULL;
	if (value[0] == '\0')
		return 0;
	status = tokenbox_seal(value, id, role, sealed, SEALED_MAX + 1);
	if (status != TOKENBOX_OK) {
		log_event(LOG_ERROR, "token_seal_failed", LOG_INT("user_id", id),
			  LOG_STR("column", role_name(role)),
			  LOG_STR("reason", tokenbox_status_name(status)));
		return -1;
	}
	*param = sealed;
	return 0;
}

/*
 * The stored value of a column opened into out; "" when there is none or
 * it does not open (sealed for another row, under a key no longer
 * configured, altered): the user has no usable token and logs in again.
 */
static void
open_token(const char *stored, long long id, enum tokenbox_role role, char *out,
	   size_t size)
{
	enum tokenbox_status status;

	out[0] = '\0';
	if (stored[0] == '\0')
		return;
	status = tokenbox_open(stored, id, role, out, size);
	if (status != TOKENBOX_OK)
		log_event(LOG_WARN, "token_unreadable", LOG_INT("user_id", id),
			  LOG_STR("column", role_name(role)),
			  LOG_STR("reason", tokenbox_status_name(status)));
}

/* How the row found by spotify_id stands to the login's account_id. */
static enum identity_account
account_of_row(int same_account, const char *row_account_id)
{
	if (same_account)
		return IDENTITY_ACCOUNT_SAME;
	return row_account_id[0] ? IDENTITY_ACCOUNT_OTHER : IDENTITY_ACCOUNT_NONE;
}

/* The candidate rows of a login, as identity_plan wants them. */
static enum users_status
find_identity_rows(struct db *db, const struct spotify_user *who,
		   struct identity_rows *rows)
{
	const char *params[2] = {who->id, who->account_id[0] ? who->account_id : NULL};
	PGresult *res;

	*rows = (struct identity_rows){.profile_has_account = who->account_id[0] != '\0'};
	if (run(db, &find_identity, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	for (int i = 0; i < PQntuples(res); i++) {
		long long id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		int same_account = strcmp(PQgetvalue(res, i, 2), "t") == 0;

		if (same_account)
			rows->by_account = id;
		if (strcmp(PQgetvalue(res, i, 3), "t") == 0) {
			rows->by_spotify_id = id;
			rows->spotify_row_account =
				account_of_row(same_account, PQgetvalue(res, i, 1));
		}
	}
	PQclear(res);
	return USERS_OK;
}

/* Inside the login's transaction: the row, found or made, holds the profile. */
static enum users_status
store_identity(struct db *db, const struct spotify_user *who,
	       const struct spotify_tokens *tokens, const char *asked, long long *id,
	       enum identity_match *match)
{
	char expires_in[24], user_text[24];
	const char *account = who->account_id[0] ? who->account_id : NULL;
	const char *name = who->display_name[0] ? who->display_name : NULL;
	const char *update_params[7] = {user_text,  who->id,	   account, name,
					expires_in, tokens->scope, asked};
	const char *insert_params[6] = {who->id,    account,	   name,
					expires_in, tokens->scope, asked};
	struct identity_rows rows;
	struct identity_plan plan;
	PGresult *res;

	if (find_identity_rows(db, who, &rows) != USERS_OK)
		return USERS_DB_ERROR;
	plan = identity_plan(&rows);
	if (plan.detach) {
		if (touch_row(db, &detach_identity, plan.detach) != USERS_OK)
			return USERS_DB_ERROR;
		log_event(LOG_WARN, "identity_detached", LOG_INT("user_id", plan.detach),
			  LOG_STR("reason", "spotify_id_now_another_account"));
	}
	snprintf(expires_in, sizeof(expires_in), "%ld", tokens->expires_in);
	snprintf(user_text, sizeof(user_text), "%lld", plan.user);
	if (run(db, plan.user ? &login_update : &login_insert,
		plan.user ? update_params : insert_params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return USERS_DB_ERROR;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*match = plan.match;
	PQclear(res);
	return USERS_OK;
}

/* The tokens, sealed for the row's id, into the row. */
static enum users_status
store_login_tokens(struct db *db, long long id, const struct spotify_tokens *tokens)
{
	static char access[SEALED_MAX + 1], refresh[SEALED_MAX + 1];
	char id_text[24];
	const char *params[3] = {id_text};
	PGresult *res;

	snprintf(id_text, sizeof(id_text), "%lld", id);
	if (seal_token(tokens->access_token, id, TOKENBOX_ACCESS, access, &params[1]) < 0)
		return USERS_DB_ERROR;
	if (seal_token(tokens->refresh_token, id, TOKENBOX_REFRESH, refresh, &params[2]) <
	    0)
		return USERS_DB_ERROR;
	if (run(db, &store_tokens, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	PQclear(res);
	return USERS_OK;
}

enum users_status
users_store_login(struct db *db, const struct spotify_user *who,
		  const struct spotify_tokens *tokens, const char *asked, long long *id,
		  enum identity_match *match)
{
	if (store_identity(db, who, tokens, asked, id, match) != USERS_OK ||
	    store_login_tokens(db, *id, tokens) != USERS_OK)
		return USERS_DB_ERROR;
	return USERS_OK;
}

static void
describe_grant(struct user_profile *p, int grant_lifetime)
{
	p->authorized_at_text[0] = p->reauth_due_at_text[0] = '\0';
	p->reauth_due_at = 0;
	if (p->authorized_at == 0)
		return;
	p->reauth_due_at = p->authorized_at + grant_lifetime;
	clock_iso8601(p->authorized_at, p->authorized_at_text);
	clock_iso8601(p->reauth_due_at, p->reauth_due_at_text);
}

void
users_profile_read(const struct db *db, const PGresult *res, int row, int first,
		   struct user_profile *out)
{
	out->id = strtoll(PQgetvalue(res, row, first), NULL, 10);
	copy_cell(res, row, first + 1, out->spotify_id, sizeof(out->spotify_id));
	copy_cell(res, row, first + 2, out->display_name, sizeof(out->display_name));
	/* Seconds, formatted here: to_char in the query cost PostgreSQL more
	 * than the C does, on every read of a profile. */
	if (PQgetisnull(res, row, first + 3))
		out->token_expires_at[0] = '\0';
	else
		clock_iso8601((time_t)strtoll(PQgetvalue(res, row, first + 3), NULL, 10),
			      out->token_expires_at);
	copy_cell(res, row, first + 4, out->account_id, sizeof(out->account_id));
	out->authorized_at = (time_t)strtoll(PQgetvalue(res, row, first + 5), NULL, 10);
	out->needs_reauth = strcmp(PQgetvalue(res, row, first + 6), "t") == 0;
	out->has_scope = strcmp(PQgetvalue(res, row, first + 7), "t") == 0;
	copy_cell(res, row, first + 8, out->scope, sizeof(out->scope));
	/* SPOTIFY_SCOPES grew since this grant (and its login): the user is
	 * asked to log in again, and that login asks for the configured scopes. */
	out->scope_short = scopes_worth_asking(
		out->has_scope ? out->scope : NULL,
		PQgetisnull(res, row, first + 9) ? NULL : PQgetvalue(res, row, first + 9),
		db->cfg->spotify_scopes);
	describe_grant(out, db->cfg->grant_lifetime);
}

int
users_profile_cached(struct db *db, long long id, struct user_profile *out)
{
	if (!db->cfg->profile_cache || !db->listening)
		return 0;
	return profile_cache_get(id, db->epoch, clock_now_ms(), out);
}

int
users_profile_is_cached(struct db *db, long long id)
{
	return db->cfg->profile_cache && db->listening &&
	       profile_cache_has(id, db->epoch, clock_now_ms());
}

/* A profile that does not fit the cache is read from the database each time. */
void
users_profile_remember(struct db *db, const struct user_profile *profile)
{
	if (db->cfg->profile_cache && db->listening)
		(void)profile_cache_put(profile, db->epoch, clock_now_ms());
}

static enum users_status
read_token(struct db *db, const struct db_statement *st, long long id,
	   struct user_token *out)
{
	char id_text[24];
	const char *params[1] = {id_text};
	enum users_status status = USERS_NOT_FOUND;
	PGresult *res;

	snprintf(id_text, sizeof(id_text), "%lld", id);
	if (run(db, st, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	if (PQntuples(res) == 1) {
		open_token(PQgetvalue(res, 0, 0), id, TOKENBOX_ACCESS, out->access_token,
			   sizeof(out->access_token));
		out->expires_at = (time_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		out->authorized_at = (time_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		out->needs_reauth_at = (time_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		copy_value(res, 4, out->scope, sizeof(out->scope));
		out->has_scope_requested = !PQgetisnull(res, 0, 5);
		copy_value(res, 5, out->scope_requested, sizeof(out->scope_requested));
		out->refresh_token[0] = '\0';
		if (PQnfields(res) > 6)
			open_token(PQgetvalue(res, 0, 6), id, TOKENBOX_REFRESH,
				   out->refresh_token, sizeof(out->refresh_token));
		status = USERS_OK;
	}
	PQclear(res);
	return status;
}

enum users_status
users_find(struct db *db, enum users_lookup by, const char *value, long long *id)
{
	const char *params[1] = {value};
	enum users_status status = USERS_NOT_FOUND;
	PGresult *res;

	if (run(db, by == USERS_BY_SPOTIFY_ID ? &find_by_spotify_id : &find_by_account_id,
		params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	if (PQntuples(res) == 1) {
		*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		status = USERS_OK;
	}
	PQclear(res);
	return status;
}

enum users_status
users_grant(struct db *db, long long id, struct user_profile *out)
{
	char id_text[24];
	const char *params[1] = {id_text};
	enum users_status status = USERS_NOT_FOUND;
	PGresult *res;

	snprintf(id_text, sizeof(id_text), "%lld", id);
	if (run(db, &grant, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	if (PQntuples(res) == 1) {
		users_profile_read(db, res, 0, 0, out);
		status = USERS_OK;
	}
	PQclear(res);
	return status;
}

enum users_status
users_token(struct db *db, long long id, struct user_token *out)
{
	return read_token(db, &token, id, out);
}

enum users_status
users_lock_token(struct db *db, long long id, struct user_token *out)
{
	return read_token(db, &lock_token, id, out);
}

enum users_status
users_store_refresh(struct db *db, long long id, const struct spotify_tokens *tokens,
		    time_t *expires_at)
{
	static char access[SEALED_MAX + 1], refresh[SEALED_MAX + 1];
	char id_text[24], expires_in[24];
	/* An answer without scope (NULL) keeps the grant stored; one with it
	 * says what the grant is now, narrower if Spotify dropped a scope. */
	const char *params[5] = {id_text, NULL, expires_in, NULL,
				 tokens->has_scope ? tokens->scope : NULL};
	PGresult *res;

	snprintf(id_text, sizeof(id_text), "%lld", id);
	snprintf(expires_in, sizeof(expires_in), "%ld", tokens->expires_in);
	/* No new refresh token (NULL): the stored one is kept as it is. */
	if (seal_token(tokens->access_token, id, TOKENBOX_ACCESS, access, &params[1]) <
		    0 ||
	    seal_token(tokens->refresh_token, id, TOKENBOX_REFRESH, refresh, &params[3]) <
		    0)
		return USERS_DB_ERROR;
	if (run(db, &store_refresh, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return USERS_NOT_FOUND;
	}
	*expires_at = (time_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return USERS_OK;
}

enum users_status
users_mark_reauth(struct db *db, long long id)
{
	return touch_row(db, &mark_reauth, id);
}

enum users_status
users_clear_tokens(struct db *db, long long id)
{
	return touch_row(db, &clear_tokens, id);
}

enum users_status
users_end_legacy_cookies(struct db *db, long long id)
{
	return touch_row(db, &bump_generation, id);
}

enum users_status
users_delete(struct db *db, long long id)
{
	return touch_row(db, &delete_user, id);
}

/*
 * One column of a locked row, sealed again under the current key when it
 * is not already: *param is what to store (the value as it was, or new).
 * Returns 1 when resealed, 0 when left as it was (none, or already under
 * the current key), -1 when it does not open.
 */
static int
reseal_column(const PGresult *res, int row, int col, long long id,
	      enum tokenbox_role role, char sealed[SEALED_MAX + 1], const char **param)
{
	static char plain[SPOTIFY_TOKEN_MAX + 1];
	const char *stored = PQgetvalue(res, row, col);
	enum tokenbox_status status;
	int rc = -1;

	*param = PQgetisnull(res, row, col) ? NULL : stored;
	if (stored[0] == '\0')
		return 0;
	/* Opened even under the current key: the count of what does not open
	 * is then the count of every token that is lost. */
	status = tokenbox_open(stored, id, role, plain, sizeof(plain));
	/* Stored before tokens were encrypted: sealed as it is. */
	if (status == TOKENBOX_PLAINTEXT && strlen(stored) <= SPOTIFY_TOKEN_MAX) {
		snprintf(plain, sizeof(plain), "%s", stored);
		status = TOKENBOX_OK;
	}
	if (status != TOKENBOX_OK)
		log_event(LOG_WARN, "token_unreadable", LOG_INT("user_id", id),
			  LOG_STR("column", role_name(role)),
			  LOG_STR("reason", tokenbox_status_name(status)));
	else if (tokenbox_is_current(stored))
		rc = 0;
	else if (seal_token(plain, id, role, sealed, param) == 0)
		rc = 1;
	OPENSSL_cleanse(plain, sizeof(plain));
	return rc;
}

int
users_reseal_batch(struct db *db, long long *after, int limit,
		   struct users_reseal_counts *counts)
{
	static char access[SEALED_MAX + 1], refresh[SEALED_MAX + 1];
	char after_text[24], limit_text[24], id_text[24];
	const char *params[2] = {after_text, limit_text};
	const char *row_params[3] = {id_text};
	PGresult *res, *done;
	int rows, rc = 0;

	snprintf(after_text, sizeof(after_text), "%lld", *after);
	snprintf(limit_text, sizeof(limit_text), "%d", limit);
	if (run(db, &lock_batch, params, &res) != USERS_OK)
		return -1;
	rows = PQntuples(res);
	for (int i = 0; i < rows && rc == 0; i++) {
		long long id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		int a = reseal_column(res, i, 1, id, TOKENBOX_ACCESS, access,
				      &row_params[1]);
		int r = reseal_column(res, i, 2, id, TOKENBOX_REFRESH, refresh,
				      &row_params[2]);

		*after = id;
		counts->users++;
		if (a < 0 || r < 0) {
			/* Left as it is: the key it needs may yet be configured. */
			counts->unreadable += (a < 0) + (r < 0);
			continue;
		}
		if (a + r == 0)
			continue;
		snprintf(id_text, sizeof(id_text), "%lld", id);
		if (run(db, &store_tokens, row_params, &done) != USERS_OK)
			rc = -1;
		else
			PQclear(done);
		/* In the batch's transaction, with the tokens it records. */
		if (rc == 0 && audit_record(db, AUDIT_KEY_ROTATED, id, 0, NULL) != DB_OK)
			rc = -1;
		counts->resealed += a + r;
	}
	PQclear(res);
	return rc < 0 ? -1 : rows;
}
