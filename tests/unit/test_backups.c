/* test_backups.c - the reconciler's side of backups: reeve.yaml's
 * credentials and backupKeys (errors at file:line:col), validation of the
 * agents' records (types, bounds, another cluster's record is 403), RFC
 * 3339 times, the restore decision for point-in-time ranges (table), and
 * reconciler/backups.c on a real database: specs, records, the agent
 * configuration with its secrets and restore, final-backup requests,
 * verification against a local destination, references to reeve.yaml. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agentapi.h"
#include "backups.h"
#include "bstream.h"
#include "config.h"
#include "db.h"
#include "diag.h"
#include "err.h"
#include "objstore.h"
#include "runners.h"
#include "s3.h"
#include "spec.h"
#include "store.h"
#include "tutil.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define KEY_LOWER "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* --- reeve.yaml: credentials and backupKeys --- */

static const char base_yaml[] = "dataDir: /var/lib/reeve\n"
                                "repository:\n"
                                "  url: /srv/specs.git\n";

static int parse_cfg(struct config *c, struct diag_list *d, const char *extra)
{
    char yaml[2048];
    struct rv_error err = {0};
    snprintf(yaml, sizeof(yaml), "%s%s", base_yaml, extra);
    config_init(c);
    diag_list_init(d);
    return config_parse(c, "/etc/reeve/reeve.yaml", yaml, strlen(yaml), d, &err);
}

static void test_config_sections(void **state)
{
    struct config c;
    struct diag_list d;
    (void)state;
    setenv("RV_T_KEY", KEY_HEX, 1);
    setenv("RV_T_AKID", "AKIDEXAMPLE", 1);
    setenv("RV_T_SECRET", "wJalrXUtnFEMI", 1);
    int rc = parse_cfg(&c, &d,
                       "credentials:\n"
                       "  s3-main:\n"
                       "    accessKeyIdRef: env:RV_T_AKID\n"
                       "    secretAccessKeyRef: env:RV_T_SECRET\n"
                       "backupKeys:\n"
                       "  backup-key:\n"
                       "    secretRef: env:RV_T_KEY\n");
    char *text = tu_printed(&d);
    if (rc != 0)
        fail_msg("unexpected errors:\n%s", text);
    free(text);
    const struct config_credentials *cr = config_credentials_find(&c, "s3-main");
    assert_non_null(cr);
    assert_string_equal(cr->access_key_id, "AKIDEXAMPLE");
    assert_string_equal(cr->secret_access_key, "wJalrXUtnFEMI");
    assert_null(config_credentials_find(&c, "s3-other"));
    const struct config_backup_key *k = config_backup_key_find(&c, "backup-key");
    assert_non_null(k);
    assert_string_equal(k->hex, KEY_LOWER); /* written in either case, kept lowercase */
    config_release(&c);
    diag_list_release(&d);
}

/* One error, printed exactly as want. */
static void expect_cfg_error(const char *extra, const char *want)
{
    struct config c;
    struct diag_list d;
    int rc = parse_cfg(&c, &d, extra);
    char *text = tu_printed(&d);
    if (rc != RV_EINVAL || d.errors != 1 || strcmp(text, want) != 0)
        fail_msg("wanted rc %d and:\n%sgot rc %d and:\n%s", RV_EINVAL, want, rc, text);
    free(text);
    config_release(&c);
    diag_list_release(&d);
}

