/*
 * migrate and resetdb. The SQL here is baa's own (no outside input except
 * the database name, which is quoted with PQescapeIdentifier).
 */
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Concurrent migrates (several instances starting at once) take turns. */
#define MIGRATE_LOCK_SQL "SELECT pg_advisory_xact_lock(7346571)"

#define MIGRATIONS_TABLE_SQL                                                             \
	"CREATE TABLE IF NOT EXISTS schema_migrations ("                                 \
	" version integer PRIMARY KEY,"                                                  \
	" name text NOT NULL,"                                                           \
	" applied_at timestamptz NOT NULL DEFAULT now())"

const struct db_statement schema_version_statement = {
	.name = "schema_version",
	.sql = "SELECT coalesce(max(version), 0) FROM schema_migrations",
	.nparams = 0,
};

int
schema_latest_version(void)
{
	return schema_migration_count
		       ? schema_migrations[schema_migration_count - 1].version
		       : 0;
}

/* Runs one of our own statements; 0 when the server accepted it. */
static int
run(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(err, errlen, "%s",
			 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

static int
is_applied(const PGresult *applied, int version)
{
	for (int i = 0; i < PQntuples(applied); i++)
		if (atoi(PQgetvalue(applied, i, 0)) == version)
			return 1;
	return 0;
}

static int
apply_one(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
	char version[16];
	const char *params[2] = {version, m->name};
	PGresult *res;
	int ok;

	if (run(conn, m->sql, err, errlen) < 0)
		return -1;
	snprintf(version, sizeof(version), "%d", m->version);
	res = PQexecParams(
		conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
		NULL, params, NULL, NULL, 0);
	ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(err, errlen, "%s",
			 res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

int
schema_migrate(PGconn *conn, FILE *out, char *err, size_t errlen)
{
	PGresult *applied = NULL;
	int count = 0;

	if (run(conn, "BEGIN", err, errlen) < 0 ||
	    run(conn, MIGRATE_LOCK_SQL, err, errlen) < 0 ||
	    run(conn, MIGRATIONS_TABLE_SQL, err, errlen) < 0)
		goto fail;

	applied = PQexec(conn, "SELECT version FROM schema_migrations");
	if (applied == NULL || PQresultStatus(applied) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
		goto fail;
	}
	for (size_t i = 0; i < schema_migration_count; i++) {
		const struct migration *m = &schema_migrations[i];
		if (is_applied(applied, m->version))
			continue;
		if (apply_one(conn, m, err, errlen) < 0) {
			char why[512];
			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen, "migration %s failed: %s", m->name, why);
			goto fail;
		}
		if (out)
			fprintf(out, "Applied %s.\n", m->name);
		count++;
	}
	PQclear(applied);
	if (run(conn, "COMMIT", err, errlen) < 0)
		return -1;
	return count;
fail:
	PQclear(applied);
	/* The transaction is dead already; ROLLBACK only tidies the session. */
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}

static int
database_exists(PGconn *conn, const char *name, char *err, size_t errlen)
{
	const char *params[1] = {name};
	PGresult *res = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1",
				     1, NULL, params, NULL, NULL, 0);
	int exists = -1;

	if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
		exists = PQntuples(res) > 0;
	else
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
	PQclear(res);
	return exists;
}

/* Runs "<verb> <quoted database name><suffix>". */
static int
run_on_database(PGconn *conn, const char *verb, const char *name, const char *suffix,
		char *err, size_t errlen)
{
	char *ident = PQescapeIdentifier(conn, name, strlen(name));
	char *sql = NULL;
	int rc = -1;

	if (ident == NULL) {
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
		return -1;
	}
	if (asprintf(&sql, "%s %s%s", verb, ident, suffix) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = run(conn, sql, err, errlen);
out:
	free(sql);
	PQfreemem(ident);
	return rc;
}

int
schema_reset(const struct config *cfg, FILE *out, char *err, size_t errlen)
{
	const char *name = cfg->postgres_db;
	PGconn *admin, *conn = NULL;
	int exists, rc = -1;

	/* DROP DATABASE cannot run inside the database it drops. */
	admin = db_connect(cfg, "postgres", err, errlen);
	if (admin == NULL)
		return -1;
	exists = database_exists(admin, name, err, errlen);
	if (exists < 0)
		goto out;
	if (exists) {
		fputs("Deleting database.\n", out);
		fflush(out);
		if (run_on_database(admin, "DROP DATABASE", name, " WITH (FORCE)", err,
				    errlen) < 0)
			goto out;
	}
	fputs("Creating database.\n", out);
	fflush(out);
	if (run_on_database(admin, "CREATE DATABASE", name, "", err, errlen) < 0)
		goto out;

	conn = db_connect(cfg, name, err, errlen);
	if (conn == NULL)
		goto out;
	fputs("Creating tables.\n", out);
	fflush(out);
	if (schema_migrate(conn, NULL, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	if (conn)
		PQfinish(conn);
	PQfinish(admin);
	return rc;
}
