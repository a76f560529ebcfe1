/* test_schema.c - the JSON Schema interpreter (specs-schema/schema.c) and the
 * embedded schemas: every keyword, every kind of message with its position
 * and field path, did-you-mean, if/then wording, defaults, the Terraform
 * schema's references into the cluster schema, and no cascading errors. */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "diag.h"
#include "doc.h"
#include "err.h"
#include "schema.h"

/* A valid cluster; tests add fields below "spec:" from line 8 on. */
#define HEAD                                                                                       \
    "apiVersion: reeve/v1\n"                                                                       \
    "kind: DatabaseCluster\n"                                                                      \
    "metadata: {name: billing, namespace: payments}\n"                                             \
    "spec:\n"                                                                                      \
    "  engine: postgresql\n"                                                                       \
    "  version: \"15\"\n"                                                                          \
    "  provider: local\n"

static const struct schema *get(enum schema_id id)
{
    struct rv_error err = {0};
    const struct schema *s = schema_get(id, &err);
    if (s == NULL)
        fail_msg("schema_get(%d): %s", (int)id, err.msg);
    return s;
}

/* Validate every document of text; return "line:col path: message\n" per
 * error, sorted (caller frees). format picks YAML or JSON. */
static char *run_fmt(const struct schema *s, enum doc_format format, const char *text,
                     const char *prefix)
{
    struct diag_list dl;
    struct doc_file *f = NULL;
    struct buf out = BUF_INIT;
    size_t added = 0;

    diag_list_init(&dl);
    if (doc_parse(&f, format, "t", text, strlen(text), &dl) != 0) {
        diag_list_print(stderr, &dl);
        fail_msg("test document does not parse");
    }
    for (size_t i = 0; i < f->ndocs; i++)
        added += schema_validate(s, f->docs[i], "t", prefix, &dl);
    assert_int_equal(added, dl.errors);
    diag_list_sort(&dl);
    for (size_t i = 0; i < dl.len; i++) {
        const struct diag *d = &dl.items[i];
        assert_string_equal(d->file, "t");
        assert_int_equal(d->severity, DIAG_ERROR);
        buf_printf(&out, "%u:%u %s: %s\n", d->line, d->col, d->path, d->msg);
    }
    doc_file_free(f);
    diag_list_release(&dl);
    buf_putc(&out, '\0');
    return buf_detach(&out);
}

static char *run(const struct schema *s, const char *yaml)
{
    return run_fmt(s, DOC_FORMAT_YAML, yaml, "");
}

/* cmocka cuts long strings; show both in full when they differ. */
static void same(const char *got, const char *expected)
{
    if (strcmp(got, expected) != 0)
        fprintf(stderr, "--- got:\n%s--- expected:\n%s---\n", got, expected);
    assert_string_equal(got, expected);
}

#define EXPECT(schema, text, expected)                                                             \
    do {                                                                                           \
        char *got_ = run(schema, text);                                                            \
        same(got_, expected);                                                                      \
        free(got_);                                                                                \
    } while (0)

#define CLUSTER(text, expected) EXPECT(get(SCHEMA_CLUSTER), text, expected)

static struct schema *parse_schema(const char *json)
{
    struct schema *s = NULL;
    struct rv_error err = {0};
    if (schema_parse(&s, json, strlen(json), &err) != 0)
        fail_msg("schema_parse: %s", err.msg);
    return s;
}

static void expect_parse_error(const char *json, const char *msg_part)
{
    struct schema *s = NULL;
    struct rv_error err = {0};
    int rc = schema_parse(&s, json, strlen(json), &err);
    assert_true(rc < 0);
    assert_null(s);
    if (strstr(err.msg, msg_part) == NULL)
        fail_msg("error '%s' does not mention '%s'", err.msg, msg_part);
}

/* ------------------------------------------------------------------ */

static void test_embedded_schemas_load(void **state)
{
    (void)state;
    struct rv_error err = {0};
    const struct schema *c = get(SCHEMA_CLUSTER);
    assert_ptr_equal(c, get(SCHEMA_CLUSTER));
    assert_non_null(get(SCHEMA_CLUSTER_TF));
    assert_non_null(get(SCHEMA_POLICY));
    assert_null(schema_get((enum schema_id)42, &err));
    assert_int_equal(err.code, RV_EINVAL);
}

static void test_valid_cluster_has_no_errors(void **state)
{
    (void)state;
    CLUSTER("# yaml-language-server: $schema=../../specs-schema/cluster.schema.json\n"
            "apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata:\n"
            "  name: billing\n"
            "  namespace: payments\n"
            "  labels: {tier: critical, app.kubernetes.io/name: billing, empty: \"\"}\n"
            "spec:\n"
            "  engine: postgresql\n"
            "  version: \"15\"\n"
            "  provider: local\n"
            "  region: local-1\n"
            "  instances: 3\n"
            "  resources: {cpu: 0.5, memoryMiB: 4096.0, storageGiB: 20}\n"
            "  parameters: {max_connections: \"200\", work_mem: 64, jit: false, seq_page_cost: "
            "1.5, pg_stat_statements.track: all}\n"
            "  replication: {synchronous: 1, maxLagOnFailoverBytes: 1099511627776}\n"
            "  backup:\n"
            "    schedule: {full: \"0 2 * * *\", incremental: \"*/15 1-5,7 1,15 */2 0-6/2\"}\n"
            "    retention: {days: 14}\n"
            "    method: external\n"
            "    external: {program: /usr/local/bin/tool, args: [\"--x\", \"\"]}\n"
            "    destination:\n"
            "      s3: {bucket: backups.eu-1, prefix: payments/billing, endpoint: "
            "\"http://127.0.0.1:9000\", region: us-east-1, credentialsRef: s3-main}\n"
            "    encryption: {keyRef: backup-key}\n"
            "    preferReplica: true\n"
            "  pitr: {enabled: true}\n"
            "  bootstrap:\n"
            "    fromBackup: {cluster: payments/billing-old, pointInTime: "
            "\"2026-11-20T10:00:00.123+01:00\"}\n"
            "  users:\n"
            "    - {name: app, roles: [readwrite, replication], passwordRef: \"sealed:AAAA+/==\"}\n"
            "    - {name: _ro, passwordRef: \"env:RO_PASSWORD\"}\n"
            "    - {name: f, passwordRef: \"file:/etc/reeve/f pw\"}\n"
            "  access: {allowedCIDRs: [\"127.0.0.0/8\", \"0.0.0.0/0\", \"::1/128\", "
            "\"fd00::/8\", \"2001:db8::1:0:0:1/128\", \"fe80::/10\"]}\n"
            "  maintenance: {window: \"Daily 23:30-00:30\", upgrade: replace}\n"
            "  deletionProtection: false\n",
            "");
    CLUSTER(HEAD "  bootstrap: {initdb: {}}\n"
                 "  backup:\n"
                 "    schedule: {full: \"0 2 * * 0\"}\n"
                 "    destination: {local: {path: /var/lib/reeve/backups}}\n",
            "");
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: m, namespace: payments}\n"
            "spec: {engine: mariadb, version: \"10.11\", provider: local,\n"
            "       backup: {method: mariabackup, schedule: {full: \"0 3 * * *\"},\n"
            "                destination: {local: {path: /b}}}}\n",
            "");
}

static void test_type_messages(void **state)
{
    (void)state;
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: postgresql\n"
            "  version: 15\n"
            "  provider: true\n"
            "  region: 1.5\n"
            "  instances: \"3\"\n"
            "  resources: {cpu: \"two\", memoryMiB: 1024.5}\n"
            "  pitr: {enabled: yes}\n"
            "  deletionProtection: \"false\"\n"
            "  users: {name: app}\n"
            "  access: ~\n",
            "6:12 spec.version: expected string, got integer 15 (quote it: \"15\")\n"
            "7:13 spec.provider: expected string, got boolean true (quote it: \"true\")\n"
            "8:11 spec.region: expected string, got number 1.5 (quote it: \"1.5\")\n"
            "9:14 spec.instances: expected integer, got string '3' (remove the quotes)\n"
            "10:20 spec.resources.cpu: expected number, got string 'two'\n"
            "10:38 spec.resources.memoryMiB: expected integer, got number 1024.5\n"
            "11:19 spec.pitr.enabled: expected boolean, got string 'yes' (write true or false "
            "without quotes)\n"
            "12:23 spec.deletionProtection: expected boolean, got string 'false' (write true or "
            "false without quotes)\n"
            "13:10 spec.users: expected array, got object\n"
            "14:11 spec.access: expected object, got null\n");
    CLUSTER("- a\n", "1:1 : expected object, got array\n");

    /* A number is quoted back as the file writes it: YAML reads 10.10 as
     * 10.1, but the fix is to quote "10.10". */
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: mariadb\n"
            "  version: 10.10\n"
            "  provider: 0x1F\n"
            "  region: 1e3\n",
            "6:12 spec.version: expected string, got number 10.10 (quote it: \"10.10\")\n"
            "7:13 spec.provider: expected string, got integer 0x1F (quote it: \"0x1F\")\n"
            "8:11 spec.region: expected string, got number 1e3 (quote it: \"1e3\")\n");
    char *got = run_fmt(get(SCHEMA_CLUSTER_TF), DOC_FORMAT_JSON,
                        "{\"resource\": {\"reeve_database_cluster\": {\"a\": {\"namespace\": "
                        "\"p\",\n \"engine\": \"mariadb\", \"version\": 10.10, \"provider\": "
                        "\"local\", \"instances\": 2.50}}}}",
                        "");
    same(got, "2:34 resource.reeve_database_cluster.a.version: expected string, got number 10.10 "
              "(quote it: \"10.10\")\n"
              "2:75 resource.reeve_database_cluster.a.instances: expected integer, got number "
              "2.50\n");
    free(got);
}

