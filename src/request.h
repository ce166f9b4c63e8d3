/*
 * A FastCGI request reduced to the typed fields handlers use. Parsing
 * happens once, at the edge, before routing; handlers see clean values.
 */
#ifndef BAA_REQUEST_H
#define BAA_REQUEST_H

#include <stddef.h>

#define REQUEST_PATH_MAX 2048

enum http_method {
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PUT,
	HTTP_DELETE,
	HTTP_PATCH,
	HTTP_OPTIONS,
	HTTP_OTHER,
};

struct config;
struct db;

struct current_key;

struct request {
	enum http_method method;
	const char *method_name;    /* as sent, for the log; bounded by the parser */
	const char *path;	    /* decoded and normalised by nginx, no query */
	const char *query;	    /* raw, without '?'; "" when absent */
	const char *cookie;	    /* raw Cookie header, NULL when absent */
	const char *sec_fetch_mode; /* Sec-Fetch-Mode header, NULL when absent */
	const char *sec_fetch_site; /* Sec-Fetch-Site header, NULL when absent */
	const char *origin;	    /* Origin header, NULL when absent */
	const char *user_agent;	    /* User-Agent header, NULL when absent */
	const char *accept;	    /* Accept header, NULL when absent */
	const char *remote_addr;    /* the client's address as nginx saw it, or NULL */
	const char *authorization;  /* Authorization header, NULL when absent */
	int internal;		    /* came on BAA_INTERNAL_LISTEN (the worker says) */
	long content_length;	    /* 0 when absent */
	struct db *db;		    /* the worker's connection, for handlers */
	const struct config *cfg;
	/* The URI the client asked for, raw (query included), NULL when absent:
	 * in nginx's auth_request subrequest, the protected request's. */
	const char *request_uri;
	/* The session cookie as the worker verified it ahead (handlers.h);
	 * NULL: not verified yet, or none there. */
	const struct current_key *session_key;
};

enum request_error {
	REQUEST_OK = 0,
	REQUEST_BAD = 400,
	REQUEST_URI_TOO_LONG = 414,
};

/*
 * Fills req from the FastCGI parameters (a NULL-terminated "NAME=value"
 * array, which req then points into). Returns REQUEST_OK or the HTTP
 * status to answer with.
 */
enum request_error request_parse(char *const *params, struct request *req);

const char *http_method_name(enum http_method m);

#endif
