/*
 * baa's GET /me on a cache miss, written as a Kore 4.1 application, so
 * that tests/load/bench measures baa against Kore's asynchronous pgsql on
 * the same PostgreSQL and data. Benchmark tool only.
 *
 * What it does per request is what baa does when its caches miss: read
 * the __Host-baa_session cookie (v2.<kid>.<b64url id>.<expiry>.<mac>),
 * check its MAC with baa's key (HKDF of BAA_SECRET_KEY's first key, as
 * src/session.c), its key id and expiry, hash the 32-byte id with SHA-256,
 * run src/sessions.c's check statement with src/users.h's profile columns,
 * and answer the profile as baa's me_profile_members does. No row or a bad
 * cookie: 401. A database error: 503. Not done, because baa does not on
 * this path either: a touch of the session (the bench's cookie is young),
 * the scopes comparison (the bench configures no SPOTIFY_SCOPES).
 *
 * The request is Kore's state machine (http_state_run): INIT takes a
 * connection (or sleeps in Kore's queue until one is free), QUERY sends,
 * WAIT and READ follow Kore's pgsql states, DONE or ERROR answer.
 *
 * Environment: KORE_ME_DB (a libpq connection string), KORE_ME_SECRET
 * (BAA_SECRET_KEY), and optionally KORE_ME_STATEMENTS (prepared, the
 * default, or unnamed: see state_query), KORE_ME_GRANT_LIFETIME and
 * KORE_ME_REAUTH_WINDOW (seconds, baa's defaults otherwise).
 */
#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/seccomp.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../../../src/clock.h"

#define SESSION_COOKIE "__Host-baa_session"
#define SESSION_PURPOSE "baa_session"
#define COOKIE_MAX 1024 /* src/session.h SESSION_COOKIE_MAX */
#define ID_LEN 32
#define ID_B64_LEN 43 /* 32 bytes, b64url without padding */
#define MAC_B64_LEN 43
#define KID_B64_LEN 8 /* 6 bytes */
#define BODY_MAX 4096

/* src/sessions.c's check statement, with src/users.h's profile columns:
 * six session columns, then the profile from column 6 on. */
#define EPOCH(column) "floor(extract(epoch FROM " column "))::bigint"
/* clang-format off */
#define CHECK_SQL                                                                        \
	"SELECT s.id, s.user_id, " EPOCH("s.created_at") ", "                           \
	EPOCH("s.last_seen_at") ", " EPOCH("s.expires_at") ", "                          \
	EPOCH("s.max_expires_at") ","                                                   \
	" u.id, u.spotify_id, coalesce(u.display_name, ''),"                             \
	" " EPOCH("u.token_expires_at") ","                                             \
	" coalesce(u.account_id, ''),"                                                   \
	" coalesce(floor(extract(epoch FROM u.authorized_at))::bigint, 0),"              \
	" u.needs_reauth_at IS NOT NULL, u.scope IS NOT NULL, coalesce(u.scope, '')"     \
	" FROM sessions s JOIN users u ON u.id = s.user_id"                               \
	" WHERE s.token_hash = $1 AND s.expires_at > now()"
/* clang-format on */
#define CHECK_NAME "me_check"
#define PROFILE_COL 6
#define CHECK_NCOLS 15

enum { ST_INIT, ST_QUERY, ST_WAIT, ST_READ, ST_ERROR, ST_DONE };

int me_init(int);
int me(struct http_request *);

static int state_init(struct http_request *);
static int state_query(struct http_request *);
static int state_wait(struct http_request *);
static int state_read(struct http_request *);
static int state_error(struct http_request *);
static int state_done(struct http_request *);

static struct http_state states[] = {
	KORE_HTTP_STATE(state_init),  KORE_HTTP_STATE(state_query),
	KORE_HTTP_STATE(state_wait),  KORE_HTTP_STATE(state_read),
	KORE_HTTP_STATE(state_error), KORE_HTTP_STATE(state_done),
};

/* One request's: Kore frees it with the request (http_request_free cleans
 * the bound pgsql first, so a client gone mid-query leaks nothing). */
