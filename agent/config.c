/* config.c - reeve-agent's YAML configuration (see config.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "doc.h"

struct conv {
    const char *file;
    struct diag_list *diags;
    int rc;          /* first RV_ENOMEM, else RV_EINVALID_SPEC once anything is wrong */
    bool no_secrets; /* leave secret references unresolved (wal-push, wal-fetch) */
};

static void bad(struct conv *cv, const struct doc_node *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void bad(struct conv *cv, const struct doc_node *at, const char *path, const char *fmt, ...)
{
    char msg[RV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (diag_add(cv->diags, DIAG_ERROR, cv->file, at ? at->line : 1, at ? at->col : 1, path, "%s",
                 msg) != 0)
        cv->rc = RV_ENOMEM;
    else if (cv->rc == 0)
        cv->rc = RV_EINVALID_SPEC;
}

static bool known(struct conv *cv, const struct doc_node *map, const char *where,
                  const char *const *names)
{
    bool ok = true;
    for (size_t i = 0; i < map->u.map.len; i++) {
        const struct doc_pair *p = &map->u.map.items[i];
        size_t j = 0;
        while (names[j] != NULL && strcmp(names[j], p->key->u.str.s) != 0)
            j++;
        if (names[j] == NULL) {
            char path[160];
            snprintf(path, sizeof(path), "%s%s%s", where, where[0] ? "." : "", p->key->u.str.s);
            bad(cv, p->key, path, "unknown field");
            ok = false;
        }
    }
    return ok;
}

/* A string field; NULL (and a diagnostic when required) when absent. */
static char *str_field(struct conv *cv, const struct doc_node *map, const char *key,
                       const char *path, bool required, size_t max)
{
    const struct doc_node *n = doc_map_get(map, key);
    char *s = NULL;
    if (n == NULL) {
        if (required)
            bad(cv, map, path, "required field is missing");
        return NULL;
    }
    if (n->kind != DOC_STRING) {
        bad(cv, n, path, "must be a string, not %s", doc_kind_name(n->kind));
        return NULL;
    }
    if (n->u.str.len == 0 || n->u.str.len > max) {
        bad(cv, n, path, "must be 1 to %zu characters", max);
        return NULL;
    }
    s = strdup(n->u.str.s);
    if (s == NULL)
        cv->rc = RV_ENOMEM;
    return s;
}

static int64_t int_field(struct conv *cv, const struct doc_node *map, const char *key,
                         const char *path, int64_t def, int64_t min, int64_t max)
{
    const struct doc_node *n = doc_map_get(map, key);
    if (n == NULL)
        return def;
    if (n->kind != DOC_INT) {
        bad(cv, n, path, "must be an integer, not %s", doc_kind_name(n->kind));
        return def;
    }
    if (n->u.i < min || n->u.i > max) {
        bad(cv, n, path, "must be between %lld and %lld (got %lld)", (long long)min, (long long)max,
            (long long)n->u.i);
        return def;
    }
    return n->u.i;
}

static bool name_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '.')
        return false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == '.'))
            return false;
    }
    return true;
}

