/* test_planner.c - the planner: ordering, scale, rolling changes, parameters,
 * users, deletion, determinism. Desired specs are built by hand so these
 * tests do not depend on the spec loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "observed.h"
#include "planner.h"

#define NOW 1795000000 /* 2026-11-19, any fixed time */

/* ---- fixtures ------------------------------------------------------------ */

static struct spec_kv pg_params[] = {
    {"max_connections", "200", {0, 0}},
    {"work_mem", "8MB", {0, 0}},
};

static char *app_roles[] = {"readwrite"};
static char *ro_roles[] = {"readonly"};
static struct spec_user pg_users[] = {
    {.name = "app",
     .roles = app_roles,
     .nroles = 1,
     .password_ref = "sealed:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="},
};

static void base_cluster(struct spec_cluster *c, const char *ns, const char *name, int instances)
{
    memset(c, 0, sizeof(*c));
    c->namespace_ = (char *)ns;
    c->name = (char *)name;
    c->engine = "postgresql";
    c->version = "15";
    c->provider = "local";
    c->region = "local-1";
    c->instances = instances;
    c->resources.cpu = 2;
    c->resources.memory_mib = 4096;
    c->resources.storage_gib = 20;
    c->parameters = pg_params;
    c->nparameters = 2;
    c->users = pg_users;
    c->nusers = 1;
    c->replication.max_lag_on_failover_bytes = 1048576;
    c->backup.enabled = true;
    c->backup.full_cron = "0 2 * * *";
    c->backup.retention_days = 14;
    c->backup.method = "pg_basebackup";
    c->backup.dest_kind = SPEC_DEST_LOCAL;
    c->backup.local_path = "/var/lib/reeve/backups";
    c->backup.prefer_replica = true;
    c->maintenance.upgrade = "rolling";
    c->deletion_protection = false;
    snprintf(c->digest, sizeof(c->digest), "digest-%s-%s-%d", ns, name, instances);
}

struct fleet {
    struct spec_cluster c[4];
    struct spec_cluster *ptrs[4];
    struct spec_set set;
};

static void fleet_init(struct fleet *f, size_t n)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++)
        f->ptrs[i] = &f->c[i];
    f->set.clusters = f->ptrs;
    f->set.nclusters = n;
}

static void build(struct plan *p, const struct spec_set *desired, const struct observed *obs,
                  const struct spec_set *previous)
{
    struct rv_error err = {0};
    struct plan_opts opts = {
        .now = NOW, .previous = previous, .base = "b", .head = "h", .observed_revision = "r1"};
    int rc = plan_build(p, desired, obs, &opts, &err);
    if (rc != 0)
        fail_msg("plan_build: %s", err.msg);
}

/* observed state of a cluster as it would be after its spec was applied */
static void applied(struct observed *obs, const struct spec_set *set)
{
    struct rv_error err = {0};
    if (plan_assume_applied(obs, set, NOW, &err) != 0)
        fail_msg("plan_assume_applied: %s", err.msg);
}

static struct obs_node *node(struct observed *obs, const char *name)
{
    for (size_t i = 0; i < obs->nnodes; i++) {
        if (strcmp(obs->nodes[i].node, name) == 0)
            return &obs->nodes[i];
    }
    fail_msg("no observed node '%s'", name);
    return NULL;
}

/* "kind node" per action, one a line: the order a reader sees. */
static char *outline(const struct plan *p)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < p->nactions; i++) {
        const struct plan_action *a = &p->actions[i];
        buf_printf(&b, "%s%s%s\n", plan_kind_name(a->kind), a->node[0] ? " " : "", a->node);
    }
    return buf_detach(&b);
}

static void assert_outline(const struct plan *p, const char *want)
{
    char *got = outline(p);
    if (strcmp(got, want) != 0) {
        print_error("plan outline differs\n--- want\n%s--- got\n%s", want, got);
        free(got);
        fail();
    }
    free(got);
}

