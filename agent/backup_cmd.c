/* backup_cmd.c - the backup subcommands of reeve-agent (see backup_cmd.h). */
#include "backup_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "backup_mariadb.h"
#include "backup_pg.h"
#include "backupd.h"
#include "diag.h"
#include "log.h"

bool backup_cmd_is(const char *name)
{
    return name != NULL && (strcmp(name, "wal-push") == 0 || strcmp(name, "wal-fetch") == 0 ||
                            strcmp(name, "backup") == 0 || strcmp(name, "backups") == 0);
}

int backup_self_exe(char *out, size_t cap, struct rv_error *err)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return rv_error_set(err, RV_EIO, false, "cannot find this executable's path: %s",
                            n < 0 ? strerror(errno) : "too long");
    out[n] = '\0';
    return 0;
}

int backup_engine_params(struct agent_config *cfg, const char *exe, struct rv_error *err)
{
    char cmd[2 * RV_PG_PATH_MAX + 64];
    struct pg_param *p;
    int rc;
    for (size_t i = 0; i < cfg->pg.n_params; i++)
        if (strcmp(cfg->pg.params[i].name, "archive_command") == 0) {
            log_info("backup", "engine.parameters sets archive_command: leaving it");
            return 0;
        }
    if (cfg->config_path == NULL)
        return rv_error_set(err, RV_EIO, false, "cannot resolve the configuration file's path");
    rc = backup_archive_command(cmd, sizeof(cmd), exe, cfg->config_path, err);
    if (rc != 0)
        return rc;
    if (strlen(cmd) > RV_PG_PARAM_VALUE_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "archive_command over %d characters",
                            RV_PG_PARAM_VALUE_MAX);
    /* archive_timeout bounds how old the newest archived change can be on
     * a quiet server, and so how long a point-in-time restore of a recent
     * moment waits for the archive; a configuration's own value stays. */
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%ds", RV_BACKUP_ARCHIVE_TIMEOUT_S);
    bool own_timeout = false;
    for (size_t i = 0; i < cfg->pg.n_params; i++)
        own_timeout = own_timeout || strcmp(cfg->pg.params[i].name, "archive_timeout") == 0;
    const char *add[3][2] = {
        {"archive_mode", "on"}, {"archive_command", cmd}, {"archive_timeout", timeout}};
    size_t nadd = own_timeout ? 2 : 3;
    p = realloc(cfg->pg.params, (cfg->pg.n_params + nadd + 1) * sizeof(*p));
    if (p == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    cfg->pg.params = p;
    for (size_t i = 0; i < nadd; i++) {
        char *n = strdup(add[i][0]), *v = strdup(add[i][1]);
        if (n == NULL || v == NULL) {
            free(n);
            free(v);
            p[cfg->pg.n_params] = (struct pg_param){NULL, NULL};
            return rv_error_set(err, RV_ENOMEM, false, "out of memory");
        }
        p[cfg->pg.n_params++] = (struct pg_param){n, v};
    }
    p[cfg->pg.n_params] = (struct pg_param){NULL, NULL};
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: reeve-agent wal-push -c <agent.yaml> <path>\n"
                 "       reeve-agent wal-fetch -c <agent.yaml> <file> <path>\n"
                 "       reeve-agent backup -c <agent.yaml> [--json]\n"
                 "       reeve-agent backups list -c <agent.yaml> [--json]\n"
                 "       reeve-agent backups verify -c <agent.yaml> <backup_id>\n"
                 "       reeve-agent backups config -c <agent.yaml> [--set <config.json>]\n"
                 "See docs/backups.md.\n");
}

struct args {
    const char *cmd;
    const char *cfg;
    const char *pos[2];
    size_t npos;
    bool json;
    const char *set; /* backups config --set FILE */
};

static int parse(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            a->cfg = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            a->set = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            enum log_level lvl;
            if (log_level_parse(&lvl, argv[++i]) != 0)
                return -1;
            log_set_level(lvl);
        } else if (argv[i][0] != '-' && a->npos < 2) {
            a->pos[a->npos++] = argv[i];
        } else {
            return -1;
        }
    }
    size_t want = strcmp(a->cmd, "wal-push") == 0 ? 1 : strcmp(a->cmd, "wal-fetch") == 0 ? 2 : 0;
    if (strcmp(a->cmd, "backups") == 0) {
        if (a->npos >= 1 && strcmp(a->pos[0], "list") == 0)
            want = 1;
        else if (a->npos >= 1 && strcmp(a->pos[0], "verify") == 0)
            want = 2;
        else if (a->npos >= 1 && strcmp(a->pos[0], "config") == 0)
            want = 1;
        else
            return -1;
    }
    if (a->set != NULL && !(strcmp(a->cmd, "backups") == 0 && strcmp(a->pos[0], "config") == 0))
        return -1;
    return a->cfg != NULL && a->npos == want ? 0 : -1;
}

