/*
 * Spotify over libcurl. Every answer is bounded (SPOTIFY_BODY_MAX), every
 * call bounded in time (BAA_SPOTIFY_TIMEOUT_MS), and every field of the
 * JSON checked for presence and type before it is used. Logs carry the
 * endpoint, HTTP status and outcome; never a code, token or secret.
 *
 * TLS: the peer's certificate and name are always verified, against
 * SPOTIFY_CA_FILE when set, else the system store; HTTP/2 when the server
 * offers it. The worker's one easy handle keeps its connections and TLS
 * sessions between calls (curl_easy_reset keeps both). HTTPS_PROXY and
 * NO_PROXY are libcurl's own: no proxy option is ever set here.
 */
#include "spotify.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "log.h"
#include "metrics.h"
#include "pause.h"
#include "spotify_client.h"

#define RETRY_AFTER_DEFAULT 1
#define RETRY_AFTER_MAX 3600

/*
 * The worker's client, in static storage as its state was before it had a
 * struct (64 KiB of answer buffer is not for the stack); current is the
 * one the calls use, the worker's unless a test said otherwise.
 */
static struct spotify_client worker_client;
static struct spotify_client *current = &worker_client;

int
spotify_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int
spotify_client_init(struct spotify_client *client, const struct config *cfg)
{
	client->cfg = cfg;
	client->body_len = 0;
	client->body[0] = '\0';
	client->error_text[0] = '\0';
	client->curl = curl_easy_init();
	return client->curl ? 0 : -1;
}

void
spotify_client_cleanup(struct spotify_client *client)
{
	if (client->curl)
		curl_easy_cleanup(client->curl);
	client->curl = NULL;
}

struct spotify_client *
spotify_use(struct spotify_client *client)
{
	struct spotify_client *before = current;

	current = client;
	return before;
}

int
spotify_init(const struct config *cfg)
{
	current = &worker_client;
	return spotify_client_init(&worker_client, cfg);
}

void
spotify_cleanup(void)
{
	spotify_client_cleanup(&worker_client);
}

static size_t
collect(char *data, size_t size, size_t n, void *arg)
{
	struct spotify_client *client = arg;
	size_t len = size * n;

	/* Returning less than len aborts the transfer: answers stay bounded. */
	if (client->body_len + len > SPOTIFY_BODY_MAX)
		return 0;
	memcpy(client->body + client->body_len, data, len);
	client->body_len += len;
	client->body[client->body_len] = '\0';
	return len;
}

/* Appends "&name=<escaped value>" (no '&' first) to out. */
static int
form_add(const struct spotify_client *client, char *out, size_t size, const char *name,
	 const char *value)
{
	char *escaped = curl_easy_escape(client->curl, value, 0);
	size_t len = strlen(out);
	int n;

	if (escaped == NULL)
		return -1;
	n = snprintf(out + len, size - len, "%s%s=%s", len ? "&" : "", name, escaped);
	curl_free(escaped);
	return n < 0 || (size_t)n >= size - len ? -1 : 0;
}

/*
 * Without scopes (the default) Spotify grants what /v1/me needs for id,
 * display_name and account_id, which is all baa reads; an empty scope
 * parameter is left out rather than sent.
 */
static int
has_scopes(const char *scopes)
{
	return scopes != NULL && scopes[strspn(scopes, " ")] != '\0';
}

