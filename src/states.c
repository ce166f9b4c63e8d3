/*
 * The redeemed_states table (sql/004_spotify_pause_and_states.sql). One
 * statement both records the state and sweeps a few expired rows, found
 * through the index on expires_at: no job, no timer, and a table that
 * holds about one cookie lifetime of logins. SKIP LOCKED keeps concurrent
 * logins from queueing on each other's sweep.
 */
#include "states.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "log.h"

/* Expired rows a redemption deletes: more than it adds, so they never pile up. */
#define SWEEP_ROWS "8"
/*
 * A row outlives its cookie by this much: the cookie's expiry is checked by
 * each instance's clock, the row's by the database's, and a row gone too
 * early would let a cookie still valid somewhere be redeemed again.
 */
#define CLOCK_SKEW_MARGIN 300

static const struct db_statement redeem = {
	"states_redeem",
	"WITH swept AS ("
	"  DELETE FROM redeemed_states WHERE state_hash IN ("
	"    SELECT state_hash FROM redeemed_states WHERE expires_at < now()"
	"    ORDER BY expires_at LIMIT " SWEEP_ROWS " FOR UPDATE SKIP LOCKED))"
	" INSERT INTO redeemed_states (state_hash, expires_at)"
	" VALUES (decode($1, 'hex'), now() + make_interval(secs => $2::int))"
	" ON CONFLICT (state_hash) DO NOTHING RETURNING 1",
	2,
};

enum states_status
states_redeem(struct db *db, const char *state, time_t expires, time_t now)
{
	unsigned char digest[32];
	char hex[2 * sizeof(digest) + 1], keep[24];
	const char *params[2] = {hex, keep};
	enum states_status status;
	PGresult *res;

	if (crypto_sha256(state, strlen(state), digest) < 0)
		return STATES_DB_ERROR;
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	snprintf(keep, sizeof(keep), "%lld",
		 (long long)(expires > now ? expires - now : 0) + CLOCK_SKEW_MARGIN);
	/*
	 * db_exec retries once on a new connection when the old one broke: if
	 * the first attempt had committed, the retry finds the state used and
	 * the user starts the login again. Never a second call to Spotify.
	 */
	if (db_exec(db, &redeem, params, &res) != DB_OK)
		return STATES_DB_ERROR;
	status = PQntuples(res) == 1 ? STATES_FIRST : STATES_USED;
	PQclear(res);
	return status;
}
