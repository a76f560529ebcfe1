/* test_backup_mariadb.c - MariaDB backups with mariadb-backup through the
 * backup pipeline, and their restore, against real servers.
 *
 * A source "mb-0" on 127.0.61.1 and restore targets on 127.0.61.2-4, each
 * with its own data and socket directory under /tmp/reeve-mdbbk-test-XXXXXX;
 * when run as root the servers run as the mysql user. The tests run in
 * order and share the servers: a full backup, more rows, an incremental,
 * more rows, a second incremental (records: type, set_id, parent, LSNs,
 * GTID); the chain restored into a new server (same CHECKSUM TABLE as the
 * source at the second incremental, writable, GTIDs continue); the full
 * backup alone (the data of that moment); a restore by point in time
 * (backup granularity); a damaged incremental (RV_EINTEGRITY, nothing
 * left in the data directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <mysql.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "backup_db.h"
#include "backup_mariadb.h"
#include "backup_pg.h"
#include "config.h"
#include "engine_mariadb.h"

#define SERVER "/usr/sbin/mariadbd"
#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

struct node {
    struct mdb_engine e;
    char data[256], sock[256], log[256];
    bool inited;
};

struct fixture {
    char base[64], store[128], state[128], cfg_path[128];
    int port;
    struct agent_config cfg;
    bool cfg_ok;
    struct node src, r1, r2, r3;
    char full_id[64], inc1_id[64], inc2_id[64];
    char sum_full[64], sum_inc1[64], sum_inc2[64];
    char gtid_inc2[256];
    char inc1_ended[32];
};

static bool have_mariadb(void)
{
    return access(SERVER, X_OK) == 0 && access("/usr/bin/mariadb-backup", X_OK) == 0 &&
           access("/usr/bin/mbstream", X_OK) == 0;
}

#define SKIP_WITHOUT_MARIADB()                                                                     \
    do {                                                                                           \
        if (!have_mariadb() || !f->cfg_ok) {                                                       \
            skip();                                                                                \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static int node_init(struct fixture *f, struct node *n, const char *name, const char *addr,
                     const char *sub, uint32_t server_id)
{
    struct rv_error err = {0};
    snprintf(n->data, sizeof n->data, "%s/%s", f->base, sub);
    snprintf(n->sock, sizeof n->sock, "%s/%s-sock", f->base, sub);
    snprintf(n->log, sizeof n->log, "%s/%s.err", f->base, sub);
    static const struct mdb_param extra[] = {{"innodb_buffer_pool_size", "32M"},
                                             {"performance_schema", "OFF"}};
    struct mdb_engine_config cfg = {
        .data_dir = n->data,
        .socket_dir = n->sock,
        .log_file = n->log,
        .listen_address = addr,
        .port = f->port,
        .server_id = server_id,
        .node_name = name,
        .replication_user = "replicator",
        .replication_password = "repl-secret",
        .os_user = geteuid() == 0 ? "mysql" : NULL,
        .extra = extra,
        .n_extra = 2,
        .no_sync = true,
    };
    int rc = mdb_engine_init(&n->e, &cfg, &err);
    if (rc != 0)
        fprintf(stderr, "init %s: %s\n", name, err.msg);
    n->inited = rc == 0;
    return rc;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs(text, fp);
    return fclose(fp);
}

static int setup(void **state)
{
    static struct fixture f;
    struct rv_error err = {0};
    struct diag_list diags;
    char yaml[2048];
    memset(&f, 0, sizeof f);
    *state = &f;
    signal(SIGPIPE, SIG_IGN);
    if (!have_mariadb())
        return 0;
    snprintf(f.base, sizeof f.base, "/tmp/reeve-mdbbk-test-XXXXXX");
    if (!mkdtemp(f.base))
        return -1;
    struct passwd *pw = geteuid() == 0 ? getpwnam("mysql") : NULL;
    if (geteuid() == 0 && (pw == NULL || chown(f.base, pw->pw_uid, pw->pw_gid) != 0))
        return -1;
    chmod(f.base, 0711);
    snprintf(f.store, sizeof f.store, "%s/store", f.base);
    snprintf(f.state, sizeof f.state, "%s/state", f.base);
    snprintf(f.cfg_path, sizeof f.cfg_path, "%s/agent.yaml", f.base);
    f.port = 20000 + (int)((getpid() + 7919) % 20000);
    if (node_init(&f, &f.src, "mb-0", "127.0.61.1", "src", 1) != 0 ||
        node_init(&f, &f.r1, "mb-r1", "127.0.61.2", "r1", 2) != 0 ||
        node_init(&f, &f.r2, "mb-r2", "127.0.61.3", "r2", 3) != 0 ||
        node_init(&f, &f.r3, "mb-r3", "127.0.61.4", "r3", 4) != 0)
        return -1;
    setenv("REEVE_TEST_REPL_PW", "repl-secret", 1);
    snprintf(yaml, sizeof yaml,
             "node: mb-0\ncluster: t/mdb\nreconciler: http://127.0.0.1:9\n"
             "state_dir: %s\nengine:\n  type: mariadb\n"
             "  data_dir: %s\n  socket_dir: %s\n  listen_address: 127.0.61.1\n  port: %d\n"
             "  server_id: 1\n  replication_password: env:REEVE_TEST_REPL_PW\n"
             "  os_user: mysql\n  no_sync: true\n",
             f.state, f.src.data, f.src.sock, f.port);
    if (write_text(f.cfg_path, yaml) != 0)
        return -1;
    diag_list_init(&diags);
    if (agent_config_load(&f.cfg, f.cfg_path, &diags) != 0) {
        diag_list_print(stderr, &diags);
        diag_list_release(&diags);
        return -1;
    }
    diag_list_release(&diags);
    f.cfg_ok = true;
    if (mdb_engine_install(&f.src.e, &err) != 0) {
        fprintf(stderr, "install: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void node_down(struct node *n)
{
    struct rv_error err = {0};
    if (n->inited) {
        mdb_engine_stop(&n->e, MDB_STOP_IMMEDIATE, &err);
        mdb_engine_release(&n->e);
        n->inited = false;
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    node_down(&f->src);
    node_down(&f->r1);
    node_down(&f->r2);
    node_down(&f->r3);
    if (f->cfg_ok)
        agent_config_release(&f->cfg);
    if (f->base[0] != '\0' && getenv("REEVE_TEST_KEEP") == NULL)
        nftw(f->base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* One value (row 0, column col) of a query on a node, as root over its socket. */
