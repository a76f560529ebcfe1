/* ops.c - day-2 operations on a running node (see ops.h, docs/day2.md). */
#include "ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "child.h"
#include "log.h"

#define COMP "ops"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void lsn_text(char *out, size_t cap, uint64_t lsn)
{
    snprintf(out, cap, "%" PRIX64 "/%" PRIX64, lsn >> 32, lsn & 0xffffffffu);
}

static int key_of(char *out, const struct ops_env *env, const char *rest, const char *node,
                  struct rv_error *err)
{
    int n = snprintf(out, RV_DCS_KEY_MAX + 1, "%sops/%s%s", env->prefix, rest, node ? node : "");
    if (n < 0 || n > RV_DCS_KEY_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "ops key for '%s' is too long", rest);
    return 0;
}

/* The value of ops/<rest><node> among the listed kvs, or NULL. */
static json_t *listed(json_t *kvs, const struct ops_env *env, const char *rest, const char *node)
{
    char key[RV_DCS_KEY_MAX + 1];
    struct rv_error e = {0};
    size_t i;
    json_t *kv;
    if (key_of(key, env, rest, node, &e) != 0)
        return NULL;
    json_array_foreach(kvs, i, kv)
    {
        const char *k = json_string_value(json_object_get(kv, "key"));
        if (k != NULL && strcmp(k, key) == 0)
            return json_object_get(kv, "value");
    }
    return NULL;
}

static const char *str_of(json_t *o, const char *field)
{
    const char *s = json_string_value(json_object_get(o, field));
    return s != NULL ? s : "";
}

static bool is_mdb(const struct ops_env *env)
{
    return env->eng != NULL && env->eng->type == ENGINE_MARIADB;
}

/* Set parameters on this node's server, whichever the engine. */
static int engine_params(const struct ops_env *env, const struct pg_param *list, size_t n,
                         bool *restart, struct rv_error *err)
{
    if (!is_mdb(env))
        return pg_engine_apply_parameters(env->engine, list, n, restart, err);
    struct mdb_param m[RV_OPS_PARAMS_MAX];
    for (size_t i = 0; i < n && i < RV_OPS_PARAMS_MAX; i++)
        m[i] = (struct mdb_param){list[i].name, list[i].value};
    return mdb_engine_apply_parameters(env->eng->mdb, m, n, restart, err);
}

/* Whether the server runs, and the parameters waiting for a restart. */
static int engine_pending(const struct ops_env *env, bool *running, char *pending, size_t cap,
                          struct rv_error *err)
{
    int rc;
    if (is_mdb(env)) {
        struct mdb_status ms;
        rc = mdb_engine_status(env->eng->mdb, NULL, &ms, err);
        *running = rc == 0 && ms.running && ms.accepting;
        snprintf(pending, cap, "%s", rc == 0 ? ms.pending_restart : "");
        return rc;
    }
    struct pg_status ps;
    rc = pg_engine_status(env->engine, 0, &ps, err);
    *running = rc == 0 && ps.running;
    snprintf(pending, cap, "%s", rc == 0 ? ps.pending_restart : "");
    return rc;
}

static int engine_stop(const struct ops_env *env, struct rv_error *err)
{
    return is_mdb(env) ? mdb_engine_stop(env->eng->mdb, MDB_STOP_FAST, err)
                       : pg_engine_stop(env->engine, PG_STOP_FAST, err);
}

static int engine_start(const struct ops_env *env, struct rv_error *err)
{
    return is_mdb(env) ? mdb_engine_start(env->eng->mdb, err) : pg_engine_start(env->engine, err);
}

/* Reports are attached to the session (they go with the agent); results
 * are not: a restarted agent must still see that a request was done. */
