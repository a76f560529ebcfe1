/* backup_pg.h - taking backups on this node: full PostgreSQL backups with
 * pg_basebackup or an external program, WAL archiving (wal-push, wal-fetch),
 * retention, the backup role, and the jobs' scripts and notifications.
 *
 * A backup streams: the program's stdout goes through the bstream encoder
 * (zstd, AES-256-GCM when a key is configured, SHA-256) straight into the
 * destination's sink, RV_BACKUP_CHUNK bytes at a time, so there is never a
 * full temporary copy on disk or in memory. The encoded tar is
 * base/<id>/data; base/<id>/manifest.json (the record) is written last, so
 * its presence means the backup completed. A backup that fails or is killed
 * aborts its sink: no object appears under its final key, and its record
 * says "failed" (or stays "running" after kill -9, which the scheduler
 * turns into "failed" at its next start).
 *
 * pg_basebackup runs as the server's OS user over the unix socket, as the
 * role reeve_backup (REPLICATION LOGIN), with `-F tar -D - -X fetch
 * --checkpoint=fast`: the WAL needed to make the copy consistent is inside
 * the tar, so every full backup restores on its own, also without the WAL
 * archive (stream mode cannot write to stdout).
 *
 * Blocking API: call it from the scheduler thread or a subcommand.
 */
#ifndef REEVE_BACKUP_PG_H
#define REEVE_BACKUP_PG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "backup_db.h"
#include "bstream.h"
#include "child.h"
#include "config.h"
#include "crypto.h"
#include "err.h"
#include "objstore.h"

/* The role that takes backups, created on the primary. */
#define BACKUP_ROLE "reeve_backup"

/* What one backup operation needs. Fill with backup_ctx_open(); release
 * with backup_ctx_release(). */
struct backup_ctx {
    const struct agent_config *cfg;     /* borrowed */
    struct backup_db *db;               /* owned */
    json_t *config;                     /* the stored configuration (secrets open), or NULL */
    json_t *backup;                     /* its "backup" section (borrowed from config), or NULL */
    struct objstore *store;             /* destination of `backup`, or NULL */
    char location[RV_PG_PATH_MAX + 64]; /* "file:///root" or "s3://bucket/prefix" */
    uint8_t key[BSTREAM_KEY_LEN];
    bool has_key;
    bool run_as; /* children switch to uid/gid */
    uid_t uid;
    gid_t gid;
    const atomic_bool *cancel;     /* may be NULL */
    char dir[RV_PG_PATH_MAX + 16]; /* backup.db, node.key, backup.lock */
    bool progress_stderr;          /* the `backup` subcommand: progress lines on stderr */
};

/* The directory holding backup.db and node.key: <state_dir>/backup. */
int backup_dir(char *out, size_t cap, const struct agent_config *cfg, struct rv_error *err);

/* Open the backup database and the stored configuration's destination.
 * create false: a node without backup.db gives RV_ENOTFOUND. A
 * configuration without a backup section leaves c->store NULL. When the
 * database opened but the configuration is unusable (a bad destination or
 * key) the error is returned with c->db still open: release c either way. */
int backup_ctx_open(struct backup_ctx *c, const struct agent_config *cfg, bool create,
                    struct rv_error *err);
/* Re-read the configuration from the database and reopen the store. */
int backup_ctx_reload(struct backup_ctx *c, struct rv_error *err);
void backup_ctx_release(struct backup_ctx *c);

/* Open the object store of a destination object ({"kind":"local","path"} or
 * {"kind":"s3",...}); *location gets its URL prefix. */
int backup_store_open(struct objstore **out, char *location, size_t cap, json_t *destination,
                      struct rv_error *err);

/* Take a full backup now with the configured method. schedule is
 * "scheduled", "manual", "final" or "request:<id>". *out (may be NULL) is
 * the final record (json_decref it). Returns 0 when the backup succeeded;
 * the record is in backup.db in every case once the backup started. */
int backup_full(json_t **out, struct backup_ctx *c, const char *schedule, struct rv_error *err);

/* Take the node's backup lock (<dir>/backup.lock, flock): RV_EBUSY while
 * another process holds it. Close *fd to release. */
int backup_lock(int *fd, struct backup_ctx *c, struct rv_error *err);

