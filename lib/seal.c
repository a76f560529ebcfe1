#include "seal.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "crypto.h"
#include "limits.h"

#define SEAL_VERSION 1
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_HEAD_LEN (1 + SEAL_KEY_LEN + SEAL_NONCE_LEN)
#define SEAL_PREFIX "sealed:"
#define SEAL_PUB_TAG "reeve-seal-v1 "
static const char seal_info[] = "reeve seal v1";

/* --- keys --- */

static int x25519_public(uint8_t pub[SEAL_KEY_LEN], const uint8_t priv[SEAL_KEY_LEN])
{
    size_t n = SEAL_KEY_LEN;
    EVP_PKEY *p = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, SEAL_KEY_LEN);
    int rc = p != NULL && EVP_PKEY_get_raw_public_key(p, pub, &n) == 1 && n == SEAL_KEY_LEN
                 ? 0
                 : RV_ECRYPTO;
    EVP_PKEY_free(p);
    return rc;
}

static int x25519_shared(uint8_t out[SEAL_KEY_LEN], const uint8_t priv[SEAL_KEY_LEN],
                         const uint8_t peer[SEAL_KEY_LEN])
{
    int rc = RV_ECRYPTO;
    size_t n = SEAL_KEY_LEN;
    EVP_PKEY *me = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, SEAL_KEY_LEN);
    EVP_PKEY *them = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, SEAL_KEY_LEN);
    EVP_PKEY_CTX *c = me != NULL ? EVP_PKEY_CTX_new(me, NULL) : NULL;
    if (c != NULL && them != NULL && EVP_PKEY_derive_init(c) == 1 &&
        EVP_PKEY_derive_set_peer(c, them) == 1 && EVP_PKEY_derive(c, out, &n) == 1 &&
        n == SEAL_KEY_LEN)
        rc = 0;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(them);
    EVP_PKEY_free(me);
    return rc;
}

static int hkdf(uint8_t out[SEAL_KEY_LEN], const uint8_t ikm[SEAL_KEY_LEN],
                const uint8_t salt[2 * SEAL_KEY_LEN])
{
    size_t n = SEAL_KEY_LEN;
    int rc = RV_ECRYPTO;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (c != NULL && EVP_PKEY_derive_init(c) == 1 &&
        EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) == 1 &&
        EVP_PKEY_CTX_set1_hkdf_salt(c, salt, 2 * SEAL_KEY_LEN) == 1 &&
        EVP_PKEY_CTX_set1_hkdf_key(c, ikm, SEAL_KEY_LEN) == 1 &&
        EVP_PKEY_CTX_add1_hkdf_info(c, (const unsigned char *)seal_info,
                                    (int)(sizeof(seal_info) - 1)) == 1 &&
        EVP_PKEY_derive(c, out, &n) == 1 && n == SEAL_KEY_LEN)
        rc = 0;
    EVP_PKEY_CTX_free(c);
    return rc;
}

/* The AEAD key for one sealed value. */
static int value_key(uint8_t key[SEAL_KEY_LEN], const uint8_t priv[SEAL_KEY_LEN],
                     const uint8_t peer[SEAL_KEY_LEN], const uint8_t eph_pub[SEAL_KEY_LEN],
                     const uint8_t recipient[SEAL_KEY_LEN])
{
    uint8_t shared[SEAL_KEY_LEN], salt[2 * SEAL_KEY_LEN];
    int rc = x25519_shared(shared, priv, peer);
    memcpy(salt, eph_pub, SEAL_KEY_LEN);
    memcpy(salt + SEAL_KEY_LEN, recipient, SEAL_KEY_LEN);
    if (rc == 0)
        rc = hkdf(key, shared, salt);
    crypto_wipe(shared, sizeof(shared));
    return rc;
}

int seal_pub_format(const struct seal_keys *k, char *out, size_t cap)
{
    char b64[CRYPTO_BASE64_ENCODED_LEN(SEAL_KEY_LEN) + 1];
    if (crypto_base64_encode(b64, sizeof(b64), k->pub, SEAL_KEY_LEN) != 0)
        return RV_EINVAL;
    if ((size_t)snprintf(out, cap, "%s%s", SEAL_PUB_TAG, b64) >= cap)
        return RV_ELIMIT;
    return 0;
}

