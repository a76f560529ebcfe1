/* test_outbox.c - reconciler/store and reconciler/outbox.
 *
 * Unit part (always): schema, webhook dedup, events; outbox dedup,
 * supersede, backoff, Retry-After, give-up rules, leases, persistence across
 * reopen, pruning. The clock, the jitter and the forge are injected.
 *
 * End-to-end part (REEVE_OUTBOX_E2E=1, run by
 * tests/integration/t0300-forge-statuses.sh): the outbox with the real
 * forge client against tests/fakeforge/fakeforge.py for each forge kind,
 * with 503s, a bad token and rate limits, on the wall clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"
#include "outbox.h"
#include "store.h"

#include "../fakeforge/fakeforge_client.h"
#include "tutil.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define T0 1800000000

/* A scripted forge: answers from a list, records what it was asked. */
struct script {
    struct forge_result answers[16];
    size_t n_answers;
    size_t calls;
    char posted[16][64]; /* "context=state:description" per call */
    /* Optional hooks run during a post. */
    void (*during)(struct script *s);
    struct outbox *ob;
    int64_t lease_seen; /* next_attempt_at of the row during the post */
};

struct fixture {
    char dir[64];
    char path[128];
    struct db *db;
    struct forge forges[2];
    struct outbox ob;
    int64_t now;
    uint32_t rnd;
    struct script script;
};

static int64_t fake_now(void *ud)
{
    return ((struct fixture *)ud)->now;
}

static uint32_t fake_random(void *ud)
{
    return ((struct fixture *)ud)->rnd;
}

static int fake_post(struct forge_result *out, const struct forge *f, const struct forge_status *st,
                     struct rv_error *err, void *ud)
{
    struct script *s = ud;
    (void)err;
    size_t i = s->calls++;
    if (i < 16)
        snprintf(s->posted[i], sizeof(s->posted[i]), "%s=%s:%s@%s", st->context,
                 forge_state_name(st->state), st->description ? st->description : "", f->name);
    if (s->during)
        s->during(s);
    if (i < s->n_answers) {
        *out = s->answers[i];
    } else {
        memset(out, 0, sizeof(*out));
        out->outcome = FORGE_OK;
        out->http_status = 201;
    }
    return out->outcome == FORGE_OK ? 0 : RV_EUNAVAIL;
}

static void answer(struct script *s, enum forge_outcome o, bool rate_limited, int64_t retry_at)
{
    struct forge_result *r = &s->answers[s->n_answers++];
    memset(r, 0, sizeof(*r));
    r->outcome = o;
    r->rate_limited = rate_limited;
    r->retry_at = retry_at;
    r->http_status = o == FORGE_OK ? 201 : o == FORGE_AUTH ? 401 : o == FORGE_PERMANENT ? 422 : 503;
    snprintf(r->message, sizeof(r->message), "scripted %ld", r->http_status);
}

