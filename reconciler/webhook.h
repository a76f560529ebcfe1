/* webhook.h - forge webhooks: verify, parse into a neutral event, drop
 * redeliveries, and serve them on lib/httpd.
 *
 * Forges and how a delivery is authenticated:
 *   GitHub  X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>
 *   Gitea   X-Gitea-Signature: <hex HMAC-SHA256(secret, raw body)>
 *   GitLab  X-Gitlab-Token: <secret>, compared in constant time
 * Event and delivery headers: X-GitHub-Event / X-GitHub-Delivery,
 * X-Gitea-Event / X-Gitea-Delivery, X-Gitlab-Event / X-Gitlab-Event-UUID
 * (or Idempotency-Key when the UUID is absent).
 *
 * A webhook only schedules an earlier reconcile tick; a lost or dropped one
 * costs at most one tick. So the HTTP answer comes at once: the event
 * callback only enqueues, it never works on the request path.
 */
#ifndef REEVE_WEBHOOK_H
#define REEVE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "httpd.h"
#include "limits.h"

enum webhook_forge { WEBHOOK_FORGE_GITHUB, WEBHOOK_FORGE_GITEA, WEBHOOK_FORGE_GITLAB };

enum webhook_kind {
    WEBHOOK_IGNORED,      /* authentic, but nothing reeve acts on (see ignored_reason) */
    WEBHOOK_PUSH,         /* branch or tag push, including creation and deletion */
    WEBHOOK_PULL_REQUEST, /* pull request (GitHub, Gitea) or merge request (GitLab) */
};

enum webhook_pr_action {
    WEBHOOK_PR_OPENED,
    WEBHOOK_PR_SYNCHRONIZE, /* new head commit, or (GitHub) a new base branch */
    WEBHOOK_PR_REOPENED,
    WEBHOOK_PR_CLOSED, /* merged tells whether it was merged */
};

/* Plain fixed-size fields, so an event can be copied onto a queue as is. */
struct webhook_event {
    enum webhook_forge forge;
    enum webhook_kind kind;
    /* The forge's delivery id; "" when it sent none (then no dedup). */
    char delivery[RV_WEBHOOK_DELIVERY_MAX + 1];
    /* The event name as sent: "push", "pull_request", "Merge Request Hook". */
    char event[64];
    /* Why an authentic event is ignored (kind WEBHOOK_IGNORED). */
    char ignored_reason[256];
    /* "owner/name"; on GitLab the project's path_with_namespace. */
    char repo[RV_WEBHOOK_REPO_MAX + 1];
    /* repository.id (GitHub, Gitea) or project.id (GitLab); 0 if absent. */
    int64_t repo_id;
    struct {
        char ref[RV_WEBHOOK_REF_MAX + 1];        /* full ref: "refs/heads/main", "refs/tags/v1" */
        char before[RV_WEBHOOK_SHA_HEX_MAX + 1]; /* lowercase hex; all zeros when created */
        char after[RV_WEBHOOK_SHA_HEX_MAX + 1];  /* lowercase hex; all zeros when deleted */
        bool created;
        bool deleted;
    } push;
    struct {
        enum webhook_pr_action action;
        int64_t number; /* pull request number; GitLab: the merge request iid */
        bool merged;
        char head_sha[RV_WEBHOOK_SHA_HEX_MAX + 1];
        char head_ref[RV_WEBHOOK_REF_MAX + 1];      /* branch name, "feature/x" */
        char base_ref[RV_WEBHOOK_REF_MAX + 1];      /* branch name, "main" */
        char merge_sha[RV_WEBHOOK_SHA_HEX_MAX + 1]; /* when merged and sent, else "" */
    } pr;
};

/* "github", "gitea", "gitlab". */
const char *webhook_forge_name(enum webhook_forge forge);
/* Parse a forge name (case-insensitive); RV_EINVAL for an unknown one. */
int webhook_forge_parse(enum webhook_forge *out, const char *name);
const char *webhook_pr_action_name(enum webhook_pr_action action);

