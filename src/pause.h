/*
 * The app-wide pause of calls to Spotify. Spotify rate-limits the app, for
 * all of its users together: after a 429 no worker of any instance calls
 * Spotify again before Retry-After has passed, since every call in between
 * would only be refused and count against the app.
 *
 * An instance's workers share the deadline in memory mapped before the
 * fork; instances share it through one row in PostgreSQL
 * (sql/004_spotify_pause_and_states.sql), written after the request that
 * met the 429 (keeping the later deadline), whose trigger notifies every
 * listening worker at its commit. A worker reads the row once per new
 * connection; behind a transaction pooler, which carries no LISTEN, it
 * reads it before each call to Spotify instead. An ordinary request costs
 * nothing.
 */
#ifndef BAA_PAUSE_H
#define BAA_PAUSE_H

#include <stdint.h>

#include "db.h"

/* The channel of the row's trigger. */
#define PAUSE_CHANNEL "baa_spotify_pause"

/* What the 429 said: a short-term limit, or the app's quota used up. */
enum pause_reason { PAUSE_SHORT_TERM, PAUSE_QUOTA_EXCEEDED };

/* Once, in the master, before forking. */
int pause_init(void);

/* A worker: the connection the row is read and written on. */
void pause_attach(struct db *db);

/*
 * Before a call to Spotify: 1 when calls are paused, with the seconds left
 * (rounded up) and the reason; 0 when the call may go.
 */
int pause_check(long *seconds_left, enum pause_reason *reason);

/* A 429 asking for seconds of quiet: every worker stops now, and the row
 * is written once the request is answered. */
void pause_note(long seconds, enum pause_reason reason);

/* A worker, after each response: writes a noted pause to the row, reads
 * the row on a new connection. Nothing to do costs two comparisons. */
void pause_after_request(void);

/* For /metrics: milliseconds left (0: not paused) and the reason. */
long long pause_remaining_ms(enum pause_reason *reason);

/* "short_term", "quota_exceeded": as in the row, the logs and /metrics. */
const char *pause_reason_name(enum pause_reason reason);

/*
 * The pure parts, for the unit tests. A pause is one 64-bit word (so that
 * it is read and replaced atomically): the deadline in milliseconds of
 * CLOCK_MONOTONIC, shifted left once, with the reason in the low bit, so
 * that the later deadline compares greater.
 */
uint64_t pause_pack(long long deadline_ms, enum pause_reason reason);
long long pause_deadline(uint64_t packed);
enum pause_reason pause_reason_of(uint64_t packed);

/* Replaces *slot with packed when that ends more than slack_ms later;
 * 1 when it did. Atomic: any number of processes may race on one slot. */
int pause_extend(uint64_t *slot, uint64_t packed, long long slack_ms);

/* Whole seconds from now_ms to deadline_ms, rounded up; 0 when past. */
long pause_seconds_left(long long deadline_ms, long long now_ms);

/* "<reason> <milliseconds left>", the trigger's payload; -1 when it is not. */
int pause_parse_notification(const char *payload, long long *remaining_ms,
			     enum pause_reason *reason);

#endif
