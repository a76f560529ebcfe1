/* test_s3.c - lib/s3 against a real S3-compatible server that checks every
 * request's SigV4 signature and payload hash (tests/peers/s3-server.js,
 * @20minutes/s3rver; see docs/backups-s3.md). The server is started on
 * 127.0.0.1 with a fresh data directory for the whole group, stopped and
 * removed at the end. Skips only when node is absent; fails when the npm
 * peers cannot be installed.
 *
 * Proves: small, empty and multipart (20 MiB of random data, 5 MiB parts)
 * objects come back identical (SHA-256), also when the server refuses a
 * part upload or a ranged read once (503, retried); progress counts
 * acknowledged bytes; stat, remove and absent keys; list with the store prefix and
 * several pages; an aborted put leaves no object and no upload behind; a
 * wrong secret or key is refused with RV_EAUTH and a plain message; an
 * unreachable endpoint is RV_EUNAVAIL (retryable); bad configurations are
 * refused; the XML parsers take odd and malformed answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "objstore.h"
#include "s3.h"

#define AK "AKIDREEVETEST"
#define SK "reeve-test-secret/with+odd=chars"
#define BUCKET "reeve-backups"
#define SERVER_START_MS 20000
#define SERVER_STOP_MS 5000

static pid_t server_pid = -1;
static char data_dir[256];
static char endpoint[64];
static char flaky_log[300]; /* the server's injected failures, one per line */
static bool have_node;

static const char *src_dir(void)
{
    const char *s = getenv("REEVE_SOURCE_DIR");
    return s != NULL ? s : ".";
}

static bool node_present(void)
{
    return system("command -v node >/dev/null 2>&1") == 0;
}

static bool peers_ready(void)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/tests/peers/node_modules/@20minutes/s3rver/package.json", src_dir());
    return access(p, R_OK) == 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start the server on any free port; it writes the port to a ready file. */
