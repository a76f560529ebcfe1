/* test_executor.c - reconciler/executor with fake runners.
 *
 * Ordering by depends_on; control rods (the fake runner counts runs in
 * progress); retries with backoff on an injected clock; deadlines;
 * permanent failure canceling dependents; blocked actions; superseding;
 * resumption of an action a crash left running; and crash safety for real:
 * child processes run an apply whose runner records side effects in a file
 * and are SIGKILLed at several points, then the parent resumes from the
 * same database and no side effect has happened twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"
#include "log.h"
#include "store.h"
#include "tplan.h"
#include "window.h"

#define T0 1800000000
#define MAX_EVENTS 256
#define MAX_SCRIPT 8

/* Scripted answer of a run: rc 0 succeeds. */
struct answer {
    int rc;
    bool retryable;
    const char *msg;
};

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t now;
    /* Whole-run behaviour. */
    int sleep_ms;        /* real time each run takes */
    int64_t advance_s;   /* fake seconds each run takes */
    const char *fail_id; /* action id scripted by answers[] (others succeed) */
    struct answer answers[MAX_SCRIPT];
    size_t nanswers;
    struct answer fallback; /* after the script: repeat this */
    bool has_fallback;
    const char *gate_id; /* this action waits until gate_open */
    bool gate_open;
    bool gate_entered;
    /* What happened. */
    char events[MAX_EVENTS][96]; /* "start <id>" / "end <id>" */
    size_t nevents;
    int64_t run_times[MAX_EVENTS];
    int64_t deadlines[MAX_EVENTS];
    size_t nruns;
    size_t nchecks;
    char done_keys[MAX_EVENTS][65];
    size_t ndone;
    int running, max_running;
    int max_cluster, max_provider;
    const struct journal_action *live[64];
    size_t nlive;
};

struct fixture {
    char dir[64];
    char path[128];
    char effects[160];
    struct db *db;
    struct fake fk;
    struct executor *ex;
    uint32_t rnd;
};

/* ---- helpers ---- */

static int64_t fake_now(void *ud)
{
    struct fixture *fx = ud;
    pthread_mutex_lock(&fx->fk.mu);
    int64_t t = fx->fk.now;
    pthread_mutex_unlock(&fx->fk.mu);
    return t;
}

static uint32_t fake_random(void *ud)
{
    return ((struct fixture *)ud)->rnd;
}

static void fake_sleep_until(int64_t at, void *ud)
{
    struct fixture *fx = ud;
    pthread_mutex_lock(&fx->fk.mu);
    if (fx->fk.now < at)
        fx->fk.now = at;
    pthread_mutex_unlock(&fx->fk.mu);
}

static bool key_done(struct fake *f, const char *key)
{
    for (size_t i = 0; i < f->ndone; i++) {
        if (strcmp(f->done_keys[i], key) == 0)
            return true;
    }
    return false;
}

static void event(struct fake *f, const char *what, const char *id)
{
    if (f->nevents < MAX_EVENTS)
        snprintf(f->events[f->nevents++], sizeof(f->events[0]), "%s %s", what, id);
}

