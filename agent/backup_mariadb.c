/* backup_mariadb.c - MariaDB backups and their restore (see backup_mariadb.h). */
#include "backup_mariadb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <mysql.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup_db.h"
#include "bstream.h"
#include "buf.h"
#include "child.h"
#include "crypto.h"
#include "fsutil.h"
#include "log.h"
#include "restore.h"

#define COMP "backup"

/* --- the engine and the configuration --- */

bool backup_is_mariadb(const struct backup_ctx *c)
{
    const char *m = json_string_value(json_object_get(c->backup, "method"));
    return c->cfg->engine_type == ENGINE_MARIADB ||
           (m != NULL && strcmp(m, BACKUP_MDB_METHOD) == 0);
}

int backup_mdb_engine(struct mdb_engine *e, const struct agent_config *cfg, struct rv_error *err)
{
    struct mdb_engine_config mc;
    agent_config_mdb(&mc, cfg);
    return mdb_engine_init(e, &mc, err);
}

/* --- SQL over the node's socket (as the engine adapter: unix_socket) --- */

static int sql_connect(MYSQL **out, const struct mdb_engine *e, struct rv_error *err)
{
    return mdb_engine_connect(e, out, err);
}

/* Run q; *val (may be NULL) gets the first column of the first row (or ""). */
static int sql_exec(MYSQL *c, const char *q, char *val, size_t cap, struct rv_error *err)
{
    if (val != NULL && cap > 0)
        val[0] = '\0';
    if (mysql_query(c, q) != 0)
        return rv_error_set(err, RV_EDB, false, "local server: %s (error %u)", mysql_error(c),
                            mysql_errno(c));
    MYSQL_RES *r = mysql_store_result(c);
    if (r == NULL && mysql_field_count(c) != 0)
        return rv_error_set(err, RV_EDB, false, "local server: %s", mysql_error(c));
    if (r != NULL) {
        MYSQL_ROW row = mysql_fetch_row(r);
        if (val != NULL && row != NULL && row[0] != NULL)
            snprintf(val, cap, "%s", row[0]);
        mysql_free_result(r);
    }
    return 0;
}

int backup_mdb_read_only(bool *out, struct backup_ctx *c, struct rv_error *err)
{
    struct mdb_engine e;
    MYSQL *m = NULL;
    char v[16];
    *out = true;
    int rc = backup_mdb_engine(&e, c->cfg, err);
    if (rc != 0)
        return rc;
    rc = sql_connect(&m, &e, err);
    if (rc == 0)
        rc = sql_exec(m, "SELECT @@global.read_only", v, sizeof(v), err);
    if (rc == 0)
        *out = strcmp(v, "0") != 0;
    if (m != NULL)
        mysql_close(m);
    mdb_engine_release(&e);
    return rc;
}

/* --- the backup user --- */

/* The backup user's password (see backup_password). */
static int user_password(char out[CRYPTO_SHA256_HEX_SIZE], struct backup_ctx *c,
                         struct rv_error *err)
{
    return backup_password(out, c, "user " BACKUP_MDB_USER, BACKUP_MDB_USER ".mariadb-password",
                           "reeve-backup-user-mariadb", err);
}

static const char user_grants[] = "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR";

int backup_mdb_user_ensure(struct backup_ctx *c, bool primary, struct rv_error *err)
{
    char pw[CRYPTO_SHA256_HEX_SIZE], hash[128], q[512];
    struct mdb_engine e;
    MYSQL *m = NULL;
    int rc = user_password(pw, c, err);
    if (rc != 0)
        return rc;
    rc = backup_db_secret_set(c->db, BACKUP_MDB_USER ".mariadb-password", pw, err);
    if (rc != 0 || !primary)
        goto out_pw;
    if ((rc = backup_mdb_engine(&e, c->cfg, err)) != 0)
        goto out_pw;
    rc = sql_connect(&m, &e, err);
    /* The password is hex: nothing to escape. Hashed by the server, so
     * the binary log carries only the hash. */
    snprintf(q, sizeof(q), "SELECT PASSWORD('%s')", pw);
    if (rc == 0)
        rc = sql_exec(m, q, hash, sizeof(hash), err);
    if (rc == 0 && (hash[0] != '*' || strspn(hash + 1, "0123456789ABCDEF") != strlen(hash + 1)))
        rc = rv_error_set(err, RV_EDB, false, "the local server did not hash the password");
    if (rc == 0) {
        snprintf(q, sizeof(q),
                 "CREATE USER IF NOT EXISTS '%s'@'localhost' IDENTIFIED BY PASSWORD '%s'",
                 BACKUP_MDB_USER, hash);
        rc = sql_exec(m, q, NULL, 0, err);
    }
    if (rc == 0) {
        snprintf(q, sizeof(q), "ALTER USER '%s'@'localhost' IDENTIFIED BY PASSWORD '%s'",
                 BACKUP_MDB_USER, hash);
        rc = sql_exec(m, q, NULL, 0, err);
    }
    if (rc == 0) {
        snprintf(q, sizeof(q), "GRANT %s ON *.* TO '%s'@'localhost'", user_grants, BACKUP_MDB_USER);
        rc = sql_exec(m, q, NULL, 0, err);
    }
    crypto_wipe(q, sizeof(q));
    crypto_wipe(hash, sizeof(hash));
    if (m != NULL)
        mysql_close(m);
    mdb_engine_release(&e);
out_pw:
    crypto_wipe(pw, sizeof(pw));
    return rc;
}

/* --- child processes (lib/child) --- */

