/* backupd.c - the backup scheduler (see backupd.h). */
#include "backupd.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backup_db.h"
#include "backup_mariadb.h"
#include "backup_pg.h"
#include "cron.h"
#include "crypto.h"
#include "dcs_client.h"
#include "log.h"
#include "restore.h"
#include "users.h"

#define COMP "backupd"

struct backupd {
    const struct agent_config *cfg;
    char exe[RV_PG_PATH_MAX + 1];
    int poll_ms;
    pthread_t thread;
    bool started;
    atomic_bool cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Thread-owned. */
    struct backup_ctx ctx;
    struct dcs_client http;
    bool have_token;
    char role_digest[CRYPTO_SHA256_HEX_SIZE]; /* config digest the role was ensured for */
    char wal_sent[64];                        /* last WAL segment reported */
};

/* --- the reconciler --- */

static void load_token(struct backupd *d)
{
    char ref[RV_PG_PATH_MAX + 32];
    char *tok = NULL;
    struct rv_error e = {0};
    if (d->have_token)
        return;
    snprintf(ref, sizeof(ref), "file:%s/agent-token", d->cfg->state_dir);
    if (agent_secret_resolve(&tok, ref, &e) == 0 && dcs_client_set_token(&d->http, tok, &e) == 0)
        d->have_token = true;
    if (tok != NULL) {
        crypto_wipe(tok, strlen(tok));
        free(tok);
    }
}

/* Fetch and store the configuration; the stored one stays on failure. */
static void poll_config(struct backupd *d)
{
    struct rv_error e = {0};
    json_t *cfg = NULL;
    bool changed = false;
    if (dcs_client_call(&cfg, &d->http, "GET", "/v1/agents/config", NULL, &e) != 0) {
        log_debug(COMP, "configuration not fetched (using the stored one): %s", e.msg);
        return;
    }
    if (!json_is_object(cfg)) {
        log_warn(COMP, "the configuration answer is not an object");
    } else if (backup_db_config_save(d->ctx.db, cfg, &changed, &e) != 0) {
        log_warn(COMP, "cannot store the configuration: %s", e.msg);
    } else if (changed) {
        log_info(COMP, "new backup configuration (digest %.12s)",
                 json_string_value(json_object_get(cfg, "digest")) != NULL
                     ? json_string_value(json_object_get(cfg, "digest"))
                     : "none");
        if (backup_ctx_reload(&d->ctx, &e) != 0)
            log_warn(COMP, "the new backup configuration is not usable: %s", e.msg);
    }
    json_decref(cfg);
}

/* Read the cluster's node keys and cache them with the time read. */
static void poll_view(struct backupd *d)
{
    char path[RV_DCS_KEY_MAX + 64];
    struct rv_error e = {0};
    json_t *ans = NULL, *view = NULL;
    snprintf(path, sizeof(path), "/v1/dcs/kv?prefix=/clusters/%s/%s/nodes/", d->cfg->namespace_,
             d->cfg->cluster);
    if (dcs_client_call(&ans, &d->http, "GET", path, NULL, &e) != 0) {
        log_debug(COMP, "node view not fetched (using the cached one): %s", e.msg);
        return;
    }
    json_t *nodes = json_array();
    json_t *kvs = json_object_get(ans, "kvs");
    size_t i;
    json_t *kv;
    json_array_foreach(kvs, i, kv)
    {
        json_t *v = json_object_get(kv, "value");
        if (json_is_object(v))
            json_array_append(nodes, v);
    }
    view = json_pack("{s:I,s:o}", "at_ms", (json_int_t)backup_now_ms(), "nodes", nodes);
    char *text = view != NULL ? json_dumps(view, JSON_COMPACT) : NULL;
    if (text != NULL && backup_db_state_set(d->ctx.db, "view", text, &e) != 0)
        log_warn(COMP, "cannot cache the node view: %s", e.msg);
    free(text);
    json_decref(view);
    json_decref(ans);
}

