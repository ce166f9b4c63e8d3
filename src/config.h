/*
 * Configuration: environment variables parsed once at start-up into a
 * read-only struct. CONFIG_VARIABLES is the one table of names; adding a
 * variable is adding one line to it (and its field is generated).
 */
#ifndef BAA_CONFIG_H
#define BAA_CONFIG_H

#include <stddef.h>

#include "address.h"
#include "services.h"

/* Which commands need a variable. */
enum config_scope {
	CONFIG_DATABASE = 1 << 0, /* serve, resetdb, migrate, rotate-keys */
	CONFIG_SERVE = 1 << 1,	  /* serve only */
	CONFIG_TOKENS = 1 << 2,	  /* the token keys: serve, rotate-keys */
};

/*
 * What stands between baa and PostgreSQL. A transaction pooler (PgBouncer's
 * pool_mode=transaction) lends a server connection per transaction, so
 * nothing that outlives one (prepared statements, LISTEN, session
 * settings) may be relied on. Direct connections and session pooling are
 * the same to baa: none.
 */
enum config_pooler { CONFIG_POOLER_NONE, CONFIG_POOLER_TRANSACTION };

/* BAA_PROFILE_CACHE before config_load resolves it: on unless a pooler forbids. */
#define CONFIG_PROFILE_CACHE_AUTO (-1)

/*
 * X(NAME, field, C type, scope, default, parser)
 * The default is NULL when the variable is required, and "" when it is
 * optional with no value: unset, its field stays zero.
 */
#define CONFIG_VARIABLES(X)                                                              \
	X(POSTGRES_URL, postgres_url, struct address_list, CONFIG_DATABASE, NULL,        \
	  config_parse_postgres_url)                                                     \
	X(POSTGRES_USER, postgres_user, const char *, CONFIG_DATABASE, NULL,             \
	  config_parse_string)                                                           \
	X(POSTGRES_PW, postgres_password, const char *, CONFIG_DATABASE, NULL,           \
	  config_parse_string)                                                           \
	X(POSTGRES_DB, postgres_db, const char *, CONFIG_DATABASE, NULL,                 \
	  config_parse_database_name)                                                    \
	X(POSTGRES_SSLMODE, postgres_sslmode, const char *, CONFIG_DATABASE, "",         \
	  config_parse_sslmode)                                                          \
	X(POSTGRES_SSLROOTCERT, postgres_sslrootcert, const char *, CONFIG_DATABASE, "", \
	  config_parse_ca_file)                                                          \
	X(BAA_DB_POOLER, db_pooler, enum config_pooler, CONFIG_DATABASE, "none",         \
	  config_parse_pooler)                                                           \
	X(BAA_LISTEN, listen, struct address, CONFIG_SERVE, "127.0.0.1:9000",            \
	  config_parse_listen)                                                           \
	X(BAA_INTERNAL_LISTEN, internal_listen, struct address, CONFIG_SERVE, "",        \
	  config_parse_internal_listen)                                                  \
	X(BAA_SERVICE_KEYS, service_keys, struct service_keys, CONFIG_SERVE, "",         \
	  config_parse_service_keys)                                                     \
	X(BAA_WORKERS, workers, int, CONFIG_SERVE, "auto", config_parse_workers)         \
	X(BAA_SHUTDOWN_TIMEOUT, shutdown_timeout, int, CONFIG_SERVE, "10",               \
	  config_parse_seconds)                                                          \
	X(SPOTIFY_CLIENT_ID, spotify_client_id, const char *, CONFIG_SERVE, NULL,        \
	  config_parse_client_id)                                                        \
	X(SPOTIFY_CLIENT_SECRET, spotify_client_secret, const char *, CONFIG_SERVE,      \
	  NULL, config_parse_client_id)                                                  \
	X(SPOTIFY_REDIRECT_URI, spotify_redirect_uri, const char *, CONFIG_SERVE, NULL,  \
	  config_parse_redirect_uri)                                                     \
	X(BAA_SECRET_KEY, secret_key, const char *, CONFIG_SERVE | CONFIG_TOKENS, NULL,  \
	  config_parse_secret_key)                                                       \
	X(BAA_TOKEN_KEY, token_keys, const char *, CONFIG_SERVE | CONFIG_TOKENS,         \
	  "derived", config_parse_token_keys)                                            \
	X(SPOTIFY_ACCOUNTS_URL, spotify_accounts_url, const char *, CONFIG_SERVE,        \
	  "https://accounts.spotify.com", config_parse_service_url)                      \
	X(SPOTIFY_API_URL, spotify_api_url, const char *, CONFIG_SERVE,                  \
	  "https://api.spotify.com", config_parse_service_url)                           \
	X(SPOTIFY_SCOPES, spotify_scopes, const char *, CONFIG_SERVE, "",                \
	  config_parse_scopes)                                                           \
	X(SPOTIFY_SCOPES_ALLOWED, spotify_scopes_allowed, const char *, CONFIG_SERVE,    \
	  "", config_parse_scopes)                                                       \
	X(SPOTIFY_CA_FILE, spotify_ca_file, const char *, CONFIG_SERVE, "",              \
	  config_parse_ca_file)                                                          \
	X(BAA_SPOTIFY_TIMEOUT_MS, spotify_timeout_ms, int, CONFIG_SERVE, "4000",         \
	  config_parse_timeout_ms)                                                       \
	X(BAA_SESSION_TTL, session_ttl, int, CONFIG_SERVE, "2592000",                    \
	  config_parse_session_ttl)                                                      \
	X(BAA_SESSION_MAX_AGE, session_max_age, int, CONFIG_SERVE, "7776000",            \
	  config_parse_session_ttl)                                                      \
	X(BAA_AUDIT_RETENTION_DAYS, audit_retention_days, int, CONFIG_SERVE, "90",       \
	  config_parse_retention_days)                                                   \
	X(BAA_HOUSEKEEPING_INTERVAL, housekeeping_interval, int, CONFIG_SERVE, "300",    \
	  config_parse_housekeeping_interval)                                            \
	X(BAA_INSTANCE, instance, const char *, CONFIG_SERVE, "", config_parse_instance) \
	X(BAA_GRANT_LIFETIME, grant_lifetime, int, CONFIG_SERVE, "15552000",             \
	  config_parse_grant_lifetime)                                                   \
	X(BAA_REAUTH_WINDOW, reauth_window, int, CONFIG_SERVE, "1209600",                \
	  config_parse_reauth_window)                                                    \
	X(BAA_INVALID_GRANT_CONFIRM, invalid_grant_confirm, int, CONFIG_SERVE, "600",    \
	  config_parse_invalid_grant_confirm)                                            \
	X(BAA_PROFILE_CACHE, profile_cache, int, CONFIG_SERVE, "auto",                   \
	  config_parse_profile_cache)                                                    \
	X(BAA_IO_TIMEOUT, io_timeout, int, CONFIG_SERVE, "10", config_parse_seconds)     \
	X(BAA_USER, user, const char *, CONFIG_SERVE, "", config_parse_user_name)        \
	X(BAA_SANDBOX, sandbox, int, CONFIG_SERVE, "on", config_parse_switch)

