/* policy.c - per-namespace Policy documents and their evaluation.
 *
 * A policy limits what clusters of its namespaces may ask for: engines and
 * versions, providers, regions, instance counts, resource maxima, and it can
 * require backups, point-in-time recovery, deletion protection and backup
 * encryption. Every broken rule is an error at the cluster's offending field
 * that names the policy and where it is defined.
 */
#include "policy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "limits.h"

static const struct doc_node *get(const struct doc_node *map, const char *key)
{
    if (map == NULL || map->kind != DOC_MAP)
        return NULL;
    return doc_map_get(map, key);
}

static int64_t get_int(const struct doc_node *map, const char *key)
{
    const struct doc_node *n = get(map, key);
    if (n && n->kind == DOC_INT)
        return n->u.i;
    if (n && n->kind == DOC_FLOAT && isfinite(n->u.f) && n->u.f >= 0 && n->u.f < 9e18)
        return (int64_t)n->u.f;
    return 0;
}

static bool get_bool(const struct doc_node *map, const char *key)
{
    const struct doc_node *n = get(map, key);
    return n && n->kind == DOC_BOOL && n->u.b;
}

static int clamp_int(int64_t v)
{
    if (v < 0)
        return 0;
    return v > 1000000 ? 1000000 : (int)v;
}

int policy_from_doc(struct spec_policy **out, const struct doc_node *doc, const char *file,
                    struct diag_list *diags)
{
    const struct doc_node *meta = get(doc, "metadata");
    const struct doc_node *spec = get(doc, "spec");
    const struct doc_node *engines = get(spec, "engines");
    const struct doc_node *inst = get(spec, "instances");
    const struct doc_node *res = get(spec, "resources");
    const struct doc_node *req = get(spec, "require");
    const struct doc_node *name = get(meta, "name");
    struct spec_policy *p = calloc(1, sizeof(*p));
    size_t nengines = (engines && engines->kind == DOC_SEQ) ? engines->u.seq.len : 0;
    int rc = RV_ENOMEM;

    *out = NULL;
    if (p == NULL)
        goto out;
    p->file = strdup(file);
    p->pos = spec_pos_of(doc);
    p->name = strdup((name && name->kind == DOC_STRING) ? name->u.str.s : "");
    p->name_pos = spec_pos_of(name);
    p->namespaces = spec_strv_from_seq(get(spec, "namespaces"), &p->nnamespaces);
    p->providers = spec_strv_from_seq(get(spec, "providers"), &p->nproviders);
    p->regions = spec_strv_from_seq(get(spec, "regions"), &p->nregions);
    p->engines = calloc(nengines ? nengines : 1, sizeof(*p->engines));
    if (!p->file || !p->name || !p->namespaces || !p->providers || !p->regions || !p->engines)
        goto out;
    for (size_t i = 0; i < nengines; i++) {
        const struct doc_node *e = engines->u.seq.items[i];
        const struct doc_node *en = get(e, "engine");
        struct spec_policy_engine *pe = &p->engines[p->nengines];
        if (en == NULL || en->kind != DOC_STRING)
            continue;
        p->nengines++;
        pe->engine = strdup(en->u.str.s);
        pe->versions = spec_strv_from_seq(get(e, "versions"), &pe->nversions);
        if (pe->engine == NULL || pe->versions == NULL)
            goto out;
    }
    p->instances_min = clamp_int(get_int(inst, "min"));
    p->instances_max = clamp_int(get_int(inst, "max"));
    {
        const struct doc_node *cpu = get(res, "maxCpu");
        if (cpu && cpu->kind == DOC_INT)
            p->cpu_max = (double)cpu->u.i;
        else if (cpu && cpu->kind == DOC_FLOAT && isfinite(cpu->u.f))
            p->cpu_max = cpu->u.f;
    }
    p->memory_mib_max = get_int(res, "maxMemoryMiB");
    p->storage_gib_max = get_int(res, "maxStorageGiB");
    p->require_backup = get_bool(req, "backup");
    p->require_pitr = get_bool(req, "pitr");
    p->require_deletion_protection = get_bool(req, "deletionProtection");
    p->require_encryption = get_bool(req, "encryption");

