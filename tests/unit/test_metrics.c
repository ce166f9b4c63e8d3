/*
 * One table of HTTP statuses: the status line's reason and /metrics'
 * counters both come from it, and a status of its own is never "other".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http_status.h"
#include "../../src/metrics.h"
#include "../../src/response.h"
#include "../../src/services.h"

static void
test_every_listed_status_has_its_reason_and_label(void **state)
{
	assert_string_equal(response_reason(200), "OK");
	assert_string_equal(response_reason(413), "Content Too Large");
	assert_string_equal(response_reason(504), "Gateway Timeout");
	assert_string_equal(response_reason(299), "Unknown");
	assert_string_equal(http_status_label(http_status_index(429)), "429");
	assert_int_equal(http_status_index(299), HTTP_STATUS_OTHER);
	assert_string_equal(http_status_label(HTTP_STATUS_OTHER), "other");
}

static void
test_metrics_count_413_429_504_by_their_own_status(void **state)
{
	static const char *const names[] = {"me", "login"};
	static char text[65536];
	static const int answered[] = {413, 429, 504, 504, 299};

	assert_int_equal(metrics_init(2), 0);
	for (size_t i = 0; i < sizeof(answered) / sizeof(answered[0]); i++)
		metrics_request(0, answered[i], 1.0);
	assert_true(metrics_render(text, sizeof(text), names, NULL) > 0);
	assert_non_null(
		strstr(text, "baa_requests_total{route=\"me\",status=\"413\"} 1\n"));
	assert_non_null(
		strstr(text, "baa_requests_total{route=\"me\",status=\"429\"} 1\n"));
	assert_non_null(
		strstr(text, "baa_requests_total{route=\"me\",status=\"504\"} 2\n"));
	/* only what the table does not list */
	assert_non_null(
		strstr(text, "baa_requests_total{route=\"me\",status=\"other\"} 1\n"));
}

static void
test_internal_calls_are_counted_by_service_and_outcome(void **state)
{
	static const char *const names[] = {"me"};
	static char text[65536];
	struct service_keys services;
	char err[256];

	assert_int_equal(services_parse("billing:0123456789abcdef0123456789abcdef "
					"playlists:fedcba9876543210fedcba9876543210",
					&services, err, sizeof(err)),
			 0);
	assert_int_equal(metrics_init(1), 0);
	metrics_internal_call(0, METRICS_INTERNAL_OK);
	metrics_internal_call(0, METRICS_INTERNAL_OK);
	metrics_internal_call(1, METRICS_INTERNAL_REAUTH_REQUIRED);
	metrics_internal_call(-1, METRICS_INTERNAL_UNAUTHORIZED);
	assert_true(metrics_render(text, sizeof(text), names, &services) > 0);
	assert_non_null(strstr(
		text,
		"baa_internal_calls_total{service=\"billing\",outcome=\"ok\"} 2\n"));
	assert_non_null(strstr(text, "baa_internal_calls_total{service=\"playlists\","
				     "outcome=\"reauth_required\"} 1\n"));
	assert_non_null(strstr(text, "baa_internal_calls_total{service=\"playlists\","
				     "outcome=\"ok\"} 0\n"));
	assert_non_null(strstr(text, "baa_internal_calls_total{service=\"none\","
				     "outcome=\"unauthorized\"} 1\n"));
	assert_null(strstr(text, "service=\"none\",outcome=\"ok\""));
	/* without services, no rows at all */
	assert_true(metrics_render(text, sizeof(text), names, NULL) > 0);
	assert_null(strstr(text, "baa_internal_calls_total"));
}

static void
test_batches_and_session_lookups_are_counted(void **state)
{
	static const char *const names[] = {"me"};
	static char text[65536];

	assert_int_equal(metrics_init(1), 0);
	metrics_db_batch(3);
	metrics_db_batch(5);
	metrics_session_lookup(METRICS_SESSION_BATCH);
	metrics_session_lookup(METRICS_SESSION_BATCH);
	metrics_session_lookup(METRICS_SESSION_CACHE);
	assert_true(metrics_render(text, sizeof(text), names, NULL) > 0);
	assert_non_null(strstr(text, "\nbaa_db_batches_total 2\n"));
	assert_non_null(strstr(text, "\nbaa_db_batched_requests_total 8\n"));
	assert_non_null(strstr(text, "baa_session_lookups_total{source=\"cache\"} 1\n"));
	assert_non_null(strstr(text, "baa_session_lookups_total{source=\"batch\"} 2\n"));
	assert_non_null(strstr(text, "baa_session_lookups_total{source=\"alone\"} 0\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_listed_status_has_its_reason_and_label),
		cmocka_unit_test(test_metrics_count_413_429_504_by_their_own_status),
		cmocka_unit_test(test_internal_calls_are_counted_by_service_and_outcome),
		cmocka_unit_test(test_batches_and_session_lookups_are_counted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