static void test_config_errors(void **state)
{
    (void)state;
    setenv("RV_T_SHORT", "abcd", 1);
    setenv("RV_T_NOTHEX", "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    unsetenv("RV_T_UNSET");
    expect_cfg_error("backupKeys:\n"
                     "  backup-key:\n"
                     "    secretRef: env:RV_T_SHORT\n",
                     "/etc/reeve/reeve.yaml:6:16: error: backupKeys.backup-key.secretRef: backup "
                     "key 'backup-key' must be 32 bytes as 64 hex characters; generate one "
                     "with: openssl rand -hex 32\n");
    expect_cfg_error("backupKeys:\n"
                     "  other:\n"
                     "    secretRef: env:RV_T_NOTHEX\n",
                     "/etc/reeve/reeve.yaml:6:16: error: backupKeys.other.secretRef: backup "
                     "key 'other' must be 32 bytes as 64 hex characters; generate one "
                     "with: openssl rand -hex 32\n");
    expect_cfg_error("credentials:\n"
                     "  s3-main:\n"
                     "    accessKeyIdRef: env:RV_T_UNSET\n"
                     "    secretAccessKeyRef: env:RV_T_SHORT\n",
                     "/etc/reeve/reeve.yaml:6:21: error: credentials.s3-main.accessKeyIdRef: "
                     "environment variable 'RV_T_UNSET' is not set; export it, or use "
                     "file:PATH\n");
    /* the schema: both references are required, names are reference names */
    struct config c;
    struct diag_list d;
    assert_int_equal(parse_cfg(&c, &d,
                               "credentials:\n"
                               "  s3-main:\n"
                               "    accessKeyIdRef: env:RV_T_SHORT\n"),
                     RV_EINVAL);
    char *text = tu_printed(&d);
    assert_non_null(strstr(
        text, "/etc/reeve/reeve.yaml:6:5: error: credentials.s3-main: missing required field"));
    assert_non_null(strstr(text, "secretAccessKeyRef"));
    free(text);
    config_release(&c);
    diag_list_release(&d);
    assert_int_equal(parse_cfg(&c, &d,
                               "backupKeys:\n"
                               "  Bad_Name:\n"
                               "    secretRef: env:RV_T_SHORT\n"),
                     RV_EINVAL);
    text = tu_printed(&d);
    assert_non_null(strstr(text, "/etc/reeve/reeve.yaml:5:3: error: backupKeys"));
    free(text);
    config_release(&c);
    diag_list_release(&d);
}

/* --- records from agents --- */

static const char good_record[] =
    "{\"backup_id\":\"20261121T080501Z-3fa9c2d1\",\"set_id\":\"20261121T080501Z-3fa9c2d1\","
    "\"cluster\":\"payments/billing\",\"node\":\"billing-1\",\"type\":\"full\","
    "\"method\":\"pg_basebackup\",\"params\":[],\"schedule\":\"scheduled\","
    "\"status\":\"succeeded\",\"error\":null,\"started_at\":\"2026-11-21T08:05:01.000Z\","
    "\"ended_at\":\"2026-11-21T08:06:00.500Z\",\"duration_ms\":59500,"
    "\"location\":\"file:///backups/base/20261121T080501Z-3fa9c2d1/data\","
    "\"name\":\"base/20261121T080501Z-3fa9c2d1/data\",\"size\":1234,\"raw_size\":5678,"
    "\"checksum\":\"" KEY_LOWER "\",\"encrypted\":true,\"compression\":\"zstd\","
    "\"retention_days\":7,\"schemas\":[],\"start_lsn\":\"0/2000028\",\"end_lsn\":\"0/2000100\","
    "\"timeline\":1,\"verify\":null}";

/* Check {"records":[record with field set to value_json], "wal":wal_json}. */
static int check_with(int *status, const char *field, const char *value_json, const char *wal,
                      char *msg, size_t msg_size)
{
    json_t *rec = json_loads(good_record, 0, NULL);
    assert_non_null(rec);
    if (field != NULL) {
        json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(rec, field, v);
    }
    json_t *body = json_pack("{s:[o]}", "records", rec);
    if (wal != NULL)
        json_object_set_new(body, "wal", json_loads(wal, JSON_DECODE_ANY, NULL));
    struct rv_error err = {0};
    int rc = agentapi_backups_check(status, body, "payments/billing", &err);
    snprintf(msg, msg_size, "%s", err.msg);
    json_decref(body);
    return rc;
}

static void expect_refused(const char *field, const char *value, int want_status,
                           const char *want_msg)
{
    int status = 0;
    char msg[RV_ERROR_MSG_MAX];
    int rc = check_with(&status, field, value, NULL, msg, sizeof(msg));
    if (rc != RV_EINVAL || status != want_status || strcmp(msg, want_msg) != 0)
        fail_msg("%s=%s: wanted %d '%s', got rc %d status %d '%s'", field, value, want_status,
                 want_msg, rc, status, msg);
}

static void test_record_validation(void **state)
{
    int status = 0;
    char msg[RV_ERROR_MSG_MAX];
    (void)state;
    assert_int_equal(check_with(&status, NULL, NULL, NULL, msg, sizeof(msg)), 0);
    assert_int_equal(check_with(&status, NULL, NULL,
                                "{\"last_segment\":\"000000010000000000000007\","
                                "\"last_archived_at\":\"2026-11-21T08:07:00Z\"}",
                                msg, sizeof(msg)),
                     0);
    expect_refused("size", "\"1234\"", 400,
                   "records[0]: field 'size' must be a non-negative integer or null");
    expect_refused("size", "-1", 400,
                   "records[0]: field 'size' must be a non-negative integer or null");
    expect_refused("encrypted", "1", 400, "records[0]: field 'encrypted' must be true or false");
    expect_refused("status", "\"done\"", 400,
                   "records[0]: field 'status' must be one of running, succeeded, failed");
    expect_refused("type", "null", 400, "records[0]: field 'type' must be a string");
    expect_refused("started_at", "\"yesterday\"", 400,
                   "records[0]: field 'started_at' must be an RFC 3339 time such as "
                   "2026-11-21T08:05:01.000Z");
    expect_refused("schedule", "\"request:\"", 400,
                   "records[0]: field 'schedule' must be scheduled, manual, final or "
                   "request:<id>");
    expect_refused("checksum", "\"ABC\"", 400,
                   "records[0]: field 'checksum' must be 64 lowercase hex digits (SHA-256)");
    expect_refused("params", "[1]", 400,
                   "records[0]: field 'params' must hold strings of at most 1024 printable "
                   "bytes");
    expect_refused("owner", "\"x\"", 400, "records[0]: unknown field 'owner'");
    expect_refused("backup_id", "\"../etc\"", 400,
                   "records[0]: backup_id and set_id are letters, digits, '.', '_' and '-'");
    expect_refused("verify", "{\"at\":\"2026-11-21T09:00:00Z\",\"kind\":\"checksum\"}", 400,
                   "records[0]: field 'verify.status' is required");
    expect_refused("ended_at", "null", 400,
                   "records[0]: a succeeded record needs 'ended_at' and 'name'");
    expect_refused("cluster", "\"payments/ledger\"", 403,
                   "records[0]: cluster 'payments/ledger' is not this agent's cluster "
                   "'payments/billing'; an agent reports only its own backups");

    /* the envelope */
    struct rv_error err = {0};
    json_t *body = json_loads("{\"records\":{}}", 0, NULL);
    assert_int_equal(agentapi_backups_check(&status, body, "payments/billing", &err), RV_EINVAL);
    assert_int_equal(status, 400);
    assert_string_equal(err.msg,
                        "backups: field 'records' must be an array of at most 256 records");
    json_decref(body);
    assert_int_equal(check_with(&status, NULL, NULL, "{\"last_segment\":\"7\"}", msg, sizeof(msg)),
                     RV_EINVAL);
    assert_string_equal(
        msg, "wal: field 'last_segment' must be a WAL file name (24 uppercase hex digits)");
    body = json_pack("{s:[]}", "records");
    for (int i = 0; i <= RV_BACKUPS_POST_RECORDS_MAX; i++)
        json_array_append_new(json_object_get(body, "records"), json_loads(good_record, 0, NULL));
    assert_int_equal(agentapi_backups_check(&status, body, "payments/billing", &err), RV_EINVAL);
    json_decref(body);
}

/* --- log lines from agents --- */

/* Check {"records":[good_record], "logs":[line with field set to value_json]}. */
static int check_log_with(int *status, const char *field, const char *value_json, char *msg,
                          size_t msg_size)
{
    json_t *line = json_pack("{s:s,s:s,s:s,s:s}", "backup_id", "20261121T080501Z-3fa9c2d1", "at",
                             "2026-11-21T08:05:02.123Z", "level", "info", "line",
                             "started (pg_basebackup, scheduled)");
    assert_non_null(line);
    if (field != NULL) {
        json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(line, field, v);
    }
    json_t *body =
        json_pack("{s:[o],s:[o]}", "records", json_loads(good_record, 0, NULL), "logs", line);
    struct rv_error err = {0};
    int rc = agentapi_backups_check(status, body, "payments/billing", &err);
    snprintf(msg, msg_size, "%s", err.msg);
    json_decref(body);
    return rc;
}

static void expect_log_refused(const char *field, const char *value, const char *want_msg)
{
    int status = 0;
    char msg[RV_ERROR_MSG_MAX];
    int rc = check_log_with(&status, field, value, msg, sizeof(msg));
    if (rc != RV_EINVAL || status != 400 || strcmp(msg, want_msg) != 0)
        fail_msg("%s=%s: wanted 400 '%s', got rc %d status %d '%s'", field, value, want_msg, rc,
                 status, msg);
}

static void test_log_validation(void **state)
{
    int status = 0;
    char msg[RV_ERROR_MSG_MAX];
    char big[RV_BACKUPS_LOG_LINE_MAX + 8];
    (void)state;
    assert_int_equal(check_log_with(&status, NULL, NULL, msg, sizeof(msg)), 0);
    /* any printable UTF-8, up to the bound */
    assert_int_equal(
        check_log_with(&status, "line", "\"r\u00e9sum\u00e9: 45%, 812.3 MiB\"", msg, sizeof(msg)),
        0);
    /* "xxx...x": exactly RV_BACKUPS_LOG_LINE_MAX bytes */
    big[0] = '"';
    memset(big + 1, 'x', RV_BACKUPS_LOG_LINE_MAX);
    big[RV_BACKUPS_LOG_LINE_MAX + 1] = '"';
    big[RV_BACKUPS_LOG_LINE_MAX + 2] = '\0';
    assert_int_equal(check_log_with(&status, "line", big, msg, sizeof(msg)), 0);
    for (const char *lv = "debug\0info\0warn\0error\0"; *lv != '\0'; lv += strlen(lv) + 1) {
        char v[16];
        snprintf(v, sizeof(v), "\"%s\"", lv);
        assert_int_equal(check_log_with(&status, "level", v, msg, sizeof(msg)), 0);
    }

    expect_log_refused("level", "\"notice\"",
                       "logs[0]: field 'level' must be one of debug, info, warn, error");
    expect_log_refused("level", "3", "logs[0]: field 'level' must be a string");
    expect_log_refused("at", "\"now\"",
                       "logs[0]: field 'at' must be an RFC 3339 time such as "
                       "2026-11-21T08:05:01.000Z");
    expect_log_refused("line", "\"two\\nlines\"",
                       "logs[0]: field 'line' must be at most 1024 printable bytes");
    expect_log_refused("line", "\"csi \\u009b2J\"",
                       "logs[0]: field 'line' must not hold control characters");
    expect_log_refused("line", "null", "logs[0]: field 'line' must be a string");
    expect_log_refused("backup_id", "\"../x\"",
                       "logs[0]: backup_id is letters, digits, '.', '_' and '-'");
    expect_log_refused("node", "\"billing-1\"", "logs[0]: unknown field 'node'");
    big[RV_BACKUPS_LOG_LINE_MAX + 1] = 'x';
    big[RV_BACKUPS_LOG_LINE_MAX + 2] = '"';
    big[RV_BACKUPS_LOG_LINE_MAX + 3] = '\0';
    expect_log_refused("line", big, "logs[0]: field 'line' must be at most 1024 printable bytes");

    /* the envelope: an array, bounded */
    struct rv_error err = {0};
    json_t *body = json_loads("{\"records\":[],\"logs\":{}}", 0, NULL);
    assert_int_equal(agentapi_backups_check(&status, body, "payments/billing", &err), RV_EINVAL);
    assert_string_equal(err.msg, "backups: field 'logs' must be an array of at most 1000 lines");
    json_decref(body);
    body = json_pack("{s:[],s:[]}", "records", "logs");
    for (int i = 0; i <= RV_BACKUPS_POST_LOGS_MAX; i++)
        json_array_append_new(json_object_get(body, "logs"),
                              json_pack("{s:s,s:s,s:s,s:s}", "backup_id", "b1", "at",
                                        "2026-11-21T08:05:02Z", "level", "info", "line", "x"));
    assert_int_equal(agentapi_backups_check(&status, body, "payments/billing", &err), RV_EINVAL);
    json_array_remove(json_object_get(body, "logs"), 0);
    assert_int_equal(agentapi_backups_check(&status, body, "payments/billing", &err), 0);
    json_decref(body);
}

/* --- times --- */

static void test_time_parse(void **state)
{
    static const struct {
        const char *text;
        bool zone_optional;
        int rc;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", false, 0, 0},
        {"2026-11-20T10:00:00Z", false, 0, 1795168800000},
        {"2026-11-20T10:00:00.5Z", false, 0, 1795168800500},
        {"2026-11-20T10:00:00.123456Z", false, 0, 1795168800123},
        {"2026-11-20T12:00:00+02:00", false, 0, 1795168800000},
        {"2026-11-20T05:30:00-04:30", false, 0, 1795168800000},
        {"2026-11-20T10:00:00", true, 0, 1795168800000},
        {"2026-11-20T10:00:00", false, RV_EINVAL, 0},
        {"2026-02-29T10:00:00Z", false, RV_EINVAL, 0},
        {"2028-02-29T00:00:00Z", false, 0, 1835395200000},
        {"2026-13-01T00:00:00Z", false, RV_EINVAL, 0},
        {"2026-11-20 10:00:00Z", false, RV_EINVAL, 0},
        {"2026-11-20T10:00:00.Z", false, RV_EINVAL, 0},
        {"2026-11-20T10:00:00Zjunk", false, RV_EINVAL, 0},
        {"2026-11-20T10:00:00+2:00", false, RV_EINVAL, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -1;
        int rc = agentapi_time_parse(&ms, cases[i].text, cases[i].zone_optional);
        if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms))
            fail_msg("'%s': wanted rc %d ms %lld, got rc %d ms %lld", cases[i].text, cases[i].rc,
                     (long long)cases[i].ms, rc, (long long)ms);
    }
    char out[32];
    backups_time_format(out, 1795168800000, true);
    assert_string_equal(out, "2026-11-20T10:00:00Z");
    backups_time_format(out, 1795168800000, false);
    assert_string_equal(out, "2026-11-20T10:00:00.000Z");
    backups_time_format(out, 1795168800042, true);
    assert_string_equal(out, "2026-11-20T10:00:00.042Z");
}

