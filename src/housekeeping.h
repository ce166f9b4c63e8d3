/*
 * Deletes what has outlived its use, a bounded batch at a time, between
 * requests (never as part of one): sessions expired for a day, and audit
 * events older than BAA_AUDIT_RETENTION_DAYS. Every worker does it every
 * BAA_HOUSEKEEPING_INTERVAL or so; the batches are small enough that
 * several workers doing it at once cost nothing worth coordinating.
 */
#ifndef BAA_HOUSEKEEPING_H
#define BAA_HOUSEKEEPING_H

#include "db.h"

struct housekeeping {
	long long next_ms; /* monotonic; 0: not scheduled yet */
};

/* Milliseconds until the next run is due (0: now), from now_ms. */
long long housekeeping_wait_ms(struct housekeeping *h, const struct db *db,
			       long long now_ms);

/* Runs a batch when due and schedules the next. */
void housekeeping_run(struct housekeeping *h, struct db *db, long long now_ms);

#endif