static void test_range_messages(void **state)
{
    (void)state;
    CLUSTER(HEAD "  instances: 12\n"
                 "  resources: {cpu: 0.1, memoryMiB: 2000000, storageGiB: 0}\n"
                 "  replication: {synchronous: -1, maxLagOnFailoverBytes: 1099511627777}\n",
            "8:14 spec.instances: must be between 1 and 9 (got 12)\n"
            "9:20 spec.resources.cpu: must be between 0.25 and 128 (got 0.1)\n"
            "9:36 spec.resources.memoryMiB: must be between 256 and 1048576 (got 2000000)\n"
            "9:57 spec.resources.storageGiB: must be between 1 and 65536 (got 0)\n"
            "10:30 spec.replication.synchronous: must be between 0 and 8 (got -1)\n"
            "10:57 spec.replication.maxLagOnFailoverBytes: must be between 0 and 1099511627776 "
            "(got 1099511627777)\n");

    struct schema *s = parse_schema("{\"type\": \"object\", \"properties\": {"
                                    "\"a\": {\"type\": \"integer\", \"minimum\": 1},"
                                    "\"b\": {\"type\": \"number\", \"maximum\": 9.5},"
                                    "\"c\": {\"type\": \"number\", \"exclusiveMinimum\": 0},"
                                    "\"d\": {\"type\": \"number\", \"exclusiveMaximum\": 10}}}");
    EXPECT(s, "{a: 0, b: 10, c: 0, d: 10}\n",
           "1:5 a: must be at least 1 (got 0)\n"
           "1:11 b: must be at most 9.5 (got 10)\n"
           "1:18 c: must be greater than 0 (got 0)\n"
           "1:24 d: must be less than 10 (got 10)\n");
    EXPECT(s, "{a: 1, b: 9.5, c: 0.001, d: 9.99}\n", "");
    schema_free(s);
}

static void test_string_length_messages(void **state)
{
    (void)state;
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: a123456789a123456789a123456789a123456789a123456789a123456789abcd, "
            "namespace: payments}\n"
            "spec:\n"
            "  engine: postgresql\n"
            "  version: \"15\"\n"
            "  provider: local\n"
            "  backup:\n"
            "    schedule: {full: \"0 2 * * *\"}\n"
            "    destination: {s3: {bucket: ab, endpoint: \"http://x\", credentialsRef: c}}\n",
            "3:18 metadata.name: must be at most 63 characters long (got 64)\n"
            "10:32 spec.backup.destination.s3.bucket: must be between 3 and 63 characters long "
            "(got 2)\n");

    /* Lengths count characters, not bytes. */
    struct schema *s = parse_schema("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}");
    EXPECT(s, "\"\xc3\xa9\xc3\xa9\xc3\xa9\"\n", "");
    EXPECT(s, "\"\xc3\xa9\"\n", "1:1 : must be between 2 and 3 characters long (got 1)\n");
    schema_free(s);
    s = parse_schema("{\"type\": \"string\", \"minLength\": 1}");
    EXPECT(s, "\"\"\n", "1:1 : must be at least 1 character long (got 0)\n");
    schema_free(s);
}

static void test_unknown_fields(void **state)
{
    (void)state;
    CLUSTER(HEAD "  instaces: 3\n"
                 "  Instances: 3\n"
                 "  resources: {cpus: 2, storage: 3}\n"
                 "  bootstrap: {initdb: {locale: C}}\n"
                 "  backup:\n"
                 "    schedule: {full: \"0 2 * * *\"}\n"
                 "    destination: {s4: {}}\n"
                 "  zzzzzzz: 1\n",
            "8:3 spec.instaces: unknown field 'instaces' (did you mean 'instances'?)\n"
            "9:3 spec.Instances: unknown field 'Instances' (did you mean 'instances'?)\n"
            "10:15 spec.resources.cpus: unknown field 'cpus' (did you mean 'cpu'?)\n"
            "10:24 spec.resources.storage: unknown field 'storage' (allowed: cpu, memoryMiB, "
            "storageGiB)\n"
            "11:24 spec.bootstrap.initdb.locale: unknown field 'locale' (no fields are allowed "
            "here)\n"
            "14:19 spec.backup.destination.s4: unknown field 's4' (allowed: s3, local)\n"
            "15:3 spec.zzzzzzz: unknown field 'zzzzzzz'\n");
}

static void test_missing_required(void **state)
{
    (void)state;
    CLUSTER("kind: DatabaseCluster\n"
            "metadata:\n"
            "  name: billing\n"
            "spec:\n"
            "  provider: local\n"
            "  users:\n"
            "    - name: app\n"
            "      passwordRef: \"env:A\"\n"
            "    - roles: [admin]\n",
            "1:1 : missing required field 'apiVersion'\n"
            "3:3 metadata: missing required field 'namespace'\n"
            "5:3 spec: missing required field 'engine'\n"
            "5:3 spec: missing required field 'version'\n"
            "9:7 spec.users[1]: missing required field 'name'\n"
            "9:7 spec.users[1]: missing required field 'passwordRef'\n");
}

/* A misspelt required field is one mistake: one error, at the misspelling,
 * suggesting the field. Only when it is the object's one unknown field and
 * it is close to the missing one. */
static void test_misspelt_required_field(void **state)
{
    (void)state;
    char *got = run_fmt(get(SCHEMA_CLUSTER_TF), DOC_FORMAT_JSON,
                        "{\"resource\": {\n  \"reeve_database\": {}}}", "");
    same(got, "2:3 resource.reeve_database: unknown field 'reeve_database' (did you mean "
              "'reeve_database_cluster'?)\n");
    free(got);
    got = run_fmt(get(SCHEMA_CLUSTER_TF), DOC_FORMAT_JSON,
                  "{\"resource\": {\n  \"database_cluster\": {}}}", "");
    same(got, "2:3 resource.database_cluster: unknown field 'database_cluster' (did you mean "
              "'reeve_database_cluster'?)\n");
    free(got);
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {nmae: billing, namespace: payments}\n"
            "spec:\n"
            "  engin: postgresql\n"
            "  version: \"15\"\n"
            "  provider: local\n",
            "3:12 metadata.nmae: unknown field 'nmae' (did you mean 'name'?)\n"
            "5:3 spec.engin: unknown field 'engin' (did you mean 'engine'?)\n");
    /* Two unknown fields: which one is the missing field is a guess. */
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engin: postgresql\n"
            "  colour: blue\n"
            "  version: \"15\"\n"
            "  provider: local\n",
            "5:3 spec: missing required field 'engine'\n"
            "5:3 spec.engin: unknown field 'engin' (did you mean 'engine'?)\n"
            "6:3 spec.colour: unknown field 'colour'\n");
    /* An unknown field unlike the missing one is a second mistake. */
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  colour: blue\n"
            "  version: \"15\"\n"
            "  provider: local\n",
            "5:3 spec: missing required field 'engine'\n"
            "5:3 spec.colour: unknown field 'colour'\n");
    struct schema *s = parse_schema(
        "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"retention\", "
        "\"x\"], \"properties\": {\"retention\": {}, \"x\": {}, \"retain\": {}}}");
    /* "ret" is too short a part of "retention" to be taken for it */
    EXPECT(s, "{x: 1, ret: 2}\n",
           "1:1 : missing required field 'retention'\n"
           "1:8 ret: unknown field 'ret' (allowed: retention, x, retain)\n");
    EXPECT(s, "{x: 1, retentoin: 2}\n",
           "1:8 retentoin: unknown field 'retentoin' (did you mean 'retention'?)\n");
    schema_free(s);
    /* With two fields missing, the one misspelt is the suggestion and the
     * other is still missing. */
    s = parse_schema("{\"type\": \"object\", \"additionalProperties\": false, \"required\": "
                     "[\"hostport\", \"hostname\"], \"properties\": {\"hostname\": {}, "
                     "\"hostport\": {}}}");
    EXPECT(s, "{hostnmae: a}\n",
           "1:1 : missing required field 'hostport'\n"
           "1:2 hostnmae: unknown field 'hostnmae' (did you mean 'hostname'?)\n");
    schema_free(s);
}

