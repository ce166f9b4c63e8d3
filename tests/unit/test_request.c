/* FastCGI parameters reduced to a request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/request.h"

static void
test_nginx_parameters_become_a_request(void **state)
{
	char *params[] = {"FCGI_ROLE=RESPONDER",	  "QUERY_STRING=a=1&b=2",
			  "REQUEST_METHOD=GET",		  "CONTENT_LENGTH=",
			  "SCRIPT_NAME=/healthz",	  "REQUEST_URI=/healthz?a=1&b=2",
			  "DOCUMENT_URI=/healthz",	  "HTTP_COOKIE=baa_session=x",
			  "HTTP_SEC_FETCH_MODE=navigate", NULL};
	struct request req;

	assert_int_equal(request_parse(params, &req), REQUEST_OK);
	assert_int_equal(req.method, HTTP_GET);
	assert_string_equal(req.path, "/healthz");
	assert_string_equal(req.query, "a=1&b=2");
	assert_string_equal(req.cookie, "baa_session=x");
	assert_string_equal(req.sec_fetch_mode, "navigate");
	assert_int_equal(req.content_length, 0);
}

static void
test_script_name_is_used_without_document_uri(void **state)
{
	char *params[] = {"REQUEST_METHOD=HEAD", "SCRIPT_NAME=/readyz", NULL};
	struct request req;

	assert_int_equal(request_parse(params, &req), REQUEST_OK);
	assert_int_equal(req.method, HTTP_HEAD);
	assert_string_equal(req.path, "/readyz");
	assert_string_equal(req.query, "");
	assert_null(req.cookie);
	assert_null(req.sec_fetch_mode);
	assert_null(req.sec_fetch_site);
	assert_null(req.origin);
	assert_null(req.user_agent);
	assert_null(req.remote_addr);
	assert_null(req.authorization);
	assert_false(req.internal); /* the worker's to say, never a parameter's */
}

static void
test_client_headers_and_address_are_read(void **state)
{
	char *params[] = {"REQUEST_METHOD=POST",
			  "DOCUMENT_URI=/logout",
			  "REMOTE_ADDR=203.0.113.7",
			  "REMOTE_PORT=51234",
			  "HTTP_SEC_FETCH_SITE=same-origin",
			  "HTTP_ORIGIN=https://baa.example",
			  "HTTP_USER_AGENT=Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
			  "HTTP_ORIGIN_X=https://evil.example",
			  "HTTP_SEC_FETCH_SITEX=cross-site",
			  "HTTP_AUTHORIZATION=Bearer k3y",
			  "HTTP_AUTHORIZATIONX=Bearer other",
			  "HTTP_ACCEPT=text/html,*/*;q=0.8",
			  "HTTP_ACCEPT_LANGUAGE=en",
			  "REQUEST_URI=/app/x?a=1&b=%20",
			  NULL};
	struct request req;

	assert_int_equal(request_parse(params, &req), REQUEST_OK);
	assert_string_equal(req.remote_addr, "203.0.113.7");
	assert_string_equal(req.sec_fetch_site, "same-origin");
	assert_string_equal(req.origin, "https://baa.example");
	assert_string_equal(req.user_agent,
			    "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0");
	assert_null(req.sec_fetch_mode);
	assert_null(req.cookie);
	assert_string_equal(req.authorization, "Bearer k3y");
	assert_string_equal(req.accept, "text/html,*/*;q=0.8");
	/* raw: the URI a login sends the browser back to (GET /auth) */
	assert_string_equal(req.request_uri, "/app/x?a=1&b=%20");
}

static void
test_empty_client_headers_are_empty_not_absent(void **state)
{
	char *params[] = {"REQUEST_METHOD=GET",
			  "DOCUMENT_URI=/me",
			  "HTTP_ORIGIN=",
			  "HTTP_USER_AGENT=",
			  "HTTP_SEC_FETCH_SITE=",
			  "REMOTE_ADDR=",
			  NULL};
	struct request req;

	assert_int_equal(request_parse(params, &req), REQUEST_OK);
	assert_string_equal(req.origin, "");
	assert_string_equal(req.user_agent, "");
	assert_string_equal(req.sec_fetch_site, "");
	assert_string_equal(req.remote_addr, "");
}

