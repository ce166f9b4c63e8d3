/*
 * User-Agent to device label. Browsers name their engines' ancestors too
 * (Edge, Opera and Samsung Internet say "Chrome/"; Chrome says "Safari/";
 * iPhones say "like Mac OS X"; Android says "Linux"), so each table is
 * read in order and the first token found wins.
 */
#include "device.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct device_token {
	const char *token;
	const char *label;
};

/* Programs, by the prefix their libraries send (any case). */
static const struct device_token tools[] = {
	{"curl/", "curl"},
	{"Wget/", "Wget"},
	/* python-requests, Python-urllib, python-httpx, Python/3 aiohttp */
	{"python", "Python"},
	{"Go-http-client/", "Go"},
	{"node", "Node.js"}, /* node-fetch; Node's own fetch says node or undici */
	{"undici", "Node.js"},
	{"axios/", "Node.js"},
	{"Java", "Java"}, /* Java/17 (HttpURLConnection), Java-http-client/17 */
	{"Apache-HttpClient/", "Java"},
	{"okhttp/", "Java"},
};

/* Browsers, by a token anywhere in the string; the first match wins. */
static const struct device_token browsers[] = {
	{"HeadlessChrome/", "Chrome (headless)"},
	{"Edg/", "Edge"},
	{"EdgA/", "Edge"},
	{"EdgiOS/", "Edge"},
	{"Edge/", "Edge"}, /* the EdgeHTML one, before 2020 */
	{"OPR/", "Opera"},
	{"OPiOS/", "Opera"},
	{"OPT/", "Opera"},
	{"Opera", "Opera"}, /* Presto's "Opera/9.80", "Opera Mini/" */
	{"SamsungBrowser/", "Samsung Internet"},
	{"Firefox/", "Firefox"},
	{"FxiOS/", "Firefox"},
	{"CriOS/", "Chrome"},
	{"Chrome/", "Chrome"},
	{"Chromium/", "Chrome"},
	{"Safari/", "Safari"},
	{"Trident/", "Internet Explorer"},
	{"MSIE ", "Internet Explorer"},
};

/* Systems, likewise. */
static const struct device_token systems[] = {
	/* Android says Linux, ChromeOS says X11: both before Linux. */
	{"Android", "Android"},
	{"CrOS", "ChromeOS"},
	/* iOS says "like Mac OS X": before macOS. iPadOS in desktop mode is macOS. */
	{"iPhone", "iPhone"},
	{"iPad", "iPad"},
	{"iPod", "iPod"},
	{"Windows", "Windows"},
	{"Macintosh", "macOS"},
	{"Mac OS X", "macOS"},
	/* FreeBSD, OpenBSD, NetBSD say X11 too. */
	{"BSD", "BSD"},
	{"Linux", "Linux"},
	{"X11", "Linux"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *
find_prefix(const char *ua, size_t len, const struct device_token *table, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t token_len = strlen(table[i].token);
		if (token_len <= len && strncasecmp(ua, table[i].token, token_len) == 0)
			return table[i].label;
	}
	return NULL;
}

static const char *
find_anywhere(const char *ua, size_t len, const struct device_token *table, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memmem(ua, len, table[i].token, strlen(table[i].token)) != NULL)
			return table[i].label;
	return NULL;
}

void
device_label(const char *user_agent, char *out, size_t size)
{
	const char *tool, *browser, *os;
	size_t len;

	if (size == 0)
		return;
	len = user_agent ? strnlen(user_agent, DEVICE_USER_AGENT_MAX + 1) : 0;
	if (len == 0 || len > DEVICE_USER_AGENT_MAX)
		goto unknown;
	tool = find_prefix(user_agent, len, tools, COUNT(tools));
	if (tool) {
		snprintf(out, size, "%s", tool);
		return;
	}
	browser = find_anywhere(user_agent, len, browsers, COUNT(browsers));
	os = find_anywhere(user_agent, len, systems, COUNT(systems));
	/* An app's own client (Dalvik, PostmanRuntime) is no browser. */
	if (browser == NULL && strncmp(user_agent, "Mozilla/", 8) != 0)
		goto unknown;
	if (browser == NULL && os == NULL)
		goto unknown;
	snprintf(out, size, "%s on %s", browser ? browser : "Browser",
		 os ? os : "unknown OS");
	return;
unknown:
	snprintf(out, size, "%s", "unknown device");
}