static int start_server(void **state)
{
    (void)state;
    char script[1024], ready[300];

    curl_global_init(CURL_GLOBAL_DEFAULT);
    have_node = node_present();
    if (!have_node)
        return 0;
    if (!peers_ready()) {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "bash '%s/scripts/test-peers.sh' >&2", src_dir());
        if (system(cmd) != 0 || !peers_ready()) {
            fprintf(stderr, "the npm test peers are not installed in tests/peers and "
                            "scripts/test-peers.sh failed: cannot start the S3 server\n");
            return -1;
        }
    }
    snprintf(data_dir, sizeof(data_dir), "/tmp/reeve-test-s3-XXXXXX");
    if (mkdtemp(data_dir) == NULL)
        return -1;
    snprintf(ready, sizeof(ready), "%s/ready", data_dir);
    snprintf(flaky_log, sizeof(flaky_log), "%s/flaky.log", data_dir);
    snprintf(script, sizeof(script), "%s/tests/peers/s3-server.js", src_dir());
    server_pid = fork();
    if (server_pid < 0)
        return -1;
    if (server_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed test takes its server along */
        dup2(2, 1);                       /* its log and "ready" line go with the test's output */
        char dir[300];
        snprintf(dir, sizeof(dir), "%s/data", data_dir);
        execlp("node", "node", script, "--port", "0", "--dir", dir, "--access-key", AK, "--secret",
               SK, "--bucket", BUCKET, "--ready-file", ready, "--flaky-log", flaky_log,
               (char *)NULL);
        _exit(127);
    }
    unsigned port = 0;
    for (int64_t deadline = now_ms() + SERVER_START_MS; port == 0 && now_ms() < deadline;) {
        FILE *f = fopen(ready, "r");
        if (f != NULL) {
            if (fscanf(f, "%u", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port == 0) {
            int status;
            if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
                server_pid = -1;
                break;
            }
            usleep(50000);
        }
    }
    if (port == 0) {
        fprintf(stderr, "the S3 test server did not start within %d ms\n", SERVER_START_MS);
        return -1;
    }
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", port);
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    if (server_pid > 0) {
        int status;
        kill(server_pid, SIGTERM);
        int64_t deadline = now_ms() + SERVER_STOP_MS;
        while (waitpid(server_pid, &status, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(server_pid, SIGKILL);
                waitpid(server_pid, &status, 0);
                break;
            }
            usleep(20000);
        }
        server_pid = -1;
    }
    if (data_dir[0] != '\0')
        nftw(data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}

#define NEED_SERVER()                                                                              \
    do {                                                                                           \
        if (!have_node) {                                                                          \
            print_message("node is not installed: the S3 server cannot run; skipped\n");           \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

struct progress {
    uint64_t last;
    int calls;
};

static void on_progress(uint64_t uploaded, void *ud)
{
    struct progress *p = ud;
    assert_true(uploaded >= p->last);
    p->last = uploaded;
    p->calls++;
}

static struct objstore *open_store(const char *prefix, const char *secret, size_t part_size,
                                   unsigned page_keys, struct progress *pr)
{
    struct s3_config cfg = {.endpoint = endpoint,
                            .region = "us-east-1",
                            .bucket = BUCKET,
                            .prefix = prefix,
                            .access_key_id = AK,
                            .secret_access_key = secret,
                            .credentials_name = "s3-main",
                            .part_size = part_size,
                            .list_page_keys = page_keys,
                            .progress = pr != NULL ? on_progress : NULL,
                            .progress_ud = pr};
    struct objstore *o = NULL;
    struct rv_error err = {0};
    int rc = objstore_s3_new(&o, &cfg, &err);
    if (rc != 0)
        fail_msg("objstore_s3_new: %s", err.msg);
    return o;
}

static void put_bytes(struct objstore *o, const char *key, const void *data, size_t len)
{
    struct rv_sink *s = NULL;
    struct rv_error err = {0};
    if (o->put(o, key, &s, &err) != 0)
        fail_msg("put %s: %s", key, err.msg);
    if (len > 0 && rv_sink_write(s, data, len, &err) != 0)
        fail_msg("write %s: %s", key, err.msg);
    if (rv_sink_finish(s, &err) != 0)
        fail_msg("finish %s: %s", key, err.msg);
}

/* Lines of the server's log of injected 503 answers that contain what. */
static int injected(const char *what)
{
    char line[512];
    int n = 0;
    FILE *f = fopen(flaky_log, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, what) != NULL)
            n++;
    fclose(f);
    return n;
}

/* Read a whole object with reads of odd sizes; returns malloc'd bytes. */
static char *get_bytes(struct objstore *o, const char *key, size_t *len)
{
    struct rv_source *src = NULL;
    struct rv_error err = {0};
    size_t cap = 1024, n = 0, step = 1;
    char *out = malloc(cap);
    assert_non_null(out);
    if (o->get(o, key, &src, &err) != 0)
        fail_msg("get %s: %s", key, err.msg);
    for (;;) {
        size_t want = step % 70001 + 1, got = 0;
        if (n + want > cap) {
            while (n + want > cap)
                cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        if (rv_source_read(src, out + n, want, &got, &err) != 0)
            fail_msg("read %s: %s", key, err.msg);
        if (got == 0)
            break;
        n += got;
        step = step * 7 + 3;
    }
    rv_source_close(src);
    *len = n;
    return out;
}

static void test_small_put_get_stat_remove(void **state)
{
    (void)state;
    NEED_SERVER();
    struct objstore *o = open_store("team/pg-main", SK, 0, 0, NULL);
    struct rv_error err = {0};
    int64_t size = -1;
    size_t len;
    const char *text = "{\"backup_id\":\"20261121T080501Z-3fa9c2d1\"}";

    put_bytes(o, "base/20261121T080501Z-3fa9c2d1/manifest.json", text, strlen(text));
    assert_int_equal(o->stat(o, "base/20261121T080501Z-3fa9c2d1/manifest.json", &size, &err), 0);
    assert_int_equal(size, (int64_t)strlen(text));
    char *got = get_bytes(o, "base/20261121T080501Z-3fa9c2d1/manifest.json", &len);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(got, text, len);
    free(got);

    /* Replacing an object. */
    put_bytes(o, "base/20261121T080501Z-3fa9c2d1/manifest.json", "x", 1);
    got = get_bytes(o, "base/20261121T080501Z-3fa9c2d1/manifest.json", &len);
    assert_int_equal(len, 1);
    assert_int_equal(got[0], 'x');
    free(got);

    /* Empty object. */
    put_bytes(o, "empty", NULL, 0);
    assert_int_equal(o->stat(o, "empty", &size, &err), 0);
    assert_int_equal(size, 0);
    got = get_bytes(o, "empty", &len);
    assert_int_equal(len, 0);
    free(got);

    /* The prefix is really there: a store without it sees the full key. */
    struct objstore *root = open_store(NULL, SK, 0, 0, NULL);
    assert_int_equal(root->stat(root, "team/pg-main/empty", &size, &err), 0);
    assert_int_equal(root->stat(root, "empty", &size, &err), RV_ENOTFOUND);
    root->free(root);

    /* Remove; removing again succeeds; absent keys are RV_ENOTFOUND. */
    assert_int_equal(o->remove(o, "empty", &err), 0);
    assert_int_equal(o->remove(o, "empty", &err), 0);
    assert_int_equal(o->stat(o, "empty", &size, &err), RV_ENOTFOUND);
    struct rv_source *src = NULL;
    assert_int_equal(o->get(o, "empty", &src, &err), RV_ENOTFOUND);
    assert_null(src);
    assert_non_null(strstr(err.msg, "no such object"));

    /* Keys are checked before anything is sent. */
    struct rv_sink *sink = NULL;
    assert_int_equal(o->put(o, "../escape", &sink, &err), RV_EINVAL);
    assert_null(sink);
    o->free(o);
}

static void test_multipart_20mib(void **state)
{
    (void)state;
    NEED_SERVER();
    const size_t total = 20 * 1024 * 1024 + 12345;
    struct progress pr = {0};
    struct objstore *o = open_store("mp", SK, RV_S3_PART_SIZE_MIN, 0, &pr);
    struct rv_sink *s = NULL;
    struct rv_error err = {0};
    uint8_t want[CRYPTO_SHA256_LEN], have[CRYPTO_SHA256_LEN];
    char *data = malloc(total);
    assert_non_null(data);
    assert_int_equal(crypto_random(data, total), 0);
    assert_int_equal(crypto_sha256(want, data, total), 0);

    assert_int_equal(o->put(o, "base/big/data", &s, &err), 0);
    size_t off = 0, step = 1;
    while (off < total) {
        size_t n = (step * 7919) % (3 * 1024 * 1024) + 1;
        if (n > total - off)
            n = total - off;
        if (rv_sink_write(s, data + off, n, &err) != 0)
            fail_msg("write: %s", err.msg);
        off += n;
        step++;
    }
    /* Four full parts are acknowledged before finish; the fifth at finish. */
    assert_int_equal(objstore_s3_uploaded(s), 4 * (uint64_t)RV_S3_PART_SIZE_MIN);
    assert_int_equal(rv_sink_finish(s, &err), 0);
    assert_int_equal(pr.calls, 5);
    assert_int_equal(pr.last, total);
    /* The server refused the first attempt at part 2 (503): it was retried. */
    assert_int_equal(injected("part 2 of upload"), 1);

    int64_t size = -1;
    assert_int_equal(o->stat(o, "base/big/data", &size, &err), 0);
    assert_int_equal(size, (int64_t)total);
    size_t len = 0;
    char *got = get_bytes(o, "base/big/data", &len);
    assert_int_equal(len, total);
    assert_int_equal(crypto_sha256(have, got, len), 0);
    assert_memory_equal(have, want, sizeof(want));
    /* Five ranged GETs of one part each; the four after the first were
     * refused once (503) and retried. */
    assert_int_equal(injected("GET /" BUCKET "/mp/base/big/data bytes="), 4);
    free(got);
    free(data);
    assert_int_equal(o->remove(o, "base/big/data", &err), 0);
    o->free(o);
}

/* Regular files below directories whose name holds "upload" (s3rver keeps
 * the parts of an open multipart upload there). */
static int upload_files;
static int count_upload(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_F && strstr(path, "upload") != NULL)
        upload_files++;
    return 0;
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    NEED_SERVER();
    struct objstore *o = open_store("ab", SK, RV_S3_PART_SIZE_MIN, 0, NULL);
    struct rv_sink *s = NULL;
    struct rv_error err = {0};
    size_t len = 12 * 1024 * 1024;
    char *data = calloc(1, len);
    assert_non_null(data);

    assert_int_equal(o->put(o, "wal/00000001/000000010000000000000001", &s, &err), 0);
    assert_int_equal(rv_sink_write(s, data, len, &err), 0);
    /* Two parts are on the server now. */
    upload_files = 0;
    nftw(data_dir, count_upload, 16, FTW_PHYS);
    assert_true(upload_files >= 2);
    rv_sink_abort(s);
    upload_files = 0;
    nftw(data_dir, count_upload, 16, FTW_PHYS);
    assert_int_equal(upload_files, 0);
    int64_t size;
    assert_int_equal(o->stat(o, "wal/00000001/000000010000000000000001", &size, &err),
                     RV_ENOTFOUND);

    /* A small put aborted before anything was sent. */
    assert_int_equal(o->put(o, "small", &s, &err), 0);
    assert_int_equal(rv_sink_write(s, "abc", 3, &err), 0);
    rv_sink_abort(s);
    assert_int_equal(o->stat(o, "small", &size, &err), RV_ENOTFOUND);
    free(data);
    o->free(o);
}

static void test_list_prefix_and_pages(void **state)
{
    (void)state;
    NEED_SERVER();
    /* Three keys per page: seven WAL segments take three pages. */
    struct objstore *o = open_store("ls/cluster-a", SK, 0, 3, NULL);
    struct objstore *other = open_store("ls/cluster-b", SK, 0, 0, NULL);
    struct rv_error err = {0};
    char key[128];

    for (int i = 7; i >= 1; i--) {
        snprintf(key, sizeof(key), "wal/00000001/0000000100000000000000%02d", i);
        put_bytes(o, key, key, (size_t)i);
    }
    put_bytes(o, "base/20261121T080501Z-3fa9c2d1/manifest.json", "{}", 2);
    put_bytes(other, "wal/00000001/000000010000000000000001", "x", 1);

    struct objstore_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(o->list(o, "wal/", &e, &n, &err), 0);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "wal/00000001/0000000100000000000000%02zu", i + 1);
        assert_string_equal(e[i].key, key);
        assert_int_equal(e[i].size, (int64_t)(i + 1));
        assert_true(e[i].mtime > 1700000000);
    }
    objstore_entries_free(e, n);

    assert_int_equal(o->list(o, "", &e, &n, &err), 0);
    assert_int_equal(n, 8);
    assert_string_equal(e[0].key, "base/20261121T080501Z-3fa9c2d1/manifest.json");
    objstore_entries_free(e, n);

    assert_int_equal(o->list(o, "nothing/", &e, &n, &err), 0);
    assert_int_equal(n, 0);
    objstore_entries_free(e, n);

    assert_int_equal(other->list(other, "", &e, &n, &err), 0);
    assert_int_equal(n, 1);
    objstore_entries_free(e, n);
    o->free(o);
    other->free(other);
}

