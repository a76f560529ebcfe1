/* test_params.c - the engine parameter catalogs (specs-schema/params.c):
 * the generated tables are sorted and complete enough, look-ups ignore case
 * (and '-' for MariaDB), PostgreSQL's and MariaDB's value rules (units,
 * boundaries, boolean prefixes, enums, sets), the messages a user sees, and
 * which names need a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "limits.h"
#include "params.h"

static char msg[RV_ERROR_MSG_MAX];

static enum params_verdict pg(const char *name, const char *value)
{
    msg[0] = '\0';
    return params_check("postgresql", "15", name, value, msg, sizeof(msg));
}

static enum params_verdict my(const char *name, const char *value)
{
    msg[0] = '\0';
    return params_check("mariadb", "10.11", name, value, msg, sizeof(msg));
}

/* ---------------------------------------------------------------- catalogs */

static void check_sorted(const struct param_catalog *cat, size_t at_least)
{
    size_t n = 0;
    const struct param_def *d = params_catalog_defs(cat, &n);
    assert_true(n >= at_least);
    for (size_t i = 1; i < n; i++) {
        if (strcasecmp(d[i - 1].name, d[i].name) >= 0)
            fail_msg("%s: '%s' is not before '%s'", params_catalog_title(cat), d[i - 1].name,
                     d[i].name);
    }
    /* every entry is found by its own name */
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(params_lookup(cat, d[i].name), &d[i]);
}

static void test_catalogs(void **state)
{
    (void)state;
    const struct param_catalog *p = params_catalog("postgresql", "15");
    const struct param_catalog *m = params_catalog("mariadb", "10.11");
    assert_non_null(p);
    assert_non_null(m);
    assert_string_equal(params_catalog_title(p), "PostgreSQL 15");
    assert_string_equal(params_catalog_title(m), "MariaDB 10.11");
    check_sorted(p, 300);
    check_sorted(m, 500);
    assert_null(params_catalog("postgresql", "16"));
    assert_null(params_catalog("mariadb", "11.4"));
    assert_null(params_catalog("oracle", "15"));
    assert_null(params_catalog(NULL, NULL));
}

static void test_lookup(void **state)
{
    (void)state;
    const struct param_catalog *p = params_catalog("postgresql", "15");
    const struct param_catalog *m = params_catalog("mariadb", "10.11");
    const struct param_def *d = params_lookup(p, "shared_buffers");
    assert_non_null(d);
    assert_int_equal(d->type, PARAM_INT);
    assert_string_equal(d->unit, "8kB");
    assert_int_equal(d->min, 16);
    /* case-insensitive; the engine's spelling is kept */
    d = params_lookup(p, "datestyle");
    assert_non_null(d);
    assert_string_equal(d->name, "DateStyle");
    assert_ptr_equal(params_lookup(p, "SHARED_BUFFERS"), params_lookup(p, "shared_buffers"));
    assert_null(params_lookup(p, "shared-buffers")); /* '-' is MariaDB's */
    assert_null(params_lookup(p, "shard_buffers"));
    assert_null(params_lookup(p, ""));
    /* MariaDB: '-' for '_', any case */
    assert_non_null(params_lookup(m, "innodb-buffer-pool-size"));
    assert_ptr_equal(params_lookup(m, "Max_Connections"), params_lookup(m, "max_connections"));
    /* too long to be a name */
    char longname[RV_PARAM_NAME_MAX + 10];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_null(params_lookup(p, longname));
    assert_null(params_suggest(p, longname));
}

static void test_suggest(void **state)
{
    (void)state;
    const struct param_catalog *p = params_catalog("postgresql", "15");
    const struct param_catalog *m = params_catalog("mariadb", "10.11");
    assert_string_equal(params_suggest(p, "shard_buffers"), "shared_buffers");
    assert_string_equal(params_suggest(p, "wrok_mem"), "work_mem"); /* a swap is one edit */
    assert_string_equal(params_suggest(m, "innodb_bufer_pool_size"), "innodb_buffer_pool_size");
    assert_null(params_suggest(p, "xyz"));
    /* a refused name is never suggested */
    assert_null(params_suggest(p, "listen_addresse"));
}

/* -------------------------------------------------------------- PostgreSQL */