static const struct plan_action *find(const struct plan *p, const char *id)
{
    for (size_t i = 0; i < p->nactions; i++) {
        if (strcmp(p->actions[i].id, id) == 0)
            return &p->actions[i];
    }
    fail_msg("no action '%s' in the plan", id);
    return NULL;
}

/* deps of id, as a sorted comma-separated list of ids */
static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void assert_deps(const struct plan *p, const char *id, const char *want)
{
    const struct plan_action *a = find(p, id);
    const char *v[64];
    struct buf b = BUF_INIT;
    assert_true(a->ndeps < 64);
    for (size_t i = 0; i < a->ndeps; i++)
        v[i] = p->actions[a->deps[i]].id;
    qsort(v, a->ndeps, sizeof(v[0]), cmp_strp);
    for (size_t i = 0; i < a->ndeps; i++)
        buf_printf(&b, "%s%s", i ? "," : "", v[i]);
    char *got = buf_detach(&b);
    if (strcmp(got, want) != 0) {
        print_error("deps of '%s'\n  want: %s\n  got:  %s\n", id, want, got);
        free(got);
        fail();
    }
    free(got);
}

static char *text_of(const struct plan *p)
{
    char *data = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&data, &len);
    assert_non_null(f);
    assert_int_equal(plan_print_text(f, p, false), 0);
    fclose(f);
    return data;
}

static char *json_of(const struct plan *p)
{
    json_t *j = plan_to_json(p);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    assert_non_null(s);
    return s;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_fresh_fleet_order(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 2);
    base_cluster(&f.c[0], "payments", "billing", 3);
    base_cluster(&f.c[1], "analytics", "events", 1);
    f.c[1].users = NULL;
    f.c[1].nusers = 0;
    f.c[1].backup.enabled = false;
    observed_init(&obs);
    build(&p, &f.set, &obs, NULL);

    assert_outline(&p, "provision_instance events-0\n"
                       "bootstrap_primary events-0\n"
                       "ready\n"
                       "provision_instance billing-0\n"
                       "provision_instance billing-1\n"
                       "provision_instance billing-2\n"
                       "bootstrap_primary billing-0\n"
                       "add_replica billing-1\n"
                       "add_replica billing-2\n"
                       "configure_users\n"
                       "configure_backup\n"
                       "ready\n");
    /* provisioning has no prerequisites: all instances start in parallel */
    assert_int_equal(find(&p, "payments/billing/provision_instance/2")->ndeps, 0);
    assert_deps(&p, "payments/billing/bootstrap_primary/0",
                "payments/billing/provision_instance/0");
    /* replicas in parallel: each after the primary and its own instance only */
    assert_deps(&p, "payments/billing/add_replica/1",
                "payments/billing/bootstrap_primary/0,payments/billing/provision_instance/1");
    assert_deps(&p, "payments/billing/add_replica/2",
                "payments/billing/bootstrap_primary/0,payments/billing/provision_instance/2");
    assert_deps(&p, "payments/billing/configure_users",
                "payments/billing/add_replica/1,payments/billing/add_replica/2");
    assert_deps(&p, "payments/billing/configure_backup",
                "payments/billing/add_replica/1,payments/billing/add_replica/2");
    assert_deps(&p, "payments/billing/ready",
                "payments/billing/configure_backup,payments/billing/configure_users");
    assert_deps(&p, "analytics/events/ready", "analytics/events/bootstrap_primary/0");

    const struct plan_action *r2 = find(&p, "payments/billing/add_replica/2");
    assert_string_equal(r2->reason, "instances 0 → 3: replica 2 of 2");
    assert_string_equal(r2->waits_for, "primary 'billing-0' bootstrapped and healthy");
    assert_int_equal(r2->change, PLAN_CHANGE_ADD);
    assert_null(r2->blocked);
    assert_int_equal(strlen(r2->idempotency_key), 64);
    assert_int_equal(find(&p, "payments/billing/ready")->change, PLAN_CHANGE_NONE);

    /* the user's password reference never shows, only its name */
    const struct plan_action *u = find(&p, "payments/billing/configure_users");
    assert_string_equal(u->reason, "create 'app'");
    char *json = json_of(&p);
    assert_null(strstr(json, "sealed:"));
    assert_null(strstr(json, "QUJD"));

    assert_int_equal(p.summary.add, 10);
    assert_int_equal(p.summary.change, 0);
    assert_int_equal(p.summary.destroy, 0);
    assert_true(plan_has_changes(&p));
    char *text = text_of(&p);
    const char *last = strstr(text, "Plan: ");
    assert_non_null(last);
    assert_string_equal(last, "Plan: 10 to add, 0 to change, 0 to destroy.\n");
    assert_non_null(strstr(text,
                           "  + add_replica billing-2 (instances 0 → 3: replica 2 of 2)\n"
                           "      after: provision_instance billing-2, bootstrap_primary "
                           "billing-0\n"
                           "      waits for: primary 'billing-0' bootstrapped and healthy\n"));
    free(text);
    free(json);
    plan_release(&p);
}

