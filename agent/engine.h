/* engine.h - the autopilot's engine interface: what agent.c asks of a
 * database server, whichever engine runs it (docs/agent.md, "Engines").
 *
 * A small table of operations (struct engine_ops) implemented by thin
 * wrappers over engine_pg (PostgreSQL) and engine_mariadb (MariaDB). The
 * autopilot's rules (leader key, fencing, failover race, rejoin) are the
 * same for both; what differs is hidden here:
 *
 *  - a position is one number comparable across the nodes of a cluster: a
 *    WAL LSN for PostgreSQL, the GTID sequence number (summed over
 *    replication domains) for MariaDB, where every node writes domain 0 in
 *    strict mode, so it counts transactions; `lag` is in bytes for
 *    PostgreSQL and in transactions for MariaDB;
 *  - "in recovery" is a standby for PostgreSQL and a read-only server for
 *    MariaDB (replicas and fenced nodes);
 *  - clone: pg_basebackup for PostgreSQL; for MariaDB a logical copy over
 *    the SQL protocol (mariadb-dump from the primary into a fresh local
 *    server), because mariadb-backup must run on the primary's machine;
 *  - rewind: pg_rewind for PostgreSQL; for MariaDB a restart read-only and
 *    replication from the node's own GTID position, refused by the primary
 *    (RV_ECONFLICT, "re-clone") when the node's history diverged.
 *
 * Blocking calls, from worker threads only; calls on one engine must not run
 * concurrently (the agent's single step in flight guarantees it).
 */
#ifndef REEVE_ENGINE_H
#define REEVE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine_mariadb.h"
#include "engine_pg.h"
#include "err.h"
#include "limits.h"

enum engine_type { ENGINE_POSTGRESQL, ENGINE_MARIADB };
enum engine_stop { ENGINE_STOP_FAST, ENGINE_STOP_IMMEDIATE };

struct engine_status {
    bool running;     /* a server holds the data directory */
    bool accepting;   /* it answers over its socket */
    bool in_recovery; /* a standby (PostgreSQL), read-only (MariaDB) */
    bool streaming;   /* receiving from a primary */
    /* The primary refused this node's position: its history diverged and
     * only a re-clone helps (MariaDB; always false for PostgreSQL, whose
     * rewind reports it). */
    bool diverged;
    uint32_t timeline; /* PostgreSQL timeline; 1 for MariaDB */
    uint64_t current;  /* written (primary) or applied (replica) */
    uint64_t received; /* what a promotion would apply: >= current */
    /* Behind the primary position given to status(), 0 when unknown or
     * caught up: bytes (PostgreSQL), transactions (MariaDB). */
    uint64_t lag;
    /* The position as the engine spells it: an LSN, a GTID position. */
    char position[RV_ENGINE_POSITION_MAX + 1];
};

struct engine;

struct engine_ops {
    const char *name; /* "postgresql", "mariadb": the report's engine */
    /* A new cluster's first server, running writable on return. */
    int (*bootstrap)(struct engine *e, struct rv_error *err);
    int (*start)(struct engine *e, struct rv_error *err);
    int (*stop)(struct engine *e, enum engine_stop mode, struct rv_error *err);
    int (*status)(struct engine *e, uint64_t primary_pos, struct engine_status *st,
                  struct rv_error *err);
    /* Fill an absent or empty data directory from primary; make_standby
     * follows it. */
    int (*clone)(struct engine *e, const struct pg_primary *primary, struct rv_error *err);
    /* Replicate from primary (start a stopped server, repoint a running
     * replica); a running writable server is RV_ECONFLICT. */
    int (*make_standby)(struct engine *e, const struct pg_primary *primary, struct rv_error *err);
    int (*promote)(struct engine *e, struct rv_error *err);
    /* Stop taking writes for real (the server goes down; with primary it
     * comes back as its replica). */
    int (*fence)(struct engine *e, const struct pg_primary *primary, struct rv_error *err);
    /* Rejoin a former primary; RV_ECONFLICT: re-clone it. */
    int (*rewind)(struct engine *e, const struct pg_primary *primary, struct rv_error *err);
    /* Synchronous replication by name (PostgreSQL only; NULL otherwise). */
    int (*set_synchronous)(struct engine *e, const char *const *names, size_t n_names, unsigned n,
                           enum pg_sync_method method, struct rv_error *err);
    int (*standbys)(struct engine *e, struct pg_standby *out, size_t cap, size_t *n,
                    struct rv_error *err);
    /* The data directory holds a server. */
    bool (*has_data)(const struct engine *e);
    /* Positions as published in the DCS (node keys' lsn and received). */
    int (*pos_parse)(uint64_t *out, const char *text);
    void (*pos_text)(char *out, size_t cap, uint64_t pos);
};

struct engine {
    const struct engine_ops *ops;
    enum engine_type type;
    struct pg_engine *pg;                    /* PostgreSQL: borrowed (the agent's) */
    struct mdb_engine *mdb;                  /* MariaDB: owned */
    char version[RV_ENGINE_VERSION_MAX + 1]; /* "" until a server answered */
};

/* Wrap the agent's PostgreSQL engine (borrowed, must outlive e). */
void engine_init_pg(struct engine *e, struct pg_engine *pg);
/* Initialize a MariaDB engine from cfg (see mdb_engine_init). */
int engine_init_mariadb(struct engine *e, const struct mdb_engine_config *cfg,
                        struct rv_error *err);
/* Forget secrets; does not stop the server. NULL ops: a no-op. */
void engine_release(struct engine *e);
/* The engine type named in a configuration ("postgresql", "mariadb"). */
int engine_type_parse(enum engine_type *out, const char *name);

#endif
