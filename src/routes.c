/*
 * Every endpoint baa serves, in one table.
 */
#include "handlers/handlers.h"
#include "router.h"

const struct route app_routes[] = {
	{HTTP_GET, "/healthz", health_live, "healthz"},
	{HTTP_GET, "/readyz", health_ready, "readyz"},
	{HTTP_GET, "/login", auth_login, "login"},
	{HTTP_GET, "/callback", auth_callback, "callback"},
	{HTTP_POST, "/logout", auth_logout, "logout"},
	{HTTP_GET, "/me", me_profile, "me"},
	{HTTP_GET, "/auth", auth_request_check, "auth"},
	{HTTP_DELETE, "/me", me_delete, "me_delete"},
	{HTTP_GET, "/me/token", me_token, "me_token"},
	{HTTP_GET, "/me/sessions", me_sessions, "me_sessions"},
	{HTTP_DELETE, "/me/sessions/*", me_session_end, "me_session_end"},
	{HTTP_GET, "/me/activity", me_activity, "me_activity"},
	{HTTP_GET, "/metrics", metrics_scrape, "metrics"},
};

const size_t app_route_count = sizeof(app_routes) / sizeof(app_routes[0]);
