/* dcs.c - the built-in DCS: keys, sessions, transactions, watch history,
 * and write-behind persistence to a SQLite file of its own. See dcs.h. */
#include "dcs.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "limits.h"
#include "log.h"

struct session {
    uint64_t id;
    int64_t ttl_ms;
    int64_t deadline;
    char *owner;
};

struct watcher {
    uint64_t id;
    char *prefix;
    uint64_t after;
    int64_t deadline;
    dcs_watch_fn fn;
    void *payload;
};

enum pend_kind { PEND_KEY_PUT, PEND_KEY_DEL, PEND_SES_PUT, PEND_SES_DEL };

/* One change waiting to be written. Strings are owned copies. */
struct pend {
    enum pend_kind kind;
    char *key;
    char *value;
    uint64_t create_rev, mod_rev, version, session;
    int64_t ttl_ms;
    char *owner;
};

struct dcs_batch {
    struct db *db;
    struct pend *p;
    size_t n;
    uint64_t seq;
    uint64_t revision;
    uint64_t next_session;
};

struct dcs {
    dcs_clock_fn clock;
    void *clock_payload;
    struct db *db;
    uint64_t revision;
    uint64_t compact_rev; /* events with rev <= this may be missing */
    uint64_t next_session;
    struct dcs_kv **keys; /* sorted by key */
    size_t nkeys, keys_cap;
    struct session *sessions; /* sorted by id */
    size_t nsessions, sessions_cap;
    /* no session expires before this: keepalives only push deadlines
     * later, so a tick before it need not scan the sessions */
    int64_t min_deadline;
    struct dcs_event *ring; /* RV_DCS_HISTORY_MAX slots, owned strings */
    size_t ring_head, ring_len;
    struct watcher *watchers;
    size_t nwatchers, watchers_cap;
    uint64_t next_watch;
    struct pend *pend;
    size_t npend, pend_cap;
    uint64_t seq, durable_seq;
    bool batch_out;
};

static const struct db_migration dcs_migrations[] = {
    {"dcs initial schema",
     "CREATE TABLE dcs_meta (id INTEGER PRIMARY KEY CHECK (id = 1),"
     " revision INTEGER NOT NULL, next_session INTEGER NOT NULL);"
     "INSERT INTO dcs_meta (id, revision, next_session) VALUES (1, 0, 1);"
     "CREATE TABLE dcs_sessions (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL,"
     " owner TEXT NOT NULL);"
     "CREATE TABLE dcs_keys (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
     " create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL,"
     " session INTEGER NOT NULL) WITHOUT ROWID;"},
};

/* --- small helpers --- */

