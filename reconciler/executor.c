#include "executor.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "limits.h"
#include "log.h"

/* What a worker does for one attempt. */
enum job_mode {
    JOB_RUN,            /* first attempt: run */
    JOB_CHECK_THEN_RUN, /* a retry or a resumption: check(), run only if not done */
    JOB_CHECK_ONLY,     /* out of attempts or past the deadline: only check() */
};

struct job {
    struct job *next;
    struct journal_apply *apply;
    struct journal_action *action;
    enum job_mode mode;
    int64_t deadline;
    bool overdue; /* warned that the runner is past the deadline */
    /* Written by the worker, read after it is on the done list. */
    int rc;
    bool found_done;
    char *output;
    struct rv_error err;
};

struct executor {
    struct db *db;
    struct executor_runner runner;
    struct executor_opts opts;

    struct journal_apply **applies; /* running applies, oldest first */
    size_t napplies, capplies;

    struct job **inflight; /* started, outcome not yet recorded */
    size_t ninflight;

    pthread_t *threads;
    size_t nthreads;
    pthread_mutex_t mu;
    pthread_cond_t todo_cv;
    pthread_cond_t done_cv;
    struct job *todo_head, *todo_tail; /* under mu */
    struct job *done_head, *done_tail; /* under mu */
    bool stopping;                     /* under mu */

    struct paused {
        char *ns;
        char *why; /* executor_apply_waiting()'s text */
    } * paused;
    size_t npaused;
    /* The last step's earliest time a held action is asked again; 0 when
     * none is held. */
    int64_t hold_until;

    struct executor_metrics metrics;
};

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

static void default_sleep_until(int64_t at, void *ud)
{
    (void)ud;
    for (;;) {
        int64_t now = (int64_t)time(NULL);
        if (now >= at)
            return;
        struct timespec ts = {.tv_sec = at - now > 1 ? 1 : (time_t)(at - now), .tv_nsec = 0};
        nanosleep(&ts, NULL);
    }
}

void executor_opts_init(struct executor_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_concurrent = RV_EXEC_CONCURRENT_DEFAULT;
    o->max_per_provider = RV_EXEC_PER_PROVIDER_DEFAULT;
    o->max_per_cluster = RV_EXEC_PER_CLUSTER_DEFAULT;
    o->attempts_max = RV_EXEC_ATTEMPTS_MAX;
    o->backoff_base_s = RV_EXEC_BACKOFF_BASE_S;
    o->backoff_max_s = RV_EXEC_BACKOFF_MAX_S;
    o->deadline_s = RV_EXEC_DEADLINE_S;
}

static void opts_fill(struct executor_opts *o, const struct executor_opts *in)
{
    struct executor_opts d;
    executor_opts_init(&d);
    *o = in ? *in : d;
    if (o->max_concurrent <= 0)
        o->max_concurrent = d.max_concurrent;
    if (o->max_concurrent > RV_EXEC_CONCURRENT_MAX)
        o->max_concurrent = RV_EXEC_CONCURRENT_MAX;
    if (o->max_per_provider <= 0)
        o->max_per_provider = d.max_per_provider;
    if (o->max_per_cluster <= 0)
        o->max_per_cluster = d.max_per_cluster;
    if (o->attempts_max <= 0)
        o->attempts_max = d.attempts_max;
    if (o->backoff_base_s <= 0)
        o->backoff_base_s = d.backoff_base_s;
    if (o->backoff_max_s < o->backoff_base_s)
        o->backoff_max_s = o->backoff_base_s;
    if (o->deadline_s <= 0)
        o->deadline_s = d.deadline_s;
    if (!o->now)
        o->now = default_now;
    if (!o->random)
        o->random = default_random;
    if (!o->sleep_until)
        o->sleep_until = default_sleep_until;
}

static int64_t ex_now(const struct executor *ex)
{
    return ex->opts.now(ex->opts.clock_ud);
}

/* --- workers --- */

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->output);
    free(j);
}

static void job_execute(struct executor *ex, struct job *j)
{
    const struct journal_action *a = j->action;
    rv_error_clear(&j->err);
    j->rc = 0;
    if (j->mode != JOB_RUN) {
        bool done = false;
        j->rc = ex->runner.check(&done, a, a->idempotency_key, &j->err, ex->runner.ud);
        if (j->rc != 0 || done || j->mode == JOB_CHECK_ONLY) {
            j->found_done = j->rc == 0 && done;
            goto out;
        }
    }
    j->rc = ex->runner.run(&j->output, a, a->idempotency_key, j->deadline, &j->err, ex->runner.ud);
out:
    if (j->rc != 0) {
        if (j->rc > 0)
            j->rc = RV_EINTERNAL;
        if (j->err.msg[0] == '\0')
            rv_error_set(&j->err, j->rc, j->err.retryable, "runner of '%s' failed: %s", a->kind,
                         rv_strerror(j->rc));
    }
}

