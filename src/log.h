/*
 * Structured logging: one logfmt line per event on stderr. Callers pass
 * typed fields, never a pre-formatted message, so that a value taken from
 * a request is always escaped and bounded and cannot smuggle in a line.
 */
#ifndef BAA_LOG_H
#define BAA_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_field_kind { LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_MS };

struct log_field {
	const char *key;
	enum log_field_kind kind;
	union {
		const char *str;
		long long num;
		double ms;
	};
};

#define LOG_STR(k, v) ((struct log_field){.key = (k), .kind = LOG_FIELD_STR, .str = (v)})
#define LOG_INT(k, v) ((struct log_field){.key = (k), .kind = LOG_FIELD_INT, .num = (v)})
#define LOG_MS(k, v) ((struct log_field){.key = (k), .kind = LOG_FIELD_MS, .ms = (v)})

/* log_event(LOG_INFO, "worker_started", LOG_INT("pid", pid), ...) */
#define log_event(level, event, ...)                                                     \
	log_fields((level), (event), (const struct log_field[]){__VA_ARGS__},            \
		   sizeof((const struct log_field[]){__VA_ARGS__}) /                     \
			   sizeof(struct log_field))

void log_fields(enum log_level level, const char *event, const struct log_field *fields,
		size_t count);

/*
 * Workers buffer their lines and write them in batches, so that a request
 * does not cost a write(2) of its own: a batch goes out when the buffer is
 * full, when its oldest line is LOG_FLUSH_MS old, or when the worker is
 * about to wait (log_flush). Lines of a batch are whole; a worker that
 * crashes loses at most its last batch.
 */
#define LOG_FLUSH_MS 50
void log_buffered(int on);
void log_flush(void);
int log_pending(void);

/*
 * One line written at once, past any batch, and async-signal-safe (no
 * lock, no allocation, no shared buffer): for a signal handler's last
 * words. Lines still in the batch are not written.
 */
#define log_event_now(level, event, ...)                                                 \
	log_fields_now((level), (event), (const struct log_field[]){__VA_ARGS__},        \
		       sizeof((const struct log_field[]){__VA_ARGS__}) /                 \
			       sizeof(struct log_field))
void log_fields_now(enum log_level level, const char *event,
		    const struct log_field *fields, size_t count);

/*
 * Whether stderr is systemd's journal (JOURNAL_STREAM names it): then each
 * line starts with its syslog priority, "<3>" to "<7>". Called once at
 * start; log_set_journal says it outright (the unit tests).
 */
void log_detect_journal(void);
void log_set_journal(int on);

/* Formats one line into buf (always NUL-terminated); returns its length. */
size_t log_format(char *buf, size_t size, enum log_level level, const char *event,
		  const struct log_field *fields, size_t count);

#endif
