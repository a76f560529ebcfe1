/* test_bstream.c - lib/bstream: round trips (sizes, keys, chunk sizes,
 * through a local store), the checksum promise (the result's SHA-256 is the
 * stored bytes'), and detection of every kind of damage: a flipped bit
 * anywhere, truncation, reordered, repeated or missing chunks, trailing
 * bytes, a wrong or missing key, a SHA-256 that does not match, and hostile
 * lengths. Each must fail with RV_EINTEGRITY. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "bstream.h"
#include "crypto.h"
#include "objstore.h"

#define SMALL_CHUNK 4096
#define MIB (1024 * 1024)

static const uint8_t KEY[BSTREAM_KEY_LEN] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};
static const uint8_t OTHER_KEY[BSTREAM_KEY_LEN] = {1};

/* ---- memory sink and source ---- */

struct mem {
    uint8_t *data;
    size_t len, cap;
    int finished, aborted;
    size_t fail_after; /* a write past this many bytes fails (0: never) */
};

struct mem_sink {
    struct rv_sink base;
    struct mem *m;
};

static int mem_write(struct rv_sink *s, const void *d, size_t len, struct rv_error *err)
{
    struct mem *m = ((struct mem_sink *)s)->m;
    if (len == 0)
        return 0;
    if (m->fail_after != 0 && m->len + len > m->fail_after)
        return rv_error_set(err, RV_EIO, false, "test sink is full");
    if (m->len + len > m->cap) {
        size_t cap = m->cap != 0 ? m->cap : 4096;
        while (cap < m->len + len)
            cap *= 2;
        m->data = realloc(m->data, cap);
        assert_non_null(m->data);
        m->cap = cap;
    }
    memcpy(m->data + m->len, d, len);
    m->len += len;
    return 0;
}

static int mem_finish(struct rv_sink *s, struct rv_error *err)
{
    (void)err;
    ((struct mem_sink *)s)->m->finished++;
    free(s);
    return 0;
}

static void mem_abort(struct rv_sink *s)
{
    ((struct mem_sink *)s)->m->aborted++;
    free(s);
}

static struct rv_sink *mem_sink(struct mem *m)
{
    struct mem_sink *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->base.write = mem_write;
    s->base.finish = mem_finish;
    s->base.abort = mem_abort;
    s->m = m;
    return &s->base;
}

struct mem_source {
    struct rv_source base;
    const uint8_t *p;
    size_t left;
    size_t step; /* at most this many bytes per read: short reads */
    int *closed;
};

static int src_read(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err)
{
    (void)err;
    struct mem_source *ms = (struct mem_source *)s;
    size_t k = cap < ms->left ? cap : ms->left;
    if (ms->step != 0 && k > ms->step)
        k = ms->step;
    memcpy(buf, ms->p, k);
    ms->p += k;
    ms->left -= k;
    *n = k;
    return 0;
}

static void src_close(struct rv_source *s)
{
    struct mem_source *ms = (struct mem_source *)s;
    if (ms->closed != NULL)
        (*ms->closed)++;
    free(s);
}

static struct rv_source *mem_source(const uint8_t *p, size_t len, size_t step, int *closed)
{
    struct mem_source *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->base.read = src_read;
    s->base.close = src_close;
    s->p = p;
    s->left = len;
    s->step = step;
    s->closed = closed;
    return &s->base;
}

/* ---- data ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint8_t *random_bytes(size_t len)
{
    uint8_t *p = malloc(len + 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(rng() >> 24);
    return p;
}

/* Text-like rows, as a table dump would have. */
static uint8_t *text_bytes(size_t len)
{
    uint8_t *p = malloc(len + 64);
    assert_non_null(p);
    size_t off = 0;
    for (uint64_t row = 1; off < len; row++)
        off += (size_t)snprintf((char *)p + off, 64, "%llu\t%llu\t%d\tfiller text\n",
                                (unsigned long long)row, (unsigned long long)(rng() % 100000),
                                (int)(rng() % 1000));
    return p;
}

/* ---- encode and decode helpers ---- */

static void encode(struct mem *out, const uint8_t *data, size_t len, const uint8_t *key,
                   size_t chunk, size_t write_step, struct bstream_result *res)
{
    struct rv_sink *enc = NULL;
    struct rv_error err = {0};
    struct bstream_opts o = {.key = key, .chunk_size = chunk};
    memset(out, 0, sizeof(*out));
    assert_int_equal(bstream_encoder_new(&enc, mem_sink(out), &o, res, &err), 0);
    for (size_t off = 0; off < len;) {
        size_t n = len - off < write_step ? len - off : write_step;
        assert_int_equal(rv_sink_write(enc, data + off, n, &err), 0);
        off += n;
    }
    assert_int_equal(rv_sink_finish(enc, &err), 0);
    assert_int_equal(out->finished, 1);
    assert_int_equal(out->aborted, 0);
}

