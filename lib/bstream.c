/* bstream.c - the encoded backup format: zstd, then chunks sealed with
 * AES-256-GCM (or a SHA-256 check value without a key), then SHA-256 of the
 * stored bytes. docs/backup-format.md describes the bytes; in short:
 *
 *   header (64 bytes): "REEVEBK1", version 1, flags, 0, 0, chunk size
 *                      (u32 BE), salt (32 random bytes), key check (16)
 *   chunks:            u32 BE word (bit 31: final, bits 0-30: length),
 *                      payload (length bytes), tag (16 bytes)
 *
 * The object key is HMAC-SHA256(key, "reeve-backup-v1 key" || salt), the
 * nonce of chunk i is 4 zero bytes and i (u64 BE), and the associated data
 * is the header, i (u64 BE) and the final flag (1 byte): a modified header,
 * a moved, repeated or missing chunk and a cut-off end all fail a tag.
 */
#include "bstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "crypto.h"

#define BS_MAGIC "REEVEBK1"
#define BS_MAGIC_LEN 8
#define BS_VERSION 1
#define BS_FLAG_ENCRYPTED 0x01u
#define BS_FLAG_ZSTD 0x02u
#define BS_FLAGS_KNOWN (BS_FLAG_ENCRYPTED | BS_FLAG_ZSTD)
#define BS_HEADER_LEN 64
#define BS_OFF_VERSION 8
#define BS_OFF_FLAGS 9
#define BS_OFF_RESERVED 10
#define BS_OFF_CHUNK 12
#define BS_OFF_SALT 16
#define BS_SALT_LEN 32
#define BS_OFF_CHECK 48
#define BS_CHECK_LEN 16
#define BS_TAG_LEN 16
#define BS_WORD_LEN 4
#define BS_FINAL 0x80000000u
#define BS_NONCE_LEN 12
#define BS_AAD_LEN (BS_HEADER_LEN + 8 + 1)
#define BS_LABEL_KEY "reeve-backup-v1 key"
#define BS_LABEL_CHECK "reeve-backup-v1 check"

_Static_assert(BS_OFF_CHECK + BS_CHECK_LEN == BS_HEADER_LEN, "header layout");
_Static_assert(BS_OFF_SALT + BS_SALT_LEN == BS_OFF_CHECK, "header layout");
_Static_assert(RV_BSTREAM_CHUNK_MAX < BS_FINAL, "lengths leave the final bit free");

/* ---- chunk sealing, shared by the encoder and the decoder ---- */

struct bs_seal {
    uint8_t header[BS_HEADER_LEN];
    bool encrypted;
    EVP_CIPHER_CTX *cipher; /* keyed with the object key when encrypted */
};

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static void seal_release(struct bs_seal *s)
{
    EVP_CIPHER_CTX_free(s->cipher);
    s->cipher = NULL;
}

/* Derive the object key and the key check value from key and the salt. */
static int derive(uint8_t okey[CRYPTO_SHA256_LEN], uint8_t check[BS_CHECK_LEN], const uint8_t *key,
                  const uint8_t *salt)
{
    uint8_t msg[sizeof(BS_LABEL_KEY) - 1 + BS_SALT_LEN];
    uint8_t md[CRYPTO_SHA256_LEN] = {0};
    memcpy(msg, BS_LABEL_KEY, sizeof(BS_LABEL_KEY) - 1);
    memcpy(msg + sizeof(BS_LABEL_KEY) - 1, salt, BS_SALT_LEN);
    int rc = crypto_hmac_sha256(okey, key, BSTREAM_KEY_LEN, msg, sizeof(msg));
    if (rc == 0)
        rc = crypto_hmac_sha256(md, okey, CRYPTO_SHA256_LEN, BS_LABEL_CHECK,
                                sizeof(BS_LABEL_CHECK) - 1);
    memcpy(check, md, BS_CHECK_LEN);
    crypto_wipe(md, sizeof(md));
    return rc;
}

/* Key the cipher of s with okey (s->header is set). */
static int seal_key(struct bs_seal *s, const uint8_t okey[CRYPTO_SHA256_LEN])
{
    s->cipher = EVP_CIPHER_CTX_new();
    if (s->cipher == NULL)
        return RV_ENOMEM;
    if (EVP_CipherInit_ex(s->cipher, EVP_aes_256_gcm(), NULL, okey, NULL, -1) != 1)
        return RV_ECRYPTO;
    return 0;
}

