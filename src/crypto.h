/*
 * The cryptography baa needs, on OpenSSL's libcrypto: keys derived from
 * BAA_SECRET_KEY, HMAC-SHA256, SHA-256, randomness, base64url, and a look
 * at the certificates of a PEM file (SPOTIFY_CA_FILE).
 */
#ifndef BAA_CRYPTO_H
#define BAA_CRYPTO_H

#include <stddef.h>

#define CRYPTO_KEY_LEN 32
#define CRYPTO_MAC_LEN 32
/* base64url without padding of n bytes */
#define B64URL_LEN(n) (((n)*4 + 2) / 3)

/* Derives a purpose-bound key: HKDF-SHA256(secret, info = purpose). */
int crypto_derive_key(const char *secret, size_t secret_len, const char *purpose,
		      unsigned char key[CRYPTO_KEY_LEN]);

int crypto_hmac(const unsigned char key[CRYPTO_KEY_LEN], const void *data, size_t len,
		unsigned char mac[CRYPTO_MAC_LEN]);

int crypto_sha256(const void *data, size_t len, unsigned char digest[32]);

int crypto_random(void *buf, size_t len);

/* Equal in time independent of where they differ. */
int crypto_equal(const void *a, const void *b, size_t len);

/* Encodes len bytes; out must hold B64URL_LEN(len) + 1. Returns the length. */
size_t b64url_encode(const unsigned char *in, size_t len, char *out);

/*
 * Decodes s[0..len) into out (room for outsize bytes). Returns the decoded
 * length, or -1 when s is not canonical base64url or does not fit.
 */
long b64url_decode(const char *s, size_t len, unsigned char *out, size_t outsize);

/*
 * The number of X.509 certificates in the PEM file at path (0 when it has
 * none it can parse), or -1 when it cannot be opened (errno says why).
 * Reading stops at CRYPTO_PEM_CERTIFICATES_MAX.
 */
#define CRYPTO_PEM_CERTIFICATES_MAX 100000
int crypto_pem_certificates(const char *path);

#endif