static int64_t now_ms(const struct dcs *d)
{
    return d->clock(d->clock_payload);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static char *dup_s(const char *s)
{
    return dup_n(s, strlen(s));
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap == 0 ? 16 : *cap * 2;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return RV_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static void kv_free(struct dcs_kv *kv)
{
    if (kv == NULL)
        return;
    free((char *)kv->key);
    free((char *)kv->value);
    free(kv);
}

static void pend_release(struct pend *p)
{
    free(p->key);
    free(p->value);
    free(p->owner);
}

static bool key_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == ':' || c == '@';
}

int dcs_key_check(const char *key, bool prefix, struct rv_error *err)
{
    const char *what = prefix ? "prefix" : "key";
    if (key == NULL || key[0] != '/')
        return rv_error_set(err, RV_EINVAL, false, "%s must start with '/'", what);
    size_t len = strlen(key);
    if (len > RV_DCS_KEY_MAX)
        return rv_error_set(err, RV_EINVAL, false, "%s is %zu bytes long; at most %d allowed", what,
                            len, RV_DCS_KEY_MAX);
    if (len == 1)
        return prefix ? 0 : rv_error_set(err, RV_EINVAL, false, "key '/' names no key");
    const char *seg = key + 1;
    for (;;) {
        size_t n = 0;
        while (seg[n] != '\0' && seg[n] != '/') {
            if (!key_char_ok(seg[n]))
                return rv_error_set(err, RV_EINVAL, false,
                                    "%s '%s': character at offset %zu is not allowed "
                                    "(use letters, digits and . _ - : @)",
                                    what, key, (size_t)(seg + n - key));
            n++;
        }
        if (n == 0) {
            if (seg[0] == '\0' && prefix)
                return 0; /* a prefix may end with '/' */
            return rv_error_set(err, RV_EINVAL, false, "%s '%s' has an empty segment", what, key);
        }
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return rv_error_set(err, RV_EINVAL, false, "%s '%s' has a '.' or '..' segment", what,
                                key);
        if (seg[n] == '\0')
            return 0;
        seg += n + 1;
    }
}

/* --- keys (sorted array) --- */

/* Index of the first key >= key. */
static size_t key_lower(const struct dcs *d, const char *key)
{
    size_t lo = 0, hi = d->nkeys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->keys[mid]->key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct dcs_kv *key_find(const struct dcs *d, const char *key, size_t *out_idx)
{
    size_t i = key_lower(d, key);
    if (out_idx != NULL)
        *out_idx = i;
    if (i < d->nkeys && strcmp(d->keys[i]->key, key) == 0)
        return d->keys[i];
    return NULL;
}

static int key_insert(struct dcs *d, size_t idx, struct dcs_kv *kv)
{
    int rc = grow((void **)&d->keys, &d->keys_cap, d->nkeys + 1, sizeof(*d->keys));
    if (rc < 0)
        return rc;
    memmove(&d->keys[idx + 1], &d->keys[idx], (d->nkeys - idx) * sizeof(*d->keys));
    d->keys[idx] = kv;
    d->nkeys++;
    return 0;
}

static void key_remove(struct dcs *d, size_t idx)
{
    kv_free(d->keys[idx]);
    memmove(&d->keys[idx], &d->keys[idx + 1], (d->nkeys - idx - 1) * sizeof(*d->keys));
    d->nkeys--;
}

/* --- sessions (sorted by id; ids only grow) --- */

static struct session *session_find(const struct dcs *d, uint64_t id, size_t *out_idx)
{
    size_t lo = 0, hi = d->nsessions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->sessions[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (out_idx != NULL)
        *out_idx = lo;
    if (lo < d->nsessions && d->sessions[lo].id == id)
        return &d->sessions[lo];
    return NULL;
}

/* --- persistence queue --- */

static bool persisting(const struct dcs *d)
{
    return d->db != NULL;
}

static int pend_push(struct dcs *d, const struct pend *p)
{
    int rc = grow((void **)&d->pend, &d->pend_cap, d->npend + 1, sizeof(*d->pend));
    if (rc < 0)
        return rc;
    d->pend[d->npend++] = *p;
    return 0;
}

/* Queue a key's current state (or its deletion). */
static int pend_key(struct dcs *d, const struct dcs_kv *kv, bool deleted)
{
    if (!persisting(d))
        return 0;
    struct pend p = {.kind = deleted ? PEND_KEY_DEL : PEND_KEY_PUT};
    p.key = dup_s(kv->key);
    if (!deleted) {
        p.value = dup_n(kv->value, kv->value_len);
        p.create_rev = kv->create_rev;
        p.mod_rev = kv->mod_rev;
        p.version = kv->version;
        p.session = kv->session;
    }
    if (p.key == NULL || (!deleted && p.value == NULL) || pend_push(d, &p) < 0) {
        pend_release(&p);
        return RV_ENOMEM;
    }
    return 0;
}

static int pend_session(struct dcs *d, const struct session *s, bool deleted)
{
    if (!persisting(d))
        return 0;
    struct pend p = {.kind = deleted ? PEND_SES_DEL : PEND_SES_PUT, .session = s->id};
    if (!deleted) {
        p.ttl_ms = s->ttl_ms;
        p.owner = dup_s(s->owner);
        if (p.owner == NULL)
            return RV_ENOMEM;
    }
    if (pend_push(d, &p) < 0) {
        pend_release(&p);
        return RV_ENOMEM;
    }
    return 0;
}

/* Room in the queue for a client's change of `ops` items. */
static int pend_room(const struct dcs *d, size_t ops, struct rv_error *err)
{
    if (persisting(d) && d->npend + ops > RV_DCS_PENDING_MAX)
        return rv_error_set(err, RV_EBUSY, true,
                            "dcs: %zu changes are waiting to be written to disk; retry later",
                            d->npend);
    return 0;
}

/* --- history ring and watchers --- */

static void event_release(struct dcs_event *ev)
{
    free((char *)ev->kv.key);
    free((char *)ev->kv.value);
    memset(ev, 0, sizeof(*ev));
}

/* Record an event; when memory runs out the history is compacted up to it,
 * so watchers re-read instead of missing it. */
static void history_add(struct dcs *d, enum dcs_event_type type, const struct dcs_kv *kv,
                        uint64_t rev)
{
    if (d->ring == NULL) {
        d->ring = calloc(RV_DCS_HISTORY_MAX, sizeof(*d->ring));
        if (d->ring == NULL) {
            d->compact_rev = rev;
            return;
        }
    }
    size_t slot;
    if (d->ring_len == RV_DCS_HISTORY_MAX) {
        slot = d->ring_head;
        if (d->ring[slot].kv.mod_rev > d->compact_rev)
            d->compact_rev = d->ring[slot].kv.mod_rev;
        event_release(&d->ring[slot]);
        d->ring_head = (d->ring_head + 1) % RV_DCS_HISTORY_MAX;
    } else {
        slot = (d->ring_head + d->ring_len) % RV_DCS_HISTORY_MAX;
        d->ring_len++;
    }
    struct dcs_event *ev = &d->ring[slot];
    ev->type = type;
    ev->kv = *kv;
    ev->kv.mod_rev = rev;
    ev->kv.key = dup_s(kv->key);
    ev->kv.value = type == DCS_EVENT_PUT ? dup_n(kv->value, kv->value_len) : NULL;
    if (type == DCS_EVENT_DELETE)
        ev->kv.value_len = 0;
    if (ev->kv.key == NULL || (type == DCS_EVENT_PUT && ev->kv.value == NULL)) {
        /* drop everything up to this revision: watchers re-read */
        for (size_t i = 0; i < d->ring_len; i++)
            event_release(&d->ring[(d->ring_head + i) % RV_DCS_HISTORY_MAX]);
        d->ring_head = 0;
        d->ring_len = 0;
        d->compact_rev = rev;
    }
}

static void watcher_remove(struct dcs *d, size_t i, struct watcher *out)
{
    *out = d->watchers[i];
    d->watchers[i] = d->watchers[d->nwatchers - 1];
    d->nwatchers--;
}

/* Does revision rev hold an event under prefix? The newest events are at
 * the end of the ring, so walk back while they are of rev. */
static bool rev_touches(const struct dcs *d, uint64_t rev, const char *prefix)
{
    if (rev <= d->compact_rev)
        return true; /* cannot tell: let the watcher look */
    for (size_t i = d->ring_len; i > 0; i--) {
        const struct dcs_event *ev = &d->ring[(d->ring_head + i - 1) % RV_DCS_HISTORY_MAX];
        if (ev->kv.mod_rev < rev)
            break;
        if (ev->kv.mod_rev == rev && has_prefix(ev->kv.key, prefix))
            return true;
    }
    return false;
}

/* Fire watchers that a change at revision rev concerns. */
static void notify(struct dcs *d, uint64_t rev)
{
    size_t i = 0;
    while (i < d->nwatchers) {
        struct watcher *w = &d->watchers[i];
        if (w->after < rev && rev_touches(d, rev, w->prefix)) {
            struct watcher gone;
            watcher_remove(d, i, &gone);
            gone.fn(d, 0, gone.payload);
            free(gone.prefix);
            continue;
        }
        i++;
    }
}

/* --- changes --- */

/* Put without checks (the caller validated). */
static int apply_put(struct dcs *d, const char *key, const char *value, uint64_t session,
                     uint64_t rev)
{
    size_t idx;
    size_t vlen = strlen(value);
    struct dcs_kv *kv = key_find(d, key, &idx);
    char *v = dup_n(value, vlen);
    int rc = 0;
    if (v == NULL)
        return RV_ENOMEM;
    if (kv != NULL) {
        free((char *)kv->value);
        kv->value = v;
        kv->value_len = vlen;
        kv->mod_rev = rev;
        kv->version++;
        kv->session = session;
    } else {
        kv = calloc(1, sizeof(*kv));
        char *k = dup_s(key);
        if (kv == NULL || k == NULL) {
            free(kv);
            free(k);
            free(v);
            return RV_ENOMEM;
        }
        kv->key = k;
        kv->value = v;
        kv->value_len = vlen;
        kv->create_rev = rev;
        kv->mod_rev = rev;
        kv->version = 1;
        kv->session = session;
        rc = key_insert(d, idx, kv);
        if (rc < 0) {
            kv_free(kv);
            return rc;
        }
    }
    history_add(d, DCS_EVENT_PUT, kv, rev);
    return pend_key(d, kv, false);
}

static int apply_delete(struct dcs *d, size_t idx, uint64_t rev)
{
    struct dcs_kv *kv = d->keys[idx];
    history_add(d, DCS_EVENT_DELETE, kv, rev);
    int rc = pend_key(d, kv, true);
    key_remove(d, idx);
    return rc;
}

/* Delete every key of session id at a new revision; then drop the session. */
static int session_end(struct dcs *d, size_t sidx)
{
    uint64_t id = d->sessions[sidx].id;
    uint64_t rev = d->revision + 1;
    bool changed = false;
    int rc = 0;
    size_t i = 0;
    while (i < d->nkeys) {
        if (d->keys[i]->session == id) {
            int r = apply_delete(d, i, rev);
            if (r < 0 && rc == 0)
                rc = r;
            changed = true;
            continue;
        }
        i++;
    }
    int r = pend_session(d, &d->sessions[sidx], true);
    if (r < 0 && rc == 0)
        rc = r;
    free(d->sessions[sidx].owner);
    memmove(&d->sessions[sidx], &d->sessions[sidx + 1],
            (d->nsessions - sidx - 1) * sizeof(*d->sessions));
    d->nsessions--;
    d->seq++;
    if (changed) {
        d->revision = rev;
        notify(d, rev);
    }
    return rc;
}

/* --- public API --- */

uint64_t dcs_revision(const struct dcs *d)
{
    return d->revision;
}

int dcs_session_grant(uint64_t *out_id, struct dcs *d, int64_t ttl_ms, const char *owner,
                      struct rv_error *err)
{
    int rc;
    *out_id = 0;
    if (ttl_ms < RV_DCS_TTL_MIN_MS || ttl_ms > RV_DCS_TTL_MAX_MS)
        return rv_error_set(err, RV_EINVAL, false,
                            "session ttl %lld ms is out of range; use %d to %d ms",
                            (long long)ttl_ms, RV_DCS_TTL_MIN_MS, RV_DCS_TTL_MAX_MS);
    if (owner == NULL)
        owner = "";
    if (strlen(owner) > RV_DCS_OWNER_MAX)
        return rv_error_set(err, RV_EINVAL, false, "session owner is longer than %d bytes",
                            RV_DCS_OWNER_MAX);
    if (d->nsessions >= RV_DCS_SESSIONS_MAX)
        return rv_error_set(err, RV_ELIMIT, true, "dcs: %d sessions are live; no more allowed",
                            RV_DCS_SESSIONS_MAX);
    rc = pend_room(d, 1, err);
    if (rc < 0)
        return rc;
    rc = grow((void **)&d->sessions, &d->sessions_cap, d->nsessions + 1, sizeof(*d->sessions));
    if (rc < 0)
        return rv_error_set(err, rc, false, "dcs: out of memory");
    struct session s = {.id = d->next_session, .ttl_ms = ttl_ms};
    s.deadline = now_ms(d) + ttl_ms;
    s.owner = dup_s(owner);
    if (s.owner == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "dcs: out of memory");
    rc = pend_session(d, &s, false);
    if (rc < 0) {
        free(s.owner);
        return rv_error_set(err, rc, false, "dcs: out of memory");
    }
    d->sessions[d->nsessions++] = s;
    if (s.deadline < d->min_deadline)
        d->min_deadline = s.deadline;
    d->next_session++;
    d->seq++;
    *out_id = s.id;
    return 0;
}

int dcs_session_keepalive(struct dcs *d, uint64_t id, struct rv_error *err)
{
    struct session *s = session_find(d, id, NULL);
    if (s == NULL)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "session %llu does not exist or has expired; grant a new one",
                            (unsigned long long)id);
    s->deadline = now_ms(d) + s->ttl_ms;
    return 0;
}

int dcs_session_revoke(struct dcs *d, uint64_t id, struct rv_error *err)
{
    size_t idx;
    if (session_find(d, id, &idx) == NULL)
        return rv_error_set(err, RV_ENOTFOUND, false, "session %llu does not exist",
                            (unsigned long long)id);
    int rc = session_end(d, idx);
    if (rc < 0)
        return rv_error_set(err, rc, false, "dcs: out of memory while queueing a write");
    return 0;
}

int dcs_session_info(const char **out_owner, int64_t *out_ttl_ms, const struct dcs *d, uint64_t id)
{
    const struct session *s = session_find(d, id, NULL);
    if (s == NULL)
        return RV_ENOTFOUND;
    if (out_owner != NULL)
        *out_owner = s->owner;
    if (out_ttl_ms != NULL)
        *out_ttl_ms = s->ttl_ms;
    return 0;
}

const struct dcs_kv *dcs_get(const struct dcs *d, const char *key)
{
    return key_find(d, key, NULL);
}

int dcs_range(const struct dcs *d, const char *prefix, dcs_kv_fn fn, void *payload)
{
    size_t plen = strlen(prefix);
    for (size_t i = key_lower(d, prefix); i < d->nkeys; i++) {
        if (strncmp(d->keys[i]->key, prefix, plen) != 0)
            break;
        int r = fn(d->keys[i], payload);
        if (r != 0)
            return r;
    }
    return 0;
}

static int check_ops(const struct dcs *d, const struct dcs_op *ops, size_t n, bool chosen,
                     size_t *new_keys, struct rv_error *err)
{
    int rc;
    for (size_t i = 0; i < n; i++) {
        rc = dcs_key_check(ops[i].key, false, err);
        if (rc < 0)
            return rc;
        if (ops[i].type == DCS_OP_PUT) {
            if (ops[i].value == NULL)
                return rv_error_set(err, RV_EINVAL, false, "put of '%s' has no value", ops[i].key);
            size_t vlen = strlen(ops[i].value);
            if (vlen > RV_DCS_VALUE_MAX)
                return rv_error_set(err, RV_EINVAL, false,
                                    "value of '%s' is %zu bytes; at most %d allowed", ops[i].key,
                                    vlen, RV_DCS_VALUE_MAX);
        } else if (ops[i].type != DCS_OP_DELETE) {
            return rv_error_set(err, RV_EINVAL, false, "unknown operation on '%s'", ops[i].key);
        }
        if (!chosen)
            continue;
        if (ops[i].type == DCS_OP_PUT && ops[i].session != 0 &&
            session_find(d, ops[i].session, NULL) == NULL)
            return rv_error_set(err, RV_ENOTFOUND, false,
                                "session %llu does not exist or has expired; grant a new one",
                                (unsigned long long)ops[i].session);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ops[j].key, ops[i].key) == 0)
                return rv_error_set(err, RV_EINVAL, false,
                                    "key '%s' appears twice in one transaction", ops[i].key);
        if (ops[i].type == DCS_OP_PUT && key_find(d, ops[i].key, NULL) == NULL)
            (*new_keys)++;
    }
    return 0;
}