int
spotify_authorize_url(const char *state, const char *code_challenge, const char *scopes,
		      int show_dialog, char *out, size_t size)
{
	const struct spotify_client *client = current;
	const struct config *cfg = client->cfg;
	char query[4096] = "";
	int n;

	if (form_add(client, query, sizeof(query), "client_id", cfg->spotify_client_id) <
		    0 ||
	    form_add(client, query, sizeof(query), "response_type", "code") < 0 ||
	    form_add(client, query, sizeof(query), "redirect_uri",
		     cfg->spotify_redirect_uri) < 0 ||
	    (has_scopes(scopes) &&
	     form_add(client, query, sizeof(query), "scope", scopes) < 0) ||
	    form_add(client, query, sizeof(query), "state", state) < 0 ||
	    form_add(client, query, sizeof(query), "code_challenge", code_challenge) <
		    0 ||
	    form_add(client, query, sizeof(query), "code_challenge_method", "S256") < 0 ||
	    (show_dialog &&
	     form_add(client, query, sizeof(query), "show_dialog", "true") < 0))
		return -1;
	n = snprintf(out, size, "%s/authorize?%s", cfg->spotify_accounts_url, query);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static double
ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

long
spotify_parse_retry_after(const char *value)
{
	size_t len = value ? strlen(value) : 0;
	long seconds = 0;

	/* delta-seconds, of any length (RFC 9110); a date or garbage: the default. */
	if (len == 0 || strspn(value, "0123456789") != len)
		return RETRY_AFTER_DEFAULT;
	for (const char *c = value; *c && seconds <= RETRY_AFTER_MAX; c++)
		seconds = seconds * 10 + (*c - '0');
	if (seconds < 1)
		seconds = 1;
	return seconds > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : seconds;
}

static long
retry_after_seconds(struct spotify_client *client)
{
	struct curl_header *h;

	if (curl_easy_header(client->curl, "Retry-After", 0, CURLH_HEADER, -1, &h) !=
	    CURLHE_OK)
		return spotify_parse_retry_after(NULL);
	return spotify_parse_retry_after(h->value);
}

/*
 * Verification on, and said so even where it is libcurl's default, so that
 * no default of another libcurl can turn it off. HTTP/2 is asked for where
 * this libcurl has it (ALPN picks it when the server offers it): a libcurl
 * without it refuses the option, and HTTP/1.1 is then what it speaks.
 */
static int
set_tls(struct spotify_client *client)
{
	const char *ca_file = client->cfg->spotify_ca_file;
	CURL *curl = client->curl;
	CURLcode rc = CURLE_OK;

	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_SSLVERSION,
				      (long)CURL_SSLVERSION_TLSv1_2);
	/* The file replaces the system store: exactly what the operator named. */
	if (rc == CURLE_OK && ca_file)
		rc = curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
	if (rc == CURLE_OK && ca_file)
		rc = curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, client->error_text);
	(void)curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	return rc == CURLE_OK ? 0 : -1;
}

/* What a failed call says about TLS, for its log line; NULL: not TLS. */
static const char *
tls_outcome(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION: return "certificate_unverified";
	case CURLE_SSL_CACERT_BADFILE: return "ca_file_unusable";
	case CURLE_SSL_CONNECT_ERROR: return "handshake_failed";
	default: return NULL;
	}
}

static const char *
http_version_label(struct spotify_client *client)
{
	long version = 0;

	curl_easy_getinfo(client->curl, CURLINFO_HTTP_VERSION, &version);
	switch (version) {
	case CURL_HTTP_VERSION_1_0: return "1.0";
	case CURL_HTTP_VERSION_1_1: return "1.1";
	case CURL_HTTP_VERSION_2_0: return "2";
	case CURL_HTTP_VERSION_3: return "3";
	default: return "-";
	}
}

static void
log_call(struct spotify_client *client, const char *endpoint, CURLcode rc, long status,
	 const struct timespec *start)
{
	const char *tls = tls_outcome(rc);
	long connects = 0;

	/* 0: the call went over a connection kept from an earlier one. */
	curl_easy_getinfo(client->curl, CURLINFO_NUM_CONNECTS, &connects);
	log_event(rc == CURLE_OK && status < 500 ? LOG_INFO : LOG_WARN, "spotify_call",
		  LOG_STR("endpoint", endpoint), LOG_INT("status", status),
		  LOG_STR("transport", rc == CURLE_OK ? "ok" : curl_easy_strerror(rc)),
		  LOG_STR("http", rc == CURLE_OK ? http_version_label(client) : "-"),
		  LOG_INT("connects", connects), LOG_MS("duration_ms", ms_since(start)));
	/* Never a silent downgrade: an unverified peer is a failed call, said so. */
	if (tls)
		log_event(LOG_ERROR, "spotify_tls_failed", LOG_STR("endpoint", endpoint),
			  LOG_STR("outcome", tls), LOG_STR("reason", client->error_text));
}

/*
 * One HTTP exchange. form != NULL: POST to the accounts service with the
 * client's Basic credentials; else GET from the Web API with bearer.
 * Returns the HTTP status, or 0 when no answer came (body is then empty).
 */