/* Decode all of enc; 0 with the raw bytes in *out (caller frees), or the
 * error of the first failing read. */
static int decode(const uint8_t *enc, size_t len, const uint8_t *key, const char *sha, size_t step,
                  uint8_t **out, size_t *out_len, struct rv_error *err)
{
    struct rv_source *d = NULL;
    int closed = 0;
    *out = NULL;
    *out_len = 0;
    int rc = bstream_decoder_new(&d, mem_source(enc, len, step, &closed), key, sha, err);
    if (rc != 0) {
        assert_int_equal(closed, 1);
        return rc;
    }
    size_t cap = 1024, got = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (got == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t n = 0;
        /* Odd read sizes: the decoder must keep zstd's pending output. */
        size_t want = cap - got < 777 ? cap - got : 777;
        rc = rv_source_read(d, buf + got, want, &n, err);
        if (rc != 0 || n == 0)
            break;
        assert_true(n <= want);
        got += n;
    }
    if (rc != 0) {
        assert_int_equal(err->code, rc);
        assert_true(strlen(err->msg) > 10);
        /* A failed decoder keeps failing. */
        size_t n = 1;
        struct rv_error again = {0};
        assert_int_equal(rv_source_read(d, buf, 1, &n, &again), rc);
        assert_int_equal(n, 0);
    }
    rv_source_close(d);
    assert_int_equal(closed, 1);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = got;
    return 0;
}

