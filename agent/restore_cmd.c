/* restore_cmd.c - the restore subcommand of reeve-agent (see restore_cmd.h). */
#include "restore_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "backup_cmd.h"
#include "backup_pg.h"
#include "config.h"
#include "diag.h"
#include "log.h"
#include "restore.h"

#define COMPONENT "restore"

bool restore_cmd_is(const char *name)
{
    return name != NULL && strcmp(name, "restore") == 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: reeve-agent restore -c <agent.yaml> --to <dir> [--backup <id>]\n"
                 "           [--point-in-time <RFC 3339 UTC>] [--port <n>] [--stop] [--json]\n"
                 "           [--from <store dir> [--key-file <file>]]\n"
                 "Restores a backup into <dir> (absent or empty) and leaves the server running\n"
                 "as a primary. See docs/restore.md.\n");
}

struct args {
    const char *cfg, *to, *backup, *pit, *from, *key_file;
    const char *pos[2];
    int npos;
    int port;
    bool stop, json, fetch;
};

static int parse(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    int i = 2;
    if (argc > 2 && strcmp(argv[2], "wal-fetch") == 0) {
        a->fetch = true;
        i = 3;
    }
    for (; i < argc; i++) {
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(o, "-c") == 0 && has)
            a->cfg = argv[++i];
        else if (strcmp(o, "--to") == 0 && has)
            a->to = argv[++i];
        else if (strcmp(o, "--backup") == 0 && has)
            a->backup = argv[++i];
        else if (strcmp(o, "--point-in-time") == 0 && has)
            a->pit = argv[++i];
        else if (strcmp(o, "--from") == 0 && has)
            a->from = argv[++i];
        else if (strcmp(o, "--key-file") == 0 && has)
            a->key_file = argv[++i];
        else if (strcmp(o, "--port") == 0 && has) {
            char *end;
            long p = strtol(argv[++i], &end, 10);
            if (*end || p < 1 || p > 65535)
                return -1;
            a->port = (int)p;
        } else if (strcmp(o, "--stop") == 0)
            a->stop = true;
        else if (strcmp(o, "--json") == 0)
            a->json = true;
        else if (strcmp(o, "--log-level") == 0 && has) {
            enum log_level lvl;
            if (log_level_parse(&lvl, argv[++i]) != 0)
                return -1;
            log_set_level(lvl);
        } else if (o[0] != '-' && a->npos < 2)
            a->pos[a->npos++] = o;
        else
            return -1;
    }
    if (a->fetch)
        return a->from && a->npos == 2 ? 0 : -1;
    return a->cfg && a->to && a->npos == 0 && (!a->key_file || a->from) ? 0 : -1;
}

/* --from: a local directory store and the key from a file (64 hex). */
static int open_from(struct objstore **store, uint8_t key[BSTREAM_KEY_LEN], bool *has_key,
                     const struct args *a, struct rv_error *err)
{
    char hex[80] = "";
    *has_key = false;
    int rc = objstore_local_new(store, a->from, err);
    if (rc != 0 || !a->key_file)
        return rc;
    FILE *f = fopen(a->key_file, "re");
    if (!f)
        return rv_error_set(err, RV_EIO, false, "cannot read key file '%s': %s", a->key_file,
                            strerror(errno));
    bool ok = fgets(hex, sizeof hex, f) != NULL;
    fclose(f);
    hex[strcspn(hex, "\r\n")] = '\0';
    rc = ok ? bstream_key_parse(key, hex, err)
            : rv_error_set(err, RV_EINVAL, false, "key file '%s' is empty", a->key_file);
    explicit_bzero(hex, sizeof hex);
    *has_key = rc == 0;
    return rc;
}

static int cmd_fetch(const struct args *a)
{
    struct rv_error err = {0};
    struct objstore *store = NULL;
    uint8_t key[BSTREAM_KEY_LEN];
    bool has_key = false;
    int rc = open_from(&store, key, &has_key, a, &err);
    if (rc == 0)
        rc = restore_wal_fetch(store, has_key ? key : NULL, a->pos[0], a->pos[1], &err);
    if (store)
        store->free(store);
    explicit_bzero(key, sizeof key);
    if (rc != 0 && rc != RV_ENOTFOUND)
        fprintf(stderr, "error: restore wal-fetch '%s': %s\n", a->pos[0], err.msg);
    return rc == 0 ? 0 : 1;
}

