/* test_spec.c - the spec model: conversion with defaults, YAML and
 * Terraform JSON giving the same cluster, the semantic checks, the
 * cross-file checks, the directory walk and incremental removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "crypto.h"
#include "diag.h"
#include "doc.h"
#include "err.h"
#include "limits.h"
#include "schema.h"
#include "spec.h"
#include "tutil.h"

/* Lines 1-9 of a cluster; tests append from line 10. Positions used below:
 * metadata.name value at 4:9, the `spec` key at 6:1. */
#define HEAD                                                                                       \
    "apiVersion: reeve/v1\n"                                                                       \
    "kind: DatabaseCluster\n"                                                                      \
    "metadata:\n"                                                                                  \
    "  name: billing\n"                                                                            \
    "  namespace: payments\n"                                                                      \
    "spec:\n"                                                                                      \
    "  engine: postgresql\n"                                                                       \
    "  version: \"15\"\n"                                                                          \
    "  provider: local\n"

static void add_cluster(struct tspec *f, const char *path, const char *text)
{
    tspec_add(f, SPEC_FILE_CLUSTERS, path, text);
}

/* The diagnostics as `reeve validate` prints them, sorted. */
static const char *render(struct tspec *f)
{
    size_t len = 0;
    FILE *m;
    free(f->out);
    f->out = NULL;
    m = open_memstream(&f->out, &len);
    assert_non_null(m);
    diag_list_sort(&f->diags);
    for (size_t i = 0; i < f->diags.len; i++)
        diag_print(m, &f->diags.items[i]);
    fclose(m);
    return f->out;
}

/* ------------------------------------------------------------ conversion */

static void test_defaults_come_from_the_schema(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "spec.instances",
        "spec.resources.cpu",
        "spec.resources.memoryMiB",
        "spec.resources.storageGiB",
        "spec.replication.synchronous",
        "spec.replication.maxLagOnFailoverBytes",
        "spec.backup.retention.days",
        "spec.backup.preferReplica",
        "spec.backup.destination.s3.region",
        "spec.pitr.enabled",
        "spec.maintenance.upgrade",
        "spec.deletionProtection",
        "spec.users[].roles",
    };
    struct rv_error err;
    const struct schema *s = schema_get(SCHEMA_CLUSTER, &err);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (schema_default(s, paths[i]) == NULL)
            fail_msg("cluster.schema.json declares no default for %s", paths[i]);
    }
}

static void test_minimal_cluster_gets_defaults(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml", HEAD);
    assert_string_equal(render(f), "");
    assert_int_equal(f->set.nclusters, 1);
    assert_int_equal(f->set.nfiles, 1);
    const struct spec_cluster *c = f->set.clusters[0];
    assert_string_equal(c->file, "clusters/billing.yaml");
    assert_string_equal(c->name, "billing");
    assert_string_equal(c->namespace_, "payments");
    assert_int_equal(c->name_pos.line, 4);
    assert_int_equal(c->name_pos.col, 9);
    assert_int_equal(c->pos.line, 1);
    assert_false(c->from_terraform);
    assert_string_equal(c->engine, "postgresql");
    assert_string_equal(c->version, "15");
    assert_string_equal(c->provider, "local");
    assert_null(c->region);
    assert_int_equal(c->instances, 1);
    assert_true(c->resources.cpu == 1.0);
    assert_int_equal(c->resources.memory_mib, 1024);
    assert_int_equal(c->resources.storage_gib, 10);
    assert_int_equal(c->replication.synchronous, 0);
    assert_int_equal(c->replication.max_lag_on_failover_bytes, 1048576);
    assert_false(c->backup.enabled);
    assert_false(c->pitr_enabled);
    assert_int_equal(c->bootstrap.kind, SPEC_BOOTSTRAP_INITDB);
    assert_int_equal(c->nusers, 0);
    assert_int_equal(c->nallowed_cidrs, 0);
    assert_null(c->maintenance.window);
    assert_string_equal(c->maintenance.upgrade, "rolling");
    assert_true(c->deletion_protection);
    assert_int_equal(strlen(c->digest), 64);
    assert_string_equal(c->field_prefix, "spec");
    assert_int_equal(c->at.spec.line, 6);
    assert_int_equal(c->at.instances.line, 0); /* not written */
    assert_int_equal(c->at.version.line, 8);
}

static void test_backup_defaults_by_engine(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/pg.yaml",
                HEAD
                "  backup:\n"
                "    schedule: {full: \"0 2 * * *\"}\n"
                "    destination: {s3: {bucket: backups, endpoint: \"https://s3.example.com\", "
                "credentialsRef: s3-main}}\n"
                "  users: [{name: app, passwordRef: \"env:APP\"}]\n");
    add_cluster(f, "clusters/maria.yaml",
                "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                "metadata: {name: shop, namespace: retail}\n"
                "spec:\n  engine: mariadb\n  version: \"10.11\"\n  provider: local\n"
                "  backup:\n"
                "    schedule: {full: \"0 3 * * *\"}\n"
                "    destination: {local: {path: /var/backups}}\n");
    assert_string_equal(render(f), "");
    assert_int_equal(f->set.nclusters, 2);
    const struct spec_cluster *pg = f->set.clusters[0], *my = f->set.clusters[1];
    assert_true(pg->backup.enabled);
    assert_string_equal(pg->backup.method, "pg_basebackup");
    assert_int_equal(pg->backup.retention_days, 7);
    assert_true(pg->backup.prefer_replica);
    assert_int_equal(pg->backup.dest_kind, SPEC_DEST_S3);
    assert_string_equal(pg->backup.bucket, "backups");
    assert_string_equal(pg->backup.prefix, "payments/billing");
    assert_string_equal(pg->backup.s3_region, "us-east-1");
    assert_string_equal(pg->backup.full_cron, "0 2 * * *");
    assert_null(pg->backup.incremental_cron);
    assert_null(pg->backup.encryption_key_ref);
    assert_int_equal(pg->nusers, 1);
    assert_int_equal(pg->users[0].nroles, 1);
    assert_string_equal(pg->users[0].roles[0], "readonly");
    assert_string_equal(pg->users[0].password_ref, "env:APP");
    assert_string_equal(my->backup.method, "mariabackup");
    assert_int_equal(my->backup.dest_kind, SPEC_DEST_LOCAL);
    assert_string_equal(my->backup.local_path, "/var/backups");
}

