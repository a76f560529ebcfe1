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

/* --- objstore and bstream (lib/objstore.c, lib/bstream.c) --- */
/* An object key: S3 caps a whole key at 1024 bytes, so half is left for a
 * destination's prefix; reeve's longest key (a WAL history file under
 * wal/<tli>/) is under 64 bytes. */
#define RV_OBJSTORE_KEY_MAX 512
/* One segment of a key (one file or directory name of a local store): the
 * temporary name ".<segment>.tmp-<16 hex>" must stay under NAME_MAX (255). */
#define RV_OBJSTORE_SEGMENT_MAX 200
/* Segments of one key: reeve's keys are three deep (wal/<tli>/<file>); the
 * bound also bounds the directories a local list holds open at once. */
#define RV_OBJSTORE_DEPTH_MAX 16
/* Objects returned by one list: a year of WAL at one segment every 30 s is
 * about a million; an entry costs ~100 bytes, so a full list is ~100 MiB.
 * Callers list by narrow prefixes (one timeline, one backup). */
#define RV_OBJSTORE_LIST_MAX (1000 * 1000)
/* Bytes moved per read/write by objstore_copy() and bstream_verify(): large
 * enough that syscalls cost nothing next to compression. */
#define RV_OBJSTORE_COPY_BUF (256 * 1024)
/* Attempts of a local put to create its directory and temporary file: a
 * concurrent remove may delete an emptied directory in between. */
#define RV_OBJSTORE_PUT_TRIES 3

/* Encoded objects (bstream): payload bytes per authenticated chunk. The
 * default bounds what a decoder buffers (and what is lost to a damaged
 * chunk) while keeping the per-chunk overhead (20 bytes) negligible. */
#define RV_BSTREAM_CHUNK_DEFAULT (1024 * 1024)
/* Range accepted from a caller and from an object's header: the maximum
 * bounds the memory a hostile header can make a decoder allocate. */
#define RV_BSTREAM_CHUNK_MIN 1024
#define RV_BSTREAM_CHUNK_MAX (16 * 1024 * 1024)
/* zstd levels accepted: 1 (fastest) to 19; 20-22 need windows of up to
 * 128 MiB per decoder, which RV_BSTREAM_WINDOW_LOG_MAX refuses. */
#define RV_BSTREAM_LEVEL_DEFAULT 3
#define RV_BSTREAM_LEVEL_MIN 1
#define RV_BSTREAM_LEVEL_MAX 19
/* Largest zstd window a decoder accepts (2^24 = 16 MiB): level 19 uses at
 * most 2^23; a frame asking for more is refused instead of allocated. */
#define RV_BSTREAM_WINDOW_LOG_MAX 24
/* zstd worker threads of one encoder: each holds a few MiB of buffers (two
 * jobs of 4 windows); beyond the cores of a database host nothing is won. */
#define RV_BSTREAM_WORKERS_MAX 16

_Static_assert(RV_OBJSTORE_SEGMENT_MAX + 22 < 255, "a temporary name fits NAME_MAX");
_Static_assert(RV_OBJSTORE_SEGMENT_MAX <= RV_OBJSTORE_KEY_MAX, "a segment fits in a key");
_Static_assert(RV_OBJSTORE_KEY_MAX * 2 <= 1024, "a key and a prefix fit S3's key limit");
_Static_assert(RV_BSTREAM_CHUNK_MIN <= RV_BSTREAM_CHUNK_DEFAULT &&
                   RV_BSTREAM_CHUNK_DEFAULT <= RV_BSTREAM_CHUNK_MAX, "default chunk in range");
_Static_assert(RV_BSTREAM_CHUNK_MAX < (1u << 31), "a chunk length leaves the final bit free");
_Static_assert(RV_BSTREAM_LEVEL_MIN <= RV_BSTREAM_LEVEL_DEFAULT &&
                   RV_BSTREAM_LEVEL_DEFAULT <= RV_BSTREAM_LEVEL_MAX, "default level in range");
/* (end of section) */

/* --- SigV4 and S3 (lib/sigv4.c, lib/s3.c) --- */
/* Headers and query parameters one signed request may carry: reeve's S3
 * requests sign five headers and at most four parameters; the bounds keep
 * the sorts cheap and refuse a runaway caller. */
