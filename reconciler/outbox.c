#include "outbox.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const char *const phase_names[] = {"queued", "posted", "failed", "superseded"};

#define ROW_COLUMNS                                                                                \
    "id, forge, repo, sha, context, state, description, target_url, phase, attempts, "             \
    "next_attempt_at, last_error, created_at, posted_at"

const char *outbox_phase_name(enum outbox_phase phase)
{
    return (unsigned)phase < 4 ? phase_names[phase] : "unknown";
}

static int phase_parse(enum outbox_phase *out, const char *name)
{
    for (unsigned i = 0; i < 4; i++) {
        if (name && strcmp(name, phase_names[i]) == 0) {
            *out = (enum outbox_phase)i;
            return 0;
        }
    }
    return RV_EPARSE;
}

static int64_t default_now(void *ud)
{
    (void)ud;
    return (int64_t)time(NULL);
}

static uint32_t default_random(void *ud)
{
    (void)ud;
    return arc4random();
}

static int default_post(struct forge_result *out, const struct forge *f,
                        const struct forge_status *st, struct rv_error *err, void *ud)
{
    (void)ud;
    return forge_post(out, f, st, err);
}

void outbox_init(struct outbox *ob, struct db *db, const struct forge *forges, size_t n_forges)
{
    memset(ob, 0, sizeof(*ob));
    ob->db = db;
    ob->forges = forges;
    ob->n_forges = n_forges;
    ob->post = default_post;
    ob->now = default_now;
    ob->random = default_random;
    ob->backoff_base_s = RV_OUTBOX_BACKOFF_BASE_S;
    ob->backoff_max_s = RV_OUTBOX_BACKOFF_MAX_S;
    ob->attempts_max = RV_OUTBOX_ATTEMPTS_MAX;
}

static const struct forge *forge_find(const struct outbox *ob, const char *name)
{
    for (size_t i = 0; i < ob->n_forges; i++) {
        if (ob->forges[i].name && strcmp(ob->forges[i].name, name) == 0)
            return &ob->forges[i];
    }
    return NULL;
}

void outbox_row_release(struct outbox_row *row)
{
    if (row == NULL)
        return;
    free(row->forge);
    free(row->repo);
    free(row->sha);
    free(row->context);
    free(row->description);
    free(row->target_url);
    free(row->last_error);
    memset(row, 0, sizeof(*row));
}

void outbox_rows_free(struct outbox_row *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        outbox_row_release(&rows[i]);
    free(rows);
}

/* Read a row selected with ROW_COLUMNS. */
static int row_read(struct outbox_row *row, sqlite3_stmt *st, struct rv_error *err)
{
    char *state = NULL, *phase = NULL;
    int rc;

    memset(row, 0, sizeof(*row));
    row->id = sqlite3_column_int64(st, 0);
    if ((rc = db_column_text(&row->forge, st, 1)) != 0 ||
        (rc = db_column_text(&row->repo, st, 2)) != 0 ||
        (rc = db_column_text(&row->sha, st, 3)) != 0 ||
        (rc = db_column_text(&row->context, st, 4)) != 0 ||
        (rc = db_column_text(&state, st, 5)) != 0 ||
        (rc = db_column_text(&row->description, st, 6)) != 0 ||
        (rc = db_column_text(&row->target_url, st, 7)) != 0 ||
        (rc = db_column_text(&phase, st, 8)) != 0 ||
        (rc = db_column_text(&row->last_error, st, 11)) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "status outbox: out of memory reading a row");
        goto out;
    }
    row->attempts = sqlite3_column_int(st, 9);
    row->next_attempt_at = sqlite3_column_int64(st, 10);
    row->created_at = sqlite3_column_int64(st, 12);
    row->posted_at = sqlite3_column_int64(st, 13);
    /* The CHECK constraints keep these valid; a failure means someone edited
     * the file by hand. */
    if (forge_state_parse(&row->state, state) != 0 || phase_parse(&row->phase, phase) != 0) {
        rc = rv_error_set(err, RV_EDB, false,
                          "status outbox row %lld has state '%s' phase '%s'; the database was "
                          "modified outside reeve",
                          (long long)row->id, state ? state : "", phase ? phase : "");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        outbox_row_release(row);
    free(state);
    free(phase);
    return rc;
}

int outbox_get(struct outbox_row *out, struct outbox *ob, int64_t id, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(&st, ob->db, err, "SELECT " ROW_COLUMNS " FROM status_outbox WHERE id = ?",
                        "l", id);
    if (rc != 0)
        goto out;
    rc = db_step(st, ob->db, err);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = RV_ENOTFOUND;
        goto out;
    }
    rc = row_read(out, st, err);
