/*
 * The table of profiles (profile_cache.h): user ids in one array, so that
 * finding a user reads one cache line of its bucket, and beside them
 * compact entries that hold a profile's strings end to end, each with its
 * length, copied back out into a struct user_profile on a hit.
 */
#include "profile_cache.h"

#include <stddef.h>
#include <string.h>

#define BUCKETS (PROFILE_CACHE_SLOTS / PROFILE_CACHE_WAYS)

/* The strings of a profile kept in an entry's text, in this order. */
#define TEXT(field)                                                                      \
	offsetof(struct user_profile, field), sizeof(((struct user_profile *)0)->field)
static const struct {
	size_t offset, size;
} texts[] = {
	{TEXT(spotify_id)},	  {TEXT(account_id)},	      {TEXT(display_name)},
	{TEXT(token_expires_at)}, {TEXT(authorized_at_text)}, {TEXT(reauth_due_at_text)},
};
#define NTEXTS (sizeof(texts) / sizeof(texts[0]))

enum { NEEDS_REAUTH = 1, HAS_SCOPE = 2, SCOPE_SHORT = 4 };

struct entry {
	unsigned long epoch;
	long long fetched_ms; /* clock_now_ms() when read */
	time_t authorized_at;
	time_t reauth_due_at;
	unsigned char len[NTEXTS];
	unsigned char scope; /* in scopes[] */
	unsigned char flags;
	char text[PROFILE_CACHE_TEXT_MAX];
};

/* Each entry's users.id; 0 (never one) marks an empty entry. */
static long long ids[PROFILE_CACHE_SLOTS];
static struct entry entries[PROFILE_CACHE_SLOTS];

/*
 * Slot i's entry. Slots are numbered bucket by bucket, entries are laid
 * out way by way: the first way of every bucket, then the second, and so
 * on. A new entry takes the first free way of its bucket, so a
 * worker that has seen few users has touched the pages of few ways: what
 * is resident grows with the users seen, up to the whole table.
 */
static struct entry *
entry(int i)
{
	return &entries[(i % PROFILE_CACHE_WAYS) * BUCKETS + i / PROFILE_CACHE_WAYS];
}

/*
 * The grants' scopes seen, each kept once for the life of the worker: a
 * grant's scope is what Spotify granted for SPOTIFY_SCOPES at a login,
 * the same text for every user who logged in under the same setting.
 */
static char scopes[PROFILE_CACHE_SCOPES][SPOTIFY_SCOPE_MAX + 1];
static int nscopes;

static int
bucket(long long id)
{
	return (int)((unsigned long long)id % BUCKETS) * PROFILE_CACHE_WAYS;
}

/* The slot holding id, whatever its age or epoch, or -1. */
static int
find(long long id)
{
	int first = bucket(id);

	for (int i = first; i < first + PROFILE_CACHE_WAYS; i++)
		if (ids[i] == id)
			return i;
	return -1;
}

static int
live(int i, unsigned long epoch, long long now_ms)
{
	return ids[i] != 0 && entry(i)->epoch == epoch &&
	       now_ms - entry(i)->fetched_ms < PROFILE_CACHE_TTL_MS;
}

/* The bucket's first entry that could not be served, else its oldest. */
static int
victim(long long id, unsigned long epoch, long long now_ms)
{
	int first = bucket(id), oldest = first;

	for (int i = first; i < first + PROFILE_CACHE_WAYS; i++) {
		if (!live(i, epoch, now_ms))
			return i;
		if (entry(i)->fetched_ms < entry(oldest)->fetched_ms)
			oldest = i;
	}
	return oldest;
}

/* scope's index in scopes[], kept now if it is new and there is room; -1. */
static int
scope_index(const char *scope)
{
	for (int i = 0; i < nscopes; i++)
		if (strcmp(scopes[i], scope) == 0)
			return i;
	if (nscopes == PROFILE_CACHE_SCOPES ||
	    strnlen(scope, sizeof(scopes[0])) == sizeof(scopes[0]))
		return -1;
	memcpy(scopes[nscopes], scope, strlen(scope) + 1);
	return nscopes++;
}

/* The profile's strings into e: 0, or -1 when they do not fit. */
static int
pack(const struct user_profile *p, struct entry *e)
{
	size_t used = 0;

	for (size_t t = 0; t < NTEXTS; t++) {
		const char *s = (const char *)p + texts[t].offset;
		size_t n = strnlen(s, texts[t].size);

		if (n == texts[t].size || n > 255 || n > sizeof(e->text) - used)
			return -1;
		memcpy(e->text + used, s, n);
		e->len[t] = (unsigned char)n;
		used += n;
	}
	return 0;
}

static void
unpack(const struct entry *e, struct user_profile *p)
{
	size_t used = 0;

	for (size_t t = 0; t < NTEXTS; t++) {
		char *s = (char *)p + texts[t].offset;

		memcpy(s, e->text + used, e->len[t]);
		s[e->len[t]] = '\0';
		used += e->len[t];
	}
}

/* id's entry while it may be served, or -1. */
static int
serving(long long id, unsigned long epoch, long long now_ms)
{
	int i = id < 1 ? -1 : find(id);

	return i >= 0 && live(i, epoch, now_ms) ? i : -1;
}

int
profile_cache_has(long long id, unsigned long epoch, long long now_ms)
{
	return serving(id, epoch, now_ms) >= 0;
}

int
profile_cache_get(long long id, unsigned long epoch, long long now_ms,
		  struct user_profile *out)
{
	int i = serving(id, epoch, now_ms);
	const struct entry *e;

	if (i < 0)
		return 0;
	e = entry(i);
	out->id = id;
	unpack(e, out);
	out->authorized_at = e->authorized_at;
	out->reauth_due_at = e->reauth_due_at;
	out->needs_reauth = (e->flags & NEEDS_REAUTH) != 0;
	out->has_scope = (e->flags & HAS_SCOPE) != 0;
	out->scope_short = (e->flags & SCOPE_SHORT) != 0;
	memcpy(out->scope, scopes[e->scope], strlen(scopes[e->scope]) + 1);
	return 1;
}

int
profile_cache_put(const struct user_profile *profile, unsigned long epoch,
		  long long now_ms)
{
	struct entry e = {.epoch = epoch, .fetched_ms = now_ms};
	int i, scope;

	if (profile->id < 1)
		return -1;
	i = find(profile->id);
	/* Packed first: a profile that does not fit takes no room for its scope. */
	scope = pack(profile, &e) < 0 ? -1 : scope_index(profile->scope);
	if (scope < 0) {
		if (i >= 0)
			ids[i] = 0; /* what it held is older than what was read now */
		return -1;
	}
	e.authorized_at = profile->authorized_at;
	e.reauth_due_at = profile->reauth_due_at;
	e.scope = (unsigned char)scope;
	e.flags = (profile->needs_reauth ? NEEDS_REAUTH : 0) |
		  (profile->has_scope ? HAS_SCOPE : 0) |
		  (profile->scope_short ? SCOPE_SHORT : 0);
	if (i < 0)
		i = victim(profile->id, epoch, now_ms);
	ids[i] = profile->id;
	*entry(i) = e;
	return 0;
}

void
profile_cache_forget(long long id)
{
	int i = id < 1 ? -1 : find(id);

	if (i >= 0)
		ids[i] = 0;
}
