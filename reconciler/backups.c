/* backups.c - backup records, agent configurations, restores and
 * verification on the reconciler (backups.h). */
#include "backups.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentapi.h"
#include "bstream.h"
#include "buf.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "objstore.h"

#include "s3.h"
#include "users.h"

/* When the agents verify the newest full backup by restoring it into a
 * scratch instance: weekly, Sunday 04:30 UTC, after the nightly backups
 * (the spec has no field for it yet). */
#define BACKUPS_TEST_RESTORE_CRON "30 4 * * 0"

#define LOG_C "backups"

/* Migration "backups". Times: *_at INTEGER Unix seconds, except the
 * records' own RFC 3339 texts; *_ms Unix milliseconds parsed from them,
 * for ordering and point-in-time decisions. */
const char backups_schema_sql[] =
    "CREATE TABLE backup_specs ("
    "  cluster TEXT PRIMARY KEY,"
    "  json TEXT NOT NULL,"
    "  desired INTEGER NOT NULL CHECK (desired IN (0, 1)),"
    "  bootstrapped_at INTEGER,"
    "  restore TEXT,"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;"

    "CREATE TABLE backup_records ("
    "  backup_id TEXT PRIMARY KEY,"
    "  cluster TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),"
    "  type TEXT NOT NULL,"
    "  schedule TEXT NOT NULL,"
    "  started_ms INTEGER NOT NULL,"
    "  ended_at TEXT,"
    "  ended_ms INTEGER,"
    "  json TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX backup_records_by_cluster ON backup_records (cluster, started_ms);"
    "CREATE INDEX backup_records_by_schedule ON backup_records (schedule);"

    "CREATE TABLE backup_wal ("
    "  cluster TEXT PRIMARY KEY,"
    "  last_segment TEXT NOT NULL,"
    "  last_archived_at TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  received_at INTEGER NOT NULL"
    ") STRICT;"

    "CREATE TABLE backup_requests ("
    "  id TEXT PRIMARY KEY,"
    "  cluster TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('full')),"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX backup_requests_by_cluster ON backup_requests (cluster, created_at);";

/* Migration "backup logs": the agents' per-backup log lines. A line sent
 * twice (an answer lost after the commit) is stored once. */
const char backups_logs_sql[] =
    "CREATE TABLE backup_logs ("
    "  id INTEGER PRIMARY KEY,"
    "  backup_id TEXT NOT NULL,"
    "  cluster TEXT NOT NULL,"
    "  at TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  level TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),"
    "  line TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE UNIQUE INDEX backup_logs_once ON backup_logs (backup_id, at, level, line);"
    "CREATE INDEX backup_logs_by_backup ON backup_logs (backup_id, at_ms, id);";

struct backups {
    struct db *db;
    pthread_mutex_t mu; /* db */
    const struct config *cfg;
    const struct seal_keys *seal; /* opens the users' sealed passwords; may be NULL */
};

/* --- helpers --- */

void backups_time_format(char out[32], int64_t ms, bool short_)
{
    struct tm tm;
    int64_t s = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int frac = (int)(ms - s * 1000);
    time_t t = (time_t)s;
    char base[24];
    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (short_ && frac == 0)
        snprintf(out, 32, "%sZ", base);
    else
        snprintf(out, 32, "%s.%03dZ", base, frac);
}

/* Overwrite every string of a JSON tree (secrets) before it is freed. */
static void wipe_tree(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_string(j)) {
        memset((char *)json_string_value(j), 0, json_string_length(j));
    } else if (json_is_object(j)) {
        json_object_foreach(j, k, v) wipe_tree(v);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) wipe_tree(v);
    }
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* --- lifetime --- */