static bool cmp_holds(const struct dcs *d, const struct dcs_cmp *c)
{
    const struct dcs_kv *kv = key_find(d, c->key, NULL);
    switch (c->type) {
    case DCS_CMP_EXISTS:
        return kv != NULL;
    case DCS_CMP_NOT_EXISTS:
        return kv == NULL;
    case DCS_CMP_MOD_REV:
        return kv != NULL && kv->mod_rev == c->mod_rev;
    case DCS_CMP_VALUE:
        return kv != NULL && c->value != NULL && strlen(c->value) == kv->value_len &&
               memcmp(kv->value, c->value, kv->value_len) == 0;
    case DCS_CMP_SESSION:
        return kv != NULL && kv->session == c->session;
    }
    return false;
}

int dcs_txn(bool *out_succeeded, uint64_t *out_rev, struct dcs *d, const struct dcs_txn *txn,
            struct rv_error *err)
{
    int rc = 0;
    bool ok = true;
    size_t new_keys = 0;
    if (out_succeeded != NULL)
        *out_succeeded = false;
    if (out_rev != NULL)
        *out_rev = d->revision;
    if (txn->ncmp > RV_DCS_TXN_CMP_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "transaction has %zu comparisons; at most %d allowed", txn->ncmp,
                            RV_DCS_TXN_CMP_MAX);
    if (txn->nsuccess > RV_DCS_TXN_OPS_MAX || txn->nfailure > RV_DCS_TXN_OPS_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "transaction has more than %d operations in a branch",
                            RV_DCS_TXN_OPS_MAX);
    for (size_t i = 0; i < txn->ncmp; i++) {
        const struct dcs_cmp *c = &txn->cmp[i];
        rc = dcs_key_check(c->key, false, err);
        if (rc < 0)
            return rc;
        if (c->type == DCS_CMP_VALUE && c->value == NULL)
            return rv_error_set(err, RV_EINVAL, false, "value comparison on '%s' has no value",
                                c->key);
        if ((unsigned)c->type > (unsigned)DCS_CMP_SESSION)
            return rv_error_set(err, RV_EINVAL, false, "unknown comparison on '%s'", c->key);
        if (!cmp_holds(d, c))
            ok = false;
    }
    const struct dcs_op *ops = ok ? txn->success : txn->failure;
    size_t nops = ok ? txn->nsuccess : txn->nfailure;
    rc = check_ops(d, txn->success, txn->nsuccess, ok, &new_keys, err);
    if (rc < 0)
        return rc;
    rc = check_ops(d, txn->failure, txn->nfailure, !ok, &new_keys, err);
    if (rc < 0)
        return rc;
    if (d->nkeys + new_keys > RV_DCS_KEYS_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "dcs holds %zu keys; at most %d allowed",
                            d->nkeys, RV_DCS_KEYS_MAX);
    rc = pend_room(d, nops, err);
    if (rc < 0)
        return rc;

