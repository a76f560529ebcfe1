/* agent.c - the autopilot (see agent.h and docs/agent.md). */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dcs_client.h"
#include "engine.h"
#include "engine_pg.h"
#include "fsutil.h"
#include "hooks.h"
#include "log.h"
#include "ops.h"
#include "restore_cmd.h"
#include "watchdog.h"

#define COMP "agent"

enum role { ROLE_NONE, ROLE_PRIMARY, ROLE_REPLICA, ROLE_FENCED };
enum step_kind { STEP_START, STEP_DECIDE, STEP_TICK, STEP_FENCE, STEP_STOP };

/* A set of node names (synchronous standbys). */
struct sync_set {
    size_t n;
    char names[RV_PG_SYNC_MEMBERS_MAX][RV_AGENT_NAME_MAX + 1];
};

/* Written as synchronous_standby_names while a race winner promotes: no
 * node can have this name (node names never start with '-'), so commits
 * wait until the first tick has published the new synchronous set. */
#define SYNC_PENDING "-reeve-pending"

struct agent {
    uv_loop_t *loop;
    const struct agent_config *cfg;
    agent_done_fn done;
    void *payload;
    struct pg_engine engine; /* PostgreSQL's adapter, behind eng */
    struct engine eng;       /* the engine interface (engine.h): every call goes through it */
    bool engine_ok;
    struct dcs_client dcs;       /* steps: short timeout */
    struct dcs_client dcs_ka;    /* keepalives */
    struct dcs_client dcs_watch; /* long-polls, canceled by `cancel` */
    atomic_bool cancel;
    char k_prefix[RV_DCS_KEY_MAX + 1];
    char k_leader[RV_DCS_KEY_MAX + 1];
    char k_init[RV_DCS_KEY_MAX + 1];
    char k_state[RV_DCS_KEY_MAX + 1];
    char k_node[RV_DCS_KEY_MAX + 1];
    char k_sync[RV_DCS_KEY_MAX + 1];
    char k_nodes[RV_DCS_KEY_MAX + 1];
    char p_token[RV_PG_PATH_MAX + 64];
    char p_marker[RV_PG_PATH_MAX + 64];
    char p_lock[RV_PG_PATH_MAX + 64];
    int lock_fd;
    struct watchdog wd; /* fences the server if this agent freezes or dies */
    bool wd_ok;
    uv_timer_t step_timer;
    uv_timer_t ka_timer;
    int handles_open;
    /* Loop-thread state. */
    enum role role;
    enum step_kind next;
    uint64_t session; /* 0: none (no keepalives) */
    bool step_busy;
    bool ka_busy;
    bool watch_busy;
    uint64_t watch_rev; /* watch the leader key after this revision */
    bool fence_wanted;
    atomic_bool abort_step; /* set by the loop: a primary's step must end now */
    bool session_lost;
    bool stopping;
    bool stop_done;
    bool stopped;
    int64_t last_ok_ms;   /* send time of the last acknowledged keepalive */
    int64_t last_sent_ms; /* send time of the last keepalive */
    int64_t backoff_ms;
    int exit_rc;
    /* Step-owned state: read and written only by the step in flight, or
     * by the loop while no step is. */
    bool registered;
    char upstream_node[RV_AGENT_NAME_MAX + 1];
    struct pg_primary upstream;
    uint64_t last_primary_lsn;
    bool prestart_done;               /* the preStart handler succeeded */
    bool health_failed;               /* the last health handler failed */
    enum role change_from, change_to; /* an onChange to run; change_to NONE: none */
    /* The primary's synchronous standbys: live in the server, published in
     * the sync key (sync_pub valid when sync_pub_ok), and the position from
     * which a new live member holds every acknowledged commit. */
    struct sync_set sync_live;
    struct sync_set sync_pub;
    bool sync_pub_ok;
    uint64_t sync_since_lsn;
    struct ops_state ops; /* day-2 operations (ops.h) */
};

enum outcome { OUT_OK, OUT_WAIT, OUT_ERROR };

struct step {
    uv_work_t req;
    struct agent *a;
    enum step_kind kind;
    enum role role;      /* role at dispatch */
    uint64_t session;    /* session at dispatch */
    int64_t dispatch_ms; /* loop time at dispatch: before anything was sent */
    /* Results. */
    enum outcome outcome;
    enum role new_role;
    uint64_t new_session;
    bool lost_leadership;
    uint64_t leader_rev; /* revision of the tick's leader read, 0: none */
    struct rv_error err;
};

struct watch {
    uv_work_t req;
    struct agent *a;
    uint64_t after;
    uint64_t rev;
    bool changed;
    int rc;
    struct rv_error err;
};

struct ka {
    uv_work_t req;
    struct agent *a;
    uint64_t session;
    int64_t sent_ms;
    int rc;
    struct rv_error err;
};

static void schedule(struct agent *a, enum step_kind kind, int64_t delay_ms);
static void wd_beat(struct agent *a);
static void on_step_timer(uv_timer_t *t);

static const char *role_name(enum role r)
{
    switch (r) {
    case ROLE_PRIMARY:
        return "primary";
    case ROLE_REPLICA:
        return "replica";
    case ROLE_FENCED:
        return "fenced";
    default:
        return "unknown";
    }
}

static int64_t now_ms(const struct agent *a)
{
    return (int64_t)uv_now(a->loop);
}

/* --- files in the state directory --- */

/* Atomically and durably (lib/fsutil). */
static int write_file_0600(const char *path, const char *text, struct rv_error *err)
{
    return fs_write_atomic(path, text, strlen(text), 0600, NULL, NULL, err);
}

/* The marker's role ("primary"/"replica"), "" when the node was never
 * bootstrapped. */
static void read_marker(const struct agent *a, char *out, size_t cap)
{
    fs_read_line(a->p_marker, out, cap);
}

static int write_marker(struct agent *a, enum role r, struct rv_error *err)
{
    char text[32];
    snprintf(text, sizeof(text), "%s\n", role_name(r));
    return write_file_0600(a->p_marker, text, err);
}

/* --- JSON values --- */

/* A position as published in node keys (engine.h: an LSN for PostgreSQL, a
 * transaction count for MariaDB). */
static void pos_text(const struct agent *a, char *out, size_t cap, uint64_t pos)
{
    a->eng.ops->pos_text(out, cap, pos);
}

/* The leader key. A replica that wins the race takes the key before it
 * promotes (the key is the lock), so `ready` says whether the server behind
 * it is a writable primary yet: followers must not clone from or rewind
 * against a server still on the old timeline. */
static json_t *leader_value(const struct agent *a, uint32_t timeline, bool ready)
{
    return json_pack("{s:s,s:s,s:i,s:I,s:b}", "node", a->cfg->node, "address",
                     a->cfg->pg.listen_address, "port", a->cfg->pg.port, "timeline",
                     (json_int_t)timeline, "ready", ready);
}

/* A key without `ready` comes from an agent that publishes it only once
 * promoted, so absence means ready. */
static bool leader_ready(json_t *kv)
{
    json_t *r = json_object_get(json_object_get(kv, "value"), "ready");
    return r == NULL || json_is_true(r);
}

/* `received`: the end of the WAL a standby holds (what a promotion would
 * replay up to), for the failover ranking. MariaDB nodes publish positions
 * as transaction counts, the lag as lag_transactions and their GTID
 * position as gtid. A replica whose history diverged is not healthy. */