/* The backup ids of a batch of records, as a JSON array. */
static json_t *batch_ids(const json_t *recs)
{
    json_t *ids = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        json_t *id = json_object_get(r, "backup_id");
        if (ids != NULL && json_is_string(id) && json_array_append(ids, id) != 0) {
            json_decref(ids);
            return NULL;
        }
    }
    return ids;
}

/* Fewer log lines until the body fits what the reconciler accepts (lines
 * are at most RV_ERROR_MSG_MAX bytes, so this is rare). */
static void body_fit(json_t *body, json_t *logs, json_t *log_ids)
{
    for (;;) {
        char *text = json_dumps(body, JSON_COMPACT);
        size_t len = text != NULL ? strlen(text) : 0;
        free(text);
        size_t n = json_array_size(logs);
        if (len <= RV_BACKUPS_POST_BODY_MAX || n == 0)
            return;
        for (size_t keep = n / 2; json_array_size(logs) > keep;) {
            json_array_remove(logs, json_array_size(logs) - 1);
            json_array_remove(log_ids, json_array_size(log_ids) - 1);
        }
    }
}

/* Mark what a 200 acknowledged: each record unless it changed meanwhile,
 * and the log lines sent. */
static void mark_synced(struct backupd *d, json_t *recs, json_t *log_ids)
{
    struct rv_error e = {0};
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        char *text = json_dumps(r, JSON_COMPACT);
        const char *id = json_string_value(json_object_get(r, "backup_id"));
        if (text != NULL && id != NULL && backup_db_record_synced(d->ctx.db, id, text, &e) != 0)
            log_warn(COMP, "cannot mark record %s synced: %s", id, e.msg);
        free(text);
    }
    if (json_array_size(log_ids) > 0 && backup_db_logs_synced(d->ctx.db, log_ids, &e) != 0)
        log_warn(COMP, "cannot mark %zu log line(s) synced: %s", json_array_size(log_ids), e.msg);
}

/* Send unsynced records, their log lines (and later lines of records the
 * reconciler has) and the WAL position; mark them synced after a 200. */
static void sync_records(struct backupd *d)
{
    struct rv_error e = {0};
    json_t *recs = NULL, *body = NULL, *wal = NULL, *ids = NULL, *logs = NULL, *log_ids = NULL;
    char *seg = NULL, *at = NULL;
    if (backup_db_records(&recs, d->ctx.db, true, RV_BACKUP_SYNC_BATCH, &e) != 0) {
        log_warn(COMP, "cannot read records: %s", e.msg);
        goto out;
    }
    ids = batch_ids(recs);
    if (ids == NULL || backup_db_logs_unsynced(&logs, &log_ids, d->ctx.db, ids,
                                               RV_BACKUP_SYNC_LOG_LINES, &e) != 0) {
        log_warn(COMP, "cannot read log lines (records go without them): %s",
                 ids == NULL ? "out of memory" : e.msg);
        logs = json_array();
        log_ids = json_array();
        if (logs == NULL || log_ids == NULL)
            goto out;
    }
    if (backup_db_state_get(&seg, d->ctx.db, "wal_last_segment", &e) == 0 &&
        backup_db_state_get(&at, d->ctx.db, "wal_last_archived_at", &e) == 0)
        wal = json_pack("{s:s,s:s}", "last_segment", seg, "last_archived_at", at);
    if (json_array_size(recs) == 0 && json_array_size(logs) == 0 &&
        (seg == NULL || strcmp(seg, d->wal_sent) == 0))
        goto out;
    body = json_pack("{s:O,s:o}", "records", recs, "wal", wal != NULL ? wal : json_null());
    wal = NULL; /* body holds it (json_pack steals it even on failure) */
    if (body == NULL)
        goto out;
    /* "logs" only when there are some: a reconciler without log support
     * still takes the records. */
    if (json_array_size(logs) > 0 && json_object_set(body, "logs", logs) != 0)
        goto out;
    body_fit(body, logs, log_ids);
    if (dcs_client_call(NULL, &d->http, "POST", "/v1/agents/backups", body, &e) != 0) {
        /* Unreachable is the normal case of a reconciler that is down; a
         * refusal is not, and says why. */
        if (e.retryable || e.code == RV_EUNAVAIL || e.code == RV_ETIMEOUT)
            log_debug(COMP, "records not sent (retrying next poll): %s", e.msg);
        else
            log_warn(COMP, "records not accepted (retrying next poll): %s", e.msg);
        goto out;
    }
    mark_synced(d, recs, log_ids);
    if (seg != NULL)
        snprintf(d->wal_sent, sizeof(d->wal_sent), "%s", seg);
    if (json_array_size(recs) > 0)
        log_info(COMP, "%zu backup record(s) sent to the reconciler", json_array_size(recs));
    if (json_array_size(logs) > 0)
        log_debug(COMP, "%zu backup log line(s) sent to the reconciler", json_array_size(logs));
out:
    free(seg);
    free(at);
    json_decref(wal);
    json_decref(recs);
    json_decref(ids);
    json_decref(logs);
    json_decref(log_ids);
    json_decref(body);
}

