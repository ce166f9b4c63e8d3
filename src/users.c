/*
 * SQL for the users table, parameterised and prepared once per connection.
 * Session checks are part of each WHERE clause (id AND generation), so a
 * revoked session finds no row, in the same round trip.
 */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_statement upsert = {
	"users_upsert",
	"INSERT INTO users (spotify_id, display_name, spotify_token, refresh_token,"
	"                   token_expires_at, scope, authorized_at)"
	" VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::int), $6, now())"
	" ON CONFLICT (spotify_id) DO UPDATE SET"
	"  display_name = EXCLUDED.display_name, spotify_token = EXCLUDED.spotify_token,"
	"  refresh_token = EXCLUDED.refresh_token, token_expires_at = "
	"EXCLUDED.token_expires_at,"
	"  scope = EXCLUDED.scope, authorized_at = EXCLUDED.authorized_at, updated_at = "
	"now()"
	" RETURNING id, session_generation",
	6,
};

static const struct db_statement profile = {
	"users_profile",
	"SELECT id, spotify_id, coalesce(display_name, ''),"
	"  coalesce(to_char(token_expires_at AT TIME ZONE 'UTC',"
	"                   'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
	" FROM users WHERE id = $1 AND session_generation = $2",
	2,
};

static const struct db_statement token = {
	"users_token",
	"SELECT coalesce(spotify_token, ''),"
	"  coalesce(floor(extract(epoch FROM token_expires_at))::bigint, 0)"
	" FROM users WHERE id = $1 AND session_generation = $2",
	2,
};

static const struct db_statement lock_token = {
	"users_lock_token",
	"SELECT coalesce(spotify_token, ''),"
	"  coalesce(floor(extract(epoch FROM token_expires_at))::bigint, 0),"
	"  coalesce(refresh_token, '')"
	" FROM users WHERE id = $1 AND session_generation = $2 FOR UPDATE",
	2,
};

static const struct db_statement store_refresh = {
	"users_store_refresh",
	"UPDATE users SET spotify_token = $2,"
	"  token_expires_at = now() + make_interval(secs => $3::int),"
	"  refresh_token = coalesce($4, refresh_token), updated_at = now()"
	" WHERE id = $1 RETURNING floor(extract(epoch FROM token_expires_at))::bigint",
	4,
};

static const struct db_statement clear_tokens = {
	"users_clear_tokens",
	"UPDATE users SET spotify_token = NULL, refresh_token = NULL,"
	"  token_expires_at = NULL, session_generation = session_generation + 1,"
	"  updated_at = now() WHERE id = $1",
	1,
};

static const struct db_statement bump_generation = {
	"users_bump_generation",
	"UPDATE users SET session_generation = session_generation + 1, updated_at = now()"
	" WHERE id = $1 AND session_generation = $2",
	2,
};

static const struct db_statement delete_user = {
	"users_delete",
	"DELETE FROM users WHERE id = $1 AND session_generation = $2",
	2,
};

/*
 * GET /me is the hot path; what it shows changes rarely. Each worker keeps
 * the profiles it served, keyed by user id and session generation, and
 * forgets one when PostgreSQL notifies that its row changed (the trigger of
 * sql/002). A connection lost means notifications lost: entries are only
 * trusted from the connection (epoch) they were read on, and never for
 * longer than PROFILE_TTL, whatever happens.
 */
#define PROFILE_SLOTS 1024
#define PROFILE_TTL 10

struct cached_profile {
	long long id; /* 0: empty */
	long long generation;
	unsigned long epoch;
	time_t fetched;
	struct user_profile profile;
};

static struct cached_profile profiles[PROFILE_SLOTS];

static struct cached_profile *
profile_slot(long long id)
{
	return &profiles[(unsigned long long)id % PROFILE_SLOTS];
}

static void
forget_profile(const char *payload, void *arg)
{
	long long id = strtoll(payload, NULL, 10);
	struct cached_profile *slot = profile_slot(id);

	if (slot->id == id)
		slot->id = 0;
}

int
users_take_notifications(struct db *db)
{
	return db_notifications(db, forget_profile, NULL);
}

/* Runs st; on success *res holds the result (PQclear it), else NULL. */
static enum users_status
run(struct db *db, const struct db_statement *st, const char *const *params,
    PGresult **res)
{
	return db_exec(db, st, params, res) == DB_OK ? USERS_OK : USERS_DB_ERROR;
}

static void
copy_value(const PGresult *res, int col, char *out, size_t size)
{
	snprintf(out, size, "%s", PQgetvalue(res, 0, col));
}

