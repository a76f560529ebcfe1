/* outbox.h - commit statuses waiting to be posted, kept in SQLite
 * (table status_outbox, see store.h) so none is lost across restarts.
 *
 * A row is keyed by (forge, repo, sha, context) and moves through phases:
 *   queued -> posted | failed (given up) | superseded (a newer status for
 *   the same key replaced it before it was sent)
 *
 * outbox_enqueue() adds no row when the latest queued-or-posted row for the
 * key already carries the same state, description and target url, so a
 * status is never posted twice; otherwise it supersedes every queued row for
 * the key and adds one.
 *
 * outbox_run_once() claims due rows (leasing them for RV_OUTBOX_LEASE_S, so
 * a runner killed mid-post leaves them to be retried), posts them through
 * the forge (blocking: run it off the event loop), and records each result:
 * posted; retry with exponential backoff and jitter (capped at
 * RV_OUTBOX_BACKOFF_MAX_S), or at the time a rate limit / Retry-After names;
 * failed on auth or permanent errors, after RV_OUTBOX_ATTEMPTS_MAX failed
 * attempts, or when a row is older than RV_OUTBOX_AGE_MAX_S.
 * Run one runner per database: a second concurrent runner could post two
 * statuses for one key out of order. Enqueueing from other threads (each
 * with its own connection) is safe.
 */
#ifndef REEVE_OUTBOX_H
#define REEVE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "forge.h"

enum outbox_phase { OUTBOX_QUEUED, OUTBOX_POSTED, OUTBOX_FAILED, OUTBOX_SUPERSEDED };

/* Counters since outbox_init(); the caller exports them (e.g. Prometheus
 * reeve_status_posts_total{result=...}). */
struct outbox_metrics {
    uint64_t enqueued;     /* rows added */
    uint64_t deduplicated; /* enqueues that matched the latest status: no row */
    uint64_t superseded;   /* queued rows replaced before being sent */
    uint64_t posted;       /* statuses the forge accepted */
    uint64_t retried;      /* attempts that will be retried */
    uint64_t rate_limited; /* of which the forge asked us to wait */
    uint64_t failed;       /* statuses given up */
};

/* How a status is posted; forge_post() by default, a fake in tests. */
typedef int (*outbox_post_fn)(struct forge_result *out, const struct forge *f,
                              const struct forge_status *st, struct rv_error *err, void *ud);

struct outbox {
    struct db *db;
    const struct forge *forges; /* borrowed; rows name a forge by forge.name */
    size_t n_forges;
    outbox_post_fn post;
    void *post_ud;
    int64_t (*now)(void *ud);     /* Unix seconds; time() by default */
    uint32_t (*random)(void *ud); /* jitter; arc4random() by default */
    void *clock_ud;
    int64_t backoff_base_s; /* RV_OUTBOX_BACKOFF_BASE_S */
    int64_t backoff_max_s;  /* RV_OUTBOX_BACKOFF_MAX_S */
    int attempts_max;       /* RV_OUTBOX_ATTEMPTS_MAX */
    struct outbox_metrics metrics;
};

/* One row, as stored. */
struct outbox_row {
    int64_t id;
    char *forge;
    char *repo;
    char *sha;
    char *context;
    enum forge_state state;
    char *description;
    char *target_url;
    enum outbox_phase phase;
    int attempts;
    int64_t next_attempt_at;
    char *last_error; /* NULL when none */
    int64_t created_at;
    int64_t posted_at; /* 0 until posted */
};

/* Defaults: forge_post, wall clock, arc4random, limits from limits.h.
 * db and forges are borrowed. */
void outbox_init(struct outbox *ob, struct db *db, const struct forge *forges, size_t n_forges);

/* Queue st for forge `forge` (a configured forge name). *out_id (may be
 * NULL) is the row that will carry it: a new row, or the existing one when
 * deduplicated. The status is checked as forge_request_build() would, so an
 * invalid one fails here (RV_EINVAL) rather than later. */
int outbox_enqueue(int64_t *out_id, struct outbox *ob, const char *forge,
                   const struct forge_status *st, struct rv_error *err);

/* Up to max queued rows due at the current time, oldest first (for
 * inspection; outbox_run_once() claims its own). Release with
 * outbox_rows_free(). */
int outbox_due(struct outbox_row **out_rows, size_t *out_n, struct outbox *ob, size_t max,
               struct rv_error *err);
/* When the next queued row is due (Unix seconds); RV_ENOTFOUND when none is
 * queued. Lets the caller schedule the next pass. */
int outbox_next_due(int64_t *out_at, struct outbox *ob, struct rv_error *err);

/* Post the rows due now, at most RV_OUTBOX_BATCH_MAX. pass (may be NULL) gets
 * this pass's counts; ob->metrics keeps the totals. Post failures are
 * recorded in the rows, not returned: the return value is 0 or a database
 * error. */
int outbox_run_once(struct outbox_metrics *pass, struct outbox *ob, struct rv_error *err);

/* Delete posted, failed and superseded rows finished before `before`; the
 * latest posted row of each key is kept, so deduplication still works. */
int outbox_prune(int64_t *out_deleted, struct outbox *ob, int64_t before, struct rv_error *err);

/* Read one row; RV_ENOTFOUND. Release with outbox_row_release(). */
int outbox_get(struct outbox_row *out, struct outbox *ob, int64_t id, struct rv_error *err);
void outbox_row_release(struct outbox_row *row);
void outbox_rows_free(struct outbox_row *rows, size_t n);

const char *outbox_phase_name(enum outbox_phase phase);

#endif
