/* bench.c - throughput of the backup encoding (lib/bstream) on a file, such
 * as a pg_basebackup tar of a pgbench database (bench/bstream/run.sh makes
 * one). The file is read into memory first, so only the pipeline is timed:
 * zstd, AES-256-GCM (with --key), SHA-256, and a sink that drops the bytes.
 *
 *   reeve-bstream-bench FILE [LEVEL...]      (levels default to 1 and 3)
 *
 * REEVE_BENCH_WORKERS=n sets bstream_opts.workers (zstd threads).
 *
 * Prints one line per level and key setting: raw MB/s of encoding and of
 * decoding, and the stored/raw ratio. MB = 10^6 bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bstream.h"

#define PIECE (1024 * 1024)

struct null_sink {
    struct rv_sink base;
    uint64_t bytes;
};

static int null_write(struct rv_sink *s, const void *d, size_t len, struct rv_error *err)
{
    (void)d;
    (void)err;
    ((struct null_sink *)s)->bytes += len;
    return 0;
}

static int null_finish(struct rv_sink *s, struct rv_error *err)
{
    (void)s;
    (void)err;
    return 0;
}

static void null_abort(struct rv_sink *s)
{
    (void)s;
}

/* A sink that keeps what it is given (to time decoding). */
struct keep_sink {
    struct rv_sink base;
    unsigned char *p;
    size_t len, cap;
};

static int keep_write(struct rv_sink *s, const void *d, size_t len, struct rv_error *err)
{
    struct keep_sink *k = (struct keep_sink *)s;
    if (k->len + len > k->cap)
        return rv_error_set(err, RV_ELIMIT, false, "keep sink full");
    memcpy(k->p + k->len, d, len);
    k->len += len;
    return 0;
}

struct mem_source {
    struct rv_source base;
    const unsigned char *p;
    size_t left;
};

static int mem_read(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err)
{
    (void)err;
    struct mem_source *m = (struct mem_source *)s;
    *n = cap < m->left ? cap : m->left;
    memcpy(buf, m->p, *n);
    m->p += *n;
    m->left -= *n;
    return 0;
}

static void mem_close(struct rv_source *s)
{
    (void)s;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int encode(const unsigned char *data, size_t len, struct rv_sink *down,
                  const struct bstream_opts *o, struct bstream_result *res)
{
    struct rv_sink *enc = NULL;
    struct rv_error err = {0};
    if (bstream_encoder_new(&enc, down, o, res, &err) != 0)
        goto fail;
    for (size_t off = 0; off < len; off += PIECE) {
        if (rv_sink_write(enc, data + off, len - off < PIECE ? len - off : PIECE, &err) != 0) {
            rv_sink_abort(enc);
            goto fail;
        }
    }
    if (rv_sink_finish(enc, &err) != 0)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
}

static int decode(const unsigned char *enc, size_t len, const uint8_t *key, const char *sha,
                  unsigned char *buf)
{
    struct mem_source src = {{mem_read, mem_close}, enc, len};
    struct rv_source *d = NULL;
    struct rv_error err = {0};
    int rc = bstream_decoder_new(&d, &src.base, key, sha, &err);
    size_t n = 1;
    while (rc == 0 && n > 0)
        rc = rv_source_read(d, buf, PIECE, &n, &err);
    rv_source_close(d);
    if (rc != 0)
        fprintf(stderr, "error: %s\n", err.msg);
    return rc != 0;
}

static int workers;

static int run(const unsigned char *data, size_t len, int level, const uint8_t *key)
{
    struct bstream_opts o = {.key = key, .zstd_level = level, .workers = workers};
    struct bstream_result res = {0};
    struct null_sink ns = {{null_write, null_finish, null_abort}, 0};
    double t0 = now();
    if (encode(data, len, &ns.base, &o, &res) != 0)
        return 1;
    double t_enc = now() - t0;

    struct keep_sink ks = {
        {keep_write, null_finish, null_abort}, malloc(res.stored_bytes), 0, res.stored_bytes};
    unsigned char *buf = malloc(PIECE);
    int rc = ks.p == NULL || buf == NULL || encode(data, len, &ks.base, &o, &res) != 0;
    t0 = now();
    rc = rc || decode(ks.p, ks.len, key, res.sha256, buf);
    double t_dec = now() - t0;
    if (rc == 0)
        printf("level %2d workers %d %-9s encode %7.1f MB/s  decode %7.1f MB/s  stored/raw %.3f\n",
               level, workers, key != NULL ? "encrypted" : "plain", (double)len / t_enc / 1e6,
               (double)len / t_dec / 1e6, (double)res.stored_bytes / (double)len);
    free(ks.p);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    static const uint8_t key[BSTREAM_KEY_LEN] = {42};
    if (argc < 2) {
        fprintf(stderr, "usage: reeve-bstream-bench FILE [LEVEL...]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "error: cannot open '%s'\n", argv[1]);
        return 1;
    }
    long size = ftell(f);
    rewind(f);
    unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
    if (data == NULL || size < 0 || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "error: cannot read '%s'\n", argv[1]);
        return 1;
    }
    fclose(f);
    printf("%s: %.1f MB\n", argv[1], (double)size / 1e6);
    int levels[16] = {1, 3};
    int nlevels = 2;
    if (argc > 2) {
        nlevels = 0;
        for (int i = 2; i < argc && nlevels < 16; i++)
            levels[nlevels++] = atoi(argv[i]);
    }
    const char *w = getenv("REEVE_BENCH_WORKERS");
    workers = w != NULL ? atoi(w) : 0;
    int rc = 0;
    for (int i = 0; i < nlevels && rc == 0; i++) {
        rc = run(data, (size_t)size, levels[i], NULL);
        if (rc == 0)
            rc = run(data, (size_t)size, levels[i], key);
    }
    free(data);
    return rc;
}