static int fake_run(char **out_output, const struct journal_action *a, const char *key,
                    int64_t deadline, struct rv_error *err, void *ud)
{
    struct fixture *fx = ud;
    struct fake *f = &fx->fk;
    struct answer ans = {0, false, NULL};
    pthread_mutex_lock(&f->mu);
    event(f, "start", a->id);
    if (f->nruns < MAX_EVENTS) {
        f->run_times[f->nruns] = f->now;
        f->deadlines[f->nruns] = deadline;
    }
    f->nruns++;
    f->running++;
    if (f->running > f->max_running)
        f->max_running = f->running;
    f->live[f->nlive++] = a;
    int cl = 0, pr = 0;
    for (size_t i = 0; i < f->nlive; i++) {
        cl += strcmp(f->live[i]->cluster, a->cluster) == 0;
        pr += strcmp(f->live[i]->provider, a->provider) == 0;
    }
    if (cl > f->max_cluster)
        f->max_cluster = cl;
    if (pr > f->max_provider)
        f->max_provider = pr;
    if (f->gate_id && strcmp(f->gate_id, a->id) == 0) {
        f->gate_entered = true;
        pthread_cond_broadcast(&f->cv);
        while (!f->gate_open)
            pthread_cond_wait(&f->cv, &f->mu);
    }
    if (f->fail_id && strcmp(f->fail_id, a->id) == 0) {
        size_t calls = 0;
        for (size_t i = 0; i < f->nevents; i++)
            calls +=
                strncmp(f->events[i], "start ", 6) == 0 && strcmp(f->events[i] + 6, a->id) == 0;
        if (calls - 1 < f->nanswers)
            ans = f->answers[calls - 1];
        else if (f->has_fallback)
            ans = f->fallback;
    }
    int sleep_ms = f->sleep_ms;
    f->now += f->advance_s;
    pthread_mutex_unlock(&f->mu);

    if (sleep_ms > 0) {
        struct timespec ts = {0, (long)sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }

    pthread_mutex_lock(&f->mu);
    f->running--;
    for (size_t i = 0; i < f->nlive; i++) {
        if (f->live[i] == a) {
            f->live[i] = f->live[--f->nlive];
            break;
        }
    }
    if (ans.rc == 0 && f->ndone < MAX_EVENTS)
        snprintf(f->done_keys[f->ndone++], sizeof(f->done_keys[0]), "%s", key);
    event(f, "end", a->id);
    pthread_mutex_unlock(&f->mu);
    if (ans.rc != 0)
        return rv_error_set(err, ans.rc, ans.retryable, "%s", ans.msg);
    *out_output = strdup("{\"instance\":\"i-1\"}");
    return 0;
}

static int fake_check(bool *out_done, const struct journal_action *a, const char *key,
                      struct rv_error *err, void *ud)
{
    struct fixture *fx = ud;
    (void)a;
    (void)err;
    pthread_mutex_lock(&fx->fk.mu);
    fx->fk.nchecks++;
    *out_done = key_done(&fx->fk, key);
    pthread_mutex_unlock(&fx->fk.mu);
    return 0;
}

static void ex_open(struct fixture *fx, const struct executor_opts *in)
{
    struct executor_opts o;
    struct executor_runner r = {fake_run, fake_check, fx};
    struct rv_error err;
    if (in)
        o = *in;
    else
        executor_opts_init(&o);
    o.now = fake_now;
    o.random = fake_random;
    o.sleep_until = fake_sleep_until;
    o.clock_ud = fx;
    rv_error_clear(&err);
    if (executor_new(&fx->ex, fx->db, &r, &o, &err) != 0)
        fail_msg("executor_new: %s", err.msg);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct rv_error err;
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rv-test-executor-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/reeve.db", fx->dir);
    snprintf(fx->effects, sizeof(fx->effects), "%s/effects", fx->dir);
    pthread_mutex_init(&fx->fk.mu, NULL);
    pthread_cond_init(&fx->fk.cv, NULL);
    fx->fk.now = T0;
    rv_error_clear(&err);
    if (store_open(&fx->db, fx->path, NULL, &err) != 0) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return -1;
    }
    log_set_level(LOG_ERROR);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char p[160];
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    executor_free(fx->ex);
    db_free(fx->db);
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        unlink(p);
    }
    unlink(fx->effects);
    rmdir(fx->dir);
    pthread_cond_destroy(&fx->fk.cv);
    pthread_mutex_destroy(&fx->fk.mu);
    free(fx);
    return 0;
}

static int64_t apply_begin(struct fixture *fx, const struct plan *p, const char *sha,
                           const char *(*provider_of)(const char *, void *))
{
    struct journal_apply_opts o = {.commit_sha = sha, .provider_of = provider_of};
    struct rv_error err;
    int64_t id = 0;
    rv_error_clear(&err);
    if (executor_apply_begin(&id, fx->ex, p, &o, &err) != 0)
        fail_msg("executor_apply_begin: %s", err.msg);
    return id;
}

static void run_apply(struct fixture *fx, int64_t id)
{
    struct rv_error err;
    rv_error_clear(&err);
    if (executor_run(fx->ex, id, &err) != 0)
        fail_msg("executor_run: %s", err.msg);
}

static void status_of(struct journal_status *st, struct fixture *fx, int64_t id)
{
    struct rv_error err;
    rv_error_clear(&err);
    if (journal_apply_status(st, fx->db, id, &err) != 0)
        fail_msg("journal_apply_status: %s", err.msg);
}

static struct journal_apply load(struct fixture *fx, int64_t id)
{
    struct journal_apply a;
    struct rv_error err;
    rv_error_clear(&err);
    if (journal_apply_load(&a, fx->db, id, &err) != 0)
        fail_msg("journal_apply_load: %s", err.msg);
    return a;
}

static void step_ok(struct fixture *fx, size_t *started)
{
    struct rv_error err;
    rv_error_clear(&err);
    if (executor_step(started, fx->ex, &err) != 0)
        fail_msg("executor_step: %s", err.msg);
}

static size_t event_index(const struct fake *f, const char *what, const char *id)
{
    char want[96];
    snprintf(want, sizeof(want), "%s %s", what, id);
    for (size_t i = 0; i < f->nevents; i++) {
        if (strcmp(f->events[i], want) == 0)
            return i;
    }
    fail_msg("no event '%s'", want);
    return 0;
}

/* ---- ordering and control rods ---- */

static void test_order_by_depends_on(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    size_t d0[] = {0}, d12[] = {1, 2}, d3[] = {3};
    plan_init(&p);
    tplan_add(&p, "t/c", "provision", NULL, 0, NULL);
    tplan_add(&p, "t/c", "replica1", NULL, 1, d0);
    tplan_add(&p, "t/c", "replica2", NULL, 1, d0);
    tplan_add(&p, "t/c", "configure", NULL, 2, d12);
    tplan_add(&p, "t/c", "ready", NULL, 1, d3);
    fx->fk.sleep_ms = 30;
    ex_open(fx, NULL);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    run_apply(fx, id);

    for (size_t i = 0; i < p.nactions; i++) {
        size_t start = event_index(&fx->fk, "start", p.actions[i].id);
        for (size_t k = 0; k < p.actions[i].ndeps; k++)
            assert_true(event_index(&fx->fk, "end", p.actions[p.actions[i].deps[k]].id) < start);
    }
    assert_int_equal(fx->fk.nruns, 5);
    /* The two replicas ran side by side (per-cluster rod is 2). */
    assert_int_equal(fx->fk.max_running, 2);

    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_SUCCESS);
    assert_string_equal(st.text, "applied: 5/5 actions done");
    struct journal_apply a = load(fx, id);
    assert_string_equal(a.actions[0].output, "{\"instance\":\"i-1\"}");
    assert_int_equal(a.actions[0].attempts, 1);
    journal_apply_release(&a);
    plan_release(&p);
}

