/* test_policy.c - Policy documents and the rules they put on clusters:
 * every rule's message and the position it points at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "spec.h"
#include "tutil.h"

/* policies/payments.yaml; the policy itself is at 1:1. */
static const char strict_policy[] =
    "apiVersion: reeve/v1\n"
    "kind: Policy\n"
    "metadata:\n"
    "  name: payments-rules\n"
    "spec:\n"
    "  namespaces: [payments]\n"
    "  engines:\n"
    "    - engine: postgresql\n"
    "      versions: [\"16\", \"17\"]\n"
    "  providers: [aws, openstack]\n"
    "  regions: [eu-1]\n"
    "  instances: {min: 2, max: 5}\n"
    "  resources: {maxCpu: 1, maxMemoryMiB: 2048, maxStorageGiB: 10}\n"
    "  require: {backup: true, pitr: true, deletionProtection: true, encryption: true}\n";

#define BY "policy 'payments-rules' (policies/payments.yaml:1:1)"

static const char *check(struct tspec *f)
{
    size_t len = 0;
    FILE *m;
    spec_set_check(&f->set, &f->diags);
    diag_list_sort(&f->diags);
    free(f->out);
    f->out = NULL;
    m = open_memstream(&f->out, &len);
    assert_non_null(m);
    for (size_t i = 0; i < f->diags.len; i++)
        diag_print(m, &f->diags.items[i]);
    fclose(m);
    return f->out;
}

static void test_policy_conversion(void **state)
{
    struct tspec *f = *state;
    tspec_add(f, SPEC_FILE_POLICIES, "policies/payments.yaml", strict_policy);
    assert_string_equal(check(f), "");
    assert_int_equal(f->set.npolicies, 1);
    const struct spec_policy *p = f->set.policies[0];
    assert_string_equal(p->name, "payments-rules");
    assert_string_equal(p->file, "policies/payments.yaml");
    assert_int_equal(p->pos.line, 1);
    assert_int_equal(p->name_pos.line, 4);
    assert_int_equal(p->name_pos.col, 9);
    assert_int_equal(p->nnamespaces, 1);
    assert_string_equal(p->namespaces[0], "payments");
    assert_int_equal(p->nengines, 1);
    assert_string_equal(p->engines[0].engine, "postgresql");
    assert_int_equal(p->engines[0].nversions, 2);
    assert_string_equal(p->engines[0].versions[1], "17");
    assert_int_equal(p->nproviders, 2);
    assert_int_equal(p->nregions, 1);
    assert_int_equal(p->instances_min, 2);
    assert_int_equal(p->instances_max, 5);
    assert_true(p->cpu_max == 1.0);
    assert_int_equal(p->memory_mib_max, 2048);
    assert_int_equal(p->storage_gib_max, 10);
    assert_true(p->require_backup && p->require_pitr && p->require_deletion_protection &&
                p->require_encryption);
}

static void test_every_rule_at_its_field(void **state)
{
    struct tspec *f = *state;
    tspec_add(f, SPEC_FILE_POLICIES, "policies/payments.yaml", strict_policy);
    tspec_add(f, SPEC_FILE_CLUSTERS, "clusters/billing.yaml",
              "apiVersion: reeve/v1\n"
              "kind: DatabaseCluster\n"
              "metadata:\n"
              "  name: billing\n"
              "  namespace: payments\n"
              "spec:\n"
              "  engine: postgresql\n"
              "  version: \"15\"\n"
              "  provider: local\n"
              "  resources:\n"
              "    cpu: 2\n"
              "    memoryMiB: 4096\n"
              "    storageGiB: 20\n"
              "  backup:\n"
              "    schedule: {full: \"0 2 * * *\"}\n"
              "    destination: {local: {path: /b}}\n"
              "  deletionProtection: false\n");
    assert_string_equal(
        check(f),
        "clusters/billing.yaml:6:1: error: spec.instances: 1 instance (the default) is below the "
        "minimum of 2 set by " BY "\n"
        "clusters/billing.yaml:6:1: error: spec.pitr.enabled: " BY " requires point-in-time "
        "recovery; set spec.pitr.enabled to true\n"
        "clusters/billing.yaml:6:1: error: spec.region: no region is set, and " BY " allows "
        "only: eu-1; set spec.region to one of them\n"
        "clusters/billing.yaml:8:12: error: spec.version: postgresql version '15' is not allowed "
        "by " BY "; allowed: 16, 17\n"
        "clusters/billing.yaml:9:13: error: spec.provider: provider 'local' is not allowed by " BY
        "; allowed: aws, openstack\n"
        "clusters/billing.yaml:11:10: error: spec.resources.cpu: 2 CPUs are above the maximum of "
        "1 set by " BY "\n"
        "clusters/billing.yaml:12:16: error: spec.resources.memoryMiB: 4096 MiB is above the "
        "maximum of 2048 MiB set by " BY "\n"
        "clusters/billing.yaml:13:17: error: spec.resources.storageGiB: 20 GiB is above the "
        "maximum of 10 GiB set by " BY "\n"
        "clusters/billing.yaml:14:3: error: spec.backup.encryption: " BY " requires encrypted "
        "backups; set spec.backup.encryption.keyRef\n"
        "clusters/billing.yaml:17:23: error: spec.deletionProtection: " BY " requires deletion "
        "protection; set spec.deletionProtection to true\n");
}

