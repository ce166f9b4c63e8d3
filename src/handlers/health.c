/*
 * Liveness and readiness probes for load balancers and orchestrators.
 * /healthz never touches the database: a worker that answers is alive.
 * /readyz answers 200 only when this worker's database connection works
 * and the schema is at the version this binary expects.
 */
#include "handlers.h"

#include <stdlib.h>

#include "../db.h"
#include "../schema.h"

void
health_live(const struct request *req, struct response *res)
{
	response_json_string(res, 200, "status", "ok");
}

void
health_ready(const struct request *req, struct response *res)
{
	PGresult *result;
	int version;

	switch (db_exec(req->db, &schema_version_statement, NULL, &result)) {
	case DB_OK: break;
	case DB_UNAVAILABLE: response_database_unavailable(res); return;
	case DB_QUERY_FAILED:
		response_error(res, 503, "database schema not migrated");
		return;
	}
	version = atoi(PQgetvalue(result, 0, 0));
	PQclear(result);
	if (version < schema_latest_version()) {
		response_error(res, 503, "database schema not migrated");
		return;
	}
	response_json_string(res, 200, "status", "ready");
}