/* --- which node backs up --- */

static bool runner_is_me(struct backupd *d, bool primary)
{
    struct rv_error e = {0};
    char *text = NULL;
    json_t *view = NULL;
    bool prefer = json_is_true(json_object_get(d->ctx.backup, "prefer_replica"));
    const char *best = NULL;
    int64_t best_lag = INT64_MAX;
    bool me = primary;
    if (!prefer || backup_db_state_get(&text, d->ctx.db, "view", &e) != 0)
        goto out;
    view = json_loads(text, 0, NULL);
    int64_t at = json_integer_value(json_object_get(view, "at_ms"));
    if (backup_now_ms() - at > RV_BACKUP_VIEW_MAX_AGE_MS)
        goto out; /* too old to trust: the primary backs up */
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(view, "nodes"), i, n)
    {
        const char *name = json_string_value(json_object_get(n, "node"));
        const char *role = json_string_value(json_object_get(n, "role"));
        int64_t lag = json_integer_value(json_object_get(n, "lag_bytes"));
        if (name == NULL || role == NULL || strcmp(role, "replica") != 0 ||
            !json_is_true(json_object_get(n, "healthy")))
            continue;
        if (best == NULL || lag < best_lag || (lag == best_lag && strcmp(name, best) < 0)) {
            best = name;
            best_lag = lag;
        }
    }
    if (best != NULL)
        me = strcmp(best, d->cfg->node) == 0;
out:
    json_decref(view);
    free(text);
    return me;
}

/* --- jobs --- */

/* Whether job is due now; a job seen for the first time is scheduled. */
static bool due(struct backupd *d, const char *job, const char *expr, int64_t now)
{
    struct rv_error e = {0};
    struct cron c;
    int64_t next = 0;
    if (expr == NULL)
        return false;
    if (cron_parse(&c, expr, &e) != 0) {
        log_warn(COMP, "job '%s': %s", job, e.msg);
        return false;
    }
    int rc = backup_db_next_get(&next, d->ctx.db, job, expr, &e);
    if (rc == RV_ENOTFOUND) {
        if (cron_next(&next, &c, now) == 0)
            backup_db_next_set(d->ctx.db, job, expr, next, &e);
        return false;
    }
    return rc == 0 && next <= now;
}

static void advance(struct backupd *d, const char *job, const char *expr, int64_t now)
{
    struct rv_error e = {0};
    struct cron c;
    int64_t next = 0;
    if (cron_parse(&c, expr, &e) == 0 && cron_next(&next, &c, now) == 0)
        backup_db_next_set(d->ctx.db, job, expr, next, &e);
}

/* The engine's backup login: PostgreSQL's role (and pg_hba.conf lines) or
 * MariaDB's backup user (agent/backup_mariadb.c). */
static int backup_login_ensure(struct backupd *d, bool primary, struct rv_error *e)
{
    return backup_is_mariadb(&d->ctx) ? backup_mdb_user_ensure(&d->ctx, primary, e)
                                      : backup_role_ensure(&d->ctx, primary, e);
}

/* The role and pg_hba.conf lines are checked right before each backup: a
 * restore or a re-clone of this node rewrites pg_hba.conf. incremental:
 * MariaDB only (a full backup when there is no chain to build on). */
