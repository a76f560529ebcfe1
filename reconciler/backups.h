/* backups.h - the reconciler's side of backups (docs/backups.md).
 *
 * What it keeps, in the reconciler's database (state.db, migration
 * "backups"):
 *   backup_specs     per cluster the backup-relevant part of its last desired
 *                    spec (also after the spec is deleted, so a final backup
 *                    and a restore from a deleted cluster still find the
 *                    destination), whether it has been bootstrapped, and
 *                    the restore decided for it
 *   backup_records   the agents' backup records (backup_id, cluster, status,
 *                    ended_at, the record's JSON)
 *   backup_wal       per cluster the last archived WAL segment and its time
 *   backup_logs      the agents' log lines of each backup (migration
 *                    "backup logs")
 *   backup_requests  backups the reconciler asks for (final backups)
 *
 * What it computes:
 *   - the configuration an agent fetches (GET /v1/agents/config): the
 *     cluster's backup policy with the secrets of reeve.yaml resolved in,
 *     restore instructions while a bootstrap.fromBackup cluster is not yet
 *     bootstrapped, and the backups asked for now. Secrets go only into
 *     that answer: never logged, never stored;
 *   - which backup a restore uses (backups_pick: a named one, the newest
 *     succeeded full one that ended at or before a point in time, or the
 *     newest), with plain refusals when that is impossible;
 *   - verification of a stored backup: its object is read from the
 *     destination and checked through the bstream decoder.
 *
 * Threads. A struct backups has its own database connection behind a
 * mutex: every function may be called from any thread, and every function
 * but backups_check_refs and backups_pick may block (SQLite, object
 * stores): call them off the libuv loop.
 */
#ifndef REEVE_BACKUPS_H
#define REEVE_BACKUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "crypto.h"
#include "diag.h"
#include "err.h"
#include "limits.h"
#include "spec.h"

/* Migration SQL of the backup tables; store.c lists it in store_migrations. */
extern const char backups_schema_sql[];
/* Migration SQL of backup_logs (the agents' per-backup log lines), listed
 * after backups_schema_sql. */
extern const char backups_logs_sql[];

struct backups;

/* Open a connection to the reconciler database at db_path (already
 * migrated by store_open). cfg is borrowed (the resolved secrets) and must
 * outlive b. */
int backups_open(struct backups **out, const char *db_path, const struct config *cfg,
                 struct rv_error *err);
void backups_free(struct backups *b);

/* Remember the backup-relevant spec of every cluster of set (the desired
 * state about to be applied); clusters not in set keep their last row,
 * marked not desired. */
int backups_set_specs(struct backups *b, const struct spec_set *set, struct rv_error *err);

/* Add an error diagnostic for every credentialsRef and keyRef of set that
 * names nothing in cfg (at the backup section of the spec), e.g.
 *   clusters/billing.yaml:14:3: error: spec.backup.destination.s3.credentialsRef:
 *   cluster payments/billing names credentials 's3-main', which reeve.yaml does
 *   not configure; add them under 'credentials:' in reeve.yaml
 * Returns RV_ENOMEM or 0. */
int backups_check_refs(const struct config *cfg, const struct spec_set *set,
                       struct diag_list *diags);

/* Store an agent's POST /v1/agents/backups body (already validated by the
 * agent API: agentapi_backups_check) for cluster "ns/name": records
 * upserted by backup_id (a verification the reconciler recorded is kept
 * when the agent sends none), the WAL position replaced. */
int backups_ingest(size_t *out_accepted, struct backups *b, const char *cluster, const json_t *body,
                   struct rv_error *err);
/* backups_ingest, and the body's "logs" after its records, in the same
 * transaction: a line is stored only when its backup_id is a record of
 * cluster (sent in this body or before); other lines are dropped and
 * counted in a warning that names the first backup id, never a line. A
 * line sent again (same backup, time, level and text) is stored once; the
 * newest RV_BACKUPS_LOG_LINES_MAX lines of a backup are kept. *out_logs:
 * lines newly stored. */
int backups_ingest_logs(size_t *out_accepted, size_t *out_logs, struct backups *b,
                        const char *cluster, const json_t *body, struct rv_error *err);

/* One backup for GET /api/v1/backups/<id>: {"record": <record>, "logs":
 * [{"at","level","line"}...]} with the lines oldest first. RV_ENOTFOUND
 * (with a message naming the id) when no record has that id. */
int backups_show(json_t **out, struct backups *b, const char *backup_id, struct rv_error *err);

/* Whether a primary of "ns/name" is reporting now (the caller's view of the
 * node reports); NULL: none ever is. */
typedef bool (*backups_primary_fn)(const char *cluster, void *ud);

/* The agent configuration of cluster "ns/name" as compact JSON (see
 * docs/backups.md); *out_json is malloc'd and holds secrets: wipe it
 * (crypto_wipe) before freeing. RV_ENOTFOUND when no spec of the cluster is
 * known yet; RV_EINVAL when the spec names credentials or keys reeve.yaml
 * does not have, or its restore cannot be resolved. primary: when it says
 * a primary reports, the cluster counts as bootstrapped from then on. */
