/*
 * Query strings as /login and /callback read them: params_parse_form, then
 * the handlers' look-ups (next, code, state, error). Invariants: decoding
 * never grows the text, and the decoded pairs, encoded again, parse back
 * to the same pairs.
 */
#include "fuzz.h"

#include "../../src/params.h"
#include "../../src/session.h"

static int
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s percent-encoded; returns the new length, or SIZE_MAX when out is full. */
static size_t
encode(char *out, size_t len, size_t size, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (len + 4 > size)
			return SIZE_MAX;
		if (is_unreserved(c)) {
			out[len++] = (char)c;
		} else {
			out[len++] = '%';
			out[len++] = hex[c >> 4];
			out[len++] = hex[c & 15];
		}
	}
	return len;
}

static void
check_round_trip(const struct params *p)
{
	static char text[PARAMS_BUF];
	static struct params again;
	size_t len = 0;

	/* Pairs too long once encoded are not compared. */
	for (int i = 0; i < p->count; i++) {
		if (i > 0)
			text[len++] = '&';
		len = encode(text, len, sizeof(text), p->items[i].name);
		if (len == SIZE_MAX || len + 2 > sizeof(text))
			return;
		text[len++] = '=';
		len = encode(text, len, sizeof(text), p->items[i].value);
		if (len == SIZE_MAX || len + 2 > sizeof(text))
			return;
	}
	FUZZ_ASSERT(params_parse_form(&again, text, len) == PARAMS_OK);
	FUZZ_ASSERT(again.count == p->count);
	for (int i = 0; i < p->count; i++) {
		FUZZ_ASSERT(strcmp(again.items[i].name, p->items[i].name) == 0);
		FUZZ_ASSERT(strcmp(again.items[i].value, p->items[i].value) == 0);
	}
}

/* What a handler sees for name: the first occurrence, counted. */
static void
check_lookup(const struct params *p, const char *name)
{
	const char *value = params_get(p, name);
	int first = -1, n = 0;

	for (int i = 0; i < p->count; i++)
		if (strcmp(p->items[i].name, name) == 0 && n++ == 0)
			first = i;
	FUZZ_ASSERT(params_count(p, name) == n);
	FUZZ_ASSERT(n == 0 ? value == NULL : value == p->items[first].value);
}

/* /login's rule for next: a local path that no browser reads as another origin. */
static void
check_next(const char *next)
{
	size_t len = strlen(next);

	if (!session_is_local_path(next))
		return;
	FUZZ_ASSERT(len >= 1 && len <= SESSION_NEXT_MAX && next[0] == '/');
	FUZZ_ASSERT(next[1] != '/' && next[1] != '\\');
	for (size_t i = 0; i < len; i++)
		FUZZ_ASSERT((unsigned char)next[i] > ' ' &&
			    (unsigned char)next[i] < 0x7f && next[i] != '\\');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct params p;
	char *query = fuzz_string(data, size);
	size_t decoded = 0;

	/* The handlers pass QUERY_STRING as a C string. */
	if (params_parse_form(&p, query, strlen(query)) != PARAMS_OK)
		goto out;
	FUZZ_ASSERT(p.count >= 0 && p.count <= PARAMS_MAX);
	FUZZ_ASSERT(p.used <= sizeof(p.buf));
	for (int i = 0; i < p.count; i++)
		decoded += strlen(p.items[i].name) + strlen(p.items[i].value);
	FUZZ_ASSERT(decoded <= strlen(query));
	check_round_trip(&p);
	check_lookup(&p, "next");
	check_lookup(&p, "code");
	check_lookup(&p, "state");
	check_lookup(&p, "error");
	for (int i = 0; i < p.count; i++)
		check_next(p.items[i].value);
out:
	free(query);
	return 0;
}
