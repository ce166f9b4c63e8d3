/*
 * A login, stored in one transaction: the user's row (found or made), the
 * tokens, a new session for this device and the audit event. Nothing of
 * it is visible, and the browser gets no cookie, unless all of it commits.
 */
#ifndef BAA_LOGIN_H
#define BAA_LOGIN_H

#include "client.h"
#include "db.h"
#include "identity.h"
#include "session.h"
#include "sessions.h"
#include "spotify.h"

struct login_result {
	struct session_cookie cookie; /* the new session's id, its expiry */
	struct session_row session;
	enum identity_match match;
};

/*
 * 0, or -1 when the database failed (nothing was stored). asked: what the
 * login asked Spotify for (NULL: not known), kept beside the grant.
 */
int login_store(struct db *db, const struct spotify_user *who,
		const struct spotify_tokens *tokens, const char *asked,
		const struct client *client, struct login_result *out);

#endif
