/*
 * SQL for the auth_events table. Events are few (a login, a refresh an
 * hour per active user): one INSERT each, in the caller's transaction.
 */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[] = {
	[AUDIT_LOGIN] = "login",
	[AUDIT_LOGOUT] = "logout",
	[AUDIT_LOGOUT_EVERYWHERE] = "logout_everywhere",
	[AUDIT_SESSION_REVOKED] = "session_revoked",
	[AUDIT_REFRESH] = "refresh",
	[AUDIT_REFRESH_FAILED] = "refresh_failed",
	[AUDIT_REAUTH_REQUIRED] = "reauth_required",
	[AUDIT_RATE_LIMITED] = "rate_limited",
	[AUDIT_DELETED] = "deleted",
	[AUDIT_KEY_ROTATED] = "key_rotated",
};

#define EVENT_COUNT (sizeof(event_names) / sizeof(event_names[0]))

static const struct db_statement record = {
	"audit_record",
	"INSERT INTO auth_events (user_id, session_id, event, network, device, instance)"
	" VALUES ($1, $2, $3, $4::cidr, $5, $6)",
	6,
};

static const struct db_statement list = {
	"audit_list",
	"SELECT floor(extract(epoch FROM at))::bigint, event, coalesce(session_id, 0),"
	"  coalesce(host(network) || '/' || masklen(network), ''), device, instance"
	" FROM auth_events WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT 50",
	1,
};

static const struct db_statement prune = {
	"audit_prune",
	"DELETE FROM auth_events WHERE id IN (SELECT id FROM auth_events"
	"  WHERE at < now() - make_interval(days => $1::int) LIMIT $2)",
	2,
};

const char *
audit_event_name(enum audit_event event)
{
	return (size_t)event < EVENT_COUNT ? event_names[event] : "unknown";
}

enum db_status
audit_record(struct db *db, enum audit_event event, long long user_id,
	     long long session_id, const struct client *client)
{
	char user_text[24], session_text[24];
	const char *params[6] = {
		user_id ? user_text : NULL,
		session_id ? session_text : NULL,
		audit_event_name(event),
		client && client->network[0] ? client->network : NULL,
		client ? client->device : "",
		db->cfg->instance ? db->cfg->instance : "",
	};
	PGresult *res;

	snprintf(user_text, sizeof(user_text), "%lld", user_id);
	snprintf(session_text, sizeof(session_text), "%lld", session_id);
	if (db_exec(db, &record, params, &res) != DB_OK)
		return DB_QUERY_FAILED;
	PQclear(res);
	return DB_OK;
}

static enum audit_event
event_of(const char *name)
{
	for (size_t i = 0; i < EVENT_COUNT; i++)
		if (strcmp(event_names[i], name) == 0)
			return (enum audit_event)i;
	return AUDIT_LOGIN; /* the CHECK constraint admits no other */
}

enum db_status
audit_list(struct db *db, long long user_id, struct audit_list *out)
{
	char user_text[24];
	const char *params[1] = {user_text};
	PGresult *res;

	snprintf(user_text, sizeof(user_text), "%lld", user_id);
	if (db_exec(db, &list, params, &res) != DB_OK)
		return DB_QUERY_FAILED;
	out->count = 0;
	for (int i = 0; i < PQntuples(res) && i < AUDIT_LIST_MAX; i++) {
		struct audit_entry *e = &out->items[out->count++];
		e->at = (time_t)strtoll(PQgetvalue(res, i, 0), NULL, 10);
		e->event = event_of(PQgetvalue(res, i, 1));
		e->session_id = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		snprintf(e->client.network, sizeof(e->client.network), "%s",
			 PQgetvalue(res, i, 3));
		snprintf(e->client.device, sizeof(e->client.device), "%s",
			 PQgetvalue(res, i, 4));
		snprintf(e->instance, sizeof(e->instance), "%s", PQgetvalue(res, i, 5));
	}
	PQclear(res);
	return DB_OK;
}

int
audit_prune(struct db *db, int limit)
{
	char days[24], limit_text[24];
	const char *params[2] = {days, limit_text};

	snprintf(days, sizeof(days), "%d", db->cfg->audit_retention_days);
	snprintf(limit_text, sizeof(limit_text), "%d", limit);
	return (int)db_exec_count(db, &prune, params);
}
