#include "db.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

struct db {
    sqlite3 *sql;
    char *path; /* for messages */
};

static int db_fail(struct db *db, struct rv_error *err, int rc, const char *what)
{
    int primary = rc & 0xff;
    bool retryable = primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
    const char *msg = db && db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc);
    return rv_error_set(err, RV_EDB, retryable, "database '%s': %s: %s%s",
                        db && db->path ? db->path : "?", what, msg,
                        retryable ? " (another process holds the lock; retrying may help)" : "");
}

void db_options_init(struct db_options *opt)
{
    opt->sync = DB_SYNC_NORMAL;
    opt->busy_timeout_ms = RV_DB_BUSY_TIMEOUT_MS;
    opt->create = true;
}

int db_sync_parse(enum db_sync *out, const char *name)
{
    if (name && strcmp(name, "normal") == 0) {
        *out = DB_SYNC_NORMAL;
        return 0;
    }
    if (name && strcmp(name, "full") == 0) {
        *out = DB_SYNC_FULL;
        return 0;
    }
    return RV_EINVAL;
}

sqlite3 *db_handle(struct db *db)
{
    return db->sql;
}

int db_exec(struct db *db, const char *sql, struct rv_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->sql, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int primary = rc & 0xff;
        rv_error_set(err, RV_EDB, primary == SQLITE_BUSY || primary == SQLITE_LOCKED,
                     "database '%s': %s", db->path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return RV_EDB;
    }
    return 0;
}

/* Run a pragma that answers one text row, e.g. journal_mode. */
static int db_pragma_text(struct db *db, const char *sql, char *out, size_t out_size,
                          struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(&st, db, err, sql, NULL);
    if (rc != 0)
        goto out;
    rc = db_step(st, db, err);
    if (rc < 0)
        goto out;
    out[0] = '\0';
    if (rc == 1) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t)
            snprintf(out, out_size, "%s", (const char *)t);
    }
    rc = 0;
out:
    db_finalize(st);
    return rc;
}

int db_open(struct db **out, const char *path, const struct db_options *opt, struct rv_error *err)
{
    struct db_options defaults;
    struct db *db = NULL;
    char mode[32];
    char sql[128];
    int rc;

    *out = NULL;
    if (opt == NULL) {
        db_options_init(&defaults);
        opt = &defaults;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL || (db->path = strdup(path)) == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "cannot open database '%s': out of memory", path);
        goto out;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (opt->create)
        flags |= SQLITE_OPEN_CREATE;
    int src = sqlite3_open_v2(path, &db->sql, flags, NULL);
    if (src != SQLITE_OK) {
        rc = rv_error_set(err, RV_EDB, false,
                          "cannot open database '%s': %s; check the path and its permissions", path,
                          db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(src));
        goto out;
    }
    sqlite3_extended_result_codes(db->sql, 1);
    sqlite3_busy_timeout(db->sql, opt->busy_timeout_ms);
    /* Refuse schema tricks (writable_schema, triggers calling unsafe functions)
     * in a file someone else may have edited. */
    sqlite3_db_config(db->sql, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(db->sql, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

    rc = db_pragma_text(db, "PRAGMA journal_mode=WAL", mode, sizeof(mode), err);
    if (rc != 0)
        goto out;
    bool in_memory = strcmp(path, ":memory:") == 0 || path[0] == '\0';
    if (strcmp(mode, "wal") != 0 && !(in_memory && strcmp(mode, "memory") == 0)) {
        rc = rv_error_set(err, RV_EDB, false,
                          "database '%s': cannot switch to WAL mode (journal_mode is '%s'); "
                          "put the database on a local filesystem",
                          path, mode);
        goto out;
    }
    snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
             opt->sync == DB_SYNC_FULL ? "FULL" : "NORMAL");
    rc = db_exec(db, sql, err);
    if (rc != 0)
        goto out;
    *out = db;
    db = NULL;
    rc = 0;
out:
    db_free(db);
    return rc;
}

void db_free(struct db *db)
{
    if (db == NULL)
        return;
    /* sqlite3_close_v2 defers the close until every statement is finalized;
     * a leaked statement is a bug, but must not turn into a use-after-free. */
    sqlite3_close_v2(db->sql);
    free(db->path);
    free(db);
}

static int db_bind(sqlite3_stmt *st, struct db *db, struct rv_error *err, const char *sql,
                   const char *types, va_list ap)
{
    size_t n = types ? strlen(types) : 0;
    int params = sqlite3_bind_parameter_count(st);

    /* A mismatch is a programming error in reeve, not bad input. */
    assert(n <= RV_DB_BIND_MAX);
    if ((size_t)params != n)
        return rv_error_set(err, RV_EINTERNAL, false,
                            "statement '%.80s' has %d parameters but %zu were given", sql, params,
                            n);
    for (size_t i = 0; i < n; i++) {
        int idx = (int)i + 1;
        int rc;
        switch (types[i]) {
        case 't': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, idx);
            break;
        }
        case 'l':
            rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)va_arg(ap, int64_t));
            break;
        case 'i':
            rc = sqlite3_bind_int(st, idx, va_arg(ap, int));
            break;
        case 'f':
            rc = sqlite3_bind_double(st, idx, va_arg(ap, double));
            break;
        case 'n':
            rc = sqlite3_bind_null(st, idx);
            break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            if (len > (size_t)INT32_MAX)
                return rv_error_set(err, RV_ELIMIT, false, "blob of %zu bytes is too large", len);
            rc = p ? sqlite3_bind_blob(st, idx, p, (int)len, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, idx);
            break;
        }
        default:
            return rv_error_set(err, RV_EINTERNAL, false,
                                "statement '%.80s': unknown bind type '%c'", sql, types[i]);
        }
        if (rc != SQLITE_OK)
            return db_fail(db, err, rc, "cannot bind a parameter");
    }
    return 0;
}