static void test_parameters_become_engine_text(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/pg.yaml",
                HEAD "  parameters:\n"
                     "    max_connections: 200\n"
                     "    log_connections: true\n"
                     "    jit: false\n"
                     "    random_page_cost: 1.1\n"
                     "    shared_buffers: 1GB\n");
    add_cluster(f, "clusters/my.yaml",
                "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                "metadata: {name: shop, namespace: retail}\n"
                "spec: {engine: mariadb, version: \"11.4\", provider: local,\n"
                "       parameters: {slow_query_log: true, skip_name_resolve: false}}\n");
    assert_string_equal(render(f), "");
    const struct spec_cluster *pg = f->set.clusters[0], *my = f->set.clusters[1];
    assert_int_equal(pg->nparameters, 5);
    assert_string_equal(pg->parameters[0].key, "max_connections");
    assert_string_equal(pg->parameters[0].value, "200");
    assert_int_equal(pg->parameters[0].pos.line, 11);
    assert_string_equal(pg->parameters[1].value, "on");
    assert_string_equal(pg->parameters[2].value, "off");
    assert_string_equal(pg->parameters[3].value, "1.1");
    assert_string_equal(pg->parameters[4].value, "1GB");
    assert_string_equal(my->parameters[0].value, "ON");
    assert_string_equal(my->parameters[1].value, "OFF");
}

static const char full_yaml[] =
    "apiVersion: reeve/v1\n"
    "kind: DatabaseCluster\n"
    "metadata:\n"
    "  name: billing\n"
    "  namespace: payments\n"
    "  labels: {tier: critical}\n"
    "spec:\n"
    "  engine: postgresql\n"
    "  version: \"15\"\n"
    "  provider: local\n"
    "  region: local-1\n"
    "  instances: 3\n"
    "  resources: {cpu: 2, memoryMiB: 4096, storageGiB: 20}\n"
    "  parameters: {max_connections: 200, log_connections: true}\n"
    "  replication: {synchronous: 1}\n"
    "  backup:\n"
    "    schedule: {full: \"0 2 * * *\", incremental: \"*/15 * * * *\"}\n"
    "    retention: {days: 14}\n"
    "    destination:\n"
    "      s3: {bucket: backups, endpoint: \"https://s3.example.com\", credentialsRef: s3-main}\n"
    "    encryption: {keyRef: backup-key}\n"
    "  pitr: {enabled: true}\n"
    "  users: [{name: app, roles: [readwrite], passwordRef: \"env:APP_PASSWORD\"}]\n"
    "  access: {allowedCIDRs: [\"127.0.0.0/8\"]}\n"
    "  maintenance: {window: \"Sun 02:00-04:00\"}\n";

/* The same cluster, with some defaults written out and the parameters
 * written as the text the engine gets. */
static const char full_tf[] =
    "{\n"
    "  \"resource\": {\n"
    "    \"reeve_database_cluster\": {\n"
    "      \"billing\": {\n"
    "        \"namespace\": \"payments\",\n"
    "        \"labels\": {\"tier\": \"critical\"},\n"
    "        \"engine\": \"postgresql\",\n"
    "        \"version\": \"15\",\n"
    "        \"provider\": \"local\",\n"
    "        \"region\": \"local-1\",\n"
    "        \"instances\": 3,\n"
    "        \"resources\": {\"cpu\": 2, \"memoryMiB\": 4096, \"storageGiB\": 20},\n"
    "        \"parameters\": {\"max_connections\": \"200\", \"log_connections\": \"on\"},\n"
    "        \"replication\": {\"synchronous\": 1, \"maxLagOnFailoverBytes\": 1048576},\n"
    "        \"backup\": {\n"
    "          \"schedule\": {\"full\": \"0 2 * * *\", \"incremental\": \"*/15 * * * *\"},\n"
    "          \"retention\": {\"days\": 14},\n"
    "          \"method\": \"pg_basebackup\",\n"
    "          \"destination\": {\"s3\": {\"bucket\": \"backups\", \"prefix\": "
    "\"payments/billing\",\n"
    "            \"endpoint\": \"https://s3.example.com\", \"region\": \"us-east-1\",\n"
    "            \"credentialsRef\": \"s3-main\"}},\n"
    "          \"encryption\": {\"keyRef\": \"backup-key\"},\n"
    "          \"preferReplica\": true\n"
    "        },\n"
    "        \"pitr\": {\"enabled\": true},\n"
    "        \"bootstrap\": {\"initdb\": {}},\n"
    "        \"users\": [{\"name\": \"app\", \"roles\": [\"readwrite\"], \"passwordRef\": "
    "\"env:APP_PASSWORD\"}],\n"
    "        \"access\": {\"allowedCIDRs\": [\"127.0.0.0/8\"]},\n"
    "        \"maintenance\": {\"window\": \"Sun 02:00-04:00\", \"upgrade\": \"rolling\"},\n"
    "        \"deletionProtection\": true\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n";