static void test_from_backup(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "analytics", "snapshot", 2);
    f.c[0].bootstrap.kind = SPEC_BOOTSTRAP_FROM_BACKUP;
    f.c[0].bootstrap.from_cluster = "payments/billing";
    f.c[0].bootstrap.point_in_time = "2026-10-31T23:59:59Z";
    observed_init(&obs);
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "provision_instance snapshot-0\n"
                       "provision_instance snapshot-1\n"
                       "seed_from_backup snapshot-0\n"
                       "add_replica snapshot-1\n"
                       "configure_users\n"
                       "configure_backup\n"
                       "ready\n");
    const struct plan_action *s = find(&p, "analytics/snapshot/seed_from_backup/0");
    assert_non_null(strstr(s->reason, "'payments/billing'"));
    assert_non_null(strstr(s->reason, "2026-10-31T23:59:59Z"));
    assert_deps(&p, "analytics/snapshot/add_replica/1",
                "analytics/snapshot/provision_instance/1,analytics/snapshot/seed_from_backup/0");
    plan_release(&p);
}

static void test_noop_when_observed_matches(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 2);
    base_cluster(&f.c[0], "payments", "billing", 3);
    base_cluster(&f.c[1], "analytics", "events", 2);
    f.c[1].engine = "mariadb";
    f.c[1].version = "10.11";
    observed_init(&obs);
    applied(&obs, &f.set);
    /* agents report full versions; "15" is satisfied by 15.4 */
    free(node(&obs, "billing-0")->version);
    node(&obs, "billing-0")->version = strdup("15.4");
    free(node(&obs, "events-1")->version);
    node(&obs, "events-1")->version = strdup("10.11.6");
    build(&p, &f.set, &obs, NULL);
    assert_int_equal(p.nactions, 0);
    assert_false(plan_has_changes(&p));
    char *text = text_of(&p);
    assert_non_null(strstr(text, "No changes."));
    free(text);
    plan_release(&p);
    observed_release(&obs);
}

static void test_scale_out(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 3);
    observed_init(&obs);
    applied(&obs, &f.set);
    f.c[0].instances = 5;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "provision_instance billing-3\n"
                       "add_replica billing-3\n"
                       "provision_instance billing-4\n"
                       "add_replica billing-4\n"
                       "ready\n");
    const struct plan_action *a = find(&p, "payments/billing/add_replica/4");
    assert_string_equal(a->reason, "instances 3 → 5: replica 4 of 4");
    assert_string_equal(a->waits_for, "primary 'billing-0' healthy");
    assert_deps(&p, "payments/billing/add_replica/4", "payments/billing/provision_instance/4");
    assert_int_equal(p.summary.add, 4);
    plan_release(&p);
    observed_release(&obs);
}