static void test_pg_memory_units(void **state)
{
    (void)state;
    /* shared_buffers: 16 .. 1073741823 blocks of 8kB */
    assert_int_equal(pg("shared_buffers", "1GB"), PARAMS_OK);
    assert_int_equal(pg("shared_buffers", "128kB"), PARAMS_OK);
    assert_int_equal(pg("shared_buffers", "16"), PARAMS_OK);
    assert_int_equal(pg("shared_buffers", "1.5GB"), PARAMS_OK);
    assert_int_equal(pg("shared_buffers", " 512 MB "), PARAMS_OK);
    assert_int_equal(pg("shared_buffers", "8589934584kB"), PARAMS_OK); /* the maximum */
    assert_int_equal(pg("shared_buffers", "8589934592kB"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("shared_buffers", "15"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("shared_buffers", "120kB"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("shared_buffers", "16TB"), PARAMS_OUT_OF_RANGE);
    assert_string_equal(msg, "'16TB' is out of range for shared_buffers (128kB .. 8589934584kB)");
    /* units are case-sensitive, as in PostgreSQL */
    assert_int_equal(pg("shared_buffers", "1gb"), PARAMS_INVALID);
    assert_string_equal(msg,
                        "'1gb' is not a valid value for shared_buffers: valid units are B, kB, "
                        "MB, GB, TB (case matters)");
    assert_int_equal(pg("shared_buffers", "1PB"), PARAMS_INVALID);
    assert_int_equal(pg("shared_buffers", "1GB x"), PARAMS_INVALID);
    assert_int_equal(pg("shared_buffers", "GB"), PARAMS_INVALID);
    assert_int_equal(pg("shared_buffers", ""), PARAMS_INVALID);
    /* work_mem is in kB: 64kB .. 2147483647kB */
    assert_int_equal(pg("work_mem", "64kB"), PARAMS_OK);
    assert_int_equal(pg("work_mem", "63kB"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("work_mem", "2TB"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("work_mem", "65536B"), PARAMS_OK);
    assert_int_equal(pg("work_mem", "0x100"), PARAMS_OK); /* strtol base 0, as PostgreSQL */
    /* a number too big for an int at all */
    assert_int_equal(pg("work_mem", "99999999999999999999999"), PARAMS_OUT_OF_RANGE);
}

static void test_pg_time_units(void **state)
{
    (void)state;
    /* statement_timeout: ms, 0 .. 2147483647 */
    assert_int_equal(pg("statement_timeout", "30s"), PARAMS_OK);
    assert_int_equal(pg("statement_timeout", "1.5min"), PARAMS_OK);
    assert_int_equal(pg("statement_timeout", "24d"), PARAMS_OK);
    assert_int_equal(pg("statement_timeout", "25d"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("statement_timeout", "500us"), PARAMS_OK); /* rounds to 1ms */
    assert_int_equal(pg("statement_timeout", "30S"), PARAMS_INVALID);
    assert_string_equal(msg,
                        "'30S' is not a valid value for statement_timeout: valid units are us, "
                        "ms, s, min, h, d (case matters)");
    /* checkpoint_timeout: s, 30 .. 86400 */
    assert_int_equal(pg("checkpoint_timeout", "1d"), PARAMS_OK);
    assert_int_equal(pg("checkpoint_timeout", "29s"), PARAMS_OUT_OF_RANGE);
    assert_string_equal(msg, "'29s' is out of range for checkpoint_timeout (30s .. 1d)");
    assert_int_equal(pg("checkpoint_timeout", "5min"), PARAMS_OK);
    /* a unit where the parameter has none */
    assert_int_equal(pg("max_connections", "100kB"), PARAMS_INVALID);
    assert_string_equal(msg, "'100kB' is not a valid value for max_connections: it takes no unit");
    /* a real with a time unit: vacuum_cost_delay is 0 .. 100 ms */
    assert_int_equal(pg("vacuum_cost_delay", "2ms"), PARAMS_OK);
    assert_int_equal(pg("vacuum_cost_delay", "0.5"), PARAMS_OK);
    assert_int_equal(pg("vacuum_cost_delay", "1s"), PARAMS_OUT_OF_RANGE);
    assert_string_equal(msg, "'1s' is out of range for vacuum_cost_delay (0ms .. 100ms)");
}

static void test_pg_numbers(void **state)
{
    (void)state;
    assert_int_equal(pg("max_connections", "1"), PARAMS_OK);
    assert_int_equal(pg("max_connections", "262143"), PARAMS_OK);
    assert_int_equal(pg("max_connections", "262144"), PARAMS_OUT_OF_RANGE);
    assert_string_equal(msg, "'262144' is out of range for max_connections (1 .. 262143)");
    assert_int_equal(pg("max_connections", "0"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("max_connections", "many"), PARAMS_INVALID);
    assert_string_equal(msg,
                        "'many' is not a valid value for max_connections: expected a whole number");
    assert_int_equal(pg("log_min_duration_statement", "-1"), PARAMS_OK);
    assert_int_equal(pg("log_min_duration_statement", "-2"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("random_page_cost", "1.1"), PARAMS_OK);
    assert_int_equal(pg("random_page_cost", "1e1"), PARAMS_OK);
    assert_int_equal(pg("random_page_cost", "-0.5"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(pg("random_page_cost", "nan"), PARAMS_INVALID);
    assert_int_equal(pg("random_page_cost", "cheap"), PARAMS_INVALID);
    assert_int_equal(pg("random_page_cost", "1e999"), PARAMS_OUT_OF_RANGE);
}

static void test_pg_bool_enum_string(void **state)
{
    (void)state;
    const char *yes[] = {"on", "off", "ON", "Of", "true", "t", "TR", "false",
                         "f",  "yes", "y",  "no", "n",    "1", "0",  "True"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (pg("jit", yes[i]) != PARAMS_OK)
            fail_msg("jit = '%s' should be accepted: %s", yes[i], msg);
    }
    const char *no[] = {"o", "onn", "offf", "truee", "2", "", "10", "enable", " on"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (pg("jit", no[i]) != PARAMS_INVALID)
            fail_msg("jit = '%s' should be refused", no[i]);
    }
    assert_int_equal(pg("jit", "maybe"), PARAMS_INVALID);
    assert_string_equal(msg, "'maybe' is not a valid value for jit: must be on or off (or "
                             "true/false, yes/no, 1/0)");
    /* enums: any case, no prefixes */
    assert_int_equal(pg("log_statement", "ddl"), PARAMS_OK);
    assert_int_equal(pg("log_statement", "DDL"), PARAMS_OK);
    assert_int_equal(pg("log_statement", "dd"), PARAMS_INVALID);
    assert_string_equal(msg, "'dd' is not a valid value for log_statement: must be one of none, "
                             "ddl, mod, all");
    assert_int_equal(pg("log_min_messages", "warnings"), PARAMS_INVALID);
    assert_string_equal(msg,
                        "'warnings' is not a valid value for log_min_messages: must be one of "
                        "debug5, debug4, debug3, debug2, debug1, info, notice, warning, error, "
                        "log, fatal, panic (did you mean 'warning'?)");
    /* an enum with on/off takes the boolean spellings too */
    assert_int_equal(pg("synchronous_commit", "remote_apply"), PARAMS_OK);
    assert_int_equal(pg("synchronous_commit", "yes"), PARAMS_OK);
    assert_int_equal(pg("synchronous_commit", "y"), PARAMS_INVALID);
    assert_int_equal(pg("log_statement", "on"), PARAMS_INVALID);
    /* strings take anything */
    assert_int_equal(pg("application_name", "anything at all"), PARAMS_OK);
    assert_int_equal(pg("DateStyle", "ISO, MDY"), PARAMS_OK);
}

static void test_pg_names(void **state)
{
    (void)state;
    assert_int_equal(pg("shard_buffers", "1GB"), PARAMS_UNKNOWN);
    assert_string_equal(
        msg, "PostgreSQL 15 has no parameter 'shard_buffers' (did you mean 'shared_buffers'?)");
    assert_int_equal(pg("no_such_thing_at_all", "1"), PARAMS_UNKNOWN);
    assert_string_equal(msg, "PostgreSQL 15 has no parameter 'no_such_thing_at_all'");
    /* an extension's parameter: not ours to check */
    assert_int_equal(pg("pg_stat_statements.max", "10000"), PARAMS_OK);
    /* reeve's own */
    const char *managed[] = {"listen_addresses",
                             "port",
                             "unix_socket_directories",
                             "primary_conninfo",
                             "archive_mode",
                             "archive_command",
                             "synchronous_standby_names",
                             "hba_file",
                             "data_directory",
                             "config_file"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
        if (pg(managed[i], "x") != PARAMS_REFUSED || strstr(msg, "is managed by reeve") == NULL)
            fail_msg("'%s' should be refused as managed: %s", managed[i], msg);
    }
    assert_int_equal(pg("archive_mode", "on"), PARAMS_REFUSED);
    assert_string_equal(msg, "'archive_mode' is managed by reeve (set from spec.backup and "
                             "spec.pitr); remove it");
    assert_int_equal(pg("port", "5433"), PARAMS_REFUSED);
    assert_string_equal(msg, "'port' is managed by reeve (set from the spec's replication/access "
                             "fields); remove it");
    assert_int_equal(pg("server_version", "99"), PARAMS_REFUSED);
    assert_string_equal(msg, "'server_version' cannot be set: PostgreSQL 15 fixes it when the "
                             "server is built or initialised");
    assert_int_equal(pg("block_size", "8192"), PARAMS_REFUSED);
    assert_int_equal(pg("transaction_isolation", "serializable"), PARAMS_REFUSED);
    assert_non_null(strstr(msg, "applies to one session only"));
    /* the default isolation level, by contrast, is a server setting */
    assert_int_equal(pg("default_transaction_isolation", "serializable"), PARAMS_OK);
}

/* ---------------------------------------------------------------- MariaDB */

static void test_mariadb_numbers(void **state)
{
    (void)state;
    assert_int_equal(my("max_connections", "400"), PARAMS_OK);
    assert_int_equal(my("max_connections", "10"), PARAMS_OK);
    assert_int_equal(my("max_connections", "100000"), PARAMS_OK);
    assert_int_equal(my("max_connections", "9"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(my("max_connections", "100001"), PARAMS_OUT_OF_RANGE);
    assert_string_equal(msg, "'100001' is out of range for max_connections (10 .. 100000)");
    assert_int_equal(my("max_connections", "-1"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(my("max_connections", "1e3"), PARAMS_INVALID);
    assert_string_equal(msg, "'1e3' is not a valid value for max_connections: expected a whole "
                             "number, optionally with a K, M, G or T suffix");
    /* suffixes, 1024-based, either case */
    assert_int_equal(my("innodb_buffer_pool_size", "3G"), PARAMS_OK);
    assert_int_equal(my("innodb_buffer_pool_size", "2m"), PARAMS_OK);
    assert_int_equal(my("innodb_buffer_pool_size", "2097151"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(my("innodb_buffer_pool_size", "1K"), PARAMS_OUT_OF_RANGE);
    assert_string_equal(msg, "'1K' is out of range for innodb_buffer_pool_size (2M .. "
                             "17592186044408M)");
    assert_int_equal(my("innodb_buffer_pool_size", "3GB"), PARAMS_INVALID);
    assert_int_equal(my("innodb_buffer_pool_size", "99999999999T"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(my("innodb_buffer_pool_size", "99999999999999999999"), PARAMS_OUT_OF_RANGE);
    /* the full unsigned 64-bit range */
    assert_int_equal(my("max_join_size", "18446744073709551615"), PARAMS_OK);
    assert_int_equal(my("max_join_size", "18446744073709551616"), PARAMS_OUT_OF_RANGE);
    /* reals */
    assert_int_equal(my("long_query_time", "0.5"), PARAMS_OK);
    assert_int_equal(my("long_query_time", "-1"), PARAMS_OUT_OF_RANGE);
    assert_int_equal(my("long_query_time", "slow"), PARAMS_INVALID);
}

static void test_mariadb_bool_enum_set(void **state)
{
    (void)state;
    const char *yes[] = {"ON", "off", "true", "FALSE", "1", "0", "yes", "No"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (my("slow_query_log", yes[i]) != PARAMS_OK)
            fail_msg("slow_query_log = '%s' should be accepted: %s", yes[i], msg);
    }
    assert_int_equal(my("slow_query_log", "of"), PARAMS_INVALID); /* no prefixes */
    assert_int_equal(my("slow_query_log", "2"), PARAMS_INVALID);
    assert_int_equal(my("binlog_row_image", "minimal"), PARAMS_OK);
    assert_int_equal(my("binlog_row_image", "FULL"), PARAMS_OK);
    assert_int_equal(my("binlog_row_image", "1"), PARAMS_OK); /* by index */
    assert_int_equal(my("binlog_row_image", "9"), PARAMS_INVALID);
    assert_int_equal(my("binlog_row_image", "tiny"), PARAMS_INVALID);
    assert_non_null(strstr(msg, "must be one of MINIMAL, NOBLOB, FULL"));
    /* sets */
    assert_int_equal(my("sql_mode", "STRICT_TRANS_TABLES,NO_ZERO_DATE"), PARAMS_OK);
    assert_int_equal(my("sql_mode", "strict_trans_tables"), PARAMS_OK);
    assert_int_equal(my("sql_mode", ""), PARAMS_OK);
    assert_int_equal(my("sql_mode", "STRICT_TRANS_TABLES,BOGUS"), PARAMS_INVALID);
    assert_non_null(strstr(msg, "'BOGUS' is not one of REAL_AS_FLOAT, "));
    assert_null(strstr(msg, "did you mean"));
    assert_int_equal(my("sql_mode", "STRICT_TRANS_TABLES,NO_ZERO_DAT"), PARAMS_INVALID);
    assert_non_null(strstr(msg, ", ... (did you mean 'NO_ZERO_DATE'?)"));
    assert_non_null(strstr(msg, ", ...")); /* a long list is cut */
    assert_true(strlen(msg) < RV_ERROR_MSG_MAX - 1);
    /* flag sets */
    assert_int_equal(my("optimizer_switch", "index_merge=off,mrr=on"), PARAMS_OK);
    assert_int_equal(my("optimizer_switch", "default"), PARAMS_OK);
    assert_int_equal(my("optimizer_switch", "mrr=maybe"), PARAMS_INVALID);
    assert_non_null(strstr(msg, "'mrr=maybe' must be written flag=on, flag=off or flag=default"));
    assert_int_equal(my("optimizer_switch", "warp_drive=on"), PARAMS_INVALID);
    /* strings, and an enum without a list (character sets) */
    assert_int_equal(my("character_set_server", "utf8mb4"), PARAMS_OK);
    assert_int_equal(my("init_connect", "SET NAMES utf8mb4"), PARAMS_OK);
}

static void test_mariadb_names(void **state)
{
    (void)state;
    assert_int_equal(my("innodb_bufer_pool_size", "3G"), PARAMS_UNKNOWN);
    assert_string_equal(msg, "MariaDB 10.11 has no parameter 'innodb_bufer_pool_size' (did you "
                             "mean 'innodb_buffer_pool_size'?)");
    assert_int_equal(my("innodb-buffer-pool-size", "3G"), PARAMS_OK);
    const char *managed[] = {"port",         "bind_address", "socket",           "datadir",
                             "server_id",    "log_bin",      "gtid_strict_mode", "read_only",
                             "binlog_format"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
        if (my(managed[i], "1") != PARAMS_REFUSED || strstr(msg, "is managed by reeve") == NULL)
            fail_msg("'%s' should be refused as managed: %s", managed[i], msg);
    }
    assert_int_equal(my("version", "1"), PARAMS_REFUSED);
    assert_int_equal(my("have_ssl", "YES"), PARAMS_REFUSED);
    assert_int_equal(my("timestamp", "1"), PARAMS_REFUSED);
    assert_non_null(strstr(msg, "applies to one session only"));
}

/* Every entry of both catalogs against awkward values: a verdict, and for
 * anything refused a message that was not cut short. */
static void test_every_entry(void **state)
{
    (void)state;
    char longv[300];
    memset(longv, '9', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    const char *values[] = {"",
                            "0",
                            "-1",
                            "1K",
                            "on",
                            "x",
                            "1e400",
                            "-9223372036854775809",
                            "18446744073709551616",
                            ",,",
                            "a=b",
                            "=on",
                            "1 kB",
                            "0x",
                            "-",
                            longv};
    const struct param_catalog *cats[] = {params_catalog("postgresql", "15"),
                                          params_catalog("mariadb", "10.11")};
    for (size_t c = 0; c < 2; c++) {
        size_t n = 0;
        const struct param_def *d = params_catalog_defs(cats[c], &n);
        for (size_t i = 0; i < n; i++) {
            for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
                msg[0] = '\0';
                enum params_verdict r =
                    params_check_value(cats[c], &d[i], values[v], msg, sizeof(msg));
                assert_true(r == PARAMS_OK || r == PARAMS_REFUSED || r == PARAMS_INVALID ||
                            r == PARAMS_OUT_OF_RANGE);
                if (r != PARAMS_OK && (msg[0] == '\0' || strlen(msg) >= sizeof(msg) - 1))
                    fail_msg("%s = '%.20s': message empty or cut: %s", d[i].name, values[v], msg);
            }
        }
    }
}

/* --------------------------------------------------- versions and restarts */

static void test_versions_without_catalog(void **state)
{
    (void)state;
    msg[0] = '\0';
    assert_int_equal(params_check("postgresql", "16", "shard_buffers", "1PB", msg, sizeof(msg)),
                     PARAMS_OK);
    assert_int_equal(params_check("mariadb", "11.4", "port", "1", msg, sizeof(msg)), PARAMS_OK);
    assert_int_equal(params_check("sqlite", "3", "x", "y", msg, sizeof(msg)), PARAMS_OK);
    assert_string_equal(msg, "");
}

static void test_needs_restart(void **state)
{
    (void)state;
    assert_true(params_needs_restart("postgresql", "15", "shared_buffers"));
    assert_true(params_needs_restart("postgresql", "15", "max_connections"));
    assert_true(params_needs_restart("postgresql", "15", "shared_preload_libraries"));
    assert_false(params_needs_restart("postgresql", "15", "work_mem"));
    assert_false(params_needs_restart("postgresql", "15", "WORK_MEM"));
    assert_false(params_needs_restart("postgresql", "15", "checkpoint_timeout"));
    assert_false(params_needs_restart("postgresql", "15", "autovacuum"));
    /* never applied from the spec */
    assert_false(params_needs_restart("postgresql", "15", "port"));
    /* another major: the nearest catalog of the engine */
    assert_true(params_needs_restart("postgresql", "17", "shared_buffers"));
    assert_false(params_needs_restart("postgresql", "16", "work_mem"));
    /* unknown names and engines: a restart applies anything */
    assert_true(params_needs_restart("postgresql", "15", "pg_stat_statements.max"));
    assert_true(params_needs_restart("oracle", "19", "sga_target"));
    /* MariaDB: max_connections, innodb_buffer_pool_size and (since 10.11)
     * innodb_log_file_size are dynamic */
    assert_false(params_needs_restart("mariadb", "10.11", "max_connections"));
    assert_false(params_needs_restart("mariadb", "10.11", "innodb_buffer_pool_size"));
    assert_false(params_needs_restart("mariadb", "10.11", "innodb_log_file_size"));
    /* gone since 10.6: unknown, so a restart to be safe */
    assert_null(params_lookup(params_catalog("mariadb", "10.11"), "innodb_buffer_pool_instances"));
    assert_true(params_needs_restart("mariadb", "10.11", "innodb_buffer_pool_instances"));
    assert_true(params_needs_restart("mariadb", "10.11", "innodb_log_buffer_size"));
    assert_true(params_needs_restart("mariadb", "10.11", "performance_schema"));
    assert_true(params_needs_restart("mariadb", "10.11", "lower_case_table_names"));
    assert_false(params_needs_restart("mariadb", "10.11", "long_query_time"));
    assert_false(params_needs_restart("mariadb", "11.4", "max-connections"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalogs),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_pg_memory_units),
        cmocka_unit_test(test_pg_time_units),
        cmocka_unit_test(test_pg_numbers),
        cmocka_unit_test(test_pg_bool_enum_string),
        cmocka_unit_test(test_pg_names),
        cmocka_unit_test(test_mariadb_numbers),
        cmocka_unit_test(test_mariadb_bool_enum_set),
        cmocka_unit_test(test_mariadb_names),
        cmocka_unit_test(test_every_entry),
        cmocka_unit_test(test_versions_without_catalog),
        cmocka_unit_test(test_needs_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