int seal_pub_parse(struct seal_keys *k, const char *text, struct rv_error *err)
{
    size_t tl = strlen(SEAL_PUB_TAG), n = 0, len;
    if (strncmp(text, SEAL_PUB_TAG, tl) != 0)
        return rv_error_set(err, RV_EPARSE, false,
                            "not a reeve public key: it must start with \"%s\"", SEAL_PUB_TAG);
    text += tl;
    len = strcspn(text, "\r\n");
    if (text[len] != '\0' && strspn(text + len, "\r\n") != strlen(text + len))
        return rv_error_set(err, RV_EPARSE, false, "a reeve public key is one line");
    memset(k, 0, sizeof(*k));
    if (crypto_base64_decode(k->pub, &n, sizeof(k->pub), text, len) != 0 || n != SEAL_KEY_LEN)
        return rv_error_set(err, RV_EPARSE, false,
                            "the public key must be 32 bytes of base64 after \"%s\"",
                            SEAL_PUB_TAG);
    return 0;
}

static int read_small(char *out, size_t cap, const char *path, struct rv_error *err)
{
    FILE *f = fopen(path, "re");
    size_t n;
    if (f == NULL)
        return rv_error_set(err, errno == ENOENT ? RV_ENOTFOUND : RV_EIO, false,
                            "cannot read %s: %s", path, strerror(errno));
    n = fread(out, 1, cap - 1, f);
    bool more = !ferror(f) && fgetc(f) != EOF;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad)
        return rv_error_set(err, RV_EIO, false, "cannot read %s", path);
    if (more)
        return rv_error_set(err, RV_ELIMIT, false, "%s is larger than a key file can be", path);
    out[n] = '\0';
    return 0;
}

int seal_pub_load(struct seal_keys *k, const char *path, struct rv_error *err)
{
    char text[RV_SEAL_KEY_FILE_MAX];
    struct rv_error e = {0};
    int rc = read_small(text, sizeof(text), path, err);
    if (rc == 0 && (rc = seal_pub_parse(k, text, &e)) != 0)
        rv_error_set(err, rc, false, "%s: %s", path, e.msg);
    return rc;
}

static int write_new(const char *path, const char *text, mode_t mode, struct rv_error *err)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return rv_error_set(err, RV_EIO, false, "cannot create %s: %s", path, strerror(errno));
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = false;
    if (!ok) {
        unlink(path);
        return rv_error_set(err, RV_EIO, false, "cannot write %s", path);
    }
    return 0;
}

static int create_pair(struct seal_keys *k, const char *key_path, const char *pub_path,
                       struct rv_error *err)
{
    char hex[2 * SEAL_KEY_LEN + 2], line[RV_SEAL_KEY_FILE_MAX];
    int rc;
    memset(k, 0, sizeof(*k));
    if (crypto_random(k->priv, SEAL_KEY_LEN) != 0 || x25519_public(k->pub, k->priv) != 0)
        return rv_error_set(err, RV_ECRYPTO, false, "cannot generate the sealing key pair");
    k->has_priv = 1;
    crypto_hex_encode(hex, sizeof(hex), k->priv, SEAL_KEY_LEN);
    strcat(hex, "\n");
    rc = write_new(key_path, hex, 0600, err);
    crypto_wipe(hex, sizeof(hex));
    if (rc != 0)
        return rc;
    seal_pub_format(k, line, sizeof(line) - 1);
    strcat(line, "\n");
    if ((rc = write_new(pub_path, line, 0644, err)) != 0)
        unlink(key_path);
    return rc;
}