/* archive_command: encode and upload path (PostgreSQL's %p) to
 * wal/<timeline>/<file>. An object already there with the same content is
 * success; a different one is RV_ECONFLICT. */
int backup_wal_push(struct backup_ctx *c, const char *path, struct rv_error *err);
/* restore_command: fetch file (%f) into path (%p) through a temporary file
 * and a rename. RV_ENOTFOUND when the archive does not have it. Uses the
 * configuration's "restore" source while the node is restoring, else its
 * own backup destination. */
int backup_wal_fetch(struct backup_ctx *c, const char *file, const char *path,
                     struct rv_error *err);

/* Delete full backups older than retention_days (keeping the newest
 * succeeded one whatever its age) and the WAL older than the start of the
 * oldest kept one. *deleted (may be NULL) counts the objects removed. */
int backup_retention(struct backup_ctx *c, int64_t now, size_t *deleted, struct rv_error *err);

/* On a primary: create or update the backup role (REPLICATION LOGIN, its
 * password sealed in backup.db). On every node: let it in over the unix
 * socket (pg_hba.conf). Idempotent. */
int backup_role_ensure(struct backup_ctx *c, bool primary, struct rv_error *err);

/* Whether the local server is in recovery (a standby); RV_EUNAVAIL when it
 * does not answer. */
int backup_pg_in_recovery(bool *out, struct backup_ctx *c, struct rv_error *err);

/* Check a stored backup's data object against its checksum (no key
 * needed; with the key every chunk is decoded too). */
int backup_verify_checksum(struct backup_ctx *c, const char *backup_id, const char *checksum,
                           struct rv_error *err);

/* Run a job's command (pre/post script, notification) through /bin/sh -c
 * with REEVE_* variables, bounded by RV_BACKUP_HOOK_TIMEOUT_MS. */
int backup_hook_run(struct backup_ctx *c, const char *what, const char *command, json_t *rec,
                    struct rv_error *err);

/* A backup record (docs/backups.md) of a full backup by method, "running"
 * since started (ms since the epoch), its outcome fields null; params: the
 * job's args when with_params, else []. NULL when out of memory. */
json_t *backup_record_new(struct backup_ctx *c, const char *id, const char *schedule,
                          const char *method, bool with_params, int64_t started);
/* Set a record's status, error (NULL: none), ended_at and duration_ms. */
void backup_record_end(json_t *rec, const char *status, const char *error, int64_t started);
/* Write base/<id>/manifest.json (plain JSON, no secrets). */
int backup_manifest_put(struct backup_ctx *c, const char *id, json_t *rec, struct rv_error *err);

/* The archive_command for this agent: "'<exe>' wal-push -c '<cfg>' %p". */
int backup_archive_command(char *out, size_t cap, const char *exe, const char *cfg_path,
                           struct rv_error *err);

/* A new backup id: <UTC yyyymmddThhmmssZ>-<8 hex>. */
int backup_id_new(char out[32], int64_t now_ms);
/* RFC 3339 UTC with ms ("2026-11-21T08:05:01.123Z"). */
void backup_time_format(char out[32], int64_t ms);
int64_t backup_now_ms(void);
/* The password of the backup login, the same on every node without
 * travelling: an HMAC (label "<purpose>:<namespace>/<cluster>") of the
 * replication password; without one, the password sealed in backup.db
 * under secret. who names the login in messages ("role reeve_backup"). */
int backup_password(char out[CRYPTO_SHA256_HEX_SIZE], struct backup_ctx *c, const char *who,
                    const char *secret, const char *purpose, struct rv_error *err);
/* A backup tool's environment: the agent's PATH only, LC_ALL=C, HOME=/,
 * then extra (NULL-terminated, may be NULL; not copied). NULL when out of
 * memory; free() it. */
char **backup_env(const char *const *extra);
/* Start a backup tool (lib/child), as uid/gid when run_as: its stdin a
 * non-blocking pipe (ch->in) when feed, else /dev/null; its stdout and
 * stderr pipes (ch->out, ch->err). */
int backup_spawn(struct child *ch, const char *const argv[], char *const envp[], bool run_as,
                 uid_t uid, gid_t gid, bool feed, struct rv_error *err);
/* Kill (when kill_it is set) and reap ch, else close its pipes and wait;
 * the exit code, -1 after a signal. */
int backup_child_finish(struct child *ch, bool kill_it);

#endif