static int put_ops(const struct ops_env *env, const char *rest, const char *node, json_t *v,
                   struct rv_error *err)
{
    bool attach = strcmp(rest, "applied/") == 0;
    char key[RV_DCS_KEY_MAX + 1];
    if (v == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = key_of(key, env, rest, node, err);
    if (rc == 0)
        rc = dcs_client_put(NULL, env->dcs, key, v, attach ? env->session : 0, err);
    json_decref(v);
    return rc;
}

/* --- parameters --- */

/* The parameters the node was created with, as the spec gave them: the
 * configuration's, less the archiving settings the backup module adds
 * (agent/backup_cmd.c), which are reeve's, not the spec's. */
static json_t *config_params(const struct ops_env *env)
{
    static const char *const own[] = {"archive_mode", "archive_command", "archive_timeout", NULL};
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < env->cfg->pg.n_params; i++) {
        bool skip = false;
        for (size_t k = 0; own[k] != NULL && !skip; k++)
            skip = strcmp(env->cfg->pg.params[i].name, own[k]) == 0;
        if (!skip)
            json_object_set_new(o, env->cfg->pg.params[i].name,
                                json_string(env->cfg->pg.params[i].value));
    }
    return o;
}

/* Apply want ({"digest","parameters"}) when it is new. */
static int params_apply(const struct ops_env *env, json_t *want, struct rv_error *err)
{
    struct ops_state *st = env->st;
    const char *digest = str_of(want, "digest");
    json_t *params = json_object_get(want, "parameters");
    struct pg_param list[RV_OPS_PARAMS_MAX];
    size_t n = 0;
    const char *name;
    json_t *v;
    if (digest[0] == '\0' || strcmp(digest, st->params_digest) == 0 || !json_is_object(params))
        return 0;
    json_object_foreach(params, name, v)
    {
        if (n == RV_OPS_PARAMS_MAX || !json_is_string(v))
            break;
        list[n++] = (struct pg_param){name, json_string_value(v)};
    }
    bool restart = false;
    struct rv_error e = {0};
    int rc = n == 0 ? 0
             : n == json_object_size(params)
                 ? engine_params(env, list, n, &restart, &e)
                 : rv_error_set(&e, RV_ELIMIT, false,
                                "more than %d parameters, or a value that is not a string",
                                RV_OPS_PARAMS_MAX);
    if (rc != 0 && e.retryable)
        return rv_error_set(err, rc, true, "cannot apply parameters: %s", e.msg);
    snprintf(st->params_digest, sizeof(st->params_digest), "%s", digest);
    st->params_failed = rc != 0;
    snprintf(st->last_error, sizeof(st->last_error), "%s", rc != 0 ? e.msg : "");
    st->published = false;
    if (rc != 0)
        log_error(COMP, "parameters %.12s refused: %s", digest, e.msg);
    else
        log_info(COMP, "parameters %.12s applied (%zu)%s", digest, n,
                 restart ? "; some wait for a restart" : " by reload");
    return 0;
}

/* ops/applied/<node>: what this node runs, when it changed. */
static int params_publish(const struct ops_env *env, json_t *want, const char *pending,
                          struct rv_error *err)
{
    struct ops_state *st = env->st;
    bool applied = st->params_digest[0] != '\0' && !st->params_failed && want != NULL &&
                   strcmp(str_of(want, "digest"), st->params_digest) == 0;
    if (st->published && st->published_session == env->session &&
        strcmp(st->published_pending, pending) == 0)
        return 0;
    json_t *params =
        applied ? json_deep_copy(json_object_get(want, "parameters")) : config_params(env);
    json_t *v = json_pack("{s:s, s:s, s:o, s:s, s:s}", "node", env->cfg->node, "digest",
                          st->params_digest, "parameters", params ? params : json_object(),
                          "pending_restart", pending, "error", st->last_error);
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    log_info(COMP, "reporting what runs: %s", text ? text : "?");
    free(text);
    int rc = put_ops(env, "applied/", env->cfg->node, v, err);
    if (rc == 0) {
        st->published = true;
        st->published_session = env->session;
        snprintf(st->published_pending, sizeof(st->published_pending), "%s", pending);
    }
    return rc;
}

