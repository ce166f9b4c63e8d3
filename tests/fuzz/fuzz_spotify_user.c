/*
 * The Web API's /v1/me answer, as spotify.c reads it: spotify_parse_user
 * on the body, not NUL-terminated, right before an inaccessible page.
 * Invariants: an accepted profile has a non-empty id, every string is
 * within its bound and UTF-8 (the database refuses anything else),
 * account_id included, and its body holds no NUL byte (one would cut a
 * string short: "abc<NUL>def" read as "abc").
 */
#include "fuzz.h"

#include <locale.h>

#include "../../src/spotify.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spotify_user user;
	const char *body = fuzz_guarded(data, size);

	if (body != NULL && spotify_parse_user(body, size, &user) == 0) {
		FUZZ_ASSERT(memchr(body, '\0', size) == NULL);
		FUZZ_ASSERT(user.id[0] != '\0' && strlen(user.id) <= SPOTIFY_ID_MAX);
		FUZZ_ASSERT(strlen(user.display_name) <= SPOTIFY_NAME_MAX);
		FUZZ_ASSERT(strlen(user.account_id) <= SPOTIFY_ID_MAX);
		FUZZ_ASSERT(fuzz_is_utf8(user.id) && fuzz_is_utf8(user.display_name) &&
			    fuzz_is_utf8(user.account_id));
	}
	return 0;
}
