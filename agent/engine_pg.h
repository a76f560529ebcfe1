/* engine_pg.h - the PostgreSQL engine adapter driven by reeve-agent.
 *
 * A blocking API: the agent calls it from worker threads, never from the
 * loop. Server tools (initdb, pg_ctl, pg_basebackup, pg_rewind) run as child
 * processes with a deadline and bounded captured output; SQL goes through
 * libpq over the node's own unix socket as the local superuser.
 *
 * The engine owns two files in the data directory: reeve.conf (included from
 * postgresql.conf; listen address, port, socket, replication and synchronous
 * settings, primary_conninfo) and reeve.pgpass (the replication password for
 * the walreceiver). reeve.conf is rewritten whole from the engine's state, so
 * the settings it holds are refused by pg_engine_apply_parameters().
 *
 * One struct pg_engine serves one data directory; calls on the same engine
 * must not run concurrently.
 */
#ifndef REEVE_ENGINE_PG_H
#define REEVE_ENGINE_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "limits.h"

struct pg_param {
    const char *name;
    const char *value;
};

struct pg_engine_config {
    const char *bin_dir;        /* e.g. /usr/lib/postgresql/15/bin */
    const char *data_dir;       /* absolute */
    const char *socket_dir;     /* absolute; one per server */
    const char *log_file;       /* server log; NULL: "<data_dir>.log" */
    const char *listen_address; /* e.g. 127.0.10.1 */
    int port;
    const char *superuser; /* local superuser, reached over the socket */
    const char *replication_user;
    const char *replication_password; /* never logged */
    const char *application_name;     /* the node name */
    /* CIDR allowed to connect over TCP (scram-sha-256); NULL: 127.0.0.0/8. */
    const char *allowed_cidr;
    /* OS user the server tools run as when the caller is root; NULL: the
     * caller's own user. Files the engine writes are chowned to it. */
    const char *os_user;
    /* Extra lines for reeve.conf ("name = 'value'" is written for each). */
    const struct pg_param *extra;
    size_t n_extra;
    /* Skip fsync in initdb, pg_basebackup and pg_rewind: tests only. */
    bool no_sync;
};

/* Where a standby streams from. slot may be empty (no replication slot). */
struct pg_primary {
    char host[RV_PG_HOST_MAX + 1];
    int port;
    char slot[RV_PG_NAME_MAX + 1];
};

enum pg_stop_mode { PG_STOP_FAST, PG_STOP_IMMEDIATE };
enum pg_sync_method { PG_SYNC_FIRST, PG_SYNC_ANY };

struct pg_status {
    bool running;     /* a postmaster holds the data directory */
    bool accepting;   /* a connection over the socket succeeded */
    bool in_recovery; /* a standby */
    bool streaming;   /* walreceiver is streaming */
    uint32_t timeline;
    uint64_t current_lsn; /* primary: insert position; standby: replayed */
    uint64_t receive_lsn; /* standby only; 0 otherwise */
    uint64_t replay_lsn;  /* standby only; 0 otherwise */
    /* primary_lsn given to pg_engine_status() minus replay_lsn, 0 when not a
     * standby, not given, or caught up. */
    uint64_t lag_bytes;
    /* Comma-separated names of parameters waiting for a restart; cut to fit. */
    char pending_restart[RV_PG_PENDING_MAX + 1];
};

struct pg_engine {
    char bin_dir[RV_PG_PATH_MAX + 1];
    char data_dir[RV_PG_PATH_MAX + 1];
    char socket_dir[RV_PG_PATH_MAX + 1];
    char log_file[RV_PG_PATH_MAX + 1];
    char listen_address[RV_PG_HOST_MAX + 1];
    int port;
    char superuser[RV_PG_NAME_MAX + 1];
    char repl_user[RV_PG_NAME_MAX + 1];
    char repl_password[RV_PG_PASSWORD_MAX + 1];
    char app_name[RV_PG_NAME_MAX + 1];
    char allowed_cidr[RV_PG_HOST_MAX + 1];
    bool no_sync;
    bool run_as; /* switch to uid/gid in children, chown written files */
    uid_t uid;
    gid_t gid;
    char extra_conf[RV_PG_CONF_EXTRA_MAX + 1]; /* rendered lines */
    /* State written into reeve.conf. */
    bool standby;
    struct pg_primary primary;
    char sync_names[RV_PG_SYNC_NAMES_MAX + 1]; /* synchronous_standby_names */
};

/* Fill e from cfg (copied; cfg may be freed after). Validates names, paths,
 * the port and the OS user. */
int pg_engine_init(struct pg_engine *e, const struct pg_engine_config *cfg, struct rv_error *err);
/* Forget the password. Does not stop the server. */
void pg_engine_release(struct pg_engine *e);

/* Parse "host:port" into p (slot left empty). */
int pg_primary_parse(struct pg_primary *p, const char *hostport, struct rv_error *err);

/* initdb with data checksums into an absent or empty data directory, write
 * reeve.conf and pg_hba.conf, start the server, and create the replication
 * user (SCRAM verifier computed client-side) with the grants pg_rewind needs.
 * On success the server is running as a primary. */