/* Where the backups come from, and the restore_command that reads the same
 * place. */
struct source {
    struct backup_ctx ctx;
    bool ctx_open;
    struct objstore *own; /* opened here; else borrowed from ctx */
    struct objstore *store;
    uint8_t key[BSTREAM_KEY_LEN];
    bool has_key;
    bool from_restore;     /* the configuration's "restore" section */
    const char *backup_id; /* default from the "restore" section */
    const char *pit;
    char command[RV_RESTORE_COMMAND_MAX + 1];
};

static int source_open(struct source *s, const struct args *a, const struct agent_config *cfg,
                       bool own_dir, struct rv_error *err)
{
    char exe[RV_PG_PATH_MAX + 1], loc[RV_PG_PATH_MAX + 64];
    int rc = backup_self_exe(exe, sizeof exe, err);
    if (rc != 0)
        return rc;
    if (a->from) {
        rc = open_from(&s->own, s->key, &s->has_key, a, err);
        s->store = s->own;
        if (rc == 0 &&
            snprintf(s->command, sizeof s->command, "%s restore wal-fetch --from %s%s%s %%f %%p",
                     exe, a->from, a->key_file ? " --key-file " : "",
                     a->key_file ? a->key_file : "") >= (int)sizeof s->command)
            rc = rv_error_set(err, RV_ELIMIT, false, "restore_command is too long");
        return rc;
    }
    if (!cfg->config_path)
        return rv_error_set(err, RV_EIO, false, "cannot resolve the configuration file's path");
    if ((rc = restore_command_build(s->command, sizeof s->command, exe, cfg->config_path, err)))
        return rc;
    rc = backup_ctx_open(&s->ctx, cfg, false, err);
    if (rc == RV_ENOTFOUND)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "no backup configuration stored on this node yet (the running agent "
                            "fetches it from the reconciler); or give --from <store dir>");
    if (rc != 0)
        return rc;
    s->ctx_open = true;
    /* The same choice as wal-fetch: the "restore" source while the node's
     * own data directory is restoring, or when it has no backups. */
    json_t *r = json_object_get(s->ctx.config, "restore");
    if (json_is_object(r) && (own_dir || !s->ctx.store)) {
        const char *k = json_string_value(json_object_get(r, "encryption_key"));
        rc = backup_store_open(&s->own, loc, sizeof loc, json_object_get(r, "destination"), err);
        if (rc == 0 && k)
            rc = bstream_key_parse(s->key, k, err);
        s->has_key = k != NULL;
        s->store = s->own;
        s->from_restore = true;
        s->backup_id = json_string_value(json_object_get(r, "backup_id"));
        s->pit = json_string_value(json_object_get(r, "point_in_time"));
        return rc;
    }
    if (!s->ctx.store)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "the stored configuration names no backups to restore from; give "
                            "--from <store dir>");
    s->store = s->ctx.store;
    s->has_key = s->ctx.has_key;
    memcpy(s->key, s->ctx.key, sizeof s->key);
    return 0;
}

static void source_release(struct source *s)
{
    if (s->own)
        s->own->free(s->own);
    if (s->ctx_open)
        backup_ctx_release(&s->ctx);
    explicit_bzero(s->key, sizeof s->key);
}

static int free_port(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                     getsockname(fd, (struct sockaddr *)&sa, &len) == 0
                 ? 0
                 : -1;
    if (rc == 0)
        *port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return rc;
}

static void print_result(const struct args *a, const struct pg_engine *e, int rc,
                         const struct restore_result *res, const struct rv_error *err)
{
    char lsn[32];
    snprintf(lsn, sizeof lsn, "%X/%X", (unsigned)(res->lsn >> 32), (unsigned)res->lsn);
    if (!a->json) {
        if (rc != 0)
            fprintf(stderr, "error: %s\n", err->msg);
        else
            printf("restored %s into %s: timeline %u at %s, transactions up to %s; server %s "
                   "(port %d, socket %s)\n",
                   res->backup_id, e->data_dir, res->timeline, lsn,
                   res->recovered_to[0] ? res->recovered_to : "none",
                   a->stop ? "stopped" : "running", e->port, e->socket_dir);
        return;
    }
    json_t *j = rc != 0 ? json_pack("{s:b,s:s?,s:{s:s,s:s}}", "ok", 0, "backup_id",
                                    res->backup_id[0] ? res->backup_id : NULL, "error", "code",
                                    rv_errname(rc), "message", err->msg)
                        : json_pack("{s:b,s:s,s:s,s:i,s:s,s:i,s:s,s:s?,s:I,s:I,s:I,s:b}", "ok", 1,
                                    "backup_id", res->backup_id, "data_dir", e->data_dir, "port",
                                    e->port, "socket_dir", e->socket_dir, "timeline",
                                    (json_int_t)res->timeline, "lsn", lsn, "recovered_to",
                                    res->recovered_to[0] ? res->recovered_to : NULL, "duration_ms",
                                    (json_int_t)res->duration_ms, "stored_bytes",
                                    (json_int_t)res->stored_bytes, "raw_bytes",
                                    (json_int_t)res->raw_bytes, "running", !a->stop);
    char *t = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    if (t)
        printf("%s\n", t);
    free(t);
    json_decref(j);
}

