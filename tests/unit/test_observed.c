/* test_observed.c - observed state: strict JSON reading, canonical writing,
 * revisions, staleness, RFC 3339 times, the shipped examples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "observed.h"

static const char full[] =
    "{\n"
    "  \"instances\": [\n"
    "    {\"provider\": \"local\", \"id\": \"i-2\", \"cluster\": \"payments/billing\",\n"
    "     \"node\": \"billing-1\", \"address\": \"127.0.1.11\", \"state\": \"running\"},\n"
    "    {\"provider\": \"local\", \"id\": \"i-1\", \"cluster\": \"payments/billing\",\n"
    "     \"node\": \"billing-0\", \"address\": \"127.0.1.10\",\n"
    "     \"labels\": {\"team\": \"core\", \"reeve.dev/cluster\": \"payments/billing\"},\n"
    "     \"state\": \"provisioning\"}\n"
    "  ],\n"
    "  \"nodes\": [\n"
    "    {\"cluster\": \"payments/billing\", \"node\": \"billing-1\", \"role\": \"replica\",\n"
    "     \"engine\": \"postgresql\", \"version\": \"16.4\", \"healthy\": false,\n"
    "     \"lagBytes\": 4096, \"position\": \"timeline 2, lsn 0/3000060\",\n"
    "     \"parameters\": {\"work_mem\": \"16MB\",\n"
    "                    \"shared_buffers\": {\"value\": \"2GB\", \"pendingRestart\": true}},\n"
    "     \"resources\": {\"cpu\": 0.5, \"memoryMiB\": 4096, \"storageGiB\": 20},\n"
    "     \"lastReport\": \"2026-11-21T06:00:00+01:00\", \"ttlSeconds\": 15},\n"
    "    {\"cluster\": \"payments/billing\", \"node\": \"billing-0\", \"role\": \"primary\",\n"
    "     \"engine\": \"postgresql\", \"version\": \"16.4\", \"healthy\": true,\n"
    "     \"resources\": {\"cpu\": 2, \"memoryMiB\": 4096, \"storageGiB\": 20},\n"
    "     \"lastReport\": \"2026-11-21T05:00:00Z\"}\n"
    "  ],\n"
    "  \"clusters\": [\n"
    "    {\"cluster\": \"payments/billing\", \"users\": [\"reports\", \"app\"],\n"
    "     \"backupDigest\": \"abc\", \"lastBackup\": \"2026-11-21T02:00:00Z\",\n"
    "     \"deletionProtection\": true},\n"
    "    {\"cluster\": \"analytics/events\", \"backupDigest\": null, \"lastBackup\": null}\n"
    "  ]\n"
    "}\n";

static void load_ok(struct observed *obs, const char *json)
{
    struct rv_error err = {0};
    observed_init(obs);
    int rc = observed_load_json(obs, "obs.json", json, strlen(json), &err);
    if (rc != 0)
        fail_msg("observed_load_json: %s", err.msg);
}

/* Load must fail with code and a message containing want. */
static void load_fails(const char *json, int code, const char *want)
{
    struct observed obs;
    struct rv_error err = {0};
    observed_init(&obs);
    int rc = observed_load_json(&obs, "obs.json", json, strlen(json), &err);
    if (rc != code || strstr(err.msg, want) == NULL)
        fail_msg("for %s\n  want %d containing \"%s\"\n  got %d: %s", json, code, want, rc,
                 err.msg);
    /* a failed load leaves nothing behind */
    assert_int_equal(obs.ninstances + obs.nnodes + obs.nclusters, 0);
    observed_release(&obs);
}

