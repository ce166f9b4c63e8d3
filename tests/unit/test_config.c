/* The environment as baa reads it: required, defaulted and invalid values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/config.h"

static const char *const all_names[] = {
	"POSTGRES_URL", "POSTGRES_USER", "POSTGRES_PW", "POSTGRES_DB", "BAA_LISTEN",
	"BAA_WORKERS", "BAA_SHUTDOWN_TIMEOUT",
	/* set by some tests, not wanted by the next */
	"BAA_USER", "BAA_DB_POOLER", "BAA_PROFILE_CACHE", "SPOTIFY_ACCOUNTS_URL",
	"SPOTIFY_API_URL", "SPOTIFY_CA_FILE", "SPOTIFY_SCOPES", "BAA_GRANT_LIFETIME",
	"BAA_REAUTH_WINDOW", "BAA_INVALID_GRANT_CONFIRM", "BAA_SESSION_TTL",
	"BAA_SESSION_MAX_AGE", "BAA_AUDIT_RETENTION_DAYS", "BAA_HOUSEKEEPING_INTERVAL",
	"BAA_INSTANCE", "POSTGRES_SSLMODE", "POSTGRES_SSLROOTCERT", "PGSSLMODE",
	"BAA_SANDBOX", "BAA_INTERNAL_LISTEN", "BAA_SERVICE_KEYS", "CREDENTIALS_DIRECTORY",
	"SPOTIFY_SCOPES_ALLOWED"};

static int
set_database_env(void **state)
{
	for (size_t i = 0; i < sizeof(all_names) / sizeof(all_names[0]); i++)
		unsetenv(all_names[i]);
	setenv("POSTGRES_URL", "127.0.0.1:5432", 1);
	setenv("POSTGRES_USER", "baa", 1);
	setenv("POSTGRES_PW", "s3cret-value", 1);
	setenv("POSTGRES_DB", "baa", 1);
	setenv("SPOTIFY_CLIENT_ID", "0123456789abcdef", 1);
	setenv("SPOTIFY_CLIENT_SECRET", "fedcba9876543210", 1);
	setenv("SPOTIFY_REDIRECT_URI", "https://baa.example/callback", 1);
	setenv("BAA_SECRET_KEY", "0123456789abcdef0123456789abcdef", 1);
	return 0;
}

static void
test_complete_environment_loads(void **state)
{
	struct config cfg;
	char errors[1024];

	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		0);
	assert_int_equal(cfg.postgres_url.count, 1);
	assert_string_equal(cfg.postgres_url.items[0].host, "127.0.0.1");
	assert_string_equal(cfg.postgres_url.items[0].port, "5432");
	assert_string_equal(cfg.postgres_user, "baa");
	assert_string_equal(cfg.postgres_password, "s3cret-value");
	assert_string_equal(cfg.postgres_db, "baa");
}

static void
test_serve_defaults_apply_when_unset(void **state)
{
	struct config cfg;
	char errors[1024];

	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		0);
	assert_string_equal(cfg.listen.host, "127.0.0.1");
	assert_string_equal(cfg.listen.port, "9000");
	assert_true(cfg.workers >= 1);
	assert_int_equal(cfg.shutdown_timeout, 10);
}

static void
test_each_missing_variable_has_the_expected_message(void **state)
{
	static const char *const required[] = {"POSTGRES_URL", "POSTGRES_USER",
					       "POSTGRES_PW", "POSTGRES_DB"};
	struct config cfg;
	char errors[1024], expected[128];

	for (size_t i = 0; i < 4; i++) {
		set_database_env(state);
		unsetenv(required[i]);
		assert_int_equal(
			config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
		snprintf(expected, sizeof(expected),
			 "Expected environment variable '%s' not set.\n", required[i]);
		assert_string_equal(errors, expected);
	}
}

static void
test_every_problem_is_reported_not_just_the_first(void **state)
{
	struct config cfg;
	char errors[1024];

	unsetenv("POSTGRES_USER");
	unsetenv("POSTGRES_DB");
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 2);
	assert_string_equal(errors,
			    "Expected environment variable 'POSTGRES_USER' not set.\n"
			    "Expected environment variable 'POSTGRES_DB' not set.\n");
}

static void
test_empty_value_is_refused_by_name(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("POSTGRES_PW", "", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_string_equal(errors, "Environment variable 'POSTGRES_PW' is empty.\n");
}

static void
test_serve_only_variables_are_not_read_by_database_commands(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_WORKERS", "not-a-number", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 0);
	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		1);
	assert_non_null(strstr(errors, "'BAA_WORKERS'"));
}

