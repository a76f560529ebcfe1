/* observed.h - the observed state the planner compares desired state with.
 *
 * Two sources feed it: providers list the instances they run for reeve
 * (found by owner labels), and agents report their nodes through the DCS
 * with a TTL. On top of those the reconciler keeps a few facts per cluster
 * (users present, the backup policy it configured, the last backup).
 *
 * The model is also readable from JSON (`reeve plan --observed FILE`, tests);
 * that JSON is input from outside and is validated strictly: unknown fields,
 * wrong types, bad names and duplicates are errors naming the field path.
 * docs/planning.md describes the shape; examples/observed/ has samples.
 */
#ifndef REEVE_OBSERVED_H
#define REEVE_OBSERVED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

enum obs_state { OBS_STATE_PROVISIONING, OBS_STATE_RUNNING, OBS_STATE_STOPPED, OBS_STATE_FAILED };

enum obs_role { OBS_ROLE_UNKNOWN, OBS_ROLE_PRIMARY, OBS_ROLE_REPLICA };

/* A fact that may be missing from what was observed. */
enum obs_tristate { OBS_UNKNOWN, OBS_FALSE, OBS_TRUE };

struct obs_label {
    char *key;
    char *value;
};

/* One instance as a provider lists it. */
struct obs_instance {
    char *provider;
    char *id; /* the provider's instance id */
    char *namespace_;
    char *cluster;            /* cluster name within namespace_ */
    char *node;               /* "billing-0" */
    char *address;            /* "" while the provider has not assigned one */
    struct obs_label *labels; /* owner labels, sorted by key */
    size_t nlabels;
    enum obs_state state;
};

struct obs_param {
    char *name;
    char *value;
    bool pending_restart; /* set in the configuration, waiting for a restart */
};

/* One node as its agent reports it. */
struct obs_node {
    char *namespace_;
    char *cluster;
    char *node;
    enum obs_role role;
    char *engine;  /* "postgresql" | "mariadb" */
    char *version; /* the server's full version, "15.4", "10.11.6" */
    bool healthy;
    int64_t lag_bytes;        /* replication lag; 0 on a primary */
    /* MariaDB measures lag in transactions (GTID sequence numbers). */
    bool lag_transactions_known;
    int64_t lag_transactions;
    /* A replica's replication runs (walreceiver streaming, or MariaDB's IO
     * and SQL threads); unknown when the agent does not say. */
    bool streaming_known;
    bool streaming;
    char *position;           /* timeline/LSN or GTID text; "" when unknown */
    struct obs_param *params; /* parameters reeve manages, sorted by name */
    size_t nparams;
    struct {
        double cpu;
        int64_t memory_mib;
        int64_t storage_gib;
    } resources;
    int64_t last_report; /* unix seconds */
    int64_t ttl_s;       /* the report is stale after last_report + ttl_s */
};

/* Facts the reconciler keeps per cluster. */
struct obs_cluster {
    char *namespace_;
    char *name;
    char **users; /* user names present (no built-in roles), sorted */
    size_t nusers;
    char *backup_digest; /* plan_backup_digest() of the configured policy; NULL = none */
    int64_t last_backup; /* unix seconds; 0 = never */
    /* deletionProtection of the last applied spec, if the reconciler knows it */
    enum obs_tristate deletion_protection;
};

struct observed {
    char *revision; /* as given; NULL = derived from content by observed_revision() */
    struct obs_instance *instances; /* sorted by cluster, node, provider, id */
    size_t ninstances;
    struct obs_node *nodes; /* sorted by cluster, node */
    size_t nnodes;
    struct obs_cluster *clusters; /* sorted by cluster */
    size_t nclusters;
    char revision_buf[32]; /* holds the derived revision */
};

void observed_init(struct observed *obs);
void observed_release(struct observed *obs);

/* Read observed state from JSON. name is what messages call the input (a
 * file path, "<stdin>"). On failure *obs is left empty and err says which
 * field is wrong: "obs.json: nodes[2].role: must be one of primary, replica,
 * unknown (got \"leader\")". Returns 0, RV_EPARSE, RV_ELIMIT, RV_EIO or
 * RV_ENOMEM. obs must have been initialised (it is released first). */
int observed_load_json(struct observed *obs, const char *name, const char *data, size_t len,
                       struct rv_error *err);
int observed_load_file(struct observed *obs, const char *path, struct rv_error *err);
/* The same from a parsed JSON value. */
int observed_from_json(struct observed *obs, const json_t *root, const char *name,
                       struct rv_error *err);

/* Canonical JSON (arrays sorted, times as RFC 3339 UTC); loadable again by
 * observed_from_json. NULL on out of memory. */
json_t *observed_to_json(const struct observed *obs);

/* The revision a plan is bound to: the "revision" given in the input, or
 * "sha256:<16 hex>" of the canonical JSON. Borrowed from obs; NULL only on
 * out of memory. */
const char *observed_revision(struct observed *obs);

/* A report is stale when now is past last_report + ttl_s. */
bool observed_node_is_stale(const struct obs_node *n, int64_t now);

const char *observed_state_name(enum obs_state s);
const char *observed_role_name(enum obs_role r);

/* RFC 3339 times: "2026-11-21T05:00:00Z", "2026-11-21T06:00:00.25+01:00".
 * Fractions are dropped. Returns 0 or RV_EINVAL. */
int observed_time_parse(int64_t *out, const char *text);
#define OBSERVED_TIME_LEN 32
/* Unix seconds as "2026-11-21T05:00:00Z". */
void observed_time_format(char out[OBSERVED_TIME_LEN], int64_t t);

#endif
