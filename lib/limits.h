/* limits.h - every limit reeve enforces, each with the reason for its value.
 * Input from outside (files, network, child processes) is checked against
 * these and rejected with a clear error; it is never asserted.
 */
#ifndef REEVE_LIMITS_H
#define REEVE_LIMITS_H

/* Error and diagnostic messages: long enough for a path, a field path and a
 * sentence; a longer one is cut, never overflowed. */
#define RV_ERROR_MSG_MAX 512

/* Spec files: the largest real cluster spec is a few KiB; 1 MiB leaves room
 * for generated multi-document files while bounding memory per file. */
#define RV_SPEC_FILE_MAX (1024 * 1024)
/* Nesting depth of a YAML/JSON document: the cluster schema is 6 deep;
 * 64 allows hand-written structure and stops stack-exhausting input. */
#define RV_DOC_DEPTH_MAX 64
/* Nodes in one file, counted after alias expansion: a big multi-document file
 * has a few thousand; this stops "billion laughs" before memory grows. */
#define RV_DOC_NODES_MAX 100000
/* Alias (*ref) uses in one file: anchors are for small shared blocks. */
#define RV_DOC_ALIASES_MAX 1000
/* Documents in one multi-document YAML file. */
#define RV_DOC_DOCS_MAX 1000
/* One scalar (string) value; a sealed secret is well under this. */
#define RV_DOC_SCALAR_MAX (64 * 1024)
/* Keys in one mapping. */
#define RV_DOC_MAP_KEYS_MAX 4096

/* Spec files walked by one `reeve validate` or one reconcile pass. */
#define RV_SPEC_FILES_MAX 100000
/* Diagnostics kept for one run; more are counted, not stored. */
#define RV_DIAG_MAX 10000
/* Path of a file relative to a repository root. */
#define RV_PATH_MAX 4096
/* Directory depth walked below clusters/ and policies/. */
#define RV_WALK_DEPTH_MAX 32

/* Names (Kubernetes-style DNS labels): metadata.name and namespace. */
#define RV_NAME_MAX 63
/* Field paths in messages, e.g. spec.backup.destination.s3.bucket. */
#define RV_FIELD_PATH_MAX 256

_Static_assert(RV_DOC_ALIASES_MAX < RV_DOC_NODES_MAX, "aliases are nodes");
_Static_assert(RV_DOC_SCALAR_MAX < RV_SPEC_FILE_MAX, "a scalar fits in a file");
_Static_assert(RV_FIELD_PATH_MAX < RV_ERROR_MSG_MAX, "a path fits in a message");

/* --- doc (lib/doc.c) --- */
/* User text quoted back in a message (a key, tag or anchor name) is cut to
 * this many bytes, so the position and the advice still fit in the message. */
#define RV_DOC_QUOTE_MAX 64
/* Anchor (&name) definitions in one file: like aliases, anchors are for a few
 * shared blocks; the bound also keeps each alias look-up cheap. */
#define RV_DOC_ANCHORS_MAX 1000

_Static_assert(RV_DOC_QUOTE_MAX * 4 < RV_ERROR_MSG_MAX, "a quoted name fits in a message");


/* --- db (lib/db.c) --- */
/* How long a connection waits for another connection's write lock before it
 * fails with a retryable error: reeve's write transactions are a few rows, so
 * five seconds of waiting means something is wedged, not merely busy. */
#define RV_DB_BUSY_TIMEOUT_MS 5000
/* Parameters bound in one statement by db_run()/db_prepare(): the widest
 * reeve statement binds about fifteen; a longer type string is a bug. */
#define RV_DB_BIND_MAX 32
/* Migrations one schema may list: PRAGMA user_version is an int, and this
 * catches a wrong array length before it walks off the array. */
#define RV_DB_MIGRATIONS_MAX 1000

/* --- forge (reconciler/forge.c): commit-status clients --- */
/* GitHub rejects a status whose description is over 140 characters or whose
 * context is over 255 (422 "is too long"). */
