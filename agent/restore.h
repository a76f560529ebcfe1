/* restore.h - restore a PostgreSQL node from a backup, to a point in time.
 *
 * restore_run() fills an absent or empty data directory from a full backup
 * (base/<id>/data in an object store, checked against the checksum in
 * base/<id>/manifest.json while it streams through the decoder into
 * `tar -x` run as the server's OS user; no full temporary copy), makes it
 * this node's (reeve.conf, pg_hba.conf), configures archive recovery
 * (reeve-recovery.conf, recovery.signal), starts the server and waits,
 * bounded and logging the replayed position, until it has reached its
 * target and promoted. The node is then a running primary on a new timeline.
 * On failure the data directory is emptied again, so it never looks usable
 * and a retry can start over; the server log is kept.
 *
 * restore_test() does the same into a scratch directory on a free loopback
 * port with archiving off, stops at the backup's consistency point, checks
 * that the server answers (and its data checksums), and deletes it: the
 * scheduled proof that a backup can be restored.
 *
 * A blocking API: call it from a worker thread or a command, never from a
 * libuv loop. The process must ignore SIGPIPE (reeve-agent does).
 */
#ifndef REEVE_AGENT_RESTORE_H
#define REEVE_AGENT_RESTORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bstream.h"
#include "engine_pg.h"
#include "err.h"
#include "limits.h"
#include "objstore.h"

enum restore_target {
    RESTORE_TARGET_END,       /* replay the whole archive, then promote */
    RESTORE_TARGET_TIME,      /* stop at target_ms, then promote */
    RESTORE_TARGET_IMMEDIATE, /* stop as soon as the backup is consistent */
};

struct restore_opts {
    struct objstore *store; /* where the backups are (borrowed) */
    const uint8_t *key;     /* BSTREAM_KEY_LEN bytes, or NULL: not encrypted */
    /* The backup to restore; NULL: the newest succeeded full backup that
     * ended at or before the target time (any, without a time). */
    const char *backup_id;
    enum restore_target target;
    int64_t target_ms; /* RESTORE_TARGET_TIME: UTC, ms since the epoch */
    /* Stop just before the transactions committed at target_ms instead of
     * just after them (recovery_target_inclusive = off). */
    bool exclusive;
    /* restore_command for the server (see restore_command_build()). */
    const char *restore_command;
    /* 0: RV_RESTORE_RECOVERY_TIMEOUT_MS. Bounds start, replay and promotion. */
    int timeout_ms;
    /* A scratch instance: archive_mode off and small shared_buffers on the
     * server's command line, the replication role left as restored. */
    bool scratch;
    /* Leave the data directory after a failure (to look at it). */
    bool keep_failed;
    /* May be NULL. Set (from another thread) to stop early: the restore
     * fails with RV_ECANCELED and cleans up as after any failure. */
    const atomic_bool *cancel;
};

struct restore_result {
    char backup_id[RV_RESTORE_ID_MAX + 1];
    uint64_t stored_bytes; /* encoded bytes read */
    uint64_t raw_bytes;    /* tar bytes extracted */
    uint32_t timeline;     /* the new timeline */
    uint64_t lsn;          /* write position right after promotion */
    /* Commit time of the last transaction replayed (RFC 3339, UTC, ms), ""
     * when none was replayed. */
    char recovered_to[RV_RESTORE_TIME_MAX + 1];
    int64_t duration_ms;
};

/* The fields of base/<id>/manifest.json a restore uses. */
struct restore_manifest {
    char backup_id[RV_RESTORE_ID_MAX + 1];
    char type[16];   /* "full" | "incremental" */
    char status[16]; /* "running" | "succeeded" | "failed" */
    char checksum[BSTREAM_SHA256_HEX_SIZE];
    bool encrypted;
    int64_t started_ms;
    int64_t ended_ms; /* the consistency point */
    uint64_t start_lsn, end_lsn;
    uint32_t timeline;
    int64_t size; /* stored bytes; -1 when absent */
};

/* Read and check base/<backup_id>/manifest.json. RV_ENOTFOUND when absent,
 * RV_EPARSE when malformed. */
int restore_manifest_load(struct restore_manifest *m, struct objstore *o, const char *backup_id,
                          struct rv_error *err);
/* The newest succeeded full backup that ended at or before target_ms
 * (has_target) or at all; RV_ENOTFOUND when there is none. */
int restore_find_backup(struct restore_manifest *m, struct objstore *o, bool has_target,
                        int64_t target_ms, struct rv_error *err);

/* "<agent_bin> wal-fetch -c <config_path> %f %p"; both paths absolute and
 * free of characters a shell or a configuration string would need quoted. */
int restore_command_build(char *out, size_t cap, const char *agent_bin, const char *config_path,
                          struct rv_error *err);

/* Restore into e's data directory (absent or empty; the server stopped) and
 * leave the server running as a primary. Errors: RV_EINTEGRITY for a
 * damaged or tampered backup, RV_EINVAL for a target before the backup's
 * consistency point or after the last archived WAL, RV_EEXISTS for a data
 * directory in use, RV_ECANCELED, RV_ETIMEOUT, RV_ECHILD, RV_EIO. res may
 * be NULL. */
int restore_run(struct pg_engine *e, const struct restore_opts *o, struct restore_result *res,
                struct rv_error *err);

struct restore_test_result {
    bool ok;
    char backup_id[RV_RESTORE_ID_MAX + 1];
    int64_t at_ms;                /* when the test started (UTC ms) */
    int64_t duration_ms;          /* extraction, recovery, checks and clean-up */
    int64_t databases;            /* SELECT count(*) FROM pg_database */
    bool checksums_checked;       /* pg_checksums --check passed (data checksums on) */
    char error[RV_ERROR_MSG_MAX]; /* "" when ok */
};

/* Test-restore o->backup_id (or the newest full backup) into a scratch
 * directory below work_dir (absolute, existing), using node's binaries,
 * superuser and OS user. o->target and o->scratch are overridden. Returns
 * 0 when the test ran, whatever its outcome (res->ok, res->error); an error
 * only when it could not run at all. */
int restore_test(const struct pg_engine_config *node, const char *work_dir,
                 const struct restore_opts *o, struct restore_test_result *res,
                 struct rv_error *err);

/* Fetch the archived WAL file (PostgreSQL's %f) into path (%p): decode
 * wal/<timeline>/<file> and write it atomically. RV_ENOTFOUND when it is not
 * in the archive (restore_command then exits 1). A minimal fetch for the
 * restore's own use and tests; reeve-agent wal-fetch is the full one. */
int restore_wal_fetch(struct objstore *o, const uint8_t *key, const char *file, const char *path,
                      struct rv_error *err);

/* RFC 3339 in UTC ("2026-11-20T10:00:00Z", optional fraction, "Z" or
 * "+00:00") to ms since the epoch; RV_EINVAL otherwise. */
int restore_time_parse(int64_t *ms, const char *s, struct rv_error *err);
/* ms since the epoch to "2026-11-20T10:00:00.000Z". */
void restore_time_format(char out[RV_RESTORE_TIME_MAX + 1], int64_t ms);

#endif
