/* test_provider.c - reconciler/provider.c against the Python test provider
 * (providers/test/reeve-provider-test): handshake, describe, version
 * mismatch, create/list/delete/resize, idempotent creates checked in the
 * provider's state file (also across a restart), concurrent calls from four
 * threads with replies out of order, and faults: crash, hang (with a helper
 * process that must die too), a call in flight when another one hangs,
 * garbage, oversized and mistyped frames, a result of the wrong shape, a
 * silent hello, the restart budget. Also stderr forwarding, descriptors not
 * leaking into the child, and every frame both sides sent checked against
 * specs-schema/provider-protocol.schema.json. Every wait is bounded by a
 * deadline given to the client; tests assert on elapsed time where a fault
 * must be noticed quickly. */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "diag.h"
#include "doc.h"
#include "limits.h"
#include "log.h"
#include "provider.h"
#include "schema.h"

#define DEADLINE_MS 5000
#define THREADS 4
#define CALLS_PER_THREAD 12

struct fixture {
    char dir[64];
    char state[128];
    char script[1024];
    char *env[8];
    size_t nenv;
    char *argv[2];
    struct provider_config cfg;
    struct provider *p;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void env_add(struct fixture *fx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void env_add(struct fixture *fx, const char *fmt, ...)
{
    assert_true(fx->nenv + 1 < sizeof(fx->env) / sizeof(fx->env[0]));
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    fx->env[fx->nenv] = strdup(tmp);
    assert_non_null(fx->env[fx->nenv]);
    fx->nenv++;
    fx->env[fx->nenv] = NULL;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/reeve-provider-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->state, sizeof(fx->state), "%s/state.json", fx->dir);
    const char *src = getenv("REEVE_SOURCE_DIR");
    snprintf(fx->script, sizeof(fx->script), "%s/providers/test/reeve-provider-test",
             src != NULL ? src : ".");
    fx->argv[0] = fx->script;
    fx->argv[1] = NULL;
    const char *path = getenv("PATH");
    env_add(fx, "PATH=%s", path != NULL ? path : "/usr/bin:/bin");
    env_add(fx, "REEVE_PROVIDER_TEST_STATE=%s", fx->state);
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT_ONCE=%s/fault", fx->dir);
    fx->cfg.name = "test";
    fx->cfg.argv = fx->argv;
    fx->cfg.env = fx->env;
    fx->cfg.deadline_grace_ms = 200;
    fx->cfg.kill_grace_ms = 500;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    provider_stop(fx->p);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < fx->nenv; i++)
        free(fx->env[i]);
    free(fx);
    return 0;
}

static void start(struct fixture *fx)
{
    struct rv_error err = {0};
    int rc = provider_start(&fx->p, &fx->cfg, &err);
    if (rc != 0)
        fail_msg("provider_start: %s", err.msg);
    assert_non_null(fx->p);
}

static json_t *create_params(const char *name)
{
    json_t *j = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:{s:i, s:i, s:i}, s:{s:{s:s}}}",
                          "name", name, "labels", "reeve.io/cluster", "payments/billing",
                          "reeve.io/node", name, "engine", "postgresql", "version", "16", "region",
                          "local-1", "resources", "cpu", 1, "memoryMiB", 1024, "storageGiB", 10,
                          "agent", "config", "cluster", "payments/billing");
    assert_non_null(j);
    return j;
}

/* Create an instance; returns its id (free it). */
static char *create(struct provider *p, const char *name, const char *key)
{
    json_t *params = create_params(name);
    json_t *res = NULL;
    struct rv_error err = {0};
    int rc = provider_call(&res, p, "create_instance", params, DEADLINE_MS, key, &err);
    json_decref(params);
    if (rc != 0)
        fail_msg("create_instance %s: %s", name, err.msg);
    const char *id = json_string_value(json_object_get(json_object_get(res, "instance"), "id"));
    assert_non_null(id);
    char *out = strdup(id);
    json_decref(res);
    return out;
}

static size_t list_count(struct provider *p, const char *cluster)
{
    json_t *params = json_pack("{s:{s:s}}", "labels", "reeve.io/cluster", cluster);
    json_t *res = NULL;
    struct rv_error err = {0};
    int rc = provider_call(&res, p, "list_instances", params, DEADLINE_MS, NULL, &err);
    json_decref(params);
    if (rc != 0)
        fail_msg("list_instances: %s", err.msg);
    json_t *insts = json_object_get(res, "instances");
    assert_true(json_is_array(insts));
    size_t n = json_array_size(insts);
    json_decref(res);
    return n;
}

