/* test_runners.c - reconciler/runners.c against the Python test provider
 * (providers/test/reeve-provider-test): provision_instance sends the
 * create_instance parameters of the contract (labels, agent config,
 * secrets) with the action's idempotency key, is found by check(), and a
 * second run with the same key after the instance's record was lost makes
 * no second instance; remove_replica deletes it and forgets the node; waits
 * on node reports; final_backup and the unsupported kinds; the replication
 * password derivation; and the status JSON shape. */
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "diag.h"
#include "log.h"
#include "runners.h"
#include "schema.h"
#include "serve.h"
#include "source.h"
#include "spec.h"
#include "tutil.h"

/* The serve test runs the loop in a thread; libh2o keeps recycled buffers
 * in thread-local free lists that nothing frees when a thread ends. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}

#define KEY1 "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY2 "2222222222222222222222222222222222222222222222222222222222222222"

static const char SPEC_YAML[] = "apiVersion: reeve/v1\n"
                                "kind: DatabaseCluster\n"
                                "metadata: {name: billing, namespace: payments}\n"
                                "spec:\n"
                                "  engine: postgresql\n"
                                "  version: \"16\"\n"
                                "  provider: test\n"
                                "  region: local-1\n"
                                "  instances: 2\n"
                                "  resources: {cpu: 2, memoryMiB: 1024, storageGiB: 10}\n"
                                "  parameters: {max_connections: \"200\"}\n"
                                "  replication: {maxLagOnFailoverBytes: 4096}\n"
                                "  users: [{name: app, roles: [readwrite], passwordRef: "
                                "\"env:APP_PW\"}]\n";

struct fixture {
    char dir[64];
    char state[128];
    char script[1024];
    char *env[4];
    char *argv[2];
    struct provider *p;
    struct runners *r;
    struct spec_set set;
    int tokens_issued;
    char last_token[AGENTAPI_TOKEN_HEX_SIZE];
    int forgotten;
    int64_t now;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int issue_token(const char *token, const char *ns, const char *cluster, const char *node,
                       struct rv_error *err, void *ud)
{
    struct fixture *fx = ud;
    (void)err;
    assert_string_equal(ns, "payments");
    assert_string_equal(cluster, "billing");
    assert_non_null(node);
    assert_int_equal(strlen(token), AGENTAPI_TOKEN_HEX_SIZE - 1);
    snprintf(fx->last_token, sizeof(fx->last_token), "%s", token);
    fx->tokens_issued++;
    return 0;
}

static int forget_node(const char *ns, const char *cluster, const char *node, struct rv_error *err,
                       void *ud)
{
    struct fixture *fx = ud;
    (void)ns;
    (void)cluster;
    (void)node;
    (void)err;
    fx->forgotten++;
    return 0;
}

static int64_t clock_now(void *ud)
{
    struct fixture *fx = ud;
    return fx->now;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct rv_error err = {0};
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/reeve-runners-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->state, sizeof(fx->state), "%s/state.json", fx->dir);
    const char *src = getenv("REEVE_SOURCE_DIR");
    snprintf(fx->script, sizeof(fx->script), "%s/providers/test/reeve-provider-test",
             src != NULL ? src : ".");
    fx->argv[0] = fx->script;
    char tmp[1200];
    const char *path = getenv("PATH");
    snprintf(tmp, sizeof(tmp), "PATH=%s", path != NULL ? path : "/usr/bin:/bin");
    fx->env[0] = strdup(tmp);
    snprintf(tmp, sizeof(tmp), "REEVE_PROVIDER_TEST_STATE=%s", fx->state);
    fx->env[1] = strdup(tmp);
    struct provider_config cfg = {.name = "test", .argv = fx->argv, .env = fx->env};
    if (provider_start(&fx->p, &cfg, &err) != 0) {
        fprintf(stderr, "provider_start: %s\n", err.msg);
        return -1;
    }
    fx->now = 1700000000;
    struct runners_opts o = {
        .agent_url = "http://127.0.0.1:8080",
        .agent_ttl_ms = 3000,
        .agent_tick_ms = 300,
        .poll_ms = 10,
        .issue_token = issue_token,
        .forget_node = forget_node,
        .ud = fx,
        .now = clock_now,
    };
    memset(o.secret_key, 7, sizeof(o.secret_key));
    if (runners_new(&fx->r, &o, &err) != 0 || runners_add_provider(fx->r, "test", fx->p, &err))
        return -1;
    spec_set_init(&fx->set);
    struct diag_list diags;
    diag_list_init(&diags);
    int rc = spec_set_add_buffer(&fx->set, SPEC_FILE_CLUSTERS, "clusters/billing.yaml", SPEC_YAML,
                                 strlen(SPEC_YAML), &diags);
    bool bad = rc != 0 || fx->set.nclusters != 1 || diags.errors > 0;
    if (bad)
        diag_list_print(stderr, &diags);
    diag_list_release(&diags);
    if (bad || runners_set_desired(fx->r, &fx->set, &err) != 0)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    runners_free(fx->r);
    provider_stop(fx->p);
    spec_set_release(&fx->set);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->env[0]);
    free(fx->env[1]);
    free(fx);
    return 0;
}

static void action_init(struct journal_action *a, const char *kind, const char *node,
                        const char *key)
{
    memset(a, 0, sizeof(*a));
    a->id = (char *)"payments/billing/x/0";
    a->kind = (char *)kind;
    a->cluster = (char *)"payments/billing";
    a->node = (char *)node;
    a->provider = (char *)"test";
    a->idempotency_key = (char *)key;
}

/* The key the provider sees: the plan's key bound to the apply. */
static void provider_key(char out[CRYPTO_SHA256_HEX_SIZE], const char *plan_key, int64_t apply_id)
{
    char material[256];
    int n = snprintf(material, sizeof(material), "%s:apply-%lld", plan_key, (long long)apply_id);
    assert_true(n > 0 && (size_t)n < sizeof(material));
    assert_int_equal(crypto_sha256_hex(out, material, (size_t)n), 0);
}