    uint64_t rev = d->revision + 1;
    bool changed = false;
    for (size_t i = 0; i < nops; i++) {
        int r = 0;
        if (ops[i].type == DCS_OP_PUT) {
            r = apply_put(d, ops[i].key, ops[i].value, ops[i].session, rev);
            changed = true;
        } else {
            size_t idx;
            if (key_find(d, ops[i].key, &idx) != NULL) {
                r = apply_delete(d, idx, rev);
                changed = true;
            }
        }
        if (r < 0 && rc == 0)
            rc = r;
    }
    if (changed) {
        d->revision = rev;
        d->seq++;
        notify(d, rev);
    }
    if (out_succeeded != NULL)
        *out_succeeded = ok;
    if (out_rev != NULL)
        *out_rev = d->revision;
    if (rc < 0)
        return rv_error_set(err, rc, false, "dcs: out of memory while applying a transaction");
    return 0;
}

int dcs_put(uint64_t *out_rev, struct dcs *d, const char *key, const char *value, uint64_t session,
            struct rv_error *err)
{
    struct dcs_op op = {.type = DCS_OP_PUT, .key = key, .value = value, .session = session};
    struct dcs_txn t = {.success = &op, .nsuccess = 1};
    return dcs_txn(NULL, out_rev, d, &t, err);
}

