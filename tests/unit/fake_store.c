/*
 * The users store for the handler tests: users.h, sessions.h, states.h,
 * audit.h and db.h's transactions over tables in memory. A transaction
 * copies the tables at db_begin and puts the copy back at db_rollback, so
 * that a request which fails half-way leaves what PostgreSQL would: nothing.
 * The rules are the SQL's (users.c, sessions.c), as far as the handlers can
 * tell them apart; the row matching of a login is identity.c's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/identity.h"
#include "../../src/sessions.h"
#include "../../src/states.h"
#include "../../src/users.h"
#include "../../src/scopes.h"
#include "fakes.h"

struct fake_store fake_store;

void
fake_store_reset(void)
{
	memset(&fake_store, 0, sizeof(fake_store));
	fake_store.data.next_id = 1;
}

/* Notes the call; 1 when the test said it fails (db->sqlstate then set). */
static int
fails(struct db *db, const char *call)
{
	size_t n = strlen(call), used = strlen(fake_store.calls);
	const char *p = fake_store.failing;

	snprintf(fake_store.calls + used, sizeof(fake_store.calls) - used, "%s%s",
		 used ? " " : "", call);
	if (db)
		db->sqlstate[0] = '\0';
	for (; p && (p = strstr(p, call)) != NULL; p += n)
		if ((p == fake_store.failing || p[-1] == ' ') && (p[n] == ' ' || !p[n])) {
			if (db)
				snprintf(db->sqlstate, sizeof(db->sqlstate), "%s",
					 fake_store.sqlstate ? fake_store.sqlstate : "");
			return 1;
		}
	return 0;
}