struct me_state {
	struct kore_pgsql sql;
	char hash_text[2 + 2 * SHA256_DIGEST_LENGTH + 1]; /* bytea hex: \x... */
	char body[BODY_MAX];
	size_t body_len;
	int overflow;
	int found;
};

/*
 * Kore 4.1's worker sandbox (seccomp) predates Debian 12's glibc, whose
 * stat() and readdir() are newfstatat and getdents64 (Debian's patch added
 * newfstatat to the key manager's filter only): without them a worker is
 * killed as it sets up its database connections. A run with
 * seccomp_tracing saw 28 such calls in all over thousands of requests:
 * set-up, not the request path.
 */
KORE_SECCOMP_FILTER("me", KORE_SYSCALL_ALLOW(newfstatat), KORE_SYSCALL_ALLOW(getdents64));

static unsigned char session_key[32];
static char kid[KID_B64_LEN + 1];
static int use_prepared = 1; /* KORE_ME_STATEMENTS: prepared or unnamed */
static struct {
	PGconn *db;
	int pid;
} prepared[1024];
static size_t nprepared;
static long grant_lifetime = 15552000; /* BAA_GRANT_LIFETIME */
static long reauth_window = 1209600;   /* BAA_REAUTH_WINDOW */

static const char b64url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
b64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;
	unsigned long v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = b64url_chars[(v >> 18) & 63];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
		out[o++] = b64url_chars[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned long)in[i] << 16;
		out[o++] = b64url_chars[(v >> 18) & 63];
		out[o++] = b64url_chars[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8;
		out[o++] = b64url_chars[(v >> 18) & 63];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
	}
	out[o] = '\0';
}

static int
b64url_value(char c)
{
	const char *p = strchr(b64url_chars, c);

	return c != '\0' && p != NULL ? (int)(p - b64url_chars) : -1;
}

/* Exactly ID_B64_LEN characters into ID_LEN bytes; -1 on anything else
 * (the two bits the last character carries past the id must be zero). */
static int
decode_id(const char *in, size_t len, unsigned char out[ID_LEN])
{
	unsigned long v = 0;
	size_t i, o = 0;
	int bits = 0;

	if (len != ID_B64_LEN)
		return -1;
	for (i = 0; i < len; i++) {
		int d = b64url_value(in[i]);

		if (d < 0)
			return -1;
		v = (v << 6 | (unsigned long)d) & 0xffffff;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
		}
	}
	return (v & ((1UL << bits) - 1)) == 0 ? 0 : -1;
}

/* RFC 5869 HKDF-SHA256 with no salt, one block: baa's key derivation. */
static int
hkdf_one_block(const unsigned char *ikm, size_t ikm_len, const char *info,
	       unsigned char out[32])
{
	unsigned char salt[32] = {0}, prk[32], msg[64];
	unsigned int len = 0;
	size_t info_len = strlen(info);

	if (info_len + 1 > sizeof(msg) ||
	    HMAC(EVP_sha256(), salt, sizeof(salt), ikm, ikm_len, prk, &len) == NULL)
		return -1;
	memcpy(msg, info, info_len);
	msg[info_len] = 1;
	if (HMAC(EVP_sha256(), prk, sizeof(prk), msg, info_len + 1, out, &len) == NULL)
		return -1;
	OPENSSL_cleanse(prk, sizeof(prk));
	return 0;
}

/* The session key and its id from BAA_SECRET_KEY's first key, as baa. */
static int
derive_keys(const char *secret)
{
	unsigned char id[32];
	unsigned int len = 0;
	size_t secret_len = strcspn(secret, " \t\n");

	if (secret_len == 0 ||
	    hkdf_one_block((const unsigned char *)secret, secret_len,
			   "baa session cookie v1", session_key) < 0 ||
	    HMAC(EVP_sha256(), session_key, sizeof(session_key),
		 (const unsigned char *)"baa cookie key id", 17, id, &len) == NULL)
		return -1;
	b64url_encode(id, 6, kid);
	return 0;
}

static long
env_seconds(const char *name, long fallback)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : fallback;
}

