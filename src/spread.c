/*
 * The table is a few integers per worker, written only by their worker (or
 * by the master once that worker is dead) and read by all: relaxed atomic
 * loads and stores are enough, since a slightly stale count only makes the
 * spread slightly less even.
 */
#include "spread.h"

#include <stddef.h>
#include <sys/mman.h>

struct spread_entry {
	int open;      /* connections held */
	int accepting; /* takes new connections (not stopping) */
};

static struct spread_entry *table;
static int nslots;

int
spread_init(int slots)
{
	table = mmap(NULL, sizeof(*table) * (size_t)slots, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (table == MAP_FAILED) {
		table = NULL;
		return -1;
	}
	nslots = slots;
	return 0;
}

void
spread_publish(int slot, int open, int accepting)
{
	if (table == NULL || slot < 0 || slot >= nslots)
		return;
	__atomic_store_n(&table[slot].open, open, __ATOMIC_RELAXED);
	__atomic_store_n(&table[slot].accepting, accepting, __ATOMIC_RELAXED);
}

void
spread_clear(int slot)
{
	spread_publish(slot, 0, 0);
}

int
spread_may_accept(int slot, int open)
{
	long total = 0, takers = 0;

	if (table == NULL || slot < 0 || slot >= nslots)
		return 1;
	for (int i = 0; i < nslots; i++) {
		if (i == slot || !__atomic_load_n(&table[i].accepting, __ATOMIC_RELAXED))
			continue;
		total += __atomic_load_n(&table[i].open, __ATOMIC_RELAXED);
		takers++;
	}
	total += open;
	takers++;
	/* open <= total / takers + 1, in integers */
	return (long)open * takers <= total + takers;
}