static void
test_invalid_worker_counts_are_refused(void **state)
{
	static const char *const bad[] = {"0", "-1", "abc", "257", "100000", "1.5", " 2"};
	struct config cfg;
	char errors[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("BAA_WORKERS", bad[i], 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		assert_non_null(
			strstr(errors, "Environment variable 'BAA_WORKERS' must be"));
	}
	setenv("BAA_WORKERS", "3", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.workers, 3);
}

static void
test_bad_database_port_is_refused_with_the_variable_name(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("POSTGRES_URL", "127.0.0.1:99999", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_string_equal(errors,
			    "Environment variable 'POSTGRES_URL' has an invalid port "
			    "'99999': expected a number from 1 to 65535.\n");
}

static void
test_listen_path_with_a_port_is_refused(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_LISTEN", "/run/baa.sock:80", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_LISTEN'"));
	setenv("BAA_LISTEN", "relative.sock", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
}

#define SERVICE_KEY "k3y-of-a-service-that-is-32-bytes+"

/* 0 when BAA_INTERNAL_LISTEN=value loads (with a service key). */
static int
internal_listen_loads(const char *value, char *errors, size_t size)
{
	struct config cfg;

	setenv("BAA_INTERNAL_LISTEN", value, 1);
	setenv("BAA_SERVICE_KEYS", "billing:" SERVICE_KEY, 1);
	return config_load(&cfg, CONFIG_SERVE, errors, size);
}

static void
test_internal_listen_takes_only_local_or_private_addresses(void **state)
{
	static const char *const accepted[] = {
		"/run/baa/internal.sock", "127.0.0.1:9100", "[::1]:9100",
		"localhost:9100",	  "10.0.0.7:9100",  "172.16.0.1:9100",
		"192.168.1.2:9100",	  "[fd00::7]:9100", "[::ffff:10.1.2.3]:9100"};
	static const char *const refused[] = {
		"0.0.0.0:9100", "203.0.113.5:9100",   "172.32.0.1:9100",
		"[::]:9100",	"[2001:db8::1]:9100", "internal.example:9100",
		"8.8.8.8:9100"};
	char errors[1024];

	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		if (internal_listen_loads(accepted[i], errors, sizeof(errors)) != 0)
			fail_msg("%s refused: %s", accepted[i], errors);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(
			internal_listen_loads(refused[i], errors, sizeof(errors)), 1);
		if (strstr(errors, "'BAA_INTERNAL_LISTEN' must be a unix-socket path, a "
				   "loopback address or a private network's") == NULL)
			fail_msg("%s: %s", refused[i], errors);
	}
}

