/* source.h - the Git source: a bare mirror of the spec repository that reeve
 * owns, fetched incrementally with libgit2, and read by commit.
 *
 * The mirror holds exactly what reeve tracks, in its own ref namespace:
 *   refs/heads/<main>        the main branch
 *   refs/reeve/pull/<n>      head of pull request (GitHub, Gitea) or merge
 *                            request (GitLab) number <n>
 * Refs deleted on the server (closed pull requests, on forges that delete
 * them) are pruned on fetch. Tags and other branches are not fetched.
 *
 * Threads. Every function here blocks (disk and network) and must run off the
 * libuv loop, e.g. in uv_queue_work. Rules:
 *   - source_global_init() once at startup, before any thread uses a source;
 *     source_global_shutdown() once at exit, after all of them are done.
 *   - A struct source (one libgit2 repository handle) is used by one thread
 *     at a time. It may move between threads when the caller serializes the
 *     calls (e.g. one work item per source in flight). For parallel readers,
 *     open one source per thread on the same mirror directory.
 *   - Readers (resolve, read_file, changed_files, ...) may run on their own
 *     sources while another source fetches into the same mirror: objects are
 *     written before refs move. Fetches into one mirror are serialized by a
 *     lock file; a second concurrent fetch fails with RV_EBUSY (retryable).
 *   - Results (lists, buffers) are plain memory owned by the caller.
 *
 * Secrets. The token or password is copied at source_open(), wiped at
 * source_free(), sent only as HTTP basic auth, and never logged; user info in
 * a URL is removed from every message (source_url()).
 */
#ifndef REEVE_SOURCE_H
#define REEVE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <git2/oid.h>

#include "buf.h"
#include "diag.h"
#include "err.h"
#include "spec.h"

/* Which pull-request refs a forge publishes. */
enum source_forge {
    SOURCE_FORGE_NONE,   /* main only */
    SOURCE_FORGE_GITHUB, /* refs/pull/<n>/head */
    SOURCE_FORGE_GITEA,  /* refs/pull/<n>/head */
    SOURCE_FORGE_GITLAB, /* refs/merge-requests/<n>/head */
};

/* "none" | "github" | "gitea" | "gitlab"; returns 0 or RV_EINVAL. */
int source_forge_parse(enum source_forge *out, const char *name);
const char *source_forge_name(enum source_forge forge);

enum source_auth {
    SOURCE_AUTH_NONE,
    SOURCE_AUTH_TOKEN, /* basic auth: username (default per forge) + token */
    SOURCE_AUTH_BASIC, /* basic auth: username + password */
};

struct source_config {
    const char *url;         /* local path, file://, http:// or https:// */
    const char *mirror_dir;  /* bare repository owned by reeve; created on first use */
    const char *main_branch; /* NULL or "" means "main" */
    enum source_forge forge;
    enum source_auth auth;
    /* SOURCE_AUTH_TOKEN: NULL means "oauth2" for GitLab and "x-access-token"
     * otherwise (Gitea takes any name). SOURCE_AUTH_BASIC: required. */
    const char *username;
    /* The token or password, already resolved by the caller; copied. */
    const char *secret;
    /* Deadline of one fetch; 0 means RV_GIT_FETCH_TIMEOUT_MS. */
    unsigned fetch_timeout_ms;
};

/* Zero everything (forge none, no auth, default branch and timeout). */
void source_config_init(struct source_config *cfg);

struct source; /* opaque: one mirror + one libgit2 repository handle */

/* Initialize libgit2 and install reeve's socket stream, which bounds every
 * TCP connect (RV_GIT_CONNECT_TIMEOUT_MS) and every read or write
 * (io_timeout_ms; 0 means RV_GIT_IO_TIMEOUT_MS) of HTTP and HTTPS transfers,
 * so a silent server cannot hold a worker thread. HTTP proxies are not
 * supported through it. Call once before any thread starts; the timeout is
 * not changed afterwards. */
int source_global_init(unsigned io_timeout_ms, struct rv_error *err);
void source_global_shutdown(void);

/* Check the config, create the mirror (bare, HEAD -> main) when
 * mirror_dir does not exist or is empty, or open it. Does not touch the
 * network. Errors: RV_EINVAL (bad config, mirror_dir is something else),
 * RV_EGIT, RV_ENOMEM. */
int source_open(struct source **out, const struct source_config *cfg, struct rv_error *err);
void source_free(struct source *src);

/* The URL with any user info removed: safe for messages and logs. */
const char *source_url(const struct source *src);
const char *source_main_branch(const struct source *src);

enum source_ref_kind { SOURCE_REF_MAIN, SOURCE_REF_PULL };

struct source_ref_change {
    enum source_ref_kind kind;
    uint64_t pull;   /* pull/merge request number; 0 for main */
    git_oid old_oid; /* all zero: the ref is new */
    git_oid new_oid; /* all zero: the ref was deleted (pruned) */
};

struct source_fetch_result {
    struct source_ref_change *changes; /* main first, then pulls by number */
    size_t nchanges;
    uint64_t duration_ms; /* wall time of the fetch, for metrics */
    uint64_t received_bytes;
    unsigned received_objects;
};

void source_fetch_result_init(struct source_fetch_result *res);
void source_fetch_result_release(struct source_fetch_result *res);
/* "main" or "pull/12" into out (at least 32 bytes). */
void source_ref_change_name(char *out, size_t size, const struct source_ref_change *ch);

