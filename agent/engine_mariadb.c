/* engine_mariadb.c - the MariaDB engine adapter (see engine_mariadb.h). */
#include "engine_mariadb.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

#define COMPONENT "engine_mariadb"

extern char **environ;

/* Settings reeve.cnf owns (or that would break the engine's view of the
 * server); apply_parameters refuses them. */
static const char *const managed_params[] = {
    "basedir",
    "bind_address",
    "binlog_format",
    "datadir",
    "gtid_domain_id",
    "gtid_slave_pos",
    "gtid_strict_mode",
    "log_bin",
    "log_bin_basename",
    "log_bin_index",
    "log_error",
    "log_slave_updates",
    "pid_file",
    "plugin_dir",
    "port",
    "read_only",
    "relay_log",
    "rpl_semi_sync_master_enabled",
    "rpl_semi_sync_master_timeout",
    "rpl_semi_sync_master_wait_point",
    "rpl_semi_sync_slave_enabled",
    "server_id",
    "skip_name_resolve",
    "skip_networking",
    "socket",
    "tmpdir",
};

/* MariaDB error numbers the engine tells apart (mysqld_error.h names some
 * of them differently across versions, so they are spelled here). */
enum {
    MDB_ER_MASTER_FATAL_READING_BINLOG = 1236, /* requested GTID not in the binlog */
    MDB_ER_GTID_STRICT_OUT_OF_ORDER = 1950,
    MDB_ER_ACCESS_DENIED = 1045,
    MDB_ER_NONEXISTING_GRANT = 1141,
    MDB_ER_WRONG_VALUE_FOR_VAR = 1231,
    MDB_ER_WRONG_TYPE_FOR_VAR = 1232,
    MDB_ER_UNKNOWN_SYSTEM_VARIABLE = 1193,
    MDB_ER_INCORRECT_GLOBAL_LOCAL_VAR = 1238,
};

/* --- small helpers --- */

static int copy_str(char *dst, size_t cap, const char *src, const char *what, struct rv_error *err)
{
    return eng_copy_str(dst, cap, src, what, "engine_mariadb", err);
}

/* Database names: also an identifier between backquotes. */
static bool valid_db_name(const char *s)
{
    if (!eng_valid_name(s, RV_MDB_NAME_MAX))
        return false;
    return strchr(s, '-') == NULL;
}

/* Variable names: lower case, digits and '_' (as SHOW VARIABLES spells
 * them; the option-file spelling with '-' is not accepted). */
static bool valid_param_name(const char *s)
{
    return s[0] >= 'a' && s[0] <= 'z' && eng_valid_lower(s, RV_MDB_NAME_MAX);
}

/* Values are written as name = "value" into an option file, which has no
 * escape for '"' that SET GLOBAL would agree with; so no quotes, no
 * backslashes, no control characters. */
