/* test_engine.c - the autopilot's engine interface (agent/engine.h) and the
 * engine part of the agent configuration, without servers: engine types,
 * positions as published for each engine, and what a MariaDB configuration
 * accepts and refuses. The servers themselves are exercised by test_agent
 * (PostgreSQL) and tests/integration/t0610-apply-mariadb.sh (MariaDB). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "diag.h"
#include "engine.h"

static char dir[] = "/tmp/reeve-engine-test-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    char path[128];
    (void)state;
    snprintf(path, sizeof(path), "%s/agent.yaml", dir);
    unlink(path);
    return rmdir(dir);
}

/* Write an agent configuration with the given engine section and extra
 * top-level lines; load it; return the status (diagnostics in *msg). */
static int load(struct agent_config *c, const char *engine, const char *extra, char *msg,
                size_t cap)
{
    char path[128];
    struct diag_list diags;
    snprintf(path, sizeof(path), "%s/agent.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "node: kv-0\ncluster: demo/kv\nreconciler: http://127.0.0.1:1\n"
            "state_dir: %s/state\n%s"
            "engine:\n  data_dir: %s/data\n  socket_dir: %s/sock\n"
            "  listen_address: 127.0.0.1\n  replication_password: env:REEVE_TEST_ENGINE_PW\n%s",
            dir, extra, dir, dir, engine);
    fclose(f);
    setenv("REEVE_TEST_ENGINE_PW", "secret", 1);
    diag_list_init(&diags);
    int rc = agent_config_load(c, path, &diags);
    msg[0] = '\0';
    for (size_t i = 0; i < diags.len && strlen(msg) + 2 < cap; i++)
        snprintf(msg + strlen(msg), cap - strlen(msg), "%s: %s;", diags.items[i].path,
                 diags.items[i].msg);
    diag_list_release(&diags);
    return rc;
}

static void test_types(void **state)
{
    enum engine_type t;
    (void)state;
    assert_int_equal(engine_type_parse(&t, "postgresql"), 0);
    assert_int_equal(t, ENGINE_POSTGRESQL);
    assert_int_equal(engine_type_parse(&t, "mariadb"), 0);
    assert_int_equal(t, ENGINE_MARIADB);
    assert_int_equal(engine_type_parse(&t, "mysql"), RV_EINVAL);
}

static void test_mariadb_config_defaults(void **state)
{
    struct agent_config c;
    char msg[1024];
    (void)state;
    assert_int_equal(load(&c, "  type: mariadb\n", "", msg, sizeof(msg)), 0);
    assert_int_equal(c.engine_type, ENGINE_MARIADB);
    assert_int_equal(c.pg.port, 3306);
    assert_null(c.pg.bin_dir);
    assert_int_equal(c.max_lag_on_failover_transactions, RV_AGENT_FAILOVER_LAG_TRX_DEFAULT);
    assert_int_equal(c.server_id, 0);
    agent_config_release(&c);
    assert_int_equal(load(&c, "  type: mariadb\n  server_id: 7\n  port: 3307\n",
                          "max_lag_on_failover_transactions: 5\n", msg, sizeof(msg)),
                     0);
    assert_int_equal(c.server_id, 7);
    assert_int_equal(c.pg.port, 3307);
    assert_int_equal(c.max_lag_on_failover_transactions, 5);
    agent_config_release(&c);
}

static void test_config_refusals(void **state)
{
    struct agent_config c;
    char msg[1024];
    (void)state;
    assert_int_equal(load(&c, "  type: mariadb\n", "synchronous: 1\n", msg, sizeof(msg)),
                     RV_EINVALID_SPEC);
    assert_non_null(strstr(msg, "synchronous: synchronous standbys are PostgreSQL's"));
    assert_int_equal(
        load(&c, "  type: postgresql\n  bin_dir: /usr/bin\n  server_id: 3\n", "", msg, sizeof(msg)),
        RV_EINVALID_SPEC);
    assert_non_null(strstr(msg, "engine.server_id: is a MariaDB setting"));
    assert_int_equal(load(&c, "  type: mysql\n", "", msg, sizeof(msg)), RV_EINVALID_SPEC);
    assert_non_null(strstr(msg, "engine.type: must be 'postgresql' or 'mariadb'"));
    /* PostgreSQL still needs its binaries' directory. */
    assert_int_equal(load(&c, "  type: postgresql\n", "", msg, sizeof(msg)), RV_EINVALID_SPEC);
    assert_non_null(strstr(msg, "engine.bin_dir: required field is missing"));
}

static void test_positions(void **state)
{
    struct engine pg, mdb;
    struct pg_engine pge;
    char text[64];
    uint64_t v = 0;
    (void)state;
    memset(&pge, 0, sizeof(pge));
    engine_init_pg(&pg, &pge);
    assert_string_equal(pg.ops->name, "postgresql");
    pg.ops->pos_text(text, sizeof(text), ((uint64_t)0x16 << 32) | 0xB374D848u);
    assert_string_equal(text, "16/B374D848");
    assert_int_equal(pg.ops->pos_parse(&v, text), 0);
    assert_true(v == (((uint64_t)0x16 << 32) | 0xB374D848u));
    assert_non_null(pg.ops->set_synchronous);

    char data[128], sock[128];
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(sock, sizeof(sock), "%s/sock", dir);
    struct mdb_engine_config mc = {.data_dir = data,
                                   .socket_dir = sock,
                                   .listen_address = "127.0.0.1",
                                   .port = 3306,
                                   .node_name = "kv-0",
                                   .replication_user = "replicator",
                                   .replication_password = "secret"};
    struct rv_error err = {0};
    assert_int_equal(engine_init_mariadb(&mdb, &mc, &err), 0);
    assert_string_equal(mdb.ops->name, "mariadb");
    assert_null(mdb.ops->set_synchronous);
    assert_false(mdb.ops->has_data(&mdb));
    mdb.ops->pos_text(text, sizeof(text), 42);
    assert_string_equal(text, "42");
    assert_int_equal(mdb.ops->pos_parse(&v, "1234"), 0);
    assert_true(v == 1234);
    assert_int_equal(mdb.ops->pos_parse(&v, "0/16"), RV_EPARSE);
    assert_int_equal(mdb.ops->pos_parse(&v, "-1"), RV_EPARSE);
    assert_int_equal(mdb.ops->pos_parse(&v, ""), RV_EPARSE);
    /* A stopped server is not an error: the flags say so. */
    struct engine_status st;
    assert_int_equal(mdb.ops->status(&mdb, 10, &st, &err), 0);
    assert_false(st.running);
    assert_false(st.in_recovery);
    assert_true(st.lag == 10);
    engine_release(&mdb);
    engine_release(&mdb); /* idempotent */
    engine_release(&pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_mariadb_config_defaults),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_positions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
