/* test_restore.c - restore and point-in-time recovery against real servers.
 *
 * A source primary on 127.0.11.1 archives its WAL, encrypted, into a local
 * object store below /tmp/reeve-restore-test-XXXXXX; a full backup is taken
 * with pg_basebackup -Ft -D - -X fetch piped through the bstream encoder
 * (base/<id>/data, then base/<id>/manifest.json). Restores go into new data
 * directories on 127.0.11.2 and .3. When run as root the servers run as the
 * postgres user.
 *
 * This binary is also the servers' archive_command and restore_command:
 *   test_restore wal-push <store> <key hex> <%p> <%f>
 *   test_restore wal-fetch <store> <key hex> <%f> <%p>
 * (a shim until reeve-agent wal-push / wal-fetch are used here).
 */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "backup_cmd.h"
#include "backup_db.h"
#include "backup_pg.h"
#include "bstream.h"
#include "config.h"
#include "diag.h"
#include "engine_pg.h"
#include "objstore.h"
#include "restore.h"
#include "restore_cmd.h"
#include "testutil_pg.h"

#define WAIT_MS 20000
#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define BACKUP_ID "20261121T080000Z-0badc0de"
#define RECOVERY_MS 30000

static const char *const tables[] = {"pgbench_accounts", "pgbench_branches", "pgbench_tellers"};
#define N_TABLES (sizeof tables / sizeof tables[0])

struct fixture {
    char base[64];
    char store_dir[128];
    char self[512];
    char restore_cmd[1024];
    int port;
    struct tu_pg_node src, r1, r2;
    struct objstore *store;
    uint8_t key[BSTREAM_KEY_LEN];
    int64_t backup_ended_ms;
    char sums[N_TABLES][64];
    bool ready; /* source and backup made */
};

/* --- the archive shims (run by the servers as the postgres user) --- */

static int shim_open(struct objstore **o, uint8_t key[BSTREAM_KEY_LEN], const char *root,
                     const char *hex, struct rv_error *err)
{
    int rc = objstore_local_new(o, root, err);
    if (rc == 0)
        rc = bstream_key_parse(key, hex, err);
    return rc;
}

static int shim_push(const char *root, const char *hex, const char *path, const char *file)
{
    struct rv_error err = {0};
    struct objstore *o = NULL;
    uint8_t key[BSTREAM_KEY_LEN];
    struct rv_sink *sink = NULL, *enc = NULL;
    char okey[256];
    char buf[65536];
    int fd = -1;
    int rc = shim_open(&o, key, root, hex, &err);
    snprintf(okey, sizeof okey, "wal/%.8s/%s", file, file);
    if (rc == 0)
        rc = o->put(o, okey, &sink, &err);
    struct bstream_opts opts = {.key = key};
    if (rc == 0 && (rc = bstream_encoder_new(&enc, sink, &opts, NULL, &err)) != 0)
        rv_sink_abort(sink);
    if (rc == 0 && (fd = open(path, O_RDONLY)) < 0)
        rc = -1;
    while (rc == 0) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) {
            rc = r < 0 ? -1 : 0;
            break;
        }
        rc = rv_sink_write(enc, buf, (size_t)r, &err);
    }
    if (rc == 0)
        rc = rv_sink_finish(enc, &err);
    else
        rv_sink_abort(enc);
    if (fd >= 0)
        close(fd);
    if (o)
        o->free(o);
    if (rc != 0)
        fprintf(stderr, "wal-push %s: %s\n", file, err.msg);
    return rc == 0 ? 0 : 1;
}

static int shim_fetch(const char *root, const char *hex, const char *file, const char *path)
{
    struct rv_error err = {0};
    struct objstore *o = NULL;
    uint8_t key[BSTREAM_KEY_LEN];
    int rc = shim_open(&o, key, root, hex, &err);
    if (rc == 0)
        rc = restore_wal_fetch(o, key, file, path, &err);
    if (o)
        o->free(o);
    if (rc != 0 && rc != RV_ENOTFOUND)
        fprintf(stderr, "wal-fetch %s: %s\n", file, err.msg);
    return rc == 0 ? 0 : 1;
}

