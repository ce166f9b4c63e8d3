/*
 * The table of checked sessions (session_cache.h). Small arrays beside
 * the entries, so that the common paths touch little: a lookup reads one
 * cache line of tags per bucket before it compares a whole hash, and a
 * notification walks the chain of its user's sessions, not the table.
 *
 * The two buckets of a session and its tag are three disjoint 8-byte
 * parts of its hash: SHA-256 of a random id, which neither a client nor
 * a user can steer, so each part is evenly spread and independent of the
 * others. With 16384 random sessions in 4096 buckets of 8, one bucket
 * each would overflow about a hundred of them; the emptier of two, none
 * (tests/unit/test_session_cache.c).
 */
#include "session_cache.h"

#include <stdint.h>
#include <string.h>

#define BUCKETS (SESSION_CACHE_SLOTS / SESSION_CACHE_WAYS)
/* Users whose ids are equal modulo CHAINS share a chain. */
#define CHAINS SESSION_CACHE_SLOTS

struct entry {
	unsigned char hash[32];
	unsigned long epoch;
	long long fetched_ms; /* clock_now_ms() when read */
	struct session_row row;
};

/* Bytes 16-23 of each entry's hash, with the low bit set; 0: empty. */
static uint64_t tags[SESSION_CACHE_SLOTS];
static struct entry entries[SESSION_CACHE_SLOTS];
/*
 * Every entry is on the chain of its user's id: a doubly linked list of
 * slots, each link a slot + 1 (0: none, so that the zeroed arrays start
 * as empty chains).
 */
static int chains[CHAINS];
static int next_in_chain[SESSION_CACHE_SLOTS], prev_in_chain[SESSION_CACHE_SLOTS];

/*
 * Slot i's entry. Slots are numbered bucket by bucket, entries are laid
 * out way by way: the first way of every bucket, then the second, and so
 * on. A new entry takes a bucket's first way that holds nothing it could
 * serve, so a worker that has seen few users has touched the pages of few
 * ways: what is resident grows with the users seen, up to the whole table.
 */
static struct entry *
entry(int i)
{
	return &entries[(i % SESSION_CACHE_WAYS) * BUCKETS + i / SESSION_CACHE_WAYS];
}

static uint64_t
part(const unsigned char hash[32], int i)
{
	uint64_t v;

	memcpy(&v, hash + 8 * i, sizeof(v));
	return v;
}

static uint64_t
tag(const unsigned char hash[32])
{
	return part(hash, 2) | 1;
}

/* The first slot of hash's first (which 0) or second (1) bucket. */
static int
bucket(const unsigned char hash[32], int which)
{
	return (int)(part(hash, which) % BUCKETS) * SESSION_CACHE_WAYS;
}

static int *
chain(long long user_id)
{
	return &chains[(unsigned long long)user_id % CHAINS];
}

/* Slot i, just filled, onto its user's chain. */
static void
link_slot(int i)
{
	int *head = chain(entry(i)->row.user_id);

	prev_in_chain[i] = 0;
	next_in_chain[i] = *head;
	if (*head)
		prev_in_chain[*head - 1] = i + 1;
	*head = i + 1;
}

/* Empties slot i, off its user's chain. */
static void
drop(int i)
{
	int prev = prev_in_chain[i], next = next_in_chain[i];

	if (prev)
		next_in_chain[prev - 1] = next;
	else
		*chain(entry(i)->row.user_id) = next;
	if (next)
		prev_in_chain[next - 1] = prev;
	tags[i] = 0;
}

/* The slot holding hash, whatever its age or epoch, or -1. */
static int
find(const unsigned char hash[32])
{
	uint64_t t = tag(hash);

	for (int which = 0; which < 2; which++) {
		int first = bucket(hash, which);
		for (int i = first; i < first + SESSION_CACHE_WAYS; i++)
			if (tags[i] == t && memcmp(entry(i)->hash, hash, 32) == 0)
				return i;
	}
	return -1;
}

static int
live(int i, unsigned long epoch, long long now_ms)
{
	return tags[i] != 0 && entry(i)->epoch == epoch &&
	       now_ms - entry(i)->fetched_ms < SESSION_CACHE_TTL_MS;
}

/* How many of the bucket's entries could still be served. */
static int
bucket_live(int first, unsigned long epoch, long long now_ms)
{
	int n = 0;

	for (int i = first; i < first + SESSION_CACHE_WAYS; i++)
		n += live(i, epoch, now_ms);
	return n;
}

/* The bucket's first entry that could not be served, else its oldest. */
static int
bucket_victim(int first, unsigned long epoch, long long now_ms)
{
	int oldest = first;

	for (int i = first; i < first + SESSION_CACHE_WAYS; i++) {
		if (!live(i, epoch, now_ms))
			return i;
		if (entry(i)->fetched_ms < entry(oldest)->fetched_ms)
			oldest = i;
	}
	return oldest;
}

/* Where a new session goes: into the emptier of its two buckets. */
static int
victim(const unsigned char hash[32], unsigned long epoch, long long now_ms)
{
	int a = bucket(hash, 0), b = bucket(hash, 1);
	int in_a = bucket_live(a, epoch, now_ms), in_b = bucket_live(b, epoch, now_ms);
	int va, vb;

	if (in_a != in_b)
		return bucket_victim(in_a < in_b ? a : b, epoch, now_ms);
	va = bucket_victim(a, epoch, now_ms);
	vb = bucket_victim(b, epoch, now_ms);
	if (!live(va, epoch, now_ms))
		return va;
	return entry(vb)->fetched_ms < entry(va)->fetched_ms ? vb : va;
}

const struct session_row *
session_cache_get(const unsigned char hash[32], unsigned long epoch, long long now_ms,
		  time_t now)
{
	int i = find(hash);

	if (i < 0 || !live(i, epoch, now_ms) || now >= entry(i)->row.expires_at)
		return NULL;
	return &entry(i)->row;
}

void
session_cache_put(const unsigned char hash[32], const struct session_row *row,
		  unsigned long epoch, long long now_ms)
{
	int i = find(hash);
	struct entry *e;

	if (row->user_id < 1) {
		if (i >= 0)
			drop(i);
		return;
	}
	if (i < 0)
		i = victim(hash, epoch, now_ms);
	if (tags[i] != 0)
		drop(i);
	e = entry(i);
	memcpy(e->hash, hash, 32);
	e->epoch = epoch;
	e->fetched_ms = now_ms;
	e->row = *row;
	tags[i] = tag(hash);
	link_slot(i);
}

void
session_cache_update(const unsigned char hash[32], const struct session_row *row)
{
	int i = find(hash);

	if (i >= 0 && row->user_id == entry(i)->row.user_id)
		entry(i)->row = *row;
}

void
session_cache_forget_user(long long user_id)
{
	int next = *chain(user_id);

	while (next) {
		int i = next - 1;

		next = next_in_chain[i];
		if (entry(i)->row.user_id == user_id)
			drop(i);
	}
}