static void test_yaml_and_terraform_give_the_same_cluster(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml", full_yaml);
    add_cluster(f, "clusters/billing.tf.json", full_tf);
    assert_int_equal(f->set.nclusters, 2);
    const struct spec_cluster *y = f->set.clusters[0], *t = f->set.clusters[1];
    assert_false(y->from_terraform);
    assert_true(t->from_terraform);
    assert_string_equal(t->name, "billing");
    assert_string_equal(t->namespace_, "payments");
    assert_int_equal(t->name_pos.line, 4); /* the block label */
    assert_int_equal(t->name_pos.col, 7);
    assert_string_equal(t->field_prefix, "resource.reeve_database_cluster.billing");
    assert_string_equal(y->digest, t->digest);
    /* and they are one cluster defined twice: an error at each */
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f),
                        "clusters/billing.tf.json:4:7: error: "
                        "resource.reeve_database_cluster.billing: cluster 'payments/billing' is "
                        "already defined at clusters/billing.yaml:4:9; rename or remove one of "
                        "them\n"
                        "clusters/billing.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is also defined at clusters/billing.tf.json:4:7; "
                        "rename or remove one of them\n");
}

static void test_digest_follows_desired_state(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/a.yaml", HEAD);
    add_cluster(f, "clusters/b.yaml", HEAD "  instances: 1\n  deletionProtection: true\n");
    add_cluster(f, "clusters/c.yaml", HEAD "  instances: 2\n");
    assert_string_equal(render(f), "");
    assert_string_equal(f->set.clusters[0]->digest, f->set.clusters[1]->digest);
    assert_string_not_equal(f->set.clusters[0]->digest, f->set.clusters[2]->digest);
}

/* The digest is hashed from a canonical text written straight into
 * SHA-256; it must stay the SHA-256 of spec_cluster_to_json()'s text with
 * sorted keys, byte for byte, for every shape of cluster (so a digest
 * recorded before stays valid). */
static void test_digest_is_the_canonical_json(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml", full_yaml);
    add_cluster(f, "clusters/billing.tf.json", full_tf);
    add_cluster(
        f, "clusters/odd.yaml",
        "apiVersion: reeve/v1\n"
        "kind: DatabaseCluster\n"
        "metadata:\n"
        "  name: odd\n"
        "  namespace: team\n"
        "  labels: {z: \"last\", a/b: \"tab\\there \\\"quoted\\\" back\\\\slash\",\n"
        "           A: \"\\x01\\x1f\\x7f caf\\u00e9 \\u2028 \\U0001F600 /\", m.n: \"\"}\n"
        "spec:\n"
        "  engine: mariadb\n"
        "  version: \"11.4\"\n"
        "  provider: local\n"
        "  resources: {cpu: 0.3}\n"
        "  parameters: {b: 1.5, a: \"x\\ny\", c: false, aa: 007}\n"
        "  backup:\n"
        "    schedule: {full: \"0 2 * * *\"}\n"
        "    method: external\n"
        "    external: {program: /usr/bin/dump, args: [\"--a=1\", \"\"]}\n"
        "    destination: {local: {path: /var/backups}}\n"
        "    preferReplica: false\n"
        "  bootstrap:\n"
        "    fromBackup: {cluster: team/old, pointInTime: \"2026-11-20T10:00:00.5+01:00\"}\n"
        "  users:\n"
        "    - {name: a, roles: [readonly, admin], passwordRef: \"env:A\"}\n"
        "    - {name: b, passwordRef: \"file:/run/secret\"}\n"
        "  maintenance: {upgrade: replace}\n"
        "  deletionProtection: false\n"
        "---\n"
        "apiVersion: reeve/v1\n"
        "kind: DatabaseCluster\n"
        "metadata: {name: tiny, namespace: team}\n"
        "spec: {engine: postgresql, version: \"17\", provider: local,\n"
        "       resources: {cpu: 1.0e+2}, bootstrap: {fromBackup: {cluster: team/odd,\n"
        "       backupId: x.1}}}\n");
    assert_string_equal(render(f), "");
    assert_int_equal(f->set.nclusters, 4);
    for (size_t i = 0; i < f->set.nclusters; i++) {
        char want[CRYPTO_SHA256_HEX_SIZE];
        json_t *j = spec_cluster_to_json(f->set.clusters[i]);
        char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
        assert_non_null(text);
        assert_int_equal(crypto_sha256_hex(want, text, strlen(text)), 0);
        if (strcmp(want, f->set.clusters[i]->digest) != 0)
            fprintf(stderr, "cluster %s: digest differs from the SHA-256 of\n%s\n",
                    f->set.clusters[i]->name, text);
        assert_string_equal(f->set.clusters[i]->digest, want);
        free(text);
        json_decref(j);
    }
}

static void test_terraform_name_and_blocks(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/x.tf.json",
                "{\"resource\": {\"reeve_database_cluster\": {\n"
                "  \"one\": {\"namespace\": \"team\", \"engine\": \"mariadb\", \"version\": "
                "\"11.4\", \"provider\": \"local\"},\n"
                "  \"two\": {\"namespace\": \"team\", \"name\": \"renamed\", \"engine\": "
                "\"mariadb\", \"version\": \"10.6\", \"provider\": \"local\"}\n"
                "}}}\n");
    assert_string_equal(render(f), "");
    assert_int_equal(f->set.nclusters, 2);
    assert_string_equal(f->set.clusters[0]->name, "one");
    assert_string_equal(f->set.clusters[1]->name, "renamed");
    assert_int_equal(f->set.clusters[1]->name_pos.line, 3);
    assert_null(f->set.clusters[1]->backup.method);
}