static bool sql(struct node *n, const char *q, unsigned col, char *out, size_t cap)
{
    char sockpath[300];
    unsigned int proto = MYSQL_PROTOCOL_SOCKET;
    snprintf(sockpath, sizeof sockpath, "%s/mariadbd.sock", n->sock);
    MYSQL *c = mysql_init(NULL);
    bool ok = false;
    if (c == NULL)
        return false;
    mysql_options(c, MYSQL_OPT_PROTOCOL, &proto);
    if (!mysql_real_connect(c, "localhost", n->e.admin_user, NULL, NULL, 0, sockpath,
                            CLIENT_MULTI_STATEMENTS)) {
        fprintf(stderr, "connect %s: %s\n", n->e.node_name, mysql_error(c));
        goto out;
    }
    if (mysql_query(c, q) != 0) {
        fprintf(stderr, "%s: %s: %s\n", n->e.node_name, q, mysql_error(c));
        goto out;
    }
    ok = true;
    do {
        MYSQL_RES *r = mysql_store_result(c);
        if (r != NULL) {
            MYSQL_ROW row = mysql_fetch_row(r);
            if (out != NULL && row != NULL && col < mysql_num_fields(r))
                snprintf(out, cap, "%s", row[col] != NULL ? row[col] : "NULL");
            mysql_free_result(r);
        }
    } while (mysql_next_result(c) == 0);
    if (mysql_errno(c) != 0) {
        fprintf(stderr, "%s: %s: %s\n", n->e.node_name, q, mysql_error(c));
        ok = false;
    }
out:
    mysql_close(c);
    return ok;
}