static void test_wrong_credentials_refused(void **state)
{
    (void)state;
    NEED_SERVER();
    struct objstore *o = open_store(NULL, "not-the-secret", 0, 0, NULL);
    struct rv_error err = {0};
    int64_t size;
    struct rv_sink *s = NULL;

    assert_int_equal(o->stat(o, "anything", &size, &err), RV_EAUTH);
    /* HEAD answers carry no body: the message still names the credentials. */
    assert_non_null(strstr(err.msg, "credentials 's3-main'"));
    assert_int_equal(o->put(o, "refused", &s, &err), 0);
    assert_int_equal(rv_sink_write(s, "data", 4, &err), 0);
    assert_int_equal(rv_sink_finish(s, &err), RV_EAUTH);
    assert_false(err.retryable);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "S3 rejected the request signature (SignatureDoesNotMatch)"));
    assert_non_null(strstr(err.msg, "check the secret access key of credentials 's3-main'"));
    assert_null(strstr(err.msg, "not-the-secret"));
    struct objstore_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(o->list(o, "", &e, &n, &err), RV_EAUTH);
    assert_non_null(strstr(err.msg, "SignatureDoesNotMatch"));
    o->free(o);

    /* The object was not written. */
    struct objstore *good = open_store(NULL, SK, 0, 0, NULL);
    assert_int_equal(good->stat(good, "refused", &size, &err), RV_ENOTFOUND);
    good->free(good);

    /* An unknown access key id. */
    struct s3_config cfg = {.endpoint = endpoint,
                            .region = "us-east-1",
                            .bucket = BUCKET,
                            .access_key_id = "AKIDUNKNOWN",
                            .secret_access_key = SK};
    assert_int_equal(objstore_s3_new(&o, &cfg, &err), 0);
    assert_int_equal(o->list(o, "", &e, &n, &err), RV_EAUTH);
    assert_non_null(strstr(err.msg, "InvalidAccessKeyId"));
    assert_non_null(strstr(err.msg, "access key id 'AKIDUNKNOWN'"));
    o->free(o);
}

