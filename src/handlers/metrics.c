/*
 * GET /metrics: the instance's counters in Prometheus text format. Who may
 * read them is nginx's decision (the production config allows only
 * trusted addresses).
 */
#include "handlers.h"

#include "../config.h"
#include "../metrics.h"

#define PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

void
metrics_scrape(const struct request *req, struct response *res)
{
	static char text[RESPONSE_BODY_MAX];
	static const char *names[ROUTES_MAX];
	size_t len;

	for (size_t i = 0; i < app_route_count && i < ROUTES_MAX; i++)
		names[i] = app_routes[i].name;
	len = metrics_render(text, sizeof(text), names, &req->cfg->service_keys);
	if (len == 0) {
		response_error(res, 500, "metrics unavailable");
		return;
	}
	response_body(res, 200, PROMETHEUS_TYPE, text, len);
}