static void chunk_aad(uint8_t aad[BS_AAD_LEN], const struct bs_seal *s, uint64_t index, bool final)
{
    memcpy(aad, s->header, BS_HEADER_LEN);
    put_u64(aad + BS_HEADER_LEN, index);
    aad[BS_HEADER_LEN + 8] = final ? 1 : 0;
}

/* The check value of an unencrypted chunk: the first 16 bytes of
 * SHA-256(associated data || u32 BE length || payload). */
static int chunk_check(uint8_t out[BS_TAG_LEN], const struct bs_seal *s, uint64_t index, bool final,
                       const uint8_t *data, size_t len)
{
    uint8_t aad[BS_AAD_LEN + 4];
    uint8_t md[CRYPTO_SHA256_LEN];
    struct crypto_sha256_ctx c;
    chunk_aad(aad, s, index, final);
    put_u32(aad + BS_AAD_LEN, (uint32_t)len);
    int rc = crypto_sha256_init(&c);
    if (rc == 0)
        rc = crypto_sha256_update(&c, aad, sizeof(aad));
    if (rc == 0)
        rc = crypto_sha256_update(&c, data, len);
    if (rc == 0)
        rc = crypto_sha256_final(md, &c);
    crypto_sha256_release(&c);
    memcpy(out, md, BS_TAG_LEN);
    return rc;
}

/* Start a GCM operation for one chunk: nonce and associated data. */
static int gcm_start(const struct bs_seal *s, uint64_t index, bool final, int enc)
{
    uint8_t nonce[BS_NONCE_LEN] = {0};
    uint8_t aad[BS_AAD_LEN];
    int outl = 0;
    put_u64(nonce + 4, index);
    chunk_aad(aad, s, index, final);
    if (EVP_CipherInit_ex(s->cipher, NULL, NULL, NULL, nonce, enc) != 1 ||
        EVP_CipherUpdate(s->cipher, NULL, &outl, aad, (int)sizeof(aad)) != 1)
        return RV_ECRYPTO;
    return 0;
}

/* Seal len bytes at buf in place and write the tag after them. */
static int seal_chunk(const struct bs_seal *s, uint64_t index, bool final, uint8_t *buf, size_t len)
{
    if (!s->encrypted)
        return chunk_check(buf + len, s, index, final, buf, len);
    int outl = 0;
    int rc = gcm_start(s, index, final, 1);
    if (rc != 0)
        return rc;
    if (len > 0 &&
        (EVP_CipherUpdate(s->cipher, buf, &outl, buf, (int)len) != 1 || (size_t)outl != len))
        return RV_ECRYPTO;
    if (EVP_CipherFinal_ex(s->cipher, buf + len, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->cipher, EVP_CTRL_GCM_GET_TAG, BS_TAG_LEN, buf + len) != 1)
        return RV_ECRYPTO;
    return 0;
}

/* Check (and decrypt in place) the len bytes at buf followed by their tag:
 * 0, RV_EINTEGRITY when the tag does not match, RV_ECRYPTO. */
static int open_chunk(const struct bs_seal *s, uint64_t index, bool final, uint8_t *buf, size_t len)
{
    uint8_t tag[BS_TAG_LEN];
    memcpy(tag, buf + len, BS_TAG_LEN);
    if (!s->encrypted) {
        uint8_t want[BS_TAG_LEN];
        int rc = chunk_check(want, s, index, final, buf, len);
        if (rc != 0)
            return rc;
        return crypto_equal(want, tag, BS_TAG_LEN) ? 0 : RV_EINTEGRITY;
    }
    int outl = 0;
    int rc = gcm_start(s, index, final, 0);
    if (rc != 0)
        return rc;
    if (len > 0 &&
        (EVP_CipherUpdate(s->cipher, buf, &outl, buf, (int)len) != 1 || (size_t)outl != len))
        return RV_ECRYPTO;
    if (EVP_CIPHER_CTX_ctrl(s->cipher, EVP_CTRL_GCM_SET_TAG, BS_TAG_LEN, tag) != 1)
        return RV_ECRYPTO;
    if (EVP_CipherFinal_ex(s->cipher, buf + len, &outl) != 1)
        return RV_EINTEGRITY;
    return 0;
}

