/*
 * Thin wrappers over libcrypto that return 0/-1 and check every call.
 */
#include "crypto.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

int
crypto_derive_key(const char *secret, size_t secret_len, const char *purpose,
		  unsigned char key[CRYPTO_KEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[4];
	int rc = -1;

	if (ctx == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	/*
	 * A parameter holds a void *, but the KDF only reads its inputs: the
	 * cast through uintptr_t drops const on purpose (-Wcast-qual).
	 */
	params[1] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)secret, secret_len);
	params[2] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)purpose, strlen(purpose));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, key, CRYPTO_KEY_LEN, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

/*
 * OpenSSL 3's one-shot HMAC() looks the algorithm up and builds a context
 * on every call, five times the cost of the MAC itself on a short cookie.
 * A process uses a handful of keys (one per cookie kind), so each keeps a
 * context with its key set, re-initialised per MAC (EVP_MAC_init with a
 * NULL key reuses the key).
 */
/* Three cookie keys per secret of BAA_SECRET_KEY, and the token keys. */
#define HMAC_KEYS_MAX 32

struct hmac_key {
	unsigned char key[CRYPTO_KEY_LEN];
	EVP_MAC_CTX *ctx;
};

static struct hmac_key hmac_keys[HMAC_KEYS_MAX];

static EVP_MAC_CTX *
hmac_context(const unsigned char key[CRYPTO_KEY_LEN])
{
	OSSL_PARAM params[2];
	EVP_MAC *mac;
	struct hmac_key *slot = NULL;

	for (int i = 0; i < HMAC_KEYS_MAX; i++) {
		if (hmac_keys[i].ctx == NULL) {
			slot = &hmac_keys[i];
			break;
		}
		if (CRYPTO_memcmp(hmac_keys[i].key, key, CRYPTO_KEY_LEN) == 0)
			return EVP_MAC_init(hmac_keys[i].ctx, NULL, 0, NULL) == 1
				       ? hmac_keys[i].ctx
				       : NULL;
	}
	if (slot == NULL)
		return NULL;
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	slot->ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac); /* the context holds its own reference */
	if (slot->ctx == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(slot->ctx, key, CRYPTO_KEY_LEN, params) != 1) {
		EVP_MAC_CTX_free(slot->ctx);
		slot->ctx = NULL;
		return NULL;
	}
	memcpy(slot->key, key, CRYPTO_KEY_LEN);
	return slot->ctx;
}

static int
hmac_one_shot(const unsigned char key[CRYPTO_KEY_LEN], const void *data, size_t len,
	      unsigned char mac[CRYPTO_MAC_LEN])
{
	unsigned int mac_len = 0;

	if (HMAC(EVP_sha256(), key, CRYPTO_KEY_LEN, data, len, mac, &mac_len) == NULL ||
	    mac_len != CRYPTO_MAC_LEN)
		return -1;
	return 0;
}

int
crypto_hmac(const unsigned char key[CRYPTO_KEY_LEN], const void *data, size_t len,
	    unsigned char mac[CRYPTO_MAC_LEN])
{
	EVP_MAC_CTX *ctx = hmac_context(key);
	size_t mac_len = 0;

	if (ctx == NULL) /* more keys than slots: correct, only slower */
		return hmac_one_shot(key, data, len, mac);
	if (EVP_MAC_update(ctx, data, len) != 1 ||
	    EVP_MAC_final(ctx, mac, &mac_len, CRYPTO_MAC_LEN) != 1 ||
	    mac_len != CRYPTO_MAC_LEN)
		return -1;
	return 0;
}

/*
 * Every request with a session cookie hashes its id: one context and one
 * fetched digest, kept, instead of a context allocated and a digest
 * looked up per call.
 */
int
crypto_sha256(const void *data, size_t len, unsigned char digest[32])
{
	static EVP_MD_CTX *ctx;
	static EVP_MD *sha256;
	unsigned int digest_len = 0;

	if (ctx == NULL) {
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
		ctx = sha256 ? EVP_MD_CTX_new() : NULL;
		if (ctx == NULL)
			return -1;
	}
	if (EVP_DigestInit_ex(ctx, sha256, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1 || digest_len != 32)
		return -1;
	return 0;
}

int
crypto_random(void *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

int
crypto_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
b64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t n = 0, i = 0;

	for (; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[n++] = alphabet[v >> 18 & 63];
		out[n++] = alphabet[v >> 12 & 63];
		out[n++] = alphabet[v >> 6 & 63];
		out[n++] = alphabet[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 |
			     (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
		out[n++] = alphabet[v >> 18 & 63];
		out[n++] = alphabet[v >> 12 & 63];
		if (i + 1 < len)
			out[n++] = alphabet[v >> 6 & 63];
	}
	out[n] = '\0';
	return n;
}

/* alphabet's index of c, or -1. By ranges, not strchr: every cookie of
 * every request is decoded here, and strchr was 5% of a worker's time. */
static int
sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

long
b64url_decode(const char *s, size_t len, unsigned char *out, size_t outsize)
{
	size_t n = 0, i = 0;
	unsigned v = 0;
	int bits = 0;

	/* One leftover character cannot encode a byte. */
	if (len % 4 == 1)
		return -1;
	for (; i < len; i++) {
		int d = sextet(s[i]);
		if (d < 0)
			return -1;
		v = v << 6 | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == outsize)
				return -1;
			out[n++] = (unsigned char)(v >> bits);
		}
	}
	/* Canonical form only: the unused low bits of the last character are 0,
	 * so every value has exactly one encoding (no MAC-preserving variants). */
	if (bits > 0 && (v & ((1u << bits) - 1)) != 0)
		return -1;
	return (long)n;
}

int
crypto_pem_certificates(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *cert;
	int n = 0;

	if (f == NULL)
		return -1;
	/* Text between certificates (a bundle's comments) is skipped by PEM. */
	while (n < CRYPTO_PEM_CERTIFICATES_MAX &&
	       (cert = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		X509_free(cert);
		n++;
	}
	/* The end of the file is an "error" too: leave none behind for libcurl. */
	ERR_clear_error();
	if (ferror(f)) {
		fclose(f);
		errno = EIO;
		return -1;
	}
	fclose(f);
	return n;
}
