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
/* Bytes of a plan page handed to the compressor at once: large enough that
 * per-call overhead vanishes, small enough to be nothing next to a plan. */
#define RV_SERVE_WRITE_CHUNK (64 * 1024)
/* A stored plan page (JSON or text) decompresses to at most this much: a
 * plan of 100,000 clusters stays under it; a larger result is a damaged
 * row, refused rather than allowed to exhaust memory. */
#define RV_SERVE_PAGE_MAX (512 * 1024 * 1024)
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

/* --- dcs (reconciler/dcs.c): the built-in DCS --- */
/* A key: /clusters/<ns>/<name>/nodes/<node> is under 300 bytes with
 * 63-character names and a 128-byte node name. */
#define RV_DCS_KEY_MAX 384
/* A value (JSON text): a node's state is under 2 KiB; leader and cluster
 * state far less. 16 KiB bounds the history ring's memory. */
#define RV_DCS_VALUE_MAX (16 * 1024)
/* Keys held: a few per node plus one per cluster; 100,000 nodes is past
 * what one cell serves (ARCHITECTURE section 8). */
#define RV_DCS_KEYS_MAX 500000
/* Live sessions: one or two per agent. */
#define RV_DCS_SESSIONS_MAX 200000
/* Session TTL: under a second the agent's renew cannot keep up with one
 * slow tick; over ten minutes a dead primary blocks failover too long. */
#define RV_DCS_TTL_MIN_MS 1000
#define RV_DCS_TTL_MAX_MS (10 * 60 * 1000)
/* Events kept for watchers: a watcher that falls further behind re-reads
 * (about 64 MiB at worst with RV_DCS_VALUE_MAX values). */
#define RV_DCS_HISTORY_MAX 4096
/* Watchers registered at once (long-polls of agents and the reconciler). */
#define RV_DCS_WATCHERS_MAX 4096
/* Comparisons and operations of one transaction: a lock takes one of each. */
#define RV_DCS_TXN_CMP_MAX 16
#define RV_DCS_TXN_OPS_MAX 16
/* Session owner tag (namespace/cluster/node). */
#define RV_DCS_OWNER_MAX 256
/* Changes waiting to be written to SQLite: a write batch takes
 * milliseconds, so this is only reached when the disk is stuck; then
 * writes are refused (retryable) instead of growing memory. */
#define RV_DCS_PENDING_MAX 65536
/* Period of the expiry timer: expiry is late by at most this, a small
 * fraction of RV_DCS_TTL_MIN_MS. */
#define RV_DCS_TICK_MS 100

_Static_assert(RV_DCS_TICK_MS * 5 <= RV_DCS_TTL_MIN_MS, "expiry is late by a small part of a ttl");
_Static_assert(RV_DCS_TTL_MIN_MS < RV_DCS_TTL_MAX_MS, "ttl range");
_Static_assert(RV_DCS_KEY_MAX + 96 < RV_ERROR_MSG_MAX, "a key and a sentence fit in a message");
_Static_assert(RV_DCS_PENDING_MAX > 2 * RV_DCS_TXN_OPS_MAX, "a transaction fits in the queue");

/* --- agentapi (reconciler/agentapi.c): the agent API --- */
/* Request bodies: a transaction of RV_DCS_TXN_OPS_MAX puts of small values
 * or a node report; the DCS value cap plus framing. */
#define RV_AGENTAPI_BODY_MAX (4 * RV_DCS_VALUE_MAX)
/* Long-poll watch: default and largest wait; agents re-poll after it. */
#define RV_AGENTAPI_WATCH_DEFAULT_MS 30000
#define RV_AGENTAPI_WATCH_MAX_MS 60000
/* Long-polls held at once through HTTP (each holds a connection). */
#define RV_AGENTAPI_WATCHERS_MAX 512
/* Agent tokens: 32 random bytes, 64 hex characters. */
#define RV_AGENTAPI_TOKEN_BYTES 32
/* An Authorization header longer than this is not ours. */
#define RV_AGENTAPI_AUTH_MAX 256

_Static_assert(RV_AGENTAPI_WATCHERS_MAX <= RV_DCS_WATCHERS_MAX, "http watchers are dcs watchers");
_Static_assert(RV_AGENTAPI_WATCHERS_MAX < RV_HTTPD_CONNS_MAX, "watchers leave connections free");
_Static_assert(RV_AGENTAPI_BODY_MAX <= RV_HTTP_BODY_MAX, "agent bodies fit the server cap");
_Static_assert(RV_AGENTAPI_WATCH_DEFAULT_MS <= RV_AGENTAPI_WATCH_MAX_MS, "default under max");
_Static_assert(RV_AGENTAPI_TOKEN_BYTES * 2 + 8 < RV_AGENTAPI_AUTH_MAX, "a bearer token fits");