static void fixture_open(struct fixture *fx)
{
    struct rv_error err;
    rv_error_clear(&err);
    if (store_open(&fx->db, fx->path, NULL, &err) != 0)
        fail_msg("store_open: %s", err.msg);
    outbox_init(&fx->ob, fx->db, fx->forges, 2);
    fx->ob.now = fake_now;
    fx->ob.random = fake_random;
    fx->ob.clock_ud = fx;
    fx->ob.post = fake_post;
    fx->ob.post_ud = &fx->script;
    fx->script.ob = &fx->ob;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rv-test-outbox-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/reeve.db", fx->dir);
    forge_init(&fx->forges[0], FORGE_GITHUB, "gh", "https://api.github.com", "t1");
    forge_init(&fx->forges[1], FORGE_GITLAB, "gl", "https://gitlab.example.com", "t2");
    fx->now = T0;
    fixture_open(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    db_free(fx->db);
    tu_db_unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static struct forge_status status(const char *sha, const char *context, enum forge_state state,
                                  const char *desc)
{
    struct forge_status st = {
        .repo = "acme/infra",
        .sha = sha,
        .context = context,
        .state = state,
        .description = desc,
        .target_url = "https://reeve.example/plans/1",
    };
    return st;
}

static int64_t count_rows(struct fixture *fx, const char *phase)
{
    int64_t n = -1;
    assert_int_equal(db_query_i64(&n, fx->db, NULL,
                                  "SELECT count(*) FROM status_outbox WHERE phase = ?", "t", phase),
                     0);
    return n;
}

static struct outbox_row get_row(struct fixture *fx, int64_t id)
{
    struct outbox_row row;
    struct rv_error err;
    assert_int_equal(outbox_get(&row, &fx->ob, id, &err), 0);
    return row;
}

static int64_t enqueue(struct fixture *fx, const char *forge, struct forge_status st)
{
    int64_t id = 0;
    struct rv_error err;
    rv_error_clear(&err);
    if (outbox_enqueue(&id, &fx->ob, forge, &st, &err) != 0)
        fail_msg("outbox_enqueue: %s", err.msg);
    return id;
}

static void run(struct fixture *fx)
{
    struct rv_error err;
    rv_error_clear(&err);
    if (outbox_run_once(NULL, &fx->ob, &err) != 0)
        fail_msg("outbox_run_once: %s", err.msg);
}

/* ---- store ---- */

static void test_store_schema(void **state)
{
    struct fixture *fx = *state;
    int v = 0;
    static const char *const tables[] = {
        "commits",       "specs",  "pull_requests",      "plans",          "webhook_deliveries",
        "status_outbox", "events", "observed_instances", "observed_nodes", "actions"};

    assert_int_equal(db_schema_version(&v, fx->db, NULL), 0);
    assert_int_equal(v, (int)store_migrations_len);
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        int64_t n = 0;
        assert_int_equal(db_query_i64(&n, fx->db, NULL,
                                      "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                                      " AND name = ?",
                                      "t", tables[i]),
                         0);
        assert_int_equal(n, 1);
    }
    /* The action journal's idempotency key is unique. */
    assert_int_equal(db_run(fx->db, NULL,
                            "INSERT INTO actions (idempotency_key, kind, cluster, state,"
                            " created_at, updated_at) VALUES ('k1', 'add_replica', 'p/b',"
                            " 'pending', 1, 1)",
                            NULL),
                     0);
    assert_int_equal(db_run(fx->db, NULL,
                            "INSERT INTO actions (idempotency_key, kind, cluster, state,"
                            " created_at, updated_at) VALUES ('k1', 'add_replica', 'p/b',"
                            " 'pending', 1, 1)",
                            NULL),
                     RV_EDB);
    /* STRICT tables refuse a wrong type. */
    assert_int_equal(db_run(fx->db, NULL,
                            "INSERT INTO commits (sha, ref, seen_at) VALUES ('a', 'main', 'x')",
                            NULL),
                     RV_EDB);
    /* Reopening migrates nothing more. */
    db_free(fx->db);
    fixture_open(fx);
    assert_int_equal(db_schema_version(&v, fx->db, NULL), 0);
    assert_int_equal(v, (int)store_migrations_len);
}

static void test_store_webhooks_events(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err;
    bool dup = true;
    int64_t n = 0;

    assert_int_equal(store_webhook_delivery(&dup, fx->db, "gh", "d-1", T0, &err), 0);
    assert_false(dup);
    assert_int_equal(store_webhook_delivery(&dup, fx->db, "gh", "d-1", T0 + 5, &err), 0);
    assert_true(dup);
    assert_int_equal(store_webhook_delivery(&dup, fx->db, "gl", "d-1", T0, &err), 0);
    assert_false(dup); /* ids are per forge */
    assert_int_equal(store_webhook_delivery(&dup, fx->db, "gh", "d-2", T0 + 100, &err), 0);
    assert_int_equal(store_webhook_delivery(&dup, fx->db, "gh", "", T0, &err), RV_EINVAL);

    /* Survives a restart. */
    db_free(fx->db);
    fixture_open(fx);
    assert_int_equal(store_webhook_delivery(&dup, fx->db, "gh", "d-1", T0 + 9, &err), 0);
    assert_true(dup);

    assert_int_equal(store_webhook_prune(&n, fx->db, T0 + 50, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_webhook_delivery(&dup, fx->db, "gh", "d-2", T0 + 200, &err), 0);
    assert_true(dup); /* newer than the cut: kept */

    assert_int_equal(store_event_append(fx->db, T0, "status.posted", "acme/infra@aaaa",
                                        "posted reeve/plan", NULL, &err),
                     0);
    assert_int_equal(db_query_i64(&n, fx->db, &err, "SELECT count(*) FROM events", NULL), 0);
    assert_int_equal(n, 1);
}

/* ---- outbox ---- */

static void test_enqueue_dedup(void **state)
{
    struct fixture *fx = *state;
    struct forge_status st = status(SHA_A, "reeve/plan", FORGE_PENDING, "planning");

    int64_t id1 = enqueue(fx, "gh", st);
    int64_t id2 = enqueue(fx, "gh", st);
    assert_int_equal(id1, id2);
    assert_int_equal(count_rows(fx, "queued"), 1);
    assert_int_equal(fx->ob.metrics.deduplicated, 1);

    run(fx);
    assert_int_equal(fx->script.calls, 1);
    /* Posted: the same status again is still a duplicate... */
    assert_int_equal(enqueue(fx, "gh", st), id1);
    run(fx);
    assert_int_equal(fx->script.calls, 1);
    /* ...but another forge, sha or context is not. */
    int64_t other = enqueue(fx, "gl", st);
    assert_true(other != id1);
    enqueue(fx, "gh", status(SHA_B, "reeve/plan", FORGE_PENDING, "planning"));
    enqueue(fx, "gh", status(SHA_A, "reeve/validate", FORGE_PENDING, "planning"));
    assert_int_equal(count_rows(fx, "queued"), 3);
    /* A changed target url is a change. */
    st.target_url = "https://reeve.example/plans/2";
    assert_true(enqueue(fx, "gh", st) != id1);
}

static void test_enqueue_supersedes(void **state)
{
    struct fixture *fx = *state;

    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    int64_t b = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_SUCCESS, "2 changes"));
    assert_true(a != b);
    struct outbox_row row = get_row(fx, a);
    assert_int_equal(row.phase, OUTBOX_SUPERSEDED);
    outbox_row_release(&row);
    assert_int_equal(fx->ob.metrics.superseded, 1);

    run(fx);
    /* Only the newest was sent. */
    assert_int_equal(fx->script.calls, 1);
    assert_string_equal(fx->script.posted[0], "reeve/plan=success:2 changes@gh");

    /* Going back to an earlier status after a newer one was posted is a
     * change again (the forge shows the newer one). */
    int64_t c = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    assert_true(c != a && c != b);
    run(fx);
    assert_int_equal(fx->script.calls, 2);
    row = get_row(fx, c);
    assert_int_equal(row.phase, OUTBOX_POSTED);
    assert_int_equal(row.posted_at, T0);
    assert_int_equal(row.attempts, 1);
    assert_null(row.last_error);
    outbox_row_release(&row);
}

