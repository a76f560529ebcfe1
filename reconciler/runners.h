/* runners.h - the executor's runners of `reeve serve`: what each plan action
 * kind does to the fleet, through providers (provider.h) and agents.
 *
 *   provision_instance  registration token + create_instance (the action's
 *                       idempotency key); check: list_instances by the
 *                       cluster and node labels finds it
 *   bootstrap_primary   the agent does it: wait (until the action's deadline)
 *                       for the node to report primary and healthy
 *   add_replica         the same for a healthy replica
 *   remove_replica,     delete_instance of every instance listed with the
 *   decommission        node's (or the cluster's) labels, and forget the
 *                       node's DCS keys; check: nothing listed any more
 *   configure_backup    the cluster's agent configuration (backups.h) can be
 *                       built: secrets resolve; output: its digest
 *   final_backup        no backup section: nothing to do; otherwise ask the
 *                       agents for a full backup (request "final-<key>") and
 *                       wait for its record: succeeded -> done, failed ->
 *                       fails with the record's error; check: a succeeded
 *                       record of the request exists
 *   seed_from_backup    resolve the backup to restore (backups.h; refusals
 *                       are permanent failures), then wait like
 *                       bootstrap_primary while the agent restores
 *   configure_users     the users' references open (users.h); then wait for
 *                       the primary's agent to report, in the DCS key
 *                       /clusters/<ns>/<name>/users-applied, the digest of
 *                       the set it is served: done; a permanent error it
 *                       reports fails the action with the agent's reason;
 *                       check: the report holds that digest
 *   ready               every desired node healthy, exactly one primary
 *   configure_parameters  (PostgreSQL) write the cluster's parameters to
 *                       the DCS key .../ops/parameters; wait until every
 *                       reporting node's agent reports their digest in
 *                       .../ops/applied/<node> (agent/ops.h); a value a
 *                       server refuses fails the action naming the node
 *   restart_node        ask the node's agent (.../ops/request/<node>) to
 *                       restart its server; wait for its result and the
 *                       node healthy and caught up
 *   switchover          ask the primary to hand over to the action's node
 *                       (.../ops/switchover); wait until that node is the
 *                       healthy primary and the old one a caught-up replica;
 *                       output: write_unavailable_ms
 *   upgrade_replica,    provider upgrade_instance (capability "upgrade") to
 *   upgrade_node        the spec's version; wait for the node healthy and
 *                       caught up; after RV_OPS_NODE_WAIT_S the node is put
 *                       back on its version and the action fails naming it
 *   resize              provider resize_instance (capability "resize"); for
 *                       cpu or memory also a restart, with shared_buffers a
 *                       quarter of memoryMiB unless the spec sets it
 *   others              no-op for the cluster: success; real work: a
 *                       permanent failure naming what is not supported
 *
 * docs/day2.md describes the day-2 kinds for users.
 *
 * The runners keep a copy of what they need from the desired state and the
 * latest node reports; the owner updates both (runners_set_desired,
 * runners_node_report) from any thread. Runs happen on executor worker
 * threads; calls back into the owner (issue_token, forget_node) are made
 * from there too.
 *
 * The replication password of a cluster is derived, never stored:
 * hex(HMAC-SHA256(secret key, "replication:" + "ns/name")); so is a node's
 * registration token: hex(HMAC-SHA256(secret key, "registration:" +
 * idempotency key)).
 */
#ifndef REEVE_RUNNERS_H
#define REEVE_RUNNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agentapi.h"
#include "err.h"
#include "executor.h"
#include "journal.h"
#include "observed.h"
#include "provider.h"
#include "spec.h"

#define RUNNERS_SECRET_KEY_LEN 32