static void test_to_json_is_a_valid_document(void **state)
{
    struct tspec *f = *state;
    struct rv_error err;
    struct doc_file *df = NULL;
    add_cluster(f, "clusters/billing.yaml", full_yaml);
    assert_int_equal(f->set.nclusters, 1);
    json_t *j = spec_cluster_to_json(f->set.clusters[0]);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(text);
    assert_int_equal(
        doc_parse(&df, DOC_FORMAT_JSON, "canonical.json", text, strlen(text), &f->diags), 0);
    assert_int_equal(schema_validate(schema_get(SCHEMA_CLUSTER, &err), df->docs[0],
                                     "canonical.json", "", &f->diags),
                     0);
    assert_string_equal(render(f), "");
    assert_non_null(strstr(text, "\"prefix\":\"payments/billing\""));
    assert_non_null(strstr(text, "\"bootstrap\":{\"initdb\":{}}"));
    doc_file_free(df);
    free(text);
    json_decref(j);
}

/* ------------------------------------------------------- file-level rules */

static void test_schema_errors_stop_conversion(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml", HEAD "  instances: 12\n");
    assert_int_equal(f->set.nclusters, 0);
    assert_int_equal(f->diags.errors, 1);
    assert_int_equal(f->diags.items[0].line, 10);
    assert_string_equal(f->diags.items[0].path, "spec.instances");
    assert_int_equal(f->set.nfiles, 1);
}

static void test_kind_must_match_folder(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/p.yaml",
                "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: p}\n"
                "spec: {namespaces: [\"*\"]}\n");
    tspec_add(f, SPEC_FILE_POLICIES, "policies/c.yaml", HEAD);
    assert_string_equal(render(f),
                        "clusters/p.yaml:2:7: error: kind: a Policy document must be in a file "
                        "under policies/; move it there\n"
                        "policies/c.yaml:2:7: error: kind: a DatabaseCluster document must be in "
                        "a file under clusters/; move it there\n");
    assert_int_equal(f->set.nclusters, 0);
    assert_int_equal(f->set.npolicies, 0);
}

static void test_empty_files(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/empty.yaml", "");
    add_cluster(f, "clusters/comment.yaml", "# nothing here yet\n");
    tspec_add(f, SPEC_FILE_POLICIES, "policies/dashes.yaml", "---\n---\n");
    add_cluster(f, "clusters/trailing.yaml", "---\n" HEAD "---\n");
    assert_string_equal(render(f),
                        "clusters/comment.yaml: error: the file is empty; write a "
                        "DatabaseCluster document in it, or delete it\n"
                        "clusters/empty.yaml: error: the file is empty; write a DatabaseCluster "
                        "document in it, or delete it\n"
                        "policies/dashes.yaml: error: the file is empty; write a Policy document "
                        "in it, or delete it\n");
    assert_int_equal(f->set.nclusters, 1);
    assert_int_equal(f->set.nfiles, 4);
}

static void test_multi_document_file(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/two.yaml",
                HEAD "---\n"
                     "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                     "metadata: {name: ledger, namespace: payments}\n"
                     "spec: {engine: postgresql, version: \"16\", provider: local}\n");
    assert_string_equal(render(f), "");
    assert_int_equal(f->set.nclusters, 2);
    assert_int_equal(f->set.clusters[1]->pos.line, 11);
    assert_int_equal(f->set.clusters[1]->name_pos.line, 13);
}

/* -------------------------------------------------------- semantic checks */

static void test_synchronous_needs_a_replica(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/a.yaml",
                HEAD "  instances: 2\n"
                     "  replication:\n"
                     "    synchronous: 2\n");
    add_cluster(f, "clusters/b.yaml", HEAD "  replication: {synchronous: 1}\n");
    add_cluster(f, "clusters/ok.yaml", HEAD "  instances: 3\n  replication: {synchronous: 2}\n");
    assert_string_equal(render(f),
                        "clusters/a.yaml:12:18: error: spec.replication.synchronous: must be less "
                        "than spec.instances (2): a synchronous standby needs a replica\n"
                        "clusters/b.yaml:10:30: error: spec.replication.synchronous: must be less "
                        "than spec.instances (1): a synchronous standby needs a replica\n");
    assert_int_equal(f->set.nclusters, 3); /* kept, so cross-file checks still see them */
}