static void test_backoff(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;
    int64_t id;
    struct outbox_row row;
    struct outbox_metrics pass;
    struct rv_error err;

    fx->ob.attempts_max = 4;
    for (int i = 0; i < 4; i++)
        answer(s, FORGE_RETRY, false, 0);
    id = enqueue(fx, "gh", status(SHA_A, "reeve/apply", FORGE_PENDING, "applying"));

    /* Attempt 1 fails: base 2 s, jitter 0 of the half -> due in 1 s. */
    fx->rnd = 0;
    memset(&pass, 0, sizeof(pass));
    assert_int_equal(outbox_run_once(&pass, &fx->ob, &err), 0);
    assert_int_equal(pass.retried, 1);
    row = get_row(fx, id);
    assert_int_equal(row.attempts, 1);
    assert_int_equal(row.next_attempt_at, T0 + 1);
    assert_string_equal(row.last_error, "scripted 503");
    outbox_row_release(&row);

    /* Not due yet: nothing is sent. */
    run(fx);
    assert_int_equal(s->calls, 1);

    /* Attempt 2 with full jitter: 4 s -> 2 + (rnd % 3) = 4. */
    fx->now = T0 + 1;
    fx->rnd = 2;
    run(fx);
    row = get_row(fx, id);
    assert_int_equal(row.attempts, 2);
    assert_int_equal(row.next_attempt_at, T0 + 1 + 4);
    outbox_row_release(&row);

    /* Attempt 3: 8 s, half jittered: between 4 and 8. */
    fx->now = T0 + 5;
    fx->rnd = 7;
    run(fx);
    row = get_row(fx, id);
    assert_int_equal(row.attempts, 3);
    assert_int_equal(row.next_attempt_at, T0 + 5 + 4 + 7 % 5);
    outbox_row_release(&row);

    /* Attempt 4 is the last: given up, and never sent again. */
    fx->now = T0 + 100;
    run(fx);
    row = get_row(fx, id);
    assert_int_equal(row.phase, OUTBOX_FAILED);
    assert_int_equal(row.attempts, 4);
    assert_non_null(strstr(row.last_error, "given up after 4 attempts"));
    outbox_row_release(&row);
    fx->now = T0 + 100000;
    run(fx);
    assert_int_equal(s->calls, 4);
    assert_int_equal(fx->ob.metrics.failed, 1);
    assert_int_equal(fx->ob.metrics.retried, 3);
}

