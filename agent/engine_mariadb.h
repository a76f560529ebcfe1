/* engine_mariadb.h - the MariaDB (10.11) engine adapter driven by reeve-agent.
 *
 * A blocking API: the agent calls it from worker threads, never from the
 * loop. Server tools (mariadb-install-db, mariadb-backup, mbstream) run as
 * child processes with a deadline and bounded captured output; mariadbd is
 * started detached (its own session) and watched through its pid file; SQL
 * goes through libmariadb over the node's own unix socket, authenticated by
 * the unix_socket plugin as the agent's OS user (root or the server's user,
 * both created by mariadb-install-db).
 *
 * The engine owns three files in the data directory:
 *  - reeve.cnf, passed to every server and tool with --defaults-file (so
 *    /etc/mysql is never read): addresses, socket, server id, binary log
 *    and GTID settings, read_only and semi-synchronous settings. It is
 *    rewritten whole from the engine's state, and its settings are refused
 *    by mdb_engine_apply_parameters();
 *  - reeve-params.cnf, included from reeve.cnf: the parameters applied with
 *    mdb_engine_apply_parameters(), so they survive a restart;
 *  - xtrabackup_binlog_info, left by a clone: the GTID position of the copy.
 *
 * Roles: a primary runs with read_only OFF; a replica (and a fenced node)
 * runs with read_only ON written into reeve.cnf, so a restart never brings
 * back a writable server. Replication uses GTIDs (MASTER_USE_GTID=slave_pos)
 * with gtid_strict_mode, so a node whose history diverged is refused by its
 * primary rather than silently merged; the adapter reports that as
 * RV_ECONFLICT ("re-clone it").
 *
 * Lag: MariaDB has no byte position comparable across servers. Lag is the
 * number of transactions a replica is behind: for every replication domain
 * of the primary's gtid_current_pos, the primary's sequence number minus the
 * replica's (0 if the replica is ahead), summed over domains.
 *
 * One struct mdb_engine serves one data directory; calls on the same engine
 * must not run concurrently.
 */
#ifndef REEVE_ENGINE_MARIADB_H
#define REEVE_ENGINE_MARIADB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "limits.h"

struct mdb_param {
    const char *name;
    const char *value;
};

struct mdb_engine_config {
    const char *server_path;    /* NULL: /usr/sbin/mariadbd */
    const char *bin_dir;        /* tools; NULL: /usr/bin */
    const char *data_dir;       /* absolute */
    const char *socket_dir;     /* absolute; one per server */
    const char *log_file;       /* error log; NULL: "<data_dir>.err" */
    const char *listen_address; /* e.g. 127.0.60.1 */
    int port;
    /* Unique in the cluster; 0: derived from node_name (a 31-bit hash, so
     * give it explicitly when names could collide). */
    uint32_t server_id;
    const char *node_name;
    const char *replication_user;
    const char *replication_password; /* never logged */
    /* CIDR allowed to connect over TCP; NULL: 127.0.0.0/8. */
    const char *allowed_cidr;
    /* OS user the server and tools run as when the caller is root (MariaDB
     * refuses root); NULL: the caller's own user. */
    const char *os_user;
    /* Extra reeve.cnf lines (name = "value" is written for each). */
    const struct mdb_param *extra;
    size_t n_extra;
    /* Relax flushing (innodb_flush_log_at_trx_commit=2, sync_binlog=0):
     * tests only. */
    bool no_sync;
};

/* Where a replica replicates from. */
struct mdb_primary {
    char host[RV_MDB_HOST_MAX + 1];
    int port;
};

enum mdb_stop_mode {
    MDB_STOP_FAST,     /* SIGTERM: a clean shutdown */
    MDB_STOP_IMMEDIATE /* SIGKILL: InnoDB recovers at the next start */
};

/* A GTID position: one "domain-server-seq" per replication domain. */
struct mdb_gtid {
    uint32_t domain;
    uint32_t server_id;
    uint64_t seq;
};
struct mdb_gtid_pos {
    size_t n;
    struct mdb_gtid g[RV_MDB_GTID_DOMAINS_MAX];
};