struct config {
#define CONFIG_FIELD(name, field, type, scope, def, parser) type field;
	CONFIG_VARIABLES(CONFIG_FIELD)
#undef CONFIG_FIELD
};

/*
 * A parser turns the variable's text into its field. On error it writes a
 * message completing "Environment variable 'NAME' ..." and returns -1; it
 * never echoes a whole value, which may be a secret.
 */
typedef int config_parser(const char *value, void *field, char *err, size_t errlen);

config_parser config_parse_string, config_parse_database_name, config_parse_postgres_url,
	config_parse_listen, config_parse_workers, config_parse_seconds,
	config_parse_client_id, config_parse_redirect_uri, config_parse_secret_key,
	config_parse_service_url, config_parse_scopes, config_parse_timeout_ms,
	config_parse_session_ttl, config_parse_switch, config_parse_user_name,
	config_parse_token_keys, config_parse_ca_file, config_parse_grant_lifetime,
	config_parse_reauth_window, config_parse_invalid_grant_confirm,
	config_parse_retention_days, config_parse_housekeeping_interval,
	config_parse_instance;
config_parser config_parse_internal_listen, config_parse_service_keys;
config_parser config_parse_pooler, config_parse_profile_cache, config_parse_sslmode;

#define CONFIG_SECRET_KEY_MIN 32

/* Whether BAA_INTERNAL_LISTEN is set: the internal listener is bound. */
#define CONFIG_HAS_INTERNAL(cfg) ((cfg)->internal_listen.host[0] != '\0')

/*
 * Reads every variable of the given scopes from getenv. Each problem is
 * written to errors as one line; returns the number of problems. Values
 * point into the environment and live as long as the process.
 */
int config_load(struct config *cfg, unsigned scopes, char *errors, size_t errlen);

#endif
