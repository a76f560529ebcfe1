/* pages.h - plan pages: the document reeve keeps for every commit it
 * planned, stored in the plans table, and served as GET /plans/<sha>
 * (HTML) and GET /plans/<sha>?format=json.
 *
 * The JSON document:
 *   {"sha", "base", "kind": "pull_request" | "main", "pull_request": n | null,
 *    "validation": {"valid", "errors", "warnings", "diagnostics": [diag_to_json...]},
 *    "plan": plan_to_json(...) | null}
 * "plan" is null when the specs are invalid (they are not planned) or when
 * planning failed ("plan_error" then says why). The plan is written action
 * by action, so a plan of every cluster of a large fleet never becomes one
 * JSON tree in memory.
 *
 * Writing (pages_doc_json, pages_store_put) runs in the reconcile worker;
 * reading (pages_store_get, pages_render_*) in a page worker: both block
 * (SQLite), so neither runs on the loop.
 */
#ifndef REEVE_PAGES_H
#define REEVE_PAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "diag.h"
#include "err.h"
#include "planner.h"

struct pages_doc {
    const char *sha;
    const char *base;  /* NULL when there is none */
    bool pull_request; /* kind: pull request head, or a commit of the main branch */
    uint64_t number;   /* the pull request's number */
    const struct diag_list *diags; /* validation, sorted */
    const struct plan *plan;       /* NULL: not planned */
    const char *plan_error;        /* why planning failed, or NULL */
};

/* Append the JSON document to out (compact, one line). RV_ENOMEM. */
int pages_doc_json(struct buf *out, const struct pages_doc *d);
/* The plan's JSON, exactly as plan_to_json() dumped compactly with its keys
 * in order, written chunk (0: RV_SERVE_JSON_CHUNK_ACTIONS) actions at a time. */
int pages_plan_json(struct buf *out, const struct plan *p, size_t chunk);
/* The plan in the text form of `reeve plan` (no colours), or for an
 * unplanned commit a line saying why. RV_ENOMEM, RV_EIO. */
int pages_doc_text(struct buf *out, const struct pages_doc *d);

/* Store a document for sha as a new row (the newest row of a sha is the one
 * shown) and its text in a second step, so that a large plan's JSON and
 * text are never in memory together. Neither is copied by SQLite. */
int pages_store_put(int64_t *out_id, struct db *db, const char *sha, const char *base,
                    const char *json, size_t json_len, int64_t now, struct rv_error *err);
int pages_store_put_text(struct db *db, int64_t id, const char *text, size_t text_len,
                         struct rv_error *err);
/* Delete pages created before `before`, except the newest of each commit
 * and those the executor's journal refers to. */
int pages_store_prune(int64_t *out_deleted, struct db *db, int64_t before, struct rv_error *err);
/* The newest document for sha: *out_json and *out_text (free() both).
 * RV_ENOTFOUND when sha was never planned. */
int pages_store_get(char **out_json, char **out_text, struct db *db, const char *sha,
                    struct rv_error *err);

/* A full lowercase hex commit id (40 or 64 digits). */
bool pages_sha_valid(const char *s);

/* The HTML page of a stored document: commit, kind, validation with every
 * diagnostic, the plan text and links. Every piece of user data is escaped. */
int pages_render_html(struct buf *out, const char *sha, const char *json, const char *text,
                      const char *branch);

/* HTML-escape s (& < > " ') onto out. */
int pages_html_escape(struct buf *out, const char *s);

#endif