/* --- provider (reconciler/provider.c): the provider protocol client --- */
/* One frame (a JSON object on one line): a list_instances answer for 1,000
 * instances is ~500 KiB; a longer line is a protocol error, so a broken
 * provider cannot make reeve buffer without bound. */
#define RV_PROVIDER_FRAME_MAX (1024 * 1024)
/* Time a provider has to answer hello after it was started: an interpreter
 * starting up and reading its state takes well under a second. */
#define RV_PROVIDER_HELLO_TIMEOUT_MS 10000
/* A provider that is still silent this long after a request's deadline is
 * hung: it is killed and restarted, and the call fails with a timeout. */
#define RV_PROVIDER_DEADLINE_GRACE_MS 5000
/* Between SIGTERM and SIGKILL when a provider is killed. */
#define RV_PROVIDER_KILL_GRACE_MS 2000
/* provider_stop() waits this long for the child to exit after its stdin is
 * closed before it kills it. */
#define RV_PROVIDER_STOP_WAIT_MS 5000
/* The longest deadline of one call: creating a cloud instance with a large
 * volume takes minutes; an hour means the caller passed a wrong unit. */
#define RV_PROVIDER_DEADLINE_MAX_MS (60 * 60 * 1000)
/* Calls in flight on one provider at once: the executor's per-provider
 * control rod is far lower; past this a call fails with RV_EBUSY. */
#define RV_PROVIDER_INFLIGHT_MAX 256
/* Starts of one provider within a minute (the first included): a provider
 * that keeps crashing is left down and calls fail until the minute passes. */
#define RV_PROVIDER_RESTARTS_PER_MIN 5
/* Wait before a restart: base * 2^(starts in the last minute - 1), capped. */
#define RV_PROVIDER_BACKOFF_BASE_MS 100
#define RV_PROVIDER_BACKOFF_MAX_MS 10000
/* A stderr line forwarded to the log; the rest of a longer line is dropped
 * (log lines are built in a 2 KiB buffer). */
#define RV_PROVIDER_LOG_LINE_MAX 1024
/* Method names ("create_instance") and idempotency keys (a SHA-256 in hex
 * is 64 characters). */
#define RV_PROVIDER_METHOD_MAX 64
#define RV_PROVIDER_IDEMPOTENCY_KEY_MAX 128
/* A provider's name as configured, and arguments of its command line. */
#define RV_PROVIDER_NAME_MAX 64
#define RV_PROVIDER_ARGV_MAX 64
/* Capabilities offered and agreed in the handshake. */
#define RV_PROVIDER_CAPABILITIES_MAX 32

_Static_assert(RV_PROVIDER_LOG_LINE_MAX < 2048, "a forwarded line fits in a log line");
_Static_assert(RV_PROVIDER_BACKOFF_BASE_MS <= RV_PROVIDER_BACKOFF_MAX_MS, "backoff base under cap");
_Static_assert(RV_PROVIDER_BACKOFF_MAX_MS < 60000, "a backoff fits in the restart window");
_Static_assert(RV_PROVIDER_RESTARTS_PER_MIN >= 2, "a crashed provider is restarted at least once");
_Static_assert(RV_PROVIDER_NAME_MAX * 3 < RV_ERROR_MSG_MAX, "a name fits in a message");

/* --- engine_pg (agent/engine_pg.c): the PostgreSQL engine adapter --- */
/* Paths of the bin, data and socket directories and the log: a unix socket
 * path ("<dir>/.s.PGSQL.<port>") must fit sun_path (108 bytes), the others
 * are ordinary paths kept well under PATH_MAX. */
#define RV_PG_PATH_MAX 1024
#define RV_PG_SOCKET_DIR_MAX 80
/* Role, application and slot names: PostgreSQL cuts identifiers at
 * NAMEDATALEN - 1 = 63 bytes; a longer one would be silently truncated. */
#define RV_PG_NAME_MAX 63
/* A host name or address, or a CIDR, as written into conninfo and hba. */
#define RV_PG_HOST_MAX 255
/* A replication password: SCRAM takes any length, 256 is already far more
 * entropy than needed. */
