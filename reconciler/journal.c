#include "journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "limits.h"

/* The journal: applies and their actions. The `actions` table reserved by
 * the initial schema is left as it is (nothing writes it); the journal's
 * actions belong to an apply, so they live in apply_actions. plan_id has no
 * foreign key: a plan page pruned by age must not fail the prune, and the
 * journal keeps the plan's digest either way. */
const char journal_schema_sql[] =
    "CREATE TABLE applies ("
    "  id INTEGER PRIMARY KEY,"
    "  commit_sha TEXT NOT NULL,"
    "  plan_id INTEGER,"
    "  plan_digest TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'blocked',"
    "                                       'superseded')),"
    "  error TEXT,"
    "  superseded_by INTEGER,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER"
    ") STRICT;"
    "CREATE INDEX applies_by_state ON applies (state, id);"
    "CREATE INDEX applies_by_commit ON applies (commit_sha);"

    "CREATE TABLE apply_actions ("
    "  apply_id INTEGER NOT NULL REFERENCES applies (id),"
    "  seq INTEGER NOT NULL CHECK (seq >= 0),"
    "  action_id TEXT NOT NULL,"
    "  plan_id INTEGER,"
    "  idempotency_key TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  cluster TEXT NOT NULL,"
    "  node TEXT NOT NULL DEFAULT '',"
    "  provider TEXT NOT NULL DEFAULT '',"
    "  depends_on TEXT NOT NULL DEFAULT '[]',"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed',"
    "                                       'blocked', 'canceled')),"
    "  blocked_reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),"
    "  recheck INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  deadline_at INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  output TEXT,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  finished_at INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (apply_id, seq),"
    "  UNIQUE (apply_id, idempotency_key)"
    ") STRICT;"
    "CREATE UNIQUE INDEX apply_actions_one_running_per_key ON apply_actions (idempotency_key)"
    "  WHERE state = 'running';"
    "CREATE INDEX apply_actions_by_key ON apply_actions (idempotency_key);"
    "CREATE INDEX apply_actions_by_cluster ON apply_actions (cluster, state);"
    "CREATE INDEX apply_actions_by_state ON apply_actions (state, next_attempt_at);"
    "CREATE INDEX apply_actions_by_plan ON apply_actions (plan_id);";

static const char *const apply_state_names[] = {"running", "succeeded", "failed", "blocked",
                                                "superseded"};
static const char *const action_state_names[] = {"pending", "running", "succeeded",
                                                 "failed",  "blocked", "canceled"};
static const char *const status_state_names[] = {"pending", "success", "failure"};

const char *journal_apply_state_name(enum journal_apply_state s)
{
    return (size_t)s < sizeof(apply_state_names) / sizeof(apply_state_names[0])
               ? apply_state_names[s]
               : "unknown";
}

const char *journal_action_state_name(enum journal_action_state s)
{
    return (size_t)s < sizeof(action_state_names) / sizeof(action_state_names[0])
               ? action_state_names[s]
               : "unknown";
}

const char *journal_status_state_name(enum journal_status_state s)
{
    return (size_t)s < sizeof(status_state_names) / sizeof(status_state_names[0])
               ? status_state_names[s]
               : "unknown";
}

/* Rows come from our own schema, whose CHECKs only allow known names; a
 * value we cannot read is still rejected, not asserted (the file may have
 * been edited by hand). */
static int parse_name(int *out, const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return RV_EPARSE;
}

static int64_t col_i64(sqlite3_stmt *st, int col)
{
    return sqlite3_column_int64(st, col);
}

/* Text column copied; NULL becomes "" when empty_for_null. */
static int col_text(char **out, sqlite3_stmt *st, int col, bool empty_for_null)
{
    int rc = db_column_text(out, st, col);
    if (rc == 0 && *out == NULL && empty_for_null) {
        *out = strdup("");
        if (!*out)
            rc = RV_ENOMEM;
    }
    return rc;
}

static char *deps_json(const struct plan_action *a)
{
    json_t *arr = json_array();
    char *s = NULL;
    if (!arr)
        return NULL;
    for (size_t i = 0; i < a->ndeps; i++) {
        if (json_array_append_new(arr, json_integer((json_int_t)a->deps[i])) != 0)
            goto out;
    }
    s = json_dumps(arr, JSON_COMPACT);
out:
    json_decref(arr);
    return s;
}