/* --- restart --- */

static int restart_node(const struct ops_env *env, json_t *req, bool primary, struct rv_error *err)
{
    const char *id = str_of(req, "id");
    int64_t started = wall_ms();
    struct rv_error e = {0};
    log_info(COMP, "restart %.12s of '%s' (%s): stopping the server", id, env->cfg->node,
             primary ? "primary" : "replica");
    int rc = 0;
    json_t *params = json_object_get(req, "parameters");
    if (json_is_object(params) && json_object_size(params) <= RV_OPS_PARAMS_MAX) {
        /* set with the restart (a resize: shared_buffers) */
        struct pg_param list[RV_OPS_PARAMS_MAX];
        size_t n = 0;
        const char *name;
        json_t *v;
        bool restart = false;
        json_object_foreach(params, name, v) if (json_is_string(v)) list[n++] =
            (struct pg_param){name, json_string_value(v)};
        rc = engine_params(env, list, n, &restart, &e);
    }
    if (rc == 0)
        rc = engine_stop(env, &e);
    if (rc == 0)
        rc = engine_start(env, &e);
    int64_t finished = wall_ms();
    if (rc != 0)
        log_error(COMP, "restart %.12s of '%s' failed: %s", id, env->cfg->node, e.msg);
    else
        log_info(COMP, "restart %.12s of '%s' done in %" PRId64 " ms", id, env->cfg->node,
                 finished - started);
    json_t *v = json_pack("{s:s, s:s, s:b, s:s, s:I, s:I}", "id", id, "op", "restart", "ok",
                          rc == 0, "error", rc == 0 ? "" : e.msg, "started_ms", (json_int_t)started,
                          "finished_ms", (json_int_t)finished);
    return put_ops(env, "result/", env->cfg->node, v, err);
}

/* --- switchover: the old primary --- */

static json_t *leader_json(const char *node, const char *address, json_int_t port,
                           uint32_t timeline, bool ready)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:b}", "node", node, "address", address, "port", port,
                     "timeline", (json_int_t)timeline, "ready", ready);
}

/* Put the leader key iff cmp holds ({"key",...}); *ok says whether it did. */
static int leader_txn(bool *ok, const struct ops_env *env, json_t *cmp, json_t *value,
                      struct rv_error *err)
{
    json_t *txn = NULL;
    if (cmp != NULL && value != NULL)
        txn = json_pack("{s:[o], s:[{s:{s:s, s:O, s:I}}]}", "compare", cmp, "success", "put", "key",
                        env->leader_key, "value", value, "session", (json_int_t)env->session);
    else
        json_decref(cmp);
    json_decref(value);
    if (txn == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = dcs_client_txn(ok, NULL, env->dcs, txn, err);
    json_decref(txn);
    return rc;
}

static int sw_result(const struct ops_env *env, const char *id, bool ok, const char *error,
                     const char *stop_lsn, int64_t stopped, int64_t promoted, struct rv_error *err)
{
    json_t *v = json_pack("{s:s, s:b, s:s, s:s, s:s, s:I, s:I}", "id", id, "ok", ok, "error", error,
                          "by", env->cfg->node, "stop_lsn", stop_lsn, "stopped_ms",
                          (json_int_t)stopped, "promoted_ms", (json_int_t)promoted);
    return put_ops(env, "switchover-result", NULL, v, err);
}

/* MariaDB: whether to replicates from this primary (SHOW SLAVE HOSTS; the
 * runner checked its lag before it asked for the switchover). */
static bool target_ready_mdb(const struct ops_env *env, const char *to, char *why, size_t cap)
{
    struct mdb_replica rs[RV_PG_SYNC_MEMBERS_MAX];
    size_t n = 0;
    struct rv_error e = {0};
    if (mdb_engine_replicas(env->eng->mdb, rs, RV_PG_SYNC_MEMBERS_MAX, &n, &e) != 0) {
        snprintf(why, cap, "cannot list the replicas: %.200s", e.msg);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(rs[i].name, to) == 0)
            return true;
    snprintf(why, cap, "'%s' is not connected to the primary", to);
    return false;
}

/* Whether to streams from this primary, within the failover lag. */
static bool target_ready(const struct ops_env *env, const char *to, uint64_t lsn, char *why,
                         size_t cap)
{
    struct pg_standby sb[RV_PG_SYNC_MEMBERS_MAX];
    size_t n = 0;
    struct rv_error e = {0};
    if (pg_engine_standbys(env->engine, sb, RV_PG_SYNC_MEMBERS_MAX, &n, &e) != 0) {
        snprintf(why, cap, "cannot list the standbys: %.200s", e.msg);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(sb[i].name, to) != 0)
            continue;
        uint64_t lag = lsn > sb[i].flush_lsn ? lsn - sb[i].flush_lsn : 0;
        if (sb[i].streaming && lag <= (uint64_t)env->cfg->max_lag_on_failover_bytes)
            return true;
        snprintf(why, cap, "'%s' is %s, %" PRIu64 " bytes behind", to,
                 sb[i].streaming ? "streaming" : "not streaming", lag);
        return false;
    }
    snprintf(why, cap, "'%s' is not connected to the primary", to);
    return false;
}