int backups_agent_config(char **out_json, struct backups *b, const char *cluster,
                         backups_primary_fn primary, void *ud, struct rv_error *err);

/* Records as a JSON array, newest first (started_at), of one cluster or
 * all (cluster NULL). */
int backups_list(json_t **out, struct backups *b, const char *cluster, struct rv_error *err);

/* Verify backup_id: read its object from the cluster's destination, check
 * size, SHA-256 and (with the key, or unencrypted) every chunk; record
 * verify {at, kind:"checksum", status, error} in the record. *out_record
 * is the updated record; *out_decoded (may be NULL) says whether every
 * chunk was decoded (false: size and SHA-256 only, for an encrypted backup
 * whose key reeve.yaml lacks). Returns 0 when the check ran (ok or failed:
 * see the record), RV_ENOTFOUND for an unknown id, RV_ECONFLICT for a
 * backup that did not succeed, another error when the check could not run
 * (destination unreachable: the record is left as is). */
int backups_verify(json_t **out_record, bool *out_decoded, struct backups *b, const char *backup_id,
                   struct rv_error *err);

/* --- database users (users.h) --- */

/* The key pair that opens the users' sealed passwords (borrowed; must
 * outlive b). Without it, a cluster with users gets no configuration
 * (RV_EINVAL). */
struct seal_keys;
void backups_set_seal_keys(struct backups *b, const struct seal_keys *keys);
/* The digest of cluster's users as its agents are served them now (every
 * reference opened; RV_EINVAL with the plain reason when one does not) and
 * how many there are. RV_ENOTFOUND when no spec of it is known. */
int backups_users_digest(char out[CRYPTO_SHA256_HEX_SIZE], size_t *out_nusers, struct backups *b,
                         const char *cluster, struct rv_error *err);

/* --- final backups (runners) --- */

/* Ask the agents of cluster for a full backup now, as request id (kept
 * when it exists: idempotent). */
int backups_request(struct backups *b, const char *id, const char *cluster, struct rv_error *err);
/* The record made for request id: 1 and *out_record (new reference) when
 * one exists (the newest), 0 when none. */
int backups_request_record(json_t **out_record, struct backups *b, const char *id,
                           struct rv_error *err);

/* The backup-relevant facts of a cluster's last known spec. */
struct backups_spec_facts {
    bool known;  /* a spec was seen */
    bool backup; /* it has a backup section */
    bool from_backup;
    char engine[16];
};
int backups_spec_facts(struct backups_spec_facts *out, struct backups *b, const char *cluster,
                       struct rv_error *err);
/* Mark cluster bootstrapped: its restore is no longer served. */
int backups_mark_bootstrapped(struct backups *b, const char *cluster, struct rv_error *err);

/* --- restores --- */

struct backups_restore {
    char source[2 * 64 + 2];
    char backup_id[RV_BACKUPS_ID_MAX + 1];
    char point_in_time[32]; /* "2026-11-20T10:00:00.000Z", "" when none */
};

/* Resolve the restore of cluster (a bootstrap.fromBackup spec) against the
 * records of its source. RV_EINVAL (not retryable) with the reason;
 * RV_ESTALE (retryable) when the target is after the last archived WAL,
 * with out->point_in_time set to the normalized target. The
 * first decision is kept (backup_specs.restore) and returned again while
 * the spec's fromBackup is unchanged, so the runner and every fetch of the
 * configuration agree even when newer backups arrive meanwhile. */
int backups_resolve_restore(struct backups_restore *out, struct backups *b, const char *cluster,
                            struct rv_error *err);

/* One succeeded full backup, for backups_pick. */
struct backups_brief {
    const char *id;
    int64_t ended_ms; /* Unix milliseconds */
};

struct backups_pick_in {
    const char *source;               /* "ns/name", for messages */
    const char *backup_id;            /* named, or NULL */
    const char *point_in_time;        /* RFC 3339 as written, or NULL */
    const struct backups_brief *full; /* succeeded full backups, any order */
    size_t nfull;
    bool named_found;        /* backup_id names a succeeded backup of source */
    const char *wal_segment; /* last archived WAL, or NULL when none is known */
    int64_t wal_at_ms;
};

/* The decision of a restore: fills out->backup_id and out->point_in_time
 * (normalized to UTC, ms precision) or fails with RV_EINVAL and one of
 *   "point in time T is before the first backup of S finished (E); the
 *    earliest restorable time is E"
 *   "point in time T is after the last archived WAL of S (segment G archived
 *    at A); reeve cannot restore changes that were not archived"
 *   "no succeeded backup of S is known" ... */
int backups_pick(struct backups_restore *out, const struct backups_pick_in *in,
                 struct rv_error *err);

/* "2026-11-20T10:00:00.000Z" (ms) or, with short, "2026-11-20T10:00:00Z"
 * when the milliseconds are 0. */
void backups_time_format(char out[32], int64_t ms, bool short_);

#endif
