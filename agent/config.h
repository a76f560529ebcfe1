/* config.h - reeve-agent's YAML configuration.
 *
 *   node: billing-0
 *   cluster: payments/billing          # <namespace>/<name>
 *   reconciler: http://127.0.0.1:7480  # the agent API
 *   registration_token: file:/etc/reeve/registration-token   # or env:NAME;
 *                                      # optional once the agent token is saved
 *   state_dir: /var/lib/reeve-agent    # agent token, lock file
 *   ttl_ms: 10000                      # leader TTL (optional)
 *   tick_ms: 1000                      # health tick (optional)
 *   max_lag_on_failover_bytes: 1048576 # optional (postgresql)
 *   max_lag_on_failover_transactions: 1000 # optional (mariadb)
 *   engine:
 *     type: postgresql                  # or mariadb (docs/engine-mariadb.md)
 *     bin_dir: /usr/lib/postgresql/15/bin  # mariadb: optional, /usr/bin
 *     data_dir: /var/lib/postgresql/15/billing
 *     socket_dir: /run/reeve/billing-0
 *     listen_address: 10.0.0.5
 *     port: 5432                        # mariadb: 3306 by default
 *     server_id: 7                      # mariadb only, optional
 *     replication_password: env:REEVE_REPL_PASSWORD
 *     superuser: postgres               # optional
 *     replication_user: replicator      # optional
 *     os_user: postgres                 # optional; used when run as root
 *     allowed_cidr: 10.0.0.0/24         # optional
 *     no_sync: false                    # optional, tests only
 *     parameters:                       # optional, server settings
 *       wal_retrieve_retry_interval: 1s
 *   synchronous: 1                      # optional; synchronous standbys
 *   handlers:                           # optional; each event optional
 *     preStart: {command: [/usr/local/bin/check-volume], timeout_ms: 5000}
 *     health: {command: [/usr/local/bin/probe]}
 *     onChange: {command: [/usr/local/bin/notify]}
 *     preStop: {command: [...]}
 *     postStop: {command: [...]}
 *
 * Every problem is a diagnostic with file:line:col. Secret references are
 * resolved at load; the resolved values are never logged.
 */
#ifndef REEVE_AGENT_CONFIG_H
#define REEVE_AGENT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "engine.h"
#include "engine_pg.h"
#include "err.h"
#include "limits.h"

/* Handler events (docs/agent.md "Handlers"). */
enum agent_event {
    AGENT_EV_PRESTART,
    AGENT_EV_HEALTH,
    AGENT_EV_ONCHANGE,
    AGENT_EV_PRESTOP,
    AGENT_EV_POSTSTOP,
    AGENT_EV_COUNT
};

/* The name of ev as written in the configuration ("preStart", ...). */
const char *agent_event_name(enum agent_event ev);

/* An external command for one event; argv NULL: built-in behaviour only. */
struct agent_handler {
    char **argv; /* NULL-terminated, argv[0] an absolute path */
    size_t argc;
    int64_t timeout_ms;
};

struct agent_config {
    char *config_path; /* absolute path of the file loaded (NULL if unresolvable) */
    char *node;
    char *namespace_;
    char *cluster;
    char *reconciler_url;     /* without a trailing '/' */
    char *registration_token; /* resolved; NULL when not given */
    char *state_dir;
    int64_t ttl_ms;
    int64_t tick_ms;
    int64_t max_lag_on_failover_bytes;
    int64_t max_lag_on_failover_transactions; /* MariaDB: lag is counted in transactions */
    enum engine_type engine_type;             /* engine.type */
    uint32_t server_id;                       /* MariaDB engine.server_id; 0: from the node name */
    int synchronous;                          /* synchronous standbys; 0: asynchronous */
    struct agent_handler handlers[AGENT_EV_COUNT];
    /* The engine's settings (both engines; superuser is PostgreSQL's only,
     * bin_dir is optional for MariaDB). */
    struct {
        char *bin_dir;
        char *data_dir;
        char *socket_dir;
        char *log_file; /* NULL: engine default */
        char *listen_address;
        int port;
        char *superuser;
        char *replication_user;
        char *replication_password; /* resolved */
        char *os_user;              /* NULL: the agent's own user */
        char *allowed_cidr;         /* NULL: engine default */
        bool no_sync;
        struct pg_param *params; /* engine.parameters, written into reeve.conf */
        size_t n_params;
    } pg;
};

/* Load and check path. On failure returns RV_EINVALID_SPEC (or RV_EIO,
 * RV_ENOMEM) with diagnostics in diags; c is released. */
int agent_config_load(struct agent_config *c, const char *path, struct diag_list *diags);
/* The same; no_secrets leaves secret references unresolved (their fields
 * NULL): for wal-push and wal-fetch, run by the server's OS user, which
 * may not read the agent's secret files. */
int agent_config_load_opts(struct agent_config *c, const char *path, bool no_secrets,
                           struct diag_list *diags);
/* Free what c holds, wiping secrets. */
void agent_config_release(struct agent_config *c);

/* The engine configuration of this node, pointing into cfg (nothing
 * copied): the server's OS user only when the agent runs as root. The
 * PostgreSQL one carries cfg's parameters; the MariaDB one none (the
 * caller sets extra). */
void agent_config_pg(struct pg_engine_config *pc, const struct agent_config *cfg);
void agent_config_mdb(struct mdb_engine_config *mc, const struct agent_config *cfg);

/* Resolve "env:NAME" or "file:/path" into a new string (trailing newline
 * dropped). RV_EINVAL for another form, RV_ENOTFOUND/RV_EIO when unreadable. */
int agent_secret_resolve(char **out, const char *ref, struct rv_error *err);

#endif
