/*
 * Another login of the same account, committed between our look and our
 * insert, makes the insert fail on a UNIQUE index (23505); rows locked in
 * another order can deadlock (40P01). Both go away by doing it again: the
 * second look sees the other login's row. A new session id each attempt
 * costs nothing and keeps the attempts independent.
 */
#include "login.h"

#include <string.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "users.h"

#define LOGIN_ATTEMPTS 3

static int
worth_retrying(const struct db *db)
{
	return strcmp(db->sqlstate, "23505") == 0 || strcmp(db->sqlstate, "40P01") == 0 ||
	       strcmp(db->sqlstate, "40001") == 0;
}

/* Inside the transaction: everything a login writes. */
static int
store(struct db *db, const struct spotify_user *who, const struct spotify_tokens *tokens,
      const char *asked, const struct client *client, struct login_result *out)
{
	unsigned char hash[32];
	long long user_id;

	if (session_new_id(&out->cookie, 0) < 0 ||
	    session_id_hash(&out->cookie, hash) < 0)
		return -1;
	if (users_store_login(db, who, tokens, asked, &user_id, &out->match) !=
		    USERS_OK ||
	    sessions_create(db, user_id, hash, client, &out->session) != SESSIONS_OK ||
	    audit_record(db, AUDIT_LOGIN, user_id, out->session.id, client) != DB_OK)
		return -1;
	/* The cookie lasts as long as its row's first idle deadline. */
	out->cookie.expires = out->session.expires_at;
	return 0;
}

int
login_store(struct db *db, const struct spotify_user *who,
	    const struct spotify_tokens *tokens, const char *asked,
	    const struct client *client, struct login_result *out)
{
	for (int attempt = 1; attempt <= LOGIN_ATTEMPTS; attempt++) {
		if (db_begin(db) != DB_OK)
			return -1;
		if (store(db, who, tokens, asked, client, out) == 0 &&
		    db_commit(db) == DB_OK)
			return 0;
		db_rollback(db);
		if (!worth_retrying(db))
			break;
	}
	OPENSSL_cleanse(&out->cookie, sizeof(out->cookie));
	return -1;
}
