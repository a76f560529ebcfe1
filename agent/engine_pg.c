/* engine_pg.c - the PostgreSQL engine adapter (see engine_pg.h). */
#include "engine_pg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "engutil.h"
#include "fsutil.h"
#include "log.h"

#define COMPONENT "engine_pg"

extern char **environ;

/* Settings reeve.conf owns; ALTER SYSTEM of them would override it. */
static const char *const managed_params[] = {
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "unix_socket_permissions",
    "wal_level",
    "hot_standby",
    "wal_log_hints",
    "synchronous_standby_names",
    "primary_conninfo",
    "primary_slot_name",
    "cluster_name",
    "data_directory",
    "hba_file",
    "ident_file",
    "config_file",
};

/* --- small helpers --- */

static int copy_str(char *dst, size_t cap, const char *src, const char *what, struct rv_error *err)
{
    return eng_copy_str(dst, cap, src, what, "engine_pg", err);
}

/* Replication slot names: PostgreSQL allows lower case, digits and '_'. */
static bool valid_slot(const char *s)
{
    return eng_valid_lower(s, RV_PG_NAME_MAX);
}

/* Parameter names: lower-case GUC names, optionally with one "prefix." part
 * for extension settings. */
static bool valid_param_name(const char *s)
{
    size_t n = strlen(s);
    int dots = 0;
    if (n == 0 || n > RV_PG_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (++dots > 1 || i + 1 == n || !(s[i + 1] >= 'a' && s[i + 1] <= 'z'))
                return false;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

static bool valid_value(const char *s)
{
    size_t n = strlen(s);
    if (n > RV_PG_PARAM_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* A configuration-file string: '...' with ' and \ doubled. */
int pg_conf_quote(struct buf *b, const char *s)
{
    int rc = buf_putc(b, '\'');
    for (const char *p = s; rc == 0 && *p; p++) {
        if (*p == '\'' || *p == '\\')
            rc = buf_putc(b, *p);
        if (rc == 0)
            rc = buf_putc(b, *p);
    }
    if (rc == 0)
        rc = buf_putc(b, '\'');
    return rc;
}

static bool output_has(const struct buf *out, const char *needle)
{
    return out->data && strstr(out->data, needle) != NULL;
}

/* --- files --- */

/* Write path atomically (lib/fsutil), owned by the server's OS user. */
static int write_file(const struct pg_engine *e, const char *path, const char *data, mode_t mode,
                      struct rv_error *err)
{
    struct fs_owner o = {e->uid, e->gid};
    return fs_write_atomic(path, data, strlen(data), mode, e->run_as ? &o : NULL, "engine_pg", err);
}

static int data_path(char *dst, size_t cap, const struct pg_engine *e, const char *name,
                     struct rv_error *err)
{
    return eng_join_path(dst, cap, e->data_dir, name, "engine_pg", err);
}

/* The data directory must not exist or be empty before initdb or a clone. */
static int check_empty_dir(const char *path, struct rv_error *err)
{
    return eng_check_empty_dir(path, NULL, "engine_pg", err);
}

static int ensure_dir(const struct pg_engine *e, const char *path, struct rv_error *err)
{
    struct fs_owner o = {e->uid, e->gid};
    return eng_ensure_dir(path, e->run_as ? &o : NULL, "engine_pg", err);
}

bool pg_engine_running(const struct pg_engine *e)
{
    char path[RV_PG_PATH_MAX + 32];
    char line[32] = {0};
    snprintf(path, sizeof path, "%s/postmaster.pid", e->data_dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    char *end;
    long pid = strtol(line, &end, 10);
    if (end == line || pid <= 0 || pid > 0x3fffffffL)
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* --- child processes --- */

struct tool_run {
    int exit_code;  /* -1 when killed by a signal */
    struct buf out; /* stdout and stderr, the last RV_PG_OUTPUT_MAX bytes */
};

static void tool_run_release(struct tool_run *t)
{
    buf_release(&t->out);
}

/* Run bin_dir/argv[0] with a deadline as the server's OS user (lib/child);
 * password (may be NULL) is passed as PGPASSWORD in the child's environment
 * only. The exit code is in t. */
static int run_tool(const struct pg_engine *e, const char *const *args, const char *password,
                    int timeout_ms, struct tool_run *t, struct rv_error *err)
{
    /* The caller's environment without libpq and locale variables (so a
     * stray PGHOST cannot redirect a tool, and messages are in English),
     * plus our own. */
    static const char *const drop[] = {"PG", "LC_", "LANG", "HOME=", NULL};
    char exe[RV_PG_PATH_MAX + 64];
    const char *argv[32];
    char pwenv[RV_PG_PASSWORD_MAX + 16];
    const char *add[] = {"LC_ALL=C", "HOME=/", "PGCONNECT_TIMEOUT=5", password ? pwenv : NULL,
                         NULL};
    struct child_result r = {0};
    char **envp = NULL;
    int rc = 0;
    size_t n_args = 0;

    t->exit_code = -1;
    buf_init(&t->out);
    if (snprintf(exe, sizeof exe, "%s/%s", e->bin_dir, args[0]) >= (int)sizeof exe) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_pg: tool path is too long");
        goto out;
    }
    argv[n_args++] = exe;
    for (size_t i = 1; args[i]; i++) {
        if (n_args + 1 >= sizeof argv / sizeof argv[0]) {
            rc = rv_error_set(err, RV_ELIMIT, false, "engine_pg: too many arguments for '%s'",
                              args[0]);
            goto out;
        }
        argv[n_args++] = args[i];
    }
    argv[n_args] = NULL;
    if (password)
        snprintf(pwenv, sizeof pwenv, "PGPASSWORD=%s", password);
    envp = child_env(drop, add);
    if (!envp) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    struct child_spec s = {.argv = argv,
                           .envp = envp,
                           .run_as = e->run_as,
                           .uid = e->uid,
                           .gid = e->gid,
                           .label = "engine_pg"};
    struct child_opts o = {.timeout_ms = timeout_ms, .output_max = RV_PG_OUTPUT_MAX};
    log_debug(COMPONENT, "running '%s' for '%s'", args[0], e->app_name);
    rc = child_run(&r, &s, 1, &o, err);
    t->out = r.out;
    r.out = (struct buf)BUF_INIT;
    if (rc == 0 && r.why != 0)
        rc = rv_error_set(err, RV_ETIMEOUT, true,
                          "engine_pg: '%s' for '%s' did not finish within %d s (killed)", args[0],
                          e->app_name, timeout_ms / 1000);
    if (rc == 0)
        t->exit_code = r.exit_code[0];
out:
    if (password)
        explicit_bzero(pwenv, sizeof pwenv);
    child_result_release(&r);
    free(envp);
    return rc;
}

/* Run a tool that must exit 0; the error names it with its output's tail. */
static int run_tool_ok(const struct pg_engine *e, const char *const *args, const char *password,
                       int timeout_ms, struct tool_run *t, struct rv_error *err)
{
    int rc = run_tool(e, args, password, timeout_ms, t, err);
    if (rc == 0 && t->exit_code != 0) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &t->out);
        rc = rv_error_set(err, RV_ECHILD, false, "engine_pg: '%s' for '%s' failed (exit %d): %s",
                          args[0], e->app_name, t->exit_code, tail);
    }
    return rc;
}

/* --- configuration files --- */

static int render_conninfo(struct buf *b, const struct pg_engine *e, const struct pg_primary *p,
                           bool passfile)
{
    int rc = buf_printf(b, "host=%s port=%d user=%s application_name=%s connect_timeout=%d",
                        p->host, p->port, e->repl_user, e->app_name, RV_PG_CONNECT_TIMEOUT_S);
    if (rc == 0 && passfile)
        rc = buf_printf(b, " passfile=%s/reeve.pgpass", e->data_dir);
    return rc;
}

static int write_reeve_conf(const struct pg_engine *e, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    struct buf ci = BUF_INIT;
    char path[RV_PG_PATH_MAX + 32];
    int rc = data_path(path, sizeof path, e, "reeve.conf", err);
    if (rc != 0)
        goto out;
    rc = buf_puts(&b, "# reeve.conf: written by reeve-agent and rewritten whole on every\n"
                      "# change; edit the cluster spec instead.\n");
    if (rc == 0)
        rc = buf_printf(&b,
                        "listen_addresses = '%s'\n"
                        "port = %d\n"
                        "unix_socket_directories = ",
                        e->listen_address, e->port);
    if (rc == 0)
        rc = pg_conf_quote(&b, e->socket_dir);
    /* The superuser is trusted on the socket; only the server's OS user
     * may open it. A standby reports its position at least every second:
     * a standby that became synchronous while catching up releases the
     * commits waiting for it only at its next report, and with every
     * writer waiting no new WAL prompts one (the default is 10 s). */
    if (rc == 0)
        rc = buf_printf(&b,
                        "\nunix_socket_permissions = 0700\n"
                        "cluster_name = '%s'\n"
                        "wal_level = replica\n"
                        "max_wal_senders = 16\n"
                        "max_replication_slots = 16\n"
                        "wal_keep_size = '256MB'\n"
                        "hot_standby = on\n"
                        "hot_standby_feedback = on\n"
                        "wal_receiver_status_interval = 1s\n"
                        "wal_log_hints = on\n"
                        "password_encryption = 'scram-sha-256'\n"
                        "synchronous_commit = on\n"
                        "synchronous_standby_names = ",
                        e->app_name);
    if (rc == 0)
        rc = pg_conf_quote(&b, e->sync_names);
    if (rc == 0)
        rc = buf_puts(&b, "\nrecovery_target_timeline = 'latest'\nprimary_conninfo = ");
    if (rc == 0 && e->standby && e->primary.host[0])
        rc = render_conninfo(&ci, e, &e->primary, true);
    if (rc == 0)
        rc = pg_conf_quote(&b, ci.data ? ci.data : "");
    if (rc == 0)
        rc = buf_puts(&b, "\nprimary_slot_name = ");
    if (rc == 0)
        rc = pg_conf_quote(&b, e->standby ? e->primary.slot : "");
    if (rc == 0)
        rc = buf_printf(&b, "\n%s", e->extra_conf);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    rc = write_file(e, path, b.data, 0600, err);
out:
    buf_release(&ci);
    buf_release(&b);
    return rc;
}

static int write_pgpass(const struct pg_engine *e, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    char path[RV_PG_PATH_MAX + 32];
    int rc = data_path(path, sizeof path, e, "reeve.pgpass", err);
    if (rc != 0)
        goto out;
    rc = buf_printf(&b, "*:*:*:%s:", e->repl_user);
    for (const char *p = e->repl_password; rc == 0 && *p; p++) {
        if (*p == ':' || *p == '\\')
            rc = buf_putc(&b, '\\');
        if (rc == 0)
            rc = buf_putc(&b, *p);
    }
    if (rc == 0)
        rc = buf_putc(&b, '\n');
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    rc = write_file(e, path, b.data, 0600, err);
out:
    if (b.data)
        explicit_bzero(b.data, b.cap);
    buf_release(&b);
    return rc;
}

static int write_hba(const struct pg_engine *e, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    char path[RV_PG_PATH_MAX + 32];
    int rc = data_path(path, sizeof path, e, "pg_hba.conf", err);
    if (rc != 0)
        goto out;
    rc = buf_printf(&b,
                    "# pg_hba.conf: written by reeve-agent.\n"
                    "# The superuser only over the socket (mode 0700, the server's OS user).\n"
                    "local all \"%s\" trust\n"
                    "local all all reject\n"
                    "# Streaming replication, and pg_rewind's source connection.\n"
                    "host replication \"%s\" %s scram-sha-256\n"
                    "host postgres \"%s\" %s scram-sha-256\n"
                    "host all \"%s\" all reject\n"
                    "host all all %s scram-sha-256\n",
                    e->superuser, e->repl_user, e->allowed_cidr, e->repl_user, e->allowed_cidr,
                    e->superuser, e->allowed_cidr);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    rc = write_file(e, path, b.data, 0600, err);
out:
    buf_release(&b);
    return rc;
}

/* postgresql.conf ends with include 'reeve.conf' (added once). */
static int include_reeve_conf(const struct pg_engine *e, struct rv_error *err)
{
    static const char line[] = "\ninclude 'reeve.conf'\n";
    char path[RV_PG_PATH_MAX + 32];
    struct buf b = BUF_INIT;
    int rc = data_path(path, sizeof path, e, "postgresql.conf", err);
    if (rc == 0)
        rc = fs_read_file(&b, path, RV_PG_CONF_FILE_MAX, "engine_pg", err);
    if (rc != 0)
        goto out;
    if (strstr(b.data, line + 1))
        goto out;
    if (buf_puts(&b, line) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    rc = write_file(e, path, b.data, 0600, err);
out:
    buf_release(&b);
    return rc;
}

static int write_standby_signal(const struct pg_engine *e, struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    int rc = data_path(path, sizeof path, e, "standby.signal", err);
    if (rc == 0)
        rc = write_file(e, path, "", 0600, err);
    return rc;
}

/* --- libpq --- */

static int connect_local(const struct pg_engine *e, PGconn **out, struct rv_error *err)
{
    char port[16];
    char timeout[16];
    char options[64];
    snprintf(port, sizeof port, "%d", e->port);
    snprintf(timeout, sizeof timeout, "%d", RV_PG_CONNECT_TIMEOUT_S);
    snprintf(options, sizeof options, "-c statement_timeout=%d", RV_PG_STATEMENT_TIMEOUT_MS);
    const char *const keys[] = {
        "host", "port", "user", "dbname", "connect_timeout", "options", "application_name", NULL};
    const char *const vals[] = {e->socket_dir, port,    e->superuser,  "postgres",
                                timeout,       options, "reeve-agent", NULL};
    *out = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c)
        return rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(c);
        return rv_error_set(err, RV_EUNAVAIL, true, "engine_pg: cannot connect to '%s' on '%s': %s",
                            e->app_name, e->socket_dir, msg);
    }
    *out = c;
    return 0;
}

/* Server notices ("role is already a member") are not for the log. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int pg_connect_local(PGconn **out, const char *socket_dir, int port, const char *user,
                     const char *app, int statement_ms, struct rv_error *err)
{
    char port_s[16], options[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(options, sizeof options, "-c statement_timeout=%d", statement_ms);
    const char *const keys[] = {
        "host", "port", "user", "dbname", "connect_timeout", "application_name", "options", NULL};
    const char *const vals[] = {
        socket_dir, port_s, user, "postgres", "10", app, statement_ms > 0 ? options : NULL, NULL};
    PGconn *pc = PQconnectdbParams(keys, vals, 0);
    *out = NULL;
    if (pc == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (PQstatus(pc) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pc));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(pc);
        return rv_error_set(err, RV_EUNAVAIL, true, "cannot connect to the local server: %s", msg);
    }
    PQsetNoticeProcessor(pc, quiet, NULL);
    *out = pc;
    return 0;
}

/* The first value of a result, "" when it has none. */
static const char *value0(const PGresult *r)
{
    return PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "";
}

/* Run sql with text parameters; *res (may be NULL) receives the result of a
 * query that returns rows. */
static int sql_exec(PGconn *c, const struct pg_engine *e, const char *sql, int n,
                    const char *const *params, PGresult **res, struct rv_error *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    int rc = 0;
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        char msg[256];
        snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        int code = RV_EDB;
        bool retry = false;
        if (PQstatus(c) != CONNECTION_OK) {
            code = RV_EUNAVAIL;
            retry = true;
        } else if (state && (strcmp(state, "42704") == 0 || strncmp(state, "22", 2) == 0)) {
            code = RV_EINVAL;
        } else if (state && strcmp(state, "42710") == 0) {
            code = RV_EEXISTS;
        } else if (state && strcmp(state, "57014") == 0) {
            code = RV_ETIMEOUT;
            retry = true;
        }
        rc = rv_error_set(err, code, retry, "engine_pg: '%s': %s", e->app_name, msg);
        PQclear(r);
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* --- public API --- */

int pg_primary_parse(struct pg_primary *p, const char *hostport, struct rv_error *err)
{
    memset(p, 0, sizeof *p);
    const char *colon = hostport ? strrchr(hostport, ':') : NULL;
    if (!colon || colon == hostport)
        return rv_error_set(err, RV_EINVAL, false, "engine_pg: primary '%s' is not host:port",
                            hostport ? hostport : "");
    size_t hl = (size_t)(colon - hostport);
    if (hl > RV_PG_HOST_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "engine_pg: primary host is too long");
    memcpy(p->host, hostport, hl);
    p->host[hl] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (!eng_valid_host(p->host, RV_PG_HOST_MAX) || *end || end == colon + 1 || errno || port < 1 ||
        port > 65535)
        return rv_error_set(err, RV_EINVAL, false, "engine_pg: primary '%s' is not host:port",
                            hostport);
    p->port = (int)port;
    return 0;
}

static int check_primary(const struct pg_primary *p, struct rv_error *err)
{
    if (!p || !eng_valid_host(p->host, RV_PG_HOST_MAX) || p->port < 1 || p->port > 65535)
        return rv_error_set(err, RV_EINVAL, false, "engine_pg: invalid primary address");
    if (p->slot[0] && !valid_slot(p->slot))
        return rv_error_set(err, RV_EINVAL, false,
                            "engine_pg: slot name '%s' may only hold a-z, 0-9 and '_'", p->slot);
    return 0;
}

int pg_lsn_parse(uint64_t *out, const char *s)
{
    char *end;
    *out = 0;
    if (!s || !*s)
        return RV_EPARSE;
    errno = 0;
    unsigned long hi = strtoul(s, &end, 16);
    if (end == s || *end != '/' || errno || hi > 0xffffffffUL)
        return RV_EPARSE;
    const char *lo_s = end + 1;
    unsigned long lo = strtoul(lo_s, &end, 16);
    if (end == lo_s || *end || errno || lo > 0xffffffffUL)
        return RV_EPARSE;
    *out = ((uint64_t)hi << 32) | (uint64_t)lo;
    return 0;
}

int pg_engine_init(struct pg_engine *e, const struct pg_engine_config *cfg, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    int rc = 0;
    memset(e, 0, sizeof *e);
    if ((rc = copy_str(e->bin_dir, sizeof e->bin_dir, cfg->bin_dir, "bin_dir", err)) ||
        (rc = copy_str(e->data_dir, sizeof e->data_dir, cfg->data_dir, "data_dir", err)) ||
        (rc = copy_str(e->socket_dir, RV_PG_SOCKET_DIR_MAX + 1, cfg->socket_dir, "socket_dir",
                       err)) ||
        (rc = copy_str(e->listen_address, sizeof e->listen_address, cfg->listen_address,
                       "listen_address", err)) ||
        (rc = copy_str(e->superuser, sizeof e->superuser, cfg->superuser, "superuser", err)) ||
        (rc = copy_str(e->repl_user, sizeof e->repl_user, cfg->replication_user, "replication_user",
                       err)) ||
        (rc = copy_str(e->repl_password, sizeof e->repl_password, cfg->replication_password,
                       "replication_password", err)) ||
        (rc = copy_str(e->app_name, sizeof e->app_name, cfg->application_name, "application_name",
                       err)) ||
        (rc = copy_str(e->allowed_cidr, sizeof e->allowed_cidr,
                       cfg->allowed_cidr ? cfg->allowed_cidr : "127.0.0.0/8", "allowed_cidr", err)))
        goto out;
    if (cfg->log_file) {
        rc = copy_str(e->log_file, sizeof e->log_file, cfg->log_file, "log_file", err);
    } else if (snprintf(e->log_file, sizeof e->log_file, "%s.log", e->data_dir) >=
               (int)sizeof e->log_file) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_pg: 'log_file' is too long");
    }
    if (rc != 0)
        goto out;
    const char *paths[] = {e->bin_dir, e->data_dir, e->socket_dir, e->log_file};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!eng_valid_path(paths[i], NULL)) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "engine_pg: path '%s' must be absolute, without spaces, quotes "
                              "or control characters",
                              paths[i]);
            goto out;
        }
    }
    const char *names[] = {e->superuser, e->repl_user, e->app_name};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!eng_valid_name(names[i], RV_PG_NAME_MAX)) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "engine_pg: name '%s' may only hold letters, digits, '_' and '-'",
                              names[i]);
            goto out;
        }
    }
    if (!eng_valid_host(e->listen_address, RV_PG_HOST_MAX) ||
        !eng_valid_host(e->allowed_cidr, RV_PG_HOST_MAX)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_pg: listen address '%s' or cidr '%s' is malformed",
                          e->listen_address, e->allowed_cidr);
        goto out;
    }
    if (cfg->port < 1 || cfg->port > 65535) {
        rc = rv_error_set(err, RV_EINVAL, false, "engine_pg: port %d is out of range", cfg->port);
        goto out;
    }
    e->port = cfg->port;
    for (const char *p = e->repl_password; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "engine_pg: the replication password holds a control character");
            goto out;
        }
    }
    e->no_sync = cfg->no_sync;
    if (cfg->os_user) {
        struct passwd pw, *res = NULL;
        char pwbuf[4096];
        int pr = getpwnam_r(cfg->os_user, &pw, pwbuf, sizeof pwbuf, &res);
        if (pr != 0 || !res) {
            rc = rv_error_set(err, RV_ENOTFOUND, false, "engine_pg: os user '%s' not found",
                              cfg->os_user);
            goto out;
        }
        if (res->pw_uid != geteuid()) {
            if (geteuid() != 0) {
                rc = rv_error_set(err, RV_EINVAL, false,
                                  "engine_pg: running the server as '%s' needs root; run the "
                                  "agent as that user instead",
                                  cfg->os_user);
                goto out;
            }
            e->run_as = true;
            e->uid = res->pw_uid;
            e->gid = res->pw_gid;
        }
    }
    if (cfg->n_extra > RV_PG_PARAMS_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_pg: more than %d extra parameters",
                          RV_PG_PARAMS_MAX);
        goto out;
    }
    for (size_t i = 0; i < cfg->n_extra; i++) {
        const struct pg_param *p = &cfg->extra[i];
        if (!p->name || !p->value || !valid_param_name(p->name) || !valid_value(p->value)) {
            rc = rv_error_set(err, RV_EINVAL, false, "engine_pg: extra parameter '%s' is malformed",
                              p->name ? p->name : "");
            goto out;
        }
        if ((rc = buf_printf(&b, "%s = ", p->name)) || (rc = pg_conf_quote(&b, p->value)) ||
            (rc = buf_putc(&b, '\n'))) {
            rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
            goto out;
        }
    }
    if (b.len > RV_PG_CONF_EXTRA_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_pg: extra parameters exceed %d bytes",
                          RV_PG_CONF_EXTRA_MAX);
        goto out;
    }
    if (b.data)
        memcpy(e->extra_conf, b.data, b.len + 1);
