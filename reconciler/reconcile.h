/* reconcile.h - one reconcile pass of `reeve serve`, the work that runs off
 * the event loop (in uv_queue_work): fetch, then for the main branch and
 * every pull request whose head moved (or was never reconciled) derive the
 * desired state at that commit, validate it, plan it, store the plan page,
 * queue commit statuses, and post the statuses that are due.
 *
 * Desired state is derived incrementally. The spec set of the main tip is
 * kept in memory (the cache, one full set); the set at any other commit is a
 * view of it: the cached clusters of files that did not change, plus those
 * parsed from the files that did (source_changed_files between the cached
 * commit and that one). A pull request touching one file of a 10,000-file
 * repository parses one file. Plans compare only the clusters whose digest
 * differs between the two sides, which gives the same plan as comparing
 * everything (the planner plans each cluster on its own, and an unchanged
 * cluster assumed applied has nothing to do).
 *
 * What a pull request's statuses compare:
 *   desired@head  vs  observed := plan_assume_applied(desired@merge-base)
 * (what merging would change, as `reeve plan --base main --head <pr>`), and
 * a new main commit: desired@tip vs the previous main commit reconciled
 * (or, the first time, its first parent) assumed applied. When applying is
 * on (reconcile_apply_enable), the apply rounds then plan desired@tip
 * against observed state.
 *
 * A struct reconcile is used by one thread at a time: the loop hands it to
 * exactly one pass in flight.
 */
#ifndef REEVE_RECONCILE_H
#define REEVE_RECONCILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "executor.h"
#include "limits.h"
#include "outbox.h"

enum reconcile_pr_state { RECONCILE_PR_OPEN, RECONCILE_PR_CLOSED, RECONCILE_PR_MERGED };

/* What a webhook told the loop, recorded by the next pass. */
struct reconcile_event {
    char delivery[RV_WEBHOOK_DELIVERY_MAX + 1]; /* "" when the forge sent none */
    uint64_t pull;                              /* 0: not about a pull request */
    enum reconcile_pr_state state;              /* of the pull request */
};

struct reconcile_input {
    bool fetch; /* fetch before reconciling */
    const struct reconcile_event *events;
    size_t nevents;
    const atomic_bool *cancel; /* set at shutdown: stop between refs and posts */
};

struct reconcile_result {
    bool fetched; /* a fetch was attempted */
    int fetch_rc;
    uint64_t fetch_ms;
    bool reconciled; /* refs were looked at (main is known) */
    uint64_t reconcile_ms;
    size_t refs_reconciled;
    bool main_known;
    size_t clusters_desired;
    bool more;                     /* refs were left for another pass */
    bool failed;                   /* a ref failed in a way a retry may fix */
    int64_t outbox_next_due;       /* Unix seconds; 0 when nothing is queued */
    struct outbox_metrics outbox;  /* totals since reconcile_new */
    uint64_t duplicate_deliveries; /* deliveries already recorded before a restart */
    char error[RV_ERROR_MSG_MAX];  /* the last failure, for logs and /healthz */
};

struct reconcile;

/* Open the database (dataDir/state.db) and the mirror (dataDir/mirror.git),
 * and read what earlier runs reconciled. public_url is the base of status
 * links. Blocks; call before the loop runs or from a worker. */
int reconcile_new(struct reconcile **out, const struct config *cfg, const char *public_url,
                  struct rv_error *err);
void reconcile_free(struct reconcile *r);

/* Applying the main branch (docs/serve.md). With it on, every pass first
 * steps the executor, then drives the apply of the last main commit
 * reconciled: plan desired@main against fresh observed state
 * (runners_observe), run the plan through the executor, and when an apply
 * has finished, plan again: no changes is success ("applied: observed
 * state matches the spec"), changes start another round, up to
 * max_rounds, then failure ("did not converge: <actions> (N rounds)").
 * One apply runs per main commit at a time; a new main commit supersedes
 * it. The
 * reeve/apply status follows: pending "applying: 3/7 actions done",
 * success, or failure naming the action and its error. */
struct reconcile_apply {
    struct runners *runners;       /* borrowed; must outlive r */
    struct executor_opts executor; /* control rods, notify */
    int max_rounds;                /* 0: RV_RECONCILE_APPLY_ROUNDS */
    /* After enabling, wait this long before planning against observed
     * state, so agents have reported again after a restart. */
    int64_t grace_s;
};

#define RV_RECONCILE_APPLY_ROUNDS 5

/* Turn applying on: start the executor on r's database (crash recovery:
 * actions left running are checked again) and pick up where an earlier
 * run left the apply of the main commit. Before the first pass. */
int reconcile_apply_enable(struct reconcile *r, const struct reconcile_apply *a,
                           struct rv_error *err);
/* Free the executor now (waits for runs in progress); reconcile_free does
 * it too. Call from the thread that runs passes, or when none runs. */
void reconcile_apply_disable(struct reconcile *r);

/* One pass. Blocks (Git, SQLite, HTTP): run it off the loop. */
void reconcile_pass(struct reconcile_result *out, struct reconcile *r,
                    const struct reconcile_input *in);

#endif
