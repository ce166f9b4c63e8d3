/*
 * The pause's arithmetic (its one-word form, keeping the later deadline,
 * seconds left, the trigger's notification payload), and what it costs the
 * database: db_exec and PQstatus are replaced at link time (--wrap), so the
 * tests count every statement the pause would send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/pause.h"

/* -- the database, counted ----------------------------------------------- */

static int reads, writes;
static const char *written_ms, *written_reason;

enum db_status __wrap_db_exec(struct db *db, const struct db_statement *st,
			      const char *const *params, PGresult **result);
ConnStatusType __wrap_PQstatus(const PGconn *conn);

enum db_status
__wrap_db_exec(struct db *db, const struct db_statement *st, const char *const *params,
	       PGresult **result)
{
	*result = NULL; /* PQntuples(NULL) is 0: the row says nothing */
	if (strcmp(st->name, "pause_read") == 0)
		reads++;
	if (strcmp(st->name, "pause_write") == 0) {
		writes++;
		written_ms = params[0];
		written_reason = params[1];
	}
	return DB_OK;
}

ConnStatusType
__wrap_PQstatus(const PGconn *conn)
{
	return conn ? CONNECTION_OK : CONNECTION_BAD;
}

static struct config cfg;
static struct db conn;

/* A worker's connection as the pause sees it: up, listening or not. */
static void
attach(enum config_pooler pooler, int listening)
{
	static int fake_pgconn;
	static unsigned long epochs;

	cfg.db_pooler = pooler;
	db_init(&conn, &cfg);
	pause_attach(&conn);
	conn.conn = (PGconn *)&fake_pgconn;
	conn.listening = listening;
	conn.epoch = ++epochs; /* as db.c counts (re)connections */
	reads = writes = 0;
}

/* Each test starts with a worker that has finished its requests. */
static int
fresh_worker(void **state)
{
	pause_after_request(); /* whatever an earlier test left to do */
	reads = writes = 0;
	return 0;
}

static void
test_a_pause_packs_into_one_word_and_back(void **state)
{
	uint64_t p = pause_pack(123456789, PAUSE_QUOTA_EXCEEDED);

	assert_int_equal(pause_deadline(p), 123456789);
	assert_int_equal(pause_reason_of(p), PAUSE_QUOTA_EXCEEDED);
	p = pause_pack(42, PAUSE_SHORT_TERM);
	assert_int_equal(pause_deadline(p), 42);
	assert_int_equal(pause_reason_of(p), PAUSE_SHORT_TERM);
	/* the later deadline is the greater word, whatever the reasons */
	assert_true(pause_pack(1001, PAUSE_SHORT_TERM) >
		    pause_pack(1000, PAUSE_QUOTA_EXCEEDED));
	assert_int_equal(pause_deadline(pause_pack(-5, PAUSE_SHORT_TERM)), 0);
}

static void
test_the_later_deadline_is_kept(void **state)
{
	uint64_t slot = 0;

	assert_int_equal(pause_extend(&slot, pause_pack(5000, PAUSE_SHORT_TERM), 0), 1);
	assert_int_equal(pause_deadline(slot), 5000);
	/* an earlier deadline, even for the quota, changes nothing */
	assert_int_equal(pause_extend(&slot, pause_pack(4000, PAUSE_QUOTA_EXCEEDED), 0),
			 0);
	assert_int_equal(pause_deadline(slot), 5000);
	assert_int_equal(pause_reason_of(slot), PAUSE_SHORT_TERM);
	/* a later one replaces it, reason and all */
	assert_int_equal(pause_extend(&slot, pause_pack(9000, PAUSE_QUOTA_EXCEEDED), 0),
			 1);
	assert_int_equal(pause_deadline(slot), 9000);
	assert_int_equal(pause_reason_of(slot), PAUSE_QUOTA_EXCEEDED);
	assert_int_equal(pause_extend(&slot, pause_pack(9000, PAUSE_SHORT_TERM), 0), 0);
}