/* Start argv[0] as the server's OS user (backup_spawn). */
static int proc_start(struct child *ch, const char *const argv[], bool feed,
                      const struct mdb_engine *e, struct rv_error *err)
{
    char **envp = backup_env(NULL);
    if (envp == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = backup_spawn(ch, argv, envp, e->run_as, e->uid, e->gid, feed, err);
    free(envp);
    return rc;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

struct pump {
    struct rv_source *src; /* fed to the child's stdin (may be NULL) */
    struct rv_sink *sink;  /* the child's stdout goes here (NULL: to tail) */
    uint64_t moved;        /* bytes fed or read */
    int64_t deadline;      /* monotonic ms */
    const atomic_bool *cancel;
    bool src_failed; /* the error came from src */
    struct buf tail; /* the end of its stderr */
};

/* Feed a pending chunk; refill it from src. */
static int pump_feed(struct pump *pp, struct child *p, char *chunk, size_t *off, size_t *len,
                     struct rv_error *err)
{
    if (*off == *len) {
        size_t n = 0;
        int rc = rv_source_read(pp->src, chunk, RV_BACKUP_CHUNK, &n, err);
        if (rc != 0) {
            pp->src_failed = true;
            return rc;
        }
        if (n == 0) {
            close_fd(&p->in);
            return 0;
        }
        *off = 0;
        *len = n;
        pp->moved += n;
    }
    ssize_t w = write(p->in, chunk + *off, *len - *off);
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (w < 0) {
        close_fd(&p->in);
        return rv_error_set(err, RV_ECHILD, false, "the program stopped reading its input: %s",
                            strerror(errno));
    }
    *off += (size_t)w;
    return 0;
}

/* Move bytes until the child closes its output (and, when fed, its input
 * is all written); stderr is kept in pp->tail. */
static int pump_run(struct pump *pp, struct child *p, struct rv_error *err)
{
    char *chunk = malloc(RV_BACKUP_CHUNK), *in = pp->src != NULL ? malloc(RV_BACKUP_CHUNK) : NULL;
    size_t in_off = 0, in_len = 0;
    int rc = 0;
    if (chunk == NULL || (pp->src != NULL && in == NULL)) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    while (rc == 0 && (p->in >= 0 || p->out >= 0 || p->err >= 0)) {
        struct pollfd f[3] = {{.fd = p->out, .events = POLLIN},
                              {.fd = p->err, .events = POLLIN},
                              {.fd = p->in, .events = POLLOUT}};
        if (pp->cancel != NULL && atomic_load(pp->cancel)) {
            rc = rv_error_set(err, RV_ECANCELED, false, "canceled: the agent is stopping");
            break;
        }
        if (child_now_ms() > pp->deadline) {
            rc = rv_error_set(err, RV_ETIMEOUT, false, "did not finish in time (killed)");
            break;
        }
        int pr = poll(f, 3, 500);
        if (pr < 0 && errno != EINTR) {
            rc = rv_error_set(err, RV_EIO, false, "poll: %s", strerror(errno));
            break;
        }
        if (pr <= 0)
            continue;
        if (f[2].fd >= 0 && (f[2].revents & (POLLOUT | POLLERR | POLLHUP)) != 0)
            rc = pump_feed(pp, p, in, &in_off, &in_len, err);
        for (int i = 0; i < 2 && rc == 0; i++) {
            if (f[i].fd < 0 || f[i].revents == 0)
                continue;
            ssize_t n = read(f[i].fd, chunk, RV_BACKUP_CHUNK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                close_fd(i == 0 ? &p->out : &p->err);
                continue;
            }
            if (i == 1 || pp->sink == NULL) {
                (void)child_keep_tail(&pp->tail, chunk, (size_t)n, RV_BACKUP_STDERR_MAX);
                continue;
            }
            pp->moved += (uint64_t)n;
            rc = rv_sink_write(pp->sink, chunk, (size_t)n, err);
        }
    }
out:
    free(chunk);
    free(in);
    return rc;
}

/* Run a tool to its end (lib/child), bounded; its exit code is checked. */
static int tool_run(const struct mdb_engine *e, const char *const argv[], const char *what,
                    int timeout_ms, const atomic_bool *cancel, struct rv_error *err)
{
    char **envp = backup_env(NULL);
    struct child_result r;
    if (envp == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    struct child_spec s = {.argv = argv,
                           .envp = envp,
                           .run_as = e->run_as,
                           .uid = e->uid,
                           .gid = e->gid,
                           .label = "backup"};
    struct child_opts o = {
        .timeout_ms = timeout_ms, .cancel = cancel, .output_max = RV_BACKUP_STDERR_MAX};
    int rc = child_run(&r, &s, 1, &o, err);
    free(envp);
    if (rc == 0 && r.why == RV_ETIMEOUT) {
        rc = rv_error_set(err, RV_ETIMEOUT, false, "%s: did not finish in time (killed)", what);
    } else if (rc == 0 && r.why == RV_ECANCELED) {
        rc = rv_error_set(err, RV_ECANCELED, false, "%s: canceled: the agent is stopping", what);
    } else if (rc == 0 && r.exit_code[0] != 0) {
        char tail[320];
        child_tail_line(tail, sizeof(tail), &r.out);
        rc = rv_error_set(err, RV_ECHILD, false, "%s failed (exit %d): %s", what, r.exit_code[0],
                          tail);
    }
    child_result_release(&r);
    return rc;
}

/* --- files --- */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path)
{
    if (access(path, F_OK) == 0)
        nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Empty dir, keeping it. */
static void empty_dir(const char *dir)
{
    char path[RV_MDB_PATH_MAX + 300];
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        rm_tree(path);
    }
    closedir(d);
}

static int mkdir_owned(const struct mdb_engine *e, const char *path, struct rv_error *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return rv_error_set(err, RV_EIO, false, "cannot create '%s': %s", path, strerror(errno));
    if (e->run_as && chown(path, e->uid, e->gid) != 0)
        return rv_error_set(err, RV_EIO, false, "cannot hand '%s' to the server's user: %s", path,
                            strerror(errno));
    return 0;
}

/* "name = value" in xtrabackup_checkpoints / xtrabackup_info. */
static bool info_value(char *out, size_t cap, const char *text, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, name, nl) != 0 || strncmp(p + nl, " = ", 3) != 0)
            continue;
        const char *v = p + nl + 3;
        size_t len = strcspn(v, "\n");
        if (len >= cap)
            return false;
        memcpy(out, v, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

static bool lsn_ok(const char *s)
{
    return s[0] != '\0' && strlen(s) <= 20 && strspn(s, "0123456789") == strlen(s);
}

/* The GTID position from xtrabackup_info's "binlog_pos = filename '...',
 * position '...', GTID of the last change '<pos>'". */
static int info_gtid(char *out, size_t cap, const char *info)
{
    char line[RV_MDB_BACKUP_GTID_SIZE + 256];
    struct mdb_gtid_pos pos;
    out[0] = '\0';
    if (!info_value(line, sizeof(line), info, "binlog_pos"))
        return 0; /* the server had no binary log position */
    const char *g = strstr(line, "GTID of the last change '");
    if (g == NULL)
        return 0;
    g += strlen("GTID of the last change '");
    size_t len = strcspn(g, "'");
    if (len >= cap)
        return RV_ELIMIT;
    memcpy(out, g, len);
    out[len] = '\0';
    return mdb_gtid_parse(&pos, out) == 0 ? 0 : RV_EPARSE;
}

/* --- records --- */

static int manifest_get(json_t **out, struct objstore *o, const char *id, struct rv_error *err)
{
    char key[96];
    char *buf = malloc(RV_BACKUP_MANIFEST_MAX + 1);
    struct rv_source *src = NULL;
    size_t len = 0;
    json_error_t je;
    *out = NULL;
    if (buf == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    snprintf(key, sizeof(key), "base/%s/manifest.json", id);
    int rc = o->get(o, key, &src, err);
    while (rc == 0) {
        size_t n = 0;
        rc = rv_source_read(src, buf + len, RV_BACKUP_MANIFEST_MAX + 1 - len, &n, err);
        if (rc != 0 || n == 0)
            break;
        len += n;
        if (len > RV_BACKUP_MANIFEST_MAX)
            rc = rv_error_set(err, RV_ELIMIT, false, "'%s' is too large", key);
    }
    rv_source_close(src);
    if (rc == 0) {
        *out = json_loadb(buf, len, 0, &je);
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = rv_error_set(err, RV_EPARSE, false, "'%s' is not a backup record: %s", key,
                              je.text);
        }
    }
    free(buf);
    return rc;
}

/* Every readable manifest under base/, as an array. */
static int manifests_all(json_t **out, struct objstore *o, struct rv_error *err)
{
    struct objstore_entry *ent = NULL;
    size_t n = 0;
    json_t *all = json_array();
    *out = NULL;
    if (all == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = o->list(o, "base/", &ent, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char id[RV_RESTORE_ID_MAX + 1];
        const char *k = ent[i].key + 5, *slash = strchr(k, '/');
        json_t *m = NULL;
        struct rv_error e2 = {0};
        if (slash == NULL || strcmp(slash, "/manifest.json") != 0 ||
            (size_t)(slash - k) > RV_RESTORE_ID_MAX)
            continue;
        snprintf(id, sizeof(id), "%.*s", (int)(slash - k), k);
        if (manifest_get(&m, o, id, &e2) == 0)
            json_array_append_new(all, m);
    }
    objstore_entries_free(ent, n);
    if (rc != 0) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return 0;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static bool is_ok_mdb(json_t *m)
{
    return strcmp(jstr(m, "status"), "succeeded") == 0 &&
           strcmp(jstr(m, "method"), BACKUP_MDB_METHOD) == 0;
}

/* The shared record (backup_pg.c) with this method's fields. */
static json_t *record_new(struct backup_ctx *c, const char *id, const char *schedule,
                          int64_t started)
{
    json_t *r = backup_record_new(c, id, schedule, BACKUP_MDB_METHOD, false, started);
    if (r != NULL && (json_object_set_new(r, "gtid", json_null()) != 0 ||
                      json_object_set_new(r, "parent", json_null()) != 0)) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* The backup an incremental builds on: the newest succeeded backup of the
 * chain of this node's newest succeeded full backup; NULL when there is
 * none or the chain is full. */
static json_t *parent_find(struct backup_ctx *c, size_t *chain_len, struct rv_error *err)
{
    json_t *all = NULL, *full = NULL, *best = NULL;
    size_t i, n = 0;
    json_t *m;
    *chain_len = 0;
    if (manifests_all(&all, c->store, err) != 0)
        return NULL;
    json_array_foreach(all, i, m)
    {
        if (is_ok_mdb(m) && strcmp(jstr(m, "type"), "full") == 0 &&
            strcmp(jstr(m, "node"), c->cfg->node) == 0 && lsn_ok(jstr(m, "end_lsn")) &&
            (full == NULL || strcmp(jstr(m, "started_at"), jstr(full, "started_at")) > 0))
            full = m;
    }
    json_array_foreach(all, i, m)
    {
        if (full == NULL || !is_ok_mdb(m) ||
            strcmp(jstr(m, "set_id"), jstr(full, "backup_id")) != 0 ||
            strcmp(jstr(m, "node"), c->cfg->node) != 0 || !lsn_ok(jstr(m, "end_lsn")))
            continue;
        n++;
        if (best == NULL || strcmp(jstr(m, "started_at"), jstr(best, "started_at")) > 0)
            best = m;
    }
    *chain_len = n;
    if (best != NULL && n < RV_MDB_BACKUP_CHAIN_MAX)
        json_incref(best);
    else
        best = NULL;
    json_decref(all);
    return best;
}

/* --- taking a backup --- */

struct take {
    struct backup_ctx *c;
    struct mdb_engine e;
    bool e_ok;
    char id[32];
    char scratch[RV_MDB_PATH_MAX + 32]; /* <socket_dir>/reeve-backup-XXXXXX */
    char from_lsn[24], to_lsn[24];
    char gtid[RV_MDB_BACKUP_GTID_SIZE];
    struct bstream_result res;
    uint64_t raw;
};

/* The option file: the server's reeve.cnf plus the backup user. */
static int scratch_make(struct take *t, struct rv_error *err)
{
    char path[RV_MDB_PATH_MAX + 64], pw[CRYPTO_SHA256_HEX_SIZE];
    struct buf b = BUF_INIT;
    int fd = -1;
    int rc = user_password(pw, t->c, err);
    if (rc != 0)
        return rc;
    if ((size_t)snprintf(t->scratch, sizeof(t->scratch), "%s/reeve-backup-XXXXXX",
                         t->e.socket_dir) >= sizeof(t->scratch) ||
        mkdtemp(t->scratch) == NULL) {
        rc = rv_error_set(err, RV_EIO, false, "cannot create a scratch directory in '%s': %s",
                          t->e.socket_dir, strerror(errno));
        t->scratch[0] = '\0';
        goto out;
    }
    snprintf(path, sizeof(path), "%s/tmp", t->scratch);
    if ((rc = mkdir_owned(&t->e, t->scratch, err)) != 0 || (rc = mkdir_owned(&t->e, path, err)))
        goto out;
    snprintf(path, sizeof(path), "%s/lsn", t->scratch);
    if ((rc = mkdir_owned(&t->e, path, err)) != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/backup.cnf", t->scratch);
    if (buf_printf(&b, "!include %s/reeve.cnf\n[mariadb-backup]\nuser = %s\npassword = %s\n",
                   t->e.data_dir, BACKUP_MDB_USER, pw) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len ||
        (t->e.run_as && fchown(fd, t->e.uid, t->e.gid) != 0))
        rc = rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (b.data != NULL)
        crypto_wipe(b.data, b.len);
    buf_release(&b);
    crypto_wipe(pw, sizeof(pw));
    return rc;
}

/* LSNs and GTID from the --extra-lsndir files. */
static int lsn_read(struct take *t, bool incremental, struct rv_error *err)
{
    char path[RV_MDB_PATH_MAX + 64], type[32];
    struct buf cp = BUF_INIT, info = BUF_INIT;
    snprintf(path, sizeof(path), "%s/lsn/xtrabackup_checkpoints", t->scratch);
    int rc = fs_read_file(&cp, path, RV_MDB_BACKUP_INFO_MAX, NULL, err);
    snprintf(path, sizeof(path), "%s/lsn/xtrabackup_info", t->scratch);
    if (rc == 0)
        rc = fs_read_file(&info, path, RV_MDB_BACKUP_INFO_MAX, NULL, err);
    if (rc != 0)
        goto out;
    if (!info_value(type, sizeof(type), cp.data, "backup_type") ||
        !info_value(t->from_lsn, sizeof(t->from_lsn), cp.data, "from_lsn") ||
        !info_value(t->to_lsn, sizeof(t->to_lsn), cp.data, "to_lsn") || !lsn_ok(t->from_lsn) ||
        !lsn_ok(t->to_lsn) || strcmp(type, incremental ? "incremental" : "full-backuped") != 0) {
        rc = rv_error_set(err, RV_EPARSE, false,
                          "mariadb-backup left an unexpected xtrabackup_checkpoints");
        goto out;
    }
    int g = info_gtid(t->gtid, sizeof(t->gtid), info.data);
    if (g != 0)
        rc = rv_error_set(err, RV_EPARSE, false,
                          "mariadb-backup's xtrabackup_info has a malformed binlog_pos");
out:
    buf_release(&cp);
    buf_release(&info);
    return rc;
}

static int stream_backup(struct take *t, const char *parent_lsn, struct rv_error *err)
{
    char key[96], exe[RV_MDB_PATH_MAX + 32], dflt[RV_MDB_PATH_MAX + 64];
    char sock[RV_MDB_PATH_MAX + 32], target[RV_MDB_PATH_MAX + 64], lsndir[RV_MDB_PATH_MAX + 64];
    char inc[48];
    struct rv_sink *down = NULL, *enc = NULL;
    struct bstream_opts opts = {.key = t->c->has_key ? t->c->key : NULL};
    struct child p = CHILD_INIT;
    struct pump pp = {.deadline = child_now_ms() + RV_BACKUP_TIMEOUT_MS, .cancel = t->c->cancel};
    snprintf(exe, sizeof(exe), "%s/mariadb-backup", t->e.bin_dir);
    snprintf(dflt, sizeof(dflt), "--defaults-file=%s/backup.cnf", t->scratch);
    snprintf(sock, sizeof(sock), "--socket=%s/mariadbd.sock", t->e.socket_dir);
    snprintf(target, sizeof(target), "--target-dir=%s/tmp", t->scratch);
    snprintf(lsndir, sizeof(lsndir), "--extra-lsndir=%s/lsn", t->scratch);
    snprintf(inc, sizeof(inc), "--incremental-lsn=%s", parent_lsn != NULL ? parent_lsn : "");
    const char *argv[] = {exe,  dflt,   "--backup", "--stream=xbstream",
                          sock, target, lsndir,     parent_lsn != NULL ? inc : NULL,
                          NULL};
    snprintf(key, sizeof(key), "base/%s/data", t->id);
    int rc = t->c->store->put(t->c->store, key, &down, err);
    if (rc != 0)
        return rc;
    rc = bstream_encoder_new(&enc, down, &opts, &t->res, err);
    if (rc != 0) {
        rv_sink_abort(down);
        return rc;
    }
    rc = proc_start(&p, argv, false, &t->e, err);
    if (rc == 0) {
        log_info(COMP, "backup %s: running mariadb-backup%s", t->id,
                 parent_lsn != NULL ? " (incremental)" : "");
        pp.sink = enc;
        rc = pump_run(&pp, &p, err);
        t->raw = pp.moved;
    }
    int code = backup_child_finish(&p, rc != 0);
    if (rc == 0 && code != 0) {
        char tail[320];
        child_tail_line(tail, sizeof(tail), &pp.tail);
        rc = rv_error_set(err, RV_ECHILD, false, "mariadb-backup failed (exit %d): %s", code, tail);
    }
    if (rc == 0 && t->raw == 0)
        rc = rv_error_set(err, RV_ECHILD, false, "mariadb-backup wrote nothing to its output");
    if (rc == 0) {
        rc = rv_sink_finish(enc, err);
        enc = NULL;
    }
    rv_sink_abort(enc);
    buf_release(&pp.tail);
    return rc;
}

static void notify(struct backup_ctx *c, json_t *rec, bool ok)
{
    struct rv_error e = {0};
    json_t *n = json_object_get(c->backup, "notify");
    const char *cmd = json_string_value(json_object_get(n, ok ? "success" : "failure"));
    if (cmd != NULL && backup_hook_run(c, ok ? "success notification" : "failure notification", cmd,
                                       rec, &e) != 0) {
        log_warn(COMP, "backup %s: %s", jstr(rec, "backup_id"), e.msg);
        backup_db_log(c->db, jstr(rec, "backup_id"), "warn", "%s", e.msg);
    }
}

/* Fill the record after a successful stream and write the manifest. */
static int take_finish(struct take *t, json_t *rec, int64_t started, struct rv_error *err)
{
    json_object_set_new(rec, "size", json_integer((json_int_t)t->res.stored_bytes));
    json_object_set_new(rec, "raw_size", json_integer((json_int_t)t->res.raw_bytes));
    json_object_set_new(rec, "checksum", json_string(t->res.sha256));
    json_object_set_new(rec, "encrypted", json_boolean(t->res.encrypted));
    json_object_set_new(rec, "start_lsn", json_string(t->from_lsn));
    json_object_set_new(rec, "end_lsn", json_string(t->to_lsn));
    json_object_set_new(rec, "gtid", json_string(t->gtid));
    backup_record_end(rec, "succeeded", NULL, started);
    json_object_set(rec, "consistent_at", json_object_get(rec, "ended_at"));
    return backup_manifest_put(t->c, t->id, rec, err);
}

static int take(json_t **out, struct backup_ctx *c, bool incremental, const char *schedule,
                struct rv_error *err)
{
    struct take t = {.c = c};
    char key[96], loc[RV_PG_PATH_MAX + 256];
    int64_t started = backup_now_ms();
    json_t *rec = NULL, *parent = NULL;
    struct rv_error e2 = {0};
    int lock = -1, rc;
    size_t chain = 0;
    if (out != NULL)
        *out = NULL;
    if (c->backup == NULL || c->store == NULL)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "no backup configuration for this cluster (the reconciler has not "
                            "sent one yet, or spec.backup is not set)");
    if (backup_id_new(t.id, started) != 0)
        return rv_error_set(err, RV_ECRYPTO, false, "cannot make a backup id");
    if ((rc = backup_lock(&lock, c, err)) != 0)
        return rc;
    if ((rc = backup_mdb_engine(&t.e, c->cfg, err)) != 0) {
        close(lock);
        return rc;
    }
    t.e_ok = true;
    if (incremental) {
        parent = parent_find(c, &chain, &e2);
        if (parent == NULL)
            log_info(COMP, "backup %s: %s: taking a full backup instead of an incremental", t.id,
                     chain >= RV_MDB_BACKUP_CHAIN_MAX ? "the chain is at its longest"
                                                      : "no full backup of this node to build on");
    }
    rec = record_new(c, t.id, schedule, started);
    if (rec == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (parent != NULL) {
        json_object_set_new(rec, "type", json_string("incremental"));
        json_object_set(rec, "set_id", json_object_get(parent, "set_id"));
        json_object_set(rec, "parent", json_object_get(parent, "backup_id"));
    }
    snprintf(key, sizeof(key), "base/%s/data", t.id);
    snprintf(loc, sizeof(loc), "%s/%s", c->location, key);
    json_object_set_new(rec, "name", json_string(key));
    json_object_set_new(rec, "location", json_string(loc));
    if (backup_db_record_put(c->db, rec, &e2) != 0)
        log_warn(COMP, "backup %s: cannot record it: %s", t.id, e2.msg);
    backup_db_log(c->db, t.id, "info", "started (%s %s, %s)", BACKUP_MDB_METHOD, jstr(rec, "type"),
                  schedule);
    log_info(COMP, "backup %s started (%s %s, %s)", t.id, BACKUP_MDB_METHOD, jstr(rec, "type"),
             schedule);
    const char *pre = json_string_value(json_object_get(c->backup, "pre_script"));
    if (pre != NULL && (rc = backup_hook_run(c, "pre script", pre, rec, err)) != 0)
        goto done;
    if ((rc = scratch_make(&t, err)) != 0 ||
        (rc = stream_backup(&t, parent != NULL ? jstr(parent, "end_lsn") : NULL, err)) != 0 ||
        (rc = lsn_read(&t, parent != NULL, err)) != 0 ||
        (rc = take_finish(&t, rec, started, err)) != 0)
        goto done;
    const char *post = json_string_value(json_object_get(c->backup, "post_script"));
    if (post != NULL && backup_hook_run(c, "post script", post, rec, &e2) != 0) {
        log_warn(COMP, "backup %s: %s", t.id, e2.msg);
        backup_db_log(c->db, t.id, "warn", "%s", e2.msg);
    }
done:
    if (rc != 0) {
        backup_record_end(rec, "failed", err->msg, started);
        backup_db_log(c->db, t.id, "error", "%s", err->msg);
        log_error(COMP, "backup %s failed: %s", t.id, err->msg);
    } else {
        backup_db_log(c->db, t.id, "info",
                      "succeeded: %" PRIu64 " bytes stored, sha256 %s, lsn %s..%s, gtid '%s'",
                      t.res.stored_bytes, t.res.sha256, t.from_lsn, t.to_lsn, t.gtid);
        log_info(COMP, "backup %s succeeded (%s): %" PRIu64 " bytes stored, gtid '%s'", t.id,
                 jstr(rec, "type"), t.res.stored_bytes, t.gtid);
        if (c->progress_stderr)
            fprintf(stderr, "backup %s: %.1f MiB read, %.1f MiB stored\n", t.id,
                    (double)t.raw / 1048576.0, (double)t.res.stored_bytes / 1048576.0);
    }
    if (backup_db_record_put(c->db, rec, &e2) != 0)
        log_warn(COMP, "backup %s: cannot record it: %s", t.id, e2.msg);
    notify(c, rec, rc == 0);
    if (out != NULL) {
        *out = rec;
        rec = NULL;
    }
out:
    if (t.scratch[0] != '\0')
        rm_tree(t.scratch);
    if (t.e_ok)
        mdb_engine_release(&t.e);
    json_decref(parent);
    json_decref(rec);
    close(lock);
    return rc;
}

int backup_mdb_full(json_t **out, struct backup_ctx *c, const char *schedule, struct rv_error *err)
{
    return take(out, c, false, schedule, err);
}

int backup_mdb_incremental(json_t **out, struct backup_ctx *c, const char *schedule,
                           struct rv_error *err)
{
    return take(out, c, true, schedule, err);
}

/* --- retention --- */

static int remove_backup(struct objstore *o, const char *id, size_t *deleted, struct rv_error *err)
{
    char key[96];
    /* The manifest first: a backup without it no longer counts. */
    snprintf(key, sizeof(key), "base/%s/manifest.json", id);
    int rc = o->remove(o, key, err);
    snprintf(key, sizeof(key), "base/%s/data", id);
    if (rc == 0)
        rc = o->remove(o, key, err);
    if (rc == 0)
        *deleted += 2;
    return rc;
}

/* Whether every backup of set was started before cutoff. */
static bool set_expired(json_t *all, const char *set, const char *cutoff)
{
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m)
    {
        if (strcmp(jstr(m, "set_id"), set) == 0 && strcmp(jstr(m, "started_at"), cutoff) >= 0)
            return false;
    }
    return true;
}

int backup_mdb_retention(struct backup_ctx *c, int64_t now, size_t *deleted_out,
                         struct rv_error *err)
{
    json_t *all = NULL, *m, *newest = NULL;
    struct objstore_entry *ent = NULL;
    size_t i, n = 0, deleted = 0;
    char cutoff[32];
    int64_t days = json_integer_value(json_object_get(c->backup, "retention_days"));
    int rc;
    if (deleted_out != NULL)
        *deleted_out = 0;
    if (c->store == NULL || days <= 0)
        return 0;
    backup_time_format(cutoff, now - days * 86400 * 1000);
    if ((rc = manifests_all(&all, c->store, err)) != 0)
        return rc;
    json_array_foreach(all, i, m)
    {
        if (strcmp(jstr(m, "status"), "succeeded") == 0 && strcmp(jstr(m, "type"), "full") == 0 &&
            (newest == NULL || strcmp(jstr(m, "started_at"), jstr(newest, "started_at")) > 0))
            newest = m;
    }
    /* A chain goes as a whole, once its newest backup is past retention;
     * the newest full backup's chain stays whatever its age. */
    json_array_foreach(all, i, m)
    {
        const char *set = jstr(m, "set_id");
        if (rc != 0 || (newest != NULL && strcmp(set, jstr(newest, "backup_id")) == 0) ||
            !set_expired(all, set, cutoff))
            continue;
        log_info(COMP, "retention: deleting backup %s (set %s, older than %" PRId64 " days)",
                 jstr(m, "backup_id"), set, days);
        rc = remove_backup(c->store, jstr(m, "backup_id"), &deleted, err);
    }
    /* Data objects without a manifest (backups that never completed), by the
     * time in their id. */
    if (rc == 0)
        rc = c->store->list(c->store, "base/", &ent, &n, err);
    for (i = 0; rc == 0 && i < n; i++) {
        size_t klen = strlen(ent[i].key);
        struct tm t = {0};
        if (klen < 10 || strcmp(ent[i].key + klen - 5, "/data") != 0 ||
            (i + 1 < n && strncmp(ent[i + 1].key, ent[i].key, klen - 4) == 0 &&
             strcmp(ent[i + 1].key + klen - 4, "manifest.json") == 0) ||
            strptime(ent[i].key + 5, "%Y%m%dT%H%M%SZ", &t) == NULL ||
            (int64_t)timegm(&t) * 1000 >= now - days * 86400 * 1000)
            continue;
        log_info(COMP, "retention: deleting '%s' (an incomplete backup)", ent[i].key);
        rc = c->store->remove(c->store, ent[i].key, err);
        if (rc == 0)
            deleted++;
    }
    objstore_entries_free(ent, n);
    json_decref(all);
    if (deleted_out != NULL)
        *deleted_out = deleted;
    return rc;
}

/* --- restore --- */

struct chain {
    json_t *m[RV_MDB_BACKUP_CHAIN_MAX]; /* full first */
    size_t n;
};

static void chain_free(struct chain *ch)
{
    for (size_t i = 0; i < ch->n; i++)
        json_decref(ch->m[i]);
    ch->n = 0;
}

/* The newest succeeded MariaDB backup (ended at or before the target). */
static int target_find(char *id, size_t cap, const struct restore_mdb_opts *o, struct rv_error *err)
{
    json_t *all = NULL, *best = NULL, *m;
    size_t i;
    char limit[32] = "";
    int rc = manifests_all(&all, o->store, err);
    if (rc != 0)
        return rc;
    if (o->has_target)
        backup_time_format(limit, o->target_ms);
    json_array_foreach(all, i, m)
    {
        const char *ended = jstr(m, "ended_at");
        if (!is_ok_mdb(m) || ended[0] == '\0' || (o->has_target && strcmp(ended, limit) > 0))
            continue;
        if (best == NULL || strcmp(ended, jstr(best, "ended_at")) > 0)
            best = m;
    }
    if (best == NULL)
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          o->has_target ? "no succeeded MariaDB backup ended at or before %s"
                                        : "no succeeded MariaDB backup in the store%s",
                          limit);
    else
        snprintf(id, cap, "%s", jstr(best, "backup_id"));
    json_decref(all);
    return rc;
}

/* Walk parents from id down to the full backup; check that they agree. */
static int chain_load(struct chain *ch, struct objstore *o, const char *id, struct rv_error *err)
{
    json_t *rev[RV_MDB_BACKUP_CHAIN_MAX];
    size_t n = 0;
    char cur[RV_RESTORE_ID_MAX + 1];
    int rc = 0;
    snprintf(cur, sizeof(cur), "%s", id);
    for (;;) {
        json_t *m = NULL;
        if (n == RV_MDB_BACKUP_CHAIN_MAX) {
            rc = rv_error_set(err, RV_ELIMIT, false,
                              "backup %s: its chain is longer than %d backups", id,
                              RV_MDB_BACKUP_CHAIN_MAX);
            break;
        }
        rc = manifest_get(&m, o, cur, err);
        if (rc == RV_ENOTFOUND && n > 0)
            rc = rv_error_set(err, RV_EINTEGRITY, false,
                              "backup %s cannot be restored: backup %s of its chain is missing", id,
                              cur);
        if (rc != 0)
            break;
        rev[n++] = m;
        if (!is_ok_mdb(m) || strcmp(jstr(m, "backup_id"), cur) != 0 ||
            strcmp(jstr(m, "set_id"), jstr(rev[0], "set_id")) != 0 ||
            jstr(m, "checksum")[0] == '\0') {
            rc = rv_error_set(err, n == 1 ? RV_EINVAL : RV_EINTEGRITY, false,
                              "backup %s cannot be restored: backup %s is not a succeeded "
                              "mariabackup backup of set %s",
                              id, cur, jstr(rev[0], "set_id"));
            break;
        }
        if (strcmp(jstr(m, "type"), "full") == 0)
            break;
        snprintf(cur, sizeof(cur), "%s", jstr(m, "parent"));
        if (cur[0] == '\0' || strcmp(jstr(m, "type"), "incremental") != 0) {
            rc = rv_error_set(err, RV_EINTEGRITY, false,
                              "backup %s cannot be restored: backup %s has no parent", id,
                              jstr(m, "backup_id"));
            break;
        }
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            json_decref(rev[i]);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        ch->m[i] = rev[n - 1 - i];
    ch->n = n;
    return 0;
}

struct restore_run {
    struct mdb_engine *e;
    const struct restore_mdb_opts *o;
    char work[RV_MDB_PATH_MAX + 1];
    uint64_t stored, raw;
};

/* Decode base/<id>/data into `mbstream -x -C dir`. */
static int extract(struct restore_run *r, json_t *m, const char *dir, struct rv_error *err)
{
    char key[96], exe[RV_MDB_PATH_MAX + 32];
    const char *id = jstr(m, "backup_id");
    struct rv_source *up = NULL, *dec = NULL;
    struct child p = CHILD_INIT;
    struct pump pp = {.deadline = child_now_ms() + RV_BACKUP_TIMEOUT_MS, .cancel = r->o->cancel};
    int64_t size = 0;
    snprintf(key, sizeof(key), "base/%s/data", id);
    snprintf(exe, sizeof(exe), "%s/mbstream", r->e->bin_dir);
    const char *argv[] = {exe, "-x", "-C", dir, NULL};
    int rc = mkdir_owned(r->e, dir, err);
    if (rc == 0)
        rc = r->o->store->stat(r->o->store, key, &size, err);
    if (rc == RV_ENOTFOUND)
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "backup %s is damaged: its data object '%s' is missing", id, key);
    if (rc == 0)
        rc = r->o->store->get(r->o->store, key, &up, err);
    if (rc != 0)
        return rc;
    rc = bstream_decoder_new(&dec, up, r->o->key, jstr(m, "checksum"), err);
    if (rc != 0)
        goto out;
    rc = proc_start(&p, argv, true, r->e, err);
    if (rc == 0) {
        pp.src = dec;
        rc = pump_run(&pp, &p, err);
    }
    int code = backup_child_finish(&p, rc != 0);
    if (rc != 0 && rc == RV_EINTEGRITY) {
        char msg[RV_ERROR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        rc = rv_error_set(err, RV_EINTEGRITY, false, "backup %s is damaged: %s", id, msg);
    } else if (rc == 0 && code != 0) {
        char tail[320];
        child_tail_line(tail, sizeof(tail), &pp.tail);
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "backup %s is damaged: mbstream could not extract it (exit %d): %s", id,
                          code, tail);
    }
    if (rc == 0) {
        r->raw += pp.moved;
        r->stored += (uint64_t)size;
    }
out:
    buf_release(&pp.tail);
    rv_source_close(dec);
    return rc;
}

static int prepare_chain(struct restore_run *r, const struct chain *ch, struct rv_error *err)
{
    char exe[RV_MDB_PATH_MAX + 32], target[RV_MDB_PATH_MAX + 48], inc[RV_MDB_PATH_MAX + 64];
    char what[96];
    snprintf(exe, sizeof(exe), "%s/mariadb-backup", r->e->bin_dir);
    snprintf(target, sizeof(target), "--target-dir=%s/00", r->work);
    for (size_t i = 0; i < ch->n; i++) {
        snprintf(inc, sizeof(inc), "--incremental-dir=%s/%02zu", r->work, i);
        snprintf(what, sizeof(what), "preparing backup %s", jstr(ch->m[i], "backup_id"));
        const char *argv[] = {exe, "--no-defaults", "--prepare", target, i > 0 ? inc : NULL, NULL};
        int rc = tool_run(r->e, argv, what, RV_MDB_BACKUP_PREPARE_TIMEOUT_MS, r->o->cancel, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The GTID position of the prepared copy ("" when it had none). */
static int prepared_gtid(struct restore_run *r, char *out, size_t cap, struct rv_error *err)
{
    static const char *const names[] = {"mariadb_backup_binlog_info", "xtrabackup_binlog_info",
                                        NULL};
    char path[RV_MDB_PATH_MAX + 64], file[256], pos[32];
    struct mdb_gtid_pos g;
    out[0] = '\0';
    for (size_t i = 0; names[i] != NULL; i++) {
        struct buf b = BUF_INIT;
        snprintf(path, sizeof(path), "%s/00/%s", r->work, names[i]);
        int rc = fs_read_file(&b, path, RV_MDB_BACKUP_INFO_MAX, NULL, err);
        if (rc == RV_ENOTFOUND) {
            buf_release(&b);
            rv_error_clear(err);
            continue;
        }
        /* The GTID field fits: the whole file is shorter than its buffer. */
        char *gt = rc == 0 && strlen(b.data) < cap ? calloc(1, cap) : NULL;
        int n = gt != NULL ? sscanf(b.data, "%255s %31s %s", file, pos, gt) : 0;
        if (rc == 0 && (gt == NULL || n < 2 || (n == 3 && mdb_gtid_parse(&g, gt) != 0)))
            rc = rv_error_set(err, RV_EINTEGRITY, false, "the restored copy's %s is malformed",
                              names[i]);
        if (rc == 0 && n == 3)
            snprintf(out, cap, "%s", gt);
        free(gt);
        buf_release(&b);
        return rc;
    }
    return 0;
}

static int chown_cb_uid = -1, chown_cb_gid = -1;
static pthread_mutex_t chown_mu = PTHREAD_MUTEX_INITIALIZER;

static int chown_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return lchown(path, (uid_t)chown_cb_uid, (gid_t)chown_cb_gid) != 0 ? -1 : 0;
}

/* Everything in the data directory belongs to the server's user. */
static int fix_owner(const struct mdb_engine *e, struct rv_error *err)
{
    int rc = 0;
    if (!e->run_as)
        return 0;
    pthread_mutex_lock(&chown_mu);
    chown_cb_uid = (int)e->uid;
    chown_cb_gid = (int)e->gid;
    if (nftw(e->data_dir, chown_cb, 16, FTW_PHYS) != 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot hand '%s' to the server's user: %s",
                          e->data_dir, strerror(errno));
    pthread_mutex_unlock(&chown_mu);
    return rc;
}

static int move_back(struct restore_run *r, struct rv_error *err)
{
    char exe[RV_MDB_PATH_MAX + 32], target[RV_MDB_PATH_MAX + 48], dd[RV_MDB_PATH_MAX + 32];
    snprintf(exe, sizeof(exe), "%s/mariadb-backup", r->e->bin_dir);
    snprintf(target, sizeof(target), "--target-dir=%s/00", r->work);
    snprintf(dd, sizeof(dd), "--datadir=%s", r->e->data_dir);
    const char *argv[] = {exe, "--no-defaults", "--move-back", target, dd, NULL};
    int rc = mkdir_owned(r->e, r->e->data_dir, err);
    if (rc == 0)
        rc = tool_run(r->e, argv, "moving the restored copy into the data directory",
                      RV_MDB_BACKUP_PREPARE_TIMEOUT_MS, r->o->cancel, err);
    if (rc == 0)
        rc = fix_owner(r->e, err);
    return rc;
}

/* Start read-only, make the binary log continue the restored position,
 * then take writes. */
static int start_restored(struct restore_run *r, const char *gtid, struct rv_error *err)
{
    char q[RV_MDB_BACKUP_GTID_SIZE + 64];
    MYSQL *m = NULL;
    r->e->read_only = true;
    int rc = mdb_engine_start(r->e, err);
    if (rc == 0)
        rc = sql_connect(&m, r->e, err);
    if (rc == 0 && gtid[0] != '\0') {
        /* gtid is checked by mdb_gtid_parse: digits, '-' and ','. */
        rc = sql_exec(m, "RESET MASTER", NULL, 0, err);
        snprintf(q, sizeof(q), "SET GLOBAL gtid_binlog_state = '%s'", gtid);
        if (rc == 0)
            rc = sql_exec(m, q, NULL, 0, err);
        snprintf(q, sizeof(q), "SET GLOBAL gtid_slave_pos = '%s'", gtid);
        if (rc == 0)
            rc = sql_exec(m, q, NULL, 0, err);
    }
    if (m != NULL)
        mysql_close(m);
    if (rc == 0)
        rc = mdb_engine_promote(r->e, err);
    return rc;
}

static int dir_state(const char *path, bool *empty, struct rv_error *err)
{
    DIR *d = opendir(path);
    struct dirent *de;
    *empty = true;
    if (d == NULL && errno == ENOENT)
        return 0;
    if (d == NULL)
        return rv_error_set(err, RV_EIO, false, "cannot read '%s': %s", path, strerror(errno));
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            *empty = false;
    closedir(d);
    return 0;
}

static int restore_checks(struct restore_run *r, struct rv_error *err)
{
    struct mdb_status st;
    bool empty = true;
    int rc = mdb_engine_status(r->e, NULL, &st, err);
    if (rc != 0)
        return rc;
    if (st.running)
        return rv_error_set(err, RV_EEXISTS, false,
                            "cannot restore into '%s': a server is running on it; stop it first",
                            r->e->data_dir);
    if ((rc = dir_state(r->e->data_dir, &empty, err)) != 0)
        return rc;
    if (!empty)
        return rv_error_set(err, RV_EEXISTS, false,
                            "cannot restore into '%s': it is not empty (restore never "
                            "overwrites a data directory)",
                            r->e->data_dir);
    if (r->o->work_dir != NULL)
        snprintf(r->work, sizeof(r->work), "%s", r->o->work_dir);
    else if ((size_t)snprintf(r->work, sizeof(r->work), "%s.reeve-restore", r->e->data_dir) >=
             sizeof(r->work))
        return rv_error_set(err, RV_ELIMIT, false, "data_dir '%s' is too long", r->e->data_dir);
    if (r->o->work_dir == NULL)
        rm_tree(r->work); /* our own leftover from an interrupted restore */
    if (access(r->work, F_OK) == 0)
        return rv_error_set(err, RV_EEXISTS, false,
                            "restore work directory '%s' exists: remove it or give another",
                            r->work);
    return mkdir_owned(r->e, r->work, err);
}

int restore_mdb_run(struct mdb_engine *e, const struct restore_mdb_opts *o,
                    struct restore_mdb_result *res, struct rv_error *err)
{
    struct restore_run r = {.e = e, .o = o};
    struct chain ch = {.n = 0};
    char id[RV_RESTORE_ID_MAX + 1], dir[RV_MDB_PATH_MAX + 16];
    char gtid[RV_MDB_BACKUP_GTID_SIZE];
    int64_t started = child_now_ms();
    bool work_made = false;
    int rc;
    if (res != NULL)
        memset(res, 0, sizeof(*res));
    if (o->backup_id != NULL)
        snprintf(id, sizeof(id), "%s", o->backup_id);
    rc = o->backup_id != NULL ? 0 : target_find(id, sizeof(id), o, err);
    if (rc == 0)
        rc = chain_load(&ch, o->store, id, err);
    if (rc == 0)
        rc = restore_checks(&r, err);
    if (rc != 0)
        goto out;
    work_made = true;
    log_info(COMP, "restoring backup %s of set %s (%zu backup%s) into '%s'", id,
             jstr(ch.m[0], "backup_id"), ch.n, ch.n > 1 ? "s" : "", e->data_dir);
    for (size_t i = 0; rc == 0 && i < ch.n; i++) {
        snprintf(dir, sizeof(dir), "%s/%02zu", r.work, i);
        rc = extract(&r, ch.m[i], dir, err);
    }
    if (rc == 0)
        rc = prepare_chain(&r, &ch, err);
    if (rc == 0)
        rc = prepared_gtid(&r, gtid, sizeof(gtid), err);
    if (rc == 0)
        rc = move_back(&r, err);
    if (rc == 0)
        rc = start_restored(&r, gtid, err);
    if (rc != 0)
        goto out;
    log_info(COMP, "restored backup %s into '%s' at GTID '%s'", id, e->data_dir, gtid);
    if (res != NULL) {
        snprintf(res->backup_id, sizeof(res->backup_id), "%s", id);
        snprintf(res->set_id, sizeof(res->set_id), "%s", jstr(ch.m[0], "backup_id"));
        res->chain_len = ch.n;
        res->stored_bytes = r.stored;
        res->raw_bytes = r.raw;
        snprintf(res->gtid, sizeof(res->gtid), "%s", gtid);
        snprintf(res->consistent_at, sizeof(res->consistent_at), "%s",
                 jstr(ch.m[ch.n - 1], "ended_at"));
        res->duration_ms = child_now_ms() - started;
    }
out:
    if (rc != 0 && work_made) {
        struct rv_error e2 = {0};
        (void)mdb_engine_stop(e, MDB_STOP_IMMEDIATE, &e2);
        empty_dir(e->data_dir);
        log_error(COMP, "restore of %s into '%s' failed (the data directory is emptied): %s", id,
                  e->data_dir, err->msg);
    }
    if (work_made)
        rm_tree(r.work);
    chain_free(&ch);
    return rc;
}

int restore_mdb_from_config(struct mdb_engine *e, json_t *restore, const atomic_bool *cancel,
                            struct restore_mdb_result *res, struct rv_error *err)
{
    struct objstore *store = NULL;
    char loc[RV_PG_PATH_MAX + 64];
    uint8_t key[BSTREAM_KEY_LEN];
    const char *hex = json_string_value(json_object_get(restore, "encryption_key"));
    const char *id = json_string_value(json_object_get(restore, "backup_id"));
    const char *pit = json_string_value(json_object_get(restore, "point_in_time"));
    struct restore_mdb_opts o = {.cancel = cancel};
    int rc = 0;
    if (!json_is_object(restore))
        return rv_error_set(err, RV_EINVAL, false, "no restore section in the configuration");
    if (pit != NULL)
        rc = restore_time_parse(&o.target_ms, pit, err);
    if (rc == 0 && hex != NULL)
        rc = bstream_key_parse(key, hex, err);
    if (rc == 0)
        rc = backup_store_open(&store, loc, sizeof(loc), json_object_get(restore, "destination"),
                               err);
    if (rc == 0) {
        o.store = store;
        o.key = hex != NULL ? key : NULL;
        /* A point in time picks the newest backup (incrementals included)
         * that ended by then; the reconciler's backup_id is a full one. */
        o.has_target = pit != NULL;
        o.backup_id = pit != NULL ? NULL : id;
        rc = restore_mdb_run(e, &o, res, err);
    }
    if (store != NULL)
        store->free(store);
    crypto_wipe(key, sizeof(key));
    return rc;
}