static int deps_parse(size_t **out, size_t *out_n, const char *text, size_t seq)
{
    json_error_t jerr;
    json_t *arr = json_loads(text ? text : "[]", 0, &jerr);
    size_t *deps = NULL;
    size_t n = 0;
    int rc = RV_EPARSE;
    if (!arr || !json_is_array(arr))
        goto out;
    n = json_array_size(arr);
    if (n > 0) {
        deps = calloc(n, sizeof(*deps));
        if (!deps) {
            rc = RV_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (size_t)json_integer_value(v) >= seq)
            goto out;
        deps[i] = (size_t)json_integer_value(v);
    }
    *out = deps;
    *out_n = n;
    deps = NULL;
    rc = 0;
out:
    free(deps);
    json_decref(arr);
    return rc;
}

static int plan_digest(char out[CRYPTO_SHA256_HEX_SIZE], const struct plan *p)
{
    json_t *j = plan_to_json(p);
    char *text = NULL;
    int rc = RV_ENOMEM;
    if (!j)
        goto out;
    text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto out;
    rc = crypto_sha256_hex(out, text, strlen(text));
out:
    free(text);
    json_decref(j);
    return rc;
}

/* Mark older running applies' pending and blocked actions of `cluster`
 * canceled, remembering which apply superseded them. */
static int supersede_cluster(struct db *db, int64_t apply_id, const char *cluster, int64_t now,
                             struct rv_error *err)
{
    char reason[64];
    snprintf(reason, sizeof(reason), "superseded by apply %lld", (long long)apply_id);
    int rc = db_run(db, err,
                    "UPDATE applies SET superseded_by = ? WHERE state = 'running' AND id < ?"
                    " AND id IN (SELECT apply_id FROM apply_actions WHERE cluster = ?"
                    "            AND state IN ('pending', 'blocked'))",
                    "llt", apply_id, apply_id, cluster);
    if (rc != 0)
        return rc;
    return db_run(db, err,
                  "UPDATE apply_actions SET state = 'canceled', last_error = ?, finished_at = ?"
                  " WHERE cluster = ? AND state IN ('pending', 'blocked')"
                  " AND apply_id IN (SELECT id FROM applies WHERE state = 'running' AND id < ?)",
                  "tltl", reason, now, cluster, apply_id);
}

int journal_apply_begin(int64_t *out_id, struct db *db, const struct plan *p,
                        const struct journal_apply_opts *opts, int64_t now, struct rv_error *err)
{
    char digest[CRYPTO_SHA256_HEX_SIZE];
    char *deps = NULL;
    int64_t id = 0;
    int rc;

    if (p->nactions > RV_EXEC_ACTIONS_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "plan for commit '%s' has %zu actions, more than the %d one apply "
                            "may hold; split the change into smaller commits",
                            opts->commit_sha, p->nactions, RV_EXEC_ACTIONS_MAX);
    rc = plan_digest(digest, p);
    if (rc != 0)
        return rv_error_set(err, rc, false, "cannot digest the plan of commit '%s': %s",
                            opts->commit_sha, rv_strerror(rc));
    rc = db_begin(db, err);
    if (rc != 0)
        return rc;
    rc = db_run(db, err,
                "INSERT INTO applies (commit_sha, plan_id, plan_digest, state, started_at)"
                " VALUES (?, NULLIF(?, 0), ?, 'running', ?)",
                "tltl", opts->commit_sha, opts->plan_id > 0 ? opts->plan_id : (int64_t)0, digest,
                now);
    if (rc != 0)
        goto out;
    id = db_last_insert_id(db);

    for (size_t i = 0; i < p->nactions; i++) {
        const struct plan_action *a = &p->actions[i];
        /* The planner keeps a cluster's actions together; superseding
         * twice for a cluster seen before is harmless (nothing is left). */
        if (i == 0 || strcmp(p->actions[i - 1].cluster, a->cluster) != 0) {
            rc = supersede_cluster(db, id, a->cluster, now, err);
            if (rc != 0)
                goto out;
        }
        const char *provider = "";
        if (opts->provider_of) {
            provider = opts->provider_of(a->cluster, opts->ud);
            if (!provider)
                provider = "";
        }
        free(deps);
        deps = deps_json(a);
        if (!deps) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory journaling '%s'", a->id);
            goto out;
        }
        rc = db_run(
            db, err,
            "INSERT INTO apply_actions (apply_id, seq, action_id, plan_id, idempotency_key,"
            " kind, cluster, node, provider, depends_on, state, blocked_reason, recheck)"
            " VALUES (?, ?, ?, NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?, ?,"
            "  EXISTS (SELECT 1 FROM apply_actions WHERE idempotency_key = ? AND attempts > 0))",
            "lltlttttttttt", id, (int64_t)i, a->id, opts->plan_id > 0 ? opts->plan_id : (int64_t)0,
            a->idempotency_key, plan_kind_name(a->kind), a->cluster, a->node ? a->node : "",
            provider, deps, a->blocked ? "blocked" : "pending", a->blocked, a->idempotency_key);
        if (rc != 0)
            goto out;
    }
    rc = db_commit(db, err);
    if (rc != 0)
        goto out;
    *out_id = id;
