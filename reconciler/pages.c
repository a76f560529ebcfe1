/* pages.c - plan pages: build, store, look up and render. */
#include "pages.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zstd.h>

#include "limits.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)

/* Append the compact JSON text of v (which is consumed) to out. */
static int put_json(struct buf *out, json_t *v)
{
    char *s = v ? json_dumps(v, DUMP_FLAGS) : NULL;
    int rc = s ? buf_puts(out, s) : RV_ENOMEM;
    free(s);
    json_decref(v);
    return rc;
}

static int put_str(struct buf *out, const char *s)
{
    return put_json(out, s ? json_string(s) : json_null());
}

/* Room for extra more bytes, growing by an eighth rather than doubling as
 * buf_reserve does: a document can be tens of MiB. */
static int reserve_tight(struct buf *b, size_t extra)
{
    if (b->data != NULL && b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->len + extra + 1;
    cap += cap / 8;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return RV_ENOMEM;
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Hand what out holds to write once it is worth a call (or at the end). */
static int drain(struct buf *out, pages_write_fn write, void *payload, bool all)
{
    int rc = 0;
    if (write == NULL || out->len == 0 || (!all && out->len < RV_SERVE_WRITE_CHUNK))
        return 0;
    rc = write(out->data, out->len, payload);
    buf_clear(out);
    return rc;
}

static size_t actions_estimate(const struct plan *p, size_t first, size_t n)
{
    size_t bytes = 0;
    for (size_t i = first; i < first + n; i++) {
        const struct plan_action *a = &p->actions[i];
        bytes += 200 + strlen(a->id) + strlen(a->cluster) + strlen(a->node) + strlen(a->reason) +
                 strlen(a->waits_for) + (a->blocked ? strlen(a->blocked) : 0);
        for (size_t d = 0; d < a->ndeps; d++)
            bytes += 3 + strlen(p->actions[a->deps[d]].id);
    }
    return bytes + bytes / 16;
}

/* Append the "actions" of p[first, first+n) with deps made relative, via
 * plan_to_json of a plan holding only them; deps of these actions point
 * inside the range (the caller cuts where that holds). */
static int put_actions(struct buf *out, const struct plan *p, size_t first, size_t n, bool comma)
{
    struct plan_action *tmp = calloc(n, sizeof(*tmp));
    struct plan sub;
    json_t *j = NULL;
    int rc = tmp ? 0 : RV_ENOMEM;

    plan_init(&sub);
    for (size_t k = 0; k < n && rc == 0; k++) {
        const struct plan_action *a = &p->actions[first + k];
        tmp[k] = *a;
        tmp[k].deps = NULL;
        tmp[k].ndeps = 0;
        if (a->ndeps == 0)
            continue;
        tmp[k].deps = malloc(a->ndeps * sizeof(*tmp[k].deps));
        if (tmp[k].deps == NULL) {
            rc = RV_ENOMEM;
            break;
        }
        tmp[k].ndeps = a->ndeps;
        for (size_t d = 0; d < a->ndeps; d++)
            tmp[k].deps[d] = a->deps[d] - first;
    }
    if (rc != 0)
        goto out;
    sub.actions = tmp;
    sub.nactions = n;
    j = plan_to_json(&sub);
    const json_t *arr = j ? json_object_get(j, "actions") : NULL;
    if (arr == NULL || json_array_size(arr) != n) {
        rc = RV_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (comma || k > 0)
            rc = buf_putc(out, ',');
        if (rc == 0)
            rc = put_json(out, json_incref(json_array_get(arr, k)));
    }
out:
    json_decref(j);
    for (size_t k = 0; tmp && k < n; k++)
        free(tmp[k].deps);
    free(tmp);
    return rc;
}

int pages_plan_json(struct buf *out, const struct plan *p, size_t chunk, pages_write_fn write,
                    void *payload)
{
    static const char tail[] = "\"actions\":[]}";
    struct plan head = *p;
    size_t *mind = NULL;
    char *s = NULL;
    int rc;

    if (chunk == 0)
        chunk = RV_SERVE_JSON_CHUNK_ACTIONS;
    /* Everything but the actions, as plan_to_json writes it. */
    head.actions = NULL;
    head.nactions = 0;
    json_t *j = plan_to_json(&head);
    s = j ? json_dumps(j, DUMP_FLAGS) : NULL;
    json_decref(j);
    if (s == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    size_t len = strlen(s), tl = strlen(tail);
    if (len < tl || strcmp(s + len - tl, tail) != 0) {
        /* Not the layout this splicing expects: write it in one piece. */
        rc = put_json(out, plan_to_json(p));
        goto out;
    }
    rc = buf_append(out, s, len - 2);
    if (rc != 0)
        goto out;
    /* mind[i]: the smallest dependency of any action at i or later; a cut
     * before i is possible when mind[i] >= i. */
    mind = malloc((p->nactions + 1) * sizeof(*mind));
    if (mind == NULL) {
        rc = RV_ENOMEM;
        goto out;
    }
    mind[p->nactions] = p->nactions;
    for (size_t i = p->nactions; i-- > 0;) {
        size_t m = mind[i + 1] < i ? mind[i + 1] : i;
        for (size_t d = 0; d < p->actions[i].ndeps; d++)
            if (p->actions[i].deps[d] < m)
                m = p->actions[i].deps[d];
        mind[i] = m;
    }
    size_t start = 0;
    for (size_t e = 1; e <= p->nactions && rc == 0; e++) {
        if (e == p->nactions || (e - start >= chunk && mind[e] >= e)) {
            if (write == NULL)
                rc = reserve_tight(out, actions_estimate(p, start, e - start));
            if (rc == 0)
                rc = put_actions(out, p, start, e - start, start > 0);
            if (rc == 0)
                rc = drain(out, write, payload, false);
            start = e;
        }
    }
    if (rc == 0)
        rc = buf_puts(out, "]}");
out:
    free(mind);
    free(s);
    return rc;
}

static json_t *validation_json(const struct diag_list *l)
{
    json_t *v = json_object();
    json_t *arr = json_array();
    int bad = v == NULL || arr == NULL;
    bad |= json_object_set_new(v, "valid", json_boolean(l->errors == 0));
    bad |= json_object_set_new(v, "errors", json_integer((json_int_t)l->errors));
    bad |= json_object_set_new(v, "warnings", json_integer((json_int_t)l->warnings));
    for (size_t i = 0; i < l->len && !bad; i++)
        bad |= json_array_append_new(arr, diag_to_json(&l->items[i]));
    bad |= json_object_set(v, "diagnostics", arr);
    if (l->dropped && !bad)
        bad |= json_object_set_new(v, "diagnostics_dropped", json_integer((json_int_t)l->dropped));
    json_decref(arr);
    if (bad) {
        json_decref(v);
        return NULL;
    }
    return v;
}

int pages_doc_json(struct buf *out, const struct pages_doc *d, bool head_only, pages_write_fn write,
                   void *payload)
{
    if (write == NULL && d->plan != NULL && !head_only &&
        reserve_tight(out, 4096 + actions_estimate(d->plan, 0, d->plan->nactions)) != 0)
        return RV_ENOMEM;
    int rc = buf_puts(out, "{\"sha\":");
    rc = rc ? rc : put_str(out, d->sha);
    rc = rc ? rc : buf_puts(out, ",\"base\":");
    rc = rc ? rc : put_str(out, d->base);
    rc = rc ? rc
            : buf_puts(out, d->pull_request ? ",\"kind\":\"pull_request\",\"pull_request\":"
                                            : ",\"kind\":\"main\",\"pull_request\":");
    if (rc == 0 && d->pull_request)
        rc = buf_printf(out, "%llu", (unsigned long long)d->number);
    else if (rc == 0)
        rc = buf_puts(out, "null");
    rc = rc ? rc : buf_puts(out, ",\"validation\":");
    rc = rc ? rc : put_json(out, validation_json(d->diags));
    if (rc == 0 && d->plan_error) {
        rc = buf_puts(out, ",\"plan_error\":");
        rc = rc ? rc : put_str(out, d->plan_error);
    }
    rc = rc ? rc : buf_puts(out, ",\"plan\":");
    if (rc == 0 && d->plan == NULL) {
        rc = buf_puts(out, "null");
    } else if (rc == 0 && head_only) {
        /* the plan without its actions: base, head, revision, summary */
        struct plan h = *d->plan;
        h.actions = NULL;
        h.nactions = 0;
        json_t *j = plan_to_json(&h);
        if (j != NULL)
            json_object_del(j, "actions");
        rc = put_json(out, j);
    } else if (rc == 0) {
        rc = pages_plan_json(out, d->plan, 0, write, payload);
    }
    rc = rc ? rc : buf_putc(out, '}');
    rc = rc ? rc : drain(out, write, payload, true);
    return rc;
}

int pages_doc_text(FILE *f, const struct pages_doc *d)
{
    if (d->plan != NULL)
        return plan_print_text(f, d->plan, false);
    if (d->plan_error != NULL)
        fprintf(f, "not planned: %s\n", d->plan_error);
    else
        fprintf(f, "not planned: specs are invalid (%zu error%s); fix them and push again\n",
                d->diags->errors, d->diags->errors == 1 ? "" : "s");
    return ferror(f) ? RV_EIO : 0;
}

/* --- compression --- */

/* A zstd stream into a buffer. */
struct zout {
    ZSTD_CCtx *cctx;
    struct buf out;
};

static int zout_put(struct zout *z, const void *data, size_t len, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {data, len, 0};
    for (;;) {
        if (reserve_tight(&z->out, ZSTD_CStreamOutSize()) != 0)
            return RV_ENOMEM;
        ZSTD_outBuffer o = {z->out.data + z->out.len, z->out.cap - z->out.len - 1, 0};
        size_t left = ZSTD_compressStream2(z->cctx, &o, &in, mode);
        if (ZSTD_isError(left))
            return RV_ENOMEM;
        z->out.len += o.pos;
        if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
            return 0;
    }
}

static int zout_write(const char *data, size_t len, void *payload)
{
    return zout_put(payload, data, len, ZSTD_e_continue);
}

static int zout_begin(struct zout *z)
{
    buf_init(&z->out);
    z->cctx = ZSTD_createCCtx();
    return z->cctx != NULL ? 0 : RV_ENOMEM;
}

static int zout_end(struct zout *z)
{
    return zout_put(z, "", 0, ZSTD_e_end);
}

static void zout_release(struct zout *z)
{
    ZSTD_freeCCtx(z->cctx);
    z->cctx = NULL;
    buf_release(&z->out);
}

/* The plan's text through a FILE that compresses what it is given. */
static ssize_t text_cookie_write(void *cookie, const char *data, size_t len)
{
    return zout_put(cookie, data, len, ZSTD_e_continue) == 0 ? (ssize_t)len : -1;
}

static int compress_text(struct zout *z, const struct pages_doc *d)
{
    cookie_io_functions_t io = {.write = text_cookie_write};
    FILE *f = fopencookie(z, "w", io);
    if (f == NULL)
        return RV_ENOMEM;
    int rc = pages_doc_text(f, d);
    if (fclose(f) != 0 && rc == 0)
        rc = RV_ENOMEM;
    return rc ? rc : zout_end(z);
}

/* Decompress len bytes into *out (NUL-terminated), at most
 * RV_SERVE_PAGE_MAX bytes. */
static int unzstd(char **out, size_t *out_len, const void *data, size_t len)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    struct buf b = BUF_INIT;
    ZSTD_inBuffer in = {data, len, 0};
    size_t ret = 1;
    int rc = dctx ? 0 : RV_ENOMEM;
    while (rc == 0 && (in.pos < in.size || ret != 0)) {
        if (b.len > RV_SERVE_PAGE_MAX) {
            rc = RV_ELIMIT;
            break;
        }
        if (reserve_tight(&b, ZSTD_DStreamOutSize()) != 0) {
            rc = RV_ENOMEM;
            break;
        }
        ZSTD_outBuffer o = {b.data + b.len, b.cap - b.len - 1, 0};
        ret = ZSTD_decompressStream(dctx, &o, &in);
        if (ZSTD_isError(ret) || (o.pos == 0 && in.pos == in.size && ret != 0))
            rc = RV_EPARSE; /* damaged, or cut short */
        b.len += o.pos;
    }
    ZSTD_freeDCtx(dctx);
    if (rc == 0 && reserve_tight(&b, 0) != 0)
        rc = RV_ENOMEM;
    if (rc != 0) {
        buf_release(&b);
        return rc;
    }
    b.data[b.len] = '\0';
    *out_len = b.len;
    *out = buf_detach(&b);
    return 0;
}

/* --- storage --- */

static int sql_error(struct db *db, struct rv_error *err, const char *what)
{
    return rv_error_set(err, RV_EDB, false, "cannot %s plan pages: %s", what,
                        sqlite3_errmsg(db_handle(db)));
}

int pages_store(int64_t *out_id, struct db *db, const struct pages_doc *d, int64_t now,
                struct rv_error *err)
{
    struct buf head = BUF_INIT, scratch = BUF_INIT;
    struct zout zj = {0}, zt = {0};
    sqlite3_stmt *st = NULL;
    bool in_tx = false;
    int64_t id = 0;
    int rc = pages_doc_json(&head, d, true, NULL, NULL);
    if (rc == 0)
        rc = zout_begin(&zj);
    if (rc == 0)
        rc = pages_doc_json(&scratch, d, false, zout_write, &zj);
    if (rc == 0)
        rc = zout_end(&zj);
    buf_release(&scratch);
    if (rc == 0)
        rc = zout_begin(&zt);
    if (rc == 0)
        rc = compress_text(&zt, d);
    if (rc != 0) {
        rc = rv_error_set(err, rc, false, "cannot build the plan page of %s: %s", d->sha,
                          rv_strerror(rc));
        goto out;
    }
    if (zj.out.len > INT32_MAX || zt.out.len > INT32_MAX || head.len > INT32_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "the plan page of %s is over 2 GiB", d->sha);
        goto out;
    }
    rc = db_begin(db, err);
    if (rc != 0)
        goto out;
    in_tx = true;
    if (sqlite3_prepare_v2(db_handle(db),
                           "INSERT INTO plans (base_sha, head_sha, observed_rev, json, created_at)"
                           " VALUES (?, ?, 0, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, d->base ? d->base : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, d->sha, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, head.data, (int)head.len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, now) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        rc = sql_error(db, err, "store");
        goto out;
    }
    id = db_last_insert_id(db);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db_handle(db),
                           "INSERT INTO plan_pages (plan_id, json_zst, text_zst) VALUES (?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
        sqlite3_bind_blob(st, 2, zj.out.data, (int)zj.out.len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 3, zt.out.data, (int)zt.out.len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        rc = sql_error(db, err, "store");
        goto out;
    }
    rc = db_commit(db, err);
    in_tx = rc != 0;
    if (rc == 0 && out_id != NULL)
        *out_id = id;
out:
    sqlite3_finalize(st);
    if (in_tx)
        db_rollback(db);
    zout_release(&zj);
    zout_release(&zt);
    buf_release(&head);
    return rc;
}

int pages_store_prune(int64_t *out_deleted, struct db *db, int64_t before, struct rv_error *err)
{
    int rc = db_run(db, err,
                    "DELETE FROM plans WHERE created_at < ?"
                    " AND id NOT IN (SELECT max(id) FROM plans GROUP BY head_sha)"
                    " AND id NOT IN (SELECT plan_id FROM actions WHERE plan_id IS NOT NULL)",
                    "l", before);
    if (rc == 0 && out_deleted)
        *out_deleted = db_changes(db);
    return rc;
}

void pages_page_release(struct pages_page *p)
{
    free(p->head);
    free(p->json);
    free(p->text);
    memset(p, 0, sizeof(*p));
}

int pages_store_get(struct pages_page *out, struct db *db, const char *sha, bool want_json,
                    bool want_text, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    struct pages_page pg = {0};
    int rc = db_prepare(&st, db, err,
                        "SELECT p.json, g.json_zst, g.text_zst FROM plans p"
                        " JOIN plan_pages g ON g.plan_id = p.id"
                        " WHERE p.head_sha = ? ORDER BY p.id DESC LIMIT 1",
                        "t", sha);
    if (rc != 0)
        goto out;
    rc = db_step(st, db, err);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = RV_ENOTFOUND;
        goto out;
    }
    rc = db_column_text(&pg.head, st, 0) != 0 ? RV_ENOMEM : 0;
    if (rc == 0 && want_json)
        rc = unzstd(&pg.json, &pg.json_len, sqlite3_column_blob(st, 1),
                    (size_t)sqlite3_column_bytes(st, 1));
    if (rc == 0 && want_text)
        rc = unzstd(&pg.text, &pg.text_len, sqlite3_column_blob(st, 2),
                    (size_t)sqlite3_column_bytes(st, 2));
    if (rc != 0) {
        rc = rv_error_set(err, rc, false, "the stored plan page of %s cannot be read: %s", sha,
                          rv_strerror(rc));
        goto out;
    }
    *out = pg;
    memset(&pg, 0, sizeof(pg));
out:
    pages_page_release(&pg);
    db_finalize(st);
    return rc;
}

bool pages_sha_valid(const char *s)
{
    size_t n = strlen(s);
    return (n == 40 || n == 64) && strspn(s, "0123456789abcdef") == n;
}

/* --- HTML --- */

int pages_html_escape(struct buf *out, const char *s)
{
    int rc = 0;
    for (const char *p = s; *p && rc == 0; p++) {
        switch (*p) {
        case '&':
            rc = buf_puts(out, "&amp;");
            break;
        case '<':
            rc = buf_puts(out, "&lt;");
            break;
        case '>':
            rc = buf_puts(out, "&gt;");
            break;
        case '"':
            rc = buf_puts(out, "&quot;");
            break;
        case '\'':
            rc = buf_puts(out, "&#39;");
            break;
        default:
            rc = buf_putc(out, *p);
        }
    }
    return rc;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int html_diag(struct buf *out, const json_t *d)
{
    const char *sev = jstr(d, "severity");
    const char *file = jstr(d, "file"), *path = jstr(d, "path");
    json_int_t line = json_integer_value(json_object_get(d, "line"));
    json_int_t col = json_integer_value(json_object_get(d, "column"));
    int rc = buf_printf(out, "<li class=\"%s\"><code>", strcmp(sev, "error") ? "warning" : "error");
    if (rc == 0 && file[0]) {
        rc = pages_html_escape(out, file);
        if (rc == 0 && line)
            rc = buf_printf(out, ":%lld", (long long)line);
        if (rc == 0 && line && col)
            rc = buf_printf(out, ":%lld", (long long)col);
        rc = rc ? rc : buf_puts(out, ": ");
    }
    rc = rc ? rc : buf_printf(out, "%s:</code> ", strcmp(sev, "error") ? "warning" : "error");
    if (rc == 0 && path[0]) {
        rc = buf_puts(out, "<code>");
        rc = rc ? rc : pages_html_escape(out, path);
        rc = rc ? rc : buf_puts(out, "</code>: ");
    }
    rc = rc ? rc : pages_html_escape(out, jstr(d, "message"));
    rc = rc ? rc : buf_puts(out, "</li>\n");
    return rc;
}

static const char page_style[] =
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;"
    "color:#1f2328}code,pre{font-family:ui-monospace,monospace}pre{background:#f6f8fa;"
    "padding:1em;overflow:auto}.ok{color:#1a7f37}.error{color:#cf222e}.warning{color:#9a6700}"
    "li{margin:.2em 0}nav a{margin-right:1em}";

int pages_render_html(struct buf *out, const char *sha, const char *head, const char *text,
                      const char *branch)
{
    json_t *doc = json_loads(head, 0, NULL);
    const json_t *v = json_object_get(doc, "validation");
    const json_t *diags = json_object_get(v, "diagnostics");
    const char *base = json_string_value(json_object_get(doc, "base"));
    const char *plan_error = json_string_value(json_object_get(doc, "plan_error"));
    bool pr = strcmp(jstr(doc, "kind"), "pull_request") == 0;
    json_int_t errors = json_integer_value(json_object_get(v, "errors"));
    json_int_t warnings = json_integer_value(json_object_get(v, "warnings"));
    int rc = doc ? 0 : RV_EPARSE;

    rc = rc ? rc
            : buf_puts(out, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                            "<title>reeve plan ");
    rc =
        rc ? rc : buf_printf(out, "%.12s</title><style>%s</style></head><body>\n", sha, page_style);
    rc = rc ? rc : buf_printf(out, "<h1>Plan for <code>%s</code></h1>\n<p>", sha);
    if (rc == 0 && pr) {
        rc = buf_printf(out, "Head of pull request #%lld into <code>",
                        (long long)json_integer_value(json_object_get(doc, "pull_request")));
        rc = rc ? rc : pages_html_escape(out, branch);
        rc = rc ? rc : buf_puts(out, "</code>: what merging it would change.");
    } else if (rc == 0) {
        rc = buf_puts(out, "Commit of <code>");
        rc = rc ? rc : pages_html_escape(out, branch);
        rc = rc ? rc : buf_puts(out, "</code>: what applying it changes.");
    }
    if (rc == 0 && base && base[0] && pages_sha_valid(base))
        rc = buf_printf(out, " Compared with <a href=\"%s\"><code>%.12s</code></a>%s.", base, base,
                        pr ? " (the merge base)" : " (the previous commit applied)");
    rc = rc ? rc : buf_puts(out, "</p>\n<h2>Validation</h2>\n");
    if (rc == 0)
        rc = buf_printf(out, "<p class=\"%s\">%s: %lld error%s, %lld warning%s.</p>\n",
                        errors ? "error" : "ok", errors ? "Invalid" : "Valid", (long long)errors,
                        errors == 1 ? "" : "s", (long long)warnings, warnings == 1 ? "" : "s");
    if (rc == 0 && json_array_size(diags) > 0) {
        rc = buf_puts(out, "<ul>\n");
        for (size_t i = 0; i < json_array_size(diags) && rc == 0; i++)
            rc = html_diag(out, json_array_get(diags, i));
        rc = rc ? rc : buf_puts(out, "</ul>\n");
    }
    json_int_t dropped = json_integer_value(json_object_get(v, "diagnostics_dropped"));
    if (rc == 0 && dropped)
        rc = buf_printf(out, "<p>%lld more diagnostics not shown.</p>\n", (long long)dropped);
    rc = rc ? rc : buf_puts(out, "<h2>Plan</h2>\n");
    if (rc == 0 && plan_error) {
        rc = buf_puts(out, "<p class=\"error\">");
        rc = rc ? rc : pages_html_escape(out, plan_error);
        rc = rc ? rc : buf_puts(out, "</p>\n");
    }
    rc = rc ? rc : buf_puts(out, "<pre>");
    rc = rc ? rc : pages_html_escape(out, text);
    rc = rc ? rc : buf_puts(out, "</pre>\n<nav><a href=\"?format=json\">JSON</a>");
    if (rc == 0 && base && base[0] && pages_sha_valid(base))
        rc = buf_printf(out, "<a href=\"%s\">base plan</a>", base);
    rc = rc ? rc
            : buf_puts(out, "<a href=\"../healthz\">health</a><a href=\"../metrics\">metrics"
                            "</a></nav>\n</body></html>\n");
    json_decref(doc);
    return rc;
}