static bool valid_value(const char *s)
{
    size_t n = strlen(s);
    if (n > RV_MDB_PARAM_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}

static bool valid_secret(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool managed(const char *name)
{
    for (size_t j = 0; j < sizeof managed_params / sizeof managed_params[0]; j++)
        if (strcmp(name, managed_params[j]) == 0)
            return true;
    return false;
}

static bool output_has(const struct buf *out, const char *needle)
{
    return out->data && strstr(out->data, needle) != NULL;
}

/* The last line of the server's error log that says [ERROR], else its last
 * line, for a failed start. */
static void log_tail(char *dst, size_t cap, const char *path)
{
    char chunk[4096];
    dst[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof chunk - 1 ? end - (off_t)sizeof chunk + 1 : 0;
    ssize_t r = pread(fd, chunk, sizeof chunk - 1, from);
    close(fd);
    if (r <= 0)
        return;
    chunk[r] = '\0';
    const char *pick = NULL;
    char *save = NULL;
    for (char *line = strtok_r(chunk, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, "[ERROR]") || !pick || !strstr(pick, "[ERROR]"))
            pick = line;
    }
    if (pick)
        snprintf(dst, cap, "%s", pick);
}

/* --- files --- */

/* Write path atomically (lib/fsutil), owned by the server's OS user. */
static int write_file(const struct mdb_engine *e, const char *path, const char *data, mode_t mode,
                      struct rv_error *err)
{
    struct fs_owner o = {e->uid, e->gid};
    return fs_write_atomic(path, data, strlen(data), mode, e->run_as ? &o : NULL, "engine_mariadb",
                           err);
}

static int data_path(char *dst, size_t cap, const struct mdb_engine *e, const char *name,
                     struct rv_error *err)
{
    return eng_join_path(dst, cap, e->data_dir, name, "engine_mariadb", err);
}

/* Read the small file name in the data directory whole into out (path
 * receives its full name, for messages). A missing file is RV_ENOTFOUND. */
static int read_data_file(const struct mdb_engine *e, const char *name, char *path, size_t cap,
                          struct buf *out, struct rv_error *err)
{
    int rc = data_path(path, cap, e, name, err);
    if (rc == 0)
        rc = fs_read_file(out, path, RV_MDB_CONF_FILE_MAX, "engine_mariadb", err);
    return rc;
}

/* A file reeve writes into the data directory: one not written yet reads
 * as empty (out->data stays NULL). */
static int read_own_file(const struct mdb_engine *e, const char *name, char *path, size_t cap,
                         struct buf *out, struct rv_error *err)
{
    int rc = read_data_file(e, name, path, cap, out, err);
    return rc == RV_ENOTFOUND ? 0 : rc;
}

/* The data directory must not exist or be empty before install or a clone;
 * *exists says whether it is there. */
static int check_empty_dir(const char *path, bool *exists, struct rv_error *err)
{
    return eng_check_empty_dir(path, exists, "engine_mariadb", err);
}

static int ensure_dir(const struct mdb_engine *e, const char *path, struct rv_error *err)
{
    struct fs_owner o = {e->uid, e->gid};
    return eng_ensure_dir(path, e->run_as ? &o : NULL, "engine_mariadb", err);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Remove what a failed clone left: the whole data directory when the clone
 * created it, else only its contents. */
static void remove_data(const struct mdb_engine *e, bool keep_dir)
{
    if (nftw(e->data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        log_warn(COMPONENT, "cannot remove '%s' entirely: %s", e->data_dir, strerror(errno));
    if (keep_dir) {
        struct rv_error ignored;
        (void)ensure_dir(e, e->data_dir, &ignored);
    }
}

/* --- the server process --- */

/* The pid in the pid file when that process is alive, not a zombie, and a
 * mariadbd started with this data directory's reeve.cnf (so a stale pid
 * file whose pid was reused never counts); else 0. */
static pid_t server_pid(const struct mdb_engine *e)
{
    char path[RV_MDB_PATH_MAX + 32];
    char line[32] = {0};
    char want[RV_MDB_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/mariadbd.pid", e->data_dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    char *end;
    long pid = strtol(line, &end, 10);
    if (end == line || pid <= 0 || pid > 0x3fffffffL)
        return 0;
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
        return 0;
    /* The state is the field after "(comm)". */
    char stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *rp = strrchr(stat, ')');
    if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
        return 0;
    /* argv is NUL-separated; look for our --defaults-file argument. */
    char args[4096];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    n = fread(args, 1, sizeof args - 1, f);
    fclose(f);
    args[n] = '\0';
    snprintf(want, sizeof want, "--defaults-file=%s/reeve.cnf", e->data_dir);
    for (size_t i = 0; i < n; i += strlen(args + i) + 1)
        if (strcmp(args + i, want) == 0)
            return (pid_t)pid;
    return 0;
}

/* --- child processes --- */

/* The caller's environment without MySQL client and locale variables (so
 * a stray MYSQL_HOST or MYSQL_PWD cannot redirect a tool, and messages are
 * in English), HOME=/ so no ~/.my.cnf is read. Free with free(). */
static char **mdb_child_env(void)
{
    static const char *const drop[] = {"MYSQL", "MARIADB", "LC_", "LANG", "HOME=", "TZ=", NULL};
    static const char *const add[] = {"LC_ALL=C", "HOME=/", NULL};
    return child_env(drop, add);
}

/* Run the n children as a pipeline with one deadline (lib/child): their
 * stderr (and stdout unless redirected) go to r->out, the last
 * RV_MDB_OUTPUT_MAX bytes. On timeout all are killed. Exit codes are in
 * r->exit_code; release r even on failure. */
static int run_children(const struct mdb_engine *e, struct child_spec *c, size_t n, int timeout_ms,
                        int close_fds[2], struct child_result *r, struct rv_error *err)
{
    char **envp = mdb_child_env();
    int rc;
    memset(r, 0, sizeof *r);
    if (!envp)
        return rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
    for (size_t i = 0; i < n; i++) {
        c[i].envp = envp;
        log_debug(COMPONENT, "running '%s' for '%s'", c[i].argv[0], e->node_name);
    }
    struct child_opts o = {.timeout_ms = timeout_ms,
                           .output_max = RV_MDB_OUTPUT_MAX,
                           .close_after_spawn = close_fds,
                           .n_close = close_fds ? 2 : 0};
    rc = child_run(r, c, n, &o, err);
    if (rc == 0 && r->why != 0)
        rc = rv_error_set(err, RV_ETIMEOUT, true,
                          "engine_mariadb: '%s' for '%s' did not finish within %d s (killed)",
                          c[0].argv[0], e->node_name, timeout_ms / 1000);
    free(envp);
    return rc;
}

/* A tool run as the server's OS user: stdin /dev/null, output captured. */
static void child_as(struct child_spec *c, const struct mdb_engine *e, const char *const *args)
{
    memset(c, 0, sizeof *c);
    c->argv = args;
    c->run_as = e->run_as;
    c->uid = e->uid;
    c->gid = e->gid;
    c->label = "engine_mariadb";
}

/* Run one tool that must exit 0; the error names it with its output's tail. */
static int run_tool_ok(const struct mdb_engine *e, const char *const *args, int timeout_ms,
                       struct rv_error *err)
{
    struct child_spec c;
    struct child_result r;
    child_as(&c, e, args);
    int rc = run_children(e, &c, 1, timeout_ms, NULL, &r, err);
    if (rc == 0 && r.exit_code[0] != 0) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &r.out);
        rc = rv_error_set(err, RV_ECHILD, false,
                          "engine_mariadb: '%s' for '%s' failed (exit %d): %s", args[0],
                          e->node_name, r.exit_code[0], tail);
    }
    child_result_release(&r);
    return rc;
}

/* --- configuration files --- */

static int write_reeve_cnf(const struct mdb_engine *e, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    char path[RV_MDB_PATH_MAX + 32];
    int rc = data_path(path, sizeof path, e, "reeve.cnf", err);
    if (rc != 0)
        goto out;
    rc =
        buf_printf(&b,
                   "# reeve.cnf: written by reeve-agent and rewritten whole on every change;\n"
                   "# edit the cluster spec instead. Passed with --defaults-file, so no other\n"
                   "# option file is read.\n"
                   "[mariadbd]\n"
                   "datadir = %s\n"
                   "socket = %s/mariadbd.sock\n"
                   "pid-file = %s/mariadbd.pid\n"
                   "log-error = %s\n"
                   "port = %d\n"
                   "bind-address = %s\n"
                   "skip-name-resolve = ON\n"
                   "server-id = %" PRIu32 "\n"
                   "log-bin = binlog\n"
                   "relay-log = relay-bin\n"
                   "binlog-format = ROW\n"
                   "gtid-strict-mode = ON\n"
                   "log-slave-updates = ON\n"
                   "slave-net-timeout = 10\n"
                   "report-host = %s\n"
                   "report-port = %d\n"
                   "read-only = %s\n"
                   "rpl-semi-sync-master-enabled = %s\n"
                   "rpl-semi-sync-master-wait-point = AFTER_SYNC\n"
                   "rpl-semi-sync-master-timeout = %" PRIu32 "\n"
                   "rpl-semi-sync-slave-enabled = ON\n",
                   e->data_dir, e->socket_dir, e->data_dir, e->log_file, e->port, e->listen_address,
                   e->server_id, e->node_name, e->port, e->read_only ? "ON" : "OFF",
                   e->semi_sync ? "ON" : "OFF", e->semi_sync_timeout_ms);
    if (rc == 0 && e->no_sync)
        rc = buf_puts(&b, "innodb-flush-log-at-trx-commit = 2\nsync-binlog = 0\n");
    if (rc == 0)
        rc = buf_printf(&b, "%s!include %s/reeve-params.cnf\n", e->extra_conf, e->data_dir);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    rc = write_file(e, path, b.data, 0600, err);
out:
    buf_release(&b);
    return rc;
}

/* The role and semi-synchronous settings last written to reeve.cnf, so a
 * restarted agent does not turn a replica back into a primary. */
static int read_reeve_state(struct mdb_engine *e, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    char path[RV_MDB_PATH_MAX + 32];
    int rc = read_own_file(e, "reeve.cnf", path, sizeof path, &b, err);
    if (rc != 0 || b.data == NULL)
        goto out;
    char *save = NULL;
    for (char *line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char val[32];
        if (sscanf(line, "read-only = %31s", val) == 1)
            e->read_only = strcmp(val, "ON") == 0;
        else if (sscanf(line, "rpl-semi-sync-master-enabled = %31s", val) == 1)
            e->semi_sync = strcmp(val, "ON") == 0;
        else if (sscanf(line, "rpl-semi-sync-master-timeout = %31s", val) == 1)
            e->semi_sync_timeout_ms = (uint32_t)strtoul(val, NULL, 10);
    }
out:
    buf_release(&b);
    return rc;
}

/* Parameters kept in reeve-params.cnf. */
struct param_entry {
    char name[RV_MDB_NAME_MAX + 1];
    char *value;
};
struct param_set {
    size_t n;
    struct param_entry *v; /* RV_MDB_PARAMS_MAX entries */
};

static void param_set_release(struct param_set *s)
{
    if (s->v)
        for (size_t i = 0; i < s->n; i++)
            free(s->v[i].value);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static int param_set_put(struct param_set *s, const char *name, const char *value,
                         struct rv_error *err)
{
    if (!s->v && !(s->v = calloc(RV_MDB_PARAMS_MAX, sizeof *s->v)))
        return rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
    size_t i = 0;
    while (i < s->n && strcmp(s->v[i].name, name) != 0)
        i++;
    if (i == s->n && s->n == RV_MDB_PARAMS_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "engine_mariadb: more than %d parameters in all",
                            RV_MDB_PARAMS_MAX);
    char *copy = strdup(value);
    if (!copy)
        return rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
    if (i == s->n) {
        snprintf(s->v[i].name, sizeof s->v[i].name, "%s", name);
        s->n++;
    } else {
        free(s->v[i].value);
    }
    s->v[i].value = copy;
    return 0;
}

/* Read reeve-params.cnf (lines: name = "value"); a missing file is empty. */
static int read_params(const struct mdb_engine *e, struct param_set *s, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    char path[RV_MDB_PATH_MAX + 32];
    int rc = read_own_file(e, "reeve-params.cnf", path, sizeof path, &b, err);
    if (rc != 0 || b.data == NULL)
        goto out;
    char *save = NULL;
    for (char *line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '[' || line[0] == '\0')
            continue;
        char *eq = strstr(line, " = \"");
        size_t len = strlen(line);
        if (!eq || len < 2 || line[len - 1] != '"') {
            rc = rv_error_set(err, RV_EPARSE, false,
                              "engine_mariadb: '%s' has a malformed line; remove it", path);
            goto out;
        }
        *eq = '\0';
        line[len - 1] = '\0';
        if (!valid_param_name(line) || !valid_value(eq + 4)) {
            rc = rv_error_set(err, RV_EPARSE, false,
                              "engine_mariadb: '%s' has a malformed line; remove it", path);
            goto out;
        }
        if ((rc = param_set_put(s, line, eq + 4, err)) != 0)
            goto out;
    }
out:
    buf_release(&b);
    return rc;
}

static int write_params(const struct mdb_engine *e, const struct param_set *s, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    char path[RV_MDB_PATH_MAX + 32];
    int rc = data_path(path, sizeof path, e, "reeve-params.cnf", err);
    if (rc != 0)
        goto out;
    rc = buf_puts(&b, "# reeve-params.cnf: parameters applied by reeve-agent (the cluster\n"
                      "# spec's parameters); rewritten whole on every change.\n"
                      "[mariadbd]\n");
    for (size_t i = 0; rc == 0 && i < s->n; i++)
        rc = buf_printf(&b, "%s = \"%s\"\n", s->v[i].name, s->v[i].value);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    rc = write_file(e, path, b.data, 0600, err);
out:
    buf_release(&b);
    return rc;
}

/* reeve-params.cnf must exist: reeve.cnf includes it. */
static int ensure_params_file(const struct mdb_engine *e, struct rv_error *err)
{
    struct param_set s = {0};
    int rc = read_params(e, &s, err);
    if (rc == 0)
        rc = write_params(e, &s, err);
    param_set_release(&s);
    return rc;
}

/* --- libmariadb --- */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_rc;

static void library_init(void)
{
    library_rc = mysql_library_init(0, NULL, NULL);
}

int mdb_engine_connect(const struct mdb_engine *e, MYSQL **out, struct rv_error *err)
{
    char sock[RV_MDB_PATH_MAX + 32];
    unsigned int ct = RV_MDB_CONNECT_TIMEOUT_S;
    unsigned int rt = RV_MDB_READ_TIMEOUT_S;
    unsigned int proto = MYSQL_PROTOCOL_SOCKET;
    *out = NULL;
    pthread_once(&library_once, library_init);
    snprintf(sock, sizeof sock, "%s/mariadbd.sock", e->socket_dir);
    MYSQL *c = mysql_init(NULL);
    if (!c)
        return rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    mysql_options(c, MYSQL_OPT_PROTOCOL, &proto);
    if (!mysql_real_connect(c, "localhost", e->admin_user, NULL, NULL, 0, sock, 0)) {
        int rc = rv_error_set(err, RV_EUNAVAIL, true,
                              "engine_mariadb: cannot connect to '%s' on '%s': %s", e->node_name,
                              sock, mysql_error(c));
        mysql_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int sql_error(MYSQL *c, const struct mdb_engine *e, struct rv_error *err)
{
    unsigned int no = mysql_errno(c);
    int code = RV_EDB;
    bool retry = false;
    if (no >= 2000 && no < 3000) { /* client errors: lost connection, timeouts */
        code = RV_EUNAVAIL;
        retry = true;
    } else if (no == MDB_ER_WRONG_VALUE_FOR_VAR || no == MDB_ER_WRONG_TYPE_FOR_VAR ||
               no == MDB_ER_UNKNOWN_SYSTEM_VARIABLE || no == MDB_ER_INCORRECT_GLOBAL_LOCAL_VAR) {
        code = RV_EINVAL;
    }
    return rv_error_set(err, code, retry, "engine_mariadb: '%s': %s (error %u)", e->node_name,
                        mysql_error(c), no);
}

/* Run one statement; *res (may be NULL) receives the rows of a query. */
static int sql_run(MYSQL *c, const struct mdb_engine *e, const char *sql, MYSQL_RES **res,
                   struct rv_error *err)
{
    if (res)
        *res = NULL;
    if (mysql_query(c, sql) != 0)
        return sql_error(c, e, err);
    MYSQL_RES *r = mysql_store_result(c);
    if (!r && mysql_field_count(c) != 0)
        return sql_error(c, e, err);
    if (res)
        *res = r;
    else if (r)
        mysql_free_result(r);
    return 0;
}

/* The same, for a statement with one quoted parameter ("...'%s'...") that
 * is escaped here. */
static int sql_run1(MYSQL *c, const struct mdb_engine *e, const char *fmt, const char *arg,
                    MYSQL_RES **res, struct rv_error *err)
{
    struct buf q = BUF_INIT;
    char *esc = NULL;
    int rc = 0;
    size_t n = strlen(arg);
    esc = malloc(2 * n + 1);
    if (!esc) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    mysql_real_escape_string(c, esc, arg, (unsigned long)n);
    if (buf_printf(&q, fmt, esc) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    rc = sql_run(c, e, q.data, res, err);
out:
    if (esc) {
        explicit_bzero(esc, 2 * n + 1);
        free(esc);
    }
    if (q.data)
        explicit_bzero(q.data, q.cap);
    buf_release(&q);
    return rc;
}

/* Column index by name in a result, -1 if absent. */
static int col(MYSQL_RES *r, const char *name)
{
    unsigned int n = mysql_num_fields(r);
    MYSQL_FIELD *f = mysql_fetch_fields(r);
    for (unsigned int i = 0; i < n; i++)
        if (strcasecmp(f[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* A row's value by column name, "" when absent or NULL. */
static const char *field(MYSQL_RES *r, MYSQL_ROW row, const char *name)
{
    int i = col(r, name);
    return i >= 0 && row[i] ? row[i] : "";
}

static const char *first_value(MYSQL_RES *r)
{
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    return row && mysql_num_fields(r) > 0 && row[0] ? row[0] : "";
}

/* --- GTIDs --- */

int mdb_gtid_parse(struct mdb_gtid_pos *out, const char *s)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return RV_EPARSE;
    const char *p = s;
    while (*p) {
        if (out->n == RV_MDB_GTID_DOMAINS_MAX)
            return RV_ELIMIT;
        unsigned long long v[3];
        for (int k = 0; k < 3; k++) {
            char *end;
            if (!isdigit((unsigned char)*p))
                return RV_EPARSE;
            errno = 0;
            v[k] = strtoull(p, &end, 10);
            if (errno || (k < 2 && v[k] > UINT32_MAX))
                return RV_EPARSE;
            p = end;
            if (k < 2) {
                if (*p != '-')
                    return RV_EPARSE;
                p++;
            }
        }
        struct mdb_gtid *g = &out->g[out->n++];
        g->domain = (uint32_t)v[0];
        g->server_id = (uint32_t)v[1];
        g->seq = v[2];
        if (*p == ',') {
            p++;
            while (*p == ' ' || *p == '\n')
                p++;
            if (!*p)
                return RV_EPARSE;
        } else if (*p) {
            return RV_EPARSE;
        }
    }
    return 0;
}

uint64_t mdb_gtid_lag(const struct mdb_gtid_pos *primary, const struct mdb_gtid_pos *replica)
{
    uint64_t lag = 0;
    for (size_t i = 0; i < primary->n; i++) {
        uint64_t have = 0;
        for (size_t j = 0; j < replica->n; j++)
            if (replica->g[j].domain == primary->g[i].domain)
                have = replica->g[j].seq;
        if (primary->g[i].seq > have)
            lag += primary->g[i].seq - have;
    }
    return lag;
}

/* --- public API: setup --- */

int mdb_primary_parse(struct mdb_primary *p, const char *hostport, struct rv_error *err)
{
    memset(p, 0, sizeof *p);
    const char *colon = hostport ? strrchr(hostport, ':') : NULL;
    if (!colon || colon == hostport)
        return rv_error_set(err, RV_EINVAL, false, "engine_mariadb: primary '%s' is not host:port",
                            hostport ? hostport : "");
    size_t hl = (size_t)(colon - hostport);
    if (hl > RV_MDB_HOST_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "engine_mariadb: primary host is too long");
    memcpy(p->host, hostport, hl);
    p->host[hl] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (!eng_valid_host(p->host, RV_MDB_HOST_MAX) || strchr(p->host, '/') || *end ||
        end == colon + 1 || errno || port < 1 || port > 65535)
        return rv_error_set(err, RV_EINVAL, false, "engine_mariadb: primary '%s' is not host:port",
                            hostport);
    p->port = (int)port;
    return 0;
}

static int check_primary(const struct mdb_primary *p, struct rv_error *err)
{
    if (!p || !eng_valid_host(p->host, RV_MDB_HOST_MAX) || strchr(p->host, '/') || p->port < 1 ||
        p->port > 65535)
        return rv_error_set(err, RV_EINVAL, false, "engine_mariadb: invalid primary address");
    return 0;
}

/* "a.b.c.d/n" as a grant host "a.b.c.d/m.m.m.m"; "0.0.0.0/0" is '%'. Only
 * IPv4: MariaDB's host masks are IPv4 only. */
static int cidr_to_grant_host(char *dst, size_t cap, const char *cidr, struct rv_error *err)
{
    unsigned a, b, c, d, bits = 32;
    char tail;
    int n = sscanf(cidr, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &bits, &tail);
    if (!(n == 5 || (n == 4 && !strchr(cidr, '/'))) || a > 255 || b > 255 || c > 255 || d > 255 ||
        bits > 32)
        return rv_error_set(err, RV_EINVAL, false,
                            "engine_mariadb: allowed cidr '%s' is not an IPv4 a.b.c.d/n", cidr);
    uint32_t addr = a << 24 | b << 16 | c << 8 | d;
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    if ((addr & mask) != addr)
        return rv_error_set(err, RV_EINVAL, false,
                            "engine_mariadb: allowed cidr '%s' has host bits set", cidr);
    if (bits == 0)
        snprintf(dst, cap, "%%");
    else if (bits == 32)
        snprintf(dst, cap, "%u.%u.%u.%u", a, b, c, d);
    else
        snprintf(dst, cap, "%u.%u.%u.%u/%u.%u.%u.%u", a, b, c, d, mask >> 24, (mask >> 16) & 255,
                 (mask >> 8) & 255, mask & 255);
    return 0;
}

/* FNV-1a of the node name, in 1..2^31-1. */
static uint32_t server_id_of(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    h &= 0x7fffffffu;
    return h ? h : 1;
}

static int user_name_of(uid_t uid, char *dst, size_t cap, struct rv_error *err)
{
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &res) != 0 || !res)
        return rv_error_set(err, RV_ENOTFOUND, false, "engine_mariadb: no user name for uid %u",
                            (unsigned)uid);
    return copy_str(dst, cap, res->pw_name, "os user name", err);
}

static int init_paths(struct mdb_engine *e, const struct mdb_engine_config *cfg,
                      struct rv_error *err)
{
    int rc = 0;
    if ((rc = copy_str(e->server_path, sizeof e->server_path,
                       cfg->server_path ? cfg->server_path : "/usr/sbin/mariadbd", "server_path",
                       err)) ||
        (rc = copy_str(e->bin_dir, sizeof e->bin_dir, cfg->bin_dir ? cfg->bin_dir : "/usr/bin",
                       "bin_dir", err)) ||
        (rc = copy_str(e->data_dir, sizeof e->data_dir, cfg->data_dir, "data_dir", err)) ||
        (rc = copy_str(e->socket_dir, RV_MDB_SOCKET_DIR_MAX + 1, cfg->socket_dir, "socket_dir",
                       err)))
        return rc;
    if (cfg->log_file)
        rc = copy_str(e->log_file, sizeof e->log_file, cfg->log_file, "log_file", err);
    else if (snprintf(e->log_file, sizeof e->log_file, "%s.err", e->data_dir) >=
             (int)sizeof e->log_file)
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_mariadb: 'log_file' is too long");
    if (rc != 0)
        return rc;
    /* reeve.cnf, its .tmp and the pid file are named under the data dir. */
    if (strlen(e->data_dir) + 32 > RV_MDB_PATH_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "engine_mariadb: 'data_dir' is too long");
    const char *paths[] = {e->server_path, e->bin_dir, e->data_dir, e->socket_dir, e->log_file};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!eng_valid_path(paths[i], "#"))
            return rv_error_set(err, RV_EINVAL, false,
                                "engine_mariadb: path '%s' must be absolute, without spaces, "
                                "quotes, '#' or control characters",
                                paths[i]);
    }
    return 0;
}

static int init_users(struct mdb_engine *e, const struct mdb_engine_config *cfg,
                      struct rv_error *err)
{
    int rc = user_name_of(geteuid(), e->admin_user, sizeof e->admin_user, err);
    if (rc != 0)
        return rc;
    snprintf(e->tool_user, sizeof e->tool_user, "%s", e->admin_user);
    if (!cfg->os_user)
        return 0;
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwnam_r(cfg->os_user, &pw, pwbuf, sizeof pwbuf, &res) != 0 || !res)
        return rv_error_set(err, RV_ENOTFOUND, false, "engine_mariadb: os user '%s' not found",
                            cfg->os_user);
    if (res->pw_uid == geteuid())
        return 0;
    if (geteuid() != 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "engine_mariadb: running the server as '%s' needs root; run the "
                            "agent as that user instead",
                            cfg->os_user);
    e->run_as = true;
    e->uid = res->pw_uid;
    e->gid = res->pw_gid;
    return copy_str(e->tool_user, sizeof e->tool_user, res->pw_name, "os_user", err);
}

static int init_extra(struct mdb_engine *e, const struct mdb_engine_config *cfg,
                      struct rv_error *err)
{
    struct buf b = BUF_INIT;
    int rc = 0;
    if (cfg->n_extra > RV_MDB_PARAMS_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_mariadb: more than %d extra parameters",
                          RV_MDB_PARAMS_MAX);
        goto out;
    }
    for (size_t i = 0; i < cfg->n_extra; i++) {
        const struct mdb_param *p = &cfg->extra[i];
        if (!p->name || !p->value || !valid_param_name(p->name) || !valid_value(p->value) ||
            managed(p->name)) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "engine_mariadb: extra parameter '%s' is malformed or managed by "
                              "reeve",
                              p->name ? p->name : "");
            goto out;
        }
        if (buf_printf(&b, "%s = \"%s\"\n", p->name, p->value) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
            goto out;
        }
    }
    if (b.len > RV_MDB_CONF_EXTRA_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "engine_mariadb: extra parameters exceed %d bytes",
                          RV_MDB_CONF_EXTRA_MAX);
        goto out;
    }
    if (b.data)
        memcpy(e->extra_conf, b.data, b.len + 1);
out:
    buf_release(&b);
    return rc;
}

int mdb_engine_init(struct mdb_engine *e, const struct mdb_engine_config *cfg, struct rv_error *err)
{
    char cidr[RV_MDB_HOST_MAX + 1];
    int rc = 0;
    memset(e, 0, sizeof *e);
    pthread_once(&library_once, library_init);
    if (library_rc != 0) {
        rc = rv_error_set(err, RV_EINTERNAL, false, "engine_mariadb: cannot initialise libmariadb");
        goto out;
    }
    if ((rc = init_paths(e, cfg, err)) ||
        (rc = copy_str(e->listen_address, sizeof e->listen_address, cfg->listen_address,
                       "listen_address", err)) ||
        (rc = copy_str(e->node_name, sizeof e->node_name, cfg->node_name, "node_name", err)) ||
        (rc = copy_str(e->repl_user, sizeof e->repl_user, cfg->replication_user, "replication_user",
                       err)) ||
        (rc = copy_str(e->repl_password, sizeof e->repl_password, cfg->replication_password,
                       "replication_password", err)) ||
        (rc = copy_str(cidr, sizeof cidr, cfg->allowed_cidr ? cfg->allowed_cidr : "127.0.0.0/8",
                       "allowed_cidr", err)))
        goto out;
    if (!eng_valid_name(e->node_name, RV_MDB_NAME_MAX) ||
        !eng_valid_name(e->repl_user, RV_MDB_NAME_MAX)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_mariadb: names '%s' and '%s' may only hold letters, digits, "
                          "'_' and '-'",
                          e->node_name, e->repl_user);
        goto out;
    }
    if (!eng_valid_host(e->listen_address, RV_MDB_HOST_MAX) || strchr(e->listen_address, '/')) {
        rc = rv_error_set(err, RV_EINVAL, false, "engine_mariadb: listen address '%s' is malformed",
                          e->listen_address);
        goto out;
    }
    if ((rc = cidr_to_grant_host(e->grant_host, sizeof e->grant_host, cidr, err)) != 0)
        goto out;
    if (cfg->port < 1 || cfg->port > 65535) {
        rc = rv_error_set(err, RV_EINVAL, false, "engine_mariadb: port %d is out of range",
                          cfg->port);
        goto out;
    }
    e->port = cfg->port;
    if (!valid_secret(e->repl_password, RV_MDB_PASSWORD_MAX)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_mariadb: the replication password holds a control character");
        goto out;
    }
    e->server_id = cfg->server_id ? cfg->server_id : server_id_of(e->node_name);
    e->no_sync = cfg->no_sync;
    e->semi_sync_timeout_ms = RV_MDB_SEMI_SYNC_TIMEOUT_DEFAULT_MS;
    if ((rc = init_users(e, cfg, err)) || (rc = init_extra(e, cfg, err)) ||
        (rc = read_reeve_state(e, err)))
        goto out;
out:
    if (rc != 0)
        mdb_engine_release(e);
    return rc;
}

