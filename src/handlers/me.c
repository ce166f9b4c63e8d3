/*
 * The logged-in user's own resources: profile, access token, deletion.
 * /me/token is token.c's token_answer for the session's user, the same
 * path backend services take (internal.c). GET /me tells when Spotify's
 * six-month grant ends (BAA_GRANT_LIFETIME after the last login).
 */
#include "handlers.h"

#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "../audit.h"
#include "../clock.h"
#include "../log.h"
#include "../params.h"
#include "../scopes.h"
#include "../session.h"
#include "../spotify.h"
#include "../users.h"

/* Where a user removes an app's access to their Spotify account. */
#define SPOTIFY_REVOKE_URL "https://www.spotify.com/account/apps/"

/*
 * What GET /me shows of a user, as members of the object res is writing
 * (GET /internal/users/{id} shows the same).
 * Written without cJSON: this is the hot path, and it allocates nothing.
 */
void
me_profile_members(const struct request *req, struct response *res,
		   const struct user_profile *profile)
{
	char id[24];

	snprintf(id, sizeof(id), "%lld", profile->id);
	response_member_raw(res, "id", id);
	response_member_string(res, "spotify_id", profile->spotify_id, 0);
	response_member_string(res, "account_id", profile->account_id, 1);
	response_member_string(res, "display_name", profile->display_name, 1);
	response_member_string(res, "token_expires_at", profile->token_expires_at, 1);
	response_member_string(res, "authorized_at", profile->authorized_at_text, 1);
	response_member_string(res, "reauth_due_at", profile->reauth_due_at_text, 1);
	/* Also when SPOTIFY_SCOPES grew since this grant: the next login asks for the
	 * rest. */
	response_member_bool(res, "reauth_recommended",
			     profile->scope_short ||
				     token_reauth_recommended(req->cfg,
							      profile->reauth_due_at,
							      profile->needs_reauth));
	response_member_bool(res, "needs_reauth", profile->needs_reauth);
	/* "" when Spotify granted nothing; null when no login stored a grant. */
	response_member_string(res, "scope", profile->has_scope ? profile->scope : NULL,
			       0);
}

void
me_profile(const struct request *req, struct response *res)
{
	static struct current cur;

	if (current_require(req, res, &cur, 1) < 0)
		return;
	response_object_begin(res, 200);
	me_profile_members(req, res, &cur.profile);
	response_object_end(res);
}

void
me_token(const struct request *req, struct response *res)
{
	static struct current cur;
	static struct params query;
	static struct scopes required;
	struct token_caller who = {0};

	/* Who asks first: without a session the answer is 401, whatever the query. */
	if (current_require(req, res, &cur, 0) < 0 ||
	    scope_token_query(req, &query, &required, &who.next, res) < 0)
		return;
	who.required = &required;
	who.user_id = cur.session.user_id;
	who.session_id = cur.session.id;
	who.browser = 1;
	token_answer(req, res, &who);
}

/*
 * The user's row goes, and with it (ON DELETE CASCADE) the sessions and
 * the audit trail, which keeps one line without a user saying that a
 * deletion happened.
 */
static enum users_status
delete_user(struct db *db, long long user_id)
{
	enum users_status status;

	if (db_begin(db) != DB_OK)
		return USERS_DB_ERROR;
	status = users_delete(db, user_id);
	if (status == USERS_OK && (audit_record(db, AUDIT_DELETED, 0, 0, NULL) != DB_OK ||
				   db_commit(db) != DB_OK))
		status = USERS_DB_ERROR;
	if (status != USERS_OK)
		db_rollback(db);
	return status;
}

void
me_delete(const struct request *req, struct response *res)
{
	struct current cur;

	if (current_require(req, res, &cur, 0) < 0)
		return;
	switch (delete_user(req->db, cur.session.user_id)) {
	case USERS_OK:
		log_event(LOG_INFO, "user_deleted",
			  LOG_INT("user_id", cur.session.user_id));
		current_clear_cookies(req, res);
		/* An app cannot revoke a grant at Spotify: the user does it there. */
		response_object_begin(res, 200);
		response_member_string(res, "status", "deleted", 0);
		response_member_string(res, "revoke_url", SPOTIFY_REVOKE_URL, 0);
		response_member_string(
			res, "message",
			"baa has deleted your data; to remove its access at Spotify too, "
			"open revoke_url and remove baa from your apps.",
			0);
		response_object_end(res);
		break;
	case USERS_NOT_FOUND: current_refuse_gone(req, res); break;
	case USERS_DB_ERROR: response_database_unavailable(res); break;
	}
}
