/* users.h - a cluster's database users on the reconciler (docs/users.md).
 *
 * A spec lists users with roles and a password reference (sealed:, env: or
 * file:, docs/secrets.md). The reconciler keeps only the references (in
 * backup_specs, beside the backup policy) and opens them each time an agent
 * fetches its configuration (GET /v1/agents/config): the opened passwords go
 * into that answer only, never into a log, a plan, a status, another API
 * answer or state.db.
 *
 * The agent configuration's "users" member:
 *   [{"name":"app","roles":["readwrite"],"password":"<clear>","digest":"<hex>"}]
 * sorted by name, with "users_digest" beside it: the digest of the whole
 * set. Digests are HMAC-SHA256 under a key derived from the reconciler's
 * private seal key, so that equal digests mean an equal user (name, roles,
 * password) while a digest, which is shown in outputs and written to the
 * DCS, cannot be used to guess a password offline. The empty set has a
 * fixed digest (nothing secret in it), so dropping every user is a change
 * the agent applies and reports like any other.
 *
 * The primary's agent applies the set and reports it in the DCS key
 * /clusters/<ns>/<name>/users-applied:
 *   {"digest":"<users_digest>","node":"<node>","error":null|"<reason>",
 *    "retryable":bool,"notes":["..."]}
 * configure_users (runners.c) is done when that digest is the one expected.
 */
#ifndef REEVE_USERS_H
#define REEVE_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "crypto.h"
#include "err.h"
#include "limits.h"
#include "seal.h"
#include "spec.h"

/* The DCS key an agent reports the applied set under, below its cluster. */
#define USERS_APPLIED_KEY_SUFFIX "users-applied"

/* The users of c as stored beside the backup policy: a new array of
 * {"name","roles":[...],"password_ref"} (references only); NULL on out of
 * memory. */
json_t *users_row_json(const struct spec_cluster *c);

/* Open one password reference for scope ("namespace/name") into a new
 * NUL-terminated string (*out; wipe and free it). Failures are RV_EINVAL
 * with a reason that names the user and the reference's kind, never the
 * value: a sealed value sealed for another cluster or key, an unset or
 * empty environment variable, an unreadable or oversized file. keys may be
 * NULL when no sealed value is to be opened. */
int users_secret_open(char **out, const char *user, const char *ref, const char *scope,
                      const struct seal_keys *keys, struct rv_error *err);

/* The agent configuration's users from a stored row (an array as
 * users_row_json makes, or NULL for none): *out_users a new array sorted by
 * name, holding the clear passwords (release it with users_json_free), and
 * digest the digest of the set. RV_EINVAL with the plain reason when a
 * reference does not open; RV_EINVAL too when users are listed and keys
 * has no private key (the digests need it). */
int users_config_json(json_t **out_users, char digest[CRYPTO_SHA256_HEX_SIZE], const json_t *row,
                      const char *scope, const struct seal_keys *keys, struct rv_error *err);

/* Overwrite the passwords of a users array, then release it. NULL is a
 * no-op. */
void users_json_free(json_t *j);

/* "/clusters/<ns>/<name>/users-applied" for cluster "ns/name" into out. */
int users_applied_key(char *out, size_t cap, const char *cluster);

/* An agent's report, parsed. */
struct users_applied {
    char digest[CRYPTO_SHA256_HEX_SIZE];
    char node[RV_NAME_MAX + 1];
    char error[RV_ERROR_MSG_MAX / 2]; /* "" when none */
    bool retryable;
    char notes[RV_ERROR_MSG_MAX / 2]; /* joined with "; ", "" when none */
};

/* Parse the DCS value of the users-applied key. RV_EPARSE when it is not
 * a report. */
int users_applied_parse(struct users_applied *out, const char *text, struct rv_error *err);

#endif