static const char *provider_by_cluster(const char *cluster, void *ud)
{
    (void)ud;
    return cluster[strlen(cluster) - 1] % 2 ? "aws" : "local";
}

static void test_control_rods(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct executor_opts o;
    static const char *const clusters[] = {"t/c1", "t/c2", "t/c3", "t/c4"};
    plan_init(&p);
    for (size_t c = 0; c < 4; c++) {
        for (int n = 0; n < 4; n++) {
            char name[16];
            snprintf(name, sizeof(name), "n%d", n);
            tplan_add(&p, clusters[c], name, NULL, 0, NULL);
        }
    }
    fx->fk.sleep_ms = 30;

    /* Global rod binds: 16 independent actions, 3 at a time. */
    executor_opts_init(&o);
    o.max_concurrent = 3;
    o.max_per_provider = 3;
    o.max_per_cluster = 3;
    ex_open(fx, &o);
    int64_t id = apply_begin(fx, &p, "c1", provider_by_cluster);
    run_apply(fx, id);
    assert_int_equal(fx->fk.nruns, 16);
    assert_int_equal(fx->fk.max_running, 3);

    /* Per-cluster and per-provider rods bind. */
    executor_free(fx->ex);
    fx->ex = NULL;
    fx->fk.max_running = fx->fk.max_cluster = fx->fk.max_provider = 0;
    /* Same keys as the first apply: start from a world where none is done,
     * or check() would find every action done without running it. */
    fx->fk.nevents = fx->fk.nruns = fx->fk.ndone = 0;
    o.max_concurrent = 16;
    o.max_per_provider = 3;
    o.max_per_cluster = 1;
    ex_open(fx, &o);
    id = apply_begin(fx, &p, "c2", provider_by_cluster);
    run_apply(fx, id);
    assert_int_equal(fx->fk.nruns, 16);
    assert_int_equal(fx->fk.max_cluster, 1);
    /* two providers, two clusters each, one action per cluster at a time */
    assert_int_equal(fx->fk.max_provider, 2);
    assert_int_equal(fx->fk.max_running, 4);

    executor_free(fx->ex);
    fx->ex = NULL;
    fx->fk.max_running = fx->fk.max_cluster = fx->fk.max_provider = 0;
    fx->fk.nevents = fx->fk.nruns = fx->fk.ndone = 0;
    o.max_per_provider = 1;
    o.max_per_cluster = 4;
    ex_open(fx, &o);
    id = apply_begin(fx, &p, "c3", provider_by_cluster);
    run_apply(fx, id);
    assert_int_equal(fx->fk.nruns, 16);
    assert_int_equal(fx->fk.max_provider, 1);
    assert_int_equal(fx->fk.max_running, 2);
    plan_release(&p);
}

static void test_pause_namespace(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct rv_error err;
    size_t started = 0;
    plan_init(&p);
    tplan_add(&p, "payments/billing", "a", NULL, 0, NULL);
    tplan_add(&p, "payments/ledger", "b", NULL, 0, NULL);
    tplan_add(&p, "search/index", "c", NULL, 0, NULL);
    ex_open(fx, NULL);
    assert_int_equal(executor_pause(fx->ex, "payments", true, &err), 0);
    assert_int_equal(executor_pause(fx->ex, "pay", true, &err), 0); /* a prefix is not a match */
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    assert_int_equal(executor_run(fx->ex, id, &err), RV_EBUSY);
    assert_non_null(strstr(err.msg, "paused namespace"));
    assert_int_equal(fx->fk.nruns, 1);
    assert_string_equal(fx->fk.events[0], "start search/index/c");

    assert_int_equal(executor_pause(fx->ex, "payments", false, &err), 0);
    run_apply(fx, id);
    assert_int_equal(fx->fk.nruns, 3);
    step_ok(fx, &started);
    assert_int_equal(started, 0);
    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_SUCCESS);
    plan_release(&p);
}

/* ---- retries, deadlines, failures ---- */