int dcs_delete(bool *out_deleted, uint64_t *out_rev, struct dcs *d, const char *key,
               struct rv_error *err)
{
    struct dcs_op op = {.type = DCS_OP_DELETE, .key = key};
    struct dcs_txn t = {.success = &op, .nsuccess = 1};
    uint64_t before = d->revision;
    int rc = dcs_txn(NULL, out_rev, d, &t, err);
    if (out_deleted != NULL)
        *out_deleted = rc == 0 && d->revision != before;
    return rc;
}

int dcs_changes(const struct dcs *d, const char *prefix, uint64_t after, dcs_event_fn fn,
                void *payload)
{
    int count = 0;
    if (after < d->compact_rev || after > d->revision)
        return RV_ESTALE;
    for (size_t i = 0; i < d->ring_len; i++) {
        const struct dcs_event *ev = &d->ring[(d->ring_head + i) % RV_DCS_HISTORY_MAX];
        if (ev->kv.mod_rev <= after || !has_prefix(ev->kv.key, prefix))
            continue;
        if (fn != NULL)
            fn(ev, payload);
        count++;
    }
    return count;
}

int dcs_watch_add(uint64_t *out_id, struct dcs *d, const char *prefix, uint64_t after,
                  int64_t deadline_ms, dcs_watch_fn fn, void *payload, struct rv_error *err)
{
    int rc;
    *out_id = 0;
    rc = dcs_key_check(prefix, true, err);
    if (rc < 0)
        return rc;
    if (d->nwatchers >= RV_DCS_WATCHERS_MAX)
        return rv_error_set(err, RV_ELIMIT, true, "dcs: %d watchers are waiting; retry later",
                            RV_DCS_WATCHERS_MAX);
    rc = grow((void **)&d->watchers, &d->watchers_cap, d->nwatchers + 1, sizeof(*d->watchers));
    if (rc < 0)
        return rv_error_set(err, rc, false, "dcs: out of memory");
    struct watcher w = {.id = ++d->next_watch,
                        .after = after,
                        .deadline = deadline_ms,
                        .fn = fn,
                        .payload = payload};
    w.prefix = dup_s(prefix);
    if (w.prefix == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "dcs: out of memory");
    d->watchers[d->nwatchers++] = w;
    *out_id = w.id;
    return 0;
}

