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

#include "crypto.h"
#include "limits.h"
#include "log.h"

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
    c->backup = s->backup.enabled;
    c->nusers = s->nusers;
    c->nparameters = s->nparameters;
    if (c->key == NULL || c->namespace_ == NULL || c->name == NULL || c->engine == NULL ||
        c->version == NULL || c->provider == NULL || c->region == NULL || c->parameters == NULL)
        return RV_ENOMEM;
    for (size_t i = 0; i < s->nparameters; i++)
        if (json_object_set_new(c->parameters, s->parameters[i].key,
                                json_string(s->parameters[i].value)) != 0)
            return RV_ENOMEM;
    return 0;
}

int runners_set_desired(struct runners *r, const struct spec_set *set, struct rv_error *err)
{
    struct rcluster *cs = calloc(set->nclusters ? set->nclusters : 1, sizeof(*cs));
    size_t n = 0;
    int rc = 0;
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
    if (n < 0 || (size_t)n >= sizeof(material) ||
        crypto_sha256_hex(key, material, (size_t)n) != 0)
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
                      " s:{s:{s:s, s:s, s:s, s:I, s:I, s:I, s:{s:s, s:o}}, s:{s:s, s:s}}}",
                      "name", a->node, "labels", LABEL_CLUSTER, a->cluster, LABEL_NODE, a->node,
                      LABEL_MANAGED, "reeve", "engine", c->engine, "version", c->version, "region",
                      c->region, "resources", resources_json(c), "agent", "config", "node", a->node,
                      "cluster", a->cluster, "reconciler", r->o.agent_url, "ttl_ms",
                      (json_int_t)r->o.agent_ttl_ms, "tick_ms", (json_int_t)r->o.agent_tick_ms,
                      "max_lag_on_failover_bytes", (json_int_t)c->max_lag_on_failover_bytes,
                      "engine", "type", c->engine, "parameters", json_deep_copy(c->parameters),
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

    if (strcmp(a->kind, "final_backup") == 0) {
        /* A deleted spec is no longer desired: the plan only takes a final
         * backup when the last applied spec had a backup section. */
        if (known == 0 && !backup)
            return set_output_text(out_output,
                                   "no backup destination configured; nothing to back up");
        return rv_error_set(err, RV_EINVAL, false,
                            "final backup to the configured destination is not available in "
                            "this version; set deletionProtection and keep the spec, or remove "
                            "the backup section");
    }
    if (strcmp(a->kind, "configure_users") == 0 && known == 0 && nusers == 0)
        return set_output_text(out_output, "no users to configure");
    if (strcmp(a->kind, "configure_backup") == 0 && known == 0 && !backup)
        return set_output_text(out_output, "no backup section; nothing to configure");
    if (strcmp(a->kind, "configure_parameters") == 0 && known == 0 && nparams == 0)
        return set_output_text(out_output, "no parameters to configure");
    return rv_error_set(err, RV_EINVAL, false,
                        "%s is not supported by this version of reeve (cluster '%s'); revert "
                        "the change in the spec",
                        a->kind, a->cluster);
}

static int dispatch_run(char **out_output, const struct journal_action *a, const char *key,
                        int64_t deadline, struct rv_error *err, void *ud)
{
    struct runners *r = ud;
    const char *k = a->kind;
    if (strcmp(k, "provision_instance") == 0)
        return run_provision(out_output, r, a, key, deadline, err);
    if (strcmp(k, "bootstrap_primary") == 0)
        return run_wait(out_output, r, a, COND_PRIMARY, deadline, err);
    if (strcmp(k, "add_replica") == 0)
        return run_wait(out_output, r, a, COND_REPLICA, deadline, err);
    if (strcmp(k, "ready") == 0)
        return run_wait(out_output, r, a, COND_READY, deadline, err);
    if (strcmp(k, "remove_replica") == 0 || strcmp(k, "decommission") == 0)
        return run_remove(out_output, r, a, key, deadline, err);
    return run_unsupported(out_output, r, a, err);
}

static int dispatch_check(bool *out_done, const struct journal_action *a, const char *key,
                          struct rv_error *err, void *ud)
{
    struct runners *r = ud;
    const char *k = a->kind;
    char why[256];
    (void)key;
    *out_done = false;
    if (strcmp(k, "provision_instance") == 0)
        return check_listed(out_done, r, a, true, err);
    if (strcmp(k, "remove_replica") == 0 || strcmp(k, "decommission") == 0)
        return check_listed(out_done, r, a, false, err);
    if (strcmp(k, "bootstrap_primary") == 0)
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
static json_t *instance_of(json_t *listed, const char *cluster, const char *node)
{
    size_t i;
    json_t *inst;
    json_array_foreach(listed, i, inst)
    {
        json_t *labels = json_object_get(inst, "labels");
        const char *c = json_string_value(json_object_get(labels, LABEL_CLUSTER));
        const char *n = json_string_value(json_object_get(labels, LABEL_NODE));
        if (c != NULL && n != NULL && strcmp(c, cluster) == 0 && strcmp(n, node) == 0)
            return inst;
    }
    return NULL;
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
        const char *version = n->version[0] ? n->version
                              : json_string_value(json_object_get(inst, "version")) != NULL
                                  ? json_string_value(json_object_get(inst, "version"))
                              : c != NULL ? c->version
                                          : "";
        json_t *resources =
            json_is_object(ires) ? json_deep_copy(ires)
            : c != NULL          ? resources_json(c)
                        : json_pack("{s:i, s:i, s:i}", "cpu", 1, "memoryMiB", 1, "storageGiB", 1);
        int64_t ttl = n->ttl_s < 1                       ? 1
                      : n->ttl_s > RV_OBSERVED_TTL_MAX_S ? RV_OBSERVED_TTL_MAX_S
                                                         : n->ttl_s;
        observed_time_format(last, n->last_report);
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:s, s:o, s:o, s:s, s:I}", "cluster",
                      key, "node", n->node, "role", observed_role_name(n->role), "engine", engine,
                      "version", version[0] ? version : "0", "healthy", n->healthy, "lagBytes",
                      (json_int_t)(n->lag_bytes < 0 ? 0 : n->lag_bytes), "position", n->position,
                      "parameters", c != NULL ? json_deep_copy(c->parameters) : json_object(),
                      "resources", resources, "lastReport", last, "ttlSeconds", (json_int_t)ttl);
        if (o == NULL || json_array_append_new(nodes, o) != 0) {
            rc = RV_ENOMEM;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
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
                                 nd->lag_bytes >= 0,
                             "lag_bytes", (json_int_t)nd->lag_bytes, "last_report", last)) != 0;
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