static void test_retry_backoff(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    plan_init(&p);
    tplan_add(&p, "t/c", "x", NULL, 0, NULL);
    fx->fk.fail_id = "t/c/x";
    fx->fk.answers[0] = (struct answer){RV_EUNAVAIL, true, "provider 'aws' unavailable"};
    fx->fk.answers[1] = (struct answer){RV_ETIMEOUT, true, "provider 'aws' timed out"};
    fx->fk.nanswers = 2;
    fx->rnd = 0; /* jitter adds nothing: delays are base*2^(n-1) - half */
    ex_open(fx, NULL);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    run_apply(fx, id);

    assert_int_equal(fx->fk.nruns, 3);
    /* base 5 s: 5 - 2 = 3 s, then 10 - 5 = 5 s */
    assert_int_equal(fx->fk.run_times[0], T0);
    assert_int_equal(fx->fk.run_times[1], T0 + 3);
    assert_int_equal(fx->fk.run_times[2], T0 + 8);
    /* Every retry asked check() first. */
    assert_int_equal(fx->fk.nchecks, 2);
    struct journal_apply a = load(fx, id);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_SUCCEEDED);
    assert_int_equal(a.actions[0].attempts, 3);
    journal_apply_release(&a);
    assert_int_equal(executor_metrics(fx->ex)->retried, 2);

    plan_release(&p);
}

static void test_gives_up(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    size_t d0[] = {0};
    plan_init(&p);
    tplan_add(&p, "t/c", "x", NULL, 0, NULL);
    tplan_add(&p, "t/c", "after", NULL, 1, d0);
    fx->fk.fail_id = "t/c/x";
    fx->fk.fallback = (struct answer){RV_ETIMEOUT, true, "provider 'aws' timed out"};
    fx->fk.has_fallback = true;
    ex_open(fx, NULL);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    run_apply(fx, id);

    assert_int_equal(fx->fk.nruns, RV_EXEC_ATTEMPTS_MAX);
    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_FAILURE);
    char want[160];
    snprintf(want, sizeof(want),
             "t/c/x failed: gave up after %d attempts: provider 'aws' timed out",
             RV_EXEC_ATTEMPTS_MAX);
    assert_string_equal(st.text, want);
    struct journal_apply a = load(fx, id);
    assert_int_equal(a.actions[1].state, JOURNAL_ACTION_CANCELED);
    journal_apply_release(&a);
    plan_release(&p);
}

static void test_deadline(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct executor_opts o;
    plan_init(&p);
    tplan_add(&p, "t/c", "slow", NULL, 0, NULL);
    fx->fk.fail_id = "t/c/slow";
    fx->fk.fallback = (struct answer){RV_ETIMEOUT, true, "agent on 'c-0' timed out"};
    fx->fk.has_fallback = true;
    fx->fk.advance_s = 60; /* each attempt takes a minute */
    executor_opts_init(&o);
    o.deadline_s = 100;
    ex_open(fx, &o);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    run_apply(fx, id);

    /* T0: fails at T0+60, retry at T0+63, fails at T0+123 > deadline T0+100. */
    assert_int_equal(fx->fk.nruns, 2);
    assert_int_equal(fx->fk.deadlines[0], T0 + 100);
    assert_int_equal(fx->fk.deadlines[1], T0 + 100);
    struct journal_status st;
    status_of(&st, fx, id);
    assert_string_equal(st.text,
                        "t/c/slow failed: deadline exceeded after 2 attempts: agent on 'c-0' "
                        "timed out");
    plan_release(&p);
}

static void test_overdue_run(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct executor_opts o;
    size_t started = 0;
    plan_init(&p);
    tplan_add(&p, "t/c", "hung", NULL, 0, NULL);
    fx->fk.gate_id = "t/c/hung";
    executor_opts_init(&o);
    o.deadline_s = 100;
    ex_open(fx, &o);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    step_ok(fx, &started);
    assert_int_equal(started, 1);
    fake_sleep_until(T0 + 101, fx);
    step_ok(fx, &started);
    step_ok(fx, &started);
    assert_int_equal(executor_metrics(fx->ex)->overdue, 1);

    /* A late success is still a success: the side effect happened. */
    pthread_mutex_lock(&fx->fk.mu);
    fx->fk.gate_open = true;
    pthread_cond_broadcast(&fx->fk.cv);
    pthread_mutex_unlock(&fx->fk.mu);
    run_apply(fx, id);
    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_SUCCESS);
    plan_release(&p);
}

static void test_permanent_failure_cancels(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    size_t d0[] = {0}, d1[] = {1}, d2[] = {2};
    plan_init(&p);
    tplan_add(&p, "t/c", "a", NULL, 0, NULL);
    tplan_add(&p, "t/c", "b", NULL, 1, d0);
    tplan_add(&p, "t/c", "c", NULL, 1, d1);
    tplan_add(&p, "t/c", "d", NULL, 1, d2);
    tplan_add(&p, "t/other", "e", NULL, 0, NULL);
    fx->fk.fail_id = "t/c/b";
    fx->fk.answers[0] = (struct answer){RV_EIO, false, "volume 'v-1': disk full"};
    fx->fk.nanswers = 1;
    ex_open(fx, NULL);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    run_apply(fx, id);

    assert_int_equal(fx->fk.nruns, 3); /* a, b once, e */
    struct journal_apply a = load(fx, id);
    assert_int_equal(a.state, JOURNAL_APPLY_FAILED);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_SUCCEEDED);
    assert_int_equal(a.actions[1].state, JOURNAL_ACTION_FAILED);
    assert_int_equal(a.actions[1].attempts, 1);
    assert_int_equal(a.actions[2].state, JOURNAL_ACTION_CANCELED);
    assert_string_equal(a.actions[2].last_error, "canceled: depends on 't/c/b', which failed");
    assert_int_equal(a.actions[3].state, JOURNAL_ACTION_CANCELED);
    assert_string_equal(a.actions[3].last_error,
                        "canceled: depends on 't/c/c', which was canceled");
    assert_int_equal(a.actions[4].state, JOURNAL_ACTION_SUCCEEDED);
    journal_apply_release(&a);
    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_FAILURE);
    assert_string_equal(st.text, "t/c/b failed: volume 'v-1': disk full");
    plan_release(&p);
}