static void run_backup(struct backupd *d, bool primary, const char *schedule, bool incremental)
{
    struct rv_error e = {0};
    size_t deleted = 0;
    bool mdb = backup_is_mariadb(&d->ctx);
    if (backup_login_ensure(d, primary, &e) != 0)
        log_warn(COMP, "backup role: %s", e.msg);
    if ((incremental && mdb ? backup_mdb_incremental(NULL, &d->ctx, schedule, &e)
                            : backup_full(NULL, &d->ctx, schedule, &e)) != 0)
        return; /* logged and recorded */
    if ((mdb ? backup_mdb_retention : backup_retention)(&d->ctx, backup_now_ms(), &deleted, &e) !=
        0)
        log_warn(COMP, "retention: %s", e.msg);
    /* Local history: records past retention (plus a day) once the
     * reconciler has them. */
    int64_t days = json_integer_value(json_object_get(d->ctx.backup, "retention_days"));
    char before[32];
    if (days > 0) {
        backup_time_format(before, backup_now_ms() - (days + 1) * 86400 * 1000);
        if (backup_db_prune(d->ctx.db, before, NULL, &e) != 0)
            log_warn(COMP, "cannot prune old records: %s", e.msg);
    }
}

static void run_full(struct backupd *d, bool primary, const char *schedule)
{
    run_backup(d, primary, schedule, false);
}

/* The newest succeeded full backup of this cluster in backup.db. */
static json_t *newest_full(struct backupd *d)
{
    struct rv_error e = {0};
    json_t *recs = NULL, *best = NULL;
    size_t i;
    json_t *r;
    if (backup_db_records(&recs, d->ctx.db, false, 0, &e) != 0)
        return NULL;
    json_array_foreach(recs, i, r)
    {
        const char *st = json_string_value(json_object_get(r, "status"));
        const char *ty = json_string_value(json_object_get(r, "type"));
        if (st != NULL && ty != NULL && strcmp(st, "succeeded") == 0 && strcmp(ty, "full") == 0)
            best = r;
    }
    json_incref(best);
    json_decref(recs);
    return best;
}

static void engine_config(const struct agent_config *cfg, struct pg_engine_config *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->bin_dir = cfg->pg.bin_dir;
    pc->data_dir = cfg->pg.data_dir;
    pc->socket_dir = cfg->pg.socket_dir;
    pc->log_file = cfg->pg.log_file;
    pc->listen_address = cfg->pg.listen_address;
    pc->port = cfg->pg.port;
    pc->superuser = cfg->pg.superuser;
    pc->replication_user = cfg->pg.replication_user;
    pc->replication_password = cfg->pg.replication_password;
    pc->application_name = cfg->node;
    pc->allowed_cidr = cfg->pg.allowed_cidr;
    pc->os_user = geteuid() == 0 ? cfg->pg.os_user : NULL;
    pc->no_sync = cfg->pg.no_sync;
}

/* Checksum, then a test restore into a scratch instance; the outcome goes
 * into the record's "verify". */