static int sha_hex(char out[BSTREAM_SHA256_HEX_SIZE], struct crypto_sha256_ctx *c)
{
    uint8_t md[CRYPTO_SHA256_LEN];
    int rc = crypto_sha256_final(md, c);
    if (rc == 0)
        rc = crypto_hex_encode(out, BSTREAM_SHA256_HEX_SIZE, md, sizeof(md));
    return rc;
}

/* ---- the encoder ---- */

struct bs_encoder {
    struct rv_sink base;
    struct rv_sink *down;
    struct bs_seal seal;
    ZSTD_CCtx *zc;
    struct crypto_sha256_ctx sha;
    /* One frame: word, payload (compressed, sealed in place), tag. */
    uint8_t *frame;
    size_t chunk_size;
    size_t chunk_len;
    uint64_t index;
    bool header_written;
    int failed; /* the error of a failed write; finish then aborts */
    uint64_t raw, stored;
    void (*progress)(uint64_t raw, uint64_t stored, void *ud);
    void *progress_ud;
    struct bstream_result *res;
};

static void encoder_free(struct bs_encoder *e)
{
    seal_release(&e->seal);
    ZSTD_freeCCtx(e->zc);
    crypto_sha256_release(&e->sha);
    free(e->frame);
    free(e);
}

static int down_write(struct bs_encoder *e, const uint8_t *p, size_t len, struct rv_error *err)
{
    int rc = crypto_sha256_update(&e->sha, p, len);
    if (rc != 0)
        return rv_error_set(err, rc, false, "cannot compute the backup object's SHA-256");
    rc = rv_sink_write(e->down, p, len, err);
    if (rc == 0)
        e->stored += len;
    return rc;
}

/* Seal the current chunk and write it (after the header, the first time). */
static int emit(struct bs_encoder *e, bool final, struct rv_error *err)
{
    int rc = 0;
    if (!e->header_written) {
        rc = down_write(e, e->seal.header, BS_HEADER_LEN, err);
        if (rc != 0)
            return rc;
        e->header_written = true;
    }
    uint8_t *payload = e->frame + BS_WORD_LEN;
    rc = seal_chunk(&e->seal, e->index, final, payload, e->chunk_len);
    if (rc != 0)
        return rv_error_set(err, rc, false, "cannot seal backup chunk %llu",
                            (unsigned long long)e->index);
    put_u32(e->frame, (uint32_t)e->chunk_len | (final ? BS_FINAL : 0));
    rc = down_write(e, e->frame, BS_WORD_LEN + e->chunk_len + BS_TAG_LEN, err);
    if (rc != 0)
        return rc;
    e->index++;
    e->chunk_len = 0;
    if (e->progress != NULL)
        e->progress(e->raw, e->stored, e->progress_ud);
    return 0;
}

/* Run zstd over in (mode ZSTD_e_continue or ZSTD_e_end) until it has taken
 * all of in (and, at the end, written the whole frame), emitting full chunks
 * as they fill. A full chunk is emitted only when more output follows, so
 * the last chunk is always the one finish marks final. */
static int compress(struct bs_encoder *e, ZSTD_inBuffer *in, ZSTD_EndDirective mode,
                    struct rv_error *err)
{
    for (;;) {
        if (e->chunk_len == e->chunk_size) {
            int rc = emit(e, false, err);
            if (rc != 0)
                return rc;
        }
        ZSTD_outBuffer out = {e->frame + BS_WORD_LEN, e->chunk_size, e->chunk_len};
        size_t r = ZSTD_compressStream2(e->zc, &out, in, mode);
        if (ZSTD_isError(r))
            return rv_error_set(err, RV_EINTERNAL, false, "zstd compression failed: %s",
                                ZSTD_getErrorName(r));
        e->chunk_len = out.pos;
        if (mode == ZSTD_e_continue ? in->pos == in->size : r == 0)
            return 0;
    }
}

static int encoder_write(struct rv_sink *s, const void *data, size_t len, struct rv_error *err)
{
    struct bs_encoder *e = (struct bs_encoder *)s;
    if (e->failed != 0)
        return rv_error_set(err, e->failed, false,
                            "cannot write to the backup object: an earlier write failed");
    if (len == 0)
        return 0;
    ZSTD_inBuffer in = {data, len, 0};
    e->raw += len;
    int rc = compress(e, &in, ZSTD_e_continue, err);
    if (rc != 0)
        e->failed = rc;
    return rc;
}

