/* fuzz_bstream.c - libFuzzer target for lib/bstream. Every input is decoded
 * as an encoded backup object (with the fuzz key, and verified with and
 * without it), and encoded and decoded back. Must never crash, hang, leak
 * or trip a sanitizer; a decode either succeeds or fails with
 * RV_EINTEGRITY; a round trip gives the input back. The seeds in
 * tests/fuzz/corpus/bstream are objects encoded with FUZZ_KEY (32 bytes of
 * 0x42) and chunk size 1024. As tags stop almost every mutation, the input
 * is also wrapped, as the payload, in an unencrypted object with valid
 * tags (built per docs/backup-format.md), to reach the zstd decoding. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bstream.h"
#include "crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Raw output read from one input at most: a tiny object can expand a lot. */
#define FUZZ_OUTPUT_MAX (8 * 1024 * 1024)
#define FUZZ_BUF 4096

static const uint8_t FUZZ_KEY[BSTREAM_KEY_LEN] = {
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

struct src {
    struct rv_source base;
    const uint8_t *p;
    size_t left;
};

static int src_read(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err)
{
    (void)err;
    struct src *m = (struct src *)s;
    /* Odd read sizes exercise resumption. */
    size_t k = cap < m->left ? cap : m->left;
    if (k > 333)
        k = 333;
    memcpy(buf, m->p, k);
    m->p += k;
    m->left -= k;
    *n = k;
    return 0;
}

static void src_close(struct rv_source *s)
{
    (void)s;
}

struct sink {
    struct rv_sink base;
    uint8_t *p;
    size_t len, cap;
};

static int sink_write(struct rv_sink *s, const void *d, size_t len, struct rv_error *err)
{
    struct sink *k = (struct sink *)s;
    if (len == 0)
        return 0;
    if (k->len + len > k->cap) {
        size_t cap = k->cap != 0 ? k->cap : 1024;
        while (cap < k->len + len)
            cap *= 2;
        uint8_t *p = realloc(k->p, cap);
        if (p == NULL)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory");
        k->p = p;
        k->cap = cap;
    }
    memcpy(k->p + k->len, d, len);
    k->len += len;
    return 0;
}

static int sink_finish(struct rv_sink *s, struct rv_error *err)
{
    (void)s;
    (void)err;
    return 0;
}

static void sink_abort(struct rv_sink *s)
{
    (void)s;
}

/* Decode data; the raw bytes go to out when it is not NULL. */
static int decode(const uint8_t *data, size_t size, const uint8_t *key, struct sink *out)
{
    struct src s = {{src_read, src_close}, data, size};
    struct rv_source *d = NULL;
    struct rv_error err = {0};
    uint8_t buf[FUZZ_BUF];
    size_t total = 0, n = 1;
    int rc = bstream_decoder_new(&d, &s.base, key, NULL, &err);
    while (rc == 0 && n > 0 && total < FUZZ_OUTPUT_MAX) {
        rc = rv_source_read(d, buf, sizeof(buf), &n, &err);
        if (rc == 0 && n > sizeof(buf))
            abort();
        if (rc == 0 && out != NULL && sink_write(&out->base, buf, n, &err) != 0)
            abort();
        total += n;
    }
    rv_source_close(d);
    if (rc != 0 && (rc != RV_EINTEGRITY || err.msg[0] == '\0'))
        abort();
    return rc;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Append a chunk with a valid unencrypted tag. */
static void wrap_chunk(struct sink *o, const uint8_t *header, uint32_t i, int final,
                       const uint8_t *payload, size_t len)
{
    uint8_t ad[64 + 8 + 1 + 4] = {0};
    uint8_t word[4], md[CRYPTO_SHA256_LEN];
    struct crypto_sha256_ctx c;
    struct rv_error err;
    memcpy(ad, header, 64);
    be32(ad + 68, i);
    ad[72] = (uint8_t) final;
    be32(ad + 73, (uint32_t)len);
    be32(word, (uint32_t)len | (final ? 0x80000000u : 0));
    if (crypto_sha256_init(&c) != 0 || crypto_sha256_update(&c, ad, sizeof(ad)) != 0 ||
        crypto_sha256_update(&c, payload, len) != 0 || crypto_sha256_final(md, &c) != 0)
        abort();
    crypto_sha256_release(&c);
    if (sink_write(&o->base, word, 4, &err) != 0 || sink_write(&o->base, payload, len, &err) != 0 ||
        sink_write(&o->base, md, 16, &err) != 0)
        abort();
}

/* The input as the zstd payload of a well-formed unencrypted object, cut
 * into chunks of 1 + data[0] % 64 * 16 bytes. */
static void wrapped(const uint8_t *data, size_t size)
{
    uint8_t header[64] = "REEVEBK1";
    struct sink o = {{sink_write, sink_finish, sink_abort}, NULL, 0, 0};
    struct rv_error err;
    size_t step = size > 0 ? 1 + (size_t)(data[0] % 64) * 16 : 1;
    header[8] = 1;
    header[9] = 0x02;
    be32(header + 12, 1024);
    if (sink_write(&o.base, header, sizeof(header), &err) != 0)
        abort();
    uint32_t i = 0;
    size_t off = 0;
    do {
        size_t n = size - off < step ? size - off : step;
        wrap_chunk(&o, header, i++, off + n == size, data + off, n);
        off += n;
    } while (off < size);
    decode(o.p, o.len, NULL, NULL);
    free(o.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode(data, size, FUZZ_KEY, NULL);
    decode(data, size, NULL, NULL);
    wrapped(data, size);
    for (int k = 0; k < 2; k++) {
        struct src s = {{src_read, src_close}, data, size};
        struct rv_error err = {0};
        struct bstream_result res;
        int rc = bstream_verify(&s.base, k ? FUZZ_KEY : NULL, NULL, &res, &err);
        if (rc != 0 && rc != RV_EINTEGRITY)
            abort();
    }

    /* Round trip: encoding the input and decoding it gives it back. */
    struct sink enc = {{sink_write, sink_finish, sink_abort}, NULL, 0, 0};
    struct sink back = {{sink_write, sink_finish, sink_abort}, NULL, 0, 0};
    struct rv_sink *e = NULL;
    struct rv_error err = {0};
    struct bstream_result res = {0};
    struct bstream_opts o = {
        .key = size % 2 ? FUZZ_KEY : NULL, .zstd_level = 1, .chunk_size = 1024};
    if (bstream_encoder_new(&e, &enc.base, &o, &res, &err) != 0 ||
        rv_sink_write(e, data, size, &err) != 0 || rv_sink_finish(e, &err) != 0)
        abort();
    if (res.raw_bytes != size || res.stored_bytes != enc.len)
        abort();
    if (decode(enc.p, enc.len, o.key, &back) != 0 || back.len != size ||
        (size > 0 && memcmp(back.p, data, size) != 0))
        abort();
    free(enc.p);
    free(back.p);
    return 0;
}
