/* seal.h - sealed secrets: values encrypted to the reconciler's public key,
 * safe to commit to Git (docs/secrets.md).
 *
 * `reeve serve` creates an X25519 key pair in its data directory on first
 * start (seal.key, 0600, and seal.pub). `reeve seal` encrypts a secret to the
 * public key; only the reconciler can open it. Each sealed value is bound to
 * a scope, the cluster it belongs to ("namespace/name"): a value copied into
 * another cluster's spec does not open.
 *
 * Wire format, after "sealed:", standard base64 of
 *   version (1 byte, 1) | ephemeral public key (32) | nonce (12) |
 *   ciphertext | GCM tag (16)
 * with key = HKDF-SHA256(ikm = X25519(ephemeral, recipient),
 *                        salt = ephemeral public || recipient public,
 *                        info = "reeve seal v1")
 * and AAD = "reeve seal v1" NUL scope.
 *
 * The public key file holds one line: "reeve-seal-v1 <base64 of 32 bytes>".
 */
#ifndef REEVE_SEAL_H
#define REEVE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SEAL_KEY_LEN 32

struct seal_keys {
    uint8_t pub[SEAL_KEY_LEN];
    uint8_t priv[SEAL_KEY_LEN]; /* zero when only the public key is loaded */
    int has_priv;
};

/* Load dir/seal.key and dir/seal.pub, creating both when neither exists.
 * A directory with only one of them is an error (RV_EINVAL), never a silent
 * new pair: every value sealed to the old key would stop opening. */
int seal_keys_load_or_create(struct seal_keys *k, const char *dir, struct rv_error *err);
/* Load a public key file (the one line above). */
int seal_pub_load(struct seal_keys *k, const char *path, struct rv_error *err);
/* Parse "reeve-seal-v1 <base64>" (trailing newline allowed). */
int seal_pub_parse(struct seal_keys *k, const char *text, struct rv_error *err);
/* Format the public key line (without newline) into out (>= 64 bytes). */
int seal_pub_format(const struct seal_keys *k, char *out, size_t cap);
/* Wipe the private key. */
void seal_keys_wipe(struct seal_keys *k);

/* Seal len bytes for scope into a new "sealed:<base64>" string (*out, free
 * with free()). */
int seal_encrypt(char **out, const struct seal_keys *k, const char *scope, const void *plain,
                 size_t len, struct rv_error *err);
/* Open "sealed:<base64>" (or the base64 alone) sealed for scope into a new
 * NUL-terminated buffer (*out, *out_len without the NUL; wipe and free it).
 * A wrong scope, key or a modified value is RV_EINTEGRITY. */
int seal_decrypt(char **out, size_t *out_len, const struct seal_keys *k, const char *scope,
                 const char *sealed, struct rv_error *err);

#endif
