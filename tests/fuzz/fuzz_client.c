/*
 * What a client says about itself, as one C string: an Origin (or a
 * configured URL) through origin_of_url and origin_allows, a User-Agent
 * through device_label, a REMOTE_ADDR through address_network_prefix.
 * Invariants: an origin is lowercase "http[s]://host[:port]" that maps to
 * itself and is allowed against the URL it came from; a label is short
 * and made of the vocabulary's letters only; a network prefix maps to
 * itself once its "/24" or "/64" is cut off; a refusal leaves out "".
 */
#include "fuzz.h"

#include "../../src/address.h"
#include "../../src/device.h"
#include "../../src/origin.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static void
check_origin(const char *s)
{
	char origin[ORIGIN_MAX], again[ORIGIN_MAX];
	const char *authority;

	if (origin_of_url(s, origin, sizeof(origin)) < 0) {
		FUZZ_ASSERT(origin[0] == '\0');
		FUZZ_ASSERT(origin_allows(NULL, s, "https://baa.example.org") == 0);
		return;
	}
	FUZZ_ASSERT(strncmp(origin, "http://", 7) == 0 ||
		    strncmp(origin, "https://", 8) == 0);
	authority = strstr(origin, "://") + 3;
	FUZZ_ASSERT(authority[0] != '\0' && strpbrk(authority, "/?#@") == NULL);
	for (const char *c = origin; *c; c++)
		FUZZ_ASSERT(!(*c >= 'A' && *c <= 'Z') && (unsigned char)*c > ' ' &&
			    (unsigned char)*c < 0x7f);
	FUZZ_ASSERT(origin_of_url(origin, again, sizeof(again)) == 0);
	FUZZ_ASSERT(strcmp(origin, again) == 0);
	FUZZ_ASSERT(origin_allows(NULL, origin, s) == 1);
	FUZZ_ASSERT(origin_allows(NULL, origin, origin) == 1);
}

static void
check_device(const char *s)
{
	char label[DEVICE_LABEL_MAX];
	size_t len;

	device_label(s, label, sizeof(label));
	len = strlen(label);
	FUZZ_ASSERT(len > 0 && len < DEVICE_LABEL_MAX);
	FUZZ_ASSERT(strspn(label,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .()") ==
		    len);
}

static void
check_network(const char *s)
{
	char network[ADDRESS_NETWORK_MAX], again[ADDRESS_NETWORK_MAX], *slash;

	if (address_network_prefix(s, network, sizeof(network)) < 0) {
		FUZZ_ASSERT(network[0] == '\0');
		return;
	}
	slash = strrchr(network, '/');
	FUZZ_ASSERT(slash != NULL);
	FUZZ_ASSERT(strcmp(slash, "/24") == 0 || strcmp(slash, "/64") == 0);
	FUZZ_ASSERT(strcmp(slash, "/24") != 0 || strchr(network, ':') == NULL);
	*slash = '\0';
	FUZZ_ASSERT(address_network_prefix(network, again, sizeof(again)) == 0);
	*slash = '/';
	FUZZ_ASSERT(strcmp(network, again) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_string(data, size);

	check_origin(s);
	check_device(s);
	check_network(s);
	free(s);
	return 0;
}
