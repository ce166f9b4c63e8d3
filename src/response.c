/*
 * Building and rendering responses. Everything a handler sets is bounded;
 * overflowing a bound turns the response into a 500 rather than a
 * truncated body.
 */
#include "response.h"

#include "http_status.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void
response_init(struct response *res)
{
	res->status = 200;
	res->headers_len = 0;
	res->headers[0] = '\0';
	res->body_len = 0;
	res->content_type = NULL;
	res->overflow = 0;
	res->cookie_header_prefix = NULL;
	res->cookies = 0;
}

void
response_header(struct response *res, const char *name, const char *value)
{
	size_t room = sizeof(res->headers) - res->headers_len;
	int n = snprintf(res->headers + res->headers_len, room, "%s: %s\r\n", name,
			 value);

	if (n < 0 || (size_t)n >= room) {
		res->headers[res->headers_len] = '\0';
		res->overflow = 1;
		return;
	}
	res->headers_len += (size_t)n;
}

void
response_no_content(struct response *res)
{
	res->status = 204;
	res->content_type = NULL;
	res->body_len = 0;
	res->body[0] = '\0';
}

void
response_json(struct response *res, int status, const cJSON *json)
{
	res->status = status;
	res->content_type = "application/json";
	/*
	 * cJSON wants a non-const tree but only reads it while printing: the
	 * cast through uintptr_t drops const on purpose (-Wcast-qual).
	 */
	if (!cJSON_PrintPreallocated((cJSON *)(uintptr_t)json, res->body,
				     (int)sizeof(res->body) - 2, 0)) {
		res->overflow = 1;
		res->body_len = 0;
		return;
	}
	res->body_len = strlen(res->body);
	/* A newline makes curl output and logs of bodies readable. */
	res->body[res->body_len++] = '\n';
	res->body[res->body_len] = '\0';
}

void
response_body(struct response *res, int status, const char *content_type,
	      const char *body, size_t len)
{
	if (len >= sizeof(res->body)) {
		res->overflow = 1;
		return;
	}
	res->status = status;
	res->content_type = content_type;
	memcpy(res->body, body, len);
	res->body_len = len;
	res->body[len] = '\0';
}

void
response_json_string(struct response *res, int status, const char *key, const char *value)
{
	response_object_begin(res, status);
	response_member_string(res, key, value, 0);
	response_object_end(res);
}

void
response_error(struct response *res, int status, const char *message)
{
	response_json_string(res, status, "error", message);
}

void
response_problem(struct response *res, int status, const char *code, const char *message)
{
	response_object_begin(res, status);
	response_member_string(res, "error", code, 0);
	response_member_string(res, "message", message, 0);
	response_object_end(res);
}

/* Appends len bytes to the body; the body stays NUL-terminated. */
static void
body_add(struct response *res, const char *data, size_t len)
{
	if (res->overflow || len >= sizeof(res->body) - res->body_len) {
		res->overflow = 1;
		return;
	}
	memcpy(res->body + res->body_len, data, len);
	res->body_len += len;
	res->body[res->body_len] = '\0';
}

static void
body_add_str(struct response *res, const char *s)
{
	body_add(res, s, strlen(s));
}

/* value as a JSON string: quotes, backslashes and control bytes escaped. */
static void
body_add_json_string(struct response *res, const char *value)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = value, *p;

	body_add(res, "\"", 1);
	for (p = value; *p; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[6] = {'\\', 0};
		size_t n = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		body_add(res, run, (size_t)(p - run));
		run = p + 1;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
		}
		body_add(res, esc, n);
	}
	body_add(res, run, (size_t)(p - run));
	body_add(res, "\"", 1);
}

void
response_object_begin(struct response *res, int status)
{
	res->status = status;
	res->content_type = "application/json";
	res->body_len = 0;
	res->body[0] = '\0';
	body_add(res, "{", 1);
}

/* ,"name": (no comma before the first member) */
static void
member_name(struct response *res, const char *name)
{
	if (res->body_len > 1)
		body_add(res, ",", 1);
	body_add_json_string(res, name);
	body_add(res, ":", 1);
}

void
response_member_raw(struct response *res, const char *name, const char *json)
{
	member_name(res, name);
	body_add_str(res, json);
}

