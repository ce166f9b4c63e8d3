/* Routing: exact and prefix paths, HEAD on GET routes, 404 and 405 with Allow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/router.h"

static void
noop(const struct request *req, struct response *res)
{
}

static const struct route table[] = {
	{HTTP_GET, "/me", noop, "me", 0, 0},
	{HTTP_DELETE, "/me", noop, "me_delete", 0, 0},
	{HTTP_POST, "/logout", noop, "logout", 0, 0},
	{HTTP_GET, "/x", noop, "x", 0, 0},
	{HTTP_DELETE, "/x/*", noop, "x_item", 0, 0},
	{HTTP_PUT, "/x/*", noop, "x_item_put", 0, 0},
	{HTTP_GET, "/internal/*", noop, "internal", 1, 0},
};

static struct response res;

/* The Allow header the response carries, or NULL. */
static const char *
fake_allow(void)
{
	return strstr(res.headers, "Allow: ");
}

static const struct route *
match(enum http_method method, const char *path)
{
	struct request req = {.method = method, .path = path};

	response_init(&res);
	return router_match(table, sizeof(table) / sizeof(table[0]), &req, &res);
}

static const struct route *
match_internal(enum http_method method, const char *path)
{
	struct request req = {.method = method, .path = path, .internal = 1};

	response_init(&res);
	return router_match(table, sizeof(table) / sizeof(table[0]), &req, &res);
}

static void
test_internal_route_is_404_on_the_public_listener(void **state)
{
	assert_null(match(HTTP_GET, "/internal/users/1/token"));
	assert_int_equal(res.status, 404);
	assert_null(fake_allow());
	assert_string_equal(match_internal(HTTP_GET, "/internal/users/1/token")->name,
			    "internal");
}

static void
test_public_route_is_404_on_the_internal_listener(void **state)
{
	assert_null(match_internal(HTTP_GET, "/me"));
	assert_int_equal(res.status, 404);
	assert_null(match_internal(HTTP_DELETE, "/x/1"));
	assert_int_equal(res.status, 404);
	/* a method of the other listener's route is not a 405 either */
	assert_null(match_internal(HTTP_POST, "/logout"));
	assert_int_equal(res.status, 404);
}

static void
test_exact_path_and_method_find_the_route(void **state)
{
	assert_string_equal(match(HTTP_GET, "/me")->name, "me");
	assert_string_equal(match(HTTP_DELETE, "/me")->name, "me_delete");
	assert_string_equal(match(HTTP_POST, "/logout")->name, "logout");
}

static void
test_head_is_served_by_the_get_route(void **state)
{
	assert_string_equal(match(HTTP_HEAD, "/me")->name, "me");
	assert_null(match(HTTP_HEAD, "/logout"));
	assert_int_equal(res.status, 405);
}

static void
test_unknown_path_is_404_json(void **state)
{
	assert_null(match(HTTP_GET, "/nope"));
	assert_int_equal(res.status, 404);
	assert_string_equal(res.body, "{\"error\":\"not found\"}\n");
	assert_null(match(HTTP_GET, "/me/"));
	assert_null(match(HTTP_GET, "/ME"));
	assert_int_equal(res.status, 404);
}

static void
test_wrong_method_is_405_with_every_allowed_method(void **state)
{
	assert_null(match(HTTP_POST, "/me"));
	assert_int_equal(res.status, 405);
	assert_string_equal(res.headers, "Allow: GET, HEAD, DELETE\r\n");
	assert_null(match(HTTP_OTHER, "/logout"));
	assert_string_equal(res.headers, "Allow: POST\r\n");
}

static void
test_a_star_segment_matches_one_segment_or_more_below_it(void **state)
{
	assert_string_equal(match(HTTP_DELETE, "/x/1")->name, "x_item");
	assert_string_equal(match(HTTP_DELETE, "/x/abc")->name, "x_item");
	assert_string_equal(match(HTTP_PUT, "/x/abc")->name, "x_item_put");
	/* the handler checks what is below; the router only finds it */
	assert_string_equal(match(HTTP_DELETE, "/x/1/2")->name, "x_item");
	assert_string_equal(match(HTTP_GET, "/x")->name, "x");
}

static void
test_a_star_segment_needs_something_below_its_prefix(void **state)
{
	static const char *const not_below[] = {"/x/", "/xy/1", "/x*", "/", "/y/x/1"};

	for (size_t i = 0; i < sizeof(not_below) / sizeof(not_below[0]); i++) {
		assert_null(match(HTTP_DELETE, not_below[i]));
		assert_int_equal(res.status, 404);
	}
	/* "/x" is a route of its own, without DELETE */
	assert_null(match(HTTP_DELETE, "/x"));
	assert_int_equal(res.status, 405);
	assert_string_equal(res.headers, "Allow: GET, HEAD\r\n");
}

static void
test_wrong_method_on_a_star_route_is_405_with_its_methods(void **state)
{
	assert_null(match(HTTP_GET, "/x/7"));
	assert_int_equal(res.status, 405);
	assert_string_equal(res.headers, "Allow: DELETE, PUT\r\n");
	assert_null(match(HTTP_POST, "/x/abc"));
	assert_string_equal(res.headers, "Allow: DELETE, PUT\r\n");
}

static void
test_app_routes_include_the_probes(void **state)
{
	struct request req = {.method = HTTP_GET, .path = "/healthz"};

	response_init(&res);
	assert_non_null(router_match(app_routes, app_route_count, &req, &res));
	req.path = "/readyz";
	assert_non_null(router_match(app_routes, app_route_count, &req, &res));
}

static void
test_app_routes_end_one_session_by_its_id(void **state)
{
	struct request req = {.method = HTTP_DELETE, .path = "/me/sessions/12"};
	const struct route *route;

	response_init(&res);
	route = router_match(app_routes, app_route_count, &req, &res);
	assert_non_null(route);
	assert_string_equal(route->name, "me_session_end");
	req.path = "/me/sessions/";
	assert_null(router_match(app_routes, app_route_count, &req, &res));
	assert_int_equal(res.status, 404);
	req.method = HTTP_GET;
	req.path = "/me/sessions";
	route = router_match(app_routes, app_route_count, &req, &res);
	assert_non_null(route);
	assert_string_equal(route->name, "me_sessions");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_path_and_method_find_the_route),
		cmocka_unit_test(test_internal_route_is_404_on_the_public_listener),
		cmocka_unit_test(test_public_route_is_404_on_the_internal_listener),
		cmocka_unit_test(test_head_is_served_by_the_get_route),
		cmocka_unit_test(test_unknown_path_is_404_json),
		cmocka_unit_test(test_wrong_method_is_405_with_every_allowed_method),
		cmocka_unit_test(
			test_a_star_segment_matches_one_segment_or_more_below_it),
		cmocka_unit_test(test_a_star_segment_needs_something_below_its_prefix),
		cmocka_unit_test(
			test_wrong_method_on_a_star_route_is_405_with_its_methods),
		cmocka_unit_test(test_app_routes_include_the_probes),
		cmocka_unit_test(test_app_routes_end_one_session_by_its_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