/* --- the restore decision --- */

static void test_pick_table(void **state)
{
    /* fulls of payments/billing-old finished at 11:02:13, 13:00 and 15:00 */
    int64_t t0 = 1795168800000; /* 2026-11-20T10:00:00Z */
    const struct backups_brief full[] = {
        {"b-1300", t0 + 3 * 3600000},
        {"b-1102", t0 + 3600000 + 2 * 60000 + 13000},
        {"b-1500", t0 + 5 * 3600000},
    };
    static const char wal_seg[] = "000000010000000000000009";
    const int64_t wal_at = t0 + 6 * 3600000; /* 16:00 */
    static const struct {
        const char *backup_id, *pit;
        bool nfull_zero, named_found, no_wal;
        int rc;
        const char *want_id, *want_pit, *want_msg;
    } cases[] = {
        /* newest when nothing is said */
        {NULL, NULL, false, false, false, 0, "b-1500", "", NULL},
        /* a named backup, known */
        {"b-1102", NULL, false, true, false, 0, "b-1102", "", NULL},
        {"b-9999", NULL, false, false, false, RV_EINVAL, NULL, NULL,
         "backup 'b-9999' of payments/billing-old is not known to reeve as succeeded; 'reeve "
         "backups list payments/billing-old' shows its backups"},
        /* the newest full backup that ended at or before the point in time */
        {NULL, "2026-11-20T14:00:00Z", false, false, false, 0, "b-1300", "2026-11-20T14:00:00.000Z",
         NULL},
        {NULL, "2026-11-20T13:00:00Z", false, false, false, 0, "b-1300", "2026-11-20T13:00:00.000Z",
         NULL},
        {NULL, "2026-11-20T12:59:59.999Z", false, false, false, 0, "b-1102",
         "2026-11-20T12:59:59.999Z", NULL},
        /* an offset is normalized to UTC; no offset means UTC */
        {NULL, "2026-11-20T16:00:00+01:00", false, false, false, 0, "b-1500",
         "2026-11-20T15:00:00.000Z", NULL},
        {NULL, "2026-11-20T11:30:00", false, false, false, 0, "b-1102", "2026-11-20T11:30:00.000Z",
         NULL},
        /* before the first backup finished */
        {NULL, "2026-11-20T10:00:00Z", false, false, false, RV_EINVAL, NULL, NULL,
         "point in time 2026-11-20T10:00:00Z is before the first backup of "
         "payments/billing-old finished (2026-11-20T11:02:13Z); the earliest restorable time "
         "is 2026-11-20T11:02:13Z"},
        /* the exact end of a backup is restorable */
        {NULL, "2026-11-20T11:02:13Z", false, false, false, 0, "b-1102", "2026-11-20T11:02:13.000Z",
         NULL},
        /* the last archived WAL bounds the range; its own time is inside */
        {NULL, "2026-11-20T16:00:00Z", false, false, false, 0, "b-1500", "2026-11-20T16:00:00.000Z",
         NULL},
        {NULL, "2026-11-20T16:00:00.001Z", false, false, false, RV_ESTALE, NULL, NULL,
         "point in time 2026-11-20T16:00:00.001Z is after the last archived WAL of "
         "payments/billing-old (segment 000000010000000000000009 archived at "
         "2026-11-20T16:00:00Z); reeve cannot restore changes that were not archived"},
        /* without archived WAL only a backup's own end can be reached */
        {NULL, "2026-11-20T14:00:00Z", false, false, true, RV_EINVAL, NULL, NULL,
         "point in time 2026-11-20T14:00:00Z needs the archived WAL of payments/billing-old, "
         "and none is known (is pitr.enabled set on it?); restore a whole backup with backupId "
         "instead"},
        {NULL, "2026-11-20T13:00:00Z", false, false, true, 0, "b-1300", "2026-11-20T13:00:00.000Z",
         NULL},
        /* nothing to restore */
        {NULL, NULL, true, false, false, RV_EINVAL, NULL, NULL,
         "no succeeded backup of payments/billing-old is known; take one first (its agents "
         "back up on schedule), or bootstrap with initdb"},
        {NULL, "2026-11-20T14:00:00Z", true, false, false, RV_EINVAL, NULL, NULL,
         "no succeeded backup of payments/billing-old is known; take one first (its agents "
         "back up on schedule), or bootstrap with initdb"},
        {NULL, "20 Nov 2026", false, false, false, RV_EINVAL, NULL, NULL,
         "pointInTime '20 Nov 2026' is not an RFC 3339 time such as 2026-11-20T10:00:00Z"},
        {"b-1102", "2026-11-20T14:00:00Z", false, true, false, RV_EINVAL, NULL, NULL,
         "bootstrap.fromBackup names both backupId and pointInTime; give one"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct backups_pick_in in = {
            .source = "payments/billing-old",
            .backup_id = cases[i].backup_id,
            .point_in_time = cases[i].pit,
            .full = full,
            .nfull = cases[i].nfull_zero ? 0 : 3,
            .named_found = cases[i].named_found,
            .wal_segment = cases[i].no_wal ? NULL : wal_seg,
            .wal_at_ms = wal_at,
        };
        struct backups_restore out;
        struct rv_error err = {0};
        int rc = backups_pick(&out, &in, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu: wanted rc %d, got %d (%s)", i, cases[i].rc, rc, err.msg);
        if (rc == 0) {
            if (strcmp(out.backup_id, cases[i].want_id) != 0 ||
                strcmp(out.point_in_time, cases[i].want_pit) != 0)
                fail_msg("case %zu: wanted %s at '%s', got %s at '%s'", i, cases[i].want_id,
                         cases[i].want_pit, out.backup_id, out.point_in_time);
        } else if (strcmp(err.msg, cases[i].want_msg) != 0) {
            fail_msg("case %zu: wanted\n  %s\ngot\n  %s", i, cases[i].want_msg, err.msg);
        }
    }
}

/* --- backups.c on a database --- */

struct fx {
    char dir[64];
    char dest[96];
    char db_path[128];
    struct config cfg;
    struct spec_set set;
    struct backups *b;
};

static const char *source_spec = "apiVersion: reeve/v1\n"
                                 "kind: DatabaseCluster\n"
                                 "metadata:\n"
                                 "  name: billing-old\n"
                                 "  namespace: payments\n"
                                 "spec:\n"
                                 "  engine: postgresql\n"
                                 "  version: \"16\"\n"
                                 "  provider: local\n"
                                 "  backup:\n"
                                 "    schedule:\n"
                                 "      full: \"0 2 * * *\"\n"
                                 "    retention:\n"
                                 "      days: 14\n"
                                 "    destination:\n"
                                 "      local:\n"
                                 "        path: %s\n"
                                 "    encryption:\n"
                                 "      keyRef: backup-key\n"
                                 "  pitr:\n"
                                 "    enabled: true\n";

static const char *target_spec = "apiVersion: reeve/v1\n"
                                 "kind: DatabaseCluster\n"
                                 "metadata:\n"
                                 "  name: billing\n"
                                 "  namespace: payments\n"
                                 "spec:\n"
                                 "  engine: postgresql\n"
                                 "  version: \"16\"\n"
                                 "  provider: local\n"
                                 "  bootstrap:\n"
                                 "    fromBackup:\n"
                                 "      cluster: payments/billing-old\n"
                                 "      pointInTime: \"2026-11-20T14:00:00+01:00\"\n";

static int db_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rv_error err = {0};
    struct diag_list d;
    struct db *db = NULL;
    char spec[2048];
    snprintf(f->dir, sizeof(f->dir), "/tmp/rv-backups-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->dest, sizeof(f->dest), "%s/dest", f->dir);
    assert_int_equal(mkdir(f->dest, 0700), 0);
    snprintf(f->db_path, sizeof(f->db_path), "%s/state.db", f->dir);
    assert_int_equal(store_open(&db, f->db_path, NULL, &err), 0);
    db_free(db);
    setenv("RV_T_KEY", KEY_HEX, 1);
    assert_int_equal(parse_cfg(&f->cfg, &d,
                               "backupKeys:\n"
                               "  backup-key:\n"
                               "    secretRef: env:RV_T_KEY\n"),
                     0);
    diag_list_release(&d);
    spec_set_init(&f->set);
    snprintf(spec, sizeof(spec), source_spec, f->dest);
    tu_add_cluster(&f->set, "clusters/payments/billing-old.yaml", spec);
    tu_add_cluster(&f->set, "clusters/payments/billing.yaml", target_spec);
    assert_int_equal(backups_open(&f->b, f->db_path, &f->cfg, &err), 0);
    assert_int_equal(backups_set_specs(f->b, &f->set, &err), 0);
    *state = f;
    return 0;
}

static int db_teardown(void **state)
{
    struct fx *f = *state;
    backups_free(f->b);
    spec_set_release(&f->set);
    config_release(&f->cfg);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

/* A record of payments/billing-old as an agent sends it. */
static json_t *record(const char *id, const char *status, const char *started, const char *ended,
                      const char *schedule)
{
    json_t *r = json_loads(good_record, 0, NULL);
    char name[160];
    snprintf(name, sizeof(name), "base/%s/data", id);
    json_object_set_new(r, "backup_id", json_string(id));
    json_object_set_new(r, "set_id", json_string(id));
    json_object_set_new(r, "cluster", json_string("payments/billing-old"));
    json_object_set_new(r, "status", json_string(status));
    json_object_set_new(r, "started_at", json_string(started));
    json_object_set_new(r, "ended_at", ended ? json_string(ended) : json_null());
    json_object_set_new(r, "schedule", json_string(schedule));
    json_object_set_new(r, "name", json_string(name));
    if (strcmp(status, "failed") == 0)
        json_object_set_new(r, "error", json_string("pg_basebackup exited with status 1"));
    return r;
}

static void ingest(struct fx *f, json_t *records, const char *wal, size_t want)
{
    struct rv_error err = {0};
    size_t n = 0;
    int status = 0;
    json_t *body = json_pack("{s:o}", "records", records);
    if (wal != NULL)
        json_object_set_new(body, "wal", json_loads(wal, 0, NULL));
    assert_int_equal(agentapi_backups_check(&status, body, "payments/billing-old", &err), 0);
    assert_int_equal(backups_ingest(&n, f->b, "payments/billing-old", body, &err), 0);
    assert_int_equal(n, want);
    json_decref(body);
}

static json_t *agent_config(struct fx *f, const char *cluster, int want_rc, bool primary, char *msg,
                            size_t msg_size);

static bool say_primary(const char *cluster, void *ud)
{
    (void)cluster;
    return *(bool *)ud;
}

static json_t *agent_config(struct fx *f, const char *cluster, int want_rc, bool primary, char *msg,
                            size_t msg_size)
{
    char *text = NULL;
    struct rv_error err = {0};
    int rc = backups_agent_config(&text, f->b, cluster, say_primary, &primary, &err);
    if (rc != want_rc)
        fail_msg("config of %s: wanted rc %d, got %d (%s)", cluster, want_rc, rc, err.msg);
    if (msg != NULL)
        snprintf(msg, msg_size, "%s", err.msg);
    json_t *j = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j;
}

static void test_agent_config_and_restore(void **state)
{
    struct fx *f = *state;
    char msg[RV_ERROR_MSG_MAX];

    /* the source: its policy with the key, no requests */
    json_t *j = agent_config(f, "payments/billing-old", 0, false, NULL, 0);
    json_t *bk = json_object_get(j, "backup");
    assert_string_equal(json_string_value(json_object_get(j, "cluster")), "payments/billing-old");
    assert_string_equal(json_string_value(json_object_get(j, "engine")), "postgresql");
    assert_int_equal(strlen(json_string_value(json_object_get(j, "digest"))), 64);
    assert_string_equal(json_string_value(json_object_get(bk, "full_cron")), "0 2 * * *");
    assert_int_equal(json_integer_value(json_object_get(bk, "retention_days")), 14);
    assert_true(json_is_true(json_object_get(bk, "pitr")));
    assert_string_equal(json_string_value(json_object_get(bk, "encryption_key")), KEY_LOWER);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(bk, "destination"), "kind")), "local");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(bk, "destination"), "path")), f->dest);
    assert_true(json_is_null(json_object_get(j, "restore")));
    assert_int_equal(json_array_size(json_object_get(j, "requests")), 0);
    json_decref(j);

    /* the target cannot be restored before its source has a backup */
    j = agent_config(f, "payments/billing", RV_EINVAL, false, msg, sizeof(msg));
    assert_null(j);
    assert_string_equal(msg, "no succeeded backup of payments/billing-old is known; take one "
                             "first (its agents back up on schedule), or bootstrap with initdb");
    j = agent_config(f, "payments/unknown", RV_ENOTFOUND, false, NULL, 0);
    assert_null(j);

    /* records arrive: two full backups, a failed one, the archived WAL */
    ingest(f,
           json_pack("[o, o, o]",
                     record("20261120T090000Z-00000001", "succeeded", "2026-11-20T09:00:00.000Z",
                            "2026-11-20T09:10:00.000Z", "scheduled"),
                     record("20261120T120000Z-00000002", "succeeded", "2026-11-20T12:00:00.000Z",
                            "2026-11-20T12:20:00.000Z", "scheduled"),
                     record("20261120T140000Z-00000003", "failed", "2026-11-20T14:00:00.000Z",
                            "2026-11-20T14:01:00.000Z", "scheduled")),
           "{\"last_segment\":\"000000010000000000000010\","
           "\"last_archived_at\":\"2026-11-20T13:30:00.000Z\"}",
           3);
    /* 14:00+01:00 is 13:00Z: the 12:20 backup, replayed to 13:00 */
    j = agent_config(f, "payments/billing", 0, false, NULL, 0);
    json_t *rs = json_object_get(j, "restore");
    assert_true(json_is_null(json_object_get(j, "backup")));
    assert_string_equal(json_string_value(json_object_get(rs, "source_cluster")),
                        "payments/billing-old");
    assert_string_equal(json_string_value(json_object_get(rs, "backup_id")),
                        "20261120T120000Z-00000002");
    assert_string_equal(json_string_value(json_object_get(rs, "point_in_time")),
                        "2026-11-20T13:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(rs, "encryption_key")), KEY_LOWER);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rs, "destination"), "path")), f->dest);
    json_decref(j);

    /* a newer backup before the point in time arrives meanwhile: the
     * decision made stays (the agent may be restoring already) */
    ingest(f,
           json_pack("[o]",
                     record("20261120T124000Z-00000004", "succeeded", "2026-11-20T12:40:00.000Z",
                            "2026-11-20T12:50:00.000Z", "scheduled")),
           NULL, 1);
    j = agent_config(f, "payments/billing", 0, false, NULL, 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "restore"), "backup_id")),
        "20261120T120000Z-00000002");
    json_decref(j);

    /* once a primary reports, the restore is never served again */
    j = agent_config(f, "payments/billing", 0, true, NULL, 0);
    assert_true(json_is_null(json_object_get(j, "restore")));
    json_decref(j);
    j = agent_config(f, "payments/billing", 0, false, NULL, 0);
    assert_true(json_is_null(json_object_get(j, "restore")));
    json_decref(j);

    /* the list: newest first, of one cluster or all */
    json_t *list = NULL;
    struct rv_error err = {0};
    assert_int_equal(backups_list(&list, f->b, "payments/billing-old", &err), 0);
    assert_int_equal(json_array_size(list), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "backup_id")),
                        "20261120T140000Z-00000003");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "backup_id")),
                        "20261120T124000Z-00000004");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 3), "backup_id")),
                        "20261120T090000Z-00000001");
    json_decref(list);
    assert_int_equal(backups_list(&list, f->b, "payments/billing", &err), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

static void test_requests(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    json_t *rec = NULL;
    assert_int_equal(backups_request(f->b, "final-abc", "payments/billing-old", &err), 0);
    assert_int_equal(backups_request(f->b, "final-abc", "payments/billing-old", &err), 0);
    json_t *j = agent_config(f, "payments/billing-old", 0, false, NULL, 0);
    json_t *reqs = json_object_get(j, "requests");
    assert_int_equal(json_array_size(reqs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, 0), "id")),
                        "final-abc");
    assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, 0), "kind")),
                        "full");
    json_decref(j);
    assert_int_equal(backups_request_record(&rec, f->b, "final-abc", &err), 0);
    assert_null(rec);

    /* running: still asked for; succeeded: done */
    ingest(f,
           json_pack("[o]", record("20261121T100000Z-0000000a", "running",
                                   "2026-11-21T10:00:00.000Z", NULL, "request:final-abc")),
           NULL, 1);
    j = agent_config(f, "payments/billing-old", 0, false, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(j, "requests")), 1);
    json_decref(j);
    ingest(f,
           json_pack("[o]",
                     record("20261121T100000Z-0000000a", "succeeded", "2026-11-21T10:00:00.000Z",
                            "2026-11-21T10:05:00.000Z", "request:final-abc")),
           NULL, 1);
    j = agent_config(f, "payments/billing-old", 0, false, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(j, "requests")), 0);
    json_decref(j);
    assert_int_equal(backups_request_record(&rec, f->b, "final-abc", &err), 1);
    assert_string_equal(json_string_value(json_object_get(rec, "backup_id")),
                        "20261121T100000Z-0000000a");
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "succeeded");
    json_decref(rec);

    /* an id is one cluster's: an agent of another cluster cannot replace it */
    json_t *other = record("20261121T100000Z-0000000a", "failed", "2026-11-21T10:00:00.000Z",
                           "2026-11-21T10:05:00.000Z", "scheduled");
    json_object_set_new(other, "cluster", json_string("payments/billing"));
    json_t *body = json_pack("{s:[o]}", "records", other);
    size_t n = 9;
    assert_int_equal(backups_ingest(&n, f->b, "payments/billing", body, &err), 0);
    assert_int_equal(n, 0);
    json_decref(body);
    assert_int_equal(backups_request_record(&rec, f->b, "final-abc", &err), 1);
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "succeeded");
    json_decref(rec);

    /* the spec is deleted: its agents still get the configuration, so the
     * final backup can run */
    struct spec_set none;
    spec_set_init(&none);
    assert_int_equal(backups_set_specs(f->b, &none, &err), 0);
    assert_int_equal(backups_request(f->b, "final-def", "payments/billing-old", &err), 0);
    j = agent_config(f, "payments/billing-old", 0, false, NULL, 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "backup"), "encryption_key")),
        KEY_LOWER);
    assert_int_equal(json_array_size(json_object_get(j, "requests")), 1);
    json_decref(j);
    spec_set_release(&none);
}

