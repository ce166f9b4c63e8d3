/*
 * What the libFuzzer targets share: a check that stops the run with a
 * message (libFuzzer then keeps the input as a reproducer), and the fixed
 * keys the session targets sign with.
 */
#ifndef BAA_FUZZ_H
#define BAA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <wchar.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the parser under test, checked on every input. */
#define FUZZ_ASSERT(cond)                                                                \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,       \
				__LINE__, #cond);                                        \
			abort();                                                         \
		}                                                                        \
	} while (0)

/*
 * The secrets of the targets' BAA_SECRET_KEY, which lists the first two
 * (a list is split at spaces, so none holds one); the seed corpus is
 * signed with them. The third is a secret no longer listed.
 */
#define FUZZ_SECRET "baa-fuzzing-key,fixed,at-least-thirty-two-bytes"
#define FUZZ_SECRET_OLD "baa-fuzzing-key,older,still-listed,32-bytes-or-more"
#define FUZZ_SECRET_GONE "baa-fuzzing-key,dropped,no-longer-listed,32-bytes"

/* "Now" for cookie expiry: fixed, so that a run is reproducible. */
#define FUZZ_NOW 1700000000

/*
 * data[0..size) as a C string, as baa receives outside bytes (libfcgi and
 * libcurl hand over NUL-terminated text): the string ends at the first
 * NUL. Exactly sized, so ASan sees any read past its end. Free it.
 */
static inline char *
fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Bodies up to this size go through fuzz_guarded (libFuzzer's -max_len is less). */
#define FUZZ_GUARDED_MAX (1 << 20)

/*
 * data[0..size) at the very end of a readable region that an inaccessible
 * page follows: a read past the end faults even in a library that ASan
 * does not instrument (Debian's cJSON). NULL when size is too large.
 */
static inline const char *
fuzz_guarded(const uint8_t *data, size_t size)
{
	static char *region;
	long page = sysconf(_SC_PAGESIZE);

	if (region == NULL) {
		region = mmap(NULL, FUZZ_GUARDED_MAX + (size_t)page,
			      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED ||
		    mprotect(region + FUZZ_GUARDED_MAX, (size_t)page, PROT_NONE) < 0)
			abort();
	}
	if (size > FUZZ_GUARDED_MAX)
		return NULL;
	memcpy(region + FUZZ_GUARDED_MAX - size, data, size);
	return region + FUZZ_GUARDED_MAX - size;
}

/*
 * Whether s is well-formed UTF-8, by the C library's decoder (the target
 * sets LC_CTYPE to C.UTF-8), independent of baa's own check.
 */
static inline int
fuzz_is_utf8(const char *s)
{
	mbstate_t state;
	size_t left = strlen(s);

	memset(&state, 0, sizeof(state));
	while (left > 0) {
		wchar_t c;
		size_t n = mbrtowc(&c, s, left, &state);
		if (n == (size_t)-1 || n == (size_t)-2 || n == 0 ||
		    (unsigned long)c > 0x10ffff)
			return 0;
		s += n;
		left -= n;
	}
	return 1;
}

#endif