/* The target's node key: its address and port. */
static int target_address(const struct ops_env *env, const char *to, char *addr, size_t cap,
                          json_int_t *port, struct rv_error *err)
{
    char key[RV_DCS_KEY_MAX + 1];
    json_t *kv = NULL;
    if ((size_t)snprintf(key, sizeof(key), "%snodes/%s", env->prefix, to) >= sizeof(key))
        return rv_error_set(err, RV_ELIMIT, false, "node name '%s' is too long", to);
    int rc = dcs_client_get(&kv, NULL, env->dcs, key, err);
    if (rc != 0)
        return rc;
    json_t *v = json_object_get(kv, "value");
    const char *a = json_string_value(json_object_get(v, "address"));
    *port = json_integer_value(json_object_get(v, "port"));
    if (a == NULL || *port <= 0)
        rc = rv_error_set(err, RV_ENOTFOUND, false, "node '%s' has not published its address", to);
    else
        snprintf(addr, cap, "%s", a);
    json_decref(kv);
    return rc;
}

/* Wait until the leader key is no longer attached to my session; false:
 * the wait ran out and the key is still mine. */
static bool wait_taken(const struct ops_env *env)
{
    int64_t until = child_now_ms() + RV_OPS_HANDOFF_WAIT_MS;
    while (child_now_ms() < until && !atomic_load(env->abort)) {
        json_t *kv = NULL;
        struct rv_error e = {0};
        if (dcs_client_get(&kv, NULL, env->dcs, env->leader_key, &e) == 0) {
            uint64_t s = (uint64_t)json_integer_value(json_object_get(kv, "session"));
            json_decref(kv);
            if (s != env->session)
                return true;
        }
        child_sleep_ms(RV_OPS_POLL_MS);
    }
    return atomic_load(env->abort);
}

/* Give the key back to myself and start again. */
static int roll_back(const struct ops_env *env, uint32_t timeline, struct rv_error *err)
{
    bool ok = false;
    json_t *cmp =
        json_pack("{s:s, s:I}", "key", env->leader_key, "session", (json_int_t)env->session);
    int rc = leader_txn(
        &ok, env, cmp,
        leader_json(env->cfg->node, env->cfg->pg.listen_address, env->cfg->pg.port, timeline, true),
        err);
    if (rc == 0 && !ok)
        return rv_error_set(err, RV_ECONFLICT, false, "the leader key is no longer mine");
    if (rc == 0)
        rc = engine_start(env, err);
    if (rc == 0 && is_mdb(env)) /* it comes back read-only */
        rc = mdb_engine_promote(env->eng->mdb, err);
    return rc;
}