/* Instances in the provider's own state file. */
static size_t state_instances(struct fixture *fx)
{
    json_error_t jerr;
    json_t *st = json_load_file(fx->state, 0, &jerr);
    if (st == NULL)
        return 0;
    size_t n = json_object_size(json_object_get(st, "instances"));
    json_decref(st);
    return n;
}

static void test_handshake_describe(void **state)
{
    struct fixture *fx = *state;
    start(fx);
    const json_t *d = provider_describe(fx->p);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "test");
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "regions"), 0)),
                        "local-1");
    assert_non_null(json_object_get(json_object_get(d, "engines"), "postgresql"));
    assert_true(provider_has_capability(fx->p, "resize"));
    assert_true(provider_has_capability(fx->p, "volumes"));
    assert_false(provider_has_capability(fx->p, "snapshots"));
    assert_string_equal(provider_name(fx->p), "test");
    assert_int_equal(provider_starts(fx->p), 1);

    json_t *res = NULL;
    struct rv_error err = {0};
    assert_int_equal(provider_call(&res, fx->p, "describe", NULL, DEADLINE_MS, NULL, &err), 0);
    assert_string_equal(json_string_value(json_object_get(res, "version")), "0.1.0");
    json_decref(res);
}

static void test_version_mismatch(void **state)
{
    struct fixture *fx = *state;
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=bad_version");
    struct rv_error err = {0};
    int rc = provider_start(&fx->p, &fx->cfg, &err);
    assert_int_equal(rc, RV_EPROTO);
    assert_null(fx->p);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "provider 'test' speaks protocol 2; reeve speaks 1"));
}

static void test_missing_executable(void **state)
{
    struct fixture *fx = *state;
    char *argv[] = {"/nonexistent/reeve-provider-nope", NULL};
    fx->cfg.argv = argv;
    struct rv_error err = {0};
    assert_int_equal(provider_start(&fx->p, &fx->cfg, &err), RV_ENOTFOUND);
    assert_null(fx->p);
    assert_non_null(strstr(err.msg, "reeve-provider-nope"));
    fx->cfg.argv = fx->argv;
}

static void test_silent_hello(void **state)
{
    struct fixture *fx = *state;
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=silent_hello");
    fx->cfg.hello_timeout_ms = 300;
    struct rv_error err = {0};
    int64_t t0 = mono_ms();
    assert_int_equal(provider_start(&fx->p, &fx->cfg, &err), RV_ETIMEOUT);
    assert_true(err.retryable);
    assert_true(mono_ms() - t0 < 5000);
    assert_non_null(strstr(err.msg, "no hello within 300 ms"));
}

