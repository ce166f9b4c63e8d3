/* Listen and database addresses as operators write them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/address.h"

static void
test_host_and_port_are_split(void **state)
{
	struct address a;
	char err[256];

	assert_int_equal(address_parse("127.0.0.1:9000", 1, &a, err, sizeof(err)), 0);
	assert_false(a.is_unix);
	assert_string_equal(a.host, "127.0.0.1");
	assert_string_equal(a.port, "9000");
}

static void
test_bracketed_ipv6_host_keeps_its_colons(void **state)
{
	struct address a;
	char err[256], text[300];

	assert_int_equal(address_parse("[::1]:5432", 1, &a, err, sizeof(err)), 0);
	assert_string_equal(a.host, "::1");
	assert_string_equal(a.port, "5432");
	address_format(&a, text, sizeof(text));
	assert_string_equal(text, "[::1]:5432");
}

static void
test_host_alone_is_accepted_only_when_port_is_optional(void **state)
{
	struct address a;
	char err[256];

	assert_int_equal(address_parse("db.internal", 0, &a, err, sizeof(err)), 0);
	assert_string_equal(a.host, "db.internal");
	assert_string_equal(a.port, "");
	assert_int_equal(address_parse("db.internal", 1, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "HOST:PORT"));
}

static void
test_absolute_path_is_a_unix_socket(void **state)
{
	struct address a;
	char err[256];

	assert_int_equal(address_parse("/run/baa/baa.sock", 1, &a, err, sizeof(err)), 0);
	assert_true(a.is_unix);
	assert_string_equal(a.host, "/run/baa/baa.sock");
	assert_string_equal(a.port, "");
}

static void
test_socket_directory_may_name_a_port(void **state)
{
	struct address a;
	char err[256];

	assert_int_equal(
		address_parse("/var/run/postgresql:5433", 0, &a, err, sizeof(err)), 0);
	assert_true(a.is_unix);
	assert_string_equal(a.host, "/var/run/postgresql");
	assert_string_equal(a.port, "5433");
}

static void
test_bad_ports_are_refused_with_a_reason(void **state)
{
	static const char *const bad[] = {"h:0",     "h:65536", "h:99999",  "h:abc",
					  "h:",	     "h:-1",	"h:123456", "h:1 ",
					  "[::1]:0", "/tmp/x:0"};
	struct address a;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(address_parse(bad[i], 0, &a, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "port"));
	}
}

static void
test_malformed_hosts_are_refused(void **state)
{
	static const char *const bad[] = {":9000", "a:b:c",  "[::1",	"[::1]x",
					  "[]:1",  "[zz]:1", "ho st:1", "[::1]:"};
	struct address a;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(address_parse(bad[i], 1, &a, err, sizeof(err)), -1);
}

static void
test_socket_path_longer_than_sun_path_is_refused(void **state)
{
	char path[200];
	struct address a;
	char err[256];

	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(address_parse(path, 1, &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer"));
}

static void
test_sockets_and_loopback_addresses_are_local_anything_else_is_not(void **state)
{
	static const char *const local[] = {
		"/run/postgresql",	  "/run/postgresql:5433",
		"localhost:5432",	  "127.0.0.1",
		"127.1.2.3:5432",	  "[::1]:5432",
		"[::ffff:127.0.0.1]:5432"};
	static const char *const remote[] = {
		"10.0.0.5:5432", "db.internal:5432",	   "[2001:db8::1]:5432",
		"128.0.0.1",	 "[::ffff:10.0.0.1]:5432", "localhost.example.com",
		"[::2]:5432"};
	struct address a;
	char err[256];

	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		assert_int_equal(address_parse(local[i], 0, &a, err, sizeof(err)), 0);
		if (!address_is_local(&a))
			fail_msg("%s should be local", local[i]);
	}
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		assert_int_equal(address_parse(remote[i], 0, &a, err, sizeof(err)), 0);
		if (address_is_local(&a))
			fail_msg("%s should not be local", remote[i]);
	}
}

static void
expect_network(const char *address, const char *network)
{
	char out[ADDRESS_NETWORK_MAX];

	assert_int_equal(address_network_prefix(address, out, sizeof(out)), 0);
	assert_string_equal(out, network);
}

static void
test_ipv4_client_is_its_slash_24(void **state)
{
	expect_network("203.0.113.45", "203.0.113.0/24");
	expect_network("10.0.0.1", "10.0.0.0/24");
	expect_network("255.255.255.255", "255.255.255.0/24");
	expect_network("0.0.0.0", "0.0.0.0/24");
	expect_network("127.0.0.1", "127.0.0.0/24");
}

static void
test_ipv6_client_is_its_slash_64_in_canonical_text(void **state)
{
	expect_network("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3:8d3::/64");
	expect_network("2001:DB8::1", "2001:db8::/64");
	expect_network("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::/64");
	expect_network("2001:db8:0:1::5", "2001:db8:0:1::/64");
	expect_network("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		       "ffff:ffff:ffff:ffff::/64");
	expect_network("fe80::1", "fe80::/64");
	expect_network("::1", "::/64");
	expect_network("::", "::/64");
}

static void
test_ipv4_mapped_ipv6_client_is_the_ipv4_slash_24(void **state)
{
	expect_network("::ffff:192.0.2.128", "192.0.2.0/24");
	expect_network("::FFFF:c000:0280", "192.0.2.0/24");
}

static void
test_what_is_not_an_ip_address_has_no_network(void **state)
{
	static const char *const bad[] = {
		"",	      "unix:",	    "garbage",	      "fe80::1%eth0",
		"1.2.3",      "1.2.3.4.5",  "256.1.1.1",      " 1.2.3.4",
		"1.2.3.4 ",   "[::1]",	    "::1/64",	      "1.2.3.4:80",
		"0x7f.0.0.1", "1.2.3.4/24", "2001:db8::1::2", "localhost",
	};
	char out[ADDRESS_NETWORK_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "stale");
		assert_int_equal(address_network_prefix(bad[i], out, sizeof(out)), -1);
		assert_string_equal(out, "");
	}
	strcpy(out, "stale");
	assert_int_equal(address_network_prefix(NULL, out, sizeof(out)), -1);
	assert_string_equal(out, "");
}

static void
test_network_that_does_not_fit_is_refused_not_cut(void **state)
{
	char out[ADDRESS_NETWORK_MAX];

	assert_int_equal(address_network_prefix("203.0.113.45", out, 14), -1);
	assert_string_equal(out, "");
	assert_int_equal(address_network_prefix("203.0.113.45", out, 15), 0);
	assert_string_equal(out, "203.0.113.0/24");
	assert_int_equal(address_network_prefix("2001:db8::1", out, 8), -1);
	assert_string_equal(out, "");
	assert_int_equal(address_network_prefix("2001:db8::1", NULL, 0), -1);
}

static void
test_host_list_keeps_each_address_and_its_port(void **state)
{
	struct address_list l;
	char err[256];

	assert_int_equal(
		address_list_parse("10.0.0.5:5432,[fd00::6],/run/postgresql:5433", &l,
				   err, sizeof(err)),
		0);
	assert_int_equal(l.count, 3);
	assert_string_equal(l.items[0].host, "10.0.0.5");
	assert_string_equal(l.items[0].port, "5432");
	assert_string_equal(l.items[1].host, "fd00::6");
	assert_string_equal(l.items[1].port, "");
	assert_true(l.items[2].is_unix);
	assert_string_equal(l.items[2].host, "/run/postgresql");
	assert_string_equal(l.items[2].port, "5433");
	assert_int_equal(address_list_parse("db.internal", &l, err, sizeof(err)), 0);
	assert_int_equal(l.count, 1);
}

static void
test_host_list_refuses_empty_items_bad_items_and_too_many(void **state)
{
	static const char *const empty[] = {"", ",", "a:1,", ",a:1", "a:1,,b:2"};
	struct address_list l;
	char err[256], many[128] = "";

	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		assert_int_equal(address_list_parse(empty[i], &l, err, sizeof(err)), -1);
		assert_string_equal(err, "has an empty host in its list");
	}
	assert_int_equal(address_list_parse("a:1,b:99999", &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid port '99999'"));
	assert_int_equal(address_list_parse("a:1,b c:2", &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "invalid character"));
	for (int i = 0; i < ADDRESS_LIST_MAX; i++)
		strcat(many, i ? ",h:1" : "h:1");
	assert_int_equal(address_list_parse(many, &l, err, sizeof(err)), 0);
	assert_int_equal(l.count, ADDRESS_LIST_MAX);
	strcat(many, ",h:1");
	assert_int_equal(address_list_parse(many, &l, err, sizeof(err)), -1);
	assert_string_equal(err, "lists more than 8 hosts");
}

static void
test_host_list_is_local_only_when_every_host_is(void **state)
{
	struct address_list l;
	char err[256];

	assert_int_equal(address_list_parse("127.0.0.1:5432,[::1]:5433,/run/postgresql",
					    &l, err, sizeof(err)),
			 0);
	assert_true(address_list_is_local(&l));
	assert_int_equal(address_list_parse("127.0.0.1:5432,db.internal:5432", &l, err,
					    sizeof(err)),
			 0);
	assert_false(address_list_is_local(&l));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_and_port_are_split),
		cmocka_unit_test(test_bracketed_ipv6_host_keeps_its_colons),
		cmocka_unit_test(test_host_alone_is_accepted_only_when_port_is_optional),
		cmocka_unit_test(test_absolute_path_is_a_unix_socket),
		cmocka_unit_test(test_socket_directory_may_name_a_port),
		cmocka_unit_test(test_bad_ports_are_refused_with_a_reason),
		cmocka_unit_test(test_malformed_hosts_are_refused),
		cmocka_unit_test(test_socket_path_longer_than_sun_path_is_refused),
		cmocka_unit_test(test_host_list_keeps_each_address_and_its_port),
		cmocka_unit_test(
			test_host_list_refuses_empty_items_bad_items_and_too_many),
		cmocka_unit_test(test_host_list_is_local_only_when_every_host_is),
		cmocka_unit_test(
			test_sockets_and_loopback_addresses_are_local_anything_else_is_not),
		cmocka_unit_test(test_ipv4_client_is_its_slash_24),
		cmocka_unit_test(test_ipv6_client_is_its_slash_64_in_canonical_text),
		cmocka_unit_test(test_ipv4_mapped_ipv6_client_is_the_ipv4_slash_24),
		cmocka_unit_test(test_what_is_not_an_ip_address_has_no_network),
		cmocka_unit_test(test_network_that_does_not_fit_is_refused_not_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
