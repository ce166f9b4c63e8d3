/*
 * Scopes asked for when needed: the require= check of the token routes
 * (GET /me/token, and the services' internal token route, which call the
 * same two functions), and the /login URL that asks for what is missing.
 * The stored grant is what Spotify's token answer said at the last login;
 * a route that needs more answers 403 insufficient_scope before any call
 * to Spotify, and the client sends the person to the login it names. What
 * may be asked for at all (SPOTIFY_SCOPES_ALLOWED) is checked here too,
 * for /login's scope= and the token routes' require= alike.
 */
#include "handlers.h"

#include <stdio.h>
#include <string.h>

#include "../params.h"
#include "../scopes.h"
#include "../session.h"

/* The longest login URL: every name of a full set, and a SESSION_NEXT_MAX path
 * with every byte escaped. */
#define LOGIN_URL_MAX (32 + 3 * SCOPES_TEXT_MAX + 3 * SESSION_NEXT_MAX)

int
scope_parse_request(const struct params *query, const char *name, struct scopes *out,
		    struct response *res)
{
	const char *value = params_get(query, name);
	char message[160];

	out->count = 0;
	if (value == NULL)
		return 0;
	if (params_count(query, name) == 1 &&
	    scopes_parse(out, value, strlen(value), SCOPES_STRICT) == 0)
		return 0;
	snprintf(message, sizeof(message),
		 "%s must be one list of Spotify scope names (lowercase letters, digits "
		 "and '-') separated by spaces or '+', at most %d names and %d "
		 "characters",
		 name, SCOPES_MAX, SCOPES_TEXT_MAX);
	response_problem(res, 400, "invalid_scope", message);
	return -1;
}

void
scope_allowed(const struct config *cfg, struct scopes *out)
{
	scopes_parse_or_none(cfg->spotify_scopes_allowed ? cfg->spotify_scopes_allowed
							 : cfg->spotify_scopes,
			     out);
}

int
scope_check_allowed(const struct scopes *requested, const struct scopes *allowed,
		    struct response *res)
{
	char message[160];

	for (int i = 0; i < requested->count; i++) {
		if (scopes_has(allowed, requested->names[i]))
			continue;
		/* The name passed SCOPES_STRICT: safe to quote. */
		snprintf(message, sizeof(message),
			 "This app does not ask Spotify for the scope '%s'.",
			 requested->names[i]);
		response_problem(res, 400, "scope_not_allowed", message);
		return -1;
	}
	return 0;
}

/* Appends text to out, percent-encoded but for RFC 3986's unreserved bytes. */
static int
append_encoded(char *out, size_t size, size_t *used, const char *text)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		int plain = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789-._~",
				   *c) != NULL;

		if (*used + 4 > size)
			return -1;
		if (plain) {
			out[(*used)++] = (char)*c;
		} else {
			out[(*used)++] = '%';
			out[(*used)++] = hex[*c >> 4];
			out[(*used)++] = hex[*c & 15];
		}
	}
	out[*used] = '\0';
	return 0;
}

int
scope_login_url(const struct scopes *scopes, const char *next, char *out, size_t size)
{
	char names[SCOPES_TEXT_MAX + 1];
	size_t used = 0;
	int n;

	if (next == NULL || !session_is_local_path(next))
		next = "/";
	n = snprintf(out, size, "/login?scope=");
	if (n < 0 || (size_t)n >= size)
		return -1;
	used = (size_t)n;
	if (scopes_format(scopes, names, sizeof(names)) < 0 ||
	    append_encoded(out, size, &used, names) < 0 || used + 6 >= size)
		return -1;
	memcpy(out + used, "&next=", 7);
	used += 6;
	return append_encoded(out, size, &used, next);
}

/*
 * The login asks for every required scope, not only the missing ones:
 * /login adds the stored grant only when the browser still has the
 * session, and a login from elsewhere must still end with all of them.
 */
int
scope_require(const char *granted, const struct scopes *required, const char *next,
	      struct response *res)
{
	static struct scopes have, missing;
	char login[LOGIN_URL_MAX], list[SCOPES_MAX * (SCOPES_NAME_MAX + 3) + 3];
	size_t used = 0;

	if (required->count == 0)
		return 0;
	/* Spotify's own text; one that does not parse grants nothing. */
	if (granted == NULL ||
	    scopes_parse(&have, granted, strlen(granted), SCOPES_LOOSE) < 0)
		have.count = 0;
	scopes_missing(&have, required, &missing);
	if (missing.count == 0)
		return 0;
	/* Neither syntax of scopes.h has a byte that JSON would escape. */
	list[used++] = '[';
	for (int i = 0; i < missing.count; i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s\"%s\"",
					 i ? "," : "", missing.names[i]);
	list[used++] = ']';
	list[used] = '\0';
	if (scope_login_url(required, next, login, sizeof(login)) < 0 &&
	    scope_login_url(required, "/", login, sizeof(login)) < 0) {
		response_error(res, 500, "could not name the login");
		return -1;
	}
	response_object_begin(res, 403);
	response_member_string(res, "error", "insufficient_scope", 0);
	response_member_string(res, "message",
			       "Spotify has not granted baa every scope this needs. "
			       "Log in with Spotify again to grant the missing ones.",
			       0);
	response_member_raw(res, "missing", list);
	response_member_string(res, "login", login, 0);
	response_object_end(res);
	return -1;
}

/*
 * require= as a token route takes it: a list, naming at least one scope
 * (an empty one is a caller's bug, not "nothing needed"), each in
 * SPOTIFY_SCOPES_ALLOWED, so that the caller learns of a scope baa never
 * asks for at once, with /login's own answer, not from a 403 whose login
 * link then fails.
 */
static int
token_required(const struct request *req, const struct params *query,
	       struct scopes *required, struct response *res)
{
	static struct scopes allowed;

	if (scope_parse_request(query, "require", required, res) < 0)
		return -1;
	if (params_get(query, "require") != NULL && required->count == 0) {
		response_problem(res, 400, "invalid_scope",
				 "require must name at least one Spotify scope.");
		return -1;
	}
	scope_allowed(req->cfg, &allowed);
	return scope_check_allowed(required, &allowed, res);
}

int
scope_token_query(const struct request *req, struct params *query,
		  struct scopes *required, const char **next, struct response *res)
{
	*next = NULL;
	required->count = 0;
	if (params_parse_form(query, req->query, strlen(req->query)) != PARAMS_OK) {
		response_error(res, 400, "malformed query string");
		return -1;
	}
	if (token_required(req, query, required, res) < 0)
		return -1;
	*next = params_get(query, "next");
	if (*next && (params_count(query, "next") > 1 || !session_is_local_path(*next))) {
		response_error(res, 400,
			       "next must be a single local path such as /account");
		return -1;
	}
	return 0;
}