/* A log line as an agent sends it. */
static json_t *log_line(const char *id, const char *at, const char *level, const char *line)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "backup_id", id, "at", at, "level", level, "line", line);
}

/* Ingest {records, logs} for cluster after the agent API's checks; the
 * numbers stored. */
static void ingest_logs(struct fx *f, const char *cluster, json_t *records, json_t *logs,
                        size_t want_records, size_t want_logs)
{
    struct rv_error err = {0};
    size_t n = 99, nl = 99;
    int status = 0;
    json_t *body = json_pack("{s:o,s:o}", "records", records, "logs", logs);
    if (agentapi_backups_check(&status, body, cluster, &err) != 0)
        fail_msg("check: %s", err.msg);
    if (backups_ingest_logs(&n, &nl, f->b, cluster, body, &err) != 0)
        fail_msg("ingest: %s", err.msg);
    if (n != want_records || nl != want_logs)
        fail_msg("wanted %zu records and %zu lines stored, got %zu and %zu", want_records,
                 want_logs, n, nl);
    json_decref(body);
}

static json_t *show(struct fx *f, const char *id)
{
    struct rv_error err = {0};
    json_t *j = NULL;
    if (backups_show(&j, f->b, id, &err) != 0)
        fail_msg("show %s: %s", id, err.msg);
    return j;
}

