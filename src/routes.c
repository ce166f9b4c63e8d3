/*
 * Every endpoint baa serves, in one table: method, path, handler, name,
 * internal (BAA_INTERNAL_LISTEN only), session (checks the session: its
 * lookup may be batched, router.h).
 */
#include "handlers/handlers.h"
#include "router.h"

const struct route app_routes[] = {
	{HTTP_GET, "/healthz", health_live, "healthz", 0, 0},
	{HTTP_GET, "/readyz", health_ready, "readyz", 0, 0},
	{HTTP_GET, "/login", auth_login, "login", 0, 0},
	{HTTP_GET, "/callback", auth_callback, "callback", 0, 0},
	{HTTP_POST, "/logout", auth_logout, "logout", 0, 0},
	{HTTP_GET, "/me", me_profile, "me", 0, 1},
	{HTTP_GET, "/auth", auth_request_check, "auth", 0, 1},
	{HTTP_DELETE, "/me", me_delete, "me_delete", 0, 0},
	{HTTP_GET, "/me/token", me_token, "me_token", 0, 1},
	{HTTP_GET, "/me/sessions", me_sessions, "me_sessions", 0, 1},
	{HTTP_DELETE, "/me/sessions/*", me_session_end, "me_session_end", 0, 0},
	{HTTP_GET, "/me/activity", me_activity, "me_activity", 0, 1},
	{HTTP_GET, "/metrics", metrics_scrape, "metrics", 0, 0},
	/* BAA_INTERNAL_LISTEN only: backend services (handlers/internal.c). */
	{HTTP_GET, "/internal/users/*", internal_user, "internal_users", 1, 0},
};

const size_t app_route_count = sizeof(app_routes) / sizeof(app_routes[0]);
