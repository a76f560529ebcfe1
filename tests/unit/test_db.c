/* test_db.c - lib/db: pragmas, migrations, statements, transactions,
 * errors, and the durability promise (a commit survives kill -9). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rv-test-db-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/reeve.db", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char p[160];
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static int64_t pragma_i64(struct db *db, const char *sql)
{
    int64_t v = -1;
    assert_int_equal(db_query_i64(&v, db, NULL, sql, NULL), 0);
    return v;
}

static void test_open_pragmas(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    struct rv_error err;
    sqlite3_stmt *st = NULL;

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    assert_int_equal(db_prepare(&st, db, &err, "PRAGMA journal_mode", NULL), 0);
    assert_int_equal(db_step(st, db, &err), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    db_finalize(st);
    assert_int_equal(pragma_i64(db, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(pragma_i64(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(pragma_i64(db, "PRAGMA busy_timeout"), RV_DB_BUSY_TIMEOUT_MS);
    db_free(db);

    struct db_options opt;
    db_options_init(&opt);
    assert_int_equal(db_sync_parse(&opt.sync, "full"), 0);
    assert_int_equal(db_sync_parse(&opt.sync, "bogus"), RV_EINVAL);
    opt.busy_timeout_ms = 250;
    assert_int_equal(db_open(&db, fx->path, &opt, &err), 0);
    assert_int_equal(pragma_i64(db, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(pragma_i64(db, "PRAGMA busy_timeout"), 250);
    db_free(db);
    db_free(NULL);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct db *db = NULL;
    struct rv_error err;
    struct db_options opt;

    rv_error_clear(&err);
    assert_int_equal(db_open(&db, "/nonexistent-dir/x/reeve.db", NULL, &err), RV_EDB);
    assert_null(db);
    assert_non_null(strstr(err.msg, "cannot open database '/nonexistent-dir/x/reeve.db'"));

    db_options_init(&opt);
    opt.create = false;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/rv-test-db-missing-%d.db", (int)getpid());
    assert_int_equal(db_open(&db, path, &opt, &err), RV_EDB);
    assert_int_equal(access(path, F_OK), -1); /* not created */
}

static const struct db_migration migs[] = {
    {"things", "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
               " size INTEGER, ratio REAL, data BLOB);"},
    {"parts", "CREATE TABLE parts (id INTEGER PRIMARY KEY,"
              " thing INTEGER NOT NULL REFERENCES things (id));"
              "INSERT INTO things (name) VALUES ('seed');"},
};

