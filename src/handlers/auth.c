/*
 * The Spotify login: /login starts it, /callback finishes it, /logout
 * ends the session. Nothing is stored before the callback has proven,
 * in order, the signed login cookie, the state and Spotify's answers. A
 * failed callback answers JSON, or, to a browser's navigation, 303 to the
 * page with ?login_error=<code>, which the page explains.
 */
#include "handlers.h"

#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "../audit.h"
#include "../log.h"
#include "../login.h"
#include "../params.h"
#include "../scopes.h"
#include "../session.h"
#include "../spotify.h"
#include "../states.h"

/* A login must finish within this many seconds of its start. */
#define LOGIN_TTL 600
#define CODE_MAX 1024

/*
 * The login in progress: the one cookie of the current name, else (a login
 * started before the rename) of the first. -1 when there is none that
 * verifies, or the name was sent twice.
 */
static int
login_in_progress(const struct request *req, struct oauth_login *login)
{
	char value[SESSION_COOKIE_MAX + 1];
	enum cookie_found found = current_cookie(req, OAUTH_COOKIE, value, sizeof(value));

	if (found == COOKIE_ABSENT)
		found = current_cookie(req, LEGACY_OAUTH_COOKIE, value, sizeof(value));
	if (found != COOKIE_FOUND)
		return -1;
	return session_verify_login(value, time(NULL), login);
}

/* Ends the login in progress, under whichever name it came. */
static void
clear_login(const struct request *req, struct response *res)
{
	response_cookie(res, OAUTH_COOKIE, "", 0);
	if (current_cookie_sent(req, LEGACY_OAUTH_COOKIE))
		response_cookie(res, LEGACY_OAUTH_COOKIE, "", 0);
}

/*
 * The user's grant, as far as SPOTIFY_SCOPES_ALLOWED still holds it, so
 * that a login asking for more does not lose what was granted (Spotify's
 * new grant is what this login asks for), and an operator can withdraw a
 * scope. Only with a live session, and not for switch=1: the person may
 * be about to log in as another account, which should not be asked for
 * the first one's scopes. 0 (nothing added) without a session; -1 with
 * a 503 written when the database cannot say.
 */
static int
add_granted(const struct request *req, const struct scopes *allowed, int switching,
	    struct scopes *asked, struct response *res)
{
	static struct current cur;
	static struct scopes granted, kept;

	if (switching)
		return 0;
	switch (current_find(req, &cur, 1)) {
	case CURRENT_OK: break;
	/* Asking without it would narrow the grant: better a retry. */
	case CURRENT_DB_ERROR: response_database_unavailable(res); return -1;
	default: return 0;
	}
	if (!cur.profile.has_scope ||
	    scopes_parse(&granted, cur.profile.scope, strlen(cur.profile.scope),
			 SCOPES_LOOSE) < 0)
		return 0;
	kept.count = 0;
	for (int i = 0; i < granted.count; i++)
		if (scopes_has(allowed, granted.names[i]))
			snprintf(kept.names[kept.count++], sizeof(kept.names[0]), "%s",
				 granted.names[i]);
	/* Cannot overflow: SPOTIFY_SCOPES and kept are both in allowed. */
	(void)scopes_union(asked, &kept);
	return 0;
}

/*
 * What this login asks Spotify for, into out: SPOTIFY_SCOPES (so a grant
 * from before SPOTIFY_SCOPES grew gets the new ones), the session user's
 * grant, and ?scope= (each in SPOTIFY_SCOPES_ALLOWED, else 400). The
 * login cookie carries it to /callback, which stores it beside what
 * Spotify's token answer says it granted (users.scope_requested), so that
 * a scope Spotify drops at every login is not asked for again and again.
 * -1 with the answer written.
 */
static int
login_scopes(const struct request *req, const struct params *query, int switching,
	     char *out, size_t size, struct response *res)
{
	static struct scopes asked, requested, allowed;
	const struct config *cfg = req->cfg;

	if (scope_parse_request(query, "scope", &requested, res) < 0)
		return -1;
	scope_allowed(cfg, &allowed);
	scopes_parse_or_none(cfg->spotify_scopes, &asked);
	if (scope_check_allowed(&requested, &allowed, res) < 0 ||
	    add_granted(req, &allowed, switching, &asked, res) < 0)
		return -1;
	if (scopes_union(&asked, &requested) < 0 ||
	    scopes_format(&asked, out, size) < 0) {
		response_error(res, 500, "could not start the login");
		return -1;
	}
	return 0;
}

