/* planner.c - diff desired specs against observed state into an action DAG.
 *
 * A pure function: everything it knows comes from its arguments, so plans
 * are reproducible and testable without servers. See planner.h for the
 * phases and docs/planning.md for the user's view.
 */
#include "planner.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "limits.h"
#include "params.h"
#include "window.h"

/* ---- names -------------------------------------------------------------- */

const char *plan_kind_name(enum plan_kind k)
{
    switch (k) {
#define PLAN_KIND_CASE(name, word)                                                                 \
    case PLAN_##name:                                                                              \
        return word;
        PLAN_KIND_MAP(PLAN_KIND_CASE)
#undef PLAN_KIND_CASE
    }
    return "unknown";
}

const char *plan_change_name(enum plan_change c)
{
    switch (c) {
    case PLAN_CHANGE_ADD:
        return "add";
    case PLAN_CHANGE_CHANGE:
        return "change";
    case PLAN_CHANGE_DESTROY:
        return "destroy";
    case PLAN_CHANGE_NONE:
        break;
    }
    return "none";
}

/* ---- parameters that need a restart ------------------------------------ */

/* PostgreSQL settings of context "postmaster": they take effect only at
 * server start (pg_settings.context = 'postmaster'). */
static const char *const pg_restart_params[] = {
    "archive_mode",
    "autovacuum_max_workers",
    "autovacuum_worker_slots",
    "bonjour",
    "bonjour_name",
    "cluster_name",
    "commit_timestamp_buffers",
    "config_file",
    "data_directory",
    "debug_io_direct",
    "dynamic_shared_memory_type",
    "event_source",
    "external_pid_file",
    "hba_file",
    "hot_standby",
    "huge_page_size",
    "huge_pages",
    "ident_file",
    "io_max_concurrency",
    "io_method",
    "jit_provider",
    "listen_addresses",
    "logging_collector",
    "max_connections",
    "max_files_per_process",
    "max_locks_per_transaction",
    "max_logical_replication_workers",
    "max_notify_queue_pages",
    "max_pred_locks_per_transaction",
    "max_prepared_transactions",
    "max_replication_slots",
    "max_wal_senders",
    "max_worker_processes",
    "min_dynamic_shared_memory",
    "multixact_member_buffers",
    "multixact_offset_buffers",
    "notify_buffers",
    "old_snapshot_threshold",
    "port",
    "reserved_connections",
    "serializable_buffers",
    "shared_buffers",
    "shared_memory_type",
    "shared_preload_libraries",
    "ssl_library",
    "subtransaction_buffers",
    "superuser_reserved_connections",
    "track_activity_query_size",
    "track_commit_timestamp",
    "transaction_buffers",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
    "wal_buffers",
    "wal_decode_buffer_size",
    "wal_level",
    "wal_log_hints",
    NULL,
};

/* Lowercase, '-' as '_': PostgreSQL names are case-insensitive and MariaDB
 * takes both spellings. */
static void param_norm(char *out, size_t cap, const char *name)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++) {
        char c = (char)tolower((unsigned char)name[i]);
        out[i] = c == '-' ? '_' : c;
    }
    out[i] = '\0';
}

/* PostgreSQL's catalog for version, else its one catalog (when a parameter
 * takes effect rarely changes between majors). */
static const struct param_catalog *nearest_catalog(const char *engine, const char *version)
{
    const struct param_catalog *cat = version != NULL ? params_catalog(engine, version) : NULL;
    return cat != NULL ? cat : params_catalog(engine, "15");
}

bool plan_param_needs_restart(const char *engine, const char *version, const char *name)
{
    char norm[160];
    if (strcmp(engine, "postgresql") != 0) /* unknown names: a restart applies anything */
        return params_needs_restart(engine, version, name);
    const struct param_catalog *cat = nearest_catalog(engine, version);
    const struct param_def *def = cat != NULL ? params_lookup(cat, name) : NULL;
    if (def != NULL)
        return def->apply == PARAM_RESTART;
    /* Not in the catalog (an extension's parameter): PostgreSQL's own
     * table; the server's pending_restart report catches the rest. */
    param_norm(norm, sizeof(norm), name);
    for (size_t i = 0; pg_restart_params[i]; i++) {
        if (strcmp(norm, pg_restart_params[i]) == 0)
            return true;
    }
    return false;
}

/* ---- hashing ------------------------------------------------------------ */

static void hex_sha256(char out[65], const void *data, size_t len)
{
    _Static_assert(CRYPTO_SHA256_HEX_SIZE == 65, "hex digest size");
    if (crypto_sha256_hex(out, data, len) != 0) {
        /* SHA-256 of a memory buffer cannot fail short of a broken libcrypto */
        memset(out, '0', 64);
        out[64] = '\0';
    }
}

/* Length-prefixed fields, so that no value can imitate a separator. */
static int field(struct buf *b, const char *name, const char *value)
{
    if (value == NULL)
        return buf_printf(b, "%s=-;", name);
    return buf_printf(b, "%s=%zu:%s;", name, strlen(value), value);
}

void plan_backup_digest(char out[65], const struct spec_cluster *c)
{
    struct buf b = BUF_INIT;
    int rc = 0;
    out[0] = '\0';
    if (!c->backup.enabled)
        return;
    rc |= field(&b, "full", c->backup.full_cron);
    rc |= field(&b, "incremental", c->backup.incremental_cron);
    rc |= buf_printf(&b, "retention=%d;", c->backup.retention_days);
    rc |= field(&b, "method", c->backup.method);
    rc |= field(&b, "program", c->backup.program);
    for (size_t i = 0; i < c->backup.nprogram_args; i++)
        rc |= field(&b, "arg", c->backup.program_args[i]);
    rc |= buf_printf(&b, "dest=%d;", (int)c->backup.dest_kind);
    rc |= field(&b, "bucket", c->backup.bucket);
    rc |= field(&b, "prefix", c->backup.prefix);
    rc |= field(&b, "endpoint", c->backup.endpoint);
    rc |= field(&b, "region", c->backup.s3_region);
    rc |= field(&b, "credentials", c->backup.credentials_ref);
    rc |= field(&b, "path", c->backup.local_path);
    rc |= field(&b, "key", c->backup.encryption_key_ref);
    rc |= buf_printf(&b, "preferReplica=%d;pitr=%d;", c->backup.prefer_replica ? 1 : 0,
                     c->pitr_enabled ? 1 : 0);
    if (rc == 0)
        hex_sha256(out, b.data, b.len);
    buf_release(&b);
}

/* ---- plan storage --------------------------------------------------------- */

void plan_init(struct plan *p)
{
    memset(p, 0, sizeof(*p));
}

static void action_release(struct plan_action *a)
{
    free(a->id);
    free(a->cluster);
    free(a->node);
    free(a->deps);
    free(a->reason);
    free(a->waits_for);
    free(a->blocked);
}

void plan_release(struct plan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nactions; i++)
        action_release(&p->actions[i]);
    free(p->actions);
    free(p->base);
    free(p->head);
    free(p->observed_revision);
    plan_init(p);
}

bool plan_has_changes(const struct plan *p)
{
    return p->summary.add + p->summary.change + p->summary.destroy + p->summary.blocked > 0;
}

/* ---- per-cluster planning context ------------------------------------- */

struct member {
    const char *name;
    long ordinal; /* -1 when the name is not <cluster>-<n> */
    const struct obs_instance *inst;
    const struct obs_node *rep;
    bool stale;
    bool primary;
    bool removed;
    size_t remove_idx;
};

#define IDXSET_MAX (RV_PLAN_CLUSTER_MEMBERS_MAX * 4 + 8)

struct idxset {
    size_t v[IDXSET_MAX];
    size_t n;
};

struct cplan {
    struct plan *plan;
    struct rv_error *err;
    const struct plan_opts *opts;
    int rc;                        /* sticky: the first failure; later calls do nothing */
    char key[2 * RV_NAME_MAX + 2]; /* "namespace/name" */
    const char *ns, *name;
    const struct spec_cluster *d;    /* desired; NULL when deleted */
    const struct spec_cluster *prev; /* last applied; may be NULL */
    const struct obs_cluster *facts; /* may be NULL */
    struct member m[RV_PLAN_CLUSTER_MEMBERS_MAX];
    size_t nm;
    size_t first; /* the cluster's first action */
    struct member *primary;
    bool fresh; /* nothing observed at all */
};

static void idx_add(struct idxset *s, size_t i)
{
    assert(s->n < IDXSET_MAX);
    if (s->n < IDXSET_MAX)
        s->v[s->n++] = i;
}

static char *vfmt(const char *fmt, va_list ap)
{
    struct buf b = BUF_INIT;
    if (buf_vprintf(&b, fmt, ap) != 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

static const char *member_suffix(const struct cplan *cp, const char *node, char *tmp, size_t cap)
{
    for (size_t i = 0; i < cp->nm; i++) {
        if (strcmp(cp->m[i].name, node) == 0 && cp->m[i].ordinal >= 0) {
            snprintf(tmp, cap, "%ld", cp->m[i].ordinal);
            return tmp;
        }
    }
    /* new nodes are always <name>-<ordinal> */
    size_t nl = strlen(cp->name);
    if (strncmp(node, cp->name, nl) == 0 && node[nl] == '-' && isdigit((unsigned char)node[nl + 1]))
        return node + nl + 1;
    return node;
}

/* Append an action; returns its index (or SIZE_MAX after a failure). */
static size_t act(struct cplan *cp, enum plan_kind kind, const char *node, enum plan_change change,
                  const char *target, const char *reason_fmt, ...)
    __attribute__((format(printf, 6, 7)));

static size_t act(struct cplan *cp, enum plan_kind kind, const char *node, enum plan_change change,
                  const char *target, const char *reason_fmt, ...)
{
    struct plan *p = cp->plan;
    struct buf kb = BUF_INIT;
    char tmp[32];
    if (cp->rc)
        return SIZE_MAX;
    if (p->nactions >= RV_PLAN_ACTIONS_MAX) {
        cp->rc = rv_error_set(cp->err, RV_ELIMIT, false,
                              "plan has more than %d actions; plan fewer clusters at a time",
                              RV_PLAN_ACTIONS_MAX);
        return SIZE_MAX;
    }
    if (p->nactions == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct plan_action *na = realloc(p->actions, cap * sizeof(*na));
        if (na == NULL) {
            cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
            return SIZE_MAX;
        }
        p->actions = na;
        p->cap = cap;
    }
    struct plan_action *a = &p->actions[p->nactions];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->change = change;
    a->cluster = strdup(cp->key);
    a->node = strdup(node);
    a->waits_for = strdup("");
    va_list ap;
    va_start(ap, reason_fmt);
    a->reason = vfmt(reason_fmt, ap);
    va_end(ap);
    if (node[0])
        a->id = buf_printf(&kb, "%s/%s/%s", cp->key, plan_kind_name(kind),
                           member_suffix(cp, node, tmp, sizeof(tmp))) == 0
                    ? buf_detach(&kb)
                    : NULL;
    else
        a->id =
            buf_printf(&kb, "%s/%s", cp->key, plan_kind_name(kind)) == 0 ? buf_detach(&kb) : NULL;
    buf_release(&kb);
    if (buf_puts(&kb, cp->key) == 0 && buf_putc(&kb, '\0') == 0 &&
        buf_puts(&kb, plan_kind_name(kind)) == 0 && buf_putc(&kb, '\0') == 0 &&
        buf_puts(&kb, node) == 0 && buf_putc(&kb, '\0') == 0 && buf_puts(&kb, target) == 0)
        hex_sha256(a->idempotency_key, kb.data, kb.len);
    else
        a->idempotency_key[0] = '\0';
    buf_release(&kb);
    p->nactions++;
    if (a->cluster == NULL || a->node == NULL || a->waits_for == NULL || a->reason == NULL ||
        a->id == NULL || a->idempotency_key[0] == '\0') {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        return SIZE_MAX;
    }
    return p->nactions - 1;
}

static void dep(struct cplan *cp, size_t idx, size_t on)
{
    if (cp->rc || idx == SIZE_MAX || on == SIZE_MAX)
        return;
    assert(on < idx);
    struct plan_action *a = &cp->plan->actions[idx];
    for (size_t i = 0; i < a->ndeps; i++) {
        if (a->deps[i] == on)
            return;
    }
    size_t *nd = realloc(a->deps, (a->ndeps + 1) * sizeof(*nd));
    if (nd == NULL) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        return;
    }
    a->deps = nd;
    a->deps[a->ndeps++] = on;
}

static void deps(struct cplan *cp, size_t idx, const struct idxset *s)
{
    for (size_t i = 0; i < s->n; i++)
        dep(cp, idx, s->v[i]);
}

static void set_text(struct cplan *cp, char **slot, const char *fmt, va_list ap)
{
    char *s = vfmt(fmt, ap);
    if (s == NULL) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        return;
    }
    free(*slot);
    *slot = s;
}