static int load_priv(struct seal_keys *k, const char *key_path, struct rv_error *err)
{
    char text[RV_SEAL_KEY_FILE_MAX];
    size_t n = 0, len;
    uint8_t pub[SEAL_KEY_LEN];
    int rc = read_small(text, sizeof(text), key_path, err);
    if (rc != 0)
        return rc;
    len = strcspn(text, "\r\n");
    rc = crypto_hex_decode(k->priv, &n, sizeof(k->priv), text, len);
    crypto_wipe(text, sizeof(text));
    if (rc != 0 || n != SEAL_KEY_LEN)
        return rv_error_set(err, RV_EPARSE, false, "%s: not a sealing key (64 hex characters)",
                            key_path);
    if (x25519_public(pub, k->priv) != 0 || !crypto_equal(pub, k->pub, SEAL_KEY_LEN))
        return rv_error_set(err, RV_EINVAL, false,
                            "%s does not match %s: restore both files from the same backup",
                            key_path, "seal.pub");
    k->has_priv = 1;
    return 0;
}

int seal_keys_load_or_create(struct seal_keys *k, const char *dir, struct rv_error *err)
{
    char key_path[RV_PATH_MAX], pub_path[RV_PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(key_path, sizeof(key_path), "%s/seal.key", dir) >= sizeof(key_path) ||
        (size_t)snprintf(pub_path, sizeof(pub_path), "%s/seal.pub", dir) >= sizeof(pub_path))
        return rv_error_set(err, RV_ELIMIT, false, "data directory path too long");
    bool has_key = stat(key_path, &st) == 0, has_pub = stat(pub_path, &st) == 0;
    if (!has_key && !has_pub)
        return create_pair(k, key_path, pub_path, err);
    if (!has_key || !has_pub)
        return rv_error_set(err, RV_EINVAL, false,
                            "%s exists without %s: restore the missing file (a new key pair "
                            "would make every sealed secret unreadable)",
                            has_key ? key_path : pub_path, has_key ? pub_path : key_path);
    int rc = seal_pub_load(k, pub_path, err);
    if (rc == 0)
        rc = load_priv(k, key_path, err);
    if (rc != 0)
        seal_keys_wipe(k);
    return rc;
}

void seal_keys_wipe(struct seal_keys *k)
{
    crypto_wipe(k->priv, sizeof(k->priv));
    k->has_priv = 0;
}

/* --- values --- */

static int aad_set(EVP_CIPHER_CTX *c, const char *scope)
{
    int n = 0;
    return EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)seal_info, sizeof(seal_info)) ==
                       1 &&
                   EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)scope,
                                    (int)strlen(scope)) == 1
               ? 0
               : RV_ECRYPTO;
}

static int check_scope(const char *scope, struct rv_error *err)
{
    if (scope == NULL || scope[0] == '\0' || strlen(scope) > RV_SEAL_SCOPE_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "a sealed secret needs its cluster as scope (namespace/name)");
    return 0;
}