static void test_backoff_cap(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    fx->ob.attempts_max = 100;
    for (int i = 0; i < 16; i++)
        answer(s, FORGE_RETRY, false, 0);
    int64_t id = enqueue(fx, "gh", status(SHA_A, "reeve/apply", FORGE_PENDING, "applying"));
    fx->rnd = UINT32_MAX;
    for (int i = 0; i < 14; i++) {
        run(fx);
        struct outbox_row row = get_row(fx, id);
        int64_t delay = row.next_attempt_at - fx->now;
        assert_true(delay >= 1);
        assert_true(delay <= RV_OUTBOX_BACKOFF_MAX_S);
        if (i >= 12)
            assert_true(delay >= RV_OUTBOX_BACKOFF_MAX_S / 2);
        fx->now = row.next_attempt_at;
        outbox_row_release(&row);
    }
    assert_int_equal(s->calls, 14);
}

static void test_retry_after_and_rate_limit(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    /* A 503 with Retry-After far beyond the backoff: wait for it. */
    answer(s, FORGE_RETRY, false, T0 + 90);
    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    run(fx);
    struct outbox_row row = get_row(fx, a);
    assert_int_equal(row.next_attempt_at, T0 + 90);
    assert_int_equal(row.attempts, 1);
    outbox_row_release(&row);

    /* A rate limit holds every queued row of that forge until the reset,
     * costs no attempt, and leaves other forges alone. */
    fx->now = T0 + 90;
    int64_t b = enqueue(fx, "gh", status(SHA_B, "reeve/plan", FORGE_PENDING, "planning"));
    int64_t c = enqueue(fx, "gl", status(SHA_B, "reeve/plan", FORGE_PENDING, "planning"));
    answer(s, FORGE_RETRY, true, T0 + 400);
    run(fx);
    assert_int_equal(s->calls, 3); /* a (limited), then b skipped, then c */
    assert_string_equal(s->posted[2], "reeve/plan=pending:planning@gl");
    row = get_row(fx, a);
    assert_int_equal(row.next_attempt_at, T0 + 400);
    assert_int_equal(row.attempts, 1);
    outbox_row_release(&row);
    row = get_row(fx, b);
    assert_int_equal(row.phase, OUTBOX_QUEUED);
    assert_int_equal(row.next_attempt_at, T0 + 400);
    assert_int_equal(row.attempts, 0);
    outbox_row_release(&row);
    row = get_row(fx, c);
    assert_int_equal(row.phase, OUTBOX_POSTED);
    outbox_row_release(&row);
    assert_int_equal(fx->ob.metrics.rate_limited, 1);

    int64_t due = 0;
    assert_int_equal(outbox_next_due(&due, &fx->ob, NULL), 0);
    assert_int_equal(due, T0 + 400);

    /* Before the reset nothing goes out; at the reset both do. */
    fx->now = T0 + 399;
    run(fx);
    assert_int_equal(s->calls, 3);
    fx->now = T0 + 400;
    run(fx);
    assert_int_equal(s->calls, 5);
    assert_int_equal(count_rows(fx, "queued"), 0);
    assert_int_equal(outbox_next_due(&due, &fx->ob, NULL), RV_ENOTFOUND);
}

static void test_auth_and_permanent_not_retried(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    answer(s, FORGE_AUTH, false, 0);
    answer(s, FORGE_PERMANENT, false, 0);
    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    int64_t b = enqueue(fx, "gh", status(SHA_B, "reeve/plan", FORGE_PENDING, "planning"));
    run(fx);
    assert_int_equal(s->calls, 2);
    struct outbox_row row = get_row(fx, a);
    assert_int_equal(row.phase, OUTBOX_FAILED);
    assert_string_equal(row.last_error, "scripted 401");
    outbox_row_release(&row);
    row = get_row(fx, b);
    assert_int_equal(row.phase, OUTBOX_FAILED);
    outbox_row_release(&row);
    fx->now += 3600;
    run(fx);
    assert_int_equal(s->calls, 2);
    assert_int_equal(fx->ob.metrics.failed, 2);
    assert_int_equal(fx->ob.metrics.posted, 0);

    /* Enqueueing the same status again after a failure is a new try. */
    int64_t c = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    assert_true(c != a);
}