struct mdb_status {
    bool running;     /* a mariadbd holds the data directory (pid file) */
    bool accepting;   /* a connection over the socket succeeded */
    bool read_only;   /* @@read_only */
    bool is_replica;  /* a replication connection is configured */
    bool io_running;  /* Slave_IO_Running = Yes */
    bool sql_running; /* Slave_SQL_Running = Yes */
    /* The primary refused this node's GTID position (error 1236) or
     * applying it broke strict GTID order (1950): its history diverged;
     * re-clone it. */
    bool diverged;
    bool semi_sync_primary;      /* Rpl_semi_sync_master_status: commits wait */
    unsigned semi_sync_replicas; /* Rpl_semi_sync_master_clients */
    bool semi_sync_replica;      /* Rpl_semi_sync_slave_status */
    int64_t seconds_behind;      /* Seconds_Behind_Master; -1: unknown */
    char master_host[RV_MDB_HOST_MAX + 1];
    int master_port;
    char gtid_current_pos[RV_MDB_GTID_POS_MAX + 1];
    char gtid_slave_pos[RV_MDB_GTID_POS_MAX + 1];
    char gtid_binlog_pos[RV_MDB_GTID_POS_MAX + 1];
    char gtid_io_pos[RV_MDB_GTID_POS_MAX + 1]; /* received by the IO thread */
    /* Transactions behind the primary_gtid given to mdb_engine_status() (see
     * the header comment); 0 when not given or caught up. */
    uint64_t lag_trx;
    int last_errno; /* Last_IO_Errno, else Last_SQL_Errno */
    char last_error[RV_MDB_LAST_ERROR_MAX + 1];
    /* Comma-separated parameters whose configured value waits for a
     * restart; cut to fit. */
    char pending_restart[RV_MDB_PENDING_MAX + 1];
};

struct mdb_engine {
    char server_path[RV_MDB_PATH_MAX + 1];
    char bin_dir[RV_MDB_PATH_MAX + 1];
    char data_dir[RV_MDB_PATH_MAX + 1];
    char socket_dir[RV_MDB_PATH_MAX + 1];
    char log_file[RV_MDB_PATH_MAX + 1];
    char listen_address[RV_MDB_HOST_MAX + 1];
    int port;
    uint32_t server_id;
    char node_name[RV_MDB_NAME_MAX + 1];
    char repl_user[RV_MDB_NAME_MAX + 1];
    char repl_password[RV_MDB_PASSWORD_MAX + 1];
    char grant_host[RV_MDB_HOST_MAX + 1]; /* allowed_cidr as "addr/mask" */
    char admin_user[RV_MDB_NAME_MAX + 1]; /* the caller's OS user */
    char tool_user[RV_MDB_NAME_MAX + 1];  /* the server's OS user */
    bool no_sync;
    bool run_as; /* switch to uid/gid in children, chown written files */
    uid_t uid;
    gid_t gid;
    char extra_conf[RV_MDB_CONF_EXTRA_MAX + 1]; /* rendered lines */
    /* State written into reeve.cnf (read back by mdb_engine_init). */
    bool read_only;
    bool semi_sync;
    uint32_t semi_sync_timeout_ms;
};

/* Fill e from cfg (copied; cfg may be freed after). Validates names, paths,
 * the port and the OS user; reads the role and semi-synchronous state back
 * from an existing reeve.cnf. */
int mdb_engine_init(struct mdb_engine *e, const struct mdb_engine_config *cfg,
                    struct rv_error *err);
/* Forget the password. Does not stop the server. */
void mdb_engine_release(struct mdb_engine *e);

/* Parse "host:port". */
int mdb_primary_parse(struct mdb_primary *p, const char *hostport, struct rv_error *err);

/* mariadb-install-db into an absent or empty data directory, write
 * reeve.cnf, start the server, and create the replication user. On success
 * the server is running as a writable primary. */