static long
perform(struct spotify_client *client, const char *endpoint, const char *url,
	const char *form, const char *bearer)
{
	const struct config *cfg = client->cfg;
	CURL *curl = client->curl;
	struct curl_slist *headers = NULL;
	struct timespec start;
	long status = 0;
	long total_ms = cfg->spotify_timeout_ms;
	CURLcode rc;

	client->body_len = 0;
	client->body[0] = '\0';
	client->error_text[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &start);
	curl_easy_reset(curl);
	if (set_tls(client) < 0) {
		log_event(LOG_ERROR, "spotify_call", LOG_STR("endpoint", endpoint),
			  LOG_STR("outcome", "tls_options_refused"));
		return 0;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
			 total_ms < 2000 ? total_ms : 2000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, client);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "baa/" PACKAGE_VERSION);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	if (form) {
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(curl, CURLOPT_USERNAME, cfg->spotify_client_id);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, cfg->spotify_client_secret);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form);
		headers = curl_slist_append(
			headers, "Content-Type: application/x-www-form-urlencoded");
	} else {
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, bearer);
	}
	headers = curl_slist_append(headers, "Accept: application/json");
	if (headers == NULL) {
		log_event(LOG_ERROR, "spotify_call", LOG_STR("endpoint", endpoint),
			  LOG_STR("outcome", "out_of_memory"));
		return 0;
	}
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else
		client->body_len = 0;
	curl_slist_free_all(headers);
	log_call(client, endpoint, rc, status, &start);
	return rc == CURLE_OK ? status : 0;
}

/*
 * Well-formed UTF-8 (RFC 3629: shortest form, no surrogates, at most
 * U+10FFFF), as a UTF8 PostgreSQL database stores text: anything else in
 * an answer is garbage from Spotify (502), not a database failure (503).
 */
static int
is_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned long cp, min;
		size_t n;
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			n = 1, cp = *p & 0x1f, min = 0x80;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 2, cp = *p & 0x0f, min = 0x800;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 3, cp = *p & 0x07, min = 0x10000;
		else
			return 0;
		/* A NUL fails the test too, so nothing is read past the end. */
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += n + 1;
	}
	return 1;
}

/* Whether text holds the escape \u0000, which cJSON decodes into a NUL. */
static int
has_escaped_nul(const char *text, size_t len)
{
	const char *end = text + len, *p = text;

	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0)
			return 1;
		p++;
	}
	return 0;
}

/*
 * cJSON's reading of an answer, or NULL when the body holds a NUL, as a raw
 * byte or as \u0000. cJSON keeps a raw one inside a string (and skips it
 * between tokens as blank) and decodes the escape into one; either would
 * silently cut the C string it ends up in ("abc<NUL>def" read as "abc",
 * "invalid_grant<NUL>x" as a dead grant). No answer of Spotify's holds one,
 * so every parser refuses the whole body before cJSON sees it.
 */
static cJSON *
parse_answer(const char *text, size_t len)
{
	if (memchr(text, '\0', len) != NULL || has_escaped_nul(text, len))
		return NULL;
	return cJSON_ParseWithLength(text, len);
}

/* How copy_string treats a member that is absent, null or "". */
enum presence {
	OPTIONAL, /* absent, null or "": out is "" */
	REQUIRED, /* a non-empty string */
	NONEMPTY, /* absent or null: out is ""; present: a non-empty string */
};

/*
 * Copies a JSON string member into out; -1 when it is missing or empty
 * against presence, not a string, too long, or not UTF-8.
 */
static int
copy_string(const cJSON *obj, const char *name, char *out, size_t size,
	    enum presence presence)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (item == NULL || cJSON_IsNull(item)) {
		out[0] = '\0';
		return presence == REQUIRED ? -1 : 0;
	}
	if (!cJSON_IsString(item) || item->valuestring == NULL ||
	    strlen(item->valuestring) >= size ||
	    (presence != OPTIONAL && item->valuestring[0] == '\0') ||
	    !is_utf8(item->valuestring))
		return -1;
	strcpy(out, item->valuestring);
	return 0;
}

/* Tokens go into headers and the database: printable ASCII, no spaces. */
static int
is_token_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

int
spotify_parse_tokens(const char *text, size_t len, int refresh_required,
		     struct spotify_tokens *out)
{
	cJSON *json = parse_answer(text, len);
	const cJSON *type, *expires;
	int rc = -1;