static void test_load_full(void **state)
{
    (void)state;
    struct observed obs;
    load_ok(&obs, full);

    /* sorted by cluster and node whatever the input order */
    assert_int_equal(obs.ninstances, 2);
    assert_string_equal(obs.instances[0].node, "billing-0");
    assert_string_equal(obs.instances[0].namespace_, "payments");
    assert_string_equal(obs.instances[0].cluster, "billing");
    assert_int_equal(obs.instances[0].state, OBS_STATE_PROVISIONING);
    assert_int_equal(obs.instances[0].nlabels, 2);
    assert_string_equal(obs.instances[0].labels[0].key, "reeve.dev/cluster");
    assert_string_equal(obs.instances[1].address, "127.0.1.11");
    assert_int_equal(obs.instances[1].nlabels, 0);

    assert_int_equal(obs.nnodes, 2);
    const struct obs_node *p = &obs.nodes[0], *r = &obs.nodes[1];
    assert_string_equal(p->node, "billing-0");
    assert_int_equal(p->role, OBS_ROLE_PRIMARY);
    assert_int_equal(p->lag_bytes, 0);
    assert_string_equal(p->position, "");
    assert_int_equal(p->ttl_s, 30); /* the default */
    assert_int_equal(r->role, OBS_ROLE_REPLICA);
    assert_false(r->healthy);
    assert_int_equal(r->lag_bytes, 4096);
    assert_true(r->resources.cpu > 0.49 && r->resources.cpu < 0.51);
    assert_int_equal(r->nparams, 2);
    assert_string_equal(r->params[0].name, "shared_buffers");
    assert_true(r->params[0].pending_restart);
    assert_string_equal(r->params[1].value, "16MB");
    assert_false(r->params[1].pending_restart);
    /* 06:00+01:00 is 05:00Z */
    assert_int_equal(p->last_report, r->last_report);

    assert_int_equal(obs.nclusters, 2);
    assert_string_equal(obs.clusters[0].namespace_, "analytics");
    assert_null(obs.clusters[0].backup_digest);
    assert_int_equal(obs.clusters[0].last_backup, 0);
    assert_int_equal(obs.clusters[0].deletion_protection, OBS_UNKNOWN);
    assert_int_equal(obs.clusters[1].nusers, 2);
    assert_string_equal(obs.clusters[1].users[0], "app");
    assert_string_equal(obs.clusters[1].backup_digest, "abc");
    assert_int_equal(obs.clusters[1].deletion_protection, OBS_TRUE);
    observed_release(&obs);
    observed_release(&obs); /* released twice is still fine */
}

static void test_round_trip_and_revision(void **state)
{
    (void)state;
    struct observed a, b;
    struct rv_error err = {0};
    load_ok(&a, full);
    json_t *j = observed_to_json(&a);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    observed_init(&b);
    assert_int_equal(observed_from_json(&b, j, "again", &err), 0);
    json_t *j2 = observed_to_json(&b);
    char *text2 = json_dumps(j2, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, text2);
    assert_non_null(strstr(text, "\"lastReport\":\"2026-11-21T05:00:00Z\""));
    assert_non_null(strstr(text, "\"shared_buffers\":{\"pendingRestart\":true,\"value\":\"2GB\"}"));

    /* derived revisions follow content, not order */
    const char *ra = observed_revision(&a);
    assert_non_null(ra);
    assert_int_equal(strncmp(ra, "sha256:", 7), 0);
    assert_int_equal(strlen(ra), 23);
    assert_string_equal(ra, observed_revision(&b));
    observed_release(&b);
    load_ok(&b, "{\"clusters\": [{\"cluster\": \"a/b\"}]}");
    assert_string_not_equal(ra, observed_revision(&b));
    observed_release(&b);

    /* a given revision is kept */
    load_ok(&b, "{\"revision\": \"1842\"}");
    assert_string_equal(observed_revision(&b), "1842");
    free(text);
    free(text2);
    json_decref(j);
    json_decref(j2);
    observed_release(&a);
    observed_release(&b);
}

