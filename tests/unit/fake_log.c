/*
 * The log, kept in memory for the handler tests (-Wl,--wrap=log_fields):
 * each line formatted by log.c's own log_format, so that a test reads what
 * production would write, and nothing reaches stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../../src/log.h"
#include "fakes.h"

void __wrap_log_fields(enum log_level level, const char *event,
		       const struct log_field *fields, size_t count);

static char text[16384];
static size_t text_len;

void
__wrap_log_fields(enum log_level level, const char *event, const struct log_field *fields,
		  size_t count)
{
	char line[2048];
	size_t len = log_format(line, sizeof(line), level, event, fields, count);

	if (text_len + len < sizeof(text)) {
		memcpy(text + text_len, line, len + 1);
		text_len += len;
	}
}

void
fake_log_reset(void)
{
	text_len = 0;
	text[0] = '\0';
}

const char *
fake_log_text(void)
{
	return text;
}

/* Whether the line holds " word" followed by a space or its end. */
static int
line_has(const char *line, size_t len, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = line; (p = memmem(p, len - (size_t)(p - line), word, n));
	     p++)
		if (p > line && p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n'))
			return 1;
	return 0;
}

int
fake_log_has(const char *event, ...)
{
	char want[256];
	const char *line = text;

	snprintf(want, sizeof(want), "event=%s", event);
	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
		int all = line_has(line, len, want);
		va_list ap;
		const char *field;

		va_start(ap, event);
		while (all && (field = va_arg(ap, const char *)) != NULL)
			all = line_has(line, len, field);
		va_end(ap);
		if (all)
			return 1;
		line += len;
	}
	return 0;
}