	if (!cJSON_IsObject(json))
		goto out;
	type = cJSON_GetObjectItemCaseSensitive(json, "token_type");
	expires = cJSON_GetObjectItemCaseSensitive(json, "expires_in");
	if (!cJSON_IsString(type) || strcasecmp(type->valuestring, "Bearer") != 0 ||
	    !cJSON_IsNumber(expires) || expires->valuedouble < 1 ||
	    expires->valuedouble > 86400 * 366)
		goto out;
	if (copy_string(json, "access_token", out->access_token,
			sizeof(out->access_token), REQUIRED) < 0 ||
	    copy_string(json, "refresh_token", out->refresh_token,
			sizeof(out->refresh_token),
			refresh_required ? REQUIRED : OPTIONAL) < 0 ||
	    copy_string(json, "scope", out->scope, sizeof(out->scope), OPTIONAL) < 0)
		goto out;
	if (!is_token_text(out->access_token) || !is_token_text(out->refresh_token))
		goto out;
	out->has_scope = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(json, "scope"));
	out->expires_in = (long)expires->valuedouble;
	rc = 0;
out:
	cJSON_Delete(json);
	return rc;
}

int
spotify_is_invalid_grant(const char *text, size_t len)
{
	cJSON *json = parse_answer(text, len);
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
	int dead =
		cJSON_IsString(error) && strcmp(error->valuestring, "invalid_grant") == 0;

	cJSON_Delete(json);
	return dead;
}

/*
 * account_id is optional (answers from before May 2026 lack it) but, when
 * sent, is held to id's rules: an empty one would make every such user
 * the same account.
 */
int
spotify_parse_user(const char *text, size_t len, struct spotify_user *out)
{
	cJSON *json = parse_answer(text, len);
	int rc = -1;

	if (cJSON_IsObject(json) &&
	    copy_string(json, "id", out->id, sizeof(out->id), REQUIRED) == 0 &&
	    copy_string(json, "account_id", out->account_id, sizeof(out->account_id),
			NONEMPTY) == 0 &&
	    copy_string(json, "display_name", out->display_name,
			sizeof(out->display_name), OPTIONAL) == 0)
		rc = 0;
	cJSON_Delete(json);
	return rc;
}

int
spotify_is_quota_exceeded(const char *text, size_t len)
{
	cJSON *json = parse_answer(text, len);
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(error, "reason");
	int quota = cJSON_IsObject(error) && cJSON_IsString(reason) &&
		    strcmp(reason->valuestring, "QUOTA_EXCEEDED") == 0;

	cJSON_Delete(json);
	return quota;
}

static enum spotify_status
paused_status(enum pause_reason reason)
{
	return reason == PAUSE_QUOTA_EXCEEDED ? SPOTIFY_QUOTA_EXCEEDED
					      : SPOTIFY_RATE_LIMITED;
}

int
spotify_paused(struct spotify_outcome *result)
{
	enum pause_reason reason;
	long left;

	if (!pause_check(&left, &reason))
		return 0;
	result->status = paused_status(reason);
	result->retry_after = left;
	result->paused = 1;
	return 1;
}

/* A 429: every worker of every instance waits Retry-After (pause.c). */
static void
note_rate_limit(struct spotify_client *client, const char *endpoint,
		struct spotify_outcome *result)
{
	enum pause_reason reason =
		spotify_is_quota_exceeded(client->body, client->body_len)
			? PAUSE_QUOTA_EXCEEDED
			: PAUSE_SHORT_TERM;

	result->status = paused_status(reason);
	result->retry_after = retry_after_seconds(client);
	pause_note(result->retry_after, reason);
	metrics_spotify_rate_limited(reason == PAUSE_QUOTA_EXCEEDED
					     ? METRICS_RATE_LIMIT_QUOTA_EXCEEDED
					     : METRICS_RATE_LIMIT_SHORT_TERM);
	/* The quota does not come back in seconds: the app's owner acts. */
	log_event(reason == PAUSE_QUOTA_EXCEEDED ? LOG_ERROR : LOG_WARN,
		  "spotify_rate_limited", LOG_STR("endpoint", endpoint),
		  LOG_STR("reason", pause_reason_name(reason)),
		  LOG_INT("retry_after", result->retry_after));
}

static struct spotify_outcome
token_request(struct spotify_client *client, const char *grant, const char *form,
	      struct spotify_tokens *out)
{
	struct spotify_outcome result = {.status = SPOTIFY_FAILED};
	char url[1024];
	long status;