static void *worker_main(void *arg)
{
    struct executor *ex = arg;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (!ex->todo_head && !ex->stopping)
            pthread_cond_wait(&ex->todo_cv, &ex->mu);
        if (ex->stopping)
            break;
        struct job *j = ex->todo_head;
        ex->todo_head = j->next;
        if (!ex->todo_head)
            ex->todo_tail = NULL;
        j->next = NULL;
        pthread_mutex_unlock(&ex->mu);

        job_execute(ex, j);

        pthread_mutex_lock(&ex->mu);
        if (ex->done_tail)
            ex->done_tail->next = j;
        else
            ex->done_head = j;
        ex->done_tail = j;
        pthread_cond_broadcast(&ex->done_cv);
        pthread_mutex_unlock(&ex->mu);
        if (ex->opts.notify)
            ex->opts.notify(ex->opts.notify_ud);
        pthread_mutex_lock(&ex->mu);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

/* --- applies in memory --- */

static int applies_push(struct executor *ex, struct journal_apply *a, struct rv_error *err)
{
    if (ex->napplies == ex->capplies) {
        size_t ncap = ex->capplies ? ex->capplies * 2 : 8;
        struct journal_apply **n = realloc(ex->applies, ncap * sizeof(*n));
        if (!n)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory taking on apply %lld",
                                (long long)a->id);
        ex->applies = n;
        ex->capplies = ncap;
    }
    ex->applies[ex->napplies++] = a;
    return 0;
}

static size_t actions_held(const struct executor *ex)
{
    size_t n = 0;
    for (size_t i = 0; i < ex->napplies; i++)
        n += ex->applies[i]->nactions;
    return n;
}

/* Load an apply from the journal and hold it. */
static int apply_take(struct executor *ex, int64_t id, struct rv_error *err)
{
    struct journal_apply *a = calloc(1, sizeof(*a));
    int rc;
    if (!a)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory taking on apply %lld",
                            (long long)id);
    rc = journal_apply_load(a, ex->db, id, err);
    if (rc != 0)
        goto out;
    if (actions_held(ex) + a->nactions > RV_EXEC_ACTIONS_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "apply %lld would make more than %d unfinished actions; it starts "
                          "when earlier applies finish",
                          (long long)id, RV_EXEC_ACTIONS_MAX);
        goto out;
    }
    rc = applies_push(ex, a, err);
    if (rc == 0)
        a = NULL;
out:
    if (a) {
        journal_apply_release(a);
        free(a);
    }
    return rc;
}

int executor_new(struct executor **out, struct db *db, const struct executor_runner *runner,
                 const struct executor_opts *opts, struct rv_error *err)
{
    struct executor *ex = NULL;
    int64_t *ids = NULL;
    size_t nids = 0, recovered = 0;
    int rc;

    if (!runner || !runner->run || !runner->check)
        return rv_error_set(err, RV_EINVAL, false, "executor needs a runner with run and check");
    ex = calloc(1, sizeof(*ex));
    if (!ex)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory starting the executor");
    ex->db = db;
    ex->runner = *runner;
    opts_fill(&ex->opts, opts);
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->todo_cv, NULL);
    pthread_cond_init(&ex->done_cv, NULL);

    ex->inflight = calloc((size_t)ex->opts.max_concurrent, sizeof(*ex->inflight));
    ex->threads = calloc((size_t)ex->opts.max_concurrent, sizeof(*ex->threads));
    if (!ex->inflight || !ex->threads) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory starting the executor");
        goto out;
    }

    rc = journal_recover(&recovered, db, ex_now(ex), err);
    if (rc != 0)
        goto out;
    if (recovered > 0)
        log_warn("executor",
                 "%zu action(s) were running when reeve stopped; each is checked "
                 "by its idempotency key before it runs again",
                 recovered);
    rc = journal_apply_running(&ids, &nids, db, err);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < nids; i++) {
        rc = apply_take(ex, ids[i], err);
        if (rc != 0)
            goto out;
    }

    for (size_t i = 0; i < (size_t)ex->opts.max_concurrent; i++) {
        int e = pthread_create(&ex->threads[i], NULL, worker_main, ex);
        if (e != 0) {
            rc = rv_error_set(err, RV_ENOMEM, true, "cannot start executor worker %zu: %s", i,
                              strerror(e));
            goto out;
        }
        ex->nthreads++;
    }
    *out = ex;
    ex = NULL;
