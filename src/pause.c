/*
 * The pause: one word in shared memory per instance, one row per database.
 * The word only ever moves to a later deadline (compare-and-swap), so
 * workers learning the same pause from a 429, a notification or the row,
 * in any order, agree on it without a lock.
 */
#include "pause.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "clock.h"
#include "log.h"

/*
 * A pause learned from the row or a notification that ends within this of
 * the one already known is that same pause (it went to the database and
 * back): nothing changes and nothing is logged, by any worker.
 */
#define PAUSE_SLACK_MS 500
/* Spotify's Retry-After is capped at an hour (spotify_parse_retry_after);
 * so is a pause read from the database, whoever wrote it. */
#define PAUSE_MAX_MS (3600 * 1000LL)
/* Digits of a notification's milliseconds: far above PAUSE_MAX_MS. */
#define PAYLOAD_DIGITS_MAX 12

static uint64_t own_word; /* before pause_init, and in the unit tests */
static uint64_t *word = &own_word;

static struct db *db;		    /* the worker's connection; NULL in the master */
static unsigned long read_epoch;    /* the listening connection the row was read on */
static unsigned long requests;	    /* requests this worker has finished */
static unsigned long read_requests; /* requests finished when the row was last read */
static int read_once;		    /* the row was read at all */
static uint64_t unwritten;	    /* a pause the row has not been given; 0: none */

static const char *const reason_names[] = {"short_term", "quota_exceeded"};

static const struct db_statement read_row = {
	"pause_read",
	"SELECT reason,"
	"  greatest(0, ceil(extract(epoch FROM until - now()) * 1000))::bigint"
	" FROM spotify_pause",
	0,
};

/* The later deadline wins; the server's clock counts from the answer on. */
static const struct db_statement write_row = {
	"pause_write",
	"INSERT INTO spotify_pause (until, reason)"
	" VALUES (now() + make_interval(secs => $1::float8 / 1000), $2)"
	" ON CONFLICT (id) DO UPDATE SET until = EXCLUDED.until,"
	"  reason = EXCLUDED.reason, updated_at = now()"
	" WHERE spotify_pause.until < EXCLUDED.until",
	2,
};

uint64_t
pause_pack(long long deadline_ms, enum pause_reason reason)
{
	return (uint64_t)(deadline_ms > 0 ? deadline_ms : 0) << 1 |
	       (reason == PAUSE_QUOTA_EXCEEDED);
}

long long
pause_deadline(uint64_t packed)
{
	return (long long)(packed >> 1);
}

enum pause_reason
pause_reason_of(uint64_t packed)
{
	return packed & 1 ? PAUSE_QUOTA_EXCEEDED : PAUSE_SHORT_TERM;
}

int
pause_extend(uint64_t *slot, uint64_t packed, long long slack_ms)
{
	uint64_t current = __atomic_load_n(slot, __ATOMIC_RELAXED);

	do {
		if (pause_deadline(packed) <= pause_deadline(current) + slack_ms)
			return 0;
	} while (!__atomic_compare_exchange_n(slot, &current, packed, 0, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return 1;
}

long
pause_seconds_left(long long deadline_ms, long long now_ms)
{
	return deadline_ms <= now_ms ? 0 : (long)((deadline_ms - now_ms + 999) / 1000);
}

static int
parse_reason(const char *name, size_t len, enum pause_reason *reason)
{
	for (int r = PAUSE_SHORT_TERM; r <= PAUSE_QUOTA_EXCEEDED; r++) {
		if (strlen(reason_names[r]) == len &&
		    memcmp(name, reason_names[r], len) == 0) {
			*reason = (enum pause_reason)r;
			return 0;
		}
	}
	return -1;
}

int
pause_parse_notification(const char *payload, long long *remaining_ms,
			 enum pause_reason *reason)
{
	const char *space = payload ? strchr(payload, ' ') : NULL;
	size_t digits;

	if (space == NULL || parse_reason(payload, (size_t)(space - payload), reason) < 0)
		return -1;
	digits = strspn(space + 1, "0123456789");
	if (digits == 0 || digits > PAYLOAD_DIGITS_MAX || space[1 + digits] != '\0')
		return -1;
	*remaining_ms = strtoll(space + 1, NULL, 10);
	return 0;
}

const char *
pause_reason_name(enum pause_reason reason)
{
	return reason_names[reason == PAUSE_QUOTA_EXCEEDED];
}

int
pause_init(void)
{
	uint64_t *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (shared == MAP_FAILED)
		return -1;
	*shared = 0;
	word = shared;
	return 0;
}

/* A pause told by another worker or instance, through the database. */
static void
learn(long long remaining_ms, enum pause_reason reason, const char *source)
{
	if (remaining_ms <= 0)
		return;
	if (remaining_ms > PAUSE_MAX_MS)
		remaining_ms = PAUSE_MAX_MS;
	if (pause_extend(word, pause_pack(clock_now_ms() + remaining_ms, reason),
			 PAUSE_SLACK_MS))
		log_event(reason == PAUSE_QUOTA_EXCEEDED ? LOG_ERROR : LOG_WARN,
			  "spotify_paused", LOG_STR("source", source),
			  LOG_STR("reason", pause_reason_name(reason)),
			  LOG_INT("retry_after", pause_seconds_left(remaining_ms, 0)));
}

/* Whether the connection is up and listening: notifications then arrive. */
static int
listening(void)
{
	return db->conn && db->listening && PQstatus(db->conn) == CONNECTION_OK;
}

/* Reads the row: what it says is learnt from source; -1 when it could not. */
static int
read_pause_row(const char *source)
{
	enum pause_reason reason;
	PGresult *res;

	/* Failures are logged by db.c; the call goes by what is known here. */
	if (db_exec(db, &read_row, NULL, &res) != DB_OK)
		return -1;
	if (PQntuples(res) == 1 &&
	    parse_reason(PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)), &reason) ==
		    0)
		learn(strtoll(PQgetvalue(res, 0, 1), NULL, 10), reason, source);
	PQclear(res);
	read_epoch = db->epoch;
	read_requests = requests;
	read_once = 1;
	return 0;
}