static void test_cron_ranges(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml",
                HEAD "  backup:\n"
                     "    schedule:\n"
                     "      full: \"0 22-2 * * *\"\n"
                     "      incremental: \"*/90 * * * 5-1\"\n"
                     "    destination: {local: {path: /b}}\n");
    add_cluster(f, "clusters/range.yaml",
                HEAD "  backup:\n"
                     "    schedule:\n"
                     "      full: \"0 0 0 * *\"\n"
                     "      incremental: \"*/0 * * * *\"\n"
                     "    destination: {local: {path: /b}}\n");
    add_cluster(f, "clusters/range2.yaml",
                HEAD "  backup:\n"
                     "    schedule: {full: \"60 2 * * *\", incremental: \"0 * * 13 *\"}\n"
                     "    destination: {local: {path: /b}}\n");
    add_cluster(f, "clusters/ok.yaml",
                HEAD
                "  backup:\n"
                "    schedule: {full: \"0,30 1-5/2 1,15 */3 0-7\", incremental: \"*/15 * * * *\"}\n"
                "    destination: {local: {path: /b}}\n");
    assert_string_equal(render(f),
                        "clusters/billing.yaml:12:13: error: spec.backup.schedule.full: hour "
                        "range 22-2 goes backwards; a range cannot wrap around, use a list such "
                        "as 22-23,0-2\n"
                        "clusters/billing.yaml:13:20: error: spec.backup.schedule.incremental: "
                        "step 90 in the minute field must be between 1 and 60\n"
                        "clusters/range.yaml:12:13: error: spec.backup.schedule.full: day of "
                        "month 0 is out of range 1-31\n"
                        "clusters/range.yaml:13:20: error: spec.backup.schedule.incremental: step "
                        "0 in the minute field must be between 1 and 60\n"
                        "clusters/range2.yaml:11:22: error: spec.backup.schedule.full: minute 60 "
                        "is out of range 0-59\n"
                        "clusters/range2.yaml:11:49: error: spec.backup.schedule.incremental: "
                        "month 13 is out of range 1-12\n");
}

static void test_cidrs(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml",
                HEAD "  access:\n"
                     "    allowedCIDRs:\n"
                     "      - 10.1.2.3/8\n"
                     "      - 192.168.0.0/16\n"
                     "      - 2001:db8::1/32\n"
                     "      - 10.0.0.7/32\n");
    assert_string_equal(render(f),
                        "clusters/billing.yaml:12:9: warning: spec.access.allowedCIDRs[0]: "
                        "'10.1.2.3/8' has bits set past its prefix length; it means '10.0.0.0/8'\n"
                        "clusters/billing.yaml:14:9: warning: spec.access.allowedCIDRs[2]: "
                        "'2001:db8::1/32' has bits set past its prefix length; it means "
                        "'2001:db8::/32'\n");
    assert_int_equal(f->diags.errors, 0);
    assert_int_equal(f->set.clusters[0]->nallowed_cidrs, 4);
}

static void test_maintenance_window(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/a.yaml", HEAD "  maintenance: {window: \"Sun 02:00-02:00\"}\n");
    add_cluster(f, "clusters/b.yaml", HEAD "  maintenance: {window: \"Sat 23:00-01:00\"}\n");
    add_cluster(f, "clusters/c.yaml", HEAD "  maintenance: {window: \"Daily 03:00-04:30\"}\n");
    assert_string_equal(render(f),
                        "clusters/a.yaml:10:25: error: spec.maintenance.window: window 'Sun "
                        "02:00-02:00' ends when it starts; give it a length (an end before the "
                        "start, as in 'Sun 23:00-01:00', runs past midnight)\n");
}

static void test_duplicate_users(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml",
                HEAD "  users:\n"
                     "    - name: app\n"
                     "      passwordRef: \"env:A\"\n"
                     "    - name: ops\n"
                     "      passwordRef: \"env:B\"\n"
                     "    - name: app\n"
                     "      passwordRef: \"env:C\"\n");
    assert_string_equal(render(f),
                        "clusters/billing.yaml:15:13: error: spec.users[2].name: user 'app' is "
                        "already defined at line 11 (spec.users[0]); each user name must appear "
                        "once\n");
}

/* Restoring a cluster from its own backups is how a lost cluster is
 * recreated: no error, and no warning (the source is in the repository). */
static void test_restore_from_itself(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml",
                HEAD "  bootstrap:\n"
                     "    fromBackup:\n"
                     "      cluster: payments/billing\n");
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f), "");
    assert_int_equal(f->set.nclusters, 1);
    assert_string_equal(f->set.clusters[0]->bootstrap.from_cluster, "payments/billing");
}

static void test_terraform_paths_in_messages(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/x.tf.json",
                "{\"resource\": {\"reeve_database_cluster\": {\"billing\": {\n"
                "  \"namespace\": \"payments\", \"engine\": \"postgresql\", \"version\": \"15\",\n"
                "  \"provider\": \"local\", \"replication\": {\"synchronous\": 1}\n"
                "}}}}\n");
    assert_string_equal(render(f),
                        "clusters/x.tf.json:3:55: error: "
                        "resource.reeve_database_cluster.billing.replication.synchronous: must be "
                        "less than resource.reeve_database_cluster.billing.instances (1): a "
                        "synchronous standby needs a replica\n");
}

/* ------------------------------------------------------ cross-file checks */

static void test_duplicate_cluster_across_files(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/payments/billing.yaml", HEAD);
    add_cluster(f, "clusters/payments/copy.yaml", HEAD "  instances: 2\n");
    add_cluster(f, "clusters/other.yaml",
                "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                "metadata: {name: billing, namespace: other}\n"
                "spec: {engine: postgresql, version: \"15\", provider: local}\n");
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f),
                        "clusters/payments/billing.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is also defined at clusters/payments/copy.yaml:4:9; "
                        "rename or remove one of them\n"
                        "clusters/payments/copy.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is already defined at "
                        "clusters/payments/billing.yaml:4:9; rename or remove one of them\n");

    /* five definitions: the first lists three of the others and a count */
    diag_list_release(&f->diags);
    diag_list_init(&f->diags);
    add_cluster(f, "clusters/payments/d.yaml", HEAD);
    add_cluster(f, "clusters/payments/e.yaml", HEAD);
    add_cluster(f, "clusters/payments/f.yaml", HEAD);
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f),
                        "clusters/payments/billing.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is also defined at clusters/payments/copy.yaml:4:9, "
                        "clusters/payments/d.yaml:4:9, clusters/payments/e.yaml:4:9 and 1 more; "
                        "rename or remove one of them\n"
                        "clusters/payments/copy.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is already defined at "
                        "clusters/payments/billing.yaml:4:9; rename or remove one of them\n"
                        "clusters/payments/d.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is already defined at "
                        "clusters/payments/billing.yaml:4:9; rename or remove one of them\n"
                        "clusters/payments/e.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is already defined at "
                        "clusters/payments/billing.yaml:4:9; rename or remove one of them\n"
                        "clusters/payments/f.yaml:4:9: error: metadata.name: cluster "
                        "'payments/billing' is already defined at "
                        "clusters/payments/billing.yaml:4:9; rename or remove one of them\n");
}