static int switchover_primary(const struct ops_env *env, json_t *sw, enum ops_change *change,
                              struct rv_error *err)
{
    const char *id = str_of(sw, "id"), *to = str_of(sw, "to");
    char why[256], addr[RV_PG_HOST_MAX + 1], stop_lsn[RV_MDB_GTID_POS_MAX + 1];
    json_int_t port = 0;
    struct pg_status ps = {.timeline = 1};
    bool mdb = is_mdb(env);
    int rc = mdb ? 0 : pg_engine_status(env->engine, 0, &ps, err);
    if (rc != 0)
        return rc;
    *change = OPS_BUSY;
    if (!(mdb ? target_ready_mdb(env, to, why, sizeof(why))
              : target_ready(env, to, ps.current_lsn, why, sizeof(why))) ||
        target_address(env, to, addr, sizeof(addr), &port, err) != 0) {
        log_warn(COMP, "switchover %.12s to '%s' waits: %s", id, to, err->msg[0] ? err->msg : why);
        *change = OPS_NONE;
        return 0;
    }
    int64_t stopped = wall_ms();
    log_info(COMP, "switchover %.12s to '%s': stopping writes (%s)", id, to,
             mdb ? "read_only, then a shutdown that waits for the replicas" : "fast shutdown");
    if (mdb) {
        rc = mdb_engine_stop_for_switchover(env->eng->mdb, stop_lsn, sizeof(stop_lsn), err);
        if (rc == 0)
            log_info(COMP, "switchover %.12s: stopped at GTID position '%s'", id, stop_lsn);
    } else {
        lsn_text(stop_lsn, sizeof(stop_lsn), ps.current_lsn);
        rc = pg_engine_stop(env->engine, PG_STOP_FAST, err);
    }
    if (rc != 0) {
        struct rv_error e = {0};
        if (engine_start(env, &e) != 0 || (mdb && mdb_engine_promote(env->eng->mdb, &e) != 0))
            log_error(COMP, "switchover %.12s: cannot start again: %s", id, e.msg);
        if (sw_result(env, id, false, err->msg, stop_lsn, stopped, 0, &e) != 0)
            log_warn(COMP, "switchover %.12s: %s", id, e.msg);
        return rc;
    }
    bool ok = false;
    json_t *lv = leader_json(to, addr, port, ps.timeline, false);
    json_object_set_new(lv, "handoff", json_true());
    json_object_set_new(lv, "from", json_string(env->cfg->node));
    json_object_set_new(lv, "stop_lsn", json_string(stop_lsn));
    json_object_set_new(lv, "switchover", json_string(id));
    json_object_set_new(lv, "stopped_ms", json_integer((json_int_t)stopped));
    rc = leader_txn(
        &ok, env,
        json_pack("{s:s, s:I}", "key", env->leader_key, "session", (json_int_t)env->session), lv,
        err);
    if (rc == 0 && ok && wait_taken(env)) {
        log_info(COMP, "switchover %.12s: '%s' took the leader key; rejoining it as a replica", id,
                 to);
        *change = OPS_HANDED_OFF;
        return 0;
    }
    struct rv_error e = {0};
    const char *what = rc != 0 ? err->msg
                       : !ok   ? "the leader key was no longer mine"
                               : "the target did not take the leader key in time";
    snprintf(why, sizeof(why), "%.200s", what);
    log_error(COMP, "switchover %.12s to '%s' rolled back: %s", id, to, why);
    if (roll_back(env, ps.timeline, &e) != 0)
        log_error(COMP, "roll back: %s", e.msg);
    return sw_result(env, id, false, why, stop_lsn, stopped, 0, err);
}