static void roundtrip(const uint8_t *data, size_t len, const uint8_t *key, size_t chunk)
{
    struct mem m;
    struct bstream_result res = {0};
    struct rv_error err = {0};
    encode(&m, data, len, key, chunk, len / 3 + 1, &res);
    assert_int_equal(res.raw_bytes, len);
    assert_int_equal(res.stored_bytes, m.len);
    assert_int_equal(res.encrypted, key != NULL);
    char sha[CRYPTO_SHA256_HEX_SIZE];
    assert_int_equal(crypto_sha256_hex(sha, m.data, m.len), 0);
    assert_string_equal(res.sha256, sha);

    uint8_t *back = NULL;
    size_t back_len = 0;
    assert_int_equal(decode(m.data, m.len, key, sha, 0, &back, &back_len, &err), 0);
    assert_int_equal(back_len, len);
    if (len > 0)
        assert_memory_equal(back, data, len);
    free(back);
    /* Short reads from upstream, and an upper-case expected checksum. */
    for (char *c = sha; *c != '\0'; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    assert_int_equal(decode(m.data, m.len, key, sha, 5, &back, &back_len, &err), 0);
    assert_int_equal(back_len, len);
    free(back);

    struct bstream_result v = {0};
    struct rv_source *src = mem_source(m.data, m.len, 0, NULL);
    assert_int_equal(bstream_verify(src, key, res.sha256, &v, &err), 0);
    rv_source_close(src);
    assert_int_equal(v.raw_bytes, len);
    assert_int_equal(v.stored_bytes, m.len);
    assert_string_equal(v.sha256, res.sha256);
    /* Without the key: the framing and the checksum (and everything, when
     * the object is not encrypted). */
    src = mem_source(m.data, m.len, 0, NULL);
    assert_int_equal(bstream_verify(src, NULL, res.sha256, &v, &err), 0);
    rv_source_close(src);
    assert_int_equal(v.raw_bytes, key != NULL ? 0 : len);
    assert_string_equal(v.sha256, res.sha256);
    free(m.data);
}

static void test_roundtrip_sizes(void **state)
{
    (void)state;
    size_t sizes[] = {
        0, 1, 2, 1000, SMALL_CHUNK - 1, SMALL_CHUNK, SMALL_CHUNK + 1, 3 * SMALL_CHUNK, 100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *r = random_bytes(sizes[i]);
        uint8_t *t = text_bytes(sizes[i]);
        for (int k = 0; k < 2; k++) {
            const uint8_t *key = k == 0 ? NULL : KEY;
            roundtrip(r, sizes[i], key, SMALL_CHUNK);
            roundtrip(t, sizes[i], key, SMALL_CHUNK);
            roundtrip(r, sizes[i], key, 0);
        }
        free(r);
        free(t);
    }
}

static void test_roundtrip_large(void **state)
{
    (void)state;
    size_t len = 10 * MIB;
    uint8_t *r = random_bytes(len);
    uint8_t *t = text_bytes(len);
    roundtrip(r, len, KEY, 0);
    roundtrip(r, len, NULL, 0);
    roundtrip(t, len, KEY, 0);
    roundtrip(t, len, NULL, 64 * 1024);
    free(r);
    free(t);
}

/* ---- the chunk layout, as the format describes it ---- */

#define HDR 64
#define TAG 16
#define MAX_FRAMES 4096

struct frames {
    size_t n;
    size_t off[MAX_FRAMES]; /* offset of each frame's length word */
    size_t len[MAX_FRAMES]; /* whole frame: word, payload, tag */
    int final[MAX_FRAMES];
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void parse_frames(const struct mem *m, struct frames *f)
{
    size_t off = HDR;
    f->n = 0;
    while (off < m->len) {
        assert_true(f->n < MAX_FRAMES);
        uint32_t w = be32(m->data + off);
        f->off[f->n] = off;
        f->len[f->n] = 4 + (w & 0x7fffffffu) + TAG;
        f->final[f->n] = (w & 0x80000000u) != 0;
        off += f->len[f->n];
        f->n++;
    }
    assert_int_equal(off, m->len);
    assert_true(f->n >= 1);
    for (size_t i = 0; i + 1 < f->n; i++)
        assert_false(f->final[i]);
    assert_true(f->final[f->n - 1]);
}

/* The compressed stream may end exactly on a chunk boundary: the last,
 * full chunk is then the final one. Find sizes where that happens (random
 * data is stored nearly as is) and round-trip them. */
static void test_exact_chunk_boundary(void **state)
{
    (void)state;
    uint8_t *r = random_bytes(3 * SMALL_CHUNK);
    int full_final = 0;
    for (size_t len = SMALL_CHUNK - 64; len < SMALL_CHUNK + 64; len++) {
        struct mem m;
        struct frames *f = malloc(sizeof(*f));
        encode(&m, r, len, KEY, SMALL_CHUNK, SMALL_CHUNK, NULL);
        parse_frames(&m, f);
        if (f->len[f->n - 1] == 4 + SMALL_CHUNK + TAG) {
            full_final++;
            roundtrip(r, len, KEY, SMALL_CHUNK);
            roundtrip(r, len, NULL, SMALL_CHUNK);
        }
        free(f);
        free(m.data);
    }
    assert_true(full_final >= 1);
    free(r);
}

/* ---- damage ---- */

struct sample {
    struct mem m;
    struct frames f;
    struct bstream_result res;
    const uint8_t *key;
};

static struct sample *sample_new(const uint8_t *key)
{
    struct sample *s = calloc(1, sizeof(*s));
    size_t len = 200000;
    uint8_t *data = random_bytes(len);
    /* Half random, half text, so chunks are full and the tail is short. */
    uint8_t *t = text_bytes(len / 2);
    memcpy(data + len / 2, t, len / 2);
    free(t);
    encode(&s->m, data, len, key, SMALL_CHUNK, 10000, &s->res);
    free(data);
    parse_frames(&s->m, &s->f);
    assert_true(s->f.n >= 10);
    s->key = key;
    return s;
}

static void sample_free(struct sample *s)
{
    free(s->m.data);
    free(s);
}

/* Decode bytes (with the sample's key and no expected checksum) and with
 * verify (key and checksum): both must say RV_EINTEGRITY. */
static void expect_damage(const struct sample *s, const uint8_t *bytes, size_t len,
                          const char *needle)
{
    struct rv_error err = {0};
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = decode(bytes, len, s->key, NULL, 0, &out, &out_len, &err);
    if (rc != RV_EINTEGRITY)
        fail_msg("decode gave %d (%s), not RV_EINTEGRITY", rc, err.msg);
    if (needle != NULL && strstr(err.msg, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    struct rv_source *src = mem_source(bytes, len, 3000, NULL);
    rc = bstream_verify(src, s->key, s->res.sha256, NULL, &err);
    rv_source_close(src);
    assert_int_equal(rc, RV_EINTEGRITY);
}

static void flip_at(const struct sample *s, size_t off, const char *needle)
{
    uint8_t *c = malloc(s->m.len);
    memcpy(c, s->m.data, s->m.len);
    c[off] ^= 0x01;
    expect_damage(s, c, s->m.len, needle);
    /* The checksum alone (verify without a key) sees it too. */
    struct rv_error err = {0};
    struct rv_source *src = mem_source(c, s->m.len, 0, NULL);
    assert_int_equal(bstream_verify(src, NULL, s->res.sha256, NULL, &err), RV_EINTEGRITY);
    rv_source_close(src);
    free(c);
}

static void damage_all(const uint8_t *key)
{
    struct sample *s = sample_new(key);
    const struct frames *f = &s->f;
    size_t mid = f->n / 2;

    /* A flipped bit in each header field, in a length word, in the middle
     * of a payload, in a tag, in the final chunk. */
    size_t header_offs[] = {0, 7, 8, 9, 10, 12, 15, 16, 40, 48, 63};
    for (size_t i = 0; i < sizeof(header_offs) / sizeof(header_offs[0]); i++)
        flip_at(s, header_offs[i], NULL);
    flip_at(s, f->off[mid], NULL);
    flip_at(s, f->off[mid] + 3, NULL);
    flip_at(s, f->off[mid] + f->len[mid] / 2, "chunk");
    flip_at(s, f->off[mid] + f->len[mid] - 1, "chunk");
    flip_at(s, f->off[mid] + f->len[mid] - TAG, "chunk");
    flip_at(s, f->off[0] + 4, "chunk 0");
    flip_at(s, f->off[f->n - 1] + 5, NULL);
    flip_at(s, s->m.len - 1, NULL);

    /* Truncation: empty, in the header, after the header, at each kind of
     * boundary, inside chunks, one byte short. */
    size_t cuts[] = {0,
                     1,
                     8,
                     63,
                     64,
                     65,
                     67,
                     68,
                     f->off[1],
                     f->off[mid],
                     f->off[mid] + 2,
                     f->off[mid] + 100,
                     f->off[f->n - 1],
                     f->off[f->n - 1] + 4,
                     s->m.len - TAG,
                     s->m.len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        expect_damage(s, s->m.data, cuts[i], NULL);
    expect_damage(s, s->m.data, f->off[mid], "truncated");

    uint8_t *c = malloc(s->m.len * 2);
    /* Two full chunks swapped. */
    memcpy(c, s->m.data, s->m.len);
    assert_int_equal(f->len[1], f->len[2]);
    memcpy(c + f->off[1], s->m.data + f->off[2], f->len[2]);
    memcpy(c + f->off[2], s->m.data + f->off[1], f->len[1]);
    expect_damage(s, c, s->m.len, "chunk 1");
    /* A chunk repeated. */
    size_t n = 0;
    memcpy(c, s->m.data, f->off[3]);
    n = f->off[3];
    memcpy(c + n, s->m.data + f->off[2], f->len[2]);
    n += f->len[2];
    memcpy(c + n, s->m.data + f->off[3], s->m.len - f->off[3]);
    n += s->m.len - f->off[3];
    expect_damage(s, c, n, "chunk 3");
    /* A chunk dropped. */
    memcpy(c, s->m.data, f->off[3]);
    memcpy(c + f->off[3], s->m.data + f->off[4], s->m.len - f->off[4]);
    expect_damage(s, c, s->m.len - f->len[3], "chunk 3");
    /* The final chunk dropped, and a middle chunk marked final instead:
     * its length word changes, so its tag fails. */
    memcpy(c, s->m.data, f->off[f->n - 1]);
    c[f->off[f->n - 2]] |= 0x80;
    expect_damage(s, c, f->off[f->n - 1], NULL);
    /* Trailing bytes: one zero byte, a repeated final chunk. */
    memcpy(c, s->m.data, s->m.len);
    c[s->m.len] = 0;
    expect_damage(s, c, s->m.len + 1, "follow");
    memcpy(c + s->m.len, s->m.data + f->off[f->n - 1], f->len[f->n - 1]);
    expect_damage(s, c, s->m.len + f->len[f->n - 1], "follow");
    /* Another object's chunk (same key, same position) does not fit: each
     * object has its own salt. */
    struct sample *o = sample_new(key);
    memcpy(c, s->m.data, s->m.len);
    assert_int_equal(o->f.len[1], f->len[1]);
    memcpy(c + f->off[1], o->m.data + o->f.off[1], f->len[1]);
    expect_damage(s, c, s->m.len, "chunk 1");
    sample_free(o);
    free(c);
    sample_free(s);
}

static void test_damage_encrypted(void **state)
{
    (void)state;
    damage_all(KEY);
}

static void test_damage_plain(void **state)
{
    (void)state;
    damage_all(NULL);
}

static void test_keys_and_checksums(void **state)
{
    (void)state;
    struct sample *s = sample_new(KEY);
    struct rv_error err = {0};
    uint8_t *out = NULL;
    size_t out_len = 0;
    /* Wrong key, no key. */
    assert_int_equal(decode(s->m.data, s->m.len, OTHER_KEY, NULL, 0, &out, &out_len, &err),
                     RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "wrong encryption key"));
    assert_int_equal(decode(s->m.data, s->m.len, NULL, NULL, 0, &out, &out_len, &err),
                     RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "key is needed"));
    struct rv_source *src = mem_source(s->m.data, s->m.len, 0, NULL);
    assert_int_equal(bstream_verify(src, OTHER_KEY, NULL, NULL, &err), RV_EINTEGRITY);
    rv_source_close(src);

    /* A checksum that does not match: all bytes decode, but the end is an
     * error, not an end. */
    char wrong[65];
    memcpy(wrong, s->res.sha256, 65);
    wrong[10] = wrong[10] == '0' ? '1' : '0';
    assert_int_equal(decode(s->m.data, s->m.len, KEY, wrong, 0, &out, &out_len, &err),
                     RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "SHA-256"));
    src = mem_source(s->m.data, s->m.len, 0, NULL);
    assert_int_equal(bstream_verify(src, NULL, wrong, NULL, &err), RV_EINTEGRITY);
    rv_source_close(src);
    /* A malformed expected checksum is a caller error; the source is closed. */
    assert_int_equal(decode(s->m.data, s->m.len, KEY, "abc", 0, &out, &out_len, &err), RV_EINVAL);
    src = mem_source(s->m.data, s->m.len, 0, NULL);
    assert_int_equal(bstream_verify(src, NULL, "zz", NULL, &err), RV_EINVAL);
    rv_source_close(src);
    /* A decoder closed half-way frees everything (ASan's leak check), and
     * a read with no room is refused. */
    struct rv_source *d = NULL;
    int closed = 0;
    uint8_t buf[100];
    size_t n = 0;
    assert_int_equal(
        bstream_decoder_new(&d, mem_source(s->m.data, s->m.len, 0, &closed), KEY, NULL, &err), 0);
    assert_int_equal(rv_source_read(d, buf, 0, &n, &err), RV_EINVAL);
    assert_int_equal(rv_source_read(d, buf, sizeof(buf), &n, &err), 0);
    assert_int_equal(n, sizeof(buf));
    rv_source_close(d);
    assert_int_equal(closed, 1);

    sample_free(s);

    /* An unencrypted object decodes with or without a key. */
    s = sample_new(NULL);
    assert_int_equal(decode(s->m.data, s->m.len, KEY, s->res.sha256, 0, &out, &out_len, &err), 0);
    assert_int_equal(out_len, 200000);
    free(out);
    sample_free(s);

    /* Not an object at all. */
    const char *junk = "PGDMP\x01\x0e\x00 this is a pg_dump file, not a backup object......"
                       "................................................................";
    assert_int_equal(
        decode((const uint8_t *)junk, strlen(junk), KEY, NULL, 0, &out, &out_len, &err),
        RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "not a reeve backup object"));
    assert_int_equal(decode((const uint8_t *)"REEV", 4, KEY, NULL, 0, &out, &out_len, &err),
                     RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "truncated"));
}