void dcs_watch_cancel(struct dcs *d, uint64_t id)
{
    for (size_t i = 0; i < d->nwatchers; i++) {
        if (d->watchers[i].id == id) {
            struct watcher gone;
            watcher_remove(d, i, &gone);
            gone.fn(d, RV_ECANCELED, gone.payload);
            free(gone.prefix);
            return;
        }
    }
}

void dcs_tick(struct dcs *d, int64_t now)
{
    size_t i = 0;
    int64_t min = INT64_MAX;
    while (now >= d->min_deadline && i < d->nsessions) {
        if (d->sessions[i].deadline <= now) {
            uint64_t id = d->sessions[i].id;
            if (session_end(d, i) < 0)
                log_error("dcs",
                          "out of memory while queueing the expiry of session %llu "
                          "for disk; a restart may bring its keys back",
                          (unsigned long long)id);
            continue;
        }
        if (d->sessions[i].deadline < min)
            min = d->sessions[i].deadline;
        i++;
    }
    if (now >= d->min_deadline)
        d->min_deadline = min;
    i = 0;
    while (i < d->nwatchers) {
        if (d->watchers[i].deadline <= now) {
            struct watcher gone;
            watcher_remove(d, i, &gone);
            gone.fn(d, RV_ETIMEOUT, gone.payload);
            free(gone.prefix);
            continue;
        }
        i++;
    }
}

/* --- persistence --- */

uint64_t dcs_pending_seq(const struct dcs *d)
{
    return d->seq;
}