#define RV_FORGE_GITHUB_DESC_MAX 140
#define RV_FORGE_GITHUB_CONTEXT_MAX 255
/* GitLab validates name and description at 255 characters (400). */
#define RV_FORGE_GITLAB_DESC_MAX 255
#define RV_FORGE_GITLAB_NAME_MAX 255
/* GitLab also caps a status's target_url at 255 characters. */
#define RV_FORGE_GITLAB_URL_MAX 255
/* Gitea stores both as text with no documented cap; 255 keeps the UI tidy
 * and keeps reeve's statuses alike across forges. */
#define RV_FORGE_GITEA_DESC_MAX 255
#define RV_FORGE_GITEA_CONTEXT_MAX 255
/* Request URLs and target_url: common proxies and browsers handle 2 KiB;
 * reeve's plan-page links are far shorter. */
#define RV_FORGE_URL_MAX 2048
/* API tokens: GitHub fine-grained tokens are ~93 characters, GitLab's and
 * Gitea's shorter; 1 KiB also fits JWT-style installation tokens. */
#define RV_FORGE_TOKEN_MAX 1024
/* Response body kept for error messages; a status answer is ~2 KiB. */
#define RV_FORGE_RESPONSE_MAX (64 * 1024)
/* Connect and total timeouts of one status post (the caller runs it off the
 * loop, so these bound how long a worker thread is held). */
#define RV_FORGE_CONNECT_TIMEOUT_MS 10000
#define RV_FORGE_TIMEOUT_MS 30000
/* A Retry-After or rate-limit reset further away than this is clamped:
 * GitHub's primary limit resets hourly, so a larger value is a bad header. */
#define RV_FORGE_RETRY_AFTER_MAX_S 3600
/* Wait after a rate-limit answer that says neither when nor how long:
 * GitHub asks for "at least one minute" for secondary limits. */
#define RV_FORGE_RATE_LIMIT_WAIT_S 60
/* Headers in one request built by forge_request_build(). */
#define RV_FORGE_HEADERS_MAX 8

/* --- outbox (reconciler/outbox.c): commit statuses waiting to be posted --- */
/* Failed attempts (5xx, timeouts) before a status is given up: with the
 * backoff below this spans about an hour. Rate-limit waits do not count. */
#define RV_OUTBOX_ATTEMPTS_MAX 12
/* Backoff between attempts: base * 2^(attempt-1), jittered, capped. */
#define RV_OUTBOX_BACKOFF_BASE_S 2
#define RV_OUTBOX_BACKOFF_MAX_S 600
/* A status still unposted this long after it was queued is stale (newer
 * commits have moved on); it is given up even while rate limited. */
#define RV_OUTBOX_AGE_MAX_S (24 * 3600)
/* A claimed row is leased for this long, so a runner that dies mid-post
 * leaves it to be retried, and no second runner posts it meanwhile. */
#define RV_OUTBOX_LEASE_S 120
/* Rows posted by one outbox_run_once(): bounds one pass's time. */
#define RV_OUTBOX_BATCH_MAX 50
/* Posted, failed and superseded rows are kept this long for inspection and
 * deduplication, then pruned. */
#define RV_OUTBOX_KEEP_S (7 * 24 * 3600)

/* --- store (reconciler/store.c) --- */
/* Webhook delivery ids are remembered this long to drop duplicates across
 * restarts: GitHub lets a user redeliver deliveries up to 3 days old. */
#define RV_WEBHOOK_DEDUP_KEEP_S (7 * 24 * 3600)
/* Delivery ids stored for dedup are bounded by RV_WEBHOOK_DELIVERY_MAX
 * (webhook section). */

_Static_assert(RV_FORGE_GITHUB_DESC_MAX <= RV_FORGE_GITHUB_CONTEXT_MAX, "github limits");
_Static_assert(RV_FORGE_CONNECT_TIMEOUT_MS <= RV_FORGE_TIMEOUT_MS, "connect is part of total");
_Static_assert(RV_OUTBOX_LEASE_S * 1000 > RV_FORGE_TIMEOUT_MS,
               "a lease outlives the post it covers");
_Static_assert(RV_OUTBOX_BACKOFF_BASE_S <= RV_OUTBOX_BACKOFF_MAX_S, "backoff base under cap");
_Static_assert(RV_FORGE_RETRY_AFTER_MAX_S < RV_OUTBOX_AGE_MAX_S, "a wait fits in a row's life");