static json_t *load_state(struct fixture *fx)
{
    json_error_t je;
    json_t *st = json_load_file(fx->state, 0, &je);
    assert_non_null(st);
    return st;
}

static int run(struct fixture *fx, char **out, const struct journal_action *a, struct rv_error *err)
{
    struct executor_runner er;
    runners_executor_runner(&er, fx->r);
    *out = NULL;
    return er.run(out, a, a->idempotency_key, fx->now + 30, err, er.ud);
}

static bool check(struct fixture *fx, const struct journal_action *a)
{
    struct executor_runner er;
    struct rv_error err = {0};
    bool done = true;
    runners_executor_runner(&er, fx->r);
    int rc = er.check(&done, a, a->idempotency_key, &err, er.ud);
    if (rc != 0)
        fail_msg("check: %s", err.msg);
    return done;
}

static void test_provision_remove(void **state)
{
    struct fixture *fx = *state;
    struct journal_action a;
    struct rv_error err = {0};
    char *out = NULL;

    action_init(&a, "provision_instance", "billing-0", KEY1);
    assert_false(check(fx, &a));
    if (run(fx, &out, &a, &err) != 0)
        fail_msg("run: %s", err.msg);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"id\":\"i-000001\""));
    free(out);
    assert_true(check(fx, &a));
    assert_int_equal(fx->tokens_issued, 1);

    /* What the provider was asked for: the contract's parameters. */
    json_t *st = load_state(fx);
    json_t *inst = json_object_get(json_object_get(st, "instances"), "i-000001");
    assert_non_null(inst);
    json_t *labels = json_object_get(inst, "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "reeve.io/cluster")),
                        "payments/billing");
    assert_string_equal(json_string_value(json_object_get(labels, "reeve.io/node")), "billing-0");
    assert_string_equal(json_string_value(json_object_get(labels, "reeve.io/managed-by")), "reeve");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(inst, "resources"), "cpu")),
                     2);
    char sent[CRYPTO_SHA256_HEX_SIZE];
    provider_key(sent, KEY1, a.apply_id);
    assert_non_null(json_object_get(json_object_get(st, "keys"), sent));
    assert_null(json_object_get(json_object_get(st, "keys"), KEY1));
    json_decref(st);

    char cfgpath[256];
    snprintf(cfgpath, sizeof(cfgpath), "%s/agents/i-000001.json", fx->dir);
    json_error_t je;
    json_t *cfg = json_load_file(cfgpath, 0, &je);
    assert_non_null(cfg);
    assert_string_equal(json_string_value(json_object_get(cfg, "node")), "billing-0");
    assert_string_equal(json_string_value(json_object_get(cfg, "cluster")), "payments/billing");
    assert_string_equal(json_string_value(json_object_get(cfg, "reconciler")),
                        "http://127.0.0.1:8080");
    assert_int_equal(json_integer_value(json_object_get(cfg, "ttl_ms")), 3000);
    assert_int_equal(json_integer_value(json_object_get(cfg, "tick_ms")), 300);
    assert_int_equal(json_integer_value(json_object_get(cfg, "max_lag_on_failover_bytes")), 4096);
    json_t *eng = json_object_get(cfg, "engine");
    assert_string_equal(json_string_value(json_object_get(eng, "type")), "postgresql");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(eng, "parameters"), "max_connections")),
        "200");
    /* secrets are not part of the config the provider writes to disk */
    assert_null(json_object_get(cfg, "secrets"));
    json_decref(cfg);

    /* A second run (a retry after a lost reply) finds the instance: no new
     * token, no second instance. */
    if (run(fx, &out, &a, &err) != 0)
        fail_msg("run again: %s", err.msg);
    free(out);
    assert_int_equal(fx->tokens_issued, 1);
    st = load_state(fx);
    assert_int_equal(json_object_size(json_object_get(st, "instances")), 1);
    json_decref(st);

    /* remove_replica deletes it and forgets the node. */
    struct obs_node n = {.namespace_ = "payments",
                         .cluster = "billing",
                         .node = "billing-0",
                         .role = OBS_ROLE_REPLICA,
                         .engine = "postgresql",
                         .version = "16.1",
                         .position = "",
                         .healthy = true,
                         .last_report = fx->now,
                         .ttl_s = 30};
    assert_int_equal(runners_node_report(fx->r, &n, &err), 0);
    struct journal_action rm;
    action_init(&rm, "remove_replica", "billing-0", KEY2);
    assert_false(check(fx, &rm));
    if (run(fx, &out, &rm, &err) != 0)
        fail_msg("remove: %s", err.msg);
    assert_non_null(strstr(out, "i-000001"));
    free(out);
    assert_true(check(fx, &rm));
    assert_false(check(fx, &a));
    assert_int_equal(fx->forgotten, 1);
    struct observed obs;
    observed_init(&obs);
    assert_int_equal(runners_observed_nodes(&obs, fx->r, &err), 0);
    assert_int_equal(obs.nnodes, 0);
    observed_release(&obs);
    st = load_state(fx);
    assert_int_equal(json_object_size(json_object_get(st, "instances")), 0);
    json_decref(st);
}