int mdb_engine_install(struct mdb_engine *e, struct rv_error *err);
/* Start mariadbd detached and wait until it accepts connections (bounded).
 * A running server is left alone. */
int mdb_engine_start(struct mdb_engine *e, struct rv_error *err);
/* Stop and wait (bounded); a fast stop that times out is turned into an
 * immediate one. A stopped server is left alone. */
int mdb_engine_stop(struct mdb_engine *e, enum mdb_stop_mode mode, struct rv_error *err);
/* Observe the server. A stopped or unreachable server is not an error: the
 * flags say so. primary_gtid (NULL or "": unknown) is the primary's
 * gtid_current_pos, used for lag_trx. */
int mdb_engine_status(struct mdb_engine *e, const char *primary_gtid, struct mdb_status *st,
                      struct rv_error *err);

/* Write a consistent physical backup of this running server as an xbstream
 * to out_fd (mariadb-backup --backup --stream=xbstream): run on the
 * primary's node, out_fd leading to the new replica's node. */
int mdb_engine_backup_stream(struct mdb_engine *e, int out_fd, struct rv_error *err);
/* Clone into an absent or empty data directory from an xbstream read from
 * in_fd (mbstream -x), prepare it, start the server read-only and make it a
 * replica of primary at the copy's GTID position. On success the server is
 * running as a replica. A failed clone removes what it extracted. */
int mdb_engine_clone_from(struct mdb_engine *e, const struct mdb_primary *primary, int in_fd,
                          struct rv_error *err);
/* The same, with the backup taken here from src (both servers on this
 * machine, as with the local provider): mariadb-backup | mbstream. */
int mdb_engine_clone_local(struct mdb_engine *e, const struct mdb_engine *src,
                           const struct mdb_primary *primary, struct rv_error *err);

/* Replicate from primary: read_only ON (in reeve.cnf and live), a stopped
 * server is started, then CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos
 * from this node's own GTID position and START SLAVE. A running writable
 * server is refused (RV_ECONFLICT): fence it first. A diverged history is
 * RV_ECONFLICT (not retryable): re-clone. An unreachable primary is not an
 * error: the replica keeps connecting and mdb_engine_status() shows it. */
int mdb_engine_make_replica(struct mdb_engine *e, const struct mdb_primary *primary,
                            struct rv_error *err);
/* Promote a replica: stop the IO thread, wait (bounded) until what it
 * received is applied, STOP SLAVE, RESET SLAVE ALL, read_only OFF (in
 * reeve.cnf and live). A writable primary is left alone. */
int mdb_engine_promote(struct mdb_engine *e, struct rv_error *err);
/* Stop taking writes for real: read_only ON in reeve.cnf, a fast shutdown
 * (immediate if that times out), then, when primary is given, start again
 * and replicate from it (mdb_engine_make_replica); else stay down. */
int mdb_engine_fence(struct mdb_engine *e, const struct mdb_primary *primary, struct rv_error *err);

/* Semi-synchronous replication on this (primary) node: commits wait after
 * the binary log sync (AFTER_SYNC) for one replica's acknowledgement, up to
 * timeout_ms (0: RV_MDB_SEMI_SYNC_TIMEOUT_DEFAULT_MS) before falling back to
 * asynchronous. Written to reeve.cnf (every node acknowledges as a replica
 * whenever its primary asks) and set live when running. */
int mdb_engine_set_semi_sync(struct mdb_engine *e, bool enabled, uint32_t timeout_ms,
                             struct rv_error *err);

/* A replica connected to this primary (SHOW SLAVE HOSTS: every node reports
 * its node name as report_host). MariaDB does not say which replica
 * acknowledged a semi-synchronous commit, only how many are semi-sync
 * clients (mdb_status.semi_sync_replicas). */
struct mdb_replica {
    char name[RV_MDB_NAME_MAX + 1];
    uint32_t server_id;
    int port;
};
/* The primary's connected replicas, at most cap of them, into out (*n of
 * them). */
int mdb_engine_replicas(struct mdb_engine *e, struct mdb_replica *out, size_t cap, size_t *n,
                        struct rv_error *err);

