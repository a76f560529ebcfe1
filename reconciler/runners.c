/* runners.c - what each plan action kind does (runners.h). */
#include "runners.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backups.h"
#include "crypto.h"
#include "limits.h"
#include "log.h"
#include "planner.h"
#include "users.h"

#define LOG_C "runners"

#define LABEL_CLUSTER "reeve.io/cluster"
#define LABEL_NODE "reeve.io/node"
#define LABEL_MANAGED "reeve.io/managed-by"
#define RUNNERS_PROVIDERS_MAX 64
#define RUNNERS_LIST_DEADLINE_MS 30000
/* provider idempotency keys are at most 128 characters (PROTOCOL.md) */
#define RUNNERS_KEY_MAX 128

_Static_assert(AGENTAPI_TOKEN_HEX_SIZE == 2 * CRYPTO_SHA256_LEN + 1,
               "a registration token is one HMAC-SHA256 in hex");

/* What the runners keep of one desired cluster. */
struct rcluster {
    char *key; /* "ns/name" */
    char *namespace_, *name, *engine, *version, *provider, *region;
    int instances;
    double cpu;
    int64_t memory_mib, storage_gib;
    int64_t max_lag_on_failover_bytes;
    int synchronous;
    char backup_digest[65]; /* plan_backup_digest of the spec */
    bool deletion_protection;
    json_t *user_names;     /* the spec's user names, sorted */
    json_t *parameters; /* object of strings */
    bool backup;
    size_t nusers;
    size_t nparameters;
};

struct rnode {
    char *namespace_, *cluster, *node;
    char *engine, *version, *position;
    enum obs_role role;
    bool healthy;
    int64_t lag_bytes;
    int64_t lag_transactions; /* -1: not reported */
    int streaming;            /* -1: not reported */
    int64_t last_report, ttl_s;
};

struct rprovider {
    char *name;
    struct provider *p;
};

struct runners {
    struct runners_opts o;
    pthread_mutex_t mu; /* clusters and nodes */
    struct rcluster *clusters;
    size_t nclusters;
    struct rnode *nodes;
    size_t nnodes;
    struct rprovider providers[RUNNERS_PROVIDERS_MAX];
    size_t nproviders;
    atomic_bool stopping;
    json_t *listed; /* the instances of the last runners_observe, under mu */
    /* What configure_backup and configure_users made true, per cluster
     * key: {"backupDigest", "users"}, under mu. It is the observed state of
     * those settings; in memory only, so after a restart the first plan
     * configures them once more, which is idempotent. A provisioned
     * cluster also keeps "deletionProtection" of the spec it was created
     * for, so that deleting a cluster whose first apply failed is decided
     * by that spec (the planner prefers the last applied spec when there is
     * one; after a restart it is unknown again, and deletion is blocked). */
    json_t *configured;
};

/* --- helpers --- */