/*
 * Kore 4.1's pgsql has no prepared statements: kore_pgsql_query_params
 * sends the statement unnamed, parsed and planned by PostgreSQL for every
 * request, where baa prepares it once per connection. With prepared (the
 * default, as baa), the statement is prepared on each connection as the
 * worker opens it (open_connections; a connection Kore opens later, the
 * first time it is used: PQprepare, blocking, once), and sent with
 * PQsendQueryPrepared;
 * the connection is then handed to Kore exactly as kore_pgsql_query_params
 * hands it over after its PQsendQueryParams (src/pgsql.c pgsql_schedule):
 * read event, WAIT, the request asleep. Waiting, results and release are
 * Kore's.
 */
static int
conn_prepared(PGconn *db)
{
	int pid = PQbackendPID(db);
	size_t i;

	for (i = 0; i < nprepared; i++)
		if (prepared[i].db == db && prepared[i].pid == pid)
			return 1;
	return 0;
}

static int
prepare_once(PGconn *db)
{
	const char *state;
	PGresult *res;
	int ok;

	if (conn_prepared(db))
		return 0;
	res = PQprepare(db, CHECK_NAME, CHECK_SQL, 1, NULL);
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	/* 42P05: prepared already, on a connection the full table forgot. */
	ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	     (state != NULL && strcmp(state, "42P05") == 0);
	if (!ok)
		kore_log(LOG_NOTICE, "me: prepare: %s", PQresultErrorMessage(res));
	PQclear(res);
	if (!ok)
		return -1;
	/* A connection gone leaves its slot: the next one at the same address
	 * has another backend pid. The table only fills if connections churn. */
	if (nprepared < sizeof(prepared) / sizeof(prepared[0])) {
		prepared[nprepared].db = db;
		prepared[nprepared++].pid = PQbackendPID(db);
	}
	return 0;
}

/*
 * Every connection the worker may use (kore.conf's pgsql_conn_max), opened
 * and prepared now: Kore opens one with a blocking PQconnectdb (a SCRAM
 * exchange) the first time a request finds none free, which would stall
 * every request of the worker in the middle of a measurement.
 */
static int
open_connections(void)
{
	struct kore_pgsql *sql;
	int i, n = 0, status = 0;

	sql = kore_calloc(pgsql_conn_max, sizeof(*sql));
	for (; n < pgsql_conn_max; n++) {
		kore_pgsql_init(&sql[n]);
		if (!kore_pgsql_setup(&sql[n], "db", KORE_PGSQL_SYNC) ||
		    (use_prepared && prepare_once(sql[n].conn->db) < 0)) {
			kore_pgsql_logerror(&sql[n]);
			status = -1;
			n++;
			break;
		}
	}
	for (i = 0; i < n; i++)
		kore_pgsql_cleanup(&sql[i]);
	kore_free(sql);
	return status;
}

/* The module's load callback (kore.conf's `load`), run by each worker as
 * it starts. */
int
me_init(int state)
{
	const char *db = getenv("KORE_ME_DB"), *secret = getenv("KORE_ME_SECRET");
	const char *statements = getenv("KORE_ME_STATEMENTS");

	if (state != KORE_MODULE_LOAD)
		return KORE_RESULT_OK;
	if (db == NULL || secret == NULL || derive_keys(secret) < 0) {
		kore_log(LOG_ERR, "me: KORE_ME_DB and KORE_ME_SECRET are required");
		return KORE_RESULT_ERROR;
	}
	if (statements != NULL && strcmp(statements, "unnamed") == 0)
		use_prepared = 0;
	else if (statements != NULL && strcmp(statements, "prepared") != 0) {
		kore_log(LOG_ERR, "me: KORE_ME_STATEMENTS is prepared or unnamed");
		return KORE_RESULT_ERROR;
	}
	grant_lifetime = env_seconds("KORE_ME_GRANT_LIFETIME", grant_lifetime);
	reauth_window = env_seconds("KORE_ME_REAUTH_WINDOW", reauth_window);
	if (!kore_pgsql_register("db", db) || open_connections() < 0)
		return KORE_RESULT_ERROR;
	return KORE_RESULT_OK;
}