/* --- source (reconciler/source.c): the Git mirror --- */
/* A whole fetch (negotiation, pack download, ref updates) is abandoned after
 * this long: a first clone of a large spec repository over a slow link fits,
 * and a worker thread is never held longer. */
#define RV_GIT_FETCH_TIMEOUT_MS (10 * 60 * 1000)
/* A TCP connect to a Git server: beyond this the host is down or filtered. */
#define RV_GIT_CONNECT_TIMEOUT_MS 10000
/* A read or write on a Git HTTP connection that makes no progress for this
 * long fails: forges answer within seconds, so a silent peer is hung. */
#define RV_GIT_IO_TIMEOUT_MS 30000
/* Credential attempts per fetch: libgit2 asks again after every 401, and a
 * rejected token will not start working by sending it again. */
#define RV_GIT_AUTH_ATTEMPTS 1
/* Mirrored refs (main + pull/merge-request heads) compared per fetch: the
 * largest public repositories have ~150k pull requests; this bounds the
 * memory of one comparison (~50 bytes a ref). */
#define RV_GIT_REFS_MAX 500000
/* A revision string given to source_resolve(): a full SHA-256 object id is
 * 64 characters; ref names with a suffix like ~1 stay well under this. */
#define RV_GIT_REVSPEC_MAX 256
/* Repository URLs (forges accept a few hundred characters). */
#define RV_GIT_URL_MAX 2048

_Static_assert(RV_GIT_CONNECT_TIMEOUT_MS < RV_GIT_FETCH_TIMEOUT_MS, "connect is part of a fetch");
_Static_assert(RV_GIT_IO_TIMEOUT_MS < RV_GIT_FETCH_TIMEOUT_MS, "one read is part of a fetch");
_Static_assert(RV_GIT_AUTH_ATTEMPTS >= 1, "credentials are sent at least once");

/* --- schema (specs-schema/schema.c): JSON Schema interpreter --- */
/* Schema keywords entered while validating one node and its descendants
 * ($ref, allOf, if/then, items...): the embedded schemas use about six per
 * document level; this also stops a $ref cycle in a test schema. */
#define RV_SCHEMA_DEPTH_MAX 1024
/* Characters of a user's value quoted back in a message ("(got '...')"):
 * enough to recognise the value, short enough to keep one line readable. */
#define RV_SCHEMA_GOT_MAX 48
/* Documents one schema may reference by $id (cluster.tf.schema.json uses
 * cluster.schema.json): a fixed table keeps look-ups simple. */
#define RV_SCHEMA_DOCS_MAX 4

_Static_assert(RV_SCHEMA_DEPTH_MAX >= 8 * RV_DOC_DEPTH_MAX, "schema depth covers a deep document");
_Static_assert(RV_SCHEMA_GOT_MAX * 2 < RV_ERROR_MSG_MAX, "a quoted value fits in a message");

/* --- observed state (reconciler/observed.c) --- */
/* An observed-state file (`reeve plan --observed`): a node report with its
 * parameters is under 2 KiB, so 64 MiB holds a fleet of ~30,000 nodes. */
#define RV_OBSERVED_FILE_MAX (64 * 1024 * 1024)
/* Entries of each list in one observed state: a fleet beyond 100,000
 * instances is served by several cells (ARCHITECTURE §8), not one file. */
#define RV_OBSERVED_INSTANCES_MAX 100000
#define RV_OBSERVED_NODES_MAX 100000
#define RV_OBSERVED_CLUSTERS_MAX 100000
/* Parameters one node reports: the ones reeve manages, far fewer than the
 * ~650 variables MariaDB or ~360 settings PostgreSQL has in all. */
#define RV_OBSERVED_PARAMS_MAX 2048
/* Users present in one cluster (applications, not people). */
#define RV_OBSERVED_USERS_MAX 10000
/* Owner labels on one instance: specs allow 64 labels, providers add a few. */
#define RV_OBSERVED_LABELS_MAX 96
/* Node names are <cluster>-<ordinal>: a 63-character cluster name plus '-'
 * and 4 digits; 128 also fits names a provider chose. */
