/* reconcile.c - one reconcile pass of `reeve serve` (see reconcile.h). */
#include "reconcile.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <git2.h>

#include "backups.h"
#include "buf.h"
#include "diag.h"
#include "executor.h"
#include "forge.h"
#include "journal.h"
#include "log.h"
#include "observed.h"
#include "pages.h"
#include "planner.h"
#include "runners.h"
#include "source.h"
#include "spec.h"
#include "store.h"
#include "window.h"

#define LOG_C "reconcile"
#define PULL_REF_PREFIX "refs/reeve/pull/"
#define HEX_SIZE (GIT_OID_HEXSZ + 1)

/* The spec set at one commit, kept in full: the main tip's. */
struct cache {
    bool loaded;
    git_oid commit;
    struct spec_set set;
    struct diag_list diags; /* file diagnostics (parse, schema) at commit */
};

/* The spec set at another commit, derived from the cache: pointers to the
 * cached clusters of unchanged files plus what overlay parsed. */
struct view {
    git_oid commit;
    struct spec_set set;     /* arrays owned here, elements borrowed */
    struct spec_set overlay; /* owns the clusters of changed files */
    struct diag_list diags;  /* file diagnostics at commit */
    struct source_file_list changed;
    bool full; /* everything was read again: set mirrors overlay */
};

struct pull {
    uint64_t number;
    git_oid head; /* last head reconciled; zero when none */
    enum reconcile_pr_state state;
};

struct reconcile {
    const struct config *cfg;
    char *public_url;
    char *db_path;
    char *mirror_dir;
    char main_ref[300];
    struct db *db;
    struct source *src;
    git_repository *mirror; /* a second handle, for listing pull request refs */
    bool have_forge;
    struct forge forge;
    struct outbox ob;
    struct cache cache;
    bool main_done_known;
    git_oid main_done;  /* the last main commit reconciled */
    struct pull *pulls; /* sorted by number */
    size_t npulls, cap;
    int64_t last_prune;
    char fetch_error[RV_ERROR_MSG_MAX]; /* the last fetch's failure, "" after a success */

    /* applying main (reconcile_apply_enable) */
    struct {
        bool on;
        struct runners *runners;
        struct executor *ex;
        int max_rounds;
        git_oid desired_commit; /* the cache commit the runners know */
        bool desired_known;
        git_oid paused_commit; /* the cache commit the pause files were read at */
        bool paused_known;
        char commit[HEX_SIZE]; /* main commit being applied; "" when none */
        int64_t apply_id;      /* its current round; 0 before the first */
        int rounds;
        bool settled;        /* the final status of commit is queued */
        int64_t not_before;  /* no planning before (Unix seconds) */
        int64_t observed_at; /* last provider listing (Unix seconds) */
    } ap;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *hex(char out[HEX_SIZE], const git_oid *id)
{
    git_oid_tostr(out, HEX_SIZE, id);
    return out;
}

static bool cancelled(const struct reconcile_input *in)
{
    return in->cancel != NULL && atomic_load(in->cancel);
}

/* --- spec sets built from borrowed pointers --- */

/* spec.c's arrays hold at least P(n) items, P(n) the smallest power of two
 * >= max(n, 4), so sets built here stay growable by spec_set_add_*. */
static void *alloc_array(size_t n, size_t elem)
{
    size_t cap = 4;
    while (cap < n)
        cap *= 2;
    return malloc(cap * elem);
}

static void cache_release(struct cache *c)
{
    spec_set_release(&c->set);
    diag_list_release(&c->diags);
    c->loaded = false;
}

static void view_init(struct view *v)
{
    memset(v, 0, sizeof(*v));
    spec_set_init(&v->set);
    spec_set_init(&v->overlay);
    diag_list_init(&v->diags);
    source_file_list_init(&v->changed);
}

static void view_release(struct view *v)
{
    free(v->set.clusters);
    free(v->set.policies);
    free(v->set.files);
    spec_set_release(&v->overlay);
    diag_list_release(&v->diags);
    source_file_list_release(&v->changed);
    view_init(v);
}

static int path_cmp(const void *key, const void *item)
{
    return strcmp(key, ((const struct source_file *)item)->path);
}

static bool changed(const struct view *v, const char *path)
{
    if (v->full)
        return true;
    return v->changed.len > 0 && bsearch(path, v->changed.items, v->changed.len,
                                         sizeof(*v->changed.items), path_cmp) != NULL;
}

static int copy_diag(struct diag_list *dst, const struct diag *d)
{
    return diag_add(dst, d->severity, d->file, d->line, d->col, d->path, "%s", d->msg);
}

static int copy_diags(struct diag_list *dst, const struct diag_list *src)
{
    for (size_t i = 0; i < src->len; i++)
        if (copy_diag(dst, &src->items[i]) != 0)
            return RV_ENOMEM;
    return 0;
}

/* v->set := cache entries not in changed files + overlay entries. */
static int view_compose(struct view *v, const struct cache *c)
{
    const struct spec_set *base = v->full ? NULL : &c->set;
    size_t nc = v->overlay.nclusters + (base ? base->nclusters : 0);
    size_t np = v->overlay.npolicies + (base ? base->npolicies : 0);
    size_t nf = v->overlay.nfiles + (base ? base->nfiles : 0);
    v->set.clusters = alloc_array(nc, sizeof(*v->set.clusters));
    v->set.policies = alloc_array(np, sizeof(*v->set.policies));
    v->set.files = alloc_array(nf, sizeof(*v->set.files));
    if (!v->set.clusters || !v->set.policies || !v->set.files)
        return RV_ENOMEM;
    for (size_t i = 0; base && i < base->nclusters; i++)
        if (!changed(v, base->clusters[i]->file))
            v->set.clusters[v->set.nclusters++] = base->clusters[i];
    for (size_t i = 0; base && i < base->npolicies; i++)
        if (!changed(v, base->policies[i]->file))
            v->set.policies[v->set.npolicies++] = base->policies[i];
    for (size_t i = 0; base && i < base->nfiles; i++)
        if (!changed(v, base->files[i]))
            v->set.files[v->set.nfiles++] = base->files[i];
    for (size_t i = 0; i < v->overlay.nclusters; i++)
        v->set.clusters[v->set.nclusters++] = v->overlay.clusters[i];
    for (size_t i = 0; i < v->overlay.npolicies; i++)
        v->set.policies[v->set.npolicies++] = v->overlay.policies[i];
    for (size_t i = 0; i < v->overlay.nfiles; i++)
        v->set.files[v->set.nfiles++] = v->overlay.files[i];
    for (size_t i = 0; base && i < c->diags.len; i++)
        if (!changed(v, c->diags.items[i].file) && copy_diag(&v->diags, &c->diags.items[i]) != 0)
            return RV_ENOMEM;
    return 0;
}

/* The spec set at commit, derived from the cache (which must be loaded). */
static int view_build(struct view *v, struct reconcile *r, const git_oid *commit,
                      struct rv_error *err)
{
    const struct cache *c = &r->cache;
    int rc;

