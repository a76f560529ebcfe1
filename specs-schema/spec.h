/* spec.h - the in-memory model of reeve's specs: DatabaseCluster resources
 * (from YAML or Terraform JSON syntax) and per-namespace Policy documents.
 *
 * Loading a file parses it (doc.h), validates every document against the
 * embedded JSON Schema (schema.h), and converts the valid ones into typed
 * structs with defaults applied. Invalid documents only produce diagnostics.
 * Every cluster remembers the file and position it came from.
 */
#ifndef REEVE_SPEC_H
#define REEVE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "diag.h"
#include "err.h"

struct spec_pos {
    unsigned line;
    unsigned col;
};

struct spec_kv {
    char *key;
    char *value; /* parameters are strings, as the engines take them */
    struct spec_pos pos;
};

struct spec_user {
    char *name;
    char **roles;
    size_t nroles;
    char *password_ref; /* "sealed:<base64>", "env:NAME" or "file:PATH"; never clear text */
    struct spec_pos pos; /* the user's name */
};

enum spec_bootstrap_kind { SPEC_BOOTSTRAP_INITDB, SPEC_BOOTSTRAP_FROM_BACKUP };

enum spec_dest_kind { SPEC_DEST_NONE, SPEC_DEST_S3, SPEC_DEST_LOCAL };

struct spec_cluster {
    /* where it came from */
    char *file; /* display path, relative to the repository root */
    struct spec_pos pos;      /* the document (or the Terraform resource block) */
    struct spec_pos name_pos; /* metadata.name (or the Terraform block label) */
    bool from_terraform;

    /* metadata */
    char *name;
    char *namespace_;
    struct spec_kv *labels;
    size_t nlabels;

    /* spec */
    char *engine;   /* "postgresql" | "mariadb" */
    char *version;  /* "15", "10.11" */
    char *provider; /* name of a provider in reeve.yaml */
    char *region;
    int instances; /* 1 primary + (instances-1) replicas */
    struct {
        double cpu;
        int64_t memory_mib;
        int64_t storage_gib;
    } resources;
    struct spec_kv *parameters;
    size_t nparameters;
    struct {
        int synchronous; /* number of synchronous standbys, 0 = async */
        int64_t max_lag_on_failover_bytes;
    } replication;
    struct {
        bool enabled; /* a backup section is present */
        char *full_cron;
        char *incremental_cron; /* NULL when none */
        int retention_days;
        char *method; /* "pg_basebackup" | "mariabackup" | "external" */
        char *program; /* external method only */
        char **program_args;
        size_t nprogram_args;
        enum spec_dest_kind dest_kind;
        char *bucket, *prefix, *endpoint, *s3_region, *credentials_ref; /* s3 */
        char *local_path;                                               /* local */
        char *encryption_key_ref; /* NULL when not encrypted */
        bool prefer_replica;
    } backup;
    bool pitr_enabled;
    struct {
        enum spec_bootstrap_kind kind;
        char *from_cluster;   /* "namespace/name" */
        char *backup_id;      /* NULL unless given */
        char *point_in_time;  /* RFC 3339 text as written; NULL unless given */
        struct spec_pos from_pos;
    } bootstrap;
    struct spec_user *users;
    size_t nusers;
    char **allowed_cidrs;
    size_t nallowed_cidrs;
    struct {
        char *window;  /* "Sun 02:00-04:00" or NULL (any time) */
        char *upgrade; /* "rolling" | "replace" */
    } maintenance;
    bool deletion_protection;

    /* SHA-256 (hex) of the canonical JSON of metadata+spec: equal digests
     * mean equal desired state. */
    char digest[65];

    /* Where fields were written, for diagnostics. field_prefix is the field
     * path of the spec body: "spec", or "resource.reeve_database_cluster.<label>"
     * for Terraform JSON; name_path is "metadata.name" or that same prefix.
     * A position with line 0 means the field was not written (a default
     * applies); messages about it point at `at.spec`. */
    char *field_prefix;
    char *name_path;
    struct {
        struct spec_pos spec; /* the `spec` key, or the Terraform block label */
        struct spec_pos engine, version, provider, region, instances;
        struct spec_pos cpu, memory_mib, storage_gib;
        struct spec_pos synchronous;
        struct spec_pos backup, method, encryption;
        struct spec_pos pitr; /* pitr.enabled */
        struct spec_pos deletion_protection;
    } at;
};

/* A per-namespace Policy. "*" in namespaces applies to every namespace. */
struct spec_policy_engine {
    char *engine;
    char **versions; /* empty = any version */
    size_t nversions;
};