static int cmd_wal_push(struct backup_ctx *c, const struct args *a, int open_rc,
                        struct rv_error *err)
{
    if (open_rc == RV_ENOTFOUND || (open_rc == 0 && c->store == NULL)) {
        /* Without a backup configuration the segment is not kept anywhere:
         * saying so and succeeding keeps pg_wal from filling up. */
        log_warn("wal-push", "no backup configuration: '%s' is not archived", a->pos[0]);
        return 0;
    }
    if (open_rc != 0) {
        fprintf(stderr, "error: wal-push '%s': %s\n", a->pos[0], err->msg);
        return 1;
    }
    if (backup_wal_push(c, a->pos[0], err) != 0) {
        fprintf(stderr, "error: wal-push '%s': %s\n", a->pos[0], err->msg);
        return 1;
    }
    return 0;
}

static int cmd_wal_fetch(struct backup_ctx *c, const struct args *a, int open_rc,
                         struct rv_error *err)
{
    if (open_rc == RV_ENOTFOUND)
        return 1;
    if (open_rc != 0) {
        fprintf(stderr, "error: wal-fetch '%s': %s\n", a->pos[0], err->msg);
        return 1;
    }
    int rc = backup_wal_fetch(c, a->pos[0], a->pos[1], err);
    if (rc == RV_ENOTFOUND)
        return 1; /* the end of the archive: PostgreSQL asks for it routinely */
    if (rc != 0) {
        fprintf(stderr, "error: wal-fetch '%s': %s\n", a->pos[0], err->msg);
        return 1;
    }
    return 0;
}

static int cmd_backup(struct backup_ctx *c, const struct args *a, int open_rc, struct rv_error *err)
{
    json_t *rec = NULL;
    int rc = open_rc;
    bool in_recovery = false;
    c->progress_stderr = true;
    if (rc == 0 && c->store == NULL)
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          "no backup configuration stored on this node yet (the running agent "
                          "fetches it from the reconciler)");
    if (rc == 0)
        rc = backupd_sweep_interrupted(c, err);
    bool mdb = rc == 0 && backup_is_mariadb(c);
    if (rc == 0)
        rc = mdb ? backup_mdb_read_only(&in_recovery, c, err)
                 : backup_pg_in_recovery(&in_recovery, c, err);
    if (rc == 0)
        rc = mdb ? backup_mdb_user_ensure(c, !in_recovery, err)
                 : backup_role_ensure(c, !in_recovery, err);
    if (rc != 0) {
        fprintf(stderr, "error: backup: %s\n", err->msg);
        return 1;
    }
    rc = backup_full(&rec, c, "manual", err);
    if (rec != NULL && a->json) {
        char *t = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (t != NULL)
            printf("%s\n", t);
        free(t);
    } else if (rec != NULL) {
        printf("%s %s %s\n", json_string_value(json_object_get(rec, "backup_id")),
               json_string_value(json_object_get(rec, "status")),
               json_string_value(json_object_get(rec, "location")));
    }
    if (rc != 0)
        fprintf(stderr, "error: backup: %s\n", err->msg);
    json_decref(rec);
    return rc == 0 ? 0 : 1;
}

/* backups list: the records in backup.db, oldest first. */
static int cmd_list(struct backup_ctx *c, const struct args *a, int open_rc, struct rv_error *err)
{
    json_t *recs = NULL;
    size_t i;
    json_t *r;
    if (open_rc == RV_ENOTFOUND) {
        if (a->json)
            printf("[]\n");
        return 0;
    }
    if (c->db == NULL || backup_db_records(&recs, c->db, false, 0, err) != 0) {
        fprintf(stderr, "error: backups list: %s\n", err->msg);
        return 1;
    }
    if (a->json) {
        char *t = json_dumps(recs, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (t != NULL)
            printf("%s\n", t);
        free(t);
    } else {
        json_array_foreach(recs, i, r)
        {
            const char *e = json_string_value(json_object_get(r, "error"));
            printf("%s %-9s %-9s %-18s %12lld %s%s%s\n",
                   json_string_value(json_object_get(r, "backup_id")),
                   json_string_value(json_object_get(r, "type")),
                   json_string_value(json_object_get(r, "status")),
                   json_string_value(json_object_get(r, "schedule")),
                   (long long)json_integer_value(json_object_get(r, "size")),
                   json_string_value(json_object_get(r, "location")), e != NULL ? " " : "",
                   e != NULL ? e : "");
        }
    }
    json_decref(recs);
    return 0;
}

/* Replace every secret member of j (recursively) by "(set)". */
static void redact(json_t *j)
{
    static const char *const secret[] = {"access_key_id", "secret_access_key", "encryption_key",
                                         "password"};
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) redact(v);
        return;
    }
    json_object_foreach(j, k, v)
    {
        bool hide = false;
        for (i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
            hide = hide || strcmp(k, secret[i]) == 0;
        if (hide && !json_is_null(v))
            json_object_set_new(j, k, json_string("(set)"));
        else
            redact(v);
    }
}

