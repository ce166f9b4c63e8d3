/* Device labels from real User-Agents, and from hostile ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/device.h"

struct example {
	const char *user_agent;
	const char *label;
};

static void
check_all(const struct example *examples, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char out[DEVICE_LABEL_MAX];
		device_label(examples[i].user_agent, out, sizeof(out));
		assert_string_equal(out, examples[i].label);
	}
}

#define CHECK_ALL(examples) check_all(examples, sizeof(examples) / sizeof(examples[0]))

static void
test_desktop_browsers_are_named_with_their_system(void **state)
{
	static const struct example examples[] = {
		{"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
		 "Firefox on Linux"},
		{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 "
		 "Firefox/115.0",
		 "Firefox on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 "
		 "Firefox/121.0",
		 "Firefox on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 "
		 "Firefox/121.0",
		 "Firefox on macOS"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
		 "Chrome/120.0.0.0 Safari/537.36",
		 "Chrome on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
		 "like "
		 "Gecko) Chrome/120.0.0.0 Safari/537.36",
		 "Chrome on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
		 "(KHTML, "
		 "like Gecko) Chrome/120.0.0.0 Safari/537.36",
		 "Chrome on macOS"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, "
		 "like "
		 "Gecko) Chrome/120.0.0.0 Safari/537.36",
		 "Chrome on ChromeOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
		 "(KHTML, "
		 "like Gecko) Version/17.2 Safari/605.1.15",
		 "Safari on macOS"},
		{"Mozilla/5.0 (X11; FreeBSD amd64; rv:120.0) Gecko/20100101 "
		 "Firefox/120.0",
		 "Firefox on BSD"},
		{"Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
		 "Internet Explorer on Windows"},
	};

	CHECK_ALL(examples);
}

static void
test_browsers_built_on_chrome_are_named_for_themselves(void **state)
{
	static const struct example examples[] = {
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
		 "like "
		 "Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
		 "Edge on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
		 "like "
		 "Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045",
		 "Edge on Windows"},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like "
		 "Gecko) "
		 "Chrome/120.0.0.0 Mobile Safari/537.36 EdgA/120.0.0.0",
		 "Edge on Android"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
		 "like "
		 "Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
		 "Opera on Windows"},
		{"Mozilla/5.0 (Linux; Android 10; VOG-L29) AppleWebKit/537.36 (KHTML, "
		 "like "
		 "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 OPR/79.0.4195.76780",
		 "Opera on Android"},
		{"Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
		 "Opera on Windows"},
		{"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 "
		 "(KHTML, "
		 "like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
		 "Samsung Internet on Android"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
		 "HeadlessChrome/120.0.6099.28 Safari/537.36",
		 "Chrome (headless) on Linux"},
	};

	CHECK_ALL(examples);
}

static void
test_phones_and_tablets_are_told_apart(void **state)
{
	static const struct example examples[] = {
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like "
		 "Gecko) "
		 "Chrome/120.0.0.0 Mobile Safari/537.36",
		 "Chrome on Android"},
		{"Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
		 "Firefox on Android"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) "
		 "AppleWebKit/605.1.15 "
		 "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
		 "Safari on iPhone"},
		{"Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
		 "(KHTML, "
		 "like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
		 "Safari on iPad"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) "
		 "AppleWebKit/605.1.15 "
		 "(KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
		 "Chrome on iPhone"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) "
		 "AppleWebKit/605.1.15 "
		 "(KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
		 "Firefox on iPhone"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) "
		 "AppleWebKit/605.1.15 "
		 "(KHTML, like Gecko) Version/17.0 EdgiOS/120.2210.126 Mobile/15E148 "
		 "Safari/605.1.15",
		 "Edge on iPhone"},
	};

	CHECK_ALL(examples);
}

static void
test_programs_are_named_alone(void **state)
{
	static const struct example examples[] = {
		{"curl/8.5.0", "curl"},
		{"Wget/1.21.3", "Wget"},
		{"python-requests/2.31.0", "Python"},
		{"Python-urllib/3.11", "Python"},
		{"Python/3.11 aiohttp/3.9.1", "Python"},
		{"python-httpx/0.26.0", "Python"},
		{"Go-http-client/1.1", "Go"},
		{"Go-http-client/2.0", "Go"},
		{"node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "Node.js"},
		{"node", "Node.js"},
		{"undici", "Node.js"},
		{"axios/1.6.2", "Node.js"},
		{"Java/17.0.9", "Java"},
		{"Java-http-client/21.0.1", "Java"},
		{"Apache-HttpClient/4.5.14 (Java/17.0.9)", "Java"},
		{"okhttp/4.12.0", "Java"},
	};

	CHECK_ALL(examples);
}

static void
test_half_known_devices_say_which_half_is_unknown(void **state)
{
	static const struct example examples[] = {
		/* An in-app browser without a browser's token. */
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) "
		 "AppleWebKit/605.1.15 "
		 "(KHTML, like Gecko) Mobile/21B80 Instagram 307.0.0.34.111",
		 "Browser on iPhone"},
		{"Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 "
		 "(KHTML, "
		 "like Gecko) Version/13.0 Safari/605.1.15",
		 "Safari on unknown OS"},
	};

	CHECK_ALL(examples);
}