static void test_logs_storage(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    const char *id = "20261121T100000Z-0000000b";
    json_t *j = NULL;

    /* a record and its lines in one request; a line of an unknown backup is
     * not stored */
    ingest_logs(
        f, "payments/billing-old",
        json_pack("[o]", record(id, "running", "2026-11-21T10:00:00.000Z", NULL, "scheduled")),
        json_pack(
            "[o,o,o]",
            log_line(id, "2026-11-21T10:00:00.100Z", "info", "started (pg_basebackup, scheduled)"),
            log_line("20261121T090000Z-00000000", "2026-11-21T09:00:00.100Z", "info",
                     "not a known backup"),
            log_line(id, "2026-11-21T10:00:02.100Z", "info",
                     "progress: 45%, 812.3 MiB read, 97.1 MiB stored")),
        1, 2);
    /* later lines of the stored record come alone; one sent again (an
     * answer lost) is stored once */
    ingest_logs(f, "payments/billing-old", json_array(),
                json_pack("[o,o]",
                          log_line(id, "2026-11-21T10:00:02.100Z", "info",
                                   "progress: 45%, 812.3 MiB read, 97.1 MiB stored"),
                          log_line(id, "2026-11-21T10:05:00.000Z", "error",
                                   "pg_basebackup: could not connect")),
                0, 1);
    /* an agent of another cluster cannot write into this backup's log */
    ingest_logs(f, "payments/billing", json_array(),
                json_pack("[o]", log_line(id, "2026-11-21T10:06:00.000Z", "warn", "forged")), 0, 0);

    j = show(f, id);
    json_t *rec = json_object_get(j, "record");
    json_t *logs = json_object_get(j, "logs");
    assert_string_equal(json_string_value(json_object_get(rec, "backup_id")), id);
    assert_string_equal(json_string_value(json_object_get(rec, "cluster")), "payments/billing-old");
    assert_int_equal(json_array_size(logs), 3);
    static const char *const want[][3] = {
        {"2026-11-21T10:00:00.100Z", "info", "started (pg_basebackup, scheduled)"},
        {"2026-11-21T10:00:02.100Z", "info", "progress: 45%, 812.3 MiB read, 97.1 MiB stored"},
        {"2026-11-21T10:05:00.000Z", "error", "pg_basebackup: could not connect"},
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *l = json_array_get(logs, i);
        assert_string_equal(json_string_value(json_object_get(l, "at")), want[i][0]);
        assert_string_equal(json_string_value(json_object_get(l, "level")), want[i][1]);
        assert_string_equal(json_string_value(json_object_get(l, "line")), want[i][2]);
        assert_int_equal(json_object_size(l), 3);
    }
    json_decref(j);

    /* bounded per backup: the newest lines stay */
    for (int round = 0; round < 2; round++) {
        json_t *many = json_array();
        for (int i = 0; i < RV_BACKUPS_LOG_LINES_MAX / 2 + 2; i++) {
            char at[32], line[32];
            int k = round * (RV_BACKUPS_LOG_LINES_MAX / 2 + 2) + i;
            snprintf(at, sizeof(at), "2026-11-21T11:%02d:%02d.%03dZ", k / 600, (k / 10) % 60,
                     (k % 10) * 100);
            snprintf(line, sizeof(line), "line %d", k);
            json_array_append_new(many, log_line(id, at, "debug", line));
        }
        ingest_logs(f, "payments/billing-old", json_array(), many, 0,
                    RV_BACKUPS_LOG_LINES_MAX / 2 + 2);
    }
    j = show(f, id);
    logs = json_object_get(j, "logs");
    assert_int_equal(json_array_size(logs), RV_BACKUPS_LOG_LINES_MAX);
    char last[32];
    snprintf(last, sizeof(last), "line %d", RV_BACKUPS_LOG_LINES_MAX + 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(logs, RV_BACKUPS_LOG_LINES_MAX - 1), "line")),
                        last);
    assert_string_equal(json_string_value(json_object_get(json_array_get(logs, 0), "line")),
                        "line 4");
    json_decref(j);

    /* a record without lines; an unknown id */
    ingest(f,
           json_pack("[o]",
                     record("20261121T120000Z-0000000c", "succeeded", "2026-11-21T12:00:00.000Z",
                            "2026-11-21T12:01:00.000Z", "scheduled")),
           NULL, 1);
    j = show(f, "20261121T120000Z-0000000c");
    assert_int_equal(json_array_size(json_object_get(j, "logs")), 0);
    json_decref(j);
    assert_int_equal(backups_show(&j, f->b, "20261121T999999Z-nope", &err), RV_ENOTFOUND);
    assert_null(j);
    assert_string_equal(err.msg, "no backup '20261121T999999Z-nope' is known to reeve; 'reeve "
                                 "backups list' shows the known ones");
}

