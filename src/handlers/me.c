/*
 * The logged-in user's own resources: profile, access token, deletion.
 * /me/token refreshes a token that is about to expire, under a row lock
 * so that concurrent requests for one user (from any worker of any
 * instance) cause exactly one refresh at Spotify.
 */
#include "handlers.h"

#include <string.h>
#include <time.h>

#include "../log.h"
#include "../session.h"
#include "../spotify.h"
#include "../users.h"

/* A token this close to expiry is refreshed before it is handed out. */
#define REFRESH_MARGIN 60

/* The caller's session, or a 401 already in res. */
static int
require_session(const struct request *req, struct response *res,
		struct user_session *session)
{
	if (auth_current_session(req, session) == 0)
		return 0;
	response_error(res, 401, "not logged in");
	return -1;
}

/* A session whose row is gone or whose generation moved on. */
static void
revoked(struct response *res)
{
	response_cookie(res, SESSION_COOKIE, "", 0);
	response_error(res, 401, "session expired or revoked: log in again");
}

void
me_profile(const struct request *req, struct response *res)
{
	struct user_session session;
	struct user_profile profile;
	char id[24];
	cJSON *json;

	if (require_session(req, res, &session) < 0)
		return;
	switch (users_profile(req->db, session.user_id, session.generation, &profile)) {
	case USERS_OK: break;
	case USERS_NOT_FOUND: revoked(res); return;
	case USERS_DB_ERROR: response_error(res, 503, "database unavailable"); return;
	}
	/* The id as raw digits: cJSON would format a double and read it back. */
	snprintf(id, sizeof(id), "%lld", profile.id);
	json = cJSON_CreateObject();
	if (json == NULL || !cJSON_AddRawToObject(json, "id", id) ||
	    !cJSON_AddStringToObject(json, "spotify_id", profile.spotify_id) ||
	    !(profile.display_name[0] ? cJSON_AddStringToObject(json, "display_name",
								profile.display_name)
				      : cJSON_AddNullToObject(json, "display_name")) ||
	    !(profile.token_expires_at[0]
		      ? cJSON_AddStringToObject(json, "token_expires_at",
						profile.token_expires_at)
		      : cJSON_AddNullToObject(json, "token_expires_at")))
		res->overflow = 1;
	else
		response_json(res, 200, json);
	cJSON_Delete(json);
}

static void
token_body(struct response *res, const char *access_token, time_t expires_at)
{
	char when[32];
	struct tm tm;
	time_t now = time(NULL);
	cJSON *json = cJSON_CreateObject();

	gmtime_r(&expires_at, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (json == NULL ||
	    !cJSON_AddStringToObject(json, "access_token", access_token) ||
	    !cJSON_AddStringToObject(json, "token_type", "Bearer") ||
	    !cJSON_AddStringToObject(json, "expires_at", when) ||
	    !cJSON_AddNumberToObject(json, "expires_in",
				     (double)(expires_at > now ? expires_at - now : 0)))
		res->overflow = 1;
	else
		response_json(res, 200, json);
	cJSON_Delete(json);
}

static void
logged_out_by_spotify(struct response *res)
{
	response_cookie(res, SESSION_COOKIE, "", 0);
	response_error(res, 401, "Spotify authorization expired: log in again");
}

/*
 * The slow path: lock the row, look again (another worker may have just
 * refreshed), and only then call Spotify. The lock is held during the
 * call, which BAA_SPOTIFY_TIMEOUT_MS bounds below the statement timeout.
 */
static void
refresh_and_answer(const struct request *req, struct response *res,
		   const struct user_session *session)
{
	static struct user_token current;
	static struct spotify_tokens fresh;
	struct spotify_outcome outcome;
	time_t expires_at;

	if (db_begin(req->db) != DB_OK) {
		response_error(res, 503, "database unavailable");
		return;
	}
	switch (users_lock_token(req->db, session->user_id, session->generation,
				 &current)) {
	case USERS_OK: break;
	case USERS_NOT_FOUND:
		db_rollback(req->db);
		revoked(res);
		goto out;
	case USERS_DB_ERROR:
		db_rollback(req->db);
		response_error(res, 503, "database unavailable");
		goto out;
	}
	if (current.access_token[0] == '\0' || current.refresh_token[0] == '\0') {
		db_rollback(req->db);
		logged_out_by_spotify(res);
		goto out;
	}
	if (current.expires_at - time(NULL) > REFRESH_MARGIN) {
		db_rollback(req->db); /* someone refreshed while we waited */
		token_body(res, current.access_token, current.expires_at);
		goto out;
	}

	outcome = spotify_refresh(current.refresh_token, &fresh);
	switch (outcome.status) {
	case SPOTIFY_OK:
		if (users_store_refresh(req->db, session->user_id, &fresh, &expires_at) !=
			    USERS_OK ||
		    db_commit(req->db) != DB_OK) {
			db_rollback(req->db);
			response_error(res, 503, "database unavailable");
			goto out;
		}
		log_event(LOG_INFO, "token_refreshed",
			  LOG_INT("user_id", session->user_id),
			  LOG_INT("rotated", fresh.refresh_token[0] != '\0'));
		token_body(res, fresh.access_token, expires_at);
		break;
	case SPOTIFY_INVALID_GRANT:
		/* Dead for good (revoked, or past six months): forget the tokens. */
		if (users_clear_tokens(req->db, session->user_id) == USERS_DB_ERROR ||
		    db_commit(req->db) != DB_OK) {
			db_rollback(req->db);
			response_error(res, 503, "database unavailable");
			goto out;
		}
		log_event(LOG_INFO, "tokens_cleared",
			  LOG_INT("user_id", session->user_id));
		logged_out_by_spotify(res);
		break;
	default:
		db_rollback(req->db);
		auth_spotify_failed(res, outcome, "Spotify token refresh failed");
		break;
	}
out:
	memset(&current, 0, sizeof(current));
	memset(&fresh, 0, sizeof(fresh));
}

void
me_token(const struct request *req, struct response *res)
{
	static struct user_token stored;
	struct user_session session;

	if (require_session(req, res, &session) < 0)
		return;
	switch (users_token(req->db, session.user_id, session.generation, &stored)) {
	case USERS_OK: break;
	case USERS_NOT_FOUND: revoked(res); return;
	case USERS_DB_ERROR: response_error(res, 503, "database unavailable"); return;
	}
	if (stored.access_token[0] == '\0')
		logged_out_by_spotify(res);
	else if (stored.expires_at - time(NULL) > REFRESH_MARGIN)
		token_body(res, stored.access_token, stored.expires_at);
	else
		refresh_and_answer(req, res, &session);
	memset(&stored, 0, sizeof(stored));
}

void
me_delete(const struct request *req, struct response *res)
{
	struct user_session session;

	if (require_session(req, res, &session) < 0)
		return;
	switch (users_delete(req->db, session.user_id, session.generation)) {
	case USERS_OK:
		log_event(LOG_INFO, "user_deleted", LOG_INT("user_id", session.user_id));
		response_cookie(res, SESSION_COOKIE, "", 0);
		response_json_string(res, 200, "status", "deleted");
		break;
	case USERS_NOT_FOUND: revoked(res); break;
	case USERS_DB_ERROR: response_error(res, 503, "database unavailable"); break;
	}
}