static void run_test_restore(struct backupd *d)
{
    struct rv_error e = {0};
    json_t *rec = newest_full(d);
    char at[32], cmd[2 * RV_PG_PATH_MAX + 64];
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    const char *sum = json_string_value(json_object_get(rec, "checksum"));
    json_t *verify = NULL;
    if (rec == NULL || id == NULL) {
        log_info(COMP, "test restore: no succeeded full backup yet");
        goto out;
    }
    backup_time_format(at, backup_now_ms());
    if (backup_verify_checksum(&d->ctx, id, sum, &e) != 0) {
        verify = json_pack("{s:s,s:s,s:s,s:s}", "at", at, "kind", "checksum", "status", "failed",
                           "error", e.msg);
    } else {
        struct pg_engine_config pc;
        struct restore_test_result res;
        struct restore_opts o = {
            .store = d->ctx.store, .key = d->ctx.has_key ? d->ctx.key : NULL, .backup_id = id};
        engine_config(d->cfg, &pc);
        memset(&res, 0, sizeof(res));
        if (d->cfg->config_path == NULL ||
            restore_command_build(cmd, sizeof(cmd), d->exe, d->cfg->config_path, &e) != 0 ||
            (o.restore_command = cmd, restore_test(&pc, d->ctx.dir, &o, &res, &e)) != 0) {
            verify = json_pack("{s:s,s:s,s:s,s:s}", "at", at, "kind", "checksum", "status", "ok",
                               "error", e.msg[0] ? e.msg : "test restore could not run");
        } else {
            verify = json_pack("{s:s,s:s,s:s,s:s?}", "at", at, "kind", "restore", "status",
                               res.ok ? "ok" : "failed", "error", res.ok ? NULL : res.error);
        }
    }
    if (verify == NULL)
        goto out;
    log_info(COMP, "test restore of %s: %s %s", id,
             json_string_value(json_object_get(verify, "kind")),
             json_string_value(json_object_get(verify, "status")));
    backup_db_log(d->ctx.db, id, "info", "verify: %s %s",
                  json_string_value(json_object_get(verify, "kind")),
                  json_string_value(json_object_get(verify, "status")));
    json_object_set(rec, "verify", verify);
    if (backup_db_record_put(d->ctx.db, rec, &e) != 0)
        log_warn(COMP, "cannot record the test restore: %s", e.msg);
out:
    json_decref(verify);
    json_decref(rec);
}

static void run_requests(struct backupd *d, bool me, bool primary)
{
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(d->ctx.config, "requests"), i, q)
    {
        struct rv_error e = {0};
        const char *id = json_string_value(json_object_get(q, "id"));
        char sched[RV_BACKUP_REQUEST_ID_MAX + 16];
        bool seen = true;
        if (id == NULL || strlen(id) > RV_BACKUP_REQUEST_ID_MAX || atomic_load(&d->cancel))
            continue;
        snprintf(sched, sizeof(sched), "request:%s", id);
        if (backup_db_schedule_seen(&seen, d->ctx.db, sched, &e) != 0 || seen || !me)
            continue;
        log_info(COMP, "running requested backup '%s'", id);
        run_full(d, primary, sched);
    }
}

static void run_jobs(struct backupd *d)
{
    struct rv_error e = {0};
    bool in_recovery = true;
    int64_t now = backup_now_ms() / 1000;
    if (d->ctx.backup == NULL || d->ctx.store == NULL)
        return;
    bool mdb = backup_is_mariadb(&d->ctx);
    if ((mdb ? backup_mdb_read_only(&in_recovery, &d->ctx, &e)
             : backup_pg_in_recovery(&in_recovery, &d->ctx, &e)) != 0) {
        log_debug(COMP, "the local server is not answering: no backups from this node now");
        return;
    }
    const char *digest = json_string_value(json_object_get(d->ctx.config, "digest"));
    if (digest == NULL)
        digest = "";
    if (strcmp(d->role_digest, digest) != 0 || d->role_digest[0] == '\0') {
        if (backup_login_ensure(d, !in_recovery, &e) != 0)
            log_warn(COMP, "backup role: %s", e.msg);
        else
            snprintf(d->role_digest, sizeof(d->role_digest), "%s", digest[0] ? digest : "-");
    }
    bool me = runner_is_me(d, !in_recovery);
    const char *full = json_string_value(json_object_get(d->ctx.backup, "full_cron"));
    const char *test = json_string_value(json_object_get(d->ctx.backup, "test_restore_cron"));
    const char *incr = json_string_value(json_object_get(d->ctx.backup, "incremental_cron"));
    run_requests(d, me, !in_recovery);
    if (due(d, "incremental", incr, now)) {
        advance(d, "incremental", incr, now);
        if (me && mdb)
            run_backup(d, !in_recovery, "scheduled", true);
        else if (me)
            log_warn(COMP, "incremental backups are not available with PostgreSQL 15's "
                           "pg_basebackup: the WAL archive covers the time between full "
                           "backups");
    }
    if (due(d, "full", full, now)) {
        advance(d, "full", full, now);
        if (me)
            run_full(d, !in_recovery, "scheduled");
    }
    if (!atomic_load(&d->cancel) && due(d, "test-restore", test, now)) {
        advance(d, "test-restore", test, now);
        if (me && mdb)
            log_info(COMP, "test restores of MariaDB backups are not available yet: the "
                           "checksum of each backup is checked at restore");
        else if (me)
            run_test_restore(d);
    }
}