static void test_invalid_and_unknown_forge(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err;
    int64_t id = 0;
    struct forge_status st = status("nothex", "reeve/plan", FORGE_PENDING, "x");

    assert_int_equal(outbox_enqueue(&id, &fx->ob, "gh", &st, &err), RV_EINVAL);
    st = status(SHA_A, "reeve/plan", FORGE_PENDING, "x");
    assert_int_equal(outbox_enqueue(&id, &fx->ob, "bitbucket", &st, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "forge 'bitbucket' is not configured"));
    assert_int_equal(count_rows(fx, "queued"), 0);

    /* A forge dropped from the configuration while rows wait for it. */
    enqueue(fx, "gl", st);
    fx->ob.n_forges = 1;
    run(fx);
    assert_int_equal(fx->script.calls, 0);
    assert_int_equal(count_rows(fx, "failed"), 1);
}

static void lease_probe(struct script *s)
{
    int64_t v = 0;
    assert_int_equal(db_query_i64(&v, s->ob->db, NULL,
                                  "SELECT next_attempt_at FROM status_outbox"
                                  " WHERE phase = 'queued' ORDER BY id LIMIT 1",
                                  NULL),
                     0);
    s->lease_seen = v;
}

static void test_lease_and_crash(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    /* While a row is being posted it is leased, so a runner that dies
     * mid-post leaves it due again after the lease. */
    s->during = lease_probe;
    int64_t id = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    run(fx);
    assert_int_equal(s->lease_seen, T0 + RV_OUTBOX_LEASE_S);

    /* Simulate the crash: claim by hand as run_once does, then reopen. */
    s->during = NULL;
    int64_t id2 = enqueue(fx, "gh", status(SHA_B, "reeve/plan", FORGE_PENDING, "planning"));
    assert_int_equal(db_run(fx->db, NULL,
                            "UPDATE status_outbox SET next_attempt_at = ? WHERE id = ?", "ll",
                            (int64_t)(T0 + RV_OUTBOX_LEASE_S), id2),
                     0);
    db_free(fx->db);
    fixture_open(fx);
    run(fx);
    assert_int_equal(s->calls, 1); /* leased: not yet */
    fx->now = T0 + RV_OUTBOX_LEASE_S;
    run(fx);
    assert_int_equal(s->calls, 2);
    struct outbox_row row = get_row(fx, id2);
    assert_int_equal(row.phase, OUTBOX_POSTED);
    outbox_row_release(&row);
    (void)id;
}

static void supersede_during_post(struct script *s)
{
    if (s->calls == 1) {
        struct forge_status st = status(SHA_A, "reeve/plan", FORGE_SUCCESS, "done");
        assert_int_equal(outbox_enqueue(NULL, s->ob, "gh", &st, NULL), 0);
    }
}

static void test_superseded_in_flight(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    /* A newer status arrives while the older one is on the wire: the older
     * did reach the forge (posted), the newer follows in the next pass. */
    s->during = supersede_during_post;
    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    run(fx);
    struct outbox_row row = get_row(fx, a);
    assert_int_equal(row.phase, OUTBOX_POSTED);
    outbox_row_release(&row);
    assert_int_equal(count_rows(fx, "queued"), 1);
    run(fx);
    assert_int_equal(s->calls, 2);
    assert_string_equal(s->posted[1], "reeve/plan=success:done@gh");
}

static void test_superseded_in_flight_retry(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    /* Same, but the older post fails: it stays superseded, not retried. */
    s->during = supersede_during_post;
    answer(s, FORGE_RETRY, false, 0);
    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    run(fx);
    struct outbox_row row = get_row(fx, a);
    assert_int_equal(row.phase, OUTBOX_SUPERSEDED);
    outbox_row_release(&row);
    fx->now += 1000;
    run(fx);
    run(fx);
    assert_int_equal(s->calls, 2);
    assert_string_equal(s->posted[1], "reeve/plan=success:done@gh");
}

