/* Origins of URLs, and which POSTs and DELETEs a browser may send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/origin.h"

#define SITE "https://baa.example.org"

static void
expect_origin(const char *url, const char *origin)
{
	char out[ORIGIN_MAX];

	assert_int_equal(origin_of_url(url, out, sizeof(out)), 0);
	assert_string_equal(out, origin);
}

static void
test_origin_is_scheme_host_and_port_of_the_url(void **state)
{
	expect_origin("https://baa.example.org/callback", SITE);
	expect_origin("https://baa.example.org", SITE);
	expect_origin("https://baa.example.org?x=1", SITE);
	expect_origin("https://baa.example.org#top", SITE);
	expect_origin("http://localhost:8080/callback", "http://localhost:8080");
	expect_origin("https://127.0.0.1:8443/", "https://127.0.0.1:8443");
}

static void
test_origin_leaves_out_the_default_port_only(void **state)
{
	expect_origin("https://baa.example.org:443/callback", SITE);
	expect_origin("https://baa.example.org:0443/", SITE);
	expect_origin("http://baa.example.org:80/", "http://baa.example.org");
	expect_origin("https://baa.example.org:80/", "https://baa.example.org:80");
	expect_origin("http://baa.example.org:443/", "http://baa.example.org:443");
}

static void
test_origin_lowercases_scheme_and_host(void **state)
{
	expect_origin("HTTPS://BAA.Example.ORG/Callback", SITE);
	expect_origin("Http://LocalHost:8080", "http://localhost:8080");
}

static void
test_origin_keeps_ipv6_literals_bracketed_and_canonical(void **state)
{
	expect_origin("https://[2001:DB8::1]:8443/x", "https://[2001:db8::1]:8443");
	expect_origin("http://[::1]/", "http://[::1]");
	expect_origin("https://[2001:0db8:0:0:0:0:0:0001]:443", "https://[2001:db8::1]");
}

static void
test_what_is_not_an_http_url_has_no_origin(void **state)
{
	static const char *const bad[] = {
		"",
		"null",
		"ftp://baa.example.org/",
		"//baa.example.org/callback",
		"/callback",
		"https:baa.example.org",
		"http:/baa.example.org",
		"https://",
		"https:///callback",
		"https://baa.example.org:",
		"https://baa.example.org:0",
		"https://baa.example.org:65536",
		"https://baa.example.org:123456",
		"https://baa.example.org:8a",
		"https://:443/",
		"https://user@baa.example.org/",
		"https://user:pw@baa.example.org/",
		"https://[::1",
		"https://[zz]/",
		"https://[]/",
		"https://[::1]x/",
		"https://[fe80::1%25eth0]/",
		"https://baa example.org/",
		"https://baa.example.org\\@evil.example/",
		"https://ex%41mple.org/",
		"https://b\xc3\xbc"
		"cher.example/",
	};
	char out[ORIGIN_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "stale");
		assert_int_equal(origin_of_url(bad[i], out, sizeof(out)), -1);
		assert_string_equal(out, "");
	}
	assert_int_equal(origin_of_url(NULL, out, sizeof(out)), -1);
	assert_string_equal(out, "");
}

static void
test_origin_host_is_bounded_and_never_cut(void **state)
{
	char url[16 + ORIGIN_HOST_MAX + 2], out[ORIGIN_MAX];

	strcpy(url, "https://");
	memset(url + 8, 'a', ORIGIN_HOST_MAX);
	strcpy(url + 8 + ORIGIN_HOST_MAX, ":1");
	assert_int_equal(origin_of_url(url, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), strlen(url));
	strcpy(url + 8 + ORIGIN_HOST_MAX, "a/");
	assert_int_equal(origin_of_url(url, out, sizeof(out)), -1);
	/* An out too small for the origin is refused, not filled with part of it. */
	assert_int_equal(origin_of_url(SITE "/x", out, strlen(SITE)), -1);
	assert_string_equal(out, "");
	assert_int_equal(origin_of_url(SITE "/x", out, strlen(SITE) + 1), 0);
	assert_string_equal(out, SITE);
}

static void
test_sec_fetch_site_allows_only_same_origin_and_the_users_own(void **state)
{
	assert_int_equal(origin_allows("same-origin", NULL, SITE), 1);
	assert_int_equal(origin_allows("none", NULL, SITE), 1);
	/* A sibling subdomain is same-site but another origin. */
	assert_int_equal(origin_allows("same-site", NULL, SITE), 0);
	assert_int_equal(origin_allows("cross-site", NULL, SITE), 0);
	assert_int_equal(origin_allows("", NULL, SITE), 0);
	assert_int_equal(origin_allows("Same-Origin", NULL, SITE), 0);
	/* Sec-Fetch-Site, set by the browser alone, decides when present. */
	assert_int_equal(origin_allows("cross-site", SITE, SITE), 0);
	assert_int_equal(origin_allows("same-origin", SITE, SITE), 1);
}

static void
test_origin_must_be_the_sites_own(void **state)
{
	assert_int_equal(origin_allows(NULL, SITE, SITE), 1);
	assert_int_equal(origin_allows(NULL, "https://BAA.Example.org", SITE), 1);
	assert_int_equal(origin_allows(NULL, "https://baa.example.org:443", SITE), 1);
	assert_int_equal(origin_allows(NULL, SITE, SITE "/callback"), 1);
	assert_int_equal(
		origin_allows(NULL, "http://localhost:8080", "http://localhost:8080/"),
		1);
}

static void
test_origin_of_another_port_scheme_or_host_is_refused(void **state)
{
	static const char *const others[] = {
		"https://baa.example.org:8443",
		"http://baa.example.org",
		"https://evil.example",
		"https://x.baa.example.org",
		"https://baa.example.org.evil.example",
		"https://baa.example.or",
		"null",
		"",
		"https://baa.example.org/",
		"https://baa.example.org?",
		"garbage",
	};

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_int_equal(origin_allows(NULL, others[i], SITE), 0);
}

static void
test_unusable_site_origin_refuses_browsers(void **state)
{
	assert_int_equal(origin_allows(NULL, SITE, NULL), 0);
	assert_int_equal(origin_allows(NULL, SITE, ""), 0);
	assert_int_equal(origin_allows(NULL, SITE, "baa.example.org"), 0);
}

static void
test_client_without_either_header_is_allowed(void **state)
{
	assert_int_equal(origin_allows(NULL, NULL, SITE), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_is_scheme_host_and_port_of_the_url),
		cmocka_unit_test(test_origin_leaves_out_the_default_port_only),
		cmocka_unit_test(test_origin_lowercases_scheme_and_host),
		cmocka_unit_test(test_origin_keeps_ipv6_literals_bracketed_and_canonical),
		cmocka_unit_test(test_what_is_not_an_http_url_has_no_origin),
		cmocka_unit_test(test_origin_host_is_bounded_and_never_cut),
		cmocka_unit_test(
			test_sec_fetch_site_allows_only_same_origin_and_the_users_own),
		cmocka_unit_test(test_origin_must_be_the_sites_own),
		cmocka_unit_test(test_origin_of_another_port_scheme_or_host_is_refused),
		cmocka_unit_test(test_unusable_site_origin_refuses_browsers),
		cmocka_unit_test(test_client_without_either_header_is_allowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