out:
    if (rc != 0)
        db_rollback(db);
    free(deps);
    return rc;
}

static void action_release(struct journal_action *a)
{
    free(a->id);
    free(a->idempotency_key);
    free(a->kind);
    free(a->cluster);
    free(a->node);
    free(a->provider);
    free(a->deps);
    free(a->blocked_reason);
    free(a->last_error);
    free(a->output);
    memset(a, 0, sizeof(*a));
}

void journal_apply_release(struct journal_apply *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nactions; i++)
        action_release(&a->actions[i]);
    free(a->actions);
    free(a->commit_sha);
    free(a->plan_digest);
    free(a->error);
    memset(a, 0, sizeof(*a));
}

static int load_actions(struct journal_apply *out, struct db *db, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int rc = db_query_i64(&n, db, err, "SELECT count(*) FROM apply_actions WHERE apply_id = ?", "l",
                          out->id);
    if (rc != 0)
        goto out;
    if (n > RV_EXEC_ACTIONS_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "apply %lld has %lld actions, more than %d",
                          (long long)out->id, (long long)n, RV_EXEC_ACTIONS_MAX);
        goto out;
    }
    if (n > 0) {
        out->actions = calloc((size_t)n, sizeof(*out->actions));
        if (!out->actions) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory loading apply %lld",
                              (long long)out->id);
            goto out;
        }
    }
    rc = db_prepare(&st, db, err,
                    "SELECT seq, action_id, idempotency_key, kind, cluster, node, provider,"
                    " depends_on, state, blocked_reason, attempts, recheck, next_attempt_at,"
                    " deadline_at, last_error, output, started_at, finished_at"
                    " FROM apply_actions WHERE apply_id = ? ORDER BY seq",
                    "l", out->id);
    if (rc != 0)
        goto out;
    while ((rc = db_step(st, db, err)) == 1) {
        if (out->nactions >= (size_t)n)
            break;
        struct journal_action *a = &out->actions[out->nactions];
        char *deps = NULL;
        char *state = NULL;
        int s = 0;
        a->apply_id = out->id;
        a->seq = (size_t)col_i64(st, 0);
        out->nactions++;
        rc = col_text(&a->id, st, 1, true);
        if (rc == 0)
            rc = col_text(&a->idempotency_key, st, 2, true);
        if (rc == 0)
            rc = col_text(&a->kind, st, 3, true);
        if (rc == 0)
            rc = col_text(&a->cluster, st, 4, true);
        if (rc == 0)
            rc = col_text(&a->node, st, 5, true);
        if (rc == 0)
            rc = col_text(&a->provider, st, 6, true);
        if (rc == 0)
            rc = col_text(&deps, st, 7, false);
        if (rc == 0)
            rc = col_text(&state, st, 8, false);
        if (rc == 0)
            rc = col_text(&a->blocked_reason, st, 9, false);
        if (rc == 0)
            rc = col_text(&a->last_error, st, 14, false);
        if (rc == 0)
            rc = col_text(&a->output, st, 15, false);
        if (rc == 0) {
            rc = deps_parse(&a->deps, &a->ndeps, deps, a->seq);
            if (rc == 0)
                rc = parse_name(&s, action_state_names,
                                sizeof(action_state_names) / sizeof(action_state_names[0]), state);
            if (rc != 0)
                rc = rv_error_set(err, RV_EPARSE, false,
                                  "journal row of action '%s' (apply %lld) is corrupt: bad "
                                  "state or depends_on; restore the database from a backup",
                                  a->id, (long long)out->id);
        } else {
            rc = rv_error_set(err, rc, false, "out of memory loading apply %lld",
                              (long long)out->id);
        }
        free(deps);
        free(state);
        if (rc != 0)
            goto out;
        if (a->seq != out->nactions - 1) {
            rc = rv_error_set(err, RV_EPARSE, false,
                              "journal of apply %lld misses action %zu; restore the database "
                              "from a backup",
                              (long long)out->id, out->nactions - 1);
            goto out;
        }
        a->state = (enum journal_action_state)s;
        a->attempts = (int)col_i64(st, 10);
        a->recheck = col_i64(st, 11) != 0;
        a->next_attempt_at = col_i64(st, 12);
        a->deadline_at = col_i64(st, 13);
        a->started_at = col_i64(st, 16);
        a->finished_at = col_i64(st, 17);
    }
    if (rc > 0)
        rc = 0;