#define RV_OBSERVED_NODE_NAME_MAX 128
/* One string: versions, addresses, GTID sets of a few sources, values. */
#define RV_OBSERVED_STRING_MAX 4096
/* CPUs of one node: the cluster schema caps spec.resources.cpu at 128. */
#define RV_OBSERVED_CPU_MAX 4096
/* A node report without ttlSeconds lives this long: agents refresh every
 * 10 s tick, so three missed ticks make it stale. */
#define RV_OBSERVED_TTL_DEFAULT_S 30
/* A TTL above a day would let a dead node look alive for longer than any
 * operator would wait before acting. */
#define RV_OBSERVED_TTL_MAX_S (24 * 3600)

/* --- planner (reconciler/planner.c) --- */
/* Nodes (instances or reports) of one cluster: the schema allows 9
 * instances, interrupted applies may leave a few extra; more than this means
 * the observed state is broken and the plan stops with an error. */
#define RV_PLAN_CLUSTER_MEMBERS_MAX 64
/* Ordinals in node names (<name>-<ordinal>); a larger suffix is not ours. */
#define RV_PLAN_ORDINAL_MAX 9999
/* Actions in one plan: a cluster needs at most ~60 (9 nodes through a full
 * rolling change), so this covers RV_SPEC_FILES_MAX clusters with room. */
#define RV_PLAN_ACTIONS_MAX (8 * 1024 * 1024)

_Static_assert(RV_OBSERVED_TTL_DEFAULT_S <= RV_OBSERVED_TTL_MAX_S, "default ttl within max");
_Static_assert(RV_PLAN_CLUSTER_MEMBERS_MAX <= RV_PLAN_ORDINAL_MAX, "ordinals name members");
_Static_assert(RV_NAME_MAX < RV_OBSERVED_STRING_MAX, "a name fits in a string");

/* --- httpd (lib/httpd.c): the HTTP server --- */
/* A request body: webhook payloads are a few KiB to a few hundred KiB and API
 * calls are smaller. A larger body is answered 413 as soon as its
 * Content-Length is read, without buffering it; for a webhook that only
 * costs one reconcile tick. */
#define RV_HTTP_BODY_MAX (1024 * 1024)
/* Time to receive one request (headers and body) and the idle time of a
 * kept-alive connection: stops slow-loris clients holding connections. */
#define RV_HTTPD_REQ_TIMEOUT_MS 10000
/* Connections open at once; more are accepted and closed at once so one
 * misbehaving client cannot exhaust file descriptors. */
#define RV_HTTPD_CONNS_MAX 1024
/* Pending connections in the kernel's accept queue. */
#define RV_HTTPD_BACKLOG 128
/* Routes on one server: webhooks per forge, the agent API, /api, UI,
 * /metrics and /healthz are a few dozen at most. */
#define RV_HTTPD_ROUTES_MAX 64
/* Length of a route's path prefix and of a header name looked up. */
#define RV_HTTPD_PREFIX_MAX 256
#define RV_HTTPD_HEADER_NAME_MAX 256

/* --- webhook (reconciler/webhook.c): forge webhooks --- */
/* Delivery ids remembered to drop redeliveries: forges retry within hours,
 * and a few thousand ids cover a busy day; a forgotten id costs one extra
 * coalesced tick, never a wrong result. */
#define RV_WEBHOOK_DEDUP_MAX 4096
/* A delivery id (GitHub and Gitea send a 36-character UUID). */
#define RV_WEBHOOK_DELIVERY_MAX 128
/* A git ref or branch name: forges cap branch names at 255 bytes. */
#define RV_WEBHOOK_REF_MAX 255
/* A repository name "owner/name", or GitLab's path_with_namespace, which
 * nests groups: GitLab allows 20 levels of group paths. */
#define RV_WEBHOOK_REPO_MAX 1024
/* A commit id in hex: 40 for SHA-1 repositories, 64 for SHA-256 ones. */
#define RV_WEBHOOK_SHA_HEX_MAX 64
/* A webhook secret: HMAC keys longer than a hash block are hashed anyway;
 * this only bounds what the configuration may hold. */