static void
test_internal_listen_and_service_keys_go_together(void **state)
{
	struct config cfg;
	char errors[1024];

	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_false(CONFIG_HAS_INTERNAL(&cfg));
	assert_int_equal(cfg.service_keys.count, 0);

	setenv("BAA_INTERNAL_LISTEN", "127.0.0.1:9100", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_SERVICE_KEYS' is not set"));

	unsetenv("BAA_INTERNAL_LISTEN");
	setenv("BAA_SERVICE_KEYS", "billing:" SERVICE_KEY, 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_INTERNAL_LISTEN' is not set"));

	setenv("BAA_INTERNAL_LISTEN", "127.0.0.1:9000", 1); /* BAA_LISTEN's default */
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "must differ from BAA_LISTEN"));

	setenv("BAA_INTERNAL_LISTEN", "/run/baa/internal.sock", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_true(CONFIG_HAS_INTERNAL(&cfg));
	assert_int_equal(cfg.service_keys.count, 1);
	assert_string_equal(cfg.service_keys.keys[0].name, "billing");
}

static void
test_service_keys_messages_name_every_bad_entry_never_a_key(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_INTERNAL_LISTEN", "127.0.0.1:9100", 1);
	setenv("BAA_SERVICE_KEYS",
	       "billing:too-short-a-key ok:" SERVICE_KEY " " SERVICE_KEY
	       " Up:" SERVICE_KEY,
	       1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_SERVICE_KEYS' has a bad entry 1 (billing)"));
	assert_non_null(strstr(errors, "entry 3: must be name:key"));
	assert_non_null(strstr(errors, "entry 4: the name must be"));
	assert_null(strstr(errors, "too-short-a-key"));
	assert_null(strstr(errors, SERVICE_KEY));
	assert_null(strstr(errors, "k3y"));
}

static void
test_messages_never_echo_the_password(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("POSTGRES_PW", "hunter2-password", 1);
	unsetenv("POSTGRES_DB");
	setenv("POSTGRES_URL", "hunter2-password:hunter2", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 2);
	assert_null(strstr(errors, "hunter2-password"));
}

static void
test_overlong_database_name_is_refused(void **state)
{
	struct config cfg;
	char errors[1024], name[80];

	memset(name, 'd', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	setenv("POSTGRES_DB", name, 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'POSTGRES_DB'"));
}

static void
test_spotify_defaults_are_the_real_service(void **state)
{
	struct config cfg;
	char errors[1024];

	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.spotify_accounts_url, "https://accounts.spotify.com");
	assert_string_equal(cfg.spotify_api_url, "https://api.spotify.com");
	/* No scope: id, display_name and account_id need none, and development
	 * mode grants no more. */
	assert_null(cfg.spotify_scopes);
	setenv("SPOTIFY_SCOPES", "user-read-private user-read-email", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.spotify_scopes, "user-read-private user-read-email");
	setenv("SPOTIFY_SCOPES", "user-read-email\nX", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'SPOTIFY_SCOPES'"));
}

/* Unset, a client may ask for no scope baa does not ask for anyway. */
static void
test_scopes_allowed_default_to_the_scopes_asked_for(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("SPOTIFY_SCOPES", "user-read-email", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.spotify_scopes_allowed, "user-read-email");
	unsetenv("SPOTIFY_SCOPES");
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.spotify_scopes_allowed, "");
	setenv("SPOTIFY_SCOPES_ALLOWED", "user-read-email playlist-read-private", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.spotify_scopes_allowed,
			    "user-read-email playlist-read-private");
}

/* Reported at start: a login would otherwise ask for what a client may not. */
static void
test_scopes_allowed_must_hold_every_scope_asked_for(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("SPOTIFY_SCOPES", "user-read-email user-read-private streaming", 1);
	setenv("SPOTIFY_SCOPES_ALLOWED", "user-read-email playlist-read-private", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'SPOTIFY_SCOPES_ALLOWED' must include every "
				       "scope of SPOTIFY_SCOPES; it lacks: "
				       "user-read-private streaming."));
	setenv("SPOTIFY_SCOPES_ALLOWED", "user-read-email BAD", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(
		strstr(errors, "'SPOTIFY_SCOPES_ALLOWED' must be space-separated"));
}

static void
test_grant_timings_default_to_spotifys_and_are_bounded(void **state)
{
	static const struct {
		const char *name, *value;
	} bad[] = {
		{"BAA_GRANT_LIFETIME", "59"},
		{"BAA_GRANT_LIFETIME", "316224001"},
		{"BAA_GRANT_LIFETIME", "6 months"},
		{"BAA_REAUTH_WINDOW", "31622401"},
		{"BAA_REAUTH_WINDOW", "-1"},
		{"BAA_INVALID_GRANT_CONFIRM", "86401"},
		{"BAA_INVALID_GRANT_CONFIRM", "1e3"},
	};
	struct config cfg;
	char errors[1024], expected[64];

	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.grant_lifetime, 180 * 86400);
	assert_int_equal(cfg.reauth_window, 14 * 86400);
	assert_int_equal(cfg.invalid_grant_confirm, 600);
	setenv("BAA_GRANT_LIFETIME", "60", 1);
	setenv("BAA_REAUTH_WINDOW", "0", 1);
	setenv("BAA_INVALID_GRANT_CONFIRM", "0", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.grant_lifetime, 60);
	assert_int_equal(cfg.reauth_window, 0);
	assert_int_equal(cfg.invalid_grant_confirm, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_database_env(state);
		setenv(bad[i].name, bad[i].value, 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		snprintf(expected, sizeof(expected), "'%s' must be", bad[i].name);
		assert_non_null(strstr(errors, expected));
	}
}

static void
test_spotify_variables_are_required_by_serve(void **state)
{
	static const char *const required[] = {"SPOTIFY_CLIENT_ID",
					       "SPOTIFY_CLIENT_SECRET",
					       "SPOTIFY_REDIRECT_URI", "BAA_SECRET_KEY"};
	struct config cfg;
	char errors[1024], expected[128];

	for (size_t i = 0; i < 4; i++) {
		set_database_env(state);
		unsetenv(required[i]);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		snprintf(expected, sizeof(expected),
			 "Expected environment variable '%s' not set.\n", required[i]);
		assert_string_equal(errors, expected);
	}
}

static void
test_redirect_uris_spotify_accepts_are_accepted(void **state)
{
	static const char *const good[] = {
		"https://baa.example/callback", "https://baa.example:8443/callback",
		"http://127.0.0.1:8443/callback", "http://[::1]:8080/callback"};
	struct config cfg;
	char errors[1024];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		setenv("SPOTIFY_REDIRECT_URI", good[i], 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 0);
	}
}

static void
test_redirect_uris_spotify_refuses_are_refused_with_a_reason(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("SPOTIFY_REDIRECT_URI", "http://localhost:8080/callback", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'localhost', which Spotify refuses"));
	assert_non_null(strstr(errors, "http://127.0.0.1:PORT"));

	setenv("SPOTIFY_REDIRECT_URI", "http://baa.example/callback", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "must use https"));

	setenv("SPOTIFY_REDIRECT_URI", "http://10.0.0.1/callback", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	setenv("SPOTIFY_REDIRECT_URI", "https://baa.example/callback#x", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	setenv("SPOTIFY_REDIRECT_URI", "not a url", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	setenv("SPOTIFY_REDIRECT_URI", "ftp://baa.example/callback", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
}

static void
test_short_secret_key_is_refused_without_echoing_it(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_SECRET_KEY", "too-short-secret-value", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_SECRET_KEY' "));
	assert_non_null(strstr(errors, "must be at least 32 bytes"));
	assert_null(strstr(errors, "too-short-secret-value"));
}

static void
test_secret_key_lists_secrets_the_first_of_which_signs(void **state)
{
	static const char two[] = "0123456789abcdef0123456789abcdef "
				  "an-older-secret-key-of-32-bytes-or-more";
	static const char second_short[] = "0123456789abcdef0123456789abcdef "
					   "short-second-secret";
	struct config cfg;
	char errors[1024];

	setenv("BAA_SECRET_KEY", two, 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.secret_key, two);

	setenv("BAA_SECRET_KEY", second_short, 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_SECRET_KEY' "));
	assert_non_null(strstr(errors, "secret 2 "));
	assert_null(strstr(errors, "short-second-secret"));
	assert_null(strstr(errors, "0123456789abcdef"));

	setenv("BAA_SECRET_KEY", "   ", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_SECRET_KEY' "));
}

static void
test_session_lifetimes_default_and_are_bounded(void **state)
{
	static const struct {
		const char *name, *value;
	} bad[] = {
		{"BAA_SESSION_TTL", "9"},
		{"BAA_SESSION_TTL", "31622401"},
		{"BAA_SESSION_TTL", "1h"},
		{"BAA_SESSION_MAX_AGE", "9"},
		{"BAA_SESSION_MAX_AGE", "31622401"},
		{"BAA_SESSION_MAX_AGE", "-1"},
	};
	struct config cfg;
	char errors[1024], expected[64];

	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.session_ttl, 30 * 86400);
	assert_int_equal(cfg.session_max_age, 90 * 86400);
	setenv("BAA_SESSION_TTL", "10", 1);
	setenv("BAA_SESSION_MAX_AGE", "10", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.session_ttl, 10);
	assert_int_equal(cfg.session_max_age, 10);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_database_env(state);
		setenv(bad[i].name, bad[i].value, 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		snprintf(expected, sizeof(expected), "'%s' must be", bad[i].name);
		assert_non_null(strstr(errors, expected));
	}
}

static void
test_a_max_age_below_the_idle_ttl_is_refused_in_one_line(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_SESSION_TTL", "3600", 1);
	setenv("BAA_SESSION_MAX_AGE", "3599", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_SESSION_MAX_AGE' must be at least"));
	assert_non_null(strstr(errors, "BAA_SESSION_TTL"));
	assert_ptr_equal(strchr(errors, '\n'), errors + strlen(errors) - 1);
	/* a TTL above the default total life, set before the cap existed, raises
	 * the unset cap to itself rather than refusing to start */
	setenv("BAA_SESSION_TTL", "15552000", 1);
	unsetenv("BAA_SESSION_MAX_AGE");
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.session_max_age, 15552000);
	setenv("BAA_SESSION_MAX_AGE", "15552000", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	/* commands that serve nothing do not judge it */
	setenv("BAA_SESSION_MAX_AGE", "3599", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 0);
}

static void
test_audit_and_housekeeping_settings_default_and_are_bounded(void **state)
{
	static const struct {
		const char *name, *value;
	} bad[] = {
		{"BAA_AUDIT_RETENTION_DAYS", "0"},
		{"BAA_AUDIT_RETENTION_DAYS", "3661"},
		{"BAA_AUDIT_RETENTION_DAYS", "90d"},
		{"BAA_HOUSEKEEPING_INTERVAL", "0"},
		{"BAA_HOUSEKEEPING_INTERVAL", "86401"},
		{"BAA_HOUSEKEEPING_INTERVAL", " 60"},
		{"BAA_INSTANCE", "two words"},
		{"BAA_INSTANCE", "a\nb"},
		{"BAA_INSTANCE", "k=v"},
		{"BAA_INSTANCE",
		 "an-instance-name-longer-than-sixty-four-bytes-is-too-long-for-a-log"},
	};
	struct config cfg;
	char errors[1024], expected[64];

	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.audit_retention_days, 90);
	assert_int_equal(cfg.housekeeping_interval, 300);
	setenv("BAA_AUDIT_RETENTION_DAYS", "1", 1);
	setenv("BAA_HOUSEKEEPING_INTERVAL", "86400", 1);
	setenv("BAA_INSTANCE", "eu-1.baa.example:9000", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.audit_retention_days, 1);
	assert_int_equal(cfg.housekeeping_interval, 86400);
	assert_string_equal(cfg.instance, "eu-1.baa.example:9000");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_database_env(state);
		setenv(bad[i].name, bad[i].value, 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		snprintf(expected, sizeof(expected), "'%s' must be", bad[i].name);
		assert_non_null(strstr(errors, expected));
	}
}

static void
test_token_keys_default_to_derived_and_malformed_ones_are_not_echoed(void **state)
{
	static const char hex_key[] =
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	struct config cfg;
	char errors[1024];

	unsetenv("BAA_TOKEN_KEY");
	assert_int_equal(config_load(&cfg, CONFIG_TOKENS, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.token_keys, "derived");
	setenv("BAA_TOKEN_KEY", hex_key, 1);
	assert_int_equal(config_load(&cfg, CONFIG_TOKENS, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.token_keys, hex_key);

	/* one hex digit short */
	setenv("BAA_TOKEN_KEY", hex_key + 1, 1);
	assert_int_equal(config_load(&cfg, CONFIG_TOKENS, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_TOKEN_KEY' has a malformed key (number 1)"));
	assert_null(strstr(errors, "0112233445566778899"));
	unsetenv("BAA_TOKEN_KEY");
	/* rotate-keys needs the secret the default key is derived from */
	unsetenv("BAA_SECRET_KEY");
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE | CONFIG_TOKENS, errors,
				     sizeof(errors)),
			 1);
	assert_non_null(strstr(errors, "'BAA_SECRET_KEY' not set"));
}

static void
test_derived_token_keys_count_one_per_secret(void **state)
{
	static const char hex_key[] =
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char secrets[8 * 41 + 1] = "", key_list[sizeof(hex_key) + 16];
	struct config cfg;
	char errors[1024];

	for (int i = 0; i < 8; i++)
		snprintf(secrets + strlen(secrets), sizeof(secrets) - strlen(secrets),
			 "%ssecret-%d-0123456789-0123456789-abc", i ? " " : "", i);
	setenv("BAA_SECRET_KEY", secrets, 1);
	setenv("BAA_TOKEN_KEY", "derived", 1);
	assert_int_equal(config_load(&cfg, CONFIG_TOKENS, errors, sizeof(errors)), 0);
	/* eight derived keys and one more: the ninth could never be loaded */
	snprintf(key_list, sizeof(key_list), "%s derived", hex_key);
	setenv("BAA_TOKEN_KEY", key_list, 1);
	assert_int_equal(config_load(&cfg, CONFIG_TOKENS, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'BAA_TOKEN_KEY' names more than 8 keys"));
	unsetenv("BAA_TOKEN_KEY");
}

static void
test_service_urls_must_be_https_unless_loopback(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("SPOTIFY_ACCOUNTS_URL", "http://127.0.0.1:9999", 1);
	setenv("SPOTIFY_API_URL", "http://127.0.0.1:9999", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	setenv("SPOTIFY_ACCOUNTS_URL", "http://accounts.example", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'SPOTIFY_ACCOUNTS_URL' must use https"));
	setenv("SPOTIFY_ACCOUNTS_URL", "https://accounts.example/", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "must not end with '/'"));
}

/* Tokens travel in the clear over http: only to this machine's stand-in. */
static void
test_plain_http_is_refused_for_any_host_but_loopback(void **state)
{
	static const char *const loopback[] = {
		"http://127.0.0.1:9999", "http://[::1]:9999", "http://localhost:9999"};
	static const char *const remote[] = {
		"http://accounts.spotify.com", "http://10.0.0.1:8080",
		"http://[2001:db8::1]", "http://127.0.0.1.example.com"};
	struct config cfg;
	char errors[1024];

	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		setenv("SPOTIFY_API_URL", loopback[i], 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 0);
		assert_string_equal(cfg.spotify_api_url, loopback[i]);
	}
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		setenv("SPOTIFY_API_URL", remote[i], 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		assert_non_null(strstr(errors, "'SPOTIFY_API_URL' must use https"));
	}
}

/* A throwaway self-signed certificate: only its PEM form matters here. */
static const char test_ca_pem[] =
	"# a comment, as bundles have\n"
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBijCCATGgAwIBAgIUcbETLnNvt2MlKOmUqDH5iKZAU94wCgYIKoZIzj0EAwIw\n"
	"GzEZMBcGA1UEAwwQYmFhIHVuaXQgdGVzdCBDQTAeFw0yNjEyMDIwMzQ5MjBaFw0z\n"
	"NjExMjkwMzQ5MjBaMBsxGTAXBgNVBAMMEGJhYSB1bml0IHRlc3QgQ0EwWTATBgcq\n"
	"hkjOPQIBBggqhkjOPQMBBwNCAARmHntPTi2SGYjuJ3gciP35LEozqdeBgYgyRkc2\n"
	"2VA4tYe0pJTVdn3sahoxNllZLSZuo4Xk8NkIhMZJBIfA6lcUo1MwUTAdBgNVHQ4E\n"
	"FgQUnyz5muO3+8CjYr3kgR6VP7JBjq4wHwYDVR0jBBgwFoAUnyz5muO3+8CjYr3k\n"
	"gR6VP7JBjq4wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBd4HXA\n"
	"7GUC5m591Im820kHq0/ajYA+Ly28WU9+LSLT6wIgBZkVNEzfuQVEqzzMpORYrQm9\n"
	"IANHfhQuFZnVV8R9/yQ=\n"
	"-----END CERTIFICATE-----\n";

/* Writes text to a new temporary file; its path goes to path. */
static void
write_temp_file(char path[64], const char *text)
{
	FILE *f;
	int fd;

	strcpy(path, "/tmp/baa-test-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void
test_ca_file_is_optional_and_a_pem_bundle_is_taken(void **state)
{
	char path[64];
	struct config cfg;
	char errors[1024];

	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_null(cfg.spotify_ca_file); /* unset: the system store */
	write_temp_file(path, test_ca_pem);
	setenv("SPOTIFY_CA_FILE", path, 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.spotify_ca_file, path);
	unlink(path);
}

static void
test_ca_file_that_is_missing_or_holds_no_certificate_is_refused(void **state)
{
	char path[64];
	struct config cfg;
	char errors[1024];

	setenv("SPOTIFY_CA_FILE", "/nonexistent/baa-ca.pem", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_string_equal(errors, "Environment variable 'SPOTIFY_CA_FILE' names a file "
				    "that cannot be read (No such file or directory).\n");
	setenv("SPOTIFY_CA_FILE", "/tmp", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'SPOTIFY_CA_FILE' must name a PEM file"));
	/* a key, or the certificate cut short: no certificate libcurl could use */
	write_temp_file(
		path,
		"-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n");
	setenv("SPOTIFY_CA_FILE", path, 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(
		errors, "'SPOTIFY_CA_FILE' names a file without a PEM certificate"));
	unlink(path);
	write_temp_file(path, "-----BEGIN CERTIFICATE-----\nMIIBijCCATGgAwIBAgIU\n");
	setenv("SPOTIFY_CA_FILE", path, 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(
		errors, "'SPOTIFY_CA_FILE' names a file without a PEM certificate"));
	unlink(path);
	setenv("SPOTIFY_CA_FILE", "", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'SPOTIFY_CA_FILE' is empty"));
}

/* The sslmode config_load gives POSTGRES_URL=url, or NULL when it refused. */
static const char *
sslmode_for(const char *url, char *errors, size_t errlen)
{
	static struct config cfg;

	setenv("POSTGRES_URL", url, 1);
	if (config_load(&cfg, CONFIG_DATABASE, errors, errlen) != 0)
		return NULL;
	return cfg.postgres_sslmode;
}

static void
test_sslmode_defaults_to_prefer_on_this_machine_only(void **state)
{
	static const char *const local[] = {"127.0.0.1:5432", "[::1]:5432",
					    "localhost:5432", "/run/postgresql"};
	char errors[1024];

	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		assert_string_equal(sslmode_for(local[i], errors, sizeof(errors)),
				    "prefer");
	/* across a network, unverified is never the default: no CA, no start */
	assert_null(sslmode_for("db.internal:5432", errors, sizeof(errors)));
	assert_string_equal(
		errors, "Environment variable 'POSTGRES_SSLROOTCERT' is not set, and "
			"POSTGRES_URL is not on this machine: set it to the PEM file "
			"of the CA that signed the server's certificate (verify-full), "
			"or choose POSTGRES_SSLMODE (require: encrypted but not "
			"verified).\n");
	assert_null(sslmode_for("10.0.0.5:6432", errors, sizeof(errors)));
	/* a list is local only when every host is */
	assert_string_equal(
		sslmode_for("127.0.0.1:5432,[::1]:5433", errors, sizeof(errors)),
		"prefer");
	assert_null(sslmode_for("127.0.0.1:5432,10.0.0.6:5432", errors, sizeof(errors)));
	/* libpq's own variable does not stand in for baa's */
	setenv("PGSSLMODE", "disable", 1);
	assert_null(sslmode_for("10.0.0.5:6432", errors, sizeof(errors)));
	assert_string_equal(sslmode_for("127.0.0.1:5432", errors, sizeof(errors)),
			    "prefer");
}

static void
test_a_root_certificate_makes_verify_full_the_default(void **state)
{
	char path[64], errors[1024];
	struct config cfg;

	write_temp_file(path, test_ca_pem);
	setenv("POSTGRES_SSLROOTCERT", path, 1);
	assert_string_equal(sslmode_for("db.internal:5432", errors, sizeof(errors)),
			    "verify-full");
	assert_string_equal(sslmode_for("127.0.0.1:5432", errors, sizeof(errors)),
			    "verify-full");
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.postgres_sslrootcert, path);
	/* an explicit mode wins, with or without the CA */
	setenv("POSTGRES_SSLMODE", "verify-ca", 1);
	assert_string_equal(sslmode_for("db.internal:5432", errors, sizeof(errors)),
			    "verify-ca");
	unsetenv("POSTGRES_SSLROOTCERT");
	for (const char *const *m =
		     (const char *const[]){"disable", "allow", "prefer", "require", NULL};
	     *m; m++) {
		setenv("POSTGRES_SSLMODE", *m, 1);
		assert_string_equal(
			sslmode_for("db.internal:5432", errors, sizeof(errors)), *m);
	}
	unlink(path);
}

static void
test_a_verifying_sslmode_without_a_root_certificate_is_refused(void **state)
{
	char errors[1024];

	setenv("POSTGRES_SSLMODE", "verify-full", 1);
	assert_null(sslmode_for("127.0.0.1:5432", errors, sizeof(errors)));
	assert_string_equal(
		errors, "Environment variable 'POSTGRES_SSLMODE' is 'verify-full', which "
			"needs POSTGRES_SSLROOTCERT: set it to the PEM file of the CA "
			"that signed the server's certificate.\n");
	setenv("POSTGRES_SSLMODE", "verify-ca", 1);
	assert_null(sslmode_for("db.internal:5432", errors, sizeof(errors)));
	assert_non_null(strstr(errors, "'POSTGRES_SSLMODE' is 'verify-ca', which needs "
				       "POSTGRES_SSLROOTCERT"));
}

static void
test_unknown_sslmodes_and_unreadable_root_certificates_are_refused(void **state)
{
	static const char *const bad[] = {"on",		 "true",     "VERIFY-FULL",
					  "verify_full", "require ", "verify-full\n"};
	struct config cfg;
	char errors[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("POSTGRES_SSLMODE", bad[i], 1);
		assert_int_equal(
			config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
		assert_string_equal(errors,
				    "Environment variable 'POSTGRES_SSLMODE' must be one "
				    "of disable, allow, prefer, require, verify-ca, "
				    "verify-full.\n");
	}
	setenv("POSTGRES_SSLMODE", "", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'POSTGRES_SSLMODE' is empty"));
	setenv("POSTGRES_SSLMODE", "verify-full", 1);
	setenv("POSTGRES_SSLROOTCERT", "/nonexistent/root.crt", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_string_equal(errors, "Environment variable 'POSTGRES_SSLROOTCERT' names a "
				    "file that cannot be read (No such file or "
				    "directory).\n");
	setenv("POSTGRES_SSLROOTCERT", "/tmp", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_non_null(strstr(errors, "'POSTGRES_SSLROOTCERT' must name a PEM file"));
}

static void
test_direct_connection_and_profile_cache_are_the_defaults(void **state)
{
	struct config cfg;
	char errors[1024];

	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		0);
	assert_int_equal(cfg.db_pooler, CONFIG_POOLER_NONE);
	assert_int_equal(cfg.profile_cache, 1);
	setenv("BAA_PROFILE_CACHE", "off", 1);
	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		0);
	assert_int_equal(cfg.profile_cache, 0);
}

static void
test_transaction_pooler_turns_the_profile_cache_off(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_DB_POOLER", "transaction", 1);
	for (int explicit = 0; explicit < 3; explicit ++) {
		if (explicit == 1)
			setenv("BAA_PROFILE_CACHE", "auto", 1);
		if (explicit == 2)
			setenv("BAA_PROFILE_CACHE", "off", 1);
		assert_int_equal(config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors,
					     sizeof(errors)),
				 0);
		assert_int_equal(cfg.db_pooler, CONFIG_POOLER_TRANSACTION);
		assert_int_equal(cfg.profile_cache, 0);
	}
	/* migrate and resetdb read the pooler too */
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.db_pooler, CONFIG_POOLER_TRANSACTION);
}

static void
test_profile_cache_on_behind_a_transaction_pooler_is_refused(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_DB_POOLER", "transaction", 1);
	setenv("BAA_PROFILE_CACHE", "on", 1);
	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		1);
	assert_non_null(strstr(errors, "'BAA_PROFILE_CACHE' is 'on'"));
	assert_non_null(strstr(errors, "BAA_DB_POOLER=transaction"));
}

static void
test_unknown_pooler_or_cache_values_are_refused(void **state)
{
	struct config cfg;
	char errors[1024];

	setenv("BAA_DB_POOLER", "statement", 1);
	setenv("BAA_PROFILE_CACHE", "yes", 1);
	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		2);
	assert_string_equal(
		errors,
		"Environment variable 'BAA_DB_POOLER' must be 'none' or 'transaction'.\n"
		"Environment variable 'BAA_PROFILE_CACHE' must be 'auto', 'on' or "
		"'off'.\n");
}

static void
test_sandbox_is_on_unless_turned_off(void **state)
{
	struct config cfg;
	char errors[1024];

	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.sandbox, 1);
	setenv("BAA_SANDBOX", "off", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.sandbox, 0);
	setenv("BAA_SANDBOX", "on", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_int_equal(cfg.sandbox, 1);
}

static void
test_sandbox_other_than_on_or_off_is_refused(void **state)
{
	static const char *const bad[] = {"yes", "0", "ON", "off ", ""};
	struct config cfg;
	char errors[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("BAA_SANDBOX", bad[i], 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		assert_string_equal(
			errors, bad[i][0] == '\0'
					? "Environment variable 'BAA_SANDBOX' is empty.\n"
					: "Environment variable 'BAA_SANDBOX' must be "
					  "'on' or 'off'.\n");
	}
}

static void
test_baa_user_is_optional_and_must_look_like_a_user_name(void **state)
{
	static const char *const bad[] = {
		"two words", "a:b", "../etc",
		"x\n",	     "",    "a-name-longer-than-thirty-two-bytes"};
	struct config cfg;
	char errors[1024];

	unsetenv("SPOTIFY_ACCOUNTS_URL"); /* left invalid by the test before */
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_null(cfg.user);
	setenv("BAA_USER", "www-data", 1);
	assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)), 0);
	assert_string_equal(cfg.user, "www-data");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("BAA_USER", bad[i], 1);
		assert_int_equal(config_load(&cfg, CONFIG_SERVE, errors, sizeof(errors)),
				 1);
		assert_non_null(strstr(errors, "'BAA_USER'"));
	}
}

/* A credentials directory as systemd makes one; its path stays in dir. */
static void
make_credentials(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/baa-unit-credentials-XXXXXX");
	assert_non_null(mkdtemp(dir));
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
}

static void
put_credential(const char *dir, const char *name, const char *text, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void
remove_credentials(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void
test_secrets_may_come_as_credentials(void **state)
{
	struct config cfg;
	char dir[64], errors[1024];

	make_credentials(dir, sizeof(dir));
	unsetenv("POSTGRES_PW");
	unsetenv("BAA_SECRET_KEY");
	put_credential(dir, "POSTGRES_PW", "pw-from-credential\n", 19);
	put_credential(dir, "BAA_SECRET_KEY", "0123456789abcdef0123456789abcdefXY\r\n",
		       36);
	/* not a secret: its file is not read, the environment's value stands */
	put_credential(dir, "POSTGRES_USER", "intruder", 8);
	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		0);
	assert_string_equal(cfg.postgres_password, "pw-from-credential");
	assert_string_equal(cfg.secret_key, "0123456789abcdef0123456789abcdefXY");
	assert_string_equal(cfg.postgres_user, "baa");
	remove_credentials(dir);
}

static void
test_credential_problems_are_named_without_the_value(void **state)
{
	struct config cfg;
	char dir[64], errors[1024], big[4097];

	make_credentials(dir, sizeof(dir));
	/* set both ways: refused, not guessed */
	put_credential(dir, "POSTGRES_PW", "pw-from-credential", 18);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_string_equal(errors, "'POSTGRES_PW' is both an environment variable and a "
				    "credential: keep one.\n");
	unsetenv("POSTGRES_PW");
	put_credential(dir, "POSTGRES_PW", "\n", 1);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_string_equal(errors, "Credential 'POSTGRES_PW' is empty.\n");
	memset(big, 'x', sizeof(big));
	put_credential(dir, "POSTGRES_PW", big, sizeof(big));
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_string_equal(errors,
			    "Credential 'POSTGRES_PW' is larger than 4096 bytes.\n");
	put_credential(dir, "POSTGRES_PW", "pw\0rest", 7);
	assert_int_equal(config_load(&cfg, CONFIG_DATABASE, errors, sizeof(errors)), 1);
	assert_string_equal(errors, "Credential 'POSTGRES_PW' holds a NUL byte.\n");
	/* a value its parser refuses: the message names the credential, not the value */
	unsetenv("BAA_SECRET_KEY");
	put_credential(dir, "POSTGRES_PW", "pw", 2);
	put_credential(dir, "BAA_SECRET_KEY", "short-secret-value", 18);
	assert_int_equal(
		config_load(&cfg, CONFIG_DATABASE | CONFIG_SERVE, errors, sizeof(errors)),
		1);
	assert_non_null(strstr(errors, "Credential 'BAA_SECRET_KEY' "));
	assert_null(strstr(errors, "short-secret-value"));
	remove_credentials(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_complete_environment_loads, set_database_env),
		cmocka_unit_test_setup(test_secrets_may_come_as_credentials,
				       set_database_env),
		cmocka_unit_test_setup(
			test_credential_problems_are_named_without_the_value,
			set_database_env),
		cmocka_unit_test_setup(test_serve_defaults_apply_when_unset,
				       set_database_env),
		cmocka_unit_test_setup(
			test_each_missing_variable_has_the_expected_message,
			set_database_env),
		cmocka_unit_test_setup(test_every_problem_is_reported_not_just_the_first,
				       set_database_env),
		cmocka_unit_test_setup(test_empty_value_is_refused_by_name,
				       set_database_env),
		cmocka_unit_test_setup(
			test_serve_only_variables_are_not_read_by_database_commands,
			set_database_env),
		cmocka_unit_test_setup(test_invalid_worker_counts_are_refused,
				       set_database_env),
		cmocka_unit_test_setup(
			test_bad_database_port_is_refused_with_the_variable_name,
			set_database_env),
		cmocka_unit_test_setup(
			test_internal_listen_takes_only_local_or_private_addresses,
			set_database_env),
		cmocka_unit_test_setup(test_internal_listen_and_service_keys_go_together,
				       set_database_env),
		cmocka_unit_test_setup(
			test_service_keys_messages_name_every_bad_entry_never_a_key,
			set_database_env),
		cmocka_unit_test_setup(test_listen_path_with_a_port_is_refused,
				       set_database_env),
		cmocka_unit_test_setup(test_messages_never_echo_the_password,
				       set_database_env),
		cmocka_unit_test_setup(test_overlong_database_name_is_refused,
				       set_database_env),
		cmocka_unit_test_setup(test_spotify_defaults_are_the_real_service,
				       set_database_env),
		cmocka_unit_test_setup(
			test_scopes_allowed_default_to_the_scopes_asked_for,
			set_database_env),
		cmocka_unit_test_setup(
			test_scopes_allowed_must_hold_every_scope_asked_for,
			set_database_env),
		cmocka_unit_test_setup(
			test_grant_timings_default_to_spotifys_and_are_bounded,
			set_database_env),
		cmocka_unit_test_setup(test_spotify_variables_are_required_by_serve,
				       set_database_env),
		cmocka_unit_test_setup(test_redirect_uris_spotify_accepts_are_accepted,
				       set_database_env),
		cmocka_unit_test_setup(
			test_redirect_uris_spotify_refuses_are_refused_with_a_reason,
			set_database_env),
		cmocka_unit_test_setup(
			test_short_secret_key_is_refused_without_echoing_it,
			set_database_env),
		cmocka_unit_test_setup(
			test_secret_key_lists_secrets_the_first_of_which_signs,
			set_database_env),
		cmocka_unit_test_setup(test_session_lifetimes_default_and_are_bounded,
				       set_database_env),
		cmocka_unit_test_setup(
			test_a_max_age_below_the_idle_ttl_is_refused_in_one_line,
			set_database_env),
		cmocka_unit_test_setup(
			test_audit_and_housekeeping_settings_default_and_are_bounded,
			set_database_env),
		cmocka_unit_test_setup(
			test_token_keys_default_to_derived_and_malformed_ones_are_not_echoed,
			set_database_env),
		cmocka_unit_test_setup(test_derived_token_keys_count_one_per_secret,
				       set_database_env),
		cmocka_unit_test_setup(test_service_urls_must_be_https_unless_loopback,
				       set_database_env),
		cmocka_unit_test_setup(
			test_plain_http_is_refused_for_any_host_but_loopback,
			set_database_env),
		cmocka_unit_test_setup(test_ca_file_is_optional_and_a_pem_bundle_is_taken,
				       set_database_env),
		cmocka_unit_test_setup(
			test_ca_file_that_is_missing_or_holds_no_certificate_is_refused,
			set_database_env),
		cmocka_unit_test_setup(
			test_sslmode_defaults_to_prefer_on_this_machine_only,
			set_database_env),
		cmocka_unit_test_setup(
			test_a_root_certificate_makes_verify_full_the_default,
			set_database_env),
		cmocka_unit_test_setup(
			test_a_verifying_sslmode_without_a_root_certificate_is_refused,
			set_database_env),
		cmocka_unit_test_setup(
			test_unknown_sslmodes_and_unreadable_root_certificates_are_refused,
			set_database_env),
		cmocka_unit_test_setup(
			test_direct_connection_and_profile_cache_are_the_defaults,
			set_database_env),
		cmocka_unit_test_setup(
			test_transaction_pooler_turns_the_profile_cache_off,
			set_database_env),
		cmocka_unit_test_setup(
			test_profile_cache_on_behind_a_transaction_pooler_is_refused,
			set_database_env),
		cmocka_unit_test_setup(test_unknown_pooler_or_cache_values_are_refused,
				       set_database_env),
		cmocka_unit_test_setup(
			test_baa_user_is_optional_and_must_look_like_a_user_name,
			set_database_env),
		cmocka_unit_test_setup(test_sandbox_is_on_unless_turned_off,
				       set_database_env),
		cmocka_unit_test_setup(test_sandbox_other_than_on_or_off_is_refused,
				       set_database_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