/* Fetch main and the forge's pull-request heads into the mirror, prune refs
 * the server no longer has, and list what changed. Errors: RV_EAUTH
 * (credentials rejected or missing; not retryable), RV_EUNAVAIL (network,
 * server errors; retryable), RV_ETIMEOUT (the fetch deadline passed, or the
 * server stayed silent for the I/O timeout; retryable),
 * RV_EBUSY (another fetch into this mirror; retryable), RV_ENOTFOUND (the
 * server has no main branch), RV_ELIMIT, RV_EGIT. The result is filled
 * (with what changed) even when main turns out to be missing; it is empty
 * after any other error. res->duration_ms is set on success and on failure. */
int source_fetch(struct source *src, struct source_fetch_result *res, struct rv_error *err);

/* "main" (the configured main branch), "pull/<n>", or any revision libgit2
 * parses (full or abbreviated SHA, "main~1", a ref name), peeled to a commit.
 * Errors: RV_ENOTFOUND, RV_EINVAL (not a commit, too long), RV_EGIT. */
int source_resolve(struct source *src, const char *rev, git_oid *out, struct rv_error *err);

/* Best common ancestor of two commits (the base of a pull request).
 * RV_ENOTFOUND when they share no history. */
int source_merge_base(struct source *src, const git_oid *a, const git_oid *b, git_oid *out,
                      struct rv_error *err);

/* Spec files: clusters/ ** / *.yaml|*.yml|*.tf.json and policies/ ** / *.yaml|*.yml,
 * regular files only (no symlinks, no submodules), no component starting
 * with '.', the same rules as spec_set_load_dir(). */
bool source_is_spec_path(const char *path, enum spec_file_kind *kind);

enum source_change { SOURCE_ADDED, SOURCE_MODIFIED, SOURCE_DELETED };
const char *source_change_name(enum source_change change);

struct source_file {
    char *path; /* relative to the repository root, '/'-separated */
    enum spec_file_kind kind;
    enum source_change change; /* source_changed_files() only; SOURCE_ADDED otherwise */
    git_oid blob;              /* content at the (head) commit; zero when deleted */
};

struct source_file_list {
    struct source_file *items; /* sorted by path (strcmp) */
    size_t len;
    size_t cap;
};

void source_file_list_init(struct source_file_list *list);
void source_file_list_release(struct source_file_list *list);

/* Spec files whose content differs between two commits' trees (rename
 * detection off: a rename is a delete and an add). A mode-only change is no
 * change. Errors: RV_ENOTFOUND (a commit is not in the mirror), RV_ELIMIT
 * (more than RV_SPEC_FILES_MAX changes), RV_EGIT, RV_ENOMEM. */
int source_changed_files(struct source *src, const git_oid *base, const git_oid *head,
                         struct source_file_list *list, struct rv_error *err);

/* Every spec file at a commit. Errors: RV_ELIMIT (deeper than
 * RV_WALK_DEPTH_MAX below clusters/ or policies/, more than
 * RV_SPEC_FILES_MAX files, a path longer than RV_PATH_MAX), RV_ENOTFOUND,
 * RV_EGIT, RV_ENOMEM. */
int source_list_spec_files(struct source *src, const git_oid *commit, struct source_file_list *list,
                           struct rv_error *err);

/* Files called name (e.g. "PAUSED") directly in each folder directly below
 * clusters/ at a commit: clusters/<folder>/<name>, regular files only,
 * folders starting with '.' skipped, sorted by path. None (an empty list)
 * when there is no clusters/. Errors: RV_ENOTFOUND, RV_ELIMIT (more than
 * RV_SPEC_FILES_MAX), RV_EGIT, RV_ENOMEM. */
int source_list_named_files(struct source *src, const git_oid *commit, const char *name,
                            struct source_file_list *list, struct rv_error *err);

/* Content of path at a commit, appended to out (cleared first). Errors:
 * RV_ENOTFOUND (no such file), RV_EINVAL (a directory, symlink or submodule;
 * a path that is absolute or has "." / ".." / empty components), RV_ELIMIT
 * (larger than RV_SPEC_FILE_MAX; nothing is read), RV_EGIT, RV_ENOMEM. */
int source_read_file(struct source *src, const git_oid *commit, const char *path, struct buf *out,
                     struct rv_error *err);

/* Read every spec file at a commit into set (spec_set_add_buffer, with the
 * repository-relative path as display path). Problems with the repository's
 * content (a file over the size limit, a too-deep tree) are error
 * diagnostics, as parse and schema errors are; the caller must not apply a
 * set whose diagnostics hold errors. The return is for failures of reeve
 * itself: RV_ENOTFOUND (commit not in the mirror), RV_EGIT, RV_ENOMEM. */
int source_load_specs(struct source *src, const git_oid *commit, struct spec_set *set,
                      struct diag_list *diags, struct rv_error *err);

/* Bring a set loaded at base up to head: for every changed spec file,
 * spec_set_remove_file(), then spec_set_add_buffer() unless it was deleted.
 * diags receives diagnostics of the changed files only; the caller keeps
 * those of unchanged files from earlier loads. Errors as source_load_specs;
 * on error the set may be partly updated: reload it with source_load_specs. */
int source_update_specs(struct source *src, struct spec_set *set, const git_oid *base,
                        const git_oid *head, struct diag_list *diags, struct rv_error *err);

#endif
