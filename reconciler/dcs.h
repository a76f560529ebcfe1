/* dcs.h - the reconciler's built-in DCS: a small etcd-like key-value store.
 *
 * Keys are absolute paths ("/clusters/payments/billing/leader"), values JSON
 * text. A global revision counts changes; every key carries create_rev,
 * mod_rev (the revision of its last change) and version (puts since it was
 * created). Every successful change (put, delete, a transaction that changed
 * something, a session expiry that deleted keys) takes exactly one new
 * revision, shared by all keys it touched.
 *
 * Sessions are etcd leases: granted with a TTL, kept alive, and when one
 * expires (dcs_tick past its deadline) or is revoked every key attached to
 * it is deleted, which watchers see as delete events.
 *
 * Watching is a long-poll: dcs_changes() lists what happened on a prefix
 * after a revision from a bounded history ring; when nothing has,
 * dcs_watch_add() registers a callback that runs once, at the next matching
 * change or at its deadline. A revision that fell out of the ring answers
 * RV_ESTALE: the watcher must re-read with dcs_range() and watch from the
 * revision it read at.
 *
 * Time is injected: clock() gives monotonic milliseconds (uv_now() in the
 * server), and dcs_tick(now) expires sessions and watchers.
 *
 * Persistence (optional, a SQLite file of its own): memory is the working
 * copy; each change is queued and written in batches, one transaction per
 * batch, by dcs_batch_write(), which may run on a worker thread while the
 * loop goes on. dcs_pending_seq() numbers changes; a caller that must not
 * acknowledge a change before it is on disk (a lock taken, a token issued)
 * waits until a batch with that sequence number has been written. On open,
 * every session's deadline is now + its TTL (a grace period), so a restart
 * of the reconciler does not expire every leader key at once.
 *
 * Everything except dcs_batch_write() runs on one thread (the loop's).
 */
#ifndef REEVE_DCS_H
#define REEVE_DCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct dcs;
struct dcs_batch;

/* Monotonic milliseconds. */
typedef int64_t (*dcs_clock_fn)(void *payload);

struct dcs_kv {
    const char *key;
    const char *value; /* NULL in a delete event */
    size_t value_len;
    uint64_t create_rev;
    uint64_t mod_rev; /* for a delete event: the revision of the delete */
    uint64_t version;
    uint64_t session; /* 0 = not attached */
};

enum dcs_event_type { DCS_EVENT_PUT, DCS_EVENT_DELETE };

struct dcs_event {
    enum dcs_event_type type;
    struct dcs_kv kv;
};

enum dcs_cmp_type {
    DCS_CMP_EXISTS,
    DCS_CMP_NOT_EXISTS,
    DCS_CMP_MOD_REV, /* the key exists and its mod_rev == mod_rev */
    DCS_CMP_VALUE,   /* the key exists and its value == value (bytes) */
    DCS_CMP_SESSION, /* the key exists and is attached to session */
};

struct dcs_cmp {
    enum dcs_cmp_type type;
    const char *key;
    uint64_t mod_rev;
    const char *value;
    uint64_t session;
};

enum dcs_op_type { DCS_OP_PUT, DCS_OP_DELETE };

struct dcs_op {
    enum dcs_op_type type;
    const char *key;
    const char *value; /* PUT: JSON text, NUL-terminated */
    uint64_t session;  /* PUT: attach to this session; 0 = none */
};

/* If every comparison holds, apply success ops, else failure ops. */
struct dcs_txn {
    const struct dcs_cmp *cmp;
    size_t ncmp;
    const struct dcs_op *success;
    size_t nsuccess;
    const struct dcs_op *failure;
    size_t nfailure;
};

/* Open a store. db_path NULL keeps it in memory only; otherwise the file is
 * created or loaded (synchronously: call before the loop serves). */
int dcs_open(struct dcs **out, const char *db_path, dcs_clock_fn clock, void *clock_payload,
             struct rv_error *err);
/* Cancel watchers (their callbacks see RV_ECANCELED), free everything.
 * No batch may be in flight. dcs_free(NULL) is a no-op. */
void dcs_free(struct dcs *d);

uint64_t dcs_revision(const struct dcs *d);

/* Key and prefix syntax: '/' then segments of [A-Za-z0-9._:@-], separated
 * by single '/', no "." or ".." segment, no trailing '/' (a prefix may end
 * with '/'). RV_EINVAL with a message naming the problem. */
int dcs_key_check(const char *key, bool prefix, struct rv_error *err);

/* Sessions. owner is an opaque tag ("" allowed) kept with the session and
 * persisted; the agent API uses it to keep agents to their own sessions.
 * ttl outside [RV_DCS_TTL_MIN_MS, RV_DCS_TTL_MAX_MS] is RV_EINVAL. */