static void test_restore_source_outside_repository(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml",
                HEAD "  bootstrap:\n"
                     "    fromBackup: {cluster: payments/billing-old, backupId: 20261120-full}\n");
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f),
                        "clusters/billing.yaml:11:27: warning: spec.bootstrap.fromBackup.cluster: "
                        "no cluster 'payments/billing-old' in this repository; the backup must "
                        "already exist in its destination\n");
    assert_int_equal(f->diags.errors, 0);

    /* with the source in the repository there is nothing to warn about */
    diag_list_release(&f->diags);
    add_cluster(f, "clusters/old.yaml",
                "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                "metadata: {name: billing-old, namespace: payments}\n"
                "spec: {engine: postgresql, version: \"15\", provider: local}\n");
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f), "");
    assert_string_equal(f->set.clusters[0]->bootstrap.backup_id, "20261120-full");
}

static void test_restore_source_typo_gets_a_hint(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/billing.yaml", HEAD);
    add_cluster(f, "clusters/copy.yaml",
                "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                "metadata: {name: copy, namespace: analytics}\n"
                "spec:\n  engine: postgresql\n  version: \"15\"\n  provider: local\n"
                "  bootstrap: {fromBackup: {cluster: payments/biling}}\n");
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f),
                        "clusters/copy.yaml:8:37: warning: spec.bootstrap.fromBackup.cluster: no "
                        "cluster 'payments/biling' in this repository (did you mean "
                        "'payments/billing'?); the backup must already exist in its destination\n");
}

static void test_duplicate_policy_names(void **state)
{
    struct tspec *f = *state;
    const char *p = "apiVersion: reeve/v1\nkind: Policy\nmetadata:\n  name: rules\n"
                    "spec: {namespaces: [\"*\"]}\n";
    tspec_add(f, SPEC_FILE_POLICIES, "policies/a.yaml", p);
    tspec_add(f, SPEC_FILE_POLICIES, "policies/b.yaml", p);
    tspec_add(f, SPEC_FILE_POLICIES, "policies/c.yaml", p);
    spec_set_check(&f->set, &f->diags);
    assert_string_equal(render(f),
                        "policies/a.yaml:4:9: error: metadata.name: policy 'rules' is also "
                        "defined at policies/b.yaml:4:9 and policies/c.yaml:4:9; rename or remove "
                        "one of them\n"
                        "policies/b.yaml:4:9: error: metadata.name: policy 'rules' is already "
                        "defined at policies/a.yaml:4:9; rename or remove one of them\n"
                        "policies/c.yaml:4:9: error: metadata.name: policy 'rules' is already "
                        "defined at policies/a.yaml:4:9; rename or remove one of them\n");
}

static void test_find_sort_remove(void **state)
{
    struct tspec *f = *state;
    add_cluster(f, "clusters/z.yaml", HEAD);
    add_cluster(f, "clusters/a.yaml",
                "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                "metadata: {name: api, namespace: web}\n"
                "spec: {engine: postgresql, version: \"15\", provider: local}\n"
                "---\n"
                "apiVersion: reeve/v1\nkind: DatabaseCluster\n"
                "metadata: {name: aaa, namespace: payments}\n"
                "spec: {engine: postgresql, version: \"15\", provider: local}\n");
    tspec_add(
        f, SPEC_FILE_POLICIES, "policies/p.yaml",
        "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: p}\nspec: {namespaces: [web]}\n");
    assert_int_equal(f->set.nclusters, 3);
    spec_set_sort(&f->set);
    assert_string_equal(f->set.clusters[0]->name, "aaa");
    assert_string_equal(f->set.clusters[1]->name, "billing");
    assert_string_equal(f->set.clusters[2]->name, "api");
    assert_non_null(spec_set_find(&f->set, "web", "api"));
    assert_null(spec_set_find(&f->set, "payments", "api"));

    spec_set_remove_file(&f->set, "clusters/a.yaml");
    assert_int_equal(f->set.nclusters, 1);
    assert_string_equal(f->set.clusters[0]->name, "billing");
    assert_null(spec_set_find(&f->set, "web", "api"));
    assert_int_equal(f->set.nfiles, 2);
    assert_string_equal(f->set.files[0], "clusters/z.yaml");
    assert_string_equal(f->set.files[1], "policies/p.yaml");
    spec_set_remove_file(&f->set, "policies/p.yaml");
    assert_int_equal(f->set.npolicies, 0);
    /* and the set grows again after removals */
    add_cluster(f, "clusters/a.yaml", HEAD "  instances: 2\n");
    add_cluster(f, "clusters/b.yaml", HEAD);
    assert_int_equal(f->set.nclusters, 3);
    assert_int_equal(f->set.nfiles, 3);
}

