/*
 * AES-256-GCM through libcrypto, a fresh random 96-bit nonce per value.
 * The associated data is "v1|<row id>|<column>", so a value copied into
 * another user's row, or swapped between the access and refresh columns,
 * fails its tag like a tampered one.
 */
#include "tokenbox.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define VERSION_PREFIX "v1."
#define VALUE_MAX 4096 /* plaintext bytes; Spotify's tokens are far shorter */
#define RAW_MAX (TOKENBOX_NONCE_LEN + VALUE_MAX + TOKENBOX_TAG_LEN)
#define HEX_KEY_LEN (2 * CRYPTO_KEY_LEN)
#define B64_KEY_LEN B64URL_LEN(CRYPTO_KEY_LEN)
#define HEADER_LEN (3 + TOKENBOX_KID_LEN + 1) /* "v1.<kid>." */

/*
 * Each key's contexts are set up with the cipher and key once, at first
 * use; a value then sets only its nonce. OpenSSL 3 looks the algorithm up
 * and expands the key at every full initialisation, which was 40% of the
 * CPU of opening a token (GET /me/token, perf).
 */
struct token_key {
	unsigned char key[CRYPTO_KEY_LEN];
	char kid[TOKENBOX_KID_LEN + 1];
	EVP_CIPHER_CTX *sealing, *opening;
};

static struct token_key keys[TOKENBOX_KEYS_MAX];
static int nkeys;

/* One word of BAA_TOKEN_KEY into a 32-byte key; "derived" is not a key. */
static int
decode_key(const char *word, size_t len, unsigned char key[CRYPTO_KEY_LEN])
{
	char hex[HEX_KEY_LEN + 1];
	size_t buflen = 0;

	if (len == B64_KEY_LEN)
		return b64url_decode(word, len, key, CRYPTO_KEY_LEN) == CRYPTO_KEY_LEN
			       ? 0
			       : -1;
	if (len != HEX_KEY_LEN || strspn(word, "0123456789abcdefABCDEF") < len)
		return -1;
	memcpy(hex, word, len);
	hex[len] = '\0';
	if (OPENSSL_hexstr2buf_ex(key, CRYPTO_KEY_LEN, &buflen, hex, '\0') != 1 ||
	    buflen != CRYPTO_KEY_LEN)
		return -1;
	return 0;
}

/* The next space-separated word of *text, or NULL at the end. */
static const char *
next_word(const char **text, size_t *len)
{
	const char *word = *text + strspn(*text, " ");

	*len = strcspn(word, " ");
	*text = word + *len;
	return *len ? word : NULL;
}

static int
is_derived(const char *word, size_t len)
{
	return len == strlen(TOKENBOX_DERIVED) &&
	       memcmp(word, TOKENBOX_DERIVED, len) == 0;
}

