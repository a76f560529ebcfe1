#include "crypto.h"

#include <string.h>

#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "err.h"

/* OpenSSL takes lengths as int. */
#define CRYPTO_INT_MAX ((size_t)INT_MAX)

int crypto_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *data, size_t len)
{
    unsigned int n = 0;
    if (out == NULL || (data == NULL && len > 0))
        return RV_EINVAL;
    if (EVP_Digest(len > 0 ? data : "", len, out, &n, EVP_sha256(), NULL) != 1 ||
        n != CRYPTO_SHA256_LEN)
        return RV_ECRYPTO;
    return 0;
}

int crypto_sha256_hex(char out[CRYPTO_SHA256_HEX_SIZE], const void *data, size_t len)
{
    uint8_t md[CRYPTO_SHA256_LEN];
    int rc = crypto_sha256(md, data, len);
    if (rc == 0)
        rc = crypto_hex_encode(out, CRYPTO_SHA256_HEX_SIZE, md, sizeof(md));
    return rc;
}

int crypto_sha256_init(struct crypto_sha256_ctx *c)
{
    int rc = 0;
    EVP_MD_CTX *md = NULL;

    if (c == NULL)
        return RV_EINVAL;
    c->md = NULL;
    md = EVP_MD_CTX_new();
    if (md == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = RV_ECRYPTO;
        goto out;
    }
    c->md = md;
    md = NULL;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

int crypto_sha256_update(struct crypto_sha256_ctx *c, const void *data, size_t len)
{
    if (c == NULL || c->md == NULL || (data == NULL && len > 0))
        return RV_EINVAL;
    if (len == 0)
        return 0;
    if (EVP_DigestUpdate(c->md, data, len) != 1)
        return RV_ECRYPTO;
    return 0;
}

int crypto_sha256_final(uint8_t out[CRYPTO_SHA256_LEN], struct crypto_sha256_ctx *c)
{
    unsigned int n = 0;
    int rc = 0;

    if (out == NULL || c == NULL || c->md == NULL)
        return RV_EINVAL;
    if (EVP_DigestFinal_ex(c->md, out, &n) != 1 || n != CRYPTO_SHA256_LEN)
        rc = RV_ECRYPTO;
    crypto_sha256_release(c);
    return rc;
}

void crypto_sha256_release(struct crypto_sha256_ctx *c)
{
    if (c == NULL)
        return;
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

int crypto_hmac_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *key, size_t key_len,
                       const void *data, size_t len)
{
    /* OpenSSL reads a NULL key as "reuse the previous key"; an empty key
     * must still be a real (empty) key. */
    static const uint8_t empty[1] = {0};
    unsigned int n = 0;

    if (out == NULL || (key == NULL && key_len > 0) || (data == NULL && len > 0) ||
        key_len > CRYPTO_INT_MAX)
        return RV_EINVAL;
    if (HMAC(EVP_sha256(), key_len > 0 ? key : empty, (int)key_len, len > 0 ? data : empty, len,
             out, &n) == NULL ||
        n != CRYPTO_SHA256_LEN)
        return RV_ECRYPTO;
    return 0;
}

int crypto_hex_encode(char *out, size_t out_size, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;

    if (out == NULL || (data == NULL && len > 0) || len > (SIZE_MAX - 1) / 2 ||
        out_size < 2 * len + 1)
        return RV_EINVAL;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }
    out[2 * len] = '\0';
    return 0;
}

int crypto_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int crypto_hex_decode(void *out, size_t *out_len, size_t out_cap, const char *hex, size_t hex_len)
{
    uint8_t *o = out;

    if (out_len != NULL)
        *out_len = 0;
    if ((out == NULL && out_cap > 0) || out_len == NULL || (hex == NULL && hex_len > 0))
        return RV_EINVAL;
    if (hex_len % 2 != 0)
        return RV_EPARSE;
    if (hex_len / 2 > out_cap)
        return RV_EINVAL;
    for (size_t i = 0; i < hex_len; i += 2) {
        int hi = crypto_hex_digit(hex[i]);
        int lo = crypto_hex_digit(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return RV_EPARSE;
        o[i / 2] = (uint8_t)((hi << 4) | lo);
    }
    *out_len = hex_len / 2;
    return 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int crypto_base64_encode(char *out, size_t out_size, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t o = 0;

    if (out == NULL || (data == NULL && len > 0) || len > (SIZE_MAX / 4) * 3 - 3 ||
        out_size < CRYPTO_BASE64_ENCODED_LEN(len) + 1)
        return RV_EINVAL;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int crypto_base64_decode(void *out, size_t *out_len, size_t out_cap, const char *b64,
                         size_t b64_len)
{
    uint8_t *o = out;
    size_t n = 0;

    if (out_len != NULL)
        *out_len = 0;
    if ((out == NULL && out_cap > 0) || out_len == NULL || (b64 == NULL && b64_len > 0))
        return RV_EINVAL;
    if (b64_len % 4 != 0)
        return RV_EPARSE;
    size_t pad = 0;
    if (b64_len > 0 && b64[b64_len - 1] == '=')
        pad = (b64_len > 1 && b64[b64_len - 2] == '=') ? 2 : 1;
    size_t decoded = b64_len / 4 * 3 - pad;
    if (decoded > out_cap)
        return RV_EINVAL;

    for (size_t i = 0; i < b64_len; i += 4) {
        bool last = i + 4 == b64_len;
        size_t chars = (last ? 4 - pad : 4);
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = 0;
            if (k < chars) {
                d = b64_value(b64[i + k]);
                if (d < 0)
                    return RV_EPARSE; /* also catches '=' in the middle */
            }
            v = v << 6 | (uint32_t)d;
        }
        /* Unused low bits of the last character must be zero. */
        if (chars == 2 && (v & 0xffff) != 0)
            return RV_EPARSE;
        if (chars == 3 && (v & 0xff) != 0)
            return RV_EPARSE;
        o[n++] = (uint8_t)(v >> 16);
        if (chars >= 3)
            o[n++] = (uint8_t)(v >> 8);
        if (chars == 4)
            o[n++] = (uint8_t)v;
    }
    *out_len = n;
    return 0;
}

bool crypto_equal(const void *a, const void *b, size_t len)
{
    if (len == 0)
        return true;
    return CRYPTO_memcmp(a, b, len) == 0;
}

void crypto_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

int crypto_random(void *out, size_t len)
{
    uint8_t *p = out;

    if (out == NULL && len > 0)
        return RV_EINVAL;
    while (len > 0) {
        int chunk = (int)(len > CRYPTO_INT_MAX ? CRYPTO_INT_MAX : len);
        if (RAND_bytes(p, chunk) != 1)
            return RV_ECRYPTO;
        p += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}
