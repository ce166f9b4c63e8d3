/*
 * A response is built in memory (status, a few headers, a bounded body)
 * and written to the FastCGI stream in one piece once the handler returns.
 */
#ifndef BAA_RESPONSE_H
#define BAA_RESPONSE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define RESPONSE_HEADERS_MAX 4096
#define RESPONSE_BODY_MAX 65536

struct response {
	int status;
	char headers[RESPONSE_HEADERS_MAX]; /* extra "Name: value\r\n" lines */
	size_t headers_len;
	char body[RESPONSE_BODY_MAX];
	size_t body_len;
	const char *content_type;
	int overflow; /* a header or body did not fit: sent as 500 instead */
	/*
	 * NULL: each cookie is a Set-Cookie line. Otherwise each is sent under
	 * this prefix and its number, "X-Baa-Set-Cookie-1", "-2": GET /auth's
	 * answer, whose headers nginx hands on one name at a time (see
	 * handlers/auth_request.c).
	 */
	const char *cookie_header_prefix;
	int cookies;
};

void response_init(struct response *res);

/* Adds "name: value"; both come from baa's code, never from a request. */
void response_header(struct response *res, const char *name, const char *value);

/* 204: no body, no Content-Type (nginx's auth_request reads only the headers). */
void response_no_content(struct response *res);

/* Sets status and a JSON body printed from json (which stays the caller's). */
void response_json(struct response *res, int status, const cJSON *json);

/* Sets status and a body of another type; body is copied. */
void response_body(struct response *res, int status, const char *content_type,
		   const char *body, size_t len);

/* Sets status and the body {key: value}. */
void response_json_string(struct response *res, int status, const char *key,
			  const char *value);

/* Sets status and {"error": message}. */
void response_error(struct response *res, int status, const char *message);

/*
 * Sets status and {"error": code, "message": message}: a code a program
 * can act on (the static page maps it to its text) and a sentence for a
 * person.
 */
void response_problem(struct response *res, int status, const char *code,
		      const char *message);

/*
 * A JSON object written member by member straight into the body, without
 * allocating (GET /me, the hot path, answers this way). Names are baa's
 * own; string values must be UTF-8 (baa's own, or checked when they came
 * in) and are escaped as JSON needs. Running out of room sets overflow.
 */
void response_object_begin(struct response *res, int status);
void response_member_raw(struct response *res, const char *name, const char *json);
/* NULL or "" with empty_is_null: null. */
void response_member_string(struct response *res, const char *name, const char *value,
			    int empty_is_null);
void response_member_bool(struct response *res, const char *name, int value);
void response_object_end(struct response *res);

/*
 * Sets a cookie for the whole site: HttpOnly; Secure; SameSite=Lax. A
 * max_age of 0 deletes it.
 */
void response_cookie(struct response *res, const char *name, const char *value,
		     long max_age);

/*
 * 503 {"error": "database unavailable"}: every handler's answer when
 * PostgreSQL could not be reached or refused a statement, never a 401 or
 * a 404 that would tell the client something untrue.
 */
void response_database_unavailable(struct response *res);

/* 302 to location, with a small JSON body for clients that show it. */
void response_redirect(struct response *res, const char *location);

/* The same with another 3xx status (303 See Other after a failed /callback). */
void response_redirect_status(struct response *res, int status, const char *location);

const char *response_reason(int status);

/*
 * Renders the whole FastCGI response (CGI headers, blank line, body unless
 * head_only) into out; returns its length, or 0 when out is too small.
 */
size_t response_render(const struct response *res, int head_only, char *out, size_t size);

#endif