uint64_t dcs_durable_seq(const struct dcs *d)
{
    return persisting(d) ? d->durable_seq : d->seq;
}

int dcs_batch_take(struct dcs_batch **out, struct dcs *d)
{
    *out = NULL;
    if (!persisting(d) || d->batch_out || d->seq == d->durable_seq)
        return 0;
    struct dcs_batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return RV_ENOMEM;
    b->db = d->db;
    b->p = d->pend;
    b->n = d->npend;
    b->seq = d->seq;
    b->revision = d->revision;
    b->next_session = d->next_session;
    d->pend = NULL;
    d->npend = 0;
    d->pend_cap = 0;
    d->batch_out = true;
    *out = b;
    return 0;
}

static int batch_apply(struct db *db, const struct pend *p, struct rv_error *err)
{
    switch (p->kind) {
    case PEND_KEY_PUT:
        return db_run(db, err,
                      "INSERT INTO dcs_keys (key, value, create_rev, mod_rev, version, session)"
                      " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                      " value = excluded.value, create_rev = excluded.create_rev,"
                      " mod_rev = excluded.mod_rev, version = excluded.version,"
                      " session = excluded.session",
                      "ttllll", p->key, p->value, (int64_t)p->create_rev, (int64_t)p->mod_rev,
                      (int64_t)p->version, (int64_t)p->session);
    case PEND_KEY_DEL:
        return db_run(db, err, "DELETE FROM dcs_keys WHERE key = ?", "t", p->key);
    case PEND_SES_PUT:
        return db_run(db, err,
                      "INSERT OR REPLACE INTO dcs_sessions (id, ttl_ms, owner)"
                      " VALUES (?, ?, ?)",
                      "llt", (int64_t)p->session, p->ttl_ms, p->owner);
    case PEND_SES_DEL:
        return db_run(db, err, "DELETE FROM dcs_sessions WHERE id = ?", "l", (int64_t)p->session);
    }
    return rv_error_set(err, RV_EINTERNAL, false, "dcs: unknown queued change");
}

int dcs_batch_write(struct dcs_batch *b, struct rv_error *err)
{
    int rc = db_begin(b->db, err);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < b->n; i++) {
        rc = batch_apply(b->db, &b->p[i], err);
        if (rc < 0)
            goto out;
    }
    rc = db_run(b->db, err, "UPDATE dcs_meta SET revision = ?, next_session = ? WHERE id = 1", "ll",
                (int64_t)b->revision, (int64_t)b->next_session);
    if (rc < 0)
        goto out;
    rc = db_commit(b->db, err);
out:
    if (rc < 0)
        db_rollback(b->db);
    return rc;
}

void dcs_batch_done(struct dcs *d, struct dcs_batch *b, int rc)
{
    assert(d->batch_out);
    d->batch_out = false;
    if (rc == 0) {
        d->durable_seq = b->seq;
        for (size_t i = 0; i < b->n; i++)
            pend_release(&b->p[i]);
        free(b->p);
    } else {
        /* put the batch back in front of what queued meanwhile, to be
         * written again by the next batch */
        size_t total = b->n + d->npend;
        struct pend *p = malloc(total * sizeof(*p));
        if (p != NULL) {
            if (b->n > 0)
                memcpy(p, b->p, b->n * sizeof(*p));
            if (d->npend > 0)
                memcpy(p + b->n, d->pend, d->npend * sizeof(*p));
            free(d->pend);
            d->pend = p;
            d->npend = total;
            d->pend_cap = total;
        } else {
            log_error("dcs",
                      "out of memory: %zu changes that failed to be written are lost "
                      "until they change again",
                      b->n);
            for (size_t i = 0; i < b->n; i++)
                pend_release(&b->p[i]);
        }
        free(b->p);
    }
    free(b);
}

int dcs_flush(struct dcs *d, struct rv_error *err)
{
    struct dcs_batch *b;
    int rc = dcs_batch_take(&b, d);
    if (rc < 0)
        return rv_error_set(err, rc, false, "dcs: out of memory");
    if (b == NULL)
        return 0;
    rc = dcs_batch_write(b, err);
    dcs_batch_done(d, b, rc);
    return rc;
}

/* --- open, load, free --- */