#define RV_PG_PASSWORD_MAX 256
/* Extra reeve.conf lines rendered from the configuration. */
#define RV_PG_CONF_EXTRA_MAX (16 * 1024)
/* synchronous_standby_names: at most 9 instances per cluster, each name
 * quoted, so 1 KiB holds them with room. */
#define RV_PG_SYNC_NAMES_MAX 1024
#define RV_PG_SYNC_MEMBERS_MAX 16
/* Names of parameters pending a restart kept in a status. */
#define RV_PG_PENDING_MAX 1024
/* postgresql.conf as read to add the include line: initdb writes ~30 KiB. */
#define RV_PG_CONF_FILE_MAX (1024 * 1024)
/* One parameter value (shared_preload_libraries lists are the longest). */
#define RV_PG_PARAM_VALUE_MAX 4096
/* Parameters in one pg_engine_apply_parameters() call. */
#define RV_PG_PARAMS_MAX 256
/* Output captured from one tool run (kept for the error message; the rest
 * is drained and dropped so the child never blocks on a full pipe). */
#define RV_PG_OUTPUT_MAX (64 * 1024)
/* initdb of an empty cluster takes seconds; with fsync on a slow disk
 * tens of seconds. */
#define RV_PG_INITDB_TIMEOUT_MS (120 * 1000)
/* Start: crash recovery of a busy server can take a while; past this the
 * agent reports the node unhealthy instead of waiting forever. */
#define RV_PG_START_TIMEOUT_MS (60 * 1000)
/* Stop: a fast shutdown ends sessions and checkpoints; beyond this the
 * fence falls back to an immediate stop. */
#define RV_PG_STOP_TIMEOUT_MS (60 * 1000)
/* Promotion: end of recovery on a caught-up standby is a second or two. */
#define RV_PG_PROMOTE_TIMEOUT_MS (60 * 1000)
/* pg_basebackup and pg_rewind copy data: an hour covers a few hundred GiB
 * on a LAN; larger clusters are restored from backups instead. */
#define RV_PG_COPY_TIMEOUT_MS (60 * 60 * 1000)
/* Connecting over the socket or to a primary (libpq connect_timeout is in
 * whole seconds). */
#define RV_PG_CONNECT_TIMEOUT_S 5
/* One SQL statement issued by the engine (statement_timeout). */
#define RV_PG_STATEMENT_TIMEOUT_MS 30000
/* Waiting for a reload to be seen by the engine's session. */
#define RV_PG_RELOAD_WAIT_MS 5000

_Static_assert(RV_PG_SOCKET_DIR_MAX + 20 < 108, "a socket path fits sun_path");
_Static_assert(RV_PG_SOCKET_DIR_MAX <= RV_PG_PATH_MAX, "socket dir is a path");
_Static_assert(RV_PG_OUTPUT_MAX / 2 > RV_ERROR_MSG_MAX, "output tail fits a message");
_Static_assert(RV_PG_CONNECT_TIMEOUT_S * 1000 < RV_PG_START_TIMEOUT_MS, "connect within start");

/* --- executor (reconciler/executor.c, journal.c): the action journal --- */
/* Attempts of one action before it fails for good: provider and agent calls
 * retry their own transport errors, so five attempts over a minute or two
 * ride out a restarting provider without hiding a real fault. */
#define RV_EXEC_ATTEMPTS_MAX 5
/* Backoff between attempts: base * 2^(attempt-1), jittered, capped. */
#define RV_EXEC_BACKOFF_BASE_S 5
#define RV_EXEC_BACKOFF_MAX_S 300
/* An action's deadline, from its first start, over all its attempts:
 * provisioning an instance and seeding it from a large base backup takes
 * tens of minutes; past an hour something is stuck and a person should look. */
#define RV_EXEC_DEADLINE_S (60 * 60)
/* Control rods: actions running at once, in all, per provider and per
 * cluster (defaults; reeve.yaml may lower or raise them up to the cap). Each
 * running action holds one worker thread, so the global cap bounds threads. */
#define RV_EXEC_CONCURRENT_MAX 64
#define RV_EXEC_CONCURRENT_DEFAULT 8
#define RV_EXEC_PER_PROVIDER_DEFAULT 4
#define RV_EXEC_PER_CLUSTER_DEFAULT 2
/* Output (JSON) a runner returns for one action: instance ids, addresses,
 * a backup id; a bigger answer is a runner bug and is not stored. */
#define RV_EXEC_OUTPUT_MAX (64 * 1024)
/* Actions of unfinished applies held in memory by one executor: far more
 * than a fleet's worth of rolling changes (~60 per cluster). */