static void test_blocked(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    size_t d0[] = {0};
    plan_init(&p);
    tplan_add(&p, "t/old", "final_backup", "deletionProtection is true in the last applied spec", 0,
              NULL);
    tplan_add(&p, "t/old", "decommission", NULL, 1, d0);
    tplan_add(&p, "t/new", "provision", NULL, 0, NULL);
    ex_open(fx, NULL);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    run_apply(fx, id);

    assert_int_equal(fx->fk.nruns, 1);
    assert_int_equal(event_index(&fx->fk, "start", "t/new/provision"), 0);
    struct journal_apply a = load(fx, id);
    assert_int_equal(a.state, JOURNAL_APPLY_BLOCKED);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_BLOCKED);
    assert_int_equal(a.actions[1].state, JOURNAL_ACTION_CANCELED);
    assert_string_equal(a.actions[1].last_error,
                        "canceled: depends on 't/old/final_backup', which is blocked");
    journal_apply_release(&a);
    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_FAILURE);
    assert_string_equal(st.text, "t/old/final_backup blocked: deletionProtection is true in the "
                                 "last applied spec");
    plan_release(&p);
}

/* ---- superseding and resumption ---- */

static void test_supersede(void **state)
{
    struct fixture *fx = *state;
    struct plan p1, p2;
    size_t d0[] = {0};
    size_t started = 0;
    plan_init(&p1);
    plan_init(&p2);
    tplan_add(&p1, "t/c", "provision", NULL, 0, NULL);
    tplan_add(&p1, "t/c", "replica", NULL, 1, d0);
    tplan_add(&p1, "t/other", "resize", NULL, 1, d0);
    /* The new plan repeats the running step (same key) and changes the rest. */
    tplan_add(&p2, "t/c", "provision", NULL, 0, NULL);
    tplan_add(&p2, "t/c", "replica-big", NULL, 1, d0);
    fx->fk.gate_id = "t/c/provision";
    ex_open(fx, NULL);
    int64_t id1 = apply_begin(fx, &p1, "c1", NULL);
    step_ok(fx, &started);
    assert_int_equal(started, 1);
    pthread_mutex_lock(&fx->fk.mu);
    while (!fx->fk.gate_entered)
        pthread_cond_wait(&fx->fk.cv, &fx->fk.mu);
    pthread_mutex_unlock(&fx->fk.mu);

    int64_t id2 = apply_begin(fx, &p2, "c2", NULL);
    /* The newer apply waits for the older one's running action. */
    step_ok(fx, &started);
    assert_int_equal(started, 0);

    pthread_mutex_lock(&fx->fk.mu);
    fx->fk.gate_open = true;
    pthread_cond_broadcast(&fx->fk.cv);
    pthread_mutex_unlock(&fx->fk.mu);
    run_apply(fx, id2);
    run_apply(fx, id1);

    /* provision ran once: the new apply found it done by check(). */
    size_t provisions = 0;
    for (size_t i = 0; i < fx->fk.nevents; i++)
        provisions += strcmp(fx->fk.events[i], "start t/c/provision") == 0;
    assert_int_equal(provisions, 1);
    assert_int_equal(executor_metrics(fx->ex)->found_done, 1);

    struct journal_apply a = load(fx, id1);
    assert_int_equal(a.state, JOURNAL_APPLY_SUPERSEDED);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_SUCCEEDED);
    assert_int_equal(a.actions[1].state, JOURNAL_ACTION_CANCELED);
    assert_int_equal(a.actions[2].state, JOURNAL_ACTION_SUCCEEDED); /* other cluster ran */
    journal_apply_release(&a);
    struct journal_status st;
    status_of(&st, fx, id1);
    char want[64];
    snprintf(want, sizeof(want), "superseded by apply %lld", (long long)id2);
    assert_string_equal(st.text, want);
    status_of(&st, fx, id2);
    assert_int_equal(st.state, JOURNAL_STATUS_SUCCESS);
    plan_release(&p1);
    plan_release(&p2);
}