static int gcm_seal(uint8_t *ct, uint8_t tag[SEAL_TAG_LEN], const uint8_t key[SEAL_KEY_LEN],
                    const uint8_t nonce[SEAL_NONCE_LEN], const char *scope, const void *plain,
                    size_t len)
{
    int n = 0, rc = RV_ECRYPTO;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c != NULL && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
        aad_set(c, scope) == 0 &&
        (len == 0 || EVP_EncryptUpdate(c, ct, &n, plain, (int)len) == 1) &&
        EVP_EncryptFinal_ex(c, ct + n, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    return rc;
}

static int gcm_open(uint8_t *plain, const uint8_t key[SEAL_KEY_LEN],
                    const uint8_t nonce[SEAL_NONCE_LEN], const char *scope, const uint8_t *ct,
                    size_t len, const uint8_t tag[SEAL_TAG_LEN])
{
    int n = 0, rc = RV_EINTEGRITY;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        return RV_ENOMEM;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
        aad_set(c, scope) == 0 &&
        (len == 0 || EVP_DecryptUpdate(c, plain, &n, ct, (int)len) == 1) &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, (void *)tag) == 1 &&
        EVP_DecryptFinal_ex(c, plain + n, &n) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int seal_encrypt(char **out, const struct seal_keys *k, const char *scope, const void *plain,
                 size_t len, struct rv_error *err)
{
    uint8_t eph[SEAL_KEY_LEN], key[SEAL_KEY_LEN];
    uint8_t *raw = NULL;
    size_t raw_len = SEAL_HEAD_LEN + len + SEAL_TAG_LEN, pl = strlen(SEAL_PREFIX);
    char *text = NULL;
    int rc;

    *out = NULL;
    if ((rc = check_scope(scope, err)) != 0)
        return rc;
    if (len > RV_SEAL_PLAIN_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "a secret to seal is at most %d bytes",
                            RV_SEAL_PLAIN_MAX);
    raw = malloc(raw_len);
    text = malloc(pl + CRYPTO_BASE64_ENCODED_LEN(raw_len) + 1);
    if (raw == NULL || text == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory sealing a secret");
        goto out;
    }
    raw[0] = SEAL_VERSION;
    if (crypto_random(eph, sizeof(eph)) != 0 || x25519_public(raw + 1, eph) != 0 ||
        crypto_random(raw + 1 + SEAL_KEY_LEN, SEAL_NONCE_LEN) != 0 ||
        value_key(key, eph, k->pub, raw + 1, k->pub) != 0 ||
        gcm_seal(raw + SEAL_HEAD_LEN, raw + SEAL_HEAD_LEN + len, key, raw + 1 + SEAL_KEY_LEN,
                 scope, plain, len) != 0) {
        rc = rv_error_set(err, RV_ECRYPTO, false, "cannot seal the secret (OpenSSL failed)");
        goto out;
    }
    memcpy(text, SEAL_PREFIX, pl);
    crypto_base64_encode(text + pl, CRYPTO_BASE64_ENCODED_LEN(raw_len) + 1, raw, raw_len);
    *out = text;
    text = NULL;
out:
    crypto_wipe(eph, sizeof(eph));
    crypto_wipe(key, sizeof(key));
    free(raw);
    free(text);
    return rc;
}

int seal_decrypt(char **out, size_t *out_len, const struct seal_keys *k, const char *scope,
                 const char *sealed, struct rv_error *err)
{
    size_t pl = strlen(SEAL_PREFIX), blen, raw_len = 0, clen;
    uint8_t key[SEAL_KEY_LEN], *raw = NULL;
    char *plain = NULL;
    int rc;

    *out = NULL;
    *out_len = 0;
    if ((rc = check_scope(scope, err)) != 0)
        return rc;
    if (!k->has_priv)
        return rv_error_set(err, RV_EINVAL, false, "no private key to open sealed secrets");
    if (strncmp(sealed, SEAL_PREFIX, pl) == 0)
        sealed += pl;
    blen = strlen(sealed);
    if (blen > CRYPTO_BASE64_ENCODED_LEN(SEAL_HEAD_LEN + RV_SEAL_PLAIN_MAX + SEAL_TAG_LEN))
        return rv_error_set(err, RV_ELIMIT, false, "the sealed value is too long");
    raw = malloc(CRYPTO_BASE64_DECODED_MAX(blen) + 1);
    if (raw == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory opening a sealed secret");
    if (crypto_base64_decode(raw, &raw_len, CRYPTO_BASE64_DECODED_MAX(blen) + 1, sealed, blen) !=
            0 ||
        raw_len < SEAL_HEAD_LEN + SEAL_TAG_LEN || raw[0] != SEAL_VERSION) {
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "not a sealed secret made by `reeve seal` (bad encoding or version)");
        goto out;
    }
    clen = raw_len - SEAL_HEAD_LEN - SEAL_TAG_LEN;
    plain = malloc(clen + 1);
    if (plain == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory opening a sealed secret");
        goto out;
    }
    rc = value_key(key, k->priv, raw + 1, raw + 1, k->pub);
    if (rc == 0)
        rc = gcm_open((uint8_t *)plain, key, raw + 1 + SEAL_KEY_LEN, scope, raw + SEAL_HEAD_LEN,
                      clen, raw + SEAL_HEAD_LEN + clen);
    crypto_wipe(key, sizeof(key));
    if (rc != 0) {
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "the sealed secret does not open for %s: it was sealed for another "
                          "cluster or another reconciler's key, or was modified; seal it again "
                          "with `reeve seal --cluster %s`",
                          scope, scope);
        goto out;
    }
    plain[clen] = '\0';
    *out = plain;
    *out_len = clen;
    plain = NULL;
out:
    if (plain != NULL)
        crypto_wipe(plain, clen + 1);
    free(plain);
    free(raw);
    return rc;
}