int backups_open(struct backups **out, const char *db_path, const struct config *cfg,
                 struct rv_error *err)
{
    struct db_options opt;
    struct backups *b = calloc(1, sizeof(*b));
    *out = NULL;
    if (b == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    db_options_init(&opt);
    opt.create = false;
    int rc = db_open(&b->db, db_path, &opt, err);
    if (rc != 0) {
        free(b);
        return rc;
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        db_free(b->db);
        free(b);
        return rv_error_set(err, RV_ENOMEM, false, "cannot create a mutex");
    }
    b->cfg = cfg;
    *out = b;
    return 0;
}

void backups_free(struct backups *b)
{
    if (b == NULL)
        return;
    db_free(b->db);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* --- specs --- */

/* The backup-relevant part of a spec, as stored in backup_specs.json. */
static json_t *spec_row(const struct spec_cluster *c)
{
    json_t *o =
        json_pack("{s:s, s:s?, s:b, s:o, s:o}", "engine", c->engine, "file", c->file, "pitr",
                  c->pitr_enabled, "backup", json_null(), "from_backup", json_null());
    if (o == NULL)
        return NULL;
    if (c->backup.enabled) {
        json_t *args = json_array();
        for (size_t i = 0; args != NULL && i < c->backup.nprogram_args; i++)
            json_array_append_new(args, json_string(c->backup.program_args[i]));
        json_t *dest =
            c->backup.dest_kind == SPEC_DEST_S3
                ? json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "kind", "s3", "endpoint",
                            c->backup.endpoint, "region", c->backup.s3_region, "bucket",
                            c->backup.bucket, "prefix", c->backup.prefix, "credentials_ref",
                            c->backup.credentials_ref)
                : json_pack("{s:s, s:s?}", "kind", "local", "path", c->backup.local_path);
        json_t *bk = json_pack("{s:s?, s:s?, s:i, s:s?, s:s?, s:o?, s:b, s:o?, s:s?}", "full_cron",
                               c->backup.full_cron, "incremental_cron", c->backup.incremental_cron,
                               "retention_days", c->backup.retention_days, "method",
                               c->backup.method, "program", c->backup.program, "args", args,
                               "prefer_replica", c->backup.prefer_replica, "destination", dest,
                               "key_ref", c->backup.encryption_key_ref);
        if (bk == NULL || json_object_set_new(o, "backup", bk) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    json_t *users = users_row_json(c); /* references only, never a password */
    if (users == NULL || json_object_set_new(o, "users", users) != 0) {
        json_decref(o);
        return NULL;
    }
    if (c->bootstrap.kind == SPEC_BOOTSTRAP_FROM_BACKUP) {
        json_t *fb =
            json_pack("{s:s?, s:s?, s:s?}", "cluster", c->bootstrap.from_cluster, "backup_id",
                      c->bootstrap.backup_id, "point_in_time", c->bootstrap.point_in_time);
        if (fb == NULL || json_object_set_new(o, "from_backup", fb) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

int backups_set_specs(struct backups *b, const struct spec_set *set, struct rv_error *err)
{
    int64_t now = (int64_t)time(NULL);
    int rc;
    pthread_mutex_lock(&b->mu);
    rc = db_begin(b->db, err);
    if (rc == 0)
        rc = db_run(b->db, err, "UPDATE backup_specs SET desired = 0 WHERE desired = 1", NULL);
    for (size_t i = 0; rc == 0 && i < set->nclusters; i++) {
        const struct spec_cluster *c = set->clusters[i];
        char key[2 * RV_NAME_MAX + 2];
        snprintf(key, sizeof(key), "%s/%s", c->namespace_, c->name);
        json_t *row = spec_row(c);
        char *text = row != NULL ? json_dumps(row, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(row);
        if (text == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            break;
        }
        /* A cluster that comes back after being deleted is a new cluster:
         * its restore (if any) is served again. */
        rc = db_run(b->db, err,
                    "INSERT INTO backup_specs (cluster, json, desired, updated_at)"
                    " VALUES (?, ?, 1, ?) ON CONFLICT (cluster) DO UPDATE SET"
                    " json = excluded.json, updated_at = excluded.updated_at,"
                    " bootstrapped_at = CASE WHEN backup_specs.desired = 0 THEN NULL"
                    "   ELSE backup_specs.bootstrapped_at END,"
                    " restore = CASE WHEN backup_specs.desired = 0 THEN NULL"
                    "   ELSE backup_specs.restore END,"
                    " desired = 1",
                    "ttl", key, text, now);
        free(text);
    }
    if (rc == 0)
        rc = db_commit(b->db, err);
    else
        db_rollback(b->db);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* The stored spec row of cluster (new reference) and its bootstrapped
 * mark; NULL when none (b->mu held). */
static json_t *spec_load(struct backups *b, const char *cluster, bool *bootstrapped,
                         struct rv_error *err, int *rc)
{
    sqlite3_stmt *st = NULL;
    json_t *row = NULL;
    *rc = db_prepare(&st, b->db, err,
                     "SELECT json, bootstrapped_at IS NOT NULL FROM backup_specs WHERE cluster = ?",
                     "t", cluster);
    if (*rc == 0 && (*rc = db_step(st, b->db, err)) == 1) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        if (bootstrapped != NULL)
            *bootstrapped = sqlite3_column_int(st, 1) != 0;
        row = text != NULL ? json_loads(text, 0, NULL) : NULL;
        *rc = row != NULL
                  ? 0
                  : rv_error_set(err, RV_EDB, false,
                                 "the stored spec of '%s' is not JSON; reapply it", cluster);
    }
    db_finalize(st);
    return row;
}

int backups_spec_facts(struct backups_spec_facts *out, struct backups *b, const char *cluster,
                       struct rv_error *err)
{
    int rc;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&b->mu);
    json_t *row = spec_load(b, cluster, NULL, err, &rc);
    pthread_mutex_unlock(&b->mu);
    if (row != NULL) {
        out->known = true;
        out->backup = json_is_object(json_object_get(row, "backup"));
        out->from_backup = json_is_object(json_object_get(row, "from_backup"));
        snprintf(out->engine, sizeof(out->engine), "%s",
                 jstr(row, "engine") ? jstr(row, "engine") : "");
    }
    json_decref(row);
    return rc < 0 ? rc : 0;
}

int backups_mark_bootstrapped(struct backups *b, const char *cluster, struct rv_error *err)
{
    pthread_mutex_lock(&b->mu);
    int rc = db_run(b->db, err,
                    "UPDATE backup_specs SET bootstrapped_at = ? WHERE cluster = ?"
                    " AND bootstrapped_at IS NULL",
                    "lt", (int64_t)time(NULL), cluster);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* --- references to reeve.yaml --- */

static int ref_missing(struct diag_list *diags, const struct spec_cluster *c, struct spec_pos at,
                       const char *field, const char *what, const char *name, const char *section)
{
    char path[256];
    snprintf(path, sizeof(path), "%s.%s", c->field_prefix ? c->field_prefix : "spec", field);
    if (at.line == 0)
        at = c->at.spec;
    return diag_add(diags, DIAG_ERROR, c->file, at.line, at.col, path,
                    "cluster %s/%s names %s '%s' in %s, and reeve.yaml has no such entry; add "
                    "it under '%s:' in reeve.yaml (docs/configuration.md), or name one that "
                    "is there",
                    c->namespace_, c->name, what, name, field, section) != 0
               ? RV_ENOMEM
               : 0;
}

int backups_check_refs(const struct config *cfg, const struct spec_set *set,
                       struct diag_list *diags)
{
    for (size_t i = 0; i < set->nclusters; i++) {
        const struct spec_cluster *c = set->clusters[i];
        if (!c->backup.enabled)
            continue;
        if (c->backup.dest_kind == SPEC_DEST_S3 && c->backup.credentials_ref != NULL &&
            config_credentials_find(cfg, c->backup.credentials_ref) == NULL &&
            ref_missing(diags, c, c->at.backup, "backup.destination.s3.credentialsRef",
                        "credentials", c->backup.credentials_ref, "credentials") != 0)
            return RV_ENOMEM;
        if (c->backup.encryption_key_ref != NULL &&
            config_backup_key_find(cfg, c->backup.encryption_key_ref) == NULL &&
            ref_missing(diags, c, c->at.encryption, "backup.encryption.keyRef", "backup key",
                        c->backup.encryption_key_ref, "backupKeys") != 0)
            return RV_ENOMEM;
    }
    return 0;
}

/* --- records from agents --- */

static int ingest_record(bool *accepted, struct backups *b, const char *cluster, json_t *rec,
                         int64_t now, struct rv_error *err)
{
    const char *id = jstr(rec, "backup_id");
    const char *ended = jstr(rec, "ended_at");
    int64_t started_ms = 0, ended_ms = 0;
    sqlite3_stmt *st = NULL;
    json_t *copy = json_deep_copy(rec);
    char *text = NULL;
    int rc = 0;
    *accepted = false;
    if (copy == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    agentapi_time_parse(&started_ms, jstr(rec, "started_at"), false);
    if (ended != NULL)
        agentapi_time_parse(&ended_ms, ended, false);
    /* keep a verification the reconciler recorded when the agent has none */
    json_t *v = json_object_get(rec, "verify");
    if (v == NULL || json_is_null(v)) {
        rc = db_prepare(&st, b->db, err,
                        "SELECT json FROM backup_records WHERE backup_id = ? AND cluster = ?", "tt",
                        id, cluster);
        if (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
            json_t *old = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
            json_t *ov = json_object_get(old, "verify");
            if (json_is_object(ov))
                json_object_set(copy, "verify", ov);
            json_decref(old);
            rc = 0;
        }
        db_finalize(st);
        if (rc < 0)
            goto out;
    }
    text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (strlen(text) > RV_BACKUPS_RECORD_MAX) {
        log_warn(LOG_C, "record '%s' of %s is %zu bytes, over %d: not stored", id, cluster,
                 strlen(text), RV_BACKUPS_RECORD_MAX);
        goto out;
    }
    /* an id is one cluster's: another cluster's agent cannot overwrite it */
    rc = db_run(b->db, err,
                "INSERT INTO backup_records (backup_id, cluster, status, type, schedule,"
                " started_ms, ended_at, ended_ms, json, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (backup_id) DO UPDATE SET"
                " status = excluded.status, type = excluded.type, schedule = excluded.schedule,"
                " started_ms = excluded.started_ms, ended_at = excluded.ended_at,"
                " ended_ms = excluded.ended_ms, json = excluded.json,"
                " received_at = excluded.received_at"
                " WHERE backup_records.cluster = excluded.cluster",
                "tttttltltl", id, cluster, jstr(rec, "status"), jstr(rec, "type"),
                jstr(rec, "schedule"), started_ms, ended, ended_ms, text, now);
    if (rc == 0 && db_changes(b->db) == 0)
        log_warn(LOG_C,
                 "record '%s' from an agent of %s ignored: the id belongs to another "
                 "cluster",
                 id, cluster);
    else if (rc == 0)
        *accepted = true;
out:
    free(text);
    json_decref(copy);
    return rc;
}

/* One log line, when its backup is a record of cluster (sent in the same
 * request, already stored, or earlier). *stored: a new line was kept;
 * *owned: the backup is cluster's. */
static int ingest_log(bool *stored, bool *owned, struct backups *b, const char *cluster,
                      const json_t *line, int64_t now, struct rv_error *err)
{
    const char *id = jstr(line, "backup_id");
    int64_t at_ms = 0, n = 0;
    *stored = *owned = false;
    int rc = db_query_i64(&n, b->db, err,
                          "SELECT count(*) FROM backup_records WHERE backup_id = ? AND cluster = ?",
                          "tt", id, cluster);
    if (rc != 0 || n == 0)
        return rc;
    *owned = true;
    agentapi_time_parse(&at_ms, jstr(line, "at"), false);
    rc = db_run(b->db, err,
                "INSERT INTO backup_logs (backup_id, cluster, at, at_ms, level, line, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                "tttlttl", id, cluster, jstr(line, "at"), at_ms, jstr(line, "level"),
                jstr(line, "line"), now);
    if (rc == 0)
        *stored = db_changes(b->db) > 0;
    return rc;
}

/* The newest RV_BACKUPS_LOG_LINES_MAX lines of each backup in logs stay. */
static int logs_trim(struct backups *b, const json_t *logs, struct rv_error *err)
{
    json_t *seen = json_object();
    size_t i;
    json_t *line;
    int rc = seen != NULL ? 0 : rv_error_set(err, RV_ENOMEM, false, "out of memory");
    json_array_foreach(logs, i, line)
    {
        const char *id = jstr(line, "backup_id");
        if (rc != 0)
            break;
        if (json_object_get(seen, id) != NULL)
            continue;
        if (json_object_set_new(seen, id, json_true()) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            break;
        }
        rc = db_run(b->db, err,
                    "DELETE FROM backup_logs WHERE backup_id = ? AND id IN (SELECT id FROM"
                    " backup_logs WHERE backup_id = ? ORDER BY at_ms DESC, id DESC"
                    " LIMIT -1 OFFSET ?)",
                    "ttl", id, id, (int64_t)RV_BACKUPS_LOG_LINES_MAX);
    }
    json_decref(seen);
    return rc;
}

/* The log lines of body, after its records: a line of a backup that is
 * not cluster's (unknown, or another cluster's) is not stored. Lines are
 * never logged, only counted. */
static int ingest_logs(size_t *out_stored, struct backups *b, const char *cluster,
                       const json_t *logs, int64_t now, struct rv_error *err)
{
    size_t i, stored = 0, foreign = 0;
    const char *first_foreign = NULL;
    json_t *line;
    int rc = 0;
    json_array_foreach(logs, i, line)
    {
        bool kept = false, owned = false;
        if ((rc = ingest_log(&kept, &owned, b, cluster, line, now, err)) != 0)
            return rc;
        stored += kept;
        if (!owned && foreign++ == 0)
            first_foreign = jstr(line, "backup_id");
    }
    if (foreign > 0)
        log_warn(LOG_C,
                 "%zu log line(s) from an agent of %s not stored: their backup (first: '%s') "
                 "is not a record of %s",
                 foreign, cluster, first_foreign, cluster);
    if (json_array_size(logs) > 0)
        rc = logs_trim(b, logs, err);
    *out_stored = stored;
    return rc;
}

int backups_ingest(size_t *out_accepted, struct backups *b, const char *cluster, const json_t *body,
                   struct rv_error *err)
{
    size_t logs = 0;
    return backups_ingest_logs(out_accepted, &logs, b, cluster, body, err);
}

int backups_ingest_logs(size_t *out_accepted, size_t *out_logs, struct backups *b,
                        const char *cluster, const json_t *body, struct rv_error *err)
{
    int64_t now = (int64_t)time(NULL);
    size_t i, n = 0, nlogs = 0;
    json_t *rec;
    *out_accepted = 0;
    *out_logs = 0;
    pthread_mutex_lock(&b->mu);
    int rc = db_begin(b->db, err);
    json_array_foreach(json_object_get(body, "records"), i, rec)
    {
        bool ok = false;
        if (rc != 0)
            break;
        rc = ingest_record(&ok, b, cluster, rec, now, err);
        n += ok;
    }
    if (rc == 0)
        rc = ingest_logs(&nlogs, b, cluster, json_object_get(body, "logs"), now, err);
    json_t *wal = json_object_get(body, "wal");
    if (rc == 0 && json_is_object(wal)) {
        int64_t at_ms = 0;
        agentapi_time_parse(&at_ms, jstr(wal, "last_archived_at"), false);
        rc = db_run(b->db, err,
                    "INSERT INTO backup_wal (cluster, last_segment, last_archived_at, at_ms,"
                    " received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (cluster) DO UPDATE SET"
                    " last_segment = excluded.last_segment,"
                    " last_archived_at = excluded.last_archived_at, at_ms = excluded.at_ms,"
                    " received_at = excluded.received_at WHERE excluded.at_ms >= backup_wal.at_ms",
                    "tttll", cluster, jstr(wal, "last_segment"), jstr(wal, "last_archived_at"),
                    at_ms, now);
    }
    if (rc == 0)
        rc = db_commit(b->db, err);
    else
        db_rollback(b->db);
    pthread_mutex_unlock(&b->mu);
    if (rc == 0) {
        *out_accepted = n;
        *out_logs = nlogs;
    }
    return rc;
}

static int show_logs(json_t *arr, struct backups *b, const char *backup_id, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(&st, b->db, err,
                        "SELECT at, level, line FROM backup_logs WHERE backup_id = ?"
                        " ORDER BY at_ms, id",
                        "t", backup_id);
    while (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        json_t *l = json_pack("{s:s,s:s,s:s}", "at", (const char *)sqlite3_column_text(st, 0),
                              "level", (const char *)sqlite3_column_text(st, 1), "line",
                              (const char *)sqlite3_column_text(st, 2));
        rc = l != NULL && json_array_append_new(arr, l) == 0
                 ? 0
                 : rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    db_finalize(st);
    return rc < 0 ? rc : 0;
}

int backups_show(json_t **out, struct backups *b, const char *backup_id, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    json_t *rec = NULL, *logs = json_array();
    int rc;
    *out = NULL;
    if (logs == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    pthread_mutex_lock(&b->mu);
    rc = db_prepare(&st, b->db, err, "SELECT json FROM backup_records WHERE backup_id = ?", "t",
                    backup_id);
    if (rc == 0)
        rc = db_step(st, b->db, err);
    if (rc == 1) {
        rec = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        rc = rec != NULL ? 0 : rv_error_set(err, RV_ENOMEM, false, "out of memory");
    } else if (rc == 0) {
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          "no backup '%s' is known to reeve; 'reeve backups list' shows the "
                          "known ones",
                          backup_id);
    }
    db_finalize(st);
    if (rc == 0)
        rc = show_logs(logs, b, backup_id, err);
    pthread_mutex_unlock(&b->mu);
    if (rc == 0) {
        *out = json_pack("{s:o,s:o}", "record", rec, "logs", logs);
        rec = logs = NULL;
        if (*out == NULL)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    json_decref(rec);
    json_decref(logs);
    return rc;
}

int backups_list(json_t **out, struct backups *b, const char *cluster, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int rc;
    *out = NULL;
    if (arr == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    pthread_mutex_lock(&b->mu);
    if (cluster != NULL)
        rc = db_prepare(&st, b->db, err,
                        "SELECT json FROM backup_records WHERE cluster = ?"
                        " ORDER BY started_ms DESC, backup_id DESC LIMIT ?",
                        "tl", cluster, (int64_t)RV_BACKUPS_LIST_MAX);
    else
        rc = db_prepare(&st, b->db, err,
                        "SELECT json FROM backup_records"
                        " ORDER BY started_ms DESC, backup_id DESC LIMIT ?",
                        "l", (int64_t)RV_BACKUPS_LIST_MAX);
    while (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        json_t *r = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        rc = r != NULL && json_array_append_new(arr, r) == 0
                 ? 0
                 : rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    db_finalize(st);
    pthread_mutex_unlock(&b->mu);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* --- requests --- */

int backups_request(struct backups *b, const char *id, const char *cluster, struct rv_error *err)
{
    pthread_mutex_lock(&b->mu);
    int rc = db_run(b->db, err,
                    "INSERT INTO backup_requests (id, cluster, kind, created_at)"
                    " VALUES (?, ?, 'full', ?) ON CONFLICT (id) DO NOTHING",
                    "ttl", id, cluster, (int64_t)time(NULL));
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int backups_request_record(json_t **out_record, struct backups *b, const char *id,
                           struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    char sched[RV_BACKUPS_ID_MAX + 16];
    *out_record = NULL;
    snprintf(sched, sizeof(sched), "request:%s", id);
    pthread_mutex_lock(&b->mu);
    /* a succeeded record wins over a failed attempt before it */
    int rc = db_prepare(&st, b->db, err,
                        "SELECT json FROM backup_records WHERE schedule = ?"
                        " ORDER BY status = 'succeeded' DESC, started_ms DESC LIMIT 1",
                        "t", sched);
    if (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        *out_record = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        if (*out_record == NULL)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    db_finalize(st);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* The requests of cluster still waiting for a finished record (b->mu held). */
static int requests_json(json_t *arr, struct backups *b, const char *cluster, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(&st, b->db, err,
                        "SELECT id, kind FROM backup_requests q WHERE cluster = ? AND NOT EXISTS"
                        " (SELECT 1 FROM backup_records r WHERE r.schedule = 'request:' || q.id"
                        "  AND r.status IN ('succeeded', 'failed'))"
                        " ORDER BY created_at, id",
                        "t", cluster);
    while (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        json_t *o = json_pack("{s:s, s:s}", "id", (const char *)sqlite3_column_text(st, 0), "kind",
                              (const char *)sqlite3_column_text(st, 1));
        rc = o != NULL && json_array_append_new(arr, o) == 0
                 ? 0
                 : rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    db_finalize(st);
    return rc < 0 ? rc : 0;
}

/* --- the agent configuration --- */

/* The destination of a stored backup section, with its secrets. */
static json_t *dest_json(const struct config *cfg, const json_t *bk, const char *cluster,
                         struct rv_error *err)
{
    const json_t *d = json_object_get(bk, "destination");
    const char *kind = jstr(d, "kind");
    if (kind != NULL && strcmp(kind, "local") == 0)
        return json_pack("{s:s, s:s}", "kind", "local", "path",
                         jstr(d, "path") ? jstr(d, "path") : "");
    const char *ref = jstr(d, "credentials_ref");
    const struct config_credentials *cr = config_credentials_find(cfg, ref);
    if (cr == NULL || cr->access_key_id == NULL || cr->secret_access_key == NULL) {
        rv_error_set(err, RV_EINVAL, false,
                     "cluster %s names credentials '%s' in "
                     "spec.backup.destination.s3.credentialsRef, and reeve.yaml has no such "
                     "entry; add it under 'credentials:' and restart reeve",
                     cluster, ref ? ref : "");
        return NULL;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kind", "s3", "endpoint",
                          jstr(d, "endpoint") ? jstr(d, "endpoint") : "", "region",
                          jstr(d, "region") ? jstr(d, "region") : "us-east-1", "bucket",
                          jstr(d, "bucket") ? jstr(d, "bucket") : "", "prefix",
                          jstr(d, "prefix") ? jstr(d, "prefix") : "", "access_key_id",
                          cr->access_key_id, "secret_access_key", cr->secret_access_key);
    if (o == NULL)
        rv_error_set(err, RV_ENOMEM, false, "out of memory");
    return o;
}

/* The encryption key of a stored backup section: a new string, json null
 * when none, NULL on error. */
static json_t *key_json(const struct config *cfg, const json_t *bk, const char *cluster,
                        struct rv_error *err)
{
    const char *ref = jstr(bk, "key_ref");
    if (ref == NULL)
        return json_null();
    const struct config_backup_key *k = config_backup_key_find(cfg, ref);
    if (k == NULL || k->hex == NULL) {
        rv_error_set(err, RV_EINVAL, false,
                     "cluster %s names backup key '%s' in spec.backup.encryption.keyRef, and "
                     "reeve.yaml has no such entry; add it under 'backupKeys:' and restart reeve",
                     cluster, ref);
        return NULL;
    }
    return json_string(k->hex);
}

static json_t *backup_json(const struct config *cfg, const json_t *row, const char *cluster,
                           struct rv_error *err)
{
    const json_t *bk = json_object_get(row, "backup");
    if (!json_is_object(bk))
        return json_null();
    json_t *dest = dest_json(cfg, bk, cluster, err);
    json_t *key = dest != NULL ? key_json(cfg, bk, cluster, err) : NULL;
    if (dest == NULL || key == NULL) {
        wipe_tree(dest);
        json_decref(dest);
        return NULL;
    }
    json_t *args = json_object_get(bk, "args");
    json_t *o = json_pack(
        "{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:o, s:o, s:s}", "full_cron",
        json_object_get(bk, "full_cron"), "incremental_cron",
        json_object_get(bk, "incremental_cron") ? json_object_get(bk, "incremental_cron")
                                                : json_null(),
        "retention_days", json_object_get(bk, "retention_days"), "method",
        json_object_get(bk, "method") ? json_object_get(bk, "method") : json_null(), "program",
        json_object_get(bk, "program") ? json_object_get(bk, "program") : json_null(), "args",
        args ? args : json_null(), "prefer_replica", json_object_get(bk, "prefer_replica"), "pitr",
        json_object_get(row, "pitr"), "destination", dest, "encryption_key", key,
        "test_restore_cron", BACKUPS_TEST_RESTORE_CRON);
    if (o == NULL)
        rv_error_set(err, RV_ENOMEM, false, "out of memory");
    return o;
}

static json_t *restore_json(struct backups *b, const char *cluster, struct rv_error *err)
{
    struct backups_restore rs;
    int rc = backups_resolve_restore(&rs, b, cluster, err);
    if (rc != 0)
        return NULL;
    pthread_mutex_lock(&b->mu);
    json_t *src = spec_load(b, rs.source, NULL, err, &rc);
    pthread_mutex_unlock(&b->mu);
    if (src == NULL) {
        if (rc >= 0)
            rv_error_set(err, RV_EINVAL, false, "cluster %s is not known any more", rs.source);
        return NULL;
    }
    const json_t *bk = json_object_get(src, "backup");
    json_t *dest = dest_json(b->cfg, bk, rs.source, err);
    json_t *key = dest != NULL ? key_json(b->cfg, bk, rs.source, err) : NULL;
    json_t *o = NULL;
    if (dest != NULL && key != NULL) {
        o = json_pack("{s:s, s:o, s:o, s:s, s:o}", "source_cluster", rs.source, "destination", dest,
                      "encryption_key", key, "backup_id", rs.backup_id, "point_in_time",
                      rs.point_in_time[0] ? json_string(rs.point_in_time) : json_null());
        dest = key = NULL;
        if (o == NULL)
            rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    wipe_tree(dest);
    json_decref(dest);
    json_decref(src);
    return o;
}

int backups_agent_config(char **out_json, struct backups *b, const char *cluster,
                         backups_primary_fn primary, void *ud, struct rv_error *err)
{
    bool bootstrapped = false;
    json_t *row = NULL, *doc = NULL, *requests = json_array();
    char *text = NULL;
    char digest[CRYPTO_SHA256_HEX_SIZE];
    int rc = 0;
    *out_json = NULL;
    if (requests == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    pthread_mutex_lock(&b->mu);
    row = spec_load(b, cluster, &bootstrapped, err, &rc);
    if (row != NULL)
        rc = requests_json(requests, b, cluster, err);
    pthread_mutex_unlock(&b->mu);
    if (row == NULL && rc >= 0)
        rc = rv_error_set(err, RV_ENOTFOUND, true,
                          "no applied spec of cluster %s is known yet; retry after reeve has "
                          "applied it",
                          cluster);
    if (rc < 0)
        goto out;
    json_t *backup = backup_json(b->cfg, row, cluster, err);
    if (backup == NULL) {
        rc = err->code;
        goto out;
    }
    json_t *restore = json_null();
    if (json_is_object(json_object_get(row, "from_backup")) && !bootstrapped) {
        if (primary != NULL && primary(cluster, ud)) {
            struct rv_error merr = {0};
            if (backups_mark_bootstrapped(b, cluster, &merr) != 0)
                log_warn(LOG_C, "cannot mark %s bootstrapped: %s", cluster, merr.msg);
        } else {
            restore = restore_json(b, cluster, err);
            if (restore == NULL) {
                wipe_tree(backup);
                json_decref(backup);
                rc = err->code ? err->code : RV_EINVAL;
                goto out;
            }
        }
    }
    /* the users' passwords are opened here, for this answer only */
    json_t *users = NULL;
    char users_digest[CRYPTO_SHA256_HEX_SIZE];
    if (users_config_json(&users, users_digest, json_object_get(row, "users"), cluster, b->seal,
                          err) != 0) {
        wipe_tree(backup);
        json_decref(backup);
        wipe_tree(restore);
        json_decref(restore);
        rc = err->code ? err->code : RV_EINVAL;
        goto out;
    }
    doc = json_pack("{s:s, s:s, s:o, s:o, s:O, s:s}", "cluster", cluster, "engine",
                    jstr(row, "engine") ? jstr(row, "engine") : "postgresql", "backup", backup,
                    "restore", restore, "requests", requests, "users_digest", users_digest);
    /* The digest covers the users through users_digest (keyed), not their
     * passwords: it is shown in outputs, and a plain hash over a password
     * would let anyone test guesses against it. */
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (text == NULL || crypto_sha256_hex(digest, text, strlen(text)) != 0 ||
        json_object_set_new(doc, "digest", json_string(digest)) != 0) {
        users_json_free(users);
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (json_object_set_new(doc, "users", users) != 0) { /* frees users on failure */
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    crypto_wipe(text, strlen(text));
    free(text);
    text = NULL;
    *out_json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (*out_json == NULL)
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
out:
    if (text != NULL) {
        crypto_wipe(text, strlen(text));
        free(text);
    }
    wipe_tree(doc);
    json_decref(doc);
    json_decref(requests);
    json_decref(row);
    return rc;
}

/* --- users --- */

void backups_set_seal_keys(struct backups *b, const struct seal_keys *keys)
{
    b->seal = keys;
}

int backups_users_digest(char out[CRYPTO_SHA256_HEX_SIZE], size_t *out_nusers, struct backups *b,
                         const char *cluster, struct rv_error *err)
{
    json_t *users = NULL;
    int rc;
    pthread_mutex_lock(&b->mu);
    json_t *row = spec_load(b, cluster, NULL, err, &rc);
    pthread_mutex_unlock(&b->mu);
    if (row == NULL && rc >= 0)
        rc = rv_error_set(err, RV_ENOTFOUND, false, "no applied spec of cluster %s is known",
                          cluster);
    if (rc == 0)
        rc = users_config_json(&users, out, json_object_get(row, "users"), cluster, b->seal, err);
    if (rc == 0 && out_nusers != NULL)
        *out_nusers = json_array_size(users);
    users_json_free(users);
    json_decref(row);
    return rc;
}

/* --- restores --- */

int backups_pick(struct backups_restore *out, const struct backups_pick_in *in,
                 struct rv_error *err)
{
    char pit[32], first[32], at[32];
    int64_t pit_ms = 0;
    snprintf(out->source, sizeof(out->source), "%s", in->source);
    out->backup_id[0] = out->point_in_time[0] = '\0';
    if (in->backup_id != NULL && in->point_in_time != NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "bootstrap.fromBackup names both backupId and pointInTime; give one");
    if (in->backup_id != NULL) {
        if (!in->named_found)
            return rv_error_set(err, RV_EINVAL, false,
                                "backup '%s' of %s is not known to reeve as succeeded; "
                                "'reeve backups list %s' shows its backups",
                                in->backup_id, in->source, in->source);
        snprintf(out->backup_id, sizeof(out->backup_id), "%s", in->backup_id);
        return 0;
    }
    if (in->point_in_time != NULL && agentapi_time_parse(&pit_ms, in->point_in_time, true) != 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "pointInTime '%.64s' is not an RFC 3339 time such as "
                            "2026-11-20T10:00:00Z",
                            in->point_in_time);
    if (in->nfull == 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "no succeeded backup of %s is known; take one first (its agents "
                            "back up on schedule), or bootstrap with initdb",
                            in->source);
    size_t oldest = 0, newest = 0, best = SIZE_MAX;
    for (size_t i = 0; i < in->nfull; i++) {
        if (in->full[i].ended_ms < in->full[oldest].ended_ms)
            oldest = i;
        if (in->full[i].ended_ms > in->full[newest].ended_ms)
            newest = i;
        if (in->point_in_time != NULL && in->full[i].ended_ms <= pit_ms &&
            (best == SIZE_MAX || in->full[i].ended_ms > in->full[best].ended_ms))
            best = i;
    }
    if (in->point_in_time == NULL) {
        snprintf(out->backup_id, sizeof(out->backup_id), "%s", in->full[newest].id);
        return 0;
    }
    backups_time_format(pit, pit_ms, true);
    if (best == SIZE_MAX) {
        backups_time_format(first, in->full[oldest].ended_ms, true);
        return rv_error_set(err, RV_EINVAL, false,
                            "point in time %s is before the first backup of %s finished (%s); "
                            "the earliest restorable time is %s",
                            pit, in->source, first, first);
    }
    if (in->wal_segment == NULL && pit_ms != in->full[best].ended_ms)
        return rv_error_set(err, RV_EINVAL, false,
                            "point in time %s needs the archived WAL of %s, and none is known "
                            "(is pitr.enabled set on it?); restore a whole backup with "
                            "backupId instead",
                            pit, in->source);
    if (in->wal_segment != NULL && pit_ms > in->wal_at_ms) {
        /* Retryable: the archive may still pass the target (the runner
         * waits while the target is recent); the normalized target is
         * given back for that decision. */
        backups_time_format(out->point_in_time, pit_ms, false);
        backups_time_format(at, in->wal_at_ms, true);
        return rv_error_set(err, RV_ESTALE, true,
                            "point in time %s is after the last archived WAL of %s (segment %s "
                            "archived at %s); reeve cannot restore changes that were not "
                            "archived",
                            pit, in->source, in->wal_segment, at);
    }
    snprintf(out->backup_id, sizeof(out->backup_id), "%s", in->full[best].id);
    backups_time_format(out->point_in_time, pit_ms, false);
    return 0;
}

/* The decision stored for cluster when it was made for the same
 * fromBackup (b->mu held): 1 and *out filled, 0 none. */
static int pinned_restore(struct backups_restore *out, struct backups *b, const char *cluster,
                          const json_t *fb, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    int rc = db_prepare(&st, b->db, err, "SELECT restore FROM backup_specs WHERE cluster = ?", "t",
                        cluster);
    if (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        json_t *p = text != NULL ? json_loads(text, 0, NULL) : NULL;
        const char *id = jstr(p, "backup_id"), *pit = jstr(p, "point_in_time");
        if (id != NULL && json_equal(json_object_get(p, "from"), (json_t *)fb)) {
            snprintf(out->source, sizeof(out->source), "%s", jstr(fb, "cluster"));
            snprintf(out->backup_id, sizeof(out->backup_id), "%s", id);
            snprintf(out->point_in_time, sizeof(out->point_in_time), "%s", pit ? pit : "");
            found = 1;
        }
        json_decref(p);
        rc = 0;
    }
    db_finalize(st);
    return rc < 0 ? rc : found;
}

/* Keep the decision: every later fetch and the runner see the same backup
 * even when newer backups arrive meanwhile (b->mu held). */
static int pin_restore(struct backups *b, const char *cluster, const json_t *fb,
                       const struct backups_restore *rs, struct rv_error *err)
{
    json_t *p = json_pack("{s:O, s:s, s:s?}", "from", fb, "backup_id", rs->backup_id,
                          "point_in_time", rs->point_in_time[0] ? rs->point_in_time : NULL);
    char *text = p != NULL ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(p);
    if (text == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = db_run(b->db, err, "UPDATE backup_specs SET restore = ? WHERE cluster = ?", "tt", text,
                    cluster);
    free(text);
    return rc;
}

int backups_resolve_restore(struct backups_restore *out, struct backups *b, const char *cluster,
                            struct rv_error *err)
{
    struct backups_brief *full = NULL;
    size_t nfull = 0, cap = 0;
    char *ids = NULL; /* the ids, RV_BACKUPS_ID_MAX + 1 bytes each */
    char seg[32] = "";
    int64_t wal_ms = 0;
    bool named_found = false;
    sqlite3_stmt *st = NULL;
    json_t *src = NULL;
    int rc;

    pthread_mutex_lock(&b->mu);
    json_t *row = spec_load(b, cluster, NULL, err, &rc);
    const json_t *fb = json_object_get(row, "from_backup");
    const char *source = jstr(fb, "cluster");
    if (rc >= 0 && (row == NULL || source == NULL)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "cluster %s has no bootstrap.fromBackup in its applied spec", cluster);
        goto out;
    }
    if (rc < 0)
        goto out;
    rc = pinned_restore(out, b, cluster, fb, err);
    if (rc != 0) {
        rc = rc == 1 ? 0 : rc;
        goto out;
    }
    src = spec_load(b, source, NULL, err, &rc);
    if (rc < 0)
        goto out;
    if (src == NULL || !json_is_object(json_object_get(src, "backup"))) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "cluster %s named in bootstrap.fromBackup.cluster of %s has no known "
                          "backup destination: reeve learns it from an applied spec of %s with "
                          "a backup section",
                          source, cluster, source);
        goto out;
    }
    rc = db_prepare(&st, b->db, err,
                    "SELECT backup_id, ended_ms FROM backup_records WHERE cluster = ? AND"
                    " status = 'succeeded' AND type = 'full' AND ended_ms IS NOT NULL"
                    " ORDER BY ended_ms DESC LIMIT ?",
                    "tl", source, (int64_t)RV_BACKUPS_LIST_MAX);
    while (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        if (nfull == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            struct backups_brief *nf = realloc(full, ncap * sizeof(*nf));
            char *ni = nf != NULL ? realloc(ids, ncap * (RV_BACKUPS_ID_MAX + 1)) : NULL;
            if (nf != NULL)
                full = nf;
            if (ni == NULL) {
                rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
                break;
            }
            ids = ni;
            cap = ncap;
        }
        snprintf(ids + nfull * (RV_BACKUPS_ID_MAX + 1), RV_BACKUPS_ID_MAX + 1, "%s",
                 (const char *)sqlite3_column_text(st, 0));
        full[nfull].ended_ms = sqlite3_column_int64(st, 1);
        nfull++;
        rc = 0;
    }
    db_finalize(st);
    st = NULL;
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < nfull; i++)
        full[i].id = ids + i * (RV_BACKUPS_ID_MAX + 1);
    if (jstr(fb, "backup_id") != NULL) {
        int64_t one = 0;
        rc = db_query_i64(&one, b->db, err,
                          "SELECT 1 FROM backup_records WHERE backup_id = ? AND cluster = ? AND"
                          " status = 'succeeded'",
                          "tt", jstr(fb, "backup_id"), source);
        named_found = rc == 0;
        if (rc == RV_ENOTFOUND)
            rc = 0;
        if (rc < 0)
            goto out;
    }
    rc = db_prepare(&st, b->db, err, "SELECT last_segment, at_ms FROM backup_wal WHERE cluster = ?",
                    "t", source);
    if (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        snprintf(seg, sizeof(seg), "%s", (const char *)sqlite3_column_text(st, 0));
        wal_ms = sqlite3_column_int64(st, 1);
        rc = 0;
    }
    db_finalize(st);
    st = NULL;
    if (rc < 0)
        goto out;
    struct backups_pick_in in = {
        .source = source,
        .backup_id = jstr(fb, "backup_id"),
        .point_in_time = jstr(fb, "point_in_time"),
        .full = full,
        .nfull = nfull,
        .named_found = named_found,
        .wal_segment = seg[0] ? seg : NULL,
        .wal_at_ms = wal_ms,
    };
    rc = backups_pick(out, &in, err);
    if (rc == 0)
        rc = pin_restore(b, cluster, fb, out, err);
out:
    pthread_mutex_unlock(&b->mu);
    free(full);
    free(ids);
    json_decref(src);
    json_decref(row);
    return rc;
}

/* --- verification --- */

static int open_store(struct objstore **out, const struct config *cfg, const json_t *bk,
                      const char *cluster, struct rv_error *err)
{
    const json_t *d = json_object_get(bk, "destination");
    const char *kind = jstr(d, "kind");
    *out = NULL;
    if (kind != NULL && strcmp(kind, "local") == 0)
        return objstore_local_new(out, jstr(d, "path") ? jstr(d, "path") : "", err);
    json_t *dest = dest_json(cfg, bk, cluster, err);
    if (dest == NULL)
        return err->code;
    struct s3_config sc = {
        .endpoint = jstr(dest, "endpoint"),
        .region = jstr(dest, "region"),
        .bucket = jstr(dest, "bucket"),
        .prefix = jstr(dest, "prefix"),
        .access_key_id = jstr(dest, "access_key_id"),
        .secret_access_key = jstr(dest, "secret_access_key"),
        .credentials_name = jstr(json_object_get(bk, "destination"), "credentials_ref"),
    };
    int rc = objstore_s3_new(out, &sc, err);
    wipe_tree(dest);
    json_decref(dest);
    return rc;
}

static int verify_object(struct bstream_result *res, struct objstore *store, const json_t *rec,
                         const uint8_t *key, struct rv_error *err)
{
    struct rv_source *src = NULL;
    const char *name = jstr(rec, "name");
    int rc = store->get(store, name, &src, err);
    if (rc == RV_ENOTFOUND)
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "object '%s' is missing from the destination", name);
    if (rc != 0)
        return rc;
    rc = bstream_verify(src, key, jstr(rec, "checksum"), res, err);
    rv_source_close(src);
    json_t *size = json_object_get(rec, "size");
    if (rc == 0 && json_is_integer(size) && (uint64_t)json_integer_value(size) != res->stored_bytes)
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "object '%s' holds %" PRIu64 " bytes, the record says %" PRId64, name,
                          res->stored_bytes, (int64_t)json_integer_value(size));
    return rc;
}

int backups_verify(json_t **out_record, bool *out_decoded, struct backups *b, const char *backup_id,
                   struct rv_error *err)
{
    json_t *rec = NULL, *row = NULL;
    struct objstore *store = NULL;
    struct bstream_result res;
    struct rv_error verr = {0};
    uint8_t key[BSTREAM_KEY_LEN];
    bool have_key = false;
    char cluster[2 * RV_NAME_MAX + 2] = "", at[32];
    sqlite3_stmt *st = NULL;
    int rc;

    *out_record = NULL;
    pthread_mutex_lock(&b->mu);
    rc = db_prepare(&st, b->db, err, "SELECT json, cluster FROM backup_records WHERE backup_id = ?",
                    "t", backup_id);
    if (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        rec = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        snprintf(cluster, sizeof(cluster), "%s", (const char *)sqlite3_column_text(st, 1));
        rc = 0;
    } else if (rc == 0) {
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          "no backup '%s' is known; 'reeve backups list' shows the backups",
                          backup_id);
    }
    db_finalize(st);
    if (rc == 0)
        row = spec_load(b, cluster, NULL, err, &rc);
    pthread_mutex_unlock(&b->mu);
    if (rc < 0)
        goto out;
    if (rec == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (strcmp(jstr(rec, "status"), "succeeded") != 0 || jstr(rec, "name") == NULL ||
        jstr(rec, "checksum") == NULL) {
        rc = rv_error_set(err, RV_ECONFLICT, false,
                          "backup '%s' is %s; only a succeeded backup with a checksum can be "
                          "verified",
                          backup_id, jstr(rec, "status"));
        goto out;
    }
    const json_t *bk = json_object_get(row, "backup");
    if (!json_is_object(bk)) {
        rc = rv_error_set(err, RV_ECONFLICT, false,
                          "the applied spec of %s has no backup destination any more; reeve "
                          "cannot read backup '%s'",
                          cluster, backup_id);
        goto out;
    }
    if (json_is_true(json_object_get(rec, "encrypted")) && jstr(bk, "key_ref") != NULL) {
        const struct config_backup_key *k = config_backup_key_find(b->cfg, jstr(bk, "key_ref"));
        have_key = k != NULL && k->hex != NULL && bstream_key_parse(key, k->hex, &verr) == 0;
    }
    rc = open_store(&store, b->cfg, bk, cluster, err);
    if (rc != 0)
        goto out;
    memset(&res, 0, sizeof(res));
    rc = verify_object(&res, store, rec, have_key ? key : NULL, &verr);
    if (rc != 0 && rc != RV_EINTEGRITY) {
        /* the destination could not be read: nothing is known of the object */
        rc = rv_error_set(err, rc, verr.retryable, "cannot read backup '%s' of %s: %s", backup_id,
                          cluster, verr.msg);
        goto out;
    }
    backups_time_format(at, (int64_t)time(NULL) * 1000, false);
    json_t *v = json_pack("{s:s, s:s, s:s, s:s?}", "at", at, "kind", "checksum", "status",
                          rc == 0 ? "ok" : "failed", "error", rc == 0 ? NULL : verr.msg);
    if (v == NULL || json_object_set_new(rec, "verify", v) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    log_info(LOG_C, "backup '%s' of %s verified: %s%s%s", backup_id, cluster,
             rc == 0 ? "ok" : "failed", rc == 0 ? "" : ": ", rc == 0 ? "" : verr.msg);
    char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&b->mu);
    rc = db_run(b->db, err, "UPDATE backup_records SET json = ? WHERE backup_id = ?", "tt", text,
                backup_id);
    pthread_mutex_unlock(&b->mu);
    free(text);
    if (rc == 0) {
        *out_record = rec;
        rec = NULL;
        if (out_decoded != NULL)
            *out_decoded = res.raw_bytes > 0 || res.stored_bytes == 0;
    }
out:
    crypto_wipe(key, sizeof(key));
    if (store != NULL)
        store->free(store);
    json_decref(rec);
    json_decref(row);
    return rc;
}