/* The same pause back from the database, a few milliseconds later: no news. */
static void
test_a_pause_within_the_slack_is_the_same_pause(void **state)
{
	uint64_t slot = pause_pack(10000, PAUSE_SHORT_TERM);

	assert_int_equal(pause_extend(&slot, pause_pack(10400, PAUSE_SHORT_TERM), 500),
			 0);
	assert_int_equal(pause_extend(&slot, pause_pack(10500, PAUSE_SHORT_TERM), 500),
			 0);
	assert_int_equal(pause_extend(&slot, pause_pack(10501, PAUSE_SHORT_TERM), 500),
			 1);
	assert_int_equal(pause_deadline(slot), 10501);
}

static void
test_seconds_left_round_up_and_stop_at_zero(void **state)
{
	assert_int_equal(pause_seconds_left(10000, 10000), 0);
	assert_int_equal(pause_seconds_left(10000, 12000), 0);
	assert_int_equal(pause_seconds_left(10001, 10000), 1);
	assert_int_equal(pause_seconds_left(11000, 10000), 1);
	assert_int_equal(pause_seconds_left(11001, 10000), 2);
	/* a Retry-After of an hour, read back at once */
	assert_int_equal(pause_seconds_left(3600 * 1000LL + 7, 7), 3600);
}