int dcs_session_grant(uint64_t *out_id, struct dcs *d, int64_t ttl_ms, const char *owner,
                      struct rv_error *err);
/* Push the deadline to now + TTL. RV_ENOTFOUND when expired or unknown. */
int dcs_session_keepalive(struct dcs *d, uint64_t id, struct rv_error *err);
/* Delete the session and its keys. RV_ENOTFOUND when unknown. */
int dcs_session_revoke(struct dcs *d, uint64_t id, struct rv_error *err);
/* Owner tag and TTL of a live session; RV_ENOTFOUND when unknown. */
int dcs_session_info(const char **out_owner, int64_t *out_ttl_ms, const struct dcs *d, uint64_t id);

/* The key, or NULL. Borrowed until the next change. */
const struct dcs_kv *dcs_get(const struct dcs *d, const char *key);
/* Call fn for every key starting with prefix, in key order; fn returns
 * nonzero to stop (dcs_range then returns that value). */
typedef int (*dcs_kv_fn)(const struct dcs_kv *kv, void *payload);
int dcs_range(const struct dcs *d, const char *prefix, dcs_kv_fn fn, void *payload);

/* Put value (JSON text, at most RV_DCS_VALUE_MAX bytes) under key,
 * attached to session (0 = none). *out_rev may be NULL. */
int dcs_put(uint64_t *out_rev, struct dcs *d, const char *key, const char *value, uint64_t session,
            struct rv_error *err);
/* Delete key; *out_deleted false when it did not exist (no new revision). */
int dcs_delete(bool *out_deleted, uint64_t *out_rev, struct dcs *d, const char *key,
               struct rv_error *err);
/* Compare-and-set. Everything is checked (keys, values, sessions, no key
 * twice among the chosen ops) before anything is applied: a transaction is
 * whole or not at all. *out_rev is the revision after it. */
int dcs_txn(bool *out_succeeded, uint64_t *out_rev, struct dcs *d, const struct dcs_txn *txn,
            struct rv_error *err);

/* Events on keys starting with prefix with revision > after, oldest first.
 * Returns the number of events, or RV_ESTALE when events after `after` are
 * no longer all in the history (or after is beyond the current revision,
 * as after a restart that lost changes nobody was told of): re-read. Events
 * are borrowed until the next change. */
typedef void (*dcs_event_fn)(const struct dcs_event *ev, void *payload);
int dcs_changes(const struct dcs *d, const char *prefix, uint64_t after, dcs_event_fn fn,
                void *payload);

/* status: 0 = a change on the prefix after `after` exists (call
 * dcs_changes), RV_ETIMEOUT = deadline passed, RV_ECANCELED = dcs_watch_cancel
 * or dcs_free. Called once; the watcher is gone when it runs. The callback
 * may read the store and add watchers but must not change it. */
typedef void (*dcs_watch_fn)(struct dcs *d, int status, void *payload);
/* Register a watcher. RV_ELIMIT past RV_DCS_WATCHERS_MAX. Changes made
 * before the call do not fire it (only the next matching change or the
 * deadline does), so callers check dcs_changes() first. */
int dcs_watch_add(uint64_t *out_id, struct dcs *d, const char *prefix, uint64_t after,
                  int64_t deadline_ms, dcs_watch_fn fn, void *payload, struct rv_error *err);
/* Remove a watcher, calling its callback with RV_ECANCELED. No-op when gone. */
void dcs_watch_cancel(struct dcs *d, uint64_t id);

/* Expire sessions whose deadline is <= now (deleting their keys) and
 * watchers past their deadline. */
void dcs_tick(struct dcs *d, int64_t now_ms);

/* Persistence. Sequence number of the last change (0 = none yet) and of
 * the last change known to be on disk. Without a database both are equal. */
uint64_t dcs_pending_seq(const struct dcs *d);
uint64_t dcs_durable_seq(const struct dcs *d);
/* Take the queued changes as a batch (*out NULL when there are none or a
 * batch is already out). Loop thread. */
int dcs_batch_take(struct dcs_batch **out, struct dcs *d);
/* Write a batch in one transaction. Any thread, one batch at a time. */
int dcs_batch_write(struct dcs_batch *b, struct rv_error *err);
/* The write's result (0 or its error): on success the batch's changes are
 * durable. On failure the changes go back in the queue, to be retried. Frees b.
 * Loop thread. */
void dcs_batch_done(struct dcs *d, struct dcs_batch *b, int rc);
/* Take, write and finish synchronously (tests, shutdown). */
int dcs_flush(struct dcs *d, struct rv_error *err);

#endif
