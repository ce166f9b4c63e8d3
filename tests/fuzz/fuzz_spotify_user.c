/*
 * The Web API's /v1/me answer, as spotify.c reads it: spotify_parse_user
 * on the body, exactly sized and not NUL-terminated. Invariants: an
 * accepted profile has a non-empty id and both strings within their bounds.
 */
#include "fuzz.h"

#include "../../src/spotify.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spotify_user user;
	char *body = malloc(size ? size : 1);

	if (body == NULL)
		abort();
	memcpy(body, data, size);
	if (spotify_parse_user(body, size, &user) == 0) {
		FUZZ_ASSERT(user.id[0] != '\0' && strlen(user.id) <= SPOTIFY_ID_MAX);
		FUZZ_ASSERT(strlen(user.display_name) <= SPOTIFY_NAME_MAX);
	}
	free(body);
	return 0;
}