static void encoder_abort(struct rv_sink *s)
{
    struct bs_encoder *e = (struct bs_encoder *)s;
    rv_sink_abort(e->down);
    encoder_free(e);
}

static int encoder_finish(struct rv_sink *s, struct rv_error *err)
{
    struct bs_encoder *e = (struct bs_encoder *)s;
    ZSTD_inBuffer in = {NULL, 0, 0};
    int rc = e->failed;
    if (rc != 0) {
        rv_error_set(err, rc, false, "cannot finish the backup object: an earlier write failed");
        goto fail;
    }
    rc = compress(e, &in, ZSTD_e_end, err);
    if (rc == 0)
        rc = emit(e, true, err);
    if (rc != 0)
        goto fail;
    struct bstream_result r = {
        .raw_bytes = e->raw, .stored_bytes = e->stored, .encrypted = e->seal.encrypted};
    rc = sha_hex(r.sha256, &e->sha);
    if (rc != 0) {
        rv_error_set(err, rc, false, "cannot compute the backup object's SHA-256");
        goto fail;
    }
    struct rv_sink *down = e->down;
    struct bstream_result *res = e->res;
    encoder_free(e);
    rc = rv_sink_finish(down, err);
    if (rc == 0 && res != NULL)
        *res = r;
    return rc;
fail:
    encoder_abort(s);
    return rc;
}

static int encoder_options(const struct bstream_opts *o, int *level, size_t *chunk,
                           struct rv_error *err)
{
    *level = o->zstd_level != 0 ? o->zstd_level : RV_BSTREAM_LEVEL_DEFAULT;
    *chunk = o->chunk_size != 0 ? o->chunk_size : RV_BSTREAM_CHUNK_DEFAULT;
    if (*level < RV_BSTREAM_LEVEL_MIN || *level > RV_BSTREAM_LEVEL_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "compression level %d is out of range (use %d to %d)", *level,
                            RV_BSTREAM_LEVEL_MIN, RV_BSTREAM_LEVEL_MAX);
    if (o->workers < 0 || o->workers > RV_BSTREAM_WORKERS_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "compression workers %d is out of range (use 0 to %d)", o->workers,
                            RV_BSTREAM_WORKERS_MAX);
    if (*chunk < RV_BSTREAM_CHUNK_MIN || *chunk > RV_BSTREAM_CHUNK_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "chunk size %zu is out of range (use %d to %d bytes)", *chunk,
                            RV_BSTREAM_CHUNK_MIN, RV_BSTREAM_CHUNK_MAX);
    return 0;
}

/* Fill the header, and key the cipher when encrypting. */
static int encoder_header(struct bs_encoder *e, const uint8_t *key)
{
    uint8_t *h = e->seal.header;
    memcpy(h, BS_MAGIC, BS_MAGIC_LEN);
    h[BS_OFF_VERSION] = BS_VERSION;
    h[BS_OFF_FLAGS] = (uint8_t)(BS_FLAG_ZSTD | (key != NULL ? BS_FLAG_ENCRYPTED : 0));
    put_u32(h + BS_OFF_CHUNK, (uint32_t)e->chunk_size);
    if (crypto_random(h + BS_OFF_SALT, BS_SALT_LEN) != 0)
        return RV_ECRYPTO;
    if (key == NULL)
        return 0;
    uint8_t okey[CRYPTO_SHA256_LEN];
    e->seal.encrypted = true;
    int rc = derive(okey, h + BS_OFF_CHECK, key, h + BS_OFF_SALT);
    if (rc == 0)
        rc = seal_key(&e->seal, okey);
    crypto_wipe(okey, sizeof(okey));
    return rc;
}

static int encoder_zstd(struct bs_encoder *e, int level, int workers)
{
    e->zc = ZSTD_createCCtx();
    if (e->zc == NULL)
        return RV_ENOMEM;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(e->zc, ZSTD_c_compressionLevel, level)))
        return RV_EINTERNAL;
    /* A libzstd built without threads refuses workers: compress inline. */
    if (workers > 0)
        (void)ZSTD_CCtx_setParameter(e->zc, ZSTD_c_nbWorkers, workers);
    return 0;
}