static void test_missing_bucket(void **state)
{
    (void)state;
    NEED_SERVER();
    struct s3_config cfg = {.endpoint = endpoint,
                            .region = "us-east-1",
                            .bucket = "no-such-bucket",
                            .access_key_id = AK,
                            .secret_access_key = SK};
    struct objstore *o = NULL;
    struct rv_error err = {0};
    struct objstore_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(objstore_s3_new(&o, &cfg, &err), 0);
    assert_int_equal(o->list(o, "", &e, &n, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "bucket 'no-such-bucket' does not exist"));
    o->free(o);
}

/* A port nobody listens on: connection refused, retried, then RV_EUNAVAIL. */
static void test_unreachable_endpoint(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd); /* bound, never listened: nothing answers there now */
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    struct s3_config cfg = {.endpoint = ep,
                            .region = "us-east-1",
                            .bucket = BUCKET,
                            .access_key_id = AK,
                            .secret_access_key = SK};
    struct objstore *o = NULL;
    struct rv_error err = {0};
    int64_t size;
    assert_int_equal(objstore_s3_new(&o, &cfg, &err), 0);
    int64_t t0 = now_ms();
    assert_int_equal(o->stat(o, "k", &size, &err), RV_EUNAVAIL);
    assert_true(err.retryable);
    assert_non_null(strstr(err.msg, "cannot reach S3 endpoint"));
    assert_non_null(strstr(err.msg, "after 5 attempts"));
    /* backoff: 250 + 500 + 1000 + 2000 ms */
    assert_true(now_ms() - t0 >= 3500);
    o->free(o);
}

