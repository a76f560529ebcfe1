/* test_mariadb.c - the MariaDB engine adapter against real servers.
 *
 * A primary "node-a" on 127.0.60.1 and a replica "node-b" on 127.0.60.2
 * (node-c on 127.0.60.3 for an unrelated server, node-d on 127.0.60.4 that
 * never comes up), each with its own socket directory, under
 * /tmp/reeve-mdb-test-XXXXXX. When run as root the servers run as the mysql
 * user. The tests run in order and share the nodes: install, clone and
 * replication, status and lag, parameters, semi-synchronous replication,
 * users, failover (kill -9, promote, fence and rejoin), divergence, errors.
 * Timings of install, clone and promote are printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_mariadb.h"
#include "testutil.h"

#define SERVER "/usr/sbin/mariadbd"
#define WAIT_MS 15000

struct node {
    struct mdb_engine e;
    char data[256];
    char sock[256];
    char log[256];
    char addr[32];
    const char *name;
    bool inited;
};

struct fixture {
    char base[64];
    int port;
    struct node a, b, c, d;
};

static bool have_mariadb(void)
{
    return access(SERVER, X_OK) == 0 && access("/usr/bin/mariadb-backup", X_OK) == 0 &&
           access("/usr/bin/mbstream", X_OK) == 0;
}

static int node_init(struct fixture *f, struct node *n, const char *name, const char *addr,
                     const char *sub, uint32_t server_id)
{
    struct rv_error err = {0};
    n->name = name;
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    snprintf(n->data, sizeof n->data, "%s/%s", f->base, sub);
    snprintf(n->sock, sizeof n->sock, "%s/%s-sock", f->base, sub);
    snprintf(n->log, sizeof n->log, "%s/%s.err", f->base, sub);
    /* Small buffers: four servers start on a shared test machine. */
    static const struct mdb_param extra[] = {{"innodb_buffer_pool_size", "32M"},
                                             {"performance_schema", "OFF"}};
    struct mdb_engine_config cfg = {
        .data_dir = n->data,
        .socket_dir = n->sock,
        .log_file = n->log,
        .listen_address = n->addr,
        .port = f->port,
        .server_id = server_id,
        .node_name = name,
        .replication_user = "replicator",
        .replication_password = "s3cret:with\\odd'chars",
        .os_user = tu_os_user("mysql"),
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

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    *state = &f;
    if (!have_mariadb())
        return 0;
    if (tu_tmpdir(f.base, sizeof f.base, "reeve-mdb-test", "mysql", 0700) != 0)
        return -1;
    f.port = tu_port(0);
    /* node-b gets its server id from its name. */
    if (node_init(&f, &f.a, "node-a", "127.0.60.1", "a", 1) != 0 ||
        node_init(&f, &f.b, "node-b", "127.0.60.2", "b", 0) != 0 ||
        node_init(&f, &f.c, "node-c", "127.0.60.3", "c", 3) != 0 ||
        node_init(&f, &f.d, "node-d", "127.0.60.4", "d", 4) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct node *nodes[] = {&f->a, &f->b, &f->c, &f->d};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        if (!nodes[i]->inited)
            continue;
        struct rv_error err = {0};
        if (mdb_engine_stop(&nodes[i]->e, MDB_STOP_IMMEDIATE, &err) != 0)
            fprintf(stderr, "teardown %s: %s\n", nodes[i]->name, err.msg);
        mdb_engine_release(&nodes[i]->e);
    }
    tu_rm_test_dir(f->base);
    mysql_library_end();
    return 0;
}

