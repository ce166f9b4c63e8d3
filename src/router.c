/*
 * Route lookup: a linear scan, which for a dozen routes beats any index
 * and keeps the table the single readable list of endpoints.
 */
#include "router.h"

#include <stdio.h>
#include <string.h>

static int
method_matches(enum http_method route, enum http_method asked)
{
	return route == asked || (route == HTTP_GET && asked == HTTP_HEAD);
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
		if (strcmp(table[i].path, req->path) != 0)
			continue;
		if (method_matches(table[i].method, req->method))
			return &table[i];
		path_known = 1;
		append_method(allow, sizeof(allow), http_method_name(table[i].method));
		if (table[i].method == HTTP_GET)
			append_method(allow, sizeof(allow), "HEAD");
	}

	if (!path_known) {
		response_error(res, 404, "not found");
		return NULL;
	}
	response_header(res, "Allow", allow);
	response_error(res, 405, "method not allowed");
	return NULL;
}