int bstream_encoder_new(struct rv_sink **out, struct rv_sink *down, const struct bstream_opts *opts,
                        struct bstream_result *res, struct rv_error *err)
{
    static const struct bstream_opts defaults = {0};
    const struct bstream_opts *o = opts != NULL ? opts : &defaults;
    int level = 0;
    size_t chunk = 0;
    *out = NULL;
    if (down == NULL)
        return rv_error_set(err, RV_EINVAL, false, "backup encoder needs a destination");
    int rc = encoder_options(o, &level, &chunk, err);
    if (rc != 0)
        return rc;
    struct bs_encoder *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    e->down = down;
    e->chunk_size = chunk;
    e->progress = o->progress;
    e->progress_ud = o->progress_ud;
    e->res = res;
    e->frame = malloc(BS_WORD_LEN + chunk + BS_TAG_LEN);
    rc = e->frame == NULL ? RV_ENOMEM : 0;
    if (rc == 0)
        rc = crypto_sha256_init(&e->sha);
    if (rc == 0)
        rc = encoder_header(e, o->key);
    if (rc == 0)
        rc = encoder_zstd(e, level, o->workers);
    if (rc != 0) {
        encoder_free(e);
        return rv_error_set(err, rc, false, "cannot start the backup encoder: %s", rv_strerror(rc));
    }
    e->base.write = encoder_write;
    e->base.finish = encoder_finish;
    e->base.abort = encoder_abort;
    *out = &e->base;
    return 0;
}

/* ---- the decoder ---- */

struct bs_decoder {
    struct rv_source base;
    struct rv_source *up;
    bool owns_up;    /* close up when closed (not for verify) */
    bool keyless_ok; /* verify: an encrypted object without a key is checked by framing */
    bool have_key;
    uint8_t key[BSTREAM_KEY_LEN];
    char expect[BSTREAM_SHA256_HEX_SIZE]; /* "" when not checked */
    enum { DEC_HEADER, DEC_CHUNKS, DEC_DONE, DEC_FAILED } state;
    struct rv_error failure; /* repeated by every read after a failure */
    bool framing_only;       /* encrypted and no key: chunks are not opened */
    struct bs_seal seal;
    ZSTD_DCtx *dc;
    struct crypto_sha256_ctx sha;
    uint8_t *frame; /* payload and tag of the current chunk */
    size_t chunk_size;
    size_t plain_len, plain_pos; /* the opened payload and how much zstd took */
    bool flushing;               /* zstd filled the caller's buffer: it may hold more */
    bool frame_done;             /* the zstd frame ended */
    bool final_seen;
    uint64_t index;
    uint64_t raw, stored;
    struct bstream_result result;
};

static int damaged(struct rv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* RV_EINTEGRITY: "backup object is damaged: <what>". */
static int damaged(struct rv_error *err, const char *fmt, ...)
{
    char what[RV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return rv_error_set(err, RV_EINTEGRITY, false, "backup object is damaged: %s", what);
}

/* Read exactly len bytes from up; *got < len only at its end. */
static int up_read(struct bs_decoder *d, uint8_t *buf, size_t len, size_t *got,
                   struct rv_error *err)
{
    *got = 0;
    while (*got < len) {
        size_t n = 0;
        int rc = rv_source_read(d->up, buf + *got, len - *got, &n, err);
        if (rc != 0)
            return rc;
        if (n == 0)
            break;
        if (n > len - *got)
            return rv_error_set(err, RV_EINTERNAL, false, "a source returned more than asked");
        rc = crypto_sha256_update(&d->sha, buf + *got, n);
        if (rc != 0)
            return rv_error_set(err, rc, false, "cannot compute the backup object's SHA-256");
        *got += n;
        d->stored += n;
    }
    return 0;
}

static int header_check(struct bs_decoder *d, struct rv_error *err)
{
    const uint8_t *h = d->seal.header;
    static const uint8_t zero[BS_CHECK_LEN];
    if (memcmp(h, BS_MAGIC, BS_MAGIC_LEN) != 0)
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "not a reeve backup object (its first bytes are not \"" BS_MAGIC "\")");
    if (h[BS_OFF_VERSION] != BS_VERSION)
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "backup object format version %u is not supported (this reeve "
                            "reads version %d): upgrade reeve or check the object",
                            h[BS_OFF_VERSION], BS_VERSION);
    unsigned flags = h[BS_OFF_FLAGS];
    if ((flags & ~BS_FLAGS_KNOWN) != 0 || (flags & BS_FLAG_ZSTD) == 0 || h[BS_OFF_RESERVED] != 0 ||
        h[BS_OFF_RESERVED + 1] != 0)
        return damaged(err, "its header has unknown flags (0x%02x)", flags);
    uint32_t chunk = get_u32(h + BS_OFF_CHUNK);
    if (chunk < RV_BSTREAM_CHUNK_MIN || chunk > RV_BSTREAM_CHUNK_MAX)
        return damaged(err, "its header gives a chunk size of %lu bytes", (unsigned long)chunk);
    d->chunk_size = chunk;
    d->seal.encrypted = (flags & BS_FLAG_ENCRYPTED) != 0;
    if (!d->seal.encrypted && memcmp(h + BS_OFF_CHECK, zero, BS_CHECK_LEN) != 0)
        return damaged(err, "its header has a key check but no encryption flag");
    return 0;
}