static void test_enum_and_const(void **state)
{
    (void)state;
    CLUSTER("apiVersion: reeve/v2\n"
            "kind: Cluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: postgres\n"
            "  version: \"15\"\n"
            "  provider: local\n"
            "  maintenance: {upgrade: Rolling}\n"
            "  users: [{name: a, roles: [superuser], passwordRef: \"env:A\"}]\n",
            "1:13 apiVersion: must be 'reeve/v1' (got 'reeve/v2'; did you mean 'reeve/v1'?)\n"
            "2:7 kind: must be 'DatabaseCluster' (got 'Cluster')\n"
            "5:11 spec.engine: must be one of: postgresql, mariadb (got 'postgres'; did you "
            "mean 'postgresql'?)\n"
            "8:26 spec.maintenance.upgrade: must be one of: rolling, replace (got 'Rolling'; did "
            "you mean 'rolling'?)\n"
            "9:29 spec.users[0].roles[0]: must be one of: readonly, readwrite, admin, "
            "replication (got 'superuser')\n");

    struct schema *s = parse_schema("{\"enum\": [1, 2.5, true, null, \"x\"]}");
    EXPECT(s, "2.5\n", "");
    EXPECT(s, "1.0\n", "");
    EXPECT(s, "~\n", "");
    EXPECT(s, "3\n", "1:1 : must be one of: 1, 2.5, true, null, x (got 3)\n");
    schema_free(s);
    s = parse_schema("{\"const\": {\"a\": [1, \"b\"]}}");
    EXPECT(s, "{a: [1, b]}\n", "");
    EXPECT(s, "{a: [1, c]}\n",
           "1:1 : must be exactly the value the schema gives (got an object)\n");
    schema_free(s);
}

static void test_pattern_messages(void **state)
{
    (void)state;
    CLUSTER(
        "apiVersion: reeve/v1\n"
        "kind: DatabaseCluster\n"
        "metadata: {name: Billing, namespace: pay-, labels: {\"-x\": a, ok: \"\\x01\"}}\n"
        "spec:\n"
        "  engine: postgresql\n"
        "  version: \"15.x\"\n"
        "  provider: Local\n"
        "  region: -eu\n"
        "  parameters: {Max_Connections: 1}\n",
        "3:18 metadata.name: must be a DNS label: lowercase letters, digits and '-', "
        "starting with a letter and not ending with '-' (got 'Billing')\n"
        "3:38 metadata.namespace: must be a DNS label: lowercase letters, digits and '-', "
        "starting with a letter and not ending with '-' (got 'pay-')\n"
        "3:53 metadata.labels.-x: key must be a label key: letters, digits, '-', '_', "
        "'.' and '/', starting and ending with a letter or digit (got '-x')\n"
        "6:12 spec.version: must be a major version such as \"15\" or \"10.11\" (got "
        "'15.x')\n"
        "7:13 spec.provider: must be a provider name: lowercase letters, digits and '-', "
        "starting with a letter (got 'Local')\n"
        "8:11 spec.region: must be a region name: lowercase letters, digits and '-', "
        "starting with a letter or digit (got '-eu')\n"
        "9:16 spec.parameters.Max_Connections: key must be a parameter name: lowercase "
        "letters, digits, '_' and '.', starting with a letter or '_' (got 'Max_Connections')\n");

    /* Without a $comment the pattern itself is shown. */
    struct schema *s = parse_schema("{\"type\": \"string\", \"pattern\": \"^a+$\"}");
    EXPECT(s, "aaa\n", "");
    EXPECT(s, "ab\n", "1:1 : must match the pattern '^a+$' (got 'ab')\n");
    schema_free(s);

    /* A string with a NUL never matches (POSIX would only see its start).
     * The YAML reader refuses NUL, so the node is built by hand. */
    s = parse_schema("{\"type\": \"string\", \"pattern\": \"^a\"}");
    struct doc_node n = {.kind = DOC_STRING, .line = 4, .col = 2};
    n.u.str.s = (char *)"a\0b";
    n.u.str.len = 3;
    struct diag_list dl;
    diag_list_init(&dl);
    assert_int_equal(schema_validate(s, &n, "h.yaml", "x", &dl), 1);
    assert_int_equal(dl.len, 1);
    assert_string_equal(dl.items[0].file, "h.yaml");
    assert_int_equal(dl.items[0].line, 4);
    assert_int_equal(dl.items[0].col, 2);
    assert_string_equal(dl.items[0].path, "x");
    assert_string_equal(dl.items[0].msg, "must match the pattern '^a' (got 'a?b')");
    diag_list_release(&dl);
    schema_free(s);
}

/* Patterns are matched by a DFA built from the pattern, not by regexec;
 * the two must agree. Every pattern of the embedded schemas, and some
 * syntax they do not use yet, is checked against POSIX regexec on the
 * schemas' example strings, mutations of them and random strings. */
extern const unsigned char reeve_schema_cluster[];
extern const size_t reeve_schema_cluster_len;
extern const unsigned char reeve_schema_cluster_tf[];
extern const size_t reeve_schema_cluster_tf_len;
extern const unsigned char reeve_schema_policy[];
extern const size_t reeve_schema_policy_len;

struct strings {
    const char *v[512];
    size_t n;
};

static void collect_examples(const json_t *arr, struct strings *samples)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (json_is_string(e) && samples->n < 512)
            samples->v[samples->n++] = json_string_value(e);
    }
}

/* The values of "pattern" (into pats) and the strings of "examples" (into
 * samples) below j. */
static void collect_strings(const json_t *j, struct strings *pats, struct strings *samples)
{
    const char *key;
    const json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v)
        {
            if (strcmp(key, "pattern") == 0 && json_is_string(v) && pats->n < 512)
                pats->v[pats->n++] = json_string_value(v);
            else if (strcmp(key, "examples") == 0)
                collect_examples(v, samples);
            else
                collect_strings(v, pats, samples);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) collect_strings(v, pats, samples);
    }
}

static uint64_t rnd_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* 1 when the pattern schema s accepts text, 0 when not. */
static int schema_accepts(const struct schema *s, const char *text)
{
    struct doc_node n = {.kind = DOC_STRING, .line = 1, .col = 1};
    struct diag_list dl;
    n.u.str.s = (char *)text;
    n.u.str.len = strlen(text);
    diag_list_init(&dl);
    size_t errors = schema_validate(s, &n, "t", "", &dl);
    diag_list_release(&dl);
    return errors == 0;
}

static void test_patterns_agree_with_regexec(void **state)
{
    (void)state;
    static const char *const extra[] = {
        "a^b",
        "(a|b)*c$",
        "x{2,3}y",
        "^$",
        "[]a]",
        "[^]a]x",
        "a|^b",
        "(^a|b)c",
        "a{0}b",
        "(ab){2,}$",
        "a$|b",
        "^(a$|b)",
        "[a-]+",
        "[.]\\.",
        "^.*$",
        "(x*)*y",
        "^[^:]+$",
        "^(/|\\.|file://|https?://|[^:]+$)",
        "((a|b){1,3}c){2}",
        "^[ -~]{0,4}$",
        "\\(\\)",
        "(a|)b",
        "a**",
        "\\d",
        "[[:alpha:]]",
        "x{1,2}{2}",
        "a{,2}",
        "(a",
        "a)",
    };
    const struct {
        const unsigned char *data;
        const size_t *len;
    } docs[] = {
        {reeve_schema_cluster, &reeve_schema_cluster_len},
        {reeve_schema_cluster_tf, &reeve_schema_cluster_tf_len},
        {reeve_schema_policy, &reeve_schema_policy_len},
    };
    static const char alphabet[] = "09azAZ_-.:/*,+=@[]() \t\n~!\"\\\xc3\xa9";
    struct strings pats = {.n = 0}, samples = {.n = 0};
    json_t *roots[3];
    uint64_t rng = 0x2545f4914f6cdd1du;
    size_t checks = 0, accepted = 0;

    for (size_t d = 0; d < 3; d++) {
        roots[d] = json_loadb((const char *)docs[d].data, *docs[d].len, 0, NULL);
        assert_non_null(roots[d]);
        collect_strings(roots[d], &pats, &samples);
    }
    assert_true(pats.n >= 20);
    assert_true(samples.n >= 20);
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
        pats.v[pats.n++] = extra[i];
    for (size_t p = 0; p < pats.n; p++) {
        regex_t re;
        struct schema *s = NULL;
        struct rv_error err = {0};
        if (regcomp(&re, pats.v[p], REG_EXTENDED | REG_NOSUB) != 0)
            continue; /* schema_parse refuses it; test_schema_parse_errors covers that */
        json_t *j = json_pack("{s:s, s:s}", "type", "string", "pattern", pats.v[p]);
        char *text = json_dumps(j, JSON_COMPACT);
        assert_int_equal(schema_parse(&s, text, strlen(text), &err), 0);
        for (size_t k = 0; k < samples.n * 40 + 2000; k++) {
            char buf[160];
            size_t len;
            if (k < samples.n * 40) {
                /* an example, with up to two random edits */
                len = strlen(samples.v[k / 40]);
                if (len >= sizeof(buf))
                    continue;
                memcpy(buf, samples.v[k / 40], len + 1);
                for (size_t e = rnd_next(&rng) % 3; e > 0 && len > 0 && len + 1 < sizeof(buf);
                     e--) {
                    size_t at = rnd_next(&rng) % len;
                    char ch = alphabet[rnd_next(&rng) % (sizeof(alphabet) - 1)];
                    switch (rnd_next(&rng) % 3) {
                    case 0:
                        buf[at] = ch;
                        break;
                    case 1:
                        memmove(buf + at + 1, buf + at, len - at + 1);
                        buf[at] = ch;
                        len++;
                        break;
                    default:
                        memmove(buf + at, buf + at + 1, len - at);
                        len--;
                        break;
                    }
                }
            } else {
                len = rnd_next(&rng) % 24;
                for (size_t c = 0; c < len; c++)
                    buf[c] = alphabet[rnd_next(&rng) % (sizeof(alphabet) - 1)];
                buf[len] = '\0';
            }
            int want = regexec(&re, buf, 0, NULL, 0) == 0;
            int got = schema_accepts(s, buf);
            if (want != got)
                fail_msg("pattern '%s' on '%s': regexec says %d, reeve says %d", pats.v[p], buf,
                         want, got);
            checks++;
            accepted += (size_t)got;
        }
        regfree(&re);
        schema_free(s);
        free(text);
        json_decref(j);
    }
    assert_true(checks > 100000);
    assert_true(accepted > checks / 20); /* not a test of rejections only */
    for (size_t d = 0; d < 3; d++)
        json_decref(roots[d]);
}