static void test_migrate(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    struct rv_error err;
    int v = -1;

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    assert_int_equal(db_schema_version(&v, db, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(db_migrate(db, migs, 1, &err), 0);
    assert_int_equal(db_schema_version(&v, db, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(db_migrate(db, migs, 2, &err), 0);
    assert_int_equal(db_schema_version(&v, db, &err), 0);
    assert_int_equal(v, 2);
    /* Running again applies nothing: the seed row is still alone. */
    assert_int_equal(db_migrate(db, migs, 2, &err), 0);
    assert_int_equal(pragma_i64(db, "SELECT count(*) FROM things"), 1);
    assert_false(db_in_transaction(db));

    /* An older reeve must not touch a newer schema. */
    rv_error_clear(&err);
    assert_int_equal(db_migrate(db, migs, 1, &err), RV_EDB);
    assert_non_null(strstr(err.msg, "schema version 2"));
    assert_non_null(strstr(err.msg, "upgrade reeve"));
    assert_false(db_in_transaction(db));
    db_free(db);
}

static void test_migrate_failure_rolls_back(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    struct rv_error err;
    static const struct db_migration bad[] = {
        {"ok", "CREATE TABLE a (x INTEGER);"},
        {"broken", "CREATE TABLE b (x INTEGER); INSERT INTO nosuch VALUES (1);"},
    };
    int v = -1;

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    rv_error_clear(&err);
    assert_int_equal(db_migrate(db, bad, 2, &err), RV_EDB);
    assert_non_null(strstr(err.msg, "to version 2 (broken)"));
    assert_non_null(strstr(err.msg, "no such table: nosuch"));
    assert_int_equal(db_schema_version(&v, db, &err), 0);
    assert_int_equal(v, 1); /* the first step stays, the second is undone whole */
    assert_int_equal(pragma_i64(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'b'"), 0);
    assert_false(db_in_transaction(db));
    db_free(db);
}

static void test_statements(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    struct rv_error err;
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    char *text = NULL;

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    assert_int_equal(db_migrate(db, migs, 2, &err), 0);
    assert_int_equal(db_run(db, &err,
                            "INSERT INTO things (name, size, ratio, data)"
                            " VALUES (?, ?, ?, ?)",
                            "tlfb", "alpha", (int64_t)1 << 40, 0.5, "\0x", (size_t)2),
                     0);
    int64_t id = db_last_insert_id(db);
    assert_true(id > 0);
    assert_int_equal(db_changes(db), 1);
    assert_int_equal(db_run(db, &err,
                            "INSERT INTO things (name, size, ratio, data)"
                            " VALUES (?, ?, ?, ?)",
                            "tinn", "beta", 7),
                     0);

    assert_int_equal(
        db_query_i64(&v, db, &err, "SELECT size FROM things WHERE name = ?", "t", "alpha"), 0);
    assert_int_equal(v, (int64_t)1 << 40);
    assert_int_equal(
        db_query_i64(&v, db, &err, "SELECT size FROM things WHERE name = ?", "t", "nobody"),
        RV_ENOTFOUND);

    assert_int_equal(db_prepare(&st, db, &err,
                                "SELECT name, ratio, data FROM things WHERE size = ? OR id = ?"
                                " ORDER BY id",
                                "il", 7, id),
                     0);
    assert_int_equal(db_step(st, db, &err), 1);
    assert_int_equal(db_column_text(&text, st, 0), 0);
    assert_string_equal(text, "alpha");
    free(text);
    assert_true(sqlite3_column_double(st, 1) == 0.5);
    assert_int_equal(sqlite3_column_bytes(st, 2), 2);
    assert_int_equal(db_step(st, db, &err), 1);
    assert_int_equal(db_column_text(&text, st, 1), 0);
    assert_null(text); /* NULL stays NULL */
    assert_int_equal(db_step(st, db, &err), 0);
    db_finalize(st);
    db_finalize(NULL);

    /* A NULL string binds NULL. */
    assert_int_equal(db_run(db, &err, "UPDATE things SET size = ? WHERE name = ?", "nt", "beta"),
                     0);
    assert_int_equal(db_query_i64(&v, db, &err,
                                  "SELECT count(*) FROM things WHERE size IS NULL AND name = ?",
                                  "t", "beta"),
                     0);
    assert_int_equal(v, 1);
    db_free(db);
}

static void test_errors(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    struct rv_error err;

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    assert_int_equal(db_migrate(db, migs, 2, &err), 0);

    rv_error_clear(&err);
    assert_int_equal(db_run(db, &err, "INSERT INTO things (name) VALUES (?)", "t", "seed"), RV_EDB);
    assert_int_equal(err.code, RV_EDB);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "UNIQUE constraint failed: things.name"));
    assert_non_null(strstr(err.msg, fx->path));

    /* foreign_keys=ON is in force. */
    assert_int_equal(db_run(db, &err, "INSERT INTO parts (thing) VALUES (?)", "l", (int64_t)999),
                     RV_EDB);
    assert_non_null(strstr(err.msg, "FOREIGN KEY constraint failed"));

    assert_int_equal(db_run(db, &err, "SELEKT 1", NULL), RV_EDB);
    assert_non_null(strstr(err.msg, "syntax error"));

    /* A parameter count mismatch is reported, not bound short. */
    assert_int_equal(db_run(db, &err, "SELECT ?, ?", "t", "one"), RV_EINTERNAL);
    assert_non_null(strstr(err.msg, "has 2 parameters but 1 were given"));
    db_free(db);
}

static void test_transactions(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL, *other = NULL;
    struct rv_error err;
    struct db_options opt;

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    assert_int_equal(db_migrate(db, migs, 2, &err), 0);

    assert_int_equal(db_begin(db, &err), 0);
    assert_true(db_in_transaction(db));
    assert_int_equal(db_run(db, &err, "INSERT INTO things (name) VALUES ('gone')", NULL), 0);
    db_rollback(db);
    assert_false(db_in_transaction(db));
    db_rollback(db); /* a no-op outside a transaction */
    assert_int_equal(pragma_i64(db, "SELECT count(*) FROM things WHERE name = 'gone'"), 0);

    assert_int_equal(db_begin(db, &err), 0);
    assert_int_equal(db_run(db, &err, "INSERT INTO things (name) VALUES ('kept')", NULL), 0);

    /* BEGIN IMMEDIATE holds the write lock: a second connection waits for
     * its busy timeout, then fails with a retryable error. */
    db_options_init(&opt);
    opt.busy_timeout_ms = 50;
    assert_int_equal(db_open(&other, fx->path, &opt, &err), 0);
    rv_error_clear(&err);
    assert_int_equal(db_begin(other, &err), RV_EDB);
    assert_true(err.retryable);
    assert_non_null(strstr(err.msg, "database is locked"));
    /* Readers still read (WAL): they see the last commit, not 'kept'. */
    assert_int_equal(pragma_i64(other, "SELECT count(*) FROM things WHERE name = 'kept'"), 0);

    assert_int_equal(db_commit(db, &err), 0);
    assert_int_equal(pragma_i64(other, "SELECT count(*) FROM things WHERE name = 'kept'"), 1);
    db_free(other);
    db_free(db);
}

/* The promise in db.h: with WAL + synchronous=NORMAL a committed
 * transaction survives the process being killed with SIGKILL. */
static void test_commit_survives_kill9(void **state)
{
    struct fixture *fx = *state;
    struct db *db = NULL;
    struct rv_error err;
    int status = 0;

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    assert_int_equal(db_migrate(db, migs, 2, &err), 0);
    db_free(db);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct db *cdb = NULL;
        if (db_open(&cdb, fx->path, NULL, NULL) != 0 || db_begin(cdb, NULL) != 0 ||
            db_run(cdb, NULL, "INSERT INTO things (name) VALUES ('durable')", NULL) != 0 ||
            db_commit(cdb, NULL) != 0)
            _exit(3);
        /* Die without closing: no checkpoint, no cleanup. */
        raise(SIGKILL);
        _exit(4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    assert_int_equal(db_open(&db, fx->path, NULL, &err), 0);
    assert_int_equal(pragma_i64(db, "SELECT count(*) FROM things WHERE name = 'durable'"), 1);
    db_free(db);
}

static void test_memory_db(void **state)
{
    (void)state;
    struct db *db = NULL;
    struct rv_error err;
    assert_int_equal(db_open(&db, ":memory:", NULL, &err), 0);
    assert_int_equal(db_migrate(db, migs, 2, &err), 0);
    assert_int_equal(pragma_i64(db, "SELECT count(*) FROM things"), 1);
    db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_pragmas, setup, teardown),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test_setup_teardown(test_migrate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_survives_kill9, setup, teardown),
        cmocka_unit_test(test_memory_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