#define RV_SIGV4_HEADERS_MAX 64
#define RV_SIGV4_QUERY_MAX 64
/* Bytes a put buffers before it sends them as one part: 8 MiB keeps the
 * memory of a backup small while 10000 parts still make 78 GiB before the
 * part size grows (RV_S3_PART_GROW_EVERY). S3 refuses parts under 5 MiB
 * (except the last); the maximum bounds what one sink holds in memory. */
#define RV_S3_PART_SIZE (8 * 1024 * 1024)
#define RV_S3_PART_SIZE_MIN (5 * 1024 * 1024)
#define RV_S3_PART_SIZE_MAX (512 * 1024 * 1024)
/* S3 allows part numbers 1 to 10000. The part size doubles after every
 * 1000 parts (up to RV_S3_PART_SIZE_MAX), so a 8 MiB start reaches several
 * TiB instead of stopping at 78 GiB, and memory grows only for huge objects. */
#define RV_S3_PARTS_MAX 10000
#define RV_S3_PART_GROW_EVERY 1000
/* Attempts of one request (all of reeve's S3 requests may be repeated; a
 * repeated CompleteMultipartUpload that finds its upload gone checks the
 * object instead), with exponential backoff from
 * RV_S3_BACKOFF_MS up to RV_S3_BACKOFF_MAX_MS: about 15 s in all, enough for
 * a load balancer to move off a failed node without stalling a backup long. */
#define RV_S3_ATTEMPTS 5
#define RV_S3_BACKOFF_MS 250
#define RV_S3_BACKOFF_MAX_MS 8000
/* Connection set-up, and a transfer that moves less than one byte per
 * second for this long is abandoned (retryable): a stalled peer must not
 * hang a backup forever, yet a slow WAN link is not cut. */
#define RV_S3_CONNECT_TIMEOUT_S 15
#define RV_S3_LOW_SPEED_TIME_S 60
/* XML answers kept in memory (list pages, errors, multipart replies): a
 * ListObjectsV2 page of 1000 keys is about 350 KiB. */
#define RV_S3_RESPONSE_MAX (4 * 1024 * 1024)
/* Configuration strings: S3 bucket names are 3-63 characters; an endpoint
 * URL and a prefix this long are mistakes; prefix + '/' + key must stay
 * within S3's 1024-byte key. */
#define RV_S3_ENDPOINT_MAX 1024
#define RV_S3_BUCKET_MAX 63
#define RV_S3_PREFIX_MAX 256
#define RV_S3_REGION_MAX 64
#define RV_S3_CREDENTIAL_MAX 256
/* Keys per ListObjectsV2 page: S3 never sends more than 1000. */
#define RV_S3_LIST_PAGE_KEYS 1000
/* An ETag as S3 sends it: a quoted MD5 (34 bytes), longer for multipart or
 * other implementations. */
#define RV_S3_ETAG_MAX 256

_Static_assert(RV_S3_PART_SIZE_MIN <= RV_S3_PART_SIZE && RV_S3_PART_SIZE <= RV_S3_PART_SIZE_MAX,
               "the default part size is a valid part size");
_Static_assert(RV_S3_PREFIX_MAX + 1 + RV_OBJSTORE_KEY_MAX <= 1024, "a full key fits in S3's key");
/* (end of section) */

/* --- agent backups (agent/backup*.c) --- */
/* archive_timeout set on every node: a quiet server still archives its
 * newest changes within a minute (the archive's recovery point). */
#define RV_BACKUP_ARCHIVE_TIMEOUT_S 60
/* A cron expression: five short fields; 128 holds any sensible list. */
#define RV_CRON_EXPR_MAX 128
/* cron_next gives up after this many years: an expression that matches no
 * day (Feb 30) must end the search, and any real schedule fires within a
 * year (Feb 29 on a Monday: within 28 years, beyond any backup plan). */
#define RV_CRON_HORIZON_YEARS 5
/* The scheduler polls the reconciler for its configuration this often; the
 * scheduled times are checked at the same pace (cron has minute grain). */