static void
test_missing_and_unrecognised_agents_are_unknown_devices(void **state)
{
	static const struct example examples[] = {
		{NULL, "unknown device"},
		{"", "unknown device"},
		{"Mozilla/5.0", "unknown device"},
		{"PostmanRuntime/7.36.0", "unknown device"},
		/* An app's own HTTP client mentions Android but is no browser. */
		{"Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230901.001)",
		 "unknown device"},
		{"<script>alert(1)</script>", "unknown device"},
	};

	CHECK_ALL(examples);
}

static void
test_label_never_holds_bytes_of_the_agent(void **state)
{
	static const char *const hostile[] = {
		"Mozilla/5.0 (X11; Linux\" event=login) Firefox/1 <b>",
		"Mozilla/5.0 (Windows\n user=1) Chrome/\r\n",
		"curl/8 \"; drop",
		"Firefox/\xff\xfe Linux",
	};

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		char out[DEVICE_LABEL_MAX];
		device_label(hostile[i], out, sizeof(out));
		assert_true(strlen(out) > 0 && strlen(out) < DEVICE_LABEL_MAX);
		assert_int_equal(strspn(out, "abcdefghijklmnopqrstuvwxyz"
					     "ABCDEFGHIJKLMNOPQRSTUVWXYZ .()"),
				 strlen(out));
	}
}

static void
test_overlong_agent_is_an_unknown_device(void **state)
{
	static char ua[DEVICE_USER_AGENT_MAX + 2];
	char out[DEVICE_LABEL_MAX];

	memset(ua, 'a', sizeof(ua) - 1);
	memcpy(ua, "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0 ", 46);
	device_label(ua, out, sizeof(out));
	assert_string_equal(out, "unknown device");
	ua[DEVICE_USER_AGENT_MAX] = '\0';
	device_label(ua, out, sizeof(out));
	assert_string_equal(out, "Firefox on Linux");
}

static void
test_small_buffer_gets_a_cut_terminated_label(void **state)
{
	char out[8] = "xxxxxxx";

	device_label("curl/8.5.0", out, 3);
	assert_string_equal(out, "cu");
	device_label("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Firefox/121.0", out,
		     sizeof(out));
	assert_string_equal(out, "Firefox");
	out[0] = 'x';
	device_label("curl/8.5.0", out, 0);
	assert_int_equal(out[0], 'x');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_desktop_browsers_are_named_with_their_system),
		cmocka_unit_test(test_browsers_built_on_chrome_are_named_for_themselves),
		cmocka_unit_test(test_phones_and_tablets_are_told_apart),
		cmocka_unit_test(test_programs_are_named_alone),
		cmocka_unit_test(test_half_known_devices_say_which_half_is_unknown),
		cmocka_unit_test(
			test_missing_and_unrecognised_agents_are_unknown_devices),
		cmocka_unit_test(test_label_never_holds_bytes_of_the_agent),
		cmocka_unit_test(test_overlong_agent_is_an_unknown_device),
		cmocka_unit_test(test_small_buffer_gets_a_cut_terminated_label),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