static void set_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Lengths from the input never make the decoder allocate more than the
 * format's maximum chunk. */
static void test_hostile_lengths(void **state)
{
    (void)state;
    struct mem m;
    struct rv_error err = {0};
    uint8_t *out = NULL;
    size_t out_len = 0;
    encode(&m, (const uint8_t *)"x", 1, NULL, SMALL_CHUNK, 1, NULL);
    uint8_t *c = malloc(m.len + 64);
    /* A chunk claiming 2 GiB - 1. */
    memcpy(c, m.data, m.len);
    set_be32(c + HDR, 0x7fffffffu);
    assert_int_equal(decode(c, m.len, NULL, NULL, 0, &out, &out_len, &err), RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "longer than"));
    /* A header claiming 4 GiB chunks, or chunks over the maximum. */
    uint32_t sizes[] = {0xffffffffu, RV_BSTREAM_CHUNK_MAX + 1u, 0, RV_BSTREAM_CHUNK_MIN - 1u};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memcpy(c, m.data, m.len);
        set_be32(c + 12, sizes[i]);
        assert_int_equal(decode(c, m.len, NULL, NULL, 0, &out, &out_len, &err), RV_EINTEGRITY);
        assert_non_null(strstr(err.msg, "chunk size"));
    }
    /* Another version, unknown flags. */
    memcpy(c, m.data, m.len);
    c[8] = 2;
    assert_int_equal(decode(c, m.len, NULL, NULL, 0, &out, &out_len, &err), RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "version 2"));
    memcpy(c, m.data, m.len);
    c[9] |= 0x80;
    assert_int_equal(decode(c, m.len, NULL, NULL, 0, &out, &out_len, &err), RV_EINTEGRITY);
    free(c);
    free(m.data);
}

