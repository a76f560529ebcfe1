/* cmd_validate.c - `reeve validate`: check cluster specs and policies the
 * way reeve reads them on a pull request, without a server.
 *
 * Contract: diagnostics go to stdout, one per line, sorted by file, line and
 * column ("file:line:col: error: field: message"); a one-line summary goes
 * to stderr (dropped by --quiet), so a script reading stdout sees only
 * diagnostics. --json prints one JSON object instead. Exit status: 0 valid
 * (warnings allowed), 1 invalid, 2 usage error or a path that cannot be read.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "diag.h"
#include "err.h"
#include "schema.h"
#include "spec.h"

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

static const char validate_usage[] =
    "usage: reeve validate [--json] [--quiet] [--no-warnings] [PATH...]\n";

static const char validate_help[] =
    "\n"
    "Check DatabaseCluster specs and Policy documents with the same checks reeve\n"
    "runs on every pull request, without a server, a database or network access.\n"
    "\n"
    "PATH is a repository (default: the current directory), a folder of specs,\n"
    "or a single file. In a repository, reeve reads\n"
    "  clusters/**/*.yaml, *.yml, *.tf.json   DatabaseCluster documents\n"
    "                                         (YAML, or Terraform JSON syntax)\n"
    "  policies/**/*.yaml, *.yml              Policy documents\n"
    "in sorted order, skipping hidden files and folders. A folder with neither\n"
    "clusters/ nor policies/ is read as a folder of cluster files. A single file\n"
    "is a Policy file when a folder in its path is named policies/, otherwise a\n"
    "cluster file. Several PATHs are checked together, as one repository; a file\n"
    "given alone is checked alone (no policies apply to it unless given too).\n"
    "\n"
    "What is checked:\n"
    "  - syntax: YAML or JSON, with the line and column of the mistake\n"
    "  - the JSON Schema (cluster.schema.json, cluster.tf.schema.json,\n"
    "    policy.schema.json): required fields, types, ranges, names, engine\n"
    "    versions, backup methods per engine, unknown fields (with a suggestion)\n"
    "  - rules a schema cannot express: synchronous standbys below the instance\n"
    "    count, cron ranges, CIDRs, the maintenance window and unique user names\n"
    "  - across files: a namespace/name defined twice, policy names defined twice,\n"
    "    a restore from a cluster that is not in the repository (warning)\n"
    "  - policies: every cluster against every policy of its namespace (engines,\n"
    "    versions, providers, regions, instances, resources, required backups,\n"
    "    point-in-time recovery, deletion protection and backup encryption)\n"
    "\n"
    "options:\n"
    "  --json          print one JSON object: {\"valid\", \"files\", \"clusters\",\n"
    "                  \"policies\", \"diagnostics\", \"errors\", \"warnings\"}\n"
    "  -q, --quiet     print no summary line on stderr\n"
    "  --no-warnings   do not print warnings (they never fail the check)\n"
    "  -h, --help      show this help\n"
    "\n"
    "output:\n"
    "  stdout  one line per problem, sorted by file, line and column:\n"
    "            clusters/payments/billing.yaml:12:14: error: spec.instances: must be "
    "between 1 and 9 (got 12)\n"
    "  stderr  a summary: 3 files, 2 clusters, 1 policy: 1 error, 0 warnings\n"
    "\n"
    "exit status:\n"
    "  0  valid (warnings allowed)\n"
    "  1  invalid: at least one error\n"
    "  2  usage error, or a PATH or file that cannot be read\n"
    "\n"
    "examples:\n"
    "  reeve validate                        check the repository in this directory\n"
    "  reeve validate clusters/payments/billing.yaml\n"
    "  reeve validate --json . | jq '.diagnostics[]'\n"
    "\n"
    "  as a Git pre-commit hook (.git/hooks/pre-commit, made executable; it checks\n"
    "  the working tree):\n"
    "    #!/bin/sh\n"
    "    exec reeve validate --quiet\n"
    "\n"
    "  as a CI step (any CI; the exit status fails the job):\n"
    "    reeve validate\n"
    "\n"
    "editor support: the schemas are plain JSON Schema 2020-12, so YAML editors\n"
    "check specs as you type. Copy cluster.schema.json and policy.schema.json from\n"
    "reeve's specs-schema/ folder into the repository and start each file with\n"
    "  # yaml-language-server: $schema=../../schemas/cluster.schema.json\n"
    "(the path is relative to the spec file). reeve validate stays the reference:\n"
    "it also runs the checks that a schema cannot express.\n"
    "\n"
    "See docs/validate.md for every message and what to do about it.\n";

