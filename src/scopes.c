/*
 * Scope sets. Fixed arrays and no allocation: a set is small (Spotify has
 * about 25 scopes), and every operation is a scan over at most SCOPES_MAX
 * names.
 */
#include "scopes.h"

#include <stdio.h>
#include <string.h>

static const char strict_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
static const char loose_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-_.";

/* Whether name[0..n) is made of chars only (no NUL: chars has none). */
static int
all_of(const char *name, size_t n, const char *chars)
{
	for (size_t i = 0; i < n; i++)
		if (name[i] == '\0' || strchr(chars, name[i]) == NULL)
			return 0;
	return 1;
}

static int
add_name(struct scopes *set, const char *name, size_t len)
{
	char copy[SCOPES_NAME_MAX + 1];

	memcpy(copy, name, len);
	copy[len] = '\0';
	if (scopes_has(set, copy))
		return 0;
	if (set->count == SCOPES_MAX)
		return -1;
	memcpy(set->names[set->count++], copy, len + 1);
	return 0;
}

int
scopes_parse(struct scopes *out, const char *text, size_t len, enum scopes_syntax syntax)
{
	const char *chars = syntax == SCOPES_STRICT ? strict_chars : loose_chars;
	size_t i = 0;

	out->count = 0;
	if (len > SCOPES_TEXT_MAX)
		return -1;
	while (i < len) {
		size_t start, n;

		while (i < len && text[i] == ' ')
			i++;
		start = i;
		while (i < len && text[i] != ' ')
			i++;
		n = i - start;
		if (n == 0)
			break;
		if (n > SCOPES_NAME_MAX || !all_of(text + start, n, chars) ||
		    add_name(out, text + start, n) < 0) {
			out->count = 0;
			return -1;
		}
	}
	return 0;
}

int
scopes_has(const struct scopes *set, const char *name)
{
	for (int i = 0; i < set->count; i++)
		if (strcmp(set->names[i], name) == 0)
			return 1;
	return 0;
}

int
scopes_union(struct scopes *into, const struct scopes *from)
{
	int need = into->count;

	for (int i = 0; i < from->count; i++)
		need += !scopes_has(into, from->names[i]);
	if (need > SCOPES_MAX)
		return -1;
	for (int i = 0; i < from->count; i++)
		add_name(into, from->names[i], strlen(from->names[i]));
	return 0;
}

void
scopes_missing(const struct scopes *have, const struct scopes *want, struct scopes *out)
{
	out->count = 0;
	for (int i = 0; i < want->count; i++)
		if (!scopes_has(have, want->names[i]))
			add_name(out, want->names[i], strlen(want->names[i]));
}

int
scopes_format(const struct scopes *set, char *out, size_t size)
{
	size_t used = 0;

	if (size == 0)
		return -1;
	out[0] = '\0';
	for (int i = 0; i < set->count; i++) {
		int n = snprintf(out + used, size - used, "%s%s", i ? " " : "",
				 set->names[i]);

		if (n < 0 || (size_t)n >= size - used) {
			out[0] = '\0';
			return -1;
		}
		used += (size_t)n;
	}
	return 0;
}

void
scopes_parse_or_none(const char *text, struct scopes *out)
{
	if (text == NULL || scopes_parse(out, text, strlen(text), SCOPES_LOOSE) < 0)
		out->count = 0;
}

int
scopes_worth_asking(const char *granted, const char *asked, const char *wanted)
{
	static struct scopes want, have, lacking, unasked;

	scopes_parse_or_none(wanted, &want);
	scopes_parse_or_none(granted, &have);
	scopes_missing(&have, &want, &lacking);
	scopes_parse_or_none(asked, &have);
	scopes_missing(&have, &lacking, &unasked);
	return unasked.count > 0;
}