out:
    free(ids);
    executor_free(ex);
    return rc;
}

void executor_free(struct executor *ex)
{
    if (!ex)
        return;
    pthread_mutex_lock(&ex->mu);
    ex->stopping = true;
    pthread_cond_broadcast(&ex->todo_cv);
    pthread_mutex_unlock(&ex->mu);
    for (size_t i = 0; i < ex->nthreads; i++)
        pthread_join(ex->threads[i], NULL);
    /* Every job is in flight: queued, done, or both lists drained. */
    for (size_t i = 0; i < ex->ninflight; i++)
        job_free(ex->inflight[i]);
    for (size_t i = 0; i < ex->napplies; i++) {
        journal_apply_release(ex->applies[i]);
        free(ex->applies[i]);
    }
    for (size_t i = 0; i < ex->npaused; i++) {
        free(ex->paused[i].ns);
        free(ex->paused[i].why);
    }
    free(ex->paused);
    free(ex->applies);
    free(ex->inflight);
    free(ex->threads);
    pthread_cond_destroy(&ex->done_cv);
    pthread_cond_destroy(&ex->todo_cv);
    pthread_mutex_destroy(&ex->mu);
    free(ex);
}

/* --- new applies and superseding --- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The plan's clusters, sorted, for bsearch; NULL when the plan is empty. */
static const char **plan_clusters(size_t *out_n, const struct plan *p, bool *out_nomem)
{
    const char **c = NULL;
    size_t n = 0;
    *out_n = 0;
    *out_nomem = false;
    if (p->nactions == 0)
        return NULL;
    c = calloc(p->nactions, sizeof(*c));
    if (!c) {
        *out_nomem = true;
        return NULL;
    }
    for (size_t i = 0; i < p->nactions; i++)
        c[i] = p->actions[i].cluster;
    qsort(c, p->nactions, sizeof(*c), cmp_str);
    for (size_t i = 0; i < p->nactions; i++) {
        if (n == 0 || strcmp(c[n - 1], c[i]) != 0)
            c[n++] = c[i];
    }
    *out_n = n;
    return c;
}

int executor_apply_begin(int64_t *out_apply_id, struct executor *ex, const struct plan *p,
                         const struct journal_apply_opts *opts, struct rv_error *err)
{
    int64_t id = 0;
    int64_t now = ex_now(ex);
    const char **clusters = NULL;
    size_t nclusters = 0;
    bool nomem = false;
    int rc;

    if (actions_held(ex) + p->nactions > RV_EXEC_ACTIONS_MAX)
        return rv_error_set(err, RV_EBUSY, true,
                            "executor holds too many unfinished actions to take on commit "
                            "'%s'; it is applied when earlier applies finish",
                            opts->commit_sha);
    clusters = plan_clusters(&nclusters, p, &nomem);
    if (nomem)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory taking on commit '%s'",
                            opts->commit_sha);
    rc = journal_apply_begin(&id, ex->db, p, opts, now, err);
    if (rc != 0)
        goto out;

    /* Mirror what journal_apply_begin did to older applies. */
    char reason[64];
    snprintf(reason, sizeof(reason), "superseded by apply %lld", (long long)id);
    for (size_t i = 0; i < ex->napplies; i++) {
        struct journal_apply *ap = ex->applies[i];
        for (size_t k = 0; k < ap->nactions; k++) {
            struct journal_action *a = &ap->actions[k];
            if (a->state != JOURNAL_ACTION_PENDING && a->state != JOURNAL_ACTION_BLOCKED)
                continue;
            if (!bsearch(&a->cluster, clusters, nclusters, sizeof(*clusters), cmp_str))
                continue;
            char *msg = strdup(reason);
            if (!msg) {
                rc = rv_error_set(err, RV_ENOMEM, false, "out of memory superseding");
                goto out;
            }
            free(a->last_error);
            a->last_error = msg;
            a->state = JOURNAL_ACTION_CANCELED;
            a->finished_at = now;
            ap->superseded_by = id;
            ex->metrics.canceled++;
        }
    }
    rc = apply_take(ex, id, err);
    if (rc == 0)
        *out_apply_id = id;
out:
    free(clusters);
    return rc;
}

/* --- scheduling --- */

static bool deps_succeeded(const struct journal_apply *ap, const struct journal_action *a)
{
    for (size_t i = 0; i < a->ndeps; i++) {
        if (ap->actions[a->deps[i]].state != JOURNAL_ACTION_SUCCEEDED)
            return false;
    }
    return true;
}

