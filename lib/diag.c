#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "limits.h"

void diag_list_init(struct diag_list *l) { memset(l, 0, sizeof(*l)); }

void diag_list_release(struct diag_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].file);
        free(l->items[i].path);
        free(l->items[i].msg);
    }
    free(l->items);
    diag_list_init(l);
}

int diag_add(struct diag_list *l, enum diag_severity sev, const char *file, unsigned line,
             unsigned col, const char *path, const char *fmt, ...)
{
    if (sev == DIAG_ERROR)
        l->errors++;
    else
        l->warnings++;
    if (l->len >= RV_DIAG_MAX) {
        l->dropped++;
        return 0;
    }
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct diag *p = realloc(l->items, cap * sizeof(*p));
        if (p == NULL) {
            l->dropped++;
            return RV_ENOMEM;
        }
        l->items = p;
        l->cap = cap;
    }
    char msg[RV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct diag *d = &l->items[l->len];
    d->file = strdup(file ? file : "");
    d->path = strdup(path ? path : "");
    d->msg = strdup(msg);
    d->line = line;
    d->col = col;
    d->severity = sev;
    if (!d->file || !d->path || !d->msg) {
        free(d->file);
        free(d->path);
        free(d->msg);
        l->dropped++;
        return RV_ENOMEM;
    }
    l->len++;
    return 0;
}

static int diag_cmp(const void *pa, const void *pb)
{
    const struct diag *a = pa, *b = pb;
    int c = strcmp(a->file, b->file);
    if (c)
        return c;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    if (a->severity != b->severity)
        return a->severity < b->severity ? -1 : 1;
    c = strcmp(a->path, b->path);
    if (c)
        return c;
    return strcmp(a->msg, b->msg);
}

void diag_list_sort(struct diag_list *l)
{
    if (l->len > 1)
        qsort(l->items, l->len, sizeof(*l->items), diag_cmp);
}

void diag_print(FILE *out, const struct diag *d)
{
    if (d->file[0]) {
        fputs(d->file, out);
        if (d->line) {
            fprintf(out, ":%u", d->line);
            if (d->col)
                fprintf(out, ":%u", d->col);
        }
        fputs(": ", out);
    }
    fputs(d->severity == DIAG_ERROR ? "error: " : "warning: ", out);
    if (d->path[0])
        fprintf(out, "%s: ", d->path);
    fprintf(out, "%s\n", d->msg);
}

void diag_list_print(FILE *out, const struct diag_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        diag_print(out, &l->items[i]);
    if (l->dropped)
        fprintf(out, "note: %zu more diagnostics not shown\n", l->dropped);
}

json_t *diag_to_json(const struct diag *d)
{
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "file", d->file, "line",
                     (json_int_t)d->line, "column", (json_int_t)d->col, "severity",
                     d->severity == DIAG_ERROR ? "error" : "warning", "path", d->path,
                     "message", d->msg);
}
