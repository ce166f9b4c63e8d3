/*
 * Route lookup: a linear scan, which for a dozen routes beats any index
 * and keeps the table the single readable list of endpoints. A route is
 * either public or internal: on the other listener it does not exist
 * (404), whatever the web server in front forwards. A path
 * whose last segment is '*' matches anything below it (one more segment
 * at least); the handler reads and checks the rest.
 */
#include "router.h"

#include <stdio.h>
#include <string.h>

static int
method_matches(enum http_method route, enum http_method asked)
{
	return route == asked || (route == HTTP_GET && asked == HTTP_HEAD);
}

static int
path_matches(const char *route, const char *path)
{
	size_t len = strlen(route);

	if (len >= 2 && route[len - 1] == '*' && route[len - 2] == '/')
		return strncmp(route, path, len - 1) == 0 && path[len - 1] != '\0';
	return strcmp(route, path) == 0;
}

static void
append_method(char *allow, size_t size, const char *name)
{
	size_t len = strlen(allow);

	if (strstr(allow, name))
		return;
	snprintf(allow + len, size - len, "%s%s", len ? ", " : "", name);
}

const struct route *
router_match(const struct route *table, size_t count, const struct request *req,
	     struct response *res)
{
	char allow[128] = "";
	int path_known = 0;

	for (size_t i = 0; i < count; i++) {
		if (table[i].internal != req->internal ||
		    !path_matches(table[i].path, req->path))
			continue;
		if (method_matches(table[i].method, req->method))
			return &table[i];
		path_known = 1;
		append_method(allow, sizeof(allow), http_method_name(table[i].method));
		if (table[i].method == HTTP_GET)
			append_method(allow, sizeof(allow), "HEAD");
	}

	if (res == NULL)
		return NULL;
	if (!path_known) {
		response_error(res, 404, "not found");
		return NULL;
	}
	response_header(res, "Allow", allow);
	response_error(res, 405, "method not allowed");
	return NULL;
}
