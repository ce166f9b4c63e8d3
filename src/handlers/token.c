/*
 * A user's Spotify access token, as GET /me/token (the user's browser)
 * and GET /internal/users/{id}/token (a backend service) both answer it:
 * one path, so that every caller gets the same answers and concurrent
 * calls for one user, whoever makes them, cause one refresh. A token about
 * to expire is refreshed under a row lock (SELECT ... FOR UPDATE), so
 * that requests from any worker of any instance wait for the one refresh
 * at Spotify. A refresh answered invalid_grant flags the user
 * (needs_reauth) and is tried once more only after
 * BAA_INVALID_GRANT_CONFIRM; the sessions survive both, so that the page
 * can offer the renewal.
 */
#include "handlers.h"

#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "../audit.h"
#include "../clock.h"
#include "../log.h"
#include "../scopes.h"
#include "../spotify.h"
#include "../users.h"

/* A token this close to expiry is refreshed before it is handed out. */
#define REFRESH_MARGIN 60

/*
 * The six-month grant: Spotify's refresh token dies grant_lifetime after
 * the authorization (a login), whatever refreshes happen in between. The
 * user is asked to renew within reauth_window of that, or at once when
 * Spotify has already answered invalid_grant.
 */
int
token_reauth_recommended(const struct config *cfg, time_t due_at, int needs_reauth)
{
	return needs_reauth || (due_at != 0 && time(NULL) >= due_at - cfg->reauth_window);
}

static void
token_body(const struct request *req, struct response *res, const char *access_token,
	   time_t expires_at, const struct user_token *row)
{
	char when[32], due_at[32] = "", expires_in[24];
	time_t now = time(NULL);
	time_t due =
		row->authorized_at ? row->authorized_at + req->cfg->grant_lifetime : 0;

	clock_iso8601(expires_at, when);
	if (due)
		clock_iso8601(due, due_at);
	snprintf(expires_in, sizeof(expires_in), "%lld",
		 (long long)(expires_at > now ? expires_at - now : 0));
	response_object_begin(res, 200);
	response_member_string(res, "access_token", access_token, 0);
	response_member_string(res, "token_type", "Bearer", 0);
	response_member_string(res, "expires_at", when, 0);
	response_member_raw(res, "expires_in", expires_in);
	response_member_string(res, "reauth_due_at", due_at, 1);
	/* SPOTIFY_SCOPES grew since this grant: the next login asks for the rest. */
	response_member_bool(res, "reauth_recommended",
			     token_reauth_recommended(req->cfg, due, 0) ||
				     scopes_worth_asking(row->scope,
							 row->has_scope_requested
								 ? row->scope_requested
								 : NULL,
							 req->cfg->spotify_scopes));
	response_object_end(res);
}

/*
 * Spotify no longer honours the grant, or baa waits to be sure it does not
 * (BAA_INVALID_GRANT_CONFIRM). The session cookie stays: the user is still
 * who they were, and the page offers them the renewal.
 */
static void
reauth_required(struct response *res)
{
	response_object_begin(res, 401);
	response_member_string(res, "error", "reauth_required", 0);
	response_member_string(
		res, "message",
		"Spotify no longer accepts baa's access to your account (the grant "
		"expired or was revoked). Log in with Spotify again to renew it.",
		0);
	response_member_string(res, "login", "/login?next=%2F", 0);
	response_object_end(res);
}

/* Whether an invalid_grant is still waiting for its confirmation. */
static int
confirming(const struct request *req, const struct user_token *row)
{
	return row->needs_reauth_at != 0 &&
	       time(NULL) < row->needs_reauth_at + req->cfg->invalid_grant_confirm;
}

/* What a stored token row calls for. */
enum token_next {
	TOKEN_REAUTH,  /* flagged by invalid_grant: renew the grant */
	TOKEN_GONE,    /* no usable token: log in again */
	TOKEN_SERVE,   /* hand the stored token out */
	TOKEN_REFRESH, /* refresh first (about to expire, or the confirmation) */
};

