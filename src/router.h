/*
 * (method, path) -> handler. Exact paths, or a path ending in a '*'
 * segment for everything below it; GET routes answer HEAD too.
 */
#ifndef BAA_ROUTER_H
#define BAA_ROUTER_H

#include <stddef.h>

#include "request.h"
#include "response.h"

typedef void route_handler(const struct request *req, struct response *res);

struct route {
	enum http_method method;
	const char *path;
	route_handler *handler;
	const char *name; /* a short label for logs and metrics */
	int internal;	  /* served only on the internal listener, and it only these */
	/* Its handler checks the request's session (current_require): the
	 * worker may look that up with its wake-up's others (worker.c). */
	int session;
};

/*
 * Finds the route for req in table among the routes of req's listener
 * (internal or public: the other's are not there at all). Returns it, or NULL after
 * filling res with 404, or 405 and an Allow header naming the path's methods
 * (res NULL: only the route is wanted).
 */
const struct route *router_match(const struct route *table, size_t count,
				 const struct request *req, struct response *res);

/* Room for this many routes in the tables sized by them (/metrics). */
#define ROUTES_MAX 32

/* The application's routes (routes.c). */
extern const struct route app_routes[];
extern const size_t app_route_count;

#endif
