/* journal.h - the action journal: applies and their actions in SQLite
 * (tables `applies` and `apply_actions`, migration "action journal").
 *
 * An apply is one plan being executed for one commit. Its actions are the
 * plan's actions, in plan order (seq = index in plan->actions), each with the
 * plan's idempotency key. States:
 *
 *   apply:  running -> succeeded | failed | blocked | superseded
 *   action: pending -> running -> succeeded
 *                              -> pending (retry, next_attempt_at)
 *                              -> failed
 *           pending -> canceled (a dependency failed, was canceled or is
 *                                blocked; or a newer apply superseded it)
 *           blocked (never runs: needs a person) -> canceled (superseded)
 *
 * Every change is one statement or one transaction, written before the side
 * effect it announces (pending -> running, the intent) and after it (the
 * outcome), so the journal read after a kill -9 says which actions may have
 * had their side effect without it being recorded: those left `running`.
 *
 * At most one action per idempotency key is running in the whole journal
 * (a partial unique index), so two applies never run the same step at once.
 *
 * These functions run on the thread that owns the connection; they never
 * call a runner. docs/execution.md describes the journal for operators.
 */
#ifndef REEVE_JOURNAL_H
#define REEVE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "planner.h"

/* Migration SQL of the journal; store.c lists it in store_migrations. */
extern const char journal_schema_sql[];

enum journal_apply_state {
    JOURNAL_APPLY_RUNNING,
    JOURNAL_APPLY_SUCCEEDED,
    JOURNAL_APPLY_FAILED,
    JOURNAL_APPLY_BLOCKED,
    JOURNAL_APPLY_SUPERSEDED,
};

enum journal_action_state {
    JOURNAL_ACTION_PENDING,
    JOURNAL_ACTION_RUNNING,
    JOURNAL_ACTION_SUCCEEDED,
    JOURNAL_ACTION_FAILED,
    JOURNAL_ACTION_BLOCKED,
    JOURNAL_ACTION_CANCELED,
};

struct journal_action {
    int64_t apply_id;
    size_t seq; /* index in the plan; deps are smaller seqs */
    char *id;   /* the plan's action id */
    char *idempotency_key;
    char *kind;
    char *cluster;
    char *node;     /* "" for cluster-wide actions */
    char *provider; /* "" when the caller named none */
    size_t *deps;
    size_t ndeps;
    enum journal_action_state state;
    char *blocked_reason; /* NULL unless the plan blocked it */
    int attempts;         /* attempts started (intents written) */
    /* A row with the same key was attempted by an earlier apply: the first
     * attempt here asks the runner's check() before running. */
    bool recheck;
    int64_t next_attempt_at; /* pending: not before this time */
    int64_t deadline_at;     /* 0 until the first start */
    char *last_error;        /* NULL when none */
    char *output;            /* JSON text from the runner, or NULL */
    int64_t started_at;      /* first start, 0 before */
    int64_t finished_at;     /* 0 until succeeded/failed/canceled */
};

struct journal_apply {
    int64_t id;
    char *commit_sha;
    int64_t plan_id; /* 0 when the plan is not stored */
    char *plan_digest;
    enum journal_apply_state state;
    char *error;           /* failed/blocked/superseded: the reason, else NULL */
    int64_t superseded_by; /* 0, or the apply that canceled some of its actions */
    int64_t started_at;
    int64_t finished_at;
    struct journal_action *actions;
    size_t nactions;
};

struct journal_apply_opts {
    const char *commit_sha; /* the commit being applied */
    int64_t plan_id;        /* row in `plans`, or 0 */
    /* Provider of a cluster ("namespace/name"), for the per-provider
     * control rod; may be NULL (then every action has provider ""). */
    const char *(*provider_of)(const char *cluster, void *ud);
    void *ud;
};

/* Write a new apply of plan p in one transaction: the apply row, one
 * action per plan action (pending, or blocked with the plan's reason), and
 * the superseding of older running applies: their pending and blocked
 * actions of any cluster this plan touches become canceled ("superseded by
 * apply N"); their running actions are left to finish. RV_ELIMIT when the
 * plan has more than RV_EXEC_ACTIONS_MAX actions. */
int journal_apply_begin(int64_t *out_id, struct db *db, const struct plan *p,
                        const struct journal_apply_opts *opts, int64_t now, struct rv_error *err);

/* Read one apply and its actions; RV_ENOTFOUND. Release with
 * journal_apply_release(). */
int journal_apply_load(struct journal_apply *out, struct db *db, int64_t id, struct rv_error *err);
/* Ids of applies still running, oldest first; free(*out_ids). */
int journal_apply_running(int64_t **out_ids, size_t *out_n, struct db *db, struct rv_error *err);
void journal_apply_release(struct journal_apply *a);

/* Crash recovery: every action left running goes back to pending (due at
 * once, attempts kept, last_error "interrupted: ..."), so its next start
 * asks check() before running again. *out_n (may be NULL) counts them. */
int journal_recover(size_t *out_n, struct db *db, int64_t now, struct rv_error *err);

/* Write an action's state and bookkeeping fields (state, attempts,
 * next_attempt_at, deadline_at, last_error, output, started_at,
 * finished_at) from a. Fails with RV_ECONFLICT when the row is not in state
 * `from` (someone else changed it), and when making it running would run
 * its idempotency key twice. */
int journal_action_write(struct db *db, const struct journal_action *a,
                         enum journal_action_state from, struct rv_error *err);

/* Close an apply with its final state and reason (error may be NULL). */
int journal_apply_finish(struct db *db, int64_t apply_id, enum journal_apply_state state,
                         const char *error, int64_t now, struct rv_error *err);

/* What the reeve/apply commit status says. */
enum journal_status_state {
    JOURNAL_STATUS_PENDING,
    JOURNAL_STATUS_SUCCESS,
    JOURNAL_STATUS_FAILURE
};

struct journal_status {
    enum journal_apply_state apply_state;
    enum journal_status_state state;
    size_t done, total; /* succeeded actions, all actions */
    /* "applying: 3/7 actions done", "applied: 7/7 actions done",
     * "<action id> failed: <error>", "<action id> blocked: <reason>",
     * "superseded by apply N" */
    char text[RV_EXEC_STATUS_MAX];
};

int journal_apply_status(struct journal_status *out, struct db *db, int64_t apply_id,
                         struct rv_error *err);

const char *journal_apply_state_name(enum journal_apply_state s);
const char *journal_action_state_name(enum journal_action_state s);
const char *journal_status_state_name(enum journal_status_state s);

#endif