/*
 * usable: the row's tokens opened (the caller knows which it read). A
 * flagged row is refreshed whatever its expiry, once the confirmation is
 * due: that refresh is the confirmation.
 */
static enum token_next
token_next(const struct request *req, const struct user_token *row, int usable)
{
	if (row->needs_reauth_at && (confirming(req, row) || !usable))
		return TOKEN_REAUTH;
	if (!usable)
		return TOKEN_GONE;
	if (!row->needs_reauth_at && row->expires_at - time(NULL) > REFRESH_MARGIN)
		return TOKEN_SERVE;
	return TOKEN_REFRESH;
}

/*
 * No usable token, and no invalid_grant behind it: a stored token that
 * does not decrypt (README, "Tokens at rest"). The user logs in again; a
 * browser's session cookie goes, a service is told the same.
 */
static void
logged_out_by_spotify(const struct request *req, struct response *res,
		      const struct token_caller *who)
{
	if (who->browser)
		current_clear_cookies(req, res);
	response_error(res, 401, "Spotify authorization expired: log in again");
}

/*
 * The user's row is gone (deleted since the session was checked, or a
 * service named a user who is not there).
 */
static void
user_gone(const struct request *req, struct response *res, const struct token_caller *who)
{
	if (who->browser)
		current_refuse_gone(req, res);
	else
		response_problem(res, 404, "user_not_found", "baa has no such user.");
}

/*
 * An audit event of this caller, in the refresh's transaction: the
 * session's, or, for a service, the user's without a session.
 */
static enum db_status
record(const struct request *req, const struct token_caller *who, enum audit_event event)
{
	struct client client;

	client_of(req, &client);
	return audit_record(req->db, event, who->user_id, who->session_id, &client);
}

/*
 * The first invalid_grant: Spotify has said so during incidents, so the
 * tokens are kept and the user flagged; a refresh after
 * BAA_INVALID_GRANT_CONFIRM that gets it again forgets them. Either way
 * the sessions stay valid. Called with the row locked; commits.
 */
static void
grant_refused(const struct request *req, struct response *res,
	      const struct token_caller *who, const struct user_token *row)
{
	long long user_id = who->user_id;
	int confirmed = row->needs_reauth_at != 0;
	enum users_status status = confirmed ? users_clear_tokens(req->db, user_id)
					     : users_mark_reauth(req->db, user_id);

	if (status == USERS_DB_ERROR ||
	    record(req, who, AUDIT_REAUTH_REQUIRED) != DB_OK ||
	    db_commit(req->db) != DB_OK) {
		db_rollback(req->db);
		response_database_unavailable(res);
		return;
	}
	log_event(LOG_INFO, confirmed ? "tokens_cleared" : "reauth_needed",
		  LOG_INT("user_id", user_id));
	reauth_required(res);
}

/*
 * A refresh Spotify failed or refused: recorded (the transaction writes
 * nothing else), then answered. A refresh not sent because calls are
 * paused is not an event of this user's.
 */
static void
refresh_failed(const struct request *req, struct response *res,
	       const struct token_caller *who, struct spotify_outcome outcome)
{
	int limited = outcome.status == SPOTIFY_RATE_LIMITED ||
		      outcome.status == SPOTIFY_QUOTA_EXCEEDED;

	if (outcome.paused ||
	    record(req, who, limited ? AUDIT_RATE_LIMITED : AUDIT_REFRESH_FAILED) !=
		    DB_OK ||
	    db_commit(req->db) != DB_OK)
		db_rollback(req->db);
	auth_spotify_failed(res, outcome, "Spotify token refresh failed");
}

/*
 * The slow path: lock the row, look again (another worker may have just
 * refreshed, or just met invalid_grant), and only then call Spotify. The
 * lock is held during the call, which BAA_SPOTIFY_TIMEOUT_MS bounds below
 * the statement timeout.
 */