static int load(struct dcs *d, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t rev = 0, next = 0;
    int rc = db_query_i64(&rev, d->db, err, "SELECT revision FROM dcs_meta WHERE id = 1", NULL);
    if (rc == 0)
        rc =
            db_query_i64(&next, d->db, err, "SELECT next_session FROM dcs_meta WHERE id = 1", NULL);
    if (rc < 0)
        goto out;
    d->revision = (uint64_t)rev;
    d->compact_rev = d->revision;
    d->next_session = next < 1 ? 1 : (uint64_t)next;
    int64_t now = now_ms(d);

    rc =
        db_prepare(&st, d->db, err, "SELECT id, ttl_ms, owner FROM dcs_sessions ORDER BY id", NULL);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, d->db, err)) == 1) {
        rc = grow((void **)&d->sessions, &d->sessions_cap, d->nsessions + 1, sizeof(*d->sessions));
        if (rc < 0)
            goto nomem;
        struct session *s = &d->sessions[d->nsessions];
        s->id = (uint64_t)sqlite3_column_int64(st, 0);
        s->ttl_ms = sqlite3_column_int64(st, 1);
        s->deadline = now + s->ttl_ms; /* grace: a full TTL to reconnect */
        if (s->deadline < d->min_deadline)
            d->min_deadline = s->deadline;
        rc = db_column_text(&s->owner, st, 2);
        if (rc < 0 || s->owner == NULL)
            goto nomem;
        d->nsessions++;
        if (s->id >= d->next_session)
            d->next_session = s->id + 1;
    }
    if (rc < 0)
        goto out;
    db_finalize(st);

    rc = db_prepare(&st, d->db, err,
                    "SELECT key, value, create_rev, mod_rev, version, session FROM dcs_keys"
                    " ORDER BY key",
                    NULL);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, d->db, err)) == 1) {
        uint64_t session = (uint64_t)sqlite3_column_int64(st, 5);
        if (session != 0 && session_find(d, session, NULL) == NULL)
            continue; /* its session ended before the key's deletion was written */
        rc = grow((void **)&d->keys, &d->keys_cap, d->nkeys + 1, sizeof(*d->keys));
        if (rc < 0)
            goto nomem;
        struct dcs_kv *kv = calloc(1, sizeof(*kv));
        if (kv == NULL)
            goto nomem;
        char *k = NULL, *v = NULL;
        if (db_column_text(&k, st, 0) < 0 || db_column_text(&v, st, 1) < 0 || k == NULL ||
            v == NULL) {
            free(k);
            free(v);
            free(kv);
            goto nomem;
        }
        kv->key = k;
        kv->value = v;
        kv->value_len = strlen(v);
        kv->create_rev = (uint64_t)sqlite3_column_int64(st, 2);
        kv->mod_rev = (uint64_t)sqlite3_column_int64(st, 3);
        kv->version = (uint64_t)sqlite3_column_int64(st, 4);
        kv->session = session;
        /* ORDER BY key uses SQLite's BINARY collation, the same as strcmp */
        d->keys[d->nkeys++] = kv;
    }
    goto out;
nomem:
    rc = rv_error_set(err, RV_ENOMEM, false, "dcs: out of memory while loading");
out:
    db_finalize(st);
    return rc < 0 ? rc : 0;
}

int dcs_open(struct dcs **out, const char *db_path, dcs_clock_fn clock, void *clock_payload,
             struct rv_error *err)
{
    int rc = 0;
    struct dcs *d = calloc(1, sizeof(*d));
    *out = NULL;
    if (d == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "dcs: out of memory");
    d->clock = clock;
    d->clock_payload = clock_payload;
    d->next_session = 1;
    d->min_deadline = INT64_MAX;
    if (db_path != NULL) {
        rc = db_open(&d->db, db_path, NULL, err);
        if (rc < 0)
            goto out;
        rc = db_migrate(d->db, dcs_migrations, sizeof(dcs_migrations) / sizeof(dcs_migrations[0]),
                        err);
        if (rc < 0)
            goto out;
        rc = load(d, err);
        if (rc < 0)
            goto out;
    }
    *out = d;
    d = NULL;
out:
    dcs_free(d);
    return rc;
}

void dcs_free(struct dcs *d)
{
    if (d == NULL)
        return;
    assert(!d->batch_out);
    while (d->nwatchers > 0) {
        struct watcher gone;
        watcher_remove(d, d->nwatchers - 1, &gone);
        gone.fn(d, RV_ECANCELED, gone.payload);
        free(gone.prefix);
    }
    free(d->watchers);
    for (size_t i = 0; i < d->nkeys; i++)
        kv_free(d->keys[i]);
    free(d->keys);
    for (size_t i = 0; i < d->nsessions; i++)
        free(d->sessions[i].owner);
    free(d->sessions);
    if (d->ring != NULL) {
        for (size_t i = 0; i < d->ring_len; i++)
            event_release(&d->ring[(d->ring_head + i) % RV_DCS_HISTORY_MAX]);
        free(d->ring);
    }
    for (size_t i = 0; i < d->npend; i++)
        pend_release(&d->pend[i]);
    free(d->pend);
    db_free(d->db);
    free(d);
}