int
tokenbox_check_keys(const char *text, char *err, size_t errlen)
{
	unsigned char key[CRYPTO_KEY_LEN];
	const char *word;
	size_t len;
	int n = 0;

	while ((word = next_word(&text, &len)) != NULL) {
		if (++n > TOKENBOX_KEYS_MAX) {
			snprintf(err, errlen, "lists more than %d keys",
				 TOKENBOX_KEYS_MAX);
			return -1;
		}
		if (!is_derived(word, len) && decode_key(word, len, key) < 0) {
			OPENSSL_cleanse(key, sizeof(key));
			snprintf(err, errlen,
				 "has a malformed key (number %d): each key must be 32 "
				 "bytes "
				 "as 64 hex digits ('openssl rand -hex 32') or 43 "
				 "base64url "
				 "characters, or the word '" TOKENBOX_DERIVED "'",
				 n);
			return -1;
		}
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (n == 0) {
		snprintf(err, errlen, "lists no key");
		return -1;
	}
	return 0;
}

/* kid: 6 bytes of HMAC-SHA256(key, label), which shows nothing of the key. */
static int
add_key(const unsigned char key[CRYPTO_KEY_LEN])
{
	static const char label[] = "baa token key id";
	unsigned char mac[CRYPTO_MAC_LEN];
	struct token_key *k = &keys[nkeys];

	if (nkeys == TOKENBOX_KEYS_MAX || crypto_hmac(key, label, strlen(label), mac) < 0)
		return -1;
	memcpy(k->key, key, CRYPTO_KEY_LEN);
	b64url_encode(mac, 6, k->kid);
	nkeys++;
	return 0;
}

/*
 * "derived": a key from each secret of BAA_SECRET_KEY, in its order. When
 * the secrets rotate, the first derived key seals and the old one still
 * opens, until `baa rotate-keys` has sealed every token again.
 */
static int
add_derived_keys(const char *secrets)
{
	unsigned char key[CRYPTO_KEY_LEN];
	const char *secret;
	size_t len;
	int rc = 0;

	while (rc == 0 && secrets && (secret = next_word(&secrets, &len)) != NULL) {
		rc = crypto_derive_key(secret, len, "baa token encryption v1", key);
		if (rc == 0)
			rc = add_key(key);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* The number of words of text. */
static int
count_words(const char *text)
{
	size_t len;
	int n = 0;

	while (text && next_word(&text, &len) != NULL)
		n++;
	return n;
}

int
tokenbox_key_count(const char *text, const char *secrets)
{
	const char *word;
	size_t len;
	int n = 0;

	if (text == NULL)
		text = TOKENBOX_DERIVED;
	while ((word = next_word(&text, &len)) != NULL)
		n += is_derived(word, len) ? count_words(secrets) : 1;
	return n;
}

int
tokenbox_init(const char *text, const char *secrets)
{
	unsigned char key[CRYPTO_KEY_LEN];
	const char *word;
	size_t len;
	int rc = 0;

	for (int i = 0; i < nkeys; i++) {
		EVP_CIPHER_CTX_free(keys[i].sealing);
		EVP_CIPHER_CTX_free(keys[i].opening);
	}
	OPENSSL_cleanse(keys, sizeof(keys));
	nkeys = 0;
	if (text == NULL)
		text = TOKENBOX_DERIVED;
	while (rc == 0 && (word = next_word(&text, &len)) != NULL) {
		if (is_derived(word, len)) {
			rc = add_derived_keys(secrets);
			continue;
		}
		rc = decode_key(word, len, key);
		if (rc == 0)
			rc = add_key(key);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc == 0 && nkeys > 0 ? 0 : -1;
}

const char *
tokenbox_current_kid(void)
{
	return nkeys ? keys[0].kid : "";
}

/* k's context for sealing (or opening), set up with its key; NULL when
 * libcrypto could not. A failed set-up is tried again at the next use. */
static EVP_CIPHER_CTX *
context_of(struct token_key *k, int sealing)
{
	EVP_CIPHER_CTX **ctx = sealing ? &k->sealing : &k->opening;

	if (*ctx != NULL)
		return *ctx; /* set up at an earlier use */
	*ctx = EVP_CIPHER_CTX_new();
	if (*ctx && EVP_CipherInit_ex(*ctx, EVP_aes_256_gcm(), NULL, k->key, NULL,
				      sealing) != 1) {
		EVP_CIPHER_CTX_free(*ctx);
		*ctx = NULL;
	}
	return *ctx;
}

/* "v1.<kid>." is where every sealed value starts. */
static int
has_header(const char *sealed)
{
	return strncmp(sealed, VERSION_PREFIX, 3) == 0 &&
	       strnlen(sealed, HEADER_LEN) == HEADER_LEN && sealed[HEADER_LEN - 1] == '.';
}

/* The key named by the kid of sealed, or NULL. */
static struct token_key *
key_of(const char *sealed)
{
	if (!has_header(sealed))
		return NULL;
	for (int i = 0; i < nkeys; i++)
		if (memcmp(sealed + 3, keys[i].kid, TOKENBOX_KID_LEN) == 0)
			return &keys[i];
	return NULL;
}

int
tokenbox_is_current(const char *sealed)
{
	return nkeys > 0 && key_of(sealed) == &keys[0];
}

static size_t
associated_data(long long id, enum tokenbox_role role, char *aad, size_t size)
{
	int n = snprintf(aad, size, "v1|%lld|%s", id,
			 role == TOKENBOX_ACCESS ? "access" : "refresh");
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

enum tokenbox_status
tokenbox_seal(const char *value, long long id, enum tokenbox_role role, char *out,
	      size_t outsize)
{
	unsigned char raw[RAW_MAX];
	unsigned char *nonce = raw, *ciphertext = raw + TOKENBOX_NONCE_LEN;
	size_t len = strlen(value), aad_len;
	EVP_CIPHER_CTX *ctx = NULL;
	enum tokenbox_status status = TOKENBOX_FAILED;
	char aad[64];
	int n, m;

	if (len > VALUE_MAX || TOKENBOX_SEALED_LEN(len) >= outsize)
		return TOKENBOX_TOO_LONG;
	aad_len = associated_data(id, role, aad, sizeof(aad));
	if (nkeys == 0 || aad_len == 0 || crypto_random(nonce, TOKENBOX_NONCE_LEN) < 0)
		return TOKENBOX_FAILED;
	ctx = context_of(&keys[0], 1);
	if (ctx == NULL || EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) !=
		    1 ||
	    EVP_EncryptUpdate(ctx, ciphertext, &n, (const unsigned char *)value,
			      (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ciphertext + n, &m) != 1 || (size_t)(n + m) != len ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TOKENBOX_TAG_LEN,
				ciphertext + len) != 1)
		goto out;
	n = snprintf(out, outsize, VERSION_PREFIX "%s.", keys[0].kid);
	b64url_encode(raw, TOKENBOX_NONCE_LEN + len + TOKENBOX_TAG_LEN, out + n);
	status = TOKENBOX_OK;
out:
	OPENSSL_cleanse(raw, TOKENBOX_NONCE_LEN + len + TOKENBOX_TAG_LEN);
	return status;
}

enum tokenbox_status
tokenbox_open(const char *sealed, long long id, enum tokenbox_role role, char *out,
	      size_t outsize)
{
	unsigned char raw[RAW_MAX];
	struct token_key *key;
	const char *body;
	EVP_CIPHER_CTX *ctx = NULL;
	enum tokenbox_status status = TOKENBOX_FORGED;
	long raw_len;
	size_t len, aad_len;
	char aad[64];
	int n, m;

	if (outsize > 0)
		out[0] = '\0';
	if (strncmp(sealed, VERSION_PREFIX, 3) != 0)
		return TOKENBOX_PLAINTEXT;
	if (!has_header(sealed))
		return TOKENBOX_MALFORMED;
	key = key_of(sealed);
	if (key == NULL)
		return TOKENBOX_UNKNOWN_KEY;
	body = sealed + HEADER_LEN;
	raw_len = b64url_decode(body, strlen(body), raw, sizeof(raw));
	if (raw_len < TOKENBOX_NONCE_LEN + TOKENBOX_TAG_LEN)
		return TOKENBOX_MALFORMED;
	len = (size_t)raw_len - TOKENBOX_NONCE_LEN - TOKENBOX_TAG_LEN;
	if (len >= outsize)
		return TOKENBOX_TOO_LONG;
	aad_len = associated_data(id, role, aad, sizeof(aad));
	ctx = context_of(key, 0);
	if (aad_len == 0 || ctx == NULL ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, raw) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) !=
		    1 ||
	    EVP_DecryptUpdate(ctx, (unsigned char *)out, &n, raw + TOKENBOX_NONCE_LEN,
			      (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TOKENBOX_TAG_LEN,
				raw + TOKENBOX_NONCE_LEN + len) != 1) {
		status = TOKENBOX_FAILED;
		goto out;
	}
	/* The tag is checked here: nothing decrypted is kept unless it matches. */
	if (EVP_DecryptFinal_ex(ctx, (unsigned char *)out + n, &m) != 1 ||
	    (size_t)(n + m) != len || memchr(out, '\0', len) != NULL)
		goto out;
	out[len] = '\0';
	status = TOKENBOX_OK;
out:
	if (status != TOKENBOX_OK)
		OPENSSL_cleanse(out, len < outsize ? len + 1 : outsize);
	OPENSSL_cleanse(raw, (size_t)raw_len);
	return status;
}

const char *
tokenbox_status_name(enum tokenbox_status status)
{
	switch (status) {
	case TOKENBOX_OK: return "ok";
	case TOKENBOX_PLAINTEXT: return "plaintext";
	case TOKENBOX_MALFORMED: return "malformed";
	case TOKENBOX_UNKNOWN_KEY: return "unknown_key";
	case TOKENBOX_FORGED: return "forged";
	case TOKENBOX_TOO_LONG: return "too_long";
	case TOKENBOX_FAILED: return "failed";
	}
	return "unknown";
}
