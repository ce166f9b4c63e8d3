/*
 * The database schema: migrations embedded from sql/ at build time,
 * applied in order and recorded in schema_migrations.
 */
#ifndef BAA_SCHEMA_H
#define BAA_SCHEMA_H

#include <stdio.h>
#include <libpq-fe.h>

#include "config.h"
#include "db.h"

struct migration {
	int version;
	const char *name;
	const char *sql;
};

/* Generated from sql/ (src/sql_embedded.c), in ascending version order. */
extern const struct migration schema_migrations[];
extern const size_t schema_migration_count;

/* Reads the newest applied version: one row, one column. */
extern const struct db_statement schema_version_statement;

int schema_latest_version(void);

/*
 * Applies, in one transaction, every migration the database has not
 * recorded yet; each applied one is reported on out when out is not NULL.
 * Returns how many were applied, or -1 with the reason in err.
 */
int schema_migrate(PGconn *conn, FILE *out, char *err, size_t errlen);

/*
 * Drops the configured database (if it exists, even with sessions
 * connected), creates it and applies the schema, saying each step on out.
 */
int schema_reset(const struct config *cfg, FILE *out, char *err, size_t errlen);

#endif