static void test_resume_checks_first(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct rv_error err;
    plan_init(&p);
    tplan_add(&p, "t/c", "done-before-crash", NULL, 0, NULL);
    tplan_add(&p, "t/c", "not-done", NULL, 0, NULL);
    struct journal_apply_opts jo = {.commit_sha = "c1"};
    int64_t id = 0;
    assert_int_equal(journal_apply_begin(&id, fx->db, &p, &jo, T0, &err), 0);
    /* As a crash leaves it: both intents written, one side effect done. */
    assert_int_equal(db_run(fx->db, &err,
                            "UPDATE apply_actions SET state = 'running', attempts = 1,"
                            " started_at = ?, deadline_at = ? WHERE apply_id = ?",
                            "lll", (int64_t)T0, (int64_t)T0 + 3600, id),
                     0);
    snprintf(fx->fk.done_keys[fx->fk.ndone++], 65, "%s", p.actions[0].idempotency_key);

    ex_open(fx, NULL);
    run_apply(fx, id);
    assert_int_equal(fx->fk.nchecks, 2);
    assert_int_equal(fx->fk.nruns, 1);
    assert_string_equal(fx->fk.events[0], "start t/c/not-done");
    struct journal_apply a = load(fx, id);
    assert_int_equal(a.state, JOURNAL_APPLY_SUCCEEDED);
    assert_int_equal(a.actions[0].attempts, 2);
    assert_int_equal(a.actions[1].attempts, 2);
    journal_apply_release(&a);
    plan_release(&p);
}

/* ---- crash safety with real kills ---- */

enum kill_point { KILL_NONE, KILL_BEFORE_EFFECT, KILL_AFTER_EFFECT, KILL_AFTER_OUTCOME };

struct side_effects {
    const char *path;
    enum kill_point point;
    int at_call; /* run call (1-based) or succeeded count */
    int calls;
    pthread_mutex_t mu;
};

static bool effect_present(const char *path, const char *key)
{
    char line[128], want[128];
    bool found = false;
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    snprintf(want, sizeof(want), "created %s\n", key);
    while (!found && fgets(line, sizeof(line), f))
        found = strcmp(line, want) == 0;
    fclose(f);
    return found;
}

static int se_run(char **out_output, const struct journal_action *a, const char *key,
                  int64_t deadline, struct rv_error *err, void *ud)
{
    struct side_effects *se = ud;
    char line[128];
    (void)a;
    (void)deadline;
    pthread_mutex_lock(&se->mu);
    int call = ++se->calls;
    pthread_mutex_unlock(&se->mu);
    if (se->point == KILL_BEFORE_EFFECT && call == se->at_call)
        raise(SIGKILL);
    int fd = open(se->path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0)
        return rv_error_set(err, RV_EIO, true, "cannot open '%s'", se->path);
    int n = snprintf(line, sizeof(line), "created %s\n", key);
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    if (w != n)
        return rv_error_set(err, RV_EIO, true, "short write to '%s'", se->path);
    if (se->point == KILL_AFTER_EFFECT && call == se->at_call)
        raise(SIGKILL);
    struct timespec ts = {0, 2 * 1000000L};
    nanosleep(&ts, NULL);
    *out_output = strdup("{}");
    return 0;
}

static int se_check(bool *out_done, const struct journal_action *a, const char *key,
                    struct rv_error *err, void *ud)
{
    struct side_effects *se = ud;
    (void)a;
    (void)err;
    *out_done = effect_present(se->path, key);
    return 0;
}

/* The child: resume or run the apply until done or killed. */
static void crash_child(const char *db_path, const char *effects, int64_t apply_id,
                        enum kill_point point, int at)
{
    struct side_effects se = {.path = effects, .point = point, .at_call = at};
    struct executor_runner r = {se_run, se_check, &se};
    struct executor_opts o;
    struct executor *ex = NULL;
    struct db *db = NULL;
    struct rv_error err;
    pthread_mutex_init(&se.mu, NULL);
    executor_opts_init(&o);
    o.max_concurrent = 2;
    if (store_open(&db, db_path, NULL, &err) != 0 || executor_new(&ex, db, &r, &o, &err) != 0)
        _exit(3);
    for (;;) {
        size_t started = 0;
        if (executor_step(&started, ex, &err) != 0)
            _exit(4);
        if (point == KILL_AFTER_OUTCOME) {
            int64_t n = 0;
            if (db_query_i64(&n, db, &err,
                             "SELECT count(*) FROM apply_actions WHERE apply_id = ?"
                             " AND state = 'succeeded'",
                             "l", apply_id) != 0)
                _exit(5);
            if (n >= at)
                raise(SIGKILL);
        }
        if (!executor_apply_active(ex, apply_id))
            break;
        executor_wait(ex, 50);
    }
    executor_free(ex);
    db_free(db);
    _exit(0);
}

