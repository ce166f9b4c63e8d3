/*
 * Backend services' credentials (BAA_SERVICE_KEYS): named keys, kept only
 * as their SHA-256 digests, and the check of a request's Authorization
 * header on the internal listener.
 */
#ifndef BAA_SERVICES_H
#define BAA_SERVICES_H

#include <stddef.h>

#define SERVICES_MAX 16	     /* bounds the /metrics rows too */
#define SERVICES_NAME_MAX 32 /* [a-z0-9_-] */
#define SERVICES_KEY_MIN 32  /* bytes: openssl rand -base64 32 gives 44 */
#define SERVICES_KEY_MAX 256

struct service_key {
	char name[SERVICES_NAME_MAX + 1];
	unsigned char digest[32]; /* SHA-256 of the key; the key is not kept */
};

struct service_keys {
	int count; /* 0: no service may call */
	struct service_key keys[SERVICES_MAX];
};

/*
 * Parses "name:key name:key ..." (blank-separated) into out. Every bad
 * entry is named in err, by position and, when it is valid, by name;
 * a key is never echoed. Returns 0 or -1.
 */
int services_parse(const char *value, struct service_keys *out, char *err, size_t errlen);

enum services_auth {
	SERVICES_OK,
	SERVICES_MISSING,   /* no Authorization header */
	SERVICES_MALFORMED, /* not "Bearer <key>" */
	SERVICES_WRONG,	    /* a key no service holds */
};

/*
 * Which service the Authorization header's "Bearer <key>" names: on OK,
 * *which is its index in keys. The presented key's digest is compared
 * with every service's (CRYPTO_memcmp, fixed length), so neither the
 * time taken nor where a comparison stops tells anything of a key.
 */
enum services_auth services_authenticate(const struct service_keys *keys,
					 const char *authorization, int *which);

#endif
