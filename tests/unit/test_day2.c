/* test_day2.c - the runners' day-2 actions (reconciler/runners.c,
 * docs/day2.md) against an in-memory DCS and a fake agent that answers in
 * write_key: configure_parameters writes the parameters with their digest
 * and waits for every reporting node, a refused value fails naming the
 * node; restart_node asks the node's agent with an id bound to the apply,
 * and is done once the agent answered and the node reports caught up, a
 * failed restart fails naming the node; a switchover the old primary
 * rolled back fails saying so; waits give up at the deadline saying what
 * is missing; and runners_observe takes a node's parameters from its
 * agent's ops/applied report, pending restarts included. An upgrade whose
 * node does not come back is put back on its version through the test
 * provider (providers/test/reeve-provider-test) and fails naming it. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "crypto.h"
#include "diag.h"
#include "runners.h"
#include "spec.h"

#define KEY "abababababababababababababababababababababababababababababababab"
#define P "/clusters/shop/db/ops/"

static const char SPEC_YAML[] = "apiVersion: reeve/v1\n"
                                "kind: DatabaseCluster\n"
                                "metadata: {name: db, namespace: shop}\n"
                                "spec:\n"
                                "  engine: postgresql\n"
                                "  version: \"15\"\n"
                                "  provider: local\n"
                                "  region: local\n"
                                "  instances: 2\n"
                                "  resources: {cpu: 1, memoryMiB: 256, storageGiB: 1}\n"
                                "  parameters: {max_connections: \"150\", work_mem: \"8MB\"}\n";

/* What the fake agent does with a request. */
enum agent_mode { AGENT_OK, AGENT_REFUSE, AGENT_SILENT };

struct fixture {
    struct runners *r;
    struct spec_set set;
    json_t *kv; /* key -> JSON text */
    enum agent_mode mode;
    int64_t now;
    bool ticking; /* every clock read advances it a second */
    struct provider *p;
    char dir[64], state[128], script[1024];
    char *env[3], *argv[2];
};

static void put(struct fixture *fx, const char *key, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(text);
    json_object_set_new(fx->kv, key, json_string(text));
    free(text);
    json_decref(v);
}

static int read_key(char **out, const char *key, struct rv_error *err, void *ud)
{
    struct fixture *fx = ud;
    (void)err;
    const char *v = json_string_value(json_object_get(fx->kv, key));
    *out = v != NULL ? strdup(v) : NULL;
    return v != NULL;
}

/* The fake agents answer at once. */
static int write_key(const char *key, const char *value, struct rv_error *err, void *ud)
{
    struct fixture *fx = ud;
    (void)err;
    json_object_set_new(fx->kv, key, json_string(value));
    json_t *v = json_loads(value, 0, NULL);
    const char *error = fx->mode == AGENT_REFUSE ? "invalid value for parameter" : "";
    if (fx->mode != AGENT_SILENT && strcmp(key, P "parameters") == 0) {
        for (int i = 0; i < 2; i++) {
            char k[128], node[16];
            snprintf(node, sizeof(node), "db-%d", i);
            snprintf(k, sizeof(k), P "applied/%s", node);
            put(fx, k,
                json_pack("{s:s, s:O, s:O, s:s, s:s}", "node", node, "digest",
                          json_object_get(v, "digest"), "parameters",
                          json_object_get(v, "parameters"), "pending_restart",
                          i == 0 ? "max_connections" : "", "error", i == 1 ? error : ""));
        }
    } else if (fx->mode != AGENT_SILENT && strncmp(key, P "request/", strlen(P "request/")) == 0) {
        char k[128];
        snprintf(k, sizeof(k), P "result/%s", key + strlen(P "request/"));
        put(fx, k,
            json_pack("{s:O, s:s, s:b, s:s, s:I, s:I}", "id", json_object_get(v, "id"), "op",
                      "restart", "ok", fx->mode == AGENT_OK, "error",
                      fx->mode == AGENT_OK ? "" : "pg_ctl start failed", "started_ms",
                      (json_int_t)fx->now * 1000, "finished_ms", (json_int_t)fx->now * 1000));
    } else if (fx->mode != AGENT_SILENT && strcmp(key, P "switchover") == 0) {
        put(fx, P "switchover-result",
            json_pack("{s:O, s:b, s:s, s:s}", "id", json_object_get(v, "id"), "ok", 0, "error",
                      "the target did not take the leader key in time", "by", "db-0"));
    }
    json_decref(v);
    return 0;
}

static int64_t clock_now(void *ud)
{
    struct fixture *fx = ud;
    return fx->ticking ? fx->now++ : fx->now;
}