static void
refresh_and_answer(const struct request *req, struct response *res,
		   const struct token_caller *who)
{
	static struct user_token current;
	static struct spotify_tokens fresh;
	struct spotify_outcome outcome;
	time_t expires_at;

	if (db_begin(req->db) != DB_OK) {
		response_database_unavailable(res);
		return;
	}
	switch (users_lock_token(req->db, who->user_id, &current)) {
	case USERS_OK: break;
	case USERS_NOT_FOUND:
		db_rollback(req->db);
		user_gone(req, res, who);
		goto out;
	case USERS_DB_ERROR:
		db_rollback(req->db);
		response_database_unavailable(res);
		goto out;
	}
	switch (token_next(req, &current,
			   current.access_token[0] && current.refresh_token[0])) {
	case TOKEN_REAUTH:
		db_rollback(req->db);
		reauth_required(res);
		goto out;
	case TOKEN_GONE:
		db_rollback(req->db);
		logged_out_by_spotify(req, res, who);
		goto out;
	case TOKEN_SERVE:
		db_rollback(req->db); /* someone refreshed while we waited */
		token_body(req, res, current.access_token, current.expires_at, &current);
		goto out;
	case TOKEN_REFRESH: break;
	}

	outcome = spotify_refresh(current.refresh_token, &fresh);
	switch (outcome.status) {
	case SPOTIFY_OK:
		if (users_store_refresh(req->db, who->user_id, &fresh, &expires_at) !=
			    USERS_OK ||
		    record(req, who, AUDIT_REFRESH) != DB_OK ||
		    db_commit(req->db) != DB_OK) {
			db_rollback(req->db);
			response_database_unavailable(res);
			goto out;
		}
		log_event(LOG_INFO, "token_refreshed", LOG_INT("user_id", who->user_id),
			  LOG_INT("rotated", fresh.refresh_token[0] != '\0'));
		/* What was just stored: reauth_recommended judges the grant as it is. */
		if (fresh.has_scope)
			memcpy(current.scope, fresh.scope, sizeof(current.scope));
		token_body(req, res, fresh.access_token, expires_at, &current);
		break;
	case SPOTIFY_INVALID_GRANT: grant_refused(req, res, who, &current); break;
	case SPOTIFY_FORBIDDEN:
		/* Development mode: not a dead grant; the owner may add the user. */
		log_event(LOG_INFO, "spotify_access_denied", LOG_STR("at", "refresh"),
			  LOG_INT("user_id", who->user_id));
		refresh_failed(req, res, who, outcome);
		break;
	default: refresh_failed(req, res, who, outcome); break;
	}
out:
	OPENSSL_cleanse(&current, sizeof(current));
	OPENSSL_cleanse(&fresh, sizeof(fresh));
}

void
token_answer(const struct request *req, struct response *res,
	     const struct token_caller *who)
{
	static struct user_token stored;

	switch (users_token(req->db, who->user_id, &stored)) {
	case USERS_OK: break;
	case USERS_NOT_FOUND: user_gone(req, res, who); return;
	case USERS_DB_ERROR: response_database_unavailable(res); return;
	}
	/* Before any refresh: a grant without the scope gets nothing from Spotify. */
	if (who->required &&
	    scope_require(stored.scope, who->required, who->next, res) < 0) {
		OPENSSL_cleanse(&stored, sizeof(stored));
		return;
	}
	/* Flagged: no call to Spotify until the confirmation is due. */
	switch (token_next(req, &stored, stored.access_token[0] != '\0')) {
	case TOKEN_REAUTH: reauth_required(res); break;
	case TOKEN_GONE: logged_out_by_spotify(req, res, who); break;
	case TOKEN_SERVE:
		token_body(req, res, stored.access_token, stored.expires_at, &stored);
		break;
	case TOKEN_REFRESH: refresh_and_answer(req, res, who); break;
	}
	OPENSSL_cleanse(&stored, sizeof(stored));
}