    view_init(v);
    v->commit = *commit;
    if (git_oid_equal(commit, &c->commit))
        return view_compose(v, c) == 0 ? 0 : rv_error_set(err, RV_ENOMEM, false, "out of memory");
    rc = source_changed_files(r->src, &c->commit, commit, &v->changed, err);
    if (rc == RV_ELIMIT ||
        (rc == 0 && v->changed.len > 64 &&
         v->changed.len * 100 > c->set.nfiles * (size_t)RV_SERVE_RELOAD_PERCENT)) {
        /* A large change: reading everything is cheaper than patching. */
        v->full = true;
        rv_error_clear(err);
        rc = source_load_specs(r->src, commit, &v->overlay, &v->diags, err);
    } else if (rc == 0) {
        rc = source_update_specs(r->src, &v->overlay, &c->commit, commit, &v->diags, err);
    }
    if (rc == 0 && view_compose(v, c) != 0)
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    return rc;
}

/* Make v the cache: the cache's entries of changed files are freed, the
 * rest and the overlay's change hands. v is released. */
static void view_commit(struct cache *c, struct view *v)
{
    if (v->full) {
        spec_set_release(&c->set);
    } else {
        for (size_t i = 0; i < c->set.nclusters; i++)
            if (changed(v, c->set.clusters[i]->file))
                spec_cluster_free(c->set.clusters[i]);
        for (size_t i = 0; i < c->set.npolicies; i++)
            if (changed(v, c->set.policies[i]->file))
                spec_policy_free(c->set.policies[i]);
        for (size_t i = 0; i < c->set.nfiles; i++)
            if (changed(v, c->set.files[i]))
                free(c->set.files[i]);
        free(c->set.clusters);
        free(c->set.policies);
        free(c->set.files);
    }
    c->set = v->set;
    spec_set_init(&v->set);
    free(v->overlay.clusters);
    free(v->overlay.policies);
    free(v->overlay.files);
    spec_set_init(&v->overlay);
    diag_list_release(&c->diags);
    c->diags = v->diags;
    diag_list_init(&v->diags);
    c->commit = v->commit;
    c->loaded = true;
    view_release(v);
}

static int cache_load(struct reconcile *r, const git_oid *commit, struct rv_error *err)
{
    uint64_t t0 = now_ms();
    char h[HEX_SIZE];
    cache_release(&r->cache);
    spec_set_init(&r->cache.set);
    diag_list_init(&r->cache.diags);
    int rc = source_load_specs(r->src, commit, &r->cache.set, &r->cache.diags, err);
    if (rc != 0) {
        cache_release(&r->cache);
        return rc;
    }
    r->cache.commit = *commit;
    r->cache.loaded = true;
    log_info(LOG_C, "loaded %zu spec files (%zu clusters) at %.12s in %" PRIu64 " ms",
             r->cache.set.nfiles, r->cache.set.nclusters, hex(h, commit), now_ms() - t0);
    return 0;
}

/* --- planning only what differs --- */

static int cluster_key_cmp(const void *pa, const void *pb)
{
    const struct spec_cluster *a = *(const struct spec_cluster *const *)pa;
    const struct spec_cluster *b = *(const struct spec_cluster *const *)pb;
    int c = strcmp(a->namespace_, b->namespace_);
    return c ? c : strcmp(a->name, b->name);
}

static struct spec_cluster **sorted_clusters(const struct spec_set *s)
{
    size_t n = s ? s->nclusters : 0;
    struct spec_cluster **v = malloc((n + 1) * sizeof(*v));
    if (v == NULL)
        return NULL;
    if (n > 0) {
        memcpy(v, s->clusters, n * sizeof(*v));
        qsort(v, n, sizeof(*v), cluster_key_cmp);
    }
    return v;
}

/* Plan desired against previous assumed applied, like `reeve plan --base
 * --head`, planning only the clusters that differ between the two. previous
 * NULL: nothing was applied (no base). */
static int plan_changed(struct plan *out, const struct spec_set *desired,
                        const struct spec_set *previous, const char *base, const char *head,
                        struct rv_error *err)
{
    struct spec_cluster **d = sorted_clusters(desired), **p = sorted_clusters(previous);
    size_t nd = desired->nclusters, np = previous ? previous->nclusters : 0;
    struct spec_set dsub, psub;
    struct observed obs;
    struct buf rev = BUF_INIT;
    int64_t now = (int64_t)time(NULL);
    int rc = 0;