int
fake_store_called(const char *call)
{
	size_t n = strlen(call);
	int count = 0;

	for (const char *p = fake_store.calls; (p = strstr(p, call)) != NULL; p += n)
		if ((p == fake_store.calls || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			count++;
	return count;
}

/* A table of the fake is full: a test asked for more than it was sized for. */
static int
next_row(int *count, int max)
{
	if (*count == max)
		abort();
	return (*count)++;
}

/* -- db.h: transactions --------------------------------------------------- */

enum db_status
db_begin(struct db *db)
{
	if (fails(db, "db_begin"))
		return DB_UNAVAILABLE;
	memcpy(&fake_store.before, &fake_store.data, sizeof(fake_store.data));
	fake_store.in_transaction = 1;
	fake_store.begins++;
	return DB_OK;
}

enum db_status
db_commit(struct db *db)
{
	if (fails(db, "db_commit"))
		return DB_QUERY_FAILED;
	fake_store.in_transaction = 0;
	fake_store.commits++;
	return DB_OK;
}

/* As db.c's: ROLLBACK leaves the failed statement's sqlstate for the caller. */
void
db_rollback(struct db *db)
{
	char sqlstate[sizeof(db->sqlstate)];

	memcpy(sqlstate, db->sqlstate, sizeof(sqlstate));
	fails(db, "db_rollback");
	memcpy(db->sqlstate, sqlstate, sizeof(sqlstate));
	if (fake_store.in_transaction)
		memcpy(&fake_store.data, &fake_store.before, sizeof(fake_store.data));
	fake_store.in_transaction = 0;
	fake_store.rollbacks++;
}

/* -- the tables ----------------------------------------------------------- */

struct fake_user *
fake_store_user(long long id)
{
	for (int i = 0; i < fake_store.data.nusers; i++)
		if (fake_store.data.users[i].id == id)
			return &fake_store.data.users[i];
	return NULL;
}

long long
fake_store_add_user(const char *spotify_id, const char *account_id,
		    const char *access_token, const char *refresh_token,
		    time_t expires_at)
{
	struct fake_data *d = &fake_store.data;
	struct fake_user *u = &d->users[next_row(&d->nusers, FAKE_USERS_MAX)];

	memset(u, 0, sizeof(*u));
	u->id = d->next_id++;
	snprintf(u->spotify_id, sizeof(u->spotify_id), "%s", spotify_id);
	snprintf(u->account_id, sizeof(u->account_id), "%s", account_id);
	snprintf(u->access_token, sizeof(u->access_token), "%s", access_token);
	snprintf(u->refresh_token, sizeof(u->refresh_token), "%s", refresh_token);
	u->expires_at = expires_at ? expires_at : time(NULL) + 3600;
	u->authorized_at = time(NULL) - 86400;
	return u->id;
}

static struct fake_session *
session_by_hash(const unsigned char hash[32])
{
	time_t now = time(NULL);

	for (int i = 0; i < fake_store.data.nsessions; i++) {
		struct fake_session *s = &fake_store.data.sessions[i];
		if (memcmp(s->hash, hash, 32) == 0 && s->expires_at > now)
			return s;
	}
	return NULL;
}

static struct fake_session *
add_session(long long user_id, const unsigned char hash[32], const struct client *client,
	    int ttl, int max_age)
{
	struct fake_data *d = &fake_store.data;
	struct fake_session *s = &d->sessions[next_row(&d->nsessions, FAKE_SESSIONS_MAX)];
	time_t now = time(NULL) - fake_store.clock_behind;

	memset(s, 0, sizeof(*s));
	s->id = d->next_id++;
	s->user_id = user_id;
	memcpy(s->hash, hash, 32);
	s->created_at = s->last_seen_at = now;
	s->expires_at = now + ttl;
	s->max_expires_at = now + max_age;
	if (client)
		s->client = *client;
	return s;
}

long long
fake_store_add_session(long long user_id, char *cookie, size_t size)
{
	struct session_cookie c;
	unsigned char hash[32];

	if (session_new_id(&c, time(NULL) + 86400) < 0 || session_id_hash(&c, hash) < 0 ||
	    session_sign(&c, cookie, size) < 0)
		return -1;
	return add_session(user_id, hash, NULL, 86400, 7 * 86400)->id;
}

int
fake_store_live_sessions(long long user_id)
{
	int n = 0;

	for (int i = 0; i < fake_store.data.nsessions; i++)
		n += fake_store.data.sessions[i].user_id == user_id;
	return n;
}

/* Deletes the sessions of user for which which is 0 or their id. */
static int
remove_sessions(long long user_id, long long which)
{
	struct fake_data *d = &fake_store.data;
	int kept = 0, removed = 0;

	for (int i = 0; i < d->nsessions; i++) {
		struct fake_session *s = &d->sessions[i];
		if (s->user_id == user_id && (which == 0 || s->id == which))
			removed++;
		else
			d->sessions[kept++] = *s;
	}
	d->nsessions = kept;
	return removed;
}

static void
row_of(const struct fake_session *s, struct session_row *out)
{
	*out = (struct session_row){s->id,	     s->user_id,    s->created_at,
				    s->last_seen_at, s->expires_at, s->max_expires_at};
}

/* -- states.h ------------------------------------------------------------- */

enum states_status
states_redeem(struct db *db, const char *state, time_t expires, time_t now)
{
	struct fake_data *d = &fake_store.data;

	if (fails(db, "states_redeem"))
		return STATES_DB_ERROR;
	for (int i = 0; i < d->nstates; i++)
		if (strcmp(d->states[i], state) == 0)
			return STATES_USED;
	snprintf(d->states[next_row(&d->nstates, FAKE_STATES_MAX)], sizeof(d->states[0]),
		 "%s", state);
	return STATES_FIRST;
}

/* -- audit.h -------------------------------------------------------------- */

static const char *const event_names[] = {
	"login",   "logout",	     "logout_everywhere", "session_revoked",
	"refresh", "refresh_failed", "reauth_required",	  "rate_limited",
	"deleted", "key_rotated",
};

enum db_status
audit_record(struct db *db, enum audit_event event, long long user_id,
	     long long session_id, const struct client *client)
{
	struct fake_data *d = &fake_store.data;

	if (fails(db, "audit_record"))
		return DB_QUERY_FAILED;
	d->events[next_row(&d->nevents, FAKE_EVENTS_MAX)] =
		(struct fake_event){event, user_id, session_id};
	return DB_OK;
}

const char *
fake_store_events(void)
{
	static char names[512];
	size_t len = 0;

	names[0] = '\0';
	for (int i = 0; i < fake_store.data.nevents; i++)
		len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
					i ? " " : "",
					event_names[fake_store.data.events[i].event]);
	return names;
}

/* -- users.h -------------------------------------------------------------- */

static void
take_tokens(struct fake_user *u, const struct spotify_tokens *tokens, int login)
{
	snprintf(u->access_token, sizeof(u->access_token), "%s", tokens->access_token);
	/* No new refresh token: the stored one is kept (coalesce in users.c). */
	if (login || tokens->refresh_token[0])
		snprintf(u->refresh_token, sizeof(u->refresh_token), "%s",
			 tokens->refresh_token);
	u->expires_at = time(NULL) + tokens->expires_in;
	u->needs_reauth_at = 0;
	/* As users.c: a login stores the granted scope, a refresh the one its
	 * answer carried (none: the stored one stays). */
	if (login || tokens->has_scope)
		snprintf(u->scope, sizeof(u->scope), "%s", tokens->scope);
}

/* The rows a login could be, as users.c's find_identity reads them. */
static struct identity_rows
identity_rows_of(const struct spotify_user *who)
{
	struct identity_rows rows = {.profile_has_account = who->account_id[0] != '\0'};

	for (int i = 0; i < fake_store.data.nusers; i++) {
		const struct fake_user *u = &fake_store.data.users[i];
		int same =
			who->account_id[0] && strcmp(u->account_id, who->account_id) == 0;
		if (same)
			rows.by_account = u->id;
		if (strcmp(u->spotify_id, who->id) == 0) {
			rows.by_spotify_id = u->id;
			rows.spotify_row_account = same ? IDENTITY_ACCOUNT_SAME
						   : u->account_id[0]
							   ? IDENTITY_ACCOUNT_OTHER
							   : IDENTITY_ACCOUNT_NONE;
		}
	}
	return rows;
}

enum users_status
users_store_login(struct db *db, const struct spotify_user *who,
		  const struct spotify_tokens *tokens, const char *asked, long long *id,
		  enum identity_match *match)
{
	struct identity_rows rows = identity_rows_of(who);
	struct identity_plan plan = identity_plan(&rows);
	struct fake_user *u;

	if (fails(db, "users_store_login"))
		return USERS_DB_ERROR;
	if (plan.detach)
		snprintf(fake_store_user(plan.detach)->spotify_id, SPOTIFY_ID_MAX + 1,
			 "detached:%lld", plan.detach);
	if (plan.user) {
		u = fake_store_user(plan.user);
		snprintf(u->spotify_id, sizeof(u->spotify_id), "%s", who->id);
	} else {
		*id = fake_store_add_user(who->id, "", "", "", 0);
		u = fake_store_user(*id);
	}
	if (who->account_id[0])
		snprintf(u->account_id, sizeof(u->account_id), "%s", who->account_id);
	snprintf(u->display_name, sizeof(u->display_name), "%s", who->display_name);
	take_tokens(u, tokens, 1);
	u->has_scope_requested = asked != NULL;
	snprintf(u->scope_requested, sizeof(u->scope_requested), "%s",
		 asked ? asked : "");
	u->authorized_at = time(NULL);
	*id = u->id;
	*match = plan.match;
	return USERS_OK;
}

static enum users_status
read_token(struct db *db, const char *call, long long id, struct user_token *out,
	   int with_refresh)
{
	const struct fake_user *u;

	if (fails(db, call))
		return USERS_DB_ERROR;
	if ((u = fake_store_user(id)) == NULL)
		return USERS_NOT_FOUND;
	memset(out, 0, sizeof(*out));
	strcpy(out->access_token, u->access_token);
	if (with_refresh)
		strcpy(out->refresh_token, u->refresh_token);
	out->expires_at = u->expires_at;
	out->authorized_at = u->authorized_at;
	out->needs_reauth_at = u->needs_reauth_at;
	strcpy(out->scope, u->scope);
	strcpy(out->scope_requested, u->scope_requested);
	out->has_scope_requested = u->has_scope_requested;
	return USERS_OK;
}

enum users_status
users_token(struct db *db, long long id, struct user_token *out)
{
	return read_token(db, "users_token", id, out, 0);
}

enum users_status
users_lock_token(struct db *db, long long id, struct user_token *out)
{
	if (fake_store.meanwhile)
		fake_store.meanwhile();
	return read_token(db, "users_lock_token", id, out, 1);
}

enum users_status
users_find(struct db *db, enum users_lookup by, const char *value, long long *id)
{
	if (fails(db, "users_find"))
		return USERS_DB_ERROR;
	for (int i = 0; i < fake_store.data.nusers; i++) {
		const struct fake_user *u = &fake_store.data.users[i];
		if (by == USERS_BY_SPOTIFY_ID
			    ? strcmp(u->spotify_id, value) == 0 &&
				      strncmp(value, "detached:", 9) != 0
			    : strcmp(u->account_id, value) == 0) {
			*id = u->id;
			return USERS_OK;
		}
	}
	return USERS_NOT_FOUND;
}

/* What users.c reads of a row: a fake user's scope is always stored. */
static void
profile_of(const struct db *db, const struct fake_user *u, struct user_profile *profile)
{
	memset(profile, 0, sizeof(*profile));
	profile->id = u->id;
	strcpy(profile->spotify_id, u->spotify_id);
	strcpy(profile->account_id, u->account_id);
	strcpy(profile->display_name, u->display_name);
	profile->authorized_at = u->authorized_at;
	profile->needs_reauth = u->needs_reauth_at != 0;
	profile->has_scope = 1;
	strcpy(profile->scope, u->scope);
	profile->scope_short = scopes_worth_asking(
		u->scope, u->has_scope_requested ? u->scope_requested : NULL,
		db->cfg ? db->cfg->spotify_scopes : NULL);
}

enum users_status
users_grant(struct db *db, long long id, struct user_profile *out)
{
	const struct fake_user *u;

	if (fails(db, "users_grant"))
		return USERS_DB_ERROR;
	if ((u = fake_store_user(id)) == NULL)
		return USERS_NOT_FOUND;
	profile_of(db, u, out);
	return USERS_OK;
}

/* The row of an UPDATE ... WHERE id = $1; NULL with the status to answer. */
static struct fake_user *
updating(struct db *db, const char *call, long long id, enum users_status *status)
{
	struct fake_user *u = NULL;

	*status = USERS_DB_ERROR;
	if (!fails(db, call) && (u = fake_store_user(id)) == NULL)
		*status = USERS_NOT_FOUND;
	if (u)
		*status = USERS_OK;
	return u;
}

enum users_status
users_store_refresh(struct db *db, long long id, const struct spotify_tokens *tokens,
		    time_t *expires_at)
{
	enum users_status status;
	struct fake_user *u = updating(db, "users_store_refresh", id, &status);

	if (u) {
		take_tokens(u, tokens, 0);
		*expires_at = u->expires_at;
	}
	return status;
}

enum users_status
users_mark_reauth(struct db *db, long long id)
{
	enum users_status status;
	struct fake_user *u = updating(db, "users_mark_reauth", id, &status);

	if (u && u->needs_reauth_at == 0)
		u->needs_reauth_at = time(NULL);
	return status;
}

enum users_status
users_clear_tokens(struct db *db, long long id)
{
	enum users_status status;
	struct fake_user *u = updating(db, "users_clear_tokens", id, &status);

	if (u) {
		u->access_token[0] = u->refresh_token[0] = '\0';
		u->expires_at = 0;
		if (u->needs_reauth_at == 0)
			u->needs_reauth_at = time(NULL);
	}
	return status;
}

enum users_status
users_end_legacy_cookies(struct db *db, long long id)
{
	enum users_status status;
	struct fake_user *u = updating(db, "users_end_legacy_cookies", id, &status);

	if (u)
		u->generation++;
	return status;
}

/* ON DELETE CASCADE: the user's sessions and events go with the row. */
enum users_status
users_delete(struct db *db, long long id)
{
	struct fake_data *d = &fake_store.data;
	enum users_status status;
	int kept = 0;

	if (fake_store.meanwhile)
		fake_store.meanwhile();
	if (updating(db, "users_delete", id, &status) == NULL)
		return status;
	remove_sessions(id, 0);
	for (int i = 0; i < d->nevents; i++)
		if (d->events[i].user_id != id)
			d->events[kept++] = d->events[i];
	d->nevents = kept;
	kept = 0;
	for (int i = 0; i < d->nusers; i++)
		if (d->users[i].id != id)
			d->users[kept++] = d->users[i];
	d->nusers = kept;
	return USERS_OK;
}

/* -- sessions.h ----------------------------------------------------------- */

enum sessions_status
sessions_create(struct db *db, long long user_id, const unsigned char hash[32],
		const struct client *client, struct session_row *out)
{
	if (fails(db, "sessions_create"))
		return SESSIONS_DB_ERROR;
	row_of(add_session(user_id, hash, client, db->cfg->session_ttl,
			   db->cfg->session_max_age),
	       out);
	return SESSIONS_OK;
}

enum sessions_status
sessions_check(struct db *db, const unsigned char hash[32], struct session_row *out,
	       struct user_profile *profile)
{
	const struct fake_session *s;
	const struct fake_user *u;

	if (fails(db, "sessions_check"))
		return SESSIONS_DB_ERROR;
	if ((s = session_by_hash(hash)) == NULL ||
	    (u = fake_store_user(s->user_id)) == NULL)
		return SESSIONS_NOT_FOUND;
	row_of(s, out);
	if (profile) {
		profile_of(db, u, profile);
	}
	return SESSIONS_OK;
}

int
sessions_touch_due(const struct db *db, const struct session_row *row, time_t now)
{
	return now - row->last_seen_at > 60;
}

enum sessions_status
sessions_touch(struct db *db, const unsigned char hash[32], struct session_row *row,
	       int renew)
{
	struct fake_session *s;
	time_t now = time(NULL);

	if (fails(db, "sessions_touch"))
		return SESSIONS_DB_ERROR;
	if ((s = session_by_hash(hash)) == NULL)
		return renew ? SESSIONS_NOT_FOUND : SESSIONS_OK;
	s->last_seen_at = now;
	if (renew)
		s->expires_at = now + db->cfg->session_ttl < s->max_expires_at
					? now + db->cfg->session_ttl
					: s->max_expires_at;
	row_of(s, row);
	return SESSIONS_OK;
}

enum sessions_status
sessions_end(struct db *db, long long user_id, long long id)
{
	if (fails(db, "sessions_end"))
		return SESSIONS_DB_ERROR;
	return remove_sessions(user_id, id) ? SESSIONS_OK : SESSIONS_NOT_FOUND;
}

enum sessions_status
sessions_end_all(struct db *db, long long user_id)
{
	if (fails(db, "sessions_end_all"))
		return SESSIONS_DB_ERROR;
	remove_sessions(user_id, 0);
	return SESSIONS_OK;
}

/* Cookies of the first format are not these tests' subject: none adopts. */
enum sessions_status
sessions_adopt_legacy(struct db *db, const struct legacy_session *legacy,
		      const unsigned char hash[32], const struct client *client,
		      struct session_row *out)
{
	fails(db, "sessions_adopt_legacy");
	return SESSIONS_NOT_FOUND;
}