static void waits(struct cplan *cp, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void waits(struct cplan *cp, size_t idx, const char *fmt, ...)
{
    if (cp->rc || idx == SIZE_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    set_text(cp, &cp->plan->actions[idx].waits_for, fmt, ap);
    va_end(ap);
}

static void block(struct cplan *cp, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void block(struct cplan *cp, size_t idx, const char *fmt, ...)
{
    if (cp->rc || idx == SIZE_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    set_text(cp, &cp->plan->actions[idx].blocked, fmt, ap);
    va_end(ap);
}

/* ---- small helpers ----------------------------------------------------- */

static bool member_failed(const struct member *m)
{
    return m->inst && m->inst->state == OBS_STATE_FAILED;
}

/* "primary 'billing-0' healthy", with what is known against it. */
static void describe_healthy(struct buf *b, const char *what, const struct member *m)
{
    buf_printf(b, "%s '%s' healthy", what, m->name);
    if (m->rep == NULL && m->inst == NULL)
        return; /* a node this plan creates */
    if (m->rep == NULL)
        buf_puts(b, " (it has not reported yet)");
    else if (m->stale)
        buf_puts(b, " (its last report is stale)");
    else if (!m->rep->healthy)
        buf_puts(b, " (it reports unhealthy now)");
}

static void waits_healthy(struct cplan *cp, size_t idx, const char *what, const struct member *m,
                          const char *also)
{
    struct buf b = BUF_INIT;
    describe_healthy(&b, what, m);
    if (also && also[0])
        buf_printf(&b, "; %s", also);
    if (b.data == NULL)
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
    else
        waits(cp, idx, "%s", b.data);
    buf_release(&b);
}

static int cmp_kv_ptr(const void *pa, const void *pb)
{
    const struct spec_kv *a = *(const struct spec_kv *const *)pa;
    const struct spec_kv *b = *(const struct spec_kv *const *)pb;
    return strcmp(a->key, b->key);
}

/* "k=v;" for the desired parameters in name order (idempotency targets). */
static int params_canon(struct buf *b, const struct spec_cluster *d)
{
    const struct spec_kv **v = NULL;
    int rc = 0;
    if (d->nparameters == 0)
        return 0;
    v = calloc(d->nparameters, sizeof(*v));
    if (v == NULL)
        return RV_ENOMEM;
    for (size_t i = 0; i < d->nparameters; i++)
        v[i] = &d->parameters[i];
    qsort(v, d->nparameters, sizeof(*v), cmp_kv_ptr);
    for (size_t i = 0; i < d->nparameters && rc == 0; i++)
        rc = field(b, v[i]->key, v[i]->value);
    free(v);
    return rc;
}

static bool streq_opt(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static const char *or_default(const char *s, const char *dflt)
{
    return s && s[0] ? s : dflt;
}

/* ---- versions ------------------------------------------------------------ */

/* "15" matches "15", "15.4", "15.4-1"; "10.11" matches "10.11.6". */
static bool version_matches(const char *want, const char *have)
{
    size_t n = strlen(want);
    if (strncmp(want, have, n) != 0)
        return false;
    return have[n] == '\0' || have[n] == '.' || have[n] == '-' || have[n] == '+';
}

/* Compare dotted numbers over the components want has; <0 when have is
 * older than want, >0 when newer. */
static int version_cmp(const char *want, const char *have)
{
    const char *a = want, *b = have;
    while (isdigit((unsigned char)*a)) {
        char *end;
        long x = strtol(a, &end, 10);
        a = end;
        long y = 0;
        if (isdigit((unsigned char)*b)) {
            y = strtol(b, &end, 10);
            b = end;
        }
        if (x != y)
            return y < x ? -1 : 1;
        if (*a != '.')
            break;
        a++;
        if (*b == '.')
            b++;
    }
    return 0;
}

/* ---- members -------------------------------------------------------------- */

static long parse_ordinal(const char *cluster, const char *node)
{
    size_t n = strlen(cluster);
    if (strncmp(cluster, node, n) != 0 || node[n] != '-')
        return -1;
    const char *s = node + n + 1;
    if (!isdigit((unsigned char)*s) || (s[0] == '0' && s[1] != '\0'))
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (*s - '0');
        if (v > RV_PLAN_ORDINAL_MAX)
            return -1;
    }
    return v;
}

static struct member *member_get(struct cplan *cp, const char *node)
{
    for (size_t i = 0; i < cp->nm; i++) {
        if (strcmp(cp->m[i].name, node) == 0)
            return &cp->m[i];
    }
    if (cp->nm == RV_PLAN_CLUSTER_MEMBERS_MAX) {
        cp->rc = rv_error_set(cp->err, RV_ELIMIT, false,
                              "cluster '%s': observed state lists more than %d nodes; clean up "
                              "leftover instances at the provider, then plan again",
                              cp->key, RV_PLAN_CLUSTER_MEMBERS_MAX);
        return NULL;
    }
    struct member *m = &cp->m[cp->nm++];
    memset(m, 0, sizeof(*m));
    m->name = node;
    m->ordinal = parse_ordinal(cp->name, node);
    return m;
}

static int cmp_member(const void *pa, const void *pb)
{
    const struct member *a = pa, *b = pb;
    long oa = a->ordinal < 0 ? RV_PLAN_ORDINAL_MAX + 1 : a->ordinal;
    long ob = b->ordinal < 0 ? RV_PLAN_ORDINAL_MAX + 1 : b->ordinal;
    if (oa != ob)
        return oa < ob ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Removal order: the member whose loss costs least goes first. */
static int badness(const struct member *m)
{
    if (member_failed(m))
        return 4;
    if (m->rep == NULL)
        return 3;
    if (m->stale)
        return 2;
    if (!m->rep->healthy)
        return 1;
    return 0;
}

static int cmp_removal(const void *pa, const void *pb)
{
    const struct member *a = *(const struct member *const *)pa;
    const struct member *b = *(const struct member *const *)pb;
    int ba = badness(a), bb = badness(b);
    if (ba != bb)
        return ba > bb ? -1 : 1;
    int64_t la = a->rep ? a->rep->lag_bytes : 0, lb = b->rep ? b->rep->lag_bytes : 0;
    if (la != lb)
        return la > lb ? -1 : 1;
    return -cmp_member(a, b); /* highest ordinal first */
}

static const char *removal_cause(char *tmp, size_t cap, const struct member *m)
{
    switch (badness(m)) {
    case 4:
        return "its instance failed";
    case 3:
        return "it never joined";
    case 2:
        return "its last report is stale";
    case 1:
        return "it is unhealthy";
    default:
        break;
    }
    if (m->rep->lag_bytes > 0)
        snprintf(tmp, cap, "most lagging: %" PRId64 " bytes behind", m->rep->lag_bytes);
    else
        snprintf(tmp, cap, "no replica lags; highest ordinal");
    return tmp;
}

/* ---- desired parameters vs reported ------------------------------------- */

struct pchange {
    const char *name;
    const char *from; /* NULL: not set */
    const char *to;   /* NULL: reset to the engine default */
    bool restart;
};

static const struct obs_param *node_param(const struct obs_node *n, const char *name)
{
    char a[160], b[160];
    param_norm(a, sizeof(a), name);
    for (size_t i = 0; i < n->nparams; i++) {
        param_norm(b, sizeof(b), n->params[i].name);
        if (strcmp(a, b) == 0)
            return &n->params[i];
    }
    return NULL;
}

static const struct spec_kv *desired_param(const struct spec_cluster *d, const char *name)
{
    char a[160], b[160];
    param_norm(a, sizeof(a), name);
    for (size_t i = 0; i < d->nparameters; i++) {
        param_norm(b, sizeof(b), d->parameters[i].key);
        if (strcmp(a, b) == 0)
            return &d->parameters[i];
    }
    return NULL;
}

static int cmp_pchange(const void *pa, const void *pb)
{
    const struct pchange *a = pa, *b = pb;
    return strcmp(a->name, b->name);
}

/* Parameter changes over the kept, reporting members. *out is malloc'd. */
static int param_changes(struct cplan *cp, struct pchange **out, size_t *nout)
{
    const struct spec_cluster *d = cp->d;
    size_t cap = d->nparameters, n = 0;
    struct pchange *v = NULL;
    *out = NULL;
    *nout = 0;
    for (size_t i = 0; i < cp->nm; i++) {
        if (!cp->m[i].removed && cp->m[i].rep)
            cap += cp->m[i].rep->nparams;
    }
    if (cap == 0)
        return 0;
    v = calloc(cap, sizeof(*v));
    if (v == NULL)
        return RV_ENOMEM;
    /* desired values some node does not have */
    for (size_t k = 0; k < d->nparameters; k++) {
        const struct spec_kv *kv = &d->parameters[k];
        /* "from" is what a differing node runs, the primary's first */
        const char *from = NULL;
        bool differs = false, from_primary = false;
        for (size_t i = 0; i < cp->nm; i++) {
            const struct member *m = &cp->m[i];
            if (m->removed || m->rep == NULL)
                continue;
            const struct obs_param *op = node_param(m->rep, kv->key);
            if (op != NULL && strcmp(op->value, kv->value) == 0)
                continue;
            if (!differs || (m->primary && !from_primary)) {
                from = op ? op->value : NULL;
                from_primary = m->primary;
            }
            differs = true;
        }
        if (differs)
            v[n++] = (struct pchange){kv->key, from, kv->value,
                                      plan_param_needs_restart(d->engine, d->version, kv->key)};
    }
    /* managed parameters the spec no longer sets: back to the default */
    for (size_t i = 0; i < cp->nm; i++) {
        const struct member *m = &cp->m[i];
        if (m->removed || m->rep == NULL)
            continue;
        for (size_t j = 0; j < m->rep->nparams; j++) {
            const struct obs_param *op = &m->rep->params[j];
            if (desired_param(d, op->name))
                continue;
            bool seen = false;
            for (size_t x = 0; x < n && !seen; x++)
                seen = v[x].to == NULL && strcmp(v[x].name, op->name) == 0;
            if (!seen)
                v[n++] = (struct pchange){op->name, op->value, NULL,
                                          plan_param_needs_restart(d->engine, d->version, op->name)};
        }
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_pchange);
    *out = v;
    *nout = n;
    return 0;
}

/* "max_connections 100 → 200 [restart], work_mem 4MB → 8MB [reload]" */
static int describe_params(struct buf *b, const struct pchange *v, size_t n)
{
    enum { SHOWN = 8 };
    int rc = 0;
    for (size_t i = 0; i < n && i < SHOWN && rc == 0; i++) {
        const char *how = v[i].restart ? "restart" : "reload";
        const char *sep = i ? ", " : "";
        if (v[i].to == NULL)
            rc = buf_printf(b, "%sreset %s to its default [%s]", sep, v[i].name, how);
        else if (v[i].from == NULL)
            rc = buf_printf(b, "%sset %s = %s [%s]", sep, v[i].name, v[i].to, how);
        else
            rc = buf_printf(b, "%s%s %s → %s [%s]", sep, v[i].name, v[i].from, v[i].to, how);
    }
    if (rc == 0 && n > SHOWN)
        rc = buf_printf(b, " and %zu more", n - SHOWN);
    return rc;
}

/* ---- users -------------------------------------------------------------- */

/* Roles reeve never drops, whatever the agent reports: the engines' own and
 * reeve's service roles. */
static bool user_reserved(const char *name)
{
    static const char *const names[] = {"postgres", "root", "mysql", "mariadb.sys", "PUBLIC", NULL};
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(name, names[i]) == 0)
            return true;
    }
    return strncmp(name, "pg_", 3) == 0 || strncmp(name, "reeve", 5) == 0;
}

static bool obs_has_user(const struct obs_cluster *f, const char *name)
{
    for (size_t i = 0; f && i < f->nusers; i++) {
        if (strcmp(f->users[i], name) == 0)
            return true;
    }
    return false;
}

static const struct spec_user *spec_user_find(const struct spec_cluster *c, const char *name)
{
    for (size_t i = 0; c && i < c->nusers; i++) {
        if (strcmp(c->users[i].name, name) == 0)
            return &c->users[i];
    }
    return NULL;
}

static bool roles_equal(const struct spec_user *a, const struct spec_user *b)
{
    if (a->nroles != b->nroles)
        return false;
    for (size_t i = 0; i < a->nroles; i++) {
        if (strcmp(a->roles[i], b->roles[i]) != 0)
            return false;
    }
    return true;
}

static int cmp_user_ptr(const void *pa, const void *pb)
{
    const struct spec_user *a = *(const struct spec_user *const *)pa;
    const struct spec_user *b = *(const struct spec_user *const *)pb;
    return strcmp(a->name, b->name);
}

/* Plans configure_users when names differ (create/drop) or, known from the
 * last applied spec, roles or password references changed (alter). */
static size_t plan_users(struct cplan *cp, const struct idxset *after, const struct member *prim,
                         enum plan_change change)
{
    const struct spec_cluster *d = cp->d;
    struct buf reason = BUF_INIT, target = BUF_INIT;
    const struct spec_user **sorted = NULL;
    size_t idx = SIZE_MAX, creates = 0, alters = 0, drops = 0;
    int rc = 0;

    if (cp->rc)
        return SIZE_MAX;
    if (d->nusers && (sorted = calloc(d->nusers, sizeof(*sorted))) == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < d->nusers; i++)
        sorted[i] = &d->users[i];
    if (d->nusers > 1)
        qsort(sorted, d->nusers, sizeof(*sorted), cmp_user_ptr);

    for (size_t i = 0; i < d->nusers && rc == 0; i++) {
        const struct spec_user *u = sorted[i];
        rc |= field(&target, "user", u->name);
        for (size_t r = 0; r < u->nroles; r++)
            rc |= field(&target, "role", u->roles[r]);
        rc |= field(&target, "password", u->password_ref);
        if (cp->fresh || !obs_has_user(cp->facts, u->name)) {
            rc |= buf_printf(&reason, "%s'%s'", creates++ ? ", " : "create ", u->name);
        }
    }
    for (size_t i = 0; i < d->nusers && rc == 0 && !cp->fresh; i++) {
        const struct spec_user *u = sorted[i];
        const struct spec_user *old = spec_user_find(cp->prev, u->name);
        if (old == NULL || !obs_has_user(cp->facts, u->name))
            continue;
        bool roles = !roles_equal(old, u);
        bool pw = !streq_opt(old->password_ref, u->password_ref);
        if (!roles && !pw)
            continue;
        rc |= buf_printf(&reason, "%s'%s' [%s]",
                         alters++ ? ", " : (creates ? "; alter " : "alter "), u->name,
                         roles && pw ? "roles, password"
                         : roles     ? "roles"
                                     : "password");
    }
    for (size_t i = 0; cp->facts && i < cp->facts->nusers && rc == 0 && !cp->fresh; i++) {
        const char *name = cp->facts->users[i];
        if (spec_user_find(d, name) || user_reserved(name))
            continue;
        rc |= buf_printf(&reason, "%s'%s'",
                         drops++ ? ", " : (creates + alters ? "; drop " : "drop "), name);
    }
    if (rc || creates + alters + drops == 0)
        goto out;
    idx = act(cp, PLAN_CONFIGURE_USERS, "", change, target.data ? target.data : "", "%s",
              reason.data);
    deps(cp, idx, after);
    waits_healthy(cp, idx, "primary", prim, NULL);
out:
    if (rc)
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
    free(sorted);
    buf_release(&reason);
    buf_release(&target);
    return idx;
}

static size_t plan_backup(struct cplan *cp, const struct idxset *after, const struct member *prim)
{
    const struct spec_cluster *d = cp->d;
    char digest[65];
    const char *have = cp->facts ? cp->facts->backup_digest : NULL;
    size_t idx = SIZE_MAX;

    if (cp->rc)
        return SIZE_MAX;
    plan_backup_digest(digest, d);
    if (!d->backup.enabled) {
        if (have == NULL || cp->fresh)
            return SIZE_MAX;
        idx = act(cp, PLAN_CONFIGURE_BACKUP, "", PLAN_CHANGE_CHANGE, "none",
                  "backup section removed: stop scheduled backups (existing backups are kept "
                  "until their retention ends)");
        deps(cp, idx, after);
        waits_healthy(cp, idx, "primary", prim, NULL);
        return idx;
    }
    if (!cp->fresh && have && strcmp(have, digest) == 0)
        return SIZE_MAX;

    struct buf where = BUF_INIT;
    int rc = 0;
    if (d->backup.dest_kind == SPEC_DEST_S3)
        rc = buf_printf(&where, "s3 bucket '%s'%s%s", or_default(d->backup.bucket, "?"),
                        d->backup.prefix ? " prefix " : "",
                        d->backup.prefix ? d->backup.prefix : "");
    else if (d->backup.dest_kind == SPEC_DEST_LOCAL)
        rc = buf_printf(&where, "local '%s'", or_default(d->backup.local_path, "?"));
    else
        rc = buf_puts(&where, "the default destination");
    if (rc) {
        buf_release(&where);
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        return SIZE_MAX;
    }
    idx = act(
        cp, PLAN_CONFIGURE_BACKUP, "",
        have == NULL || cp->fresh ? PLAN_CHANGE_ADD : PLAN_CHANGE_CHANGE, digest,
        "%s backups: full '%s'%s%s%s, %d days, %s to %s%s%s",
        have == NULL || cp->fresh ? "schedule" : "reschedule", or_default(d->backup.full_cron, "?"),
        d->backup.incremental_cron ? ", incremental '" : "",
        d->backup.incremental_cron ? d->backup.incremental_cron : "",
        d->backup.incremental_cron ? "'" : "", d->backup.retention_days,
        or_default(d->backup.method, "default method"), where.data,
        d->backup.encryption_key_ref ? ", encrypted" : "", d->pitr_enabled ? ", PITR on" : "");
    buf_release(&where);
    deps(cp, idx, after);
    waits_healthy(cp, idx, "primary", prim, NULL);
    return idx;
}

/* ready depends on every action of the cluster nothing else depends on. */
static void plan_ready(struct cplan *cp, const char *target)
{
    struct plan *p = cp->plan;
    size_t end = p->nactions;
    if (cp->rc || end == cp->first)
        return;
    bool *used = calloc(end - cp->first, sizeof(*used));
    if (used == NULL) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        return;
    }
    for (size_t i = cp->first; i < end; i++) {
        for (size_t j = 0; j < p->actions[i].ndeps; j++)
            used[p->actions[i].deps[j] - cp->first] = true;
    }
    size_t idx = act(cp, PLAN_READY, "", PLAN_CHANGE_NONE, target,
                     "'%s' matches its spec once the actions above are done", cp->key);
    for (size_t i = cp->first; i < end; i++) {
        if (!used[i - cp->first])
            dep(cp, idx, i);
    }
    waits(cp, idx, "every action of '%s' done", cp->key);
    free(used);
}

/* A cluster that cannot be planned until a person or the agents act: one
 * blocked ready marker says why, and nothing else is planned. */
static void plan_blocked(struct cplan *cp, const char *why)
{
    size_t idx = act(cp, PLAN_READY, "", PLAN_CHANGE_NONE, cp->d ? cp->d->digest : "blocked",
                     "'%s' cannot be brought to its spec yet", cp->key);
    block(cp, idx, "%s", why);
}

/* ---- a deleted spec -------------------------------------------------------- */

static void plan_deleted(struct cplan *cp)
{
    struct buf names = BUF_INIT, ids = BUF_INIT, why = BUF_INIT;
    const struct member *src = NULL;
    bool bootstrapped = false;
    int rc = 0;

    if (cp->nm == 0)
        return; /* only facts remain: nothing runs any more */
    for (size_t i = 0; i < cp->nm; i++) {
        const struct member *m = &cp->m[i];
        rc |= buf_printf(&names, "%s'%s'", i ? ", " : "", m->name);
        rc |= field(&ids, "instance", m->inst ? m->inst->id : m->name);
        if (m->rep && m->rep->role != OBS_ROLE_UNKNOWN)
            bootstrapped = true;
        if (m->rep && m->rep->role == OBS_ROLE_PRIMARY && (src == NULL || !m->stale))
            src = m;
    }
    if (src == NULL)
        src = &cp->m[0];

    /* deletionProtection of the last applied spec decides */
    enum obs_tristate prot = OBS_UNKNOWN;
    if (cp->prev)
        prot = cp->prev->deletion_protection ? OBS_TRUE : OBS_FALSE;
    else if (cp->facts)
        prot = cp->facts->deletion_protection;
    if (prot == OBS_TRUE)
        rc |= buf_printf(&why,
                         "deletionProtection is true in the last applied spec of '%s'; to "
                         "delete it, restore the spec with deletionProtection: false, apply "
                         "that, then delete the spec",
                         cp->key);
    else if (prot == OBS_UNKNOWN)
        rc |= buf_printf(&why,
                         "the last applied spec of '%s' is unknown, so deletionProtection "
                         "cannot be ruled out; restore the spec with deletionProtection: "
                         "false, apply that, then delete the spec",
                         cp->key);
    /* Without a backup destination there is nowhere to put a final backup;
     * with deletionProtection false the user has opted out of keeping the
     * data, so the plan says plainly that none will be taken. */
    bool have_backup =
        (cp->facts && cp->facts->backup_digest) || (cp->prev && cp->prev->backup.enabled);
    if (rc) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }

    size_t fb = SIZE_MAX;
    if (bootstrapped && have_backup) {
        char last[OBSERVED_TIME_LEN] = "never";
        if (cp->facts && cp->facts->last_backup)
            observed_time_format(last, cp->facts->last_backup);
        fb = act(cp, PLAN_FINAL_BACKUP, src->name, PLAN_CHANGE_NONE, ids.data,
                 "spec deleted: take a full backup of '%s' before its instances go; last "
                 "backup %s",
                 cp->key, last);
        waits_healthy(cp, fb, src->rep && src->rep->role == OBS_ROLE_PRIMARY ? "primary" : "node",
                      src, NULL);
        if (why.len)
            block(cp, fb, "%s", why.data);
    }
    size_t dc = act(cp, PLAN_DECOMMISSION, "", PLAN_CHANGE_DESTROY, ids.data,
                    "spec deleted: delete %zu instance%s: %s%s", cp->nm, cp->nm == 1 ? "" : "s",
                    names.data,
                    bootstrapped && !have_backup
                        ? "; no final backup: no backup destination was configured, so the "
                          "data goes with the instances"
                        : "");
    dep(cp, dc, fb);
    if (fb != SIZE_MAX)
        waits(cp, dc, "final backup of '%s' completed and verified", cp->key);
    if (why.len)
        block(cp, dc, "%s", why.data);
out:
    buf_release(&names);
    buf_release(&ids);
    buf_release(&why);
}

/* ---- removals and new nodes (shared by new and running clusters) ------- */

/* Remove failed members (never the primary) and, past the wanted count, the
 * members whose loss costs least, one at a time. Returns the new tail. */
static void plan_removals(struct cplan *cp, int want, struct idxset *tail)
{
    struct member *cand[RV_PLAN_CLUSTER_MEMBERS_MAX];
    size_t nc = 0, kept = 0, nfailed = 0;
    char tmp[96];

    for (size_t i = 0; i < cp->nm; i++) {
        struct member *m = &cp->m[i];
        if (m->primary)
            continue;
        cand[nc++] = m;
        if (member_failed(m))
            nfailed++;
    }
    kept = cp->nm - nfailed;
    size_t extra = kept > (size_t)want ? kept - (size_t)want : 0;
    size_t nremove = nfailed + extra;
    if (nremove > nc)
        nremove = nc;
    if (nremove == 0)
        return;
    qsort(cand, nc, sizeof(*cand), cmp_removal);

    size_t prev = SIZE_MAX;
    for (size_t i = 0; i < nremove && cp->rc == 0; i++) {
        struct member *m = cand[i];
        struct buf target = BUF_INIT;
        field(&target, "instance", m->inst ? m->inst->id : "");
        size_t idx;
        if (member_failed(m) && i < nfailed)
            idx = act(cp, PLAN_REMOVE_REPLICA, m->name, PLAN_CHANGE_DESTROY,
                      target.data ? target.data : "",
                      "instance '%s' failed at provider '%s': remove it so it can be replaced",
                      m->inst->id, m->inst->provider);
        else
            idx = act(cp, PLAN_REMOVE_REPLICA, m->name, PLAN_CHANGE_DESTROY,
                      target.data ? target.data : "", "instances %zu → %d: remove '%s', %s", kept,
                      want, m->name, removal_cause(tmp, sizeof(tmp), m));
        buf_release(&target);
        m->removed = true;
        m->remove_idx = idx;
        dep(cp, idx, prev);
        for (size_t t = 0; t < tail->n; t++)
            dep(cp, idx, tail->v[t]);
        if (prev != SIZE_MAX)
            waits(cp, idx, "'%s' removed (replicas go one at a time)",
                  cp->plan->actions[prev].node);
        else if (cp->primary)
            waits_healthy(cp, idx, "primary", cp->primary, NULL);
        prev = idx;
    }
    if (prev != SIZE_MAX) {
        tail->n = 0;
        idx_add(tail, prev);
    }
}

struct newnode {
    char name[RV_OBSERVED_NODE_NAME_MAX + 1];
    long ordinal;
    size_t provision;              /* action index */
    const struct member *replaces; /* a removed member of the same name, or NULL */
};

/* The lowest ordinals no kept member uses (removed members free theirs). */
static size_t pick_new_nodes(struct cplan *cp, size_t count, struct newnode *out)
{
    size_t n = 0;
    for (long ord = 0; n < count && ord <= RV_PLAN_ORDINAL_MAX; ord++) {
        const struct member *same = NULL;
        bool used = false;
        for (size_t i = 0; i < cp->nm; i++) {
            if (cp->m[i].ordinal == ord) {
                same = &cp->m[i];
                used = !cp->m[i].removed;
            }
        }
        if (used)
            continue;
        out[n].ordinal = ord;
        out[n].provision = SIZE_MAX;
        out[n].replaces = same;
        snprintf(out[n].name, sizeof(out[n].name), "%s-%ld", cp->name, ord);
        n++;
    }
    return n;
}

static size_t provision(struct cplan *cp, struct newnode *nn, size_t nth, size_t from)
{
    const struct spec_cluster *d = cp->d;
    struct buf target = BUF_INIT;
    int rc = 0;
    rc |= field(&target, "provider", d->provider);
    rc |= field(&target, "region", d->region);
    rc |= field(&target, "engine", d->engine);
    rc |= field(&target, "version", d->version);
    rc |= buf_printf(&target, "cpu=%g;memory=%" PRId64 ";storage=%" PRId64 ";", d->resources.cpu,
                     d->resources.memory_mib, d->resources.storage_gib);
    if (rc) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        buf_release(&target);
        return SIZE_MAX;
    }
    size_t idx;
    if (nn->replaces && member_failed(nn->replaces))
        idx =
            act(cp, PLAN_PROVISION_INSTANCE, nn->name, PLAN_CHANGE_ADD, target.data,
                "replace failed instance '%s' on %s%s%s, %g cpu, %" PRId64 " MiB, %" PRId64 " GiB",
                nn->name, d->provider, d->region ? "/" : "", d->region ? d->region : "",
                d->resources.cpu, d->resources.memory_mib, d->resources.storage_gib);
    else
        idx = act(cp, PLAN_PROVISION_INSTANCE, nn->name, PLAN_CHANGE_ADD, target.data,
                  "instances %zu → %d: instance %zu of %d on %s%s%s, %g cpu, %" PRId64
                  " MiB, %" PRId64 " GiB",
                  from, d->instances, nth, d->instances, d->provider, d->region ? "/" : "",
                  d->region ? d->region : "", d->resources.cpu, d->resources.memory_mib,
                  d->resources.storage_gib);
    buf_release(&target);
    if (nn->replaces && nn->replaces->removed) {
        dep(cp, idx, nn->replaces->remove_idx);
        waits(cp, idx, "'%s' removed at the provider", nn->name);
    }
    nn->provision = idx;
    return idx;
}