out:
    buf_release(&b);
    if (rc != 0)
        pg_engine_release(e);
    return rc;
}

void pg_engine_release(struct pg_engine *e)
{
    if (e)
        explicit_bzero(e->repl_password, sizeof e->repl_password);
}

int pg_engine_start(struct pg_engine *e, struct rv_error *err)
{
    struct tool_run t = {0};
    char secs[16];
    int rc = 0;
    if (pg_engine_running(e))
        goto out;
    if ((rc = ensure_dir(e, e->socket_dir, err)) != 0)
        goto out;
    snprintf(secs, sizeof secs, "%d", RV_PG_START_TIMEOUT_MS / 1000);
    const char *args[] = {"pg_ctl", "start", "-D", e->data_dir, "-l", e->log_file,
                          "-w",     "-t",    secs, "-s",        NULL};
    rc = run_tool(e, args, NULL, RV_PG_START_TIMEOUT_MS + 5000, &t, err);
    if (rc == 0 && t.exit_code != 0) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &t.out);
        rc = rv_error_set(err, RV_ECHILD, true,
                          "engine_pg: cannot start '%s' (exit %d): %s; see '%s'", e->app_name,
                          t.exit_code, tail, e->log_file);
    }
    if (rc == 0)
        log_info(COMPONENT, "started '%s' on %s:%d", e->app_name, e->listen_address, e->port);