enum users_status
users_upsert(struct db *db, const struct spotify_user *who,
	     const struct spotify_tokens *tokens, long long *id, long long *generation)
{
	char expires_in[24];
	const char *params[6] = {who->id,
				 who->display_name[0] ? who->display_name : NULL,
				 tokens->access_token,
				 tokens->refresh_token,
				 expires_in,
				 tokens->scope};
	PGresult *res;

	snprintf(expires_in, sizeof(expires_in), "%ld", tokens->expires_in);
	if (run(db, &upsert, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*generation = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return USERS_OK;
}

static void
id_params(long long id, long long generation, char id_text[24], char gen_text[24])
{
	snprintf(id_text, 24, "%lld", id);
	snprintf(gen_text, 24, "%lld", generation);
}

enum users_status
users_profile(struct db *db, long long id, long long generation, struct user_profile *out)
{
	char id_text[24], gen_text[24];
	const char *params[2] = {id_text, gen_text};
	enum users_status status = USERS_NOT_FOUND;
	struct cached_profile *slot = profile_slot(id);
	int use_cache = db->cfg->profile_cache;
	time_t now = time(NULL);
	PGresult *res;

	if (use_cache && db_notifications(db, forget_profile, NULL) == 0 &&
	    slot->id == id && slot->generation == generation &&
	    slot->epoch == db->epoch && now - slot->fetched < PROFILE_TTL) {
		*out = slot->profile;
		return USERS_OK;
	}

	id_params(id, generation, id_text, gen_text);
	if (run(db, &profile, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	if (PQntuples(res) == 1) {
		out->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		copy_value(res, 1, out->spotify_id, sizeof(out->spotify_id));
		copy_value(res, 2, out->display_name, sizeof(out->display_name));
		copy_value(res, 3, out->token_expires_at, sizeof(out->token_expires_at));
		status = USERS_OK;
		if (use_cache && db->listening)
			*slot = (struct cached_profile){id, generation, db->epoch, now,
							*out};
	}
	PQclear(res);
	return status;
}

static enum users_status
read_token(struct db *db, const struct db_statement *st, long long id,
	   long long generation, struct user_token *out)
{
	char id_text[24], gen_text[24];
	const char *params[2] = {id_text, gen_text};
	enum users_status status = USERS_NOT_FOUND;
	PGresult *res;

	id_params(id, generation, id_text, gen_text);
	if (run(db, st, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	if (PQntuples(res) == 1) {
		copy_value(res, 0, out->access_token, sizeof(out->access_token));
		out->expires_at = (time_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		out->refresh_token[0] = '\0';
		if (PQnfields(res) > 2)
			copy_value(res, 2, out->refresh_token,
				   sizeof(out->refresh_token));
		status = USERS_OK;
	}
	PQclear(res);
	return status;
}

enum users_status
users_token(struct db *db, long long id, long long generation, struct user_token *out)
{
	return read_token(db, &token, id, generation, out);
}

enum users_status
users_lock_token(struct db *db, long long id, long long generation,
		 struct user_token *out)
{
	return read_token(db, &lock_token, id, generation, out);
}

enum users_status
users_store_refresh(struct db *db, long long id, const struct spotify_tokens *tokens,
		    time_t *expires_at)
{
	char id_text[24], expires_in[24];
	const char *params[4] = {id_text, tokens->access_token, expires_in,
				 tokens->refresh_token[0] ? tokens->refresh_token : NULL};
	PGresult *res;

	snprintf(id_text, sizeof(id_text), "%lld", id);
	snprintf(expires_in, sizeof(expires_in), "%ld", tokens->expires_in);
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

/* For statements whose only answer is how many rows they touched. */
static enum users_status
run_touching(struct db *db, const struct db_statement *st, const char *const *params)
{
	enum users_status status;
	PGresult *res;

	if (run(db, st, params, &res) != USERS_OK)
		return USERS_DB_ERROR;
	status = strcmp(PQcmdTuples(res), "0") == 0 ? USERS_NOT_FOUND : USERS_OK;
	PQclear(res);
	return status;
}

enum users_status
users_clear_tokens(struct db *db, long long id)
{
	char id_text[24];
	const char *params[1] = {id_text};

	snprintf(id_text, sizeof(id_text), "%lld", id);
	return run_touching(db, &clear_tokens, params);
}

/* A statement on one user's row, for the session holding generation. */
static enum users_status
touch_session_row(struct db *db, const struct db_statement *st, long long id,
		  long long generation)
{
	char id_text[24], gen_text[24];
	const char *params[2] = {id_text, gen_text};

	id_params(id, generation, id_text, gen_text);
	return run_touching(db, st, params);
}

enum users_status
users_bump_generation(struct db *db, long long id, long long generation)
{
	return touch_session_row(db, &bump_generation, id, generation);
}

enum users_status
users_delete(struct db *db, long long id, long long generation)
{
	return touch_session_row(db, &delete_user, id, generation);
}