/* Write an encoded object like an agent would. */
static void put_object(struct fx *f, const char *key, const void *data, size_t len,
                       struct bstream_result *res)
{
    struct objstore *st = NULL;
    struct rv_sink *down = NULL, *enc = NULL;
    struct rv_error err = {0};
    uint8_t k[BSTREAM_KEY_LEN];
    assert_int_equal(bstream_key_parse(k, KEY_LOWER, &err), 0);
    struct bstream_opts o = {.key = k};
    assert_int_equal(objstore_local_new(&st, f->dest, &err), 0);
    assert_int_equal(st->put(st, key, &down, &err), 0);
    assert_int_equal(bstream_encoder_new(&enc, down, &o, res, &err), 0);
    assert_int_equal(rv_sink_write(enc, data, len, &err), 0);
    assert_int_equal(rv_sink_finish(enc, &err), 0);
    st->free(st);
}

static void test_verify(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    struct bstream_result res;
    char data[100000], path[256];
    json_t *out = NULL;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7 % 251);
    put_object(f, "base/20261121T110000Z-0000000b/data", data, sizeof(data), &res);
    json_t *r = record("20261121T110000Z-0000000b", "succeeded", "2026-11-21T11:00:00.000Z",
                       "2026-11-21T11:01:00.000Z", "manual");
    json_object_set_new(r, "checksum", json_string(res.sha256));
    json_object_set_new(r, "size", json_integer((json_int_t)res.stored_bytes));
    ingest(f, json_pack("[o]", r), NULL, 1);

    bool decoded = false;
    assert_int_equal(backups_verify(&out, &decoded, f->b, "20261121T110000Z-0000000b", &err), 0);
    json_t *v = json_object_get(out, "verify");
    assert_string_equal(json_string_value(json_object_get(v, "status")), "ok");
    assert_true(decoded); /* reeve.yaml has the key: every chunk was opened */
    assert_string_equal(json_string_value(json_object_get(v, "kind")), "checksum");
    assert_true(json_is_null(json_object_get(v, "error")));
    json_decref(out);

    /* flip one stored byte: the check fails and says so in the record */
    snprintf(path, sizeof(path), "%s/base/20261121T110000Z-0000000b/data", f->dest);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)res.stored_bytes / 2, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)res.stored_bytes / 2, SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
    assert_int_equal(backups_verify(&out, NULL, f->b, "20261121T110000Z-0000000b", &err), 0);
    v = json_object_get(out, "verify");
    assert_string_equal(json_string_value(json_object_get(v, "status")), "failed");
    assert_non_null(json_string_value(json_object_get(v, "error")));
    json_decref(out);

    /* the verdict is kept when the agent sends the record again without one */
    ingest(
        f,
        json_pack("[o]", record("20261121T110000Z-0000000b", "succeeded",
                                "2026-11-21T11:00:00.000Z", "2026-11-21T11:01:00.000Z", "manual")),
        NULL, 1);
    json_t *list = NULL;
    assert_int_equal(backups_list(&list, f->b, NULL, &err), 0);
    v = json_object_get(json_array_get(list, 0), "verify");
    assert_string_equal(json_string_value(json_object_get(v, "status")), "failed");
    json_decref(list);

    /* a missing object, an unknown id, an unfinished backup */
    ingest(
        f,
        json_pack("[o]", record("20261121T120000Z-0000000c", "succeeded",
                                "2026-11-21T12:00:00.000Z", "2026-11-21T12:01:00.000Z", "manual")),
        NULL, 1);
    assert_int_equal(backups_verify(&out, NULL, f->b, "20261121T120000Z-0000000c", &err), 0);
    v = json_object_get(out, "verify");
    assert_string_equal(json_string_value(json_object_get(v, "error")),
                        "object 'base/20261121T120000Z-0000000c/data' is missing from the "
                        "destination");
    json_decref(out);
    assert_int_equal(backups_verify(&out, NULL, f->b, "nope", &err), RV_ENOTFOUND);
    ingest(f,
           json_pack("[o]", record("20261121T130000Z-0000000d", "running",
                                   "2026-11-21T13:00:00.000Z", NULL, "manual")),
           NULL, 1);
    assert_int_equal(backups_verify(&out, NULL, f->b, "20261121T130000Z-0000000d", &err),
                     RV_ECONFLICT);
}