static void test_engine_instances_and_backup(void **state)
{
    struct tspec *f = *state;
    tspec_add(f, SPEC_FILE_POLICIES, "policies/payments.yaml", strict_policy);
    tspec_add(f, SPEC_FILE_CLUSTERS, "clusters/shop.yaml",
              "apiVersion: reeve/v1\n"
              "kind: DatabaseCluster\n"
              "metadata: {name: shop, namespace: payments}\n"
              "spec:\n"
              "  engine: mariadb\n"
              "  version: \"11.4\"\n"
              "  provider: aws\n"
              "  region: eu-1\n"
              "  instances: 7\n");
    assert_string_equal(
        check(f),
        "clusters/shop.yaml:4:1: error: spec.backup: " BY " requires backups; add spec.backup "
        "with a schedule and a destination\n"
        "clusters/shop.yaml:4:1: error: spec.pitr.enabled: " BY " requires point-in-time "
        "recovery; set spec.pitr.enabled to true\n"
        "clusters/shop.yaml:5:11: error: spec.engine: engine 'mariadb' is not allowed by " BY
        "; allowed: postgresql\n"
        "clusters/shop.yaml:9:14: error: spec.instances: 7 instances are above the maximum of 5 "
        "set by " BY "\n");
}

static void test_compliant_cluster_and_scope(void **state)
{
    struct tspec *f = *state;
    tspec_add(f, SPEC_FILE_POLICIES, "policies/payments.yaml", strict_policy);
    tspec_add(f, SPEC_FILE_POLICIES, "policies/all.yaml",
              "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: everyone}\n"
              "spec: {namespaces: [\"*\"], regions: [eu-1, eu-2]}\n");
    /* compliant with both */
    tspec_add(f, SPEC_FILE_CLUSTERS, "clusters/ok.yaml",
              "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
              "metadata: {name: ok, namespace: payments}\n"
              "spec:\n"
              "  engine: postgresql\n  version: \"16\"\n  provider: aws\n  region: eu-1\n"
              "  instances: 2\n  resources: {cpu: 0.5, memoryMiB: 2048, storageGiB: 10}\n"
              "  backup:\n"
              "    schedule: {full: \"0 2 * * *\"}\n"
              "    destination: {local: {path: /b}}\n"
              "    encryption: {keyRef: k}\n"
              "  pitr: {enabled: true}\n");
    /* another namespace: only the "*" policy applies */
    tspec_add(f, SPEC_FILE_CLUSTERS, "clusters/web.yaml",
              "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
              "metadata: {name: web, namespace: web}\n"
              "spec: {engine: mariadb, version: \"10.6\", provider: local, region: us-1}\n");
    assert_string_equal(check(f),
                        "clusters/web.yaml:4:67: error: spec.region: region 'us-1' is not allowed "
                        "by policy 'everyone' (policies/all.yaml:1:1); allowed: eu-1, eu-2\n");
}

static void test_terraform_cluster_paths(void **state)
{
    struct tspec *f = *state;
    tspec_add(f, SPEC_FILE_POLICIES, "policies/payments.yaml",
              "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: payments-rules}\n"
              "spec: {namespaces: [payments], instances: {min: 3}}\n");
    tspec_add(
        f, SPEC_FILE_CLUSTERS, "clusters/b.tf.json",
        "{\"resource\": {\"reeve_database_cluster\": {\n"
        "  \"billing\": {\"namespace\": \"payments\", \"engine\": \"postgresql\", \"version\": "
        "\"15\", \"provider\": \"local\", \"instances\": 2}\n"
        "}}}\n");
    assert_string_equal(check(f),
                        "clusters/b.tf.json:2:115: error: "
                        "resource.reeve_database_cluster.billing.instances: 2 instances are "
                        "below the minimum of 3 set by policy 'payments-rules' "
                        "(policies/payments.yaml:1:1)\n");
}

static void test_policy_min_above_max(void **state)
{
    struct tspec *f = *state;
    tspec_add(f, SPEC_FILE_POLICIES, "policies/p.yaml",
              "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: p}\n"
              "spec:\n  namespaces: [\"*\"]\n  instances: {min: 5, max: 3}\n");
    assert_string_equal(check(f), "policies/p.yaml:6:20: error: spec.instances.min: 5 is above "
                                  "spec.instances.max (3); no cluster could meet this policy\n");
    assert_int_equal(f->set.npolicies, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy_conversion, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_every_rule_at_its_field, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_engine_instances_and_backup, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_compliant_cluster_and_scope, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_terraform_cluster_paths, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_policy_min_above_max, tspec_setup, tspec_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