static void test_config_refused(void **state)
{
    (void)state;
    struct objstore *o = NULL;
    struct rv_error err = {0};
    struct s3_config good = {.endpoint = "https://s3.eu-west-1.amazonaws.com",
                             .region = "eu-west-1",
                             .bucket = "b-1",
                             .access_key_id = AK,
                             .secret_access_key = SK};
    struct s3_config c;

    c = good;
    c.bucket = "b"; /* too short */
    assert_int_equal(objstore_s3_new(&o, &c, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "bucket"));
    c = good;
    c.endpoint = "ftp://example.com";
    assert_int_equal(objstore_s3_new(&o, &c, &err), RV_EINVAL);
    c = good;
    c.endpoint = "http://user:pw@example.com";
    assert_int_equal(objstore_s3_new(&o, &c, &err), RV_EINVAL);
    c = good;
    c.part_size = 1024 * 1024;
    assert_int_equal(objstore_s3_new(&o, &c, &err), RV_EINVAL);
    c = good;
    c.prefix = "/leading";
    assert_int_equal(objstore_s3_new(&o, &c, &err), RV_EINVAL);
    c = good;
    c.secret_access_key = "";
    assert_int_equal(objstore_s3_new(&o, &c, &err), RV_EINVAL);
    assert_null(strstr(err.msg, SK));
    c = good;
    c.region = NULL;
    assert_int_equal(objstore_s3_new(&o, &c, &err), RV_EINVAL);
    assert_null(o);
    assert_int_equal(objstore_s3_new(&o, &good, &err), 0);
    o->free(o);
    assert_int_equal(objstore_s3_uploaded(NULL), 0);
}

