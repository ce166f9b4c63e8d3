/*
 * Requests for the handler tests, as the worker hands them to a handler
 * (request.h's typed fields, the worker's connection and configuration),
 * readers of what the handler put in the response, and the internal
 * calls' counter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fakes.h"

struct config fake_cfg;
struct db fake_db;
int fake_internal_calls[SERVICES_MAX + 1][METRICS_INTERNAL_COUNT];

void
metrics_internal_call(int service, enum metrics_internal_outcome outcome)
{
	fake_internal_calls[service + 1][outcome]++;
}

int
fakes_reset(void **state)
{
	static int keyed;

	fake_store_reset();
	fake_spotify_reset();
	fake_log_reset();
	memset(fake_internal_calls, 0, sizeof(fake_internal_calls));
	memset(&fake_cfg, 0, sizeof(fake_cfg));
	fake_cfg.session_ttl = 86400;
	fake_cfg.session_max_age = 7 * 86400;
	fake_cfg.grant_lifetime = 15552000;
	fake_cfg.reauth_window = 1209600;
	fake_cfg.invalid_grant_confirm = 600;
	memset(&fake_db, 0, sizeof(fake_db));
	fake_db.cfg = &fake_cfg;
	if (!keyed && session_init("handler-tests-secret-of-more-than-32-bytes") < 0)
		return -1;
	keyed = 1;
	return 0;
}

struct request
fake_request(enum http_method method, const char *path, const char *query,
	     const char *cookie)
{
	return (struct request){
		.method = method,
		.method_name = http_method_name(method),
		.path = path,
		.query = query ? query : "",
		.cookie = cookie,
		.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
		.remote_addr = "192.0.2.7",
		.db = &fake_db,
		.cfg = &fake_cfg,
	};
}

const char *
fake_cookie(char *out, size_t size, const char *name, const char *value)
{
	snprintf(out, size, "%s=%s", name, value);
	return out;
}

/* The value of the n-th header line called name after from, or NULL. */
static const char *
header_from(const char *from, const char *name, char *out, size_t size, const char **next)
{
	size_t n = strlen(name);

	for (const char *line = from; *line;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > n + 2 && strncmp(line, name, n) == 0 && line[n] == ':' &&
		    line[n + 1] == ' ') {
			snprintf(out, size, "%.*s", (int)(len - n - 2), line + n + 2);
			*next = line + len;
			return out;
		}
		line += len + (end ? 2 : 0);
	}
	return NULL;
}

const char *
fake_header(const struct response *res, const char *name, char *out, size_t size)
{
	const char *next;

	return header_from(res->headers, name, out, size, &next);
}

/*
 * The i-th cookie the response sets (from 0): a Set-Cookie line, or the
 * header its cookie_header_prefix numbers (GET /auth's).
 */
static const char *
cookie_line(const struct response *res, int i, char *out, size_t size)
{
	char name[64];
	const char *from = res->headers;

	if (res->cookie_header_prefix != NULL) {
		snprintf(name, sizeof(name), "%s%d", res->cookie_header_prefix, i + 1);
		return fake_header(res, name, out, size);
	}
	while (header_from(from, "Set-Cookie", out, size, &from) != NULL)
		if (i-- == 0)
			return out;
	return NULL;
}

const char *
fake_set_cookie(const struct response *res, const char *name, char *out, size_t size)
{
	char line[2048];
	size_t n = strlen(name);

	for (int i = 0; cookie_line(res, i, line, sizeof(line)) != NULL; i++) {
		if (strncmp(line, name, n) == 0 && line[n] == '=') {
			snprintf(out, size, "%.*s", (int)strcspn(line + n + 1, ";"),
				 line + n + 1);
			return out;
		}
	}
	return NULL;
}

int
fake_clears_cookie(const struct response *res, const char *name)
{
	char line[2048], want[128];

	snprintf(want, sizeof(want), "%s=; Max-Age=0;", name);
	for (int i = 0; cookie_line(res, i, line, sizeof(line)) != NULL; i++)
		if (strncmp(line, want, strlen(want)) == 0)
			return 1;
	return 0;
}

void
fake_assert_error(const struct response *res, int status, const char *code)
{
	char want[256];

	assert_int_equal(res->status, status);
	snprintf(want, sizeof(want), "\"error\":\"%s\"", code);
	if (strstr(res->body, want) == NULL)
		fail_msg("body %s has no %s", res->body, want);
}

void
fake_assert_token_served(const struct response *res, const char *access_token)
{
	char want[256];

	assert_int_equal(res->status, 200);
	snprintf(want, sizeof(want),
		 "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",", access_token);
	if (strncmp(res->body, want, strlen(want)) != 0)
		fail_msg("body %s does not start %s", res->body, want);
}