static void add_rows(struct node *n, int from, int to)
{
    char q[256];
    snprintf(q, sizeof q,
             "INSERT INTO d.t (id, v) SELECT seq, MD5(seq) FROM d.seq_%d_to_%d;"
             "UPDATE d.u SET n = n + 1",
             from, to);
    assert_true(sql(n, q, 0, NULL, 0));
}

static void checksum(struct node *n, char *out, size_t cap)
{
    char a[64] = "", b[64] = "";
    assert_true(sql(n, "CHECKSUM TABLE d.t", 1, a, sizeof a));
    assert_true(sql(n, "CHECKSUM TABLE d.u", 1, b, sizeof b));
    snprintf(out, cap, "%s/%s", a, b);
}

static void open_ctx(struct fixture *f, struct backup_ctx *c)
{
    struct rv_error err = {0};
    if (backup_ctx_open(c, &f->cfg, true, &err) != 0)
        fail_msg("ctx: %s", err.msg);
    assert_non_null(c->store);
}

static void store_config(struct fixture *f)
{
    struct backup_ctx c;
    struct rv_error err = {0};
    char *text = NULL;
    if (backup_ctx_open(&c, &f->cfg, true, &err) != 0 && c.db == NULL)
        fail_msg("ctx: %s", err.msg);
    assert_true(
        asprintf(&text,
                 "{\"cluster\":\"t/mdb\",\"engine\":\"mariadb\",\"digest\":\"m1\","
                 "\"backup\":{\"full_cron\":\"0 3 * * *\",\"incremental_cron\":\"0 * * * *\","
                 "\"retention_days\":7,\"method\":\"mariabackup\",\"args\":[],"
                 "\"prefer_replica\":false,\"pitr\":false,"
                 "\"destination\":{\"kind\":\"local\",\"path\":\"%s\"},"
                 "\"encryption_key\":\"" KEY_HEX "\",\"test_restore_cron\":null},"
                 "\"restore\":null,\"requests\":[]}",
                 f->store) > 0);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    if (backup_db_config_save(c.db, j, NULL, &err) != 0)
        fail_msg("save: %s", err.msg);
    backup_ctx_release(&c);
    json_decref(j);
    free(text);
}

static const char *s(json_t *rec, const char *k)
{
    const char *v = json_string_value(json_object_get(rec, k));
    return v != NULL ? v : "(null)";
}

static void check_record(json_t *rec, const char *type, const char *set_id, const char *parent)
{
    assert_string_equal(s(rec, "status"), "succeeded");
    assert_string_equal(s(rec, "type"), type);
    assert_string_equal(s(rec, "method"), "mariabackup");
    assert_string_equal(s(rec, "cluster"), "t/mdb");
    assert_string_equal(s(rec, "node"), "mb-0");
    assert_string_equal(s(rec, "set_id"), set_id != NULL ? set_id : s(rec, "backup_id"));
    if (parent == NULL)
        assert_true(json_is_null(json_object_get(rec, "parent")));
    else
        assert_string_equal(s(rec, "parent"), parent);
    assert_true(json_is_true(json_object_get(rec, "encrypted")));
    assert_int_equal(strlen(s(rec, "checksum")), 64);
    assert_true(json_integer_value(json_object_get(rec, "size")) > 0);
    assert_true(strspn(s(rec, "start_lsn"), "0123456789") == strlen(s(rec, "start_lsn")));
    assert_true(strtoull(s(rec, "end_lsn"), NULL, 10) > 0);
    assert_true(json_is_null(json_object_get(rec, "error")));
    assert_string_equal(s(rec, "consistent_at"), s(rec, "ended_at"));
}

