/*
 * logfmt lines on stderr. Each write(2) holds whole lines (one, or a batch
 * of them), so lines from workers sharing the descriptor never interleave.
 * When stderr is systemd's journal, each line starts with its syslog
 * priority ("<6>"), which journald takes for the entry's level.
 */
#include "log.h"

#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
/* Longer values are cut and marked: a log line is not a place for bulk data. */
#define LOG_VALUE_MAX 256

static const char *const level_names[] = {"debug", "info", "warn", "error"};
/* sd-daemon(3)'s SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR. */
static const char *const journal_priorities[] = {"<7>", "<6>", "<4>", "<3>"};
static int to_journal;

void
log_detect_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd names the journal's stream by device and inode; a value
	 * inherited by a process whose stderr went elsewhere names another. */
	to_journal = stream != NULL && sscanf(stream, "%llu:%llu", &dev, &ino) == 2 &&
		     fstat(STDERR_FILENO, &st) == 0 &&
		     (unsigned long long)st.st_dev == dev &&
		     (unsigned long long)st.st_ino == ino;
}

void
log_set_journal(int on)
{
	to_journal = on;
}

struct line {
	char *buf;
	size_t size;
	size_t len;
};

static void
put_char(struct line *l, char c)
{
	/* One byte stays free for the newline and one for the terminator. */
	if (l->len + 2 < l->size)
		l->buf[l->len++] = c;
}

static void
put_raw(struct line *l, const char *s)
{
	while (*s)
		put_char(l, *s++);
}

static int
needs_quotes(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= 0x7f)
			return 1;
	}
	return 0;
}

/* Escapes quotes, backslashes and every non-printable or non-ASCII byte. */
static void
put_value(struct line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int quoted = needs_quotes(s);
	size_t n = 0;

	if (quoted)
		put_char(l, '"');
	for (; *s && n < LOG_VALUE_MAX; s++, n++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			put_char(l, '\\');
			put_char(l, (char)c);
		} else if (c < ' ' || c >= 0x7f) {
			put_raw(l, "\\x");
			put_char(l, hex[c >> 4]);
			put_char(l, hex[c & 15]);
		} else {
			put_char(l, (char)c);
		}
	}
	if (*s)
		put_raw(l, "...");
	if (quoted)
		put_char(l, '"');
}

/* Decimal digits of v, at least min_digits of them (zero-padded). */
static void
put_unsigned(struct line *l, unsigned long long v, int min_digits)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 || n < min_digits);
	while (n > 0)
		put_char(l, digits[--n]);
}

static void
put_signed(struct line *l, long long v)
{
	if (v < 0) {
		put_char(l, '-');
		put_unsigned(l, 0ULL - (unsigned long long)v, 1);
	} else {
		put_unsigned(l, (unsigned long long)v, 1);
	}
}

/*
 * "ts=2026-11-25T19:42:19.123Z" from the clock alone (clock_civil: no
 * gmtime_r and its time-zone lock), so that a line can be formatted in a
 * signal handler too.
 */
static void
put_timestamp(struct line *l)
{
	struct timespec now;
	struct clock_civil c;

	clock_gettime(CLOCK_REALTIME, &now);
	clock_civil(now.tv_sec, &c);
	put_raw(l, "ts=");
	put_unsigned(l, (unsigned long long)c.year, 4);
	put_char(l, '-');
	put_unsigned(l, (unsigned long long)c.month, 2);
	put_char(l, '-');
	put_unsigned(l, (unsigned long long)c.day, 2);
	put_char(l, 'T');
	put_unsigned(l, (unsigned long long)c.hour, 2);
	put_char(l, ':');
	put_unsigned(l, (unsigned long long)c.minute, 2);
	put_char(l, ':');
	put_unsigned(l, (unsigned long long)c.second, 2);
	put_char(l, '.');
	put_unsigned(l, (unsigned long long)(now.tv_nsec / 1000000), 3);
	put_char(l, 'Z');
}

size_t
log_format(char *buf, size_t size, enum log_level level, const char *event,
	   const struct log_field *fields, size_t count)
{
	struct line l = {buf, size, 0};

	if (to_journal)
		put_raw(&l, journal_priorities[level]);
	put_timestamp(&l);
	put_raw(&l, " level=");
	put_raw(&l, level_names[level]);
	put_raw(&l, " event=");
	put_value(&l, event);

	for (size_t i = 0; i < count; i++) {
		put_char(&l, ' ');
		put_raw(&l, fields[i].key);
		put_char(&l, '=');
		switch (fields[i].kind) {
		case LOG_FIELD_STR:
			put_value(&l, fields[i].str ? fields[i].str : "");
			break;
		case LOG_FIELD_INT: put_signed(&l, fields[i].num); break;
		case LOG_FIELD_MS: {
			/* Three decimals, rounded: microseconds as an integer. */
			long long us = (long long)(fields[i].ms * 1000.0 +
						   (fields[i].ms < 0 ? -0.5 : 0.5));
			if (us < 0) {
				put_char(&l, '-');
				us = -us;
			}
			put_unsigned(&l, (unsigned long long)(us / 1000), 1);
			put_char(&l, '.');
			put_unsigned(&l, (unsigned long long)(us % 1000), 3);
			break;
		}
		}
	}
	l.buf[l.len++] = '\n';
	l.buf[l.len] = '\0';
	return l.len;
}

static int buffered;
static char batch[16384];
static size_t batch_len;
static struct timespec batch_since;

static void
write_out(const char *buf, size_t len)
{
	/* Nothing sensible to do when stderr is gone; the request goes on. */
	if (write(STDERR_FILENO, buf, len) < 0)
		return;
}

void
log_buffered(int on)
{
	log_flush();
	buffered = on;
}

void
log_flush(void)
{
	if (batch_len > 0)
		write_out(batch, batch_len);
	batch_len = 0;
}

int
log_pending(void)
{
	return batch_len > 0;
}

void
log_fields_now(enum log_level level, const char *event, const struct log_field *fields,
	       size_t count)
{
	char buf[LOG_LINE_MAX];

	write_out(buf, log_format(buf, sizeof(buf), level, event, fields, count));
}

void
log_fields(enum log_level level, const char *event, const struct log_field *fields,
	   size_t count)
{
	char buf[LOG_LINE_MAX];
	size_t len = log_format(buf, sizeof(buf), level, event, fields, count);
	struct timespec now;

	if (!buffered) {
		write_out(buf, len);
		return;
	}
	if (batch_len + len > sizeof(batch))
		log_flush();
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (batch_len == 0)
		batch_since = now;
	memcpy(batch + batch_len, buf, len);
	batch_len += len;
	if ((now.tv_sec - batch_since.tv_sec) * 1000 +
		    (now.tv_nsec - batch_since.tv_nsec) / 1000000 >=
	    LOG_FLUSH_MS)
		log_flush();
}