struct options {
    bool json;
    bool quiet;
    bool no_warnings;
    char **paths;
    int npaths;
};

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* Options and paths may come in any order; after "--" everything is a
 * path. o->paths points into a new array (free it) or is NULL. Returns -1 to
 * go on, or an exit status. */
static int parse_args(struct options *o, int argc, char **argv)
{
    bool only_paths = false;

    o->paths = calloc((size_t)argc + 1, sizeof(*o->paths));
    if (o->paths == NULL) {
        fputs("error: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_paths || a[0] != '-' || a[1] == '\0') {
            o->paths[o->npaths++] = a;
        } else if (strcmp(a, "--") == 0) {
            only_paths = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = true;
        } else if (strcmp(a, "--no-warnings") == 0) {
            o->no_warnings = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(validate_usage, stdout);
            fputs(validate_help, stdout);
            return EXIT_VALID;
        } else {
            fprintf(stderr,
                    "error: unknown option '%s'\n%s"
                    "run 'reeve validate --help' for the options\n",
                    a, validate_usage);
            return EXIT_USAGE;
        }
    }
    return -1;
}

static void drop_warnings(struct diag_list *l)
{
    size_t k = 0;
    for (size_t i = 0; i < l->len; i++) {
        struct diag *d = &l->items[i];
        if (d->severity == DIAG_WARNING) {
            free(d->file);
            free(d->path);
            free(d->msg);
        } else {
            l->items[k++] = *d;
        }
    }
    l->len = k;
}

static json_t *set_to_json(const struct spec_set *set, const struct diag_list *diags, bool valid)
{
    json_t *root = json_object();
    json_t *clusters = json_array();
    json_t *policies = json_array();
    json_t *list = json_array();
    bool fail = root == NULL || clusters == NULL || policies == NULL || list == NULL;

    for (size_t i = 0; !fail && i < set->nclusters; i++) {
        const struct spec_cluster *c = set->clusters[i];
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:s}", "namespace", c->namespace_,
                      "name", c->name, "file", c->file, "line", (json_int_t)c->pos.line, "engine",
                      c->engine ? c->engine : "", "version", c->version ? c->version : "",
                      "instances", c->instances, "digest", c->digest);
        fail = o == NULL || json_array_append_new(clusters, o) != 0;
    }
    for (size_t i = 0; !fail && i < set->npolicies; i++) {
        const struct spec_policy *p = set->policies[i];
        json_t *ns = json_array();
        for (size_t k = 0; ns && k < p->nnamespaces; k++)
            json_array_append_new(ns, json_string(p->namespaces[k]));
        json_t *o = json_pack("{s:s, s:s, s:I, s:o*}", "name", p->name, "file", p->file, "line",
                              (json_int_t)p->pos.line, "namespaces", ns);
        fail = o == NULL || json_array_append_new(policies, o) != 0;
    }
    for (size_t i = 0; !fail && i < diags->len; i++) {
        json_t *o = diag_to_json(&diags->items[i]);
        fail = o == NULL || json_array_append_new(list, o) != 0;
    }
    if (!fail) {
        fail =
            json_object_set_new(root, "valid", json_boolean(valid)) != 0 ||
            json_object_set_new(root, "files", json_integer((json_int_t)set->nfiles)) != 0 ||
            json_object_set(root, "clusters", clusters) != 0 ||
            json_object_set(root, "policies", policies) != 0 ||
            json_object_set(root, "diagnostics", list) != 0 ||
            json_object_set_new(root, "errors", json_integer((json_int_t)diags->errors)) != 0 ||
            json_object_set_new(root, "warnings", json_integer((json_int_t)diags->warnings)) != 0 ||
            json_object_set_new(root, "notShown", json_integer((json_int_t)diags->dropped)) != 0;
    }
    json_decref(clusters);
    json_decref(policies);
    json_decref(list);
    if (fail) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* True when paths[i] names the same file or folder as an earlier PATH, so
 * "reeve validate . ./" reads the repository once. */