#define RV_BACKUP_POLL_MS 3000
/* One configuration answer (destination, keys, a few requests). */
#define RV_BACKUP_CONFIG_MAX (64 * 1024)
/* Bytes read from a backup program's stdout per write into the encoder:
 * memory stays bounded whatever the database size. */
#define RV_BACKUP_CHUNK (256 * 1024)
/* A backup program's stderr kept for the error message and the LSNs. */
#define RV_BACKUP_STDERR_MAX (16 * 1024)
/* A base backup may take this long before it is killed (a large database
 * over a slow link: 24 h). */
#define RV_BACKUP_TIMEOUT_MS (24 * 3600 * 1000)
/* Pre/post scripts and notification commands. */
#define RV_BACKUP_HOOK_TIMEOUT_MS (5 * 60 * 1000)
/* Arguments of an external method (program + args). */
#define RV_BACKUP_ARGS_MAX 64
/* Progress goes to stderr/the log at most this often. */
#define RV_BACKUP_PROGRESS_MS 2000
/* Records sent to the reconciler in one POST; the rest go next poll. */
#define RV_BACKUP_SYNC_BATCH 50
/* Log lines kept per backup in backup.db. */
#define RV_BACKUP_LOG_LINES_MAX 1000
/* A WAL segment (16 MiB by default; PostgreSQL allows up to 1 GiB). */
#define RV_BACKUP_WAL_SEGMENT_MAX (1024 * 1024 * 1024)
/* A cached DCS view older than this is not trusted to pick a replica for
 * backups (the reconciler has been away 10 minutes): the primary backs
 * up rather than nobody. */
#define RV_BACKUP_VIEW_MAX_AGE_MS (10 * 60 * 1000)
/* The id of a backup request ("final-<idempotency key>"). */
#define RV_BACKUP_REQUEST_ID_MAX 200
/* base/<id>/manifest.json read back for retention: a record is ~1 KiB. */
#define RV_BACKUP_MANIFEST_MAX (16 * 1024)
/* node.key: 32 random bytes, 64 hex characters in the file. */
#define RV_BACKUP_NODE_KEY_BYTES 32
/* A secret stored in backup.db (a key, an access key, a password). */
#define RV_BACKUP_SECRET_MAX 4096
_Static_assert(RV_BACKUP_HOOK_TIMEOUT_MS < RV_BACKUP_TIMEOUT_MS, "hooks are short");
_Static_assert(RV_BACKUP_SYNC_BATCH > 0, "a batch sends something");
/* (end of section) */

/* --- restore and point-in-time recovery (agent/restore.c) --- */
/* A backup id: "<yyyymmddThhmmssZ>-<8 hex>" is 25 bytes; room for longer
 * ids from other tools, still one object-store key segment. */
#define RV_RESTORE_ID_MAX 64
/* A time written as RFC 3339 with milliseconds ("...T10:00:00.000Z" is 24). */
#define RV_RESTORE_TIME_MAX 40
/* manifest.json of one backup: the record is about 1 KiB; its params and
 * schemas lists keep it far below this. */
#define RV_RESTORE_MANIFEST_MAX (1024 * 1024)
/* restore_command: two absolute paths and a few words. */
#define RV_RESTORE_COMMAND_MAX 2048
/* Extracting the base backup: a few hundred GiB take a few hours on a LAN;
 * past this something is stuck. */
#define RV_RESTORE_EXTRACT_TIMEOUT_MS (6 * 60 * 60 * 1000)
/* Start, replay and promotion: replaying a day of busy WAL takes hours;
 * restore_opts.timeout_ms lowers it for scratch tests. */
#define RV_RESTORE_RECOVERY_TIMEOUT_MS (6 * 60 * 60 * 1000)
/* tar and pg_ctl after their input ended; pg_checksums of a scratch copy. */
#define RV_RESTORE_TOOL_TIMEOUT_MS (10 * 60 * 1000)
/* A progress line (bytes extracted, position replayed) at most this often. */
#define RV_RESTORE_PROGRESS_MS 5000
/* The end of the server log read to explain a failed recovery: the lines
 * that matter are the last few dozen. */
#define RV_RESTORE_LOG_TAIL_MAX (256 * 1024)
/* Bytes moved from the decoder to tar per write. */
#define RV_RESTORE_COPY_BUF (256 * 1024)
/* A WAL file name PostgreSQL asks for: 24 hex digits, or a timeline
 * history, a backup label or a .partial segment, all short. */
