/* pages.h - plan pages: the document reeve keeps for every commit it
 * planned, served as GET /plans/<sha> (HTML) and GET /plans/<sha>?format=json.
 *
 * The JSON document:
 *   {"sha", "base", "kind": "pull_request" | "main", "pull_request": n | null,
 *    "validation": {"valid", "errors", "warnings", "diagnostics": [diag_to_json...]},
 *    "plan": plan_to_json(...) | null}
 * "plan" is null when the specs are invalid (they are not planned) or when
 * planning failed ("plan_error", before "plan", then says why).
 *
 * Storage (store.h): plans.json holds the document's head, the same
 * document whose "plan" keeps everything but "actions" (base, head,
 * observed_revision, summary); plan_pages holds the whole document and the
 * plan's text form (as `reeve plan` prints it), each compressed with zstd.
 * Both are written as a stream, action by action: the plan of every cluster
 * of a large fleet (tens of MiB of JSON) never sits in memory as text, nor
 * as one JSON tree.
 *
 * Writing runs in the reconcile worker, reading in a page worker: both
 * block (SQLite), so neither runs on the loop.
 */
#ifndef REEVE_PAGES_H
#define REEVE_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "diag.h"
#include "err.h"
#include "planner.h"

struct pages_doc {
    const char *sha;
    const char *base;              /* NULL when there is none */
    bool pull_request;             /* kind: pull request head, or a commit of the main branch */
    uint64_t number;               /* the pull request's number */
    const struct diag_list *diags; /* validation, sorted */
    const struct plan *plan;       /* NULL: not planned */
    const char *plan_error;        /* why planning failed, or NULL */
};

/* Called with successive pieces of a document being written. */
typedef int (*pages_write_fn)(const char *data, size_t len, void *payload);

/* Write the JSON document (compact, keys in the order above). With write
 * NULL it all goes to out; otherwise out is scratch space handed to write
 * in pieces and left empty. head_only: the head stored in plans.json.
 * RV_ENOMEM, or what write returned. */
int pages_doc_json(struct buf *out, const struct pages_doc *d, bool head_only, pages_write_fn write,
                   void *payload);
/* The plan's JSON exactly as plan_to_json() dumped compactly with its keys
 * in order, written chunk (0: RV_SERVE_JSON_CHUNK_ACTIONS) actions at a
 * time; write as above. */
int pages_plan_json(struct buf *out, const struct plan *p, size_t chunk, pages_write_fn write,
                    void *payload);
/* The plan in the text form of `reeve plan` (no colours), or for an
 * unplanned commit a line saying why, to f. RV_EIO. */
int pages_doc_text(FILE *f, const struct pages_doc *d);

/* Store a page for d->sha: a plans row and its plan_pages row, in one
 * transaction. *out_id (may be NULL) is the plans row. The newest page of
 * a commit is the one shown. */
int pages_store(int64_t *out_id, struct db *db, const struct pages_doc *d, int64_t now,
                struct rv_error *err);
/* Delete pages created before `before`, except the newest of each commit
 * and those the executor's journal refers to. */
int pages_store_prune(int64_t *out_deleted, struct db *db, int64_t before, struct rv_error *err);

/* A stored page, read back. Strings are NUL-terminated; free() them. */
struct pages_page {
    char *head; /* plans.json */
    char *json; /* the whole document; NULL unless asked for */
    size_t json_len;
    char *text; /* the plan's text form; NULL unless asked for */
    size_t text_len;
};

/* The newest page of sha, with the whole JSON and/or the text decompressed
 * as asked. RV_ENOTFOUND when sha was never planned; RV_EPARSE for a
 * damaged row. */
int pages_store_get(struct pages_page *out, struct db *db, const char *sha, bool want_json,
                    bool want_text, struct rv_error *err);
void pages_page_release(struct pages_page *p);

/* A full lowercase hex commit id (40 or 64 digits). */
bool pages_sha_valid(const char *s);

/* The HTML page: commit, kind, validation with every diagnostic (from the
 * head document), the plan text and links. Every piece of user data is
 * escaped. */
int pages_render_html(struct buf *out, const char *sha, const char *head, const char *text,
                      const char *branch);

/* HTML-escape s (& < > " ') onto out. */
int pages_html_escape(struct buf *out, const char *s);

#endif
