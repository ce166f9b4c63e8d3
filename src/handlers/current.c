/*
 * Who is asking: the request's session cookie, verified, looked up (the
 * worker's cache first), and kept alive. A cookie is honoured only while
 * its row lives; one that names no live row is cleared. The cookie is
 * issued again, to the same session, when it is in the second half of
 * its life (sliding renewal, capped by BAA_SESSION_MAX_AGE) or was signed
 * by a secret that is no longer the first (key rotation).
 *
 * The cookie's name occurring twice in one request refuses both: a
 * sibling site can add a cookie but cannot remove baa's, so the first of
 * two is not evidence of anything. A cookie of the first format (named
 * baa_session) is turned into a session row once, if it still may be.
 */
#include "handlers.h"

#include <string.h>
#include <time.h>

#include "../address.h"
#include "../audit.h"
#include "../device.h"
#include "../log.h"
#include "../params.h"

void
client_of(const struct request *req, struct client *out)
{
	device_label(req->user_agent, out->device, sizeof(out->device));
	if (req->remote_addr == NULL ||
	    address_network_prefix(req->remote_addr, out->network, sizeof(out->network)) <
		    0)
		out->network[0] = '\0';
}

enum cookie_found
current_cookie(const struct request *req, const char *name, char *out, size_t size)
{
	const char *value;
	size_t len;

	if (req->cookie == NULL)
		return COOKIE_ABSENT;
	switch (params_find_cookie(req->cookie, strlen(req->cookie), name, &value,
				   &len)) {
	case PARAMS_COOKIE_ABSENT: return COOKIE_ABSENT;
	case PARAMS_COOKIE_DUPLICATE: return COOKIE_DUPLICATE;
	case PARAMS_COOKIE_FOUND: break;
	}
	if (len >= size) /* longer than any cookie baa signs */
		return COOKIE_INVALID;
	memcpy(out, value, len);
	out[len] = '\0';
	return COOKIE_FOUND;
}

/*
 * A cookie of the first format, for a user who may still use it: its row,
 * made at its first use under an id derived from the cookie, so that a
 * client that ignores the new cookie and sends the old one again finds
 * that row rather than making another. The session is then checked as any
 * other (current_find).
 */
static enum current_status
adopt_legacy(const struct request *req, const char *value, struct current *cur)
{
	struct legacy_session legacy;
	struct session_row made;
	struct client client;

	if (session_verify_legacy(value, time(NULL), &legacy) < 0 ||
	    session_adopted_id(value, &cur->cookie) < 0 ||
	    session_id_hash(&cur->cookie, cur->hash) < 0)
		return CURRENT_NONE;
	cur->legacy = 1; /* issued under the new name at once */
	switch (sessions_check(req->db, cur->hash, &made, NULL)) {
	case SESSIONS_OK: return CURRENT_OK;
	case SESSIONS_NOT_FOUND: break;
	case SESSIONS_DB_ERROR: return CURRENT_DB_ERROR;
	}
	client_of(req, &client);
	switch (sessions_adopt_legacy(req->db, &legacy, cur->hash, &client, &made)) {
	case SESSIONS_OK: break;
	case SESSIONS_NOT_FOUND: return CURRENT_NONE;
	/* Also when the same cookie, sent twice at once, was adopted first by
	 * the other request: its row is found then. */
	case SESSIONS_DB_ERROR:
		return sessions_check(req->db, cur->hash, &made, NULL) == SESSIONS_OK
			       ? CURRENT_OK
			       : CURRENT_DB_ERROR;
	}
	log_event(LOG_INFO, "session_adopted", LOG_INT("user_id", legacy.user_id),
		  LOG_INT("session_id", made.id));
	return CURRENT_OK;
}

/* A current-format cookie's value, verified, and the key of its row. */
static int
verify_cookie(const char *value, struct session_cookie *cookie, unsigned char hash[32])
{
	return session_verify(value, time(NULL), cookie) < 0 ||
			       session_id_hash(cookie, hash) < 0
		       ? -1
		       : 0;
}

int
current_session_key(const struct request *req, struct current_key *out)
{
	char value[SESSION_COOKIE_MAX + 1];

	if (current_cookie(req, SESSION_COOKIE, value, sizeof(value)) != COOKIE_FOUND)
		return -1;
	return verify_cookie(value, &out->cookie, out->hash);
}

/* The request's session cookie, of either format: where to look its row up. */
static enum current_status
find_cookie(const struct request *req, struct current *cur)
{
	char value[SESSION_COOKIE_MAX + 1];

	if (req->session_key != NULL) {
		cur->cookie = req->session_key->cookie;
		memcpy(cur->hash, req->session_key->hash, sizeof(cur->hash));
		return CURRENT_OK;
	}
	switch (current_cookie(req, SESSION_COOKIE, value, sizeof(value))) {
	case COOKIE_FOUND: break;
	case COOKIE_ABSENT:
		if (current_cookie(req, LEGACY_SESSION_COOKIE, value, sizeof(value)) !=
		    COOKIE_FOUND)
			return CURRENT_NONE;
		return adopt_legacy(req, value, cur);
	case COOKIE_DUPLICATE: return CURRENT_DUPLICATE;
	case COOKIE_INVALID: return CURRENT_NONE;
	}
	return verify_cookie(value, &cur->cookie, cur->hash) < 0 ? CURRENT_NONE
								 : CURRENT_OK;
}