static void test_backup_chain(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    json_t *rec = NULL;
    char out[64], gtid[256];
    SKIP_WITHOUT_MARIADB();
    assert_true(sql(&f->src,
                    "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT);"
                    "CREATE TABLE d.u (k INT PRIMARY KEY, n INT) ENGINE=Aria;"
                    "INSERT INTO d.u VALUES (1, 0)",
                    0, NULL, 0));
    add_rows(&f->src, 1, 20000);
    store_config(f);
    open_ctx(f, &c);
    /* An incremental with nothing to build on is a full backup. */
    if (backup_mdb_user_ensure(&c, true, &err) != 0)
        fail_msg("user: %s", err.msg);
    assert_true(sql(&f->src, "SELECT COUNT(*) FROM mysql.user WHERE user = 'reeve_backup'", 0, out,
                    sizeof out));
    assert_string_equal(out, "1");
    bool ro = true;
    assert_int_equal(backup_mdb_read_only(&ro, &c, &err), 0);
    assert_false(ro);
    if (backup_mdb_incremental(&rec, &c, "manual", &err) != 0)
        fail_msg("full: %s", err.msg);
    check_record(rec, "full", NULL, NULL);
    snprintf(f->full_id, sizeof f->full_id, "%s", s(rec, "backup_id"));
    assert_true(sql(&f->src, "SELECT @@gtid_current_pos", 0, gtid, sizeof gtid));
    assert_string_equal(s(rec, "gtid"), gtid);
    checksum(&f->src, f->sum_full, sizeof f->sum_full);
    json_decref(rec);

    add_rows(&f->src, 20001, 30000);
    if (backup_mdb_incremental(&rec, &c, "scheduled", &err) != 0)
        fail_msg("incremental 1: %s", err.msg);
    check_record(rec, "incremental", f->full_id, f->full_id);
    snprintf(f->inc1_id, sizeof f->inc1_id, "%s", s(rec, "backup_id"));
    snprintf(f->inc1_ended, sizeof f->inc1_ended, "%s", s(rec, "ended_at"));
    checksum(&f->src, f->sum_inc1, sizeof f->sum_inc1);
    json_decref(rec);

    add_rows(&f->src, 30001, 35000);
    assert_true(sql(&f->src, "DELETE FROM d.t WHERE id % 7 = 0", 0, NULL, 0));
    sleep(1); /* distinct ended_at for the point-in-time test */
    if (backup_mdb_incremental(&rec, &c, "scheduled", &err) != 0)
        fail_msg("incremental 2: %s", err.msg);
    check_record(rec, "incremental", f->full_id, f->inc1_id);
    snprintf(f->inc2_id, sizeof f->inc2_id, "%s", s(rec, "backup_id"));
    checksum(&f->src, f->sum_inc2, sizeof f->sum_inc2);
    assert_true(sql(&f->src, "SELECT @@gtid_current_pos", 0, gtid, sizeof gtid));
    assert_string_equal(s(rec, "gtid"), gtid);
    snprintf(f->gtid_inc2, sizeof f->gtid_inc2, "%s", gtid);
    /* The incremental is much smaller than the full backup. */
    json_decref(rec);
    /* Later rows are not in any backup. */
    add_rows(&f->src, 35001, 36000);
    /* The records are in backup.db too. */
    assert_int_equal(backup_db_record_get(&rec, c.db, f->inc2_id, &err), 0);
    assert_string_equal(s(rec, "parent"), f->inc1_id);
    json_decref(rec);
    /* The manifest in the store is the record. */
    char path[512];
    snprintf(path, sizeof path, "%s/base/%s/manifest.json", f->store, f->inc1_id);
    json_t *m = json_load_file(path, 0, NULL);
    assert_non_null(m);
    assert_string_equal(s(m, "set_id"), f->full_id);
    assert_string_equal(s(m, "type"), "incremental");
    json_decref(m);
    /* The option file with the password is gone. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -d %s/reeve-backup-* 2>/dev/null | grep -q .", f->src.sock);
    assert_int_not_equal(system(cmd), 0);
    backup_ctx_release(&c);
}

static void restore_into(struct fixture *f, struct node *n, const char *id, bool has_target,
                         int64_t target_ms, struct restore_mdb_result *res)
{
    struct backup_ctx c;
    struct rv_error err = {0};
    open_ctx(f, &c);
    struct restore_mdb_opts o = {.store = c.store,
                                 .key = c.has_key ? c.key : NULL,
                                 .backup_id = id,
                                 .has_target = has_target,
                                 .target_ms = target_ms};
    if (restore_mdb_run(&n->e, &o, res, &err) != 0)
        fail_msg("restore into %s: %s", n->e.node_name, err.msg);
    backup_ctx_release(&c);
}

static void test_restore_chain(void **state)
{
    struct fixture *f = *state;
    struct restore_mdb_result res;
    char sum[64], gtid[256], out[64];
    SKIP_WITHOUT_MARIADB();
    assert_true(f->inc2_id[0] != '\0');
    restore_into(f, &f->r1, f->inc2_id, false, 0, &res);
    assert_string_equal(res.backup_id, f->inc2_id);
    assert_string_equal(res.set_id, f->full_id);
    assert_int_equal(res.chain_len, 3);
    assert_string_equal(res.gtid, f->gtid_inc2);
    assert_true(res.raw_bytes > 0 && res.stored_bytes > 0);
    checksum(&f->r1, sum, sizeof sum);
    assert_string_equal(sum, f->sum_inc2);
    assert_true(sql(&f->r1, "SELECT COUNT(*) FROM d.t", 0, out, sizeof out));
    assert_string_equal(out, "30000"); /* 35000 minus the 5000 multiples of 7 */
    /* A writable primary whose binary log continues the restored GTIDs. */
    assert_true(sql(&f->r1, "SELECT @@read_only", 0, out, sizeof out));
    assert_string_equal(out, "0");
    assert_true(sql(&f->r1, "SELECT @@gtid_current_pos", 0, gtid, sizeof gtid));
    assert_string_equal(gtid, f->gtid_inc2);
    assert_true(sql(&f->r1, "INSERT INTO d.t VALUES (99999999, 'after')", 0, NULL, 0));
    assert_true(sql(&f->r1, "SELECT @@gtid_binlog_pos", 0, gtid, sizeof gtid));
    struct mdb_gtid_pos before, after;
    assert_int_equal(mdb_gtid_parse(&before, f->gtid_inc2), 0);
    assert_int_equal(mdb_gtid_parse(&after, gtid), 0);
    assert_int_equal(after.n, 1);
    assert_int_equal(after.g[0].seq, before.g[0].seq + 1);
    /* Files belong to the server's user. */
    struct stat sb;
    char path[512];
    snprintf(path, sizeof path, "%s/ibdata1", f->r1.data);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_uid, f->r1.e.run_as ? f->r1.e.uid : geteuid());
}

