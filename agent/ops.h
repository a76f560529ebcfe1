/* ops.h - day-2 operations on a running node, driven by DCS keys
 * the reconciler's runners write (docs/day2.md):
 *
 *   ops/parameters          {"digest","parameters":{name: value}}: every
 *                           node applies it (ALTER SYSTEM + reload) and
 *                           reports in ops/applied/<node> {"node","digest",
 *                           "parameters","pending_restart","error"}
 *   ops/request/<node>      {"id","op":"restart"}: stop (fast) and start
 *                           the server; the outcome goes to
 *                           ops/result/<node> {"id","op","ok","error",
 *                           "started_ms","finished_ms"}
 *   ops/switchover          {"id","from","to"}: a planned switchover, see
 *                           below; the outcome goes to ops/switchover-result
 *
 * Keys are under /clusters/<ns>/<name>/. The agent's reports are attached
 * to its session.
 *
 * A switchover never has two writable primaries and loses nothing:
 *  1. the primary ("from") checks that "to" streams from it, notes its WAL
 *     position and stops its server (fast shutdown: the walsenders send
 *     everything, the shutdown checkpoint included, and wait for the
 *     standbys to confirm it before the server exits);
 *  2. with the server down, it rewrites the leader key, still under its own
 *     session, as {"node": "to", "ready": false, "handoff": true,
 *     "stop_lsn": ...}; the other replicas see a leader that is not ready
 *     and wait;
 *  3. "to" takes the key over under its own session (a transaction on the
 *     key's revision), waits until it has received past stop_lsn and
 *     replayed all it received, promotes, and marks the key ready; the
 *     other replicas repoint to it, the old primary rejoins by rewind;
 *  4. if "to" has not taken the key within RV_OPS_HANDOFF_WAIT_MS, the old
 *     primary takes its key back and starts again (rolled back).
 *
 * MariaDB (docs/day2.md, "MariaDB"): parameters go through
 * mdb_engine_apply_parameters (SET GLOBAL for the dynamic ones, all kept in
 * reeve-params.cnf); in a switchover the old primary stops writes with
 * read_only ON, notes its final GTID position (stop_lsn holds it) and shuts
 * down with SHUTDOWN WAIT FOR ALL SLAVES; the target applies up to that
 * position before it promotes, and the old primary rejoins from its own
 * GTID position.
 *
 * Everything here runs inside the agent's step (worker thread), which owns
 * the engine.
 */
#ifndef REEVE_OPS_H
#define REEVE_OPS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "dcs_client.h"
#include "engine.h"
#include "engine_pg.h"
#include "err.h"
#include "limits.h"

/* What the agent remembers between ticks; zero it at start. */
struct ops_state {
    char params_digest[65]; /* the configuration applied last ("" none) */
    bool params_failed;     /* it was refused: not retried until it changes */
    bool published;         /* ops/applied/<node> written this session */
    uint64_t published_session;
    char published_pending[RV_PG_PENDING_MAX + 1];
    char last_error[RV_ERROR_MSG_MAX];
};

/* What a tick needs of the agent. */
struct ops_env {
    const struct agent_config *cfg;
    struct pg_engine *engine; /* PostgreSQL (unused for MariaDB) */
    struct engine *eng;       /* either engine; NULL: PostgreSQL through engine */
    struct dcs_client *dcs;
    uint64_t session;
    const char *prefix;     /* "/clusters/<ns>/<name>/" */
    const char *leader_key; /* prefix + "leader" */
    atomic_bool *abort;     /* set: the step must end now */
    struct ops_state *st;
};

enum ops_change {
    OPS_NONE,       /* nothing changed the node's role; go on with the tick */
    OPS_BUSY,       /* an operation ran: end this tick (re-read next time) */
    OPS_PROMOTED,   /* this replica is the primary now (leader key ready) */
    OPS_HANDED_OFF, /* this primary's server is down and the leader key went
                     * to the switchover's target: rejoin it as a replica */
};

/* Run what the ops keys ask of this node. primary: the node's role;
 * leader: the leader key as the tick read it (kv object, may be NULL). */
int ops_tick(const struct ops_env *env, bool primary, json_t *leader, enum ops_change *change,
             struct rv_error *err);

#endif