static void test_scale_in_most_lagging_never_primary(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 5);
    observed_init(&obs);
    applied(&obs, &f.set);
    /* the primary has the highest ordinal (after an earlier failover) */
    node(&obs, "billing-0")->role = OBS_ROLE_REPLICA;
    node(&obs, "billing-4")->role = OBS_ROLE_PRIMARY;
    node(&obs, "billing-0")->lag_bytes = 100;
    node(&obs, "billing-1")->lag_bytes = 5000;
    node(&obs, "billing-2")->lag_bytes = 0;
    node(&obs, "billing-3")->lag_bytes = 7000;
    f.c[0].instances = 2;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "remove_replica billing-3\n"
                       "remove_replica billing-1\n"
                       "remove_replica billing-0\n"
                       "ready\n");
    /* one at a time */
    assert_int_equal(find(&p, "payments/billing/remove_replica/3")->ndeps, 0);
    assert_deps(&p, "payments/billing/remove_replica/1", "payments/billing/remove_replica/3");
    assert_deps(&p, "payments/billing/remove_replica/0", "payments/billing/remove_replica/1");
    const struct plan_action *r = find(&p, "payments/billing/remove_replica/3");
    assert_string_equal(r->reason,
                        "instances 5 → 2: remove 'billing-3', most lagging: 7000 bytes behind");
    assert_string_equal(r->waits_for, "primary 'billing-4' healthy");
    assert_int_equal(r->change, PLAN_CHANGE_DESTROY);
    assert_int_equal(p.summary.destroy, 3);
    plan_release(&p);

    /* down to one: only the primary stays */
    f.c[0].instances = 1;
    build(&p, &f.set, &obs, NULL);
    for (size_t i = 0; i < p.nactions; i++)
        assert_string_not_equal(p.actions[i].node, "billing-4");
    assert_int_equal(p.summary.destroy, 4);
    plan_release(&p);
    observed_release(&obs);
}

static void test_rolling_upgrade(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 3);
    observed_init(&obs);
    applied(&obs, &f.set);
    node(&obs, "billing-2")->lag_bytes = 4096; /* billing-1 is the better target */
    f.c[0].version = "16";
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "upgrade_replica billing-1\n"
                       "upgrade_replica billing-2\n"
                       "switchover billing-1\n"
                       "upgrade_node billing-0\n"
                       "ready\n");
    assert_int_equal(find(&p, "payments/billing/upgrade_replica/1")->ndeps, 0);
    assert_deps(&p, "payments/billing/upgrade_replica/2", "payments/billing/upgrade_replica/1");
    assert_deps(&p, "payments/billing/switchover/1", "payments/billing/upgrade_replica/2");
    assert_deps(&p, "payments/billing/upgrade_node/0", "payments/billing/switchover/1");
    assert_string_equal(find(&p, "payments/billing/upgrade_replica/2")->waits_for,
                        "replica 'billing-1' healthy and caught up");
    assert_string_equal(find(&p, "payments/billing/switchover/1")->waits_for,
                        "replica 'billing-1' healthy and caught up (lag at most 1048576 bytes)");
    assert_string_equal(find(&p, "payments/billing/upgrade_node/0")->reason,
                        "postgresql 15 → 16 in place; old primary, last");
    assert_int_equal(p.summary.change, 4);

    /* a downgrade is refused, with what to do instead */
    plan_release(&p);
    f.c[0].version = "14";
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "ready\n");
    assert_non_null(p.actions[0].blocked);
    assert_non_null(strstr(p.actions[0].blocked, "version cannot go back from 15 to 14"));
    assert_true(plan_has_changes(&p));
    plan_release(&p);
    observed_release(&obs);
}

static void test_single_instance_upgrade_in_place(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 1);
    observed_init(&obs);
    applied(&obs, &f.set);
    f.c[0].version = "16";
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "upgrade_node billing-0\nready\n");
    assert_non_null(strstr(p.actions[0].reason, "single instance"));
    plan_release(&p);
    observed_release(&obs);
}

