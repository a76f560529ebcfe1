/* hooks.h - the external commands of the autopilot handlers (agent config
 * `handlers`, docs/agent.md "Handlers").
 *
 * A command runs as the agent's own user, with /dev/null as stdin, its
 * stdout and stderr captured together (the last RV_AGENT_HANDLER_OUTPUT_MAX
 * bytes kept), in its own process group, which is killed (SIGKILL) at the
 * handler's timeout or when the caller's abort flag turns true. Its
 * environment is PATH, HOME, LANG, LC_* and TZ from the agent (nothing
 * else, so no secret the agent was given reaches it) and the REEVE_*
 * variables describing the event. Blocking: call from a worker thread.
 */
#ifndef REEVE_AGENT_HOOKS_H
#define REEVE_AGENT_HOOKS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "err.h"

/* What the command is told (REEVE_ROLE, REEVE_PRIMARY, REEVE_OLD_ROLE,
 * REEVE_NEW_ROLE); NULL reads as "". old_role and new_role are passed for
 * onChange only. */
struct hook_event {
    const char *role;
    const char *primary; /* "host:port" of the primary, "" when none is known */
    const char *old_role;
    const char *new_role;
};

/* Whether cfg names a command for ev. */
bool hook_configured(const struct agent_config *cfg, enum agent_event ev);

/* Run ev's command and wait for it. 0 when no command is configured or it
 * exited 0. Otherwise RV_ECHILD (non-zero exit or killed by a signal),
 * RV_ETIMEOUT (killed at the timeout) or RV_ECANCELED (abort turned true),
 * with the exit status and the tail of the output in err. The output of a
 * command that succeeded is logged at debug level, of one that failed at
 * warn level. abort may be NULL. */
int hook_run(const struct agent_config *cfg, enum agent_event ev, const struct hook_event *info,
             const atomic_bool *abort, struct rv_error *err);

#endif
