/* agent.h - the autopilot of reeve-agent: one node of one cluster, driven
 * on a libuv loop (docs/agent.md).
 *
 * All blocking work (agent API calls, the engine) runs in uv_queue_work:
 * one "step" at a time owns the engine (bootstrap, health tick, promotion,
 * fencing, stop), and session keepalives run beside it on their own
 * schedule, so a long step never delays a keepalive or the fencing check.
 */
#ifndef REEVE_AGENT_H
#define REEVE_AGENT_H

#include <uv.h>

#include "config.h"
#include "err.h"

struct agent;

/* Called once, from the loop, when the agent has stopped (after
 * agent_stop, or a fatal error); every handle is closed by then. */
typedef void (*agent_done_fn)(struct agent *a, int rc, void *payload);

/* cfg is borrowed and must outlive the agent. Takes the state directory's
 * lock file (RV_EBUSY when another agent holds it). */
int agent_new(struct agent **out, uv_loop_t *loop, const struct agent_config *cfg,
              agent_done_fn done, void *payload, struct rv_error *err);
/* Begin: register if needed, grant a session, bootstrap, then tick. */
int agent_start(struct agent *a, struct rv_error *err);
/* Graceful stop: finish the step in flight, fast-shutdown the server, then
 * revoke the session (which releases the leader key). Idempotent. */
void agent_stop(struct agent *a);
/* After done has run; NULL is a no-op. */
void agent_free(struct agent *a);

#endif