static void expect_string_ok(const char *field, const char *value, bool ok)
{
    char yaml[1024], closing[16];
    size_t n = 0;
    for (const char *p = field + strlen(field); p > field && n + 1 < sizeof(closing); p--) {
        if (p[-1] == '{')
            closing[n++] = '}';
        else if (p[-1] == '[')
            closing[n++] = ']';
    }
    closing[n] = '\0';
    snprintf(yaml, sizeof(yaml), HEAD "  %s\"%s\"%s\n", field, value, closing);
    char *got = run(get(SCHEMA_CLUSTER), yaml);
    if ((got[0] == '\0') != ok)
        fail_msg("%s \"%s\": expected %s, got '%s'", field, value, ok ? "valid" : "invalid", got);
    free(got);
}

static void test_cron_cidr_and_window_patterns(void **state)
{
    (void)state;
    /* The pattern checks the shape of a schedule; whether each value is in
     * its field's range (hour 25, step 0) is checked by the spec model with
     * a message naming the field, so "60 24 32 13 8" passes here. */
    static const char *const good_cron[] = {"0 2 * * *",     "*/15 * * * *", "0,30 8-18 * * 1-5",
                                            "59 23 31 12 7", "0 0 1 1/3 *",  "5-55/10  0  * * 0",
                                            "60 24 32 13 8"};
    static const char *const bad_cron[] = {
        "0 2 * *",    "@daily",     "0 2 * * * *", "a b c d e",    "0 2 * * MON", "100 * * * *",
        "*/ * * * *", "1- * * * *", ",1 * * * *",  "1,,2 * * * *", " 0 2 * * *",  "0\t2 * * * *"};
    for (size_t i = 0; i < sizeof(good_cron) / sizeof(good_cron[0]); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml),
                 HEAD "  backup: {schedule: {full: \"%s\"}, destination: {local: {path: /b}}}\n",
                 good_cron[i]);
        char *got = run(get(SCHEMA_CLUSTER), yaml);
        if (got[0] != '\0')
            fail_msg("cron '%s' rejected: %s", good_cron[i], got);
        free(got);
    }
    for (size_t i = 0; i < sizeof(bad_cron) / sizeof(bad_cron[0]); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml),
                 HEAD "  backup: {schedule: {full: \"%s\"}, destination: {local: {path: /b}}}\n",
                 bad_cron[i]);
        char *got = run(get(SCHEMA_CLUSTER), yaml);
        if (strstr(got, "must be a 5-field cron expression") == NULL)
            fail_msg("cron '%s' accepted: %s", bad_cron[i], got);
        free(got);
    }

    static const char *const good_cidr[] = {
        "10.0.0.0/8", "192.168.1.1/32", "0.0.0.0/0",          "::/0",        "::1/128",
        "fd00::/8",   "2001:db8::/32",  "1:2:3:4:5:6:7:8/64", "fe80::1:2/10"};
    static const char *const bad_cidr[] = {"10.0.0.0",       "256.0.0.0/8", "10.0.0/8",
                                           "10.0.0.0/33",    "::/129",      "1:2:3:4:5:6:7:8:9/64",
                                           "2001:db8:::/32", "fd00::/",     "localhost/8",
                                           "01.2.3.4/8"};
    for (size_t i = 0; i < sizeof(good_cidr) / sizeof(good_cidr[0]); i++)
        expect_string_ok("access: {allowedCIDRs: [", good_cidr[i], true);
    for (size_t i = 0; i < sizeof(bad_cidr) / sizeof(bad_cidr[0]); i++)
        expect_string_ok("access: {allowedCIDRs: [", bad_cidr[i], false);

    static const char *const good_win[] = {"Sun 02:00-04:00", "Daily 23:00-01:00",
                                           "Mon 00:00-23:59"};
    static const char *const bad_win[] = {"sun 02:00-04:00",    "Sun 2:00-04:00",
                                          "Sun 24:00-01:00",    "Sun 02:60-03:00",
                                          "Sunday 02:00-04:00", "Sun 02:00 - 04:00"};
    for (size_t i = 0; i < sizeof(good_win) / sizeof(good_win[0]); i++)
        expect_string_ok("maintenance: {window: ", good_win[i], true);
    for (size_t i = 0; i < sizeof(bad_win) / sizeof(bad_win[0]); i++)
        expect_string_ok("maintenance: {window: ", bad_win[i], false);

    static const char *const good_ref[] = {"sealed:QUJD", "sealed:QQ==", "env:PG_PASS",
                                           "file:/run/secrets/pg pass"};
    static const char *const bad_ref[] = {"hunter2",       "sealed:", "sealed:QQ===", "env:1X",
                                          "file:relative", "file:/",  "ENV:X"};
    for (size_t i = 0; i < sizeof(good_ref) / sizeof(good_ref[0]); i++)
        expect_string_ok("users: [{name: a, passwordRef: ", good_ref[i], true);
    for (size_t i = 0; i < sizeof(bad_ref) / sizeof(bad_ref[0]); i++)
        expect_string_ok("users: [{name: a, passwordRef: ", bad_ref[i], false);
}

static void test_secret_values_are_not_repeated(void **state)
{
    (void)state;
    CLUSTER(HEAD "  users:\n"
                 "    - {name: a, passwordRef: \"correct-horse-battery-staple\"}\n"
                 "    - {name: b, passwordRef: \"vault:secret/b\"}\n"
                 "    - {name: c, passwordRef: 20191231}\n"
                 "    - {name: d, passwordRef: \"env:\"}\n"
                 "    - {name: e, passwordRef: \"file:relative\"}\n"
                 "    - {name: f, passwordRef: \"sealed:not base64!\"}\n",
            "9:30 spec.users[0].passwordRef: must be a secret reference: sealed:<base64>, "
            "env:NAME or file:/absolute/path (the value is not shown: it may be a password; "
            "seal it with 'reeve seal')\n"
            "10:30 spec.users[1].passwordRef: must be a secret reference: sealed:<base64>, "
            "env:NAME or file:/absolute/path (the value is not shown: it may be a password; "
            "seal it with 'reeve seal')\n"
            "11:30 spec.users[2].passwordRef: expected string, got integer (the value is not "
            "shown: it may be a password; seal it with 'reeve seal')\n"
            "12:30 spec.users[3].passwordRef: must be a secret reference: sealed:<base64>, "
            "env:NAME or file:/absolute/path (got 'env:')\n"
            "13:30 spec.users[4].passwordRef: must be a secret reference: sealed:<base64>, "
            "env:NAME or file:/absolute/path (got 'file:relative')\n"
            "14:30 spec.users[5].passwordRef: must be a secret reference: sealed:<base64>, "
            "env:NAME or file:/absolute/path (got 'sealed:not base64!')\n");

    /* writeOnly reached through a $ref, and with an enum and a length. */
    struct schema *s = parse_schema(
        "{\"$defs\": {\"pw\": {\"type\": \"string\", \"writeOnly\": true, \"maxLength\": 4,"
        " \"enum\": [\"a:b\"]}}, \"properties\": {\"p\": {\"type\": \"string\", \"$ref\": "
        "\"#/$defs/pw\"}, \"q\": {\"type\": \"string\"}}}");
    EXPECT(s, "{p: true, q: true}\n",
           "1:5 p: expected string, got boolean (the value is not shown: it may be a password; "
           "seal it with 'reeve seal')\n"
           "1:14 q: expected string, got boolean true (quote it: \"true\")\n");
    EXPECT(s, "{p: hunter2}\n",
           "1:5 p: must be 'a:b' (the value is not shown: it may be a password; seal it with "
           "'reeve seal')\n");
    EXPECT(s, "{p: a:bb}\n",
           "1:5 p: must be 'a:b' (the value is not shown: it may be a password; seal it with "
           "'reeve seal')\n");
    schema_free(s);
    expect_parse_error("{\"writeOnly\": 1}", "'writeOnly' must be a boolean");
}