/* The provider persists the key: a create whose listing is gone (the
 * instance deleted out of band) but whose key was seen answers the first
 * result, and never creates under a new id. */
static void test_idempotency_key_reused(void **state)
{
    struct fixture *fx = *state;
    struct journal_action a;
    struct rv_error err = {0};
    char *out = NULL;

    action_init(&a, "provision_instance", "billing-1", KEY1);
    assert_int_equal(run(fx, &out, &a, &err), 0);
    free(out);
    char first_token[AGENTAPI_TOKEN_HEX_SIZE];
    snprintf(first_token, sizeof(first_token), "%s", fx->last_token);
    /* the record of the instance goes, the key stays */
    json_t *st = load_state(fx);
    json_object_clear(json_object_get(st, "instances"));
    assert_int_equal(json_dump_file(st, fx->state, 0), 0);
    json_decref(st);
    provider_stop(fx->p);
    struct provider_config cfg = {.name = "test", .argv = fx->argv, .env = fx->env};
    fx->p = NULL;
    assert_int_equal(provider_start(&fx->p, &cfg, &err), 0);
    runners_free(fx->r);
    struct runners_opts o = {.agent_url = "http://x",
                             .issue_token = issue_token,
                             .ud = fx,
                             .now = clock_now,
                             .poll_ms = 10};
    memset(o.secret_key, 7, sizeof(o.secret_key));
    assert_int_equal(runners_new(&fx->r, &o, &err), 0);
    assert_int_equal(runners_add_provider(fx->r, "test", fx->p, &err), 0);
    assert_int_equal(runners_set_desired(fx->r, &fx->set, &err), 0);

    fx->last_token[0] = '\0';
    assert_int_equal(run(fx, &out, &a, &err), 0);
    assert_non_null(strstr(out, "\"id\":\"i-000001\""));
    free(out);
    /* the token the agent of that instance holds is issued again */
    assert_string_equal(fx->last_token, first_token);
    /* another key, another token */
    struct journal_action b;
    action_init(&b, "provision_instance", "billing-2", KEY2);
    assert_int_equal(run(fx, &out, &b, &err), 0);
    free(out);
    assert_string_not_equal(fx->last_token, first_token);
    st = load_state(fx);
    assert_int_equal(json_integer_value(json_object_get(st, "next")), 3);
    json_decref(st);
}

