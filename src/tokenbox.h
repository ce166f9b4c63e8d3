/*
 * Spotify tokens at rest: each value sealed with AES-256-GCM under the
 * current token key, bound to the row and column it is stored in.
 *
 *   v1.<kid>.<base64url(nonce || ciphertext || tag)>
 *
 * kid names the key (a fingerprint, never the key) so that values sealed
 * under an older key still open while that key is configured, and
 * `baa rotate-keys` can tell which values to seal again.
 */
#ifndef BAA_TOKENBOX_H
#define BAA_TOKENBOX_H

#include <stddef.h>

#include "crypto.h"

#define TOKENBOX_KEYS_MAX 8
#define TOKENBOX_NONCE_LEN 12
#define TOKENBOX_TAG_LEN 16
#define TOKENBOX_KID_LEN B64URL_LEN(6) /* 8 */
/* What a value of n bytes becomes, without the terminating NUL. */
#define TOKENBOX_SEALED_LEN(n)                                                           \
	(3 + TOKENBOX_KID_LEN + 1 +                                                      \
	 B64URL_LEN(TOKENBOX_NONCE_LEN + (n) + TOKENBOX_TAG_LEN))

/* BAA_TOKEN_KEY's word for the key derived from BAA_SECRET_KEY. */
#define TOKENBOX_DERIVED "derived"

/* The column a value belongs to: part of what the tag authenticates. */
enum tokenbox_role { TOKENBOX_ACCESS, TOKENBOX_REFRESH };

enum tokenbox_status {
	TOKENBOX_OK,
	TOKENBOX_PLAINTEXT,   /* not sealed at all: stored before encryption */
	TOKENBOX_MALFORMED,   /* "v1." but not a well-formed sealed value */
	TOKENBOX_UNKNOWN_KEY, /* sealed under a key no longer configured */
	TOKENBOX_FORGED,      /* altered, or moved from another row or column */
	TOKENBOX_TOO_LONG,    /* does not fit the caller's buffer */
	TOKENBOX_FAILED,      /* libcrypto failed */
};

/*
 * Checks BAA_TOKEN_KEY's syntax: space-separated keys, each 32 bytes as 64
 * hex digits or 43 base64url characters, or the word "derived". On error
 * writes a reason that never quotes the value and returns -1.
 */
int tokenbox_check_keys(const char *text, char *err, size_t errlen);

/*
 * Loads the keys, once at start-up: those of text (the first seals, all
 * open); the word "derived" (or a NULL text) stands for a key derived with
 * HKDF-SHA256 from each of the space-separated secrets, in their order.
 */
int tokenbox_init(const char *text, const char *secrets);

/* How many keys tokenbox_init would load (TOKENBOX_KEYS_MAX at most works). */
int tokenbox_key_count(const char *text, const char *secrets);

/* The kid of the key that seals; for reports and tests. */
const char *tokenbox_current_kid(void);

/* Whether sealed names the current key (1) or another, or none (0). */
int tokenbox_is_current(const char *sealed);

/* Seals value for the row id's column; out holds TOKENBOX_SEALED_LEN + 1. */
enum tokenbox_status tokenbox_seal(const char *value, long long id,
				   enum tokenbox_role role, char *out, size_t outsize);

/* Opens what tokenbox_seal made for the same id and role. */
enum tokenbox_status tokenbox_open(const char *sealed, long long id,
				   enum tokenbox_role role, char *out, size_t outsize);

/* A short name of a status, for logs. */
const char *tokenbox_status_name(enum tokenbox_status status);

#endif