    if (p->instances_min > 0 && p->instances_max > 0 && p->instances_min > p->instances_max) {
        const struct doc_node *min = get(inst, "min");
        diag_add(diags, DIAG_ERROR, file, min ? min->line : 0, min ? min->col : 0,
                 "spec.instances.min",
                 "%d is above spec.instances.max (%d); no cluster could meet this policy",
                 p->instances_min, p->instances_max);
    }
    *out = p;
    p = NULL;
    rc = 0;
out:
    spec_policy_free(p);
    return rc;
}

bool policy_applies(const struct spec_policy *p, const char *namespace_)
{
    for (size_t i = 0; i < p->nnamespaces; i++) {
        if (strcmp(p->namespaces[i], "*") == 0 || strcmp(p->namespaces[i], namespace_) == 0)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------- evaluation */

struct eval {
    const struct spec_policy *p;
    const struct spec_cluster *c;
    struct diag_list *diags;
    char by[RV_ERROR_MSG_MAX / 2]; /* "policy 'x' (policies/x.yaml:1:1)" */
    size_t errors;
};

static void ev_error(struct eval *ev, struct spec_pos at, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void ev_error(struct eval *ev, struct spec_pos at, const char *field, const char *fmt, ...)
{
    char path[RV_FIELD_PATH_MAX];
    char msg[RV_ERROR_MSG_MAX];
    va_list ap;

    if (at.line == 0)
        at = ev->c->at.spec; /* not written: a default applies */
    snprintf(path, sizeof(path), "%s.%s", ev->c->field_prefix, field);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_add(ev->diags, DIAG_ERROR, ev->c->file, at.line, at.col, path, "%s", msg);
    ev->errors++;
}

static bool in_list(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++) {
        if (strcmp(v[i], s) == 0)
            return true;
    }
    return false;
}

/* "a, b, c" into out (cut at its size). */
static void join(char *out, size_t size, char *const *v, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 1 < size; i++) {
        int w = snprintf(out + used, size - used, "%s%s", i ? ", " : "", v[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static const char *dflt(struct spec_pos at)
{
    return at.line == 0 ? " (the default)" : "";
}

static void ev_engine(struct eval *ev)
{
    const struct spec_policy *p = ev->p;
    const struct spec_cluster *c = ev->c;
    char allowed[RV_ERROR_MSG_MAX / 2];
    const struct spec_policy_engine *match = NULL;

    if (p->nengines == 0)
        return;
    for (size_t i = 0; i < p->nengines && !match; i++) {
        if (c->engine && strcmp(p->engines[i].engine, c->engine) == 0)
            match = &p->engines[i];
    }
    if (match == NULL) {
        char *names[64];
        size_t n = 0;
        for (size_t i = 0; i < p->nengines && n < 64; i++)
            names[n++] = p->engines[i].engine;
        join(allowed, sizeof(allowed), names, n);
        ev_error(ev, c->at.engine, "engine", "engine '%s' is not allowed by %s; allowed: %s",
                 c->engine ? c->engine : "", ev->by, allowed);
        return;
    }
    if (match->nversions && !in_list(match->versions, match->nversions, c->version)) {
        join(allowed, sizeof(allowed), match->versions, match->nversions);
        ev_error(ev, c->at.version, "version", "%s version '%s' is not allowed by %s; allowed: %s",
                 c->engine, c->version ? c->version : "", ev->by, allowed);
    }
}

static void ev_placement(struct eval *ev)
{
    const struct spec_policy *p = ev->p;
    const struct spec_cluster *c = ev->c;
    char allowed[RV_ERROR_MSG_MAX / 2];

    if (p->nproviders && !in_list(p->providers, p->nproviders, c->provider)) {
        join(allowed, sizeof(allowed), p->providers, p->nproviders);
        ev_error(ev, c->at.provider, "provider", "provider '%s' is not allowed by %s; allowed: %s",
                 c->provider ? c->provider : "", ev->by, allowed);
    }
    if (p->nregions && !in_list(p->regions, p->nregions, c->region)) {
        join(allowed, sizeof(allowed), p->regions, p->nregions);
        if (c->region)
            ev_error(ev, c->at.region, "region", "region '%s' is not allowed by %s; allowed: %s",
                     c->region, ev->by, allowed);
        else
            ev_error(ev, c->at.region, "region",
                     "no region is set, and %s allows only: %s; set %s.region to one of them",
                     ev->by, allowed, c->field_prefix);
    }
}

static void ev_size(struct eval *ev)
{
    const struct spec_policy *p = ev->p;
    const struct spec_cluster *c = ev->c;
    int n = c->instances;

    if (p->instances_min > 0 && n < p->instances_min)
        ev_error(ev, c->at.instances, "instances",
                 "%d instance%s%s %s below the minimum of %d set by %s", n, n == 1 ? "" : "s",
                 dflt(c->at.instances), n == 1 ? "is" : "are", p->instances_min, ev->by);
    if (p->instances_max > 0 && n > p->instances_max)
        ev_error(ev, c->at.instances, "instances",
                 "%d instance%s%s %s above the maximum of %d set by %s", n, n == 1 ? "" : "s",
                 dflt(c->at.instances), n == 1 ? "is" : "are", p->instances_max, ev->by);
    if (p->cpu_max > 0 && c->resources.cpu > p->cpu_max)
        ev_error(ev, c->at.cpu, "resources.cpu", "%g CPU%s%s %s above the maximum of %g set by %s",
                 c->resources.cpu, c->resources.cpu == 1 ? "" : "s", dflt(c->at.cpu),
                 c->resources.cpu == 1 ? "is" : "are", p->cpu_max, ev->by);
    if (p->memory_mib_max > 0 && c->resources.memory_mib > p->memory_mib_max)
        ev_error(ev, c->at.memory_mib, "resources.memoryMiB",
                 "%lld MiB%s is above the maximum of %lld MiB set by %s",
                 (long long)c->resources.memory_mib, dflt(c->at.memory_mib),
                 (long long)p->memory_mib_max, ev->by);
    if (p->storage_gib_max > 0 && c->resources.storage_gib > p->storage_gib_max)
        ev_error(ev, c->at.storage_gib, "resources.storageGiB",
                 "%lld GiB%s is above the maximum of %lld GiB set by %s",
                 (long long)c->resources.storage_gib, dflt(c->at.storage_gib),
                 (long long)p->storage_gib_max, ev->by);
}

static void ev_require(struct eval *ev)
{
    const struct spec_policy *p = ev->p;
    const struct spec_cluster *c = ev->c;
    const char *pre = c->field_prefix;

    if (p->require_backup && !c->backup.enabled)
        ev_error(ev, c->at.backup, "backup",
                 "%s requires backups; add %s.backup with a schedule and a destination", ev->by,
                 pre);
    if (p->require_pitr && !c->pitr_enabled)
        ev_error(ev, c->at.pitr, "pitr.enabled",
                 "%s requires point-in-time recovery; set %s.pitr.enabled to true", ev->by, pre);
    if (p->require_deletion_protection && !c->deletion_protection)
        ev_error(ev, c->at.deletion_protection, "deletionProtection",
                 "%s requires deletion protection; set %s.deletionProtection to true", ev->by, pre);
    if (p->require_encryption && c->backup.enabled && !c->backup.encryption_key_ref)
        ev_error(ev, c->at.backup, "backup.encryption",
                 "%s requires encrypted backups; set %s.backup.encryption.keyRef", ev->by, pre);
}

size_t policy_check_cluster(const struct spec_policy *p, const struct spec_cluster *c,
                            struct diag_list *diags)
{
    struct eval ev = {p, c, diags, "", 0};

    snprintf(ev.by, sizeof(ev.by), "policy '%s' (%s:%u:%u)", p->name, p->file, p->pos.line,
             p->pos.col);
    ev_engine(&ev);
    ev_placement(&ev);
    ev_size(&ev);
    ev_require(&ev);
    return ev.errors;
}