static void report(struct fixture *fx, const char *node, enum obs_role role, int64_t lag)
{
    struct rv_error err = {0};
    struct obs_node n = {.namespace_ = "shop",
                         .cluster = "db",
                         .node = (char *)node,
                         .role = role,
                         .engine = "postgresql",
                         .version = "15",
                         .position = "0/3000060",
                         .healthy = true,
                         .lag_bytes = lag,
                         .last_report = fx->now,
                         .ttl_s = 30};
    assert_int_equal(runners_node_report(fx->r, &n, &err), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct rv_error err = {0};
    struct diag_list diags;
    if (fx == NULL || (fx->kv = json_object()) == NULL)
        return -1;
    fx->now = 1700000000;
    struct runners_opts o = {
        .poll_ms = 1, .read_key = read_key, .write_key = write_key, .ud = fx, .now = clock_now};
    if (runners_new(&fx->r, &o, &err) != 0)
        return -1;
    spec_set_init(&fx->set);
    diag_list_init(&diags);
    int rc = spec_set_add_buffer(&fx->set, SPEC_FILE_CLUSTERS, "clusters/db.yaml", SPEC_YAML,
                                 strlen(SPEC_YAML), &diags);
    if (rc != 0 || diags.errors > 0)
        diag_list_print(stderr, &diags);
    diag_list_release(&diags);
    if (rc != 0 || runners_set_desired(fx->r, &fx->set, &err) != 0)
        return -1;
    report(fx, "db-0", OBS_ROLE_PRIMARY, 0);
    report(fx, "db-1", OBS_ROLE_REPLICA, 100);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    runners_free(fx->r);
    spec_set_release(&fx->set);
    json_decref(fx->kv);
    free(fx);
    return 0;
}

static int run(struct fixture *fx, char **out, const char *kind, const char *node, int64_t deadline,
               struct rv_error *err)
{
    struct executor_runner er;
    struct journal_action a = {.apply_id = 7,
                               .id = (char *)"shop/db/x/0",
                               .idempotency_key = (char *)KEY,
                               .kind = (char *)kind,
                               .cluster = (char *)"shop/db",
                               .node = (char *)node,
                               .provider = (char *)""};
    runners_executor_runner(&er, fx->r);
    *out = NULL;
    return er.run(out, &a, KEY, deadline, err, er.ud);
}

static void test_parameters(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err = {0};
    char *out = NULL, digest[CRYPTO_SHA256_HEX_SIZE];
    const char *set = "{\"max_connections\":\"150\",\"work_mem\":\"8MB\"}";
    assert_int_equal(crypto_sha256_hex(digest, set, strlen(set)), 0);

    assert_int_equal(run(fx, &out, "configure_parameters", "", fx->now + 30, &err), 0);
    json_t *w = json_loads(json_string_value(json_object_get(fx->kv, P "parameters")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(w, "digest")), digest);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(w, "parameters"), "work_mem")), "8MB");
    json_decref(w);
    assert_non_null(strstr(out, "\"result\":\"parameters applied\""));
    assert_non_null(strstr(out, "\"db-0\":\"max_connections\"")); /* pending on db-0 */
    free(out);

    /* the observed state takes the agents' reports: db-0's is pending */
    struct observed obs;
    observed_init(&obs);
    assert_int_equal(runners_observe(&obs, fx->r, &err), 0);
    assert_int_equal(obs.nnodes, 2);
    for (size_t i = 0; i < obs.nnodes; i++) {
        bool pending = false, seen = false;
        for (size_t k = 0; k < obs.nodes[i].nparams; k++) {
            if (strcmp(obs.nodes[i].params[k].name, "max_connections") == 0) {
                seen = true;
                pending = obs.nodes[i].params[k].pending_restart;
            }
        }
        assert_true(seen);
        assert_int_equal(pending, strcmp(obs.nodes[i].node, "db-0") == 0);
    }
    observed_release(&obs);

    fx->mode = AGENT_REFUSE;
    json_object_clear(fx->kv);
    assert_int_equal(run(fx, &out, "configure_parameters", "", fx->now + 30, &err), RV_EINVAL);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "node 'db-1' refused the parameters: invalid value"));

    fx->mode = AGENT_SILENT;
    json_object_clear(fx->kv);
    assert_int_equal(run(fx, &out, "configure_parameters", "", fx->now, &err), RV_ETIMEOUT);
    assert_non_null(strstr(err.msg, "has not applied parameters"));
}

static void test_restart(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err = {0};
    char *out = NULL, id[128];
    snprintf(id, sizeof(id), "%.40s-7", KEY);

    /* db-1 is 100 bytes behind, within the default failover lag */
    assert_int_equal(run(fx, &out, "restart_node", "db-1", fx->now + 30, &err), 0);
    json_t *req = json_loads(json_string_value(json_object_get(fx->kv, P "request/db-1")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(req, "id")), id);
    assert_string_equal(json_string_value(json_object_get(req, "op")), "restart");
    json_decref(req);
    assert_non_null(strstr(out, "\"result\":\"restarted\""));
    free(out);

    /* far behind: not caught up by the deadline */
    report(fx, "db-1", OBS_ROLE_REPLICA, 64 << 20);
    assert_int_equal(run(fx, &out, "restart_node", "db-1", fx->now, &err), RV_ETIMEOUT);
    assert_non_null(strstr(err.msg, "replica 'db-1' is 67108864 bytes behind"));

    fx->mode = AGENT_REFUSE;
    assert_int_equal(run(fx, &out, "restart_node", "db-1", fx->now + 30, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "the restart of node 'db-1' failed: pg_ctl start failed"));
}

