/*
 * BAA_SERVICE_KEYS as baa reads it, and the check of a service's
 * Authorization header: the right key names its service; a wrong one, a
 * missing or malformed header and a key of another length name none; no
 * message ever holds a key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/services.h"

#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 44 bytes */
#define KEY_B "Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"	     /* 32 bytes */

static struct service_keys keys;
static char err[1024];

static int
two_services(void **state)
{
	return services_parse("billing:" KEY_A " \tplaylists:" KEY_B, &keys, err,
			      sizeof(err));
}

static enum services_auth
auth(const char *header, int *which)
{
	*which = -1;
	return services_authenticate(&keys, header, which);
}

static void
test_keys_are_parsed_by_name(void **state)
{
	assert_int_equal(keys.count, 2);
	assert_string_equal(keys.keys[0].name, "billing");
	assert_string_equal(keys.keys[1].name, "playlists");
}

static void
test_right_key_names_its_service(void **state)
{
	int which;

	assert_int_equal(auth("Bearer " KEY_A, &which), SERVICES_OK);
	assert_int_equal(which, 0);
	assert_int_equal(auth("Bearer " KEY_B, &which), SERVICES_OK);
	assert_int_equal(which, 1);
	/* RFC 9110: the scheme's case does not matter */
	assert_int_equal(auth("bearer " KEY_B, &which), SERVICES_OK);
}

static void
test_wrong_key_names_no_service(void **state)
{
	char header[128] = "Bearer " KEY_A;
	int which;

	/* one byte off, of the same length; one byte more */
	header[7] = 'b';
	assert_int_equal(auth(header, &which), SERVICES_WRONG);
	assert_int_equal(auth("Bearer " KEY_A "x", &which), SERVICES_WRONG);
	assert_int_equal(which, -1);
	/* a prefix of a key, and a key of another length */
	assert_int_equal(auth("Bearer aaaa", &which), SERVICES_WRONG);
	assert_int_equal(auth("Bearer " KEY_A KEY_B, &which), SERVICES_WRONG);
	assert_int_equal(which, -1);
}

static void
test_missing_or_malformed_header_names_no_service(void **state)
{
	int which;

	assert_int_equal(auth(NULL, &which), SERVICES_MISSING);
	assert_int_equal(auth("", &which), SERVICES_MISSING);
	assert_int_equal(auth(KEY_A, &which), SERVICES_MALFORMED);
	assert_int_equal(auth("Basic " KEY_A, &which), SERVICES_MALFORMED);
	assert_int_equal(auth("Bearer", &which), SERVICES_MALFORMED);
	assert_int_equal(auth("Bearer ", &which), SERVICES_MALFORMED);
	assert_int_equal(auth("Bearer  " KEY_A, &which), SERVICES_MALFORMED);
	assert_int_equal(auth("Bearer " KEY_A " ", &which), SERVICES_MALFORMED);
	assert_int_equal(which, -1);
}

static void
test_no_services_accept_no_key(void **state)
{
	int which;

	memset(&keys, 0, sizeof(keys));
	assert_int_equal(auth("Bearer " KEY_A, &which), SERVICES_WRONG);
}

/* The message names each bad entry and holds none of the keys. */
static void
assert_refused(const char *value, const char *want)
{
	if (services_parse(value, &keys, err, sizeof(err)) != -1)
		fail_msg("%s was accepted", value);
	if (strstr(err, want) == NULL)
		fail_msg("'%s' does not say '%s'", err, want);
	assert_null(strstr(err, KEY_A));
	assert_null(strstr(err, "short-key"));
	assert_null(strstr(err, "s3cr3t"));
}

static void
test_bad_entries_are_each_refused_without_the_key(void **state)
{
	assert_refused("billing:short-key", "entry 1 (billing): the key is shorter");
	assert_refused(KEY_A, "entry 1: must be name:key");
	assert_refused("Billing:" KEY_A, "entry 1: the name must be");
	assert_refused("a:" KEY_A " a:" KEY_B, "entry 2 (a): the name is used twice");
	assert_refused("a:" KEY_A " b:" KEY_A, "entry 2 (b): the key is another");
	assert_refused("none:" KEY_A, "entry 1: the name 'none'");
	assert_refused("a:" KEY_A "\x01", "printable");
	assert_refused("   ", "names no service");
}

static void
test_every_bad_entry_is_reported_not_just_the_first(void **state)
{
	assert_refused("x:short-key ok:" KEY_A " s3cr3t-without-name y:short-key",
		       "entry 1 (x)");
	assert_non_null(strstr(err, "entry 3: must be name:key"));
	assert_non_null(strstr(err, "entry 4 (y)"));
	assert_null(strstr(err, "entry 2"));
}

static void
test_more_than_sixteen_services_are_refused(void **state)
{
	char value[2048] = "";

	for (int i = 0; i < SERVICES_MAX + 1; i++)
		snprintf(value + strlen(value), sizeof(value) - strlen(value),
			 "s%d:%032d ", i, i);
	assert_refused(value, "entry 17 (s16): more than 16 services");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_keys_are_parsed_by_name, two_services),
		cmocka_unit_test_setup(test_right_key_names_its_service, two_services),
		cmocka_unit_test_setup(test_wrong_key_names_no_service, two_services),
		cmocka_unit_test_setup(test_missing_or_malformed_header_names_no_service,
				       two_services),
		cmocka_unit_test(test_no_services_accept_no_key),
		cmocka_unit_test(test_bad_entries_are_each_refused_without_the_key),
		cmocka_unit_test(test_every_bad_entry_is_reported_not_just_the_first),
		cmocka_unit_test(test_more_than_sixteen_services_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
