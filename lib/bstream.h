/* bstream.h - the encoded form of every backup object.
 *
 * An encoder is a sink: raw bytes written to it are compressed with zstd,
 * cut into chunks, each chunk sealed (AES-256-GCM when a key is given, a
 * SHA-256 check value otherwise) and written to a downstream sink; the
 * SHA-256 of the stored bytes is computed on the way. A decoder is a source
 * reading an encoded object from an upstream source and giving back the raw
 * bytes, checking every chunk. Memory stays bounded whatever the object's
 * size (one chunk and the zstd state). The format is in docs/backup-format.md.
 *
 * Damaged input (a modified byte, a truncated object, reordered, repeated or
 * missing chunks, trailing bytes, a wrong or missing key, a SHA-256 that does
 * not match) fails with RV_EINTEGRITY and a plain message.
 */
#ifndef REEVE_BSTREAM_H
#define REEVE_BSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "objstore.h"

/* An encryption key is 32 bytes, written as 64 hex characters. */
#define BSTREAM_KEY_LEN 32
/* SHA-256 hex of the stored bytes, with its NUL. */
#define BSTREAM_SHA256_HEX_SIZE 65

struct bstream_opts {
    const uint8_t *key; /* BSTREAM_KEY_LEN bytes (copied), or NULL: not encrypted */
    int zstd_level;     /* RV_BSTREAM_LEVEL_MIN..MAX; 0: RV_BSTREAM_LEVEL_DEFAULT */
    size_t chunk_size;  /* compressed bytes per chunk; 0: RV_BSTREAM_CHUNK_DEFAULT */
    /* Called after each chunk is stored (may be NULL): raw bytes taken and
     * stored bytes written so far. */
    void (*progress)(uint64_t raw, uint64_t stored, void *ud);
    void *progress_ud;
    /* zstd compression threads besides the caller's, 0 to RV_BSTREAM_WORKERS_MAX
     * (0: compress in the calling thread). Any setting decodes the same way. */
    int workers;
};

struct bstream_result {
    uint64_t raw_bytes;                   /* bytes before encoding (0 when verify had no key) */
    uint64_t stored_bytes;                /* bytes of the encoded object */
    char sha256[BSTREAM_SHA256_HEX_SIZE]; /* lowercase hex of the stored bytes */
    bool encrypted;                       /* the object's header says it is encrypted */
};

/* A sink that encodes into down. opts may be NULL (defaults, no key).
 * Finishing the encoder finishes down and then fills *res (may be NULL);
 * aborting it, or a failed write or finish, aborts down. On failure of this
 * call down is untouched and still the caller's. RV_EINVAL for bad options. */
int bstream_encoder_new(struct rv_sink **out, struct rv_sink *down, const struct bstream_opts *opts,
                        struct bstream_result *res, struct rv_error *err);

/* A source giving the raw bytes of the encoded object read from up. key:
 * BSTREAM_KEY_LEN bytes (copied) or NULL; an unencrypted object decodes with
 * or without a key. expect_sha256: 64 hex characters, or NULL not to check;
 * it is compared when the end is reached, before the end is reported.
 * Closing the decoder closes up (also when this call fails). */
int bstream_decoder_new(struct rv_source **out, struct rv_source *up, const uint8_t *key,
                        const char *expect_sha256, struct rv_error *err);

/* Read a whole encoded object from up (left open) and check it. With a key,
 * or for an unencrypted object, every chunk is checked and decompressed
 * (raw_bytes counted); an encrypted object without a key gets its framing
 * and SHA-256 checked only. res (may be NULL) is filled on success. */
int bstream_verify(struct rv_source *up, const uint8_t *key, const char *expect_sha256,
                   struct bstream_result *res, struct rv_error *err);

/* Parse a key written as exactly 64 hex characters; anything else is
 * RV_EINVAL with advice on how to make one. */
int bstream_key_parse(uint8_t out[BSTREAM_KEY_LEN], const char *hex, struct rv_error *err);

#endif
