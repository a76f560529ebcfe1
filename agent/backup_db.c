/* backup_db.c - the agent's local backup database (see backup_db.h). */
#include "backup_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "crypto.h"
#include "db.h"
#include "limits.h"

#define SEAL_PREFIX "enc:v1:"
#define NONCE_LEN 12
#define TAG_LEN 16

struct backup_db {
    struct db *db;
    uint8_t key[RV_BACKUP_NODE_KEY_BYTES];
};

static const struct db_migration migrations[] = {
    {"backup tables",
     "CREATE TABLE config (id INTEGER PRIMARY KEY CHECK (id = 1), digest TEXT NOT NULL,"
     "  json TEXT NOT NULL, received_at INTEGER NOT NULL);"
     "CREATE TABLE jobs (name TEXT PRIMARY KEY, description TEXT, cron TEXT,"
     "  retention_days INTEGER, source TEXT, destination TEXT, credentials_ref TEXT,"
     "  method TEXT, program TEXT, params TEXT, type TEXT, compression TEXT,"
     "  encryption INTEGER NOT NULL DEFAULT 0, schemas TEXT, pre_script TEXT,"
     "  post_script TEXT, notify_success TEXT, notify_failure TEXT);"
     "CREATE TABLE schedule (job TEXT PRIMARY KEY, cron TEXT NOT NULL, next_run INTEGER NOT NULL);"
     "CREATE TABLE records (backup_id TEXT PRIMARY KEY, schedule TEXT NOT NULL,"
     "  status TEXT NOT NULL, type TEXT NOT NULL, started_at TEXT NOT NULL,"
     "  json TEXT NOT NULL, synced INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX records_unsynced ON records (synced, started_at);"
     "CREATE INDEX records_schedule ON records (schedule);"
     "CREATE TABLE logs (id INTEGER PRIMARY KEY, backup_id TEXT NOT NULL, at TEXT NOT NULL,"
     "  level TEXT NOT NULL, line TEXT NOT NULL);"
     "CREATE INDEX logs_backup ON logs (backup_id, id);"
     "CREATE TABLE secrets (name TEXT PRIMARY KEY, sealed TEXT NOT NULL);"
     "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);"},
    /* Log lines go to the reconciler too: each is sent once (synced after
     * a 200), oldest first. */
    {"log sync flag", "ALTER TABLE logs ADD COLUMN synced INTEGER NOT NULL DEFAULT 0;"
                      "CREATE INDEX logs_unsynced ON logs (synced, id);"},
};

static const char *const secret_names[] = {"access_key_id", "secret_access_key", "encryption_key",
                                           "password", NULL};

static void wipe_free(char *s)
{
    if (s != NULL) {
        crypto_wipe(s, strlen(s));
        free(s);
    }
}

/* --- node key --- */

static int own(const char *path, uid_t uid, gid_t gid, struct rv_error *err)
{
    if (uid != (uid_t)-1 && chown(path, uid, gid) != 0)
        return rv_error_set(err, RV_EIO, false, "cannot chown '%s': %s", path, strerror(errno));
    return 0;
}

static int key_read(uint8_t key[RV_BACKUP_NODE_KEY_BYTES], const char *path, struct rv_error *err)
{
    char hex[2 * RV_BACKUP_NODE_KEY_BYTES + 2];
    size_t n = 0;
    int rc = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return rv_error_set(err, errno == ENOENT ? RV_ENOTFOUND : RV_EIO, false,
                            "cannot read the node key '%s': %s", path, strerror(errno));
    n = fread(hex, 1, sizeof(hex) - 1, f);
    fclose(f);
    hex[n] = '\0';
    while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == '\r'))
        hex[--n] = '\0';
    size_t got = 0;
    if (n != 2 * RV_BACKUP_NODE_KEY_BYTES ||
        crypto_hex_decode(key, &got, RV_BACKUP_NODE_KEY_BYTES, hex, n) != 0 ||
        got != RV_BACKUP_NODE_KEY_BYTES)
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "the node key '%s' is not 64 hex characters: restore it from a copy, "
                          "or remove it and backup.db together",
                          path);
    crypto_wipe(hex, sizeof(hex));
    return rc;
}

/* Create the key with O_EXCL: two processes racing both end up reading the
 * winner's key. */
