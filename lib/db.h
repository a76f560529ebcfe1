/* db.h - thin SQLite helpers: open with sane pragmas, schema migrations,
 * short prepared-statement calls and BEGIN IMMEDIATE transactions.
 *
 * Durability. Databases open in WAL mode. With synchronous=NORMAL (the
 * default, DB_SYNC_NORMAL) a committed transaction is in the WAL file before
 * COMMIT returns, but the WAL is fsync'd only at checkpoints: a committed
 * transaction survives the process being killed (kill -9, OOM killer, a
 * crash) — the failure reeve promises to survive — while a power loss or
 * kernel crash can roll back the last transactions (never corrupt the file).
 * DB_SYNC_FULL fsyncs the WAL on every commit, so commits also survive power
 * loss, at the price of one fsync per write transaction.
 *
 * Errors are RV_EDB with SQLite's message; "database is locked" (SQLITE_BUSY)
 * after the busy timeout is marked retryable.
 *
 * A struct db is one connection: use it from one thread at a time.
 */
#ifndef REEVE_DB_H
#define REEVE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "err.h"

struct db;

enum db_sync {
    DB_SYNC_NORMAL, /* survives process death; the default */
    DB_SYNC_FULL,   /* also survives power loss; one fsync per commit */
};

struct db_options {
    enum db_sync sync;
    int busy_timeout_ms; /* wait for another connection's lock */
    bool create;         /* create the file if missing */
};

/* Defaults: DB_SYNC_NORMAL, RV_DB_BUSY_TIMEOUT_MS, create. */
void db_options_init(struct db_options *opt);
/* Parse "normal" or "full" (a config value); returns 0 or RV_EINVAL. */
int db_sync_parse(enum db_sync *out, const char *name);

/* Open (or create) path with WAL, the chosen synchronous level,
 * foreign_keys=ON, the busy timeout and defensive settings. opt may be NULL
 * for defaults. ":memory:" opens a private in-memory database (no WAL). */
int db_open(struct db **out, const char *path, const struct db_options *opt, struct rv_error *err);
/* Close the connection; db_free(NULL) is a no-op. */
void db_free(struct db *db);
/* The underlying connection, for what these helpers do not cover. */
sqlite3 *db_handle(struct db *db);

/* One schema step. Migrations are applied in order; migration i takes the
 * schema from version i to i+1 (PRAGMA user_version), each in its own
 * BEGIN IMMEDIATE transaction, so a crash leaves a whole version. Never edit
 * a migration that has shipped: append a new one. */
struct db_migration {
    const char *name; /* e.g. "initial schema", for messages */
    const char *sql;  /* one or more statements */
};

/* Bring the schema to version n. Fails (RV_EDB) when the database is newer
 * than n: an older reeve must not write a newer schema. */
int db_migrate(struct db *db, const struct db_migration *migrations, size_t n,
               struct rv_error *err);
/* PRAGMA user_version. */
int db_schema_version(int *out, struct db *db, struct rv_error *err);

/* Run SQL text of one or more statements, no parameters (DDL, pragmas). */
int db_exec(struct db *db, const char *sql, struct rv_error *err);

/* Parameter binding by a type string, one letter per '?' in order:
 *   't' const char *  text (NULL binds NULL)
 *   'l' int64_t       (cast literals: (int64_t)0)
 *   'i' int
 *   'f' double
 *   'n' (no argument) NULL
 *   'b' const void *, size_t  blob (NULL binds NULL)
 * types may be NULL or "" for no parameters. */

/* Prepare sql and bind the arguments. Finalize with db_finalize(). */
int db_prepare(sqlite3_stmt **out, struct db *db, struct rv_error *err, const char *sql,
               const char *types, ...);
/* Step once: 1 when a row is ready, 0 when done, or a negative error. */
int db_step(sqlite3_stmt *stmt, struct db *db, struct rv_error *err);
/* sqlite3_finalize; NULL is a no-op. */
void db_finalize(sqlite3_stmt *stmt);

/* Prepare, bind, step to completion, finalize: for INSERT/UPDATE/DELETE.
 * Rows a statement returns are skipped. */
int db_run(struct db *db, struct rv_error *err, const char *sql, const char *types, ...);
/* The first column of the first row as int64 (NULL reads as 0);
 * RV_ENOTFOUND without a row (err untouched). */
int db_query_i64(int64_t *out, struct db *db, struct rv_error *err, const char *sql,
                 const char *types, ...);
/* Rows changed by the last INSERT/UPDATE/DELETE, and the last rowid. */
int64_t db_changes(struct db *db);
int64_t db_last_insert_id(struct db *db);

/* Copy a text column (NULL stays NULL) into *out; free() it. RV_ENOMEM. */
int db_column_text(char **out, sqlite3_stmt *stmt, int col);

/* Transactions. db_begin is BEGIN IMMEDIATE: it takes the write lock up
 * front, so a transaction never fails halfway on a lock upgrade. They do not
 * nest. db_rollback ignores errors (it runs on error paths) and is a no-op
 * outside a transaction. */
int db_begin(struct db *db, struct rv_error *err);
int db_commit(struct db *db, struct rv_error *err);
void db_rollback(struct db *db);
bool db_in_transaction(struct db *db);

#endif
