/* dcs_client.h - a blocking client of the reconciler's agent API (the
 * built-in DCS over HTTP, docs/dcs.md), on libcurl.
 *
 * Every call makes one request with its own curl handle, so calls may run
 * on several worker threads at once; none may run on the loop thread. Each
 * call is cut off after the client's timeout (the agent sets it shorter
 * than the renew deadline). Tokens are sent, never logged.
 *
 * HTTP answers map to codes: 401/403 RV_EAUTH, 404 RV_ENOTFOUND, 410
 * RV_ESTALE, 503 and transport failures RV_EUNAVAIL (retryable), a timeout
 * RV_ETIMEOUT (retryable), anything else unexpected RV_EPROTO.
 */
#ifndef REEVE_DCS_CLIENT_H
#define REEVE_DCS_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"
#include "limits.h"

#define DCS_CLIENT_TOKEN_SIZE (2 * RV_AGENTAPI_TOKEN_BYTES + 1)

struct dcs_client {
    char url[RV_AGENT_URL_MAX + 1];    /* base, no trailing '/' */
    char token[DCS_CLIENT_TOKEN_SIZE]; /* agent token; "" before registration */
    long timeout_ms;
    /* When set and true, a call in flight gives up (RV_ECANCELED) within
     * about a second: how a long-poll is ended at shutdown. */
    const atomic_bool *cancel;
};

/* Copy url; calls time out after timeout_ms. curl_global_init() must have
 * run (main does it). */
int dcs_client_init(struct dcs_client *c, const char *url, long timeout_ms, struct rv_error *err);
/* Wipe the token. */
void dcs_client_release(struct dcs_client *c);
/* Use token (64 hex characters) from now on. */
int dcs_client_set_token(struct dcs_client *c, const char *token, struct rv_error *err);

/* Present a registration token; on success the client holds the agent
 * token (read it from c->token to save it). cluster is "<ns>/<name>". */
int dcs_client_register(struct dcs_client *c, const char *registration_token, const char *cluster,
                        const char *node, const char *address, struct rv_error *err);

int dcs_client_session_grant(uint64_t *out_id, struct dcs_client *c, int64_t ttl_ms,
                             struct rv_error *err);
/* RV_ENOTFOUND once the session has expired. */
int dcs_client_session_keepalive(struct dcs_client *c, uint64_t id, struct rv_error *err);
int dcs_client_session_revoke(struct dcs_client *c, uint64_t id, struct rv_error *err);

/* The kv object of key ({"key","value","mod_revision","session",...}), or
 * *out NULL when absent; json_decref it. *out_rev (may be NULL) is the
 * store's revision at the read. */
int dcs_client_get(json_t **out, uint64_t *out_rev, struct dcs_client *c, const char *key,
                   struct rv_error *err);
/* The kv objects of every key under prefix (a JSON array, json_decref it;
 * empty when there are none). */
int dcs_client_list(json_t **out, struct dcs_client *c, const char *prefix, struct rv_error *err);
/* Put value (borrowed) at key, attached to session (0: none). */
int dcs_client_put(uint64_t *out_rev, struct dcs_client *c, const char *key, json_t *value,
                   uint64_t session, struct rv_error *err);
int dcs_client_delete(bool *out_deleted, struct dcs_client *c, const char *key,
                      struct rv_error *err);
/* A transaction as docs/dcs.md spells it ({compare, success, failure};
 * borrowed). */
int dcs_client_txn(bool *out_succeeded, uint64_t *out_rev, struct dcs_client *c, json_t *txn,
                   struct rv_error *err);
/* Create key = value attached to session iff the key is absent. */
int dcs_client_create(bool *out_created, struct dcs_client *c, const char *key, json_t *value,
                      uint64_t session, struct rv_error *err);
/* Long-poll: events on prefix after revision `after`, waiting up to
 * wait_ms (the HTTP timeout is stretched by that much). *out_events is a
 * JSON array (json_decref it), empty on timeout; *out_rev the revision to
 * watch from next. RV_ESTALE: re-read and watch from the read's revision. */
int dcs_client_watch(json_t **out_events, uint64_t *out_rev, struct dcs_client *c,
                     const char *prefix, uint64_t after, long wait_ms, struct rv_error *err);
/* Post a node report (borrowed; docs/dcs.md "Node reports"). */
int dcs_client_report(struct dcs_client *c, json_t *report, struct rv_error *err);
/* Any other agent API call (GET /v1/agents/config, POST /v1/agents/backups):
 * body (borrowed) may be NULL; *out (may be NULL) is the JSON answer of a
 * 2xx. path starts with '/' and is sent as given (already URL-encoded). */
int dcs_client_call(json_t **out, struct dcs_client *c, const char *method, const char *path,
                    json_t *body, struct rv_error *err);

#endif