static void test_waits_and_ready(void **state)
{
    struct fixture *fx = *state;
    struct journal_action a;
    struct rv_error err = {0};
    char *out = NULL;

    action_init(&a, "bootstrap_primary", "billing-0", KEY1);
    assert_false(check(fx, &a));
    /* the deadline has passed: the wait gives up at once, naming why */
    struct executor_runner er;
    runners_executor_runner(&er, fx->r);
    assert_int_equal(er.run(&out, &a, KEY1, fx->now, &err, er.ud), RV_ETIMEOUT);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "node 'billing-0' has not reported yet"));

    struct obs_node n = {.namespace_ = "payments",
                         .cluster = "billing",
                         .node = "billing-0",
                         .role = OBS_ROLE_PRIMARY,
                         .engine = "postgresql",
                         .version = "16.1",
                         .position = "0/3000060",
                         .healthy = true,
                         .last_report = fx->now,
                         .ttl_s = 30};
    assert_int_equal(runners_node_report(fx->r, &n, &err), 0);
    assert_true(check(fx, &a));
    assert_int_equal(run(fx, &out, &a, &err), 0);
    free(out);

    struct journal_action ready;
    action_init(&ready, "ready", "", KEY2);
    assert_false(check(fx, &ready)); /* 1 of 2 nodes */
    n.node = "billing-1";
    n.role = OBS_ROLE_REPLICA;
    n.lag_bytes = 10;
    assert_int_equal(runners_node_report(fx->r, &n, &err), 0);
    struct journal_action rep;
    action_init(&rep, "add_replica", "billing-1", KEY2);
    assert_true(check(fx, &rep));
    assert_true(check(fx, &ready));
    /* reports go stale */
    fx->now += 31;
    assert_false(check(fx, &ready));
    assert_false(check(fx, &a));
}

static void test_unsupported(void **state)
{
    struct fixture *fx = *state;
    struct journal_action a;
    struct rv_error err = {0};
    char *out = NULL;

    action_init(&a, "final_backup", "billing-0", KEY1);
    assert_int_equal(run(fx, &out, &a, &err), 0); /* no backup section */
    assert_non_null(strstr(out, "no backup destination configured; nothing to back up"));
    free(out);
    action_init(&a, "configure_backup", "", KEY1);
    assert_int_equal(run(fx, &out, &a, &err), 0);
    free(out);
    action_init(&a, "configure_users", "", KEY1);
    assert_int_equal(run(fx, &out, &a, &err), RV_EINVAL);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "configure_users of 'payments/billing' needs the agent API"));
    action_init(&a, "switchover", "", KEY1);
    assert_int_equal(run(fx, &out, &a, &err), RV_EINVAL);
    /* a deleted cluster's final backup: the plan asks for it only when a
     * backup was configured, which needs reeve serve's backup service
     * (tests/unit/test_backups.c) */
    action_init(&a, "final_backup", "billing-0", KEY1);
    a.cluster = (char *)"payments/gone";
    assert_int_equal(run(fx, &out, &a, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "needs the backup service of reeve serve"));
}

static void test_replication_password(void **state)
{
    struct fixture *fx = *state;
    char pw[65], again[65];
    uint8_t key[32], mac[32];
    char want[65];
    memset(key, 7, sizeof(key));
    const char *msg = "replication:payments/billing";
    assert_int_equal(crypto_hmac_sha256(mac, key, sizeof(key), msg, strlen(msg)), 0);
    assert_int_equal(crypto_hex_encode(want, sizeof(want), mac, sizeof(mac)), 0);
    assert_int_equal(runners_replication_password(pw, fx->r, "payments/billing"), 0);
    assert_string_equal(pw, want);
    assert_int_equal(runners_replication_password(again, fx->r, "payments/other"), 0);
    assert_string_not_equal(pw, again);
}

