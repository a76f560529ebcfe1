/* planner.h - the plan: an ordered DAG of actions that takes the observed
 * state to the desired state.
 *
 * plan_build() is a pure function of (desired specs, observed state,
 * options): no clock, no I/O, no Git, no database. The same inputs give a
 * byte-identical plan. Clusters are planned in namespace/name order; within a
 * cluster actions follow fixed phases (ARCHITECTURE §4):
 *
 *   provision_instance → bootstrap_primary | seed_from_backup → add_replica
 *   (in parallel) → configure_parameters/users/backup → ready
 *
 * and for running clusters: remove_replica (one at a time, most-lagging
 * first, never the primary) → configure_parameters → rolling changes
 * (replicas one at a time, switchover, then the old primary) → add_replica →
 * configure_users/backup → ready. A deleted spec gives final_backup →
 * decommission, blocked while the last applied spec had deletionProtection.
 * Disruptive actions (window.h) of a cluster whose maintenance window is
 * closed at opts.now say so in waits_for ("waiting for maintenance window
 * Sun 02:00-04:00 (opens in 3h12m)"); the executor holds them until then.
 *
 * Every action depends only on actions before it in plan->actions, so the
 * array order is a valid execution order. docs/planning.md is the user's
 * description of all of this.
 */
#ifndef REEVE_PLANNER_H
#define REEVE_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "err.h"
#include "observed.h"
#include "spec.h"

/* X(name): the action kinds; names are the JSON/text words. */
#define PLAN_KIND_MAP(X)                                                                           \
    X(PROVISION_INSTANCE, "provision_instance")                                                    \
    X(BOOTSTRAP_PRIMARY, "bootstrap_primary")                                                      \
    X(SEED_FROM_BACKUP, "seed_from_backup")                                                        \
    X(ADD_REPLICA, "add_replica")                                                                  \
    X(REMOVE_REPLICA, "remove_replica")                                                            \
    X(RESIZE, "resize")                                                                            \
    X(UPGRADE_REPLICA, "upgrade_replica")                                                          \
    X(RESTART_NODE, "restart_node")                                                                \
    X(SWITCHOVER, "switchover")                                                                    \
    X(UPGRADE_NODE, "upgrade_node")                                                                \
    X(CONFIGURE_PARAMETERS, "configure_parameters")                                                \
    X(CONFIGURE_USERS, "configure_users")                                                          \
    X(CONFIGURE_BACKUP, "configure_backup")                                                        \
    X(FINAL_BACKUP, "final_backup")                                                                \
    X(DECOMMISSION, "decommission")                                                                \
    X(READY, "ready")

enum plan_kind {
#define PLAN_KIND_ENUM(name, word) PLAN_##name,
    PLAN_KIND_MAP(PLAN_KIND_ENUM)
#undef PLAN_KIND_ENUM
};

/* What an action does to the fleet, for the summary line. */
enum plan_change { PLAN_CHANGE_NONE, PLAN_CHANGE_ADD, PLAN_CHANGE_CHANGE, PLAN_CHANGE_DESTROY };

struct plan_action {
    char *id; /* "payments/billing/add_replica/2" (node ordinal, or name) */
    enum plan_kind kind;
    char *cluster; /* "payments/billing" */
    char *node;    /* "billing-2"; "" for cluster-wide actions */
    size_t *deps;  /* indexes into plan->actions, each smaller than this one's */
    size_t ndeps;
    char *reason;    /* "instances 1 → 3: replica 2 of 2" */
    char *waits_for; /* what must hold before it runs; "" when nothing */
    char *blocked;   /* NULL, or why it cannot run until a person acts */
    /* SHA-256 (hex) of cluster, kind, node and the target the action
     * reaches: a retried or resumed apply of the same step reuses it. */
    char idempotency_key[65];
    enum plan_change change;
};

struct plan_summary {
    size_t add, change, destroy; /* actions by change type ("none" not counted) */
    size_t blocked;
};

struct plan {
    char *base;              /* base commit, NULL when none */
    char *head;              /* head commit, NULL when planning a directory */
    char *observed_revision; /* NULL when not given */
    struct plan_action *actions;
    size_t nactions;
    size_t cap;
    struct plan_summary summary;
};

struct plan_opts {
    const char *base;              /* copied into the plan; may be NULL */
    const char *head;              /* may be NULL */
    const char *observed_revision; /* may be NULL */
    /* Unix seconds the plan is made at: judges staleness of node reports
     * and whether maintenance windows are open. Given by the caller so that
     * plans are reproducible. */
    int64_t now;
    /* The last desired state known to have been applied (desired@base, or
     * what the reconciler applied last), or NULL. It says whether a deleted
     * cluster had deletionProtection and which users changed roles or
     * passwords. */
    const struct spec_set *previous;
};

void plan_init(struct plan *p);
void plan_release(struct plan *p);

/* Build the plan of (desired, observed). out is initialised here (release it
 * after, also on error). Returns 0, RV_ENOMEM, or RV_ELIMIT (err names the
 * cluster, e.g. when observed state lists more nodes than any spec allows). */
int plan_build(struct plan *out, const struct spec_set *desired, const struct observed *obs,
               const struct plan_opts *opts, struct rv_error *err);

/* True when some action changes something (add, change or destroy) or is
 * blocked: `reeve plan` exits 2 then. */
bool plan_has_changes(const struct plan *p);

/* {"base","head","observed_revision","summary":{...},"actions":[...]}; NULL on
 * out of memory. Keys keep their insertion order (dump with
 * JSON_PRESERVE_ORDER) so the text is byte-identical for equal plans. */
json_t *plan_to_json(const struct plan *p);
/* Human text, Terraform style, ending with "Plan: N to add, N to change, N to
 * destroy." or "No changes. ...". color adds ANSI colours (only for a tty). */
int plan_print_text(FILE *out, const struct plan *p, bool color);

const char *plan_kind_name(enum plan_kind k);
const char *plan_change_name(enum plan_change c);

/* Whether changing a parameter of engine ("postgresql" | "mariadb") at
 * version needs a server restart: the engine's parameter catalog
 * (specs-schema/params.h, made from the real servers; the engine's nearest
 * catalog for another version). Names compare case-insensitively, '-' as
 * '_'. A MariaDB name the catalog lacks needs a restart (as
 * params_needs_restart says). A PostgreSQL name it lacks (an extension's)
 * is looked up in a table of restart-only names, else taken as reloadable;
 * an agent that reports pendingRestart for one still gets its restart on
 * the next plan. */
bool plan_param_needs_restart(const char *engine, const char *version, const char *name);

/* SHA-256 (hex) of a cluster's backup policy (backup section and PITR) in a
 * fixed text form; "" when backup is not enabled. The executor records it as
 * the cluster's observed backupDigest once the policy is configured. */
void plan_backup_digest(char out[65], const struct spec_cluster *c);

/* Observed state as if every cluster in set had been applied exactly:
 * instances 0..n-1 running, ordinal 0 primary, all healthy, reported at now.
 * `reeve plan --base` uses it to show what merging a change would do. The
 * revision is left NULL (derived from content). */
int plan_assume_applied(struct observed *out, const struct spec_set *set, int64_t now,
                        struct rv_error *err);

#endif
