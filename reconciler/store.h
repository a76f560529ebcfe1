/* store.h - the reconciler's SQLite database: its schema, as a list of
 * migrations, and the few queries shared between modules.
 *
 * Tables (migration 1, "initial schema"; times are Unix epoch seconds):
 *   commits             (sha, ref, seen_at)           commits fetched per ref
 *   specs               (commit_sha, path, digest)    spec file digests per commit
 *   pull_requests       (forge, repo, number, head_sha, base_ref, state, updated_at)
 *   plans               (id, base_sha, head_sha, observed_rev, json, created_at)
 *                       json: a plan page's head (see pages.h)
 *   plan_pages          (plan_id, json_zst, text_zst)   the whole page, compressed
 *                       (migration 2, pages.h)
 *   webhook_deliveries  (forge, id, received_at)      dedup across restarts; pruned
 *   status_outbox       commit statuses waiting to be posted (see outbox.h)
 *   events              (id, at, kind, subject, message, json)   audit trail
 *   observed_instances  (provider, instance_id, cluster, role, version, health,
 *                        lag_bytes, reported_at, ttl_s)  provider inventory
 *   observed_nodes      (cluster, node, provider, instance_id, role, version,
 *                        health, lag_bytes, reported_at, ttl_s)  agent reports
 *   actions             (id, plan_id, idempotency_key UNIQUE, kind, cluster, node,
 *                        state, attempts, next_attempt_at, deadline, output, ...)
 *                       the executor's journal; the shape is reserved here
 *   backup_specs, backup_records, backup_wal, backup_requests
 *                       backups (migration 4, "backups", reconciler/backups.h)
 *
 * Schema changes are new migrations appended to store_migrations; a shipped
 * migration is never edited.
 */
#ifndef REEVE_STORE_H
#define REEVE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

extern const struct db_migration store_migrations[];
extern const size_t store_migrations_len;

/* Open the reconciler database at path and migrate it to the current
 * schema. opt may be NULL for db defaults. Free with db_free(). */
int store_open(struct db **out, const char *path, const struct db_options *opt,
               struct rv_error *err);

/* Remember a webhook delivery; *out_duplicate is true when (forge, id) was
 * already seen (the delivery must then be acknowledged and ignored). */
int store_webhook_delivery(bool *out_duplicate, struct db *db, const char *forge,
                           const char *delivery_id, int64_t now, struct rv_error *err);
/* Forget deliveries received before `before`; *out_deleted may be NULL. */
int store_webhook_prune(int64_t *out_deleted, struct db *db, int64_t before, struct rv_error *err);

/* Append an audit event; json may be NULL. */
int store_event_append(struct db *db, int64_t at, const char *kind, const char *subject,
                       const char *message, const char *json, struct rv_error *err);

#endif