/* ---- the encoder as a sink ---- */

struct progress {
    int calls;
    uint64_t raw, stored;
};

static void on_progress(uint64_t raw, uint64_t stored, void *ud)
{
    struct progress *p = ud;
    assert_true(raw >= p->raw);
    assert_true(stored > p->stored);
    p->raw = raw;
    p->stored = stored;
    p->calls++;
}

static void test_encoder_sink(void **state)
{
    (void)state;
    struct rv_error err = {0};
    struct rv_sink *enc = NULL;
    struct mem m = {0};
    struct bstream_result res = {0};
    size_t len = 300000;
    uint8_t *data = random_bytes(len);

    /* Bad options; the downstream sink stays the caller's. */
    struct rv_sink *down = mem_sink(&m);
    struct bstream_opts bad_level = {.zstd_level = 20};
    assert_int_equal(bstream_encoder_new(&enc, down, &bad_level, NULL, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "level"));
    struct bstream_opts bad_chunk = {.chunk_size = 100};
    assert_int_equal(bstream_encoder_new(&enc, down, &bad_chunk, NULL, &err), RV_EINVAL);
    assert_null(enc);
    struct bstream_opts bad_workers = {.workers = RV_BSTREAM_WORKERS_MAX + 1};
    assert_int_equal(bstream_encoder_new(&enc, down, &bad_workers, NULL, &err), RV_EINVAL);
    bad_workers.workers = -1;
    assert_int_equal(bstream_encoder_new(&enc, down, &bad_workers, NULL, &err), RV_EINVAL);
    assert_int_equal(m.aborted + m.finished, 0);

    /* Progress reports, level 1, ending at the stored size. */
    struct progress p = {0};
    struct bstream_opts o = {.key = KEY,
                             .zstd_level = 1,
                             .chunk_size = SMALL_CHUNK,
                             .progress = on_progress,
                             .progress_ud = &p};
    assert_int_equal(bstream_encoder_new(&enc, down, &o, &res, &err), 0);
    assert_int_equal(rv_sink_write(enc, data, len, &err), 0);
    assert_int_equal(rv_sink_write(enc, data, 0, &err), 0);
    assert_int_equal(rv_sink_finish(enc, &err), 0);
    assert_true(p.calls > 50);
    assert_int_equal(p.raw, len);
    assert_int_equal(p.stored, m.len);
    assert_int_equal(res.stored_bytes, m.len);
    free(m.data);

    /* zstd worker threads: same raw bytes back. */
    memset(&m, 0, sizeof(m));
    size_t tlen = 5 * MIB;
    uint8_t *t = text_bytes(tlen);
    struct bstream_opts mt = {.key = KEY, .workers = 2};
    assert_int_equal(bstream_encoder_new(&enc, mem_sink(&m), &mt, &res, &err), 0);
    for (size_t off = 0; off < tlen; off += 100000)
        assert_int_equal(
            rv_sink_write(enc, t + off, tlen - off < 100000 ? tlen - off : 100000, &err), 0);
    assert_int_equal(rv_sink_finish(enc, &err), 0);
    assert_int_equal(res.raw_bytes, tlen);
    uint8_t *back = NULL;
    size_t back_len = 0;
    assert_int_equal(decode(m.data, m.len, KEY, res.sha256, 0, &back, &back_len, &err), 0);
    assert_int_equal(back_len, tlen);
    assert_memory_equal(back, t, tlen);
    free(back);
    free(t);
    free(m.data);

    /* Abort aborts downstream. */
    memset(&m, 0, sizeof(m));
    assert_int_equal(bstream_encoder_new(&enc, mem_sink(&m), NULL, NULL, &err), 0);
    assert_int_equal(rv_sink_write(enc, data, 1000, &err), 0);
    rv_sink_abort(enc);
    assert_int_equal(m.aborted, 1);
    assert_int_equal(m.finished, 0);
    free(m.data);

    /* A failing downstream: the write fails, later writes too, and finish
     * aborts downstream rather than committing a partial object. */
    memset(&m, 0, sizeof(m));
    memset(&p, 0, sizeof(p));
    m.fail_after = 10000;
    memset(&res, 0, sizeof(res));
    assert_int_equal(bstream_encoder_new(&enc, mem_sink(&m), &o, &res, &err), 0);
    assert_int_equal(rv_sink_write(enc, data, len, &err), RV_EIO);
    assert_string_equal(err.msg, "test sink is full");
    assert_int_equal(rv_sink_write(enc, data, 10, &err), RV_EIO);
    assert_int_equal(rv_sink_finish(enc, &err), RV_EIO);
    assert_int_equal(m.aborted, 1);
    assert_int_equal(m.finished, 0);
    assert_int_equal(res.stored_bytes, 0);
    free(m.data);
    free(data);
}