static void
test_a_prefix_of_a_parameter_name_does_not_match(void **state)
{
	char *params[] = {"REQUEST_METHOD_X=POST", "REQUEST_METHOD=GET",
			  "DOCUMENT_URIX=/evil", "DOCUMENT_URI=/ok", NULL};
	struct request req;

	assert_int_equal(request_parse(params, &req), REQUEST_OK);
	assert_int_equal(req.method, HTTP_GET);
	assert_string_equal(req.path, "/ok");
}

static void
test_unknown_methods_are_kept_apart(void **state)
{
	char *params[] = {"REQUEST_METHOD=BREW", "DOCUMENT_URI=/", NULL};
	struct request req;

	assert_int_equal(request_parse(params, &req), REQUEST_OK);
	assert_int_equal(req.method, HTTP_OTHER);
	assert_string_equal(req.method_name, "OTHER");
}

static void
test_missing_method_or_path_is_a_bad_request(void **state)
{
	char *no_method[] = {"DOCUMENT_URI=/healthz", NULL};
	char *no_path[] = {"REQUEST_METHOD=GET", NULL};
	char *relative[] = {"REQUEST_METHOD=GET", "DOCUMENT_URI=healthz", NULL};
	char *huge_method[] = {"REQUEST_METHOD=AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			       "DOCUMENT_URI=/", NULL};
	struct request req;

	assert_int_equal(request_parse(no_method, &req), REQUEST_BAD);
	assert_int_equal(request_parse(no_path, &req), REQUEST_BAD);
	assert_int_equal(request_parse(relative, &req), REQUEST_BAD);
	assert_int_equal(request_parse(huge_method, &req), REQUEST_BAD);
	assert_int_equal(request_parse(NULL, &req), REQUEST_BAD);
}

static void
test_overlong_path_is_uri_too_long(void **state)
{
	static char param[REQUEST_PATH_MAX + 64];
	char *params[] = {"REQUEST_METHOD=GET", param, NULL};
	struct request req;

	strcpy(param, "DOCUMENT_URI=/");
	memset(param + strlen(param), 'a', REQUEST_PATH_MAX + 1);
	assert_int_equal(request_parse(params, &req), REQUEST_URI_TOO_LONG);
}

static void
test_content_length_must_be_a_plain_number(void **state)
{
	char good[] = "CONTENT_LENGTH=42";
	char *params[] = {"REQUEST_METHOD=POST", "DOCUMENT_URI=/x", good, NULL};
	static char bad[][40] = {"CONTENT_LENGTH=-1", "CONTENT_LENGTH=4x",
				 "CONTENT_LENGTH=9999999999999999"};
	struct request req;

	assert_int_equal(request_parse(params, &req), REQUEST_OK);
	assert_int_equal(req.content_length, 42);
	for (size_t i = 0; i < 3; i++) {
		params[2] = bad[i];
		assert_int_equal(request_parse(params, &req), REQUEST_BAD);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nginx_parameters_become_a_request),
		cmocka_unit_test(test_script_name_is_used_without_document_uri),
		cmocka_unit_test(test_client_headers_and_address_are_read),
		cmocka_unit_test(test_empty_client_headers_are_empty_not_absent),
		cmocka_unit_test(test_a_prefix_of_a_parameter_name_does_not_match),
		cmocka_unit_test(test_unknown_methods_are_kept_apart),
		cmocka_unit_test(test_missing_method_or_path_is_a_bad_request),
		cmocka_unit_test(test_overlong_path_is_uri_too_long),
		cmocka_unit_test(test_content_length_must_be_a_plain_number),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