/*
 * The row changed. The payload's time left was right when it was sent, but
 * a notification can reach the worker late: libpq keeps those that come in
 * with a statement's answer (the writer's own, for one) until the next time
 * notifications are taken, which may be much later. So the row is read
 * again, and the time left is the server's, now; the payload is only the
 * fallback, inside a transaction (a statement would join it) or when the
 * read fails.
 */
static void
on_notification(const char *payload, void *arg)
{
	enum pause_reason reason;
	long long remaining_ms;

	if (pause_parse_notification(payload, &remaining_ms, &reason) < 0) {
		log_event(LOG_WARN, "pause_notification_unreadable",
			  LOG_STR("channel", PAUSE_CHANNEL));
		return;
	}
	if (db->in_transaction || read_pause_row("notification") < 0)
		learn(remaining_ms, reason, "notification");
}

void
pause_attach(struct db *conn)
{
	db = conn;
	/* Behind a transaction pooler nothing listens: the row is read instead. */
	if (conn->cfg->db_pooler == CONFIG_POOLER_NONE &&
	    db_subscribe(conn, PAUSE_CHANNEL, on_notification, NULL) < 0)
		log_event(LOG_ERROR, "db_subscribe_failed",
			  LOG_STR("channel", PAUSE_CHANNEL));
}

/* Whether the row has been read on the connection there is now. */
static int
read_on_this_connection(void)
{
	return read_once && read_epoch == db->epoch;
}

/*
 * A listening connection hears of every pause from the moment it listens,
 * so the row is read once on it. Without one (a transaction pooler, or the
 * LISTEN failed) the row is read before Spotify is called, once a request.
 */
static int
row_must_be_read(void)
{
	if (db == NULL)
		return 0;
	if (listening())
		return !read_on_this_connection();
	return !read_once || read_requests != requests;
}

static int
paused_now(long *seconds_left, enum pause_reason *reason)
{
	uint64_t current = __atomic_load_n(word, __ATOMIC_RELAXED);
	long left = pause_seconds_left(pause_deadline(current), clock_now_ms());

	if (left == 0)
		return 0;
	*seconds_left = left;
	*reason = pause_reason_of(current);
	return 1;
}

int
pause_check(long *seconds_left, enum pause_reason *reason)
{
	if (row_must_be_read())
		read_pause_row("database");
	return paused_now(seconds_left, reason);
}

void
pause_note(long seconds, enum pause_reason reason)
{
	uint64_t packed = pause_pack(clock_now_ms() + seconds * 1000LL, reason);

	pause_extend(word, packed, 0);
	if (pause_deadline(packed) > pause_deadline(unwritten))
		unwritten = packed;
}

static void
write_pause_row(void)
{
	long long left = pause_deadline(unwritten) - clock_now_ms();
	char ms[24];
	const char *params[2] = {ms, pause_reason_name(pause_reason_of(unwritten))};
	PGresult *res;

	if (left <= 0) {
		unwritten = 0; /* over already: nobody needs to hear of it */
		return;
	}
	snprintf(ms, sizeof(ms), "%lld", left);
	/* Failed (logged by db.c): tried again after the next request. */
	if (db_exec(db, &write_row, params, &res) != DB_OK)
		return;
	PQclear(res);
	unwritten = 0;
}

void
pause_after_request(void)
{
	if (db != NULL && !db->in_transaction) {
		if (unwritten)
			write_pause_row();
		/* A new listening connection: what was paused before it listened. */
		if (!read_on_this_connection() && listening())
			read_pause_row("database");
	}
	requests++;
}

long long
pause_remaining_ms(enum pause_reason *reason)
{
	uint64_t current = __atomic_load_n(word, __ATOMIC_RELAXED);
	long long left = pause_deadline(current) - clock_now_ms();

	*reason = pause_reason_of(current);
	return left > 0 ? left : 0;
}