static void test_create_list_delete(void **state)
{
    struct fixture *fx = *state;
    start(fx);
    struct rv_error err = {0};
    json_t *res = NULL;
    assert_int_equal(list_count(fx->p, "payments/billing"), 0);
    char *id0 = create(fx->p, "billing-0", "key-0");
    char *id1 = create(fx->p, "billing-1", "key-1");
    assert_string_not_equal(id0, id1);
    assert_int_equal(list_count(fx->p, "payments/billing"), 2);
    assert_int_equal(list_count(fx->p, "payments/other"), 0);

    /* resize */
    json_t *params = json_pack("{s:s, s:{s:i, s:i, s:i}}", "id", id1, "resources", "cpu", 4,
                               "memoryMiB", 8192, "storageGiB", 20);
    assert_int_equal(
        provider_call(&res, fx->p, "resize_instance", params, DEADLINE_MS, "resize-1", &err), 0);
    json_decref(params);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(res, "instance"), "resources"), "cpu")),
                     4);
    json_decref(res);

    /* delete, twice: a missing instance is already deleted */
    params = json_pack("{s:s}", "id", id0);
    assert_int_equal(
        provider_call(&res, fx->p, "delete_instance", params, DEADLINE_MS, "del-0", &err), 0);
    json_decref(res);
    assert_int_equal(
        provider_call(&res, fx->p, "delete_instance", params, DEADLINE_MS, "del-0b", &err), 0);
    json_decref(res);
    json_decref(params);
    assert_int_equal(list_count(fx->p, "payments/billing"), 1);
    assert_int_equal(state_instances(fx), 1);

    /* errors the provider reports keep their code and retryable flag */
    params = json_pack("{s:s, s:{s:i, s:i, s:i}}", "id", "i-999999", "resources", "cpu", 1,
                       "memoryMiB", 1024, "storageGiB", 10);
    assert_int_equal(
        provider_call(&res, fx->p, "resize_instance", params, DEADLINE_MS, "resize-x", &err),
        RV_ENOTFOUND);
    json_decref(params);
    assert_null(res);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "provider 'test': no instance 'i-999999'"));

    params = create_params("billing-2");
    json_object_set_new(params, "engine", json_string("oracle"));
    assert_int_equal(
        provider_call(&res, fx->p, "create_instance", params, DEADLINE_MS, "key-2", &err),
        RV_EINVAL);
    assert_non_null(strstr(err.msg, "engine 'oracle' is not offered"));

    /* mistakes of the caller are caught before anything is sent */
    assert_int_equal(provider_call(&res, fx->p, "create_instance", params, DEADLINE_MS, NULL, &err),
                     RV_EINVAL);
    assert_non_null(strstr(err.msg, "needs an idempotency key"));
    assert_int_equal(provider_call(&res, fx->p, "Bad-Method", NULL, DEADLINE_MS, NULL, &err),
                     RV_EINVAL);
    assert_int_equal(provider_call(&res, fx->p, "list_instances", NULL, 0, NULL, &err), RV_EINVAL);
    json_decref(params);
    /* a request over the frame cap is refused, and the provider stays */
    char *big = malloc(RV_PROVIDER_FRAME_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', RV_PROVIDER_FRAME_MAX);
    big[RV_PROVIDER_FRAME_MAX] = '\0';
    params = json_pack("{s:{s:s}}", "labels", "big", big);
    free(big);
    assert_int_equal(provider_call(&res, fx->p, "list_instances", params, DEADLINE_MS, NULL, &err),
                     RV_ELIMIT);
    assert_false(err.retryable);
    json_decref(params);
    assert_int_equal(list_count(fx->p, "payments/billing"), 1);
    /* the provider is still the first one */
    assert_int_equal(provider_starts(fx->p), 1);
    free(id0);
    free(id1);
}

static void test_idempotent_create(void **state)
{
    struct fixture *fx = *state;
    start(fx);
    char *a = create(fx->p, "billing-0", "same-key");
    char *b = create(fx->p, "billing-0", "same-key");
    assert_string_equal(a, b);
    assert_int_equal(state_instances(fx), 1);
    /* also after a restart of the provider: keys are persisted */
    provider_stop(fx->p);
    fx->p = NULL;
    start(fx);
    char *c = create(fx->p, "billing-0", "same-key");
    assert_string_equal(a, c);
    assert_int_equal(state_instances(fx), 1);
    /* a new key for the same name is a conflict, not a second instance */
    json_t *params = create_params("billing-0");
    json_t *res = NULL;
    struct rv_error err = {0};
    assert_int_equal(
        provider_call(&res, fx->p, "create_instance", params, DEADLINE_MS, "other-key", &err),
        RV_ECONFLICT);
    json_decref(params);
    assert_int_equal(state_instances(fx), 1);
    free(a);
    free(b);
    free(c);
}

