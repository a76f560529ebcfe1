/* executor.h - runs plans' action DAGs, journaled (journal.h).
 *
 * The executor owns the unfinished applies of one database (run one
 * executor per database) and a pool of worker threads. Runners - provider
 * calls, agent commands - are blocking functions called on those workers,
 * never on the caller's thread; every journal write happens on the caller's
 * thread, inside executor_step(), on the executor's own connection.
 *
 * Driving it. executor_step() records the outcomes of finished runs, then
 * starts every action that is ready: pending, due (next_attempt_at), all of
 * its dependencies succeeded, and allowed by the control rods (running
 * actions in all, per provider, per cluster), and by older applies (an
 * action does not start while an older apply still runs an action of the
 * same cluster), by the paused namespaces and by opts.hold (maintenance
 * windows). It never blocks on a runner. In `reeve serve`, the
 * reconcile worker calls it on a timer and whenever opts.notify fires (from
 * a worker thread: use uv_async_send); executor_run() is the blocking
 * driver for the CLI and the tests.
 *
 * Per action: the intent (running, attempts+1) is committed before the
 * runner is called and the outcome after it returns. An attempt after the
 * first - a retry, or the resumption of an action a crash left running -
 * first asks check(): if the side effect already happened the action
 * succeeds without running again. Retryable errors are retried with
 * exponential backoff and jitter up to attempts_max, within the action's
 * deadline (deadline_s from its first start); other errors, exhaustion or
 * the deadline fail it for good: its dependents are canceled (naming it)
 * and the apply fails with "<action id> failed: <error>".
 */
#ifndef REEVE_EXECUTOR_H
#define REEVE_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "journal.h"
#include "planner.h"

/* A runner. Both functions are called on a worker thread, at most once at a
 * time per action; the action's text fields do not change during the call.
 * The idempotency key is the action's, stable across retries and restarts:
 * pass it to the provider/agent so a repeated request does not act twice.
 *
 * run: do the action before `deadline` (Unix seconds; the caller must give
 *   up by then - the provider layer kills hung calls). On success return 0
 *   and optionally set *out_output to malloc'd JSON text (instance id,
 *   address...); on failure a negative RV_E* code with err filled
 *   (err->retryable says whether to try again).
 * check: did the side effect of this key happen? (e.g. the provider lists
 *   an instance carrying the key's labels; a restart's target settings are
 *   live). Sets *out_done. It judges the world now, not a record of past
 *   calls, and must not act. An error here counts as a failed attempt. */
struct executor_runner {
    int (*run)(char **out_output, const struct journal_action *action, const char *idempotency_key,
               int64_t deadline, struct rv_error *err, void *ud);
    int (*check)(bool *out_done, const struct journal_action *action, const char *idempotency_key,
                 struct rv_error *err, void *ud);
    void *ud;
};

struct executor_opts {
    /* Control rods; <= 0 means the default from limits.h. max_concurrent is
     * also the number of worker threads (capped at RV_EXEC_CONCURRENT_MAX). */
    int max_concurrent;
    int max_per_provider;
    int max_per_cluster;
    int attempts_max;       /* RV_EXEC_ATTEMPTS_MAX */
    int64_t backoff_base_s; /* RV_EXEC_BACKOFF_BASE_S */
    int64_t backoff_max_s;  /* RV_EXEC_BACKOFF_MAX_S */
    int64_t deadline_s;     /* RV_EXEC_DEADLINE_S */
    /* Clock, jitter and sleep; wall clock, arc4random and nanosleep when
     * NULL. now may be called from worker threads. */
    int64_t (*now)(void *ud);
    uint32_t (*random)(void *ud);
    void (*sleep_until)(int64_t at, void *ud);
    void *clock_ud;
    /* Called on a worker thread each time a run or check returns, so the
     * owner can schedule executor_step(). May be NULL. */
    void (*notify)(void *ud);
    void *notify_ud;
    /* Holds (maintenance windows, window.h): asked on the caller's thread,
     * in executor_step(), about each pending action that is otherwise ready
     * to start. Returning true keeps it pending: why (at most why_size
     * bytes) says what it waits for ("waiting for maintenance window Sun
     * 02:00-04:00") and *out_until when to ask again (0: next step).
     * May be NULL: nothing is held. */
    bool (*hold)(char *why, size_t why_size, int64_t *out_until, const struct journal_action *a,
                 int64_t now, void *ud);
    void *hold_ud;
};