static const struct paused *namespace_paused(const struct executor *ex, const char *cluster)
{
    for (size_t i = 0; i < ex->npaused; i++) {
        size_t len = strlen(ex->paused[i].ns);
        if (strncmp(cluster, ex->paused[i].ns, len) == 0 && cluster[len] == '/')
            return &ex->paused[i];
    }
    return NULL;
}

static int pause_name_check(const char *namespace_, struct rv_error *err)
{
    if (strlen(namespace_) == 0 || strlen(namespace_) > RV_NAME_MAX || strchr(namespace_, '/'))
        return rv_error_set(err, RV_EINVAL, false,
                            "cannot pause namespace '%.*s': a namespace is 1 to %d characters, "
                            "without '/'",
                            RV_NAME_MAX, namespace_, RV_NAME_MAX);
    return 0;
}

static void paused_free(struct paused *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].ns);
        free(p[i].why);
    }
    free(p);
}

/* A copy of (ns, why), why defaulting to "paused: namespace '<ns>'". */
static int paused_fill(struct paused *p, const char *ns, const char *why, struct rv_error *err)
{
    p->ns = strdup(ns);
    if (why)
        p->why = strdup(why);
    else if (asprintf(&p->why, "paused: namespace '%s'", ns) < 0)
        p->why = NULL;
    if (!p->ns || !p->why) {
        free(p->ns);
        free(p->why);
        p->ns = p->why = NULL;
        return rv_error_set(err, RV_ENOMEM, false, "out of memory pausing '%s'", ns);
    }
    return 0;
}

int executor_pause(struct executor *ex, const char *namespace_, bool paused, struct rv_error *err)
{
    size_t i = 0;
    while (i < ex->npaused && strcmp(ex->paused[i].ns, namespace_) != 0)
        i++;
    if (!paused) {
        if (i < ex->npaused) {
            free(ex->paused[i].ns);
            free(ex->paused[i].why);
            ex->paused[i] = ex->paused[--ex->npaused];
        }
        return 0;
    }
    if (i < ex->npaused)
        return 0;
    int rc = pause_name_check(namespace_, err);
    if (rc != 0)
        return rc;
    if (ex->npaused >= RV_EXEC_PAUSED_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "cannot pause namespace '%s': %d namespaces are paused already",
                            namespace_, RV_EXEC_PAUSED_MAX);
    struct paused *n = realloc(ex->paused, (ex->npaused + 1) * sizeof(*n));
    if (!n)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory pausing '%s'", namespace_);
    ex->paused = n;
    rc = paused_fill(&ex->paused[ex->npaused], namespace_, NULL, err);
    if (rc == 0)
        ex->npaused++;
    return rc;
}

int executor_pause_set(struct executor *ex, const char *const *namespaces, const char *const *whys,
                       size_t n, struct rv_error *err)
{
    struct paused *next = NULL;
    size_t filled = 0;
    int rc = 0;
    if (n > RV_EXEC_PAUSED_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "cannot pause %zu namespaces: at most %d may be paused at once", n,
                            RV_EXEC_PAUSED_MAX);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = pause_name_check(namespaces[i], err);
    if (rc != 0)
        return rc;
    if (n > 0 && !(next = calloc(n, sizeof(*next))))
        return rv_error_set(err, RV_ENOMEM, false, "out of memory pausing namespaces");
    for (; filled < n; filled++) {
        rc = paused_fill(&next[filled], namespaces[filled], whys ? whys[filled] : NULL, err);
        if (rc != 0) {
            paused_free(next, filled);
            return rc;
        }
    }
    paused_free(ex->paused, ex->npaused);
    ex->paused = next;
    ex->npaused = n;
    return 0;
}

/* Whether opts.hold keeps a ready action waiting; why gets the reason. */
static bool action_held(const struct executor *ex, char *why, size_t size, int64_t *out_until,
                        const struct journal_action *a, int64_t now)
{
    *out_until = 0;
    if (!ex->opts.hold)
        return false;
    why[0] = '\0';
    if (!ex->opts.hold(why, size, out_until, a, now, ex->opts.hold_ud))
        return false;
    if (why[0] == '\0')
        snprintf(why, size, "held");
    return true;
}

/* Control rods and the one-run-per-key / older-apply-first rules. */
static bool rods_allow(const struct executor *ex, const struct journal_action *a)
{
    int provider = 0, cluster = 0;
    if (ex->ninflight >= (size_t)ex->opts.max_concurrent)
        return false;
    if (namespace_paused(ex, a->cluster))
        return false;
    for (size_t i = 0; i < ex->ninflight; i++) {
        const struct journal_action *r = ex->inflight[i]->action;
        if (strcmp(r->idempotency_key, a->idempotency_key) == 0)
            return false;
        if (strcmp(r->cluster, a->cluster) == 0) {
            if (r->apply_id < a->apply_id)
                return false;
            cluster++;
        }
        if (strcmp(r->provider, a->provider) == 0)
            provider++;
    }
    return provider < ex->opts.max_per_provider && cluster < ex->opts.max_per_cluster;
}