static void test_restore_full_only(void **state)
{
    struct fixture *f = *state;
    struct restore_mdb_result res;
    char sum[64], out[64];
    SKIP_WITHOUT_MARIADB();
    restore_into(f, &f->r2, f->full_id, false, 0, &res);
    assert_int_equal(res.chain_len, 1);
    checksum(&f->r2, sum, sizeof sum);
    assert_string_equal(sum, f->sum_full);
    assert_true(sql(&f->r2, "SELECT COUNT(*) FROM d.t", 0, out, sizeof out));
    assert_string_equal(out, "20000");
    /* A data directory in use is refused. */
    struct backup_ctx c;
    struct rv_error err = {0};
    open_ctx(f, &c);
    struct restore_mdb_opts o = {.store = c.store, .key = c.key, .backup_id = f->full_id};
    assert_int_equal(restore_mdb_run(&f->r2.e, &o, NULL, &err), RV_EEXISTS);
    backup_ctx_release(&c);
}

static void test_restore_point_in_time(void **state)
{
    struct fixture *f = *state;
    struct restore_mdb_result res;
    struct rv_error err = {0};
    char sum[64];
    int64_t t = 0;
    SKIP_WITHOUT_MARIADB();
    struct tm tm = {0};
    int ms = 0;
    assert_int_equal(sscanf(f->inc1_ended, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    t = (int64_t)timegm(&tm) * 1000 + ms + 1;
    restore_into(f, &f->r3, NULL, true, t, &res);
    assert_string_equal(res.backup_id, f->inc1_id);
    assert_int_equal(res.chain_len, 2);
    checksum(&f->r3, sum, sizeof sum);
    assert_string_equal(sum, f->sum_inc1);
    /* Before the first backup ended: nothing to restore. */
    assert_int_equal(mdb_engine_stop(&f->r3.e, MDB_STOP_FAST, &err), 0);
    nftw(f->r3.data, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    struct backup_ctx c;
    open_ctx(f, &c);
    struct restore_mdb_opts o = {
        .store = c.store, .key = c.key, .has_target = true, .target_ms = 1000};
    assert_int_equal(restore_mdb_run(&f->r3.e, &o, NULL, &err), RV_ENOTFOUND);
    backup_ctx_release(&c);
}

static void test_damaged_incremental(void **state)
{
    struct fixture *f = *state;
    struct rv_error err = {0};
    char path[512];
    struct stat sb;
    SKIP_WITHOUT_MARIADB();
    /* Flip one byte in the middle of the first incremental's object. */
    snprintf(path, sizeof path, "%s/base/%s/data", f->store, f->inc1_id);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    unsigned char b;
    off_t at = sb.st_size / 2;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
    struct backup_ctx c;
    open_ctx(f, &c);
    struct restore_mdb_opts o = {.store = c.store, .key = c.key, .backup_id = f->inc2_id};
    assert_int_equal(restore_mdb_run(&f->r3.e, &o, NULL, &err), RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, f->inc1_id));
    /* Nothing usable left: no server, an empty (or absent) data directory,
     * no work directory. */
    struct mdb_status st;
    assert_int_equal(mdb_engine_status(&f->r3.e, NULL, &st, &err), 0);
    assert_false(st.running);
    snprintf(path, sizeof path, "%s/ibdata1", f->r3.data);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s.reeve-restore", f->r3.data);
    assert_int_equal(access(path, F_OK), -1);
    /* The full backup alone is still fine. */
    o.backup_id = f->full_id;
    if (restore_mdb_run(&f->r3.e, &o, NULL, &err) != 0)
        fail_msg("restore of the full backup: %s", err.msg);
    /* A chain with a missing link is refused before anything is touched. */
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/base/%s/manifest.json", f->store, f->inc1_id);
    snprintf(to, sizeof to, "%s/manifest.json.away", f->base);
    assert_int_equal(rename(from, to), 0);
    o.backup_id = f->inc2_id;
    assert_int_equal(restore_mdb_run(&f->r3.e, &o, NULL, &err), RV_EINTEGRITY);
    assert_non_null(strstr(err.msg, "is missing"));
    assert_int_equal(rename(to, from), 0);
    backup_ctx_release(&c);
}

/* backup_full() with method "mariabackup" takes a MariaDB backup (the
 * scheduler's and `reeve-agent backup`'s path). */
static void test_full_dispatch(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    json_t *rec = NULL;
    SKIP_WITHOUT_MARIADB();
    open_ctx(f, &c);
    if (backup_full(&rec, &c, "manual", &err) != 0)
        fail_msg("backup_full: %s", err.msg);
    check_record(rec, "full", NULL, NULL);
    char id[64], sum[64], want[64], at[32], *text = NULL;
    snprintf(id, sizeof id, "%s", s(rec, "backup_id"));
    json_decref(rec);
    backup_ctx_release(&c);
    checksum(&f->src, want, sizeof want);
    /* The bootstrap's path: the configuration's restore section, by point
     * in time (now: the newest backup, this one). */
    assert_int_equal(mdb_engine_stop(&f->r2.e, MDB_STOP_FAST, &err), 0);
    nftw(f->r2.data, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    backup_time_format(at, backup_now_ms());
    assert_true(asprintf(&text,
                         "{\"source_cluster\":\"t/mdb\",\"destination\":{\"kind\":\"local\","
                         "\"path\":\"%s\"},\"encryption_key\":\"" KEY_HEX "\","
                         "\"backup_id\":\"%s\",\"point_in_time\":\"%s\"}",
                         f->store, f->full_id, at) > 0);
    json_t *r = json_loads(text, 0, NULL);
    assert_non_null(r);
    struct restore_mdb_result res;
    if (restore_mdb_from_config(&f->r2.e, r, NULL, &res, &err) != 0)
        fail_msg("restore from config: %s", err.msg);
    assert_string_equal(res.backup_id, id);
    checksum(&f->r2, sum, sizeof sum);
    assert_string_equal(sum, want);
    json_decref(r);
    free(text);
}

static void put_manifest(struct objstore *o, const char *id, const char *set, const char *type,
                         const char *started)
{
    struct rv_error err = {0};
    struct rv_sink *sk = NULL;
    char key[128], text[512];
    snprintf(text, sizeof text,
             "{\"backup_id\":\"%s\",\"set_id\":\"%s\",\"type\":\"%s\",\"status\":\"succeeded\","
             "\"method\":\"mariabackup\",\"started_at\":\"%s\",\"ended_at\":\"%s\"}",
             id, set, type, started, started);
    snprintf(key, sizeof key, "base/%s/data", id);
    assert_int_equal(o->put(o, key, &sk, &err), 0);
    assert_int_equal(rv_sink_write(sk, "x", 1, &err), 0);
    assert_int_equal(rv_sink_finish(sk, &err), 0);
    snprintf(key, sizeof key, "base/%s/manifest.json", id);
    assert_int_equal(o->put(o, key, &sk, &err), 0);
    assert_int_equal(rv_sink_write(sk, text, strlen(text), &err), 0);
    assert_int_equal(rv_sink_finish(sk, &err), 0);
}

static bool has(struct objstore *o, const char *id)
{
    struct rv_error err = {0};
    char key[128];
    int64_t size = 0;
    snprintf(key, sizeof key, "base/%s/data", id);
    return o->stat(o, key, &size, &err) == 0;
}

/* Chains go as a whole, the newest full backup's chain stays. */
static void test_retention(void **state)
{
    struct fixture *f = *state;
    struct backup_ctx c;
    struct rv_error err = {0};
    struct objstore *o = NULL, *saved;
    char dir[160];
    size_t deleted = 0;
    SKIP_WITHOUT_MARIADB();
    snprintf(dir, sizeof dir, "%s/ret-store", f->base);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(objstore_local_new(&o, dir, &err), 0);
    /* now = 2026-11-21T00:00:00Z, retention 7 days: cutoff 2026-11-14. */
    int64_t now = 1795219200000LL;
    put_manifest(o, "20261001T000000Z-0000000a", "20261001T000000Z-0000000a", "full",
                 "2026-10-01T00:00:00.000Z");
    put_manifest(o, "20261002T000000Z-0000000b", "20261001T000000Z-0000000a", "incremental",
                 "2026-10-02T00:00:00.000Z");
    put_manifest(o, "20261101T000000Z-0000000c", "20261101T000000Z-0000000c", "full",
                 "2026-11-01T00:00:00.000Z");
    put_manifest(o, "20261118T000000Z-0000000d", "20261101T000000Z-0000000c", "incremental",
                 "2026-11-18T00:00:00.000Z");
    put_manifest(o, "20261105T000000Z-0000000e", "20261105T000000Z-0000000e", "full",
                 "2026-11-05T00:00:00.000Z");
    put_manifest(o, "20261106T000000Z-0000000f", "20261105T000000Z-0000000e", "incremental",
                 "2026-11-06T00:00:00.000Z");
    struct rv_sink *sk = NULL;
    assert_int_equal(o->put(o, "base/20261003T000000Z-00000010/data", &sk, &err), 0);
    assert_int_equal(rv_sink_finish(sk, &err), 0);
    open_ctx(f, &c);
    saved = c.store;
    c.store = o;
    assert_int_equal(backup_mdb_retention(&c, now, &deleted, &err), 0);
    c.store = saved;
    backup_ctx_release(&c);
    assert_false(has(o, "20261001T000000Z-0000000a")); /* chain a: all expired */
    assert_false(has(o, "20261002T000000Z-0000000b"));
    assert_true(has(o, "20261101T000000Z-0000000c")); /* chain c: its incremental is recent */
    assert_true(has(o, "20261118T000000Z-0000000d"));
    assert_true(has(o, "20261105T000000Z-0000000e")); /* the newest full backup's chain */
    assert_true(has(o, "20261106T000000Z-0000000f"));
    assert_false(has(o, "20261003T000000Z-00000010")); /* incomplete */
    assert_int_equal(deleted, 5);
    o->free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_chain),        cmocka_unit_test(test_restore_chain),
        cmocka_unit_test(test_restore_full_only),   cmocka_unit_test(test_restore_point_in_time),
        cmocka_unit_test(test_damaged_incremental), cmocka_unit_test(test_full_dispatch),
        cmocka_unit_test(test_retention),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
