/*
 * Name/value pairs from outside: query strings, form bodies and the Cookie
 * header. Pure and bounded: the parser copies decoded bytes into the
 * struct's own buffer and refuses (never truncates) what does not fit.
 */
#ifndef BAA_PARAMS_H
#define BAA_PARAMS_H

#include <stddef.h>

#define PARAMS_MAX 32
#define PARAMS_BUF 8192

struct param {
	const char *name;
	const char *value;
};

struct params {
	int count;
	struct param items[PARAMS_MAX];
	size_t used;
	char buf[PARAMS_BUF];
};

enum params_status {
	PARAMS_OK = 0,
	PARAMS_MALFORMED = -1, /* bad percent-encoding, a NUL byte, a bad cookie pair */
	PARAMS_TOO_LARGE = -2, /* too many pairs or too many bytes */
};

/* "a=1&b=%20x+y": application/x-www-form-urlencoded, as in URLs and forms. */
enum params_status params_parse_form(struct params *p, const char *s, size_t len);

/* "a=1; b=2": cookie pairs; values are taken as sent (no decoding). */
enum params_status params_parse_cookies(struct params *p, const char *s, size_t len);

enum params_cookie {
	PARAMS_COOKIE_ABSENT,	/* no pair of that name, or a NUL byte in the header */
	PARAMS_COOKIE_FOUND,	/* exactly one pair of that name */
	PARAMS_COOKIE_DUPLICATE /* two or more: refuse them all, not the first */
};

/*
 * The one cookie called name in a whole Cookie header, header[0..len)
 * ("a=1; b=2", RFC 6265 section 5.4), without copying: on FOUND, *value
 * points into header and *value_len is its length (not NUL-terminated;
 * possibly 0). Other pairs, whatever they hold (other names, no name, no
 * '=', any number of them), are skipped, never fail the scan. Names match
 * exactly, case-sensitive; blanks (space, tab) around names and values are
 * trimmed; values are taken as sent (no decoding, quotes kept). A NUL byte
 * anywhere in the header makes it ABSENT (libfcgi hands over C strings, so
 * one cannot come from nginx). A NULL header (no Cookie header) and an
 * empty name are never found. value and value_len may be NULL; otherwise
 * they are set to NULL and 0 unless FOUND.
 */
enum params_cookie params_find_cookie(const char *header, size_t len, const char *name,
				      const char **value, size_t *value_len);

/* The value of name; NULL when absent. */
const char *params_get(const struct params *p, const char *name);

/* How many times name occurs: security-relevant names must occur once. */
int params_count(const struct params *p, const char *name);

#endif