out:
    tool_run_release(&t);
    return rc;
}

int pg_engine_stop(struct pg_engine *e, enum pg_stop_mode mode, struct rv_error *err)
{
    struct tool_run t = {0};
    char secs[16];
    int rc = 0;
    const char *m = mode == PG_STOP_IMMEDIATE ? "immediate" : "fast";
    if (!pg_engine_running(e))
        goto out;
    snprintf(secs, sizeof secs, "%d", RV_PG_STOP_TIMEOUT_MS / 1000);
    const char *args[] = {"pg_ctl", "stop", "-D", e->data_dir, "-m", m,
                          "-w",     "-t",   secs, "-s",        NULL};
    rc = run_tool(e, args, NULL, RV_PG_STOP_TIMEOUT_MS + 5000, &t, err);
    if (rc == 0 && t.exit_code != 0 && pg_engine_running(e)) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &t.out);
        rc = rv_error_set(err, RV_ETIMEOUT, true, "engine_pg: cannot stop '%s' (%s): %s",
                          e->app_name, m, tail);
    }
    if (rc == 0)
        log_info(COMPONENT, "stopped '%s' (%s)", e->app_name, m);
out:
    tool_run_release(&t);
    return rc;
}

int pg_engine_initdb(struct pg_engine *e, struct rv_error *err)
{
    struct tool_run t = {0};
    PGconn *c = NULL;
    char *verifier = NULL;
    char *ident = NULL;
    char *lit = NULL;
    struct buf sql = BUF_INIT;
    int rc = check_empty_dir(e->data_dir, err);
    if (rc != 0)
        goto out;
    char user_opt[RV_PG_NAME_MAX + 16];
    snprintf(user_opt, sizeof user_opt, "--username=%s", e->superuser);
    const char *args[] = {"initdb",
                          "-D",
                          e->data_dir,
                          user_opt,
                          "--data-checksums",
                          "--encoding=UTF8",
                          "--locale=C.UTF-8",
                          "--auth-local=trust",
                          "--auth-host=scram-sha-256",
                          e->no_sync ? "--no-sync" : NULL,
                          NULL};
    if ((rc = run_tool_ok(e, args, NULL, RV_PG_INITDB_TIMEOUT_MS, &t, err)) != 0)
        goto out;
    e->standby = false;
    memset(&e->primary, 0, sizeof e->primary);
    if ((rc = write_reeve_conf(e, err)) || (rc = include_reeve_conf(e, err)) ||
        (rc = write_hba(e, err)) || (rc = write_pgpass(e, err)))
        goto out;
    if ((rc = pg_engine_start(e, err)) != 0)
        goto out;
    if ((rc = connect_local(e, &c, err)) != 0)
        goto out;
    verifier = PQencryptPasswordConn(c, e->repl_password, e->repl_user, "scram-sha-256");
    ident = PQescapeIdentifier(c, e->repl_user, strlen(e->repl_user));
    if (!verifier || !ident || !(lit = PQescapeLiteral(c, verifier, strlen(verifier)))) {
        rc = rv_error_set(err, RV_EDB, false,
                          "engine_pg: cannot prepare the replication user for '%s'", e->app_name);
        goto out;
    }
    if (buf_printf(&sql,
                   "CREATE ROLE %s WITH LOGIN REPLICATION PASSWORD %s;"
                   "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO %s;"
                   "GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO %s;"
                   "GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO %s;"
                   "GRANT EXECUTE ON FUNCTION "
                   "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO %s;",
                   ident, lit, ident, ident, ident, ident) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    PGresult *r = PQexec(c, sql.data);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        msg[strcspn(msg, "\n")] = '\0';
        rc = rv_error_set(err, RV_EDB, false,
                          "engine_pg: cannot create replication user '%s' on '%s': %s",
                          e->repl_user, e->app_name, msg);
    }
    PQclear(r);
    if (rc == 0)
        log_info(COMPONENT, "initialised '%s' in '%s'", e->app_name, e->data_dir);
out:
    if (sql.data)
        explicit_bzero(sql.data, sql.cap);
    buf_release(&sql);
    PQfreemem(lit);
    PQfreemem(ident);
    PQfreemem(verifier);
    if (c)
        PQfinish(c);
    tool_run_release(&t);
    return rc;
}