void mdb_engine_release(struct mdb_engine *e)
{
    if (e)
        explicit_bzero(e->repl_password, sizeof e->repl_password);
}

/* --- public API: start and stop --- */

/* fork, setsid, fork again and exec mariadbd, so the server is nobody's
 * child (the agent may exit or restart without taking it along) and owns
 * its session. Returns the server's pid through a pipe. */
static int spawn_server(const struct mdb_engine *e, pid_t *server, struct rv_error *err)
{
    char defaults[RV_MDB_PATH_MAX + 32];
    snprintf(defaults, sizeof defaults, "--defaults-file=%s/reeve.cnf", e->data_dir);
    const char *args[] = {e->server_path, defaults, NULL};
    char **envp = mdb_child_env();
    struct child_spec c;
    int rc;
    if (!envp)
        return rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
    child_as(&c, e, args);
    c.envp = envp;
    /* The server writes to its log-error file. */
    c.out = c.err = CHILD_IO_NULL;
    rc = child_spawn_detached(server, &c, err);
    if (rc == RV_ECHILD)
        rc = rv_error_set(err, RV_ECHILD, true, "engine_mariadb: cannot start mariadbd for '%s'",
                          e->node_name);
    free(envp);
    return rc;
}

static bool pid_alive(pid_t pid)
{
    char path[64];
    char stat[256];
    if (kill(pid, 0) != 0 && errno != EPERM)
        return false;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *rp = strrchr(stat, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

int mdb_engine_start(struct mdb_engine *e, struct rv_error *err)
{
    MYSQL *c = NULL;
    pid_t pid = 0;
    int rc = 0;
    if (server_pid(e))
        goto out;
    if ((rc = ensure_dir(e, e->socket_dir, err)) != 0 || (rc = write_reeve_cnf(e, err)) != 0 ||
        (rc = ensure_params_file(e, err)) != 0)
        goto out;
    if ((rc = spawn_server(e, &pid, err)) != 0)
        goto out;
    int64_t deadline = child_now_ms() + RV_MDB_START_TIMEOUT_MS;
    for (;;) {
        struct rv_error cerr;
        if (mdb_engine_connect(e, &c, &cerr) == 0)
            break;
        if (!pid_alive(pid)) {
            char tail[320];
            log_tail(tail, sizeof tail, e->log_file);
            rc = rv_error_set(err, RV_ECHILD, true,
                              "engine_mariadb: mariadbd for '%s' exited during start: %s; see "
                              "'%s'",
                              e->node_name, tail, e->log_file);
            goto out;
        }
        if (child_now_ms() >= deadline) {
            rc = rv_error_set(err, RV_ETIMEOUT, true,
                              "engine_mariadb: '%s' did not accept connections within %d s; "
                              "see '%s'",
                              e->node_name, RV_MDB_START_TIMEOUT_MS / 1000, e->log_file);
            goto out;
        }
        child_sleep_ms(50);
    }
    log_info(COMPONENT, "started '%s' on %s:%d%s", e->node_name, e->listen_address, e->port,
             e->read_only ? " (read-only)" : "");
out:
    if (c)
        mysql_close(c);
    return rc;
}

static bool wait_gone(pid_t pid, int timeout_ms)
{
    int64_t deadline = child_now_ms() + timeout_ms;
    while (pid_alive(pid)) {
        if (child_now_ms() >= deadline)
            return false;
        child_sleep_ms(20);
    }
    return true;
}

int mdb_engine_stop(struct mdb_engine *e, enum mdb_stop_mode mode, struct rv_error *err)
{
    pid_t pid = server_pid(e);
    if (!pid)
        return 0;
    bool fast = mode == MDB_STOP_FAST;
    if (fast) {
        kill(pid, SIGTERM);
        if (wait_gone(pid, RV_MDB_STOP_TIMEOUT_MS)) {
            log_info(COMPONENT, "stopped '%s'", e->node_name);
            return 0;
        }
        log_warn(COMPONENT, "'%s' did not shut down within %d s; killing it", e->node_name,
                 RV_MDB_STOP_TIMEOUT_MS / 1000);
    }
    kill(pid, SIGKILL);
    if (!wait_gone(pid, 10000))
        return rv_error_set(err, RV_ETIMEOUT, true,
                            "engine_mariadb: mariadbd %d for '%s' survived SIGKILL", (int)pid,
                            e->node_name);
    char path[RV_MDB_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/mariadbd.pid", e->data_dir);
    unlink(path);
    log_info(COMPONENT, "stopped '%s' (killed)", e->node_name);
    return 0;
}

/* --- public API: install --- */

/* Create (or update) a user with a password hashed by the server, so the
 * binary log carries only the hash. */
static int put_user(MYSQL *c, const struct mdb_engine *e, const char *user, const char *password,
                    const char *grants, const char *on, struct rv_error *err)
{
    MYSQL_RES *r = NULL;
    struct buf q = BUF_INIT;
    char hash[128];
    int rc = sql_run1(c, e, "SELECT PASSWORD('%s')", password, &r, err);
    if (rc != 0)
        goto out;
    snprintf(hash, sizeof hash, "%s", first_value(r));
    if (hash[0] != '*') {
        rc = rv_error_set(err, RV_EDB, false, "engine_mariadb: cannot hash a password on '%s'",
                          e->node_name);
        goto out;
    }
    if (buf_printf(&q, "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY PASSWORD '%s'", user,
                   e->grant_host, hash) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    if ((rc = sql_run(c, e, q.data, NULL, err)) != 0)
        goto out;
    buf_clear(&q);
    if (buf_printf(&q, "ALTER USER '%s'@'%s' IDENTIFIED BY PASSWORD '%s'", user, e->grant_host,
                   hash) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    if ((rc = sql_run(c, e, q.data, NULL, err)) != 0)
        goto out;
    buf_clear(&q);
    if (buf_printf(&q, "REVOKE ALL PRIVILEGES ON %s FROM '%s'@'%s'", on, user, e->grant_host) !=
        0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    if (mysql_query(c, q.data) != 0 && mysql_errno(c) != MDB_ER_NONEXISTING_GRANT) {
        rc = sql_error(c, e, err);
        goto out;
    }
    buf_clear(&q);
    if (buf_printf(&q, "GRANT %s ON %s TO '%s'@'%s'", grants, on, user, e->grant_host) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    rc = sql_run(c, e, q.data, NULL, err);
out:
    if (r)
        mysql_free_result(r);
    explicit_bzero(hash, sizeof hash);
    buf_release(&q);
    return rc;
}

/* The replication user: REPLICATION SLAVE to stream the binary log, and
 * what mariadb-backup needs to copy a running server from another node
 * (RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR). */
static const char repl_grants[] =
    "REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR, RELOAD, PROCESS, LOCK TABLES";

int mdb_engine_install(struct mdb_engine *e, struct rv_error *err)
{
    MYSQL *c = NULL;
    bool existed = false;
    int rc = check_empty_dir(e->data_dir, &existed, err);
    if (rc != 0)
        goto out;
    if ((rc = ensure_dir(e, e->data_dir, err)) != 0)
        goto out;
    e->read_only = false;
    if ((rc = write_reeve_cnf(e, err)) != 0 || (rc = ensure_params_file(e, err)) != 0)
        goto out;
    char exe[RV_MDB_PATH_MAX + 32];
    char defaults[RV_MDB_PATH_MAX + 32];
    char user[RV_MDB_NAME_MAX + 16];
    snprintf(exe, sizeof exe, "%s/mariadb-install-db", e->bin_dir);
    snprintf(defaults, sizeof defaults, "--defaults-file=%s/reeve.cnf", e->data_dir);
    snprintf(user, sizeof user, "--user=%s", e->tool_user);
    /* root@localhost and the server's OS user, both by unix_socket only. */
    const char *args[] = {exe,
                          defaults,
                          user,
                          "--auth-root-authentication-method=socket",
                          "--skip-test-db",
                          "--skip-name-resolve",
                          NULL};
    if ((rc = run_tool_ok(e, args, RV_MDB_INSTALL_TIMEOUT_MS, err)) != 0)
        goto out;
    if ((rc = mdb_engine_start(e, err)) != 0 || (rc = mdb_engine_connect(e, &c, err)) != 0)
        goto out;
    if ((rc = put_user(c, e, e->repl_user, e->repl_password, repl_grants, "*.*", err)) != 0)
        goto out;
    log_info(COMPONENT, "installed '%s' in '%s' (server id %" PRIu32 ")", e->node_name, e->data_dir,
             e->server_id);
out:
    if (c)
        mysql_close(c);
    return rc;
}

/* --- public API: status --- */

/* Whether a configured value equals the running one (defined with the
 * parameters below). */
static bool values_equal(const char *type, const char *want, const char *have);

/* Configured static parameters whose running value differs, comma-separated
 * into dst. Best effort: a failure leaves dst empty. */
static void pending_restart(MYSQL *c, const struct mdb_engine *e, char *dst, size_t cap)
{
    struct param_set s = {0};
    struct buf q = BUF_INIT;
    struct rv_error ignored;
    MYSQL_RES *r = NULL;
    dst[0] = '\0';
    if (read_params(e, &s, &ignored) != 0 || s.n == 0)
        goto out;
    if (buf_puts(&q, "SELECT LOWER(VARIABLE_NAME), VARIABLE_TYPE, GLOBAL_VALUE FROM "
                     "information_schema.SYSTEM_VARIABLES WHERE READ_ONLY = 'YES' AND "
                     "VARIABLE_NAME IN (") != 0)
        goto out;
    for (size_t i = 0; i < s.n; i++)
        if (buf_printf(&q, "%sUPPER('%s')", i ? "," : "", s.v[i].name) != 0)
            goto out;
    if (buf_puts(&q, ") ORDER BY 1") != 0 || sql_run(c, e, q.data, &r, &ignored) != 0)
        goto out;
    size_t used = 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r)) != NULL) {
        const char *name = row[0] ? row[0] : "";
        for (size_t i = 0; i < s.n; i++) {
            if (strcmp(s.v[i].name, name) != 0 ||
                values_equal(row[1] ? row[1] : "", s.v[i].value, row[2] ? row[2] : ""))
                continue;
            size_t len = strlen(name) + (used ? 1 : 0);
            if (used + len < cap) {
                snprintf(dst + used, cap - used, "%s%s", used ? "," : "", name);
                used += len;
            }
        }
    }
out:
    if (r)
        mysql_free_result(r);
    buf_release(&q);
    param_set_release(&s);
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static int read_replica_status(MYSQL *c, const struct mdb_engine *e, struct mdb_status *st,
                               struct rv_error *err)
{
    MYSQL_RES *r = NULL;
    int rc = sql_run(c, e, "SHOW SLAVE STATUS", &r, err);
    if (rc != 0)
        return rc;
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    if (row) {
        st->is_replica = true;
        st->io_running = strcmp(field(r, row, "Slave_IO_Running"), "Yes") == 0;
        st->sql_running = strcmp(field(r, row, "Slave_SQL_Running"), "Yes") == 0;
        const char *sbm = field(r, row, "Seconds_Behind_Master");
        st->seconds_behind = *sbm ? strtoll(sbm, NULL, 10) : -1;
        copy_field(st->master_host, sizeof st->master_host, field(r, row, "Master_Host"));
        st->master_port = atoi(field(r, row, "Master_Port"));
        copy_field(st->gtid_io_pos, sizeof st->gtid_io_pos, field(r, row, "Gtid_IO_Pos"));
        int io_no = atoi(field(r, row, "Last_IO_Errno"));
        int sql_no = atoi(field(r, row, "Last_SQL_Errno"));
        st->last_errno = io_no ? io_no : sql_no;
        copy_field(st->last_error, sizeof st->last_error,
                   field(r, row, io_no ? "Last_IO_Error" : "Last_SQL_Error"));
        st->diverged = io_no == MDB_ER_MASTER_FATAL_READING_BINLOG ||
                       sql_no == MDB_ER_GTID_STRICT_OUT_OF_ORDER;
    }
    if (r)
        mysql_free_result(r);
    return 0;
}

int mdb_engine_status(struct mdb_engine *e, const char *primary_gtid, struct mdb_status *st,
                      struct rv_error *err)
{
    MYSQL *c = NULL;
    MYSQL_RES *r = NULL;
    struct rv_error cerr;
    int rc = 0;
    memset(st, 0, sizeof *st);
    st->seconds_behind = -1;
    st->running = server_pid(e) != 0;
    if (!st->running)
        goto out;
    if (mdb_engine_connect(e, &c, &cerr) != 0)
        goto out; /* running but not accepting: starting, stopping, or wedged */
    st->accepting = true;
    if ((rc = sql_run(c, e,
                      "SELECT @@read_only, @@gtid_current_pos, @@gtid_slave_pos, "
                      "@@gtid_binlog_pos",
                      &r, err)) != 0)
        goto out;
    MYSQL_ROW row = mysql_fetch_row(r);
    if (!row || mysql_num_fields(r) != 4) {
        rc = rv_error_set(err, RV_EPROTO, true, "engine_mariadb: unexpected status reply from '%s'",
                          e->node_name);
        goto out;
    }
    st->read_only = row[0] && strcmp(row[0], "1") == 0;
    copy_field(st->gtid_current_pos, sizeof st->gtid_current_pos, row[1] ? row[1] : "");
    copy_field(st->gtid_slave_pos, sizeof st->gtid_slave_pos, row[2] ? row[2] : "");
    copy_field(st->gtid_binlog_pos, sizeof st->gtid_binlog_pos, row[3] ? row[3] : "");
    mysql_free_result(r);
    r = NULL;
    if ((rc = sql_run(c, e,
                      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status',"
                      " 'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_slave_status')",
                      &r, err)) != 0)
        goto out;
    while ((row = mysql_fetch_row(r)) != NULL) {
        const char *name = row[0] ? row[0] : "";
        const char *val = row[1] ? row[1] : "";
        if (strcasecmp(name, "Rpl_semi_sync_master_status") == 0)
            st->semi_sync_primary = strcmp(val, "ON") == 0;
        else if (strcasecmp(name, "Rpl_semi_sync_slave_status") == 0)
            st->semi_sync_replica = strcmp(val, "ON") == 0;
        else
            st->semi_sync_replicas = (unsigned)strtoul(val, NULL, 10);
    }
    mysql_free_result(r);
    r = NULL;
    if ((rc = read_replica_status(c, e, st, err)) != 0)
        goto out;
    if (primary_gtid && *primary_gtid) {
        struct mdb_gtid_pos p, mine;
        if (mdb_gtid_parse(&p, primary_gtid) != 0) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "engine_mariadb: primary GTID position '%.64s' is malformed",
                              primary_gtid);
            goto out;
        }
        if (mdb_gtid_parse(&mine, st->gtid_current_pos) == 0)
            st->lag_trx = mdb_gtid_lag(&p, &mine);
    }
    pending_restart(c, e, st->pending_restart, sizeof st->pending_restart);
out:
    if (r)
        mysql_free_result(r);
    if (c)
        mysql_close(c);
    return rc;
}

/* --- public API: replication --- */

/* Wait (bounded) until the IO thread has been accepted by the primary (it
 * received the primary's first Rotate event, so Master_Log_File is set), or
 * the primary refused the position. */
static int check_replication(MYSQL *c, const struct mdb_engine *e,
                             const struct mdb_primary *primary, struct rv_error *err)
{
    int64_t deadline = child_now_ms() + RV_MDB_REPLICA_CHECK_MS;
    for (;;) {
        MYSQL_RES *r = NULL;
        int rc = sql_run(c, e, "SHOW SLAVE STATUS", &r, err);
        if (rc != 0)
            return rc;
        MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
        if (!row) {
            if (r)
                mysql_free_result(r);
            return rv_error_set(err, RV_EDB, true,
                                "engine_mariadb: '%s' lost its replication settings", e->node_name);
        }
        int io_no = atoi(field(r, row, "Last_IO_Errno"));
        int sql_no = atoi(field(r, row, "Last_SQL_Errno"));
        bool accepted = strcmp(field(r, row, "Slave_IO_Running"), "Yes") == 0 &&
                        *field(r, row, "Master_Log_File") != '\0';
        char msg[RV_MDB_LAST_ERROR_MAX + 1];
        copy_field(msg, sizeof msg, field(r, row, io_no ? "Last_IO_Error" : "Last_SQL_Error"));
        mysql_free_result(r);
        if (io_no == MDB_ER_MASTER_FATAL_READING_BINLOG ||
            sql_no == MDB_ER_GTID_STRICT_OUT_OF_ORDER) {
            (void)sql_run(c, e, "STOP SLAVE", NULL, err);
            return rv_error_set(err, RV_ECONFLICT, false,
                                "engine_mariadb: the history of '%s' diverged from %s:%d: %s; "
                                "re-clone it",
                                e->node_name, primary->host, primary->port, msg);
        }
        if (io_no == MDB_ER_ACCESS_DENIED)
            return rv_error_set(err, RV_EAUTH, false,
                                "engine_mariadb: %s:%d refused replication user '%s' of '%s': "
                                "%s",
                                primary->host, primary->port, e->repl_user, e->node_name, msg);
        if (accepted && sql_no == 0)
            return 0;
        if (child_now_ms() >= deadline) {
            log_warn(COMPONENT, "'%s' is not yet replicating from %s:%d: %s", e->node_name,
                     primary->host, primary->port, msg[0] ? msg : "connecting");
            return 0;
        }
        child_sleep_ms(50);
    }
}

/* CHANGE MASTER TO primary from gtid (NULL: this node's own
 * gtid_current_pos) and START SLAVE. */
static int point_at(MYSQL *c, const struct mdb_engine *e, const struct mdb_primary *primary,
                    const char *gtid, struct rv_error *err)
{
    struct buf q = BUF_INIT;
    char pw[2 * RV_MDB_PASSWORD_MAX + 1];
    int rc = sql_run(c, e, "STOP SLAVE", NULL, err);
    if (rc != 0)
        goto out;
    if (gtid)
        rc = sql_run1(c, e, "SET GLOBAL gtid_slave_pos = '%s'", gtid, NULL, err);
    else
        rc = sql_run(c, e, "SET GLOBAL gtid_slave_pos = @@gtid_current_pos", NULL, err);
    if (rc != 0)
        goto out;
    mysql_real_escape_string(c, pw, e->repl_password, (unsigned long)strlen(e->repl_password));
    if (buf_printf(&q,
                   "CHANGE MASTER TO MASTER_HOST = '%s', MASTER_PORT = %d, MASTER_USER = '%s', "
                   "MASTER_PASSWORD = '%s', MASTER_USE_GTID = slave_pos, "
                   "MASTER_CONNECT_RETRY = 1",
                   primary->host, primary->port, e->repl_user, pw) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    if ((rc = sql_run(c, e, q.data, NULL, err)) != 0 ||
        (rc = sql_run(c, e, "START SLAVE", NULL, err)) != 0)
        goto out;
    rc = check_replication(c, e, primary, err);
    if (rc == 0)
        log_info(COMPONENT, "'%s' replicates from %s:%d", e->node_name, primary->host,
                 primary->port);
out:
    explicit_bzero(pw, sizeof pw);
    if (q.data)
        explicit_bzero(q.data, q.cap);
    buf_release(&q);
    return rc;
}

int mdb_engine_make_replica(struct mdb_engine *e, const struct mdb_primary *primary,
                            struct rv_error *err)
{
    struct mdb_status st;
    MYSQL *c = NULL;
    int rc = check_primary(primary, err);
    if (rc != 0 || (rc = mdb_engine_status(e, NULL, &st, err)) != 0)
        goto out;
    if (st.running && (!st.accepting || !st.read_only)) {
        rc = rv_error_set(err, RV_ECONFLICT, !st.accepting,
                          "engine_mariadb: '%s' is running %s; fence it before making it a "
                          "replica",
                          e->node_name,
                          st.accepting ? "as a writable primary" : "and not accepting");
        goto out;
    }
    e->read_only = true;
    if ((rc = write_reeve_cnf(e, err)) != 0)
        goto out;
    if (!st.running && (rc = mdb_engine_start(e, err)) != 0)
        goto out;
    if ((rc = mdb_engine_connect(e, &c, err)) != 0)
        goto out;
    rc = point_at(c, e, primary, NULL, err);
out:
    if (c)
        mysql_close(c);
    return rc;
}

int mdb_engine_promote(struct mdb_engine *e, struct rv_error *err)
{
    MYSQL *c = NULL;
    MYSQL_RES *r = NULL;
    struct mdb_status st;
    char secs[16];
    int rc = mdb_engine_connect(e, &c, err);
    if (rc != 0)
        goto out;
    memset(&st, 0, sizeof st);
    if ((rc = sql_run(c, e, "STOP SLAVE IO_THREAD", NULL, err)) != 0 ||
        (rc = read_replica_status(c, e, &st, err)) != 0)
        goto out;
    if (st.is_replica) {
        if (!st.sql_running && st.last_errno != 0 &&
            st.last_errno != MDB_ER_MASTER_FATAL_READING_BINLOG) {
            rc = rv_error_set(err, RV_ECONFLICT, false,
                              "engine_mariadb: '%s' cannot apply what it received: %s; "
                              "promote another replica or re-clone this one",
                              e->node_name, st.last_error);
            goto out;
        }
        if (!st.sql_running && (rc = sql_run(c, e, "START SLAVE SQL_THREAD", NULL, err)) != 0)
            goto out;
        /* Apply everything the IO thread received before writes begin. */
        struct mdb_gtid_pos io;
        if (mdb_gtid_parse(&io, st.gtid_io_pos) != 0) {
            rc = rv_error_set(err, RV_EPROTO, false,
                              "engine_mariadb: '%s' reports a malformed Gtid_IO_Pos '%.64s'",
                              e->node_name, st.gtid_io_pos);
            goto out;
        }
        snprintf(secs, sizeof secs, "%d", RV_MDB_PROMOTE_TIMEOUT_MS / 1000);
        char q[RV_MDB_GTID_POS_MAX + 64];
        snprintf(q, sizeof q, "SELECT MASTER_GTID_WAIT('%s', %s)", st.gtid_io_pos, secs);
        if ((rc = sql_run(c, e, q, &r, err)) != 0)
            goto out;
        if (strcmp(first_value(r), "0") != 0) {
            rc = rv_error_set(err, RV_ETIMEOUT, true,
                              "engine_mariadb: '%s' did not apply its relay log within %s s",
                              e->node_name, secs);
            goto out;
        }
        if ((rc = sql_run(c, e, "STOP SLAVE", NULL, err)) != 0 ||
            (rc = sql_run(c, e, "RESET SLAVE ALL", NULL, err)) != 0)
            goto out;
    }
    e->read_only = false;
    if ((rc = write_reeve_cnf(e, err)) != 0 ||
        (rc = sql_run(c, e, "SET GLOBAL read_only = OFF", NULL, err)) != 0)
        goto out;
    log_info(COMPONENT, "promoted '%s'%s", e->node_name, st.is_replica ? "" : " (was no replica)");
out:
    if (r)
        mysql_free_result(r);
    if (c)
        mysql_close(c);
    return rc;
}

int mdb_engine_fence(struct mdb_engine *e, const struct mdb_primary *primary, struct rv_error *err)
{
    int rc = 0;
    if (primary && (rc = check_primary(primary, err)) != 0)
        return rc;
    /* Whatever happens next, a restart must not bring back a primary. */
    e->read_only = true;
    if ((rc = write_reeve_cnf(e, err)) != 0 || (rc = mdb_engine_stop(e, MDB_STOP_FAST, err)) != 0)
        return rc;
    log_warn(COMPONENT, "fenced '%s'", e->node_name);
    if (primary)
        rc = mdb_engine_make_replica(e, primary, err);
    return rc;
}

/* --- public API: clone --- */

/* The GTID position of the copy, from xtrabackup_binlog_info ("file pos
 * gtid"); empty when the source had written nothing to its binary log. */
static int clone_gtid(const struct mdb_engine *e, char *dst, size_t cap, struct rv_error *err)
{
    struct buf b = BUF_INIT;
    char path[RV_MDB_PATH_MAX + 32];
    struct mdb_gtid_pos pos;
    dst[0] = '\0';
    int rc = read_data_file(e, "xtrabackup_binlog_info", path, sizeof path, &b, err);
    if (rc == RV_ENOTFOUND) {
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "engine_mariadb: the copy for '%s' has no xtrabackup_binlog_info",
                          e->node_name);
        goto out;
    }
    if (rc != 0)
        goto out;
    char file[256], offset[32], gtid[RV_MDB_GTID_POS_MAX + 1];
    gtid[0] = '\0';
    int n = sscanf(b.data, "%255s %31s %2048s", file, offset, gtid);
    _Static_assert(RV_MDB_GTID_POS_MAX == 2048, "the sscanf width above");
    if (n < 2 || (n == 3 && mdb_gtid_parse(&pos, gtid) != 0)) {
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "engine_mariadb: xtrabackup_binlog_info of '%s' is malformed",
                          e->node_name);
        goto out;
    }
    snprintf(dst, cap, "%s", n == 3 ? gtid : "");
out:
    buf_release(&b);
    return rc;
}

/* After extraction: prepare, configure, start read-only, replicate. */
static int clone_finish(struct mdb_engine *e, const struct mdb_primary *primary,
                        struct rv_error *err)
{
    MYSQL *c = NULL;
    char gtid[RV_MDB_GTID_POS_MAX + 1];
    char exe[RV_MDB_PATH_MAX + 32];
    char target[RV_MDB_PATH_MAX + 32];
    snprintf(exe, sizeof exe, "%s/mariadb-backup", e->bin_dir);
    snprintf(target, sizeof target, "--target-dir=%s", e->data_dir);
    const char *args[] = {exe, "--no-defaults", "--prepare", target, NULL};
    int rc = run_tool_ok(e, args, RV_MDB_COPY_TIMEOUT_MS, err);
    if (rc != 0 || (rc = clone_gtid(e, gtid, sizeof gtid, err)) != 0)
        goto out;
    e->read_only = true;
    if ((rc = write_reeve_cnf(e, err)) || (rc = ensure_params_file(e, err)) ||
        (rc = mdb_engine_start(e, err)) || (rc = mdb_engine_connect(e, &c, err)))
        goto out;
    rc = point_at(c, e, primary, gtid, err);
    if (rc == 0)
        log_info(COMPONENT, "cloned '%s' from %s:%d at GTID '%s'", e->node_name, primary->host,
                 primary->port, gtid);
out:
    if (c)
        mysql_close(c);
    return rc;
}

static int clone_prepare_dir(struct mdb_engine *e, const struct mdb_primary *primary, bool *existed,
                             struct rv_error *err)
{
    int rc = check_primary(primary, err);
    if (rc != 0 || (rc = check_empty_dir(e->data_dir, existed, err)) != 0)
        return rc;
    if (server_pid(e))
        return rv_error_set(err, RV_ECONFLICT, false,
                            "engine_mariadb: '%s' is running; stop it first", e->node_name);
    return ensure_dir(e, e->data_dir, err);
}

/* Run the extraction pipeline (c[0..n-1], mbstream last) and finish the
 * clone; a failure removes what was extracted. */
static int clone_run(struct mdb_engine *e, const struct mdb_primary *primary, struct child_spec *c,
                     size_t n, int close_fds[2], bool existed, struct rv_error *err)
{
    struct child_result r;
    int rc = run_children(e, c, n, RV_MDB_COPY_TIMEOUT_MS, close_fds, &r, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (r.exit_code[i] != 0) {
            char tail[320];
            child_tail_line(tail, sizeof tail, &r.out);
            bool conn = output_has(&r.out, "Can't connect") || output_has(&r.out, "connect to");
            rc = rv_error_set(err, conn ? RV_EUNAVAIL : RV_ECHILD, conn,
                              "engine_mariadb: cannot clone '%s' from %s:%d ('%s' exit %d): %s",
                              e->node_name, primary->host, primary->port, c[i].argv[0],
                              r.exit_code[i], tail);
        }
    }
    if (rc == 0)
        rc = clone_finish(e, primary, err);
    if (rc != 0 && !server_pid(e))
        remove_data(e, existed);
    child_result_release(&r);
    return rc;
}

int mdb_engine_clone_from(struct mdb_engine *e, const struct mdb_primary *primary, int in_fd,
                          struct rv_error *err)
{
    bool existed = false;
    int rc = clone_prepare_dir(e, primary, &existed, err);
    if (rc != 0)
        return rc;
    char exe[RV_MDB_PATH_MAX + 32];
    snprintf(exe, sizeof exe, "%s/mbstream", e->bin_dir);
    const char *args[] = {exe, "-x", "-C", e->data_dir, NULL};
    struct child_spec c;
    child_as(&c, e, args);
    c.in = CHILD_IO_FD;
    c.in_fd = in_fd;
    return clone_run(e, primary, &c, 1, NULL, existed, err);
}

/* mariadb-backup arguments for a backup of e streamed to stdout. */
struct backup_args {
    char exe[RV_MDB_PATH_MAX + 32];
    char defaults[RV_MDB_PATH_MAX + 32];
    char user[RV_MDB_NAME_MAX + 16];
    char socket[RV_MDB_PATH_MAX + 32];
    char target[RV_MDB_PATH_MAX + 32];
    const char *argv[10];
};

static void backup_args_of(struct backup_args *a, const struct mdb_engine *e)
{
    snprintf(a->exe, sizeof a->exe, "%s/mariadb-backup", e->bin_dir);
    snprintf(a->defaults, sizeof a->defaults, "--defaults-file=%s/reeve.cnf", e->data_dir);
    snprintf(a->user, sizeof a->user, "--user=%s", e->tool_user);
    snprintf(a->socket, sizeof a->socket, "--socket=%s/mariadbd.sock", e->socket_dir);
    /* Scratch files of a streamed backup go next to the socket. */
    snprintf(a->target, sizeof a->target, "--target-dir=%s", e->socket_dir);
    const char *v[] = {a->exe,  a->defaults, "--backup", "--stream=xbstream",
                       a->user, a->socket,   a->target,  NULL};
    memcpy(a->argv, v, sizeof v);
}

int mdb_engine_clone_local(struct mdb_engine *e, const struct mdb_engine *src,
                           const struct mdb_primary *primary, struct rv_error *err)
{
    bool existed = false;
    int pfd[2] = {-1, -1};
    int rc = clone_prepare_dir(e, primary, &existed, err);
    if (rc != 0)
        return rc;
    if (!server_pid(src)) {
        rc = rv_error_set(err, RV_EUNAVAIL, true,
                          "engine_mariadb: cannot clone '%s': source '%s' is not running",
                          e->node_name, src->node_name);
        goto out;
    }
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        rc = rv_error_set(err, RV_EIO, true, "engine_mariadb: pipe: %s", strerror(errno));
        goto out;
    }
    struct backup_args ba;
    backup_args_of(&ba, src);
    char exe[RV_MDB_PATH_MAX + 32];
    snprintf(exe, sizeof exe, "%s/mbstream", e->bin_dir);
    const char *x[] = {exe, "-x", "-C", e->data_dir, NULL};
    struct child_spec c[2];
    child_as(&c[0], src, ba.argv);
    c[0].out = CHILD_IO_FD;
    c[0].out_fd = pfd[1];
    child_as(&c[1], e, x);
    c[1].in = CHILD_IO_FD;
    c[1].in_fd = pfd[0];
    rc = clone_run(e, primary, c, 2, pfd, existed, err);
out:
    if (rc != 0 && !existed && access(e->data_dir, F_OK) == 0 && !server_pid(e))
        remove_data(e, false);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    return rc;
}

int mdb_engine_backup_stream(struct mdb_engine *e, int out_fd, struct rv_error *err)
{
    struct child_result r = {0};
    struct backup_args ba;
    struct child_spec c;
    int rc = 0;
    if (!server_pid(e)) {
        rc = rv_error_set(err, RV_EUNAVAIL, true,
                          "engine_mariadb: cannot back up '%s': it is not running", e->node_name);
        goto out;
    }
    backup_args_of(&ba, e);
    child_as(&c, e, ba.argv);
    c.out = CHILD_IO_FD;
    c.out_fd = out_fd;
    rc = run_children(e, &c, 1, RV_MDB_COPY_TIMEOUT_MS, NULL, &r, err);
    if (rc == 0 && r.exit_code[0] != 0) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &r.out);
        rc = rv_error_set(err, RV_ECHILD, true,
                          "engine_mariadb: backup of '%s' failed (exit %d): %s", e->node_name,
                          r.exit_code[0], tail);
    }