#define RV_WEBHOOK_SECRET_MAX 1024

_Static_assert(RV_HTTPD_ROUTES_MAX >= 8, "room for the built-in routes");
_Static_assert(RV_WEBHOOK_DELIVERY_MAX < RV_ERROR_MSG_MAX, "an id fits in a message");
_Static_assert(RV_WEBHOOK_REF_MAX < RV_ERROR_MSG_MAX, "a ref fits in a message");
_Static_assert(RV_WEBHOOK_DEDUP_MAX >= 16, "dedup remembers more than a burst");

/* --- serve (reconciler/config.c, serve.c, reconcile.c, pages.c) --- */
/* reeve.yaml: a full configuration is under 2 KiB; 64 KiB leaves room for
 * comments while bounding what a typo (pointing -c at a big file) reads. */
#define RV_CONFIG_FILE_MAX (64 * 1024)
/* A secret read from file:PATH (a token, a webhook secret, a password):
 * tokens are under RV_FORGE_TOKEN_MAX; a larger file is the wrong file. */
#define RV_CONFIG_SECRET_MAX 4096
/* Seconds between fetches and between base ticks: a day is already far
 * longer than anyone waits for a merge to show up. */
#define RV_CONFIG_INTERVAL_MAX_S (24 * 3600)
/* Webhook deliveries waiting to be recorded by the next reconcile pass:
 * a pass takes well under a second, so a few hundred covers any burst;
 * past it deliveries are answered 503 and the forge retries them. */
#define RV_SERVE_PENDING_EVENTS_MAX 512
/* Plan pages being looked up at once (each is a SQLite read off the loop);
 * more are answered 503 at once instead of queueing without bound. */
#define RV_SERVE_PAGE_QUEUE_MAX 64
/* Pull requests reconciled in one pass: bounds how long one pass holds the
 * worker (and delays a webhook's pass); the rest follow in the next pass. */
#define RV_SERVE_PULLS_PER_PASS 64
/* Outbox batches run after one pass: with RV_OUTBOX_BATCH_MAX statuses a
 * batch this is 500 statuses; the rest wait for the outbox timer. */
#define RV_SERVE_OUTBOX_BATCHES_MAX 10
/* Time given to in-flight work at shutdown before it is abandoned: a
 * status post times out after RV_FORGE_TIMEOUT_MS, and a pass checks for
 * cancellation between refs and between posts. */
#define RV_SERVE_SHUTDOWN_MS (RV_FORGE_TIMEOUT_MS + 5000)
/* A changed-file count above this share of the files at the cached commit
 * (percent) reloads every file instead of patching the cached set. */
#define RV_SERVE_RELOAD_PERCENT 50
/* Actions serialised into JSON per chunk when a plan page is stored: the
 * whole plan never becomes one JSON tree (a 10,000-cluster plan would take
 * hundreds of MiB as jansson objects). */
#define RV_SERVE_JSON_CHUNK_ACTIONS 512
/* Status descriptions are shortened to the smallest forge limit (GitHub's)
 * so that every forge shows the same text and the "(+K more)" survives. */
#define RV_SERVE_STATUS_DESC_MAX RV_FORGE_GITHUB_DESC_MAX
/* Plan pages older than this are pruned, except the newest of each commit
 * and any an executor's journal refers to: a month covers the life of
 * nearly every pull request. */
#define RV_SERVE_PLAN_KEEP_S (30 * 24 * 3600)

_Static_assert(RV_SERVE_SHUTDOWN_MS > RV_FORGE_TIMEOUT_MS, "shutdown waits for one post");
_Static_assert(RV_SERVE_RELOAD_PERCENT > 0 && RV_SERVE_RELOAD_PERCENT <= 100, "a percentage");
_Static_assert(RV_CONFIG_SECRET_MAX >= RV_FORGE_TOKEN_MAX, "a token fits in a secret file");
_Static_assert(RV_CONFIG_SECRET_MAX >= RV_WEBHOOK_SECRET_MAX, "a webhook secret fits");

#endif