static void test_persistence_across_reopen(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    answer(s, FORGE_RETRY, false, 0);
    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/apply", FORGE_PENDING, "applying"));
    int64_t b = enqueue(fx, "gl", status(SHA_A, "reeve/apply", FORGE_PENDING, "applying"));
    fx->rnd = 0;
    run(fx); /* a fails once, b is posted */
    db_free(fx->db);
    fx->db = NULL;

    fixture_open(fx);
    struct outbox_row *rows = NULL;
    size_t n = 0;
    struct rv_error err;
    assert_int_equal(outbox_due(&rows, &n, &fx->ob, 10, &err), 0);
    assert_int_equal(n, 0); /* a waits for its backoff */
    outbox_rows_free(rows, n);
    fx->now += 10;
    assert_int_equal(outbox_due(&rows, &n, &fx->ob, 10, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, a);
    assert_string_equal(rows[0].forge, "gh");
    assert_string_equal(rows[0].repo, "acme/infra");
    assert_string_equal(rows[0].sha, SHA_A);
    assert_string_equal(rows[0].context, "reeve/apply");
    assert_int_equal(rows[0].state, FORGE_PENDING);
    assert_string_equal(rows[0].description, "applying");
    assert_string_equal(rows[0].target_url, "https://reeve.example/plans/1");
    assert_int_equal(rows[0].attempts, 1);
    assert_int_equal(rows[0].created_at, T0);
    outbox_rows_free(rows, n);
    outbox_rows_free(NULL, 0);

    /* Dedup works against what was posted before the restart. */
    assert_int_equal(enqueue(fx, "gl", status(SHA_A, "reeve/apply", FORGE_PENDING, "applying")), b);
    run(fx);
    assert_int_equal(s->calls, 3);
    assert_int_equal(count_rows(fx, "posted"), 2);
}

static void test_age_limit(void **state)
{
    struct fixture *fx = *state;
    struct script *s = &fx->script;

    answer(s, FORGE_RETRY, true, T0 + RV_FORGE_RETRY_AFTER_MAX_S);
    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    run(fx);
    /* Rate limits do not count as attempts, but age does. */
    fx->now = T0 + RV_OUTBOX_AGE_MAX_S + 1;
    run(fx);
    assert_int_equal(s->calls, 1);
    struct outbox_row row = get_row(fx, a);
    assert_int_equal(row.phase, OUTBOX_FAILED);
    assert_non_null(strstr(row.last_error, "given up: not posted within"));
    outbox_row_release(&row);
    assert_int_equal(fx->ob.metrics.failed, 1);
}

static void test_prune(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err;
    int64_t n = 0;

    int64_t a = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_PENDING, "planning"));
    run(fx);
    fx->now += 10;
    int64_t b = enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_SUCCESS, "ok"));
    run(fx);
    fx->now += 10;
    int64_t c = enqueue(fx, "gh", status(SHA_A, "reeve/validate", FORGE_PENDING, "x"));
    enqueue(fx, "gh", status(SHA_A, "reeve/validate", FORGE_SUCCESS, "y")); /* supersedes c */

    assert_int_equal(outbox_prune(&n, &fx->ob, fx->now + 1, &err), 0);
    /* a (older posted) and c (superseded) go; b stays as the latest posted
     * status of its key, and the queued row stays. */
    assert_int_equal(n, 2);
    struct outbox_row row;
    assert_int_equal(outbox_get(&row, &fx->ob, a, &err), RV_ENOTFOUND);
    assert_int_equal(outbox_get(&row, &fx->ob, c, &err), RV_ENOTFOUND);
    row = get_row(fx, b);
    outbox_row_release(&row);
    assert_int_equal(count_rows(fx, "queued"), 1);
    /* And dedup still sees b. */
    assert_int_equal(enqueue(fx, "gh", status(SHA_A, "reeve/plan", FORGE_SUCCESS, "ok")), b);
}

/* ---- end to end against fakeforge.py (REEVE_OUTBOX_E2E=1) ---- */

#define E2E_TOKEN "e2e-token-value"

static int64_t wall_now(void *ud)
{
    (void)ud;
    return (int64_t)time(NULL);
}

struct e2e {
    struct fakeforge ff;
    struct db *db;
    char dir[64];
    char path[128];
    struct forge forge;
    struct outbox ob;
};