static int start_action(bool *out_started, struct executor *ex, struct journal_apply *ap,
                        struct journal_action *a, int64_t now, struct rv_error *err)
{
    struct journal_action next = *a;
    struct job *j = calloc(1, sizeof(*j));
    int rc = 0;
    *out_started = false;
    if (!j)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory starting '%s'", a->id);
    j->apply = ap;
    j->action = a;
    if (a->attempts > 0 &&
        (a->attempts >= ex->opts.attempts_max || (a->deadline_at > 0 && now >= a->deadline_at)))
        j->mode = JOB_CHECK_ONLY;
    else if (a->attempts > 0 || a->recheck)
        j->mode = JOB_CHECK_THEN_RUN;
    else
        j->mode = JOB_RUN;

    next.state = JOURNAL_ACTION_RUNNING;
    if (j->mode != JOB_CHECK_ONLY)
        next.attempts = a->attempts + 1;
    if (next.started_at == 0)
        next.started_at = now;
    if (next.deadline_at == 0)
        next.deadline_at = now + ex->opts.deadline_s;
    j->deadline = next.deadline_at;

    /* The intent: committed before any runner sees the action. */
    rc = journal_action_write(ex->db, &next, JOURNAL_ACTION_PENDING, err);
    if (rc != 0) {
        free(j);
        if (rc == RV_ECONFLICT && err && err->retryable) {
            rv_error_clear(err);
            return 0;
        }
        return rc;
    }
    a->state = next.state;
    a->attempts = next.attempts;
    a->started_at = next.started_at;
    a->deadline_at = next.deadline_at;
    ex->metrics.started++;

    ex->inflight[ex->ninflight++] = j;
    pthread_mutex_lock(&ex->mu);
    if (ex->todo_tail)
        ex->todo_tail->next = j;
    else
        ex->todo_head = j;
    ex->todo_tail = j;
    pthread_cond_signal(&ex->todo_cv);
    pthread_mutex_unlock(&ex->mu);
    *out_started = true;
    return 0;
}

/* Delay before attempt n+1 after n attempts: base * 2^(n-1), capped, with
 * "equal jitter" (half fixed, half random). */
static int64_t backoff_delay(const struct executor *ex, int attempts)
{
    int64_t d = ex->opts.backoff_base_s;
    for (int i = 1; i < attempts && d < ex->opts.backoff_max_s; i++)
        d *= 2;
    if (d > ex->opts.backoff_max_s)
        d = ex->opts.backoff_max_s;
    int64_t half = d / 2;
    uint32_t r = ex->opts.random(ex->opts.clock_ud);
    return d - half + (int64_t)(r % (uint64_t)(half + 1));
}

/* Output a runner returned: kept when it is JSON and not too big. */
static char *output_take(struct job *j, char **out_note)
{
    char *o = j->output;
    j->output = NULL;
    *out_note = NULL;
    if (!o)
        return NULL;
    size_t len = strlen(o);
    json_error_t jerr;
    json_t *v = NULL;
    if (len > RV_EXEC_OUTPUT_MAX) {
        if (asprintf(out_note, "output discarded: %zu bytes, more than %d", len,
                     RV_EXEC_OUTPUT_MAX) < 0)
            *out_note = NULL;
    } else if (!(v = json_loads(o, JSON_DECODE_ANY, &jerr))) {
        if (asprintf(out_note, "output discarded: not JSON (%s)", jerr.text) < 0)
            *out_note = NULL;
    } else {
        json_decref(v);
        return o;
    }
    free(o);
    return NULL;
}

static void inflight_remove(struct executor *ex, const struct job *j)
{
    for (size_t i = 0; i < ex->ninflight; i++) {
        if (ex->inflight[i] == j) {
            ex->inflight[i] = ex->inflight[--ex->ninflight];
            return;
        }
    }
}