/* --- fixture --- */

static int node_init(struct fixture *f, struct tu_pg_node *n, const char *name, const char *addr,
                     const char *sub, bool archive)
{
    static char archive_cmd[1024];
    snprintf(archive_cmd, sizeof archive_cmd, "%s wal-push %s %s %%p %%f", f->self, f->store_dir,
             KEY_HEX);
    const struct pg_param extra[] = {{"archive_mode", "on"}, {"archive_command", archive_cmd}};
    struct pg_engine_config cfg = tu_pg_node_config(n, f->base, name, addr, sub, f->port);
    cfg.replication_password = archive ? "source-pw" : "restored-pw";
    cfg.extra = archive ? extra : NULL;
    cfg.n_extra = archive ? 2 : 0;
    return tu_pg_node_init(n, &cfg);
}

static int setup(void **state)
{
    static struct fixture f;
    struct rv_error err = {0};
    memset(&f, 0, sizeof f);
    *state = &f;
    if (!tu_have_pg())
        return 0;
    ssize_t n = readlink("/proc/self/exe", f.self, sizeof f.self - 1);
    if (n <= 0)
        return -1;
    f.self[n] = '\0';
    if (tu_tmpdir(f.base, sizeof f.base, "reeve-restore-test", "postgres", 0700) != 0)
        return -1;
    snprintf(f.store_dir, sizeof f.store_dir, "%s/store", f.base);
    if (mkdir(f.store_dir, 0700) != 0 || tu_chown(f.store_dir, "postgres") != 0)
        return -1;
    snprintf(f.restore_cmd, sizeof f.restore_cmd, "%s wal-fetch %s %s %%f %%p", f.self, f.store_dir,
             KEY_HEX);
    f.port = tu_port(7919);
    if (objstore_local_new(&f.store, f.store_dir, &err) != 0 ||
        bstream_key_parse(f.key, KEY_HEX, &err) != 0) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    if (node_init(&f, &f.src, "src", "127.0.11.1", "src", true) != 0 ||
        node_init(&f, &f.r1, "r1", "127.0.11.2", "r1", false) != 0 ||
        node_init(&f, &f.r2, "r2", "127.0.11.3", "r2", false) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct tu_pg_node *nodes[] = {&f->src, &f->r1, &f->r2};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
        tu_pg_node_stop(nodes[i]);
    if (f->store)
        f->store->free(f->store);
    tu_rm_test_dir(f->base);
    return 0;
}

/* --- SQL and tools --- */

static void table_sums(const struct tu_pg_node *n, char sums[N_TABLES][64])
{
    for (size_t i = 0; i < N_TABLES; i++) {
        char q[256];
        snprintf(q, sizeof q, "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM %s t",
                 tables[i]);
        if (!tu_pg_sql(n, q, sums[i], 64))
            fail_msg("checksum of %s on %s failed", tables[i], n->name);
        assert_true(strlen(sums[i]) == 32);
    }
}

static void write_manifest(struct fixture *f, const char *id, const char *checksum, int64_t started,
                           int64_t ended, uint64_t size)
{
    char s[RV_RESTORE_TIME_MAX + 1], e[RV_RESTORE_TIME_MAX + 1], key[128], text[2048];
    struct rv_error err = {0};
    struct rv_sink *sink = NULL;
    restore_time_format(s, started);
    restore_time_format(e, ended);
    snprintf(key, sizeof key, "base/%s/manifest.json", id);
    int n =
        snprintf(text, sizeof text,
                 "{\"backup_id\":\"%s\",\"set_id\":\"%s\",\"cluster\":\"t/src\",\"node\":\"src\","
                 "\"type\":\"full\",\"method\":\"pg_basebackup\",\"status\":\"succeeded\","
                 "\"error\":null,\"started_at\":\"%s\",\"ended_at\":\"%s\","
                 "\"name\":\"base/%s/data\",\"size\":%llu,\"checksum\":\"%s\","
                 "\"encrypted\":true,\"compression\":\"zstd\",\"timeline\":1}",
                 id, id, s, e, id, (unsigned long long)size, checksum);
    assert_true(n > 0 && n < (int)sizeof text);
    assert_int_equal(f->store->put(f->store, key, &sink, &err), 0);
    assert_int_equal(rv_sink_write(sink, text, (size_t)n, &err), 0);
    assert_int_equal(rv_sink_finish(sink, &err), 0);
}

/* pg_basebackup -Ft -D - -X fetch, through the encoder into base/<id>/data,
 * then the manifest. */
static void take_backup(struct fixture *f, const char *id)
{
    struct rv_error err = {0};
    struct rv_sink *sink = NULL, *enc = NULL;
    struct bstream_result res;
    struct bstream_opts opts = {.key = f->key};
    char key[128], port[16], buf[65536];
    int p[2];
    snprintf(key, sizeof key, "base/%s/data", id);
    snprintf(port, sizeof port, "%d", f->port);
    int64_t started = tu_wall_ms();
    assert_int_equal(f->store->put(f->store, key, &sink, &err), 0);
    assert_int_equal(bstream_encoder_new(&enc, sink, &opts, &res, &err), 0);
    assert_int_equal(pipe(p), 0);
    const char *args[] = {"pg_basebackup",     "-h",  f->src.addr, "-p", port, "-U",
                          "replicator",        "-Ft", "-D",        "-",  "-X", "fetch",
                          "--checkpoint=fast", "-w",  NULL};
    pid_t pid = tu_pg_spawn(args, p[1], "source-pw");
    close(p[1]);
    ssize_t r;
    while ((r = read(p[0], buf, sizeof buf)) > 0)
        assert_int_equal(rv_sink_write(enc, buf, (size_t)r, &err), 0);
    close(p[0]);
    assert_int_equal(tu_wait_exit(pid), 0);
    if (rv_sink_finish(enc, &err) != 0)
        fail_msg("backup: %s", err.msg);
    f->backup_ended_ms = tu_wall_ms();
    write_manifest(f, id, res.sha256, started, f->backup_ended_ms, res.stored_bytes);
}

/* Copy the stored object of backup from to backup to, damaged: one byte
 * flipped in the middle, or cut to half its length. */
static void copy_damaged(struct fixture *f, const char *from, const char *to, bool truncate)
{
    struct rv_error err = {0};
    struct rv_source *src = NULL;
    struct rv_sink *sink = NULL;
    struct restore_manifest m;
    char key[128];
    int64_t size = 0;
    snprintf(key, sizeof key, "base/%s/data", from);
    assert_int_equal(f->store->stat(f->store, key, &size, &err), 0);
    assert_true(size > 1000);
    char *data = malloc((size_t)size);
    assert_non_null(data);
    assert_int_equal(f->store->get(f->store, key, &src, &err), 0);
    size_t got = 0, n = 0;
    do {
        assert_int_equal(rv_source_read(src, data + got, (size_t)size - got, &n, &err), 0);
        got += n;
    } while (n > 0 && got < (size_t)size);
    rv_source_close(src);
    assert_int_equal(got, (size_t)size);
    if (truncate)
        got /= 2;
    else
        data[size / 2] ^= 0x01;
    snprintf(key, sizeof key, "base/%s/data", to);
    assert_int_equal(f->store->put(f->store, key, &sink, &err), 0);
    assert_int_equal(rv_sink_write(sink, data, got, &err), 0);
    assert_int_equal(rv_sink_finish(sink, &err), 0);
    free(data);
    assert_int_equal(restore_manifest_load(&m, f->store, from, &err), 0);
    write_manifest(f, to, m.checksum, m.started_ms, m.ended_ms, (uint64_t)size);
}

static struct restore_opts opts_for(struct fixture *f, const char *id, enum restore_target t,
                                    int64_t target_ms)
{
    struct restore_opts o = {
        .store = f->store,
        .key = f->key,
        .backup_id = id,
        .target = t,
        .target_ms = target_ms,
        .restore_command = f->restore_cmd,
        .timeout_ms = RECOVERY_MS,
    };
    return o;
}

/* rc must be code and err's message hold needle (NULL: any); the message
 * is printed, as an operator would read it. */
static void expect_error(int rc, int code, const struct rv_error *err, const char *needle)
{
    fprintf(stderr, "expected error: %s\n", err->msg);
    assert_int_equal(rc, code);
    if (needle && !strstr(err->msg, needle))
        fail_msg("message lacks '%s': %s", needle, err->msg);
}

static bool dir_has_pg_version(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/PG_VERSION", dir);
    return access(p, F_OK) == 0;
}

/* Wait until the source has archived the segment holding its current
 * position (after a switch). */
static void switch_and_archive(struct fixture *f)
{
    char seg[64] = "", last[64] = "";
    assert_true(tu_pg_sql(&f->src, "SELECT pg_walfile_name(pg_switch_wal())", seg, sizeof seg));
    int64_t deadline = tu_now_ms() + WAIT_MS;
    while (tu_now_ms() < deadline) {
        if (tu_pg_sql(&f->src, "SELECT COALESCE(last_archived_wal, '') FROM pg_stat_archiver", last,
                      sizeof last) &&
            strcmp(last, seg) >= 0)
            return;
        tu_sleep_ms(100);
    }
    fail_msg("segment %s was not archived within %d ms (last '%s')", seg, WAIT_MS, last);
}

/* --- tests --- */

static void test_full_restore(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct restore_result res;
    char sums[N_TABLES][64], v[128];

    int rc = pg_engine_initdb(&f->src.e, &err);
    if (rc != 0)
        fail_msg("initdb: %s", err.msg);
    char port[16];
    snprintf(port, sizeof port, "%d", f->port);
    const char *bench[] = {"pgbench", "-i", "-s", "1",     "-q",       "-h", f->src.sock,
                           "-p",      port, "-U", "reeve", "postgres", NULL};
    assert_int_equal(tu_wait_exit(tu_pg_spawn(bench, -1, NULL)), 0);
    tu_pg_sql_ok(&f->src, "UPDATE pgbench_accounts SET abalance = aid % 97 WHERE aid % 10 = 0");
    table_sums(&f->src, f->sums);
    take_backup(f, BACKUP_ID);
    switch_and_archive(f);
    f->ready = true;

    struct restore_opts o = opts_for(f, BACKUP_ID, RESTORE_TARGET_END, 0);
    rc = restore_run(&f->r1.e, &o, &res, &err);
    if (rc != 0)
        fail_msg("restore: %s", err.msg);
    assert_string_equal(res.backup_id, BACKUP_ID);
    assert_true(res.raw_bytes > res.stored_bytes);
    assert_true(res.timeline >= 2);
    table_sums(&f->r1, sums);
    for (size_t i = 0; i < N_TABLES; i++)
        assert_string_equal(sums[i], f->sums[i]);
    /* A writable primary, its recovery settings gone, this node's address. */
    assert_true(tu_pg_sql(&f->r1, "SELECT pg_is_in_recovery()::text", v, sizeof v));
    assert_string_equal(v, "false");
    tu_pg_sql_ok(&f->r1, "CREATE TABLE after_restore (x int)");
    assert_true(tu_pg_sql(&f->r1, "SELECT current_setting('listen_addresses')", v, sizeof v));
    assert_string_equal(v, "127.0.11.2");
    char p[512];
    snprintf(p, sizeof p, "%s/reeve-recovery.conf", f->r1.data);
    assert_true(access(p, F_OK) != 0);
    /* The replication role has this node's password. */
    assert_true(tu_pg_sql(&f->r1,
                          "SELECT count(*) FROM pg_authid WHERE rolname = 'replicator' AND "
                          "rolpassword LIKE 'SCRAM-SHA-256$%'",
                          v, sizeof v));
    assert_string_equal(v, "1");
    /* A second restore into the now used directory is refused. */
    assert_int_equal(pg_engine_stop(&f->r1.e, PG_STOP_FAST, &err), 0);
    rc = restore_run(&f->r1.e, &o, NULL, &err);
    expect_error(rc, RV_EEXISTS, &err, "not empty");
}

static void test_point_in_time(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct restore_result res;
    char v[128];
    if (!f->ready)
        skip();
    tu_pg_sql_ok(&f->src, "CREATE TABLE pitr (x int)");
    tu_pg_sql_ok(&f->src, "INSERT INTO pitr VALUES (1)");
    /* T: the server's clock after row 1 committed, rounded up to the ms. */
    assert_true(tu_pg_sql(
        &f->src, "SELECT ceil(extract(epoch FROM clock_timestamp()) * 1000)::bigint", v, sizeof v));
    int64_t t = strtoll(v, NULL, 10);
    tu_sleep_ms(1000);
    tu_pg_sql_ok(&f->src, "INSERT INTO pitr VALUES (2)");
    switch_and_archive(f);

    /* What a crashed restore left behind is started over. */
    char p[512];
    assert_int_equal(mkdir(f->r2.data, 0700), 0);
    snprintf(p, sizeof p, "%s/reeve-restore-incomplete", f->r2.data);
    FILE *m = fopen(p, "w");
    assert_non_null(m);
    fclose(m);
    snprintf(p, sizeof p, "%s/PG_VERSION", f->r2.data);
    m = fopen(p, "w");
    assert_non_null(m);
    fclose(m);

    struct restore_opts o = opts_for(f, NULL, RESTORE_TARGET_TIME, t);
    int rc = restore_run(&f->r2.e, &o, &res, &err);
    if (rc != 0)
        fail_msg("restore to T: %s", err.msg);
    assert_string_equal(res.backup_id, BACKUP_ID); /* found by time */
    assert_true(tu_pg_sql(&f->r2, "SELECT array_agg(x ORDER BY x)::text FROM pitr", v, sizeof v));
    assert_string_equal(v, "{1}");
    snprintf(p, sizeof p, "%s/reeve-restore-incomplete", f->r2.data);
    assert_true(access(p, F_OK) != 0);
    assert_true(res.recovered_to[0] != '\0');
    int64_t rt = 0;
    assert_int_equal(restore_time_parse(&rt, res.recovered_to, &err), 0);
    assert_true(rt <= t);
    assert_int_equal(pg_engine_stop(&f->r2.e, PG_STOP_IMMEDIATE, &err), 0);
    tu_rm_tree(f->r2.data);

    /* After the last archived WAL: a plain error, nothing usable left. */
    o = opts_for(f, BACKUP_ID, RESTORE_TARGET_TIME, tu_wall_ms() + 3600 * 1000);
    rc = restore_run(&f->r2.e, &o, NULL, &err);
    expect_error(rc, RV_EINVAL, &err, "is after the last archived WAL: recovery reached only");
    assert_non_null(strstr(err.msg, "the transaction committed at"));
    assert_false(dir_has_pg_version(f->r2.data));
}

static void test_target_before_backup(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    if (!f->ready)
        skip();
    struct restore_opts o =
        opts_for(f, BACKUP_ID, RESTORE_TARGET_TIME, f->backup_ended_ms - 10 * 1000);
    int rc = restore_run(&f->r2.e, &o, NULL, &err);
    expect_error(rc, RV_EINVAL, &err, "before backup '" BACKUP_ID "' became consistent");
    assert_false(dir_has_pg_version(f->r2.data));
    /* Without an id, no backup ended that early. */
    o.backup_id = NULL;
    rc = restore_run(&f->r2.e, &o, NULL, &err);
    expect_error(rc, RV_ENOTFOUND, &err, "no succeeded full backup ended at or before");
    /* Nor can an unknown backup be restored. */
    o = opts_for(f, "20991231T000000Z-00000000", RESTORE_TARGET_END, 0);
    rc = restore_run(&f->r2.e, &o, NULL, &err);
    expect_error(rc, RV_ENOTFOUND, &err, "not found");
}

static void damaged(struct fixture *f, const char *id, bool truncate)
{
    struct rv_error err = {0};
    copy_damaged(f, BACKUP_ID, id, truncate);
    struct restore_opts o = opts_for(f, id, RESTORE_TARGET_END, 0);
    int rc = restore_run(&f->r2.e, &o, NULL, &err);
    expect_error(rc, RV_EINTEGRITY, &err, "is damaged");
    assert_false(dir_has_pg_version(f->r2.data));
    struct pg_status st;
    assert_int_equal(pg_engine_status(&f->r2.e, 0, &st, &err), 0);
    assert_false(st.running);
}

static void test_damaged_backups(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    if (!f->ready)
        skip();
    damaged(f, "20261121T080001Z-f11bf11b", false);
    damaged(f, "20261121T080002Z-c07c07c0", true);
    /* Intact, but not a tar archive: tar's own failure, named. */
    {
        struct rv_error e2 = {0};
        struct rv_sink *sink = NULL, *enc = NULL;
        struct bstream_result br;
        struct bstream_opts bo = {.key = f->key};
        static const char junk[] = "this is not a tar archive, however long it is.";
        const char *id = "20261121T080003Z-7a77a77a";
        char key[128];
        snprintf(key, sizeof key, "base/%s/data", id);
        assert_int_equal(f->store->put(f->store, key, &sink, &e2), 0);
        assert_int_equal(bstream_encoder_new(&enc, sink, &bo, &br, &e2), 0);
        for (int i = 0; i < 100; i++)
            assert_int_equal(rv_sink_write(enc, junk, sizeof junk, &e2), 0);
        assert_int_equal(rv_sink_finish(enc, &e2), 0);
        write_manifest(f, id, br.sha256, tu_wall_ms() - 2000, tu_wall_ms() - 1000, br.stored_bytes);
        struct restore_opts o = opts_for(f, id, RESTORE_TARGET_END, 0);
        expect_error(restore_run(&f->r2.e, &o, NULL, &e2), RV_ECHILD, &e2, "'tar' failed");
        assert_false(dir_has_pg_version(f->r2.data));
    }
    /* A wrong key. */
    struct rv_error err = {0};
    uint8_t wrong[BSTREAM_KEY_LEN];
    memset(wrong, 7, sizeof wrong);
    struct restore_opts o = opts_for(f, BACKUP_ID, RESTORE_TARGET_END, 0);
    o.key = wrong;
    expect_error(restore_run(&f->r2.e, &o, NULL, &err), RV_EINTEGRITY, &err, "cannot be decrypted");
    assert_false(dir_has_pg_version(f->r2.data));
}

static void test_scratch_restore(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct restore_test_result res;
    if (!f->ready)
        skip();
    struct pg_engine_config node = {
        .bin_dir = TU_PG_BIN,
        .superuser = "reeve",
        .replication_user = "replicator",
        .replication_password = "unused",
        .os_user = tu_pg_os_user(),
        .no_sync = true,
    };
    /* Stopped at the backup's consistency point. */
    struct restore_opts o = opts_for(f, BACKUP_ID, RESTORE_TARGET_END, 0);
    int rc = restore_test(&node, f->base, &o, &res, &err);
    assert_int_equal(rc, 0);
    if (!res.ok)
        fail_msg("test restore: %s", res.error);
    assert_string_equal(res.backup_id, BACKUP_ID);
    if (res.databases < 3)
        fail_msg("the scratch copy lists %lld databases", (long long)res.databases);
    assert_true(res.checksums_checked);
    /* Nothing left behind, and the archive got no new timeline. */
    char p[512];
    snprintf(p, sizeof p, "%s/wal/00000002", f->store_dir);
    assert_true(access(p, F_OK) != 0);
    /* A damaged backup fails the test (an outcome, not an error). */
    o.backup_id = "20261121T080001Z-f11bf11b";
    rc = restore_test(&node, f->base, &o, &res, &err);
    assert_int_equal(rc, 0);
    assert_false(res.ok);
    assert_non_null(strstr(res.error, "is damaged"));
}

/* Run cmd through the shell; its stdout goes to out. Returns the exit code. */
static int run_capture(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    assert_non_null(p);
    while (n + 1 < cap) {
        size_t r = fread(out + n, 1, cap - 1 - n, p);
        if (r == 0)
            break;
        n += r;
    }
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* reeve-agent restore --from: the operators' and the bench's way in. */
static void test_cli(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    const char *bin = getenv("REEVE_AGENT_BIN");
    char path[256], cmd[2048], out[4096];
    if (!f->ready)
        skip();
    if (!bin) {
        fprintf(stderr, "skipped: REEVE_AGENT_BIN not set\n");
        skip();
    }
    snprintf(path, sizeof path, "%s/key", f->base);
    FILE *k = fopen(path, "w");
    assert_non_null(k);
    fprintf(k, "%s\n", KEY_HEX);
    fclose(k);
    chmod(path, 0600);
    assert_int_equal(tu_chown(path, "postgres"), 0);
    snprintf(path, sizeof path, "%s/agent.yaml", f->base);
    FILE *y = fopen(path, "w");
    assert_non_null(y);
    fprintf(y,
            "node: cli-0\ncluster: t/cli\nreconciler: http://127.0.0.1:9\n"
            "state_dir: %s/state\nengine:\n  type: postgresql\n  bin_dir: " TU_PG_BIN "\n"
            "  data_dir: %s/cli-own\n  socket_dir: %s/cli-sock\n  listen_address: 127.0.11.9\n"
            "  port: %d\n  replication_password: env:TEST_RESTORE_PW\n  superuser: reeve\n"
            "%s  no_sync: true\n",
            f->base, f->base, f->base, f->port, geteuid() == 0 ? "  os_user: postgres\n" : "");
    fclose(y);
    /* A copy beside the node, at the end of the archive, then stopped. */
    snprintf(cmd, sizeof cmd,
             "TEST_RESTORE_PW=pw %s restore -c %s --to %s/cli-copy --from %s --key-file %s/key "
             "--backup %s --stop --json",
             bin, path, f->base, f->store_dir, f->base, BACKUP_ID);
    int rc = run_capture(cmd, out, sizeof out);
    fprintf(stderr, "%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"ok\": true"));
    assert_non_null(strstr(out, "\"running\": false"));
    assert_non_null(strstr(out, "\"backup_id\": \"" BACKUP_ID "\""));
    snprintf(path, sizeof path, "%s/cli-copy", f->base);
    assert_true(dir_has_pg_version(path));
    /* A time before the backup: exit 1, a JSON error, nothing made. */
    snprintf(path, sizeof path, "%s/agent.yaml", f->base);
    snprintf(cmd, sizeof cmd,
             "TEST_RESTORE_PW=pw %s restore -c %s --to %s/cli-early --from %s --key-file %s/key "
             "--backup %s --point-in-time 2020-01-01T00:00:00Z --json",
             bin, path, f->base, f->store_dir, f->base, BACKUP_ID);
    rc = run_capture(cmd, out, sizeof out);
    fprintf(stderr, "%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "\"code\": \"INVAL\""));
    assert_non_null(strstr(out, "became consistent"));
    snprintf(path, sizeof path, "%s/cli-early", f->base);
    assert_true(access(path, F_OK) != 0);
}