#define RV_RESTORE_WAL_NAME_MAX 64
/* A restored WAL segment written by the minimal fetch: 16 MiB by default,
 * 1 GiB is PostgreSQL's largest segment size. */
#define RV_RESTORE_WAL_MAX (1024L * 1024 * 1024)
/* shared_buffers of a scratch test instance: enough to start any backup,
 * small enough to run beside the node's own server. */
#define RV_RESTORE_SCRATCH_SHARED_BUFFERS "128MB"

_Static_assert(RV_RESTORE_ID_MAX <= RV_OBJSTORE_SEGMENT_MAX, "an id is one key segment");
_Static_assert(RV_RESTORE_PROGRESS_MS < RV_RESTORE_TOOL_TIMEOUT_MS, "progress before timeouts");
_Static_assert(RV_RESTORE_COMMAND_MAX <= RV_PG_PARAM_VALUE_MAX, "restore_command is a setting");
/* (end of section) */

/* --- backup records and the config API (reconciler) --- */
/* Body of POST /v1/agents/backups: a batch of records (about 1-2 KiB each)
 * that an agent kept while the reconciler was away; the agent sends at most
 * RV_BACKUPS_POST_RECORDS_MAX per request. */
#define RV_BACKUPS_POST_BODY_MAX (1024 * 1024)
#define RV_BACKUPS_POST_RECORDS_MAX 256
/* One record as stored: the fields of the contract with a few hundred bytes
 * of params and schemas; far more is a broken or hostile agent. */
#define RV_BACKUPS_RECORD_MAX (32 * 1024)
/* Strings inside a record: ids (the spec's backupId allows 128), lists of
 * params and schemas, an error message from a failed backup. */
#define RV_BACKUPS_ID_MAX 128
#define RV_BACKUPS_STRING_MAX 1024
#define RV_BACKUPS_ERROR_MAX 4096
#define RV_BACKUPS_LIST_ITEMS_MAX 64
/* Records one GET /api/v1/backups lists (newest first): a year of daily
 * backups of a few dozen clusters. */
#define RV_BACKUPS_LIST_MAX 20000
/* Backup API requests worked on at once (config, records, list, verify);
 * past it the server answers 503 with Retry-After. Verifications stream
 * whole objects, so at most RV_BACKUPS_VERIFY_MAX run at once. */
#define RV_BACKUPS_JOBS_MAX 32
#define RV_BACKUPS_VERIFY_MAX 2
/* How often final_backup looks for the agent's record of its request. */
#define RV_BACKUPS_WAIT_POLL_MS 1000
/* seed_from_backup: how long after its target a restore waits for the
 * source's WAL archive to pass it; agents archive at least every
 * RV_BACKUP_ARCHIVE_TIMEOUT_S, so three periods cover a slow upload. */
#define RV_SEED_ARCHIVE_WAIT_MS (3 * RV_BACKUP_ARCHIVE_TIMEOUT_S * 1000)

_Static_assert(RV_BACKUPS_POST_BODY_MAX <= RV_HTTP_BODY_MAX, "the httpd accepts the body");
_Static_assert(RV_BACKUPS_VERIFY_MAX < RV_BACKUPS_JOBS_MAX, "verifications leave room for agents");
_Static_assert(RV_BACKUPS_ID_MAX + 16 < RV_BACKUPS_STRING_MAX, "a request schedule fits");
/* (end of section) */

/* --- MariaDB engine (agent/engine_mariadb.c) --- */
/* Paths of the tools, data and socket directories and the log; the socket
 * path ("<dir>/mariadbd.sock") must fit sun_path (108 bytes). */
#define RV_MDB_PATH_MAX 1024
#define RV_MDB_SOCKET_DIR_MAX 80
/* User and node names: MariaDB user names are at most 128 characters (80 in
 * the grant tables of older servers); node names are agent names. */
#define RV_MDB_NAME_MAX 63
/* A host name or address, or a CIDR, as written into CHANGE MASTER and a
 * grant's host part (at most 255 characters in MariaDB). */