static void test_resize(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 2);
    observed_init(&obs);
    applied(&obs, &f.set);

    /* storage only: grows in place on every node, in parallel, no restart */
    f.c[0].resources.storage_gib = 40;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "resize billing-0\nresize billing-1\nready\n");
    assert_int_equal(p.actions[1].ndeps, 0);
    assert_non_null(strstr(p.actions[0].reason, "no restart"));
    plan_release(&p);

    /* memory: rolling, replica first, then switchover and the old primary */
    f.c[0].resources.storage_gib = 20;
    f.c[0].resources.memory_mib = 8192;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "resize billing-1\nswitchover billing-1\nresize billing-0\nready\n");
    plan_release(&p);

    /* shrinking storage is refused */
    f.c[0].resources.memory_mib = 4096;
    f.c[0].resources.storage_gib = 10;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "ready\n");
    assert_non_null(strstr(p.actions[0].blocked, "storage cannot shrink"));
    plan_release(&p);
    observed_release(&obs);
}

static void test_parameters_reload_vs_restart(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    struct spec_kv params[2] = {{"max_connections", "200", {0, 0}}, {"work_mem", "8MB", {0, 0}}};
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 3);
    f.c[0].parameters = params;
    observed_init(&obs);
    applied(&obs, &f.set);

    /* work_mem reloads: one action, no restarts */
    params[1].value = "16MB";
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "configure_parameters\nready\n");
    assert_string_equal(p.actions[0].reason, "work_mem 8MB → 16MB [reload]");
    plan_release(&p);

    /* max_connections needs a restart: written first, then a rolling restart */
    params[0].value = "500";
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "configure_parameters\n"
                       "restart_node billing-1\n"
                       "restart_node billing-2\n"
                       "switchover billing-1\n"
                       "restart_node billing-0\n"
                       "ready\n");
    assert_string_equal(p.actions[0].reason,
                        "max_connections 200 → 500 [restart], work_mem 8MB → 16MB [reload]");
    assert_deps(&p, "payments/billing/restart_node/1", "payments/billing/configure_parameters");
    assert_deps(&p, "payments/billing/restart_node/2", "payments/billing/restart_node/1");
    plan_release(&p);

    /* lowering max_connections: standbys may not run below the primary, so
     * the primary restarts first and no switchover is needed */
    params[0].value = "100";
    params[1].value = "8MB";
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "configure_parameters\n"
                       "restart_node billing-0\n"
                       "restart_node billing-1\n"
                       "restart_node billing-2\n"
                       "ready\n");
    assert_deps(&p, "payments/billing/restart_node/1", "payments/billing/restart_node/0");
    assert_non_null(strstr(find(&p, "payments/billing/restart_node/0")->reason, "primary first"));
    plan_release(&p);

    /* ... which cannot share a commit with an upgrade (replicas first) */
    f.c[0].version = "16";
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "ready\n");
    assert_non_null(strstr(p.actions[0].blocked, "lowering max_connections"));
    plan_release(&p);
    f.c[0].version = "15";

    /* a parameter an agent says is pending a restart: only that node */
    params[0].value = "200";
    params[1].value = "8MB";
    node(&obs, "billing-2")->params[0].pending_restart = true;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "restart_node billing-2\nready\n");
    assert_non_null(strstr(p.actions[0].reason, "pending a restart"));
    plan_release(&p);
    observed_release(&obs);

    assert_true(plan_param_needs_restart("postgresql", "15", "shared_buffers"));
    assert_true(plan_param_needs_restart("postgresql", "15", "Shared_Buffers"));
    assert_true(plan_param_needs_restart("postgresql", "15", "max_connections"));
    assert_false(plan_param_needs_restart("postgresql", "15", "work_mem"));
    assert_false(plan_param_needs_restart("mariadb", "10.11", "max_connections"));
    assert_false(plan_param_needs_restart("mariadb", "10.11", "innodb_buffer_pool_size"));
    assert_false(plan_param_needs_restart("mariadb", "10.11", "innodb_log_file_size")); /* dynamic since 10.9 */
    assert_true(plan_param_needs_restart("mariadb", "10.11", "innodb-buffer-pool-instances"));
    /* the 10.11 catalog: static variables restart, dynamic ones do not */
    assert_true(plan_param_needs_restart("mariadb", "10.11", "innodb_log_buffer_size"));
    assert_true(plan_param_needs_restart("mariadb", "11.4", "performance_schema"));
    assert_false(plan_param_needs_restart("mariadb", "10.11", "long_query_time"));
    /* PostgreSQL: an extension's parameter the catalog lacks reloads */
    assert_false(plan_param_needs_restart("postgresql", "16", "pg_stat_statements.track"));
}

