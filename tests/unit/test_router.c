/* Routing: exact paths, HEAD on GET routes, 404 and 405 with Allow. */
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
	{HTTP_GET, "/me", noop, "me"},
	{HTTP_DELETE, "/me", noop, "me_delete"},
	{HTTP_POST, "/logout", noop, "logout"},
};

static struct response res;

static const struct route *
match(enum http_method method, const char *path)
{
	struct request req = {.method = method, .path = path};

	response_init(&res);
	return router_match(table, 3, &req, &res);
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
test_app_routes_include_the_probes(void **state)
{
	struct request req = {.method = HTTP_GET, .path = "/healthz"};

	response_init(&res);
	assert_non_null(router_match(app_routes, app_route_count, &req, &res));
	req.path = "/readyz";
	assert_non_null(router_match(app_routes, app_route_count, &req, &res));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_path_and_method_find_the_route),
		cmocka_unit_test(test_head_is_served_by_the_get_route),
		cmocka_unit_test(test_unknown_path_is_404_json),
		cmocka_unit_test(test_wrong_method_is_405_with_every_allowed_method),
		cmocka_unit_test(test_app_routes_include_the_probes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