static void test_key_parse(void **state)
{
    (void)state;
    uint8_t k[BSTREAM_KEY_LEN];
    struct rv_error err = {0};
    const char *hex = "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796A5B4C3D2E1F0";
    assert_int_equal(bstream_key_parse(k, hex, &err), 0);
    assert_memory_equal(k, KEY, BSTREAM_KEY_LEN);
    const char *bad[] = {"",
                         "0011",
                         "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f",
                         "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f000",
                         "g0112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                         " 0112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bstream_key_parse(k, bad[i], &err), RV_EINVAL);
        assert_non_null(strstr(err.msg, "openssl rand -hex 32"));
        assert_null(strstr(err.msg, bad[i][0] != '\0' ? bad[i] : "\x01")); /* never echoed */
    }
    assert_int_equal(bstream_key_parse(k, NULL, &err), RV_EINVAL);
}

/* ---- the format as docs/backup-format.md describes it ---- */

/* Append one chunk built by hand: word, payload (sealed), tag. */
static void hand_chunk(struct mem *m, const uint8_t *header, const uint8_t *okey, uint64_t i,
                       int final, const uint8_t *payload, size_t len)
{
    uint8_t ad[64 + 8 + 1 + 4];
    uint8_t word[4], tag[32];
    uint8_t *ct = malloc(len + 1);
    memcpy(ad, header, 64);
    set_be32(ad + 64, (uint32_t)(i >> 32));
    set_be32(ad + 68, (uint32_t)i);
    ad[72] = (uint8_t) final;
    set_be32(ad + 73, (uint32_t)len);
    set_be32(word, (uint32_t)len | (final ? 0x80000000u : 0));
    if (okey == NULL) {
        /* first 16 bytes of SHA-256(AD || L || payload) */
        uint8_t *all = malloc(sizeof(ad) + len);
        memcpy(all, ad, sizeof(ad));
        if (len > 0)
            memcpy(all + sizeof(ad), payload, len);
        assert_int_equal(crypto_sha256(tag, all, sizeof(ad) + len), 0);
        free(all);
        if (len > 0)
            memcpy(ct, payload, len);
    } else {
        uint8_t nonce[12] = {0};
        memcpy(nonce + 4, ad + 64, 8);
        int outl = 0;
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, okey, nonce), 1);
        assert_int_equal(EVP_EncryptUpdate(c, NULL, &outl, ad, 64 + 8 + 1), 1);
        if (len > 0)
            assert_int_equal(EVP_EncryptUpdate(c, ct, &outl, payload, (int)len), 1);
        assert_int_equal(EVP_EncryptFinal_ex(c, tag, &outl), 1);
        assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag), 1);
        EVP_CIPHER_CTX_free(c);
    }
    struct mem_sink ms = {.m = m};
    struct rv_error err = {0};
    assert_int_equal(mem_write(&ms.base, word, 4, &err), 0);
    assert_int_equal(mem_write(&ms.base, ct, len, &err), 0);
    assert_int_equal(mem_write(&ms.base, tag, 16, &err), 0);
    free(ct);
}

