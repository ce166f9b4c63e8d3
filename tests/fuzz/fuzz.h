/*
 * What the libFuzzer targets share: a check that stops the run with a
 * message (libFuzzer then keeps the input as a reproducer), and the fixed
 * key the session targets sign with.
 */
#ifndef BAA_FUZZ_H
#define BAA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* BAA_SECRET_KEY of the targets; the seed corpus is signed with it. */
#define FUZZ_SECRET "baa fuzzing key, fixed, at least thirty-two bytes"

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

#endif