static int db_vprepare(sqlite3_stmt **out, struct db *db, struct rv_error *err, const char *sql,
                       const char *types, va_list ap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL);

    *out = NULL;
    if (rc != SQLITE_OK) {
        rc = db_fail(db, err, rc, "cannot prepare a statement");
        goto out;
    }
    rc = db_bind(st, db, err, sql, types, ap);
    if (rc != 0)
        goto out;
    *out = st;
    st = NULL;
out:
    sqlite3_finalize(st);
    return rc;
}

int db_prepare(sqlite3_stmt **out, struct db *db, struct rv_error *err, const char *sql,
               const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = db_vprepare(out, db, err, sql, types, ap);
    va_end(ap);
    return rc;
}

int db_step(sqlite3_stmt *stmt, struct db *db, struct rv_error *err)
{
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(db, err, rc, "statement failed");
}

void db_finalize(sqlite3_stmt *stmt)
{
    sqlite3_finalize(stmt);
}

int db_run(struct db *db, struct rv_error *err, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, types);
    int rc = db_vprepare(&st, db, err, sql, types, ap);
    va_end(ap);
    if (rc != 0)
        goto out;
    while ((rc = db_step(st, db, err)) == 1)
        ;
out:
    db_finalize(st);
    return rc;
}

int db_query_i64(int64_t *out, struct db *db, struct rv_error *err, const char *sql,
                 const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, types);
    int rc = db_vprepare(&st, db, err, sql, types, ap);
    va_end(ap);
    if (rc != 0)
        goto out;
    rc = db_step(st, db, err);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = RV_ENOTFOUND;
        goto out;
    }
    *out = (int64_t)sqlite3_column_int64(st, 0);
    rc = 0;
out:
    db_finalize(st);
    return rc;
}

int64_t db_changes(struct db *db)
{
    return (int64_t)sqlite3_changes64(db->sql);
}

int64_t db_last_insert_id(struct db *db)
{
    return (int64_t)sqlite3_last_insert_rowid(db->sql);
}

int db_column_text(char **out, sqlite3_stmt *stmt, int col)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);
    *out = NULL;
    if (t == NULL)
        return sqlite3_errcode(sqlite3_db_handle(stmt)) == SQLITE_NOMEM ? RV_ENOMEM : 0;
    size_t len = (size_t)sqlite3_column_bytes(stmt, col);
    char *s = malloc(len + 1);
    if (s == NULL)
        return RV_ENOMEM;
    memcpy(s, t, len);
    s[len] = '\0';
    *out = s;
    return 0;
}

int db_begin(struct db *db, struct rv_error *err)
{
    assert(!db_in_transaction(db) && "db transactions do not nest");
    return db_exec(db, "BEGIN IMMEDIATE", err);
}

int db_commit(struct db *db, struct rv_error *err)
{
    return db_exec(db, "COMMIT", err);
}

void db_rollback(struct db *db)
{
    if (db_in_transaction(db))
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
}

bool db_in_transaction(struct db *db)
{
    return sqlite3_get_autocommit(db->sql) == 0;
}

int db_schema_version(int *out, struct db *db, struct rv_error *err)
{
    int64_t v = 0;
    int rc = db_query_i64(&v, db, err, "PRAGMA user_version", NULL);
    if (rc == RV_ENOTFOUND)
        rc = rv_error_set(err, RV_EDB, false, "database '%s': no user_version", db->path);
    if (rc != 0)
        return rc;
    *out = (int)v;
    return 0;
}

int db_migrate(struct db *db, const struct db_migration *migrations, size_t n, struct rv_error *err)
{
    int rc = 0;
    char sql[64];

    assert(n <= RV_DB_MIGRATIONS_MAX);
    for (;;) {
        int version = 0;
        /* Read the version inside the write transaction, so two processes
         * starting together cannot both apply the same step. */
        rc = db_begin(db, err);
        if (rc != 0)
            goto out;
        rc = db_schema_version(&version, db, err);
        if (rc != 0)
            goto out;
        if (version < 0 || (size_t)version > n) {
            rc = rv_error_set(err, RV_EDB, false,
                              "database '%s' has schema version %d but this reeve knows "
                              "versions up to %zu; upgrade reeve or restore a backup of the "
                              "database",
                              db->path, version, n);
            goto out;
        }
        if ((size_t)version == n) {
            rc = db_commit(db, err);
            goto out;
        }
        const struct db_migration *m = &migrations[version];
        rc = db_exec(db, m->sql, err);
        if (rc != 0) {
            char detail[RV_ERROR_MSG_MAX];
            snprintf(detail, sizeof(detail), "%s", err ? err->msg : "");
            rc = rv_error_set(err, RV_EDB, false,
                              "cannot migrate database '%s' to version %d (%s): %s", db->path,
                              version + 1, m->name, detail);
            goto out;
        }
        snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", version + 1);
        rc = db_exec(db, sql, err);
        if (rc != 0)
            goto out;
        rc = db_commit(db, err);
        if (rc != 0)
            goto out;
    }
out:
    db_rollback(db);
    return rc;
}
