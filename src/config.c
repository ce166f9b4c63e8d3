/*
 * The environment, read once. Every variable is described by a row of
 * CONFIG_VARIABLES; config_load walks the generated table, so the rules for
 * missing and empty values are the same for all of them.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "credentials.h"
#include "crypto.h"
#include "scopes.h"
#include "session.h"
#include "tokenbox.h"

#define WORKERS_MAX 256
#define SECONDS_MAX 3600

struct config_variable {
	const char *name;
	size_t offset;
	unsigned scope;
	const char *fallback;
	config_parser *parse;
};

static const struct config_variable variables[] = {
#define CONFIG_ROW(name, field, type, scope, def, parser)                                \
	{#name, offsetof(struct config, field), (scope), (def), (parser)},
	CONFIG_VARIABLES(CONFIG_ROW)
#undef CONFIG_ROW
};

int
config_parse_string(const char *value, void *field, char *err, size_t errlen)
{
	*(const char **)field = value;
	return 0;
}

int
config_parse_database_name(const char *value, void *field, char *err, size_t errlen)
{
	/* PostgreSQL truncates identifiers at 63 bytes; refuse rather than
	 * silently use a different database. */
	if (strlen(value) > 63) {
		snprintf(err, errlen,
			 "is longer than PostgreSQL's 63-byte identifier limit");
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

int
config_parse_postgres_url(const char *value, void *field, char *err, size_t errlen)
{
	return address_list_parse(value, field, err, errlen);
}

int
config_parse_listen(const char *value, void *field, char *err, size_t errlen)
{
	struct address *a = field;

	if (address_parse(value, 1, a, err, errlen) < 0)
		return -1;
	if (a->is_unix && a->port[0] != '\0') {
		snprintf(err, errlen, "is a unix-socket path and cannot have a port");
		return -1;
	}
	return 0;
}

/*
 * The listener for backend services (README, "Tokens for backend
 * services"): a unix socket, loopback, or a private network's address.
 * A public address is refused rather than trusted to a firewall: the
 * service keys are all that would stand between the internet and every
 * user's Spotify token.
 */
int
config_parse_internal_listen(const char *value, void *field, char *err, size_t errlen)
{
	struct address *a = field;

	if (config_parse_listen(value, field, err, errlen) < 0)
		return -1;
	if (!address_is_private(a)) {
		snprintf(err, errlen,
			 "must be a unix-socket path, a loopback address or a private "
			 "network's (10/8, 172.16/12, 192.168/16, fc00::/7): it hands "
			 "out users' tokens");
		memset(a, 0, sizeof(*a));
		return -1;
	}
	return 0;
}

int
config_parse_service_keys(const char *value, void *field, char *err, size_t errlen)
{
	return services_parse(value, field, err, errlen);
}

/*
 * The internal listener and the service keys make sense only together,
 * and the internal listener is a socket of its own.
 */
static int
check_internal(const struct config *cfg, char *line, size_t len)
{
	if (CONFIG_HAS_INTERNAL(cfg) && cfg->service_keys.count == 0)
		snprintf(line, len,
			 "Environment variable 'BAA_SERVICE_KEYS' is not set, but "
			 "BAA_INTERNAL_LISTEN is: name the services that may call "
			 "(name:key ...).");
	else if (!CONFIG_HAS_INTERNAL(cfg) && cfg->service_keys.count > 0)
		snprintf(line, len,
			 "Environment variable 'BAA_INTERNAL_LISTEN' is not set, but "
			 "BAA_SERVICE_KEYS is: services are served only there.");
	else if (CONFIG_HAS_INTERNAL(cfg) &&
		 cfg->internal_listen.is_unix == cfg->listen.is_unix &&
		 strcmp(cfg->internal_listen.host, cfg->listen.host) == 0 &&
		 strcmp(cfg->internal_listen.port, cfg->listen.port) == 0)
		snprintf(line, len,
			 "Environment variable 'BAA_INTERNAL_LISTEN' must differ from "
			 "BAA_LISTEN.");
	else
		return 0;
	return -1;
}

static int
parse_bounded_int(const char *value, long min, long max, int *out)
{
	char *end;
	long n;

	if (strspn(value, "0123456789") != strlen(value) || strlen(value) > 9)
		return -1;
	n = strtol(value, &end, 10);
	if (*end != '\0' || n < min || n > max)
		return -1;
	*out = (int)n;
	return 0;
}

/* A whole number of seconds from min to max, or the message naming them. */
static int
parse_seconds_in(const char *value, long min, long max, void *field, char *err,
		 size_t errlen)
{
	if (parse_bounded_int(value, min, max, field) < 0) {
		snprintf(err, errlen, "must be a number of seconds from %ld to %ld", min,
			 max);
		return -1;
	}
	return 0;
}

int
config_parse_workers(const char *value, void *field, char *err, size_t errlen)
{
	if (strcmp(value, "auto") == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		*(int *)field = cpus < 1	     ? 1
				: cpus > WORKERS_MAX ? WORKERS_MAX
						     : (int)cpus;
		return 0;
	}
	if (parse_bounded_int(value, 1, WORKERS_MAX, field) < 0) {
		snprintf(err, errlen, "must be 'auto' or a number from 1 to %d",
			 WORKERS_MAX);
		return -1;
	}
	return 0;
}

int
config_parse_seconds(const char *value, void *field, char *err, size_t errlen)
{
	return parse_seconds_in(value, 0, SECONDS_MAX, field, err, errlen);
}

int
config_parse_client_id(const char *value, void *field, char *err, size_t errlen)
{
	/* Spotify's ids and secrets are hex; anything printable is tolerated,
	 * but nothing that could break a header or a form. */
	for (const char *c = value; *c; c++) {
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f) {
			snprintf(err, errlen,
				 "must not contain spaces or control characters");
			return -1;
		}
	}
	if (strlen(value) > 256) {
		snprintf(err, errlen, "is longer than 256 characters");
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

/* Splits value with libcurl's URL parser; scheme and host are lower case. */
static int
url_parts(const char *value, char *scheme, size_t scheme_len, char *host, size_t host_len,
	  int *has_fragment)
{
	CURLU *url = curl_url();
	char *part = NULL;
	int rc = -1;

	if (url == NULL || curl_url_set(url, CURLUPART_URL, value, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(url, CURLUPART_SCHEME, &part, 0) != CURLUE_OK)
		goto out;
	snprintf(scheme, scheme_len, "%s", part);
	curl_free(part);
	part = NULL;
	if (curl_url_get(url, CURLUPART_HOST, &part, 0) != CURLUE_OK)
		goto out;
	snprintf(host, host_len, "%s", part);
	curl_free(part);
	part = NULL;
	*has_fragment = curl_url_get(url, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK;
	rc = 0;
out:
	curl_free(part);
	curl_url_cleanup(url);
	return rc;
}

static int
is_loopback_literal(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0;
}

int
config_parse_redirect_uri(const char *value, void *field, char *err, size_t errlen)
{
	char scheme[16], host[256];
	int fragment = 0;

	if (strlen(value) > 512 ||
	    url_parts(value, scheme, sizeof(scheme), host, sizeof(host), &fragment) < 0) {
		snprintf(err, errlen, "is not a valid URL");
		return -1;
	}
	if (fragment) {
		snprintf(err, errlen, "must not have a #fragment");
		return -1;
	}
	/* Spotify's rules: HTTPS, except the loopback IP literals; never "localhost". */
	if (strcmp(host, "localhost") == 0) {
		snprintf(err, errlen,
			 "uses 'localhost', which Spotify refuses: use "
			 "http://127.0.0.1:PORT/callback");
		return -1;
	}
	if (strcmp(scheme, "https") != 0 &&
	    !(strcmp(scheme, "http") == 0 && is_loopback_literal(host))) {
		snprintf(err, errlen,
			 "must use https (Spotify allows http only for "
			 "http://127.0.0.1:PORT and "
			 "http://[::1]:PORT)");
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

int
config_parse_secret_key(const char *value, void *field, char *err, size_t errlen)
{
	if (session_check_secrets(value, CONFIG_SECRET_KEY_MIN, err, errlen) < 0)
		return -1;
	*(const char **)field = value;
	return 0;
}

int
config_parse_token_keys(const char *value, void *field, char *err, size_t errlen)
{
	if (tokenbox_check_keys(value, err, errlen) < 0)
		return -1;
	*(const char **)field = value;
	return 0;
}

int
config_parse_service_url(const char *value, void *field, char *err, size_t errlen)
{
	char scheme[16], host[256];
	int fragment = 0;
	size_t len = strlen(value);

	if (len > 256 ||
	    url_parts(value, scheme, sizeof(scheme), host, sizeof(host), &fragment) < 0 ||
	    fragment || strchr(value, '?')) {
		snprintf(err, errlen,
			 "is not a valid base URL (scheme://host[:port][/path])");
		return -1;
	}
	if (value[len - 1] == '/') {
		snprintf(err, errlen, "must not end with '/'");
		return -1;
	}
	/* Tokens travel to this address: plain http only to a local stand-in. */
	if (strcmp(scheme, "https") != 0 &&
	    !(strcmp(scheme, "http") == 0 &&
	      (is_loopback_literal(host) || strcmp(host, "localhost") == 0))) {
		snprintf(err, errlen,
			 "must use https (http only for a loopback address)");
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

/*
 * The CAs baa trusts for Spotify instead of the system store. Checked here,
 * so that a typo stops baa at start rather than failing every login with
 * a 502: a readable regular file with at least one PEM certificate.
 */
int
config_parse_ca_file(const char *value, void *field, char *err, size_t errlen)
{
	struct stat st;
	int n;

	if (strlen(value) >= 4096) {
		snprintf(err, errlen, "is longer than a path may be");
		return -1;
	}
	if (stat(value, &st) < 0) {
		snprintf(err, errlen, "names a file that cannot be read (%s)",
			 strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "must name a PEM file, not a directory or device");
		return -1;
	}
	n = crypto_pem_certificates(value);
	if (n < 0) {
		snprintf(err, errlen, "names a file that cannot be read (%s)",
			 strerror(errno));
		return -1;
	}
	if (n == 0) {
		snprintf(err, errlen,
			 "names a file without a PEM certificate "
			 "(-----BEGIN CERTIFICATE-----)");
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

/* The names baa asks for, or may be asked to ask for (SPOTIFY_SCOPES_ALLOWED). */
int
config_parse_scopes(const char *value, void *field, char *err, size_t errlen)
{
	struct scopes set;

	if (scopes_parse(&set, value, strlen(value), SCOPES_LOOSE) < 0) {
		snprintf(err, errlen,
			 "must be space-separated Spotify scope names (at most %d, "
			 "%d characters in all)",
			 SCOPES_MAX, SCOPES_TEXT_MAX);
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

/*
 * SPOTIFY_SCOPES_ALLOWED, unset, is SPOTIFY_SCOPES itself: a client may
 * then ask for nothing baa does not ask for anyway. Set, it must hold every
 * scope of SPOTIFY_SCOPES, or a login would ask for what a client may not.
 */
static int
resolve_scopes_allowed(struct config *cfg, char *line, size_t len)
{
	struct scopes asked, allowed, missing;
	char names[SCOPES_TEXT_MAX + 1];
	const char *asked_text = cfg->spotify_scopes ? cfg->spotify_scopes : "";

	if (cfg->spotify_scopes_allowed == NULL) {
		cfg->spotify_scopes_allowed = asked_text;
		return 0;
	}
	if (scopes_parse(&asked, asked_text, strlen(asked_text), SCOPES_LOOSE) < 0 ||
	    scopes_parse(&allowed, cfg->spotify_scopes_allowed,
			 strlen(cfg->spotify_scopes_allowed), SCOPES_LOOSE) < 0)
		return -1; /* not reached: both parsed already */
	scopes_missing(&allowed, &asked, &missing);
	if (missing.count == 0)
		return 0;
	scopes_format(&missing, names, sizeof(names));
	snprintf(line, len,
		 "Environment variable 'SPOTIFY_SCOPES_ALLOWED' must include every "
		 "scope of SPOTIFY_SCOPES; it lacks: %.300s.",
		 names);
	return -1;
}

int
config_parse_timeout_ms(const char *value, void *field, char *err, size_t errlen)
{
	if (parse_bounded_int(value, 100, 60000, field) < 0) {
		snprintf(err, errlen,
			 "must be a number of milliseconds from 100 to 60000");
		return -1;
	}
	return 0;
}

int
config_parse_session_ttl(const char *value, void *field, char *err, size_t errlen)
{
	return parse_seconds_in(value, 10, 366 * 86400, field, err, errlen);
}

/* How long the audit trail keeps an event. */
int
config_parse_retention_days(const char *value, void *field, char *err, size_t errlen)
{
	if (parse_bounded_int(value, 1, 3660, field) < 0) {
		snprintf(err, errlen, "must be a number of days from 1 to 3660");
		return -1;
	}
	return 0;
}

/* How often a worker deletes expired sessions and old events. */
int
config_parse_housekeeping_interval(const char *value, void *field, char *err,
				   size_t errlen)
{
	return parse_seconds_in(value, 1, 86400, field, err, errlen);
}

/* The name this instance writes into the audit trail. */
int
config_parse_instance(const char *value, void *field, char *err, size_t errlen)
{
	size_t len = strlen(value);

	if (len > 64 ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789.:_-/[]") != len) {
		snprintf(err, errlen,
			 "must be up to 64 letters, digits or '.', ':', '_', '-', '/', "
			 "'[', ']'");
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

/* Spotify's refresh tokens die this long after the user's authorization. */
int
config_parse_grant_lifetime(const char *value, void *field, char *err, size_t errlen)
{
	return parse_seconds_in(value, 60, 10 * 366 * 86400, field, err, errlen);
}

/* How long before the grant's end the user is asked to renew it. */
int
config_parse_reauth_window(const char *value, void *field, char *err, size_t errlen)
{
	return parse_seconds_in(value, 0, 366 * 86400, field, err, errlen);
}

/* How long one invalid_grant waits for a second opinion. */
int
config_parse_invalid_grant_confirm(const char *value, void *field, char *err,
				   size_t errlen)
{
	return parse_seconds_in(value, 0, 86400, field, err, errlen);
}

int
config_parse_switch(const char *value, void *field, char *err, size_t errlen)
{
	if (strcmp(value, "on") == 0 || strcmp(value, "off") == 0) {
		*(int *)field = strcmp(value, "on") == 0;
		return 0;
	}
	snprintf(err, errlen, "must be 'on' or 'off'");
	return -1;
}

int
config_parse_pooler(const char *value, void *field, char *err, size_t errlen)
{
	if (strcmp(value, "none") == 0)
		*(enum config_pooler *)field = CONFIG_POOLER_NONE;
	else if (strcmp(value, "transaction") == 0)
		*(enum config_pooler *)field = CONFIG_POOLER_TRANSACTION;
	else {
		snprintf(err, errlen, "must be 'none' or 'transaction'");
		return -1;
	}
	return 0;
}

/* libpq's own names, passed to it as they are. */
int
config_parse_sslmode(const char *value, void *field, char *err, size_t errlen)
{
	static const char *const modes[] = {"disable", "allow",	    "prefer",
					    "require", "verify-ca", "verify-full"};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(value, modes[i]) == 0) {
			*(const char **)field = modes[i];
			return 0;
		}
	}
	snprintf(err, errlen,
		 "must be one of disable, allow, prefer, require, verify-ca, "
		 "verify-full");
	return -1;
}

/*
 * POSTGRES_SSLMODE when unset: verify-full once a CA is named; prefer on
 * this machine, where no network lies between baa and the server; across
 * a network, verify-full too, which needs the CA, so its absence stops baa
 * at start instead of sending the password where anyone on the path could
 * take it. A verifying mode never falls back to libpq's ~/.postgresql/
 * root.crt: that file, in BAA_USER's home, would be a trust no one chose.
 */
static int
resolve_sslmode(struct config *cfg, char *line, size_t len)
{
	int verifies;

	if (cfg->postgres_sslmode == NULL)
		cfg->postgres_sslmode =
			cfg->postgres_sslrootcert ||
					!address_list_is_local(&cfg->postgres_url)
				? "verify-full"
				: "prefer";
	verifies = strncmp(cfg->postgres_sslmode, "verify-", 7) == 0;
	if (!verifies || cfg->postgres_sslrootcert)
		return 0;
	if (getenv("POSTGRES_SSLMODE") != NULL)
		snprintf(line, len,
			 "Environment variable 'POSTGRES_SSLMODE' is '%s', which needs "
			 "POSTGRES_SSLROOTCERT: set it to the PEM file of the CA that "
			 "signed the server's certificate.",
			 cfg->postgres_sslmode);
	else
		snprintf(
			line, len,
			"Environment variable 'POSTGRES_SSLROOTCERT' is not set, and "
			"POSTGRES_URL is not on this machine: set it to the PEM file of "
			"the CA that signed the server's certificate (verify-full), or "
			"choose POSTGRES_SSLMODE (require: encrypted but not verified).");
	return -1;
}

int
config_parse_profile_cache(const char *value, void *field, char *err, size_t errlen)
{
	if (strcmp(value, "auto") == 0) {
		*(int *)field = CONFIG_PROFILE_CACHE_AUTO;
		return 0;
	}
	if (config_parse_switch(value, field, err, errlen) == 0)
		return 0;
	snprintf(err, errlen, "must be 'auto', 'on' or 'off'");
	return -1;
}

/*
 * The profile cache learns of changes by LISTEN, which a transaction
 * pooler cannot carry: asked for explicitly behind one, it is refused
 * rather than quietly serving revoked sessions. Returns 0 or writes why.
 */
static int
resolve_profile_cache(struct config *cfg, char *line, size_t len)
{
	int pooled = cfg->db_pooler == CONFIG_POOLER_TRANSACTION;

	if (cfg->profile_cache == CONFIG_PROFILE_CACHE_AUTO) {
		cfg->profile_cache = !pooled;
		return 0;
	}
	if (cfg->profile_cache && pooled) {
		snprintf(line, len,
			 "Environment variable 'BAA_PROFILE_CACHE' is 'on', but the "
			 "profile cache needs LISTEN, which BAA_DB_POOLER=transaction "
			 "cannot carry: set it to 'auto' or 'off'.");
		return -1;
	}
	return 0;
}

int
config_parse_user_name(const char *value, void *field, char *err, size_t errlen)
{
	/* A name for getpwnam, bounded as useradd bounds it; whether the user
	 * exists is decided at start-up (privileges.c). */
	if (strlen(value) > 32 ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789._-$") != strlen(value)) {
		snprintf(err, errlen,
			 "must be a user name (up to 32 letters, digits, '.', '_', "
			 "'-' or '$')");
		return -1;
	}
	*(const char **)field = value;
	return 0;
}

static void
append_line(char *errors, size_t errlen, size_t *used, const char *line)
{
	int n = snprintf(errors + *used, errlen - *used, "%s\n", line);
	if (n > 0)
		*used += (size_t)n < errlen - *used ? (size_t)n : errlen - *used - 1;
}

/* The secrets, which may come as systemd credentials instead (credentials.h). */
static const char *const credential_names[] = {
	"POSTGRES_PW",	 "SPOTIFY_CLIENT_SECRET", "BAA_SECRET_KEY",
	"BAA_TOKEN_KEY", "BAA_SERVICE_KEYS",
};

static int
is_credential(const char *name)
{
	for (size_t i = 0; i < sizeof(credential_names) / sizeof(credential_names[0]);
	     i++)
		if (strcmp(name, credential_names[i]) == 0)
			return 1;
	return 0;
}

/*
 * A variable's value from the environment, or for a secret from its
 * credential; *source names where, for messages. Both at once is refused:
 * which one wins would be a guess the operator did not make. Returns 0, or
 * -1 with the whole message in line.
 */
static int
lookup(const char *name, const char **value, const char **source, char *line, size_t len)
{
	char why[256];
	const char *credential;
	int found;

	*value = getenv(name);
	*source = "Environment variable";
	if (!is_credential(name))
		return 0;
	found = credential_read(name, &credential, why, sizeof(why));
	if (found < 0) {
		snprintf(line, len, "Credential '%s' %s.", name, why);
		return -1;
	}
	if (found && *value != NULL) {
		snprintf(line, len,
			 "'%s' is both an environment variable and a credential: "
			 "keep one.",
			 name);
		return -1;
	}
	if (found)
		*value = credential, *source = "Credential";
	return 0;
}

int
config_load(struct config *cfg, unsigned scopes, char *errors, size_t errlen)
{
	char line[1024], why[768];
	size_t used = 0;
	int problems = 0;

	memset(cfg, 0, sizeof(*cfg));
	errors[0] = '\0';

	for (size_t i = 0; i < sizeof(variables) / sizeof(variables[0]); i++) {
		const struct config_variable *v = &variables[i];
		const char *value, *source;

		if (!(v->scope & scopes))
			continue;
		if (lookup(v->name, &value, &source, line, sizeof(line)) < 0) {
			append_line(errors, errlen, &used, line);
			problems++;
			continue;
		}
		if (value == NULL && v->fallback != NULL && v->fallback[0] == '\0')
			continue; /* optional and unset: the field stays zero */
		if (value == NULL)
			value = v->fallback;
		if (value == NULL) {
			snprintf(line, sizeof(line),
				 "Expected environment variable '%s' not set.", v->name);
		} else if (value[0] == '\0') {
			snprintf(line, sizeof(line), "%s '%s' is empty.", source,
				 v->name);
		} else if (v->parse(value, (char *)cfg + v->offset, why, sizeof(why)) <
			   0) {
			snprintf(line, sizeof(line), "%s '%s' %s.", source, v->name, why);
		} else {
			continue;
		}
		append_line(errors, errlen, &used, line);
		problems++;
	}
	/* Only a combination of values that each parsed is worth judging. */
	if (problems == 0 && (scopes & CONFIG_DATABASE) &&
	    resolve_sslmode(cfg, line, sizeof(line)) < 0) {
		append_line(errors, errlen, &used, line);
		problems++;
	}
	if (problems == 0 && (scopes & CONFIG_SERVE) &&
	    resolve_profile_cache(cfg, line, sizeof(line)) < 0) {
		append_line(errors, errlen, &used, line);
		problems++;
	}
	if (problems == 0 && (scopes & CONFIG_SERVE) &&
	    check_internal(cfg, line, sizeof(line)) < 0) {
		append_line(errors, errlen, &used, line);
		problems++;
	}
	if (problems == 0 && (scopes & CONFIG_SERVE) &&
	    resolve_scopes_allowed(cfg, line, sizeof(line)) < 0) {
		append_line(errors, errlen, &used, line);
		problems++;
	}
	/* Unset, the cap never undercuts a longer idle time chosen before it existed. */
	if (problems == 0 && (scopes & CONFIG_SERVE) &&
	    getenv("BAA_SESSION_MAX_AGE") == NULL &&
	    cfg->session_max_age < cfg->session_ttl)
		cfg->session_max_age = cfg->session_ttl;
	if (problems == 0 && (scopes & CONFIG_SERVE) &&
	    cfg->session_max_age < cfg->session_ttl) {
		append_line(
			errors, errlen, &used,
			"Environment variable 'BAA_SESSION_MAX_AGE' must be at least "
			"BAA_SESSION_TTL (a session's total life caps its idle time).");
		problems++;
	}
	if (problems == 0 && (scopes & CONFIG_TOKENS) &&
	    tokenbox_key_count(cfg->token_keys, cfg->secret_key) > TOKENBOX_KEYS_MAX) {
		snprintf(
			line, sizeof(line),
			"Environment variable 'BAA_TOKEN_KEY' names more than %d keys once "
			"'derived' stands for a key per secret of BAA_SECRET_KEY.",
			TOKENBOX_KEYS_MAX);
		append_line(errors, errlen, &used, line);
		problems++;
	}
	return problems;
}