static json_t *node_value(const struct agent *a, enum role r, const struct engine_status *st)
{
    char lsn[40], recv[40];
    bool healthy = st->running && st->accepting && !st->diverged &&
                   (r == ROLE_PRIMARY ? !st->in_recovery : st->in_recovery) && !a->health_failed;
    bool mdb = a->eng.type == ENGINE_MARIADB;
    pos_text(a, lsn, sizeof(lsn), st->current);
    pos_text(a, recv, sizeof(recv), st->received > st->current ? st->received : st->current);
    json_t *v = json_pack("{s:s,s:s,s:s,s:i,s:b,s:b,s:I,s:s,s:s,s:I}", "node", a->cfg->node, "role",
                          role_name(r), "address", a->cfg->pg.listen_address, "port",
                          a->cfg->pg.port, "healthy", healthy, "streaming", st->streaming,
                          "timeline", (json_int_t)st->timeline, "lsn", lsn, "received", recv,
                          mdb ? "lag_transactions" : "lag_bytes", (json_int_t)st->lag);
    if (v != NULL && mdb && json_object_set_new(v, "gtid", json_string(st->position)) != 0) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* Publish node state (attached to the session) and report it. */
static int publish(struct step *s, enum role r, const struct engine_status *st)
{
    struct agent *a = s->a;
    json_t *v = node_value(a, r, st);
    json_t *rep = NULL;
    struct rv_error rerr = {0};
    int rc;
    if (v == NULL) {
        rc = rv_error_set(&s->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = dcs_client_put(NULL, &a->dcs, a->k_node, v, s->session, &s->err);
    if (rc != 0)
        goto out;
    if (atomic_load(&a->abort_step))
        goto out;
    /* The lag is in bytes of WAL for PostgreSQL and in transactions for
     * MariaDB; a replica also says whether its replication runs. */
    rep = json_pack("{s:s,s:b,s:s,s:I,s:s}", "role",
                    r == ROLE_PRIMARY || r == ROLE_REPLICA ? role_name(r) : "unknown", "healthy",
                    json_is_true(json_object_get(v, "healthy")), "engine", a->eng.ops->name,
                    "timeline", (json_int_t)st->timeline, "position", st->position);
    if (rep != NULL && r == ROLE_REPLICA &&
        json_object_set_new(rep, "streaming", json_boolean(st->streaming)) != 0) {
        json_decref(rep);
        rep = NULL;
    }
    if (rep != NULL &&
        json_object_set_new(rep,
                            a->eng.type == ENGINE_POSTGRESQL ? "lag_bytes" : "lag_transactions",
                            json_integer((json_int_t)st->lag)) != 0) {
        json_decref(rep);
        rep = NULL;
    }
    if (rep != NULL && a->eng.version[0] != '\0' &&
        json_object_set_new(rep, "version", json_string(a->eng.version)) != 0) {
        json_decref(rep);
        rep = NULL;
    }
    if (rep != NULL && dcs_client_report(&a->dcs, rep, &rerr) != 0)
        log_debug(COMP, "report not accepted: %s", rerr.msg);
out:
    json_decref(v);
    json_decref(rep);
    return rc;
}

/* Parse a leader value into p and node; false when malformed. */
static bool leader_parse(json_t *kv, struct pg_primary *p, char *node, size_t cap)
{
    json_t *v = json_object_get(kv, "value");
    const char *n = json_string_value(json_object_get(v, "node"));
    const char *addr = json_string_value(json_object_get(v, "address"));
    json_int_t port = json_integer_value(json_object_get(v, "port"));
    if (n == NULL || addr == NULL || port < 1 || port > 65535 || strlen(n) >= cap ||
        strlen(addr) > RV_PG_HOST_MAX)
        return false;
    memset(p, 0, sizeof(*p));
    snprintf(p->host, sizeof(p->host), "%s", addr);
    p->port = (int)port;
    snprintf(node, cap, "%s", n);
    return true;
}

static uint64_t kv_session(json_t *kv)
{
    json_int_t s = json_integer_value(json_object_get(kv, "session"));
    return s > 0 ? (uint64_t)s : 0;
}

/* Delete the leader key only while it is still mine. */
static void release_leader(struct step *s)
{
    struct agent *a = s->a;
    struct rv_error e = {0};
    bool ok = false;
    json_t *txn =
        json_pack("{s:[{s:s,s:I}],s:[{s:{s:s}}]}", "compare", "key", a->k_leader, "session",
                  (json_int_t)s->session, "success", "delete", "key", a->k_leader);
    if (txn == NULL)
        return;
    if (dcs_client_txn(&ok, NULL, &a->dcs, txn, &e) != 0)
        log_warn(COMP, "cannot release the leader key: %s", e.msg);
    json_decref(txn);
}

/* --- handlers --- */

/* "host:port" of the primary as this node knows it, "" when unknown. */
static void primary_text(const struct agent *a, enum role r, char *out, size_t cap)
{
    out[0] = '\0';
    if (r == ROLE_PRIMARY)
        snprintf(out, cap, "%s:%d", a->cfg->pg.listen_address, a->cfg->pg.port);
    else if (r == ROLE_REPLICA && a->upstream_node[0] != '\0')
        snprintf(out, cap, "%s:%d", a->upstream.host, a->upstream.port);
}

/* Run ev's command (when configured) for a node in role r. */
static int run_hook(struct step *s, enum agent_event ev, enum role r, enum role old_role,
                    struct rv_error *err)
{
    struct agent *a = s->a;
    char primary[RV_PG_HOST_MAX + 16];
    if (!hook_configured(a->cfg, ev))
        return 0;
    primary_text(a, r, primary, sizeof(primary));
    struct hook_event info = {.role = r == ROLE_NONE ? "" : role_name(r),
                              .primary = primary,
                              .old_role = old_role == ROLE_NONE ? "" : role_name(old_role),
                              .new_role = r == ROLE_NONE ? "" : role_name(r)};
    return hook_run(a->cfg, ev, &info, &a->abort_step, err);
}

/* The health handler: a failure marks the node unhealthy in what it
 * publishes (docs/agent.md "Handlers"). */
static void check_health(struct step *s, enum role r)
{
    struct rv_error e = {0};
    struct agent *a = s->a;
    if (!hook_configured(a->cfg, AGENT_EV_HEALTH))
        return;
    int rc = run_hook(s, AGENT_EV_HEALTH, r, ROLE_NONE, &e);
    if (rc == RV_ECANCELED)
        return;
    if (rc != 0 && !a->health_failed)
        log_warn(COMP, "the health handler failed: reporting this node unhealthy");
    else if (rc == 0 && a->health_failed)
        log_info(COMP, "the health handler passes again: reporting this node healthy");
    a->health_failed = rc != 0;
}

/* --- synchronous standbys --- */

static bool set_has(const struct sync_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->names[i], name) == 0)
            return true;
    return false;
}

static void set_add(struct sync_set *set, const char *name)
{
    if (set->n < RV_PG_SYNC_MEMBERS_MAX && !set_has(set, name))
        snprintf(set->names[set->n++], sizeof(set->names[0]), "%s", name);
}

static bool set_equal(const struct sync_set *x, const struct sync_set *y)
{
    if (x->n != y->n)
        return false;
    for (size_t i = 0; i < x->n; i++)
        if (!set_has(y, x->names[i]))
            return false;
    return true;
}

/* Write the sync key ({"leader", "n", "members"}, no session: it must
 * outlive the primary) only while the leader key is still mine. */
static int sync_publish(struct step *s, const struct sync_set *set)
{
    struct agent *a = s->a;
    bool ok = false;
    json_t *members = json_array();
    for (size_t i = 0; members != NULL && i < set->n; i++)
        if (json_array_append_new(members, json_string(set->names[i])) != 0) {
            json_decref(members);
            members = NULL;
        }
    json_t *txn = members == NULL
                      ? NULL
                      : json_pack("{s:[{s:s,s:I}],s:[{s:{s:s,s:{s:s,s:i,s:o}}}]}", "compare", "key",
                                  a->k_leader, "session", (json_int_t)s->session, "success", "put",
                                  "key", a->k_sync, "value", "leader", a->cfg->node, "n",
                                  a->cfg->synchronous, "members", members);
    int rc;
    if (txn == NULL)
        return rv_error_set(&s->err, RV_ENOMEM, false, "out of memory");
    rc = dcs_client_txn(&ok, NULL, &a->dcs, txn, &s->err);
    json_decref(txn);
    if (rc == 0 && !ok) {
        s->lost_leadership = true;
        return rv_error_set(&s->err, RV_ECONFLICT, false,
                            "cannot publish the synchronous standbys: the leader key is no "
                            "longer mine");
    }
    if (rc != 0)
        return rc;
    a->sync_pub = *set;
    a->sync_pub_ok = true;
    log_info(COMP, "published %zu synchronous standby(s)%s%s", set->n, set->n ? ", first " : "",
             set->n ? set->names[0] : "");
    return 0;
}

/* Healthy replicas (their nodes/ keys) into set, any number. */
static int healthy_replicas(struct step *s, struct sync_set *set)
{
    struct agent *a = s->a;
    json_t *kvs = NULL;
    size_t i;
    json_t *kv;
    set->n = 0;
    int rc = dcs_client_list(&kvs, &a->dcs, a->k_nodes, &s->err);
    if (rc != 0)
        return rc;
    json_array_foreach(kvs, i, kv)
    {
        json_t *v = json_object_get(kv, "value");
        const char *n = json_string_value(json_object_get(v, "node"));
        const char *r = json_string_value(json_object_get(v, "role"));
        if (n != NULL && r != NULL && strcmp(r, "replica") == 0 &&
            json_is_true(json_object_get(v, "healthy")) && strlen(n) <= RV_AGENT_NAME_MAX)
            set_add(set, n);
    }
    json_decref(kvs);
    return 0;
}

/* The synchronous standbys to have: healthy streaming replicas, current
 * members first, then the most advanced (ties: the smaller name). */
static void sync_target(const struct agent *a, const struct sync_set *healthy,
                        struct pg_standby *sb, size_t n_sb, struct sync_set *t)
{
    size_t want = (size_t)a->cfg->synchronous;
    t->n = 0;
    for (size_t i = 0; i < a->sync_live.n && t->n < want; i++)
        for (size_t j = 0; j < n_sb; j++)
            if (strcmp(sb[j].name, a->sync_live.names[i]) == 0 && sb[j].streaming &&
                set_has(healthy, sb[j].name))
                set_add(t, sb[j].name);
    while (t->n < want) {
        struct pg_standby *best = NULL;
        for (size_t j = 0; j < n_sb; j++) {
            if (!sb[j].streaming || !set_has(healthy, sb[j].name) || set_has(t, sb[j].name))
                continue;
            if (best == NULL || sb[j].flush_lsn > best->flush_lsn ||
                (sb[j].flush_lsn == best->flush_lsn && strcmp(sb[j].name, best->name) < 0))
                best = &sb[j];
        }
        if (best == NULL)
            break;
        set_add(t, best->name);
    }
}

/* The primary keeps synchronous_standby_names and the sync key in step.
 * The published set only ever holds nodes that have every acknowledged
 * commit: before the live set changes, what is published shrinks to the
 * members common to both; a new member is published once it has flushed
 * up to the position of the change. */
static int sync_tick(struct step *s)
{
    struct agent *a = s->a;
    struct pg_standby sb[RV_AGENT_PEERS_MAX];
    struct sync_set healthy, target, pub;
    struct engine_status st;
    size_t n_sb = 0;
    int rc;
    if (a->cfg->synchronous == 0 || a->eng.ops->set_synchronous == NULL)
        return 0;
    if ((rc = a->eng.ops->standbys(&a->eng, sb, RV_AGENT_PEERS_MAX, &n_sb, &s->err)) != 0 ||
        (rc = healthy_replicas(s, &healthy)) != 0)
        return rc;
    sync_target(a, &healthy, sb, n_sb, &target);
    if (!set_equal(&target, &a->sync_live)) {
        pub.n = 0;
        for (size_t i = 0; a->sync_pub_ok && i < a->sync_pub.n; i++)
            if (set_has(&target, a->sync_pub.names[i]))
                set_add(&pub, a->sync_pub.names[i]);
        if (!a->sync_pub_ok || !set_equal(&pub, &a->sync_pub))
            if ((rc = sync_publish(s, &pub)) != 0)
                return rc;
        const char *names[RV_PG_SYNC_MEMBERS_MAX];
        for (size_t i = 0; i < target.n; i++)
            names[i] = target.names[i];
        rc = a->eng.ops->set_synchronous(&a->eng, names, target.n, (unsigned)target.n,
                                         PG_SYNC_FIRST, &s->err);
        if (rc == 0)
            rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
        if (rc != 0)
            return rc;
        a->sync_live = target;
        a->sync_since_lsn = st.current;
        if (target.n < (size_t)a->cfg->synchronous)
            log_warn(COMP, "only %zu of %d synchronous standbys are available", target.n,
                     a->cfg->synchronous);
        return 0;
    }
    pub.n = 0;
    for (size_t j = 0; j < n_sb; j++)
        if (set_has(&a->sync_live, sb[j].name) &&
            ((a->sync_pub_ok && set_has(&a->sync_pub, sb[j].name)) ||
             (sb[j].sync && sb[j].flush_lsn >= a->sync_since_lsn)))
            set_add(&pub, sb[j].name);
    if (!a->sync_pub_ok || !set_equal(&pub, &a->sync_pub))
        return sync_publish(s, &pub);
    return 0;
}

/* A primary whose configuration is asynchronous removes a sync key left
 * from an earlier configuration, so failover is not restricted by it. */
static void sync_clear(struct step *s)
{
    struct agent *a = s->a;
    struct rv_error e = {0};
    bool ok = false;
    if (a->cfg->synchronous != 0 || a->sync_pub_ok)
        return;
    json_t *txn =
        json_pack("{s:[{s:s,s:I}],s:[{s:{s:s}}]}", "compare", "key", a->k_leader, "session",
                  (json_int_t)s->session, "success", "delete", "key", a->k_sync);
    if (txn != NULL && dcs_client_txn(&ok, NULL, &a->dcs, txn, &e) == 0 && ok) {
        a->sync_pub.n = 0;
        a->sync_pub_ok = true;
    }
    json_decref(txn);
}

/* Whether this node may race under the last published synchronous set:
 * yes when no set was ever published (nothing was promised), else only a
 * member. *members gets the set. */
static int sync_eligible(struct step *s, bool *ok, struct sync_set *members)
{
    struct agent *a = s->a;
    json_t *kv = NULL;
    size_t i;
    json_t *m;
    members->n = 0;
    *ok = true;
    int rc = dcs_client_get(&kv, NULL, &a->dcs, a->k_sync, &s->err);
    if (rc != 0 || kv == NULL)
        return rc;
    json_array_foreach(json_object_get(json_object_get(kv, "value"), "members"), i, m)
    {
        if (json_is_string(m) && strlen(json_string_value(m)) <= RV_AGENT_NAME_MAX)
            set_add(members, json_string_value(m));
    }
    *ok = set_has(members, a->cfg->node);
    json_decref(kv);
    return 0;
}

/* --- failover ranking --- */

/* Replicas that should take the key before this one: healthy, eligible
 * (in members when sync), with more WAL, or as much and a smaller name. */
static size_t race_rank(struct step *s, uint64_t mine, bool sync, const struct sync_set *members)
{
    struct agent *a = s->a;
    struct rv_error e = {0};
    json_t *kvs = NULL, *kv;
    size_t i, rank = 0;
    if (dcs_client_list(&kvs, &a->dcs, a->k_nodes, &e) != 0) {
        log_debug(COMP, "cannot read the other nodes: %s", e.msg);
        return 0;
    }
    json_array_foreach(kvs, i, kv)
    {
        json_t *v = json_object_get(kv, "value");
        const char *n = json_string_value(json_object_get(v, "node"));
        const char *r = json_string_value(json_object_get(v, "role"));
        const char *t = json_string_value(json_object_get(v, "received"));
        uint64_t lsn = 0;
        if (n == NULL || r == NULL || t == NULL || strcmp(n, a->cfg->node) == 0 ||
            strcmp(r, "replica") != 0 || !json_is_true(json_object_get(v, "healthy")) ||
            (sync && !set_has(members, n)) || a->eng.ops->pos_parse(&lsn, t) != 0)
            continue;
        if (lsn > mine || (lsn == mine && strcmp(n, a->cfg->node) < 0))
            rank++;
    }
    json_decref(kvs);
    return rank;
}

static void nap_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* --- re-clone --- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* Remove path and all below it; absent is fine. */
static int remove_tree(const char *path, struct rv_error *err)
{
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 0;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return rv_error_set(err, RV_EIO, false, "cannot remove '%s': %s", path, strerror(errno));
    return 0;
}

/* Delete earlier "<data_dir>.failed-*" copies: one is kept for forensics. */
static int remove_old_failed(const char *data_dir, struct rv_error *err)
{
    char dir[RV_PG_PATH_MAX + 1], prefix[RV_PG_PATH_MAX + 16], path[2 * RV_PG_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s", data_dir);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return 0;
    snprintf(prefix, sizeof(prefix), "%s.failed-", slash + 1);
    *slash = '\0';
    DIR *d = opendir(dir[0] ? dir : "/");
    struct dirent *de;
    int rc = 0;
    if (d == NULL)
        return rv_error_set(err, RV_EIO, false, "cannot read '%s': %s", dir, strerror(errno));
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        log_info(COMP, "removing the older failed data directory '%s'", path);
        rc = remove_tree(path, err);
    }
    closedir(d);
    return rc;
}

/* Move the data directory aside as "<data_dir>.failed-<UTC time>". */
static int move_aside(struct agent *a, struct rv_error *err)
{
    char to[RV_PG_PATH_MAX + 48], ts[32];
    time_t now = time(NULL);
    struct tm tm;
    int rc = a->eng.ops->stop(&a->eng, ENGINE_STOP_IMMEDIATE, err);
    if (rc != 0 || (rc = remove_old_failed(a->cfg->pg.data_dir, err)) != 0)
        return rc;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(to, sizeof(to), "%s.failed-%s", a->cfg->pg.data_dir, ts);
    if (rename(a->cfg->pg.data_dir, to) != 0 && errno != ENOENT)
        return rv_error_set(err, RV_EIO, false, "cannot move '%s' to '%s': %s", a->cfg->pg.data_dir,
                            to, strerror(errno));
    log_warn(COMP, "moved the old data directory to '%s' (kept for inspection)", to);
    return 0;
}

/* Replace the data directory with a fresh clone of p. The marker says
 * "recloning" meanwhile: a clone cut short is removed and redone. */
static int reclone(struct step *s, const struct pg_primary *p, bool keep_old)
{
    struct agent *a = s->a;
    int rc = keep_old ? move_aside(a, &s->err) : 0;
    if (rc == 0 && !keep_old) {
        rc = a->eng.ops->stop(&a->eng, ENGINE_STOP_IMMEDIATE, &s->err);
        if (rc == 0)
            rc = remove_tree(a->cfg->pg.data_dir, &s->err);
    }
    if (rc == 0)
        rc = write_file_0600(a->p_marker, "recloning\n", &s->err);
    if (rc != 0)
        return rc;
    log_warn(COMP, "cloning a fresh copy from %s:%d", p->host, p->port);
    rc = a->eng.ops->clone(&a->eng, p, &s->err);
    if (rc == 0)
        rc = a->eng.ops->make_standby(&a->eng, p, &s->err);
    return rc;
}

/* The data directory holds a server (PG_VERSION, mysql/ is there). */
static bool has_data(const struct agent *a)
{
    return a->eng.ops->has_data(&a->eng);
}

/* --- steps (worker threads) --- */

static int load_or_register(struct step *s)
{
    struct agent *a = s->a;
    char *saved = NULL;
    char cluster[2 * RV_AGENT_NAME_MAX + 2];
    char address[RV_PG_HOST_MAX + 16];
    struct rv_error e = {0};
    int rc = 0;
    if (a->registered)
        goto out;
    char ref[RV_PG_PATH_MAX + 80];
    snprintf(ref, sizeof(ref), "file:%s", a->p_token);
    rc = agent_secret_resolve(&saved, ref, &e);
    if (rc == 0) {
        rc = dcs_client_set_token(&a->dcs, saved, &s->err);
        if (rc == 0)
            a->registered = true;
        goto out;
    }
    if (rc != RV_ENOTFOUND) {
        rc = rv_error_set(&s->err, rc, false, "%s", e.msg);
        goto out;
    }
    if (a->cfg->registration_token == NULL) {
        rc = rv_error_set(&s->err, RV_EAUTH, false,
                          "no saved agent token and no registration token");
        goto out;
    }
    snprintf(cluster, sizeof(cluster), "%s/%s", a->cfg->namespace_, a->cfg->cluster);
    snprintf(address, sizeof(address), "%s:%d", a->cfg->pg.listen_address, a->cfg->pg.port);
    rc = dcs_client_register(&a->dcs, a->cfg->registration_token, cluster, a->cfg->node, address,
                             &s->err);
    if (rc != 0)
        goto out;
    rc = write_file_0600(a->p_token, a->dcs.token, &s->err);
    if (rc != 0)
        goto out;
    a->registered = true;
    log_info(COMP, "registered node '%s' of cluster '%s'", a->cfg->node, cluster);
out:
    if (saved != NULL) {
        explicit_bzero(saved, strlen(saved));
        free(saved);
    }
    return rc;
}

static void step_start(struct step *s)
{
    struct agent *a = s->a;
    uint64_t id = 0;
    if (load_or_register(s) != 0 ||
        dcs_client_session_grant(&id, &a->dcs, a->cfg->ttl_ms, &s->err) != 0) {
        s->outcome = OUT_ERROR;
        return;
    }
    s->new_session = id;
    s->outcome = OUT_OK;
}

/* Bootstrap a new cluster while holding the init lock. */
static void bootstrap_primary(struct step *s)
{
    struct agent *a = s->a;
    struct engine_status st;
    json_t *lv = NULL, *state = NULL, *init = NULL, *kv = NULL;
    bool won = false, created = false;
    int rc;
    init = json_pack("{s:s}", "node", a->cfg->node);
    if (init == NULL) {
        rc = rv_error_set(&s->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = dcs_client_create(&won, &a->dcs, a->k_init, init, s->session, &s->err);
    if (rc != 0)
        goto out;
    if (!won) {
        s->outcome = OUT_WAIT;
        goto out;
    }
    /* Under the lock: a cluster initialized before is never initialized
     * again, and a leader that appeared meanwhile wins. */
    rc = dcs_client_get(&kv, NULL, &a->dcs, a->k_state, &s->err);
    if (rc != 0)
        goto out;
    if (kv == NULL)
        rc = dcs_client_get(&kv, NULL, &a->dcs, a->k_leader, &s->err);
    if (rc != 0)
        goto out_unlock;
    if (kv != NULL) {
        s->outcome = OUT_WAIT;
        goto out_unlock;
    }
    log_info(COMP, "no leader and no cluster yet: initializing as primary");
    /* A cluster bootstrapped from a backup restores it instead of initdb;
     * until the backup daemon has stored the configuration once, wait. */
    bool restored = false;
    struct restore_result rr;
    struct restore_mdb_result mr;
    rc = a->eng.type == ENGINE_POSTGRESQL
             ? restore_from_config(&a->engine, a->cfg, &a->abort_step, &restored, &rr, &s->err)
             : restore_from_config_mdb(a->eng.mdb, a->cfg, &a->abort_step, &restored, &mr,
                                       &s->err);
    if (rc == RV_ENOTFOUND && s->err.retryable) {
        log_info(COMP, "waiting for the cluster's configuration before bootstrapping");
        rc = 0;
        s->outcome = OUT_WAIT;
        goto out_unlock;
    }
    if (rc == 0 && restored && a->eng.type == ENGINE_POSTGRESQL)
        log_info(COMP, "restored backup %s (timeline %u)", rr.backup_id, (unsigned)rr.timeline);
    else if (rc == 0 && restored)
        log_info(COMP, "restored backup %s (%zu in its chain, GTID %s)", mr.backup_id,
                 mr.chain_len, mr.gtid[0] ? mr.gtid : "none");
    if (rc == 0 && !restored)
        rc = a->eng.ops->bootstrap(&a->eng, &s->err);
    if (rc != 0)
        goto out_unlock;
    rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
    if (rc != 0)
        goto out_unlock;
    lv = leader_value(a, st.timeline, true);
    state = json_pack("{s:b,s:s}", "initialized", 1, "by", a->cfg->node);
    if (lv == NULL || state == NULL) {
        rc = rv_error_set(&s->err, RV_ENOMEM, false, "out of memory");
        goto out_unlock;
    }
    rc = dcs_client_create(&created, &a->dcs, a->k_leader, lv, s->session, &s->err);
    if (rc == 0 && !created)
        rc = rv_error_set(&s->err, RV_ECONFLICT, false,
                          "the leader key appeared under the init lock");
    if (rc != 0) {
        struct rv_error fe = {0};
        if (a->eng.ops->fence(&a->eng, NULL, &fe) != 0)
            log_error(COMP, "cannot stop the new server: %s", fe.msg);
        goto out_unlock;
    }
    rc = dcs_client_put(NULL, &a->dcs, a->k_state, state, 0, &s->err);
    if (rc == 0)
        rc = write_marker(a, ROLE_PRIMARY, &s->err);
    if (rc == 0)
        rc = publish(s, ROLE_PRIMARY, &st);
    if (rc != 0)
        goto out_unlock;
    a->sync_live.n = 0;
    a->sync_pub_ok = false;
    s->new_role = ROLE_PRIMARY;
    s->outcome = OUT_OK;
out_unlock : {
    struct rv_error ue = {0};
    if (dcs_client_delete(NULL, &a->dcs, a->k_init, &ue) != 0)
        log_warn(COMP, "cannot release the init lock (it goes with the session): %s", ue.msg);
}
out:
    if (rc != 0)
        s->outcome = OUT_ERROR;
    json_decref(init);
    json_decref(kv);
    json_decref(lv);
    json_decref(state);
}

/* Before racing: with a published synchronous set only a member (or the
 * primary that published it) may lead; then the least-lagging eligible
 * replica goes first. OUT_WAIT in s when this node must not race. */
static int race_checks(struct step *s, struct engine_status *st)
{
    struct agent *a = s->a;
    struct sync_set members;
    bool ok = true;
    json_t *kv = NULL;
    int rc = sync_eligible(s, &ok, &members);
    if (rc != 0)
        return rc;
    if (!ok) {
        rc = dcs_client_get(&kv, NULL, &a->dcs, a->k_sync, &s->err);
        const char *by = json_string_value(json_object_get(json_object_get(kv, "value"), "leader"));
        ok = rc == 0 && by != NULL && strcmp(by, a->cfg->node) == 0;
        json_decref(kv);
        if (rc != 0)
            return rc;
    }
    if (!ok) {
        log_warn(COMP,
                 "not racing for leadership: not one of the %zu synchronous standby(s) "
                 "of the last primary",
                 members.n);
        s->outcome = OUT_WAIT;
        return 0;
    }
    if (s->role != ROLE_REPLICA || (members.n == 1 && set_has(&members, a->cfg->node)))
        return 0;
    /* Let the others see my position, and see theirs. */
    if ((rc = publish(s, ROLE_REPLICA, st)) != 0)
        return rc;
    nap_ms(RV_AGENT_RACE_SETTLE_MS);
    uint64_t mine = st->received > st->current ? st->received : st->current;
    size_t rank = race_rank(s, mine, members.n > 0, &members);
    if (rank > 0) {
        log_info(COMP, "%zu replica(s) have more WAL: racing in %d ms", rank,
                 (int)rank * RV_AGENT_RACE_RANK_STEP_MS);
        nap_ms((int64_t)rank * RV_AGENT_RACE_RANK_STEP_MS);
    }
    return 0;
}

/* The race is won: before a standby is promoted, commits are made to wait
 * (SYNC_PENDING) until the first tick has published this primary's
 * synchronous set, so no commit is acknowledged that the last published
 * set does not hold. */
static int sync_pending(struct step *s)
{
    struct agent *a = s->a;
    const char *pending[] = {SYNC_PENDING};
    a->sync_pub_ok = false;
    a->sync_live.n = 0;
    if (a->cfg->synchronous == 0 || a->eng.ops->set_synchronous == NULL)
        return 0;
    int rc = a->eng.ops->set_synchronous(&a->eng, pending, 1, 1, PG_SYNC_FIRST, &s->err);
    if (rc == 0)
        set_add(&a->sync_live, SYNC_PENDING);
    return rc;
}

/* The leader key is gone: race for it if this node may lead. */
static void race(struct step *s, const char *marker)
{
    struct agent *a = s->a;
    struct engine_status st;
    json_t *lv = NULL;
    bool won = false;
    int rc = a->eng.ops->status(&a->eng, a->last_primary_lsn, &st, &s->err);
    if (rc != 0)
        goto out;
    /* PostgreSQL counts the lag in bytes, MariaDB in transactions. */
    bool trx = a->eng.type == ENGINE_MARIADB;
    int64_t max_lag =
        trx ? a->cfg->max_lag_on_failover_transactions : a->cfg->max_lag_on_failover_bytes;
    if (st.in_recovery && st.lag > (uint64_t)max_lag) {
        log_warn(COMP, "not racing for leadership: %" PRIu64 " %s behind (max %" PRId64 ")", st.lag,
                 trx ? "transactions" : "bytes", max_lag);
        s->outcome = OUT_WAIT;
        goto out;
    }
    if (st.diverged) {
        log_warn(COMP, "not racing for leadership: this node's history diverged");
        s->outcome = OUT_WAIT;
        goto out;
    }
    if (!st.running && strcmp(marker, "primary") != 0 && s->role == ROLE_REPLICA) {
        log_warn(COMP, "not racing for leadership: the server is not running");
        s->outcome = OUT_WAIT;
        goto out;
    }
    if (a->health_failed) {
        log_warn(COMP, "not racing for leadership: the health handler fails");
        s->outcome = OUT_WAIT;
        goto out;
    }
    rc = race_checks(s, &st);
    if (rc != 0 || s->outcome == OUT_WAIT)
        goto out;
    lv = leader_value(a, st.timeline, !st.in_recovery);
    if (lv == NULL) {
        rc = rv_error_set(&s->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = dcs_client_create(&won, &a->dcs, a->k_leader, lv, s->session, &s->err);
    if (rc != 0)
        goto out;
    if (!won) {
        log_info(COMP, "another node took the leader key");
        s->outcome = OUT_WAIT;
        goto out;
    }
    log_info(COMP, "took the leader key%s", st.in_recovery ? ": promoting" : "");
    rc = sync_pending(s);
    if (rc == 0)
        rc = a->eng.ops->start(&a->eng, &s->err);
    if (rc == 0)
        rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
    if (rc == 0 && st.in_recovery)
        rc = a->eng.ops->promote(&a->eng, &s->err);
    if (rc == 0)
        rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
    if (rc != 0) {
        release_leader(s);
        goto out;
    }
    json_decref(lv);
    lv = leader_value(a, st.timeline, true);
    if (lv == NULL) {
        rc = rv_error_set(&s->err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    /* Publish the new timeline; the key is attached to my session. */
    rc = dcs_client_put(NULL, &a->dcs, a->k_leader, lv, s->session, &s->err);
    if (rc == 0)
        rc = write_marker(a, ROLE_PRIMARY, &s->err);
    if (rc == 0)
        rc = publish(s, ROLE_PRIMARY, &st);
    if (rc != 0)
        goto out;
    log_info(COMP, "primary on timeline %u", st.timeline);
    a->upstream_node[0] = '\0';
    s->new_role = ROLE_PRIMARY;
    s->outcome = OUT_OK;
out:
    if (rc != 0)
        s->outcome = OUT_ERROR;
    json_decref(lv);
}

/* Follow the leader described by kv. */
static void follow(struct step *s, json_t *kv, const char *marker)
{
    struct agent *a = s->a;
    struct pg_primary p;
    struct engine_status st;
    char node[RV_AGENT_NAME_MAX + 1];
    int rc = 0;
    if (!leader_parse(kv, &p, node, sizeof(node))) {
        rc = rv_error_set(&s->err, RV_EPARSE, false, "the leader key holds no valid address");
        goto out;
    }
    if (strcmp(node, a->cfg->node) == 0) {
        /* My key from an earlier session: wait until it expires. */
        s->outcome = OUT_WAIT;
        goto out;
    }
    if (!leader_ready(kv)) {
        /* pg_rewind against a server still on the old timeline finds nothing
         * to do, and the node would then never stream from the new one. */
        log_info(COMP, "leader '%s' is still promoting; waiting", node);
        s->outcome = OUT_WAIT;
        goto out;
    }
    if (marker[0] == '\0') {
        log_info(COMP, "cloning from leader '%s' (%s:%d)", node, p.host, p.port);
        rc = a->eng.ops->clone(&a->eng, &p, &s->err);
        if (rc == 0)
            rc = a->eng.ops->make_standby(&a->eng, &p, &s->err);
    } else if (strcmp(marker, "recloning") == 0) {
        log_warn(COMP, "an earlier re-clone did not finish: cloning again from '%s'", node);
        rc = reclone(s, &p, false);
    } else if (!has_data(a)) {
        log_error(COMP, "the data directory '%s' holds no server: re-cloning from '%s'",
                  a->cfg->pg.data_dir, node);
        rc = reclone(s, &p, true);
    } else if (strcmp(marker, "primary") == 0) {
        log_info(COMP, "rejoining leader '%s' as a replica (rewind)", node);
        rc = a->eng.ops->rewind(&a->eng, &p, &s->err);
        if (rc == RV_ECONFLICT) {
            log_error(COMP, "rewind cannot help (%s): re-cloning from '%s'", s->err.msg, node);
            rc = reclone(s, &p, true);
        }
    } else {
        rc = a->eng.ops->make_standby(&a->eng, &p, &s->err);
    }
    if (rc != 0)
        goto out;
    rc = write_marker(a, ROLE_REPLICA, &s->err);
    if (rc != 0)
        goto out;
    rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
    if (rc == 0)
        rc = publish(s, ROLE_REPLICA, &st);
    if (rc != 0)
        goto out;
    a->upstream = p;
    snprintf(a->upstream_node, sizeof(a->upstream_node), "%s", node);
    log_info(COMP, "replica of '%s' (%s:%d)", node, p.host, p.port);
    s->new_role = ROLE_REPLICA;
    s->outcome = OUT_OK;
out:
    if (rc != 0)
        s->outcome = OUT_ERROR;
}

/* The preStart handler, once per agent process before the server is
 * first touched (initdb, clone, rewind, start). False: it failed, nothing
 * was done, and the decision is retried with backoff. */
static bool prestart(struct step *s, json_t *leader, const char *marker)
{
    struct agent *a = s->a;
    struct rv_error e = {0};
    struct pg_primary p;
    char node[RV_AGENT_NAME_MAX + 1], primary[RV_PG_HOST_MAX + 16] = "";
    if (leader != NULL && leader_parse(leader, &p, node, sizeof(node)))
        snprintf(primary, sizeof(primary), "%s:%d", p.host, p.port);
    struct hook_event info = {
        .role = strcmp(marker, "primary") == 0 || strcmp(marker, "replica") == 0 ? marker : "",
        .primary = primary};
    if (hook_run(a->cfg, AGENT_EV_PRESTART, &info, NULL, &e) != 0) {
        log_error(COMP, "not starting the server: %s", e.msg);
        s->outcome = OUT_WAIT;
        return false;
    }
    a->prestart_done = true;
    return true;
}

static void step_decide(struct step *s)
{
    struct agent *a = s->a;
    json_t *kv = NULL;
    char marker[32];
    read_marker(a, marker, sizeof(marker));
    if (dcs_client_get(&kv, NULL, &a->dcs, a->k_leader, &s->err) != 0) {
        s->outcome = OUT_ERROR;
        goto out;
    }
    if (!a->prestart_done && !prestart(s, kv, marker))
        goto out;
    if (kv == NULL && marker[0] == '\0')
        bootstrap_primary(s);
    else if (kv == NULL)
        race(s, marker);
    else
        follow(s, kv, marker);
out:
    json_decref(kv);
}

/* Read the leader's last published position (for the failover lag). */
static void note_primary_lsn(struct agent *a, const char *node)
{
    char key[RV_DCS_KEY_MAX + 1];
    json_t *kv = NULL;
    struct rv_error e = {0};
    uint64_t lsn = 0;
    if ((size_t)snprintf(key, sizeof(key), "%snodes/%s", a->k_prefix, node) >= sizeof(key))
        return;
    if (dcs_client_get(&kv, NULL, &a->dcs, key, &e) == 0 && kv != NULL) {
        const char *t = json_string_value(json_object_get(json_object_get(kv, "value"), "lsn"));
        if (t != NULL && a->eng.ops->pos_parse(&lsn, t) == 0 && lsn > a->last_primary_lsn)
            a->last_primary_lsn = lsn;
    }
    json_decref(kv);
}

/* Day-2 operations (ops.h) at the start of a tick; true when they ended
 * it. A promotion by switchover is recorded like a race won. */
static bool ops_hook(struct step *s, json_t *kv)
{
    struct agent *a = s->a;
    struct engine_status st;
    enum ops_change ch = OPS_NONE;
    struct ops_env env = {.cfg = a->cfg, .engine = &a->engine, .eng = &a->eng, .dcs = &a->dcs,
                          .session = s->session, .prefix = a->k_prefix, .leader_key = a->k_leader,
                          .abort = &a->abort_step, .st = &a->ops};
    int rc = ops_tick(&env, s->role == ROLE_PRIMARY, kv, &ch, &s->err);
    if (rc != 0 && ch == OPS_NONE) { /* nothing was done: the tick goes on */
        log_warn(COMP, "day-2 operations: %s", s->err.msg);
        memset(&s->err, 0, sizeof(s->err));
        return false;
    }
    if (ch == OPS_PROMOTED) {
        a->upstream_node[0] = '\0';
        a->sync_live.n = 0;
        a->sync_pub_ok = false;
        rc = write_marker(a, ROLE_PRIMARY, &s->err);
        if (rc == 0)
            rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
        if (rc == 0)
            rc = publish(s, ROLE_PRIMARY, &st);
        s->new_role = ROLE_PRIMARY;
    } else if (ch == OPS_HANDED_OFF) {
        s->new_role = ROLE_FENCED; /* the next decision rejoins the new primary */
    }
    if (rc != 0 || ch != OPS_NONE)
        s->outcome = rc == 0 ? OUT_OK : OUT_ERROR;
    return rc != 0 || ch != OPS_NONE;
}

static void step_tick(struct step *s)
{
    struct agent *a = s->a;
    struct engine_status st;
    json_t *kv = NULL;
    char marker[32];
    int rc = dcs_client_get(&kv, &s->leader_rev, &a->dcs, a->k_leader, &s->err);
    if (rc != 0)
        goto out;
    if (s->role == ROLE_PRIMARY) {
        if (kv == NULL || kv_session(kv) != s->session) {
            log_error(COMP, "the leader key is no longer mine: fencing");
            s->lost_leadership = true;
            goto out;
        }
        if (atomic_load(&a->abort_step))
            goto out;
        if (ops_hook(s, kv))
            goto done;
        rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
        if (rc == 0 && !st.running && !atomic_load(&a->abort_step)) {
            log_warn(COMP, "the primary's server is down: starting it");
            rc = a->eng.ops->start(&a->eng, &s->err);
            if (rc == 0)
                rc = a->eng.ops->status(&a->eng, 0, &st, &s->err);
        }
        if (rc == 0 && !atomic_load(&a->abort_step))
            check_health(s, ROLE_PRIMARY);
        if (rc == 0 && !atomic_load(&a->abort_step))
            rc = publish(s, ROLE_PRIMARY, &st);
        if (rc == 0 && !atomic_load(&a->abort_step)) {
            sync_clear(s);
            rc = sync_tick(s);
        }
        goto out;
    }
    /* A replica. */
    if (ops_hook(s, kv))
        goto done;
    if (kv == NULL) {
        read_marker(a, marker, sizeof(marker));
        log_warn(COMP, "the leader key is gone");
        race(s, marker);
        goto done;
    }
    struct pg_primary p;
    char node[RV_AGENT_NAME_MAX + 1];
    if (!leader_parse(kv, &p, node, sizeof(node))) {
        rc = rv_error_set(&s->err, RV_EPARSE, false, "the leader key holds no valid address");
        goto out;
    }
    if (strcmp(node, a->upstream_node) != 0 || strcmp(p.host, a->upstream.host) != 0 ||
        p.port != a->upstream.port) {
        read_marker(a, marker, sizeof(marker));
        follow(s, kv, marker);
        goto done;
    }
    note_primary_lsn(a, node);
    rc = a->eng.ops->status(&a->eng, a->last_primary_lsn, &st, &s->err);
    if (rc == 0 && st.diverged) {
        /* MariaDB: the primary refused this node's GTID position. */
        log_error(COMP, "this node's history diverged from '%s': re-cloning it", node);
        rc = reclone(s, &a->upstream, true);
        if (rc == 0)
            rc = write_marker(a, ROLE_REPLICA, &s->err);
        if (rc == 0)
            rc = a->eng.ops->status(&a->eng, a->last_primary_lsn, &st, &s->err);
    }
    if (rc == 0 && !st.running) {
        log_warn(COMP, "the replica's server is down: starting it");
        rc = a->eng.ops->make_standby(&a->eng, &a->upstream, &s->err);
        if (rc == 0)
            rc = a->eng.ops->status(&a->eng, a->last_primary_lsn, &st, &s->err);
    }
    if (rc == 0)
        check_health(s, ROLE_REPLICA);
    if (rc == 0)
        rc = publish(s, ROLE_REPLICA, &st);
out:
    s->outcome = rc == 0 ? OUT_OK : OUT_ERROR;
done:
    json_decref(kv);
}

static void step_fence(struct step *s)
{
    struct agent *a = s->a;
    struct rv_error e = {0};
    int rc = a->eng.ops->fence(&a->eng, NULL, &s->err);
    if (rc != 0) {
        log_error(COMP, "fencing failed: %s", s->err.msg);
        s->outcome = OUT_ERROR;
    } else {
        s->outcome = OUT_OK;
    }
    /* Give the key up at once if the reconciler can still hear us. */
    if (s->session != 0 && dcs_client_session_revoke(&a->dcs, s->session, &e) != 0)
        log_debug(COMP, "session revoke after fencing: %s", e.msg);
    s->new_role = ROLE_FENCED;
}

static void step_stop(struct step *s)
{
    struct agent *a = s->a;
    struct rv_error e = {0};
    /* A failing preStop or postStop is logged; the stop goes on. */
    run_hook(s, AGENT_EV_PRESTOP, s->role, ROLE_NONE, &e);
    if (a->engine_ok && a->eng.ops->stop(&a->eng, ENGINE_STOP_FAST, &s->err) != 0)
        log_error(COMP, "cannot stop the server: %s", s->err.msg);
    else
        run_hook(s, AGENT_EV_POSTSTOP, s->role, ROLE_NONE, &e);
    /* The server is down before the leader key goes. */
    if (s->session != 0 && dcs_client_session_revoke(&a->dcs, s->session, &e) != 0)
        log_warn(COMP, "cannot revoke the session (its keys expire with it): %s", e.msg);
    s->outcome = OUT_OK;
}

static void step_work(uv_work_t *req)
{
    struct step *s = req->data;
    struct agent *a = s->a;
    /* onChange runs at the start of the step after the change, once the
     * loop knows the new role: a primary's keepalive failure then cuts it
     * short (abort_step) instead of waiting for it. */
    if (a->change_to != ROLE_NONE && s->kind != STEP_FENCE) {
        struct rv_error e = {0};
        enum role to = a->change_to;
        a->change_to = ROLE_NONE;
        run_hook(s, AGENT_EV_ONCHANGE, to, a->change_from, &e);
    }
    switch (s->kind) {
    case STEP_START:
        step_start(s);
        break;
    case STEP_DECIDE:
        step_decide(s);
        break;
    case STEP_TICK:
        step_tick(s);
        break;
    case STEP_FENCE:
        step_fence(s);
        break;
    case STEP_STOP:
        step_stop(s);
        break;
    }
    if (s->new_role != ROLE_NONE && s->new_role != s->role) {
        a->change_from = a->change_to != ROLE_NONE ? a->change_from : s->role;
        a->change_to = s->new_role;
    }
}

/* --- loop side --- */

static void on_handle_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    if (--a->handles_open == 0 && a->done != NULL)
        a->done(a, a->exit_rc, a->payload);
}

static void finish(struct agent *a)
{
    if (a->stopped)
        return;
    a->stopped = true;
    log_info(COMP, "stopped");
    uv_close((uv_handle_t *)&a->step_timer, on_handle_closed);
    uv_close((uv_handle_t *)&a->ka_timer, on_handle_closed);
}

static void maybe_finish(struct agent *a)
{
    if (a->stop_done && !a->ka_busy && !a->watch_busy)
        finish(a);
}

static void watch_work(uv_work_t *req)
{
    struct watch *w = req->data;
    struct agent *a = w->a;
    json_t *ev = NULL, *kv = NULL;
    w->rc = dcs_client_watch(&ev, &w->rev, &a->dcs_watch, a->k_leader, w->after,
                             RV_AGENT_WATCH_WAIT_MS, &w->err);
    if (w->rc == RV_ESTALE) {
        /* History compacted: re-read, and let the tick look again. */
        w->rc = dcs_client_get(&kv, &w->rev, &a->dcs_watch, a->k_leader, &w->err);
        w->changed = w->rc == 0;
    } else if (w->rc == 0) {
        w->changed = json_array_size(ev) > 0;
    }
    json_decref(ev);
    json_decref(kv);
}

static void watch_start(struct agent *a);

static void watch_done(uv_work_t *req, int status)
{
    struct watch *w = req->data;
    struct agent *a = w->a;
    a->watch_busy = false;
    if (status != 0)
        w->rc = RV_ECANCELED;
    if (w->rc == 0 && w->rev > a->watch_rev)
        a->watch_rev = w->rev;
    if (w->rc == 0 && w->changed && !a->stopping && a->role == ROLE_REPLICA && !a->step_busy &&
        a->next == STEP_TICK && a->session != 0) {
        log_debug(COMP, "the leader key changed: checking now");
        schedule(a, STEP_TICK, 0);
    }
    if (w->rc != 0 && w->rc != RV_ECANCELED)
        log_debug(COMP, "watch: %s", w->err.msg);
    bool again = w->rc == 0;
    free(w);
    if (again)
        watch_start(a);
    maybe_finish(a);
}

/* Long-poll the leader key while a replica; a failed poll is retried
 * from the next tick. */
static void watch_start(struct agent *a)
{
    if (a->watch_busy || a->stopping || a->stopped || a->role != ROLE_REPLICA || a->session == 0 ||
        a->watch_rev == 0)
        return;
    struct watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return;
    w->a = a;
    w->after = a->watch_rev;
    w->req.data = w;
    a->watch_busy = true;
    if (uv_queue_work(a->loop, &w->req, watch_work, watch_done) != 0) {
        a->watch_busy = false;
        free(w);
    }
}

static int64_t backoff(struct agent *a)
{
    int64_t d = a->backoff_ms;
    a->backoff_ms =
        a->backoff_ms * 2 > RV_AGENT_BACKOFF_MAX_MS ? RV_AGENT_BACKOFF_MAX_MS : a->backoff_ms * 2;
    return d;
}

static void step_done(uv_work_t *req, int status)
{
    struct step *s = req->data;
    struct agent *a = s->a;
    enum step_kind kind = s->kind;
    a->step_busy = false;
    if (status != 0)
        s->outcome = OUT_ERROR;
    if (s->outcome == OUT_ERROR)
        log_warn(COMP, "%s", s->err.msg[0] ? s->err.msg : "step failed");
    if (kind == STEP_STOP) {
        free(s);
        /* The server is down (fast shutdown) or could not be stopped; either
         * way this agent no longer guards it. agent_free closes the pipe and
         * reaps the watchdog, off the loop. */
        if (a->wd_ok)
            watchdog_disarm(&a->wd);
        a->session = 0;
        a->stop_done = true;
        maybe_finish(a);
        return;
    }
    if (kind == STEP_START && s->outcome == OUT_OK) {
        a->session = s->new_session;
        a->session_lost = false;
        /* The session's life began no earlier than the step's dispatch. */
        a->last_ok_ms = s->dispatch_ms;
        a->last_sent_ms = s->dispatch_ms;
        memcpy(a->dcs_ka.token, a->dcs.token, sizeof(a->dcs_ka.token));
        memcpy(a->dcs_watch.token, a->dcs.token, sizeof(a->dcs_watch.token));
        log_info(COMP, "session %" PRIu64 " granted (ttl %" PRId64 " ms)", a->session,
                 a->cfg->ttl_ms);
    }
    if (s->new_role != ROLE_NONE && s->new_role != a->role) {
        log_info(COMP, "role: %s -> %s", role_name(a->role), role_name(s->new_role));
        a->role = s->new_role;
        /* A new primary's lease is fresh only when its last keepalive is. */
        if (a->role == ROLE_PRIMARY &&
            now_ms(a) - a->last_ok_ms <= a->cfg->ttl_ms / RV_AGENT_RENEW_DIV)
            wd_beat(a);
    }
    if (kind == STEP_FENCE) {
        a->fence_wanted = false;
        a->session = 0;
        a->session_lost = true;
    }
    /* A failed fence leaves the watchdog armed: it stops the server itself. */
    if (a->role != ROLE_PRIMARY && a->wd_ok && !(kind == STEP_FENCE && s->outcome == OUT_ERROR))
        watchdog_disarm(&a->wd);
    if (s->lost_leadership)
        a->fence_wanted = true;
    if (s->leader_rev > a->watch_rev)
        a->watch_rev = s->leader_rev;
    free(s);
    watch_start(a);

    if (a->stopping) {
        schedule(a, STEP_STOP, 0);
        return;
    }
    if (a->fence_wanted && a->role == ROLE_PRIMARY) {
        schedule(a, STEP_FENCE, 0);
        return;
    }
    atomic_store(&a->abort_step, false);
    if (a->session_lost || a->session == 0) {
        a->session = 0;
        schedule(a, STEP_START, kind == STEP_START ? backoff(a) : 0);
        return;
    }
    switch (kind) {
    case STEP_START:
        schedule(a, STEP_DECIDE, 0);
        break;
    case STEP_DECIDE:
        if (a->role == ROLE_PRIMARY || a->role == ROLE_REPLICA) {
            a->backoff_ms = RV_AGENT_BACKOFF_MIN_MS;
            schedule(a, STEP_TICK, a->cfg->tick_ms);
        } else {
            schedule(a, STEP_DECIDE, backoff(a));
        }
        break;
    default:
        if (a->role == ROLE_PRIMARY || a->role == ROLE_REPLICA)
            schedule(a, STEP_TICK, a->cfg->tick_ms);
        else
            schedule(a, STEP_DECIDE, backoff(a));
        break;
    }
}

static void dispatch(struct agent *a)
{
    struct step *s;
    if (a->step_busy || a->stopped)
        return;
    if (a->stopping)
        a->next = STEP_STOP;
    else if (a->fence_wanted && a->role == ROLE_PRIMARY)
        a->next = STEP_FENCE;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        log_error(COMP, "out of memory: retrying");
        uv_timer_start(&a->step_timer, on_step_timer, RV_AGENT_BACKOFF_MAX_MS, 0);
        return;
    }
    s->a = a;
    s->kind = a->next;
    if (s->kind == STEP_FENCE || s->kind == STEP_STOP)
        atomic_store(&a->abort_step, false);
    s->role = a->role;
    s->session = a->session;
    s->dispatch_ms = now_ms(a);
    s->new_role = ROLE_NONE;
    s->req.data = s;
    a->step_busy = true;
    if (uv_queue_work(a->loop, &s->req, step_work, step_done) != 0) {
        a->step_busy = false;
        free(s);
        log_error(COMP, "cannot queue work: retrying");
    }
}

static void on_step_timer(uv_timer_t *t)
{
    dispatch(t->data);
}

static void schedule(struct agent *a, enum step_kind kind, int64_t delay_ms)
{
    a->next = kind;
    uv_timer_start(&a->step_timer, on_step_timer, (uint64_t)(delay_ms > 0 ? delay_ms : 0), 0);
}

/* The primary's lease was just confirmed: restart the watchdog's deadline.
 * The watchdog counts from now, the agent from the keepalive's send time,
 * so the watchdog fires no earlier than the agent would fence itself. */
static void wd_beat(struct agent *a)
{
    if (a->wd_ok && a->role == ROLE_PRIMARY && !a->fence_wanted && !a->stop_done)
        watchdog_arm(&a->wd);
}

static void ka_work(uv_work_t *req)
{
    struct ka *k = req->data;
    k->rc = dcs_client_session_keepalive(&k->a->dcs_ka, k->session, &k->err);
}

static void ka_done(uv_work_t *req, int status)
{
    struct ka *k = req->data;
    struct agent *a = k->a;
    a->ka_busy = false;
    if (status != 0)
        k->rc = RV_ECANCELED;
    if (k->session == a->session && a->session != 0) {
        if (k->rc == 0) {
            if (k->sent_ms > a->last_ok_ms)
                a->last_ok_ms = k->sent_ms;
            if (a->role == ROLE_PRIMARY && k->sent_ms == a->last_ok_ms)
                wd_beat(a);
        } else if (k->rc == RV_ENOTFOUND || k->rc == RV_EAUTH) {
            log_error(COMP, "session %" PRIu64 " is gone: %s", a->session, k->err.msg);
            a->session_lost = true;
            a->session = 0;
            if (a->role == ROLE_PRIMARY) {
                a->fence_wanted = true;
                atomic_store(&a->abort_step, true);
            }
            if (!a->step_busy && !a->stopping)
                schedule(a, a->role == ROLE_PRIMARY ? STEP_FENCE : STEP_START, 0);
        } else {
            log_warn(COMP, "keepalive failed: %s", k->err.msg);
        }
    }
    free(k);
    maybe_finish(a);
}

static void on_ka_timer(uv_timer_t *t)
{
    struct agent *a = t->data;
    int64_t now = now_ms(a);
    int64_t renew = a->cfg->ttl_ms / RV_AGENT_RENEW_DIV;
    int64_t deadline = a->cfg->ttl_ms / RV_AGENT_DEADLINE_DIV;
    if (a->session == 0 || a->stopped)
        return;
    if (a->role == ROLE_PRIMARY && !a->fence_wanted && now - a->last_ok_ms >= deadline) {
        log_error(COMP,
                  "no keepalive acknowledged for %" PRId64 " ms (deadline %" PRId64 " ms): fencing",
                  now - a->last_ok_ms, deadline);
        a->fence_wanted = true;
        atomic_store(&a->abort_step, true);
        /* Stop renewing: the key must now expire on its own. */
        a->session = 0;
        if (!a->step_busy && !a->stopping)
            schedule(a, STEP_FENCE, 0);
        return;
    }
    if (a->ka_busy || now - a->last_sent_ms < renew)
        return;
    struct ka *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return;
    k->a = a;
    k->session = a->session;
    k->sent_ms = now;
    k->req.data = k;
    a->last_sent_ms = now;
    a->ka_busy = true;
    if (uv_queue_work(a->loop, &k->req, ka_work, ka_done) != 0) {
        a->ka_busy = false;
        free(k);
    }
}

/* --- lifecycle --- */

static int key_set(char *out, const char *prefix, const char *rest, struct rv_error *err)
{
    if ((size_t)snprintf(out, RV_DCS_KEY_MAX + 1, "%s%s", prefix, rest) > RV_DCS_KEY_MAX)
        return rv_error_set(err, RV_EINVAL, false, "key '%s%s' too long", prefix, rest);
    return 0;
}

/* The engine named by engine.type, behind a->eng. */
static int engine_setup(struct agent *a, const struct agent_config *cfg, struct rv_error *err)
{
    if (cfg->engine_type == ENGINE_MARIADB) {
        struct mdb_param *params = NULL;
        if (cfg->pg.n_params > 0) {
            params = calloc(cfg->pg.n_params, sizeof(*params));
            if (params == NULL)
                return rv_error_set(err, RV_ENOMEM, false, "out of memory");
            for (size_t i = 0; i < cfg->pg.n_params; i++) {
                params[i].name = cfg->pg.params[i].name;
                params[i].value = cfg->pg.params[i].value;
            }
        }
        struct mdb_engine_config mc;
        agent_config_mdb(&mc, cfg);
        mc.extra = params;
        mc.n_extra = cfg->pg.n_params;
        int rc = engine_init_mariadb(&a->eng, &mc, err);
        free(params);
        return rc;
    }
    struct pg_engine_config pc;
    agent_config_pg(&pc, cfg);
    int rc = pg_engine_init(&a->engine, &pc, err);
    if (rc == 0)
        engine_init_pg(&a->eng, &a->engine);
    return rc;
}

int agent_new(struct agent **out, uv_loop_t *loop, const struct agent_config *cfg,
              agent_done_fn done, void *payload, struct rv_error *err)
{
    struct agent *a = calloc(1, sizeof(*a));
    char node_rest[RV_AGENT_NAME_MAX + 8];
    int rc = 0;
    *out = NULL;
    if (a == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    a->lock_fd = -1;
    a->loop = loop;
    a->cfg = cfg;
    a->done = done;
    a->payload = payload;
    a->backoff_ms = RV_AGENT_BACKOFF_MIN_MS;
    snprintf(a->k_prefix, sizeof(a->k_prefix), "/clusters/%s/%s/", cfg->namespace_, cfg->cluster);
    snprintf(node_rest, sizeof(node_rest), "nodes/%s", cfg->node);
    if ((rc = key_set(a->k_leader, a->k_prefix, "leader", err)) != 0 ||
        (rc = key_set(a->k_init, a->k_prefix, "init", err)) != 0 ||
        (rc = key_set(a->k_state, a->k_prefix, "state", err)) != 0 ||
        (rc = key_set(a->k_node, a->k_prefix, node_rest, err)) != 0 ||
        (rc = key_set(a->k_sync, a->k_prefix, "sync", err)) != 0 ||
        (rc = key_set(a->k_nodes, a->k_prefix, "nodes/", err)) != 0)
        goto out;
    snprintf(a->p_token, sizeof(a->p_token), "%s/agent-token", cfg->state_dir);
    snprintf(a->p_marker, sizeof(a->p_marker), "%s/initialized", cfg->state_dir);
    snprintf(a->p_lock, sizeof(a->p_lock), "%s/agent.lock", cfg->state_dir);
    if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
        rc = rv_error_set(err, RV_EIO, false, "cannot create state dir '%s': %s", cfg->state_dir,
                          strerror(errno));
        goto out;
    }
    a->lock_fd = open(a->p_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (a->lock_fd < 0) {
        rc = rv_error_set(err, RV_EIO, false, "cannot open '%s': %s", a->p_lock, strerror(errno));
        goto out;
    }
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = rv_error_set(err, RV_EBUSY, false, "another agent holds '%s': stop it first",
                          a->p_lock);
        goto out;
    }
    rc = dcs_client_init(&a->dcs, cfg->reconciler_url, cfg->ttl_ms / RV_AGENT_STEP_CALL_DIV, err);
    if (rc == 0)
        rc =
            dcs_client_init(&a->dcs_ka, cfg->reconciler_url, cfg->ttl_ms / RV_AGENT_RENEW_DIV, err);
    if (rc == 0)
        rc = dcs_client_init(&a->dcs_watch, cfg->reconciler_url,
                             cfg->ttl_ms / RV_AGENT_STEP_CALL_DIV, err);
    a->dcs_watch.cancel = &a->cancel;
    if (rc != 0)
        goto out;
    rc = engine_setup(a, cfg, err);
    if (rc != 0)
        goto out;
    a->engine_ok = true;
    uv_timer_init(loop, &a->step_timer);
    uv_timer_init(loop, &a->ka_timer);
    a->step_timer.data = a;
    a->ka_timer.data = a;
    a->handles_open = 2;
    *out = a;
    a = NULL;
out:
    if (a != NULL) {
        if (a->lock_fd >= 0)
            close(a->lock_fd);
        dcs_client_release(&a->dcs);
        dcs_client_release(&a->dcs_ka);
        dcs_client_release(&a->dcs_watch);
        free(a);
    }
    return rc;
}

int agent_start(struct agent *a, struct rv_error *err)
{
    uint64_t every = (uint64_t)(a->cfg->ttl_ms / RV_AGENT_FENCE_CHECK_DIV);
    int rc;
    /* Before the first uv_queue_work: no thread exists yet to fork past. */
    if (!a->wd_ok) {
        rc = watchdog_start(&a->wd, a->cfg->pg.data_dir, a->cfg->ttl_ms / RV_AGENT_DEADLINE_DIV,
                            err);
        if (rc != 0)
            return rc;
        a->wd_ok = true;
    }
    if (uv_timer_start(&a->ka_timer, on_ka_timer, every, every) != 0)
        return rv_error_set(err, RV_EINTERNAL, false, "cannot start the keepalive timer");
    log_info(COMP, "node '%s' of '%s/%s' starting (ttl %" PRId64 " ms, tick %" PRId64 " ms)",
             a->cfg->node, a->cfg->namespace_, a->cfg->cluster, a->cfg->ttl_ms, a->cfg->tick_ms);
    schedule(a, STEP_START, 0);
    return 0;
}

void agent_stop(struct agent *a)
{
    if (a->stopping || a->stopped)
        return;
    a->stopping = true;
    atomic_store(&a->cancel, true);
    log_info(COMP, "stopping: fast shutdown, then releasing the session");
    if (!a->step_busy)
        schedule(a, STEP_STOP, 0);
}

void agent_free(struct agent *a)
{
    if (a == NULL)
        return;
    if (a->wd_ok)
        watchdog_release(&a->wd);
    if (a->engine_ok && a->eng.type == ENGINE_POSTGRESQL)
        pg_engine_release(&a->engine);
    if (a->engine_ok)
        engine_release(&a->eng);
    dcs_client_release(&a->dcs);
    dcs_client_release(&a->dcs_ka);
    dcs_client_release(&a->dcs_watch);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    free(a);
}
