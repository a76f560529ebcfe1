/* test_journal.c - reconciler/journal: the schema, applies and their
 * actions as written, superseding, crash recovery, guarded writes and the
 * apply status text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"
#include "store.h"
#include "tplan.h"
#include "tutil.h"

#define T0 1800000000

struct fixture {
    char dir[64];
    char path[128];
    struct db *db;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct rv_error err;
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rv-test-journal-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/reeve.db", fx->dir);
    rv_error_clear(&err);
    if (store_open(&fx->db, fx->path, NULL, &err) != 0) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return -1;
    }
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

static int64_t begin(struct fixture *fx, const struct plan *p, const char *sha, int64_t now)
{
    struct journal_apply_opts o = {.commit_sha = sha};
    struct rv_error err;
    int64_t id = 0;
    rv_error_clear(&err);
    int rc = journal_apply_begin(&id, fx->db, p, &o, now, &err);
    if (rc != 0)
        fail_msg("journal_apply_begin: %s", err.msg);
    return id;
}

static void test_begin_and_load(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct journal_apply a;
    struct rv_error err;
    size_t d0[] = {0};
    plan_init(&p);
    tplan_add(&p, "pay/billing", "provision", NULL, 0, NULL);
    tplan_add(&p, "pay/billing", "replica", NULL, 1, d0);
    tplan_add(&p, "pay/old", "decommission", "deletionProtection is true", 0, NULL);

    int64_t id = begin(fx, &p, "abc123", T0);
    assert_true(id > 0);
    assert_int_equal(journal_apply_load(&a, fx->db, id, &err), 0);
    assert_string_equal(a.commit_sha, "abc123");
    assert_int_equal(a.state, JOURNAL_APPLY_RUNNING);
    assert_int_equal(strlen(a.plan_digest), 64);
    assert_int_equal(a.nactions, 3);
    assert_string_equal(a.actions[1].id, "pay/billing/replica");
    assert_string_equal(a.actions[1].kind, "add_replica");
    assert_int_equal(a.actions[1].ndeps, 1);
    assert_int_equal(a.actions[1].deps[0], 0);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_PENDING);
    assert_int_equal(a.actions[2].state, JOURNAL_ACTION_BLOCKED);
    assert_string_equal(a.actions[2].blocked_reason, "deletionProtection is true");
    assert_false(a.actions[0].recheck);
    journal_apply_release(&a);

    struct journal_status st;
    assert_int_equal(journal_apply_status(&st, fx->db, id, &err), 0);
    assert_int_equal(st.state, JOURNAL_STATUS_PENDING);
    assert_string_equal(st.text, "applying: 0/3 actions done");

    assert_int_equal(journal_apply_load(&a, fx->db, id + 100, &err), RV_ENOTFOUND);
    plan_release(&p);
}

static void test_write_guarded(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct journal_apply a, b;
    struct rv_error err;
    plan_init(&p);
    tplan_add(&p, "pay/billing", "provision", NULL, 0, NULL);
    int64_t id1 = begin(fx, &p, "c1", T0);
    assert_int_equal(journal_apply_load(&a, fx->db, id1, &err), 0);

    /* The intent goes through once; a second writer expecting pending loses. */
    a.actions[0].state = JOURNAL_ACTION_RUNNING;
    a.actions[0].attempts = 1;
    assert_int_equal(journal_action_write(fx->db, &a.actions[0], JOURNAL_ACTION_PENDING, &err), 0);
    assert_int_equal(journal_action_write(fx->db, &a.actions[0], JOURNAL_ACTION_PENDING, &err),
                     RV_ECONFLICT);
    assert_false(err.retryable);

    /* A second apply of the same step: marked for re-check, and it cannot
     * run while the first one's row is running. */
    int64_t id2 = begin(fx, &p, "c2", T0 + 1);
    assert_int_equal(journal_apply_load(&b, fx->db, id2, &err), 0);
    assert_true(b.actions[0].recheck);
    b.actions[0].state = JOURNAL_ACTION_RUNNING;
    assert_int_equal(journal_action_write(fx->db, &b.actions[0], JOURNAL_ACTION_PENDING, &err),
                     RV_ECONFLICT);
    assert_true(err.retryable);
    assert_non_null(strstr(err.msg, "already running"));

    /* Recovery: the running row is pending again, attempts kept. */
    size_t n = 0;
    assert_int_equal(journal_recover(&n, fx->db, T0 + 5, &err), 0);
    assert_int_equal(n, 1);
    journal_apply_release(&a);
    assert_int_equal(journal_apply_load(&a, fx->db, id1, &err), 0);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_PENDING);
    assert_int_equal(a.actions[0].attempts, 1);
    assert_non_null(strstr(a.actions[0].last_error, "interrupted"));
    journal_apply_release(&a);
    journal_apply_release(&b);
    plan_release(&p);
}