static void test_date_time(void **state)
{
    (void)state;
    static const char *const good[] = {"2026-11-20T10:00:00Z",      "2026-11-20t10:00:00z",
                                       "2024-02-29T00:00:00Z",      "2000-02-29T23:59:59.999Z",
                                       "2026-11-20T10:00:00+05:30", "2026-12-31T23:59:60Z",
                                       "2026-12-31T22:59:60-01:00", "1970-01-01T00:00:00.0-00:00"};
    static const char *const bad[] = {
        "2026-02-30T10:00:00Z",  "2025-02-29T10:00:00Z", "1900-02-29T10:00:00Z",
        "2026-13-01T10:00:00Z",  "2026-11-20T24:00:00Z", "2026-11-20T10:60:00Z",
        "2026-11-20T10:00:00",   "2026-11-20 10:00:00Z", "2026-11-20T10:00:00+0100",
        "2026-11-20T10:00:00.Z", "2026-11-20T12:00:60Z", "2026-11-20",
        "2026-11-20T10:00:00Z ", "26-11-20T10:00:00Z",   "2026-11-20T10:00:00+24:00"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        expect_string_ok("bootstrap: {fromBackup: {cluster: a/b, pointInTime: ", good[i], true);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_string_ok("bootstrap: {fromBackup: {cluster: a/b, pointInTime: ", bad[i], false);
    CLUSTER(HEAD
            "  bootstrap: {fromBackup: {cluster: a/b, pointInTime: \"2026-02-30T10:00:00Z\"}}\n",
            "8:55 spec.bootstrap.fromBackup.pointInTime: must be an RFC 3339 date-time such as "
            "2026-11-20T10:00:00Z (got '2026-02-30T10:00:00Z')\n");
}

static void test_if_then_messages(void **state)
{
    (void)state;
    /* The then's enum names the condition. */
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: postgresql\n"
            "  version: \"9.6\"\n"
            "  provider: local\n",
            "6:12 spec.version: must be one of: 13, 14, 15, 16, 17 for engine 'postgresql' "
            "(got '9.6')\n");
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: mariadb\n"
            "  version: \"15\"\n"
            "  provider: local\n"
            "  backup:\n"
            "    method: pg_basebackup\n"
            "    schedule: {full: \"0 2 * * *\"}\n"
            "    destination: {local: {path: /b}}\n",
            "6:12 spec.version: must be one of: 10.6, 10.11, 11.4 for engine 'mariadb' (got "
            "'15')\n"
            "9:13 spec.backup.method: must be one of: mariabackup, external for engine "
            "'mariadb' (got 'pg_basebackup')\n");
    /* A required field in a then: reported at what made the if true. */
    CLUSTER(HEAD "  pitr:\n"
                 "    enabled: true\n",
            "9:14 spec.pitr.enabled: pitr.enabled requires a 'backup' section\n");
    CLUSTER(HEAD "  pitr: {enabled: false}\n", "");
    CLUSTER(HEAD "  backup:\n"
                 "    method: external\n"
                 "    schedule: {full: \"0 2 * * *\"}\n"
                 "    destination: {local: {path: /b}}\n",
            "9:13 spec.backup.method: method 'external' requires an 'external' section\n");

    /* Generic forms: a non-string const, an if on required alone, else. */
    struct schema *s = parse_schema(
        "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\"}, "
        "\"m\": {\"type\": \"string\"}, \"o\": {\"type\": \"object\"}},"
        " \"allOf\": ["
        "  {\"if\": {\"properties\": {\"n\": {\"const\": 1}}, \"required\": [\"n\"]},"
        "   \"then\": {\"required\": [\"m\"], \"properties\": {\"m\": {\"enum\": [\"a\"]}}}},"
        "  {\"if\": {\"required\": [\"o\"]}, \"then\": {\"required\": [\"n\"]},"
        "   \"else\": {\"properties\": {\"m\": {\"const\": \"z\"}}}}]}");
    EXPECT(s, "{n: 1}\n", "1:5 n: n set to 1 requires 'm'\n");
    EXPECT(s, "{n: 1, m: b}\n", "1:11 m: must be 'a' when n is 1 (got 'b')\n");
    EXPECT(s, "{o: {}}\n", "1:2 o: 'o' requires 'n'\n");
    EXPECT(s, "{m: y}\n", "1:5 m: must be 'z' (got 'y')\n");
    EXPECT(s, "{n: 2, m: z}\n", "");
    schema_free(s);
}

static void test_not_and_choose_one(void **state)
{
    (void)state;
    CLUSTER(HEAD "  bootstrap:\n"
                 "    fromBackup:\n"
                 "      cluster: payments/old\n"
                 "      pointInTime: \"2026-11-20T10:00:00Z\"\n"
                 "      backupId: 20261120T100000Z-full\n",
            "12:7 spec.bootstrap.fromBackup.backupId: 'backupId' and 'pointInTime' cannot both "
            "be set\n");
    CLUSTER(HEAD "  bootstrap: {initdb: {}, fromBackup: {cluster: a/b}}\n"
                 "  backup:\n"
                 "    schedule: {full: \"0 2 * * *\"}\n"
                 "    destination: {}\n",
            "8:14 spec.bootstrap: set only one of: initdb, fromBackup (found initdb, "
            "fromBackup)\n"
            "11:18 spec.backup.destination: set one of: s3, local\n");
    CLUSTER(HEAD "  bootstrap: {fromBackup: {cluster: billing}}\n",
            "8:37 spec.bootstrap.fromBackup.cluster: must be namespace/name, both DNS labels "
            "(got 'billing')\n");

    struct schema *s = parse_schema("{\"not\": {\"const\": 3}}");
    EXPECT(s, "3\n", "1:1 : must not be 3\n");
    EXPECT(s, "4\n", "");
    schema_free(s);
    s = parse_schema("{\"properties\": {\"a\": {\"not\": {\"type\": \"string\"}}}, "
                     "\"not\": {\"required\": [\"x\", \"y\", \"z\"]}}");
    EXPECT(s, "{a: s}\n", "1:5 a: is not allowed here\n");
    EXPECT(s, "{x: 1, z: 2, y: 3}\n", "1:14 y: 'x', 'y' and 'z' cannot all be set\n");
    schema_free(s);
    s = parse_schema("{\"type\": \"object\", \"minProperties\": 2, \"maxProperties\": 3}");
    EXPECT(s, "{a: 1}\n", "1:1 : must have at least 2 fields (got 1)\n");
    EXPECT(s, "{a: 1, b: 2, c: 3, d: 4}\n", "1:1 : must have at most 3 fields (got 4)\n");
    schema_free(s);
    s = parse_schema("{\"type\": \"object\", \"additionalProperties\": false, \"maxProperties\": "
                     "1, \"properties\": {\"a\": {}}}");
    EXPECT(s, "{a: 1, b: 2}\n", "1:8 b: unknown field 'b' (allowed: a)\n");
    schema_free(s);
}