out:
    db_finalize(st);
    return rc;
}

int journal_apply_load(struct journal_apply *out, struct db *db, int64_t id, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    char *state = NULL;
    int s = 0;
    memset(out, 0, sizeof(*out));
    int rc = db_prepare(&st, db, err,
                        "SELECT commit_sha, plan_id, plan_digest, state, error, superseded_by,"
                        " started_at, finished_at FROM applies WHERE id = ?",
                        "l", id);
    if (rc != 0)
        goto out;
    rc = db_step(st, db, err);
    if (rc == 0) {
        rc = rv_error_set(err, RV_ENOTFOUND, false, "apply %lld is not in the journal",
                          (long long)id);
        goto out;
    }
    if (rc < 0)
        goto out;
    out->id = id;
    rc = col_text(&out->commit_sha, st, 0, true);
    if (rc == 0)
        rc = col_text(&out->plan_digest, st, 2, true);
    if (rc == 0)
        rc = col_text(&state, st, 3, false);
    if (rc == 0)
        rc = col_text(&out->error, st, 4, false);
    if (rc != 0) {
        rc = rv_error_set(err, rc, false, "out of memory loading apply %lld", (long long)id);
        goto out;
    }
    if (parse_name(&s, apply_state_names, sizeof(apply_state_names) / sizeof(apply_state_names[0]),
                   state) != 0) {
        rc = rv_error_set(err, RV_EPARSE, false, "journal row of apply %lld has state '%s'",
                          (long long)id, state ? state : "(null)");
        goto out;
    }
    out->state = (enum journal_apply_state)s;
    out->plan_id = col_i64(st, 1);
    out->superseded_by = col_i64(st, 5);
    out->started_at = col_i64(st, 6);
    out->finished_at = col_i64(st, 7);
    db_finalize(st);
    st = NULL;
    rc = load_actions(out, db, err);
out:
    free(state);
    db_finalize(st);
    if (rc != 0)
        journal_apply_release(out);
    return rc;
}

int journal_apply_running(int64_t **out_ids, size_t *out_n, struct db *db, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = db_prepare(&st, db, err, "SELECT id FROM applies WHERE state = 'running' ORDER BY id",
                        NULL);
    if (rc != 0)
        goto out;
    while ((rc = db_step(st, db, err)) == 1) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            int64_t *nids = realloc(ids, ncap * sizeof(*ids));
            if (!nids) {
                rc = rv_error_set(err, RV_ENOMEM, false, "out of memory listing applies");
                goto out;
            }
            ids = nids;
            cap = ncap;
        }
        ids[n++] = col_i64(st, 0);
    }
    if (rc < 0)
        goto out;
    *out_ids = ids;
    *out_n = n;
    ids = NULL;
    rc = 0;
out:
    free(ids);
    db_finalize(st);
    return rc;
}

int journal_recover(size_t *out_n, struct db *db, int64_t now, struct rv_error *err)
{
    int rc = db_run(db, err,
                    "UPDATE apply_actions SET state = 'pending', next_attempt_at = ?,"
                    " last_error = 'interrupted by a restart of reeve; checked before retrying'"
                    " WHERE state = 'running'",
                    "l", now);
    if (rc == 0 && out_n)
        *out_n = (size_t)db_changes(db);
    return rc;
}