static void test_file_kind_of(void **state)
{
    (void)state;
    assert_int_equal(spec_file_kind_of("policies/a.yaml"), SPEC_FILE_POLICIES);
    assert_int_equal(spec_file_kind_of("repo/policies/team/a.yaml"), SPEC_FILE_POLICIES);
    assert_int_equal(spec_file_kind_of("/x/policies/clusters/a.yaml"), SPEC_FILE_CLUSTERS);
    assert_int_equal(spec_file_kind_of("clusters/policies.yaml"), SPEC_FILE_CLUSTERS);
    assert_int_equal(spec_file_kind_of("policies"), SPEC_FILE_CLUSTERS);
    assert_int_equal(spec_file_kind_of("a.yaml"), SPEC_FILE_CLUSTERS);
}

/* ------------------------------------------------------------------- walk */

static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    /* create parent folders */
    for (char *p = path + strlen(dir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                fail_msg("mkdir %s: %s", path, strerror(errno));
            *p = '/';
        }
    }
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static const char *cluster_named(const char *ns, const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "apiVersion: reeve/v1\nkind: DatabaseCluster\nmetadata: {name: %s, namespace: %s}\n"
             "spec: {engine: postgresql, version: \"15\", provider: local}\n",
             name, ns);
    return buf;
}

static void test_load_dir(void **state)
{
    struct tspec *f = *state;
    struct rv_error err;
    char dir[] = "/tmp/reeve-test-spec-XXXXXX";
    char link[1100], target[1100];
    assert_non_null(mkdtemp(dir));
    write_file(dir, "clusters/b.yaml", cluster_named("team", "b"));
    write_file(dir, "clusters/a/x.yaml", cluster_named("team", "x"));
    write_file(dir, "clusters/a.yaml", cluster_named("team", "a"));
    write_file(dir, "clusters/a/t.tf.json",
               "{\"resource\": {\"reeve_database_cluster\": {\"t\": {\"namespace\": \"team\", "
               "\"engine\": \"mariadb\", \"version\": \"11.4\", \"provider\": \"local\"}}}}\n");
    write_file(dir, "clusters/c.yml", cluster_named("team", "c"));
    write_file(dir, "clusters/.hidden.yaml", "not: [valid");
    write_file(dir, "clusters/.git/x.yaml", "not: [valid");
    write_file(dir, "clusters/README.md", "# not a spec\n");
    write_file(dir, "clusters/notes.json", "{}");
    write_file(dir, "policies/p.yaml",
               "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: p}\n"
               "spec: {namespaces: [\"*\"]}\n");
    write_file(dir, "policies/ignored.tf.json", "{}");
    write_file(dir, "reeve.yaml", "not a spec: true\n");
    write_file(dir, "elsewhere/e.yaml", cluster_named("team", "e"));
    snprintf(link, sizeof(link), "%s/clusters/linked", dir);
    snprintf(target, sizeof(target), "%s/elsewhere", dir);
    assert_int_equal(symlink(target, link), 0);

    rv_error_clear(&err);
    assert_int_equal(spec_set_load_dir(&f->set, dir, &f->diags, &err), 0);
    assert_string_equal(render(f),
                        "clusters/linked: warning: symbolic link to a directory; not followed "
                        "(move the files here or link them one by one)\n");
    assert_int_equal(f->set.nfiles, 6);
    assert_string_equal(f->set.files[0], "clusters/a.yaml");
    assert_string_equal(f->set.files[1], "clusters/a/t.tf.json");
    assert_string_equal(f->set.files[2], "clusters/a/x.yaml");
    assert_string_equal(f->set.files[3], "clusters/b.yaml");
    assert_string_equal(f->set.files[4], "clusters/c.yml");
    assert_string_equal(f->set.files[5], "policies/p.yaml");
    assert_int_equal(f->set.nclusters, 5);
    assert_int_equal(f->set.npolicies, 1);
    assert_string_equal(f->set.clusters[0]->file, "clusters/a.yaml");

    /* the same tree shown under a prefix */
    spec_set_release(&f->set);
    diag_list_release(&f->diags);
    assert_int_equal(spec_set_load_path(&f->set, dir, "repo", &f->diags, &err), 0);
    assert_string_equal(f->set.files[0], "repo/clusters/a.yaml");

    /* a single file, by its folder */
    spec_set_release(&f->set);
    diag_list_release(&f->diags);
    snprintf(target, sizeof(target), "%s/policies/p.yaml", dir);
    assert_int_equal(spec_set_load_dir(&f->set, target, &f->diags, &err), 0);
    assert_int_equal(f->set.npolicies, 1);
    assert_string_equal(f->set.files[0], target);

    /* a folder with neither clusters/ nor policies/ holds cluster files */
    spec_set_release(&f->set);
    diag_list_release(&f->diags);
    snprintf(target, sizeof(target), "%s/elsewhere", dir);
    assert_int_equal(spec_set_load_dir(&f->set, target, &f->diags, &err), 0);
    assert_int_equal(f->set.nclusters, 1);
    assert_string_equal(f->set.files[0], "e.yaml");

    tu_rm_rf(dir);
}