/* --- switchover: the target --- */

/* Received past stop_lsn and replayed all of it (bounded wait). */
static bool caught_up(const struct ops_env *env, uint64_t stop, char *why, size_t cap)
{
    int64_t until = child_now_ms() + RV_OPS_CATCHUP_WAIT_MS;
    struct pg_status ps = {0};
    while (!atomic_load(env->abort)) {
        struct rv_error e = {0};
        if (pg_engine_status(env->engine, 0, &ps, &e) == 0 && ps.in_recovery) {
            uint64_t recv = ps.receive_lsn > ps.current_lsn ? ps.receive_lsn : ps.current_lsn;
            if (recv > stop && ps.replay_lsn >= recv)
                return true;
        }
        if (child_now_ms() >= until)
            break;
        child_sleep_ms(RV_OPS_POLL_MS);
    }
    snprintf(why, cap,
             "received up to %" PRIX64 "/%" PRIX64 ", replayed %" PRIX64 "/%" PRIX64
             ", the old primary stopped after %" PRIX64 "/%" PRIX64,
             ps.receive_lsn >> 32, ps.receive_lsn & 0xffffffffu, ps.replay_lsn >> 32,
             ps.replay_lsn & 0xffffffffu, stop >> 32, stop & 0xffffffffu);
    return false;
}

/* MariaDB: applied everything up to the old primary's final GTID position
 * (bounded wait). */
static bool caught_up_mdb(const struct ops_env *env, const char *stop, char *why, size_t cap)
{
    int64_t until = child_now_ms() + RV_OPS_CATCHUP_WAIT_MS;
    struct mdb_status ms;
    memset(&ms, 0, sizeof(ms));
    while (!atomic_load(env->abort)) {
        struct rv_error e = {0};
        if (mdb_engine_status(env->eng->mdb, stop, &ms, &e) == 0 && ms.accepting && ms.lag_trx == 0)
            return true;
        if (child_now_ms() >= until)
            break;
        child_sleep_ms(RV_OPS_POLL_MS);
    }
    snprintf(why, cap,
             "applied up to '%.80s' (%" PRIu64
             " transactions behind), the old primary stopped at '%.80s'",
             ms.gtid_current_pos, ms.lag_trx, stop);
    return false;
}