out:
    child_result_release(&r);
    return rc;
}

/* --- public API: semi-synchronous replication --- */

int mdb_engine_set_semi_sync(struct mdb_engine *e, bool enabled, uint32_t timeout_ms,
                             struct rv_error *err)
{
    MYSQL *c = NULL;
    char q[128];
    int rc = 0;
    if (timeout_ms == 0)
        timeout_ms = RV_MDB_SEMI_SYNC_TIMEOUT_DEFAULT_MS;
    if (timeout_ms > RV_MDB_SEMI_SYNC_TIMEOUT_MAX_MS)
        return rv_error_set(err, RV_EINVAL, false,
                            "engine_mariadb: semi-sync timeout %" PRIu32 " ms is over %u ms",
                            timeout_ms, RV_MDB_SEMI_SYNC_TIMEOUT_MAX_MS);
    e->semi_sync = enabled;
    e->semi_sync_timeout_ms = timeout_ms;
    if ((rc = write_reeve_cnf(e, err)) != 0 || !server_pid(e))
        goto out;
    if ((rc = mdb_engine_connect(e, &c, err)) != 0)
        goto out;
    snprintf(q, sizeof q, "SET GLOBAL rpl_semi_sync_master_timeout = %" PRIu32, timeout_ms);
    if ((rc = sql_run(c, e, "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'", NULL,
                      err)) ||
        (rc = sql_run(c, e, q, NULL, err)) ||
        (rc = sql_run(c, e,
                      enabled ? "SET GLOBAL rpl_semi_sync_master_enabled = ON"
                              : "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
                      NULL, err)))
        goto out;
    log_info(COMPONENT, "'%s' semi-synchronous replication %s (timeout %" PRIu32 " ms)",
             e->node_name, enabled ? "on" : "off", timeout_ms);
out:
    if (c)
        mysql_close(c);
    return rc;
}

