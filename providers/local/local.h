/* local.h - the `local` provider's instances: PostgreSQL servers run by
 * reeve-agent processes on this machine, one loopback address each.
 *
 * State lives in <root>/state.json (instances and idempotency keys), written
 * to a temporary file, fsynced and renamed, and always before an agent is
 * started, so a crash never leaves an agent the state does not know of, nor
 * two instances for one key. Each instance has <root>/instances/<id>/ with
 * agent.json, the two secret files, the agent's state dir, the data dir,
 * usually its socket dir, and the logs.
 *
 * Errors are RV_E* codes; main.c maps them to the protocol's codes
 * (NOTFOUND not_found, INVAL invalid, CONFLICT conflict, LIMIT quota,
 * UNAVAIL unavailable, TIMEOUT timeout, anything else internal).
 */
#ifndef REEVE_LOCAL_H
#define REEVE_LOCAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "err.h"
#include "limits.h"

struct local {
    char root[RV_LOCAL_PATH_MAX / 2]; /* short enough for every path under it */
    char state_path[RV_LOCAL_PATH_MAX];
    char agent_bin[RV_LOCAL_PATH_MAX];
    char user[64]; /* the agent and PostgreSQL run as this user */
    uid_t uid;
    gid_t gid;
    bool run_as;     /* we are root and switch to uid/gid for children */
    unsigned net[3]; /* REEVE_LOCAL_NET, e.g. 127.0.100 */
    json_t *images;  /* {engine: {version: bin_dir}} */
    json_t *state;   /* {next_id, instances: {id: record}, keys: {key: entry}} */
};

/* Read the environment (REEVE_LOCAL_ROOT, REEVE_AGENT_BIN, REEVE_LOCAL_USER,
 * REEVE_LOCAL_NET, REEVE_LOCAL_IMAGES), load the state file and log what
 * each instance's agent is doing. On failure l is released. */
int local_init(struct local *l, struct rv_error *err);
void local_release(struct local *l);

/* The describe object (new reference). */
json_t *local_describe(const struct local *l);

/* The methods of PROTOCOL.md section 5; params are validated here. *out is
 * a new reference to the result object. key is the idempotency key (NULL
 * for list). deadline_ms is the time the call has. */
int local_list(json_t **out, struct local *l, const json_t *params, struct rv_error *err);
int local_create(json_t **out, struct local *l, const json_t *params, const char *key,
                 struct rv_error *err);
int local_delete(json_t **out, struct local *l, const json_t *params, const char *key,
                 int64_t deadline_ms, struct rv_error *err);
int local_resize(json_t **out, struct local *l, const json_t *params, const char *key,
                 struct rv_error *err);
/* upgrade_instance {id, version} (capability "upgrade"): restart the
 * instance's agent and server with the catalog's binaries of version. */
int local_upgrade(json_t **out, struct local *l, const json_t *params, const char *key,
                  int64_t deadline_ms, struct rv_error *err);

#endif
