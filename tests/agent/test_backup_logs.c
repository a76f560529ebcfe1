/* test_backup_logs.c - backup log lines go back to the reconciler: what the
 * agent wrote into backup.db while the reconciler was away reaches it once
 * it is back, in the same POST /v1/agents/backups as the records, oldest
 * first, validated by the real agent API (tests/agent/recon.c), and is
 * then marked synced; a line written later goes on its own; a record whose
 * lines are not all sent is not pruned. No database server is needed: the
 * records and lines are written into backup.db the way a backup writes
 * them, and the scheduler (backupd) only syncs (its configuration has no
 * backup section).
 *
 * Also: which unsynced lines a request may carry (those of records the
 * reconciler has or that go with them), and how a line is made acceptable
 * to the reconciler (control characters, bytes that are not UTF-8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>

#include "backup_db.h"
#include "backup_pg.h"
#include "backupd.h"
#include "config.h"
#include "dcs_client.h"
#include "recon.h"
#include "testutil.h"

#define R1 "20261121T080000Z-0000aa01"
#define R2 "20261121T090000Z-0000aa02"
#define WAIT_MS 15000

struct fx {
    struct recon r;
    char tok[1][AGENTAPI_TOKEN_HEX_SIZE];
    char base[64];
    char state[128];
    char url[64];
    struct agent_config ac;
    char failure[1024];
};

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(x->failure, sizeof x->failure, __VA_ARGS__);                                      \
        goto out;                                                                                  \
    } while (0)

/* --- cleaning a line --- */

static void test_line_clean(void **state)
{
    (void)state;
    char a[] = "tab\there\nnewline\x1b[2J del\x7f";
    backup_db_line_clean(a);
    assert_string_equal(a, "tab here newline [2J del ");
    char b[] = "caf\xc3\xa9 \xe2\x82\xac ok"; /* UTF-8 stays */
    backup_db_line_clean(b);
    assert_string_equal(b, "caf\xc3\xa9 \xe2\x82\xac ok");
    char c[] = "bad \xff\xc3( \xed\xa0\x80 \xc2\x9b" /* invalid, cut, surrogate, C1 CSI */;
    backup_db_line_clean(c);
    assert_string_equal(c, "bad ?"
                           "?( ?"
                           "?"
                           "?   ");
}

/* --- the scenario --- */

static json_t *record(const char *id, const char *status, const char *started)
{
    char name[96];
    snprintf(name, sizeof(name), "base/%s/data", id);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "backup_id", id, "set_id", id,
                     "cluster", "t/db", "node", "logs-0", "type", "full", "method", "pg_basebackup",
                     "schedule", "scheduled", "status", status, "started_at", started, "ended_at",
                     started, "name", name);
}

/* Lines of one backup in backup.db, with their synced flags. */
static int lines_synced(struct backup_db *db, const char *id, size_t *synced)
{
    struct rv_error err = {0};
    json_t *lines = NULL;
    size_t i;
    json_t *l;
    *synced = 0;
    if (backup_db_logs(&lines, db, id, &err) != 0)
        return -1;
    json_array_foreach(lines, i, l) *synced += json_is_true(json_object_get(l, "synced"));
    int n = (int)json_array_size(lines);
    json_decref(lines);
    return n;
}

static int unsynced_records(struct backup_db *db)
{
    struct rv_error err = {0};
    json_t *recs = NULL;
    if (backup_db_records(&recs, db, true, 0, &err) != 0)
        return -1;
    int n = (int)json_array_size(recs);
    json_decref(recs);
    return n;
}

/* Wait until the reconciler holds want lines; a copy of them, or NULL. */
static json_t *wait_lines(struct fx *x, size_t want)
{
    int64_t deadline = tu_now_ms() + WAIT_MS;
    for (;;) {
        json_t *got = recon_posted_logs(&x->r, NULL);
        if (json_array_size(got) >= want || tu_now_ms() > deadline)
            return got;
        json_decref(got);
        tu_sleep_ms(50);
    }
}

static bool wait_all_synced(struct backup_db *db, const char *id, int want)
{
    int64_t deadline = tu_now_ms() + WAIT_MS;
    size_t synced = 0;
    while (lines_synced(db, id, &synced) != want || synced != (size_t)want) {
        if (tu_now_ms() > deadline)
            return false;
        tu_sleep_ms(50);
    }
    return true;
}