enum current_status
current_find(const struct request *req, struct current *cur, int want_profile)
{
	enum current_status found;

	memset(cur, 0, sizeof(*cur));
	found = find_cookie(req, cur);
	if (found != CURRENT_OK)
		return found;
	switch (sessions_check(req->db, cur->hash, &cur->session,
			       want_profile ? &cur->profile : NULL)) {
	case SESSIONS_OK: return CURRENT_OK;
	case SESSIONS_NOT_FOUND: return CURRENT_GONE;
	case SESSIONS_DB_ERROR: return CURRENT_DB_ERROR;
	}
	return CURRENT_DB_ERROR;
}

enum sessions_status
current_end_sessions(const struct request *req, const struct current *cur,
		     long long which, enum audit_event event)
{
	long long user_id = cur->session.user_id;
	struct client client;
	enum sessions_status status;

	client_of(req, &client);
	if (db_begin(req->db) != DB_OK)
		return SESSIONS_DB_ERROR;
	status = which ? sessions_end(req->db, user_id, which)
		       : sessions_end_all(req->db, user_id);
	if (status == SESSIONS_OK &&
	    (users_end_legacy_cookies(req->db, user_id) == USERS_DB_ERROR ||
	     audit_record(req->db, event, user_id, which ? which : cur->session.id,
			  &client) != DB_OK ||
	     db_commit(req->db) != DB_OK))
		status = SESSIONS_DB_ERROR;
	if (status != SESSIONS_OK)
		db_rollback(req->db);
	return status;
}

void
current_refuse_gone(const struct request *req, struct response *res)
{
	current_clear_cookies(req, res);
	response_error(res, 401, "session expired or revoked: log in again");
}

int
current_cookie_sent(const struct request *req, const char *name)
{
	return req->cookie && params_find_cookie(req->cookie, strlen(req->cookie), name,
						 NULL, NULL) != PARAMS_COOKIE_ABSENT;
}

void
current_clear_cookies(const struct request *req, struct response *res)
{
	response_cookie(res, SESSION_COOKIE, "", 0);
	/* Only when sent: a Set-Cookie for a name never used is noise. */
	if (current_cookie_sent(req, LEGACY_SESSION_COOKIE))
		response_cookie(res, LEGACY_SESSION_COOKIE, "", 0);
}

/*
 * Whether the cookie should be issued again now: signed by an older
 * secret, adopted from the first format, or past half its life and able
 * to gain at least a renewal's worth (BAA_SESSION_MAX_AGE may stop it).
 */
static int
renewal_due(const struct request *req, const struct current *cur, time_t now)
{
	int ttl = req->cfg->session_ttl;

	if (cur->cookie.key != 0 || cur->legacy)
		return 1;
	return cur->cookie.expires - now < ttl / 2 &&
	       cur->session.max_expires_at > cur->cookie.expires + ttl / 4;
}

/* A fresh cookie for the same session, as long as its row now lives. */
static void
renew(const struct request *req, struct response *res, struct current *cur)
{
	char value[SESSION_COOKIE_MAX + 1];
	time_t now = time(NULL);

	if (sessions_touch(req->db, cur->hash, &cur->session, 1) != SESSIONS_OK)
		return; /* served on the cookie it has; the next request tries again */
	cur->cookie.expires = cur->session.expires_at;
	cur->cookie.key = 0;
	if (session_sign(&cur->cookie, value, sizeof(value)) < 0)
		return;
	response_cookie(res, SESSION_COOKIE, value, (long)(cur->cookie.expires - now));
	if (cur->legacy)
		response_cookie(res, LEGACY_SESSION_COOKIE, "", 0);
}

int
current_require(const struct request *req, struct response *res, struct current *cur,
		int want_profile)
{
	time_t now = time(NULL);

	switch (current_find(req, cur, want_profile)) {
	case CURRENT_OK: break;
	case CURRENT_NONE: response_error(res, 401, "not logged in"); return -1;
	case CURRENT_DUPLICATE:
		response_error(res, 401,
			       "the session cookie was sent twice: log in again");
		return -1;
	case CURRENT_GONE: current_refuse_gone(req, res); return -1;
	case CURRENT_DB_ERROR: response_database_unavailable(res); return -1;
	}
	if (renewal_due(req, cur, now))
		renew(req, res, cur);
	else if (sessions_touch_due(req->db, &cur->session, now))
		sessions_touch(req->db, cur->hash, &cur->session, 0);
	return 0;
}