static int switchover_target(const struct ops_env *env, json_t *leader, enum ops_change *change,
                             struct rv_error *err)
{
    json_t *v = json_object_get(leader, "value");
    const char *id = str_of(v, "switchover");
    uint64_t stop = 0;
    char why[320];
    bool ok = false;
    *change = OPS_BUSY;
    bool mdb = is_mdb(env);
    if (!mdb && pg_lsn_parse(&stop, str_of(v, "stop_lsn")) != 0)
        return rv_error_set(err, RV_EPARSE, false, "the leader key's stop_lsn is not an LSN");
    json_t *cmp = json_pack("{s:s, s:I}", "key", env->leader_key, "mod_revision",
                            json_integer_value(json_object_get(leader, "mod_revision")));
    json_t *mine = json_deep_copy(v);
    int rc = leader_txn(&ok, env, cmp, mine, err);
    if (rc != 0 || !ok)
        return rc;
    int64_t took = wall_ms();
    log_info(COMP, "switchover %.12s: took the leader key from '%s'; waiting to replay past %s", id,
             str_of(v, "from"), str_of(v, "stop_lsn"));
    struct pg_status ps = {.timeline = 1};
    if (mdb ? !caught_up_mdb(env, str_of(v, "stop_lsn"), why, sizeof(why))
            : !caught_up(env, stop, why, sizeof(why))) {
        log_error(COMP, "switchover %.12s: not promoting: %s; releasing the leader key", id, why);
        json_t *txn =
            json_pack("{s:[{s:s,s:I}],s:[{s:{s:s}}]}", "compare", "key", env->leader_key, "session",
                      (json_int_t)env->session, "success", "delete", "key", env->leader_key);
        struct rv_error e = {0};
        if (txn != NULL)
            dcs_client_txn(&ok, NULL, env->dcs, txn, &e);
        json_decref(txn);
        return sw_result(env, id, false, why, str_of(v, "stop_lsn"), took, 0, err);
    }
    rc = mdb ? mdb_engine_promote(env->eng->mdb, err) : pg_engine_promote(env->engine, err);
    if (rc == 0 && !mdb)
        rc = pg_engine_status(env->engine, 0, &ps, err);
    if (rc != 0)
        return rc;
    json_t *lv = leader_json(env->cfg->node, env->cfg->pg.listen_address, env->cfg->pg.port,
                             ps.timeline, true);
    if (lv == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    rc = dcs_client_put(NULL, env->dcs, env->leader_key, lv, env->session, err);
    json_decref(lv);
    if (rc != 0)
        return rc;
    int64_t promoted = wall_ms();
    log_info(COMP,
             "switchover %.12s: promoted on timeline %u (%" PRId64 " ms after taking the key)", id,
             ps.timeline, promoted - took);
    *change = OPS_PROMOTED;
    int64_t stopped = json_integer_value(json_object_get(v, "stopped_ms"));
    log_info(COMP, "switchover %.12s: writes were unavailable for %" PRId64 " ms", id,
             promoted - stopped);
    /* promoted: the outcome is informative, the role change is not */
    struct rv_error e = {0};
    if (sw_result(env, id, true, "", str_of(v, "stop_lsn"), stopped, promoted, &e) != 0)
        log_warn(COMP, "switchover %.12s: cannot record the outcome: %s", id, e.msg);
    return 0;
}

/* --- the tick --- */

int ops_tick(const struct ops_env *env, bool primary, json_t *leader, enum ops_change *change,
             struct rv_error *err)
{
    char prefix[RV_DCS_KEY_MAX + 1];
    json_t *kvs = NULL;
    int rc;
    *change = OPS_NONE;
    json_t *lval = json_object_get(leader, "value");
    if (!primary && json_is_true(json_object_get(lval, "handoff")) &&
        strcmp(str_of(lval, "node"), env->cfg->node) == 0 &&
        (uint64_t)json_integer_value(json_object_get(leader, "session")) != env->session)
        return switchover_target(env, leader, change, err);
    if ((rc = key_of(prefix, env, "", NULL, err)) != 0 ||
        (rc = dcs_client_list(&kvs, env->dcs, prefix, err)) != 0)
        return rc;
    json_t *sw = listed(kvs, env, "switchover", NULL);
    json_t *swr = listed(kvs, env, "switchover-result", NULL);
    json_t *req = listed(kvs, env, "request/", env->cfg->node);
    json_t *res = listed(kvs, env, "result/", env->cfg->node);
    json_t *want = listed(kvs, env, "parameters", NULL);
    if (primary && sw != NULL && strcmp(str_of(sw, "from"), env->cfg->node) == 0 &&
        strcmp(str_of(sw, "id"), str_of(swr, "id")) != 0) {
        rc = switchover_primary(env, sw, change, err);
        if (rc != 0 || *change != OPS_NONE)
            goto out;
    }
    if (want != NULL && (rc = params_apply(env, want, err)) != 0)
        goto out;
    if (req != NULL && strcmp(str_of(req, "op"), "restart") == 0 &&
        strcmp(str_of(req, "id"), str_of(res, "id")) != 0) {
        *change = OPS_BUSY;
        rc = restart_node(env, req, primary, err);
        goto out;
    }
    bool running = false;
    char pending[RV_PG_PENDING_MAX + 1];
    if ((rc = engine_pending(env, &running, pending, sizeof(pending), err)) == 0 && running)
        rc = params_publish(env, want, pending, err);
out:
    json_decref(kvs);
    return rc;
}