int pg_engine_status(struct pg_engine *e, uint64_t primary_lsn, struct pg_status *st,
                     struct rv_error *err)
{
    static const char q[] =
        "SELECT pg_is_in_recovery()::text,"
        " CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_replay_lsn()::text, '')"
        "      ELSE pg_current_wal_lsn()::text END,"
        " COALESCE(pg_last_wal_receive_lsn()::text, ''),"
        " COALESCE(pg_last_wal_replay_lsn()::text, ''),"
        " CASE WHEN pg_is_in_recovery() THEN lpad(to_hex(COALESCE("
        "        (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1),"
        "        (SELECT timeline_id FROM pg_control_checkpoint()))), 8, '0')"
        "      ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END,"
        " COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver LIMIT 1),"
        "          false)::text,"
        " COALESCE((SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings"
        "           WHERE pending_restart), '')";
    PGconn *c = NULL;
    PGresult *r = NULL;
    struct rv_error cerr;
    int rc = 0;
    memset(st, 0, sizeof *st);
    st->running = pg_engine_running(e);
    if (!st->running)
        goto out;
    if (connect_local(e, &c, &cerr) != 0)
        goto out; /* running but not accepting: starting, stopping, or wedged */
    st->accepting = true;
    if ((rc = sql_exec(c, e, q, 0, NULL, &r, err)) != 0)
        goto out;
    if (PQntuples(r) != 1 || PQnfields(r) != 7) {
        rc = rv_error_set(err, RV_EPROTO, true, "engine_pg: unexpected status reply from '%s'",
                          e->app_name);
        goto out;
    }
    st->in_recovery = strcmp(PQgetvalue(r, 0, 0), "true") == 0;
    st->streaming = strcmp(PQgetvalue(r, 0, 5), "true") == 0;
    uint64_t cur = 0, recv = 0, replay = 0;
    if (pg_lsn_parse(&cur, PQgetvalue(r, 0, 1)) == 0)
        st->current_lsn = cur;
    if (st->in_recovery && pg_lsn_parse(&recv, PQgetvalue(r, 0, 2)) == 0)
        st->receive_lsn = recv;
    if (st->in_recovery && pg_lsn_parse(&replay, PQgetvalue(r, 0, 3)) == 0)
        st->replay_lsn = replay;
    char *end;
    unsigned long tli = strtoul(PQgetvalue(r, 0, 4), &end, 16);
    if (*end == '\0' && tli <= 0xffffffffUL)
        st->timeline = (uint32_t)tli;
    snprintf(st->pending_restart, sizeof st->pending_restart, "%s", PQgetvalue(r, 0, 6));
    if (st->in_recovery && primary_lsn > st->replay_lsn)
        st->lag_bytes = primary_lsn - st->replay_lsn;
out:
    PQclear(r);
    if (c)
        PQfinish(c);
    return rc;
}