static int spawn_and_kill(const char *db_path, const char *effects, int64_t apply_id,
                          enum kill_point point, int at, int kill_after_ms)
{
    int status = 0;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        crash_child(db_path, effects, apply_id, point, at);
    if (kill_after_ms > 0) {
        struct timespec ts = {kill_after_ms / 1000, (long)(kill_after_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_crash_safety(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct rv_error err;
    size_t d0[] = {0}, d1[] = {1}, d2[] = {2}, d34[] = {3, 4};
    plan_init(&p);
    tplan_add(&p, "t/c", "p0", NULL, 0, NULL);
    tplan_add(&p, "t/c", "p1", NULL, 1, d0);
    tplan_add(&p, "t/c", "p2", NULL, 1, d0);
    tplan_add(&p, "t/c", "p3", NULL, 1, d1);
    tplan_add(&p, "t/c", "p4", NULL, 1, d2);
    tplan_add(&p, "t/c", "p5", NULL, 2, d34);
    tplan_add(&p, "t/d", "q0", NULL, 0, NULL);
    tplan_add(&p, "t/d", "q1", NULL, 1, (size_t[]){6});
    struct journal_apply_opts jo = {.commit_sha = "c1"};
    int64_t id = 0;
    assert_int_equal(journal_apply_begin(&id, fx->db, &p, &jo, (int64_t)time(NULL), &err), 0);
    /* No connection is open across fork(). */
    db_free(fx->db);
    fx->db = NULL;

    int st;
    /* 1: intent written, killed before the side effect. */
    st = spawn_and_kill(fx->path, fx->effects, id, KILL_BEFORE_EFFECT, 1, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* 2: killed right after a side effect, before its outcome. */
    st = spawn_and_kill(fx->path, fx->effects, id, KILL_AFTER_EFFECT, 2, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* 3: killed after outcomes were written (4 actions done). */
    st = spawn_and_kill(fx->path, fx->effects, id, KILL_AFTER_OUTCOME, 4, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* 4: killed from outside at arbitrary moments. */
    static const int after_ms[] = {1, 3, 6};
    for (size_t i = 0; i < sizeof(after_ms) / sizeof(after_ms[0]); i++) {
        st = spawn_and_kill(fx->path, fx->effects, id, KILL_NONE, 0, after_ms[i]);
        assert_true(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
    }

    /* Resume here until done. */
    struct side_effects se = {.path = fx->effects, .point = KILL_NONE};
    struct executor_runner r = {se_run, se_check, &se};
    pthread_mutex_init(&se.mu, NULL);
    assert_int_equal(store_open(&fx->db, fx->path, NULL, &err), 0);
    assert_int_equal(executor_new(&fx->ex, fx->db, &r, NULL, &err), 0);
    assert_int_equal(executor_run(fx->ex, id, &err), 0);

    struct journal_apply a = load(fx, id);
    assert_int_equal(a.state, JOURNAL_APPLY_SUCCEEDED);
    for (size_t i = 0; i < a.nactions; i++)
        assert_int_equal(a.actions[i].state, JOURNAL_ACTION_SUCCEEDED);
    journal_apply_release(&a);

    /* Every side effect happened exactly once. */
    FILE *f = fopen(fx->effects, "r");
    assert_non_null(f);
    char line[128];
    size_t lines = 0;
    int seen[16] = {0};
    while (fgets(line, sizeof(line), f)) {
        lines++;
        for (size_t i = 0; i < p.nactions; i++) {
            char want[128];
            snprintf(want, sizeof(want), "created %s\n", p.actions[i].idempotency_key);
            if (strcmp(line, want) == 0)
                seen[i]++;
        }
    }
    fclose(f);
    for (size_t i = 0; i < p.nactions; i++) {
        if (seen[i] != 1)
            fail_msg("side effect of '%s' happened %d times", p.actions[i].id, seen[i]);
    }
    assert_int_equal(lines, p.nactions);
    pthread_mutex_destroy(&se.mu);
    plan_release(&p);
}

/* ---- maintenance windows and pause files ---- */

/* One cluster "t/db" whose window opens Saturday 2027-01-16 02:00 UTC,
 * 18 hours after T0 (Friday 08:00). */
#define WINDOW_OPENS (T0 + 18 * 3600)

static bool hold_by_window(char *why, size_t size, int64_t *out_until,
                           const struct journal_action *a, int64_t now, void *ud)
{
    return window_hold(why, size, out_until, ud, a->cluster, a->kind, now);
}

static void wait_gate(struct fixture *fx)
{
    pthread_mutex_lock(&fx->fk.mu);
    while (!fx->fk.gate_entered)
        pthread_cond_wait(&fx->fk.cv, &fx->fk.mu);
    pthread_mutex_unlock(&fx->fk.mu);
}

static void open_gate(struct fixture *fx)
{
    pthread_mutex_lock(&fx->fk.mu);
    fx->fk.gate_open = true;
    pthread_cond_broadcast(&fx->fk.cv);
    pthread_mutex_unlock(&fx->fk.mu);
}

static void test_window_holds_disruptive(void **state)
{
    struct fixture *fx = *state;
    struct spec_cluster db = {.namespace_ = "t", .name = "db"};
    struct spec_cluster *ptrs[] = {&db};
    struct spec_set set = {.clusters = ptrs, .nclusters = 1};
    struct executor_opts o;
    struct plan p;
    size_t started = 0, d1[] = {1};
    char why[RV_EXEC_STATUS_MAX];
    db.maintenance.window = "Sat 02:00-04:00";
    plan_init(&p);
    tplan_add(&p, "t/db", "replica", NULL, 0, NULL); /* add_replica: any time */
    tplan_add(&p, "t/db", "restart", NULL, 0, NULL);
    p.actions[1].kind = PLAN_RESTART_NODE;
    tplan_add(&p, "t/db", "after", NULL, 1, d1); /* waits for the restart */
    executor_opts_init(&o);
    o.hold = hold_by_window;
    o.hold_ud = &set;
    ex_open(fx, &o);
    int64_t id = apply_begin(fx, &p, "c1", NULL);

    /* outside the window: the replica is added, the restart waits */
    step_ok(fx, &started);
    assert_int_equal(started, 1);
    assert_false(executor_apply_waiting(why, sizeof(why), fx->ex, id)); /* one runs */
    while (executor_inflight(fx->ex) > 0) {
        executor_wait(fx->ex, 1000);
        step_ok(fx, &started);
    }
    assert_int_equal(started, 0);
    assert_int_equal(fx->fk.nruns, 1);
    assert_string_equal(fx->fk.events[0], "start t/db/replica");
    assert_true(executor_apply_waiting(why, sizeof(why), fx->ex, id));
    assert_string_equal(why, "waiting for maintenance window Sat 02:00-04:00");
    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_PENDING);

    /* executor_run sleeps until the window opens, then the restart runs */
    run_apply(fx, id);
    assert_int_equal(fx->fk.nruns, 3);
    assert_int_equal(fx->fk.run_times[1], WINDOW_OPENS);
    assert_true(event_index(&fx->fk, "end", "t/db/restart") <
                event_index(&fx->fk, "start", "t/db/after"));
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_SUCCESS);
    plan_release(&p);
}

static void test_window_open_runs_at_once(void **state)
{
    struct fixture *fx = *state;
    struct spec_cluster db = {.namespace_ = "t", .name = "db"};
    struct spec_cluster *ptrs[] = {&db};
    struct spec_set set = {.clusters = ptrs, .nclusters = 1};
    struct executor_opts o;
    struct plan p;
    size_t started = 0;
    db.maintenance.window = "Fri 07:30-08:30"; /* T0 is Friday 08:00: open */
    plan_init(&p);
    tplan_add(&p, "t/db", "switch", NULL, 0, NULL);
    p.actions[0].kind = PLAN_SWITCHOVER;
    executor_opts_init(&o);
    o.hold = hold_by_window;
    o.hold_ud = &set;
    ex_open(fx, &o);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    step_ok(fx, &started);
    assert_int_equal(started, 1);
    run_apply(fx, id);
    assert_int_equal(fx->fk.run_times[0], T0);
    plan_release(&p);
}

static void test_pause_file_set(void **state)
{
    struct fixture *fx = *state;
    struct plan p;
    struct rv_error err;
    size_t started = 0, d0[] = {0};
    char why[RV_EXEC_STATUS_MAX];
    const char *ns[] = {"payments"};
    const char *whys[] = {"paused: clusters/payments/PAUSED (quarter-end freeze)"};
    plan_init(&p);
    tplan_add(&p, "payments/billing", "a", NULL, 0, NULL);
    tplan_add(&p, "payments/billing", "b", NULL, 1, d0);
    tplan_add(&p, "search/index", "c", NULL, 0, NULL);
    fx->fk.gate_id = "payments/billing/a";
    ex_open(fx, NULL);
    int64_t id = apply_begin(fx, &p, "c1", NULL);
    step_ok(fx, &started);
    assert_int_equal(started, 2);
    wait_gate(fx);

    /* paused while 'a' runs: 'a' finishes, 'b' does not start */
    rv_error_clear(&err);
    assert_int_equal(executor_pause_set(fx->ex, ns, whys, 1, &err), 0);
    open_gate(fx);
    while (executor_inflight(fx->ex) > 0) {
        executor_wait(fx->ex, 1000);
        step_ok(fx, &started);
        assert_int_equal(started, 0);
    }
    assert_int_equal(fx->fk.nruns, 2);
    struct journal_apply a = load(fx, id);
    assert_int_equal(a.actions[0].state, JOURNAL_ACTION_SUCCEEDED);
    assert_int_equal(a.actions[1].state, JOURNAL_ACTION_PENDING);
    journal_apply_release(&a);
    assert_true(executor_apply_waiting(why, sizeof(why), fx->ex, id));
    assert_string_equal(why, "paused: clusters/payments/PAUSED (quarter-end freeze)");
    assert_int_equal(executor_run(fx->ex, id, &err), RV_EBUSY);

    /* the same set again changes nothing; a bad name changes nothing */
    assert_int_equal(executor_pause_set(fx->ex, ns, whys, 1, &err), 0);
    const char *bad[] = {"search", "a/b"};
    assert_int_equal(executor_pause_set(fx->ex, bad, NULL, 2, &err), RV_EINVAL);
    step_ok(fx, &started);
    assert_int_equal(started, 0);

    /* the file is removed: an empty set resumes */
    assert_int_equal(executor_pause_set(fx->ex, NULL, NULL, 0, &err), 0);
    assert_false(executor_apply_waiting(why, sizeof(why), fx->ex, id));
    run_apply(fx, id);
    assert_int_equal(fx->fk.nruns, 3);
    struct journal_status st;
    status_of(&st, fx, id);
    assert_int_equal(st.state, JOURNAL_STATUS_SUCCESS);
    plan_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_by_depends_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_rods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_holds_disruptive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_open_runs_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_file_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overdue_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_failure_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_supersede, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_checks_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
