/* crypto.h - small cryptographic building blocks over OpenSSL's EVP API:
 * SHA-256 (one-shot and streaming), HMAC-SHA256, hex and base64 codecs,
 * constant-time comparison and random bytes.
 *
 * Every function returns 0 or a negative RV_E* code: RV_EINVAL for a bad
 * argument (an output buffer too small), RV_EPARSE for malformed hex or
 * base64 input, RV_ECRYPTO when OpenSSL fails, RV_ENOMEM when it cannot
 * allocate. Secrets passed in are never logged or copied beyond OpenSSL.
 */
#ifndef REEVE_CRYPTO_H
#define REEVE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN 32
/* Hex text of a digest, with its NUL. */
#define CRYPTO_SHA256_HEX_SIZE (2 * CRYPTO_SHA256_LEN + 1)

/* Characters base64 needs for n bytes (padding included, NUL excluded). */
#define CRYPTO_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Bytes at most decoded from n characters of base64. */
#define CRYPTO_BASE64_DECODED_MAX(n) (((n) / 4) * 3)

/* One-shot SHA-256 of len bytes. */
int crypto_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *data, size_t len);
/* One-shot SHA-256 as lowercase hex (64 characters and a NUL). */
int crypto_sha256_hex(char out[CRYPTO_SHA256_HEX_SIZE], const void *data, size_t len);

/* Streaming SHA-256: init, update any number of times, final, release.
 * release may be called at any point (also after a failed init) and more
 * than once. After final the state must be init-ed again before reuse. */
struct crypto_sha256_ctx {
    void *md; /* EVP_MD_CTX */
};

int crypto_sha256_init(struct crypto_sha256_ctx *c);
int crypto_sha256_update(struct crypto_sha256_ctx *c, const void *data, size_t len);
int crypto_sha256_final(uint8_t out[CRYPTO_SHA256_LEN], struct crypto_sha256_ctx *c);
void crypto_sha256_release(struct crypto_sha256_ctx *c);

/* HMAC-SHA256 (RFC 2104) of data under key; any key length, including 0. */
int crypto_hmac_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *key, size_t key_len,
                       const void *data, size_t len);

/* Lowercase hex of len bytes into out (out_size >= 2 * len + 1, NUL-terminated).
 * RV_EINVAL when out is too small. */
int crypto_hex_encode(char *out, size_t out_size, const void *data, size_t len);
/* Strict hex decode: an even number of [0-9a-fA-F], nothing else. Writes
 * hex_len / 2 bytes to out (needs out_cap of at least that) and the count to
 * *out_len. RV_EPARSE for bad input, RV_EINVAL when out is too small. */
/* The value of one hex digit (either case), or -1. */
int crypto_hex_digit(char c);
int crypto_hex_decode(void *out, size_t *out_len, size_t out_cap, const char *hex, size_t hex_len);

/* Standard base64 (RFC 4648 section 4, '+' '/' and '=' padding), NUL-terminated;
 * out_size >= CRYPTO_BASE64_ENCODED_LEN(len) + 1. */
int crypto_base64_encode(char *out, size_t out_size, const void *data, size_t len);
/* Strict base64 decode: the standard alphabet only, length a multiple of 4,
 * padding only at the end, no whitespace, and unused bits of the last
 * character zero (so every byte string has exactly one accepted encoding).
 * RV_EPARSE for bad input, RV_EINVAL when out_cap is too small. */
int crypto_base64_decode(void *out, size_t *out_len, size_t out_cap, const char *b64,
                         size_t b64_len);

/* Compare len bytes in time that depends only on len. */
bool crypto_equal(const void *a, const void *b, size_t len);

/* Overwrite len bytes with zeros in a way the compiler cannot drop (for
 * secrets about to be freed). */
void crypto_wipe(void *p, size_t len);

/* Fill out with len bytes from OpenSSL's CSPRNG. */
int crypto_random(void *out, size_t len);

#endif