static void test_arrays(void **state)
{
    (void)state;
    CLUSTER(HEAD "  users:\n"
                 "    - {name: a, roles: [], passwordRef: \"env:A\"}\n"
                 "    - {name: b, roles: [readonly, admin, readonly, admin, readwrite], "
                 "passwordRef: \"env:B\"}\n"
                 "  access: {allowedCIDRs: [\"10.0.0.0/8\", \"10.0.0.0/8\"]}\n",
            "9:24 spec.users[0].roles: must have between 1 and 4 items (got 0)\n"
            "10:24 spec.users[1].roles: must have between 1 and 4 items (got 5)\n"
            "10:42 spec.users[1].roles[2]: duplicate item 'readonly' (already at [0])\n"
            "10:52 spec.users[1].roles[3]: duplicate item 'admin' (already at [1])\n"
            "11:41 spec.access.allowedCIDRs[1]: duplicate item '10.0.0.0/8' (already at [0])\n");

    struct schema *s = parse_schema("{\"type\": \"array\", \"uniqueItems\": true, \"minItems\": "
                                    "1, \"items\": {\"type\": [\"integer\", \"number\", "
                                    "\"object\", \"array\"]}}");
    EXPECT(s, "[1, 1.0]\n", "1:5 [1]: duplicate item 1.0 (already at [0])\n");
    EXPECT(s, "[{a: 1, b: [2]}, {b: [2], a: 1}, {a: 2}]\n",
           "1:18 [1]: duplicate item an object (already at [0])\n");
    EXPECT(s, "[[1, 2], [1, 2.0], [2, 1]]\n",
           "1:10 [1]: duplicate item an array (already at [0])\n");
    EXPECT(s, "[]\n", "1:1 : must have at least 1 item (got 0)\n");
    EXPECT(s, "[x]\n", "1:2 [0]: expected integer, number, object or array, got string 'x'\n");
    schema_free(s);
    s = parse_schema("{\"type\": \"array\", \"maxItems\": 1}");
    EXPECT(s, "[1, 2]\n", "1:1 : must have at most 1 item (got 2)\n");
    schema_free(s);

    /* Uniqueness stays fast on large input. */
    struct buf b = BUF_INIT;
    buf_puts(&b, "[");
    for (int i = 0; i < 20000; i++)
        buf_printf(&b, "%s%d", i ? "," : "", i % 19999);
    buf_puts(&b, "]\n");
    s = parse_schema("{\"uniqueItems\": true}");
    char *got = run(s, b.data);
    assert_non_null(strstr(got, " [19999]: duplicate item 0 (already at [0])\n"));
    assert_null(strchr(got, '\n')[1] == '\0' ? NULL : got); /* exactly one error */
    free(got);
    schema_free(s);
    buf_release(&b);
}

static void test_any_of_and_one_of(void **state)
{
    (void)state;
    char *big = malloc(4200);
    assert_non_null(big);
    memset(big, 'x', 4097);
    big[4097] = '\0';
    char yaml[8192];
    snprintf(yaml, sizeof(yaml),
             HEAD "  parameters: {a: {x: 1}, b: [1], c: ~, d: \"%s\", e: 1, f: 1.5, g: on}\n", big);
    free(big);
    char *got = run(get(SCHEMA_CLUSTER), yaml);
    same(got, "8:19 spec.parameters.a: expected string, integer, number or boolean, got "
              "object\n"
              "8:30 spec.parameters.b: expected string, integer, number or boolean, got "
              "array\n"
              "8:38 spec.parameters.c: expected string, integer, number or boolean, got "
              "null\n"
              "8:44 spec.parameters.d: must be at most 4096 characters long (got 4097)\n");
    free(got);

    struct schema *s = parse_schema(
        "{\"oneOf\": [{\"type\": \"integer\"}, {\"type\": \"number\", \"minimum\": 0}]}");
    EXPECT(s, "-1\n", "");
    EXPECT(s, "0.5\n", "");
    EXPECT(s, "1\n", "1:1 : matches more than one of the allowed forms\n");
    EXPECT(s, "-0.5\n", "1:1 : must be at least 0 (got -0.5)\n");
    EXPECT(s, "x\n", "1:1 : expected integer or number, got string 'x'\n");
    schema_free(s);
    s = parse_schema("{\"type\": \"object\", \"anyOf\": [{\"required\": [\"a\"]}, {\"required\": "
                     "[\"b\", \"c\"]}]}");
    EXPECT(s, "{b: 1}\n", "1:1 : missing required field 'a'\n");
    EXPECT(s, "{b: 1, c: 2}\n", "");
    schema_free(s);
    s = parse_schema("{\"type\": \"object\", \"dependentRequired\": {\"a\": [\"b\"]}}");
    EXPECT(s, "{c: 1, a: 1}\n", "1:8 a: 'a' requires 'b'\n");
    EXPECT(s, "{b: 1, a: 1}\n", "");
    schema_free(s);
    s = parse_schema("{\"properties\": {\"x\": false, \"y\": true}}");
    EXPECT(s, "{x: 1, y: 2}\n", "1:5 x: is not allowed here\n");
    schema_free(s);
}

static void test_no_cascades(void **state)
{
    (void)state;
    /* A wrong type is the only error: no then-enum on top of it. */
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: postgresql\n"
            "  version: 9\n"
            "  provider: local\n",
            "6:12 spec.version: expected string, got integer 9 (quote it: \"9\")\n");
    /* A bad pattern is the only error: no then-enum either. */
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: postgresql\n"
            "  version: \"fifteen\"\n"
            "  provider: local\n",
            "6:12 spec.version: must be a major version such as \"15\" or \"10.11\" (got "
            "'fifteen')\n");
    /* An unknown engine: its error only; the version is not checked against
     * any engine, and no backup-method rule fires. */
    CLUSTER("apiVersion: reeve/v1\n"
            "kind: DatabaseCluster\n"
            "metadata: {name: billing, namespace: payments}\n"
            "spec:\n"
            "  engine: oracle\n"
            "  version: \"23\"\n"
            "  provider: local\n",
            "5:11 spec.engine: must be one of: postgresql, mariadb (got 'oracle')\n");
    /* A section of the wrong type: one error, nothing about its fields. */
    CLUSTER(HEAD "  backup: daily\n"
                 "  pitr: {enabled: true}\n",
            "8:11 spec.backup: expected object, got string 'daily'\n");
    /* pitr.enabled of the wrong type does not also demand a backup. */
    CLUSTER(HEAD "  pitr: {enabled: \"true\"}\n",
            "8:19 spec.pitr.enabled: expected boolean, got string 'true' (write true or false "
            "without quotes)\n");
    /* An unknown destination is one error, not also "set one of". */
    CLUSTER(HEAD "  backup: {schedule: {full: \"0 2 * * *\"}, destination: {nfs: {}}}\n",
            "8:57 spec.backup.destination.nfs: unknown field 'nfs' (allowed: s3, local)\n");
    /* Too long a value gets the length error, not also the pattern's. */
    CLUSTER(HEAD
            "  region: "
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
            "8:11 spec.region: must be at most 63 characters long (got 80)\n");
}

static void test_paths_and_prefix(void **state)
{
    (void)state;
    const char *yaml = "apiVersion: reeve/v1\n"
                       "kind: DatabaseCluster\n"
                       "metadata:\n"
                       "  name: billing\n"
                       "  namespace: payments\n"
                       "  labels:\n"
                       "    app.kubernetes.io/name: {x: 1}\n"
                       "spec:\n"
                       "  engine: postgresql\n"
                       "  version: \"15\"\n"
                       "  provider: local\n"
                       "  users:\n"
                       "    - name: ok\n"
                       "      passwordRef: \"env:A\"\n"
                       "    - name: Bad\n"
                       "      passwordRef: \"env:B\"\n";
    char *got = run_fmt(get(SCHEMA_CLUSTER), DOC_FORMAT_YAML, yaml, "");
    same(got, "7:29 metadata.labels[\"app.kubernetes.io/name\"]: expected string, got "
              "object\n"
              "15:13 spec.users[1].name: must be a user name: lowercase letters, digits "
              "and '_', starting with a letter or '_' (got 'Bad')\n");
    free(got);
    got = run_fmt(get(SCHEMA_CLUSTER), DOC_FORMAT_YAML, yaml, "docs[2]");
    assert_non_null(strstr(got, "15:13 docs[2].spec.users[1].name: "));
    assert_non_null(strstr(got, "7:29 docs[2].metadata.labels[\"app.kubernetes.io/name\"]: "));
    free(got);
}

static void test_terraform_schema(void **state)
{
    (void)state;
    const struct schema *tf = get(SCHEMA_CLUSTER_TF);
    const char *good = "{\"resource\": {\"reeve_database_cluster\": {\n"
                       "  \"billing\": {\"namespace\": \"payments\", \"engine\": \"postgresql\",\n"
                       "    \"version\": \"16\", \"provider\": \"local\", \"instances\": 3,\n"
                       "    \"labels\": {\"tier\": \"critical\"}, \"name\": \"billing-main\",\n"
                       "    \"backup\": {\"schedule\": {\"full\": \"0 2 * * *\"},\n"
                       "      \"destination\": {\"local\": {\"path\": \"/b\"}}},\n"
                       "    \"pitr\": {\"enabled\": true}},\n"
                       "  \"other\": {\"namespace\": \"x\", \"engine\": \"mariadb\", \"version\": "
                       "\"11.4\", \"provider\": \"local\"}\n"
                       "}}}\n";
    char *got = run_fmt(tf, DOC_FORMAT_JSON, good, "");
    same(got, "");
    free(got);
}