/* The engine for --to: the node's own when DIR is its data directory; else
 * a copy on 127.0.0.1 with its own socket directory. */
static int engine_for(struct pg_engine *e, const struct agent_config *cfg, const struct args *a,
                      const char *to, bool own_dir, char sock[64], struct rv_error *err)
{
    struct pg_engine_config pc;
    agent_config_pg(&pc, cfg);
    pc.data_dir = to;
    pc.log_file = own_dir ? cfg->pg.log_file : NULL;
    pc.port = a->port ? a->port : cfg->pg.port;
    if (!own_dir) {
        snprintf(sock, 64, "/tmp/reeve-restore-XXXXXX");
        if (!mkdtemp(sock))
            return rv_error_set(err, RV_EIO, false, "cannot create a socket directory: %s",
                                strerror(errno));
        pc.socket_dir = sock;
        pc.listen_address = "127.0.0.1";
        if (!a->port && free_port(&pc.port) != 0)
            return rv_error_set(err, RV_EIO, false, "cannot find a free port");
    }
    int rc = pg_engine_init(e, &pc, err);
    if (rc == 0 && !own_dir && e->run_as && chown(sock, e->uid, e->gid) != 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot chown '%s': %s", sock, strerror(errno));
    return rc;
}

/* DIR made absolute (against the working directory), without a trailing
 * '/'. */
static int absolute_dir(char *out, size_t cap, const char *dir, struct rv_error *err)
{
    char cwd[RV_PG_PATH_MAX + 1];
    int n;
    if (dir[0] == '/')
        n = snprintf(out, cap, "%s", dir);
    else if (getcwd(cwd, sizeof cwd))
        n = snprintf(out, cap, "%s/%s", cwd, dir);
    else
        return rv_error_set(err, RV_EIO, false, "cannot read the working directory: %s",
                            strerror(errno));
    if (n < 0 || (size_t)n >= cap)
        return rv_error_set(err, RV_ELIMIT, false, "--to '%s' is too long", dir);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

static int cmd_restore(const struct args *a)
{
    struct agent_config cfg;
    struct diag_list diags;
    struct rv_error err = {0};
    struct source src;
    struct pg_engine e;
    struct restore_result res;
    char to[RV_PG_PATH_MAX + 1], sock[64] = "";
    bool engine_ok = false;
    int rc;
    memset(&src, 0, sizeof src);
    memset(&res, 0, sizeof res);
    diag_list_init(&diags);
    if (agent_config_load(&cfg, a->cfg, &diags) != 0) {
        diag_list_sort(&diags);
        diag_list_print(stderr, &diags);
        diag_list_release(&diags);
        return 2;
    }
    if (cfg.engine_type != ENGINE_POSTGRESQL) {
        fprintf(stderr, "error: reeve-agent restore restores PostgreSQL nodes; a MariaDB "
                        "backup is restored as a new cluster with bootstrap.fromBackup "
                        "(docs/restore.md)\n");
        agent_config_release(&cfg);
        diag_list_release(&diags);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "error: cannot initialize libcurl\n");
        agent_config_release(&cfg);
        diag_list_release(&diags);
        return 1;
    }
    rc = absolute_dir(to, sizeof to, a->to, &err);
    char *own = rc == 0 ? realpath(cfg.pg.data_dir, NULL) : NULL;
    char *real_to = rc == 0 ? realpath(to, NULL) : NULL;
    bool own_dir = rc == 0 && (strcmp(cfg.pg.data_dir, to) == 0 ||
                               (own && real_to && strcmp(own, real_to) == 0));
    free(own);
    free(real_to);
    if (rc == 0)
        rc = source_open(&src, a, &cfg, own_dir, &err);
    if (rc == 0 && (rc = engine_for(&e, &cfg, a, to, own_dir, sock, &err)) == 0)
        engine_ok = true;
    struct restore_opts o = {
        .store = src.store,
        .key = src.has_key ? src.key : NULL,
        .backup_id = a->backup ? a->backup : src.backup_id,
        .target = RESTORE_TARGET_END,
        .restore_command = src.command,
        /* A copy beside the node must not archive into anyone's archive. */
        .scratch = !own_dir,
    };
    const char *pit = a->pit ? a->pit : a->backup ? NULL : src.pit;
    if (rc == 0 && pit) {
        rc = restore_time_parse(&o.target_ms, pit, &err);
        o.target = RESTORE_TARGET_TIME;
    }
    if (rc == 0)
        rc = restore_run(&e, &o, &res, &err);
    if (!res.backup_id[0] && o.backup_id)
        snprintf(res.backup_id, sizeof res.backup_id, "%s", o.backup_id);
    if (rc == 0 && a->stop)
        rc = pg_engine_stop(&e, PG_STOP_FAST, &err);
    print_result(a, &e, rc, &res, &err);
    if (engine_ok)
        pg_engine_release(&e);
    if ((rc != 0 || a->stop) && sock[0])
        rmdir(sock);
    source_release(&src);
    curl_global_cleanup();
    agent_config_release(&cfg);
    diag_list_release(&diags);
    return rc == 0 ? 0 : 1;
}

int restore_from_config(struct pg_engine *e, const struct agent_config *cfg,
                        const atomic_bool *cancel, bool *restored, struct restore_result *res,
                        struct rv_error *err)
{
    struct args a;
    struct source src;
    memset(&a, 0, sizeof a);
    memset(&src, 0, sizeof src);
    *restored = false;
    int rc = source_open(&src, &a, cfg, true, err);
    /* The backup daemon creates backup.db before its first poll answers:
     * an open database without a configuration is "not yet", not "none". */
    if (rc == RV_ENOTFOUND && (!src.ctx_open || src.ctx.config == NULL)) {
        rc = rv_error_set(err, RV_ENOTFOUND, true,
                          "restore: no configuration from the reconciler stored yet");
        goto out;
    }
    if ((rc == RV_ENOTFOUND && src.ctx_open) || (rc == 0 && !src.from_restore)) {
        rc = 0; /* nothing to restore: the caller runs initdb */
        goto out;
    }
    if (rc != 0)
        goto out;
    struct restore_opts o = {
        .store = src.store,
        .key = src.has_key ? src.key : NULL,
        .backup_id = src.backup_id,
        .target = RESTORE_TARGET_END,
        .restore_command = src.command,
        .cancel = cancel,
    };
    if (src.pit) {
        rc = restore_time_parse(&o.target_ms, src.pit, err);
        o.target = RESTORE_TARGET_TIME;
    }
    if (rc == 0)
        rc = restore_run(e, &o, res, err);
    *restored = rc == 0;
out:
    source_release(&src);
    return rc;
}

int restore_from_config_mdb(struct mdb_engine *e, const struct agent_config *cfg,
                            const atomic_bool *cancel, bool *restored,
                            struct restore_mdb_result *res, struct rv_error *err)
{
    struct backup_ctx c;
    memset(&c, 0, sizeof c);
    *restored = false;
    /* An unusable backup destination of the cluster's own does not matter
     * here: only the stored configuration's "restore" section does. */
    int rc = backup_ctx_open(&c, cfg, false, err);
    if (c.db == NULL || c.config == NULL) {
        rc = rv_error_set(err, RV_ENOTFOUND, true,
                          "restore: no configuration from the reconciler stored yet");
        goto out;
    }
    json_t *r = json_object_get(c.config, "restore");
    rc = 0;
    if (json_is_object(r)) {
        rc = restore_mdb_from_config(e, r, cancel, res, err);
        *restored = rc == 0;
    }
out:
    backup_ctx_release(&c);
    return rc;
}

int restore_cmd_main(int argc, char **argv)
{
    struct args a;
    if (parse(&a, argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    return a.fetch ? cmd_fetch(&a) : cmd_restore(&a);
}