int pg_engine_clone_from(struct pg_engine *e, const struct pg_primary *primary,
                         struct rv_error *err)
{
    struct tool_run t = {0};
    struct buf ci = BUF_INIT;
    int rc = check_primary(primary, err);
    if (rc != 0 || (rc = check_empty_dir(e->data_dir, err)) != 0)
        goto out;
    if (pg_engine_running(e)) {
        rc = rv_error_set(err, RV_ECONFLICT, false, "engine_pg: '%s' is running; stop it first",
                          e->app_name);
        goto out;
    }
    if (render_conninfo(&ci, e, primary, false) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    const char *args[16] = {"pg_basebackup",     "-D", e->data_dir, "-d", ci.data, "-X", "stream",
                            "--checkpoint=fast", "-w", NULL};
    size_t n = 9;
    if (primary->slot[0]) {
        args[n++] = "-S";
        args[n++] = primary->slot;
    }
    if (e->no_sync)
        args[n++] = "--no-sync";
    args[n] = NULL;
    rc = run_tool(e, args, e->repl_password, RV_PG_COPY_TIMEOUT_MS, &t, err);
    if (rc == 0 && t.exit_code != 0) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &t.out);
        bool conn =
            output_has(&t.out, "could not connect") || output_has(&t.out, "connection to server");
        rc = rv_error_set(err, conn ? RV_EUNAVAIL : RV_ECHILD, conn,
                          "engine_pg: cannot clone '%s' from %s:%d (exit %d): %s", e->app_name,
                          primary->host, primary->port, t.exit_code, tail);
        goto out;
    }
    if (rc != 0)
        goto out;
    e->standby = true;
    e->primary = *primary;
    if ((rc = write_reeve_conf(e, err)) || (rc = write_pgpass(e, err)) ||
        (rc = write_standby_signal(e, err)))
        goto out;
    log_info(COMPONENT, "cloned '%s' from %s:%d", e->app_name, primary->host, primary->port);