    spec_set_init(&dsub);
    spec_set_init(&psub);
    observed_init(&obs);
    plan_init(out);
    dsub.clusters = malloc((nd + 1) * sizeof(*dsub.clusters));
    psub.clusters = malloc((np + 1) * sizeof(*psub.clusters));
    if (!d || !p || !dsub.clusters || !psub.clusters) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0, j = 0; i < nd || j < np;) {
        const struct spec_cluster *key =
            i < nd && (j >= np || cluster_key_cmp(&d[i], &p[j]) <= 0) ? d[i] : p[j];
        size_t i2 = i, j2 = j;
        while (i2 < nd && cluster_key_cmp(&d[i2], &key) == 0)
            i2++;
        while (j2 < np && cluster_key_cmp(&p[j2], &key) == 0)
            j2++;
        bool same = i2 - i == 1 && j2 - j == 1 && strcmp(d[i]->digest, p[j]->digest) == 0;
        for (; i < i2; i++)
            if (!same)
                dsub.clusters[dsub.nclusters++] = d[i];
        for (; j < j2; j++)
            if (!same)
                psub.clusters[psub.nclusters++] = p[j];
    }
    if (previous != NULL) {
        rc = plan_assume_applied(&obs, &psub, now, err);
        if (rc != 0)
            goto out;
        if (buf_printf(&rev, "as-specified@%s", base ? base : "none") != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
    } else if (buf_puts(&rev, "none") != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    obs.revision = buf_detach(&rev);
    struct plan_opts opts = {
        .base = previous ? base : NULL,
        .head = head,
        .observed_revision = obs.revision,
        .now = now,
        .previous = previous ? &psub : NULL,
    };
    rc = plan_build(out, &dsub, &obs, &opts, err);
out:
    buf_release(&rev);
    observed_release(&obs);
    free(dsub.clusters);
    free(psub.clusters);
    free(d);
    free(p);
    return rc;
}

/* --- statuses --- */

static void plan_summary_text(char *out, size_t size, const struct plan *p)
{
    if (!plan_has_changes(p)) {
        snprintf(out, size, "No changes.");
        return;
    }
    int n = snprintf(out, size, "Plan: %zu to add, %zu to change, %zu to destroy.", p->summary.add,
                     p->summary.change, p->summary.destroy);
    if (p->summary.blocked && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, " %zu action%s blocked.", p->summary.blocked,
                 p->summary.blocked == 1 ? "" : "s");
}

/* "<first error, shortened> (+K more)" within RV_SERVE_STATUS_DESC_MAX
 * characters. */
static void invalid_text(char *out, size_t size, const struct diag_list *l)
{
    const struct diag *first = NULL;
    struct buf line = BUF_INIT;
    char suffix[48] = "";
    char *fit = NULL;
    for (size_t i = 0; i < l->len && first == NULL; i++)
        if (l->items[i].severity == DIAG_ERROR)
            first = &l->items[i];
    if (l->errors > 1)
        snprintf(suffix, sizeof(suffix), " (+%zu more)", l->errors - 1);
    if (first == NULL) {
        snprintf(out, size, "%zu errors", l->errors);
        return;
    }
    int rc = 0;
    if (first->file[0]) {
        rc |= buf_puts(&line, first->file);
        if (first->line)
            rc |= buf_printf(&line, ":%u", first->line);
        if (first->line && first->col)
            rc |= buf_printf(&line, ":%u", first->col);
        rc |= buf_puts(&line, ": ");
    }
    if (first->path[0])
        rc |= buf_printf(&line, "%s: ", first->path);
    rc |= buf_puts(&line, first->msg);
    size_t budget = RV_SERVE_STATUS_DESC_MAX - strlen(suffix);
    if (rc == 0 && forge_text_fit(&fit, line.data, budget) == 0)
        snprintf(out, size, "%s%s", fit, suffix);
    else
        snprintf(out, size, "specs are invalid%s", suffix);
    free(fit);
    buf_release(&line);
}

static void enqueue(struct reconcile *r, const char *sha, const char *context,
                    enum forge_state state, const char *description)
{
    struct rv_error err = {0};
    struct buf url = BUF_INIT;
    char *desc = NULL;
    if (!r->have_forge)
        return;
    if (buf_printf(&url, "%s/plans/%s", r->public_url, sha) != 0 ||
        forge_text_fit(&desc, description, RV_SERVE_STATUS_DESC_MAX) != 0) {
        log_error(LOG_C, "status %s on %.12s not queued: out of memory", context, sha);
        goto out;
    }
    struct forge_status st = {
        .repo = r->cfg->forge.repository,
        .sha = sha,
        .context = context,
        .state = state,
        .description = desc,
        .target_url = url.data,
    };
    if (outbox_enqueue(NULL, &r->ob, r->forge.name, &st, &err) != 0)
        log_error(LOG_C, "status %s on %.12s not queued: %s", context, sha, err.msg);
out:
    free(desc);
    buf_release(&url);
}

/* Time and log every post; the outbox records the outcome. */
static int post_logged(struct forge_result *out, const struct forge *f,
                       const struct forge_status *st, struct rv_error *err, void *ud)
{
    (void)ud;
    uint64_t t0 = now_ms();
    int rc = forge_post(out, f, st, err);
    uint64_t ms = now_ms() - t0;
    if (rc == 0)
        log_info("status", "%s %s on %.12s posted to %s '%s' in %" PRIu64 " ms: %s", st->context,
                 forge_state_name(st->state), st->sha, f->name, st->repo, ms,
                 st->description ? st->description : "");
    else
        log_debug("status", "%s %s on %.12s not posted (%" PRIu64 " ms): %s", st->context,
                  forge_state_name(st->state), st->sha, ms, err && err->msg[0] ? err->msg : "");
    return rc;
}

/* --- one commit --- */

struct outcome {
    struct diag_list diags; /* every diagnostic at the commit, sorted */
    size_t nclusters;
    bool planned;
    struct plan plan;
    char plan_error[RV_ERROR_MSG_MAX];
};

static void outcome_init(struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    diag_list_init(&o->diags);
    plan_init(&o->plan);
}

static void outcome_release(struct outcome *o)
{
    diag_list_release(&o->diags);
    plan_release(&o->plan);
}

/* Validate desired and, when valid, plan it against previous. */
static int evaluate(struct outcome *o, const struct spec_set *desired,
                    const struct diag_list *file_diags, const struct spec_set *previous,
                    const char *base, const char *head, struct rv_error *err)
{
    if (copy_diags(&o->diags, file_diags) != 0)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    spec_set_check(desired, &o->diags);
    diag_list_sort(&o->diags);
    o->nclusters = desired->nclusters;
    if (o->diags.errors)
        return 0;
    struct rv_error perr = {0};
    int rc = plan_changed(&o->plan, desired, previous, base, head, &perr);
    if (rc == RV_ENOMEM)
        return rv_error_set(err, rc, false, "out of memory");
    if (rc != 0)
        snprintf(o->plan_error, sizeof(o->plan_error), "%s",
                 perr.msg[0] ? perr.msg : rv_strerror(rc));
    else
        o->planned = true;
    return 0;
}

static int store_page(struct reconcile *r, const struct outcome *o, const char *sha,
                      const char *base, bool pr, uint64_t number, struct rv_error *err)
{
    struct pages_doc doc = {
        .sha = sha,
        .base = base,
        .pull_request = pr,
        .number = number,
        .diags = &o->diags,
        .plan = o->planned ? &o->plan : NULL,
        .plan_error = o->plan_error[0] ? o->plan_error : NULL,
    };
    return pages_store(NULL, r->db, &doc, (int64_t)time(NULL), err);
}

static void describe(char *out, size_t size, const struct outcome *o)
{
    char summary[160];
    if (o->diags.errors)
        snprintf(out, size, "%zu clusters, %zu error%s, %zu warning%s; not planned", o->nclusters,
                 o->diags.errors, o->diags.errors == 1 ? "" : "s", o->diags.warnings,
                 o->diags.warnings == 1 ? "" : "s");
    else if (!o->planned)
        snprintf(out, size, "%zu clusters, valid; cannot plan: %s", o->nclusters, o->plan_error);
    else {
        plan_summary_text(summary, sizeof(summary), &o->plan);
        snprintf(out, size, "%zu clusters, valid; %s", o->nclusters, summary);
    }
}

/* --- the main branch --- */

static int record_commit(struct reconcile *r, const char *sha, const char *ref,
                         struct rv_error *err)
{
    return db_run(r->db, err, "INSERT OR REPLACE INTO commits (sha, ref, seen_at) VALUES (?, ?, ?)",
                  "ttl", sha, ref, (int64_t)time(NULL));
}

static void apply_tick(struct reconcile *r);

static int reconcile_main(struct reconcile *r, const git_oid *tip, struct rv_error *err)
{
    struct view vtip, vprev;
    struct outcome o;
    git_oid prev;
    bool have_prev = false, tip_view = false;
    char tip_hex[HEX_SIZE], prev_hex[HEX_SIZE] = "";
    char desc[RV_ERROR_MSG_MAX], what[RV_ERROR_MSG_MAX + 128];
    const struct spec_set *desired, *previous = NULL;
    const struct diag_list *file_diags;
    uint64_t t0 = now_ms();
    int rc = 0;

    view_init(&vtip);
    view_init(&vprev);
    outcome_init(&o);
    hex(tip_hex, tip);
    if (r->main_done_known) {
        prev = r->main_done;
        have_prev = true;
    } else {
        char rev[HEX_SIZE + 4];
        snprintf(rev, sizeof(rev), "%s~1", tip_hex);
        struct rv_error perr = {0};
        have_prev = source_resolve(r->src, rev, &prev, &perr) == 0;
    }
    if (have_prev)
        hex(prev_hex, &prev);

    if (!r->cache.loaded) {
        rc = cache_load(r, tip, err);
        if (rc != 0)
            goto out;
    }
    if (!git_oid_equal(&r->cache.commit, tip)) {
        rc = view_build(&vtip, r, tip, err);
        if (rc != 0)
            goto out;
        tip_view = true;
        desired = &vtip.set;
        file_diags = &vtip.diags;
    } else {
        desired = &r->cache.set;
        file_diags = &r->cache.diags;
    }
    if (have_prev && git_oid_equal(&prev, &r->cache.commit)) {
        previous = &r->cache.set;
    } else if (have_prev) {
        rc = view_build(&vprev, r, &prev, err);
        if (rc != 0)
            goto out;
        previous = &vprev.set;
    }
    rc = evaluate(&o, desired, file_diags, previous, have_prev ? prev_hex : NULL, tip_hex, err);
    if (rc == 0)
        rc = store_page(r, &o, tip_hex, have_prev ? prev_hex : NULL, false, 0, err);
    if (rc != 0)
        goto out;

    if (r->ap.on) {
        /* the apply rounds (apply_tick) plan against observed state */
        snprintf(r->ap.commit, sizeof(r->ap.commit), "%s", tip_hex);
        r->ap.apply_id = 0;
        r->ap.rounds = 0;
        r->ap.settled = o.diags.errors || !o.planned;
    }
    if (o.diags.errors) {
        enqueue(r, tip_hex, "reeve/apply", FORGE_FAILURE, "not applied: specs are invalid");
    } else if (!o.planned) {
        snprintf(desc, sizeof(desc), "cannot plan: %.480s", o.plan_error);
        enqueue(r, tip_hex, "reeve/apply", FORGE_ERROR, desc);
    } else {
        char summary[160];
        plan_summary_text(summary, sizeof(summary), &o.plan);
        snprintf(desc, sizeof(desc), "waiting for execution; %s", summary);
        enqueue(r, tip_hex, "reeve/apply", FORGE_PENDING, desc);
    }
    rc = record_commit(r, tip_hex, r->main_ref, err);
    if (rc != 0)
        goto out;
    describe(what, sizeof(what), &o);
    store_event_append(r->db, (int64_t)time(NULL), "reconcile", r->main_ref, what, NULL, NULL);
    log_info(LOG_C, "reconciled %s %.12s (from %.12s) in %" PRIu64 " ms: %s", r->main_ref, tip_hex,
             have_prev ? prev_hex : "nothing", now_ms() - t0, what);
    r->main_done = *tip;
    r->main_done_known = true;
out:
    view_release(&vprev);
    if (rc == 0 && tip_view)
        view_commit(&r->cache, &vtip);
    view_release(&vtip);
    outcome_release(&o);
    return rc;
}

/* --- pull requests --- */

static struct pull *pull_find(struct reconcile *r, uint64_t number)
{
    size_t lo = 0, hi = r->npulls;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->pulls[mid].number == number)
            return &r->pulls[mid];
        if (r->pulls[mid].number < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static struct pull *pull_get(struct reconcile *r, uint64_t number)
{
    struct pull *p = pull_find(r, number);
    if (p != NULL)
        return p;
    if (r->npulls == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct pull *grown = realloc(r->pulls, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        r->pulls = grown;
        r->cap = cap;
    }
    size_t at = 0;
    while (at < r->npulls && r->pulls[at].number < number)
        at++;
    memmove(&r->pulls[at + 1], &r->pulls[at], (r->npulls - at) * sizeof(*r->pulls));
    r->npulls++;
    memset(&r->pulls[at], 0, sizeof(r->pulls[at]));
    r->pulls[at].number = number;
    r->pulls[at].state = RECONCILE_PR_OPEN;
    return &r->pulls[at];
}

static const char *pr_state_name(enum reconcile_pr_state s)
{
    return s == RECONCILE_PR_CLOSED ? "closed" : s == RECONCILE_PR_MERGED ? "merged" : "open";
}

static int pull_save(struct reconcile *r, const struct pull *p, struct rv_error *err)
{
    char h[HEX_SIZE] = "";
    if (!git_oid_is_zero(&p->head))
        hex(h, &p->head);
    return db_run(r->db, err,
                  "INSERT INTO pull_requests (forge, repo, number, head_sha, base_ref, state,"
                  " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                  " ON CONFLICT (forge, repo, number) DO UPDATE SET head_sha = excluded.head_sha,"
                  " base_ref = excluded.base_ref, state = excluded.state,"
                  " updated_at = excluded.updated_at",
                  "ttltttl", r->forge.name, r->cfg->forge.repository, (int64_t)p->number, h,
                  r->cfg->repository.branch, pr_state_name(p->state), (int64_t)time(NULL));
}

struct pull_ref {
    uint64_t number;
    git_oid head;
};

static int pull_ref_cmp(const void *pa, const void *pb)
{
    const struct pull_ref *a = pa, *b = pb;
    return a->number < b->number ? -1 : a->number > b->number;
}

/* The pull request heads in the mirror, by number. */
static int list_pulls(struct pull_ref **out, size_t *out_n, struct reconcile *r,
                      struct rv_error *err)
{
    git_reference_iterator *it = NULL;
    git_reference *ref = NULL;
    struct pull_ref *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, grc;

    if (git_reference_iterator_glob_new(&it, r->mirror, PULL_REF_PREFIX "*") != 0) {
        const git_error *e = git_error_last();
        rc = rv_error_set(err, RV_EGIT, true, "cannot list pull requests in '%s': %s",
                          r->mirror_dir, e ? e->message : "unknown error");
        goto out;
    }
    while ((grc = git_reference_next(&ref, it)) == 0) {
        const char *name = git_reference_name(ref) + strlen(PULL_REF_PREFIX);
        char *end = NULL;
        unsigned long long num = strtoull(name, &end, 10);
        git_object *obj = NULL;
        if (end != name && *end == '\0' && num > 0 &&
            git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT) == 0) {
            if (n == cap) {
                if (cap >= RV_GIT_REFS_MAX) {
                    git_object_free(obj);
                    rc = rv_error_set(err, RV_ELIMIT, false, "more than %d pull requests",
                                      RV_GIT_REFS_MAX);
                    goto out;
                }
                cap = cap ? cap * 2 : 64;
                struct pull_ref *g = realloc(v, cap * sizeof(*v));
                if (g == NULL) {
                    git_object_free(obj);
                    rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
                    goto out;
                }
                v = g;
            }
            v[n].number = num;
            git_oid_cpy(&v[n].head, git_object_id(obj));
            n++;
        }
        git_object_free(obj);
        git_reference_free(ref);
        ref = NULL;
    }
    if (grc != GIT_ITEROVER) {
        const git_error *e = git_error_last();
        rc = rv_error_set(err, RV_EGIT, true, "cannot list pull requests: %s",
                          e ? e->message : "unknown error");
        goto out;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), pull_ref_cmp);
    *out = v;
    *out_n = n;
    v = NULL;
out:
    git_reference_free(ref);
    git_reference_iterator_free(it);
    free(v);
    return rc;
}

static int reconcile_pull(struct reconcile *r, struct pull *p, const git_oid *head,
                          struct rv_error *err)
{
    struct view vhead, vbase;
    struct outcome o;
    git_oid mb;
    bool have_base;
    char head_hex[HEX_SIZE], base_hex[HEX_SIZE] = "", ref[64];
    char desc[RV_ERROR_MSG_MAX], what[RV_ERROR_MSG_MAX + 128];
    const struct spec_set *previous = NULL;
    uint64_t t0 = now_ms();
    struct rv_error merr = {0};
    int rc;

    view_init(&vhead);
    view_init(&vbase);
    outcome_init(&o);
    hex(head_hex, head);
    snprintf(ref, sizeof(ref), "pull/%" PRIu64, p->number);
    rc = source_merge_base(r->src, &r->cache.commit, head, &mb, &merr);
    have_base = rc == 0;
    if (rc != 0 && rc != RV_ENOTFOUND) {
        rc = rv_error_set(err, rc, merr.retryable, "%s", merr.msg);
        goto out;
    }
    if (have_base)
        hex(base_hex, &mb);
    rc = view_build(&vhead, r, head, err);
    if (rc != 0)
        goto out;
    if (have_base && git_oid_equal(&mb, &r->cache.commit)) {
        previous = &r->cache.set;
    } else if (have_base) {
        rc = view_build(&vbase, r, &mb, err);
        if (rc != 0)
            goto out;
        previous = &vbase.set;
    }
    rc = evaluate(&o, &vhead.set, &vhead.diags, previous, have_base ? base_hex : NULL, head_hex,
                  err);
    if (rc == 0 && !have_base && o.planned) {
        /* No history in common: planned against nothing, say so. */
        log_warn(LOG_C, "%s head %.12s shares no history with %s; planned as if nothing ran", ref,
                 head_hex, r->main_ref);
    }
    if (rc == 0)
        rc = store_page(r, &o, head_hex, have_base ? base_hex : NULL, true, p->number, err);
    if (rc != 0)
        goto out;

    if (o.diags.errors) {
        invalid_text(desc, sizeof(desc), &o.diags);
        enqueue(r, head_hex, "reeve/validate", FORGE_FAILURE, desc);
        enqueue(r, head_hex, "reeve/plan", FORGE_FAILURE, "not planned: specs are invalid");
    } else {
        snprintf(desc, sizeof(desc), "%zu clusters valid", o.nclusters);
        enqueue(r, head_hex, "reeve/validate", FORGE_SUCCESS, desc);
        if (o.planned) {
            plan_summary_text(desc, sizeof(desc), &o.plan);
            enqueue(r, head_hex, "reeve/plan",
                    o.plan.summary.blocked ? FORGE_FAILURE : FORGE_SUCCESS, desc);
        } else {
            snprintf(desc, sizeof(desc), "cannot plan: %.480s", o.plan_error);
            enqueue(r, head_hex, "reeve/plan", FORGE_ERROR, desc);
        }
    }
    p->head = *head;
    p->state = RECONCILE_PR_OPEN;
    rc = pull_save(r, p, err);
    if (rc == 0)
        rc = record_commit(r, head_hex, ref, err);
    if (rc != 0)
        goto out;
    describe(what, sizeof(what), &o);
    store_event_append(r->db, (int64_t)time(NULL), "reconcile", ref, what, NULL, NULL);
    log_info(LOG_C, "reconciled %s %.12s (base %.12s) in %" PRIu64 " ms: %s", ref, head_hex,
             have_base ? base_hex : "none", now_ms() - t0, what);
out:
    view_release(&vbase);
    view_release(&vhead);
    outcome_release(&o);
    return rc;
}

/* A commit that cannot be read or planned for a reason a retry will not fix:
 * say so on the commit instead of retrying forever. */
static void report_error(struct reconcile *r, const git_oid *sha, bool pr, const char *why)
{
    char h[HEX_SIZE], desc[RV_ERROR_MSG_MAX + 32];
    hex(h, sha);
    snprintf(desc, sizeof(desc), "reeve could not read this commit: %s", why);
    if (pr) {
        enqueue(r, h, "reeve/validate", FORGE_ERROR, desc);
        enqueue(r, h, "reeve/plan", FORGE_ERROR, desc);
    } else {
        enqueue(r, h, "reeve/apply", FORGE_ERROR, desc);
    }
}

static void reconcile_pulls(struct reconcile_result *out, struct reconcile *r,
                            const struct reconcile_input *in)
{
    struct pull_ref *refs = NULL;
    size_t n = 0, done = 0;
    struct rv_error err = {0};
    if (list_pulls(&refs, &n, r, &err) != 0) {
        log_error(LOG_C, "%s", err.msg);
        snprintf(out->error, sizeof(out->error), "%s", err.msg);
        out->failed = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct pull *p = pull_find(r, refs[i].number);
        if (p != NULL && (p->state != RECONCILE_PR_OPEN || git_oid_equal(&p->head, &refs[i].head)))
            continue;
        if (done == RV_SERVE_PULLS_PER_PASS || cancelled(in)) {
            out->more = true;
            break;
        }
        p = pull_get(r, refs[i].number);
        if (p == NULL) {
            log_error(LOG_C, "out of memory");
            break;
        }
        rv_error_clear(&err);
        if (git_oid_is_zero(&p->head)) {
            /* Never seen: a head already on main was merged before reeve
             * looked (GitHub keeps the refs of closed pull requests). */
            git_oid mb;
            if (source_merge_base(r->src, &r->cache.commit, &refs[i].head, &mb, &err) == 0 &&
                git_oid_equal(&mb, &refs[i].head)) {
                p->head = refs[i].head;
                p->state = RECONCILE_PR_MERGED;
                if (pull_save(r, p, &err) != 0)
                    log_error(LOG_C, "%s", err.msg);
                continue;
            }
            rv_error_clear(&err);
        }
        int rc = reconcile_pull(r, p, &refs[i].head, &err);
        done++;
        out->refs_reconciled++;
        if (rc != 0) {
            log_error(LOG_C, "cannot reconcile pull/%" PRIu64 ": %s%s", p->number, err.msg,
                      err.retryable ? " (retrying on the next tick)" : "");
            snprintf(out->error, sizeof(out->error), "pull/%" PRIu64 ": %.450s", p->number,
                     err.msg);
            if (err.retryable || rc == RV_ENOMEM) {
                out->failed = true;
            } else {
                report_error(r, &refs[i].head, true, err.msg);
                p->head = refs[i].head;
                struct rv_error serr = {0};
                if (pull_save(r, p, &serr) != 0)
                    log_error(LOG_C, "%s", serr.msg);
            }
        }
    }
    free(refs);
}

/* --- events, outbox, pruning --- */

static void record_events(struct reconcile_result *out, struct reconcile *r,
                          const struct reconcile_input *in)
{
    struct rv_error err = {0};
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < in->nevents; i++) {
        const struct reconcile_event *ev = &in->events[i];
        if (ev->delivery[0]) {
            bool dup = false;
            if (store_webhook_delivery(&dup, r->db, r->forge.name, ev->delivery, now, &err) != 0)
                log_warn(LOG_C, "%s", err.msg);
            else if (dup) {
                out->duplicate_deliveries++;
                log_info(LOG_C, "delivery '%s' was recorded before a restart; a redelivery",
                         ev->delivery);
            }
        }
        if (ev->pull == 0)
            continue;
        struct pull *p = pull_get(r, ev->pull);
        if (p == NULL || p->state == ev->state)
            continue;
        p->state = ev->state;
        if (pull_save(r, p, &err) != 0)
            log_warn(LOG_C, "%s", err.msg);
        else
            log_info(LOG_C, "pull/%" PRIu64 " is %s", ev->pull, pr_state_name(ev->state));
    }
}

static void run_outbox(struct reconcile_result *out, struct reconcile *r,
                       const struct reconcile_input *in)
{
    struct rv_error err = {0};
    int64_t due = 0;
    if (!r->have_forge)
        return;
    for (int i = 0; i < RV_SERVE_OUTBOX_BATCHES_MAX && !cancelled(in); i++) {
        struct outbox_metrics pass = {0};
        if (outbox_run_once(&pass, &r->ob, &err) != 0) {
            log_error(LOG_C, "status outbox: %s", err.msg);
            break;
        }
        if (pass.posted + pass.retried + pass.failed < RV_OUTBOX_BATCH_MAX)
            break;
    }
    if (outbox_next_due(&due, &r->ob, &err) == 0)
        out->outbox_next_due = due;
}

static void prune(struct reconcile *r)
{
    struct rv_error err = {0};
    int64_t now = (int64_t)time(NULL), n = 0;
    if (now - r->last_prune < 3600)
        return;
    r->last_prune = now;
    if (r->have_forge && outbox_prune(&n, &r->ob, now - RV_OUTBOX_KEEP_S, &err) != 0)
        log_warn(LOG_C, "%s", err.msg);
    if (store_webhook_prune(&n, r->db, now - RV_WEBHOOK_DEDUP_KEEP_S, &err) != 0)
        log_warn(LOG_C, "%s", err.msg);
    if (pages_store_prune(&n, r->db, now - RV_SERVE_PLAN_KEEP_S, &err) != 0)
        log_warn(LOG_C, "%s", err.msg);
}

static void fetch(struct reconcile_result *out, struct reconcile *r)
{
    struct source_fetch_result res;
    struct rv_error err = {0};
    source_fetch_result_init(&res);
    out->fetched = true;
    out->fetch_rc = source_fetch(r->src, &res, &err);
    out->fetch_ms = res.duration_ms;
    if (out->fetch_rc != 0) {
        /* RV_ENOTFOUND: no such repository, or no main branch in it; the
         * source has logged it. Either way nothing can be reconciled. */
        snprintf(out->error, sizeof(out->error), "fetch: %.480s", err.msg);
        /* Said once per distinct failure, not on every retry. */
        if (strcmp(r->fetch_error, err.msg) != 0)
            log_warn("source", "fetch from %s failed after %" PRIu64 " ms: %s; retrying every %us",
                     source_url(r->src), res.duration_ms, err.msg, r->cfg->ticks.base_s);
        else
            log_debug("source", "fetch failed again: %s", err.msg);
        snprintf(r->fetch_error, sizeof(r->fetch_error), "%s", err.msg);
    } else {
        if (r->fetch_error[0])
            log_info("source", "fetch from %s works again", source_url(r->src));
        r->fetch_error[0] = '\0';
        char names[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < res.nchanges && used + 40 < sizeof(names); i++) {
            char name[32];
            source_ref_change_name(name, sizeof(name), &res.changes[i]);
            used +=
                (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "", name);
        }
        if (res.nchanges > 0 && used + 40 >= sizeof(names))
            snprintf(names + used, sizeof(names) - used, ", ...");
        log_debug("source",
                  "fetched %s in %" PRIu64 " ms: %zu ref%s changed%s%s (%u objects, %" PRIu64
                  " bytes)",
                  source_url(r->src), res.duration_ms, res.nchanges, res.nchanges == 1 ? "" : "s",
                  res.nchanges ? ": " : "", names, res.received_objects, res.received_bytes);
    }
    source_fetch_result_release(&res);
}

void reconcile_pass(struct reconcile_result *out, struct reconcile *r,
                    const struct reconcile_input *in)
{
    struct rv_error err = {0};
    git_oid tip;
    memset(out, 0, sizeof(*out));

    record_events(out, r, in);
    if (in->fetch)
        fetch(out, r);
    uint64_t t0 = now_ms();
    int rc = source_resolve(r->src, "main", &tip, &err);
    if (rc == RV_ENOTFOUND) {
        log_debug(LOG_C, "no branch '%s' in the mirror yet; nothing to reconcile",
                  r->cfg->repository.branch);
    } else if (rc != 0) {
        log_error(LOG_C, "cannot read branch '%s': %s", r->cfg->repository.branch, err.msg);
        snprintf(out->error, sizeof(out->error), "%s", err.msg);
        out->failed = true;
    } else {
        out->main_known = true;
        out->reconciled = true;
        if (!r->main_done_known || !git_oid_equal(&r->main_done, &tip) || !r->cache.loaded) {
            bool done = r->main_done_known && git_oid_equal(&r->main_done, &tip);
            rc = done ? cache_load(r, &tip, &err) : reconcile_main(r, &tip, &err);
            /* A first plan of a whole fleet leaves tens of MiB freed in
             * the allocator's arenas: give them back to the system. */
            malloc_trim(0);
            if (!done)
                out->refs_reconciled++;
            if (rc != 0) {
                log_error(LOG_C, "cannot reconcile %s: %s", r->main_ref, err.msg);
                snprintf(out->error, sizeof(out->error), "%.200s: %.300s", r->main_ref, err.msg);
                if (err.retryable || rc == RV_ENOMEM || !r->cache.loaded) {
                    out->failed = true;
                } else {
                    report_error(r, &tip, false, err.msg);
                    r->main_done = tip;
                    r->main_done_known = true;
                }
            }
        }
        if (r->cache.loaded && r->cfg->forge.kind != SOURCE_FORGE_NONE && !cancelled(in))
            reconcile_pulls(out, r, in);
        out->clusters_desired = r->cache.loaded ? r->cache.set.nclusters : 0;
    }
    out->reconcile_ms = now_ms() - t0;
    if (!cancelled(in))
        apply_tick(r);
    run_outbox(out, r, in);
    prune(r);
    out->outbox = r->ob.metrics;
}

/* --- applying main --- */

struct provider_lookup {
    const struct spec_set *desired;
    const struct observed *obs;
    char buf[RV_NAME_MAX + 1];
};

static const char *provider_of(const char *cluster, void *ud)
{
    struct provider_lookup *pl = ud;
    for (size_t i = 0; i < pl->desired->nclusters; i++) {
        const struct spec_cluster *c = pl->desired->clusters[i];
        size_t ns = strlen(c->namespace_);
        if (strncmp(cluster, c->namespace_, ns) == 0 && cluster[ns] == '/' &&
            strcmp(cluster + ns + 1, c->name) == 0)
            return c->provider;
    }
    for (size_t i = 0; i < pl->obs->ninstances; i++) {
        const struct obs_instance *in = &pl->obs->instances[i];
        size_t ns = strlen(in->namespace_);
        if (strncmp(cluster, in->namespace_, ns) == 0 && cluster[ns] == '/' &&
            strcmp(cluster + ns + 1, in->cluster) == 0) {
            snprintf(pl->buf, sizeof(pl->buf), "%s", in->provider);
            return pl->buf;
        }
    }
    return NULL;
}

/* The commit of the newest apply that succeeded, other than the one being
 * applied: its specs are the last desired state known to be applied.
 * Returns 1 when found, 0 when none, or an error. */
static int last_applied(git_oid *out, struct reconcile *r, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(&st, r->db, err,
                        "SELECT commit_sha FROM applies WHERE state = 'succeeded'"
                        " ORDER BY id DESC LIMIT 1",
                        NULL);
    if (rc == 0 && (rc = db_step(st, r->db, err)) == 1) {
        const char *sha = (const char *)sqlite3_column_text(st, 0);
        rc = sha != NULL && git_oid_fromstr(out, sha) == 0 ? 1 : 0;
    }
    db_finalize(st);
    return rc;
}

/* Plan the main tip (the cache) against observed state now. What was
 * applied last (deletionProtection of deleted clusters, users) comes from
 * the commit of the newest successful apply. */
static int plan_observed(struct plan *out, struct observed *obs, struct reconcile *r,
                         struct rv_error *err)
{
    struct view prev;
    git_oid prev_id;
    const struct spec_set *previous = &r->cache.set;
    view_init(&prev);
    plan_init(out);
    int rc = runners_observe(obs, r->ap.runners, err);
    if (rc != 0)
        goto out;
    rc = last_applied(&prev_id, r, err);
    if (rc < 0)
        goto out;
    if (rc == 1 && !git_oid_equal(&prev_id, &r->cache.commit)) {
        rc = view_build(&prev, r, &prev_id, err);
        if (rc != 0)
            goto out;
        previous = &prev.set;
    }
    struct plan_opts opts = {
        .head = r->ap.commit,
        .observed_revision = observed_revision(obs),
        .now = (int64_t)time(NULL),
        .previous = previous,
    };
    rc = plan_build(out, &r->cache.set, obs, &opts, err);
out:
    view_release(&prev);
    return rc;
}

static void apply_status(struct reconcile *r, enum forge_state state, const char *text)
{
    enqueue(r, r->ap.commit, "reeve/apply", state, text);
    if (state != FORGE_PENDING) {
        r->ap.settled = true;
        log_info(LOG_C, "apply of %.12s: %s: %s", r->ap.commit, forge_state_name(state), text);
        store_event_append(r->db, (int64_t)time(NULL), "apply", r->ap.commit, text, NULL, NULL);
    }
}

/* Plan against fresh observed state; no changes settles the commit,
 * otherwise start the next round (or give up after max_rounds). */
static void apply_round(struct reconcile *r)
{
    struct rv_error err = {0};
    struct observed obs;
    struct plan p;
    struct buf left = BUF_INIT;
    struct diag_list checked;
    observed_init(&obs);
    plan_init(&p);
    diag_list_init(&checked);
    /* never act on a spec set with errors (a restart finds main as it was) */
    if (copy_diags(&checked, &r->cache.diags) != 0)
        goto out;
    spec_set_check(&r->cache.set, &checked);
    if (checked.errors) {
        r->ap.settled = true;
        goto out;
    }
    /* the agents need the secrets that credentialsRef and keyRef name
     * (backups.h): an apply without them fails, naming what is missing */
    if (backups_check_refs(r->cfg, &r->cache.set, &checked) != 0)
        goto out;
    if (checked.errors) {
        const struct diag *first = NULL;
        char text[RV_ERROR_MSG_MAX];
        for (size_t i = 0; i < checked.len; i++) {
            const struct diag *d = &checked.items[i];
            if (d->severity != DIAG_ERROR)
                continue;
            if (first == NULL)
                first = d;
            log_error(LOG_C, "apply of %.12s: %s:%u:%u: %s: %s", r->ap.commit, d->file, d->line,
                      d->col, d->path, d->msg);
        }
        snprintf(text, sizeof(text), "not applied: %s:%u: %.400s", first->file, first->line,
                 first->msg);
        apply_status(r, FORGE_FAILURE, text);
        goto out;
    }
    plan_release(&p);
    int rc = plan_observed(&p, &obs, r, &err);
    if (rc != 0) {
        log_warn(LOG_C,
                 "apply of %.12s: cannot plan against observed state (retrying next "
                 "tick): %s",
                 r->ap.commit, err.msg);
        goto out;
    }
    if (!plan_has_changes(&p)) {
        apply_status(r, FORGE_SUCCESS, "applied: observed state matches the spec");
        goto out;
    }
    if (r->ap.rounds >= r->ap.max_rounds) {
        for (size_t i = 0; i < p.nactions && left.len < 400; i++)
            if (p.actions[i].change != PLAN_CHANGE_NONE || p.actions[i].blocked)
                buf_printf(&left, "%s%s", left.len ? ", " : "", p.actions[i].id);
        char text[RV_ERROR_MSG_MAX];
        snprintf(text, sizeof(text), "did not converge: %s (%d rounds)",
                 left.len ? left.data : "changes remain", r->ap.rounds);
        apply_status(r, FORGE_FAILURE, text);
        goto out;
    }
    /* the plan page of the commit becomes the plan being applied */
    int64_t plan_id = 0;
    struct pages_doc doc = {.sha = r->ap.commit, .diags = &checked, .plan = &p};
    if (pages_store(&plan_id, r->db, &doc, (int64_t)time(NULL), &err) != 0)
        log_warn(LOG_C, "apply of %.12s: plan page not stored: %s", r->ap.commit, err.msg);

    struct provider_lookup pl = {.desired = &r->cache.set, .obs = &obs};
    struct journal_apply_opts jo = {
        .commit_sha = r->ap.commit,
        .plan_id = plan_id,
        .provider_of = provider_of,
        .ud = &pl,
    };
    int64_t id = 0;
    rc = executor_apply_begin(&id, r->ap.ex, &p, &jo, &err);
    if (rc != 0) {
        log_error(LOG_C, "apply of %.12s: cannot start: %s", r->ap.commit, err.msg);
        if (!err.retryable && rc != RV_EDB)
            apply_status(r, FORGE_FAILURE, err.msg);
        goto out;
    }
    r->ap.apply_id = id;
    r->ap.rounds++;
    log_info(LOG_C, "apply %" PRId64 " of %.12s started (round %d): %zu actions, observed %s", id,
             r->ap.commit, r->ap.rounds, p.nactions,
             p.observed_revision ? p.observed_revision : "?");
out:
    diag_list_release(&checked);
    buf_release(&left);
    plan_release(&p);
    observed_release(&obs);
}

/* Maintenance windows (window.h) of the main tip's specs: the executor's
 * hold. Runs on the reconcile thread, in executor_step(). */
static bool hold_window(char *why, size_t size, int64_t *out_until, const struct journal_action *a,
                        int64_t now, void *ud)
{
    struct reconcile *r = ud;
    *out_until = 0;
    if (!r->cache.loaded)
        return false;
    return window_hold(why, size, out_until, &r->cache.set, a->cluster, a->kind, now);
}

/* One clusters/<namespace>/PAUSED file into p; false (logged) when the
 * folder name cannot be a namespace. */
static bool pause_read(struct window_pause *p, struct reconcile *r, const char *path)
{
    struct rv_error err = {0};
    struct buf content = BUF_INIT;
    const char *ns = path + strlen("clusters/");
    size_t len = strcspn(ns, "/");
    char name[RV_NAME_MAX + 1];
    if (len == 0 || len > RV_NAME_MAX) {
        log_warn(LOG_C, "%s: the folder is not a namespace (1 to %d characters); ignored", path,
                 RV_NAME_MAX);
        return false;
    }
    memcpy(name, ns, len);
    name[len] = '\0';
    if (source_read_file(r->src, &r->cache.commit, path, &content, &err) != 0) {
        log_warn(LOG_C, "%s: reason not read (%s); the namespace is paused all the same", path,
                 err.msg);
        buf_release(&content);
    }
    window_pause_describe(p, name, content.data, content.len);
    buf_release(&content);
    return true;
}

/* Pause exactly the namespaces with a PAUSED file at the main tip. */
static void pause_sync(struct reconcile *r)
{
    struct rv_error err = {0};
    struct source_file_list files;
    struct window_pause *ps = NULL;
    const char **names = NULL, **whys = NULL;
    size_t n = 0;
    source_file_list_init(&files);
    int rc = source_list_named_files(r->src, &r->cache.commit, WINDOW_PAUSE_FILE, &files, &err);
    if (rc == 0 && files.len > 0) {
        ps = calloc(files.len, sizeof(*ps));
        names = calloc(files.len, sizeof(*names));
        whys = calloc(files.len, sizeof(*whys));
        if (!ps || !names || !whys)
            rc = rv_error_set(&err, RV_ENOMEM, false, "out of memory reading pause files");
    }
    for (size_t i = 0; rc == 0 && i < files.len; i++) {
        if (!pause_read(&ps[n], r, files.items[i].path))
            continue;
        names[n] = ps[n].namespace_;
        whys[n] = ps[n].why;
        n++;
    }
    if (rc == 0)
        rc = executor_pause_set(r->ap.ex, names, whys, n, &err);
    if (rc == 0) {
        r->ap.paused_commit = r->cache.commit;
        r->ap.paused_known = true;
        for (size_t i = 0; i < n; i++)
            log_info(LOG_C, "namespace %s: %s; no new action starts there", names[i], whys[i]);
    } else {
        log_warn(LOG_C, "pause files not read (trying again next tick): %s", err.msg);
    }
    free(whys);
    free(names);
    free(ps);
    source_file_list_release(&files);
}

static void apply_tick(struct reconcile *r)
{
    struct rv_error err = {0};
    if (!r->ap.on)
        return;
    if (r->cache.loaded &&
        (!r->ap.paused_known || !git_oid_equal(&r->ap.paused_commit, &r->cache.commit)))
        pause_sync(r);
    /* the runners act on the desired state of the main tip */
    if (r->cache.loaded &&
        (!r->ap.desired_known || !git_oid_equal(&r->ap.desired_commit, &r->cache.commit))) {
        if (runners_set_desired(r->ap.runners, &r->cache.set, &err) == 0) {
            r->ap.desired_commit = r->cache.commit;
            r->ap.desired_known = true;
        }
    }
    if (executor_step(NULL, r->ap.ex, &err) != 0)
        log_warn(LOG_C, "executor: %s", err.msg);
    /* list the providers' instances once a base tick (status, addresses) */
    int64_t now = (int64_t)time(NULL);
    if (now - r->ap.observed_at >= (int64_t)r->cfg->ticks.base_s) {
        struct observed obs;
        observed_init(&obs);
        r->ap.observed_at = now;
        if (runners_observe(&obs, r->ap.runners, &err) != 0)
            log_warn(LOG_C, "observed state: %s", err.msg);
        observed_release(&obs);
    }
    if (r->ap.commit[0] == '\0' || r->ap.settled || !r->ap.desired_known ||
        now < r->ap.not_before || !r->main_done_known ||
        !git_oid_equal(&r->main_done, &r->cache.commit))
        return;
    char cache_hex[HEX_SIZE];
    hex(cache_hex, &r->cache.commit);
    if (strcmp(cache_hex, r->ap.commit) != 0)
        return;
    if (r->ap.apply_id == 0) {
        apply_round(r);
        if (r->ap.apply_id != 0)
            executor_step(NULL, r->ap.ex, &err);
        return;
    }
    struct journal_status st;
    if (journal_apply_status(&st, r->db, r->ap.apply_id, &err) != 0) {
        log_warn(LOG_C, "apply %" PRId64 ": %s", r->ap.apply_id, err.msg);
        return;
    }
    if (st.state == JOURNAL_STATUS_PENDING || executor_apply_active(r->ap.ex, r->ap.apply_id)) {
        /* held by a pause file or a maintenance window: say which */
        char wait[RV_EXEC_STATUS_MAX];
        bool held = executor_apply_waiting(wait, sizeof(wait), r->ap.ex, r->ap.apply_id);
        enqueue(r, r->ap.commit, "reeve/apply", FORGE_PENDING, held ? wait : st.text);
        return;
    }
    if (st.state == JOURNAL_STATUS_FAILURE) {
        apply_status(r, FORGE_FAILURE, st.text);
        return;
    }
    apply_round(r);
    if (!r->ap.settled)
        executor_step(NULL, r->ap.ex, &err);
}

int reconcile_apply_enable(struct reconcile *r, const struct reconcile_apply *a,
                           struct rv_error *err)
{
    struct executor_runner runner;
    sqlite3_stmt *st = NULL;
    struct executor_opts eo = a->executor;
    runners_executor_runner(&runner, a->runners);
    if (!eo.hold) {
        eo.hold = hold_window;
        eo.hold_ud = r;
    }
    int rc = executor_new(&r->ap.ex, r->db, &runner, &eo, err);
    if (rc != 0)
        return rc;
    r->ap.on = true;
    r->ap.runners = a->runners;
    r->ap.max_rounds = a->max_rounds > 0 ? a->max_rounds : RV_RECONCILE_APPLY_ROUNDS;
    /* after a restart with applies in the journal, nodes run already: give
     * their agents time to report before planning against them */
    rc = db_prepare(&st, r->db, err, "SELECT EXISTS (SELECT 1 FROM applies)", NULL);
    if (rc == 0 && (rc = db_step(st, r->db, err)) == 1) {
        if (sqlite3_column_int(st, 0) != 0 && a->grace_s > 0)
            r->ap.not_before = (int64_t)time(NULL) + a->grace_s;
        rc = 0;
    }
    db_finalize(st);
    st = NULL;
    if (rc < 0 || !r->main_done_known)
        return rc < 0 ? rc : 0;
    /* pick up the apply of the last main commit reconciled */
    hex(r->ap.commit, &r->main_done);
    rc = db_prepare(&st, r->db, err,
                    "SELECT id, (SELECT count(*) FROM applies WHERE commit_sha = ?1)"
                    " FROM applies WHERE commit_sha = ?1 ORDER BY id DESC LIMIT 1",
                    "t", r->ap.commit);
    if (rc == 0 && (rc = db_step(st, r->db, err)) == 1) {
        r->ap.apply_id = sqlite3_column_int64(st, 0);
        r->ap.rounds = sqlite3_column_int(st, 1);
        rc = 0;
    }
    db_finalize(st);
    if (rc == 0)
        log_info(LOG_C, "applying %.12s: %d round%s so far", r->ap.commit, r->ap.rounds,
                 r->ap.rounds == 1 ? "" : "s");
    return rc < 0 ? rc : 0;
}

void reconcile_apply_disable(struct reconcile *r)
{
    if (r == NULL)
        return;
    executor_free(r->ap.ex);
    r->ap.ex = NULL;
    r->ap.on = false;
}

/* --- setup --- */

static int load_state(struct reconcile *r, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(&st, r->db, err,
                        "SELECT sha FROM commits WHERE ref = ? ORDER BY rowid DESC LIMIT 1", "t",
                        r->main_ref);
    if (rc == 0 && (rc = db_step(st, r->db, err)) == 1) {
        const char *sha = (const char *)sqlite3_column_text(st, 0);
        r->main_done_known = sha && git_oid_fromstr(&r->main_done, sha) == 0;
        rc = 0;
    }
    db_finalize(st);
    st = NULL;
    if (rc != 0 || !r->have_forge)
        goto out;
    rc = db_prepare(&st, r->db, err,
                    "SELECT number, head_sha, state FROM pull_requests WHERE forge = ? AND repo = ?"
                    " ORDER BY number",
                    "tt", r->forge.name, r->cfg->forge.repository);
    while (rc == 0 && (rc = db_step(st, r->db, err)) == 1) {
        struct pull *p = pull_get(r, (uint64_t)sqlite3_column_int64(st, 0));
        const char *sha = (const char *)sqlite3_column_text(st, 1);
        const char *state = (const char *)sqlite3_column_text(st, 2);
        if (p == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            break;
        }
        if (sha && sha[0] && git_oid_fromstr(&p->head, sha) != 0)
            memset(&p->head, 0, sizeof(p->head));
        p->state = state && strcmp(state, "closed") == 0   ? RECONCILE_PR_CLOSED
                   : state && strcmp(state, "merged") == 0 ? RECONCILE_PR_MERGED
                                                           : RECONCILE_PR_OPEN;
        rc = 0;
    }
out:
    db_finalize(st);
    return rc < 0 ? rc : 0;
}

static enum forge_kind forge_kind_of(enum source_forge f)
{
    return f == SOURCE_FORGE_GITLAB  ? FORGE_GITLAB
           : f == SOURCE_FORGE_GITEA ? FORGE_GITEA
                                     : FORGE_GITHUB;
}

int reconcile_new(struct reconcile **out, const struct config *cfg, const char *public_url,
                  struct rv_error *err)
{
    struct reconcile *r = calloc(1, sizeof(*r));
    struct buf b = BUF_INIT;
    struct source_config sc;
    int rc = 0;