	if (spotify_paused(&result))
		return result;
	snprintf(url, sizeof(url), "%s/api/token", client->cfg->spotify_accounts_url);
	status = perform(client, grant, url, form, NULL);
	if (status == 200) {
		if (spotify_parse_tokens(client->body, client->body_len,
					 strcmp(grant, "authorization_code") == 0,
					 out) == 0)
			result.status = SPOTIFY_OK;
		else
			log_event(LOG_WARN, "spotify_bad_answer",
				  LOG_STR("endpoint", grant));
	} else if (status == 400 &&
		   spotify_is_invalid_grant(client->body, client->body_len)) {
		result.status = SPOTIFY_INVALID_GRANT;
	} else if (status == 403) {
		result.status = SPOTIFY_FORBIDDEN;
	} else if (status == 429) {
		note_rate_limit(client, grant, &result);
	}
	OPENSSL_cleanse(client->body, client->body_len);
	return result;
}

static enum metrics_spotify_outcome
outcome_label(enum spotify_status status)
{
	switch (status) {
	case SPOTIFY_OK: return METRICS_OUTCOME_OK;
	case SPOTIFY_INVALID_GRANT: return METRICS_OUTCOME_INVALID_GRANT;
	case SPOTIFY_UNAUTHORIZED: return METRICS_OUTCOME_UNAUTHORIZED;
	case SPOTIFY_FORBIDDEN: return METRICS_OUTCOME_FORBIDDEN;
	case SPOTIFY_RATE_LIMITED: return METRICS_OUTCOME_RATE_LIMITED;
	case SPOTIFY_QUOTA_EXCEEDED: return METRICS_OUTCOME_QUOTA_EXCEEDED;
	default: return METRICS_OUTCOME_FAILED;
	}
}

static struct spotify_outcome
counted(enum metrics_spotify_call call, struct spotify_outcome outcome)
{
	metrics_spotify(call, outcome.paused ? METRICS_OUTCOME_PAUSED
					     : outcome_label(outcome.status));
	return outcome;
}

struct spotify_outcome
spotify_exchange_code(const char *code, const char *code_verifier,
		      struct spotify_tokens *out)
{
	struct spotify_client *client = current;
	char form[4096] = "";

	if (form_add(client, form, sizeof(form), "grant_type", "authorization_code") <
		    0 ||
	    form_add(client, form, sizeof(form), "code", code) < 0 ||
	    form_add(client, form, sizeof(form), "redirect_uri",
		     client->cfg->spotify_redirect_uri) < 0 ||
	    form_add(client, form, sizeof(form), "code_verifier", code_verifier) < 0)
		return (struct spotify_outcome){.status = SPOTIFY_FAILED};
	return counted(METRICS_CALL_CODE,
		       token_request(client, "authorization_code", form, out));
}

struct spotify_outcome
spotify_refresh(const char *refresh_token, struct spotify_tokens *out)
{
	struct spotify_client *client = current;
	char form[SPOTIFY_TOKEN_MAX * 3 + 128] = "";
	struct spotify_outcome result;

	if (form_add(client, form, sizeof(form), "grant_type", "refresh_token") < 0 ||
	    form_add(client, form, sizeof(form), "refresh_token", refresh_token) < 0)
		return (struct spotify_outcome){.status = SPOTIFY_FAILED};
	result = token_request(client, "refresh_token", form, out);
	OPENSSL_cleanse(form, sizeof(form));
	return counted(METRICS_CALL_REFRESH, result);
}

static struct spotify_outcome me_request(struct spotify_client *client,
					 const char *access_token,
					 struct spotify_user *out);

struct spotify_outcome
spotify_me(const char *access_token, struct spotify_user *out)
{
	return counted(METRICS_CALL_ME, me_request(current, access_token, out));
}

static struct spotify_outcome
me_request(struct spotify_client *client, const char *access_token,
	   struct spotify_user *out)
{
	struct spotify_outcome result = {.status = SPOTIFY_FAILED};
	char url[1024];
	long status;

	if (spotify_paused(&result))
		return result;
	snprintf(url, sizeof(url), "%s/v1/me", client->cfg->spotify_api_url);
	status = perform(client, "me", url, NULL, access_token);
	if (status == 401)
		result.status = SPOTIFY_UNAUTHORIZED;
	/* Development mode: a user the owner has not added gets through the
	 * consent screen, then the Web API refuses them. */
	if (status == 403)
		result.status = SPOTIFY_FORBIDDEN;
	if (status == 429)
		note_rate_limit(client, "me", &result);
	if (status != 200)
		return result;

	if (spotify_parse_user(client->body, client->body_len, out) == 0)
		result.status = SPOTIFY_OK;
	else
		log_event(LOG_WARN, "spotify_bad_answer", LOG_STR("endpoint", "me"));
	return result;
}
