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
 *   max_lag_on_failover_bytes: 1048576 # optional
 *   engine:
 *     type: postgresql
 *     bin_dir: /usr/lib/postgresql/15/bin
 *     data_dir: /var/lib/postgresql/15/billing
 *     socket_dir: /run/reeve/billing-0
 *     listen_address: 10.0.0.5
 *     port: 5432
 *     replication_password: env:REEVE_REPL_PASSWORD
 *     superuser: postgres               # optional
 *     replication_user: replicator      # optional
 *     os_user: postgres                 # optional; used when run as root
 *     allowed_cidr: 10.0.0.0/24         # optional
 *     no_sync: false                    # optional, tests only
 *     parameters:                       # optional, server settings
 *       wal_retrieve_retry_interval: 1s
 *
 * Every problem is a diagnostic with file:line:col. Secret references are
 * resolved at load; the resolved values are never logged.
 */
#ifndef REEVE_AGENT_CONFIG_H
#define REEVE_AGENT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "engine_pg.h"
#include "err.h"
#include "limits.h"

struct agent_config {
    char *node;
    char *namespace_;
    char *cluster;
    char *reconciler_url;     /* without a trailing '/' */
    char *registration_token; /* resolved; NULL when not given */
    char *state_dir;
    int64_t ttl_ms;
    int64_t tick_ms;
    int64_t max_lag_on_failover_bytes;
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
/* Free what c holds, wiping secrets. */
void agent_config_release(struct agent_config *c);

/* Resolve "env:NAME" or "file:/path" into a new string (trailing newline
 * dropped). RV_EINVAL for another form, RV_ENOTFOUND/RV_EIO when unreadable. */
int agent_secret_resolve(char **out, const char *ref, struct rv_error *err);

#endif