/* ?switch=1: Spotify shows its consent page, where another account can log in. */
static int
login_switching(const struct params *query, int *switching, struct response *res)
{
	const char *value = params_get(query, "switch");

	*switching = value && strcmp(value, "1") == 0;
	if (value == NULL || (params_count(query, "switch") == 1 &&
			      (strcmp(value, "1") == 0 || strcmp(value, "0") == 0)))
		return 0;
	response_error(res, 400, "switch must be 1 or 0");
	return -1;
}

void
auth_login(const struct request *req, struct response *res)
{
	char verifier[SESSION_VERIFIER_LEN + 1], challenge[B64URL_LEN(32) + 1];
	char url[4096], cookie[SESSION_COOKIE_MAX + 1], scopes[SCOPES_TEXT_MAX + 1];
	struct oauth_login login;
	static struct params query;
	const char *next;
	int switching;

	if (params_parse_form(&query, req->query, strlen(req->query)) != PARAMS_OK) {
		response_error(res, 400, "malformed query string");
		return;
	}
	next = params_get(&query, "next");
	if (next && (params_count(&query, "next") > 1 || !session_is_local_path(next))) {
		response_error(res, 400,
			       "next must be a single local path such as /account");
		return;
	}
	if (login_switching(&query, &switching, res) < 0 ||
	    login_scopes(req, &query, switching, scopes, sizeof(scopes), res) < 0)
		return;
	if (session_new_login(&login, next, time(NULL), LOGIN_TTL) < 0)
		goto failed;
	/* For /callback to store: what this login asked for (login_scopes). */
	snprintf(login.asked, sizeof(login.asked), "%s", scopes);
	login.has_asked = 1;
	if (session_pkce(&login, verifier, challenge) < 0 ||
	    spotify_authorize_url(login.state, challenge, scopes, switching, url,
				  sizeof(url)) < 0 ||
	    session_sign_login(&login, cookie, sizeof(cookie)) < 0)
		goto failed;
	response_cookie(res, OAUTH_COOKIE, cookie, LOGIN_TTL);
	response_redirect(res, url);
	return;
failed:
	response_error(res, 500, "could not start the login");
}

static int
is_code_text(const char *code)
{
	size_t len = strlen(code);

	return len > 0 && len <= CODE_MAX &&
	       strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789-._~") == len;
}

/* Maps a failed Spotify call to the answer the client gets. */
void
auth_spotify_failed(struct response *res, struct spotify_outcome outcome,
		    const char *what)
{
	char seconds[24];

	if (outcome.status == SPOTIFY_FORBIDDEN) {
		response_problem(
			res, 403, "spotify_access_denied",
			"This Spotify account is not allowed to use this app yet. The app "
			"is in Spotify's development mode, which admits at most 5 users "
			"that the app's owner adds in the Spotify Developer Dashboard. Ask "
			"the owner to add your account, then log in again.");
		return;
	}
	if (outcome.status != SPOTIFY_RATE_LIMITED &&
	    outcome.status != SPOTIFY_QUOTA_EXCEEDED) {
		response_error(res, 502, what);
		return;
	}
	snprintf(seconds, sizeof(seconds), "%ld", outcome.retry_after);
	response_header(res, "Retry-After", seconds);
	if (outcome.status == SPOTIFY_QUOTA_EXCEEDED)
		response_problem(
			res, 503, "spotify_quota_exceeded",
			"This app has used up its Spotify API quota (development mode "
			"has a small one; the owner can apply for extended quota in the "
			"Spotify Developer Dashboard). Try again later.");
	else
		response_problem(res, 503, "spotify_rate_limited",
				 "Spotify is limiting how often this app may call it. "
				 "Try again in a moment.");
}