static void test_supersede(void **state)
{
    struct fixture *fx = *state;
    struct plan p1, p2;
    struct journal_apply a;
    struct rv_error err;
    size_t d0[] = {0};
    plan_init(&p1);
    plan_init(&p2);
    tplan_add(&p1, "pay/billing", "provision", NULL, 0, NULL);
    tplan_add(&p1, "pay/billing", "replica", NULL, 1, d0);
    tplan_add(&p1, "pay/ledger", "resize", NULL, 0, NULL);
    tplan_add(&p2, "pay/billing", "replica2", NULL, 0, NULL);
    int64_t id1 = begin(fx, &p1, "c1", T0);

    /* The first action is running when the new plan arrives. */
    assert_int_equal(journal_apply_load(&a, fx->db, id1, &err), 0);
    a.actions[0].state = JOURNAL_ACTION_RUNNING;
    assert_int_equal(journal_action_write(fx->db, &a.actions[0], JOURNAL_ACTION_PENDING, &err), 0);
    journal_apply_release(&a);

    int64_t id2 = begin(fx, &p2, "c2", T0 + 10);
    assert_int_equal(journal_apply_load(&a, fx->db, id1, &err), 0);
    assert_int_equal(a.superseded_by, id2);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_RUNNING); /* finishes first */
    assert_int_equal(a.actions[1].state, JOURNAL_ACTION_CANCELED);
    char want[64];
    snprintf(want, sizeof(want), "superseded by apply %lld", (long long)id2);
    assert_string_equal(a.actions[1].last_error, want);
    assert_int_equal(a.actions[2].state, JOURNAL_ACTION_PENDING); /* other cluster */
    journal_apply_release(&a);

    assert_int_equal(
        journal_apply_finish(fx->db, id1, JOURNAL_APPLY_SUPERSEDED, want, T0 + 20, &err), 0);
    struct journal_status st;
    assert_int_equal(journal_apply_status(&st, fx->db, id1, &err), 0);
    assert_int_equal(st.state, JOURNAL_STATUS_FAILURE);
    assert_string_equal(st.text, want);
    plan_release(&p1);
    plan_release(&p2);
}

static void test_status_text(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct journal_status st;
    struct rv_error err;
    plan_init(&p);
    tplan_add(&p, "pay/billing", "a", NULL, 0, NULL);
    tplan_add(&p, "pay/billing", "b", NULL, 0, NULL);
    int64_t id = begin(fx, &p, "c1", T0);
    assert_int_equal(db_run(fx->db, &err,
                            "UPDATE apply_actions SET state = 'succeeded' WHERE apply_id = ?", "l",
                            id),
                     0);
    assert_int_equal(journal_apply_finish(fx->db, id, JOURNAL_APPLY_SUCCEEDED, NULL, T0 + 1, &err),
                     0);
    assert_int_equal(journal_apply_status(&st, fx->db, id, &err), 0);
    assert_int_equal(st.state, JOURNAL_STATUS_SUCCESS);
    assert_int_equal(st.done, 2);
    assert_string_equal(st.text, "applied: 2/2 actions done");
    assert_string_equal(journal_status_state_name(st.state), "success");

    int64_t id2 = begin(fx, &p, "c2", T0 + 2);
    assert_int_equal(journal_apply_finish(fx->db, id2, JOURNAL_APPLY_FAILED,
                                          "pay/billing/a failed: disk full", T0 + 3, &err),
                     0);
    assert_int_equal(journal_apply_status(&st, fx->db, id2, &err), 0);
    assert_int_equal(st.state, JOURNAL_STATUS_FAILURE);
    assert_string_equal(st.text, "pay/billing/a failed: disk full");

    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(journal_apply_running(&ids, &n, fx->db, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    plan_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_begin_and_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_guarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_supersede, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