static void test_terraform_schema_errors(void **state)
{
    (void)state;
    const struct schema *tf = get(SCHEMA_CLUSTER_TF);
    const char *bad = "{\"resource\": {\"reeve_database_cluster\": {\n"
                      "  \"Billing\": {\"engine\": \"mariadb\", \"version\": \"16\",\n"
                      "    \"provider\": \"local\", \"instances\": 0, \"namespce\": \"p\",\n"
                      "    \"pitr\": {\"enabled\": true}, \"name\": \"x_y\", \"metadata\": {}}},\n"
                      "  \"aws_instance\": {}},\n"
                      " \"variable\": {}}\n";
    char *got = run_fmt(tf, DOC_FORMAT_JSON, bad, "");
    assert_string_equal(
        got, "2:3 resource.reeve_database_cluster.Billing: key must be a DNS label: lowercase "
             "letters, digits and '-', starting with a letter and not ending with '-' (got "
             "'Billing')\n"
             "2:14 resource.reeve_database_cluster.Billing: missing required field 'namespace'\n"
             "2:47 resource.reeve_database_cluster.Billing.version: must be one of: 10.6, 10.11, "
             "11.4 for engine 'mariadb' (got '16')\n"
             "3:39 resource.reeve_database_cluster.Billing.instances: must be between 1 and 9 (got "
             "0)\n"
             "3:42 resource.reeve_database_cluster.Billing.namespce: unknown field 'namespce' (did "
             "you mean 'namespace'?)\n"
             "4:25 resource.reeve_database_cluster.Billing.pitr.enabled: pitr.enabled requires a "
             "'backup' section\n"
             "4:40 resource.reeve_database_cluster.Billing.name: must be a DNS label: lowercase "
             "letters, digits and '-', starting with a letter and not ending with '-' (got 'x_y')\n"
             "4:47 resource.reeve_database_cluster.Billing.metadata: unknown field 'metadata'\n"
             "5:3 resource.aws_instance: unknown field 'aws_instance' (allowed: "
             "reeve_database_cluster)\n"
             "6:2 variable: unknown field 'variable' (allowed: resource)\n");
    free(got);

    got = run_fmt(tf, DOC_FORMAT_JSON, "{\"resource\": {\"reeve_database_cluster\": {}}}", "");
    same(got, "1:41 resource.reeve_database_cluster: must have at least 1 entry "
              "(got 0)\n");
    free(got);
    got = run_fmt(tf, DOC_FORMAT_JSON, "{\"resource\": {}}", "");
    same(got, "1:14 resource: missing required field 'reeve_database_cluster'\n");
    free(got);
}

static void expect_default(const struct schema *s, const char *path, const char *json)
{
    const json_t *d = schema_default(s, path);
    if (json == NULL) {
        if (d != NULL)
            fail_msg("default of '%s' should be absent", path);
        return;
    }
    if (d == NULL)
        fail_msg("no default for '%s'", path);
    char *text = json_dumps(d, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_non_null(text);
    if (strcmp(text, json) != 0)
        fail_msg("default of '%s' is %s, expected %s", path, text, json);
    free(text);
}

static void test_defaults(void **state)
{
    (void)state;
    const struct schema *c = get(SCHEMA_CLUSTER);
    expect_default(c, "spec.instances", "1");
    expect_default(c, "spec.resources.cpu", "1");
    expect_default(c, "spec.resources.memoryMiB", "1024");
    expect_default(c, "spec.resources.storageGiB", "10");
    expect_default(c, "spec.replication.synchronous", "0");
    expect_default(c, "spec.replication.maxLagOnFailoverBytes", "1048576");
    expect_default(c, "spec.backup.retention.days", "7");
    expect_default(c, "spec.backup.preferReplica", "true");
    expect_default(c, "spec.backup.destination.s3.region", "\"us-east-1\"");
    expect_default(c, "spec.backup.external.args", "[]");
    expect_default(c, "spec.pitr.enabled", "false");
    expect_default(c, "spec.bootstrap", "{\"initdb\":{}}");
    expect_default(c, "spec.users[].roles", "[\"readonly\"]");
    expect_default(c, "spec.users[3].roles", "[\"readonly\"]");
    expect_default(c, "spec.maintenance.upgrade", "\"rolling\"");
    expect_default(c, "spec.deletionProtection", "true");
    /* No default: optional without one, required, unknown, malformed. */
    expect_default(c, "spec.backup.method", NULL);
    expect_default(c, "spec.maintenance.window", NULL);
    expect_default(c, "spec.engine", NULL);
    expect_default(c, "spec.nothing", NULL);
    expect_default(c, "spec.instances.x", NULL);
    expect_default(c, "spec.users[", NULL);
    expect_default(c, "", NULL);

    const struct schema *tf = get(SCHEMA_CLUSTER_TF);
    expect_default(tf, "resource.reeve_database_cluster.billing.instances", "1");
    expect_default(tf, "resource.reeve_database_cluster.billing.backup.retention.days", "7");
    expect_default(tf, "resource.reeve_database_cluster.billing.deletionProtection", "true");

    const struct schema *p = get(SCHEMA_POLICY);
    expect_default(p, "spec.require.backup", "false");
    expect_default(p, "spec.instances.max", "9");
    expect_default(p, "spec.resources.maxCpu", NULL);
}

static void test_policy_schema(void **state)
{
    (void)state;
    const struct schema *p = get(SCHEMA_POLICY);
    EXPECT(p,
           "apiVersion: reeve/v1\n"
           "kind: Policy\n"
           "metadata: {name: payments-rules}\n"
           "spec:\n"
           "  namespaces: [\"payments\", \"*\"]\n"
           "  engines: [{engine: postgresql, versions: [\"15\", \"16\"]}, {engine: mariadb}]\n"
           "  providers: [local]\n"
           "  regions: [local-1]\n"
           "  instances: {min: 2, max: 5}\n"
           "  resources: {maxCpu: 8, maxMemoryMiB: 32768, maxStorageGiB: 500}\n"
           "  require: {backup: true, pitr: true, deletionProtection: true, encryption: true}\n",
           "");
    EXPECT(p,
           "apiVersion: reeve/v1\n"
           "kind: Policy\n"
           "metadata: {name: rules, namespace: x}\n"
           "spec:\n"
           "  namespaces: []\n"
           "  engines: [{engine: postgresql, versions: [\"15\", \"10.6\", 16]}, {engine: "
           "oracle}]\n"
           "  instances: {min: 0}\n"
           "  require: {audit: true}\n",
           "3:25 metadata.namespace: unknown field 'namespace' (allowed: name)\n"
           "5:15 spec.namespaces: must have between 1 and 1024 items (got 0)\n"
           "6:51 spec.engines[0].versions[1]: must be one of: 13, 14, 15, 16, 17 for engine "
           "'postgresql' (got '10.6')\n"
           "6:59 spec.engines[0].versions[2]: expected string, got integer 16 (quote it: "
           "\"16\")\n"
           "6:74 spec.engines[1].engine: must be one of: postgresql, mariadb (got 'oracle')\n"
           "7:20 spec.instances.min: must be between 1 and 9 (got 0)\n"
           "8:13 spec.require.audit: unknown field 'audit' (allowed: backup, pitr, "
           "deletionProtection, encryption)\n");
    EXPECT(
        p,
        "apiVersion: reeve/v1\nkind: Policy\nmetadata: {name: r}\nspec: {namespaces: [\"**\"]}\n",
        "4:21 spec.namespaces[0]: must be a namespace (a DNS label: lowercase letters, digits "
        "and '-') or '*' (got '**')\n");
}

/* Load a schema file from the source tree. */
static json_t *load_source_json(const char *name)
{
    const char *src = getenv("REEVE_SOURCE_DIR");
    char path[4096];
    json_error_t jerr;
    if (src == NULL)
        src = ".";
    snprintf(path, sizeof(path), "%s/specs-schema/%s", src, name);
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

/* Walk every "pattern" and check it stays inside the subset that POSIX ERE
 * and ECMA-262 read alike. */
static void check_patterns(const json_t *j, int *count)
{
    const char *key;
    const json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) check_patterns(v, count);
        return;
    }
    if (!json_is_object(j))
        return;
    json_object_foreach((json_t *)j, key, v)
    {
        if (strcmp(key, "pattern") == 0 && json_is_string(v)) {
            const char *p = json_string_value(v);
            (*count)++;
            if (p[0] != '^' || p[strlen(p) - 1] != '$')
                fail_msg("pattern not anchored: %s", p);
            static const char *const banned[] = {"\\d", "\\w", "\\s", "\\b", "(?",
                                                 "*?",  "+?",  "}?",  "\\-"};
            for (size_t b = 0; b < sizeof(banned) / sizeof(banned[0]); b++)
                if (strstr(p, banned[b]) != NULL)
                    fail_msg("pattern uses '%s': %s", banned[b], p);
            bool in_class = false;
            for (const char *c = p; *c; c++) {
                if (!in_class && *c == '\\' && c[1] != '\0') {
                    c++;
                } else if (!in_class && *c == '[') {
                    in_class = true;
                    if (c[1] == '^')
                        c++;
                    if (c[1] == ']')
                        c++;
                } else if (in_class && *c == '\\') {
                    fail_msg("backslash inside a bracket expression: %s", p);
                } else if (in_class && *c == ']') {
                    in_class = false;
                } else if (!in_class && *c == '.') {
                    fail_msg("'.' matches a newline in POSIX but not in ECMA: %s", p);
                }
            }
            const json_t *parent_comment = json_object_get(j, "$comment");
            if (!json_is_string(parent_comment))
                fail_msg("pattern without a $comment hint: %s", p);
        } else {
            check_patterns(v, count);
        }
    }
}