/* backups config [--set FILE]: show the stored configuration (secrets
 * redacted), or store one given as a file, for a node that runs backups
 * without a reconciler (a reconciler's configuration replaces it at its
 * next poll). */
static int cmd_config(struct backup_ctx *c, const struct args *a, int open_rc,
                      struct rv_error *err)
{
    json_t *conf = NULL;
    json_error_t je;
    if (a->set != NULL) {
        if (c->db == NULL) {
            fprintf(stderr, "error: backups config: %s\n", err->msg);
            return 1;
        }
        conf = json_load_file(a->set, JSON_REJECT_DUPLICATES, &je);
        if (conf == NULL || !json_is_object(conf)) {
            fprintf(stderr, "error: %s:%d:%d: not a JSON object: %s\n", a->set, je.line,
                    je.column, je.text);
            json_decref(conf);
            return 2;
        }
        int rc = backup_db_config_save(c->db, conf, NULL, err);
        json_decref(conf);
        if (rc == 0)
            rc = backup_ctx_reload(c, err);
        if (rc != 0) {
            fprintf(stderr, "error: backups config: %s\n", err->msg);
            return 1;
        }
        printf("stored the backup configuration from %s\n", a->set);
        return 0;
    }
    if (open_rc == RV_ENOTFOUND || c->db == NULL) {
        printf("null\n");
        return 0;
    }
    if (backup_db_config_load(&conf, c->db, err) != 0) {
        fprintf(stderr, "error: backups config: %s\n", err->msg);
        return 1;
    }
    redact(conf);
    char *t = conf != NULL ? json_dumps(conf, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    printf("%s\n", t != NULL ? t : "null");
    free(t);
    json_decref(conf);
    return 0;
}

/* backups verify <id>: the stored object against the record's checksum. */
static int cmd_verify(struct backup_ctx *c, const struct args *a, int open_rc, struct rv_error *err)
{
    json_t *rec = NULL;
    int rc = open_rc;
    if (rc == 0 && c->store == NULL)
        rc = rv_error_set(err, RV_ENOTFOUND, false, "no backup configuration on this node");
    if (rc == 0)
        rc = backup_db_record_get(&rec, c->db, a->pos[1], err);
    if (rc == RV_ENOTFOUND && err->msg[0] == '\0')
        rv_error_set(err, rc, false, "no record of backup '%s' on this node", a->pos[1]);
    if (rc == 0)
        rc = backup_verify_checksum(c, a->pos[1],
                                    json_string_value(json_object_get(rec, "checksum")), err);
    json_decref(rec);
    if (rc != 0) {
        fprintf(stderr, "error: backups verify: %s\n", err->msg);
        return 1;
    }
    printf("%s ok\n", a->pos[1]);
    return 0;
}

int backup_cmd_main(int argc, char **argv)
{
    struct args a;
    struct agent_config cfg;
    struct diag_list diags;
    struct backup_ctx c;
    struct rv_error err = {0};
    int code = 1, open_rc;
    bool take = false;
    if (parse(&a, argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    /* Only `backup` needs secrets (the backup role's password comes from the
     * replication password) and may create backup.db. */
    take = strcmp(a.cmd, "backup") == 0 || a.set != NULL;
    diag_list_init(&diags);
    /* WAL commands run as the server's OS user, which may not read the
     * agent's secret files; they need none. */
    if (agent_config_load_opts(&cfg, a.cfg, !take, &diags) != 0) {
        diag_list_sort(&diags);
        diag_list_print(stderr, &diags);
        diag_list_release(&diags);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "error: cannot initialize libcurl\n");
        goto out_cfg;
    }
    memset(&c, 0, sizeof(c));
    open_rc = backup_ctx_open(&c, &cfg, take, &err);
    if (strcmp(a.cmd, "wal-push") == 0)
        code = cmd_wal_push(&c, &a, open_rc, &err);
    else if (strcmp(a.cmd, "wal-fetch") == 0)
        code = cmd_wal_fetch(&c, &a, open_rc, &err);
    else if (strcmp(a.cmd, "backups") == 0 && strcmp(a.pos[0], "list") == 0)
        code = cmd_list(&c, &a, open_rc, &err);
    else if (strcmp(a.cmd, "backups") == 0 && strcmp(a.pos[0], "config") == 0)
        code = cmd_config(&c, &a, open_rc, &err);
    else if (strcmp(a.cmd, "backups") == 0)
        code = cmd_verify(&c, &a, open_rc, &err);
    else
        code = cmd_backup(&c, &a, open_rc, &err);
    backup_ctx_release(&c);
    curl_global_cleanup();
out_cfg:
    agent_config_release(&cfg);
    diag_list_release(&diags);
    return code;
}