static void test_load_dir_unreadable(void **state)
{
    struct tspec *f = *state;
    struct rv_error err;
    rv_error_clear(&err);
    assert_int_equal(spec_set_load_dir(&f->set, "/nonexistent/reeve", &f->diags, &err), RV_EIO);
    assert_string_equal(err.msg, "cannot read '/nonexistent/reeve': no such file or directory");
    assert_string_equal(render(f),
                        "error: cannot read '/nonexistent/reeve': no such file or directory\n");

    /* a file that cannot be read is an error; the others are still read */
    diag_list_release(&f->diags);
    spec_set_release(&f->set);
    char dir[] = "/tmp/reeve-test-spec-XXXXXX";
    char path[1100];
    assert_non_null(mkdtemp(dir));
    write_file(dir, "clusters/a.yaml", cluster_named("team", "a"));
    write_file(dir, "clusters/b.yaml", cluster_named("team", "b"));
    snprintf(path, sizeof(path), "%s/clusters/a.yaml", dir);
    assert_int_equal(chmod(path, 0), 0);
    if (access(path, R_OK) == 0) { /* running as root: nothing is unreadable */
        tu_rm_rf(dir);
        skip();
    }
    assert_int_equal(spec_set_load_dir(&f->set, dir, &f->diags, &err), RV_EIO);
    assert_string_equal(render(f), "error: cannot read 'clusters/a.yaml': permission denied\n");
    assert_int_equal(f->set.nclusters, 1);
    tu_rm_rf(dir);
}

static void test_too_large_file(void **state)
{
    struct tspec *f = *state;
    char dir[] = "/tmp/reeve-test-spec-XXXXXX";
    char path[1100];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/big.yaml", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(HEAD, fp);
    for (long n = (long)strlen(HEAD); n <= RV_SPEC_FILE_MAX; n += 8)
        fputs("#......\n", fp);
    fclose(fp);
    assert_int_equal(
        spec_set_add_file(&f->set, SPEC_FILE_CLUSTERS, path, "clusters/big.yaml", &f->diags), 0);
    assert_string_equal(render(f), "clusters/big.yaml: error: the file is 1048584 bytes, over the "
                                   "limit of 1048576 bytes (1 MiB) for one spec file; split it "
                                   "into several files\n");
    assert_int_equal(f->set.nclusters, 0);
    assert_int_equal(f->set.nfiles, 1);
    tu_rm_rf(dir);
}

/* ------------------------------------------------------ reeve validate */

struct run {
    int status;
    char out[8192];
    char err[8192];
};

static void slurp(int fd, char *buf, size_t size)
{
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* Run `reeve validate ARGS...` with stdout and stderr captured. */
static void run_validate(struct run *r, const char *a1, const char *a2, const char *a3)
{
    char *argv[] = {"validate", (char *)a1, (char *)a2, (char *)a3, NULL};
    int argc = 1 + (a1 != NULL) + (a2 != NULL) + (a3 != NULL);
    char out_path[] = "/tmp/reeve-test-out-XXXXXX", err_path[] = "/tmp/reeve-test-err-XXXXXX";
    int out = mkstemp(out_path), err = mkstemp(err_path);
    assert_true(out >= 0 && err >= 0);
    unlink(out_path);
    unlink(err_path);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(out, 1);
    dup2(err, 2);
    r->status = cmd_validate(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(out, r->out, sizeof(r->out));
    slurp(err, r->err, sizeof(r->err));
}

static void test_validate_command(void **state)
{
    (void)state;
    struct run r;
    char dir[] = "/tmp/reeve-test-spec-XXXXXX";
    char missing[1100];
    assert_non_null(mkdtemp(dir));
    write_file(dir, "clusters/a.yaml", cluster_named("team", "a"));
    write_file(dir, "policies/p.yaml",
               "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: p}\n"
               "spec: {namespaces: [\"*\"]}\n");

    run_validate(&r, dir, NULL, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "2 files, 1 cluster, 1 policy: 0 errors, 0 warnings\n");

    write_file(dir, "clusters/b.yaml", HEAD "  instances: 12\n");
    run_validate(&r, "--quiet", dir, NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "clusters/b.yaml:10:14: error: spec.instances: must be between 1 "
                               "and 9 (got 12)\n");
    assert_string_equal(r.err, "");

    run_validate(&r, dir, "--json", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "");
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_false(json_object_get(j, "valid")));
    assert_int_equal(json_integer_value(json_object_get(j, "files")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "errors")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "clusters")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "diagnostics")), 1);
    json_decref(j);

    run_validate(&r, "--bogus", NULL, NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "error: unknown option '--bogus'"));

    snprintf(missing, sizeof(missing), "%s/missing", dir);
    run_validate(&r, "-q", missing, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.out, "error: cannot read '"));
    assert_non_null(strstr(r.out, "/missing': no such file or directory\n"));

    run_validate(&r, "--help", NULL, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "exec reeve validate --quiet"));
    assert_non_null(strstr(r.out, "yaml-language-server: $schema="));
    tu_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_come_from_the_schema),
        cmocka_unit_test_setup_teardown(test_minimal_cluster_gets_defaults, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_backup_defaults_by_engine, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_parameters_become_engine_text, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_and_terraform_give_the_same_cluster, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_digest_follows_desired_state, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_digest_is_the_canonical_json, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_terraform_name_and_blocks, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_to_json_is_a_valid_document, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_schema_errors_stop_conversion, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_kind_must_match_folder, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_empty_files, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_multi_document_file, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_synchronous_needs_a_replica, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_cron_ranges, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_cidrs, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_maintenance_window, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_users, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_restore_from_itself, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_terraform_paths_in_messages, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_cluster_across_files, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_restore_source_outside_repository, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_restore_source_typo_gets_a_hint, tspec_setup,
                                        tspec_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_policy_names, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_find_sort_remove, tspec_setup, tspec_teardown),
        cmocka_unit_test(test_file_kind_of),
        cmocka_unit_test_setup_teardown(test_load_dir, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_load_dir_unreadable, tspec_setup, tspec_teardown),
        cmocka_unit_test_setup_teardown(test_too_large_file, tspec_setup, tspec_teardown),
        cmocka_unit_test(test_validate_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
