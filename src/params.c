/*
 * Query, form and cookie parsing. Every byte that reaches a handler went
 * through here: decoded values never contain NUL, and everything is
 * bounded by PARAMS_MAX pairs and PARAMS_BUF bytes.
 */
#include "params.h"

#include <string.h>

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copies s[0..len) into the buffer, decoded when form_encoded; returns the copy. */
static const char *
copy_decoded(struct params *p, const char *s, size_t len, int form_encoded,
	     enum params_status *status)
{
	char *out = p->buf + p->used;
	size_t n = 0;

	if (p->used + len + 1 > sizeof(p->buf)) {
		*status = PARAMS_TOO_LARGE;
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\0') {
			*status = PARAMS_MALFORMED;
			return NULL;
		}
		if (form_encoded && c == '+') {
			c = ' ';
		} else if (form_encoded && c == '%') {
			int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				*status = PARAMS_MALFORMED;
				return NULL;
			}
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	p->used += n + 1;
	return out;
}

static enum params_status
add_pair(struct params *p, const char *pair, size_t len, int form_encoded)
{
	const char *eq = memchr(pair, '=', len);
	size_t name_len = eq ? (size_t)(eq - pair) : len;
	enum params_status status = PARAMS_OK;
	const char *name, *value;

	if (p->count == PARAMS_MAX)
		return PARAMS_TOO_LARGE;
	name = copy_decoded(p, pair, name_len, form_encoded, &status);
	if (name == NULL)
		return status;
	value = eq ? copy_decoded(p, eq + 1, len - name_len - 1, form_encoded, &status)
		   : copy_decoded(p, "", 0, 0, &status);
	if (value == NULL)
		return status;
	p->items[p->count].name = name;
	p->items[p->count].value = value;
	p->count++;
	return PARAMS_OK;
}

static void
reset(struct params *p)
{
	p->count = 0;
	p->used = 0;
}

enum params_status
params_parse_form(struct params *p, const char *s, size_t len)
{
	size_t start = 0;

	reset(p);
	if (len >= sizeof(p->buf))
		return PARAMS_TOO_LARGE;
	while (start < len) {
		const char *amp = memchr(s + start, '&', len - start);
		size_t end = amp ? (size_t)(amp - s) : len;
		/* Empty pieces ("a=1&&b=2", a trailing '&') carry nothing. */
		if (end > start) {
			enum params_status status =
				add_pair(p, s + start, end - start, 1);
			if (status != PARAMS_OK)
				return status;
		}
		start = end + 1;
	}
	return PARAMS_OK;
}

static int
is_cookie_space(char c)
{
	return c == ' ' || c == '\t';
}

enum params_status
params_parse_cookies(struct params *p, const char *s, size_t len)
{
	size_t start = 0;

	reset(p);
	if (len >= sizeof(p->buf))
		return PARAMS_TOO_LARGE;
	while (start < len) {
		const char *semi = memchr(s + start, ';', len - start);
		size_t end = semi ? (size_t)(semi - s) : len, stop = end;
		while (start < stop && is_cookie_space(s[start]))
			start++;
		while (stop > start && is_cookie_space(s[stop - 1]))
			stop--;
		if (stop > start) {
			enum params_status status;
			/* A pair without '=' or with an empty name is no cookie. */
			const char *eq = memchr(s + start, '=', stop - start);
			if (eq == NULL || eq == s + start)
				return PARAMS_MALFORMED;
			status = add_pair(p, s + start, stop - start, 0);
			if (status != PARAMS_OK)
				return status;
		}
		start = end + 1;
	}
	return PARAMS_OK;
}

/* header[start..end) less the blanks at either end. */
static void
trim_blanks(const char *header, size_t *start, size_t *end)
{
	while (*start < *end && is_cookie_space(header[*start]))
		(*start)++;
	while (*end > *start && is_cookie_space(header[*end - 1]))
		(*end)--;
}

/*
 * Whether the pair header[start..end) is called name; if so, its value's
 * bounds. A pair without '=' has no name (browsers read "x" as the value
 * of a nameless cookie), so it is never ours.
 */
static int
pair_is_named(const char *header, size_t start, size_t end, const char *name,
	      size_t name_len, size_t *value_start, size_t *value_end)
{
	const char *eq = memchr(header + start, '=', end - start);
	size_t name_end, eq_at;

	if (eq == NULL)
		return 0;
	eq_at = (size_t)(eq - header);
	name_end = eq_at;
	trim_blanks(header, &start, &name_end);
	if (name_end - start != name_len || memcmp(header + start, name, name_len) != 0)
		return 0;
	*value_start = eq_at + 1;
	*value_end = end;
	trim_blanks(header, value_start, value_end);
	return 1;
}

enum params_cookie
params_find_cookie(const char *header, size_t len, const char *name, const char **value,
		   size_t *value_len)
{
	size_t name_len = strlen(name), start = 0, found_start = 0, found_end = 0;
	int found = 0;

	if (value)
		*value = NULL;
	if (value_len)
		*value_len = 0;
	if (header == NULL || name_len == 0 || memchr(header, '\0', len) != NULL)
		return PARAMS_COOKIE_ABSENT;
	while (start < len && found < 2) {
		const char *semi = memchr(header + start, ';', len - start);
		size_t end = semi ? (size_t)(semi - header) : len, v_start, v_end;
		if (pair_is_named(header, start, end, name, name_len, &v_start, &v_end)) {
			found++;
			found_start = v_start;
			found_end = v_end;
		}
		start = end + 1;
	}
	if (found == 0)
		return PARAMS_COOKIE_ABSENT;
	if (found > 1)
		return PARAMS_COOKIE_DUPLICATE;
	if (value)
		*value = header + found_start;
	if (value_len)
		*value_len = found_end - found_start;
	return PARAMS_COOKIE_FOUND;
}

const char *
params_get(const struct params *p, const char *name)
{
	for (int i = 0; i < p->count; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return p->items[i].value;
	return NULL;
}

int
params_count(const struct params *p, const char *name)
{
	int n = 0;

	for (int i = 0; i < p->count; i++)
		n += strcmp(p->items[i].name, name) == 0;
	return n;
}