/* --- public API: parameters --- */

static bool numeric_type(const char *type)
{
    return strstr(type, "INT") != NULL;
}

/* An integer with an optional K, M, G or T suffix (as option files take
 * them), as the plain number SET GLOBAL needs. */
static bool parse_int(const char *s, bool is_signed, char *dst, size_t cap)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' && is_signed) {
        neg = true;
        p++;
    }
    if (!isdigit((unsigned char)*p))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    case 't':
    case 'T':
        shift = 40;
        end++;
        break;
    default:
        return false;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return false;
    v <<= shift;
    if (neg && v > (unsigned long long)INT64_MAX)
        return false;
    snprintf(dst, cap, "%s%llu", neg ? "-" : "", v);
    return true;
}

static bool parse_double(const char *s)
{
    char *end;
    if (!*s || !(isdigit((unsigned char)*s) || *s == '.'))
        return false;
    errno = 0;
    (void)strtod(s, &end);
    return !errno && *end == '\0';
}

static int bool_value(const char *s)
{
    if (!strcasecmp(s, "ON") || !strcmp(s, "1") || !strcasecmp(s, "TRUE") || !strcasecmp(s, "YES"))
        return 1;
    if (!strcasecmp(s, "OFF") || !strcmp(s, "0") || !strcasecmp(s, "FALSE") || !strcasecmp(s, "NO"))
        return 0;
    return -1;
}

