/*
 * Key rotation, a batch of rows at a time: each batch locks its rows
 * (FOR UPDATE) so that a refresh running at the same moment in a worker
 * waits for it instead of being overwritten, and commits before the next,
 * so that no lock is held for long and an interrupted run keeps its work.
 */
#include "rotate.h"

#include "db.h"
#include "tokenbox.h"
#include "users.h"

#define ROTATE_BATCH 100

int
rotate_keys(const struct config *cfg, FILE *out, char *err, size_t errlen)
{
	struct users_reseal_counts counts = {0, 0, 0};
	long long after = 0;
	struct db db;
	int rows, rc = 0;

	db_init(&db, cfg);
	do {
		struct users_reseal_counts batch = {0, 0, 0};

		rows = -1;
		if (db_begin(&db) == DB_OK)
			rows = users_reseal_batch(&db, &after, ROTATE_BATCH, &batch);
		if (rows < 0 || db_commit(&db) != DB_OK) {
			db_rollback(&db);
			snprintf(err, errlen,
				 "the database failed after %lld users (see the log "
				 "above); "
				 "run it again",
				 counts.users);
			rc = -1;
			break;
		}
		counts.users += batch.users;
		counts.resealed += batch.resealed;
		counts.unreadable += batch.unreadable;
	} while (rows > 0);
	db_close(&db);
	fprintf(out,
		"Re-encrypted %lld tokens of %lld users under key %s; %lld could not be "
		"decrypted.\n",
		counts.resealed, counts.users, tokenbox_current_kid(), counts.unreadable);
	if (rc == 0 && counts.unreadable > 0)
		rc = 1;
	return rc;
}
