/* engine.c - the autopilot's engine interface over engine_pg and
 * engine_mariadb (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "child.h"
#include "fsutil.h"
#include "log.h"

#define COMP "engine"

/* --- PostgreSQL --- */

static int pg_bootstrap(struct engine *e, struct rv_error *err)
{
    return pg_engine_initdb(e->pg, err);
}

static int pg_start(struct engine *e, struct rv_error *err)
{
    return pg_engine_start(e->pg, err);
}

static int pg_stop(struct engine *e, enum engine_stop mode, struct rv_error *err)
{
    return pg_engine_stop(e->pg, mode == ENGINE_STOP_FAST ? PG_STOP_FAST : PG_STOP_IMMEDIATE, err);
}

static void pg_pos_text(char *out, size_t cap, uint64_t lsn)
{
    snprintf(out, cap, "%" PRIX64 "/%" PRIX64, lsn >> 32, lsn & 0xffffffffu);
}

static int pg_status_of(struct engine *e, uint64_t primary_pos, struct engine_status *st,
                        struct rv_error *err)
{
    struct pg_status ps;
    int rc = pg_engine_status(e->pg, primary_pos, &ps, err);
    memset(st, 0, sizeof(*st));
    if (rc != 0)
        return rc;
    st->running = ps.running;
    st->accepting = ps.accepting;
    st->in_recovery = ps.in_recovery;
    st->streaming = ps.streaming;
    st->timeline = ps.timeline;
    st->current = ps.current_lsn;
    st->received = ps.receive_lsn > ps.current_lsn ? ps.receive_lsn : ps.current_lsn;
    st->lag = ps.lag_bytes;
    pg_pos_text(st->position, sizeof(st->position), ps.current_lsn);
    if (e->version[0] == '\0') {
        char path[RV_PG_PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/PG_VERSION", e->pg->data_dir);
        fs_read_line(path, e->version, sizeof(e->version));
    }
    return 0;
}

static int pg_clone(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    return pg_engine_clone_from(e->pg, p, err);
}

static int pg_make_standby(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    return pg_engine_make_standby(e->pg, p, err);
}

static int pg_promote(struct engine *e, struct rv_error *err)
{
    return pg_engine_promote(e->pg, err);
}

static int pg_fence(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    return pg_engine_fence(e->pg, p, err);
}

static int pg_rewind(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    return pg_engine_rewind(e->pg, p, err);
}

static int pg_set_sync(struct engine *e, const char *const *names, size_t n_names, unsigned n,
                       enum pg_sync_method method, struct rv_error *err)
{
    return pg_engine_set_synchronous(e->pg, names, n_names, n, method, err);
}

static int pg_standbys(struct engine *e, struct pg_standby *out, size_t cap, size_t *n,
                       struct rv_error *err)
{
    return pg_engine_standbys(e->pg, out, cap, n, err);
}

static bool pg_has_data(const struct engine *e)
{
    char path[RV_PG_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/PG_VERSION", e->pg->data_dir);
    return access(path, F_OK) == 0;
}

static const struct engine_ops pg_ops = {
    .name = "postgresql",
    .bootstrap = pg_bootstrap,
    .start = pg_start,
    .stop = pg_stop,
    .status = pg_status_of,
    .clone = pg_clone,
    .make_standby = pg_make_standby,
    .promote = pg_promote,
    .fence = pg_fence,
    .rewind = pg_rewind,
    .set_synchronous = pg_set_sync,
    .standbys = pg_standbys,
    .has_data = pg_has_data,
    .pos_parse = pg_lsn_parse,
    .pos_text = pg_pos_text,
};

/* --- MariaDB --- */

static int mdb_primary_of(struct mdb_primary *m, const struct pg_primary *p)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->host, sizeof(m->host), "%s", p->host);
    m->port = p->port;
    return 0;
}

/* Run statements over the node's socket as the agent's OS user; out (may be
 * NULL) gets the first value of the last statement's first row. */
static int mdb_sql(struct mdb_engine *m, const char *const *stmts, size_t n, char *out, size_t cap,
                   struct rv_error *err)
{
    MYSQL *c = NULL;
    if (out != NULL && cap > 0)
        out[0] = '\0';
    int rc = mdb_engine_connect(m, &c, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (mysql_query(c, stmts[i]) != 0) {
            rc = rv_error_set(err, RV_EDB, false, "'%s' on '%s': %s", stmts[i], m->node_name,
                              mysql_error(c));
            goto out;
        }
        MYSQL_RES *r = mysql_store_result(c);
        if (r != NULL) {
            MYSQL_ROW row = mysql_fetch_row(r);
            if (out != NULL && cap > 0 && row != NULL && mysql_num_fields(r) > 0 && row[0])
                snprintf(out, cap, "%s", row[0]);
            mysql_free_result(r);
        }
    }
out:
    mysql_close(c);
    return rc;
}