static bool values_equal(const char *type, const char *want, const char *have)
{
    char a[32];
    if (numeric_type(type))
        return parse_int(want, true, a, sizeof a) && strcmp(a, have) == 0;
    if (strcmp(type, "DOUBLE") == 0)
        return parse_double(want) && parse_double(have) && strtod(want, NULL) == strtod(have, NULL);
    if (strcmp(type, "BOOLEAN") == 0)
        return bool_value(want) >= 0 && bool_value(want) == bool_value(have);
    return strcasecmp(want, have) == 0;
}

/* What SYSTEM_VARIABLES says about one variable. */
struct var_info {
    bool dynamic;
    char type[32];
    char global[RV_MDB_PARAM_VALUE_MAX + 1];
};

static int lookup_var(MYSQL *c, const struct mdb_engine *e, const char *name, struct var_info *v,
                      struct rv_error *err)
{
    MYSQL_RES *r = NULL;
    char q[RV_MDB_NAME_MAX + 256];
    /* name is [a-z0-9_] (checked), so it can be spelled into the query. */
    snprintf(q, sizeof q,
             "SELECT READ_ONLY, VARIABLE_TYPE, VARIABLE_SCOPE, COALESCE(GLOBAL_VALUE, '') FROM "
             "information_schema.SYSTEM_VARIABLES WHERE VARIABLE_NAME = UPPER('%s')",
             name);
    int rc = sql_run(c, e, q, &r, err);
    if (rc != 0)
        return rc;
    MYSQL_ROW row = mysql_fetch_row(r);
    if (!row) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_mariadb: MariaDB has no variable '%s'; check its spelling "
                          "(names as SHOW VARIABLES lists them)",
                          name);
    } else if (row[2] && strcmp(row[2], "SESSION ONLY") == 0) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_mariadb: variable '%s' is per session; it cannot be a server "
                          "parameter",
                          name);
    } else {
        v->dynamic = !(row[0] && strcmp(row[0], "YES") == 0);
        copy_field(v->type, sizeof v->type, row[1] ? row[1] : "");
        copy_field(v->global, sizeof v->global, row[3] ? row[3] : "");
    }
    mysql_free_result(r);
    return rc;
}

