/*
 * The Cookie header as the handlers read it: params_find_cookie, for baa's
 * cookie names (old and new) and a short one the fuzzer finds easily.
 * The header is the fuzzer's bytes as they are, NUL bytes included, in an
 * exactly sized buffer, so ASan sees any read past len. Invariants: a
 * FOUND value lies inside the header, holds no ';' and no blank at either
 * end; anything else leaves value NULL; and a naive reference (split on
 * ';', trim, compare the name) agrees on ABSENT/FOUND/DUPLICATE and on
 * the value. What a found value holds is the verifiers' business, fuzzed
 * by fuzz_session.
 */
#include "fuzz.h"

#include "../../src/params.h"

static const char *const names[] = {
	"__Host-baa_session", "__Host-baa_oauth", "baa_session", "baa_oauth", "a",
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char *
trim(char *s)
{
	size_t len;

	while (is_blank(*s))
		s++;
	len = strlen(s);
	while (len > 0 && is_blank(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* The same answer by the obvious means: strsep on a NUL-terminated copy. */
static enum params_cookie
reference(const char *header, size_t len, const char *name, size_t *value_at,
	  size_t *value_len)
{
	char *copy, *rest, *pair;
	int found = 0;

	if (memchr(header, '\0', len) != NULL)
		return PARAMS_COOKIE_ABSENT;
	copy = strndup(header, len);
	if (copy == NULL)
		abort();
	rest = copy;
	while ((pair = strsep(&rest, ";")) != NULL) {
		char *eq = strchr(pair, '='), *value;
		if (eq == NULL)
			continue;
		*eq = '\0';
		if (strcmp(trim(pair), name) != 0)
			continue;
		value = trim(eq + 1);
		*value_at = (size_t)(value - copy);
		*value_len = strlen(value);
		found++;
	}
	free(copy);
	return found == 0   ? PARAMS_COOKIE_ABSENT
	       : found == 1 ? PARAMS_COOKIE_FOUND
			    : PARAMS_COOKIE_DUPLICATE;
}

static void
check(const char *header, size_t len, const char *name)
{
	const char *value = header; /* not NULL: the call must set it */
	size_t value_len = 1, ref_at = 0, ref_len = 0;
	enum params_cookie got =
		params_find_cookie(header, len, name, &value, &value_len);
	enum params_cookie want = reference(header, len, name, &ref_at, &ref_len);

	FUZZ_ASSERT(got == want);
	if (got != PARAMS_COOKIE_FOUND) {
		FUZZ_ASSERT(value == NULL && value_len == 0);
		return;
	}
	FUZZ_ASSERT(value >= header && value_len <= len &&
		    (size_t)(value - header) <= len - value_len);
	FUZZ_ASSERT(memchr(value, ';', value_len) == NULL);
	FUZZ_ASSERT(value_len == 0 ||
		    (!is_blank(value[0]) && !is_blank(value[value_len - 1])));
	FUZZ_ASSERT((size_t)(value - header) == ref_at && value_len == ref_len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *header = malloc(size > 0 ? size : 1);

	if (header == NULL)
		abort();
	memcpy(header, data, size);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		check(header, size, names[i]);
	free(header);
	return 0;
}