static void test_check_refs(void **state)
{
    struct fx *f = *state;
    struct spec_set set;
    struct diag_list d;
    struct config empty;
    struct diag_list cd;
    (void)f;
    spec_set_init(&set);
    diag_list_init(&d);
    tu_add_cluster(&set, "clusters/payments/billing.yaml",
                   "apiVersion: reeve/v1\n"
                   "kind: DatabaseCluster\n"
                   "metadata:\n"
                   "  name: billing\n"
                   "  namespace: payments\n"
                   "spec:\n"
                   "  engine: postgresql\n"
                   "  version: \"16\"\n"
                   "  provider: local\n"
                   "  backup:\n"
                   "    schedule:\n"
                   "      full: \"0 2 * * *\"\n"
                   "    destination:\n"
                   "      s3:\n"
                   "        bucket: backups\n"
                   "        endpoint: http://127.0.0.1:9000\n"
                   "        credentialsRef: s3-main\n"
                   "    encryption:\n"
                   "      keyRef: backup-key\n");
    assert_int_equal(parse_cfg(&empty, &cd, ""), 0);
    assert_int_equal(backups_check_refs(&empty, &set, &d), 0);
    char *text = tu_printed(&d);
    assert_string_equal(
        text, "clusters/payments/billing.yaml:10:3: error: spec.backup.destination.s3."
              "credentialsRef: cluster payments/billing names credentials 's3-main' in "
              "backup.destination.s3.credentialsRef, and reeve.yaml has no such entry; add it "
              "under 'credentials:' in reeve.yaml (docs/configuration.md), or name one that is "
              "there\n"
              "clusters/payments/billing.yaml:18:5: error: spec.backup.encryption.keyRef: "
              "cluster payments/billing names backup key 'backup-key' in "
              "backup.encryption.keyRef, and reeve.yaml has no such entry; add it under "
              "'backupKeys:' in reeve.yaml (docs/configuration.md), or name one that is there\n");
    free(text);
    diag_list_release(&d);
    diag_list_init(&d);
    assert_int_equal(backups_check_refs(&f->cfg, &f->set, &d), 0);
    assert_int_equal(d.errors, 0);
    diag_list_release(&d);
    diag_list_release(&cd);
    config_release(&empty);
    spec_set_release(&set);
}

/* --- the runners: final_backup, seed_from_backup --- */

#define FINAL_KEY "5d0c2b8e4f6a7c1d9e3b2a4f6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f70819"

struct run_arg {
    struct runners *r;
    struct journal_action a;
    int64_t deadline;
    char *out;
    struct rv_error err;
    int rc;
};

static void *run_thread(void *p)
{
    struct run_arg *ra = p;
    struct executor_runner er;
    runners_executor_runner(&er, ra->r);
    ra->rc = er.run(&ra->out, &ra->a, ra->a.idempotency_key, ra->deadline, &ra->err, er.ud);
    return NULL;
}

static struct runners *new_runners(struct fx *f)
{
    struct runners *r = NULL;
    struct rv_error err = {0};
    struct runners_opts o = {.backups = f->b, .poll_ms = 20};
    assert_int_equal(runners_new(&r, &o, &err), 0);
    assert_int_equal(runners_set_desired(r, &f->set, &err), 0);
    return r;
}

static void final_action(struct journal_action *a)
{
    memset(a, 0, sizeof(*a));
    a->id = (char *)"payments/billing-old/final_backup";
    a->kind = (char *)"final_backup";
    a->cluster = (char *)"payments/billing-old";
    a->node = (char *)"";
    a->provider = (char *)"";
    a->idempotency_key = (char *)FINAL_KEY;
}

/* Wait until the agents are asked for request id (the configuration lists
 * it), then answer with a record of that request. */
static void answer_request(struct fx *f, const char *backup_id, const char *status)
{
    for (int i = 0; i < 500; i++) {
        json_t *j = agent_config(f, "payments/billing-old", 0, false, NULL, 0);
        size_t n = json_array_size(json_object_get(j, "requests"));
        const char *id = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "requests"), 0), "id"));
        if (n == 1)
            assert_string_equal(id, "final-" FINAL_KEY);
        json_decref(j);
        if (n == 1)
            break;
        usleep(10000);
    }
    ingest(f,
           json_pack("[o]", record(backup_id, status, "2026-11-21T10:00:00.000Z",
                                   "2026-11-21T10:05:00.000Z", "request:final-" FINAL_KEY)),
           NULL, 1);
}

static void test_final_backup_runner(void **state)
{
    struct fx *f = *state;
    struct runners *r = new_runners(f);
    struct executor_runner er;
    struct rv_error err = {0};
    bool done = true;
    pthread_t th;
    runners_executor_runner(&er, r);

    /* nothing asked for yet: not done (crash recovery asks this first) */
    struct run_arg ra = {.r = r, .deadline = (int64_t)time(NULL) + 30};
    final_action(&ra.a);
    assert_int_equal(er.check(&done, &ra.a, FINAL_KEY, &err, er.ud), 0);
    assert_false(done);

    /* the run asks the agents and waits for the record */
    assert_int_equal(pthread_create(&th, NULL, run_thread, &ra), 0);
    answer_request(f, "20261121T100000Z-000000f1", "succeeded");
    pthread_join(th, NULL);
    if (ra.rc != 0)
        fail_msg("final_backup failed: %s", ra.err.msg);
    assert_string_equal(ra.out, "{\"result\":\"final backup taken\",\"backup_id\":"
                                "\"20261121T100000Z-000000f1\"}");
    free(ra.out);
    assert_int_equal(er.check(&done, &ra.a, FINAL_KEY, &err, er.ud), 0);
    assert_true(done);

    /* a retry after a crash is answered by the same record at once */
    ra.out = NULL;
    run_thread(&ra);
    assert_int_equal(ra.rc, 0);
    assert_non_null(strstr(ra.out, "20261121T100000Z-000000f1"));
    free(ra.out);

    /* the deadline passes without a record: a plain timeout */
    struct run_arg late = {.r = r, .deadline = (int64_t)time(NULL)};
    final_action(&late.a);
    late.a.idempotency_key = (char *)"0000";
    run_thread(&late);
    assert_int_equal(late.rc, RV_ETIMEOUT);
    assert_string_equal(late.err.msg,
                        "gave up at the action's deadline: no agent of payments/billing-old "
                        "reported the final backup (request final-0000); is a node of it "
                        "running?");
    runners_free(r);
}

static void test_final_backup_fails(void **state)
{
    struct fx *f = *state;
    struct runners *r = new_runners(f);
    pthread_t th;
    struct run_arg ra = {.r = r, .deadline = (int64_t)time(NULL) + 30};
    final_action(&ra.a);
    assert_int_equal(pthread_create(&th, NULL, run_thread, &ra), 0);
    answer_request(f, "20261121T100000Z-000000f2", "failed");
    pthread_join(th, NULL);
    assert_int_equal(ra.rc, RV_EINVAL);
    assert_false(ra.err.retryable);
    assert_string_equal(ra.err.msg,
                        "the final backup 20261121T100000Z-000000f2 failed on node "
                        "'billing-1': pg_basebackup exited with status 1; fix the cause and "
                        "apply again, or remove the backup section to delete without one");
    runners_free(r);
}

