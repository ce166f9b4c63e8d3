/*
 * Instance-wide counters in shared memory, and their Prometheus text form.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "http_status.h"
#include "pause.h"
#include "router.h"
#include "services.h"

static const double bucket_ms[] = {0.25, 0.5, 1,   2.5, 5,    10,   25,
				   50,	 100, 250, 500, 1000, 2500, 5000};
#define BUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

static const char *const call_labels[METRICS_CALL_COUNT] = {"authorization_code",
							    "refresh_token", "me"};
static const char *const outcome_labels[METRICS_OUTCOME_COUNT] = {
	"ok",		"invalid_grant",  "unauthorized", "forbidden",
	"rate_limited", "quota_exceeded", "failed",	  "paused"};
static const char *const rate_limit_labels[METRICS_RATE_LIMIT_COUNT] = {"short_term",
									"quota_exceeded"};
static const char *const session_source_labels[METRICS_SESSION_SOURCE_COUNT] = {
	"cache", "batch", "alone"};

struct route_counters {
	uint64_t by_status[HTTP_STATUS_COUNT];
	uint64_t buckets[BUCKETS]; /* non-cumulative; summed when rendered */
	uint64_t count;
	uint64_t sum_us;
};

struct shared {
	size_t route_count;
	struct route_counters routes[ROUTES_MAX + 1];
	uint64_t db_reconnects;
	uint64_t request_timeouts;
	uint64_t db_errors;
	uint64_t db_batches;
	uint64_t db_batched_requests;
	uint64_t session_lookups[METRICS_SESSION_SOURCE_COUNT];
	uint64_t spotify[METRICS_CALL_COUNT][METRICS_OUTCOME_COUNT];
	uint64_t rate_limited[METRICS_RATE_LIMIT_COUNT];
	uint64_t worker_restarts;
	/* The last row: calls whose key named no service. */
	uint64_t internal[SERVICES_MAX + 1][METRICS_INTERNAL_COUNT];
};

static struct shared *shared;

int
metrics_init(size_t route_count)
{
	if (route_count > ROUTES_MAX)
		return -1;
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		shared = NULL;
		return -1;
	}
	memset(shared, 0, sizeof(*shared));
	shared->route_count = route_count;
	return 0;
}

static void
add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

void
metrics_request(size_t route, int status, double duration_ms)
{
	struct route_counters *r;
	size_t b = 0;

	if (shared == NULL)
		return;
	r = &shared->routes[route < shared->route_count ? route : shared->route_count];
	add(&r->by_status[http_status_index(status)], 1);
	while (b < BUCKETS && duration_ms > bucket_ms[b])
		b++;
	if (b < BUCKETS)
		add(&r->buckets[b], 1);
	add(&r->count, 1);
	add(&r->sum_us, (uint64_t)(duration_ms * 1000.0));
}

void
metrics_db_reconnect(void)
{
	if (shared)
		add(&shared->db_reconnects, 1);
}

void
metrics_request_timeout(void)
{
	if (shared)
		add(&shared->request_timeouts, 1);
}

void
metrics_db_error(void)
{
	if (shared)
		add(&shared->db_errors, 1);
}

void
metrics_db_batch(int requests)
{
	if (shared) {
		add(&shared->db_batches, 1);
		add(&shared->db_batched_requests, (uint64_t)requests);
	}
}

void
metrics_session_lookup(enum metrics_session_source source)
{
	if (shared)
		add(&shared->session_lookups[source], 1);
}

void
metrics_spotify(enum metrics_spotify_call call, enum metrics_spotify_outcome outcome)
{
	if (shared)
		add(&shared->spotify[call][outcome], 1);
}

void
metrics_spotify_rate_limited(enum metrics_rate_limit reason)
{
	if (shared)
		add(&shared->rate_limited[reason], 1);
}

void
metrics_worker_restart(void)
{
	if (shared)
		add(&shared->worker_restarts, 1);
}

