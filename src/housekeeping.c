/*
 * The schedule: a first run within one interval of the worker's start, at
 * a random point so that workers started together do not run together,
 * then one interval (plus up to a quarter more, at random) after each.
 */
#include "housekeeping.h"

#include "audit.h"
#include "crypto.h"
#include "log.h"
#include "sessions.h"

#define BATCH 500

static long long
jitter_ms(long long range_ms)
{
	unsigned int r = 0;

	if (range_ms <= 0 || crypto_random(&r, sizeof(r)) < 0)
		return 0;
	return (long long)(r % (unsigned long long)range_ms);
}

long long
housekeeping_wait_ms(struct housekeeping *h, const struct db *db, long long now_ms)
{
	long long interval_ms = (long long)db->cfg->housekeeping_interval * 1000;

	if (h->next_ms == 0)
		h->next_ms = now_ms + jitter_ms(interval_ms);
	return h->next_ms > now_ms ? h->next_ms - now_ms : 0;
}

void
housekeeping_run(struct housekeeping *h, struct db *db, long long now_ms)
{
	long long interval_ms = (long long)db->cfg->housekeeping_interval * 1000;
	int sessions, events;

	if (housekeeping_wait_ms(h, db, now_ms) > 0)
		return;
	h->next_ms = now_ms + interval_ms + jitter_ms(interval_ms / 4);
	sessions = sessions_prune(db, BATCH);
	events = audit_prune(db, BATCH);
	if (sessions != 0 || events != 0)
		log_event(sessions < 0 || events < 0 ? LOG_WARN : LOG_INFO,
			  "housekeeping", LOG_INT("expired_sessions_deleted", sessions),
			  LOG_INT("audit_events_deleted", events));
}