out:
    buf_release(&ci);
    tool_run_release(&t);
    return rc;
}

int pg_engine_adopt_restored(struct pg_engine *e, struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    int rc = 0;
    if (pg_engine_running(e))
        return rv_error_set(err, RV_ECONFLICT, false, "engine_pg: '%s' is running; stop it first",
                            e->app_name);
    e->standby = false;
    memset(&e->primary, 0, sizeof e->primary);
    if ((rc = write_reeve_conf(e, err)) || (rc = include_reeve_conf(e, err)) ||
        (rc = write_hba(e, err)) || (rc = write_pgpass(e, err)) ||
        (rc = data_path(path, sizeof path, e, "standby.signal", err)))
        return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return rv_error_set(err, RV_EIO, false, "engine_pg: cannot remove '%s': %s", path,
                            strerror(errno));
    return 0;
}

static int reload(PGconn *c, const struct pg_engine *e, struct rv_error *err)
{
    return sql_exec(c, e, "SELECT pg_reload_conf()", 0, NULL, NULL, err);
}

int pg_engine_make_standby(struct pg_engine *e, const struct pg_primary *primary,
                           struct rv_error *err)
{
    struct pg_status st;
    PGconn *c = NULL;
    int rc = check_primary(primary, err);
    if (rc != 0 || (rc = pg_engine_status(e, 0, &st, err)) != 0)
        goto out;
    if (st.running && (!st.accepting || !st.in_recovery)) {
        rc = rv_error_set(err, RV_ECONFLICT, !st.accepting,
                          "engine_pg: '%s' is running %s; fence it before making it a standby",
                          e->app_name, st.accepting ? "as a primary" : "and not accepting");
        goto out;
    }
    e->standby = true;
    e->primary = *primary;
    if ((rc = write_reeve_conf(e, err)) || (rc = write_pgpass(e, err)) ||
        (rc = write_standby_signal(e, err)))
        goto out;
    if (st.running) {
        if ((rc = connect_local(e, &c, err)) != 0)
            goto out;
        rc = reload(c, e, err);
    } else {
        rc = pg_engine_start(e, err);
    }
    if (rc == 0)
        log_info(COMPONENT, "'%s' follows %s:%d", e->app_name, primary->host, primary->port);
out:
    if (c)
        PQfinish(c);
    return rc;
}

int pg_engine_promote(struct pg_engine *e, struct rv_error *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    char secs[16];
    int rc = 0;
    if ((rc = connect_local(e, &c, err)) != 0)
        goto out;
    if ((rc = sql_exec(c, e, "SELECT pg_is_in_recovery()::text", 0, NULL, &r, err)) != 0)
        goto out;
    bool in_recovery = strcmp(value0(r), "true") == 0;
    PQclear(r);
    r = NULL;
    if (in_recovery) {
        snprintf(secs, sizeof secs, "%d", RV_PG_PROMOTE_TIMEOUT_MS / 1000);
        const char *p[] = {secs};
        if ((rc = sql_exec(c, e, "SET statement_timeout = 0", 0, NULL, NULL, err)) ||
            (rc = sql_exec(c, e, "SELECT pg_promote(true, $1::int)::text", 1, p, &r, err)))
            goto out;
        if (strcmp(value0(r), "true") != 0) {
            rc = rv_error_set(err, RV_ETIMEOUT, true,
                              "engine_pg: '%s' did not finish promotion within %s s", e->app_name,
                              secs);
            goto out;
        }
    }
    /* The end-of-recovery checkpoint is skipped by a fast promotion; take
     * one so pg_rewind on the old primary sees the new timeline. */
    if ((rc = sql_exec(c, e, "CHECKPOINT", 0, NULL, NULL, err)) != 0)
        goto out;
    e->standby = false;
    memset(&e->primary, 0, sizeof e->primary);
    if ((rc = write_reeve_conf(e, err)) != 0)
        goto out;
    if (in_recovery)
        log_info(COMPONENT, "promoted '%s'", e->app_name);
out:
    PQclear(r);
    if (c)
        PQfinish(c);
    return rc;
}