void
metrics_internal_call(int service, enum metrics_internal_outcome outcome)
{
	if (shared)
		add(&shared->internal[service >= 0 && service < SERVICES_MAX
					      ? service
					      : SERVICES_MAX][outcome],
		    1);
}

struct text {
	char *buf;
	size_t size;
	size_t len;
	int overflow;
};

static void emit(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
emit(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->size - t->len)
		t->overflow = 1;
	else
		t->len += (size_t)n;
}

static void
render_requests(struct text *t, const char *const *route_names)
{
	emit(t, "# HELP baa_requests_total Requests answered, by route and status.\n"
		"# TYPE baa_requests_total counter\n");
	for (size_t r = 0; r <= shared->route_count; r++) {
		const char *name = r < shared->route_count ? route_names[r] : "none";
		for (int s = 0; s < HTTP_STATUS_COUNT; s++) {
			uint64_t n = get(&shared->routes[r].by_status[s]);
			if (n)
				emit(t,
				     "baa_requests_total{route=\"%s\",status=\"%s\"} "
				     "%llu\n",
				     name, http_status_label((enum http_status_index)s),
				     (unsigned long long)n);
		}
	}
	emit(t,
	     "# HELP baa_request_duration_seconds Time from request parsed to response "
	     "written.\n# TYPE baa_request_duration_seconds histogram\n");
	for (size_t r = 0; r <= shared->route_count; r++) {
		const struct route_counters *c = &shared->routes[r];
		const char *name = r < shared->route_count ? route_names[r] : "none";
		uint64_t cumulative = 0, count = get(&c->count);

		if (count == 0)
			continue;
		for (size_t b = 0; b < BUCKETS; b++) {
			cumulative += get(&c->buckets[b]);
			emit(t,
			     "baa_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"}"
			     " %llu\n",
			     name, bucket_ms[b] / 1000.0, (unsigned long long)cumulative);
		}
		emit(t,
		     "baa_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
		     "%llu\n",
		     name, (unsigned long long)count);
		emit(t, "baa_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
		     (double)get(&c->sum_us) / 1e6);
		emit(t, "baa_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
		     (unsigned long long)count);
	}
}

static void
render_pause(struct text *t)
{
	enum pause_reason reason;
	long long left_ms = pause_remaining_ms(&reason);

	emit(t, "# HELP baa_spotify_rate_limited_total 429 answers from Spotify, by "
		"reason (quota_exceeded: the app's quota is used up).\n"
		"# TYPE baa_spotify_rate_limited_total counter\n");
	for (int r = 0; r < METRICS_RATE_LIMIT_COUNT; r++)
		emit(t, "baa_spotify_rate_limited_total{reason=\"%s\"} %llu\n",
		     rate_limit_labels[r],
		     (unsigned long long)get(&shared->rate_limited[r]));
	emit(t, "# HELP baa_spotify_paused Whether calls to Spotify are paused after a "
		"429 (here or at another instance), by the 429's reason.\n"
		"# TYPE baa_spotify_paused gauge\n");
	for (int r = PAUSE_SHORT_TERM; r <= PAUSE_QUOTA_EXCEEDED; r++)
		emit(t, "baa_spotify_paused{reason=\"%s\"} %d\n",
		     pause_reason_name((enum pause_reason)r),
		     left_ms > 0 && (int)reason == r);
	emit(t,
	     "# HELP baa_spotify_pause_remaining_seconds Seconds until calls to "
	     "Spotify resume (0: not paused).\n"
	     "# TYPE baa_spotify_pause_remaining_seconds gauge\n"
	     "baa_spotify_pause_remaining_seconds %.3f\n",
	     (double)left_ms / 1000.0);
}