out:
    db_finalize(st);
    return rc;
}

static bool same_text(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

int outbox_enqueue(int64_t *out_id, struct outbox *ob, const char *forge,
                   const struct forge_status *st, struct rv_error *err)
{
    sqlite3_stmt *q = NULL;
    struct forge_request probe;
    const struct forge *f = forge_find(ob, forge);
    const char *desc = st->description ? st->description : "";
    const char *url = st->target_url ? st->target_url : "";
    int64_t now = ob->now(ob->clock_ud);
    int64_t id = 0;
    int rc;

    if (f == NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "status outbox: forge '%s' is not configured; add it to reeve.yaml",
                            forge);
    /* Refuse now what the forge client would refuse at post time. */
    rc = forge_request_build(&probe, f, st, err);
    forge_request_release(&probe);
    if (rc != 0)
        return rc;

    rc = db_begin(ob->db, err);
    if (rc != 0)
        goto out;
    rc = db_prepare(&q, ob->db, err,
                    "SELECT id, state, description, target_url FROM status_outbox"
                    " WHERE forge = ? AND repo = ? AND sha = ? AND context = ?"
                    "   AND phase IN ('queued', 'posted')"
                    " ORDER BY id DESC LIMIT 1",
                    "tttt", forge, st->repo, st->sha, st->context);
    if (rc != 0)
        goto out;
    rc = db_step(q, ob->db, err);
    if (rc < 0)
        goto out;
    if (rc == 1 &&
        same_text((const char *)sqlite3_column_text(q, 1), forge_state_name(st->state)) &&
        same_text((const char *)sqlite3_column_text(q, 2), desc) &&
        same_text((const char *)sqlite3_column_text(q, 3), url)) {
        id = sqlite3_column_int64(q, 0);
        db_finalize(q);
        q = NULL;
        rc = db_commit(ob->db, err);
        if (rc == 0)
            ob->metrics.deduplicated++;
        goto out;
    }
    db_finalize(q);
    q = NULL;

    rc = db_run(ob->db, err,
                "UPDATE status_outbox SET phase = 'superseded'"
                " WHERE forge = ? AND repo = ? AND sha = ? AND context = ? AND phase = 'queued'",
                "tttt", forge, st->repo, st->sha, st->context);
    if (rc != 0)
        goto out;
    int64_t superseded = db_changes(ob->db);
    rc = db_run(ob->db, err,
                "INSERT INTO status_outbox (forge, repo, sha, context, state, description,"
                " target_url, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                "tttttttll", forge, st->repo, st->sha, st->context, forge_state_name(st->state),
                desc, url, now, now);
    if (rc != 0)
        goto out;
    id = db_last_insert_id(ob->db);
    rc = db_commit(ob->db, err);
    if (rc != 0)
        goto out;
    ob->metrics.enqueued++;
    ob->metrics.superseded += (uint64_t)superseded;
out:
    db_finalize(q);
    db_rollback(ob->db);
    if (rc == 0 && out_id)
        *out_id = id;
    return rc;
}

static int rows_select(struct outbox_row **out_rows, size_t *out_n, struct outbox *ob, int64_t now,
                       size_t max, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    struct outbox_row *rows = NULL;
    size_t n = 0;
    int rc;

    *out_rows = NULL;
    *out_n = 0;
    if (max == 0)
        return 0;
    rows = calloc(max, sizeof(*rows));
    if (rows == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "status outbox: out of memory");
    rc = db_prepare(&st, ob->db, err,
                    "SELECT " ROW_COLUMNS " FROM status_outbox"
                    " WHERE phase = 'queued' AND next_attempt_at <= ?"
                    " ORDER BY next_attempt_at, id LIMIT ?",
                    "ll", now, (int64_t)max);
    if (rc != 0)
        goto out;
    while ((rc = db_step(st, ob->db, err)) == 1) {
        rc = row_read(&rows[n], st, err);
        if (rc != 0)
            goto out;
        n++;
    }
    if (rc < 0)
        goto out;
    *out_rows = rows;
    *out_n = n;
    rows = NULL;
    rc = 0;
out:
    db_finalize(st);
    outbox_rows_free(rows, n);
    return rc;
}

int outbox_due(struct outbox_row **out_rows, size_t *out_n, struct outbox *ob, size_t max,
               struct rv_error *err)
{
    return rows_select(out_rows, out_n, ob, ob->now(ob->clock_ud), max, err);
}

int outbox_next_due(int64_t *out_at, struct outbox *ob, struct rv_error *err)
{
    return db_query_i64(out_at, ob->db, err,
                        "SELECT next_attempt_at FROM status_outbox WHERE phase = 'queued'"
                        " ORDER BY next_attempt_at LIMIT 1",
                        NULL);
}

/* Delay before attempt n+1 after n failed ones: base * 2^(n-1), capped, then
 * "equal jitter": half fixed, half random, so retries from many rows spread
 * out but never come back at once. */
static int64_t backoff_delay(const struct outbox *ob, int attempts)
{
    int64_t d = ob->backoff_base_s > 0 ? ob->backoff_base_s : 1;
    for (int i = 1; i < attempts && d < ob->backoff_max_s; i++)
        d *= 2;
    if (d > ob->backoff_max_s)
        d = ob->backoff_max_s;
    int64_t half = d / 2;
    uint32_t r = ob->random(ob->clock_ud);
    return d - half + (int64_t)(r % (uint64_t)(half + 1));
}

/* Add to the totals and to this pass's counts. */
#define COUNT(pass, ob, field, n)                                                                  \
    do {                                                                                           \
        (ob)->metrics.field += (uint64_t)(n);                                                      \
        if (pass)                                                                                  \
            (pass)->field += (uint64_t)(n);                                                        \
    } while (0)

/* Give up a row. Only a row still queued changes: one superseded while it
 * was in flight stays superseded. */
static int row_fail(struct outbox *ob, int64_t id, int attempts, const char *msg,
                    struct rv_error *err)
{
    return db_run(ob->db, err,
                  "UPDATE status_outbox SET phase = 'failed', attempts = ?, last_error = ?"
                  " WHERE id = ? AND phase = 'queued'",
                  "itl", attempts, msg, id);
}

/* Post one claimed row and record the outcome. */
static int row_post(int64_t *out_hold, struct outbox_metrics *pass, struct outbox *ob,
                    const struct outbox_row *row, struct rv_error *err)
{
    const struct forge *f = forge_find(ob, row->forge);
    struct forge_result res;
    struct rv_error perr;
    char msg[RV_ERROR_MSG_MAX];
    int64_t now;
    int rc;

    *out_hold = 0;
    if (f == NULL) {
        snprintf(msg, sizeof(msg),
                 "forge '%s' is not configured any more; status '%s' for %s@%.12s given up",
                 row->forge, row->context, row->repo, row->sha);
        log_warn("outbox", "%s", msg);
        COUNT(pass, ob, failed, 1);
        return row_fail(ob, row->id, row->attempts, msg, err);
    }
    struct forge_status st = {
        .repo = row->repo,
        .sha = row->sha,
        .context = row->context,
        .state = row->state,
        .description = row->description,
        .target_url = row->target_url,
    };
    rv_error_clear(&perr);
    memset(&res, 0, sizeof(res));
    ob->post(&res, f, &st, &perr, ob->post_ud);
    /* Results are recorded at the time they arrive. */
    now = ob->now(ob->clock_ud);

    switch (res.outcome) {
    case FORGE_OK:
        COUNT(pass, ob, posted, 1);
        log_debug("outbox", "%s", res.message);
        /* A row superseded while in flight did reach the forge: say so. */
        return db_run(ob->db, err,
                      "UPDATE status_outbox SET phase = 'posted', posted_at = ?,"
                      " attempts = attempts + 1, last_error = NULL"
                      " WHERE id = ? AND phase IN ('queued', 'superseded')",
                      "ll", now, row->id);
    case FORGE_AUTH:
    case FORGE_PERMANENT:
        COUNT(pass, ob, failed, 1);
        log_warn("outbox", "%s; status given up", res.message);
        return row_fail(ob, row->id, row->attempts + 1, res.message, err);
    case FORGE_RETRY:
        break;
    }

    int attempts = row->attempts;
    int64_t next;
    if (res.rate_limited) {
        /* Waiting out a rate limit is not a failure of this status. */
        next = res.retry_at > now ? res.retry_at : now + 1;
        COUNT(pass, ob, rate_limited, 1);
    } else {
        attempts++;
        if (attempts >= ob->attempts_max) {
            snprintf(msg, sizeof(msg), "%.440s; given up after %d attempts", res.message, attempts);
            log_warn("outbox", "%s", msg);
            COUNT(pass, ob, failed, 1);
            return row_fail(ob, row->id, attempts, msg, err);
        }
        next = now + backoff_delay(ob, attempts);
        if (res.retry_at > next)
            next = res.retry_at;
    }
    rc = db_run(ob->db, err,
                "UPDATE status_outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                " WHERE id = ? AND phase = 'queued'",
                "iltl", attempts, next, res.message, row->id);
    if (rc != 0)
        return rc;
    if (db_changes(ob->db) == 0) {
        /* Superseded while in flight: the newer row carries on. */
        log_debug("outbox", "%s; superseded meanwhile, not retried", res.message);
    } else {
        COUNT(pass, ob, retried, 1);
        log_info("outbox", "%s; next attempt in %llds", res.message, (long long)(next - now));
    }
    if (res.rate_limited) {
        /* The limit is the token's, not the row's: hold every queued row of
         * this forge until the reset rather than spend requests on it. */
        rc = db_run(ob->db, err,
                    "UPDATE status_outbox SET next_attempt_at = ?"
                    " WHERE forge = ? AND phase = 'queued' AND next_attempt_at < ?",
                    "ltl", next, row->forge, next);
        *out_hold = next;
    }
    return rc;
}

int outbox_run_once(struct outbox_metrics *pass, struct outbox *ob, struct rv_error *err)
{
    struct outbox_row *rows = NULL;
    int64_t *hold = NULL;
    size_t n = 0;
    int64_t now = ob->now(ob->clock_ud);
    int rc;

    /* Claim: pick the due rows and lease them in one write transaction, and
     * give up rows too old to matter. */
    rc = db_begin(ob->db, err);
    if (rc != 0)
        goto out;
    rc = db_run(ob->db, err,
                "UPDATE status_outbox SET phase = 'failed',"
                " last_error = coalesce(last_error || '; ', '') || 'given up: not posted within '"
                "   || ? || 's of being queued'"
                " WHERE phase = 'queued' AND created_at < ?",
                "ll", (int64_t)RV_OUTBOX_AGE_MAX_S, now - RV_OUTBOX_AGE_MAX_S);
    if (rc != 0)
        goto out;
    int64_t expired = db_changes(ob->db);
    rc = rows_select(&rows, &n, ob, now, RV_OUTBOX_BATCH_MAX, err);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        rc = db_run(ob->db, err, "UPDATE status_outbox SET next_attempt_at = ? WHERE id = ?", "ll",
                    now + RV_OUTBOX_LEASE_S, rows[i].id);
        if (rc != 0)
            goto out;
    }
    rc = db_commit(ob->db, err);
    if (rc != 0)
        goto out;
    COUNT(pass, ob, failed, expired);
    if (expired > 0)
        log_warn("outbox", "gave up %lld statuses not posted within %ds of being queued",
                 (long long)expired, RV_OUTBOX_AGE_MAX_S);

    /* Forges found rate limited in this pass: their remaining claimed rows
     * wait for the reset too. Indexed like ob->forges. */
    if (ob->n_forges > 0 && (hold = calloc(ob->n_forges, sizeof(*hold))) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "status outbox: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct forge *f = forge_find(ob, rows[i].forge);
        size_t fi = f ? (size_t)(f - ob->forges) : 0;
        /* Renew the lease for the post about to start (earlier posts in
         * this pass took time), and see whether the row is still queued. */
        rc =
            db_run(ob->db, err,
                   "UPDATE status_outbox SET next_attempt_at = ? WHERE id = ? AND phase = 'queued'",
                   "ll", ob->now(ob->clock_ud) + RV_OUTBOX_LEASE_S, rows[i].id);
        if (rc != 0)
            goto out;
        if (db_changes(ob->db) == 0)
            continue; /* superseded since the claim: never sent, nothing to do */
        if (f && hold[fi] > 0) {
            rc = db_run(ob->db, err,
                        "UPDATE status_outbox SET next_attempt_at = ? WHERE id = ?"
                        " AND phase = 'queued'",
                        "ll", hold[fi], rows[i].id);
            if (rc != 0)
                goto out;
            continue;
        }
        int64_t until = 0;
        rc = row_post(&until, pass, ob, &rows[i], err);
        if (rc != 0)
            goto out;
        if (f && until > 0)
            hold[fi] = until;
    }
    rc = 0;
out:
    db_rollback(ob->db);
    free(hold);
    outbox_rows_free(rows, n);
    return rc;
}

int outbox_prune(int64_t *out_deleted, struct outbox *ob, int64_t before, struct rv_error *err)
{
    int rc = db_run(ob->db, err,
                    "DELETE FROM status_outbox AS o"
                    " WHERE phase != 'queued' AND coalesce(posted_at, created_at) < ?"
                    "   AND NOT (phase = 'posted' AND id = (SELECT max(id) FROM status_outbox AS l"
                    "     WHERE l.forge = o.forge AND l.repo = o.repo AND l.sha = o.sha"
                    "       AND l.context = o.context AND l.phase = 'posted'))",
                    "l", before);
    if (rc == 0 && out_deleted)
        *out_deleted = db_changes(ob->db);
    return rc;
}