/* SET GLOBAL name = value, the value rendered for the variable's type. */
static int set_global(MYSQL *c, const struct mdb_engine *e, const struct mdb_param *p,
                      const struct var_info *v, struct rv_error *err)
{
    char num[32];
    char q[RV_MDB_NAME_MAX + 64];
    if (numeric_type(v->type) || strcmp(v->type, "DOUBLE") == 0) {
        bool ok = numeric_type(v->type)
                      ? parse_int(p->value, strstr(v->type, "UNSIGNED") == NULL, num, sizeof num)
                      : (parse_double(p->value) && strlen(p->value) < sizeof num &&
                         snprintf(num, sizeof num, "%s", p->value) > 0);
        if (!ok)
            return rv_error_set(err, RV_EINVAL, false,
                                "engine_mariadb: value '%.64s' of '%s' is not a number", p->value,
                                p->name);
        snprintf(q, sizeof q, "SET GLOBAL %s = %s", p->name, num);
        return sql_run(c, e, q, NULL, err);
    }
    snprintf(q, sizeof q, "SET GLOBAL %s = '%%s'", p->name);
    return sql_run1(c, e, q, p->value, NULL, err);
}

/* Check what can be checked before anything changes. */
static int check_params(const struct mdb_param *params, size_t n, struct rv_error *err)
{
    if (n > RV_MDB_PARAMS_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "engine_mariadb: more than %d parameters at once", RV_MDB_PARAMS_MAX);
    for (size_t i = 0; i < n; i++) {
        const struct mdb_param *p = &params[i];
        if (!p->name || !valid_param_name(p->name))
            return rv_error_set(err, RV_EINVAL, false,
                                "engine_mariadb: parameter name '%.64s' is malformed (lower "
                                "case, digits and '_')",
                                p->name ? p->name : "");
        if (!p->value || !valid_value(p->value))
            return rv_error_set(err, RV_EINVAL, false,
                                "engine_mariadb: value of parameter '%s' is malformed (no "
                                "quotes, backslashes or control characters)",
                                p->name);
        if (managed(p->name))
            return rv_error_set(err, RV_EINVAL, false,
                                "engine_mariadb: parameter '%s' is managed by reeve itself",
                                p->name);
    }
    return 0;
}

int mdb_engine_apply_parameters(struct mdb_engine *e, const struct mdb_param *params, size_t n,
                                bool *restart_needed, struct rv_error *err)
{
    MYSQL *c = NULL;
    struct var_info *vars = NULL;
    struct param_set s = {0};
    char num[32];
    int rc = 0;
    *restart_needed = false;
    if ((rc = check_params(params, n, err)) != 0 || n == 0)
        goto out;
    vars = calloc(n, sizeof *vars);
    if (!vars) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    if ((rc = mdb_engine_connect(e, &c, err)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if ((rc = lookup_var(c, e, params[i].name, &vars[i], err)) != 0)
            goto out;
        if (numeric_type(vars[i].type) &&
            !parse_int(params[i].value, strstr(vars[i].type, "UNSIGNED") == NULL, num,
                       sizeof num)) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "engine_mariadb: value '%.64s' of '%s' is not a number",
                              params[i].value, params[i].name);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (vars[i].dynamic) {
            if ((rc = set_global(c, e, &params[i], &vars[i], err)) != 0)
                goto out;
        } else if (!values_equal(vars[i].type, params[i].value, vars[i].global)) {
            *restart_needed = true;
        }
    }
    if ((rc = read_params(e, &s, err)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = param_set_put(&s, params[i].name, params[i].value, err)) != 0)
            goto out;
    if ((rc = write_params(e, &s, err)) != 0)
        goto out;
    log_info(COMPONENT, "applied %zu parameters to '%s'%s", n, e->node_name,
             *restart_needed ? "; a restart is needed" : "");
out:
    param_set_release(&s);
    free(vars);
    if (c)
        mysql_close(c);
    return rc;
}

/* --- public API: users --- */

static const char role_readonly[] = "SELECT, SHOW VIEW";
static const char role_readwrite[] =
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, "
    "LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, "
    "TRIGGER, REFERENCES";

int mdb_engine_ensure_user(struct mdb_engine *e, const char *name, const char *password,
                           enum mdb_user_role role, const char *database, struct rv_error *err)
{
    MYSQL *c = NULL;
    MYSQL_RES *r = NULL;
    char q[RV_MDB_NAME_MAX + 64];
    int rc = 0;
    if (!name || !eng_valid_name(name, RV_MDB_NAME_MAX) || !database || !valid_db_name(database) ||
        strcmp(name, e->repl_user) == 0 || strcmp(name, "root") == 0 ||
        strcmp(name, e->tool_user) == 0 || strcmp(name, e->admin_user) == 0 ||
        strcasecmp(database, "mysql") == 0 || strcasecmp(database, "sys") == 0 ||
        strcasecmp(database, "performance_schema") == 0 ||
        strcasecmp(database, "information_schema") == 0) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_mariadb: user '%.64s' on database '%.64s': names may only hold "
                          "letters, digits, '_' (and '-' for users), and must not be a system "
                          "user or database",
                          name ? name : "", database ? database : "");
        goto out;
    }
    if (!password || !valid_secret(password, RV_MDB_PASSWORD_MAX)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "engine_mariadb: the password of user '%s' is empty, too long or holds "
                          "a control character",
                          name);
        goto out;
    }
    if ((rc = mdb_engine_connect(e, &c, err)) != 0 ||
        (rc = sql_run(c, e, "SELECT @@read_only", &r, err)) != 0)
        goto out;
    if (strcmp(first_value(r), "0") != 0) {
        rc = rv_error_set(err, RV_ECONFLICT, false,
                          "engine_mariadb: '%s' is read-only; create user '%s' on the primary",
                          e->node_name, name);
        goto out;
    }
    snprintf(q, sizeof q, "CREATE DATABASE IF NOT EXISTS `%s`", database);
    if ((rc = sql_run(c, e, q, NULL, err)) != 0)
        goto out;
    snprintf(q, sizeof q, "`%s`.*", database);
    rc = put_user(c, e, name, password, role == MDB_ROLE_READWRITE ? role_readwrite : role_readonly,
                  q, err);
    if (rc == 0)
        log_info(COMPONENT, "user '%s' on '%s' of '%s' (%s)", name, database, e->node_name,
                 role == MDB_ROLE_READWRITE ? "readwrite" : "readonly");
out:
    if (r)
        mysql_free_result(r);
    if (c)
        mysql_close(c);
    return rc;
}

int mdb_engine_replicas(struct mdb_engine *e, struct mdb_replica *out, size_t cap, size_t *n,
                        struct rv_error *err)
{
    MYSQL *c = NULL;
    MYSQL_RES *r = NULL;
    MYSQL_ROW row;
    *n = 0;
    int rc = mdb_engine_connect(e, &c, err);
    if (rc != 0 || (rc = sql_run(c, e, "SHOW SLAVE HOSTS", &r, err)) != 0)
        goto out;
    while (r && (row = mysql_fetch_row(r)) != NULL && *n < cap) {
        struct mdb_replica *o = &out[*n];
        const char *name = field(r, row, "Host");
        if (!eng_valid_name(name, RV_MDB_NAME_MAX))
            continue; /* not a reeve node */
        copy_field(o->name, sizeof o->name, name);
        o->server_id = (uint32_t)strtoul(field(r, row, "Server_id"), NULL, 10);
        o->port = atoi(field(r, row, "Port"));
        (*n)++;
    }
out:
    if (r)
        mysql_free_result(r);
    if (c)
        mysql_close(c);
    return rc;
}

/* --- public API: switchover --- */

/* libmariadb's client errors for a connection the server closed. */
enum { MDB_CR_SERVER_GONE = 2006, MDB_CR_SERVER_LOST = 2013 };

int mdb_engine_stop_for_switchover(struct mdb_engine *e, char *final, size_t cap,
                                   struct rv_error *err)
{
    MYSQL *c = NULL;
    MYSQL_RES *r = NULL;
    pid_t pid = server_pid(e);
    int rc = 0;
    final[0] = '\0';
    if (!pid)
        return rv_error_set(err, RV_ECONFLICT, true, "engine_mariadb: '%s' is not running",
                            e->node_name);
    /* A restart from here on never brings back a writable server. */
    e->read_only = true;
    if ((rc = write_reeve_cnf(e, err)) != 0 || (rc = mdb_engine_connect(e, &c, err)) != 0 ||
        (rc = sql_run(c, e, "SET GLOBAL read_only = ON", NULL, err)) != 0 ||
        (rc = sql_run(c, e, "SELECT @@gtid_binlog_pos", &r, err)) != 0)
        goto out;
    const char *pos = first_value(r);
    if (strlen(pos) >= cap) {
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "engine_mariadb: the GTID position of '%s' is too long", e->node_name);
        goto out;
    }
    snprintf(final, cap, "%s", pos);
    /* The binary log dump threads are killed last and send everything to
     * the connected replicas first. The statement's own connection goes
     * away with the server: its answer is not awaited. */
    if (mysql_query(c, "SHUTDOWN WAIT FOR ALL SLAVES") != 0 &&
        mysql_errno(c) != MDB_CR_SERVER_LOST && mysql_errno(c) != MDB_CR_SERVER_GONE)
        log_warn(COMPONENT, "'%s': SHUTDOWN WAIT FOR ALL SLAVES: %s; stopping it with SIGTERM",
                 e->node_name, mysql_error(c));
    mysql_close(c);
    c = NULL;
    if (wait_gone(pid, RV_MDB_STOP_TIMEOUT_MS))
        log_info(COMPONENT, "stopped '%s' for a switchover at %s", e->node_name, final);
    else
        rc = mdb_engine_stop(e, MDB_STOP_FAST, err);