/* Header look-up: the value of the named header (any case), or NULL. */
typedef const char *(*webhook_header_fn)(const char *name, void *payload);
struct webhook_headers {
    webhook_header_fn get;
    void *payload;
};

/* Verify a delivery's authenticity against secret, then parse it.
 * Returns 0 with *out filled (kind WEBHOOK_IGNORED for events reeve does not
 * use), or:
 *   RV_EAUTH   signature or token missing or wrong            (HTTP 401)
 *   RV_EPARSE  malformed JSON, or not JSON                     (HTTP 400)
 *   RV_EINVAL  missing header or required field, bad value     (HTTP 400)
 *   RV_ELIMIT  body over RV_HTTP_BODY_MAX                      (HTTP 413)
 * err says which header or field and what to change. The body is checked
 * before any of it is parsed. */
int webhook_verify_and_parse(struct webhook_event *out, enum webhook_forge forge,
                             const char *secret, const struct webhook_headers *headers,
                             const char *body, size_t len, struct rv_error *err);

/* The HTTP status for a webhook_verify_and_parse result (0 gives 202). */
int webhook_http_status(int rc);

/* Delivery ids seen recently: a ring of capacity ids (oldest forgotten
 * first) with a hash index, so every operation is O(1). */
struct webhook_dedup;

/* capacity 0 means RV_WEBHOOK_DEDUP_MAX. */
int webhook_dedup_new(struct webhook_dedup **out, size_t capacity);
void webhook_dedup_free(struct webhook_dedup *d);
bool webhook_dedup_contains(const struct webhook_dedup *d, const char *id);
/* Remember id (no-op if known); when full, forgets the oldest. RV_EINVAL for
 * an empty id or one longer than RV_WEBHOOK_DELIVERY_MAX. */
int webhook_dedup_add(struct webhook_dedup *d, const char *id);
/* True if id was seen before; otherwise remembers it and returns false. */
bool webhook_dedup_seen(struct webhook_dedup *d, const char *id);
size_t webhook_dedup_count(const struct webhook_dedup *d);

/* Called on the loop thread for each authentic, new event reeve uses. It
 * must only enqueue (copy the event) and return: 0 when queued, RV_EBUSY
 * when the queue is full (answered 503, the forge retries later and the
 * delivery id is not remembered). */
typedef int (*webhook_event_fn)(const struct webhook_event *event, void *payload);

struct webhook_route_config {
    enum webhook_forge forge;
    const char *secret; /* required; copied */
    size_t dedup_max;   /* 0 means RV_WEBHOOK_DEDUP_MAX */
    webhook_event_fn on_event;
    void *payload;
};

struct webhook_route_stats {
    uint64_t accepted;   /* 202, handed to on_event */
    uint64_t ignored;    /* 202, authentic but not used */
    uint64_t duplicates; /* 200, delivery id seen before */
    uint64_t rejected;   /* 4xx */
    uint64_t unauthorized; /* of rejected: 401, signature or token wrong or missing */
    uint64_t busy;       /* 503, on_event's queue was full */
};

struct webhook_route;

/* Serve POST path (e.g. "/hooks/github") on h. Answers:
 *   202 "accepted"                        queued for the reconciler
 *   202 "ignored: <why>"                  authentic, not an event reeve uses
 *   200 "duplicate delivery, ignored"     delivery id seen before
 *   400 / 401 / 413 with what is wrong; 405 for other methods
 *   503 when on_event's queue is full (with Retry-After)
 * The route must outlive the server: free it after httpd_close's callback. */
int webhook_route_install(struct webhook_route **out, struct httpd *h, const char *path,
                          const struct webhook_route_config *config, struct rv_error *err);
void webhook_route_stats(struct webhook_route_stats *out, const struct webhook_route *r);
void webhook_route_free(struct webhook_route *r);

#endif