struct worker {
    struct provider *p;
    int no;
    int failures;
    char ids[CALLS_PER_THREAD][32];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        char name[32], key[32];
        snprintf(name, sizeof(name), "w%d-%d", w->no, i);
        snprintf(key, sizeof(key), "key-%d-%d", w->no, i);
        json_t *params = create_params(name);
        json_t *res = NULL;
        struct rv_error err = {0};
        if (provider_call(&res, w->p, "create_instance", params, DEADLINE_MS, key, &err) != 0) {
            w->failures++;
        } else {
            const json_t *inst = json_object_get(res, "instance");
            const char *id = json_string_value(json_object_get(inst, "id"));
            const char *got = json_string_value(json_object_get(inst, "name"));
            /* the reply matched to this call is the one for this call */
            if (id == NULL || got == NULL || strcmp(got, name) != 0)
                w->failures++;
            else
                snprintf(w->ids[i], sizeof(w->ids[i]), "%s", id);
        }
        json_decref(res);
        json_decref(params);
        res = NULL;
        if (provider_call(&res, w->p, "describe", NULL, DEADLINE_MS, NULL, &err) != 0)
            w->failures++;
        json_decref(res);
    }
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    struct fixture *fx = *state;
    char trace[256];
    snprintf(trace, sizeof(trace), "%s/trace.jsonl", fx->dir);
    env_add(fx, "REEVE_PROVIDER_TEST_CONCURRENT=1");
    env_add(fx, "REEVE_PROVIDER_TEST_TRACE=%s", trace);
    start(fx);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < THREADS; i++) {
        w[i].p = fx->p;
        w[i].no = i;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    for (int i = 0; i < THREADS * CALLS_PER_THREAD; i++) {
        for (int j = i + 1; j < THREADS * CALLS_PER_THREAD; j++)
            assert_string_not_equal(w[i / CALLS_PER_THREAD].ids[i % CALLS_PER_THREAD],
                                    w[j / CALLS_PER_THREAD].ids[j % CALLS_PER_THREAD]);
    }
    assert_int_equal(state_instances(fx), THREADS * CALLS_PER_THREAD);
    assert_int_equal(provider_starts(fx->p), 1);
    /* the replies really came out of order, and each found its caller */
    FILE *f = fopen(trace, "r");
    assert_non_null(f);
    static char line[64 * 1024];
    json_int_t last = 0;
    size_t replies = 0, reordered = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        if (strcmp(json_string_value(json_object_get(j, "type")), "reply") == 0) {
            json_int_t id = json_integer_value(json_object_get(j, "id"));
            replies++;
            if (id < last)
                reordered++;
            last = id;
        }
        json_decref(j);
    }
    fclose(f);
    assert_int_equal(replies, 2 * THREADS * CALLS_PER_THREAD);
    assert_true(reordered > 0);
}

static void test_crash_restart(void **state)
{
    struct fixture *fx = *state;
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=crash_on:create_instance");
    start(fx);
    json_t *params = create_params("billing-0");
    json_t *res = NULL;
    struct rv_error err = {0};
    int64_t t0 = mono_ms();
    int rc = provider_call(&res, fx->p, "create_instance", params, DEADLINE_MS, "k0", &err);
    assert_int_equal(rc, RV_EUNAVAIL);
    assert_true(err.retryable);
    assert_true(mono_ms() - t0 < DEADLINE_MS);
    assert_non_null(strstr(err.msg, "exited with status 3"));
    /* the retry (same key) goes to a new child and creates one instance */
    assert_int_equal(provider_call(&res, fx->p, "create_instance", params, DEADLINE_MS, "k0", &err),
                     0);
    json_decref(res);
    json_decref(params);
    assert_int_equal(provider_starts(fx->p), 2);
    assert_int_equal(state_instances(fx), 1);
}

/* Whether pid has exited (gone, or a zombie nobody reaped yet), waiting up
 * to 2 s. */
static bool process_gone(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int64_t until = mono_ms() + 2000;
    while (mono_ms() < until) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return true;
        char state = '?';
        int n = fscanf(f, "%*d (%*[^)]) %c", &state);
        fclose(f);
        if (n == 1 && (state == 'Z' || state == 'X'))
            return true;
        usleep(20000);
    }
    return false;
}

static void test_hang_killed(void **state)
{
    struct fixture *fx = *state;
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=hang_on:list_instances,grandchild");
    start(fx);
    json_t *res = NULL;
    struct rv_error err = {0};
    int64_t t0 = mono_ms();
    int rc = provider_call(&res, fx->p, "list_instances", NULL, 300, NULL, &err);
    int64_t took = mono_ms() - t0;
    assert_int_equal(rc, RV_ETIMEOUT);
    assert_true(err.retryable);
    assert_non_null(strstr(err.msg, "did not answer list_instances within its deadline"));
    /* deadline 300 + grace 200, then SIGTERM (the Python provider dies on it) */
    assert_true(took >= 500);
    assert_true(took < 3000);
    assert_int_equal(list_count(fx->p, "payments/billing"), 0);
    assert_int_equal(provider_starts(fx->p), 2);
    /* the helper the provider started went with it */
    char path[256];
    snprintf(path, sizeof(path), "%s.grandchild", fx->state);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    assert_true(pid > 1);
    assert_true(process_gone(pid));
}

struct slow_call {
    struct provider *p;
    int rc;
    struct rv_error err;
    int64_t took;
};

