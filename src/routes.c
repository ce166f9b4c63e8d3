/*
 * Every endpoint baa serves, in one table.
 */
#include "handlers/handlers.h"
#include "router.h"

const struct route app_routes[] = {
	{HTTP_GET, "/healthz", health_live, "healthz"},
	{HTTP_GET, "/readyz", health_ready, "readyz"},
};

const size_t app_route_count = sizeof(app_routes) / sizeof(app_routes[0]);
