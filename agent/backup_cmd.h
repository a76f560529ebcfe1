/* backup_cmd.h - reeve-agent's backup subcommands and the engine settings
 * WAL archiving needs (docs/backups.md):
 *
 *   reeve-agent wal-push -c agent.yaml <path>          archive_command (%p)
 *   reeve-agent wal-fetch -c agent.yaml <file> <path>  restore_command (%f %p)
 *   reeve-agent backup -c agent.yaml [--json]          a full backup now
 *   reeve-agent backups list -c agent.yaml [--json]    the records on this node
 *   reeve-agent backups verify -c agent.yaml <id>      check a backup's checksum
 */
#ifndef REEVE_BACKUP_CMD_H
#define REEVE_BACKUP_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"

/* Whether name is one of the subcommands above. */
bool backup_cmd_is(const char *name);
/* Run argv[1] (a subcommand) and return the process exit code: 0 success,
 * 1 failure (wal-fetch: also "not in the archive", quietly), 2 usage. */
int backup_cmd_main(int argc, char **argv);

/* The absolute path of this executable (/proc/self/exe). */
int backup_self_exe(char *out, size_t cap, struct rv_error *err);

/* Append archive_mode = on and archive_command (running exe wal-push with
 * cfg's own file) to cfg's engine parameters, unless the configuration
 * sets archive_command itself. */
int backup_engine_params(struct agent_config *cfg, const char *exe, struct rv_error *err);

#endif