static void *slow_call_main(void *arg)
{
    struct slow_call *sc = arg;
    json_t *res = NULL;
    int64_t t0 = mono_ms();
    sc->rc = provider_call(&res, sc->p, "describe", NULL, DEADLINE_MS, NULL, &sc->err);
    sc->took = mono_ms() - t0;
    json_decref(res);
    return NULL;
}

/* A call that is fine but in flight when another one hangs the provider
 * fails at once, retryably, when the hung provider is killed. */
static void test_inflight_fail_on_kill(void **state)
{
    struct fixture *fx = *state;
    env_add(fx, "REEVE_PROVIDER_TEST_CONCURRENT=1");
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=hang_on:list_instances,slow_on:describe");
    start(fx);
    struct slow_call sc = {.p = fx->p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_call_main, &sc), 0);
    usleep(100 * 1000);
    json_t *res = NULL;
    struct rv_error err = {0};
    assert_int_equal(provider_call(&res, fx->p, "list_instances", NULL, 300, NULL, &err),
                     RV_ETIMEOUT);
    pthread_join(t, NULL);
    assert_int_equal(sc.rc, RV_EUNAVAIL);
    assert_true(sc.err.retryable);
    assert_non_null(strstr(sc.err.msg, "missed the deadline of list_instances"));
    /* killed with the hung call (~500 ms), not answered after 2 s */
    assert_true(sc.took < 1800);
    assert_int_equal(provider_call(&res, fx->p, "describe", NULL, DEADLINE_MS, NULL, &err), 0);
    json_decref(res);
    assert_int_equal(provider_starts(fx->p), 2);
}

static void test_bad_frames(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *fault;
        const char *msg;
    } cases[] = {
        {"garbage_on", "malformed JSON"},
        {"oversize_on", "a frame longer than 1048576 bytes"},
        {"unknown_id_on", "reply for unknown id"},
        {"badtype_on", "reply.id must be a positive integer"},
        {"badresult_on", "list_instances result: instances[0].id must be a non-empty string"},
    };
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=garbage_on:list_instances,oversize_on:list_instances,"
                "unknown_id_on:list_instances,badtype_on:list_instances,"
                "badresult_on:list_instances");
    /* A fresh provider per case: each fault fires once, in this order, and
     * the restart after it stays within the budget. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        start(fx);
        json_t *res = NULL;
        struct rv_error err = {0};
        int rc = provider_call(&res, fx->p, "list_instances", NULL, DEADLINE_MS, NULL, &err);
        if (rc != RV_EPROTO || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("%s: got %d '%s'", cases[i].fault, rc, err.msg);
        assert_true(err.retryable);
        assert_null(res);
        /* the next call goes to a new child */
        assert_int_equal(provider_call(&res, fx->p, "describe", NULL, DEADLINE_MS, NULL, &err), 0);
        json_decref(res);
        assert_int_equal(provider_starts(fx->p), 2);
        provider_stop(fx->p);
        fx->p = NULL;
    }
}

static void test_restart_budget(void **state)
{
    struct fixture *fx = *state;
    /* no FAULT_ONCE: every describe kills the child */
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=crash_on:describe");
    free(fx->env[2]);
    fx->env[2] = strdup("REEVE_PROVIDER_TEST_FAULT_ONCE=");
    start(fx);
    int rc = 0;
    struct rv_error err = {0};
    int64_t t0 = mono_ms();
    for (int i = 0; i < RV_PROVIDER_RESTARTS_PER_MIN + 2; i++) {
        json_t *res = NULL;
        rc = provider_call(&res, fx->p, "describe", NULL, DEADLINE_MS, NULL, &err);
        assert_int_not_equal(rc, 0);
        assert_true(err.retryable);
    }
    assert_int_equal(rc, RV_EUNAVAIL);
    assert_non_null(strstr(err.msg, "times in the last minute"));
    assert_int_equal(provider_starts(fx->p), RV_PROVIDER_RESTARTS_PER_MIN);
    assert_true(mono_ms() - t0 < 20000);
}

/* Read what was written to the captured stderr file, waiting up to 5 s for
 * needle. */
static bool wait_for_log(const char *path, const char *needle)
{
    int64_t until = mono_ms() + 5000;
    static char text[512 * 1024];
    while (mono_ms() < until) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t n = fread(text, 1, sizeof(text) - 1, f);
            text[n] = '\0';
            fclose(f);
            if (strstr(text, needle) != NULL)
                return true;
        }
        usleep(20000);
    }
    return false;
}