static bool line_is(const json_t *l, const char *id, const char *level, const char *text)
{
    return strcmp(json_string_value(json_object_get(l, "backup_id")), id) == 0 &&
           strcmp(json_string_value(json_object_get(l, "level")), level) == 0 &&
           strcmp(json_string_value(json_object_get(l, "line")), text) == 0 &&
           json_string_length(json_object_get(l, "at")) == 24;
}

/* Which lines a request may carry: those of synced records and of the
 * records sent with them. */
static int check_selection(struct fx *x, struct backup_db *db)
{
    struct rv_error err = {0};
    json_t *lines = NULL, *ids = NULL, *batch = json_array();
    int rc = -1;
    if (backup_db_logs_unsynced(&lines, &ids, db, batch, 100, &err) != 0)
        FAIL("logs_unsynced: %s", err.msg);
    if (json_array_size(lines) != 0)
        FAIL("lines of records the reconciler does not have were selected");
    json_decref(lines);
    json_decref(ids);
    json_array_append_new(batch, json_string(R2));
    if (backup_db_logs_unsynced(&lines, &ids, db, batch, 100, &err) != 0)
        FAIL("logs_unsynced: %s", err.msg);
    if (json_array_size(lines) != 2 || json_array_size(ids) != 2 ||
        !line_is(json_array_get(lines, 0), R2, "info", "started (pg_basebackup, scheduled)"))
        FAIL("with R2 in the batch: %s", json_dumps(lines, JSON_COMPACT));
    rc = 0;
out:
    json_decref(lines);
    json_decref(ids);
    json_decref(batch);
    return rc;
}

static int start_backupd(struct fx *x, struct backupd **d, const char *url)
{
    struct rv_error err = {0};
    x->ac.reconciler_url = (char *)url;
    struct backupd_opts o = {.cfg = &x->ac, .exe = "/bin/false", .poll_ms = 100};
    if (backupd_start(d, &o, &err) != 0) {
        snprintf(x->failure, sizeof x->failure, "backupd: %s", err.msg);
        return -1;
    }
    return 0;
}

