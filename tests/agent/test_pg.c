/* test_pg.c - the PostgreSQL engine adapter against real servers.
 *
 * A primary "node-a" on 127.0.10.1 and a standby "node-b" on 127.0.10.2, each
 * with its own socket directory, under /tmp/reeve-pg-test-XXXXXX. When run
 * as root the servers run as the postgres user. The tests run in order and
 * share the two nodes: clone and replication, lag, parameters, synchronous
 * replication, failover with fencing and rewind, and errors.
 */
#include <errno.h>
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

#include "engine_pg.h"
#include "testutil_pg.h"

#define WAIT_MS 15000

struct fixture {
    char base[64];
    int port;
    struct tu_pg_node a, b, c, d;
};

static int node_init(struct fixture *f, struct tu_pg_node *n, const char *name, const char *addr,
                     const char *sub)
{
    /* A standby whose primary restarted retries after this; the default 5 s
     * would only slow the test down. */
    static const struct pg_param extra[] = {{"wal_retrieve_retry_interval", "200ms"}};
    struct pg_engine_config cfg = tu_pg_node_config(n, f->base, name, addr, sub, f->port);
    cfg.replication_password = "s3cret:with\\odd'chars";
    cfg.extra = extra;
    cfg.n_extra = 1;
    return tu_pg_node_init(n, &cfg);
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    *state = &f;
    if (!tu_have_pg())
        return 0;
    if (tu_tmpdir(f.base, sizeof f.base, "reeve-pg-test", "postgres", 0700) != 0)
        return -1;
    f.port = tu_port(0);
    if (node_init(&f, &f.a, "node-a", "127.0.10.1", "a") != 0 ||
        node_init(&f, &f.b, "node-b", "127.0.10.2", "b") != 0 ||
        node_init(&f, &f.c, "node-c", "127.0.10.3", "c") != 0 ||
        node_init(&f, &f.d, "node-d", "127.0.10.4", "d") != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct tu_pg_node *nodes[] = {&f->a, &f->b, &f->c, &f->d};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
        tu_pg_node_stop(nodes[i]);
    tu_rm_test_dir(f->base);
    return 0;
}

/* Wait (bounded) until q's first value on n equals want. */
static void wait_value(const struct tu_pg_node *n, const char *q, const char *want)
{
    tu_pg_wait_value(n, q, want, WAIT_MS);
}

static struct pg_primary primary_of(const struct tu_pg_node *n, const char *slot)
{
    struct pg_primary p;
    memset(&p, 0, sizeof p);
    snprintf(p.host, sizeof p.host, "%s", n->addr);
    p.port = n->e.port;
    snprintf(p.slot, sizeof p.slot, "%s", slot ? slot : "");
    return p;
}

static void status_of(struct tu_pg_node *n, uint64_t primary_lsn, struct pg_status *st)
{
    struct rv_error err = {0};
    int rc = pg_engine_status(&n->e, primary_lsn, st, &err);
    if (rc != 0)
        fail_msg("status %s: %s", n->name, err.msg);
}

static void test_clone_and_replicate(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct pg_status st;

    int rc = pg_engine_initdb(&f->a.e, &err);
    assert_int_equal(rc, 0);
    status_of(&f->a, 0, &st);
    assert_true(st.running && st.accepting);
    assert_false(st.in_recovery);
    assert_int_equal(st.timeline, 1);

    char v[64];
    assert_true(tu_pg_sql(&f->a, "SELECT current_setting('data_checksums')", v, sizeof v));
    assert_string_equal(v, "on");
    assert_true(tu_pg_sql(&f->a, "SELECT current_setting('wal_log_hints')", v, sizeof v));
    assert_string_equal(v, "on");

    rc = pg_engine_create_replication_slot(&f->a.e, "node_b", &err);
    assert_int_equal(rc, 0);
    rc = pg_engine_create_replication_slot(&f->a.e, "node_b", &err);
    assert_int_equal(rc, RV_EEXISTS);

    struct pg_primary pa = primary_of(&f->a, "node_b");
    rc = pg_engine_clone_from(&f->b.e, &pa, &err);
    if (rc != 0)
        fail_msg("clone: %s", err.msg);
    rc = pg_engine_start(&f->b.e, &err);
    if (rc != 0)
        fail_msg("start b: %s", err.msg);

    tu_pg_sql_ok(&f->a, "CREATE TABLE t (id int primary key, v text)");
    tu_pg_sql_ok(&f->a, "INSERT INTO t VALUES (1, 'from a')");
    wait_value(&f->b, "SELECT v FROM t WHERE id = 1", "from a");

    status_of(&f->b, 0, &st);
    assert_true(st.running && st.accepting && st.in_recovery);
    assert_int_equal(st.timeline, 1);
    assert_true(st.receive_lsn > 0 && st.replay_lsn > 0);
    /* The standby streams through its slot under its node name. */
    wait_value(&f->a,
               "SELECT application_name || ' ' || state FROM pg_stat_replication"
               " WHERE application_name = 'node-b'",
               "node-b streaming");
    wait_value(&f->a, "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'node_b'",
               "true");
    /* A standby cannot be written. */
    assert_false(tu_pg_sql(&f->b, "INSERT INTO t VALUES (2, 'x')", NULL, 0));
}

static void test_lag_reported(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct pg_status sa, sb;

    /* Keep the standby receiving but not replaying, so it lags for sure. */
    tu_pg_sql_ok(&f->b, "SELECT pg_wal_replay_pause()");
    wait_value(&f->b, "SELECT pg_get_wal_replay_pause_state()", "paused");
    tu_pg_sql_ok(&f->a,
                 "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(10, 1000) g");
    status_of(&f->a, 0, &sa);
    assert_true(sa.current_lsn > 0);
    int64_t deadline = tu_now_ms() + WAIT_MS;
    do {
        status_of(&f->b, sa.current_lsn, &sb);
        if (sb.receive_lsn >= sa.current_lsn)
            break;
        tu_sleep_ms(50);
    } while (tu_now_ms() < deadline);
    assert_true(sb.receive_lsn >= sa.current_lsn);
    assert_true(sb.lag_bytes > 0);
    assert_true(sb.lag_bytes == sa.current_lsn - sb.replay_lsn);
    assert_true(sb.streaming);

    tu_pg_sql_ok(&f->b, "SELECT pg_wal_replay_resume()");
    deadline = tu_now_ms() + WAIT_MS;
    do {
        status_of(&f->b, sa.current_lsn, &sb);
        if (sb.lag_bytes == 0)
            break;
        tu_sleep_ms(50);
    } while (tu_now_ms() < deadline);
    assert_int_equal(sb.lag_bytes, 0);
    /* The primary itself reports no lag. */
    status_of(&f->a, sa.current_lsn + 1000, &sa);
    assert_int_equal(sa.lag_bytes, 0);
}

static void test_parameters(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct pg_status st;
    bool restart = true;

    struct pg_param reload_only[] = {{"work_mem", "12MB"}};
    int rc = pg_engine_apply_parameters(&f->a.e, reload_only, 1, &restart, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_false(restart);
    wait_value(&f->a, "SELECT current_setting('work_mem')", "12MB");

    struct pg_param needs_restart[] = {{"shared_buffers", "48MB"}, {"work_mem", "16MB"}};
    rc = pg_engine_apply_parameters(&f->a.e, needs_restart, 2, &restart, &err);
    if (rc != 0)
        fail_msg("apply: %s", err.msg);
    assert_true(restart);
    wait_value(&f->a, "SELECT current_setting('work_mem')", "16MB");
    int64_t deadline = tu_now_ms() + WAIT_MS;
    do {
        status_of(&f->a, 0, &st);
        if (strcmp(st.pending_restart, "shared_buffers") == 0)
            break;
        tu_sleep_ms(50);
    } while (tu_now_ms() < deadline);
    assert_string_equal(st.pending_restart, "shared_buffers");

    /* A restart clears it. */
    rc = pg_engine_stop(&f->a.e, PG_STOP_FAST, &err);
    if (rc == 0)
        rc = pg_engine_start(&f->a.e, &err);
    if (rc != 0)
        fail_msg("restart a: %s", err.msg);
    status_of(&f->a, 0, &st);
    assert_string_equal(st.pending_restart, "");
    char v[64];
    assert_true(tu_pg_sql(&f->a, "SELECT current_setting('shared_buffers')", v, sizeof v));
    assert_string_equal(v, "48MB");

    /* Unknown, managed and malformed parameters change nothing. */
    struct pg_param unknown[] = {{"work_mem", "1MB"}, {"no_such_parameter", "1"}};
    rc = pg_engine_apply_parameters(&f->a.e, unknown, 2, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    assert_non_null(strstr(err.msg, "no_such_parameter"));
    assert_true(tu_pg_sql(&f->a, "SELECT current_setting('work_mem')", v, sizeof v));
    assert_string_equal(v, "16MB");
    struct pg_param managed[] = {{"port", "1"}};
    rc = pg_engine_apply_parameters(&f->a.e, managed, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    struct pg_param injected[] = {{"work_mem = 1; x", "1"}};
    rc = pg_engine_apply_parameters(&f->a.e, injected, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);
    struct pg_param bad_value[] = {{"work_mem", "lots"}};
    rc = pg_engine_apply_parameters(&f->a.e, bad_value, 1, &restart, &err);
    assert_int_equal(rc, RV_EINVAL);

    /* ALTER SYSTEM is local to a node: the standby keeps its own value. */
    assert_true(tu_pg_sql(&f->b, "SELECT current_setting('work_mem')", v, sizeof v));
    assert_string_equal(v, "4MB");
}

static void test_synchronous(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    const char *names[] = {"node-b", "node-c"};

    int rc = pg_engine_set_synchronous(&f->a.e, names, 2, 1, PG_SYNC_FIRST, &err);
    if (rc != 0)
        fail_msg("set_synchronous: %s", err.msg);
    char v[128];
    assert_true(
        tu_pg_sql(&f->a, "SELECT current_setting('synchronous_standby_names')", v, sizeof v));
    assert_string_equal(v, "FIRST 1 (\"node-b\", \"node-c\")");
    wait_value(&f->a,
               "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'node-b'",
               "sync");
    /* A commit is acknowledged once node-b has it. */
    tu_pg_sql_ok(&f->a, "INSERT INTO t VALUES (3, 'sync')");
    wait_value(&f->b, "SELECT v FROM t WHERE id = 3", "sync");

    rc = pg_engine_set_synchronous(&f->a.e, names, 2, 3, PG_SYNC_ANY, &err);
    assert_int_equal(rc, RV_EINVAL);
    const char *bad[] = {"x\", y"};
    rc = pg_engine_set_synchronous(&f->a.e, bad, 1, 1, PG_SYNC_ANY, &err);
    assert_int_equal(rc, RV_EINVAL);

    /* Back to asynchronous, so failover below does not wait for node-b. */
    rc = pg_engine_set_synchronous(&f->a.e, NULL, 0, 0, PG_SYNC_FIRST, &err);
    if (rc != 0)
        fail_msg("set_synchronous off: %s", err.msg);
    wait_value(&f->a,
               "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'node-b'",
               "async");
}

static void test_failover_fence_rewind(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct pg_status st;

    int rc = pg_engine_promote(&f->b.e, &err);
    if (rc != 0)
        fail_msg("promote: %s", err.msg);
    status_of(&f->b, 0, &st);
    assert_false(st.in_recovery);
    assert_int_equal(st.timeline, 2);
    tu_pg_sql_ok(&f->b, "INSERT INTO t VALUES (4, 'from b')");

    /* The old primary has not heard yet and takes a write that the new
     * primary never sees: its history now diverges. */
    tu_pg_sql_ok(&f->a, "INSERT INTO t VALUES (5, 'lost on a')");

    /* A running primary cannot be turned into a standby without fencing. */
    struct pg_primary pb = primary_of(&f->b, "node_a");
    rc = pg_engine_make_standby(&f->a.e, &pb, &err);
    assert_int_equal(rc, RV_ECONFLICT);

    rc = pg_engine_create_replication_slot(&f->b.e, "node_a", &err);
    assert_int_equal(rc, 0);
    rc = pg_engine_fence(&f->a.e, &pb, &err);
    if (rc != 0)
        fail_msg("fence: %s", err.msg);

    /* The fenced node is a standby of node-b: no writes, the diverged row
     * is gone, and new rows from node-b arrive. */
    status_of(&f->a, 0, &st);
    assert_true(st.running && st.in_recovery);
    assert_false(tu_pg_sql(&f->a, "INSERT INTO t VALUES (6, 'x')", NULL, 0));
    tu_pg_sql_ok(&f->b, "INSERT INTO t VALUES (7, 'after fence')");
    wait_value(&f->a, "SELECT v FROM t WHERE id = 7", "after fence");
    wait_value(&f->a, "SELECT count(*)::text FROM t WHERE id IN (4, 5)", "1");
    wait_value(&f->a, "SELECT v FROM t WHERE id = 4", "from b");
    status_of(&f->a, 0, &st);
    assert_int_equal(st.timeline, 2);
    wait_value(&f->b, "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'node_a'",
               "true");
}

static void test_errors(void **state)
{
    TU_SKIP_WITHOUT_PG();
    struct fixture *f = *state;
    struct rv_error err = {0};
    struct pg_primary p;

    assert_int_equal(pg_primary_parse(&p, "127.0.10.2:5432", &err), 0);
    assert_string_equal(p.host, "127.0.10.2");
    assert_int_equal(p.port, 5432);
    assert_int_equal(pg_primary_parse(&p, "127.0.10.2", &err), RV_EINVAL);
    assert_int_equal(pg_primary_parse(&p, "127.0.10.2:0", &err), RV_EINVAL);
    assert_int_equal(pg_primary_parse(&p, "a b:5432", &err), RV_EINVAL);
    assert_int_equal(pg_primary_parse(&p, ":5432", &err), RV_EINVAL);

    uint64_t lsn;
    assert_int_equal(pg_lsn_parse(&lsn, "16/B374D848"), 0);
    assert_true(lsn == ((uint64_t)0x16 << 32 | 0xB374D848u));
    assert_int_equal(pg_lsn_parse(&lsn, "16"), RV_EPARSE);
    assert_int_equal(pg_lsn_parse(&lsn, "16/"), RV_EPARSE);

    /* Cloning into a data directory in use is refused. */
    struct pg_primary pb = primary_of(&f->b, NULL);
    int rc = pg_engine_clone_from(&f->a.e, &pb, &err);
    assert_int_equal(rc, RV_EEXISTS);

    /* A clone from a primary that does not answer is retryable and leaves
     * no data directory behind. */
    struct pg_primary nobody = primary_of(&f->d, NULL);
    rc = pg_engine_clone_from(&f->d.e, &nobody, &err);
    assert_int_equal(rc, RV_EUNAVAIL);
    assert_true(err.retryable);
    assert_int_equal(access(f->d.data, F_OK), -1);

    /* An unrelated cluster cannot be rewound from node-b: the caller must
     * re-clone it. */
    rc = pg_engine_initdb(&f->c.e, &err);
    if (rc != 0)
        fail_msg("initdb c: %s", err.msg);
    rc = pg_engine_rewind(&f->c.e, &pb, &err);
    assert_int_equal(rc, RV_ECONFLICT);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "re-clone"));

    /* Fencing without a known primary leaves the node down, and a start
     * afterwards brings it back as a standby, not a primary. */
    rc = pg_engine_fence(&f->c.e, NULL, &err);
    assert_int_equal(rc, 0);
    struct pg_status st;
    status_of(&f->c, 0, &st);
    assert_false(st.running);
    rc = pg_engine_start(&f->c.e, &err);
    if (rc != 0)
        fail_msg("start c: %s", err.msg);
    status_of(&f->c, 0, &st);
    assert_true(st.running && st.in_recovery);

    /* A primary that does not answer is a retryable error. */
    rc = pg_engine_stop(&f->c.e, PG_STOP_IMMEDIATE, &err);
    assert_int_equal(rc, 0);
    struct pg_primary nowhere = primary_of(&f->c, NULL);
    rc = pg_engine_rewind(&f->c.e, &nowhere, &err);
    assert_int_equal(rc, RV_EUNAVAIL);
    assert_true(err.retryable);
    /* The password never shows up in a message. */
    assert_null(strstr(err.msg, "s3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clone_and_replicate),
        cmocka_unit_test(test_lag_reported),
        cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_synchronous),
        cmocka_unit_test(test_failover_fence_rewind),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