/* The replication user also copies a primary for a new replica
 * (mariadb-dump): it reads every table, as PostgreSQL's replication role
 * reads every file with pg_basebackup. */
static int mdb_grant_clone(struct mdb_engine *m, struct rv_error *err)
{
    char q[RV_MDB_NAME_MAX + RV_MDB_HOST_MAX + 128];
    snprintf(q, sizeof(q), "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, EXECUTE ON *.* TO '%s'@'%s'",
             m->repl_user, m->grant_host);
    const char *stmts[] = {q};
    return mdb_sql(m, stmts, 1, NULL, 0, err);
}

static int mdb_bootstrap(struct engine *e, struct rv_error *err)
{
    int rc = mdb_engine_install(e->mdb, err);
    if (rc == 0)
        rc = mdb_grant_clone(e->mdb, err);
    return rc;
}

static int mdb_start(struct engine *e, struct rv_error *err)
{
    return mdb_engine_start(e->mdb, err);
}

static int mdb_stop(struct engine *e, enum engine_stop mode, struct rv_error *err)
{
    return mdb_engine_stop(e->mdb, mode == ENGINE_STOP_FAST ? MDB_STOP_FAST : MDB_STOP_IMMEDIATE,
                           err);
}

/* Sum of the sequence numbers of a GTID position; 0 when empty or bad. */
static uint64_t gtid_sum(const char *text)
{
    struct mdb_gtid_pos p;
    uint64_t sum = 0;
    if (text == NULL || mdb_gtid_parse(&p, text) != 0)
        return 0;
    for (size_t i = 0; i < p.n; i++)
        sum += p.g[i].seq;
    return sum;
}

