/* config.h - reeve.yaml, the configuration of `reeve serve`.
 *
 * The file is parsed with lib/doc (so every node keeps file:line:col),
 * checked against the embedded specs-schema/config.schema.json, then
 * converted: defaults filled in, the listen address checked, relative paths
 * resolved against the file's directory, and secret references (env:NAME,
 * file:PATH) read. Every problem becomes a diagnostic such as
 *   reeve.yaml:14:13: error: forge.tokenRef: environment variable
 *   'REEVE_FORGE_TOKEN' is not set; export it, or use file:PATH
 * Secrets are held only in the struct, wiped by config_release(), and never
 * appear in a message.
 *
 * docs/configuration.md describes every key.
 */
#ifndef REEVE_CONFIG_H
#define REEVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "err.h"
#include "log.h"
#include "source.h"

struct config {
    char *path; /* the file as named */

    char *listen;     /* "127.0.0.1:8080" */
    char *public_url; /* without a trailing '/'; NULL: http://<listen> once bound */
    char *data_dir;   /* absolute, or relative to the working directory */

    enum log_level log_level;
    bool log_json;

    struct {
        char *url; /* as written, or a local path resolved against the file's directory */
        char *branch;
        unsigned poll_interval_s; /* 0: webhooks only (and one fetch at start) */
        enum source_auth auth;
        char *username; /* NULL: the forge's default */
        char *secret;   /* resolved token or password; NULL without auth */
    } repository;

    struct {
        enum source_forge kind; /* SOURCE_FORGE_NONE: no statuses, no webhooks */
        char *api_url;
        char *repository;
        char *token;          /* resolved; NULL with kind none */
        char *webhook_secret; /* resolved; NULL: no webhook route */
    } forge;

    struct {
        unsigned base_s;
        unsigned fast_s;
    } ticks;

    char *agent_url; /* where agents reach the agent API; NULL: the public URL */

    /* providers: the executables reeve starts and speaks PROTOCOL.md to */
    struct config_provider {
        char *name;
        char **argv; /* NULL-terminated; NULL: the default for the name (serve) */
        char **env;  /* NULL-terminated "NAME=value" additions; NULL when none */
        size_t nenv;
    } * providers;
    size_t nproviders;

    /* control rods of the executor; 0: the default from limits.h */
    struct {
        int max_concurrent;
        int per_provider;
        int per_cluster;
    } limits;

    /* passed to every agent's configuration */
    struct {
        unsigned ttl_ms;
        unsigned tick_ms;
    } agent;

    /* credentials: S3 credentials that specs name (credentialsRef) */
    struct config_credentials {
        char *name;
        char *access_key_id;     /* resolved */
        char *secret_access_key; /* resolved */
    } * credentials;
    size_t ncredentials;

    /* backupKeys: encryption keys that specs name (encryption.keyRef) */
    struct config_backup_key {
        char *name;
        char *hex; /* resolved: exactly 64 lowercase hex characters (32 bytes) */
    } * backup_keys;
    size_t nbackup_keys;
};

/* The credentials or backup key named name, or NULL. */
const struct config_credentials *config_credentials_find(const struct config *c, const char *name);
const struct config_backup_key *config_backup_key_find(const struct config *c, const char *name);

/* The provider named name, or NULL. */
const struct config_provider *config_provider_find(const struct config *c, const char *name);

void config_init(struct config *c);
/* Free what c holds, wiping secrets first; c is left initialised. */
void config_release(struct config *c);

/* Parse len bytes of YAML named path (for messages and for resolving
 * relative paths). Problems go to diags; the return is 0 when the config
 * is usable, RV_EINVAL when diags hold errors, RV_ENOMEM, or RV_EINTERNAL
 * when the embedded schema is broken (err says so). c must be initialised;
 * it is released first. diags is sorted (file order) on return. */
int config_parse(struct config *c, const char *path, const char *data, size_t len,
                 struct diag_list *diags, struct rv_error *err);
/* Read path (at most RV_CONFIG_FILE_MAX bytes) and parse it. An unreadable
 * file is RV_EIO with a diagnostic. */
int config_load(struct config *c, const char *path, struct diag_list *diags, struct rv_error *err);

/* The forge name statuses and webhooks use ("github"); "none". */
const char *config_forge_name(const struct config *c);

#endif