/* Key the decoder from the header: wrong and missing keys are found here. */
static int header_key(struct bs_decoder *d, struct rv_error *err)
{
    uint8_t okey[CRYPTO_SHA256_LEN];
    uint8_t check[BS_CHECK_LEN];
    if (!d->seal.encrypted)
        return 0;
    if (!d->have_key) {
        if (d->keyless_ok) {
            d->framing_only = true;
            return 0;
        }
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "backup object is encrypted: its encryption key is needed to read "
                            "it");
    }
    int rc = derive(okey, check, d->key, d->seal.header + BS_OFF_SALT);
    if (rc == 0 && !crypto_equal(check, d->seal.header + BS_OFF_CHECK, BS_CHECK_LEN))
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "wrong encryption key for this backup object (or its header is "
                          "damaged)");
    else if (rc == 0 && seal_key(&d->seal, okey) != 0)
        rc = rv_error_set(err, RV_ECRYPTO, false, "cannot set up AES-256-GCM");
    else if (rc != 0)
        rc = rv_error_set(err, rc, false, "cannot derive the object key");
    crypto_wipe(okey, sizeof(okey));
    return rc;
}

static int read_header(struct bs_decoder *d, struct rv_error *err)
{
    size_t got = 0;
    int rc = up_read(d, d->seal.header, BS_HEADER_LEN, &got, err);
    if (rc != 0)
        return rc;
    if (got == 0)
        return rv_error_set(err, RV_EINTEGRITY, false, "backup object is empty");
    if (got < BS_HEADER_LEN && memcmp(d->seal.header, BS_MAGIC, got < 8 ? got : 8) != 0)
        got = 0; /* too short to be anything: report the bad magic */
    if (got > 0 && got < BS_HEADER_LEN)
        return damaged(err, "it is truncated within its header (%zu of %d bytes)", got,
                       BS_HEADER_LEN);
    rc = header_check(d, err);
    if (rc == 0)
        rc = header_key(d, err);
    if (rc != 0)
        return rc;
    d->frame = malloc(d->chunk_size + BS_TAG_LEN);
    if (d->frame == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory reading a backup object");
    if (!d->framing_only) {
        d->dc = ZSTD_createDCtx();
        if (d->dc == NULL)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory reading a backup object");
        if (ZSTD_isError(
                ZSTD_DCtx_setParameter(d->dc, ZSTD_d_windowLogMax, RV_BSTREAM_WINDOW_LOG_MAX)))
            return rv_error_set(err, RV_EINTERNAL, false, "cannot set up zstd");
    }
    d->state = DEC_CHUNKS;
    return 0;
}

static int truncated(struct bs_decoder *d, struct rv_error *err)
{
    return damaged(err,
                   "it is truncated (it ends in or after chunk %llu, before its final "
                   "chunk)",
                   (unsigned long long)d->index);
}

static int read_chunk(struct bs_decoder *d, struct rv_error *err)
{
    uint8_t word[BS_WORD_LEN];
    size_t got = 0;
    int rc = up_read(d, word, sizeof(word), &got, err);
    if (rc != 0)
        return rc;
    if (got < sizeof(word))
        return truncated(d, err);
    uint32_t w = get_u32(word);
    bool final = (w & BS_FINAL) != 0;
    size_t len = w & ~BS_FINAL;
    if (len > d->chunk_size)
        return damaged(err, "chunk %llu is longer than the object's chunk size",
                       (unsigned long long)d->index);
    rc = up_read(d, d->frame, len + BS_TAG_LEN, &got, err);
    if (rc != 0)
        return rc;
    if (got < len + BS_TAG_LEN)
        return truncated(d, err);
    if (!d->framing_only) {
        rc = open_chunk(&d->seal, d->index, final, d->frame, len);
        if (rc == RV_EINTEGRITY)
            return damaged(err,
                           "chunk %llu fails its integrity check (modified, moved or cut "
                           "short)",
                           (unsigned long long)d->index);
        if (rc != 0)
            return rv_error_set(err, rc, false, "cannot open backup chunk %llu: %s",
                                (unsigned long long)d->index, rv_strerror(rc));
        d->plain_len = len;
        d->plain_pos = 0;
    }
    d->index++;
    d->final_seen = final;
    return 0;
}

/* After the final chunk: nothing may follow, and the SHA-256 must match. */
static int read_end(struct bs_decoder *d, struct rv_error *err)
{
    uint8_t extra;
    size_t got = 0;
    if (!d->framing_only && !d->frame_done)
        return damaged(err, "its compressed data ends early (chunk %llu is marked final)",
                       (unsigned long long)(d->index - 1));
    int rc = up_read(d, &extra, 1, &got, err);
    if (rc != 0)
        return rc;
    if (got != 0)
        return damaged(err, "bytes follow its final chunk (chunk %llu)",
                       (unsigned long long)(d->index - 1));
    struct bstream_result *r = &d->result;
    rc = sha_hex(r->sha256, &d->sha);
    if (rc != 0)
        return rv_error_set(err, rc, false, "cannot compute the backup object's SHA-256");
    if (d->expect[0] != '\0' && strcmp(d->expect, r->sha256) != 0)
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "backup object is damaged or replaced: its SHA-256 is %s, the "
                            "backup record says %s",
                            r->sha256, d->expect);
    r->raw_bytes = d->framing_only ? 0 : d->raw;
    r->stored_bytes = d->stored;
    r->encrypted = d->seal.encrypted;
    d->state = DEC_DONE;
    return 0;
}