static int mdb_status_of(struct engine *e, uint64_t primary_pos, struct engine_status *st,
                         struct rv_error *err)
{
    struct mdb_status ms;
    int rc = mdb_engine_status(e->mdb, NULL, &ms, err);
    memset(st, 0, sizeof(*st));
    if (rc != 0)
        return rc;
    st->running = ms.running;
    st->accepting = ms.accepting;
    st->in_recovery = ms.accepting && ms.read_only;
    st->streaming = ms.is_replica && ms.io_running && ms.sql_running;
    st->diverged = ms.diverged;
    st->timeline = 1;
    st->current = gtid_sum(ms.gtid_current_pos);
    uint64_t io = ms.is_replica ? gtid_sum(ms.gtid_io_pos) : 0;
    st->received = io > st->current ? io : st->current;
    st->lag = primary_pos > st->current ? primary_pos - st->current : 0;
    snprintf(st->position, sizeof(st->position), "%s", ms.gtid_current_pos);
    if (e->version[0] == '\0' && ms.accepting) {
        const char *q[] = {"SELECT VERSION()"};
        struct rv_error ve = {0};
        if (mdb_sql(e->mdb, q, 1, e->version, sizeof(e->version), &ve) != 0)
            e->version[0] = '\0';
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* A data directory with something in it (a clone cut short). */
static bool dir_has_entries(const char *path)
{
    char probe[RV_MDB_PATH_MAX + 16];
    snprintf(probe, sizeof(probe), "%s/reeve.cnf", path);
    if (access(probe, F_OK) == 0)
        return true;
    snprintf(probe, sizeof(probe), "%s/mysql", path);
    return access(probe, F_OK) == 0;
}

/* dump | load (lib/child), bounded by RV_ENGINE_DUMP_TIMEOUT_MS; the
 * stderr of both is kept for the message. */
static int run_pipe(const char *const *dump, const char *const *load, const struct mdb_engine *m,
                    struct rv_error *err)
{
    extern char **environ;
    int pfd[2] = {-1, -1};
    struct child_result r;
    int rc = 0;
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return rv_error_set(err, RV_EIO, true, "cannot set up the clone of '%s': %s", m->node_name,
                            strerror(errno));
    struct child_spec s[2] = {{.argv = dump,
                               .envp = environ,
                               .out = CHILD_IO_FD,
                               .out_fd = pfd[1],
                               .close_fds = true,
                               .label = "engine"},
                              {.argv = load,
                               .envp = environ,
                               .in = CHILD_IO_FD,
                               .in_fd = pfd[0],
                               .close_fds = true,
                               .label = "engine"}};
    struct child_opts o = {.timeout_ms = RV_ENGINE_DUMP_TIMEOUT_MS,
                           .output_max = RV_ENGINE_DUMP_ERR_MAX,
                           .close_after_spawn = pfd,
                           .n_close = 2};
    rc = child_run(&r, s, 2, &o, err);
    for (int i = 0; i < 2; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    if (rc == 0 && r.why != 0)
        rc = rv_error_set(err, r.why, true, "the clone of '%s' did not finish within %d s",
                          m->node_name, RV_ENGINE_DUMP_TIMEOUT_MS / 1000);
    for (int i = 0; i < 2 && rc == 0; i++)
        if (r.exit_code[i] != 0) {
            char tail[320];
            child_tail_line(tail, sizeof(tail), &r.out);
            bool conn = strstr(tail, "Can't connect") != NULL;
            rc = rv_error_set(err, conn ? RV_EUNAVAIL : RV_ECHILD, conn,
                              "cannot copy into '%s' (%s failed): %s", m->node_name,
                              i == 0 ? "mariadb-dump" : "mariadb", tail);
        }
    child_result_release(&r);
    return rc;
}

/* The replication user's credentials for mariadb-dump, in a 0600 file next
 * to the socket (never on a command line). */
static int write_client_cnf(const char *path, const struct mdb_engine *m, struct rv_error *err)
{
    if (strpbrk(m->repl_password, "\"\\\n\r") != NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "the replication password of '%s' holds a quote, backslash or newline, "
                            "which an option file cannot carry; choose another",
                            m->node_name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", path, strerror(errno));
    }
    int bad =
        fprintf(f, "[client]\nuser=%s\npassword=\"%s\"\n", m->repl_user, m->repl_password) < 0;
    if (fclose(f) != 0 || bad) {
        unlink(path);
        return rv_error_set(err, RV_EIO, false, "cannot write '%s'", path);
    }
    return 0;
}

/* Copy the primary's databases into this (running, read-only, empty)
 * server: mariadb-dump over TCP as the replication user, loaded over the
 * socket without binary logging, so the node's binary log holds only what
 * it replicates. The dump sets gtid_slave_pos to the copy's position. */
static int mdb_copy(struct mdb_engine *m, const struct pg_primary *p, struct rv_error *err)
{
    char cnf[RV_MDB_PATH_MAX + 32], defaults[RV_MDB_PATH_MAX + 48];
    char dump_exe[RV_MDB_PATH_MAX + 32], load_exe[RV_MDB_PATH_MAX + 32];
    char sock[RV_MDB_PATH_MAX + 48], user[RV_MDB_NAME_MAX + 16], port[16];
    snprintf(cnf, sizeof(cnf), "%s/clone.cnf", m->socket_dir);
    snprintf(defaults, sizeof(defaults), "--defaults-file=%s", cnf);
    snprintf(dump_exe, sizeof(dump_exe), "%s/mariadb-dump", m->bin_dir);
    snprintf(load_exe, sizeof(load_exe), "%s/mariadb", m->bin_dir);
    snprintf(sock, sizeof(sock), "--socket=%s/mariadbd.sock", m->socket_dir);
    snprintf(user, sizeof(user), "--user=%s", m->admin_user);
    snprintf(port, sizeof(port), "%d", p->port);
    const char *dump[] = {dump_exe,
                          defaults,
                          "--host",
                          p->host,
                          "--port",
                          port,
                          "--protocol=TCP",
                          "--single-transaction",
                          "--gtid",
                          "--master-data=1",
                          "--all-databases",
                          "--routines",
                          "--events",
                          "--triggers",
                          "--hex-blob",
                          "--flush-privileges",
                          "--max-allowed-packet=1G",
                          NULL};
    const char *load[] = {load_exe,
                          "--no-defaults",
                          sock,
                          user,
                          "--binary-mode",
                          "--max-allowed-packet=1G",
                          "--init-command=SET SESSION sql_log_bin = 0",
                          NULL};
    int rc = write_client_cnf(cnf, m, err);
    if (rc != 0)
        return rc;
    int64_t t0 = child_now_ms();
    rc = run_pipe(dump, load, m, err);
    unlink(cnf);
    if (rc == 0)
        log_info(COMP, "copied the databases of %s:%d into '%s' in %" PRId64 " ms", p->host,
                 p->port, m->node_name, child_now_ms() - t0);
    return rc;
}

/* A new replica: a fresh server, read-only from its first restart, its
 * binary log reset, filled by mdb_copy(); make_standby then starts
 * replication from the copy's GTID position. */
static int mdb_clone(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    struct mdb_engine *m = e->mdb;
    int rc = 0;
    if (dir_has_entries(m->data_dir)) {
        log_warn(COMP, "'%s' holds an unfinished copy: removing it", m->data_dir);
        if ((rc = mdb_engine_stop(m, MDB_STOP_IMMEDIATE, err)) != 0)
            return rc;
        if (nftw(m->data_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
            return rv_error_set(err, RV_EIO, false, "cannot remove '%s': %s", m->data_dir,
                                strerror(errno));
    }
    log_info(COMP, "cloning '%s' from %s:%d (mariadb-dump)", m->node_name, p->host, p->port);
    /* read_only from now on (live, and in reeve.cnf at the next start); the
     * binary log loses install's statements. */
    const char *prep[] = {"SET GLOBAL read_only = ON", "RESET MASTER"};
    if ((rc = mdb_engine_install(m, err)) != 0)
        return rc;
    m->read_only = true;
    if ((rc = mdb_sql(m, prep, 2, NULL, 0, err)) != 0)
        return rc;
    return mdb_copy(m, p, err);
}

static int mdb_make_standby(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    struct mdb_primary mp;
    mdb_primary_of(&mp, p);
    return mdb_engine_make_replica(e->mdb, &mp, err);
}

static int mdb_promote(struct engine *e, struct rv_error *err)
{
    return mdb_engine_promote(e->mdb, err);
}

static int mdb_fence(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    struct mdb_primary mp;
    if (p == NULL)
        return mdb_engine_fence(e->mdb, NULL, err);
    mdb_primary_of(&mp, p);
    return mdb_engine_fence(e->mdb, &mp, err);
}

/* No pg_rewind: a clean restart read-only, then replication from the node's
 * own position; a diverged history is RV_ECONFLICT (re-clone). */
static int mdb_rewind(struct engine *e, const struct pg_primary *p, struct rv_error *err)
{
    int rc = mdb_engine_stop(e->mdb, MDB_STOP_FAST, err);
    if (rc == 0)
        rc = mdb_make_standby(e, p, err);
    return rc;
}

static int mdb_standbys(struct engine *e, struct pg_standby *out, size_t cap, size_t *n,
                        struct rv_error *err)
{
    (void)e;
    (void)out;
    (void)cap;
    (void)err;
    *n = 0;
    return 0;
}

static bool mdb_has_data(const struct engine *e)
{
    char probe[RV_MDB_PATH_MAX + 16];
    snprintf(probe, sizeof(probe), "%s/mysql", e->mdb->data_dir);
    return access(probe, F_OK) == 0;
}

static int mdb_pos_parse(uint64_t *out, const char *text)
{
    char *end = NULL;
    if (text == NULL || text[0] < '0' || text[0] > '9')
        return RV_EPARSE;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return RV_EPARSE;
    *out = (uint64_t)v;
    return 0;
}

static void mdb_pos_text(char *out, size_t cap, uint64_t pos)
{
    snprintf(out, cap, "%" PRIu64, pos);
}

static const struct engine_ops mdb_ops = {
    .name = "mariadb",
    .bootstrap = mdb_bootstrap,
    .start = mdb_start,
    .stop = mdb_stop,
    .status = mdb_status_of,
    .clone = mdb_clone,
    .make_standby = mdb_make_standby,
    .promote = mdb_promote,
    .fence = mdb_fence,
    .rewind = mdb_rewind,
    .set_synchronous = NULL,
    .standbys = mdb_standbys,
    .has_data = mdb_has_data,
    .pos_parse = mdb_pos_parse,
    .pos_text = mdb_pos_text,
};

/* --- public --- */

void engine_init_pg(struct engine *e, struct pg_engine *pg)
{
    memset(e, 0, sizeof(*e));
    e->ops = &pg_ops;
    e->type = ENGINE_POSTGRESQL;
    e->pg = pg;
}

int engine_init_mariadb(struct engine *e, const struct mdb_engine_config *cfg, struct rv_error *err)
{
    memset(e, 0, sizeof(*e));
    e->mdb = calloc(1, sizeof(*e->mdb));
    if (e->mdb == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    int rc = mdb_engine_init(e->mdb, cfg, err);
    if (rc != 0) {
        free(e->mdb);
        e->mdb = NULL;
        return rc;
    }
    e->ops = &mdb_ops;
    e->type = ENGINE_MARIADB;
    return 0;
}

void engine_release(struct engine *e)
{
    if (e == NULL || e->ops == NULL)
        return;
    if (e->mdb != NULL) {
        mdb_engine_release(e->mdb);
        free(e->mdb);
        e->mdb = NULL;
    }
    e->ops = NULL;
}

int engine_type_parse(enum engine_type *out, const char *name)
{
    if (strcmp(name, "postgresql") == 0)
        *out = ENGINE_POSTGRESQL;
    else if (strcmp(name, "mariadb") == 0)
        *out = ENGINE_MARIADB;
    else
        return RV_EINVAL;
    return 0;
}
