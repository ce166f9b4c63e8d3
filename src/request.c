/*
 * Reads the FastCGI parameters in one pass. The path comes from nginx's
 * DOCUMENT_URI (percent-decoded, dot segments resolved, no query), so baa
 * routes on the same path nginx's locations matched.
 */
#include "request.h"

#include <string.h>

#define METHOD_NAME_MAX 16

static const char *const method_names[] = {
	[HTTP_GET] = "GET",	    [HTTP_HEAD] = "HEAD",     [HTTP_POST] = "POST",
	[HTTP_PUT] = "PUT",	    [HTTP_DELETE] = "DELETE", [HTTP_PATCH] = "PATCH",
	[HTTP_OPTIONS] = "OPTIONS", [HTTP_OTHER] = "OTHER",
};

const char *
http_method_name(enum http_method m)
{
	return method_names[m];
}

static enum http_method
parse_method(const char *s)
{
	for (int m = HTTP_GET; m < HTTP_OTHER; m++)
		if (strcmp(s, method_names[m]) == 0)
			return (enum http_method)m;
	return HTTP_OTHER;
}

/* "NAME=value": returns value when param names key, else NULL. */
static const char *
param_value(const char *param, const char *key, size_t keylen)
{
	if (strncmp(param, key, keylen) == 0 && param[keylen] == '=')
		return param + keylen + 1;
	return NULL;
}

#define MATCH(var, name)                                                                 \
	if ((v = param_value(p, name, sizeof(name) - 1)) != NULL) {                      \
		var = v;                                                                 \
		continue;                                                                \
	}

enum request_error
request_parse(char *const *params, struct request *req)
{
	const char *method = NULL, *document_uri = NULL, *script_name = NULL;
	const char *length = NULL, *v;

	memset(req, 0, sizeof(*req));
	req->query = "";
	/* nginx sends some twenty parameters: the first letter rules out most
	 * before any comparison. */
	for (; params && *params; params++) {
		const char *p = *params;
		switch (p[0]) {
		case 'R':
			MATCH(method, "REQUEST_METHOD")
			MATCH(req->remote_addr, "REMOTE_ADDR")
			MATCH(req->request_uri, "REQUEST_URI")
			break;
		case 'D': MATCH(document_uri, "DOCUMENT_URI") break;
		case 'S': MATCH(script_name, "SCRIPT_NAME") break;
		case 'Q': MATCH(req->query, "QUERY_STRING") break;
		case 'H':
			MATCH(req->cookie, "HTTP_COOKIE")
			MATCH(req->sec_fetch_mode, "HTTP_SEC_FETCH_MODE")
			MATCH(req->sec_fetch_site, "HTTP_SEC_FETCH_SITE")
			MATCH(req->origin, "HTTP_ORIGIN")
			MATCH(req->user_agent, "HTTP_USER_AGENT")
			MATCH(req->authorization, "HTTP_AUTHORIZATION")
			MATCH(req->accept, "HTTP_ACCEPT")
			break;
		case 'C': MATCH(length, "CONTENT_LENGTH") break;
		}
	}

	if (method == NULL || method[0] == '\0' || strlen(method) > METHOD_NAME_MAX)
		return REQUEST_BAD;
	req->method = parse_method(method);
	req->method_name =
		req->method == HTTP_OTHER ? "OTHER" : method_names[req->method];

	/* SCRIPT_NAME is the CGI name for the same path, for front ends
	 * that do not send nginx's DOCUMENT_URI. */
	req->path = document_uri ? document_uri : script_name;
	if (req->path == NULL || req->path[0] != '/')
		return REQUEST_BAD;
	if (strlen(req->path) > REQUEST_PATH_MAX)
		return REQUEST_URI_TOO_LONG;

	if (length != NULL && length[0] != '\0') {
		long n = 0;
		if (strspn(length, "0123456789") != strlen(length) || strlen(length) > 12)
			return REQUEST_BAD;
		for (const char *c = length; *c; c++)
			n = n * 10 + (*c - '0');
		req->content_length = n;
	}
	return REQUEST_OK;
}
