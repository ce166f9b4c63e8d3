/*
 * The FastCGI parameters as baa reads them: the input, split at newlines,
 * is the "NAME=value" array libfcgi hands over (each a C string, so a NUL
 * ends it, as in libfcgi); then request_parse, router_match and the
 * rendering of the router's answer, as the worker runs them. Invariants:
 * an accepted request has a known method name, an absolute bounded path,
 * a bounded length, and fields that point into the parameters; a route
 * found has the request's path, or, when its last segment is '*', the
 * path's beginning with more below it, and belongs to the request's
 * listener (internal or public); a request the router turns down
 * gets 404, or 405 with an Allow header.
 */
#include "fuzz.h"

#include "../../src/request.h"
#include "../../src/response.h"
#include "../../src/router.h"

#define PARAMS_MAX_COUNT 64

/* Whether s is a pointer into one of the parameters (or, for query, ""). */
static int
points_into(const char *s, char *const *envp, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (s >= envp[i] && s <= envp[i] + strlen(envp[i]))
			return 1;
	return 0;
}

static void
check_request(const struct request *req, char *const *envp, size_t count)
{
	int known = 0;

	for (int m = HTTP_GET; m <= HTTP_OTHER; m++)
		known |= strcmp(req->method_name,
				http_method_name((enum http_method)m)) == 0;
	FUZZ_ASSERT(known);
	FUZZ_ASSERT(strcmp(req->method_name, http_method_name(req->method)) == 0);
	FUZZ_ASSERT(req->path[0] == '/' && strlen(req->path) <= REQUEST_PATH_MAX);
	FUZZ_ASSERT(points_into(req->path, envp, count));
	FUZZ_ASSERT(req->query != NULL &&
		    (req->query[0] == '\0' || points_into(req->query, envp, count)));
	FUZZ_ASSERT(req->cookie == NULL || points_into(req->cookie, envp, count));
	FUZZ_ASSERT(req->sec_fetch_mode == NULL ||
		    points_into(req->sec_fetch_mode, envp, count));
	FUZZ_ASSERT(req->sec_fetch_site == NULL ||
		    points_into(req->sec_fetch_site, envp, count));
	FUZZ_ASSERT(req->origin == NULL || points_into(req->origin, envp, count));
	FUZZ_ASSERT(req->user_agent == NULL || points_into(req->user_agent, envp, count));
	FUZZ_ASSERT(req->authorization == NULL ||
		    points_into(req->authorization, envp, count));
	FUZZ_ASSERT(!req->internal); /* the worker's flag, not a parameter */
	FUZZ_ASSERT(req->remote_addr == NULL ||
		    points_into(req->remote_addr, envp, count));
	FUZZ_ASSERT(req->content_length >= 0 && req->content_length < 1000000000000L);
}

/* Whether route names path: the same, or a prefix and more below it when
 * the route's last segment is '*'. */
static int
route_names(const char *route, const char *path)
{
	size_t len = strlen(route);

	if (len >= 2 && strcmp(route + len - 2, "/*") == 0)
		return strncmp(route, path, len - 1) == 0 && strlen(path) >= len;
	return strcmp(route, path) == 0;
}

static void
check_routing(const struct request *req)
{
	static struct response res;
	static char out[RESPONSE_HEADERS_MAX + RESPONSE_BODY_MAX + 256];
	const struct route *route;

	response_init(&res);
	route = router_match(app_routes, app_route_count, req, &res);
	if (route) {
		FUZZ_ASSERT(route_names(route->path, req->path));
		FUZZ_ASSERT(route->internal == req->internal);
		FUZZ_ASSERT(route->method == req->method ||
			    (route->method == HTTP_GET && req->method == HTTP_HEAD));
		return;
	}
	FUZZ_ASSERT(res.status == 404 || res.status == 405);
	FUZZ_ASSERT(res.status == 404 || strstr(res.headers, "Allow: ") != NULL);
	FUZZ_ASSERT(!res.overflow);
	FUZZ_ASSERT(response_render(&res, req->method == HTTP_HEAD, out, sizeof(out)) >
		    0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size), *end = text + size, *line = text;
	char *envp[PARAMS_MAX_COUNT + 1];
	size_t count = 0;
	struct request req;
	enum request_error status;

	while (line <= end && count < PARAMS_MAX_COUNT) {
		char *newline = memchr(line, '\n', (size_t)(end - line));
		if (newline)
			*newline = '\0';
		envp[count++] = line;
		line = newline ? newline + 1 : end + 1;
	}
	envp[count] = NULL;

	status = request_parse(envp, &req);
	FUZZ_ASSERT(status == REQUEST_OK || status == REQUEST_BAD ||
		    status == REQUEST_URI_TOO_LONG);
	if (status == REQUEST_OK) {
		check_request(&req, envp, count);
		check_routing(&req);
		/* The same request on the internal listener (the worker's flag). */
		req.internal = 1;
		check_routing(&req);
	}
	free(text);
	return 0;
}