int pg_engine_initdb(struct pg_engine *e, struct rv_error *err);
/* A postmaster (the pid in postmaster.pid is alive) holds the data
 * directory. */
bool pg_engine_running(const struct pg_engine *e);
/* Start and wait until it accepts connections (bounded). A running server
 * is left alone. */
int pg_engine_start(struct pg_engine *e, struct rv_error *err);
/* Stop and wait (bounded). A stopped server is left alone. */
int pg_engine_stop(struct pg_engine *e, enum pg_stop_mode mode, struct rv_error *err);
/* Observe the server. A stopped or unreachable server is not an error: the
 * flags say so. primary_lsn (0: unknown) is used for lag_bytes. */
int pg_engine_status(struct pg_engine *e, uint64_t primary_lsn, struct pg_status *st,
                     struct rv_error *err);

/* pg_basebackup -X stream from the primary (using its slot when named) into
 * an absent or empty data directory, then configure it as a standby of it.
 * Leaves the server stopped. */
int pg_engine_clone_from(struct pg_engine *e, const struct pg_primary *primary,
                         struct rv_error *err);
/* Make a data directory filled from a base backup (agent/restore.c) this
 * node's, as a primary: write reeve.conf, pg_hba.conf and reeve.pgpass,
 * include reeve.conf from postgresql.conf, and drop the standby.signal a
 * backup taken on a replica carries. The server must be stopped. */
int pg_engine_adopt_restored(struct pg_engine *e, struct rv_error *err);
/* Point the node at primary: reeve.conf with primary_conninfo and slot,
 * standby.signal. A stopped server is started; a running standby is
 * reloaded (repointed). A running primary is refused (RV_ECONFLICT): fence
 * it first. */
int pg_engine_make_standby(struct pg_engine *e, const struct pg_primary *primary,
                           struct rv_error *err);
/* Promote a standby and wait until it leaves recovery, then checkpoint so
 * that the new timeline is visible to pg_rewind on other nodes. */
int pg_engine_promote(struct pg_engine *e, struct rv_error *err);
/* Stop the server (fast) if running, pg_rewind it from primary, then
 * pg_engine_make_standby(). When rewind cannot help the error is
 * RV_ECONFLICT (not retryable): the caller re-clones. An unreachable
 * primary gives RV_EUNAVAIL (retryable). */
int pg_engine_rewind(struct pg_engine *e, const struct pg_primary *primary, struct rv_error *err);
/* Stop taking writes for real: fast shutdown (immediate if that times out),
 * then rejoin primary by rewind when one is given, else stay down. */
int pg_engine_fence(struct pg_engine *e, const struct pg_primary *primary, struct rv_error *err);

/* synchronous_standby_names = 'FIRST|ANY n (a, b)', or '' when n is 0;
 * written to reeve.conf and reloaded; returns once the setting is live. */
int pg_engine_set_synchronous(struct pg_engine *e, const char *const *names, size_t n_names,
                              unsigned n, enum pg_sync_method method, struct rv_error *err);
/* A standby as the primary sees it (pg_stat_replication). */
struct pg_standby {
    char name[RV_PG_NAME_MAX + 1]; /* application_name: the node name */
    bool streaming;                /* state = 'streaming' */
    bool sync;                     /* sync_state = 'sync' or 'quorum' */
    uint64_t flush_lsn;            /* 0: not reported yet */
};

/* The primary's connected standbys, at most cap of them, into out (*n of
 * them). A server that is not a running primary has none. */
int pg_engine_standbys(struct pg_engine *e, struct pg_standby *out, size_t cap, size_t *n,
                       struct rv_error *err);
/* ALTER SYSTEM each parameter, reload, and report whether any of them needs
 * a restart to take effect (*restart_needed). Malformed, unknown and
 * reeve-managed names fail the call (RV_EINVAL) before anything changes; a
 * value the server rejects fails at its ALTER SYSTEM (RV_EINVAL), and the
 * parameters before it are written but not reloaded: call again with a
 * fixed list. */
int pg_engine_apply_parameters(struct pg_engine *e, const struct pg_param *params, size_t n,
                               bool *restart_needed, struct rv_error *err);
/* Create a physical replication slot (RV_EEXISTS if it is there already). */
int pg_engine_create_replication_slot(struct pg_engine *e, const char *name, struct rv_error *err);

/* A libpq connection (PGconn) to the local server over its unix socket
 * socket_dir and port, as user, to database postgres, connect_timeout 10 s,
 * with application_name app and, when statement_ms > 0, that
 * statement_timeout; server notices are dropped. Returns 0, RV_ENOMEM, or
 * RV_EUNAVAIL (retryable) "cannot connect to the local server: <why>". */
struct pg_conn;
int pg_connect_local(struct pg_conn **out, const char *socket_dir, int port, const char *user,
                     const char *app, int statement_ms, struct rv_error *err);

/* Append s to b as a configuration-file string: '...' with ' and \
 * doubled. Returns 0 or RV_ENOMEM. */
struct buf;
int pg_conf_quote(struct buf *b, const char *s);

/* Parse an LSN ("16/B374D848"); returns 0 or RV_EPARSE. */
int pg_lsn_parse(uint64_t *out, const char *s);

#endif