struct spec_policy {
    char *file;
    struct spec_pos pos;
    char *name;
    struct spec_pos name_pos; /* metadata.name */
    char **namespaces;
    size_t nnamespaces;
    struct spec_policy_engine *engines; /* empty = any engine */
    size_t nengines;
    char **providers; /* empty = any */
    size_t nproviders;
    char **regions; /* empty = any */
    size_t nregions;
    int instances_min, instances_max; /* 0 = unbounded */
    double cpu_max;                   /* 0 = unbounded */
    int64_t memory_mib_max, storage_gib_max;
    bool require_backup, require_pitr, require_deletion_protection, require_encryption;
};

struct spec_set {
    struct spec_cluster **clusters;
    size_t nclusters;
    struct spec_policy **policies;
    size_t npolicies;
    size_t nfiles; /* files read */
    char **files;  /* their display paths, in the order they were read */
};

void spec_set_init(struct spec_set *set);
void spec_set_release(struct spec_set *set);

/* Parse, validate and convert one file's content. Problems are diagnostics;
 * the return is 0, or RV_ENOMEM. kind_hint: clusters/ files must hold
 * DatabaseCluster documents, policies/ files Policy documents; the walker
 * passes which folder the file was found in. */
enum spec_file_kind { SPEC_FILE_CLUSTERS, SPEC_FILE_POLICIES };
int spec_set_add_buffer(struct spec_set *set, enum spec_file_kind kind, const char *display_path,
                        const char *data, size_t len, struct diag_list *diags);
int spec_set_add_file(struct spec_set *set, enum spec_file_kind kind, const char *fs_path,
                      const char *display_path, struct diag_list *diags);
/* spec_set_add_file also returns RV_EIO (and adds a diagnostic) when the file
 * cannot be read or is not a regular file; a file over RV_SPEC_FILE_MAX is an
 * error diagnostic (return 0). Format by name: *.tf.json is Terraform JSON,
 * other *.json a JSON DatabaseCluster document, anything else YAML.
 * A document with schema errors adds nothing to the set. A cluster that
 * passes the schema but fails a semantic check (synchronous >= instances,
 * a cron range, ...) is added all the same, so that the cross-file and
 * policy checks still report on it: never act on a set while its
 * diagnostics hold errors. */
/* Forget everything that came from display_path (for incremental reloads). */
void spec_set_remove_file(struct spec_set *set, const char *display_path);

/* Which folder a path belongs to: SPEC_FILE_POLICIES when its nearest
 * "clusters" or "policies" directory component is "policies", otherwise
 * SPEC_FILE_CLUSTERS. */
enum spec_file_kind spec_file_kind_of(const char *path);

/* Walk root for clusters/ ** / *.yaml|*.yml|*.tf.json and policies/ ** / *.yaml|*.yml
 * (hidden entries and symlinks leaving root skipped). A root with neither
 * folder is treated as a folder of cluster files. Display paths are relative
 * to root. Returns RV_EIO (err set) when root, or a file found below it,
 * cannot be read; each such problem is also an error diagnostic, and the
 * walk reads every other file first. root may also be one file: its kind
 * comes from spec_file_kind_of() and its display path is root as given. */
int spec_set_load_dir(struct spec_set *set, const char *root, struct diag_list *diags,
                      struct rv_error *err);
/* As spec_set_load_dir, but display_root, when not NULL, is put in front
 * of the paths shown for files found below a directory root ("repo-a" gives
 * "repo-a/clusters/x.yaml"), and is the display path of a root that is a
 * file. */
int spec_set_load_path(struct spec_set *set, const char *root, const char *display_root,
                       struct diag_list *diags, struct rv_error *err);

/* After all files are loaded: duplicate namespace/name (error), unknown
 * bootstrap.fromBackup.cluster (warning), policy evaluation (error). */
void spec_set_check(const struct spec_set *set, struct diag_list *diags);

const struct spec_cluster *spec_set_find(const struct spec_set *set, const char *namespace_,
                                         const char *name);
/* Sort clusters by namespace, then name (deterministic plans and output). */
void spec_set_sort(struct spec_set *set);

/* Canonical JSON of a cluster as a DatabaseCluster document with defaults
 * filled in (secret references stay references). */
json_t *spec_cluster_to_json(const struct spec_cluster *c);

void spec_cluster_free(struct spec_cluster *c);
void spec_policy_free(struct spec_policy *p);

#endif