#define RV_EXEC_ACTIONS_MAX (1024 * 1024)
/* Status text of an apply: fits the longest forge description with room. */
#define RV_EXEC_STATUS_MAX 512
/* Namespaces paused at once (a control rod): one per namespace of a large
 * fleet is far fewer than this. */
#define RV_EXEC_PAUSED_MAX 4096

_Static_assert(RV_EXEC_ATTEMPTS_MAX >= 1, "an action runs at least once");
_Static_assert(RV_EXEC_BACKOFF_BASE_S <= RV_EXEC_BACKOFF_MAX_S, "backoff base under cap");
_Static_assert(RV_EXEC_BACKOFF_MAX_S * (RV_EXEC_ATTEMPTS_MAX - 1) < RV_EXEC_DEADLINE_S,
               "every attempt fits before the deadline");
_Static_assert(RV_EXEC_CONCURRENT_DEFAULT <= RV_EXEC_CONCURRENT_MAX, "default under cap");
_Static_assert(RV_EXEC_PER_PROVIDER_DEFAULT <= RV_EXEC_CONCURRENT_DEFAULT, "rods nest");
_Static_assert(RV_EXEC_PER_CLUSTER_DEFAULT <= RV_EXEC_PER_PROVIDER_DEFAULT, "rods nest");
_Static_assert(RV_EXEC_STATUS_MAX <= RV_ERROR_MSG_MAX + 128, "status carries one error");
_Static_assert(RV_EXEC_ACTIONS_MAX <= RV_PLAN_ACTIONS_MAX, "an apply is one plan at most");

/* --- agent (agent/agent.c, dcs_client.c, config.c): reeve-agent --- */
/* Leader TTL: a primary whose agent is gone keeps the leader key this long
 * at most; short enough for a quick failover, long enough that a busy
 * reconciler or a GC pause on the node does not cost a failover. */
#define RV_AGENT_TTL_DEFAULT_MS 10000
#define RV_AGENT_TTL_MIN_MS 2000
#define RV_AGENT_TTL_MAX_MS 120000
/* Health tick: node state refresh and, on replicas, the leader check. */
#define RV_AGENT_TICK_DEFAULT_MS 1000
#define RV_AGENT_TICK_MIN_MS 100
/* A session keepalive goes out every TTL / RV_AGENT_RENEW_DIV; a primary
 * without an acknowledged keepalive for TTL / RV_AGENT_DEADLINE_DIV
 * fences itself; each DCS call is cut off after TTL / RV_AGENT_RENEW_DIV,
 * so a hung reconciler cannot hold a keepalive past the deadline. */
#define RV_AGENT_RENEW_DIV 4
#define RV_AGENT_DEADLINE_DIV 2
/* Other DCS calls of a step are cut off after TTL / RV_AGENT_STEP_CALL_DIV:
 * a primary past its renew deadline abandons its step between calls, so
 * fencing starts at most this late (plus one fence check period, TTL /
 * RV_AGENT_FENCE_CHECK_DIV), leaving the rest of the TTL to stop. */
#define RV_AGENT_STEP_CALL_DIV 8
#define RV_AGENT_FENCE_CHECK_DIV 20
/* A replica long-polls the leader key this long per request; a stop
 * cancels the request in flight. */
#define RV_AGENT_WATCH_WAIT_MS 10000
/* Registration and other calls that are not on the leadership path. */
#define RV_AGENT_HTTP_TIMEOUT_MS 10000
/* An answer from the agent API: a kv read holds at most a few values. */
#define RV_AGENT_REPLY_MAX (256 * 1024)
/* Retry backoff while waiting for a leader or a reachable reconciler. */
#define RV_AGENT_BACKOFF_MIN_MS 200
#define RV_AGENT_BACKOFF_MAX_MS 5000
/* A replica this far behind the last primary position it saw does not
 * race for leadership (maxLagOnFailoverBytes default). */
#define RV_AGENT_FAILOVER_LAG_DEFAULT (1024 * 1024)
/* Files read by the agent: a secret (token, password) and the saved token. */
#define RV_AGENT_SECRET_FILE_MAX 4096
/* Names (node, namespace, cluster) and URLs in the configuration. */
#define RV_AGENT_NAME_MAX 63
#define RV_AGENT_URL_MAX 512

/* The watchdog (agent/watchdog.c): after SIGINT (fast shutdown) the
 * postmaster gets this long before SIGQUIT (immediate), which stops it at
 * once; this fits in the half TTL left after the renew deadline. */