/* The outcome of one returned job, written to the journal. */
static int record_outcome(struct executor *ex, struct job *j, int64_t now, struct rv_error *err)
{
    struct journal_action *a = j->action;
    struct journal_action next = *a;
    char *msg = NULL;
    char *output = NULL;
    int rc;

    next.output = a->output;
    next.last_error = a->last_error;
    if (j->rc == 0 && (j->found_done || j->mode != JOB_CHECK_ONLY)) {
        next.state = JOURNAL_ACTION_SUCCEEDED;
        next.finished_at = now;
        next.next_attempt_at = 0;
        if (!j->found_done)
            output = output_take(j, &msg);
        next.output = output;
        next.last_error = msg;
    } else {
        const char *why = j->rc != 0 ? j->err.msg : (a->last_error ? a->last_error : "not done");
        bool retryable = j->rc == 0 || j->err.retryable;
        int64_t delay = retryable ? backoff_delay(ex, a->attempts) : 0;
        int n;
        if (retryable && j->mode != JOB_CHECK_ONLY && a->attempts < ex->opts.attempts_max &&
            now + delay < a->deadline_at) {
            next.state = JOURNAL_ACTION_PENDING;
            next.next_attempt_at = now + delay;
            n = asprintf(&msg, "%s", why);
        } else {
            next.state = JOURNAL_ACTION_FAILED;
            next.finished_at = now;
            if (!retryable)
                n = asprintf(&msg, "%s", why);
            else if (a->attempts >= ex->opts.attempts_max)
                n = asprintf(&msg, "gave up after %d attempts: %s", a->attempts, why);
            else
                n = asprintf(&msg, "deadline exceeded after %d attempt%s: %s", a->attempts,
                             a->attempts == 1 ? "" : "s", why);
        }
        if (n < 0) {
            msg = NULL;
            return rv_error_set(err, RV_ENOMEM, false, "out of memory recording '%s'", a->id);
        }
        next.last_error = msg;
    }

    rc = journal_action_write(ex->db, &next, JOURNAL_ACTION_RUNNING, err);
    if (rc != 0) {
        /* Keep the job's output for the next try at recording it. */
        if (output && !j->output)
            j->output = output;
        else
            free(output);
        free(msg);
        return rc;
    }
    if (next.output != a->output)
        free(a->output);
    if (next.last_error != a->last_error)
        free(a->last_error);
    *a = next;
    switch (a->state) {
    case JOURNAL_ACTION_SUCCEEDED:
        ex->metrics.succeeded++;
        if (j->found_done)
            ex->metrics.found_done++;
        break;
    case JOURNAL_ACTION_PENDING:
        ex->metrics.retried++;
        log_info("executor", "action '%s' will be retried in %llds: %s", a->id,
                 (long long)(a->next_attempt_at - now), a->last_error);
        break;
    default:
        ex->metrics.failed++;
        log_warn("executor", "action '%s' failed: %s", a->id, a->last_error);
        break;
    }
    return 0;
}

/* Cancel pending actions that can no longer run, and close the apply when
 * nothing is pending or running. *out_finished when it was closed. */
static int settle(bool *out_finished, struct executor *ex, struct journal_apply *ap, int64_t now,
                  struct rv_error *err)
{
    bool open = false;
    int rc = 0;
    char *text = NULL;
    *out_finished = false;

    for (size_t i = 0; i < ap->nactions; i++) {
        struct journal_action *a = &ap->actions[i];
        if (a->state == JOURNAL_ACTION_RUNNING)
            open = true;
        if (a->state != JOURNAL_ACTION_PENDING)
            continue;
        const struct journal_action *dead = NULL;
        for (size_t k = 0; k < a->ndeps && !dead; k++) {
            const struct journal_action *d = &ap->actions[a->deps[k]];
            if (d->state == JOURNAL_ACTION_FAILED || d->state == JOURNAL_ACTION_CANCELED ||
                d->state == JOURNAL_ACTION_BLOCKED)
                dead = d;
        }
        if (!dead) {
            open = true;
            continue;
        }
        struct journal_action next = *a;
        char *msg = NULL;
        if (asprintf(&msg, "canceled: depends on '%s', which %s", dead->id,
                     dead->state == JOURNAL_ACTION_FAILED    ? "failed"
                     : dead->state == JOURNAL_ACTION_BLOCKED ? "is blocked"
                                                             : "was canceled") < 0)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory canceling '%s'", a->id);
        next.state = JOURNAL_ACTION_CANCELED;
        next.last_error = msg;
        next.finished_at = now;
        rc = journal_action_write(ex->db, &next, JOURNAL_ACTION_PENDING, err);
        if (rc != 0) {
            free(msg);
            return rc;
        }
        free(a->last_error);
        *a = next;
        ex->metrics.canceled++;
    }
    if (open)
        return 0;