static void test_users(void **state)
{
    (void)state;
    struct fleet f, prev;
    struct observed obs;
    struct plan p;
    struct spec_user users[2] = {
        {.name = "app", .roles = app_roles, .nroles = 1, .password_ref = "env:APP_PW"},
        {.name = "reporting", .roles = ro_roles, .nroles = 1, .password_ref = "env:REPORTING_PW"}};
    struct spec_user old_users[2] = {
        {.name = "app", .roles = ro_roles, .nroles = 1, .password_ref = "env:APP_PW"},
        {.name = "legacy", .roles = ro_roles, .nroles = 1, .password_ref = "env:LEGACY_PW"}};
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 1);
    fleet_init(&prev, 1);
    base_cluster(&prev.c[0], "payments", "billing", 1);
    prev.c[0].users = old_users;
    prev.c[0].nusers = 2;
    observed_init(&obs);
    applied(&obs, &prev.set);
    /* agents also list the engine's own roles: never dropped */
    obs.clusters[0].users = realloc(obs.clusters[0].users, 3 * sizeof(char *));
    obs.clusters[0].users[2] = strdup("postgres");
    obs.clusters[0].nusers = 3;

    f.c[0].users = users;
    f.c[0].nusers = 2;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "configure_users\nready\n");
    assert_string_equal(p.actions[0].reason, "create 'reporting'; drop 'legacy'");
    assert_int_equal(p.actions[0].change, PLAN_CHANGE_CHANGE);
    plan_release(&p);

    /* with the last applied spec, a role change is an alter */
    build(&p, &f.set, &obs, &prev.set);
    assert_string_equal(p.actions[0].reason, "create 'reporting'; alter 'app' [roles]; "
                                             "drop 'legacy'");
    char *json = json_of(&p);
    assert_null(strstr(json, "APP_PW"));
    free(json);
    plan_release(&p);
    observed_release(&obs);
}

static void test_deletion(void **state)
{
    (void)state;
    struct fleet f, empty;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 2);
    f.c[0].deletion_protection = true;
    fleet_init(&empty, 0);
    observed_init(&obs);
    applied(&obs, &f.set);

    /* protected: both steps blocked, with what to do */
    build(&p, &empty.set, &obs, NULL);
    assert_outline(&p, "final_backup billing-0\ndecommission\n");
    assert_non_null(p.actions[0].blocked);
    assert_non_null(p.actions[1].blocked);
    assert_non_null(strstr(p.actions[1].blocked, "deletionProtection is true"));
    assert_int_equal(p.summary.destroy, 1);
    assert_int_equal(p.summary.blocked, 2);
    char *text = text_of(&p);
    assert_non_null(strstr(text, "! blocked: deletionProtection is true"));
    free(text);
    plan_release(&p);

    /* the last applied spec wins over the reconciler's facts */
    obs.clusters[0].deletion_protection = OBS_FALSE;
    build(&p, &empty.set, &obs, &f.set);
    assert_non_null(p.actions[1].blocked);
    plan_release(&p);

    /* unprotected: final backup first, then decommission */
    f.c[0].deletion_protection = false;
    build(&p, &empty.set, &obs, &f.set);
    assert_outline(&p, "final_backup billing-0\ndecommission\n");
    assert_null(p.actions[0].blocked);
    assert_null(p.actions[1].blocked);
    assert_deps(&p, "payments/billing/decommission", "payments/billing/final_backup/0");
    assert_int_equal(p.actions[0].change, PLAN_CHANGE_NONE);
    assert_int_equal(p.actions[1].change, PLAN_CHANGE_DESTROY);
    assert_string_equal(p.actions[1].reason,
                        "spec deleted: delete 2 instances: 'billing-0', 'billing-1'");
    plan_release(&p);

    /* unknown protection (no spec, no fact) is treated as protected */
    obs.clusters[0].deletion_protection = OBS_UNKNOWN;
    build(&p, &empty.set, &obs, NULL);
    assert_non_null(p.actions[1].blocked);
    plan_release(&p);
    observed_release(&obs);
}

