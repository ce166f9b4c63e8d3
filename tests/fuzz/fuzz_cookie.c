/*
 * The Cookie header as the handlers read it: params_parse_cookies, then
 * every baa_session and baa_oauth cookie through its verification (the
 * seed corpus holds correctly signed ones, under FUZZ_SECRET). Invariants
 * of the pairs: no name is empty or holds ';', and neither end of a pair
 * keeps the blanks around it.
 */
#include "fuzz.h"

#include "../../src/params.h"
#include "../../src/session.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (session_init(FUZZ_SECRET, strlen(FUZZ_SECRET)) < 0)
		abort();
	return 0;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void
check_pair(const struct param *pair, size_t header_len)
{
	size_t name_len = strlen(pair->name), value_len = strlen(pair->value);

	FUZZ_ASSERT(name_len > 0 && name_len + 1 + value_len <= header_len);
	FUZZ_ASSERT(strchr(pair->name, ';') == NULL && strchr(pair->value, ';') == NULL);
	FUZZ_ASSERT(strchr(pair->name, '=') == NULL);
	FUZZ_ASSERT(!is_blank(pair->name[0]));
	FUZZ_ASSERT(value_len == 0 || !is_blank(pair->value[value_len - 1]));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct params cookies;
	char *header = fuzz_string(data, size);

	/* HTTP_COOKIE, as libfcgi hands it over. */
	if (params_parse_cookies(&cookies, header, strlen(header)) != PARAMS_OK)
		goto out;
	FUZZ_ASSERT(cookies.count >= 0 && cookies.count <= PARAMS_MAX);
	for (int i = 0; i < cookies.count; i++) {
		const struct param *c = &cookies.items[i];
		check_pair(c, strlen(header));
		if (strcmp(c->name, SESSION_COOKIE) == 0) {
			struct user_session s;
			if (session_verify_user(c->value, FUZZ_NOW, &s) == 0)
				FUZZ_ASSERT(s.expires > FUZZ_NOW && s.user_id >= 0 &&
					    s.generation >= 0);
		} else if (strcmp(c->name, OAUTH_COOKIE) == 0) {
			struct oauth_login login;
			if (session_verify_login(c->value, FUZZ_NOW, &login) == 0)
				FUZZ_ASSERT(login.expires > FUZZ_NOW &&
					    session_is_local_path(login.next) &&
					    strlen(login.state) == SESSION_STATE_LEN);
		}
	}
out:
	free(header);
	return 0;
}