#define RV_AGENT_WATCHDOG_STOP_MS 1000
/* /proc/<pid>/cmdline read to check the postmaster: its argv[0] is short,
 * the rest is only cut. */
#define RV_AGENT_WATCHDOG_CMDLINE_MAX 4096
/* A clean stop waits this long for the disarmed watchdog to exit. */
#define RV_AGENT_WATCHDOG_REAP_MS 1000

_Static_assert(RV_AGENT_TTL_MIN_MS >= RV_DCS_TTL_MIN_MS, "agent ttl within dcs range");
_Static_assert(RV_AGENT_TTL_MAX_MS <= RV_DCS_TTL_MAX_MS, "agent ttl within dcs range");
_Static_assert(RV_AGENT_RENEW_DIV > RV_AGENT_DEADLINE_DIV, "renew before the deadline");
_Static_assert(RV_AGENT_DEADLINE_DIV >= 2, "fencing leaves half a ttl to stop the server");
_Static_assert(RV_AGENT_STEP_CALL_DIV > RV_AGENT_RENEW_DIV, "step calls end before keepalives");
_Static_assert(RV_AGENT_WATCHDOG_STOP_MS <= RV_AGENT_TTL_MIN_MS / RV_AGENT_DEADLINE_DIV,
               "the watchdog's fast shutdown is cut off within the half ttl it has");
_Static_assert(RV_AGENT_WATCH_WAIT_MS <= RV_AGENTAPI_WATCH_MAX_MS, "the api allows the wait");
_Static_assert(RV_AGENT_FENCE_CHECK_DIV > RV_AGENT_STEP_CALL_DIV, "the check is the finest");
_Static_assert(RV_AGENT_TTL_MIN_MS / RV_AGENT_FENCE_CHECK_DIV >= 50, "check period is sane");
_Static_assert(RV_AGENT_BACKOFF_MIN_MS <= RV_AGENT_BACKOFF_MAX_MS, "backoff range");
_Static_assert(RV_AGENT_TTL_DEFAULT_MS >= RV_AGENT_TTL_MIN_MS &&
                   RV_AGENT_TTL_DEFAULT_MS <= RV_AGENT_TTL_MAX_MS, "default ttl in range");
_Static_assert(RV_AGENT_NAME_MAX <= RV_PG_NAME_MAX, "a node name is an application_name");

/* --- local provider (providers/local/): PostgreSQL instances on this machine --- */
/* Instances one provider keeps: each is a PostgreSQL server and an agent on
 * this machine, and has one loopback address. */
#define RV_LOCAL_INSTANCES_MAX 64
/* Idempotency keys remembered; keys of deleted instances go first. */
#define RV_LOCAL_KEYS_MAX 4096
/* The state file (instances, keys); read whole at start. */
#define RV_LOCAL_STATE_FILE_MAX (16 * 1024 * 1024)
/* The image catalog file (REEVE_LOCAL_IMAGES). */
#define RV_LOCAL_IMAGES_FILE_MAX (64 * 1024)
/* Entries in the image catalog (engine versions). */
#define RV_LOCAL_IMAGES_MAX 64
/* Paths the provider builds: root, instance directories, binaries. */
#define RV_LOCAL_PATH_MAX 1024
/* A secret given on create (registration token, replication password). */
#define RV_LOCAL_SECRET_MAX 4096
/* The port PostgreSQL listens on at each instance's own address. */
#define RV_LOCAL_DB_PORT 5432
/* Delete: how long the agent has for its fast shutdown before SIGKILL. */
#define RV_LOCAL_STOP_WAIT_MS 20000
/* Delete: how long `pg_ctl stop -m immediate` may take for a leftover server. */
#define RV_LOCAL_PG_STOP_WAIT_MS 10000
/* Create: how long the detached agent's start may take to report exec. */
#define RV_LOCAL_SPAWN_WAIT_MS 5000

_Static_assert(RV_LOCAL_INSTANCES_MAX <= 254, "every instance gets an address in one /24");
_Static_assert(RV_LOCAL_KEYS_MAX >= 4 * RV_LOCAL_INSTANCES_MAX, "keys outlive their instances");
_Static_assert(RV_LOCAL_PATH_MAX <= RV_PATH_MAX, "a local path is a path");
_Static_assert(RV_LOCAL_STOP_WAIT_MS + RV_LOCAL_PG_STOP_WAIT_MS < RV_PROVIDER_DEADLINE_MAX_MS,
               "a delete fits in the longest deadline");

#endif