static void test_strict_errors(void **state)
{
    (void)state;
    load_fails("[]", RV_EPARSE, "obs.json: must be a JSON object");
    load_fails("{\"instances\": [], }", RV_EPARSE, "obs.json:1:");
    load_fails("{\"nodes\": [], \"nodes\": []}", RV_EPARSE, "duplicate");
    load_fails("{\"node\": []}", RV_EPARSE, "node: unknown field; did you mean 'nodes'?");
    load_fails("{\"zzz\": 1}", RV_EPARSE,
               "zzz: unknown field; known fields are revision, "
               "instances, nodes, clusters");
    load_fails("{\"nodes\": {}}", RV_EPARSE, "nodes: must be an array (got object)");

    const char *node_head = "{\"nodes\": [{\"cluster\": \"payments/billing\", \"node\": "
                            "\"billing-0\", \"engine\": \"postgresql\", \"version\": \"16\", "
                            "\"resources\": {\"cpu\": 1, \"memoryMiB\": 1, \"storageGiB\": 1}, "
                            "\"lastReport\": \"2026-11-21T05:00:00Z\", ";
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s\"role\": \"leader\", \"healthy\": true}]}", node_head);
    load_fails(buf, RV_EPARSE,
               "nodes[0].role: must be one of primary, replica, unknown (got \"leader\")");
    snprintf(buf, sizeof(buf), "%s\"role\": \"primary\", \"healthy\": \"yes\"}]}", node_head);
    load_fails(buf, RV_EPARSE, "nodes[0].healthy: must be true or false (got string)");
    snprintf(buf, sizeof(buf), "%s\"role\": \"primary\", \"healthy\": true, \"lagbytes\": 1}]}",
             node_head);
    load_fails(buf, RV_EPARSE, "nodes[0].lagbytes: unknown field; did you mean 'lagBytes'?");
    snprintf(buf, sizeof(buf), "%s\"role\": \"primary\", \"healthy\": true, \"lagBytes\": -1}]}",
             node_head);
    load_fails(buf, RV_EPARSE, "nodes[0].lagBytes: must be between 0 and");
    snprintf(buf, sizeof(buf), "%s\"role\": \"primary\"}]}", node_head);
    load_fails(buf, RV_EPARSE, "nodes[0].healthy: is required");
    snprintf(buf, sizeof(buf),
             "%s\"role\": \"primary\", \"healthy\": true, \"parameters\": {\"a\": 1}}]}",
             node_head);
    load_fails(buf, RV_EPARSE, "nodes[0].parameters.a: must be a string or");
    snprintf(buf, sizeof(buf),
             "%s\"role\": \"primary\", \"healthy\": true}, {\"cluster\": \"payments/billing\", "
             "\"node\": \"billing-0\", \"role\": \"replica\", \"engine\": \"postgresql\", "
             "\"version\": \"16\", \"healthy\": true, \"resources\": {\"cpu\": 1, "
             "\"memoryMiB\": 1, \"storageGiB\": 1}, \"lastReport\": "
             "\"2026-11-21T05:00:00Z\"}]}",
             node_head);
    load_fails(buf, RV_EPARSE, "node 'billing-0' of cluster 'payments/billing' is reported twice");

    load_fails("{\"instances\": [{\"provider\": \"local\", \"id\": \"i\", \"cluster\": "
               "\"billing\", \"node\": \"billing-0\", \"state\": \"running\"}]}",
               RV_EPARSE, "instances[0].cluster: must be \"namespace/name\" (got \"billing\")");
    load_fails("{\"instances\": [{\"provider\": \"local\", \"id\": \"i\", \"cluster\": "
               "\"Pay/billing\", \"node\": \"billing-0\", \"state\": \"running\"}]}",
               RV_EPARSE, "both parts DNS labels");
    load_fails("{\"instances\": [{\"provider\": \"local\", \"id\": \"i\", \"cluster\": "
               "\"p/b\", \"node\": \"b 0\", \"state\": \"running\"}]}",
               RV_EPARSE, "instances[0].node: must be a node name");
    load_fails("{\"instances\": [{\"provider\": \"local\", \"id\": \"i\", \"cluster\": "
               "\"p/b\", \"node\": \"b-0\", \"state\": \"up\"}]}",
               RV_EPARSE,
               "instances[0].state: must be one of provisioning, running, stopped, "
               "failed (got \"up\")");
    load_fails("{\"instances\": ["
               "{\"provider\": \"local\", \"id\": \"i\", \"cluster\": \"p/b\", \"node\": \"b-0\", "
               "\"state\": \"running\"},"
               "{\"provider\": \"local\", \"id\": \"i\", \"cluster\": \"p/b\", \"node\": \"b-1\", "
               "\"state\": \"running\"}]}",
               RV_EPARSE, "instance 'i' of provider 'local' is listed twice");
    load_fails("{\"clusters\": [{\"cluster\": \"p/b\", \"users\": [\"a\", \"a\"]}]}", RV_EPARSE,
               "clusters[0].users[1]: user 'a' is listed twice");
    load_fails("{\"clusters\": [{\"cluster\": \"p/b\", \"lastBackup\": \"yesterday\"}]}", RV_EPARSE,
               "clusters[0].lastBackup: must be an RFC 3339 time");
    load_fails("{\"clusters\": [{\"cluster\": \"p/b\"}, {\"cluster\": \"p/b\"}]}", RV_EPARSE,
               "cluster 'p/b' is listed twice");
    load_fails("{\"revision\": \"a\\u0000b\"}", RV_EPARSE, "obs.json:1:23:");
}