static void test_status_json(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err = {0};
    struct obs_node n = {.namespace_ = "payments",
                         .cluster = "billing",
                         .node = "billing-0",
                         .role = OBS_ROLE_PRIMARY,
                         .engine = "postgresql",
                         .version = "16.1",
                         .position = "",
                         .healthy = true,
                         .lag_bytes = 0,
                         .last_report = fx->now,
                         .ttl_s = 30};
    assert_int_equal(runners_node_report(fx->r, &n, &err), 0);
    struct journal_action acts[1];
    action_init(&acts[0], "add_replica", "billing-1", KEY2);
    acts[0].state = JOURNAL_ACTION_RUNNING;
    acts[0].attempts = 1;
    struct journal_apply ap = {.id = 1, .actions = acts, .nactions = 1};
    struct runners_apply_view v = {.cluster = "payments/billing",
                                   .commit = "abc123",
                                   .state = "pending",
                                   .text = "applying: 3/7 actions done"};
    json_t *j = runners_status_json(fx->r, &ap, 1, &v, 1);
    assert_non_null(j);
    json_t *c = json_array_get(json_object_get(j, "clusters"), 0);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "namespace")), "payments");
    assert_string_equal(json_string_value(json_object_get(c, "name")), "billing");
    assert_string_equal(json_string_value(json_object_get(c, "engine")), "postgresql");
    assert_string_equal(json_string_value(json_object_get(c, "version")), "16");
    assert_int_equal(json_integer_value(json_object_get(c, "desired_instances")), 2);
    json_t *apply = json_object_get(c, "apply");
    assert_string_equal(json_string_value(json_object_get(apply, "commit")), "abc123");
    assert_string_equal(json_string_value(json_object_get(apply, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(apply, "text")),
                        "applying: 3/7 actions done");
    json_t *node = json_array_get(json_object_get(c, "nodes"), 0);
    assert_string_equal(json_string_value(json_object_get(node, "name")), "billing-0");
    assert_string_equal(json_string_value(json_object_get(node, "role")), "primary");
    assert_true(json_is_true(json_object_get(node, "healthy")));
    assert_true(json_is_false(json_object_get(node, "streaming")));
    assert_true(json_is_integer(json_object_get(node, "lag_bytes")));
    assert_string_equal(json_string_value(json_object_get(node, "last_report")),
                        "2023-11-14T22:13:20Z");
    assert_non_null(json_object_get(node, "address"));
    assert_non_null(json_object_get(node, "port"));
    json_t *act = json_array_get(json_object_get(c, "actions"), 0);
    assert_string_equal(json_string_value(json_object_get(act, "id")), "payments/billing/x/0");
    assert_string_equal(json_string_value(json_object_get(act, "kind")), "add_replica");
    assert_string_equal(json_string_value(json_object_get(act, "node")), "billing-1");
    assert_string_equal(json_string_value(json_object_get(act, "state")), "running");
    assert_int_equal(json_integer_value(json_object_get(act, "attempts")), 1);
    assert_true(json_is_null(json_object_get(act, "last_error")));
    assert_int_equal(json_array_size(json_object_get(j, "clusters")), 1);
    json_decref(j);

    /* a cluster no longer desired still shows while its nodes report */
    n.cluster = "gone";
    n.node = "gone-0";
    assert_int_equal(runners_node_report(fx->r, &n, &err), 0);
    j = runners_status_json(fx->r, &ap, 1, &v, 1);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "clusters")), 2);
    c = json_array_get(json_object_get(j, "clusters"), 1);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "gone");
    assert_int_equal(json_integer_value(json_object_get(c, "desired_instances")), 0);
    assert_true(json_is_null(json_object_get(c, "apply")));
    assert_int_equal(json_array_size(json_object_get(c, "nodes")), 1);
    json_decref(j);
}

/* --- reeve.yaml: providers, limits, agent --- */

static int parse_config(struct config *c, struct diag_list *d, const char *yaml)
{
    struct rv_error err = {0};
    config_init(c);
    diag_list_init(d);
    return config_parse(c, "/etc/reeve/reeve.yaml", yaml, strlen(yaml), d, &err);
}

static bool has_diag(const struct diag_list *d, const char *text)
{
    for (size_t i = 0; i < d->len; i++)
        if (strstr(d->items[i].msg, text) != NULL)
            return true;
    return false;
}