static int stop_hard(struct pg_engine *e, struct rv_error *err)
{
    int rc = pg_engine_stop(e, PG_STOP_FAST, err);
    if (rc != 0) {
        log_warn(COMPONENT, "fast stop of '%s' failed; stopping immediately", e->app_name);
        rc = pg_engine_stop(e, PG_STOP_IMMEDIATE, err);
    }
    return rc;
}

int pg_engine_rewind(struct pg_engine *e, const struct pg_primary *primary, struct rv_error *err)
{
    struct tool_run t = {0};
    struct buf ci = BUF_INIT;
    int rc = check_primary(primary, err);
    if (rc != 0 || (rc = stop_hard(e, err)) != 0)
        goto out;
    if (render_conninfo(&ci, e, primary, false) != 0 || buf_puts(&ci, " dbname=postgres") != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    char target[RV_PG_PATH_MAX + 32];
    char source[RV_PG_PATH_MAX + 512];
    snprintf(target, sizeof target, "--target-pgdata=%s", e->data_dir);
    if (snprintf(source, sizeof source, "--source-server=%s", ci.data) >= (int)sizeof source) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_pg: conninfo is too long");
        goto out;
    }
    const char *args[] = {"pg_rewind", target, source, e->no_sync ? "--no-sync" : NULL, NULL};
    if ((rc = run_tool(e, args, e->repl_password, RV_PG_COPY_TIMEOUT_MS, &t, err)) != 0)
        goto out;
    if (t.exit_code != 0) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &t.out);
        if (output_has(&t.out, "could not connect") || output_has(&t.out, "connection to server")) {
            rc = rv_error_set(err, RV_EUNAVAIL, true,
                              "engine_pg: cannot rewind '%s': primary %s:%d unreachable: %s",
                              e->app_name, primary->host, primary->port, tail);
        } else {
            rc = rv_error_set(err, RV_ECONFLICT, false,
                              "engine_pg: cannot rewind '%s' from %s:%d: %s; re-clone it",
                              e->app_name, primary->host, primary->port, tail);
        }
        goto out;
    }
    log_info(COMPONENT, "rewound '%s' from %s:%d", e->app_name, primary->host, primary->port);
    rc = pg_engine_make_standby(e, primary, err);
out:
    buf_release(&ci);
    tool_run_release(&t);
    return rc;
}

int pg_engine_fence(struct pg_engine *e, const struct pg_primary *primary, struct rv_error *err)
{
    int rc = 0;
    if (primary && (rc = check_primary(primary, err)) != 0)
        goto out;
    if ((rc = stop_hard(e, err)) != 0)
        goto out;
    /* Whatever happens next, a restart must not bring back a primary. */
    e->standby = true;
    memset(&e->primary, 0, sizeof e->primary);
    if ((rc = write_reeve_conf(e, err)) || (rc = write_standby_signal(e, err)))
        goto out;
    log_warn(COMPONENT, "fenced '%s'", e->app_name);
    if (primary)
        rc = pg_engine_rewind(e, primary, err);
out:
    return rc;
}

int pg_engine_set_synchronous(struct pg_engine *e, const char *const *names, size_t n_names,
                              unsigned n, enum pg_sync_method method, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc = 0;
    if (n_names > RV_PG_SYNC_MEMBERS_MAX || n > n_names) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_pg: %u synchronous of %zu standbys is not possible (at most "
                          "%d)",
                          n, n_names, RV_PG_SYNC_MEMBERS_MAX);
        goto out;
    }
    if (n > 0) {
        rc = buf_printf(&b, "%s %u (", method == PG_SYNC_ANY ? "ANY" : "FIRST", n);
        for (size_t i = 0; rc == 0 && i < n_names; i++) {
            if (!names[i] || !eng_valid_name(names[i], RV_PG_NAME_MAX)) {
                rc =
                    rv_error_set(err, RV_EINVAL, false, "engine_pg: standby name '%s' is malformed",
                                 names[i] ? names[i] : "");
                goto out;
            }
            rc = buf_printf(&b, "%s\"%s\"", i ? ", " : "", names[i]);
        }
        if (rc == 0)
            rc = buf_putc(&b, ')');
        if (rc != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
            goto out;
        }
    }
    const char *value = b.data ? b.data : "";
    if (strlen(value) > RV_PG_SYNC_NAMES_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "engine_pg: synchronous_standby_names is over %d bytes",
                          RV_PG_SYNC_NAMES_MAX);
        goto out;
    }
    snprintf(e->sync_names, sizeof e->sync_names, "%s", value);
    if ((rc = write_reeve_conf(e, err)) != 0 || !pg_engine_running(e))
        goto out;
    if ((rc = connect_local(e, &c, err)) != 0)
        goto out;
    if ((rc = reload(c, e, err)) != 0)
        goto out;
    /* The session sees the reload once the postmaster has signalled it. */
    int64_t deadline = child_now_ms() + RV_PG_RELOAD_WAIT_MS;
    for (;;) {
        if ((rc = sql_exec(c, e, "SELECT current_setting('synchronous_standby_names')", 0, NULL, &r,
                           err)) != 0)
            goto out;
        bool live = strcmp(value0(r), value) == 0;
        PQclear(r);
        r = NULL;
        if (live)
            break;
        if (child_now_ms() >= deadline) {
            rc = rv_error_set(err, RV_ETIMEOUT, true,
                              "engine_pg: '%s' did not load synchronous_standby_names within "
                              "%d ms",
                              e->app_name, RV_PG_RELOAD_WAIT_MS);
            goto out;
        }
        child_sleep_ms(20);
    }
    log_info(COMPONENT, "'%s' synchronous_standby_names = '%s'", e->app_name, value);