static int key_load(uint8_t key[RV_BACKUP_NODE_KEY_BYTES], const char *path, bool create, uid_t uid,
                    gid_t gid, struct rv_error *err)
{
    uint8_t raw[RV_BACKUP_NODE_KEY_BYTES];
    char hex[2 * RV_BACKUP_NODE_KEY_BYTES + 2];
    int rc = key_read(key, path, err);
    if (rc != RV_ENOTFOUND || !create)
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return key_read(key, path, err);
        return rv_error_set(err, RV_EIO, false, "cannot create the node key '%s': %s", path,
                            strerror(errno));
    }
    rc = crypto_random(raw, sizeof(raw));
    if (rc == 0)
        rc = crypto_hex_encode(hex, sizeof(hex), raw, sizeof(raw));
    if (rc != 0) {
        rc = rv_error_set(err, RV_ECRYPTO, false, "cannot make a node key");
    } else {
        size_t len = strlen(hex);
        hex[len] = '\n';
        if (write(fd, hex, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0)
            rc = rv_error_set(err, RV_EIO, false, "cannot write the node key '%s': %s", path,
                              strerror(errno));
    }
    if (rc == 0 && uid != (uid_t)-1 && fchown(fd, uid, gid) != 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot chown '%s': %s", path, strerror(errno));
    close(fd);
    if (rc == 0)
        memcpy(key, raw, sizeof(raw));
    else
        unlink(path);
    crypto_wipe(raw, sizeof(raw));
    crypto_wipe(hex, sizeof(hex));
    return rc;
}

/* --- open --- */

int backup_db_open(struct backup_db **out, const char *dir, bool create, uid_t uid, gid_t gid,
                   struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    struct backup_db *b = NULL;
    struct db_options opt;
    int rc = 0;
    *out = NULL;
    if (strlen(dir) > RV_PG_PATH_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "backup directory path too long");
    if (create) {
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return rv_error_set(err, RV_EIO, false, "cannot create '%s': %s", dir, strerror(errno));
        if ((rc = own(dir, uid, gid, err)) != 0)
            return rc;
    }
    snprintf(path, sizeof(path), "%s/backup.db", dir);
    if (!create && access(path, F_OK) != 0)
        return rv_error_set(err, RV_ENOTFOUND, false, "no backup database at '%s'", path);
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    snprintf(path, sizeof(path), "%s/node.key", dir);
    rc = key_load(b->key, path, create, uid, gid, err);
    if (rc != 0)
        goto out;
    snprintf(path, sizeof(path), "%s/backup.db", dir);
    db_options_init(&opt);
    opt.create = create;
    rc = db_open(&b->db, path, &opt, err);
    if (rc == 0)
        rc = own(path, uid, gid, err);
    if (rc == 0)
        rc = db_migrate(b->db, migrations, sizeof(migrations) / sizeof(migrations[0]), err);
    if (rc != 0)
        goto out;
    /* SQLite gives a root process's -wal and -shm files the database's
     * owner; chown them too in case they predate that. */
    char side[RV_PG_PATH_MAX + 40];
    snprintf(side, sizeof(side), "%s-wal", path);
    if (access(side, F_OK) == 0)
        own(side, uid, gid, NULL);
    snprintf(side, sizeof(side), "%s-shm", path);
    if (access(side, F_OK) == 0)
        own(side, uid, gid, NULL);
    *out = b;
    b = NULL;
out:
    backup_db_free(b);
    return rc;
}

void backup_db_free(struct backup_db *b)
{
    if (b == NULL)
        return;
    db_free(b->db);
    crypto_wipe(b->key, sizeof(b->key));
    free(b);
}

/* --- sealing --- */

static int gcm(bool enc, const uint8_t *key, const uint8_t nonce[NONCE_LEN], const char *aad,
               const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[TAG_LEN])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c != NULL;
    ok = ok && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc ? 1 : 0) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1;
    ok = ok && EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc ? 1 : 0) == 1;
    ok = ok && EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) == 1;
    ok = ok && (len == 0 || EVP_CipherUpdate(c, out, &n, in, (int)len) == 1);
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + (len > 0 ? n : 0), &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