    *out = NULL;
    if (r == NULL || (r->public_url = strdup(public_url)) == NULL ||
        buf_printf(&b, "%s/state.db", cfg->data_dir) != 0 ||
        (r->db_path = buf_detach(&b)) == NULL ||
        buf_printf(&b, "%s/mirror.git", cfg->data_dir) != 0 ||
        (r->mirror_dir = buf_detach(&b)) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    r->cfg = cfg;
    snprintf(r->main_ref, sizeof(r->main_ref), "refs/heads/%s", cfg->repository.branch);
    spec_set_init(&r->cache.set);
    diag_list_init(&r->cache.diags);
    r->have_forge = cfg->forge.kind != SOURCE_FORGE_NONE;
    forge_init(&r->forge, forge_kind_of(cfg->forge.kind), config_forge_name(cfg),
               cfg->forge.api_url, cfg->forge.token);

    rc = store_open(&r->db, r->db_path, NULL, err);
    if (rc != 0)
        goto out;
    source_config_init(&sc);
    sc.url = cfg->repository.url;
    sc.mirror_dir = r->mirror_dir;
    sc.main_branch = cfg->repository.branch;
    sc.forge = cfg->forge.kind;
    sc.auth = cfg->repository.auth;
    sc.username = cfg->repository.username;
    sc.secret = cfg->repository.secret;
    rc = source_open(&r->src, &sc, err);
    if (rc != 0)
        goto out;
    if (git_repository_open_bare(&r->mirror, r->mirror_dir) != 0) {
        const git_error *e = git_error_last();
        rc = rv_error_set(err, RV_EGIT, false, "cannot open the mirror '%s': %s", r->mirror_dir,
                          e ? e->message : "unknown error");
        goto out;
    }
    if (r->have_forge) {
        outbox_init(&r->ob, r->db, &r->forge, 1);
        r->ob.post = post_logged;
        r->ob.post_ud = r;
    }
    rc = load_state(r, err);
    if (rc != 0)
        goto out;
    *out = r;
    r = NULL;
out:
    buf_release(&b);
    reconcile_free(r);
    return rc;
}

void reconcile_free(struct reconcile *r)
{
    if (r == NULL)
        return;
    executor_free(r->ap.ex);
    cache_release(&r->cache);
    free(r->pulls);
    git_repository_free(r->mirror);
    source_free(r->src);
    db_free(r->db);
    free(r->mirror_dir);
    free(r->db_path);
    free(r->public_url);
    free(r);
}