/*
 * The cookie's session id, if its MAC, key id and expiry hold (baa's
 * session_verify with one key): HMAC-SHA256(K, "baa_session|" + body),
 * compared in constant time.
 */
static int
verify_cookie(const char *value, time_t now, unsigned char id[ID_LEN])
{
	unsigned char mac[32], msg[sizeof(SESSION_PURPOSE) + COOKIE_MAX];
	char mac_text[MAC_B64_LEN + 1], *end;
	const char *f[5], *last, *dot;
	size_t n = strlen(value), body_len, i;
	unsigned int len = 0;
	long long expires;

	if (n > COOKIE_MAX || strncmp(value, "v2.", 3) != 0 ||
	    (last = strrchr(value, '.')) == NULL)
		return -1;
	body_len = (size_t)(last - value);
	memcpy(msg, SESSION_PURPOSE "|", sizeof(SESSION_PURPOSE));
	memcpy(msg + sizeof(SESSION_PURPOSE), value, body_len);
	if (HMAC(EVP_sha256(), session_key, sizeof(session_key), msg,
		 sizeof(SESSION_PURPOSE) + body_len, mac, &len) == NULL)
		return -1;
	b64url_encode(mac, sizeof(mac), mac_text);
	if (strlen(last + 1) != MAC_B64_LEN ||
	    CRYPTO_memcmp(mac_text, last + 1, MAC_B64_LEN) != 0)
		return -1;
	/* v2 . kid . id . expires . mac */
	f[0] = value;
	for (i = 1; i < 5; i++) {
		if ((dot = strchr(f[i - 1], '.')) == NULL)
			return -1;
		f[i] = dot + 1;
	}
	if (f[4] != last + 1 || (size_t)(f[2] - f[1] - 1) != KID_B64_LEN ||
	    memcmp(f[1], kid, KID_B64_LEN) != 0 ||
	    decode_id(f[2], (size_t)(f[3] - f[2] - 1), id) < 0)
		return -1;
	expires = strtoll(f[3], &end, 10);
	return end == last && f[3][0] != '-' && expires > now ? 0 : -1;
}

static void
body_add(struct me_state *st, const char *s, size_t n)
{
	if (st->overflow || n > sizeof(st->body) - st->body_len) {
		st->overflow = 1;
		return;
	}
	memcpy(st->body + st->body_len, s, n);
	st->body_len += n;
}

static void
body_add_str(struct me_state *st, const char *s)
{
	body_add(st, s, strlen(s));
}

/* A JSON string; bytes below 0x20, '"' and '\\' escaped (UTF-8 passes). */
static void
body_add_json_string(struct me_state *st, const char *s)
{
	char esc[8];

	body_add(st, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			body_add(st, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			body_add(st, esc, 6);
		} else {
			body_add(st, s, 1);
		}
	}
	body_add(st, "\"", 1);
}

static void
member(struct me_state *st, const char *name, const char *raw)
{
	body_add_str(st, st->body_len > 1 ? ",\"" : "\"");
	body_add_str(st, name);
	body_add_str(st, "\":");
	if (raw != NULL)
		body_add_str(st, raw);
}

/* empty_is_null as baa's response_member_string. */
static void
member_string(struct me_state *st, const char *name, const char *value, int empty_is_null)
{
	member(st, name, NULL);
	if (value == NULL || (empty_is_null && value[0] == '\0'))
		body_add_str(st, "null");
	else
		body_add_json_string(st, value);
}

