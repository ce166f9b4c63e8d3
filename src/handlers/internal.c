/*
 * The internal API for backend services (BAA_INTERNAL_LISTEN only; the
 * router keeps these routes off the public listener): a user's access
 * token, through token.c's token_answer, the path GET /me/token takes,
 * so a service and the user's browser asking at once still cause one
 * refresh; and the user's profile with the grant's state.
 *
 *   GET /internal/users/{id}[/token]                baa's users.id
 *   GET /internal/users/lookup[/token]?spotify_id=X  or ?account_id=X
 *
 * Spotify ids and account ids are arbitrary strings (old accounts' ids
 * are user names) and nginx decodes the path before baa sees it, so
 * they travel in the query string, which params.c decodes exactly.
 * Every call is authenticated by its service's key (services.h), logged
 * with the service's name and the user's id, never the key or the token,
 * and counted by service and outcome.
 */
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#include "../config.h"
#include "../log.h"
#include "../metrics.h"
#include "../params.h"
#include "../scopes.h"
#include "../services.h"
#include "../users.h"

#define PREFIX "/internal/users/"
#define USER_ID_DIGITS_MAX 18

/* What a call asks for, from its path and query. */
struct internal_target {
	int token;	      /* .../token, else the profile */
	enum users_lookup by; /* with lookup */
	int lookup;	      /* by spotify_id or account_id, in value */
	long long user_id;    /* without lookup */
	char value[SPOTIFY_ID_MAX + 1];
};

/* 0, -404 for a path that names nothing, -400 for a bad lookup. */
static int
parse_target(const struct request *req, struct internal_target *t)
{
	static struct params query;
	const char *ref = req->path + strlen(PREFIX), *rest;
	size_t len = strcspn(ref, "/");
	const char *spotify_id, *account_id, *value;

	memset(t, 0, sizeof(*t));
	rest = ref + len;
	if (strcmp(rest, "/token") == 0)
		t->token = 1;
	else if (rest[0] != '\0')
		return -404;
	if (len == 6 && strncmp(ref, "lookup", 6) == 0) {
		t->lookup = 1;
	} else {
		if (len == 0 || len > USER_ID_DIGITS_MAX || ref[0] == '0' ||
		    strspn(ref, "0123456789") < len)
			return -404;
		t->user_id = strtoll(ref, NULL, 10);
		return 0;
	}
	if (params_parse_form(&query, req->query, strlen(req->query)) != PARAMS_OK ||
	    params_count(&query, "spotify_id") + params_count(&query, "account_id") != 1)
		return -400;
	spotify_id = params_get(&query, "spotify_id");
	account_id = params_get(&query, "account_id");
	value = spotify_id ? spotify_id : account_id;
	t->by = spotify_id ? USERS_BY_SPOTIFY_ID : USERS_BY_ACCOUNT_ID;
	if (value[0] == '\0' || strlen(value) > SPOTIFY_ID_MAX)
		return -400;
	snprintf(t->value, sizeof(t->value), "%s", value);
	return 0;
}

enum metrics_internal_outcome
internal_outcome(const struct response *res)
{
	/* Rendered as a 500 whatever its status: baa's failure, not the call's. */
	if (res->overflow)
		return METRICS_INTERNAL_ERROR;
	switch (res->status) {
	case 200: return METRICS_INTERNAL_OK;
	case 400: return METRICS_INTERNAL_BAD_REQUEST;
	case 401: return METRICS_INTERNAL_REAUTH_REQUIRED;
	case 403: return METRICS_INTERNAL_FORBIDDEN;
	case 404: return METRICS_INTERNAL_NOT_FOUND;
	case 502: return METRICS_INTERNAL_SPOTIFY_FAILED; /* auth_spotify_failed's */
	case 503:
		/* Spotify's pause names itself: spotify_rate_limited, _quota_exceeded. */
		return strstr(res->body, "\"error\":\"spotify_")
			       ? METRICS_INTERNAL_RATE_LIMITED
			       : METRICS_INTERNAL_UNAVAILABLE;
	/* Counted as Spotify's, a bug of baa's would send the operator there. */
	default: return METRICS_INTERNAL_ERROR;
	}
}