static int64_t now_s(const struct runners *r)
{
    if (r->o.now != NULL)
        return r->o.now(r->o.ud);
    return (int64_t)time(NULL);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *xstrdup(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static void rcluster_release(struct rcluster *c)
{
    free(c->key);
    free(c->namespace_);
    free(c->name);
    free(c->engine);
    free(c->version);
    free(c->provider);
    free(c->region);
    json_decref(c->parameters);
    json_decref(c->user_names);
    memset(c, 0, sizeof(*c));
}

static void rnode_release(struct rnode *n)
{
    free(n->namespace_);
    free(n->cluster);
    free(n->node);
    free(n->engine);
    free(n->version);
    free(n->position);
    memset(n, 0, sizeof(*n));
}

/* Split "ns/name" into its parts (out buffers of RV_NAME sizes). */
static int split_cluster(char *ns, size_t ns_size, char *name, size_t name_size, const char *key)
{
    const char *slash = strchr(key, '/');
    if (slash == NULL || (size_t)(slash - key) >= ns_size || strlen(slash + 1) >= name_size)
        return RV_EINVAL;
    memcpy(ns, key, (size_t)(slash - key));
    ns[slash - key] = '\0';
    strcpy(name, slash + 1);
    return 0;
}

static const struct rcluster *cluster_find(const struct runners *r, const char *key)
{
    for (size_t i = 0; i < r->nclusters; i++)
        if (strcmp(r->clusters[i].key, key) == 0)
            return &r->clusters[i];
    return NULL;
}

static bool node_fresh(const struct rnode *n, int64_t now)
{
    return now <= n->last_report + n->ttl_s;
}

static bool node_is(const struct rnode *n, const char *ns, const char *cluster, const char *node)
{
    return strcmp(n->namespace_, ns) == 0 && strcmp(n->cluster, cluster) == 0 &&
           (node == NULL || strcmp(n->node, node) == 0);
}

/* --- lifetime --- */

int runners_new(struct runners **out, const struct runners_opts *opts, struct rv_error *err)
{
    *out = NULL;
    struct runners *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    r->o = *opts;
    r->o.agent_url = NULL;
    char *url = strdup(opts->agent_url != NULL ? opts->agent_url : "");
    if (url == NULL || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(url);
        free(r);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    r->o.agent_url = url;
    if (r->o.poll_ms <= 0)
        r->o.poll_ms = 500;
    *out = r;
    return 0;
}

void runners_free(struct runners *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nclusters; i++)
        rcluster_release(&r->clusters[i]);
    free(r->clusters);
    for (size_t i = 0; i < r->nnodes; i++)
        rnode_release(&r->nodes[i]);
    free(r->nodes);
    for (size_t i = 0; i < r->nproviders; i++)
        free(r->providers[i].name);
    json_decref(r->listed);
    json_decref(r->configured);
    free((char *)r->o.agent_url);
    memset(r->o.secret_key, 0, sizeof(r->o.secret_key));
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int runners_add_provider(struct runners *r, const char *name, struct provider *p,
                         struct rv_error *err)
{
    if (r->nproviders >= RUNNERS_PROVIDERS_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "more than %d providers configured",
                            RUNNERS_PROVIDERS_MAX);
    char *n = strdup(name);
    if (n == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    r->providers[r->nproviders].name = n;
    r->providers[r->nproviders].p = p;
    r->nproviders++;
    return 0;
}

struct provider *runners_provider(struct runners *r, const char *name)
{
    for (size_t i = 0; name != NULL && i < r->nproviders; i++)
        if (strcmp(r->providers[i].name, name) == 0)
            return r->providers[i].p;
    return NULL;
}

/* --- desired state and node reports --- */

static int rcluster_from_spec(struct rcluster *c, const struct spec_cluster *s)
{
    memset(c, 0, sizeof(*c));
    size_t klen = strlen(s->namespace_) + strlen(s->name) + 2;
    c->key = malloc(klen);
    if (c->key != NULL)
        snprintf(c->key, klen, "%s/%s", s->namespace_, s->name);
    c->namespace_ = xstrdup(s->namespace_);
    c->name = xstrdup(s->name);
    c->engine = xstrdup(s->engine);
    c->version = xstrdup(s->version);
    c->provider = xstrdup(s->provider);
    c->region = xstrdup(s->region);
    c->parameters = json_object();
    c->instances = s->instances;
    c->cpu = s->resources.cpu;
    c->memory_mib = s->resources.memory_mib;
    c->storage_gib = s->resources.storage_gib;
    c->max_lag_on_failover_bytes = s->replication.max_lag_on_failover_bytes;
    c->synchronous = s->replication.synchronous;
    plan_backup_digest(c->backup_digest, s);
    c->deletion_protection = s->deletion_protection;
    c->user_names = json_array();
    for (size_t i = 0; c->user_names != NULL && i < s->nusers; i++)
        json_array_append_new(c->user_names, json_string(s->users[i].name));
    c->backup = s->backup.enabled;
    c->nusers = s->nusers;
    c->nparameters = s->nparameters;
    if (c->key == NULL || c->namespace_ == NULL || c->name == NULL || c->engine == NULL ||
        c->version == NULL || c->provider == NULL || c->region == NULL || c->parameters == NULL ||
        c->user_names == NULL)
        return RV_ENOMEM;
    for (size_t i = 0; i < s->nparameters; i++)
        if (json_object_set_new(c->parameters, s->parameters[i].key,
                                json_string(s->parameters[i].value)) != 0)
            return RV_ENOMEM;
    return 0;
}

int runners_set_desired(struct runners *r, const struct spec_set *set, struct rv_error *err)
{
    struct rcluster *cs = NULL;
    size_t n = 0;
    int rc = 0;
    /* the backup side keeps the last spec of every cluster, also deleted */
    if (r->o.backups != NULL && (rc = backups_set_specs(r->o.backups, set, err)) != 0)
        return rc;
    cs = calloc(set->nclusters ? set->nclusters : 1, sizeof(*cs));
    if (cs == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    for (; n < set->nclusters; n++) {
        if (rcluster_from_spec(&cs[n], set->clusters[n]) != 0) {
            n++;
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
    }
    pthread_mutex_lock(&r->mu);
    struct rcluster *old = r->clusters;
    size_t nold = r->nclusters;
    r->clusters = cs;
    r->nclusters = n;
    pthread_mutex_unlock(&r->mu);
    cs = old;
    n = nold;
out:
    for (size_t i = 0; i < n; i++)
        rcluster_release(&cs[i]);
    free(cs);
    return rc;
}

int runners_node_report(struct runners *r, const struct obs_node *n, struct rv_error *err)
{
    struct rnode nn = {
        .namespace_ = xstrdup(n->namespace_),
        .cluster = xstrdup(n->cluster),
        .node = xstrdup(n->node),
        .engine = xstrdup(n->engine),
        .version = xstrdup(n->version),
        .position = xstrdup(n->position),
        .role = n->role,
        .healthy = n->healthy,
        .lag_bytes = n->lag_bytes,
        .lag_transactions = n->lag_transactions_known ? n->lag_transactions : -1,
        .streaming = n->streaming_known ? n->streaming : -1,
        .last_report = n->last_report,
        .ttl_s = n->ttl_s,
    };
    int rc = 0;
    if (nn.namespace_ == NULL || nn.cluster == NULL || nn.node == NULL || nn.engine == NULL ||
        nn.version == NULL || nn.position == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nnodes; i++) {
        if (node_is(&r->nodes[i], nn.namespace_, nn.cluster, nn.node)) {
            struct rnode tmp = r->nodes[i];
            r->nodes[i] = nn;
            nn = tmp;
            pthread_mutex_unlock(&r->mu);
            goto out;
        }
    }
    if (r->nnodes >= RV_OBSERVED_NODES_MAX) {
        pthread_mutex_unlock(&r->mu);
        rc =
            rv_error_set(err, RV_ELIMIT, false, "more than %d node reports", RV_OBSERVED_NODES_MAX);
        goto out;
    }
    struct rnode *grown = realloc(r->nodes, (r->nnodes + 1) * sizeof(*grown));
    if (grown == NULL) {
        pthread_mutex_unlock(&r->mu);
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    r->nodes = grown;
    r->nodes[r->nnodes++] = nn;
    memset(&nn, 0, sizeof(nn));
    pthread_mutex_unlock(&r->mu);
out:
    rnode_release(&nn);
    return rc;
}

bool runners_has_primary(struct runners *r, const char *cluster)
{
    char ns[RV_NAME_MAX + 1], name[RV_NAME_MAX + 1];
    bool found = false;
    if (split_cluster(ns, sizeof(ns), name, sizeof(name), cluster) != 0)
        return false;
    int64_t now = now_s(r);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nnodes && !found; i++) {
        const struct rnode *n = &r->nodes[i];
        found = node_is(n, ns, name, NULL) && node_fresh(n, now) && n->healthy &&
                n->role == OBS_ROLE_PRIMARY;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

void runners_node_forget(struct runners *r, const char *namespace_, const char *cluster,
                         const char *node)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nnodes;) {
        if (node_is(&r->nodes[i], namespace_, cluster, node)) {
            rnode_release(&r->nodes[i]);
            r->nodes[i] = r->nodes[--r->nnodes];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

static int node_cmp(const void *a, const void *b)
{
    const struct obs_node *x = a, *y = b;
    int c = strcmp(x->namespace_, y->namespace_);
    if (c == 0)
        c = strcmp(x->cluster, y->cluster);
    if (c == 0)
        c = strcmp(x->node, y->node);
    return c;
}

int runners_observed_nodes(struct observed *obs, struct runners *r, struct rv_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    struct obs_node *ns = calloc(r->nnodes ? r->nnodes : 1, sizeof(*ns));
    size_t n = 0;
    if (ns == NULL) {
        rc = RV_ENOMEM;
        goto unlock;
    }
    for (; n < r->nnodes; n++) {
        const struct rnode *s = &r->nodes[n];
        struct obs_node *d = &ns[n];
        d->namespace_ = xstrdup(s->namespace_);
        d->cluster = xstrdup(s->cluster);
        d->node = xstrdup(s->node);
        d->engine = xstrdup(s->engine);
        d->version = xstrdup(s->version);
        d->position = xstrdup(s->position);
        d->role = s->role;
        d->healthy = s->healthy;
        d->lag_bytes = s->lag_bytes < 0 ? 0 : s->lag_bytes;
        d->last_report = s->last_report;
        d->ttl_s = s->ttl_s;
        if (d->namespace_ == NULL || d->cluster == NULL || d->node == NULL || d->engine == NULL ||
            d->version == NULL || d->position == NULL) {
            n++;
            rc = RV_ENOMEM;
            break;
        }
    }
unlock:
    pthread_mutex_unlock(&r->mu);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            free(ns[i].namespace_);
            free(ns[i].cluster);
            free(ns[i].node);
            free(ns[i].engine);
            free(ns[i].version);
            free(ns[i].position);
        }
        free(ns);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    qsort(ns, n, sizeof(*ns), node_cmp);
    for (size_t i = 0; i < obs->nnodes; i++) {
        struct obs_node *d = &obs->nodes[i];
        free(d->namespace_);
        free(d->cluster);
        free(d->node);
        free(d->engine);
        free(d->version);
        free(d->position);
        for (size_t j = 0; j < d->nparams; j++) {
            free(d->params[j].name);
            free(d->params[j].value);
        }
        free(d->params);
    }
    free(obs->nodes);
    obs->nodes = ns;
    obs->nnodes = n;
    return 0;
}

/* hex(HMAC-SHA256(secret key, prefix + text)). */
static int derive_hex(char out[2 * 32 + 1], const struct runners *r, const char *prefix,
                      const char *text)
{
    char msg[RV_NAME_MAX * 2 + 160];
    uint8_t mac[CRYPTO_SHA256_LEN];
    int n = snprintf(msg, sizeof(msg), "%s%s", prefix, text);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return RV_EINVAL;
    int rc = crypto_hmac_sha256(mac, r->o.secret_key, sizeof(r->o.secret_key), msg, (size_t)n);
    if (rc == 0)
        rc = crypto_hex_encode(out, 2 * 32 + 1, mac, sizeof(mac));
    memset(mac, 0, sizeof(mac));
    return rc;
}

int runners_replication_password(char out[2 * 32 + 1], const struct runners *r, const char *cluster)
{
    return derive_hex(out, r, "replication:", cluster);
}

/* --- provider helpers --- */

static struct provider *action_provider(struct runners *r, const struct journal_action *a,
                                        struct rv_error *err)
{
    const char *name = a->provider;
    char from_spec[RV_NAME_MAX + 1] = "";
    if (name == NULL || name[0] == '\0') {
        pthread_mutex_lock(&r->mu);
        const struct rcluster *c = cluster_find(r, a->cluster);
        if (c != NULL)
            snprintf(from_spec, sizeof(from_spec), "%s", c->provider);
        pthread_mutex_unlock(&r->mu);
        name = from_spec;
    }
    struct provider *p = runners_provider(r, name);
    if (p == NULL)
        rv_error_set(err, RV_ENOTFOUND, false,
                     "no provider '%s' is configured for cluster '%s'; add it to the "
                     "providers section of reeve.yaml",
                     name, a->cluster);
    return p;
}

static int64_t deadline_ms_left(const struct runners *r, int64_t deadline)
{
    int64_t left = (deadline - now_s(r)) * 1000;
    return left < 1000 ? 1000 : left;
}

/* Instances carrying the cluster's labels (and the node's, when node is not
 * NULL or ""). *out: a new reference to the array. */
static int list_instances(json_t **out, struct provider *p, const char *cluster, const char *node,
                          struct rv_error *err)
{
    json_t *res = NULL;
    *out = NULL;
    json_t *params = json_pack("{s:{s:s}}", "labels", LABEL_CLUSTER, cluster);
    if (params == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (node != NULL && node[0] != '\0' &&
        json_object_set_new(json_object_get(params, "labels"), LABEL_NODE, json_string(node)) !=
            0) {
        json_decref(params);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    int rc = provider_call(&res, p, "list_instances", params, RUNNERS_LIST_DEADLINE_MS, NULL, err);
    json_decref(params);
    if (rc != 0)
        return rc;
    json_t *arr = json_object_get(res, "instances");
    if (!json_is_array(arr)) {
        json_decref(res);
        return rv_error_set(err, RV_EPROTO, true,
                            "provider '%s': list_instances answered without an instances array",
                            provider_name(p));
    }
    *out = json_incref(arr);
    json_decref(res);
    return 0;
}

/* Wipe a JSON string's text before the value is freed. */
static void wipe_string(json_t *s)
{
    if (json_is_string(s))
        memset((char *)json_string_value(s), 0, json_string_length(s));
}

static json_t *resources_json(const struct rcluster *c)
{
    json_t *cpu =
        c->cpu == (double)(int64_t)c->cpu ? json_integer((json_int_t)c->cpu) : json_real(c->cpu);
    return json_pack("{s:o, s:I, s:I}", "cpu", cpu, "memoryMiB", (json_int_t)c->memory_mib,
                     "storageGiB", (json_int_t)c->storage_gib);
}

/* --- provision_instance --- */

static int run_provision(char **out_output, struct runners *r, const struct journal_action *a,
                         const char *plan_key, int64_t deadline, struct rv_error *err)
{
    json_t *found = NULL, *params = NULL, *res = NULL;
    /* The plan's key names the node and its target, so a node re-created
     * after a scale-in would get the key of its first life, and the
     * provider would answer with the instance it deleted. The key sent is
     * bound to the apply as well: the same across retries and after a crash
     * (the journal resumes the same apply), new for a later apply. */
    char key[CRYPTO_SHA256_HEX_SIZE];
    char material[RV_PROVIDER_IDEMPOTENCY_KEY_MAX + 32];
    char token[AGENTAPI_TOKEN_HEX_SIZE] = "";
    char password[2 * 32 + 1] = "";
    char ns[RV_NAME_MAX + 1], name[RV_NAME_MAX + 1];
    int rc;

    struct provider *p = action_provider(r, a, err);
    if (p == NULL)
        return err->code;
    if (split_cluster(ns, sizeof(ns), name, sizeof(name), a->cluster) != 0)
        return rv_error_set(err, RV_EINVAL, false, "bad cluster name '%s'", a->cluster);
    int n = snprintf(material, sizeof(material), "%s:apply-%" PRId64, plan_key, a->apply_id);
    if (n < 0 || (size_t)n >= sizeof(material) || crypto_sha256_hex(key, material, (size_t)n) != 0)
        return rv_error_set(err, RV_EINVAL, false, "cannot derive the idempotency key of '%s'",
                            a->id);

    /* Already there (an earlier attempt, or a crash after the call): done,
     * without issuing a token that nobody would use. */
    rc = list_instances(&found, p, a->cluster, a->node, err);
    if (rc != 0)
        goto out;
    if (json_array_size(found) > 0) {
        *out_output = json_dumps(json_array_get(found, 0), JSON_COMPACT | JSON_SORT_KEYS);
        goto out;
    }

    rc = derive_hex(token, r, "registration:", key);
    if (rc == 0)
        rc = r->o.issue_token(token, ns, name, a->node, err, r->o.ud);
    else
        rv_error_set(err, rc, false, "cannot derive the registration token");
    if (rc != 0)
        goto out;
    rc = runners_replication_password(password, r, a->cluster);
    if (rc != 0) {
        rc = rv_error_set(err, rc, false, "cannot derive the replication password");
        goto out;
    }

    pthread_mutex_lock(&r->mu);
    const struct rcluster *c = cluster_find(r, a->cluster);
    if (c != NULL)
        params =
            json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:o,"
                      " s:{s:{s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:{s:s, s:o}}, s:{s:s, s:s}}}",
                      "name", a->node, "labels", LABEL_CLUSTER, a->cluster, LABEL_NODE, a->node,
                      LABEL_MANAGED, "reeve", "engine", c->engine, "version", c->version, "region",
                      c->region, "resources", resources_json(c), "agent", "config", "node", a->node,
                      "cluster", a->cluster, "reconciler", r->o.agent_url, "ttl_ms",
                      (json_int_t)r->o.agent_ttl_ms, "tick_ms", (json_int_t)r->o.agent_tick_ms,
                      "max_lag_on_failover_bytes", (json_int_t)c->max_lag_on_failover_bytes,
                      "synchronous", c->synchronous, "engine", "type", c->engine, "parameters", json_deep_copy(c->parameters),
                      "secrets", "registration_token", token, "replication_password", password);
    pthread_mutex_unlock(&r->mu);
    if (c == NULL) {
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          "cluster '%s' is not in the desired state any more; nothing to "
                          "provision",
                          a->cluster);
        goto out;
    }
    if (params == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = provider_call(&res, p, "create_instance", params, deadline_ms_left(r, deadline), key, err);
    if (rc != 0)
        goto out;
    json_t *inst = json_object_get(res, "instance");
    *out_output = json_dumps(inst != NULL ? inst : res, JSON_COMPACT | JSON_SORT_KEYS);
    log_info(LOG_C, "%s: instance '%s' created by provider '%s'", a->id, a->node, provider_name(p));
out:
    if (params != NULL) {
        json_t *secrets = json_object_get(json_object_get(params, "agent"), "secrets");
        wipe_string(json_object_get(secrets, "registration_token"));
        wipe_string(json_object_get(secrets, "replication_password"));
    }
    memset(token, 0, sizeof(token));
    memset(password, 0, sizeof(password));
    json_decref(params);
    json_decref(res);
    json_decref(found);
    return rc;
}

static int check_listed(bool *out_done, struct runners *r, const struct journal_action *a,
                        bool want_present, struct rv_error *err)
{
    json_t *found = NULL;
    struct provider *p = action_provider(r, a, err);
    if (p == NULL)
        return err->code;
    int rc = list_instances(&found, p, a->cluster, a->node, err);
    if (rc == 0)
        *out_done = (json_array_size(found) > 0) == want_present;
    json_decref(found);
    return rc;
}

/* --- remove_replica, decommission --- */

static int run_remove(char **out_output, struct runners *r, const struct journal_action *a,
                      const char *key, int64_t deadline, struct rv_error *err)
{
    json_t *found = NULL, *deleted = json_array();
    char ns[RV_NAME_MAX + 1], name[RV_NAME_MAX + 1];
    int rc = 0;

    if (deleted == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    struct provider *p = action_provider(r, a, err);
    if (p == NULL) {
        rc = err->code;
        goto out;
    }
    if (split_cluster(ns, sizeof(ns), name, sizeof(name), a->cluster) != 0) {
        rc = rv_error_set(err, RV_EINVAL, false, "bad cluster name '%s'", a->cluster);
        goto out;
    }
    rc = list_instances(&found, p, a->cluster, a->node, err);
    size_t i;
    json_t *inst;
    json_array_foreach(found, i, inst)
    {
        if (rc != 0)
            break;
        const char *id = json_string_value(json_object_get(inst, "id"));
        const char *node =
            json_string_value(json_object_get(json_object_get(inst, "labels"), LABEL_NODE));
        if (id == NULL)
            continue;
        /* One key per deleted instance: a provider answers a repeated key
         * with the first result without acting again. */
        char ikey[RUNNERS_KEY_MAX + 1];
        snprintf(ikey, sizeof(ikey), "%.64s:%s", key, id);
        json_t *params = json_pack("{s:s}", "id", id), *res = NULL;
        if (params == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            break;
        }
        rc = provider_call(&res, p, "delete_instance", params, deadline_ms_left(r, deadline), ikey,
                           err);
        json_decref(params);
        json_decref(res);
        if (rc != 0)
            break;
        json_array_append_new(deleted, json_string(id));
        if (node != NULL) {
            if (r->o.forget_node != NULL) {
                struct rv_error ferr = {0};
                if (r->o.forget_node(ns, name, node, &ferr, r->o.ud) != 0)
                    log_warn(LOG_C, "%s: cannot delete the DCS keys of node '%s': %s", a->id, node,
                             ferr.msg);
            }
            runners_node_forget(r, ns, name, node);
        }
        log_info(LOG_C, "%s: instance '%s' deleted by provider '%s'", a->id, id, provider_name(p));
    }
    if (rc == 0) {
        json_t *o = json_pack("{s:O}", "deleted", deleted);
        *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
out:
    json_decref(found);
    json_decref(deleted);
    return rc;
}

/* --- waits on node reports --- */

enum cond { COND_PRIMARY, COND_REPLICA, COND_READY };

/* Whether the condition holds now; *why says what is missing. */
static bool cond_holds(struct runners *r, const struct journal_action *a, enum cond c, char *why,
                       size_t why_size)
{
    char ns[RV_NAME_MAX + 1], name[RV_NAME_MAX + 1];
    bool ok = false;
    int64_t now = now_s(r);
    if (split_cluster(ns, sizeof(ns), name, sizeof(name), a->cluster) != 0) {
        snprintf(why, why_size, "bad cluster name '%s'", a->cluster);
        return false;
    }
    pthread_mutex_lock(&r->mu);
    if (c == COND_READY) {
        const struct rcluster *rc = cluster_find(r, a->cluster);
        int want = rc != NULL ? rc->instances : 0;
        int healthy = 0, primaries = 0, unhealthy = 0;
        for (size_t i = 0; i < r->nnodes; i++) {
            const struct rnode *n = &r->nodes[i];
            if (!node_is(n, ns, name, NULL) || !node_fresh(n, now))
                continue;
            if (n->healthy)
                healthy++;
            else
                unhealthy++;
            if (n->role == OBS_ROLE_PRIMARY && n->healthy)
                primaries++;
        }
        ok = rc != NULL && healthy >= want && unhealthy == 0 && primaries == 1;
        snprintf(why, why_size,
                 "cluster '%s': %d of %d nodes healthy, %d unhealthy, %d primar%s reporting",
                 a->cluster, healthy, want, unhealthy, primaries, primaries == 1 ? "y" : "ies");
    } else {
        /* The agents elect the primary among themselves, so the planned
         * node can lose the bootstrap race to one that registered first:
         * bootstrap_primary needs a healthy primary in the cluster, and
         * add_replica needs its node to be a healthy member in either role. */
        const struct rnode *n = NULL;
        for (size_t i = 0; c == COND_PRIMARY && i < r->nnodes && n == NULL; i++) {
            const struct rnode *m = &r->nodes[i];
            if (node_is(m, ns, name, NULL) && node_fresh(m, now) && m->healthy &&
                m->role == OBS_ROLE_PRIMARY)
                n = m;
        }
        for (size_t i = 0; i < r->nnodes && n == NULL; i++)
            if (node_is(&r->nodes[i], ns, name, a->node))
                n = &r->nodes[i];
        bool role_ok = n != NULL && (n->role == OBS_ROLE_PRIMARY ||
                                     (c == COND_REPLICA && n->role == OBS_ROLE_REPLICA));
        if (n == NULL)
            snprintf(why, why_size, "node '%s' has not reported yet", a->node);
        else if (!node_fresh(n, now))
            snprintf(why, why_size, "node '%s' last reported %" PRId64 "s ago", n->node,
                     now - n->last_report);
        else if (!role_ok || !n->healthy)
            snprintf(why, why_size, "node '%s' reports role %s, %s", n->node,
                     observed_role_name(n->role), n->healthy ? "healthy" : "unhealthy");
        else
            ok = true;
        if (ok)
            snprintf(why, why_size, "node '%s' is a healthy %s", n->node,
                     observed_role_name(n->role));
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static int run_wait(char **out_output, struct runners *r, const struct journal_action *a,
                    enum cond c, int64_t deadline, struct rv_error *err)
{
    char why[256];
    for (;;) {
        if (cond_holds(r, a, c, why, sizeof(why))) {
            json_t *o = json_pack("{s:s}", "observed", why);
            *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            return 0;
        }
        if (now_s(r) >= deadline)
            return rv_error_set(err, RV_ETIMEOUT, false, "gave up at the action's deadline: %s",
                                why);
        if (atomic_load(&r->stopping))
            return rv_error_set(err, RV_ECANCELED, true, "reeve is shutting down: %s", why);
        sleep_ms(r->o.poll_ms);
    }
}

/* --- the rest --- */

static int cluster_facts(struct runners *r, const char *cluster, bool *backup, size_t *nusers,
                         size_t *nparams)
{
    pthread_mutex_lock(&r->mu);
    const struct rcluster *c = cluster_find(r, cluster);
    if (c != NULL) {
        *backup = c->backup;
        *nusers = c->nusers;
        *nparams = c->nparameters;
    }
    pthread_mutex_unlock(&r->mu);
    return c != NULL ? 0 : RV_ENOTFOUND;
}

static int set_output_text(char **out_output, const char *text)
{
    json_t *o = json_pack("{s:s}", "result", text);
    *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return 0;
}

static int run_unsupported(char **out_output, struct runners *r, const struct journal_action *a,
                           struct rv_error *err)
{
    bool backup = false;
    size_t nusers = 0, nparams = 0;
    int known = cluster_facts(r, a->cluster, &backup, &nusers, &nparams);

    if (strcmp(a->kind, "configure_users") == 0 && known == 0 && nusers == 0)
        return set_output_text(out_output, "no users to configure");
    if (strcmp(a->kind, "configure_parameters") == 0 && known == 0 && nparams == 0)
        return set_output_text(out_output, "no parameters to configure");
    return rv_error_set(err, RV_EINVAL, false,
                        "%s is not supported by this version of reeve (cluster '%s'); revert "
                        "the change in the spec",
                        a->kind, a->cluster);
}

/* --- users: configure_users --- */

/* The agent's users-applied report against digest: 1 applied (*out_output
 * set when out_output is not NULL), 2 a permanent error (err set), 0 not
 * yet (why says what is missing), or a negative error. */
static int users_outcome(char **out_output, struct runners *r, const struct journal_action *a,
                         const char *digest, size_t nusers, char *why, size_t why_size,
                         struct rv_error *err)
{
    char key[RV_DCS_KEY_MAX + 1];
    char *text = NULL;
    struct users_applied ua;
    struct rv_error e = {0};
    if (users_applied_key(key, sizeof(key), a->cluster) != 0)
        return rv_error_set(err, RV_EINVAL, false, "bad cluster name '%s'", a->cluster);
    int rc = r->o.read_key(&text, key, &e, r->o.ud);
    if (rc < 0)
        return rv_error_set(err, rc, e.retryable, "cannot read %s: %s", key, e.msg);
    if (rc == 0) {
        snprintf(why, why_size, "the primary's agent has not reported applying users yet");
        return 0;
    }
    rc = users_applied_parse(&ua, text, &e);
    free(text);
    if (rc != 0) {
        snprintf(why, why_size, "%.200s", e.msg);
        return 0;
    }
    if (strcmp(ua.digest, digest) != 0) {
        snprintf(why, why_size,
                 "node '%.63s' last reported another set of users (digest %.12s, expected %.12s)",
                 ua.node, ua.digest, digest);
        return 0;
    }
    if (ua.error[0] != '\0' && ua.retryable) {
        snprintf(why, why_size, "node '%.63s' is retrying: %.160s", ua.node, ua.error);
        return 0;
    }
    if (ua.error[0] != '\0') {
        rv_error_set(err, RV_EINVAL, false, "the primary '%s' could not apply the users: %s",
                     ua.node, ua.error);
        return 2;
    }
    if (out_output != NULL) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s?}", "result", "users applied", "node",
                              ua.node, "users", (json_int_t)nusers, "digest", digest, "notes",
                              ua.notes[0] ? ua.notes : NULL);
        *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    return 1;
}

/* The digest the agents are served now; 1 when there is nothing to do
 * (output set). */
static int users_expected(char **out_output, char digest[CRYPTO_SHA256_HEX_SIZE], size_t *nusers,
                          struct runners *r, const struct journal_action *a, struct rv_error *err)
{
    if (r->o.backups == NULL || r->o.read_key == NULL) {
        bool backup = false;
        size_t nparams = 0;
        if (cluster_facts(r, a->cluster, &backup, nusers, &nparams) == 0 && *nusers == 0 &&
            out_output != NULL)
            return set_output_text(out_output, "no users to configure") == 0 ? 1 : RV_ENOMEM;
        return rv_error_set(err, RV_EINVAL, false,
                            "configure_users of '%s' needs the agent API and the backup service "
                            "of reeve serve, which are not running here",
                            a->cluster);
    }
    int rc = backups_users_digest(digest, nusers, r->o.backups, a->cluster, err);
    if (rc != 0)
        return rc; /* RV_EINVAL: a reference that does not open, said plainly */
    /* both engines: the primary's agent applies them (agent/users.h) */
    return 0;
}

static int run_configure_users(char **out_output, struct runners *r, const struct journal_action *a,
                               int64_t deadline, struct rv_error *err)
{
    char digest[CRYPTO_SHA256_HEX_SIZE], why[RV_ERROR_MSG_MAX / 2] = "";
    size_t nusers = 0;
    int rc = users_expected(out_output, digest, &nusers, r, a, err);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    log_info(LOG_C,
             "%s: %zu user(s) of %s served to its agents (digest %.12s); waiting for the "
             "primary to apply them",
             a->id, nusers, a->cluster, digest);
    for (;;) {
        rc = users_outcome(out_output, r, a, digest, nusers, why, sizeof(why), err);
        if (rc == 1)
            return 0;
        if (rc == 2)
            return err->code;
        if (rc < 0)
            return rc;
        if (now_s(r) >= deadline)
            return rv_error_set(err, RV_ETIMEOUT, false, "gave up at the action's deadline: %s",
                                why);
        if (atomic_load(&r->stopping))
            return rv_error_set(err, RV_ECANCELED, true, "reeve is shutting down: %s", why);
        sleep_ms(RV_USERS_WAIT_POLL_MS);
    }
}

static int check_configure_users(bool *out_done, struct runners *r, const struct journal_action *a,
                                 struct rv_error *err)
{
    char digest[CRYPTO_SHA256_HEX_SIZE], why[RV_ERROR_MSG_MAX / 2];
    size_t nusers = 0;
    struct rv_error ignored = {0};
    if (users_expected(NULL, digest, &nusers, r, a, &ignored) != 0)
        return 0; /* run it: the run says why */
    int rc = users_outcome(NULL, r, a, digest, nusers, why, sizeof(why), err);
    *out_done = rc == 1;
    return rc < 0 ? rc : 0;
}

/* --- backups: configure_backup, final_backup, seed_from_backup --- */

static int need_backups(struct runners *r, const struct journal_action *a, struct rv_error *err)
{
    if (r->o.backups != NULL)
        return 0;
    /* without the backup service, a desired cluster without a backup
     * section still has nothing to do */
    bool backup = true;
    size_t nusers, nparams;
    if (cluster_facts(r, a->cluster, &backup, &nusers, &nparams) == 0 && !backup)
        return 1;
    return rv_error_set(err, RV_EINVAL, false,
                        "%s of '%s' needs the backup service of reeve serve, which is not "
                        "running here",
                        a->kind, a->cluster);
}

/* The agents fetch their configuration (GET /v1/agents/config): it is
 * published once it can be built, every reference resolved. */
static int run_configure_backup(char **out_output, struct runners *r,
                                const struct journal_action *a, struct rv_error *err)
{
    struct backups_spec_facts f = {0};
    char *doc = NULL;
    int rc = need_backups(r, a, err);
    if (rc == 0)
        rc = backups_spec_facts(&f, r->o.backups, a->cluster, err);
    if (rc < 0)
        return rc;
    if (rc == 1 || !f.known || !f.backup)
        return set_output_text(out_output, "no backup section; nothing to configure");
    rc = backups_agent_config(&doc, r->o.backups, a->cluster, NULL, NULL, err);
    if (rc != 0)
        return rc == RV_EINVAL ? rc : rv_error_set(err, rc, true, "%s", err->msg);
    json_t *j = json_loads(doc, 0, NULL);
    json_t *o = json_pack("{s:s, s:s?}", "result", "backup policy published", "digest",
                          json_string_value(json_object_get(j, "digest")));
    *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    json_decref(j);
    crypto_wipe(doc, strlen(doc));
    free(doc);
    return 0;
}

static void request_id(char out[RV_BACKUPS_ID_MAX + 1], const char *key)
{
    snprintf(out, RV_BACKUPS_ID_MAX + 1, "final-%.*s", RV_BACKUPS_ID_MAX - 6, key);
}

/* The outcome of request id: 1 succeeded (output set), 2 failed (err
 * set), 0 not yet, or an error. */
static int request_outcome(char **out_output, struct runners *r, const char *id,
                           struct rv_error *err)
{
    json_t *rec = NULL;
    int rc = backups_request_record(&rec, r->o.backups, id, err);
    if (rc <= 0)
        return rc < 0 ? rc : 0;
    const char *status = json_string_value(json_object_get(rec, "status"));
    const char *bid = json_string_value(json_object_get(rec, "backup_id"));
    int out = 0;
    if (status != NULL && strcmp(status, "succeeded") == 0) {
        if (out_output != NULL) {
            json_t *o = json_pack("{s:s, s:s}", "result", "final backup taken", "backup_id", bid);
            *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
        }
        out = 1;
    } else if (status != NULL && strcmp(status, "failed") == 0) {
        const char *why = json_string_value(json_object_get(rec, "error"));
        rv_error_set(err, RV_EINVAL, false,
                     "the final backup %s failed on node '%s': %s; fix the cause and apply "
                     "again, or remove the backup section to delete without one",
                     bid, json_string_value(json_object_get(rec, "node")) ?: "?",
                     why ? why : "no error given");
        out = 2;
    }
    json_decref(rec);
    return out;
}

static int run_final_backup(char **out_output, struct runners *r, const struct journal_action *a,
                            const char *key, int64_t deadline, struct rv_error *err)
{
    struct backups_spec_facts f = {0};
    char id[RV_BACKUPS_ID_MAX + 1];
    int rc = need_backups(r, a, err);
    if (rc == 0)
        rc = backups_spec_facts(&f, r->o.backups, a->cluster, err);
    if (rc < 0)
        return rc;
    /* A deleted spec is no longer desired: the plan only takes a final
     * backup when the last applied spec had a backup section. */
    if (rc == 1 || !f.known || !f.backup)
        return set_output_text(out_output, "no backup destination configured; nothing to back up");
    request_id(id, key);
    rc = backups_request(r->o.backups, id, a->cluster, err);
    if (rc != 0)
        return rv_error_set(err, rc, true, "cannot record the backup request: %s", err->msg);
    log_info(LOG_C, "%s: asked the agents of %s for a final backup (request %s)", a->id, a->cluster,
             id);
    for (;;) {
        rc = request_outcome(out_output, r, id, err);
        if (rc == 1)
            return 0;
        if (rc == 2)
            return err->code;
        if (rc < 0)
            return rv_error_set(err, rc, true, "cannot read backup records: %s", err->msg);
        if (now_s(r) >= deadline)
            return rv_error_set(err, RV_ETIMEOUT, false,
                                "gave up at the action's deadline: no agent of %s reported the "
                                "final backup (request %s); is a node of it running?",
                                a->cluster, id);
        if (atomic_load(&r->stopping))
            return rv_error_set(err, RV_ECANCELED, true, "reeve is shutting down");
        sleep_ms(RV_BACKUPS_WAIT_POLL_MS);
    }
}

static int check_final_backup(bool *out_done, struct runners *r, const struct journal_action *a,
                              const char *key, struct rv_error *err)
{
    char id[RV_BACKUPS_ID_MAX + 1];
    if (r->o.backups == NULL)
        return 0;
    request_id(id, key);
    struct rv_error ignored = {0};
    int rc = request_outcome(NULL, r, id, &ignored);
    (void)a;
    if (rc < 0)
        return rv_error_set(err, rc, true, "%s", ignored.msg);
    *out_done = rc == 1;
    return 0;
}

static int run_seed(char **out_output, struct runners *r, const struct journal_action *a,
                    int64_t deadline, struct rv_error *err)
{
    struct backups_restore rs;
    int rc;
    bool told = false;
    if (r->o.backups == NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "seed_from_backup of '%s' needs the backup service of reeve serve, "
                            "which is not running here",
                            a->cluster);
    /* A target after the last archived WAL may be reached soon (the source
     * archives at least every archive_timeout): wait while the target is
     * recent, then fail for good with the reason. */
    while ((rc = backups_resolve_restore(&rs, r->o.backups, a->cluster, err)) == RV_ESTALE) {
        int64_t pit_ms = 0;
        int64_t now_ms = (int64_t)now_s(r) * 1000;
        if (agentapi_time_parse(&pit_ms, rs.point_in_time, false) != 0 ||
            now_ms > pit_ms + RV_SEED_ARCHIVE_WAIT_MS || now_s(r) >= deadline ||
            atomic_load(&r->stopping)) {
            err->code = RV_EINVAL;
            err->retryable = false;
            return RV_EINVAL;
        }
        if (!told)
            log_info(LOG_C, "%s: waiting for the WAL archive of the source to pass %s", a->id,
                     rs.point_in_time);
        told = true;
        sleep_ms(RV_BACKUPS_WAIT_POLL_MS);
    }
    if (rc != 0)
        return rc;
    log_info(LOG_C, "%s: %s restores backup %s of %s%s%s", a->id, a->cluster, rs.backup_id,
             rs.source, rs.point_in_time[0] ? " to " : "", rs.point_in_time);
    rc = run_wait(out_output, r, a, COND_PRIMARY, deadline, err);
    if (rc != 0)
        return rc;
    struct rv_error merr = {0};
    if (backups_mark_bootstrapped(r->o.backups, a->cluster, &merr) != 0)
        log_warn(LOG_C, "%s: cannot mark %s bootstrapped: %s", a->id, a->cluster, merr.msg);
    free(*out_output);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s?}", "result", "restored", "source", rs.source, "backup_id",
                  rs.backup_id, "point_in_time", rs.point_in_time[0] ? rs.point_in_time : NULL);
    *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return 0;
}

/* --- day-2 operations: configure_parameters, restart_node, switchover,
 * upgrade_replica/upgrade_node, resize (agent/ops.h, docs/day2.md) --- */

/* "/clusters/<ns>/<name>/ops/<rest><node>" */
static int ops_key(char *out, size_t cap, const char *cluster, const char *rest, const char *node)
{
    int n = snprintf(out, cap, "/clusters/%s/ops/%s%s", cluster, rest, node ? node : "");
    return n < 0 || (size_t)n >= cap ? RV_ELIMIT : 0;
}

static int ops_need_keys(struct runners *r, const struct journal_action *a, struct rv_error *err)
{
    if (r->o.read_key != NULL && r->o.write_key != NULL)
        return 0;
    return rv_error_set(err, RV_EINVAL, false,
                        "%s of '%s' needs the agent API of reeve serve, which is not running here",
                        a->kind, a->cluster);
}

/* The JSON value of an ops key: 1 and *out, 0 when absent, or an error. */
static int ops_read(json_t **out, struct runners *r, const char *cluster, const char *rest,
                    const char *node, struct rv_error *err)
{
    char key[RV_DCS_KEY_MAX + 1], *text = NULL;
    *out = NULL;
    if (ops_key(key, sizeof(key), cluster, rest, node) != 0)
        return rv_error_set(err, RV_ELIMIT, false, "the ops key of '%s' is too long", cluster);
    int rc = r->o.read_key(&text, key, err, r->o.ud);
    if (rc != 1)
        return rc;
    *out = json_loads(text, 0, NULL);
    free(text);
    return *out != NULL ? 1 : 0;
}

static int ops_write(struct runners *r, const char *cluster, const char *rest, const char *node,
                     json_t *v, struct rv_error *err)
{
    char key[RV_DCS_KEY_MAX + 1];
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(v);
    int rc = 0;
    if (text == NULL)
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    else if (ops_key(key, sizeof(key), cluster, rest, node) != 0)
        rc = rv_error_set(err, RV_ELIMIT, false, "the ops key of '%s' is too long", cluster);
    else
        rc = r->o.write_key(key, text, err, r->o.ud);
    free(text);
    return rc;
}

/* The operation's id: the same across retries and after a crash (the
 * journal resumes the same apply), new for a later apply. */
static void ops_id(char out[RV_OPS_ID_MAX + 1], const char *plan_key,
                   const struct journal_action *a)
{
    snprintf(out, RV_OPS_ID_MAX + 1, "%.40s-%" PRId64, plan_key, a->apply_id);
}

static const char *jstr(json_t *o, const char *field)
{
    const char *s = json_string_value(json_object_get(o, field));
    return s != NULL ? s : "";
}

/* What a wait sees of one node; found false when it never reported. */
struct ops_node {
    bool found, fresh, healthy;
    enum obs_role role;
    int64_t lag, last_report;
    int64_t lag_trx; /* MariaDB: transactions behind; -1: not reported */
};

static void ops_node_get(struct ops_node *v, struct runners *r, const char *cluster,
                         const char *node)
{
    char ns[RV_NAME_MAX + 1], name[RV_NAME_MAX + 1];
    memset(v, 0, sizeof(*v));
    if (split_cluster(ns, sizeof(ns), name, sizeof(name), cluster) != 0)
        return;
    int64_t now = now_s(r);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nnodes; i++) {
        const struct rnode *n = &r->nodes[i];
        if (!node_is(n, ns, name, node))
            continue;
        *v = (struct ops_node){.found = true,
                               .fresh = node_fresh(n, now),
                               .healthy = n->healthy,
                               .role = n->role,
                               .lag = n->lag_bytes,
                               .last_report = n->last_report,
                               .lag_trx = n->lag_transactions};
    }
    pthread_mutex_unlock(&r->mu);
}

/* The fresh nodes of cluster (names copied into names, at most cap), and
 * the one that reports a healthy primary ("" when none). */
static size_t ops_nodes(char (*names)[RV_NAME_MAX + 1], size_t cap, char *primary,
                        struct runners *r, const char *cluster)
{
    char ns[RV_NAME_MAX + 1], name[RV_NAME_MAX + 1];
    size_t n = 0;
    primary[0] = '\0';
    if (split_cluster(ns, sizeof(ns), name, sizeof(name), cluster) != 0)
        return 0;
    int64_t now = now_s(r);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nnodes; i++) {
        const struct rnode *nd = &r->nodes[i];
        if (!node_is(nd, ns, name, NULL) || !node_fresh(nd, now))
            continue;
        if (n < cap)
            snprintf(names[n++], RV_NAME_MAX + 1, "%s", nd->node);
        if (nd->role == OBS_ROLE_PRIMARY && nd->healthy)
            snprintf(primary, RV_NAME_MAX + 1, "%s", nd->node);
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int64_t ops_lag_limit(struct runners *r, const char *cluster)
{
    int64_t lim = 0;
    pthread_mutex_lock(&r->mu);
    const struct rcluster *c = cluster_find(r, cluster);
    if (c != NULL)
        lim = c->max_lag_on_failover_bytes;
    pthread_mutex_unlock(&r->mu);
    return lim > 0 ? lim : RV_AGENT_FAILOVER_LAG_DEFAULT;
}

/* node healthy, reporting since `since` (Unix seconds), and a replica
 * within the failover lag (or the primary). */
static bool ops_caught_up(struct runners *r, const char *cluster, const char *node, int64_t since,
                          char *why, size_t cap)
{
    struct ops_node v;
    ops_node_get(&v, r, cluster, node);
    int64_t lim = ops_lag_limit(r, cluster);
    if (!v.found || !v.fresh || v.last_report < since)
        snprintf(why, cap, "node '%s' has not reported since it restarted", node);
    else if (!v.healthy || (v.role != OBS_ROLE_PRIMARY && v.role != OBS_ROLE_REPLICA))
        snprintf(why, cap, "node '%s' reports role %s, %s", node, observed_role_name(v.role),
                 v.healthy ? "healthy" : "unhealthy");
    else if (v.role == OBS_ROLE_REPLICA && v.lag > lim)
        snprintf(why, cap, "replica '%s' is %" PRId64 " bytes behind (at most %" PRId64 ")", node,
                 v.lag, lim);
    else if (v.role == OBS_ROLE_REPLICA && v.lag_trx > RV_AGENT_FAILOVER_LAG_TRX_DEFAULT)
        snprintf(why, cap, "replica '%s' is %" PRId64 " transactions behind (at most %d)", node,
                 v.lag_trx, RV_AGENT_FAILOVER_LAG_TRX_DEFAULT);
    else
        return true;
    return false;
}

/* A wait: the predicate answers 1 done (output set), 0 not yet (why set),
 * or an error (err set). */
typedef int (*ops_pred_fn)(char **out_output, struct runners *r, const struct journal_action *a,
                           void *ctx, char *why, size_t cap, struct rv_error *err);

static int ops_wait_until(char **out_output, struct runners *r, const struct journal_action *a,
                          int64_t deadline, const char *bound, ops_pred_fn pred, void *ctx,
                          struct rv_error *err)
{
    char why[512] = "";
    for (;;) {
        int rc = pred(out_output, r, a, ctx, why, sizeof(why), err);
        if (rc != 0)
            return rc == 1 ? 0 : rc;
        if (now_s(r) >= deadline)
            return rv_error_set(err, RV_ETIMEOUT, false, "gave up after %s: %s", bound, why);
        if (atomic_load(&r->stopping))
            return rv_error_set(err, RV_ECANCELED, true, "reeve is shutting down: %s", why);
        sleep_ms(r->o.poll_ms);
    }
}

static int ops_wait(char **out_output, struct runners *r, const struct journal_action *a,
                    int64_t deadline, ops_pred_fn pred, void *ctx, struct rv_error *err)
{
    return ops_wait_until(out_output, r, a, deadline, "the action's deadline", pred, ctx, err);
}

/* configure_parameters: every node reports the configuration's digest. */
struct params_ctx {
    char digest[CRYPTO_SHA256_HEX_SIZE];
};

static int params_pred(char **out_output, struct runners *r, const struct journal_action *a,
                       void *ctx, char *why, size_t cap, struct rv_error *err)
{
    struct params_ctx *pc = ctx;
    char names[RV_PLAN_CLUSTER_MEMBERS_MAX][RV_NAME_MAX + 1], primary[RV_NAME_MAX + 1];
    size_t n = ops_nodes(names, RV_PLAN_CLUSTER_MEMBERS_MAX, primary, r, a->cluster);
    json_t *pending = json_object();
    int rc = n > 0 ? 1 : 0;
    if (n == 0)
        snprintf(why, cap, "no node of '%s' reports", a->cluster);
    for (size_t i = 0; i < n && rc == 1; i++) {
        json_t *rep = NULL;
        rc = ops_read(&rep, r, a->cluster, "applied/", names[i], err);
        if (rc < 0)
            break;
        if (rc == 0 || strcmp(jstr(rep, "digest"), pc->digest) != 0) {
            snprintf(why, cap, "node '%s' has not applied parameters %.12s yet", names[i],
                     pc->digest);
            rc = 0;
        } else if (jstr(rep, "error")[0] != '\0') {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "node '%s' refused the parameters: %s; fix spec.parameters", names[i],
                              jstr(rep, "error"));
        } else if (jstr(rep, "pending_restart")[0] != '\0') {
            json_object_set_new(pending, names[i], json_string(jstr(rep, "pending_restart")));
        }
        json_decref(rep);
    }
    if (rc == 1) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:O}", "result", "parameters applied", "digest",
                              pc->digest, "nodes", (json_int_t)n, "pending_restart", pending);
        *out_output = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
    }
    json_decref(pending);
    return rc;
}

static int run_configure_parameters(char **out_output, struct runners *r,
                                    const struct journal_action *a, int64_t deadline,
                                    struct rv_error *err)
{
    struct params_ctx pc;
    json_t *params = NULL;
    bool pg = false;
    pthread_mutex_lock(&r->mu);
    const struct rcluster *c = cluster_find(r, a->cluster);
    if (c != NULL) {
        params = json_deep_copy(c->parameters);
        pg = strcmp(c->engine, "postgresql") == 0 || strcmp(c->engine, "mariadb") == 0;
    }
    pthread_mutex_unlock(&r->mu);
    /* An empty set is written too: the agents then report running none
     * of the parameters the spec dropped. */
    if (params == NULL || !pg) {
        json_decref(params);
        return run_unsupported(out_output, r, a, err);
    }
    int rc = ops_need_keys(r, a, err);
    char *text = rc == 0 ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (rc == 0 && (text == NULL || crypto_sha256_hex(pc.digest, text, strlen(text)) != 0))
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    free(text);
    if (rc == 0)
        rc = ops_write(r, a->cluster, "parameters", NULL,
                       json_pack("{s:s, s:O}", "digest", pc.digest, "parameters", params), err);
    json_decref(params);
    if (rc != 0)
        return rc;
    log_info(LOG_C, "%s: parameters %.12s handed to the agents of %s", a->id, pc.digest,
             a->cluster);
    return ops_wait(out_output, r, a, deadline, params_pred, &pc, err);
}

/* restart_node (and the restart of a resize): the agent's result, then the
 * node healthy and caught up. */
struct restart_ctx {
    char id[RV_OPS_ID_MAX + 1];
};

static int restart_pred(char **out_output, struct runners *r, const struct journal_action *a,
                        void *ctx, char *why, size_t cap, struct rv_error *err)
{
    struct restart_ctx *rx = ctx;
    json_t *res = NULL;
    int rc = ops_read(&res, r, a->cluster, "result/", a->node, err);
    if (rc < 0)
        return rc;
    if (rc == 0 || strcmp(jstr(res, "id"), rx->id) != 0) {
        snprintf(why, cap, "the agent of '%s' has not restarted it yet", a->node);
        rc = 0;
    } else if (!json_is_true(json_object_get(res, "ok"))) {
        rc = rv_error_set(err, RV_EINVAL, false, "the restart of node '%s' failed: %s", a->node,
                          jstr(res, "error"));
    } else {
        int64_t fin = json_integer_value(json_object_get(res, "finished_ms"));
        rc = ops_caught_up(r, a->cluster, a->node, fin / 1000, why, cap) ? 1 : 0;
        if (rc == 1) {
            json_t *o =
                json_pack("{s:s, s:s, s:I, s:I}", "result", "restarted", "node", a->node,
                          "started_ms", json_integer_value(json_object_get(res, "started_ms")),
                          "finished_ms", (json_int_t)fin);
            *out_output = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            json_decref(o);
        }
    }
    json_decref(res);
    return rc;
}

static int ops_restart(char **out_output, struct runners *r, const struct journal_action *a,
                       const char *key, json_t *params, int64_t deadline, struct rv_error *err)
{
    struct restart_ctx rx;
    int rc = ops_need_keys(r, a, err);
    ops_id(rx.id, key, a);
    json_t *req = json_pack("{s:s, s:s}", "id", rx.id, "op", "restart");
    if (req != NULL && params != NULL)
        json_object_set(req, "parameters", params);
    if (rc == 0)
        rc = ops_write(r, a->cluster, "request/", a->node, req, err);
    else
        json_decref(req);
    if (rc != 0)
        return rc;
    log_info(LOG_C, "%s: asked the agent of '%s' to restart its server", a->id, a->node);
    rc = ops_wait(out_output, r, a, deadline, restart_pred, &rx, err);
    if (rc == 0)
        log_info(LOG_C, "%s: node '%s' restarted, healthy and caught up", a->id, a->node);
    return rc;
}

/* switchover: the target primary and the old primary a caught-up replica. */
struct switch_ctx {
    char id[RV_OPS_ID_MAX + 1];
    char from[RV_NAME_MAX + 1];
};

static int switch_pred(char **out_output, struct runners *r, const struct journal_action *a,
                       void *ctx, char *why, size_t cap, struct rv_error *err)
{
    struct switch_ctx *sx = ctx;
    json_t *res = NULL;
    struct ops_node to;
    int rc = ops_read(&res, r, a->cluster, "switchover-result", NULL, err);
    if (rc < 0)
        return rc;
    bool mine = rc == 1 && strcmp(jstr(res, "id"), sx->id) == 0;
    ops_node_get(&to, r, a->cluster, a->node);
    rc = 0;
    if (mine && !json_is_true(json_object_get(res, "ok")))
        rc = rv_error_set(err, RV_EINVAL, false,
                          "the switchover from '%s' to '%s' was rolled back: %s (by '%s'); "
                          "'%s' stays the primary",
                          sx->from, a->node, jstr(res, "error"), jstr(res, "by"), sx->from);
    else if (!to.fresh || !to.healthy || to.role != OBS_ROLE_PRIMARY)
        snprintf(why, cap, "'%s' does not report a healthy primary yet", a->node);
    else if (!ops_caught_up(r, a->cluster, sx->from, 0, why, cap))
        rc = 0;
    else
        rc = 1;
    if (rc == 1) {
        int64_t stopped = json_integer_value(json_object_get(res, "stopped_ms"));
        int64_t promoted = json_integer_value(json_object_get(res, "promoted_ms"));
        json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "result", "switched over", "from", sx->from,
                              "to", a->node, "write_unavailable_ms",
                              (json_int_t)(mine && promoted >= stopped ? promoted - stopped : 0));
        *out_output = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
    }
    json_decref(res);
    return rc;
}

static int run_switchover(char **out_output, struct runners *r, const struct journal_action *a,
                          const char *key, int64_t deadline, struct rv_error *err)
{
    struct switch_ctx sx;
    char names[RV_PLAN_CLUSTER_MEMBERS_MAX][RV_NAME_MAX + 1];
    int rc = ops_need_keys(r, a, err);
    if (rc != 0)
        return rc;
    ops_id(sx.id, key, a);
    ops_nodes(names, RV_PLAN_CLUSTER_MEMBERS_MAX, sx.from, r, a->cluster);
    if (strcmp(sx.from, a->node) == 0)
        return set_output_text(out_output, "the target is the primary already");
    if (sx.from[0] == '\0')
        return rv_error_set(err, RV_EUNAVAIL, true,
                            "no healthy primary of '%s' reports; the switchover waits for one",
                            a->cluster);
    rc = ops_write(r, a->cluster, "switchover", NULL,
                   json_pack("{s:s, s:s, s:s}", "id", sx.id, "from", sx.from, "to", a->node), err);
    if (rc != 0)
        return rc;
    log_info(LOG_C, "%s: switchover of %s from '%s' to '%s' asked", a->id, a->cluster, sx.from,
             a->node);
    rc = ops_wait(out_output, r, a, deadline, switch_pred, &sx, err);
    if (rc == 0)
        log_info(LOG_C, "%s: switchover done: '%s' is the primary, '%s' a caught-up replica", a->id,
                 a->node, sx.from);
    return rc;
}

/* The provider's instance of the action's node: its id and version. */
static int ops_instance(struct provider **p, char *id, size_t id_cap, char *version, size_t v_cap,
                        struct runners *r, const struct journal_action *a, struct rv_error *err)
{
    json_t *found = NULL;
    *p = action_provider(r, a, err);
    if (*p == NULL)
        return err->code;
    int rc = list_instances(&found, *p, a->cluster, a->node, err);
    if (rc != 0)
        return rc;
    json_t *inst = json_array_get(found, 0);
    if (inst == NULL)
        rc = rv_error_set(err, RV_ENOTFOUND, false, "no instance of node '%s' is listed", a->node);
    else {
        snprintf(id, id_cap, "%s", jstr(inst, "id"));
        snprintf(version, v_cap, "%s", jstr(inst, "version"));
    }
    json_decref(found);
    return rc;
}

static int ops_upgrade_call(struct provider *p, struct runners *r, const char *id,
                            const char *version, const char *key, int64_t deadline,
                            struct rv_error *err)
{
    char k[CRYPTO_SHA256_HEX_SIZE];
    json_t *res = NULL, *params = json_pack("{s:s, s:s}", "id", id, "version", version);
    if (params == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = crypto_sha256_hex(k, key, strlen(key));
    if (rc == 0)
        rc = provider_call(&res, p, "upgrade_instance", params, deadline_ms_left(r, deadline), k,
                           err);
    json_decref(params);
    json_decref(res);
    return rc;
}

struct node_ctx {
    int64_t since;
};

static int healthy_pred(char **out_output, struct runners *r, const struct journal_action *a,
                        void *ctx, char *why, size_t cap, struct rv_error *err)
{
    struct node_ctx *nc = ctx;
    (void)err;
    if (!ops_caught_up(r, a->cluster, a->node, nc->since, why, cap))
        return 0;
    json_t *o = json_pack("{s:s, s:s}", "result", "healthy and caught up", "node", a->node);
    *out_output = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return 1;
}

/* upgrade_replica, upgrade_node: the provider restarts the node on the new
 * version's binaries; a node that does not come back healthy and caught up
 * within RV_OPS_NODE_WAIT_S is put back on its version, and the action
 * fails naming it. */
static int run_upgrade(char **out_output, struct runners *r, const struct journal_action *a,
                       const char *key, int64_t deadline, struct rv_error *err)
{
    struct provider *p = NULL;
    char id[128], was[64], want[64] = "", k[RUNNERS_KEY_MAX + 64];
    pthread_mutex_lock(&r->mu);
    const struct rcluster *c = cluster_find(r, a->cluster);
    if (c != NULL)
        snprintf(want, sizeof(want), "%s", c->version);
    pthread_mutex_unlock(&r->mu);
    int rc = ops_instance(&p, id, sizeof(id), was, sizeof(was), r, a, err);
    if (rc != 0)
        return rc;
    if (want[0] == '\0')
        return rv_error_set(err, RV_ENOTFOUND, false, "cluster '%s' is not desired any more",
                            a->cluster);
    if (!provider_has_capability(p, "upgrade"))
        return rv_error_set(err, RV_EINVAL, false,
                            "provider '%s' cannot upgrade instances in place (no 'upgrade' "
                            "capability); revert spec.version",
                            provider_name(p));
    struct node_ctx nc = {.since = 0};
    if (strcmp(was, want) != 0) {
        snprintf(k, sizeof(k), "%.64s:apply-%" PRId64, key, a->apply_id);
        log_info(LOG_C, "%s: node '%s' %s -> %s", a->id, a->node, was, want);
        rc = ops_upgrade_call(p, r, id, want, k, deadline, err);
        if (rc != 0)
            return rc;
        /* the old agent stopped before the call returned: a report after
         * the second it returned in comes from the new one */
        nc.since = now_s(r) + 1;
    }
    int64_t until =
        now_s(r) + RV_OPS_NODE_WAIT_S < deadline ? now_s(r) + RV_OPS_NODE_WAIT_S : deadline;
    char bound[64];
    snprintf(bound, sizeof(bound), "%d s", RV_OPS_NODE_WAIT_S);
    rc = ops_wait_until(out_output, r, a, until, until < deadline ? bound : "the action's deadline",
                        healthy_pred, &nc, err);
    if (rc == 0)
        log_info(LOG_C, "%s: node '%s' upgraded to %s, healthy and caught up", a->id, a->node,
                 want);
    if (rc == 0 || rc == RV_ECANCELED || strcmp(was, want) == 0)
        return rc;
    char why[RV_ERROR_MSG_MAX / 2];
    snprintf(why, sizeof(why), "%.200s", err->msg);
    struct rv_error e2 = {0};
    snprintf(k, sizeof(k), "%.64s:apply-%" PRId64 ":rollback", key, a->apply_id);
    int rb = ops_upgrade_call(p, r, id, was, k, deadline + RV_OPS_NODE_WAIT_S, &e2);
    log_error(LOG_C, "%s: node '%s' failed on %s: %s; %s", a->id, a->node, want, why,
              rb == 0 ? "rolled back" : e2.msg);
    return rv_error_set(err, RV_EINVAL, false,
                        "node '%s' did not come back healthy on version %s (%s); %s to %s", a->node,
                        want, why, rb == 0 ? "rolled back" : "could not roll back", was);
}

/* resize: the provider's resize_instance; when cpu or memory change, a
 * restart too, with shared_buffers at a quarter of the memory (PostgreSQL)
 * or innodb_buffer_pool_size at half of it (MariaDB) unless the spec sets
 * it (docs/day2.md). Storage alone grows in place. */
static int run_resize(char **out_output, struct runners *r, const struct journal_action *a,
                      const char *key, int64_t deadline, struct rv_error *err)
{
    char k[CRYPTO_SHA256_HEX_SIZE], mat[RUNNERS_KEY_MAX + 64], sb[32];
    json_t *found = NULL, *res = NULL, *resources = NULL, *params = NULL, *call = NULL;
    int64_t mem = 0;
    bool sb_set = false, mdb = false;
    pthread_mutex_lock(&r->mu);
    const struct rcluster *c = cluster_find(r, a->cluster);
    if (c != NULL) {
        resources = resources_json(c);
        mem = c->memory_mib;
        mdb = strcmp(c->engine, "mariadb") == 0;
        sb_set = json_object_get(c->parameters,
                                 mdb ? "innodb_buffer_pool_size" : "shared_buffers") != NULL;
    }
    pthread_mutex_unlock(&r->mu);
    struct provider *p = action_provider(r, a, err);
    int rc = p == NULL           ? err->code
             : resources == NULL ? rv_error_set(err, RV_ENOTFOUND, false,
                                                "cluster '%s' is not desired any more", a->cluster)
                                 : list_instances(&found, p, a->cluster, a->node, err);
    json_t *inst = json_array_get(found, 0);
    if (rc == 0 && inst == NULL)
        rc = rv_error_set(err, RV_ENOTFOUND, false, "no instance of node '%s' is listed", a->node);
    if (rc == 0 && !provider_has_capability(p, "resize"))
        rc = rv_error_set(err, RV_EINVAL, false,
                          "provider '%s' cannot resize instances (no 'resize' capability), and "
                          "replacing nodes one by one is not supported by this version; revert "
                          "spec.resources",
                          provider_name(p));
    json_t *have = json_object_get(inst, "resources");
    bool restart =
        rc == 0 &&
        (!json_equal(json_object_get(have, "cpu"), json_object_get(resources, "cpu")) ||
         !json_equal(json_object_get(have, "memoryMiB"), json_object_get(resources, "memoryMiB")));
    int n = snprintf(mat, sizeof(mat), "%.64s:apply-%" PRId64, key, a->apply_id);
    if (rc == 0 && (n < 0 || crypto_sha256_hex(k, mat, (size_t)n) != 0))
        rc = rv_error_set(err, RV_EINVAL, false, "cannot derive the key of '%s'", a->id);
    if (rc == 0) {
        call = json_pack("{s:s, s:O}", "id", jstr(inst, "id"), "resources", resources);
        rc = call != NULL ? provider_call(&res, p, "resize_instance", call,
                                          deadline_ms_left(r, deadline), k, err)
                          : rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    if (rc == 0 && !restart) {
        json_t *o = json_pack("{s:s, s:s, s:O}", "result", "resized in place, no restart", "node",
                              a->node, "resources", resources);
        *out_output = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
    } else if (rc == 0) {
        snprintf(sb, sizeof(sb), "%" PRId64 "%s", mdb ? mem / 2 : mem / 4, mdb ? "M" : "MB");
        const char *pname = mdb ? "innodb_buffer_pool_size" : "shared_buffers";
        params = !sb_set && mem >= 4 ? json_pack("{s:s}", pname, sb) : NULL;
        rc = ops_restart(out_output, r, a, key, params, deadline, err);
    }
    json_decref(call);
    json_decref(res);
    json_decref(found);
    json_decref(params);
    json_decref(resources);
    return rc;
}

/* configure_backup, configure_users or provision_instance of a succeeded:
 * remember what it made true (see struct runners.configured); returns rc. */
static int noted(struct runners *r, const struct journal_action *a, int rc)
{
    if (rc != 0)
        return rc;
    bool users = strcmp(a->kind, "configure_users") == 0;
    bool provision = strcmp(a->kind, "provision_instance") == 0;
    pthread_mutex_lock(&r->mu);
    const struct rcluster *c = cluster_find(r, a->cluster);
    if (c != NULL && r->configured == NULL)
        r->configured = json_object();
    json_t *f = c != NULL && r->configured != NULL ? json_object_get(r->configured, c->key) : NULL;
    if (c != NULL && f == NULL && r->configured != NULL) {
        f = json_object();
        if (json_object_set_new(r->configured, c->key, f) != 0)
            f = NULL;
    }
    if (f != NULL) {
        if (provision)
            json_object_set_new(f, "deletionProtection", json_boolean(c->deletion_protection));
        else if (users)
            json_object_set_new(f, "users", json_deep_copy(c->user_names));
        else
            json_object_set_new(f, "backupDigest", json_string(c->backup_digest));
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int dispatch_run(char **out_output, const struct journal_action *a, const char *key,
                        int64_t deadline, struct rv_error *err, void *ud)
{
    struct runners *r = ud;
    const char *k = a->kind;
    if (strcmp(k, "provision_instance") == 0)
        return noted(r, a, run_provision(out_output, r, a, key, deadline, err));
    if (strcmp(k, "bootstrap_primary") == 0)
        return run_wait(out_output, r, a, COND_PRIMARY, deadline, err);
    if (strcmp(k, "add_replica") == 0)
        return run_wait(out_output, r, a, COND_REPLICA, deadline, err);
    if (strcmp(k, "ready") == 0)
        return run_wait(out_output, r, a, COND_READY, deadline, err);
    if (strcmp(k, "configure_backup") == 0)
        return noted(r, a, run_configure_backup(out_output, r, a, err));
    if (strcmp(k, "final_backup") == 0)
        return run_final_backup(out_output, r, a, key, deadline, err);
    if (strcmp(k, "seed_from_backup") == 0)
        return run_seed(out_output, r, a, deadline, err);
    if (strcmp(k, "configure_users") == 0)
        return noted(r, a, run_configure_users(out_output, r, a, deadline, err));
    if (strcmp(k, "remove_replica") == 0 || strcmp(k, "decommission") == 0)
        return run_remove(out_output, r, a, key, deadline, err);
    if (strcmp(k, "configure_parameters") == 0)
        return run_configure_parameters(out_output, r, a, deadline, err);
    if (strcmp(k, "restart_node") == 0)
        return ops_restart(out_output, r, a, key, NULL, deadline, err);
    if (strcmp(k, "switchover") == 0)
        return run_switchover(out_output, r, a, key, deadline, err);
    if (strcmp(k, "upgrade_replica") == 0 || strcmp(k, "upgrade_node") == 0)
        return run_upgrade(out_output, r, a, key, deadline, err);
    if (strcmp(k, "resize") == 0)
        return run_resize(out_output, r, a, key, deadline, err);
    return run_unsupported(out_output, r, a, err);
}

static int dispatch_check(bool *out_done, const struct journal_action *a, const char *key,
                          struct rv_error *err, void *ud)
{
    struct runners *r = ud;
    const char *k = a->kind;
    char why[256];
    *out_done = false;
    if (strcmp(k, "provision_instance") == 0)
        return check_listed(out_done, r, a, true, err);
    if (strcmp(k, "remove_replica") == 0 || strcmp(k, "decommission") == 0)
        return check_listed(out_done, r, a, false, err);
    if (strcmp(k, "final_backup") == 0)
        return check_final_backup(out_done, r, a, key, err);
    if (strcmp(k, "configure_users") == 0) {
        int rc = check_configure_users(out_done, r, a, err);
        return rc == 0 && *out_done ? noted(r, a, 0) : rc;
    }
    if (strcmp(k, "bootstrap_primary") == 0 || strcmp(k, "seed_from_backup") == 0)
        *out_done = cond_holds(r, a, COND_PRIMARY, why, sizeof(why));
    else if (strcmp(k, "add_replica") == 0)
        *out_done = cond_holds(r, a, COND_REPLICA, why, sizeof(why));
    else if (strcmp(k, "ready") == 0)
        *out_done = cond_holds(r, a, COND_READY, why, sizeof(why));
    /* The rest have no side effect in this version: run them again. */
    return 0;
}

void runners_executor_runner(struct executor_runner *out, struct runners *r)
{
    out->run = dispatch_run;
    out->check = dispatch_check;
    out->ud = r;
}

/* --- observed state --- */

void runners_stop(struct runners *r)
{
    atomic_store(&r->stopping, true);
}

static json_t *instance_obs_json(const char *provider, json_t *inst)
{
    json_t *labels = json_object_get(inst, "labels");
    const char *id = json_string_value(json_object_get(inst, "id"));
    const char *cluster = json_string_value(json_object_get(labels, LABEL_CLUSTER));
    const char *node = json_string_value(json_object_get(labels, LABEL_NODE));
    const char *address = json_string_value(json_object_get(inst, "address"));
    const char *state = json_string_value(json_object_get(inst, "state"));
    if (id == NULL || cluster == NULL || node == NULL || state == NULL)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s}", "provider", provider, "id", id,
                     "cluster", cluster, "node", node, "address", address ? address : "", "labels",
                     labels, "state", state);
}

/* The listed instance of cluster/node ("ns/name", node), or NULL. */
/* The listed instance of node of cluster; node NULL: any of cluster's. */
static json_t *instance_of(json_t *listed, const char *cluster, const char *node)
{
    size_t i;
    json_t *inst;
    json_array_foreach(listed, i, inst)
    {
        json_t *labels = json_object_get(inst, "labels");
        const char *c = json_string_value(json_object_get(labels, LABEL_CLUSTER));
        const char *n = json_string_value(json_object_get(labels, LABEL_NODE));
        if (c != NULL && n != NULL && strcmp(c, cluster) == 0 &&
            (node == NULL || strcmp(n, node) == 0))
            return inst;
    }
    return NULL;
}

/* What each reporting node's agent says it runs (ops/applied/<node>,
 * agent/ops.h): {"ns/name/node": report}. Read without the lock held: a
 * read goes through the loop, which takes the lock for node reports. */
static json_t *observe_applied(struct runners *r)
{
    json_t *out = json_object(), *names = json_array();
    if (out == NULL || names == NULL || r->o.read_key == NULL) {
        json_decref(names);
        return out;
    }
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nnodes; i++)
        json_array_append_new(names, json_pack("[s,s,s]", r->nodes[i].namespace_,
                                               r->nodes[i].cluster, r->nodes[i].node));
    pthread_mutex_unlock(&r->mu);
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        char cluster[2 * RV_NAME_MAX + 2], id[3 * RV_NAME_MAX + 3];
        json_t *rep = NULL;
        struct rv_error e = {0};
        const char *node = json_string_value(json_array_get(n, 2));
        snprintf(cluster, sizeof(cluster), "%s/%s", json_string_value(json_array_get(n, 0)),
                 json_string_value(json_array_get(n, 1)));
        snprintf(id, sizeof(id), "%s/%s", cluster, node);
        if (ops_read(&rep, r, cluster, "applied/", node, &e) == 1)
            json_object_set_new(out, id, rep);
        else
            json_decref(rep);
    }
    json_decref(names);
    return out;
}

/* The observed parameters of a node from its agent's report: pending ones
 * as {"value", "pendingRestart": true}. */
static json_t *applied_params(json_t *rep)
{
    json_t *out = json_object();
    const char *pending = json_string_value(json_object_get(rep, "pending_restart"));
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(rep, "parameters"), name, v)
    {
        bool p = false;
        size_t len = strlen(name);
        for (const char *s = pending; s != NULL && *s && !p;) {
            const char *end = strchr(s, ',');
            size_t n = end != NULL ? (size_t)(end - s) : strlen(s);
            p = n == len && strncmp(s, name, n) == 0;
            s = end != NULL ? end + 1 : NULL;
        }
        if (json_is_string(v))
            json_object_set_new(out, name,
                                p ? json_pack("{s:O, s:b}", "value", v, "pendingRestart", 1)
                                  : json_incref(v));
    }
    return out;
}

int runners_observe(struct observed *obs, struct runners *r, struct rv_error *err)
{
    json_t *root = json_pack("{s:[], s:[], s:[]}", "instances", "nodes", "clusters");
    json_t *listed = json_array(); /* raw provider instances, for node resources */
    int rc = 0;
    char last[OBSERVED_TIME_LEN];

    if (root == NULL || listed == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    json_t *insts = json_object_get(root, "instances"), *nodes = json_object_get(root, "nodes");
    for (size_t i = 0; i < r->nproviders && rc == 0; i++) {
        json_t *res = NULL, *params = json_pack("{s:{s:s}}", "labels", LABEL_MANAGED, "reeve");
        if (params == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            break;
        }
        rc = provider_call(&res, r->providers[i].p, "list_instances", params,
                           RUNNERS_LIST_DEADLINE_MS, NULL, err);
        json_decref(params);
        if (rc != 0)
            break;
        size_t k;
        json_t *inst;
        json_array_foreach(json_object_get(res, "instances"), k, inst)
        {
            json_t *o = instance_obs_json(r->providers[i].name, inst);
            if (o == NULL)
                continue;
            json_array_append_new(insts, o);
            json_array_append(listed, inst);
        }
        json_decref(res);
    }
    if (rc != 0)
        goto out;

    json_t *applied = observe_applied(r);
    pthread_mutex_lock(&r->mu);
    json_decref(r->listed);
    r->listed = json_incref(listed);
    for (size_t i = 0; i < r->nnodes; i++) {
        const struct rnode *n = &r->nodes[i];
        char key[2 * RV_NAME_MAX + 2];
        snprintf(key, sizeof(key), "%s/%s", n->namespace_, n->cluster);
        const struct rcluster *c = cluster_find(r, key);
        json_t *inst = instance_of(listed, key, n->node);
        json_t *ires = json_object_get(inst, "resources");
        const char *engine = n->engine[0] ? n->engine
                             : json_string_value(json_object_get(inst, "engine")) != NULL
                                 ? json_string_value(json_object_get(inst, "engine"))
                             : c != NULL ? c->engine
                                         : "postgresql";
        /* The provider's image version first: an upgrade in place changes
         * it (upgrade_instance) and rolls it back when the node fails on
         * it; the agent's is the data directory's major (PG_VERSION). */
        const char *version = json_string_value(json_object_get(inst, "version")) != NULL
                                  ? json_string_value(json_object_get(inst, "version"))
                              : n->version[0] ? n->version
                              : c != NULL     ? c->version
                                              : "";
        json_t *resources =
            json_is_object(ires) ? json_deep_copy(ires)
            : c != NULL          ? resources_json(c)
                        : json_pack("{s:i, s:i, s:i}", "cpu", 1, "memoryMiB", 1, "storageGiB", 1);
        int64_t ttl = n->ttl_s < 1                       ? 1
                      : n->ttl_s > RV_OBSERVED_TTL_MAX_S ? RV_OBSERVED_TTL_MAX_S
                                                         : n->ttl_s;
        observed_time_format(last, n->last_report);
        char nid[3 * RV_NAME_MAX + 3];
        snprintf(nid, sizeof(nid), "%s/%s", key, n->node);
        json_t *rep = json_object_get(applied, nid);
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:s, s:o, s:o, s:s, s:I}", "cluster",
                      key, "node", n->node, "role", observed_role_name(n->role), "engine", engine,
                      "version", version[0] ? version : "0", "healthy", n->healthy, "lagBytes",
                      (json_int_t)(n->lag_bytes < 0 ? 0 : n->lag_bytes), "position", n->position,
                      "parameters", rep != NULL ? applied_params(rep)
                                    : c != NULL ? json_deep_copy(c->parameters)
                                                : json_object(),
                      "resources", resources, "lastReport", last, "ttlSeconds", (json_int_t)ttl);
        if (o == NULL || json_array_append_new(nodes, o) != 0) {
            rc = RV_ENOMEM;
            break;
        }
    }
    /* Cluster-level facts: what configure_backup, configure_users and
     * provisioning made true, also for clusters no longer desired. A
     * cluster neither desired nor holding an instance is gone: forget it,
     * so that a new cluster of the same name starts from nothing. */
    json_t *cfacts = json_object_get(root, "clusters");
    const char *ckey;
    json_t *f;
    void *tmp;
    json_object_foreach_safe(r->configured, tmp, ckey, f)
    {
        if (cluster_find(r, ckey) == NULL && instance_of(listed, ckey, NULL) == NULL) {
            json_object_del(r->configured, ckey);
            continue;
        }
        json_t *o = json_deep_copy(f);
        if (o == NULL || json_object_set_new(o, "cluster", json_string(ckey)) != 0 ||
            json_array_append(cfacts, o) != 0)
            rc = RV_ENOMEM;
        json_decref(o);
        if (rc != 0)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    json_decref(applied);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = observed_from_json(obs, root, "observed state", err);
out:
    json_decref(listed);
    json_decref(root);
    return rc;
}

/* --- status --- */

/* One cluster of the status document (r->mu held). */
static bool status_cluster(json_t *clusters, struct runners *r, const struct rcluster *c,
                           const struct journal_apply *applies, size_t napplies,
                           const struct runners_apply_view *views, size_t nviews)
{
    char last[OBSERVED_TIME_LEN];
    bool oom = false;
    json_t *apply = json_null(), *nodes = json_array(), *actions = json_array();
    for (size_t v = 0; v < nviews; v++) {
        if (strcmp(views[v].cluster, c->key) != 0)
            continue;
        json_decref(apply);
        apply = json_pack("{s:s, s:s, s:s}", "commit", views[v].commit, "state", views[v].state,
                          "text", views[v].text);
    }
    for (size_t n = 0; n < r->nnodes && nodes != NULL; n++) {
        const struct rnode *nd = &r->nodes[n];
        if (!node_is(nd, c->namespace_, c->name, NULL))
            continue;
        observed_time_format(last, nd->last_report);
        bool fresh = node_fresh(nd, now_s(r));
        json_t *inst = instance_of(r->listed, c->key, nd->node);
        json_t *addr = json_object_get(inst, "address");
        json_t *port = json_object_get(json_object_get(inst, "ports"), "db");
        if (!json_is_string(addr) || json_string_length(addr) == 0)
            addr = json_null();
        if (!json_is_integer(port))
            port = json_null();
        oom |= json_array_append_new(
                   nodes,
                   json_pack("{s:s, s:s, s:O, s:O, s:b, s:b, s:I, s:s}", "name", nd->node, "role",
                             fresh ? observed_role_name(nd->role) : "unknown", "address", addr,
                             "port", port, "healthy", fresh && nd->healthy, "streaming",
                             fresh && nd->role == OBS_ROLE_REPLICA && nd->healthy &&
                                 (nd->streaming >= 0 ? nd->streaming == 1 : nd->lag_bytes >= 0),
                             "lag_bytes", (json_int_t)nd->lag_bytes, "last_report", last)) != 0;
        /* What the node reports of its server (engine, version, position: an
         * LSN, or a GTID position for MariaDB), when it does. */
        json_t *o = json_array_get(nodes, json_array_size(nodes) - 1);
        const char *const rep[][2] = {{"engine", nd->engine},
                                      {"version", nd->version},
                                      {"position", nd->position}};
        for (size_t k = 0; o != NULL && k < 3; k++)
            if (rep[k][1] != NULL && rep[k][1][0] != '\0')
                oom |= json_object_set_new(o, rep[k][0], json_string(rep[k][1])) != 0;
        if (o != NULL && nd->lag_transactions >= 0)
            oom |= json_object_set_new(o, "lag_transactions",
                                       json_integer((json_int_t)nd->lag_transactions)) != 0;
    }
    /* the actions of the first apply (the latest) that has any */
    for (size_t a = 0; a < napplies && actions != NULL && json_array_size(actions) == 0; a++) {
        for (size_t k = 0; k < applies[a].nactions; k++) {
            const struct journal_action *ac = &applies[a].actions[k];
            if (strcmp(ac->cluster, c->key) != 0)
                continue;
            oom |= json_array_append_new(
                       actions,
                       json_pack("{s:s, s:s, s:s, s:s, s:i, s:s?}", "id", ac->id, "kind", ac->kind,
                                 "node", ac->node, "state", journal_action_state_name(ac->state),
                                 "attempts", ac->attempts, "last_error", ac->last_error)) != 0;
        }
    }
    json_t *cj = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o}", "namespace", c->namespace_, "name", c->name,
        "engine", c->engine, "version", c->version, "desired_instances", c->instances, "apply",
        apply != NULL ? apply : json_null(), "nodes", nodes != NULL ? nodes : json_array(),
        "actions", actions != NULL ? actions : json_array());
    oom |= nodes == NULL || actions == NULL || apply == NULL;
    oom |= json_array_append_new(clusters, cj) != 0;
    return oom;
}

json_t *runners_status_json(struct runners *r, const struct journal_apply *applies, size_t napplies,
                            const struct runners_apply_view *views, size_t nviews)
{
    json_t *root = json_object(), *clusters = json_array();
    bool oom = root == NULL || clusters == NULL || json_object_set(root, "clusters", clusters);

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nclusters && !oom; i++)
        oom |= status_cluster(clusters, r, &r->clusters[i], applies, napplies, views, nviews);
    /* clusters no longer desired whose nodes still report (a deletion in
     * progress, or blocked) */
    for (size_t i = 0; i < r->nnodes && !oom; i++) {
        const struct rnode *nd = &r->nodes[i];
        char key[2 * RV_NAME_MAX + 2];
        snprintf(key, sizeof(key), "%s/%s", nd->namespace_, nd->cluster);
        bool seen = cluster_find(r, key) != NULL;
        for (size_t j = 0; j < i && !seen; j++)
            seen = node_is(&r->nodes[j], nd->namespace_, nd->cluster, NULL);
        if (seen)
            continue;
        struct rcluster gone = {
            .key = key,
            .namespace_ = nd->namespace_,
            .name = nd->cluster,
            .engine = nd->engine,
            .version = nd->version,
        };
        oom |= status_cluster(clusters, r, &gone, applies, napplies, views, nviews);
    }
    pthread_mutex_unlock(&r->mu);
    json_decref(clusters);
    if (oom) {
        json_decref(root);
        return NULL;
    }
    return root;
}