static void test_switchover(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err = {0};
    char *out = NULL;

    /* the target is the primary already: nothing to do */
    assert_int_equal(run(fx, &out, "switchover", "db-0", fx->now + 30, &err), 0);
    assert_non_null(strstr(out, "the target is the primary already"));
    free(out);
    assert_null(json_object_get(fx->kv, P "switchover"));

    assert_int_equal(run(fx, &out, "switchover", "db-1", fx->now + 30, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "the switchover from 'db-0' to 'db-1' was rolled back: the "
                                    "target did not take the leader key in time"));
    json_t *sw = json_loads(json_string_value(json_object_get(fx->kv, P "switchover")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(sw, "from")), "db-0");
    assert_string_equal(json_string_value(json_object_get(sw, "to")), "db-1");
    json_decref(sw);

    fx->mode = AGENT_SILENT;
    json_object_clear(fx->kv);
    assert_int_equal(run(fx, &out, "switchover", "db-1", fx->now, &err), RV_ETIMEOUT);
    assert_non_null(strstr(err.msg, "'db-1' does not report a healthy primary yet"));
}

static const char SPEC16_YAML[] = "apiVersion: reeve/v1\n"
                                  "kind: DatabaseCluster\n"
                                  "metadata: {name: db, namespace: shop}\n"
                                  "spec:\n"
                                  "  engine: postgresql\n"
                                  "  version: \"16\"\n"
                                  "  provider: test\n"
                                  "  region: local-1\n"
                                  "  instances: 2\n"
                                  "  resources: {cpu: 1, memoryMiB: 1024, storageGiB: 1}\n";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void test_upgrade_rolled_back(void **state)
{
    struct fixture *fx = *state;
    struct rv_error err = {0};
    struct diag_list diags;
    char *out = NULL, tmp[1200];
    json_t *res = NULL;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/reeve-day2-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->state, sizeof(fx->state), "%s/state.json", fx->dir);
    const char *src = getenv("REEVE_SOURCE_DIR");
    snprintf(fx->script, sizeof(fx->script), "%s/providers/test/reeve-provider-test",
             src != NULL ? src : ".");
    fx->argv[0] = fx->script;
    snprintf(tmp, sizeof(tmp), "PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    fx->env[0] = strdup(tmp);
    snprintf(tmp, sizeof(tmp), "REEVE_PROVIDER_TEST_STATE=%s", fx->state);
    fx->env[1] = strdup(tmp);
    struct provider_config cfg = {.name = "test", .argv = fx->argv, .env = fx->env};
    assert_int_equal(provider_start(&fx->p, &cfg, &err), 0);
    assert_true(provider_has_capability(fx->p, "upgrade"));
    assert_int_equal(runners_add_provider(fx->r, "test", fx->p, &err), 0);
    spec_set_release(&fx->set);
    spec_set_init(&fx->set);
    diag_list_init(&diags);
    assert_int_equal(spec_set_add_buffer(&fx->set, SPEC_FILE_CLUSTERS, "clusters/db.yaml",
                                         SPEC16_YAML, strlen(SPEC16_YAML), &diags),
                     0);
    diag_list_release(&diags);
    assert_int_equal(runners_set_desired(fx->r, &fx->set, &err), 0);
    json_t *params =
        json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:{s:i, s:i, s:i}, s:{s:{}}}", "name", "db-1",
                  "labels", "reeve.io/cluster", "shop/db", "reeve.io/node", "db-1", "engine",
                  "postgresql", "version", "15", "region", "local-1", "resources", "cpu", 1,
                  "memoryMiB", 1024, "storageGiB", 1, "agent", "config");
    assert_int_equal(provider_call(&res, fx->p, "create_instance", params, 10000, KEY, &err), 0);
    json_decref(params);
    json_decref(res);

    /* db-1 never reports after its upgrade: put back on 15, named */
    fx->ticking = true;
    assert_int_equal(run(fx, &out, "upgrade_replica", "db-1", fx->now + 3000, &err), RV_EINVAL);
    assert_false(err.retryable);
    if (strstr(err.msg, "node 'db-1' did not come back healthy on version 16") == NULL)
        fail_msg("%s", err.msg);
    assert_non_null(strstr(err.msg, "rolled back to 15"));
    json_error_t je;
    json_t *st = json_load_file(fx->state, 0, &je);
    assert_non_null(st);
    json_t *ups = json_object_get(st, "upgrades");
    assert_int_equal(json_array_size(ups), 2);
    assert_string_equal(json_string_value(json_array_get(json_array_get(ups, 0), 1)), "16");
    assert_string_equal(json_string_value(json_array_get(json_array_get(ups, 1), 1)), "15");
    json_decref(st);

    runners_free(fx->r);
    fx->r = NULL;
    provider_stop(fx->p);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->env[0]);
    free(fx->env[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switchover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_rolled_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