static void test_stderr_forwarded(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    snprintf(path, sizeof(path), "%s/stderr.log", fx->dir);
    env_add(fx, "REEVE_PROVIDER_TEST_FAULT=longlog_on:describe");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);

    /* a descriptor reeve holds without close-on-exec must not leak */
    int leak = open("/dev/null", O_RDONLY);
    assert_true(leak > 2);
    log_set_level(LOG_INFO);
    start(fx);
    json_t *res = NULL;
    struct rv_error err = {0};
    int rc = provider_call(&res, fx->p, "describe", NULL, DEADLINE_MS, NULL, &err);
    json_decref(res);
    bool saw_call = wait_for_log(path, "provider: test: reeve-provider-test: describe id=1");
    bool saw_cut = wait_for_log(path, "xxxx (line cut)");
    bool saw_fds = wait_for_log(path, "provider: test: reeve-provider-test: started; inherited "
                                      "fds: none");
    close(leak);
    provider_stop(fx->p);
    fx->p = NULL;
    bool saw_exit = wait_for_log(path, "provider: test: reeve-provider-test: stdin closed");

    log_set_level(LOG_WARN);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    assert_true(saw_call);
    assert_true(saw_cut);
    assert_true(saw_fds);
    assert_true(saw_exit);
}

/* The protocol schema with its root replaced by {"$ref": "#/$defs/<def>"}
 * (def NULL keeps the root: any frame). */
static struct schema *protocol_schema(const char *def)
{
    char path[1024];
    const char *src = getenv("REEVE_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/specs-schema/provider-protocol.schema.json",
             src != NULL ? src : ".");
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        fail_msg("%s: %s", path, jerr.text);
    if (def != NULL) {
        char ref[128];
        snprintf(ref, sizeof(ref), "#/$defs/%s", def);
        assert_non_null(json_object_get(json_object_get(j, "$defs"), def));
        json_object_del(j, "oneOf");
        json_object_set_new(j, "$ref", json_string(ref));
    }
    char *text = json_dumps(j, 0);
    json_decref(j);
    struct schema *s = NULL;
    struct rv_error err = {0};
    if (schema_parse(&s, text, strlen(text), &err) != 0)
        fail_msg("schema_parse %s: %s", def != NULL ? def : "(root)", err.msg);
    free(text);
    return s;
}

/* Errors of one JSON text against s; the first is copied to first. */
static size_t schema_errors(const struct schema *s, const char *json, char *first, size_t cap)
{
    struct diag_list diags;
    diag_list_init(&diags);
    struct doc_file *f = NULL;
    size_t n = 0;
    if (doc_parse(&f, DOC_FORMAT_JSON, "frame", json, strlen(json), &diags) != 0)
        n = 1;
    else
        n = schema_validate(s, f->docs[0], "frame", "", &diags);
    first[0] = '\0';
    if (diags.len > 0)
        snprintf(first, cap, "%s: %s", diags.items[0].path != NULL ? diags.items[0].path : "",
                 diags.items[0].msg);
    doc_file_free(f);
    diag_list_release(&diags);
    return n;
}

static void call_ok(struct provider *p, const char *method, json_t *params, const char *key,
                    json_t **out)
{
    json_t *res = NULL;
    struct rv_error err = {0};
    if (provider_call(&res, p, method, params, DEADLINE_MS, key, &err) != 0)
        fail_msg("%s: %s", method, err.msg);
    json_decref(params);
    if (out != NULL)
        *out = res;
    else
        json_decref(res);
}

