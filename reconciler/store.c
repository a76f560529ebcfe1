#include "store.h"

#include <string.h>

#include "backups.h"
#include "journal.h"
#include "limits.h"

/* Migration 1. STRICT tables: a wrong type is an error, not a silent
 * conversion. Times are INTEGER Unix seconds. */
static const char store_schema_v1[] =
    "CREATE TABLE commits ("
    "  sha TEXT NOT NULL,"
    "  ref TEXT NOT NULL,"
    "  seen_at INTEGER NOT NULL,"
    "  PRIMARY KEY (sha, ref)"
    ") STRICT;"
    "CREATE INDEX commits_by_ref ON commits (ref, seen_at);"

    "CREATE TABLE specs ("
    "  commit_sha TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  PRIMARY KEY (commit_sha, path)"
    ") STRICT;"

    "CREATE TABLE pull_requests ("
    "  forge TEXT NOT NULL,"
    "  repo TEXT NOT NULL,"
    "  number INTEGER NOT NULL CHECK (number > 0),"
    "  head_sha TEXT NOT NULL,"
    "  base_ref TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'merged')),"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (forge, repo, number)"
    ") STRICT;"
    "CREATE INDEX pull_requests_by_head ON pull_requests (head_sha);"

    "CREATE TABLE plans ("
    "  id INTEGER PRIMARY KEY,"
    "  base_sha TEXT NOT NULL,"
    "  head_sha TEXT NOT NULL,"
    "  observed_rev INTEGER NOT NULL,"
    "  json TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX plans_by_commits ON plans (head_sha, base_sha, observed_rev);"

    "CREATE TABLE webhook_deliveries ("
    "  forge TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  PRIMARY KEY (forge, id)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (received_at);"

    /* phase: queued (to post), posted, failed (given up), superseded (a
     * newer status for the same repo+sha+context replaced it unsent). */
    "CREATE TABLE status_outbox ("
    "  id INTEGER PRIMARY KEY,"
    "  forge TEXT NOT NULL,"
    "  repo TEXT NOT NULL,"
    "  sha TEXT NOT NULL,"
    "  context TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'success', 'failure', 'error')),"
    "  description TEXT NOT NULL DEFAULT '',"
    "  target_url TEXT NOT NULL DEFAULT '',"
    "  phase TEXT NOT NULL DEFAULT 'queued'"
    "    CHECK (phase IN ('queued', 'posted', 'failed', 'superseded')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  posted_at INTEGER"
    ") STRICT;"
    "CREATE INDEX status_outbox_due ON status_outbox (phase, next_attempt_at);"
    "CREATE INDEX status_outbox_by_key ON status_outbox (forge, repo, sha, context, id);"

    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  message TEXT NOT NULL,"
    "  json TEXT"
    ") STRICT;"
    "CREATE INDEX events_by_subject ON events (subject, at);"

    "CREATE TABLE observed_instances ("
    "  provider TEXT NOT NULL,"
    "  instance_id TEXT NOT NULL,"
    "  cluster TEXT NOT NULL,"
    "  role TEXT,"
    "  version TEXT,"
    "  health TEXT,"
    "  lag_bytes INTEGER,"
    "  reported_at INTEGER NOT NULL,"
    "  ttl_s INTEGER NOT NULL CHECK (ttl_s > 0),"
    "  PRIMARY KEY (provider, instance_id)"
    ") STRICT;"
    "CREATE INDEX observed_instances_by_cluster ON observed_instances (cluster);"

    "CREATE TABLE observed_nodes ("
    "  cluster TEXT NOT NULL,"
    "  node TEXT NOT NULL,"
    "  provider TEXT,"
    "  instance_id TEXT,"
    "  role TEXT NOT NULL CHECK (role IN ('primary', 'replica', 'unknown')),"
    "  version TEXT,"
    "  health TEXT NOT NULL,"
    "  lag_bytes INTEGER,"
    "  reported_at INTEGER NOT NULL,"
    "  ttl_s INTEGER NOT NULL CHECK (ttl_s > 0),"
    "  PRIMARY KEY (cluster, node)"
    ") STRICT;"

    "CREATE TABLE actions ("
    "  id INTEGER PRIMARY KEY,"
    "  plan_id INTEGER REFERENCES plans (id),"
    "  idempotency_key TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  cluster TEXT NOT NULL,"
    "  node TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed',"
    "                                       'canceled')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER,"
    "  deadline INTEGER,"
    "  output TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX actions_by_state ON actions (state, next_attempt_at);"
    "CREATE INDEX actions_by_plan ON actions (plan_id);";

/* Migration 2 (reconciler/pages.c): plan pages. plans.json holds a page's
 * head (the document without the plan's actions); plan_pages the whole
 * document and the plan's text form, zstd-compressed: the plan of a large
 * fleet is tens of MiB of JSON, a few hundred KiB compressed. */
static const char store_schema_v2[] =
    "CREATE TABLE plan_pages ("
    "  plan_id INTEGER PRIMARY KEY REFERENCES plans (id) ON DELETE CASCADE,"
    "  json_zst BLOB NOT NULL,"
    "  text_zst BLOB NOT NULL"
    ") STRICT;";

const struct db_migration store_migrations[] = {
    {"initial schema", store_schema_v1},
    {"plan pages", store_schema_v2},
    {"action journal", journal_schema_sql}, /* reconciler/journal.c */
    {"backups", backups_schema_sql},        /* reconciler/backups.c */
    /* the agents' backup log lines (reconciler/backups.c) */
    {"backup logs", backups_logs_sql},
};
const size_t store_migrations_len = sizeof(store_migrations) / sizeof(store_migrations[0]);

int store_open(struct db **out, const char *path, const struct db_options *opt,
               struct rv_error *err)
{
    struct db *db = NULL;
    int rc = db_open(&db, path, opt, err);
    if (rc != 0)
        goto out;
    rc = db_migrate(db, store_migrations, store_migrations_len, err);
    if (rc != 0)
        goto out;
    *out = db;
    db = NULL;
out:
    db_free(db);
    return rc;
}

int store_webhook_delivery(bool *out_duplicate, struct db *db, const char *forge,
                           const char *delivery_id, int64_t now, struct rv_error *err)
{
    size_t len = strlen(delivery_id);
    if (len == 0 || len > RV_WEBHOOK_DELIVERY_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "webhook delivery id from forge '%s' is empty or longer than %d "
                            "characters; the request is not from a supported forge",
                            forge, RV_WEBHOOK_DELIVERY_MAX);
    int rc = db_run(db, err,
                    "INSERT INTO webhook_deliveries (forge, id, received_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (forge, id) DO NOTHING",
                    "ttl", forge, delivery_id, now);
    if (rc != 0)
        return rc;
    *out_duplicate = db_changes(db) == 0;
    return 0;
}

int store_webhook_prune(int64_t *out_deleted, struct db *db, int64_t before, struct rv_error *err)
{
    int rc = db_run(db, err, "DELETE FROM webhook_deliveries WHERE received_at < ?", "l", before);
    if (rc == 0 && out_deleted)
        *out_deleted = db_changes(db);
    return rc;
}

int store_event_append(struct db *db, int64_t at, const char *kind, const char *subject,
                       const char *message, const char *json, struct rv_error *err)
{
    return db_run(db, err,
                  "INSERT INTO events (at, kind, subject, message, json) VALUES (?, ?, ?, ?, ?)",
                  "ltttt", at, kind, subject, message, json);
}