static const char *const auth_reasons[] = {[SERVICES_MISSING] = "missing",
					   [SERVICES_MALFORMED] = "malformed",
					   [SERVICES_WRONG] = "wrong_key"};

/* The service's index, or -1 with the 401 in res (and logged, without the key). */
static int
authenticate(const struct request *req, struct response *res)
{
	int which = -1;
	enum services_auth status = services_authenticate(&req->cfg->service_keys,
							  req->authorization, &which);

	if (status == SERVICES_OK)
		return which;
	log_event(LOG_WARN, "service_auth_failed",
		  LOG_STR("reason", auth_reasons[status]),
		  LOG_STR("remote_addr", req->remote_addr ? req->remote_addr : "-"));
	metrics_internal_call(-1, METRICS_INTERNAL_UNAUTHORIZED);
	response_header(res, "WWW-Authenticate", "Bearer realm=\"baa-internal\"");
	response_problem(res, 401, "unauthorized",
			 "This call needs a service key of BAA_SERVICE_KEYS: "
			 "Authorization: Bearer <key>.");
	return -1;
}

static void
profile_answer(const struct request *req, struct response *res, long long user_id)
{
	static struct user_profile profile;

	switch (users_grant(req->db, user_id, &profile)) {
	case USERS_OK: break;
	case USERS_NOT_FOUND:
		response_problem(res, 404, "user_not_found", "baa has no such user.");
		return;
	case USERS_DB_ERROR: response_database_unavailable(res); return;
	}
	response_object_begin(res, 200);
	me_profile_members(req, res, &profile);
	response_object_end(res);
}

/* The user the call names: 0 with *id set, or -1 with the answer in res. */
static int
resolve(const struct request *req, struct response *res, const struct internal_target *t,
	long long *id)
{
	if (!t->lookup) {
		*id = t->user_id;
		return 0;
	}
	switch (users_find(req->db, t->by, t->value, id)) {
	case USERS_OK: return 0;
	case USERS_NOT_FOUND:
		response_problem(res, 404, "user_not_found", "baa has no such user.");
		break;
	case USERS_DB_ERROR: response_database_unavailable(res); break;
	}
	return -1;
}

/* /me/token's answer, ?require= and ?next= included, for the service. */
static void
token_for_service(const struct request *req, struct response *res,
		  struct token_caller *who)
{
	static struct params query;
	static struct scopes required;

	if (scope_token_query(req, &query, &required, &who->next, res) < 0)
		return;
	who->required = &required;
	token_answer(req, res, who);
}

void
internal_user(const struct request *req, struct response *res)
{
	struct internal_target t;
	struct token_caller who = {0};
	enum metrics_internal_outcome outcome;
	int service = authenticate(req, res), parsed;

	if (service < 0)
		return;
	parsed = parse_target(req, &t);
	if (parsed == -404)
		response_error(res, 404, "not found");
	else if (parsed == -400)
		response_problem(
			res, 400, "bad_request",
			"lookup needs exactly one of spotify_id and account_id.");
	else if (resolve(req, res, &t, &who.user_id) == 0 && t.token)
		token_for_service(req, res, &who);
	else if (who.user_id)
		profile_answer(req, res, who.user_id);

	outcome = internal_outcome(res);
	metrics_internal_call(service, outcome);
	log_event(outcome == METRICS_INTERNAL_OK ? LOG_INFO : LOG_WARN, "internal_call",
		  LOG_STR("service", req->cfg->service_keys.keys[service].name),
		  LOG_INT("user_id", who.user_id),
		  LOG_STR("route", parsed < 0 ? "-"
				   : t.token  ? "token"
					      : "profile"),
		  LOG_STR("outcome", metrics_internal_label(outcome)));
}