out:
    PQclear(r);
    if (c)
        PQfinish(c);
    buf_release(&b);
    return rc;
}

int pg_engine_standbys(struct pg_engine *e, struct pg_standby *out, size_t cap, size_t *n,
                       struct rv_error *err)
{
    static const char q[] = "SELECT application_name, state, sync_state,"
                            " COALESCE(flush_lsn::text, '') FROM pg_stat_replication"
                            " WHERE NOT pg_is_in_recovery() ORDER BY application_name";
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc = 0;
    *n = 0;
    if (!pg_engine_running(e))
        goto out;
    if ((rc = connect_local(e, &c, err)) != 0 || (rc = sql_exec(c, e, q, 0, NULL, &r, err)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(r) && *n < cap; i++) {
        struct pg_standby *s = &out[*n];
        const char *name = PQgetvalue(r, i, 0);
        if (!eng_valid_name(name, RV_PG_NAME_MAX))
            continue; /* not one of ours (pg_basebackup, a tool) */
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", name);
        s->streaming = strcmp(PQgetvalue(r, i, 1), "streaming") == 0;
        s->sync =
            strcmp(PQgetvalue(r, i, 2), "sync") == 0 || strcmp(PQgetvalue(r, i, 2), "quorum") == 0;
        if (pg_lsn_parse(&s->flush_lsn, PQgetvalue(r, i, 3)) != 0)
            s->flush_lsn = 0;
        (*n)++;
    }
out:
    PQclear(r);
    if (c)
        PQfinish(c);
    return rc;
}

int pg_engine_apply_parameters(struct pg_engine *e, const struct pg_param *params, size_t n,
                               bool *restart_needed, struct rv_error *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    char *lit = NULL;
    struct buf sql = BUF_INIT;
    struct buf names = BUF_INIT;
    int rc = 0;
    *restart_needed = false;
    if (n > RV_PG_PARAMS_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_pg: more than %d parameters at once",
                          RV_PG_PARAMS_MAX);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct pg_param *p = &params[i];
        if (!p->name || !valid_param_name(p->name)) {
            rc = rv_error_set(err, RV_EINVAL, false, "engine_pg: parameter name '%s' is malformed",
                              p->name ? p->name : "");
            goto out;
        }
        if (!p->value || !valid_value(p->value)) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "engine_pg: value of parameter '%s' is malformed", p->name);
            goto out;
        }
        for (size_t j = 0; j < sizeof managed_params / sizeof managed_params[0]; j++) {
            if (strcmp(p->name, managed_params[j]) == 0) {
                rc = rv_error_set(err, RV_EINVAL, false,
                                  "engine_pg: parameter '%s' is managed by reeve itself", p->name);
                goto out;
            }
        }
        if (buf_printf(&names, "%s%s", i ? "," : "{", p->name) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
            goto out;
        }
    }
    if (n == 0)
        goto out;
    if (buf_putc(&names, '}') != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
        goto out;
    }
    if ((rc = connect_local(e, &c, err)) != 0)
        goto out;
    /* Names of built-in parameters are checked before anything changes;
     * dotted extension names are left to ALTER SYSTEM. */
    const char *np[] = {names.data};
    if ((rc = sql_exec(c, e,
                       "SELECT n FROM unnest($1::text[]) AS n WHERE position('.' in n) = 0"
                       " AND n NOT IN (SELECT name FROM pg_settings) LIMIT 1",
                       1, np, &r, err)) != 0)
        goto out;
    if (PQntuples(r) > 0) {
        rc = rv_error_set(err, RV_EINVAL, false, "engine_pg: '%s' has no parameter '%s'",
                          e->app_name, value0(r));
        goto out;
    }
    PQclear(r);
    r = NULL;
    for (size_t i = 0; i < n; i++) {
        lit = PQescapeLiteral(c, params[i].value, strlen(params[i].value));
        if (!lit) {
            rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
            goto out;
        }
        buf_clear(&sql);
        if (buf_printf(&sql, "ALTER SYSTEM SET %s = %s", params[i].name, lit) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "engine_pg: out of memory");
            goto out;
        }
        PQfreemem(lit);
        lit = NULL;
        if ((rc = sql_exec(c, e, sql.data, 0, NULL, NULL, err)) != 0)
            goto out;
    }
    /* pg_file_settings reads the files afresh: a setting whose new value
     * cannot be applied without a restart is marked so, independently of
     * when the reload reaches any backend. */
    if ((rc = sql_exec(c, e,
                       "SELECT count(*) FROM pg_file_settings"
                       " WHERE name = ANY($1::text[]) AND NOT applied AND error IS NOT NULL",
                       1, np, &r, err)) != 0)
        goto out;
    *restart_needed = strcmp(value0(r), "0") != 0;
    if ((rc = reload(c, e, err)) != 0)
        goto out;
    log_info(COMPONENT, "applied %zu parameters to '%s'%s", n, e->app_name,
             *restart_needed ? "; a restart is needed" : "");
out:
    PQfreemem(lit);
    PQclear(r);
    if (c)
        PQfinish(c);
    buf_release(&sql);
    buf_release(&names);
    return rc;
}

int pg_engine_create_replication_slot(struct pg_engine *e, const char *name, struct rv_error *err)
{
    PGconn *c = NULL;
    int rc = 0;
    if (!name || !valid_slot(name)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_pg: slot name '%s' may only hold a-z, 0-9 and '_'",
                          name ? name : "");
        goto out;
    }
    if ((rc = connect_local(e, &c, err)) != 0)
        goto out;
    const char *p[] = {name};
    rc = sql_exec(c, e, "SELECT pg_create_physical_replication_slot($1, true)", 1, p, NULL, err);
out:
    if (c)
        PQfinish(c);
    return rc;
}