/* The profile of row 0 as baa's me_profile_members writes it. */
static void
write_profile(struct me_state *st, struct kore_pgsql *sql)
{
	char authorized[32] = "", due[32] = "", expires[32] = "";
	time_t authorized_at, due_at = 0;
	int needs_reauth, has_scope;

	authorized_at =
		(time_t)strtoll(kore_pgsql_getvalue(sql, 0, PROFILE_COL + 5), NULL, 10);
	needs_reauth = strcmp(kore_pgsql_getvalue(sql, 0, PROFILE_COL + 6), "t") == 0;
	has_scope = strcmp(kore_pgsql_getvalue(sql, 0, PROFILE_COL + 7), "t") == 0;
	/* As baa: seconds from the query, formatted here (NULL: no token). */
	if (!PQgetisnull(sql->result, 0, PROFILE_COL + 3))
		clock_iso8601((time_t)strtoll(kore_pgsql_getvalue(sql, 0, PROFILE_COL + 3),
					      NULL, 10),
			      expires);
	if (authorized_at != 0) {
		due_at = authorized_at + grant_lifetime;
		clock_iso8601(authorized_at, authorized);
		clock_iso8601(due_at, due);
	}
	body_add_str(st, "{");
	member(st, "id", kore_pgsql_getvalue(sql, 0, PROFILE_COL));
	member_string(st, "spotify_id", kore_pgsql_getvalue(sql, 0, PROFILE_COL + 1), 0);
	member_string(st, "account_id", kore_pgsql_getvalue(sql, 0, PROFILE_COL + 4), 1);
	member_string(st, "display_name", kore_pgsql_getvalue(sql, 0, PROFILE_COL + 2),
		      1);
	member_string(st, "token_expires_at", expires, 1);
	member_string(st, "authorized_at", authorized, 1);
	member_string(st, "reauth_due_at", due, 1);
	member(st, "reauth_recommended",
	       needs_reauth || (due_at != 0 && time(NULL) >= due_at - reauth_window)
		       ? "true"
		       : "false");
	member(st, "needs_reauth", needs_reauth ? "true" : "false");
	member_string(st, "scope",
		      has_scope ? kore_pgsql_getvalue(sql, 0, PROFILE_COL + 8) : NULL, 0);
	body_add_str(st, "}\n");
}

static void
respond_json(struct http_request *req, int status, const char *body, size_t len)
{
	http_response_header(req, "content-type", "application/json");
	http_response_header(req, "cache-control", "no-store");
	http_response(req, status, body, len);
}

static void
respond_unauthorized(struct http_request *req)
{
	static const char body[] = "{\"error\":\"not_logged_in\"}\n";

	respond_json(req, 401, body, sizeof(body) - 1);
}

int
me(struct http_request *req)
{
	if (req->method != HTTP_METHOD_GET) {
		http_response(req, 405, NULL, 0);
		return KORE_RESULT_OK;
	}
	return http_state_run(states, sizeof(states) / sizeof(states[0]), req);
}

/* The request's state, keyed by its cookie's session; NULL without a
 * valid cookie. */
static struct me_state *
state_new(struct http_request *req)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char id[ID_LEN], hash[SHA256_DIGEST_LENGTH];
	struct me_state *st;
	char *cookie;

	http_populate_cookies(req);
	if (!http_request_cookie(req, SESSION_COOKIE, &cookie) ||
	    verify_cookie(cookie, time(NULL), id) < 0)
		return NULL;
	st = http_state_create(req, sizeof(*st), NULL);
	SHA256(id, sizeof(id), hash);
	memcpy(st->hash_text, "\\x", 2);
	for (size_t i = 0; i < sizeof(hash); i++) {
		st->hash_text[2 + 2 * i] = hex[hash[i] >> 4];
		st->hash_text[3 + 2 * i] = hex[hash[i] & 15];
	}
	kore_pgsql_init(&st->sql);
	kore_pgsql_bind_request(&st->sql, req);
	return st;
}

/* The cookie, once; then a connection, or a place in Kore's queue. */
static int
state_init(struct http_request *req)
{
	struct me_state *st = http_state_get(req);

	if (st == NULL && (st = state_new(req)) == NULL) {
		respond_unauthorized(req);
		return HTTP_STATE_COMPLETE;
	}
	if (!kore_pgsql_setup(&st->sql, "db", KORE_PGSQL_ASYNC)) {
		/* Still INIT: queued until a connection is free, which wakes us. */
		if (st->sql.state == KORE_PGSQL_STATE_INIT)
			return HTTP_STATE_RETRY;
		kore_pgsql_logerror(&st->sql);
		req->fsm_state = ST_ERROR;
		return HTTP_STATE_CONTINUE;
	}
	req->fsm_state = ST_QUERY;
	return HTTP_STATE_CONTINUE;
}

