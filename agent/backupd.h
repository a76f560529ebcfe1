/* backupd.h - the backup scheduler of reeve-agent: one thread of its own
 * (not the libuv pool: a backup runs for hours and must not hold a worker
 * the autopilot needs).
 *
 * Every RV_BACKUP_POLL_MS it
 *   - fetches GET /v1/agents/config with the agent token and stores it in
 *     backup.db (secrets sealed); when the reconciler is unreachable it
 *     goes on with the stored copy, so scheduled backups keep running;
 *   - reads the cluster's node keys from the DCS and caches that view (also
 *     in backup.db) to decide which node backs up: the primary, or with
 *     prefer_replica the healthy replica with the least lag (the primary
 *     when no healthy replica is known, or the cached view is older than
 *     RV_BACKUP_VIEW_MAX_AGE_MS);
 *   - on the primary, makes sure the backup role exists;
 *   - runs due jobs: the full backup (cron "full_cron"), then retention;
 *     the test restore (cron "test_restore_cron": checksum of the newest
 *     full backup, then restore_test() into a scratch directory, the result
 *     stored in the record's "verify"); each request of the config once
 *     (schedule "request:<id>");
 *   - sends unsynced records with POST /v1/agents/backups and marks them
 *     synced after a 200.
 * A record left "running" by a killed agent is marked failed at start.
 * backupd_stop() cancels a backup in flight (its child is killed, its
 * upload aborted, its record failed) and joins the thread.
 */
#ifndef REEVE_BACKUPD_H
#define REEVE_BACKUPD_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

struct backupd;

struct backupd_opts {
    const struct agent_config *cfg; /* borrowed; outlives the scheduler */
    const char *exe;                /* absolute path of reeve-agent (restore_command) */
    int poll_ms;                    /* 0: RV_BACKUP_POLL_MS */
};

/* Start the thread. Call after agent_start() (the watchdog forks first). */
int backupd_start(struct backupd **out, const struct backupd_opts *o, struct rv_error *err);
/* Cancel, join and free; NULL is a no-op. */
void backupd_stop(struct backupd *d);

/* Mark records left "running" by a process that died as failed; no-op while
 * another process holds the backup lock. */
struct backup_ctx;
int backupd_sweep_interrupted(struct backup_ctx *c, struct rv_error *err);

#endif
