/*
 * The worker's cache of checked sessions, kept apart from the database so
 * that it is tested without one: a session row, keyed by the SHA-256 of
 * its cookie's id, with the connection (epoch) and the monotonic time it
 * was read at. sessions.c decides when it may be asked and says which
 * epoch and time it is; this file only keeps and refuses.
 */
#ifndef BAA_SESSION_CACHE_H
#define BAA_SESSION_CACHE_H

#include <time.h>

#include "sessions.h"

/*
 * 32768 entries in 4096 buckets of 8: a session may sit in either of two
 * buckets (two parts of its hash) and goes into the emptier one, so that
 * 16k sessions (two thirds of the table and more) fit without one pushing
 * another out; a full pair evicts the least recently read of its 16.
 * 116 bytes an entry with its tag and links, 3.6 MiB a worker, of which
 * only the pages of the sessions seen become resident (before: 1024
 * entries of 104 bytes, one slot per session, 104 KiB).
 */
#define SESSION_CACHE_SLOTS 32768
#define SESSION_CACHE_WAYS 8
#define SESSION_CACHE_TTL_MS 10000

/*
 * The row cached for hash when it was read on epoch less than
 * SESSION_CACHE_TTL_MS before now_ms and its expiry as read is after now
 * (wall clock); else NULL. Valid until the next call into this file.
 */
const struct session_row *session_cache_get(const unsigned char hash[32],
					    unsigned long epoch, long long now_ms,
					    time_t now);

/*
 * Keeps row as hash's, read on epoch at now_ms, in place of what hash had.
 * A row whose user_id is not a users.id (below 1) is not kept.
 */
void session_cache_put(const unsigned char hash[32], const struct session_row *row,
		       unsigned long epoch, long long now_ms);

/* A touch moved the row on: hash's entry, if any, holds row (same read time). */
void session_cache_update(const unsigned char hash[32], const struct session_row *row);

/*
 * Forgets every session of user_id. Once per notification of an ended
 * session, in every worker: it walks a chain of the sessions of user_id
 * and of the few users whose ids are equal to it modulo 32768, not the
 * table (whose scan would take some 70 µs on a busy machine, and a prune
 * of expired sessions notifies up to 500 users at once).
 */
void session_cache_forget_user(long long user_id);

#endif