/* send_prepared: see prepare_once. */
static int
send_prepared(struct http_request *req, struct me_state *st)
{
	const char *values[1] = {st->hash_text};
	PGconn *db = st->sql.conn->db;

	if (prepare_once(db) < 0)
		return -1;
	if (!PQsendQueryPrepared(db, CHECK_NAME, 1, values, NULL, NULL, 0)) {
		kore_log(LOG_NOTICE, "me: send: %s", PQerrorMessage(db));
		return -1;
	}
	kore_platform_schedule_read(PQsocket(db), st->sql.conn);
	st->sql.state = KORE_PGSQL_STATE_WAIT;
	st->sql.flags |= KORE_PGSQL_SCHEDULED;
	http_request_sleep(req);
	return 0;
}

static int
state_query(struct http_request *req)
{
	struct me_state *st = http_state_get(req);

	req->fsm_state = ST_WAIT;
	if (use_prepared) {
		if (send_prepared(req, st) < 0) {
			req->fsm_state = ST_ERROR;
			return HTTP_STATE_CONTINUE;
		}
		return HTTP_STATE_RETRY;
	}
	if (!kore_pgsql_query_params(&st->sql, CHECK_SQL, KORE_PGSQL_FORMAT_TEXT, 1,
				     KORE_PGSQL_PARAM_TEXT(st->hash_text))) {
		kore_pgsql_logerror(&st->sql);
		req->fsm_state = ST_ERROR;
		return HTTP_STATE_CONTINUE;
	}
	return HTTP_STATE_RETRY;
}

static int
state_wait(struct http_request *req)
{
	struct me_state *st = http_state_get(req);

	switch (st->sql.state) {
	case KORE_PGSQL_STATE_WAIT: return HTTP_STATE_RETRY;
	case KORE_PGSQL_STATE_COMPLETE: req->fsm_state = ST_DONE; break;
	case KORE_PGSQL_STATE_RESULT: req->fsm_state = ST_READ; break;
	case KORE_PGSQL_STATE_ERROR:
		kore_pgsql_logerror(&st->sql);
		req->fsm_state = ST_ERROR;
		break;
	default:
		/* DONE (the last result read) or NOTIFY: Kore moves on. */
		kore_pgsql_continue(&st->sql);
		break;
	}
	return HTTP_STATE_CONTINUE;
}

/* kore_pgsql_continue clears the result: the body is written first. */
static int
state_read(struct http_request *req)
{
	struct me_state *st = http_state_get(req);

	if (kore_pgsql_nfields(&st->sql) != CHECK_NCOLS) {
		req->fsm_state = ST_ERROR;
		return HTTP_STATE_CONTINUE;
	}
	if (kore_pgsql_ntuples(&st->sql) == 1) {
		write_profile(st, &st->sql);
		st->found = 1;
	}
	kore_pgsql_continue(&st->sql);
	req->fsm_state = ST_WAIT;
	return HTTP_STATE_CONTINUE;
}

static int
state_error(struct http_request *req)
{
	static const char body[] = "{\"error\":\"database_unavailable\"}\n";
	struct me_state *st = http_state_get(req);

	/* Kore 4.1 puts a connection back in its pool whatever its state: one
	 * whose server went away would fail every request after this one. */
	if (st->sql.conn != NULL && PQstatus(st->sql.conn->db) == CONNECTION_BAD)
		PQreset(st->sql.conn->db);
	kore_pgsql_cleanup(&st->sql);
	http_state_cleanup(req);
	respond_json(req, 503, body, sizeof(body) - 1);
	return HTTP_STATE_COMPLETE;
}

static int
state_done(struct http_request *req)
{
	struct me_state *st = http_state_get(req);

	kore_pgsql_cleanup(&st->sql);
	if (st->overflow) {
		req->fsm_state = ST_ERROR;
		return HTTP_STATE_CONTINUE;
	}
	if (st->found)
		respond_json(req, 200, st->body, st->body_len);
	else
		respond_unauthorized(req);
	http_state_cleanup(req);
	return HTTP_STATE_COMPLETE;
}