    enum journal_apply_state final = JOURNAL_APPLY_SUCCEEDED;
    const struct journal_action *failed = NULL, *blocked = NULL;
    for (size_t i = 0; i < ap->nactions; i++) {
        const struct journal_action *a = &ap->actions[i];
        if (!failed && a->state == JOURNAL_ACTION_FAILED)
            failed = a;
        if (!blocked && a->state == JOURNAL_ACTION_BLOCKED)
            blocked = a;
    }
    int n = 0;
    if (failed) {
        final = JOURNAL_APPLY_FAILED;
        n = asprintf(&text, "%s failed: %s", failed->id,
                     failed->last_error ? failed->last_error : "unknown error");
    } else if (ap->superseded_by > 0) {
        final = JOURNAL_APPLY_SUPERSEDED;
        n = asprintf(&text, "superseded by apply %lld", (long long)ap->superseded_by);
    } else if (blocked) {
        final = JOURNAL_APPLY_BLOCKED;
        n = asprintf(&text, "%s blocked: %s", blocked->id,
                     blocked->blocked_reason ? blocked->blocked_reason : "blocked");
    }
    if (n < 0)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory closing apply %lld",
                            (long long)ap->id);
    rc = journal_apply_finish(ex->db, ap->id, final, text, now, err);
    if (rc != 0)
        goto out;
    ap->state = final;
    ap->finished_at = now;
    free(ap->error);
    ap->error = text;
    text = NULL;
    ex->metrics.applies_finished++;
    log_info("executor", "apply %lld of commit '%s' %s%s%s", (long long)ap->id, ap->commit_sha,
             journal_apply_state_name(final), ap->error ? ": " : "", ap->error ? ap->error : "");
    *out_finished = true;
out:
    free(text);
    return rc;
}

int executor_step(size_t *out_started, struct executor *ex, struct rv_error *err)
{
    struct job *done = NULL;
    size_t started = 0;
    int64_t now = ex_now(ex);
    int rc = 0;

    pthread_mutex_lock(&ex->mu);
    done = ex->done_head;
    ex->done_head = ex->done_tail = NULL;
    pthread_mutex_unlock(&ex->mu);

    while (done) {
        struct job *j = done;
        rc = record_outcome(ex, j, now, err);
        if (rc != 0)
            break;
        done = j->next;
        inflight_remove(ex, j);
        job_free(j);
    }
    if (rc != 0) {
        /* Put the unrecorded jobs back, ahead of newer ones. */
        pthread_mutex_lock(&ex->mu);
        struct job *tail = done;
        while (tail->next)
            tail = tail->next;
        tail->next = ex->done_head;
        if (!ex->done_head)
            ex->done_tail = tail;
        ex->done_head = done;
        pthread_mutex_unlock(&ex->mu);
        goto out;
    }

    /* A runner past its deadline cannot be stopped from here (it is a
     * blocking call); the provider layer kills hung calls. Say so once. */
    for (size_t i = 0; i < ex->ninflight; i++) {
        struct job *j = ex->inflight[i];
        if (!j->overdue && now > j->deadline) {
            j->overdue = true;
            ex->metrics.overdue++;
            log_warn("executor",
                     "action '%s' is still running past its deadline; its runner "
                     "should have given up",
                     j->action->id);
        }
    }

    for (size_t i = 0; i < ex->napplies;) {
        struct journal_apply *ap = ex->applies[i];
        bool finished = false;
        rc = settle(&finished, ex, ap, now, err);
        if (rc != 0)
            goto out;
        if (finished) {
            journal_apply_release(ap);
            free(ap);
            memmove(&ex->applies[i], &ex->applies[i + 1],
                    (ex->napplies - i - 1) * sizeof(*ex->applies));
            ex->napplies--;
            continue;
        }
        i++;
    }

    ex->hold_until = 0;
    for (size_t i = 0; i < ex->napplies; i++) {
        struct journal_apply *ap = ex->applies[i];
        for (size_t k = 0; k < ap->nactions; k++) {
            struct journal_action *a = &ap->actions[k];
            bool ok = false;
            char why[RV_EXEC_STATUS_MAX];
            int64_t until = 0;
            if (ex->ninflight >= (size_t)ex->opts.max_concurrent)
                goto out;
            if (a->state != JOURNAL_ACTION_PENDING || a->next_attempt_at > now ||
                !deps_succeeded(ap, a) || !rods_allow(ex, a))
                continue;
            if (action_held(ex, why, sizeof(why), &until, a, now)) {
                if (until > now && (ex->hold_until == 0 || until < ex->hold_until))
                    ex->hold_until = until;
                continue;
            }
            rc = start_action(&ok, ex, ap, a, now, err);
            if (rc != 0)
                goto out;
            if (ok)
                started++;
        }
    }
out:
    if (out_started)
        *out_started = started;
    return rc;
}

bool executor_apply_active(const struct executor *ex, int64_t apply_id)
{
    for (size_t i = 0; i < ex->napplies; i++) {
        if (ex->applies[i]->id == apply_id)
            return true;
    }
    return false;
}

