/*
 * application/x-www-form-urlencoded bodies and queries, taken as raw bytes
 * (NULs included): params_parse_form against a reference decoder written
 * the slow, obvious way from the HTML form-encoding rules. Both must agree
 * on every input: the same pairs, or both refusing it.
 */
#include "fuzz.h"

#include "../../src/params.h"

struct reference {
	int malformed;
	int count;
	/* Decoded, up to one pair more than params may hold. */
	char *names[PARAMS_MAX + 1];
	char *values[PARAMS_MAX + 1];
};

static int
hex_digit(int c)
{
	const char *digits = "0123456789abcdefABCDEF";
	const char *d = c ? strchr(digits, c) : NULL;
	int i = d ? (int)(d - digits) : -1;

	return i < 16 ? i : i - 6;
}

/* Decodes s[0..len) into a new string; NULL when malformed. */
static char *
reference_decode(const uint8_t *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (out == NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0')
			goto bad; /* decoded values never hold NUL */
		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%') {
			int hi = i + 2 < len ? hex_digit(s[i + 1]) : -1;
			int lo = i + 2 < len ? hex_digit(s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || hi * 16 + lo == 0)
				goto bad;
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = (char)s[i];
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static void
reference_parse(struct reference *r, const uint8_t *s, size_t len)
{
	size_t start = 0;

	r->malformed = 0;
	r->count = 0;
	while (start < len && !r->malformed && r->count <= PARAMS_MAX) {
		size_t end = start, eq;
		while (end < len && s[end] != '&')
			end++;
		if (end > start) {
			for (eq = start; eq < end && s[eq] != '='; eq++)
				;
			r->names[r->count] = reference_decode(s + start, eq - start);
			r->values[r->count] =
				eq < end ? reference_decode(s + eq + 1, end - eq - 1)
					 : reference_decode((const uint8_t *)"", 0);
			if (r->names[r->count] == NULL || r->values[r->count] == NULL)
				r->malformed = 1;
			r->count++;
		}
		start = end + 1;
	}
}

static void
reference_free(struct reference *r)
{
	for (int i = 0; i < r->count; i++) {
		free(r->names[i]);
		free(r->values[i]);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct params p;
	static struct reference r;
	/* Exactly sized, and not NUL-terminated: the parser takes a length. */
	char *body = malloc(size ? size : 1);
	enum params_status status;
	/* Inputs this small with this few pairs always fit the buffer. */
	int fits;

	if (body == NULL)
		abort();
	memcpy(body, data, size);
	status = params_parse_form(&p, body, size);
	reference_parse(&r, data, size);
	fits = r.count <= PARAMS_MAX && size + 2 * PARAMS_MAX < PARAMS_BUF;

	switch (status) {
	case PARAMS_OK:
		FUZZ_ASSERT(!r.malformed && r.count == p.count);
		for (int i = 0; i < p.count; i++) {
			FUZZ_ASSERT(strcmp(p.items[i].name, r.names[i]) == 0);
			FUZZ_ASSERT(strcmp(p.items[i].value, r.values[i]) == 0);
		}
		break;
	case PARAMS_MALFORMED: FUZZ_ASSERT(r.malformed); break;
	case PARAMS_TOO_LARGE: FUZZ_ASSERT(!fits); break;
	default: FUZZ_ASSERT(!"an unknown status");
	}
	FUZZ_ASSERT(status == PARAMS_OK || !fits || r.malformed);
	reference_free(&r);
	free(body);
	return 0;
}