struct runners_opts {
    const char *agent_url; /* where agents reach the agent API */
    int64_t agent_ttl_ms;
    int64_t agent_tick_ms;
    uint8_t secret_key[RUNNERS_SECRET_KEY_LEN];
    /* How often waits look at node reports again; 0: 500 ms. */
    int64_t poll_ms;
    /* Make token the node's registration token, durably, before returning
     * (worker thread). The token is derived from the secret key and the
     * action's idempotency key, so a retry after a crash issues the same
     * one that a provider may already have handed to the agent. */
    int (*issue_token)(const char *token, const char *namespace_, const char *cluster,
                       const char *node, struct rv_error *err, void *ud);
    /* Delete a node's DCS keys (worker thread); may be NULL. */
    int (*forget_node)(const char *namespace_, const char *cluster, const char *node,
                       struct rv_error *err, void *ud);
    /* Read one DCS key (worker thread): 1 and *out_value (malloc'd JSON
     * text) when it exists, 0 when it does not, or an error. configure_users
     * reads the agent's users-applied report with it (users.h); NULL:
     * configure_users fails with a plain message. */
    int (*read_key)(char **out_value, const char *key, struct rv_error *err, void *ud);
    /* Put one DCS key (worker thread); value is JSON text. The day-2
     * actions (configure_parameters, restart_node, switchover, resize)
     * ask the agents through it (agent/ops.h); NULL: they fail plainly. */
    int (*write_key)(const char *key, const char *value, struct rv_error *err, void *ud);
    /* Backup records and configurations; NULL: backup actions fail with a
     * plain message (and configure_backup has nothing to publish). */
    struct backups *backups;
    void *ud;
    /* Unix seconds; wall clock when NULL. */
    int64_t (*now)(void *ud);
};

struct runners;

int runners_new(struct runners **out, const struct runners_opts *opts, struct rv_error *err);
/* No run may be in progress (free the executor first). NULL is a no-op. */
void runners_free(struct runners *r);

/* Make provider p (borrowed, must outlive r) the one named name. Call
 * before any run. */
int runners_add_provider(struct runners *r, const char *name, struct provider *p,
                         struct rv_error *err);
/* The provider named name, or NULL. */
struct provider *runners_provider(struct runners *r, const char *name);

/* Replace the desired clusters the runners know with those of set. */
int runners_set_desired(struct runners *r, const struct spec_set *set, struct rv_error *err);
/* Record a node report (replacing the node's previous one). */
int runners_node_report(struct runners *r, const struct obs_node *n, struct rv_error *err);
/* Whether a fresh report says a healthy primary of "ns/name" runs. */
bool runners_has_primary(struct runners *r, const char *cluster);
/* Forget a node's report (it was removed). */
void runners_node_forget(struct runners *r, const char *namespace_, const char *cluster,
                         const char *node);
/* Copy the node reports into obs->nodes (obs initialised; nodes replaced). */
int runners_observed_nodes(struct observed *obs, struct runners *r, struct rv_error *err);

/* Observed state now: every provider's instances managed by reeve, the
 * node reports, and per node the resources its instance has. Node
 * parameters are not reported by agents in this version: a node is taken
 * to run its cluster's desired parameters (they are handed to the agent at
 * creation). Blocks on provider calls: call off the loop. obs is
 * initialised; it is released first. */
int runners_observe(struct observed *obs, struct runners *r, struct rv_error *err);

/* Make waits give up (RV_ECANCELED, retryable) so workers return soon;
 * before freeing the executor at shutdown. Any thread. */
void runners_stop(struct runners *r);

/* The replication password of "ns/name", hex, NUL-terminated. */
int runners_replication_password(char out[2 * 32 + 1], const struct runners *r,
                                 const char *cluster);

/* The executor_runner that dispatches on the action's kind. */
void runners_executor_runner(struct executor_runner *out, struct runners *r);

/* What `GET /api/v1/status` shows of one cluster's apply. */
struct runners_apply_view {
    const char *cluster; /* "ns/name" */
    const char *commit;
    const char *state; /* "pending" | "success" | "failure" */
    const char *text;
};

/* The status document of docs/serve.md: desired clusters with their node
 * reports, per cluster the actions of the first apply in applies (give
 * them newest first) that has actions of it, and the cluster's apply view.
 * NULL on out of memory. */
json_t *runners_status_json(struct runners *r, const struct journal_apply *applies, size_t napplies,
                            const struct runners_apply_view *views, size_t nviews);

#endif
