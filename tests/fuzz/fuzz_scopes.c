/*
 * Scope lists as clients send them (/login?scope=, /me/token?require=,
 * after percent-decoding: a C string) and as Spotify and the
 * configuration write them. The first byte picks the syntax. Invariants:
 * a list that parses holds at most SCOPES_MAX distinct names of the
 * syntax's bytes, each 1 to SCOPES_NAME_MAX long; written back, it parses
 * to the same set in the same order; union with itself and what it lacks
 * of itself change nothing; a refused list leaves the set empty.
 */
#include "fuzz.h"

#include "../../src/scopes.h"

static void
check_names(const struct scopes *set, const char *chars)
{
	FUZZ_ASSERT(set->count >= 0 && set->count <= SCOPES_MAX);
	for (int i = 0; i < set->count; i++) {
		size_t len = strlen(set->names[i]);

		FUZZ_ASSERT(len >= 1 && len <= SCOPES_NAME_MAX);
		FUZZ_ASSERT(strspn(set->names[i], chars) == len);
		for (int j = 0; j < i; j++)
			FUZZ_ASSERT(strcmp(set->names[i], set->names[j]) != 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scopes set, again, missing;
	static char text[SCOPES_TEXT_MAX + 1];
	enum scopes_syntax syntax;
	char *value;
	int count;

	if (size == 0)
		return 0;
	syntax = data[0] & 1 ? SCOPES_LOOSE : SCOPES_STRICT;
	value = fuzz_string(data + 1, size - 1);
	if (scopes_parse(&set, value, strlen(value), syntax) < 0) {
		FUZZ_ASSERT(set.count == 0);
		free(value);
		return 0;
	}
	check_names(&set, syntax == SCOPES_STRICT
				  ? "abcdefghijklmnopqrstuvwxyz0123456789-"
				  : "abcdefghijklmnopqrstuvwxyz0123456789-_.");
	FUZZ_ASSERT(scopes_format(&set, text, sizeof(text)) == 0);
	FUZZ_ASSERT(scopes_parse(&again, text, strlen(text), syntax) == 0);
	FUZZ_ASSERT(again.count == set.count);
	for (int i = 0; i < set.count; i++)
		FUZZ_ASSERT(strcmp(again.names[i], set.names[i]) == 0);
	count = set.count;
	FUZZ_ASSERT(scopes_union(&set, &again) == 0 && set.count == count);
	scopes_missing(&set, &again, &missing);
	FUZZ_ASSERT(missing.count == 0);
	/* A grant of everything wanted, or a login that asked for it all,
	 * is never worth asking again. */
	FUZZ_ASSERT(!scopes_worth_asking(text, NULL, text));
	FUZZ_ASSERT(!scopes_worth_asking(NULL, text, text));
	free(value);
	return 0;
}