/* Only the rows that happened: sixteen services by nine outcomes is a lot of zeros. */
static void
render_internal(struct text *t, const struct service_keys *services)
{
	if (services == NULL || services->count == 0)
		return;
	emit(t, "# HELP baa_internal_calls_total Calls of backend services on the "
		"internal listener, by service and outcome (service \"none\": no "
		"right key).\n# TYPE baa_internal_calls_total counter\n");
	for (int s = 0; s <= services->count; s++) {
		int row = s < services->count ? s : SERVICES_MAX;
		const char *name = s < services->count ? services->keys[s].name : "none";
		for (int o = 0; o < METRICS_INTERNAL_COUNT; o++) {
			uint64_t n = get(&shared->internal[row][o]);
			if (n || (o == METRICS_INTERNAL_OK && row != SERVICES_MAX))
				emit(t,
				     "baa_internal_calls_total{service=\"%s\","
				     "outcome=\"%s\"} %llu\n",
				     name,
				     metrics_internal_label(
					     (enum metrics_internal_outcome)o),
				     (unsigned long long)n);
		}
	}
}

static void
render_database(struct text *t)
{
	emit(t,
	     "# HELP baa_db_batches_total Statements that checked the sessions of "
	     "several requests of one wake-up of a worker at once.\n"
	     "# TYPE baa_db_batches_total counter\nbaa_db_batches_total %llu\n",
	     (unsigned long long)get(&shared->db_batches));
	emit(t,
	     "# HELP baa_db_batched_requests_total Requests whose session those "
	     "statements checked.\n"
	     "# TYPE baa_db_batched_requests_total counter\n"
	     "baa_db_batched_requests_total %llu\n",
	     (unsigned long long)get(&shared->db_batched_requests));
	emit(t,
	     "# HELP baa_session_lookups_total Session checks, by where the answer came "
	     "from.\n# TYPE baa_session_lookups_total counter\n");
	for (int s = 0; s < METRICS_SESSION_SOURCE_COUNT; s++)
		emit(t, "baa_session_lookups_total{source=\"%s\"} %llu\n",
		     session_source_labels[s],
		     (unsigned long long)get(&shared->session_lookups[s]));
}

size_t
metrics_render(char *out, size_t size, const char *const *route_names,
	       const struct service_keys *services)
{
	struct text t = {out, size, 0, 0};

	if (shared == NULL)
		return 0;
	render_requests(&t, route_names);
	emit(&t,
	     "# HELP baa_db_reconnects_total Database connections re-opened by workers.\n"
	     "# TYPE baa_db_reconnects_total counter\nbaa_db_reconnects_total %llu\n",
	     (unsigned long long)get(&shared->db_reconnects));
	emit(&t,
	     "# HELP baa_request_timeouts_total FastCGI connections closed because a "
	     "request did not arrive whole within BAA_IO_TIMEOUT.\n"
	     "# TYPE baa_request_timeouts_total counter\nbaa_request_timeouts_total %llu\n",
	     (unsigned long long)get(&shared->request_timeouts));
	emit(&t,
	     "# HELP baa_db_errors_total Database statements that failed.\n"
	     "# TYPE baa_db_errors_total counter\nbaa_db_errors_total %llu\n",
	     (unsigned long long)get(&shared->db_errors));
	render_database(&t);
	emit(&t,
	     "# HELP baa_spotify_calls_total Calls to Spotify, by endpoint and outcome.\n"
	     "# TYPE baa_spotify_calls_total counter\n");
	for (int c = 0; c < METRICS_CALL_COUNT; c++)
		for (int o = 0; o < METRICS_OUTCOME_COUNT; o++)
			emit(&t,
			     "baa_spotify_calls_total{endpoint=\"%s\",outcome=\"%s\"} "
			     "%llu\n",
			     call_labels[c], outcome_labels[o],
			     (unsigned long long)get(&shared->spotify[c][o]));
	render_pause(&t);
	emit(&t,
	     "# HELP baa_worker_restarts_total Workers that died and were replaced.\n"
	     "# TYPE baa_worker_restarts_total counter\nbaa_worker_restarts_total %llu\n",
	     (unsigned long long)get(&shared->worker_restarts));
	render_internal(&t, services);
	return t.overflow ? 0 : t.len;
}