int backup_db_seal(char **out, struct backup_db *b, const char *name, const char *plain,
                   struct rv_error *err)
{
    size_t len = strlen(plain);
    size_t raw_len = NONCE_LEN + len + TAG_LEN;
    uint8_t *raw = NULL;
    char *text = NULL;
    int rc = 0;
    *out = NULL;
    if (len > RV_BACKUP_SECRET_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "secret '%s' over %d bytes", name,
                            RV_BACKUP_SECRET_MAX);
    raw = malloc(raw_len);
    text = malloc(sizeof(SEAL_PREFIX) + CRYPTO_BASE64_ENCODED_LEN(raw_len) + 1);
    if (raw == NULL || text == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (crypto_random(raw, NONCE_LEN) != 0 ||
        gcm(true, b->key, raw, name, (const uint8_t *)plain, len, raw + NONCE_LEN,
            raw + NONCE_LEN + len) != 0) {
        rc = rv_error_set(err, RV_ECRYPTO, false, "cannot seal secret '%s'", name);
        goto out;
    }
    memcpy(text, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1);
    crypto_base64_encode(text + sizeof(SEAL_PREFIX) - 1, CRYPTO_BASE64_ENCODED_LEN(raw_len) + 1,
                         raw, raw_len);
    *out = text;
    text = NULL;
out:
    free(text);
    free(raw);
    return rc;
}

int backup_db_unseal(char **out, struct backup_db *b, const char *name, const char *sealed,
                     struct rv_error *err)
{
    size_t plen = sizeof(SEAL_PREFIX) - 1;
    size_t b64_len, raw_len = 0;
    uint8_t *raw = NULL;
    char *plain = NULL;
    int rc = 0;
    *out = NULL;
    if (strncmp(sealed, SEAL_PREFIX, plen) != 0)
        return rv_error_set(err, RV_EINTEGRITY, false, "secret '%s' in backup.db is not sealed",
                            name);
    b64_len = strlen(sealed + plen);
    raw = malloc(CRYPTO_BASE64_DECODED_MAX(b64_len) + 1);
    if (raw == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (crypto_base64_decode(raw, &raw_len, CRYPTO_BASE64_DECODED_MAX(b64_len) + 1, sealed + plen,
                             b64_len) != 0 ||
        raw_len < NONCE_LEN + TAG_LEN) {
        rc = rv_error_set(err, RV_EINTEGRITY, false, "secret '%s' in backup.db is damaged", name);
        goto out;
    }
    size_t len = raw_len - NONCE_LEN - TAG_LEN;
    plain = malloc(len + 1);
    if (plain == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    if (gcm(false, b->key, raw, name, raw + NONCE_LEN, len, (uint8_t *)plain,
            raw + NONCE_LEN + len) != 0) {
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "secret '%s' in backup.db does not open with the node key (altered, "
                          "or node.key was replaced)",
                          name);
        goto out;
    }
    plain[len] = '\0';
    *out = plain;
    plain = NULL;
out:
    if (plain != NULL) {
        crypto_wipe(plain, len);
        free(plain);
    }
    if (raw != NULL) {
        crypto_wipe(raw, raw_len);
        free(raw);
    }
    return rc;
}

static bool is_secret(const char *name)
{
    for (size_t i = 0; secret_names[i] != NULL; i++)
        if (strcmp(secret_names[i], name) == 0)
            return true;
    return false;
}

/* Seal (or open) every secret member of v in place. */
static int walk_secrets(struct backup_db *b, json_t *v, bool seal, struct rv_error *err)
{
    const char *k;
    json_t *m;
    size_t i;
    int rc = 0;
    if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            if ((rc = walk_secrets(b, m, seal, err)) != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    json_object_foreach(v, k, m)
    {
        if (is_secret(k) && json_is_string(m)) {
            char *t = NULL;
            rc = seal ? backup_db_seal(&t, b, k, json_string_value(m), err)
                      : backup_db_unseal(&t, b, k, json_string_value(m), err);
            if (rc == 0 && json_object_set_new(v, k, json_string(t)) != 0)
                rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            wipe_free(t);
        } else {
            rc = walk_secrets(b, m, seal, err);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* --- config and jobs --- */

static char *dump(json_t *v)
{
    return v == NULL || json_is_null(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int job_row(struct backup_db *b, const char *name, const char *descr, const char *cron,
                   const char *type, json_t *bk, struct rv_error *err)
{
    json_t *dst = json_deep_copy(json_object_get(bk, "destination"));
    json_t *notify = json_object_get(bk, "notify");
    char *dst_t = NULL, *params = NULL, *schemas = NULL, *ns = NULL, *nf = NULL;
    int rc;
    /* The destination without credentials: they stay in the sealed config. */
    json_object_del(dst, "access_key_id");
    json_object_del(dst, "secret_access_key");
    dst_t = dump(dst);
    params = dump(json_object_get(bk, "args"));
    schemas = dump(json_object_get(bk, "schemas"));
    ns = dump(json_object_get(notify, "success"));
    nf = dump(json_object_get(notify, "failure"));
    rc = db_run(b->db, err,
                "INSERT INTO jobs (name, description, cron, retention_days, source, destination,"
                " credentials_ref, method, program, params, type, compression, encryption,"
                " schemas, pre_script, post_script, notify_success, notify_failure)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                "tttlttttttttittttt", name, descr, cron,
                (int64_t)json_integer_value(json_object_get(bk, "retention_days")),
                json_is_true(json_object_get(bk, "prefer_replica")) ? "replica-preferred"
                                                                    : "primary",
                dst_t, "backup.db:config/backup.destination (sealed)",
                json_string_value(json_object_get(bk, "method")),
                json_string_value(json_object_get(bk, "program")), params, type, "zstd",
                json_is_string(json_object_get(bk, "encryption_key")) ? 1 : 0, schemas,
                json_string_value(json_object_get(bk, "pre_script")),
                json_string_value(json_object_get(bk, "post_script")), ns, nf);
    free(dst_t);
    free(params);
    free(schemas);
    free(ns);
    free(nf);
    json_decref(dst);
    return rc;
}

static int jobs_rebuild(struct backup_db *b, json_t *bk, struct rv_error *err)
{
    int rc = db_run(b->db, err, "DELETE FROM jobs", NULL);
    const char *full = json_string_value(json_object_get(bk, "full_cron"));
    const char *incr = json_string_value(json_object_get(bk, "incremental_cron"));
    const char *test = json_string_value(json_object_get(bk, "test_restore_cron"));
    if (rc == 0 && full != NULL)
        rc = job_row(b, "full", "scheduled full backup", full, "full", bk, err);
    if (rc == 0 && incr != NULL)
        rc =
            job_row(b, "incremental", "scheduled incremental backup", incr, "incremental", bk, err);
    if (rc == 0 && test != NULL)
        rc = job_row(b, "test-restore", "test restore of the newest full backup", test, "verify",
                     bk, err);
    return rc;
}

int backup_db_config_save(struct backup_db *b, json_t *config, bool *changed, struct rv_error *err)
{
    json_t *copy = json_deep_copy(config);
    const char *digest = json_string_value(json_object_get(config, "digest"));
    char *text = NULL;
    int64_t same = 0;
    int rc = 0;
    if (changed != NULL)
        *changed = true;
    if (copy == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (digest == NULL)
        digest = "";
    rc = walk_secrets(b, copy, true, err);
    if (rc != 0)
        goto out;
    text = json_dumps(copy, JSON_COMPACT);
    if (text == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = db_query_i64(&same, b->db, err, "SELECT count(*) FROM config WHERE digest = ?", "t",
                      digest);
    if (rc != 0)
        goto out;
    if (changed != NULL)
        *changed = same == 0 || digest[0] == '\0';
    if (same != 0 && digest[0] != '\0')
        goto out;
    if ((rc = db_begin(b->db, err)) != 0)
        goto out;
    rc = db_run(b->db, err,
                "INSERT INTO config (id, digest, json, received_at) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, json = excluded.json,"
                " received_at = excluded.received_at",
                "ttl", digest, text, (int64_t)time(NULL));
    if (rc == 0)
        rc = jobs_rebuild(b, json_object_get(config, "backup"), err);
    if (rc == 0)
        rc = db_commit(b->db, err);
    else
        db_rollback(b->db);
out:
    free(text);
    json_decref(copy);
    return rc;
}

int backup_db_config_load(json_t **out, struct backup_db *b, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    char *text = NULL;
    json_t *v = NULL;
    int rc;
    *out = NULL;
    rc = db_prepare(&st, b->db, err, "SELECT json FROM config WHERE id = 1", NULL);
    if (rc == 0)
        rc = db_step(st, b->db, err);
    if (rc <= 0)
        goto out;
    rc = db_column_text(&text, st, 0);
    if (rc != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    v = json_loads(text != NULL ? text : "", 0, NULL);
    if (v == NULL) {
        rc = rv_error_set(err, RV_EINTEGRITY, false, "the configuration in backup.db is damaged");
        goto out;
    }
    rc = walk_secrets(b, v, false, err);
    if (rc != 0)
        goto out;
    *out = v;
    v = NULL;
out:
    db_finalize(st);
    free(text);
    json_decref(v);
    return rc < 0 ? rc : 0;
}

/* --- secrets and state --- */

int backup_db_secret_set(struct backup_db *b, const char *name, const char *plain,
                         struct rv_error *err)
{
    char *sealed = NULL;
    int rc = backup_db_seal(&sealed, b, name, plain, err);
    if (rc == 0)
        rc = db_run(b->db, err,
                    "INSERT INTO secrets (name, sealed) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed",
                    "tt", name, sealed);
    free(sealed);
    return rc;
}

/* The text of the first column of a one-row query; RV_ENOTFOUND. */
static int query_text(char **out, struct backup_db *b, struct rv_error *err, const char *sql,
                      const char *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(&st, b->db, err, sql, "t", arg);
    *out = NULL;
    if (rc == 0)
        rc = db_step(st, b->db, err);
    if (rc == 0)
        rc = RV_ENOTFOUND;
    else if (rc == 1 && db_column_text(out, st, 0) != 0)
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    else if (rc == 1)
        rc = *out != NULL ? 0 : RV_ENOTFOUND;
    db_finalize(st);
    return rc;
}

int backup_db_secret_get(char **out, struct backup_db *b, const char *name, struct rv_error *err)
{
    char *sealed = NULL;
    int rc = query_text(&sealed, b, err, "SELECT sealed FROM secrets WHERE name = ?", name);
    *out = NULL;
    if (rc == 0)
        rc = backup_db_unseal(out, b, name, sealed, err);
    free(sealed);
    return rc;
}

int backup_db_state_set(struct backup_db *b, const char *key, const char *value,
                        struct rv_error *err)
{
    return db_run(b->db, err,
                  "INSERT INTO state (key, value) VALUES (?, ?)"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                  "tt", key, value);
}

int backup_db_state_get(char **out, struct backup_db *b, const char *key, struct rv_error *err)
{
    return query_text(out, b, err, "SELECT value FROM state WHERE key = ?", key);
}

/* --- schedule --- */

int backup_db_next_get(int64_t *out, struct backup_db *b, const char *job, const char *cron,
                       struct rv_error *err)
{
    int rc =
        db_query_i64(out, b->db, err, "SELECT next_run FROM schedule WHERE job = ? AND cron = ?",
                     "tt", job, cron);
    return rc;
}

int backup_db_next_set(struct backup_db *b, const char *job, const char *cron, int64_t next,
                       struct rv_error *err)
{
    return db_run(b->db, err,
                  "INSERT INTO schedule (job, cron, next_run) VALUES (?, ?, ?)"
                  " ON CONFLICT (job) DO UPDATE SET cron = excluded.cron,"
                  " next_run = excluded.next_run",
                  "ttl", job, cron, next);
}

/* --- records --- */

int backup_db_record_put(struct backup_db *b, json_t *rec, struct rv_error *err)
{
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    const char *sched = json_string_value(json_object_get(rec, "schedule"));
    const char *status = json_string_value(json_object_get(rec, "status"));
    const char *type = json_string_value(json_object_get(rec, "type"));
    const char *started = json_string_value(json_object_get(rec, "started_at"));
    char *text = NULL;
    int rc;
    if (id == NULL || sched == NULL || status == NULL || type == NULL || started == NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "a backup record needs backup_id, schedule, status, type, started_at");
    text = json_dumps(rec, JSON_COMPACT);
    if (text == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    rc = db_run(b->db, err,
                "INSERT INTO records (backup_id, schedule, status, type, started_at, json, synced)"
                " VALUES (?,?,?,?,?,?,0) ON CONFLICT (backup_id) DO UPDATE SET"
                " schedule = excluded.schedule, status = excluded.status, type = excluded.type,"
                " started_at = excluded.started_at, json = excluded.json, synced = 0",
                "tttttt", id, sched, status, type, started, text);
    free(text);
    return rc;
}

int backup_db_record_get(json_t **out, struct backup_db *b, const char *backup_id,
                         struct rv_error *err)
{
    char *text = NULL;
    int rc = query_text(&text, b, err, "SELECT json FROM records WHERE backup_id = ?", backup_id);
    *out = NULL;
    if (rc == 0) {
        *out = json_loads(text, 0, NULL);
        if (*out == NULL)
            rc = rv_error_set(err, RV_EINTEGRITY, false, "record '%s' in backup.db is damaged",
                              backup_id);
    }
    free(text);
    return rc;
}

int backup_db_records(json_t **out, struct backup_db *b, bool unsynced_only, size_t max,
                      struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int rc;
    *out = NULL;
    if (arr == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    rc = db_prepare(&st, b->db, err,
                    unsynced_only ? "SELECT json FROM records WHERE synced = 0"
                                    " ORDER BY started_at, backup_id LIMIT ?"
                                  : "SELECT json FROM records ORDER BY started_at, backup_id"
                                    " LIMIT ?",
                    "l", (int64_t)(max > 0 ? max : (size_t)INT64_MAX));
    while (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        json_t *v = t != NULL ? json_loads(t, 0, NULL) : NULL;
        if (v != NULL && json_array_append_new(arr, v) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        else
            rc = 0;
    }
    db_finalize(st);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int backup_db_record_synced(struct backup_db *b, const char *backup_id, const char *rec_json,
                            struct rv_error *err)
{
    return db_run(b->db, err, "UPDATE records SET synced = 1 WHERE backup_id = ? AND json = ?",
                  "tt", backup_id, rec_json);
}

int backup_db_schedule_seen(bool *out, struct backup_db *b, const char *schedule,
                            struct rv_error *err)
{
    int64_t n = 0;
    int rc = db_query_i64(&n, b->db, err, "SELECT count(*) FROM records WHERE schedule = ?", "t",
                          schedule);
    *out = rc == 0 && n > 0;
    return rc;
}

int backup_db_prune(struct backup_db *b, const char *before, size_t *removed, struct rv_error *err)
{
    /* A record goes only once the reconciler has it and every line of its
     * log: nothing is forgotten before it was sent. */
    static const char where[] =
        "synced = 1 AND status <> 'running' AND started_at < ? AND NOT EXISTS"
        " (SELECT 1 FROM logs WHERE logs.backup_id = records.backup_id AND logs.synced = 0)";
    char sql[512];
    int rc = db_begin(b->db, err);
    if (removed != NULL)
        *removed = 0;
    if (rc != 0)
        return rc;
    snprintf(sql, sizeof(sql),
             "DELETE FROM logs WHERE backup_id IN (SELECT backup_id FROM records WHERE %s)", where);
    rc = db_run(b->db, err, sql, "t", before);
    if (rc == 0) {
        snprintf(sql, sizeof(sql), "DELETE FROM records WHERE %s", where);
        rc = db_run(b->db, err, sql, "t", before);
    }
    if (rc == 0 && removed != NULL)
        *removed = (size_t)db_changes(b->db);
    if (rc == 0)
        rc = db_commit(b->db, err);
    else
        db_rollback(b->db);
    return rc;
}

/* --- logs --- */

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static bool level_known(const char *level)
{
    for (size_t i = 0; level != NULL && log_levels[i] != NULL; i++)
        if (strcmp(level, log_levels[i]) == 0)
            return true;
    return false;
}

static void now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm t;
    char sec[24];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &t);
    strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &t);
    snprintf(out, 32, "%.23s.%03uZ", sec, (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

void backup_db_log(struct backup_db *b, const char *backup_id, const char *level, const char *fmt,
                   ...)
{
    char line[RV_ERROR_MSG_MAX];
    char at[32];
    va_list ap;
    if (b == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    now_rfc3339(at);
    if (!level_known(level))
        level = "info";
    if (db_run(b->db, NULL, "INSERT INTO logs (backup_id, at, level, line) VALUES (?,?,?,?)",
               "tttt", backup_id, at, level, line) != 0)
        return;
    db_run(b->db, NULL,
           "DELETE FROM logs WHERE backup_id = ? AND id <= (SELECT id FROM logs WHERE backup_id = ?"
           " ORDER BY id DESC LIMIT 1 OFFSET ?)",
           "tti", backup_id, backup_id, RV_BACKUP_LOG_LINES_MAX);
}

/* --- logs sent to the reconciler --- */

/* Length of the UTF-8 sequence at p (at most n bytes), 0 when it is not
 * one (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, cp = p[0] & 0x1fu;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, cp = p[0] & 0x0fu;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, cp = p[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* The line as the reconciler accepts it (printable, UTF-8): control
 * characters (C0, DEL, C1) become spaces, bytes that are not UTF-8 '?'.
 * The length never grows. */
void backup_db_line_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(p + i, n - i);
        if (len == 0) {
            p[i++] = '?';
        } else if (len == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
            p[i++] = ' ';
        } else if (len == 2 && p[i] == 0xc2 && p[i + 1] <= 0x9f) { /* U+0080..U+009F */
            p[i] = ' ';
            p[i + 1] = ' ';
            i += 2;
        } else {
            i += len;
        }
    }
}

static json_t *log_row(sqlite3_stmt *st)
{
    char *line = NULL;
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *at = (const char *)sqlite3_column_text(st, 2);
    const char *level = (const char *)sqlite3_column_text(st, 3);
    json_t *row = NULL;
    if (db_column_text(&line, st, 4) != 0 || line == NULL || id == NULL || at == NULL)
        goto out;
    backup_db_line_clean(line);
    row = json_pack("{s:s,s:s,s:s,s:s}", "backup_id", id, "at", at, "level",
                    level_known(level) ? level : "info", "line", line);
out:
    free(line);
    return row;
}

int backup_db_logs_unsynced(json_t **out, json_t **out_ids, struct backup_db *b,
                            const json_t *batch_ids, size_t max, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array(), *ids = json_array();
    char *batch = json_dumps(batch_ids, JSON_COMPACT);
    int rc = 0;
    *out = NULL;
    *out_ids = NULL;
    if (arr == NULL || ids == NULL || batch == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    rc = db_prepare(&st, b->db, err,
                    "SELECT l.id, l.backup_id, l.at, l.level, l.line FROM logs l"
                    " JOIN records r ON r.backup_id = l.backup_id"
                    " WHERE l.synced = 0 AND (r.synced = 1 OR l.backup_id IN"
                    "  (SELECT value FROM json_each(?)))"
                    " ORDER BY l.id LIMIT ?",
                    "tl", batch, (int64_t)max);
    while (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        json_t *row = log_row(st);
        rc = 0;
        if (row == NULL) /* a damaged row: it stays unsynced, and is pruned with its record */
            continue;
        if (json_array_append_new(arr, row) != 0 ||
            json_array_append_new(ids, json_integer(sqlite3_column_int64(st, 0))) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    if (rc < 0)
        goto out;
    rc = 0;
    *out = arr;
    *out_ids = ids;
    arr = ids = NULL;
out:
    db_finalize(st);
    free(batch);
    json_decref(arr);
    json_decref(ids);
    return rc;
}

int backup_db_logs_synced(struct backup_db *b, const json_t *ids, struct rv_error *err)
{
    char *text = json_dumps(ids, JSON_COMPACT);
    int rc;
    if (text == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    rc = db_run(b->db, err,
                "UPDATE logs SET synced = 1 WHERE id IN (SELECT value FROM json_each(?))", "t",
                text);
    free(text);
    return rc;
}

int backup_db_logs(json_t **out, struct backup_db *b, const char *backup_id, struct rv_error *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int rc;
    *out = NULL;
    if (arr == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    rc = db_prepare(&st, b->db, err,
                    "SELECT id, backup_id, at, level, line, synced FROM logs WHERE backup_id = ?"
                    " ORDER BY id",
                    "t", backup_id);
    while (rc == 0 && (rc = db_step(st, b->db, err)) == 1) {
        json_t *row = log_row(st);
        rc = 0;
        if (row == NULL ||
            json_object_set_new(row, "synced", json_boolean(sqlite3_column_int(st, 5))) != 0 ||
            json_array_append_new(arr, row) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    db_finalize(st);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}