/* Decompress from the opened payload into buf; *n may stay 0. */
static int inflate(struct bs_decoder *d, uint8_t *buf, size_t cap, size_t *n, struct rv_error *err)
{
    if (d->frame_done)
        return damaged(err, "data follows its compressed stream in chunk %llu",
                       (unsigned long long)(d->index - 1));
    ZSTD_inBuffer in = {d->frame + d->plain_pos, d->plain_len - d->plain_pos, 0};
    ZSTD_outBuffer out = {buf, cap, 0};
    size_t r = ZSTD_decompressStream(d->dc, &out, &in);
    if (ZSTD_isError(r))
        return damaged(err, "its compressed data is invalid near chunk %llu",
                       (unsigned long long)(d->index - 1));
    d->plain_pos += in.pos;
    d->frame_done = r == 0;
    d->flushing = r != 0 && out.pos == out.size;
    d->raw += out.pos;
    *n = out.pos;
    return 0;
}

static int decode_step(struct bs_decoder *d, uint8_t *buf, size_t cap, size_t *n,
                       struct rv_error *err)
{
    if (d->state == DEC_HEADER)
        return read_header(d, err);
    if (!d->framing_only && (d->plain_pos < d->plain_len || d->flushing))
        return inflate(d, buf, cap, n, err);
    if (!d->final_seen)
        return read_chunk(d, err);
    return read_end(d, err);
}

static int decoder_read(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err)
{
    struct bs_decoder *d = (struct bs_decoder *)s;
    *n = 0;
    if (cap == 0)
        return rv_error_set(err, RV_EINVAL, false, "read of a backup object with no room");
    while (d->state != DEC_DONE && d->state != DEC_FAILED && *n == 0) {
        int rc = decode_step(d, buf, cap, n, &d->failure);
        if (rc != 0)
            d->state = DEC_FAILED;
    }
    if (d->state == DEC_FAILED) {
        *n = 0;
        if (err != NULL)
            *err = d->failure;
        return d->failure.code;
    }
    return 0;
}

