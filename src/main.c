/*
 * baa's command line: serve, resetdb, migrate, rotate-keys. Configuration comes from
 * the environment only and is checked in full before any work starts.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "pause.h"
#include "privileges.h"
#include "rotate.h"
#include "router.h"
#include "schema.h"
#include "session.h"
#include "spotify.h"
#include "tokenbox.h"

/*
 * First thing in serve and rotate-keys, whatever user they start as: their
 * environment already holds the secrets. Started as the service user, no
 * credential ever changes, so nothing else would clear the flag.
 */
static int
forbid_dumps(const char *command)
{
	if (privileges_forbid_dumps() == 0)
		return 0;
	fprintf(stderr, "baa %s: prctl(PR_SET_DUMPABLE): %s\n", command, strerror(errno));
	return -1;
}

/* sysexits.h: a configuration error, distinct from a failure at work. */
#define EXIT_CONFIG 78
#define EXIT_USAGE 2

static const char usage[] =
	"usage: baa COMMAND\n"
	"\n"
	"commands:\n"
	"  serve        run the FastCGI server (master and preforked workers)\n"
	"  resetdb      drop and recreate the database and its tables\n"
	"  migrate      apply the schema migrations not applied yet\n"
	"  rotate-keys  encrypt every stored token again under the first key of\n"
	"               BAA_TOKEN_KEY (after a new key was put first)\n"
	"\n"
	"options:\n"
	"  --help       show this help\n"
	"  --version    show the version\n"
	"\n"
	"Configuration is read from the environment: POSTGRES_URL, POSTGRES_USER,\n"
	"POSTGRES_PW, POSTGRES_DB; serve also needs SPOTIFY_CLIENT_ID,\n"
	"SPOTIFY_CLIENT_SECRET, SPOTIFY_REDIRECT_URI and BAA_SECRET_KEY, and reads\n"
	"BAA_TOKEN_KEY, BAA_LISTEN, BAA_WORKERS and more; started as root, it needs\n"
	"BAA_USER, the unprivileged user to run as. rotate-keys also needs\n"
	"BAA_SECRET_KEY and reads BAA_TOKEN_KEY. See README.md.\n";

static int
load_config(struct config *cfg, unsigned scopes)
{
	char errors[4096];

	if (config_load(cfg, scopes, errors, sizeof(errors)) > 0) {
		fputs(errors, stderr);
		return -1;
	}
	return 0;
}

/*
 * The name the audit trail gives what writes it. BAA_INSTANCE unset, for
 * serve "<host name>/<BAA_LISTEN>", which tells apart the instances of one
 * host and of several; for a command "<host name>/<command>".
 */
static void
default_instance(struct config *cfg, const char *command)
{
	static char name[64 + ADDRESS_HOST_MAX + 8 + 2];
	char host[64] = "", listen[ADDRESS_HOST_MAX + 8];

	if (cfg->instance)
		return;
	gethostname(host, sizeof(host) - 1);
	if (command == NULL)
		address_format(&cfg->listen, listen, sizeof(listen));
	snprintf(name, sizeof(name), "%s/%s", host, command ? command : listen);
	cfg->instance = name;
}

static int
cmd_serve(void)
{
	static struct config cfg;
	struct privileges privs;
	char err[256];

	if (forbid_dumps("serve") < 0)
		return 1;
	if (load_config(&cfg, CONFIG_DATABASE | CONFIG_SERVE | CONFIG_TOKENS) < 0)
		return EXIT_CONFIG;
	if (privileges_plan(cfg.user, &privs, err, sizeof(err)) < 0) {
		fprintf(stderr, "baa serve: %s\n", err);
		return EXIT_CONFIG;
	}
	default_instance(&cfg, NULL);
	/* Once, before the fork: every worker shares the keys and curl's globals. */
	if (session_init(cfg.secret_key) < 0 ||
	    tokenbox_init(cfg.token_keys, cfg.secret_key) < 0 ||
	    spotify_global_init() < 0 || metrics_init(app_route_count) < 0 ||
	    pause_init() < 0) {
		fputs("baa serve: could not initialise libcrypto, libcurl, the "
		      "metrics or the shared pause\n",
		      stderr);
		return 1;
	}
	return master_run(&cfg, &privs);
}

static int
cmd_resetdb(void)
{
	struct config cfg;
	char err[1024];

	if (load_config(&cfg, CONFIG_DATABASE) < 0)
		return EXIT_CONFIG;
	/* A pooler keeps server connections into the database being dropped
	 * and need not lead to the maintenance database at all. */
	if (cfg.db_pooler != CONFIG_POOLER_NONE) {
		fputs("baa resetdb: drops and recreates the database, which needs a "
		      "direct connection: point POSTGRES_URL at PostgreSQL itself and "
		      "unset BAA_DB_POOLER\n",
		      stderr);
		return EXIT_CONFIG;
	}
	if (schema_reset(&cfg, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "baa resetdb: %s\n", err);
		return 1;
	}
	return 0;
}

static int
cmd_migrate(void)
{
	struct config cfg;
	char err[1024];
	PGconn *conn;
	int applied;

	if (load_config(&cfg, CONFIG_DATABASE) < 0)
		return EXIT_CONFIG;
	conn = db_connect(&cfg, NULL, err, sizeof(err));
	if (conn == NULL) {
		fprintf(stderr, "baa migrate: %s\n", err);
		return 1;
	}
	applied = schema_migrate(conn, stdout, err, sizeof(err));
	PQfinish(conn);
	if (applied < 0) {
		fprintf(stderr, "baa migrate: %s\n", err);
		return 1;
	}
	printf("Schema is at version %d (%d migration%s applied).\n",
	       schema_latest_version(), applied, applied == 1 ? "" : "s");
	return 0;
}

static int
cmd_rotate_keys(void)
{
	struct config cfg;
	char err[1024];
	int rc;

	if (forbid_dumps("rotate-keys") < 0)
		return 1;
	if (load_config(&cfg, CONFIG_DATABASE | CONFIG_TOKENS) < 0)
		return EXIT_CONFIG;
	default_instance(&cfg, "rotate-keys");
	if (tokenbox_init(cfg.token_keys, cfg.secret_key) < 0) {
		fputs("baa rotate-keys: could not load the token keys\n", stderr);
		return 1;
	}
	rc = rotate_keys(&cfg, stdout, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "baa rotate-keys: %s\n", err);
	else if (rc > 0)
		fputs("baa rotate-keys: some tokens did not open with any key of "
		      "BAA_TOKEN_KEY; their rows are left as they were\n",
		      stderr);
	return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *command = argc > 1 ? argv[1] : NULL;

	log_detect_journal();
	if (command == NULL) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
	    strcmp(command, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(command, "--version") == 0) {
		printf("baa %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (argc > 2) {
		fprintf(stderr, "baa: '%s' takes no arguments\n\n%s", command, usage);
		return EXIT_USAGE;
	}
	if (strcmp(command, "serve") == 0)
		return cmd_serve();
	if (strcmp(command, "resetdb") == 0)
		return cmd_resetdb();
	if (strcmp(command, "migrate") == 0)
		return cmd_migrate();
	if (strcmp(command, "rotate-keys") == 0)
		return cmd_rotate_keys();
	fprintf(stderr, "baa: unknown command '%.32s'\n\n%s", command, usage);
	return EXIT_USAGE;
}
