/* backup_db.h - reeve-agent's local backup database: <dir>/backup.db
 * (SQLite, WAL mode) beside the node key <dir>/node.key.
 *
 * It holds what backups need while the reconciler is away: the last
 * configuration received (GET /v1/agents/config), the jobs derived from it,
 * the next run of each job, the backup records (with a synced flag: a
 * record is sent to the reconciler until it answers 200) and per-backup log
 * lines, plus small state (the cached DCS view, the last archived WAL).
 *
 * Secrets at rest. node.key holds 32 random bytes (64 hex characters,
 * mode 0600), made on first open. Every secret stored here (object-store
 * credentials, encryption keys, the backup role's password) is sealed with
 * AES-256-GCM under that key: "enc:v1:" + base64(nonce || ciphertext || tag),
 * with the secret's name as associated data, so a sealed value cannot be
 * moved to another field. Secrets are never logged.
 *
 * Ownership. The database is opened both by the agent (often root) and by
 * the server's OS user (archive_command runs wal-push as that user), so the
 * directory, the key and the database belong to that user when an owner is
 * given. One struct backup_db is one connection: use it from one thread.
 */
#ifndef REEVE_BACKUP_DB_H
#define REEVE_BACKUP_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "err.h"

struct backup_db;

/* Open (creating dir, node.key and the database as needed) dir/backup.db.
 * When uid is not (uid_t)-1 the directory and files are chowned to
 * uid:gid. With create false, a missing database is RV_ENOTFOUND (wal-push
 * on a node that never had a backup configuration). */
int backup_db_open(struct backup_db **out, const char *dir, bool create, uid_t uid, gid_t gid,
                   struct rv_error *err);
void backup_db_free(struct backup_db *b);

/* Seal plain under the node key; *out is "enc:v1:..." (free() it). name is
 * the associated data (the field it belongs to). */
int backup_db_seal(char **out, struct backup_db *b, const char *name, const char *plain,
                   struct rv_error *err);
/* Open a sealed value; RV_EINTEGRITY when it was altered, sealed under
 * another key or for another name. Wipe and free *out. */
int backup_db_unseal(char **out, struct backup_db *b, const char *name, const char *sealed,
                     struct rv_error *err);

/* Store a configuration answer (borrowed, secrets in the clear): every
 * member named access_key_id, secret_access_key, encryption_key or password
 * is sealed before it is written, and the jobs table is rebuilt from it.
 * *changed (may be NULL) says whether the digest differs from the stored
 * one. */
int backup_db_config_save(struct backup_db *b, json_t *config, bool *changed, struct rv_error *err);
/* The stored configuration with its secrets opened (*out NULL when none was
 * ever stored). json_decref it (secrets are wiped only by the caller's
 * discipline: keep it short-lived). */
int backup_db_config_load(json_t **out, struct backup_db *b, struct rv_error *err);

/* A named secret of its own (the backup role's password). get gives
 * RV_ENOTFOUND when absent. */
int backup_db_secret_set(struct backup_db *b, const char *name, const char *plain,
                         struct rv_error *err);
int backup_db_secret_get(char **out, struct backup_db *b, const char *name, struct rv_error *err);

/* Small state: text values by key ("view", "wal_last_segment", ...). get
 * gives RV_ENOTFOUND when absent. */
int backup_db_state_set(struct backup_db *b, const char *key, const char *value,
                        struct rv_error *err);
int backup_db_state_get(char **out, struct backup_db *b, const char *key, struct rv_error *err);

/* Schedule: the next run (epoch seconds) of a job under a cron text; the
 * stored time is forgotten when the cron text changed (RV_ENOTFOUND). */
int backup_db_next_get(int64_t *out, struct backup_db *b, const char *job, const char *cron,
                       struct rv_error *err);
int backup_db_next_set(struct backup_db *b, const char *job, const char *cron, int64_t next,
                       struct rv_error *err);

/* Records (the JSON of docs/backups.md). put upserts by backup_id and
 * clears the synced flag. */
int backup_db_record_put(struct backup_db *b, json_t *rec, struct rv_error *err);
/* RV_ENOTFOUND when absent. */
int backup_db_record_get(json_t **out, struct backup_db *b, const char *backup_id,
                         struct rv_error *err);
/* Every record, oldest first (a JSON array). unsynced_only: only those the
 * reconciler has not acknowledged, at most max. */
int backup_db_records(json_t **out, struct backup_db *b, bool unsynced_only, size_t max,
                      struct rv_error *err);
/* Mark a record synced, unless it changed since `rec_json` was read (a
 * running backup that finished meanwhile stays unsynced). */
int backup_db_record_synced(struct backup_db *b, const char *backup_id, const char *rec_json,
                            struct rv_error *err);
/* Whether a schedule ("request:<id>") has a record already. */
int backup_db_schedule_seen(bool *out, struct backup_db *b, const char *schedule,
                            struct rv_error *err);

/* Forget synced, finished records (and their log lines) that started
 * before `before` (RFC 3339, compared as text): the local history stays
 * bounded by the retention period. A record whose log lines have not all
 * been sent stays until they are. *removed (may be NULL) counts them. */
int backup_db_prune(struct backup_db *b, const char *before, size_t *removed, struct rv_error *err);

/* One log line for a backup (also kept when the backup fails); the oldest
 * lines beyond RV_BACKUP_LOG_LINES_MAX per backup are dropped. level is one
 * of debug, info, warn, error (anything else is stored as info). Each line
 * has a synced flag: it is sent to the reconciler once (see
 * backup_db_logs_unsynced). Errors are ignored: a log line never fails a
 * backup. */
void backup_db_log(struct backup_db *b, const char *backup_id, const char *level, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* Log lines for POST /v1/agents/backups: at most max unsynced lines, oldest
 * first, of backups the reconciler has (their record is synced) or whose
 * record goes in the same request (batch_ids: a JSON array of backup ids),
 * so the reconciler never gets a line of a backup it does not know. *out
 * is an array of {"backup_id","at","level","line"}, each line cleaned with
 * backup_db_line_clean; *out_ids the lines' row ids for
 * backup_db_logs_synced. json_decref both. */
int backup_db_logs_unsynced(json_t **out, json_t **out_ids, struct backup_db *b,
                            const json_t *batch_ids, size_t max, struct rv_error *err);
/* Mark the lines (row ids from backup_db_logs_unsynced) sent. */
int backup_db_logs_synced(struct backup_db *b, const json_t *ids, struct rv_error *err);
/* Every line of one backup, oldest first: {"backup_id","at","level","line",
 * "synced"}. */
int backup_db_logs(json_t **out, struct backup_db *b, const char *backup_id, struct rv_error *err);
/* Make s acceptable to the reconciler in place: control characters (C0,
 * DEL, C1) become spaces, bytes that are not UTF-8 become '?'. */
void backup_db_line_clean(char *s);

#endif