static bool e2e_start(struct e2e *e, const char *kind, const char *token, ...)
{
    const char *extra[8] = {0};
    va_list ap;
    size_t n = 0;
    va_start(ap, token);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 7)
        extra[n++] = a;
    va_end(ap);

    memset(e, 0, sizeof(*e));
    if (fakeforge_start(&e->ff, kind, E2E_TOKEN, "--repo",
                        strcmp(kind, "gitlab") == 0 ? "acme/infra=7" : "acme/infra", extra[0],
                        extra[1], extra[2], extra[3], NULL) != 0)
        return false;
    snprintf(e->dir, sizeof(e->dir), "/tmp/rv-test-outbox-e2e-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/reeve.db", e->dir);
    assert_int_equal(store_open(&e->db, e->path, NULL, NULL), 0);
    enum forge_kind k;
    assert_int_equal(forge_kind_parse(&k, kind), 0);
    forge_init(&e->forge, k, kind, e->ff.url, token);
    e->forge.timeout_ms = 5000;
    outbox_init(&e->ob, e->db, &e->forge, 1);
    e->ob.now = wall_now;
    e->ob.backoff_base_s = 1;
    return true;
}

static void e2e_stop(struct e2e *e)
{
    char p[160];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    fakeforge_stop(&e->ff);
    db_free(e->db);
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", e->path, suffixes[i]);
        unlink(p);
    }
    rmdir(e->dir);
}

/* Run passes until nothing is queued or the deadline passes. */
static void e2e_drain(struct e2e *e, int seconds)
{
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end) {
        struct rv_error err;
        assert_int_equal(outbox_run_once(NULL, &e->ob, &err), 0);
        int64_t due;
        if (outbox_next_due(&due, &e->ob, NULL) == RV_ENOTFOUND)
            return;
        fakeforge_sleep_ms(100);
    }
    fail_msg("outbox not drained within %d s", seconds);
}

static void e2e_enqueue(struct e2e *e, const char *context, enum forge_state state,
                        const char *desc)
{
    struct forge_status st = {.repo = "acme/infra",
                              .sha = SHA_A,
                              .context = context,
                              .state = state,
                              .description = desc,
                              .target_url = "http://127.0.0.1:8080/plans/1"};
    struct rv_error err;
    rv_error_clear(&err);
    if (outbox_enqueue(NULL, &e->ob, e->forge.name, &st, &err) != 0)
        fail_msg("enqueue: %s", err.msg);
}

static size_t requests_with_status(json_t *reqs, long status)
{
    size_t i, n = 0;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        if (json_integer_value(json_object_get(r, "status")) == status)
            n++;
    }
    return n;
}