static void test_determinism(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p1, p2;
    fleet_init(&f, 3);
    base_cluster(&f.c[0], "payments", "billing", 3);
    base_cluster(&f.c[1], "analytics", "events", 2);
    base_cluster(&f.c[2], "identity", "accounts", 2);
    observed_init(&obs);
    applied(&obs, &f.set);
    f.c[0].instances = 5;
    f.c[0].version = "16";
    f.c[1].instances = 1;
    build(&p1, &f.set, &obs, NULL);
    char *a = json_of(&p1);

    /* the same input in another order gives the same bytes */
    struct spec_cluster *t = f.ptrs[0];
    f.ptrs[0] = f.ptrs[2];
    f.ptrs[2] = t;
    struct obs_node tmp = obs.nodes[0];
    obs.nodes[0] = obs.nodes[obs.nnodes - 1];
    obs.nodes[obs.nnodes - 1] = tmp;
    build(&p2, &f.set, &obs, NULL);
    char *b = json_of(&p2);
    assert_string_equal(a, b);
    char *ta = text_of(&p1), *tb = text_of(&p2);
    assert_string_equal(ta, tb);

    /* and the JSON carries what a client needs */
    json_error_t jerr;
    json_t *j = json_loads(a, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "base")), "b");
    assert_string_equal(json_string_value(json_object_get(j, "head")), "h");
    assert_string_equal(json_string_value(json_object_get(j, "observed_revision")), "r1");
    json_t *first = json_array_get(json_object_get(j, "actions"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "cluster")), "analytics/events");
    assert_true(json_is_array(json_object_get(first, "depends_on")));
    assert_true(json_is_null(json_object_get(first, "blocked")));
    json_decref(j);

    /* idempotency keys do not depend on plan position */
    for (size_t i = 0; i < p1.nactions; i++)
        assert_string_equal(p1.actions[i].idempotency_key,
                            find(&p2, p1.actions[i].id)->idempotency_key);
    free(a);
    free(b);
    free(ta);
    free(tb);
    plan_release(&p1);
    plan_release(&p2);
    observed_release(&obs);
}

static void test_observed_trouble(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan p;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 3);
    observed_init(&obs);
    applied(&obs, &f.set);

    /* two live primaries: nothing is planned but the reason */
    node(&obs, "billing-2")->role = OBS_ROLE_PRIMARY;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "ready\n");
    assert_non_null(strstr(p.actions[0].blocked, "2 nodes report role primary"));
    plan_release(&p);
    node(&obs, "billing-2")->role = OBS_ROLE_REPLICA;

    /* a failed replica instance is removed and replaced under the same name */
    obs.instances[1].state = OBS_STATE_FAILED;
    build(&p, &f.set, &obs, NULL);
    assert_outline(&p, "remove_replica billing-1\n"
                       "provision_instance billing-1\n"
                       "add_replica billing-1\n"
                       "ready\n");
    assert_deps(&p, "payments/billing/provision_instance/1", "payments/billing/remove_replica/1");
    plan_release(&p);
    obs.instances[1].state = OBS_STATE_RUNNING;

    /* a stale primary: the plan says so in what it waits for */
    node(&obs, "billing-0")->last_report = NOW - 3600;
    f.c[0].instances = 4;
    build(&p, &f.set, &obs, NULL);
    assert_string_equal(find(&p, "payments/billing/add_replica/3")->waits_for,
                        "primary 'billing-0' healthy (its last report is stale)");
    plan_release(&p);
    observed_release(&obs);
}