/* The login_error code the page shows for a failed call to Spotify. */
static const char *
outcome_code(struct spotify_outcome outcome)
{
	switch (outcome.status) {
	case SPOTIFY_FORBIDDEN: return "spotify_access_denied";
	case SPOTIFY_RATE_LIMITED: return "spotify_rate_limited";
	case SPOTIFY_QUOTA_EXCEEDED: return "spotify_quota_exceeded";
	default: return "spotify_failed";
	}
}

/*
 * Called after a /callback failure has set its JSON answer. A browser that
 * followed Spotify's redirect (Sec-Fetch-Mode: navigate) would show that
 * JSON as a page: it gets 303 to the static page instead, which explains
 * code to the person. Headers already set (cookies, Retry-After) stay.
 */
static void
callback_failed(const struct request *req, struct response *res, const char *code)
{
	char location[64];

	if (req->sec_fetch_mode == NULL || strcmp(req->sec_fetch_mode, "navigate") != 0)
		return;
	snprintf(location, sizeof(location), "/?login_error=%s", code);
	response_redirect_status(res, 303, location);
}

/* Spotify refused the call or failed it: nothing is stored. */
static void
callback_spotify_failed(const struct request *req, struct response *res,
			struct spotify_outcome outcome, const char *what)
{
	if (outcome.status == SPOTIFY_FORBIDDEN) {
		/* Development mode: a user the owner has not added. */
		log_event(LOG_INFO, "spotify_access_denied", LOG_STR("at", "login"));
		clear_login(req, res);
	}
	auth_spotify_failed(res, outcome, what);
	callback_failed(req, res, outcome_code(outcome));
}

/*
 * While calls to Spotify are paused the callback answers before its state
 * is spent, so that the same callback can be sent again once it is over.
 */
static int
refused_while_paused(const struct request *req, struct response *res)
{
	struct spotify_outcome outcome;

	if (!spotify_paused(&outcome))
		return 0;
	auth_spotify_failed(res, outcome, NULL);
	callback_failed(req, res, outcome_code(outcome));
	return 1;
}

/* Records the state as used, everywhere; 0 when this is its first use. */
static int
redeem_state(const struct request *req, struct response *res,
	     const struct oauth_login *login)
{
	time_t now = time(NULL);

	switch (states_redeem(req->db, login->state, login->expires, now)) {
	case STATES_FIRST: return 0;
	case STATES_USED:
		log_event(
			LOG_WARN, "login_state_reused",
			LOG_INT("cookie_expires_in", (long long)(login->expires - now)));
		response_problem(res, 400, "login_expired",
				 "This login was already used. Start again at /login.");
		callback_failed(req, res, "login_expired");
		return -1;
	case STATES_DB_ERROR: break;
	}
	response_database_unavailable(res);
	callback_failed(req, res, "unavailable");
	return -1;
}