static void
test_notification_payload_is_read(void **state)
{
	enum pause_reason reason = PAUSE_SHORT_TERM;
	long long ms = -1;

	assert_int_equal(pause_parse_notification("quota_exceeded 3600000", &ms, &reason),
			 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(reason, PAUSE_QUOTA_EXCEEDED);
	assert_int_equal(pause_parse_notification("short_term 0", &ms, &reason), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(reason, PAUSE_SHORT_TERM);
	assert_string_equal(pause_reason_name(PAUSE_QUOTA_EXCEEDED), "quota_exceeded");
	assert_string_equal(pause_reason_name(PAUSE_SHORT_TERM), "short_term");
}

static void
test_notification_payload_that_is_not_ours_is_refused(void **state)
{
	const char *bad[] = {
		NULL,
		"",
		"short_term",
		"short_term ",
		"short 5",
		"short_terms 5",
		"Short_term 5",
		"short_term -5",
		"short_term 5 ",
		"short_term 5x",
		"short_term  5",
		"quota_exceeded 1e3",
		"short_term 1234567890123", /* more digits than any pause */
	};
	enum pause_reason reason;
	long long ms;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pause_parse_notification(bad[i], &ms, &reason), -1);
	assert_int_equal(
		pause_parse_notification("short_term 123456789012", &ms, &reason), 0);
}

/* GET /me and every other request that does not call Spotify: nothing. */
static void
test_a_listening_worker_reads_the_row_once_per_connection(void **state)
{
	long left;
	enum pause_reason reason;

	attach(CONFIG_POOLER_NONE, 1);
	pause_after_request(); /* the request that opened the connection */
	assert_int_equal(reads, 1);
	for (int i = 0; i < 1000; i++)
		pause_after_request();
	for (int i = 0; i < 10; i++) {
		assert_int_equal(pause_check(&left, &reason), 0);
		pause_after_request();
	}
	assert_int_equal(reads, 1);
	assert_int_equal(writes, 0);
	/* a new connection (db.c bumps the epoch) may have missed a pause */
	conn.epoch++;
	pause_after_request();
	assert_int_equal(reads, 2);
	pause_after_request();
	assert_int_equal(reads, 2);
	assert_int_equal(conn.nchannels, 1);
	assert_string_equal(conn.channels[0].name, PAUSE_CHANNEL);
}

/* Behind a transaction pooler: the row before each Spotify call, once a request. */
static void
test_without_listen_the_row_is_read_before_spotify_calls_only(void **state)
{
	long left;
	enum pause_reason reason;

	attach(CONFIG_POOLER_TRANSACTION, 0);
	for (int i = 0; i < 1000; i++)
		pause_after_request();
	assert_int_equal(reads, 0);
	assert_int_equal(conn.nchannels, 0); /* nothing to LISTEN on */
	/* /callback checks before spending its state, then the exchange checks */
	assert_int_equal(pause_check(&left, &reason), 0);
	assert_int_equal(pause_check(&left, &reason), 0);
	assert_int_equal(reads, 1);
	pause_after_request();
	assert_int_equal(pause_check(&left, &reason), 0);
	assert_int_equal(reads, 2);
}

static void
test_a_429_is_written_once_after_its_request(void **state)
{
	long left = 0;
	enum pause_reason reason = PAUSE_SHORT_TERM;

	attach(CONFIG_POOLER_NONE, 1);
	pause_after_request();
	reads = 0;
	pause_note(30, PAUSE_QUOTA_EXCEEDED);
	/* every worker of the instance stops at once: the word is shared */
	assert_int_equal(pause_check(&left, &reason), 1);
	assert_int_equal(left, 30);
	assert_int_equal(reason, PAUSE_QUOTA_EXCEEDED);
	assert_int_equal(writes, 0); /* not while the request is answered */
	pause_after_request();
	assert_int_equal(writes, 1);
	assert_string_equal(written_reason, "quota_exceeded");
	assert_in_range(strtol(written_ms, NULL, 10), 29000, 30000);
	for (int i = 0; i < 100; i++)
		pause_after_request();
	assert_int_equal(writes, 1);
	assert_int_equal(reads, 0);
	/* a shorter pause noted meanwhile changes nothing, here or there */
	pause_note(5, PAUSE_SHORT_TERM);
	assert_int_equal(pause_check(&left, &reason), 1);
	assert_int_equal(reason, PAUSE_QUOTA_EXCEEDED);
}

/* Inside a transaction (a token refresh) the write would roll back with it. */
static void
test_nothing_is_written_inside_a_transaction(void **state)
{
	attach(CONFIG_POOLER_NONE, 1);
	pause_after_request();
	pause_note(3600, PAUSE_SHORT_TERM);
	conn.in_transaction = 1;
	pause_after_request();
	assert_int_equal(writes, 0);
	conn.in_transaction = 0;
	pause_after_request();
	assert_int_equal(writes, 1);
}

/*
 * A notification may be taken in long after it was sent (libpq holds those
 * that arrive with a statement's answer): its time left is stale, the row
 * is not. Found by test_ratelimit: a worker paused 3 s for a pause long over.
 */
static void
test_a_notification_is_checked_against_the_row(void **state)
{
	long left;
	enum pause_reason reason;

	attach(CONFIG_POOLER_NONE, 1);
	pause_after_request();
	reads = 0;
	conn.channels[0].fn("quota_exceeded 3000", conn.channels[0].arg);
	assert_int_equal(reads, 1);
	assert_int_equal(pause_check(&left, &reason), 0); /* the row says: over */
	/* inside a transaction no statement may join it: the payload it is */
	conn.in_transaction = 1;
	conn.channels[0].fn("quota_exceeded 3000", conn.channels[0].arg);
	conn.in_transaction = 0;
	assert_int_equal(reads, 1);
	assert_int_equal(pause_check(&left, &reason), 1);
	assert_int_equal(reason, PAUSE_QUOTA_EXCEEDED);
	assert_in_range(left, 2, 3);
	/* and garbage is nobody's pause */
	conn.channels[0].fn("quota_exceeded soon", conn.channels[0].arg);
	assert_int_equal(reads, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_pause_packs_into_one_word_and_back),
		cmocka_unit_test(test_the_later_deadline_is_kept),
		cmocka_unit_test(test_a_pause_within_the_slack_is_the_same_pause),
		cmocka_unit_test(test_seconds_left_round_up_and_stop_at_zero),
		cmocka_unit_test(test_notification_payload_is_read),
		cmocka_unit_test(test_notification_payload_that_is_not_ours_is_refused),
		cmocka_unit_test_setup(
			test_a_listening_worker_reads_the_row_once_per_connection,
			fresh_worker),
		cmocka_unit_test_setup(
			test_without_listen_the_row_is_read_before_spotify_calls_only,
			fresh_worker),
		/* A pause is never shortened: those that start one come last. */
		cmocka_unit_test_setup(test_a_notification_is_checked_against_the_row,
				       fresh_worker),
		cmocka_unit_test_setup(test_a_429_is_written_once_after_its_request,
				       fresh_worker),
		cmocka_unit_test_setup(test_nothing_is_written_inside_a_transaction,
				       fresh_worker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