#define SKIP_WITHOUT_MARIADB()                                                                     \
    do {                                                                                           \
        if (!have_mariadb()) {                                                                     \
            fprintf(stderr, "skipped: mariadb-server and mariadb-backup not installed\n");         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The local admin over the socket; other users over TCP on the node's
 * address, as clients would. */
static MYSQL *connect_node(const struct node *n, const char *user, const char *password)
{
    char sock[300];
    unsigned int t = 5;
    snprintf(sock, sizeof sock, "%s/mariadbd.sock", n->sock);
    MYSQL *c = mysql_init(NULL);
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &t);
    MYSQL *ok =
        user ? mysql_real_connect(c, n->addr, user, password, NULL, (unsigned)n->e.port, NULL, 0)
             : mysql_real_connect(c, "localhost", n->e.admin_user, NULL, NULL, 0, sock, 0);
    if (!ok) {
        fprintf(stderr, "connect %s: %s\n", n->name, mysql_error(c));
        mysql_close(c);
        return NULL;
    }
    return c;
}

/* Run q on n as the local admin; the first value of the first row (or ""
 * for none) goes to out. Returns false on any error. */
static bool sql_as(const struct node *n, const char *user, const char *password, const char *q,
                   char *out, size_t cap)
{
    MYSQL *c = connect_node(n, user, password);
    bool ok = false;
    if (!c)
        return false;
    if (mysql_query(c, q) == 0) {
        ok = true;
        MYSQL_RES *r = mysql_store_result(c);
        MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
        if (out)
            snprintf(out, cap, "%s", row && row[0] ? row[0] : "");
        if (r)
            mysql_free_result(r);
    } else {
        fprintf(stderr, "sql %s: %s\n", n->name, mysql_error(c));
    }
    mysql_close(c);
    return ok;
}

static bool sql(const struct node *n, const char *q, char *out, size_t cap)
{
    return sql_as(n, NULL, NULL, q, out, cap);
}

static void sql_ok(const struct node *n, const char *q)
{
    if (!sql(n, q, NULL, 0))
        fail_msg("query on %s failed: %s", n->name, q);
}

static bool node_query(const void *n, const char *q, char *out, size_t cap)
{
    return sql(n, q, out, cap);
}

/* Wait (bounded) until q's first value on n equals want. */
static void wait_value(const struct node *n, const char *q, const char *want)
{
    tu_wait_value(node_query, n, n->name, q, want, WAIT_MS);
}

static struct mdb_primary primary_of(const struct node *n)
{
    struct mdb_primary p;
    memset(&p, 0, sizeof p);
    snprintf(p.host, sizeof p.host, "%s", n->addr);
    p.port = n->e.port;
    return p;
}

static void status_of(struct node *n, const char *primary_gtid, struct mdb_status *st)
{
    struct rv_error err = {0};
    int rc = mdb_engine_status(&n->e, primary_gtid, st, &err);
    if (rc != 0)
        fail_msg("status %s: %s", n->name, err.msg);
}

/* Wait (bounded) until n has applied everything from's gtid_current_pos
 * holds, by status: lag 0. */
static void wait_caught_up(struct node *n, struct node *from)
{
    struct mdb_status sp, st;
    status_of(from, NULL, &sp);
    int64_t deadline = tu_now_ms() + WAIT_MS;
    do {
        status_of(n, sp.gtid_current_pos, &st);
        if (st.lag_trx == 0)
            return;
        tu_sleep_ms(50);
    } while (tu_now_ms() < deadline);
    fail_msg("%s is %llu transactions behind %s ('%s' vs '%s')", n->name,
             (unsigned long long)st.lag_trx, from->name, st.gtid_current_pos, sp.gtid_current_pos);
}

static void test_install_clone_replicate(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct mdb_status st;

    int64_t t0 = tu_now_ms();
    int rc = mdb_engine_install(&f->a.e, &err);
    if (rc != 0)
        fail_msg("install: %s", err.msg);
    fprintf(stderr, "timing: install + start %lld ms\n", (long long)(tu_now_ms() - t0));
    status_of(&f->a, NULL, &st);
    assert_true(st.running && st.accepting);
    assert_false(st.read_only);
    assert_false(st.is_replica);

    char v[256];
    assert_true(sql(&f->a, "SELECT @@server_id", v, sizeof v));
    assert_string_equal(v, "1");
    assert_true(sql(&f->a, "SELECT @@gtid_strict_mode", v, sizeof v));
    assert_string_equal(v, "1");
    assert_true(sql(&f->a, "SELECT @@log_bin", v, sizeof v));
    assert_string_equal(v, "1");
    assert_true(sql(&f->a, "SELECT @@bind_address", v, sizeof v));
    assert_string_equal(v, "127.0.60.1");
    /* The replication user may connect from loopback only. */
    assert_true(sql(&f->a, "SELECT host FROM mysql.user WHERE user = 'replicator'", v, sizeof v));
    assert_string_equal(v, "127.0.0.0/255.0.0.0");

    sql_ok(&f->a, "CREATE DATABASE app");
    sql_ok(&f->a, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB");
    sql_ok(&f->a, "INSERT INTO app.t VALUES (1, 'before clone')");

    struct mdb_primary pa = primary_of(&f->a);
    t0 = tu_now_ms();
    rc = mdb_engine_clone_local(&f->b.e, &f->a.e, &pa, &err);
    if (rc != 0)
        fail_msg("clone: %s", err.msg);
    fprintf(stderr, "timing: clone (backup | mbstream, prepare, start, replicate) %lld ms\n",
            (long long)(tu_now_ms() - t0));

    /* The copy has what was there; what comes later streams in. */
    assert_true(sql(&f->b, "SELECT v FROM app.t WHERE id = 1", v, sizeof v));
    assert_string_equal(v, "before clone");
    sql_ok(&f->a, "INSERT INTO app.t VALUES (2, 'from a')");
    wait_value(&f->b, "SELECT v FROM app.t WHERE id = 2", "from a");

    status_of(&f->b, NULL, &st);
    assert_true(st.running && st.accepting && st.read_only && st.is_replica);
    assert_true(st.io_running && st.sql_running);
    assert_string_equal(st.master_host, f->a.addr);
    assert_int_equal(st.master_port, f->a.e.port);
    assert_int_equal(st.last_errno, 0);
    assert_false(st.diverged);
    /* The primary lists node-b by name. */
    struct mdb_replica reps[4];
    size_t n_reps = 0;
    rc = mdb_engine_replicas(&f->a.e, reps, 4, &n_reps, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(n_reps, 1);
    assert_string_equal(reps[0].name, "node-b");
    assert_int_equal(reps[0].port, f->b.e.port);
    assert_int_equal(reps[0].server_id, f->b.e.server_id);
    /* node-b's server id was derived from its name, and differs. */
    assert_true(sql(&f->b, "SELECT @@server_id", v, sizeof v));
    assert_string_not_equal(v, "1");
    assert_string_not_equal(v, "0");
    /* A replica refuses writes from ordinary users; make a user to try. */
    rc = mdb_engine_ensure_user(&f->a.e, "app", "app-pw", MDB_ROLE_READWRITE, "app", &err);
    if (rc != 0)
        fail_msg("ensure_user: %s", err.msg);
    wait_value(&f->b, "SELECT COUNT(*) FROM mysql.user WHERE user = 'app'", "1");
    assert_true(sql_as(&f->b, "app", "app-pw", "SELECT COUNT(*) FROM app.t", v, sizeof v));
    assert_false(sql_as(&f->b, "app", "app-pw", "INSERT INTO app.t VALUES (3, 'x')", NULL, 0));
    assert_true(
        sql_as(&f->a, "app", "app-pw", "INSERT INTO app.t VALUES (3, 'app on a')", NULL, 0));
    wait_value(&f->b, "SELECT v FROM app.t WHERE id = 3", "app on a");
}

static void test_status_and_lag(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct mdb_status sa, sb;

    wait_caught_up(&f->b, &f->a);
    status_of(&f->a, NULL, &sa);
    status_of(&f->b, sa.gtid_current_pos, &sb);
    assert_int_equal(sb.lag_trx, 0);
    assert_true(sa.gtid_current_pos[0] != '\0');
    assert_string_equal(sb.gtid_current_pos, sa.gtid_current_pos);
    assert_string_equal(sb.gtid_slave_pos, sa.gtid_current_pos);
    assert_string_equal(sb.gtid_io_pos, sa.gtid_current_pos);
    assert_int_equal(sb.seconds_behind, 0);
    /* The primary has no replication status of its own. */
    assert_false(sa.is_replica);
    assert_int_equal(sa.seconds_behind, -1);

    /* Stop applying on the replica: it falls behind by exactly the
     * transactions written meanwhile. */
    sql_ok(&f->b, "STOP SLAVE SQL_THREAD");
    sql_ok(&f->a, "INSERT INTO app.t VALUES (10, 'x')");
    sql_ok(&f->a, "INSERT INTO app.t VALUES (11, 'x')");
    sql_ok(&f->a, "INSERT INTO app.t VALUES (12, 'x')");
    status_of(&f->a, NULL, &sa);
    status_of(&f->b, sa.gtid_current_pos, &sb);
    assert_int_equal(sb.lag_trx, 3);
    assert_false(sb.sql_running);
    sql_ok(&f->b, "START SLAVE SQL_THREAD");
    wait_caught_up(&f->b, &f->a);

    /* GTID parsing and lag arithmetic. */
    struct mdb_gtid_pos p, r;
    assert_int_equal(mdb_gtid_parse(&p, "0-1-42,1-2-7"), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.g[1].domain, 1);
    assert_int_equal(p.g[1].server_id, 2);
    assert_int_equal(p.g[1].seq, 7);
    assert_int_equal(mdb_gtid_parse(&r, "0-1-40"), 0);
    assert_int_equal(mdb_gtid_lag(&p, &r), 2 + 7);
    assert_int_equal(mdb_gtid_lag(&r, &p), 0);
    assert_int_equal(mdb_gtid_parse(&r, ""), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(mdb_gtid_parse(&r, "0-1"), RV_EPARSE);
    assert_int_equal(mdb_gtid_parse(&r, "0-1-2,"), RV_EPARSE);
    assert_int_equal(mdb_gtid_parse(&r, "0-1-2;DROP"), RV_EPARSE);
}

static void test_parameters(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct mdb_status st;
    bool restart = true;
    char v[256];

    /* Dynamic: live at once, no restart. */
    struct mdb_param dyn[] = {{"max_connections", "222"},
                              {"long_query_time", "2.5"},
                              {"sql_mode", "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"},
                              {"max_allowed_packet", "32M"}};
    int rc = mdb_engine_apply_parameters(&f->a.e, dyn, 4, &restart, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_false(restart);
    assert_true(sql(&f->a, "SELECT @@GLOBAL.max_connections", v, sizeof v));
    assert_string_equal(v, "222");
    assert_true(sql(&f->a, "SELECT @@GLOBAL.max_allowed_packet", v, sizeof v));
    assert_string_equal(v, "33554432");
    assert_true(sql(&f->a, "SELECT @@GLOBAL.sql_mode", v, sizeof v));
    assert_string_equal(v, "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION");

    /* Static: flagged, pending until a restart, which applies it. */
    struct mdb_param stat[] = {{"innodb_log_buffer_size", "8M"}, {"max_connections", "223"}};
    rc = mdb_engine_apply_parameters(&f->a.e, stat, 2, &restart, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_true(restart);
    assert_true(sql(&f->a, "SELECT @@GLOBAL.max_connections", v, sizeof v));
    assert_string_equal(v, "223");
    status_of(&f->a, NULL, &st);
    assert_string_equal(st.pending_restart, "innodb_log_buffer_size");
    rc = mdb_engine_stop(&f->a.e, MDB_STOP_FAST, &err);
    if (rc == 0)
        rc = mdb_engine_start(&f->a.e, &err);
    if (rc != 0)
        fail_msg("restart a: %s", err.msg);
    status_of(&f->a, NULL, &st);
    assert_string_equal(st.pending_restart, "");
    assert_false(st.read_only); /* still the primary */
    assert_true(sql(&f->a, "SELECT @@GLOBAL.innodb_log_buffer_size", v, sizeof v));
    assert_string_equal(v, "8388608");
    /* Dynamic ones survive the restart too. */
    assert_true(sql(&f->a, "SELECT @@GLOBAL.max_connections", v, sizeof v));
    assert_string_equal(v, "223");
    /* The same static value again needs no restart. */
    rc = mdb_engine_apply_parameters(&f->a.e, stat, 1, &restart, &err);
    assert_int_equal(rc, 0);
    assert_false(restart);

    /* Unknown, managed, session-only and malformed ones change nothing. */
    struct mdb_param unknown[] = {{"max_connections", "100"}, {"no_such_variable", "1"}};
    rc = mdb_engine_apply_parameters(&f->a.e, unknown, 2, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    assert_string_equal(err.msg, "engine_mariadb: MariaDB has no variable 'no_such_variable'; "
                                 "check its spelling (names as SHOW VARIABLES lists them)");
    assert_true(sql(&f->a, "SELECT @@GLOBAL.max_connections", v, sizeof v));
    assert_string_equal(v, "223");
    struct mdb_param managed[] = {{"read_only", "OFF"}};
    rc = mdb_engine_apply_parameters(&f->a.e, managed, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    assert_non_null(strstr(err.msg, "managed by reeve"));
    struct mdb_param session[] = {{"timestamp", "1"}};
    rc = mdb_engine_apply_parameters(&f->a.e, session, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    struct mdb_param injected[] = {{"max_connections=1; x", "1"}};
    rc = mdb_engine_apply_parameters(&f->a.e, injected, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    struct mdb_param quoted[] = {{"sql_mode", "ANSI\"; x"}};
    rc = mdb_engine_apply_parameters(&f->a.e, quoted, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    struct mdb_param not_number[] = {{"max_connections", "lots"}};
    rc = mdb_engine_apply_parameters(&f->a.e, not_number, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    assert_non_null(strstr(err.msg, "not a number"));
    struct mdb_param rejected[] = {{"sql_mode", "NO_SUCH_MODE"}};
    rc = mdb_engine_apply_parameters(&f->a.e, rejected, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    assert_true(sql(&f->a, "SELECT @@GLOBAL.sql_mode", v, sizeof v));
    assert_string_equal(v, "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION");

    /* Parameters are per node: the replica keeps its own. */
    assert_true(sql(&f->b, "SELECT @@GLOBAL.max_connections", v, sizeof v));
    assert_string_equal(v, "151");
    /* And the replica reconnected after the primary's restart. */
    sql_ok(&f->a, "INSERT INTO app.t VALUES (20, 'after restart')");
    wait_value(&f->b, "SELECT v FROM app.t WHERE id = 20", "after restart");
}

static void test_semi_sync(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct mdb_status st;

    int rc = mdb_engine_set_semi_sync(&f->a.e, true, 0, &err);
    if (rc != 0)
        fail_msg("semi-sync: %s", err.msg);
    wait_value(&f->a, "SELECT @@rpl_semi_sync_master_wait_point", "AFTER_SYNC");
    /* node-b acknowledges without a reconnect: every node runs with
     * rpl_semi_sync_slave_enabled. */
    wait_value(&f->a,
               "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
               " WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
               "1");
    sql_ok(&f->a, "INSERT INTO app.t VALUES (30, 'semi-sync')");
    status_of(&f->a, NULL, &st);
    assert_true(st.semi_sync_primary);
    assert_int_equal(st.semi_sync_replicas, 1);
    wait_value(&f->a,
               "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
               " WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_YES_TX'",
               "1");
    status_of(&f->b, NULL, &st);
    assert_true(st.semi_sync_replica);

    rc = mdb_engine_set_semi_sync(&f->a.e, true, 8u * 24u * 3600u * 1000u, &err);
    assert_int_equal(rc, RV_EINVAL);
    /* Back to asynchronous, so the failover below does not wait. */
    rc = mdb_engine_set_semi_sync(&f->a.e, false, 0, &err);
    if (rc != 0)
        fail_msg("semi-sync off: %s", err.msg);
    status_of(&f->a, NULL, &st);
    assert_false(st.semi_sync_primary);
}

/* Whether any binary log file of n holds needle. */
static bool binlog_has(const struct node *n, const char *needle)
{
    char path[300];
    bool found = false;
    for (int i = 1; i < 100 && !found; i++) {
        snprintf(path, sizeof path, "%s/binlog.%06d", n->data, i);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            continue;
        static char data[4 << 20];
        size_t len = fread(data, 1, sizeof data, fp);
        fclose(fp);
        found = memmem(data, len, needle, strlen(needle)) != NULL;
    }
    return found;
}

static void test_users(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    char v[64];

    int rc = mdb_engine_ensure_user(&f->a.e, "reader", "r-pw", MDB_ROLE_READONLY, "app", &err);
    if (rc != 0)
        fail_msg("ensure_user: %s", err.msg);
    /* Over TCP on the primary's address, as a client would. */
    assert_true(sql_as(&f->a, "reader", "r-pw", "SELECT COUNT(*) > 0 FROM app.t", v, sizeof v));
    assert_false(sql_as(&f->a, "reader", "r-pw", "INSERT INTO app.t VALUES (40, 'x')", NULL, 0));
    assert_true(sql_as(&f->a, "app", "app-pw", "INSERT INTO app.t VALUES (41, 'app')", NULL, 0));
    /* No access to the grant tables. */
    assert_false(sql_as(&f->a, "app", "app-pw", "SELECT COUNT(*) FROM mysql.user", NULL, 0));
    /* The password changes when ensured again. */
    rc = mdb_engine_ensure_user(&f->a.e, "reader", "r-pw2", MDB_ROLE_READONLY, "app", &err);
    assert_int_equal(rc, 0);
    assert_false(sql_as(&f->a, "reader", "r-pw", "SELECT 1", NULL, 0));
    assert_true(sql_as(&f->a, "reader", "r-pw2", "SELECT 1", NULL, 0));
    /* The binary log holds no password in the clear. */
    assert_false(binlog_has(&f->a, "r-pw2"));
    assert_false(binlog_has(&f->a, "app-pw"));
    assert_false(binlog_has(&f->a, "s3cret"));
    /* Users are replicated, and ordinary users cannot write the replica. */
    wait_value(&f->b, "SELECT COUNT(*) FROM mysql.user WHERE user = 'reader'", "1");
    wait_value(&f->b, "SELECT v FROM app.t WHERE id = 41", "app");
    assert_false(sql_as(&f->b, "app", "app-pw", "INSERT INTO app.t VALUES (42, 'x')", NULL, 0));
    /* The replica refuses to create users itself. */
    rc = mdb_engine_ensure_user(&f->b.e, "other", "pw", MDB_ROLE_READONLY, "app", &err);
    assert_int_equal(rc, RV_ECONFLICT);
    rc = mdb_engine_ensure_user(&f->a.e, "root", "pw", MDB_ROLE_READONLY, "app", &err);
    assert_int_equal(rc, RV_EINVAL);
    rc = mdb_engine_ensure_user(&f->a.e, "x", "pw", MDB_ROLE_READWRITE, "mysql", &err);
    assert_int_equal(rc, RV_EINVAL);
    rc = mdb_engine_ensure_user(&f->a.e, "x'y", "pw", MDB_ROLE_READWRITE, "app", &err);
    assert_int_equal(rc, RV_EINVAL);
}

static void kill_server(struct node *n)
{
    struct mdb_status st;
    char pidpath[300], line[32] = "";
    snprintf(pidpath, sizeof pidpath, "%s/mariadbd.pid", n->data);
    FILE *pf = fopen(pidpath, "r");
    assert_non_null(pf);
    assert_non_null(fgets(line, sizeof line, pf));
    fclose(pf);
    assert_int_equal(kill((pid_t)atoi(line), SIGKILL), 0);
    int64_t deadline = tu_now_ms() + WAIT_MS;
    do {
        status_of(n, NULL, &st);
        if (!st.running)
            return;
        tu_sleep_ms(20);
    } while (tu_now_ms() < deadline);
    fail_msg("%s still running after SIGKILL", n->name);
}

static void test_failover_fence_rejoin(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct mdb_status st;
    char v[64];

    sql_ok(&f->a, "INSERT INTO app.t VALUES (50, 'last from a')");
    wait_caught_up(&f->b, &f->a);

    /* The primary dies hard. */
    kill_server(&f->a);

    int64_t t0 = tu_now_ms();
    int rc = mdb_engine_promote(&f->b.e, &err);
    if (rc != 0)
        fail_msg("promote: %s", err.msg);
    fprintf(stderr, "timing: promote %lld ms\n", (long long)(tu_now_ms() - t0));
    status_of(&f->b, NULL, &st);
    assert_false(st.read_only);
    assert_false(st.is_replica);
    assert_true(sql(&f->b, "SELECT v FROM app.t WHERE id = 50", v, sizeof v));
    assert_string_equal(v, "last from a");
    assert_true(sql_as(&f->b, "app", "app-pw", "INSERT INTO app.t VALUES (51, 'from b')", NULL, 0));
    /* Promoting again is harmless. */
    rc = mdb_engine_promote(&f->b.e, &err);
    assert_int_equal(rc, 0);

    /* A running writable server is not turned into a replica silently. */
    struct mdb_primary pb = primary_of(&f->b);
    rc = mdb_engine_start(&f->a.e, &err);
    if (rc != 0)
        fail_msg("restart a: %s", err.msg);
    rc = mdb_engine_make_replica(&f->a.e, &pb, &err);
    assert_int_equal(rc, RV_ECONFLICT);
    assert_non_null(strstr(err.msg, "fence it"));

    /* Fence the old primary: down, then back read-only as a replica of
     * node-b, catching up by GTID. */
    rc = mdb_engine_fence(&f->a.e, &pb, &err);
    if (rc != 0)
        fail_msg("fence: %s", err.msg);
    status_of(&f->a, NULL, &st);
    assert_true(st.running && st.read_only && st.is_replica);
    assert_string_equal(st.master_host, f->b.addr);
    assert_false(sql_as(&f->a, "app", "app-pw", "INSERT INTO app.t VALUES (52, 'x')", NULL, 0));
    wait_value(&f->a, "SELECT v FROM app.t WHERE id = 51", "from b");
    sql_ok(&f->b, "INSERT INTO app.t VALUES (53, 'after fence')");
    wait_value(&f->a, "SELECT v FROM app.t WHERE id = 53", "after fence");
    wait_caught_up(&f->a, &f->b);

    /* A restart of the fenced node keeps it read-only and replicating,
     * also with a fresh engine struct (an agent restart). */
    rc = mdb_engine_stop(&f->a.e, MDB_STOP_FAST, &err);
    assert_int_equal(rc, 0);
    mdb_engine_release(&f->a.e);
    f->a.inited = false;
    assert_int_equal(node_init(f, &f->a, "node-a", "127.0.60.1", "a", 1), 0);
    assert_true(f->a.e.read_only);
    rc = mdb_engine_start(&f->a.e, &err);
    assert_int_equal(rc, 0);
    status_of(&f->a, NULL, &st);
    assert_true(st.read_only && st.is_replica);
    sql_ok(&f->b, "INSERT INTO app.t VALUES (54, 'after restart')");
    wait_value(&f->a, "SELECT v FROM app.t WHERE id = 54", "after restart");
}

/* The other way round, with a write the replica never received: node-b
 * (primary) commits a row node-a does not get, dies, node-a is promoted.
 * node-b's history now holds a transaction node-a never had, so fencing
 * it under node-a is refused as diverged, and a re-clone brings it back. */
static void test_lost_write_diverges(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct mdb_status st;
    char v[64];

    wait_caught_up(&f->a, &f->b);
    sql_ok(&f->a, "STOP SLAVE IO_THREAD");
    sql_ok(&f->b, "INSERT INTO app.t VALUES (70, 'lost on b')");
    kill_server(&f->b);
    int rc = mdb_engine_promote(&f->a.e, &err);
    if (rc != 0)
        fail_msg("promote a: %s", err.msg);
    sql_ok(&f->a, "INSERT INTO app.t VALUES (71, 'from a again')");

    struct mdb_primary pa = primary_of(&f->a);
    rc = mdb_engine_fence(&f->b.e, &pa, &err);
    assert_int_equal(rc, RV_ECONFLICT);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "diverged"));
    assert_non_null(strstr(err.msg, "re-clone"));
    fprintf(stderr, "diverged: %s\n", err.msg);
    /* Fenced all the same: read-only, not replicating. */
    status_of(&f->b, NULL, &st);
    assert_true(st.running && st.read_only && st.diverged);
    assert_false(st.io_running);
    assert_false(sql_as(&f->b, "app", "app-pw", "INSERT INTO app.t VALUES (72, 'x')", NULL, 0));

    rc = mdb_engine_stop(&f->b.e, MDB_STOP_FAST, &err);
    assert_int_equal(rc, 0);
    tu_rm_tree(f->b.data);
    rc = mdb_engine_clone_local(&f->b.e, &f->a.e, &pa, &err);
    if (rc != 0)
        fail_msg("re-clone b: %s", err.msg);
    wait_caught_up(&f->b, &f->a);
    assert_true(sql(&f->b, "SELECT COUNT(*) FROM app.t WHERE id = 70", v, sizeof v));
    assert_string_equal(v, "0");
    assert_true(sql(&f->b, "SELECT v FROM app.t WHERE id = 71", v, sizeof v));
    assert_string_equal(v, "from a again");
}

static void test_divergence(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct mdb_status st;

    /* node-c has a history of its own (server id 3, domain 0): node-a
     * cannot serve it, and the adapter says so instead of merging. */
    int rc = mdb_engine_install(&f->c.e, &err);
    if (rc != 0)
        fail_msg("install c: %s", err.msg);
    sql_ok(&f->c, "CREATE DATABASE other");
    rc = mdb_engine_fence(&f->c.e, NULL, &err);
    assert_int_equal(rc, 0);
    status_of(&f->c, NULL, &st);
    assert_false(st.running);
    struct mdb_primary pb = primary_of(&f->a);
    rc = mdb_engine_make_replica(&f->c.e, &pb, &err);
    assert_int_equal(rc, RV_ECONFLICT);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "re-clone"));
    status_of(&f->c, NULL, &st);
    assert_true(st.running && st.read_only);
    assert_true(st.diverged);
    assert_int_equal(st.last_errno, 1236);
    /* The cure: wipe and clone again. */
    rc = mdb_engine_stop(&f->c.e, MDB_STOP_FAST, &err);
    assert_int_equal(rc, 0);
    tu_rm_tree(f->c.data);
    rc = mdb_engine_clone_local(&f->c.e, &f->a.e, &pb, &err);
    if (rc != 0)
        fail_msg("re-clone c: %s", err.msg);
    sql_ok(&f->a, "INSERT INTO app.t VALUES (60, 'to c')");
    wait_value(&f->c, "SELECT v FROM app.t WHERE id = 60", "to c");
    status_of(&f->c, NULL, &st);
    assert_false(st.diverged);
}

struct stream_job {
    struct mdb_engine *e;
    int fd;
    int rc;
    struct rv_error err;
};

static void *stream_backup(void *arg)
{
    struct stream_job *j = arg;
    j->rc = mdb_engine_backup_stream(j->e, j->fd, &j->err);
    close(j->fd);
    return NULL;
}

static void test_errors(void **state)
{
    SKIP_WITHOUT_MARIADB();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct mdb_primary p;

    assert_int_equal(mdb_primary_parse(&p, "127.0.60.2:3306", &err), 0);
    assert_string_equal(p.host, "127.0.60.2");
    assert_int_equal(p.port, 3306);
    assert_int_equal(mdb_primary_parse(&p, "127.0.60.2", &err), RV_EINVAL);
    assert_int_equal(mdb_primary_parse(&p, "127.0.60.2:0", &err), RV_EINVAL);
    assert_int_equal(mdb_primary_parse(&p, "a'b:3306", &err), RV_EINVAL);

    /* Cloning into a data directory in use is refused. */
    struct mdb_primary pb = primary_of(&f->a);
    int rc = mdb_engine_clone_local(&f->b.e, &f->a.e, &pb, &err);
    assert_int_equal(rc, RV_EEXISTS);
    /* Installing over one too. */
    rc = mdb_engine_install(&f->b.e, &err);
    assert_int_equal(rc, RV_EEXISTS);

    /* A clone from a stream that is not a backup fails and leaves no data
     * directory behind. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "garbage", 7), 7);
    close(fds[1]);
    rc = mdb_engine_clone_from(&f->d.e, &pb, fds[0], &err);
    close(fds[0]);
    assert_true(rc != 0);
    fprintf(stderr, "clone from garbage: %s\n", err.msg);
    assert_int_equal(access(f->d.data, F_OK), -1);
    /* And from a source that is not running, retryably. */
    rc = mdb_engine_clone_local(&f->d.e, &f->d.e, &pb, &err);
    assert_int_equal(rc, RV_EUNAVAIL);
    assert_true(err.retryable);
    assert_int_equal(access(f->d.data, F_OK), -1);

    /* Status of a node that never ran. */
    struct mdb_status st;
    status_of(&f->d, NULL, &st);
    assert_false(st.running);
    assert_false(st.accepting);

    /* Cloning across nodes: the primary's agent streams a backup, the new
     * replica's agent reads it (here through a pipe). */
    struct stream_job job = {.e = &f->a.e, .rc = -1};
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    job.fd = fds[1];
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stream_backup, &job), 0);
    rc = mdb_engine_clone_from(&f->d.e, &pb, fds[0], &err);
    pthread_join(th, NULL);
    close(fds[0]);
    if (rc != 0 || job.rc != 0)
        fail_msg("clone_from a stream: %s / %s", err.msg, job.err.msg);
    sql_ok(&f->a, "INSERT INTO app.t VALUES (80, 'to d')");
    wait_value(&f->d, "SELECT v FROM app.t WHERE id = 80", "to d");

    /* A primary that does not answer is not an error for make_replica: the
     * replica keeps connecting, and its status says so. */
    struct mdb_primary nowhere = {.host = "127.0.60.5", .port = f->port};
    rc = mdb_engine_make_replica(&f->d.e, &nowhere, &err);
    if (rc != 0)
        fail_msg("make_replica to nowhere: %s", err.msg);
    status_of(&f->d, NULL, &st);
    assert_true(st.is_replica && st.read_only);
    assert_false(st.io_running);
    assert_false(st.diverged);
    assert_string_equal(st.master_host, "127.0.60.5");

    /* Bad configuration is refused with a plain message. */
    struct mdb_engine e;
    struct mdb_engine_config cfg = {.data_dir = "relative",
                                    .socket_dir = "/tmp/x",
                                    .listen_address = "127.0.60.9",
                                    .port = 3306,
                                    .node_name = "n",
                                    .replication_user = "r",
                                    .replication_password = "p"};
    assert_int_equal(mdb_engine_init(&e, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "must be absolute"));
    cfg.data_dir = "/tmp/x/data";
    cfg.allowed_cidr = "10.0.0.1/8";
    assert_int_equal(mdb_engine_init(&e, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "host bits"));
    /* The password never shows up in a message. */
    assert_null(strstr(err.msg, "s3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_clone_replicate),
        cmocka_unit_test(test_status_and_lag),
        cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_semi_sync),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_failover_fence_rejoin),
        cmocka_unit_test(test_lost_write_diverges),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
