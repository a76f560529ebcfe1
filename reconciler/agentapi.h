/* agentapi.h - the agent API: registration, node reports and the built-in
 * DCS over HTTP (JSON), on lib/httpd. docs/dcs.md describes every route.
 *
 *   POST   /v1/agents/register        Bearer <registration token>
 *   POST   /v1/agents/report          Bearer <agent token>
 *   POST   /v1/dcs/session            {ttl_ms} -> {id, ttl_ms}
 *   POST   /v1/dcs/session/<id>/keepalive | /revoke
 *   GET    /v1/dcs/kv?key=K | ?prefix=P
 *   PUT    /v1/dcs/kv                 {key, value, session?}
 *   DELETE /v1/dcs/kv?key=K
 *   POST   /v1/dcs/txn                {compare, success, failure}
 *   GET    /v1/dcs/watch?prefix=P&after=R&timeout_ms=T   (long-poll)
 *   GET    /v1/agents/config          Bearer <agent token>  (docs/backups.md)
 *   POST   /v1/agents/backups         Bearer <agent token>  {records, wal}
 *
 * Tokens. A registration token is issued by the reconciler for one node of
 * one cluster (agentapi_registration_issue) and works once. Registering
 * answers an agent token (32 random bytes, hex) scoped to that cluster and
 * node; registering the node again revokes its previous agent token. Only
 * SHA-256 digests of tokens are kept (as DCS keys under /_reeve/, which no
 * agent can reach), compared in constant time, and never logged.
 *
 * Scope. An agent reads, writes and watches only keys under
 * /clusters/<namespace>/<cluster>/ (403 otherwise), and uses only sessions
 * it was granted (owner "<namespace>/<cluster>/<node>").
 *
 * Durability. A change is answered only after the batch that holds it has
 * been written to SQLite (write-behind on a worker thread, group commit),
 * so an agent never acts on a lock the reconciler could forget in a crash.
 */
#ifndef REEVE_AGENTAPI_H
#define REEVE_AGENTAPI_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "dcs.h"
#include "err.h"
#include "httpd.h"
#include "limits.h"

#define AGENTAPI_TOKEN_HEX_SIZE (2 * RV_AGENTAPI_TOKEN_BYTES + 1)

/* A node report, validated. Strings are borrowed for the callback only. */
struct agentapi_report {
    const char *namespace_;
    const char *cluster;
    const char *node;
    const char *role;     /* "primary" | "replica" | "unknown" */
    const char *version;  /* server version, "" when not given */
    const char *engine;   /* "postgresql" | "mariadb" | "" */
    const char *position; /* LSN or GTID text, "" when not given */
    bool healthy;
    int64_t lag_bytes; /* -1 when not given */
    int64_t lag_transactions; /* -1 when not given (MariaDB's lag) */
    int streaming;            /* -1 when not given, else 0 or 1 */
    int64_t timeline;  /* -1 when not given */
    int64_t ttl_s;     /* RV_OBSERVED_TTL_DEFAULT_S when not given */
    const char *json;  /* the report as compact JSON */
};

typedef void (*agentapi_report_fn)(const struct agentapi_report *report, void *payload);
typedef void (*agentapi_closed_fn)(void *payload);

struct agentapi;

/* Add the routes to h and start the expiry timer and the writer on loop.
 * dcs must outlive the agentapi; on_report may be NULL (reports are then
 * validated and dropped). On failure *out may still be set (routes already
 * added point at it): close and free it like a working one. */
int agentapi_new(struct agentapi **out, uv_loop_t *loop, struct httpd *h, struct dcs *dcs,
                 agentapi_report_fn on_report, void *payload, struct rv_error *err);

/* Stop: answer waiting watchers (503), finish the write in flight, write
 * what is still queued, close the timer, then call closed (may be NULL)
 * from the loop. From then on every route answers 503. Shut down in this
 * order: agentapi_close, then httpd_close, then agentapi_free and dcs_free. */
void agentapi_close(struct agentapi *a, agentapi_closed_fn closed, void *payload);
/* Free after closed has run and the httpd is closed; NULL is a no-op. */
void agentapi_free(struct agentapi *a);

/* Issue a one-time registration token for node of namespace_/cluster
 * (replacing an unused one issued before for the same node). The token is
 * written into out; the DCS keeps its SHA-256 only. It becomes durable with
 * the DCS's next batch (dcs_durable_seq() >= dcs_pending_seq() at return). */
int agentapi_registration_issue(char out[AGENTAPI_TOKEN_HEX_SIZE], struct dcs *dcs,
                                const char *namespace_, const char *cluster, const char *node,
                                struct rv_error *err);

/* The same with a token the caller chose (AGENTAPI_TOKEN_HEX_SIZE - 1
 * lowercase hex digits): issuing the same token again for the same node
 * makes it usable again, so a token derived from an idempotency key
 * survives a crash between issuing it and its batch being written. */
int agentapi_registration_issue_token(const char *token, struct dcs *dcs, const char *namespace_,
                                      const char *cluster, const char *node, struct rv_error *err);

/* --- backups (docs/backups.md) ---
 *
 * The agent API authenticates these routes and validates the body of a
 * POST; the owner's hooks answer (on the loop, now or deferred). Without
 * hooks both answer 503. */

/* The authenticated agent; strings valid during the hook call only. */
struct agentapi_agent {
    const char *namespace_;
    const char *cluster;
    const char *node;
    const char *key; /* "namespace/cluster" */
};

/* GET /v1/agents/config: answer req with the agent's configuration. */
typedef void (*agentapi_config_fn)(struct httpd_req *req, const struct agentapi_agent *who,
                                   void *payload);
/* POST /v1/agents/backups: body passed agentapi_backups_check; it is
 * borrowed (json_incref it to keep it past the call). Answer req with
 * 200 {"accepted": n} once stored. */
typedef void (*agentapi_backups_fn)(struct httpd_req *req, const struct agentapi_agent *who,
                                    json_t *body, void *payload);

struct agentapi_backup_hooks {
    agentapi_config_fn config;
    agentapi_backups_fn records;
    void *payload;
};

/* Install (or, with NULL, remove) the hooks; call on the loop thread. */
void agentapi_set_backup_hooks(struct agentapi *a, const struct agentapi_backup_hooks *hooks);

/* Validate a POST /v1/agents/backups body from an agent of cluster
 * ("ns/name"): {"records": [<record>...], "logs": [{"backup_id", "at",
 * "level", "line"}...] (optional), "wal": null | {"last_segment",
 * "last_archived_at"}}, every field of every record and log line by its
 * type and bounds (lib/limits.h, RV_BACKUPS_*; a level is debug, info,
 * warn or error; a line has no control characters). Whether a line's
 * backup belongs to the cluster is backups_ingest's to decide (it needs
 * the stored records). 0 when acceptable; otherwise
 * RV_EINVAL with the reason in err and *out_status 400, or 403 when a
 * record names another cluster. */
int agentapi_backups_check(int *out_status, const json_t *body, const char *cluster,
                           struct rv_error *err);

/* An RFC 3339 time ("2026-11-20T10:00:00Z", "...T10:00:00.123+02:00") as
 * Unix milliseconds. Without an offset it is UTC when zone_optional and
 * refused otherwise. RV_EINVAL when malformed. */
int agentapi_time_parse(int64_t *out_ms, const char *s, bool zone_optional);

#endif