static void test_schema_files_follow_the_rules(void **state)
{
    (void)state;
    static const char *const files[] = {"cluster.schema.json", "cluster.tf.schema.json",
                                        "policy.schema.json"};
    int count = 0;
    for (size_t i = 0; i < 3; i++) {
        json_t *j = load_source_json(files[i]);
        assert_string_equal(json_string_value(json_object_get(j, "$schema")),
                            "https://json-schema.org/draft/2020-12/schema");
        assert_true(json_is_string(json_object_get(j, "$id")));
        check_patterns(j, &count);
        json_decref(j);
    }
    assert_true(count > 10);
}

/* Every property has a description and (here or in what it references) a type. */
static void check_properties(const json_t *j, const json_t *root, const char *where)
{
    const char *key;
    const json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) check_properties(v, root, where);
        return;
    }
    if (!json_is_object(j))
        return;
    const json_t *props = json_object_get(j, "properties");
    json_object_foreach((json_t *)props, key, v)
    {
        if (json_is_boolean(v))
            continue; /* "x": true in an if/then/not: no schema of its own */
        if (json_object_get(j, "if") == NULL && json_object_size(v) == 1 &&
            (json_object_get(v, "const") || json_object_get(v, "enum")))
            continue;
        bool conditional = json_object_get(v, "description") == NULL &&
                           (json_object_get(v, "const") || json_object_get(v, "enum") ||
                            json_object_get(v, "properties") || json_object_get(v, "items"));
        if (conditional)
            continue; /* a property inside an if/then: refines a described one */
        if (!json_is_string(json_object_get(v, "description")))
            fail_msg("%s: property '%s' has no description", where, key);
        if (json_object_get(v, "type") == NULL)
            fail_msg("%s: property '%s' has no type", where, key);
    }
    json_object_foreach((json_t *)j, key, v) check_properties(v, root, where);
}

static void test_schema_properties_are_described(void **state)
{
    (void)state;
    static const char *const files[] = {"cluster.schema.json", "cluster.tf.schema.json",
                                        "policy.schema.json"};
    for (size_t i = 0; i < 3; i++) {
        json_t *j = load_source_json(files[i]);
        check_properties(j, j, files[i]);
        json_decref(j);
    }
}

/* The policy schema lists each engine's versions again (it stands alone);
 * they must equal the cluster schema's. */
static void test_policy_versions_match_cluster(void **state)
{
    (void)state;
    json_t *c = load_source_json("cluster.schema.json");
    json_t *p = load_source_json("policy.schema.json");
    const json_t *crules =
        json_object_get(json_object_get(json_object_get(c, "$defs"), "specRules"), "allOf");
    const json_t *prules =
        json_object_get(json_object_get(json_object_get(p, "$defs"), "engineRule"), "allOf");
    int matched = 0;
    size_t i, j;
    const json_t *cr, *pr;
    json_array_foreach(crules, i, cr)
    {
        const json_t *engine = json_object_get(
            json_object_get(json_object_get(json_object_get(cr, "if"), "properties"), "engine"),
            "const");
        if (engine == NULL)
            continue;
        const json_t *cv = json_object_get(
            json_object_get(json_object_get(json_object_get(cr, "then"), "properties"), "version"),
            "enum");
        json_array_foreach(prules, j, pr)
        {
            const json_t *pe = json_object_get(
                json_object_get(json_object_get(json_object_get(pr, "if"), "properties"), "engine"),
                "const");
            if (!json_equal(pe, engine))
                continue;
            const json_t *pv = json_object_get(
                json_object_get(
                    json_object_get(json_object_get(json_object_get(pr, "then"), "properties"),
                                    "versions"),
                    "items"),
                "enum");
            assert_true(json_equal(cv, pv));
            matched++;
        }
    }
    assert_int_equal(matched, 2);
    json_decref(c);
    json_decref(p);
}

static void test_schema_parse_errors(void **state)
{
    (void)state;
    expect_parse_error("{", "not valid JSON");
    expect_parse_error("{\"a\": 1, \"a\": 2}", "not valid JSON");
    expect_parse_error("[]", "must be a JSON object");
    expect_parse_error("{\"multipleOf\": 2}", "unsupported keyword 'multipleOf'");
    expect_parse_error("{\"properties\": {\"a\": {\"x-hint\": 1}}}",
                       "at '#/properties/a': unsupported keyword 'x-hint'");
    expect_parse_error("{\"$ref\": \"#/$defs/nope\"}", "$ref '#/$defs/nope' does not resolve");
    expect_parse_error("{\"$ref\": \"other.json#/a\"}", "does not resolve");
    expect_parse_error("{\"pattern\": \"^(a$\"}", "pattern '^(a$' does not compile");
    expect_parse_error("{\"format\": \"email\"}", "unsupported format 'email'");
    expect_parse_error("{\"type\": \"int\"}", "'type' must be a type name");
    expect_parse_error("{\"type\": [\"string\", \"int\"]}", "unknown type");
    expect_parse_error("{\"enum\": []}", "'enum' must be a non-empty array");
    expect_parse_error("{\"required\": [1]}", "'required' must be an array of strings");
    expect_parse_error("{\"minLength\": -1}", "non-negative integer");
    expect_parse_error("{\"maximum\": \"9\"}", "'maximum' must be a number");
    expect_parse_error("{\"allOf\": []}", "'allOf' must be a non-empty array");
    expect_parse_error("{\"items\": 3}", "a schema must be an object or a boolean");
    expect_parse_error("{\"$defs\": {\"a\": {\"$id\": \"x\"}}}",
                       "'$id' must be a string at the root");
}

static void test_refs_and_recursion(void **state)
{
    (void)state;
    /* Refs through $defs, JSON-pointer escapes, and $id-relative refs. */
    struct schema *s = parse_schema(
        "{\"$id\": \"https://example.test/a/root.json\", \"$defs\": {\"x/y\": {\"type\": "
        "\"integer\"}, \"tree\": {\"type\": \"object\", \"additionalProperties\": false, "
        "\"properties\": {\"v\": {\"$ref\": \"#/$defs/x~1y\"}, \"kids\": {\"type\": \"array\", "
        "\"items\": {\"$ref\": \"root.json#/$defs/tree\"}}}}}, \"$ref\": \"#/$defs/tree\"}");
    EXPECT(s, "{v: 1, kids: [{v: 2, kids: [{v: 3}]}]}\n", "");
    EXPECT(s, "{v: 1, kids: [{v: 2, kids: [{v: x}]}]}\n",
           "1:33 kids[0].kids[0].v: expected integer, got string 'x'\n");
    schema_free(s);

    /* A $ref cycle that consumes no input ends with an error, not a crash. */
    s = parse_schema("{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": "
                     "\"#/$defs/a\"}}, \"$ref\": \"#/$defs/a\"}");
    EXPECT(s, "1\n", "1:1 : is nested too deeply to check\n");
    schema_free(s);
    schema_free(NULL);
}

static void test_validate_argument_checks(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    assert_int_equal(schema_validate(NULL, NULL, "t", "", &dl), 0);
    assert_int_equal(dl.len, 0);
    assert_null(schema_default(NULL, "spec"));
    assert_null(schema_default(get(SCHEMA_CLUSTER), NULL));
    diag_list_release(&dl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_schemas_load),
        cmocka_unit_test(test_valid_cluster_has_no_errors),
        cmocka_unit_test(test_type_messages),
        cmocka_unit_test(test_range_messages),
        cmocka_unit_test(test_string_length_messages),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_misspelt_required_field),
        cmocka_unit_test(test_enum_and_const),
        cmocka_unit_test(test_pattern_messages),
        cmocka_unit_test(test_patterns_agree_with_regexec),
        cmocka_unit_test(test_cron_cidr_and_window_patterns),
        cmocka_unit_test(test_secret_values_are_not_repeated),
        cmocka_unit_test(test_date_time),
        cmocka_unit_test(test_if_then_messages),
        cmocka_unit_test(test_not_and_choose_one),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_any_of_and_one_of),
        cmocka_unit_test(test_no_cascades),
        cmocka_unit_test(test_paths_and_prefix),
        cmocka_unit_test(test_terraform_schema),
        cmocka_unit_test(test_terraform_schema_errors),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_policy_schema),
        cmocka_unit_test(test_schema_files_follow_the_rules),
        cmocka_unit_test(test_schema_properties_are_described),
        cmocka_unit_test(test_policy_versions_match_cluster),
        cmocka_unit_test(test_schema_parse_errors),
        cmocka_unit_test(test_refs_and_recursion),
        cmocka_unit_test(test_validate_argument_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
