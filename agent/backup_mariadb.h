/* backup_mariadb.h - MariaDB (10.11) backups through the backup pipeline:
 * full and incremental physical backups with mariadb-backup, and their
 * restore.
 *
 * A backup runs `mariadb-backup --backup --stream=xbstream` as the server's
 * OS user over the node's unix socket, as the dedicated database user
 * reeve_backup@localhost (RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR,
 * SLAVE MONITOR; created on the primary by backup_mdb_user_ensure(), its
 * password derived from the replication password like PostgreSQL's backup
 * role and handed to the tool in a 0600 option file, never on a command
 * line). Its stdout goes through the bstream encoder straight into
 * base/<id>/data, exactly like a PostgreSQL backup (backup_pg.h): no full
 * copy on disk. The tool's small metadata files (xtrabackup_checkpoints,
 * xtrabackup_info) go to a scratch --extra-lsndir, from which the record
 * gets the InnoDB LSN range ("start_lsn" = from_lsn, "end_lsn" = to_lsn, as
 * decimal strings) and "gtid" (the GTID position of the copy).
 *
 * An incremental backup (`--incremental-lsn=<end_lsn of its parent>`) has
 * type "incremental", "set_id" = the chain's full backup, and "parent" =
 * the backup it builds on (the newest succeeded backup of the newest full
 * backup's chain taken by this node: LSNs belong to one server). Without
 * such a full backup, or once the chain holds RV_MDB_BACKUP_CHAIN_MAX
 * backups, an incremental request takes a full backup instead.
 *
 * Restore (restore_mdb_run): the chain from the full backup to the chosen
 * backup, each object checked and decoded into `mbstream -x` in a work
 * directory, `mariadb-backup --prepare` of the full backup then
 * `--prepare --incremental-dir=` of each incremental in order,
 * `--move-back` into the empty data directory, the server started with the
 * restored GTID position as its binary log state, then made writable.
 *
 * Blocking API: call it from the scheduler thread or a subcommand. The
 * process must ignore SIGPIPE (reeve-agent does).
 */
#ifndef REEVE_BACKUP_MARIADB_H
#define REEVE_BACKUP_MARIADB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backup_pg.h"
#include "config.h"
#include "engine_mariadb.h"
#include "err.h"
#include "limits.h"
#include "objstore.h"

/* The database user that takes backups (@localhost). */
#define BACKUP_MDB_USER "reeve_backup"
/* The value of the configuration's backup "method". */
#define BACKUP_MDB_METHOD "mariabackup"

/* Whether c's backups are MariaDB ones: the agent's engine is mariadb or
 * the configured method is "mariabackup". */
bool backup_is_mariadb(const struct backup_ctx *c);

/* Fill e (mdb_engine_init) from the agent configuration's engine section,
 * for backups (engine.parameters are left out: a backup never rewrites
 * reeve.cnf). Release it with mdb_engine_release(). */
int backup_mdb_engine(struct mdb_engine *e, const struct agent_config *cfg, struct rv_error *err);

/* The backup user's password sealed in backup.db on every node; on a
 * primary, the user created or updated with its grants (the password
 * hashed by the server: only the hash reaches the binary log). Idempotent. */
int backup_mdb_user_ensure(struct backup_ctx *c, bool primary, struct rv_error *err);

/* Whether the local server is read-only (a replica or fenced);
 * RV_EUNAVAIL when it does not answer. */
int backup_mdb_read_only(bool *out, struct backup_ctx *c, struct rv_error *err);

/* Take a full backup now (schedule as in backup_full()). *out (may be NULL)
 * is the final record. 0 when it succeeded; the record is in backup.db in
 * every case once the backup started. */
int backup_mdb_full(json_t **out, struct backup_ctx *c, const char *schedule, struct rv_error *err);
/* Take an incremental backup on this node's newest chain (a full backup
 * when there is none to build on, see above). */
int backup_mdb_incremental(json_t **out, struct backup_ctx *c, const char *schedule,
                           struct rv_error *err);

/* Retention for MariaDB backups: a chain (a full backup and its
 * incrementals) is deleted as a whole once all of its backups started more
 * than retention_days ago, never the newest full backup's chain; data
 * objects without a manifest go once past retention. *deleted (may be NULL)
 * counts the objects removed. */
int backup_mdb_retention(struct backup_ctx *c, int64_t now, size_t *deleted, struct rv_error *err);

struct restore_mdb_opts {
    struct objstore *store; /* where the backups are (borrowed) */
    const uint8_t *key;     /* BSTREAM_KEY_LEN bytes, or NULL: not encrypted */
    /* The backup to restore to (full or incremental; its chain is applied).
     * NULL: the newest succeeded MariaDB backup that ended at or before
     * target_ms (has_target), or at all: point in time at backup
     * granularity. */
    const char *backup_id;
    bool has_target;
    int64_t target_ms; /* UTC, ms since the epoch */
    /* Scratch directory for the extracted chain (must not exist; removed
     * after); NULL: "<data_dir>.reeve-restore". Needs room for the full
     * backup's data plus the incrementals. */
    const char *work_dir;
    const atomic_bool *cancel; /* may be NULL: RV_ECANCELED when set */
};

struct restore_mdb_result {
    char backup_id[RV_RESTORE_ID_MAX + 1]; /* the backup restored to */
    char set_id[RV_RESTORE_ID_MAX + 1];    /* its chain's full backup */
    size_t chain_len;                      /* backups applied, the full one included */
    uint64_t stored_bytes;                 /* encoded bytes read */
    uint64_t raw_bytes;                    /* xbstream bytes extracted */
    char gtid[RV_MDB_BACKUP_GTID_SIZE];    /* GTID position restored ("" if none) */
    char consistent_at[32];                /* the restored backup's ended_at */
    int64_t duration_ms;
};

/* Restore into e's data directory (absent or empty; the server stopped)
 * and leave the server running as a writable primary whose binary log
 * continues the restored GTID position. Errors: RV_EINTEGRITY for a damaged
 * or tampered backup or a broken chain, RV_ENOTFOUND when no backup
 * matches, RV_EEXISTS for a data directory in use, RV_ECANCELED,
 * RV_ETIMEOUT, RV_ECHILD, RV_EIO. On failure the server is stopped and the
 * data directory emptied (it never looks usable). res may be NULL. */
int restore_mdb_run(struct mdb_engine *e, const struct restore_mdb_opts *o,
                    struct restore_mdb_result *res, struct rv_error *err);

/* The bootstrap's restore: restore_mdb_run() from the configuration's
 * "restore" section ({"destination", "encryption_key", "backup_id",
 * "point_in_time"}, as GET /v1/agents/config sends it). With a
 * point_in_time, the newest backup (incrementals included) that ended by
 * then; else backup_id; else the newest. */
int restore_mdb_from_config(struct mdb_engine *e, json_t *restore, const atomic_bool *cancel,
                            struct restore_mdb_result *res, struct rv_error *err);

#endif