/* Counters since executor_new(), for /metrics. */
struct executor_metrics {
    uint64_t started;   /* attempts started (intents written) */
    uint64_t succeeded; /* actions that succeeded (ran, or found done by check) */
    uint64_t found_done;
    uint64_t retried;
    uint64_t failed;
    uint64_t canceled;
    uint64_t overdue; /* runs still going past their deadline */
    uint64_t applies_finished;
};

struct executor;

/* Defaults from limits.h, wall clock. */
void executor_opts_init(struct executor_opts *o);

/* Load the running applies from the journal, put actions a crash left
 * running back to pending (they are checked before any retry), and start
 * the workers. db is borrowed and used only from the thread that calls
 * executor_* functions. runner is copied. */
int executor_new(struct executor **out, struct db *db, const struct executor_runner *runner,
                 const struct executor_opts *opts, struct rv_error *err);
/* Stop the workers, waiting for runs in progress to return; their
 * outcomes are not recorded (the journal still says running, so the next
 * executor re-checks them). executor_free(NULL) is a no-op. */
void executor_free(struct executor *ex);

/* Journal a new apply of plan p (see journal_apply_begin: supersedes older
 * applies' pending actions of the same clusters) and take it on. */
int executor_apply_begin(int64_t *out_apply_id, struct executor *ex, const struct plan *p,
                         const struct journal_apply_opts *opts, struct rv_error *err);

/* One scheduling pass (see above). *out_started (may be NULL) counts the
 * attempts started. Runner failures are recorded in the journal, not
 * returned: the return value is 0 or a journal (database) error, after
 * which stepping again later is safe. */
int executor_step(size_t *out_started, struct executor *ex, struct rv_error *err);

/* Control rod: pause (or resume) starting actions on clusters of
 * namespace_. Running actions finish; nothing new starts there until it is
 * resumed. RV_ELIMIT past RV_EXEC_PAUSED_MAX paused namespaces. */
int executor_pause(struct executor *ex, const char *namespace_, bool paused, struct rv_error *err);
/* Pause exactly namespaces[0..n-1] and resume every other; whys[i] (may be
 * NULL) is what executor_apply_waiting() says for it, e.g. "paused:
 * clusters/payments/PAUSED (quarter-end freeze)". On error nothing changed.
 * RV_ELIMIT past RV_EXEC_PAUSED_MAX, RV_EINVAL for a bad name. */
int executor_pause_set(struct executor *ex, const char *const *namespaces, const char *const *whys,
                       size_t n, struct rv_error *err);

/* What apply_id waits for when it cannot move: true when none of its
 * actions runs, some are ready (pending, due, dependencies succeeded) and
 * every ready one is held by a pause or a hold; out then has the reason of
 * the first ("paused: ...", "waiting for maintenance window ..."). False
 * otherwise (running, waiting for a retry or for the control rods, or not
 * active here). */
bool executor_apply_waiting(char *out, size_t size, const struct executor *ex, int64_t apply_id);

/* Whether apply_id is still running in this executor. */
bool executor_apply_active(const struct executor *ex, int64_t apply_id);
/* Runs in progress on the workers. */
size_t executor_inflight(const struct executor *ex);
/* Earliest next_attempt_at of an action waiting for a retry; RV_ENOTFOUND
 * when none waits. Lets the owner set its timer. */
int executor_next_due(int64_t *out_at, const struct executor *ex);
/* Block until a run returns or timeout_ms passes (< 0: no timeout). */
void executor_wait(struct executor *ex, int timeout_ms);

/* Drive until apply_id has finished (blocking): step, wait for runs,
 * sleep until retries are due or holds end (a maintenance window opens).
 * Returns 0 when the apply finished, whatever its outcome (read it with
 * journal_apply_status), or a journal error. */
int executor_run(struct executor *ex, int64_t apply_id, struct rv_error *err);

const struct executor_metrics *executor_metrics(const struct executor *ex);

#endif