out:
    if (r)
        mysql_free_result(r);
    if (c)
        mysql_close(c);
    return rc;
}

/* --- public API: the users of a cluster --- */

/* Users are created and marked in MANAGED_TABLE; only marked users are
 * altered or dropped. */
enum { MDB_ER_NO_SUCH_TABLE = 1146 };
#define MANAGED_DB "reeve"
#define MANAGED_TABLE MANAGED_DB ".managed_users"

static bool reserved_user(const struct mdb_engine *e, const char *name)
{
    return strcmp(name, e->repl_user) == 0 || strcasecmp(name, "root") == 0 ||
           strcmp(name, e->tool_user) == 0 || strcmp(name, e->admin_user) == 0 ||
           strcasecmp(name, "mysql") == 0 || strcasecmp(name, "mariadb.sys") == 0 ||
           strncasecmp(name, "reeve", 5) == 0;
}

/* 1 when the query answers a first value other than "0" / "", 0 when not. */
static int sql_truth(MYSQL *c, const struct mdb_engine *e, const char *fmt, const char *arg,
                     struct rv_error *err)
{
    MYSQL_RES *r = NULL;
    int rc = sql_run1(c, e, fmt, arg, &r, err);
    if (rc == 0) {
        const char *v = first_value(r);
        rc = v[0] != '\0' && strcmp(v, "0") != 0 ? 1 : 0;
    }
    if (r)
        mysql_free_result(r);
    return rc;
}

/* What readwrite has and readonly has not: revoked from a readonly user. */
static const char role_readwrite_only[] =
    "INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, "
    "EXECUTE, CREATE VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, REFERENCES";

/* An existing user: a new password hash when it changed, then its grants
 * set without a moment without them (grant first, then revoke what the
 * role lacks), so applications keep working while the set is applied
 * again (after every switchover). */
static int regrant(MYSQL *c, const struct mdb_engine *e, const struct mdb_user *u,
                   const char *grants, const char *on, int same, struct rv_error *err)
{
    MYSQL_RES *r = NULL;
    struct buf q = BUF_INIT;
    char hash[128] = "";
    int rc = 0;
    if (!same) {
        if ((rc = sql_run1(c, e, "SELECT PASSWORD('%s')", u->password, &r, err)) != 0)
            goto out;
        snprintf(hash, sizeof hash, "%s", first_value(r));
        if (hash[0] != '*') {
            rc = rv_error_set(err, RV_EDB, false, "engine_mariadb: cannot hash a password on '%s'",
                              e->node_name);
            goto out;
        }
        if (buf_printf(&q, "ALTER USER '%s'@'%s' IDENTIFIED BY PASSWORD '%s'", u->name,
                       e->grant_host, hash) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
            goto out;
        }
        if ((rc = sql_run(c, e, q.data, NULL, err)) != 0)
            goto out;
        buf_clear(&q);
    }
    if (buf_printf(&q, "GRANT %s ON %s TO '%s'@'%s'", grants, on, u->name, e->grant_host) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    if ((rc = sql_run(c, e, q.data, NULL, err)) != 0 || u->role == MDB_ROLE_READWRITE)
        goto out;
    buf_clear(&q);
    if (buf_printf(&q, "REVOKE %s ON %s FROM '%s'@'%s'", role_readwrite_only, on, u->name,
                   e->grant_host) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "engine_mariadb: out of memory");
        goto out;
    }
    if (mysql_query(c, q.data) != 0 && mysql_errno(c) != MDB_ER_NONEXISTING_GRANT)
        rc = sql_error(c, e, err);
out:
    if (r)
        mysql_free_result(r);
    explicit_bzero(hash, sizeof hash);
    buf_release(&q);
    return rc;
}

static int sync_one(MYSQL *c, struct mdb_engine *e, const char *on, const struct mdb_user *u,
                    struct mdb_users_result *out, struct rv_error *err)
{
    char q[RV_MDB_NAME_MAX + RV_MDB_HOST_MAX + 160];
    if (!u->name || !eng_valid_name(u->name, RV_MDB_NAME_MAX) || strchr(u->name, '-') ||
        reserved_user(e, u->name))
        return rv_error_set(err, RV_EINVAL, false,
                            "user '%.64s' is reserved for MariaDB or reeve, or not a valid name",
                            u->name ? u->name : "");
    if (!u->password || !valid_secret(u->password, RV_MDB_PASSWORD_MAX))
        return rv_error_set(err, RV_EINVAL, false,
                            "the password of user '%s' is empty, too long or holds a control "
                            "character",
                            u->name);
    int exists =
        sql_truth(c, e, "SELECT COUNT(*) FROM mysql.global_priv WHERE User = '%s'", u->name, err);
    int marked = exists < 0
                     ? exists
                     : sql_truth(c, e, "SELECT COUNT(*) FROM " MANAGED_TABLE " WHERE name = '%s'",
                                 u->name, err);
    if (exists < 0 || marked < 0)
        return exists < 0 ? exists : marked;
    if (exists && !marked)
        return rv_error_set(err, RV_EINVAL, false,
                            "user '%s' exists and was not created by reeve; reeve does not take "
                            "over users it did not create: drop or rename it, or choose another "
                            "user name",
                            u->name);
    int same = 0;
    if (exists) {
        snprintf(q, sizeof q,
                 "SELECT COUNT(*) FROM mysql.user WHERE User = '%s' AND Host = '%s' AND "
                 "authentication_string = PASSWORD('%%s')",
                 u->name, e->grant_host);
        same = sql_truth(c, e, q, u->password, err);
        if (same < 0)
            return same;
    } else {
        snprintf(q, sizeof q, "INSERT IGNORE INTO " MANAGED_TABLE " (name) VALUES ('%s')", u->name);
        int rc = sql_run(c, e, q, NULL, err);
        if (rc != 0)
            return rc;
    }
    const char *grants = u->role == MDB_ROLE_READWRITE ? role_readwrite : role_readonly;
    int rc = exists ? regrant(c, e, u, grants, on, same, err)
                    : put_user(c, e, u->name, u->password, grants, on, err);
    if (rc != 0)
        return rc;
    snprintf(q, sizeof q, "%s REPLICATION SLAVE, BINLOG MONITOR ON *.* %s '%s'@'%s'",
             u->replication ? "GRANT" : "REVOKE", u->replication ? "TO" : "FROM", u->name,
             e->grant_host);
    if (mysql_query(c, q) != 0 && (u->replication || mysql_errno(c) != MDB_ER_NONEXISTING_GRANT))
        return sql_error(c, e, err);
    if (!exists)
        out->created++;
    else if (same)
        out->unchanged++;
    else
        out->altered++;
    return 0;
}

static bool in_list(const struct mdb_user *users, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (users[i].name && strcmp(users[i].name, name) == 0)
            return true;
    return false;
}

static int drop_unlisted(MYSQL *c, struct mdb_engine *e, const struct mdb_user *users, size_t n,
                         struct mdb_users_result *out, struct rv_error *err)
{
    MYSQL_RES *r = NULL;
    MYSQL_ROW row;
    char q[RV_MDB_NAME_MAX + RV_MDB_HOST_MAX + 96];
    int rc = 0;
    if (mysql_query(c, "SELECT name FROM " MANAGED_TABLE " ORDER BY name") != 0)
        /* no table: reeve never created a user here */
        return mysql_errno(c) == MDB_ER_NO_SUCH_TABLE ? 0 : sql_error(c, e, err);
    r = mysql_store_result(c);
    while (rc == 0 && r && (row = mysql_fetch_row(r)) != NULL) {
        const char *name = row[0] ? row[0] : "";
        if (in_list(users, n, name) || !eng_valid_name(name, RV_MDB_NAME_MAX) ||
            reserved_user(e, name))
            continue;
        snprintf(q, sizeof q, "DROP USER IF EXISTS '%s'@'%s'", name, e->grant_host);
        if ((rc = sql_run(c, e, q, NULL, err)) != 0)
            break;
        snprintf(q, sizeof q, "DELETE FROM " MANAGED_TABLE " WHERE name = '%s'", name);
        if ((rc = sql_run(c, e, q, NULL, err)) != 0)
            break;
        log_info(COMPONENT, "dropped user '%s' on '%s' (no longer listed)", name, e->node_name);
        out->dropped++;
    }
    if (r)
        mysql_free_result(r);
    return rc;
}

int mdb_engine_sync_users(struct mdb_engine *e, const char *database, const struct mdb_user *users,
                          size_t n, struct mdb_users_result *out, struct rv_error *err)
{
    MYSQL *c = NULL;
    MYSQL_RES *r = NULL;
    char q[RV_MDB_NAME_MAX + 64], on[RV_MDB_NAME_MAX + 8];
    int rc = 0, first = 0;
    memset(out, 0, sizeof *out);
    if (!database || !valid_db_name(database) || strcasecmp(database, MANAGED_DB) == 0 ||
        strcasecmp(database, "mysql") == 0 || strcasecmp(database, "sys") == 0 ||
        strcasecmp(database, "performance_schema") == 0 ||
        strcasecmp(database, "information_schema") == 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "engine_mariadb: '%.64s' cannot be the users' database",
                            database ? database : "");
    if ((rc = mdb_engine_connect(e, &c, err)) != 0 ||
        (rc = sql_run(c, e, "SELECT @@read_only", &r, err)) != 0)
        goto out;
    if (strcmp(first_value(r), "0") != 0) {
        rc = rv_error_set(err, RV_ECONFLICT, true,
                          "'%s' is read-only: users are applied on the primary", e->node_name);
        goto out;
    }
    snprintf(q, sizeof q, "CREATE DATABASE IF NOT EXISTS `%s`", database);
    if (n == 0) /* nothing to create: only drop what reeve created */
        goto drop;
    if ((rc = sql_run(c, e, "CREATE DATABASE IF NOT EXISTS " MANAGED_DB, NULL, err)) != 0 ||
        (rc = sql_run(c, e,
                      "CREATE TABLE IF NOT EXISTS " MANAGED_TABLE
                      " (name VARCHAR(80) PRIMARY KEY, since TIMESTAMP DEFAULT "
                      "CURRENT_TIMESTAMP) ENGINE=InnoDB",
                      NULL, err)) != 0 ||
        (rc = sql_run(c, e, q, NULL, err)) != 0)
        goto out;
    snprintf(on, sizeof on, "`%s`.*", database);
    for (size_t i = 0; i < n; i++) {
        struct rv_error one = {0};
        int orc = sync_one(c, e, on, &users[i], out, &one);
        if (orc != 0) {
            log_warn(COMPONENT, "%s", one.msg);
            if (first == 0) {
                first = orc;
                *err = one;
            }
        }
    }
drop:;
    struct rv_error d = {0};
    int drc = drop_unlisted(c, e, users, n, out, &d);
    if (drc != 0 && first == 0) {
        first = drc;
        *err = d;
    }
    rc = first;
out:
    if (r)
        mysql_free_result(r);
    if (c)
        mysql_close(c);
    return rc;
}
