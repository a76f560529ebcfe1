/* restore_cmd.h - the restore subcommand of reeve-agent (docs/restore.md):
 *
 *   reeve-agent restore -c agent.yaml --to DIR [--backup ID]
 *       [--point-in-time 2026-11-20T10:00:00.000Z] [--port N] [--stop] [--json]
 *       [--from /abs/store/dir [--key-file /abs/key]]
 *
 * Restores into DIR (absent or empty) and leaves the server running as a
 * primary (--stop: stopped). The source is the node's stored configuration
 * (its own backups; the "restore" source when DIR is the node's data
 * directory or the node has no backups of its own), or --from a local
 * directory store. The internal form
 *
 *   reeve-agent restore wal-fetch --from DIR [--key-file F] <file> <path>
 *
 * is the restore_command of a --from restore.
 */
#ifndef REEVE_RESTORE_CMD_H
#define REEVE_RESTORE_CMD_H

#include <stdatomic.h>
#include <stdbool.h>

#include "backup_mariadb.h"
#include "config.h"
#include "engine_mariadb.h"
#include "engine_pg.h"
#include "err.h"
#include "restore.h"

/* The same for a MariaDB node: restore_mdb_from_config() with the stored
 * configuration's "restore" section (its chain, up to its point in time),
 * *restored false without one, RV_ENOTFOUND (retryable) while nothing is
 * stored yet. */
int restore_from_config_mdb(struct mdb_engine *e, const struct agent_config *cfg,
                            const atomic_bool *cancel, bool *restored,
                            struct restore_mdb_result *res, struct rv_error *err);

/* Whether name is "restore". */
bool restore_cmd_is(const char *name);
/* Run argv[1] == "restore"; returns the exit code: 0 restored, 1 failed,
 * 2 usage or configuration. */
int restore_cmd_main(int argc, char **argv);

/* For bootstrap_primary: when the configuration stored by the backup
 * daemon has a "restore" section, restore its backup (to its point in
 * time) into e's data directory (the node's own, absent or empty), with
 * "<this executable> wal-fetch -c <cfg->config_path> %f %p" as
 * restore_command, and set *restored. Without a "restore" section returns 0
 * with *restored false: initdb as usual. RV_ENOTFOUND (retryable) while no
 * configuration has been stored yet. Other errors as restore_run(). res may
 * be NULL. Blocking: call it from a step. */
int restore_from_config(struct pg_engine *e, const struct agent_config *cfg,
                        const atomic_bool *cancel, bool *restored, struct restore_result *res,
                        struct rv_error *err);

#endif