/* Store config (a JSON text) as the backup daemon does. */
static void store_config(const struct agent_config *cfg, const char *text)
{
    struct backup_ctx c;
    struct rv_error err = {0};
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    if (backup_ctx_open(&c, cfg, true, &err) != 0)
        fail_msg("backup_ctx_open: %s", err.msg);
    if (backup_db_config_save(c.db, j, NULL, &err) != 0)
        fail_msg("config_save: %s", err.msg);
    backup_ctx_release(&c);
    json_decref(j);
}

/* What bootstrap_primary calls: the configuration's "restore" section, with
 * reeve-agent's own wal-fetch (this binary dispatches "wal-fetch -c" to it)
 * reading that section while recovery.signal is in the data directory. */
static void test_bootstrap_from_config(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct agent_config cfg;
    struct diag_list diags;
    struct rv_error err = {0};
    struct pg_engine e;
    struct restore_result res;
    char path[256], text[2048];
    bool restored = true;
    if (!f->ready)
        skip();
    snprintf(path, sizeof path, "%s/agent.yaml", f->base);
    if (access(path, F_OK) != 0)
        skip(); /* written by test_cli */
    setenv("TEST_RESTORE_PW", "pw", 1);
    diag_list_init(&diags);
    assert_int_equal(agent_config_load(&cfg, path, &diags), 0);
    struct pg_engine_config pc = {
        .bin_dir = cfg.pg.bin_dir,
        .data_dir = cfg.pg.data_dir,
        .socket_dir = cfg.pg.socket_dir,
        .listen_address = cfg.pg.listen_address,
        .port = cfg.pg.port,
        .superuser = cfg.pg.superuser,
        .replication_user = cfg.pg.replication_user,
        .replication_password = cfg.pg.replication_password,
        .application_name = cfg.node,
        .os_user = tu_os_user(cfg.pg.os_user),
        .no_sync = true,
    };
    assert_int_equal(pg_engine_init(&e, &pc, &err), 0);

    /* Nothing stored yet: wait. */
    assert_int_equal(restore_from_config(&e, &cfg, NULL, &restored, &res, &err), RV_ENOTFOUND);
    assert_true(err.retryable);
    /* No "restore": initdb as usual. */
    store_config(&cfg, "{\"cluster\":\"t/cli\",\"engine\":\"postgresql\",\"digest\":\"a\","
                       "\"backup\":null,\"restore\":null,\"requests\":[]}");
    assert_int_equal(restore_from_config(&e, &cfg, NULL, &restored, &res, &err), 0);
    assert_false(restored);
    assert_false(dir_has_pg_version(cfg.pg.data_dir));
    /* A "restore" section: the node restores and is a primary. */
    snprintf(text, sizeof text,
             "{\"cluster\":\"t/cli\",\"engine\":\"postgresql\",\"digest\":\"b\","
             "\"backup\":null,\"restore\":{\"source_cluster\":\"t/src\",\"destination\":"
             "{\"kind\":\"local\",\"path\":\"%s\"},\"encryption_key\":\"%s\","
             "\"backup_id\":\"%s\",\"point_in_time\":null},\"requests\":[]}",
             f->store_dir, KEY_HEX, BACKUP_ID);
    store_config(&cfg, text);
    int rc = restore_from_config(&e, &cfg, NULL, &restored, &res, &err);
    if (rc != 0)
        fail_msg("restore_from_config: %s", err.msg);
    assert_true(restored);
    assert_string_equal(res.backup_id, BACKUP_ID);
    assert_true(res.timeline >= 2);
    struct tu_pg_node n = {.e = e, .name = "cli-own"};
    snprintf(n.sock, sizeof n.sock, "%s", cfg.pg.socket_dir);
    char sums[N_TABLES][64];
    table_sums(&n, sums);
    for (size_t i = 0; i < N_TABLES; i++)
        assert_string_equal(sums[i], f->sums[i]);
    assert_int_equal(pg_engine_stop(&e, PG_STOP_FAST, &err), 0);
    pg_engine_release(&e);
    agent_config_release(&cfg);
    diag_list_release(&diags);
}

int main(int argc, char **argv)
{
    /* reeve-agent's own wal-fetch, as restore_from_config() configures it. */
    if (argc == 6 && strcmp(argv[1], "wal-fetch") == 0 && strcmp(argv[2], "-c") == 0)
        return backup_cmd_main(argc, argv);
    if (argc == 6 && strcmp(argv[1], "wal-push") == 0)
        return shim_push(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 6 && strcmp(argv[1], "wal-fetch") == 0)
        return shim_fetch(argv[2], argv[3], argv[4], argv[5]);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_restore),          cmocka_unit_test(test_point_in_time),
        cmocka_unit_test(test_target_before_backup),  cmocka_unit_test(test_damaged_backups),
        cmocka_unit_test(test_scratch_restore),       cmocka_unit_test(test_cli),
        cmocka_unit_test(test_bootstrap_from_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