static void test_config_keys(void **state)
{
    struct config c;
    struct diag_list d;
    (void)state;

    assert_int_equal(parse_config(&c, &d,
                                  "dataDir: /var/lib/reeve\n"
                                  "repository: {url: /srv/specs.git}\n"
                                  "agentURL: http://127.0.0.1:9090/\n"
                                  "providers:\n"
                                  "  - name: local\n"
                                  "    env: {REEVE_LOCAL_ROOT: ./local, OTHER: plain}\n"
                                  "  - name: aws\n"
                                  "    command: [bin/reeve-provider-aws, --verbose]\n"),
                     0);
    assert_string_equal(c.agent_url, "http://127.0.0.1:9090");
    assert_int_equal(c.nproviders, 2);
    assert_null(c.providers[0].argv); /* the default, found by serve */
    assert_int_equal(c.providers[0].nenv, 2);
    assert_string_equal(c.providers[0].env[0], "REEVE_LOCAL_ROOT=/etc/reeve/./local");
    assert_string_equal(c.providers[0].env[1], "OTHER=plain");
    assert_string_equal(c.providers[1].argv[0], "/etc/reeve/bin/reeve-provider-aws");
    assert_string_equal(c.providers[1].argv[1], "--verbose");
    assert_null(c.providers[1].argv[2]);
    assert_non_null(config_provider_find(&c, "aws"));
    assert_null(config_provider_find(&c, "gcp"));
    assert_int_equal(c.limits.max_concurrent, 0); /* executor defaults */
    assert_int_equal(c.agent.ttl_ms, 3000);
    assert_int_equal(c.agent.tick_ms, 300);
    config_release(&c);
    diag_list_release(&d);

    assert_int_equal(parse_config(&c, &d,
                                  "dataDir: /var/lib/reeve\n"
                                  "repository: {url: /srv/specs.git}\n"
                                  "providers: [{name: local}, {name: local}]\n"
                                  "limits: {maxConcurrentActions: 0}\n"
                                  "agent: {ttlMs: 1000, tickMs: 600}\n"),
                     RV_EINVAL);
    assert_true(has_diag(&d, "provider 'local' is configured twice"));
    assert_true(has_diag(&d, "at most half its TTL"));
    assert_true(d.errors >= 3); /* and the schema's minimum for the limit */
    config_release(&c);
    diag_list_release(&d);
}

/* --- reeve serve applying a spec through the test provider --- */

#define WAIT_MS 30000

