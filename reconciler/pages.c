/* pages.c - plan pages: build, store, look up and render. */
#include "pages.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

int pages_plan_json(struct buf *out, const struct plan *p, size_t chunk)
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
            rc = put_actions(out, p, start, e - start, start > 0);
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

int pages_doc_json(struct buf *out, const struct pages_doc *d)
{
    int rc = buf_puts(out, "{\"sha\":");
    rc = rc ? rc : put_str(out, d->sha);
    rc = rc ? rc : buf_puts(out, ",\"base\":");
    rc = rc ? rc : put_str(out, d->base);
    rc = rc ? rc : buf_puts(out, d->pull_request ? ",\"kind\":\"pull_request\",\"pull_request\":"
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
    if (rc == 0)
        rc = d->plan ? pages_plan_json(out, d->plan, 0) : buf_puts(out, "null");
    rc = rc ? rc : buf_putc(out, '}');
    return rc;
}

int pages_doc_text(struct buf *out, const struct pages_doc *d)
{
    char *mem = NULL;
    size_t len = 0;
    int rc = 0;
    if (d->plan == NULL) {
        if (d->plan_error)
            return buf_printf(out, "not planned: %s\n", d->plan_error);
        return buf_printf(out, "not planned: specs are invalid (%zu error%s); fix them and push "
                               "again\n",
                          d->diags->errors, d->diags->errors == 1 ? "" : "s");
    }
    FILE *f = open_memstream(&mem, &len);
    if (f == NULL)
        return RV_ENOMEM;
    rc = plan_print_text(f, d->plan, false);
    if (fclose(f) != 0 && rc == 0)
        rc = RV_ENOMEM;
    if (rc == 0)
        rc = buf_append(out, mem, len);
    free(mem);
    return rc;
}

/* --- storage --- */

static int sql_error(struct db *db, struct rv_error *err, const char *what)
{
    return rv_error_set(err, RV_EDB, false, "cannot %s plan pages: %s", what,
                        sqlite3_errmsg(db_handle(db)));
}

int pages_store_put(int64_t *out_id, struct db *db, const char *sha, const char *base,
                    const char *json, size_t json_len, int64_t now, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (json_len > INT32_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "the plan page of %s is larger than 2 GiB",
                            sha);
    /* Bound without a copy: the plan of a whole fleet is tens of MiB. */
    if (sqlite3_prepare_v2(db_handle(db),
                           "INSERT INTO plans (base_sha, head_sha, observed_rev, json, created_at)"
                           " VALUES (?, ?, 0, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, base ? base : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, sha, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, json, (int)json_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, now) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        rc = sql_error(db, err, "store");
    else
        *out_id = db_last_insert_id(db);
    sqlite3_finalize(st);
    return rc;
}

int pages_store_put_text(struct db *db, int64_t id, const char *text, size_t text_len,
                         struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (text_len > INT32_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "a plan page's text is larger than 2 GiB");
    if (sqlite3_prepare_v2(db_handle(db), "UPDATE plans SET text = ? WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, text, (int)text_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        rc = sql_error(db, err, "store");
    sqlite3_finalize(st);
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

int pages_store_get(char **out_json, char **out_text, struct db *db, const char *sha,
                    struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    char *json = NULL, *text = NULL;
    int rc = db_prepare(&st, db, err,
                        "SELECT json, text FROM plans WHERE head_sha = ? ORDER BY id DESC LIMIT 1",
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
    if (db_column_text(&json, st, 0) != 0 || db_column_text(&text, st, 1) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    *out_json = json;
    *out_text = text;
    json = text = NULL;
    rc = 0;
out:
    free(json);
    free(text);
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

/* The document without its plan: everything before ,"plan": closed with a
 * brace. pages_doc_json writes "plan" last and no earlier key or string can
 * hold that byte sequence unescaped, so the cut is exact; without it the
 * whole document is read. */
static json_t *load_head(const char *json)
{
    const char *cut = strstr(json, ",\"plan\":");
    json_t *j = NULL;
    if (cut != NULL) {
        size_t n = (size_t)(cut - json);
        char *head = malloc(n + 2);
        if (head == NULL)
            return NULL;
        memcpy(head, json, n);
        head[n] = '}';
        head[n + 1] = '\0';
        j = json_loadb(head, n + 1, 0, NULL);
        free(head);
    }
    return j ? j : json_loads(json, 0, NULL);
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

int pages_render_html(struct buf *out, const char *sha, const char *json, const char *text,
                      const char *branch)
{
    json_t *doc = load_head(json);
    const json_t *v = json_object_get(doc, "validation");
    const json_t *diags = json_object_get(v, "diagnostics");
    const char *base = json_string_value(json_object_get(doc, "base"));
    const char *plan_error = json_string_value(json_object_get(doc, "plan_error"));
    bool pr = strcmp(jstr(doc, "kind"), "pull_request") == 0;
    json_int_t errors = json_integer_value(json_object_get(v, "errors"));
    json_int_t warnings = json_integer_value(json_object_get(v, "warnings"));
    int rc = doc ? 0 : RV_EPARSE;

    rc = rc ? rc : buf_puts(out, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                                 "<title>reeve plan ");
    rc = rc ? rc : buf_printf(out, "%.12s</title><style>%s</style></head><body>\n", sha,
                              page_style);
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
    rc = rc ? rc : buf_puts(out, "<a href=\"../healthz\">health</a><a href=\"../metrics\">metrics"
                                 "</a></nav>\n</body></html>\n");
    json_decref(doc);
    return rc;
}