static int replica_target(struct buf *b, const struct spec_cluster *d)
{
    int rc = field(b, "engine", d->engine);
    rc |= field(b, "version", d->version);
    rc |= params_canon(b, d);
    return rc;
}

/* ---- a cluster that has not been bootstrapped --------------------------- */

static void plan_new(struct cplan *cp)
{
    const struct spec_cluster *d = cp->d;
    struct newnode nn[RV_PLAN_CLUSTER_MEMBERS_MAX];
    struct idxset tail = {.n = 0}, after_replicas = {.n = 0};
    struct buf target = BUF_INIT;
    size_t from = cp->nm;

    plan_removals(cp, d->instances, &tail);
    size_t kept = 0;
    for (size_t i = 0; i < cp->nm; i++)
        kept += !cp->m[i].removed;
    size_t want = (size_t)d->instances;
    size_t nnew = kept < want ? pick_new_nodes(cp, want - kept, nn) : 0;
    for (size_t i = 0; i < nnew; i++)
        provision(cp, &nn[i], kept + i + 1, from);

    /* the bootstrap node: the lowest ordinal of all the cluster will have */
    const char *boot = NULL;
    long boot_ord = RV_PLAN_ORDINAL_MAX + 1;
    const struct member *boot_m = NULL;
    size_t boot_prov = SIZE_MAX;
    for (size_t i = 0; i < cp->nm; i++) {
        const struct member *m = &cp->m[i];
        long o = m->ordinal < 0 ? RV_PLAN_ORDINAL_MAX : m->ordinal;
        if (!m->removed && (boot == NULL || o < boot_ord)) {
            boot = m->name;
            boot_ord = o;
            boot_m = m;
            boot_prov = SIZE_MAX;
        }
    }
    for (size_t i = 0; i < nnew; i++) {
        if (boot == NULL || nn[i].ordinal < boot_ord) {
            boot = nn[i].name;
            boot_ord = nn[i].ordinal;
            boot_m = NULL;
            boot_prov = nn[i].provision;
        }
    }
    if (cp->rc || boot == NULL)
        goto out;

    if (replica_target(&target, d) != 0) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    /* "instances 0 → 3", or for instances that exist but never started
     * (an apply cut short) "3 instances provisioned" */
    char scale[64];
    if (from != want)
        snprintf(scale, sizeof(scale), "instances %zu → %d", from, d->instances);
    else
        snprintf(scale, sizeof(scale), "%d instance%s provisioned", d->instances,
                 d->instances == 1 ? "" : "s");
    size_t bi;
    char nparams[48] = "";
    if (d->nparameters)
        snprintf(nparams, sizeof(nparams), " with %zu parameter%s", d->nparameters,
                 d->nparameters == 1 ? "" : "s");
    if (d->bootstrap.kind == SPEC_BOOTSTRAP_FROM_BACKUP) {
        struct buf t2 = BUF_INIT;
        int rc = buf_puts(&t2, target.data ? target.data : "");
        rc |= field(&t2, "from", d->bootstrap.from_cluster);
        rc |= field(&t2, "backup", d->bootstrap.backup_id);
        rc |= field(&t2, "pit", d->bootstrap.point_in_time);
        if (rc) {
            buf_release(&t2);
            cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
        char what[160];
        if (d->bootstrap.backup_id)
            snprintf(what, sizeof(what), "backup '%s'", d->bootstrap.backup_id);
        else if (d->bootstrap.point_in_time)
            snprintf(what, sizeof(what), "point in time %s", d->bootstrap.point_in_time);
        else
            snprintf(what, sizeof(what), "the latest backup");
        bi = act(cp, PLAN_SEED_FROM_BACKUP, boot, PLAN_CHANGE_ADD, t2.data,
                 "%s: restore the primary, %s %s%s, from '%s' at %s", scale, d->engine, d->version,
                 nparams, or_default(d->bootstrap.from_cluster, "?"), what);
        buf_release(&t2);
        waits(cp, bi, "instance '%s' %s; a backup of '%s' covering %s in its destination", boot,
              boot_m ? "running" : "provisioned", or_default(d->bootstrap.from_cluster, "?"), what);
    } else {
        bi = act(cp, PLAN_BOOTSTRAP_PRIMARY, boot, PLAN_CHANGE_ADD, target.data,
                 "%s: initialise the primary, %s %s%s", scale, d->engine, d->version, nparams);
        waits(cp, bi, "instance '%s' %s", boot, boot_m ? "running" : "provisioned");
    }
    dep(cp, bi, boot_prov);
    deps(cp, bi, &tail);

    /* replicas, in parallel, each after the primary and its own instance */
    size_t nth = 0, replicas = want - 1;
    for (size_t i = 0; i < cp->nm; i++) {
        const struct member *m = &cp->m[i];
        if (m->removed || m == boot_m)
            continue;
        size_t ai = act(cp, PLAN_ADD_REPLICA, m->name, PLAN_CHANGE_ADD, target.data,
                        "%s: replica %zu of %zu", scale, ++nth, replicas);
        dep(cp, ai, bi);
        waits(cp, ai, "primary '%s' bootstrapped and healthy; instance '%s' running", boot,
              m->name);
        idx_add(&after_replicas, ai);
    }
    for (size_t i = 0; i < nnew; i++) {
        if (strcmp(nn[i].name, boot) == 0)
            continue;
        size_t ai = act(cp, PLAN_ADD_REPLICA, nn[i].name, PLAN_CHANGE_ADD, target.data,
                        "%s: replica %zu of %zu", scale, ++nth, replicas);
        dep(cp, ai, nn[i].provision);
        dep(cp, ai, bi);
        waits(cp, ai, "primary '%s' bootstrapped and healthy", boot);
        idx_add(&after_replicas, ai);
    }
    if (after_replicas.n == 0)
        idx_add(&after_replicas, bi);

    /* configuration once every node runs; parameters went in with the
     * bootstrap (written before the first start, so no restart) */
    /* the primary this plan bootstraps: nothing it reported before matters */
    struct member prim_new = {.name = boot};
    const struct member *prim = &prim_new;
    plan_users(cp, &after_replicas, prim, PLAN_CHANGE_ADD);
    plan_backup(cp, &after_replicas, prim);
    if (cp->rc == 0)
        plan_ready(cp, d->digest);
out:
    buf_release(&target);
}

/* ---- a running cluster ---------------------------------------------------- */

struct needs {
    bool upgrade;
    bool resize; /* cpu or memory: restart */
    bool grow;   /* storage only: in place */
    bool restart;
    const char *pending; /* a parameter waiting for a restart, for the reason */
};

static bool cpu_differs(double want, double have)
{
    return want > 0 && fabs(want - have) > 1e-9;
}

/* Whether node r runs a restart-only parameter other than the spec says. */
static bool restart_param_differs(const struct spec_cluster *d, const struct obs_node *r)
{
    for (size_t i = 0; i < d->nparameters; i++) {
        const struct spec_kv *kv = &d->parameters[i];
        if (!plan_param_needs_restart(d->engine, d->version, kv->key))
            continue;
        const struct obs_param *op = node_param(r, kv->key);
        if (op == NULL || strcmp(op->value, kv->value) != 0)
            return true;
    }
    for (size_t i = 0; i < r->nparams; i++) {
        if (plan_param_needs_restart(d->engine, d->version, r->params[i].name) &&
            desired_param(d, r->params[i].name) == NULL)
            return true;
    }
    return false;
}

static void node_needs(const struct cplan *cp, const struct member *m, struct needs *n)
{
    const struct spec_cluster *d = cp->d;
    const struct obs_node *r = m->rep;
    memset(n, 0, sizeof(*n));
    n->upgrade = !version_matches(d->version, r->version);
    n->resize = cpu_differs(d->resources.cpu, r->resources.cpu) ||
                (d->resources.memory_mib > 0 && d->resources.memory_mib != r->resources.memory_mib);
    n->grow = d->resources.storage_gib > r->resources.storage_gib;
    n->restart = restart_param_differs(d, r);
    for (size_t i = 0; i < r->nparams; i++) {
        if (r->params[i].pending_restart) {
            n->restart = true;
            if (n->pending == NULL)
                n->pending = r->params[i].name;
        }
    }
}

/* Checks that stop a running cluster from being planned at all. */
static int running_blocker(struct cplan *cp, struct buf *why)
{
    const struct spec_cluster *d = cp->d;
    struct member *live[RV_PLAN_CLUSTER_MEMBERS_MAX], *stale = NULL;
    size_t nlive = 0, nstale = 0;
    for (size_t i = 0; i < cp->nm; i++) {
        struct member *m = &cp->m[i];
        if (m->rep == NULL || m->rep->role != OBS_ROLE_PRIMARY)
            continue;
        if (m->stale) {
            stale = m;
            nstale++;
        } else {
            live[nlive++] = m;
        }
    }
    if (nlive > 1) {
        int rc = buf_printf(why, "%zu nodes report role primary (", nlive);
        for (size_t i = 0; i < nlive; i++)
            rc |= buf_printf(why, "%s'%s'", i ? ", " : "", live[i]->name);
        rc |= buf_puts(why, "); the agents must fence all but one before reeve changes this "
                            "cluster; check the agents' logs");
        return rc;
    }
    if (nlive == 1)
        cp->primary = live[0];
    else if (nstale == 1)
        cp->primary = stale;
    else
        return buf_printf(why,
                          "no node of '%s' reports role primary (a failover may be under way); "
                          "the plan is made again once a primary reports",
                          cp->key);
    cp->primary->primary = true;

    for (size_t i = 0; i < cp->nm; i++) {
        const struct member *m = &cp->m[i];
        if (m->inst && d->provider && strcmp(m->inst->provider, d->provider) != 0)
            return buf_printf(why,
                              "provider cannot change in place ('%s' runs on '%s', the spec "
                              "says '%s'); create a new cluster on '%s' with "
                              "bootstrap.fromBackup, then delete this one",
                              m->name, m->inst->provider, d->provider, d->provider);
        if (m->rep == NULL)
            continue;
        if (strcmp(m->rep->engine, d->engine) != 0)
            return buf_printf(why,
                              "engine cannot change in place ('%s' runs %s, the spec says %s); "
                              "create a new cluster and migrate the data",
                              m->name, m->rep->engine, d->engine);
        if (!version_matches(d->version, m->rep->version) &&
            version_cmp(d->version, m->rep->version) > 0)
            return buf_printf(why,
                              "version cannot go back from %s to %s ('%s'); restore a backup "
                              "into a new cluster with bootstrap.fromBackup instead",
                              m->rep->version, d->version, m->name);
        if (d->resources.storage_gib > 0 &&
            d->resources.storage_gib < m->rep->resources.storage_gib)
            return buf_printf(why,
                              "storage cannot shrink in place ('%s' has %" PRId64
                              " GiB, the spec says %" PRId64 "); keep storageGiB at least %" PRId64
                              " or move the data to a new cluster",
                              m->name, m->rep->resources.storage_gib, d->resources.storage_gib,
                              m->rep->resources.storage_gib);
    }
    return 0;
}

/* One node's steps in the roll; returns the last step (or prev). */
static size_t roll_node(struct cplan *cp, const struct member *m, const struct needs *nd,
                        bool is_primary, size_t prev, const char *first_wait, const char *pos,
                        const char *restart_params)
{
    const struct spec_cluster *d = cp->d;
    const struct obs_node *r = m->rep;
    bool first = true;
    char target[128];

    if (nd->resize) {
        snprintf(target, sizeof(target), "cpu=%g;memory=%" PRId64 ";storage=%" PRId64,
                 d->resources.cpu, d->resources.memory_mib,
                 nd->grow ? d->resources.storage_gib : r->resources.storage_gib);
        size_t idx = act(cp, PLAN_RESIZE, m->name, PLAN_CHANGE_CHANGE, target,
                         "cpu %g → %g, memoryMiB %" PRId64 " → %" PRId64 "%s, with a restart; %s",
                         r->resources.cpu, d->resources.cpu, r->resources.memory_mib,
                         d->resources.memory_mib, nd->grow ? ", storage grows" : "", pos);
        dep(cp, idx, prev);
        waits(cp, idx, "%s", first_wait);
        prev = idx, first = false;
    }
    if (nd->upgrade) {
        snprintf(target, sizeof(target), "version=%s", d->version);
        bool replace = d->maintenance.upgrade && strcmp(d->maintenance.upgrade, "replace") == 0;
        size_t idx = act(cp, is_primary ? PLAN_UPGRADE_NODE : PLAN_UPGRADE_REPLICA, m->name,
                         PLAN_CHANGE_CHANGE, target, "%s %s → %s %s; %s", d->engine, r->version,
                         d->version, replace ? "replace and rejoin" : "in place", pos);
        dep(cp, idx, prev);
        if (first)
            waits(cp, idx, "%s", first_wait);
        else
            waits(cp, idx, "'%s' healthy after its resize", m->name);
        prev = idx, first = false;
    }
    if (nd->restart && !nd->resize && !nd->upgrade) {
        size_t idx;
        if (restart_params && restart_params[0])
            idx = act(cp, PLAN_RESTART_NODE, m->name, PLAN_CHANGE_CHANGE, restart_params,
                      "restart to apply %s; %s", restart_params, pos);
        else
            idx = act(cp, PLAN_RESTART_NODE, m->name, PLAN_CHANGE_CHANGE,
                      nd->pending ? nd->pending : "",
                      "restart: '%s' reports %s pending a restart; %s", m->name,
                      nd->pending ? nd->pending : "a parameter", pos);
        dep(cp, idx, prev);
        waits(cp, idx, "%s", first_wait);
        prev = idx;
    }
    return prev;
}

/* PostgreSQL refuses to run a standby with one of these below the
 * primary's value; a lowered one is returned (for the roll order). */
static const char *lowered_standby_param(const struct pchange *v, size_t n, const char *engine)
{
    static const char *const names[] = {"max_connections",           "max_prepared_transactions",
                                        "max_locks_per_transaction", "max_wal_senders",
                                        "max_worker_processes",      NULL};
    char norm[160];
    if (strcmp(engine, "postgresql") != 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i].from == NULL || v[i].to == NULL)
            continue;
        param_norm(norm, sizeof(norm), v[i].name);
        bool listed = false;
        for (size_t k = 0; names[k] && !listed; k++)
            listed = strcmp(norm, names[k]) == 0;
        char *e1, *e2;
        long long from = strtoll(v[i].from, &e1, 10), to = strtoll(v[i].to, &e2, 10);
        if (listed && *e1 == '\0' && *e2 == '\0' && e1 != v[i].from && e2 != v[i].to && to < from)
            return v[i].name;
    }
    return NULL;
}