struct sworld {
    char dir[64];
    char url[64];
    struct config cfg;
    struct serve *s;
    pthread_t thread;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    return buf_append(ud, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* method url path with an optional bearer token and body; *status. */
static json_t *http_json(long *status, const struct sworld *w, const char *method, const char *path,
                         const char *bearer, const char *body)
{
    char url[256], auth[256];
    struct buf b = BUF_INIT;
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    assert_non_null(c);
    snprintf(url, sizeof(url), "%s%s", w->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        hdrs = curl_slist_append(hdrs, auth);
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    json_t *j = b.data != NULL ? json_loads(b.data, 0, NULL) : NULL;
    buf_release(&b);
    return j;
}

static void *serve_thread(void *arg)
{
    serve_run(arg);
    return NULL;
}

static void serve_start(struct sworld *w)
{
    struct serve_options opt = {.handle_signals = false};
    struct rv_error err = {0};
    if (serve_new(&w->s, &w->cfg, &opt, &err) != 0)
        fail_msg("serve_new: %s", err.msg);
    snprintf(w->url, sizeof(w->url), "http://127.0.0.1:%u", (unsigned)serve_port(w->s));
    assert_int_equal(pthread_create(&w->thread, NULL, serve_thread, w->s), 0);
}

static void serve_halt(struct sworld *w)
{
    serve_stop(w->s);
    pthread_join(w->thread, NULL);
    serve_free(w->s);
    w->s = NULL;
}

/* The cluster payments/billing of GET /api/v1/status (a new reference). */
static json_t *status_cluster(const struct sworld *w)
{
    long code = 0;
    json_t *j = http_json(&code, w, "GET", "/api/v1/status", NULL, NULL);
    assert_int_equal(code, 200);
    assert_non_null(j);
    json_t *c = json_incref(json_array_get(json_object_get(j, "clusters"), 0));
    json_decref(j);
    return c;
}

static const char *apply_state(json_t *c)
{
    const char *st = json_string_value(json_object_get(json_object_get(c, "apply"), "state"));
    return st != NULL ? st : "";
}

/* The registration token reeve sent with create_instance, from the test
 * provider's frame trace; also checks the agent configuration. */
static char *token_from_trace(const struct sworld *w)
{
    char path[256], line[65536];
    char *token = NULL;
    snprintf(path, sizeof(path), "%s/trace.jsonl", w->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (token == NULL && fgets(line, sizeof(line), f) != NULL) {
        json_t *j = json_loads(line, 0, NULL);
        if (j != NULL && json_is_string(json_object_get(j, "method")) &&
            strcmp(json_string_value(json_object_get(j, "method")), "create_instance") == 0) {
            json_t *agent = json_object_get(json_object_get(j, "params"), "agent");
            json_t *cfg = json_object_get(agent, "config");
            assert_string_equal(json_string_value(json_object_get(cfg, "reconciler")), w->url);
            assert_string_equal(json_string_value(json_object_get(cfg, "cluster")),
                                "payments/billing");
            const char *pw = json_string_value(
                json_object_get(json_object_get(agent, "secrets"), "replication_password"));
            assert_non_null(pw);
            assert_int_equal(strlen(pw), 64);
            token = strdup(json_string_value(
                json_object_get(json_object_get(agent, "secrets"), "registration_token")));
        }
        json_decref(j);
    }
    fclose(f);
    return token;
}

static size_t provider_instances(const struct sworld *w)
{
    char path[256];
    json_error_t je;
    snprintf(path, sizeof(path), "%s/pstate.json", w->dir);
    json_t *st = json_load_file(path, 0, &je);
    size_t n = json_object_size(json_object_get(st, "instances"));
    json_decref(st);
    return n;
}

static void test_serve_applies(void **state)
{
    (void)state;
    struct sworld w;
    struct diag_list d;
    struct rv_error err = {0};
    char yaml[4096], cfg_path[256];
    const char *src = getenv("REEVE_SOURCE_DIR");
    long code = 0;

    memset(&w, 0, sizeof(w));
    log_set_level(getenv("REEVE_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR);
    if (schema_get(SCHEMA_CLUSTER, &err) == NULL || schema_get(SCHEMA_CLUSTER_TF, &err) == NULL ||
        schema_get(SCHEMA_POLICY, &err) == NULL || source_global_init(0, &err) != 0)
        fail_msg("set-up: %s", err.msg);
    snprintf(w.dir, sizeof(w.dir), "/tmp/reeve-runners-serve-XXXXXX");
    assert_non_null(mkdtemp(w.dir));
    assert_int_equal(
        tu_sh("git init -q --bare -b main %s/origin.git && git init -q -b main %s/work "
              "&& mkdir -p %s/work/clusters",
              w.dir, w.dir, w.dir),
        0);
    snprintf(cfg_path, sizeof(cfg_path), "%s/work/clusters/billing.yaml", w.dir);
    FILE *f = fopen(cfg_path, "w");
    assert_non_null(f);
    fputs("apiVersion: reeve/v1\nkind: DatabaseCluster\n"
          "metadata: {name: billing, namespace: payments}\n"
          "spec:\n  engine: postgresql\n  version: \"16\"\n  provider: test\n"
          "  region: local-1\n  instances: 1\n"
          "  resources: {cpu: 1, memoryMiB: 1024, storageGiB: 10}\n",
          f);
    fclose(f);
    assert_int_equal(tu_sh("cd %s/work && git add -A && git -c user.email=t@example -c user.name=t "
                           "commit -qm init && git push -q %s/origin.git main",
                           w.dir, w.dir),
                     0);
    snprintf(yaml, sizeof(yaml),
             "listen: 127.0.0.1:0\n"
             "dataDir: data\n"
             "log: {level: error}\n"
             "repository: {url: 'file://%s/origin.git', branch: main, pollInterval: 60}\n"
             "ticks: {base: 1, fast: 1}\n"
             "providers:\n"
             "  - name: test\n"
             "    command: ['%s/providers/test/reeve-provider-test']\n"
             "    env: {REEVE_PROVIDER_TEST_STATE: ./pstate.json, "
             "REEVE_PROVIDER_TEST_TRACE: ./trace.jsonl}\n"
             "limits: {maxConcurrentActions: 4, perProvider: 2, perCluster: 1}\n"
             "agent: {ttlMs: 3000, tickMs: 300}\n",
             w.dir, src != NULL ? src : ".");
    snprintf(cfg_path, sizeof(cfg_path), "%s/reeve.yaml", w.dir);
    f = fopen(cfg_path, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    diag_list_init(&d);
    config_init(&w.cfg);
    int rc = config_load(&w.cfg, cfg_path, &d, &err);
    diag_list_print(stderr, &d);
    diag_list_release(&d);
    assert_int_equal(rc, 0);
    assert_int_equal(w.cfg.nproviders, 1);
    assert_int_equal(w.cfg.limits.per_cluster, 1);
    assert_int_equal(w.cfg.agent.ttl_ms, 3000);
    char want_env[300];
    snprintf(want_env, sizeof(want_env), "REEVE_PROVIDER_TEST_STATE=%s/./pstate.json", w.dir);
    assert_string_equal(w.cfg.providers[0].env[0], want_env);

    serve_start(&w);
    /* provision_instance runs; bootstrap_primary waits for the agent */
    uint64_t until = mono_ms() + WAIT_MS;
    while (provider_instances(&w) == 0 && mono_ms() < until)
        sleep_ms(100);
    assert_int_equal(provider_instances(&w), 1);
    json_t *c = NULL;
    bool waiting = false;
    while (!waiting && mono_ms() < until) {
        json_decref(c);
        c = status_cluster(&w);
        json_t *acts = json_object_get(c, "actions");
        for (size_t i = 0; i < json_array_size(acts); i++) {
            json_t *a = json_array_get(acts, i);
            if (strcmp(json_string_value(json_object_get(a, "kind")), "bootstrap_primary") == 0)
                waiting = strcmp(json_string_value(json_object_get(a, "state")), "running") == 0;
        }
        if (!waiting)
            sleep_ms(100);
    }
    assert_true(waiting);
    assert_string_equal(json_string_value(json_object_get(c, "namespace")), "payments");
    assert_int_equal(json_integer_value(json_object_get(c, "desired_instances")), 1);
    assert_string_equal(apply_state(c), "pending");
    json_decref(c);
    c = NULL;
    /* a secret.key was made, private */
    struct stat st;
    char key_path[256];
    snprintf(key_path, sizeof(key_path), "%s/data/secret.key", w.dir);
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);

    /* play the agent: register with the token, report primary */
    char *token = token_from_trace(&w);
    assert_non_null(token);
    json_t *reg = http_json(&code, &w, "POST", "/v1/agents/register", token,
                            "{\"cluster\":\"payments/billing\",\"node\":\"billing-0\","
                            "\"address\":\"127.0.0.3\"}");
    assert_int_equal(code, 200);
    char *agent_token = strdup(json_string_value(json_object_get(reg, "agent_token")));
    json_decref(reg);
    free(token);
    const char *report = "{\"role\":\"primary\",\"healthy\":true,\"version\":\"16.4\","
                         "\"engine\":\"postgresql\",\"lag_bytes\":0,\"ttl_s\":30}";
    bool applied = false;
    until = mono_ms() + WAIT_MS;
    while (!applied && mono_ms() < until) {
        json_decref(http_json(&code, &w, "POST", "/v1/agents/report", agent_token, report));
        assert_int_equal(code, 200);
        json_decref(c);
        c = status_cluster(&w);
        applied = strcmp(apply_state(c), "success") == 0;
        if (!applied)
            sleep_ms(200);
    }
    if (!applied)
        fail_msg("not applied: %s", json_dumps(c, 0));
    json_t *node = json_array_get(json_object_get(c, "nodes"), 0);
    assert_string_equal(json_string_value(json_object_get(node, "name")), "billing-0");
    assert_string_equal(json_string_value(json_object_get(node, "role")), "primary");
    assert_true(json_is_true(json_object_get(node, "healthy")));
    assert_string_equal(json_string_value(json_object_get(node, "address")), "127.0.0.3");
    assert_int_equal(json_integer_value(json_object_get(node, "port")), 5432);
    json_decref(c);
    c = NULL;

    /* a restart keeps what was applied: no second instance */
    serve_halt(&w);
    serve_start(&w);
    /* the agent keeps reporting; past the grace after a start, reeve plans
     * again and finds nothing to do */
    until = mono_ms() + 9000;
    while (mono_ms() < until) {
        json_decref(http_json(&code, &w, "POST", "/v1/agents/report", agent_token, report));
        sleep_ms(300);
    }
    c = status_cluster(&w);
    assert_string_equal(apply_state(c), "success");
    json_decref(c);
    assert_int_equal(provider_instances(&w), 1);
    free(agent_token);
    serve_halt(&w);
    config_release(&w.cfg);
    tu_sh("rm -rf '%s'", w.dir);
    source_global_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_provision_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_and_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replication_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_serve_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