void
response_member_string(struct response *res, const char *name, const char *value,
		       int empty_is_null)
{
	member_name(res, name);
	if (value == NULL || (empty_is_null && value[0] == '\0'))
		body_add(res, "null", 4);
	else
		body_add_json_string(res, value);
}

void
response_member_bool(struct response *res, const char *name, int value)
{
	response_member_raw(res, name, value ? "true" : "false");
}

void
response_object_end(struct response *res)
{
	/* The newline, as response_json has it. */
	body_add(res, "}\n", 2);
	if (res->overflow)
		res->body_len = 0;
}

void
response_cookie(struct response *res, const char *name, const char *value, long max_age)
{
	char line[2048], header[64];
	int n = snprintf(line, sizeof(line),
			 "%s=%s; Max-Age=%ld; Path=/; HttpOnly; Secure; SameSite=Lax",
			 name, value, max_age);

	if (n < 0 || (size_t)n >= sizeof(line)) {
		res->overflow = 1;
		return;
	}
	res->cookies++;
	if (res->cookie_header_prefix == NULL) {
		response_header(res, "Set-Cookie", line);
		return;
	}
	snprintf(header, sizeof(header), "%s%d", res->cookie_header_prefix, res->cookies);
	response_header(res, header, line);
}

void
response_database_unavailable(struct response *res)
{
	response_error(res, 503, "database unavailable");
}

void
response_redirect(struct response *res, const char *location)
{
	response_redirect_status(res, 302, location);
}

void
response_redirect_status(struct response *res, int status, const char *location)
{
	response_header(res, "Location", location);
	response_json_string(res, status, "location", location);
}

const char *
response_reason(int status)
{
	return http_status_reason(http_status_index(status));
}

static const char overflow_head[] = "Status: 500 Internal Server Error\r\n"
				    "Content-Type: application/json\r\n"
				    "Cache-Control: no-store\r\n"
				    "\r\n";
static const char overflow_body[] = "{\"error\":\"internal error\"}\n";

/* The fallback when a handler's response did not fit its buffers. */
static size_t
render_overflow(int head_only, char *out, size_t size)
{
	size_t head = sizeof(overflow_head) - 1,
	       body = head_only ? 0 : sizeof(overflow_body) - 1;

	if (head + body > size)
		return 0;
	memcpy(out, overflow_head, head);
	memcpy(out + head, overflow_body, body);
	return head + body;
}

/* Where response_render writes: appends past the end are dropped and
 * remembered, so that one check at the end covers them all. */
struct render {
	char *out;
	size_t size, len;
	int overflow;
};

static void
put(struct render *r, const char *bytes, size_t n)
{
	if (r->overflow || n > r->size - r->len) {
		r->overflow = 1;
		return;
	}
	memcpy(r->out + r->len, bytes, n);
	r->len += n;
}

static void
put_str(struct render *r, const char *s)
{
	put(r, s, strlen(s));
}

static void
put_number(struct render *r, unsigned long long v)
{
	char digits[24];
	size_t n = sizeof(digits);

	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	put(r, digits + n, sizeof(digits) - n);
}

/*
 * The FastCGI answer: status, headers, body, without printf (this is
 * every request's last step, and the hot path's most expensive call).
 */
size_t
response_render(const struct response *res, int head_only, char *out, size_t size)
{
	struct render r = {out, size, 0, 0};
	int status = res->status;

	if (res->overflow)
		return render_overflow(head_only, out, size);
	put_str(&r, "Status: ");
	put_number(&r, (unsigned long long)(status >= 0 ? status : 0));
	put_str(&r, " ");
	put_str(&r, response_reason(status));
	put_str(&r, "\r\n");
	/* A 204 carries no Content-Length (RFC 9110, 8.6): it has no body. */
	if (status != 204 && res->content_type) {
		put_str(&r, "Content-Type: ");
		put_str(&r, res->content_type);
		put_str(&r, "\r\n");
	}
	put(&r, res->headers, res->headers_len);
	put_str(&r, "Cache-Control: no-store\r\n");
	if (status != 204) {
		put_str(&r, "Content-Length: ");
		put_number(&r, res->body_len);
		put_str(&r, "\r\n");
	}
	put_str(&r, "\r\n");
	if (status != 204 && !head_only)
		put(&r, res->body, res->body_len);
	return r.overflow ? 0 : r.len;
}
