/* forge.h - commit-status clients for GitHub, Gitea and GitLab.
 *
 * Three steps, each usable alone:
 *   forge_request_build()  status -> request as data (method, URL, headers,
 *                          JSON body); pure, no I/O
 *   forge_send()           request -> response, with libcurl; BLOCKING, so the
 *                          caller runs it off the event loop
 *   forge_classify()       response -> ok | retry (at a time) | auth | permanent;
 *                          pure, takes the current time
 * forge_post() does all three.
 *
 * Field limits are enforced on the client: descriptions are cut on a UTF-8
 * character boundary and end in "…" (U+2026) when too long; a context or
 * target_url that is too long is refused (RV_EINVAL), never sent.
 *
 * Tokens appear only in request headers; nothing here logs a request.
 */
#ifndef REEVE_FORGE_H
#define REEVE_FORGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "limits.h"

enum forge_kind { FORGE_GITHUB, FORGE_GITEA, FORGE_GITLAB };

/* reeve's status states. On GitLab failure and error both become "failed". */
enum forge_state { FORGE_PENDING, FORGE_SUCCESS, FORGE_FAILURE, FORGE_ERROR };

/* One configured forge. Strings are borrowed: they must outlive the struct. */
struct forge {
    enum forge_kind kind;
    const char *name;    /* the name in reeve.yaml, e.g. "github"; keys outbox rows */
    const char *api_url; /* GitHub: https://api.github.com or https://HOST/api/v3;
                            Gitea, GitLab: https://HOST (the /api/vN is added) */
    const char *token;
    long connect_timeout_ms; /* 0: RV_FORGE_CONNECT_TIMEOUT_MS */
    long timeout_ms;         /* 0: RV_FORGE_TIMEOUT_MS */
};

/* One status for one commit. */
struct forge_status {
    const char *repo; /* "owner/name"; GitLab: "group/sub/project" or a numeric id */
    const char *sha;  /* full hex commit id, 40 or 64 digits */
    const char *context;
    enum forge_state state;
    const char *description; /* NULL or "" for none */
    const char *target_url;  /* NULL or "" for none; http(s) */
};

/* A request as data. Headers are "Name: value" lines. */
struct forge_request {
    const char *method;
    char *url;
    char *headers[RV_FORGE_HEADERS_MAX];
    size_t n_headers;
    char *body; /* JSON */
};

/* What came back. status is 0 when no HTTP answer arrived (transport_error
 * then says why: RV_ETIMEOUT, RV_EUNAVAIL, ...). Only the headers that
 * classification needs are kept. */
struct forge_response {
    long status;
    int transport_error;
    char transport_msg[256];
    char retry_after[64];
    char ratelimit_remaining[32]; /* x-ratelimit-remaining or RateLimit-Remaining */
    char ratelimit_reset[32];     /* x-ratelimit-reset or RateLimit-Reset */
    struct buf body;              /* at most RV_FORGE_RESPONSE_MAX bytes */
};

enum forge_outcome {
    FORGE_OK,        /* the forge has the status */
    FORGE_RETRY,     /* try again, at retry_at when it is set */
    FORGE_AUTH,      /* token missing, wrong or without rights; retrying won't help */
    FORGE_PERMANENT, /* the forge refused this status (404, 422, 400) */
};

struct forge_result {
    enum forge_outcome outcome;
    long http_status;               /* 0 without an HTTP answer */
    bool rate_limited;              /* a rate limit, not a failure: retry_at is the reset */
    int64_t retry_at;               /* Unix seconds; 0 when the caller picks (backoff) */
    char message[RV_ERROR_MSG_MAX]; /* lowercase, names the forge and the commit */
};

/* Defaults for timeouts; strings are borrowed. */
void forge_init(struct forge *f, enum forge_kind kind, const char *name, const char *api_url,
                const char *token);

const char *forge_kind_name(enum forge_kind kind);
int forge_kind_parse(enum forge_kind *out, const char *name);
const char *forge_state_name(enum forge_state state); /* reeve's name: "failure" */
int forge_state_parse(enum forge_state *out, const char *name);
/* The state word this forge's API expects ("failed" on GitLab). */
const char *forge_state_wire(enum forge_kind kind, enum forge_state state);

/* Copy s into *out (free() it), replacing invalid UTF-8 with U+FFFD and
 * control characters with spaces, and cut to at most max_chars characters
 * (code points), the last being "…" when it was cut. RV_ENOMEM. */
int forge_text_fit(char **out, const char *s, size_t max_chars);
/* Characters (code points) in valid UTF-8 s. */
size_t forge_utf8_chars(const char *s);

int forge_request_build(struct forge_request *out, const struct forge *f,
                        const struct forge_status *st, struct rv_error *err);
void forge_request_release(struct forge_request *req);

void forge_response_init(struct forge_response *resp);
void forge_response_release(struct forge_response *resp);
/* Send req. Returns 0 whenever an HTTP answer arrived, whatever its status;
 * a transport failure is also reported in resp (status 0) and returns 0, so
 * forge_classify() sees every outcome. Negative only for local failures
 * (out of memory, curl setup). */
int forge_send(struct forge_response *out, const struct forge *f, const struct forge_request *req,
               struct rv_error *err);

/* Classify resp for status st (named in messages) at time now:
 *   2xx                           ok
 *   401                           auth
 *   403/429 rate limited          retry at x-ratelimit-reset / Retry-After
 *                                 (or now + RV_FORGE_RATE_LIMIT_WAIT_S)
 *   403 otherwise                 auth (the token lacks rights)
 *   408, 5xx, no answer           retry (at Retry-After when given)
 *   GitLab 400 "cannot transition ... from :pending" for a pending post
 *                                 ok: the status is already pending
 *   other 4xx, 3xx                permanent, with the forge's message
 * Waits are clamped to RV_FORGE_RETRY_AFTER_MAX_S. */
void forge_classify(struct forge_result *out, const struct forge *f, const struct forge_status *st,
                    const struct forge_response *resp, int64_t now);

/* Build, send (blocking) and classify with the wall clock. Returns 0 when
 * posted; otherwise RV_EAUTH, RV_EHTTP (permanent), RV_EUNAVAIL/RV_ETIMEOUT
 * (retryable) or RV_EINVAL (the status itself is invalid), with err set and
 * out filled. */
int forge_post(struct forge_result *out, const struct forge *f, const struct forge_status *st,
               struct rv_error *err);

/* Parse a Retry-After value (delta seconds or an HTTP-date) into an absolute
 * Unix time; RV_EPARSE when it is neither. */
int forge_parse_retry_after(int64_t *out, const char *value, int64_t now);

#endif