static void test_file_errors(void **state)
{
    (void)state;
    struct observed obs;
    struct rv_error err = {0};
    observed_init(&obs);
    assert_int_equal(observed_load_file(&obs, "/nonexistent/obs.json", &err), RV_EIO);
    assert_non_null(strstr(err.msg, "cannot open observed state '/nonexistent/obs.json'"));
}

static void test_staleness(void **state)
{
    (void)state;
    struct obs_node n = {.last_report = 1000, .ttl_s = 30};
    assert_false(observed_node_is_stale(&n, 1000));
    assert_false(observed_node_is_stale(&n, 1030));
    assert_true(observed_node_is_stale(&n, 1031));
    n.ttl_s = 0;
    assert_true(observed_node_is_stale(&n, 1000));
}

static void test_times(void **state)
{
    (void)state;
    int64_t t;
    char buf[OBSERVED_TIME_LEN];
    assert_int_equal(observed_time_parse(&t, "1970-01-01T00:00:00Z"), 0);
    assert_int_equal(t, 0);
    assert_int_equal(observed_time_parse(&t, "2026-11-21T05:00:00Z"), 0);
    observed_time_format(buf, t);
    assert_string_equal(buf, "2026-11-21T05:00:00Z");
    int64_t u;
    assert_int_equal(observed_time_parse(&u, "2026-11-21T00:30:00.123-04:30"), 0);
    assert_int_equal(u, t);
    assert_int_equal(observed_time_parse(&t, "2024-02-29T23:59:59Z"), 0);
    observed_time_format(buf, t + 1);
    assert_string_equal(buf, "2024-03-01T00:00:00Z");
    observed_time_format(buf, -1);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    assert_int_equal(observed_time_parse(&t, "2025-02-29T00:00:00Z"), RV_EINVAL);
    assert_int_equal(observed_time_parse(&t, "2026-11-21 05:00:00Z"), RV_EINVAL);
    assert_int_equal(observed_time_parse(&t, "2026-11-21T05:00:00"), RV_EINVAL);
    assert_int_equal(observed_time_parse(&t, "2026-11-21T25:00:00Z"), RV_EINVAL);
    assert_int_equal(observed_time_parse(&t, "2026-11-21T05:00:00Zjunk"), RV_EINVAL);
    assert_int_equal(observed_time_parse(&t, "2026-11-21T05:00:00."), RV_EINVAL);
}

/* The files in examples/observed are documentation: they must load. */
static void test_examples_load(void **state)
{
    (void)state;
    static const char *const files[] = {"empty.json", "fleet.json"};
    const char *src = getenv("REEVE_SOURCE_DIR");
    if (src == NULL)
        skip();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096];
        struct observed obs;
        struct rv_error err = {0};
        snprintf(path, sizeof(path), "%s/examples/observed/%s", src, files[i]);
        observed_init(&obs);
        if (observed_load_file(&obs, path, &err) != 0)
            fail_msg("%s", err.msg);
        observed_release(&obs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_full),     cmocka_unit_test(test_round_trip_and_revision),
        cmocka_unit_test(test_strict_errors), cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_staleness),     cmocka_unit_test(test_times),
        cmocka_unit_test(test_examples_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