/* Objects built from the document alone (zstd's one-shot API, OpenSSL's
 * GCM, uneven chunks and an empty final chunk) decode, so the document and
 * the code agree. */
static void test_format_by_hand(void **state)
{
    (void)state;
    const char *text = "the format, as documented, byte for byte; "
                       "the format, as documented, byte for byte.";
    uint8_t zbuf[512];
    size_t zlen = ZSTD_compress(zbuf, sizeof(zbuf), text, strlen(text), 3);
    assert_false(ZSTD_isError(zlen));
    for (int enc = 0; enc < 2; enc++) {
        uint8_t header[64] = "REEVEBK1";
        header[8] = 1;
        header[9] = (uint8_t)(0x02 | (enc ? 0x01 : 0));
        set_be32(header + 12, 1024);
        memset(header + 16, 0x5a, 32);
        uint8_t okey[32];
        if (enc) {
            uint8_t msg[19 + 32], check[32];
            memcpy(msg, "reeve-backup-v1 key", 19);
            memcpy(msg + 19, header + 16, 32);
            assert_int_equal(crypto_hmac_sha256(okey, KEY, 32, msg, sizeof(msg)), 0);
            assert_int_equal(crypto_hmac_sha256(check, okey, 32, "reeve-backup-v1 check", 21), 0);
            memcpy(header + 48, check, 16);
        }
        struct mem m = {0};
        struct mem_sink ms = {.m = &m};
        struct rv_error err = {0};
        assert_int_equal(mem_write(&ms.base, header, 64, &err), 0);
        hand_chunk(&m, header, enc ? okey : NULL, 0, 0, zbuf, 5);
        hand_chunk(&m, header, enc ? okey : NULL, 1, 0, zbuf + 5, zlen - 5);
        hand_chunk(&m, header, enc ? okey : NULL, 2, 1, NULL, 0);
        uint8_t *out = NULL;
        size_t out_len = 0;
        char sha[65];
        assert_int_equal(crypto_sha256_hex(sha, m.data, m.len), 0);
        int rc = decode(m.data, m.len, KEY, sha, 0, &out, &out_len, &err);
        if (rc != 0)
            fail_msg("hand-made object (encrypted %d): %s", enc, err.msg);
        assert_int_equal(out_len, strlen(text));
        assert_memory_equal(out, text, out_len);
        free(out);
        free(m.data);
    }
}

