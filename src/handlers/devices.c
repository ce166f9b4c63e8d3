/*
 * The user's devices and what happened to their account: GET /me/sessions
 * lists the live sessions (the caller's own marked current), DELETE
 * /me/sessions/{id} ends one, GET /me/activity shows the last events of
 * the audit trail. None of them is a hot path: cJSON builds the lists.
 */
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#include "../audit.h"
#include "../clock.h"
#include "../log.h"

#define SESSIONS_PREFIX "/me/sessions/"

static void
add_time(cJSON *object, const char *name, time_t t)
{
	char text[32];

	clock_iso8601(t, text);
	cJSON_AddStringToObject(object, name, text);
}

static void
add_text_or_null(cJSON *object, const char *name, const char *text)
{
	if (text[0])
		cJSON_AddStringToObject(object, name, text);
	else
		cJSON_AddNullToObject(object, name);
}

/* A new object at the end of items; NULL when cJSON ran out of memory. */
static cJSON *
append_object(cJSON *items)
{
	cJSON *item = cJSON_CreateObject();

	if (item == NULL || !cJSON_AddItemToArray(items, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

/* Answers with json (consumed), or 500 when cJSON ran out of memory. */
static void
answer(struct response *res, cJSON *json, int complete)
{
	if (json && complete)
		response_json(res, 200, json);
	else
		response_error(res, 500, "out of memory");
	cJSON_Delete(json);
}

void
me_sessions(const struct request *req, struct response *res)
{
	static struct session_list list;
	struct current cur;
	cJSON *json, *items;

	if (current_require(req, res, &cur, 0) < 0)
		return;
	if (sessions_list(req->db, cur.session.user_id, &list) != SESSIONS_OK) {
		response_database_unavailable(res);
		return;
	}
	json = cJSON_CreateObject();
	items = json ? cJSON_AddArrayToObject(json, "sessions") : NULL;
	for (int i = 0; items && i < list.count; i++) {
		const struct session_listing *s = &list.items[i];
		cJSON *item = append_object(items);

		if (item == NULL) {
			items = NULL;
			break;
		}
		cJSON_AddNumberToObject(item, "id", (double)s->row.id);
		add_time(item, "created_at", s->row.created_at);
		add_time(item, "last_seen_at", s->row.last_seen_at);
		add_time(item, "expires_at", s->row.expires_at);
		cJSON_AddStringToObject(item, "device", s->client.device);
		add_text_or_null(item, "network", s->client.network);
		cJSON_AddBoolToObject(item, "current", s->row.id == cur.session.id);
	}
	answer(res, json, items != NULL);
}

/* The {id} of /me/sessions/{id}: a positive decimal, nothing else. */
static long long
session_id_of(const char *path)
{
	const char *digits = path + strlen(SESSIONS_PREFIX);
	size_t len = strlen(digits);

	if (len == 0 || len > 18 || strspn(digits, "0123456789") != len ||
	    digits[0] == '0')
		return 0;
	return strtoll(digits, NULL, 10);
}

void
me_session_end(const struct request *req, struct response *res)
{
	long long id = session_id_of(req->path);
	struct current cur;

	if (id == 0) {
		response_error(res, 404, "not found");
		return;
	}
	if (current_require(req, res, &cur, 0) < 0)
		return;
	/* Another user's session is as absent as one that never was. */
	switch (current_end_sessions(req, &cur, id, AUDIT_SESSION_REVOKED)) {
	case SESSIONS_OK: break;
	case SESSIONS_NOT_FOUND: response_error(res, 404, "no such session"); return;
	case SESSIONS_DB_ERROR: response_database_unavailable(res); return;
	}
	log_event(LOG_INFO, "session_revoked", LOG_INT("user_id", cur.session.user_id),
		  LOG_INT("session_id", id));
	if (id == cur.session.id)
		current_clear_cookies(req, res);
	response_json_string(res, 200, "status", "session ended");
}

void
me_activity(const struct request *req, struct response *res)
{
	static struct audit_list list;
	struct current cur;
	cJSON *json, *items;

	if (current_require(req, res, &cur, 0) < 0)
		return;
	if (audit_list(req->db, cur.session.user_id, &list) != DB_OK) {
		response_database_unavailable(res);
		return;
	}
	json = cJSON_CreateObject();
	items = json ? cJSON_AddArrayToObject(json, "events") : NULL;
	for (int i = 0; items && i < list.count; i++) {
		const struct audit_entry *e = &list.items[i];
		cJSON *item = append_object(items);

		if (item == NULL) {
			items = NULL;
			break;
		}
		add_time(item, "at", e->at);
		cJSON_AddStringToObject(item, "event", audit_event_name(e->event));
		if (e->session_id)
			cJSON_AddNumberToObject(item, "session_id",
						(double)e->session_id);
		else
			cJSON_AddNullToObject(item, "session_id");
		cJSON_AddStringToObject(item, "device", e->client.device);
		add_text_or_null(item, "network", e->client.network);
		cJSON_AddStringToObject(item, "instance", e->instance);
	}
	answer(res, json, items != NULL);
}