static void scenario(struct fx *x)
{
    struct rv_error err = {0};
    struct dcs_client http;
    bool http_inited = false;
    struct backup_ctx c;
    bool c_open = false;
    struct backupd *d = NULL;
    json_t *got = NULL;
    size_t synced = 0, posts = 0, removed = 0;
    char path[256];

    /* the agent's token, as registration leaves it */
    if (dcs_client_init(&http, x->url, 5000, &err) != 0)
        FAIL("client: %s", err.msg);
    http_inited = true;
    if (dcs_client_register(&http, x->tok[0], "t/db", "logs-0", "127.0.0.1:1", &err) != 0)
        FAIL("register: %s", err.msg);
    snprintf(path, sizeof path, "%s/agent-token", x->state);
    mkdir(x->state, 0700);
    umask(077);
    FILE *fp = fopen(path, "w");
    if (fp == NULL || fprintf(fp, "%s\n", http.token) < 0 || fclose(fp) != 0)
        FAIL("cannot write %s", path);

    /* two backups taken while the reconciler was away, with their log */
    if (backup_ctx_open(&c, &x->ac, true, &err) != 0)
        FAIL("backup.db: %s", err.msg);
    c_open = true;
    json_t *r1 = record(R1, "succeeded", "2026-11-21T08:00:00.000Z");
    json_t *r2 = record(R2, "failed", "2026-11-21T09:00:00.000Z");
    json_object_set_new(r2, "error", json_string("pg_basebackup: could not connect"));
    int prc = backup_db_record_put(c.db, r1, &err) | backup_db_record_put(c.db, r2, &err);
    json_decref(r1);
    json_decref(r2);
    if (prc != 0)
        FAIL("record_put: %s", err.msg);
    backup_db_log(c.db, R1, "info", "started (pg_basebackup, scheduled)");
    backup_db_log(c.db, R1, "info", "progress: 45%%, 812.3 MiB read,\t97.1 MiB stored");
    backup_db_log(c.db, R2, "info", "started (pg_basebackup, scheduled)");
    backup_db_log(c.db, R1, "notice", "succeeded: 1234 bytes stored");
    backup_db_log(c.db, R2, "error", "pg_basebackup: could not connect\nretry later");
    if (check_selection(x, c.db) != 0)
        goto out;

    /* the reconciler is down: nothing is marked sent */
    if (start_backupd(x, &d, "http://127.0.0.1:1") != 0)
        goto out;
    tu_sleep_ms(800);
    backupd_stop(d);
    d = NULL;
    if (unsynced_records(c.db) != 2 || lines_synced(c.db, R1, &synced) != 3 || synced != 0)
        FAIL("something was marked sent while the reconciler was down");

    /* it is back: records and lines go, oldest first, then are synced */
    if (start_backupd(x, &d, x->url) != 0)
        goto out;
    got = wait_lines(x, 5);
    if (json_array_size(got) != 5)
        FAIL("the reconciler got %zu lines, wanted 5: %s", json_array_size(got),
             json_dumps(got, JSON_COMPACT));
    if (!line_is(json_array_get(got, 0), R1, "info", "started (pg_basebackup, scheduled)") ||
        !line_is(json_array_get(got, 1), R1, "info",
                 "progress: 45%, 812.3 MiB read, 97.1 MiB stored") ||
        !line_is(json_array_get(got, 2), R2, "info", "started (pg_basebackup, scheduled)") ||
        !line_is(json_array_get(got, 3), R1, "info", "succeeded: 1234 bytes stored") ||
        !line_is(json_array_get(got, 4), R2, "error",
                 "pg_basebackup: could not connect retry later"))
        FAIL("unexpected lines: %s", json_dumps(got, JSON_COMPACT));
    json_decref(got);
    got = recon_posted(&x->r, NULL);
    if (json_array_size(got) != 2)
        FAIL("the reconciler got %zu records, wanted 2", json_array_size(got));
    if (!wait_all_synced(c.db, R1, 3) || !wait_all_synced(c.db, R2, 2))
        FAIL("the lines were not marked synced after the 200");
    if (unsynced_records(c.db) != 0)
        FAIL("the records were not marked synced after the 200");

    /* a line written later goes on its own (its record is synced) */
    json_decref(recon_posted_logs(&x->r, &posts));
    backup_db_log(c.db, R1, "info", "verify: restore ok");
    json_decref(got);
    got = wait_lines(x, 6);
    if (json_array_size(got) != 6 ||
        !line_is(json_array_get(got, 5), R1, "info", "verify: restore ok"))
        FAIL("the later line did not arrive: %s", json_dumps(got, JSON_COMPACT));
    size_t posts_after = 0;
    json_decref(recon_posted_logs(&x->r, &posts_after));
    if (posts_after != posts + 1)
        FAIL("the later line took %zu requests", posts_after - posts);
    if (!wait_all_synced(c.db, R1, 4))
        FAIL("the later line was not marked synced");
    backupd_stop(d);
    d = NULL;

    /* a record whose lines are not all sent is not forgotten */
    backup_db_log(c.db, R2, "warn", "written after the last sync");
    if (backup_db_prune(c.db, "2100-01-01T00:00:00.000Z", &removed, &err) != 0)
        FAIL("prune: %s", err.msg);
    json_t *left = NULL;
    if (removed != 1 || backup_db_record_get(&left, c.db, R2, &err) != 0 ||
        lines_synced(c.db, R1, &synced) != 0 || lines_synced(c.db, R2, &synced) != 3)
        FAIL("prune removed %zu records; R2 %s", removed, left != NULL ? "kept" : "gone");
    json_decref(left);
out:
    json_decref(got);
    backupd_stop(d);
    if (c_open)
        backup_ctx_release(&c);
    if (http_inited)
        dcs_client_release(&http);
    uv_async_send(&x->r.stop);
}

static void *scenario_main(void *arg)
{
    scenario(arg);
    return NULL;
}

static void test_logs_after_reconciler_returns(void **state)
{
    static struct fx x;
    static const char *const nodes[] = {"logs-0"};
    struct rv_error err = {0};
    pthread_t th;
    (void)state;
    memset(&x, 0, sizeof x);
    if (tu_tmpdir(x.base, sizeof x.base, "reeve-backup-logs", NULL, 0700) != 0)
        fail_msg("cannot make a test directory");
    snprintf(x.state, sizeof x.state, "%s/state", x.base);
    x.ac.node = (char *)"logs-0";
    x.ac.namespace_ = (char *)"t";
    x.ac.cluster = (char *)"db";
    x.ac.state_dir = x.state;
    if (recon_start(&x.r, x.tok, "t", "db", nodes, 1, &err) != 0)
        fail_msg("reconciler: %s", err.msg);
    snprintf(x.url, sizeof x.url, "http://127.0.0.1:%u", (unsigned)x.r.port);
    assert_int_equal(pthread_create(&th, NULL, scenario_main, &x), 0);
    recon_run_and_free(&x.r);
    pthread_join(th, NULL);
    tu_rm_test_dir(x.base);
    if (x.failure[0] != '\0')
        fail_msg("%s", x.failure);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_clean),
        cmocka_unit_test(test_logs_after_reconciler_returns),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