void
auth_callback(const struct request *req, struct response *res)
{
	static struct spotify_tokens tokens;
	struct spotify_user who;
	struct oauth_login login;
	struct login_result done;
	struct client client;
	struct spotify_outcome outcome;
	struct params query;
	char verifier[SESSION_VERIFIER_LEN + 1], challenge[B64URL_LEN(32) + 1];
	char cookie[SESSION_COOKIE_MAX + 1];
	const char *code, *state, *error;

	if (params_parse_form(&query, req->query, strlen(req->query)) != PARAMS_OK) {
		response_error(res, 400, "malformed query string");
		callback_failed(req, res, "login_expired");
		return;
	}
	error = params_get(&query, "error");
	if (error) {
		/* The user said no at Spotify (or Spotify refused): start over. */
		int declined = strcmp(error, "access_denied") == 0;
		clear_login(req, res);
		if (declined)
			response_error(res, 403, "login cancelled at Spotify");
		else
			response_error(res, 400, "Spotify did not authorize the login");
		callback_failed(req, res,
				declined ? "login_cancelled" : "spotify_failed");
		return;
	}
	code = params_get(&query, "code");
	state = params_get(&query, "state");
	if (code == NULL || state == NULL || params_count(&query, "code") != 1 ||
	    params_count(&query, "state") != 1 || !is_code_text(code)) {
		response_error(res, 400, "missing or malformed code or state");
		callback_failed(req, res, "login_expired");
		return;
	}
	if (login_in_progress(req, &login) < 0) {
		response_error(
			res, 400,
			"no login in progress or it expired: start again at /login");
		callback_failed(req, res, "login_expired");
		return;
	}
	if (strlen(state) != SESSION_STATE_LEN ||
	    !crypto_equal(state, login.state, SESSION_STATE_LEN)) {
		response_error(res, 400, "state does not match this login");
		callback_failed(req, res, "login_expired");
		return;
	}

	/* One call to Spotify per state, whichever instance gets it. */
	if (refused_while_paused(req, res) || redeem_state(req, res, &login) < 0)
		return;
	if (session_pkce(&login, verifier, challenge) < 0) {
		response_error(res, 500, "could not finish the login");
		callback_failed(req, res, "spotify_failed");
		return;
	}
	outcome = spotify_exchange_code(code, verifier, &tokens);
	if (outcome.status != SPOTIFY_OK) {
		callback_spotify_failed(req, res, outcome,
					"Spotify refused or failed the code exchange");
		goto out;
	}
	outcome = spotify_me(tokens.access_token, &who);
	if (outcome.status != SPOTIFY_OK) {
		callback_spotify_failed(req, res, outcome,
					"could not read the Spotify profile");
		goto out;
	}
	client_of(req, &client);
	if (login_store(req->db, &who, &tokens, login.has_asked ? login.asked : NULL,
			&client, &done) < 0) {
		response_database_unavailable(res);
		callback_failed(req, res, "unavailable");
		goto out;
	}
	if (session_sign(&done.cookie, cookie, sizeof(cookie)) < 0) {
		/* Stored, but no cookie: the session row expires unused. */
		response_error(res, 500, "could not finish the login");
		callback_failed(req, res, "spotify_failed");
		goto out;
	}
	log_event(LOG_INFO, "login", LOG_INT("user_id", done.session.user_id),
		  LOG_INT("session_id", done.session.id),
		  LOG_STR("identity", identity_match_name(done.match)));
	/*
	 * The session's whole lifetime, from the row's own clock: the local
	 * second may already be the next one, which made it a second short.
	 */
	response_cookie(res, SESSION_COOKIE, cookie,
			(long)(done.cookie.expires - done.session.created_at));
	clear_login(req, res);
	response_redirect(res, login.next);
out:
	OPENSSL_cleanse(&tokens, sizeof(tokens));
}

/*
 * POST /logout ends this session; ?everywhere=1 every session of the user
 * (every device). Without a live session there is nothing to end: the
 * cookies are cleared all the same.
 */
void
auth_logout(const struct request *req, struct response *res)
{
	struct current cur;
	struct params query;
	const char *everywhere;

	if (params_parse_form(&query, req->query, strlen(req->query)) != PARAMS_OK) {
		response_error(res, 400, "malformed query string");
		return;
	}
	everywhere = params_get(&query, "everywhere");
	if (everywhere &&
	    (params_count(&query, "everywhere") > 1 ||
	     (strcmp(everywhere, "1") != 0 && strcmp(everywhere, "0") != 0))) {
		response_error(res, 400, "everywhere must be 1 or 0");
		return;
	}
	switch (current_find(req, &cur, 0)) {
	case CURRENT_OK:
		/* This session's row already gone is as good as ended. */
		if (current_end_sessions(
			    req, &cur,
			    everywhere && everywhere[0] == '1' ? 0 : cur.session.id,
			    everywhere && everywhere[0] == '1'
				    ? AUDIT_LOGOUT_EVERYWHERE
				    : AUDIT_LOGOUT) == SESSIONS_DB_ERROR) {
			response_database_unavailable(res);
			return;
		}
		log_event(LOG_INFO,
			  everywhere && everywhere[0] == '1' ? "logout_everywhere"
							     : "logout",
			  LOG_INT("user_id", cur.session.user_id),
			  LOG_INT("session_id", cur.session.id));
		break;
	case CURRENT_DB_ERROR: response_database_unavailable(res); return;
	default: break;
	}
	current_clear_cookies(req, res);
	response_json_string(res, 200, "status", "logged out");
}
