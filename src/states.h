/*
 * Login states redeemed once, across every instance. A /callback with a
 * valid login cookie and its state costs a call to Spotify's token
 * endpoint with the app's credentials, and Spotify rate-limits the app as
 * a whole: replaying one callback must not spend that for everybody. The
 * state is recorded (as its SHA-256) in PostgreSQL before Spotify is
 * called, and a state already there is refused. Rows expire with the login
 * cookie and are swept by later redemptions.
 */
#ifndef BAA_STATES_H
#define BAA_STATES_H

#include <time.h>

#include "db.h"

enum states_status {
	STATES_FIRST,	 /* recorded now: the callback may go on to Spotify */
	STATES_USED,	 /* some instance took this state to Spotify already */
	STATES_DB_ERROR, /* nothing known: do not call Spotify */
};

/*
 * Records state as redeemed until its login cookie, valid until expires
 * (by this machine's clock), can no longer be presented anywhere.
 */
enum states_status states_redeem(struct db *db, const char *state, time_t expires,
				 time_t now);

#endif