int journal_action_write(struct db *db, const struct journal_action *a,
                         enum journal_action_state from, struct rv_error *err)
{
    int rc;
    if (a->state == JOURNAL_ACTION_RUNNING) {
        int64_t running = 0;
        rc = db_query_i64(&running, db, err,
                          "SELECT count(*) FROM apply_actions WHERE idempotency_key = ?"
                          " AND state = 'running' AND NOT (apply_id = ? AND seq = ?)",
                          "tll", a->idempotency_key, a->apply_id, (int64_t)a->seq);
        if (rc != 0)
            return rc;
        if (running > 0)
            return rv_error_set(err, RV_ECONFLICT, true,
                                "action '%s' is already running in another apply; it starts "
                                "when that one ends",
                                a->id);
    }
    rc = db_run(db, err,
                "UPDATE apply_actions SET state = ?, attempts = ?, next_attempt_at = ?,"
                " deadline_at = ?, last_error = ?, output = ?, started_at = ?,"
                " finished_at = ? WHERE apply_id = ? AND seq = ? AND state = ?",
                "tillttllllt", journal_action_state_name(a->state), a->attempts, a->next_attempt_at,
                a->deadline_at, a->last_error, a->output, a->started_at, a->finished_at,
                a->apply_id, (int64_t)a->seq, journal_action_state_name(from));
    if (rc != 0)
        return rc;
    if (db_changes(db) != 1)
        return rv_error_set(err, RV_ECONFLICT, false,
                            "action '%s' of apply %lld is no longer %s in the journal; is a "
                            "second reeve running on this database?",
                            a->id, (long long)a->apply_id, journal_action_state_name(from));
    return 0;
}

int journal_apply_finish(struct db *db, int64_t apply_id, enum journal_apply_state state,
                         const char *error, int64_t now, struct rv_error *err)
{
    return db_run(db, err, "UPDATE applies SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                  "ttll", journal_apply_state_name(state), error, now, apply_id);
}

int journal_apply_status(struct journal_status *out, struct db *db, int64_t apply_id,
                         struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    char *state = NULL;
    char *error = NULL;
    int s = 0;
    int64_t superseded_by = 0;
    memset(out, 0, sizeof(*out));
    int rc = db_prepare(&st, db, err,
                        "SELECT state, error, superseded_by,"
                        " (SELECT count(*) FROM apply_actions WHERE apply_id = applies.id),"
                        " (SELECT count(*) FROM apply_actions WHERE apply_id = applies.id"
                        "  AND state = 'succeeded')"
                        " FROM applies WHERE id = ?",
                        "l", apply_id);
    if (rc != 0)
        goto out;
    rc = db_step(st, db, err);
    if (rc == 0) {
        rc = rv_error_set(err, RV_ENOTFOUND, false, "apply %lld is not in the journal",
                          (long long)apply_id);
        goto out;
    }
    if (rc < 0)
        goto out;
    rc = col_text(&state, st, 0, false);
    if (rc == 0)
        rc = col_text(&error, st, 1, false);
    if (rc != 0) {
        rc = rv_error_set(err, rc, false, "out of memory reading apply %lld", (long long)apply_id);
        goto out;
    }
    if (parse_name(&s, apply_state_names, sizeof(apply_state_names) / sizeof(apply_state_names[0]),
                   state) != 0) {
        rc = rv_error_set(err, RV_EPARSE, false, "journal row of apply %lld has state '%s'",
                          (long long)apply_id, state ? state : "(null)");
        goto out;
    }
    superseded_by = col_i64(st, 2);
    out->apply_state = (enum journal_apply_state)s;
    out->total = (size_t)col_i64(st, 3);
    out->done = (size_t)col_i64(st, 4);
    rc = 0;
    switch (out->apply_state) {
    case JOURNAL_APPLY_RUNNING:
        out->state = JOURNAL_STATUS_PENDING;
        snprintf(out->text, sizeof(out->text), "applying: %zu/%zu actions done", out->done,
                 out->total);
        break;
    case JOURNAL_APPLY_SUCCEEDED:
        out->state = JOURNAL_STATUS_SUCCESS;
        snprintf(out->text, sizeof(out->text), "applied: %zu/%zu actions done", out->done,
                 out->total);
        break;
    case JOURNAL_APPLY_SUPERSEDED:
        out->state = JOURNAL_STATUS_FAILURE;
        if (error)
            snprintf(out->text, sizeof(out->text), "%s", error);
        else
            snprintf(out->text, sizeof(out->text), "superseded by apply %lld",
                     (long long)superseded_by);
        break;
    case JOURNAL_APPLY_FAILED:
    case JOURNAL_APPLY_BLOCKED:
        out->state = JOURNAL_STATUS_FAILURE;
        snprintf(out->text, sizeof(out->text), "%s", error ? error : "failed");
        break;
    }
out:
    free(state);
    free(error);
    db_finalize(st);
    return rc;
}