static void test_seed_runner(void **state)
{
    struct fx *f = *state;
    struct runners *r = new_runners(f);
    struct run_arg ra = {.r = r, .deadline = (int64_t)time(NULL) + 30};
    memset(&ra.a, 0, sizeof(ra.a));
    ra.a.id = (char *)"payments/billing/seed_from_backup/0";
    ra.a.kind = (char *)"seed_from_backup";
    ra.a.cluster = (char *)"payments/billing";
    ra.a.node = (char *)"billing-0";
    ra.a.provider = (char *)"";
    ra.a.idempotency_key = (char *)FINAL_KEY;
    /* no backup of the source: a permanent failure that says why */
    run_thread(&ra);
    assert_int_equal(ra.rc, RV_EINVAL);
    assert_false(ra.err.retryable);
    assert_string_equal(ra.err.msg, "no succeeded backup of payments/billing-old is known; take "
                                    "one first (its agents back up on schedule), or bootstrap "
                                    "with initdb");
    /* a backup, no archived WAL past it: the point in time is out of range */
    ingest(f,
           json_pack("[o]",
                     record("20261120T120000Z-00000002", "succeeded", "2026-11-20T12:00:00.000Z",
                            "2026-11-20T12:20:00.000Z", "scheduled")),
           "{\"last_segment\":\"000000010000000000000004\","
           "\"last_archived_at\":\"2026-11-20T12:30:00.000Z\"}",
           1);
    run_thread(&ra);
    assert_int_equal(ra.rc, RV_EINVAL);
    assert_string_equal(ra.err.msg,
                        "point in time 2026-11-20T13:00:00Z is after the last archived WAL of "
                        "payments/billing-old (segment 000000010000000000000004 archived at "
                        "2026-11-20T12:30:00Z); reeve cannot restore changes that were not "
                        "archived");
    /* in range: it waits for the restored primary like bootstrap_primary */
    ingest(f, json_array(),
           "{\"last_segment\":\"000000010000000000000009\","
           "\"last_archived_at\":\"2026-11-20T13:30:00.000Z\"}",
           0);
    struct obs_node n = {.namespace_ = (char *)"payments",
                         .cluster = (char *)"billing",
                         .node = (char *)"billing-0",
                         .engine = (char *)"postgresql",
                         .version = (char *)"16",
                         .position = (char *)"0/3000000",
                         .role = OBS_ROLE_PRIMARY,
                         .healthy = true,
                         .last_report = (int64_t)time(NULL),
                         .ttl_s = 30};
    struct rv_error err = {0};
    assert_int_equal(runners_node_report(r, &n, &err), 0);
    run_thread(&ra);
    if (ra.rc != 0)
        fail_msg("seed failed: %s", ra.err.msg);
    assert_string_equal(ra.out, "{\"result\":\"restored\",\"source\":\"payments/billing-old\","
                                "\"backup_id\":\"20261120T120000Z-00000002\","
                                "\"point_in_time\":\"2026-11-20T13:00:00.000Z\"}");
    free(ra.out);
    /* bootstrapped: the restore is not served any more */
    json_t *j = agent_config(f, "payments/billing", 0, false, NULL, 0);
    assert_true(json_is_null(json_object_get(j, "restore")));
    json_decref(j);
    runners_free(r);
}

/* --- verification against S3 (tests/peers/s3-server.js) --- */

#define S3_AK "AKIDT0800EXAMPLE"
#define S3_SK "t0800-secret-access-key"

/* Start the S3 test server; its port, or 0 when it cannot run here. */
static unsigned start_s3(pid_t *pid, const char *dir)
{
    const char *src = getenv("REEVE_SOURCE_DIR");
    char script[1024], probe[1024], ready[300], data[300];
    unsigned port = 0;
    *pid = -1;
    if (src == NULL || system("command -v node >/dev/null 2>&1") != 0)
        return 0;
    snprintf(probe, sizeof(probe), "%s/tests/peers/node_modules/@20minutes/s3rver/package.json",
             src);
    if (access(probe, R_OK) != 0)
        return 0;
    snprintf(script, sizeof(script), "%s/tests/peers/s3-server.js", src);
    snprintf(ready, sizeof(ready), "%s/s3.ready", dir);
    snprintf(data, sizeof(data), "%s/s3", dir);
    *pid = fork();
    if (*pid == 0) {
        dup2(2, 1);
        execlp("node", "node", script, "--port", "0", "--dir", data, "--access-key", S3_AK,
               "--secret", S3_SK, "--bucket", "backups", "--ready-file", ready, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300 && port == 0; i++) {
        FILE *f = fopen(ready, "r");
        if (f != NULL) {
            if (fscanf(f, "%u", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port == 0)
            usleep(50000);
    }
    return port;
}

static void test_verify_s3(void **state)
{
    struct fx *f = *state;
    struct rv_error err = {0};
    struct config cfg;
    struct diag_list d;
    struct spec_set set;
    struct backups *b = NULL;
    struct objstore *st = NULL;
    struct rv_sink *down = NULL, *enc = NULL;
    struct bstream_result res;
    char spec[2048], endpoint[64], data[50000];
    json_t *out = NULL;
    pid_t pid;
    unsigned port = start_s3(&pid, f->dir);
    if (port == 0) {
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
        skip();
    }
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", port);
    setenv("RV_T_AKID", S3_AK, 1);
    setenv("RV_T_SECRET", S3_SK, 1);
    assert_int_equal(parse_cfg(&cfg, &d,
                               "credentials:\n"
                               "  s3-main:\n"
                               "    accessKeyIdRef: env:RV_T_AKID\n"
                               "    secretAccessKeyRef: env:RV_T_SECRET\n"),
                     0);
    diag_list_release(&d);
    spec_set_init(&set);
    snprintf(spec, sizeof(spec),
             "apiVersion: reeve/v1\n"
             "kind: DatabaseCluster\n"
             "metadata:\n"
             "  name: ledger\n"
             "  namespace: payments\n"
             "spec:\n"
             "  engine: postgresql\n"
             "  version: \"16\"\n"
             "  provider: local\n"
             "  backup:\n"
             "    schedule:\n"
             "      full: \"0 2 * * *\"\n"
             "    destination:\n"
             "      s3:\n"
             "        bucket: backups\n"
             "        endpoint: %s\n"
             "        credentialsRef: s3-main\n",
             endpoint);
    tu_add_cluster(&set, "clusters/payments/ledger.yaml", spec);
    assert_int_equal(backups_open(&b, f->db_path, &cfg, &err), 0);
    assert_int_equal(backups_set_specs(b, &set, &err), 0);

    /* an unencrypted object under the default prefix <namespace>/<name> */
    struct s3_config sc = {.endpoint = endpoint,
                           .region = "us-east-1",
                           .bucket = "backups",
                           .prefix = "payments/ledger",
                           .access_key_id = S3_AK,
                           .secret_access_key = S3_SK};
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i % 13);
    assert_int_equal(objstore_s3_new(&st, &sc, &err), 0);
    assert_int_equal(st->put(st, "base/20261121T140000Z-0000000e/data", &down, &err), 0);
    assert_int_equal(bstream_encoder_new(&enc, down, NULL, &res, &err), 0);
    assert_int_equal(rv_sink_write(enc, data, sizeof(data), &err), 0);
    if (rv_sink_finish(enc, &err) != 0)
        fail_msg("cannot store the object: %s", err.msg);
    st->free(st);

    json_t *r = record("20261121T140000Z-0000000e", "succeeded", "2026-11-21T14:00:00.000Z",
                       "2026-11-21T14:01:00.000Z", "manual");
    json_object_set_new(r, "cluster", json_string("payments/ledger"));
    json_object_set_new(r, "checksum", json_string(res.sha256));
    json_object_set_new(r, "size", json_integer((json_int_t)res.stored_bytes));
    json_object_set_new(r, "encrypted", json_false());
    json_t *body = json_pack("{s:[o]}", "records", r);
    size_t n = 0;
    assert_int_equal(backups_ingest(&n, b, "payments/ledger", body, &err), 0);
    json_decref(body);
    int rc = backups_verify(&out, NULL, b, "20261121T140000Z-0000000e", &err);
    if (rc != 0)
        fail_msg("verify: %s", err.msg);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "verify"), "status")), "ok");
    json_decref(out);

    /* the server gone: the check cannot run, and nothing is recorded */
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    rc = backups_verify(&out, NULL, b, "20261121T140000Z-0000000e", &err);
    assert_true(rc != 0 && rc != RV_ENOTFOUND && rc != RV_ECONFLICT);
    assert_non_null(strstr(err.msg, "cannot read backup '20261121T140000Z-0000000e' of "
                                    "payments/ledger: "));
    json_t *list = NULL;
    assert_int_equal(backups_list(&list, b, "payments/ledger", &err), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(list, 0), "verify"), "status")),
                        "ok");
    json_decref(list);
    backups_free(b);
    spec_set_release(&set);
    config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_sections),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_record_validation),
        cmocka_unit_test(test_log_validation),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_pick_table),
        cmocka_unit_test_setup_teardown(test_agent_config_and_restore, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_requests, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_logs_storage, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_verify, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_verify_s3, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_check_refs, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_final_backup_runner, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_final_backup_fails, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_seed_runner, db_setup, db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