static bool named_before(char **paths, int i)
{
    char *real = realpath(paths[i], NULL);
    bool seen = false;
    for (int k = 0; real && k < i && !seen; k++) {
        char *other = realpath(paths[k], NULL);
        seen = other && strcmp(other, real) == 0;
        free(other);
    }
    free(real);
    return seen;
}

static int policy_name_cmp(const void *pa, const void *pb)
{
    const struct spec_policy *a = *(const struct spec_policy *const *)pa;
    const struct spec_policy *b = *(const struct spec_policy *const *)pb;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->file, b->file);
}

int cmd_validate(int argc, char **argv)
{
    static const enum schema_id schemas[] = {SCHEMA_CLUSTER, SCHEMA_CLUSTER_TF, SCHEMA_POLICY};
    static char dot[] = ".";
    struct options o = {false, false, false, NULL, 0};
    struct spec_set set;
    struct diag_list diags;
    struct rv_error err;
    bool io_error = false;
    bool valid;
    int status = parse_args(&o, argc, argv);

    spec_set_init(&set);
    diag_list_init(&diags);
    rv_error_clear(&err);
    if (status >= 0)
        goto out;
    status = EXIT_USAGE;
    if (o.npaths == 0)
        o.paths[o.npaths++] = dot;

    /* load the embedded schemas before anything could start a thread */
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        if (schema_get(schemas[i], &err) == NULL) {
            fprintf(stderr, "error: internal: %s\n", err.msg[0] ? err.msg : "no schema");
            goto out;
        }
    }

    for (int i = 0; i < o.npaths; i++) {
        /* one PATH: files show relative to it; several: prefixed by each */
        const char *display = o.npaths > 1 ? o.paths[i] : NULL;
        if (named_before(o.paths, i))
            continue;
        int rc = spec_set_load_path(&set, o.paths[i], display, &diags, &err);
        if (rc == RV_EIO) {
            io_error = true;
        } else if (rc < 0) {
            fprintf(stderr, "error: cannot check '%s': %s\n", o.paths[i],
                    err.msg[0] ? err.msg : rv_strerror(rc));
            goto out;
        }
    }
    spec_set_check(&set, &diags);
    spec_set_sort(&set);
    if (set.npolicies > 1)
        qsort(set.policies, set.npolicies, sizeof(*set.policies), policy_name_cmp);
    diag_list_sort(&diags);
    if (o.no_warnings)
        drop_warnings(&diags);

    valid = diags.errors == 0 && !io_error;
    if (o.json) {
        json_t *j = set_to_json(&set, &diags, valid);
        if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            json_decref(j);
            fputs("error: out of memory writing the JSON report\n", stderr);
            goto out;
        }
        fputc('\n', stdout);
        json_decref(j);
    } else {
        for (size_t i = 0; i < diags.len; i++)
            diag_print(stdout, &diags.items[i]);
    }
    if (fflush(stdout) != 0) {
        fputs("error: cannot write the report to standard output\n", stderr);
        goto out;
    }
    if (!o.quiet && !o.json) {
        fprintf(stderr, "%zu %s, %zu %s, %zu %s: %zu %s, %zu %s%s\n", set.nfiles,
                plural(set.nfiles, "file", "files"), set.nclusters,
                plural(set.nclusters, "cluster", "clusters"), set.npolicies,
                plural(set.npolicies, "policy", "policies"), diags.errors,
                plural(diags.errors, "error", "errors"), diags.warnings,
                plural(diags.warnings, "warning", "warnings"),
                o.no_warnings && diags.warnings ? " (not shown)" : "");
        if (diags.dropped)
            fprintf(stderr, "note: only the first %zu problems are listed\n", diags.len);
    }
    status = io_error ? EXIT_USAGE : valid ? EXIT_VALID : EXIT_INVALID;
out:
    free(o.paths);
    diag_list_release(&diags);
    spec_set_release(&set);
    return status;
}