/* Ready: pending, due, and every dependency succeeded. */
static bool action_ready(const struct journal_apply *ap, const struct journal_action *a,
                         int64_t now)
{
    return a->state == JOURNAL_ACTION_PENDING && a->next_attempt_at <= now && deps_succeeded(ap, a);
}

bool executor_apply_waiting(char *out, size_t size, const struct executor *ex, int64_t apply_id)
{
    const struct journal_apply *ap = NULL;
    int64_t now = ex_now(ex);
    bool held = false;
    for (size_t i = 0; i < ex->napplies && !ap; i++)
        if (ex->applies[i]->id == apply_id)
            ap = ex->applies[i];
    if (!ap || size == 0)
        return false;
    for (size_t k = 0; k < ap->nactions; k++) {
        const struct journal_action *a = &ap->actions[k];
        char why[RV_EXEC_STATUS_MAX];
        int64_t until = 0;
        if (a->state == JOURNAL_ACTION_RUNNING)
            return false;
        if (!action_ready(ap, a, now))
            continue;
        const struct paused *p = namespace_paused(ex, a->cluster);
        if (p) {
            if (!held)
                snprintf(out, size, "%s", p->why);
        } else if (action_held(ex, why, sizeof(why), &until, a, now)) {
            if (!held)
                snprintf(out, size, "%s", why);
        } else {
            return false;
        }
        held = true;
    }
    return held;
}

/* When executor_run() should look again: the earliest retry that is not
 * due yet, or the earliest end of a hold. RV_ENOTFOUND when neither. */
static int next_wake(int64_t *out_at, const struct executor *ex, int64_t now)
{
    bool found = ex->hold_until > now;
    int64_t at = ex->hold_until;
    for (size_t i = 0; i < ex->napplies; i++) {
        const struct journal_apply *ap = ex->applies[i];
        for (size_t k = 0; k < ap->nactions; k++) {
            const struct journal_action *a = &ap->actions[k];
            if (a->state != JOURNAL_ACTION_PENDING || a->next_attempt_at <= now ||
                !deps_succeeded(ap, a))
                continue;
            if (!found || a->next_attempt_at < at) {
                at = a->next_attempt_at;
                found = true;
            }
        }
    }
    if (!found)
        return RV_ENOTFOUND;
    *out_at = at;
    return 0;
}

size_t executor_inflight(const struct executor *ex)
{
    return ex->ninflight;
}

int executor_next_due(int64_t *out_at, const struct executor *ex)
{
    bool found = false;
    int64_t at = 0;
    for (size_t i = 0; i < ex->napplies; i++) {
        const struct journal_apply *ap = ex->applies[i];
        for (size_t k = 0; k < ap->nactions; k++) {
            const struct journal_action *a = &ap->actions[k];
            if (a->state != JOURNAL_ACTION_PENDING || !deps_succeeded(ap, a))
                continue;
            if (!found || a->next_attempt_at < at) {
                at = a->next_attempt_at;
                found = true;
            }
        }
    }
    if (!found)
        return RV_ENOTFOUND;
    *out_at = at;
    return 0;
}

void executor_wait(struct executor *ex, int timeout_ms)
{
    pthread_mutex_lock(&ex->mu);
    if (!ex->done_head) {
        if (timeout_ms < 0) {
            while (!ex->done_head)
                pthread_cond_wait(&ex->done_cv, &ex->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (!ex->done_head) {
                if (pthread_cond_timedwait(&ex->done_cv, &ex->mu, &ts) == ETIMEDOUT)
                    break;
            }
        }
    }
    pthread_mutex_unlock(&ex->mu);
}

int executor_run(struct executor *ex, int64_t apply_id, struct rv_error *err)
{
    int rc = 0;
    for (;;) {
        size_t started = 0;
        int64_t at = 0;
        rc = executor_step(&started, ex, err);
        if (rc != 0)
            break;
        if (!executor_apply_active(ex, apply_id))
            break;
        if (ex->ninflight > 0) {
            executor_wait(ex, -1);
            continue;
        }
        if (started > 0)
            continue;
        if (next_wake(&at, ex, ex_now(ex)) == 0) {
            ex->opts.sleep_until(at, ex->opts.clock_ud);
            continue;
        }
        rc = rv_error_set(err, RV_EBUSY, true,
                          "apply %lld cannot progress now: its ready actions are in a "
                          "paused namespace, or wait for a run this executor does not own "
                          "(is a second reeve running on this database?)",
                          (long long)apply_id);
        break;
    }
    return rc;
}

const struct executor_metrics *executor_metrics(const struct executor *ex)
{
    return &ex->metrics;
}