#define RV_MDB_HOST_MAX 255
/* The replication password: stored by the server in master.info as given;
 * 256 is far more entropy than needed. */
#define RV_MDB_PASSWORD_MAX 256
/* Extra reeve.cnf lines rendered from the configuration. */
#define RV_MDB_CONF_EXTRA_MAX (16 * 1024)
/* reeve.cnf and reeve-params.cnf as read back: the engine writes a few KiB;
 * 256 parameters of up to 4 KiB each fit. */
#define RV_MDB_CONF_FILE_MAX (1024 * 1024 + 64 * 1024)
/* One parameter value (optimizer_switch and sql_mode are the longest). */
#define RV_MDB_PARAM_VALUE_MAX 4096
/* Parameters in one mdb_engine_apply_parameters() call, and kept in all. */
#define RV_MDB_PARAMS_MAX 256
/* Names of parameters pending a restart kept in a status. */
#define RV_MDB_PENDING_MAX 1024
/* A GTID position ("domain-server-seq" per domain): one domain per cluster
 * in practice; 32 domains cover merged clusters with room. */
#define RV_MDB_GTID_DOMAINS_MAX 32
#define RV_MDB_GTID_POS_MAX (RV_MDB_GTID_DOMAINS_MAX * 64)
/* The replication error kept in a status (Last_IO_Error / Last_SQL_Error). */
#define RV_MDB_LAST_ERROR_MAX 256
/* Output captured from one tool run (the rest is drained and dropped). */
#define RV_MDB_OUTPUT_MAX (64 * 1024)
/* mariadb-install-db of an empty server is about a second; tens of seconds
 * with fsync on a slow disk. */
#define RV_MDB_INSTALL_TIMEOUT_MS (120 * 1000)
/* Start: InnoDB crash recovery of a busy server can take a while; past this
 * the agent reports the node unhealthy instead of waiting forever. */
#define RV_MDB_START_TIMEOUT_MS (60 * 1000)
/* Stop: a clean shutdown flushes the buffer pool; beyond this it is killed. */
#define RV_MDB_STOP_TIMEOUT_MS (60 * 1000)
/* Promotion waits for the relay log to be applied; a caught-up replica
 * needs milliseconds, a lagging one is refused past this. */
#define RV_MDB_PROMOTE_TIMEOUT_MS (60 * 1000)
/* mariadb-backup | mbstream and --prepare copy data: an hour covers a few
 * hundred GiB on a LAN; larger clusters are seeded from backups instead. */
#define RV_MDB_COPY_TIMEOUT_MS (60 * 60 * 1000)
/* Connecting over the socket (libmariadb takes whole seconds). */
#define RV_MDB_CONNECT_TIMEOUT_S 5
/* Reading one reply to a statement issued by the engine. */
#define RV_MDB_READ_TIMEOUT_S 30
/* After START SLAVE: how long to watch for a refused GTID position
 * (divergence) before returning with the replica still connecting. */
#define RV_MDB_REPLICA_CHECK_MS 5000
/* Semi-synchronous replication: a commit waits this long for a replica's
 * acknowledgement before the primary falls back to asynchronous; the
 * default is "practically never" so no acknowledged commit is lost. */
#define RV_MDB_SEMI_SYNC_TIMEOUT_DEFAULT_MS (24u * 3600u * 1000u)
#define RV_MDB_SEMI_SYNC_TIMEOUT_MAX_MS (7u * 24u * 3600u * 1000u)

_Static_assert(RV_MDB_SOCKET_DIR_MAX + 20 < 108, "a socket path fits sun_path");
_Static_assert(RV_MDB_SOCKET_DIR_MAX <= RV_MDB_PATH_MAX, "socket dir is a path");
_Static_assert(RV_MDB_OUTPUT_MAX / 2 > RV_ERROR_MSG_MAX, "output tail fits a message");
_Static_assert(RV_MDB_CONNECT_TIMEOUT_S * 1000 < RV_MDB_START_TIMEOUT_MS, "connect within start");
_Static_assert(RV_MDB_REPLICA_CHECK_MS < RV_MDB_START_TIMEOUT_MS, "the check is short");
_Static_assert(RV_MDB_PARAMS_MAX * (RV_MDB_NAME_MAX + RV_MDB_PARAM_VALUE_MAX + 8) <
                   RV_MDB_CONF_FILE_MAX,
               "every parameter fits in the parameter file");