static char *read_small_file(const char *path, struct rv_error *err, int *rc)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t n = 0;
    *rc = 0;
    if (f == NULL) {
        *rc = rv_error_set(err, errno == ENOENT ? RV_ENOTFOUND : RV_EIO, false,
                           "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    s = malloc(RV_AGENT_SECRET_FILE_MAX + 1);
    if (s == NULL) {
        *rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    n = fread(s, 1, RV_AGENT_SECRET_FILE_MAX + 1, f);
    if (ferror(f) || n > RV_AGENT_SECRET_FILE_MAX) {
        *rc = rv_error_set(err, RV_EIO, false, "cannot read '%s': unreadable or over %d bytes",
                           path, RV_AGENT_SECRET_FILE_MAX);
        goto out;
    }
    s[n] = '\0';
out:
    if (f != NULL)
        fclose(f);
    if (*rc != 0 && s != NULL) {
        explicit_bzero(s, RV_AGENT_SECRET_FILE_MAX + 1);
        free(s);
        s = NULL;
    }
    return s;
}

int agent_secret_resolve(char **out, const char *ref, struct rv_error *err)
{
    int rc = 0;
    char *s = NULL;
    *out = NULL;
    if (strncmp(ref, "env:", 4) == 0) {
        const char *v = getenv(ref + 4);
        if (v == NULL) {
            rc = rv_error_set(err, RV_ENOTFOUND, false, "environment variable '%s' is not set",
                              ref + 4);
            goto out;
        }
        s = strdup(v);
        if (s == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
    } else if (strncmp(ref, "file:", 5) == 0) {
        s = read_small_file(ref + 5, err, &rc);
        if (rc != 0)
            goto out;
    } else {
        rc =
            rv_error_set(err, RV_EINVAL, false, "a secret reference is 'env:NAME' or 'file:/path'");
        goto out;
    }
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
    if (len == 0) {
        rc = rv_error_set(err, RV_EINVAL, false, "the secret '%s' is empty", ref);
        goto out;
    }
    *out = s;
    s = NULL;
out:
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
    return rc;
}

static char *secret_field(struct conv *cv, const struct doc_node *map, const char *key,
                          const char *path, bool required)
{
    struct rv_error err = {0};
    char *ref = str_field(cv, map, key, path, required, RV_AGENT_URL_MAX);
    char *s = NULL;
    if (ref == NULL || cv->no_secrets) {
        free(ref);
        return NULL;
    }
    if (agent_secret_resolve(&s, ref, &err) != 0) {
        if (err.code == RV_ENOMEM)
            cv->rc = RV_ENOMEM;
        else
            bad(cv, doc_map_get(map, key), path, "%s", err.msg);
    }
    free(ref);
    return s;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void agent_config_release(struct agent_config *c)
{
    free(c->config_path);
    free(c->node);
    free(c->namespace_);
    free(c->cluster);
    free(c->reconciler_url);
    wipe_free(c->registration_token);
    free(c->state_dir);
    free(c->pg.bin_dir);
    free(c->pg.data_dir);
    free(c->pg.socket_dir);
    free(c->pg.log_file);
    free(c->pg.listen_address);
    free(c->pg.superuser);
    free(c->pg.replication_user);
    wipe_free(c->pg.replication_password);
    free(c->pg.os_user);
    free(c->pg.allowed_cidr);
    for (size_t i = 0; i < c->pg.n_params; i++) {
        free((char *)c->pg.params[i].name);
        free((char *)c->pg.params[i].value);
    }
    free(c->pg.params);
    for (int ev = 0; ev < AGENT_EV_COUNT; ev++) {
        for (size_t i = 0; c->handlers[ev].argv != NULL && c->handlers[ev].argv[i] != NULL; i++)
            free(c->handlers[ev].argv[i]);
        free(c->handlers[ev].argv);
    }
    memset(c, 0, sizeof(*c));
}

static void abs_path(struct conv *cv, const struct doc_node *map, const char *key, const char *path,
                     const char *value)
{
    if (value != NULL && value[0] != '/')
        bad(cv, doc_map_get(map, key), path, "must be an absolute path");
}

/* engine.parameters: a map of setting names to scalar values (written as
 * text; the server checks them when it reads reeve.conf). */
static void load_params(struct conv *cv, struct agent_config *c, const struct doc_node *m)
{
    if (m == NULL)
        return;
    if (m->kind != DOC_MAP) {
        bad(cv, m, "engine.parameters", "must be an object, not %s", doc_kind_name(m->kind));
        return;
    }
    if (m->u.map.len > RV_PG_PARAMS_MAX) {
        bad(cv, m, "engine.parameters", "at most %d parameters", RV_PG_PARAMS_MAX);
        return;
    }
    c->pg.params = calloc(m->u.map.len + 1, sizeof(*c->pg.params));
    if (c->pg.params == NULL) {
        cv->rc = RV_ENOMEM;
        return;
    }
    for (size_t i = 0; i < m->u.map.len; i++) {
        const struct doc_pair *p = &m->u.map.items[i];
        const struct doc_node *v = p->value;
        char path[RV_PG_NAME_MAX + 32];
        const char *text = NULL;
        snprintf(path, sizeof(path), "engine.parameters.%.*s", RV_PG_NAME_MAX, p->key->u.str.s);
        if (v->kind == DOC_STRING)
            text = v->u.str.s;
        else if ((v->kind == DOC_INT || v->kind == DOC_FLOAT) && v->text != NULL)
            text = v->text;
        else if (v->kind == DOC_BOOL)
            text = v->u.b ? "on" : "off";
        if (text == NULL || strlen(text) > RV_PG_PARAM_VALUE_MAX ||
            strpbrk(text, "'\\\n\r") != NULL) {
            bad(cv, v, path,
                "must be a string, number or boolean without quotes, "
                "backslashes or newlines");
            continue;
        }
        if (p->key->u.str.len > RV_PG_NAME_MAX ||
            strspn(p->key->u.str.s, "abcdefghijklmnopqrstuvwxyz0123456789_.") !=
                p->key->u.str.len) {
            bad(cv, p->key, path, "not a server setting name");
            continue;
        }
        char *name = strdup(p->key->u.str.s);
        char *value = strdup(text);
        if (name == NULL || value == NULL) {
            free(name);
            free(value);
            cv->rc = RV_ENOMEM;
            return;
        }
        c->pg.params[c->pg.n_params].name = name;
        c->pg.params[c->pg.n_params].value = value;
        c->pg.n_params++;
    }
}

static void load_engine(struct conv *cv, struct agent_config *c, const struct doc_node *e)
{
    static const char *const fields[] = {
        "type",      "bin_dir",          "data_dir",  "socket_dir",
        "log_file",  "listen_address",   "port",      "replication_password",
        "superuser", "replication_user", "os_user",   "allowed_cidr",
        "no_sync",   "parameters",       "server_id", NULL};
    if (e->kind != DOC_MAP) {
        bad(cv, e, "engine", "must be an object, not %s", doc_kind_name(e->kind));
        return;
    }
    known(cv, e, "engine", fields);
    char *type = str_field(cv, e, "type", "engine.type", true, 32);
    if (type != NULL && engine_type_parse(&c->engine_type, type) != 0)
        bad(cv, doc_map_get(e, "type"), "engine.type", "must be 'postgresql' or 'mariadb'");
    free(type);
    bool mdb = c->engine_type == ENGINE_MARIADB;
    c->pg.bin_dir = str_field(cv, e, "bin_dir", "engine.bin_dir", !mdb, RV_PG_PATH_MAX);
    abs_path(cv, e, "bin_dir", "engine.bin_dir", c->pg.bin_dir);
    c->pg.data_dir = str_field(cv, e, "data_dir", "engine.data_dir", true, RV_PG_PATH_MAX);
    abs_path(cv, e, "data_dir", "engine.data_dir", c->pg.data_dir);
    c->pg.socket_dir =
        str_field(cv, e, "socket_dir", "engine.socket_dir", true, RV_PG_SOCKET_DIR_MAX);
    abs_path(cv, e, "socket_dir", "engine.socket_dir", c->pg.socket_dir);
    c->pg.log_file = str_field(cv, e, "log_file", "engine.log_file", false, RV_PG_PATH_MAX);
    abs_path(cv, e, "log_file", "engine.log_file", c->pg.log_file);
    c->pg.listen_address =
        str_field(cv, e, "listen_address", "engine.listen_address", true, RV_PG_HOST_MAX);
    c->pg.port = (int)int_field(cv, e, "port", "engine.port", mdb ? 3306 : 5432, 1, 65535);
    c->server_id = (uint32_t)int_field(cv, e, "server_id", "engine.server_id", 0, 0, UINT32_MAX);
    if (!mdb && doc_map_get(e, "server_id") != NULL)
        bad(cv, doc_map_get(e, "server_id"), "engine.server_id",
            "is a MariaDB setting; remove it for postgresql");
    c->pg.replication_password =
        secret_field(cv, e, "replication_password", "engine.replication_password", true);
    c->pg.superuser = str_field(cv, e, "superuser", "engine.superuser", false, RV_PG_NAME_MAX);
    if (c->pg.superuser == NULL && cv->rc != RV_ENOMEM)
        c->pg.superuser = strdup("postgres");
    c->pg.replication_user =
        str_field(cv, e, "replication_user", "engine.replication_user", false, RV_PG_NAME_MAX);
    if (c->pg.replication_user == NULL && cv->rc != RV_ENOMEM)
        c->pg.replication_user = strdup("replicator");
    if (c->pg.superuser == NULL || c->pg.replication_user == NULL)
        cv->rc = cv->rc != 0 ? cv->rc : RV_ENOMEM;
    c->pg.os_user = str_field(cv, e, "os_user", "engine.os_user", false, RV_PG_NAME_MAX);
    c->pg.allowed_cidr =
        str_field(cv, e, "allowed_cidr", "engine.allowed_cidr", false, RV_PG_HOST_MAX);
    const struct doc_node *ns = doc_map_get(e, "no_sync");
    if (ns != NULL && ns->kind != DOC_BOOL)
        bad(cv, ns, "engine.no_sync", "must be a boolean, not %s", doc_kind_name(ns->kind));
    c->pg.no_sync = ns != NULL && ns->kind == DOC_BOOL && ns->u.b;
    load_params(cv, c, doc_map_get(e, "parameters"));
}

static const char *const event_names[AGENT_EV_COUNT] = {"preStart", "health", "onChange", "preStop",
                                                        "postStop"};

const char *agent_event_name(enum agent_event ev)
{
    return ev < AGENT_EV_COUNT ? event_names[ev] : "unknown";
}

/* handlers.<event>.command: a non-empty list of strings, the first an
 * absolute path (no shell, no PATH lookup). */
static void load_command(struct conv *cv, struct agent_handler *h, const struct doc_node *n,
                         const char *path)
{
    if (n->kind != DOC_SEQ) {
        bad(cv, n, path, "must be a list of strings (program and arguments), not %s",
            doc_kind_name(n->kind));
        return;
    }
    if (n->u.seq.len == 0 || n->u.seq.len > RV_AGENT_HANDLER_ARGS_MAX) {
        bad(cv, n, path, "must hold 1 to %d strings", RV_AGENT_HANDLER_ARGS_MAX);
        return;
    }
    for (size_t i = 0; i < n->u.seq.len; i++) {
        const struct doc_node *a = n->u.seq.items[i];
        if (a->kind != DOC_STRING || a->u.str.len > RV_AGENT_HANDLER_ARG_MAX ||
            memchr(a->u.str.s, '\0', a->u.str.len) != NULL) {
            bad(cv, a, path, "item %zu must be a string of at most %d bytes", i,
                RV_AGENT_HANDLER_ARG_MAX);
            return;
        }
    }
    if (n->u.seq.items[0]->u.str.s[0] != '/') {
        bad(cv, n->u.seq.items[0], path, "the program must be an absolute path");
        return;
    }
    h->argv = calloc(n->u.seq.len + 1, sizeof(*h->argv));
    if (h->argv == NULL) {
        cv->rc = RV_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n->u.seq.len; i++) {
        h->argv[i] = strdup(n->u.seq.items[i]->u.str.s);
        if (h->argv[i] == NULL) {
            cv->rc = RV_ENOMEM;
            return;
        }
        h->argc++;
    }
}

static void load_handlers(struct conv *cv, struct agent_config *c, const struct doc_node *m)
{
    static const char *const fields[] = {"command", "timeout_ms", NULL};
    static const char *const events[] = {"preStart", "health",   "onChange",
                                         "preStop",  "postStop", NULL};
    for (int ev = 0; ev < AGENT_EV_COUNT; ev++)
        c->handlers[ev].timeout_ms = RV_AGENT_HANDLER_TIMEOUT_DEFAULT_MS;
    if (m == NULL)
        return;
    if (m->kind != DOC_MAP) {
        bad(cv, m, "handlers", "must be an object, not %s", doc_kind_name(m->kind));
        return;
    }
    known(cv, m, "handlers", events);
    for (int ev = 0; ev < AGENT_EV_COUNT; ev++) {
        const struct doc_node *h = doc_map_get(m, event_names[ev]);
        char where[64], path[96];
        if (h == NULL)
            continue;
        snprintf(where, sizeof(where), "handlers.%s", event_names[ev]);
        if (h->kind != DOC_MAP) {
            bad(cv, h, where, "must be an object with 'command', not %s", doc_kind_name(h->kind));
            continue;
        }
        known(cv, h, where, fields);
        snprintf(path, sizeof(path), "%s.timeout_ms", where);
        c->handlers[ev].timeout_ms =
            int_field(cv, h, "timeout_ms", path, RV_AGENT_HANDLER_TIMEOUT_DEFAULT_MS,
                      RV_AGENT_HANDLER_TIMEOUT_MIN_MS, RV_AGENT_HANDLER_TIMEOUT_MAX_MS);
        snprintf(path, sizeof(path), "%s.command", where);
        const struct doc_node *cmd = doc_map_get(h, "command");
        if (cmd == NULL)
            bad(cv, h, path, "required field is missing");
        else
            load_command(cv, &c->handlers[ev], cmd, path);
    }
}

static void load_root(struct conv *cv, struct agent_config *c, const struct doc_node *root)
{
    static const char *const fields[] = {
        "node",      "cluster",     "reconciler", "registration_token",
        "state_dir", "ttl_ms",      "tick_ms",    "max_lag_on_failover_bytes",
        "engine",    "synchronous", "handlers",   "max_lag_on_failover_transactions",
        NULL};
    if (root->kind != DOC_MAP) {
        bad(cv, root, "", "the configuration must be an object, not %s", doc_kind_name(root->kind));
        return;
    }
    known(cv, root, "", fields);
    c->node = str_field(cv, root, "node", "node", true, RV_AGENT_NAME_MAX);
    if (c->node != NULL && !name_ok(c->node))
        bad(cv, doc_map_get(root, "node"), "node",
            "must be lowercase letters, digits, '-', '_' or '.'");
    char *cl = str_field(cv, root, "cluster", "cluster", true, 2 * RV_AGENT_NAME_MAX + 1);
    if (cl != NULL) {
        char *slash = strchr(cl, '/');
        if (slash == NULL) {
            bad(cv, doc_map_get(root, "cluster"), "cluster", "must be '<namespace>/<name>'");
        } else {
            *slash = '\0';
            if (!name_ok(cl) || !name_ok(slash + 1)) {
                bad(cv, doc_map_get(root, "cluster"), "cluster",
                    "must be '<namespace>/<name>' of lowercase letters, digits, '-', '_', '.'");
            } else {
                c->namespace_ = strdup(cl);
                c->cluster = strdup(slash + 1);
                if (c->namespace_ == NULL || c->cluster == NULL)
                    cv->rc = RV_ENOMEM;
            }
        }
        free(cl);
    }
    c->reconciler_url = str_field(cv, root, "reconciler", "reconciler", true, RV_AGENT_URL_MAX);
    if (c->reconciler_url != NULL) {
        if (strncmp(c->reconciler_url, "http://", 7) != 0 &&
            strncmp(c->reconciler_url, "https://", 8) != 0)
            bad(cv, doc_map_get(root, "reconciler"), "reconciler",
                "must be an http:// or https:// URL");
        size_t len = strlen(c->reconciler_url);
        while (len > 0 && c->reconciler_url[len - 1] == '/')
            c->reconciler_url[--len] = '\0';
    }
    c->registration_token =
        secret_field(cv, root, "registration_token", "registration_token", false);
    c->state_dir = str_field(cv, root, "state_dir", "state_dir", true, RV_PG_PATH_MAX);
    abs_path(cv, root, "state_dir", "state_dir", c->state_dir);
    c->ttl_ms = int_field(cv, root, "ttl_ms", "ttl_ms", RV_AGENT_TTL_DEFAULT_MS,
                          RV_AGENT_TTL_MIN_MS, RV_AGENT_TTL_MAX_MS);
    c->tick_ms = int_field(cv, root, "tick_ms", "tick_ms", RV_AGENT_TICK_DEFAULT_MS,
                           RV_AGENT_TICK_MIN_MS, c->ttl_ms / RV_AGENT_RENEW_DIV);
    c->max_lag_on_failover_bytes =
        int_field(cv, root, "max_lag_on_failover_bytes", "max_lag_on_failover_bytes",
                  RV_AGENT_FAILOVER_LAG_DEFAULT, 0, INT64_MAX);
    c->max_lag_on_failover_transactions =
        int_field(cv, root, "max_lag_on_failover_transactions", "max_lag_on_failover_transactions",
                  RV_AGENT_FAILOVER_LAG_TRX_DEFAULT, 0, INT64_MAX);
    c->synchronous =
        (int)int_field(cv, root, "synchronous", "synchronous", 0, 0, RV_PG_SYNC_MEMBERS_MAX);
    load_handlers(cv, c, doc_map_get(root, "handlers"));
    const struct doc_node *e = doc_map_get(root, "engine");
    if (e == NULL)
        bad(cv, root, "engine", "required field is missing");
    else
        load_engine(cv, c, e);
    if (c->engine_type == ENGINE_MARIADB && c->synchronous > 0)
        bad(cv, doc_map_get(root, "synchronous"), "synchronous",
            "synchronous standbys are PostgreSQL's; MariaDB clusters replicate asynchronously "
            "(set 0 or remove it)");
}

void agent_config_pg(struct pg_engine_config *pc, const struct agent_config *cfg)
{
    *pc = (struct pg_engine_config){
        .bin_dir = cfg->pg.bin_dir,
        .data_dir = cfg->pg.data_dir,
        .socket_dir = cfg->pg.socket_dir,
        .log_file = cfg->pg.log_file,
        .listen_address = cfg->pg.listen_address,
        .port = cfg->pg.port,
        .superuser = cfg->pg.superuser,
        .replication_user = cfg->pg.replication_user,
        .replication_password = cfg->pg.replication_password,
        .application_name = cfg->node,
        .allowed_cidr = cfg->pg.allowed_cidr,
        .os_user = geteuid() == 0 ? cfg->pg.os_user : NULL,
        .no_sync = cfg->pg.no_sync,
        .extra = cfg->pg.params,
        .n_extra = cfg->pg.n_params,
    };
}

void agent_config_mdb(struct mdb_engine_config *mc, const struct agent_config *cfg)
{
    *mc = (struct mdb_engine_config){
        .bin_dir = cfg->pg.bin_dir,
        .data_dir = cfg->pg.data_dir,
        .socket_dir = cfg->pg.socket_dir,
        .log_file = cfg->pg.log_file,
        .listen_address = cfg->pg.listen_address,
        .port = cfg->pg.port,
        .server_id = cfg->server_id,
        .node_name = cfg->node,
        .replication_user = cfg->pg.replication_user,
        .replication_password = cfg->pg.replication_password,
        .allowed_cidr = cfg->pg.allowed_cidr,
        .os_user = geteuid() == 0 ? cfg->pg.os_user : NULL,
        .no_sync = cfg->pg.no_sync,
    };
}

int agent_config_load(struct agent_config *c, const char *path, struct diag_list *diags)
{
    return agent_config_load_opts(c, path, false, diags);
}

int agent_config_load_opts(struct agent_config *c, const char *path, bool no_secrets,
                           struct diag_list *diags)
{
    struct doc_file *f = NULL;
    struct conv cv = {.file = path, .diags = diags, .rc = 0, .no_secrets = no_secrets};
    int rc;
    memset(c, 0, sizeof(*c));
    c->config_path = realpath(path, NULL);
    rc = doc_load(&f, path, path, diags);
    if (rc != 0)
        goto out;
    if (f->ndocs != 1) {
        bad(&cv, NULL, "", "the configuration must be one YAML document (found %zu)", f->ndocs);
        rc = cv.rc;
        goto out;
    }
    load_root(&cv, c, f->docs[0]);
    rc = cv.rc;
out:
    doc_file_free(f);
    if (rc != 0)
        agent_config_release(c);
    return rc;
}