static void e2e_kind(const char *kind)
{
    struct e2e e;
    const char *failed = strcmp(kind, "gitlab") == 0 ? "failed" : "failure";

    /* 1. Statuses flow, 503s are retried with backoff, duplicates never go. */
    if (!e2e_start(&e, kind, E2E_TOKEN, "--fail-first", "2", NULL))
        skip();
    e2e_enqueue(&e, "reeve/validate", FORGE_PENDING, "validating");
    e2e_enqueue(&e, "reeve/validate", FORGE_SUCCESS, "3 specs valid"); /* supersedes */
    e2e_enqueue(&e, "reeve/plan", FORGE_FAILURE, "policy: replicas must be >= 2");
    e2e_enqueue(&e, "reeve/plan", FORGE_FAILURE, "policy: replicas must be >= 2"); /* dup */
    e2e_drain(&e, 20);
    json_t *sts = fakeforge_list(&e.ff, "statuses");
    json_t *reqs = fakeforge_list(&e.ff, "requests");
    assert_int_equal(json_array_size(sts), 2);
    json_t *v = json_array_get(sts, 0), *p = json_array_get(sts, 1);
    assert_string_equal(json_string_value(json_object_get(v, "context")), "reeve/validate");
    assert_string_equal(json_string_value(json_object_get(v, "state")), "success");
    assert_string_equal(json_string_value(json_object_get(v, "description")), "3 specs valid");
    assert_string_equal(json_string_value(json_object_get(p, "context")), "reeve/plan");
    assert_string_equal(json_string_value(json_object_get(p, "state")), failed);
    assert_string_equal(json_string_value(json_object_get(p, "target_url")),
                        "http://127.0.0.1:8080/plans/1");
    assert_int_equal(requests_with_status(reqs, 503), 2);
    assert_int_equal(json_array_size(reqs), 4);
    assert_int_equal(e.ob.metrics.posted, 2);
    assert_int_equal(e.ob.metrics.retried, 2);
    json_decref(sts);
    json_decref(reqs);
    e2e_stop(&e);

    /* 2. A bad token: one request, given up, never retried. */
    if (!e2e_start(&e, kind, "not-the-token", NULL))
        skip();
    e2e_enqueue(&e, "reeve/plan", FORGE_PENDING, "planning");
    e2e_drain(&e, 5);
    struct outbox_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(outbox_due(&rows, &n, &e.ob, 10, NULL), 0);
    assert_int_equal(n, 0);
    outbox_rows_free(rows, n);
    struct outbox_row row;
    assert_int_equal(outbox_get(&row, &e.ob, 1, NULL), 0);
    assert_int_equal(row.phase, OUTBOX_FAILED);
    assert_non_null(strstr(row.last_error, "rejected the token"));
    assert_null(strstr(row.last_error, "not-the-token"));
    outbox_row_release(&row);
    fakeforge_sleep_ms(1500);
    struct rv_error err;
    assert_int_equal(outbox_run_once(NULL, &e.ob, &err), 0);
    reqs = fakeforge_list(&e.ff, "requests");
    assert_int_equal(json_array_size(reqs), 1);
    assert_int_equal(requests_with_status(reqs, 401), 1);
    json_decref(reqs);
    e2e_stop(&e);

    /* 3. A rate limit: one refused request, then nothing until the reset,
     * then the post; two rows, one request each after the reset. */
    const char *styles[] = {"reset", "retry-after"};
    for (size_t si = 0; si < 2; si++) {
        if (!e2e_start(&e, kind, E2E_TOKEN, "--rate-limit", "2", "--rate-limit-style", styles[si],
                       NULL))
            skip();
        e2e_enqueue(&e, "reeve/apply", FORGE_PENDING, "applying");
        e2e_enqueue(&e, "reeve/plan", FORGE_SUCCESS, "no changes");
        time_t started = time(NULL);
        e2e_drain(&e, 15);
        sts = fakeforge_list(&e.ff, "statuses");
        reqs = fakeforge_list(&e.ff, "requests");
        assert_int_equal(json_array_size(sts), 2);
        /* Exactly one refused request: the second row was held, not tried. */
        assert_int_equal(json_array_size(reqs), 3);
        long limited = strcmp(kind, "github") == 0 && si == 0 ? 403 : 429;
        assert_int_equal(requests_with_status(reqs, limited), 1);
        double first = json_real_value(json_object_get(json_array_get(reqs, 0), "at"));
        double second = json_real_value(json_object_get(json_array_get(reqs, 1), "at"));
        assert_true(second - first >= 1.0); /* waited for the reset */
        assert_true(time(NULL) - started <= 8);
        assert_int_equal(e.ob.metrics.rate_limited, 1);
        json_decref(sts);
        json_decref(reqs);
        e2e_stop(&e);
    }
}

static void test_e2e_github(void **state)
{
    (void)state;
    e2e_kind("github");
}

static void test_e2e_gitea(void **state)
{
    (void)state;
    e2e_kind("gitea");
}

static void test_e2e_gitlab(void **state)
{
    (void)state;
    e2e_kind("gitlab");
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test_setup_teardown(test_store_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_webhooks_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_supersedes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_and_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_and_permanent_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_and_unknown_forge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_and_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_superseded_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_superseded_in_flight_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
    };
    const struct CMUnitTest e2e[] = {
        cmocka_unit_test(test_e2e_github),
        cmocka_unit_test(test_e2e_gitea),
        cmocka_unit_test(test_e2e_gitlab),
    };
    const char *mode = getenv("REEVE_OUTBOX_E2E");
    log_set_level(LOG_ERROR);
    if (mode && strcmp(mode, "1") == 0) {
        unsetenv("http_proxy");
        unsetenv("HTTP_PROXY");
        unsetenv("all_proxy");
        unsetenv("ALL_PROXY");
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = cmocka_run_group_tests_name("outbox_e2e", e2e, NULL, NULL);
        curl_global_cleanup();
        return rc;
    }
    return cmocka_run_group_tests_name("outbox", unit, NULL, NULL);
}