static void test_frames_match_schema(void **state)
{
    struct fixture *fx = *state;
    char trace[256];
    snprintf(trace, sizeof(trace), "%s/trace.jsonl", fx->dir);
    env_add(fx, "REEVE_PROVIDER_TEST_TRACE=%s", trace);
    start(fx);
    char *id = create(fx->p, "billing-0", "k-create");
    json_t *res = NULL;
    call_ok(fx->p, "list_instances", json_pack("{s:{s:s}}", "labels", "reeve.io/node", "billing-0"),
            NULL, NULL);
    call_ok(fx->p, "list_instances", json_object(), NULL, NULL);
    call_ok(fx->p, "describe", NULL, NULL, NULL);
    call_ok(fx->p, "resize_instance",
            json_pack("{s:s, s:{s:i, s:i, s:i}}", "id", id, "resources", "cpu", 2, "memoryMiB",
                      2048, "storageGiB", 20),
            "k-resize", NULL);
    call_ok(fx->p, "create_volume",
            json_pack("{s:s, s:{s:s}, s:i, s:s}", "name", "billing-0-data", "labels",
                      "reeve.io/node", "billing-0", "sizeGiB", 20, "region", "local-1"),
            "k-vol", &res);
    const char *vid = json_string_value(json_object_get(json_object_get(res, "volume"), "id"));
    assert_non_null(vid);
    call_ok(fx->p, "attach_volume", json_pack("{s:s, s:s}", "id", vid, "instance_id", id),
            "k-attach", NULL);
    call_ok(fx->p, "list_volumes", json_object(), NULL, NULL);
    call_ok(fx->p, "detach_volume", json_pack("{s:s}", "id", vid), "k-detach", NULL);
    call_ok(fx->p, "delete_volume", json_pack("{s:s}", "id", vid), "k-vol-del", NULL);
    json_decref(res);
    call_ok(fx->p, "delete_instance", json_pack("{s:s}", "id", id), "k-delete", NULL);
    /* an error reply */
    struct rv_error err = {0};
    json_t *params = json_pack("{s:s}", "id", "v-missing");
    assert_int_equal(provider_call(&res, fx->p, "detach_volume", params, DEADLINE_MS, "k-x", &err),
                     RV_ENOTFOUND);
    json_decref(params);
    provider_stop(fx->p);
    fx->p = NULL;
    free(id);

    struct schema *frame = protocol_schema(NULL);
    FILE *f = fopen(trace, "r");
    assert_non_null(f);
    static char line[256 * 1024];
    char first[RV_ERROR_MSG_MAX];
    char methods[64][RV_PROVIDER_METHOD_MAX + 1]; /* by request id */
    memset(methods, 0, sizeof(methods));
    size_t frames = 0, results = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        frames++;
        if (schema_errors(frame, line, first, sizeof(first)) != 0)
            fail_msg("frame %zu does not match the schema: %s\n%s", frames, first, line);
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        const char *type = json_string_value(json_object_get(j, "type"));
        json_int_t rid = json_integer_value(json_object_get(j, "id"));
        assert_true(rid >= 0 && rid < 64);
        if (strcmp(type, "request") == 0) {
            snprintf(methods[rid], sizeof(methods[rid]), "%s",
                     json_string_value(json_object_get(j, "method")));
        } else if (strcmp(type, "reply") == 0 && json_object_get(j, "result") != NULL) {
            char def[128];
            snprintf(def, sizeof(def), "%s_result", methods[rid]);
            struct schema *rs = protocol_schema(def);
            char *text = json_dumps(json_object_get(j, "result"), 0);
            if (schema_errors(rs, text, first, sizeof(first)) != 0)
                fail_msg("result of %s does not match $defs/%s: %s\n%s", methods[rid], def, first,
                         text);
            free(text);
            schema_free(rs);
            results++;
        }
        json_decref(j);
    }
    fclose(f);
    /* hello, hello, 12 requests, 12 replies (one an error) */
    assert_int_equal(frames, 26);
    assert_int_equal(results, 11);

    /* the schema is not a rubber stamp */
    static const char *const bad[] = {
        "{\"type\":\"request\",\"method\":\"describe\",\"deadline_ms\":10,\"params\":{}}",
        "{\"type\":\"request\",\"id\":1,\"method\":\"create_instance\",\"deadline_ms\":10,"
        "\"params\":{}}",
        "{\"type\":\"reply\",\"id\":1,\"result\":{},\"error\":{\"code\":\"internal\","
        "\"retryable\":true,\"message\":\"x\"}}",
        "{\"type\":\"reply\",\"id\":1,\"error\":{\"code\":\"oops\",\"retryable\":true,"
        "\"message\":\"x\"}}",
        "{\"type\":\"hello\",\"protocol_version\":1,\"capabilities\":[],\"describe\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (schema_errors(frame, bad[i], first, sizeof(first)) == 0)
            fail_msg("the schema accepts a bad frame: %s", bad[i]);
    }
    schema_free(frame);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_describe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_executable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_fail_on_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stderr_forwarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_match_schema, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
