/*
 * The audit trail (auth_events, sql/005): who logged in when and from
 * where, and what happened to their sessions and their Spotify grant.
 * An event is written in the transaction of what it records, so that a
 * login is not acknowledged without its event. It holds the device label
 * and network of the client, never a token, a cookie or an address.
 */
#ifndef BAA_AUDIT_H
#define BAA_AUDIT_H

#include <time.h>

#include "client.h"
#include "db.h"

#define AUDIT_LIST_MAX 50

enum audit_event {
	AUDIT_LOGIN,
	AUDIT_LOGOUT,
	AUDIT_LOGOUT_EVERYWHERE,
	AUDIT_SESSION_REVOKED,
	AUDIT_REFRESH,
	AUDIT_REFRESH_FAILED,
	AUDIT_REAUTH_REQUIRED,
	AUDIT_RATE_LIMITED,
	AUDIT_DELETED,
	AUDIT_KEY_ROTATED,
};

struct audit_entry {
	time_t at;
	enum audit_event event;
	long long session_id; /* 0 when none */
	struct client client;
	char instance[65];
};

struct audit_list {
	int count;
	struct audit_entry items[AUDIT_LIST_MAX];
};

/* The event's name as stored and shown. */
const char *audit_event_name(enum audit_event event);

/*
 * Writes one event of this instance (BAA_INSTANCE). user_id and session_id
 * 0 are stored as none; client NULL records no device or network.
 */
enum db_status audit_record(struct db *db, enum audit_event event, long long user_id,
			    long long session_id, const struct client *client);

/* The user's last AUDIT_LIST_MAX events, newest first. */
enum db_status audit_list(struct db *db, long long user_id, struct audit_list *out);

/* Deletes up to limit events older than BAA_AUDIT_RETENTION_DAYS; the number, or -1. */
int audit_prune(struct db *db, int limit);

#endif