/* Forget the actions planned for this cluster so far. */
static void cluster_reset(struct cplan *cp)
{
    struct plan *p = cp->plan;
    while (p->nactions > cp->first)
        action_release(&p->actions[--p->nactions]);
}

static void plan_running(struct cplan *cp)
{
    const struct spec_cluster *d = cp->d;
    struct buf why = BUF_INIT, b = BUF_INIT, restart_names = BUF_INIT, wait = BUF_INIT;
    struct idxset tail = {.n = 0};
    struct pchange *pc = NULL;
    size_t npc = 0;
    struct newnode nn[RV_PLAN_CLUSTER_MEMBERS_MAX];

    if (running_blocker(cp, &why) != 0) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (why.len) {
        plan_blocked(cp, why.data);
        goto out;
    }
    const struct member *prim = cp->primary;
    const struct member *prim_after = prim; /* the primary once the roll is done */
    size_t from = cp->nm;

    /* 1. scale in and failed replicas out, one at a time */
    plan_removals(cp, d->instances, &tail);

    /* 2. parameters, written everywhere; reloadable ones take effect now */
    if (param_changes(cp, &pc, &npc) != 0) {
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    bool restart_all = false;
    for (size_t i = 0; i < npc; i++) {
        if (!pc[i].restart)
            continue;
        restart_all = true;
        buf_printf(&restart_names, "%s%s", restart_names.len ? ", " : "", pc[i].name);
    }
    if (npc) {
        struct buf target = BUF_INIT;
        int rc = params_canon(&target, d) | describe_params(&b, pc, npc);
        if (rc) {
            buf_release(&target);
            cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
        size_t idx = act(cp, PLAN_CONFIGURE_PARAMETERS, "", PLAN_CHANGE_CHANGE,
                         target.data ? target.data : "", "%s", b.data);
        buf_release(&target);
        deps(cp, idx, &tail);
        waits_healthy(cp, idx, "primary", prim,
                      restart_all ? "restart-only values wait in the configuration for the "
                                    "rolling restart below"
                                  : NULL);
        tail.n = 0;
        idx_add(&tail, idx);
    }

    /* 3. storage that only grows: in place, no restart, in parallel */
    struct needs need[RV_PLAN_CLUSTER_MEMBERS_MAX];
    for (size_t i = 0; i < cp->nm; i++) {
        const struct member *m = &cp->m[i];
        memset(&need[i], 0, sizeof(need[i]));
        if (m->removed || m->rep == NULL)
            continue;
        node_needs(cp, m, &need[i]);
        if (need[i].grow && !need[i].resize) {
            char target[64];
            snprintf(target, sizeof(target), "storage=%" PRId64, d->resources.storage_gib);
            size_t idx =
                act(cp, PLAN_RESIZE, m->name, PLAN_CHANGE_CHANGE, target,
                    "storageGiB %" PRId64 " → %" PRId64 ": the volume grows in place, no restart",
                    m->rep->resources.storage_gib, d->resources.storage_gib);
            deps(cp, idx, &tail);
            waits(cp, idx, "the provider can grow the volume of '%s' online", m->name);
        }
    }

    /* 4. rolling changes: replicas one at a time, a switchover to the
     * healthiest replica, then the old primary. A lowered PostgreSQL setting
     * that standbys must keep at least as high as the primary's turns the
     * order around: the primary restarts first, in place. */
    const char *lowered = lowered_standby_param(pc, npc, d->engine);
    size_t pi = (size_t)(prim - cp->m);
    const struct needs *pn = &need[pi];
    bool rebuild = false;
    for (size_t i = 0; i < cp->nm; i++)
        rebuild |= !cp->m[i].removed && (need[i].upgrade || need[i].resize);
    if (lowered && rebuild) {
        cluster_reset(cp);
        buf_clear(&why);
        buf_printf(&why,
                   "lowering %s needs the primary restarted first, an upgrade or resize needs "
                   "replicas first; change one in this commit and the other in the next",
                   lowered);
        plan_blocked(cp, why.data ? why.data : "conflicting rolling changes");
        goto out;
    }
    size_t total = 0, best = SIZE_MAX;
    for (size_t i = 0; i < cp->nm; i++) {
        const struct member *m = &cp->m[i];
        if (m->removed || m->rep == NULL || m->primary)
            continue;
        total++;
        if (best == SIZE_MAX ||
            cmp_removal(&(const struct member *){&cp->m[best]}, &(const struct member *){m}) < 0)
            best = i;
    }
    size_t ri = SIZE_MAX, nth = 0;
    const struct member *prev_m = NULL;
    char pos[160];
    if (lowered && pn->restart) {
        buf_clear(&wait);
        describe_healthy(&wait, "primary", prim);
        snprintf(pos, sizeof(pos),
                 "primary first: standbys need %s at least as high as the "
                 "primary's",
                 lowered);
        size_t first_step = cp->plan->nactions;
        ri = roll_node(cp, prim, pn, true, SIZE_MAX, wait.data ? wait.data : "", pos,
                       restart_names.data);
        if (ri != SIZE_MAX)
            deps(cp, first_step, &tail);
        prev_m = prim;
    }
    for (size_t i = 0; i < cp->nm && cp->rc == 0; i++) {
        const struct member *m = &cp->m[i];
        if (m->removed || m->rep == NULL || m->primary)
            continue;
        nth++;
        const struct needs *nd = &need[i];
        if (!nd->upgrade && !nd->resize && !nd->restart)
            continue;
        buf_clear(&wait);
        if (prev_m == prim)
            buf_printf(&wait, "primary '%s' healthy after its restart", prim->name);
        else if (prev_m)
            buf_printf(&wait, "replica '%s' healthy and caught up", prev_m->name);
        else
            describe_healthy(&wait, "primary", prim);
        snprintf(pos, sizeof(pos), "replica %zu of %zu", nth, total);
        size_t first_step = cp->plan->nactions;
        size_t last =
            roll_node(cp, m, nd, false, ri, wait.data ? wait.data : "", pos, restart_names.data);
        if (cp->rc)
            goto out;
        if (ri == SIZE_MAX && last != SIZE_MAX)
            deps(cp, first_step, &tail);
        ri = last;
        prev_m = m;
    }
    if (cp->rc == 0 && !lowered && (pn->upgrade || pn->resize || pn->restart)) {
        size_t before = ri;
        buf_clear(&wait);
        if (total > 0) {
            const struct member *t = &cp->m[best];
            char target[256];
            snprintf(target, sizeof(target), "from=%s;to=%s;version=%s", prim->name, t->name,
                     d->version);
            size_t sw = act(cp, PLAN_SWITCHOVER, t->name, PLAN_CHANGE_CHANGE, target,
                            "move the primary from '%s' to '%s' so '%s' can be %s", prim->name,
                            t->name, prim->name,
                            pn->upgrade  ? "upgraded"
                            : pn->resize ? "resized"
                                         : "restarted");
            if (before == SIZE_MAX)
                deps(cp, sw, &tail);
            dep(cp, sw, before);
            if (d->replication.max_lag_on_failover_bytes > 0)
                buf_printf(&wait,
                           "replica '%s' healthy and caught up (lag at most %" PRId64 " bytes)",
                           t->name, d->replication.max_lag_on_failover_bytes);
            else
                buf_printf(&wait, "replica '%s' healthy and caught up", t->name);
            waits(cp, sw, "%s", wait.data ? wait.data : "");
            before = sw;
            prim_after = t;
            buf_clear(&wait);
            buf_printf(&wait, "switchover to '%s' done; '%s' runs as a replica", t->name,
                       prim->name);
            snprintf(pos, sizeof(pos), "old primary, last");
        } else {
            describe_healthy(&wait, "primary", prim);
            snprintf(pos, sizeof(pos), "single instance, so the cluster is down meanwhile");
        }
        size_t first_step = cp->plan->nactions;
        size_t last = roll_node(cp, prim, pn, true, before, wait.data ? wait.data : "", pos,
                                restart_names.data);
        if (before == SIZE_MAX && last != SIZE_MAX)
            deps(cp, first_step, &tail);
        ri = last;
    }
    if (ri != SIZE_MAX) {
        tail.n = 0;
        idx_add(&tail, ri);
    }

    /* 5. scale out: new instances now, replicas after the rolling changes */
    struct idxset after = tail;
    size_t kept = 0, replicas_kept = 0;
    for (size_t i = 0; i < cp->nm; i++) {
        kept += !cp->m[i].removed;
        replicas_kept += !cp->m[i].removed && !cp->m[i].primary && cp->m[i].rep;
    }
    size_t want = (size_t)d->instances;
    size_t nnew = kept < want ? pick_new_nodes(cp, want - kept, nn) : 0;
    struct buf rt = BUF_INIT;
    if (replica_target(&rt, d) != 0) {
        buf_release(&rt);
        cp->rc = rv_error_set(cp->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    size_t nth_replica = replicas_kept, replicas = want - 1;
    bool added = false;
    for (size_t i = 0; i < cp->nm && cp->rc == 0; i++) {
        const struct member *m = &cp->m[i];
        if (m->removed || m->rep != NULL)
            continue;
        size_t ai = act(cp, PLAN_ADD_REPLICA, m->name, PLAN_CHANGE_ADD, rt.data ? rt.data : "",
                        "instance '%s' exists but has not joined: replica %zu of %zu", m->name,
                        ++nth_replica, replicas);
        deps(cp, ai, &tail);
        char also[160];
        snprintf(also, sizeof(also), "instance '%s' running", m->name);
        waits_healthy(cp, ai, "primary", prim_after, also);
        if (!added)
            after.n = 0;
        added = true;
        idx_add(&after, ai);
    }
    for (size_t i = 0; i < nnew && cp->rc == 0; i++) {
        provision(cp, &nn[i], kept + i + 1, from);
        size_t ai = act(cp, PLAN_ADD_REPLICA, nn[i].name, PLAN_CHANGE_ADD, rt.data ? rt.data : "",
                        "instances %zu → %d: replica %zu of %zu", from, d->instances, ++nth_replica,
                        replicas);
        dep(cp, ai, nn[i].provision);
        deps(cp, ai, &tail);
        waits_healthy(cp, ai, "primary", prim_after, NULL);
        if (!added)
            after.n = 0;
        added = true;
        idx_add(&after, ai);
    }
    buf_release(&rt);

    /* 6. users and backups, 7. ready */
    plan_users(cp, &after, prim_after, PLAN_CHANGE_CHANGE);
    plan_backup(cp, &after, prim_after);
    if (cp->rc == 0)
        plan_ready(cp, d->digest);
out:
    free(pc);
    buf_release(&why);
    buf_release(&b);
    buf_release(&restart_names);
    buf_release(&wait);
}

static void plan_cluster(struct cplan *cp)
{
    qsort(cp->m, cp->nm, sizeof(cp->m[0]), cmp_member);
    for (size_t i = 0; i < cp->nm; i++)
        cp->m[i].stale = cp->m[i].rep && observed_node_is_stale(cp->m[i].rep, cp->opts->now);
    cp->fresh = cp->nm == 0 && cp->facts == NULL;
    if (cp->d == NULL) {
        plan_deleted(cp);
        return;
    }
    bool bootstrapped = false;
    for (size_t i = 0; i < cp->nm; i++) {
        const struct obs_node *r = cp->m[i].rep;
        if (r && (r->role == OBS_ROLE_PRIMARY || r->role == OBS_ROLE_REPLICA))
            bootstrapped = true;
    }
    if (!bootstrapped) {
        cp->fresh = true; /* nothing to diff against: users and backups are new too */
        plan_new(cp);
    } else {
        plan_running(cp);
    }
}

/* ---- the fleet ------------------------------------------------------------- */

struct ckey {
    const char *ns;
    const char *name;
};

static int cmp_ckey(const void *pa, const void *pb)
{
    const struct ckey *a = pa, *b = pb;
    int c = strcmp(a->ns, b->ns);
    return c ? c : strcmp(a->name, b->name);
}

static int cmp_spec_ptr(const void *pa, const void *pb)
{
    const struct spec_cluster *a = *(const struct spec_cluster *const *)pa;
    const struct spec_cluster *b = *(const struct spec_cluster *const *)pb;
    int c = strcmp(a->namespace_, b->namespace_);
    return c ? c : strcmp(a->name, b->name);
}

static int key_cmp(const struct ckey *k, const char *ns, const char *name)
{
    int c = strcmp(k->ns, ns);
    return c ? c : strcmp(k->name, name);
}

static const struct spec_cluster **sorted_specs(const struct spec_set *set, size_t *n)
{
    *n = set ? set->nclusters : 0;
    const struct spec_cluster **v = calloc(*n ? *n : 1, sizeof(*v));
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < *n; i++)
        v[i] = set->clusters[i];
    if (*n > 1)
        qsort(v, *n, sizeof(*v), cmp_spec_ptr);
    return v;
}

static int cmp_inst_ptr(const void *pa, const void *pb)
{
    const struct obs_instance *a = *(const struct obs_instance *const *)pa;
    const struct obs_instance *b = *(const struct obs_instance *const *)pb;
    int c = strcmp(a->namespace_, b->namespace_);
    if (c == 0)
        c = strcmp(a->cluster, b->cluster);
    if (c == 0)
        c = strcmp(a->node, b->node);
    if (c == 0)
        c = strcmp(a->provider, b->provider);
    return c ? c : strcmp(a->id, b->id);
}

static int cmp_node_ptr(const void *pa, const void *pb)
{
    const struct obs_node *a = *(const struct obs_node *const *)pa;
    const struct obs_node *b = *(const struct obs_node *const *)pb;
    int c = strcmp(a->namespace_, b->namespace_);
    if (c == 0)
        c = strcmp(a->cluster, b->cluster);
    return c ? c : strcmp(a->node, b->node);
}

static int cmp_fact_ptr(const void *pa, const void *pb)
{
    const struct obs_cluster *a = *(const struct obs_cluster *const *)pa;
    const struct obs_cluster *b = *(const struct obs_cluster *const *)pb;
    int c = strcmp(a->namespace_, b->namespace_);
    return c ? c : strcmp(a->name, b->name);
}

static int validate_spec(const struct spec_cluster *d, struct rv_error *err)
{
    if (d->name == NULL || d->namespace_ == NULL || d->engine == NULL || d->version == NULL ||
        d->provider == NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "desired cluster '%s/%s' lacks a name, namespace, engine, "
                            "version or provider; run 'reeve validate'",
                            d->namespace_ ? d->namespace_ : "?", d->name ? d->name : "?");
    if (strlen(d->name) > RV_NAME_MAX || strlen(d->namespace_) > RV_NAME_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "desired cluster '%s/%s': names are at most %d characters",
                            d->namespace_, d->name, RV_NAME_MAX);
    if (d->instances < 1 || d->instances > RV_PLAN_CLUSTER_MEMBERS_MAX / 2)
        return rv_error_set(err, RV_EINVAL, false,
                            "desired cluster '%s/%s': spec.instances must be between 1 and %d "
                            "(got %d); run 'reeve validate'",
                            d->namespace_, d->name, RV_PLAN_CLUSTER_MEMBERS_MAX / 2, d->instances);
    return 0;
}

static void summarise(struct plan *p)
{
    memset(&p->summary, 0, sizeof(p->summary));
    for (size_t i = 0; i < p->nactions; i++) {
        const struct plan_action *a = &p->actions[i];
        p->summary.add += a->change == PLAN_CHANGE_ADD;
        p->summary.change += a->change == PLAN_CHANGE_CHANGE;
        p->summary.destroy += a->change == PLAN_CHANGE_DESTROY;
        p->summary.blocked += a->blocked != NULL;
    }
}

static int cmp_str_ptr(const void *pa, const void *pb)
{
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

/* Invariants every plan holds: ids unique, dependencies point backwards. */
static int check_plan(const struct plan *p, struct rv_error *err)
{
    char **ids = NULL;
    int rc = 0;
    if (p->nactions == 0)
        return 0;
    ids = calloc(p->nactions, sizeof(*ids));
    if (ids == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    for (size_t i = 0; i < p->nactions; i++) {
        ids[i] = p->actions[i].id;
        for (size_t j = 0; j < p->actions[i].ndeps; j++) {
            if (p->actions[i].deps[j] >= i)
                rc = rv_error_set(err, RV_EINTERNAL, false,
                                  "planner: action '%s' depends on a later action",
                                  p->actions[i].id);
        }
    }
    qsort(ids, p->nactions, sizeof(*ids), cmp_str_ptr);
    for (size_t i = 1; i < p->nactions && rc == 0; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0)
            rc = rv_error_set(err, RV_EINTERNAL, false, "planner: action id '%s' is not unique",
                              ids[i]);
    }
    free(ids);
    return rc;
}

static char *dup_opt(const char *s, int *rc)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *rc = RV_ENOMEM;
    return d;
}

/* Disruptive actions of a cluster whose maintenance window is closed at
 * opts->now say so in waits_for; the executor holds them (window.h). */
static void window_annotate(struct cplan *cp)
{
    struct window w;
    struct rv_error werr = {0};
    char in[32];
    if (cp->d == NULL || cp->d->maintenance.window == NULL ||
        window_parse(&w, cp->d->maintenance.window, &werr) != 0 ||
        window_is_open(&w, cp->opts->now))
        return;
    window_duration(in, sizeof(in), window_next_open(&w, cp->opts->now) - cp->opts->now);
    for (size_t i = cp->first; i < cp->plan->nactions && cp->rc == 0; i++) {
        const struct plan_action *a = &cp->plan->actions[i];
        if (!window_kind_disruptive(plan_kind_name(a->kind)))
            continue;
        waits(cp, i, "%s%swaiting for maintenance window %s (opens in %s)", a->waits_for,
              a->waits_for[0] ? "; " : "", w.text, in);
    }
}

int plan_build(struct plan *out, const struct spec_set *desired, const struct observed *obs,
               const struct plan_opts *opts, struct rv_error *err)
{
    static const struct observed none;
    static const struct plan_opts no_opts;
    const struct spec_cluster **ds = NULL, **ps = NULL;
    const struct obs_instance **is = NULL;
    const struct obs_node **ns = NULL;
    const struct obs_cluster **fs = NULL;
    struct ckey *keys = NULL;
    struct cplan *cp = NULL;
    size_t nd = 0, np = 0, nkeys = 0;
    int rc = 0;

    plan_init(out);
    if (obs == NULL)
        obs = &none;
    if (opts == NULL)
        opts = &no_opts;
    out->base = dup_opt(opts->base, &rc);
    out->head = dup_opt(opts->head, &rc);
    out->observed_revision = dup_opt(opts->observed_revision, &rc);
    ds = sorted_specs(desired, &nd);
    ps = sorted_specs(opts->previous, &np);
    is = calloc(obs->ninstances + 1, sizeof(*is));
    ns = calloc(obs->nnodes + 1, sizeof(*ns));
    fs = calloc(obs->nclusters + 1, sizeof(*fs));
    keys = calloc(nd + obs->ninstances + obs->nnodes + obs->nclusters + 1, sizeof(*keys));
    cp = calloc(1, sizeof(*cp));
    if (rc || !ds || !ps || !is || !ns || !fs || !keys || !cp) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }

    for (size_t i = 0; i < nd; i++) {
        rc = validate_spec(ds[i], err);
        if (rc)
            goto out;
        if (i > 0 && cmp_spec_ptr(&ds[i - 1], &ds[i]) == 0) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "cluster '%s/%s' is declared twice in the desired state; run "
                              "'reeve validate'",
                              ds[i]->namespace_, ds[i]->name);
            goto out;
        }
        keys[nkeys++] = (struct ckey){ds[i]->namespace_, ds[i]->name};
    }
    for (size_t i = 0; i < obs->ninstances; i++) {
        is[i] = &obs->instances[i];
        keys[nkeys++] = (struct ckey){is[i]->namespace_, is[i]->cluster};
    }
    for (size_t i = 0; i < obs->nnodes; i++) {
        ns[i] = &obs->nodes[i];
        keys[nkeys++] = (struct ckey){ns[i]->namespace_, ns[i]->cluster};
    }
    for (size_t i = 0; i < obs->nclusters; i++) {
        fs[i] = &obs->clusters[i];
        keys[nkeys++] = (struct ckey){fs[i]->namespace_, fs[i]->name};
    }
    if (obs->ninstances > 1)
        qsort(is, obs->ninstances, sizeof(*is), cmp_inst_ptr);
    if (obs->nnodes > 1)
        qsort(ns, obs->nnodes, sizeof(*ns), cmp_node_ptr);
    if (obs->nclusters > 1)
        qsort(fs, obs->nclusters, sizeof(*fs), cmp_fact_ptr);
    if (nkeys > 1)
        qsort(keys, nkeys, sizeof(*keys), cmp_ckey);

    size_t di = 0, pi = 0, ii = 0, ni = 0, fi = 0;
    for (size_t k = 0; k < nkeys; k++) {
        if (k > 0 && cmp_ckey(&keys[k - 1], &keys[k]) == 0)
            continue;
        const struct ckey *key = &keys[k];
        memset(cp, 0, sizeof(*cp));
        cp->plan = out;
        cp->err = err;
        cp->opts = opts;
        cp->ns = key->ns;
        cp->name = key->name;
        cp->first = out->nactions;
        if (strlen(key->ns) > RV_NAME_MAX || strlen(key->name) > RV_NAME_MAX) {
            rc = rv_error_set(err, RV_EINVAL, false, "cluster name '%s/%s' is too long", key->ns,
                              key->name);
            goto out;
        }
        snprintf(cp->key, sizeof(cp->key), "%s/%s", key->ns, key->name);

        while (di < nd && key_cmp(key, ds[di]->namespace_, ds[di]->name) > 0)
            di++;
        if (di < nd && key_cmp(key, ds[di]->namespace_, ds[di]->name) == 0)
            cp->d = ds[di];
        while (pi < np && key_cmp(key, ps[pi]->namespace_, ps[pi]->name) > 0)
            pi++;
        if (pi < np && key_cmp(key, ps[pi]->namespace_, ps[pi]->name) == 0)
            cp->prev = ps[pi];
        while (fi < obs->nclusters && key_cmp(key, fs[fi]->namespace_, fs[fi]->name) > 0)
            fi++;
        if (fi < obs->nclusters && key_cmp(key, fs[fi]->namespace_, fs[fi]->name) == 0)
            cp->facts = fs[fi];
        while (ii < obs->ninstances && key_cmp(key, is[ii]->namespace_, is[ii]->cluster) > 0)
            ii++;
        for (; ii < obs->ninstances && key_cmp(key, is[ii]->namespace_, is[ii]->cluster) == 0;
             ii++) {
            struct member *m = member_get(cp, is[ii]->node);
            if (m == NULL)
                break;
            if (m->inst == NULL)
                m->inst = is[ii];
        }
        while (ni < obs->nnodes && key_cmp(key, ns[ni]->namespace_, ns[ni]->cluster) > 0)
            ni++;
        for (; ni < obs->nnodes && key_cmp(key, ns[ni]->namespace_, ns[ni]->cluster) == 0; ni++) {
            struct member *m = member_get(cp, ns[ni]->node);
            if (m == NULL)
                break;
            if (m->rep == NULL)
                m->rep = ns[ni];
        }
        if (cp->rc == 0)
            plan_cluster(cp);
        if (cp->rc == 0)
            window_annotate(cp);
        if (cp->rc) {
            rc = cp->rc;
            goto out;
        }
    }
    summarise(out);
    rc = check_plan(out, err);
out:
    free(ds);
    free(ps);
    free(is);
    free(ns);
    free(fs);
    free(keys);
    free(cp);
    if (rc) {
        plan_release(out);
        if (rc == RV_ENOMEM && err && err->code != RV_ENOMEM)
            rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    return rc;
}

/* ---- output ---------------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *plan_to_json(const struct plan *p)
{
    json_t *root = json_object();
    json_t *summary = json_object();
    json_t *actions = json_array();
    int bad = root == NULL || summary == NULL || actions == NULL;

    bad |= json_object_set_new(root, "base", str_or_null(p->base));
    bad |= json_object_set_new(root, "head", str_or_null(p->head));
    bad |= json_object_set_new(root, "observed_revision", str_or_null(p->observed_revision));
    bad |= json_object_set_new(summary, "add", json_integer((json_int_t)p->summary.add));
    bad |= json_object_set_new(summary, "change", json_integer((json_int_t)p->summary.change));
    bad |= json_object_set_new(summary, "destroy", json_integer((json_int_t)p->summary.destroy));
    bad |= json_object_set_new(summary, "blocked", json_integer((json_int_t)p->summary.blocked));
    bad |= json_object_set(root, "summary", summary);
    for (size_t i = 0; i < p->nactions && !bad; i++) {
        const struct plan_action *a = &p->actions[i];
        json_t *o = json_object();
        json_t *dl = json_array();
        bad |= o == NULL || dl == NULL;
        for (size_t j = 0; j < a->ndeps && !bad; j++)
            bad |= json_array_append_new(dl, json_string(p->actions[a->deps[j]].id));
        bad |= json_object_set_new(o, "id", json_string(a->id));
        bad |= json_object_set_new(o, "kind", json_string(plan_kind_name(a->kind)));
        bad |= json_object_set_new(o, "cluster", json_string(a->cluster));
        bad |= json_object_set_new(o, "node", json_string(a->node));
        bad |= json_object_set(o, "depends_on", dl);
        bad |= json_object_set_new(o, "reason", json_string(a->reason));
        bad |= json_object_set_new(o, "waits_for", json_string(a->waits_for));
        bad |= json_object_set_new(o, "blocked", str_or_null(a->blocked));
        bad |= json_object_set_new(o, "idempotency_key", json_string(a->idempotency_key));
        bad |= json_object_set_new(o, "change", json_string(plan_change_name(a->change)));
        bad |= json_array_append(actions, o);
        json_decref(dl);
        json_decref(o);
    }
    bad |= json_object_set(root, "actions", actions);
    json_decref(summary);
    json_decref(actions);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

static const char *change_sign(enum plan_change c)
{
    switch (c) {
    case PLAN_CHANGE_ADD:
        return "+";
    case PLAN_CHANGE_CHANGE:
        return "~";
    case PLAN_CHANGE_DESTROY:
        return "-";
    case PLAN_CHANGE_NONE:
        break;
    }
    return "=";
}

static const char *change_color(enum plan_change c)
{
    switch (c) {
    case PLAN_CHANGE_ADD:
        return "\033[32m";
    case PLAN_CHANGE_CHANGE:
        return "\033[33m";
    case PLAN_CHANGE_DESTROY:
        return "\033[31m";
    case PLAN_CHANGE_NONE:
        break;
    }
    return "";
}

int plan_print_text(FILE *out, const struct plan *p, bool color)
{
    const char *reset = color ? "\033[0m" : "";
    const char *bold = color ? "\033[1m" : "";
    const char *red = color ? "\033[1;31m" : "";

    if (p->base || p->head || p->observed_revision) {
        fprintf(out, "%splanned against%s\n", bold, reset);
        if (p->base)
            fprintf(out, "  base:     %s\n", p->base);
        if (p->head)
            fprintf(out, "  head:     %s\n", p->head);
        if (p->observed_revision)
            fprintf(out, "  observed: %s\n", p->observed_revision);
        fputc('\n', out);
    }
    if (p->nactions == 0) {
        fputs("No changes. The observed state matches the desired state.\n", out);
        return ferror(out) ? RV_EIO : 0;
    }
    fputs("Actions are shown with these symbols:\n"
          "  + add   ~ change   - destroy   = no change (a step or marker)\n",
          out);
    const char *cluster = NULL;
    for (size_t i = 0; i < p->nactions; i++) {
        const struct plan_action *a = &p->actions[i];
        if (cluster == NULL || strcmp(cluster, a->cluster) != 0) {
            cluster = a->cluster;
            fprintf(out, "\n%s%s%s\n", bold, cluster, reset);
        }
        fprintf(out, "  %s%s%s %s%s%s (%s)\n", color ? change_color(a->change) : "",
                change_sign(a->change), reset, plan_kind_name(a->kind), a->node[0] ? " " : "",
                a->node, a->reason);
        if (a->ndeps) {
            fputs("      after: ", out);
            for (size_t j = 0; j < a->ndeps; j++) {
                const struct plan_action *d = &p->actions[a->deps[j]];
                fprintf(out, "%s%s%s%s", j ? ", " : "", plan_kind_name(d->kind),
                        d->node[0] ? " " : "", d->node);
            }
            fputc('\n', out);
        }
        if (a->waits_for[0])
            fprintf(out, "      waits for: %s\n", a->waits_for);
        if (a->blocked)
            fprintf(out, "      %s! blocked: %s%s\n", red, a->blocked, reset);
    }
    fputc('\n', out);
    if (p->summary.blocked)
        fprintf(out, "%s%zu action%s blocked; see the '! blocked' lines above.%s\n", red,
                p->summary.blocked, p->summary.blocked == 1 ? " is" : "s are", reset);
    fprintf(out, "%sPlan:%s %zu to add, %zu to change, %zu to destroy.\n", bold, reset,
            p->summary.add, p->summary.change, p->summary.destroy);
    return ferror(out) ? RV_EIO : 0;
}

/* ---- observed state as a spec set describes it -------------------------- */

static json_t *assumed_cluster_nodes(const struct spec_cluster *d, const char *now,
                                     json_t *instances, json_t *nodes)
{
    int bad = 0;
    json_t *ref = json_sprintf("%s/%s", d->namespace_, d->name);
    if (ref == NULL)
        return NULL;
    for (int i = 0; i < d->instances && !bad; i++) {
        char node[RV_OBSERVED_NODE_NAME_MAX + 1];
        snprintf(node, sizeof(node), "%s-%d", d->name, i);
        json_t *params = json_object();
        bad |= params == NULL;
        for (size_t k = 0; k < d->nparameters && !bad; k++)
            bad |= json_object_set_new(params, d->parameters[k].key,
                                       json_string(d->parameters[k].value));
        json_t *in =
            json_pack("{s:s, s:s+++++, s:O, s:s, s:s, s:{s:O}, s:s}", "provider", d->provider, "id",
                      "assumed:", d->namespace_, "/", d->name, "/", node, "cluster", ref, "node",
                      node, "address", "", "labels", "reeve.dev/cluster", ref, "state", "running");
        json_t *n =
            json_pack("{s:O, s:s, s:s, s:s, s:s, s:b, s:i, s:s, s:O, "
                      "s:{s:f, s:I, s:I}, s:s}",
                      "cluster", ref, "node", node, "role", i == 0 ? "primary" : "replica",
                      "engine", d->engine, "version", d->version, "healthy", 1, "lagBytes", 0,
                      "position", "", "parameters", params ? params : ref, "resources", "cpu",
                      d->resources.cpu, "memoryMiB", (json_int_t)d->resources.memory_mib,
                      "storageGiB", (json_int_t)d->resources.storage_gib, "lastReport", now);
        json_decref(params);
        bad |= json_array_append_new(instances, in);
        bad |= json_array_append_new(nodes, n);
    }
    if (bad) {
        json_decref(ref);
        return NULL;
    }
    return ref;
}

int plan_assume_applied(struct observed *out, const struct spec_set *set, int64_t now,
                        struct rv_error *err)
{
    char when[OBSERVED_TIME_LEN];
    json_t *root = NULL, *instances = json_array(), *nodes = json_array(), *clusters = json_array();
    int rc = 0;

    observed_release(out);
    if (instances == NULL || nodes == NULL || clusters == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    observed_time_format(when, now);
    for (size_t i = 0; set && i < set->nclusters; i++) {
        const struct spec_cluster *d = set->clusters[i];
        rc = validate_spec(d, err);
        if (rc)
            goto out;
        json_t *ref = assumed_cluster_nodes(d, when, instances, nodes);
        if (ref == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
        char digest[65];
        plan_backup_digest(digest, d);
        json_t *users = json_array();
        int bad = users == NULL;
        for (size_t u = 0; u < d->nusers && !bad; u++)
            bad |= json_array_append_new(users, json_string(d->users[u].name));
        json_t *c = json_pack("{s:o, s:o, s:o, s:n, s:b}", "cluster", ref, "users",
                              users ? users : json_array(), "backupDigest",
                              digest[0] ? json_string(digest) : json_null(), "lastBackup",
                              "deletionProtection", d->deletion_protection ? 1 : 0);
        if (bad || json_array_append_new(clusters, c) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
    }
    root =
        json_pack("{s:O, s:O, s:O}", "instances", instances, "nodes", nodes, "clusters", clusters);
    if (root == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = observed_from_json(out, root, "desired state taken as applied", err);
out:
    json_decref(root);
    json_decref(instances);
    json_decref(nodes);
    json_decref(clusters);
    return rc;
}