/* The XML parsers on answers no test server sends. */
static void test_xml_parsers(void **state)
{
    (void)state;
    struct objstore_entry *e = NULL;
    size_t n = 0, cap = 0;
    char *token = NULL, code[64], msg[32];
    struct rv_error err = {0};
    const char *page = "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"x\">"
                       "<IsTruncated>true</IsTruncated>"
                       "<NextContinuationToken>a+b/c=&amp;</NextContinuationToken>"
                       "<Contents><Key>p/q/k&amp;&#x41;&#66;</Key><Size>12</Size>"
                       "<LastModified>2026-11-21T08:05:01.000Z</LastModified></Contents>"
                       "<Contents><Key>p/qq/foreign</Key><Size>1</Size></Contents>"
                       "<Contents><Key>p/q/z</Key><Size>0</Size></Contents>"
                       "</ListBucketResult>";

    assert_int_equal(s3_list_parse(&e, &n, &cap, "p/q", page, strlen(page), &token, &err), 0);
    assert_int_equal(n, 2); /* p/qq/foreign is not below p/q */
    assert_string_equal(e[0].key, "k&AB");
    assert_int_equal(e[0].size, 12);
    assert_int_equal(e[0].mtime, 1795248301);
    assert_string_equal(e[1].key, "z");
    assert_string_equal(token, "a+b/c=&");
    /* A second page appends. */
    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                       "<Contents><Key>p/q/y</Key><Size>3</Size></Contents></ListBucketResult>";
    assert_int_equal(s3_list_parse(&e, &n, &cap, "p/q", last, strlen(last), &token, &err), 0);
    assert_int_equal(n, 3);
    assert_null(token);
    objstore_entries_free(e, n);

    const char *bad[] = {
        "<Error><Code>AccessDenied</Code></Error>",
        "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k&bogus;</Key><Size>1</Size></Contents>"
        "</ListBucketResult>",
        "<ListBucketResult><Contents><Key>k&#0;</Key><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>never"
        "</LastModified></Contents></ListBucketResult>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e = NULL;
        n = cap = 0;
        assert_int_equal(s3_list_parse(&e, &n, &cap, "", bad[i], strlen(bad[i]), &token, &err),
                         RV_EPROTO);
        assert_null(token);
        objstore_entries_free(e, n);
    }

    const char *er = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate "
                     "&amp; try again later.</Message></Error>";
    s3_error_parse(code, sizeof(code), msg, sizeof(msg), er, strlen(er));
    assert_string_equal(code, "SlowDown");
    assert_int_equal(strlen(msg), sizeof(msg) - 1); /* cut visibly */
    assert_string_equal(msg + sizeof(msg) - 4, "...");
    s3_error_parse(code, sizeof(code), msg, sizeof(msg), "<html>", 6);
    assert_string_equal(code, "");
    assert_string_equal(msg, "");
    s3_error_parse(code, sizeof(code), msg, sizeof(msg), NULL, 0);
    assert_string_equal(code, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_refused),
        cmocka_unit_test(test_xml_parsers),
        cmocka_unit_test(test_small_put_get_stat_remove),
        cmocka_unit_test(test_multipart_20mib),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_list_prefix_and_pages),
        cmocka_unit_test(test_wrong_credentials_refused),
        cmocka_unit_test(test_missing_bucket),
        cmocka_unit_test(test_unreachable_endpoint),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