/* --- the thread --- */

int backupd_sweep_interrupted(struct backup_ctx *c, struct rv_error *err)
{
    json_t *recs = NULL;
    int lock = -1;
    size_t i;
    json_t *r;
    int rc = backup_lock(&lock, c, err);
    if (rc == RV_EBUSY)
        return 0;
    if (rc != 0)
        return rc;
    rc = backup_db_records(&recs, c->db, false, 0, err);
    json_array_foreach(recs, i, r)
    {
        const char *st = json_string_value(json_object_get(r, "status"));
        if (rc != 0 || st == NULL || strcmp(st, "running") != 0)
            continue;
        char at[32];
        backup_time_format(at, backup_now_ms());
        json_object_set_new(r, "status", json_string("failed"));
        json_object_set_new(
            r, "error", json_string("interrupted: the process taking it stopped or was killed"));
        json_object_set_new(r, "ended_at", json_string(at));
        rc = backup_db_record_put(c->db, r, err);
        log_warn(COMP, "backup %s was interrupted: marked failed",
                 json_string_value(json_object_get(r, "backup_id")));
    }
    json_decref(recs);
    close(lock);
    return rc;
}

static void wait_poll(struct backupd *d)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += d->poll_ms / 1000;
    ts.tv_nsec += (long)(d->poll_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->mu);
    while (!atomic_load(&d->cancel))
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&d->mu);
}

static void *thread_main(void *arg)
{
    struct backupd *d = arg;
    struct rv_error e = {0};
    if (backupd_sweep_interrupted(&d->ctx, &e) != 0)
        log_warn(COMP, "cannot check for interrupted backups: %s", e.msg);
    while (!atomic_load(&d->cancel)) {
        load_token(d);
        if (d->have_token) {
            poll_config(d);
            poll_view(d);
            users_sync(d->cfg, d->ctx.db, d->ctx.config, &d->http); /* users.h */
        }
        if (!atomic_load(&d->cancel))
            run_jobs(d);
        if (d->have_token && !atomic_load(&d->cancel))
            sync_records(d);
        wait_poll(d);
    }
    return NULL;
}

int backupd_start(struct backupd **out, const struct backupd_opts *o, struct rv_error *err)
{
    struct backupd *d = calloc(1, sizeof(*d));
    int rc;
    *out = NULL;
    if (d == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    d->cfg = o->cfg;
    snprintf(d->exe, sizeof(d->exe), "%s", o->exe != NULL ? o->exe : "");
    d->poll_ms = o->poll_ms > 0 ? o->poll_ms : RV_BACKUP_POLL_MS;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    rc = dcs_client_init(&d->http, o->cfg->reconciler_url, RV_AGENT_HTTP_TIMEOUT_MS, err);
    if (rc == 0)
        rc = backup_ctx_open(&d->ctx, o->cfg, true, err);
    if (rc != 0 && d->ctx.db == NULL)
        goto out;
    if (rc != 0) /* the next configuration may fix it */
        log_warn(COMP, "the stored backup configuration is not usable: %s", err->msg);
    d->ctx.cancel = &d->cancel;
    rc = pthread_create(&d->thread, NULL, thread_main, d);
    if (rc != 0) {
        rc = rv_error_set(err, RV_EINTERNAL, false, "cannot start the backup thread: %s",
                          strerror(rc));
        goto out;
    }
    d->started = true;
    *out = d;
    d = NULL;
out:
    if (d != NULL) {
        backup_ctx_release(&d->ctx);
        dcs_client_release(&d->http);
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        free(d);
    }
    return rc;
}

void backupd_stop(struct backupd *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    atomic_store(&d->cancel, true);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->started)
        pthread_join(d->thread, NULL);
    backup_ctx_release(&d->ctx);
    dcs_client_release(&d->http);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}