/* (end of section) */

/* --- autopilot handlers and synchronous replication (agent/) --- */
/* A handler command (agent config handlers.<event>.command): argv entries
 * and the length of each; a command is a program and a few arguments. */
#define RV_AGENT_HANDLER_ARGS_MAX 32
#define RV_AGENT_HANDLER_ARG_MAX 4096
/* handlers.<event>.timeout_ms: default, and the range accepted. The
 * command is killed (its whole process group) when it runs longer. */
#define RV_AGENT_HANDLER_TIMEOUT_DEFAULT_MS 10000
#define RV_AGENT_HANDLER_TIMEOUT_MIN_MS 100
#define RV_AGENT_HANDLER_TIMEOUT_MAX_MS 600000
/* Output of a handler kept (the tail; stdout and stderr together) for the
 * log and the error message: enough for a few lines of explanation. */
#define RV_AGENT_HANDLER_OUTPUT_MAX 4096
/* How often a running handler is checked for its deadline and for the
 * agent asking the step to give up (a primary fencing itself). */
#define RV_AGENT_HANDLER_POLL_MS 50
/* Failover race: a replica publishes its position, waits this long for its
 * peers to publish theirs, then waits RV_AGENT_RACE_RANK_STEP_MS for each
 * eligible peer that has more WAL (or as much and a smaller name), so the
 * least-lagging replica takes the key first; a peer that is ranked ahead
 * but does not take it only delays the race by its step. */
#define RV_AGENT_RACE_SETTLE_MS 300
#define RV_AGENT_RACE_RANK_STEP_MS 700
/* Nodes of one cluster read at once (the nodes/ prefix). */
#define RV_AGENT_PEERS_MAX 64
_Static_assert(RV_AGENT_HANDLER_POLL_MS <= RV_AGENT_TTL_MIN_MS / RV_AGENT_FENCE_CHECK_DIV,
               "a primary's handler is killed within one fence check of the abort");
_Static_assert(RV_AGENT_PEERS_MAX >= RV_PG_SYNC_MEMBERS_MAX, "every standby of a set is seen");
/* (end of section) */

/* --- sealed secrets (lib/seal.c) --- */
/* A key file: one line of a tag and base64, or 64 hex characters. */
#define RV_SEAL_KEY_FILE_MAX 256
/* A secret to seal: passwords and tokens, with room for a PEM key. */
#define RV_SEAL_PLAIN_MAX (16 * 1024)
/* A scope is "namespace/name". */
#define RV_SEAL_SCOPE_MAX (2 * RV_NAME_MAX + 1)
/* (end of section) */

/* --- maintenance windows and pause files (reconciler/window.c) --- */
/* The reason from a clusters/<namespace>/PAUSED file shown in the apply's
 * status: a forge shows about 140 characters of a status description, so a
 * longer first line is cut (with "...") rather than pushing the file name
 * out of view. */
#define RV_WINDOW_PAUSE_REASON_MAX 100
/* "paused: clusters/<namespace>/PAUSED (<reason>)" with its terminator. */
#define RV_WINDOW_PAUSE_WHY_MAX (RV_NAME_MAX + RV_WINDOW_PAUSE_REASON_MAX + 32)
_Static_assert(RV_WINDOW_PAUSE_WHY_MAX <= RV_EXEC_STATUS_MAX, "a pause fits an apply's status");
/* (end of section) */

/* --- parameters (specs-schema/params.c): engine parameter catalogs --- */
/* A parameter name as the catalogs hold it: PostgreSQL's NAMEDATALEN - 1 is
 * 63, MariaDB's longest variable is under 64; the schema allows 63. Longer
 * names are unknown without a look-up. */
#define RV_PARAM_NAME_MAX 64
/* Characters of a user's value quoted back in a message, as for the schema. */
#define RV_PARAM_QUOTE_MAX 48
/* Characters of allowed values listed in a "must be one of" message; a
 * longer list (sql_mode has 35 values) ends in "..." so the message stays
 * one readable line. */