/* ---- through a local store ---- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void test_through_local_store(void **state)
{
    (void)state;
    char dir[] = "/tmp/rv-test-bstream-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct objstore *st = NULL;
    struct rv_error err = {0};
    assert_int_equal(objstore_local_new(&st, dir, &err), 0);
    size_t len = 3 * MIB + 5;
    uint8_t *data = text_bytes(len);

    struct rv_sink *put = NULL, *enc = NULL;
    struct bstream_result res = {0};
    struct bstream_opts o = {.key = KEY};
    assert_int_equal(st->put(st, "base/20261121T080501Z-3fa9c2d1/data", &put, &err), 0);
    assert_int_equal(bstream_encoder_new(&enc, put, &o, &res, &err), 0);
    for (size_t off = 0; off < len; off += 65536)
        assert_int_equal(
            rv_sink_write(enc, data + off, len - off < 65536 ? len - off : 65536, &err), 0);
    assert_int_equal(rv_sink_finish(enc, &err), 0);
    int64_t size = 0;
    assert_int_equal(st->stat(st, "base/20261121T080501Z-3fa9c2d1/data", &size, &err), 0);
    assert_int_equal((uint64_t)size, res.stored_bytes);
    assert_true(res.stored_bytes < len / 2); /* it was compressed */

    struct rv_source *get = NULL, *dec = NULL;
    assert_int_equal(st->get(st, "base/20261121T080501Z-3fa9c2d1/data", &get, &err), 0);
    assert_int_equal(bstream_decoder_new(&dec, get, KEY, res.sha256, &err), 0);
    uint8_t *back = malloc(len + 1);
    size_t got = 0;
    for (;;) {
        size_t n = 0;
        assert_int_equal(rv_source_read(dec, back + got, len + 1 - got, &n, &err), 0);
        if (n == 0)
            break;
        got += n;
    }
    rv_source_close(dec);
    assert_int_equal(got, len);
    assert_memory_equal(back, data, len);

    assert_int_equal(st->get(st, "base/20261121T080501Z-3fa9c2d1/data", &get, &err), 0);
    struct bstream_result v = {0};
    assert_int_equal(bstream_verify(get, NULL, res.sha256, &v, &err), 0);
    rv_source_close(get);
    assert_int_equal(v.stored_bytes, res.stored_bytes);

    /* An aborted encoder leaves no object behind. */
    assert_int_equal(st->put(st, "wal/00000001/000000010000000000000001", &put, &err), 0);
    assert_int_equal(bstream_encoder_new(&enc, put, &o, NULL, &err), 0);
    assert_int_equal(rv_sink_write(enc, data, 100000, &err), 0);
    rv_sink_abort(enc);
    struct objstore_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(st->list(st, "", &e, &n, &err), 0);
    assert_int_equal(n, 1);
    objstore_entries_free(e, n);

    free(back);
    free(data);
    st->free(st);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_roundtrip_large),
        cmocka_unit_test(test_exact_chunk_boundary),
        cmocka_unit_test(test_damage_encrypted),
        cmocka_unit_test(test_damage_plain),
        cmocka_unit_test(test_keys_and_checksums),
        cmocka_unit_test(test_hostile_lengths),
        cmocka_unit_test(test_encoder_sink),
        cmocka_unit_test(test_key_parse),
        cmocka_unit_test(test_format_by_hand),
        cmocka_unit_test(test_through_local_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
