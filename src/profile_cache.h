/*
 * The worker's cache of the profiles GET /me shows, kept apart from the
 * database so that it is tested without one: a compact copy of a struct
 * user_profile, keyed by users.id, with the connection (epoch) and the
 * monotonic time it was read at. users.c decides when it may be asked and
 * says which epoch and time it is.
 */
#ifndef BAA_PROFILE_CACHE_H
#define BAA_PROFILE_CACHE_H

#include "users.h"

/*
 * 16384 entries in 2048 buckets of 8, a user's bucket its id modulo 2048:
 * users.id is a sequence, so up to 16384 users fill every bucket evenly
 * and none pushes another out; past that a bucket evicts the least
 * recently read of its 8. An entry is 264 bytes (4.1 MiB a worker, of
 * which only the pages of the users seen become resident) where a whole
 * struct user_profile is about 1.9 KiB: its strings are packed into
 * PROFILE_CACHE_TEXT_MAX bytes, and its grant's scope, which few users
 * hold apart from the others, is kept once in a table of
 * PROFILE_CACHE_SCOPES texts. Before: 1024 whole profiles, 1.9 MiB.
 *
 * With session_cache.h's table, 7.8 MiB a worker where there were 2 MiB;
 * 380 bytes a user where there were 2070. A worker's RSS, measured: 6.4
 * MiB serving one user, 6.3 before (tests/load/bench.py); 11.0 MiB after
 * GET /me over 10,000 users, every one served from the cache on the
 * second pass, where the 1024 slots made it 8.5 MiB and served none.
 */
#define PROFILE_CACHE_SLOTS 16384
#define PROFILE_CACHE_WAYS 8
#define PROFILE_CACHE_TTL_MS 10000
/*
 * spotify_id, account_id, display_name and three 20-byte times: real
 * Spotify ids are under 32 bytes, so a display name of about 100 bytes
 * still fits.
 */
#define PROFILE_CACHE_TEXT_MAX 216
/* Distinct grants' scopes a worker keeps; a user holding another is not cached. */
#define PROFILE_CACHE_SCOPES 16

/*
 * 1 and *out when id's profile was read on epoch less than
 * PROFILE_CACHE_TTL_MS before now_ms, else 0 (*out untouched).
 */
int profile_cache_get(long long id, unsigned long epoch, long long now_ms,
		      struct user_profile *out);
/* Whether profile_cache_get would answer, without unpacking the entry. */
int profile_cache_has(long long id, unsigned long epoch, long long now_ms);

/*
 * Keeps profile, read on epoch at now_ms, in place of what its id had: 0,
 * or -1 when it does not fit (its strings are too long, or its scope is
 * none of those kept and the table is full): then nothing is kept for
 * that id, and the next lookup misses, to be read from the database.
 */
int profile_cache_put(const struct user_profile *profile, unsigned long epoch,
		      long long now_ms);

/* Forgets id's profile (its row changed). */
void profile_cache_forget(long long id);

#endif