#define RV_PARAM_LIST_CHARS 160
_Static_assert(RV_PARAM_NAME_MAX > RV_NAME_MAX, "every name the schema allows fits");
_Static_assert(RV_PARAM_QUOTE_MAX + RV_PARAM_NAME_MAX * 2 + RV_PARAM_LIST_CHARS + 120 <
                   RV_ERROR_MSG_MAX,
               "a value, two names, a list of values and the words fit in a message");
/* (end of section) */

/* --- database users (reconciler/users.c, agent/users.c) --- */
/* Users of one cluster: the schema's spec.users maxItems. */
#define RV_USERS_MAX 64
/* Roles of one user: the schema's roles maxItems. */
#define RV_USERS_ROLES_MAX 4
/* A user's password from env: or file: (the sealed form is bounded by
 * RV_SEAL_PLAIN_MAX): the same bound as reeve.yaml's secrets. */
#define RV_USERS_PASSWORD_MAX RV_CONFIG_SECRET_MAX
/* The users-applied report an agent writes to the DCS: a digest, a node
 * name, one error and a few notes; well under a DCS value. */
#define RV_USERS_REPORT_MAX 4096
/* Notes (roles kept because they own objects) in one report. */
#define RV_USERS_NOTES_MAX 8
/* How often configure_users looks at the agent's report again. */
#define RV_USERS_WAIT_POLL_MS 500
_Static_assert(RV_USERS_REPORT_MAX <= RV_DCS_VALUE_MAX, "a report fits in a DCS value");
_Static_assert(RV_USERS_PASSWORD_MAX <= RV_SEAL_PLAIN_MAX, "a password from a file can be sealed");
_Static_assert(RV_USERS_PASSWORD_MAX <= RV_BACKUP_SECRET_MAX, "an agent can store every password");
/* (end of section) */

/* --- agent engines (agent/engine.c): the autopilot's engine interface --- */
/* A node's position as published (an LSN, or a MariaDB GTID position). */
#define RV_ENGINE_POSITION_MAX RV_MDB_GTID_POS_MAX
/* A server version string ("10.11.6-MariaDB-0+deb12u1"). */
#define RV_ENGINE_VERSION_MAX 63
/* A MariaDB replica's logical clone (mariadb-dump | mariadb): an hour is a
 * few tens of GiB; bigger clusters need the physical clone, which must run
 * on the primary's machine (docs/engine-mariadb.md). */
#define RV_ENGINE_DUMP_TIMEOUT_MS (60 * 60 * 1000)
/* Error output of the dump and load kept for a message. */
#define RV_ENGINE_DUMP_ERR_MAX 4096
/* A MariaDB replica this many transactions behind the last primary
 * position it saw does not race for leadership
 * (max_lag_on_failover_transactions default). */
#define RV_AGENT_FAILOVER_LAG_TRX_DEFAULT 1000
/* The MariaDB port the local provider gives its instances. */
#define RV_LOCAL_MDB_PORT 3306
_Static_assert(RV_ENGINE_DUMP_ERR_MAX < RV_MDB_OUTPUT_MAX, "the error tail is bounded");
/* (end of section) */

/* --- day-2 operations (agent/ops.c, reconciler/runners.c) --- */
/* An operation id (runner-chosen: the action's idempotency key, hex). */
#define RV_OPS_ID_MAX 80
/* How long a target replica waits, after the old primary stopped, to have
 * replayed everything it received before it promotes: replay of the last
 * few MiB takes well under a second on any disk. */
#define RV_OPS_CATCHUP_WAIT_MS 15000
/* How long the old primary, stopped, waits for the target to take the
 * leader key before it takes the key back and starts again (a roll back):
 * a few ticks of the target's agent. */
#define RV_OPS_HANDOFF_WAIT_MS 15000
/* Polling inside those waits. */
#define RV_OPS_POLL_MS 50
/* How long reeve waits for a node upgraded in place to report healthy and
 * caught up before it puts the node back on its version: a restart plus
 * replaying what was written meanwhile. */
#define RV_OPS_NODE_WAIT_S 180
/* The most parameters the agent applies from one configuration. */
#define RV_OPS_PARAMS_MAX 256
_Static_assert(RV_OPS_PARAMS_MAX <= RV_PG_PARAMS_MAX, "the engine takes every parameter");
/* (end of section) */

