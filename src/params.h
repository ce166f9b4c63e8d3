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

/* The value of name; NULL when absent. */
const char *params_get(const struct params *p, const char *name);

/* How many times name occurs: security-relevant names must occur once. */
int params_count(const struct params *p, const char *name);

#endif
