/* users.h - reeve-agent applies a cluster's database users on its primary
 * (docs/users.md).
 *
 * The users come from the agent configuration (GET /v1/agents/config,
 * reconciler/users.h): [{"name","roles":[...],"password","digest"}] and
 * "users_digest" for the set. On PostgreSQL, for each user:
 *   - absent: CREATE ROLE ... LOGIN PASSWORD '<SCRAM-SHA-256 verifier>' and
 *     COMMENT ON ROLE ... IS 'managed by reeve', in one transaction. The
 *     verifier is computed client-side (libpq), so the clear password never
 *     reaches the server: not its log (even with log_statement=all), not
 *     pg_stat_statements;
 *   - present and created by reeve: ALTER ROLE ... PASSWORD when the stored
 *     verifier does not match the password (checked client-side with the
 *     stored salt and iteration count), and the attributes and memberships
 *     set to what the roles say;
 *   - present and not created by reeve: refused (reeve never takes over, and
 *     so never drops, a role it did not create).
 * Roles: readonly -> pg_read_all_data; readwrite -> pg_read_all_data and
 * pg_write_all_data; admin -> CREATEDB CREATEROLE plus both (never
 * SUPERUSER); replication -> REPLICATION; any other name: that role, when it
 * exists, is granted as is (never revoked by reeve).
 * Roles marked 'managed by reeve' that are no longer listed are dropped;
 * one that still owns objects or holds privileges somewhere is not (no
 * REASSIGN OWNED / DROP OWNED: that would move or destroy data): it is made
 * NOLOGIN and kept, and a note says how to finish.
 * Names reserved for PostgreSQL and reeve (pg_*, reeve*, postgres, the
 * agent's superuser and replication user) are refused.
 *
 * MariaDB (users_apply_mdb, agent/users_mariadb.c): every user gets its
 * role on one database named after the cluster ('-' as '_'), created if
 * absent: readonly -> SELECT, SHOW VIEW; readwrite and admin -> the
 * adapter's read-write set (DML and DDL on that database); replication ->
 * REPLICATION SLAVE, BINLOG MONITOR globally. MariaDB has no comment on a
 * user: reeve marks the users it creates with a row in reeve.managed_users
 * (replicated with the rest); the same rules follow from that mark. The
 * password is hashed by the server (SELECT PASSWORD(), not logged) before
 * CREATE/ALTER USER, so the binary log never holds it in the clear.
 */
#ifndef REEVE_AGENT_USERS_H
#define REEVE_AGENT_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "limits.h"

/* The server to apply to: the local superuser over the unix socket. */
struct users_pg_target {
    const char *socket_dir;
    int port;
    const char *superuser;
    const char *replication_user; /* reserved too; may be NULL */
};

struct users_result {
    size_t created, altered, dropped, kept, unchanged;
    char notes[RV_USERS_NOTES_MAX][RV_ERROR_MSG_MAX / 2];
    size_t nnotes;
};

/* Apply users (the configuration's "users" array, passwords in the clear)
 * to the server at t. A server in recovery is RV_ECONFLICT (retryable):
 * only the primary applies; replicas get the roles by replication. Every
 * user is tried; the return is 0 when all are as listed (out->notes may
 * say what was kept), or the first failure (RV_EINVAL for one that needs a
 * change to the spec or the server, not retryable; RV_EUNAVAIL and RV_EDB
 * retryable). Passwords are never logged or put in a message. */
int users_apply_pg(struct users_result *out, const struct users_pg_target *t, const json_t *users,
                   struct rv_error *err);

/* The same on the MariaDB server of the agent configured by cfg (users_sync
 * passes its configuration). A read-only server is RV_ECONFLICT
 * (retryable). */
struct agent_config;
int users_apply_mdb(struct users_result *out, const struct agent_config *cfg, const json_t *users,
                    struct rv_error *err);
/* The database a MariaDB cluster's users get their role on: the cluster's
 * name with '-' as '_'. */
void users_mdb_database(char *out, size_t cap, const char *cluster);

/* Whether the SCRAM-SHA-256 verifier (as pg_authid.rolpassword holds it)
 * was made from password. False for another form or a non-ASCII password
 * (which the server normalises first: reeve then sets it again). */
bool users_scram_matches(const char *verifier, const char *password);

/* The one call in the backup thread (backupd.c), each poll: when the
 * stored configuration's users_digest is not the one applied on this node,
 * and this node is the primary, apply it; then report the outcome in the
 * DCS key /clusters/<ns>/<name>/users-applied (again until the reconciler
 * has it). Remembers what it applied and reported in backup.db (state
 * users_applied, users_report, users_reported). A node that is not a
 * primary (PostgreSQL or MariaDB) does nothing. */
struct backup_db;
struct dcs_client;
void users_sync(const struct agent_config *cfg, struct backup_db *db, const json_t *config,
                struct dcs_client *http);

#endif