/* --- CLI commands that call reeve serve (reconciler/cli_http.c) --- */
/* An answer of `reeve status` or `reeve backups list`: a status document of
 * 10,000 clusters is about 20 MiB. */
#define RV_CLI_HTTP_BODY_MAX (64 * 1024 * 1024)
/* Connecting to reeve: it is on the same network, or not there at all. */
#define RV_CLI_HTTP_CONNECT_TIMEOUT_MS 3000
/* (end of section) */

/* --- MariaDB backups (agent/backup_mariadb.c) --- */
/* The most backups one restore applies: a full backup and its
 * incrementals. A chain longer than this means incremental_cron runs far
 * more often than full_cron; prepare time grows with every link. */
#define RV_MDB_BACKUP_CHAIN_MAX 64
/* One mariadb-backup --prepare (or --move-back): InnoDB applies the redo log
 * of one link; bounded like a clone's copy. */
#define RV_MDB_BACKUP_PREPARE_TIMEOUT_MS (60 * 60 * 1000)
/* A GTID position with its NUL as recorded for a backup (the engine's limit). */
#define RV_MDB_BACKUP_GTID_SIZE (RV_MDB_GTID_POS_MAX + 1)
/* xtrabackup_checkpoints and xtrabackup_info: a few hundred bytes; more is not
 * such a file. */
#define RV_MDB_BACKUP_INFO_MAX (64 * 1024)
/* (end of section) */

/* --- child-process framing (lib/child.c) --- */
/* The most programs child_run starts as one pipeline: the agent runs at
 * most two (a backup into an extractor); a little room for a filter. */
#define RV_CHILD_PIPELINE_MAX 4
/* The output tail child_run keeps when the caller names none: enough for
 * the last lines of a failing tool, which is all a message shows. */
#define RV_CHILD_OUTPUT_MAX (64 * 1024)
/* How long one poll waits before the deadline and the cancel flag are
 * checked again: a stop request is noticed within this (the handlers'
 * fencing bound needs it short). */
#define RV_CHILD_POLL_MS 50
/* The pause between two checks while a child that closed its output is
 * still exiting. */
#define RV_CHILD_REAP_SLEEP_MS 5
/* One read from the capture pipe. */
#define RV_CHILD_CHUNK 4096
_Static_assert(RV_CHILD_OUTPUT_MAX / 2 > RV_ERROR_MSG_MAX, "output tail fits a message");
_Static_assert(RV_CHILD_POLL_MS <= RV_AGENT_HANDLER_POLL_MS, "a handler's cancel is seen in time");
/* (end of section) */

/* --- backup log lines synced to the reconciler (agent/backupd.c, reconciler/backups.c) --- */
/* Log lines one POST /v1/agents/backups carries from the agent, oldest
 * first; the rest go next poll. With the records of a batch (a few KiB
 * each) this stays far below RV_BACKUPS_POST_BODY_MAX. */
#define RV_BACKUP_SYNC_LOG_LINES 200
/* Log lines the reconciler accepts in one request: more than an agent
 * sends, far fewer than a hostile body could carry. */
#define RV_BACKUPS_POST_LOGS_MAX 1000
/* One log line as the reconciler accepts it: the agent writes at most
 * RV_ERROR_MSG_MAX - 1 bytes; twice that leaves room for other agents. */
#define RV_BACKUPS_LOG_LINE_MAX 1024
/* Log lines the reconciler keeps per backup (the oldest go first): as many
 * as the agent keeps. */
#define RV_BACKUPS_LOG_LINES_MAX RV_BACKUP_LOG_LINES_MAX
_Static_assert(RV_BACKUP_SYNC_LOG_LINES <= RV_BACKUPS_POST_LOGS_MAX,
               "the agent's batch is accepted");
_Static_assert(RV_ERROR_MSG_MAX <= RV_BACKUPS_LOG_LINE_MAX, "every line the agent writes fits");
_Static_assert((RV_BACKUP_SYNC_LOG_LINES * (2 * RV_ERROR_MSG_MAX + 256)) <
                   RV_BACKUPS_POST_BODY_MAX / 2,
               "a batch of lines leaves half the body to the records");
/* (end of section) */

#endif