static void test_backup_digest(void **state)
{
    (void)state;
    struct spec_cluster a, b;
    char da[65], db[65];
    base_cluster(&a, "payments", "billing", 1);
    base_cluster(&b, "payments", "billing", 3);
    plan_backup_digest(da, &a);
    plan_backup_digest(db, &b);
    assert_int_equal(strlen(da), 64);
    assert_string_equal(da, db); /* instances are not part of the policy */
    b.backup.retention_days = 30;
    plan_backup_digest(db, &b);
    assert_string_not_equal(da, db);
    b.backup.enabled = false;
    plan_backup_digest(db, &b);
    assert_string_equal(db, "");
}

/* Disruptive actions outside the cluster's maintenance window say what
 * they wait for; others do not; inside the window nothing is added, and
 * the window never changes an idempotency key. */
static void test_maintenance_window(void **state)
{
    (void)state;
    struct fleet f;
    struct observed obs;
    struct plan closed, open;
    fleet_init(&f, 1);
    base_cluster(&f.c[0], "payments", "billing", 3);
    observed_init(&obs);
    applied(&obs, &f.set);
    f.c[0].version = "16";
    f.c[0].instances = 4;
    /* NOW is Wednesday 2026-11-18 11:06:40 UTC */
    f.c[0].maintenance.window = "Sun 02:00-04:00";
    build(&closed, &f.set, &obs, NULL);
    f.c[0].maintenance.window = "Wed 11:00-12:00";
    build(&open, &f.set, &obs, NULL);
    assert_int_equal(closed.nactions, open.nactions);

    const char *in = "waiting for maintenance window Sun 02:00-04:00 (opens in 3d14h54m)";
    /* appended to what the action waits for already */
    assert_string_equal(find(&closed, "payments/billing/upgrade_replica/1")->waits_for,
                        "primary 'billing-0' healthy; waiting for maintenance window Sun "
                        "02:00-04:00 (opens in 3d14h54m)");
    size_t held = 0;
    for (size_t i = 0; i < closed.nactions; i++) {
        const struct plan_action *a = &closed.actions[i];
        const char *w = strstr(a->waits_for, "waiting for maintenance window");
        bool says = w != NULL;
        if (says)
            assert_string_equal(w, in);
        switch (a->kind) {
        case PLAN_UPGRADE_REPLICA:
        case PLAN_SWITCHOVER:
        case PLAN_UPGRADE_NODE:
            assert_true(says);
            held++;
            break;
        default: /* add_replica, configure_*, ready: any time */
            if (says)
                fail_msg("'%s' should not wait for the window", a->id);
        }
        assert_null(strstr(open.actions[i].waits_for, "maintenance window"));
        assert_string_equal(a->idempotency_key, open.actions[i].idempotency_key);
    }
    assert_int_equal(held, 4);
    assert_int_equal(find(&closed, "payments/billing/add_replica/3")->change, PLAN_CHANGE_ADD);
    plan_release(&closed);
    plan_release(&open);
    observed_release(&obs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_fleet_order),
        cmocka_unit_test(test_from_backup),
        cmocka_unit_test(test_noop_when_observed_matches),
        cmocka_unit_test(test_scale_out),
        cmocka_unit_test(test_scale_in_most_lagging_never_primary),
        cmocka_unit_test(test_rolling_upgrade),
        cmocka_unit_test(test_single_instance_upgrade_in_place),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_parameters_reload_vs_restart),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_deletion),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_observed_trouble),
        cmocka_unit_test(test_backup_digest),
        cmocka_unit_test(test_maintenance_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