/* Apply server variables: each name is checked against
 * information_schema.SYSTEM_VARIABLES before anything changes (unknown,
 * session-only, malformed and reeve-managed names fail with RV_EINVAL);
 * dynamic ones are SET GLOBAL, all are kept in reeve-params.cnf for the next
 * start, and *restart_needed says whether a static one differs from the
 * running value. A value the server rejects fails at its SET GLOBAL
 * (RV_EINVAL) before the file is written. */
int mdb_engine_apply_parameters(struct mdb_engine *e, const struct mdb_param *params, size_t n,
                                bool *restart_needed, struct rv_error *err);

/* A libmariadb connection (MYSQL) to the node's own server over its unix
 * socket as admin_user (unix_socket authentication), with the engine's
 * connect and read timeouts; mysql_close() it. Returns 0, RV_ENOMEM or
 * RV_EUNAVAIL (retryable) "engine_mariadb: cannot connect to '<node>' on
 * '<socket>': ...". */
struct st_mysql;
int mdb_engine_connect(const struct mdb_engine *e, struct st_mysql **out, struct rv_error *err);

enum mdb_user_role {
    MDB_ROLE_READONLY, /* SELECT, SHOW VIEW */
    MDB_ROLE_READWRITE /* DML, DDL, routines, triggers, views */
};
/* Create or update a user for clients from allowed_cidr with role on one
 * database (created if absent). Runs on the primary (refused with
 * RV_ECONFLICT on a read-only node); replicas get it through the binary log.
 * The password is hashed on the server and never appears in the binary log
 * in the clear. */
int mdb_engine_ensure_user(struct mdb_engine *e, const char *name, const char *password,
                           enum mdb_user_role role, const char *database, struct rv_error *err);

/* Stop taking writes for a planned switchover: read_only ON (in reeve.cnf,
 * and live: it waits for the commits in flight), the final position
 * (@@gtid_binlog_pos) into final (cap bytes), then SHUTDOWN WAIT FOR ALL
 * SLAVES (the binary log dump threads are stopped last, after sending
 * everything to the connected replicas), and wait until the server is gone
 * (SIGTERM, then SIGKILL, past RV_MDB_STOP_TIMEOUT_MS). The server comes
 * back read-only: mdb_engine_start then mdb_engine_promote to roll back. */
int mdb_engine_stop_for_switchover(struct mdb_engine *e, char *final, size_t cap,
                                   struct rv_error *err);

/* A user reeve keeps (mdb_engine_sync_users). */
struct mdb_user {
    const char *name;
    const char *password;    /* never logged */
    enum mdb_user_role role; /* on the users' database */
    bool replication;        /* REPLICATION SLAVE, BINLOG MONITOR on *.* */
};
struct mdb_users_result {
    size_t created, altered, dropped, unchanged;
};
/* Make the users of a cluster what users[] says, on the primary (a
 * read-only node: RV_ECONFLICT, retryable). Users reeve creates are marked
 * by a row in reeve.managed_users (MariaDB has no comment on a user); a
 * listed user that exists unmarked is refused (RV_EINVAL), marked users no
 * longer listed are dropped. Each user gets role on `database`.* (created
 * if absent), from allowed_cidr; passwords are hashed by the server before
 * CREATE/ALTER USER, so the binary log (which carries all of it to the
 * replicas) never holds one in the clear. Every user is tried; the first
 * failure is returned. */
int mdb_engine_sync_users(struct mdb_engine *e, const char *database, const struct mdb_user *users,
                          size_t n, struct mdb_users_result *out, struct rv_error *err);

/* Parse a GTID position ("0-1-42,1-2-7"; "" is empty). RV_EPARSE or
 * RV_ELIMIT on failure. */
int mdb_gtid_parse(struct mdb_gtid_pos *out, const char *s);
/* Transactions replica is behind primary (see the header comment). */
uint64_t mdb_gtid_lag(const struct mdb_gtid_pos *primary, const struct mdb_gtid_pos *replica);

#endif