static void decoder_close(struct rv_source *s)
{
    struct bs_decoder *d = (struct bs_decoder *)s;
    if (d->owns_up)
        rv_source_close(d->up);
    seal_release(&d->seal);
    ZSTD_freeDCtx(d->dc);
    crypto_sha256_release(&d->sha);
    crypto_wipe(d->key, sizeof(d->key));
    free(d->frame);
    free(d);
}

static int expect_parse(char out[BSTREAM_SHA256_HEX_SIZE], const char *hex, struct rv_error *err)
{
    out[0] = '\0';
    if (hex == NULL)
        return 0;
    size_t len = strnlen(hex, BSTREAM_SHA256_HEX_SIZE);
    bool ok = len == BSTREAM_SHA256_HEX_SIZE - 1;
    for (size_t i = 0; ok && i < len; i++) {
        ok = crypto_hex_digit(hex[i]) >= 0;
        out[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
    }
    out[ok ? len : 0] = '\0';
    if (!ok)
        return rv_error_set(err, RV_EINVAL, false,
                            "expected SHA-256 '%.80s' is not 64 hex characters", hex);
    return 0;
}

static int decoder_make(struct bs_decoder **out, struct rv_source *up, const uint8_t *key,
                        const char *expect_sha256, struct rv_error *err)
{
    *out = NULL;
    struct bs_decoder *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = expect_parse(d->expect, expect_sha256, err);
    if (rc == 0 && crypto_sha256_init(&d->sha) != 0)
        rc = rv_error_set(err, RV_ECRYPTO, false, "cannot start SHA-256");
    if (rc != 0) {
        crypto_sha256_release(&d->sha);
        free(d);
        return rc;
    }
    d->up = up;
    if (key != NULL) {
        memcpy(d->key, key, BSTREAM_KEY_LEN);
        d->have_key = true;
    }
    d->base.read = decoder_read;
    d->base.close = decoder_close;
    *out = d;
    return 0;
}

int bstream_decoder_new(struct rv_source **out, struct rv_source *up, const uint8_t *key,
                        const char *expect_sha256, struct rv_error *err)
{
    struct bs_decoder *d = NULL;
    *out = NULL;
    if (up == NULL)
        return rv_error_set(err, RV_EINVAL, false, "backup decoder needs a source");
    int rc = decoder_make(&d, up, key, expect_sha256, err);
    if (rc != 0) {
        rv_source_close(up);
        return rc;
    }
    d->owns_up = true;
    *out = &d->base;
    return 0;
}

int bstream_verify(struct rv_source *up, const uint8_t *key, const char *expect_sha256,
                   struct bstream_result *res, struct rv_error *err)
{
    struct bs_decoder *d = NULL;
    if (up == NULL)
        return rv_error_set(err, RV_EINVAL, false, "backup verify needs a source");
    int rc = decoder_make(&d, up, key, expect_sha256, err);
    if (rc != 0)
        return rc;
    d->keyless_ok = true;
    uint8_t *buf = malloc(RV_OBJSTORE_COPY_BUF);
    if (buf == NULL) {
        decoder_close(&d->base);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory verifying a backup object");
    }
    size_t n = 0;
    do {
        rc = decoder_read(&d->base, buf, RV_OBJSTORE_COPY_BUF, &n, err);
    } while (rc == 0 && n > 0);
    if (rc == 0 && res != NULL)
        *res = d->result;
    free(buf);
    decoder_close(&d->base);
    return rc;
}

int bstream_key_parse(uint8_t out[BSTREAM_KEY_LEN], const char *hex, struct rv_error *err)
{
    size_t len = hex != NULL ? strnlen(hex, 2 * BSTREAM_KEY_LEN + 1) : 0;
    size_t got = 0;
    if (len != 2 * BSTREAM_KEY_LEN ||
        crypto_hex_decode(out, &got, BSTREAM_KEY_LEN, hex, len) != 0 || got != BSTREAM_KEY_LEN)
        return rv_error_set(err, RV_EINVAL, false,
                            "backup encryption key must be exactly 64 hex characters (32 "
                            "bytes); generate one with: openssl rand -hex 32");
    return 0;
}
